/* tests/inference/test_engine.c — suite `engine`: the job scheduler
 * (inference/engine.c) on real models: the bundled stories260k (trained,
 * with a tokenizer) and tiny random fixtures (tests/data/models/).
 *
 * The baseline every scheduler result is compared with is a plain
 * one-sequence loop over the model API (llm_context_eval + argmax), which
 * knows nothing of slots, pages or batching; where that does not apply
 * (seeded sampling) a job is run alone on a one-slot engine.  Checked:
 * batched jobs of different prompt lengths joining at different steps give
 * the tokens they give alone; prefix reuse gives the same logits and
 * tokens as recomputing (also over a quantized KV cache), and the stats
 * show the reused tokens; chunked
 * prefill interleaves with decoding; cancelling one job leaves the others'
 * tokens unchanged; a tiny page pool makes jobs wait, not fail; impossible
 * jobs are refused with a clear error; stop strings, banned strings and
 * the streamed text match run.c's reference output.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "inference/engine_impl.h"
#include "inference/llm.h"
#include "refutil.h"
#include "testutil.h"

#define MAXGEN 512

static struct llm_model *open_model(const char *rel)
{
	char *dir = test_data_path(rel);
	struct llm_model *m = ref_open_cpu(dir);

	free(dir);
	return m;
}

static struct llm_model *stories(void)
{
	return open_model("../../models/stories260k");
}

static int32_t argmax(const float *v, size_t n)
{
	size_t i, b = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int32_t)b;
}

/* Baseline: PROMPT then up to N_GEN argmax tokens (stopping at EOS, which
 * is not stored) with the single-sequence API.  Returns the count. */
static size_t ref_greedy(struct llm_model *m, const int32_t *prompt, size_t n,
			 size_t n_gen, int32_t *out)
{
	size_t V = (size_t)llm_model_n_vocab(m), i;
	float *lg = malloc(V * sizeof *lg);
	struct llm_context *c = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_context_new(m, 512, &c, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_context_eval(c, prompt, n, LLM_LOGITS_LAST, lg, &d) == 0,
		      "%s", d.msg);
	for (i = 0; i < n_gen; i++) {
		int32_t t = argmax(lg, V);

		if (llm_model_is_eos(m, t))
			break;
		out[i] = t;
		if (i + 1 < n_gen)
			ck_assert_msg(llm_context_eval(c, &t, 1, LLM_LOGITS_LAST, lg, &d) == 0,
				      "%s", d.msg);
	}
	llm_context_free(c);
	free(lg);
	return i;
}

/* What a test job records from its events. */
struct rec {
	int32_t ids[MAXGEN];
	size_t n_ids;
	char text[8192];
	size_t text_len;
	int n_finish;
	enum llm_finish_reason finish;
	int n_rollback;
	int cancel_at;            /* cancel itself after this many tokens (0: no) */
	struct llm_job *self;
	struct llm_engine *eng;   /* for step numbers */
	uint64_t first_step, last_step;
};

static void on_event(struct llm_job *job, const struct llm_job_event *ev, void *user)
{
	struct rec *r = user;

	ck_assert_int_eq(r->n_finish, 0); /* nothing after FINISH */
	ck_assert(ev->text != NULL);
	ck_assert_uint_le(r->text_len + ev->text_len, sizeof r->text);
	memcpy(r->text + r->text_len, ev->text, ev->text_len);
	r->text_len += ev->text_len;
	switch (ev->type) {
	case LLM_JOB_EVENT_TOKEN:
		ck_assert_int_eq(ev->pos, (int64_t)r->n_ids);
		ck_assert_uint_lt(r->n_ids, MAXGEN);
		r->ids[r->n_ids++] = ev->token;
		if (r->eng) {
			if (r->n_ids == 1)
				r->first_step = r->eng->n_steps;
			r->last_step = r->eng->n_steps;
		}
		if (r->cancel_at && (int)r->n_ids == r->cancel_at)
			llm_job_cancel(job);
		break;
	case LLM_JOB_EVENT_ROLLBACK:
		ck_assert_int_ge(ev->pos, 0);
		ck_assert_int_le(ev->pos, (int64_t)r->n_ids);
		r->n_ids = (size_t)ev->pos;
		r->n_rollback++;
		break;
	case LLM_JOB_EVENT_FINISH:
		r->n_finish++;
		r->finish = ev->finish;
		ck_assert_ptr_nonnull(ev->stats);
		ck_assert_msg(ev->finish != LLM_FINISH_ERROR, "job failed: %s",
			      ev->error_msg ? ev->error_msg : "?");
		break;
	}
}

