/* tests/inference/test_kvcache.c — suite `kvcache`: the KV page pool's
 * bookkeeping (inference/kvcache.c): reference counts, the chained page
 * keys, lookups that compare the ids, LRU eviction of unreferenced cached
 * pages, and reservations that can always be honoured.  Pure host logic:
 * no model is loaded.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "inference/engine_impl.h"

static void fill(int32_t *ids, int32_t base)
{
	for (int i = 0; i < LLM_KV_PAGE; i++)
		ids[i] = base + i;
}

static void init(struct llm_kvcache *kc, size_t n)
{
	struct diag d = { 0 };

	ck_assert_msg(llm_kvc_init(kc, n, &d) == 0, "%s", d.msg);
}

START_TEST(test_key_chain)
{
	int32_t a[LLM_KV_PAGE], b[LLM_KV_PAGE];
	uint64_t ka, kb;

	fill(a, 0);
	memcpy(b, a, sizeof a);
	ka = llm_kvc_key(LLM_KVC_SEED, a);
	ck_assert(ka == llm_kvc_key(LLM_KVC_SEED, b));
	/* one id changed, or the same ids after another parent: other key */
	b[LLM_KV_PAGE - 1]++;
	kb = llm_kvc_key(LLM_KVC_SEED, b);
	ck_assert(ka != kb);
	ck_assert(llm_kvc_key(ka, a) != llm_kvc_key(kb, a));
	/* order matters */
	memcpy(b, a, sizeof a);
	b[0] = a[1];
	b[1] = a[0];
	ck_assert(llm_kvc_key(LLM_KVC_SEED, b) != ka);
}
END_TEST

START_TEST(test_publish_find_lru)
{
	struct llm_kvcache kc;
	int32_t a[LLM_KV_PAGE], b[LLM_KV_PAGE];
	uint64_t ka, kb;
	int32_t p0, p1, p2;

	init(&kc, 3);
	fill(a, 10);
	fill(b, 1000);
	ka = llm_kvc_key(LLM_KVC_SEED, a);
	kb = llm_kvc_key(ka, b);
	ck_assert_int_eq(llm_kvc_available(&kc), 3);
	ck_assert_int_eq(llm_kvc_reserve(&kc, 2), 0);
	ck_assert_int_eq(llm_kvc_available(&kc), 1);
	p0 = llm_kvc_take(&kc);
	p1 = llm_kvc_take(&kc);
	ck_assert_int_ne(p0, p1);
	ck_assert_int_eq(llm_kvc_n_used(&kc), 2);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, a), -1);
	llm_kvc_publish(&kc, p0, ka, LLM_KVC_SEED, a);
	llm_kvc_publish(&kc, p1, kb, ka, b);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, a), p0);
	ck_assert_int_eq(llm_kvc_find(&kc, kb, ka, b), p1);
	/* same key but other parent or other ids: not found */
	ck_assert_int_eq(llm_kvc_find(&kc, kb, LLM_KVC_SEED, b), -1);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, b), -1);

	/* shared by a second job, released by both: cached, not free */
	ck_assert_int_eq(llm_kvc_ref(&kc, p0), 0);
	llm_kvc_unref(&kc, p0);
	ck_assert_int_eq(kc.n_cached, 0);
	llm_kvc_unref(&kc, p1); /* p1 least recently used */
	llm_kvc_unref(&kc, p0);
	ck_assert_int_eq(kc.n_cached, 2);
	ck_assert_int_eq(kc.n_free, 1);
	ck_assert_int_eq(llm_kvc_n_used(&kc), 0);
	ck_assert_int_eq(llm_kvc_available(&kc), 3);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, a), p0);

	/* two takes: the free page first, then eviction of the LRU one (p1) */
	ck_assert_int_eq(llm_kvc_reserve(&kc, 2), 0);
	p2 = llm_kvc_take(&kc);
	ck_assert(p2 != p0 && p2 != p1);
	ck_assert_int_eq(llm_kvc_take(&kc), p1);
	ck_assert_int_eq(llm_kvc_find(&kc, kb, ka, b), -1);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, a), p0);
	ck_assert_int_eq(kc.n_evicted, 1);
	/* the private page goes back to the free stack */
	llm_kvc_unref(&kc, p1);
	ck_assert_int_eq(kc.n_free, 1);
	llm_kvc_unref(&kc, p2);
	llm_kvc_fini(&kc);
}
END_TEST

