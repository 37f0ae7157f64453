/* inference/tokenizer_load.c — reading tokenizer.json (+ tokenizer_config.json)
 * into a struct llm_tokenizer.
 *
 * Owns: the hash maps (vocab, raw bytes, merges), the added-token tries, and
 * the translation of the JSON normalizer / pre_tokenizer / post_processor /
 * decoder trees into flat step arrays.
 *
 * Speed: jansson needs ~550 ms for Llama-3's 17 MB file, almost all of it in
 * model.vocab (128k keys) and model.merges (280k pairs).  So those two values
 * are read by a small dedicated scanner (strings with every JSON escape,
 * integers) straight into the piece arena, then blanked out of the buffer,
 * and jansson parses everything else.  When the scanner meets anything it
 * does not expect, that value is handed to jansson instead, so jansson stays
 * the reference for what is valid JSON.
 *
 * Invariants after a successful load: every id in [0, n_vocab) has a
 * NUL-terminated piece in the arena (maybe empty, flag TOK_F_UNUSED); every
 * merge result is a vocab id; maps never exceed half load.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/file.h"
#include "inference/llm.h"
#include "inference/tokenizer_impl.h"

/* ---- buffers ----------------------------------------------------------- */

int tok_buf_reserve(struct tok_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return LLM_E_NOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->p, cap);
	if (!p)
		return LLM_E_NOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int tok_buf_put(struct tok_buf *b, const void *s, size_t n)
{
	if (tok_buf_reserve(b, n))
		return LLM_E_NOMEM;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

void tok_buf_fini(struct tok_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int tok_ids_push(struct tok_ids *a, int32_t id)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		int32_t *v = realloc(a->v, cap * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = id;
	return 0;
}

/* ---- hashing ------------------------------------------------------------ */

uint64_t tok_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;

		memcpy(&w, s, n);
		h = (h ^ w) * 0x94d049bb133111ebull;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

static int strmap_init(struct tok_strmap *m, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n + 2)
		cap *= 2;
	if (cap > (size_t)UINT32_MAX)
		return LLM_E_NOMEM;
	m->slot = calloc(cap, sizeof *m->slot);
	if (!m->slot)
		return LLM_E_NOMEM;
	m->mask = (uint32_t)(cap - 1);
	m->n = 0;
	return 0;
}

static void key_of(const struct llm_tokenizer *t, bool raw, uint32_t id,
		   const char **s, size_t *n)
{
	if (raw) {
		*s = t->raw_arena + t->raw_off[id];
		*n = t->raw_len[id];
	} else {
		*s = t->arena + t->piece_off[id];
		*n = t->piece_len[id];
	}
}

int tok_strmap_find(const struct llm_tokenizer *t, const struct tok_strmap *m,
		    bool raw, const char *s, size_t n)
{
	uint64_t h;
	uint32_t i, tag;

	if (!m->slot)
		return -1;
	h = tok_hash_bytes(s, n);
	tag = (uint32_t)(h >> 32);
	for (i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
		uint64_t v = m->slot[i];
		const char *k;
		size_t kn;

		if (!v)
			return -1;
		if ((uint32_t)(v >> 32) != tag)
			continue;
		key_of(t, raw, (uint32_t)v - 1, &k, &kn);
		if (kn == n && memcmp(k, s, n) == 0)
			return (int)((uint32_t)v - 1);
	}
}

/* Insert id (its key read through key_of); a later duplicate key replaces
 * the earlier id, as a Rust HashMap built by collect() would. */
static void strmap_insert(const struct llm_tokenizer *t, struct tok_strmap *m,
			  bool raw, uint32_t id)
{
	const char *s, *k;
	size_t n, kn;
	uint64_t h;
	uint32_t i, tag;

	key_of(t, raw, id, &s, &n);
	h = tok_hash_bytes(s, n);
	tag = (uint32_t)(h >> 32);
	for (i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
		uint64_t v = m->slot[i];

		if (!v) {
			m->slot[i] = (uint64_t)tag << 32 | (id + 1);
			m->n++;
			return;
		}
		if ((uint32_t)(v >> 32) != tag)
			continue;
		key_of(t, raw, (uint32_t)v - 1, &k, &kn);
		if (kn == n && memcmp(k, s, n) == 0) {
			m->slot[i] = (uint64_t)tag << 32 | (id + 1);
			return;
		}
	}
}

static inline uint32_t pair_hash(uint64_t k)
{
	k *= 0x9E3779B97F4A7C15ull;
	return (uint32_t)(k >> 32);
}

static int merges_init(struct tok_merge_map *m, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n + 2)
		cap *= 2;
	if (cap > (size_t)UINT32_MAX)
		return LLM_E_NOMEM;
	m->key = calloc(cap, sizeof *m->key);
	m->rank = malloc(cap * sizeof *m->rank);
	m->out = malloc(cap * sizeof *m->out);
	if (!m->key || !m->rank || !m->out)
		return LLM_E_NOMEM;
	m->mask = (uint32_t)(cap - 1);
	return 0;
}

static void merges_insert(struct tok_merge_map *m, int32_t a, int32_t b,
			  uint32_t rank, int32_t out)
{
	uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	uint32_t i = pair_hash(k) & m->mask;

	while (m->key[i] && m->key[i] != k)
		i = (i + 1) & m->mask;
	if (!m->key[i])
		m->n++;
	m->key[i] = k;
	m->rank[i] = rank;
	m->out[i] = out;
}

/* ---- the fast scanner for model.vocab / model.merges ---------------------- */

struct scan {
	const char *p, *end;
};

static void sc_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex4(const char *p, const char *end, uint32_t *v)
{
	uint32_t x = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		int h = hexval((unsigned char)p[i]);

		if (h < 0)
			return -1;
		x = x << 4 | (uint32_t)h;
	}
	*v = x;
	return 0;
}

