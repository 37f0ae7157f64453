/* tests/inference/test_sampler.c — suite `sampler`: the sampler pipeline
 * (inference/sampler.c) and the stop / banned string matcher
 * (inference/stop.c).
 *
 * Every stage is checked for its effect on the distribution over a tiny
 * vocabulary against values worked out by hand from the stage's definition
 * (the papers / llama.cpp's semantics), written next to each case; the
 * reference softmax here is computed in double, independently of the
 * sampler's float code.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"

#define TOL 1e-5

/* Params with every stage off and temperature 1, running only `stage`
 * (then temperature). */
static struct llm_sampler_params only(enum llm_sampler_stage stage)
{
	struct llm_sampler_params p = llm_sampler_default_params();
	p.temperature = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.typical_p = 1.0f;
	p.top_n_sigma = -1.0f;
	p.xtc_probability = 0.0f;
	p.dry_multiplier = 0.0f;
	p.repeat_penalty = 1.0f;
	p.frequency_penalty = 0.0f;
	p.presence_penalty = 0.0f;
	p.seed = 42;
	p.n_order = 2;
	p.order[0] = stage;
	p.order[1] = LLM_SAMPLER_STAGE_TEMPERATURE;
	return p;
}

static struct llm_sampler *make(const struct llm_sampler_params *p, int32_t n_vocab)
{
	struct llm_sampler *s = NULL;
	struct diag d = { 0 };
	int rc = llm_sampler_new(p, n_vocab, &s, &d);
	ck_assert_msg(rc == 0, "llm_sampler_new: %d %s", rc, d.msg);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void get_probs(struct llm_sampler *s, const float *logits, float *probs)
{
	struct diag d = { 0 };
	int rc = llm_sampler_probs(s, logits, probs, &d);
	ck_assert_msg(rc == 0, "llm_sampler_probs: %d %s", rc, d.msg);
}

/* softmax over the ids with keep[i] (all when keep is NULL), in double */
static void ref_softmax(const double *l, const int *keep, int n, double *out)
{
	double mx = -INFINITY, sum = 0.0;
	for (int i = 0; i < n; i++)
		if ((!keep || keep[i]) && l[i] > mx)
			mx = l[i];
	for (int i = 0; i < n; i++) {
		out[i] = (!keep || keep[i]) ? exp(l[i] - mx) : 0.0;
		sum += out[i];
	}
	for (int i = 0; i < n; i++)
		out[i] /= sum;
}

static void assert_probs(const float *got, const double *want, int n)
{
	for (int i = 0; i < n; i++)
		ck_assert_msg(fabs(got[i] - want[i]) < TOL, "token %d: got %.7f want %.7f",
			      i, (double)got[i], want[i]);
}

/* logits whose softmax is exactly the given probabilities */
static void logits_of(const double *pr, int n, float *l)
{
	for (int i = 0; i < n; i++)
		l[i] = (float)log(pr[i]);
}

static void assert_kept(const float *l, const int *keep, int n, const float *got)
{
	double ld[64], want[64];
	for (int i = 0; i < n; i++)
		ld[i] = l[i];
	ref_softmax(ld, keep, n, want);
	assert_probs(got, want, n);
}

/* ---- defaults and parameters ---------------------------------------------- */

START_TEST(test_defaults)
{
	struct llm_sampler_params p = llm_sampler_default_params();
	ck_assert_float_eq_tol(p.temperature, 0.8f, 1e-7);
	ck_assert_int_eq(p.top_k, 40);
	ck_assert_float_eq_tol(p.top_p, 0.95f, 1e-7);
	ck_assert_float_eq_tol(p.min_p, 0.05f, 1e-7);
	ck_assert_float_eq_tol(p.typical_p, 1.0f, 1e-7);
	ck_assert(p.top_n_sigma < 0.0f);
	ck_assert_float_eq_tol(p.xtc_probability, 0.0f, 1e-7);
	ck_assert_float_eq_tol(p.xtc_threshold, 0.1f, 1e-7);
	ck_assert_float_eq_tol(p.dry_multiplier, 0.0f, 1e-7);
	ck_assert_float_eq_tol(p.dry_base, 1.75f, 1e-7);
	ck_assert_int_eq(p.dry_allowed_length, 2);
	ck_assert_int_eq(p.dry_penalty_last_n, -1);
	ck_assert_uint_eq(p.n_dry_sequence_breakers, 4);
	ck_assert_str_eq(p.dry_sequence_breakers[0], "\n");
	ck_assert_str_eq(p.dry_sequence_breakers[1], ":");
	ck_assert_str_eq(p.dry_sequence_breakers[2], "\"");
	ck_assert_str_eq(p.dry_sequence_breakers[3], "*");
	ck_assert_float_eq_tol(p.repeat_penalty, 1.0f, 1e-7);
	ck_assert_int_eq(p.penalty_last_n, 64);
	ck_assert_int_eq(p.mirostat, 0);
	ck_assert_float_eq_tol(p.mirostat_tau, 5.0f, 1e-7);
	ck_assert_float_eq_tol(p.mirostat_eta, 0.1f, 1e-7);
	ck_assert(p.seed == LLM_SAMPLER_SEED_RANDOM);
	/* llama.cpp's default order */
	static const char *const want[] = { "penalties", "dry", "top_n_sigma", "top_k",
		"typical_p", "top_p", "min_p", "xtc", "temperature" };
	ck_assert_int_eq(p.n_order, 9);
	for (int i = 0; i < 9; i++) {
		ck_assert_str_eq(llm_sampler_stage_name(p.order[i]), want[i]);
		enum llm_sampler_stage st;
		ck_assert_int_eq(llm_sampler_stage_parse(want[i], &st, NULL), 0);
		ck_assert_int_eq(st, p.order[i]);
	}
	enum llm_sampler_stage st;
	ck_assert_int_eq(llm_sampler_stage_parse("bogus", &st, NULL), LLM_E_INVALID);
}
END_TEST

START_TEST(test_invalid_params)
{
	struct llm_sampler *s = NULL;
	struct diag d = { 0 };
	struct llm_sampler_params p = llm_sampler_default_params();
	llm_sampler_free(NULL); /* no-op */
	ck_assert_int_eq(llm_sampler_new(&p, 0, &s, &d), LLM_E_INVALID);
	p.mirostat = 1;
	ck_assert_int_eq(llm_sampler_new(&p, 4, &s, &d), LLM_E_UNSUPPORTED);
	p = llm_sampler_default_params();
	struct llm_logit_bias b = { 4, 1.0f };
	p.logit_bias = &b;
	p.n_logit_bias = 1;
	ck_assert_int_eq(llm_sampler_new(&p, 4, &s, &d), LLM_E_INVALID);
	ck_assert(strstr(d.msg, "token 4") != NULL);
	p = llm_sampler_default_params();
	int32_t ban = -1;
	p.banned_tokens = &ban;
	p.n_banned_tokens = 1;
	ck_assert_int_eq(llm_sampler_new(&p, 4, &s, &d), LLM_E_INVALID);
	p = llm_sampler_default_params();
	p.order[0] = LLM_SAMPLER_STAGE_COUNT;
	ck_assert_int_eq(llm_sampler_new(&p, 4, &s, &d), LLM_E_INVALID);
	ck_assert_ptr_null(s);
}
END_TEST

/* ---- temperature and greedy ------------------------------------------------- */

START_TEST(test_temperature)
{
	const float l[4] = { 1.0f, 2.0f, 3.0f, 0.5f };
	float got[4];
	double want[4], scaled[4];
	const double temps[] = { 0.5, 1.0, 2.0 };
	for (int t = 0; t < 3; t++) {
		struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TEMPERATURE);
		p.n_order = 1;
		p.temperature = (float)temps[t];
		struct llm_sampler *s = make(&p, 4);
		get_probs(s, l, got);
		for (int i = 0; i < 4; i++)
			scaled[i] = l[i] / temps[t];
		ref_softmax(scaled, NULL, 4, want); /* softmax(l / T) */
		assert_probs(got, want, 4);
		llm_sampler_free(s);
	}
	/* not listed in the order: still applied (last) */
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	p.n_order = 1;
	p.temperature = 2.0f;
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	for (int i = 0; i < 4; i++)
		scaled[i] = l[i] / 2.0;
	ref_softmax(scaled, NULL, 4, want);
	assert_probs(got, want, 4);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_greedy)
{
	/* T <= 0: argmax, ties to the lowest id */
	const float l[5] = { 1.0f, 3.0f, -2.0f, 3.0f, 2.9f };
	struct llm_sampler_params p = llm_sampler_default_params();
	p.temperature = 0.0f;
	p.seed = 1;
	struct llm_sampler *s = make(&p, 5);
	float got[5];
	get_probs(s, l, got);
	const double want[5] = { 0, 1, 0, 0, 0 };
	assert_probs(got, want, 5);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 1);
	llm_sampler_free(s);
}
END_TEST

