/* inference/jinja_filters.c — filters, tests, methods of str/dict/list, and
 * the globals of the template environment.
 *
 * Semantics are Jinja2 3.1's builtin filters/tests and Python 3's str
 * methods, with transformers' additions (tojson = json.dumps with
 * ensure_ascii=False and insertion order; raise_exception; strftime_now).
 * The environment is an ImmutableSandboxedEnvironment: list/dict mutators
 * (append, pop, update, ...) yield an Undefined that raises SecurityError
 * when called, exactly as transformers does.  Strings are UTF-8; Python
 * positions and lengths count code points.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "inference/jinja_impl.h"
#include "inference/llm.h"

#define FAIL(r, ...) jinja_fail((r), LLM_E_TEMPLATE, (r)->cur_off, __VA_ARGS__)

static struct jv *arg(struct jcall_args *a, size_t i, const char *kw)
{
	return jargs_get(a, i, kw);
}

static const char *need_str(struct jrender *r, struct jv v, const char *what)
{
	if (v.type != JV_STR)
		FAIL(r, "TypeError: %s must be str, not %s", what, jv_type_name(v));
	return v.u.s->s;
}

static int64_t need_int(struct jrender *r, struct jv v, const char *what)
{
	if (v.type == JV_INT)
		return v.u.i;
	if (v.type == JV_BOOL)
		return v.u.b;
	FAIL(r, "TypeError: %s must be an integer, not %s", what, jv_type_name(v));
}

/* ---- Unicode helpers --------------------------------------------------- */
static bool py_isspace(int32_t c)
{
	if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) ||
	    c == 0x85 || c == 0xa0)
		return true;
	if (c < 0x80)
		return false;
	int cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
	       cat == UTF8PROC_CATEGORY_ZP;
}

static bool is_cased(int32_t c)
{
	int cat = utf8proc_category(c);
	return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
	       cat == UTF8PROC_CATEGORY_LT;
}

/* decode s into code points (arena) */
static int32_t *decode(struct jrender *r, const char *s, size_t len, size_t *n)
{
	int32_t *cps = jr_alloc(r, (len + 1) * sizeof *cps);
	size_t k = 0;
	for (size_t i = 0; i < len;) {
		int32_t c;
		utf8proc_ssize_t m = utf8proc_iterate((const uint8_t *)s + i,
						      (utf8proc_ssize_t)(len - i), &c);
		if (m <= 0) {
			c = (unsigned char)s[i];
			m = 1;
		}
		cps[k++] = c;
		i += (size_t)m;
	}
	*n = k;
	return cps;
}

/* Code point -1 encodes "SS": Python's full upper-case mapping of U+00DF
 * (utf8proc's simple mapping would give U+1E9E); -2 encodes "Ss" (title). */
static struct jv encode(struct jrender *r, const int32_t *cps, size_t n)
{
	char *buf = jr_alloc(r, n * 4 + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (cps[i] < 0) {
			buf[k++] = 'S';
			buf[k++] = cps[i] == -1 ? 'S' : 's';
			continue;
		}
		k += (size_t)utf8proc_encode_char(cps[i], (uint8_t *)buf + k);
	}
	return jv_str(r, buf, k);
}

static int32_t to_upper(int32_t c)
{
	return c == 0xDF ? -1 : utf8proc_toupper(c);
}

static int32_t to_title(int32_t c)
{
	return c == 0xDF ? -2 : utf8proc_totitle(c);
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE, CASE_PYTITLE,
       CASE_SWAP };

static struct jv change_case(struct jrender *r, struct jv v, int mode)
{
	size_t n;
	const char *s = v.u.s->s;
	int32_t *c = decode(r, s, v.u.s->len, &n);
	bool prev_cased = false, word_start = true;
	for (size_t i = 0; i < n; i++) {
		int32_t x = c[i];
		switch (mode) {
		case CASE_UPPER: c[i] = to_upper(x); break;
		case CASE_LOWER: c[i] = utf8proc_tolower(x); break;
		case CASE_SWAP:
			c[i] = utf8proc_isupper(x) ? utf8proc_tolower(x) : to_upper(x);
			break;
		case CASE_CAPITALIZE:
			c[i] = i == 0 ? to_title(x) : utf8proc_tolower(x);
			break;
		case CASE_PYTITLE: /* str.title: after a cased char lower, else title */
			c[i] = prev_cased ? utf8proc_tolower(x) : to_title(x);
			prev_cased = is_cased(x);
			break;
		case CASE_TITLE: { /* Jinja's title filter: words split on [-\s({[<]+ */
			bool sep = x == '-' || x == '(' || x == '{' || x == '[' ||
				   x == '<' || py_isspace(x);
			if (sep) {
				word_start = true;
			} else {
				c[i] = word_start ? to_upper(x) : utf8proc_tolower(x);
				word_start = false;
			}
			break;
		}
		}
	}
	return encode(r, c, n);
}

static bool memchr_cp(const int32_t *set, size_t n, int32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == x)
			return true;
	return false;
}

/* strip: which 1=left 2=right 3=both; chars NULL = whitespace */
static struct jv do_strip(struct jrender *r, struct jv v, struct jv *chars,
			  int which)
{
	size_t n, cn = 0;
	int32_t *c = decode(r, v.u.s->s, v.u.s->len, &n);
	int32_t *set = NULL;
	bool ws = !chars || chars->type == JV_NONE;
	if (!ws)
		set = decode(r, need_str(r, *chars, "strip arg"), chars->u.s->len, &cn);
	size_t a = 0, b = n;
#define IN_SET(x) (ws ? py_isspace(x) : memchr_cp(set, cn, (x)))
	if (which & 1)
		while (a < b && IN_SET(c[a]))
			a++;
	if (which & 2)
		while (b > a && IN_SET(c[b - 1]))
			b--;
#undef IN_SET
	return encode(r, c + a, b - a);
}


