/* tests/inference/test_cuda_models.c — suite cuda_models: whole models on
 * the CUDA backend against the CPU backend (the oracle) and against
 * transformers' reference logits.
 *
 * For every tiny fixture in tests/data/models (llama2, llama3, mistral,
 * mixtral, qwen2, qwen2moe, qwen3, qwen3moe) the model is opened on CUDA
 * and on the CPU and the reference sequences input_ids.{0,1,2} run as one
 * prefill (all logits) and one token at a time.  Checks:
 *   - CUDA vs CPU logits of each run: ||cuda - cpu|| / ||cpu|| <= 1e-2
 *     (bf16 weights; prefills over 8 rows round activations to bf16 for
 *     cuBLAS);
 *   - CUDA vs transformers, max|cuda - ref| <= 1e-3 * max|ref| per row,
 *     where the CUDA path keeps activations in f32: every incremental step
 *     and the prefills of at most 8 rows (GEMV path); the larger prefills
 *     print their worst ratio instead;
 *   - greedy.2 (argmax continuation) reproduced exactly;
 *   - the incremental run of input_ids.2 with recorded decode steps (CUDA
 *     graphs, the default for dense models) is bit-identical to the same
 *     run with graphs off, and graphs were really replayed.
 * stories260k (models/stories260k, f32 weights): its two sequences and
 * run.c's greedy outputs.  qwen2_5_vl: the text model with the reference
 * image embeddings injected (MRoPE path) vs CPU, and its text prefix vs
 * the reference.  exl3-llama3: run like the others when it loads on CUDA,
 * else skipped with a note.  EXL3 MoE: synthetic tiny-mixtral@exl3:4.0
 * (EXL3 routed experts) on CUDA vs the CPU, prefills of 72 and 5 rows and
 * token by token, relative L2 <= 1e-2.  Batched decode: 16 slots stepped with 1, 2,
 * 3, 4, 8 and 16 rows per step, graphs on vs off (bit-identical) and vs the
 * CPU, for llama3 and for qwen3moe (its experts dispatched on the device
 * inside the recorded steps).  Memory: a model opened and freed 20 times (with a context and an
 * evaluation) returns device memory to its starting value each time, and
 * a model that does not fit the free device memory fails with
 * LLM_E_NOSPACE before uploading anything.  gpu_mem_info on the CPU
 * reports the host's memory (runs everywhere).
 *
 * Without a CUDA device the CUDA cases print "SKIP: no CUDA device" and
 * pass; with TERN_GPU_TESTS=1 a missing device is a failure.
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
#include "inference/safetensors_impl.h"
#include "refutil.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* 1 when a CUDA device answers; else prints SKIP (fails under
 * TERN_GPU_TESTS=1) and returns 0. */
static int have_cuda(const char *what)
{
	const char *req = getenv("TERN_GPU_TESTS");
	struct gpu *g = NULL;
	struct diag d;

	diag_clear(&d);
	if (gpu_open(GPU_KIND_CUDA, NULL, &g, &d) == 0) {
		gpu_close(g);
		return 1;
	}
	ck_assert_msg(!(req && !strcmp(req, "1")),
		      "TERN_GPU_TESTS=1 but no CUDA device: %s", d.msg);
	fprintf(stderr, "SKIP: no CUDA device (%s): %s\n", what, d.msg);
	return 0;
}

