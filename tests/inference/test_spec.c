/* tests/inference/test_spec.c — suite `spec`: speculative decoding in the
 * engine (inference/engine.c), with a draft model and with n-gram lookup.
 *
 * References nobody here wrote: transformers' greedy continuations of the
 * shared trained-target model (reference.safetensors, 64 tokens for 3
 * prompts) must come out unchanged with either drafter, and the
 * acceptance of trained-draft's proposals on the 8 prompts of the
 * fixture's eval.json must be the fixture's (its own loop: 4 argmax
 * proposals a step, 128 tokens).  Without ../shared: the bundled
 * stories260k drafting for itself and by n-gram, where the invariant is
 * that a job's tokens are those decoding without proposals gives, for
 * greedy and for seeded sampling with penalties, alone and beside other
 * jobs, with stop and banned strings.  Bad setups are refused.
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"
#include "refutil.h"
#include "testutil.h"

#define MAXGEN 256

static struct llm_model *stories(void)
{
	char *dir = test_data_path("../../models/stories260k");
	struct llm_model *m = ref_open_cpu(dir);

	free(dir);
	return m;
}

static struct llm_tokenizer *stories_tok(void)
{
	char *dir = test_data_path("../../models/stories260k");
	struct llm_tokenizer *tok = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_tokenizer_open(dir, &tok, &d) == 0, "%s", d.msg);
	free(dir);
	return tok;
}

struct rec {
	int32_t ids[MAXGEN];
	size_t n_ids;
	char text[4096];
	size_t text_len;
	enum llm_finish_reason finish;
	struct llm_job_stats st;
};

static void on_event(struct llm_job *job, const struct llm_job_event *ev, void *user)
{
	struct rec *r = user;

	(void)job;
	ck_assert_uint_le(r->text_len + ev->text_len, sizeof r->text);
	memcpy(r->text + r->text_len, ev->text, ev->text_len);
	r->text_len += ev->text_len;
	if (ev->type == LLM_JOB_EVENT_TOKEN) {
		ck_assert_int_eq(ev->pos, (int64_t)r->n_ids);
		ck_assert_uint_lt(r->n_ids, MAXGEN);
		r->ids[r->n_ids++] = ev->token;
	} else if (ev->type == LLM_JOB_EVENT_ROLLBACK) {
		ck_assert_int_le(ev->pos, (int64_t)r->n_ids);
		r->n_ids = (size_t)ev->pos;
	} else {
		r->finish = ev->finish;
		r->st = *ev->stats;
	}
}

/* What one run of jobs on an engine asks. */
struct spec_run {
	struct llm_model *draft; /* or NULL */
	bool ngram;
	size_t n_draft;
	bool adaptive; /* llm_engine_params.draft_adaptive */
	size_t n_slots;
	const struct llm_tokenizer *tok;
	const struct llm_sampler_params *sp; /* NULL: greedy */
	const char *const *stops, *const *bans;
	size_t n_stops, n_bans;
	bool ignore_eos;
};

/* Run N jobs (prompts[i], n_prompt[i], max_gen tokens) together; records
 * into recs[i]; returns the engine's drafted / accepted totals. */
