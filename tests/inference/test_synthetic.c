/* tests/inference/test_synthetic.c — suite synthetic: random-weight models
 * of real shapes (inference/synthetic.c) and the benchmark core
 * (inference/bench.c).
 *
 *   - the shapes of the big specs, counted without allocating, match the
 *     parameter counts their model cards publish (within 1%): Llama-3-8B
 *     8.03e9, Llama-3.2-1B 1.24e9, Qwen2.5-7B 7.62e9, Mixtral-8x7B 46.7e9,
 *     and the others of the table;
 *   - spec parsing: prefix optional, @exl3:BITS accepted (1..8), unknown
 *     names / suffixes / bits refused with LLM_E_INVALID naming the known
 *     models; EXL3 MoE specs accepted;
 *   - gpu_buf_fill_random: inside [-scale, scale], mean ~0 and variance
 *     scale^2/3, equal for equal seeds, the bf16 fill is the f32 fill
 *     rounded;
 *   - every tiny spec (and EXL3 forms) builds on the CPU with n_params equal
 *     to the counted value, runs a prefill + a decode step with finite
 *     logits, deterministically, and frees;
 *   - llm_bench_run on a tiny model: KV bytes equal the pool formula, the
 *     step's weight bytes equal the model's (dense) or the MoE expectation,
 *     timings positive;
 *   - max_batch: the context's batch and prefill chunks (chunked logits
 *     equal one pass), the bench's chunk and decode ceiling, the limit.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "inference/llm.h"
#include "inference/model_impl.h"
#include "inference/synthetic_impl.h"

static struct llm_model_params cpu1(void)
{
	struct llm_model_params p = llm_model_default_params();

	p.backend = LLM_BACKEND_CPU;
	p.n_threads = 2;
	return p;
}

START_TEST(test_param_counts)
{
	static const struct {
		const char *spec;
		double published;
	} t[] = {
		{ "synthetic:llama3-8b", 8.03e9 },
		{ "synthetic:llama3-1b", 1.24e9 },
		{ "synthetic:llama3-3b", 3.21e9 },
		{ "synthetic:llama3-70b", 70.6e9 },
		{ "synthetic:llama2-7b", 6.74e9 },
		{ "synthetic:mistral-7b", 7.25e9 },
		{ "synthetic:qwen2.5-0.5b", 0.494e9 },
		{ "synthetic:qwen2.5-7b", 7.62e9 },
		{ "synthetic:qwen3-8b", 8.19e9 },
		{ "synthetic:mixtral-8x7b", 46.7e9 },
		{ "synthetic:qwen3-30b-a3b", 30.5e9 },
	};
	struct llm_config c;
	struct diag d;
	size_t i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		double n;

		diag_clear(&d);
		ck_assert_msg(llm_synthetic_config(t[i].spec, &c, &d) == 0, "%s: %s",
			      t[i].spec, diag_message(&d, "?"));
		n = (double)llm_synthetic_n_params(&c);
		ck_assert_msg(fabs(n / t[i].published - 1.0) < 0.01,
			      "%s: %.4g params, published %.4g", t[i].spec, n,
			      t[i].published);
	}
	/* a few shapes spelled out (config.json values) */
	ck_assert(llm_synthetic_config("llama3-8b", &c, NULL) == 0);
	ck_assert_int_eq(c.n_layer, 32);
	ck_assert_int_eq(c.n_head_kv, 8);
	ck_assert_int_eq(c.rope.type, LLM_ROPE_LLAMA3);
	ck_assert(!c.tie_embeddings);
	ck_assert(llm_synthetic_config("llama3-1b", &c, NULL) == 0);
	ck_assert(c.tie_embeddings);
	ck_assert_int_eq(c.head_dim, 64);
	ck_assert(llm_synthetic_config("qwen2.5-7b", &c, NULL) == 0);
	ck_assert(c.attn_bias);
	ck_assert_int_eq(c.n_head_kv, 4);
	ck_assert(llm_synthetic_config("mixtral-8x7b", &c, NULL) == 0);
	ck_assert_int_eq(c.n_expert, 8);
	ck_assert_int_eq(c.n_expert_used, 2);
	ck_assert(llm_config_layer_is_moe(&c, 0));
}
END_TEST

