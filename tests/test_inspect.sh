#!/bin/sh
# test_inspect.sh: the canopy CLI against real trees, as a user drives it:
# ls, tree, routes, ctx, log, lint, dump (and --json), the errors a user
# meets, the attach socket's permissions and cleanup, hostile clients, and
# each hang lint firing on a tree built to hang that way and staying quiet
# on a healthy one.
set -u
. "$(dirname "$0")/lib.sh"
canopy=${B:-build}/canopy
tree=${B:-build}/examples/tree
helpers=${B:-build}/tests/helpers
tmp=$(mktemp -d)
export CANOPY_RUNTIME_DIR="$tmp/run"
pids=
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT

# JSON check without python: the bundle must at least parse as one value.
# A small awk balance check (strings, escapes, brackets) is enough to catch
# truncation and broken escaping.
json_ok() {
    awk 'BEGIN { depth = 0; instr = 0; esc = 0; bad = 0; top = 0 }
    {
        n = length($0)
        for (i = 1; i <= n; i++) {
            c = substr($0, i, 1)
            if (instr) {
                if (esc) esc = 0
                else if (c == "\\") esc = 1
                else if (c == "\"") instr = 0
                continue
            }
            if (c == "\"") instr = 1
            else if (c == "{" || c == "[") { if (depth == 0) top++; depth++ }
            else if (c == "}" || c == "]") { depth--; if (depth < 0) bad = 1 }
        }
    }
    END { exit (bad || depth != 0 || instr || top != 1) }' "$1"
}

wait_for() { # wait_for FILE PATTERN: up to 10 s
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    grep -q "$2" "$1" 2>/dev/null
}

# start_lint NAME MODE [ARG...]: lint_tree MODE in the background, its log
# in $tmp/l.NAME.log and its output in $tmp/l.NAME.out; $l is its pid, and
# it is waited for until it says ready.
start_lint() {
    name=$1
    shift
    CANOPY_LOG_FILE="$tmp/l.$name.log" $helpers/lint_tree "$@" >"$tmp/l.$name.out" 2>&1 &
    l=$!
    pids="$pids $l"
    wait_for "$tmp/l.$name.out" ready || fail "$name ($1): tree not ready"
}

# --- no tree ---------------------------------------------------------------
expect_rc 1 "no tree: tree fails" $canopy tree
expect_out "no canopy tree is running" "no tree: says so"
expect_rc 0 "no tree: ls succeeds" $canopy ls
expect_out "no canopy trees are running" "no tree: ls says so"
expect_rc 2 "unknown option is a usage error" $canopy tree --bogus
expect_rc 2 "an option another command takes is refused" $canopy tree --follow
expect_rc 2 "--timeout needs a number" $canopy tree --timeout abc
expect_rc 0 "help lists the exit codes" $canopy --help
expect_out "3 'canopy lint' found a problem" "help: exit codes"

# --- the example tree --------------------------------------------------------
CANOPY_LOG_FILE="$tmp/tree.log" $tree >/dev/null 2>&1 &
root=$!
pids="$pids $root"
wait_for "$tmp/tree.log" "tree is up" && ok "tree comes up" || fail "tree did not come up"
sleep 1 # the workers open their feeds

