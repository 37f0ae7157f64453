/* inference/bench.c — llm_bench_run: prefill and batched-decode speed of a
 * model, its memory on the backend, and decode's fraction of the
 * memory-bandwidth roofline (the figures of `tern bench`).
 *
 * Prefill: n_prompt random ids (fixed seed, ids >= 3) through
 * llm_context_eval in slot 0, logits of the last row only, as a prompt is
 * evaluated; one untimed chunk first (grows scratch, initialises the
 * device libraries), then n_reps timed runs, median.
 * Decode: B = n_batch slots, every slot's page table covering n_ctx
 * positions of zeroed K/V (position ctx needs no prefill to be measured:
 * attention reads the same bytes whatever they hold).  Step t (one
 * llm_forward of B rows, logits of every row read back) puts each slot at
 * position n_ctx - n_gen + t; warm-up steps rewrite the first positions.
 * Median per-step time -> decode tok/s = B / step.
 * Prefill FLOPs (prefill_flops): counted from the shapes, not the weights'
 * format (EXL3 linears count as their k x n products).
 * Roofline: bytes one step must read at least,
 *   weights: every weight buffer, except MoE experts, of which a batch of B
 *     rows touches n_e (1 - (1 - k/n_e)^B) per layer in expectation
 *     (uniform routing), and the embedding, of which B rows are read;
 *   K/V: B * mean attended length * n_layer * 2 * Hk * hd * elem bytes;
 * over the measured copy bandwidth (gpu_copy of half a buffer onto its
 * other half; read + write bytes; median of 7).
 * Steady state allocates nothing inside the timed regions.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "gpu/gpu.h"
#include "inference/llm.h"
#include "inference/model_impl.h"

struct llm_bench_params llm_bench_default_params(void)
{
	struct llm_bench_params p;

	memset(&p, 0, sizeof p);
	p.n_prompt = 512;
	p.n_gen = 128;
	p.n_batch = 1;
	p.n_reps = 3;
	p.n_warmup = 3;
	p.measure_bw = true;
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int gerr(int rc)
{
	return rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
}

/* Copy bandwidth of the backend: a buffer of BYTES (halved while it does
 * not fit, down to 16 MiB), its first half copied onto its second. */
static int measure_bw(struct gpu *g, size_t bytes, struct llm_bench_result *r,
		      struct diag *d)
{
	struct gpu_buf *b = NULL;
	double t[7];
	size_t half;
	int i, rc;

	while (gpu_buf_new(g, GPU_DTYPE_F32, bytes / 4, &b, NULL) < 0) {
		if (bytes <= ((size_t)16 << 20))
			return diag_fail(d, LLM_E_NOMEM,
					 "no room for a bandwidth buffer of %zu MiB",
					 bytes >> 20);
		bytes /= 2;
	}
	half = bytes / 8; /* f32 elements in half the buffer */
	rc = gpu_buf_zero(b, d); /* touch every page */
	for (i = -1; rc == 0 && i < 7; i++) {
		double t0 = clock_now_s();

		rc = gpu_copy(g, b, half, b, 0, half, d);
		if (rc == 0)
			rc = gpu_sync(g, d);
		if (i >= 0)
			t[i] = clock_now_s() - t0;
	}
	gpu_buf_free(b);
	if (rc < 0) {
		diag_prefix(d, "bandwidth copy");
		return gerr(rc);
	}
	r->bw_bytes = 2.0 * (double)half * 4.0;
	r->bw_bytes_s = r->bw_bytes / median(t, 7);
	return 0;
}

static double bb(const struct gpu_buf *b)
{
	return b ? (double)gpu_buf_bytes(b) : 0.0;
}

static double xb(const struct gpu_exl3_weight *w)
{
	return w ? (double)gpu_exl3_weight_bytes(w) : 0.0;
}

