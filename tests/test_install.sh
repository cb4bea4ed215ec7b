#!/bin/sh
# test_install.sh: `make install` as a user and as a packager does it, then
# build and run programs against what was installed the way a downstream
# user would: through pkg-config only.
#
# 1. `make install PREFIX=$tmp/prefix`: a program built through pkg-config,
#    once against the shared library and once statically, and once more
#    after the tree is moved, told its new prefix; uninstall.
# 2. `make install DESTDIR=$tmp/dest PREFIX=/usr/local`, as a package build
#    stages it: every file in its place under DESTDIR and nowhere else, with
#    its mode, the soname, canopy.pc naming /usr/local (not the staging
#    directory), the man page; then a program that spawns a child actor and
#    calls it, built with nothing but `pkg-config --cflags --libs canopy`
#    and run against the staged libcanopy.so; uninstall.
#
# pkg-config and the staging directory: canopy.pc holds the final prefix
# (/usr/local), as it must for the installed system, and libdir and
# includedir under it (${prefix}/lib), so that a moved tree is found with
# --define-variable=prefix=DIR (step 1 does it). For the staged copy
# PKG_CONFIG_SYSROOT_DIR is what pkg-config has: it prepends the staging
# directory to every -I and -L it prints, as in a cross or staged build.
# PKG_CONFIG_PATH adds
# the staged pkgconfig directory; the system's own .pc files (msgpack,
# libuv) are still found, and their flags name only system directories,
# which pkg-config leaves out.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
mk() { make -s "$@" B="${B:-build}" CC="${CC:-cc}" SANITIZE="${SANITIZE:-}"; }
san=""
[ -n "${SANITIZE:-}" ] && san="-fsanitize=${SANITIZE}"
version=$(sed -n 's/^#define CN_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/canopy/version.h | paste -sd.)
major=${version%%.*}

# ---------------------------------------------------------------- PREFIX=
expect_rc 0 "make install PREFIX=..." mk install PREFIX="$prefix"
for f in bin/canopy lib/libcanopy.a lib/libcanopy.so lib/libcanopy.so.0 \
         lib/pkgconfig/canopy.pc include/canopy.h include/canopy/errors.h include/canopy/client.h \
         share/man/man1/canopy.1; do
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

# A moved tree: pkg-config told the new prefix names its directories.
# (--define-variable sets every package's prefix, msgpack's too, so the
# build alone could pass on a canopy.pc that still names the old tree.)
mv "$prefix" "$tmp/moved"
for v in libdir includedir; do
    got=$(PKG_CONFIG_PATH="$tmp/moved/lib/pkgconfig" \
        pkg-config --define-variable=prefix="$tmp/moved" --variable=$v canopy)
    case $got in
    "$tmp/moved/"*) ok "moved tree: $v follows the prefix" ;;
    *) fail "moved tree: $v is '$got', not under $tmp/moved" ;;
    esac
done
# shellcheck disable=SC2046
expect_rc 0 "builds against a moved tree (--define-variable=prefix)" ${CC:-cc} $san \
    -o "$tmp/use-moved" "$tmp/use.c" \
    $(PKG_CONFIG_PATH="$tmp/moved/lib/pkgconfig" \
        pkg-config --define-variable=prefix="$tmp/moved" --cflags --libs canopy)
expect_rc 0 "runs against the moved tree" env LD_LIBRARY_PATH="$tmp/moved/lib" "$tmp/use-moved"
mv "$tmp/moved" "$prefix"

expect_rc 0 "make uninstall" make -s uninstall PREFIX="$prefix"
left=$(find "$prefix" -type f -o -type l)
if [ -z "$left" ]; then ok "uninstall removes every file"; else fail "uninstall left: $left"; fi

# ---------------------------------------------------------------- DESTDIR=
dest=$tmp/dest
root=$dest/usr/local
expect_rc 0 "make install DESTDIR=... PREFIX=/usr/local" mk install DESTDIR="$dest" PREFIX=/usr/local

