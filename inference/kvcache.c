/* inference/kvcache.c — bookkeeping of the paged KV pool: which page is
 * free, used (reference-counted) or cached (content known, unreferenced),
 * the chained-hash table of full pages for prefix reuse, LRU eviction and
 * page reservations for admitted jobs.  Pure host data; the K/V tensors
 * live in the context (model_impl.h).  States and invariants: see
 * inference/engine_impl.h.  Every operation is O(1) except lookups, which
 * walk one hash bucket and compare one page of ids.  Not thread-safe (the
 * engine thread owns it).
 */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "inference/engine_impl.h"

int llm_kvc_init(struct llm_kvcache *kc, size_t n_pages, struct diag *d)
{
	size_t i;

	memset(kc, 0, sizeof *kc);
	kc->lru_head = kc->lru_tail = -1;
	if (n_pages == 0 || n_pages > (size_t)INT32_MAX / LLM_KV_PAGE)
		return diag_fail(d, LLM_E_INVALID, "KV pool of %zu pages", n_pages);
	kc->n_pages = n_pages;
	/* about two buckets per page keeps chains short */
	kc->n_buckets = 16;
	while (kc->n_buckets < 2 * n_pages)
		kc->n_buckets *= 2;
	kc->pages = calloc(n_pages, sizeof *kc->pages);
	kc->tokens = malloc(n_pages * LLM_KV_PAGE * sizeof *kc->tokens);
	kc->free_stack = malloc(n_pages * sizeof *kc->free_stack);
	kc->buckets = malloc(kc->n_buckets * sizeof *kc->buckets);
	if (!kc->pages || !kc->tokens || !kc->free_stack || !kc->buckets) {
		llm_kvc_fini(kc);
		return diag_fail(d, LLM_E_NOMEM, "out of memory (KV page table)");
	}
	for (i = 0; i < kc->n_buckets; i++)
		kc->buckets[i] = -1;
	/* pop order 0, 1, 2...: the stack holds the highest index at the bottom */
	for (i = 0; i < n_pages; i++) {
		kc->free_stack[i] = (int32_t)(n_pages - 1 - i);
		kc->pages[i].hnext = kc->pages[i].lru_prev = kc->pages[i].lru_next = -1;
	}
	kc->n_free = n_pages;
	return 0;
}

void llm_kvc_fini(struct llm_kvcache *kc)
{
	free(kc->pages);
	free(kc->tokens);
	free(kc->free_stack);
	free(kc->buckets);
	memset(kc, 0, sizeof *kc);
	kc->lru_head = kc->lru_tail = -1;
}

/* splitmix64's finaliser: a strong 64-bit mix */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t llm_kvc_key(uint64_t parent, const int32_t *ids)
{
	uint64_t h = mix64(parent ^ 0x5851f42d4c957f2dull);
	size_t i;

	for (i = 0; i < LLM_KV_PAGE; i++)
		h = mix64(h ^ ((uint64_t)(uint32_t)ids[i] + 0x632be59bd9b4e019ull * (i + 1)));
	/* never the seed itself, so a key cannot pose as "no parent" */
	return h == LLM_KVC_SEED ? h + 1 : h;
}

static size_t bucket_of(const struct llm_kvcache *kc, uint64_t key)
{
	return (size_t)(key & (kc->n_buckets - 1));
}

int32_t llm_kvc_find(const struct llm_kvcache *kc, uint64_t key, uint64_t parent,
		     const int32_t *ids)
{
	int32_t p;

	for (p = kc->buckets[bucket_of(kc, key)]; p >= 0; p = kc->pages[p].hnext) {
		const struct llm_kvc_page *pg = &kc->pages[p];

		/* the ids are compared too: a 64-bit collision must not hand
		 * out another text's K/V */
		if (pg->key == key && pg->parent == parent &&
		    memcmp(kc->tokens + (size_t)p * LLM_KV_PAGE, ids,
			   LLM_KV_PAGE * sizeof *ids) == 0)
			return p;
	}
	return -1;
}

size_t llm_kvc_available(const struct llm_kvcache *kc)
{
	size_t have = kc->n_free + kc->n_cached;

	return have > kc->n_reserved ? have - kc->n_reserved : 0;
}

