/* inference/jinja_eval.c — compile and render entry points, scopes, and the
 * tree-walking evaluator.
 *
 * Scoping follows Jinja2 as observed from templates: `if` shares its
 * enclosing scope; every `for` iteration gets a fresh child scope (a `set`
 * inside a loop is invisible after the iteration ends — hence namespace());
 * macros and `with` get child scopes; top-level `set` shadows context
 * variables.  Attribute access follows the sandbox's getattr-then-getitem
 * order: `d.items` is the dict method, `d.content` the key; a missing key is
 * Undefined, and using Undefined in arithmetic, calls or attribute access is
 * an UndefinedError, while printing it gives "".
 * Limits: JINJA_MAX_ITERATIONS loop bodies, JINJA_MAX_DEPTH nested calls,
 * JINJA_MAX_OUTPUT_BYTES output, JINJA_MAX_ARENA_BYTES of values.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/utf8.h"
#include "inference/jinja_impl.h"
#include "inference/llm.h"

struct jscope {
	struct jscope *parent;
	size_t n, cap;
	const char **names;
	struct jv *vals;
};

struct jsb {
	struct strbuf sb;
	struct jsb *next;
};

struct strbuf *jr_buf(struct jrender *r)
{
	struct jsb *b = jr_alloc(r, sizeof *b);
	strbuf_init(&b->sb, JINJA_MAX_OUTPUT_BYTES);
	b->next = r->bufs;
	r->bufs = b;
	return &b->sb;
}

void jinja_fail(struct jrender *r, int code, size_t off, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (code == LLM_E_RAISED || off == (size_t)-1) {
		/* raise_exception: the template's own message, verbatim */
		r->err = diag_fail(r->d, code, "%s", msg);
	} else {
		int line, col;
		jinja_line_col(r->src, off, &line, &col);
		r->err = diag_fail(r->d, code, "%s:%d:%d: %s", r->name, line, col,
				   msg);
	}
	longjmp(r->jb, 1);
}

/* ---- scopes ------------------------------------------------------------ */
static struct jscope *scope_new(struct jrender *r, struct jscope *parent)
{
	struct jscope *s = jr_alloc(r, sizeof *s);
	s->parent = parent;
	return s;
}

void jscope_set(struct jrender *r, struct jscope *s, const char *name,
		struct jv v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], name)) {
			s->vals[i] = v;
			return;
		}
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 8;
		const char **nn = jr_alloc(r, nc * sizeof *nn);
		struct jv *nv = jr_alloc(r, nc * sizeof *nv);
		if (s->n) {
			memcpy(nn, s->names, s->n * sizeof *nn);
			memcpy(nv, s->vals, s->n * sizeof *nv);
		}
		s->names = nn;
		s->vals = nv;
		s->cap = nc;
	}
	s->names[s->n] = name;
	s->vals[s->n] = v;
	s->n++;
}

static struct jv *scope_find(struct jscope *s, const char *name)
{
	for (; s; s = s->parent)
		for (size_t i = 0; i < s->n; i++)
			if (!strcmp(s->names[i], name))
				return &s->vals[i];
	return NULL;
}

static const char *fmt_msg(struct jrender *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *fmt_msg(struct jrender *r, const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	size_t n = strlen(buf);
	char *p = jr_alloc(r, n + 1);
	memcpy(p, buf, n + 1);
	return p;
}

/* ---- helpers ----------------------------------------------------------- */
static struct jv eval(struct jrender *r, struct jscope *s, struct jnode *n);
static int exec_body(struct jrender *r, struct jscope *s,
		     const struct jnodes *body);

static const char *obj_desc(struct jv v)
{
	switch (v.type) {
	case JV_DICT: return "'dict object'";
	case JV_LIST: return v.u.l->is_tuple ? "'tuple object'" : "'list object'";
	case JV_STR: return "'str object'";
	case JV_INT: return "'int object'";
	case JV_FLOAT: return "'float object'";
	case JV_BOOL: return "'bool object'";
	case JV_NONE: return "'None'";
	case JV_NS: return "'Namespace object'";
	default: return "'object'";
	}
}

struct jv jv_builtin(struct jrender *r, const char *name, jbuiltin_fn fn,
		     struct jv self)
{
	struct jfunc *f = jr_alloc(r, sizeof *f);
	f->name = name;
	f->fn = fn;
	f->self = self;
	struct jv v = {.type = JV_FUNC};
	v.u.fn = f;
	return v;
}

static struct jv getattr_v(struct jrender *r, struct jv obj, const char *name,
			   size_t len)
{
	bool found = false;
	switch (obj.type) {
	case JV_UNDEFINED:
		jv_undefined_error(r, obj);
	case JV_DICT: {
		struct jv m = jinja_method(r, obj, name, &found);
		if (found)
			return m;
		struct jv *v = jv_dict_gets(obj, name, len);
		if (v)
			return *v;
		break;
	}
	case JV_NS: {
		struct jv *v = jv_dict_gets(obj, name, len);
		if (v)
			return *v;
		break;
	}
	case JV_STR:
	case JV_LIST: {
		struct jv m = jinja_method(r, obj, name, &found);
		if (found)
			return m;
		break;
	}
	default:
		break;
	}
	return jv_undef(fmt_msg(r, "%s has no attribute '%s'", obj_desc(obj), name));
}

static int64_t idx_norm(int64_t i, size_t n)
{
	if (i < 0)
		i += (int64_t)n;
	return i;
}

/* Python slice bounds for length n */
static void slice_bounds(struct jrender *r, struct jv start, struct jv stop,
			 struct jv step, size_t n, int64_t *pa, int64_t *pb,
			 int64_t *pst)
{
	int64_t st = 1, len = (int64_t)n;
	if (step.type != JV_NONE && step.type != JV_UNDEFINED) {
		if (step.type != JV_INT && step.type != JV_BOOL)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "TypeError: slice indices must be integers");
		st = step.type == JV_BOOL ? step.u.b : step.u.i;
		if (st == 0)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "ValueError: slice step cannot be zero");
	}
	int64_t a, b;
	bool has_a = start.type == JV_INT || start.type == JV_BOOL;
	bool has_b = stop.type == JV_INT || stop.type == JV_BOOL;
	if ((start.type != JV_NONE && start.type != JV_UNDEFINED && !has_a) ||
	    (stop.type != JV_NONE && stop.type != JV_UNDEFINED && !has_b))
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: slice indices must be integers or None");
	if (st > 0) {
		a = has_a ? (start.type == JV_BOOL ? start.u.b : start.u.i) : 0;
		b = has_b ? (stop.type == JV_BOOL ? stop.u.b : stop.u.i) : len;
		if (a < 0) { a += len; if (a < 0) a = 0; }
		if (a > len) a = len;
		if (b < 0) { b += len; if (b < 0) b = 0; }
		if (b > len) b = len;
	} else {
		a = has_a ? (start.type == JV_BOOL ? start.u.b : start.u.i) : len - 1;
		b = has_b ? (stop.type == JV_BOOL ? stop.u.b : stop.u.i) : -1;
		if (has_a) {
			if (a < 0) { a += len; if (a < 0) a = -1; }
			if (a >= len) a = len - 1;
		}
		if (has_b) {
			if (b < 0) { b += len; if (b < 0) b = -1; }
			if (b >= len) b = len - 1;
		}
	}
	*pa = a;
	*pb = b;
	*pst = st;
}

