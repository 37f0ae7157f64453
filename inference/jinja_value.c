/* inference/jinja_value.c — the value model of the template interpreter.
 *
 * Owns: the bump arena, constructors for strings/lists/dicts, and the
 * Python semantics templates observe: truthiness, ==, ordering, str()
 * (True/False/None, repr of containers), repr() of strings (quote choice,
 * \xNN/\uNNNN escapes for non-printables), repr(float) (shortest
 * round-trip digits, exponent form outside 1e-4..1e16), and json.dumps as
 * transformers' tojson calls it (ensure_ascii=False, insertion order,
 * separators ", "/": " or "," with indent).
 * Invariant: values are immutable once built, except JV_NS dicts (the only
 * thing a sandboxed template may mutate) and lists/dicts still under
 * construction by their creator.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "inference/jinja_impl.h"
#include "inference/llm.h"

/* ---- arena ------------------------------------------------------------- */
struct jarena_chunk {
	struct jarena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

void jarena_init(struct jarena *a, size_t max_bytes)
{
	a->head = NULL;
	a->used_bytes = 0;
	a->max_bytes = max_bytes;
}

void jarena_fini(struct jarena *a)
{
	struct jarena_chunk *c = a->head;
	while (c) {
		struct jarena_chunk *n = c->next;
		free(c);
		c = n;
	}
	a->head = NULL;
	a->used_bytes = 0;
}

void *jarena_alloc(struct jarena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (n > a->max_bytes || a->used_bytes > a->max_bytes - n)
		return NULL;
	struct jarena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t sz = n > 65536 ? n : 65536;
		c = malloc(sizeof *c + sz);
		if (!c)
			return NULL;
		c->size = sz;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->used_bytes += n;
	memset(p, 0, n);
	return p;
}

void *jr_alloc(struct jrender *r, size_t n)
{
	void *p = jarena_alloc(&r->arena, n);
	if (!p) {
		if (r->arena.used_bytes + n > r->arena.max_bytes)
			jinja_fail(r, LLM_E_LIMIT, r->cur_off,
				   "template used more than %zu MiB of memory",
				   r->arena.max_bytes >> 20);
		jinja_fail(r, LLM_E_NOMEM, r->cur_off, "out of memory");
	}
	return p;
}

struct jv jv_str(struct jrender *r, const char *s, size_t len)
{
	if (len > JINJA_MAX_ARENA_BYTES)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off, "string too long");
	struct jstr *js = jr_alloc(r, sizeof *js + len + 1);
	js->len = len;
	if (len)
		memcpy(js->s, s, len);
	js->s[len] = 0;
	struct jv v = {.type = JV_STR};
	v.u.s = js;
	return v;
}

struct jv jv_cstr(struct jrender *r, const char *s)
{
	return jv_str(r, s, strlen(s));
}

struct jv jv_list_new(struct jrender *r, size_t cap)
{
	struct jlist *l = jr_alloc(r, sizeof *l);
	if (cap) {
		l->items = jr_alloc(r, cap * sizeof *l->items);
		l->cap = cap;
	}
	struct jv v = {.type = JV_LIST};
	v.u.l = l;
	return v;
}

void jv_list_push(struct jrender *r, struct jv list, struct jv item)
{
	struct jlist *l = list.u.l;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4;
		struct jv *ni = jr_alloc(r, nc * sizeof *ni);
		if (l->n)
			memcpy(ni, l->items, l->n * sizeof *ni);
		l->items = ni;
		l->cap = nc;
	}
	l->items[l->n++] = item;
}

struct jv jv_dict_new(struct jrender *r, size_t cap)
{
	struct jdict *d = jr_alloc(r, sizeof *d);
	if (cap) {
		d->keys = jr_alloc(r, cap * sizeof *d->keys);
		d->vals = jr_alloc(r, cap * sizeof *d->vals);
		d->cap = cap;
	}
	struct jv v = {.type = JV_DICT};
	v.u.d = d;
	return v;
}

struct jv *jv_dict_get(struct jv dict, struct jv key)
{
	struct jdict *d = dict.u.d;
	for (size_t i = 0; i < d->n; i++)
		if (jv_equal(d->keys[i], key))
			return &d->vals[i];
	return NULL;
}

