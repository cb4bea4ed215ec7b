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
 * libedit is loaded with dlopen the first time the terminal is taken, not
 * linked: every actor process would otherwise map it and its own
 * dependencies (about 100 KiB of resident memory each) for a console only
 * the root ever uses. Without it the terminal is not used, and actors
 * wait for `canopy attach` as with no terminal at all.
 *
 * Invariant: the root's broker thread only.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "debug/debug.h"
#include "runtime/rt.h"

/* The few libedit calls used, found at run time (its readline API). */
typedef void rl_vcpfunc_t(char *line);
static struct {
    int tried, ok;
    void (*handler_install)(const char *, rl_vcpfunc_t *);
    void (*handler_remove)(void);
    void (*read_char)(void);
    int (*set_prompt)(const char *);
    void (*redisplay)(void);
    int (*history)(const char *);
} el;

static int load_libedit(void)
{
    if (el.tried)
        return el.ok;
    el.tried = 1;
    void *h = dlopen("libedit.so.2", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        h = dlopen("libedit.so", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        cn_log(CN_LOG_INFO, "debugger: libedit is not installed: the root's terminal cannot be "
                            "the console (use canopy attach)");
        return 0;
    }
    *(void **)&el.handler_install = dlsym(h, "rl_callback_handler_install");
    *(void **)&el.handler_remove = dlsym(h, "rl_callback_handler_remove");
    *(void **)&el.read_char = dlsym(h, "rl_callback_read_char");
    *(void **)&el.set_prompt = dlsym(h, "rl_set_prompt");
    *(void **)&el.redisplay = dlsym(h, "rl_forced_update_display");
    *(void **)&el.history = dlsym(h, "add_history");
    el.ok = el.handler_install && el.handler_remove && el.read_char && el.set_prompt &&
            el.redisplay && el.history;
    return el.ok;
}

static struct {
    int on;       /* the handler is installed and fd 0 watched */
    uv_poll_t in; /* fd 0 */
    int inited;
    int in_line; /* on_line runs: no line is being edited (see cn__tty_write) */
    char prompt[CN__PATH_MAX + 4];
    void (*line)(const char *line, size_t len);
    struct termios saved; /* the terminal as the program had it */
    volatile sig_atomic_t saved_ok;
} tty;

int cn__tty_usable(void)
{
    const char *e = getenv("CANOPY_CONSOLE");
    if (e && strcmp(e, "0") == 0)
        return 0;
    return isatty(0) && isatty(1) && tcgetpgrp(0) == getpgrp() && load_libedit();
}

static void on_line(char *line)
{
    if (line == NULL) { /* Ctrl-D: the console stays; nothing to send */
        fputs("\n(Ctrl-D does not leave a debugger session: type 'c' to continue)\n", stdout);
        fflush(stdout);
        return;
    }
    if (*line)
        el.history(line);
    tty.in_line = 1;
    tty.line(line, strlen(line));
    tty.in_line = 0;
    free(line);
    /* A fresh handler: libedit would otherwise redraw the line just
     * entered as if still being typed when output arrives. */
    if (tty.on) {
        el.handler_remove();
        el.handler_install(tty.prompt, on_line);
    }
}

static void on_input(uv_poll_t *p, int status, int events)
{
    (void)p, (void)events;
    if (status == 0 && tty.on)
        el.read_char();
}

void cn__tty_start(const char *path, void (*line)(const char *line, size_t len))
{
    snprintf(tty.prompt, sizeof(tty.prompt), "(%s) ", path);
    tty.line = line;
    if (tty.on) {
        el.set_prompt(tty.prompt);
        el.redisplay();
        return;
    }
    if (!tty.inited) {
        if (uv_poll_init(&cn__rt.loop, &tty.in, 0) < 0)
            return;
        uv_unref((uv_handle_t *)&tty.in); /* never what keeps the loop alive */
        tty.inited = 1;
    }
    tty.on = 1;
    if (!tty.saved_ok && tcgetattr(0, &tty.saved) == 0)
        tty.saved_ok = 1;
    /* Lines typed while the console was elsewhere were meant for another
     * holder, or for none: not for this one. */
    tcflush(0, TCIFLUSH);
    el.handler_install(tty.prompt, on_line);
    uv_poll_start(&tty.in, UV_READABLE, on_input);
}

void cn__tty_reset(void)
{
    if (tty.saved_ok) /* tcsetattr is async-signal-safe */
        tcsetattr(0, TCSANOW, &tty.saved);
}

void cn__tty_stop(void)
{
    if (!tty.on)
        return;
    tty.on = 0;
    uv_poll_stop(&tty.in);
    el.handler_remove();
    cn__tty_reset(); /* whatever libedit left */
    fputs("\r\033[K", stdout);
    fflush(stdout);
}

void cn__tty_write(const char *text, size_t len)
{
    /* An answer given while the line handler runs: the cursor is on a
     * fresh line, and a redraw would show the line just entered again
     * after it ("canopy> :foocanopy> "). */
    int redraw = tty.on && !tty.in_line;
    if (redraw)
        fputs("\r\033[K", stdout);
    fwrite(text, 1, len, stdout);
    if (len && text[len - 1] != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    if (redraw)
        el.redisplay();
}