sock=$(ls "$CANOPY_RUNTIME_DIR"/*.sock 2>/dev/null | head -1)
case "$sock" in *"/root.$root.sock") ok "socket named TREE.PID.sock" ;; *) fail "socket: '$sock'" ;; esac
mode=$(stat -c %a "$sock" 2>/dev/null)
[ "$mode" = 600 ] && ok "socket is mode 0600" || fail "socket mode $mode"
mode=$(stat -c %a "$CANOPY_RUNTIME_DIR")
[ "$mode" = 700 ] && ok "its directory is mode 0700" || fail "directory mode $mode"

expect_rc 0 "ls" $canopy ls
expect_out "^root +$root +13 " "ls: name, pid, 13 actors"
expect_rc 1 "a mistyped actor path" $canopy ctx root/sup-0/workr-1
expect_out "no actor 'root/sup-0/workr-1' in tree root; did you mean 'root/sup-0/worker-1'\?" \
    "a mistyped path: the one meant, as a path"
expect_rc 1 "a mistyped actor name" $canopy routes sup0
expect_out "did you mean 'sup-0'\?" "a mistyped name: the one meant"
expect_rc 1 "a name far from any" $canopy ctx zebra
expect_out "no actor 'zebra' in tree root; give its id or path" "no guess when nothing is close"
# canopy alone, not at a terminal: the help, and the truth about what runs
# (it said that no tree was running).
expect_rc 2 "canopy alone without a terminal: the help" $canopy </dev/null
expect_out "tree root is running, and this is not a terminal: 'canopy tree' shows it" \
    "canopy alone without a terminal: names the running tree"
expect_rc 0 "ls --json" $canopy ls --json
expect_out "\"tree\":\"root\",\"pid\":$root,\"actors\":13,\"start_us\":[0-9]+," "ls --json: the tree, its start named as tree --json names an actor's"

expect_rc 0 "tree" $canopy tree
expect_out "13 actors" "tree: 13 actors"
expect_out "^0 +root +$root +running" "tree: the root row"
expect_out "\`- worker-2" "tree: drawn as a tree"
n=$(printf '%s\n' "$out" | grep -c "running")
[ "$n" = 13 ] && ok "tree: every actor running" || fail "tree: $n running rows: $out"
for w in 80; do
    long=$(printf '%s\n' "$out" | awk -v w=$w 'length($0) > w' | head -1)
    [ -z "$long" ] && ok "tree fits 80 columns" || fail "tree line over 80 columns: $long"
done
expect_rc 0 "tree by name" $canopy tree root
expect_rc 0 "tree by pid" $canopy tree $root
expect_rc 0 "tree by socket path" $canopy tree "$sock"
expect_rc 1 "tree: no such tree" $canopy tree nosuchtree
expect_out "no tree 'nosuchtree' is running" "tree: says which tree is missing"
expect_rc 1 "tree: a mistyped tree" $canopy tree rot
expect_out "no tree 'rot' is running; did you mean 'root'\?" "tree: a mistyped tree name gets the one meant"

# Two trees of the same name: canopy asks which, and NAME.PID picks one.
CANOPY_LOG_FILE="$tmp/tree2.log" $tree >/dev/null 2>&1 &
root2=$!
pids="$pids $root2"
wait_for "$tmp/tree2.log" "tree is up" || fail "second tree did not come up"
expect_rc 1 "two trees: TREE left out" $canopy tree
expect_out "2 trees are running: root[.][0-9]+, root[.][0-9]+; name one as NAME[.]PID" "two trees: both named"
expect_rc 1 "two trees: the name alone" $canopy tree root
expect_out "2 trees match root" "two trees: the name is ambiguous"
# One word that is no running tree (one that has just exited, say): it is
# not taken for granted as an actor of some tree.
expect_rc 1 "two trees: ctx of a name no tree has" $canopy ctx dl
expect_out "no tree 'dl' is running; if it is an actor, name its tree first: 2 trees are running" \
    "two trees: ctx says no such tree, and how to name an actor"
expect_rc 1 "two trees: an actor's path, its tree's name shared" $canopy ctx root/sup-0
expect_out "which tree is root/sup-0 in\? 2 trees match root: root[.][0-9]+, root[.][0-9]+; name one as NAME[.]PID, then the actor" \
    "two trees: a path whose tree name both have says so"
expect_rc 0 "two trees: NAME.PID" $canopy tree root.$root2
expect_out "root pid $root2" "two trees: the one asked for"
expect_rc 0 "ls lists both" $canopy ls
n=$(printf '%s\n' "$out" | grep -c "^root ")
[ "$n" = 2 ] && ok "ls: two rows" || fail "ls: $n rows: $out"
kill -INT $root2
wait $root2 2>/dev/null

expect_rc 0 "routes of the root" $canopy routes root root
expect_out "root \\(id 0\\): 12 routes" "routes: the root knows all 12"
ids=$(printf '%s\n' "$out" | awk '$1 ~ /^[0-9]+$/ { print $1 }')
[ "$ids" = "$(printf '%s\n' "$ids" | sort -n)" ] && ok "routes: listed by id" || fail "routes: not by id: $(echo $ids)"
expect_rc 0 "routes of a supervisor" $canopy routes root/sup-2
expect_out " [0-9]+ \\(root/sup-2/worker-2\\) +[0-9.]+(ms|s) ago" "routes: VIA names the child whole"
expect_rc 0 "routes of the whole tree" $canopy routes root
sections=$(printf '%s\n' "$out" | sed -n 's/^[^ ].* (id \([0-9]*\)).*/\1/p')
[ "$sections" = "$(printf '%s\n' "$sections" | sort -n)" ] && ok "routes: actors by id" || fail "routes: actors not by id: $(echo $sections)"
expect_rc 0 "routes of an actor by path" $canopy routes root/sup-1
expect_out "root/sup-1 \\(id [0-9]+\\): 3 routes" "routes: a supervisor knows its 3 workers"
expect_rc 1 "routes: ambiguous name" $canopy routes worker-0
expect_out "more than one actor is named 'worker-0'" "routes: says the name is ambiguous"
expect_rc 0 "ctx: an actor by the end of its path" $canopy ctx sup-1/worker-0
expect_out "^root/sup-1/worker-0 \(id [0-9]+, pid [0-9]+\)" "ctx: sup-1/worker-0 is root/sup-1/worker-0"
expect_rc 1 "routes: no such actor" $canopy routes root nobody
expect_rc 0 "routes --json" $canopy routes --json
printf '%s\n' "$out" >"$tmp/routes.json"
json_ok "$tmp/routes.json" && ok "routes --json parses" || fail "routes --json: $out"

expect_rc 0 "ctx" $canopy ctx
expect_out "caller feed +root/sup-[0-9]/worker-[0-9] +streaming" "ctx: feed contexts streaming"
expect_out "stream: in [0-9]+ out [0-9]+ buf [0-9]+/64 credit [0-9]+ open/open" "ctx: stream counters"
expect_out "thread [0-9]+ \\(main\\): (sleep|call|running)" "ctx: what threads do"
long=$(printf '%s\n' "$out" | awk 'length($0) > 80' | head -1)
[ -z "$long" ] && ok "ctx fits 80 columns" || fail "ctx line over 80 columns: $long"
expect_rc 0 "ctx --json" $canopy ctx --json
printf '%s\n' "$out" >"$tmp/ctx.json"
json_ok "$tmp/ctx.json" && ok "ctx --json parses" || fail "ctx --json"
expect_out "\"phase\":\"streaming\"" "ctx --json: phases"
# The snapshot's tables ({cols, rows}) print as one object per row.
expect_out "\"contexts\":\[\{\"cid\":[0-9]+,\"tid\":[0-9]+,\"peer\":[0-9]+,\"fn\":" \
    "ctx --json: a context is an object"
expect_out "\"threads\":\[\{\"tid\":[0-9]+,\"kind\":\"" "ctx --json: a thread is an object"
if printf '%s\n' "$out" | grep -q '"cols"'; then fail "ctx --json: a table's cols showed"; else ok "ctx --json: no table shows as one"; fi

expect_rc 0 "log" $canopy log
expect_out "info +root: tree is up" "log: the tree's records"
expect_rc 0 "log --level warn" $canopy log --level warn
if printf '%s\n' "$out" | grep -q "tree is up"; then fail "log --level warn shows info"; else ok "log --level filters"; fi
expect_rc 0 "log --level error, with no error in the log" $canopy log --level error
expect_out "^canopy: tree root's log \(its last [0-9]+ records?\) has none at level error or above$" \
    "log: says why it printed nothing"
expect_rc 2 "log --level bogus" $canopy log --level bogus
expect_rc 1 "log --actor with a name no actor has" $canopy log --actor nosuch
expect_out "no actor 'nosuch' in tree" "log --actor: an unknown actor is named"
expect_rc 0 "log --actor by the end of a path" $canopy log --actor sup-0/worker-0
expect_rc 0 "log --actor with a name several actors have" $canopy log --actor worker-0
expect_out "more than one actor in tree root is named 'worker-0': these are the records of each" \
    "log --actor: says the name is ambiguous"
expect_rc 0 "log --json" $canopy log --json
expect_out "\"level\":\"info\",\"time_us\":[0-9]+,\"path\":\"root\"" "log --json: records"
$canopy log -f >"$tmp/follow.out" 2>&1 &
follow=$!
sleep 1.5
kill -INT $follow
wait $follow && ok "log -f stops cleanly on SIGINT" || fail "log -f exit status"
grep -q "tree is up" "$tmp/follow.out" && ok "log -f prints the tail" || fail "log -f: $(cat "$tmp/follow.out")"

expect_rc 0 "lint: healthy example tree" $canopy lint
expect_out "no problems found" "lint: nothing on a healthy tree"

$canopy dump >"$tmp/bundle.json" && ok "dump" || fail "dump failed"
json_ok "$tmp/bundle.json" && ok "dump: one JSON document" || fail "dump: not JSON"
grep -q '"canopy_dump":1' "$tmp/bundle.json" && grep -q '"threads":\[' "$tmp/bundle.json" &&
    grep -q '"lints":\[\]' "$tmp/bundle.json" && ok "dump: snapshot, threads, lints" ||
    fail "dump: missing parts"

# --- an actor that cannot answer is reported, not waited on ----------------
stopped=$(printf '%s\n' "$($canopy tree)" | awk '$2 == "|-" && $3 == "worker-1" { print $4; exit }')
if [ -n "$stopped" ]; then
    kill -STOP $stopped
    t0=$(date +%s%N)
    expect_rc 0 "tree with a stopped actor" $canopy tree --timeout 300
    t1=$(date +%s%N)
    expect_out "unresponsive after 300 ms" "tree: says how many did not answer"
    expect_out "worker-1 +[0-9]+ +unresponsive" "tree: the stopped actor is unresponsive, with its pid"
    [ $(( (t1 - t0) / 1000000 )) -lt 2000 ] && ok "tree: did not wait for it" || fail "tree took $(( (t1 - t0) / 1000000 )) ms"
    kill -CONT $stopped
else
    fail "no worker-1 pid found"
fi

# --- cancel ------------------------------------------------------------------
expect_rc 1 "cancel: no such context" $canopy cancel root/sup-0/worker-0/99999
expect_out "has no call or context 99999" "cancel: says which context is missing"
cid=$($canopy ctx root/sup-0/worker-0 | awk '$2 == "caller" && $3 == "feed" { print $1; exit }')
if [ -n "$cid" ]; then
    expect_rc 0 "cancel a context" $canopy cancel root/sup-0/worker-0/$cid
    expect_out "cancelling context $cid \(feed, caller root/sup-0/worker-0\) \.\.\. done in" "cancel: context progress"
    grep -q "feed (for actor 2) cancelled: cancelled by canopy-client" "$tmp/tree.log" &&
        ok "cancel: the callee's task was cancelled" || fail "cancel: no callee cancel in the log"
    # who asked, and the caller that only sent it: "(by root/sup-0/worker-0)"
    # read as if the worker had asked
    grep -Eq "feed \(for actor 2\) cancelled: cancelled by canopy-client \(pid [0-9]+\): canopy cancel \(sent by root/sup-0/worker-0\)" "$tmp/tree.log" &&
        ok "cancel: the callee hears who asked and which caller sent it" ||
        fail "cancel: $(grep 'feed (for actor 2) cancelled' "$tmp/tree.log")"
else
    fail "no feed context on worker-0 to cancel"
fi
expect_rc 0 "cancel an actor" $canopy cancel root/sup-1
expect_out "cancelling root/sup-1 \(id [0-9]+, pid [0-9]+\) \.\.\. done in" "cancel: actor progress"
grep -Eq "operator: cancel actor [0-9]+ \(sup-1\): cancelled by canopy" "$tmp/tree.log" &&
    ok "cancel: the root logs which actor, by name, and who asked" ||
    fail "cancel: $(grep 'operator:' "$tmp/tree.log")"
# The actor itself says who asked (its calls end with that reason), and
# its workers that they went with it.
grep -Eq "root/sup-1: shutting down: cancelled by canopy-client \(pid [0-9]+\): canopy cancel" \
    "$tmp/tree.log" && grep -q "root/sup-1/worker-0: shutting down: cancelled with its parent" \
    "$tmp/tree.log" &&
    ok "cancel: the cancelled actor's own log says who asked" ||
    fail "cancel: $(grep 'root/sup-1.*shutting down' "$tmp/tree.log")"
expect_rc 0 "cancel --json" $canopy cancel root/sup-2/worker-2 --json
expect_out '^\{"target":"root/sup-2/worker-2 \(id [0-9]+, pid [0-9]+\)","actor":[0-9]+,"call":0,"done":true,"ms":[0-9]+\}$' "cancel --json: one object"
expect_rc 0 "tree after cancelling sup-1" $canopy tree
expect_out "8 actors" "cancel: sup-1 and its workers are gone, and worker-2 of sup-2"
if printf '%s\n' "$out" | grep -Eq "[|\`]- sup-1 "; then fail "sup-1 still listed"; else ok "sup-1 not listed as alive"; fi
expect_out "^[0-9]+ +x sup-1 +[0-9]+ exit 0 " "tree: the cancelled sup-1 shows as exited, with the pid it had"
# The other commands know it too: "no actor 'sup-1'" sent the user back to
# canopy tree, which lists it.
for which in sup-1 root/sup-1 "$(printf '%s\n' "$out" | awk '$2 == "x" && $3 == "sup-1" { print $1 }')"; do
    expect_rc 1 "ctx of the exited sup-1 ($which)" $canopy ctx "$which"
    expect_out "^canopy: root/sup-1 \(id [0-9]+, pid [0-9]+\) has exited \(exit 0\) [0-9.]+m?s ago$" \
        "ctx $which: says it exited, how and when"
done
expect_rc 0 "tree --json after cancelling sup-1" $canopy tree --json
expect_out '"exited":\[.*\{"id":[0-9]+,"parent":0,"name":"sup-1","path":"root/sup-1","pid":[0-9]+,"status":"exit 0","exit_us":[0-9]+\}' \
    "tree --json: the exited sup-1 is listed, as canopy tree lists it"
# ACTOR/CID of it too: "no actor 'sup-1/3'" was all it said.
expect_rc 1 "cancel of a call of the exited sup-1" $canopy cancel sup-1/3
expect_out "^canopy: root/sup-1 \(id [0-9]+, pid [0-9]+\) has exited \(exit 0\)" \
    "cancel sup-1/3: says sup-1 exited"
expect_rc 1 "cancel of a call of a mistyped actor" $canopy cancel sup-9/3
expect_out "no actor 'sup-9' in tree root; did you mean 'sup-[02]'\?" "cancel sup-9/3: names an actor meant"
# Its records are still there: filtering them by level finds none, and
# says so, rather than that there is no such actor.
expect_rc 0 "log of the exited sup-1 at a level it never logged at" $canopy log --actor sup-1 --level error
expect_out "has none at level error or above from sup-1" "log --actor (exited) --level: none at that level"
expect_rc 0 "lint after the cancels" $canopy lint
expect_out "no problems found" "lint: still healthy"

# --- hostile clients: each is cut off, the tree and others unaffected -----
export CANOPY_ATTACH_STALL_MS=700
CANOPY_LOG_FILE="$tmp/h.log" $helpers/lint_tree healthy >"$tmp/h.out" 2>&1 &
h=$!
pids="$pids $h"
wait_for "$tmp/h.out" ready || fail "healthy lint tree not ready"
hsock="$CANOPY_RUNTIME_DIR/lint.$h.sock"
for act in garbage huge half nohello; do
    expect_rc 0 "hostile $act: cut off" $helpers/hostile "$hsock" $act
done
expect_rc 0 "hostile trickle: cut off before its frame ends" $helpers/hostile "$hsock" trickle 300
grep -q "a frame still incomplete after" "$tmp/h.log" && ok "hostile: trickling logged" || fail "no trickle log"
wait_for "$tmp/h.log" "half a frame, then nothing" && ok "hostile: stalled frame logged" || fail "no stall log"
grep -q "cut off client .*bad frame" "$tmp/h.log" && ok "hostile: bad frames logged" || fail "no bad-frame log"
grep -q "no HELLO within" "$tmp/h.log" && ok "hostile: silence logged" || fail "no HELLO log"
expect_rc 0 "hostile: 1000 connections" $helpers/hostile "$hsock" many 1000 300
expect_out "kept 64" "hostile: only 64 admitted"
grep -q "too many clients" "$tmp/h.log" && ok "hostile: refusals logged" || fail "no refusal log"
expect_rc 0 "after hostile clients the tree still answers" $canopy tree lint
expect_out "2 actors" "after hostile clients: both actors"
kill -0 $h 2>/dev/null && ok "the root survived" || fail "the root died"
# Two trees run (root and lint): a tree's name alone is its root. It was
# refused as "2 trees are running ...; name one by its name".
expect_rc 0 "cancel TREE, with another tree running" $canopy cancel lint --timeout 5000
expect_out "cancelling lint \(id 0, pid $h\): the whole tree \.\.\. done" "cancel TREE: the whole tree"
kill -9 $h 2>/dev/null
unset CANOPY_ATTACH_STALL_MS

# --- the event feed -----------------------------------------------------------
CANOPY_LOG_FILE="$tmp/e.log" $tree >/dev/null 2>&1 &
e=$!
pids="$pids $e"
wait_for "$tmp/e.log" "tree is up"
sleep 1
$canopy events root.$e --json >"$tmp/events.json" 2>&1 &
ev=$!
$canopy events root.$e >"$tmp/events.txt" 2>&1 &
evt=$!
$canopy log root.$e -f >"$tmp/logf.out" 2>&1 &
lf=$!
sleep 0.5
$canopy cancel root.$e root/sup-2 >/dev/null 2>&1
sleep 1
kill -INT $ev $evt $lf
wait $ev && ok "events stops cleanly on SIGINT" || fail "events exit status"
wait $evt $lf
grep -q "following the tree's events" "$tmp/events.txt" && fail "events: the note went to a file" || ok "events: no note when not at a terminal"
if command -v script >/dev/null 2>&1; then # at a terminal, a quiet feed says it is following
    out=$(script -qc "timeout -s INT 1 $canopy events root.$e" /dev/null 2>&1)
    expect_out "following the tree's events until Ctrl-C" "events: at a terminal, says it is following"
else
    skip "events at a terminal: script(1) is not installed"
fi
grep -Eq "route-del +root: the route to actor [0-9]+: " "$tmp/events.txt" && ok "events: a lost route names its actor and why" || fail "events: no route-del in $(head -c 600 "$tmp/events.txt")"
grep -Eq " log +root[^ ]*: (info|cancel|warn): " "$tmp/events.txt" && ok "events: a log record shows its level" || fail "events: no log level in $(grep ' log ' "$tmp/events.txt" | head -3)"
for kind in cancel ctx-errored exit log; do
    grep -q "\"kind\":\"$kind\"" "$tmp/events.json" && ok "events: $kind" || fail "events: no $kind in $(head -c 600 "$tmp/events.json")"
done
grep -q '"kind":"exit".*"name":"sup-2"' "$tmp/events.json" && ok "events: sup-2's exit names it" || fail "events: no exit of sup-2"
grep -Eq '"kind":"exit".*"name":"sup-2","detail":"actor [0-9]+ \(sup-2\) exited with status 0 \(cancelled by canopy-client \(pid [0-9]+\)' "$tmp/events.json" &&
    ok "events: sup-2's exit says who cancelled it" || fail "events: $(grep '"name":"sup-2"' "$tmp/events.json" | grep exit)"
grep -Eq '"kind":"log","time_us":[0-9]+,"path":"root[^"]*","level":"(info|cancel|warn)","message":' "$tmp/events.json" &&
    ok "events --json: a log record is as log --json prints it" ||
    fail "events --json: log record: $(grep '"kind":"log"' "$tmp/events.json" | head -2)"
bad=0
while IFS= read -r line; do
    printf '%s\n' "$line" >"$tmp/one.json"
    json_ok "$tmp/one.json" || { bad=1; printf '%s\n' "$line"; break; }
done <"$tmp/events.json"
[ $bad = 0 ] && ok "events --json: every line is one JSON value" || fail "events --json: a line is not JSON"
# The feeds that sup-2's workers had opened on their cousins end, and the
# cousins, their callees, say so: each end of a context reports its close.
grep -Eq '"kind":"ctx-(closed|errored)".*"detail":"callee"' "$tmp/events.json" && ok "events: a callee's end of a context closes" || fail "events: no callee close in $(grep -c . "$tmp/events.json") events"
grep -Eq "cancel +root: cancelling root/sup-2" "$tmp/logf.out" && ok "log -f: new records arrive" || fail "log -f: $(tail -3 "$tmp/logf.out")"
n=$(grep -c "tree is up" "$tmp/logf.out")
[ "$n" = 1 ] && ok "log -f: the tail is printed once" || fail "log -f printed the tail $n times"
kill -9 $e

# A subscriber that does not read loses events, counted, and slows nothing.
CANOPY_LOG_FILE="$tmp/ch.log" CANOPY_LOG_FILE_MAX=1M $helpers/lint_tree chatty >"$tmp/ch.out" 2>&1 &
ch=$!
pids="$pids $ch"
wait_for "$tmp/ch.out" ready
$helpers/hostile "$CANOPY_RUNTIME_DIR/lint.$ch.sock" slowsub 4000 >"$tmp/slow.out" 2>&1 &
slow=$!
wait_for "$tmp/ch.out" chatted && ok "chatty: the root logged 40 000 lines with a stalled subscriber" || fail "chatty root did not finish"
expect_rc 0 "chatty: the tree answers meanwhile" $canopy tree lint.$ch
wait $slow && ok "slow subscriber: got a dropped marker" || fail "slow subscriber: $(cat "$tmp/slow.out")"
grep -Eq "^dropped [1-9][0-9]* after" "$tmp/slow.out" && ok "slow subscriber: dropped count" || fail "slow: $(cat "$tmp/slow.out")"
rss=$(awk '/VmRSS/ { print $2 }' /proc/$ch/status)
if [ -n "${SANITIZE:-}" ]; then
    skip "chatty root's memory: sanitizers keep freed memory (${rss} KiB)"
elif [ "$rss" -lt 20000 ]; then
    ok "chatty root's memory stays small (${rss} KiB)"
else
    fail "chatty root RSS ${rss} KiB"
fi
kill -9 $ch
# Its 40 000 lines (about 4 MB) went to a log file that rotates at 1 MiB.
size() { wc -c <"$1" 2>/dev/null || echo 0; }
[ "$(size "$tmp/ch.log")" -le 1049000 ] && [ "$(size "$tmp/ch.log.1")" -gt 1000000 ] &&
    [ "$(size "$tmp/ch.log.1")" -le 1049000 ] &&
    head -1 "$tmp/ch.log" | grep -q "^(the log before this line is in $tmp/ch.log.1)" &&
    ok "CANOPY_LOG_FILE_MAX: the log rotates, FILE and FILE.1 within the limit" ||
    fail "CANOPY_LOG_FILE_MAX: $(size "$tmp/ch.log") and $(size "$tmp/ch.log.1") bytes; $(head -1 "$tmp/ch.log")"

# --- lints on trees built to hang ------------------------------------------
export CANOPY_LINT_AFTER_MS=400
for mode in stuck-cancel stalled-stream cycle unreaped orphan; do
    start_lint $mode $mode $helpers/fake_child
    sleep 0.6
    expect_rc 3 "lint fires on $mode" $canopy lint lint
    case $mode in
    stuck-cancel) expect_out "stuck-cancel .*cancel of spin .*running spin outside any canopy call" "stuck-cancel names where the task is" ;;
    stalled-stream)
        expect_out "stalled-stream .*flood .*its window of 64 is used up: all 64 in its buffer" "stalled-stream names the receiver"
        expect_out "all 64 in its buffer\): thread [0-9]+ \(main\) is in sleep for" "stalled-stream: what the receiver's thread runs, and where it waits" ;;
    cycle)
        expect_out "wait-for-cycle .*lint thread [0-9]+ \\(main\\) waits in recv on lint/kid -> lint/kid thread [0-9]+ \\(waiter\\) waits in recv on lint -> back to" "cycle printed"
        printf '%s\n' "$out" | grep -q "held up" && fail "cycle: nobody is held up behind it: $out" ||
            ok "cycle: names no thread held up behind it when none is" ;;
    unreaped) expect_out "unreaped .*quick \\(pid [0-9]+\\) is gone from the system" "unreaped names the child" ;;
    orphan) expect_out "orphan-stream .*other end on forgetful has no such context" "orphan-stream names the lost end"
        # Its threads table has its columns in another order, one unknown.
        expect_rc 0 "ctx of an actor whose table has other columns" $canopy ctx lint forgetful
        expect_out "thread 4242 \(user\): running" "ctx: a table's columns are found by name" ;;
    esac
    expect_rc 3 "lint --json on $mode" $canopy lint lint --json
    expect_out "\"lint\":\"$( [ $mode = cycle ] && echo wait-for-cycle || [ $mode = orphan ] && echo orphan-stream || echo $mode)\"" "lint --json names $mode"
    [ $mode = cycle ] && expect_out '"actors":\["lint(/kid)?","lint(/kid)?"\]' "lint --json: actors, an array of paths"
    if [ $mode = stuck-cancel ]; then # the task's actor stopped for the debugger: say so
        $canopy break lint lint/kid >/dev/null 2>&1
        i=0
        while ! $canopy tree lint 2>/dev/null | grep -Eq "kid .*(lock-wait|debugger)" && [ $i -lt 100 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        expect_rc 3 "lint fires on a stuck cancel in a stopped actor" $canopy lint lint
        # queued for the console, not yet holding it: its threads run on
        expect_out "stuck-cancel .*on lint/kid, thread [0-9]+ is running spin .*, so it never reaches a cancellation point; it waits for the debugger's console" \
            "stuck-cancel: the actor waits for the console, and its thread runs on meanwhile"
    fi
    kill -9 $l
done

# A deadlock that others wait on: the kid's sink task waits in recv for
# the root's main thread, which is in the cycle. The lint names it.
start_lint cycle-behind cycle-behind
sleep 0.6
expect_rc 3 "lint fires on a cycle with a waiter behind it" $canopy lint lint
expect_out "wait-for-cycle .*back to lint(/kid)? thread [0-9]+; held up behind it: lint/kid thread [0-9]+ \\(sink\\)" \
    "wait-for-cycle names the thread held up behind the deadlock"
kill -9 $l

# A chain: the stall downstream (the root does not read) is the cause and
# is listed first; the one behind it says it follows from it.
start_lint chain chain
sleep 0.6
expect_rc 3 "lint fires on a chain of stalls" $canopy lint lint
first=$(printf '%s\n' "$out" | grep -m1 "stalled-stream")
case "$first" in
*"stream of relayflood"*"thread "*" (main) is in sleep"*) ok "chain: the cause is listed first" ;;
*) fail "chain: first stall: $first; all: $out" ;;
esac
expect_out "stream of flood .*thread [0-9]+ \(relayflood\) is blocked in send on lint .*itself held up by backpressure \(the stall listed before this one\)" \
    "chain: the stall behind it says it follows"
