/* inference/jinja_parse.c — tokens -> AST (recursive descent).
 *
 * Follows jinja2.parser's grammar and precedence so that expressions group
 * exactly as in Python Jinja:
 *   condexpr:  or ['if' or ['else' condexpr]]
 *   or/and/not, compare chains (== != < <= > >= in, not in),
 *   math1 (+ -), concat (~), math2 (* / // %), pow (** left-assoc),
 *   unary (- +) then postfix (. [] ()) then filters/tests/calls, so that
 *   `'a' + x | trim` is `'a' + (x | trim)` and `-x|abs` is `(-x)|abs`.
 * Statements: for/if/elif/else/set (incl. block set and ns.attr targets)/
 * macro/call/filter/with/block/break/continue.  Anything else (extends,
 * include, import) is a syntax error: there is no loader in the sandbox.
 * Invariant: every node and string lives in the compile arena.
 */
#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "inference/jinja_impl.h"
#include "inference/llm.h"

static struct jtok *cur(struct jcompile *cm)
{
	return &cm->toks[cm->pos];
}

static struct jtok *next(struct jcompile *cm)
{
	struct jtok *t = &cm->toks[cm->pos];
	if (t->type != JT_EOF)
		cm->pos++;
	return t;
}

static bool is_op(struct jcompile *cm, int op)
{
	return cur(cm)->type == JT_OP && cur(cm)->op == op;
}

static bool is_name(struct jcompile *cm, const char *name)
{
	struct jtok *t = cur(cm);
	return t->type == JT_NAME && strcmp(t->s, name) == 0;
}

static bool skip_op(struct jcompile *cm, int op)
{
	if (is_op(cm, op)) {
		cm->pos++;
		return true;
	}
	return false;
}

static bool skip_name(struct jcompile *cm, const char *name)
{
	if (is_name(cm, name)) {
		cm->pos++;
		return true;
	}
	return false;
}

static const char *tok_desc(struct jtok *t)
{
	switch (t->type) {
	case JT_EOF: return "end of template";
	case JT_DATA: return "template data";
	case JT_VAR_BEGIN: return "begin of print statement";
	case JT_VAR_END: return "end of print statement";
	case JT_BLOCK_BEGIN: return "begin of statement block";
	case JT_BLOCK_END: return "end of statement block";
	case JT_NAME: return t->s;
	case JT_STRING: return "string";
	case JT_INT: return "integer";
	case JT_FLOAT: return "float";
	case JT_OP: return "operator";
	}
	return "token";
}

static void expect_op(struct jcompile *cm, int op, const char *what)
{
	if (!skip_op(cm, op))
		jinja_syntax_error(cm, cur(cm)->off, "expected token '%s', got '%s'",
				   what, tok_desc(cur(cm)));
}

static void expect_block_end(struct jcompile *cm)
{
	if (cur(cm)->type != JT_BLOCK_END)
		jinja_syntax_error(cm, cur(cm)->off,
				   "expected token 'end of statement block', got '%s'",
				   tok_desc(cur(cm)));
	cm->pos++;
}

static const char *expect_ident(struct jcompile *cm)
{
	struct jtok *t = cur(cm);
	if (t->type != JT_NAME)
		jinja_syntax_error(cm, t->off, "expected name, got '%s'",
				   tok_desc(t));
	cm->pos++;
	return t->s;
}

static struct jnode *mk(struct jcompile *cm, enum jn_kind kind, size_t off)
{
	struct jnode *n = jarena_alloc(cm->arena, sizeof *n);
	if (!n) {
		cm->err = diag_fail(cm->d, LLM_E_NOMEM, "%s: out of memory",
				    cm->name);
		longjmp(cm->jb, 1);
	}
	n->kind = kind;
	n->off = off;
	return n;
}

static void add(struct jcompile *cm, struct jnodes *l, struct jnode *n)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4;
		struct jnode **nv = jarena_alloc(cm->arena, nc * sizeof *nv);
		if (!nv) {
			cm->err = diag_fail(cm->d, LLM_E_NOMEM, "out of memory");
			longjmp(cm->jb, 1);
		}
		if (l->n)
			memcpy(nv, l->v, l->n * sizeof *nv);
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = n;
}