static struct llm_engine *engine(struct llm_model *m, const struct llm_tokenizer *tok,
				 size_t n_ctx, size_t n_slots, size_t n_pages,
				 size_t chunk)
{
	struct llm_engine_params p = llm_engine_default_params();
	struct llm_engine *e = NULL;
	struct diag d;

	diag_clear(&d);
	p.n_ctx = n_ctx;
	p.n_slots = n_slots;
	p.n_pages = n_pages;
	if (chunk)
		p.prefill_chunk = chunk;
	ck_assert_msg(llm_engine_new(m, NULL, &p, tok, &e, &d) == 0, "%s", d.msg);
	return e;
}

static struct llm_sampler_params greedy(void)
{
	struct llm_sampler_params sp = llm_sampler_default_params();

	sp.temperature = 0.0f;
	return sp;
}

/* A job of PROMPT (N ids), at most MAX_TOKENS, sampler SP, its events
 * recorded into R. */
static struct llm_job_params job_params(const int32_t *prompt, size_t n,
					int64_t max_tokens,
					const struct llm_sampler_params *sp, struct rec *r)
{
	struct llm_job_params jp = llm_job_default_params();

	jp.prompt = prompt;
	jp.n_prompt = n;
	jp.max_tokens = max_tokens;
	jp.sampler = sp;
	jp.callback = on_event;
	jp.user = r;
	return jp;
}

static struct llm_job *submit(struct llm_engine *e, const int32_t *prompt, size_t n,
			      int64_t max_tokens, const struct llm_sampler_params *sp,
			      struct rec *r)
{
	struct llm_job_params jp = job_params(prompt, n, max_tokens, sp, r);
	struct llm_job *j = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_job_submit(e, &jp, &j, &d) == 0, "%s", d.msg);
	r->self = j;
	return j;
}

static void step(struct llm_engine *e)
{
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_engine_step(e, &d) == 0, "%s", d.msg);
}

static void run_all(struct llm_engine *e)
{
	int guard = 0;

	while (llm_engine_has_work(e)) {
		step(e);
		ck_assert_int_lt(++guard, 100000);
	}
}

/* A deterministic pseudo-prompt of N ids in [3, V): BOS then an LCG. */
static void make_prompt(int32_t *ids, size_t n, uint32_t seed, int32_t V)
{
	size_t i;

	ids[0] = 1;
	for (i = 1; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		ids[i] = 3 + (int32_t)((seed >> 8) % (uint32_t)(V - 3));
	}
}

static void expect_ids(const char *what, const struct rec *r, const int32_t *ref,
		       size_t n_ref)
{
	size_t i;

	ck_assert_msg(r->n_ids == n_ref, "%s: %zu tokens, expected %zu", what, r->n_ids,
		      n_ref);
	for (i = 0; i < n_ref; i++)
		ck_assert_msg(r->ids[i] == ref[i], "%s: token %zu is %d, expected %d",
			      what, i, (int)r->ids[i], (int)ref[i]);
}

/* Three jobs with prompts of 1, 5 and 37 tokens join at steps 0, 3 and 7
 * of one engine; each must produce the baseline's greedy tokens. */
static void batched_vs_alone(const char *model_rel)
{
	struct llm_model *m = open_model(model_rel);
	int32_t V = (int32_t)llm_model_n_vocab(m);
	int32_t p0[1] = { 1 }, p1[5] = { 1, 403, 407, 261, 378 }, p2[37];
	const int32_t *prompts[3] = { p0, p1, p2 };
	size_t lens[3] = { 1, 5, 37 }, n_ref[3], i;
	int joins[3] = { 0, 3, 7 };
	static int32_t ref[3][MAXGEN];
	static struct rec r[3];
	struct llm_sampler_params sp = greedy();
	struct llm_engine *e;
	struct llm_engine_stats es;
	int s;

	make_prompt(p2, 37, 7, V);
	for (i = 0; i < 3; i++)
		n_ref[i] = ref_greedy(m, prompts[i], lens[i], 40, ref[i]);
	memset(r, 0, sizeof r);
	e = engine(m, NULL, 256, 3, 0, 0);
	for (s = 0; llm_engine_has_work(e) || s <= 7; s++) {
		for (i = 0; i < 3; i++)
			if (joins[i] == s)
				submit(e, prompts[i], lens[i], 40, &sp, &r[i]);
		step(e);
		ck_assert_int_lt(s, 1000);
	}
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(r[i].n_finish, 1);
		expect_ids(model_rel, &r[i], ref[i], n_ref[i]);
		llm_job_free(r[i].self);
	}
	/* batching happened: far fewer forwards than tokens */
	llm_engine_get_stats(e, &es);
	ck_assert_uint_lt(es.n_steps, n_ref[0] + n_ref[1] + n_ref[2]);
	ck_assert_uint_eq(es.n_pages_used, 0);
	llm_engine_free(e);
	llm_model_free(m);
}

START_TEST(test_batched_stories)
{
	batched_vs_alone("../../models/stories260k");
}
END_TEST

