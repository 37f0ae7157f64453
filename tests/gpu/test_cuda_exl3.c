/* tests/gpu/test_cuda_exl3.c — suite cuda_exl3: EXL3 linears on the CUDA
 * backend against the CPU backend (the oracle, itself checked bit-exactly
 * against ExLlamaV3's kernels by suite exl3), by relative L2 error
 * ||out - ref|| / ||ref|| <= 1e-3 (the CUDA path rounds the rotated
 * activations to f16 for the tensor cores: about 3e-4 expected).
 *
 *   - the fixture weights of tests/data/exl3/dequant_vectors.safetensors
 *     (3 codebooks x K = 1..8, 128 x 256), rows 1, 4, 16, 64, with and
 *     without bias, k_in < k and n_out < n (64 rows, here and below, run
 *     the prefill path);
 *   - random trellis data (any bits are a valid trellis) of 1024 x 2048 for
 *     every K and codebook at rows 1, 4, 16, 64, and the model shapes
 *     4096 x 4096, 4096 x 14336, 14336 x 4096 at several K and codebooks
 *     and rows 1, 4, 16, 17, 64;
 *   - the prefill path (rows > GPU_CUDA_EXL3_DQ_MIN_ROWS: dequantise to
 *     f16 + cuBLAS): its decoded W_hat column chunks bit-exact against the
 *     CPU tile decode (fixture and random weights, full and partial
 *     chunks); the linear at rows 32 / 33 (either side of the threshold),
 *     every K and codebook with k_in < k, n_out < n and bias, 600 and 1100
 *     rows (several row chunks), forced small column chunks (several
 *     chunks, a partial last one, chunks past n_out skipped), model shapes
 *     (4096 x 14336 at 512 rows, 14336 x 4096 at 513, 4096 x 4096, a
 *     4096 x 32768 head trimmed to 32000), and the GEMV path at 64 rows
 *     with the prefill path switched off;
 *   - gpu_exl3_matmul_multi with 2 and 3 parts (mixed K and codebooks,
 *     then one K and codebook: one GEMV launch for all parts; bias,
 *     trimmed outputs) at 1, 3, 16 rows (one input and one output launch)
 *     and 17, 40 (per-part fallback): each part bit-identical to its
 *     own gpu_exl3_matmul, except one GEMV launch for <= 16 rows (which
 *     may split k differently: within 1e-6 rel L2; with
 *     set_group_splits(0) bit-identical again), within 1e-3 of the CPU; shared outputs, 0
 *     or 4 parts and mixed k refused; gpu_exl3_swiglu at the same row
 *     counts bit-identical to multi + gpu_swiglu, within 1e-3 of the
 *     CPU, gate and up of different n refused;
 *   - gpu_exl3_residual (test_residual, test_residual_then): the fused
 *     tail (and the FFN's down_proj in the same op) against the CPU
 *     and against CUDA's own sequence of ops;
 *   - gpu_moe_ffn with EXL3 experts (test_moe_experts): the device
 *     dispatch and the host path against the CPU, graph replay, bad ids;
 *   - the output is poisoned (NaN) before each CUDA run, so an unwritten
 *     element fails.
 * TERN_GPU_BENCH=1 adds the decode-time timings (4096 x 14336, K = 2..6,
 * rows 1 and 8, median of 50 after warm-up, rotating over enough copies of
 * the weight to miss L2; and the mean of 200 back-to-back calls) for both
 * kernel versions, printed as "BENCH ..." lines, and checks that kernel 2
 * is bit-stable across runs and matches kernel 1 (within 1e-3 at <= 8
 * rows, where kernel 1's MUL1 skips W_hat's rounding; 1e-5 above); and
 * the prefill timings
 * (4096 x 14336 and 14336 x 4096, K = 4, 512 rows: the prefill path
 * against the GEMV path).
 *
 * Without a CUDA device every case prints "SKIP: no CUDA device" and
 * passes; with TERN_GPU_TESTS=1 a missing device is a failure.
 * TERN_TEST_SEED fixes the random seed (printed on failure).
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/exl3_ref.h"
#include "gpu/half.h"
#include "gpu/gpu.h"
#include "stfile.h"
#include "gpupair.h"
#include "testutil.h"
#ifdef HAVE_CUDA
#include "gpu/cuda/cuda_exl3.h"
#else
/* Built without the CUDA backend: gpu_pair_open finds no device and every
 * test returns before these would be asked. */
static int gpu_cuda_exl3_tail_ok(void) { return 0; }
static unsigned long gpu_cuda_exl3_tail_runs(void) { return 0; }
static unsigned long gpu_cuda_exl3_rot_runs(void) { return 0; }
static unsigned long gpu_cuda_exl3_rope_runs(void) { return 0; }
static unsigned long gpu_cuda_exl3_att_runs(void) { return 0; }
static size_t gpu_cuda_attention_splits(size_t n_rows, size_t n_head_kv,
					size_t span, size_t head_dim, int f16)
{
	(void)n_rows; (void)n_head_kv; (void)span; (void)head_dim; (void)f16;
	return 1;
}
static void gpu_cuda_exl3_set_group_splits(int off) { (void)off; }
#endif

/* f16 bits of a float in [-4, 4] (normal range; truncation is fine for
 * making test data, the value is what it is). */
static uint16_t f2h(float f)
{
	uint32_t u;
	uint16_t s;
	int e;

	memcpy(&u, &f, 4);
	s = (uint16_t)((u >> 16) & 0x8000u);
	e = (int)((u >> 23) & 255) - 127 + 15;
	if (e <= 0)
		return s;
	return (uint16_t)(s | (e << 10) | ((u >> 13) & 1023u));
}

static struct gpu_buf *mkbuf(struct gpu *g, size_t n, const float *v)
{
	struct gpu_buf *b = NULL;
	struct diag d;

	ck_assert_msg(gpu_buf_new(g, GPU_DTYPE_F32, n, &b, &d) == 0,
		      "gpu_buf_new: %s", diag_message(&d, "?"));
	if (v)
		ck_assert_int_eq(gpu_buf_write(b, 0, v, n, NULL), 0);
	return b;
}

/* One weight description with owned random data (or borrowed fixture data). */
struct wdesc {
	struct gpu_exl3_desc desc;
	void *own[4];
};

static void wdesc_random(struct wdesc *w, size_t k, size_t n, int bits,
			 int cb, int with_bias)
{
	size_t nt = (k / 16) * (n / 16) * 16 * (size_t)bits, i;
	uint16_t *tr = malloc(nt * 2), *suh = malloc(k * 2), *svh = malloc(n * 2);
	uint16_t *bias = with_bias ? malloc(n * 2) : NULL;

	ck_assert(tr && suh && svh && (!with_bias || bias));
	for (i = 0; i < nt; i++)
		tr[i] = (uint16_t)test_urand32();
	/* suh small as in real models (sign x scale / codebook RMS) */
	for (i = 0; i < k; i++)
		suh[i] = f2h(test_frand() * 0.05f);
	for (i = 0; i < n; i++)
		svh[i] = f2h(test_frand() * 1.5f);
	if (bias)
		for (i = 0; i < n; i++)
			bias[i] = f2h(test_frand());
	memset(w, 0, sizeof *w);
	w->desc.k = k;
	w->desc.n = n;
	w->desc.bits = bits;
	w->desc.cb = (enum gpu_exl3_cb)cb;
	w->desc.trellis = w->own[0] = tr;
	w->desc.suh = w->own[1] = suh;
	w->desc.svh = w->own[2] = svh;
	w->desc.bias = w->own[3] = bias;
}

static void wdesc_free(struct wdesc *w)
{
	int i;

	for (i = 0; i < 4; i++)
		free(w->own[i]);
}

/* CUDA vs CPU on one weight: rows of random x, k_in <= k, n_out <= n. */
static double compare(struct gpu_pair *p, const struct gpu_exl3_desc *desc,
		      size_t rows, size_t k_in, size_t n_out)
{
	struct gpu_exl3_weight *wc = NULL, *wg = NULL;
	struct gpu_buf *xc, *xg, *oc, *og;
	float *x = malloc(rows * k_in * sizeof *x);
	float *rc_ = malloc(rows * n_out * sizeof *rc_);
	float *rg = malloc(rows * n_out * sizeof *rg);
	double num = 0, den = 0;
	size_t i;
	struct diag d;

	ck_assert(x && rc_ && rg);
	for (i = 0; i < rows * k_in; i++)
		x[i] = test_frand() * 2.0f;
	ck_assert_msg(gpu_exl3_weight_new(p->cpu, desc, &wc, &d) == 0, "cpu: %s",
		      diag_message(&d, "?"));
	ck_assert_msg(gpu_exl3_weight_new(p->cuda, desc, &wg, &d) == 0,
		      "cuda upload: %s", diag_message(&d, "?"));
	xc = mkbuf(p->cpu, rows * k_in, x);
	xg = mkbuf(p->cuda, rows * k_in, x);
	oc = mkbuf(p->cpu, rows * n_out, NULL);
	for (i = 0; i < rows * n_out; i++)
		rg[i] = NAN;
	og = mkbuf(p->cuda, rows * n_out, rg);
	ck_assert_msg(gpu_exl3_matmul(p->cpu, oc, xc, wc, rows, k_in, n_out, &d) == 0,
		      "cpu matmul: %s", diag_message(&d, "?"));
	ck_assert_msg(gpu_exl3_matmul(p->cuda, og, xg, wg, rows, k_in, n_out, &d) == 0,
		      "cuda matmul: %s", diag_message(&d, "?"));
	ck_assert_msg(gpu_sync(p->cuda, &d) == 0, "sync: %s", diag_message(&d, "?"));
	ck_assert_int_eq(gpu_buf_read(oc, 0, rc_, rows * n_out, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(og, 0, rg, rows * n_out, NULL), 0);
	for (i = 0; i < rows * n_out; i++) {
		double e = (double)rg[i] - (double)rc_[i];

		ck_assert_msg(isfinite(rg[i]),
			      "%zux%zu K=%d cb=%d rows=%zu: out[%zu] = %g (seed %llu)",
			      desc->k, desc->n, desc->bits, (int)desc->cb, rows, i,
			      (double)rg[i], (unsigned long long)test_seed);
		num += e * e;
		den += (double)rc_[i] * rc_[i];
	}
	gpu_buf_free(xc);
	gpu_buf_free(xg);
	gpu_buf_free(oc);
	gpu_buf_free(og);
	gpu_exl3_weight_free(wc);
	gpu_exl3_weight_free(wg);
	free(x);
	free(rc_);
	free(rg);
	ck_assert(den > 0);
	return sqrt(num / den);
}

static void expect(struct gpu_pair *p, const struct gpu_exl3_desc *desc,
		   size_t rows, size_t k_in, size_t n_out)
{
	double e = compare(p, desc, rows, k_in, n_out);

	ck_assert_msg(e <= 1e-3,
		      "%zux%zu K=%d cb=%d rows=%zu k_in=%zu n_out=%zu bias=%d: "
		      "rel L2 %.3g > 1e-3 (seed %llu)", desc->k, desc->n,
		      desc->bits, (int)desc->cb, rows, k_in, n_out,
		      desc->bias != NULL, e, (unsigned long long)test_seed);
}

/* ---- the fixture ---------------------------------------------------------- */

/* A 16-bit tensor of exactly n_elems elements. */
static const void *st_get(const struct test_st *s, const char *name,
			  const char *dtype, size_t n_elems)
{
	size_t n_bytes;
	const void *p = test_st_get(s, name, dtype, -1, NULL, &n_bytes);

	ck_assert_uint_eq(n_bytes, n_elems * 2);
	return p;
}

/* The fixture's 128 x 256 layer of codebook CB at BITS bits (tensors
 * cb<CB>.k<BITS>.{trellis,suh,svh}) into DESC, no bias. */
static void fixture_desc(const struct test_st *s, struct gpu_exl3_desc *desc,
			 int cb, int bits)
{
	char name[64];

	memset(desc, 0, sizeof *desc);
	desc->k = 128;
	desc->n = 256;
	desc->bits = bits;
	desc->cb = (enum gpu_exl3_cb)cb;
	snprintf(name, sizeof name, "cb%d.k%d.trellis", cb, bits);
	desc->trellis = st_get(s, name, "I16", 8 * 16 * 16 * (size_t)bits);
	snprintf(name, sizeof name, "cb%d.k%d.suh", cb, bits);
	desc->suh = st_get(s, name, "F16", 128);
	snprintf(name, sizeof name, "cb%d.k%d.svh", cb, bits);
	desc->svh = st_get(s, name, "F16", 256);
}

START_TEST(test_fixture)
{
	static const size_t rows[] = { 1, 4, 16, 64 };
	struct gpu_pair p;
	struct test_st s;
	uint16_t bias[256];
	int cb, bits, i, kv;

	if (!gpu_pair_open(&p, 0))
		return;
	test_st_open(&s, "exl3/dequant_vectors.safetensors");
	for (i = 0; i < 256; i++)
		bias[i] = f2h(test_frand());
	/* both CUDA kernel versions (3-launch default and the fused one) */
	for (kv = 1; kv <= 2; kv++)
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++) {
			struct gpu_exl3_desc desc;
			size_t r;

#ifdef HAVE_CUDA
			gpu_cuda_exl3_set_kernel(kv);
#endif
			fixture_desc(&s, &desc, cb, bits);
			for (r = 0; r < sizeof rows / sizeof rows[0]; r++)
				expect(&p, &desc, rows[r], 128, 256);
			/* bias, zero-extended input, trimmed output */
			desc.bias = bias;
			expect(&p, &desc, 5, 128, 256);
			expect(&p, &desc, 3, 100, 200);
			expect(&p, &desc, 20, 77, 129);
		}
#ifdef HAVE_CUDA
	gpu_cuda_exl3_set_kernel(1);
#endif
	test_st_close(&s);
	gpu_pair_close(&p);
}
END_TEST