static struct jnode *parse_expr(struct jcompile *cm);
static struct jnode *parse_or(struct jcompile *cm);
static struct jnode *parse_unary(struct jcompile *cm, bool with_filter);
static struct jnode *parse_primary(struct jcompile *cm);
static struct jnode *parse_postfix(struct jcompile *cm, struct jnode *n);
static struct jnode *parse_filter_expr(struct jcompile *cm, struct jnode *n);
static struct jnode *parse_tuple(struct jcompile *cm, bool simplified,
				 bool with_condexpr, bool explicit_parens);

static struct jnode *parse_expr(struct jcompile *cm)
{
	size_t off = cur(cm)->off;
	/* nesting is bounded so that parser and evaluator stacks are */
	if (++cm->depth > JINJA_MAX_DEPTH)
		jinja_syntax_error(cm, off, "expression or block nested too deeply");
	struct jnode *e = parse_or(cm);
	while (skip_name(cm, "if")) {
		struct jnode *c = mk(cm, JN_COND, off);
		c->a = e;
		c->b = parse_or(cm);
		if (skip_name(cm, "else"))
			c->c = parse_expr(cm);
		e = c;
	}
	cm->depth--;
	return e;
}

static struct jnode *parse_not(struct jcompile *cm);

static struct jnode *parse_and(struct jcompile *cm)
{
	struct jnode *l = parse_not(cm);
	while (is_name(cm, "and")) {
		struct jnode *n = mk(cm, JN_AND, next(cm)->off);
		n->a = l;
		n->b = parse_not(cm);
		l = n;
	}
	return l;
}

static struct jnode *parse_or(struct jcompile *cm)
{
	struct jnode *l = parse_and(cm);
	while (is_name(cm, "or")) {
		struct jnode *n = mk(cm, JN_OR, next(cm)->off);
		n->a = l;
		n->b = parse_and(cm);
		l = n;
	}
	return l;
}

static struct jnode *parse_math1(struct jcompile *cm);

static struct jnode *parse_compare(struct jcompile *cm)
{
	size_t off = cur(cm)->off;
	struct jnode *e = parse_math1(cm);
	struct jnode *cmp = NULL;
	for (;;) {
		int op = 0;
		struct jtok *t = cur(cm);
		if (t->type == JT_OP && (t->op == JO_EQ || t->op == JO_NE ||
					 t->op == JO_LT || t->op == JO_LE ||
					 t->op == JO_GT || t->op == JO_GE)) {
			op = t->op;
			cm->pos++;
		} else if (is_name(cm, "in")) {
			op = JO_IN;
			cm->pos++;
		} else if (is_name(cm, "not") &&
			   cm->toks[cm->pos + 1].type == JT_NAME &&
			   strcmp(cm->toks[cm->pos + 1].s, "in") == 0) {
			op = JO_NOTIN;
			cm->pos += 2;
		} else {
			break;
		}
		if (!cmp) {
			cmp = mk(cm, JN_COMPARE, off);
			cmp->a = e;
		}
		struct jnode *o = mk(cm, JN_CMPOP, t->off);
		o->op = op;
		o->a = parse_math1(cm);
		add(cm, &cmp->items, o);
	}
	return cmp ? cmp : e;
}

static struct jnode *parse_not(struct jcompile *cm)
{
	if (is_name(cm, "not")) {
		struct jnode *n = mk(cm, JN_NOT, next(cm)->off);
		if (++cm->depth > JINJA_MAX_DEPTH)
			jinja_syntax_error(cm, n->off, "expression nested too deeply");
		n->a = parse_not(cm);
		cm->depth--;
		return n;
	}
	return parse_compare(cm);
}

