/*
 * fuzz_repl.c: libFuzzer target for the debugger's REPL (src/debug/repl.c:
 * run_line, which cuts a console line into words and runs the command
 * the first names: the built-in table, then the program's own commands).
 *
 * The process is a root without a tree (root_harness.h). For each input
 * a console client attaches and breaks into the root, as `canopy attach`
 * and `canopy break` would, so the root's own debugger holds a real
 * session; then every line of the input goes to cn__repl_line, exactly as
 * a CONSOLE_IN would, and the answers come back to the console client as
 * console events, each checked to decode. A line that ends the session
 * (`continue`, `kill`) is followed by a new break for the next one. The
 * program's own commands and variables are two commands and a variable
 * registered here (cn_debug_command, cn_debug_var).
 *
 * Input: lines separated by '\n'; any bytes, NUL included (the console
 * path cuts a line at NUL, the REPL itself must not care). kill,
 * cn__cancel_tree and cn__shutdown_after_debug are wrapped at link time
 * (root_harness.h): `kill` and `cancel` would otherwise end the fuzzer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canopy.h"
#include "debug/debug.h"
#include "root_harness.h"

/* The program's own commands: `echo ARGS` prints them back, walking argv
 * to its NULL as code written for main's argv does (getopt, execvp);
 * `fail N` fails with the code -N (cn_strerror's text is printed). */
static int cmd_echo(int argc, char **argv, cn_debug_out_t *out, void *arg)
{
    (void)arg;
    int n = 0;
    for (char **a = argv; *a; a++, n++)
        cn_debug_printf(out, "%s%s", n ? " " : "", *a);
    cn_debug_printf(out, "\n");
    CHECK(n == argc);
    return 0;
}

static int cmd_fail(int argc, char **argv, cn_debug_out_t *out, void *arg)
{
    (void)out, (void)arg;
    return argc > 1 ? -abs(atoi(argv[1]) % 4096) : CN_EINVAL;
}

static void var_answer(cn_debug_out_t *out, void *arg)
{
    cn_debug_printf(out, "%d", *(int *)arg);
}

static void init_once(void)
{
    static int done;
    static int answer = 42;
    if (done)
        return;
    done = 1;
    fz_root_init();
    CHECK(cn_debug_command("echo", "prints its arguments", cmd_echo, NULL) == 0);
    CHECK(cn_debug_command("fail", "fails with the code it is given", cmd_fail, NULL) == 0);
    CHECK(cn_debug_var("answer", var_answer, &answer) == 0);
}

/* Breaks into the root from the console client: the lock grants the new
 * session to the root at once, since a console is attached. */
static void break_in(fz_peer_t *con)
{
    static const uint8_t nil = 0xc0;
    cn_wire_hdr_t h = {CN_MSG_BREAK, CN_ROOT_ID, 0, 7};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_msg_t *m = fz_frame(&sb, &h, &nil, 1);
    CHECK(m != NULL);
    CHECK(fz_peer_msg(con, m) == 0);
    cn_wire_msg_free(m);
    msgpack_sbuffer_destroy(&sb);
    fz_settle(&con, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fz_peer_t con;
    fz_peer_t *pc = &con;
    CHECK(fz_peer_open(&con) == 0);
    CHECK(fz_peer_hello(&con) == 0);
    CHECK(fz_peer_subscribe(&con, 0, 1) == 0);
    fz_settle(&pc, 1);

    for (size_t pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        const char *line = (const char *)data + pos;
        pos += len + 1;
        if (cn__repl_line(line, len) == CN_EINVAL) { /* no session: a new one */
            break_in(&con);
            CHECK(cn__repl_line(line, len) == 0);
        }
        fz_settle(&pc, 1);
        CHECK(con.c != NULL); /* the console stays attached whatever is typed */
    }
    fz_peer_close(&con);
    fz_reset();
    return 0;
}
