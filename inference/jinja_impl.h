/* inference/jinja_impl.h — internals of the chat-template interpreter.
 *
 * The interpreter is a sandboxed subset of Jinja2 configured exactly as
 * transformers' render_jinja_template configures it: trim_blocks,
 * lstrip_blocks, the loopcontrols extension, an ImmutableSandboxedEnvironment
 * (lists and dicts cannot be mutated from a template), a json.dumps-based
 * tojson, and the raise_exception / strftime_now globals.
 *
 * Pipeline: jinja_lex.c (source -> tokens, whitespace control applied),
 * jinja_parse.c (tokens -> AST), jinja_eval.c (tree-walking evaluator),
 * jinja_value.c (values, Python str()/repr()/json.dumps, comparisons),
 * jinja_filters.c (filters, tests, methods, globals).
 *
 * Memory: every allocation goes to a `struct jarena` (bump allocator with a
 * byte cap).  The compiled template owns one arena (tokens, AST, constants);
 * each render owns another that is dropped as a whole at the end, so values
 * never need individual frees and a failed render cannot leak.
 *
 * Errors inside lexer, parser and evaluator unwind with longjmp to the entry
 * point (jinja_compile / jinja_render), which turns them into LLM_E_* codes
 * with a diag message; nothing outside those two entry points sees a jmp_buf.
 * Only arena memory and the output strbuf are live across a longjmp, and both
 * are released by the entry point.
 */
#ifndef TERN_INFERENCE_JINJA_IMPL_H
#define TERN_INFERENCE_JINJA_IMPL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "common/strbuf.h"

/* ---- limits (a template must not hang or exhaust memory) -------------- */
#define JINJA_MAX_OUTPUT_BYTES ((size_t)64 << 20)  /* rendered text */
#define JINJA_MAX_ARENA_BYTES ((size_t)512 << 20)  /* all values of a render */
#define JINJA_MAX_ITERATIONS 10000000L             /* loop bodies per render */
#define JINJA_MAX_DEPTH 200                        /* macro/eval recursion */
#define JINJA_MAX_SOURCE_BYTES ((size_t)4 << 20)   /* template text */

/* ---- arena ------------------------------------------------------------- */
struct jarena_chunk;
struct jarena {
	struct jarena_chunk *head;
	size_t used_bytes; /* total requested so far */
	size_t max_bytes;  /* cap; exceeding it is an LLM_E_LIMIT error */
};
void jarena_init(struct jarena *a, size_t max_bytes);
void jarena_fini(struct jarena *a);
/* NULL when out of memory or over the cap; memory is zeroed, 16-aligned. */
void *jarena_alloc(struct jarena *a, size_t n);

/* ---- values ------------------------------------------------------------ */
enum jv_type {
	JV_UNDEFINED = 0, /* zero value is undefined */
	JV_NONE,
	JV_BOOL,
	JV_INT,
	JV_FLOAT,
	JV_STR,
	JV_LIST,  /* list or tuple (jlist.is_tuple) */
	JV_DICT,  /* ordered dict */
	JV_NS,    /* namespace(): a mutable dict with identity */
	JV_FUNC,  /* builtin function, bound method, macro, loop helper */
};

struct jstr {
	size_t len;
	char s[]; /* NUL-terminated */
};
struct jv;
struct jlist {
	size_t n, cap;
	struct jv *items;
	bool is_tuple;
};
struct jdict {
	size_t n, cap;
	struct jv *keys;
	struct jv *vals;
};
struct jfunc;

struct jv {
	enum jv_type type;
	union {
		bool b;
		int64_t i;
		double f;
		struct jstr *s;
		struct jlist *l;
		struct jdict *d; /* JV_DICT and JV_NS */
		struct jfunc *fn;
		const char *undef_msg; /* why undefined (NULL: generic) */
	} u;
	/* JV_UNDEFINED only: 1 when any use must raise (sandbox violation) */
	int undef_security;
};

struct jrender;