static struct jnode *binop(struct jcompile *cm, int op, size_t off,
			   struct jnode *a, struct jnode *b)
{
	struct jnode *n = mk(cm, JN_BINOP, off);
	n->op = op;
	n->a = a;
	n->b = b;
	return n;
}

static struct jnode *parse_pow(struct jcompile *cm)
{
	struct jnode *l = parse_unary(cm, true);
	while (is_op(cm, JO_POW)) {
		size_t off = next(cm)->off;
		l = binop(cm, JO_POW, off, l, parse_unary(cm, true));
	}
	return l;
}

static struct jnode *parse_math2(struct jcompile *cm)
{
	struct jnode *l = parse_pow(cm);
	while (is_op(cm, JO_MUL) || is_op(cm, JO_DIV) ||
	       is_op(cm, JO_FLOORDIV) || is_op(cm, JO_MOD)) {
		struct jtok *t = next(cm);
		l = binop(cm, t->op, t->off, l, parse_pow(cm));
	}
	return l;
}

static struct jnode *parse_concat(struct jcompile *cm)
{
	size_t off = cur(cm)->off;
	struct jnode *l = parse_math2(cm);
	if (!is_op(cm, JO_TILDE))
		return l;
	struct jnode *n = mk(cm, JN_CONCAT, off);
	add(cm, &n->items, l);
	while (skip_op(cm, JO_TILDE))
		add(cm, &n->items, parse_math2(cm));
	return n;
}

static struct jnode *parse_math1(struct jcompile *cm)
{
	struct jnode *l = parse_concat(cm);
	while (is_op(cm, JO_ADD) || is_op(cm, JO_SUB)) {
		struct jtok *t = next(cm);
		l = binop(cm, t->op, t->off, l, parse_concat(cm));
	}
	return l;
}

static struct jnode *parse_unary(struct jcompile *cm, bool with_filter)
{
	struct jnode *n;
	if (++cm->depth > JINJA_MAX_DEPTH)
		jinja_syntax_error(cm, cur(cm)->off, "expression nested too deeply");
	if (is_op(cm, JO_SUB)) {
		n = mk(cm, JN_NEG, next(cm)->off);
		n->a = parse_unary(cm, false);
	} else if (is_op(cm, JO_ADD)) {
		n = mk(cm, JN_POS, next(cm)->off);
		n->a = parse_unary(cm, false);
	} else {
		n = parse_primary(cm);
	}
	n = parse_postfix(cm, n);
	if (with_filter)
		n = parse_filter_expr(cm, n);
	cm->depth--;
	return n;
}

static struct jnode *konst(struct jcompile *cm, size_t off, struct jv v)
{
	struct jnode *n = mk(cm, JN_CONST, off);
	n->val = v;
	return n;
}

