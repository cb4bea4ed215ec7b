# lib.sh: helpers for canopy's shell tests (sourced, not run).
# Each test calls ok/fail; `finish` prints "NAME: N passed, N failed" and
# sets the exit status.
pass=0
failn=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
fail() { failn=$((failn + 1)); echo "FAIL $*"; }
# skip DESC: a check that does not apply to this build (said, not counted).
skip() { echo "skip $*"; }
# expect_rc WANT DESC CMD...: runs CMD, output to $out, checks its status.
expect_rc() {
    want=$1 desc=$2
    shift 2
    out=$("$@" 2>&1) && rc=0 || rc=$?
    if [ "$rc" = "$want" ]; then ok "$desc"; else fail "$desc (exit $rc, want $want): $out"; fi
}
# expect_out PATTERN DESC: checks that $out matches the grep -E pattern.
expect_out() {
    if printf '%s\n' "$out" | grep -Eq -- "$1"; then ok "$2"; else fail "$2: no /$1/ in: $out"; fi
}
finish() {
    echo "$1: $pass passed, $failn failed"
    [ "$failn" -eq 0 ]
}
# skip_under_tsan NAME: under TSan every actor runs 5-15 times slower, so
# the whole-system suites (chaos, soak) would take most of CI's time; CI
# runs the runtime's own tests under TSan instead. Skips, and ends the
# test, unless CHAOS_UNDER_TSAN=1.
skip_under_tsan() {
    case "${SANITIZE:-}" in
    *thread*)
        [ "${CHAOS_UNDER_TSAN:-0}" = 1 ] && return 0
        skip "$1 under TSan (CHAOS_UNDER_TSAN=1 runs it)"
        finish "$1"
        exit $?
        ;;
    esac
}