/* A callable: builtin (fn != NULL) or macro (macro != NULL). */
struct jnode;
struct jscope;
struct jcall_args {
	size_t n_pos;
	struct jv *pos;
	size_t n_kw;
	const char **kw_names;
	struct jv *kw;
};
typedef struct jv (*jbuiltin_fn)(struct jrender *r, struct jv self,
				 struct jcall_args *args);
struct jfunc {
	const char *name;
	jbuiltin_fn fn;       /* builtin or bound method */
	struct jv self;       /* receiver of a bound method */
	struct jnode *macro;  /* macro or caller definition */
	struct jscope *closure;
	struct jnode *caller_block; /* for macros invoked via {% call %} */
	struct jscope *caller_scope;
	void *extra;          /* loop state for loop.cycle / loop() */
};

/* ---- lexer ------------------------------------------------------------- */
enum jtok_type {
	JT_EOF,
	JT_DATA,
	JT_VAR_BEGIN,
	JT_VAR_END,
	JT_BLOCK_BEGIN,
	JT_BLOCK_END,
	JT_NAME,
	JT_STRING,
	JT_INT,
	JT_FLOAT,
	JT_OP,
};
/* operator codes (JT_OP) */
enum jop {
	JO_ADD = 1, JO_SUB, JO_DIV, JO_FLOORDIV, JO_MUL, JO_MOD, JO_POW,
	JO_TILDE, JO_LBRACKET, JO_RBRACKET, JO_LPAREN, JO_RPAREN, JO_LBRACE,
	JO_RBRACE, JO_EQ, JO_NE, JO_GT, JO_GE, JO_LT, JO_LE, JO_ASSIGN, JO_DOT,
	JO_COLON, JO_PIPE, JO_COMMA, JO_SEMICOLON,
	/* compare-only pseudo operators */
	JO_IN, JO_NOTIN,
};

struct jtok {
	enum jtok_type type;
	size_t off;       /* byte offset in the (normalised) source */
	const char *s;    /* NAME / STRING (unescaped) / DATA text */
	size_t len;
	int op;           /* JT_OP */
	int64_t i;        /* JT_INT */
	double f;         /* JT_FLOAT */
};