# Every file, with its mode; nothing else, and nothing outside the prefix.
want="bin/canopy 755
lib/libcanopy.a 644
lib/libcanopy.so.$version 755
lib/pkgconfig/canopy.pc 644
include/canopy.h 644
share/man/man1/canopy.1 644"
for h in include/canopy/*.h; do
    want="$want
$h 644"
done
while read -r f mode; do
    if [ ! -f "$root/$f" ]; then
        fail "staged: missing $f"
    elif [ "$(stat -c %a "$root/$f")" != "$mode" ]; then
        fail "staged: $f has mode $(stat -c %a "$root/$f"), want $mode"
    else
        ok "staged: $f, mode $mode"
    fi
done <<EOF
$want
EOF
extra=$(cd "$dest" && find . -type f | sed 's|^\./usr/local/||' | sort |
        grep -vxF "$(printf '%s\n' "$want" | cut -d' ' -f1)")
[ -z "$extra" ] && ok "staged: no other files, none outside usr/local" || fail "staged: unexpected files: $extra"
[ "$(readlink "$root/lib/libcanopy.so.$major")" = "libcanopy.so.$version" ] &&
    [ "$(readlink "$root/lib/libcanopy.so")" = "libcanopy.so.$major" ] &&
    ok "staged: libcanopy.so -> .so.$major -> .so.$version" ||
    fail "staged: symlinks: $(ls -l "$root"/lib/libcanopy.so*)"
soname=$(readelf -d "$root/lib/libcanopy.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libcanopy.so.$major" ] && ok "staged: soname $soname" || fail "staged: soname '$soname'"
cmp -s docs/canopy.1 "$root/share/man/man1/canopy.1" && ok "staged: the man page is docs/canopy.1" ||
    fail "staged: the man page differs from docs/canopy.1"
if command -v man >/dev/null 2>&1; then
    expect_rc 0 "man finds the staged page" man -M "$root/share/man" -w canopy
    expect_out "^$root/share/man/man1/canopy.1" "man -w names it"
else
    skip "man is not installed"
fi
# canopy.pc names the final prefix: the staging directory is not in it.
pc=$root/lib/pkgconfig/canopy.pc
grep -qx 'prefix=/usr/local' "$pc" && grep -qx 'libdir=${prefix}/lib' "$pc" &&
    grep -qx 'includedir=${prefix}/include' "$pc" && grep -qx "Version: $version" "$pc" &&
    ok "staged canopy.pc: /usr/local, version $version" || fail "staged canopy.pc: $(cat "$pc")"
grep -q "$dest" "$pc" && fail "staged canopy.pc names the staging directory" ||
    ok "staged canopy.pc does not name the staging directory"
expect_rc 0 "staged canopy runs" env LD_LIBRARY_PATH="$root/lib" "$root/bin/canopy" help ls
expect_out '^usage: canopy ls' "staged canopy prints its help"

# A real program: the root spawns a child actor and calls it.
cat > "$tmp/call.c" <<'C'
#include <canopy.h>
#include <stdio.h>
#include <string.h>

/* add([a, b]) -> [a + b, the path of the actor that added] */
static int add(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2)
        return cn_call_fail(call, CN_EINVAL, "add takes [a, b]");
    const char *me = cn_path();
    msgpack_pack_array(out, 2);
    msgpack_pack_uint64(out, args->via.array.ptr[0].via.u64 + args->via.array.ptr[1].via.u64);
    return msgpack_pack_str_with_body(out, me, strlen(me));
}

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_portal_t child;
    int rc = cn_spawn("adder", NULL, &child, 10000);
    if (rc < 0) {
        printf("spawn: %s\n", cn_strerror(rc));
        return 1;
    }
    msgpack_object two[2] = {{.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 2},
                             {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 3}};
    msgpack_object args = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {2, two}};
    cn_result_t r;
    rc = cn_call(child, "add", &args, &r, 10000);
    int good = rc == 0 && r.value.type == MSGPACK_OBJECT_ARRAY && r.value.via.array.size == 2;
    if (good) {
        const msgpack_object *v = r.value.via.array.ptr;
        printf("2 + 3 = %llu from %.*s\n", (unsigned long long)v[0].via.u64,
               (int)v[1].via.str.size, v[1].via.str.ptr);
        good = v[0].via.u64 == 5;
    } else {
        printf("add: %s: %s\n", cn_strerror(rc), r.error.message ? r.error.message : "");
    }
    cn_result_free(&r);
    return good ? 0 : 1;
}

static const cn_export_t exports[] = {{"add", add}, {NULL, NULL}};

int main(int argc, char **argv)
{
    cn_config_t cfg = {.name = "installed", .exports = exports, .main = root_main};
    return cn_run(argc, argv, &cfg);
}
C
export PKG_CONFIG_PATH="$root/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
expect_rc 0 "pkg-config finds the staged canopy" pkg-config --modversion canopy
expect_out "^$version\$" "pkg-config: version $version"
expect_rc 0 "pkg-config --cflags --libs canopy" pkg-config --cflags --libs canopy
flags=$out
expect_out "-I$root/include( |\$)" "pkg-config: -I the staged include directory"
expect_out "-L$root/lib( |\$)" "pkg-config: -L the staged lib directory"
# shellcheck disable=SC2086
expect_rc 0 "builds with only pkg-config's flags" ${CC:-cc} $san -o "$tmp/call" "$tmp/call.c" $flags
expect_rc 0 "links libcanopy.so.$major from the staged lib" env LD_LIBRARY_PATH="$root/lib" ldd "$tmp/call"
expect_out "libcanopy\.so\.$major => $root/lib/libcanopy\.so\.$major " "ldd: libcanopy.so.$major is the staged one"
mkdir -p "$tmp/run"
expect_rc 0 "spawns a child actor and calls it" \
    env LD_LIBRARY_PATH="$root/lib" CANOPY_RUNTIME_DIR="$tmp/run" timeout 60 "$tmp/call"
expect_out "^2 \+ 3 = 5 from installed/adder$" "the child's answer comes back"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

expect_rc 0 "make uninstall DESTDIR=... PREFIX=/usr/local" make -s uninstall DESTDIR="$dest" PREFIX=/usr/local
left=$(find "$dest" -type f -o -type l)
if [ -z "$left" ]; then ok "uninstall from DESTDIR removes every file"; else fail "uninstall left: $left"; fi

finish test_install