START_TEST(test_batched_fixtures)
{
	static const char *const fx[] = { "models/qwen3", "models/mixtral" };

	batched_vs_alone(fx[_i]);
}
END_TEST

/* Seeded sampling: a job gives the same tokens batched with others as
 * alone on a one-slot engine (each job owns its sampler and generator). */
START_TEST(test_sampled_batched)
{
	struct llm_model *m = stories();
	int32_t p1[5] = { 1, 403, 407, 261, 378 };
	static struct rec alone[3], batch[3];
	struct llm_sampler_params sp[3];
	struct llm_engine *e;
	size_t i;

	for (i = 0; i < 3; i++) {
		sp[i] = llm_sampler_default_params();
		sp[i].temperature = 1.0f;
		sp[i].seed = 100 + i;
	}
	memset(alone, 0, sizeof alone);
	memset(batch, 0, sizeof batch);
	for (i = 0; i < 3; i++) {
		e = engine(m, NULL, 256, 1, 0, 0);
		submit(e, p1, 5, 60, &sp[i], &alone[i]);
		run_all(e);
		llm_job_free(alone[i].self);
		llm_engine_free(e);
	}
	e = engine(m, NULL, 256, 3, 0, 0);
	for (i = 0; i < 3; i++)
		submit(e, p1, 5, 60, &sp[i], &batch[i]);
	run_all(e);
	for (i = 0; i < 3; i++) {
		expect_ids("sampled", &batch[i], alone[i].ids, alone[i].n_ids);
		llm_job_free(batch[i].self);
	}
	/* different seeds really gave different continuations */
	ck_assert(memcmp(alone[0].ids, alone[1].ids, 20 * sizeof(int32_t)) != 0);
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* Logits of the first generated token, captured through the test hook. */
struct first_logits {
	struct llm_job *job;
	float *v;
	bool got;
};

static void hook(struct llm_job *job, const float *logits, size_t n_vocab, void *user)
{
	struct first_logits *f = user;

	if (job == f->job && !f->got) {
		memcpy(f->v, logits, n_vocab * sizeof *logits);
		f->got = true;
	}
}

/* Job B shares a 280-token prefix with finished job A: it reuses one page
 * (256 tokens) and gets the logits and tokens of a fresh computation. */
/* Prefix reuse on M (freed here): B shares A's first page; its logits
 * and tokens must equal a fresh engine's recomputation. */
static void prefix_reuse(struct llm_model *m)
{
	size_t V = (size_t)llm_model_n_vocab(m), i;
	static int32_t pa[300], pb[300];
	static struct rec ra, rb, rf, rc;
	struct llm_sampler_params sp = greedy();
	struct first_logits fb = { 0 }, ff = { 0 };
	struct llm_job_stats st;
	struct llm_engine_stats es;
	struct llm_engine *e, *fresh;
	static int32_t pc[400];
	size_t n_pc;

	make_prompt(pa, 300, 11, (int32_t)V);
	memcpy(pb, pa, 280 * sizeof *pa);
	make_prompt(pb + 279, 21, 99, (int32_t)V); /* differs from position 280 */
	pb[279] = pa[279];
	ck_assert(pb[280] != pa[280] || pb[281] != pa[281]);
	fb.v = malloc(V * sizeof(float));
	ff.v = malloc(V * sizeof(float));
	memset(&ra, 0, sizeof ra);
	memset(&rb, 0, sizeof rb);
	memset(&rf, 0, sizeof rf);
	memset(&rc, 0, sizeof rc);

	e = engine(m, NULL, 512, 2, 0, 0);
	submit(e, pa, 300, 20, &sp, &ra);
	run_all(e);
	llm_job_get_stats(ra.self, &st);
	ck_assert_uint_eq(st.n_reused, 0);
	ck_assert_uint_eq(st.n_computed, 300 + ra.n_ids - 1);
	llm_engine_get_stats(e, &es);
	ck_assert_uint_ge(es.n_pages_cached, 1); /* A's first page stays */
	ck_assert_uint_eq(es.n_pages_used, 0);

	e->logits_hook = hook;
	e->logits_hook_user = &fb;
	fb.job = submit(e, pb, 300, 20, &sp, &rb);
	run_all(e);
	llm_job_get_stats(rb.self, &st);
	ck_assert_uint_eq(st.n_reused, 256);
	ck_assert_uint_eq(st.n_computed, 300 - 256 + rb.n_ids - 1);
	llm_engine_get_stats(e, &es);
	ck_assert_uint_eq(es.n_reused, 256);

	fresh = engine(m, NULL, 512, 1, 0, 0);
	fresh->logits_hook = hook;
	fresh->logits_hook_user = &ff;
	ff.job = submit(fresh, pb, 300, 20, &sp, &rf);
	run_all(fresh);
	llm_job_get_stats(rf.self, &st);
	ck_assert_uint_eq(st.n_reused, 0);
	ck_assert(fb.got && ff.got);
	for (i = 0; i < V; i++)
		ck_assert_msg(fabsf(fb.v[i] - ff.v[i]) <= 1e-4f * (1.0f + fabsf(ff.v[i])),
			      "logit %zu: reused %g, recomputed %g", i, fb.v[i], ff.v[i]);
	expect_ids("reused prefix", &rb, rf.ids, rf.n_ids);

	/* continuing A's conversation: A's prompt + its output + more reuses
	 * the page that A's generated tokens completed... only when A's
	 * prompt + output covered it; here page 0 came from A's prompt and
	 * page 1 (positions 256..511) was never full, so 256 again. */
	n_pc = 0;
	memcpy(pc, pa, 300 * sizeof *pa);
	n_pc = 300;
	memcpy(pc + n_pc, ra.ids, ra.n_ids * sizeof *pc);
	n_pc += ra.n_ids;
	make_prompt(pc + n_pc, 10, 5, (int32_t)V);
	pc[n_pc] = 7;
	n_pc += 10;
	submit(e, pc, n_pc, 5, &sp, &rc);
	run_all(e);
	llm_job_get_stats(rc.self, &st);
	ck_assert_uint_eq(st.n_reused, 256);

	llm_job_free(ra.self);
	llm_job_free(rb.self);
	llm_job_free(rc.self);
	llm_job_free(rf.self);
	llm_engine_free(fresh);
	llm_engine_free(e);
	free(fb.v);
	free(ff.v);
	llm_model_free(m);
}

START_TEST(test_prefix_reuse) { prefix_reuse(stories()); }
END_TEST

/* The same with a quantized KV cache (the tiny Llama-3, head_dim 32):
 * a reused page holds the codes the recomputation stores, so the reused
 * and recomputed logits agree as closely as with f32 pages. */
START_TEST(test_prefix_reuse_kvq)
{
	char *dir = test_data_path("models/llama3");
	struct llm_model *m = ref_open_kvq(dir, LLM_BACKEND_CPU, 4, 6);

	free(dir);
	prefix_reuse(m);
}
END_TEST

/* Pages completed by generated tokens are published when the job ends:
 * a prompt of 200 + 100 generated tokens fills page 0 with 56 generated
 * ones; a follow-up whose prompt is A's whole text reuses that page. */
START_TEST(test_reuse_generated)
{
	struct llm_model *m = stories();
	int32_t V = (int32_t)llm_model_n_vocab(m);
	static int32_t pa[200], pc[400];
	static struct rec ra, rc, rf;
	struct llm_sampler_params sp = greedy();
	struct llm_job_params jp = llm_job_default_params();
	struct llm_job_stats st;
	struct llm_engine *e;
	size_t n_pc;

	make_prompt(pa, 200, 3, V);
	memset(&ra, 0, sizeof ra);
	memset(&rc, 0, sizeof rc);
	memset(&rf, 0, sizeof rf);
	e = engine(m, NULL, 512, 1, 0, 0);
	(void)jp;
	submit(e, pa, 200, 100, &sp, &ra);
	run_all(e);
	ck_assert_uint_ge(ra.n_ids, 60); /* stories rarely ends this early */
	memcpy(pc, pa, sizeof pa);
	memcpy(pc + 200, ra.ids, ra.n_ids * sizeof *pc);
	n_pc = 200 + ra.n_ids;
	pc[n_pc++] = 13;
	submit(e, pc, n_pc, 30, &sp, &rc);
	run_all(e);
	llm_job_get_stats(rc.self, &st);
	ck_assert_uint_eq(st.n_reused, 256);
	/* and the tokens equal the plain baseline */
	rf.n_ids = ref_greedy(m, pc, n_pc, 30, rf.ids);
	expect_ids("after generated pages", &rc, rf.ids, rf.n_ids);
	llm_job_free(ra.self);
	llm_job_free(rc.self);
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* A long prompt prefills in chunks of 16 while another job decodes: the
 * decoding job gets a token at every step of the prefill. */
START_TEST(test_chunked_prefill)
{
	struct llm_model *m = stories();
	int32_t V = (int32_t)llm_model_n_vocab(m);
	int32_t pa[5] = { 1, 403, 407, 261, 378 };
	static int32_t pb[200], refa[MAXGEN], refb[MAXGEN];
	static struct rec ra, rb;
	struct llm_sampler_params sp = greedy();
	struct llm_engine *e;
	size_t na, nb;
	uint64_t admitted;

	make_prompt(pb, 200, 17, V);
	na = ref_greedy(m, pa, 5, 100, refa);
	nb = ref_greedy(m, pb, 200, 20, refb);
	memset(&ra, 0, sizeof ra);
	memset(&rb, 0, sizeof rb);
	e = engine(m, NULL, 512, 2, 0, 16);
	ra.eng = rb.eng = e;
	submit(e, pa, 5, 100, &sp, &ra);
	step(e);
	step(e);
	submit(e, pb, 200, 20, &sp, &rb);
	admitted = e->n_steps;
	run_all(e);
	/* 200 prompt tokens at 16 per step: the first token of B comes 13
	 * steps after its admission (ceil(200 / 16)) */
	ck_assert_uint_eq(rb.first_step, admitted + 13);
	/* A produced one token per step all along, also during B's prefill */
	ck_assert_uint_ge(ra.last_step - ra.first_step + 1, ra.n_ids);
	ck_assert_uint_eq(ra.last_step - ra.first_step + 1, ra.n_ids);
	ck_assert_uint_gt(ra.last_step, rb.first_step);
	expect_ids("decoding job", &ra, refa, na);
	expect_ids("chunked job", &rb, refb, nb);
	llm_job_free(ra.self);
	llm_job_free(rb.self);
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* Cancelling the middle job (from its callback, and from another thread)
 * leaves the other two with their baseline tokens. */
struct canceller {
	struct llm_job *job;
};

static void *cancel_thread(void *arg)
{
	llm_job_cancel(((struct canceller *)arg)->job);
	return NULL;
}

START_TEST(test_cancel)
{
	struct llm_model *m = stories();
	int32_t V = (int32_t)llm_model_n_vocab(m);
	int32_t p0[1] = { 1 }, p1[5] = { 1, 403, 407, 261, 378 }, p2[20];
	static int32_t ref0[MAXGEN], ref2[MAXGEN];
	static struct rec r[4];
	struct llm_sampler_params sp = greedy();
	struct llm_engine *e;
	struct canceller cc;
	pthread_t th;
	size_t n0, n2;
	int k;

	make_prompt(p2, 20, 23, V);
	n0 = ref_greedy(m, p0, 1, 50, ref0);
	n2 = ref_greedy(m, p2, 20, 50, ref2);
	memset(r, 0, sizeof r);
	e = engine(m, NULL, 256, 4, 0, 0);
	submit(e, p0, 1, 50, &sp, &r[0]);
	r[1].cancel_at = 6;
	submit(e, p1, 5, 50, &sp, &r[1]);
	submit(e, p2, 20, 50, &sp, &r[2]);
	submit(e, p1, 5, 50, &sp, &r[3]);
	for (k = 0; k < 10; k++)
		step(e);
	cc.job = r[3].self;
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, &cc), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	run_all(e);
	ck_assert_int_eq(r[1].finish, LLM_FINISH_CANCELLED);
	ck_assert_uint_eq(r[1].n_ids, 6);
	ck_assert_int_eq(llm_job_finish_reason(r[1].self), LLM_FINISH_CANCELLED);
	ck_assert_int_eq(r[3].finish, LLM_FINISH_CANCELLED);
	ck_assert_uint_eq(r[3].n_ids, 10);
	expect_ids("job 0", &r[0], ref0, n0);
	expect_ids("job 2", &r[2], ref2, n2);
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(r[k].n_finish, 1);
		llm_job_free(r[k].self);
	}
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* A pool of 3 pages and jobs of 2 pages each (prompt 300 + 20): only one
 * runs at a time (the others wait), and every job finishes correctly. */
START_TEST(test_page_exhaustion)
{
	struct llm_model *m = stories();
	int32_t V = (int32_t)llm_model_n_vocab(m);
	static int32_t p[4][300], ref[4][MAXGEN];
	static struct rec r[4];
	struct llm_sampler_params sp = greedy();
	struct llm_engine_stats es;
	struct llm_engine *e;
	size_t n_ref[4], k;
	bool saw_wait = false;
	int guard = 0;

	for (k = 0; k < 4; k++) {
		make_prompt(p[k], 300, 50 + (uint32_t)k, V);
		n_ref[k] = ref_greedy(m, p[k], 300, 20, ref[k]);
	}
	memset(r, 0, sizeof r);
	e = engine(m, NULL, 512, 4, 3, 0);
	for (k = 0; k < 4; k++)
		submit(e, p[k], 300, 20, &sp, &r[k]);
	while (llm_engine_has_work(e)) {
		step(e);
		llm_engine_get_stats(e, &es);
		ck_assert_uint_le(es.n_running, 1);
		ck_assert_uint_le(es.n_pages_used, 3);
		if (es.n_waiting > 0)
			saw_wait = true;
		ck_assert_int_lt(++guard, 10000);
	}
	ck_assert(saw_wait);
	for (k = 0; k < 4; k++) {
		expect_ids("queued job", &r[k], ref[k], n_ref[k]);
		llm_job_free(r[k].self);
	}
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* A context whose KV cache cannot fit the backend's free memory (here the
 * host's: 2^24 positions x 4096 slots of stories260k is petabytes) fails
 * at once with LLM_E_NOSPACE naming the sizes, before allocating; a
 * normal one on the same model still works. */
START_TEST(test_context_too_big)
{
	struct llm_model *m = stories();
	struct llm_context *c = (struct llm_context *)1;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_context_new_slots(m, (size_t)1 << 24, 4096, 0, &c, &d),
			 LLM_E_NOSPACE);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(d.msg, "KV cache takes") && strstr(d.msg, "GiB free") &&
			      strstr(d.msg, "16777216 positions x 4096 slots"),
		      "%s", d.msg);
	ck_assert_int_eq(llm_context_new_slots(m, 256, 2, 0, &c, &d), 0);
	llm_context_free(c);
	llm_model_free(m);
}
END_TEST

START_TEST(test_impossible)
{
	struct llm_model *m = stories();
	struct llm_job_params jp = llm_job_default_params();
	static int32_t p[600];
	struct llm_engine *e;
	struct llm_job *j = (struct llm_job *)&jp;
	struct diag d;
	const char *stops[1] = { "x" };

	make_prompt(p, 600, 1, 512);
	e = engine(m, NULL, 256, 2, 1, 0);
	jp.prompt = p;

	/* prompt + max_tokens > n_ctx */
	jp.n_prompt = 200;
	jp.max_tokens = 57;
	diag_clear(&d);
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_NOSPACE);
	ck_assert_ptr_null(j);
	ck_assert_msg(strstr(d.msg, "200") && strstr(d.msg, "256"), "%s", d.msg);
	/* exactly n_ctx is fine */
	jp.max_tokens = 56;
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), 0);
	llm_job_free(j); /* queued, never stepped: leaves quietly */
	ck_assert(!llm_engine_has_work(e));
	/* a prompt filling the context */
	jp.n_prompt = 256;
	jp.max_tokens = 0;
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_NOSPACE);
	/* empty prompt, bad id, strings without tokenizer */
	jp.n_prompt = 0;
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
	jp.n_prompt = 3;
	p[1] = 512;
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
	p[1] = 5;
	/* sampler settings it refuses, said once ("sampler: ...") */
	{
		struct llm_sampler_params sp = llm_sampler_default_params();
		struct llm_logit_bias lb = { 99999, 1.0f };

		sp.logit_bias = &lb;
		sp.n_logit_bias = 1;
		jp.sampler = &sp;
		diag_clear(&d);
		ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
		ck_assert_msg(strncmp(d.msg, "sampler: logit bias for token 99999", 35) == 0,
			      "%s", d.msg);
		jp.sampler = NULL;
	}
	jp.stop_strings = stops;
	jp.n_stop_strings = 1;
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_INVALID);
	llm_engine_free(e);

	/* more pages than the pool: 1 page of 256, a job of 300 positions */
	e = engine(m, NULL, 512, 2, 1, 0);
	jp.stop_strings = NULL;
	jp.n_stop_strings = 0;
	jp.n_prompt = 250;
	jp.max_tokens = 60;
	diag_clear(&d);
	ck_assert_int_eq(llm_job_submit(e, &jp, &j, &d), LLM_E_NOSPACE);
	ck_assert_msg(strstr(d.msg, "pool"), "%s", d.msg);
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* ---- text: the stories260k tokenizer against run.c's reference ---------- */