/* ---- truncation stages ------------------------------------------------------- */

START_TEST(test_top_k)
{
	const float l[5] = { 0.1f, 2.0f, 1.0f, 3.0f, -1.0f };
	float got[5];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	p.top_k = 2;
	struct llm_sampler *s = make(&p, 5);
	get_probs(s, l, got);
	const int keep[5] = { 0, 1, 0, 1, 0 }; /* the two highest: ids 3, 1 */
	assert_kept(l, keep, 5, got);
	llm_sampler_free(s);

	/* ties at the boundary keep the lower ids */
	const float tie[4] = { 1.0f, 1.0f, 1.0f, 0.0f };
	p.top_k = 2;
	s = make(&p, 4);
	get_probs(s, tie, got);
	const int keep2[4] = { 1, 1, 0, 0 };
	assert_kept(tie, keep2, 4, got);
	llm_sampler_free(s);

	/* k >= n_vocab and k <= 0: no change */
	p.top_k = 9;
	s = make(&p, 5);
	get_probs(s, l, got);
	assert_kept(l, NULL, 5, got);
	llm_sampler_free(s);
}
END_TEST

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x < y) - (x > y);
}

START_TEST(test_top_k_large)
{
	/* 1000 pseudo-random distinct logits, k = 10: exactly the 10 largest
	 * (found here by sorting a copy) survive */
	enum { N = 1000, K = 10 };
	static float l[N], sorted[N], got[N];
	uint32_t x = 12345;
	for (int i = 0; i < N; i++) {
		x = x * 1664525u + 1013904223u;
		l[i] = (float)(x >> 8) / (float)(1u << 24) * 20.0f - 10.0f;
		sorted[i] = l[i];
	}
	qsort(sorted, N, sizeof *sorted, cmp_desc);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	p.top_k = K;
	struct llm_sampler *s = make(&p, N);
	get_probs(s, l, got);
	int n = 0;
	for (int i = 0; i < N; i++) {
		if (got[i] > 0.0f) {
			n++;
			ck_assert_msg(l[i] >= sorted[K - 1], "token %d kept below the top %d", i, K);
		}
	}
	ck_assert_int_eq(n, K);
	llm_sampler_free(s);
}
END_TEST

static const double P4[4] = { 0.5, 0.3, 0.15, 0.05 };

START_TEST(test_top_p)
{
	float l[4], got[4];
	logits_of(P4, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_P);
	/* p = 0.75: 0.5 < 0.75 <= 0.8 -> {0, 1} -> 0.625, 0.375 */
	p.top_p = 0.75f;
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const double w1[4] = { 0.625, 0.375, 0, 0 };
	assert_probs(got, w1, 4);
	llm_sampler_free(s);
	/* p = 0.85: {0, 1, 2} / 0.95 */
	p.top_p = 0.85f;
	s = make(&p, 4);
	get_probs(s, l, got);
	const double w2[4] = { 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0 };
	assert_probs(got, w2, 4);
	llm_sampler_free(s);
	/* p = 0.1 would keep one; min_keep 3 keeps three */
	p.top_p = 0.1f;
	p.min_keep = 3;
	s = make(&p, 4);
	get_probs(s, l, got);
	assert_probs(got, w2, 4);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_top_p_large)
{
	/* 3000 tokens; the token of rank r has logit -0.01 r (ranks permuted
	 * over ids), so the top m hold (1 - q^m) / (1 - q^3000) of the mass,
	 * q = e^-0.01: p = 0.5 needs m = 70, p = 0.9885 needs m = 447 (both
	 * computed here in double, away from the boundary). */
	enum { N = 3000 };
	static float l[N], got[N];
	for (int i = 0; i < N; i++)
		l[i] = -0.01f * (float)((i * 7919) % N);
	const double q = exp(-0.01);
	const float tps[2] = { 0.5f, 0.9885f };
	for (int c = 0; c < 2; c++) {
		int m = 0;
		double total = (1 - pow(q, N)) / (1 - q), cum = 0.0;
		while (cum < tps[c]) {
			cum += pow(q, m) / total;
			m++;
		}
		ck_assert(cum - pow(q, m - 1) / total < tps[c] - 1e-5 && cum > tps[c] + 1e-5);
		struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_P);
		p.top_p = tps[c];
		struct llm_sampler *s = make(&p, N);
		get_probs(s, l, got);
		double kept_mass = 0.0;
		for (int r = 0; r < m; r++)
			kept_mass += pow(q, r);
		int n = 0;
		for (int i = 0; i < N; i++) {
			int rank = (i * 7919) % N;
			if (rank < m) {
				n++;
				ck_assert(fabs(got[i] - pow(q, rank) / kept_mass) < 1e-6);
			} else {
				ck_assert(got[i] == 0.0f);
			}
		}
		ck_assert_int_eq(n, m);
		llm_sampler_free(s);
	}
}
END_TEST