struct jv *jv_dict_gets(struct jv dict, const char *key, size_t len)
{
	struct jdict *d = dict.u.d;
	for (size_t i = 0; i < d->n; i++)
		if (d->keys[i].type == JV_STR && d->keys[i].u.s->len == len &&
		    memcmp(d->keys[i].u.s->s, key, len) == 0)
			return &d->vals[i];
	return NULL;
}

void jv_dict_set(struct jrender *r, struct jv dict, struct jv key,
		 struct jv val)
{
	struct jv *slot = jv_dict_get(dict, key);
	if (slot) {
		*slot = val;
		return;
	}
	struct jdict *d = dict.u.d;
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 4;
		struct jv *nk = jr_alloc(r, nc * sizeof *nk);
		struct jv *nv = jr_alloc(r, nc * sizeof *nv);
		if (d->n) {
			memcpy(nk, d->keys, d->n * sizeof *nk);
			memcpy(nv, d->vals, d->n * sizeof *nv);
		}
		d->keys = nk;
		d->vals = nv;
		d->cap = nc;
	}
	d->keys[d->n] = key;
	d->vals[d->n] = val;
	d->n++;
}

/* ---- UTF-8 ------------------------------------------------------------- */
size_t jutf8_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

size_t jutf8_offset(const char *s, size_t len, size_t cp)
{
	size_t n = 0, i = 0;
	for (; i < len; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (n == cp)
				return i;
			n++;
		}
	}
	return len;
}

/* ---- Python semantics -------------------------------------------------- */
const char *jv_type_name(struct jv v)
{
	switch (v.type) {
	case JV_UNDEFINED: return "Undefined";
	case JV_NONE: return "NoneType";
	case JV_BOOL: return "bool";
	case JV_INT: return "int";
	case JV_FLOAT: return "float";
	case JV_STR: return "str";
	case JV_LIST: return v.u.l->is_tuple ? "tuple" : "list";
	case JV_DICT: return "dict";
	case JV_NS: return "Namespace";
	case JV_FUNC: return "function";
	}
	return "object";
}

void jv_undefined_error(struct jrender *r, struct jv v)
{
	jinja_fail(r, v.undef_security ? LLM_E_TEMPLATE : LLM_E_TEMPLATE,
		   r->cur_off, "%s%s", v.undef_security ? "SecurityError: " : "UndefinedError: ",
		   v.u.undef_msg ? v.u.undef_msg : "value is undefined");
}

void jv_check_defined(struct jrender *r, struct jv v)
{
	if (v.type == JV_UNDEFINED)
		jv_undefined_error(r, v);
}

bool jv_truthy(struct jrender *r, struct jv v)
{
	(void)r;
	switch (v.type) {
	case JV_UNDEFINED:
	case JV_NONE: return false;
	case JV_BOOL: return v.u.b;
	case JV_INT: return v.u.i != 0;
	case JV_FLOAT: return v.u.f != 0.0;
	case JV_STR: return v.u.s->len != 0;
	case JV_LIST: return v.u.l->n != 0;
	case JV_DICT: return v.u.d->n != 0;
	case JV_NS:
	case JV_FUNC: return true;
	}
	return false;
}

static bool is_num(struct jv v)
{
	return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL;
}

static double num_f(struct jv v)
{
	return v.type == JV_FLOAT ? v.u.f : v.type == JV_INT ? (double)v.u.i
							       : (double)v.u.b;
}

static int64_t num_i(struct jv v)
{
	return v.type == JV_INT ? v.u.i : (int64_t)v.u.b;
}

bool jv_equal(struct jv a, struct jv b)
{
	if (is_num(a) && is_num(b)) {
		if (a.type == JV_FLOAT || b.type == JV_FLOAT)
			return num_f(a) == num_f(b);
		return num_i(a) == num_i(b);
	}
	if (a.type != b.type)
		return false;
	switch (a.type) {
	case JV_UNDEFINED:
	case JV_NONE: return true;
	case JV_STR:
		return a.u.s->len == b.u.s->len &&
		       memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
	case JV_LIST:
		if (a.u.l->is_tuple != b.u.l->is_tuple || a.u.l->n != b.u.l->n)
			return false;
		for (size_t i = 0; i < a.u.l->n; i++)
			if (!jv_equal(a.u.l->items[i], b.u.l->items[i]))
				return false;
		return true;
	case JV_DICT:
		if (a.u.d->n != b.u.d->n)
			return false;
		for (size_t i = 0; i < a.u.d->n; i++) {
			struct jv *o = jv_dict_get(b, a.u.d->keys[i]);
			if (!o || !jv_equal(a.u.d->vals[i], *o))
				return false;
		}
		return true;
	case JV_NS: return a.u.d == b.u.d;
	case JV_FUNC: return a.u.fn == b.u.fn;
	default: return false;
	}
}

