/* ui/transcript.c — messages -> wrapped, styled rows (see transcript_impl.h).
 *
 * Markdown-ish, line by line (no lookahead past a line, which is what makes
 * streaming re-render only the tail):
 *   ``` / ~~~   fence, toggles a code block (fence row dim; code rows wrap
 *               between graphemes, fill the row with the code role, and
 *               get keyword / string / comment highlighting);
 *   # ...       heading (1-6 '#');   > ...  quote (bar prefix);
 *   - * + / 1.  list item with a bullet and a hanging indent;
 *   --- *** ___ horizontal rule;
 *   inline: `code`, **strong**, *emphasis*, _emphasis_ (only when closed on
 *   the same line; otherwise the markers stay literal).
 */
#include "config.h"

#include "ui/transcript_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "themes/theme.h"
#include "ui/text_impl.h"

/* ---- styled text under construction ---------------------------------- */

struct styled {
	struct strbuf s;
	unsigned char *role; /* one role per byte of s */
	size_t cap;
};

/* parser state at a source line (ui_tmsg.tail_state) */
#define TS_CODE 1  /* inside a ``` fence */
#define TS_THINK 2 /* inside a reply's <think> block */
#define TS_HIDE 4  /* <think> blocks folded (the transcript's hide_think) */

static void st_put(struct styled *st, const char *p, size_t n, int role)
{
	size_t old = st->s.len;

	if (n == 0 || strbuf_append(&st->s, p, n))
		return;
	if (st->s.len > st->cap) {
		st->cap = st->s.len * 2 + 64;
		st->role = xrealloc(st->role, st->cap);
	}
	memset(st->role + old, role, n);
}

static void st_reset(struct styled *st)
{
	strbuf_reset(&st->s);
}

static void st_fini(struct styled *st)
{
	strbuf_fini(&st->s);
	free(st->role);
}

/* ---- rows ------------------------------------------------------------ */

static void tline_fini(struct ui_tline *l)
{
	free(l->text);
	free(l->runs);
	memset(l, 0, sizeof *l);
}

/* Build a row from prefix (one role) + st bytes [a,b). */
static void tline_make(struct ui_tline *l, const char *prefix, int prefix_role,
		       const struct styled *st, size_t a, size_t b, int fill)
{
	size_t pl = strlen(prefix);
	int cap = 4, n = 0;

	memset(l, 0, sizeof *l);
	l->len = pl + (b - a);
	l->text = xmalloc(l->len + 1);
	memcpy(l->text, prefix, pl);
	if (b > a)
		memcpy(l->text + pl, st->s.data + a, b - a);
	l->text[l->len] = '\0';
	l->runs = xmalloc((size_t)cap * sizeof *l->runs);
	if (pl) {
		l->runs[n++] = (struct ui_run){ 0, pl, prefix_role };
	}
	for (size_t i = a; i < b;) {
		size_t j = i;
		while (j < b && st->role[j] == st->role[i])
			j++;
		if (n == cap) {
			cap *= 2;
			l->runs = xrealloc(l->runs, (size_t)cap * sizeof *l->runs);
		}
		l->runs[n++] = (struct ui_run){ pl + (i - a), pl + (j - a), st->role[i] };
		i = j;
	}
	l->n_runs = n;
	l->fill_role = fill;
	l->kind = UI_TLINE_BODY;
}

static void push_line(struct ui_tmsg *m, struct ui_tline *l)
{
	if (m->n_lines == m->cap_lines) {
		m->cap_lines = m->cap_lines ? m->cap_lines * 2 : 16;
		m->lines = xrealloc(m->lines, m->cap_lines * sizeof *m->lines);
	}
	m->lines[m->n_lines++] = *l;
}

/* ---- inline markup ---------------------------------------------------- */

static int is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Find the closing marker mk (len ml) in s[from..n), not preceded by a
 * space; returns its offset or (size_t)-1. */
static size_t find_close(const char *s, size_t n, size_t from, const char *mk, size_t ml)
{
	for (size_t i = from; i + ml <= n; i++) {
		if (!memcmp(s + i, mk, ml) && i > from && s[i - 1] != ' ')
			return i;
	}
	return (size_t)-1;
}

