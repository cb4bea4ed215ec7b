#!/bin/sh
# test_debugger.sh: the tree debugger, driven as a user would: trees from
# debug_tree with actors at breakpoints, spinning or crashing, and
# `canopy attach` as the console, fed line by line through a fifo (and,
# once, in a real terminal under tmux).
#   - FIFO order: two, then five actors hit cn_breakpoint() together; the
#     lock is granted in request order, outputs never interleave, and each
#     holder's input reaches that holder only;
#   - the holder is killed with -9: the next waiter has the console within
#     100 ms;
#   - remote break on a child in while(1): bt names the spinning function;
#   - a serve-only child (its main thread is its broker) before its first
#     call: a break stops no thread, and bt says why it shows none;
#   - a grandchild crashes in debug mode: the post-mortem bt names the
#     faulting function, and after continue its parent sees SIGSEGV;
#   - no console: a breakpoint waits, the root says how to attach, and a
#     console attached later gets the REPL;
#   - cancelling the tree does not kill an actor in the debugger;
#     continue lets the cancel finish.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tree.sh"

# holders FILE: the paths granted the console, in order
holders() { sed -n 's/^\[lock\] \(.*\) has the console:.*/\1/p' "$1"; }
queued() { sed -n 's/^\[lock\] \(.*\) \(waits\|wants the console\):.*/\1/p' "$1"; }