static struct jv do_slice(struct jrender *r, struct jv obj, struct jv start,
			  struct jv stop, struct jv step)
{
	int64_t a, b, st;
	if (obj.type == JV_LIST) {
		struct jlist *l = obj.u.l;
		slice_bounds(r, start, stop, step, l->n, &a, &b, &st);
		struct jv out = jv_list_new(r, 0);
		out.u.l->is_tuple = l->is_tuple;
		for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
			jv_list_push(r, out, l->items[i]);
		return out;
	}
	if (obj.type == JV_STR) {
		const char *s = obj.u.s->s;
		size_t len = obj.u.s->len, n = jutf8_count(s, len);
		slice_bounds(r, start, stop, step, n, &a, &b, &st);
		if (n == len) { /* ASCII fast path */
			struct strbuf *sb = jr_buf(r);
			for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
				strbuf_putc(sb, s[i]);
			struct jv v = jv_str(r, strbuf_cstr(sb), sb->len);
			strbuf_fini(sb);
			return v;
		}
		size_t *offs = jr_alloc(r, (n + 1) * sizeof *offs);
		size_t k = 0;
		for (size_t i = 0; i < len; i++)
			if (((unsigned char)s[i] & 0xC0) != 0x80)
				offs[k++] = i;
		offs[n] = len;
		struct strbuf *sb = jr_buf(r);
		for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
			strbuf_append(sb, s + offs[i], offs[i + 1] - offs[i]);
		struct jv v = jv_str(r, strbuf_cstr(sb), sb->len);
		strbuf_fini(sb);
		return v;
	}
	if (obj.type == JV_UNDEFINED)
		jv_undefined_error(r, obj);
	return jv_undef(fmt_msg(r, "%s is not subscriptable", obj_desc(obj)));
}

struct jv jinja_getitem(struct jrender *r, struct jv obj, struct jv key)
{
	switch (obj.type) {
	case JV_UNDEFINED:
		jv_undefined_error(r, obj);
	case JV_DICT:
	case JV_NS: {
		struct jv *v = jv_dict_get(obj, key);
		if (v)
			return *v;
		break;
	}
	case JV_LIST:
		if (key.type == JV_INT || key.type == JV_BOOL) {
			int64_t i = idx_norm(key.type == JV_INT ? key.u.i : key.u.b,
					     obj.u.l->n);
			if (i >= 0 && (size_t)i < obj.u.l->n)
				return obj.u.l->items[i];
			return jv_undef(fmt_msg(r, "%s has no element %lld",
						obj_desc(obj), (long long)key.u.i));
		}
		break;
	case JV_STR:
		if (key.type == JV_INT || key.type == JV_BOOL) {
			size_t n = jutf8_count(obj.u.s->s, obj.u.s->len);
			int64_t i = idx_norm(key.type == JV_INT ? key.u.i : key.u.b, n);
			if (i >= 0 && (size_t)i < n) {
				size_t a = jutf8_offset(obj.u.s->s, obj.u.s->len, (size_t)i);
				size_t b = jutf8_offset(obj.u.s->s, obj.u.s->len, (size_t)i + 1);
				return jv_str(r, obj.u.s->s + a, b - a);
			}
			return jv_undef(fmt_msg(r, "%s has no element %lld",
						obj_desc(obj), (long long)key.u.i));
		}
		break;
	default:
		break;
	}
	if (key.type == JV_STR && obj.type != JV_NS)
		return getattr_v(r, obj, key.u.s->s, key.u.s->len);
	if (key.type == JV_STR)
		return jv_undef(fmt_msg(r, "%s has no attribute '%s'", obj_desc(obj),
					key.u.s->s));
	return jv_undef(fmt_msg(r, "%s has no element", obj_desc(obj)));
}