static char *reference_text(const char *name, size_t *len)
{
	char rel[128];
	char *path, *s;

	snprintf(rel, sizeof rel, "stories260k/%s", name);
	path = test_data_path(rel);
	s = test_read_file(path, len);
	free(path);
	return s;
}

static struct llm_tokenizer *stories_tok(void)
{
	struct llm_tokenizer *t = NULL;
	struct diag d;
	char *dir = test_data_path("../../models/stories260k");

	diag_clear(&d);
	ck_assert_msg(llm_tokenizer_open(dir, &t, &d) == 0, "%s", d.msg);
	free(dir);
	return t;
}

/* Streamed text of 252 greedy tokens after "Once upon a time" = run.c's
 * output after the prompt (minus its final newline); also batched with
 * a job from BOS (out_greedy_n200: run.c generates one token per
 * position, 200 after BOS). */
START_TEST(test_text_reference)
{
	struct llm_model *m = stories();
	struct llm_tokenizer *t = stories_tok();
	int32_t p1[5] = { 1, 403, 407, 261, 378 }, p0[1] = { 1 };
	static struct rec r1, r0;
	struct llm_sampler_params sp = greedy();
	struct llm_engine *e;
	size_t l1, l0;
	char *ref1 = reference_text("out_greedy_prompt_n256.txt", &l1);
	char *ref0 = reference_text("out_greedy_n200.txt", &l0);
	const char *pre = "Once upon a time";

	memset(&r1, 0, sizeof r1);
	memset(&r0, 0, sizeof r0);
	e = engine(m, t, 512, 2, 0, 0);
	submit(e, p1, 5, 252, &sp, &r1);
	submit(e, p0, 1, 200, &sp, &r0);
	run_all(e);
	ck_assert_int_eq(r1.finish, LLM_FINISH_MAX_TOKENS);
	ck_assert_uint_eq(r1.n_ids, 252);
	ck_assert(strncmp(ref1, pre, strlen(pre)) == 0);
	ck_assert_uint_eq(r1.text_len + strlen(pre) + 1, l1);
	ck_assert(memcmp(r1.text, ref1 + strlen(pre), r1.text_len) == 0);
	ck_assert_uint_eq(r0.text_len + 1, l0);
	ck_assert(memcmp(r0.text, ref0, r0.text_len) == 0);
	llm_job_free(r1.self);
	llm_job_free(r0.self);
	llm_engine_free(e);
	free(ref1);
	free(ref0);
	llm_tokenizer_free(t);
	llm_model_free(m);
}
END_TEST

