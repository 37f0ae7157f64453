/* inference/engine.c — the job scheduler with continuous batching over one
 * multi-slot context (llm_context_new_slots), using the paged KV cache of
 * inference/kvcache.c for prefix reuse.  Public API: inference/llm.h,
 * section "Engine and jobs"; internals in inference/engine_impl.h.
 *
 * A job moves WAITING -> PREFILL -> DECODE -> DONE.  Admission (FIFO)
 * gives it a sequence slot, maps the cached pages of its longest cached
 * prompt prefix into the slot's page table, and reserves every further
 * page its longest run can need, so a running job never runs out of KV
 * space and never has to be preempted.  Each step builds ONE llm_batch:
 * first one row per decoding job (its last token), then prefill rows of
 * admitted prompts up to prefill_chunk, and calls llm_forward once.
 *
 * Speculative decoding (par.n_draft > 0): before the batch is built, each
 * decoding job gets up to n_draft proposals for the tokens after its last
 * one — the draft model's argmax continuation (its own multi-slot context,
 * caught up with the job's tokens first) or the tokens that followed the
 * latest earlier occurrence of the job's last 3, 2 or 1 tokens (n-gram).
 * The job's rows are then its last token and the proposals, all wanting
 * logits; afterwards take_token samples row 0, 1, ... while each sample
 * equals the proposal fed after it, so the job keeps exactly the tokens
 * plain decoding would have drawn.  Positions past the kept ones hold
 * stale K/V that the next rows overwrite before anything reads them.
 *
 * Invariants:
 *   - a running job's slot row of ctx->page_table maps pages covering
 *     [0, n_kv) (and any page taken for the current batch); every mapped
 *     page holds a reference of this job; ctx->pt_dirty is set whenever a
 *     row changes;
 *   - a job never writes a position inside a hashed (shared) page: reuse
 *     stops at the last full page ending before the last prompt token
 *     (whose logits are needed, so it is always recomputed), prompt pages
 *     are published below that bound as prefill fills them (a job whose
 *     next shareable page another job is prefilling waits for it), and
 *     other pages only when the job ends (a banned-string back-off may rewrite positions >=
 *     n_prompt - 1 while running);
 *   - in DECODE, n_kv == n_tokens - 1: the next row feeds tokens[n_kv];
 *   - a step allocates nothing (batch buffers are sized at creation, job
 *     buffers at submit), except on rare paths (banned-string back-off
 *     re-priming the detokenizer, an unusually long final text).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "inference/engine_impl.h"

struct llm_engine_params llm_engine_default_params(void)
{
	struct llm_engine_params p;

	memset(&p, 0, sizeof p);
	p.n_ctx = 0;
	p.n_slots = 4;
	p.n_pages = 0;
	p.prefill_chunk = 512;
	p.n_draft = 0;
	p.ngram = false;
	return p;
}

struct llm_job_params llm_job_default_params(void)
{
	struct llm_job_params p;

	memset(&p, 0, sizeof p);
	return p;
}

const char *llm_finish_reason_name(enum llm_finish_reason r)
{
	switch (r) {
	case LLM_FINISH_NONE: return "none";
	case LLM_FINISH_EOS: return "eos";
	case LLM_FINISH_STOP: return "stop";
	case LLM_FINISH_MAX_TOKENS: return "max_tokens";
	case LLM_FINISH_CONTEXT: return "context";
	case LLM_FINISH_CANCELLED: return "cancelled";
	case LLM_FINISH_ERROR: return "error";
	case LLM_FINISH_LOOP: return "loop";
	}
	return "?";
}

static size_t pages_for(size_t n_pos)
{
	return (n_pos + LLM_KV_PAGE - 1) / LLM_KV_PAGE;
}

/* ---- engine ---------------------------------------------------------------- */

int llm_engine_new(struct llm_model *model, struct llm_model *draft,
		   const struct llm_engine_params *params,
		   const struct llm_tokenizer *tok, struct llm_engine **out,
		   struct diag *d)
{
	struct llm_engine_params p = params ? *params : llm_engine_default_params();
	struct llm_engine *e;
	size_t n_ctx, V;
	int rc;

	if (!out || !model)
		return diag_fail(d, LLM_E_INVALID, "llm_engine_new: bad arguments");
	*out = NULL;
	if (draft && draft->cfg.n_vocab != model->cfg.n_vocab)
		return diag_fail(d, LLM_E_INVALID,
				 "the draft model's vocabulary has %lld tokens, the model's %lld",
				 (long long)draft->cfg.n_vocab,
				 (long long)model->cfg.n_vocab);
	if (p.n_draft > LLM_SPEC_MAX_DRAFT)
		return diag_fail(d, LLM_E_INVALID, "%zu draft tokens a step (at most %d)",
				 p.n_draft, LLM_SPEC_MAX_DRAFT);
	if (!draft && !p.ngram)
		p.n_draft = 0;
	else if (p.n_draft == 0)
		p.n_draft = LLM_SPEC_DEFAULT_DRAFT;
	if (p.n_slots == 0 || p.n_slots > 256)
		return diag_fail(d, LLM_E_INVALID, "%zu job slots (1..256)", p.n_slots);
	n_ctx = p.n_ctx ? p.n_ctx :
		model->cfg.max_pos > 0 ? (size_t)model->cfg.max_pos : 4096;
	if (n_ctx < 2)
		return diag_fail(d, LLM_E_INVALID, "context of %zu positions", n_ctx);
	p.n_ctx = n_ctx;
	if (p.n_pages == 0)
		p.n_pages = p.n_slots * pages_for(n_ctx);
	if (p.prefill_chunk == 0)
		p.prefill_chunk = LLM_MAX_BATCH;
	V = (size_t)model->cfg.n_vocab;

