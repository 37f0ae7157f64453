/* inference/tokenizer_text.c — the text stages of the HF tokenizer pipeline:
 * patterns (PCRE2), normalizers (utf8proc), pre-tokenizers, decoders, and
 * UTF-8 validation / lossy repair.
 *
 * Each stage reproduces the behaviour of HF `tokenizers` (the Rust crate):
 * the split behaviours, Metaspace's prepend schemes, ByteFallback's
 * one-U+FFFD-per-byte rule, Strip's character counting and the final
 * String::from_utf8_lossy.  Text is always valid UTF-8 here (the encoder
 * repairs input first), so PCRE2 runs with PCRE2_NO_UTF_CHECK.
 *
 * Regex dialect: HF compiles patterns with Oniguruma, where `\s` is the
 * Unicode White_Space property.  PCRE2's UCP `\s` also matches U+180E, so
 * `\s`/`\S` are rewritten to explicit classes before compiling.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "inference/llm.h"
#include "inference/tokenizer_impl.h"

/* ---- UTF-8 ---------------------------------------------------------------- */

int tok_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	unsigned lo = 0x80, hi = 0xBF;
	int len, i;

	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		len = 2;
	else if (c < 0xF0) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c < 0xF5) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < (size_t)len)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* Length of the maximal subpart of an ill-formed sequence at s (>= 1). */
static size_t bad_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0], lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c < 0xC2 || c > 0xF4)
		return 1;
	len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < 2 || s[1] < lo || s[1] > hi)
		return 1;
	for (i = 2; i < len && i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			break;
	return i;
}

int tok_utf8_lossy(struct tok_buf *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	if (tok_buf_reserve(out, n))
		return LLM_E_NOMEM;
	while (i < n) {
		int l = u[i] < 0x80 ? 1 : tok_utf8_len(u + i, n - i);

		if (l > 0) {
			i += (size_t)l;
			continue;
		}
		if (tok_buf_put(out, s + run, i - run) || tok_buf_put(out, "\xEF\xBF\xBD", 3))
			return LLM_E_NOMEM;
		i += bad_len(u + i, n - i);
		run = i;
	}
	return tok_buf_put(out, s + run, n - run);
}

/* decode one code point of valid UTF-8 */
static uint32_t cp_at(const char *s, size_t n, size_t *len)
{
	utf8proc_int32_t cp = 0;
	utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);

	if (l <= 0) {
		*len = 1;
		return 0xFFFD;
	}
	*len = (size_t)l;
	return (uint32_t)cp;
}

