/* ui/screen_impl.h — the off-screen frame (ui/screen.c).
 *
 * render.c paints the whole UI into a grid of cells; draw.c copies the grid
 * to curses; tests read it as text.  Invariant: a cell of width 2 is
 * followed by a continuation cell (width 0) on the same row; a wide glyph
 * never straddles the right edge (it becomes a space).
 */
#ifndef TERN_UI_SCREEN_IMPL_H
#define TERN_UI_SCREEN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "ui/layout_impl.h"

#define UI_CELL_BYTES 32 /* a grapheme's bytes (longer ones become U+FFFD) */
#define UI_CELL_RGB (-1) /* role value: explicit fg/bg (image preview) */

struct ui_cell {
	char g[UI_CELL_BYTES]; /* NUL-terminated glyph; "" for continuation */
	int8_t width;          /* 1, 2, or 0 = right half of a wide glyph */
	int16_t role;          /* enum theme_role, or UI_CELL_RGB */
	uint32_t fg, bg;       /* for UI_CELL_RGB */
};

struct ui_screen {
	int cols, rows;
	struct ui_cell *cells;
	int cur_x, cur_y, cur_visible;
};

void ui_screen_init(struct ui_screen *s);
void ui_screen_fini(struct ui_screen *s);
void ui_screen_resize(struct ui_screen *s, int cols, int rows);
struct ui_cell *ui_screen_at(struct ui_screen *s, int x, int y); /* NULL outside */
/* Fill a rectangle with spaces of role. */
void ui_screen_fill(struct ui_screen *s, struct ui_rect r, int role);
/* Draw UTF-8 at (x,y) clipped to max_w columns (and the screen); returns
 * columns used.  '\n' stops; TABs/controls drawn per ui_text_display. */
int ui_screen_put(struct ui_screen *s, int x, int y, int max_w, const char *t, size_t n, int role);
/* Convenience for NUL-terminated text. */
int ui_screen_puts(struct ui_screen *s, int x, int y, int max_w, const char *t, int role);
/* As ui_screen_puts, but text wider than max_w (or the screen) ends in
 * an ellipsis in the last column, so the cut shows. */
int ui_screen_puts_clip(struct ui_screen *s, int x, int y, int max_w, const char *t, int role);
/* One glyph with explicit colours. */
void ui_screen_put_rgb(struct ui_screen *s, int x, int y, const char *glyph, uint32_t fg,
		       uint32_t bg);
/* Change the role of cells in a rectangle (selection highlight). */
void ui_screen_set_role(struct ui_screen *s, struct ui_rect r, int role);
/* Frame a rectangle with box-drawing characters. */
void ui_screen_box(struct ui_screen *s, struct ui_rect r, int role);
/* The terminal-update diff for one row (draw.c): cur is the new row,
 * prev what the terminal shows (a cell of width -1: unknown, never equal).
 * Writes to xs the columns to paint, left to right, and updates prev to
 * what the terminal shows once they are painted; returns their count.
 * Exact for wide glyphs: painting a wide glyph covers the next cell, and
 * painting over either half of a wide glyph on the terminal blanks the other
 * half, so both halves are repainted together.  A continuation cell is
 * never listed (its glyph paints it) unless it is orphaned, when it is
 * listed and painted as a blank. */
int ui_screen_diff_row(const struct ui_cell *cur, struct ui_cell *prev, int cols, int *xs);
/* Cells equal for drawing purposes. */
int ui_cell_eq(const struct ui_cell *a, const struct ui_cell *b);
/* The frame as text (rows joined with '\n'); caller frees. */
char *ui_screen_to_text(const struct ui_screen *s);

#endif