START_TEST(test_min_p)
{
	float l[4], got[4];
	logits_of(P4, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_MIN_P);
	/* min_p 0.2: keep p >= 0.2 * 0.5 = 0.1 -> {0, 1, 2} */
	p.min_p = 0.2f;
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const double w1[4] = { 0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0 };
	assert_probs(got, w1, 4);
	llm_sampler_free(s);
	/* min_p 0.5: keep p >= 0.25 -> {0, 1} */
	p.min_p = 0.5f;
	s = make(&p, 4);
	get_probs(s, l, got);
	const double w2[4] = { 0.625, 0.375, 0, 0 };
	assert_probs(got, w2, 4);
	llm_sampler_free(s);
	/* min_p 0.9 keeps one; min_keep 3 keeps the three most probable */
	p.min_p = 0.9f;
	p.min_keep = 3;
	s = make(&p, 4);
	get_probs(s, l, got);
	assert_probs(got, w1, 4);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_typical)
{
	/* p = {0.4, 0.3, 0.2, 0.1}: H = -sum p ln p = 1.279854;
	 * |-ln p - H| = 0.3636, 0.0759, 0.3296, 1.0227, so the typical order
	 * is ids 1, 2, 0, 3: the most probable token is not the most typical. */
	const double pr[4] = { 0.4, 0.3, 0.2, 0.1 };
	float l[4], got[4];
	logits_of(pr, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TYPICAL);
	p.typical_p = 0.45f; /* 0.3, then 0.5 > 0.45 -> {1, 2} */
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const double w1[4] = { 0, 0.6, 0.4, 0 };
	assert_probs(got, w1, 4);
	llm_sampler_free(s);
	p.typical_p = 0.55f; /* 0.3, 0.5, 0.9 -> {1, 2, 0} */
	s = make(&p, 4);
	get_probs(s, l, got);
	const double w2[4] = { 0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9, 0 };
	assert_probs(got, w2, 4);
	llm_sampler_free(s);
	p.typical_p = 1.0f; /* off */
	s = make(&p, 4);
	get_probs(s, l, got);
	assert_probs(got, pr, 4);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_top_n_sigma)
{
	/* logits {4, 3, 0, -1}: mean 1.5, sigma = sqrt(17/4) = 2.0616 */
	const float l[4] = { 4.0f, 3.0f, 0.0f, -1.0f };
	float got[4];
	const float ns[3] = { 1.0f, 2.0f, 3.0f };
	/* thresholds 1.938, -0.123, -2.185 */
	const int keep[3][4] = { { 1, 1, 0, 0 }, { 1, 1, 1, 0 }, { 1, 1, 1, 1 } };
	for (int k = 0; k < 3; k++) {
		struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_N_SIGMA);
		p.top_n_sigma = ns[k];
		struct llm_sampler *s = make(&p, 4);
		get_probs(s, l, got);
		assert_kept(l, keep[k], 4, got);
		llm_sampler_free(s);
	}
}
END_TEST

START_TEST(test_xtc)
{
	const double pr[4] = { 0.4, 0.3, 0.2, 0.1 };
	float l[4], got[4];
	logits_of(pr, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_XTC);
	/* probability 1, threshold 0.25: ids 0 and 1 are above; all but the
	 * least probable of them (id 1) go -> {1, 2, 3} / 0.6 */
	p.xtc_probability = 1.0f;
	p.xtc_threshold = 0.25f;
	struct llm_sampler *s = make(&p, 4);
	for (int rep = 0; rep < 20; rep++) {
		get_probs(s, l, got);
		const double w[4] = { 0, 0.5, 0.2 / 0.6, 0.1 / 0.6 };
		assert_probs(got, w, 4);
	}
	llm_sampler_free(s);
	/* only one token above the threshold: nothing to exclude */
	p.xtc_threshold = 0.35f;
	s = make(&p, 4);
	get_probs(s, l, got);
	assert_probs(got, pr, 4);
	llm_sampler_free(s);
	/* probability 0: no change */
	p.xtc_probability = 0.0f;
	p.xtc_threshold = 0.25f;
	s = make(&p, 4);
	get_probs(s, l, got);
	assert_probs(got, pr, 4);
	llm_sampler_free(s);
	/* probability 0.5: acts on about half of the tokens */
	p.xtc_probability = 0.5f;
	s = make(&p, 4);
	int acted = 0;
	for (int rep = 0; rep < 4000; rep++) {
		get_probs(s, l, got);
		acted += got[0] == 0.0f;
	}
	ck_assert_msg(abs(acted - 2000) < 150, "XTC acted %d / 4000 times", acted);
	llm_sampler_free(s);
}
END_TEST

/* ---- history-based stages ------------------------------------------------------ */

static void accept_all(struct llm_sampler *s, const int32_t *t, int n)
{
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(llm_sampler_accept(s, t[i]), 0);
}

START_TEST(test_repetition_penalty)
{
	const float l[4] = { 2.0f, -1.0f, 1.0f, 0.5f };
	const int32_t hist[3] = { 0, 1, 1 };
	float got[4];
	double want[4];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_PENALTIES);
	p.repeat_penalty = 2.0f;
	struct llm_sampler *s = make(&p, 4);
	accept_all(s, hist, 3);
	get_probs(s, l, got);
	/* positive logits are divided, negative multiplied: 2 -> 1, -1 -> -2 */
	const double e1[4] = { 1.0, -2.0, 1.0, 0.5 };
	ref_softmax(e1, NULL, 4, want);
	assert_probs(got, want, 4);
	llm_sampler_free(s);
	/* window of 2: token 0 is out of it */
	p.penalty_last_n = 2;
	s = make(&p, 4);
	accept_all(s, hist, 3);
	get_probs(s, l, got);
	const double e2[4] = { 2.0, -2.0, 1.0, 0.5 };
	ref_softmax(e2, NULL, 4, want);
	assert_probs(got, want, 4);
	/* reset clears the history */
	llm_sampler_reset(s);
	get_probs(s, l, got);
	const double e3[4] = { 2.0, -1.0, 1.0, 0.5 };
	ref_softmax(e3, NULL, 4, want);
	assert_probs(got, want, 4);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_frequency_presence)
{
	const float l[4] = { 2.0f, -1.0f, 1.0f, 0.5f };
	const int32_t hist[3] = { 0, 1, 1 };
	float got[4];
	double want[4];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_PENALTIES);
	p.frequency_penalty = 0.5f;
	p.presence_penalty = 0.25f;
	struct llm_sampler *s = make(&p, 4);
	accept_all(s, hist, 3);
	get_probs(s, l, got);
	/* l -= count * 0.5 + 0.25: token 0 (once) 1.25, token 1 (twice) -2.25 */
	const double e[4] = { 1.25, -2.25, 1.0, 0.5 };
	ref_softmax(e, NULL, 4, want);
	assert_probs(got, want, 4);
	llm_sampler_free(s);
}
END_TEST

