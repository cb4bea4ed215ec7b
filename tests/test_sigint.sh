#!/bin/sh
# test_sigint.sh: Ctrl-C at the root of a tree whose program leaves SIGINT
# to the runtime. The first SIGINT cancels the tree gracefully: main's
# cn_sleep wakes and its status is the exit status; a main that never
# blocks is ended with status 130 once the tree is down. A second SIGINT
# within 2 s kills the tree at once, even a child that ignores SHUTDOWN
# and SIGTERM. A SIGINT to the whole process group (a terminal's Ctrl-C)
# kills no child, not even one still in its program's start-up. Nothing
# is left running in any case.
set -u
. "$(dirname "$0")/lib.sh"
root_bin=${B:-build}/tests/helpers/sigint_root
fake=$PWD/${B:-build}/tests/helpers/fake_child
tmp=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT

kids_of() { # direct children of $P that are not zombies
    for st in /proc/[0-9]*/stat; do
        line=$(cat "$st" 2>/dev/null) || continue
        rest=${line##*) }
        set -- $rest
        state=$1 ppid=$2
        [ "$ppid" = "$P" ] && case $state in Z|X) ;; *) echo "${line%% *}" ;; esac
    done
}
alive() { for p in "$@"; do s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2); case $s in ""|Z|X) ;; *) echo "$p" ;; esac; done; }

start() { # start NAME MODE...: runs the root in the background until "ready"
    name=$1; shift
    CANOPY_LOG_FILE=$tmp/$name.log $root_bin "$@" >"$tmp/$name.out" 2>&1 &
    pid=$!
    i=0
    while ! grep -q ready "$tmp/$name.out" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    P=$pid
    kids=$(kids_of)
}

wait_exit() { # wait_exit SECONDS: waits for $pid, sets $status ("" on timeout)
    i=0; status=
    while kill -0 $pid 2>/dev/null && [ $i -lt $(($1 * 20)) ]; do sleep 0.05; i=$((i + 1)); done
    if kill -0 $pid 2>/dev/null; then return; fi
    wait $pid; status=$?
}

# --- main in cn_sleep: woken, its own status --------------------------------
start sleep sleep
n=$(echo $kids | wc -w)
if [ "$n" -eq 2 ]; then ok "sleep: two children up"; else fail "sleep: $n children"; fi
kill -INT $pid
wait_exit 5
if [ "$status" = 7 ]; then ok "sleep: main's status after SIGINT"; else fail "sleep: exit status '$status' (want 7)"; fi
if grep -q "main woke: cancelled" "$tmp/sleep.out"; then ok "sleep: cn_sleep returned CN_ECANCELED"; else fail "sleep: $(cat "$tmp/sleep.out")"; fi
if grep -q "SIGINT: cancelling the tree" "$tmp/sleep.log"; then ok "sleep: the cancel is logged"; else fail "sleep: log: $(cat "$tmp/sleep.log")"; fi
left=$(alive $kids); if [ -z "$left" ]; then ok "sleep: no child left"; else fail "sleep: left $left"; fi

# --- main never blocks: 130 after the tree is down ---------------------------
start busy busy
kill -INT $pid
wait_exit 5
if [ "$status" = 130 ]; then ok "busy: exit 130"; else fail "busy: exit status '$status' (want 130)"; fi
left=$(alive $kids); if [ -z "$left" ]; then ok "busy: no child left"; else fail "busy: left $left"; fi

# --- a child that ignores SHUTDOWN and SIGTERM: a second SIGINT kills -------
start stubborn stubborn "$fake"
n=$(echo $kids | wc -w)
if [ "$n" -eq 3 ]; then ok "stubborn: three children up"; else fail "stubborn: $n children"; fi
kill -INT $pid
sleep 0.3
kill -INT $pid
wait_exit 1
if [ "$status" = 130 ]; then ok "stubborn: second SIGINT exits 130 at once"; else fail "stubborn: exit status '$status' within 1 s"; fi
if grep -q "second SIGINT: killing the tree" "$tmp/stubborn.log"; then ok "stubborn: the kill is logged"; else fail "stubborn: log: $(cat "$tmp/stubborn.log")"; fi
i=0; while [ -n "$(alive $kids)" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
left=$(alive $kids); if [ -z "$left" ]; then ok "stubborn: no child left"; else fail "stubborn: left $left"; fi

# --- Ctrl-C at a terminal reaches the whole process group, and a child ---
# --- still in its program's start-up (before cn_run) must not die of it ----
CANOPY_LOG_FILE=$tmp/slowkid.log setsid $root_bin slowkid >"$tmp/slowkid.out" 2>&1 &
pid=$!
i=0
while ! grep -q "spawning late" "$tmp/slowkid.out" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.5 # the late child sleeps before its cn_run
kids=$(pgrep -P $pid) # (kids_of reads all of /proc: too slow here)
kill -INT -$pid # as the terminal's Ctrl-C: the root's group, children too
wait_exit 10
if [ "$status" = 7 ]; then ok "slowkid: a group SIGINT cancels the tree as usual"; else fail "slowkid: exit status '$status' (want 7): $(cat "$tmp/slowkid.out")"; fi
if grep -q "signal 2" "$tmp/slowkid.log"; then
    fail "slowkid: a child died of the Ctrl-C: $(grep 'signal 2' "$tmp/slowkid.log" | head -2)"
else
    ok "slowkid: no child died of the Ctrl-C, not even one still starting"
fi
left=$(alive $kids); if [ -z "$left" ]; then ok "slowkid: no child left"; else fail "slowkid: left $left"; fi

finish test_sigint
