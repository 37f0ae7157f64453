/* inference/tokenizer.c — the public tokenizer API: encode, decode, lookups
 * and the streaming decoder (struct llm_detok).
 *
 * Encode follows HF tokenizers' TokenizerImpl::encode for one sequence:
 *   1. split out added tokens that match the raw text (leftmost-longest,
 *      honouring single_word / lstrip / rstrip);
 *   2. normalize every other piece on its own, then split out the
 *      "normalized" added tokens;
 *   3. pre-tokenize, then run BPE on every resulting word;
 *   4. with add_special, wrap in the post-processor's (or
 *      tokenizer_config.json's) special tokens.
 * Input that is not valid UTF-8 is first repaired with U+FFFD (HF only ever
 * sees Rust strings).  The tokenizer is immutable after loading: encode and
 * decode may run concurrently from any number of threads.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "inference/llm.h"
#include "inference/tokenizer_impl.h"

/* ---- lookups ---------------------------------------------------------------- */

int32_t llm_tokenizer_n_vocab(const struct llm_tokenizer *t)
{
	return t ? t->n_vocab : 0;
}

int32_t llm_tokenizer_bos(const struct llm_tokenizer *t)
{
	return t ? t->bos_id : -1;
}

int32_t llm_tokenizer_eos(const struct llm_tokenizer *t)
{
	return t ? t->eos_id : -1;
}

const char *llm_tokenizer_piece(const struct llm_tokenizer *t, int32_t id, size_t *len)
{
	if (!t || id < 0 || id >= t->n_vocab || (t->flags[id] & TOK_F_UNUSED)) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = t->piece_len[id];
	return t->arena + t->piece_off[id];
}

bool llm_tokenizer_is_special(const struct llm_tokenizer *t, int32_t id)
{
	return t && id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_SPECIAL);
}

int32_t llm_tokenizer_token_id(const struct llm_tokenizer *t, const char *s)
{
	size_t i, n;

	if (!t || !s)
		return -1;
	n = strlen(s);
	/* added tokens first, as HF's token_to_id */
	for (i = 0; i < t->n_added; i++)
		if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0)
			return t->added[i].id;
	return tok_strmap_find(t, &t->vocab, false, s, n);
}

/* ---- added-token splitting ---------------------------------------------------- */

static bool is_ws(uint32_t c)
{
	return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

static bool is_word_char(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);

	return c == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
	       (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

static uint32_t cp_fwd(const char *s, size_t n, size_t *len)
{
	utf8proc_int32_t cp = 0;
	utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);

	*len = l > 0 ? (size_t)l : 1;
	return l > 0 ? (uint32_t)cp : 0xFFFD;
}

static uint32_t cp_back(const char *s, size_t end, size_t *start)
{
	size_t k = end - 1, l;

	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	*start = k;
	return cp_fwd(s + k, end - k, &l);
}

struct aseg {
	size_t a, b;
	int32_t id; /* -1: text */
};
struct asegs {
	struct aseg *v;
	size_t n, cap;
};

static int aseg_push(struct asegs *s, size_t a, size_t b, int32_t id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct aseg *v = realloc(s->v, cap * sizeof *v);

		if (!v)
			return LLM_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct aseg){ a, b, id };
	return 0;
}

/* HF AddedVocabulary::find_matches over s[0..n). */
static int split_added(const struct llm_tokenizer *t, const struct tok_trie *tr,
		       const char *s, size_t n, struct asegs *out)
{
	size_t i = 0, start_off = 0;

	out->n = 0;
	if (!tr->empty) {
		while (i < n) {
			int32_t c, best = -1;
			size_t j, best_end = 0, start, stop;
			const struct tok_added *e;

			if (!tr->first[(uint8_t)s[i]]) {
				i++;
				continue;
			}
			c = tr->node[0].child;
			for (j = i; j < n && c >= 0;) {
				while (c >= 0 && tr->node[c].byte != (uint8_t)s[j])
					c = tr->node[c].sibling;
				if (c < 0)
					break;
				j++;
				if (tr->node[c].added >= 0) {
					best = tr->node[c].added;
					best_end = j;
				}
				c = tr->node[c].child;
			}
			if (best < 0) {
				i++;
				continue;
			}
			e = &t->added[best];
			start = i;
			stop = best_end;
			i = best_end; /* matches never overlap, even skipped ones */
			if (e->single_word) {
				size_t k, l;
				bool sp_before = start == 0 || !is_word_char(cp_back(s, start, &k));
				bool sp_after = stop == n || !is_word_char(cp_fwd(s + stop, n - stop, &l));

				if (!sp_before || !sp_after)
					continue;
			}
			if (e->lstrip) {
				size_t k = start, ks;

				while (k > 0 && is_ws(cp_back(s, k, &ks)))
					k = ks;
				start = k > start_off ? k : start_off;
			}
			if (e->rstrip) {
				size_t l;

				while (stop < n && is_ws(cp_fwd(s + stop, n - stop, &l)))
					stop += l;
				i = stop;
			}
			if (start_off < start && aseg_push(out, start_off, start, -1))
				return LLM_E_NOMEM;
			if (aseg_push(out, start, stop, e->id))
				return LLM_E_NOMEM;
			start_off = stop;
		}
	}
	if (start_off < n && aseg_push(out, start_off, n, -1))
		return LLM_E_NOMEM;
	return 0;
}