/* Iterate: list items, dict keys, string characters; Undefined is empty. */
struct jv jinja_to_list(struct jrender *r, struct jv v)
{
	switch (v.type) {
	case JV_LIST:
		return v;
	case JV_DICT: {
		struct jv l = jv_list_new(r, v.u.d->n);
		for (size_t i = 0; i < v.u.d->n; i++)
			jv_list_push(r, l, v.u.d->keys[i]);
		return l;
	}
	case JV_STR: {
		const char *s = v.u.s->s;
		size_t len = v.u.s->len;
		struct jv l = jv_list_new(r, len);
		for (size_t i = 0; i < len;) {
			size_t k = i + 1;
			while (k < len && ((unsigned char)s[k] & 0xC0) == 0x80)
				k++;
			jv_list_push(r, l, jv_str(r, s + i, k - i));
			i = k;
		}
		return l;
	}
	case JV_UNDEFINED:
		if (v.undef_security)
			jv_undefined_error(r, v);
		return jv_list_new(r, 0);
	default:
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: '%s' object is not iterable", jv_type_name(v));
	}
}

static bool contains(struct jrender *r, struct jv item, struct jv box)
{
	switch (box.type) {
	case JV_STR:
		if (item.type != JV_STR)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "TypeError: 'in <string>' requires string as left operand, not %s",
				   jv_type_name(item));
		if (item.u.s->len == 0)
			return true;
		return memmem(box.u.s->s, box.u.s->len, item.u.s->s,
			      item.u.s->len) != NULL;
	case JV_LIST:
		for (size_t i = 0; i < box.u.l->n; i++)
			if (jv_equal(box.u.l->items[i], item))
				return true;
		return false;
	case JV_DICT:
	case JV_NS:
		return jv_dict_get(box, item) != NULL;
	case JV_UNDEFINED:
		if (box.undef_security)
			jv_undefined_error(r, box);
		return false;
	default:
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: argument of type '%s' is not iterable",
			   jv_type_name(box));
	}
}

static bool is_number(struct jv v)
{
	return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL;
}

static double fval(struct jv v)
{
	return v.type == JV_FLOAT ? v.u.f : v.type == JV_INT ? (double)v.u.i : v.u.b;
}

static int64_t ival(struct jv v)
{
	return v.type == JV_INT ? v.u.i : v.u.b;
}

_Noreturn static void type_err(struct jrender *r, const char *op, struct jv a,
			       struct jv b)
{
	jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
		   "TypeError: unsupported operand type(s) for %s: '%s' and '%s'",
		   op, jv_type_name(a), jv_type_name(b));
}

static struct jv repeat(struct jrender *r, struct jv seq, int64_t k)
{
	if (k < 0)
		k = 0;
	if (seq.type == JV_STR) {
		size_t len = seq.u.s->len;
		if (len && (uint64_t)k > JINJA_MAX_OUTPUT_BYTES / len)
			jinja_fail(r, LLM_E_LIMIT, r->cur_off, "string repetition too large");
		struct jstr *s = jr_alloc(r, sizeof *s + len * (size_t)k + 1);
		for (int64_t i = 0; i < k; i++)
			memcpy(s->s + (size_t)i * len, seq.u.s->s, len);
		s->len = len * (size_t)k;
		struct jv v = {.type = JV_STR};
		v.u.s = s;
		return v;
	}
	size_t n = seq.u.l->n;
	if (n && (uint64_t)k > 10000000 / n)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off, "list repetition too large");
	struct jv out = jv_list_new(r, n * (size_t)k);
	out.u.l->is_tuple = seq.u.l->is_tuple;
	for (int64_t i = 0; i < k; i++)
		for (size_t j = 0; j < n; j++)
			jv_list_push(r, out, seq.u.l->items[j]);
	return out;
}

