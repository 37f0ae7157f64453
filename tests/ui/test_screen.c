/* tests/ui/test_screen.c — the cell grid and the terminal-update diff.
 *
 * The diff tests model the terminal: a cell array updated the way a
 * terminal (and curses' own screen) does when a glyph is painted — a wide
 * glyph covers the next cell, and painting over either half of a wide glyph
 * blanks the other half.  After each frame's diff is applied, the modelled
 * terminal must read exactly as the frame.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/screen_impl.h"

#define W 12

struct term {
	char g[W][UI_CELL_BYTES];
	int width[W]; /* 1, 2 or 0 (right half) */
	int role[W];
};

static void term_blank(struct term *t, int x)
{
	strcpy(t->g[x], " ");
	t->width[x] = 1;
}

/* Paint cell c at x, as a terminal does. */
static void term_paint(struct term *t, int x, const struct ui_cell *c)
{
	int w = c->width == 2 ? 2 : 1;

	for (int k = x; k < x + w && k < W; k++) {
		if (t->width[k] == 0 && k > 0)
			term_blank(t, k - 1);
		if (t->width[k] == 2 && k + 1 < W)
			term_blank(t, k + 1);
	}
	snprintf(t->g[x], sizeof t->g[x], "%s", c->g[0] ? c->g : " ");
	t->width[x] = w;
	t->role[x] = c->role;
	if (w == 2 && x + 1 < W) {
		t->g[x + 1][0] = '\0';
		t->width[x + 1] = 0;
		t->role[x + 1] = c->role;
	}
}

static char *term_text(const struct term *t)
{
	static char buf[W * UI_CELL_BYTES];

	buf[0] = '\0';
	for (int x = 0; x < W; x++)
		if (t->width[x] != 0)
			strcat(buf, t->g[x]);
	return buf;
}

struct rig {
	struct ui_screen s;
	struct ui_cell prev[W];
	struct term t;
};

static void rig_init(struct rig *r)
{
	ui_screen_init(&r->s);
	ui_screen_resize(&r->s, W, 1);
	for (int x = 0; x < W; x++) {
		memset(&r->prev[x], 0, sizeof r->prev[x]);
		r->prev[x].width = -1;
		term_blank(&r->t, x);
		r->t.role[x] = 0;
	}
}

/* Draw a frame showing text, then check the terminal reads the same. */
static void rig_frame(struct rig *r, const char *text)
{
	int xs[W], n;
	char *want;

	ui_screen_fill(&r->s, (struct ui_rect){ 0, 0, W, 1 }, 0);
	ui_screen_puts(&r->s, 0, 0, W, text, 0);
	n = ui_screen_diff_row(r->s.cells, r->prev, W, xs);
	for (int i = 0; i < n; i++) {
		ck_assert(i == 0 || xs[i] > xs[i - 1]);
		term_paint(&r->t, xs[i], &r->s.cells[xs[i]]);
	}
	want = ui_screen_to_text(&r->s);
	ck_assert_str_eq(term_text(&r->t), want);
	free(want);
}

/* QA's "tmperature": a wide glyph drawn over "ab", then "ab" again. */
START_TEST(test_diff_wide_then_narrow)
{
	struct rig r;

	rig_init(&r);
	rig_frame(&r, "abcdefghijkl");
	rig_frame(&r, "\xe4\xb8\xad" "cdefghijkl");    /* 中 over "ab" */
	rig_frame(&r, "abcdefghijkl");
	rig_frame(&r, "a\xe4\xb8\xad" "defghijkl");    /* shifted by one */
	rig_frame(&r, "ab\xe6\x96\x87" "efghijkl");    /* 文 over "cd" */
	rig_frame(&r, "abcdefghijkl");
	ui_screen_fini(&r.s);
}
END_TEST

/* Narrow glyphs over either half of a wide one, and wide over wide
 * shifted by a column (orphaning half of the old one). */