/* Compile-time state shared by lexer and parser. */
struct jcompile {
	struct jarena *arena;
	const char *src; /* normalised: "\n" newlines, one trailing "\n" cut */
	size_t len;
	const char *name; /* for messages */
	struct jtok *toks;
	size_t n_toks, cap_toks;
	size_t pos; /* parser cursor */
	int depth;  /* parser recursion, capped at JINJA_MAX_DEPTH */
	jmp_buf jb;
	struct diag *d;
	int err;
};
/* longjmp to cm->jb with LLM_E_TEMPLATE and "name:LINE:COL: msg". */
_Noreturn void jinja_syntax_error(struct jcompile *cm, size_t off,
				  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void jinja_lex(struct jcompile *cm);
struct jnode *jinja_parse(struct jcompile *cm);
void jinja_line_col(const char *src, size_t off, int *line, int *col);

/* ---- AST --------------------------------------------------------------- */
enum jn_kind {
	/* statements */
	JN_TEXT,      /* str */
	JN_OUTPUT,    /* a */
	JN_IF,        /* a=cond, body, else_body */
	JN_FOR,       /* a=target, b=iter, c=filter, body, else_body, op=recursive */
	JN_SET,       /* a=target, b=value */
	JN_SET_BLOCK, /* a=target, body, c=filter chain (on JN_BLOCKVAL) */
	JN_MACRO,     /* str=name, params, body */
	JN_CALL_BLOCK,/* a=call expr, params, body */
	JN_FILTER_BLOCK, /* a=filter chain applied to JN_BLOCKVAL, body */
	JN_WITH,      /* params (name=str, a=value), body */
	JN_BREAK,
	JN_CONTINUE,
	JN_BODY,      /* plain statement list (block tags) */
	/* expressions */
	JN_CONST,     /* val */
	JN_NAME,      /* str */
	JN_GETATTR,   /* a, str */
	JN_GETITEM,   /* a, b (b may be JN_SLICE) */
	JN_SLICE,     /* a=start, b=stop, c=step (each may be NULL) */
	JN_LIST,      /* items */
	JN_TUPLE,     /* items */
	JN_DICT,      /* items: JN_PAIR nodes (a=key, b=value) */
	JN_PAIR,
	JN_BINOP,     /* op, a, b */
	JN_NEG,       /* a */
	JN_POS,       /* a */
	JN_NOT,       /* a */
	JN_AND,       /* a, b */
	JN_OR,        /* a, b */
	JN_COMPARE,   /* a, items: JN_CMPOP (op, a=operand) */
	JN_CMPOP,
	JN_CONCAT,    /* items */
	JN_COND,      /* a=then, b=cond, c=else (may be NULL) */
	JN_FILTER,    /* a=operand (NULL inside filter blocks), str, items, kw */
	JN_TEST,      /* a=operand, str, items, kw, op=negated */
	JN_CALL,      /* a=callee, items, kw */
	JN_KWARG,     /* str=name, a=value (kwargs and macro params) */
	JN_BLOCKVAL,  /* the body text of a filter/set block */
};

struct jnodes {
	size_t n, cap;
	struct jnode **v;
};

struct jnode {
	enum jn_kind kind;
	size_t off; /* source offset for messages */
	int op;
	const char *str;
	size_t len;
	struct jv val;
	struct jnode *a, *b, *c;
	struct jnodes items;     /* list items, call args, compare ops */
	struct jnodes kw;        /* keyword args */
	struct jnodes body;      /* statement list */
	struct jnodes else_body; /* statement list */
	struct jnodes params;    /* macro/call/with parameters (JN_KWARG) */
};

/* ---- render state ------------------------------------------------------ */
struct jrender {
	struct jarena arena;
	struct strbuf *out; /* current output (macro calls redirect it) */
	const char *src;    /* template source (for line:col) */
	const char *name;
	jmp_buf jb;
	struct diag *d;
	int err;
	long iterations;
	int depth;
	struct jscope *globals;
	size_t cur_off; /* node being evaluated, for errors in helpers */
	struct jsb *bufs;    /* scratch buffers, freed when the render ends */
	struct jv blockval;  /* body text of the filter/set block being run */
};
/* A scratch strbuf (capped at JINJA_MAX_OUTPUT_BYTES) released with the
 * render, so that unwinding cannot leak it. */
struct strbuf *jr_buf(struct jrender *r);
/* 1 when NAME is a known filter / test (checked at compile time, as Jinja
 * does, so that an unknown filter fails even in an untaken branch). */
int jinja_filter_exists(const char *name);
int jinja_test_exists(const char *name);

/* Unwind the render with CODE and a message at source offset OFF
 * (SIZE_MAX: no location). */
_Noreturn void jinja_fail(struct jrender *r, int code, size_t off,
			  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* allocation helpers that unwind on failure */
void *jr_alloc(struct jrender *r, size_t n);
struct jv jv_str(struct jrender *r, const char *s, size_t len);
struct jv jv_cstr(struct jrender *r, const char *s);
struct jv jv_list_new(struct jrender *r, size_t cap);
void jv_list_push(struct jrender *r, struct jv list, struct jv item);
struct jv jv_dict_new(struct jrender *r, size_t cap);
void jv_dict_set(struct jrender *r, struct jv dict, struct jv key,
		 struct jv val);
/* NULL when absent */
struct jv *jv_dict_get(struct jv dict, struct jv key);
struct jv *jv_dict_gets(struct jv dict, const char *key, size_t len);

static inline struct jv jv_undef(const char *msg)
{
	struct jv v = {.type = JV_UNDEFINED};
	v.u.undef_msg = msg;
	return v;
}
static inline struct jv jv_none(void)
{
	struct jv v = {.type = JV_NONE};
	return v;
}
static inline struct jv jv_bool(bool b)
{
	struct jv v = {.type = JV_BOOL};
	v.u.b = b;
	return v;
}
static inline struct jv jv_int(int64_t i)
{
	struct jv v = {.type = JV_INT};
	v.u.i = i;
	return v;
}
static inline struct jv jv_float(double f)
{
	struct jv v = {.type = JV_FLOAT};
	v.u.f = f;
	return v;
}

/* Python semantics */
bool jv_truthy(struct jrender *r, struct jv v);
bool jv_equal(struct jv a, struct jv b);
/* <0, 0, >0; unwinds with a TypeError when not orderable */
int jv_compare(struct jrender *r, struct jv a, struct jv b);
const char *jv_type_name(struct jv v); /* Python type name: 'dict', 'str' */
/* str(v) appended to sb (undefined -> ""); unwinds on overflow */
void jv_write_str(struct jrender *r, struct strbuf *sb, struct jv v);
void jv_write_repr(struct jrender *r, struct strbuf *sb, struct jv v);
struct jv jv_to_str(struct jrender *r, struct jv v); /* str(v) */
void jv_write_float(struct strbuf *sb, double f);   /* Python repr(float) */
/* json.dumps(v, ensure_ascii, indent (<0: None; indent_str used when
 * non-NULL), separators, sort_keys) */
struct jdump_opts {
	bool ensure_ascii;
	int indent; /* <0: None */
	const char *indent_str;
	const char *item_sep; /* NULL: default */
	const char *key_sep;
	bool sort_keys;
};
void jv_write_json(struct jrender *r, struct strbuf *sb, struct jv v,
		   const struct jdump_opts *o, int level);
/* Convert parsed JSON (a json_t *) into a value. */
struct jv jv_from_json(struct jrender *r, const void *json);
/* Unwinds when the undefined value must raise on use. */
_Noreturn void jv_undefined_error(struct jrender *r, struct jv v);
void jv_check_defined(struct jrender *r, struct jv v);

/* code points of a UTF-8 string (invalid bytes count as one each) */
size_t jutf8_count(const char *s, size_t len);
/* byte offset of the code point with index cp (<= count) */
size_t jutf8_offset(const char *s, size_t len, size_t cp);

/* ---- filters, tests, methods, globals (jinja_filters.c) ---------------- */
struct jv jinja_apply_filter(struct jrender *r, const char *name,
			     struct jv v, struct jcall_args *args);
bool jinja_apply_test(struct jrender *r, const char *name, struct jv v,
		      struct jcall_args *args);
/* Attribute lookup of a method (str/dict/list methods); sets *found. */
struct jv jinja_method(struct jrender *r, struct jv self, const char *name,
		       bool *found);
/* Install globals (range, namespace, dict, raise_exception, ...) */
void jinja_add_globals(struct jrender *r, struct jscope *g);
/* obj[key] with Jinja's fallback to getattr for string keys */
struct jv jinja_getitem(struct jrender *r, struct jv obj, struct jv key);
/* list items / dict keys / string characters; Undefined -> [] */
struct jv jinja_to_list(struct jrender *r, struct jv v);
struct jv jinja_call(struct jrender *r, struct jv fn, struct jcall_args *a);
void jscope_set(struct jrender *r, struct jscope *s, const char *name,
		struct jv v);
/* argument helper: positional index or keyword name; NULL when absent */
struct jv *jargs_get(struct jcall_args *a, size_t pos, const char *kw);
struct jv jv_builtin(struct jrender *r, const char *name, jbuiltin_fn fn,
		     struct jv self);

/* ---- top level (jinja_eval.c) ------------------------------------------ */
struct jinja_template {
	struct jarena arena;
	char *src;
	size_t len;
	char *name;
	struct jnode *root; /* JN_BODY */
};
int jinja_compile(const char *src, size_t len, const char *name,
		  struct jinja_template **out, struct diag *d);
void jinja_template_free(struct jinja_template *t);
/* ctx: a json_t * object (borrowed); output in *out (malloc'd) */
int jinja_render_json(const struct jinja_template *t, const void *ctx,
		      char **out, size_t *out_len, struct diag *d);

#endif