kill -9 $l

# Not a deadlock: the root calls the kid, whose task calls back into the
# root, which sleeps. Both calls are number 1 of their callers; lint took
# the kid's own call for it serving the root's, and printed a cycle.
start_lint cb callback
i=0 # until the kid's call back into the root is in flight (slow under sanitizers)
while ! $canopy ctx lint 2>/dev/null | grep -Eq "caller +peek\(\) +lint +running" && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
sleep 0.6 # the waits last past CANOPY_LINT_AFTER_MS
expect_rc 0 "ctx: the callback's calls" $canopy ctx lint
expect_out "caller +peek\(\) +lint +running" "callback: the kid's call back into the root is in flight"
expect_rc 0 "lint: a slow callback (calls of the same number) is no deadlock" $canopy lint lint
kill -9 $l

# A thread in cn_child_wait waits for its child to exit: it said "running".
start_lint reap reap
sleep 0.3
expect_rc 0 "ctx while the root waits for its child" $canopy ctx lint lint
expect_out "thread [0-9]+ \(main\): reap on lint/kid for " "ctx: a thread in cn_child_wait is reaping, on which child"
kill -9 $l

# A long wait whose task is not waiting on canopy: in its own code, or
# queued for want of a task thread. A warning after CANOPY_LINT_WAIT_MS.
for mode in long-call starved; do
    start_lint $mode $mode
    sleep 0.6
    expect_rc 0 "lint: a $mode of 0.6 s is not yet a long wait" $canopy lint lint
    expect_rc 3 "lint fires on $mode" env CANOPY_LINT_WAIT_MS=500 $canopy lint lint
    case $mode in
    long-call)
        expect_rc 0 "ctx while a plain call runs" $canopy ctx lint
        expect_out "caller +spin\(\) +lint/kid +running " "ctx: a plain call in flight is running, not opening"
        expect_rc 3 "lint fires on $mode (again)" env CANOPY_LINT_WAIT_MS=500 $canopy lint lint
        expect_out "warning long-wait \[lint, lint/kid\]: lint thread [0-9]+ \(main\) has waited ([0-9]+ms|[0-9]\.[0-9]s) in call on lint/kid \(spin, cid [0-9]+\): thread [0-9]+ is running spin outside any canopy call .*'canopy bt' shows where" "long-wait names the task's thread and where to look" ;;
    starved)
        expect_out "long-wait .*in call on lint/kid \(quick, cid [0-9]+\): no thread runs it: it is queued, and .*1 task thread.* busy" "long-wait says the call is queued behind max_threads"
        expect_rc 0 "ctx while a call waits for a task thread" $canopy ctx lint lint/kid
        expect_out "callee +quick\(\) +lint +queued " "ctx: a call no thread has taken yet is queued, not running"
        expect_out "callee +hold +lint +(started|streaming) " "ctx: the context holding the one thread is not queued" ;;
    esac
    kill -9 $l