/* A stop string ends the text right before it; a banned string never
 * appears (the job backs off and says so with ROLLBACK events). */
START_TEST(test_stop_and_ban)
{
	struct llm_model *m = stories();
	struct llm_tokenizer *t = stories_tok();
	int32_t p1[5] = { 1, 403, 407, 261, 378 };
	static struct rec rs, rban;
	struct llm_sampler_params sp = greedy();
	struct llm_job_params jp = job_params(p1, 5, 100, &sp, &rs);
	const char *stops[2] = { "zzz", "Lily" };
	const char *bans[1] = { "Lily" };
	struct llm_engine *e;
	struct diag d;
	size_t l1;
	char *ref1 = reference_text("out_greedy_prompt_n256.txt", &l1);
	const char *pre = "Once upon a time", *lily = strstr(ref1, "Lily");

	memset(&rs, 0, sizeof rs);
	memset(&rban, 0, sizeof rban);
	e = engine(m, t, 512, 2, 0, 0);
	jp.stop_strings = stops;
	jp.n_stop_strings = 2;
	diag_clear(&d);
	ck_assert_msg(llm_job_submit(e, &jp, &rs.self, &d) == 0, "%s", d.msg);
	jp.stop_strings = NULL;
	jp.n_stop_strings = 0;
	jp.banned_strings = bans;
	jp.n_banned_strings = 1;
	jp.user = &rban;
	ck_assert_msg(llm_job_submit(e, &jp, &rban.self, &d) == 0, "%s", d.msg);
	run_all(e);
	ck_assert_int_eq(rs.finish, LLM_FINISH_STOP);
	ck_assert_ptr_nonnull(lily);
	ck_assert_uint_eq(rs.text_len, (size_t)(lily - ref1) - strlen(pre));
	ck_assert(memcmp(rs.text, ref1 + strlen(pre), rs.text_len) == 0);
	/* the banned job: same start, no "Lily" anywhere, backed off */
	ck_assert_int_eq(rban.finish, LLM_FINISH_MAX_TOKENS);
	ck_assert_uint_eq(rban.n_ids, 100);
	rban.text[rban.text_len] = '\0';
	ck_assert_ptr_null(strstr(rban.text, "Lily"));
	ck_assert(memcmp(rban.text, rs.text, rs.text_len) == 0);
	llm_job_free(rs.self);
	llm_job_free(rban.self);
	llm_engine_free(e);
	free(ref1);
	llm_tokenizer_free(t);
	llm_model_free(m);
}
END_TEST