static struct jnode *parse_primary(struct jcompile *cm)
{
	struct jtok *t = cur(cm);
	struct jnode *n;
	switch (t->type) {
	case JT_NAME:
		cm->pos++;
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
			return konst(cm, t->off, jv_bool(true));
		if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
			return konst(cm, t->off, jv_bool(false));
		if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
			return konst(cm, t->off, jv_none());
		n = mk(cm, JN_NAME, t->off);
		n->str = t->s;
		n->len = t->len;
		return n;
	case JT_STRING: {
		/* adjacent string literals concatenate */
		size_t total = 0, k = cm->pos;
		while (cm->toks[k].type == JT_STRING)
			total += cm->toks[k++].len;
		struct jstr *s = jarena_alloc(cm->arena, sizeof *s + total + 1);
		if (!s) {
			cm->err = diag_fail(cm->d, LLM_E_NOMEM, "out of memory");
			longjmp(cm->jb, 1);
		}
		s->len = 0;
		while (cur(cm)->type == JT_STRING) {
			memcpy(s->s + s->len, cur(cm)->s, cur(cm)->len);
			s->len += cur(cm)->len;
			cm->pos++;
		}
		s->s[s->len] = 0;
		struct jv v = {.type = JV_STR};
		v.u.s = s;
		return konst(cm, t->off, v);
	}
	case JT_INT:
		cm->pos++;
		return konst(cm, t->off, jv_int(t->i));
	case JT_FLOAT:
		cm->pos++;
		return konst(cm, t->off, jv_float(t->f));
	case JT_OP:
		if (t->op == JO_LPAREN) {
			cm->pos++;
			n = parse_tuple(cm, false, true, true);
			expect_op(cm, JO_RPAREN, ")");
			return n;
		}
		if (t->op == JO_LBRACKET) {
			cm->pos++;
			n = mk(cm, JN_LIST, t->off);
			while (!is_op(cm, JO_RBRACKET)) {
				if (n->items.n)
					expect_op(cm, JO_COMMA, ",");
				if (is_op(cm, JO_RBRACKET))
					break;
				add(cm, &n->items, parse_expr(cm));
			}
			expect_op(cm, JO_RBRACKET, "]");
			return n;
		}
		if (t->op == JO_LBRACE) {
			cm->pos++;
			n = mk(cm, JN_DICT, t->off);
			while (!is_op(cm, JO_RBRACE)) {
				if (n->items.n)
					expect_op(cm, JO_COMMA, ",");
				if (is_op(cm, JO_RBRACE))
					break;
				struct jnode *p = mk(cm, JN_PAIR, cur(cm)->off);
				p->a = parse_expr(cm);
				expect_op(cm, JO_COLON, ":");
				p->b = parse_expr(cm);
				add(cm, &n->items, p);
			}
			expect_op(cm, JO_RBRACE, "}");
			return n;
		}
		break;
	default:
		break;
	}
	jinja_syntax_error(cm, t->off, "unexpected '%s'", tok_desc(t));
}

/* (expr, expr, ...) — a tuple when a comma appears or parentheses are
 * empty; `simplified` restricts items to primaries (for targets). */
static struct jnode *parse_tuple(struct jcompile *cm, bool simplified,
				 bool with_condexpr, bool explicit_parens)
{
	size_t off = cur(cm)->off;
	struct jnodes items = {0};
	bool is_tuple = false;
	for (;;) {
		if (items.n)
			expect_op(cm, JO_COMMA, ",");
		struct jtok *t = cur(cm);
		if (t->type == JT_VAR_END || t->type == JT_BLOCK_END ||
		    (t->type == JT_OP && t->op == JO_RPAREN) ||
		    (t->type == JT_NAME && (!strcmp(t->s, "in") ||
					    !strcmp(t->s, "recursive") ||
					    (!with_condexpr && !strcmp(t->s, "if")))))
			break;
		struct jnode *e;
		if (simplified)
			e = parse_primary(cm);
		else if (with_condexpr)
			e = parse_expr(cm);
		else
			e = parse_or(cm);
		add(cm, &items, e);
		if (is_op(cm, JO_COMMA))
			is_tuple = true;
		else
			break;
	}
	if (!is_tuple) {
		if (items.n)
			return items.v[0];
		if (!explicit_parens)
			jinja_syntax_error(cm, cur(cm)->off, "Expected an expression, got '%s'",
					   tok_desc(cur(cm)));
	}
	struct jnode *n = mk(cm, JN_TUPLE, off);
	n->items = items;
	return n;
}

static void parse_call_args(struct jcompile *cm, struct jnode *n)
{
	expect_op(cm, JO_LPAREN, "(");
	while (!is_op(cm, JO_RPAREN)) {
		if (n->items.n || n->kw.n)
			expect_op(cm, JO_COMMA, ",");
		if (is_op(cm, JO_RPAREN))
			break;
		if (is_op(cm, JO_MUL) || is_op(cm, JO_POW))
			jinja_syntax_error(cm, cur(cm)->off,
					   "*args and **kwargs are not supported");
		if (cur(cm)->type == JT_NAME &&
		    cm->toks[cm->pos + 1].type == JT_OP &&
		    cm->toks[cm->pos + 1].op == JO_ASSIGN) {
			struct jnode *k = mk(cm, JN_KWARG, cur(cm)->off);
			k->str = cur(cm)->s;
			cm->pos += 2;
			k->a = parse_expr(cm);
			add(cm, &n->kw, k);
		} else {
			if (n->kw.n)
				jinja_syntax_error(cm, cur(cm)->off,
						   "positional argument after keyword argument");
			add(cm, &n->items, parse_expr(cm));
		}
	}
	expect_op(cm, JO_RPAREN, ")");
}