static const char *const dry_pieces[10] = { "a", "b", "c", "d", "\n", "e", "f", "g", "h", ":" };
static const size_t dry_lens[10] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

/* DRY probabilities after the history, all logits 0 */
static void dry_run(struct llm_sampler_params *p, const int32_t *hist, int n,
		    bool with_pieces, float *got)
{
	float zero[10] = { 0 };
	struct llm_sampler *s = make(p, 10);
	if (with_pieces)
		llm_sampler_set_pieces(s, dry_pieces, dry_lens);
	accept_all(s, hist, n);
	get_probs(s, zero, got);
	llm_sampler_free(s);
}

/* expected: all logits 0 except the given token at -pen */
static void assert_dry(const float *got, int token, double pen)
{
	double e[10] = { 0 }, want[10];
	if (token >= 0)
		e[token] = -pen;
	ref_softmax(e, NULL, 10, want);
	assert_probs(got, want, 10);
}

START_TEST(test_dry)
{
	float got[10];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_DRY);
	p.dry_multiplier = 1.0f;
	p.dry_base = 2.0f;
	p.dry_allowed_length = 2;

	/* a b c f a b: "a b" (2) repeats; "c" would extend it -> 1 * 2^0 */
	const int32_t h1[6] = { 0, 1, 2, 6, 0, 1 };
	dry_run(&p, h1, 6, true, got);
	assert_dry(got, 2, 1.0);

	/* a b c d a b c: "a b c" (3) repeats; "d" would extend it -> 2^1 */
	const int32_t h2[7] = { 0, 1, 2, 3, 0, 1, 2 };
	dry_run(&p, h2, 7, true, got);
	assert_dry(got, 3, 2.0);

	/* a b f a: the repeat "a" is shorter than allowed: no penalty */
	const int32_t h3[4] = { 0, 1, 6, 0 };
	dry_run(&p, h3, 4, true, got);
	assert_dry(got, -1, 0.0);

	/* multiplier 0.5, base 3, allowed 1: 0.5 * 3^(3-1) = 4.5 */
	p.dry_multiplier = 0.5f;
	p.dry_base = 3.0f;
	p.dry_allowed_length = 1;
	dry_run(&p, h2, 7, true, got);
	assert_dry(got, 3, 4.5);

	/* window of 3 tokens (c ... ) sees no repeat */
	p.dry_penalty_last_n = 3;
	dry_run(&p, h2, 7, true, got);
	assert_dry(got, -1, 0.0);
	p.dry_penalty_last_n = -1;

	/* multiplier 0: off */
	p.dry_multiplier = 0.0f;
	dry_run(&p, h2, 7, true, got);
	assert_dry(got, -1, 0.0);
}
END_TEST

START_TEST(test_dry_breakers)
{
	float got[10];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_DRY);
	p.dry_multiplier = 1.0f;
	p.dry_base = 2.0f;
	p.dry_allowed_length = 2;
	/* a : c d a : c  -- token 9 is ":" (a default breaker).  Without the
	 * piece table nothing is a breaker: "a : c" repeats, d gets 2^1. */
	const int32_t h[7] = { 0, 9, 2, 3, 0, 9, 2 };
	dry_run(&p, h, 7, false, got);
	assert_dry(got, 3, 2.0);
	/* with pieces, ":" one token back limits any repeat to 1 < 2 */
	dry_run(&p, h, 7, true, got);
	assert_dry(got, -1, 0.0);
	/* a breaker token is never penalised itself: a \n b a, allowed 1:
	 * "a" repeats and "\n" would extend it, but "\n" is a breaker */
	p.dry_allowed_length = 1;
	const int32_t h2[4] = { 0, 4, 1, 0 };
	dry_run(&p, h2, 4, false, got);
	assert_dry(got, 4, 1.0); /* no table: "\n" is an ordinary token */
	dry_run(&p, h2, 4, true, got);
	assert_dry(got, -1, 0.0);
	/* custom breakers replace the defaults: only "b" */
	static const char *const br[1] = { "b" };
	p.dry_sequence_breakers = br;
	p.n_dry_sequence_breakers = 1;
	dry_run(&p, h2, 4, true, got);
	assert_dry(got, 4, 1.0);
}
END_TEST