START_TEST(test_random_all_k)
{
	static const size_t rows[] = { 1, 4, 16, 64 };
	struct gpu_pair p;
	int cb, bits;
	size_t r;

	if (!gpu_pair_open(&p, 0))
		return;
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++) {
			struct wdesc w;

			wdesc_random(&w, 1024, 2048, bits, cb, bits & 1);
			for (r = 0; r < sizeof rows / sizeof rows[0]; r++)
				expect(&p, &w.desc, rows[r], 1024, 2048);
			wdesc_free(&w);
		}
	gpu_pair_close(&p);
}
END_TEST

START_TEST(test_random_model_shapes)
{
	static const struct {
		size_t k, n;
		int bits, cb;
		size_t rows[4];
	} cs[] = {
		{ 4096, 4096, 4, 2, { 1, 4, 16, 64 } },
		{ 4096, 4096, 2, 0, { 1, 16, 0, 0 } },
		{ 4096, 14336, 2, 2, { 1, 8, 0, 0 } },
		{ 4096, 14336, 3, 1, { 1, 16, 0, 0 } },
		{ 4096, 14336, 4, 2, { 1, 4, 17, 64 } },
		{ 4096, 14336, 5, 0, { 1, 16, 0, 0 } },
		{ 4096, 14336, 6, 2, { 1, 16, 0, 0 } },
		{ 4096, 14336, 8, 1, { 1, 0, 0, 0 } },
		{ 14336, 4096, 4, 2, { 1, 16, 0, 0 } },
		{ 14336, 4096, 7, 0, { 1, 0, 0, 0 } },
	};
	struct gpu_pair p;
	size_t c, r;

	if (!gpu_pair_open(&p, 0))
		return;
	for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
		struct wdesc w;

		wdesc_random(&w, cs[c].k, cs[c].n, cs[c].bits, cs[c].cb, (int)(c & 1));
		for (r = 0; r < 4 && cs[c].rows[r]; r++)
			expect(&p, &w.desc, cs[c].rows[r], cs[c].k, cs[c].n);
		wdesc_free(&w);
	}
	gpu_pair_close(&p);
}
END_TEST

/* ---- several weights sharing x (gpu_exl3_matmul_multi) ------------------- */

/* q/k/v- and gate/up-like groups (mixed bits, codebooks, biases, trimmed
 * outputs): on CUDA every part must equal its own gpu_exl3_matmul bit for
 * bit, or up to the order of its partial sums where one GEMV launch for
 * <= 16 rows splits k for the whole group; the per-part path above 16
 * rows; and the CPU within 1e-3; bad groups are refused. */
START_TEST(test_multi)
{
	static const struct {
		size_t n, n_out;
		int bits, cb, bias;
	} qkv[3] = { { 1024, 1024, 4, 2, 0 }, { 256, 200, 3, 0, 1 },
		     { 256, 256, 5, 1, 0 } };
	static const size_t rows[] = { 1, 3, 16, 17, 40 };
	const size_t k = 1024, k_in = 1000;
	struct gpu_pair p;
	struct wdesc w[3];
	struct gpu_exl3_weight *wc[3], *wg[3];
	struct gpu_buf *oc[3], *og[3], *os[3], *xc, *xg;
	struct gpu_exl3_part pc[3], pg[3];
	float *x, *a, *b, *r;
	size_t ri, i;
	int j, np, same;
	struct diag d;

	if (!gpu_pair_open(&p, 0))
		return;
	/* same = 0: mixed bits and codebooks (a GEMV launch per part); 1: all
	 * K = 4 MUL1 (one GEMV launch for every part) */
	for (same = 0; same < 2; same++) {
		for (j = 0; j < 3; j++) {
			wdesc_random(&w[j], k, qkv[j].n, same ? 4 : qkv[j].bits,
				     same ? 2 : qkv[j].cb, qkv[j].bias);
			ck_assert_int_eq(gpu_exl3_weight_new(p.cpu, &w[j].desc, &wc[j], &d), 0);
			ck_assert_int_eq(gpu_exl3_weight_new(p.cuda, &w[j].desc, &wg[j], &d), 0);
		}
		for (np = 2; np <= 3; np++)
			for (ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
				const size_t n = rows[ri];

				x = malloc(n * k_in * sizeof *x);
				ck_assert(x);
				for (i = 0; i < n * k_in; i++)
					x[i] = test_frand() * 2.0f;
				xc = mkbuf(p.cpu, n * k_in, x);
				xg = mkbuf(p.cuda, n * k_in, x);
				for (j = 0; j < np; j++) {
					oc[j] = mkbuf(p.cpu, n * qkv[j].n_out, NULL);
					og[j] = mkbuf(p.cuda, n * qkv[j].n_out, NULL);
					os[j] = mkbuf(p.cuda, n * qkv[j].n_out, NULL);
					pc[j].out = oc[j];
					pc[j].w = wc[j];
					pc[j].n_out = qkv[j].n_out;
					pg[j] = pc[j];
					pg[j].out = og[j];
					pg[j].w = wg[j];
				}
				ck_assert_msg(gpu_exl3_matmul_multi(p.cpu, xc, n, k_in, pc, np, &d) == 0,
					      "cpu: %s", diag_message(&d, "?"));
				ck_assert_msg(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in, pg, np, &d) == 0,
					      "cuda: %s", diag_message(&d, "?"));
				for (j = 0; j < np; j++)
					ck_assert_int_eq(gpu_exl3_matmul(p.cuda, os[j], xg, wg[j], n,
									 k_in, qkv[j].n_out, &d), 0);
				ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
				for (j = 0; j < np; j++) {
					const size_t cnt = n * qkv[j].n_out;
					double num = 0, den = 0;

					a = malloc(cnt * sizeof *a);
					b = malloc(cnt * sizeof *b);
					r = malloc(cnt * sizeof *r);
					ck_assert(a && b && r);
					ck_assert_int_eq(gpu_buf_read(og[j], 0, a, cnt, NULL), 0);
					ck_assert_int_eq(gpu_buf_read(os[j], 0, b, cnt, NULL), 0);
					ck_assert_int_eq(gpu_buf_read(oc[j], 0, r, cnt, NULL), 0);
					/* one GEMV launch for <= 16 rows splits k for
					 * the whole launch: the summation order of
					 * the slices' f32 partials may differ from
					 * the weight's own call (~1e-7 relative at k
					 * = 1024, growing like sqrt(k); about ten
					 * times that for MUL1 up to 8 rows, whose
					 * K_INV * acc + K_BIAS * sum(x) per slice
					 * cancels most of its magnitude: 1e-5);
					 * separate launches and the per-part path
					 * keep the weight's own bits */
					if (same && n <= 16) {
						for (i = 0; i < cnt; i++) {
							num += ((double)a[i] - b[i]) *
							       ((double)a[i] - b[i]);
							den += (double)b[i] * b[i];
						}
						ck_assert_msg(den > 0 && sqrt(num / den) <= 1e-5,
							      "%d parts, %zu rows: part %d differs "
							      "from its own matmul: rel L2 %.3g "
							      "(seed %llu)", np, n, j,
							      sqrt(num / den),
							      (unsigned long long)test_seed);
						num = den = 0;
					} else
						ck_assert_msg(memcmp(a, b, cnt * sizeof *a) == 0,
							      "%d parts, %zu rows: part %d differs "
							      "from its own matmul (seed %llu)", np,
							      n, j, (unsigned long long)test_seed);
					for (i = 0; i < cnt; i++) {
						num += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
						den += (double)r[i] * r[i];
					}
					ck_assert_msg(den > 0 && sqrt(num / den) <= 1e-3,
						      "%d parts, %zu rows, part %d: rel L2 %.3g vs "
						      "the CPU (seed %llu)", np, n, j,
						      sqrt(num / den), (unsigned long long)test_seed);
					free(a);
					free(b);
					free(r);
				}
				/* one launch, each part with its own k-slices
				 * (the fallback when the workspace has no room
				 * for the group's): its own call's bits */
				if (same && n <= 16) {
					gpu_cuda_exl3_set_group_splits(0);
					ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in,
									       pg, np, &d), 0);
					gpu_cuda_exl3_set_group_splits(1);
					ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
					for (j = 0; j < np; j++) {
						const size_t cnt = n * qkv[j].n_out;

						a = malloc(cnt * sizeof *a);
						b = malloc(cnt * sizeof *b);
						ck_assert(a && b);
						ck_assert_int_eq(gpu_buf_read(og[j], 0, a, cnt, NULL), 0);
						ck_assert_int_eq(gpu_buf_read(os[j], 0, b, cnt, NULL), 0);
						ck_assert_msg(memcmp(a, b, cnt * sizeof *a) == 0,
							      "%d parts, %zu rows, own slices in one "
							      "launch: part %d differs from its own "
							      "matmul (seed %llu)", np, n, j,
							      (unsigned long long)test_seed);
						free(a);
						free(b);
					}
				}
				/* refused: a shared output, too many parts, mixed k */
				pg[1].out = pg[0].out;
				ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in, pg, np,
								       NULL), GPU_E_INVALID);
				pg[1].out = og[1];
				ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in, pg, 4,
								       NULL), GPU_E_INVALID);
				ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in, pg, 0,
								       NULL), GPU_E_INVALID);
				for (j = 0; j < np; j++) {
					gpu_buf_free(oc[j]);
					gpu_buf_free(og[j]);
					gpu_buf_free(os[j]);
				}
				gpu_buf_free(xc);
				gpu_buf_free(xg);
				free(x);
			}
		/* gpu_exl3_swiglu (parts 1 and 2: one shape, 200 of 256 outputs):
		 * bit-identical to multi + gpu_swiglu on CUDA, CPU within 1e-3 */
		for (ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
			const size_t n = rows[ri], cnt = n * 200;
			struct gpu_buf *sg, *ug, *ag, *bg, *sc, *uc;
			struct gpu_exl3_part pm[2];
			double num = 0, den = 0;

			x = malloc(n * k_in * sizeof *x);
			a = malloc(cnt * sizeof *a);
			b = malloc(cnt * sizeof *b);
			r = malloc(cnt * sizeof *r);
			ck_assert(x && a && b && r);
			for (i = 0; i < n * k_in; i++)
				x[i] = test_frand() * 2.0f;
			xc = mkbuf(p.cpu, n * k_in, x);
			xg = mkbuf(p.cuda, n * k_in, x);
			sg = mkbuf(p.cuda, cnt, NULL);
			ug = mkbuf(p.cuda, cnt, NULL);
			ag = mkbuf(p.cuda, cnt, NULL);
			bg = mkbuf(p.cuda, cnt, NULL);
			sc = mkbuf(p.cpu, cnt, NULL);
			uc = mkbuf(p.cpu, cnt, NULL);
			ck_assert_msg(gpu_exl3_swiglu(p.cuda, sg, ug, xg, wg[1], wg[2], n, k_in,
						      200, &d) == 0, "cuda swiglu: %s",
				      diag_message(&d, "?"));
			pm[0].out = ag;
			pm[0].w = wg[1];
			pm[0].n_out = 200;
			pm[1].out = bg;
			pm[1].w = wg[2];
			pm[1].n_out = 200;
			ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, xg, n, k_in, pm, 2, &d), 0);
			ck_assert_int_eq(gpu_swiglu(p.cuda, ag, ag, bg, cnt, &d), 0);
			ck_assert_int_eq(gpu_exl3_swiglu(p.cpu, sc, uc, xc, wc[1], wc[2], n, k_in,
							 200, &d), 0);
			ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
			ck_assert_int_eq(gpu_buf_read(sg, 0, a, cnt, NULL), 0);
			ck_assert_int_eq(gpu_buf_read(ag, 0, b, cnt, NULL), 0);
			ck_assert_int_eq(gpu_buf_read(sc, 0, r, cnt, NULL), 0);
			ck_assert_msg(memcmp(a, b, cnt * sizeof *a) == 0,
				      "swiglu, %zu rows: fused differs from multi + swiglu "
				      "(seed %llu)", n, (unsigned long long)test_seed);
			for (i = 0; i < cnt; i++) {
				num += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
				den += (double)r[i] * r[i];
			}
			ck_assert_msg(den > 0 && sqrt(num / den) <= 1e-3,
				      "swiglu, %zu rows: rel L2 %.3g vs the CPU (seed %llu)", n,
				      sqrt(num / den), (unsigned long long)test_seed);
			/* gate and up of different n */
			ck_assert_int_eq(gpu_exl3_swiglu(p.cuda, sg, ug, xg, wg[0], wg[2], n,
							 k_in, 200, NULL), GPU_E_INVALID);
			gpu_buf_free(sg);
			gpu_buf_free(ug);
			gpu_buf_free(ag);
			gpu_buf_free(bg);
			gpu_buf_free(sc);
			gpu_buf_free(uc);
			gpu_buf_free(xc);
			gpu_buf_free(xg);
			free(x);
			free(a);
			free(b);
			free(r);
		}
		{
			/* a weight of another k in the group */
			struct wdesc w2;
			struct gpu_exl3_weight *wk = NULL;
			struct gpu_buf *x2 = mkbuf(p.cuda, 1000, NULL);
			struct gpu_buf *o1 = mkbuf(p.cuda, 1024, NULL), *o2 = mkbuf(p.cuda, 256, NULL);
			struct gpu_exl3_part pk[2] = { { o1, wg[0], 1024 }, { o2, NULL, 256 } };

			wdesc_random(&w2, 2048, 256, 4, 2, 0);
			ck_assert_int_eq(gpu_exl3_weight_new(p.cuda, &w2.desc, &wk, &d), 0);
			pk[1].w = wk;
			diag_clear(&d);
			ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, x2, 1, 1000, pk, 2, &d),
					 GPU_E_INVALID);
			ck_assert(strstr(diag_message(&d, ""), "k 2048") != NULL);
			gpu_exl3_weight_free(wk);
			wdesc_free(&w2);
			gpu_buf_free(x2);
			gpu_buf_free(o1);
			gpu_buf_free(o2);
		}
		for (j = 0; j < 3; j++) {
			gpu_exl3_weight_free(wc[j]);
			gpu_exl3_weight_free(wg[j]);
			wdesc_free(&w[j]);
		}
	}
	gpu_pair_close(&p);
}
END_TEST