START_TEST(test_spec_parse)
{
	struct llm_config c;
	struct diag d;

	ck_assert(llm_synthetic_config("synthetic:llama3-8b@exl3:4.0", &c, NULL) == 0);
	ck_assert(c.exl3);
	ck_assert(c.exl3_bits == 4.0);
	ck_assert(c.exl3_head_bits == 6.0);
	ck_assert(llm_synthetic_config("llama3-8b@exl3:2.5", &c, NULL) == 0);
	ck_assert(c.exl3_bits == 2.5);
	diag_clear(&d);
	ck_assert_int_eq(llm_synthetic_config("synthetic:llama9-1t", &c, &d),
			 LLM_E_INVALID);
	ck_assert_ptr_nonnull(strstr(diag_message(&d, ""), "llama3-8b"));
	ck_assert_int_eq(llm_synthetic_config("llama3-8b@exl3:9", &c, NULL),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_synthetic_config("llama3-8b@exl3:", &c, NULL),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_synthetic_config("llama3-8b@exl3:4x", &c, NULL),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_synthetic_config("llama3-8b@gguf:4", &c, NULL),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_synthetic_config("llama3-8", &c, NULL), LLM_E_INVALID);
	/* MoE models take EXL3 experts too */
	ck_assert(llm_synthetic_config("mixtral-8x7b@exl3:4.0", &c, NULL) == 0);
	ck_assert(c.exl3 && c.n_expert == 8);
}
END_TEST

START_TEST(test_fill_random)
{
	enum { N = 100000 };
	struct gpu *g;
	struct gpu_buf *a, *b, *h;
	float *va = malloc(N * sizeof *va), *vb = malloc(N * sizeof *vb);
	uint16_t *vh = malloc(N * sizeof *vh);
	double sum = 0, sq = 0;
	size_t i;

	ck_assert(va && vb && vh);
	ck_assert(gpu_open(GPU_KIND_CPU, NULL, &g, NULL) == 0);
	ck_assert(gpu_buf_new(g, GPU_DTYPE_F32, N, &a, NULL) == 0);
	ck_assert(gpu_buf_new(g, GPU_DTYPE_F32, N, &b, NULL) == 0);
	ck_assert(gpu_buf_new(g, GPU_DTYPE_BF16, N, &h, NULL) == 0);
	ck_assert(gpu_buf_fill_random(g, a, 42, 0.5f, NULL) == 0);
	ck_assert(gpu_buf_fill_random(g, h, 42, 0.5f, NULL) == 0);
	ck_assert(gpu_buf_read(a, 0, va, N, NULL) == 0);
	ck_assert(gpu_buf_read(h, 0, vh, N, NULL) == 0);
	for (i = 0; i < N; i++) {
		uint32_t u;
		float f;

		ck_assert(va[i] >= -0.5f && va[i] <= 0.5f);
		sum += va[i];
		sq += (double)va[i] * va[i];
		/* bf16 = f32 rounded to nearest even */
		memcpy(&u, &va[i], sizeof u);
		u += 0x7fffu + ((u >> 16) & 1);
		ck_assert_uint_eq(vh[i], u >> 16);
		(void)f;
	}
	ck_assert(fabs(sum / N) < 0.01);
	ck_assert(fabs(sq / N - 0.25 / 3.0) < 0.005);
	/* same seed, same values; another seed, others */
	ck_assert(gpu_buf_fill_random(g, b, 42, 0.5f, NULL) == 0);
	ck_assert(gpu_buf_read(b, 0, vb, N, NULL) == 0);
	ck_assert(memcmp(va, vb, N * sizeof *va) == 0);
	ck_assert(gpu_buf_fill_random(g, b, 43, 0.5f, NULL) == 0);
	ck_assert(gpu_buf_read(b, 0, vb, N, NULL) == 0);
	ck_assert(memcmp(va, vb, N * sizeof *va) != 0);
	/* only float buffers */
	gpu_buf_free(b);
	ck_assert(gpu_buf_new(g, GPU_DTYPE_I32, 16, &b, NULL) == 0);
	ck_assert_int_eq(gpu_buf_fill_random(g, b, 1, 1.0f, NULL), GPU_E_INVALID);
	gpu_buf_free(a);
	gpu_buf_free(b);
	gpu_buf_free(h);
	gpu_close(g);
	free(va);
	free(vb);
	free(vh);
}
END_TEST

/* Build SPEC, check its count, run 5 prompt tokens + 1 decode step; the
 * logits of the last step go to out (V floats) when non-NULL. */
