#!/bin/sh
# install-deps.sh: install the Debian packages canopy needs to build, test
# and fuzz, but only those that are missing.
#
# Idempotent: a second run installs nothing and does not touch apt's lists.
# Works as root on a fresh Debian 12; as another user it uses sudo when it
# has to install something. Set CANOPY_DEPS_DRY_RUN=1 to print what would be
# installed without installing it.
set -eu

# One package a line (binutils: addr2line, for the debugger's file:line in
# bt; gdb: the debugger's gdb bridge and its test; groff-base: rendering
# the man page in tests/test_man.sh; screen: the TUI's test under GNU
# screen; clang-tidy and valgrind: make lint and make memcheck).
PACKAGES="
build-essential
pkg-config
libuv1-dev
libmsgpack-dev
libncurses-dev
libedit-dev
libcmocka-dev
clang
libclang-rt-dev
tmux
binutils
gdb
groff-base
screen
clang-tidy
valgrind
"

missing=""
for p in $PACKAGES; do
    # dpkg-query prints "install ok installed" only for a fully installed package.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

echo "install-deps: installing:$missing"
if [ "${CANOPY_DEPS_DRY_RUN:-0}" = 1 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root and no sudo; install as root:$missing" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh image may have empty lists; refresh them once, only when installing.
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
