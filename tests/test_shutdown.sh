#!/bin/sh
# test_shutdown.sh: an actor going down while its own threads are busy
# (tests/helpers/shutdown_races.c), races a new user's trial found:
# - the root's main returns while two threads spawn children: cn_run
#   returns main's status, every time (a child spawned as the shutdown
#   began was never cancelled, and cn_run waited for it for ever);
# - a thread of the root is in a call to the root itself when main
#   returns: the call and the function it runs end with CN_ECANCELED (they
#   were never told, and cn_run returned under them);
# - a child whose threads spawn grandchildren is cancelled: it exits by
#   itself, not by the SIGTERM of its parent's hard reap.
# Nothing is left running after any of them.
set -u
. "$(dirname "$0")/lib.sh"
bin=${B:-build}/tests/helpers/shutdown_races
tmp=$(mktemp -d)
export CANOPY_RUNTIME_DIR=$tmp/run
mkdir -m 700 "$CANOPY_RUNTIME_DIR"
trap 'pkill -9 -f "^$bin" 2>/dev/null; rm -rf "$tmp"' EXIT

# Every actor of these trees runs $bin: none may outlive its root.
left_behind() {
    sleep 0.3
    pgrep -f "^$bin" >/dev/null && echo "$(pgrep -af "^$bin")"
}

runs=10 bad=
for i in $(seq $runs); do
    timeout 20 "$bin" spawning $((150 + i * 15)) >/dev/null 2>"$tmp/spawning.$i.log"
    rc=$?
    [ $rc = 7 ] || bad="$bad run $i: exit $rc;"
done
[ -z "$bad" ] && ok "main returns while threads spawn: cn_run returns its status, $runs of $runs" ||
    fail "main returns while threads spawn:$bad $(tail -3 "$tmp/spawning.1.log")"
left=$(left_behind)
[ -z "$left" ] && ok "spawning: no actor left running" || fail "spawning: left running: $left"

out=$(timeout 20 "$bin" selfcall 2>"$tmp/selfcall.log")
expect_out "^caller: CN_ECANCELED; nap: CN_ECANCELED; cn_run returned after" \
    "a root thread's call to the root itself ends with CN_ECANCELED when main returns, and so does the call's cn_sleep"
left=$(left_behind)
[ -z "$left" ] && ok "selfcall: nothing left running" || fail "selfcall: left running: $left"

out=$(timeout 60 "$bin" midspawn 10 2>"$tmp/midspawn.log")
n=$(printf '%s\n' "$out" | grep -Ec "^cancel: CN_OK in [0-9]+ ms, mid: exit 0$")
[ "$n" = 10 ] && ok "a child spawning grandchildren from two threads exits by itself when cancelled, 10 of 10" ||
    fail "midspawn: $n of 10 clean: $(printf '%s\n' "$out" | grep -v 'exit 0$' | head -3)"
grep -q "ignored SHUTDOWN" "$tmp/midspawn.log" && fail "midspawn: $(grep -m1 'ignored SHUTDOWN' "$tmp/midspawn.log")" ||
    ok "midspawn: no child needed SIGTERM"
left=$(left_behind)
[ -z "$left" ] && ok "midspawn: no grandchild left running" || fail "midspawn: left running: $left"

finish test_shutdown