	e = calloc(1, sizeof *e);
	if (!e)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	e->model = model;
	e->tok = tok;
	e->n_vocab = V;
	rc = llm_context_new_slots(model, n_ctx, p.n_slots, p.n_pages, &e->ctx, d);
	if (rc < 0) {
		free(e);
		diag_prefix(d, "engine");
		return rc;
	}
	if (p.prefill_chunk > e->ctx->n_batch)
		p.prefill_chunk = e->ctx->n_batch;
	e->par = p;
	rc = llm_kvc_init(&e->kc, p.n_pages, d);
	if (rc < 0)
		goto fail;
	e->slots = calloc(p.n_slots, sizeof *e->slots);
	e->b_ids = malloc(e->ctx->n_batch * sizeof *e->b_ids);
	e->b_seq = malloc(e->ctx->n_batch * sizeof *e->b_seq);
	e->b_pos = malloc(e->ctx->n_batch * sizeof *e->b_pos);
	e->b_want = malloc(e->ctx->n_batch * sizeof *e->b_want);
	e->b_logits = malloc(p.n_slots * (1 + p.n_draft) * V * sizeof *e->b_logits);
	e->b_mpos = malloc(3 * e->ctx->n_batch * sizeof *e->b_mpos);
	e->b_jobs = calloc(p.n_slots * (1 + p.n_draft), sizeof *e->b_jobs);
	if (!e->slots || !e->b_ids || !e->b_seq || !e->b_pos || !e->b_want ||
	    !e->b_logits || !e->b_jobs || !e->b_mpos) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto fail;
	}
	if (draft) {
		e->draft = draft;
		rc = llm_context_new_slots(draft, n_ctx, p.n_slots, 0, &e->dctx, d);
		if (rc < 0) {
			diag_prefix(d, "draft model");
			goto fail;
		}
		e->d_logits = malloc(p.n_slots * V * sizeof *e->d_logits);
		e->d_ids = malloc(e->dctx->n_batch * sizeof *e->d_ids);
		e->d_seq = malloc(e->dctx->n_batch * sizeof *e->d_seq);
		e->d_pos = malloc(e->dctx->n_batch * sizeof *e->d_pos);
		e->d_want = malloc(e->dctx->n_batch * sizeof *e->d_want);
		if (!e->d_logits || !e->d_ids || !e->d_seq || !e->d_pos || !e->d_want) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
	}
	*out = e;
	return 0;
fail:
	llm_engine_free(e);
	return rc;
}

static void detach_list(struct llm_job *j)
{
	while (j) {
		struct llm_job *next = j->next;

		j->engine = NULL;
		j->next = NULL;
		j->phase = LLM_JOB_DONE;
		j->slot = -1;
		if (j->finish == LLM_FINISH_NONE)
			j->finish = LLM_FINISH_CANCELLED;
		j = next;
	}
}

void llm_engine_free(struct llm_engine *e)
{
	size_t i;

	if (!e)
		return;
	detach_list(e->wait_head);
	detach_list(e->run_head);
	llm_context_free(e->ctx);
	llm_context_free(e->dctx);
	llm_kvc_fini(&e->kc);
	if (e->pieces) {
		for (i = 0; i < e->n_vocab; i++)
			free(e->pieces[i]);
	}
	free(e->pieces);
	free(e->piece_lens);
	free(e->slots);
	free(e->b_ids);
	free(e->b_seq);
	free(e->b_pos);
	free(e->b_want);
	free(e->b_logits);
	free(e->b_jobs);
	free(e->b_embd);
	free(e->b_mpos);
	free(e->d_logits);
	free(e->d_ids);
	free(e->d_seq);
	free(e->d_pos);
	free(e->d_want);
	free(e);
}

bool llm_engine_has_work(const struct llm_engine *e)
{
	return e && (e->wait_head || e->run_head);
}

void llm_engine_get_stats(const struct llm_engine *e, struct llm_engine_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!e)
		return;
	out->n_reused = e->n_reused;
	out->n_computed = e->n_computed;
	out->n_steps = e->n_steps;
	out->n_drafted = e->n_drafted;
	out->n_accepted = e->n_accepted;
	out->n_pages = e->kc.n_pages;
	out->n_pages_used = llm_kvc_n_used(&e->kc);
	out->n_pages_cached = e->kc.n_cached;
	out->n_pages_free = e->kc.n_free;
	out->n_running = e->n_running;
	out->n_waiting = e->n_waiting;
}

/* DRY needs every token's text; built once, on the first job using DRY. */
static int build_pieces(struct llm_engine *e, struct diag *d)
{
	int32_t tn;
	size_t i;

	if (e->pieces || !e->tok)
		return 0;
	e->pieces = calloc(e->n_vocab, sizeof *e->pieces);
	e->piece_lens = calloc(e->n_vocab, sizeof *e->piece_lens);
	if (!e->pieces || !e->piece_lens)
		goto nomem;
	tn = llm_tokenizer_n_vocab(e->tok);
	for (i = 0; i < e->n_vocab; i++) {
		int32_t id = (int32_t)i;
		char *s = NULL;
		size_t n = 0;

		if (id < tn && llm_tokenizer_decode(e->tok, &id, 1, false, &s, &n, NULL) == 0) {
			e->pieces[i] = s;
			e->piece_lens[i] = n;
		} else {
			free(s);
			e->pieces[i] = calloc(1, 1);
			if (!e->pieces[i])
				goto nomem;
		}
	}
	return 0;
nomem:
	if (e->pieces)
		for (i = 0; i < e->n_vocab; i++)
			free(e->pieces[i]);
	free(e->pieces);
	free(e->piece_lens);
	e->pieces = NULL;
	e->piece_lens = NULL;
	return diag_fail(d, LLM_E_NOMEM, "out of memory");
}

/* ---- jobs ------------------------------------------------------------------- */

static void job_destroy(struct llm_job *j)
{
	llm_sampler_free(j->smp);
	llm_stop_free(j->stop);
	llm_detok_free(j->detok);
	free(j->tokens);
	free(j->evtext);
	free(j->page_keys);
	free(j->prop);
	free(j->embd);
	free(j->erow);
	free(j->mpos);
	free(j);
}

int llm_job_submit(struct llm_engine *e, const struct llm_job_params *p,
		   struct llm_job **out, struct diag *d)
{
	struct llm_sampler_params sp;
	struct llm_stop_params stp;
	struct llm_job *j;
	size_t n_ctx, i, max_gen, n_pos;
	int rc;