static void lru_remove(struct llm_kvcache *kc, int32_t p)
{
	struct llm_kvc_page *pg = &kc->pages[p];

	if (pg->lru_prev >= 0)
		kc->pages[pg->lru_prev].lru_next = pg->lru_next;
	else
		kc->lru_head = pg->lru_next;
	if (pg->lru_next >= 0)
		kc->pages[pg->lru_next].lru_prev = pg->lru_prev;
	else
		kc->lru_tail = pg->lru_prev;
	pg->lru_prev = pg->lru_next = -1;
	kc->n_cached--;
}

static void lru_append(struct llm_kvcache *kc, int32_t p)
{
	struct llm_kvc_page *pg = &kc->pages[p];

	pg->lru_next = -1;
	pg->lru_prev = kc->lru_tail;
	if (kc->lru_tail >= 0)
		kc->pages[kc->lru_tail].lru_next = p;
	else
		kc->lru_head = p;
	kc->lru_tail = p;
	kc->n_cached++;
}

static void unhash(struct llm_kvcache *kc, int32_t p)
{
	int32_t *link = &kc->buckets[bucket_of(kc, kc->pages[p].key)];

	while (*link != p) {
		assert(*link >= 0);
		link = &kc->pages[*link].hnext;
	}
	*link = kc->pages[p].hnext;
	kc->pages[p].hnext = -1;
	kc->pages[p].hashed = false;
}

int llm_kvc_ref(struct llm_kvcache *kc, int32_t page)
{
	struct llm_kvc_page *pg = &kc->pages[page];

	assert(page >= 0 && (size_t)page < kc->n_pages);
	if (pg->ref == 0) {
		/* a cached page may be what an earlier reservation counts on */
		assert(pg->hashed);
		if (llm_kvc_available(kc) < 1)
			return LLM_E_NOSPACE;
		lru_remove(kc, page);
	}
	pg->ref++;
	return 0;
}

void llm_kvc_unref(struct llm_kvcache *kc, int32_t page)
{
	struct llm_kvc_page *pg = &kc->pages[page];

	assert(page >= 0 && (size_t)page < kc->n_pages && pg->ref > 0);
	if (--pg->ref > 0)
		return;
	if (pg->hashed)
		lru_append(kc, page);
	else
		kc->free_stack[kc->n_free++] = page;
}

int llm_kvc_reserve(struct llm_kvcache *kc, size_t n)
{
	if (llm_kvc_available(kc) < n)
		return LLM_E_NOSPACE;
	kc->n_reserved += n;
	return 0;
}

void llm_kvc_unreserve(struct llm_kvcache *kc, size_t n)
{
	assert(n <= kc->n_reserved);
	kc->n_reserved -= n;
}

int32_t llm_kvc_take(struct llm_kvcache *kc)
{
	int32_t p;

	assert(kc->n_reserved > 0 && kc->n_free + kc->n_cached > 0);
	kc->n_reserved--;
	if (kc->n_free > 0) {
		p = kc->free_stack[--kc->n_free];
	} else {
		p = kc->lru_head;
		lru_remove(kc, p);
		unhash(kc, p);
		kc->n_evicted++;
	}
	kc->pages[p].ref = 1;
	return p;
}

void llm_kvc_publish(struct llm_kvcache *kc, int32_t page, uint64_t key,
		     uint64_t parent, const int32_t *ids)
{
	struct llm_kvc_page *pg = &kc->pages[page];
	size_t b;

	assert(page >= 0 && (size_t)page < kc->n_pages && pg->ref > 0);
	if (pg->hashed || llm_kvc_find(kc, key, parent, ids) >= 0)
		return;
	memcpy(kc->tokens + (size_t)page * LLM_KV_PAGE, ids, LLM_KV_PAGE * sizeof *ids);
	pg->key = key;
	pg->parent = parent;
	pg->hashed = true;
	b = bucket_of(kc, key);
	pg->hnext = kc->buckets[b];
	kc->buckets[b] = page;
}

size_t llm_kvc_n_used(const struct llm_kvcache *kc)
{
	return kc->n_pages - kc->n_free - kc->n_cached;
}
