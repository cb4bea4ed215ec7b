#!/bin/sh
# run.sh OUT.json BENCH...: runs each benchmark, prints its table, and
# writes every figure into OUT.json as one object:
#   {"name": {"value": N, "unit": "...", "baseline": N, "ratio": N}, ...}
set -eu
out=$1
shift
tmp=$out.parts
: > "$tmp"
for b in "$@"; do
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
