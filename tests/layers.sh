#!/usr/bin/env bash
# The layer check: every #include "dir/..." in src/ points down the project's layers (README, issue 13):
#   core ← io | dist ← text ← data ← model ← prefs ← train | generate | eval ← pipeline ← demo ← cli
# A file may include its own folder and any folder of a lower layer; the three peers train, generate and eval
# never include one another, nor do io and dist (the process group: src/dist). demo sits above pipeline: it registers its task and oracle with the pipeline,
# the pipeline knows nothing of it. Exceptions, each with its reason, are listed in EXCEPTIONS below.
# Usage: layers.sh SRC_DIR        Prints every violation as "file:line: from -> to" and exits 1 if any.
set -euo pipefail
src=${1:?usage: layers.sh SRC_DIR}
declare -A rank=([core]=0 [io]=1 [dist]=1 [text]=2 [data]=3 [model]=4 [prefs]=5 [train]=6 [generate]=6 [eval]=6
                 [pipeline]=7 [demo]=8 [cli]=9)
# "from -> to" pairs allowed against the order above, with why. Keep this list short.
EXCEPTIONS=(
)
bad=0 checked=0
while IFS= read -r -d '' file; do
  from=${file#"$src"/}
  from=${from%%/*}
  [[ -n ${rank[$from]+x} ]] || { echo "$file: folder '$from' has no layer (add it to layers.sh)"; bad=1; continue; }
  lineno=0
  while IFS= read -r line; do
    lineno=$((lineno + 1))
    [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]+\"([a-z_]+)/ ]] || continue
    to=${BASH_REMATCH[1]}
    checked=$((checked + 1))
    [[ $to == "$from" ]] && continue
    if [[ -z ${rank[$to]+x} ]]; then
      echo "$file:$lineno: $from -> $to (unknown folder)"; bad=1; continue
    fi
    if (( rank[$to] < rank[$from] )); then continue; fi
    allowed=0
    for e in "${EXCEPTIONS[@]}"; do [[ $e == "$from -> $to" ]] && allowed=1; done
    (( allowed )) && continue
    echo "$file:$lineno: $from -> $to (points up or sideways)"
    bad=1
  done < "$file"
done < <(find "$src" -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.in' \) -print0 | sort -z)
if (( bad )); then
  echo "layer check failed ($checked includes read)"
  exit 1
fi
echo "layer check passed: $checked includes, every one points down"