/* Three replies to one 300-token prompt submitted together: the first
 * computes the shared page, the others wait a step for it instead of
 * computing it again; all give the baseline's tokens. */
START_TEST(test_same_prompt_together)
{
	struct llm_model *m = stories();
	static int32_t pa[300], ref[MAXGEN];
	static struct rec r[3];
	struct llm_sampler_params sp = greedy();
	struct llm_engine_stats es;
	struct llm_job_stats st;
	struct llm_engine *e;
	size_t n_ref, k;

	make_prompt(pa, 300, 77, (int32_t)llm_model_n_vocab(m));
	n_ref = ref_greedy(m, pa, 300, 20, ref);
	memset(r, 0, sizeof r);
	e = engine(m, NULL, 512, 3, 0, 0);
	for (k = 0; k < 3; k++)
		submit(e, pa, 300, 20, &sp, &r[k]);
	run_all(e);
	for (k = 0; k < 3; k++) {
		expect_ids("same prompt", &r[k], ref, n_ref);
		llm_job_get_stats(r[k].self, &st);
		ck_assert_uint_eq(st.n_reused, k ? 256 : 0);
		llm_job_free(r[k].self);
	}
	llm_engine_get_stats(e, &es);
	ck_assert_uint_eq(es.n_reused, 512);
	llm_engine_free(e);
	llm_model_free(m);
}
END_TEST

