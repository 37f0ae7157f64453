/* tests/inference/test_exl3_moe.c — suite exl3_moe: MoE models whose
 * routed experts (and Qwen2-MoE's shared expert) are EXL3 linears.
 *
 * Each case compares a model with EXL3 experts against its float twin:
 * the same model in which every EXL3 expert linear was replaced by an f32
 * weight holding W = diag(suh) H W_hat H diag(svh) (docs/exl3-format.md
 * §3.3), read back from the CPU backend's EXL3 linear applied to the
 * identity (row i of I . W is W's row i).  That linear is pinned against
 * ExLlamaV3's kernels and against an independent double-precision
 * reconstruction in tests/gpu/test_exl3.c (suite exl3, which also checks
 * gpu_moe_ffn with EXL3 experts against the formula); what is checked here
 * is the engine around it: loading expert groups by their HF keys, the
 * float router next to EXL3 experts, the routing / gather / weighted sum
 * of the dispatch, padding (n_ff 96 or 64 -> 128) and the shared expert
 * through llm_linear.  Both sides run in f32 on the CPU, so the logits
 * agree to f32 rounding: relative L2 <= 1e-5 per row (measured: below 2e-6), prefill with all
 * logits and token by token through the KV cache.
 *
 *   - synthetic tiny-mixtral@exl3:4.0 (random trellises, mul1, bf16
 *     router), and its spec parsing / weight layout;
 *   - EXL3 checkpoints written here from the tiny transformers fixtures
 *     mixtral (block_sparse_moe.experts.E.w1/w3/w2), qwen2moe
 *     (mlp.experts.E.*_proj + EXL3 shared expert, float shared_expert_gate)
 *     and qwen3moe: each expert linear becomes a `.trellis`/`.suh`/`.svh`
 *     group (K 2..5, all three codebooks), everything else is copied;
 *   - malformed expert groups: a missing `.svh`, a trellis of the wrong
 *     shape, an expert without any tensors: LLM_E_FORMAT naming the tensor.
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inference/llm.h"
#include "inference/model_impl.h"
#include "inference/safetensors_impl.h"
#include "inference/synthetic_impl.h"
#include "refutil.h"
#include "testutil.h"

/* ---- the float twin ------------------------------------------------------- */

/* An f32 [out, in] weight equal to EXL3 linear Q's W^T, for IN inputs and
 * OUT outputs (the logical dims), via gpu_exl3_matmul on I [in, in]. */
static struct gpu_buf *dequant(struct gpu *g, const struct gpu_exl3_weight *q,
			       size_t in, size_t out)
{
	struct gpu_buf *bi = NULL, *bw = NULL, *bt = NULL;
	float *eye = calloc(in * in, sizeof *eye);
	float *w = malloc(in * out * sizeof *w), *t = malloc(in * out * sizeof *t);
	struct diag d;
	size_t i, j;

	ck_assert(eye && w && t);
	diag_clear(&d);
	for (i = 0; i < in; i++)
		eye[i * in + i] = 1.0f;
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, in * in, &bi, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, in * out, &bw, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bi, 0, eye, in * in, NULL), 0);
	ck_assert_msg(gpu_exl3_matmul(g, bw, bi, q, in, in, out, &d) == 0, "%s",
		      d.msg);
	ck_assert_int_eq(gpu_buf_read(bw, 0, w, in * out, NULL), 0);
	for (i = 0; i < out; i++)
		for (j = 0; j < in; j++)
			t[i * in + j] = w[j * out + i];
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, in * out, &bt, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bt, 0, t, in * out, NULL), 0);
	gpu_buf_free(bi);
	gpu_buf_free(bw);
	free(eye);
	free(w);
	free(t);
	return bt;
}

/* Replace *Q (if set) by its float twin in *W. */
static void twin(struct gpu *g, struct gpu_exl3_weight **q, struct gpu_buf **w,
		 int64_t in, int64_t out)
{
	if (!*q)
		return;
	ck_assert_ptr_null(*w);
	*w = dequant(g, *q, (size_t)in, (size_t)out);
	gpu_exl3_weight_free(*q);
	*q = NULL;
}

