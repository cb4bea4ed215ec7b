#!/bin/sh
# run.sh: the long chaos and soak runs (`make chaos`, `make soak`), whose
# figures docs/reliability.md reports. Each run's figures also go to
# $B/chaos.json, $B/chaos-root.json, $B/soak-*.json.
#   sh tests/chaos/run.sh chaos   CHAOS_ROUNDS rounds (default 1000), then
#                                 kill -9 of the root, 10 times
#   sh tests/chaos/run.sh soak    1000 cycles; 60 s with a subscriber that
#                                 keeps up; 60 s with a slow one
set -u
B=${B:-build}
export CANOPY_RUNTIME_DIR="${CANOPY_RUNTIME_DIR:-$(mktemp -d)}"
failed=0
step() {
    echo "== $*"
    "$@" || failed=$((failed + 1))
}
case "${1:-}" in
chaos)
    step "$B/chaos/chaos" --rounds "${CHAOS_ROUNDS:-1000}" --json "$B/chaos.json"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        step "$B/chaos/chaos" --kill-root --json "$B/chaos-root.json"
    done
    ;;
soak)
    step "$B/chaos/soak" cycles 1000 --json "$B/soak-cycles.json"
    step "$B/chaos/soak" big 60 --json "$B/soak-big.json"
    step "$B/chaos/soak" big 60 --slow --json "$B/soak-slow.json"
    ;;
*)
    echo "usage: run.sh chaos|soak" >&2
    exit 2
    ;;
esac
echo "$1: $failed run(s) failed"
[ $failed -eq 0 ]
