/* ui/input.c — the multi-line editor model (see input_impl.h).
 *
 * Editing is in bytes, movement in graphemes (ui_text_next/prev), so a
 * cursor can never land inside a multi-byte character, a combining
 * sequence or an emoji ZWJ sequence.  Vertical movement works on visual
 * rows of the current width so a long pasted line can be navigated.
 */
#include "config.h"

#include "ui/input_impl.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void ui_input_init(struct ui_input *in)
{
	memset(in, 0, sizeof *in);
	strbuf_init(&in->text, 0);
	strbuf_init(&in->kill, 0);
	in->goal_col = -1;
}

void ui_input_fini(struct ui_input *in)
{
	strbuf_fini(&in->text);
	strbuf_fini(&in->kill);
	for (int i = 0; i < in->n_history; i++)
		free(in->history[i]);
	free(in->history);
	free(in->draft);
	memset(in, 0, sizeof *in);
}

const char *ui_input_text(const struct ui_input *in)
{
	return strbuf_cstr(&in->text);
}

int ui_input_empty(const struct ui_input *in)
{
	return in->text.len == 0;
}

/* Replace bytes [a,b) with s[0..n); cursor to a+n. */
static void splice(struct ui_input *in, size_t a, size_t b, const char *s, size_t n)
{
	struct strbuf nb;
	const char *t = strbuf_cstr(&in->text);

	strbuf_init(&nb, 0);
	if (strbuf_append(&nb, t, a) || strbuf_append(&nb, s, n) ||
	    strbuf_append(&nb, t + b, in->text.len - b)) {
		strbuf_fini(&nb); /* over the cap: refuse the edit */
		return;
	}
	strbuf_fini(&in->text);
	in->text = nb;
	in->cursor = a + n;
	in->goal_col = -1;
}

void ui_input_set(struct ui_input *in, const char *text)
{
	splice(in, 0, in->text.len, "", 0);
	ui_input_insert(in, text, strlen(text));
}

void ui_input_clear(struct ui_input *in)
{
	strbuf_reset(&in->text);
	in->cursor = 0;
	in->goal_col = -1;
	in->hist_pos = in->n_history;
}

void ui_input_insert(struct ui_input *in, const char *s, size_t n)
{
	struct strbuf clean;

	strbuf_init(&clean, 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r') {
			strbuf_putc(&clean, '\n');
			if (i + 1 < n && s[i + 1] == '\n')
				i++;
		} else if (c < 0x20 && c != '\n' && c != '\t') {
			continue;
		} else if (c == 0x7f) {
			continue;
		} else {
			strbuf_putc(&clean, (char)c);
		}
	}
	splice(in, in->cursor, in->cursor, strbuf_cstr(&clean), clean.len);
	strbuf_fini(&clean);
}

void ui_input_left(struct ui_input *in)
{
	in->cursor = ui_text_prev(in->text.data, in->text.len, in->cursor);
	in->goal_col = -1;
}

void ui_input_right(struct ui_input *in)
{
	if (in->cursor < in->text.len)
		in->cursor = ui_text_next(in->text.data, in->text.len, in->cursor, NULL);
	in->goal_col = -1;
}

void ui_input_backspace(struct ui_input *in)
{
	size_t a = ui_text_prev(in->text.data, in->text.len, in->cursor);

	if (a < in->cursor)
		splice(in, a, in->cursor, "", 0);
}

void ui_input_delete(struct ui_input *in)
{
	size_t b;

	if (in->cursor >= in->text.len)
		return;
	b = ui_text_next(in->text.data, in->text.len, in->cursor, NULL);
	splice(in, in->cursor, b, "", 0);
}

static int is_word_byte(char c)
{
	/* any non-ASCII byte is part of a word: good enough for CJK and
	 * accented text, where spaces/punctuation are ASCII */
	return (unsigned char)c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c == '_';
}

static size_t word_start(const struct ui_input *in, size_t p)
{
	const char *s = in->text.data;

	while (p > 0 && !is_word_byte(s[p - 1]))
		p = ui_text_prev(s, in->text.len, p);
	while (p > 0 && is_word_byte(s[p - 1]))
		p = ui_text_prev(s, in->text.len, p);
	return p;
}

void ui_input_word_left(struct ui_input *in)
{
	in->cursor = word_start(in, in->cursor);
	in->goal_col = -1;
}

void ui_input_word_right(struct ui_input *in)
{
	const char *s = in->text.data;
	size_t n = in->text.len, p = in->cursor;

	while (p < n && !is_word_byte(s[p]))
		p = ui_text_next(s, n, p, NULL);
	while (p < n && is_word_byte(s[p]))
		p = ui_text_next(s, n, p, NULL);
	in->cursor = p;
	in->goal_col = -1;
}

static size_t line_start(const struct ui_input *in, size_t p)
{
	while (p > 0 && in->text.data[p - 1] != '\n')
		p--;
	return p;
}

static size_t line_end(const struct ui_input *in, size_t p)
{
	while (p < in->text.len && in->text.data[p] != '\n')
		p++;
	return p;
}