/* ---- encode ----------------------------------------------------------------- */

void tok_scratch_fini(struct tok_scratch *s)
{
	tok_buf_fini(&s->text);
	tok_buf_fini(&s->tmp);
	free(s->a.v);
	free(s->b.v);
	if (s->md)
		pcre2_match_data_free(s->md);
	free(s->sym);
	free(s->heap);
	free(s->cache);
	tok_buf_fini(&s->cache_bytes);
	free(s->cache_ids.v);
	memset(s, 0, sizeof *s);
}

#define CACHE_MAX_WORD 48
#define CACHE_SLOTS (1u << 15)

/* BPE one word through the per-call cache (most words repeat). */
static int bpe_cached(const struct llm_tokenizer *t, struct tok_scratch *sc,
		      const char *w, size_t n, struct tok_ids *out)
{
	uint64_t h;
	uint32_t i;
	size_t before;
	int rc;

	if (n > CACHE_MAX_WORD)
		return tok_bpe_word(t, sc, w, n, out);
	if (!sc->cache) {
		sc->cache = calloc(CACHE_SLOTS, sizeof *sc->cache);
		if (!sc->cache)
			return tok_bpe_word(t, sc, w, n, out);
		sc->cache_mask = CACHE_SLOTS - 1;
	}
	h = tok_hash_bytes(w, n) | 1; /* 0 marks an empty slot */
	for (i = (uint32_t)h & sc->cache_mask;; i = (i + 1) & sc->cache_mask) {
		struct tok_cache_ent *e = &sc->cache[i];

		if (!e->h)
			break;
		if (e->h == h && e->len == n && memcmp(sc->cache_bytes.p + e->off, w, n) == 0) {
			uint32_t k;

			for (k = 0; k < e->n_ids; k++)
				if ((rc = tok_ids_push(out, sc->cache_ids.v[e->ids_off + k])))
					return rc;
			return 0;
		}
	}
	before = out->n;
	if ((rc = tok_bpe_word(t, sc, w, n, out)))
		return rc;
	if (sc->cache_n >= CACHE_SLOTS / 2 || sc->cache_bytes.len > (1u << 24)) {
		memset(sc->cache, 0, CACHE_SLOTS * sizeof *sc->cache);
		sc->cache_n = 0;
		sc->cache_bytes.len = 0;
		sc->cache_ids.n = 0;
		for (i = (uint32_t)h & sc->cache_mask; sc->cache[i].h; i = (i + 1) & sc->cache_mask)
			;
	}
	{
		struct tok_cache_ent e = { h, (uint32_t)sc->cache_bytes.len, (uint32_t)n,
					   (uint32_t)sc->cache_ids.n, (uint32_t)(out->n - before) };
		size_t k;

		if (tok_buf_put(&sc->cache_bytes, w, n))
			return 0; /* caching is optional */
		for (k = before; k < out->n; k++)
			if (tok_ids_push(&sc->cache_ids, out->v[k]))
				return 0;
		sc->cache[i] = e;
		sc->cache_n++;
	}
	return 0;
}

/* normalize + pre-tokenize + BPE one text segment (no added tokens in it) */
static int encode_text(const struct llm_tokenizer *t, struct tok_scratch *sc,
		       const char *s, size_t n, bool orig0, struct tok_ids *out,
		       struct asegs *nsegs, struct diag *d)
{
	struct tok_pieces words = { 0 };
	size_t k, i;
	int rc;

