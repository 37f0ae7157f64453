/* tests/ui/test_layout.c — pane geometry (hand-computed for 80x24 and
 * 300x80) and invariants for every small size. */
#include "config.h"

#include <check.h>

#include "ui/layout_impl.h"

static void rect_eq(struct ui_rect r, int x, int y, int w, int h)
{
	ck_assert_msg(r.x == x && r.y == y && r.w == w && r.h == h, "got %d,%d %dx%d want %d,%d %dx%d",
		      r.x, r.y, r.w, r.h, x, y, w, h);
}

START_TEST(test_80x24)
{
	struct ui_layout l;

	ui_layout_compute(80, 24, 1, 1, 0, &l);
	ck_assert(l.sidebar_visible);
	rect_eq(l.sidebar, 0, 0, 16, 21); /* 80/5 = 16 */
	rect_eq(l.sep, 16, 0, 1, 21);
	rect_eq(l.transcript, 17, 0, 63, 21);
	rect_eq(l.notice, 0, 21, 80, 0);
	rect_eq(l.input_sep, 0, 21, 80, 1);
	rect_eq(l.input, 0, 22, 80, 1);
	rect_eq(l.status, 0, 23, 80, 1);
	/* notice + 3 input rows */
	ui_layout_compute(80, 24, 1, 3, 1, &l);
	rect_eq(l.transcript, 17, 0, 63, 18);
	rect_eq(l.notice, 0, 18, 80, 1);
	rect_eq(l.input, 0, 20, 80, 3);
	/* kept notices: one row each, above the input */
	ui_layout_compute(80, 24, 1, 1, 3, &l);
	rect_eq(l.transcript, 17, 0, 63, 18);
	rect_eq(l.notice, 0, 18, 80, 3);
	rect_eq(l.input_sep, 0, 21, 80, 1);
	/* 20 input rows are capped at min(24/3, 10) = 8 */
	ui_layout_compute(80, 24, 1, 20, 0, &l);
	ck_assert_int_eq(l.input.h, 8);
	/* sidebar off */
	ui_layout_compute(80, 24, 0, 1, 0, &l);
	ck_assert(!l.sidebar_visible);
	rect_eq(l.transcript, 0, 0, 80, 21);
}
END_TEST

START_TEST(test_300x80)
{
	struct ui_layout l;

	ui_layout_compute(300, 80, 1, 50, 0, &l);
	rect_eq(l.sidebar, 0, 0, 32, 68); /* 300/5 = 60 -> capped at 32 */
	rect_eq(l.transcript, 33, 0, 267, 68);
	rect_eq(l.input, 0, 69, 300, 10);  /* capped at 10 */
	rect_eq(l.status, 0, 79, 300, 1);
}
END_TEST

START_TEST(test_narrow_hides_sidebar)
{
	struct ui_layout l;

	ui_layout_compute(59, 24, 1, 1, 0, &l);
	ck_assert(!l.sidebar_visible);
	ck_assert_int_eq(l.sidebar.w, 0);
	ui_layout_compute(60, 24, 1, 1, 0, &l);
	ck_assert(l.sidebar_visible);
	ck_assert_int_eq(l.sidebar.w, 16);
}
END_TEST

static int inside(struct ui_rect r, int cols, int rows)
{
	return r.w >= 0 && r.h >= 0 && r.x >= 0 && r.y >= 0 &&
	       (r.w == 0 || r.h == 0 || (r.x + r.w <= cols && r.y + r.h <= rows));
}

static int overlap(struct ui_rect a, struct ui_rect b)
{
	if (!a.w || !a.h || !b.w || !b.h)
		return 0;
	return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

START_TEST(test_all_small_sizes)
{
	for (int c = 0; c <= 100; c++) {
		for (int r = 0; r <= 40; r++) {
			for (int notice = 0; notice < 2; notice++) {
				struct ui_layout l;
				struct ui_rect v[7];
				int area = 0;
				ui_layout_compute(c, r, 1, 4, notice, &l);
				v[0] = l.sidebar, v[1] = l.sep, v[2] = l.transcript, v[3] = l.notice;
				v[4] = l.input_sep, v[5] = l.input, v[6] = l.status;
				for (int i = 0; i < 7; i++) {
					ck_assert_msg(inside(v[i], c, r), "%dx%d rect %d", c, r, i);
					area += v[i].w * v[i].h;
					for (int j = i + 1; j < 7; j++)
						ck_assert_msg(!overlap(v[i], v[j]), "%dx%d: %d/%d", c, r, i, j);
				}
				/* the panes tile the whole screen */
				ck_assert_msg(area == c * r, "%dx%d area %d", c, r, area);
				if (r >= 1)
					ck_assert_int_eq(l.status.y, r - 1);
			}
		}
	}
}
END_TEST

Suite *layout_suite(void)
{
	Suite *s = suite_create("layout");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_80x24);
	tcase_add_test(tc, test_300x80);
	tcase_add_test(tc, test_narrow_hides_sidebar);
	tcase_add_test(tc, test_all_small_sizes);
	suite_add_tcase(s, tc);
	return s;
}