static void run_jobs(struct llm_model *m, const struct spec_run *sr,
		     int32_t *const *prompts, const size_t *n_prompt, size_t n,
		     size_t max_gen, struct rec *recs, uint64_t *drafted,
		     uint64_t *accepted)
{
	struct llm_engine_params ep = llm_engine_default_params();
	struct llm_sampler_params greedy = llm_sampler_default_params();
	struct llm_engine *e = NULL;
	struct llm_engine_stats es;
	struct llm_job **jobs = calloc(n, sizeof *jobs);
	struct diag d;
	size_t i;

	greedy.temperature = 0.0f;
	diag_clear(&d);
	ep.n_ctx = 1024;
	ep.n_slots = sr->n_slots ? sr->n_slots : n;
	ep.n_draft = sr->n_draft;
	ep.ngram = sr->ngram;
	ep.draft_adaptive = sr->adaptive;
	ck_assert_msg(llm_engine_new(m, sr->draft, &ep, sr->tok, &e, &d) == 0, "%s",
		      d.msg);
	for (i = 0; i < n; i++) {
		struct llm_job_params jp = llm_job_default_params();

		memset(&recs[i], 0, sizeof recs[i]);
		jp.prompt = prompts[i];
		jp.n_prompt = n_prompt[i];
		jp.sampler = sr->sp ? sr->sp : &greedy;
		jp.max_tokens = (int64_t)max_gen;
		jp.ignore_eos = sr->ignore_eos;
		jp.stop_strings = sr->stops;
		jp.n_stop_strings = sr->n_stops;
		jp.banned_strings = sr->bans;
		jp.n_banned_strings = sr->n_bans;
		jp.callback = on_event;
		jp.user = &recs[i];
		ck_assert_msg(llm_job_submit(e, &jp, &jobs[i], &d) == 0, "%s", d.msg);
	}
	while (llm_engine_has_work(e))
		ck_assert_msg(llm_engine_step(e, &d) >= 0, "%s", d.msg);
	llm_engine_get_stats(e, &es);
	if (drafted)
		*drafted = es.n_drafted;
	if (accepted)
		*accepted = es.n_accepted;
	for (i = 0; i < n; i++) {
		ck_assert(recs[i].finish != LLM_FINISH_NONE &&
			  recs[i].finish != LLM_FINISH_ERROR);
		ck_assert_uint_eq(recs[i].st.n_generated, recs[i].n_ids);
		llm_job_free(jobs[i]);
	}
	llm_engine_free(e);
	free(jobs);
}

static void expect_same(const char *what, const struct rec *a, const struct rec *b)
{
	size_t i;

	ck_assert_msg(a->n_ids == b->n_ids, "%s: %zu tokens, without proposals %zu",
		      what, a->n_ids, b->n_ids);
	for (i = 0; i < a->n_ids; i++)
		ck_assert_msg(a->ids[i] == b->ids[i],
			      "%s: token %zu is %d, without proposals %d", what, i,
			      (int)a->ids[i], (int)b->ids[i]);
	ck_assert_msg(a->text_len == b->text_len &&
		      !memcmp(a->text, b->text, a->text_len), "%s: texts differ", what);
	ck_assert_int_eq(a->finish, b->finish);
}

/* Jobs got[0..n) equal those without proposals, want[]; some tokens were
 * proposed, and all of them kept when ALL_KEPT (a model drafting for
 * itself, greedily).  WHAT names the run. */
static void expect_run(const char *what, const struct rec *got, const struct rec *want,
		       size_t n, uint64_t drafted, uint64_t accepted, bool all_kept)
{
	char job[96];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(job, sizeof job, "%s, job %zu", what, i);
		expect_same(job, &got[i], &want[i]);
	}
	ck_assert_uint_gt(drafted, 0);
	if (all_kept)
		ck_assert_msg(accepted == drafted,
			      "%s: the model drafting for itself: %llu of %llu", what,
			      (unsigned long long)accepted, (unsigned long long)drafted);
}

/* ---- with the shared trained pair -------------------------------------- */