static struct jv str_split(struct jrender *r, struct jv v, struct jv *sepv,
			   int64_t maxsplit, bool from_right)
{
	struct jv out = jv_list_new(r, 0);
	const char *s = v.u.s->s;
	size_t len = v.u.s->len;
	if (!sepv || sepv->type == JV_NONE) {
		/* whitespace runs; leading/trailing ignored */
		size_t n;
		int32_t *c = decode(r, s, len, &n);
		if (!from_right) {
			size_t i = 0;
			while (i < n) {
				while (i < n && py_isspace(c[i]))
					i++;
				if (i >= n)
					break;
				size_t j = i;
				if (maxsplit >= 0 && (int64_t)out.u.l->n >= maxsplit) {
					size_t e = n;
					while (e > i && py_isspace(c[e - 1]))
						e--;
					jv_list_push(r, out, encode(r, c + i, e - i));
					break;
				}
				while (j < n && !py_isspace(c[j]))
					j++;
				jv_list_push(r, out, encode(r, c + i, j - i));
				i = j;
			}
		} else {
			size_t i = n;
			struct jv rev = jv_list_new(r, 0);
			while (i > 0) {
				while (i > 0 && py_isspace(c[i - 1]))
					i--;
				if (i == 0)
					break;
				if (maxsplit >= 0 && (int64_t)rev.u.l->n >= maxsplit) {
					size_t b = 0;
					while (b < i && py_isspace(c[b]))
						b++;
					jv_list_push(r, rev, encode(r, c + b, i - b));
					break;
				}
				size_t j = i;
				while (j > 0 && !py_isspace(c[j - 1]))
					j--;
				jv_list_push(r, rev, encode(r, c + j, i - j));
				i = j;
			}
			for (size_t k = rev.u.l->n; k > 0; k--)
				jv_list_push(r, out, rev.u.l->items[k - 1]);
		}
		return out;
	}
	const char *sep = need_str(r, *sepv, "separator");
	size_t sl = sepv->u.s->len;
	if (sl == 0)
		FAIL(r, "ValueError: empty separator");
	if (!from_right) {
		size_t i = 0;
		for (;;) {
			const char *hit = NULL;
			if (maxsplit < 0 || (int64_t)out.u.l->n < maxsplit)
				hit = memmem(s + i, len - i, sep, sl);
			if (!hit) {
				jv_list_push(r, out, jv_str(r, s + i, len - i));
				break;
			}
			size_t h = (size_t)(hit - s);
			jv_list_push(r, out, jv_str(r, s + i, h - i));
			i = h + sl;
		}
		return out;
	}
	struct jv rev = jv_list_new(r, 0);
	size_t end = len;
	for (;;) {
		size_t h = (size_t)-1;
		if ((maxsplit < 0 || (int64_t)rev.u.l->n < maxsplit) && end >= sl)
			for (size_t k = end - sl + 1; k-- > 0;)
				if (memcmp(s + k, sep, sl) == 0) {
					h = k;
					break;
				}
		if (h == (size_t)-1) {
			jv_list_push(r, rev, jv_str(r, s, end));
			break;
		}
		jv_list_push(r, rev, jv_str(r, s + h + sl, end - h - sl));
		end = h;
	}
	for (size_t k = rev.u.l->n; k > 0; k--)
		jv_list_push(r, out, rev.u.l->items[k - 1]);
	return out;
}

static struct jv str_replace(struct jrender *r, struct jv v, struct jv oldv,
			     struct jv newv, int64_t count)
{
	const char *s = v.u.s->s, *o = need_str(r, oldv, "replace() argument 1"),
		   *nw = need_str(r, newv, "replace() argument 2");
	size_t len = v.u.s->len, ol = oldv.u.s->len, nl = newv.u.s->len;
	struct strbuf *sb = jr_buf(r);
	int64_t done = 0;
	if (ol == 0) {
		/* Python inserts NEW between every character and at both ends */
		size_t i = 0;
		while (i <= len) {
			if (count < 0 || done < count) {
				strbuf_append(sb, nw, nl);
				done++;
			}
			if (i == len)
				break;
			size_t k = i + 1;
			while (k < len && ((unsigned char)s[k] & 0xC0) == 0x80)
				k++;
			strbuf_append(sb, s + i, k - i);
			i = k;
		}
	} else {
		size_t i = 0;
		while (i < len) {
			const char *hit = (count < 0 || done < count)
						  ? memmem(s + i, len - i, o, ol) : NULL;
			if (!hit) {
				strbuf_append(sb, s + i, len - i);
				break;
			}
			strbuf_append(sb, s + i, (size_t)(hit - (s + i)));
			if (strbuf_append(sb, nw, nl) != 0)
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "string too long");
			done++;
			i = (size_t)(hit - s) + ol;
		}
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static bool prefix_match(struct jrender *r, struct jv v, struct jv p, bool end)
{
	if (p.type == JV_LIST && p.u.l->is_tuple) {
		for (size_t i = 0; i < p.u.l->n; i++)
			if (prefix_match(r, v, p.u.l->items[i], end))
				return true;
		return false;
	}
	need_str(r, p, end ? "endswith arg" : "startswith arg");
	size_t n = p.u.s->len;
	if (n > v.u.s->len)
		return false;
	return memcmp(end ? v.u.s->s + v.u.s->len - n : v.u.s->s, p.u.s->s, n) == 0;
}

/* ---- methods ----------------------------------------------------------- */
static struct jv m_strip(struct jrender *r, struct jv self, struct jcall_args *a)
{
	return do_strip(r, self, arg(a, 0, "chars"), 3);
}
static struct jv m_lstrip(struct jrender *r, struct jv self, struct jcall_args *a)
{
	return do_strip(r, self, arg(a, 0, "chars"), 1);
}
static struct jv m_rstrip(struct jrender *r, struct jv self, struct jcall_args *a)
{
	return do_strip(r, self, arg(a, 0, "chars"), 2);
}
static struct jv m_split(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *ms = arg(a, 1, "maxsplit");
	return str_split(r, self, arg(a, 0, "sep"), ms ? need_int(r, *ms, "maxsplit") : -1,
			 false);
}
static struct jv m_rsplit(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *ms = arg(a, 1, "maxsplit");
	return str_split(r, self, arg(a, 0, "sep"), ms ? need_int(r, *ms, "maxsplit") : -1,
			 true);
}
static struct jv m_splitlines(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	struct jv out = jv_list_new(r, 0);
	const char *s = self.u.s->s;
	size_t len = self.u.s->len, i = 0, st = 0;
	while (i < len) {
		if (s[i] == '\n' || s[i] == '\r') {
			jv_list_push(r, out, jv_str(r, s + st, i - st));
			if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			st = ++i;
		} else {
			i++;
		}
	}
	if (st < len)
		jv_list_push(r, out, jv_str(r, s + st, len - st));
	return out;
}
static struct jv m_startswith(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *p = arg(a, 0, NULL);
	if (!p)
		FAIL(r, "TypeError: startswith() takes at least 1 argument (0 given)");
	return jv_bool(prefix_match(r, self, *p, false));
}
static struct jv m_endswith(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *p = arg(a, 0, NULL);
	if (!p)
		FAIL(r, "TypeError: endswith() takes at least 1 argument (0 given)");
	return jv_bool(prefix_match(r, self, *p, true));
}
static struct jv m_upper(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	return change_case(r, self, CASE_UPPER);
}
static struct jv m_lower(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	return change_case(r, self, CASE_LOWER);
}
static struct jv m_title(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	return change_case(r, self, CASE_PYTITLE);
}
static struct jv m_capitalize(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	return change_case(r, self, CASE_CAPITALIZE);
}
static struct jv m_swapcase(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	return change_case(r, self, CASE_SWAP);
}
static struct jv m_replace(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *o = arg(a, 0, NULL), *n = arg(a, 1, NULL), *c = arg(a, 2, "count");
	if (!o || !n)
		FAIL(r, "TypeError: replace expected at least 2 arguments");
	return str_replace(r, self, *o, *n, c ? need_int(r, *c, "count") : -1);
}
static struct jv str_find(struct jrender *r, struct jv self, struct jcall_args *a,
			  bool rev, bool count)
{
	struct jv *sub = arg(a, 0, NULL);
	if (!sub)
		FAIL(r, "TypeError: find() takes at least 1 argument");
	need_str(r, *sub, "substring");
	const char *s = self.u.s->s;
	size_t len = self.u.s->len, sl = sub->u.s->len;
	if (count) {
		if (sl == 0)
			return jv_int((int64_t)jutf8_count(s, len) + 1);
		int64_t c = 0;
		const char *p = s, *h;
		while ((h = memmem(p, len - (size_t)(p - s), sub->u.s->s, sl))) {
			c++;
			p = h + sl;
		}
		return jv_int(c);
	}
	if (sl > len)
		return jv_int(-1);
	if (!rev) {
		const char *h = memmem(s, len, sub->u.s->s, sl);
		return jv_int(h ? (int64_t)jutf8_count(s, (size_t)(h - s)) : -1);
	}
	for (size_t k = len - sl + 1; k-- > 0;)
		if (memcmp(s + k, sub->u.s->s, sl) == 0)
			return jv_int((int64_t)jutf8_count(s, k));
	return jv_int(-1);
}
static struct jv m_find(struct jrender *r, struct jv self, struct jcall_args *a)
{
	return str_find(r, self, a, false, false);
}
static struct jv m_rfind(struct jrender *r, struct jv self, struct jcall_args *a)
{
	return str_find(r, self, a, true, false);
}
static struct jv m_count(struct jrender *r, struct jv self, struct jcall_args *a)
{
	if (self.type == JV_LIST) {
		struct jv *x = arg(a, 0, NULL);
		int64_t c = 0;
		for (size_t i = 0; x && i < self.u.l->n; i++)
			c += jv_equal(self.u.l->items[i], *x);
		return jv_int(c);
	}
	return str_find(r, self, a, false, true);
}
static struct jv m_index(struct jrender *r, struct jv self, struct jcall_args *a)
{
	if (self.type == JV_LIST) {
		struct jv *x = arg(a, 0, NULL);
		for (size_t i = 0; x && i < self.u.l->n; i++)
			if (jv_equal(self.u.l->items[i], *x))
				return jv_int((int64_t)i);
		FAIL(r, "ValueError: value is not in list");
	}
	struct jv v = str_find(r, self, a, false, false);
	if (v.u.i < 0)
		FAIL(r, "ValueError: substring not found");
	return v;
}
static struct jv m_join(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *x = arg(a, 0, NULL);
	if (!x)
		FAIL(r, "TypeError: join() takes exactly one argument");
	struct jv l = jinja_to_list(r, *x);
	struct strbuf *sb = jr_buf(r);
	for (size_t i = 0; i < l.u.l->n; i++) {
		if (i)
			strbuf_append(sb, self.u.s->s, self.u.s->len);
		if (l.u.l->items[i].type != JV_STR)
			FAIL(r, "TypeError: sequence item %zu: expected str instance, %s found",
			     i, jv_type_name(l.u.l->items[i]));
		if (strbuf_append(sb, l.u.l->items[i].u.s->s, l.u.l->items[i].u.s->len))
			jinja_fail(r, LLM_E_LIMIT, r->cur_off, "string too long");
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}
static struct jv str_pred(struct jrender *r, struct jv self, int kind)
{
	size_t n;
	int32_t *c = decode(r, self.u.s->s, self.u.s->len, &n);
	if (n == 0)
		return jv_bool(false);
	bool any_cased = false;
	for (size_t i = 0; i < n; i++) {
		int cat = utf8proc_category(c[i]);
		bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
		bool number = cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
		bool ok = true;
		switch (kind) {
		case 0: ok = cat == UTF8PROC_CATEGORY_ND; break;
		case 1: ok = letter; break;
		case 2: ok = letter || number; break;
		case 3: ok = py_isspace(c[i]); break;
		case 4:
			ok = cat != UTF8PROC_CATEGORY_LU && cat != UTF8PROC_CATEGORY_LT;
			any_cased |= cat == UTF8PROC_CATEGORY_LL;
			break;
		default:
			ok = cat != UTF8PROC_CATEGORY_LL && cat != UTF8PROC_CATEGORY_LT;
			any_cased |= cat == UTF8PROC_CATEGORY_LU;
			break;
		}
		if (!ok)
			return jv_bool(false);
	}
	return jv_bool(kind >= 4 ? any_cased : true);
}
static struct jv m_isdigit(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 0); }
static struct jv m_isalpha(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 1); }
static struct jv m_isalnum(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 2); }
static struct jv m_isspace(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 3); }
static struct jv m_islower(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 4); }
static struct jv m_isupper(struct jrender *r, struct jv s, struct jcall_args *a) { (void)a; return str_pred(r, s, 5); }