/* ---- the prefill path ------------------------------------------------------ */

/* Column chunks of weights uploaded from now on (0: automatic). */
static void set_dq_cols(size_t nc)
{
#ifdef HAVE_CUDA
	gpu_cuda_exl3_set_dq_cols(nc);
#else
	(void)nc;
#endif
}

#ifdef HAVE_CUDA
/* The CUDA decode of columns [c0, c0 + nc) of desc's weight (uploaded with
 * column chunks of nc_up, 0 = automatic) equals the CPU tile decode bit
 * for bit. */
static void expect_decode(struct gpu_pair *p, const struct gpu_exl3_desc *desc,
			  size_t nc_up, size_t c0, size_t nc)
{
	const size_t k = desc->k, n = desc->n, ntn = n / 16;
	const size_t tile_bytes = 32 * (size_t)desc->bits;
	const float *lut = gpu_exl3_lut((int)desc->cb);
	struct gpu_exl3_weight *wg = NULL;
	uint16_t *got = malloc(nc * k * sizeof *got);
	float *T = malloc(16 * 16 * sizeof *T);
	size_t tk, tn, r, c, bad = 0;
	struct diag d;

	ck_assert(got && T && lut);
	set_dq_cols(nc_up);
	ck_assert_msg(gpu_exl3_weight_new(p->cuda, desc, &wg, &d) == 0,
		      "cuda upload: %s", diag_message(&d, "?"));
	set_dq_cols(0);
	ck_assert_msg(gpu_cuda_exl3_dq_read(p->cuda, wg, c0, nc, got, &d) == 0,
		      "dq_read: %s", diag_message(&d, "?"));
	for (tk = 0; tk < k / 16; tk++)
		for (tn = c0 / 16; tn < (c0 + nc) / 16; tn++) {
			gpu_exl3_tile_decode((const unsigned char *)desc->trellis +
					     (tk * ntn + tn) * tile_bytes,
					     desc->bits, lut, T, 16);
			for (r = 0; r < 16; r++)
				for (c = 0; c < 16; c++) {
					const size_t cc = tn * 16 + c - c0;
					const float g = test_from_f16(got[cc * k + tk * 16 + r]);

					if (g != T[r * 16 + c] && bad++ < 4)
						fprintf(stderr,
							"W_hat[%zu][%zu] = %g, CPU %g\n",
							tk * 16 + r, tn * 16 + c,
							(double)g, (double)T[r * 16 + c]);
				}
		}
	ck_assert_msg(bad == 0,
		      "%zux%zu K=%d cb=%d columns %zu + %zu: %zu elements of "
		      "W_hat differ from the CPU decode (seed %llu)", k, n,
		      desc->bits, (int)desc->cb, c0, nc, bad,
		      (unsigned long long)test_seed);
	gpu_exl3_weight_free(wg);
	free(got);
	free(T);
}
#endif

START_TEST(test_prefill_decode)
{
#ifdef HAVE_CUDA
	struct gpu_pair p;
	struct test_st s;
	int cb, bits;

	if (!gpu_pair_open(&p, 0))
		return;
	/* the fixture (128 x 256, one chunk of 256 columns; then 128) */
	test_st_open(&s, "exl3/dequant_vectors.safetensors");
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++) {
			struct gpu_exl3_desc desc;

			fixture_desc(&s, &desc, cb, bits);
			expect_decode(&p, &desc, 0, 0, 256);
			expect_decode(&p, &desc, 128, 128, 128);
		}
	test_st_close(&s);
	/* random trellis, 1024 x 640 in chunks of 256: the first, a middle
	 * and the partial last chunk */
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++) {
			struct wdesc w;

			wdesc_random(&w, 1024, 640, bits, cb, 0);
			expect_decode(&p, &w.desc, 256, 0, 256);
			expect_decode(&p, &w.desc, 256, 256, 256);
			expect_decode(&p, &w.desc, 256, 512, 128);
			wdesc_free(&w);
		}
	gpu_pair_close(&p);
#else
	printf("SKIP: EXL3 prefill decode (no CUDA in this build)\n");
#endif
}
END_TEST

START_TEST(test_prefill)
{
	static const struct {
		size_t k, n;
		int bits, cb, bias;
		size_t cols;        /* forced column chunk, 0 = automatic */
		size_t rows, k_in, n_out;
	} cs[] = {
		/* several row chunks (600: 2 x 300, 1100: 3 x 367/366) */
		{ 1024, 2048, 3, 2, 1, 0, 600, 1000, 2000 },
		{ 1024, 2048, 6, 0, 0, 0, 1100, 1024, 2048 },
		/* forced column chunks of 384: 5 full + a partial one of 128 */
		{ 1024, 2048, 4, 0, 1, 384, 100, 1000, 1900 }, /* last skipped */
		{ 1024, 2048, 4, 0, 1, 384, 100, 1000, 2000 }, /* last partial */
		{ 1024, 2048, 4, 1, 0, 384, 600, 1024, 2048 },
		{ 1024, 2048, 2, 1, 1, 128, 40, 1024, 1025 },
		{ 2048, 1024, 5, 2, 0, 256, 513, 2000, 1024 },
		/* model shapes: 4 x 3584 columns at 512 rows; 4 x 1024 columns
		 * at 2 x 257/256 rows; one chunk (decoded once) over 2 row
		 * chunks; a head of 8 x 4096 columns trimmed to 32000 */
		{ 4096, 14336, 4, 2, 0, 0, 512, 4096, 14336 },
		{ 14336, 4096, 3, 1, 1, 0, 513, 14336, 4096 },
		{ 4096, 4096, 5, 0, 1, 0, 700, 4000, 4096 },
		{ 4096, 32768, 6, 2, 0, 0, 48, 4096, 32000 },
	};
	static const size_t rows[] = { 32, 33, 64 };
	struct gpu_pair p;
	int cb, bits;
	size_t c, r;

	if (!gpu_pair_open(&p, 0))
		return;
	/* every K and codebook: both sides of the threshold, padding, bias */
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++) {
			struct wdesc w;

			wdesc_random(&w, 1024, 2048, bits, cb, bits & 1);
			for (r = 0; r < sizeof rows / sizeof rows[0]; r++)
				expect(&p, &w.desc, rows[r], 1024, 2048);
			expect(&p, &w.desc, 33, 1000, 1900);
			wdesc_free(&w);
		}
	for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
		struct wdesc w;

		wdesc_random(&w, cs[c].k, cs[c].n, cs[c].bits, cs[c].cb, cs[c].bias);
		set_dq_cols(cs[c].cols);
		expect(&p, &w.desc, cs[c].rows, cs[c].k_in, cs[c].n_out);
		set_dq_cols(0);
		wdesc_free(&w);
	}
#ifdef HAVE_CUDA
	/* the GEMV path still serves any row count */
	{
		struct wdesc w;

		wdesc_random(&w, 1024, 2048, 4, 2, 1);
		gpu_cuda_exl3_set_dq(0);
		expect(&p, &w.desc, 64, 1000, 2000);
		gpu_cuda_exl3_set_dq(1);
		wdesc_free(&w);
	}
#endif
	gpu_pair_close(&p);
}
END_TEST