START_TEST(test_reference_greedy)
{
	char *tdir = test_shared_path("models/trained-target");
	char *ddir = test_shared_path("models/trained-draft");
	char *refp;
	struct llm_st_set *ref = NULL;
	struct llm_model *t, *dm;
	struct diag d;
	int32_t *prompts[3], *want[3];
	size_t np[3], nw[3], i, mode;

	if (!tdir || !ddir) {
		free(tdir);
		free(ddir);
		return; /* skipped: message printed by test_shared_path */
	}
	refp = test_shared_path("models/trained-target/reference.safetensors");
	ck_assert_ptr_nonnull(refp);
	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	for (i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof name, "prompt.%zu", i);
		prompts[i] = ref_ids(ref, name, &np[i]);
		snprintf(name, sizeof name, "greedy.%zu", i);
		want[i] = ref_ids(ref, name, &nw[i]);
		ck_assert_uint_eq(nw[i], 64);
	}
	t = ref_open_cpu(tdir);
	dm = ref_open_cpu(ddir);
	/* 0: the draft model, 4 a step; 1: the draft model, 7; 2: n-gram;
	 * all three prompts at once, and each alone */
	for (mode = 0; mode < 6; mode++) {
		struct spec_run sr;
		struct rec recs[3];
		uint64_t drafted = 0, accepted = 0;
		size_t k, from = mode < 3 ? 0 : mode - 3, n = mode < 3 ? 3 : 1;

		memset(&sr, 0, sizeof sr);
		sr.draft = mode % 3 == 2 ? NULL : dm;
		sr.ngram = mode % 3 == 2;
		sr.n_draft = mode % 3 == 1 ? 7 : 0;
		sr.ignore_eos = true;
		run_jobs(t, &sr, prompts + from, np + from, n, 64, recs, &drafted,
			 &accepted);
		for (i = 0; i < n; i++) {
			ck_assert_uint_eq(recs[i].n_ids, 64);
			for (k = 0; k < 64; k++)
				ck_assert_msg(recs[i].ids[k] == want[from + i][k],
					      "mode %zu, prompt %zu, token %zu: %d, "
					      "transformers %d", mode, from + i, k,
					      (int)recs[i].ids[k], (int)want[from + i][k]);
			/* proposals were made and fewer target passes ran */
			ck_assert_uint_gt(recs[i].st.n_drafted, 0);
			ck_assert_uint_lt(recs[i].st.n_verify, 63);
			ck_assert_uint_le(recs[i].st.n_accepted, recs[i].st.n_drafted);
		}
		ck_assert_uint_gt(accepted, 0);
		ck_assert_uint_le(accepted, drafted);
	}
	for (i = 0; i < 3; i++) {
		free(prompts[i]);
		free(want[i]);
	}
	llm_model_free(dm);
	llm_model_free(t);
	llm_st_close(ref);
	free(refp);
	free(tdir);
	free(ddir);
}
END_TEST

START_TEST(test_reference_acceptance)
{
	char *tdir = test_shared_path("models/trained-target");
	char *ddir = test_shared_path("models/trained-draft");
	char *evp;
	json_t *ev, *pp, *it;
	json_error_t je;
	struct llm_tokenizer *tok = NULL;
	struct llm_model *t, *dm;
	struct diag d;
	size_t i, n, sum_prop = 0, sum_acc = 0, ref_prop = 0, ref_acc = 0;

	if (!tdir || !ddir) {
		free(tdir);
		free(ddir);
		return; /* skipped: message printed by test_shared_path */
	}
	evp = test_shared_path("models/trained-target/eval.json");
	ck_assert_ptr_nonnull(evp);
	ev = json_load_file(evp, 0, &je);
	ck_assert_msg(ev != NULL, "%s: %s", evp, je.text);
	pp = json_object_get(json_object_get(ev, "speculative_decoding"), "per_prompt");
	n = json_array_size(pp);
	ck_assert_uint_eq(n, 8);
	diag_clear(&d);
	ck_assert_msg(llm_tokenizer_open(tdir, &tok, &d) == 0, "%s", d.msg);
	t = ref_open_cpu(tdir);
	dm = ref_open_cpu(ddir);
	json_array_foreach(pp, i, it) {
		const char *text = json_string_value(json_object_get(it, "prompt"));
		const double rp = json_number_value(json_object_get(it, "proposed"));
		const double ra = json_number_value(json_object_get(it, "accepted"));
		struct spec_run sr, plain;
		struct rec spec, base;
		int32_t *ids = NULL;
		size_t n_ids = 0;
		double ours;

		ck_assert_ptr_nonnull(text);
		ck_assert_int_eq(llm_tokenizer_encode(tok, text, strlen(text), true, &ids,
						      &n_ids, &d), 0);
		memset(&sr, 0, sizeof sr);
		sr.draft = dm;
		sr.n_draft = 4;
		sr.ignore_eos = true;
		run_jobs(t, &sr, &ids, &n_ids, 1, 128, &spec, NULL, NULL);
		memset(&plain, 0, sizeof plain);
		plain.ignore_eos = true;
		run_jobs(t, &plain, &ids, &n_ids, 1, 128, &base, NULL, NULL);
		expect_same(text, &spec, &base);
		/* the fixture's loop proposes 4 at its last step too and drafts
		 * from its first token on; the engine takes the first token
		 * from the prefill and proposes no more than the tokens left,
		 * so the counts differ by a step at either end */
		ours = (double)spec.st.n_accepted / (double)spec.st.n_drafted;
		ck_assert_msg(fabs(ours - ra / rp) <= 0.04,
			      "'%s': acceptance %.3f (%zu of %zu), fixture %.3f", text, ours,
			      spec.st.n_accepted, spec.st.n_drafted, ra / rp);
		ck_assert_msg(fabs((double)spec.st.n_drafted - rp) <= 12.0,
			      "'%s': %zu proposed, fixture %.0f", text, spec.st.n_drafted, rp);
		sum_prop += spec.st.n_drafted;
		sum_acc += spec.st.n_accepted;
		ref_prop += (size_t)rp;
		ref_acc += (size_t)ra;
		free(ids);
	}
	ck_assert_msg(fabs((double)sum_acc / (double)sum_prop -
			   (double)ref_acc / (double)ref_prop) <= 0.03,
		      "acceptance %zu / %zu, fixture %zu / %zu", sum_acc, sum_prop, ref_acc,
		      ref_prop);
	llm_model_free(dm);
	llm_model_free(t);
	llm_tokenizer_free(tok);
	json_decref(ev);
	free(evp);
	free(tdir);
	free(ddir);
}
END_TEST