/* ||a - r|| / ||r|| over n values (NaN anywhere: +inf). */
static double rel_l2(const float *a, const float *r, size_t n)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		double e = (double)a[i] - r[i];

		if (!isfinite(a[i]))
			return INFINITY;
		num += e * e;
		den += (double)r[i] * r[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void expect_close(const char *what, const float *a, const float *r,
			 size_t n, double tol)
{
	double e = rel_l2(a, r, n);

	ck_assert_msg(e <= tol, "%s: relative L2 %g > %g", what, e, tol);
}

/* Worst max|a - r| / max|r| over n_rows rows of V. */
static double worst_row_ratio(const float *a, const float *r, size_t n_rows,
			      size_t V)
{
	double worst = 0;
	size_t i, j;

	for (i = 0; i < n_rows; i++) {
		double md = 0, mr = 0;

		for (j = 0; j < V; j++) {
			double e = fabs((double)a[i * V + j] - r[i * V + j]);

			md = isfinite(e) ? fmax(md, e) : INFINITY;
			mr = fmax(mr, fabs((double)r[i * V + j]));
		}
		worst = fmax(worst, mr > 0 ? md / mr : md);
	}
	return worst;
}

static void expect_ref(const char *what, const float *a, const float *r,
		       size_t n_rows, size_t V)
{
	double w = worst_row_ratio(a, r, n_rows, V);

	ck_assert_msg(w <= 1e-3, "%s: max |diff| / max |ref| = %g > 1e-3", what, w);
}

/* KV cache of the models try_open opens: f32 for the checks against
 * transformers at 1e-3 (the f16 cache, CUDA's default, is checked by
 * test_f16_kv). */
static enum llm_kv_type g_kv = LLM_KV_F32;

/* Open DIR on BACKEND; on failure returns NULL with the message in d. */
static struct llm_model *try_open(const char *dir, enum llm_backend be,
				  struct diag *d)
{
	struct llm_model_params p = llm_model_default_params();
	struct llm_model *m = NULL;

	p.backend = be;
	p.n_threads = 2;
	p.kv_type = be == LLM_BACKEND_CPU ? LLM_KV_F32 : g_kv;
	if (llm_model_open(dir, &p, &m, d) < 0)
		return NULL;
	return m;
}

static struct llm_model *open_model(const char *dir, enum llm_backend be)
{
	struct diag d;
	struct llm_model *m;

	diag_clear(&d);
	m = try_open(dir, be, &d);
	ck_assert_msg(m != NULL, "%s: %s", dir, d.msg);
	return m;
}

/* Prefill of IDS (all logits) into OUT [n, V]. */
static void prefill(struct llm_context *c, const int32_t *ids, size_t n,
		    float *out)
{
	struct diag d;

	diag_clear(&d);
	llm_context_reset(c);
	ck_assert_msg(llm_context_eval(c, ids, n, LLM_LOGITS_ALL, out, &d) == 0,
		      "prefill: %s", d.msg);
}

/* One token at a time into OUT [n, V]. */
static void incremental(struct llm_context *c, const int32_t *ids, size_t n,
			float *out, size_t V)
{
	struct diag d;
	size_t i;

	diag_clear(&d);
	llm_context_reset(c);
	for (i = 0; i < n; i++)
		ck_assert_msg(llm_context_eval(c, ids + i, 1, LLM_LOGITS_LAST,
					       out + i * V, &d) == 0,
			      "step %zu: %s", i, d.msg);
}

/* One sequence on both backends: prefill and incremental vs CPU and vs
 * the reference; for the last one also graphs on vs off. */
static void check_sequence(const char *what, struct llm_context *cu,
			   struct llm_context *cpu, const int32_t *ids,
			   size_t n, const float *ref, size_t V, int graphs)
{
	float *a = malloc(n * V * sizeof *a), *b = malloc(n * V * sizeof *b);
	char buf[160];
	double w;

	prefill(cu, ids, n, a);
	prefill(cpu, ids, n, b);
	snprintf(buf, sizeof buf, "%s prefill cuda vs cpu", what);
	expect_close(buf, a, b, n * V, 1e-2);
	snprintf(buf, sizeof buf, "%s prefill cuda vs transformers", what);
	w = worst_row_ratio(a, ref, n, V);
	if (n <= 8)
		expect_ref(buf, a, ref, n, V);
	else
		fprintf(stderr, "note: %s: max|diff|/max|ref| = %.3g (%s)\n", buf, w,
			w <= 1e-3 ? "within 1e-3" : "bf16 activations, not checked");

	incremental(cu, ids, n, a, V);
	incremental(cpu, ids, n, b, V);
	snprintf(buf, sizeof buf, "%s incremental cuda vs cpu", what);
	expect_close(buf, a, b, n * V, 1e-2);
	snprintf(buf, sizeof buf, "%s incremental cuda vs transformers", what);
	expect_ref(buf, a, ref, n, V);

	if (graphs) {
		uint64_t before = cu->graph_launches;
		bool saved = cu->use_graphs;

		/* a second run with graphs on (all replays now) and one with
		 * graphs off must agree bit for bit */
		incremental(cu, ids, n, a, V);
		if (saved)
			ck_assert_msg(cu->graph_launches >= before + n,
				      "%s: %llu graph replays for %zu steps", what,
				      (unsigned long long)(cu->graph_launches - before), n);
		cu->use_graphs = false;
		incremental(cu, ids, n, b, V);
		cu->use_graphs = saved;
		ck_assert_msg(memcmp(a, b, n * V * sizeof *a) == 0,
			      "%s: logits differ with and without graphs (rel L2 %g)",
			      what, rel_l2(a, b, n * V));
	}
	free(a);
	free(b);
}

/* ---- the fixtures ------------------------------------------------------- */

/* Fixture ARCH open on both backends: its reference, the CUDA model (KV
 * cache KV) and the CPU model (f32 cache), a 64-position context on each. */
struct fx_pair {
	char *dir;
	struct llm_st_set *ref;
	struct llm_model *mg, *mc;
	struct llm_context *cg, *cc;
	size_t V;
};

/* Opens F; returns 1, or 0 with a SKIP note and nothing left open when
 * OPTIONAL and the model does not load on CUDA (else that fails the
 * test). */
static int fx_open(struct fx_pair *f, const char *arch, enum llm_kv_type kv,
		   int optional)
{
	enum llm_kv_type saved = g_kv;
	struct diag d;

	memset(f, 0, sizeof *f);
	diag_clear(&d);
	f->dir = ref_fixture_open(arch, &f->ref);
	g_kv = kv;
	f->mg = try_open(f->dir, LLM_BACKEND_CUDA, &d);
	g_kv = saved;
	if (!f->mg && optional) {
		fprintf(stderr, "SKIP: %s does not load on CUDA: %s\n", arch, d.msg);
		llm_st_close(f->ref);
		free(f->dir);
		return 0;
	}
	ck_assert_msg(f->mg != NULL, "%s on CUDA: %s", arch, d.msg);
	f->mc = open_model(f->dir, LLM_BACKEND_CPU);
	f->V = (size_t)llm_model_n_vocab(f->mg);
	ck_assert_int_eq(llm_context_new(f->mg, 64, &f->cg, &d), 0);
	ck_assert_int_eq(llm_context_new(f->mc, 64, &f->cc, &d), 0);
	return 1;
}

static void fx_close(struct fx_pair *f)
{
	llm_context_free(f->cg);
	llm_context_free(f->cc);
	llm_model_free(f->mg);
	llm_model_free(f->mc);
	llm_st_close(f->ref);
	free(f->dir);
}

static void check_tiny(const char *arch, int optional)
{
	char what[96];
	struct fx_pair f;
	size_t V, s, n, ng;
	int dense;

	if (!have_cuda(arch))
		return;
	if (!fx_open(&f, arch, g_kv, optional))
		return;
	V = f.V;
	dense = f.cg->use_graphs;
	fprintf(stderr, "note: %s on %s, graphs %s\n", arch, llm_model_backend(f.mg),
		dense ? "on" : "off (MoE / EXL3 / TERN_CUDA_GRAPHS=0)");
	for (s = 0; s < 3; s++) {
		int32_t *ids;
		float *lg = ref_seq(f.ref, s, V, &ids, &n);

		snprintf(what, sizeof what, "%s seq %zu", arch, s);
		check_sequence(what, f.cg, f.cc, ids, n, lg, V, s == 2);
		if (s == 2) {
			int32_t *gr = ref_ids(f.ref, "greedy.2", &ng);

			snprintf(what, sizeof what, "%s greedy.2 on CUDA", arch);
			ref_check_greedy(f.cg, what, ids, n, gr, ng, V, 0);
			free(gr);
		}
		free(ids);
		free(lg);
	}
	fx_close(&f);
}

/* The default CUDA cache (f16): every dense fixture's sequences one token
 * at a time on CUDA with an f16 pool against the CPU (f32 pool) and
 * transformers (whose own cache is bf16), and greedy.2. */
static void check_tiny_f16(const char *arch)
{
	char what[96];
	struct fx_pair f;
	size_t V, s, n, ng;

	fx_open(&f, arch, LLM_KV_F16, 0);
	V = f.V;
	ck_assert_int_eq(gpu_buf_dtype(f.cg->kv[0].k), GPU_DTYPE_F16);
	for (s = 0; s < 3; s++) {
		int32_t *ids;
		float *lg = ref_seq(f.ref, s, V, &ids, &n), *a, *b;
		double w;

		a = malloc(n * V * sizeof *a);
		b = malloc(n * V * sizeof *b);
		incremental(f.cg, ids, n, a, V);
		incremental(f.cc, ids, n, b, V);
		snprintf(what, sizeof what, "%s seq %zu f16 KV cuda vs cpu", arch, s);
		expect_close(what, a, b, n * V, 1e-2);
		w = worst_row_ratio(a, lg, n, V);
		fprintf(stderr, "note: %s f16 KV seq %zu: max|diff|/max|ref| = %.3g\n",
			arch, s, w);
		ck_assert_msg(w <= 1e-2, "%s f16 KV seq %zu vs transformers: %g > 1e-2",
			      arch, s, w);
		if (s == 2) {
			int32_t *gr = ref_ids(f.ref, "greedy.2", &ng);

			snprintf(what, sizeof what, "%s greedy.2, f16 KV", arch);
			ref_check_greedy(f.cg, what, ids, n, gr, ng, V, 0);
			free(gr);
		}
		free(a);
		free(b);
		free(ids);
		free(lg);
	}
	fx_close(&f);
}

START_TEST(test_f16_kv)
{
	static const char *const archs[] = { "llama2", "llama3", "mistral",
					     "qwen2", "qwen3", "mixtral" };
	size_t i;

	if (!have_cuda("f16 KV"))
		return;
	for (i = 0; i < sizeof archs / sizeof *archs; i++)
		check_tiny_f16(archs[i]);
}
END_TEST

/* A quantized KV cache (k_bits, v_bits): fixture ARCH on both backends
 * with the same cache, prefill and one token at a time: CUDA against the
 * CPU (which the suite kvq checks against the spec) and against
 * transformers (unquantized), both within REF_TOL, the quantization's own
 * error, graphs on and off bit for bit, and at 8 bits greedy.2. */
static void check_tiny_quant(const char *arch, int kb, int vb, double ref_tol)
{
	char what[128];
	struct llm_st_set *ref;
	char *dir = ref_fixture_open(arch, &ref);
	struct llm_model *mg, *mc;
	struct llm_context *cg, *cc;
	struct diag d;
	size_t V, s, n, ng;

	diag_clear(&d);
	mg = ref_open_kvq(dir, LLM_BACKEND_CUDA, kb, vb);
	mc = ref_open_kvq(dir, LLM_BACKEND_CPU, kb, vb);
	V = (size_t)llm_model_n_vocab(mg);
	ck_assert_int_eq(llm_context_new(mg, 64, &cg, &d), 0);
	ck_assert_int_eq(llm_context_new(mc, 64, &cc, &d), 0);
	ck_assert_int_eq(gpu_buf_dtype(cg->kv[0].k), GPU_DTYPE_I32);
	ck_assert_uint_eq(cg->kv[0].k_bits, (unsigned)kb);
	for (s = 0; s < 3; s++) {
		int32_t *ids;
		float *lg = ref_seq(ref, s, V, &ids, &n), *a, *b;
		double w, tol, l2;
		int mode;

		a = malloc(n * V * sizeof *a);
		b = malloc(n * V * sizeof *b);
		for (mode = 0; mode < 2; mode++) {
			if (mode == 0) {
				prefill(cg, ids, n, a);
				prefill(cc, ids, n, b);
			} else {
				incremental(cg, ids, n, a, V);
				incremental(cc, ids, n, b, V);
			}
			snprintf(what, sizeof what, "%s seq %zu k%d v%d %s cuda vs cpu", arch,
				 s, kb, vb, mode ? "incremental" : "prefill");
			/* the backends' keys differ in their last bits, which
			 * moves a code across a step now and then; a prefill
			 * of more than 8 rows runs its matmuls with 16-bit
			 * activations on CUDA (see check_sequence) */
			tol = mode == 0 && n > 8 ? fmax(ref_tol, 5e-2) : ref_tol;
			l2 = rel_l2(a, b, n * V);
			w = worst_row_ratio(a, lg, n, V);
			fprintf(stderr, "note: %s: rel L2 %.3g; vs transformers "
				"max|diff|/max|ref| = %.3g\n", what, l2, w);
			ck_assert_msg(l2 <= tol, "%s: relative L2 %g > %g", what, l2, tol);
			/* against the unquantized reference only at 8 bits:
			 * the random fixtures' sharp attention makes 4-bit
			 * codes move logits by a third of the row's largest */
			if (kb == 8 && vb == 8)
				ck_assert_msg(w <= tol, "%s vs transformers: %g > %g", what,
					      w, tol);
		}
		if (cg->use_graphs) {
			/* a replayed step and an unrecorded one agree */
			incremental(cg, ids, n, a, V);
			cg->use_graphs = false;
			incremental(cg, ids, n, b, V);
			cg->use_graphs = true;
			ck_assert_msg(memcmp(a, b, n * V * sizeof *a) == 0,
				      "%s k%d v%d: logits differ with and without graphs",
				      arch, kb, vb);
		}
		if (s == 2 && kb == 8 && vb == 8) {
			int32_t *gr = ref_ids(ref, "greedy.2", &ng);

			snprintf(what, sizeof what, "%s greedy.2, 8-bit KV", arch);
			ref_check_greedy(cg, what, ids, n, gr, ng, V, 0);
			free(gr);
		}
		free(a);
		free(b);
		free(ids);
		free(lg);
	}
	llm_context_free(cg);
	llm_context_free(cc);
	llm_model_free(mg);
	llm_model_free(mc);
	llm_st_close(ref);
	free(dir);
}

START_TEST(test_quant_kv)
{
	if (!have_cuda("quantized KV"))
		return;
	/* the fixtures' random weights make sharp attention: a step of
	 * 1/128 of a group's range moves a logit by up to 2% of the row's
	 * largest at 8 bits (0.007-0.023 measured on an H200) */
	check_tiny_quant("llama3", 8, 8, 4e-2);
	check_tiny_quant("llama3", 4, 4, 0.15);
	check_tiny_quant("qwen3", 6, 3, 0.15);   /* q/k norm in the rope op */
	check_tiny_quant("mixtral", 8, 4, 0.15); /* MoE, sliding window */
	check_tiny_quant("exl3-llama3", 8, 8, 4e-2);
}
END_TEST

START_TEST(test_llama2) { check_tiny("llama2", 0); }
END_TEST
START_TEST(test_llama3) { check_tiny("llama3", 0); }
END_TEST
START_TEST(test_mistral) { check_tiny("mistral", 0); }
END_TEST
START_TEST(test_mixtral) { check_tiny("mixtral", 0); }
END_TEST
START_TEST(test_qwen2) { check_tiny("qwen2", 0); }
END_TEST
START_TEST(test_qwen2moe) { check_tiny("qwen2moe", 0); }
END_TEST
START_TEST(test_qwen3) { check_tiny("qwen3", 0); }
END_TEST
START_TEST(test_qwen3moe) { check_tiny("qwen3moe", 0); }
END_TEST
START_TEST(test_exl3_llama3) { check_tiny("exl3-llama3", 1); }
END_TEST

/* A synthetic model on backend BE with an f32 KV cache. */
static struct llm_model *open_synth(const char *spec, enum llm_backend be)
{
	struct llm_model_params p = llm_model_default_params();
	struct llm_model *m = NULL;
	struct diag d;

	diag_clear(&d);
	p.backend = be;
	p.n_threads = 2;
	p.kv_type = LLM_KV_F32;
	ck_assert_msg(llm_model_new_synthetic(spec, &p, &m, &d) == 0, "%s: %s",
		      spec, d.msg);
	return m;
}

/* MoE with EXL3 experts: synthetic tiny-mixtral@exl3:4.0 (every routed
 * expert an EXL3 linear, 64 -> 96 padded to 128; the same bits on both
 * backends, gpu_buf_fill_random and the builder's own generator being
 * backend-independent) on CUDA vs the CPU: a prefill of 72 rows (some
 * expert gets more than 32 rows: the dequantise + cuBLAS path), one of 5
 * rows (the fused GEMV) and 12 tokens one at a time (the experts
 * dispatched on the device, recorded into graphs from the second step),
 * each within 1e-2 relative L2 (CUDA rounds the rotated activations to
 * f16). */
START_TEST(test_exl3_moe)
{
	const char *spec = "tiny-mixtral@exl3:4.0";
	struct llm_model *mg, *mc;
	struct llm_context *cg = NULL, *cc = NULL;
	enum { N = 72 };
	int32_t ids[N];
	float *a, *b;
	size_t V, i;
	char what[96];
	struct diag d;

	if (!have_cuda(spec))
		return;
	diag_clear(&d);
	mg = open_synth(spec, LLM_BACKEND_CUDA);
	mc = open_synth(spec, LLM_BACKEND_CPU);
	ck_assert_ptr_nonnull(mg->layers[0].xe_gate);
	V = (size_t)llm_model_n_vocab(mg);
	for (i = 0; i < N; i++)
		ids[i] = (int32_t)((i * 37 + 11) % V);
	a = malloc(N * V * sizeof *a);
	b = malloc(N * V * sizeof *b);
	ck_assert(a && b);
	ck_assert_msg(llm_context_new(mg, 128, &cg, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_context_new(mc, 128, &cc, &d) == 0, "%s", d.msg);
	/* the experts run on the device (gpu_moe_ffn_recordable): decode
	 * steps are recorded and replayed */
	ck_assert(cg->use_graphs);
	prefill(cg, ids, N, a);
	prefill(cc, ids, N, b);
	snprintf(what, sizeof what, "%s prefill %d cuda vs cpu", spec, N);
	expect_close(what, a, b, N * V, 1e-2);
	fprintf(stderr, "note: %s: rel L2 %.3g\n", what, rel_l2(a, b, N * V));
	prefill(cg, ids, 5, a);
	prefill(cc, ids, 5, b);
	snprintf(what, sizeof what, "%s prefill 5 cuda vs cpu", spec);
	expect_close(what, a, b, 5 * V, 1e-2);
	{
		const uint64_t before = cg->graph_launches;

		incremental(cg, ids, 12, a, V);
		/* one-row steps: the first unrecorded, then graphs */
		ck_assert_msg(cg->graph_launches >= before + 10,
			      "%s: %llu graph launches for 12 steps", spec,
			      (unsigned long long)(cg->graph_launches - before));
	}
	incremental(cc, ids, 12, b, V);
	snprintf(what, sizeof what, "%s incremental cuda vs cpu", spec);
	expect_close(what, a, b, 12 * V, 1e-2);
	fprintf(stderr, "note: %s: rel L2 %.3g\n", what, rel_l2(a, b, 12 * V));
	for (i = 0; i < 12; i++) {
		snprintf(what, sizeof what, "%s incremental row %zu", spec, i);
		expect_close(what, a + i * V, b + i * V, V, 1e-2);
	}
	llm_context_free(cg);
	llm_context_free(cc);
	llm_model_free(mg);
	llm_model_free(mc);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_stories260k)
{
	char *dir = test_data_path("../../models/stories260k");
	char *refp = test_data_path("models/stories260k/reference.safetensors");
	struct llm_st_set *ref = NULL;
	struct llm_model *mc, *mg;
	struct llm_context *cc = NULL, *cg = NULL;
	struct diag d;
	size_t V, s, n, nr, np, ng;
	char name[32], what[64];

	if (!have_cuda("stories260k")) {
		free(dir);
		free(refp);
		return;
	}
	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	mg = open_model(dir, LLM_BACKEND_CUDA);
	mc = open_model(dir, LLM_BACKEND_CPU);
	V = (size_t)llm_model_n_vocab(mg);
	ck_assert_int_eq(llm_context_new(mg, 512, &cg, &d), 0);
	ck_assert_int_eq(llm_context_new(mc, 512, &cc, &d), 0);
	for (s = 0; s < 2; s++) {
		int32_t *ids, *prompt, *gr;
		float *lg, *out;

		snprintf(name, sizeof name, "input_ids.%zu", s);
		ids = ref_ids(ref, name, &n);
		snprintf(name, sizeof name, "logits.%zu", s);
		lg = ref_f32(ref, name, &nr);
		ck_assert_uint_eq(nr, n * V);
		snprintf(what, sizeof what, "stories260k seq %zu", s);
		check_sequence(what, cg, cc, ids, n, lg, V, 1);
		/* f32 weights: every CUDA path is f32, so the prefill must
		 * also be within 1e-3 of transformers */
		out = malloc(n * V * sizeof *out);
		prefill(cg, ids, n, out);
		snprintf(what, sizeof what, "stories260k seq %zu prefill (f32)", s);
		expect_ref(what, out, lg, n, V);
		free(out);
		snprintf(name, sizeof name, "prompt.%zu", s);
		prompt = ref_ids(ref, name, &np);
		snprintf(name, sizeof name, "greedy.%zu", s);
		gr = ref_ids(ref, name, &ng);
		snprintf(what, sizeof what, "stories260k greedy.%zu on CUDA", s);
		ref_check_greedy(cg, what, prompt, np, gr, ng, V, 1);
		free(ids);
		free(lg);
		free(prompt);
		free(gr);
	}
	llm_context_free(cg);
	llm_context_free(cc);
	llm_model_free(mg);
	llm_model_free(mc);
	llm_st_close(ref);
	free(dir);
	free(refp);
}
END_TEST

/* Qwen2.5-VL text model with the reference image embeddings injected at
 * the image tokens and 3-row MRoPE positions (see test_conformance.c for
 * why the positions are sequential): CUDA vs CPU; then the text prefix
 * one token at a time (graphs) vs the reference. */
/* The vision tower on CUDA (llm_vision_use_backend): both fixture images'
 * embeddings against transformers' (the host path is within 1e-4 of them,
 * suite vision); CUDA's matmuls of many rows round activations to 16 bits,
 * hence the looser bound here (the measured value is printed). */
START_TEST(test_vision_cuda)
{
	static const char *const sfx[2] = { "", ".photo" };
	size_t k;

	if (!have_cuda("vision"))
		return;
	for (k = 0; k < 2; k++) {
		float md, mx;

		ref_vision_check(sfx[k], "cuda", 2e-2f, &md, &mx);
		fprintf(stderr, "note: vision image%s on CUDA: max diff %g, max |ref| %g\n",
			sfx[k], (double)md, (double)mx);
	}
}
END_TEST

START_TEST(test_qwen2_5_vl)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *refp = test_data_path("models/qwen2_5_vl/reference.safetensors");
	struct llm_st_set *ref = NULL;
	struct llm_model *mc, *mg;
	struct llm_context *cc = NULL, *cg = NULL;
	struct llm_batch b;
	struct diag d;
	int32_t *ids, *seq, *pos, *mpos, *bids;
	float *lg, *emb, *embd, *oa, *ob;
	uint8_t *want;
	size_t n, V, ne, nl, i, img = 0, k;

	if (!have_cuda("qwen2_5_vl")) {
		free(dir);
		free(refp);
		return;
	}
	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	mg = open_model(dir, LLM_BACKEND_CUDA);
	mc = open_model(dir, LLM_BACKEND_CPU);
	V = (size_t)llm_model_n_vocab(mg);
	ids = ref_ids(ref, "input_ids", &n);
	lg = ref_f32(ref, "logits", &nl);
	emb = ref_f32(ref, "image_embeds", &ne);
	ck_assert_uint_eq(nl, n * V);
	seq = calloc(n, sizeof *seq);
	pos = malloc(n * sizeof *pos);
	mpos = malloc(3 * n * sizeof *mpos);
	bids = malloc(n * sizeof *bids);
	embd = calloc(n * 128, sizeof *embd);
	want = malloc(n);
	oa = malloc(n * V * sizeof *oa);
	ob = malloc(n * V * sizeof *ob);
	for (i = 0; i < n; i++) {
		pos[i] = (int32_t)i;
		want[i] = 1;
		bids[i] = ids[i];
		mpos[i] = mpos[n + i] = mpos[2 * n + i] = (int32_t)i;
		if (ids[i] == 512) {
			ck_assert((img + 1) * 128 <= ne);
			bids[i] = -1;
			memcpy(embd + i * 128, emb + img * 128, 128 * sizeof *embd);
			img++;
		}
	}
	ck_assert_uint_gt(img, 0);
	ck_assert_int_eq(llm_context_new(mg, 64, &cg, &d), 0);
	ck_assert_int_eq(llm_context_new(mc, 64, &cc, &d), 0);
	for (k = 0; k < 2; k++) {
		struct llm_context *c = k ? cc : cg;

		ck_assert_int_eq(llm_kv_reserve(c, 0, n, &d), 0);
		memset(&b, 0, sizeof b);
		b.n = n;
		b.ids = bids;
		b.seq = seq;
		b.pos = pos;
		b.mpos = mpos;
		b.embd = embd;
		b.logits = want;
		b.logits_out = k ? ob : oa;
		ck_assert_msg(llm_forward(c, &b, &d) == 0, "%s", d.msg);
	}
	expect_close("qwen2_5_vl image prefill cuda vs cpu", oa, ob, n * V, 1e-2);
	fprintf(stderr, "note: qwen2_5_vl image prefill (%zu rows) cuda vs "
		"transformers: %.3g\n", n, worst_row_ratio(oa, lg, n, V));
	/* text prefix (before the first image token), one token at a time */
	for (k = 0; k < n && ids[k] < 512; k++)
		;
	ck_assert_uint_gt(k, 0);
	incremental(cg, ids, k, oa, V);
	expect_ref("qwen2_5_vl text prefix incremental cuda vs transformers", oa,
		   lg, k, V);
	llm_context_free(cg);
	llm_context_free(cc);
	llm_model_free(mg);
	llm_model_free(mc);
	llm_st_close(ref);
	free(ids);
	free(lg);
	free(emb);
	free(seq);
	free(pos);
	free(mpos);
	free(bids);
	free(embd);
	free(want);
	free(oa);
	free(ob);
	free(dir);
	free(refp);
}
END_TEST

/* ---- batched decode through graphs ------------------------------------- */

enum { NSLOT = 16, NSTEP = 3 };

/* Prefill slot s with the first 5 + s ids of IDS, 4 rows per forward (at
 * most 8 rows keep CUDA's activations f32, so the cached K/V of both
 * backends agree closely and the decode comparison below can be tight). */
static void fill_slots(struct llm_context *c, const int32_t *ids)
{
	int32_t seq[4], pos[4];
	struct llm_batch b;
	struct diag d;
	size_t s, i, i0;

	diag_clear(&d);
	for (s = 0; s < NSLOT; s++) {
		size_t n = 5 + s;

		ck_assert_int_eq(llm_kv_reserve(c, s, n + NSTEP, &d), 0);
		for (i0 = 0; i0 < n; i0 += 4) {
			size_t m = n - i0 < 4 ? n - i0 : 4;

			for (i = 0; i < m; i++) {
				seq[i] = (int32_t)s;
				pos[i] = (int32_t)(i0 + i);
			}
			memset(&b, 0, sizeof b);
			b.n = m;
			b.ids = ids + i0;
			b.seq = seq;
			b.pos = pos;
			ck_assert_msg(llm_forward(c, &b, &d) == 0, "slot %zu: %s", s,
				      d.msg);
		}
	}
}

/* NSTEP steps of B rows (slots 0..B-1, each at its next positions) into
 * OUT [NSTEP, B, V]. */
static void steps(struct llm_context *c, size_t B, size_t V, float *out)
{
	int32_t seq[NSLOT], pos[NSLOT], ids[NSLOT];
	uint8_t want[NSLOT];
	struct llm_batch b;
	struct diag d;
	size_t t, s;

	diag_clear(&d);
	for (t = 0; t < NSTEP; t++) {
		for (s = 0; s < B; s++) {
			seq[s] = (int32_t)s;
			pos[s] = (int32_t)(5 + s + t);
			ids[s] = (int32_t)(3 + (s * 7 + t * 13) % (V - 3));
			want[s] = 1;
		}
		memset(&b, 0, sizeof b);
		b.n = B;
		b.ids = ids;
		b.seq = seq;
		b.pos = pos;
		b.logits = want;
		b.logits_out = out + t * B * V;
		ck_assert_msg(llm_forward(c, &b, &d) == 0, "B %zu step %zu: %s", B, t,
			      d.msg);
	}
}

/* Fixture ARCH (tests/data/models/ARCH): 16 slots decoded with 1, 2, 3,
 * 4, 8 and 16 rows per step, graphs on vs off bit-identical and vs the
 * CPU (TOL for up to 8 rows, 1e-2 above: cuBLAS rounds activations). */
static void graph_buckets(const char *arch, double tol)
{
	static const size_t Bs[] = { 1, 2, 3, 4, 8, 16 };
	char rel[96], relr[128];
	char *dir, *refp;
	struct llm_st_set *ref = NULL;
	struct llm_model *mc, *mg;
	struct llm_context *cc = NULL, *cg = NULL;
	struct diag d;
	int32_t *ids;
	float *a, *b2, *r;
	size_t V, n, i;
	char what[96];

	if (!have_cuda("graph buckets"))
		return;
	snprintf(rel, sizeof rel, "models/%s", arch);
	snprintf(relr, sizeof relr, "models/%s/reference.safetensors", arch);
	dir = test_data_path(rel);
	refp = test_data_path(relr);
	diag_clear(&d);
	ck_assert_int_eq(llm_st_open(refp, &ref, &d), 0);
	ids = ref_ids(ref, "input_ids.2", &n);
	ck_assert_uint_ge(n, 5 + NSLOT);
	mg = open_model(dir, LLM_BACKEND_CUDA);
	mc = open_model(dir, LLM_BACKEND_CPU);
	V = (size_t)llm_model_n_vocab(mg);
	ck_assert_int_eq(llm_context_new_slots(mg, 64, NSLOT, 0, &cg, &d), 0);
	ck_assert_int_eq(llm_context_new_slots(mc, 64, NSLOT, 0, &cc, &d), 0);
	ck_assert(cg->use_graphs || getenv("TERN_CUDA_GRAPHS"));
	fill_slots(cg, ids);
	fill_slots(cc, ids);
	a = malloc(NSTEP * NSLOT * V * sizeof *a);
	b2 = malloc(NSTEP * NSLOT * V * sizeof *b2);
	r = malloc(NSTEP * NSLOT * V * sizeof *r);
	for (i = 0; i < sizeof Bs / sizeof Bs[0]; i++) {
		size_t B = Bs[i], cnt = NSTEP * B * V;
		uint64_t before = cg->graph_launches;
		bool saved = cg->use_graphs;

		/* twice with graphs (the first may record), once without */
		steps(cg, B, V, a);
		steps(cg, B, V, a);
		if (cg->use_graphs) {
			ck_assert_msg(cg->graph[B] != NULL, "no graph for %zu rows", B);
			ck_assert_uint_ge(cg->graph_launches, before + NSTEP);
		}
		cg->use_graphs = false;
		steps(cg, B, V, b2);
		cg->use_graphs = saved;
		ck_assert_msg(memcmp(a, b2, cnt * sizeof *a) == 0,
			      "%zu rows: graphs on vs off differ (rel L2 %g)", B,
			      rel_l2(a, b2, cnt));
		steps(cc, B, V, r);
		snprintf(what, sizeof what, "%s %zu-row decode cuda vs cpu", arch, B);
		expect_close(what, a, r, cnt, B <= 8 ? tol : 1e-2);
	}
	fprintf(stderr, "note: %s graph buckets: %llu replays\n", arch,
		(unsigned long long)cg->graph_launches);
	free(a);
	free(b2);
	free(r);
	free(ids);
	llm_context_free(cg);
	llm_context_free(cc);
	llm_model_free(mg);
	llm_model_free(mc);
	llm_st_close(ref);
	free(dir);
	free(refp);
}

START_TEST(test_graph_buckets) { graph_buckets("llama3", 1e-4); }
END_TEST

/* MoE: every bucket's experts dispatched on the device (up to 16 rows x
 * top_k assignments) inside the recorded step. */
START_TEST(test_graph_buckets_moe) { graph_buckets("qwen3moe", 1e-4); }
END_TEST

/* A context reserves its scratch up front (gpu_reserve): a prefill after
 * decode steps were recorded grows nothing, so the recorded graph stays
 * valid and is replayed (before, the prefill's cuBLAS and attention
 * scratch grew and every graph had to be recorded again). */
START_TEST(test_reserved_scratch)
{
	char *dir = test_data_path("models/llama3");
	struct llm_model *mg;
	struct llm_context *cg = NULL;
	struct diag d;
	int32_t ids[48];
	float *lg;
	uint64_t before;
	size_t i, V;

	if (!have_cuda("reserved scratch")) {
		free(dir);
		return;
	}
	diag_clear(&d);
	mg = open_model(dir, LLM_BACKEND_CUDA);
	V = (size_t)llm_model_n_vocab(mg);
	ck_assert_int_eq(llm_context_new(mg, 64, &cg, &d), 0);
	ck_assert_uint_eq(cg->n_batch, 64);
	lg = malloc(V * sizeof *lg);
	for (i = 0; i < 48; i++)
		ids[i] = (int32_t)((i * 7 + 3) % V);
	if (!cg->use_graphs) { /* TERN_CUDA_GRAPHS=0 */
		free(lg);
		llm_context_free(cg);
		llm_model_free(mg);
		free(dir);
		return;
	}
	/* three one-row steps: unrecorded, recorded, replayed */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(llm_context_eval(cg, ids + i, 1, LLM_LOGITS_LAST,
						  lg, &d), 0);
	ck_assert(cg->graph[1] != NULL && gpu_graph_valid(cg->graph[1]));
	/* a prefill of 40 rows (cuBLAS matmuls, multi-row attention) */
	ck_assert_int_eq(llm_context_eval(cg, ids + 3, 40, LLM_LOGITS_LAST, lg, &d), 0);
	ck_assert_msg(gpu_graph_valid(cg->graph[1]),
		      "the prefill moved a scratch area: the decode graph is stale");
	before = cg->graph_launches;
	ck_assert_int_eq(llm_context_eval(cg, ids + 43, 1, LLM_LOGITS_LAST, lg, &d), 0);
	ck_assert_uint_eq(cg->graph_launches, before + 1);
	free(lg);
	llm_context_free(cg);
	llm_model_free(mg);
	free(dir);
}
END_TEST

/* ---- memory -------------------------------------------------------------- */

START_TEST(test_cpu_mem_info)
{
	struct gpu *g = NULL;
	uint64_t fr = 0, tot = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, NULL, &g, NULL), 0);
	ck_assert_int_eq(gpu_mem_info(g, &fr, &tot, NULL), 0);
	if (f) {
		/* Linux: the host's numbers */
		fclose(f);
		ck_assert_uint_gt(tot, (uint64_t)1 << 26);
		ck_assert_uint_gt(fr, 0);
		ck_assert_uint_le(fr, tot);
	}
	ck_assert_int_eq(gpu_mem_info(g, NULL, NULL, NULL), 0);
	/* gpu_reserve: nothing to hold on the CPU; bad requests refused */
	{
		struct gpu_reserve_req r;
		uint64_t b = 1;

		memset(&r, 0, sizeof r);
		r.n_rows = 64;
		r.k_max = 256;
		r.n_head = 4;
		r.n_head_kv = 2;
		r.head_dim = 16;
		r.span = 256;
		ck_assert_int_eq(gpu_reserve(g, &r, &b, NULL), 0);
		ck_assert_uint_eq(b, 0);
		r.n_head_kv = 3; /* 4 heads do not share 3 KV heads */
		ck_assert_int_eq(gpu_reserve(g, &r, NULL, NULL), GPU_E_INVALID);
		ck_assert_int_eq(gpu_reserve(g, NULL, NULL, NULL), GPU_E_INVALID);
	}
	/* no graphs on the CPU */
	ck_assert_int_eq(gpu_graph_begin(g, NULL), GPU_E_UNSUPPORTED);
	gpu_close(g);
}
END_TEST