START_TEST(test_bench)
{
#ifdef HAVE_CUDA
	const char *env = getenv("TERN_GPU_BENCH");
	const size_t k = 4096, n = 14336;
	struct gpu_pair p;
	int bits;

	if (!env || strcmp(env, "1")) {
		printf("SKIP: EXL3 timings (set TERN_GPU_BENCH=1)\n");
		return;
	}
	if (!gpu_pair_open(&p, 0))
		return;
	printf("BENCH exl3 on %s\n", gpu_describe(p.cuda));
	for (bits = 2; bits <= 6; bits++) {
		/* enough copies for > 200 MB of trellis: misses a 50 MB L2 */
		const double tr_bytes = (double)k * n * bits / 8.0;
		const double bytes = tr_bytes + 4.0 * (k + n);
		int n_w = (int)(200e6 / tr_bytes) + 1, i;
		struct gpu_exl3_weight **ws = calloc((size_t)n_w, sizeof *ws);
		struct wdesc w;
		size_t rows;
		struct diag d;

		ck_assert(ws != NULL);
		wdesc_random(&w, k, n, bits, GPU_EXL3_CB_MUL1, 0);
		for (i = 0; i < n_w; i++)
			ck_assert_msg(gpu_exl3_weight_new(p.cuda, &w.desc, &ws[i], &d) == 0,
				      "upload: %s", diag_message(&d, "?"));
		for (rows = 1; rows <= 8; rows += 7) {
			struct gpu_buf *x = mkbuf(p.cuda, rows * k, NULL);
			struct gpu_buf *o = mkbuf(p.cuda, rows * n, NULL);
			float *r1 = malloc(rows * n * sizeof *r1);
			float *r2 = malloc(rows * n * sizeof *r2);
			int kv, same = 1;
			double num = 0, den = 0;
			size_t j;

			ck_assert(r1 && r2);
			ck_assert_int_eq(gpu_buf_fill_random(p.cuda, x, 7, 1.0f, NULL), 0);
			/* kernel 1 (the default), kernel 2 (fused, experimental) */
			for (kv = 1; kv <= 2; kv++) {
				double ms_op = 0, ms_gv = 0, ms_st = 0;

				gpu_cuda_exl3_set_kernel(kv);
				ck_assert_msg(gpu_cuda_exl3_bench(p.cuda, ws, n_w, o, x, rows,
								  10, 50, &ms_op, &ms_gv,
								  &d) == 0,
					      "bench: %s", diag_message(&d, "?"));
				ck_assert_msg(gpu_cuda_exl3_bench_stream(p.cuda, ws, n_w, o, x,
									 rows, 200, &ms_st,
									 &d) == 0,
					      "bench: %s", diag_message(&d, "?"));
				printf("BENCH exl3 kernel %d %zux%zu K=%d mul1 rows=%zu: "
				       "gemv %.2f us (%.0f GB/s), op %.2f us (%.0f GB/s), "
				       "op back-to-back %.2f us (%.0f GB/s)\n", kv, k, n,
				       bits, rows, ms_gv * 1e3,
				       bytes / (ms_gv * 1e-3) / 1e9, ms_op * 1e3,
				       bytes / (ms_op * 1e-3) / 1e9, ms_st * 1e3,
				       bytes / (ms_st * 1e-3) / 1e9);
				/* one more call on ws[0]: kernel 1's result in r1;
				 * kernel 2's twice, which must agree bit for bit */
				ck_assert_int_eq(gpu_exl3_matmul(p.cuda, o, x, ws[0], rows, k,
								 n, &d), 0);
				ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
				ck_assert_int_eq(gpu_buf_read(o, 0, kv == 1 ? r1 : r2,
							      rows * n, NULL), 0);
			}
			ck_assert_int_eq(gpu_exl3_matmul(p.cuda, o, x, ws[0], rows, k, n,
							 &d), 0);
			ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
			for (j = 0; j < rows * n; j++) {
				double e = (double)r2[j] - (double)r1[j];

				num += e * e;
				den += (double)r1[j] * r1[j];
			}
			{
				float *r3 = malloc(rows * n * sizeof *r3);

				ck_assert(r3 != NULL);
				ck_assert_int_eq(gpu_buf_read(o, 0, r3, rows * n, NULL), 0);
				same = !memcmp(r2, r3, rows * n * sizeof *r3);
				free(r3);
			}
			ck_assert_msg(same, "kernel 2 is not bit-stable across runs");
			/* kernel 1 multiplies MUL1 weights up to 8 rows with
			 * the codebook's exact values (XL_AFFINE), kernel 2
			 * with W_hat (f16-rounded): ~2e-4 apart */
			ck_assert_msg(den > 0 && sqrt(num / den) <= (rows <= 8 ? 1e-3 : 1e-5),
				      "kernel 1 vs 2: rel L2 %.3g", sqrt(num / den));
			printf("BENCH exl3 kernel 1 vs 2 rows=%zu: rel L2 %.3g, "
			       "kernel 2 repeat bit-identical\n", rows, sqrt(num / den));
			free(r1);
			free(r2);
			gpu_buf_free(x);
			gpu_buf_free(o);
		}
		for (i = 0; i < n_w; i++)
			gpu_exl3_weight_free(ws[i]);
		free(ws);
		wdesc_free(&w);
	}
	gpu_cuda_exl3_set_kernel(1);
	/* prefill: 512 rows through the prefill path and the GEMV path */
	for (bits = 0; bits < 2; bits++) { /* bits: which of the two shapes */
		const size_t pk = bits ? 14336 : 4096, pn = bits ? 4096 : 14336;
		const size_t rows = 512;
		const double flop = 2.0 * (double)rows * (double)pk * (double)pn;
		struct gpu_exl3_weight *wp = NULL;
		struct gpu_buf *x = mkbuf(p.cuda, rows * pk, NULL);
		struct gpu_buf *o = mkbuf(p.cuda, rows * pn, NULL);
		double ms_dq = 0, ms_gv = 0;
		struct wdesc w;
		struct diag d;

		wdesc_random(&w, pk, pn, 4, GPU_EXL3_CB_MUL1, 0);
		ck_assert_msg(gpu_exl3_weight_new(p.cuda, &w.desc, &wp, &d) == 0,
			      "upload: %s", diag_message(&d, "?"));
		ck_assert_int_eq(gpu_buf_fill_random(p.cuda, x, 7, 1.0f, NULL), 0);
		ck_assert_msg(gpu_cuda_exl3_bench_stream(p.cuda, &wp, 1, o, x, rows,
							 20, &ms_dq, &d) == 0,
			      "bench: %s", diag_message(&d, "?"));
		gpu_cuda_exl3_set_dq(0);
		ck_assert_msg(gpu_cuda_exl3_bench_stream(p.cuda, &wp, 1, o, x, rows,
							 3, &ms_gv, &d) == 0,
			      "bench: %s", diag_message(&d, "?"));
		gpu_cuda_exl3_set_dq(1);
		printf("BENCH exl3 prefill %zux%zu K=4 mul1 rows=%zu: dequant + "
		       "cuBLAS %.3f ms (%.0f TFLOP/s), GEMV path %.3f ms "
		       "(%.0f TFLOP/s)\n", pk, pn, rows, ms_dq, flop / ms_dq / 1e9,
		       ms_gv, flop / ms_gv / 1e9);
		gpu_exl3_weight_free(wp);
		gpu_buf_free(x);
		gpu_buf_free(o);
		wdesc_free(&w);
	}
	gpu_pair_close(&p);
#else
	printf("SKIP: EXL3 timings (no CUDA in this build)\n");
#endif
}
END_TEST

/* ---- gpu_exl3_residual ------------------------------------------------- */

static double rel_l2(const float *a, const float *r, size_t n);

static float *rd(struct gpu_buf *b, size_t n)
{
	float *v = malloc(n * sizeof *v);

	ck_assert(v);
	ck_assert_int_eq(gpu_buf_read(b, 0, v, n, NULL), 0);
	return v;
}

static void expect_rel(const char *what, struct gpu_buf *a, struct gpu_buf *r,
		       size_t n, double tol, size_t rows, int mode)
{
	float *x = rd(a, n), *y = rd(r, n);
	const double e = rel_l2(x, y, n);

	ck_assert_msg(e <= tol, "exl3_residual %s rows %zu mode %d: rel L2 %.3g > "
		      "%.3g (seed %llu)", what, rows, mode, e, tol,
		      (unsigned long long)test_seed);
	free(x);
	free(y);
}

/* nw[0] (CPU) and nw[1] (CUDA): the same bf16 RMSNorm weight of dim
 * values around 1 (the residual tests' norm). */
static void norm_bf16(struct gpu_pair *p, size_t dim, struct gpu_buf *nw[2])
{
	uint16_t *h = malloc(dim * 2);
	size_t i;

	ck_assert(h);
	for (i = 0; i < dim; i++) {
		const float f = 1.0f + 0.2f * test_frand();
		uint32_t u;

		memcpy(&u, &f, 4);
		h[i] = (uint16_t)(u >> 16);
	}
	for (int v = 0; v < 2; v++) {
		ck_assert_int_eq(gpu_buf_new(v ? p->cuda : p->cpu, GPU_DTYPE_BF16, dim,
					     &nw[v], NULL), 0);
		ck_assert_int_eq(gpu_buf_write(nw[v], 0, h, dim, NULL), 0);
	}
	free(h);
}

/* Whether CUDA's fused residual tail runs here (thread-block clusters,
 * TERN_EXL3_TAIL and TERN_EXL3_KERNEL at their defaults) and knob (NULL,
 * or the environment switch of the fused path under test) is not "0". */
static int tail_on(const char *knob)
{
	const char *e = getenv("TERN_EXL3_TAIL"), *k = getenv("TERN_EXL3_KERNEL");
	const char *f = knob ? getenv(knob) : NULL;

	return gpu_cuda_exl3_tail_ok() && !(e && !strcmp(e, "0")) &&
	       !(k && !strcmp(k, "2")) && !(f && !strcmp(f, "0"));
}

/* *wd a random k x n weight (bits, codebook cb, a bias or not) and w[0]
 * (CPU), w[1] (CUDA) made from it. */
static void weight_pair(struct gpu_pair *p, struct wdesc *wd,
			struct gpu_exl3_weight *w[2], size_t k, size_t n,
			int bits, int cb, int bias)
{
	struct diag d;

	wdesc_random(wd, k, n, bits, cb, bias);
	for (int v = 0; v < 2; v++)
		ck_assert_msg(gpu_exl3_weight_new(v ? p->cuda : p->cpu, &wd->desc,
						  &w[v], &d) == 0,
			      "gpu_exl3_weight_new: %s", diag_message(&d, "?"));
}

/* gpu_exl3_residual: o_proj-like 1024 x 1024 weight (4 bits, MUL1, bias)
 * with dim 1000 (< n) and k_in 1000, a bf16 norm, then nothing (mode 0),
 * three q/k/v-like parts (mode 1) or gate/up + SwiGLU (mode 2), at 1, 5,
 * 16 rows (CUDA's fused tail) and 17 (the sequence): CUDA against the CPU
 * (which runs the sequence) within 1e-3 relative L2 for x, xn, o and the
 * next outputs, and against CUDA's own sequence of ops (gpu_exl3_matmul,
 * gpu_add_rmsnorm, gpu_exl3_matmul_multi / gpu_exl3_swiglu) within 1e-6
 * (o, x), 1e-5 (xn: the norm's sum in another order) and 1e-4 (next
 * outputs: an f16 rounding of xn's rotation may flip). */
