# lib_tree.sh: helpers for the shell tests that drive debug_tree trees
# with `canopy attach` as the console (sourced after lib.sh, not run).
# Sets B, tree_bin, canopy, tmp (removed on exit), CANOPY_RUNTIME_DIR,
# sanitized and tsan; the test keeps $pid (the tree's root) and $cpid
# (the console) current, so that the exit trap can clean them up.
B=${B:-build}
tree_bin=$B/tests/helpers/debug_tree
canopy=$B/canopy
tmp=$(mktemp -d)
export CANOPY_RUNTIME_DIR=$tmp/run
mkdir -m 700 "$CANOPY_RUNTIME_DIR"
pid= cpid=
cleanup() {
    [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    tm kill-server 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# tm ARGS...: tmux on a server of this test's own (its socket in $tmp),
# which no other use of tmux on the machine can touch. A test that runs
# one session after another keeps a session open meanwhile (tm_keep): a
# server whose last session ends exits, and a new-session that races
# that exit fails (seen in CI as "no server running", and a test that
# then drove nothing).
tm() { tmux -S "$tmp/tmux" "$@"; }
tm_keep() { tm new-session -d -s keep "sleep 3600"; }
sanitized=0 tsan=0
grep -q fsanitize "$B/.settings" 2>/dev/null && sanitized=1
grep -q fsanitize=thread "$B/.settings" 2>/dev/null && tsan=1

# wait_for PATTERN FILE [SECONDS]: until grep -E finds it (0) or time is up (1).
wait_for() {
    i=0
    while ! grep -Eq -- "$1" "$2" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt $((${3:-10} * 50)) ] && return 1
        sleep 0.02
    done
}

# pane_wait SESSION PATTERN [SECONDS]: until the pane shows a line grep -E
# finds (0) or time is up (1).
pane_wait() {
    i=0
    while ! tm capture-pane -p -t "$1" | grep -Eq -- "$2"; do
        i=$((i + 1))
        [ $i -gt $((${3:-5} * 20)) ] && return 1
        sleep 0.05
    done
}

# double_ctrl_c SESSION: two Ctrl-Cs, close enough to count as one escape.
double_ctrl_c() {
    tm send-keys -t "$1" C-c
    sleep 0.3
    tm send-keys -t "$1" C-c
}

start_tree() { # start_tree NAME ARGS...: the tree in the background, until "ready"
    name=$1
    shift
    "$tree_bin" --name="$name" "$@" </dev/null >"$tmp/$name.log" 2>&1 &
    pid=$!
    wait_for ready "$tmp/$name.log" 10 || fail "$name: the tree did not start"
}

stop_tree() { # cancels the tree and waits for it
    [ -n "$cpid" ] && { exec 3>&-; wait "$cpid" 2>/dev/null; cpid=; }
    kill -INT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
    # An actor may still hold the console: then the first Ctrl-C only
    # interrupted its REPL, and a second one kills the tree.
    kill -INT "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}

attach() { # attach NAME: a console reading lines from fd 3, output in $con
    con=$tmp/$1.con
    rm -f "$tmp/in"
    mkfifo "$tmp/in"
    "$canopy" attach --console "$1" <"$tmp/in" >"$con" 2>&1 &
    cpid=$!
    exec 3>"$tmp/in"
    wait_for "attached to" "$con" 5 || fail "$1: canopy attach did not attach: $(cat "$con")"
}
send() { echo "$1" >&3; }
# ask LINE PATTERN DESC: sends LINE to the console and checks that its
# output shows PATTERN (grep -E) within 5 s.
ask() {
    send "$1"
    wait_for "$2" "$con" 5 && ok "$3" || fail "$3: $(tail -5 "$con")"
}
