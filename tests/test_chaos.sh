#!/bin/sh
# test_chaos.sh: the short fault-injection run that `make check` does
# (tests/chaos/chaos.c; `make chaos` runs the long one; docs/reliability.md):
# 50 rounds of kill -9 or SIGSTOP on a 30-actor streaming tree, every
# invariant checked each round, then kill -9 of the root.
#
# The seed is printed; rerun a failure with
#   build/chaos/chaos --rounds 50 --seed SEED -v
# Sanitizers slow everything several times over, so under them the latency
# bounds (not the correctness checks) are multiplied by CHAOS_SLACK, and
# the run is 30 rounds (CI's time budget; every check still runs each round).
set -u
. "$(dirname "$0")/lib.sh"
skip_under_tsan test_chaos
chaos=${B:-build}/chaos/chaos
tmp=$(mktemp -d)
export CANOPY_RUNTIME_DIR="$tmp/run"
trap 'rm -rf "$tmp"' EXIT
case "${SANITIZE:-}" in
*thread*) : "${CHAOS_SLACK:=10}" ;;
?*) : "${CHAOS_SLACK:=6}" "${CHAOS_ROUNDS:=30}" ;;
*) : "${CHAOS_SLACK:=1}" ;;
esac
export CHAOS_SLACK
rounds=${CHAOS_ROUNDS:-50}

timeout 900 "$chaos" --rounds "$rounds" --json "$tmp/chaos.json" >"$tmp/out" 2>&1
rc=$?
# The figures and any violation (the tree's own log lines are left out).
grep -E '^(chaos|round [0-9]+/|  |VIOLATION)' "$tmp/out"
if [ $rc -eq 0 ]; then
    ok "chaos: $rounds rounds, every invariant held"
else
    fail "chaos: exit $rc; the last lines:"
    tail -30 "$tmp/out"
fi
grep -q '"zombies": 0, "fd_leaks": 0, "violations": 0' "$tmp/chaos.json" 2>/dev/null &&
    ok "chaos: no zombies, no leaked fds" || fail "chaos: figures: $(cat "$tmp/chaos.json" 2>/dev/null)"

timeout 120 "$chaos" --kill-root >"$tmp/root" 2>&1
rc=$?
grep -E '^(chaos|VIOLATION)' "$tmp/root"
[ $rc -eq 0 ] && ok "kill -9 of the root: every descendant gone in time" ||
    fail "kill -9 of the root (exit $rc): $(tail -5 "$tmp/root")"
finish test_chaos