static struct jv binop(struct jrender *r, int op, struct jv a, struct jv b)
{
	static const char *const names[] = {
		[JO_ADD] = "+", [JO_SUB] = "-", [JO_MUL] = "*", [JO_DIV] = "/",
		[JO_FLOORDIV] = "//", [JO_MOD] = "%", [JO_POW] = "**",
	};
	if (a.type == JV_UNDEFINED)
		jv_undefined_error(r, a);
	if (b.type == JV_UNDEFINED)
		jv_undefined_error(r, b);
	bool nums = is_number(a) && is_number(b);
	bool flt = nums && (a.type == JV_FLOAT || b.type == JV_FLOAT);
	switch (op) {
	case JO_ADD:
		if (nums) {
			if (flt)
				return jv_float(fval(a) + fval(b));
			int64_t res;
			if (__builtin_add_overflow(ival(a), ival(b), &res))
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "integer overflow");
			return jv_int(res);
		}
		if (a.type == JV_STR && b.type == JV_STR) {
			size_t n = a.u.s->len + b.u.s->len;
			if (n > JINJA_MAX_OUTPUT_BYTES)
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "string too long");
			struct jstr *s = jr_alloc(r, sizeof *s + n + 1);
			memcpy(s->s, a.u.s->s, a.u.s->len);
			memcpy(s->s + a.u.s->len, b.u.s->s, b.u.s->len);
			s->len = n;
			struct jv v = {.type = JV_STR};
			v.u.s = s;
			return v;
		}
		if (a.type == JV_LIST && b.type == JV_LIST &&
		    a.u.l->is_tuple == b.u.l->is_tuple) {
			struct jv out = jv_list_new(r, a.u.l->n + b.u.l->n);
			out.u.l->is_tuple = a.u.l->is_tuple;
			for (size_t i = 0; i < a.u.l->n; i++)
				jv_list_push(r, out, a.u.l->items[i]);
			for (size_t i = 0; i < b.u.l->n; i++)
				jv_list_push(r, out, b.u.l->items[i]);
			return out;
		}
		if (a.type == JV_STR || b.type == JV_STR)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "TypeError: can only concatenate str (not \"%s\") to str",
				   jv_type_name(a.type == JV_STR ? b : a));
		type_err(r, names[op], a, b);
	case JO_SUB:
		if (!nums)
			type_err(r, names[op], a, b);
		if (flt)
			return jv_float(fval(a) - fval(b));
		{
			int64_t res;
			if (__builtin_sub_overflow(ival(a), ival(b), &res))
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "integer overflow");
			return jv_int(res);
		}
	case JO_MUL:
		if (nums) {
			if (flt)
				return jv_float(fval(a) * fval(b));
			int64_t res;
			if (__builtin_mul_overflow(ival(a), ival(b), &res))
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "integer overflow");
			return jv_int(res);
		}
		if ((a.type == JV_STR || a.type == JV_LIST) &&
		    (b.type == JV_INT || b.type == JV_BOOL))
			return repeat(r, a, ival(b));
		if ((b.type == JV_STR || b.type == JV_LIST) &&
		    (a.type == JV_INT || a.type == JV_BOOL))
			return repeat(r, b, ival(a));
		type_err(r, names[op], a, b);
	case JO_DIV:
		if (!nums)
			type_err(r, names[op], a, b);
		if (fval(b) == 0.0)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "ZeroDivisionError: division by zero");
		return jv_float(fval(a) / fval(b));
	case JO_FLOORDIV:
	case JO_MOD:
		if (!nums)
			type_err(r, names[op], a, b);
		if (fval(b) == 0.0)
			jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
				   "ZeroDivisionError: integer division or modulo by zero");
		if (flt) {
			double x = fval(a), y = fval(b);
			double m = fmod(x, y);
			if (m != 0 && ((m < 0) != (y < 0)))
				m += y;
			if (op == JO_MOD)
				return jv_float(m);
			return jv_float(floor(x / y));
		} else {
			int64_t x = ival(a), y = ival(b);
			if (x == INT64_MIN && y == -1)
				jinja_fail(r, LLM_E_LIMIT, r->cur_off, "integer overflow");
			int64_t q = x / y, m = x % y;
			if (m != 0 && ((m < 0) != (y < 0))) {
				q--;
				m += y;
			}
			return jv_int(op == JO_MOD ? m : q);
		}
	case JO_POW:
		if (!nums)
			type_err(r, names[op], a, b);
		if (!flt && ival(b) >= 0) {
			int64_t base = ival(a), e = ival(b), res = 1;
			while (e > 0) {
				if (__builtin_mul_overflow(res, base, &res))
					jinja_fail(r, LLM_E_LIMIT, r->cur_off, "integer overflow");
				e--;
			}
			return jv_int(res);
		}
		return jv_float(pow(fval(a), fval(b)));
	}
	type_err(r, "?", a, b);
}

/* ---- calls ------------------------------------------------------------- */
static void eval_args(struct jrender *r, struct jscope *s, struct jnode *n,
		      struct jcall_args *a)
{
	memset(a, 0, sizeof *a);
	a->n_pos = n->items.n;
	if (a->n_pos) {
		a->pos = jr_alloc(r, a->n_pos * sizeof *a->pos);
		for (size_t i = 0; i < a->n_pos; i++)
			a->pos[i] = eval(r, s, n->items.v[i]);
	}
	a->n_kw = n->kw.n;
	if (a->n_kw) {
		a->kw = jr_alloc(r, a->n_kw * sizeof *a->kw);
		a->kw_names = jr_alloc(r, a->n_kw * sizeof *a->kw_names);
		for (size_t i = 0; i < a->n_kw; i++) {
			a->kw_names[i] = n->kw.v[i]->str;
			a->kw[i] = eval(r, s, n->kw.v[i]->a);
		}
	}
}

struct jv *jargs_get(struct jcall_args *a, size_t pos, const char *kw)
{
	if (pos < a->n_pos)
		return &a->pos[pos];
	if (kw)
		for (size_t i = 0; i < a->n_kw; i++)
			if (!strcmp(a->kw_names[i], kw))
				return &a->kw[i];
	return NULL;
}

static struct jv render_to_string(struct jrender *r, struct jscope *s,
				  const struct jnodes *body)
{
	struct strbuf *saved = r->out;
	struct strbuf *sb = jr_buf(r);
	r->out = sb;
	exec_body(r, s, body);
	r->out = saved;
	struct jv v = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return v;
}

static struct jv call_macro(struct jrender *r, struct jfunc *f,
			    struct jcall_args *a)
{
	struct jnode *m = f->macro;
	if (++r->depth > JINJA_MAX_DEPTH)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off,
			   "maximum recursion depth (%d) exceeded", JINJA_MAX_DEPTH);
	struct jscope *s = scope_new(r, f->closure);
	size_t np = m->params.n;
	struct jv varargs = jv_list_new(r, 0);
	varargs.u.l->is_tuple = true;
	struct jv kwargs = jv_dict_new(r, 0);
	for (size_t i = 0; i < np; i++) {
		struct jnode *p = m->params.v[i];
		struct jv *v = jargs_get(a, i, NULL);
		if (!v)
			for (size_t k = 0; k < a->n_kw; k++)
				if (!strcmp(a->kw_names[k], p->str))
					v = &a->kw[k];
		struct jv val;
		if (v)
			val = *v;
		else if (p->a)
			val = eval(r, s, p->a);
		else
			val = jv_undef(fmt_msg(r, "parameter '%s' was not provided", p->str));
		jscope_set(r, s, p->str, val);
	}
	for (size_t i = np; i < a->n_pos; i++)
		jv_list_push(r, varargs, a->pos[i]);
	for (size_t k = 0; k < a->n_kw; k++) {
		bool named = false;
		for (size_t i = 0; i < np; i++)
			if (!strcmp(a->kw_names[k], m->params.v[i]->str))
				named = true;
		if (!named)
			jv_dict_set(r, kwargs, jv_cstr(r, a->kw_names[k]), a->kw[k]);
	}
	jscope_set(r, s, "varargs", varargs);
	jscope_set(r, s, "kwargs", kwargs);
	if (f->caller_block) {
		struct jfunc *c = jr_alloc(r, sizeof *c);
		c->name = "caller";
		c->macro = f->caller_block;
		c->closure = f->caller_scope;
		struct jv cv = {.type = JV_FUNC};
		cv.u.fn = c;
		jscope_set(r, s, "caller", cv);
	}
	struct jv out = render_to_string(r, s, &m->body);
	r->depth--;
	return out;
}

