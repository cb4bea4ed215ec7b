#!/bin/sh
# test_man.sh: the help and the man page agree with the command table.
#
# docs/canopy.1's COMMANDS, OPTIONS and EXIT STATUS sections are generated
# by `canopy help --man` from the table in ui/canopy.c and checked in
# between a BEGIN and an END line. This test fails when they differ from
# what the binary generates, or when its version is not version.h's.
# `sh tests/test_man.sh --update` rewrites that part (and the version, and
# the date when the text changed), then runs the checks.
#
# Beyond the exact comparison, it checks what a reader relies on, from the
# outside: each command's help has a usage line, a summary and the options
# the command really accepts; the rendered page has each command with its
# summary and its options; the page renders without warnings; it has the
# usual sections; and it names every environment variable the docs name.
set -u
. "$(dirname "$0")/lib.sh"
c=${B:-build}/canopy
page=docs/canopy.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The generated part's first and last lines start with these (awk reads
# them from ENVIRON, which keeps backslashes as they are).
export MAN_BEGIN='.\" BEGIN generated' MAN_END='.\" END generated'

expect_rc 0 "canopy help --man" $c help --man
$c help --man > "$tmp/gen" 2>&1
version=$(sed -n 's/^#define CN_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/canopy/version.h | paste -sd.)

if [ "${1:-}" = --update ]; then
    awk -v gen="$tmp/gen" '
        index($0, ENVIRON["MAN_BEGIN"]) == 1 { print; while ((getline l < gen) > 0) print l; skip = 1; next }
        index($0, ENVIRON["MAN_END"]) == 1 { skip = 0 }
        !skip' "$page" > "$tmp/new"
    if ! cmp -s "$page" "$tmp/new"; then
        sed -i "s/^\(\.TH CANOPY 1 \)[0-9-]*/\1$(date +%Y-%m-%d)/" "$tmp/new"
    fi
    sed -i "s/^\(\.TH CANOPY 1 [0-9-]* \"canopy \)[^\"]*\"/\1$version\"/" "$tmp/new"
    cat "$tmp/new" > "$page"
    echo "test_man: $page updated"
fi

# The generated part, exactly.
[ "$(grep -cF "$MAN_BEGIN" "$page")" = 1 ] && [ "$(grep -cF "$MAN_END" "$page")" = 1 ] &&
    ok "$page has one generated part" || fail "$page: no single BEGIN/END generated part"
awk 'index($0, ENVIRON["MAN_END"]) == 1 { on = 0 } on
     index($0, ENVIRON["MAN_BEGIN"]) == 1 { on = 1 }' "$page" > "$tmp/have"
if cmp -s "$tmp/gen" "$tmp/have"; then
    ok "$page's COMMANDS, OPTIONS and EXIT STATUS are the table's"
else
    fail "$page differs from 'canopy help --man' (run: sh tests/test_man.sh --update):
$(diff -u "$tmp/have" "$tmp/gen" | head -40 | sed 's/\\/\\\\/g')"
fi
th=$(sed -n 's/^\.TH CANOPY 1 [0-9-]* "canopy \([^"]*\)".*/\1/p' "$page")
[ "$th" = "$version" ] && ok ".TH names version $version" ||
    fail ".TH names version '$th', version.h $version (run: sh tests/test_man.sh --update)"

# The sections, in man-pages(7) order.
want="NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS EXIT_STATUS ENVIRONMENT FILES EXAMPLES SEE_ALSO"
have=$(sed -n 's/^\.SH "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$page" | tr ' ' _ | paste -sd' ')
[ "$have" = "$want" ] && ok "sections: $want" || fail "sections: $have; want $want"

# It renders without a warning.
if command -v groff >/dev/null 2>&1; then
    expect_rc 0 "groff renders it" groff -man -Tutf8 -ww -z "$page"
    [ -z "$out" ] && ok "groff: no warnings" || fail "groff warns: $out"
else
    skip "groff is not installed (groff-base)"
fi
if command -v mandoc >/dev/null 2>&1; then
    expect_rc 0 "mandoc -Tlint" mandoc -Tlint -W warning "$page"
else
    skip "mandoc is not installed"
fi

# Every command's help, from the outside: a usage line, the summary that
# --help shows, and the options it accepts, no more and no fewer.
# shellcheck disable=SC2016
cmds=$($c --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ -n "$cmds" ] && ok "--help lists the commands" || fail "--help lists no commands"
alloptions="--json --follow --level --actor --timeout --console --debug --name"
mkdir -p "$tmp/run"
export CANOPY_RUNTIME_DIR="$tmp/run" # no tree: the commands fail at once
for cmd in $cmds; do
    $c help "$cmd" > "$tmp/help" 2>&1
    summary=$($c --help | awk -v c="$cmd" '$1 == c && /^  / { $1 = ""; sub(/^ +/, ""); print; exit }')
    head -1 "$tmp/help" | grep -q "^usage: canopy $cmd\( \|$\)" && ok "help $cmd: usage line" ||
        fail "help $cmd: no usage line: $(head -1 "$tmp/help")"
    sed -n 3p "$tmp/help" | grep -qxF "$summary" && ok "help $cmd: summary" ||
        fail "help $cmd: summary is not '$summary'"
    # name<TAB>doc for each option in the help, continuation lines joined
    awk '/^options:/ { on = 1; next }
         on && /^  -/ { if (n) print n "\t" d; n = $0; sub(/^  /, "", n); d = n
                        sub(/  +.*/, "", n); sub(/^[^ ]+( [^ ]+)*  +/, "", d); next }
         on && /^   / { sub(/^ +/, ""); d = d " " $0 }
         END { if (n) print n "\t" d }' "$tmp/help" > "$tmp/opts"
    for o in $alloptions; do
        args=$o
        case $o in --level | --actor | --timeout | --name) args="$o 5" ;; esac
        # shellcheck disable=SC2086
        timeout 10 $c "$cmd" $args < /dev/null > "$tmp/o" 2>&1
        takes=0 listed=0
        grep -q "unknown option '$o'" "$tmp/o" || takes=1
        cut -f1 "$tmp/opts" | grep -Eq -- "(^|, )$o( |$)" && listed=1
        if [ $takes != $listed ]; then
            fail "$cmd $o: accepted $takes, listed in 'help $cmd' $listed"
        fi
    done
    ok "help $cmd: lists exactly the options it accepts ($(cut -f1 "$tmp/opts" | paste -sd' '))"
    cp "$tmp/opts" "$tmp/opts.$cmd"
    printf '%s\n' "$summary" > "$tmp/summary.$cmd"
done

# The rendered page: each command under its own heading, with its usage,
# its summary, and each of its options with its help. (Words are compared
# with spacing and case folded: troff fills lines and the page capitalises.)
if command -v groff >/dev/null 2>&1; then
    GROFF_NO_SGR=1 groff -man -Tascii -rLL=200n "$page" 2>/dev/null | col -b > "$tmp/txt"
    norm() { tr -s ' \t\n' '   ' | tr 'A-Z' 'a-z' | sed 's/^ //; s/ $//'; }
    for cmd in $cmds; do
        awk -v c="$cmd" '$0 == "   " c { on = 1; next }
                         on && (/^   [a-z]+$/ || /^[A-Z]/) { exit } on' "$tmp/txt" | norm > "$tmp/sec"
        if [ ! -s "$tmp/sec" ]; then
            fail "man: no heading for $cmd"
            continue
        fi
        grep -qF "canopy $cmd" "$tmp/sec" && ok "man $cmd: usage" || fail "man $cmd: no 'canopy $cmd'"
        s=$(norm < "$tmp/summary.$cmd")
        grep -qF "$s" "$tmp/sec" && ok "man $cmd: summary" || fail "man $cmd: no summary '$s'"
        bad=
        while IFS="$(printf '\t')" read -r name doc; do
            n=$(printf '%s' "$name" | norm) d=$(printf '%s' "$doc" | norm)
            grep -qF -- "$n $d" "$tmp/sec" || bad="$bad '$name'"
        done < "$tmp/opts.$cmd"
        [ -z "$bad" ] && ok "man $cmd: every option with its help" || fail "man $cmd: missing$bad"
    done
fi

# Every environment variable the docs name is in ENVIRONMENT.
sed -n '/^\.SH ENVIRONMENT/,/^\.SH FILES/p' "$page" > "$tmp/env"
missing=
for v in $(grep -ohE '\b(CANOPY_[A-Z_]+|NO_COLOR|XDG_RUNTIME_DIR)\b' docs/api.md docs/cli.md docs/tui.md docs/debugger.md | sort -u); do
    grep -q "$v" "$tmp/env" || missing="$missing $v"
done
[ -z "$missing" ] && ok "ENVIRONMENT names every variable in docs/" || fail "ENVIRONMENT lacks:$missing"

finish test_man