/* str.format with positional {} / {0} / {name} fields (no format specs) */
static struct jv m_format(struct jrender *r, struct jv self, struct jcall_args *a)
{
	const char *s = self.u.s->s;
	size_t len = self.u.s->len, auto_idx = 0;
	struct strbuf *sb = jr_buf(r);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '{' && i + 1 < len && s[i + 1] == '{') {
			strbuf_putc(sb, '{');
			i++;
		} else if (s[i] == '}' && i + 1 < len && s[i + 1] == '}') {
			strbuf_putc(sb, '}');
			i++;
		} else if (s[i] == '{') {
			const char *e = memchr(s + i, '}', len - i);
			if (!e)
				FAIL(r, "ValueError: Single '{' encountered in format string");
			size_t fl = (size_t)(e - (s + i + 1));
			const char *f = s + i + 1;
			struct jv *v = NULL;
			if (fl == 0) {
				v = arg(a, auto_idx++, NULL);
			} else if (f[0] >= '0' && f[0] <= '9') {
				v = arg(a, (size_t)atoi(f), NULL);
			} else {
				for (size_t k = 0; k < a->n_kw; k++)
					if (strlen(a->kw_names[k]) == fl &&
					    !memcmp(a->kw_names[k], f, fl))
						v = &a->kw[k];
			}
			if (!v)
				FAIL(r, "IndexError: Replacement index out of range");
			jv_write_str(r, sb, *v);
			i = (size_t)(e - s);
		} else {
			strbuf_putc(sb, s[i]);
		}
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static struct jv m_items(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	struct jv out = jv_list_new(r, self.u.d->n);
	for (size_t i = 0; i < self.u.d->n; i++) {
		struct jv t = jv_list_new(r, 2);
		t.u.l->is_tuple = true;
		jv_list_push(r, t, self.u.d->keys[i]);
		jv_list_push(r, t, self.u.d->vals[i]);
		jv_list_push(r, out, t);
	}
	return out;
}
static struct jv m_keys(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	struct jv out = jv_list_new(r, self.u.d->n);
	for (size_t i = 0; i < self.u.d->n; i++)
		jv_list_push(r, out, self.u.d->keys[i]);
	return out;
}
static struct jv m_values(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	struct jv out = jv_list_new(r, self.u.d->n);
	for (size_t i = 0; i < self.u.d->n; i++)
		jv_list_push(r, out, self.u.d->vals[i]);
	return out;
}
static struct jv m_get(struct jrender *r, struct jv self, struct jcall_args *a)
{
	struct jv *k = arg(a, 0, NULL), *d = arg(a, 1, NULL);
	if (!k)
		FAIL(r, "TypeError: get expected at least 1 argument, got 0");
	struct jv *v = jv_dict_get(self, *k);
	return v ? *v : d ? *d : jv_none();
}
static struct jv m_copy(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)a;
	struct jv out = jv_dict_new(r, self.u.d->n);
	for (size_t i = 0; i < self.u.d->n; i++)
		jv_dict_set(r, out, self.u.d->keys[i], self.u.d->vals[i]);
	return out;
}