struct jv jinja_call(struct jrender *r, struct jv fn, struct jcall_args *a)
{
	if (fn.type == JV_UNDEFINED)
		jv_undefined_error(r, fn);
	if (fn.type == JV_DICT) { /* recursive loop: loop(children) */
		struct jv *info = jv_dict_gets(fn, "\x01info", 5);
		if (info)
			fn = *info;
	}
	if (fn.type != JV_FUNC)
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off,
			   "TypeError: '%s' object is not callable", jv_type_name(fn));
	if (fn.u.fn->macro)
		return call_macro(r, fn.u.fn, a);
	return fn.u.fn->fn(r, fn.u.fn->self, a);
}

/* ---- expressions ------------------------------------------------------- */
static struct jv eval(struct jrender *r, struct jscope *s, struct jnode *n)
{
	size_t saved_off = r->cur_off;
	r->cur_off = n->off;
	struct jv v;
	switch (n->kind) {
	case JN_CONST:
		v = n->val;
		break;
	case JN_NAME: {
		struct jv *p = scope_find(s, n->str);
		v = p ? *p : jv_undef(fmt_msg(r, "'%s' is undefined", n->str));
		break;
	}
	case JN_GETATTR:
		v = getattr_v(r, eval(r, s, n->a), n->str, strlen(n->str));
		break;
	case JN_GETITEM: {
		struct jv obj = eval(r, s, n->a);
		if (n->b->kind == JN_SLICE) {
			struct jnode *sl = n->b;
			struct jv a = sl->a ? eval(r, s, sl->a) : jv_none();
			struct jv b = sl->b ? eval(r, s, sl->b) : jv_none();
			struct jv c = sl->c ? eval(r, s, sl->c) : jv_none();
			r->cur_off = n->off;
			v = do_slice(r, obj, a, b, c);
		} else {
			struct jv key = eval(r, s, n->b);
			r->cur_off = n->off;
			v = jinja_getitem(r, obj, key);
		}
		break;
	}
	case JN_LIST:
	case JN_TUPLE:
		v = jv_list_new(r, n->items.n);
		v.u.l->is_tuple = n->kind == JN_TUPLE;
		for (size_t i = 0; i < n->items.n; i++)
			jv_list_push(r, v, eval(r, s, n->items.v[i]));
		break;
	case JN_DICT:
		v = jv_dict_new(r, n->items.n);
		for (size_t i = 0; i < n->items.n; i++) {
			struct jv k = eval(r, s, n->items.v[i]->a);
			jv_dict_set(r, v, k, eval(r, s, n->items.v[i]->b));
		}
		break;
	case JN_BINOP: {
		struct jv a = eval(r, s, n->a), b = eval(r, s, n->b);
		r->cur_off = n->off;
		v = binop(r, n->op, a, b);
		break;
	}
	case JN_NEG:
	case JN_POS: {
		struct jv a = eval(r, s, n->a);
		r->cur_off = n->off;
		if (a.type == JV_UNDEFINED)
			jv_undefined_error(r, a);
		if (a.type == JV_FLOAT)
			v = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
		else if (a.type == JV_INT || a.type == JV_BOOL)
			v = jv_int(n->kind == JN_NEG ? -ival(a) : ival(a));
		else
			jinja_fail(r, LLM_E_TEMPLATE, n->off,
				   "TypeError: bad operand type for unary %c: '%s'",
				   n->kind == JN_NEG ? '-' : '+', jv_type_name(a));
		break;
	}
	case JN_NOT:
		v = jv_bool(!jv_truthy(r, eval(r, s, n->a)));
		break;
	case JN_AND: {
		struct jv a = eval(r, s, n->a);
		v = jv_truthy(r, a) ? eval(r, s, n->b) : a;
		break;
	}
	case JN_OR: {
		struct jv a = eval(r, s, n->a);
		v = jv_truthy(r, a) ? a : eval(r, s, n->b);
		break;
	}
	case JN_COMPARE: {
		struct jv left = eval(r, s, n->a);
		v = jv_bool(true);
		for (size_t i = 0; i < n->items.n; i++) {
			struct jnode *o = n->items.v[i];
			struct jv right = eval(r, s, o->a);
			r->cur_off = o->off;
			bool ok;
			switch (o->op) {
			case JO_EQ: ok = jv_equal(left, right); break;
			case JO_NE: ok = !jv_equal(left, right); break;
			case JO_LT: ok = jv_compare(r, left, right) < 0; break;
			case JO_LE: ok = jv_compare(r, left, right) <= 0; break;
			case JO_GT: ok = jv_compare(r, left, right) > 0; break;
			case JO_GE: ok = jv_compare(r, left, right) >= 0; break;
			case JO_IN: ok = contains(r, left, right); break;
			default: ok = !contains(r, left, right); break;
			}
			if (!ok) {
				v = jv_bool(false);
				break;
			}
			left = right;
		}
		break;
	}
	case JN_CONCAT: {
		struct strbuf *sb = jr_buf(r);
		for (size_t i = 0; i < n->items.n; i++) {
			struct jv x = eval(r, s, n->items.v[i]);
			jv_write_str(r, sb, x);
		}
		v = jv_str(r, strbuf_cstr(sb), sb->len);
		strbuf_fini(sb);
		break;
	}
	case JN_COND:
		if (jv_truthy(r, eval(r, s, n->b)))
			v = eval(r, s, n->a);
		else if (n->c)
			v = eval(r, s, n->c);
		else
			v = jv_undef("the inline if-expression evaluated to false and no else section was defined.");
		break;
	case JN_FILTER: {
		struct jv x = n->a ? eval(r, s, n->a) : r->blockval;
		struct jcall_args a;
		eval_args(r, s, n, &a);
		r->cur_off = n->off;
		v = jinja_apply_filter(r, n->str, x, &a);
		break;
	}
	case JN_TEST: {
		struct jcall_args a;
		struct jv x = eval(r, s, n->a);
		eval_args(r, s, n, &a);
		r->cur_off = n->off;
		bool t = jinja_apply_test(r, n->str, x, &a);
		v = jv_bool(n->op ? !t : t);
		break;
	}
	case JN_CALL: {
		struct jv fn = eval(r, s, n->a);
		struct jcall_args a;
		eval_args(r, s, n, &a);
		r->cur_off = n->off;
		v = jinja_call(r, fn, &a);
		break;
	}
	case JN_BLOCKVAL:
		v = r->blockval;
		break;
	default:
		jinja_fail(r, LLM_E_TEMPLATE, n->off, "unexpected node %d", (int)n->kind);
	}
	r->cur_off = saved_off;
	return v;
}