START_TEST(test_logit_bias_and_bans)
{
	const float l[4] = { 1.0f, 2.0f, 0.0f, 3.0f };
	float got[4];
	double want[4];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	const struct llm_logit_bias bias[2] = { { 2, 1.5f }, { 0, -INFINITY } };
	p.logit_bias = bias;
	p.n_logit_bias = 2;
	const int32_t banned[1] = { 3 };
	p.banned_tokens = banned;
	p.n_banned_tokens = 1;
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const double e[4] = { 0, 2.0, 1.5, 0 };
	const int keep[4] = { 0, 1, 1, 0 };
	ref_softmax(e, keep, 4, want);
	assert_probs(got, want, 4);
	/* the banned token has the highest logit and is never drawn */
	for (int i = 0; i < 1000; i++) {
		int32_t t = llm_sampler_sample(s, l, NULL);
		ck_assert(t == 1 || t == 2);
	}
	llm_sampler_free(s);
	/* everything banned: an error, not a token */
	const int32_t all[4] = { 0, 1, 2, 3 };
	p.banned_tokens = all;
	p.n_banned_tokens = 4;
	s = make(&p, 4);
	struct diag d = { 0 };
	ck_assert_int_eq(llm_sampler_sample(s, l, &d), LLM_E_INVALID);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_ban_here)
{
	const float l[3] = { 3.0f, 2.0f, 1.0f };
	struct llm_sampler_params p = llm_sampler_default_params();
	p.temperature = 0.0f;
	struct llm_sampler *s = make(&p, 3);
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 0);
	ck_assert_int_eq(llm_sampler_ban_here(s, 0, NULL), 0); /* at position 0 */
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 1);
	ck_assert_int_eq(llm_sampler_ban_here(s, 1, NULL), 0);
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 2);
	ck_assert_int_eq(llm_sampler_accept(s, 2), 0);
	/* position 1: no bans */
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 0);
	ck_assert_int_eq(llm_sampler_accept(s, 0), 0);
	ck_assert_int_eq(llm_sampler_n_past(s), 2);
	/* back to position 0: its bans hold again */
	llm_sampler_rollback(s, 2);
	ck_assert_int_eq(llm_sampler_n_past(s), 0);
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 2);
	/* reset forgets them */
	llm_sampler_reset(s);
	ck_assert_int_eq(llm_sampler_sample(s, l, NULL), 0);
	ck_assert_int_eq(llm_sampler_ban_here(s, 3, NULL), LLM_E_INVALID);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_mirostat_v2)
{
	/* p = {0.5, 0.25, 0.15, 0.1}, surprises 1, 2, 2.74, 3.32 bits.
	 * tau 1 -> mu starts at 2: keep {0, 1} -> {2/3, 1/3}. */
	const double pr[4] = { 0.5, 0.25, 0.15, 0.1 };
	float l[4], got[4];
	logits_of(pr, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	p.mirostat = 2;
	p.mirostat_tau = 1.0f;
	p.mirostat_eta = 1.0f;
	p.top_k = 1; /* ignored under mirostat */
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const double w1[4] = { 2.0 / 3.0, 1.0 / 3.0, 0, 0 };
	assert_probs(got, w1, 4);
	ck_assert_float_eq_tol(llm_sampler_token_prob(s, 1), 1.0f / 3.0f, 1e-6);
	/* accept 1: surprise log2 3 = 1.585; mu = 2 - 1 * (1.585 - 1) = 1.415
	 * < 2 bits: only token 0 is left */
	ck_assert_int_eq(llm_sampler_accept(s, 1), 0);
	get_probs(s, l, got);
	const double w2[4] = { 1, 0, 0, 0 };
	assert_probs(got, w2, 4);
	/* accept 0 at p = 1: surprise 0; mu = 1.415 + 1 = 2.415: {0, 1} */
	ck_assert_int_eq(llm_sampler_accept(s, 0), 0);
	get_probs(s, l, got);
	assert_probs(got, w1, 4);
	/* accept 0 (p 2/3, 0.585 bits): mu = 2.415 + 0.415 = 2.830: {0, 1, 2}
	 * (2.74 <= 2.83) -> /0.9 */
	ck_assert_int_eq(llm_sampler_accept(s, 0), 0);
	get_probs(s, l, got);
	const double w3[4] = { 0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0 };
	assert_probs(got, w3, 4);
	/* rolling back two tokens restores mu = 1.415 */
	llm_sampler_rollback(s, 2);
	get_probs(s, l, got);
	assert_probs(got, w2, 4);
	llm_sampler_free(s);

	/* eta 0.1 (the default): mu 2 -> accept 0 (0.585 bits) -> 2.0415 */
	p.mirostat_eta = 0.1f;
	s = make(&p, 4);
	get_probs(s, l, got);
	ck_assert_int_eq(llm_sampler_accept(s, 0), 0);
	get_probs(s, l, got);
	assert_probs(got, w1, 4);
	/* accept 1 (1.585 bits): mu = 2.0415 - 0.0585 = 1.983 < 2: {0} */
	ck_assert_int_eq(llm_sampler_accept(s, 1), 0);
	get_probs(s, l, got);
	assert_probs(got, w2, 4);
	llm_sampler_free(s);
}
END_TEST

/* ---- randomness ------------------------------------------------------------------ */

START_TEST(test_seed_reproducible)
{
	enum { N = 1000 };
	const float l[6] = { 1.0f, 1.2f, 0.3f, 0.9f, 1.1f, 0.0f };
	static int32_t a[N], b[N], c[N], r[N];
	struct llm_sampler_params p = llm_sampler_default_params();
	p.temperature = 1.0f;
	p.seed = 7;
	struct llm_sampler *s1 = make(&p, 6), *s2 = make(&p, 6);
	p.seed = 8;
	struct llm_sampler *s3 = make(&p, 6);
	int diff = 0;
	for (int i = 0; i < N; i++) {
		a[i] = llm_sampler_sample(s1, l, NULL);
		b[i] = llm_sampler_sample(s2, l, NULL);
		c[i] = llm_sampler_sample(s3, l, NULL);
		ck_assert(a[i] >= 0 && a[i] < 6);
		ck_assert_int_eq(a[i], b[i]);
		diff += a[i] != c[i];
	}
	ck_assert_msg(diff > 100, "seeds 7 and 8 agree on %d of %d draws", N - diff, N);
	/* reset re-seeds: the same sequence again */
	llm_sampler_reset(s1);
	for (int i = 0; i < N; i++) {
		r[i] = llm_sampler_sample(s1, l, NULL);
		ck_assert_int_eq(r[i], a[i]);
	}
	llm_sampler_free(s1);
	llm_sampler_free(s2);
	llm_sampler_free(s3);
}
END_TEST

START_TEST(test_empirical_frequencies)
{
	enum { N = 200000 };
	float l[4];
	logits_of(P4, 4, l);
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_TOP_K);
	p.seed = 2024;
	struct llm_sampler *s = make(&p, 4);
	int cnt[4] = { 0 };
	for (int i = 0; i < N; i++)
		cnt[llm_sampler_sample(s, l, NULL)]++;
	/* standard error <= sqrt(0.25 / N) = 0.0011; allow 0.005 */
	for (int i = 0; i < 4; i++)
		ck_assert_msg(fabs(cnt[i] / (double)N - P4[i]) < 0.005,
			      "token %d: frequency %.4f, probability %.4f", i,
			      cnt[i] / (double)N, P4[i]);
	/* llm_sampler_draw on explicit weights {0, 1, 0, 3}: 1/4, 3/4 */
	int dc[4] = { 0 };
	const float w[4] = { 0.0f, 1.0f, 0.0f, 3.0f };
	for (int i = 0; i < N; i++)
		dc[llm_sampler_draw(s, w, 4)]++;
	ck_assert_int_eq(dc[0] + dc[2], 0);
	ck_assert(fabs(dc[3] / (double)N - 0.75) < 0.005);
	const float zero[2] = { 0.0f, 0.0f };
	ck_assert_int_eq(llm_sampler_draw(s, zero, 2), LLM_E_INVALID);
	llm_sampler_free(s);
}
END_TEST

/* ---- order ------------------------------------------------------------------------ */

START_TEST(test_order_matters)
{
	/* p = {0.5, 0.3, 0.15, 0.05}, min_p 0.2, T = 3.
	 * min_p first: keep p >= 0.1 -> {0, 1, 2}, then softmax(l / 3) on them.
	 * temperature first: p^(1/3) ∝ {0.794, 0.669, 0.531, 0.368}; 0.2 * 0.794
	 * = 0.159 < 0.368: all four stay. */
	float l[4], got[4];
	double scaled[4], want[4];
	logits_of(P4, 4, l);
	for (int i = 0; i < 4; i++)
		scaled[i] = l[i] / 3.0;
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_MIN_P);
	p.min_p = 0.2f;
	p.temperature = 3.0f;
	struct llm_sampler *s = make(&p, 4);
	get_probs(s, l, got);
	const int keep[4] = { 1, 1, 1, 0 };
	ref_softmax(scaled, keep, 4, want);
	assert_probs(got, want, 4);
	/* swap the order via set_params */
	p.order[0] = LLM_SAMPLER_STAGE_TEMPERATURE;
	p.order[1] = LLM_SAMPLER_STAGE_MIN_P;
	ck_assert_int_eq(llm_sampler_set_params(s, &p, NULL), 0);
	get_probs(s, l, got);
	ref_softmax(scaled, NULL, 4, want);
	assert_probs(got, want, 4);
	ck_assert(got[3] > 0.0f);
	llm_sampler_free(s);
}
END_TEST