START_TEST(test_diff_half_overwrites)
{
	struct rig r;

	rig_init(&r);
	rig_frame(&r, "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 xyz");
	rig_frame(&r, "x\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 yz");
	rig_frame(&r, "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 xyz");
	rig_frame(&r, "\xe4\xb8\xad" "ab" "\xe5\xad\x97 xyz");
	rig_frame(&r, "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 xyz");
	rig_frame(&r, "e\xcc\x81\xe4\xb8\xad" "e\xcc\x81" "x"); /* combining marks */
	rig_frame(&r, "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 xyz");
	rig_frame(&r, "");
	ui_screen_fini(&r.s);
}
END_TEST

/* Every pair of a few short texts, in both orders. */
START_TEST(test_diff_pairs)
{
	static const char *const v[] = {
		"abcdefghijkl", "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97",
		"a\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe4\xb8\xad\xe6\x96\x87z", "ab\xe4\xb8\xad" "cd",
		" \xe4\xb8\xad \xe4\xb8\xad \xe4\xb8\xad", "", "e\xcc\x81" "a\xcc\x88\xcc\x81 x",
	};
	int nv = (int)(sizeof v / sizeof v[0]);

	for (int i = 0; i < nv; i++)
		for (int j = 0; j < nv; j++) {
			struct rig r;
			rig_init(&r);
			rig_frame(&r, v[i]);
			rig_frame(&r, v[j]);
			rig_frame(&r, v[i]);
			ui_screen_fini(&r.s);
		}
}
END_TEST

/* Unchanged cells are not repainted. */
START_TEST(test_diff_minimal)
{
	struct rig r;
	int xs[W];

	rig_init(&r);
	rig_frame(&r, "ab\xe4\xb8\xad" "cd");
	ck_assert_int_eq(ui_screen_diff_row(r.s.cells, r.prev, W, xs), 0);
	ui_screen_puts(&r.s, 5, 0, 1, "X", 0);
	ck_assert_int_eq(ui_screen_diff_row(r.s.cells, r.prev, W, xs), 1);
	ck_assert_int_eq(xs[0], 5);
	ui_screen_fini(&r.s);
}
END_TEST

/* Text cut at the edge ends in an ellipsis; text that fits does not. */
START_TEST(test_puts_clip)
{
	struct ui_screen s;
	char *t;

	ui_screen_init(&s);
	ui_screen_resize(&s, 8, 1);
	ck_assert_int_eq(ui_screen_puts_clip(&s, 0, 0, 8, "abcdefgh", 0), 8);
	t = ui_screen_to_text(&s);
	ck_assert_str_eq(t, "abcdefgh");
	free(t);
	ck_assert_int_eq(ui_screen_puts_clip(&s, 1, 0, 20, "abcdefghij", 0), 7);
	t = ui_screen_to_text(&s);
	ck_assert_str_eq(t, "aabcdef\xe2\x80\xa6");
	free(t);
	ui_screen_fill(&s, (struct ui_rect){ 0, 0, 8, 1 }, 0);
	ck_assert_int_eq(ui_screen_puts_clip(&s, 0, 0, 6, "ab\xe4\xb8\xad\xe6\x96\x87z", 0), 6);
	t = ui_screen_to_text(&s);
	ck_assert_str_eq(t, "ab\xe4\xb8\xad \xe2\x80\xa6  ");
	free(t);
	ck_assert_int_eq(ui_screen_puts_clip(&s, 0, 0, 8, "ab\ncd", 0), 3);
	t = ui_screen_to_text(&s);
	ck_assert_str_eq(t, "ab\xe2\x80\xa6  \xe2\x80\xa6  ");
	free(t);
	ui_screen_fini(&s);
}
END_TEST

Suite *screen_suite(void)
{
	Suite *s = suite_create("screen");
	TCase *tc = tcase_create("diff");

	tcase_add_test(tc, test_diff_wide_then_narrow);
	tcase_add_test(tc, test_diff_half_overwrites);
	tcase_add_test(tc, test_diff_pairs);
	tcase_add_test(tc, test_diff_minimal);
	tcase_add_test(tc, test_puts_clip);
	suite_add_tcase(s, tc);
	return s;
}
