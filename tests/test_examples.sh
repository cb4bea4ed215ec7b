#!/bin/sh
# test_examples.sh: the small examples in contrib/examples/, run as a user
# runs them: from a script, with no terminal. Each must exit 0 by itself,
# within 5 s (15 s under a sanitizer), print the lines its header promises,
# and leave no actor process behind.
#   - hello: both children answer greet, and are cancelled;
#   - cousins: each worker reaches the worker under the other supervisor
#     by its id, and the ids in the answers are the ones the supervisors
#     reported;
#   - stream: the producer runs out of credit only after the consumer's
#     window is used up, is blocked for most of the run, and everything
#     comes back the other way;
#   - cancel: the CN_EREMOTE error object names its origin, function and
#     message; the cancelled context acknowledges; a cancelled child is
#     CN_EDEAD at once;
#   - debugger: without a console it does not stop and exits 0; with
#     `crash` the crasher's death comes back as CN_EDEAD; with `break` and
#     `canopy attach --console`, the breakpoint is served (vars, bt, c);
#     in debug mode the crash stops for a post-mortem first.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tree.sh" # B, canopy, tmp, CANOPY_RUNTIME_DIR, wait_for, attach, send
ex=$B/examples
# The user's own settings must not change what the examples do.
unset CANOPY_DEBUG CANOPY_LOG_LEVEL CANOPY_LOG_FILE CANOPY_TREE CANOPY_CONSOLE CANOPY_ATTACH
limit_ms=5000
[ $sanitized = 1 ] && limit_ms=15000
seq=0

# Every actor of a run carries CN_EXAMPLE_RUN=TAG in its environment:
# cn_spawn passes on everything but CANOPY_* variables, so the mark reaches
# grandchildren too, and is how a leftover is found after the root exits.
leftovers() { # leftovers TAG: pids of live processes of that run
    for f in $(grep -lzx "CN_EXAMPLE_RUN=$1" /proc/[0-9]*/environ 2>/dev/null); do
        p=${f#/proc/}
        p=${p%/environ}
        s=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
        case $s in "" | Z | X) ;; *) echo "$p" ;; esac
    done
}
check_left() { # check_left DESC TAG: nothing of the run is left, within 2 s
    i=0
    while [ -n "$(leftovers "$2")" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
    left=$(leftovers "$2")
    if [ -z "$left" ]; then
        ok "$1: no process left behind"
    else
        fail "$1: still running: $left"
        kill -9 $left 2>/dev/null
    fi
}
run_all_tags=
cleanup_runs() {
    for t in $run_all_tags; do
        p=$(leftovers "$t")
        [ -n "$p" ] && kill -9 $p 2>/dev/null
    done
    cleanup # lib_tree.sh's
}
trap cleanup_runs EXIT

# run DESC NAME ARGS...: runs the example without a terminal; its stdout is
# in $out and $tmp/NAME.out, its log (stderr) in $tmp/NAME.log. Checks the
# exit status, the time taken and that nothing is left behind.
# new_tag: a fresh marker for one run's processes, in $tag.
new_tag() {
    seq=$((seq + 1))
    tag=$$-$seq
    run_all_tags="$run_all_tags $tag"
}

run() {
    desc=$1 name=$2
    shift 2
    new_tag
    t0=$(date +%s%N)
    CN_EXAMPLE_RUN=$tag timeout -k 2 30 "$ex/$name" "$@" </dev/null >"$tmp/$name.out" \
        2>"$tmp/$name.log" && rc=0 || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    out=$(cat "$tmp/$name.out")
    if [ $rc = 0 ]; then
        ok "$desc: exits 0 (${ms} ms)"
    else
        fail "$desc: exit status $rc; output: $out; log: $(tail -20 "$tmp/$name.log")"
    fi
    if [ $ms -le $limit_ms ]; then ok "$desc: done within $limit_ms ms"; else fail "$desc: took $ms ms"; fi
    check_left "$desc" "$tag"
    case " $* " in *" crash "*) ;; *) no_reports "$desc" "$tmp/$name.log" ;; esac
}
# no_reports DESC LOG: no sanitizer report from any actor (a child's stderr
# is in the root's log; it would not change the root's exit status).
no_reports() {
    if grep -Eq "ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:" "$2"; then
        fail "$1: a sanitizer report: $(grep -E -A5 'Sanitizer|runtime error:' "$2" | head -20)"
    fi
}
has() { expect_out "$@"; } # has PATTERN DESC: in the example's stdout
in_log() {                 # in_log NAME PATTERN DESC
    if grep -Eq -- "$2" "$tmp/$1.log"; then ok "$3"; else fail "$3: no /$2/ in the log: $(cat "$tmp/$1.log")"; fi
}