done

# --- canopy cancel of a caller's end: what it reports ---------------------------
# A task that never reaches a cancellation point: the caller's end closes
# at once, and canopy says the task still runs (exit 1), not "done".
start_lint sc2 stuck-cancel
cid=$($canopy ctx lint 2>/dev/null | awk '$2 == "caller" && $3 == "spin" { print $1; exit }')
expect_rc 1 "cancel of a spinning task's caller end is not reported done" \
    $canopy cancel lint "lint/$cid" --timeout 1000
expect_out "the caller's end is closed, but its task on lint/kid still runs after" \
    "cancel: says the task still runs, and where to look"
kill -9 $l
# A long peer path is shown whole, not cut at the column's width.
long=a-worker-whose-name-is-longer-than-its-column
LINT_TREE_KID=$long CANOPY_LOG_FILE="$tmp/l.long.log" \
    $helpers/lint_tree stalled-stream >"$tmp/l.long.out" 2>&1 &
l=$!
pids="$pids $l"
wait_for "$tmp/l.long.out" ready || fail "long name: tree not ready"
expect_rc 0 "ctx with a long peer path" $canopy ctx lint lint
expect_out "caller +flood +lint/$long +streaming " \
    "ctx: a peer path longer than its column is whole"
expect_rc 0 "tree with a long name" $canopy tree lint
expect_out "^1 +\`- $long +[0-9]+ running" "tree: a name longer than its column is whole"
expect_rc 0 "routes with a long name" $canopy routes lint lint
expect_out "^  1 +$long +0 +1 \(lint/$long\) " "routes: a name longer than its column is whole"
kill -9 $l