int jv_compare(struct jrender *r, struct jv a, struct jv b)
{
	if (is_num(a) && is_num(b)) {
		if (a.type == JV_FLOAT || b.type == JV_FLOAT) {
			double x = num_f(a), y = num_f(b);
			return x < y ? -1 : x > y ? 1 : 0;
		}
		int64_t x = num_i(a), y = num_i(b);
		return x < y ? -1 : x > y ? 1 : 0;
	}
	if (a.type == JV_STR && b.type == JV_STR) {
		/* UTF-8 byte order is code point order */
		size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
		int c = memcmp(a.u.s->s, b.u.s->s, n);
		if (c)
			return c < 0 ? -1 : 1;
		return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
	}
	if (a.type == JV_LIST && b.type == JV_LIST &&
	    a.u.l->is_tuple == b.u.l->is_tuple) {
		size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
		for (size_t i = 0; i < n; i++) {
			if (jv_equal(a.u.l->items[i], b.u.l->items[i]))
				continue;
			return jv_compare(r, a.u.l->items[i], b.u.l->items[i]);
		}
		return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
	}
	if (a.type == JV_UNDEFINED)
		jv_undefined_error(r, a);
	if (b.type == JV_UNDEFINED)
		jv_undefined_error(r, b);
	jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
		   "TypeError: '<' not supported between instances of '%s' and '%s'",
		   jv_type_name(a), jv_type_name(b));
}

/* ---- formatting -------------------------------------------------------- */
static void put(struct jrender *r, struct strbuf *sb, const char *s, size_t n)
{
	if (strbuf_append(sb, s, n) != 0)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off,
			   "output larger than %zu bytes", sb->max);
}

static void puts_(struct jrender *r, struct strbuf *sb, const char *s)
{
	put(r, sb, s, strlen(s));
}

/* Python's repr(float): the shortest digits that round-trip, in fixed
 * notation when -4 <= exponent < 16, else d.ddde+XX. */
void jv_write_float(struct strbuf *sb, double f)
{
	char buf[64];
	if (isnan(f)) {
		strbuf_puts(sb, "nan");
		return;
	}
	if (isinf(f)) {
		strbuf_puts(sb, f < 0 ? "-inf" : "inf");
		return;
	}
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	/* buf = [-]d.ddde[+-]XX */
	char digits[32];
	size_t nd = 0;
	const char *p = buf;
	bool neg = false;
	if (*p == '-') {
		neg = true;
		p++;
	}
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	int exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	struct strbuf *o = sb;
	if (neg)
		strbuf_putc(o, '-');
	if (exp >= -4 && exp < 16) {
		if (exp < 0) {
			strbuf_puts(o, "0.");
			for (int i = 0; i < -exp - 1; i++)
				strbuf_putc(o, '0');
			strbuf_append(o, digits, nd);
		} else {
			size_t ip = (size_t)exp + 1;
			for (size_t i = 0; i < ip; i++)
				strbuf_putc(o, i < nd ? digits[i] : '0');
			strbuf_putc(o, '.');
			if (nd > ip)
				strbuf_append(o, digits + ip, nd - ip);
			else
				strbuf_putc(o, '0');
		}
	} else {
		strbuf_putc(o, digits[0]);
		if (nd > 1) {
			strbuf_putc(o, '.');
			strbuf_append(o, digits + 1, nd - 1);
		}
		strbuf_printf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	}
}

static bool py_printable(int32_t cp)
{
	if (cp == ' ')
		return true;
	if (cp < 0x20 || cp == 0x7f)
		return false;
	if (cp < 0x7f)
		return true;
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_CC:
	case UTF8PROC_CATEGORY_CF:
	case UTF8PROC_CATEGORY_CS:
	case UTF8PROC_CATEGORY_CO:
	case UTF8PROC_CATEGORY_CN:
	case UTF8PROC_CATEGORY_ZL:
	case UTF8PROC_CATEGORY_ZP:
	case UTF8PROC_CATEGORY_ZS:
		return false;
	default:
		return true;
	}
}

