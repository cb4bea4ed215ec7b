/*
 * ui.h: what the canopy tool's files share. Public headers only.
 */
#ifndef CANOPY_UI_H
#define CANOPY_UI_H

#include <stdint.h>
#include <stdio.h>

#include "canopy.h"
#include "canopy/client.h"

/* fmt.c: an age ("350ms", "4.2s", "12s", "2m05s", "17m", "1h02m", "13h",
 * "3d04h", "12d") and a size in KiB ("2452K", "14M", "9.8G", "123G"; "-"
 * when unknown), in five characters at most, the same in every command
 * and view. Each returns out. */
const char *ui_fmt_age(char *out, size_t n, uint64_t us);
/* "s" for a count that is not 1: "%zu actor%s". */
const char *ui_plural(size_t n);
const char *ui_fmt_kib(char *out, size_t n, int64_t kib);

/* suggest.c: the candidate closest to a mistyped word (at most 1 edit for
 * a word under 4 characters, 2 under 9, else 3), or NULL: for "did you
 * mean ...?". */
const char *ui_suggest(const char *word, const char *const *cands, size_t n);

/* Exit codes (documented in `canopy --help` and docs/cli.md). */
#define EXIT_FAIL 1     /* the command failed: no tree, tree exited, ... */
#define EXIT_USAGE 2    /* the command line was wrong */
#define EXIT_LINTS 3    /* `canopy lint`: it found a problem */

#define CONNECT_MS 2000    /* connecting to a tree */
#define SNAP_SLACK_MS 3000 /* a snapshot may take, on top of the actors' own timeout */
#define STACKS_TIMEOUT_MS 5000 /* each actor's default with stacks: it runs addr2line */

/* The length snprintf wrote into a buffer of `size`, from what it
 * returned (`n`): 0 on an error, the buffer's room when it was cut. */