# An actor stopped for the debugger is no deadlock: its task was frozen in
# recv, and the root's send then blocked on it. lint called that a
# wait-for-cycle.
start_lint feed feed
sleep 0.3
$canopy break lint lint/kid >/dev/null 2>&1
rm -f "$tmp/con.in"
mkfifo "$tmp/con.in"
$canopy attach --console lint <"$tmp/con.in" >"$tmp/con.out" 2>&1 &
cp=$!
exec 4>"$tmp/con.in"
wait_for "$tmp/con.out" "has the console" || fail "feed: the kid never got the console: $(cat "$tmp/con.out")"
sleep 2.5
expect_rc 3 "lint on a stream into an actor stopped in the debugger" $canopy lint lint
if printf '%s\n' "$out" | grep -q "wait-for-cycle"; then
    fail "lint: a stopped actor's frozen recv made a deadlock: $out"
else
    ok "lint: no wait-for-cycle through an actor stopped in the debugger"
fi
expect_out "stalled-stream .*it is stopped in the debugger" "lint: the stream stalls because the actor is stopped"
echo c >&4
exec 4>&-
wait $cp 2>/dev/null
kill -9 $l

# A call whose task stopped at a breakpoint: the long wait ends there, at
# a thread waiting for a person, and says so.
start_lint bpc bp-call
sleep 0.8
expect_rc 3 "lint on a call stopped at a breakpoint" env CANOPY_LINT_WAIT_MS=500 $canopy lint lint
expect_out "long-wait .*in call on lint/kid \(bp, cid [0-9]+\): thread [0-9]+ is stopped at a breakpoint \(cn_breakpoint\) for ([0-9]+ms|[0-9]\.[0-9]s); it waits for the debugger's console" \
    "long-wait: the task is stopped at a breakpoint, waiting for a console"