static void write_str_repr(struct jrender *r, struct strbuf *sb,
			   const struct jstr *s)
{
	bool has_sq = memchr(s->s, '\'', s->len) != NULL;
	bool has_dq = memchr(s->s, '"', s->len) != NULL;
	char q = has_sq && !has_dq ? '"' : '\'';
	put(r, sb, &q, 1);
	const uint8_t *p = (const uint8_t *)s->s;
	size_t i = 0;
	while (i < s->len) {
		int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(s->len - i), &cp);
		if (n <= 0) {
			char b[8];
			snprintf(b, sizeof b, "\\x%02x", p[i]);
			puts_(r, sb, b);
			i++;
			continue;
		}
		char b[16];
		if (cp == q || cp == '\\') {
			b[0] = '\\';
			b[1] = (char)cp;
			put(r, sb, b, 2);
		} else if (cp == '\n') {
			puts_(r, sb, "\\n");
		} else if (cp == '\r') {
			puts_(r, sb, "\\r");
		} else if (cp == '\t') {
			puts_(r, sb, "\\t");
		} else if (py_printable(cp)) {
			put(r, sb, (const char *)p + i, (size_t)n);
		} else if (cp < 0x100) {
			snprintf(b, sizeof b, "\\x%02x", (unsigned)cp);
			puts_(r, sb, b);
		} else if (cp < 0x10000) {
			snprintf(b, sizeof b, "\\u%04x", (unsigned)cp);
			puts_(r, sb, b);
		} else {
			snprintf(b, sizeof b, "\\U%08x", (unsigned)cp);
			puts_(r, sb, b);
		}
		i += (size_t)n;
	}
	put(r, sb, &q, 1);
}

static void write_any(struct jrender *r, struct strbuf *sb, struct jv v,
		      bool repr, int depth)
{
	char buf[32];
	if (depth > JINJA_MAX_DEPTH)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off, "value nested too deeply");
	switch (v.type) {
	case JV_UNDEFINED:
		/* str(Undefined) is "" even for sandbox violations */
		if (repr)
			puts_(r, sb, "Undefined");
		return;
	case JV_NONE: puts_(r, sb, "None"); return;
	case JV_BOOL: puts_(r, sb, v.u.b ? "True" : "False"); return;
	case JV_INT:
		snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
		puts_(r, sb, buf);
		return;
	case JV_FLOAT: {
		struct strbuf t = {0};
		strbuf_init(&t, 64);
		jv_write_float(&t, v.u.f);
		put(r, sb, strbuf_cstr(&t), t.len);
		strbuf_fini(&t);
		return;
	}
	case JV_STR:
		if (repr)
			write_str_repr(r, sb, v.u.s);
		else
			put(r, sb, v.u.s->s, v.u.s->len);
		return;
	case JV_LIST: {
		struct jlist *l = v.u.l;
		put(r, sb, l->is_tuple ? "(" : "[", 1);
		for (size_t i = 0; i < l->n; i++) {
			if (i)
				puts_(r, sb, ", ");
			write_any(r, sb, l->items[i], true, depth + 1);
		}
		if (l->is_tuple && l->n == 1)
			put(r, sb, ",", 1);
		put(r, sb, l->is_tuple ? ")" : "]", 1);
		return;
	}
	case JV_DICT:
	case JV_NS: {
		struct jdict *d = v.u.d;
		if (v.type == JV_NS)
			puts_(r, sb, "<Namespace ");
		put(r, sb, "{", 1);
		for (size_t i = 0; i < d->n; i++) {
			if (i)
				puts_(r, sb, ", ");
			write_any(r, sb, d->keys[i], true, depth + 1);
			puts_(r, sb, ": ");
			write_any(r, sb, d->vals[i], true, depth + 1);
		}
		put(r, sb, "}", 1);
		if (v.type == JV_NS)
			puts_(r, sb, ">");
		return;
	}
	case JV_FUNC:
		snprintf(buf, sizeof buf, "<function %.16s>", v.u.fn->name);
		puts_(r, sb, buf);
		return;
	}
}