static size_t put_cp(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decode one JSON string at s->p (which must be '"') into out (appended,
 * NUL-terminated).  Returns 0, 1 for "not for the fast path" (the caller
 * falls back to jansson), or LLM_E_NOMEM. */
static int sc_string(struct scan *s, struct tok_buf *out)
{
	const char *p = s->p, *end = s->end;

	if (p >= end || *p != '"')
		return 1;
	p++;
	for (;;) {
		const char *q = p;

		while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
			q++;
		if (q >= end)
			return 1;
		if (q > p && tok_buf_put(out, p, (size_t)(q - p)))
			return LLM_E_NOMEM;
		p = q;
		if (*p == '"') {
			s->p = p + 1;
			return 0;
		}
		if ((unsigned char)*p < 0x20)
			return 1;
		/* escape */
		if (end - p < 2)
			return 1;
		{
			char c = p[1], u[4];
			uint32_t cp, lo;
			size_t k;

			p += 2;
			switch (c) {
			case '"': case '\\': case '/':
				u[0] = c; k = 1; break;
			case 'b': u[0] = '\b'; k = 1; break;
			case 'f': u[0] = '\f'; k = 1; break;
			case 'n': u[0] = '\n'; k = 1; break;
			case 'r': u[0] = '\r'; k = 1; break;
			case 't': u[0] = '\t'; k = 1; break;
			case 'u':
				if (hex4(p, end, &cp))
					return 1;
				p += 4;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
					    hex4(p + 2, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
						return 1; /* lone surrogate: jansson decides */
					p += 6;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					return 1;
				}
				k = put_cp(u, cp);
				break;
			default:
				return 1;
			}
			if (tok_buf_put(out, u, k))
				return LLM_E_NOMEM;
		}
	}
}

/* Skip any JSON value (structure only; strings honoured).  Returns 0 with
 * s->p just past the value, or -1 when the text ends first. */
static int sc_skip(struct scan *s)
{
	const char *p = s->p, *end = s->end;
	int depth = 0;

	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	while (p < end) {
		char c = *p++;

		if (c == '"') {
			while (p < end && *p != '"')
				p += *p == '\\' ? 2 : 1;
			if (p >= end)
				return -1;
			p++;
		} else if (c == '{' || c == '[') {
			depth++;
			continue;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ',' || c == ':' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
			continue;
		} else {
			/* number / literal */
			while (p < end && !strchr(",:}]\"{[ \t\r\n", *p))
				p++;
		}
		if (depth <= 0) {
			s->p = p;
			return depth == 0 ? 0 : -1;
		}
	}
	return -1;
}

/* Find where the value of top-level key `key` starts (no skipping of it). */
static const char *sc_find_start(struct scan s, const char *key)
{
	size_t kl = strlen(key);

	sc_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return NULL;
	s.p++;
	for (;;) {
		const char *k0;
		bool hit;

		sc_ws(&s);
		if (s.p >= s.end || *s.p != '"')
			return NULL;
		k0 = ++s.p;
		while (s.p < s.end && *s.p != '"')
			s.p += *s.p == '\\' ? 2 : 1;
		if (s.p >= s.end)
			return NULL;
		hit = (size_t)(s.p - k0) == kl && memcmp(k0, key, kl) == 0;
		s.p++;
		sc_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return NULL;
		s.p++;
		sc_ws(&s);
		if (hit)
			return s.p;
		if (sc_skip(&s))
			return NULL;
		sc_ws(&s);
		if (s.p < s.end && *s.p == ',')
			s.p++;
	}
}

/* vocab entries while loading: piece in `pieces` at off, with id */
struct ventry {
	uint32_t off, len;
	int32_t id;
};

struct loader {
	struct tok_buf pieces; /* decoded vocab strings, NUL-separated */
	struct ventry *v;
	size_t nv, capv;
	struct tok_buf mbuf;   /* merges as "a\0b\0" pairs */
	uint32_t *moff;        /* 2 offsets per merge */
	size_t nm, capm;
};

static int add_ventry(struct loader *L, size_t off, size_t len, json_int_t id)
{
	if (id < 0 || id >= INT32_MAX - 1 || off > UINT32_MAX || len > UINT32_MAX)
		return LLM_E_FORMAT;
	if (L->nv == L->capv) {
		size_t cap = L->capv ? 2 * L->capv : 1024;
		struct ventry *v = realloc(L->v, cap * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		L->v = v;
		L->capv = cap;
	}
	L->v[L->nv].off = (uint32_t)off;
	L->v[L->nv].len = (uint32_t)len;
	L->v[L->nv].id = (int32_t)id;
	L->nv++;
	return 0;
}

static int add_merge(struct loader *L, size_t a, size_t b)
{
	if (a > UINT32_MAX || b > UINT32_MAX)
		return LLM_E_NOMEM;
	if (L->nm == L->capm) {
		size_t cap = L->capm ? 2 * L->capm : 1024;
		uint32_t *v = realloc(L->moff, cap * 2 * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		L->moff = v;
		L->capm = cap;
	}
	L->moff[2 * L->nm] = (uint32_t)a;
	L->moff[2 * L->nm + 1] = (uint32_t)b;
	L->nm++;
	return 0;
}

/* Fast path for {"piece": id, ...}.  1 = use jansson. */
static int scan_vocab(struct loader *L, const char *p0, const char *p1, const char **endp)
{
	struct scan s = { p0, p1 };
	int rc;

	sc_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return 1;
	s.p++;
	sc_ws(&s);
	if (s.p < s.end && *s.p == '}') {
		*endp = s.p + 1;
		return 0;
	}
	for (;;) {
		size_t off = L->pieces.len;
		json_int_t id = 0;
		int digits = 0;

		sc_ws(&s);
		rc = sc_string(&s, &L->pieces);
		if (rc)
			return rc;
		if (tok_buf_put(&L->pieces, "", 1)) /* keep a NUL between pieces */
			return LLM_E_NOMEM;
		sc_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return 1;
		s.p++;
		sc_ws(&s);
		while (s.p < s.end && *s.p >= '0' && *s.p <= '9' && digits < 11) {
			id = id * 10 + (*s.p++ - '0');
			digits++;
		}
		if (!digits || digits > 10 || (s.p < s.end && strchr(".eE-", *s.p)))
			return 1;
		rc = add_ventry(L, off, L->pieces.len - off - 1, id);
		if (rc)
			return rc;
		sc_ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		if (s.p < s.end && *s.p == '}') {
			*endp = s.p + 1;
			return 0;
		}
		return 1;
	}
}

/* Fast path for ["a b", ...] or [["a", "b"], ...].  1 = use jansson. */
static int scan_merges(struct loader *L, const char *p0, const char *p1, const char **endp)
{
	struct scan s = { p0, p1 };
	int rc;

	sc_ws(&s);
	if (s.p >= s.end || *s.p != '[')
		return 1;
	s.p++;
	sc_ws(&s);
	if (s.p < s.end && *s.p == ']') {
		*endp = s.p + 1;
		return 0;
	}
	for (;;) {
		size_t a = L->mbuf.len, b;

		sc_ws(&s);
		if (s.p < s.end && *s.p == '[') {
			s.p++;
			sc_ws(&s);
			if ((rc = sc_string(&s, &L->mbuf)))
				return rc;
			if (tok_buf_put(&L->mbuf, "", 1))
				return LLM_E_NOMEM;
			sc_ws(&s);
			if (s.p >= s.end || *s.p != ',')
				return 1;
			s.p++;
			sc_ws(&s);
			b = L->mbuf.len;
			if ((rc = sc_string(&s, &L->mbuf)))
				return rc;
			if (tok_buf_put(&L->mbuf, "", 1))
				return LLM_E_NOMEM;
			sc_ws(&s);
			if (s.p >= s.end || *s.p != ']')
				return 1;
			s.p++;
		} else {
			char *sp;

			if ((rc = sc_string(&s, &L->mbuf)))
				return rc;
			if (tok_buf_put(&L->mbuf, "", 1))
				return LLM_E_NOMEM;
			/* "a b": split at the first space (pieces never hold a
			 * space in the legacy format) */
			sp = memchr(L->mbuf.p + a, ' ', L->mbuf.len - 1 - a);
			if (!sp)
				return LLM_E_FORMAT;
			*sp = 0;
			b = (size_t)(sp + 1 - L->mbuf.p);
		}
		if ((rc = add_merge(L, a, b)))
			return rc;
		sc_ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		if (s.p < s.end && *s.p == ']') {
			*endp = s.p + 1;
			return 0;
		}
		return 1;
	}
}

/* jansson fallbacks for the same two values */
static int json_vocab(struct loader *L, json_t *v)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return LLM_E_FORMAT;
	json_object_foreach(v, k, x) {
		size_t off = L->pieces.len, n = strlen(k);
		int rc;

		if (!json_is_integer(x))
			return LLM_E_FORMAT;
		if (tok_buf_put(&L->pieces, k, n + 1))
			return LLM_E_NOMEM;
		rc = add_ventry(L, off, n, json_integer_value(x));
		if (rc)
			return rc;
	}
	return 0;
}

static int json_merges(struct loader *L, json_t *v)
{
	size_t i;
	json_t *x;

	if (!json_is_array(v))
		return LLM_E_FORMAT;
	json_array_foreach(v, i, x) {
		size_t a = L->mbuf.len, b;
		int rc;

		if (json_is_string(x)) {
			const char *s = json_string_value(x), *sp = strchr(s, ' ');

			if (!sp)
				return LLM_E_FORMAT;
			if (tok_buf_put(&L->mbuf, s, (size_t)(sp - s)) || tok_buf_put(&L->mbuf, "", 1))
				return LLM_E_NOMEM;
			b = L->mbuf.len;
			if (tok_buf_put(&L->mbuf, sp + 1, strlen(sp + 1) + 1))
				return LLM_E_NOMEM;
		} else if (json_is_array(x) && json_array_size(x) == 2 &&
			   json_is_string(json_array_get(x, 0)) && json_is_string(json_array_get(x, 1))) {
			const char *s0 = json_string_value(json_array_get(x, 0));
			const char *s1 = json_string_value(json_array_get(x, 1));

			if (tok_buf_put(&L->mbuf, s0, strlen(s0) + 1))
				return LLM_E_NOMEM;
			b = L->mbuf.len;
			if (tok_buf_put(&L->mbuf, s1, strlen(s1) + 1))
				return LLM_E_NOMEM;
		} else {
			return LLM_E_FORMAT;
		}
		if ((rc = add_merge(L, a, b)))
			return rc;
	}
	return 0;
}

/* Read one of the two big values starting at p0 (the buffer ends at end):
 * fast scanner, else jansson on the value's span.  *v1 gets the end of the
 * value. */
static int read_big(struct loader *L, const char *p0, const char *end, const char **v1,
		    bool vocab, const char *path, struct diag *d)
{
	size_t nv = L->nv, np = L->pieces.len, nm = L->nm, nb = L->mbuf.len;
	int rc = vocab ? scan_vocab(L, p0, end, v1) : scan_merges(L, p0, end, v1);
	struct scan sk = { p0, end };
	json_error_t je;
	json_t *j;

	if (rc == LLM_E_NOMEM)
		return diag_fail(d, rc, "%s: out of memory", path);
	if (rc == 0)
		return 0;
	/* undo the partial fast parse and let jansson judge */
	L->nv = nv;
	L->pieces.len = np;
	L->nm = nm;
	L->mbuf.len = nb;
	if (sc_skip(&sk))
		return diag_fail(d, LLM_E_FORMAT, "%s: model.%s: truncated", path,
				 vocab ? "vocab" : "merges");
	*v1 = sk.p;
	j = json_loadb(p0, (size_t)(sk.p - p0), JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!j)
		return diag_fail(d, LLM_E_FORMAT, "%s: model.%s: %s", path,
				 vocab ? "vocab" : "merges", je.text);
	rc = vocab ? json_vocab(L, j) : json_merges(L, j);
	json_decref(j);
	if (rc == LLM_E_NOMEM)
		return diag_fail(d, rc, "%s: out of memory", path);
	if (rc)
		return diag_fail(d, rc, "%s: model.%s: unexpected entry", path,
				 vocab ? "vocab" : "merges");
	return 0;
}

/* Walk the "model" object at m0, reading vocab and merges on the way. */
static int scan_model(struct loader *L, const char *m0, const char *end,
		      const char **v0, const char **v1, const char **g0, const char **g1,
		      const char *path, struct diag *d)
{
	struct scan s = { m0, end };
	int rc;

	*v0 = *v1 = *g0 = *g1 = NULL;
	sc_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return 0; /* jansson will complain */
	s.p++;
	for (;;) {
		const char *k0, *val;
		size_t kl;

		sc_ws(&s);
		if (s.p >= s.end || *s.p != '"')
			return 0;
		k0 = ++s.p;
		while (s.p < s.end && *s.p != '"')
			s.p += *s.p == '\\' ? 2 : 1;
		if (s.p >= s.end)
			return 0;
		kl = (size_t)(s.p - k0);
		s.p++;
		sc_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return 0;
		s.p++;
		sc_ws(&s);
		val = s.p;
		if (kl == 5 && memcmp(k0, "vocab", 5) == 0 && !*v0) {
			if ((rc = read_big(L, val, end, v1, true, path, d)))
				return rc;
			*v0 = val;
			s.p = *v1;
		} else if (kl == 6 && memcmp(k0, "merges", 6) == 0 && !*g0) {
			if ((rc = read_big(L, val, end, g1, false, path, d)))
				return rc;
			*g0 = val;
			s.p = *g1;
		} else if (sc_skip(&s)) {
			return 0;
		}
		if (*v0 && *g0)
			return 0;
		sc_ws(&s);
		if (s.p < s.end && *s.p == ',')
			s.p++;
		else
			return 0;
	}
}

/* ---- byte-level alphabet ------------------------------------------------- */

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order. */
static bool bl_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* The 68 other bytes, in order: 0x00-0x20 -> U+0100-U+0120,
 * 0x7F-0xA0 -> U+0121-U+0142, 0xAD -> U+0143. */
uint32_t tok_byte_to_cp(uint8_t b)
{
	if (bl_printable(b))
		return b;
	if (b <= 0x20)
		return 256u + b;
	if (b >= 0x7F && b <= 0xA0)
		return 256u + 33u + (b - 0x7Fu);
	return 256u + 67u; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
	uint32_t k;

	if (cp < 256)
		return bl_printable(cp) ? (int)cp : -1;
	k = cp - 256;
	if (k < 33)
		return (int)k;
	if (k < 67)
		return (int)(0x7F + k - 33);
	if (k == 67)
		return 0xAD;
	return -1;
}

/* ---- JSON helpers ---------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k, size_t *len)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_string(v))
		return NULL;
	if (len)
		*len = json_string_length(v);
	return json_string_value(v);
}

static bool jbool(json_t *o, const char *k, bool def)
{
	json_t *v = json_object_get(o, k);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

static char *memdup0(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

/* {"String": s} or {"Regex": r} */
static int read_pattern(json_t *o, struct tok_pattern *p, const char *what,
			struct diag *d)
{
	json_t *pat = json_object_get(o, "pattern");
	const char *s;
	size_t n;

	if ((s = jstr(pat, "String", &n)))
		return tok_pattern_compile(p, s, n, false, d);
	if ((s = jstr(pat, "Regex", &n)))
		return tok_pattern_compile(p, s, n, true, d);
	return diag_fail(d, LLM_E_FORMAT, "%s: pattern is neither String nor Regex", what);
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	{
		size_t c = *cap ? *cap * 2 : 4;
		void *p = realloc(*v, c * size);

		if (!p)
			return LLM_E_NOMEM;
		memset((char *)p + *cap * size, 0, (c - *cap) * size);
		*v = p;
		*cap = c;
	}
	return 0;
}

static int read_normalizer(struct llm_tokenizer *t, json_t *o, size_t *cap, struct diag *d)
{
	const char *type = jstr(o, "type", NULL);
	struct tok_norm *n;

	if (json_is_null(o) || !o)
		return 0;
	if (!type)
		return diag_fail(d, LLM_E_FORMAT, "normalizer without a type");
	if (strcmp(type, "Sequence") == 0) {
		json_t *a = json_object_get(o, "normalizers"), *x;
		size_t i;
		int rc;

		json_array_foreach(a, i, x)
			if ((rc = read_normalizer(t, x, cap, d)))
				return rc;
		return 0;
	}
	if (grow((void **)&t->norm, cap, t->n_norm, sizeof *t->norm))
		return LLM_E_NOMEM;
	n = &t->norm[t->n_norm];
	memset(n, 0, sizeof *n);
	if (!strcmp(type, "NFC"))
		n->kind = TOK_NORM_NFC;
	else if (!strcmp(type, "NFD"))
		n->kind = TOK_NORM_NFD;
	else if (!strcmp(type, "NFKC"))
		n->kind = TOK_NORM_NFKC;
	else if (!strcmp(type, "NFKD"))
		n->kind = TOK_NORM_NFKD;
	else if (!strcmp(type, "Lowercase"))
		n->kind = TOK_NORM_LOWERCASE;
	else if (!strcmp(type, "StripAccents"))
		n->kind = TOK_NORM_STRIP_ACCENTS;
	else if (!strcmp(type, "Strip")) {
		n->kind = TOK_NORM_STRIP;
		n->left = jbool(o, "strip_left", true);
		n->right = jbool(o, "strip_right", true);
	} else if (!strcmp(type, "Prepend") || !strcmp(type, "Replace")) {
		const char *c;
		size_t cl;
		int rc;

		n->kind = type[0] == 'P' ? TOK_NORM_PREPEND : TOK_NORM_REPLACE;
		c = jstr(o, n->kind == TOK_NORM_PREPEND ? "prepend" : "content", &cl);
		if (!c)
			return diag_fail(d, LLM_E_FORMAT, "normalizer %s: missing text", type);
		if (!(n->content = memdup0(c, cl)))
			return LLM_E_NOMEM;
		n->content_len = cl;
		t->n_norm++; /* owned from now on, freed with the tokenizer */
		if (n->kind == TOK_NORM_REPLACE && (rc = read_pattern(o, &n->pat, "normalizer Replace", d)))
			return rc;
		return 0;
	} else
		return diag_fail(d, LLM_E_UNSUPPORTED, "normalizer '%s' is not supported", type);
	t->n_norm++;
	return 0;
}

static enum tok_split_behavior behavior_of(const char *b, bool *ok)
{
	*ok = true;
	if (!b || !strcmp(b, "Isolated"))
		return TOK_SPLIT_ISOLATED;
	if (!strcmp(b, "Removed"))
		return TOK_SPLIT_REMOVED;
	if (!strcmp(b, "MergedWithPrevious"))
		return TOK_SPLIT_MERGED_PREV;
	if (!strcmp(b, "MergedWithNext"))
		return TOK_SPLIT_MERGED_NEXT;
	if (!strcmp(b, "Contiguous"))
		return TOK_SPLIT_CONTIGUOUS;
	*ok = false;
	return TOK_SPLIT_ISOLATED;
}

static int read_repl(json_t *o, char *out, size_t *len)
{
	size_t n;
	const char *r = jstr(o, "replacement", &n);

	if (!r) {
		r = "\xe2\x96\x81";
		n = 3;
	}
	if (n == 0 || n > 4)
		return LLM_E_UNSUPPORTED;
	memcpy(out, r, n);
	out[n] = 0;
	*len = n;
	return 0;
}

static enum tok_prepend prepend_of(json_t *o)
{
	const char *s = jstr(o, "prepend_scheme", NULL);

	if (s && !strcmp(s, "first"))
		return TOK_PREPEND_FIRST;
	if (s && !strcmp(s, "never"))
		return TOK_PREPEND_NEVER;
	if (!s && json_is_false(json_object_get(o, "add_prefix_space")))
		return TOK_PREPEND_NEVER;
	return TOK_PREPEND_ALWAYS;
}

/* GPT-2's pattern, used by ByteLevel with use_regex */
static const char gpt2_re[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int read_pretok(struct llm_tokenizer *t, json_t *o, size_t *cap, struct diag *d)
{
	const char *type = jstr(o, "type", NULL);
	struct tok_pre *p;
	bool ok;
	int rc;

	if (!o || json_is_null(o))
		return 0;
	if (!type)
		return diag_fail(d, LLM_E_FORMAT, "pre_tokenizer without a type");
	if (!strcmp(type, "Sequence")) {
		json_t *a = json_object_get(o, "pretokenizers"), *x;
		size_t i;

		json_array_foreach(a, i, x)
			if ((rc = read_pretok(t, x, cap, d)))
				return rc;
		return 0;
	}
	if (t->byte_level)
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "pre_tokenizer '%s' after ByteLevel is not supported", type);
	if (grow((void **)&t->pre, cap, t->n_pre, sizeof *t->pre))
		return LLM_E_NOMEM;
	p = &t->pre[t->n_pre];
	memset(p, 0, sizeof *p);
	if (!strcmp(type, "Split")) {
		p->kind = TOK_PRE_SPLIT;
		p->behavior = behavior_of(jstr(o, "behavior", NULL), &ok);
		if (!ok)
			return diag_fail(d, LLM_E_UNSUPPORTED, "Split: unknown behavior");
		p->invert = jbool(o, "invert", false);
		t->n_pre++;
		return read_pattern(o, &p->pat, "pre_tokenizer Split", d);
	}
	if (!strcmp(type, "ByteLevel")) {
		p->kind = TOK_PRE_BYTELEVEL;
		p->add_prefix_space = jbool(o, "add_prefix_space", true);
		t->n_pre++;
		t->byte_level = true;
		if (jbool(o, "use_regex", true))
			return tok_pattern_compile(&p->pat, gpt2_re, sizeof gpt2_re - 1, true, d);
		return 0;
	}
	if (!strcmp(type, "Metaspace")) {
		p->kind = TOK_PRE_METASPACE;
		if (read_repl(o, p->repl, &p->repl_len))
			return diag_fail(d, LLM_E_UNSUPPORTED, "Metaspace: bad replacement");
		p->prepend = prepend_of(o);
		p->split = jbool(o, "split", true);
	} else if (!strcmp(type, "Digits")) {
		p->kind = TOK_PRE_DIGITS;
		p->individual_digits = jbool(o, "individual_digits", false);
	} else if (!strcmp(type, "Whitespace")) {
		static const char wre[] = "\\w+|[^\\w\\s]+";

		p->kind = TOK_PRE_WHITESPACE;
		t->n_pre++;
		return tok_pattern_compile(&p->pat, wre, sizeof wre - 1, true, d);
	} else if (!strcmp(type, "WhitespaceSplit")) {
		p->kind = TOK_PRE_WHITESPACE_SPLIT;
	} else if (!strcmp(type, "Punctuation")) {
		p->kind = TOK_PRE_PUNCTUATION;
		p->behavior = behavior_of(jstr(o, "behavior", NULL), &ok);
		if (!ok)
			return diag_fail(d, LLM_E_UNSUPPORTED, "Punctuation: unknown behavior");
	} else {
		return diag_fail(d, LLM_E_UNSUPPORTED, "pre_tokenizer '%s' is not supported", type);
	}
	t->n_pre++;
	return 0;
}

static int read_decoder(struct llm_tokenizer *t, json_t *o, size_t *cap, struct diag *d)
{
	const char *type = jstr(o, "type", NULL);
	struct tok_dec *c;

	if (!o || json_is_null(o))
		return 0;
	if (!type)
		return diag_fail(d, LLM_E_FORMAT, "decoder without a type");
	t->has_decoder = true;
	if (!strcmp(type, "Sequence")) {
		json_t *a = json_object_get(o, "decoders"), *x;
		size_t i;
		int rc;

		json_array_foreach(a, i, x)
			if ((rc = read_decoder(t, x, cap, d)))
				return rc;
		return 0;
	}
	if (grow((void **)&t->dec, cap, t->n_dec, sizeof *t->dec))
		return LLM_E_NOMEM;
	c = &t->dec[t->n_dec];
	memset(c, 0, sizeof *c);
	if (!strcmp(type, "ByteLevel")) {
		c->kind = TOK_DEC_BYTELEVEL;
	} else if (!strcmp(type, "ByteFallback")) {
		c->kind = TOK_DEC_BYTEFALLBACK;
	} else if (!strcmp(type, "Fuse")) {
		c->kind = TOK_DEC_FUSE;
	} else if (!strcmp(type, "Strip")) {
		size_t n;
		const char *s = jstr(o, "content", &n);
		json_t *a = json_object_get(o, "start"), *b = json_object_get(o, "stop");

		c->kind = TOK_DEC_STRIP;
		if (!s || n == 0 || n > 4)
			return diag_fail(d, LLM_E_UNSUPPORTED, "decoder Strip: bad content");
		memcpy(c->strip, s, n);
		c->strip_len = n;
		c->start = json_is_integer(a) ? (int)json_integer_value(a) : 0;
		c->stop = json_is_integer(b) ? (int)json_integer_value(b) : 0;
	} else if (!strcmp(type, "Metaspace")) {
		c->kind = TOK_DEC_METASPACE;
		if (read_repl(o, c->repl, &c->repl_len))
			return diag_fail(d, LLM_E_UNSUPPORTED, "decoder Metaspace: bad replacement");
		c->prepend = prepend_of(o) != TOK_PREPEND_NEVER;
	} else if (!strcmp(type, "Replace")) {
		json_t *pat = json_object_get(o, "pattern");
		const char *s, *to;
		size_t n = 0, tn = 0;

		c->kind = TOK_DEC_REPLACE;
		s = jstr(pat, "String", &n);
		to = jstr(o, "content", &tn);
		if (!s || !to || n == 0)
			return diag_fail(d, LLM_E_UNSUPPORTED, "decoder Replace: only non-empty String patterns are supported");
		if (!(c->from = memdup0(s, n)) || !(c->to = memdup0(to, tn))) {
			free(c->from);
			c->from = NULL;
			return LLM_E_NOMEM;
		}
		c->from_len = n;
		c->to_len = tn;
	} else {
		return diag_fail(d, LLM_E_UNSUPPORTED, "decoder '%s' is not supported", type);
	}
	t->n_dec++;
	return 0;
}

/* ---- added tokens and tries -------------------------------------------- */

static int trie_add(struct tok_trie *tr, const char *s, size_t n, int32_t idx)
{
	int32_t cur = 0;
	size_t i;

	if (tr->n == 0) {
		if (grow((void **)&tr->node, &tr->cap, 0, sizeof *tr->node))
			return LLM_E_NOMEM;
		tr->node[0] = (struct tok_trie_node){ -1, -1, -1, 0 };
		tr->n = 1;
	}
	if (n == 0)
		return 0;
	tr->first[(uint8_t)s[0]] = 1;
	tr->empty = false;
	for (i = 0; i < n; i++) {
		uint8_t b = (uint8_t)s[i];
		int32_t c = tr->node[cur].child;

		while (c >= 0 && tr->node[c].byte != b)
			c = tr->node[c].sibling;
		if (c < 0) {
			if (grow((void **)&tr->node, &tr->cap, tr->n, sizeof *tr->node))
				return LLM_E_NOMEM;
			c = (int32_t)tr->n++;
			tr->node[c] = (struct tok_trie_node){ -1, tr->node[cur].child, -1, b };
			tr->node[cur].child = c;
		}
		cur = c;
	}
	tr->node[cur].added = idx;
	return 0;
}

/* ---- tokenizer_config.json ------------------------------------------------- */

static const char *config_token(json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_object(v))
		return jstr(v, "content", NULL);
	return NULL;
}

static int lookup_token(const struct llm_tokenizer *t, const char *s)
{
	return s ? llm_tokenizer_token_id(t, s) : -1;
}

static int push_id(int32_t **v, size_t *n, int32_t id)
{
	int32_t *p = realloc(*v, (*n + 1) * sizeof *p);

	if (!p)
		return LLM_E_NOMEM;
	p[(*n)++] = id;
	*v = p;
	return 0;
}

/* TemplateProcessing "single" -> prefix / suffix ids.  Returns 1 when the
 * post-processor decided (even to add nothing), 0 when it says nothing. */
static int read_post(struct llm_tokenizer *t, json_t *o, struct diag *d)
{
	const char *type = jstr(o, "type", NULL);
	int rc, decided = 0;

	if (!o || json_is_null(o) || !type)
		return 0;
	if (!strcmp(type, "Sequence")) {
		json_t *a = json_object_get(o, "processors"), *x;
		size_t i;

		json_array_foreach(a, i, x) {
			rc = read_post(t, x, d);
			if (rc < 0)
				return rc;
			decided |= rc;
		}
		return decided;
	}
	if (!strcmp(type, "ByteLevel"))
		return 0; /* offsets only */
	if (!strcmp(type, "TemplateProcessing")) {
		json_t *single = json_object_get(o, "single"), *sp = json_object_get(o, "special_tokens"), *x;
		size_t i;
		bool after = false;

		json_array_foreach(single, i, x) {
			json_t *st = json_object_get(x, "SpecialToken"), *ids, *e;
			size_t k;

			if (json_object_get(x, "Sequence")) {
				after = true;
				continue;
			}
			if (!st)
				return diag_fail(d, LLM_E_FORMAT, "TemplateProcessing: bad item");
			ids = json_object_get(json_object_get(sp, jstr(st, "id", NULL) ? jstr(st, "id", NULL) : ""), "ids");
			if (!json_is_array(ids))
				return diag_fail(d, LLM_E_FORMAT, "TemplateProcessing: unknown special token '%s'",
						 jstr(st, "id", NULL) ? jstr(st, "id", NULL) : "?");
			json_array_foreach(ids, k, e) {
				json_int_t id = json_integer_value(e);

				if (!json_is_integer(e) || id < 0 || id >= t->n_vocab)
					return diag_fail(d, LLM_E_FORMAT, "TemplateProcessing: bad id");
				if (after ? push_id(&t->suffix_ids, &t->n_suffix, (int32_t)id)
					  : push_id(&t->prefix_ids, &t->n_prefix, (int32_t)id))
					return LLM_E_NOMEM;
			}
		}
		return 1;
	}
	if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
		json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
		json_t *ci = json_array_get(cls, 1), *si = json_array_get(sep, 1);

		if (!json_is_integer(ci) || !json_is_integer(si) ||
		    json_integer_value(ci) < 0 || json_integer_value(ci) >= t->n_vocab ||
		    json_integer_value(si) < 0 || json_integer_value(si) >= t->n_vocab)
			return diag_fail(d, LLM_E_FORMAT, "%s: bad cls/sep", type);
		if (push_id(&t->prefix_ids, &t->n_prefix, (int32_t)json_integer_value(ci)) ||
		    push_id(&t->suffix_ids, &t->n_suffix, (int32_t)json_integer_value(si)))
			return LLM_E_NOMEM;
		return 1;
	}
	return diag_fail(d, LLM_E_UNSUPPORTED, "post_processor '%s' is not supported", type);
}

