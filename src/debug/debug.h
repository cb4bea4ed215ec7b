/*
 * debug.h: the tree debugger, hosted by each actor's broker (internal).
 *
 * Two halves (docs/debugger.md):
 *   - lock.c, the root only: the console lock, a FIFO queue of actors that
 *     want the console. The holder's CONSOLE_OUT goes to the attached
 *     console clients and their input lines go to the holder only.
 *   - repl.c, every actor: a debugger session. Something asks for one
 *     (cn_breakpoint, a BREAK from the user, a crash in debug mode); the
 *     broker sends LOCK_REQ to the root, and once granted runs the REPL's
 *     commands on the broker thread, so a session works however stuck the
 *     actor's own threads are.
 *   bt.c turns stacks into text; crash.c catches fatal signals.
 *
 * The runtime calls only the entry points below, on the broker thread
 * unless they say otherwise.
 */
#ifndef CN_DEBUG_H
#define CN_DEBUG_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "wire/wire.h"

/* Start-up, any actor (before the broker runs): debug mode from the
 * config and CANOPY_DEBUG, the freeze and crash handlers. */
void cn__debug_init(int debug_mode);

/* Whether the tree runs in debug mode. Any thread. */
int cn__debug_mode(void);

/* A CONSOLE_IN line of this one byte is Ctrl-C at the console. */
#define CN__INTERRUPT "\003"

/* Whether `type` is one of the debugging block's: LOCK_REQ, LOCK_GRANT,
 * LOCK_RELEASE, CONSOLE_IN, CONSOLE_OUT, BREAK (codes 15 to 20) and GDB
 * (26). */
static inline int cn__debug_msg_type(uint32_t type)
{
    return (type >= CN_MSG_LOCK_REQ && type <= CN_MSG_BREAK) || type == CN_MSG_GDB;
}

/* A debugging message addressed to this actor. Takes m. */
void cn__debug_on_msg(cn_wire_msg_t *m);

/* Test and fuzz hook (tests/fuzz/fuzz_repl.c): runs one line of console
 * input (`len` bytes, any bytes) through the REPL of the session this
 * actor holds the console for, exactly as a CONSOLE_IN from the root
 * would: the answer goes to the root as CONSOLE_OUT, and `continue` ends
 * the session. Returns 0, or CN_EINVAL when this actor holds no console
 * (no session, or not granted yet). */
int cn__repl_line(const char *line, size_t len);

/* Starts sessions that other threads asked for (cn_breakpoint, a crash). */
void cn__debug_on_wake(void);

/* A task thread whose function failed (not cancelled, not relaying
 * another actor's error): in debug mode, stops it in the debugger until
 * `continue`, before the error is relayed; `frames` is where it called
 * cn_call_fail, if it did. Does nothing outside debug mode. */
void cn__debug_task_failed(const char *reason, void *const *frames, int nframes);

/* Whether this actor is in a debugger session or waits for one. Any
 * thread. */
int cn__debug_active(void);

/* Packs this actor's debugger state as a snapshot entry: "debug" and a
 * map (and, at the root, "lock" and the queue). */
void cn__debug_pack(msgpack_packer *pk);

/* Packs "stacks" and every thread's stack but the broker's: an array of
 * {tid, name, state, frames}, frames being "fn at file:line" strings. In a
 * session, the stacks as the session stopped them; otherwise each thread
 * is stopped only while its stack is read. */
void cn__debug_pack_stacks(msgpack_packer *pk);

/* The root: the lock's share of the debugging messages (LOCK_REQ,
 * LOCK_RELEASE, CONSOLE_OUT from actors), from cn__debug_on_msg. */
void cn__lock_on_msg(const cn_wire_msg_t *m);

/* The root: packs the lock's holder and waiters (a map). */
void cn__lock_pack(msgpack_packer *pk);

/* The root: actor `id` is gone from the tree; if it held or waited for the
 * lock it no longer does. */
void cn__lock_actor_gone(uint32_t id, const char *why);

/* The root: Ctrl-C while an actor holds the console. If one does, its
 * REPL is told (it says how to escape) and 1 is returned; else 0. */
int cn__lock_interrupt(void);

/* The root: a console client attached or detached (attach.c). */
void cn__lock_consoles_changed(void);

/* The root: a client's debugging request (CONSOLE_IN, BREAK, LOCK_RELEASE
 * with an op). Returns 0, or a negative code with err (CN__REASON_MAX
 * bytes) saying why. `who` names the client for log lines; `from` is the
 * client (a line it typed is shown to the other consoles, not to it). */
