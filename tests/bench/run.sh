#!/bin/sh
# run.sh OUT.json BENCH...: runs each benchmark, prints its table, and
# writes every figure into OUT.json as one object:
#   {"name": {"value": N, "unit": "...", "baseline": N, "ratio": N}, ...}
set -eu
out=$1
shift
tmp=$out.parts
: > "$tmp"
# Waits, up to 30 s, until at most one other task is runnable in five
# samples in a row (/proc/loadavg's 4th field counts this reader too):
# a benchmark's actors take a while to go, and one that starts while
# the last one's 200 are still being torn down measures the teardown.
settle() {
    quiet=0 waited=0
    while [ "$quiet" -lt 5 ] && [ "$waited" -lt 300 ]; do
        runnable=$(cut -d' ' -f4 /proc/loadavg 2>/dev/null | cut -d/ -f1)
        if [ "${runnable:-0}" -le 2 ]; then quiet=$((quiet + 1)); else quiet=0; fi
        sleep 0.1
        waited=$((waited + 1))
    done
    [ "$waited" -le 5 ] || echo "bench: waited $((waited / 10)).$((waited % 10)) s for the machine to settle"
}

for b in "$@"; do
    settle
    echo "== $b"
    "$b" --json "$tmp"
done
{
    echo "{"
    sed '$!s/$/,/' "$tmp" | sed 's/^/  /'
    echo "}"
} > "$out"
rm -f "$tmp"
echo "bench: $(grep -c '"ratio"' "$out") figures written to $out"
