/* ui/text.c — width, graphemes and wrapping on utf8proc.
 *
 * Owns the width policy stated in text_impl.h; nothing else in tern calls
 * utf8proc for display questions.  All functions work on byte offsets into
 * caller-owned UTF-8 (possibly invalid: an invalid byte is a grapheme of its
 * own, one column wide, drawn as U+FFFD, so no input can stall a loop).
 */
#include "config.h"

#include "ui/text_impl.h"

#include <string.h>
#include <utf8proc.h>

#include "common/utf8.h"
#include "common/xalloc.h"

static int is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

static int cp_width(uint32_t cp)
{
	int w;

	if (cp == '\t')
		return UI_TEXT_TAB_WIDTH;
	if (is_control(cp))
		return 1;
	/* private use: one column, like tmux (powerline glyphs) */
	if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000)
		return 1;
	if (cp >= 0x1f1e6 && cp <= 0x1f1ff)
		return 2; /* regional indicators pair up into a flag */
	w = utf8proc_charwidth((utf8proc_int32_t)cp);
	return w < 0 ? 1 : w;
}

size_t ui_text_next(const char *s, size_t n, size_t pos, int *width)
{
	uint32_t first, prev, cp;
	utf8proc_int32_t state = 0;
	int len, w, emoji = 0;
	size_t p;

	len = utf8_decode(s + pos, n - pos, &first);
	if (len < 0) {
		if (width)
			*width = 1;
		return pos + 1;
	}
	if (first == '\n' || first == '\r' || first == '\t' || is_control(first)) {
		/* controls never join a cluster for our purposes; "\r\n" is
		 * normalised by the callers that accept input */
		if (width)
			*width = first == '\n' ? 0 : cp_width(first);
		return pos + (size_t)len;
	}
	w = cp_width(first);
	prev = first;
	p = pos + (size_t)len;
	while (p < n) {
		len = utf8_decode(s + p, n - p, &cp);
		if (len < 0 || cp == '\n' || is_control(cp))
			break;
		if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)cp,
						     &state))
			break;
		if (cp == 0xfe0f)
			emoji = 1;
		prev = cp;
		p += (size_t)len;
	}
	if (emoji && w == 1)
		w = 2;
	if (width)
		*width = w;
	return p;
}

size_t ui_text_prev(const char *s, size_t n, size_t pos)
{
	size_t start = pos, p, last;

	if (pos == 0)
		return 0;
	/* '\n' is always a boundary: start scanning after the previous one */
	while (start > 0 && s[start - 1] != '\n')
		start--;
	if (start == pos) /* pos is just after a '\n' */
		return pos - 1;
	last = start;
	for (p = start; p < pos;) {
		last = p;
		p = ui_text_next(s, n, p, NULL);
	}
	return last;
}

int ui_text_width(const char *s, size_t n)
{
	int total = 0, w;

	for (size_t p = 0; p < n;) {
		p = ui_text_next(s, n, p, &w);
		total += w;
	}
	return total;
}

size_t ui_text_display(const char *s, size_t a, size_t b, char *out, size_t cap)
{
	uint32_t cp;
	int len;
	size_t k = 0;

	if (cap == 0)
		return 0;
	len = utf8_decode(s + a, b - a, &cp);
	if (len > 0 && cp == '\t') {
		for (; k < UI_TEXT_TAB_WIDTH && k + 1 < cap; k++)
			out[k] = ' ';
	} else if (len < 0 || is_control(cp)) {
		if (cap > 3) {
			memcpy(out, "\xef\xbf\xbd", 3);
			k = 3;
		}
	} else {
		int w;
		ui_text_next(s, b, a, &w);
		if (w > 0) {
			k = b - a < cap - 1 ? b - a : cap - 1;
			memcpy(out, s + a, k);
		}
	}
	out[k] = '\0';
	return k;
}

int ui_text_is_space(const char *s, size_t a, size_t b)
{
	return b == a + 1 && (s[a] == ' ' || s[a] == '\t');
}

void ui_spans_fini(struct ui_spans *sp)
{
	free(sp->v);
	sp->v = NULL;
	sp->n = sp->cap = 0;
}

static void push(struct ui_spans *out, size_t a, size_t b, int w)
{
	if (out->n == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 16;
		out->v = xrealloc(out->v, out->cap * sizeof *out->v);
	}
	out->v[out->n].start = a;
	out->v[out->n].end = b;
	out->v[out->n].width = w;
	out->n++;
}

struct gr {
	size_t a, b;
	int w, space;
};

/* Greedy wrap of one paragraph (no '\n' inside) given its graphemes. */
static void wrap_para(const char *s, const struct gr *g, size_t ng, size_t para_start, int width,
		      int word, struct ui_spans *out)
{
	size_t i = 0;

	if (ng == 0) {
		push(out, para_start, para_start, 0);
		return;
	}
	while (i < ng) {
		size_t line = i, brk = (size_t)-1; /* brk: first grapheme after a space run */
		int cur = 0;

		while (i < ng) {
			if (cur + g[i].w > width && i > line)
				break;
			if (word && g[i].space && i > line && !g[i - 1].space)
				brk = i; /* candidate: the line could end before here */
			cur += g[i].w;
			i++;
			if (cur > width) /* single over-wide grapheme alone */
				break;
		}
		if (i < ng && word) {
			if (g[i].space) {
				/* overflowing on a space: end here, trim */
				brk = i;
			}
			if (brk != (size_t)-1) {
				size_t end = brk, next = brk, e;
				int w = 0;
				while (next < ng && g[next].space)
					next++;
				/* trailing spaces before brk are trimmed too */
				e = end;
				while (e > line && g[e - 1].space)
					e--;
				for (size_t k = line; k < e; k++)
					w += g[k].w;
				push(out, g[line].a, e > line ? g[e - 1].b : g[line].a, w);
				i = next;
				continue;
			}
		}
		push(out, g[line].a, g[i - 1].b, cur);
		if (word)
			while (i < ng && g[i].space && i > line)
				i++; /* drop spaces at a forced break */
	}
	(void)s;
}

void ui_text_wrap(const char *s, size_t n, int width, int word, struct ui_spans *out)
{
	struct gr *g = NULL;
	size_t ng = 0, cap = 0, p = 0, para = 0;

	if (width < 1)
		width = 1;
	for (;;) {
		if (p >= n || s[p] == '\n') {
			size_t before = out->n;
			wrap_para(s, g, ng, para, width, word, out);
			/* a paragraph that was only spaces collapses to an
			 * empty row at its start */
			if (out->n == before)
				push(out, para, para, 0);
			ng = 0;
			if (p >= n)
				break;
			p++;
			para = p;
			continue;
		}
		if (ng == cap) {
			cap = cap ? cap * 2 : 64;
			g = xrealloc(g, cap * sizeof *g);
		}
		g[ng].a = p;
		p = ui_text_next(s, n, p, &g[ng].w);
		g[ng].b = p;
		g[ng].space = ui_text_is_space(s, g[ng].a, p);
		ng++;
	}
	free(g);
}
