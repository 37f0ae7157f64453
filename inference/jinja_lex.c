/* inference/jinja_lex.c — template source -> token array.
 *
 * Mirrors jinja2.lexer with the options transformers uses (trim_blocks,
 * lstrip_blocks, default delimiters):
 *   - the source arrives with newlines normalised to "\n" and one trailing
 *     newline removed (keep_trailing_newline=False; see jinja_compile);
 *   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`,
 *     `-#}` all whitespace after it;
 *   - lstrip_blocks: for `{%` and `{#` (not `{{`, not `{%+`), the spaces
 *     and tabs between the start of the line and the tag are removed, where
 *     "start of the line" also holds when the previous tag ended with a
 *     newline (Jinja's line_starting flag);
 *   - trim_blocks: `%}` and `#}` eat one directly following "\n" (`+%}`
 *     keeps it);
 *   - `{% raw %}...{% endraw %}` yields its body as data.
 * Invariant: the token array ends with exactly one JT_EOF; NAME/STRING/DATA
 * token text lives in the compile arena.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/jinja_impl.h"
#include "inference/llm.h"

void jinja_line_col(const char *src, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	for (size_t i = 0; i < off && src[i]; i++) {
		if (src[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)src[i] & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

void jinja_syntax_error(struct jcompile *cm, size_t off, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	int line, col;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jinja_line_col(cm->src, off, &line, &col);
	cm->err = diag_fail(cm->d, LLM_E_TEMPLATE, "%s:%d:%d: %s", cm->name,
			    line, col, msg);
	longjmp(cm->jb, 1);
}

static struct jtok *push(struct jcompile *cm, enum jtok_type type, size_t off)
{
	if (cm->n_toks == cm->cap_toks) {
		size_t ncap = cm->cap_toks ? cm->cap_toks * 2 : 256;
		struct jtok *nt = jarena_alloc(cm->arena, ncap * sizeof *nt);
		if (!nt) {
			cm->err = diag_fail(cm->d, LLM_E_NOMEM,
					    "%s: out of memory", cm->name);
			longjmp(cm->jb, 1);
		}
		if (cm->n_toks)
			memcpy(nt, cm->toks, cm->n_toks * sizeof *nt);
		cm->toks = nt;
		cm->cap_toks = ncap;
	}
	struct jtok *t = &cm->toks[cm->n_toks++];
	memset(t, 0, sizeof *t);
	t->type = type;
	t->off = off;
	return t;
}

static char *dup_text(struct jcompile *cm, const char *s, size_t n)
{
	char *p = jarena_alloc(cm->arena, n + 1);
	if (!p) {
		cm->err = diag_fail(cm->d, LLM_E_NOMEM, "%s: out of memory",
				    cm->name);
		longjmp(cm->jb, 1);
	}
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* Python's str.isspace for the ASCII range; templates keep Unicode spaces
 * next to tags rarely enough that ASCII is what matters here. */
static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v' || c == '\x1c' || c == '\x1d' || c == '\x1e' ||
	       c == '\x1f';
}

/* Emit DATA src[a..b) after applying the opener's whitespace control. */
static void emit_data(struct jcompile *cm, size_t a, size_t b, char sign,
		      bool lstrip_ok, bool line_starting)
{
	const char *s = cm->src;
	if (sign == '-') {
		while (b > a && is_ws(s[b - 1]))
			b--;
	} else if (sign != '+' && lstrip_ok) {
		size_t l = b;
		while (l > a && s[l - 1] != '\n')
			l--;
		bool at_nl = l > a; /* found a newline inside the text */
		if ((at_nl || line_starting) && l < b) {
			size_t k = l;
			while (k < b && is_ws(s[k]))
				k++;
			if (k == b)
				b = l;
		}
	}
	if (b > a) {
		struct jtok *t = push(cm, JT_DATA, a);
		t->s = s + a; /* source outlives tokens (owned by template) */
		t->len = b - a;
	}
}