kill -9 $l

# A thread a task started has the task thread's name (Linux copies it):
# canopy bt says whose it is.
start_lint thr threads
expect_rc 0 "bt of an actor with a thread of its own" $canopy bt lint lint/kid
expect_out "thread [0-9]+ \(cn-task-1\): (.*; )?task idle" "bt: the task thread is one"
expect_out "thread [0-9]+ \(cn-task-1\): .*the program's own thread, named after the task thread that started it" \
    "bt: the program's thread is not taken for a task thread"
# The second of them ends when bt's signal cuts its sleep short: its name
# was read after the signal, and was gone ("thread 14574 (): ").
[ "$(printf '%s\n' "$out" | grep -c "the program's own thread, named after")" -eq 2 ] &&
    ! printf '%s\n' "$out" | grep -q "thread [0-9]* ()" &&
    ok "bt: a thread that ends on bt's signal still has its name" ||
    fail "bt: $(printf '%s\n' "$out" | grep 'thread [0-9]')"
kill -9 $l

# Errors come before warnings: the deadlock explains the stalled stream.
start_lint sc stall-and-cycle
sleep 2.2
expect_rc 3 "lint on a deadlock that stalls a stream" $canopy lint lint
first=$(printf '%s\n' "$out" | head -1)
printf '%s\n' "$out" | grep -q "^warning stalled-stream" &&
    case $first in "error wait-for-cycle"*) true ;; *) false ;; esac &&
    ok "lint: the error comes before the warning" || fail "lint order: $out"