/* Weight bytes one decode step of B rows reads (see the file comment). */
static double step_weight_bytes(const struct llm_model *m, size_t B)
{
	const struct llm_config *c = &m->cfg;
	double s = bb(m->out_norm), es;
	int64_t l, e;

	s += m->x_lm_head ? xb(m->x_lm_head) : bb(m->lm_head);
	if (m->lm_head != m->tok_embd && m->tok_embd)
		s += (double)B * (double)c->n_embd *
		     (double)gpu_dtype_size(gpu_buf_dtype(m->tok_embd));
	for (l = 0; l < c->n_layer; l++) {
		const struct llm_layer *ly = &m->layers[l];

		s += bb(ly->attn_norm) + bb(ly->ffn_norm);
		s += bb(ly->wq) + bb(ly->wk) + bb(ly->wv) + bb(ly->wo);
		s += xb(ly->xq) + xb(ly->xk) + xb(ly->xv) + xb(ly->xo);
		s += bb(ly->bq) + bb(ly->bk) + bb(ly->bv);
		s += bb(ly->q_norm) + bb(ly->k_norm);
		s += bb(ly->w_gate) + bb(ly->w_up) + bb(ly->w_down);
		s += xb(ly->x_gate) + xb(ly->x_up) + xb(ly->x_down);
		if (!ly->moe)
			continue;
		s += bb(ly->router);
		s += bb(ly->s_gate) + bb(ly->s_up) + bb(ly->s_down) +
		     bb(ly->s_gate_inp);
		s += xb(ly->xs_gate) + xb(ly->xs_up) + xb(ly->xs_down) +
		     xb(ly->xs_gate_inp);
		es = 0;
		for (e = 0; e < c->n_expert; e++)
			es += ly->xe_gate ? xb(ly->xe_gate[e]) + xb(ly->xe_up[e]) +
					    xb(ly->xe_down[e])
					  : bb(ly->e_gate[e]) + bb(ly->e_up[e]) +
					    bb(ly->e_down[e]);
		/* expected fraction of experts some row of B picks */
		s += es * (1.0 - pow(1.0 - (double)c->n_expert_used /
					   (double)c->n_expert, (double)B));
	}
	return s;
}

double llm_prefill_flops(const struct llm_config *c, size_t n)
{
	const double E = (double)c->n_embd;
	const double qd = (double)(c->n_head * c->head_dim);
	const double kd = (double)(c->n_head_kv * c->head_dim);
	double macs = 0, keys = 0; /* multiply-adds a row; visible keys */
	size_t p;
	int64_t l;

	for (l = 0; l < c->n_layer; l++) {
		macs += 2.0 * E * qd + 2.0 * E * kd; /* q, o; k, v */
		if (llm_config_layer_is_moe(c, l)) {
			macs += E * (double)c->n_expert +
				3.0 * E * (double)c->n_ff_expert *
					(double)c->n_expert_used;
			if (c->has_shared_expert)
				macs += 3.0 * E * (double)c->n_ff_shared + E;
		} else {
			macs += 3.0 * E * (double)c->n_ff;
		}
	}
	for (p = 0; p < n; p++)
		keys += c->sliding_window > 0 && (int64_t)p + 1 > c->sliding_window
				? (double)c->sliding_window
				: (double)(p + 1);
	return 2.0 * macs * (double)n +
	       4.0 * (double)c->head_dim * (double)c->n_head * keys *
		       (double)c->n_layer +
	       2.0 * E * (double)c->n_vocab;
}

static void context_bytes(const struct llm_context *c, uint64_t *kv,
			  uint64_t *act)
{
	const struct gpu_buf *a[] = {
		c->x, c->xn, c->q, c->k, c->v, c->att, c->o, c->ff_gate,
		c->ff_up, c->ids, c->pos, c->seq, c->page_table_dev,
		c->r_logits, c->r_ids, c->r_wts, c->moe_scratch, c->sh_out,
		c->sh_gate, c->lrows, c->xl, c->lg,
	};
	size_t i;

	*kv = 0;
	*act = 0;
	for (i = 0; i < (size_t)c->model->cfg.n_layer; i++)
		*kv += (uint64_t)(bb(c->kv[i].k) + bb(c->kv[i].v) +
				  bb(c->kv[i].k_scale) + bb(c->kv[i].v_scale));
	for (i = 0; i < sizeof a / sizeof a[0]; i++)
		*act += (uint64_t)bb(a[i]);
}

