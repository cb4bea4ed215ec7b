/*
 * tty.c: the root's own terminal as the debugger's console, when no
 * console client is attached (docs/debugger.md, "The console").
 *
 * The terminal is taken only while an actor holds the console, and given
 * back when it releases, so a root program that reads its own stdin is
 * disturbed only then. It is used at all only when stdin and stdout are
 * a terminal and the root is in its foreground process group (a
 * background job reading it would be stopped by SIGTTIN), and not with
 * CANOPY_CONSOLE=0. libedit edits the line and keeps history; output
 * that arrives while the user types is printed above the line.
 *
 * Invariant: the root's broker thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "debug/debug.h"
#include "runtime/rt.h"

static struct {
    int on;       /* the handler is installed and fd 0 watched */
    uv_poll_t in; /* fd 0 */
    int inited;
    char prompt[CN__PATH_MAX + 4];
    void (*line)(const char *line, size_t len);
} tty;

int cn__tty_usable(void)
{
    const char *e = getenv("CANOPY_CONSOLE");
    if (e && strcmp(e, "0") == 0)
        return 0;
    return isatty(0) && isatty(1) && tcgetpgrp(0) == getpgrp();
}

static void on_line(char *line)
{
    if (line == NULL) { /* Ctrl-D: the console stays; nothing to send */
        fputs("\n(Ctrl-D does not leave a debugger session: type 'c' to continue)\n", stdout);
        fflush(stdout);
        return;
    }
    if (*line)
        add_history(line);
    tty.line(line, strlen(line));
    free(line);
    /* A fresh handler: libedit would otherwise redraw the line just
     * entered as if still being typed when output arrives. */
    if (tty.on) {
        rl_callback_handler_remove();
        rl_callback_handler_install(tty.prompt, on_line);
    }
}

static void on_input(uv_poll_t *p, int status, int events)
{
    (void)p, (void)events;
    if (status == 0 && tty.on)
        rl_callback_read_char();
}

void cn__tty_start(const char *path, void (*line)(const char *line, size_t len))
{
    snprintf(tty.prompt, sizeof(tty.prompt), "(%s) ", path);
    tty.line = line;
    if (tty.on) {
        rl_set_prompt(tty.prompt);
        rl_forced_update_display();
        return;
    }
    if (!tty.inited) {
        if (uv_poll_init(&cn__rt.loop, &tty.in, 0) < 0)
            return;
        uv_unref((uv_handle_t *)&tty.in); /* never what keeps the loop alive */
        tty.inited = 1;
    }
    tty.on = 1;
    rl_callback_handler_install(tty.prompt, on_line);
    uv_poll_start(&tty.in, UV_READABLE, on_input);
}

void cn__tty_stop(void)
{
    if (!tty.on)
        return;
    tty.on = 0;
    uv_poll_stop(&tty.in);
    rl_callback_handler_remove();
    fputs("\r\033[K", stdout);
    fflush(stdout);
}

void cn__tty_write(const char *text, size_t len)
{
    if (tty.on)
        fputs("\r\033[K", stdout);
    fwrite(text, 1, len, stdout);
    if (len && text[len - 1] != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    if (tty.on)
        rl_forced_update_display();
}