/* A reservation may count on a cached page; reviving that page for
 * another job must then be refused, or the reservation could not be met. */
START_TEST(test_reservation_protects_cached)
{
	struct llm_kvcache kc;
	int32_t a[LLM_KV_PAGE];
	uint64_t ka;
	int32_t p;

	init(&kc, 2);
	fill(a, 7);
	ka = llm_kvc_key(LLM_KVC_SEED, a);
	ck_assert_int_eq(llm_kvc_reserve(&kc, 1), 0);
	p = llm_kvc_take(&kc);
	llm_kvc_publish(&kc, p, ka, LLM_KVC_SEED, a);
	llm_kvc_unref(&kc, p); /* cached */
	ck_assert_int_eq(llm_kvc_reserve(&kc, 3), LLM_E_NOSPACE);
	ck_assert_int_eq(llm_kvc_reserve(&kc, 2), 0); /* free one + cached one */
	ck_assert_int_eq(llm_kvc_available(&kc), 0);
	ck_assert_int_eq(llm_kvc_ref(&kc, p), LLM_E_NOSPACE);
	llm_kvc_unreserve(&kc, 1);
	ck_assert_int_eq(llm_kvc_ref(&kc, p), 0);
	ck_assert_int_eq(llm_kvc_available(&kc), 0);
	llm_kvc_unref(&kc, p);
	llm_kvc_unreserve(&kc, 1);
	ck_assert_int_eq(llm_kvc_available(&kc), 2);
	llm_kvc_fini(&kc);
}
END_TEST

/* Publishing a second page with the same content keeps it private. */
START_TEST(test_duplicate_publish)
{
	struct llm_kvcache kc;
	int32_t a[LLM_KV_PAGE];
	uint64_t ka;
	int32_t p, q;

	init(&kc, 2);
	fill(a, 3);
	ka = llm_kvc_key(LLM_KVC_SEED, a);
	ck_assert_int_eq(llm_kvc_reserve(&kc, 2), 0);
	p = llm_kvc_take(&kc);
	q = llm_kvc_take(&kc);
	llm_kvc_publish(&kc, p, ka, LLM_KVC_SEED, a);
	llm_kvc_publish(&kc, q, ka, LLM_KVC_SEED, a);
	ck_assert_int_eq(llm_kvc_find(&kc, ka, LLM_KVC_SEED, a), p);
	llm_kvc_unref(&kc, q);
	ck_assert_int_eq(kc.n_free, 1);
	llm_kvc_unref(&kc, p);
	ck_assert_int_eq(kc.n_cached, 1);
	llm_kvc_fini(&kc);
}
END_TEST

/* Many pages through the hash table (several per bucket chain). */
START_TEST(test_many)
{
	enum { N = 64 };
	struct llm_kvcache kc;
	int32_t ids[LLM_KV_PAGE];
	uint64_t keys[N], parent = LLM_KVC_SEED;
	int32_t pages[N];
	size_t i;

	init(&kc, N);
	ck_assert_int_eq(llm_kvc_reserve(&kc, N), 0);
	for (i = 0; i < N; i++) {
		fill(ids, (int32_t)i * 3);
		pages[i] = llm_kvc_take(&kc);
		keys[i] = llm_kvc_key(parent, ids);
		llm_kvc_publish(&kc, pages[i], keys[i], parent, ids);
		parent = keys[i];
	}
	for (i = 0; i < N; i++)
		llm_kvc_unref(&kc, pages[i]);
	parent = LLM_KVC_SEED;
	for (i = 0; i < N; i++) {
		fill(ids, (int32_t)i * 3);
		ck_assert_int_eq(llm_kvc_find(&kc, keys[i], parent, ids), pages[i]);
		parent = keys[i];
	}
	ck_assert_int_eq(kc.n_cached, N);
	/* evict all in LRU (release) order */
	ck_assert_int_eq(llm_kvc_reserve(&kc, N), 0);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(llm_kvc_take(&kc), pages[i]);
	ck_assert_int_eq(kc.n_cached, 0);
	llm_kvc_fini(&kc);
}
END_TEST

Suite *kvcache_suite(void)
{
	Suite *s = suite_create("kvcache");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_key_chain);
	tcase_add_test(tc, test_publish_find_lru);
	tcase_add_test(tc, test_reservation_protects_cached);
	tcase_add_test(tc, test_duplicate_publish);
	tcase_add_test(tc, test_many);
	suite_add_tcase(s, tc);
	return s;
}