static void inline_md(struct styled *st, const char *s, size_t n, int base)
{
	size_t i = 0, lit = 0;

	while (i < n) {
		char c = s[i];
		size_t close;

		if (c == '`') {
			close = find_close(s, n, i + 1, "`", 1);
			if (close != (size_t)-1) {
				st_put(st, s + lit, i - lit, base);
				st_put(st, s + i + 1, close - i - 1, THEME_ROLE_INLINE_CODE);
				i = lit = close + 1;
				continue;
			}
		} else if (c == '*' && i + 1 < n && s[i + 1] == '*' && i + 2 < n && s[i + 2] != ' ') {
			close = find_close(s, n, i + 2, "**", 2);
			if (close != (size_t)-1) {
				st_put(st, s + lit, i - lit, base);
				st_put(st, s + i + 2, close - i - 2, THEME_ROLE_STRONG);
				i = lit = close + 2;
				continue;
			}
		} else if ((c == '*' || c == '_') && i + 1 < n && s[i + 1] != ' ' && s[i + 1] != c &&
			   (c == '*' || i == 0 || !is_alnum(s[i - 1]))) {
			char mk[2] = { c, 0 };
			close = find_close(s, n, i + 1, mk, 1);
			if (close != (size_t)-1 &&
			    (c == '*' || close + 1 >= n || !is_alnum(s[close + 1]))) {
				st_put(st, s + lit, i - lit, base);
				st_put(st, s + i + 1, close - i - 1, THEME_ROLE_EMPHASIS);
				i = lit = close + 1;
				continue;
			}
		}
		i++;
	}
	st_put(st, s + lit, n - lit, base);
}

/* ---- code highlighting ------------------------------------------------ */

static const char *const keywords[] = {
	"if", "else", "for", "while", "do", "return", "break", "continue", "switch", "case",
	"default", "goto", "struct", "union", "enum", "typedef", "static", "const", "void",
	"int", "char", "long", "short", "unsigned", "signed", "float", "double", "bool",
	"sizeof", "extern", "inline", "def", "class", "import", "from", "as", "in", "is",
	"not", "and", "or", "lambda", "yield", "try", "except", "finally", "raise", "with",
	"pass", "None", "True", "False", "function", "var", "let", "fn", "pub", "mut", "impl",
	"use", "mod", "match", "true", "false", "null", "nil", "new", "delete", "this", "self",
	"async", "await", "package", "func", "type", "interface", "public", "private",
	"protected", "then", "fi", "done", "echo", "export", "local", "end", "elif", "loop",
	NULL,
};

static int is_keyword(const char *s, size_t n)
{
	for (int i = 0; keywords[i]; i++)
		if (strlen(keywords[i]) == n && !memcmp(keywords[i], s, n))
			return 1;
	return 0;
}

static void code_md(struct styled *st, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char c = s[i];
		size_t j;

		if ((c == '/' && i + 1 < n && s[i + 1] == '/') ||
		    (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))) {
			st_put(st, s + i, n - i, THEME_ROLE_CODE_COMMENT);
			return;
		}
		if (c == '"' || c == '\'') {
			for (j = i + 1; j < n && s[j] != c; j++)
				if (s[j] == '\\' && j + 1 < n)
					j++;
			j = j < n ? j + 1 : n;
			st_put(st, s + i, j - i, THEME_ROLE_CODE_STRING);
			i = j;
			continue;
		}
		if (is_alnum(c) || c == '_') {
			for (j = i; j < n && (is_alnum(s[j]) || s[j] == '_'); j++)
				;
			st_put(st, s + i, j - i,
			       is_keyword(s + i, j - i) ? THEME_ROLE_CODE_KEYWORD : THEME_ROLE_CODE);
			i = j;
			continue;
		}
		st_put(st, s + i, 1, THEME_ROLE_CODE);
		i++;
	}
}

/* ---- one source line -------------------------------------------------- */

static int base_role(enum ui_role r)
{
	switch (r) {
	case UI_ROLE_USER: return THEME_ROLE_USER;
	case UI_ROLE_SYSTEM: return THEME_ROLE_SYSTEM;
	case UI_ROLE_ERROR: return THEME_ROLE_ERROR;
	default: return THEME_ROLE_ASSISTANT;
	}
}

/* Expand tabs to stops of UI_TEXT_TAB_WIDTH columns. */
static char *expand_tabs(const char *s, size_t n, size_t *out_n)
{
	struct strbuf b;
	int col = 0;

	strbuf_init(&b, 0);
	for (size_t i = 0; i < n;) {
		int w;
		size_t j = ui_text_next(s, n, i, &w);
		if (s[i] == '\t') {
			int k = UI_TEXT_TAB_WIDTH - col % UI_TEXT_TAB_WIDTH;
			col += k;
			while (k--)
				strbuf_putc(&b, ' ');
		} else {
			strbuf_append(&b, s + i, j - i);
			col += w;
		}
		i = j;
	}
	return strbuf_take(&b, out_n);
}

