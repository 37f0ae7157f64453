/* inference/tokenizer_bpe.c — the BPE model: one pre-tokenized word in,
 * token ids out, exactly as HF tokenizers' BPE::merge_word + Word::merge_all.
 *
 * Merge order: always the pair with the lowest rank, the leftmost one on
 * ties.  Short words scan their pairs directly; long words (SentencePiece
 * models have no pre-tokenizer, so a whole paragraph is one word) use a
 * binary heap of (rank, position) over a doubly linked symbol list, with
 * stale entries skipped on pop, as HF does — O(n log n).
 *
 * Byte-level models work on raw bytes: the symbols of a word are the ids of
 * its single bytes (tok->byte_id) and a whole-word lookup (ignore_merges)
 * uses the map of decoded pieces, so no "Ġ" strings are ever built.
 *
 * Reads the tokenizer only; all scratch is in struct tok_scratch.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"
#include "inference/tokenizer_impl.h"

static inline bool merge_find(const struct tok_merge_map *m, int32_t a, int32_t b,
			      uint32_t *rank, int32_t *out)
{
	uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;

	if (!m->key)
		return false;
	for (;; i = (i + 1) & m->mask) {
		uint64_t v = m->key[i];

		if (v == k) {
			*rank = m->rank[i];
			*out = m->out[i];
			return true;
		}
		if (!v)
			return false;
	}
}

static int sym_reserve(struct tok_scratch *sc, size_t n)
{
	if (n > sc->sym_cap) {
		size_t cap = sc->sym_cap ? sc->sym_cap : 64;
		struct tok_sym *s;

		while (cap < n)
			cap *= 2;
		s = realloc(sc->sym, cap * sizeof *s);
		if (!s)
			return LLM_E_NOMEM;
		sc->sym = s;
		sc->sym_cap = cap;
	}
	return 0;
}

/* heap ordered by (rank, pos) ascending */
static inline bool heap_less(struct tok_heap_ent a, struct tok_heap_ent b)
{
	return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static int heap_push(struct tok_scratch *sc, size_t *n, uint32_t rank, uint32_t pos)
{
	size_t i;

	if (*n == sc->heap_cap) {
		size_t cap = sc->heap_cap ? sc->heap_cap * 2 : 64;
		struct tok_heap_ent *h = realloc(sc->heap, cap * sizeof *h);

		if (!h)
			return LLM_E_NOMEM;
		sc->heap = h;
		sc->heap_cap = cap;
	}
	i = (*n)++;
	sc->heap[i] = (struct tok_heap_ent){ rank, pos };
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!heap_less(sc->heap[i], sc->heap[p]))
			break;
		{
			struct tok_heap_ent t = sc->heap[i];

			sc->heap[i] = sc->heap[p];
			sc->heap[p] = t;
		}
		i = p;
	}
	return 0;
}

static struct tok_heap_ent heap_pop(struct tok_scratch *sc, size_t *n)
{
	struct tok_heap_ent top = sc->heap[0];
	size_t i = 0;

	sc->heap[0] = sc->heap[--(*n)];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < *n && heap_less(sc->heap[l], sc->heap[m]))
			m = l;
		if (r < *n && heap_less(sc->heap[r], sc->heap[m]))
			m = r;
		if (m == i)
			break;
		{
			struct tok_heap_ent t = sc->heap[i];

			sc->heap[i] = sc->heap[m];
			sc->heap[m] = t;
		}
		i = m;
	}
	return top;
}

static void merge_at(struct tok_sym *s, int32_t p, int32_t id)
{
	int32_t q = s[p].next;

	s[p].id = id;
	s[p].len += s[q].len;
	s[p].next = s[q].next;
	if (s[q].next >= 0)
		s[s[q].next].prev = p;
	s[q].len = 0;
}