START_TEST(test_residual)
{
	static const size_t rows[] = { 1, 5, 16, 17 };
	static const struct {
		size_t n, n_out;
		int bits, cb, bias;
	} nq[3] = { { 512, 512, 4, 2, 0 }, { 256, 200, 3, 0, 1 },
		    { 256, 256, 5, 1, 0 } },
	  ng[2] = { { 768, 700, 3, 0, 0 }, { 768, 700, 2, 2, 0 } };
	const size_t k_in = 1000, dim = 1000, kw = 1024;
	struct gpu_pair p;
	struct wdesc ww, wn[5];
	struct gpu_exl3_weight *wc, *wg, *nc[5], *ng_[5];
	struct gpu_buf *nwb[2], *nwc, *nwg;
	struct diag d;
	size_t ri, i;
	int j, mode, tail;

	if (!gpu_pair_open(&p, 0))
		return;
	tail = tail_on(NULL);
	if (!tail)
		printf("note: exl3_residual: fused tail not available here "
		       "(checking the sequence only)\n");
	{
		struct gpu_exl3_weight *wp[2];

		weight_pair(&p, &ww, wp, kw, kw, 4, 2, 1);
		wc = wp[0];
		wg = wp[1];
		for (j = 0; j < 5; j++) {
			const int q = j < 3;
			const size_t n = q ? nq[j].n : ng[j - 3].n;

			weight_pair(&p, &wn[j], wp, kw, n, q ? nq[j].bits : ng[j - 3].bits,
				    q ? nq[j].cb : ng[j - 3].cb, q ? nq[j].bias : 0);
			nc[j] = wp[0];
			ng_[j] = wp[1];
		}
	}
	norm_bf16(&p, dim, nwb);
	nwc = nwb[0];
	nwg = nwb[1];
	for (mode = 0; mode < 3; mode++)
		for (ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
			const size_t n = rows[ri];
			const int np = mode == 0 ? 0 : mode == 1 ? 3 : 2;
			const int j0 = mode == 2 ? 3 : 0;
			float *x0 = malloc(n * dim * 4), *a0 = malloc(n * k_in * 4);
			struct gpu_buf *b[3][4], *nb[3][3];
			struct gpu_exl3_part pt[3][3];
			struct gpu_exl3_residual r[3];
			const char *names[4] = { "x", "xn", "o", "a" };

			ck_assert(x0 && a0);
			for (i = 0; i < n * dim; i++)
				x0[i] = test_frand() * 3.0f;
			for (i = 0; i < n * k_in; i++)
				a0[i] = test_frand() * 2.0f;
			/* [0] CPU, [1] CUDA fused, [2] CUDA sequence */
			for (int v = 0; v < 3; v++) {
				struct gpu *g = v ? p.cuda : p.cpu;

				b[v][0] = mkbuf(g, n * dim, x0);
				b[v][1] = mkbuf(g, n * dim, NULL);
				b[v][2] = mkbuf(g, n * dim, NULL);
				b[v][3] = mkbuf(g, n * k_in, a0);
				for (j = 0; j < np; j++) {
					const size_t no = mode == 1 ? nq[j].n_out : ng[j].n_out;

					nb[v][j] = mkbuf(g, n * no, NULL);
					pt[v][j].out = nb[v][j];
					pt[v][j].w = v ? ng_[j0 + j] : nc[j0 + j];
					pt[v][j].n_out = no;
				}
				memset(&r[v], 0, sizeof r[v]);
				r[v].x = b[v][0];
				r[v].xn = b[v][1];
				r[v].o = b[v][2];
				r[v].a = b[v][3];
				r[v].w = v ? wg : wc;
				r[v].k_in = k_in;
				r[v].dim = dim;
				r[v].norm_w = v ? nwg : nwc;
				r[v].eps = 1e-5f;
				r[v].next = np ? pt[v] : NULL;
				r[v].n_next = np;
				r[v].swiglu = mode == 2;
			}
			const unsigned long runs0 = gpu_cuda_exl3_tail_runs();

			for (int v = 0; v < 2; v++)
				ck_assert_msg(gpu_exl3_residual(v ? p.cuda : p.cpu, &r[v], n,
								&d) == 0,
					      "%s: %s", v ? "cuda" : "cpu",
					      diag_message(&d, "?"));
			/* the fused path ran where it should (devices with
			 * clusters, TERN_EXL3_TAIL unset) and only there */
			if (tail)
				ck_assert_msg(gpu_cuda_exl3_tail_runs() == runs0 + (n <= 16),
					      "exl3_residual rows %zu mode %d: fused %lu times",
					      n, mode, gpu_cuda_exl3_tail_runs() - runs0);
			/* CUDA's sequence of ops */
			ck_assert_int_eq(gpu_exl3_matmul(p.cuda, r[2].o, r[2].a, wg, n,
							 k_in, dim, &d), 0);
			ck_assert_int_eq(gpu_add_rmsnorm(p.cuda, r[2].x, r[2].xn, r[2].o,
							 nwg, n, dim, 1e-5f, &d), 0);
			if (mode == 1)
				ck_assert_int_eq(gpu_exl3_matmul_multi(p.cuda, r[2].xn, n, dim,
								       pt[2], 3, &d), 0);
			else if (mode == 2)
				ck_assert_int_eq(gpu_exl3_swiglu(p.cuda, pt[2][0].out,
								 pt[2][1].out, r[2].xn,
								 pt[2][0].w, pt[2][1].w, n,
								 dim, pt[2][0].n_out, &d), 0);
			ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
			for (int q = 0; q < 3; q++) {
				expect_rel(names[q], b[1][q], b[0][q], n * dim, 1e-3, n, mode);
				expect_rel(names[q], b[1][q], b[2][q], n * dim,
					   q == 1 ? 1e-5 : 1e-6, n, mode);
			}
			/* with swiglu only part 0's output is defined */
			for (j = 0; j < (mode == 2 ? 1 : np); j++) {
				const size_t cnt = n * pt[0][j].n_out;

				expect_rel("next", nb[1][j], nb[0][j], cnt, 1e-3, n, mode);
				expect_rel("next (cuda sequence)", nb[1][j], nb[2][j], cnt,
					   1e-4, n, mode);
			}
			for (int v = 0; v < 3; v++) {
				for (int q = 0; q < 4; q++)
					gpu_buf_free(b[v][q]);
				for (j = 0; j < np; j++)
					gpu_buf_free(nb[v][j]);
			}
			free(x0);
			free(a0);
		}
	/* refused: aliasing, swiglu without two parts, a bad norm, dim > n */
	{
		struct gpu_buf *x = mkbuf(p.cuda, dim, NULL), *xn = mkbuf(p.cuda, dim, NULL);
		struct gpu_buf *o = mkbuf(p.cuda, dim, NULL), *a = mkbuf(p.cuda, k_in, NULL);
		struct gpu_buf *q = mkbuf(p.cuda, 1024, NULL), *ni = NULL;
		struct gpu_exl3_part pq[3] = { { q, ng_[0], 512 }, { q, ng_[1], 200 },
					       { q, ng_[2], 256 } };
		const struct gpu_exl3_residual ok = { .x = x, .xn = xn, .o = o, .a = a,
						      .w = wg, .k_in = k_in, .dim = dim,
						      .norm_w = nwg, .eps = 1e-5f };
		struct gpu_exl3_residual r = ok;

		ck_assert_int_eq(gpu_buf_new(p.cuda, GPU_DTYPE_I32, dim, &ni, NULL), 0);
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), 0);
		r.xn = x; /* x aliases xn */
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		r = ok;
		r.swiglu = true; /* no next parts */
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		pq[0].out = x; /* a next output aliasing x */
		r = ok;
		r.next = pq;
		r.n_next = 1;
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		pq[0].out = q;
		r.n_next = 3; /* shared outputs: refused by the multi checks */
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		r = ok;
		r.norm_w = ni; /* an i32 norm */
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		r = ok;
		r.dim = kw + 128; /* more outputs than the weight has */
		ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r, 1, &d), GPU_E_INVALID);
		gpu_buf_free(x);
		gpu_buf_free(xn);
		gpu_buf_free(o);
		gpu_buf_free(a);
		gpu_buf_free(q);
		gpu_buf_free(ni);
	}
	gpu_buf_free(nwc);
	gpu_buf_free(nwg);
	gpu_exl3_weight_free(wc);
	gpu_exl3_weight_free(wg);
	wdesc_free(&ww);
	for (j = 0; j < 5; j++) {
		gpu_exl3_weight_free(nc[j]);
		gpu_exl3_weight_free(ng_[j]);
		wdesc_free(&wn[j]);
	}
	gpu_pair_close(&p);
}
END_TEST

/* gpu_exl3_residual with then (the layer's FFN in one op): o_proj-like
 * 1024 x 1024 (dim, k_in 1000), gate/up 1024 x 768 (n_out 700, 3 and 2
 * bits) + SwiGLU, then down_proj-like 768 x 1024 (k_in 700, 4 bits MUL1)
 * with no next parts (p = 0) or three q/k/v-like ones (p = 1), at 1, 5,
 * 16 rows (CUDA rotates the SwiGLU result for down in its output launch)
 * and 17 (the sequence).  CUDA against the CPU within 1e-3 relative L2
 * (x, xn, o, the SwiGLU result and the next outputs), and bit for bit
 * against CUDA's two calls (the op without then, then `then`): the fused
 * rotation is the same arithmetic.  Refused: then without swiglu, with
 * another input, or with a then of its own. */
START_TEST(test_residual_then)
{
	static const size_t rows[] = { 1, 5, 16, 17 };
	static const struct {
		size_t k, n, n_out;
		int bits, cb, bias;
	} ws[7] = { { 1024, 1024, 1000, 4, 2, 1 },  /* o */
		    { 1024, 768, 700, 3, 0, 0 },    /* gate */
		    { 1024, 768, 700, 2, 2, 0 },    /* up */
		    { 768, 1024, 1000, 4, 2, 0 },   /* down */
		    { 1024, 512, 512, 4, 2, 0 },    /* q */
		    { 1024, 256, 200, 3, 0, 1 },    /* k */
		    { 1024, 256, 256, 5, 1, 0 } };  /* v */
	const size_t dim = 1000;
	struct gpu_pair p;
	struct wdesc wd[7];
	struct gpu_exl3_weight *w[2][7];
	struct gpu_buf *nw[2];
	struct diag d;
	size_t ri, i;
	int j, v, pq, tail;

	if (!gpu_pair_open(&p, 0))
		return;
	tail = tail_on("TERN_FUSE_SWIGLU");
	for (j = 0; j < 7; j++) {
		struct gpu_exl3_weight *wj[2];

		weight_pair(&p, &wd[j], wj, ws[j].k, ws[j].n, ws[j].bits, ws[j].cb,
			    ws[j].bias);
		w[0][j] = wj[0];
		w[1][j] = wj[1];
	}
	norm_bf16(&p, dim, nw);
	for (pq = 0; pq < 2; pq++)
		for (ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
			const size_t n = rows[ri];
			float *x0 = malloc(n * dim * 4), *a0 = malloc(n * dim * 4);
			/* [0] CPU, [1] CUDA with then, [2] CUDA two calls;
			 * buffers x, xn, o, a, gate out, up out, q, k, v */
			struct gpu_buf *b[3][9];
			struct gpu_exl3_part gu[3][2], qkv[3][3];
			struct gpu_exl3_residual r[3], t[3];
			static const char *const names[9] = {
				"x", "xn", "o", "a", "swiglu", "up", "q", "k", "v"
			};

			ck_assert(x0 && a0);
			for (i = 0; i < n * dim; i++) {
				x0[i] = test_frand() * 3.0f;
				a0[i] = test_frand() * 2.0f;
			}
			for (v = 0; v < 3; v++) {
				struct gpu *g = v ? p.cuda : p.cpu;
				struct gpu_exl3_weight *const *wv = w[v ? 1 : 0];

				b[v][0] = mkbuf(g, n * dim, x0);
				b[v][1] = mkbuf(g, n * dim, NULL);
				b[v][2] = mkbuf(g, n * dim, NULL);
				b[v][3] = mkbuf(g, n * dim, a0);
				for (j = 0; j < 5; j++)
					b[v][4 + j] = mkbuf(g, n * ws[1 + (j < 2 ? j : j + 1)].n_out,
							    NULL);
				for (j = 0; j < 2; j++)
					gu[v][j] = (struct gpu_exl3_part){ b[v][4 + j], wv[1 + j],
									   ws[1 + j].n_out };
				for (j = 0; j < 3; j++)
					qkv[v][j] = (struct gpu_exl3_part){ b[v][6 + j], wv[4 + j],
									    ws[4 + j].n_out };
				r[v] = (struct gpu_exl3_residual){
					.x = b[v][0], .xn = b[v][1], .o = b[v][2], .a = b[v][3],
					.w = wv[0], .k_in = dim, .dim = dim, .norm_w = nw[v ? 1 : 0],
					.eps = 1e-5f, .next = gu[v], .n_next = 2, .swiglu = true,
				};
				t[v] = (struct gpu_exl3_residual){
					.x = b[v][0], .xn = b[v][1], .o = b[v][2], .a = b[v][4],
					.w = wv[3], .k_in = ws[1].n_out, .dim = dim,
					.norm_w = nw[v ? 1 : 0], .eps = 1e-6f,
					.next = pq ? qkv[v] : NULL, .n_next = pq ? 3 : 0,
				};
				if (v < 2)
					r[v].then = &t[v];
			}
			const unsigned long rot0 = gpu_cuda_exl3_rot_runs();

			for (v = 0; v < 2; v++)
				ck_assert_msg(gpu_exl3_residual(v ? p.cuda : p.cpu, &r[v], n,
								&d) == 0,
					      "%s: %s", v ? "cuda" : "cpu",
					      diag_message(&d, "?"));
			/* the rotation rode in the SwiGLU launch where the
			 * fused tail runs (as test_residual decides), and only
			 * there */
			if (tail)
				ck_assert_msg(gpu_cuda_exl3_rot_runs() == rot0 + (n <= 16),
					      "then rows %zu: fused rotation %lu times", n,
					      gpu_cuda_exl3_rot_runs() - rot0);
			ck_assert_int_eq(gpu_exl3_residual(p.cuda, &r[2], n, &d), 0);
			ck_assert_int_eq(gpu_exl3_residual(p.cuda, &t[2], n, &d), 0);
			ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
			for (j = 0; j < 9; j++) {
				const size_t cnt = n * (j < 4 ? dim : ws[1 + (j < 6 ? j - 4 : j - 3)].n_out);
				float *c0, *c1, *c2;

				if (j == 3 || j == 5 || (!pq && j >= 6))
					continue; /* a (input), up (scratch), unused */
				c0 = rd(b[0][j], cnt);
				c1 = rd(b[1][j], cnt);
				c2 = rd(b[2][j], cnt);
				ck_assert_msg(rel_l2(c1, c0, cnt) <= 1e-3,
					      "then %s rows %zu qkv %d: rel L2 %.3g vs the CPU "
					      "(seed %llu)", names[j], n, pq, rel_l2(c1, c0, cnt),
					      (unsigned long long)test_seed);
				ck_assert_msg(!memcmp(c1, c2, cnt * 4),
					      "then %s rows %zu qkv %d: differs from the two "
					      "calls (rel L2 %.3g, seed %llu)", names[j], n, pq,
					      rel_l2(c1, c2, cnt), (unsigned long long)test_seed);
				free(c0);
				free(c1);
				free(c2);
			}
			/* refused, nothing written: then without swiglu, with
			 * another input, with a then of its own */
			{
				struct gpu_exl3_residual bad = r[1], tb = t[1];
				float *x1 = rd(b[1][0], n * dim), *x2;

				bad.swiglu = false;
				bad.next = NULL;
				bad.n_next = 0;
				ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
						 GPU_E_INVALID);
				bad = r[1];
				tb.a = b[1][5];
				bad.then = &tb;
				ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
						 GPU_E_INVALID);
				tb = t[1];
				tb.then = &t[1];
				ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
						 GPU_E_INVALID);
				x2 = rd(b[1][0], n * dim);
				ck_assert(!memcmp(x1, x2, n * dim * 4));
				free(x1);
				free(x2);
			}
			for (v = 0; v < 3; v++)
				for (j = 0; j < 9; j++)
					gpu_buf_free(b[v][j]);
			free(x0);
			free(a0);
		}
	for (v = 0; v < 2; v++) {
		gpu_buf_free(nw[v]);
		for (j = 0; j < 7; j++)
			gpu_exl3_weight_free(w[v][j]);
	}
	for (j = 0; j < 7; j++)
		wdesc_free(&wd[j]);
	gpu_pair_close(&p);
}
END_TEST