static int is_fence(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && i < 3 && s[i] == ' ')
		i++;
	return n - i >= 3 && (!memcmp(s + i, "```", 3) || !memcmp(s + i, "~~~", 3));
}

static int is_rule(const char *s, size_t n)
{
	size_t k = 0;
	char c = n ? s[0] : 0;

	if (c != '-' && c != '*' && c != '_')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == c)
			k++;
		else if (s[i] != ' ')
			return 0;
	}
	return k >= 3;
}

/* Wrap st into rows; first row gets prefix1, later rows prefix2 (same
 * width, usually spaces: the hanging indent). */
static void emit(struct ui_tmsg *m, struct styled *st, int width, int word, const char *prefix1,
		 const char *prefix2, int prefix_role, int fill)
{
	struct ui_spans sp = { 0 };
	int pw = ui_text_width(prefix1, strlen(prefix1));

	ui_text_wrap(st->s.data ? st->s.data : "", st->s.len, width - pw, word, &sp);
	for (size_t r = 0; r < sp.n; r++) {
		struct ui_tline l;
		tline_make(&l, r ? prefix2 : prefix1, prefix_role, st, sp.v[r].start, sp.v[r].end, fill);
		push_line(m, &l);
	}
	ui_spans_fini(&sp);
}

/* Whether line S starts with TAG (after spaces); *rest: the offset after
 * the tag. */
static int is_tag_line(const char *s, size_t n, const char *tag, size_t *rest)
{
	const size_t tl = strlen(tag);
	size_t i = 0;

	while (i < n && s[i] == ' ')
		i++;
	if (n - i < tl || memcmp(s + i, tag, tl))
		return 0;
	*rest = i + tl;
	return 1;
}

/* A reasoning model's thinking (an assistant reply's "<think>" line up
 * to the "</think>" that closes it): dim rows behind a dotted bar, the
 * opening tag as a "thinking" label, the closing one dropped; text after
 * the closing tag on its line is rendered as an ordinary line.  Folded
 * (TS_HIDE): the label alone. */
#define THINK_BAR "\xe2\x94\x8a " /* ┊ */

static void render_line(struct ui_tmsg *m, const char *raw, size_t rn, int width, int *state,
			struct styled *st);

/* One line of thoughts: dim rows behind the bar (none when folded). */
static void think_rows(struct ui_tmsg *m, const char *s, size_t n, int width, int state,
		       struct styled *st)
{
	if (state & TS_HIDE)
		return;
	st_reset(st);
	inline_md(st, s, n, THEME_ROLE_DIM);
	emit(m, st, width, 1, THINK_BAR, THINK_BAR, THEME_ROLE_DIM, -1);
}

static void render_think(struct ui_tmsg *m, const char *s, size_t n, int width, int *state,
			 struct styled *st)
{
	const char *close = NULL;
	size_t i;

	for (i = 0; i + 8 <= n; i++)
		if (!memcmp(s + i, "</think>", 8)) {
			close = s + i;
			break;
		}
	if (close) {
		size_t before = (size_t)(close - s), after = before + 8;

		*state &= ~TS_THINK;
		while (before > 0 && s[before - 1] == ' ')
			before--;
		if (before > 0)
			think_rows(m, s, before, width, *state, st);
		while (after < n && s[after] == ' ')
			after++;
		if (after < n)
			render_line(m, s + after, n - after, width, state, st);
		return;
	}
	think_rows(m, s, n, width, *state, st);
}

static void render_line(struct ui_tmsg *m, const char *raw, size_t rn, int width, int *state,
			struct styled *st)
{
	int base = base_role(m->role);
	size_t n, i, rest;
	char *s = expand_tabs(raw, rn, &n);