	if (!e || !p || !out)
		return diag_fail(d, LLM_E_INVALID, "llm_job_submit: bad arguments");
	*out = NULL;
	n_ctx = e->par.n_ctx;
	if (p->n_prompt == 0 || !p->prompt)
		return diag_fail(d, LLM_E_INVALID,
				 "empty prompt (start with at least the BOS token)");
	for (i = 0; i < p->n_prompt; i++)
		if (p->prompt[i] < 0 || (size_t)p->prompt[i] >= e->n_vocab)
			return diag_fail(d, LLM_E_INVALID,
					 "prompt token %zu: id %ld outside the vocabulary of %zu",
					 i, (long)p->prompt[i], e->n_vocab);
	if (!e->tok && (p->n_stop_strings || p->n_banned_strings))
		return diag_fail(d, LLM_E_INVALID,
				 "stop or banned strings need an engine with a tokenizer");
	if (p->stop_on_loop &&
	    (p->stop_on_loop < LLM_LOOP_MIN || p->stop_on_loop > LLM_LOOP_MAX))
		return diag_fail(d, LLM_E_INVALID,
				 "stop_on_loop %ld: 0 (off) or %d..%d tokens",
				 (long)p->stop_on_loop, LLM_LOOP_MIN, LLM_LOOP_MAX);
	/* the last generated token is never fed back, so a run of n_prompt
	 * + max_gen tokens needs n_prompt + max_gen - 1 cache positions */
	if (p->max_tokens > 0) {
		if ((uint64_t)p->max_tokens > (uint64_t)n_ctx ||
		    p->n_prompt + (size_t)p->max_tokens > n_ctx)
			return diag_fail(d, LLM_E_NOSPACE,
					 "prompt of %zu tokens + max_tokens %lld exceed the context of %zu",
					 p->n_prompt, (long long)p->max_tokens, n_ctx);
		max_gen = (size_t)p->max_tokens;
	} else {
		if (p->n_prompt >= n_ctx)
			return diag_fail(d, LLM_E_NOSPACE,
					 "prompt of %zu tokens leaves no room in the context of %zu",
					 p->n_prompt, n_ctx);
		max_gen = n_ctx - p->n_prompt;
	}
	n_pos = p->n_prompt + max_gen - 1;
	if (pages_for(n_pos) > e->kc.n_pages)
		return diag_fail(d, LLM_E_NOSPACE,
				 "a job of %zu positions needs %zu KV pages; the pool has %zu",
				 n_pos, pages_for(n_pos), e->kc.n_pages);

	j = calloc(1, sizeof *j);
	if (!j)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	atomic_init(&j->cancel, false);
	j->slot = -1;
	j->logit_idx = -1;
	j->d_row = -1;
	j->n_prompt = p->n_prompt;
	j->max_gen = max_gen;
	j->to_ctx = p->max_tokens <= 0;
	j->loop_span = (size_t)p->stop_on_loop;
	j->cap = p->n_prompt + max_gen;
	j->n_pages_total = pages_for(n_pos);
	j->cb = p->callback;
	j->user = p->user;
	j->tokens = malloc(j->cap * sizeof *j->tokens);
	j->evtext_cap = 256;
	j->evtext = malloc(j->evtext_cap);
	j->prop = malloc((e->par.n_draft ? e->par.n_draft : 1) * sizeof *j->prop);
	j->k_prop = e->par.n_draft;
	if (!j->tokens || !j->evtext || !j->prop) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto fail;
	}
	memcpy(j->tokens, p->prompt, p->n_prompt * sizeof *j->tokens);
	j->n_tokens = p->n_prompt;
	if (p->embd || p->n_embd) {
		const struct llm_config *cf = &e->model->cfg;
		const size_t E = (size_t)cf->n_embd;
		size_t k = 0;

		if (!cf->has_vision || cf->image_token_id < 0 || !p->embd) {
			rc = diag_fail(d, LLM_E_INVALID,
				       "image embeddings for a model without a vision tower");
			goto fail;
		}
		j->erow = malloc(p->n_prompt * sizeof *j->erow);
		if (!j->erow) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
		for (i = 0; i < p->n_prompt; i++)
			j->erow[i] = p->prompt[i] == cf->image_token_id ? (int32_t)k++ : -1;
		if (k != p->n_embd) {
			rc = diag_fail(d, LLM_E_INVALID,
				       "%zu image embeddings for %zu image tokens in the prompt",
				       p->n_embd, k);
			goto fail;
		}
		j->embd = malloc((k ? k : 1) * E * sizeof *j->embd);
		if (!j->embd) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory (%zu image rows)", k);
			goto fail;
		}
		memcpy(j->embd, p->embd, k * E * sizeof *j->embd);
		j->no_share = true;
		if (!e->b_embd) {
			e->b_embd = calloc(e->ctx->n_batch * E, sizeof *e->b_embd);
			if (!e->b_embd) {
				rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
				goto fail;
			}
		}
	}
	if (p->mpos) {
		j->mpos = malloc(3 * p->n_prompt * sizeof *j->mpos);
		if (!j->mpos) {
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(j->mpos, p->mpos, 3 * p->n_prompt * sizeof *j->mpos);
		j->mpos_delta = p->mpos_next - (int64_t)p->n_prompt;
	}
	/* keys of the pages other jobs may share: full pages ending at or
	 * before n_prompt - 1 (the last prompt token is always recomputed) */
	j->n_shareable = j->no_share ? 0 : (p->n_prompt - 1) / LLM_KV_PAGE;
	j->page_keys = malloc((j->n_shareable ? j->n_shareable : 1) * sizeof *j->page_keys);
	if (!j->page_keys) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < j->n_shareable; i++)
		j->page_keys[i] = llm_kvc_key(i ? j->page_keys[i - 1] : LLM_KVC_SEED,
					      j->tokens + i * LLM_KV_PAGE);

	sp = p->sampler ? *p->sampler : llm_sampler_default_params();
	rc = llm_sampler_new(&sp, (int32_t)e->n_vocab, &j->smp, d);
	if (rc < 0)
		goto fail; /* its messages start with "sampler: " */
	if (sp.dry_multiplier > 0.0f && e->tok) {
		rc = build_pieces(e, d);
		if (rc < 0)
			goto fail;
		llm_sampler_set_pieces(j->smp, (const char *const *)e->pieces,
				       e->piece_lens);
	}
	memset(&stp, 0, sizeof stp);
	stp.stop_strings = p->stop_strings;
	stp.n_stop_strings = p->n_stop_strings;
	stp.banned_strings = p->banned_strings;
	stp.n_banned_strings = p->n_banned_strings;
	if (!p->ignore_eos) {
		stp.eos_tokens = e->model->cfg.eos_ids;
		stp.n_eos_tokens = (size_t)e->model->cfg.n_eos;
	}
	stp.max_tokens = (int64_t)max_gen;
	rc = llm_stop_new(&stp, &j->stop, d);
	if (rc < 0) {
		diag_prefix(d, "stop strings");
		goto fail;
	}
	if (e->tok) {
		rc = llm_detok_new(e->tok, true, &j->detok, d);
		if (rc < 0)
			goto fail;
	}

	j->engine = e;
	j->phase = LLM_JOB_WAITING;
	j->t_submit = clock_now_s();
	j->st.n_prompt = p->n_prompt;
	if (e->wait_tail)
		e->wait_tail->next = j;
	else
		e->wait_head = j;
	e->wait_tail = j;
	e->n_waiting++;
	*out = j;
	return 0;