static struct jnode *parse_subscript_arg(struct jcompile *cm)
{
	size_t off = cur(cm)->off;
	struct jnode *start = NULL, *stop = NULL, *step = NULL;
	if (!is_op(cm, JO_COLON)) {
		start = parse_expr(cm);
		if (!is_op(cm, JO_COLON))
			return start;
	}
	cm->pos++; /* ':' */
	if (!is_op(cm, JO_RBRACKET) && !is_op(cm, JO_COMMA) && !is_op(cm, JO_COLON))
		stop = parse_expr(cm);
	if (skip_op(cm, JO_COLON)) {
		if (!is_op(cm, JO_RBRACKET) && !is_op(cm, JO_COMMA))
			step = parse_expr(cm);
	}
	struct jnode *s = mk(cm, JN_SLICE, off);
	s->a = start;
	s->b = stop;
	s->c = step;
	return s;
}

static struct jnode *parse_postfix(struct jcompile *cm, struct jnode *n)
{
	for (;;) {
		struct jtok *t = cur(cm);
		if (t->type != JT_OP)
			break;
		if (t->op == JO_DOT) {
			cm->pos++;
			struct jtok *a = cur(cm);
			if (a->type == JT_NAME) {
				struct jnode *g = mk(cm, JN_GETATTR, t->off);
				g->a = n;
				g->str = a->s;
				g->len = a->len;
				cm->pos++;
				n = g;
			} else if (a->type == JT_INT) {
				struct jnode *g = mk(cm, JN_GETITEM, t->off);
				g->a = n;
				g->b = konst(cm, a->off, jv_int(a->i));
				cm->pos++;
				n = g;
			} else {
				jinja_syntax_error(cm, a->off, "expected name or number");
			}
		} else if (t->op == JO_LBRACKET) {
			cm->pos++;
			struct jnode *g = mk(cm, JN_GETITEM, t->off);
			g->a = n;
			struct jnodes args = {0};
			while (!is_op(cm, JO_RBRACKET)) {
				if (args.n)
					expect_op(cm, JO_COMMA, ",");
				add(cm, &args, parse_subscript_arg(cm));
				if (!is_op(cm, JO_COMMA))
					break;
			}
			expect_op(cm, JO_RBRACKET, "]");
			if (args.n == 0)
				jinja_syntax_error(cm, t->off, "expected subscript expression");
			if (args.n == 1) {
				g->b = args.v[0];
			} else {
				g->b = mk(cm, JN_TUPLE, t->off);
				g->b->items = args;
			}
			n = g;
		} else if (t->op == JO_LPAREN) {
			struct jnode *c = mk(cm, JN_CALL, t->off);
			c->a = n;
			parse_call_args(cm, c);
			n = c;
		} else {
			break;
		}
	}
	return n;
}

static const char *dotted_name(struct jcompile *cm)
{
	const char *name = expect_ident(cm);
	while (is_op(cm, JO_DOT)) {
		cm->pos++;
		const char *more = expect_ident(cm);
		size_t a = strlen(name), b = strlen(more);
		char *s = jarena_alloc(cm->arena, a + b + 2);
		if (!s) {
			cm->err = diag_fail(cm->d, LLM_E_NOMEM, "out of memory");
			longjmp(cm->jb, 1);
		}
		memcpy(s, name, a);
		s[a] = '.';
		memcpy(s + a + 1, more, b + 1);
		name = s;
	}
	return name;
}

