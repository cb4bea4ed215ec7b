/*
 * root_harness.h: an in-process root for the fuzz targets that drive the
 * root's broker code (fuzz_attach, fuzz_repl) without a real tree.
 *
 * The fuzzer's process becomes a root with cn__rt_init_root: no attach
 * socket, no broker thread, no children. The fuzzer's own thread is the
 * broker: it calls the broker's entry points (the attach hooks in
 * inspect/inspect.h, cn__repl_line) and then runs the loop one turn at a
 * time (fz_settle) so that timers, polls and closes happen as they would.
 * Each client ("peer") is one end of a socketpair handed to the root; the
 * harness holds the other end, reads every reply and checks that it is a
 * frame that decodes, of a type the root may send a client.
 *
 * What must not run in a fuzzer is wrapped at link time (-Wl,--wrap in
 * the Makefile's FUZZ_ROOT_WRAP), and only that:
 *   kill                      kill(getpid(), ...) (the REPL's `kill`) is
 *                             counted instead; any other pid gets the real
 *                             kill (addr2line's, say);
 *   cn__cancel_tree           an operator's CANCEL of actor 0, the whole
 *                             tree: the real one shuts the root down and
 *                             closes every handle of the loop;
 *   cn__shutdown_after_debug  the REPL's `cancel` (no CID): the same, once
 *                             the session ends.
 * Each wrapper checks its arguments and counts the call (fz_stats).
 *
 * Memory must not grow from one input to the next (libFuzzer's leak check
 * stays on): fz_reset ends every debugger session the input left open,
 * through a console client of its own, and then checks that the lock, the
 * subscriber counts and the freeze are back to nothing.
 *
 * The broker thread only, like everything it calls.
 */
#ifndef CN_FUZZ_ROOT_HARNESS_H
#define CN_FUZZ_ROOT_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "inspect/inspect.h"
#include "wire/wire.h"
#include "check.h"

/* One client of the root, and our end of its socket. */
typedef struct fz_peer {
    int fd;                /* our end; -1 once closed */
    cn__client_t *c;       /* the root's client; NULL once it is cut off */
    int gone;              /* the root has freed it (its end is closed) */
    cn_wire_decoder_t dec; /* the root's replies */
    unsigned answers;      /* replies other than EVENT: HELLO, RETURN, DEAD, SNAPSHOT */
    unsigned events;
    unsigned dead;        /* of the answers, DEADs */
    uint64_t last_cid;    /* the last answer's cid */
    uint32_t last_type;   /* and its type */
    int console_out;      /* console output events seen (kind "console") */
} fz_peer_t;

/* Counts of what the wrappers caught. */
typedef struct fz_stats {
    unsigned self_kills, tree_cancels, shutdowns;
} fz_stats_t;
extern fz_stats_t fz_stats;

/* Makes this process the root, once (later calls do nothing): its log
 * goes to /dev/null at level trace, and its own terminal is never the
 * console. */
void fz_root_init(void);

/* A new client on a socketpair. Returns 0, or -1 if the root refused it. */
int fz_peer_open(fz_peer_t *p);

/* Appends to sb a frame of hdr and `body` (len bytes, copied as they
 * are: any bytes, so the frame need not be valid) and decodes it as the
 * root's socket would (1 MiB limit). Returns the message (free it with
 * cn_wire_msg_free), or NULL if the frame does not decode. */
cn_wire_msg_t *fz_frame(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body,
                        size_t len);

/* Hands m to the root as a message from p (the handler, not the socket).
 * Returns 0, or -1 if p is cut off (then, or before). */
int fz_peer_msg(fz_peer_t *p, cn_wire_msg_t *m);

/* Writes raw bytes into p's socket, for the root to read itself. */
void fz_peer_write(fz_peer_t *p, const void *buf, size_t len);

/* The usual messages: HELLO with the right version, SUBSCRIBE with a map
 * of booleans (events, console), LOCK_RELEASE {op}. Each returns what
 * fz_peer_msg does. */
int fz_peer_hello(fz_peer_t *p);
int fz_peer_subscribe(fz_peer_t *p, int events, int console);
int fz_peer_lock_op(fz_peer_t *p, const char *op);

/* Runs the loop, a turn at a time, and reads every peer's replies,
 * until a turn brings nothing more. peers[0..n), NULL entries skipped. */
void fz_settle(fz_peer_t **peers, size_t n);

/* Cuts p off (if the root has not already) and lets the root close it;
 * p is done with after this. */
void fz_peer_close(fz_peer_t *p);

/* After an input: ends the debugger sessions it left, restores the log
 * level, and checks that nothing of it is left (lock, consoles,
 * subscribers, frozen threads). */
void fz_reset(void);

/* The wrappers (see above). */
int __wrap_kill(pid_t pid, int sig);
int __real_kill(pid_t pid, int sig);
void __wrap_cn__cancel_tree(const char *why);
void __wrap_cn__shutdown_after_debug(const char *why);

#endif /* CN_FUZZ_ROOT_HARNESS_H */