	if ((rc = tok_normalize(t, s, n, &sc->text, &sc->tmp, &sc->md, d)))
		return rc;
	if ((rc = split_added(t, &t->trie_norm, sc->text.p, sc->text.len, nsegs)))
		return rc;
	/* the normalized text is in sc->text; pre-tokenizers append to it */
	for (k = 0; k < nsegs->n && !rc; k++) {
		struct aseg g = nsegs->v[k];
		struct tok_piece p = { g.a, g.b - g.a, orig0 && g.a == 0 };

		if (g.id >= 0) {
			rc = tok_ids_push(out, g.id);
			continue;
		}
		words.n = 0;
		rc = tok_pretokenize(t, sc, p, &words, d);
		for (i = 0; i < words.n && !rc; i++)
			rc = bpe_cached(t, sc, sc->text.p + words.v[i].off, words.v[i].len, out);
	}
	free(words.v);
	return rc;
}

int llm_tokenizer_encode(const struct llm_tokenizer *t, const char *text, size_t len,
			 bool add_special, int32_t **ids, size_t *n_ids, struct diag *d)
{
	struct tok_scratch sc;
	struct tok_ids out = { 0 };
	struct tok_buf fixed = { 0 };
	struct asegs segs = { 0 }, nsegs = { 0 };
	size_t i;
	int rc = 0;

	if (!t || !ids || !n_ids || (!text && len))
		return diag_fail(d, LLM_E_INVALID, "llm_tokenizer_encode: bad arguments");
	*ids = NULL;
	*n_ids = 0;
	memset(&sc, 0, sizeof sc);
	if (!text)
		text = "";
	{
		/* repair invalid UTF-8 once, up front */
		size_t k = 0;

		while (k < len) {
			unsigned char c = (unsigned char)text[k];
			int l = c < 0x80 ? 1 : tok_utf8_len((const unsigned char *)text + k, len - k);

			if (!l)
				break;
			k += (size_t)l;
		}
		if (k < len) {
			if ((rc = tok_utf8_lossy(&fixed, text, len)))
				goto out;
			text = fixed.p;
			len = fixed.len;
		}
	}
	if (add_special)
		for (i = 0; i < t->n_prefix && !rc; i++)
			rc = tok_ids_push(&out, t->prefix_ids[i]);
	if (!rc)
		rc = split_added(t, &t->trie_raw, text, len, &segs);
	for (i = 0; i < segs.n && !rc; i++) {
		if (segs.v[i].id >= 0)
			rc = tok_ids_push(&out, segs.v[i].id);
		else
			rc = encode_text(t, &sc, text + segs.v[i].a, segs.v[i].b - segs.v[i].a,
					 segs.v[i].a == 0, &out, &nsegs, d);
	}
	if (add_special)
		for (i = 0; i < t->n_suffix && !rc; i++)
			rc = tok_ids_push(&out, t->suffix_ids[i]);
out:
	tok_scratch_fini(&sc);
	tok_buf_fini(&fixed);
	free(segs.v);
	free(nsegs.v);
	if (rc) {
		free(out.v);
		if (rc == LLM_E_NOMEM)
			return diag_fail(d, rc, "tokenizer: out of memory");
		return rc;
	}
	if (!out.v) /* a valid pointer even for zero ids */
		out.v = malloc(sizeof *out.v);
	if (!out.v)
		return diag_fail(d, LLM_E_NOMEM, "tokenizer: out of memory");
	*ids = out.v;
	*n_ids = out.n;
	return 0;
}

/* ---- decode ----------------------------------------------------------------- */

int llm_tokenizer_decode(const struct llm_tokenizer *t, const int32_t *ids, size_t n,
			 bool skip_special, char **text, size_t *len, struct diag *d)
{
	struct tok_buf out = { 0 };
	int32_t *keep;
	size_t i, k = 0;
	int rc;

	if (!t || !text || (!ids && n))
		return diag_fail(d, LLM_E_INVALID, "llm_tokenizer_decode: bad arguments");
	*text = NULL;
	if (len)
		*len = 0;
	keep = malloc((n ? n : 1) * sizeof *keep);
	if (!keep)
		return diag_fail(d, LLM_E_NOMEM, "tokenizer: out of memory");
	for (i = 0; i < n; i++) {
		int32_t id = ids[i];

		if (id < 0 || id >= t->n_vocab) {
			free(keep);
			return diag_fail(d, LLM_E_INVALID, "token id %ld is outside the vocabulary (0..%ld)",
					 (long)id, (long)t->n_vocab - 1);
		}
		if (t->flags[id] & TOK_F_UNUSED)
			continue; /* HF drops ids it cannot map */
		if (skip_special && (t->flags[id] & TOK_F_SPECIAL))
			continue;
		keep[k++] = id;
	}
	rc = tok_decode_chain(t, keep, k, &out);
	free(keep);
	if (rc) {
		tok_buf_fini(&out);
		return diag_fail(d, rc, "tokenizer: out of memory");
	}
	if (!out.p && tok_buf_put(&out, "", 0))
		return diag_fail(d, LLM_E_NOMEM, "tokenizer: out of memory");
	*text = out.p;
	if (len)
		*len = out.len;
	return 0;
}

