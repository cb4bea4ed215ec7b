#!/bin/sh
# test_demo.sh: the demo tree (contrib/demo/pipeline.c) end to end, as its
# README tells a user to drive it, with no terminal: start it, look at it,
# fire its triggers (from the command line and from the root's console),
# break into a worker, bt, continue, cancel the tree, and check that no
# process is left.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tree.sh"
demo=$B/demo/pipeline
slow=1
[ "$sanitized" = 1 ] && slow=3

# The pids of tree $1 (default demo), from a snapshot.
# The live actors' pids: the "actors" array, not the "exited" after it.
tree_pids() { "$canopy" tree --json "${1:-demo}" | sed 's/,"exited":.*//' | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$'; }

# Starts the demo as tree "demo" with ARGS; waits until it is up.
start_demo() {
    CANOPY_TREE=demo "$demo" "$@" </dev/null >"$tmp/demo.log" 2>&1 &
    pid=$!
    wait_for "pipeline is up" "$tmp/demo.log" $((10 * slow)) || fail "the demo did not start: $(cat "$tmp/demo.log")"
}

# ---- bad arguments are refused, with the reason
expect_rc 2 "a bad trigger is refused" "$demo" --trigger explode
expect_out "bad trigger 'explode'" "and named"
expect_rc 2 "a bad time is refused" "$demo" --trigger stall@soon
expect_rc 2 "an unknown option is refused" "$demo" --frobnicate
expect_out "usage: pipeline" "with the usage"

# ---- the tree comes up and works
start_demo --trigger stall@1 --trigger stuck@1
# The root is up once its supervisors are; they start their workers after.
i=0
until [ "$("$canopy" tree demo 2>/dev/null | grep -c "[|\`]- worker-")" = 6 ] || [ $i -ge $((100 * slow)) ]; do
    sleep 0.1
    i=$((i + 1))
done
expect_rc 0 "canopy tree shows the demo" "$canopy" tree demo
expect_out "ingest" "a supervisor is in it"
n=$(printf '%s\n' "$out" | grep -c "worker-")
[ "$n" = 6 ] && ok "six workers" || fail "$n workers, want 6: $out"
wait_for "throughput: ingest [1-9][0-9]* items/s" "$tmp/demo.log" $((10 * slow)) &&
    ok "the root logs the fan-out's figures" || fail "no throughput: $(tail "$tmp/demo.log")"
expect_rc 0 "canopy ctx shows the work streams" "$canopy" ctx demo demo/ingest
expect_out "work" "the work context is listed"
# With another tree running, a path still names its tree.
"$tree_bin" --name=other idle </dev/null >"$tmp/other.log" 2>&1 &
opid=$!
wait_for ready "$tmp/other.log" $((10 * slow))
expect_rc 0 "with two trees running, canopy ctx demo/ingest finds the tree by the path" "$canopy" ctx demo/ingest
expect_out "demo/ingest \(id 1" "and shows that actor"
kill -INT "$opid"
wait "$opid"

# ---- the command-line triggers light up the lints
i=0
while :; do
    out=$("$canopy" lint demo 2>&1)
    printf '%s\n' "$out" | grep -q stalled-stream && printf '%s\n' "$out" | grep -q stuck-cancel && break
    i=$((i + 1))
    [ $i -gt $((30 * slow)) ] && break
    sleep 0.5
done
expect_out "stalled-stream .*demo/ingest/worker-2" "stall: the lint names the stalled worker"
expect_out "stuck-cancel .*chore" "stuck: the lint names the stuck cancel"

# ---- a trigger from the root's console: crash (no debug mode: it dies,
# and its supervisor restarts it)
before=$(tree_pids | tr '\n' ' ')
expect_rc 0 "canopy break demo (the root)" "$canopy" break demo
attach demo
wait_for "^-- demo \(actor 0" "$con" $((5 * slow)) || fail "the root's session did not start: $(cat "$con")"
send "trigger explode"
wait_for "usage: trigger" "$con" 5 && ok "a bad trigger at the console says how" || fail "no usage: $(cat "$con")"
send "trigger crash render/worker-1"
wait_for "fires when the root continues" "$con" 5 && ok "the console takes the trigger" || fail "trigger: $(cat "$con")"
send "trigger stall ingest/worker-0"
wait_for "after the ones before it" "$con" 5 && ok "a second trigger queues behind the first" || fail "trigger 2: $(cat "$con")"
send "c"
wait_for "trigger stall: ingest/worker-0" "$tmp/demo.log" $((5 * slow)) &&
    grep -A1000 "trigger crash: render/worker-1" "$tmp/demo.log" | grep -q "trigger stall: ingest/worker-0" &&
    ok "both fire on continue, in order" || fail "triggers: $(grep 'trigger ' "$tmp/demo.log")"
wait_for "render: worker-1 is gone \(.*\): restarting it" "$tmp/demo.log" $((10 * slow)) &&
    ok "the crashed worker is restarted" || fail "no restart: $(tail "$tmp/demo.log")"
if [ "$sanitized" = 1 ]; then
    skip "the crash's signal: the sanitizer takes SIGSEGV and exits instead"
else
    grep -q "render: worker-1 is gone (.*signal 11)" "$tmp/demo.log" && ok "it died of SIGSEGV" ||
        fail "not SIGSEGV: $(grep 'is gone' "$tmp/demo.log")"
fi
i=0
while [ $i -lt $((50 * slow)) ]; do
    "$canopy" tree demo 2>/dev/null | grep -q "worker-1 .* running" && [ "$("$canopy" tree demo | grep -c "[|\`]- worker-")" = 6 ] && break
    i=$((i + 1))
    sleep 0.1
done
after=$(tree_pids | tr '\n' ' ')
[ "$before" != "$after" ] && [ "$(echo $after | wc -w)" = 9 ] && ok "nine actors again, one with a new pid" ||
    fail "pids before: $before, after: $after"

# ---- break into a worker, bt, continue
expect_rc 0 "canopy break a worker" "$canopy" break demo demo/render/worker-0
wait_for "^-- demo/render/worker-0 \(actor" "$con" $((5 * slow)) || fail "the worker's session did not start: $(tail "$con")"
"$canopy" tree --json demo | grep -q '"path":"demo/render/worker-0","pid":[0-9]*,"state":"debugger"' &&
    ok "canopy tree says the worker is in the debugger" || fail "tree state: $("$canopy" tree demo)"
send "bt"
wait_for "work at .*pipeline.c" "$con" $((5 * slow)) && ok "bt shows the worker's work function" || fail "bt: $(tail -20 "$con")"
send "c"
wait_for "worker-0 gave the console back" "$con" 5 && ok "continue gives the console back" || fail "continue: $(tail "$con")"

# ---- cancel the tree: everything goes
pids=$(tree_pids)
expect_rc 0 "canopy cancel the root" "$canopy" cancel demo demo
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt $((100 * slow)) ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then fail "the root is still running"; else ok "the root exited"; fi
wait "$pid"
rc=$?
[ $rc = 0 ] && ok "the demo exits 0 when cancelled" || fail "the demo exited $rc"
pid=
left=
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
[ -z "$left" ] && ok "no actor process is left" || fail "left running:$left"
# The crash trigger's own NULL store is reported by the sanitizers; any
# other report is a bug.
reports=$(grep -E "ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:" "$tmp/demo.log" |
    grep -vE "SEGV on unknown address 0x0+ |store to null pointer")
[ -z "$reports" ] && ok "no sanitizer reports but the crash trigger's" || fail "sanitizer: $reports"

# ---- `make demo` with no terminal: the demo runs with its log on stdout
top=$(cd "$(dirname "$0")/.." && pwd)
setsid make -s -C "$top" demo B="$B" CC="${CC:-cc}" SANITIZE="${SANITIZE:-}" \
    </dev/null >"$tmp/make-demo.log" 2>&1 &
mpid=$!
wait_for "pipeline is up" "$tmp/make-demo.log" $((30 * slow)) &&
    grep -q "no terminal, so no TUI" "$tmp/make-demo.log" &&
    ok "make demo without a terminal runs the demo, and says why there is no TUI" ||
    fail "make demo: $(cat "$tmp/make-demo.log")"
"$canopy" tree demo >/dev/null 2>&1 && ok "make demo's tree is called demo" || fail "no tree demo"
env kill -s INT -- -"$mpid" 2>/dev/null # dash's kill takes no process group
i=0
while kill -0 "$mpid" 2>/dev/null && [ $i -lt $((100 * slow)) ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$mpid" 2>/dev/null && { fail "make demo did not stop on Ctrl-C"; env kill -s KILL -- -"$mpid"; } ||
    ok "Ctrl-C stops it"

# ---- as `make demo` runs it: the TUI, in tmux. The tree shows within
# 10 s; quitting with "cancel" ends a debugger session that would hold the
# shutdown, and leaves nothing running.
sess=cn-dbg-$$
tm new-session -d -s "$sess" -x 100 -y 30 \
    "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $canopy run --debug --name demo2 -- $demo --trigger break@1 --trigger stall@1; echo EXIT=\$? >$tmp/tui.exit; sleep 60"
i=0
while [ $i -lt $((100 * slow)) ]; do
    screen=$(tm capture-pane -p -t "$sess")
    printf '%s\n' "$screen" | grep -q "worker-2" && printf '%s\n' "$screen" | grep -q "has the debugger's console" && break
    sleep 0.1
    i=$((i + 1))
done
printf '%s\n' "$screen" | grep -q "render" && ok "the TUI shows the demo tree (after $((i * 100)) ms)" || fail "the TUI: $screen"
printf '%s\n' "$screen" | grep -q "worker-0 has the debugger's console" && ok "the TUI says who holds the console" || fail "no holder: $screen"
tm send-keys -t "$sess" 6
i=0
until tm capture-pane -p -t "$sess" | grep -q "to take messages" || [ $i -ge $((150 * slow)) ]; do
    sleep 0.1
    i=$((i + 1))
done
screen=$(tm capture-pane -p -t "$sess")
printf '%s\n' "$screen" | grep -q "^warning stalled-stream \[demo2/ingest, demo2/ingest/worker-2\]" &&
    printf '%s\n' "$screen" | grep -q "^    .*to take messages" &&
    ok "the Lints view names the stall, its reason wrapped whole under it" || fail "lints: $screen"
pids=$(tree_pids demo2)
tm send-keys -t "$sess" q
sleep 0.3
tm send-keys -t "$sess" y
wait_for "EXIT=0" "$tmp/tui.exit" $((10 * slow)) && ok "quit and cancel: the tree exits 0 (canopy run's status)" ||
    fail "canopy run: $(cat "$tmp/tui.exit" 2>/dev/null); $(tm capture-pane -p -t "$sess" | grep -v '^$' | tail -5)"
left=
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
[ -z "$left" ] && ok "no actor process is left" || fail "left running:$left"
tm kill-session -t "$sess" 2>/dev/null

# ---- canopy run, quit, leave the tree running: with an actor in the
# debugger the TUI asks about it too, as canopy attach does, and can
# continue it on the way out.
sess=cn-dbg3-$$
tm new-session -d -s "$sess" -x 100 -y 30 \
    "CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR $canopy run --debug --name demo3 -- $demo --trigger break@1; echo EXIT=\$? >$tmp/tui3.exit; sleep 60"
i=0
until tm capture-pane -p -t "$sess" | grep -q "worker-0 has the debugger's console" || [ $i -ge $((100 * slow)) ]; do
    sleep 0.1
    i=$((i + 1))
done
tm send-keys -t "$sess" q
sleep 0.3
tm send-keys -t "$sess" n
i=0
until tm capture-pane -p -t "$sess" | grep -q "worker-0 is in the debugger and stays stopped" || [ $i -ge $((50 * slow)) ]; do
    sleep 0.1
    i=$((i + 1))
done
tm capture-pane -p -t "$sess" | grep -q "worker-0 is in the debugger and stays stopped. y: continue it first" &&
    ok "canopy run, quit, leave it running: asked about the actor in the debugger" ||
    fail "canopy run, n: $(tm capture-pane -p -t "$sess" | grep -v '^$' | tail -3)"
tm send-keys -t "$sess" y
wait_for "EXIT=" "$tmp/tui3.exit" $((10 * slow))
i=0
while "$canopy" tree demo3 2>/dev/null | grep -q "worker-0 .* debugger" && [ $i -lt $((50 * slow)) ]; do
    sleep 0.1
    i=$((i + 1))
done
"$canopy" tree demo3 2>/dev/null | grep -Eq "worker-0 +[0-9]+ running" &&
    ok "canopy run, quit, y: the tree runs on, the actor continued" ||
    fail "canopy run, y: $("$canopy" tree demo3 2>&1 | head -8)"
pids=$(tree_pids demo3)
"$canopy" cancel demo3 demo3 >/dev/null 2>&1
i=0
left=x
while [ -n "$left" ] && [ $i -lt $((100 * slow)) ]; do
    left=
    for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    sleep 0.1
    i=$((i + 1))
done
[ -z "$left" ] || { fail "demo3 left running:$left"; kill -9 $left 2>/dev/null; }
tm kill-session -t "$sess" 2>/dev/null

finish test_demo