kill -9 $l

# A cancel of a context the program keeps (it never frees it): the task's
# answer, which comes after the caller's end was closed, settles the cancel.
# It stayed "requested", and lint called it stuck once it was 2 s old.
start_lint kept stalled-stream
cid=$($canopy ctx lint 2>/dev/null | awk '$2 == "caller" && $3 == "flood" { print $1; exit }')
expect_rc 0 "cancel of a context its program keeps" $canopy cancel lint "lint/$cid" --timeout 5000
sleep 0.3
expect_rc 0 "ctx after the cancel" $canopy ctx lint lint
expect_out "caller +flood +lint/kid +errored +(done|acknowledged) " \
    "ctx: the kept context's cancel is settled by its task's answer"
expect_rc 0 "lint: a settled cancel is not stuck, however old" env CANOPY_LINT_AFTER_MS=0 \
    $canopy lint lint
kill -9 $l
# A cancel that lets the root's main return: the tree exits with what was
# cancelled, and that is done (exit 0), not "still there".
start_lint cy2 cycle
cid=$($canopy ctx lint 2>/dev/null | awk '$2 == "caller" && $3 == "waiter" { print $1; exit }')
expect_rc 0 "cancel of a call whose end ends the tree" $canopy cancel lint "lint/$cid" --timeout 5000
expect_out "done in [0-9]+ ms \(the tree exited\)" "cancel: done, because the tree exited"
kill -9 $l 2>/dev/null