struct method {
	const char *name;
	jbuiltin_fn fn;
};
static const struct method str_methods[] = {
	{"strip", m_strip}, {"lstrip", m_lstrip}, {"rstrip", m_rstrip},
	{"split", m_split}, {"rsplit", m_rsplit}, {"splitlines", m_splitlines},
	{"startswith", m_startswith}, {"endswith", m_endswith},
	{"upper", m_upper}, {"lower", m_lower}, {"title", m_title},
	{"capitalize", m_capitalize}, {"swapcase", m_swapcase},
	{"replace", m_replace}, {"find", m_find}, {"rfind", m_rfind},
	{"count", m_count}, {"index", m_index}, {"join", m_join},
	{"format", m_format}, {"isdigit", m_isdigit}, {"isalpha", m_isalpha},
	{"isalnum", m_isalnum}, {"isspace", m_isspace}, {"islower", m_islower},
	{"isupper", m_isupper}, {NULL, NULL},
};
static const struct method dict_methods[] = {
	{"items", m_items}, {"keys", m_keys}, {"values", m_values},
	{"get", m_get}, {"copy", m_copy}, {NULL, NULL},
};
static const struct method list_methods[] = {
	{"index", m_index}, {"count", m_count}, {NULL, NULL},
};
/* ImmutableSandboxedEnvironment: these exist but are unsafe to call */
static const char *const unsafe_list[] = {
	"append", "extend", "insert", "pop", "remove", "reverse", "sort",
	"clear", NULL,
};
static const char *const unsafe_dict[] = {
	"clear", "pop", "popitem", "setdefault", "update", NULL,
};

struct jv jinja_method(struct jrender *r, struct jv self, const char *name,
		       bool *found)
{
	const struct method *m = self.type == JV_STR ? str_methods
				 : self.type == JV_DICT ? dict_methods
							: list_methods;
	*found = false;
	for (; m->name; m++)
		if (!strcmp(m->name, name)) {
			*found = true;
			return jv_builtin(r, m->name, m->fn, self);
		}
	const char *const *u = self.type == JV_LIST ? unsafe_list
			       : self.type == JV_DICT ? unsafe_dict : NULL;
	for (; u && *u; u++)
		if (!strcmp(*u, name)) {
			*found = true;
			char buf[160];
			snprintf(buf, sizeof buf,
				 "access to attribute '%s' of '%s' object is unsafe.",
				 name, jv_type_name(self));
			struct jv v = jv_undef(jv_cstr(r, buf).u.s->s);
			v.undef_security = 1;
			return v;
		}
	return jv_none();
}

/* ---- attribute getter (selectattr, map, sort, ...) --------------------- */
static struct jv get_attr_path(struct jrender *r, struct jv item, struct jv attr)
{
	if (attr.type != JV_STR)
		return jinja_getitem(r, item, attr);
	const char *s = attr.u.s->s;
	size_t len = attr.u.s->len, i = 0;
	while (i <= len) {
		const char *dot = memchr(s + i, '.', len - i);
		size_t e = dot ? (size_t)(dot - s) : len;
		bool digits = e > i;
		for (size_t k = i; k < e; k++)
			if (s[k] < '0' || s[k] > '9')
				digits = false;
		struct jv key = digits ? jv_int(strtoll(s + i, NULL, 10))
				       : jv_str(r, s + i, e - i);
		item = jinja_getitem(r, item, key);
		if (!dot)
			break;
		i = e + 1;
	}
	return item;
}

/* ---- filters ----------------------------------------------------------- */
typedef struct jv (*jfilter_fn)(struct jrender *r, struct jv v,
				struct jcall_args *a);

static struct jv f_trim(struct jrender *r, struct jv v, struct jcall_args *a)
{
	return do_strip(r, jv_to_str(r, v), arg(a, 0, "chars"), 3);
}
static struct jv f_length(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	switch (v.type) {
	case JV_STR: return jv_int((int64_t)jutf8_count(v.u.s->s, v.u.s->len));
	case JV_LIST: return jv_int((int64_t)v.u.l->n);
	case JV_DICT:
	case JV_NS: return jv_int((int64_t)v.u.d->n);
	case JV_UNDEFINED: return jv_int(0);
	default: FAIL(r, "TypeError: object of type '%s' has no len()", jv_type_name(v));
	}
}

