#!/bin/sh
# test_tui.sh: the canopy TUI, driven in tmux as a user would (send-keys,
# capture-pane), against real trees:
#   - the tree appears, and matches 'canopy routes --json' and
#     'canopy ctx --json' for the same tree;
#   - a child spawned later appears within 1 s (3 s in sanitized builds),
#     and one that exits stays, marked with its exit status;
#   - the filter keeps what matches (and its ancestors) and hides the rest;
#   - b breaks into the selected actor; 5, bt, continue work at the console;
#     :queue lists the lock's queue there, other ':' lines show the commands;
#   - two breakpoints are served in order; Ctrl-C in the console interrupts
#     the holder and cancels nothing;
#   - the screen has colours, and NO_COLOR turns them off;
#   - resizing to 80x24 and back keeps the screen whole;
#   - q detaches and leaves the tree running;
#   - the TUI's feed leaves out the contexts' events, another client's not;
#   - the end of a burst of log lines bigger than one turn's reading
#     shows, with nothing after it;
#   - canopy run: the program's tree, its output in the log view, its exit
#     status when it exits, and q asking whether to cancel it;
#   - without a terminal, the TUI says what to use instead.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tree.sh"
example=$B/examples/tree
s=
nsess=0
tpid=

if ! command -v tmux >/dev/null 2>&1; then
    skip "tui: tmux is not installed"
    finish test_tui
    exit 0
fi
appear_s=1
[ $sanitized = 1 ] && appear_s=3