/* stop_on_loop: a greedy run that falls into a loop (the tiny random
 * models of the fixtures do within a few dozen tokens) stops at the first
 * token where its last L tokens repeat one block — the same tokens as the
 * single-sequence baseline up to there — and says LLM_FINISH_LOOP; a
 * value out of range is refused. */
static void loop_stop(const char *rel, size_t L)
{
	struct llm_model *m = open_model(rel);
	const int32_t V = llm_model_n_vocab(m);
	int32_t prompt[6], base[300];
	size_t nb, k, first = 0;
	static struct rec r;
	struct llm_sampler_params sp = greedy();
	struct llm_job_params jp = job_params(prompt, 6, 300, &sp, &r);
	struct llm_engine *e;
	struct llm_job *bad = NULL;
	struct diag d;

	make_prompt(prompt, 6, 7, V);
	nb = ref_greedy(m, prompt, 6, 300, base);
	for (k = L; k <= nb && !first; k++)
		if (llm_loop_period(base, k, L))
			first = k;
	ck_assert_msg(first > 0, "%s: the greedy run of %zu tokens never loops over %zu",
		      rel, nb, L);
	memset(&r, 0, sizeof r);
	e = engine(m, NULL, 512, 2, 0, 0);
	jp.stop_on_loop = (int32_t)L;
	diag_clear(&d);
	ck_assert_msg(llm_job_submit(e, &jp, &r.self, &d) == 0, "%s", d.msg);
	jp.stop_on_loop = LLM_LOOP_MAX + 1;
	ck_assert_int_eq(llm_job_submit(e, &jp, &bad, &d), LLM_E_INVALID);
	ck_assert_ptr_null(bad);
	jp.stop_on_loop = 1;
	ck_assert_int_eq(llm_job_submit(e, &jp, &bad, &d), LLM_E_INVALID);
	run_all(e);
	ck_assert_int_eq(r.finish, LLM_FINISH_LOOP);
	ck_assert_uint_eq(r.n_ids, first);
	ck_assert(memcmp(r.ids, base, first * sizeof *base) == 0);
	fprintf(stderr, "note: %s greedy loops from token %zu (period %zu over %zu)\n",
		rel, first, llm_loop_period(base, first, L), L);
	llm_job_free(r.self);
	llm_engine_free(e);
	llm_model_free(m);
}