for e in hello cousins stream cancel debugger; do
    [ -x "$ex/$e" ] || fail "no $ex/$e: make B=$B examples"
done

# ---------------------------------------------------------------- hello
run hello hello
has "^spawned child-1 as actor [0-9]+$" "hello: child-1 spawned"
has "^child-1 answered: hello Ada, from hello/child-1 \(pid [0-9]+\)$" "hello: child-1 answers greet"
has "^child-2 answered: hello Grace, from hello/child-2 \(pid [0-9]+\)$" "hello: child-2 answers greet"
has "^cancelled child-1: ok$" "hello: child-1 cancelled"
has "^cancelled child-2: ok$" "hello: child-2 cancelled"
has "^done$" "hello: gets to the end"
in_log hello "hello/child-2: greeted Grace" "hello: a child's cn_log reaches the root's log"

# ---------------------------------------------------------------- cousins
run cousins cousins
# "sup-S is actor A; its workers are actors W0 and W1"
ids() { sed -n "s/^sup-$1 is actor \([0-9]*\); its workers are actors \([0-9]*\) and \([0-9]*\)$/\\$2/p" "$tmp/cousins.out"; }
s0=$(ids 0 1) w00=$(ids 0 2) w01=$(ids 0 3) s1=$(ids 1 1) w10=$(ids 1 2) w11=$(ids 1 3)
if [ -n "$s0" ] && [ -n "$w11" ]; then ok "cousins: both supervisors report their workers"; else fail "cousins: no roster in: $out"; fi
has "^cousins/sup-0/worker-0 -> cousins/sup-1/worker-1 \(actor $w11, child of actor $s1\), asked by actor $w00$" \
    "cousins: sup-0/worker-0 reaches sup-1/worker-1 by its id"
has "^cousins/sup-1/worker-0 -> cousins/sup-0/worker-1 \(actor $w01, child of actor $s0\), asked by actor $w10$" \
    "cousins: sup-1/worker-0 reaches sup-0/worker-1 by its id"
has "^cancelled sup-0 and its workers: ok$" "cousins: sup-0's branch cancelled"
has "^cancelled sup-1 and its workers: ok$" "cousins: sup-1's branch cancelled"
if grep -q "cousins/sup-1/worker-1: shutting down: cancelled with its parent" "$tmp/cousins.log"; then
    ok "cousins: the workers were cancelled by their supervisors"
else
    fail "cousins: no worker's cancel in the log: $(cat "$tmp/cousins.log")"
fi

# ---------------------------------------------------------------- stream
run stream stream
has "as our end sees it: 4 messages" "stream: stats show the consumer's window of 4"
first=$(sed -n 's/^send #\([0-9]*\) was the first to find no credit left$/\1/p' "$tmp/stream.out")
if [ -n "$first" ] && [ "$first" -ge 5 ]; then
    ok "stream: the first 4 sends had credit; send #$first was the first to wait"
else
    fail "stream: first send without credit '$first': $out"
fi
blocked=$(sed -n 's/^the producer was blocked for \([0-9]*\) ms.*/\1/p' "$tmp/stream.out")
# 40 messages at 25 ms each through a window of 4: about 900 ms of waiting.
if [ -n "$blocked" ] && [ "$blocked" -ge 400 ]; then
    ok "stream: the producer was blocked by backpressure ($blocked ms)"
else
    fail "stream: producer blocked '$blocked' ms: $out"
fi
for n in 10 20 30 40 820; do has "^from the consumer: $n$" "stream: $n came back the other way"; done
most=$(sed -n 's/.*at most \([0-9]*\) more waited in its buffer (window 4)$/\1/p' "$tmp/stream.out")
if grep -q "^consumer took 40 messages, sum 820;" "$tmp/stream.out" && [ -n "$most" ] && [ "$most" -le 4 ]; then
    ok "stream: all 40 arrived, and the consumer's buffer never held more than its window"
else
    fail "stream: consumer's result: $out"
fi

# ---------------------------------------------------------------- cancel
run cancel cancel
has '^1\. parse\("forty"\) returned CN_EREMOTE$' "cancel: the remote failure is CN_EREMOTE"
has "^   origin cancel/worker, function parse, code CN_EINVAL, message: 'forty' is not a number$" \
    "cancel: the error object has origin, function, code and message"
has "^2\. cn_ctx_cancel returned CN_OK; cancel state acknowledged \(cn_ctx_cancel \(by cancel\)\)$" \
    "cancel: the context's cancel is acknowledged"
