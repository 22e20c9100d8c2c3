#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan) and runs each for a fixed budget.
#   HPS_FUZZ_SECONDS   seconds per target (default 30; CI uses the default). Longer runs: see docs/reliability.md.
#   HPS_FUZZ_TARGETS   space-separated subset (default: all)
# Fails on any crash, leak, UB report, timeout (one input > 10 s: a hang) or allocation past 2.5 GB; the input
# that did it is saved under build-fuzz/artifacts/ and the command to replay it is printed.
# Corpora grow in build-fuzz/corpus/<target> (kept between runs); seeds come from fuzz/seeds and tests/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${HPS_FUZZ_SECONDS:-30}
build=${HPS_FUZZ_BUILD:-build-fuzz}
targets=${HPS_FUZZ_TARGETS:-"safetensors model_config tokenizer encode dataset config chat jinja bleu"}

if [ ! -f "$build/build.ninja" ]; then
  cmake -S fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
fi
cmake --build "$build" -j "$(nproc)" >/dev/null

# Seeds: the committed ones plus the real files of the test fixtures.
seeds="$build/seeds"
rm -rf "$seeds"
cp -r fuzz/seeds "$seeds"
mkdir -p "$seeds"/{safetensors,model_config,tokenizer,jinja}
fx=tests/fixtures
for f in "$fx"/models/*/*.safetensors; do cp "$f" "$seeds/safetensors/$(basename "$(dirname "$f")")-$(basename "$f")"; done
for f in "$fx"/models/*/config.json "$fx"/models/*/adapter_config.json "$fx"/train/*.json; do
  cp "$f" "$seeds/model_config/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for d in "$fx"/tokenizers/*/; do cp "$d/tokenizer.json" "$seeds/tokenizer/$(basename "$d").json"; done
cp "$fx"/jinja/templates/*.jinja "$seeds/jinja/"

export HPS_FIXTURES_DIR="$PWD/$fx"
mkdir -p "$build/artifacts"
printf '%-14s %12s %8s %8s\n' target executions seconds corpus
failed=0
for t in $targets; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$seeds/$t"
  log="$build/fuzz_$t.log"
  if "$build/fuzz_$t" "$corpus" "$seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
       -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    printf '%-14s %12s %8s %8s\n' "$t" "$runs" "$seconds" "$(find "$corpus" -type f | wc -l)"
  else
    failed=1
    echo "fuzz: $t FAILED — the report (from $log):"
    grep -E "ERROR|SUMMARY|fuzz:|Test unit written|runtime error" "$log" | head -20
    echo "replay: HPS_FIXTURES_DIR=$HPS_FIXTURES_DIR $build/fuzz_$t <the artifact above>"
  fi
done
exit $failed