START_TEST(test_set_params_keeps_history)
{
	const float l[4] = { 2.0f, -1.0f, 1.0f, 0.5f };
	float got[4];
	double want[4];
	struct llm_sampler_params p = only(LLM_SAMPLER_STAGE_PENALTIES);
	p.penalty_last_n = 2;
	struct llm_sampler *s = make(&p, 4);
	const int32_t hist[3] = { 0, 1, 1 };
	accept_all(s, hist, 3);
	/* a longer window and a penalty: history accepted before still counts */
	p.penalty_last_n = 100;
	p.repeat_penalty = 2.0f;
	ck_assert_int_eq(llm_sampler_set_params(s, &p, NULL), 0);
	get_probs(s, l, got);
	/* all three accepted tokens count: 2 -> 1, -1 -> -2 */
	const double e[4] = { 1.0, -2.0, 1.0, 0.5 };
	ref_softmax(e, NULL, 4, want);
	assert_probs(got, want, 4);
	llm_sampler_free(s);
}
END_TEST

/* ---- stop strings ------------------------------------------------------------------ */

struct gen {
	struct llm_stop *st;
	char text[512];
	size_t len;
	struct llm_stop_result r;
};

static void gen_open(struct gen *g, const char *const *stop, size_t n_stop,
		     const char *const *banned, size_t n_banned)
{
	struct llm_stop_params sp = { 0 };
	sp.stop_strings = stop;
	sp.n_stop_strings = n_stop;
	sp.banned_strings = banned;
	sp.n_banned_strings = n_banned;
	memset(g, 0, sizeof *g);
	struct diag d = { 0 };
	ck_assert_msg(llm_stop_new(&sp, &g->st, &d) == 0, "%s", d.msg);
}

/* feed one token; returns the status; appends emitted text */
static enum llm_stop_status feed(struct gen *g, int32_t tok, const char *piece)
{
	ck_assert_int_eq(llm_stop_feed(g->st, tok, piece, strlen(piece), &g->r, NULL), 0);
	ck_assert(g->len + g->r.emit_len < sizeof g->text);
	memcpy(g->text + g->len, g->r.emit, g->r.emit_len);
	g->len += g->r.emit_len;
	g->text[g->len] = 0;
	return g->r.status;
}

static void emitted_is(const struct gen *g, const char *want)
{
	ck_assert_str_eq(g->text, want);
}

START_TEST(test_stop_across_tokens)
{
	static const char *const stop[1] = { "</s>" };
	struct gen g;
	gen_open(&g, stop, 1, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "Hello <"), LLM_STOP_CONTINUE);
	emitted_is(&g, "Hello "); /* "<" held */
	ck_assert_int_eq(feed(&g, 2, "/"), LLM_STOP_CONTINUE);
	emitted_is(&g, "Hello ");
	ck_assert_int_eq(feed(&g, 3, "s> more"), LLM_STOP_HIT);
	ck_assert_int_eq(g.r.which, 0);
	emitted_is(&g, "Hello "); /* neither the stop string nor what follows */
	/* after a hit: the hit again, no text */
	ck_assert_int_eq(feed(&g, 4, "x"), LLM_STOP_HIT);
	emitted_is(&g, "Hello ");
	/* a prefix that does not complete is released */
	llm_stop_reset(g.st);
	g.len = 0;
	g.text[0] = 0;
	ck_assert_int_eq(feed(&g, 1, "a </"), LLM_STOP_CONTINUE);
	emitted_is(&g, "a ");
	ck_assert_int_eq(feed(&g, 2, "b"), LLM_STOP_CONTINUE);
	emitted_is(&g, "a </b");
	/* text before the stop string inside one token is emitted */
	ck_assert_int_eq(feed(&g, 3, "ok</s>tail"), LLM_STOP_HIT);
	emitted_is(&g, "a </bok");
	llm_stop_free(g.st);
	llm_stop_free(NULL);
}
END_TEST

START_TEST(test_stop_overlapping_prefixes)
{
	static const char *const stop[1] = { "aab" };
	struct gen g;
	gen_open(&g, stop, 1, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "a"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 1, "a"), LLM_STOP_CONTINUE);
	emitted_is(&g, "");
	/* "aaa": the match may start at the second a; the first is safe */
	ck_assert_int_eq(feed(&g, 1, "a"), LLM_STOP_CONTINUE);
	emitted_is(&g, "a");
	ck_assert_int_eq(feed(&g, 2, "b"), LLM_STOP_HIT);
	emitted_is(&g, "a");
	llm_stop_free(g.st);

	static const char *const stop2[1] = { "abc" };
	gen_open(&g, stop2, 1, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "ab"), LLM_STOP_CONTINUE);
	emitted_is(&g, "");
	ck_assert_int_eq(feed(&g, 1, "ab"), LLM_STOP_CONTINUE);
	emitted_is(&g, "ab");
	ck_assert_int_eq(feed(&g, 2, "c"), LLM_STOP_HIT);
	emitted_is(&g, "ab");
	llm_stop_free(g.st);
}
END_TEST

START_TEST(test_stop_multiple)
{
	static const char *const stop[3] = { "STOP", "", "END" };
	struct gen g;
	gen_open(&g, stop, 3, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "xEN"), LLM_STOP_CONTINUE);
	emitted_is(&g, "x");
	ck_assert_int_eq(feed(&g, 2, "D!"), LLM_STOP_HIT);
	ck_assert_int_eq(g.r.which, 2); /* index in the caller's list */
	emitted_is(&g, "x");
	llm_stop_free(g.st);
	/* two complete in one piece: the leftmost wins */
	static const char *const stop2[2] = { "cd", "abc" };
	gen_open(&g, stop2, 2, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "xabcd"), LLM_STOP_HIT);
	ck_assert_int_eq(g.r.which, 1);
	emitted_is(&g, "x");
	llm_stop_free(g.st);
}
END_TEST