/* Turn every EXL3 expert of M (routed and shared) into float weights;
 * returns the number of EXL3 linears replaced. */
static int make_float_twin(struct llm_model *m)
{
	const struct llm_config *c = &m->cfg;
	const int64_t E = c->n_embd, F = c->n_ff_expert, Fs = c->n_ff_shared;
	int64_t l, e;
	int n = 0;

	for (l = 0; l < c->n_layer; l++) {
		struct llm_layer *ly = &m->layers[l];

		if (!ly->moe)
			continue;
		if (ly->xe_gate) {
			ck_assert_ptr_null(ly->e_gate);
			ly->e_gate = calloc((size_t)c->n_expert, sizeof *ly->e_gate);
			ly->e_up = calloc((size_t)c->n_expert, sizeof *ly->e_up);
			ly->e_down = calloc((size_t)c->n_expert, sizeof *ly->e_down);
			ck_assert(ly->e_gate && ly->e_up && ly->e_down);
			for (e = 0; e < c->n_expert; e++) {
				twin(m->g, &ly->xe_gate[e], &ly->e_gate[e], E, F);
				twin(m->g, &ly->xe_up[e], &ly->e_up[e], E, F);
				twin(m->g, &ly->xe_down[e], &ly->e_down[e], F, E);
				n += 3;
			}
			free(ly->xe_gate);
			free(ly->xe_up);
			free(ly->xe_down);
			ly->xe_gate = ly->xe_up = ly->xe_down = NULL;
		}
		n += (ly->xs_gate != NULL) + (ly->xs_up != NULL) +
		     (ly->xs_down != NULL) + (ly->xs_gate_inp != NULL);
		twin(m->g, &ly->xs_gate, &ly->s_gate, E, Fs);
		twin(m->g, &ly->xs_up, &ly->s_up, E, Fs);
		twin(m->g, &ly->xs_down, &ly->s_down, Fs, E);
		twin(m->g, &ly->xs_gate_inp, &ly->s_gate_inp, E, 1);
	}
	return n;
}

/* ---- comparing two models ------------------------------------------------ */