static void run_spec(const char *spec, float *out)
{
	struct llm_model_params p = cpu1();
	struct llm_model *m = NULL;
	struct llm_context *c = NULL;
	struct llm_config cfg;
	struct diag d;
	int32_t ids[6] = { 3, 17, 42, 99, 7, 250 };
	float *lg;
	size_t V, i;

	diag_clear(&d);
	ck_assert_msg(llm_model_new_synthetic(spec, &p, &m, &d) == 0, "%s: %s",
		      spec, diag_message(&d, "?"));
	ck_assert(llm_synthetic_config(spec, &cfg, NULL) == 0);
	ck_assert_uint_eq(llm_model_n_params(m), llm_synthetic_n_params(&cfg));
	V = (size_t)llm_model_n_vocab(m);
	lg = malloc(V * sizeof *lg);
	ck_assert_ptr_nonnull(lg);
	ck_assert(llm_context_new(m, 64, &c, &d) == 0);
	ck_assert_msg(llm_context_eval(c, ids, 5, LLM_LOGITS_LAST, lg, &d) == 0,
		      "%s: %s", spec, diag_message(&d, "?"));
	ck_assert(llm_context_eval(c, ids + 5, 1, LLM_LOGITS_LAST, lg, &d) == 0);
	for (i = 0; i < V; i++)
		ck_assert_msg(isfinite(lg[i]), "%s: logit %zu = %g", spec, i,
			      (double)lg[i]);
	/* not all equal: the weights do something */
	for (i = 1; i < V && lg[i] == lg[0]; i++)
		;
	ck_assert(i < V);
	if (out)
		memcpy(out, lg, V * sizeof *lg);
	llm_context_free(c);
	llm_model_free(m);
	free(lg);
}

START_TEST(test_tiny_models)
{
	float a[512], b[512];

	run_spec("synthetic:tiny-llama", a);
	run_spec("tiny-llama", b);
	ck_assert(memcmp(a, b, sizeof a) == 0); /* deterministic */
	run_spec("synthetic:tiny-qwen2", NULL);
	run_spec("synthetic:tiny-qwen3", NULL);
	run_spec("synthetic:tiny-mixtral", NULL);
	run_spec("synthetic:tiny-llama@exl3:2.5", NULL);
	run_spec("synthetic:tiny-qwen2@exl3:4.0", NULL);
	run_spec("synthetic:tiny-mixtral@exl3:3.0", NULL);
}
END_TEST

START_TEST(test_exl3_bits)
{
	struct llm_model_params p = cpu1();
	struct llm_model *m = NULL;
	double bits = 0, el = 0;
	int64_t l;

	ck_assert(llm_model_new_synthetic("tiny-llama@exl3:2.5", &p, &m, NULL) == 0);
	ck_assert_ptr_nonnull(m->x_lm_head);
	ck_assert_int_eq(gpu_exl3_weight_bits(m->x_lm_head), 6);
	for (l = 0; l < m->cfg.n_layer; l++) {
		struct gpu_exl3_weight *w[7] = {
			m->layers[l].xq, m->layers[l].xk, m->layers[l].xv,
			m->layers[l].xo, m->layers[l].x_gate, m->layers[l].x_up,
			m->layers[l].x_down,
		};
		int i;

		for (i = 0; i < 7; i++) {
			double n;

			ck_assert_ptr_nonnull(w[i]);
			ck_assert_ptr_null(m->layers[l].wq);
			n = (double)gpu_exl3_weight_k(w[i]) * (double)gpu_exl3_weight_n(w[i]);
			ck_assert(gpu_exl3_weight_bits(w[i]) == 2 ||
				  gpu_exl3_weight_bits(w[i]) == 3);
			bits += gpu_exl3_weight_bits(w[i]) * n;
			el += n;
		}
	}
	/* padded elements; the mix is diffused over logical elements, so
	 * allow a quarter bit */
	ck_assert_msg(fabs(bits / el - 2.5) < 0.25, "average %g bits", bits / el);
	llm_model_free(m);
}
END_TEST