void ui_input_home(struct ui_input *in)
{
	in->cursor = line_start(in, in->cursor);
	in->goal_col = -1;
}

void ui_input_end(struct ui_input *in)
{
	in->cursor = line_end(in, in->cursor);
	in->goal_col = -1;
}

static void kill_range(struct ui_input *in, size_t a, size_t b)
{
	if (a >= b)
		return;
	strbuf_reset(&in->kill);
	strbuf_append(&in->kill, in->text.data + a, b - a);
	splice(in, a, b, "", 0);
}

void ui_input_kill_line(struct ui_input *in)
{
	size_t e = line_end(in, in->cursor);

	if (e == in->cursor && e < in->text.len)
		e++; /* at the end of a line: join with the next (emacs C-k) */
	kill_range(in, in->cursor, e);
}

void ui_input_kill_line_start(struct ui_input *in)
{
	kill_range(in, line_start(in, in->cursor), in->cursor);
}

void ui_input_kill_word(struct ui_input *in)
{
	kill_range(in, word_start(in, in->cursor), in->cursor);
}

void ui_input_yank(struct ui_input *in)
{
	if (in->kill.len)
		splice(in, in->cursor, in->cursor, in->kill.data, in->kill.len);
}

void ui_input_layout(const struct ui_input *in, int width, struct ui_spans *rows, int *crow,
		     int *ccol)
{
	const char *s = strbuf_cstr(&in->text);
	size_t r;

	rows->n = 0;
	if (width < 1)
		width = 1;
	ui_text_wrap(s, in->text.len, width, 0, rows);
	/* the cursor's row: the last row whose start <= cursor and that
	 * contains it (end >= cursor; rows of one paragraph are contiguous) */
	for (r = 0; r < rows->n; r++) {
		const struct ui_span *sp = &rows->v[r];
		if (in->cursor >= sp->start && in->cursor <= sp->end) {
			if (in->cursor == sp->end && r + 1 < rows->n &&
			    rows->v[r + 1].start == sp->end)
				continue; /* soft break: belongs to the next row */
			break;
		}
	}
	if (r == rows->n)
		r = rows->n - 1;
	*crow = (int)r;
	*ccol = ui_text_width(s + rows->v[r].start, in->cursor - rows->v[r].start);
	if (*ccol >= width) {
		/* after a full last row: a virtual row below */
		*crow = (int)r + 1;
		*ccol = 0;
	}
}

int ui_input_vertical(struct ui_input *in, int delta, int width)
{
	struct ui_spans rows = { 0 };
	int crow, ccol, target, col;
	size_t p;
	const char *s = strbuf_cstr(&in->text);

	ui_input_layout(in, width, &rows, &crow, &ccol);
	if (in->goal_col < 0)
		in->goal_col = ccol;
	target = crow + delta;
	if (crow >= (int)rows.n) /* virtual row */
		crow = (int)rows.n - 1;
	if (target < 0 || target >= (int)rows.n) {
		ui_spans_fini(&rows);
		return 0;
	}
	/* walk the target row to the grapheme at the goal column */
	p = rows.v[target].start;
	col = 0;
	while (p < rows.v[target].end) {
		int w;
		size_t q = ui_text_next(s, in->text.len, p, &w);
		if (col + w > in->goal_col)
			break;
		col += w;
		p = q;
	}
	/* at a soft-wrapped row's end, stay before its last grapheme so the
	 * cursor remains on that row */
	if (p == rows.v[target].end && target + 1 < (int)rows.n &&
	    rows.v[target + 1].start == p && p > rows.v[target].start)
		p = ui_text_prev(s, in->text.len, p);
	in->cursor = p;
	ui_spans_fini(&rows);
	return 1;
}

void ui_input_history_add(struct ui_input *in, const char *text)
{
	if (!*text)
		return;
	if (in->n_history && !strcmp(in->history[in->n_history - 1], text)) {
		in->hist_pos = in->n_history;
		return;
	}
	if (in->n_history == UI_INPUT_HISTORY_MAX) {
		free(in->history[0]);
		memmove(in->history, in->history + 1, (size_t)(in->n_history - 1) * sizeof *in->history);
		in->n_history--;
	}
	in->history = xrealloc(in->history, (size_t)(in->n_history + 1) * sizeof *in->history);
	in->history[in->n_history++] = xstrdup(text);
	in->hist_pos = in->n_history;
}

int ui_input_history_prev(struct ui_input *in)
{
	if (in->hist_pos <= 0)
		return 0;
	if (in->hist_pos == in->n_history) {
		free(in->draft);
		in->draft = xstrdup(ui_input_text(in));
	}
	in->hist_pos--;
	splice(in, 0, in->text.len, in->history[in->hist_pos], strlen(in->history[in->hist_pos]));
	return 1;
}

int ui_input_history_next(struct ui_input *in)
{
	const char *t;

	if (in->hist_pos >= in->n_history)
		return 0;
	in->hist_pos++;
	t = in->hist_pos == in->n_history ? (in->draft ? in->draft : "") : in->history[in->hist_pos];
	splice(in, 0, in->text.len, t, strlen(t));
	return 1;
}