/* sqrt(sum (a-r)^2 / sum r^2) over one row of V logits */
static double rel_l2(const float *a, const float *r, size_t V)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < V; i++) {
		double df = (double)a[i] - r[i];

		num += df * df;
		den += (double)r[i] * r[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

#define MOE_TOL 1e-5

/* Logits of Q (EXL3 experts) and F (float twin) for N tokens: both
 * prefilled with all logits, and Q again one token at a time; every row
 * within MOE_TOL relative L2 of F's prefill. */
static void compare_models(const char *what, struct llm_model *q,
			   struct llm_model *f, const int32_t *ids, size_t n)
{
	size_t V = (size_t)llm_model_n_vocab(q), i;
	float *lq = malloc(n * V * sizeof *lq), *lf = malloc(n * V * sizeof *lf);
	struct llm_context *cq = NULL, *cf = NULL;
	double worst = 0, r;
	struct diag d;

	ck_assert(lq && lf);
	diag_clear(&d);
	ck_assert_msg(llm_context_new(q, 64, &cq, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_context_new(f, 64, &cf, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_context_eval(cq, ids, n, LLM_LOGITS_ALL, lq, &d) == 0,
		      "%s: %s", what, d.msg);
	ck_assert_msg(llm_context_eval(cf, ids, n, LLM_LOGITS_ALL, lf, &d) == 0,
		      "%s: %s", what, d.msg);
	for (i = 0; i < n * V; i++)
		ck_assert_msg(isfinite(lq[i]), "%s: logit %zu = %g", what, i,
			      (double)lq[i]);
	for (i = 0; i < n; i++) {
		r = rel_l2(lq + i * V, lf + i * V, V);
		worst = fmax(worst, r);
		ck_assert_msg(r <= MOE_TOL, "%s prefill row %zu: rel L2 %g", what, i, r);
	}
	llm_context_reset(cq);
	for (i = 0; i < n; i++) {
		ck_assert_msg(llm_context_eval(cq, ids + i, 1, LLM_LOGITS_LAST, lq,
					       &d) == 0, "%s: %s", what, d.msg);
		r = rel_l2(lq, lf + i * V, V);
		worst = fmax(worst, r);
		ck_assert_msg(r <= MOE_TOL, "%s incremental row %zu: rel L2 %g",
			      what, i, r);
	}
	/* the comparison is not vacuous: the logits vary */
	for (i = 1; i < V && lf[i] == lf[0]; i++)
		;
	ck_assert(i < V);
	llm_context_free(cq);
	llm_context_free(cf);
	free(lq);
	free(lf);
	if (getenv("TERN_TEST_VERBOSE")) fprintf(stderr, "%s: worst rel L2 %g\n", what, worst);
}

static struct llm_model_params cpu2(void)
{
	struct llm_model_params p = llm_model_default_params();

	p.backend = LLM_BACKEND_CPU;
	p.n_threads = 2;
	return p;
}

static const int32_t g_ids[9] = { 3, 17, 42, 99, 7, 250, 11, 300, 64 };

/* ---- synthetic tiny-mixtral@exl3 ------------------------------------------ */

START_TEST(test_synthetic_mixtral)
{
	struct llm_model_params p = cpu2();
	struct llm_model *q = NULL, *f = NULL;
	struct llm_config cfg;
	struct diag d;
	int64_t l, e;

	diag_clear(&d);
	/* the big MoE specs parse with EXL3 now */
	ck_assert_msg(llm_synthetic_config("mixtral-8x7b@exl3:4.0", &cfg, &d) == 0,
		      "%s", d.msg);
	ck_assert(cfg.exl3 && cfg.n_expert == 8);
	ck_assert(llm_synthetic_config("qwen3-30b-a3b@exl3:3.5", &cfg, NULL) == 0);
	ck_assert(cfg.exl3 && cfg.n_expert == 128);

	ck_assert_msg(llm_model_new_synthetic("tiny-mixtral@exl3:4.0", &p, &q, &d) == 0,
		      "%s", d.msg);
	ck_assert(llm_synthetic_config("tiny-mixtral@exl3:4.0", &cfg, NULL) == 0);
	ck_assert_uint_eq(llm_model_n_params(q), llm_synthetic_n_params(&cfg));
	for (l = 0; l < q->cfg.n_layer; l++) {
		const struct llm_layer *ly = &q->layers[l];

		ck_assert(ly->moe);
		ck_assert_ptr_null(ly->e_gate);
		ck_assert_ptr_nonnull(ly->router);
		ck_assert(gpu_buf_dtype(ly->router) == GPU_DTYPE_BF16);
		for (e = 0; e < q->cfg.n_expert; e++) {
			ck_assert_ptr_nonnull(ly->xe_gate[e]);
			ck_assert_ptr_nonnull(ly->xe_up[e]);
			ck_assert_ptr_nonnull(ly->xe_down[e]);
			/* 64 -> 96 padded to 128 x 128 */
			ck_assert_uint_eq(gpu_exl3_weight_k(ly->xe_gate[e]), 128);
			ck_assert_uint_eq(gpu_exl3_weight_n(ly->xe_gate[e]), 128);
			ck_assert(gpu_exl3_weight_bits(ly->xe_down[e]) == 4);
		}
	}
	/* the same spec again (deterministic seeds), experts made float */
	ck_assert(llm_model_new_synthetic("tiny-mixtral@exl3:4.0", &p, &f, &d) == 0);
	ck_assert_int_eq(make_float_twin(f), 2 * 4 * 3);
	compare_models("tiny-mixtral@exl3:4.0", q, f, g_ids, 9);
	llm_model_free(q);
	llm_model_free(f);
}
END_TEST

/* ---- EXL3 checkpoints from the tiny fixtures ------------------------------ */

/* Defects to write into a checkpoint (tests of the loader's errors). */
enum defect {
	DEFECT_NONE,
	DEFECT_NO_SVH,       /* layers.1 expert 2 down: no .svh */
	DEFECT_BAD_TRELLIS,  /* layers.0 expert 1 up: tile grid for 2x n */
	DEFECT_NO_EXPERT,    /* layers.0 expert 3 gate: no tensors at all */
};

struct out_t {
	char name[200];
	const char *dtype;
	int n_dims;
	int64_t shape[3];
	void *data;      /* owned */
	size_t bytes;
};

struct ckpt {
	struct out_t *t;
	size_t n, cap;
	uint64_t rng;
	int n_q;         /* EXL3 groups written */
};

static struct out_t *ck_add(struct ckpt *c, const char *name, const char *dt,
			    int n_dims, int64_t d0, int64_t d1, int64_t d2,
			    size_t bytes)
{
	struct out_t *t;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->t = realloc(c->t, c->cap * sizeof *c->t);
		ck_assert_ptr_nonnull(c->t);
	}
	t = &c->t[c->n++];
	memset(t, 0, sizeof *t);
	ck_assert((size_t)snprintf(t->name, sizeof t->name, "%s", name) <
		  sizeof t->name);
	t->dtype = dt;
	t->n_dims = n_dims;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->shape[2] = d2;
	t->bytes = bytes;
	t->data = calloc(1, bytes ? bytes : 1);
	ck_assert_ptr_nonnull(t->data);
	return t;
}

static uint64_t nxt(struct ckpt *c)
{
	uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* N f16 scales into H: each one of the three halves VALS, picked at
 * random, with a random sign. */
static void rand_scales(struct ckpt *c, uint16_t *h, size_t n,
			const uint16_t vals[3])
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t r = nxt(c);

		h[i] = (uint16_t)(vals[r % 3] | (r >> 40 & 1 ? 0x8000 : 0));
	}
}

/* The EXL3 group of linear KEY ([out, in] in the fixture): trellis of
 * random tiles at K bits, suh = +-{3/16, 1/4, 5/16}, svh = +-{3/4, 1, 5/4}
 * (exact halves), codebook by CB (0 3INST: no flag, 1 .mcg, 2 .mul1). */
static void add_exl3(struct ckpt *c, const char *key, int64_t out, int64_t in,
		     int K, int cb, enum defect df)
{
	static const uint16_t su[3] = { 0x3200, 0x3400, 0x3500 };
	static const uint16_t sv[3] = { 0x3A00, 0x3C00, 0x3D00 };
	const int64_t kp = (in + 127) / 128 * 128, np = (out + 127) / 128 * 128;
	const int64_t gn = df == DEFECT_BAD_TRELLIS ? 2 * np : np;
	char name[240];
	struct out_t *t;
	uint16_t *h;
	int32_t flag = 0x1234;
	size_t i, n;

	snprintf(name, sizeof name, "%s.trellis", key);
	n = (size_t)(kp / 16 * (gn / 16) * 16 * K);
	t = ck_add(c, name, "I16", 3, kp / 16, gn / 16, 16 * K, 2 * n);
	h = t->data;
	for (i = 0; i < n; i++)
		h[i] = (uint16_t)nxt(c);
	snprintf(name, sizeof name, "%s.suh", key);
	t = ck_add(c, name, "F16", 1, kp, 0, 0, (size_t)kp * 2);
	rand_scales(c, t->data, (size_t)kp, su);
	if (df != DEFECT_NO_SVH) {
		snprintf(name, sizeof name, "%s.svh", key);
		t = ck_add(c, name, "F16", 1, np, 0, 0, (size_t)np * 2);
		rand_scales(c, t->data, (size_t)np, sv);
	}
	if (cb) {
		snprintf(name, sizeof name, "%s.%s", key, cb == 1 ? "mcg" : "mul1");
		t = ck_add(c, name, "I32", 0, 0, 0, 0, 4);
		memcpy(t->data, &flag, 4);
	}
	c->n_q++;
}

static const char *st_dtype(enum llm_dtype dt)
{
	switch (dt) {
	case LLM_DTYPE_F32: return "F32";
	case LLM_DTYPE_F16: return "F16";
	case LLM_DTYPE_BF16: return "BF16";
	default: return NULL;
	}
}

/* Which linear a fixture tensor NAME is, when it becomes EXL3: routed
 * experts and the shared expert's projections (not its sigmoid gate). */
static bool quantize(const char *name)
{
	size_t n = strlen(name);

	if (n < 7 || strcmp(name + n - 7, ".weight") != 0)
		return false;
	return strstr(name, ".experts.") != NULL ||
	       strstr(name, ".shared_expert.") != NULL;
}

/* The checkpoint C as the safetensors file PATH. */
static void write_file(const char *path, const struct ckpt *c)
{
	struct ref_st_tensor *t = calloc(c->n ? c->n : 1, sizeof *t);
	size_t i;

	ck_assert_ptr_nonnull(t);
	for (i = 0; i < c->n; i++)
		t[i] = (struct ref_st_tensor){ c->t[i].name, c->t[i].dtype,
					       c->t[i].n_dims,
					       { c->t[i].shape[0], c->t[i].shape[1],
						 c->t[i].shape[2] },
					       c->t[i].data, c->t[i].bytes };
	ref_write_st(path, t, c->n);
	free(t);
}

/* Write an EXL3 form of fixture models/FIXTURE into a new directory
 * (returned; remove with rm_ckpt): config.json with quantization_config
 * added, model.safetensors with every expert linear as an EXL3 group and
 * the rest copied; DF plants one defect.  *n_q gets the groups written. */
static char *write_ckpt(const char *fixture, enum defect df, int *n_q)
{
	char rel[128], tmpl[] = "/tmp/tern-exl3moe-XXXXXX", path[300];
	char *src, *dir;
	struct llm_st_set *st = NULL;
	struct ckpt c;
	json_t *cfg, *qc;
	json_error_t je;
	struct diag d;
	size_t i;

	memset(&c, 0, sizeof c);
	c.rng = 0xC0FFEE;
	dir = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(dir);
	dir = strdup(dir);
	snprintf(rel, sizeof rel, "models/%s/config.json", fixture);
	src = test_data_path(rel);
	cfg = json_load_file(src, 0, &je);
	ck_assert_msg(cfg != NULL, "%s: %s", src, je.text);
	free(src);
	qc = json_pack("{s:s, s:f, s:i, s:s}", "quant_method", "exl3", "bits", 3.5,
		       "head_bits", 6, "codebook", "mul1");
	json_object_set_new(cfg, "quantization_config", qc);
	snprintf(path, sizeof path, "%s/config.json", dir);
	ck_assert_int_eq(json_dump_file(cfg, path, JSON_INDENT(1)), 0);
	json_decref(cfg);

	snprintf(rel, sizeof rel, "models/%s/model.safetensors", fixture);
	src = test_data_path(rel);
	diag_clear(&d);
	ck_assert_msg(llm_st_open(src, &st, &d) == 0, "%s", d.msg);
	free(src);
	for (i = 0; i < llm_st_count(st); i++) {
		const struct llm_tensor_info *ti = llm_st_at(st, i);
		const char *dt = st_dtype(ti->dtype);
		char key[200];
		struct out_t *t;

		ck_assert_ptr_nonnull(dt);
		if (quantize(ti->name)) {
			const int k = c.n_q;
			enum defect here = DEFECT_NONE;

			snprintf(key, sizeof key, "%.*s", (int)strlen(ti->name) - 7,
				 ti->name);
			if (df == DEFECT_NO_SVH &&
			    !strcmp(key, "model.layers.1.mlp.experts.2.down_proj"))
				here = df;
			if (df == DEFECT_BAD_TRELLIS &&
			    !strcmp(key, "model.layers.0.mlp.experts.1.up_proj"))
				here = df;
			if (df == DEFECT_NO_EXPERT &&
			    !strcmp(key, "model.layers.0.mlp.experts.3.gate_proj"))
				continue;
			add_exl3(&c, key, ti->shape[0], ti->shape[1], 2 + k % 4, k % 3,
				 here);
			continue;
		}
		t = ck_add(&c, ti->name, dt, ti->n_dims, ti->shape[0], ti->shape[1],
			   ti->shape[2], (size_t)ti->n_bytes);
		memcpy(t->data, ti->data, (size_t)ti->n_bytes);
	}
	llm_st_close(st);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	write_file(path, &c);
	for (i = 0; i < c.n; i++)
		free(c.t[i].data);
	free(c.t);
	if (n_q)
		*n_q = c.n_q;
	return dir;
}

static void rm_ckpt(char *dir)
{
	char path[300];

	snprintf(path, sizeof path, "%s/config.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
}

/* Mixtral's keys are block_sparse_moe.experts.E.w1/w3/w2; the defects
 * above name Qwen's keys, so they are planted in the qwen fixtures. */
static void run_fixture(const char *fixture, int want_shared)
{
	struct llm_model_params p = cpu2();
	struct llm_model *q = NULL, *f = NULL;
	struct diag d;
	char *dir;
	int n_q = 0, n_tw;
	int64_t l;

	dir = write_ckpt(fixture, DEFECT_NONE, &n_q);
	diag_clear(&d);
	ck_assert_msg(llm_model_open(dir, &p, &q, &d) == 0, "%s: %s", fixture, d.msg);
	ck_assert_msg(llm_model_open(dir, &p, &f, &d) == 0, "%s: %s", fixture, d.msg);
	for (l = 0; l < q->cfg.n_layer; l++) {
		ck_assert(q->layers[l].moe);
		ck_assert_ptr_nonnull(q->layers[l].xe_gate);
		ck_assert_ptr_null(q->layers[l].e_gate);
		ck_assert_ptr_nonnull(q->layers[l].router);
		ck_assert(!want_shared || (q->layers[l].xs_gate && q->layers[l].xs_up &&
					   q->layers[l].xs_down &&
					   q->layers[l].s_gate_inp &&
					   !q->layers[l].s_gate));
	}
	n_tw = make_float_twin(f);
	ck_assert_int_eq(n_tw, n_q);
	compare_models(fixture, q, f, g_ids, 9);
	llm_model_free(q);
	llm_model_free(f);
	rm_ckpt(dir);
}

START_TEST(test_ckpt_mixtral)
{
	run_fixture("mixtral", 0);
}
END_TEST

START_TEST(test_ckpt_qwen2moe)
{
	run_fixture("qwen2moe", 1);
}
END_TEST

START_TEST(test_ckpt_qwen3moe)
{
	run_fixture("qwen3moe", 0);
}
END_TEST

static void expect_open_fail(enum defect df, const char *needle1,
			     const char *needle2)
{
	struct llm_model_params p = cpu2();
	struct llm_model *m = NULL;
	struct diag d;
	char *dir = write_ckpt("qwen3moe", df, NULL);
	int rc;

	diag_clear(&d);
	rc = llm_model_open(dir, &p, &m, &d);
	ck_assert_msg(rc == LLM_E_FORMAT, "defect %d: expected LLM_E_FORMAT, got %d (%s)",
		      (int)df, rc, d.msg);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(d.msg, needle1) != NULL, "'%s' not in: %s", needle1,
		      d.msg);
	ck_assert_msg(strstr(d.msg, needle2) != NULL, "'%s' not in: %s", needle2,
		      d.msg);
	rm_ckpt(dir);
}

START_TEST(test_ckpt_errors)
{
	expect_open_fail(DEFECT_NO_SVH, "model.layers.1.mlp.experts.2.down_proj.svh",
			 "missing");
	expect_open_fail(DEFECT_BAD_TRELLIS,
			 "model.layers.0.mlp.experts.1.up_proj.trellis", "[8, 8, 16*K]");
	expect_open_fail(DEFECT_NO_EXPERT,
			 "model.layers.0.mlp.experts.3.gate_proj.trellis", "missing");
}
END_TEST

Suite *exl3_moe_suite(void)
{
	Suite *s = suite_create("exl3_moe");
	TCase *tc = tcase_create("exl3_moe");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_synthetic_mixtral);
	tcase_add_test(tc, test_ckpt_mixtral);
	tcase_add_test(tc, test_ckpt_qwen2moe);
	tcase_add_test(tc, test_ckpt_qwen3moe);
	tcase_add_test(tc, test_ckpt_errors);
	suite_add_tcase(s, tc);
	return s;
}