/* ---- everywhere: the bundled model ------------------------------------- */

static void encode(const struct llm_tokenizer *tok, const char *s, int32_t **ids,
		   size_t *n)
{
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_tokenizer_encode(tok, s, strlen(s), true, ids, n, &d) == 0,
		      "%s", d.msg);
}

START_TEST(test_same_tokens)
{
	static const char *const texts[] = {
		"Once upon a time",
		"Lily and Ben went to the park. Lily and Ben",
		"The cat sat on the mat. The cat sat on the",
		"One day, a little boy named Tim",
	};
	struct llm_model *m = stories(), *self = stories();
	struct llm_tokenizer *tok = stories_tok();
	struct llm_sampler_params sp = llm_sampler_default_params();
	int32_t *prompts[4];
	size_t np[4], i, mode, smp;
	for (i = 0; i < 4; i++)
		encode(tok, texts[i], &prompts[i], &np[i]);
	sp.temperature = 0.8f;
	sp.repeat_penalty = 1.1f;
	sp.seed = 1234;
	/* greedy and seeded sampling; proposals from the model itself (all
	 * greedy ones accepted), by n-gram, and up to 16 a step; the jobs
	 * together (4 slots, prefill beside decoding) and in 2 slots; the
	 * adaptive count (modes 4, 5: itself, n-gram) */
	for (smp = 0; smp < 2; smp++) {
		struct spec_run base;
		struct rec want[4];

		memset(&base, 0, sizeof base);
		base.tok = tok;
		base.sp = smp ? &sp : NULL;
		run_jobs(m, &base, prompts, np, 4, 200, want, NULL, NULL);
		for (mode = 0; mode < 6; mode++) {
			struct spec_run sr = base;
			struct rec got[4];
			uint64_t drafted = 0, accepted = 0;
			char what[64];

			sr.draft = mode == 0 || mode == 3 || mode == 4 ? self : NULL;
			sr.ngram = mode == 1 || mode == 2 || mode == 5;
			sr.n_draft = mode == 2 ? 16 : mode >= 4 ? 8 : 0;
			sr.n_slots = mode == 3 ? 2 : 0;
			sr.adaptive = mode >= 4;
			run_jobs(m, &sr, prompts, np, 4, 200, got, &drafted, &accepted);
			snprintf(what, sizeof what, "%s, mode %zu", smp ? "sampled" : "greedy",
				 mode);
			expect_run(what, got, want, 4, drafted, accepted, !smp && sr.draft);
		}
	}
	for (i = 0; i < 4; i++)
		free(prompts[i]);
	llm_tokenizer_free(tok);
	llm_model_free(self);
	llm_model_free(m);
}
END_TEST