static bool is_white_space(uint32_t c)
{
	return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

static bool is_numeric(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);

	return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

static bool is_punct(uint32_t c)
{
	utf8proc_category_t k;

	if (c < 0x80)
		return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
		       (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
	k = utf8proc_category((utf8proc_int32_t)c);
	return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* ---- patterns --------------------------------------------------------------- */

#define WS_CLASS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
	"\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

int tok_pattern_compile(struct tok_pattern *p, const char *str, size_t len,
			bool regex, struct diag *d)
{
	struct tok_buf b = { 0 };
	size_t i;
	int in_class = 0, err;
	PCRE2_SIZE off;

	memset(p, 0, sizeof *p);
	if (!regex) {
		p->str = malloc(len + 1);
		if (!p->str)
			return LLM_E_NOMEM;
		memcpy(p->str, str, len);
		p->str[len] = 0;
		p->len = len;
		return 0;
	}
	for (i = 0; i < len; i++) {
		char c = str[i];
		int rc = 0;

		if (c == '\\' && i + 1 < len) {
			char e = str[i + 1];

			if (e == 's')
				rc = tok_buf_put(&b, in_class ? WS_CLASS : "[" WS_CLASS "]",
						 strlen(in_class ? WS_CLASS : "[" WS_CLASS "]"));
			else if (e == 'S' && !in_class)
				rc = tok_buf_put(&b, "[^" WS_CLASS "]", strlen("[^" WS_CLASS "]"));
			else
				rc = tok_buf_put(&b, str + i, 2);
			i++;
		} else {
			if (c == '[' && !in_class) {
				in_class = 1;
				rc = tok_buf_put(&b, &c, 1);
				/* a ']' or '^]' right after '[' is literal */
				if (i + 1 < len && str[i + 1] == '^') {
					rc |= tok_buf_put(&b, "^", 1);
					i++;
				}
				if (i + 1 < len && str[i + 1] == ']') {
					rc |= tok_buf_put(&b, "]", 1);
					i++;
				}
				if (rc)
					break;
				continue;
			}
			if (c == '[' && in_class && i + 1 < len && str[i + 1] == ':') {
				const char *q = strstr(str + i + 2, ":]");

				if (q && (size_t)(q - str) < len) {
					rc = tok_buf_put(&b, str + i, (size_t)(q + 2 - (str + i)));
					i = (size_t)(q + 1 - str);
					if (rc)
						break;
					continue;
				}
			}
			if (c == ']' && in_class)
				in_class = 0;
			rc = tok_buf_put(&b, &c, 1);
		}
		if (rc) {
			tok_buf_fini(&b);
			return LLM_E_NOMEM;
		}
	}
	if (tok_buf_put(&b, "", 0)) {
		tok_buf_fini(&b);
		return LLM_E_NOMEM;
	}
	p->re = pcre2_compile((PCRE2_SPTR)b.p, b.len, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
	if (!p->re) {
		PCRE2_UCHAR msg[160];

		pcre2_get_error_message(err, msg, sizeof msg);
		tok_buf_fini(&b);
		return diag_fail(d, LLM_E_UNSUPPORTED, "regex /%.*s/: %s at offset %zu",
				 (int)(len > 200 ? 200 : len), str, (const char *)msg, (size_t)off);
	}
	tok_buf_fini(&b);
	(void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
	return 0;
}

void tok_pattern_fini(struct tok_pattern *p)
{
	if (p->re)
		pcre2_code_free(p->re);
	free(p->str);
	memset(p, 0, sizeof *p);
}

/* Segments covering s[0..n): (start, end, is_match).  HF's find_matches. */
struct seg {
	size_t a, b;
	bool m;
};
struct segs {
	struct seg *v;
	size_t n, cap;
};

static int seg_push(struct segs *s, size_t a, size_t b, bool m)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct seg *v = realloc(s->v, cap * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct seg){ a, b, m };
	return 0;
}

static int ensure_md(pcre2_match_data **md)
{
	if (!*md)
		*md = pcre2_match_data_create(1, NULL);
	return *md ? 0 : LLM_E_NOMEM;
}

static int find_pattern(const struct tok_pattern *p, const char *s, size_t n,
			struct segs *out, pcre2_match_data **md, struct diag *d)
{
	size_t prev = 0, pos = 0;

	out->n = 0;
	if (n == 0)
		return seg_push(out, 0, 0, false);
	if (!p->re) {
		if (p->len == 0)
			return seg_push(out, 0, n, false);
		while (pos + p->len <= n) {
			const char *q = memmem(s + pos, n - pos, p->str, p->len);
			size_t a;

			if (!q)
				break;
			a = (size_t)(q - s);
			if ((a > prev && seg_push(out, prev, a, false)) || seg_push(out, a, a + p->len, true))
				return LLM_E_NOMEM;
			prev = pos = a + p->len;
		}
	} else {
		if (ensure_md(md))
			return LLM_E_NOMEM;
		while (pos <= n) {
			int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, *md, NULL);
			PCRE2_SIZE *ov;
			size_t a, b;

			if (rc == PCRE2_ERROR_NOMATCH)
				break;
			if (rc < 0)
				return diag_fail(d, LLM_E_LIMIT, "regex match failed (%d)", rc);
			ov = pcre2_get_ovector_pointer(*md);
			a = ov[0];
			b = ov[1];
			if (b == a) { /* empty match: step one character */
				size_t l;

				if (a >= n)
					break;
				(void)cp_at(s + a, n - a, &l);
				pos = a + l;
				continue;
			}
			if ((a > prev && seg_push(out, prev, a, false)) || seg_push(out, a, b, true))
				return LLM_E_NOMEM;
			prev = pos = b;
		}
	}
	if (prev < n && seg_push(out, prev, n, false))
		return LLM_E_NOMEM;
	return 0;
}

/* one segment per matching character (HF's char-predicate patterns) */
static int find_chars(bool (*pred)(uint32_t), const char *s, size_t n, struct segs *out)
{
	size_t i = 0, last = 0;

	out->n = 0;
	if (n == 0)
		return seg_push(out, 0, 0, false);
	while (i < n) {
		size_t l;
		uint32_t c = cp_at(s + i, n - i, &l);

		if (pred(c)) {
			if ((last < i && seg_push(out, last, i, false)) || seg_push(out, i, i + l, true))
				return LLM_E_NOMEM;
			last = i + l;
		}
		i += l;
	}
	if (last < n && seg_push(out, last, n, false))
		return LLM_E_NOMEM;
	return 0;
}

/* Apply a split behaviour in place: the result's `m` means "remove". */
static void apply_behavior(struct segs *s, enum tok_split_behavior bh, bool invert)
{
	size_t i, k = 0;
	bool prev = false;

	if (invert)
		for (i = 0; i < s->n; i++)
			s->v[i].m = !s->v[i].m;
	switch (bh) {
	case TOK_SPLIT_REMOVED:
		return; /* matches are removed */
	case TOK_SPLIT_ISOLATED:
		for (i = 0; i < s->n; i++)
			s->v[i].m = false;
		return;
	case TOK_SPLIT_MERGED_PREV:
		for (i = 0; i < s->n; i++) {
			bool m = s->v[i].m;

			if (m && !prev && k > 0)
				s->v[k - 1].b = s->v[i].b;
			else
				s->v[k++] = (struct seg){ s->v[i].a, s->v[i].b, false };
			prev = m;
		}
		s->n = k;
		return;
	case TOK_SPLIT_MERGED_NEXT: {
		/* walk backwards, collecting into the tail of the array */
		size_t w = s->n;

		for (i = s->n; i-- > 0;) {
			bool m = s->v[i].m;

			if (m && !prev && w < s->n)
				s->v[w].a = s->v[i].a;
			else
				s->v[--w] = (struct seg){ s->v[i].a, s->v[i].b, false };
			prev = m;
		}
		memmove(s->v, s->v + w, (s->n - w) * sizeof *s->v);
		s->n -= w;
		return;
	}
	case TOK_SPLIT_CONTIGUOUS:
		for (i = 0; i < s->n; i++) {
			bool m = s->v[i].m;

			if (m == prev && k > 0)
				s->v[k - 1].b = s->v[i].b;
			else
				s->v[k++] = (struct seg){ s->v[i].a, s->v[i].b, false };
			prev = m;
		}
		s->n = k;
		return;
	}
}

/* ---- normalizers --------------------------------------------------------- */

static int norm_step(const struct tok_norm *nm, const char *s, size_t n, struct tok_buf *out,
		     pcre2_match_data **md, struct diag *d)
{
	size_t i;

	out->len = 0;
	switch (nm->kind) {
	case TOK_NORM_NFC: case TOK_NORM_NFD: case TOK_NORM_NFKC: case TOK_NORM_NFKD: {
		utf8proc_option_t o = UTF8PROC_STABLE;
		utf8proc_uint8_t *r = NULL;
		utf8proc_ssize_t rl;

		if (nm->kind == TOK_NORM_NFC || nm->kind == TOK_NORM_NFKC)
			o |= UTF8PROC_COMPOSE;
		else
			o |= UTF8PROC_DECOMPOSE;
		if (nm->kind == TOK_NORM_NFKC || nm->kind == TOK_NORM_NFKD)
			o |= UTF8PROC_COMPAT;
		if (n == 0)
			return tok_buf_put(out, "", 0);
		rl = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r, o);
		if (rl < 0)
			return rl == UTF8PROC_ERROR_NOMEM ? LLM_E_NOMEM
				: diag_fail(d, LLM_E_INVALID, "normalizer: %s", utf8proc_errmsg(rl));
		i = (size_t)tok_buf_put(out, r, (size_t)rl);
		free(r);
		return (int)i;
	}
	case TOK_NORM_LOWERCASE:
	case TOK_NORM_STRIP_ACCENTS:
		for (i = 0; i < n;) {
			size_t l;
			uint32_t c = cp_at(s + i, n - i, &l);
			char e[4];
			int el;

			if (nm->kind == TOK_NORM_STRIP_ACCENTS) {
				if (utf8proc_category((utf8proc_int32_t)c) != UTF8PROC_CATEGORY_MN &&
				    tok_buf_put(out, s + i, l))
					return LLM_E_NOMEM;
			} else {
				el = (int)utf8proc_encode_char(utf8proc_tolower((utf8proc_int32_t)c),
							       (utf8proc_uint8_t *)e);
				if (tok_buf_put(out, e, (size_t)el))
					return LLM_E_NOMEM;
			}
			i += l;
		}
		return tok_buf_put(out, "", 0);
	case TOK_NORM_STRIP: {
		size_t a = 0, b = n, l;

		while (nm->left && a < b && is_white_space(cp_at(s + a, b - a, &l)))
			a += l;
		while (nm->right && b > a) {
			size_t k = b - 1;

			while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80)
				k--;
			if (!is_white_space(cp_at(s + k, b - k, &l)))
				break;
			b = k;
		}
		return tok_buf_put(out, s + a, b - a);
	}
	case TOK_NORM_PREPEND:
		if (n && tok_buf_put(out, nm->content, nm->content_len))
			return LLM_E_NOMEM;
		return tok_buf_put(out, s, n);
	case TOK_NORM_REPLACE: {
		struct segs sg = { 0 };
		int rc = find_pattern(&nm->pat, s, n, &sg, md, d);

		for (i = 0; !rc && i < sg.n; i++) {
			if (sg.v[i].m)
				rc = tok_buf_put(out, nm->content, nm->content_len);
			else
				rc = tok_buf_put(out, s + sg.v[i].a, sg.v[i].b - sg.v[i].a);
		}
		if (!rc)
			rc = tok_buf_put(out, "", 0);
		free(sg.v);
		return rc;
	}
	}
	return 0;
}

int tok_normalize(const struct llm_tokenizer *t, const char *s, size_t n,
		  struct tok_buf *out, struct tok_buf *tmp, pcre2_match_data **md,
		  struct diag *d)
{
	size_t i;
	int rc;

	out->len = 0;
	if ((rc = tok_buf_put(out, s, n)))
		return rc;
	for (i = 0; i < t->n_norm; i++) {
		struct tok_buf sw;

		if ((rc = norm_step(&t->norm[i], out->p, out->len, tmp, md, d)))
			return rc;
		sw = *out;
		*out = *tmp;
		*tmp = sw;
	}
	return 0;
}

/* ---- pre-tokenizers ------------------------------------------------------- */

int tok_pieces_push(struct tok_pieces *a, size_t off, size_t len, bool orig0)
{
	if (len == 0)
		return 0; /* HF drops empty splits */
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct tok_piece *v = realloc(a->v, cap * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = (struct tok_piece){ off, len, orig0 };
	return 0;
}

/* push the kept segments of piece p */
static int push_segs(struct tok_pieces *out, const struct tok_piece *p, const struct segs *sg)
{
	size_t i;

	for (i = 0; i < sg->n; i++)
		if (!sg->v[i].m && tok_pieces_push(out, p->off + sg->v[i].a, sg->v[i].b - sg->v[i].a,
						   p->orig0 && sg->v[i].a == 0))
			return LLM_E_NOMEM;
	return 0;
}

static bool is_repl_ms(uint32_t c)
{
	return c == 0x2581;
}

static int pre_step(const struct llm_tokenizer *t, const struct tok_pre *pr, struct tok_scratch *sc,
		    struct tok_piece p, struct tok_pieces *out, struct segs *sg, struct diag *d)
{
	int rc;

	switch (pr->kind) {
	case TOK_PRE_SPLIT:
	case TOK_PRE_WHITESPACE:
		if ((rc = find_pattern(&pr->pat, sc->text.p + p.off, p.len, sg, &sc->md, d)))
			return rc;
		if (pr->kind == TOK_PRE_SPLIT)
			apply_behavior(sg, pr->behavior, pr->invert);
		else
			apply_behavior(sg, TOK_SPLIT_REMOVED, true);
		return push_segs(out, &p, sg);
	case TOK_PRE_BYTELEVEL:
		if (pr->add_prefix_space && (p.len == 0 || sc->text.p[p.off] != ' ')) {
			size_t off = sc->text.len;

			if (tok_buf_put(&sc->text, " ", 1) || tok_buf_reserve(&sc->text, p.len))
				return LLM_E_NOMEM;
			memcpy(sc->text.p + sc->text.len, sc->text.p + p.off, p.len);
			sc->text.len += p.len;
			p.off = off;
			p.len += 1;
		}
		if (!pr->pat.re)
			return tok_pieces_push(out, p.off, p.len, p.orig0);
		if ((rc = find_pattern(&pr->pat, sc->text.p + p.off, p.len, sg, &sc->md, d)))
			return rc;
		apply_behavior(sg, TOK_SPLIT_ISOLATED, false);
		return push_segs(out, &p, sg);
	case TOK_PRE_METASPACE: {
		size_t off = sc->text.len, i;
		bool starts;

		/* replace ' ' by the replacement, prepend per the scheme */
		if (tok_buf_reserve(&sc->text, p.len * pr->repl_len + pr->repl_len))
			return LLM_E_NOMEM;
		starts = p.len >= pr->repl_len &&
			 memcmp(sc->text.p + p.off, pr->repl, pr->repl_len) == 0;
		if (!starts && p.len && sc->text.p[p.off] == ' ')
			starts = true; /* becomes the replacement below */
		if (!starts && (pr->prepend == TOK_PREPEND_ALWAYS ||
				(pr->prepend == TOK_PREPEND_FIRST && p.orig0)))
			tok_buf_put(&sc->text, pr->repl, pr->repl_len);
		for (i = 0; i < p.len; i++) {
			char c = sc->text.p[p.off + i];

			if (c == ' ')
				tok_buf_put(&sc->text, pr->repl, pr->repl_len);
			else
				tok_buf_put(&sc->text, &c, 1);
		}
		p.off = off;
		p.len = sc->text.len - off;
		if (!pr->split)
			return tok_pieces_push(out, p.off, p.len, p.orig0);
		if (pr->repl_len == 3 && memcmp(pr->repl, "\xe2\x96\x81", 3) == 0)
			rc = find_chars(is_repl_ms, sc->text.p + p.off, p.len, sg);
		else {
			struct tok_pattern lit = { (char *)(uintptr_t)pr->repl, pr->repl_len, NULL };

			rc = find_pattern(&lit, sc->text.p + p.off, p.len, sg, &sc->md, d);
		}
		if (rc)
			return rc;
		apply_behavior(sg, TOK_SPLIT_MERGED_NEXT, false);
		return push_segs(out, &p, sg);
	}
	case TOK_PRE_DIGITS:
		if ((rc = find_chars(is_numeric, sc->text.p + p.off, p.len, sg)))
			return rc;
		apply_behavior(sg, pr->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, false);
		return push_segs(out, &p, sg);
	case TOK_PRE_WHITESPACE_SPLIT:
		if ((rc = find_chars(is_white_space, sc->text.p + p.off, p.len, sg)))
			return rc;
		apply_behavior(sg, TOK_SPLIT_REMOVED, false);
		return push_segs(out, &p, sg);
	case TOK_PRE_PUNCTUATION:
		if ((rc = find_chars(is_punct, sc->text.p + p.off, p.len, sg)))
			return rc;
		apply_behavior(sg, pr->behavior, false);
		return push_segs(out, &p, sg);
	}
	(void)t;
	return 0;
}

int tok_pretokenize(const struct llm_tokenizer *t, struct tok_scratch *sc,
		    struct tok_piece in, struct tok_pieces *out, struct diag *d)
{
	struct segs sg = { 0 };
	size_t s, i;
	int rc = 0;

	if (t->n_pre == 0)
		return tok_pieces_push(out, in.off, in.len, in.orig0);
	sc->a.n = 0;
	if ((rc = tok_pieces_push(&sc->a, in.off, in.len, in.orig0)))
		return rc;
	for (s = 0; s < t->n_pre && !rc; s++) {
		struct tok_pieces *dst = s + 1 == t->n_pre ? out : &sc->b;

		if (dst == &sc->b)
			sc->b.n = 0;
		for (i = 0; i < sc->a.n && !rc; i++)
			rc = pre_step(t, &t->pre[s], sc, sc->a.v[i], dst, &sg, d);
		if (dst == &sc->b) {
			struct tok_pieces sw = sc->a;

			sc->a = sc->b;
			sc->b = sw;
		}
	}
	free(sg.v);
	return rc;
}

/* ---- decoders ---------------------------------------------------------------- */

/* a list of token strings in one buffer */
struct tlist {
	struct tok_buf text;
	size_t *off, *len;
	size_t n, cap;
};

static int tl_push(struct tlist *l, const char *s, size_t n)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		size_t *o = realloc(l->off, cap * sizeof *o), *q;

		if (!o)
			return LLM_E_NOMEM;
		l->off = o;
		q = realloc(l->len, cap * sizeof *q);
		if (!q)
			return LLM_E_NOMEM;
		l->len = q;
		l->cap = cap;
	}
	l->off[l->n] = l->text.len;
	l->len[l->n] = n;
	l->n++;
	return tok_buf_put(&l->text, s, n);
}

