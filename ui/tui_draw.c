/*
 * tui_draw.c: the TUI's screen (tui_int.h): the tab bar, the header, the
 * rows of the view on screen and the detail pane, the status line, the
 * footer and the help, from the theme table.
 */
#include <curses.h>
#include <string.h>

#include "tui_int.h"

static void draw_footer(tui_t *t);
static void draw_help(tui_t *t);
static const struct {
    short fg, bg;
    attr_t attr, mono;
} theme[ST_MAX_] = {
    [ST_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [ST_DIM] = {-1, -1, A_DIM, A_DIM},
    [ST_WARN] = {COLOR_YELLOW, -1, A_NORMAL, A_BOLD},
    [ST_ALERT] = {COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    [ST_DEBUG] = {COLOR_MAGENTA, -1, A_BOLD, A_BOLD | A_REVERSE},
    [ST_MATCH] = {COLOR_CYAN, -1, A_BOLD, A_UNDERLINE},
    [ST_HEADER] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
};

static attr_t style_attr(const tui_t *t, int st)
{
    if (st < 0 || st >= ST_MAX_)
        st = ST_NORMAL;
    if (t->mono)
        return theme[st].mono;
    return theme[st].attr | (theme[st].fg != -1 || theme[st].bg != -1 ? COLOR_PAIR(st + 1) : 0);
}

void theme_init(tui_t *t)
{
    const char *nc = getenv("NO_COLOR");
    t->mono = (nc && *nc) || !has_colors();
    if (t->mono)
        return;
    start_color();
    use_default_colors();
    for (int i = 0; i < ST_MAX_; i++)
        init_pair((short)(i + 1), theme[i].fg, theme[i].bg);
}

/* Text at (y, x), cut at the screen's edge. */
static void put(tui_t *t, int y, int x, attr_t a, const char *s)
{
    (void)t;
    int w = COLS - x;
    if (y < 0 || y >= LINES || w <= 0)
        return;
    attrset(a);
    mvaddnstr(y, x, s, w);
    attrset(A_NORMAL);
}

static void fill_line(int y, attr_t a)
{
    attrset(a);
    mvhline(y, 0, ' ', COLS);
    attrset(A_NORMAL);
}

static void draw_row(tui_t *t, int y, const trow_t *r, int selected)
{
    attr_t a = style_attr(t, r->style);
    if (r->is_match)
        a |= t->mono ? A_UNDERLINE : A_BOLD;
    if (selected) {
        a |= A_REVERSE;
        fill_line(y, a);
    }
    put(t, y, 0, a, r->text);
    if (r->bar >= 0 && r->bar_col > 0 && r->bar_col + 6 < COLS) {
        int cells = r->bar * 6 / 100 + (r->bar > 0 && r->bar * 6 < 100);
        attrset((a ^ A_REVERSE) | (r->bar >= 90 ? style_attr(t, ST_ALERT) : 0));
        for (int i = 0; i < cells; i++) /* '#' too, for mono terminals and text captures */
            mvaddch(y, r->bar_col + i, '#');
        attrset(A_NORMAL);
    }
}

static void draw_list(tui_t *t, rows_t *r, const int *sel, int *scroll, int y0, int y1,
                      int show_sel)
{
    int h = y1 - y0 + 1;
    if (h <= 0)
        return;
    if (*sel >= 0) {
        if (*sel < *scroll)
            *scroll = *sel;
        if (*sel >= *scroll + h)
            *scroll = *sel - h + 1;
    }
    if (*scroll > (int)r->n - h)
        *scroll = (int)r->n - h;
    if (*scroll < 0)
        *scroll = 0;
    for (int i = 0; i < h && *scroll + i < (int)r->n; i++)
        draw_row(t, y0 + i, &r->v[*scroll + i], show_sel && *scroll + i == *sel);
}

static void draw_tabs(tui_t *t)
{
    fill_line(0, style_attr(t, ST_HEADER));
    const char *flag = t->gone[0] ? "GONE" : t->paused ? "PAUSED" : NULL;
    /* The tabs and the flag come first: a long tree name gives way, the
     * pid first, then the name's end (cut with '~'). */
    int tabs = 0;
    for (int v = 0; v < V_MAX; v++)
        tabs += (int)strlen(views[v]->name) + 3;
    int room = COLS - tabs - (flag ? (int)strlen(flag) + 2 : 0) - 1;
    char title[160];
    snprintf(title, sizeof(title), " canopy %s (pid %d) ", t->tree, t->root_pid);
    if ((int)strlen(title) > room)
        snprintf(title, sizeof(title), " %s ", t->tree);
    if ((int)strlen(title) > room && room >= 4) {
        title[room - 2] = '~';
        title[room - 1] = ' ';
        title[room] = '\0';
    }
    put(t, 0, 0, style_attr(t, ST_HEADER) | A_BOLD, title);
    int x = (int)strlen(title) + 1;
    for (int v = 0; v < V_MAX; v++) {
        char tab[32];
        snprintf(tab, sizeof(tab), "%d %s", v + 1, views[v]->name);
        attr_t a = v == t->view ? A_REVERSE | A_BOLD : style_attr(t, ST_HEADER);
        if (t->mono && v == t->view)
            a = A_BOLD | A_UNDERLINE;
        put(t, 0, x, a, tab);
        x += (int)strlen(tab) + 1;
    }
    if (flag && COLS > (int)strlen(flag) + 2)
        put(t, 0, COLS - (int)strlen(flag) - 1, style_attr(t, ST_ALERT) | A_REVERSE, flag);
}


static void draw_status(tui_t *t, int y)
{
    fill_line(y, A_NORMAL);
    if (t->q) {
        put(t, y, 0, style_attr(t, ST_WARN) | A_BOLD, t->question);
        return;
    }
    if (t->in_mode == IN_FILTER) {
        char line[700];
        snprintf(line, sizeof(line), "filter: %s", t->in);
        put(t, y, 0, A_BOLD, line);
        move(y, 8 + (int)t->in_pos);
        return;
    }
    if (t->status[0] && now_ms() < t->status_until) {
        put(t, y, 0, A_BOLD, t->status);
        return;
    }
    char line[600];
    if (t->gone[0]) {
        /* "q quits" first: a long reason (a socket's path) is what gets cut */
        snprintf(line, sizeof(line), "q quits; the screen shows the last state: %s", t->gone);
        put(t, y, 0, style_attr(t, ST_ALERT), line);
        return;
    }
    if (t->view != V_CONSOLE && (t->m.has_holder || t->m.nwaiters)) {
        if (t->m.has_holder)
            snprintf(line, sizeof(line), ">> %s has the debugger's console (%s)%s: press 5",
                     t->m.holder.path, t->m.holder.reason,
                     t->m.nwaiters ? ", others wait" : "");
        else
            snprintf(line, sizeof(line), ">> %s waits for the debugger's console: press 5",
                     t->m.waiters[0].path);
        put(t, y, 0, style_attr(t, ST_DEBUG), line);
        return;
    }
    /* The selected row, when the screen cut it: the rest of it here, so
     * that a long log line or lint can be read by selecting it. */
    int v = t->view, sel = t->sel[v];
    int shown = v != V_CONSOLE && !(v == V_TREE && t->detail_on) &&
                (!views[v]->follows || !t->follow[v]);
    if (shown && sel >= 0 && (size_t)sel < t->rows[v].n &&
        strlen(t->rows[v].v[sel].text) > (size_t)COLS) {
        snprintf(line, sizeof(line), "...%s", t->rows[v].v[sel].text + COLS);
        put(t, y, 0, A_BOLD, line);
        return;
    }
    const cn_snapshot_t *s = t->m.snap;
    if (s == NULL) {
        put(t, y, 0, A_DIM, "waiting for the first snapshot...");
        return;
    }
    size_t nctx = 0;
    for (size_t i = 0; i < s->nactors; i++)
        nctx += s->actors[i].ncontexts;
    pthread_mutex_lock(&t->sn.mu);
    int failed = t->sn.failed;
    char why[256];
    snprintf(why, sizeof(why), "%s", t->sn.why);
    pthread_mutex_unlock(&t->sn.mu);
    snprintf(line, sizeof(line), "%zu actor%s, %zu context%s, %zu lint%s%s%s%s%s", s->nactors,
             ui_plural(s->nactors), nctx, ui_plural(nctx), t->m.nlints, ui_plural(t->m.nlints),
             s->unresponsive ? ", some not answering" : "",
             t->m.filter[0] ? ", filter: " : "", t->m.filter, failed ? "; snapshot failed: " : "");
    if (failed)
        strncat(line, why, sizeof(line) - strlen(line) - 1);
    put(t, y, 0, t->m.nlints || failed ? style_attr(t, ST_WARN) : A_DIM, line);
}


void draw(tui_t *t)
{
    erase();
    if (LINES < 8 || COLS < 30) {
        put(t, 0, 0, A_BOLD, "canopy: the terminal is too small");
        refresh();
        t->dirty = 0;
        return;
    }
    int v = t->view;
    draw_tabs(t);
    char head[TROW_TEXT];
    snprintf(head, sizeof(head), "%s", views[v]->header(&t->m));
    fill_line(1, style_attr(t, ST_HEADER));
    put(t, 1, 0, style_attr(t, ST_HEADER), head);
    int y = 2;
    for (size_t i = 0; i < t->top.n && y < LINES - 4; i++)
        draw_row(t, y++, &t->top.v[i], 0);
    int y1 = LINES - 3;
    if (v == V_CONSOLE)
        y1--; /* the input line */
    t->list_y0 = y;
    if (v == V_TREE && t->detail_on && y1 - y > 8) {
        int mid = y + (y1 - y) / 2;
        t->list_y1 = mid - 1;
        draw_list(t, &t->rows[v], &t->sel[v], &t->scroll[v], y, mid - 1, 1);
        fill_line(mid, style_attr(t, ST_HEADER));
        put(t, mid, 0, style_attr(t, ST_HEADER), " detail (Enter closes, t backtraces, "
                                                  "J/K scroll)");
        int none = -1;
        draw_list(t, &t->detail, &none, &t->detail_scroll, mid + 1, y1, 0);
    } else {
        t->list_y1 = y1;
        draw_list(t, &t->rows[v], &t->sel[v], &t->scroll[v], y, y1, !views[v]->follows ||
                                                                        !t->follow[v]);
    }
    if (t->rows[v].n == 0 && v != V_CONSOLE)
        put(t, y, 2, A_DIM, t->m.filter[0]   ? "(nothing matches the filter; / changes it)"
                            : views[v]->empty ? views[v]->empty(&t->m)
                            : t->m.snap       ? "(nothing here)"
                                              : "(no snapshot yet)");
    if (v == V_CONSOLE) {
        fill_line(LINES - 3, A_NORMAL);
        char prompt[200];
        snprintf(prompt, sizeof(prompt), "(%s) ", t->m.has_holder ? t->m.holder.path : "nobody");
        put(t, LINES - 3, 0, style_attr(t, ST_DEBUG), prompt);
        put(t, LINES - 3, (int)strlen(prompt), A_NORMAL, t->in_mode == IN_CONSOLE ? t->in : "");
    }
    draw_status(t, LINES - 2);
    draw_footer(t);
    if (t->help)
        draw_help(t);
    if (t->in_mode == IN_CONSOLE && !t->help && !t->q) {
        char prompt[200];
        snprintf(prompt, sizeof(prompt), "(%s) ", t->m.has_holder ? t->m.holder.path : "nobody");
        move(LINES - 3, (int)(strlen(prompt) + t->in_pos));
        curs_set(1);
    } else if (t->in_mode == IN_FILTER && !t->help) {
        curs_set(1);
    } else {
        curs_set(0);
    }
    if (t->in_mode == IN_FILTER)
        move(LINES - 2, 8 + (int)t->in_pos);
    refresh();
    t->dirty = 0;
    t->last_draw = now_ms();
}

/* The footer: the key table's entries that have a footer word. */
static void draw_footer(tui_t *t)
{
    int y = LINES - 1, x = 0;
    fill_line(y, A_NORMAL);
    if (t->view == V_CONSOLE) {
        static const char *const con[][2] = {{"Enter", "Send"}, {"^C", "Interrupt"},
                                              {"Up", "History"}, {"PgUp", "Scroll"},
                                              {"Tab", "View"},   {"Esc", "Leave"},
                                              {"F10", "Quit"}};
        for (size_t i = 0; i < sizeof(con) / sizeof(con[0]) && x < COLS; i++) {
            put(t, y, x, style_attr(t, ST_HEADER), con[i][0]);
            x += (int)strlen(con[i][0]);
            put(t, y, x, A_NORMAL, con[i][1]);
            x += (int)strlen(con[i][1]) + 1;
        }
        return;
    }
    for (size_t i = 0; i < tui_nkeys && x < COLS; i++) {
        if (tui_keys[i].foot == NULL)
            continue;
        char k[16];
        snprintf(k, sizeof(k), "%.*s", (int)strcspn(tui_keys[i].label, " "), tui_keys[i].label);
        put(t, y, x, style_attr(t, ST_HEADER), k);
        x += (int)strlen(k);
        put(t, y, x, A_NORMAL, tui_keys[i].foot);
        x += (int)strlen(tui_keys[i].foot) + 1;
    }
}

/* One entry of the help, "LABEL  text", cut at spaces into lines of at
 * most `width` columns, the ones after the first indented under the text.
 * Returns how many of the `room` lines it filled. */
static int help_wrap(char (*out)[300], int room, int width, const char *label, const char *text)
{
    int indent = *label ? 17 : 2, n = 0;
    if (width < indent + 20)
        width = indent + 20; /* a tiny screen: lines are cut at its edge */
    while (*text && n < room) {
        int avail = width - (n ? indent : (*label ? 17 : 0));
        int len = (int)strlen(text), cut = len;
        if (len > avail) {
            cut = avail;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = avail; /* one long word: cut it */
        }
        if (n == 0 && *label)
            snprintf(out[n], sizeof(out[n]), "%-16s %.*s", label, cut, text);
        else
            snprintf(out[n], sizeof(out[n]), "%*s%.*s", n ? indent : 0, "", cut, text);
        n++;
        text += cut;
        while (*text == ' ')
            text++;
    }
    return n;
}

static void draw_help(tui_t *t)
{
    int w = COLS - 4 < 100 ? COLS - 4 : 100, h = LINES - 2;
    int y0 = 1, x0 = (COLS - w) / 2;
    for (int y = y0; y < y0 + h; y++)
        fill_line(y, A_NORMAL);
    attrset(A_BOLD);
    mvhline(y0, x0, '-', w);
    mvhline(y0 + h - 1, x0, '-', w);
    attrset(A_NORMAL);
    /* Every line, then the window of them that fits, from help_scroll. */
    static const char *const tail[] = {
        "Console view: type a line for the holder, Enter sends, ^C interrupts, :skip :release",
        "Mouse: click selects (a tab, a row), the wheel scrolls."};
    enum { MAXL = 160 };
    static char lines[MAXL][300];
    int n = 0, nkeys;
    for (size_t i = 0; i < tui_nkeys && n < MAXL - 8; i++)
        if (tui_keys[i].help)
            n += help_wrap(lines + n, MAXL - 2 - n, w - 2, tui_keys[i].label, tui_keys[i].help);
    nkeys = n;
    for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]) && n < MAXL; i++)
        n += help_wrap(lines + n, MAXL - n, w - 2, "", tail[i]);
    int rows = h - 2 > 0 ? h - 2 : 0, fits = n <= rows;
    int last = fits ? 0 : n - rows;
    if (t->help_scroll > last)
        t->help_scroll = last;
    if (t->help_scroll < 0)
        t->help_scroll = 0;
    put(t, y0, x0 + 2, A_BOLD,
        fits ? " canopy keys (any key closes) "
             : " canopy keys (Up Down PgUp PgDn scroll; any other key closes) ");
    for (int k = 0; k < rows && t->help_scroll + k < n; k++) {
        int i = t->help_scroll + k;
        put(t, y0 + 1 + k, x0 + 1, i < nkeys ? A_NORMAL : A_DIM, lines[i]);
    }
    if (!fits) {
        char more[64];
        int below = n - t->help_scroll - rows;
        snprintf(more, sizeof(more), below > 0 ? " %d more below " : " end ", below);
        put(t, y0 + h - 1, x0 + w - 2 - (int)strlen(more), A_BOLD, more);
    }
}

