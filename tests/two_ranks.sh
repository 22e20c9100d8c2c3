# Sourced by the data-parallel test scripts: a scratch folder $W (removed, with any process left, at exit),
# fail, and two_ranks — `hps ARGS...` as ranks 0 and 1 of a 2-process group on loopback, with torchrun's
# variables; both must succeed (their output in $W/rank0.log and $W/rank1.log). Needs $HPS.
W=$(mktemp -d)
trap 'jobs -p | xargs -r kill -9 2> /dev/null; rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=1 HPS_DIST_TIMEOUT=120

two_ranks() {
  local port=$((20000 + RANDOM % 30000)) pids=() rc=0 r
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$HPS" "$@" > "$W/rank$r.log" 2>&1 &
    pids+=($!)
  done
  for r in 0 1; do wait "${pids[$r]}" || rc=$?; done
  ((rc == 0)) || { tail -n 5 "$W"/rank*.log >&2; fail "2-rank hps $* exited with $rc"; }
}
