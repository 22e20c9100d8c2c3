#!/usr/bin/env bash
# `hps demo --quick` from scratch into DIR (a stale run would let every stage skip). Usage: demo_quick.sh HPS DIR
set -euo pipefail
HPS=$1 DIR=$2
rm -rf "$DIR"
"$HPS" demo --quick --run.dir="$DIR" > "$DIR.log" 2>&1 || { cat "$DIR.log"; exit 1; }
tail -n 12 "$DIR.log"
echo "demo quick profile completed"