has "^   the context ended with CN_ECANCELED: crunch stopped after [0-9]+ steps: cn_ctx_cancel \(by cancel\)$" \
    "cancel: the callee saw cn_call_cancelled and said so"
in_log cancel "cancel/worker: crunch: cancelled after [0-9]+ steps" "cancel: the callee logged the cancel"
has "^3\. cn_cancel\(sleeper\) returned CN_OK after [0-9]+ ms$" "cancel: cn_cancel of the sleeper"
has "^   a call to it now: CN_EDEAD: " "cancel: a call to the cancelled child is CN_EDEAD"

# ---------------------------------------------------------------- debugger
run "debugger (no console)" debugger
has "^no console expected: the worker will not stop" "debugger: no console, so no stop"
has "^worker: ran without stopping" "debugger: the worker's call returns"

run "debugger crash (no console)" debugger crash
if [ $sanitized = 1 ]; then # the sanitizer reports the fault and exits
    has "^crasher: CN_EDEAD: actor [0-9]+ \(crasher\) exited" "debugger crash: the crasher's death is CN_EDEAD"
else
    has "^crasher: CN_EDEAD: actor [0-9]+ \(crasher\) exited on signal 11$" "debugger crash: CN_EDEAD names SIGSEGV"
    in_log debugger "debugger/crasher: crashed: SIGSEGV" "debugger crash: the crash's stack is in the log"
fi

# bg_debugger DESC VAR=VALUE ARGS...: the debugger example in the
# background, with VAR=VALUE in its environment, and `canopy attach
# --console` as its console once the worker waits for one.
bg_debugger() {
    desc=$1 var=$2
    shift 2
    new_tag
    env "$var" CN_EXAMPLE_RUN=$tag "$ex/debugger" "$@" </dev/null >"$tmp/dbg.out" 2>"$tmp/dbg.log" &
    pid=$!
    if wait_for "waits for the console \(breakpoint at debugger.c" "$tmp/dbg.log" 10; then
        ok "$desc: the worker waits for the console, and the root says how to attach"
    else
        fail "$desc: no breakpoint: $(cat "$tmp/dbg.out" "$tmp/dbg.log")"
    fi
    attach debugger
    if wait_for "debugger/worker has the console: breakpoint at debugger.c:[0-9]+ in work\(\)" "$con" 10; then
        ok "$desc: the breakpoint gets the console"
    else
        fail "$desc: no session at the console: $(cat "$con")"
    fi
    ask vars "^progress = 5 of 5 steps" "$desc: vars shows the worker's progress"
    ask bt "^thread [0-9]+: stopped at the breakpoint" "$desc: bt shows the stopped thread"
    ask c "^continuing debugger/worker" "$desc: continue"
}
# bg_end DESC ARG: waits (10 s at most) for the background tree to exit 0.
bg_end() {
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" && rc=0 || rc=$?
    pid=
    exec 3>&-
    wait "$cpid" 2>/dev/null
    cpid=
    out=$(cat "$tmp/dbg.out")
    [ $rc = 0 ] && ok "$1: exits 0 after continue" || fail "$1: exit status $rc: $out $(tail -5 "$tmp/dbg.log")"
    check_left "$1" "$tag"
    [ $sanitized = 1 ] && [ "$2" = crash ] || no_reports "$1" "$tmp/dbg.log"
}

bg_debugger "debugger break" CANOPY_DEBUG=0 break
bg_end "debugger break" break
has "^worker: stopped at the breakpoint and continued$" "debugger break: cn_breakpoint returned 0"

bg_debugger "debugger debug-mode crash" CANOPY_DEBUG=1 crash
if [ $sanitized = 1 ]; then
    skip "debugger post-mortem: the sanitizer owns SIGSEGV in this build"
else
    if wait_for "debugger/crasher has the console: crash: SIGSEGV" "$con" 10; then
        ok "debugger post-mortem: the crash stops at the console"
    else
        fail "debugger post-mortem: no session: $(cat "$con")"
    fi
    ask bt "^thread [0-9]+: crashed here" "debugger post-mortem: bt shows the crashed thread"
    send c
fi
bg_end "debugger debug-mode crash" crash
if [ $sanitized = 1 ]; then
    has "^crasher: CN_EDEAD: actor [0-9]+ \(crasher\) exited" "debugger debug-mode crash: CN_EDEAD"
else
    has "^crasher: CN_EDEAD: actor [0-9]+ \(crasher\) exited on signal 11$" \
        "debugger post-mortem: after continue the crasher dies of SIGSEGV"
fi

finish test_examples
