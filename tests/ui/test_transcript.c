/* tests/ui/test_transcript.c — markdown-ish rendering, streaming, scroll. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "themes/theme.h"
#include "ui/transcript_impl.h"

static const char *sample =
	"# Title\n"
	"Some **bold** and *it* and `x = 1` here, long enough to wrap around.\n"
	"- first item that is rather long and wraps\n"
	"2. second\n"
	"```python\n"
	"def f(x):\n"
	"    return \"s\"  # note\n"
	"```\n"
	"> quoted *text*\n"
	"---\n"
	"tail \xe4\xb8\xad\xe6\x96\x87 end";

/* The body rows of message m as "row|row|...". */
static void body(const struct ui_transcript *t, int m, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < t->msgs[m].n_lines; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "",
					t->msgs[m].lines[i].text);
}

/* Role of the byte at offset `at` of row r of message 0 (-1 = none). */
static int role_at(const struct ui_transcript *t, size_t r, size_t at)
{
	const struct ui_tline *l = &t->msgs[0].lines[r];

	for (int k = 0; k < l->n_runs; k++)
		if (at >= l->runs[k].start && at < l->runs[k].end)
			return l->runs[k].role;
	return -1;
}

START_TEST(test_inline_and_blocks)
{
	struct ui_transcript t;
	char b[4096];

	ui_transcript_init(&t, 200);
	ui_transcript_add_msg(&t, 1, UI_ROLE_ASSISTANT, sample, 1, 1);
	body(&t, 0, b, sizeof b);
	{
		static const char want[] = "Title|"
			"Some bold and it and x = 1 here, long enough to wrap around.|"
			"\xe2\x80\xa2 first item that is rather long and wraps|"
			"2. second|"
			"```python|def f(x):|    return \"s\"  # note|```|"
			"\xe2\x94\x82 quoted text|";
		ck_assert_int_eq(strncmp(b, want, strlen(want)), 0);
	}
	/* the rule: one ─ per column of the 200-column width */
	ck_assert_uint_eq(t.msgs[0].lines[9].len, 200 * 3);
	ck_assert_int_eq(memcmp(t.msgs[0].lines[9].text, "\xe2\x94\x80", 3), 0);
	ck_assert_str_eq(t.msgs[0].lines[10].text, "tail \xe4\xb8\xad\xe6\x96\x87 end");
	ck_assert_uint_eq(t.msgs[0].n_lines, 11);
	ui_transcript_fini(&t);
}
END_TEST

START_TEST(test_roles)
{
	struct ui_transcript t;

	ui_transcript_init(&t, 200);
	ui_transcript_add_msg(&t, 1, UI_ROLE_ASSISTANT, sample, 1, 1);
	ck_assert_int_eq(role_at(&t, 0, 0), THEME_ROLE_HEADING);
	/* "Some bold and it and x = 1": bold at 5, "it" at 14, "x" at 21 */
	ck_assert_int_eq(role_at(&t, 1, 0), THEME_ROLE_ASSISTANT);
	ck_assert_int_eq(role_at(&t, 1, 5), THEME_ROLE_STRONG);
	ck_assert_int_eq(role_at(&t, 1, 14), THEME_ROLE_EMPHASIS);
	ck_assert_int_eq(role_at(&t, 1, 21), THEME_ROLE_INLINE_CODE);
	/* code block rows: fill with the code role, keyword/string/comment */
	ck_assert_int_eq(t.msgs[0].lines[4].fill_role, -1); /* the fence itself */
	ck_assert_int_eq(t.msgs[0].lines[5].fill_role, THEME_ROLE_CODE);
	ck_assert_int_eq(role_at(&t, 5, 0), THEME_ROLE_CODE_KEYWORD); /* def */
	ck_assert_int_eq(role_at(&t, 5, 4), THEME_ROLE_CODE);         /* f */
	ck_assert_int_eq(role_at(&t, 6, 4), THEME_ROLE_CODE_KEYWORD); /* return */
	ck_assert_int_eq(role_at(&t, 6, 11), THEME_ROLE_CODE_STRING); /* "s" */
	ck_assert_int_eq(role_at(&t, 6, 16), THEME_ROLE_CODE_COMMENT);/* # note */
	ck_assert_int_eq(t.msgs[0].lines[8].fill_role, -1); /* after the block */
	ck_assert_int_eq(role_at(&t, 8, 4), THEME_ROLE_QUOTE);
	/* snake_case is not emphasis; unclosed markers stay literal */
	ui_transcript_set_msg(&t, 1, "a_b_c and *open", 1, 1);
	ck_assert_str_eq(t.msgs[0].lines[0].text, "a_b_c and *open");
	ui_transcript_fini(&t);
}
END_TEST

