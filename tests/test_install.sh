#!/bin/sh
# test_install.sh: `make install` into a scratch prefix, then build and run
# a program against it the way a downstream user would: through
# pkg-config, once against the shared library and once statically.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

expect_rc 0 "make install PREFIX=..." make -s install PREFIX="$prefix" B="${B:-build}" CC="${CC:-cc}" SANITIZE="${SANITIZE:-}"
for f in bin/canopy lib/libcanopy.a lib/libcanopy.so lib/libcanopy.so.0 \
         lib/pkgconfig/canopy.pc include/canopy.h include/canopy/errors.h include/canopy/client.h; do
    if [ -e "$prefix/$f" ]; then ok "installed $f"; else fail "missing $prefix/$f"; fi
done
expect_rc 0 "installed canopy runs" "$prefix/bin/canopy" --version

cat > "$tmp/use.c" <<'C'
#include <canopy.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    printf("%s %s\n", cn_version_string(), cn_err_name(CN_ETIMEDOUT));
    return strcmp(cn_strerror(CN_EDEAD), "unknown error") == 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
san=""
[ -n "${SANITIZE:-}" ] && san="-fsanitize=${SANITIZE}"
expect_rc 0 "pkg-config finds canopy" pkg-config --exists canopy
# shellcheck disable=SC2046
expect_rc 0 "builds against libcanopy.so" ${CC:-cc} $san -o "$tmp/use" "$tmp/use.c" $(pkg-config --cflags --libs canopy)
expect_rc 0 "runs against libcanopy.so" env LD_LIBRARY_PATH="$prefix/lib" "$tmp/use"
expect_out "CN_ETIMEDOUT" "shared build prints the error name"
# shellcheck disable=SC2046
expect_rc 0 "builds statically" ${CC:-cc} $san -o "$tmp/use-static" "$tmp/use.c" $(pkg-config --cflags canopy) "$prefix/lib/libcanopy.a" $(pkg-config --libs --static canopy | sed 's/-lcanopy//')
expect_rc 0 "static build runs" "$tmp/use-static"

# Internal symbols stay out of the shared library's ABI.
if nm -D --defined-only "$prefix/lib/libcanopy.so" | grep -q 'cn_wire_'; then
    fail "libcanopy.so exports internal cn_wire_ symbols"
else
    ok "libcanopy.so exports only the public API"
fi

expect_rc 0 "make uninstall" make -s uninstall PREFIX="$prefix"
left=$(find "$prefix" -type f -o -type l)
if [ -z "$left" ]; then ok "uninstall removes every file"; else fail "uninstall left: $left"; fi

finish test_install
