#!/usr/bin/env bash
# One-time, idempotent set-up for building hps on a fresh Debian machine.
#  1. Debian packages (apt-get; skipped when already installed).
#  2. LibTorch 2.11 from PyPI's torch==2.11.* wheel, in a virtual environment in a machine-wide
#     location keyed by version ($HPS_HOME/torch-2.11, default ~/.cache/hps), so fresh clones
#     (CI clones for every run) reuse it: a second set-up takes seconds.
# Skip step 2 by passing your own LibTorch: TORCH_PREFIX=/path/to/libtorch (see README).
# Prints nothing but progress; exits non-zero on failure.
set -euo pipefail

HPS_HOME=${HPS_HOME:-$HOME/.cache/hps}
TORCH_SERIES=2.11
TORCH_VENV=${TORCH_VENV:-$HPS_HOME/torch-$TORCH_SERIES}

apt_packages=(cmake ninja-build g++ ccache python3-venv
              libtomlplusplus-dev nlohmann-json3-dev libcli11-dev zlib1g-dev
              libgtest-dev libgmock-dev libbenchmark-dev libonig-dev libutf8proc-dev
              libgloo-dev clang libclang-rt-dev libcurl4-openssl-dev libssl-dev libcpp-httplib-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -n "${TORCH_PREFIX:-}" ]; then
  echo "setup: using LibTorch at $TORCH_PREFIX"
  exit 0
fi

torch_ok() {
  "$TORCH_VENV/bin/python" - <<PY 2>/dev/null
import torch, sys
sys.exit(0 if torch.__version__.startswith("$TORCH_SERIES.") else 1)
PY
}
if ! torch_ok; then
  echo "setup: installing torch==$TORCH_SERIES.* into $TORCH_VENV (one time, ~5 GB with CUDA libraries)"
  mkdir -p "$HPS_HOME"
  python3 -m venv "$TORCH_VENV"
  "$TORCH_VENV/bin/pip" install --quiet --upgrade pip
  "$TORCH_VENV/bin/pip" install --quiet "torch==$TORCH_SERIES.*"
  torch_ok || { echo "setup: torch $TORCH_SERIES not importable from $TORCH_VENV" >&2; exit 1; }
fi