	st_reset(st);
	if (*state & TS_THINK) {
		render_think(m, s, n, width, state, st);
		goto out;
	}
	if (!(*state & TS_CODE) && m->role == UI_ROLE_ASSISTANT &&
	    is_tag_line(s, n, "<think>", &rest)) {
		if (*state & TS_HIDE)
			st_put(st, "thinking (hidden)", 17, THEME_ROLE_DIM);
		else
			st_put(st, "thinking", 8, THEME_ROLE_DIM);
		emit(m, st, width, 0, THINK_BAR, THINK_BAR, THEME_ROLE_DIM, -1);
		*state |= TS_THINK;
		while (rest < n && s[rest] == ' ')
			rest++;
		if (rest < n)
			render_think(m, s + rest, n - rest, width, state, st);
		goto out;
	}
	if (is_fence(s, n)) {
		st_put(st, s, n, THEME_ROLE_DIM);
		emit(m, st, width, 0, "", "", THEME_ROLE_DIM, -1);
		*state ^= TS_CODE;
		goto out;
	}
	if (*state & TS_CODE) {
		code_md(st, s, n);
		emit(m, st, width, 0, "", "", THEME_ROLE_CODE, THEME_ROLE_CODE);
		goto out;
	}
	if (is_rule(s, n)) {
		for (int k = 0; k < width; k++)
			st_put(st, "\xe2\x94\x80", 3, THEME_ROLE_DIM); /* ─ */
		emit(m, st, width, 0, "", "", THEME_ROLE_DIM, -1);
		goto out;
	}
	for (i = 0; i < n && i < 6 && s[i] == '#'; i++)
		;
	if (i > 0 && i < n && s[i] == ' ') {
		st_put(st, s + i + 1, n - i - 1, THEME_ROLE_HEADING);
		emit(m, st, width, 1, "", "", THEME_ROLE_HEADING, -1);
		goto out;
	}
	if (n > 0 && s[0] == '>') {
		i = n > 1 && s[1] == ' ' ? 2 : 1;
		inline_md(st, s + i, n - i, THEME_ROLE_QUOTE);
		emit(m, st, width, 1, "\xe2\x94\x82 ", "\xe2\x94\x82 ", THEME_ROLE_DIM, -1); /* │ */
		goto out;
	}
	{
		size_t ind = 0, k;
		for (; ind < n && s[ind] == ' '; ind++)
			;
		k = ind;
		if (k + 1 < n && (s[k] == '-' || s[k] == '*' || s[k] == '+') && s[k + 1] == ' ') {
			char p1[64], p2[64];
			size_t ii = ind > 40 ? 40 : ind;
			memset(p1, ' ', ii);
			memcpy(p1 + ii, "\xe2\x80\xa2 ", 4); /* "• " */
			p1[ii + 4] = '\0';
			memset(p2, ' ', ii + 2);
			p2[ii + 2] = '\0';
			inline_md(st, s + k + 2, n - k - 2, base);
			emit(m, st, width, 1, p1, p2, THEME_ROLE_DIM, -1);
			goto out;
		}
		while (k < n && s[k] >= '0' && s[k] <= '9')
			k++;
		if (k > ind && k - ind < 10 && k + 1 < n && (s[k] == '.' || s[k] == ')') &&
		    s[k + 1] == ' ') {
			char p1[64], p2[64];
			size_t ii = ind > 40 ? 40 : ind, ml = k + 2 - ind;
			memset(p1, ' ', ii);
			memcpy(p1 + ii, s + ind, ml);
			p1[ii + ml] = '\0';
			memset(p2, ' ', ii + ml);
			p2[ii + ml] = '\0';
			inline_md(st, s + k + 2, n - k - 2, base);
			emit(m, st, width, 1, p1, p2, THEME_ROLE_DIM, -1);
			goto out;
		}
	}
	inline_md(st, s, n, base);
	emit(m, st, width, 1, "", "", base, -1);
out:
	free(s);
}

/* Re-render message m's body from its saved tail point to the end. */
static void render_tail(struct ui_tmsg *m, int width)
{
	struct styled st = { 0 };
	const char *s = strbuf_cstr(&m->text);
	size_t n = m->text.len, p = m->tail_src;
	int state = m->tail_state;

	while (m->n_lines > m->tail_line)
		tline_fini(&m->lines[--m->n_lines]);
	strbuf_init(&st.s, 0);
	for (;;) {
		size_t e = p;
		while (e < n && s[e] != '\n')
			e++;
		if (e == n) {
			/* the last source line: remember how to resume here */
			m->tail_src = p;
			m->tail_line = m->n_lines;
			m->tail_state = state;
			render_line(m, s + p, e - p, width, &state, &st);
			break;
		}
		render_line(m, s + p, e - p, width, &state, &st);
		p = e + 1;
	}
	st_fini(&st);
}

static const char *role_label(enum ui_role r)
{
	switch (r) {
	case UI_ROLE_USER: return "You";
	case UI_ROLE_SYSTEM: return "System";
	case UI_ROLE_ERROR: return "Error";
	default: return "Assistant";
	}
}

