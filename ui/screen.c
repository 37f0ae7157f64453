/* ui/screen.c — cell grid operations (see screen_impl.h). */
#include "config.h"

#include "ui/screen_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/xalloc.h"
#include "ui/text_impl.h"

void ui_screen_init(struct ui_screen *s)
{
	memset(s, 0, sizeof *s);
}

void ui_screen_fini(struct ui_screen *s)
{
	free(s->cells);
	memset(s, 0, sizeof *s);
}

static void blank(struct ui_cell *c, int role)
{
	c->g[0] = ' ';
	c->g[1] = '\0';
	c->width = 1;
	c->role = (int16_t)role;
	c->fg = c->bg = 0;
}

void ui_screen_resize(struct ui_screen *s, int cols, int rows)
{
	if (cols < 0)
		cols = 0;
	if (rows < 0)
		rows = 0;
	free(s->cells);
	s->cols = cols;
	s->rows = rows;
	s->cells = xcalloc((size_t)cols * (size_t)rows + 1, sizeof *s->cells);
	for (int i = 0; i < cols * rows; i++)
		blank(&s->cells[i], 0);
}

struct ui_cell *ui_screen_at(struct ui_screen *s, int x, int y)
{
	if (x < 0 || y < 0 || x >= s->cols || y >= s->rows)
		return NULL;
	return &s->cells[y * s->cols + x];
}

/* Before overwriting cell (x,y): if it is half of a wide glyph, blank the
 * other half so no orphan remains. */
static void unwide(struct ui_screen *s, int x, int y)
{
	struct ui_cell *c = ui_screen_at(s, x, y), *o;

	if (!c)
		return;
	if (c->width == 0 && (o = ui_screen_at(s, x - 1, y)))
		blank(o, o->role);
	if (c->width == 2 && (o = ui_screen_at(s, x + 1, y)))
		blank(o, o->role);
}

void ui_screen_fill(struct ui_screen *s, struct ui_rect r, int role)
{
	for (int y = r.y; y < r.y + r.h; y++)
		for (int x = r.x; x < r.x + r.w; x++) {
			struct ui_cell *c = ui_screen_at(s, x, y);
			if (c) {
				unwide(s, x, y);
				blank(c, role);
			}
		}
}

int ui_screen_put(struct ui_screen *s, int x, int y, int max_w, const char *t, size_t n, int role)
{
	int used = 0;

	if (y < 0 || y >= s->rows)
		return 0;
	if (x + max_w > s->cols)
		max_w = s->cols - x;
	for (size_t p = 0; p < n && used < max_w;) {
		char g[UI_CELL_BYTES];
		int w;
		size_t q = ui_text_next(t, n, p, &w);
		size_t gl;

		if (t[p] == '\n')
			break;
		gl = ui_text_display(t, p, q, g, sizeof g);
		if (gl == 0 && q - p >= sizeof g) {
			memcpy(g, "\xef\xbf\xbd", 4); /* cluster too long for a cell */
			gl = 3;
		}
		p = q;
		if (w == 0 || gl == 0)
			continue;
		if (used + w > max_w) {
			/* a wide glyph that does not fit: pad with a space */
			struct ui_cell *c = ui_screen_at(s, x + used, y);
			if (c) {
				unwide(s, x + used, y);
				blank(c, role);
			}
			used++;
			break;
		}
		if (w > 2 || (w > 1 && g[0] == ' ')) {
			/* TAB expanded to spaces: one cell each */
			for (int k = 0; k < w; k++) {
				struct ui_cell *c = ui_screen_at(s, x + used + k, y);
				if (c) {
					unwide(s, x + used + k, y);
					blank(c, role);
				}
			}
			used += w;
			continue;
		}
		{
			struct ui_cell *c = ui_screen_at(s, x + used, y);
			if (!c)
				break;
			unwide(s, x + used, y);
			if (w == 2)
				unwide(s, x + used + 1, y);
			memcpy(c->g, g, gl + 1);
			c->width = (int8_t)w;
			c->role = (int16_t)role;
			if (w == 2) {
				struct ui_cell *c2 = ui_screen_at(s, x + used + 1, y);
				if (!c2) /* cannot happen: max_w is clipped to the row */
					break;
				c2->g[0] = '\0';
				c2->width = 0;
				c2->role = (int16_t)role;
			}
			used += w;
		}
	}
	return used;
}

int ui_screen_puts(struct ui_screen *s, int x, int y, int max_w, const char *t, int role)
{
	return ui_screen_put(s, x, y, max_w, t, strlen(t), role);
}