static struct jnode *parse_filter(struct jcompile *cm, struct jnode *operand,
				  bool start_inline)
{
	while (is_op(cm, JO_PIPE) || start_inline) {
		if (!start_inline)
			cm->pos++;
		start_inline = false;
		struct jnode *f = mk(cm, JN_FILTER, cur(cm)->off);
		f->str = dotted_name(cm);
		f->a = operand;
		if (is_op(cm, JO_LPAREN))
			parse_call_args(cm, f);
		operand = f;
	}
	return operand;
}

static struct jnode *parse_test(struct jcompile *cm, struct jnode *operand)
{
	struct jnode *t = mk(cm, JN_TEST, next(cm)->off); /* 'is' */
	if (skip_name(cm, "not"))
		t->op = 1;
	t->str = dotted_name(cm);
	t->a = operand;
	struct jtok *c = cur(cm);
	if (is_op(cm, JO_LPAREN)) {
		parse_call_args(cm, t);
	} else if ((c->type == JT_NAME || c->type == JT_STRING ||
		    c->type == JT_INT || c->type == JT_FLOAT ||
		    (c->type == JT_OP && (c->op == JO_LPAREN ||
					  c->op == JO_LBRACKET ||
					  c->op == JO_LBRACE))) &&
		   !(c->type == JT_NAME &&
		     (!strcmp(c->s, "else") || !strcmp(c->s, "or") ||
		      !strcmp(c->s, "and")))) {
		if (c->type == JT_NAME && !strcmp(c->s, "is"))
			jinja_syntax_error(cm, c->off,
					   "You cannot chain multiple tests with is");
		struct jnode *arg = parse_postfix(cm, parse_primary(cm));
		add(cm, &t->items, arg);
	}
	return t;
}

static struct jnode *parse_filter_expr(struct jcompile *cm, struct jnode *n)
{
	for (;;) {
		if (is_op(cm, JO_PIPE)) {
			n = parse_filter(cm, n, false);
		} else if (is_name(cm, "is")) {
			n = parse_test(cm, n);
		} else if (is_op(cm, JO_LPAREN)) {
			struct jnode *c = mk(cm, JN_CALL, cur(cm)->off);
			c->a = n;
			parse_call_args(cm, c);
			n = c;
		} else {
			break;
		}
	}
	return n;
}

/* ---- statements -------------------------------------------------------- */

/* Parse statements until a block tag whose first name is in `ends`
 * (NULL-terminated); leaves the cursor on that name (after '{%'). */
static void parse_body(struct jcompile *cm, struct jnodes *body,
		       const char *const *ends);

static struct jnode *parse_assign_target(struct jcompile *cm, bool allow_attr,
					 bool allow_tuple)
{
	size_t off = cur(cm)->off;
	if (allow_attr && cur(cm)->type == JT_NAME &&
	    cm->toks[cm->pos + 1].type == JT_OP &&
	    cm->toks[cm->pos + 1].op == JO_DOT) {
		struct jnode *n = mk(cm, JN_GETATTR, off);
		n->a = mk(cm, JN_NAME, off);
		n->a->str = expect_ident(cm);
		cm->pos++;
		n->str = expect_ident(cm);
		return n;
	}
	if (allow_tuple) {
		struct jnode *t = parse_tuple(cm, true, false, false);
		if (t->kind == JN_TUPLE) {
			for (size_t i = 0; i < t->items.n; i++)
				if (t->items.v[i]->kind != JN_NAME)
					jinja_syntax_error(cm, t->items.v[i]->off,
							   "can't assign to this expression");
			return t;
		}
		if (t->kind != JN_NAME)
			jinja_syntax_error(cm, off, "can't assign to this expression");
		return t;
	}
	struct jnode *n = mk(cm, JN_NAME, off);
	n->str = expect_ident(cm);
	return n;
}

static void parse_params(struct jcompile *cm, struct jnodes *params)
{
	expect_op(cm, JO_LPAREN, "(");
	while (!is_op(cm, JO_RPAREN)) {
		if (params->n)
			expect_op(cm, JO_COMMA, ",");
		struct jnode *p = mk(cm, JN_KWARG, cur(cm)->off);
		p->str = expect_ident(cm);
		if (skip_op(cm, JO_ASSIGN))
			p->a = parse_expr(cm);
		add(cm, params, p);
	}
	expect_op(cm, JO_RPAREN, ")");
}