START_TEST(test_bench_run)
{
	struct llm_model_params mp = cpu1();
	struct llm_bench_params p = llm_bench_default_params();
	struct llm_bench_result r;
	struct llm_model *m = NULL;
	struct diag d;
	double kv, per;

	ck_assert(llm_model_new_synthetic("tiny-llama", &mp, &m, NULL) == 0);
	p.n_prompt = 16;
	p.n_gen = 4;
	p.n_batch = 2;
	p.n_ctx = 300; /* two pages per sequence */
	p.n_reps = 1;
	p.n_warmup = 1;
	p.measure_bw = true;
	diag_clear(&d);
	ck_assert_msg(llm_bench_run(m, &p, &r, &d) == 0, "%s", diag_message(&d, "?"));
	ck_assert(r.prefill_s > 0 && r.prefill_tok_s > 0);
	/* tiny-llama's prefill of 16: per row per layer 2 x (q, o 64 x 64; k,
	 * v 64 x 32; gate, up, down 64 x 160) multiply-adds, attention 4 x hd
	 * 16 x 4 heads per (row, key) with 1 + ... + 16 = 136 keys, 2 layers;
	 * the lm_head (64 x 512) once */
	ck_assert(fabs(r.prefill_flops -
		       (2.0 * 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 160) * 16 +
			4.0 * 16 * 4 * 136 * 2 + 2.0 * 64 * 512)) < 0.5);
	ck_assert(fabs(r.prefill_flop_s * r.prefill_s - r.prefill_flops) <
		  1e-9 * r.prefill_flops);
	ck_assert(r.step_s > 0 && r.step_min_s <= r.step_s);
	ck_assert(fabs(r.decode_tok_s - 2.0 / r.step_s) < 1e-6 * r.decode_tok_s);
	ck_assert(r.bw_bytes_s > 0);
	ck_assert(r.roofline > 0);
	/* tiny-llama: L 2, Hk 2, hd 16, f32 K/V; 2 slots x 2 pages x 256 */
	kv = 2.0 * 2 * (2 * 2 * 256) * 2 * 16 * 4;
	ck_assert_uint_eq(r.kv_bytes, (uint64_t)kv);
	ck_assert_uint_eq(r.weight_bytes, llm_model_bytes(m));
	ck_assert_uint_eq(r.mem_bytes, r.weight_bytes + r.kv_bytes + r.act_bytes);
	/* dense: every weight but the embedding's unread rows */
	ck_assert(fabs(r.step_weight_bytes -
		       ((double)llm_model_bytes(m) - 512.0 * 64 * 2 + 2.0 * 64 * 2)) < 1);
	/* K/V: 2 rows x mean length (296 + 2.5) x L 2 x 2 x Hk 2 x hd 16 x 4 */
	per = 2.0 * 2 * 2 * 16 * 4;
	ck_assert(fabs(r.step_kv_bytes - 2.0 * 298.5 * per) < 1);
	/* errors */
	p.n_gen = 400;
	ck_assert_int_eq(llm_bench_run(m, &p, &r, NULL), LLM_E_INVALID);
	p.n_gen = 4;
	p.n_batch = 0;
	ck_assert_int_eq(llm_bench_run(m, &p, &r, NULL), LLM_E_INVALID);
	llm_model_free(m);

	/* MoE: B = 1 reads k of n experts per layer */
	ck_assert(llm_model_new_synthetic("tiny-mixtral", &mp, &m, NULL) == 0);
	p.n_batch = 1;
	p.n_ctx = 0;
	p.measure_bw = false;
	ck_assert(llm_bench_run(m, &p, &r, NULL) == 0);
	{
		/* experts: 2 layers x 4 x 3 x 96 x 64 x 2 bytes; read 2/4 */
		double ex = 2.0 * 4 * 3 * 96 * 64 * 2;
		double all = (double)llm_model_bytes(m) - 320.0 * 64 * 2 + 64 * 2;

		ck_assert(fabs(r.step_weight_bytes - (all - ex / 2)) < 1);
	}
	ck_assert(r.bw_bytes_s == 0 && r.roofline == 0);
	/* tiny-mixtral, prompt of 16: the router (64 x 4) and 2 of its 4
	 * experts (3 x 64 x 96) replace the dense FFN */
	ck_assert(fabs(r.prefill_flops -
		       (2.0 * 2 * (2 * 64 * 64 + 2 * 64 * 32 + 64 * 4 +
				   2 * 3 * 64 * 96) * 16 +
			4.0 * 16 * 4 * 136 * 2 + 2.0 * 64 * 320)) < 0.5);
	llm_model_free(m);
}
END_TEST

/* Prefill FLOPs of real shapes against their published parameter counts:
 * Llama-3-8B (8.03e9 parameters, of which the 128256 x 4096 embedding and
 * lm_head are 1.05e9) prefilling 2048 tokens does 2 x 6.98e9 per token in
 * its linears, 4 x 128 x 32 heads x 32 layers per (row, visible key) with
 * 2048 x 2049 / 2 keys, and one lm_head row: 14.50 GFLOP a token, not the
 * 2 x 8.03e9 of "2 x params"; Mixtral-8x7B (46.7e9, 12.9e9 active)
 * about 2 x 12.9e9 a token plus attention. */