/* append to the last token */
static int tl_append(struct tlist *l, const char *s, size_t n)
{
	l->len[l->n - 1] += n;
	return tok_buf_put(&l->text, s, n);
}

static void tl_fini(struct tlist *l)
{
	tok_buf_fini(&l->text);
	free(l->off);
	free(l->len);
}

static size_t n_chars(const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

static int dec_step(const struct llm_tokenizer *t, const struct tok_dec *dc,
		    const struct tlist *in, struct tlist *out)
{
	size_t i, k;
	int rc = 0;

	out->n = 0;
	out->text.len = 0;
	switch (dc->kind) {
	case TOK_DEC_FUSE:
		if ((rc = tl_push(out, "", 0)))
			return rc;
		return tok_buf_put(&out->text, in->text.p, in->text.len) ? LLM_E_NOMEM
			: (out->len[0] = in->text.len, 0);
	case TOK_DEC_REPLACE:
	case TOK_DEC_METASPACE:
		for (i = 0; i < in->n && !rc; i++) {
			const char *s = in->text.p + in->off[i];
			size_t n = in->len[i], a = 0;
			const char *from = dc->kind == TOK_DEC_REPLACE ? dc->from : dc->repl;
			size_t fl = dc->kind == TOK_DEC_REPLACE ? dc->from_len : dc->repl_len;
			/* Metaspace drops every replacement char of token 0 when
			 * a prefix was prepended (HF decode_chain), else maps it
			 * to a space */
			bool drop = dc->kind == TOK_DEC_METASPACE && i == 0 && dc->prepend;
			const char *to = dc->kind == TOK_DEC_REPLACE ? dc->to : " ";
			size_t tl = dc->kind == TOK_DEC_REPLACE ? dc->to_len : drop ? 0 : 1;

			if ((rc = tl_push(out, "", 0)))
				return rc;
			while (a < n && !rc) {
				const char *q = memmem(s + a, n - a, from, fl);

				if (!q) {
					rc = tl_append(out, s + a, n - a);
					break;
				}
				rc = tl_append(out, s + a, (size_t)(q - (s + a)));
				if (!rc)
					rc = tl_append(out, to, tl);
				a = (size_t)(q - s) + fl;
			}
		}
		return rc;
	case TOK_DEC_BYTEFALLBACK: {
		struct tok_buf bytes = { 0 };

		for (i = 0; i <= in->n && !rc; i++) {
			const char *s = i < in->n ? in->text.p + in->off[i] : NULL;
			size_t n = i < in->n ? in->len[i] : 0;
			int hi, lo;

			if (s && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
			    (hi = (s[3] >= '0' && s[3] <= '9') ? s[3] - '0' : (s[3] >= 'A' && s[3] <= 'F') ? s[3] - 'A' + 10 : (s[3] >= 'a' && s[3] <= 'f') ? s[3] - 'a' + 10 : -1) >= 0 &&
			    (lo = (s[4] >= '0' && s[4] <= '9') ? s[4] - '0' : (s[4] >= 'A' && s[4] <= 'F') ? s[4] - 'A' + 10 : (s[4] >= 'a' && s[4] <= 'f') ? s[4] - 'a' + 10 : -1) >= 0) {
				char b = (char)(hi << 4 | lo);

				rc = tok_buf_put(&bytes, &b, 1);
				continue;
			}
			if (bytes.len) {
				size_t j = 0;
				bool valid = true;

				while (j < bytes.len) {
					int l = tok_utf8_len((const unsigned char *)bytes.p + j, bytes.len - j);

					if (!l) {
						valid = false;
						break;
					}
					j += (size_t)l;
				}
				if (valid)
					rc = tl_push(out, bytes.p, bytes.len);
				else
					for (j = 0; j < bytes.len && !rc; j++)
						rc = tl_push(out, "\xEF\xBF\xBD", 3);
				bytes.len = 0;
			}
			if (s && !rc)
				rc = tl_push(out, s, n);
		}
		tok_buf_fini(&bytes);
		return rc;
	}
	case TOK_DEC_STRIP:
		for (i = 0; i < in->n && !rc; i++) {
			const char *s = in->text.p + in->off[i];
			size_t n = in->len[i], sc = 0, ec = 0, a = 0, b = n, keep, nc;

			/* leading */
			while ((int)sc < dc->start && n - a >= dc->strip_len &&
			       memcmp(s + a, dc->strip, dc->strip_len) == 0) {
				a += dc->strip_len;
				sc++;
			}
			/* trailing, counted on the original token */
			{
				size_t e = n;

				while ((int)ec < dc->stop && e >= dc->strip_len &&
				       memcmp(s + e - dc->strip_len, dc->strip, dc->strip_len) == 0) {
					e -= dc->strip_len;
					ec++;
				}
			}
			/* HF keeps token.len() (bytes) - start_cut - stop_cut chars */
			keep = n >= sc + ec ? n - sc - ec : 0;
			nc = n_chars(s + a, n - a);
			if (keep < nc) {
				size_t j = a, c = 0;

				while (j < n && c < keep) {
					j++;
					while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
						j++;
					c++;
				}
				b = j;
			}
			rc = tl_push(out, s + a, b - a);
		}
		return rc;
	case TOK_DEC_BYTELEVEL: {
		struct tok_buf raw = { 0 };

		for (i = 0; i < in->n && !rc; i++) {
			const unsigned char *s = (const unsigned char *)in->text.p + in->off[i];
			size_t n = in->len[i], start = raw.len;
			bool ok = true;

			if (tok_buf_reserve(&raw, n)) {
				rc = LLM_E_NOMEM;
				break;
			}
			for (k = 0; k < n;) {
				int l = tok_utf8_len(s + k, n - k), b;
				uint32_t cp;

				if (l == 1)
					cp = s[k];
				else if (l == 2)
					cp = (uint32_t)(s[k] & 0x1F) << 6 | (s[k + 1] & 0x3F);
				else
					cp = 0x110000;
				b = tok_cp_to_byte(cp);
				if (b < 0) {
					ok = false;
					break;
				}
				raw.p[raw.len++] = (char)b;
				k += (size_t)l;
			}
			if (!ok) {
				raw.len = start;
				rc = tok_buf_put(&raw, s, n);
			}
		}
		if (!rc && (rc = tl_push(out, "", 0)) == 0) {
			rc = tok_utf8_lossy(&out->text, raw.p ? raw.p : "", raw.len);
			out->len[0] = out->text.len;
		}
		tok_buf_fini(&raw);
		return rc;
	}
	}
	(void)t;
	return 0;
}

int tok_decode_chain(const struct llm_tokenizer *t, const int32_t *ids, size_t n,
		     struct tok_buf *out)
{
	struct tlist a = { 0 }, b = { 0 };
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++)
		rc = tl_push(&a, t->arena + t->piece_off[ids[i]], t->piece_len[ids[i]]);
	for (i = 0; i < t->n_dec && !rc; i++) {
		struct tlist sw;

		rc = dec_step(t, &t->dec[i], &a, &b);
		sw = a;
		a = b;
		b = sw;
	}
	out->len = 0;
	for (i = 0; i < a.n && !rc; i++) {
		if (!t->has_decoder && i > 0)
			rc = tok_buf_put(out, " ", 1);
		if (!rc)
			rc = tok_buf_put(out, a.text.p + a.off[i], a.len[i]);
	}
	if (!rc)
		rc = tok_buf_put(out, "", 0);
	tl_fini(&a);
	tl_fini(&b);
	return rc;
}