fail:
	job_destroy(j);
	return rc;
}

void llm_job_cancel(struct llm_job *job)
{
	if (job)
		atomic_store(&job->cancel, true);
}

enum llm_finish_reason llm_job_finish_reason(const struct llm_job *job)
{
	return job ? job->finish : LLM_FINISH_NONE;
}

const int32_t *llm_job_tokens(const struct llm_job *job, size_t *n)
{
	*n = job->n_tokens - job->n_prompt;
	return job->tokens + job->n_prompt;
}

void llm_job_get_stats(const struct llm_job *job, struct llm_job_stats *out)
{
	*out = job->st;
}

/* ---- page tables ------------------------------------------------------------- */

static int32_t *pt_row(struct llm_engine *e, int32_t slot)
{
	return e->ctx->page_table + (size_t)slot * e->ctx->max_pages;
}

/* Publish the job's full pages below position LIMIT that are not hashed
 * yet, keyed by the chain over its tokens. */
static void publish_pages(struct llm_engine *e, struct llm_job *j, size_t limit)
{
	const int32_t *row = pt_row(e, j->slot);
	uint64_t parent = LLM_KVC_SEED;
	size_t p;

	if (j->no_share)
		return;
	for (p = 0; (p + 1) * LLM_KV_PAGE <= limit; p++) {
		const int32_t *ids = j->tokens + p * LLM_KV_PAGE;
		uint64_t key = llm_kvc_key(parent, ids);

		if (row[p] < 0)
			break;
		llm_kvc_publish(&e->kc, row[p], key, parent, ids);
		parent = key;
	}
}

/* Give back the job's slot, pages and unused reservation. */
static void release_job(struct llm_engine *e, struct llm_job *j)
{
	size_t p;

	if (j->slot >= 0) {
		int32_t *row = pt_row(e, j->slot);

		for (p = 0; p < e->ctx->max_pages; p++) {
			if (row[p] < 0)
				continue;
			llm_kvc_unref(&e->kc, row[p]);
			row[p] = -1;
			e->ctx->pt_dirty = true;
		}
		e->ctx->n_past[j->slot] = 0;
		if (e->dctx) {
			llm_kv_release(e->dctx, (size_t)j->slot, 0);
			e->dctx->n_past[j->slot] = 0;
		}
		e->slots[j->slot] = NULL;
		j->slot = -1;
	}
	llm_kvc_unreserve(&e->kc, j->n_pages_reserved);
	j->n_pages_reserved = 0;
}

/* Try to admit J: a free slot, its cached prefix, a reservation for the
 * rest.  Returns true when admitted. */
/* true when a running job is prefilling the prompt page P that J could
 * share (same chained key) but has not computed it yet. */
static bool page_in_flight(const struct llm_engine *e, const struct llm_job *j,
			   size_t p)
{
	const struct llm_job *r;

	for (r = e->run_head; r; r = r->next)
		if (r->phase == LLM_JOB_PREFILL && r->n_shareable > p &&
		    r->page_keys[p] == j->page_keys[p] &&
		    r->n_kv < (p + 1) * LLM_KV_PAGE)
			return true;
	return false;
}

static bool admit(struct llm_engine *e, struct llm_job *j)
{
	size_t s, p, matched = 0;
	uint64_t parent = LLM_KVC_SEED;
	int32_t *row;

	for (s = 0; s < e->par.n_slots; s++)
		if (!e->slots[s])
			break;
	if (s == e->par.n_slots)
		return false;
	row = pt_row(e, (int32_t)s);
	/* reuse only full pages ending at or before n_prompt - 1: the last
	 * prompt token is always recomputed for its logits */
	for (p = 0; p < j->n_shareable; p++) {
		const int32_t *ids = j->tokens + p * LLM_KV_PAGE;
		int32_t pg = llm_kvc_find(&e->kc, j->page_keys[p], parent, ids);

		if (pg < 0 || llm_kvc_ref(&e->kc, pg) < 0)
			break;
		row[p] = pg;
		matched++;
		parent = j->page_keys[p];
	}
	/* the same prompt being prefilled right now (N replies to one
	 * prompt): wait for its pages rather than compute them twice */
	if ((matched < j->n_shareable && page_in_flight(e, j, matched)) ||
	    llm_kvc_reserve(&e->kc, j->n_pages_total - matched) < 0) {
		for (p = 0; p < matched; p++) {
			llm_kvc_unref(&e->kc, row[p]);
			row[p] = -1;
		}
		return false;
	}
	if (matched)
		e->ctx->pt_dirty = true;
	j->n_pages_reserved = j->n_pages_total - matched;
	j->slot = (int32_t)s;
	e->slots[s] = j;
	j->n_kv = matched * LLM_KV_PAGE;
	j->st.n_reused = j->n_kv;
	e->n_reused += j->n_kv;
	j->phase = LLM_JOB_PREFILL;
	j->t_admit = clock_now_s();
	j->st.t_queued = j->t_admit - j->t_submit;
	return true;
}

/* Prime the sampler's history and the detokenizer with the prompt (the
 * detokenizer must know what precedes the first generated token, e.g.
 * SentencePiece strips a leading space only at the start of the text). */