static uint64_t dev_free(struct gpu *g)
{
	uint64_t fr = 0, tot = 0;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(gpu_mem_info(g, &fr, &tot, &d) == 0, "%s", d.msg);
	ck_assert_uint_gt(tot, 0);
	ck_assert_uint_le(fr, tot);
	return fr;
}

/* Open llama3 on CUDA, make a context, evaluate a few tokens, free. */
static void load_run_free(const char *dir)
{
	static const int32_t t[4] = { 1, 100, 200, 300 };
	struct llm_model *m = open_model(dir, LLM_BACKEND_CUDA);
	struct llm_context *c = NULL;
	float *lg = malloc((size_t)llm_model_n_vocab(m) * sizeof *lg);
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_context_new(m, 64, &c, &d), 0);
	ck_assert_msg(llm_context_eval(c, t, 4, LLM_LOGITS_LAST, lg, &d) == 0, "%s",
		      d.msg);
	ck_assert_msg(llm_context_eval(c, t, 1, LLM_LOGITS_LAST, lg, &d) == 0, "%s",
		      d.msg);
	ck_assert_msg(llm_context_eval(c, t + 1, 1, LLM_LOGITS_LAST, lg, &d) == 0,
		      "%s", d.msg);
	llm_context_free(c);
	llm_model_free(m);
	free(lg);
}