static void end_tag(struct jcompile *cm, const char *name)
{
	if (!skip_name(cm, name))
		jinja_syntax_error(cm, cur(cm)->off, "expected '%s'", name);
	/* `{% endblock name %}` / `{% endmacro name %}` are allowed */
	if (cur(cm)->type == JT_NAME &&
	    (!strcmp(name, "endblock") || !strcmp(name, "endmacro")))
		cm->pos++;
	expect_block_end(cm);
}

static struct jnode *parse_statement_inner(struct jcompile *cm);

static struct jnode *parse_statement(struct jcompile *cm)
{
	if (++cm->depth > JINJA_MAX_DEPTH)
		jinja_syntax_error(cm, cur(cm)->off, "blocks nested too deeply");
	struct jnode *n = parse_statement_inner(cm);
	cm->depth--;
	return n;
}

static struct jnode *parse_statement_inner(struct jcompile *cm)
{
	struct jtok *t = cur(cm);
	size_t off = t->off;
	if (t->type != JT_NAME)
		jinja_syntax_error(cm, off, "tag name expected");
	const char *kw = t->s;
	cm->pos++;

	if (!strcmp(kw, "if")) {
		static const char *const ends[] = {"elif", "else", "endif", NULL};
		struct jnode *root = mk(cm, JN_IF, off), *n = root;
		n->a = parse_tuple(cm, false, true, false);
		expect_block_end(cm);
		for (;;) {
			parse_body(cm, &n->body, ends);
			if (skip_name(cm, "elif")) {
				struct jnode *e = mk(cm, JN_IF, cur(cm)->off);
				e->a = parse_tuple(cm, false, true, false);
				expect_block_end(cm);
				add(cm, &n->else_body, e);
				n = e;
				continue;
			}
			if (skip_name(cm, "else")) {
				expect_block_end(cm);
				static const char *const e2[] = {"endif", NULL};
				parse_body(cm, &n->else_body, e2);
			}
			end_tag(cm, "endif");
			return root;
		}
	}
	if (!strcmp(kw, "for")) {
		struct jnode *n = mk(cm, JN_FOR, off);
		n->a = parse_assign_target(cm, false, true);
		if (!skip_name(cm, "in"))
			jinja_syntax_error(cm, cur(cm)->off, "expected 'in'");
		n->b = parse_tuple(cm, false, false, false);
		if (skip_name(cm, "if"))
			n->c = parse_expr(cm);
		if (skip_name(cm, "recursive"))
			n->op = 1;
		expect_block_end(cm);
		static const char *const ends[] = {"endfor", "else", NULL};
		parse_body(cm, &n->body, ends);
		if (skip_name(cm, "else")) {
			expect_block_end(cm);
			static const char *const e2[] = {"endfor", NULL};
			parse_body(cm, &n->else_body, e2);
		}
		end_tag(cm, "endfor");
		return n;
	}
	if (!strcmp(kw, "set")) {
		struct jnode *target = parse_assign_target(cm, true, true);
		if (skip_op(cm, JO_ASSIGN)) {
			struct jnode *n = mk(cm, JN_SET, off);
			n->a = target;
			n->b = parse_tuple(cm, false, true, false);
			expect_block_end(cm);
			return n;
		}
		struct jnode *n = mk(cm, JN_SET_BLOCK, off);
		n->a = target;
		if (is_op(cm, JO_PIPE))
			n->c = parse_filter(cm, mk(cm, JN_BLOCKVAL, off), false);
		expect_block_end(cm);
		static const char *const ends[] = {"endset", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endset");
		return n;
	}
	if (!strcmp(kw, "macro")) {
		struct jnode *n = mk(cm, JN_MACRO, off);
		n->str = expect_ident(cm);
		parse_params(cm, &n->params);
		expect_block_end(cm);
		static const char *const ends[] = {"endmacro", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endmacro");
		return n;
	}
	if (!strcmp(kw, "call")) {
		struct jnode *n = mk(cm, JN_CALL_BLOCK, off);
		if (is_op(cm, JO_LPAREN))
			parse_params(cm, &n->params);
		n->a = parse_expr(cm);
		if (n->a->kind != JN_CALL)
			jinja_syntax_error(cm, off, "expected call");
		expect_block_end(cm);
		static const char *const ends[] = {"endcall", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endcall");
		return n;
	}
	if (!strcmp(kw, "filter")) {
		struct jnode *n = mk(cm, JN_FILTER_BLOCK, off);
		n->a = parse_filter(cm, mk(cm, JN_BLOCKVAL, off), true);
		expect_block_end(cm);
		static const char *const ends[] = {"endfilter", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endfilter");
		return n;
	}
	if (!strcmp(kw, "with")) {
		struct jnode *n = mk(cm, JN_WITH, off);
		while (cur(cm)->type != JT_BLOCK_END) {
			if (n->params.n)
				expect_op(cm, JO_COMMA, ",");
			struct jnode *p = mk(cm, JN_KWARG, cur(cm)->off);
			p->str = expect_ident(cm);
			expect_op(cm, JO_ASSIGN, "=");
			p->a = parse_expr(cm);
			add(cm, &n->params, p);
		}
		expect_block_end(cm);
		static const char *const ends[] = {"endwith", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endwith");
		return n;
	}
	if (!strcmp(kw, "block")) {
		struct jnode *n = mk(cm, JN_BODY, off);
		expect_ident(cm);
		skip_name(cm, "scoped");
		skip_name(cm, "required");
		expect_block_end(cm);
		static const char *const ends[] = {"endblock", NULL};
		parse_body(cm, &n->body, ends);
		end_tag(cm, "endblock");
		return n;
	}
	if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
		struct jnode *n = mk(cm, kw[0] == 'b' ? JN_BREAK : JN_CONTINUE, off);
		expect_block_end(cm);
		return n;
	}
	jinja_syntax_error(cm, off, "Encountered unknown tag '%s'.", kw);
}

static void parse_body(struct jcompile *cm, struct jnodes *body,
		       const char *const *ends)
{
	for (;;) {
		struct jtok *t = cur(cm);
		switch (t->type) {
		case JT_EOF:
			if (ends)
				jinja_syntax_error(cm, t->off,
						   "Unexpected end of template. Jinja was looking "
						   "for the following tags: '%s'.", ends[0]);
			return;
		case JT_DATA: {
			struct jnode *n = mk(cm, JN_TEXT, t->off);
			n->str = t->s;
			n->len = t->len;
			add(cm, body, n);
			cm->pos++;
			break;
		}
		case JT_VAR_BEGIN: {
			cm->pos++;
			struct jnode *n = mk(cm, JN_OUTPUT, t->off);
			n->a = parse_tuple(cm, false, true, false);
			if (cur(cm)->type != JT_VAR_END)
				jinja_syntax_error(cm, cur(cm)->off,
						   "expected token 'end of print statement', got '%s'",
						   tok_desc(cur(cm)));
			cm->pos++;
			add(cm, body, n);
			break;
		}
		case JT_BLOCK_BEGIN: {
			struct jtok *nm = &cm->toks[cm->pos + 1];
			if (ends && nm->type == JT_NAME) {
				for (size_t i = 0; ends[i]; i++)
					if (!strcmp(nm->s, ends[i])) {
						cm->pos++;
						return;
					}
			}
			cm->pos++;
			add(cm, body, parse_statement(cm));
			break;
		}
		default:
			jinja_syntax_error(cm, t->off, "unexpected '%s'", tok_desc(t));
		}
	}
}

struct jnode *jinja_parse(struct jcompile *cm)
{
	struct jnode *root = mk(cm, JN_BODY, 0);
	cm->pos = 0;
	parse_body(cm, &root->body, NULL);
	return root;
}