static void render_header(struct ui_tmsg *m)
{
	struct styled st = { 0 };
	int lr = m->role == UI_ROLE_USER ? THEME_ROLE_USER_LABEL
		 : m->role == UI_ROLE_ASSISTANT ? THEME_ROLE_ASSISTANT_LABEL
		 : m->role == UI_ROLE_ERROR ? THEME_ROLE_ERROR : THEME_ROLE_SYSTEM;
	const char *lab = role_label(m->role);

	strbuf_init(&st.s, 0);
	st_put(&st, lab, strlen(lab), lr);
	if (m->branch_n > 1) {
		char b[64];
		snprintf(b, sizeof b, "  \xe2\x80\xb9 branch %d/%d \xe2\x80\xba", m->branch_i, m->branch_n);
		st_put(&st, b, strlen(b), THEME_ROLE_DIM);
	}
	if (m->note) {
		st_put(&st, "  \xc2\xb7 ", 5, THEME_ROLE_DIM); /* " · " */
		st_put(&st, m->note, strlen(m->note), THEME_ROLE_DIM);
	}
	tline_fini(&m->header);
	tline_make(&m->header, "", 0, &st, 0, st.s.len, -1);
	m->header.kind = UI_TLINE_HEADER;
	st_fini(&st);
}

static void render_full(struct ui_tmsg *m, int width, int hide_think)
{
	m->tail_src = 0;
	m->tail_line = 0;
	m->tail_state = hide_think ? TS_HIDE : 0;
	render_tail(m, width);
	render_header(m);
}

/* ---- public ------------------------------------------------------------ */

void ui_transcript_init(struct ui_transcript *t, int width)
{
	memset(t, 0, sizeof *t);
	t->width = width < 4 ? 4 : width;
	t->selected = -1;
}

static void msg_fini(struct ui_tmsg *m)
{
	free(m->note);
	strbuf_fini(&m->text);
	for (size_t i = 0; i < m->n_lines; i++)
		tline_fini(&m->lines[i]);
	free(m->lines);
	tline_fini(&m->header);
}

void ui_transcript_reset(struct ui_transcript *t)
{
	for (int i = 0; i < t->n_msgs; i++)
		msg_fini(&t->msgs[i]);
	t->n_msgs = 0;
	t->scroll = 0;
	t->selected = -1;
}

void ui_transcript_fini(struct ui_transcript *t)
{
	ui_transcript_reset(t);
	free(t->msgs);
	memset(t, 0, sizeof *t);
}

void ui_transcript_set_width(struct ui_transcript *t, int width)
{
	if (width < 4)
		width = 4;
	if (width == t->width)
		return;
	t->width = width;
	for (int i = 0; i < t->n_msgs; i++)
		render_full(&t->msgs[i], width, t->hide_think);
}

int ui_transcript_find(const struct ui_transcript *t, int id)
{
	for (int i = t->n_msgs - 1; i >= 0; i--)
		if (t->msgs[i].id == id)
			return i;
	return -1;
}

/* Keep the viewport still when rows are added while scrolled back. */
static void keep_view(struct ui_transcript *t, long before)
{
	if (t->scroll > 0)
		t->scroll += ui_transcript_rows(t) - before;
}

void ui_transcript_set_hide_think(struct ui_transcript *t, int hide)
{
	long before = ui_transcript_rows(t);

	hide = !!hide;
	if (hide == t->hide_think)
		return;
	t->hide_think = hide;
	for (int i = 0; i < t->n_msgs; i++)
		render_full(&t->msgs[i], t->width, hide);
	keep_view(t, before);
}

int ui_transcript_add_msg(struct ui_transcript *t, int id, enum ui_role role, const char *text,
			  int branch_i, int branch_n)
{
	struct ui_tmsg *m;
	long before = ui_transcript_rows(t);

	if (t->n_msgs == t->cap_msgs) {
		t->cap_msgs = t->cap_msgs ? t->cap_msgs * 2 : 16;
		t->msgs = xrealloc(t->msgs, (size_t)t->cap_msgs * sizeof *t->msgs);
	}
	m = &t->msgs[t->n_msgs++];
	memset(m, 0, sizeof *m);
	m->id = id;
	m->role = role;
	m->branch_i = branch_i;
	m->branch_n = branch_n;
	strbuf_init(&m->text, 0);
	strbuf_puts(&m->text, text ? text : "");
	render_full(m, t->width, t->hide_think);
	keep_view(t, before);
	return t->n_msgs - 1;
}