/* ---- statements -------------------------------------------------------- */
enum { FLOW_NORMAL = 0, FLOW_BREAK, FLOW_CONTINUE };

static void assign(struct jrender *r, struct jscope *s, struct jnode *target,
		   struct jv v)
{
	if (target->kind == JN_NAME) {
		jscope_set(r, s, target->str, v);
		return;
	}
	if (target->kind == JN_GETATTR) {
		struct jv *ns = scope_find(s, target->a->str);
		if (!ns || ns->type != JV_NS)
			jinja_fail(r, LLM_E_TEMPLATE, target->off,
				   "cannot assign attribute on non-namespace object");
		jv_dict_set(r, *ns, jv_cstr(r, target->str), v);
		return;
	}
	/* tuple unpacking */
	struct jv l = jinja_to_list(r, v);
	if (l.u.l->n != target->items.n)
		jinja_fail(r, LLM_E_TEMPLATE, target->off,
			   "ValueError: %s values to unpack (expected %zu, got %zu)",
			   l.u.l->n > target->items.n ? "too many" : "not enough",
			   target->items.n, l.u.l->n);
	for (size_t i = 0; i < target->items.n; i++)
		jscope_set(r, s, target->items.v[i]->str, l.u.l->items[i]);
}

struct loopinfo {
	struct jnode *node;
	struct jscope *scope;
	int depth;
	struct jv last_changed;
	bool has_changed;
};

static void run_loop(struct jrender *r, struct jscope *s, struct jnode *n,
		     struct jv iterable, int depth);

static struct jv loop_cycle(struct jrender *r, struct jv self,
			    struct jcall_args *a)
{
	struct jv *idx = jv_dict_gets(self, "index0", 6);
	if (a->n_pos == 0)
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off, "no items for cycling given");
	return a->pos[(size_t)idx->u.i % a->n_pos];
}

static struct jv loop_changed(struct jrender *r, struct jv self,
			      struct jcall_args *a)
{
	struct jv *info = jv_dict_gets(self, "\x01info", 5);
	struct loopinfo *li = info->u.fn->extra;
	struct jv t = jv_list_new(r, a->n_pos);
	for (size_t i = 0; i < a->n_pos; i++)
		jv_list_push(r, t, a->pos[i]);
	if (li->has_changed && jv_equal(li->last_changed, t))
		return jv_bool(false);
	li->has_changed = true;
	li->last_changed = t;
	return jv_bool(true);
}

static struct jv loop_recurse(struct jrender *r, struct jv self,
			      struct jcall_args *a)
{
	struct jv *info = jv_dict_gets(self, "\x01info", 5);
	struct loopinfo *li = info->u.fn->extra;
	if (a->n_pos != 1)
		jinja_fail(r, LLM_E_TEMPLATE, r->cur_off, "loop() takes one argument");
	if (++r->depth > JINJA_MAX_DEPTH)
		jinja_fail(r, LLM_E_LIMIT, r->cur_off, "maximum recursion depth exceeded");
	struct strbuf *saved = r->out;
	struct strbuf *sb = jr_buf(r);
	r->out = sb;
	run_loop(r, li->scope, li->node, a->pos[0], li->depth + 1);
	r->out = saved;
	r->depth--;
	struct jv v = jv_str(r, strbuf_cstr(sb), sb->len);
	strbuf_fini(sb);
	return v;
}

