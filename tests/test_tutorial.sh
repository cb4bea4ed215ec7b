#!/bin/sh
# test_tutorial.sh: every program in docs/tutorial.md compiles and runs.
#   - each ```c block must open with "/* tutorial: step-N.c */" (a block
#     that is not a whole program must not be marked c), and the names are
#     unique;
#   - each program compiles with -g -Wall -Wextra -Werror against $B's
#     libcanopy.a, the way the tutorial tells a reader to (with $CC, and
#     $SANITIZE as the library was built), and runs to exit status 0;
#   - where the page shows a step's run ("$ ./step-N" in a text block),
#     it shows all of it: the lines without a timestamp are exactly what
#     the program printed on stdout, in order, and the timestamped lines
#     are exactly the log lines it wrote on stderr, in any order (they
#     come from several processes), with the "HH:MM:SS.mmm " prefix taken
#     off and "pid N" numbers ignored;
#   - the last step: its cancellations, and its `linger` mode as section 8
#     uses it: `canopy tree` and `canopy ctx` see the ticker, and SIGINT
#     ends it with status 0, leaving no actor behind.
# CN_TUTORIAL_MD=FILE checks another copy of the page (to see this fail).
set -u
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
CC=${CC:-cc}
doc=${CN_TUTORIAL_MD:-$top/docs/tutorial.md}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
export CANOPY_RUNTIME_DIR=$tmp/run
mkdir -m 700 "$CANOPY_RUNTIME_DIR"
unset CANOPY_DEBUG CANOPY_LOG_LEVEL CANOPY_LOG_FILE CANOPY_TREE CANOPY_CONSOLE CANOPY_ATTACH
san=
[ -n "${SANITIZE:-}" ] && san="-fsanitize=$SANITIZE -fno-omit-frame-pointer"

