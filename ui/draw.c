/* ui/draw.c — copy the off-screen frame to curses, once per dirty frame.
 *
 * Cells unchanged since the previous frame are skipped (curses diffs too,
 * but this saves building cchar_t's for a 300x80 screen on every token);
 * ui_screen_diff_row (screen.c, tested without a terminal) decides which,
 * keeping both halves of wide glyphs in step; then one wnoutrefresh +
 * doupdate sends the frame.  The only other file
 * calling curses is term.c.
 */
#include "config.h"

#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "ui/term_impl.h"
#include "ui/ui_impl.h"

void ui_draw_invalidate(struct ui *ui)
{
	struct ui_term *t = ui->term;

	ui->dirty = 1;
	if (!t)
		return;
	free(t->prev);
	t->prev = NULL;
	t->prev_cols = t->prev_rows = 0;
	clearok(curscr, TRUE);
}

/* Paint cell c at (x,y).  curses measures a cell by its first code point
 * (wcwidth) and joins only zero-width ones to it, while the frame measures
 * whole graphemes; where they disagree (emoji + VS16, flags, ZWJ
 * sequences) the cell is drawn in a form curses measures the same way, so
 * its idea of the screen and the frame's stay in step:
 * marks are kept up to the first ZWJ or spacing code point, and a glyph of
 * width 2 that curses counts as 1 is followed by its second code point (a
 * flag's second letter) or a space in the continuation cell. */
static void put_cell(struct ui_term *t, int x, int y, const struct ui_cell *c)
{
	wchar_t wbuf[UI_CELL_BYTES + 1], second[2] = { L' ', L'\0' };
	cchar_t cc;
	size_t n = 0, k, len = strlen(c->g);
	int pair, cw, pad;
	attr_t attr = 0;

	for (size_t p = 0; p < len && n < UI_CELL_BYTES;) {
		uint32_t cp;
		int l = utf8_decode(c->g + p, len - p, &cp);
		if (l < 0) {
			cp = 0xfffd;
			l = 1;
		}
		wbuf[n++] = (wchar_t)cp;
		p += (size_t)l;
	}
	if (n == 0)
		wbuf[n++] = L' ';
	cw = wcwidth(wbuf[0]);
	if (cw < 1)
		cw = 1;
	for (k = 1; k < n && wbuf[k] != 0x200d && wcwidth(wbuf[k]) == 0; k++)
		;
	pad = c->width == 2 && cw == 1;
	if (pad && k + 1 == n && wcwidth(wbuf[k]) == 1)
		second[0] = wbuf[k]; /* e.g. the second regional indicator */
	n = k;
	if (pad) { /* VS16 asks for a 2-column emoji curses would count as 1 */
		size_t m = 1;
		for (k = 1; k < n; k++)
			if (wbuf[k] != 0xfe0f)
				wbuf[m++] = wbuf[k];
		n = m;
	}
	if (n > CCHARW_MAX)
		n = CCHARW_MAX; /* curses keeps at most this many per cell */
	wbuf[n] = L'\0';
	if (c->role == UI_CELL_RGB) {
		pair = alloc_pair(ui_term_color(t, c->fg, 1), ui_term_color(t, c->bg, 0));
		if (pair < 0)
			pair = 0;
	} else {
		int r = c->role >= 0 && c->role < THEME_ROLE_COUNT ? c->role : 0;
		pair = t->role_pair[r];
		attr = (attr_t)t->role_attr[r];
	}
	if (setcchar(&cc, wbuf, attr, 0, &pair) == ERR) {
		/* curses refused the cluster: a stand-in of the same width */
		wbuf[0] = c->width == 2 && !pad ? 0xff1f /* ？ */ : 0xfffd;
		wbuf[1] = L'\0';
		if (setcchar(&cc, wbuf, attr, 0, &pair) == ERR)
			return;
	}
	mvwadd_wch(stdscr, y, x, &cc);
	if (pad && setcchar(&cc, second, attr, 0, &pair) != ERR)
		mvwadd_wch(stdscr, y, x + 1, &cc);
}

void ui_draw_frame(struct ui *ui)
{
	struct ui_term *t = ui->term;
	struct ui_screen *s = &ui->screen;
	size_t ncell = (size_t)s->cols * (size_t)s->rows;
	int *xs;

	if (!t)
		return;
	if (t->prev_cols != s->cols || t->prev_rows != s->rows || !t->prev) {
		free(t->prev);
		t->prev = xcalloc(ncell + 1, sizeof *t->prev);
		for (size_t i = 0; i < ncell; i++)
			t->prev[i].width = -1; /* never equal: paint everything */
		t->prev_cols = s->cols;
		t->prev_rows = s->rows;
		werase(stdscr);
	}
	xs = xcalloc((size_t)s->cols + 1, sizeof *xs);
	for (int y = 0; y < s->rows; y++) {
		const struct ui_cell *row = &s->cells[y * s->cols];
		int n = ui_screen_diff_row(row, &t->prev[y * s->cols], s->cols, xs);

		for (int i = 0; i < n; i++)
			put_cell(t, xs[i], y, &row[xs[i]]);
	}
	free(xs);
	if (s->cur_visible) {
		curs_set(1);
		wmove(stdscr, s->cur_y, s->cur_x);
	} else {
		curs_set(0);
	}
	wnoutrefresh(stdscr);
	doupdate();
}