START_TEST(test_list_hanging_indent)
{
	struct ui_transcript t;
	char b[512];

	ui_transcript_init(&t, 8);
	ui_transcript_add_msg(&t, 1, UI_ROLE_USER, "- aaaa bbbb cccc\n10. xx yy", 1, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x80\xa2 aaaa|  bbbb|  cccc|10. xx|    yy");
	ui_transcript_fini(&t);
}
END_TEST

static int same_render(const struct ui_transcript *a, const struct ui_transcript *b)
{
	const struct ui_tmsg *x = &a->msgs[0], *y = &b->msgs[0];

	if (x->n_lines != y->n_lines)
		return 0;
	for (size_t i = 0; i < x->n_lines; i++) {
		if (strcmp(x->lines[i].text, y->lines[i].text) ||
		    x->lines[i].n_runs != y->lines[i].n_runs ||
		    x->lines[i].fill_role != y->lines[i].fill_role)
			return 0;
		for (int k = 0; k < x->lines[i].n_runs; k++)
			if (x->lines[i].runs[k].start != y->lines[i].runs[k].start ||
			    x->lines[i].runs[k].end != y->lines[i].runs[k].end ||
			    x->lines[i].runs[k].role != y->lines[i].runs[k].role)
				return 0;
	}
	return 1;
}

/* Streaming in chunks of any size gives exactly the one-shot rendering
 * (including chunks that split UTF-8 sequences and markers). */
START_TEST(test_streaming_equals_full)
{
	static const int widths[] = { 12, 30, 80 };

	for (size_t wi = 0; wi < 3; wi++) {
		for (size_t chunk = 1; chunk <= 7; chunk++) {
			struct ui_transcript full, st;
			size_t n = strlen(sample);

			ui_transcript_init(&full, widths[wi]);
			ui_transcript_init(&st, widths[wi]);
			ui_transcript_add_msg(&full, 1, UI_ROLE_ASSISTANT, sample, 1, 1);
			ui_transcript_add_msg(&st, 1, UI_ROLE_ASSISTANT, "", 1, 1);
			for (size_t p = 0; p < n; p += chunk)
				ui_transcript_append_msg(&st, 1, sample + p, p + chunk > n ? n - p : chunk);
			ck_assert_msg(same_render(&full, &st), "width %d chunk %zu", widths[wi], chunk);
			/* the resume point is the last source line */
			ck_assert_uint_eq(st.msgs[0].tail_src, strrchr(sample, '\n') - sample + 1);
			ui_transcript_fini(&full);
			ui_transcript_fini(&st);
		}
	}
}
END_TEST

START_TEST(test_scroll_clamp_and_follow)
{
	struct ui_transcript t;

	ui_transcript_init(&t, 40);
	/* 3 messages x (header + 2 body + blank) = 12 rows */
	for (int i = 0; i < 3; i++)
		ui_transcript_add_msg(&t, i, UI_ROLE_USER, "a\nb", 1, 1);
	ck_assert_int_eq(ui_transcript_rows(&t), 12);
	ui_transcript_scroll(&t, 100, 5);
	ck_assert_int_eq(t.scroll, 7);
	ck_assert_int_eq(ui_transcript_top(&t, 5), 0);
	ui_transcript_scroll(&t, -100, 5);
	ck_assert_int_eq(t.scroll, 0);
	ck_assert_int_eq(ui_transcript_top(&t, 5), 7);
	/* scrolled back: new rows do not move the view */
	ui_transcript_scroll(&t, 3, 5);
	ui_transcript_append_msg(&t, 2, "\nc\nd", 4);
	ck_assert_int_eq(t.scroll, 5);
	ck_assert_int_eq(ui_transcript_top(&t, 5), 14 - 5 - 5);
	/* following: stays at the bottom */
	t.scroll = 0;
	ui_transcript_append_msg(&t, 2, "\ne", 2);
	ck_assert_int_eq(t.scroll, 0);
	/* fewer rows than the view */
	ui_transcript_reset(&t);
	ui_transcript_scroll(&t, 5, 5);
	ck_assert_int_eq(t.scroll, 0);
	ui_transcript_fini(&t);
}
END_TEST

START_TEST(test_rows_headers_branches)
{
	struct ui_transcript t;
	int m;
	const struct ui_tline *l;

	ui_transcript_init(&t, 40);
	ui_transcript_add_msg(&t, 7, UI_ROLE_USER, "q", 1, 1);
	ui_transcript_add_msg(&t, 8, UI_ROLE_ASSISTANT, "r", 2, 3);
	l = ui_transcript_row(&t, 0, &m);
	ck_assert_str_eq(l->text, "You");
	ck_assert_int_eq(m, 0);
	l = ui_transcript_row(&t, 3, &m);
	ck_assert_int_eq(l->kind, UI_TLINE_HEADER);
	ck_assert_ptr_nonnull(strstr(l->text, "branch 2/3"));
	ck_assert_int_eq(m, 1);
	ck_assert_int_eq(ui_transcript_row(&t, 5, &m)->kind, UI_TLINE_BLANK);
	ck_assert_ptr_null(ui_transcript_row(&t, 6, &m));
	ck_assert_int_eq(ui_transcript_find(&t, 8), 1);
	ck_assert_int_eq(ui_transcript_find(&t, 9), -1);
	/* a note follows the label, dim, and leaves the rows as they are */
	ck_assert_int_eq(ui_transcript_set_note(&t, 8, "+1 image, stopped"), 1);
	l = ui_transcript_row(&t, 3, &m);
	ck_assert_str_eq(l->text, "Assistant  \xe2\x80\xb9 branch 2/3 \xe2\x80\xba  \xc2\xb7 +1 image, stopped");
	ck_assert_int_eq(l->runs[l->n_runs - 1].role, THEME_ROLE_DIM);
	ck_assert_int_eq(ui_transcript_rows(&t), 6);
	ui_transcript_set_msg(&t, 8, "r2", 2, 3); /* kept through a re-render */
	ck_assert_ptr_nonnull(strstr(ui_transcript_row(&t, 3, &m)->text, "stopped"));
	ck_assert_int_eq(ui_transcript_set_note(&t, 8, NULL), 1);
	ck_assert_ptr_null(strstr(ui_transcript_row(&t, 3, &m)->text, "stopped"));
	ck_assert_int_eq(ui_transcript_set_note(&t, 9, "x"), -1);
	ui_transcript_truncate_at(&t, 1);
	ck_assert_int_eq(t.n_msgs, 1);
	/* width change re-wraps */
	ui_transcript_set_msg(&t, 7, "aaaa bbbb", 1, 1);
	ck_assert_uint_eq(t.msgs[0].n_lines, 1);
	ui_transcript_set_width(&t, 5);
	ck_assert_uint_eq(t.msgs[0].n_lines, 2);
	ui_transcript_fini(&t);
}
END_TEST

/* A reasoning model's <think> block: a "thinking" label, the thoughts dim
 * behind a dotted bar, the closing tag dropped, the answer as usual; the
 * same when streamed in pieces; only in replies, not in code. */
START_TEST(test_think_block)
{
	static const char reply[] =
		"<think>\n"
		"The user asks **two**.\n"
		"Maybe 2.\n"
		"</think>\n"
		"\n"
		"The answer is 2.";
	struct ui_transcript t, st;
	char b[1024];

	ui_transcript_init(&t, 80);
	ui_transcript_add_msg(&t, 1, UI_ROLE_ASSISTANT, reply, 1, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x94\x8a thinking|\xe2\x94\x8a The user asks two.|"
			    "\xe2\x94\x8a Maybe 2.||The answer is 2.");
	ck_assert_int_eq(role_at(&t, 1, 4), THEME_ROLE_DIM);     /* "The" */
	ck_assert_int_eq(role_at(&t, 1, 18), THEME_ROLE_STRONG); /* "two" */
	ck_assert_int_eq(role_at(&t, 4, 0), THEME_ROLE_ASSISTANT);
	/* streamed a byte at a time: the same rows (the tag lines too) */
	ui_transcript_init(&st, 80);
	ui_transcript_add_msg(&st, 1, UI_ROLE_ASSISTANT, "", 1, 1);
	for (size_t p = 0; p < sizeof reply - 1; p++)
		ui_transcript_append_msg(&st, 1, reply + p, 1);
	ck_assert(same_render(&t, &st));
	/* folded (M-t): the label alone, streamed or not; unfolded again */
	ui_transcript_set_hide_think(&t, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x94\x8a thinking (hidden)||The answer is 2.");
	ui_transcript_fini(&st);
	ui_transcript_init(&st, 80);
	ui_transcript_set_hide_think(&st, 1);
	ui_transcript_add_msg(&st, 1, UI_ROLE_ASSISTANT, "", 1, 1);
	for (size_t p = 0; p < sizeof reply - 1; p++)
		ui_transcript_append_msg(&st, 1, reply + p, 1);
	ck_assert(same_render(&t, &st));
	ui_transcript_set_hide_think(&t, 0);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x94\x8a thinking|\xe2\x94\x8a The user asks two.|"
			    "\xe2\x94\x8a Maybe 2.||The answer is 2.");
	/* still thinking: everything after the tag is dim */
	ui_transcript_set_msg(&t, 1, "<think>\nhmm", 1, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x94\x8a thinking|\xe2\x94\x8a hmm");
	/* tags on the text's own lines */
	ui_transcript_set_msg(&t, 1, "<think>short</think> Answer", 1, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "\xe2\x94\x8a thinking|\xe2\x94\x8a short|Answer");
	/* a fenced tag is code; a user's tag is text */
	ui_transcript_set_msg(&t, 1, "```\n<think>\n```", 1, 1);
	body(&t, 0, b, sizeof b);
	ck_assert_str_eq(b, "```|<think>|```");
	ui_transcript_add_msg(&t, 2, UI_ROLE_USER, "<think>\nx", 1, 1);
	body(&t, 1, b, sizeof b);
	ck_assert_str_eq(b, "<think>|x");
	ui_transcript_fini(&t);
	ui_transcript_fini(&st);
}
END_TEST

Suite *transcript_suite(void)
{
	Suite *s = suite_create("transcript");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_inline_and_blocks);
	tcase_add_test(tc, test_roles);
	tcase_add_test(tc, test_list_hanging_indent);
	tcase_add_test(tc, test_streaming_equals_full);
	tcase_add_test(tc, test_think_block);
	tcase_add_test(tc, test_scroll_clamp_and_follow);
	tcase_add_test(tc, test_rows_headers_branches);
	suite_add_tcase(s, tc);
	return s;
}