void jv_write_str(struct jrender *r, struct strbuf *sb, struct jv v)
{
	write_any(r, sb, v, false, 0);
}

void jv_write_repr(struct jrender *r, struct strbuf *sb, struct jv v)
{
	write_any(r, sb, v, true, 0);
}

struct jv jv_to_str(struct jrender *r, struct jv v)
{
	if (v.type == JV_STR)
		return v;
	struct strbuf *sb = jr_buf(r);
	jv_write_str(r, sb, v);
	struct jv s = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb); /* release now; the list node is arena memory */
	return s;
}

/* ---- json.dumps -------------------------------------------------------- */
static void json_str_write(struct jrender *r, struct strbuf *sb, const char *s,
			size_t len, bool ensure_ascii)
{
	put(r, sb, "\"", 1);
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		char b[16];
		if (c == '"' || c == '\\') {
			b[0] = '\\';
			b[1] = (char)c;
			put(r, sb, b, 2);
		} else if (c == '\n') {
			puts_(r, sb, "\\n");
		} else if (c == '\r') {
			puts_(r, sb, "\\r");
		} else if (c == '\t') {
			puts_(r, sb, "\\t");
		} else if (c == '\b') {
			puts_(r, sb, "\\b");
		} else if (c == '\f') {
			puts_(r, sb, "\\f");
		} else if (c < 0x20) {
			snprintf(b, sizeof b, "\\u%04x", c);
			puts_(r, sb, b);
		} else if (c >= 0x80 && ensure_ascii) {
			int32_t cp;
			utf8proc_ssize_t n = utf8proc_iterate((const uint8_t *)s + i,
							      (utf8proc_ssize_t)(len - i), &cp);
			if (n <= 0) {
				n = 1;
				cp = 0xFFFD;
			}
			if (cp >= 0x10000) {
				uint32_t v = (uint32_t)cp - 0x10000;
				snprintf(b, sizeof b, "\\u%04x\\u%04x",
					 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
			} else {
				snprintf(b, sizeof b, "\\u%04x", (unsigned)cp);
			}
			puts_(r, sb, b);
			i += (size_t)n;
			continue;
		} else {
			put(r, sb, s + i, 1);
		}
		i++;
	}
	put(r, sb, "\"", 1);
}

static void json_newline(struct jrender *r, struct strbuf *sb,
			 const struct jdump_opts *o, int level)
{
	put(r, sb, "\n", 1);
	for (int i = 0; i < level; i++) {
		if (o->indent_str)
			puts_(r, sb, o->indent_str);
		else
			for (int k = 0; k < o->indent; k++)
				put(r, sb, " ", 1);
	}
}

static void json_key(struct jrender *r, struct strbuf *sb, struct jv k,
		     const struct jdump_opts *o)
{
	switch (k.type) {
	case JV_STR: json_str_write(r, sb, k.u.s->s, k.u.s->len, o->ensure_ascii); return;
	case JV_NONE: puts_(r, sb, "\"null\""); return;
	case JV_BOOL: puts_(r, sb, k.u.b ? "\"true\"" : "\"false\""); return;
	case JV_INT:
	case JV_FLOAT: {
		struct strbuf t = {0};
		strbuf_init(&t, 64);
		if (k.type == JV_INT)
			strbuf_printf(&t, "%lld", (long long)k.u.i);
		else
			jv_write_float(&t, k.u.f);
		put(r, sb, "\"", 1);
		put(r, sb, strbuf_cstr(&t), t.len);
		put(r, sb, "\"", 1);
		strbuf_fini(&t);
		return;
	}
	default:
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: keys must be str, int, float, bool or None, not %s",
			   jv_type_name(k));
	}
}