int ui_transcript_append_msg(struct ui_transcript *t, int id, const char *s, size_t n)
{
	int i = ui_transcript_find(t, id);
	long before = ui_transcript_rows(t);

	if (i < 0)
		return -1;
	strbuf_append(&t->msgs[i].text, s, n);
	render_tail(&t->msgs[i], t->width);
	keep_view(t, before);
	return i;
}

int ui_transcript_set_msg(struct ui_transcript *t, int id, const char *text, int branch_i,
			  int branch_n)
{
	int i = ui_transcript_find(t, id);

	if (i < 0)
		return -1;
	strbuf_reset(&t->msgs[i].text);
	strbuf_puts(&t->msgs[i].text, text ? text : "");
	t->msgs[i].branch_i = branch_i;
	t->msgs[i].branch_n = branch_n;
	render_full(&t->msgs[i], t->width, t->hide_think);
	return i;
}

int ui_transcript_set_note(struct ui_transcript *t, int id, const char *note)
{
	int i = ui_transcript_find(t, id);

	if (i < 0)
		return -1;
	free(t->msgs[i].note);
	t->msgs[i].note = note && *note ? xstrdup(note) : NULL;
	render_header(&t->msgs[i]);
	return i;
}

void ui_transcript_truncate_at(struct ui_transcript *t, int index)
{
	if (index < 0)
		return;
	while (t->n_msgs > index)
		msg_fini(&t->msgs[--t->n_msgs]);
	if (t->selected >= t->n_msgs)
		t->selected = -1;
}

static long msg_rows(const struct ui_tmsg *m)
{
	return (long)m->n_lines + 2;
}

long ui_transcript_rows(const struct ui_transcript *t)
{
	long n = 0;

	for (int i = 0; i < t->n_msgs; i++)
		n += msg_rows(&t->msgs[i]);
	return n;
}

long ui_transcript_msg_row(const struct ui_transcript *t, int m)
{
	long n = 0;

	for (int i = 0; i < m && i < t->n_msgs; i++)
		n += msg_rows(&t->msgs[i]);
	return n;
}

const struct ui_tline *ui_transcript_row(const struct ui_transcript *t, long i, int *msg)
{
	static char empty[1];
	static const struct ui_tline blank = { .text = empty, .fill_role = -1,
					       .kind = UI_TLINE_BLANK };

	for (int k = 0; k < t->n_msgs; k++) {
		const struct ui_tmsg *m = &t->msgs[k];
		long r = msg_rows(m);
		if (i < r) {
			if (msg)
				*msg = k;
			if (i == 0)
				return &m->header;
			if (i == r - 1)
				return &blank;
			return &m->lines[i - 1];
		}
		i -= r;
	}
	if (msg)
		*msg = -1;
	return NULL;
}

void ui_transcript_clamp(struct ui_transcript *t, int height)
{
	long max = ui_transcript_rows(t) - height;

	if (max < 0)
		max = 0;
	if (t->scroll > max)
		t->scroll = max;
	if (t->scroll < 0)
		t->scroll = 0;
}

void ui_transcript_scroll(struct ui_transcript *t, long delta, int height)
{
	t->scroll += delta;
	ui_transcript_clamp(t, height);
}

long ui_transcript_top(const struct ui_transcript *t, int height)
{
	long top = ui_transcript_rows(t) - height - t->scroll;

	return top < 0 ? 0 : top;
}

void ui_transcript_select(struct ui_transcript *t, int delta, int height)
{
	long row, top, total;
	const struct ui_tmsg *m;

	if (t->n_msgs == 0) {
		t->selected = -1;
		return;
	}
	if (t->selected < 0)
		t->selected = t->n_msgs - 1;
	else
		t->selected += delta;
	if (t->selected < 0)
		t->selected = 0;
	if (t->selected >= t->n_msgs)
		t->selected = t->n_msgs - 1;
	/* make the header visible; prefer showing the whole message */
	m = &t->msgs[t->selected];
	row = ui_transcript_msg_row(t, t->selected);
	total = ui_transcript_rows(t);
	top = ui_transcript_top(t, height);
	/* rows of the message without its blank separator: [row, last] */
	if (row < top) {
		top = row;
	} else {
		long last = row + msg_rows(m) - 2;
		if (last >= top + height) {
			top = last - height + 1;
			if (top > row)
				top = row; /* taller than the view: show its start */
		}
	}
	t->scroll = total - height - top;
	ui_transcript_clamp(t, height);
}