int cn__lock_client_msg(const cn_wire_msg_t *m, const char *who, const void *from, char *err);

/* The root: sends the lock's state (holder and waiters) to one new
 * console, as lock events, through send(frame, len, arg). */
void cn__lock_replay(void (*send)(const char *frame, size_t len, void *arg), void *arg);

/* --- gdb.c: a parent runs gdb for a child in the debugger */

/* GDB {op: "start"} from a child: runs gdb on it, or answers "failed". */
void cn__gdb_on_start(const cn_wire_msg_t *m);

/* A CONSOLE_IN for (actor, sid) on its way down: 1 if it went to gdb
 * (the actor is stopped under it), else 0 and it goes on. */
int cn__gdb_input(uint32_t actor, uint64_t sid, const char *data, size_t len);

/* The root took the console from `actor`: its gdb, if any, detaches. */
void cn__gdb_released(uint32_t actor, const char *why);

/* A debugging message passing through to a child: cn__gdb_input for a
 * CONSOLE_IN (1 if taken), cn__gdb_released for the root's LOCK_RELEASE. */
int cn__gdb_passing(const cn_wire_msg_t *m);

/* The child `actor` has exited: its gdb goes. */
void cn__gdb_actor_gone(uint32_t actor);

/* SIGCHLD: reaps gdb if it exited. */
void cn__gdb_on_sigchld(void);

/* The root's loop ends: gdb goes now. */
void cn__gdb_stop(void);

/* Packs "gdb": nil, or {actor, pid, target_pid, since_us} of the gdb this
 * actor runs for a child. */
void cn__gdb_pack(msgpack_packer *pk);

/* --- tty.c: the root's own terminal as the console */

/* Whether the terminal can be the console: stdin and stdout a terminal,
 * the root in the foreground, CANOPY_CONSOLE not 0. */
int cn__tty_usable(void);

/* Takes the terminal for the holder `path` (or changes the prompt); each
 * line typed is handed to line(). */
void cn__tty_start(const char *path, void (*line)(const char *line, size_t len));

/* Gives the terminal back to the program. */
void cn__tty_stop(void);
/* Puts the terminal back as the program had it before the console took
 * it: on every way out of the root, a signal handler's too. */
void cn__tty_reset(void);

/* Prints above the line being typed. */
void cn__tty_write(const char *text, size_t len);

/* --- provided by attach.c, for lock.c */

/* Sends a frame to every console client but `except` (a client, or
 * NULL); with also_subscribers, to event subscribers too. Returns how many
 * consoles there are. */
unsigned cn__attach_console_send(const char *frame, size_t len, int also_subscribers,
                                 const void *except);
unsigned cn__attach_consoles(void);

/* --- bt.c */

/* Appends one line per frame ("#N  fn at file:line") to out. Frames are
 * return addresses, but for first_is_pc: frame 0 is where a signalled
 * thread was. Uses addr2line when it is installed, for static functions
 * and lines; waits at most timeout_ms for it. */
void cn__bt_write(msgpack_sbuffer *out, void *const *frames, int n, int first_is_pc,
                  int64_t timeout_ms);

/* The address to look a frame up by: a return address minus one (the
 * call), or, `exact`, the frame itself (where a signalled thread was). */
uintptr_t cn__bt_look(void *frame, int exact);

/* Looks up look[0..n) (from cn__bt_look) in one addr2line run per
 * module, for the cn__bt_write calls that follow; known ones are kept. */
void cn__bt_resolve(const uintptr_t *look, int n, int64_t timeout_ms);

/* printf into a byte buffer. */
void cn__sb_printf(msgpack_sbuffer *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- crash.c */

/* Installs the fatal-signal handlers (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT) where the program left them at their defaults. */
void cn__crash_init(void);

/* The crash a thread is parked in, for the broker's session: its signal,
 * thread id and stack. 0 if none. Any thread. */
int cn__crash_pending(int *sig, int *tid, void **frames, int *nframes, int max);

/* "SIGSEGV (segmentation fault)", ...: static strings. */
const char *cn__crash_sig_name(int sig);

/* Broker: lets the crashed thread go on to die of its signal. */
void cn__crash_release(void);

/* Broker: writes the crashed thread's stack to stderr with function names
 * and file:line (addr2line cannot run in the signal handler), then, with
 * then_release (outside debug mode), lets it die; in debug mode the
 * post-mortem session does that. The thread writes the raw stack itself
 * if this has not begun within CN__CRASH_WAIT_MS. */
void cn__crash_write_stack(int then_release);
#define CN__CRASH_WAIT_MS 3000

#endif /* CN_DEBUG_H */