int ui_screen_puts_clip(struct ui_screen *s, int x, int y, int max_w, const char *t, int role)
{
	size_t n = strcspn(t, "\n");
	int used;

	if (x + max_w > s->cols)
		max_w = s->cols - x;
	if (max_w <= 0)
		return 0;
	if (ui_text_width(t, n) <= max_w && !t[n])
		return ui_screen_put(s, x, y, max_w, t, n, role);
	used = ui_screen_put(s, x, y, max_w - 1, t, n, role);
	return used + ui_screen_puts(s, x + used, y, 1, "\xe2\x80\xa6", role); /* … */
}

void ui_screen_put_rgb(struct ui_screen *s, int x, int y, const char *glyph, uint32_t fg,
		       uint32_t bg)
{
	struct ui_cell *c = ui_screen_at(s, x, y);

	if (!c)
		return;
	unwide(s, x, y);
	snprintf(c->g, sizeof c->g, "%s", glyph);
	c->width = 1;
	c->role = UI_CELL_RGB;
	c->fg = fg;
	c->bg = bg;
}

void ui_screen_set_role(struct ui_screen *s, struct ui_rect r, int role)
{
	for (int y = r.y; y < r.y + r.h; y++)
		for (int x = r.x; x < r.x + r.w; x++) {
			struct ui_cell *c = ui_screen_at(s, x, y);
			if (c && c->role != UI_CELL_RGB)
				c->role = (int16_t)role;
		}
}

void ui_screen_box(struct ui_screen *s, struct ui_rect r, int role)
{
	if (r.w < 2 || r.h < 2)
		return;
	for (int x = r.x + 1; x < r.x + r.w - 1; x++) {
		ui_screen_puts(s, x, r.y, 1, "\xe2\x94\x80", role);
		ui_screen_puts(s, x, r.y + r.h - 1, 1, "\xe2\x94\x80", role);
	}
	for (int y = r.y + 1; y < r.y + r.h - 1; y++) {
		ui_screen_puts(s, r.x, y, 1, "\xe2\x94\x82", role);
		ui_screen_puts(s, r.x + r.w - 1, y, 1, "\xe2\x94\x82", role);
	}
	ui_screen_puts(s, r.x, r.y, 1, "\xe2\x94\x8c", role);
	ui_screen_puts(s, r.x + r.w - 1, r.y, 1, "\xe2\x94\x90", role);
	ui_screen_puts(s, r.x, r.y + r.h - 1, 1, "\xe2\x94\x94", role);
	ui_screen_puts(s, r.x + r.w - 1, r.y + r.h - 1, 1, "\xe2\x94\x98", role);
}

int ui_cell_eq(const struct ui_cell *a, const struct ui_cell *b)
{
	return a->width == b->width && a->role == b->role && !strcmp(a->g, b->g) &&
	       (a->role != UI_CELL_RGB || (a->fg == b->fg && a->bg == b->bg));
}

int ui_screen_diff_row(const struct ui_cell *cur, struct ui_cell *prev, int cols, int *xs)
{
	int n = 0, x;

	/* xs doubles as the dirty marks (1 = repaint) until the last pass */
	for (x = 0; x < cols; x++)
		xs[x] = !ui_cell_eq(&cur[x], &prev[x]);
	/* Spread to the halves that go with a dirty cell: the other half of a
	 * wide glyph shown there now, and of one to be shown.  Leftward spread
	 * restarts the scan there, so chains of wide glyphs settle. */
	for (x = 0; x < cols; x++) {
		int back = 0;

		if (!xs[x])
			continue;
		if (x + 1 < cols && !xs[x + 1] && (prev[x].width == 2 || cur[x].width == 2))
			xs[x + 1] = 1;
		if (x > 0 && !xs[x - 1] && (prev[x].width == 0 || cur[x].width == 0)) {
			xs[x - 1] = 1;
			back = 1;
		}
		if (back)
			x -= 2;
	}
	for (x = 0; x < cols; x++) {
		int dirty = xs[x];

		if (!dirty)
			continue;
		/* a continuation cell is painted by its glyph to the left,
		 * unless orphaned (then it is painted as a blank) */
		if (!(cur[x].width == 0 && x > 0 && cur[x - 1].width == 2))
			xs[n++] = x;
		prev[x] = cur[x];
	}
	return n;
}

char *ui_screen_to_text(const struct ui_screen *s)
{
	struct strbuf b;

	strbuf_init(&b, 0);
	for (int y = 0; y < s->rows; y++) {
		for (int x = 0; x < s->cols; x++) {
			const struct ui_cell *c = &s->cells[y * s->cols + x];
			if (c->width != 0)
				strbuf_puts(&b, c->g);
		}
		if (y + 1 < s->rows)
			strbuf_putc(&b, '\n');
	}
	return strbuf_take(&b, NULL);
}
