#!/bin/sh
# test_cli.sh: the canopy binary as a user meets it: help, version, and
# clear errors with exit status 2 for a wrong command line.
set -u
. "$(dirname "$0")/lib.sh"
c=${B:-build}/canopy

expect_rc 0 "--version exits 0" $c --version
expect_out '^canopy [0-9]+\.[0-9]+\.[0-9]+ \(wire protocol [0-9]+\)$' "--version prints version and protocol"
v=$(sed -n 's/^#define CN_VERSION_MAJOR //p' include/canopy/version.h)
expect_out "^canopy $v\." "--version matches version.h"
expect_rc 0 "-V is --version" $c -V
expect_rc 0 "version command" $c version

expect_rc 0 "--help exits 0" $c --help
expect_out '^usage: canopy' "--help shows usage"
expect_out '^  version +print' "--help lists commands from the table"
expect_rc 0 "help version" $c help version
expect_out '^usage: canopy version' "help CMD shows the command's usage"
expect_rc 0 "CMD --help" $c version --help
expect_out '^usage: canopy version' "CMD --help shows the command's usage"

expect_rc 2 "no arguments is a usage error" $c
expect_out '^usage: canopy' "no arguments prints usage"
expect_rc 2 "unknown command" $c frobnicate
expect_out "unknown command 'frobnicate'; run 'canopy --help' for the list" "unknown command is named"
expect_rc 2 "a mistyped command" $c trees
expect_out "unknown command 'trees'; did you mean 'tree'\?" "a mistyped command: the one meant"
expect_rc 2 "a mistyped command (letters swapped)" $c ltni
expect_out "did you mean 'lint'\?" "a swap is one mistake"
expect_rc 2 "unknown option" $c --frob
expect_out "unknown option '--frob'" "unknown option is named"
expect_rc 2 "an empty tree name" $c tree ''
expect_out "canopy tree: an empty name: give a tree or an actor, or leave it out" \
    "an empty name is refused, not taken as 'the only tree'"
expect_rc 2 "too many arguments" $c version extra
expect_out "expected 0 arguments, got 1" "argument count is explained"
expect_rc 2 "help for a missing command" $c help nope
expect_out "no command 'nope'" "help names the missing command"
expect_rc 2 "unknown option to a command" $c version --bogus
expect_out "unknown option '--bogus'" "a command's unknown option is named"
expect_out "^usage: canopy version" "a command line error shows the command's usage line"
expect_out "run 'canopy help version'" "and where the rest is"
n=$(printf '%s\n' "$out" | wc -l)
[ "$n" -le 3 ] && ok "a command line error is three lines, not the whole help" ||
    fail "a command line error printed $n lines: $out"
expect_rc 2 "a value given to a flag" $c ls --json=yes
expect_out "ls: --json takes no value" "the flag that takes no value is named"

# Every page of help fits 80 columns, and every command has one.
for cmd in $($c --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
    page=$($c help "$cmd")
    wide=$(printf '%s\n' "$page" | awk 'length($0) > 80' | head -1)
    [ -z "$wide" ] && ok "help $cmd fits 80 columns" || fail "help $cmd: over 80 columns: $wide"
done
wide=$($c --help | awk 'length($0) > 80' | head -1)
[ -z "$wide" ] && ok "--help fits 80 columns" || fail "--help over 80 columns: $wide"
n=$($c --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/' | wc -l)
[ "$n" -ge 11 ] && ok "--help lists every command ($n)" || fail "--help lists $n commands"

finish test_cli
