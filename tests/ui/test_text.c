/* tests/ui/test_text.c — widths, graphemes and wrapping (ui/text.c).
 *
 * Expected widths are Unicode's (East Asian Width W/F = 2, combining marks
 * 0, emoji presentation 2); expected wraps are worked out by hand.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "ui/text_impl.h"

#define FAMILY "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7" /* 👨‍👩‍👧 */
#define E_ACUTE "e\xcc\x81" /* e + U+0301 */
#define ZHONG "\xe4\xb8\xad" /* 中 */

static int w(const char *s)
{
	return ui_text_width(s, strlen(s));
}

START_TEST(test_widths)
{
	ck_assert_int_eq(w("abc"), 3);
	ck_assert_int_eq(w(ZHONG), 2);
	ck_assert_int_eq(w("\xed\x95\x9c"), 2);                 /* 한 Hangul */
	ck_assert_int_eq(w("\xef\xbc\xa1"), 2);                 /* Ａ fullwidth A */
	ck_assert_int_eq(w(E_ACUTE), 1);
	ck_assert_int_eq(w("\xf0\x9f\x91\x8d"), 2);             /* 👍 */
	ck_assert_int_eq(w(FAMILY), 2);                         /* ZWJ sequence: one glyph */
	ck_assert_int_eq(w("\xf0\x9f\x87\xab\xf0\x9f\x87\xb7"), 2); /* 🇫🇷 */
	ck_assert_int_eq(w("\xe2\x9d\xa4\xef\xb8\x8f"), 2);     /* ❤️ with VS16 */
	ck_assert_int_eq(w("\t"), UI_TEXT_TAB_WIDTH);
	ck_assert_int_eq(w("a\nb"), 2);
	ck_assert_int_eq(w("\xff"), 1); /* invalid byte: one replacement glyph */
}
END_TEST

START_TEST(test_graphemes)
{
	const char *s = "a" E_ACUTE FAMILY "b";
	size_t n = strlen(s), p;
	int gw;

	p = ui_text_next(s, n, 0, &gw);
	ck_assert_uint_eq(p, 1);
	p = ui_text_next(s, n, p, &gw);
	ck_assert_uint_eq(p, 4); /* e + combining acute = 3 bytes */
	ck_assert_int_eq(gw, 1);
	p = ui_text_next(s, n, p, &gw);
	ck_assert_uint_eq(p, 4 + 18); /* whole family */
	ck_assert_int_eq(gw, 2);
	/* and back */
	ck_assert_uint_eq(ui_text_prev(s, n, n), 22);
	ck_assert_uint_eq(ui_text_prev(s, n, 22), 4);
	ck_assert_uint_eq(ui_text_prev(s, n, 4), 1);
	ck_assert_uint_eq(ui_text_prev(s, n, 1), 0);
	/* across a newline */
	ck_assert_uint_eq(ui_text_prev("ab\ncd", 5, 3), 2);
}
END_TEST

/* Wrap and return rows as "text|text|..." for comparison. */
static void wrap_str(const char *s, int width, int word, char *out, size_t cap)
{
	struct ui_spans sp = { 0 };
	size_t len = 0;

	ui_text_wrap(s, strlen(s), width, word, &sp);
	out[0] = '\0';
	for (size_t i = 0; i < sp.n; i++) {
		len += (size_t)snprintf(out + len, cap - len, "%s%.*s", i ? "|" : "",
					(int)(sp.v[i].end - sp.v[i].start), s + sp.v[i].start);
		/* within the width, unless the row is one over-wide glyph */
		ck_assert(sp.v[i].width <= width ||
			  ui_text_next(s, strlen(s), sp.v[i].start, NULL) == sp.v[i].end);
		ck_assert_int_eq(sp.v[i].width, ui_text_width(s + sp.v[i].start,
							      sp.v[i].end - sp.v[i].start));
	}
	ui_spans_fini(&sp);
}

START_TEST(test_word_wrap)
{
	char b[512];

	wrap_str("hello world foo", 11, 1, b, sizeof b);
	ck_assert_str_eq(b, "hello world|foo");
	wrap_str("hello world", 5, 1, b, sizeof b);
	ck_assert_str_eq(b, "hello|world");
	wrap_str("hello   world", 7, 1, b, sizeof b); /* spaces at the break dropped */
	ck_assert_str_eq(b, "hello|world");
	wrap_str("  indented text", 10, 1, b, sizeof b); /* leading spaces kept */
	ck_assert_str_eq(b, "  indented|text");
	wrap_str("a\n\nb", 10, 1, b, sizeof b);
	ck_assert_str_eq(b, "a||b");
	wrap_str("", 10, 1, b, sizeof b);
	ck_assert_str_eq(b, "");
	wrap_str("x\n", 10, 1, b, sizeof b);
	ck_assert_str_eq(b, "x|");
	wrap_str("abcdefghij", 4, 1, b, sizeof b); /* long word: broken */
	ck_assert_str_eq(b, "abcd|efgh|ij");
	wrap_str("go abcdefghij", 4, 1, b, sizeof b);
	ck_assert_str_eq(b, "go|abcd|efgh|ij");
}
END_TEST

START_TEST(test_wrap_wide_and_clusters)
{
	char b[512];

	/* a wide char never splits across rows */
	wrap_str(ZHONG ZHONG ZHONG, 5, 1, b, sizeof b);
	ck_assert_str_eq(b, ZHONG ZHONG "|" ZHONG);
	wrap_str("ab" ZHONG, 3, 1, b, sizeof b);
	ck_assert_str_eq(b, "ab|" ZHONG);
	/* combining marks stay on their base */
	wrap_str(E_ACUTE E_ACUTE E_ACUTE, 2, 1, b, sizeof b);
	ck_assert_str_eq(b, E_ACUTE E_ACUTE "|" E_ACUTE);
	/* ZWJ sequences are one 2-column glyph */
	wrap_str(FAMILY FAMILY FAMILY, 4, 1, b, sizeof b);
	ck_assert_str_eq(b, FAMILY FAMILY "|" FAMILY);
	/* a wide glyph in a 1-column row gets a row of its own */
	wrap_str("a" ZHONG "b", 1, 1, b, sizeof b);
	ck_assert_str_eq(b, "a|" ZHONG "|b");
}
END_TEST

START_TEST(test_grapheme_wrap_keeps_bytes)
{
	char b[512];

	wrap_str("ab cd", 3, 0, b, sizeof b);
	ck_assert_str_eq(b, "ab |cd");
	wrap_str("abc\ndef", 2, 0, b, sizeof b);
	ck_assert_str_eq(b, "ab|c|de|f");
}
END_TEST

START_TEST(test_display)
{
	char out[32];
	const char *s = "\tx\x01";

	ck_assert_uint_eq(ui_text_display(s, 0, 1, out, sizeof out), UI_TEXT_TAB_WIDTH);
	ck_assert_str_eq(out, "    ");
	ck_assert_uint_eq(ui_text_display(s, 1, 2, out, sizeof out), 1);
	ck_assert_str_eq(out, "x");
	ck_assert_uint_eq(ui_text_display(s, 2, 3, out, sizeof out), 3);
	ck_assert_str_eq(out, "\xef\xbf\xbd");
}
END_TEST

Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_widths);
	tcase_add_test(tc, test_graphemes);
	tcase_add_test(tc, test_word_wrap);
	tcase_add_test(tc, test_wrap_wide_and_clusters);
	tcase_add_test(tc, test_grapheme_wrap_keeps_bytes);
	tcase_add_test(tc, test_display);
	suite_add_tcase(s, tc);
	return s;
}