/* ---- streaming decoder ---------------------------------------------------------- */

struct llm_detok {
	const struct llm_tokenizer *tok;
	bool skip_special;
	bool at_start;   /* nothing produced yet: a leading space may be stripped */
	bool strip_first; /* Strip after Fuse: one leading space of the text */
	bool strip_each;  /* Strip without Fuse: one leading space per token */
	size_t n_tokens;  /* tokens decoded since new/reset (Metaspace token 0) */
	struct tok_buf pend; /* bytes not yet emitted (an incomplete UTF-8 tail) */
	struct tok_buf tmp, tmp2;
	struct tok_buf out;
};

int llm_detok_new(const struct llm_tokenizer *tok, bool skip_special,
		  struct llm_detok **out, struct diag *d)
{
	struct llm_detok *dt;
	size_t i;

	if (!tok || !out)
		return diag_fail(d, LLM_E_INVALID, "llm_detok_new: bad arguments");
	dt = calloc(1, sizeof *dt);
	if (!dt)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	dt->tok = tok;
	dt->skip_special = skip_special;
	dt->at_start = true;
	{
		bool fused = false;

		for (i = 0; i < tok->n_dec; i++) {
			const struct tok_dec *c = &tok->dec[i];

			if (c->kind == TOK_DEC_FUSE || c->kind == TOK_DEC_BYTELEVEL)
				fused = true; /* both leave one token */
			if (c->kind == TOK_DEC_STRIP && c->start > 0 && c->strip_len == 1 &&
			    c->strip[0] == ' ') {
				if (fused)
					dt->strip_first = true;
				else
					dt->strip_each = true;
			}
		}
	}
	/* size the buffers once so that pushing allocates nothing later */
	if (tok_buf_reserve(&dt->pend, 256) || tok_buf_reserve(&dt->tmp, 256) ||
	    tok_buf_reserve(&dt->tmp2, 256) || tok_buf_reserve(&dt->out, 256)) {
		llm_detok_free(dt);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	*out = dt;
	return 0;
}

void llm_detok_free(struct llm_detok *dt)
{
	if (!dt)
		return;
	tok_buf_fini(&dt->pend);
	tok_buf_fini(&dt->tmp);
	tok_buf_fini(&dt->tmp2);
	tok_buf_fini(&dt->out);
	free(dt);
}

void llm_detok_reset(struct llm_detok *dt)
{
	if (!dt)
		return;
	dt->at_start = true;
	dt->n_tokens = 0;
	dt->pend.len = 0;
	dt->out.len = 0;
}

/* The bytes one token contributes in the middle of a sequence: the decoder
 * steps applied to this token alone (Fuse and the start-of-text Strip are
 * handled by the stream). */
static int token_bytes(struct llm_detok *dt, int32_t id, bool first)
{
	const struct llm_tokenizer *t = dt->tok;
	struct tok_buf *cur = &dt->tmp, *nxt = &dt->tmp2, *sw;
	size_t i;
	int rc;

	cur->len = 0;
	if ((rc = tok_buf_put(cur, t->arena + t->piece_off[id], t->piece_len[id])))
		return rc;
	for (i = 0; i < t->n_dec; i++) {
		const struct tok_dec *c = &t->dec[i];
		const char *from = c->kind == TOK_DEC_REPLACE ? c->from : c->repl;
		size_t fl = c->kind == TOK_DEC_REPLACE ? c->from_len : c->repl_len;
		bool drop = c->kind == TOK_DEC_METASPACE && first && c->prepend;
		const char *to = c->kind == TOK_DEC_REPLACE ? c->to : " ";
		size_t tl = c->kind == TOK_DEC_REPLACE ? c->to_len : drop ? 0 : 1;

		switch (c->kind) {
		case TOK_DEC_REPLACE:
		case TOK_DEC_METASPACE: {
			size_t a = 0;

			nxt->len = 0;
			while (a < cur->len) {
				const char *q = memmem(cur->p + a, cur->len - a, from, fl);

				if (!q) {
					rc = tok_buf_put(nxt, cur->p + a, cur->len - a);
					break;
				}
				rc = tok_buf_put(nxt, cur->p + a, (size_t)(q - (cur->p + a)));
				if (!rc)
					rc = tok_buf_put(nxt, to, tl);
				if (rc)
					break;
				a = (size_t)(q - cur->p) + fl;
			}
			if (rc)
				return rc;
			if (!nxt->p && (rc = tok_buf_put(nxt, "", 0)))
				return rc;
			sw = cur;
			cur = nxt;
			nxt = sw;
			break;
		}
		case TOK_DEC_BYTEFALLBACK:
			if (t->flags[id] & TOK_F_BYTE) {
				cur->len = 1;
				cur->p[0] = (char)t->byte_val[id];
			}
			break;
		case TOK_DEC_BYTELEVEL:
			cur->len = 0;
			if ((rc = tok_buf_put(cur, t->raw_arena + t->raw_off[id], t->raw_len[id])))
				return rc;
			break;
		case TOK_DEC_FUSE:
		case TOK_DEC_STRIP:
			break;
		}
	}
	if (cur != &dt->tmp) { /* the result always ends in tmp */
		struct tok_buf v = dt->tmp;

		dt->tmp = *cur;
		*cur = v;
	}
	return 0;
}

/* 1 when s[0..n) is the start of a valid UTF-8 sequence that is not yet
 * complete (more bytes could make it valid). */
static bool valid_prefix(const unsigned char *s, size_t n)
{
	unsigned c = s[0], lo = 0x80, hi = 0xBF;
	size_t need, k;

	if (c < 0xC2 || c > 0xF4)
		return false;
	need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	if (n >= need)
		return false;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	for (k = 1; k < n; k++)
		if (k == 1 ? (s[k] < lo || s[k] > hi) : (s[k] & 0xC0) != 0x80)
			return false;
	return true;
}

/* Move every complete UTF-8 sequence of pend to out (invalid bytes become
 * U+FFFD); keep an incomplete tail unless final. */
static int drain(struct llm_detok *dt, bool final)
{
	const unsigned char *u = (const unsigned char *)dt->pend.p;
	size_t n = dt->pend.len, i = 0;
	int rc;

	dt->out.len = 0;
	while (i < n) {
		int l = u[i] < 0x80 ? 1 : tok_utf8_len(u + i, n - i);

		if (l) {
			i += (size_t)l;
			continue;
		}
		if (!final && valid_prefix(u + i, n - i))
			break;
		i++; /* invalid: the lossy pass replaces it */
	}
	if ((rc = tok_utf8_lossy(&dt->out, n ? dt->pend.p : "", i)))
		return rc;
	if (i < n)
		memmove(dt->pend.p, dt->pend.p + i, n - i);
	dt->pend.len = n - i;
	return 0;
}

int llm_detok_push(struct llm_detok *dt, int32_t id, const char **text, size_t *len,
		   struct diag *d)
{
	const struct llm_tokenizer *t;
	int rc;