static void run_loop(struct jrender *r, struct jscope *s, struct jnode *n,
		     struct jv iterable, int depth)
{
	struct jv items = jinja_to_list(r, iterable);
	if (n->c) { /* {% for x in xs if cond %}: filter before counting */
		struct jv kept = jv_list_new(r, items.u.l->n);
		for (size_t i = 0; i < items.u.l->n; i++) {
			struct jscope *fs = scope_new(r, s);
			assign(r, fs, n->a, items.u.l->items[i]);
			if (jv_truthy(r, eval(r, fs, n->c)))
				jv_list_push(r, kept, items.u.l->items[i]);
		}
		items = kept;
	}
	size_t len = items.u.l->n;
	struct loopinfo *li = jr_alloc(r, sizeof *li);
	li->node = n;
	li->scope = s;
	li->depth = depth;
	struct jv info = jv_builtin(r, "loop", loop_recurse, jv_none());
	info.u.fn->extra = li;
	if (len == 0) {
		exec_body(r, scope_new(r, s), &n->else_body);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (++r->iterations > JINJA_MAX_ITERATIONS)
			jinja_fail(r, LLM_E_LIMIT, n->off,
				   "more than %ld loop iterations", JINJA_MAX_ITERATIONS);
		struct jscope *is = scope_new(r, s);
		assign(r, is, n->a, items.u.l->items[i]);
		struct jv loop = jv_dict_new(r, 16);
		struct jv dself = loop;
#define LSET(k, v) jv_dict_set(r, loop, jv_cstr(r, k), v)
		LSET("index", jv_int((int64_t)i + 1));
		LSET("index0", jv_int((int64_t)i));
		LSET("revindex", jv_int((int64_t)(len - i)));
		LSET("revindex0", jv_int((int64_t)(len - i - 1)));
		LSET("first", jv_bool(i == 0));
		LSET("last", jv_bool(i + 1 == len));
		LSET("length", jv_int((int64_t)len));
		LSET("depth", jv_int(depth));
		LSET("depth0", jv_int(depth - 1));
		if (i > 0)
			LSET("previtem", items.u.l->items[i - 1]);
		if (i + 1 < len)
			LSET("nextitem", items.u.l->items[i + 1]);
		LSET("\x01info", info);
		LSET("cycle", jv_builtin(r, "cycle", loop_cycle, dself));
		LSET("changed", jv_builtin(r, "changed", loop_changed, dself));
#undef LSET
		/* `loop(...)` in recursive loops calls the info function */
		struct jv lv = loop;
		jscope_set(r, is, "loop", lv);
		int flow = exec_body(r, is, &n->body);
		if (flow == FLOW_BREAK)
			break;
	}
}

static int exec_stmt(struct jrender *r, struct jscope *s, struct jnode *n)
{
	r->cur_off = n->off;
	switch (n->kind) {
	case JN_TEXT:
		if (strbuf_append(r->out, n->str, n->len) != 0)
			jinja_fail(r, LLM_E_LIMIT, n->off, "output larger than %zu bytes",
				   r->out->max ? r->out->max : STRBUF_DEFAULT_MAX);
		return FLOW_NORMAL;
	case JN_OUTPUT: {
		struct jv v = eval(r, s, n->a);
		jv_write_str(r, r->out, v);
		return FLOW_NORMAL;
	}
	case JN_IF:
		if (jv_truthy(r, eval(r, s, n->a)))
			return exec_body(r, s, &n->body);
		return exec_body(r, s, &n->else_body);
	case JN_FOR:
		run_loop(r, s, n, eval(r, s, n->b), 1);
		return FLOW_NORMAL;
	case JN_SET:
		assign(r, s, n->a, eval(r, s, n->b));
		return FLOW_NORMAL;
	case JN_SET_BLOCK: {
		struct jv v = render_to_string(r, s, &n->body);
		if (n->c) {
			struct jv saved = r->blockval;
			r->blockval = v;
			v = eval(r, s, n->c);
			r->blockval = saved;
		}
		assign(r, s, n->a, v);
		return FLOW_NORMAL;
	}
	case JN_MACRO: {
		struct jfunc *f = jr_alloc(r, sizeof *f);
		f->name = n->str;
		f->macro = n;
		f->closure = s;
		struct jv v = {.type = JV_FUNC};
		v.u.fn = f;
		jscope_set(r, s, n->str, v);
		return FLOW_NORMAL;
	}
	case JN_CALL_BLOCK: {
		struct jnode *call = n->a;
		struct jv fn = eval(r, s, call->a);
		if (fn.type != JV_FUNC || !fn.u.fn->macro)
			jinja_fail(r, LLM_E_TEMPLATE, n->off, "{%% call %%} needs a macro");
		struct jfunc *f = jr_alloc(r, sizeof *f);
		*f = *fn.u.fn;
		f->caller_block = n; /* n->params and n->body form the caller */
		f->caller_scope = s;
		struct jcall_args a;
		eval_args(r, s, call, &a);
		r->cur_off = n->off;
		struct jv out = call_macro(r, f, &a);
		jv_write_str(r, r->out, out);
		return FLOW_NORMAL;
	}
	case JN_FILTER_BLOCK: {
		struct jv body = render_to_string(r, s, &n->body);
		struct jv saved = r->blockval;
		r->blockval = body;
		struct jv v = eval(r, s, n->a);
		r->blockval = saved;
		jv_write_str(r, r->out, v);
		return FLOW_NORMAL;
	}
	case JN_WITH: {
		struct jscope *ws = scope_new(r, s);
		for (size_t i = 0; i < n->params.n; i++)
			jscope_set(r, ws, n->params.v[i]->str, eval(r, s, n->params.v[i]->a));
		return exec_body(r, ws, &n->body);
	}
	case JN_BODY:
		return exec_body(r, s, &n->body);
	case JN_BREAK:
		return FLOW_BREAK;
	case JN_CONTINUE:
		return FLOW_CONTINUE;
	default:
		jinja_fail(r, LLM_E_TEMPLATE, n->off, "unexpected statement");
	}
}