/* Pool contents as f32 (an f16 pool converted). */
static float *pool_f32(struct gpu_buf *b, size_t n)
{
	float *v = malloc(n * sizeof *v);

	ck_assert(v);
	if (gpu_buf_dtype(b) == GPU_DTYPE_F16) {
		uint16_t *h = malloc(n * 2);

		ck_assert(h);
		ck_assert_int_eq(gpu_buf_read(b, 0, h, n, NULL), 0);
		for (size_t i = 0; i < n; i++)
			v[i] = gpu_f16_to_f32(h[i]);
		free(h);
	} else {
		ck_assert_int_eq(gpu_buf_read(b, 0, v, n, NULL), 0);
	}
	return v;
}

/* Whether two buffers of n elements of esz bytes hold the same bits. */
static bool same_bits(struct gpu_buf *a, struct gpu_buf *b, size_t n, size_t esz)
{
	void *x = malloc(n * esz), *y = malloc(n * esz);
	bool same;

	ck_assert(x && y);
	ck_assert_int_eq(gpu_buf_read(a, 0, x, n, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(b, 0, y, n, NULL), 0);
	same = !memcmp(x, y, n * esz);
	free(x);
	free(y);
	return same;
}

/* gpu_exl3_residual with rope_kv (a down_proj, the next norm, the next
 * layer's q/k/v, then their RoPE + KV store): a down_proj-like 1024 x
 * 1024 weight (k_in and dim 1000), q/k/v 1024 x 512 / 256 / 256 (4 query
 * and 2 kv heads of head_dim 128; 4, 3 and 5 bits, the three codebooks,
 * a bias on k), pages of 16 shuffled over 3 sequences, each row at its
 * own (sequence, position).  Cases: f16 pool at 1, 3, 16 rows (CUDA
 * rotates and stores in the q/k/v output launch) and 17 (the sequence);
 * f32 pool at 5 rows; with q/k norms at 3 rows (not fused: CUDA's rope
 * launch after the output launch).  CUDA against CUDA's op without
 * rope_kv followed by gpu_rope_kv_store bit for bit (x, xn, o, q, k, v
 * and both pools: the same arithmetic), against the CPU (the sequence)
 * within 1e-3 relative L2.  Refused, changing nothing: rope_kv without
 * the three parts, with q not the first part's output, with a batch of
 * other rows.  Then, in every case, the attention over those caches and
 * an o_proj-like 512 x 1024 op taking it as its att (CUDA rotates each
 * head for o_proj in the attention's combine launch below 16 rows):
 * against gpu_attention followed by the op without att bit for bit
 * (x, xn, o and the attention's output), against the CPU within 1e-3. */
START_TEST(test_residual_rope)
{
	static const struct {
		size_t k, n;
		int bits, cb, bias;
	} ws[5] = { { 1024, 1024, 4, 2, 0 },   /* down */
		    { 1024, 512, 4, 2, 0 },    /* q */
		    { 1024, 256, 3, 0, 1 },    /* k */
		    { 1024, 256, 5, 1, 0 },    /* v */
		    { 512, 1024, 4, 2, 1 } };  /* o */
	/* bad: row 1 of no sequence and sequence 2's page of its row
	 * unmapped — the CPU refuses such a store (gpu.h), CUDA skips those
	 * rows' stores, and the attention gives row 1 zeros (every split
	 * empty: the combine's empty-row branch) and leaves row 2's page
	 * out, so only the fused and the separate CUDA paths are compared;
	 * base: the first position (40: the window of 36 still spans two
	 * splits of 32); pool I32: a quantized cache of 4-bit keys and 6-bit
	 * values (gpu.h), stored by the output launch itself */
	static const struct {
		enum gpu_dtype pool;
		int norm;
		size_t n;
		int bad;
		size_t win, base;
	} cs[] = { { GPU_DTYPE_F16, 0, 1, 0, 0, 0 }, { GPU_DTYPE_F16, 0, 3, 0, 0, 0 },
		   { GPU_DTYPE_F16, 0, 16, 0, 0, 0 }, { GPU_DTYPE_F16, 0, 17, 0, 0, 0 },
		   { GPU_DTYPE_F32, 0, 5, 0, 0, 0 }, { GPU_DTYPE_F16, 1, 3, 0, 0, 0 },
		   { GPU_DTYPE_F16, 0, 5, 0, 36, 40 }, { GPU_DTYPE_F16, 0, 5, 1, 0, 40 },
		   { GPU_DTYPE_F32, 0, 4, 1, 36, 40 }, { GPU_DTYPE_I32, 0, 3, 0, 0, 0 },
		   { GPU_DTYPE_I32, 0, 5, 0, 36, 40 } };
	const size_t dim = 1000, H = 4, Hk = 2, hd = 128, ps = 16, mp = 4;
	const size_t n_seq = 3, n_pages = n_seq * mp, pool_n = n_pages * ps * Hk * hd;
	struct gpu_pair p;
	struct wdesc wd[5];
	struct gpu_exl3_weight *w[2][5];
	struct gpu_buf *nw[2];
	float invf[64], qn[128], kn[128];
	int32_t pt[3 * 4];
	struct diag d;
	size_t ci, i;
	int j, v, tail, att_on;

	if (!gpu_pair_open(&p, 0))
		return;
	tail = tail_on("TERN_EXL3_ROPE");
	att_on = tail_on("TERN_EXL3_ATT");
	for (j = 0; j < 5; j++) {
		struct gpu_exl3_weight *wj[2];

		weight_pair(&p, &wd[j], wj, ws[j].k, ws[j].n, ws[j].bits, ws[j].cb,
			    ws[j].bias);
		w[0][j] = wj[0];
		w[1][j] = wj[1];
	}
	norm_bf16(&p, dim, nw);
	for (i = 0; i < 64; i++)
		invf[i] = powf(10000.0f, -(float)(2 * i) / 128.0f);
	for (i = 0; i < 128; i++) {
		qn[i] = 1.0f + 0.3f * test_frand();
		kn[i] = 1.0f + 0.3f * test_frand();
	}
	for (i = 0; i < n_seq * mp; i++) /* a shuffle of the pages */
		pt[i] = (int32_t)((i * 7 + 5) % n_pages);
	for (ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
		const size_t n = cs[ci].n;
		const bool fused = tail && n <= 16 && !cs[ci].norm;
		const int broken = cs[ci].bad, v0 = broken ? 1 : 0; /* first run */
		float *x0 = malloc(n * dim * 4), *a0 = malloc(n * dim * 4);
		int32_t seq[17], pos[17], ptc[3 * 4];
		/* [0] CPU, [1] CUDA with rope_kv, [2] CUDA without, then
		 * gpu_rope_kv_store; buffers x, xn, o, a, q, k, v, K pool, V
		 * pool, row seq, row pos, page table, rope pos, inv_freq,
		 * q norm, k norm */
		struct gpu_buf *b[3][18]; /* [16], [17]: quantized pools' scales */
		struct gpu_exl3_part qkv[3][3];
		struct gpu_exl3_residual r[3];
		struct gpu_rope rp[3];
		struct gpu_kv_pool pool[3];
		struct gpu_kv_batch kb[3];
		struct gpu_rope_kv rk[3];
		static const char *const names[7] = { "x", "xn", "o", "a", "q", "k", "v" };
		const size_t cnt[7] = { n * dim, n * dim, n * dim, n * dim, n * H * hd,
					n * Hk * hd, n * Hk * hd };
		const size_t esz = cs[ci].pool == GPU_DTYPE_F16 ? 2 : 4;
		const int quant = cs[ci].pool == GPU_DTYPE_I32;
		const unsigned qb[2] = { 4, 6 };
		/* elements of the K and V pools */
		const size_t pn[2] = { quant ? pool_n / 32 * qb[0] : pool_n,
				       quant ? pool_n / 32 * qb[1] : pool_n };
		/* the CPU's keys differ in their last bits: a quantized code
		 * moves a step now and then */
		const double ctol = quant ? 5e-2 : 1e-3;
		unsigned long rope0;

		ck_assert(x0 && a0);
		for (i = 0; i < n * dim; i++) {
			x0[i] = test_frand() * 3.0f;
			a0[i] = test_frand() * 2.0f;
		}
		for (i = 0; i < n; i++) { /* distinct (sequence, position) */
			seq[i] = (int32_t)(i % n_seq);
			pos[i] = (int32_t)(cs[ci].base + i / n_seq * 5 + 1 + i % n_seq);
		}
		memcpy(ptc, pt, sizeof ptc);
		if (broken) {
			seq[1] = -1;
			ptc[2 * mp + (size_t)pos[2] / ps] = -1;
		}
		for (v = 0; v < 3; v++) {
			struct gpu *g = v ? p.cuda : p.cpu;

			b[v][0] = mkbuf(g, n * dim, x0);
			b[v][1] = mkbuf(g, n * dim, NULL);
			b[v][2] = mkbuf(g, n * dim, NULL);
			b[v][3] = mkbuf(g, n * dim, a0);
			for (j = 0; j < 3; j++)
				b[v][4 + j] = mkbuf(g, cnt[4 + j], NULL);
			for (j = 0; j < 2; j++) {
				ck_assert_int_eq(gpu_buf_new(g, cs[ci].pool, pn[j],
							     &b[v][7 + j], NULL), 0);
				ck_assert_int_eq(gpu_buf_zero(b[v][7 + j], NULL), 0);
				b[v][16 + j] = NULL;
				if (quant) {
					ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F16,
								     pool_n / 32,
								     &b[v][16 + j], NULL), 0);
					ck_assert_int_eq(gpu_buf_zero(b[v][16 + j], NULL), 0);
				}
			}
			ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, n, &b[v][9], NULL), 0);
			ck_assert_int_eq(gpu_buf_write(b[v][9], 0, seq, n, NULL), 0);
			ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, n, &b[v][10], NULL), 0);
			ck_assert_int_eq(gpu_buf_write(b[v][10], 0, pos, n, NULL), 0);
			ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, n_seq * mp,
						     &b[v][11], NULL), 0);
			ck_assert_int_eq(gpu_buf_write(b[v][11], 0, ptc, n_seq * mp, NULL), 0);
			ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, n, &b[v][12], NULL), 0);
			ck_assert_int_eq(gpu_buf_write(b[v][12], 0, pos, n, NULL), 0);
			b[v][13] = mkbuf(g, 64, invf);
			b[v][14] = mkbuf(g, 128, qn);
			b[v][15] = mkbuf(g, 128, kn);
			for (j = 0; j < 3; j++) {
				qkv[v][j].out = b[v][4 + j];
				qkv[v][j].w = w[v ? 1 : 0][1 + j];
				qkv[v][j].n_out = ws[1 + j].n;
			}
			memset(&r[v], 0, sizeof r[v]);
			r[v].x = b[v][0];
			r[v].xn = b[v][1];
			r[v].o = b[v][2];
			r[v].a = b[v][3];
			r[v].w = w[v ? 1 : 0][0];
			r[v].k_in = dim;
			r[v].dim = dim;
			r[v].norm_w = nw[v ? 1 : 0];
			r[v].eps = 1e-5f;
			r[v].next = qkv[v];
			r[v].n_next = 3;
			rp[v] = (struct gpu_rope){ .n_rot = hd, .attn_factor = 1.0f,
						   .norm_eps = 1e-6f };
			if (cs[ci].norm) {
				rp[v].q_norm = b[v][14];
				rp[v].k_norm = b[v][15];
			}
			pool[v] = (struct gpu_kv_pool){ b[v][7], b[v][8], n_pages, ps, Hk, hd,
							 quant ? qb[0] : 0, quant ? qb[1] : 0,
							 b[v][16], b[v][17] };
			kb[v] = (struct gpu_kv_batch){ n, b[v][9], b[v][10], b[v][11],
						       n_seq, mp, false };
			rk[v] = (struct gpu_rope_kv){ b[v][4], b[v][5], b[v][6], H,
						      b[v][12], b[v][13], &rp[v],
						      &pool[v], &kb[v] };
			r[v].rope_kv = v < 2 ? &rk[v] : NULL;
		}
		rope0 = gpu_cuda_exl3_rope_runs();
		if (broken) /* the CPU refuses the store (gpu.h), after the parts */
			ck_assert_int_eq(gpu_exl3_residual(p.cpu, &r[0], n, &d),
					 GPU_E_INVALID);
		for (v = v0; v < 3; v++)
			ck_assert_msg(gpu_exl3_residual(v ? p.cuda : p.cpu, &r[v], n,
							&d) == 0,
				      "exl3_residual rope case %zu (%d): %s", ci, v,
				      diag_message(&d, "?"));
		ck_assert_int_eq(gpu_rope_kv_store(p.cuda, rk[2].q, rk[2].k, rk[2].v, H,
						   rk[2].pos, rk[2].inv_freq, &rp[2],
						   &pool[2], &kb[2], &d), 0);
		ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
		ck_assert_msg(gpu_cuda_exl3_rope_runs() == rope0 + fused,
			      "exl3_residual rope case %zu: fused %lu times (want %d)",
			      ci, gpu_cuda_exl3_rope_runs() - rope0, (int)fused);
		for (j = 0; j < 7; j++) {
			if (j == 3)
				continue; /* a: the input */
			ck_assert_msg(same_bits(b[1][j], b[2][j], cnt[j], 4),
				      "exl3_residual rope case %zu: %s differs from "
				      "the separate ops (seed %llu)", ci, names[j],
				      (unsigned long long)test_seed);
			if (!broken)
				expect_rel(names[j], b[1][j], b[0][j], cnt[j], 1e-3, n,
					   (int)ci);
		}
		for (j = 7; j < 9; j++) {
			float *pc, *pg;
			double e;

			ck_assert_msg(same_bits(b[1][j], b[2][j], pn[j - 7], esz),
				      "exl3_residual rope case %zu: %s pool differs "
				      "from the separate ops (seed %llu)", ci,
				      j == 7 ? "K" : "V", (unsigned long long)test_seed);
			if (quant) {
				/* the launch's codes are the rope op's (the
				 * host's arithmetic), scales too; the CPU's
				 * side is checked through the attention below */
				ck_assert_msg(same_bits(b[1][9 + j], b[2][9 + j],
							pool_n / 32, 2),
					      "exl3_residual rope case %zu: %s scales "
					      "differ from the separate ops", ci,
					      j == 7 ? "K" : "V");
				continue;
			}
			if (broken) {
				/* rows 1 (no sequence) and 2 (page unmapped)
				 * store nothing: the pool holds the other rows'
				 * head rows only */
				size_t nz = 0, t, u;

				pg = pool_f32(b[1][j], pool_n);
				for (t = 0; t < pool_n / hd; t++) {
					for (u = 0; u < hd && pg[t * hd + u] == 0.0f; u++)
						;
					nz += u < hd;
				}
				ck_assert_msg(nz == (n - 2) * Hk,
					      "exl3_residual rope case %zu: %zu "
					      "head rows stored, want %zu", ci, nz,
					      (n - 2) * Hk);
				free(pg);
				continue;
			}
			pc = pool_f32(b[0][j], pool_n);
			pg = pool_f32(b[1][j], pool_n);
			e = rel_l2(pg, pc, pool_n);
			ck_assert_msg(e <= 1e-3, "exl3_residual rope case %zu: %s pool "
				      "rel L2 %.3g against the CPU (seed %llu)", ci,
				      j == 7 ? "K" : "V", e, (unsigned long long)test_seed);
			free(pc);
			free(pg);
		}
		if (ci == 0) {
			/* refusals, nothing run: x keeps its value */
			struct gpu_exl3_residual bad = r[1];
			struct gpu_rope_kv brk = rk[1];
			struct gpu_kv_batch bkb = kb[1];
			float *x1 = rd(b[1][0], n * dim), *x2;

			bad.n_next = 0;
			bad.next = NULL;
			ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
					 GPU_E_INVALID);
			bad = r[1];
			brk.q = b[1][5]; /* k's output as q */
			bad.rope_kv = &brk;
			ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
					 GPU_E_INVALID);
			brk = rk[1];
			bkb.n_rows = n + 1;
			brk.b = &bkb;
			ck_assert_int_eq(gpu_exl3_residual(p.cuda, &bad, n, &d),
					 GPU_E_INVALID);
			x2 = rd(b[1][0], n * dim);
			ck_assert(!memcmp(x1, x2, n * dim * 4));
			free(x1);
			free(x2);
		}
		/* then the attention over those caches and an o_proj-like op
		 * (4 heads of 128 -> 1024, dim 1000) with it as its att */
		{
			struct gpu_buf *ab[3];
			struct gpu_attention_args aa[3];
			struct gpu_exl3_residual ro[3];
			const unsigned long att0 = gpu_cuda_exl3_att_runs();
			/* where the attention has split partials to merge */
			const size_t span = cs[ci].win && cs[ci].win < mp * ps ?
						    cs[ci].win : mp * ps;
			const bool afused = att_on && n < 16 &&
					    gpu_cuda_attention_splits(n, Hk, span, hd,
								      quant ? 2 : esz == 2) > 1;
			static const char *const an[4] = { "x", "xn", "o", "att" };

			for (v = 0; v < 3; v++) {
				ab[v] = mkbuf(v ? p.cuda : p.cpu, n * H * hd, NULL);
				aa[v] = (struct gpu_attention_args){
					ab[v], b[v][4], &pool[v], &kb[v], H,
					1.0f / sqrtf((float)hd), cs[ci].win,
				};
				memset(&ro[v], 0, sizeof ro[v]);
				ro[v].x = b[v][0];
				ro[v].xn = b[v][1];
				ro[v].o = b[v][2];
				ro[v].a = ab[v];
				ro[v].w = w[v ? 1 : 0][4];
				ro[v].k_in = H * hd;
				ro[v].dim = dim;
				ro[v].norm_w = nw[v ? 1 : 0];
				ro[v].eps = 1e-5f;
				ro[v].att = v < 2 ? &aa[v] : NULL;
			}
			ck_assert_int_eq(gpu_attention(p.cuda, ab[2], b[2][4], &pool[2],
						       &kb[2], H, aa[2].scale,
						       cs[ci].win, &d), 0);
			for (v = v0; v < 3; v++)
				ck_assert_msg(gpu_exl3_residual(v ? p.cuda : p.cpu, &ro[v],
								n, &d) == 0,
					      "exl3_residual att case %zu (%d): %s", ci, v,
					      diag_message(&d, "?"));
			ck_assert_int_eq(gpu_sync(p.cuda, &d), 0);
			ck_assert_msg(gpu_cuda_exl3_att_runs() == att0 + afused,
				      "exl3_residual att case %zu: fused %lu times "
				      "(want %d)", ci, gpu_cuda_exl3_att_runs() - att0,
				      (int)afused);
			for (j = 0; j < 4; j++) {
				struct gpu_buf *x1 = j < 3 ? b[1][j] : ab[1];
				struct gpu_buf *x2 = j < 3 ? b[2][j] : ab[2];
				struct gpu_buf *x0c = j < 3 ? b[0][j] : ab[0];
				const size_t m = j < 3 ? n * dim : n * H * hd;

				ck_assert_msg(same_bits(x1, x2, m, 4),
					      "exl3_residual att case %zu: %s differs "
					      "from the separate ops (seed %llu)", ci,
					      an[j], (unsigned long long)test_seed);
				if (!broken)
					expect_rel(an[j], x1, x0c, m, ctol, n, (int)ci);
			}
			if (broken) { /* row 1 (no sequence) attends nothing */
				float *at = rd(ab[1], n * H * hd);

				for (i = 0; i < H * hd; i++)
					ck_assert_msg(at[H * hd + i] == 0.0f,
						      "exl3_residual att case %zu: "
						      "row 1 [%zu] = %g, want 0", ci, i,
						      (double)at[H * hd + i]);
				free(at);
			}
			for (v = 0; v < 3; v++)
				gpu_buf_free(ab[v]);
		}
		for (v = 0; v < 3; v++)
			for (j = 0; j < 18; j++)
				gpu_buf_free(b[v][j]);
		free(x0);
		free(a0);
	}
	for (v = 0; v < 2; v++) {
		gpu_buf_free(nw[v]);
		for (j = 0; j < 5; j++)
			gpu_exl3_weight_free(w[v][j]);
	}
	for (j = 0; j < 5; j++)
		wdesc_free(&wd[j]);
	gpu_pair_close(&p);
}
END_TEST