START_TEST(test_loop_stop)
{
	/* period 3 over 16 tokens; one token over 32 */
	loop_stop("models/mistral", 16);
	loop_stop("models/qwen2", 32);
}
END_TEST

/* Real text is not a loop: stories260k's 252 greedy tokens after "Once
 * upon a time" (run.c's output) run to the end with stop_on_loop 4. */
START_TEST(test_loop_stop_text)
{
	struct llm_model *m = stories();
	struct llm_tokenizer *t = stories_tok();
	int32_t p1[5] = { 1, 403, 407, 261, 378 };
	static struct rec r;
	struct llm_sampler_params sp = greedy();
	struct llm_job_params jp = job_params(p1, 5, 252, &sp, &r);
	struct llm_engine *e;
	struct diag d;
	size_t l1;
	char *ref1 = reference_text("out_greedy_prompt_n256.txt", &l1);
	const char *pre = "Once upon a time";

	memset(&r, 0, sizeof r);
	e = engine(m, t, 512, 2, 0, 0);
	jp.stop_on_loop = 4;
	diag_clear(&d);
	ck_assert_msg(llm_job_submit(e, &jp, &r.self, &d) == 0, "%s", d.msg);
	run_all(e);
	ck_assert_int_eq(r.finish, LLM_FINISH_MAX_TOKENS);
	ck_assert_uint_eq(r.text_len + strlen(pre) + 1, l1);
	ck_assert(memcmp(r.text, ref1 + strlen(pre), r.text_len) == 0);
	llm_job_free(r.self);
	llm_engine_free(e);
	free(ref1);
	llm_tokenizer_free(t);
	llm_model_free(m);
}
END_TEST

Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_batched_stories);
	tcase_add_loop_test(tc, test_batched_fixtures, 0, 2);
	tcase_add_test(tc, test_sampled_batched);
	tcase_add_test(tc, test_prefix_reuse);
	tcase_add_test(tc, test_prefix_reuse_kvq);
	tcase_add_test(tc, test_reuse_generated);
	tcase_add_test(tc, test_same_prompt_together);
	tcase_add_test(tc, test_chunked_prefill);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_page_exhaustion);
	tcase_add_test(tc, test_impossible);
	tcase_add_test(tc, test_context_too_big);
	tcase_add_test(tc, test_text_reference);
	tcase_add_test(tc, test_stop_and_ban);
	tcase_add_test(tc, test_loop_stop);
	tcase_add_test(tc, test_loop_stop_text);
	suite_add_tcase(s, tc);
	return s;
}