static int merge_all(const struct llm_tokenizer *t, struct tok_scratch *sc, size_t n)
{
	struct tok_sym *s = sc->sym;
	size_t hn = 0, i;
	uint32_t rank;
	int32_t out;

	if (n < 2)
		return 0;
	if (n <= 48) {
		/* direct scan: lowest rank, leftmost on ties */
		for (;;) {
			int32_t best = -1, p, best_out = 0;
			uint32_t best_rank = UINT32_MAX;

			for (p = 0; p >= 0 && s[p].next >= 0; p = s[p].next)
				if (merge_find(&t->merges, s[p].id, s[s[p].next].id, &rank, &out) &&
				    rank < best_rank) {
					best_rank = rank;
					best = p;
					best_out = out;
				}
			if (best < 0)
				return 0;
			merge_at(s, best, best_out);
		}
	}
	for (i = 0; i + 1 < n; i++)
		if (merge_find(&t->merges, s[i].id, s[i + 1].id, &rank, &out) &&
		    heap_push(sc, &hn, rank, (uint32_t)i))
			return LLM_E_NOMEM;
	while (hn) {
		struct tok_heap_ent top = heap_pop(sc, &hn);
		int32_t p = (int32_t)top.pos, q;

		if (s[p].len == 0 || (q = s[p].next) < 0)
			continue;
		if (!merge_find(&t->merges, s[p].id, s[q].id, &rank, &out) || rank != top.rank)
			continue;
		merge_at(s, p, out);
		if (s[p].prev >= 0 &&
		    merge_find(&t->merges, s[s[p].prev].id, s[p].id, &rank, &out) &&
		    heap_push(sc, &hn, rank, (uint32_t)s[p].prev))
			return LLM_E_NOMEM;
		if (s[p].next >= 0 &&
		    merge_find(&t->merges, s[p].id, s[s[p].next].id, &rank, &out) &&
		    heap_push(sc, &hn, rank, (uint32_t)p))
			return LLM_E_NOMEM;
	}
	return 0;
}

static inline void sym_add(struct tok_scratch *sc, size_t *n, int32_t id, uint32_t len)
{
	struct tok_sym *s = &sc->sym[*n];

	s->id = id;
	s->len = len;
	s->prev = (int32_t)*n - 1;
	s->next = (int32_t)*n + 1;
	(*n)++;
}

int tok_bpe_word(const struct llm_tokenizer *t, struct tok_scratch *sc,
		 const char *w, size_t n, struct tok_ids *out)
{
	size_t ns = 0, i;
	int32_t p;
	int rc;

	if (n == 0)
		return 0;
	if (n > (size_t)INT32_MAX / 2)
		return LLM_E_LIMIT;
	if (t->ignore_merges) {
		int id = t->byte_level ? tok_strmap_find(t, &t->raw, true, w, n)
				       : tok_strmap_find(t, &t->vocab, false, w, n);

		if (id >= 0)
			return tok_ids_push(out, id);
	}
	/* each byte may become one symbol */
	if ((rc = sym_reserve(sc, n + 1)))
		return rc;
	if (t->byte_level) {
		int32_t unk = -1;
		uint32_t unk_len = 0;

		for (i = 0; i < n; i++) {
			int32_t id = t->byte_id[(uint8_t)w[i]];

			if (id >= 0) {
				if (unk >= 0) {
					sym_add(sc, &ns, unk, unk_len);
					unk = -1;
				}
				sym_add(sc, &ns, id, 1);
			} else if (t->unk_id >= 0) {
				if (unk >= 0 && !t->fuse_unk) {
					sym_add(sc, &ns, unk, unk_len);
					unk = -1;
				}
				unk_len = unk >= 0 ? unk_len + 1 : 1;
				unk = t->unk_id;
			}
		}
		if (unk >= 0)
			sym_add(sc, &ns, unk, unk_len);
	} else {
		int32_t unk = -1;
		uint32_t unk_len = 0;

		for (i = 0; i < n;) {
			int l = tok_utf8_len((const unsigned char *)w + i, n - i);
			int id;

			if (l <= 0)
				l = 1; /* cannot happen: text is repaired UTF-8 */
			id = tok_strmap_find(t, &t->vocab, false, w + i, (size_t)l);
			if (id >= 0) {
				if (unk >= 0) {
					sym_add(sc, &ns, unk, unk_len);
					unk = -1;
				}
				sym_add(sc, &ns, id, (uint32_t)l);
			} else {
				bool done = false;

				if (t->byte_fallback) {
					int k;

					for (k = 0; k < l && t->fallback_id[(uint8_t)w[i + k]] >= 0; k++)
						;
					if (k == l) {
						/* HF adds these without flushing a
						 * pending unk first */
						for (k = 0; k < l; k++)
							sym_add(sc, &ns, t->fallback_id[(uint8_t)w[i + k]], 1);
						done = true;
					}
				}
				if (!done && t->unk_id >= 0) {
					if (unk >= 0 && !t->fuse_unk) {
						sym_add(sc, &ns, unk, unk_len);
						unk = -1;
					}
					unk_len = unk >= 0 ? unk_len + (uint32_t)l : (uint32_t)l;
					unk = t->unk_id;
				}
			}
			i += (size_t)l;
		}
		if (unk >= 0)
			sym_add(sc, &ns, unk, unk_len);
	}
	if (ns == 0)
		return 0;
	sc->sym[ns - 1].next = -1;
	if ((rc = merge_all(t, sc, ns)))
		return rc;
	for (p = 0; p >= 0; p = sc->sym[p].next)
		if ((rc = tok_ids_push(out, sc->sym[p].id)))
			return rc;
	return 0;
}