/* Proposals over a quantized KV cache (the tiny Llama-3, head_dim 32,
 * drafting for itself and by n-gram): rows verified together store and
 * read the same codes as one at a time, and rolled-back positions are
 * stored again, so the tokens equal those without proposals. */
START_TEST(test_same_tokens_kvq)
{
	char *dir = test_data_path("models/llama3");
	struct llm_model *m = ref_open_kvq(dir, LLM_BACKEND_CPU, 4, 4);
	struct llm_model *self = ref_open_kvq(dir, LLM_BACKEND_CPU, 4, 4);
	int32_t *prompts[3];
	size_t np[3] = { 5, 40, 300 }, i, j, mode;
	struct spec_run base;
	struct rec want[3];

	free(dir);
	for (i = 0; i < 3; i++) {
		prompts[i] = malloc(np[i] * sizeof *prompts[i]);
		for (j = 0; j < np[i]; j++) /* repeats for the n-gram drafter */
			prompts[i][j] = (int32_t)(3 + (j * 7 + i * 13) % 61);
	}
	memset(&base, 0, sizeof base);
	base.ignore_eos = true;
	run_jobs(m, &base, prompts, np, 3, 60, want, NULL, NULL);
	for (mode = 0; mode < 3; mode++) {
		struct spec_run sr = base;
		struct rec got[3];
		uint64_t drafted = 0, accepted = 0;
		char what[64];

		sr.draft = mode != 1 ? self : NULL;
		sr.ngram = mode == 1;
		sr.n_slots = mode == 2 ? 1 : 0;
		run_jobs(m, &sr, prompts, np, 3, 60, got, &drafted, &accepted);
		snprintf(what, sizeof what, "quantized KV, mode %zu", mode);
		expect_run(what, got, want, 3, drafted, accepted, sr.draft != NULL);
	}
	for (i = 0; i < 3; i++)
		free(prompts[i]);
	llm_model_free(self);
	llm_model_free(m);
}
END_TEST

START_TEST(test_strings)
{
	/* stop and banned strings hold text back and roll tokens back; with
	 * proposals the outcome is the same */
	static const char *const stops[] = { "park" };
	static const char *const bans[] = { " named", "Lily" };
	struct llm_model *m = stories();
	struct llm_tokenizer *tok = stories_tok();
	int32_t *ids = NULL;
	size_t n = 0, mode;
	struct spec_run base;
	struct rec want, got;

	encode(tok, "Once upon a time", &ids, &n);
	memset(&base, 0, sizeof base);
	base.tok = tok;
	base.stops = stops;
	base.n_stops = 1;
	base.bans = bans;
	base.n_bans = 2;
	run_jobs(m, &base, &ids, &n, 1, 200, &want, NULL, NULL);
	ck_assert_int_eq(want.finish, LLM_FINISH_STOP);
	for (mode = 0; mode < 2; mode++) {
		struct spec_run sr = base;

		sr.draft = mode ? m : NULL;
		sr.ngram = !mode;
		sr.n_draft = 6;
		run_jobs(m, &sr, &ids, &n, 1, 200, &got, NULL, NULL);
		expect_same(mode ? "draft" : "n-gram", &got, &want);
	}
	free(ids);
	llm_tokenizer_free(tok);
	llm_model_free(m);
}
END_TEST