/* Find the end of a tag body at p for block ("%}") or comment ("#}"): the
 * regex is `\+X|\-X\s*|X\n?`.  Returns the offset after the end marker and
 * stores where it starts; SIZE_MAX when absent. */
static size_t match_end(const char *s, size_t len, size_t p, char ch,
			bool trim_nl, size_t *start)
{
	if (p + 3 <= len && (s[p] == '+' || s[p] == '-') && s[p + 1] == ch &&
	    s[p + 2] == '}') {
		*start = p;
		size_t q = p + 3;
		if (s[p] == '-')
			while (q < len && is_ws(s[q]))
				q++;
		return q;
	}
	if (p + 2 <= len && s[p] == ch && s[p + 1] == '}') {
		*start = p;
		size_t q = p + 2;
		if (trim_nl && q < len && s[q] == '\n')
			q++;
		return q;
	}
	return (size_t)-1;
}

static const struct {
	const char *s;
	int op;
} ops[] = {
	{"//", JO_FLOORDIV}, {"**", JO_POW}, {"==", JO_EQ}, {"!=", JO_NE},
	{">=", JO_GE},       {"<=", JO_LE},  {"+", JO_ADD}, {"-", JO_SUB},
	{"/", JO_DIV},       {"*", JO_MUL},  {"%", JO_MOD}, {"~", JO_TILDE},
	{"[", JO_LBRACKET},  {"]", JO_RBRACKET}, {"(", JO_LPAREN},
	{")", JO_RPAREN},    {"{", JO_LBRACE}, {"}", JO_RBRACE},
	{">", JO_GT},        {"<", JO_LT},   {"=", JO_ASSIGN}, {".", JO_DOT},
	{":", JO_COLON},     {"|", JO_PIPE}, {",", JO_COMMA},
	{";", JO_SEMICOLON},
};

static void put_utf8(char **w, uint32_t cp)
{
	char *o = *w;
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	*w = o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Python "unicode-escape" decoding of a string literal body. */
static void lex_string(struct jcompile *cm, size_t start, size_t a, size_t b)
{
	const char *s = cm->src;
	char *buf = jarena_alloc(cm->arena, (b - a) + 1);
	char *w = buf;
	if (!buf) {
		cm->err = diag_fail(cm->d, LLM_E_NOMEM, "out of memory");
		longjmp(cm->jb, 1);
	}
	for (size_t i = a; i < b; i++) {
		if (s[i] != '\\' || i + 1 >= b) {
			*w++ = s[i];
			continue;
		}
		char c = s[++i];
		int nd = 0;
		switch (c) {
		case '\n': break;
		case '\\': *w++ = '\\'; break;
		case '\'': *w++ = '\''; break;
		case '"': *w++ = '"'; break;
		case 'a': *w++ = '\a'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'v': *w++ = '\v'; break;
		case 'x': nd = 2; break;
		case 'u': nd = 4; break;
		case 'U': nd = 8; break;
		default:
			if (c >= '0' && c <= '7') {
				uint32_t v = 0;
				int k = 0;
				while (k < 3 && i < b && s[i] >= '0' && s[i] <= '7') {
					v = v * 8 + (uint32_t)(s[i] - '0');
					i++;
					k++;
				}
				i--;
				put_utf8(&w, v);
			} else {
				/* unknown escapes stay as written */
				*w++ = '\\';
				*w++ = c;
			}
		}
		if (nd) {
			uint32_t v = 0;
			for (int k = 0; k < nd; k++) {
				int h = i + 1 + (size_t)k < b ? hexval(s[i + 1 + k]) : -1;
				if (h < 0)
					jinja_syntax_error(cm, start,
							   "truncated \\%cXX escape", c);
				v = v * 16 + (uint32_t)h;
			}
			if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000))
				jinja_syntax_error(cm, start, "illegal Unicode character");
			i += (size_t)nd;
			put_utf8(&w, v);
		}
	}
	*w = 0;
	struct jtok *t = push(cm, JT_STRING, start);
	t->s = buf;
	t->len = (size_t)(w - buf);
}