# ---------------------------------------------------------------- FIFO order
fifo_round() { # fifo_round NAME N
    name=$1 n=$2
    set --
    k=0
    while [ $k -lt "$n" ]; do set -- "$@" bp; k=$((k + 1)); done
    start_tree "$name" "$@"
    k=0
    while [ "$(grep -c 'waits for the console' "$tmp/$name.log")" -lt "$n" ] && [ $k -lt 250 ]; do
        sleep 0.02; k=$((k + 1))
    done
    attach "$name"
    k=1 ok_io=1
    while [ $k -le "$n" ]; do
        wait_for "^\(.*\) $" "$con" 1 # a prompt line is not printed on a pipe: ignore
        wait_for "has the console" "$con" 5
        holder=$(holders "$con" | sed -n "${k}p")
        [ -n "$holder" ] || { fail "$name: session $k never got the console: $(cat "$con")"; break; }
        send "log info"
        if ! wait_for "log level of $holder is now info" "$con" 5; then
            ok_io=0
            fail "$name: input for $holder did not reach it: $(tail -5 "$con")"
        fi
        send c
        wait_for "continuing $holder" "$con" 5 || ok_io=0
        k=$((k + 1))
    done
    got=$(holders "$con" | tr '\n' ' ')
    want=$(queued "$con" | tr '\n' ' ')
    if [ "$got" = "$want" ] && [ "$(holders "$con" | sort -u | wc -l)" -eq "$n" ]; then
        ok "$name: $n breakpoints granted in request order ($got)"
    else
        fail "$name: granted '$got', queued '$want'"
    fi
    # "N more waiting" counts those behind the holder just granted: never
    # the one the console is about to pass to (it said "1 more" and then
    # granted that very one, leaving none).
    bad=$(awk -v n="$n" '/^\[lock\] [0-9]+ more waiting/ { if ($2 != n - g || !granted) print; next }
        /^\[lock\] .* has the console:/ { g++; granted = 1; next }
        /^\[lock\] / { granted = 0 }' "$con")
    [ -z "$bad" ] && ok "$name: each grant says how many still wait behind it" ||
        fail "$name: wrong counts: $bad"
    # No interleaving: between a holder's grant and its release, every
    # answer names that holder only.
    bad=$(awk '/ has the console:/ { h = $2 } /^log level of / { if ($4 != h) print }
               /^continuing / { if ($2 != h) print }' "$con")
    if [ -z "$bad" ] && [ $ok_io = 1 ]; then
        ok "$name: each holder's input and output are its own, never interleaved"
    else
        fail "$name: answers from the wrong actor: $bad"
    fi
    wait_for "after breakpoint" "$tmp/$name.log" 5
    [ "$(grep -c 'after breakpoint: ok' "$tmp/$name.log")" -eq "$n" ] &&
        ok "$name: every breakpoint returned 0 after continue" ||
        fail "$name: not every breakpoint returned: $(grep breakpoint "$tmp/$name.log")"
    stop_tree
}
fifo_round fifo2 2
fifo_round fifo5 5

# ---------------------------------------------------------------- holder killed
start_tree killed bp bp
k=0
while [ "$(grep -c 'waits for the console' "$tmp/killed.log")" -lt 2 ] && [ $k -lt 250 ]; do sleep 0.02; k=$((k + 1)); done
attach killed
wait_for "^-- .*pid [0-9]+\) --" "$con" 5
first=$(holders "$con" | head -1)
vpid=$(sed -n 's/^-- .*pid \([0-9]*\)) --$/\1/p' "$con" | head -1)
# The hand-over is timed by the root's own clock: from the kill to the
# grant it logs (ms since midnight, as the log's time stamps), not by how
# fast this shell notices, which a loaded machine slows by more than the
# hand-over itself.
ms_of_day() { awk -F'[:.]' '{ print (($1 * 60 + $2) * 60 + $3) * 1000 + $4 }'; }
t0=$(date +%H:%M:%S.%3N | ms_of_day)
kill -9 "$vpid"
k=0
while [ "$(holders "$con" | wc -l)" -lt 2 ] && [ $k -lt 500 ]; do sleep 0.005; k=$((k + 1)); done
second=$(holders "$con" | sed -n 2p)
wait_for "debugger: $second has the console" "$tmp/killed.log" 5
t1=$(grep "debugger: $second has the console" "$tmp/killed.log" | tail -1 | cut -c1-12 | ms_of_day)
ms=$(((t1 - t0 + 86400000) % 86400000))
if [ -n "$second" ] && [ "$second" != "$first" ] && [ $ms -le 100 ]; then
    ok "holder killed: $second has the console ${ms} ms after kill -9 of $first"
else
    fail "holder killed: next holder '$second' after ${ms} ms: $(cat "$con")"
fi
grep -q "died holding the console" "$con" && ok "holder killed: the console says it died" ||
    fail "holder killed: no word of it at the console: $(cat "$con")"
send c
stop_tree

# ---------------------------------------------------------------- remote break
if [ $tsan = 1 ]; then
    # TSan holds a signal back until the thread enters one of its
    # interceptors, which a while(1) never does.
    skip "remote break on while(1): ThreadSanitizer never delivers a signal to a spinning thread"
else
start_tree spin spin
out=$("$canopy" break spin spin-1 2>&1) && rc=0 || rc=$?
[ $rc = 0 ] && ok "canopy break: accepted ($out)" || fail "canopy break: exit $rc: $out"
attach spin
wait_for "has the console" "$con" 5
send bt
if wait_for "#[0-9]+ +spin_forever at .*debug_tree.c" "$con" 10; then
    ok "remote break on while(1): bt shows spin_forever"
else
    fail "remote break: no spin_forever in bt: $(cat "$con")"
fi
grep -Eq "^1 of 1 other threads stopped" "$con" && ok "remote break: the spinning thread was stopped" ||
    fail "remote break: threads not stopped: $(grep 'threads stopped' "$con")"
spid=$(sed -n 's/^-- .*pid \([0-9]*\)) --$/\1/p' "$con" | head -1)
send cancel
wait_for "cancelling spin/spin-1 once you continue" "$con" 5
send c
wait_for "gave the console back" "$con" 5 && ok "remote break: continue releases the console" ||
    fail "remote break: no release after continue: $(tail -3 "$con")"
i=0
while kill -0 "$spid" 2>/dev/null && [ $i -lt 60 ]; do sleep 0.05; i=$((i + 1)); done
kill -0 "$spid" 2>/dev/null && fail "remote break: 'cancel' then continue did not end the actor" ||
    ok "remote break: 'cancel' then continue ends the spinning actor"
out=$("$canopy" break spin no-such-actor 2>&1) && rc=0 || rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "no actor 'no-such-actor'" &&
    ok "canopy break: an unknown actor is a clear error" || fail "canopy break unknown: exit $rc: $out"
stop_tree
fi

# ---------------------------------------------------------------- the root itself
# The root is an actor too: its own session's messages never leave it.
# An actor at a breakpoint holds the console; the root waits behind it;
# :release forces the first out, the root gets the console, and its
# continue hands nothing on and leaves the tree running.
start_tree rootdbg bp
wait_for "waits for the console" "$tmp/rootdbg.log" 5
"$canopy" break rootdbg rootdbg >/dev/null 2>&1
attach rootdbg
wait_for "rootdbg/bp-1 has the console" "$con" 5
wait_for "rootdbg waits: break requested" "$con" 5
send ":release"
wait_for "^\[lock\] rootdbg has the console" "$con" 5 &&
    ok "root: :release forces the holder out and the root gets the console" ||
    fail "root: no hand-over on :release: $(cat "$con")"
wait_for "after breakpoint: ok" "$tmp/rootdbg.log" 5 &&
    ok "root: the force-released breakpoint returned" ||
    fail "root: the force-released actor did not continue"
send "routes"
wait_for "bp-1" "$con" 5
send c
wait_for "rootdbg gave the console back" "$con" 5 && sleep 0.3
if kill -0 "$pid" 2>/dev/null && [ "$(grep -c 'session over' "$tmp/rootdbg.log")" -eq 2 ]; then
    ok "root: continue ends the root's own session once, and the tree runs on"
else
    fail "root: after continue: $(tail -5 "$tmp/rootdbg.log")"
fi
stop_tree

# ---------------------------------------------------------------- deadlock
# Two threads deadlocked on each other's mutex: a break stops both, and bt
# shows each in lock_both, blocked in pthread_mutex_lock.
if [ $tsan = 1 ]; then
    skip "deadlock: ThreadSanitizer holds signals back from threads blocked in a system call"
else
start_tree dead deadlock
sleep 0.3
"$canopy" break dead deadlock-1 >/dev/null 2>&1
attach dead
wait_for "has the console" "$con" 5
# The banner follows the grant line: wait for it, do not race it.
wait_for "^2 of 2 other threads stopped" "$con" 10 && ok "deadlock: a break stops both deadlocked threads" ||
    fail "deadlock: $(grep 'threads stopped' "$con")"
send bt
wait_for "lock_both at .*debug_tree.c" "$con" 10
sleep 0.5
n=$(grep -Ec "#[0-9]+ +lock_both at .*debug_tree.c" "$con")
[ "$n" -ge 2 ] && grep -Eq "pthread_mutex_lock|__lll_lock_wait" "$con" &&
    ok "deadlock: bt shows both threads waiting for a mutex in lock_both" ||
    fail "deadlock: lock_both in $n stacks: $(tail -20 "$con")"
ask "bt 1x" "bt: '1x' is not a thread id" "bt: a thread id with more after it is refused"
send c
stop_tree
fi

# ---------------------------------------------------------------- serve-only
# A child without an entry runs its broker on its main thread; before its
# first call it has no other thread, and bt says so rather than nothing.
start_tree srv serve
"$canopy" break srv serve-1 >/dev/null 2>&1
attach srv
wait_for "has the console" "$con" 5
wait_for "^0 of 0 other threads stopped" "$con" 10 && ok "serve-only: a break finds no thread but the broker" ||
    fail "serve-only: $(grep 'threads stopped' "$con")"
ask "bt" "bt: no thread to show: only the broker runs here" "serve-only: bt says why it shows no thread"
send c
stop_tree

# ---------------------------------------------------------------- two consoles
# A line typed at one console shows at the others after the holder's
# prompt, so what they see answers something they can read; the console
# that typed it shows it once.
start_tree two bp
attach two
rm -f "$tmp/in2"
mkfifo "$tmp/in2"
"$canopy" attach --console two <"$tmp/in2" >"$tmp/two.con2" 2>&1 &
cpid2=$!
exec 4>"$tmp/in2"
wait_for "has the console" "$con" 5
wait_for "has the console" "$tmp/two.con2" 5
send "threads"
wait_for "^\(two/bp-1\) threads$" "$tmp/two.con2" 5 && wait_for "main +debugger" "$tmp/two.con2" 5 &&
    [ "$(grep -n '^(two/bp-1) threads$' "$tmp/two.con2" | head -1 | cut -d: -f1)" -lt \
        "$(grep -En 'main +debugger' "$tmp/two.con2" | head -1 | cut -d: -f1)" ] &&
    ok "two consoles: a line typed at one shows at the other, before its answer" ||
    fail "two consoles: the other console saw: $(tail -5 "$tmp/two.con2")"
wait_for "main +debugger" "$con" 5
[ "$(grep -c '^(two/bp-1) threads$' "$con")" -eq 1 ] &&
    ok "two consoles: the console that typed the line shows it once" ||
    fail "two consoles: the typing console shows it $(grep -c '^(two/bp-1) threads$' "$con") times"
send c
exec 4>&-
wait "$cpid2" 2>/dev/null
wait_for "debugger: console detached: [^ ]+ \(pid $cpid2\); 1 still attached" "$tmp/two.log" 5 &&
    ok "two consoles: the root logs a console's detach, and how many are left" ||
    fail "two consoles: no detach logged: $(grep debugger: "$tmp/two.log" | tail -3)"
stop_tree

# ---------------------------------------------------------------- threads
# After a break, the REPL's threads table says the others are stopped, and
# what they were in: they no longer wait on what the runtime last saw.
start_tree parked idle
"$canopy" break parked idle-1 >/dev/null 2>&1
attach parked
wait_for "has the console" "$con" 5
ask "threads" "^[0-9]+ +main +stopped .*stopped by the debugger \(it was in: sleep\)" \
    "threads: after a break, a thread in cn_sleep shows as stopped, and what it was in"
send c
stop_tree

# ---------------------------------------------------------------- canopy bt
# Stacks of a running tree without a session: nothing queues for the
# console, and the threads run on.
start_tree stacks spin bp
wait_for "waits for the console" "$tmp/stacks.log" 5
out=$("$canopy" bt stacks 2>&1) && rc=0 || rc=$?
if [ $tsan = 1 ]; then
    skip "canopy bt of a blocked thread: ThreadSanitizer holds signals back from threads blocked in a system call"
else
    expect_out "#[0-9]+ +entry_bp at .*debug_tree.c:[0-9]+" "canopy bt: the breakpoint's thread shows the function that called cn_breakpoint"
fi
expect_out "thread [0-9]+ .*main debugger for" "canopy bt: each stack says what the runtime knows the thread does"
expect_out "besides its broker, each stopped only while its stack was read$" \
    "canopy bt: the header says the threads ran on"
if printf '%s\n' "$out" | grep -q "not stopped"; then
    fail "canopy bt: each thread still says 'not stopped': $out"
else
    ok "canopy bt: no thread is labelled 'not stopped' (the header says it once)"
fi
if [ $tsan = 1 ]; then
    skip "canopy bt of while(1): ThreadSanitizer never delivers a signal to a spinning thread"
else
    expect_out "#0 +spin_forever at .*debug_tree.c" "canopy bt: the spinning thread's frame #0 is spin_forever"
fi
[ "$(grep -c 'waits for the console' "$tmp/stacks.log")" -eq 1 ] &&
    ok "canopy bt: no debugger session is opened for it" ||
    fail "canopy bt: it queued for the console: $(grep 'waits for' "$tmp/stacks.log")"
# canopy ctx names a breakpoint as such, with no made-up peer and cid
# (it said "debugger in ... on stacks cid 0", the console's lock).
out=$("$canopy" ctx stacks bp-2 2>&1)
expect_out "thread [0-9]+ \(main\): stopped at a breakpoint for" "canopy ctx: a thread at a breakpoint says so"
if printf '%s\n' "$out" | grep -q "cid 0"; then fail "canopy ctx: a breakpoint's thread shows cid 0: $out"; else ok "canopy ctx: no cid for a breakpoint's thread"; fi
out=$("$canopy" bt stacks bp-2 --json 2>&1)
expect_out '^\[\{"actor":2,"path":"stacks/bp-2","stacks":\[\{"tid":[0-9]+' "canopy bt --json: one actor's stacks"
out=$("$canopy" dump stacks 2>&1)
expect_out '"stacks":\[\{"tid"' "canopy dump: the bundle holds the stacks"
out=$("$canopy" bt stacks no-such 2>&1) && rc=0 || rc=$?
[ $rc = 1 ] && expect_out "no actor 'no-such'" "canopy bt: an unknown actor is a clear error" ||
    fail "canopy bt unknown actor: exit $rc: $out"
stop_tree

# ---------------------------------------------------------------- crash post-mortem
if [ $sanitized = 1 ]; then
    skip "crash post-mortem: the sanitizer owns SIGSEGV in this build"
else
    CANOPY_DEBUG=1 start_tree crash mid
    wait_for "waits for the console" "$tmp/crash.log" 10
    attach crash
    wait_for "has the console" "$con" 5
    grep -q "crash/mid-1/leaf has the console: crash: SIGSEGV" "$con" &&
        ok "crash: the grandchild queued for a post-mortem" ||
        fail "crash: no post-mortem session: $(cat "$con")"
    grep -Eq "crash/mid-1/leaf: +#[0-9]+ +crash_here at .*debug_tree.c:[0-9]+" "$tmp/crash.log" &&
        ok "crash: in debug mode too, the log's stack has function and line" ||
        fail "crash: the log's stack in debug mode: $(grep -A3 'crashed' "$tmp/crash.log" | head -5)"
    send bt
    wait_for "#0 +crash_here at .*debug_tree.c" "$con" 10 &&
        ok "crash: post-mortem bt names crash_here as frame #0" ||
        fail "crash: bt does not name crash_here: $(cat "$con")"
    send c
    wait_for "exited on signal 11" "$tmp/crash.log" 5 &&
        ok "crash: after continue the parent sees SIGSEGV" ||
        fail "crash: parent did not see signal 11: $(tail -5 "$tmp/crash.log")"
    stop_tree
    # Not in debug mode: no session, but the stack in the log names the
    # function and line, which the broker looks up before the actor dies.
    start_tree crashlog mid
    wait_for "exited on signal 11" "$tmp/crashlog.log" 10
    grep -Eq "crashlog/mid-1/leaf: +#[0-9]+ +crash_here at .*debug_tree.c:[0-9]+" "$tmp/crashlog.log" &&
        ok "crash: outside debug mode the log's stack has function and line" ||
        fail "crash: the log's stack is not symbolized: $(grep -A8 'crashed:' "$tmp/crashlog.log")"
    stop_tree
fi

# ---------------------------------------------------------------- piped lines
# Lines piped into the console: the answers come after the input has
# ended, and the console waits for them (it left before they came).
start_tree piped bp
wait_for "waits for the console" "$tmp/piped.log" 5
out=$(printf 'threads\nhelp 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n' |
    timeout 30 "$canopy" attach --console piped 2>&1)
printf '%s\n' "$out" | grep -Eq "main +debugger" &&
    ok "piped: the answer to a piped line is printed before the console leaves" ||
    fail "piped: no answer: $out"
printf '%s\n' "$out" | grep -q "help: the line has more than 16 words or 1023 characters; nothing was run" &&
    ok "REPL: a line of too many words is refused, not run cut short" ||
    fail "REPL: a long line: $out"
out=$(printf '\nslow\n\n' | timeout 30 "$canopy" attach --console piped 2>&1)
printf '%s\n' "$out" | grep -q "^slow answer" &&
    ok "piped: a slow answer (1.5 s) is waited for, blank lines or not" ||
    fail "piped: the console left before a slow answer: $out"
stop_tree

# canopy cancel of an actor at a breakpoint: it goes once its session
# ends, and the cancel says so (lint finds nothing wrong to point at).
start_tree cx bp
wait_for "waits for the console" "$tmp/cx.log" 5
out=$("$canopy" cancel cx cx/bp-1 --timeout 1500 2>&1) && rc=0 || rc=$?
[ $rc = 1 ] && printf '%s\n' "$out" | grep -q "cx/bp-1 (id [0-9]*, pid [0-9]*) is stopped for the debugger (waiting for the console), and it goes when its session ends ('canopy attach cx', then c)" &&
    ok "cancel: an actor queued for the console is said to wait for its session" ||
    fail "cancel of an actor in the debugger (exit $rc): $out"
stop_tree

# ---------------------------------------------------------------- task error
# In debug mode a task that fails stops in the debugger before its error
# is relayed; after continue the caller gets the error.
CANOPY_DEBUG=1 start_tree taskerr fail
attach taskerr
wait_for "has the console: task error \(post-mortem\): boom\(\) failed: CN_EIO: disk on fire" "$con" 5 &&
    ok "task error: the failing task stops in the debugger, saying what failed" ||
    fail "task error: no post-mortem session: $(cat "$con")"
grep -q "boom:" "$tmp/taskerr.log" && fail "task error: the error was relayed before continue" ||
    ok "task error: the caller has not had the error yet"
send bt
wait_for "#0 +fail_here at .*debug_tree.c" "$con" 10 &&
    ok "task error: bt shows where it called cn_call_fail" ||
    fail "task error: bt: $(tail -8 "$con")"
send c
wait_for "fail-1: boom: CN_EREMOTE: disk on fire" "$tmp/taskerr.log" 5 &&
    ok "task error: after continue the caller gets the error" ||
    fail "task error: caller: $(grep boom "$tmp/taskerr.log")"
stop_tree

# ---------------------------------------------------------------- the program's own
start_tree mine bp
attach mine
wait_for "has the console" "$con" 5
send vars
wait_for "^bp_hits = 1$" "$con" 5 && ok "vars: shows the program's variable" ||
    fail "vars: $(tail -4 "$con")"
send "hello big world"
wait_for "^hello from mine/bp-1 \(bp\): big world$" "$con" 5 &&
    ok "a registered command runs with its arguments" || fail "user command: $(tail -4 "$con")"
send "hello a b c"
wait_for "^hello: invalid argument$" "$con" 5 && ok "a registered command's error is shown" ||
    fail "user command error: $(tail -4 "$con")"
send help
wait_for "^  hello +say hello" "$con" 5 && ok "help lists the program's commands" ||
    fail "help: $(tail -6 "$con")"
send c
grep -q "registering 'bt': CN_EINVAL; 'bad name': CN_EINVAL" "$tmp/mine.log" &&
    ok "a built-in's name or a bad name cannot be registered" ||
    fail "registration: $(grep registering "$tmp/mine.log")"
stop_tree

# ---------------------------------------------------------------- no console
start_tree lonely bp
wait_for "attach with: canopy attach lonely" "$tmp/lonely.log" 5 &&
    ok "no console: the root says how to attach" || fail "no console: no hint: $(cat "$tmp/lonely.log")"
sleep 1
grep -q "after breakpoint" "$tmp/lonely.log" && fail "no console: the breakpoint did not wait" ||
    ok "no console: the breakpoint waits"
attach lonely
wait_for "has the console" "$con" 5 && ok "no console: a console attached later gets the REPL" ||
    fail "no console: nothing granted on attach: $(cat "$con")"
send c
wait_for "after breakpoint: ok" "$tmp/lonely.log" 5 && ok "no console: continue resumes it" ||
    fail "no console: not resumed"
stop_tree

# ---------------------------------------------------------------- cancel waits
start_tree patient bp
attach patient
wait_for "has the console" "$con" 5
"$canopy" cancel patient --timeout 500 >/dev/null 2>&1
sleep 2
if kill -0 "$pid" 2>/dev/null && wait_for "waiting for its debugger session" "$tmp/patient.log" 1; then
    ok "cancel: the tree waits for the actor in the debugger instead of killing it"
else
    fail "cancel: the debugged actor was not waited for: $(tail -5 "$tmp/patient.log")"
fi
send c
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
kill -0 "$pid" 2>/dev/null && fail "cancel: the tree did not finish after continue" ||
    ok "cancel: after continue the cancel completes"
grep -q "after breakpoint: cancelled" "$tmp/patient.log" &&
    ok "cancel: cn_breakpoint returns CN_ECANCELED when the session ended for a cancel" ||
    fail "cancel: cn_breakpoint's return: $(grep 'after breakpoint' "$tmp/patient.log")"
exec 3>&-
wait "$cpid" 2>/dev/null
cpid=
pid=

# clean_prompt_after_queue HOLDER WHERE: after ':queue' in tmux session
# $s, the line shows once and the screen ends with a bare prompt (the
# prompt came back with the line on it again: "(HOLDER) :queue(HOLDER)").
clean_prompt_after_queue() {
    sleep 0.3
    screen=$(tm capture-pane -p -t "$s")
    if [ "$(printf '%s\n' "$screen" | grep -c ':queue')" -eq 1 ] &&
        printf '%s\n' "$screen" | grep -v '^$' | tail -1 | grep -q "^($1) *\$"; then
        ok "$2: the console's own answer, then a clean prompt"
    else
        fail "$2: after :queue: $(printf '%s\n' "$screen" | grep -v '^$' | tail -4)"
    fi
}

# ---------------------------------------------------------------- a real terminal
if command -v tmux >/dev/null 2>&1; then
    tm_keep
    start_tree term bp
    s=cn-dbg-$$
    tm new-session -d -s "$s" -x 120 -y 40 "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $canopy attach --console term"
    pane_wait "$s" "\(term/bp-1\) "
    tm send-keys -t "$s" "threads" Enter
    pane_wait "$s" "debugger"
    screen=$(tm capture-pane -p -t "$s")
    if printf '%s\n' "$screen" | grep -q "^(term/bp-1) threads" &&
        printf '%s\n' "$screen" | grep -Eq "main +debugger"; then
        ok "terminal: the prompt names the holder and the REPL answers"
    else
        fail "terminal: screen was: $screen"
    fi
    tm send-keys -t "$s" ":queue" Enter
    pane_wait "$s" "^waiting: nobody"
    clean_prompt_after_queue "term/bp-1" "terminal"
    tm send-keys -t "$s" C-c
    pane_wait "$s" "^\^C: no command is running"
    if tm capture-pane -p -t "$s" | grep -q "^\^C: no command is running" && kill -0 "$pid" 2>/dev/null &&
        ! grep -q "shutting down" "$tmp/term.log"; then
        ok "terminal: Ctrl-C at the console interrupts the REPL and cancels nothing"
    else
        fail "terminal: after Ctrl-C: $(tm capture-pane -p -t "$s" | tail -5) / $(tail -3 "$tmp/term.log")"
    fi
    sleep 2.2 # so that the next Ctrl-C is not a second one
    tm send-keys -t "$s" "c" Enter
    wait_for "after breakpoint: ok" "$tmp/term.log" 5 && ok "terminal: continue typed in tmux resumes the actor" ||
        fail "terminal: not resumed: $(tm capture-pane -p -t "$s")"
    tm send-keys -t "$s" C-d
    tm kill-session -t "$s" 2>/dev/null
    stop_tree

    # No console client, and the root runs in a terminal: that terminal is
    # the console, for as long as an actor holds it.
    tm new-session -d -s "$s" -x 120 -y 40 "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $tree_bin --name=own bp 2>$tmp/own.log; sleep 30"
    pane_wait "$s" "^\(own/bp-1\) "
    tm send-keys -t "$s" "threads" Enter
    pane_wait "$s" "main +debugger"
    screen=$(tm capture-pane -p -t "$s")
    printf '%s\n' "$screen" | grep -q "^(own/bp-1) threads" && printf '%s\n' "$screen" | grep -Eq "main +debugger" &&
        ok "root's terminal: with no console attached, it is the console" ||
        fail "root's terminal: screen was: $screen"
    tm send-keys -t "$s" ":queue" Enter
    pane_wait "$s" "^holder:  own/bp-1: breakpoint at debug_tree.c:[0-9]+ in entry_bp\(\) \(for [0-9.]+m?s\)" &&
        tm capture-pane -p -t "$s" | grep -q "^waiting: nobody" &&
        ok "root's terminal: :queue lists the holder and the waiters" ||
        fail "root's terminal: :queue: $(tm capture-pane -p -t "$s" | tail -4)"
    clean_prompt_after_queue "own/bp-1" "root's terminal"
    tm send-keys -t "$s" "c" Enter
    wait_for "after breakpoint: ok" "$tmp/own.log" 5 && ok "root's terminal: continue typed there resumes the actor" ||
        fail "root's terminal: not resumed: $(tm capture-pane -p -t "$s")"
    tm send-keys -t "$s" C-c
    k=0
    while pgrep -f -- "^$tree_bin --name=own" >/dev/null && [ $k -lt 100 ]; do sleep 0.05; k=$((k + 1)); done
    pgrep -f -- "^$tree_bin --name=own" >/dev/null && fail "root's terminal: Ctrl-C did not end the tree" ||
        ok "root's terminal: given back after the session, Ctrl-C cancels the tree as usual"
    tm kill-session -t "$s" 2>/dev/null

    # A double Ctrl-C at the console escapes: the whole tree is killed.
    start_tree escape bp
    wait_for "waits for the console" "$tmp/escape.log" 5
    kid=$(pgrep -P "$pid" | head -1)
    tm new-session -d -s "$s" -x 120 -y 40 "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $canopy attach --console escape; sleep 30"
    pane_wait "$s" "\(escape/bp-1\) "
    double_ctrl_c "$s"
    k=0
    while { kill -0 "$pid" 2>/dev/null || kill -0 "$kid" 2>/dev/null; } && [ $k -lt 60 ]; do sleep 0.05; k=$((k + 1)); done
    if ! kill -0 "$pid" 2>/dev/null && [ -n "$kid" ] && ! kill -0 "$kid" 2>/dev/null; then
        ok "terminal: a double Ctrl-C at the console kills the tree, the actor in the debugger too"
    else
        fail "terminal: after a double Ctrl-C: root alive=$(kill -0 "$pid" 2>/dev/null && echo y), child $kid alive=$(kill -0 "$kid" 2>/dev/null && echo y)"
        kill -9 "$pid" "$kid" 2>/dev/null # it would wait for the session for ever
    fi
    tm kill-session -t "$s" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=

    # The root's terminal was the console, then a client attached and
    # killed the tree with a double Ctrl-C: the root's terminal is left
    # as it was (it was left without echo, in libedit's raw mode).
    s2=$s-raw # not "." : tmux reads "a.b" as session a, pane b
    tm new-session -d -s "$s2" -x 120 -y 40 "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $tree_bin --name=raw bp 2>$tmp/raw.log; stty -a >$tmp/raw.stty; sleep 30"
    pane_wait "$s2" "^\(raw/bp-1\) "
    tm new-session -d -s "$s" -x 120 -y 40 "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $canopy attach --console raw; sleep 30"
    pane_wait "$s" "\(raw/bp-1\) "
    double_ctrl_c "$s"
    k=0
    while [ ! -s "$tmp/raw.stty" ] && [ $k -lt 100 ]; do sleep 0.05; k=$((k + 1)); done
    grep -Eq "(^| )icanon( |$)" "$tmp/raw.stty" && grep -Eq "(^| )echo( |$)" "$tmp/raw.stty" &&
        ok "terminal: the root's terminal has echo and line editing back after the tree is killed" ||
        fail "terminal: the root's terminal after the kill: $(grep -o -- '-*icanon\|-*echo ' "$tmp/raw.stty" | tr '\n' ' ')"
    tm kill-session -t "$s" 2>/dev/null
    tm kill-session -t "$s2" 2>/dev/null
else
    skip "terminal: tmux is not installed"
fi

finish test_debugger