/* ---- merge resolution ------------------------------------------------- */

struct merge_job {
	const struct llm_tokenizer *t;
	const struct loader *L;
	size_t lo, hi;
	int32_t *out;   /* 3 ids per merge */
	int rc;
	size_t bad;     /* first merge with an unknown piece, or (size_t)-1 */
};

static void *merge_job_run(void *arg)
{
	struct merge_job *j = arg;
	struct tok_buf cat = { 0 };
	size_t i;

	for (i = j->lo; i < j->hi; i++) {
		const char *a = j->L->mbuf.p + j->L->moff[2 * i], *b = j->L->mbuf.p + j->L->moff[2 * i + 1];
		size_t al = strlen(a), bl = strlen(b);
		int ia, ib, io;

		ia = tok_strmap_find(j->t, &j->t->vocab, false, a, al);
		ib = tok_strmap_find(j->t, &j->t->vocab, false, b, bl);
		cat.len = 0;
		if (tok_buf_put(&cat, a, al) || tok_buf_put(&cat, b, bl)) {
			j->rc = LLM_E_NOMEM;
			break;
		}
		io = tok_strmap_find(j->t, &j->t->vocab, false, cat.p, cat.len);
		if (ia < 0 || ib < 0 || io < 0) {
			j->bad = i;
			break;
		}
		j->out[3 * i] = ia;
		j->out[3 * i + 1] = ib;
		j->out[3 * i + 2] = io;
	}
	tok_buf_fini(&cat);
	return NULL;
}