/* Inside {% %} or {{ }}: tokens until the end marker.  Returns the offset
 * after the end marker; sets *line_starting. */
static size_t lex_tag(struct jcompile *cm, size_t p, bool is_block,
		      size_t open_off, bool *line_starting)
{
	const char *s = cm->src;
	size_t len = cm->len;
	int depth = 0; /* open brackets: end markers don't count inside */

	for (;;) {
		while (p < len && is_ws(s[p]))
			p++;
		if (p >= len)
			jinja_syntax_error(cm, open_off, "unexpected end of template, "
					   "expected end of %s",
					   is_block ? "block ('%}')" : "print statement ('}}')");
		if (depth == 0) {
			size_t st, q;
			if (is_block) {
				q = match_end(s, len, p, '%', true, &st);
			} else {
				q = (size_t)-1;
				if (p + 3 <= len && s[p] == '-' && s[p + 1] == '}' &&
				    s[p + 2] == '}') {
					st = p;
					q = p + 3;
					while (q < len && is_ws(s[q]))
						q++;
				} else if (p + 2 <= len && s[p] == '}' && s[p + 1] == '}') {
					st = p;
					q = p + 2;
				}
			}
			if (q != (size_t)-1) {
				push(cm, is_block ? JT_BLOCK_END : JT_VAR_END, st);
				*line_starting = q > 0 && s[q - 1] == '\n';
				return q;
			}
		}
		unsigned char c = (unsigned char)s[p];
		size_t start = p;
		if (isdigit(c)) {
			/* float: digits ('.' digits)? (e [+-] digits)? with at
			 * least one of the two parts; '_' separators allowed.
			 * Jinja's float rule has (?<!\.), so `x.0.1` is two
			 * integer subscripts, not a float. */
			bool after_dot = p > 0 && s[p - 1] == '.';
			size_t q = p;
			while (q < len && (isdigit((unsigned char)s[q]) || s[q] == '_'))
				q++;
			size_t intend = q;
			bool is_float = false;
			if (!after_dot && q + 1 < len && s[q] == '.' && isdigit((unsigned char)s[q + 1])) {
				q++;
				while (q < len && (isdigit((unsigned char)s[q]) || s[q] == '_'))
					q++;
				is_float = true;
			}
			if (!after_dot && q < len && (s[q] == 'e' || s[q] == 'E')) {
				size_t e = q + 1;
				if (e < len && (s[e] == '+' || s[e] == '-'))
					e++;
				if (e < len && isdigit((unsigned char)s[e])) {
					while (e < len && (isdigit((unsigned char)s[e]) || s[e] == '_'))
						e++;
					q = e;
					is_float = true;
				}
			}
			char num[64];
			size_t k = 0;
			for (size_t i = start; i < (is_float ? q : intend) && k < 63; i++)
				if (s[i] != '_')
					num[k++] = s[i];
			num[k] = 0;
			if (is_float) {
				struct jtok *t = push(cm, JT_FLOAT, start);
				t->f = strtod(num, NULL);
				p = q;
			} else {
				struct jtok *t = push(cm, JT_INT, start);
				char *endp;
				errno = 0;
				t->i = strtoll(num, &endp, 10);
				if (errno == ERANGE)
					jinja_syntax_error(cm, start, "integer literal too large");
				p = intend;
			}
			continue;
		}
		if (isalpha(c) || c == '_') {
			size_t q = p + 1;
			while (q < len && (isalnum((unsigned char)s[q]) || s[q] == '_'))
				q++;
			struct jtok *t = push(cm, JT_NAME, start);
			t->s = dup_text(cm, s + p, q - p);
			t->len = q - p;
			p = q;
			continue;
		}
		if (c == '\'' || c == '"') {
			size_t q = p + 1;
			while (q < len && s[q] != (char)c) {
				if (s[q] == '\\')
					q++;
				q++;
			}
			if (q >= len)
				jinja_syntax_error(cm, start, "unexpected char %c", c);
			lex_string(cm, start, p + 1, q);
			p = q + 1;
			continue;
		}
		bool found = false;
		for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
			size_t n = strlen(ops[i].s);
			if (p + n <= len && memcmp(s + p, ops[i].s, n) == 0) {
				struct jtok *t = push(cm, JT_OP, start);
				t->op = ops[i].op;
				if (t->op == JO_LBRACE || t->op == JO_LPAREN ||
				    t->op == JO_LBRACKET)
					depth++;
				else if (t->op == JO_RBRACE || t->op == JO_RPAREN ||
					 t->op == JO_RBRACKET) {
					if (depth == 0)
						jinja_syntax_error(cm, start, "unexpected '%s'",
								   ops[i].s);
					depth--;
				}
				p += n;
				found = true;
				break;
			}
		}
		if (!found)
			jinja_syntax_error(cm, start, "unexpected char '%c'", c);
	}
}