START_TEST(test_stop_utf8)
{
	/* é = C3 A9 split over two tokens is emitted whole */
	struct gen g;
	gen_open(&g, NULL, 0, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "caf\xC3"), LLM_STOP_CONTINUE);
	emitted_is(&g, "caf");
	ck_assert_int_eq(feed(&g, 2, "\xA9!"), LLM_STOP_CONTINUE);
	emitted_is(&g, "caf\xC3\xA9!");
	/* an incomplete tail at the end becomes U+FFFD */
	ck_assert_int_eq(feed(&g, 3, "\xE2\x86"), LLM_STOP_CONTINUE);
	emitted_is(&g, "caf\xC3\xA9!");
	llm_stop_flush(g.st, &g.r);
	ck_assert_int_eq(g.r.status, LLM_STOP_CONTINUE);
	ck_assert_uint_eq(g.r.emit_len, 3);
	ck_assert(memcmp(g.r.emit, "\xEF\xBF\xBD", 3) == 0);
	llm_stop_free(g.st);

	/* a stop string "→" (E2 86 92) arriving one byte per token */
	static const char *const stop[1] = { "\xE2\x86\x92" };
	gen_open(&g, stop, 1, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "x\xE2"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 2, "\x86"), LLM_STOP_CONTINUE);
	emitted_is(&g, "x");
	ck_assert_int_eq(feed(&g, 3, "\x92y"), LLM_STOP_HIT);
	emitted_is(&g, "x");
	llm_stop_free(g.st);
	/* "↓" (E2 86 93) shares two bytes with it and is emitted */
	gen_open(&g, stop, 1, NULL, 0);
	ck_assert_int_eq(feed(&g, 1, "\xE2\x86"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 2, "\x93"), LLM_STOP_CONTINUE);
	emitted_is(&g, "\xE2\x86\x93");
	llm_stop_free(g.st);
	/* invalid UTF-8 in a stop string is refused */
	static const char *const bad[1] = { "\xC3" };
	struct llm_stop_params sp = { 0 };
	sp.stop_strings = bad;
	sp.n_stop_strings = 1;
	struct llm_stop *st = NULL;
	ck_assert_int_eq(llm_stop_new(&sp, &st, NULL), LLM_E_INVALID);
}
END_TEST