static inline size_t ui_snlen(int n, size_t size)
{
    return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

/* Options a command may take; each command says which in its table entry. */
enum {
    OPT_JSON = 1 << 0,    /* --json */
    OPT_FOLLOW = 1 << 1,  /* -f, --follow */
    OPT_LEVEL = 1 << 2,   /* --level L */
    OPT_ACTOR = 1 << 3,   /* --actor A */
    OPT_TIMEOUT = 1 << 4, /* --timeout MS */
    OPT_CONSOLE = 1 << 5, /* --console */
    OPT_DEBUG = 1 << 6,   /* --debug */
    OPT_NAME = 1 << 7,    /* --name NAME */
    OPT_MAN = 1 << 8,     /* help --man: the man page's sections (hidden) */
};

typedef struct opts {
    int json, follow;
    const char *level, *actor;
    long timeout_ms; /* for each actor's answer; 0: the tree's default */
    int stacks;      /* snapshots include every thread's stack (bt, dump) */
    int console;     /* attach --console: the line console, not the TUI */
    int debug;       /* run --debug */
    const char *name; /* run --name NAME */
    int man;          /* help --man */
} opts_t;

/* canopy.c: a command line, parsed (cli_parse) but not run. */
struct cmd_entry;
typedef struct cli_line {
    const struct cmd_entry *cmd; /* the command to run, or NULL: none (see rc) */
    int nargs;
    char **args; /* its arguments, options taken out: argv's own strings, in an
                    array cli_line_fini frees */
    opts_t o;    /* its options; strings in it are argv's own */
    int rc;      /* -1 with cmd set; else the exit status to leave with */
} cli_line_t;

/* Parses main's argc and argv: the command, its options (anywhere after
 * it, until "--") and its arguments, checked against the command table.
 * Runs nothing and reaches no tree: --help prints to out, and a usage
 * error prints why to err. Returns l->rc: -1 when l->cmd is to be run,
 * else the exit status (0 after --help, EXIT_USAGE after a usage error).
 * Call cli_line_fini(l) after, in every case. */
int cli_parse(int argc, char **argv, FILE *out, FILE *err, cli_line_t *l);
void cli_line_fini(cli_line_t *l);

/* cli.c: reaching a tree, shared by the commands. */
void ui_say_error(const char *what, int rc); /* "canopy: what: why" on stderr */
int ui_snapshot_of(const char *tree, const opts_t *o, cn_snapshot_t **out);
/* cn_client_find, with why not printed; a mistyped name gets the running
 * tree's name it is closest to. */
int ui_find_tree(const char *tree, cn_tree_info_t *t);
/* [TREE] [ACTOR]: with one argument, a running tree's name wins. */
void ui_split_args(int argc, char **argv, const char **tree, const char **actor);
const char *ui_tree_of_path(const char *actor);
/* The parsing halves, which reach no tree (also for tests/fuzz/fuzz_cli.c):
 * ui_path_first copies an actor path's first part ("first" for
 * first/worker-1) into name (n bytes) and returns 1, or returns 0 if it
 * has no '/' or the part does not fit; ui_split_target splits ACTOR/CID
 * (CID all digits, at most 2^64-1) at its last '/' into actor (n bytes)
 * and *cid and returns 1, or returns 0 if target is not of that form or
 * the actor part does not fit. */
int ui_path_first(const char *actor, char *name, size_t n);
int ui_split_target(const char *target, char *actor, size_t n, uint64_t *cid);
/* "info" -> CN_LOG_INFO (any case); -1 if it names no level. */
int ui_parse_level(const char *s);
/* The actor `which` names in s (NULL: none asked), or CN_ENOENT and in
 * why (n bytes) why not: it has exited (how, when), a near name, or it is
 * ambiguous or unknown, with `hint` on where to look. */
int ui_find_actor(const cn_snapshot_t *s, const char *which, const char *hint,
                  const cn_snap_actor_t **out, char *why, size_t n);
/* ui_find_actor for the CLI: the reason printed. */
int ui_pick_actor(const cn_snapshot_t *s, const char *which, const cn_snap_actor_t **out);
/* The state to show for actor a: its own, or "debugger" while it holds
 * the console and "lock-wait" while it waits for it (its snapshot's
 * debug.state), as the TUI shows it. */
const char *ui_shown_state(const cn_snap_actor_t *a);
/* Whether a gdb some parent runs (its snapshot's debug.gdb) holds `id`:
 * an actor stopped under gdb cannot answer a snapshot. */
int ui_in_gdb(const cn_snapshot_t *s, uint32_t id);
/* Actor `id` in s, or NULL. */
const cn_snap_actor_t *ui_actor_by_id(const cn_snapshot_t *s, int64_t id);
/* The record at `a` (may be NULL) of the call or context `cid` (the
 * caller's numbering) whose other end is `peer`, in `role`; or NULL. */
const cn_snap_ctx_t *ui_ctx_at(const cn_snap_actor_t *a, uint64_t cid, const char *role,
                               uint32_t peer);

/* console.c: the debugger's line console, and break. */
int cli_attach(int argc, char **argv, const opts_t *o);
int cli_break(int argc, char **argv, const opts_t *o);

/* cli.c: the subcommands over the client API. */
int cli_ls(int argc, char **argv, const opts_t *o);
int cli_tree(int argc, char **argv, const opts_t *o);
int cli_routes(int argc, char **argv, const opts_t *o);
int cli_ctx(int argc, char **argv, const opts_t *o);
int cli_log(int argc, char **argv, const opts_t *o);
int cli_dump(int argc, char **argv, const opts_t *o);
int cli_lint(int argc, char **argv, const opts_t *o);
int cli_cancel(int argc, char **argv, const opts_t *o);
int cli_events(int argc, char **argv, const opts_t *o);
int cli_bt(int argc, char **argv, const opts_t *o);

/* cli.c: writes the hang bundle (snapshot, stacks if it has them, lints)
 * as one JSON object to f; 0, or -1 if it could not be written. */
int ui_dump_write(FILE *f, const cn_snapshot_t *s);

/* How long the TUI and canopy tree keep showing an actor that exited. */
#define EXITED_SHOW_US (60ULL * 1000000)

/* lint.c: hang lints over a snapshot. */
typedef struct lint {
    const char *name;     /* stuck-cancel, stalled-stream, ... */
    const char *severity; /* error, warning */
    char actors[256];     /* the actors involved, comma-separated paths */
    char what[768];       /* one sentence */
} lint_t;

/* Runs every lint on s; returns how many fired, filling out[0..max). */
size_t lint_run(const cn_snapshot_t *s, lint_t *out, size_t max);

/* json.c */
void json_str(FILE *f, const char *s, size_t n);
void json_cstr(FILE *f, const char *s);
void json_obj(FILE *f, const msgpack_object *o, int indent);

#endif /* CANOPY_UI_H */