/* ---- MoE experts -------------------------------------------------------- */

enum { XM_NE = 8 };

/* ne EXL3 experts (gate / up pad(dim) x pad(n_ff), down the reverse) on
 * both backends; kind j at bits[j], cb[j]; odd: expert 1's down at other
 * bits (the set no longer qualifies for the device path). */
struct xmoe {
	size_t ne;
	struct wdesc w[3][XM_NE];
	struct gpu_exl3_weight *wc[3][XM_NE], *wg[3][XM_NE];
	struct gpu_moe_experts exc, exg;
};

static void xmoe_make(struct gpu_pair *p, struct xmoe *m, size_t ne,
		      size_t dim, size_t n_ff, const int *bits, const int *cb,
		      int bias, int odd)
{
	const size_t dk = (dim + 127) / 128 * 128, fk = (n_ff + 127) / 128 * 128;
	struct diag d;
	size_t e;
	int j;

	ck_assert_uint_le(ne, XM_NE);
	memset(m, 0, sizeof *m);
	m->ne = ne;
	for (j = 0; j < 3; j++)
		for (e = 0; e < ne; e++) {
			const int b = odd && j == 2 && e == 1 ? bits[j] % 8 + 1 : bits[j];

			wdesc_random(&m->w[j][e], j < 2 ? dk : fk, j < 2 ? fk : dk, b,
				     cb[j], bias);
			ck_assert_msg(gpu_exl3_weight_new(p->cpu, &m->w[j][e].desc,
							  &m->wc[j][e], &d) == 0,
				      "cpu: %s", diag_message(&d, "?"));
			ck_assert_msg(gpu_exl3_weight_new(p->cuda, &m->w[j][e].desc,
							  &m->wg[j][e], &d) == 0,
				      "cuda: %s", diag_message(&d, "?"));
		}
	m->exc = (struct gpu_moe_experts){
		.n_expert = ne, .n_ff = n_ff,
		.xgate = (const struct gpu_exl3_weight *const *)m->wc[0],
		.xup = (const struct gpu_exl3_weight *const *)m->wc[1],
		.xdown = (const struct gpu_exl3_weight *const *)m->wc[2] };
	m->exg = (struct gpu_moe_experts){
		.n_expert = ne, .n_ff = n_ff,
		.xgate = (const struct gpu_exl3_weight *const *)m->wg[0],
		.xup = (const struct gpu_exl3_weight *const *)m->wg[1],
		.xdown = (const struct gpu_exl3_weight *const *)m->wg[2] };
}

static void xmoe_free(struct xmoe *m)
{
	size_t e;
	int j;

	for (j = 0; j < 3; j++)
		for (e = 0; e < m->ne; e++) {
			gpu_exl3_weight_free(m->wc[j][e]);
			gpu_exl3_weight_free(m->wg[j][e]);
			wdesc_free(&m->w[j][e]);
		}
}