cleanup_tui() {
    [ -n "$s" ] && tm kill-session -t "$s" 2>/dev/null
    [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null
    cleanup
}
trap cleanup_tui EXIT

# tui CMD...: runs CMD in a fresh tmux session of 120x40; the pane shows
# "[exited N]" after it ends. The old session goes after the new one is
# up, so that the tmux server never runs out of sessions and exits.
tui() {
    old=$s
    nsess=$((nsess + 1))
    s=cn-tui-$$-$nsess
    tm new-session -d -s "$s" -x 120 -y 40 \
        "env CANOPY_RUNTIME_DIR=$CANOPY_RUNTIME_DIR TERM=xterm-256color $*; echo \"[exited \$?]\"; sleep 60"
    [ -n "$old" ] && tm kill-session -t "$old" 2>/dev/null
}
screen() { tm capture-pane -p -t "$s" 2>/dev/null; }
keys() { tm send-keys -t "$s" "$@"; }
# on_screen PATTERN [SECONDS]: until the screen shows it (0) or time is up.
on_screen() {
    i=0
    while ! screen | grep -Eq -- "$1"; do
        i=$((i + 1))
        [ $i -gt $((${2:-5} * 20)) ] && return 1
        sleep 0.05
    done
}
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- the example tree
"$example" </dev/null >"$tmp/ex.log" 2>&1 &
tpid=$!
wait_for "tree is up" "$tmp/ex.log" 10 || fail "example: the tree did not start"
tui "$canopy" attach root
if on_screen "worker-2" 10; then
    ok "tree: the TUI shows the tree"
else
    fail "tree: no tree on screen: $(screen)"
fi
n=$(screen | grep -Ec '^ +[0-9]+ +[-+ ] *(root|sup-[0-9]|worker-[0-9])')
[ "$n" -eq 13 ] && ok "tree: all 13 actors are rows" || fail "tree: $n actor rows: $(screen)"
screen | grep -q "1 Tree 2 Routes 3 Contexts 4 Log 5 Console 6 Lints" &&
    screen | grep -q "F1Help" && ok "tree: tabs and the footer are drawn" ||
    fail "tree: no tabs or footer: $(screen)"

# Routes of the root, against canopy routes --json.
keys 2
on_screen "routes of root" 5
want=$("$canopy" routes root root --json | grep -o '"id":[0-9]*' | sed 's/"id"://' | sort -n | tr '\n' ' ')
got=$(screen | sed -n 's/^ *\([0-9][0-9]*\) .* ago$/\1/p' | sort -n | tr '\n' ' ')
[ -n "$want" ] && [ "$got" = "$want" ] && ok "routes: the root's routes are those of canopy routes --json ($got)" ||
    fail "routes: screen '$got', json '$want'"
# Enter on a route goes to its target.
keys Down Enter
on_screen "selected root/" 5 && ok "routes: Enter selects the route's target" ||
    fail "routes: Enter: $(screen | tail -3)"

# Enter on a log record goes to its actor: the root's too, whose id is 0.
keys 4 / "tree is up" Enter
on_screen "info +root: tree is up" 5
keys Home Enter
on_screen "selected root *$" 5 && ok "log: Enter on the root's record selects the root" ||
    fail "log: Enter on the root's record: $(screen | tail -3)"
keys / C-u Enter

# Contexts of the whole tree: the long-lived feed streams match canopy ctx --json.
keys 3 a
on_screen "whole tree" 5
on_screen " feed  " 5 # the rows come with the next snapshot
sleep 0.5
want=$("$canopy" ctx root --json | grep -o '"fn":"feed","role"' | wc -l)
got=$(screen | grep -c ' feed  ')
[ "$want" -gt 0 ] && [ "$got" = "$want" ] && ok "contexts: $got feed ends, as canopy ctx --json has" ||
    fail "contexts: screen $got feed rows, json $want: $(screen)"
screen | grep -q ' feed .*streaming.*\[' && ok "contexts: streams show their phase and a buffer bar" ||
    fail "contexts: no stream phase or bar: $(screen | head -5)"

# Filter: / sup-1 keeps sup-1, its workers and the root, hides the rest.
keys 1 / sup-1 Enter
filtered() {
    screen | grep -q "sup-1" && ! screen | grep -q "sup-0" && ! screen | grep -q "sup-2" &&
        [ "$(screen | grep -c 'worker-')" -eq 3 ] && screen | grep -q ' root '
}
i=0
until filtered || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
if filtered; then
    ok "filter: / keeps the matches and their ancestors, hides the rest"
else
    fail "filter: $(screen)"
fi
keys / C-u Enter
on_screen "sup-2" 5 && ok "filter: an empty filter shows everything again" || fail "filter: not cleared"

# Break into a worker from the tree, then the console.
keys / worker-1 Enter n
sleep 0.3
keys b
on_screen ">> root/sup-[0-9]/worker-1 has the debugger's console" 10 &&
    ok "break: b on a worker; the status bar says it has the console" ||
    fail "break: no alert: $(screen | tail -3)"
keys 5
on_screen "Type 'help' for commands" 5
keys b t Enter
if on_screen "worker_main at .*tree.c" 10; then
    ok "console: bt in the console shows the worker's stack"
else
    fail "console: bt: $(screen)"
fi
keys c Enter
on_screen "gave the console back" 5 && ok "console: continue gives the console back" ||
    fail "console: continue: $(screen | tail -5)"
keys Escape / C-u Enter

# Resize to 80x24 and back.
tm resize-window -t "$s" -x 80 -y 24 2>/dev/null || tm resize-pane -t "$s" -x 80 -y 24
sleep 0.5
lines=$(screen | wc -l)
if [ "$lines" -eq 24 ] && screen | head -1 | grep -q "1 Tree" && screen | tail -1 | grep -q "F1Help" &&
    [ "$(screen | awk '{ if (length($0) > 80) n++ } END { print n + 0 }')" -eq 0 ]; then
    ok "resize: at 80x24 the tabs, rows and footer fit"
else
    fail "resize 80x24: $(screen)"
fi
# The help does not fit at 80x24: it says so, and scrolls.
keys '?'
if on_screen "more below" 3 && ! screen | grep -q "Mouse: click selects"; then
    keys NPage
    on_screen "Mouse: click selects" 3 && screen | grep -q -- "-- end --" &&
        ok "help: at 80x24 it says there is more, and PgDn scrolls to the rest" ||
        fail "help at 80x24, after PgDn: $(screen)"
else
    fail "help at 80x24: $(screen)"
fi
keys x
sleep 0.3
tm resize-window -t "$s" -x 120 -y 40 2>/dev/null || tm resize-pane -t "$s" -x 120 -y 40
sleep 0.5
[ "$(screen | wc -l)" -eq 40 ] && screen | tail -1 | grep -q "F1Help" && on_screen "worker-2" 3 &&
    ok "resize: back at 120x40 the screen is whole" || fail "resize back: $(screen)"

# A row the screen cuts: selected, the rest of it is in the status line.
# Killing a worker makes log lines longer than 80 columns.
wpid=$("$canopy" ctx root/sup-2/worker-2 2>/dev/null | sed -n '1s/.*pid \([0-9]*\).*/\1/p')
[ -n "$wpid" ] && kill -9 "$wpid"
tm resize-window -t "$s" -x 80 -y 24 2>/dev/null || tm resize-pane -t "$s" -x 80 -y 24
sleep 0.5 # a key typed during the resize can be lost (as above)
keys 4
on_screen "LEVEL +ACTOR: MESSAGE" 5
keys / "caller is gone" Enter
on_screen "^[0-9:.]+ +cancel .*caller is gone" 5
keys Up # off the last row
on_screen '^[.][.][.].*exited on signal 9' 5 && ok "log: a selected line cut at the edge goes on in the status line" ||
    fail "log: long line: $(screen | tail -6)"
# tmux sends Home as ESC [1~ whatever TERM says; unknown to xterm's
# entry, it came as Esc, "[", "1" (the Tree view) and "~".
keys Home
sleep 0.3
screen | grep -Eq "LEVEL +ACTOR: MESSAGE" && ok "keys: Home under tmux stays in the view" ||
    fail "keys: Home left the log view: $(screen | head -2)"
keys / C-u Enter
tm resize-window -t "$s" -x 120 -y 40 2>/dev/null || tm resize-pane -t "$s" -x 120 -y 40
# Off the end of the log, the selection stays on its record while the
# view is rebuilt (it jumped to the actor's oldest record, and stuck).
# The second record is the root's, as the first is.
sleep 0.5
keys Home Down
sleep 0.3
picked() { tm capture-pane -e -p -t "$s" | grep "$(printf '\033')\[[0-9;]*7[;m]" | grep -E '[0-9]{2}:[0-9]{2}:[0-9]{2}\.' | sed 's/\x1b\[[0-9;]*m//g' | head -1; }
before=$(picked)
sleep 2.5 # snapshots and records come in: the view is rebuilt
after=$(picked)
[ -n "$before" ] && [ "$before" = "$after" ] && ok "log: the selection stays on its record as the view is rebuilt" ||
    fail "log: the selection moved from '$before' to '$after'"
# The killed worker's row (the last worker-2: exited rows come after the
# live ones): b says it has exited, rather than "select an actor first".
keys 1 / worker-2 Enter End
sleep 0.3
keys b
on_screen "break: worker-2 \(actor [0-9]+\) has exited \(signal 9\): there is nothing to break" 5 &&
    ok "exited row: b says the actor has exited" || fail "exited row: b: $(screen | tail -2)"
keys / C-u Enter
sleep 0.5
keys 1

# Help, then q: detach, the tree runs on.
keys '?'
on_screen "canopy keys" 3 && ok "help: ? shows the keys" || fail "help: $(screen | head -5)"
# A key's help longer than the box goes on under itself, not off its edge.
on_screen "^ +lints: go to the actor" 2 && ok "help: a long line wraps inside the box" ||
    fail "help: no wrapped line: $(screen | grep -A1 Enter)"
keys x q
on_screen "\[exited 0\]" 5 && kill -0 "$tpid" && ok "q: detaches, the tree keeps running" ||
    fail "q: $(screen | tail -3); tree alive: $(kill -0 "$tpid" && echo yes)"
# q while an actor holds the console: left so, it would stay stopped, so q
# asks, and y continues it.
tui "$canopy" attach root
on_screen "worker-2" 10
keys / worker-0 Enter n
sleep 0.3
keys b
on_screen ">> root/sup-[0-9]/worker-0 has the debugger's console" 10 ||
    fail "q: the break did not get the console: $(screen | tail -3)"
keys q
on_screen "worker-0 is in the debugger and stays stopped" 5 &&
    ok "q: asks first when an actor holds the console" || fail "q with a holder: $(screen | tail -3)"
keys y
on_screen "\[exited 0\]" 5 && screen | grep -q "worker-0 continues" &&
    ok "q, y: the TUI says the actor continues, and quits" || fail "q, y: $(screen | tail -4)"
i=0
while "$canopy" tree root 2>/dev/null | grep -Eq "worker-0 .*(debugger|lock-wait)" && [ $i -lt 60 ]; do
    sleep 0.05
    i=$((i + 1))
done
"$canopy" tree root 2>/dev/null | grep -Eq "worker-0 .*(debugger|lock-wait)" &&
    fail "q, y: the worker is still in the debugger" || ok "q, y: the worker runs on"
# The TUI's console asks the root for the feed without the contexts' own
# events: a subscriber beside it still gets them, it does not. Cancelling a
# supervisor makes both kinds.
"$B/tests/helpers/evclasses" root 2500 >"$tmp/evc.out" 2>&1 &
evc=$!
sleep 0.5
"$canopy" cancel root root/sup-2 >/dev/null 2>&1
wait $evc
out=$(cat "$tmp/evc.out")
c_ctx=$(printf '%s\n' "$out" | sed -n 's/^console: \([0-9]*\) events, \([0-9]*\) of contexts$/\2/p')
c_all=$(printf '%s\n' "$out" | sed -n 's/^console: \([0-9]*\) events.*/\1/p')
s_ctx=$(printf '%s\n' "$out" | sed -n 's/^subscriber: \([0-9]*\) events, \([0-9]*\) of contexts$/\2/p')
[ "${c_ctx:-x}" = 0 ] && [ "${c_all:-0}" -gt 0 ] && [ "${s_ctx:-0}" -gt 0 ] &&
    ok "events: a console without contexts gets no ctx events, a subscriber beside it does ($(echo $out))" ||
    fail "events: $out"
kill -INT "$tpid"
wait "$tpid" 2>/dev/null
tpid=

# ---------------------------------------------------------------- spawn and exit
start_tree shapes late exit3
tui "$canopy" attach shapes
on_screen "late-1" 10
wait_for "spawning late-leaf" "$tmp/shapes.log" 10
t0=$(now_ms)
wait_for "spawned late-leaf" "$tmp/shapes.log" 10
if on_screen "late-leaf" 10; then
    dt=$(($(now_ms) - t0))
    [ "$dt" -le $((appear_s * 1000)) ] && ok "spawn: a new child is on screen ${dt} ms after its spawn began" ||
        fail "spawn: a new child took ${dt} ms to appear (limit ${appear_s} s)"
else
    fail "spawn: late-leaf never appeared: $(screen)"
fi
on_screen "exit3-2 .* exit 3 " 10 && ok "exit: an exited child stays, marked with its exit status" ||
    fail "exit: $(screen)"
keys q
stop_tree

# ---------------------------------------------------------------- the tree's last state
# A child killed, and the root returns at once (its stream into the child
# fails): the last screen shows the death, which the root's final events
# carry, not the child still running; the ages stop with the tree.
"$B/tests/helpers/lint_tree" feed >"$tmp/feed.out" 2>&1 &
fpid=$!
wait_for ready "$tmp/feed.out" 10 || fail "last state: the tree did not start"
tui "$canopy" attach lint
on_screen " kid " 10
kpid=$(pgrep -P "$fpid" | head -1)
kill -9 "$kpid"
on_screen "GONE" 5 && on_screen "^q quits; the screen shows the last state: the tree has gone: " 2 &&
    ok "last state: GONE, and the status line says so at once" ||
    fail "last state: $(screen | tail -3)"
on_screen " kid .*signal 9" 2 && ok "last state: the killed child shows as killed" ||
    fail "last state: the child's death is missing: $(screen | head -6)"
age1=$(screen | sed -n 's/.* lint .* \([0-9.]*m\{0,1\}s\) *$/\1/p' | head -1)
sleep 1.2
age2=$(screen | sed -n 's/.* lint .* \([0-9.]*m\{0,1\}s\) *$/\1/p' | head -1)
[ -n "$age1" ] && [ "$age1" = "$age2" ] && ok "last state: the ages stop when the tree goes ($age1)" ||
    fail "last state: ages went on: '$age1' then '$age2'"
keys q
wait "$fpid" 2>/dev/null

# ---------------------------------------------------------------- a burst, then quiet
# 2100 log lines at once, then nothing: more than the TUI takes in one turn
# (2000), so the rest waits in the client's buffer, where a poll of the
# socket does not see it. The last line must come all the same.
export DEBUG_TREE_BURST=$tmp/burst.go
start_tree bursty burst
tui "$canopy" attach bursty
on_screen "burst-1" 10
keys 4
touch "$DEBUG_TREE_BURST"
wait_for "burst line 2100" "$tmp/bursty.log" 10
# (If the tree had to drop some of them, the view ends with how many.)
on_screen "burst line 2100|events dropped" 5 && ok "log: a burst's end shows, with nothing after it" ||
    fail "log: the end of a burst is missing: $(screen | tail -3)"
keys q
stop_tree
unset DEBUG_TREE_BURST

# ---------------------------------------------------------------- two breakpoints
start_tree twobp bp bp
k=0
while [ "$(grep -c 'waits for the console' "$tmp/twobp.log")" -lt 2 ] && [ $k -lt 250 ]; do sleep 0.02; k=$((k + 1)); done
first=$(sed -n 's/.*debugger: \(twobp\/bp-[0-9]\) waits for the console.*/\1/p' "$tmp/twobp.log" | head -1)
second=$(sed -n 's/.*debugger: \(twobp\/bp-[0-9]\) waits for the console.*/\1/p' "$tmp/twobp.log" | sed -n 2p)
tui "$canopy" attach twobp
keys 5
if on_screen "holder: $first " 10 && on_screen "waiting 1: $second " 5; then
    ok "two breakpoints: the first to ask holds the console, the second waits"
else
    fail "two breakpoints: $(screen | head -6)"
fi
# Ctrl-C at the console goes to the root: it interrupts the holder's REPL
# and cancels nothing.
keys C-c
if on_screen "\^C: no command is running" 5 && kill -0 "$pid" && on_screen "holder: $first " 1; then
    ok "two breakpoints: Ctrl-C in the console interrupts the holder, the tree runs on"
else
    fail "two breakpoints: Ctrl-C: $(screen | tail -6)"
fi
# :queue lists the whole queue in the console, as in the line console;
# it and any other ':' line are the console's own, not the holder's.
keys :queue Enter
if on_screen "^holder:  $first: .*\(for [0-9.]+(ms|s|m|m[0-9]+s|h|h[0-9]+m|d|d[0-9]+h)\)" 5 &&
    on_screen "^waiting: 1[.] $second: .*\(for " 2; then
    ok "console: :queue lists the holder and who waits"
else
    fail "console: :queue: $(screen | tail -6)"
fi
keys :frobnicate Enter
on_screen "^  :release +make the holder continue" 5 && ! screen | grep -q "frobnicate.*not found" &&
    ok "console: an unknown ':' command shows the console's commands" ||
    fail "console: :frobnicate: $(screen | tail -8)"
sleep 2.2 # so that the next Ctrl-C is not a second one
keys c Enter
if on_screen "holder: $second " 10; then
    ok "two breakpoints: after continue the second has the console"
else
    fail "two breakpoints: after continue: $(screen | head -6)"
fi
keys c Enter
on_screen "holder: nobody" 10 && ok "two breakpoints: both served" || fail "two breakpoints: $(screen | head -4)"
# :break ACTOR in the console, as in the line console.
keys :break Space nope Enter
on_screen ":break: no actor 'nope'" 5 && ok "console: :break of an unknown actor says so" ||
    fail "console: :break nope: $(screen | tail -3)"
keys :break Space bq-2 Enter
on_screen ":break: no actor 'bq-2' in tree twobp; did you mean 'bp-2'?" 5 &&
    ok "console: :break of a mistyped actor names the one meant" ||
    fail "console: :break bq-2: $(screen | tail -3)"
keys :break Space bp-2 Enter
on_screen "holder: twobp/bp-2 " 10 && ok "console: :break ACTOR breaks into it, and it gets the console" ||
    fail "console: :break bp-2: $(screen | head -4)"
keys c Enter
on_screen "holder: nobody" 10
keys Escape q
stop_tree

# ---------------------------------------------------------------- long names
# A long tree name gives way to the tabs and the PAUSED flag at 80
# columns; a long actor name widens NAME, cut in the middle past that.
start_tree a-tree-name-long-enough-to-crowd-the-top-line late
tui "$canopy" attach a-tree-name-long-enough-to-crowd-the-top-line
on_screen "late-1" 10
tm resize-window -t "$s" -x 80 -y 24 2>/dev/null || tm resize-pane -t "$s" -x 80 -y 24
sleep 0.5 # a key typed during the resize can be lost (as above)
on_screen "^ a-tree-name-long-enough~ " 5
keys Space
on_screen "6 Lints +PAUSED *$" 5 && screen | head -1 | grep -Eq "^ a-tree-name-long-[a-z-]*~ " &&
    ok "long names: at 80 columns the tabs and PAUSED stay, the tree's name is cut" ||
    fail "long names: top line: $(screen | head -1)"
screen | grep -Eq "^ +0 - a-tree-name-lo~[a-z-]+-top-line +[0-9]+ running" &&
    ok "long names: at 80 columns a long name is cut in the middle, its end kept" ||
    fail "long names: at 80: $(screen | sed -n 3p)"
keys Space
# d at 80 columns: the status line shows the bundle's name before its
# directory, which a narrow line may cut (it cut the name).
keys d
on_screen "hang bundle written: canopy-dump-a-tree-name-long-enough" 15 &&
    ok "d: the bundle's file name comes first, before the cut at 80 columns" || fail "d: $(screen | tail -2)"
rm -f canopy-dump-a-tree-name-long-enough-to-crowd-the-top-line-*.json # written in the working directory
tm resize-window -t "$s" -x 120 -y 40 2>/dev/null || tm resize-pane -t "$s" -x 120 -y 40
sleep 0.5
on_screen "^ +0 - a-tree-name-long-enough-to-crowd-the-top-line +[0-9]+ running" 5 &&
    ok "long names: with room, NAME widens to the longest name" ||
    fail "long names: at 120: $(screen | sed -n 3p)"
keys q
stop_tree

# ---------------------------------------------------------------- colours
# tmux shows the colours a program set as SGR codes (capture-pane -e): the
# bars and states are coloured, and with NO_COLOR there is no colour at all.
start_tree colours idle
tui "$canopy" attach colours
on_screen "idle-1" 10
sleep 0.3
coloured=$(tm capture-pane -e -p -t "$s" | grep -c "$(printf '\033')\[[0-9;]*3[0-7]m")
tui env NO_COLOR=1 "$canopy" attach colours
on_screen "idle-1" 10
sleep 0.3
mono=$(tm capture-pane -e -p -t "$s" | grep -c "$(printf '\033')\[[0-9;]*3[0-7]m")
[ "$coloured" -gt 0 ] && [ "$mono" -eq 0 ] && on_screen "running" 1 &&
    ok "colours: the screen is coloured, and NO_COLOR leaves only attributes" ||
    fail "colours: $coloured coloured lines, $mono with NO_COLOR"
keys q
stop_tree

# ---------------------------------------------------------------- canopy run
tui "$canopy" run --name runt -- "$example"
if on_screen "canopy runt \(pid [0-9]+\)" 10 && on_screen "worker-2" 10; then
    ok "run: canopy run starts the tree, named by --name, and shows it"
else
    fail "run: $(screen)"
fi
keys 4
on_screen "tree is up" 10 && ok "run: the tree's log is in the log view, not over the screen" ||
    fail "run: log view: $(screen)"
rpid=$(screen | sed -n 's/.*canopy runt (pid \([0-9]*\)).*/\1/p' | head -1)
keys q
on_screen "cancel the tree\? y" 5 && ok "run: q asks whether to cancel the tree" || fail "run: q: $(screen | tail -3)"
keys n
on_screen "\[exited 0\]" 5
kill -0 "$rpid" 2>/dev/null && ok "run: n leaves the tree running" || fail "run: the tree is gone after n"
kill -INT "$rpid" 2>/dev/null

tui "$canopy" run -- "$tree_bin" --name=ends idle
on_screen "ends \(pid" 10
epid=$(screen | sed -n 's/.*canopy ends (pid \([0-9]*\)).*/\1/p' | head -1)
kill -TERM "$epid"
on_screen "the tree (exited with status|died of signal)" 10 && on_screen "GONE" 2 &&
    ok "run: when the tree exits, the TUI shows its last state and how it ended" ||
    fail "run: exit: $(screen | tail -4)"
keys q
on_screen "\[exited [0-9]+\]" 5 && ok "run: q then quits without asking" || fail "run: q after exit: $(screen | tail -3)"

# q, then y: the tree is cancelled, and what the program printed while it
# went down (after the TUI stopped reading) is shown when the TUI has gone.
tui "$canopy" run -- "$tree_bin" --name=bye idle
on_screen "bye \(pid" 10
keys q
on_screen "cancel the tree\? y" 5
keys y
on_screen "\[exited [0-9]+\]" 10 && screen | grep -q "^debug_tree: main is done" &&
    ok "run: q, y: the program's last output is shown after the TUI" ||
    fail "run: q, y: $(screen | grep -v '^$' | tail -5)"

tui "$canopy" run -- /no/such/program
on_screen "cannot run /no/such/program: No such file" 5 && on_screen "\[exited 1\]" 2 &&
    ok "run: a program that cannot run is a clear error" || fail "run: bad program: $(screen | head -4)"

# ---------------------------------------------------------------- mouse and GNU screen
start_tree mice idle idle
tui "$canopy" attach mice
on_screen "idle-2" 10
# SGR mouse reports, as xterm sends them (TERM=xterm-256color): press and
# release of button 1 at 1-based column $1, row $2.
click() { keys -l "$(printf '\033[<0;%d;%dM\033[<0;%d;%dm' "$1" "$2" "$1" "$2")"; }
col=$(screen | head -1 | grep -bo "4 Log" | cut -d: -f1)
click $((col + 2)) 1
on_screen "LEVEL +ACTOR" 5 && ok "mouse: a click on a tab switches the view" || fail "mouse: tab: $(screen | head -3)"
col=$(screen | head -1 | grep -bo "1 Tree" | cut -d: -f1)
click $((col + 2)) 1
on_screen "ID NAME" 5 && on_screen "idle-2" 5 || fail "mouse: the Tree tab: $(screen | head -3)"
row=$(screen | grep -n "idle-2" | head -1 | cut -d: -f1)
click 10 "$row"
keys 3
on_screen "\(mice/idle-2\)" 5 && ok "mouse: a click on a row selects that actor" ||
    fail "mouse: row $row: $(screen | head -3)"
keys q
on_screen "\[exited 0\]" 5
# screen() above is this test's capture of the tmux pane: gscreen is GNU screen.
gscreen() { env screen "$@"; }
if env which screen >/dev/null 2>&1; then
    scr=cn-scr-$$
    gscreen -dmS "$scr" -T screen-256color env CANOPY_RUNTIME_DIR="$CANOPY_RUNTIME_DIR" "$canopy" attach mice
    # screen writes the hardcopy after -X returns: wait for the new file
    # (seen under TSan: the old or no file was read, and the check failed).
    hc() {
        rm -f "$tmp/hc"
        gscreen -S "$scr" -X hardcopy "$tmp/hc" 2>/dev/null
        j=0
        while [ ! -s "$tmp/hc" ] && [ $j -lt 40 ]; do sleep 0.05; j=$((j + 1)); done
        cat "$tmp/hc" 2>/dev/null
    }
    i=0
    until hc | grep -q "idle-2" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
    shot=$(hc)
    echo "$shot" | grep -q "1 Tree 2 Routes 3 Contexts" && echo "$shot" | grep -q "idle-2" &&
        ok "screen: the TUI draws under GNU screen" || fail "screen: $(echo "$shot" | head -5)"
    gscreen -S "$scr" -X stuff 4
    i=0
    until hc | grep -Eq "LEVEL +ACTOR" || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
    hc | grep -Eq "LEVEL +ACTOR" && ok "screen: keys switch views" || fail "screen: 4: $(hc | head -3)"
    gscreen -S "$scr" -X stuff q
    i=0
    while gscreen -ls "$scr" 2>/dev/null | grep -q "$scr" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    gscreen -ls "$scr" 2>/dev/null | grep -q "$scr" && { fail "screen: q did not quit"; gscreen -S "$scr" -X quit; } ||
        ok "screen: q quits"
    kill -0 "$pid" && ok "screen: the tree runs on after q" || fail "screen: the tree is gone"
else
    skip "GNU screen is not installed (contrib/install-deps.sh installs it)"
fi
stop_tree

# ---------------------------------------------------------------- no terminal
out=$("$canopy" run -- "$example" </dev/null 2>&1) && rc=0 || rc=$?
[ $rc = 2 ] && printf '%s' "$out" | grep -q "needs a terminal" &&
    ok "run without a terminal: says it needs one (exit 2)" || fail "run without a terminal: $rc $out"

finish test_tui