START_TEST(test_refused)
{
	struct llm_model *m = stories(), *other;
	struct llm_engine_params ep = llm_engine_default_params();
	struct llm_engine *e = NULL;
	char *dir = test_data_path("models/exl3-llama3"); /* 1024 tokens */
	struct diag d;

	/* a draft of another vocabulary */
	other = ref_open_cpu(dir);
	diag_clear(&d);
	ep.n_ctx = 256;
	ck_assert_int_eq(llm_engine_new(m, other, &ep, NULL, &e, &d), LLM_E_INVALID);
	ck_assert_ptr_null(e);
	ck_assert_msg(strstr(d.msg, "vocabulary") != NULL, "%s", d.msg);
	/* too many proposals a step */
	diag_clear(&d);
	ep.ngram = true;
	ep.n_draft = LLM_SPEC_MAX_DRAFT + 1;
	ck_assert_int_eq(llm_engine_new(m, NULL, &ep, NULL, &e, &d), LLM_E_INVALID);
	ck_assert_ptr_null(e);
	llm_model_free(other);
	llm_model_free(m);
	free(dir);
}
END_TEST

/* The adaptive count: a draft that hardly ever agrees (the tiny random
 * Llama-2 fixture, the same 512-token vocabulary, for stories260k) makes
 * far fewer proposals than the fixed count — it falls to one a step and
 * rests after misses in a row — while a draft that always agrees (the
 * model itself) grows to the cap and stays there; the tokens are those
 * without proposals every time. */
START_TEST(test_adaptive_count)
{
	struct llm_model *m = stories(), *self = stories();
	char *bdir = test_data_path("models/llama2");
	struct llm_model *bad = ref_open_cpu(bdir);
	struct llm_tokenizer *tok = stories_tok();
	int32_t *prompts[1];
	size_t np[1];
	struct spec_run base, sr;
	struct rec want[1], fixed[1], adapt[1];
	uint64_t d_fixed = 0, d_adapt = 0, a_adapt = 0;

	encode(tok, "Once upon a time", &prompts[0], &np[0]);
	memset(&base, 0, sizeof base);
	base.tok = tok;
	base.ignore_eos = true;
	run_jobs(m, &base, prompts, np, 1, 240, want, NULL, NULL);
	sr = base;
	sr.draft = bad;
	sr.n_draft = 4;
	run_jobs(m, &sr, prompts, np, 1, 240, fixed, &d_fixed, NULL);
	sr.adaptive = true;
	run_jobs(m, &sr, prompts, np, 1, 240, adapt, &d_adapt, &a_adapt);
	expect_same("fixed, a poor draft", &fixed[0], &want[0]);
	expect_same("adaptive, a poor draft", &adapt[0], &want[0]);
	ck_assert_msg(d_adapt * 4 < d_fixed, "adaptive drafted %llu, fixed %llu",
		      (unsigned long long)d_adapt, (unsigned long long)d_fixed);
	fprintf(stderr, "note: a poor draft proposed %llu tokens adaptive, %llu fixed "
		"(%llu kept adaptive)\n", (unsigned long long)d_adapt,
		(unsigned long long)d_fixed, (unsigned long long)a_adapt);
	/* itself: every proposal kept, so the count climbs 8 -> stays 8:
	 * verify steps about 240 / 9 */
	sr.draft = self;
	sr.n_draft = 8;
	run_jobs(m, &sr, prompts, np, 1, 240, adapt, &d_adapt, &a_adapt);
	expect_same("adaptive, itself", &adapt[0], &want[0]);
	ck_assert_uint_eq(a_adapt, d_adapt);
	ck_assert_uint_le(adapt[0].st.n_verify, 240 / 9 + 2);
	free(prompts[0]);
	free(bdir);
	llm_tokenizer_free(tok);
	llm_model_free(bad);
	llm_model_free(self);
	llm_model_free(m);
}
END_TEST

Suite *spec_suite(void)
{
	Suite *s = suite_create("spec");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_same_tokens);
	tcase_add_test(tc, test_same_tokens_kvq);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_adaptive_count);
	suite_add_tcase(s, tc);
	tc = tcase_create("trained");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_reference_greedy);
	tcase_add_test(tc, test_reference_acceptance);
	suite_add_tcase(s, tc);
	return s;
}