static double rel_l2(const float *a, const float *r, size_t n)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const double e = (double)a[i] - (double)r[i];

		if (!isfinite(a[i]))
			return INFINITY;
		num += e * e;
		den += (double)r[i] * r[i];
	}
	return den > 0 ? sqrt(num / den) : INFINITY;
}

/* gpu_moe_ffn on CUDA that must be refused: GPU_E_INVALID at once on the
 * host path, at the next gpu_sync on the device path (dev; the sync after
 * that is clean); *d holds the message. */
static void xmoe_refused(struct gpu *g, const struct gpu_moe_experts *ex,
			 struct gpu_buf *out, struct gpu_buf *x, struct gpu_buf *ids,
			 struct gpu_buf *wts, struct gpu_buf *scr, size_t n,
			 size_t dim, size_t top_k, int dev, struct diag *d)
{
	int rc;

	diag_clear(d);
	rc = gpu_moe_ffn(g, out, x, ids, wts, ex, n, dim, top_k, scr, d);
	if (dev) {
		ck_assert_int_eq(rc, 0);
		rc = gpu_sync(g, d);
		ck_assert_int_eq(gpu_sync(g, NULL), 0);
	}
	ck_assert_int_eq(rc, GPU_E_INVALID);
}

/* One gpu_moe_ffn case: n random rows, each routed to top_k distinct
 * random experts with random positive weights, on both backends; CUDA's
 * output poisoned first; returns CUDA's output and fills ref with the
 * CPU's (both n * dim, caller frees).  Then row 0's first id is replaced
 * by a bad one and the call must fail (host path: at once; device path:
 * at the next gpu_sync) with the other rows still right.  dup: every
 * assignment names expert 0 instead, which both backends must refuse
 * (*got, *ref NULL). */
static void xmoe_case(struct gpu_pair *p, const struct xmoe *m, size_t n,
		      size_t dim, size_t top_k, int dev, int dup, float **got,
		      float **ref)
{
	const size_t ne = m->ne, n_ff = m->exc.n_ff;
	float *x = malloc(n * dim * sizeof *x), *wt = malloc(n * top_k * 4);
	int32_t *id = malloc(n * top_k * 4);
	float *a = malloc(n * dim * 4), *r = malloc(n * dim * 4);
	struct gpu_buf *xc, *xg, *ic, *ig, *wc, *wg, *oc, *og, *sc, *sg;
	const size_t ns = gpu_moe_scratch_elems(n, dim, n_ff, top_k);
	size_t i, j;
	struct diag d;

	ck_assert(x && wt && id && a && r);
	for (i = 0; i < n * dim; i++)
		x[i] = test_frand() * 2.0f;
	for (i = 0; i < n; i++) {
		int perm[XM_NE];
		float sum = 0;

		for (j = 0; j < ne; j++)
			perm[j] = (int)j;
		for (j = 0; j < top_k; j++) {
			const size_t q = j + test_urand32() % (ne - j);
			const int t = perm[j];

			perm[j] = perm[q];
			perm[q] = t;
			id[i * top_k + j] = dup ? 0 : perm[j];
			wt[i * top_k + j] = 0.1f + fabsf(test_frand());
			sum += wt[i * top_k + j];
		}
		for (j = 0; j < top_k; j++)
			wt[i * top_k + j] /= sum;
	}
	xc = mkbuf(p->cpu, n * dim, x);
	xg = mkbuf(p->cuda, n * dim, x);
	ck_assert_int_eq(gpu_buf_new(p->cpu, GPU_DTYPE_I32, n * top_k, &ic, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(p->cuda, GPU_DTYPE_I32, n * top_k, &ig, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(ic, 0, id, n * top_k, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(ig, 0, id, n * top_k, NULL), 0);
	wc = mkbuf(p->cpu, n * top_k, wt);
	wg = mkbuf(p->cuda, n * top_k, wt);
	oc = mkbuf(p->cpu, n * dim, NULL);
	for (i = 0; i < n * dim; i++)
		a[i] = NAN;
	og = mkbuf(p->cuda, n * dim, a);
	sc = mkbuf(p->cpu, ns, NULL);
	sg = mkbuf(p->cuda, ns, NULL);
	ck_assert_int_eq(gpu_moe_ffn_recordable(p->cuda, &m->exg, n, dim, top_k),
			 dev);
	ck_assert(!gpu_moe_ffn_recordable(p->cpu, &m->exc, n, dim, top_k));
	if (dup) {
		/* a row naming an expert twice: refused, on the device path at
		 * the next gpu_sync */
		diag_clear(&d);
		ck_assert_int_eq(gpu_moe_ffn(p->cpu, oc, xc, ic, wc, &m->exc, n, dim,
					     top_k, sc, &d), GPU_E_INVALID);
		ck_assert_msg(strstr(d.msg, "expert 0 twice") != NULL, "%s", d.msg);
		xmoe_refused(p->cuda, &m->exg, og, xg, ig, wg, sg, n, dim, top_k, dev,
			     &d);
		ck_assert_msg(strstr(d.msg, "expert 0 twice") != NULL, "%s", d.msg);
		*got = *ref = NULL;
		goto out;
	}
	ck_assert_msg(gpu_moe_ffn(p->cpu, oc, xc, ic, wc, &m->exc, n, dim, top_k,
				  sc, &d) == 0, "cpu: %s", diag_message(&d, "?"));
	ck_assert_msg(gpu_moe_ffn(p->cuda, og, xg, ig, wg, &m->exg, n, dim, top_k,
				  sg, &d) == 0, "cuda: %s", diag_message(&d, "?"));
	ck_assert_msg(gpu_sync(p->cuda, &d) == 0, "sync: %s", diag_message(&d, "?"));
	ck_assert_int_eq(gpu_buf_read(oc, 0, r, n * dim, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(og, 0, a, n * dim, NULL), 0);
	if (dev) {
		/* recorded and replayed: the same bits */
		struct gpu_graph *gr = NULL;
		float *b = malloc(n * dim * 4);

		ck_assert(b);
		ck_assert_int_eq(gpu_buf_zero(og, NULL), 0);
		ck_assert_int_eq(gpu_graph_begin(p->cuda, NULL), 0);
		ck_assert_int_eq(gpu_moe_ffn(p->cuda, og, xg, ig, wg, &m->exg, n, dim,
					     top_k, sg, NULL), 0);
		ck_assert_int_eq(gpu_graph_end(p->cuda, &gr, NULL), 0);
		ck_assert_int_eq(gpu_graph_launch(gr, NULL), 0);
		ck_assert_int_eq(gpu_sync(p->cuda, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(og, 0, b, n * dim, NULL), 0);
		ck_assert_msg(memcmp(a, b, n * dim * 4) == 0,
			      "exl3 moe n %zu: graph replay differs", n);
		gpu_graph_free(gr);
		free(b);
	}
	/* a bad expert id (too large, negative) fails cleanly; on the device
	 * path the other rows are still right */
	for (int bad = 0; bad < 2; bad++) {
		float *b = malloc(n * dim * 4);

		ck_assert(b);
		for (i = 0; i < n * dim; i++)
			b[i] = NAN;
		ck_assert_int_eq(gpu_buf_write(og, 0, b, n * dim, NULL), 0);
		id[0] = bad ? -1 : (int32_t)ne;
		ck_assert_int_eq(gpu_buf_write(ig, 0, id, n * top_k, NULL), 0);
		xmoe_refused(p->cuda, &m->exg, og, xg, ig, wg, sg, n, dim, top_k, dev,
			     &d);
		if (dev) {
			ck_assert_int_eq(gpu_buf_read(og, 0, b, n * dim, NULL), 0);
			if (n > 1)
				ck_assert_msg(rel_l2(b + dim, r + dim, (n - 1) * dim) <= 2e-3,
					      "exl3 moe n %zu: rows after a bad id",
					      n);
		}
		{
			char want[48];

			snprintf(want, sizeof want, "expert %d of %zu",
				 bad ? -1 : (int)ne, ne);
			ck_assert_msg(strstr(d.msg, want) != NULL, "%s", d.msg);
		}
		free(b);
	}
	*got = a;
	*ref = r;
	a = r = NULL;
out:
	free(a);
	free(r);
	gpu_buf_free(xc);
	gpu_buf_free(xg);
	gpu_buf_free(ic);
	gpu_buf_free(ig);
	gpu_buf_free(wc);
	gpu_buf_free(wg);
	gpu_buf_free(oc);
	gpu_buf_free(og);
	gpu_buf_free(sc);
	gpu_buf_free(sg);
	free(x);
	free(wt);
	free(id);
}

/* gpu_moe_ffn with EXL3 experts: CUDA dispatches them on the device
 * (gpu_moe_ffn_recordable) for up to 16 rows when every expert of a kind
 * shares shape, bits and codebook, else reads the routing back (per-expert
 * gpu_exl3_matmul); both within 2e-3 relative L2 of the CPU (two f16
 * roundings of rotated activations: gate / up input and down input).
 * Shapes: dim and n_ff multiples of 128 and not (padded), gate and up at
 * the same bits (one GEMV launch) and not (two), with and without bias,
 * top_k 2 and 8 (128 assignments at 16 rows), rows 1, 3, 9 (two mma row
 * groups), 16 and 20 (host path); an expert with other bits (host path);
 * rows naming an expert twice refused on both backends;
 * the device path recorded into a graph and replayed bit for bit; bad
 * ids fail at the next gpu_sync with the other rows right. */
START_TEST(test_moe_experts)
{
	static const struct {
		size_t ne, dim, n_ff, top_k;
		int bits[3], cb[3], bias, odd, dup;
		size_t ns[5];
	} cs[] = {
		{ 6, 256, 384, 2, { 3, 3, 5 }, { 0, 0, 1 }, 0, 0, 0, { 1, 3, 9, 16, 20 } },
		{ 8, 200, 300, 8, { 4, 2, 6 }, { 2, 2, 0 }, 1, 0, 0, { 1, 16, 0, 0, 0 } },
		{ 6, 256, 384, 2, { 3, 3, 5 }, { 0, 0, 1 }, 0, 1, 0, { 1, 4, 0, 0, 0 } },
		{ 6, 256, 384, 2, { 3, 3, 5 }, { 0, 0, 1 }, 0, 0, 1, { 5, 16, 0, 0, 0 } },
	};
	struct gpu_pair p;
	size_t c, i;

	if (!gpu_pair_open(&p, 0))
		return;
	for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
		struct xmoe m;

		xmoe_make(&p, &m, cs[c].ne, cs[c].dim, cs[c].n_ff, cs[c].bits,
			  cs[c].cb, cs[c].bias, cs[c].odd);
		for (i = 0; i < 5 && cs[c].ns[i]; i++) {
			const size_t n = cs[c].ns[i];
			const int dev = !cs[c].odd && n <= 16;
			float *a, *r;
			double e;

			xmoe_case(&p, &m, n, cs[c].dim, cs[c].top_k, dev, cs[c].dup, &a,
				  &r);
			if (cs[c].dup)
				continue; /* refused, checked inside */
			e = rel_l2(a, r, n * cs[c].dim);
			ck_assert_msg(e <= 2e-3,
				      "exl3 moe case %zu n %zu (%s path): rel L2 %.3g "
				      "(seed %llu)", c, n, dev ? "device" : "host", e,
				      (unsigned long long)test_seed);
			free(a);
			free(r);
		}
		xmoe_free(&m);
	}
	gpu_pair_close(&p);
}
END_TEST

Suite *cuda_exl3_suite(void)
{
	Suite *s = suite_create("cuda_exl3");
	TCase *tc = tcase_create("parity");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_fixture);
	tcase_add_test(tc, test_random_all_k);
	tcase_add_test(tc, test_random_model_shapes);
	tcase_add_test(tc, test_multi);
	suite_add_tcase(s, tc);
	tc = tcase_create("moe");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_moe_experts);
	tcase_add_test(tc, test_residual);
	tcase_add_test(tc, test_residual_then);
	tcase_add_test(tc, test_residual_rope);
	suite_add_tcase(s, tc);
	tc = tcase_create("prefill");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_prefill_decode);
	tcase_add_test(tc, test_prefill);
	suite_add_tcase(s, tc);
	tc = tcase_create("bench");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_bench);
	suite_add_tcase(s, tc);
	return s;
}