# --- the whole tree, then stale sockets ----------------------------------------
CANOPY_LOG_FILE="$tmp/c.log" $tree >/dev/null 2>&1 &
c=$!
pids="$pids $c"
wait_for "$tmp/c.log" "tree is up"
# A child that died shows in the tree for a while, with how it ended.
w=$($canopy ctx root.$c root/sup-1/worker-1 2>/dev/null | sed -n '1s/.*pid \([0-9]*\).*/\1/p')
[ -n "$w" ] && kill -9 "$w"
i=0
while ! $canopy tree root.$c 2>/dev/null | grep -q "x worker-1" && [ $i -lt 60 ]; do
    sleep 0.05
    i=$((i + 1))
done
expect_rc 0 "tree after a worker was killed" $canopy tree root.$c
expect_out "^[0-9]+ +.* x worker-1 +$w signal 9 " "tree: a killed worker shows, with the pid it had and its signal"
# A stopped actor cannot answer: lint says so and why; the tree still
# places it under its parent, with its pid.
w=$($canopy ctx root.$c root/sup-0/worker-2 2>/dev/null | sed -n '1s/.*pid \([0-9]*\).*/\1/p')
[ -n "$w" ] && kill -STOP "$w"
expect_rc 3 "lint with a stopped worker" $canopy lint root.$c
expect_out "unresponsive.*root/sup-0/worker-2 \(pid $w\) did not answer a snapshot within [0-9]+ ms: its process is stopped" \
    "lint: a stopped actor is unresponsive, and said why"
expect_rc 0 "tree with a stopped worker" $canopy tree root.$c
expect_out "^[0-9]+ +\| +[|\`]- worker-2 +$w unresponsive" "tree: an unresponsive actor stays under its parent, with its pid"
[ -n "$w" ] && kill -CONT "$w"
expect_rc 0 "cancel the root" $canopy cancel root.$c root
expect_out "the whole tree [.][.][.] .*done in" "cancel root: done"
i=0
while kill -0 $c 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
kill -0 $c 2>/dev/null && fail "the tree is still running" || ok "cancel root: the tree exited"
[ -e "$CANOPY_RUNTIME_DIR/root.$c.sock" ] && fail "its socket is left" || ok "cancel root: socket removed"

kill -9 $root
sleep 0.3
[ -S "$sock" ] && ok "kill -9 leaves the socket" || fail "socket already gone?"
expect_rc 0 "ls after the root died" $canopy ls
[ -e "$sock" ] && fail "ls left the stale socket" || ok "ls removed the stale socket"
expect_rc 1 "tree after the root died" $canopy tree
expect_out "no canopy tree is running" "tree: says none is running"

# Death by SIGTERM (left at its default by the program) removes it too.
CANOPY_LOG_FILE="$tmp/t.log" $helpers/sigint_root sleep >"$tmp/t.out" 2>&1 &
t=$!
wait_for "$tmp/t.out" ready
[ -S "$CANOPY_RUNTIME_DIR/root.$t.sock" ] && ok "SIGTERM: socket there first" || fail "SIGTERM: no socket"
kill -TERM $t
wait $t 2>/dev/null
st=$?
[ $st = 143 ] && ok "SIGTERM: the root still dies of it (143)" || fail "SIGTERM exit status $st"
[ -e "$CANOPY_RUNTIME_DIR/root.$t.sock" ] && fail "socket left after SIGTERM" || ok "SIGTERM removes the socket"

# A clean exit removes its own socket.
CANOPY_LOG_FILE="$tmp/s.log" $helpers/sigint_root sleep >"$tmp/s.out" 2>&1 &
s=$!
wait_for "$tmp/s.out" ready
[ -S "$CANOPY_RUNTIME_DIR/root.$s.sock" ] && ok "sigint_root has a socket" || fail "no socket"
kill -INT $s
wait $s
[ -e "$CANOPY_RUNTIME_DIR/root.$s.sock" ] && fail "socket left after SIGINT" || ok "SIGINT exit removes the socket"

finish test_inspect
