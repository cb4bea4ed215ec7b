#!/bin/sh
# test_fuzz_replay.sh: every fuzz target's checked-in corpus, replayed
# against the normal build.
#
# $(B)/tests/replay/fuzz_NAME is tests/fuzz/fuzz_NAME.c's harness built by
# the build's own compiler, flags and sanitizers, with tests/fuzz/replay.c
# for a main instead of libFuzzer. Each runs once over
# tests/fuzz/corpus/NAME/: the seeds, and the regress-* inputs that once
# crashed a target (a finding aborts the replay, so the test fails). The
# fuzzing itself is `make fuzz-run`.
set -u
. "$(dirname "$0")/lib.sh"
r=${B:-build}/tests/replay

for bin in "$r"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin##*/fuzz_}
    corpus=tests/fuzz/corpus/$name
    [ -d "$corpus" ] || { fail "$name: no corpus at $corpus"; continue; }
    n=$(ls "$corpus" | wc -l)
    expect_rc 0 "fuzz_$name replays its $n inputs" "$bin" "$corpus"
    for f in "$corpus"/regress-*; do
        [ -e "$f" ] || continue
        expect_rc 0 "fuzz_$name: ${f##*/} (a fixed finding)" "$bin" "$f"
    done
done
[ -x "$r/fuzz_wire" ] || fail "no replay binaries in $r (make tests)"
finish test_fuzz_replay