START_TEST(test_load_free_loop)
{
	char *dir = test_data_path("models/llama3");
	struct gpu *g = NULL;
	uint64_t start, now;
	int i;

	if (!have_cuda("load/free loop")) {
		free(dir);
		return;
	}
	ck_assert_int_eq(gpu_open(GPU_KIND_CUDA, NULL, &g, NULL), 0);
	/* once first: loads the kernels' modules, which stay */
	load_run_free(dir);
	start = dev_free(g);
	for (i = 0; i < 20; i++) {
		load_run_free(dir);
		now = dev_free(g);
		/* other processes may move the number a little; a leak of
		 * this model (~1 MiB of weights + KV + cuBLAS) per round
		 * adds up past 8 MiB over the loop */
		ck_assert_msg(now + ((uint64_t)8 << 20) >= start,
			      "round %d: %llu bytes free, %llu at the start", i,
			      (unsigned long long)now, (unsigned long long)start);
	}
	now = dev_free(g);
	fprintf(stderr, "note: load/free loop: %llu bytes free at the start, %llu "
		"after 20 rounds\n", (unsigned long long)start,
		(unsigned long long)now);
	gpu_close(g);
	free(dir);
}
END_TEST

/* Fill the device until less than the loader's margin is free: opening a
 * model must then fail with LLM_E_NOSPACE naming the sizes, leave nothing
 * allocated, and work again once the memory is back. */
