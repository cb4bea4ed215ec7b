#!/bin/sh
# test_soak.sh: the short soak runs that `make check` does
# (tests/chaos/soak.c; `make soak` runs the long ones; docs/reliability.md):
# spawn/call/cancel cycles with the root's RSS and fds flat and no zombies,
# then the big tree under a TUI-style client that keeps up (no events lost)
# and one that is deliberately slow (events lost, and counted).
#
# Under a sanitizer every actor is several times bigger and slower, so the
# big tree has SOAK_ACTORS leaves (default 40 there, 200 otherwise), and
# RSS is not checked: the sanitizer's allocator keeps freed memory in
# quarantine, and LeakSanitizer checks for leaks instead.
set -u
. "$(dirname "$0")/lib.sh"
skip_under_tsan test_soak
soak=${B:-build}/chaos/soak
tmp=$(mktemp -d)
export CANOPY_RUNTIME_DIR="$tmp/run"
trap 'rm -rf "$tmp"' EXIT
case "${SANITIZE:-}" in
?*) : "${SOAK_ACTORS:=40}" ; export SOAK_NO_RSS=1 ;;
*) : "${SOAK_ACTORS:=200}" ;;
esac

# run DESC ARGS...: runs soak, shows its figures, checks its status.
run() {
    desc=$1
    shift
    timeout 600 "$soak" "$@" >"$tmp/out" 2>&1
    rc=$?
    grep -E '^(soak|cycle [0-9]+/|[0-9]+ s:|  |VIOLATION)' "$tmp/out"
    if [ $rc -eq 0 ]; then ok "$desc"; else fail "$desc (exit $rc): $(tail -5 "$tmp/out")"; fi
}

run "soak: 300 spawn/call/cancel cycles, RSS and fds flat, no zombies" cycles 300
run "soak: $SOAK_ACTORS actors under a subscriber that keeps up: nothing lost, no growth" \
    big 20 --actors "$SOAK_ACTORS"
run "soak: a slow subscriber loses events, counted; no growth" \
    big 24 --slow --actors "$SOAK_ACTORS"
finish test_soak