/* ---- the whole load ----------------------------------------------------- */

static int load_json(struct llm_tokenizer *t, const char *path, json_t *cfg, struct diag *d)
{
	struct loader L;
	char *buf = NULL;
	size_t len = 0, i;
	const char *m0, *v0 = NULL, *v1 = NULL, *g0 = NULL, *g1 = NULL;
	json_t *root = NULL, *model, *x;
	json_error_t je;
	int rc;
	size_t cap;
	int32_t max_id = -1;
	const char *mtype;
	int32_t *res_ids = NULL;

	memset(&L, 0, sizeof L);
	{
		struct diag fd;

		diag_clear(&fd);
		if (file_read_all(path, 0, &buf, &len, &fd))
			return diag_fail(d, LLM_E_IO, "%s", diag_message(&fd, path));
	}

	/* 1. the two big values with the fast scanner */
	{
		struct scan s = { buf, buf + len };

		m0 = sc_find_start(s, "model");
		if (m0 && (rc = scan_model(&L, m0, buf + len, &v0, &v1, &g0, &g1, path, d)))
			goto out;
	}
	/* cut them out: jansson parses the rest with "0" in their place */
	if (v0 || g0) {
		const char *c0 = v0, *c1 = v1, *e0 = g0, *e1 = g1;
		size_t w = 0;

		if (!c0 || (e0 && e0 < c0)) { /* order the two spans */
			const char *t0 = c0, *t1 = c1;

			c0 = e0;
			c1 = e1;
			e0 = t0;
			e1 = t1;
		}
		/* in place: [0,c0) "0" [c1,e0) "0" [e1,len) */
		w = (size_t)(c0 - buf);
		buf[w++] = '0';
		if (e0) {
			memmove(buf + w, c1, (size_t)(e0 - c1));
			w += (size_t)(e0 - c1);
			buf[w++] = '0';
			memmove(buf + w, e1, (size_t)(buf + len - e1));
			w += (size_t)(buf + len - e1);
		} else {
			memmove(buf + w, c1, (size_t)(buf + len - c1));
			w += (size_t)(buf + len - c1);
		}
		len = w;
	}

	/* 2. the rest with jansson */
	root = json_loadb(buf, len, JSON_ALLOW_NUL, &je);
	if (!root) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		goto out;
	}
	model = json_object_get(root, "model");
	mtype = jstr(model, "type", NULL);
	if (!json_is_object(model) || (mtype && strcmp(mtype, "BPE"))) {
		rc = diag_fail(d, LLM_E_UNSUPPORTED, "%s: model type '%s' is not supported (BPE only)",
			       path, mtype ? mtype : "?");
		goto out;
	}
	if (!v0) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: model.vocab missing", path);
		goto out;
	}
	{
		const char *p = jstr(model, "continuing_subword_prefix", NULL);
		const char *s = jstr(model, "end_of_word_suffix", NULL);

		if ((p && *p) || (s && *s)) {
			rc = diag_fail(d, LLM_E_UNSUPPORTED, "%s: BPE continuing_subword_prefix/end_of_word_suffix are not supported", path);
			goto out;
		}
		x = json_object_get(model, "dropout");
		if (json_is_number(x) && json_number_value(x) > 0.0) {
			rc = diag_fail(d, LLM_E_UNSUPPORTED, "%s: BPE dropout is not supported", path);
			goto out;
		}
	}
	t->byte_fallback = jbool(model, "byte_fallback", false);
	t->fuse_unk = jbool(model, "fuse_unk", false);
	t->ignore_merges = jbool(model, "ignore_merges", false);

	/* 3. ids: vocab + added tokens */
	for (i = 0; i < L.nv; i++)
		if (L.v[i].id > max_id)
			max_id = L.v[i].id;
	x = json_object_get(root, "added_tokens");
	{
		size_t k;
		json_t *a;

		t->n_added = json_array_size(x);
		t->added = calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
		if (!t->added) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		json_array_foreach(x, k, a) {
			struct tok_added *e = &t->added[k];
			json_t *idv = json_object_get(a, "id");
			const char *c;
			size_t cl;

			c = jstr(a, "content", &cl);
			if (!c || !json_is_integer(idv) || json_integer_value(idv) < 0 ||
			    json_integer_value(idv) >= INT32_MAX - 1) {
				rc = diag_fail(d, LLM_E_FORMAT, "%s: added_tokens[%zu] is malformed", path, k);
				goto out;
			}
			e->id = (int32_t)json_integer_value(idv);
			if (!(e->content = memdup0(c, cl))) {
				rc = LLM_E_NOMEM;
				goto out;
			}
			e->len = cl;
			e->special = jbool(a, "special", false);
			e->lstrip = jbool(a, "lstrip", false);
			e->rstrip = jbool(a, "rstrip", false);
			e->normalized = jbool(a, "normalized", !e->special);
			e->single_word = jbool(a, "single_word", false);
			if (e->id > max_id)
				max_id = e->id;
		}
	}
	if (max_id < 0) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: empty vocabulary", path);
		goto out;
	}
	t->n_vocab = max_id + 1;
	t->piece_off = calloc((size_t)t->n_vocab, sizeof *t->piece_off);
	t->piece_len = calloc((size_t)t->n_vocab, sizeof *t->piece_len);
	t->flags = calloc((size_t)t->n_vocab, 1);
	t->byte_val = calloc((size_t)t->n_vocab, 1);
	if (!t->piece_off || !t->piece_len || !t->flags || !t->byte_val) {
		rc = LLM_E_NOMEM;
		goto out;
	}
	memset(t->flags, TOK_F_UNUSED, (size_t)t->n_vocab);
	/* the arena: vocab pieces as scanned (NUL-separated), then added
	 * contents; offset 0 stays an empty string for unused ids */
	{
		struct tok_buf ar = L.pieces;
		size_t base;

		memset(&L.pieces, 0, sizeof L.pieces);
		if (ar.len == 0 && tok_buf_put(&ar, "", 1)) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		/* unused ids point at the NUL after the first piece */
		for (i = 0; i < L.nv; i++) {
			int32_t id = L.v[i].id;

			t->piece_off[id] = L.v[i].off;
			t->piece_len[id] = L.v[i].len;
			t->flags[id] = 0;
		}
		base = ar.len;
		if (tok_buf_put(&ar, "", 1)) {
			tok_buf_fini(&ar);
			rc = LLM_E_NOMEM;
			goto out;
		}
		for (i = 0; i < (size_t)t->n_vocab; i++)
			if (t->flags[i] & TOK_F_UNUSED)
				t->piece_off[i] = (uint32_t)base;
		for (i = 0; i < t->n_added; i++) {
			struct tok_added *e = &t->added[i];
			size_t off = ar.len;

			if (tok_buf_put(&ar, e->content, e->len + 1) || ar.len > UINT32_MAX) {
				tok_buf_fini(&ar);
				rc = LLM_E_NOMEM;
				goto out;
			}
			/* an added token that is also the same vocab string keeps
			 * the vocab's piece, so the vocab map still finds it */
			if ((t->flags[e->id] & TOK_F_UNUSED) || t->piece_len[e->id] != e->len ||
			    memcmp(ar.p + t->piece_off[e->id], e->content, e->len) != 0) {
				t->piece_off[e->id] = (uint32_t)off;
				t->piece_len[e->id] = (uint32_t)e->len;
			}
			t->flags[e->id] = (uint8_t)(TOK_F_ADDED | (e->special ? TOK_F_SPECIAL : 0));
		}
		if (ar.len > UINT32_MAX) {
			tok_buf_fini(&ar);
			rc = diag_fail(d, LLM_E_FORMAT, "%s: vocabulary too large", path);
			goto out;
		}
		t->arena = ar.p;
		t->arena_len = ar.len;
	}

	/* 4. vocab map: model vocab strings (as HF's BPE.vocab) */
	if ((rc = strmap_init(&t->vocab, L.nv)))
		goto out;
	for (i = 0; i < L.nv; i++) {
		int32_t id = L.v[i].id;

		/* the arena piece of an added id may differ from the vocab
		 * string; the map is keyed by piece text, so only insert ids
		 * whose piece is the vocab string */
		if (t->piece_off[id] == L.v[i].off)
			strmap_insert(t, &t->vocab, false, (uint32_t)id);
	}
	for (i = 0; i < 256; i++) {
		char name[8];

		snprintf(name, sizeof name, "<0x%02X>", (unsigned)i);
		t->fallback_id[i] = tok_strmap_find(t, &t->vocab, false, name, 6);
		if (t->fallback_id[i] >= 0) {
			t->flags[t->fallback_id[i]] |= TOK_F_BYTE;
			t->byte_val[t->fallback_id[i]] = (uint8_t)i;
		}
	}
	{
		const char *u = jstr(model, "unk_token", NULL);

		t->unk_id = u ? tok_strmap_find(t, &t->vocab, false, u, strlen(u)) : -1;
		if (u && t->unk_id < 0) {
			rc = diag_fail(d, LLM_E_FORMAT, "%s: unk_token '%s' is not in the vocabulary", path, u);
			goto out;
		}
	}

	/* 5. pipeline */
	cap = 0;
	if ((rc = read_normalizer(t, json_object_get(root, "normalizer"), &cap, d)))
		goto ctx;
	cap = 0;
	if ((rc = read_pretok(t, json_object_get(root, "pre_tokenizer"), &cap, d)))
		goto ctx;
	cap = 0;
	if ((rc = read_decoder(t, json_object_get(root, "decoder"), &cap, d)))
		goto ctx;

	/* 6. byte-level: decoded bytes of every piece, and their map */
	{
		struct tok_buf rb = { 0 };
		size_t id;

		t->raw_off = calloc((size_t)t->n_vocab, sizeof *t->raw_off);
		t->raw_len = calloc((size_t)t->n_vocab, sizeof *t->raw_len);
		if (!t->raw_off || !t->raw_len) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		for (i = 0; i < 256; i++)
			t->byte_id[i] = -1;
		if (tok_buf_reserve(&rb, t->arena_len)) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		for (id = 0; id < (size_t)t->n_vocab; id++) {
			const unsigned char *s = (const unsigned char *)t->arena + t->piece_off[id];
			size_t n = t->piece_len[id], k = 0, start = rb.len;
			bool ok = true;

			while (k < n) {
				uint32_t cp;
				int l = tok_utf8_len(s + k, n - k), b;

				if (l == 0) {
					ok = false;
					break;
				}
				cp = l == 1 ? s[k] : l == 2 ? (uint32_t)(s[k] & 0x1F) << 6 | (s[k + 1] & 0x3F)
							    : 0x110000;
				b = tok_cp_to_byte(cp);
				if (b < 0) {
					ok = false;
					break;
				}
				rb.p[rb.len++] = (char)b;
				k += (size_t)l;
			}
			if (!ok) { /* not byte-level: the piece's own bytes */
				rb.len = start;
				memcpy(rb.p + rb.len, s, n);
				rb.len += n;
			}
			t->raw_off[id] = (uint32_t)start;
			t->raw_len[id] = (uint32_t)(rb.len - start);
			if (!ok)
				t->raw_len[id] |= 0x80000000u; /* marks "not byte-level" */
		}
		t->raw_arena = rb.p;
		if (t->byte_level) {
			if ((rc = strmap_init(&t->raw, L.nv)))
				goto out;
			for (i = 0; i < L.nv; i++) {
				int32_t id2 = L.v[i].id;

				if (t->piece_off[id2] != L.v[i].off || (t->raw_len[id2] & 0x80000000u))
					continue;
				strmap_insert(t, &t->raw, true, (uint32_t)id2);
				if (t->raw_len[id2] == 1)
					t->byte_id[(uint8_t)t->raw_arena[t->raw_off[id2]]] = id2;
			}
		}
		for (id = 0; id < (size_t)t->n_vocab; id++)
			t->raw_len[id] &= 0x7FFFFFFFu;
	}

	/* 7. merges: resolve (a, b, a+b) to ids, half of them on a helper
	 * thread (read-only lookups; ~40% of Llama-3's load time), then
	 * insert in rank order so that a duplicate pair keeps its last rank */
	if ((rc = merges_init(&t->merges, L.nm)))
		goto out;
	{
		struct merge_job jobs[2] = {
			{ t, &L, 0, L.nm / 2, NULL, 0, (size_t)-1 },
			{ t, &L, L.nm / 2, L.nm, NULL, 0, (size_t)-1 },
		};
		pthread_t th;
		bool threaded = false;

		res_ids = malloc((L.nm ? L.nm : 1) * 3 * sizeof *res_ids);
		if (!res_ids) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		jobs[0].out = jobs[1].out = res_ids;
		if (L.nm > 20000)
			threaded = pthread_create(&th, NULL, merge_job_run, &jobs[1]) == 0;
		merge_job_run(&jobs[0]);
		if (threaded)
			pthread_join(th, NULL);
		else
			merge_job_run(&jobs[1]);
		for (i = 0; i < 2; i++) {
			if (jobs[i].rc) {
				rc = jobs[i].rc;
				goto out;
			}
			if (jobs[i].bad != (size_t)-1) {
				size_t k = jobs[i].bad;

				rc = diag_fail(d, LLM_E_FORMAT,
					       "%s: merge %zu ('%s' '%s') uses a piece that is not in the vocabulary",
					       path, k, L.mbuf.p + L.moff[2 * k], L.mbuf.p + L.moff[2 * k + 1]);
				goto out;
			}
		}
		for (i = 0; i < L.nm; i++)
			merges_insert(&t->merges, res_ids[3 * i], res_ids[3 * i + 1], (uint32_t)i,
				      res_ids[3 * i + 2]);
	}

	/* 8. added-token tries */
	for (i = 0; i < t->n_added; i++) {
		struct tok_added *e = &t->added[i];

		rc = trie_add(e->normalized ? &t->trie_norm : &t->trie_raw, e->content, e->len, (int32_t)i);
		if (rc)
			goto out;
	}
	t->trie_raw.empty = t->trie_raw.n <= 1;
	t->trie_norm.empty = t->trie_norm.n <= 1;

	/* 9. special tokens around a sequence */
	rc = read_post(t, json_object_get(root, "post_processor"), d);
	if (rc < 0)
		goto ctx;
	t->bos_id = lookup_token(t, config_token(cfg, "bos_token"));
	t->eos_id = lookup_token(t, config_token(cfg, "eos_token"));
	if (rc == 0) {
		/* no post-processor decided: tokenizer_config.json's flags */
		if (jbool(cfg, "add_bos_token", false) && t->bos_id >= 0 &&
		    push_id(&t->prefix_ids, &t->n_prefix, t->bos_id)) {
			rc = LLM_E_NOMEM;
			goto out;
		}
		if (jbool(cfg, "add_eos_token", false) && t->eos_id >= 0 &&
		    push_id(&t->suffix_ids, &t->n_suffix, t->eos_id)) {
			rc = LLM_E_NOMEM;
			goto out;
		}
	}
	if (t->bos_id < 0 && t->n_prefix == 1)
		t->bos_id = t->prefix_ids[0];
	rc = 0;
	goto out;