START_TEST(test_no_space)
{
	enum { MAX_HOG = 4096 };
	char *dir = test_data_path("models/llama3");
	struct gpu *g = NULL;
	struct gpu_buf **hog = calloc(MAX_HOG, sizeof *hog);
	struct llm_model *m;
	struct diag d;
	uint64_t start, fr, before;
	size_t n_hog = 0, chunk;
	int rc;

	if (!have_cuda("no space")) {
		free(dir);
		free(hog);
		return;
	}
	ck_assert_int_eq(gpu_open(GPU_KIND_CUDA, NULL, &g, NULL), 0);
	load_run_free(dir); /* modules loaded */
	start = dev_free(g);
	/* leave about 512 MiB free: below the margin (256 MiB + 1/64) */
	for (fr = start; fr > ((uint64_t)768 << 20) && n_hog < MAX_HOG;
	     fr = dev_free(g)) {
		chunk = fr > ((uint64_t)9 << 30) ? (size_t)8 << 30 : (size_t)256 << 20;
		if (gpu_buf_new(g, GPU_DTYPE_I32, chunk / 4, &hog[n_hog], NULL) < 0)
			break;
		n_hog++;
	}
	before = dev_free(g);
	diag_clear(&d);
	m = try_open(dir, LLM_BACKEND_CUDA, &d);
	rc = m ? 0 : d.code;
	llm_model_free(m);
	while (n_hog > 0)
		gpu_buf_free(hog[--n_hog]);
	free(hog);
	ck_assert_msg(rc == LLM_E_NOSPACE, "open with %llu bytes free: rc %d (%s)",
		      (unsigned long long)before, rc, d.msg);
	ck_assert_msg(strstr(d.msg, "GiB free") && strstr(d.msg, "weights take"),
		      "message: %s", d.msg);
	fprintf(stderr, "note: %s\n", d.msg);
	/* everything back, and the model loads again */
	ck_assert_uint_ge(dev_free(g) + ((uint64_t)8 << 20), start);
	load_run_free(dir);
	gpu_close(g);
	free(dir);
}
END_TEST