/* {% raw %} at p (just after "{%" and sign)?  Returns the offset after the
 * opener's end or 0. */
static size_t match_raw(const char *s, size_t len, size_t p)
{
	while (p < len && is_ws(s[p]))
		p++;
	if (p + 3 > len || memcmp(s + p, "raw", 3) != 0)
		return 0;
	p += 3;
	while (p < len && is_ws(s[p]))
		p++;
	if (p + 3 <= len && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') {
		p += 3;
		while (p < len && is_ws(s[p]))
			p++;
		return p;
	}
	if (p + 2 <= len && s[p] == '%' && s[p + 1] == '}')
		return p + 2;
	return 0;
}

void jinja_lex(struct jcompile *cm)
{
	const char *s = cm->src;
	size_t len = cm->len, p = 0;
	bool line_starting = true;

	while (p < len) {
		/* earliest tag opener */
		size_t q = p;
		while (q + 1 < len && !(s[q] == '{' &&
					(s[q + 1] == '%' || s[q + 1] == '{' || s[q + 1] == '#')))
			q++;
		if (q + 1 >= len) {
			emit_data(cm, p, len, 0, false, false);
			break;
		}
		char kind = s[q + 1];
		size_t r = q + 2;
		char sign = 0;
		if (r < len && (s[r] == '-' || s[r] == '+'))
			sign = s[r++];
		emit_data(cm, p, q, sign, kind != '{', line_starting);

		if (kind == '%') {
			size_t body = match_raw(s, len, r);
			if (body) {
				/* find {%[-+]? endraw %} */
				size_t k = body;
				for (;;) {
					while (k + 1 < len && !(s[k] == '{' && s[k + 1] == '%'))
						k++;
					if (k + 1 >= len)
						jinja_syntax_error(cm, q, "Missing end of raw directive");
					size_t e = k + 2;
					char esign = 0;
					if (e < len && (s[e] == '-' || s[e] == '+'))
						esign = s[e++];
					while (e < len && is_ws(s[e]))
						e++;
					if (e + 6 <= len && memcmp(s + e, "endraw", 6) == 0) {
						e += 6;
						while (e < len && is_ws(s[e]))
							e++;
						size_t st, after = match_end(s, len, e, '%', true, &st);
						if (after != (size_t)-1) {
							emit_data(cm, body, k, esign, true, false);
							line_starting = s[after - 1] == '\n';
							p = after;
							break;
						}
					}
					k += 2;
				}
				continue;
			}
			push(cm, JT_BLOCK_BEGIN, q);
			p = lex_tag(cm, r, true, q, &line_starting);
		} else if (kind == '{') {
			push(cm, JT_VAR_BEGIN, q);
			p = lex_tag(cm, r, false, q, &line_starting);
		} else {
			size_t k = r, st, after = (size_t)-1;
			for (; k < len; k++) {
				after = match_end(s, len, k, '#', true, &st);
				if (after != (size_t)-1)
					break;
			}
			if (after == (size_t)-1)
				jinja_syntax_error(cm, q, "Missing end of comment tag");
			line_starting = s[after - 1] == '\n';
			p = after;
		}
	}
	push(cm, JT_EOF, len);
}