static int prime(struct llm_engine *e, struct llm_job *j, struct diag *d)
{
	int32_t tn = e->tok ? llm_tokenizer_n_vocab(e->tok) : 0;
	size_t i;
	int rc;

	for (i = 0; i < j->n_prompt; i++) {
		rc = llm_sampler_accept(j->smp, j->tokens[i]);
		if (rc < 0)
			return diag_fail(d, rc, "sampler: prompt token %zu", i);
	}
	if (j->detok) {
		llm_detok_reset(j->detok);
		for (i = 0; i < j->n_tokens; i++) {
			const char *t;
			size_t n;

			if (j->tokens[i] >= tn)
				continue;
			rc = llm_detok_push(j->detok, j->tokens[i], &t, &n, d);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static void emit(struct llm_job *j, const struct llm_job_event *ev)
{
	if (j->cb)
		j->cb(j, ev, j->user);
}

static void event_init(struct llm_job *j, struct llm_job_event *ev,
		       enum llm_job_event_type type)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
	ev->token = -1;
	ev->pos = -1;
	ev->text = "";
	ev->stop_index = -1;
	ev->stats = &j->st;
}

/* Fill the end-of-job timing stats. */
static void finish_stats(struct llm_job *j)
{
	double now = clock_now_s();

	if (j->t_admit <= 0.0) {
		j->st.t_queued = now - j->t_submit;
	} else if (j->t_first <= 0.0) {
		j->st.t_prefill = now - j->t_admit;
	} else {
		j->st.t_decode = now - j->t_first;
	}
	j->st.decode_tps = j->st.t_decode > 0 && j->st.n_generated > 1 ?
		(double)(j->st.n_generated - 1) / j->st.t_decode : 0.0;
}

/* End job J: publish its pages (unless failed), give back everything and
 * deliver FINISH with TEXT (may be empty).  The job stays on the running /
 * waiting list until the sweep. */
static void finish_job(struct llm_engine *e, struct llm_job *j,
		       enum llm_finish_reason why, int32_t token, int32_t which,
		       const char *text, size_t len, int err, const char *msg)
{
	struct llm_job_event ev;
	const char *tail = "";
	size_t tail_len = 0;

	if (j->detok && why != LLM_FINISH_ERROR && why != LLM_FINISH_STOP &&
	    llm_detok_flush(j->detok, &tail, &tail_len) != 0)
		tail_len = 0;
	if (tail_len) {
		/* the detokenizer's held bytes (an unfinished character,
		 * now U+FFFD) follow the stop matcher's text */
		if (len + tail_len > j->evtext_cap) {
			char *nb = realloc(j->evtext, len + tail_len);

			if (nb) {
				j->evtext = nb;
				j->evtext_cap = len + tail_len;
			} else {
				tail_len = 0;
			}
		}
		if (tail_len) {
			memmove(j->evtext, text, len);
			memcpy(j->evtext + len, tail, tail_len);
			text = j->evtext;
			len += tail_len;
		}
	}
	if (why != LLM_FINISH_ERROR && j->slot >= 0)
		publish_pages(e, j, j->n_kv);
	release_job(e, j);
	j->phase = LLM_JOB_DONE;
	j->finish = why;
	j->err = err;
	if (msg)
		snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
	finish_stats(j);
	event_init(j, &ev, LLM_JOB_EVENT_FINISH);
	ev.token = token;
	ev.text = text;
	ev.text_len = len;
	ev.finish = why;
	ev.stop_index = which;
	ev.error = err;
	ev.error_msg = msg ? j->errmsg : NULL;
	emit(j, &ev);
}

/* Finish with the text the stop matcher still holds (cancel). */
static void finish_flush(struct llm_engine *e, struct llm_job *j,
			 enum llm_finish_reason why)
{
	struct llm_stop_result res;

	llm_stop_flush(j->stop, &res);
	finish_job(e, j, why, -1, -1, res.emit, res.emit_len, 0, NULL);
}

static void fail_job(struct llm_engine *e, struct llm_job *j, int err,
		     const struct diag *d)
{
	finish_job(e, j, LLM_FINISH_ERROR, -1, -1, "", 0, err,
		   diag_message(d, llm_strerror(err)));
}

/* Remove finished jobs from both lists. */
static void sweep(struct llm_engine *e)
{
	struct llm_job **link, *tail = NULL;

	for (link = &e->run_head; *link;) {
		if ((*link)->phase == LLM_JOB_DONE) {
			struct llm_job *x = *link;

			*link = x->next;
			x->next = NULL;
			e->n_running--;
		} else {
			link = &(*link)->next;
		}
	}
	for (link = &e->wait_head; *link;) {
		if ((*link)->phase == LLM_JOB_DONE) {
			struct llm_job *x = *link;

			*link = x->next;
			x->next = NULL;
			e->n_waiting--;
		} else {
			tail = *link;
			link = &(*link)->next;
		}
	}
	e->wait_tail = tail;
}

/* Sample the next token of J from LOGITS and deliver its events.  Returns
 * a negative error only for failures that end the job (already finished). */
static void take_token(struct llm_engine *e, struct llm_job *j, const float *logits)
{
	struct llm_stop_result res;
	struct llm_job_event ev;
	struct diag d;
	const char *piece = "";
	size_t plen = 0, gen;
	int32_t id;
	int rc;

	diag_clear(&d);
	if (e->logits_hook)
		e->logits_hook(j, logits, e->n_vocab, e->logits_hook_user);
	id = llm_sampler_sample(j->smp, logits, &d);
	if (id < 0) {
		fail_job(e, j, id, &d);
		return;
	}
	if (j->t_first <= 0.0) {
		j->t_first = clock_now_s();
		j->st.t_prefill = j->t_first - j->t_admit;
		j->st.prefill_tps = j->st.t_prefill > 0 ?
			(double)(j->n_prompt - j->st.n_reused) / j->st.t_prefill : 0.0;
	}
	rc = llm_sampler_accept(j->smp, id);
	if (rc < 0) {
		fail_job(e, j, rc, &d);
		return;
	}
	gen = j->n_tokens - j->n_prompt; /* index of this token */
	if (j->detok && id < llm_tokenizer_n_vocab(e->tok)) {
		rc = llm_detok_push(j->detok, id, &piece, &plen, &d);
		if (rc < 0) {
			fail_job(e, j, rc, &d);
			return;
		}
	}
	rc = llm_stop_feed(j->stop, id, piece, plen, &res, &d);
	if (rc < 0) {
		fail_job(e, j, rc, &d);
		return;
	}
	if (res.status == LLM_STOP_EOS) {
		/* the EOS id is not part of the output; its KV is not needed */
		finish_job(e, j, LLM_FINISH_EOS, id, -1, res.emit, res.emit_len, 0, NULL);
		return;
	}
	if (res.status == LLM_STOP_BANNED) {
		/* back off: forget tokens from rollback_pos on, recompute the
		 * logits of the position before, never pick ban_token there */
		size_t r = (size_t)res.rollback_pos;

		llm_sampler_rollback(j->smp, (int32_t)(gen + 1 - r));
		j->n_tokens = j->n_prompt + r;
		j->st.n_generated = r;
		j->n_kv = j->n_tokens - 1;
		rc = llm_sampler_ban_here(j->smp, res.ban_token, &d);
		if (rc == 0 && j->detok) {
			/* the detokenizer cannot go back: replay what is kept */
			size_t i;
			int32_t tn = llm_tokenizer_n_vocab(e->tok);

			llm_detok_reset(j->detok);
			for (i = 0; i < j->n_tokens && rc == 0; i++) {
				const char *t;
				size_t n;

				if (j->tokens[i] < tn)
					rc = llm_detok_push(j->detok, j->tokens[i], &t, &n, &d);
			}
		}
		if (rc < 0) {
			fail_job(e, j, rc, &d);
			return;
		}
		if (r < gen) {
			event_init(j, &ev, LLM_JOB_EVENT_ROLLBACK);
			ev.pos = (int64_t)r;
			emit(j, &ev);
		}
		j->phase = LLM_JOB_DECODE;
		return;
	}
	j->tokens[j->n_tokens++] = id;
	j->st.n_generated = j->n_tokens - j->n_prompt;
	event_init(j, &ev, LLM_JOB_EVENT_TOKEN);
	ev.token = id;
	ev.pos = (int64_t)gen;
	ev.text = res.emit_len ? res.emit : "";
	ev.text_len = res.emit_len;
	emit(j, &ev);
	if (res.status == LLM_STOP_HIT) {
		finish_job(e, j, LLM_FINISH_STOP, -1, res.which, "", 0, 0, NULL);
		return;
	}
	if (res.status == LLM_STOP_MAX_TOKENS) {
		finish_job(e, j, j->to_ctx ? LLM_FINISH_CONTEXT : LLM_FINISH_MAX_TOKENS,
			   -1, -1, "", 0, 0, NULL);
		return;
	}
	if (j->loop_span && llm_loop_period(j->tokens + j->n_prompt,
					    j->n_tokens - j->n_prompt, j->loop_span)) {
		finish_flush(e, j, LLM_FINISH_LOOP);
		return;
	}
	j->phase = LLM_JOB_DECODE;
}

/* Row N of the batch is J's position POS: its token (an image row's
 * embedding instead) and MRoPE positions.  Returns whether the row reads
 * an embedding. */
static bool put_row(struct llm_engine *e, struct llm_job *j, size_t n, size_t pos,
		    int32_t id)
{
	const size_t B = e->ctx->n_batch;
	bool img = false;
	int a;

	e->b_ids[n] = id;
	e->b_seq[n] = j->slot;
	e->b_pos[n] = (int32_t)pos;
	if (j->erow && pos < j->n_prompt && j->erow[pos] >= 0) {
		const size_t E = (size_t)e->model->cfg.n_embd;

		e->b_ids[n] = -1;
		memcpy(e->b_embd + n * E, j->embd + (size_t)j->erow[pos] * E,
		       E * sizeof *e->b_embd);
		img = true;
	}
	for (a = 0; a < 3; a++)
		e->b_mpos[a * B + n] =
			!j->mpos ? (int32_t)pos :
			pos < j->n_prompt ? j->mpos[(size_t)a * j->n_prompt + pos] :
			(int32_t)((int64_t)pos + j->mpos_delta);
	return img;
}

/* Map the page holding POS in J's slot, taking a reserved page if needed. */
static void map_pos(struct llm_engine *e, struct llm_job *j, size_t pos)
{
	int32_t *row = pt_row(e, j->slot);
	size_t p = pos / LLM_KV_PAGE;

	if (row[p] >= 0)
		return;
	/* admission reserved every page of the longest run (asserted in
	 * llm_kvc_take) */
	row[p] = llm_kvc_take(&e->kc);
	j->n_pages_reserved--;
	e->ctx->pt_dirty = true;
}

/* ---- speculative decoding ------------------------------------------------ */

/* Longest n-gram the lookup drafter matches. */
#define SPEC_NGRAM 3

/* Up to NP tokens that followed the latest earlier occurrence of J's last
 * k tokens (k = SPEC_NGRAM .. 1, longest first) into OUT; their count. */
static size_t propose_ngram(const struct llm_job *j, int32_t *out, size_t np)
{
	const int32_t *t = j->tokens;
	const size_t n = j->n_tokens;
	size_t k, p, m;

	for (k = n - 1 < SPEC_NGRAM ? n - 1 : SPEC_NGRAM; k >= 1; k--) {
		const int32_t *tail = t + n - k;

		for (p = n - k; p-- > 0;) {
			if (t[p] != tail[0] || memcmp(t + p, tail, k * sizeof *t))
				continue;
			m = n - (p + k) < np ? n - (p + k) : np;
			memcpy(out, t + p + k, m * sizeof *out);
			return m;
		}
	}
	return 0;
}

static int32_t argmax(const float *v, size_t n)
{
	size_t i, best = 0;

	for (i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return (int32_t)best;
}

/* One forward of the draft's batch (e->d_n rows); each job with d_want
 * set takes the argmax of its logits row as proposal d_step. */
static int draft_flush(struct llm_engine *e, struct diag *d)
{
	struct llm_batch b;
	struct llm_job *j;
	int rc;

	if (e->d_n == 0)
		return 0;
	memset(&b, 0, sizeof b);
	b.n = e->d_n;
	b.ids = e->d_ids;
	b.seq = e->d_seq;
	b.pos = e->d_pos;
	b.logits = e->d_want;
	b.logits_out = e->d_logits;
	rc = llm_forward(e->dctx, &b, d);
	e->d_n = 0;
	e->d_nw = 0;
	for (j = e->run_head; j; j = j->next) {
		if (j->d_row < 0)
			continue;
		if (rc == 0)
			j->prop[j->d_step] = argmax(e->d_logits + (size_t)j->d_row * e->n_vocab,
						    e->n_vocab);
		j->d_row = -1;
	}
	return rc;
}

/* Queue draft row ID at POS of J (its logits wanted when WANT). */
static int draft_row(struct llm_engine *e, struct llm_job *j, int32_t id, size_t pos,
		     bool want, size_t step, struct diag *d)
{
	int rc = 0;

	if (e->d_n == e->dctx->n_batch)
		rc = draft_flush(e, d);
	e->d_ids[e->d_n] = id;
	e->d_seq[e->d_n] = j->slot;
	e->d_pos[e->d_n] = (int32_t)pos;
	e->d_want[e->d_n] = want;
	if (want) {
		j->d_row = (int32_t)e->d_nw++;
		j->d_step = step;
	}
	e->d_n++;
	return rc;
}

/* The draft model's argmax continuations of every job with j->n_prop > 0
 * (the count wanted) into j->prop, the jobs batched: first the tokens
 * each draft cache lacks (at least the last one), then proposal after
 * proposal, each but the last fed back.  On an error every such job
 * fails (the draft's state is unknown). */
static void propose_drafts(struct llm_engine *e)
{
	struct llm_job *j;
	size_t step, maxp = 0, p;
	struct diag d;
	int rc = 0;

	diag_clear(&d);
	for (j = e->run_head; j && rc == 0; j = j->next) {
		const size_t n = j->n_tokens;

		j->d_row = -1;
		if (j->phase != LLM_JOB_DECODE || j->n_prop == 0)
			continue;
		rc = llm_kv_reserve(e->dctx, (size_t)j->slot, n + j->n_prop - 1, &d);
		for (p = j->d_kv < n - 1 ? j->d_kv : n - 1; p < n && rc == 0; p++)
			rc = draft_row(e, j, j->tokens[p], p, p == n - 1, 0, &d);
		j->d_kv = n;
		maxp = j->n_prop > maxp ? j->n_prop : maxp;
	}
	if (rc == 0)
		rc = draft_flush(e, &d);
	for (step = 1; step < maxp && rc == 0; step++) {
		for (j = e->run_head; j && rc == 0; j = j->next)
			if (j->phase == LLM_JOB_DECODE && j->n_prop > step)
				rc = draft_row(e, j, j->prop[step - 1], j->n_tokens + step - 1,
					       true, step, &d);
		if (rc == 0)
			rc = draft_flush(e, &d);
	}
	for (j = e->run_head; j; j = j->next) {
		if (j->phase != LLM_JOB_DECODE || j->n_prop == 0)
			continue;
		e->dctx->n_past[j->slot] = j->n_tokens + j->n_prop - 1;
		if (rc < 0) {
			struct diag jd = d;

			diag_prefix(&jd, "draft model");
			j->n_prop = 0;
			fail_job(e, j, rc, &jd);
		}
	}
}

/* How many proposals decoding job J takes this step, at most MAX (the
 * rows the batch has left): none past the job's last position (the final
 * token is never fed back).  Sets j->n_prop; n-gram proposals are made
 * here, the draft model's after every job has its count. */
static void propose(struct llm_engine *e, struct llm_job *j, size_t max)
{
	const size_t gen = j->n_tokens - j->n_prompt;
	size_t np = e->par.draft_adaptive ? j->k_prop : e->par.n_draft;

	j->n_prop = 0;
	if (e->par.draft_adaptive && j->n_pause) {
		/* proposals kept nothing for a while: a rest, then one again */
		if (--j->n_pause == 0)
			j->k_prop = 1;
		return;
	}
	/* rows at positions n_kv .. n_kv + np must stay below n_prompt +
	 * max_gen - 1, the positions admission reserved */
	if (j->max_gen - gen < 2)
		return;
	if (np > j->max_gen - gen - 1)
		np = j->max_gen - gen - 1;
	if (np > max)
		np = max;
	if (np == 0)
		return;
	j->n_prop = e->draft ? np : propose_ngram(j, j->prop, np);
}

/* After the forward: J's rows are its last token and n_prop proposals.
 * Sample row i while the job runs on and each sample equals proposal i;
 * the cache then holds the positions of the kept tokens but the last. */
static void take_proposed(struct llm_engine *e, struct llm_job *j)
{
	const size_t base = j->n_kv, nt0 = j->n_tokens, np = j->n_prop;
	size_t i, acc = 0;

	/* counted as they happen: the events of take_token carry them */
	j->st.n_computed += j->step_rows;
	j->st.n_drafted += np;
	j->st.n_verify++;
	e->n_drafted += np;
	for (i = 0; i <= np; i++) {
		j->n_kv = base + i + 1;
		e->ctx->n_past[j->slot] = j->n_kv;
		take_token(e, j, e->b_logits + ((size_t)j->logit_idx + i) * e->n_vocab);
		if (j->phase != LLM_JOB_DECODE || j->n_tokens != nt0 + i + 1 ||
		    i == np || j->tokens[nt0 + i] != j->prop[i])
			break;
		acc++;
		j->st.n_accepted++;
		e->n_accepted++;
	}
	if (e->par.draft_adaptive && np) {
		if (acc == np) {
			j->k_prop = j->k_prop + LLM_SPEC_ADAPT_UP < e->par.n_draft ?
					    j->k_prop + LLM_SPEC_ADAPT_UP : e->par.n_draft;
			j->n_miss = 0;
		} else {
			if (j->k_prop > 1)
				j->k_prop--;
			j->n_miss = acc ? 0 : j->n_miss + 1;
			if (j->n_miss >= LLM_SPEC_ADAPT_MISSES) {
				j->n_miss = 0;
				j->n_pause = LLM_SPEC_ADAPT_PAUSE;
			}
		}
	}
	if (j->phase != LLM_JOB_DECODE)
		return;
	/* a back-off may have moved n_kv back */
	e->ctx->n_past[j->slot] = j->n_kv;
	if (e->draft) {
		/* the draft's cache holds proposals 0 .. np - 2 after nt0 */
		size_t keep = nt0 + (acc < np - 1 ? acc : np - 1);

		j->d_kv = keep < j->n_tokens - 1 ? keep : j->n_tokens - 1;
	}
}

int llm_engine_step(struct llm_engine *e, struct diag *d)
{
	struct llm_job *j, **link;
	struct llm_batch b;
	size_t n = 0, n_logit = 0, n_dec, budget, i;
	bool use_embd = false, use_mpos = false;
	int rc, ret = 0;

	if (!e)
		return diag_fail(d, LLM_E_INVALID, "llm_engine_step: no engine");

	/* cancellations */
	for (j = e->wait_head; j; j = j->next)
		if (atomic_load(&j->cancel))
			finish_flush(e, j, LLM_FINISH_CANCELLED);
	for (j = e->run_head; j; j = j->next)
		if (atomic_load(&j->cancel))
			finish_flush(e, j, LLM_FINISH_CANCELLED);
	sweep(e);

	/* admission, first come first served (a job that does not fit keeps
	 * the ones behind it waiting, so a big job is not starved) */
	while (e->wait_head && admit(e, e->wait_head)) {
		struct diag pd;

		j = e->wait_head;
		e->wait_head = j->next;
		if (!e->wait_head)
			e->wait_tail = NULL;
		e->n_waiting--;
		j->next = NULL;
		for (link = &e->run_head; *link; link = &(*link)->next)
			;
		*link = j;
		e->n_running++;
		diag_clear(&pd);
		rc = prime(e, j, &pd);
		if (rc < 0) {
			fail_job(e, j, rc, &pd);
			ret = diag_fail(d, rc, "%s", diag_message(&pd, llm_strerror(rc)));
		}
	}
	sweep(e);

	/* the batch: one row per decoding job and its proposals, then
	 * prefill chunks */
	n_dec = 0;
	for (j = e->run_head; j; j = j->next) {
		j->logit_idx = -1;
		j->step_rows = 0;
		j->n_prop = 0;
		n_dec += j->phase == LLM_JOB_DECODE;
	}
	if (e->par.n_draft) {
		size_t rows = 0;

		/* every decoding job after this one keeps its row */
		for (j = e->run_head; j; j = j->next) {
			if (j->phase != LLM_JOB_DECODE)
				continue;
			{
				const size_t left = e->ctx->n_batch - rows;

				propose(e, j, left > n_dec ? left - n_dec : 0);
			}
			rows += 1 + j->n_prop;
			n_dec--;
		}
		if (e->draft)
			propose_drafts(e); /* jobs whose draft fails end here */
	}
	for (j = e->run_head; j; j = j->next) {
		if (j->phase != LLM_JOB_DECODE)
			continue;
		for (i = 0; i <= j->n_prop; i++) {
			map_pos(e, j, j->n_kv + i);
			use_embd |= put_row(e, j, n, j->n_kv + i,
					    i ? j->prop[i - 1] : j->tokens[j->n_kv]);
			use_mpos |= j->mpos != NULL;
			e->b_want[n] = 1;
			n++;
		}
		e->b_jobs[n_logit] = j;
		j->logit_idx = (int32_t)n_logit;
		n_logit += 1 + j->n_prop;
		j->step_rows = 1 + j->n_prop;
	}
	budget = e->ctx->n_batch - n;
	if (budget > e->par.prefill_chunk)
		budget = e->par.prefill_chunk;
	for (j = e->run_head; j && budget > 0; j = j->next) {
		size_t m;

		if (j->phase != LLM_JOB_PREFILL)
			continue;
		m = j->n_prompt - j->n_kv;
		if (m > budget)
			m = budget;
		for (i = 0; i < m; i++) {
			size_t pos = j->n_kv + i;

			map_pos(e, j, pos);
			use_embd |= put_row(e, j, n, pos, j->tokens[pos]);
			use_mpos |= j->mpos != NULL;
			e->b_want[n] = pos == j->n_prompt - 1;
			n++;
		}
		if (j->n_kv + m == j->n_prompt) {
			e->b_jobs[n_logit] = j;
			j->logit_idx = (int32_t)n_logit++;
		}
		j->step_rows = m;
		budget -= m;
	}
	if (n == 0)
		return ret;

	memset(&b, 0, sizeof b);
	b.n = n;
	b.ids = e->b_ids;
	b.seq = e->b_seq;
	b.pos = e->b_pos;
	b.logits = e->b_want;
	b.logits_out = e->b_logits;
	if (use_mpos) {
		/* the three rows packed [3][n] as the forward pass reads them */
		const size_t B = e->ctx->n_batch;

		if (n < B) {
			memmove(e->b_mpos + n, e->b_mpos + B, n * sizeof *e->b_mpos);
			memmove(e->b_mpos + 2 * n, e->b_mpos + 2 * B, n * sizeof *e->b_mpos);
		}
		b.mpos = e->b_mpos;
	}
	if (use_embd)
		b.embd = e->b_embd;
	{
		struct diag fd;

		diag_clear(&fd);
		rc = llm_forward(e->ctx, &b, &fd);
		e->n_steps++;
		if (rc < 0) {
			/* the rows' K/V may be half written: their jobs end */
			for (j = e->run_head; j; j = j->next)
				if (j->step_rows > 0)
					fail_job(e, j, rc, &fd);
			sweep(e);
			return diag_fail(d, rc, "%s", diag_message(&fd, llm_strerror(rc)));
		}
	}
	e->n_computed += n;

	for (j = e->run_head; j; j = j->next) {
		if (j->step_rows == 0)
			continue;
		if (j->phase == LLM_JOB_DECODE && j->n_prop > 0) {
			take_proposed(e, j);
			continue;
		}
		j->n_kv += j->step_rows;
		j->st.n_computed += j->step_rows;
		e->ctx->n_past[j->slot] = j->n_kv;
		if (j->phase == LLM_JOB_PREFILL) /* shareable pages as they fill */
			publish_pages(e, j, j->n_kv < j->n_prompt - 1 ? j->n_kv :
					    j->n_prompt - 1);
		if (j->logit_idx >= 0)
			take_token(e, j, e->b_logits + (size_t)j->logit_idx * e->n_vocab);
	}
	sweep(e);
	return ret;
}

void llm_job_free(struct llm_job *job)
{
	struct llm_engine *e;

	if (!job)
		return;
	e = job->engine;
	if (e && job->phase != LLM_JOB_DONE) {
		/* still queued or running: leave quietly */
		release_job(e, job);
		job->phase = LLM_JOB_DONE;
		sweep(e);
	}
	job_destroy(job);
}