void jv_write_json(struct jrender *r, struct strbuf *sb, struct jv v,
		   const struct jdump_opts *o, int level)
{
	bool pretty = o->indent >= 0 || o->indent_str;
	const char *isep = o->item_sep ? o->item_sep : pretty ? "," : ", ";
	const char *ksep = o->key_sep ? o->key_sep : ": ";
	if (level > JINJA_MAX_DEPTH)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off, "value nested too deeply");
	switch (v.type) {
	case JV_NONE: puts_(r, sb, "null"); return;
	case JV_BOOL: puts_(r, sb, v.u.b ? "true" : "false"); return;
	case JV_INT: {
		char b[32];
		snprintf(b, sizeof b, "%lld", (long long)v.u.i);
		puts_(r, sb, b);
		return;
	}
	case JV_FLOAT:
		if (isnan(v.u.f)) {
			puts_(r, sb, "NaN");
		} else if (isinf(v.u.f)) {
			puts_(r, sb, v.u.f < 0 ? "-Infinity" : "Infinity");
		} else {
			struct strbuf t = {0};
			strbuf_init(&t, 64);
			jv_write_float(&t, v.u.f);
			put(r, sb, strbuf_cstr(&t), t.len);
			strbuf_fini(&t);
		}
		return;
	case JV_STR:
		json_str_write(r, sb, v.u.s->s, v.u.s->len, o->ensure_ascii);
		return;
	case JV_LIST: {
		struct jlist *l = v.u.l;
		if (l->n == 0) {
			puts_(r, sb, "[]");
			return;
		}
		put(r, sb, "[", 1);
		for (size_t i = 0; i < l->n; i++) {
			if (i)
				puts_(r, sb, isep);
			if (pretty)
				json_newline(r, sb, o, level + 1);
			jv_write_json(r, sb, l->items[i], o, level + 1);
		}
		if (pretty)
			json_newline(r, sb, o, level);
		put(r, sb, "]", 1);
		return;
	}
	case JV_DICT: {
		struct jdict *d = v.u.d;
		if (d->n == 0) {
			puts_(r, sb, "{}");
			return;
		}
		size_t *order = jr_alloc(r, d->n * sizeof *order);
		for (size_t i = 0; i < d->n; i++)
			order[i] = i;
		if (o->sort_keys) {
			/* insertion sort: stable, dicts are small */
			for (size_t i = 1; i < d->n; i++) {
				size_t k = order[i], j = i;
				while (j > 0 && jv_compare(r, d->keys[order[j - 1]],
							  d->keys[k]) > 0) {
					order[j] = order[j - 1];
					j--;
				}
				order[j] = k;
			}
		}
		put(r, sb, "{", 1);
		for (size_t i = 0; i < d->n; i++) {
			if (i)
				puts_(r, sb, isep);
			if (pretty)
				json_newline(r, sb, o, level + 1);
			json_key(r, sb, d->keys[order[i]], o);
			puts_(r, sb, ksep);
			jv_write_json(r, sb, d->vals[order[i]], o, level + 1);
		}
		if (pretty)
			json_newline(r, sb, o, level);
		put(r, sb, "}", 1);
		return;
	}
	default:
		if (v.type == JV_UNDEFINED && v.undef_security)
			jv_undefined_error(r, v);
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: Object of type %s is not JSON serializable",
			   jv_type_name(v));
	}
}

/* ---- JSON input -------------------------------------------------------- */
struct jv jv_from_json(struct jrender *r, const void *json)
{
	const json_t *j = json;
	switch (json_typeof(j)) {
	case JSON_NULL: return jv_none();
	case JSON_TRUE: return jv_bool(true);
	case JSON_FALSE: return jv_bool(false);
	case JSON_INTEGER: return jv_int((int64_t)json_integer_value(j));
	case JSON_REAL: return jv_float(json_real_value(j));
	case JSON_STRING:
		return jv_str(r, json_string_value(j), json_string_length(j));
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		struct jv l = jv_list_new(r, n);
		for (size_t i = 0; i < n; i++)
			jv_list_push(r, l, jv_from_json(r, json_array_get(j, i)));
		return l;
	}
	case JSON_OBJECT: {
		struct jv d = jv_dict_new(r, json_object_size(j));
		const char *k;
		json_t *val;
		/* json_object_foreach keeps insertion order when the object was
		 * decoded or built in order (jansson >= 2.8 preserves order). */
		json_object_foreach((json_t *)(uintptr_t)j, k, val) {
			struct jdict *dd = d.u.d;
			/* keys are unique in a jansson object: append directly */
			if (dd->n == dd->cap)
				jv_dict_set(r, d, jv_cstr(r, k), jv_from_json(r, val));
			else {
				dd->keys[dd->n] = jv_cstr(r, k);
				dd->vals[dd->n] = jv_from_json(r, val);
				dd->n++;
			}
		}
		return d;
	}
	}
	return jv_none();
}
