#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on the GPU machine (which has torch 2.11 + CUDA 13 in its python3
# but none of our Debian packages and no network): the binaries built here against the same torch, the
# shared libraries they need that the image lacks, the HF baseline scripts and the real HH-RLHF lengths.
# Usage: make build && scripts/make_gpu_bundle.sh   → gpu_bundle/ (git-ignored; name it in `carry`)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rm -rf gpu_bundle && mkdir -p gpu_bundle/lib
cp "$BUILD/hps" "$BUILD/tests/hps_tests" "$BUILD/bench/bench_model" "$BUILD/bench/bench_generate" gpu_bundle/
strip gpu_bundle/hps gpu_bundle/hps_tests gpu_bundle/bench_model gpu_bundle/bench_generate
# Non-torch, non-system libraries the binaries link (toml++, Oniguruma, libcurl and OpenSSL, cpp-httplib, …).
for lib in $(ldd "$BUILD/hps" "$BUILD/tests/hps_tests" | awk '/=>/ {print $3}' | sort -u | grep -v -e torch -e nvidia \
             -e '/libc\.' -e '/libm\.' -e libstdc -e libgcc -e pthread -e librt -e libdl -e libutil -e libz); do
  cp -L "$lib" gpu_bundle/lib/
done
for f in hf_pref_bench.py hf_pref_bench_real.py hh_rlhf_lengths.jsonl hf_gen_bench.py; do [ -f "../shared/bench/$f" ] && cp "../shared/bench/$f" gpu_bundle/; done
du -sh gpu_bundle