static int exec_body(struct jrender *r, struct jscope *s,
		     const struct jnodes *body)
{
	for (size_t i = 0; i < body->n; i++) {
		int f = exec_stmt(r, s, body->v[i]);
		if (f != FLOW_NORMAL)
			return f;
	}
	return FLOW_NORMAL;
}

/* ---- entry points ------------------------------------------------------ */
static void check_names(struct jcompile *cm, struct jnode *n, int depth)
{
	if (!n || depth > 10000)
		return;
	if (n->kind == JN_FILTER && !jinja_filter_exists(n->str))
		jinja_syntax_error(cm, n->off, "No filter named '%s'.", n->str);
	if (n->kind == JN_TEST && !jinja_test_exists(n->str))
		jinja_syntax_error(cm, n->off, "No test named '%s'.", n->str);
	check_names(cm, n->a, depth + 1);
	check_names(cm, n->b, depth + 1);
	check_names(cm, n->c, depth + 1);
	const struct jnodes *ls[] = {&n->items, &n->kw, &n->body, &n->else_body,
				     &n->params};
	for (size_t k = 0; k < 5; k++)
		for (size_t i = 0; i < ls[k]->n; i++)
			check_names(cm, ls[k]->v[i], depth + 1);
}

int jinja_compile(const char *src, size_t len, const char *name,
		  struct jinja_template **out, struct diag *d)
{
	*out = NULL;
	if (!name)
		name = "<template>";
	if (len > JINJA_MAX_SOURCE_BYTES)
		return diag_fail(d, LLM_E_LIMIT, "%s: template larger than %zu bytes",
				 name, JINJA_MAX_SOURCE_BYTES);
	if (!utf8_valid(src, len))
		return diag_fail(d, LLM_E_TEMPLATE, "%s: template is not valid UTF-8",
				 name);
	struct jinja_template *t = calloc(1, sizeof *t);
	if (!t)
		return diag_fail(d, LLM_E_NOMEM, "%s: out of memory", name);
	jarena_init(&t->arena, JINJA_MAX_ARENA_BYTES);
	t->name = strdup(name);
	t->src = malloc(len + 1);
	if (!t->name || !t->src) {
		jinja_template_free(t);
		return diag_fail(d, LLM_E_NOMEM, "%s: out of memory", name);
	}
	/* Jinja normalises \r\n and \r to \n and drops one trailing newline
	 * (keep_trailing_newline=False). */
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			t->src[k++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			t->src[k++] = src[i];
		}
	}
	if (k > 0 && t->src[k - 1] == '\n')
		k--;
	t->src[k] = 0;
	t->len = k;

	struct jcompile *cm = calloc(1, sizeof *cm);
	if (!cm) {
		jinja_template_free(t);
		return diag_fail(d, LLM_E_NOMEM, "%s: out of memory", name);
	}
	cm->arena = &t->arena;
	cm->src = t->src;
	cm->len = t->len;
	cm->name = t->name;
	cm->d = d;
	if (setjmp(cm->jb)) {
		int err = cm->err ? cm->err : LLM_E_TEMPLATE;
		free(cm);
		jinja_template_free(t);
		return err;
	}
	jinja_lex(cm);
	t->root = jinja_parse(cm);
	check_names(cm, t->root, 0);
	free(cm);
	*out = t;
	return 0;
}

void jinja_template_free(struct jinja_template *t)
{
	if (!t)
		return;
	jarena_fini(&t->arena);
	free(t->src);
	free(t->name);
	free(t);
}

int jinja_render_json(const struct jinja_template *t, const void *ctx,
		      char **out, size_t *out_len, struct diag *d)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!json_is_object((const json_t *)ctx))
		return diag_fail(d, LLM_E_INVALID, "%s: context is not a JSON object",
				 t->name);
	struct jrender *r = calloc(1, sizeof *r);
	struct strbuf *result = calloc(1, sizeof *result);
	if (!r || !result) {
		free(r);
		free(result);
		return diag_fail(d, LLM_E_NOMEM, "%s: out of memory", t->name);
	}
	strbuf_init(result, JINJA_MAX_OUTPUT_BYTES);
	jarena_init(&r->arena, JINJA_MAX_ARENA_BYTES);
	r->src = t->src;
	r->name = t->name;
	r->d = d;
	r->out = result;
	r->cur_off = (size_t)-1;
	int rc = 0;
	if (setjmp(r->jb)) {
		rc = r->err ? r->err : LLM_E_TEMPLATE;
	} else {
		struct jscope *g = scope_new(r, NULL);
		jinja_add_globals(r, g);
		r->globals = g;
		struct jscope *top = scope_new(r, g);
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)(uintptr_t)ctx, k, v) {
			size_t n = strlen(k);
			char *name = jr_alloc(r, n + 1);
			memcpy(name, k, n + 1);
			jscope_set(r, top, name, jv_from_json(r, v));
		}
		exec_body(r, top, &t->root->body);
	}
	for (struct jsb *b = r->bufs; b; b = b->next)
		strbuf_fini(&b->sb);
	jarena_fini(&r->arena);
	free(r);
	if (rc == 0) {
		size_t n = 0;
		char *s = strbuf_take(result, &n);
		if (!s)
			rc = diag_fail(d, LLM_E_NOMEM, "%s: out of memory", t->name);
		*out = s;
		if (out_len)
			*out_len = n;
	}
	strbuf_fini(result);
	free(result);
	return rc;
}