START_TEST(test_prefill_flops)
{
	struct llm_config c;
	double f, lin, att;

	ck_assert(llm_synthetic_config("llama3-8b", &c, NULL) == 0);
	f = llm_prefill_flops(&c, 2048);
	lin = 2.0 * (8.03e9 - 2.0 * 128256 * 4096) * 2048;
	att = 4.0 * 128 * 32 * 32 * (2048.0 * 2049 / 2);
	ck_assert_msg(fabs(f / (lin + att + 2.0 * 4096 * 128256) - 1) < 0.005,
		      "llama3-8b: %.5g FLOPs", f);
	ck_assert(fabs(f / 2048 / 14.50e9 - 1) < 0.005);
	ck_assert(llm_synthetic_config("mixtral-8x7b", &c, NULL) == 0);
	f = llm_prefill_flops(&c, 512);
	lin = 2.0 * (12.9e9 - 2.0 * 32000 * 4096) * 512;
	att = 4.0 * 128 * 32 * 32 * (512.0 * 513 / 2);
	ck_assert_msg(fabs(f / (lin + att) - 1) < 0.01, "mixtral: %.5g", f);
}
END_TEST

/* llm_model_params.max_batch sets the rows per forward pass: a context's
 * batch, the chunks of llm_context_eval (same logits as one pass) and the
 * bench's decode ceiling; beyond LLM_MAX_BATCH_LIMIT the load fails. */
START_TEST(test_max_batch)
{
	struct llm_model_params mp = cpu1();
	struct llm_bench_params p = llm_bench_default_params();
	struct llm_bench_result r;
	struct llm_model *m1 = NULL, *m5 = NULL, *bad = NULL;
	struct llm_context *c1 = NULL, *c5 = NULL;
	int32_t ids[13];
	float *a, *b;
	size_t i, V;
	struct diag d;

	diag_clear(&d);
	ck_assert(llm_model_new_synthetic("tiny-llama", &mp, &m1, NULL) == 0);
	ck_assert_uint_eq(m1->max_batch, 512); /* CPU default */
	mp.max_batch = 5;
	ck_assert(llm_model_new_synthetic("tiny-llama", &mp, &m5, NULL) == 0);
	V = (size_t)llm_model_n_vocab(m1);
	ck_assert(llm_context_new(m1, 64, &c1, NULL) == 0);
	ck_assert(llm_context_new(m5, 64, &c5, NULL) == 0);
	ck_assert_uint_eq(c1->n_batch, 64);
	ck_assert_uint_eq(c5->n_batch, 5);
	for (i = 0; i < 13; i++)
		ids[i] = (int32_t)((i * 37 + 11) % V);
	a = malloc(13 * V * sizeof *a);
	b = malloc(13 * V * sizeof *b);
	ck_assert(a && b);
	ck_assert(llm_context_eval(c1, ids, 13, LLM_LOGITS_ALL, a, &d) == 0);
	ck_assert(llm_context_eval(c5, ids, 13, LLM_LOGITS_ALL, b, &d) == 0);
	for (i = 0; i < 13 * V; i++)
		ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])),
			      "row %zu: %g vs %g", i / V, a[i], b[i]);
	free(a);
	free(b);
	llm_context_free(c1);
	llm_context_free(c5);
	/* the bench reports the chunk and refuses more decode rows */
	p.n_prompt = 12;
	p.n_gen = 2;
	p.n_reps = 1;
	p.n_warmup = 0;
	p.measure_bw = false;
	ck_assert_msg(llm_bench_run(m5, &p, &r, &d) == 0, "%s", diag_message(&d, "?"));
	ck_assert_uint_eq(r.chunk, 5);
	p.n_batch = 6;
	ck_assert_int_eq(llm_bench_run(m5, &p, &r, NULL), LLM_E_INVALID);
	llm_model_free(m1);
	llm_model_free(m5);
	mp.max_batch = LLM_MAX_BATCH_LIMIT + 1;
	diag_clear(&d);
	ck_assert_int_eq(llm_model_new_synthetic("tiny-llama", &mp, &bad, &d),
			 LLM_E_INVALID);
	ck_assert(bad == NULL);
	ck_assert(strstr(diag_message(&d, ""), "at most 4096") != NULL);
}
END_TEST

Suite *synthetic_suite(void)
{
	Suite *s = suite_create("synthetic");
	TCase *tc = tcase_create("synthetic");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_param_counts);
	tcase_add_test(tc, test_spec_parse);
	tcase_add_test(tc, test_fill_random);
	tcase_add_test(tc, test_tiny_models);
	tcase_add_test(tc, test_exl3_bits);
	tcase_add_test(tc, test_bench_run);
	tcase_add_test(tc, test_prefill_flops);
	tcase_add_test(tc, test_max_batch);
	suite_add_tcase(s, tc);
	return s;
}