static struct jv f_tojson(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jdump_opts o = {.ensure_ascii = false, .indent = -1};
	struct jv *x;
	if ((x = arg(a, 0, "ensure_ascii")))
		o.ensure_ascii = jv_truthy(r, *x);
	if ((x = arg(a, 1, "indent")) && x->type != JV_NONE) {
		if (x->type == JV_STR)
			o.indent_str = x->u.s->s;
		else
			o.indent = (int)need_int(r, *x, "indent");
		if (o.indent > 64)
			o.indent = 64;
	}
	if ((x = arg(a, 2, "separators")) && x->type == JV_LIST && x->u.l->n == 2) {
		o.item_sep = need_str(r, x->u.l->items[0], "separator");
		o.key_sep = need_str(r, x->u.l->items[1], "separator");
	}
	if ((x = arg(a, 3, "sort_keys")))
		o.sort_keys = jv_truthy(r, *x);
	struct strbuf *sb = jr_buf(r);
	jv_write_json(r, sb, v, &o, 0);
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static struct jv f_items(struct jrender *r, struct jv v, struct jcall_args *a)
{
	if (v.type == JV_UNDEFINED)
		return jv_list_new(r, 0);
	if (v.type != JV_DICT && v.type != JV_NS)
		FAIL(r, "TypeError: can only get item pairs from a mapping.");
	return m_items(r, v, a);
}

static struct jv f_join(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *d = arg(a, 0, "d"), *attr = arg(a, 1, "attribute");
	struct jv l = jinja_to_list(r, v);
	struct strbuf *sb = jr_buf(r);
	for (size_t i = 0; i < l.u.l->n; i++) {
		if (i && d)
			jv_write_str(r, sb, *d);
		struct jv it = l.u.l->items[i];
		if (attr)
			it = get_attr_path(r, it, *attr);
		jv_write_str(r, sb, it);
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static struct jv f_upper(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	return change_case(r, jv_to_str(r, v), CASE_UPPER);
}
static struct jv f_lower(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	return change_case(r, jv_to_str(r, v), CASE_LOWER);
}
static struct jv f_capitalize(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	return change_case(r, jv_to_str(r, v), CASE_CAPITALIZE);
}
static struct jv f_title(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	return change_case(r, jv_to_str(r, v), CASE_TITLE);
}
static struct jv f_replace(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *o = arg(a, 0, "old"), *n = arg(a, 1, "new"), *c = arg(a, 2, "count");
	if (!o || !n)
		FAIL(r, "TypeError: replace filter needs 'old' and 'new'");
	return str_replace(r, jv_to_str(r, v), jv_to_str(r, *o), jv_to_str(r, *n),
			   c && c->type != JV_NONE ? need_int(r, *c, "count") : -1);
}
static struct jv f_default(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *d = arg(a, 0, "default_value"), *b = arg(a, 1, "boolean");
	struct jv dv = d ? *d : jv_str(r, "", 0);
	if (v.type == JV_UNDEFINED || (b && jv_truthy(r, *b) && !jv_truthy(r, v)))
		return dv;
	return v;
}
static struct jv f_first(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv l = jinja_to_list(r, v);
	return l.u.l->n ? l.u.l->items[0] : jv_undef("No first item, sequence was empty.");
}
static struct jv f_last(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv l = jinja_to_list(r, v);
	return l.u.l->n ? l.u.l->items[l.u.l->n - 1]
			: jv_undef("No last item, sequence was empty.");
}
static struct jv f_list(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv l = jinja_to_list(r, v);
	struct jv out = jv_list_new(r, l.u.l->n);
	for (size_t i = 0; i < l.u.l->n; i++)
		jv_list_push(r, out, l.u.l->items[i]);
	return out;
}
static struct jv f_string(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	return jv_to_str(r, v);
}
static struct jv f_safe(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)r;
	(void)a;
	return v;
}
static struct jv f_escape(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv s = jv_to_str(r, v);
	struct strbuf *sb = jr_buf(r);
	for (size_t i = 0; i < s.u.s->len; i++) {
		char c = s.u.s->s[i];
		switch (c) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&#34;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_putc(sb, c);
		}
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}
static struct jv parse_number(struct jrender *r, struct jv v, bool want_int,
			      struct jv dflt, int base)
{
	switch (v.type) {
	case JV_INT: return want_int ? v : jv_float((double)v.u.i);
	case JV_BOOL: return want_int ? jv_int(v.u.b) : jv_float(v.u.b);
	case JV_FLOAT: return want_int ? jv_int((int64_t)v.u.f) : v;
	case JV_STR: {
		char *end;
		const char *s = v.u.s->s;
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (want_int) {
			long long i = strtoll(s, &end, base);
			if (end != s) {
				while (*end == ' ' || *end == '\t' || *end == '\n')
					end++;
				if (!*end)
					return jv_int(i);
			}
		}
		double f = strtod(s, &end);
		if (end != s) {
			while (*end == ' ' || *end == '\t' || *end == '\n')
				end++;
			if (!*end)
				return want_int ? jv_int((int64_t)f) : jv_float(f);
		}
		return dflt;
	}
	default:
		(void)r;
		return dflt;
	}
}
static struct jv f_int(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *d = arg(a, 0, "default"), *b = arg(a, 1, "base");
	return parse_number(r, v, true, d ? *d : jv_int(0),
			    b ? (int)need_int(r, *b, "base") : 10);
}
static struct jv f_float(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *d = arg(a, 0, "default");
	return parse_number(r, v, false, d ? *d : jv_float(0.0), 10);
}
static struct jv f_abs(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	if (v.type == JV_INT)
		return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
	if (v.type == JV_BOOL)
		return jv_int(v.u.b);
	if (v.type == JV_FLOAT)
		return jv_float(fabs(v.u.f));
	FAIL(r, "TypeError: bad operand type for abs(): '%s'", jv_type_name(v));
}
static struct jv f_round(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *p = arg(a, 0, "precision"), *m = arg(a, 1, "method");
	int64_t prec = p ? need_int(r, *p, "precision") : 0;
	const char *method = m ? need_str(r, *m, "method") : "common";
	if (v.type != JV_INT && v.type != JV_FLOAT && v.type != JV_BOOL)
		FAIL(r, "TypeError: round needs a number");
	double x = v.type == JV_FLOAT ? v.u.f : v.type == JV_INT ? (double)v.u.i : v.u.b;
	double mul = pow(10.0, (double)prec);
	double y;
	if (!strcmp(method, "common")) {
		/* Python round(): half to even on the exact binary value */
		char buf[64];
		snprintf(buf, sizeof buf, "%.*f", prec >= 0 ? (int)prec : 0, x);
		y = prec >= 0 ? strtod(buf, NULL) : nearbyint(x * mul) / mul;
	} else if (!strcmp(method, "ceil")) {
		y = ceil(x * mul) / mul;
	} else if (!strcmp(method, "floor")) {
		y = floor(x * mul) / mul;
	} else {
		FAIL(r, "method must be common, ceil or floor");
	}
	return jv_float(y);
}

/* select/reject/selectattr/rejectattr/map */
static bool run_test_args(struct jrender *r, struct jv item, struct jcall_args *a,
			  size_t first)
{
	struct jcall_args ta = {0};
	if (a->n_pos <= first)
		return jv_truthy(r, item);
	const char *name = need_str(r, a->pos[first], "test name");
	ta.n_pos = a->n_pos - first - 1;
	ta.pos = a->pos + first + 1;
	ta.n_kw = a->n_kw;
	ta.kw_names = a->kw_names;
	ta.kw = a->kw;
	return jinja_apply_test(r, name, item, &ta);
}

static struct jv select_impl(struct jrender *r, struct jv v, struct jcall_args *a,
			     bool attr, bool want)
{
	struct jv l = jinja_to_list(r, v);
	struct jv out = jv_list_new(r, l.u.l->n);
	if (attr && a->n_pos < 1)
		FAIL(r, "Missing parameter for attribute name");
	for (size_t i = 0; i < l.u.l->n; i++) {
		struct jv it = l.u.l->items[i];
		struct jv subject = attr ? get_attr_path(r, it, a->pos[0]) : it;
		if (run_test_args(r, subject, a, attr ? 1 : 0) == want)
			jv_list_push(r, out, it);
	}
	return out;
}
static struct jv f_select(struct jrender *r, struct jv v, struct jcall_args *a) { return select_impl(r, v, a, false, true); }
static struct jv f_reject(struct jrender *r, struct jv v, struct jcall_args *a) { return select_impl(r, v, a, false, false); }
static struct jv f_selectattr(struct jrender *r, struct jv v, struct jcall_args *a) { return select_impl(r, v, a, true, true); }
static struct jv f_rejectattr(struct jrender *r, struct jv v, struct jcall_args *a) { return select_impl(r, v, a, true, false); }

static struct jv f_map(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv l = jinja_to_list(r, v);
	struct jv out = jv_list_new(r, l.u.l->n);
	struct jv *attr = arg(a, 99, "attribute"), *dflt = arg(a, 99, "default");
	for (size_t i = 0; i < l.u.l->n; i++) {
		struct jv it = l.u.l->items[i];
		if (attr) {
			it = get_attr_path(r, it, *attr);
			if (it.type == JV_UNDEFINED && dflt)
				it = *dflt;
		} else if (a->n_pos >= 1) {
			struct jcall_args fa = {0};
			fa.n_pos = a->n_pos - 1;
			fa.pos = a->pos + 1;
			fa.n_kw = a->n_kw;
			fa.kw_names = a->kw_names;
			fa.kw = a->kw;
			it = jinja_apply_filter(r, need_str(r, a->pos[0], "filter name"), it, &fa);
		}
		jv_list_push(r, out, it);
	}
	return out;
}

static struct jv sort_key(struct jrender *r, struct jv it, struct jv *attr,
			  bool case_sensitive)
{
	if (attr)
		it = get_attr_path(r, it, *attr);
	if (!case_sensitive && it.type == JV_STR)
		it = change_case(r, it, CASE_LOWER);
	return it;
}

static void stable_sort(struct jrender *r, struct jv *items, struct jv *keys,
			size_t n, bool reverse)
{
	/* insertion sort keeps Python's stability; lists here are short */
	for (size_t i = 1; i < n; i++) {
		struct jv it = items[i], k = keys[i];
		size_t j = i;
		while (j > 0) {
			int c = jv_compare(r, keys[j - 1], k);
			if (reverse ? c >= 0 : c <= 0)
				break;
			items[j] = items[j - 1];
			keys[j] = keys[j - 1];
			j--;
		}
		items[j] = it;
		keys[j] = k;
	}
}

static struct jv f_sort(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *rev = arg(a, 0, "reverse"), *cs = arg(a, 1, "case_sensitive"),
		  *attr = arg(a, 2, "attribute");
	struct jv l = f_list(r, v, a);
	size_t n = l.u.l->n;
	struct jv *keys = jr_alloc(r, (n + 1) * sizeof *keys);
	for (size_t i = 0; i < n; i++)
		keys[i] = sort_key(r, l.u.l->items[i], attr, cs && jv_truthy(r, *cs));
	stable_sort(r, l.u.l->items, keys, n, rev && jv_truthy(r, *rev));
	return l;
}

static struct jv f_dictsort(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"),
		  *rev = arg(a, 2, "reverse");
	if (v.type != JV_DICT)
		FAIL(r, "TypeError: dictsort needs a mapping");
	struct jv l = m_items(r, v, a);
	bool by_value = by && by->type == JV_STR && !strcmp(by->u.s->s, "value");
	size_t n = l.u.l->n;
	struct jv *keys = jr_alloc(r, (n + 1) * sizeof *keys);
	for (size_t i = 0; i < n; i++)
		keys[i] = sort_key(r, l.u.l->items[i].u.l->items[by_value ? 1 : 0], NULL,
				   cs && jv_truthy(r, *cs));
	stable_sort(r, l.u.l->items, keys, n, rev && jv_truthy(r, *rev));
	return l;
}

static struct jv f_unique(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *cs = arg(a, 0, "case_sensitive"), *attr = arg(a, 1, "attribute");
	struct jv l = jinja_to_list(r, v);
	struct jv out = jv_list_new(r, 0), seen = jv_list_new(r, 0);
	for (size_t i = 0; i < l.u.l->n; i++) {
		struct jv k = sort_key(r, l.u.l->items[i], attr, cs && jv_truthy(r, *cs));
		bool dup = false;
		for (size_t j = 0; j < seen.u.l->n && !dup; j++)
			dup = jv_equal(seen.u.l->items[j], k);
		if (!dup) {
			jv_list_push(r, seen, k);
			jv_list_push(r, out, l.u.l->items[i]);
		}
	}
	return out;
}

static struct jv f_reverse(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv l = jinja_to_list(r, v);
	if (v.type == JV_STR) {
		struct strbuf *sb = jr_buf(r);
		for (size_t i = l.u.l->n; i > 0; i--)
			strbuf_append(sb, l.u.l->items[i - 1].u.s->s, l.u.l->items[i - 1].u.s->len);
		struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
		strbuf_fini(sb);
		return out;
	}
	struct jv out = jv_list_new(r, l.u.l->n);
	for (size_t i = l.u.l->n; i > 0; i--)
		jv_list_push(r, out, l.u.l->items[i - 1]);
	return out;
}

static struct jv minmax(struct jrender *r, struct jv v, struct jcall_args *a, int sign)
{
	struct jv *cs = arg(a, 0, "case_sensitive"), *attr = arg(a, 1, "attribute");
	struct jv l = jinja_to_list(r, v);
	if (l.u.l->n == 0)
		return jv_undef("No aggregated item, sequence was empty.");
	struct jv best = l.u.l->items[0];
	struct jv bk = sort_key(r, best, attr, cs && jv_truthy(r, *cs));
	for (size_t i = 1; i < l.u.l->n; i++) {
		struct jv k = sort_key(r, l.u.l->items[i], attr, cs && jv_truthy(r, *cs));
		if (jv_compare(r, k, bk) * sign > 0) {
			best = l.u.l->items[i];
			bk = k;
		}
	}
	return best;
}
static struct jv f_min(struct jrender *r, struct jv v, struct jcall_args *a) { return minmax(r, v, a, -1); }
static struct jv f_max(struct jrender *r, struct jv v, struct jcall_args *a) { return minmax(r, v, a, 1); }

static struct jv f_sum(struct jrender *r, struct jv v, struct jcall_args *a);
static struct jv f_sum(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *attr = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
	struct jv l = jinja_to_list(r, v);
	struct jv acc = start ? *start : jv_int(0);
	for (size_t i = 0; i < l.u.l->n; i++) {
		struct jv it = attr ? get_attr_path(r, l.u.l->items[i], *attr) : l.u.l->items[i];
		if (acc.type == JV_FLOAT || it.type == JV_FLOAT) {
			double x = acc.type == JV_FLOAT ? acc.u.f : (double)need_int(r, acc, "sum");
			double y = it.type == JV_FLOAT ? it.u.f : (double)need_int(r, it, "sum item");
			acc = jv_float(x + y);
		} else {
			acc = jv_int(need_int(r, acc, "sum") + need_int(r, it, "sum item"));
		}
	}
	return acc;
}

static struct jv f_batch(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *lc = arg(a, 0, "linecount"), *fill = arg(a, 1, "fill_with");
	int64_t n = lc ? need_int(r, *lc, "linecount") : 1;
	if (n <= 0)
		FAIL(r, "batch size must be positive");
	struct jv l = jinja_to_list(r, v), out = jv_list_new(r, 0), cur = jv_list_new(r, 0);
	for (size_t i = 0; i < l.u.l->n; i++) {
		jv_list_push(r, cur, l.u.l->items[i]);
		if ((int64_t)cur.u.l->n == n) {
			jv_list_push(r, out, cur);
			cur = jv_list_new(r, 0);
		}
	}
	if (cur.u.l->n) {
		if (fill)
			while ((int64_t)cur.u.l->n < n)
				jv_list_push(r, cur, *fill);
		jv_list_push(r, out, cur);
	}
	return out;
}

static struct jv f_indent(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *w = arg(a, 0, "width"), *first = arg(a, 1, "first"),
		  *blank = arg(a, 2, "blank");
	struct jv s = jv_to_str(r, v);
	struct strbuf *pad = jr_buf(r);
	if (w && w->type == JV_STR)
		strbuf_append(pad, w->u.s->s, w->u.s->len);
	else
		for (int64_t i = 0, n = w ? need_int(r, *w, "width") : 4; i < n && i < 1024; i++)
			strbuf_putc(pad, ' ');
	bool bl = blank && jv_truthy(r, *blank);
	struct strbuf *sb = jr_buf(r);
	const char *p = s.u.s->s, *end = p + s.u.s->len;
	bool first_line = true;
	/* Jinja: lines split on "\n"; the first line is indented only with
	 * first=True; empty lines only with blank=True. */
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		bool empty = le == p;
		if (first_line ? (first && jv_truthy(r, *first)) && (bl || !empty || true)
			       : (bl || !empty))
			strbuf_append(sb, pad->data ? pad->data : "", pad->len);
		strbuf_append(sb, p, (size_t)(le - p));
		if (!nl)
			break;
		strbuf_putc(sb, '\n');
		p = nl + 1;
		first_line = false;
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	strbuf_fini(pad);
	return out;
}

static struct jv f_wordcount(struct jrender *r, struct jv v, struct jcall_args *a)
{
	(void)a;
	struct jv s = jv_to_str(r, v);
	size_t n;
	int32_t *c = decode(r, s.u.s->s, s.u.s->len, &n);
	int64_t words = 0;
	bool in = false;
	for (size_t i = 0; i < n; i++) {
		int cat = utf8proc_category(c[i]);
		bool w = c[i] == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
			 (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) ||
			 cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC;
		if (w && !in)
			words++;
		in = w;
	}
	return jv_int(words);
}

static struct jv f_center(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *w = arg(a, 0, "width");
	struct jv s = jv_to_str(r, v);
	int64_t width = w ? need_int(r, *w, "width") : 80;
	int64_t n = (int64_t)jutf8_count(s.u.s->s, s.u.s->len);
	if (width <= n || width > 100000)
		return s;
	int64_t total = width - n, left = total / 2 + (total & width & 1);
	struct strbuf *sb = jr_buf(r);
	for (int64_t i = 0; i < left; i++)
		strbuf_putc(sb, ' ');
	strbuf_append(sb, s.u.s->s, s.u.s->len);
	for (int64_t i = 0; i < total - left; i++)
		strbuf_putc(sb, ' ');
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static struct jv f_attr(struct jrender *r, struct jv v, struct jcall_args *a)
{
	struct jv *n = arg(a, 0, "name");
	if (!n)
		FAIL(r, "attr needs a name");
	return jinja_getitem(r, v, *n);
}

static struct jv f_format(struct jrender *r, struct jv v, struct jcall_args *a)
{
	/* printf-style: %s %d %i %f %r %% with positional arguments */
	struct jv s = jv_to_str(r, v);
	struct strbuf *sb = jr_buf(r);
	size_t ai = 0;
	for (size_t i = 0; i < s.u.s->len; i++) {
		char c = s.u.s->s[i];
		if (c != '%' || i + 1 >= s.u.s->len) {
			strbuf_putc(sb, c);
			continue;
		}
		char t = s.u.s->s[++i];
		if (t == '%') {
			strbuf_putc(sb, '%');
			continue;
		}
		struct jv *x = arg(a, ai++, NULL);
		if (!x)
			FAIL(r, "TypeError: not enough arguments for format string");
		if (t == 's')
			jv_write_str(r, sb, *x);
		else if (t == 'r')
			jv_write_repr(r, sb, *x);
		else if (t == 'd' || t == 'i')
			strbuf_printf(sb, "%lld", (long long)parse_number(r, *x, true, jv_int(0), 10).u.i);
		else if (t == 'f')
			strbuf_printf(sb, "%f", parse_number(r, *x, false, jv_float(0), 10).u.f);
		else
			FAIL(r, "ValueError: unsupported format character '%c'", t);
	}
	struct jv out = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return out;
}

static struct jv f_count(struct jrender *r, struct jv v, struct jcall_args *a)
{
	return f_length(r, v, a);
}

struct filter {
	const char *name;
	jfilter_fn fn;
};
static const struct filter filters[] = {
	{"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch},
	{"capitalize", f_capitalize}, {"center", f_center}, {"count", f_count},
	{"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort},
	{"e", f_escape}, {"escape", f_escape}, {"first", f_first},
	{"float", f_float}, {"forceescape", f_escape}, {"format", f_format},
	{"indent", f_indent}, {"int", f_int}, {"items", f_items},
	{"join", f_join}, {"last", f_last}, {"length", f_length},
	{"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"max", f_max},
	{"min", f_min}, {"reject", f_reject}, {"rejectattr", f_rejectattr},
	{"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round},
	{"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr},
	{"sort", f_sort}, {"string", f_string}, {"sum", f_sum},
	{"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim},
	{"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount},
	{NULL, NULL},
};

int jinja_filter_exists(const char *name)
{
	for (const struct filter *f = filters; f->name; f++)
		if (!strcmp(f->name, name))
			return 1;
	return 0;
}

/* Filters that accept Undefined without raising (Jinja's soft_str /
 * iteration paths); all others raise UndefinedError on it. */
struct jv jinja_apply_filter(struct jrender *r, const char *name, struct jv v,
			     struct jcall_args *args)
{
	for (const struct filter *f = filters; f->name; f++)
		if (!strcmp(f->name, name)) {
			if (v.type == JV_UNDEFINED && v.undef_security &&
			    f->fn != f_default)
				jv_undefined_error(r, v);
			return f->fn(r, v, args);
		}
	FAIL(r, "No filter named '%s'.", name);
}

/* ---- tests ------------------------------------------------------------- */
static bool test_cmp(struct jrender *r, struct jv v, struct jcall_args *a, int op)
{
	struct jv *o = arg(a, 0, NULL);
	if (!o)
		FAIL(r, "TypeError: test needs an argument");
	switch (op) {
	case 0: return jv_equal(v, *o);
	case 1: return !jv_equal(v, *o);
	case 2: return jv_compare(r, v, *o) < 0;
	case 3: return jv_compare(r, v, *o) <= 0;
	case 4: return jv_compare(r, v, *o) > 0;
	default: return jv_compare(r, v, *o) >= 0;
	}
}

static const char *const test_names[] = {
	"defined", "undefined", "none", "string", "mapping", "iterable",
	"sequence", "number", "integer", "float", "boolean", "true", "false",
	"sameas", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<",
	"le", "<=", "gt", "greaterthan", ">", "ge", ">=", "odd", "even",
	"divisibleby", "lower", "upper", "in", "callable", "escaped", NULL,
};

int jinja_test_exists(const char *name)
{
	for (size_t i = 0; test_names[i]; i++)
		if (!strcmp(test_names[i], name))
			return 1;
	return 0;
}

bool jinja_apply_test(struct jrender *r, const char *n, struct jv v,
		      struct jcall_args *a)
{
	if (!strcmp(n, "defined")) return v.type != JV_UNDEFINED;
	if (!strcmp(n, "undefined")) return v.type == JV_UNDEFINED;
	if (!strcmp(n, "none")) return v.type == JV_NONE;
	if (!strcmp(n, "string")) return v.type == JV_STR;
	if (!strcmp(n, "mapping")) return v.type == JV_DICT;
	if (!strcmp(n, "iterable"))
		return v.type == JV_STR || v.type == JV_LIST || v.type == JV_DICT ||
		       v.type == JV_UNDEFINED;
	if (!strcmp(n, "sequence"))
		return v.type == JV_STR || v.type == JV_LIST || v.type == JV_DICT ||
		       v.type == JV_UNDEFINED;
	if (!strcmp(n, "number"))
		return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL;
	if (!strcmp(n, "integer")) return v.type == JV_INT;
	if (!strcmp(n, "float")) return v.type == JV_FLOAT;
	if (!strcmp(n, "boolean")) return v.type == JV_BOOL;
	if (!strcmp(n, "true")) return v.type == JV_BOOL && v.u.b;
	if (!strcmp(n, "false")) return v.type == JV_BOOL && !v.u.b;
	if (!strcmp(n, "callable")) return v.type == JV_FUNC;
	if (!strcmp(n, "escaped")) return false;
	if (!strcmp(n, "sameas")) {
		struct jv *o = arg(a, 0, "other");
		if (!o)
			FAIL(r, "sameas needs an argument");
		if (v.type != o->type)
			return false;
		switch (v.type) {
		case JV_NONE: case JV_UNDEFINED: return true;
		case JV_BOOL: return v.u.b == o->u.b;
		case JV_INT: return v.u.i == o->u.i; /* small ints are cached */
		case JV_STR: return v.u.s == o->u.s;
		case JV_LIST: return v.u.l == o->u.l;
		case JV_DICT: case JV_NS: return v.u.d == o->u.d;
		case JV_FUNC: return v.u.fn == o->u.fn;
		default: return false;
		}
	}
	if (!strcmp(n, "eq") || !strcmp(n, "equalto") || !strcmp(n, "=="))
		return test_cmp(r, v, a, 0);
	if (!strcmp(n, "ne") || !strcmp(n, "!=")) return test_cmp(r, v, a, 1);
	if (!strcmp(n, "lt") || !strcmp(n, "lessthan") || !strcmp(n, "<"))
		return test_cmp(r, v, a, 2);
	if (!strcmp(n, "le") || !strcmp(n, "<=")) return test_cmp(r, v, a, 3);
	if (!strcmp(n, "gt") || !strcmp(n, "greaterthan") || !strcmp(n, ">"))
		return test_cmp(r, v, a, 4);
	if (!strcmp(n, "ge") || !strcmp(n, ">=")) return test_cmp(r, v, a, 5);
	if (!strcmp(n, "odd") || !strcmp(n, "even")) {
		int64_t x = need_int(r, v, "value");
		bool odd = (x % 2) != 0;
		return n[0] == 'o' ? odd : !odd;
	}
	if (!strcmp(n, "divisibleby")) {
		struct jv *o = arg(a, 0, "num");
		if (!o)
			FAIL(r, "divisibleby needs an argument");
		int64_t d = need_int(r, *o, "num");
		if (d == 0)
			FAIL(r, "ZeroDivisionError: integer division or modulo by zero");
		return need_int(r, v, "value") % d == 0;
	}
	if (!strcmp(n, "lower") || !strcmp(n, "upper")) {
		struct jv s = jv_to_str(r, v);
		return jv_equal(s, change_case(r, s, n[0] == 'l' ? CASE_LOWER : CASE_UPPER));
	}
	if (!strcmp(n, "in")) {
		struct jv *o = arg(a, 0, "seq");
		if (!o)
			FAIL(r, "in needs an argument");
		struct jv l;
		if (o->type == JV_STR) {
			need_str(r, v, "'in <string>' left operand");
			return memmem(o->u.s->s, o->u.s->len, v.u.s->s, v.u.s->len) != NULL;
		}
		if (o->type == JV_DICT)
			return jv_dict_get(*o, v) != NULL;
		l = jinja_to_list(r, *o);
		for (size_t i = 0; i < l.u.l->n; i++)
			if (jv_equal(l.u.l->items[i], v))
				return true;
		return false;
	}
	FAIL(r, "No test named '%s'.", n);
}

/* ---- globals ----------------------------------------------------------- */
static struct jv g_range(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)self;
	int64_t start = 0, stop, step = 1;
	if (a->n_pos == 1) {
		stop = need_int(r, a->pos[0], "range arg");
	} else if (a->n_pos >= 2) {
		start = need_int(r, a->pos[0], "range arg");
		stop = need_int(r, a->pos[1], "range arg");
		if (a->n_pos >= 3)
			step = need_int(r, a->pos[2], "range arg");
	} else {
		FAIL(r, "TypeError: range expected at least 1 argument, got 0");
	}
	if (step == 0)
		FAIL(r, "ValueError: range() arg 3 must not be zero");
	/* the sandbox caps ranges at MAX_RANGE = 100000 items */
	int64_t n = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
			     : (start > stop ? (start - stop - step - 1) / -step : 0);
	if (n > 100000)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off,
			   "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
	struct jv out = jv_list_new(r, (size_t)n);
	for (int64_t i = 0; i < n; i++)
		jv_list_push(r, out, jv_int(start + i * step));
	return out;
}

static struct jv kwargs_dict(struct jrender *r, struct jcall_args *a, bool ns)
{
	struct jv d = jv_dict_new(r, a->n_kw);
	if (a->n_pos >= 1 && (a->pos[0].type == JV_DICT || a->pos[0].type == JV_NS))
		for (size_t i = 0; i < a->pos[0].u.d->n; i++)
			jv_dict_set(r, d, a->pos[0].u.d->keys[i], a->pos[0].u.d->vals[i]);
	for (size_t i = 0; i < a->n_kw; i++)
		jv_dict_set(r, d, jv_cstr(r, a->kw_names[i]), a->kw[i]);
	if (ns)
		d.type = JV_NS;
	return d;
}

static struct jv g_namespace(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)self;
	return kwargs_dict(r, a, true);
}

static struct jv g_dict(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)self;
	return kwargs_dict(r, a, false);
}

static struct jv g_raise(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)self;
	struct jv *m = arg(a, 0, "message");
	struct jv s = m ? jv_to_str(r, *m) : jv_str(r, "", 0);
	jinja_fail(r, LLM_E_RAISED, (size_t)-1, "%s", s.u.s->s);
}

static struct jv g_strftime_now(struct jrender *r, struct jv self, struct jcall_args *a)
{
	(void)self;
	struct jv *f = arg(a, 0, "format");
	if (!f)
		FAIL(r, "strftime_now needs a format");
	const char *fmt = need_str(r, *f, "format");
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char buf[512];
	/* the format comes from the template, as in transformers */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	size_t n = strftime(buf, sizeof buf, fmt, &tm);
#pragma GCC diagnostic pop
	return jv_str(r, buf, n);
}

void jinja_add_globals(struct jrender *r, struct jscope *g)
{
	jscope_set(r, g, "range", jv_builtin(r, "range", g_range, jv_none()));
	jscope_set(r, g, "namespace", jv_builtin(r, "namespace", g_namespace, jv_none()));
	jscope_set(r, g, "dict", jv_builtin(r, "dict", g_dict, jv_none()));
	jscope_set(r, g, "raise_exception", jv_builtin(r, "raise_exception", g_raise, jv_none()));
	jscope_set(r, g, "strftime_now", jv_builtin(r, "strftime_now", g_strftime_now, jv_none()));
}