static int prefill(struct llm_context *c, const struct llm_bench_params *p,
		   const int32_t *ids, float *lg, struct llm_bench_result *r,
		   struct diag *d)
{
	double *t = malloc((size_t)p->n_reps * sizeof *t);
	size_t warm = p->n_prompt < c->n_batch ? p->n_prompt : c->n_batch;
	int i, rc;

	if (!t)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	llm_context_reset(c);
	rc = llm_context_eval(c, ids, warm, LLM_LOGITS_LAST, lg, d);
	for (i = 0; rc == 0 && i < p->n_reps; i++) {
		double t0;

		llm_context_reset(c);
		t0 = clock_now_s();
		rc = llm_context_eval(c, ids, p->n_prompt, LLM_LOGITS_LAST, lg, d);
		t[i] = clock_now_s() - t0;
	}
	llm_context_reset(c);
	if (rc == 0) {
		r->prefill_s = median(t, (size_t)p->n_reps);
		r->prefill_tok_s = (double)p->n_prompt / r->prefill_s;
		r->prefill_flops = llm_prefill_flops(&c->model->cfg, p->n_prompt);
		r->prefill_flop_s = r->prefill_flops / r->prefill_s;
	} else {
		diag_prefix(d, "prefill");
	}
	free(t);
	return rc;
}

static int decode(struct llm_context *c, const struct llm_bench_params *p,
		  size_t n_ctx, const int32_t *ids_all, size_t n_ids,
		  float *lg, struct llm_bench_result *r, struct diag *d)
{
	const size_t B = p->n_batch, start = n_ctx - p->n_gen;
	const size_t n_steps = (size_t)p->n_warmup + p->n_gen;
	int32_t *seq = NULL, *pos = NULL, *ids = NULL;
	uint8_t *want = NULL;
	double *t = NULL, sum = 0;
	size_t s, i, l;
	int rc = 0;

	/* every slot covers [0, n_ctx) of zeroed K/V */
	for (l = 0; l < (size_t)c->model->cfg.n_layer; l++) {
		rc = gpu_buf_zero(c->kv[l].k, d);
		if (rc == 0)
			rc = gpu_buf_zero(c->kv[l].v, d);
		if (rc == 0 && c->kv[l].k_scale)
			rc = gpu_buf_zero(c->kv[l].k_scale, d);
		if (rc == 0 && c->kv[l].v_scale)
			rc = gpu_buf_zero(c->kv[l].v_scale, d);
		if (rc < 0)
			return gerr(rc);
	}
	for (s = 0; s < B; s++) {
		rc = llm_kv_reserve(c, s, n_ctx, d);
		if (rc < 0)
			return rc;
		c->n_past[s] = start;
	}
	seq = malloc(B * sizeof *seq);
	pos = malloc(B * sizeof *pos);
	ids = malloc(B * sizeof *ids);
	want = malloc(B);
	t = malloc(p->n_gen * sizeof *t);
	if (!seq || !pos || !ids || !want || !t) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto out;
	}
	for (s = 0; s < B; s++) {
		seq[s] = (int32_t)s;
		want[s] = 1;
	}
	for (i = 0; i < n_steps; i++) {
		/* warm-up steps first, at the first timed positions */
		size_t step = i < (size_t)p->n_warmup ? i % p->n_gen :
			      i - (size_t)p->n_warmup;
		struct llm_batch b;
		double t0;

		for (s = 0; s < B; s++) {
			pos[s] = (int32_t)(start + step);
			ids[s] = ids_all[(i * B + s) % n_ids];
		}
		memset(&b, 0, sizeof b);
		b.n = B;
		b.ids = ids;
		b.seq = seq;
		b.pos = pos;
		b.logits = want;
		b.logits_out = lg;
		t0 = clock_now_s();
		rc = llm_forward(c, &b, d);
		if (rc == 0 && gpu_sync(c->g, d) < 0)
			rc = LLM_E_BACKEND;
		if (rc < 0) {
			diag_prefix(d, "decode step %zu", i);
			goto out;
		}
		if (i >= (size_t)p->n_warmup)
			t[step] = clock_now_s() - t0;
	}
	for (i = 0; i < p->n_gen; i++)
		sum += t[i];
	r->step_mean_s = sum / (double)p->n_gen;
	r->step_s = median(t, p->n_gen);
	r->step_min_s = t[0];
	r->decode_tok_s = (double)B / r->step_s;