	if (!dt || !text || !len)
		return diag_fail(d, LLM_E_INVALID, "llm_detok_push: bad arguments");
	t = dt->tok;
	*text = "";
	*len = 0;
	if (id < 0 || id >= t->n_vocab)
		return diag_fail(d, LLM_E_INVALID, "token id %ld is outside the vocabulary (0..%ld)",
				 (long)id, (long)t->n_vocab - 1);
	if ((t->flags[id] & TOK_F_UNUSED) || (dt->skip_special && (t->flags[id] & TOK_F_SPECIAL)))
		return 0;
	if ((rc = token_bytes(dt, id, dt->n_tokens++ == 0)))
		return diag_fail(d, rc, "out of memory");
	{
		const char *s = dt->tmp.p;
		size_t n = dt->tmp.len;

		if (dt->strip_each && n && s[0] == ' ') {
			s++;
			n--;
		}
		if (dt->at_start && n) {
			if (dt->strip_first && s[0] == ' ') {
				s++;
				n--;
			}
			dt->at_start = false;
		}
		if ((rc = tok_buf_put(&dt->pend, s, n)))
			return diag_fail(d, rc, "out of memory");
	}
	if ((rc = drain(dt, false)))
		return diag_fail(d, rc, "out of memory");
	*text = dt->out.p;
	*len = dt->out.len;
	return 0;
}

int llm_detok_flush(struct llm_detok *dt, const char **text, size_t *len)
{
	int rc;

	if (!dt || !text || !len)
		return LLM_E_INVALID;
	*text = "";
	*len = 0;
	if ((rc = drain(dt, true)))
		return rc;
	*text = dt->out.p ? dt->out.p : "";
	*len = dt->out.len;
	return 0;
}
