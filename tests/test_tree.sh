#!/bin/sh
# test_tree.sh: build/examples/tree as a user runs it. A SIGINT cancels the
# whole tree cleanly; a kill -9 of the root takes every descendant with it
# within 2 s (their stream to the parent closes, and PR_SET_PDEATHSIG is
# the backstop). Nothing may be left running either way. Under nohup, the
# whole tree ignores SIGHUP. A bad tree name stops the program at start.
set -u
. "$(dirname "$0")/lib.sh"
tree=${B:-build}/examples/tree
tmp=$(mktemp -d)
trap 'kill -9 $root 2>/dev/null; rm -rf "$tmp"' EXIT
root=

# Pids of every live descendant of $1 (zombies do not count).
descendants() {
    todo=$1
    while [ -n "$todo" ]; do
        set -- $todo
        todo=
        for parent in "$@"; do
            for stat in /proc/[0-9]*/stat; do
                # fields: pid (comm) state ppid ...; comm may hold spaces
                line=$(cat "$stat" 2>/dev/null) || continue
                rest=${line##*) }
                state=${rest%% *}
                ppid=$(echo "$rest" | cut -d' ' -f2)
                if [ "$ppid" = "$parent" ]; then
                    pid=${line%% *}
                    case $state in Z|X) ;; *) echo "$pid" ;; esac
                    todo="$todo $pid"
                fi
            done
        done
    done
}

alive() { # alive PID...: prints those still running (not zombie)
    for p in "$@"; do
        s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
        case $s in ""|Z|X) ;; *) echo "$p" ;; esac
    done
}

start_tree() { # start_tree LOG: starts the tree, waits until it is up
    CANOPY_LOG_FILE=$1 $tree >/dev/null 2>&1 &
    root=$!
    i=0
    while ! grep -q "tree is up" "$1" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.05; i=$((i + 1))
    done
}

# --- SIGINT: graceful cancel ------------------------------------------------
start_tree "$tmp/a.log"
if grep -q "tree is up: 3 supervisors, 9 workers" "$tmp/a.log"; then ok "tree comes up"; else fail "tree did not come up: $(cat "$tmp/a.log")"; fi
kids=$(descendants $root)
n=$(echo $kids | wc -w)
if [ "$n" -eq 12 ]; then ok "12 actors below the root"; else fail "expected 12 descendants, found $n"; fi
sleep 1.2 # a round of cousin calls
kill -INT $root
i=0
while kill -0 $root 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if wait $root; then ok "SIGINT: root exits 0"; else fail "SIGINT: root exit status $?"; fi
left=$(alive $kids)
if [ -z "$left" ]; then ok "SIGINT: no actor left running"; else fail "SIGINT: still running: $left"; fi
if grep -q "got SIGINT: cancelling the tree" "$tmp/a.log"; then ok "SIGINT is logged"; else fail "no SIGINT line in the log"; fi
if grep -q "calling cousin" "$tmp/a.log"; then fail "a cousin call failed: $(grep 'calling cousin' "$tmp/a.log" | head -3)"; else ok "cousin calls succeed"; fi

# --- kill -9 of the root ------------------------------------------------------
start_tree "$tmp/b.log"
kids=$(descendants $root)
n=$(echo $kids | wc -w)
if [ "$n" -eq 12 ]; then ok "second tree: 12 actors"; else fail "second tree: $n descendants"; fi
# A supervisor killed: its workers go with it, and the root's log names
# them (they vanished from tree and log without a word before).
sup=$(for p in $kids; do [ "$(cut -d')' -f2 /proc/$p/stat 2>/dev/null | cut -d' ' -f3)" = "$root" ] && echo $p; done | head -1)
workers=$(descendants $sup)
kill -9 $sup
i=0
while ! grep -q "of its subtree with it" "$tmp/b.log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if grep -Eq "warn +[a-z]+: sup-[0-9] \([a-z]+/sup-[0-9]\) took 3 actors of its subtree with it: worker-[0-9] \(id [0-9]+\), worker-[0-9] \(id [0-9]+\), worker-[0-9] \(id [0-9]+\)$" "$tmp/b.log"; then
    ok "kill -9 of a supervisor: the root names the workers that went with it"
else
    fail "kill -9 of a supervisor: $(grep -E 'sup-|worker-' "$tmp/b.log" | tail -5)"
fi
i=0
while [ -n "$(alive $workers)" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
[ -z "$(alive $workers)" ] && ok "kill -9 of a supervisor: its workers are gone" ||
    fail "kill -9 of a supervisor: still running: $(alive $workers)"
kids=$(descendants $root)
kill -9 $root
wait $root 2>/dev/null
i=0
while [ -n "$(alive $kids)" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
left=$(alive $kids)
if [ -z "$left" ]; then ok "kill -9 root: every descendant gone within 2 s"; else fail "kill -9 root: still running after 2 s: $left"; fi

# --- nohup: a hang-up leaves the whole tree running --------------------------
# Started with SIGHUP ignored (as nohup does), the root survives a hang-up,
# and so must every actor below it: spawning resets the other signals, not
# this one. (Found by the chaos suite, run under nohup: the supervisors died
# of SIGHUP when the shell that started it went away.)
CANOPY_LOG_FILE="$tmp/c.log" nohup $tree >/dev/null 2>&1 &
root=$!
i=0
while ! grep -q "tree is up" "$tmp/c.log" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kids=$(descendants $root)
for p in $root $kids; do kill -HUP $p; done
sleep 0.5
left=$(alive $root $kids)
n=$(echo $left | wc -w)
if [ "$n" -eq 13 ]; then ok "nohup: every actor survives SIGHUP"; else fail "nohup: only $n of 13 alive after SIGHUP"; fi
kill -INT $root
wait $root 2>/dev/null
if [ -z "$(alive $kids)" ]; then ok "nohup: SIGINT still ends the tree"; else fail "nohup: left running: $(alive $kids)"; fi

# A bad tree name (cn_config_t.name) is the program's mistake: cn_run
# refuses it, says why, and starts nothing (no socket, no actor).
dbg=${B:-build}/tests/helpers/debug_tree
export CANOPY_RUNTIME_DIR="$tmp/rt"
mkdir -p "$CANOPY_RUNTIME_DIR" && chmod 700 "$CANOPY_RUNTIME_DIR"
for bad in a/b ../x "" "$(printf '%070d' 0)"; do
    out=$("$dbg" --name="$bad" idle </dev/null 2>&1) && rc=0 || rc=$?
    if [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -q "(cn_config_t.name) is not a name" &&
        [ -z "$(ls -A "$CANOPY_RUNTIME_DIR")" ]; then
        ok "tree name '$(printf '%.12s' "$bad")': refused at start, and said why"
    else
        fail "tree name '$bad': exit $rc, $(ls -A "$CANOPY_RUNTIME_DIR"): $out"
    fi
done

finish test_tree