out:
	for (s = 0; s < B; s++) {
		llm_kv_release(c, s, 0);
		c->n_past[s] = 0;
	}
	free(seq);
	free(pos);
	free(ids);
	free(want);
	free(t);
	return rc;
}

int llm_bench_run(struct llm_model *m, const struct llm_bench_params *p,
		  struct llm_bench_result *r, struct diag *d)
{
	const struct llm_config *cf = &m->cfg;
	const size_t V = (size_t)cf->n_vocab;
	struct llm_context *c = NULL;
	size_t n_ctx, len, n_ids, i;
	int32_t *ids = NULL;
	float *lg = NULL;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	double kv_tok, mean_len;
	int rc;

	memset(r, 0, sizeof *r);
	snprintf(r->backend, sizeof r->backend, "%s", llm_model_backend(m));
	n_ctx = p->n_ctx ? p->n_ctx : p->n_prompt + p->n_gen;
	if (p->n_batch == 0 || p->n_batch > m->max_batch)
		return diag_fail(d, LLM_E_INVALID, "batch of %zu sequences (1..%zu)",
				 p->n_batch, m->max_batch);
	if (p->n_gen > n_ctx)
		return diag_fail(d, LLM_E_INVALID,
				 "%zu generated tokens do not fit a context of %zu",
				 p->n_gen, n_ctx);
	if (p->n_reps < 1 || p->n_warmup < 0 || n_ctx == 0)
		return diag_fail(d, LLM_E_INVALID, "nothing to measure");
	r->n_ctx = n_ctx;
	if (p->measure_bw) {
		rc = measure_bw(m->g, gpu_get_kind(m->g) == GPU_KIND_CPU ?
			        (size_t)256 << 20 : (size_t)1 << 30, r, d);
		if (rc < 0)
			return rc;
	}
	len = n_ctx > p->n_prompt ? n_ctx : p->n_prompt;
	rc = llm_context_new_slots(m, len, p->n_batch, 0, &c, d);
	if (rc < 0)
		return rc;
	r->chunk = c->n_batch;
	n_ids = p->n_prompt > p->n_batch ? p->n_prompt : p->n_batch * 8;
	ids = malloc(n_ids * sizeof *ids);
	lg = malloc(p->n_batch * V * sizeof *lg);
	if (!ids || !lg) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n_ids; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = V > 3 ? (int32_t)(3 + (rng >> 33) % (V - 3)) : 0;
	}
	context_bytes(c, &r->kv_bytes, &r->act_bytes);
	r->weight_bytes = m->n_bytes;
	r->mem_bytes = r->weight_bytes + r->kv_bytes + r->act_bytes;
	r->kv_elem_bytes = llm_kv_value_bytes(m) / 2.0;

	if (p->n_prompt > 0) {
		rc = prefill(c, p, ids, lg, r, d);
		if (rc < 0)
			goto out;
	}
	if (p->n_gen > 0) {
		rc = decode(c, p, n_ctx, ids, n_ids, lg, r, d);
		if (rc < 0)
			goto out;
		/* steps at positions n_ctx - n_gen + t attend t + 1 more */
		mean_len = (double)(n_ctx - p->n_gen) + (double)(p->n_gen + 1) / 2.0;
		if (cf->sliding_window > 0 && mean_len > (double)cf->sliding_window)
			mean_len = (double)cf->sliding_window;
		kv_tok = (double)cf->n_layer * 2.0 * (double)cf->n_head_kv *
			 (double)cf->head_dim * (double)r->kv_elem_bytes;
		r->step_weight_bytes = step_weight_bytes(m, p->n_batch);
		r->step_kv_bytes = (double)p->n_batch * mean_len * kv_tok;
		if (r->bw_bytes_s > 0)
			r->roofline = (r->step_weight_bytes + r->step_kv_bytes) /
				      r->step_s / r->bw_bytes_s;
	}
out:
	llm_context_free(c);
	free(ids);
	free(lg);
	return rc;
}