ctx:
	diag_prefix(d, "%s", path);
out:
	if (rc == LLM_E_NOMEM)
		diag_fail(d, rc, "%s: out of memory", path);
	json_decref(root);
	free(buf);
	tok_buf_fini(&L.pieces);
	tok_buf_fini(&L.mbuf);
	free(L.v);
	free(L.moff);
	free(res_ids);
	return rc;
}

int llm_tokenizer_open(const char *path, struct llm_tokenizer **out, struct diag *d)
{
	struct llm_tokenizer *t;
	char *json_path = NULL, *cfg_path = NULL;
	json_t *cfg = NULL;
	int rc;

	if (!path || !out)
		return diag_fail(d, LLM_E_INVALID, "llm_tokenizer_open: NULL argument");
	*out = NULL;
	if (file_is_dir(path)) {
		json_path = file_join(path, "tokenizer.json");
		cfg_path = file_join(path, "tokenizer_config.json");
	} else {
		const char *slash = strrchr(path, '/');
		char *dir = slash ? memdup0(path, (size_t)(slash - path)) : memdup0(".", 1);

		json_path = memdup0(path, strlen(path));
		cfg_path = dir ? file_join(dir, "tokenizer_config.json") : NULL;
		free(dir);
	}
	if (!json_path || !cfg_path) {
		free(json_path);
		free(cfg_path);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	if (file_is_file(cfg_path)) {
		json_error_t je;

		cfg = json_load_file(cfg_path, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
		if (!cfg || !json_is_object(cfg)) {
			rc = diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s", cfg_path, je.line, je.column,
				       cfg ? "not an object" : je.text);
			json_decref(cfg);
			free(json_path);
			free(cfg_path);
			return rc;
		}
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
	} else {
		t->bos_id = t->eos_id = t->unk_id = -1;
		rc = load_json(t, json_path, cfg, d);
	}
	json_decref(cfg);
	free(json_path);
	free(cfg_path);
	if (rc) {
		llm_tokenizer_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void llm_tokenizer_free(struct llm_tokenizer *t)
{
	size_t i;

	if (!t)
		return;
	free(t->piece_off);
	free(t->piece_len);
	free(t->flags);
	free(t->byte_val);
	free(t->arena);
	free(t->vocab.slot);
	free(t->raw_off);
	free(t->raw_len);
	free(t->raw_arena);
	free(t->raw.slot);
	free(t->merges.key);
	free(t->merges.rank);
	free(t->merges.out);
	for (i = 0; i < t->n_norm; i++) {
		tok_pattern_fini(&t->norm[i].pat);
		free(t->norm[i].content);
	}
	free(t->norm);
	for (i = 0; i < t->n_pre; i++)
		tok_pattern_fini(&t->pre[i].pat);
	free(t->pre);
	for (i = 0; i < t->n_dec; i++) {
		free(t->dec[i].from);
		free(t->dec[i].to);
	}
	free(t->dec);
	for (i = 0; i < t->n_added; i++)
		free(t->added[i].content);
	free(t->added);
	free(t->trie_raw.node);
	free(t->trie_norm.node);
	free(t->prefix_ids);
	free(t->suffix_ids);
	free(t);
}
