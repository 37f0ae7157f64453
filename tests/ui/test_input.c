/* tests/ui/test_input.c — the editor model (ui/input.c). */
#include "config.h"

#include <check.h>
#include <string.h>

#include "ui/input_impl.h"

#define FAMILY "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"
#define E_ACUTE "e\xcc\x81"
#define ZHONG "\xe4\xb8\xad"
#define WEN "\xe6\x96\x87"

static void ins(struct ui_input *in, const char *s)
{
	ui_input_insert(in, s, strlen(s));
}

START_TEST(test_insert_delete_graphemes)
{
	struct ui_input in;

	ui_input_init(&in);
	ins(&in, "a" ZHONG E_ACUTE);
	ck_assert_uint_eq(in.cursor, 1 + 3 + 3);
	ui_input_backspace(&in); /* whole e+combining */
	ck_assert_str_eq(ui_input_text(&in), "a" ZHONG);
	ui_input_left(&in);      /* before 中 */
	ck_assert_uint_eq(in.cursor, 1);
	ui_input_delete(&in);
	ck_assert_str_eq(ui_input_text(&in), "a");
	ui_input_end(&in);
	ins(&in, FAMILY "z");
	ui_input_left(&in);
	ui_input_left(&in); /* over the whole ZWJ sequence */
	ck_assert_uint_eq(in.cursor, 1);
	ui_input_right(&in);
	ck_assert_uint_eq(in.cursor, 19);
	ui_input_home(&in);
	ui_input_left(&in); /* at start: stays */
	ck_assert_uint_eq(in.cursor, 0);
	ui_input_fini(&in);
}
END_TEST

START_TEST(test_vertical_logical_lines)
{
	struct ui_input in;
	struct ui_spans rows = { 0 };
	int crow, ccol;

	ui_input_init(&in);
	ins(&in, "abc\ndefgh");
	ck_assert_int_eq(ui_input_vertical(&in, -1, 40), 1);
	ck_assert_uint_eq(in.cursor, 3); /* col 5 -> clamped to end of "abc" */
	ck_assert_int_eq(ui_input_vertical(&in, +1, 40), 1);
	ck_assert_uint_eq(in.cursor, 9); /* goal column 5 remembered */
	ck_assert_int_eq(ui_input_vertical(&in, +1, 40), 0); /* last row */
	ui_input_layout(&in, 40, &rows, &crow, &ccol);
	ck_assert_int_eq(crow, 1);
	ck_assert_int_eq(ccol, 5);
	ui_spans_fini(&rows);
	ui_input_fini(&in);
}
END_TEST

START_TEST(test_vertical_wide)
{
	struct ui_input in;

	ui_input_init(&in);
	ins(&in, "abcd\n" ZHONG WEN ZHONG);
	in.cursor = 3; /* after "abc": column 3 */
	ck_assert_int_eq(ui_input_vertical(&in, +1, 40), 1);
	/* column 3 falls inside 文 (cols 2-3): stop before it, after 中 */
	ck_assert_uint_eq(in.cursor, 5 + 3);
	ui_input_fini(&in);
}
END_TEST

START_TEST(test_visual_rows)
{
	struct ui_input in;
	struct ui_spans rows = { 0 };
	int crow, ccol;

	ui_input_init(&in);
	ins(&in, "abcdefghij"); /* width 4: abcd|efgh|ij */
	ui_input_layout(&in, 4, &rows, &crow, &ccol);
	ck_assert_uint_eq(rows.n, 3);
	ck_assert_int_eq(crow, 2);
	ck_assert_int_eq(ccol, 2);
	ck_assert_int_eq(ui_input_vertical(&in, -1, 4), 1);
	ck_assert_uint_eq(in.cursor, 6); /* "efgh" col 2 */
	/* cursor after a full last row goes to a virtual next row */
	ui_input_clear(&in);
	ins(&in, "abcd");
	ui_input_layout(&in, 4, &rows, &crow, &ccol);
	ck_assert_int_eq(crow, 1);
	ck_assert_int_eq(ccol, 0);
	ui_spans_fini(&rows);
	ui_input_fini(&in);
}
END_TEST

START_TEST(test_history)
{
	struct ui_input in;

	ui_input_init(&in);
	ui_input_history_add(&in, "one");
	ui_input_history_add(&in, "two");
	ui_input_history_add(&in, "two"); /* repeat not stored */
	ins(&in, "draft");
	ck_assert_int_eq(ui_input_history_prev(&in), 1);
	ck_assert_str_eq(ui_input_text(&in), "two");
	ck_assert_int_eq(ui_input_history_prev(&in), 1);
	ck_assert_str_eq(ui_input_text(&in), "one");
	ck_assert_int_eq(ui_input_history_prev(&in), 0);
	ck_assert_str_eq(ui_input_text(&in), "one");
	ck_assert_int_eq(ui_input_history_next(&in), 1);
	ck_assert_str_eq(ui_input_text(&in), "two");
	ck_assert_int_eq(ui_input_history_next(&in), 1);
	ck_assert_str_eq(ui_input_text(&in), "draft");
	ck_assert_int_eq(ui_input_history_next(&in), 0);
	ui_input_fini(&in);
}
END_TEST

START_TEST(test_paste_and_kill)
{
	struct ui_input in;
	char big[5000];

	ui_input_init(&in);
	ins(&in, "l1\r\nl2\rl3\x07");
	ck_assert_str_eq(ui_input_text(&in), "l1\nl2\nl3");
	ui_input_clear(&in);
	ins(&in, "hello world");
	ui_input_kill_word(&in);
	ck_assert_str_eq(ui_input_text(&in), "hello ");
	ui_input_yank(&in);
	ck_assert_str_eq(ui_input_text(&in), "hello world");
	ui_input_home(&in);
	ui_input_word_right(&in);
	ck_assert_uint_eq(in.cursor, 5);
	ui_input_kill_line(&in);
	ck_assert_str_eq(ui_input_text(&in), "hello");
	ui_input_kill_line_start(&in);
	ck_assert_str_eq(ui_input_text(&in), "");
	/* long paste lands whole, cursor at its end */
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ins(&in, big);
	ck_assert_uint_eq(in.text.len, sizeof big - 1);
	ck_assert_uint_eq(in.cursor, sizeof big - 1);
	ui_input_fini(&in);
}
END_TEST

Suite *input_suite(void)
{
	Suite *s = suite_create("input");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_insert_delete_graphemes);
	tcase_add_test(tc, test_vertical_logical_lines);
	tcase_add_test(tc, test_vertical_wide);
	tcase_add_test(tc, test_visual_rows);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_paste_and_kill);
	suite_add_tcase(s, tc);
	return s;
}