Suite *cuda_models_suite(void)
{
	Suite *s = suite_create("cuda_models");
	TCase *tc = tcase_create("models");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_llama2);
	tcase_add_test(tc, test_llama3);
	tcase_add_test(tc, test_mistral);
	tcase_add_test(tc, test_mixtral);
	tcase_add_test(tc, test_qwen2);
	tcase_add_test(tc, test_qwen2moe);
	tcase_add_test(tc, test_qwen3);
	tcase_add_test(tc, test_qwen3moe);
	tcase_add_test(tc, test_f16_kv);
	tcase_add_test(tc, test_quant_kv);
	tcase_add_test(tc, test_vision_cuda);
	tcase_add_test(tc, test_qwen2_5_vl);
	tcase_add_test(tc, test_stories260k);
	tcase_add_test(tc, test_exl3_llama3);
	tcase_add_test(tc, test_graph_buckets);
	tcase_add_test(tc, test_graph_buckets_moe);
	tcase_add_test(tc, test_reserved_scratch);
	suite_add_tcase(s, tc);
	tc = tcase_create("exl3_moe"); /* its own case: memcheck runs it alone */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_exl3_moe);
	suite_add_tcase(s, tc);
	tc = tcase_create("memory");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_cpu_mem_info);
	tcase_add_test(tc, test_load_free_loop);
	tcase_add_test(tc, test_no_space);
	suite_add_tcase(s, tc);
	return s;
}
