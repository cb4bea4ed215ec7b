/*
 * inspect.h: the inspection service, hosted by each actor's broker
 * (internal).
 *
 * Every actor answers INSPECT with a SNAPSHOT of itself, built from the
 * runtime's own bookkeeping without stopping any thread (snapshot.c). The
 * root also listens on the attach socket, admits clients (the canopy
 * tool), and answers a client's INSPECT for the whole tree by asking every
 * actor at once and gathering the answers under a deadline (attach.c).
 *
 * The runtime calls only the entry points below; the service reads
 * runtime state through rt.h. All run on the broker thread.
 */
#ifndef CN_INSPECT_H
#define CN_INSPECT_H

#include <msgpack.h>

#include "wire/wire.h"

/* Packs this actor's snapshot: one map (docs/protocol.md, Inspection).
 * With stacks set, it also holds every thread's stack ("stacks"), read
 * by stopping each thread for the moment it takes (debug.h). */
void cn__snapshot_pack(msgpack_packer *pk, int stacks);

/* Takes an INSPECT or SNAPSHOT addressed to this actor (not from a
 * client). Takes m. */
void cn__inspect_on_msg(cn_wire_msg_t *m);

/* The root's broker: an actor's SNAPSHOT payload, as raw msgpack bytes
 * (checked by cn_wire_peek), for the request `cid`. Returns 0, or -1 if
 * it answers no request of ours (then it is handled as a message). */
int cn__inspect_snapshot_raw(uint32_t src, uint64_t cid, const char *payload, size_t len);

/* The root's broker: one of its own EVENT frames, for the subscribers;
 * `cid` is the frame header's (its class and how many events it holds:
 * cn__ev_class, cn__ev_count). (Events are queued where they happen and
 * sent by the broker, so the root's own arrive here on the broker thread,
 * like its children's.) */
void cn__inspect_event(const char *frame, size_t len, uint64_t cid);

/* The same for a child's EVENT as read: its body, without the length
 * prefix. */
void cn__inspect_event_body(const char *body, size_t len, uint64_t cid);

/* The root's broker, on each tick of its event clock (actor.c,
 * on_ev_tick): writes every subscriber's queued events. Returns 1 if it
 * wrote any (keep the clock), 0 if there were none to write (a client
 * waiting for its socket is written by that socket's poll). */
int cn__attach_events_tick(void);

/* The root's broker: a route to actor `id` was just added; if anyone
 * subscribes, that actor is told to send its events. */
void cn__inspect_route_added(uint32_t id);

/* The root: opens the attach socket. Returns 0, or a negative code after
 * logging why (the tree then runs without one). */
int cn__attach_start(void);

/* The root: removes the socket now; async-signal-safe, for a crash
 * handler. */
void cn__attach_unlink_now(void);

/* The root: closes every client and removes the socket. Safe to call
 * twice, and just before exit_group. */
void cn__attach_stop(void);

/*
 * Test and fuzz hooks (tests/fuzz/fuzz_attach.c, fuzz_repl.c): the
 * attach clients without the listening socket, for a root made with
 * cn__rt_init_root whose caller runs the loop as the broker. The broker
 * thread only.
 */
typedef struct cn__client cn__client_t;

/* Admits a client on the connected socket `fd` (one end of a
 * socketpair, say), which it owns from here on, as if it had just
 * connected to the attach socket: same uid check, same limits. Replies are
 * written to fd; the peer end must read them, or the client is cut off
 * once OUT_MAX bytes wait. Returns the client, or NULL if it was refused
 * (fd is closed then). */
cn__client_t *cn__attach_client_open(int fd);

/* Handles one decoded message from client c as if it had arrived on its
 * socket (HELLO first, then INSPECT, CANCEL, SUBSCRIBE, BREAK, CONSOLE_IN,
 * LOCK_RELEASE). Does not take m. Returns 0, or -1 if c is cut off (now or
 * before): then it is closing, and c must not be used again. */
int cn__attach_client_msg(cn__client_t *c, cn_wire_msg_t *m);

/* Cuts client c off, as when its peer hangs up. Its handle closes, and c
 * is freed, on the loop's next turn; c must not be used again. */
void cn__attach_client_close(cn__client_t *c);

#endif /* CN_INSPECT_H */
