#!/bin/sh
# test_gdb.sh: the debugger's gdb bridge, driven as a user would, with
# `canopy attach` as the console fed line by line through a fifo:
#   - a grandchild at a breakpoint types `gdb`: its parent (not the root)
#     runs gdb on it; `info threads` and gdb's `bt` come back through the
#     console lock; Ctrl-C at the root interrupts gdb, not the tree;
#     `quit` detaches, the REPL has the console again, and `c` lets the
#     breakpoint return;
#   - a child of the root: the root itself relays gdb;
#   - :release while gdb is attached: gdb detaches, the actor continues
#     and is not left stopped;
#   - kill -9 of the actor under gdb: the console is released and gdb goes;
#   - gdb missing (CANOPY_GDB names no file), and ptrace refused (a
#     stand-in gdb that says so): the message says so and why, and the
#     REPL goes on;
#   - the root's own `gdb` says why it cannot and what to do instead.
# Skipped, with the reason, where gdb is not installed or the kernel
# refuses ptrace.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_tree.sh"

# proc_state PID: the one-letter state in /proc/PID/stat (T: stopped).
proc_state() { sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' "/proc/$1/stat" 2>/dev/null; }

# banner_pid: the holder's pid, from its REPL's banner in $con, once shown.
banner_pid() {
    wait_for "^-- .*pid [0-9]+\) --$" "$con" 10
    sed -n 's/^-- .*pid \([0-9]*\)) --$/\1/p' "$con" | head -1
}

# gdb_session NAME: in the console $con, the holder types gdb and waits
# for gdb's first prompt; 1 if ptrace was refused (a skip), 2 on failure.
gdb_session() {
    send gdb
    if ! wait_for "gdb commands now|^gdb: " "$con" 10; then
        fail "$1: no answer to 'gdb': $(tail -5 "$con")"
        return 2
    fi
    if grep -q "ptrace was refused" "$con" || wait_for "ptrace was refused" "$con" 2; then
        skip "$1: this kernel or container refuses ptrace: $(grep 'ptrace' "$con" | tail -1)"
        return 1
    fi
    if ! wait_for "Attaching to process" "$con" 10; then
        fail "$1: gdb did not attach: $(tail -5 "$con")"
        return 2
    fi
    return 0
}

if ! command -v gdb >/dev/null 2>&1; then
    skip "gdb bridge: gdb is not installed"
else
# ---------------------------------------------------------------- grandchild
start_tree gdbmid midbp
wait_for "waits for the console" "$tmp/gdbmid.log" 10
attach gdbmid
wait_for "gdbmid/midbp-1/leaf has the console" "$con" 5
lpid=$(banner_pid)
if gdb_session grandchild; then
    grep -q "^\[gdbmid/midbp-1 runs .*gdb -p $lpid" "$con" &&
        ok "grandchild: its parent, not the root, runs gdb -p on it" ||
        fail "grandchild: not run by the parent: $(grep runs "$con")"
    send "info threads"
    if wait_for "^\* 1 +Thread .*\(LWP $lpid\)" "$con" 10 && wait_for "^  2 +Thread .*\(LWP " "$con" 5; then
        ok "grandchild: gdb's 'info threads' comes back through the console lock"
    else
        fail "grandchild: no 'info threads' output: $(tail -8 "$con")"
    fi
    send "bt"
    wait_for "in entry_bp \(" "$con" 10 && ok "grandchild: gdb's bt shows the breakpoint's caller" ||
        fail "grandchild: gdb bt: $(tail -8 "$con")"
    # Stopped under gdb it cannot answer a snapshot: canopy tree says why.
    out=$("$canopy" tree gdbmid 2>&1)
    printf '%s\n' "$out" | grep -Eq "leaf +[0-9]+ +in gdb" && ok "grandchild: canopy tree says it is in gdb, with its pid" ||
        fail "grandchild: canopy tree: $out"
    # Lines are whole: gdb writes a frame in pieces, each must not end a line.
    bad=$(grep -c '^[a-z_]*=.*, *$' "$con")
    [ "$bad" -eq 0 ] && ok "grandchild: gdb's output arrives in whole lines" ||
        fail "grandchild: $bad lines broken where a read ended: $(grep '^[a-z_]*=.*, *$' "$con" | head -3)"
    send "continue"
    wait_for "^Continuing" "$con" 5
    kill -INT "$pid"
    if wait_for "received signal SIGINT" "$con" 5 && kill -0 "$pid" 2>/dev/null && kill -0 "$lpid"; then
        ok "grandchild: Ctrl-C at the root interrupts gdb; the tree runs on"
    else
        fail "grandchild: Ctrl-C under gdb: $(tail -4 "$con")"
    fi
    sleep 2.1 # past the double Ctrl-C window
    send "quit"
    if wait_for "gdb exited \(status 0\)" "$con" 10 && wait_for "back in the debugger of gdbmid/midbp-1/leaf" "$con" 5; then
        ok "grandchild: quit detaches gdb and the REPL has the console again"
    else
        fail "grandchild: after quit: $(tail -5 "$con")"
    fi
    send "bt"
    wait_for "stopped at the breakpoint" "$con" 5 && ok "grandchild: the REPL answers after gdb" ||
        fail "grandchild: no REPL after gdb: $(tail -3 "$con")"
    send c
    wait_for "after breakpoint: ok" "$tmp/gdbmid.log" 5 &&
        ok "grandchild: continue lets the breakpoint return" ||
        fail "grandchild: breakpoint did not return: $(tail -3 "$tmp/gdbmid.log")"
fi
stop_tree

# ---------------------------------------------------------------- child of the root
start_tree gdbroot bp
wait_for "waits for the console" "$tmp/gdbroot.log" 10
attach gdbroot
wait_for "gdbroot/bp-1 has the console" "$con" 5
cpid_=$(banner_pid)
if gdb_session child; then
    send "info threads"
    wait_for "^\* 1 +Thread .*\(LWP $cpid_\)" "$con" 10 &&
        ok "child of the root: the root relays gdb ('info threads')" ||
        fail "child of the root: no 'info threads': $(tail -6 "$con")"
    gpid=$(sed -n 's/.*(gdb pid \([0-9]*\)).*/\1/p' "$con" | tail -1)
    # :release under gdb: gdb detaches, the actor continues, nothing stays stopped
    send ":release"
    wait_for "after breakpoint: ok" "$tmp/gdbroot.log" 10 &&
        ok ":release under gdb: gdb detaches and the actor continues" ||
        fail ":release under gdb: $(tail -4 "$con")"
    i=0
    while [ -n "$gpid" ] && kill -0 "$gpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    st=$(proc_state "$cpid_")
    if [ -n "$gpid" ] && ! kill -0 "$gpid" 2>/dev/null && [ -n "$st" ] && [ "$st" != T ] && [ "$st" != t ]; then
        ok ":release under gdb: gdb is gone and the actor is not left stopped (state $st)"
    else
        fail ":release under gdb: gdb $gpid alive=$(kill -0 "$gpid" 2>/dev/null && echo y), actor state '$st'"
    fi
fi
stop_tree

# ---------------------------------------------------------------- kill -9 under gdb
start_tree gdbkill bp
wait_for "waits for the console" "$tmp/gdbkill.log" 10
attach gdbkill
wait_for "gdbkill/bp-1 has the console" "$con" 5
kpid=$(banner_pid)
if gdb_session kill; then
    gpid=$(sed -n 's/.*(gdb pid \([0-9]*\)).*/\1/p' "$con" | tail -1)
    kill -9 "$kpid"
    wait_for "gdbkill/bp-1 died holding the console" "$con" 10 &&
        ok "kill -9 under gdb: the console is released" ||
        fail "kill -9 under gdb: no release: $(tail -4 "$con")"
    i=0
    while kill -0 "$gpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    kill -0 "$gpid" 2>/dev/null && fail "kill -9 under gdb: gdb $gpid is still running" ||
        ok "kill -9 under gdb: its gdb is gone too"
fi
stop_tree
fi

# ---------------------------------------------------------------- no gdb, no ptrace
export CANOPY_GDB="$tmp/no/such/gdb"
start_tree nogdb bp
wait_for "waits for the console" "$tmp/nogdb.log" 10
attach nogdb
wait_for "has the console" "$con" 5
send gdb
wait_for "^gdb: gdb is not installed as CANOPY_GDB says: $tmp/no/such/gdb: No such file" "$con" 10 &&
    ok "no gdb: 'gdb' says gdb is not installed, and where it looked" ||
    fail "no gdb: $(tail -3 "$con")"
send "log info"
wait_for "log level of nogdb/bp-1 is now info" "$con" 5 && ok "no gdb: the REPL goes on" ||
    fail "no gdb: REPL after: $(tail -3 "$con")"
stop_tree

# A stand-in gdb that fails to attach, as gdb does where ptrace is refused.
cat >"$tmp/fakegdb" <<'EOF'
#!/bin/sh
for a; do last=$a; done
echo "Attaching to process $last"
echo "ptrace: Operation not permitted."
printf '(gdb) '
exec cat >/dev/null
EOF
chmod +x "$tmp/fakegdb"
export CANOPY_GDB="$tmp/fakegdb"
start_tree refused bp
wait_for "waits for the console" "$tmp/refused.log" 10
attach refused
wait_for "has the console" "$con" 5
send gdb
if wait_for "gdb could not attach: ptrace was refused \(the kernel's Yama policy" "$con" 10 &&
    grep -q "^ptrace: Operation not permitted" "$con"; then
    ok "ptrace refused: gdb's own words, then why, and the stand-in is stopped"
else
    fail "ptrace refused: $(tail -5 "$con")"
fi
send "log info"
wait_for "log level of refused/bp-1 is now info" "$con" 5 && ok "ptrace refused: the REPL goes on" ||
    fail "ptrace refused: REPL after: $(tail -3 "$con")"
stop_tree
unset CANOPY_GDB

# ---------------------------------------------------------------- the root
start_tree rootgdb
"$canopy" break rootgdb rootgdb >/dev/null 2>&1
attach rootgdb
wait_for "rootgdb has the console" "$con" 5
send gdb
wait_for "^gdb: the root has no parent to run gdb for it.*gdb -p $pid" "$con" 5 &&
    ok "root: 'gdb' says why it cannot, and the command to use instead" ||
    fail "root: $(tail -3 "$con")"
stop_tree

finish test_gdb