START_TEST(test_banned_string)
{
	static const char *const banned[1] = { "bad word" };
	struct gen g;
	gen_open(&g, NULL, 0, banned, 1);
	ck_assert_int_eq(feed(&g, 10, "This"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 11, " is"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 12, " a"), LLM_STOP_CONTINUE);
	emitted_is(&g, "This is a");
	/* "bad" may start a banned string: the whole token " bad" is held */
	ck_assert_int_eq(feed(&g, 13, " bad"), LLM_STOP_CONTINUE);
	emitted_is(&g, "This is a");
	ck_assert_int_eq(feed(&g, 14, " wo"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(llm_stop_n_past(g.st), 5);
	ck_assert_int_eq(feed(&g, 15, "rd"), LLM_STOP_BANNED);
	ck_assert_int_eq(g.r.which, 0);
	ck_assert_int_eq(g.r.rollback_pos, 3);
	ck_assert_int_eq(g.r.ban_token, 13);
	ck_assert_int_eq(llm_stop_n_past(g.st), 3);
	emitted_is(&g, "This is a");
	/* generation resumes at position 3 */
	ck_assert_int_eq(feed(&g, 16, " good"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 17, " word"), LLM_STOP_CONTINUE);
	emitted_is(&g, "This is a good word");
	llm_stop_free(g.st);

	/* a partial match inside a token holds the token's earlier bytes
	 * too; when it fails everything goes out */
	static const char *const b2[1] = { "abc" };
	gen_open(&g, NULL, 0, b2, 1);
	ck_assert_int_eq(feed(&g, 1, "xab"), LLM_STOP_CONTINUE);
	emitted_is(&g, "");
	ck_assert_int_eq(feed(&g, 2, "d"), LLM_STOP_CONTINUE);
	emitted_is(&g, "xabd");
	/* a banned string inside one token: roll back to that token */
	ck_assert_int_eq(feed(&g, 3, "zabcz"), LLM_STOP_BANNED);
	ck_assert_int_eq(g.r.rollback_pos, 2);
	ck_assert_int_eq(g.r.ban_token, 3);
	llm_stop_free(g.st);

	/* only the token where a banned string may begin is held, not text
	 * before it that was held for another reason */
	static const char *const stop0[1] = { "<end>" };
	gen_open(&g, stop0, 1, b2, 1);
	ck_assert_int_eq(feed(&g, 1, "x<"), LLM_STOP_CONTINUE);
	emitted_is(&g, "x");
	ck_assert_int_eq(feed(&g, 2, "ab"), LLM_STOP_CONTINUE);
	emitted_is(&g, "x<");
	ck_assert_int_eq(feed(&g, 3, "c"), LLM_STOP_BANNED);
	ck_assert_int_eq(g.r.rollback_pos, 1);
	ck_assert_int_eq(g.r.ban_token, 2);
	llm_stop_free(g.st);

	/* a stop string ending the text wins over a banned string that
	 * might still follow */
	static const char *const stop[1] = { "\n" };
	static const char *const b3[1] = { "foo" };
	gen_open(&g, stop, 1, b3, 1);
	ck_assert_int_eq(feed(&g, 1, "a"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 2, "fo"), LLM_STOP_CONTINUE);
	emitted_is(&g, "a");
	ck_assert_int_eq(feed(&g, 3, "\n"), LLM_STOP_HIT);
	emitted_is(&g, "afo");
	llm_stop_free(g.st);
}
END_TEST

START_TEST(test_eos_and_max_tokens)
{
	static const char *const stop[1] = { "<|end|>" };
	const int32_t eos[2] = { 7, 9 };
	struct llm_stop_params sp = { 0 };
	sp.stop_strings = stop;
	sp.n_stop_strings = 1;
	sp.eos_tokens = eos;
	sp.n_eos_tokens = 2;
	struct gen g;
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(llm_stop_new(&sp, &g.st, NULL), 0);
	ck_assert_int_eq(feed(&g, 1, "hi <|"), LLM_STOP_CONTINUE);
	emitted_is(&g, "hi ");
	/* EOS: the held "<|" goes out, the EOS's own text does not */
	ck_assert_int_eq(feed(&g, 9, "</s>"), LLM_STOP_EOS);
	emitted_is(&g, "hi <|");
	llm_stop_free(g.st);

	sp.n_eos_tokens = 0;
	sp.max_tokens = 3;
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(llm_stop_new(&sp, &g.st, NULL), 0);
	ck_assert_int_eq(feed(&g, 1, "a"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 2, "b"), LLM_STOP_CONTINUE);
	ck_assert_int_eq(feed(&g, 3, "<|"), LLM_STOP_MAX_TOKENS);
	emitted_is(&g, "ab<|");
	ck_assert_int_eq(feed(&g, 4, "c"), LLM_STOP_MAX_TOKENS);
	emitted_is(&g, "ab<|");
	llm_stop_free(g.st);
}
END_TEST

/* The generator loop with banned-string back-off, on a toy "model" whose
 * greedy choice after "a" is "b" and otherwise "a": unconstrained it writes
 * "ababab"; with "ab" banned each attempt backs off and bans "a" at the
 * position where "ab" would begin, so it writes "bbbbb" and a final "a". */
START_TEST(test_banned_generation_loop)
{
	static const char *const pieces[3] = { "a", "b", "c" };
	static const char *const banned[1] = { "ab" };
	struct llm_sampler_params p = llm_sampler_default_params();
	p.temperature = 0.0f;
	for (int with_ban = 0; with_ban < 2; with_ban++) {
		struct llm_sampler *s = make(&p, 3);
		struct llm_stop_params sp = { 0 };
		sp.banned_strings = banned;
		sp.n_banned_strings = with_ban ? 1 : 0;
		sp.max_tokens = 6;
		struct gen g;
		memset(&g, 0, sizeof g);
		ck_assert_int_eq(llm_stop_new(&sp, &g.st, NULL), 0);
		int32_t seq[64];
		int n = 0, steps = 0;
		enum llm_stop_status stt = LLM_STOP_CONTINUE;
		while (stt != LLM_STOP_MAX_TOKENS && steps++ < 100) {
			int32_t prev = n ? seq[n - 1] : -1;
			float l[3];
			l[0] = prev == 0 ? 1.0f : 3.0f;
			l[1] = prev == 0 ? 3.0f : 2.0f;
			l[2] = 0.0f;
			int32_t t = llm_sampler_sample(s, l, NULL);
			ck_assert(t >= 0);
			ck_assert_int_eq(llm_sampler_accept(s, t), 0);
			seq[n++] = t;
			stt = feed(&g, t, pieces[t]);
			if (stt == LLM_STOP_BANNED) {
				llm_sampler_rollback(s, (int32_t)(llm_sampler_n_past(s) - g.r.rollback_pos));
				n = (int)g.r.rollback_pos;
				ck_assert_int_eq(llm_sampler_ban_here(s, g.r.ban_token, NULL), 0);
			}
		}
		/* the sixth token "a" ends generation, so "ab" can no
		 * longer appear and the held "a" is released */
		emitted_is(&g, with_ban ? "bbbbba" : "ababab");
		llm_stop_free(g.st);
		llm_sampler_free(s);
	}
}
END_TEST

/* llm_loop_period: the last `span` ids must be one block repeated, the
 * smallest such block wins, and nothing before the window counts. */
START_TEST(test_loop_period)
{
	/* "the cat sat ." three times over ids 5 6 7 8 */
	static const int32_t cat[] = { 1, 2, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8 };
	static const int32_t same[] = { 9, 4, 4, 4, 4, 4, 4 };
	static const int32_t cut[] = { 3, 1, 2, 3, 1, 2, 3, 1 }; /* ends mid-block */
	static const int32_t near[] = { 1, 2, 3, 1, 2, 4, 1, 2, 3 };
	static const int32_t two4[] = { 7, 7, 7, 7, 7, 7, 7, 7 };
	const size_t ncat = sizeof cat / sizeof cat[0];

	/* 12 ids = three blocks of 4; 8 = two; 9 would take in the 2 */
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 12), 4);
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 8), 4);
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 9), 4); /* 8 5 6 7 8 ... */
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 13), 0);
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 14), 0);
	ck_assert_uint_eq(llm_loop_period(cat, ncat, 15), 0); /* n < span */
	/* one block of 4 is not a loop: the period must fit twice */
	ck_assert_uint_eq(llm_loop_period(cat, 7, 7), 0);
	/* one id repeated: period 1, but not across the 9 */
	ck_assert_uint_eq(llm_loop_period(same, 7, 6), 1);
	ck_assert_uint_eq(llm_loop_period(same, 7, 2), 1);
	ck_assert_uint_eq(llm_loop_period(same, 7, 7), 0);
	/* a repeat cut short still repeats */
	ck_assert_uint_eq(llm_loop_period(cut, 8, 8), 3);
	ck_assert_uint_eq(llm_loop_period(cut, 8, 7), 3);
	/* one id off breaks every period that spans it */
	ck_assert_uint_eq(llm_loop_period(near, 9, 9), 0);
	ck_assert_uint_eq(llm_loop_period(near, 9, 6), 0);
	ck_assert_uint_eq(llm_loop_period(near, 9, 3), 0);
	/* the smallest block: 7 7 7 7 is period 1 before 2 */
	ck_assert_uint_eq(llm_loop_period(two4, 8, 8), 1);
	/* degenerate spans and input */
	ck_assert_uint_eq(llm_loop_period(same, 7, 1), 0);
	ck_assert_uint_eq(llm_loop_period(same, 7, 0), 0);
	ck_assert_uint_eq(llm_loop_period(NULL, 7, 4), 0);
}
END_TEST

Suite *sampler_suite(void);

Suite *sampler_suite(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("pipeline");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_invalid_params);
	tcase_add_test(tc, test_temperature);
	tcase_add_test(tc, test_greedy);
	tcase_add_test(tc, test_top_k);
	tcase_add_test(tc, test_top_k_large);
	tcase_add_test(tc, test_top_p);
	tcase_add_test(tc, test_top_p_large);
	tcase_add_test(tc, test_min_p);
	tcase_add_test(tc, test_typical);
	tcase_add_test(tc, test_top_n_sigma);
	tcase_add_test(tc, test_xtc);
	tcase_add_test(tc, test_repetition_penalty);
	tcase_add_test(tc, test_frequency_presence);
	tcase_add_test(tc, test_dry);
	tcase_add_test(tc, test_dry_breakers);
	tcase_add_test(tc, test_logit_bias_and_bans);
	tcase_add_test(tc, test_ban_here);
	tcase_add_test(tc, test_mirostat_v2);
	tcase_add_test(tc, test_seed_reproducible);
	tcase_add_test(tc, test_empirical_frequencies);
	tcase_add_test(tc, test_order_matters);
	tcase_add_test(tc, test_set_params_keeps_history);
	suite_add_tcase(s, tc);
	TCase *ts = tcase_create("stop");
	tcase_add_test(ts, test_stop_across_tokens);
	tcase_add_test(ts, test_stop_overlapping_prefixes);
	tcase_add_test(ts, test_stop_multiple);
	tcase_add_test(ts, test_stop_utf8);
	tcase_add_test(ts, test_banned_string);
	tcase_add_test(ts, test_eos_and_max_tokens);
	tcase_add_test(ts, test_banned_generation_loop);
	tcase_add_test(ts, test_loop_period);
	suite_add_tcase(s, ts);
	return s;
}