# ---------------------------------------------------------------- extract
# Writes each tutorial program to $tmp/NAME, lists the names in
# $tmp/programs, and for each "$ ./step-N" transcript the lines of the
# program's own output in $tmp/step-N.want and its log lines (those that
# start with a timestamp) in $tmp/step-N.wantlog. Prints "bad: ..." for a c block
# that is not a tutorial program, or a name used twice. Fences may be
# indented (inside a list item): that indent is taken off the code.
awk -v dir="$tmp" '
    function fence(line) { return line ~ /^ ? ? ?```/ } # no {0,3}: mawk has no intervals
    !inblk && fence($0) {
        indent = $0; sub(/```.*/, "", indent)
        info = $0; sub(/^ *```/, "", info); split(info, w, /[ \t]/)
        inblk = 1; kind = tolower(w[1]); first = 1; file = ""; want = ""; wantlog = ""
        next
    }
    inblk && fence($0) {
        inblk = 0
        if (file != "") close(file)
        if (want != "") { close(want); close(wantlog) }
        next
    }
    inblk {
        line = $0
        if (indent != "" && index(line, indent) == 1) line = substr(line, length(indent) + 1)
        if (first) {
            first = 0
            if (kind == "c") {
                if (match(line, /^\/\* tutorial: step-[0-9]+\.c \*\/$/)) {
                    name = line; sub(/^\/\* tutorial: /, "", name); sub(/ \*\/$/, "", name)
                    if (name in seen) print "bad: line " NR ": " name " is used twice"
                    seen[name] = 1
                    file = dir "/" name
                    print name > (dir "/programs")
                } else {
                    print "bad: line " NR ": a c block that is not a tutorial program (" line ")"
                }
            } else if (kind == "text" && line ~ /^\$ \.\/step-[0-9]+$/) {
                want = dir "/" substr(line, 5) ".want"
                wantlog = want "log"
                printf "" > want
                printf "" > wantlog
                next
            }
        }
        if (file != "") print line > file
        else if (want != "" && line ~ /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9] /) print line > wantlog
        else if (want != "") print line > want
    }
' "$doc" >"$tmp/extract.out"
if grep -q "^bad:" "$tmp/extract.out"; then
    fail "tutorial: $(grep '^bad:' "$tmp/extract.out" | tr '\n' ' ')"
else
    ok "tutorial: every c block is a numbered program"
fi
programs=$(cat "$tmp/programs" 2>/dev/null)
n=$(echo $programs | wc -w)
[ "$n" -ge 1 ] && ok "tutorial: $n programs found" || fail "tutorial: no programs in $doc"
last=$(echo "$programs" | sed 's/^step-\([0-9]*\)\.c$/\1 &/' | sort -n | tail -1 | cut -d' ' -f2)

# ---------------------------------------------------------------- compile
for f in $programs; do
    exe=$tmp/${f%.c}
    # shellcheck disable=SC2046,SC2086
    if $CC -std=c11 -g -Wall -Wextra -Werror $san -I"$top/include" -o "$exe" "$tmp/$f" "$B/libcanopy.a" \
        $(pkg-config --cflags --libs libuv msgpack) -lpthread >"$tmp/$f.cc" 2>&1; then
        ok "$f compiles"
    else
        fail "$f does not compile: $(head -20 "$tmp/$f.cc")"
    fi
done

# ---------------------------------------------------------------- run
# no_reports DESC LOG: a child's sanitizer report lands in the root's log,
# and would not change the root's exit status.
no_reports() {
    if grep -Eq "ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer|runtime error:" "$2"; then
        fail "$1: a sanitizer report: $(grep -E -A5 'Sanitizer|runtime error:' "$2" | head -20)"
    fi
}
# loglines FILE: its lines without the "HH:MM:SS.mmm " prefix, "pid 123"
# as "pid N", sorted (the order of log lines may vary).
loglines() {
    sed -e 's/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9] //' -e 's/pid [0-9][0-9]*/pid N/g' "$1" | LC_ALL=C sort
}
for f in $programs; do
    exe=$tmp/${f%.c}
    [ -x "$exe" ] || continue
    timeout -k 2 30 "$exe" </dev/null >"$exe.out" 2>"$exe.log" && rc=0 || rc=$?
    if [ $rc = 0 ]; then ok "$f runs, exit 0"; else fail "$f: exit status $rc: $(cat "$exe.out" "$exe.log")"; fi
    no_reports "$f" "$exe.log"
    [ -f "$exe.want" ] || continue
    if cmp -s "$exe.want" "$exe.out"; then
        ok "$f: its output (stdout) is what the tutorial shows"
    else
        fail "$f: its output (stdout) is not what the tutorial shows: $(diff "$exe.want" "$exe.out" | sed -n 's/^< \(.*\)/[shown, not printed: \1]/p; s/^> \(.*\)/[printed, not shown: \1]/p' | tr '\n' ' ')"
    fi
    loglines "$exe.wantlog" >"$exe.wantlog.n"
    loglines "$exe.log" >"$exe.log.n"
    if cmp -s "$exe.wantlog.n" "$exe.log.n"; then
        ok "$f: its log lines (stderr) are what the tutorial shows, timestamps and order aside"
    else
        fail "$f: its log lines (stderr) are not what the tutorial shows: $({ comm -23 "$exe.wantlog.n" "$exe.log.n" | sed 's/.*/[shown, not logged: &]/'; comm -13 "$exe.wantlog.n" "$exe.log.n" | sed 's/.*/[logged, not shown: &]/'; } | tr '\n' ' ')"
    fi
done

# ---------------------------------------------------------------- the last step
exe=$tmp/${last%.c}
if [ -n "$last" ] && [ -f "$exe" ] && [ -x "$exe" ]; then
    out=$(cat "$exe.out")
    expect_out "^tick 3$" "$last: three ticks"
    expect_out "^cancel ticker: CN_OK, acknowledged$" "$last: the ticker's cancel is acknowledged"
    expect_out "^ticker ended: CN_ECANCELED$" "$last: the ticker ended cancelled"
    expect_out "^cancel worker-2: CN_OK$" "$last: worker-2 cancelled"

    # Section 8: linger, looked at with canopy, then Ctrl-C.
    CN_TUTORIAL_RUN=$$ "$exe" linger </dev/null >"$tmp/linger.out" 2>"$tmp/linger.log" &
    pid=$!
    i=0
    while ! grep -q "^tick 2$" "$tmp/linger.out" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    expect_rc 0 "$last linger: canopy tree" "$B/canopy" tree first
    expect_out "worker-1" "$last linger: canopy tree lists worker-1"
    expect_out "worker-2" "$last linger: canopy tree lists worker-2"
    expect_rc 0 "$last linger: canopy ctx" "$B/canopy" ctx first/worker-1
    expect_out "ticker +first +streaming" "$last linger: canopy ctx shows the ticker streaming"
    kill -INT $pid
    i=0
    while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    wait $pid && rc=0 || rc=$?
    pid=
    [ $rc = 0 ] && ok "$last linger: SIGINT, exit 0" || fail "$last linger: exit status $rc: $(cat "$tmp/linger.log")"
    no_reports "$last linger" "$tmp/linger.log"
    grep -q "^stopped: CN_ECANCELED$" "$tmp/linger.out" && ok "$last linger: the wait ended with CN_ECANCELED" ||
        fail "$last linger: $(cat "$tmp/linger.out")"
    # Every actor of the run has CN_TUTORIAL_RUN in its environment.
    left=$(grep -lzx "CN_TUTORIAL_RUN=$$" /proc/[0-9]*/environ 2>/dev/null)
    [ -z "$left" ] && ok "$last linger: no actor left behind" || fail "$last linger: left: $left"
fi

finish test_tutorial
