#!/usr/bin/env bash
# Runs a command and passes only when it exits with exactly CODE and its output (stdout and stderr together)
# matches the extended regular expression REGEX. ctest's PASS_REGULAR_EXPRESSION alone ignores the exit code,
# and WILL_FAIL accepts any failure; this checks both. Usage: expect_exit.sh CODE REGEX -- COMMAND [ARGS...]
set -uo pipefail
if [[ $# -lt 4 || $3 != "--" || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: expect_exit.sh CODE REGEX -- COMMAND [ARGS...]" >&2
  exit 2
fi
want=$1 regex=$2
shift 3
out=$("$@" 2>&1)
got=$?
fail=0
if [[ $got -ne $want ]]; then
  echo "FAIL: exit code $got, expected $want" >&2
  fail=1
fi
if ! grep -Eq -- "$regex" <<< "$out"; then
  echo "FAIL: output does not match /$regex/" >&2
  fail=1
fi
printf 'command: %s\nexit code: %d\noutput:\n%s\n' "$*" "$got" "$out"
if [[ $fail -ne 0 ]]; then exit 1; fi
echo "expect_exit: exit $got and output matching /$regex/ as expected"
