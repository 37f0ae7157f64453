/* tests/gpu/test_cuda_parity.c — suite cuda_parity: every op of the CUDA
 * backend against the CPU backend (the oracle) on fresh random inputs, by
 * relative L2 error ||out - ref|| / ||ref||: f32 paths <= 1e-5, paths
 * that round activations to f16/bf16 (cuBLAS with half weights, n > 8)
 * <= 1e-2; integer outputs (routing ids) and copies must match exactly.
 * Shapes hit the kernels' edges: k not a multiple of 8 (scalar GEMV), n on
 * both sides of the GEMV/cuBLAS switch, partial rotary and MRoPE, paged
 * attention across shuffled page tables with GQA, sliding window and f16
 * pools, MoE dispatch over both matmul paths, the fused gate/up + SwiGLU
 * GEMV (bit-identical to the unfused ops).  Plus device memory: an
 * impossible allocation fails cleanly (GPU_E_NOMEM, handle usable), and
 * filling the device with 1 GiB buffers and freeing them gives the same
 * count every round (freeing returns all memory).
 *
 * Without a CUDA device (or in a build without CUDA) every case prints
 * "SKIP: no CUDA device" and passes; with TERN_GPU_TESTS=1 (make
 * check-gpu) a missing device is a failure instead.  TERN_GPU_BENCH=1
 * adds the timings recorded in docs/PERFORMANCE.md.  TERN_TEST_SEED fixes
 * the random seed (printed on failure).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/cuda/cuda_impl.h"
#include "gpu/cuda/kernels.h"
#include "gpu/gpu.h"
#include "gpupair.h"
#include "testutil.h"

#ifndef HAVE_CUDA
/* Built without the CUDA backend: gpu_pair_open finds no device and every
 * test returns before this would be asked. */
void gpu_cuda_moe_grouped_stats(unsigned long *chunks, unsigned long *calls)
{
	if (chunks)
		*chunks = 0;
	if (calls)
		*calls = 0;
}
#endif

static struct gpu_buf *mkbuf(struct gpu *g, enum gpu_dtype t, const void *v,
			     size_t n)
{
	struct gpu_buf *b = NULL;
	struct diag d;

	ck_assert_msg(gpu_buf_new(g, t, n, &b, &d) == 0, "gpu_buf_new: %s",
		      diag_message(&d, "?"));
	if (v && n)
		ck_assert_int_eq(gpu_buf_write(b, 0, v, n, NULL), 0);
	return b;
}

/* Same host data in a buffer on each backend. */
struct bb {
	struct gpu_buf *c, *g;
};

static struct bb mk2(struct gpu_pair *p, enum gpu_dtype t, const void *v, size_t n)
{
	struct bb r;

	r.c = mkbuf(p->cpu, t, v, n);
	r.g = mkbuf(p->cuda, t, v, n);
	return r;
}

static void free2(struct bb b)
{
	gpu_buf_free(b.c);
	gpu_buf_free(b.g);
}

static float *rand_f32(size_t n, float scale)
{
	float *v = malloc(n * sizeof *v + 1);
	size_t i;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < n; i++)
		v[i] = test_frand() * scale;
	return v;
}

/* A random weight-like buffer of dtype t on both backends. */
static struct bb rand_w(struct gpu_pair *p, enum gpu_dtype t, size_t n, float scale)
{
	float *f = rand_f32(n, scale);
	struct bb r;
	size_t i;

	if (t != GPU_DTYPE_F32) {
		uint16_t *h = malloc(n * sizeof *h + 1);

		for (i = 0; i < n; i++)
			h[i] = t == GPU_DTYPE_BF16 ? test_to_bf16(f[i]) : test_to_f16(f[i]);
		r = mk2(p, t, h, n);
		free(h);
	} else {
		r = mk2(p, t, f, n);
	}
	free(f);
	return r;
}

/* Read n f32 of both and return ||g - c|| / ||c|| (1e30 on NaN/inf). */
static double relerr(struct bb b, size_t off, size_t n)
{
	float *c = malloc(n * sizeof *c + 1), *g = malloc(n * sizeof *g + 1);
	double num = 0, den = 0, r;
	size_t i;
	struct diag d;

	ck_assert_msg(gpu_buf_read(b.c, off, c, n, &d) == 0, "%s", diag_message(&d, "?"));
	ck_assert_msg(gpu_buf_read(b.g, off, g, n, &d) == 0, "%s", diag_message(&d, "?"));
	for (i = 0; i < n; i++) {
		if (!isfinite(g[i]) || !isfinite(c[i])) {
			free(c);
			free(g);
			return 1e30;
		}
		num += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
		den += (double)c[i] * c[i];
	}
	free(c);
	free(g);
	r = den > 0 ? sqrt(num / den) : sqrt(num);
	return r;
}

#define EXPECT_CLOSE(b, off, n, tol, ...)                                    \
	do {                                                                 \
		double e_ = relerr(b, off, n);                               \
		ck_assert_msg(e_ <= (tol), "%s: rel err %.3g > %.1g (seed %llu)", \
			      (snprintf(msgbuf, sizeof msgbuf, __VA_ARGS__), msgbuf), \
			      e_, (double)(tol), (unsigned long long)test_seed);  \
	} while (0)

static char msgbuf[256];

/* Run OP on both backends; both must succeed. */
#define BOTH(expr_c, expr_g)                                                 \
	do {                                                                 \
		struct diag d_;                                              \
		ck_assert_msg((expr_c) == 0, "cpu: %s", diag_message(&d_, "?")); \
		ck_assert_msg((expr_g) == 0, "cuda: %s", diag_message(&d_, "?")); \
	} while (0)

static const enum gpu_dtype FT[3] = { GPU_DTYPE_F32, GPU_DTYPE_F16, GPU_DTYPE_BF16 };

/* ---- get_rows ---------------------------------------------------------- */

START_TEST(test_get_rows)
{
	struct gpu_pair p;
	int32_t ids[17];
	size_t i, t;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++) {
		struct bb tab = rand_w(&p, FT[t], 50 * 300, 1.0f), bi, out;

		for (i = 0; i < 17; i++)
			ids[i] = (int32_t)test_urand(50);
		ids[3] = -1;
		ids[9] = 50; /* outside: zero row */
		bi = mk2(&p, GPU_DTYPE_I32, ids, 17);
		out = mk2(&p, GPU_DTYPE_F32, NULL, 15 * 300);
		BOTH(gpu_get_rows(p.cpu, out.c, tab.c, 50, bi.c, 2, 15, 300, &d_),
		     gpu_get_rows(p.cuda, out.g, tab.g, 50, bi.g, 2, 15, 300, &d_));
		EXPECT_CLOSE(out, 0, 15 * 300, 0.0, "get_rows %s", gpu_dtype_name(FT[t]));
		free2(tab);
		free2(bi);
		free2(out);
	}
	gpu_pair_close(&p);
}
END_TEST

/* ---- matmul ------------------------------------------------------------ */

/* Every output of out (n x rows) within tol x (sum_j |x_ij w_rj| + |b_r|)
 * of the CPU's: the error bound of a dot product, which stays meaningful
 * when cancellation makes an output (or all of them, for one row) small;
 * a relative L2 error of a single short dot product is ill-conditioned. */
static void expect_dot_close(struct bb out, const float *x, struct bb w,
			     struct bb bias, enum gpu_dtype wt, int bias_t,
			     size_t n, size_t k, size_t rows, double tol,
			     const char *what)
{
	float *c = malloc(n * rows * sizeof *c + 1), *g = malloc(n * rows * sizeof *g + 1);
	float *wf = malloc(rows * k * sizeof *wf + 1), bf = 0.0f;
	uint16_t *wh = malloc(rows * k * sizeof *wh + 1), bh;
	size_t i, r, j;

	ck_assert(c && g && wf && wh);
	ck_assert_int_eq(gpu_buf_read(out.c, 0, c, n * rows, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(out.g, 0, g, n * rows, NULL), 0);
	if (wt == GPU_DTYPE_F32) {
		ck_assert_int_eq(gpu_buf_read(w.c, 0, wf, rows * k, NULL), 0);
	} else {
		ck_assert_int_eq(gpu_buf_read(w.c, 0, wh, rows * k, NULL), 0);
		for (j = 0; j < rows * k; j++)
			wf[j] = wt == GPU_DTYPE_BF16 ? test_from_bf16(wh[j]) :
						       test_from_f16(wh[j]);
	}
	for (r = 0; r < rows; r++) {
		if (bias_t == 0)
			ck_assert_int_eq(gpu_buf_read(bias.c, r, &bf, 1, NULL), 0);
		else if (bias_t > 0) {
			ck_assert_int_eq(gpu_buf_read(bias.c, r, &bh, 1, NULL), 0);
			bf = FT[bias_t] == GPU_DTYPE_BF16 ? test_from_bf16(bh) :
							    test_from_f16(bh);
		}
		for (i = 0; i < n; i++) {
			double mag = fabs(bf), e;

			for (j = 0; j < k; j++)
				mag += fabs((double)x[i * k + j] * wf[r * k + j]);
			e = fabs((double)g[i * rows + r] - c[i * rows + r]);
			ck_assert_msg(isfinite(g[i * rows + r]) && e <= tol * mag,
				      "%s: out[%zu, %zu] cuda %.9g cpu %.9g: |diff| %.3g > "
				      "%.1g x %.4g (seed %llu)", what, i, r,
				      g[i * rows + r], c[i * rows + r], e, tol, mag,
				      (unsigned long long)test_seed);
		}
	}
	free(c);
	free(g);
	free(wf);
	free(wh);
}

static void one_matmul(struct gpu_pair *p, enum gpu_dtype wt, size_t n, size_t k,
		       size_t rows, int bias_t)
{
	float *x = rand_f32(n * k, 1.0f);
	struct bb bx = mk2(p, GPU_DTYPE_F32, x, n * k);
	struct bb bw = rand_w(p, wt, rows * k, 0.5f), bb_ = { NULL, NULL };
	struct bb out = mk2(p, GPU_DTYPE_F32, NULL, n * rows);
	/* half weights: exact-input GEMV for n <= 8 (f32 sums in another
	 * order: ~sqrt(k) ulp of sum |x w|), x rounded for cuBLAS */
	double tol = wt == GPU_DTYPE_F32 || n <= 8 ? 1e-5 : 1e-2;

	if (bias_t >= 0)
		bb_ = rand_w(p, FT[bias_t], rows, 1.0f);
	BOTH(gpu_matmul(p->cpu, out.c, bx.c, bw.c, bb_.c, n, k, rows, &d_),
	     gpu_matmul(p->cuda, out.g, bx.g, bw.g, bb_.g, n, k, rows, &d_));
	snprintf(msgbuf, sizeof msgbuf, "matmul W %s n %zu k %zu rows %zu bias %d",
		 gpu_dtype_name(wt), n, k, rows, bias_t);
	expect_dot_close(out, x, bw, bb_, wt, bias_t, n, k, rows, tol, msgbuf);
	free2(bx);
	free2(bw);
	free2(out);
	if (bias_t >= 0)
		free2(bb_);
	free(x);
}

START_TEST(test_matmul)
{
	static const size_t ns[] = { 1, 2, 3, 8, 9, 16, 17, 64, 130 };
	static const size_t ks[][2] = { { 256, 100 }, { 1000, 37 }, { 77, 50 },
					{ 4096, 8 } };
	struct gpu_pair p;
	size_t t, i, j;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++)
		for (i = 0; i < sizeof ns / sizeof ns[0]; i++)
			for (j = 0; j < sizeof ks / sizeof ks[0]; j++)
				one_matmul(&p, FT[t], ns[i], ks[j][0], ks[j][1],
					   (int)((i + j) % 4) - 1);
	gpu_pair_close(&p);
}
END_TEST

/* Half W, n = 1..16 (GEMV up to GPU_CUDA_GEMV_MAX_N, cuBLAS above): k a
 * multiple of 8 with and without a partial last group of 32 x U 16-byte
 * columns, k = 8 (one column), odd k (scalar kernel), rows not a multiple
 * of any rows-per-block, a row count that leaves a warp's last rows empty;
 * all bias types. */
START_TEST(test_gemv)
{
	static const size_t ks[][2] = { { 4096, 67 }, { 2056, 130 }, { 8, 37 },
					{ 264, 5 }, { 1032, 1 }, { 99, 21 } };
	struct gpu_pair p;
	size_t t, n, j;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 1; t < 3; t++)
		for (n = 1; n <= 16; n++)
			for (j = 0; j < sizeof ks / sizeof ks[0]; j++)
				one_matmul(&p, FT[t], n, ks[j][0], ks[j][1],
					   (int)((n + j) % 4) - 1);
	gpu_pair_close(&p);
}
END_TEST

/* gpu_matmul_multi: NP weights of dtype wt sharing x [n, k], rows[j] each
 * (biases of mixed types, part 1 without), against the CPU (tolerance of
 * gpu_matmul's path) and against gpu_matmul on CUDA part by part: the
 * GEMV path (half W, n <= 8) runs the same per-block code in one launch
 * and must give the same bits; cuBLAS runs the same GEMMs after one
 * conversion of x (1e-6 allowed). */
static void one_multi(struct gpu_pair *p, enum gpu_dtype wt, size_t n, size_t k,
		      const size_t *rows, size_t np)
{
	float *x = rand_f32(n * k, 1.0f);
	struct bb bx = mk2(p, GPU_DTYPE_F32, x, n * k);
	struct bb bw[4], bbias[4], out[4], single[4];
	struct gpu_matmul_part pc[4], pg[4];
	const int gemv = wt != GPU_DTYPE_F32 && n <= 8;
	const double tol = wt == GPU_DTYPE_F32 || n <= 8 ? 1e-5 : 1e-2;
	size_t j;

	ck_assert(np <= 4);
	for (j = 0; j < np; j++) {
		bw[j] = rand_w(p, wt, rows[j] * k, 0.5f);
		bbias[j] = j == 1 ? (struct bb){ NULL, NULL } :
			   rand_w(p, FT[(j + n) % 3], rows[j], 1.0f);
		out[j] = mk2(p, GPU_DTYPE_F32, NULL, n * rows[j]);
		/* .c: gpu_matmul on CUDA (reference), .g: unused here */
		single[j].c = mkbuf(p->cuda, GPU_DTYPE_F32, NULL, n * rows[j]);
		single[j].g = out[j].g;
		pc[j] = (struct gpu_matmul_part){ out[j].c, bw[j].c, bbias[j].c, rows[j] };
		pg[j] = (struct gpu_matmul_part){ out[j].g, bw[j].g, bbias[j].g, rows[j] };
	}
	BOTH(gpu_matmul_multi(p->cpu, bx.c, n, k, pc, np, &d_),
	     gpu_matmul_multi(p->cuda, bx.g, n, k, pg, np, &d_));
	for (j = 0; j < np; j++) {
		struct diag d;

		EXPECT_CLOSE(out[j], 0, n * rows[j], tol,
			     "matmul_multi W %s n %zu k %zu part %zu of %zu (rows %zu)",
			     gpu_dtype_name(wt), n, k, j, np, rows[j]);
		ck_assert_msg(gpu_matmul(p->cuda, single[j].c, bx.g, bw[j].g, bbias[j].g,
					 n, k, rows[j], &d) == 0, "%s",
			      diag_message(&d, "?"));
		EXPECT_CLOSE(single[j], 0, n * rows[j], gemv ? 0.0 : 1e-6,
			     "matmul_multi vs matmul on CUDA, W %s n %zu k %zu part %zu",
			     gpu_dtype_name(wt), n, k, j);
	}
	for (j = 0; j < np; j++) {
		free2(bw[j]);
		if (bbias[j].c)
			free2(bbias[j]);
		free2(out[j]);
		gpu_buf_free(single[j].c);
	}
	free2(bx);
	free(x);
}

/* n on both sides of the GEMV/cuBLAS switch; q/k/v-like parts of unequal
 * rows, k a multiple of 8 (vector GEMV), odd k (scalar GEMV), k = 8, four
 * parts with a 1-row part, and a part list whose parts end mid-block. */
START_TEST(test_matmul_multi)
{
	static const size_t ns[] = { 1, 2, 3, 8, 9, 17, 64 };
	static const size_t r_qkv[] = { 300, 100, 100 }, r_odd[] = { 67, 5 },
			    r_four[] = { 37, 1, 129, 64 }, r_big[] = { 130, 7 };
	struct gpu_pair p;
	size_t t, i;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++)
		for (i = 0; i < sizeof ns / sizeof ns[0]; i++) {
			one_multi(&p, FT[t], ns[i], 1024, r_qkv, 3);
			one_multi(&p, FT[t], ns[i], 77, r_odd, 2);
			one_multi(&p, FT[t], ns[i], 8, r_four, 4);
			one_multi(&p, FT[t], ns[i], 2056, r_big, 2);
		}
	/* one part: the same as gpu_matmul */
	one_multi(&p, GPU_DTYPE_BF16, 1, 4096, r_big, 1);
	gpu_pair_close(&p);
}
END_TEST

/* gpu_matmul_swiglu: on CUDA bit-identical to gpu_matmul_multi + gpu_swiglu
 * on CUDA (the fused GEMV for half W and n = 1, incl. a last block of
 * fewer rows; other n, cuBLAS, the scalar GEMV and f32 W through the
 * fallback),
 * and close to the CPU; mixed dtypes and aliasing refused. */
static void one_swiglu(struct gpu_pair *p, enum gpu_dtype wt, size_t n, size_t k,
		       size_t rows)
{
	float *x = rand_f32(n * k, 1.0f);
	struct bb bx = mk2(p, GPU_DTYPE_F32, x, n * k);
	struct bb wg = rand_w(p, wt, rows * k, 0.5f), wu = rand_w(p, wt, rows * k, 0.5f);
	struct bb out = mk2(p, GPU_DTYPE_F32, NULL, n * rows);
	struct bb up = mk2(p, GPU_DTYPE_F32, NULL, n * rows);
	struct bb ref = mk2(p, GPU_DTYPE_F32, NULL, n * rows);
	struct bb ru = mk2(p, GPU_DTYPE_F32, NULL, n * rows);
	struct gpu_matmul_part pt[2] = { { ref.g, wg.g, NULL, rows },
					 { ru.g, wu.g, NULL, rows } };
	float *a = malloc(n * rows * sizeof *a + 1), *b = malloc(n * rows * sizeof *b + 1);
	double tol = wt == GPU_DTYPE_F32 || n <= 8 ? 1e-4 : 1e-2;

	BOTH(gpu_matmul_swiglu(p->cpu, out.c, up.c, bx.c, wg.c, wu.c, n, k, rows, &d_),
	     gpu_matmul_swiglu(p->cuda, out.g, up.g, bx.g, wg.g, wu.g, n, k, rows, &d_));
	EXPECT_CLOSE(out, 0, n * rows, tol, "matmul_swiglu %s n %zu k %zu rows %zu",
		     gpu_dtype_name(wt), n, k, rows);
	ck_assert_int_eq(gpu_matmul_multi(p->cuda, bx.g, n, k, pt, 2, NULL), 0);
	ck_assert_int_eq(gpu_swiglu(p->cuda, ref.g, ref.g, ru.g, n * rows, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(out.g, 0, a, n * rows, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(ref.g, 0, b, n * rows, NULL), 0);
	ck_assert_msg(!memcmp(a, b, n * rows * sizeof *a),
		      "matmul_swiglu %s n %zu k %zu rows %zu: not the bits of multi "
		      "+ swiglu (seed %llu)", gpu_dtype_name(wt), n, k, rows,
		      (unsigned long long)test_seed);
	/* refused: aliasing */
	ck_assert_int_eq(gpu_matmul_swiglu(p->cuda, out.g, out.g, bx.g, wg.g, wu.g, n,
					   k, rows, NULL), GPU_E_INVALID);
	free2(bx);
	free2(wg);
	free2(wu);
	free2(out);
	free2(up);
	free2(ref);
	free2(ru);
	free(x);
	free(a);
	free(b);
}

START_TEST(test_matmul_swiglu)
{
	static const size_t ns[] = { 1, 2, 3, 5, 8, 9, 17 };
	/* rows >= 21: the CPU comparison is an L2 error over many outputs
	 * (one short dot product alone is ill-conditioned) */
	static const size_t ks[][2] = { { 4096, 67 }, { 1032, 130 }, { 99, 21 },
					{ 2056, 37 } };
	struct gpu_pair p;
	size_t t, i, j;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++)
		for (i = 0; i < sizeof ns / sizeof ns[0]; i++)
			for (j = 0; j < sizeof ks / sizeof ks[0]; j++)
				one_swiglu(&p, FT[t], ns[i], ks[j][0], ks[j][1]);
	{
		/* gate and up of different dtypes */
		struct bb bx = mk2(&p, GPU_DTYPE_F32, NULL, 64);
		struct bb wg = rand_w(&p, GPU_DTYPE_BF16, 128, 1.0f);
		struct bb wu = rand_w(&p, GPU_DTYPE_F16, 128, 1.0f);
		struct bb out = mk2(&p, GPU_DTYPE_F32, NULL, 2), up = mk2(&p, GPU_DTYPE_F32, NULL, 2);

		ck_assert_int_eq(gpu_matmul_swiglu(p.cuda, out.g, up.g, bx.g, wg.g, wu.g,
						   1, 64, 2, NULL), GPU_E_INVALID);
		free2(bx);
		free2(wg);
		free2(wu);
		free2(out);
		free2(up);
	}
	gpu_pair_close(&p);
}
END_TEST

/* gpu_swiglu_ffn: close to the CPU (1e-2 with half weights past the GEMV,
 * the bf16 intermediates of the prefill path included); where CUDA runs
 * the composition (f32 or f16 W, rows the GEMV takes) bit-identical to
 * gpu_matmul_swiglu + gpu_matmul on CUDA, and for bf16 W past the GEMV's
 * GPU_CUDA_GEMV_MAX_N rows not (the half path ran: unless
 * TERN_FFN_HALF=0, which check-gpu.sh runs too). */
static void one_swiglu_ffn(struct gpu_pair *p, enum gpu_dtype wt, size_t n,
			   size_t k, size_t n_ff)
{
	float *x = rand_f32(n * k, 1.0f);
	struct bb bx = mk2(p, GPU_DTYPE_F32, x, n * k);
	struct bb wg = rand_w(p, wt, n_ff * k, 0.5f), wu = rand_w(p, wt, n_ff * k, 0.5f);
	struct bb wd = rand_w(p, wt, k * n_ff, 0.5f);
	struct bb out = mk2(p, GPU_DTYPE_F32, NULL, n * k);
	struct bb sg = mk2(p, GPU_DTYPE_F32, NULL, n * n_ff);
	struct bb su = mk2(p, GPU_DTYPE_F32, NULL, n * n_ff);
	/* .c: the composition on CUDA */
	struct gpu_buf *ref = mkbuf(p->cuda, GPU_DTYPE_F32, NULL, n * k);
	const char *e = getenv("TERN_FFN_HALF");
	const int half = wt == GPU_DTYPE_BF16 && n > GPU_CUDA_GEMV_MAX_N &&
			 !(e && !strcmp(e, "0"));
	const double tol = wt == GPU_DTYPE_F32 || n <= 8 ? 1e-4 : 1e-2;
	float *a = malloc(n * k * sizeof *a + 1), *b = malloc(n * k * sizeof *b + 1);

	BOTH(gpu_swiglu_ffn(p->cpu, out.c, sg.c, su.c, bx.c, wg.c, wu.c, wd.c, n, k,
			    n_ff, &d_),
	     gpu_swiglu_ffn(p->cuda, out.g, sg.g, su.g, bx.g, wg.g, wu.g, wd.g, n, k,
			    n_ff, &d_));
	EXPECT_CLOSE(out, 0, n * k, tol, "swiglu_ffn %s n %zu k %zu n_ff %zu",
		     gpu_dtype_name(wt), n, k, n_ff);
	ck_assert_int_eq(gpu_matmul_swiglu(p->cuda, sg.g, su.g, bx.g, wg.g, wu.g, n,
					   k, n_ff, NULL), 0);
	ck_assert_int_eq(gpu_matmul(p->cuda, ref, sg.g, wd.g, NULL, n, n_ff, k,
				    NULL), 0);
	ck_assert_int_eq(gpu_buf_read(out.g, 0, a, n * k, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(ref, 0, b, n * k, NULL), 0);
	ck_assert_msg(!memcmp(a, b, n * k * sizeof *a) == !half,
		      "swiglu_ffn %s n %zu k %zu n_ff %zu: %s the bits of "
		      "matmul_swiglu + matmul (seed %llu)", gpu_dtype_name(wt), n,
		      k, n_ff, half ? "unexpectedly" : "not",
		      (unsigned long long)test_seed);
	free2(bx);
	free2(wg);
	free2(wu);
	free2(wd);
	free2(out);
	free2(sg);
	free2(su);
	gpu_buf_free(ref);
	free(x);
	free(a);
	free(b);
}

START_TEST(test_swiglu_ffn)
{
	static const size_t ns[] = { 1, 3, 8, 9, 16, 64, 200 };
	/* (k, n_ff): Llama-like ratios, odd sizes (cuBLAS without aligned
	 * leading dimensions), a long down product */
	static const size_t ks[][2] = { { 1024, 2816 }, { 99, 37 }, { 64, 1000 },
					{ 520, 130 } };
	struct gpu_pair p;
	size_t t, i, j;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++)
		for (i = 0; i < sizeof ns / sizeof ns[0]; i++)
			for (j = 0; j < sizeof ks / sizeof ks[0]; j++)
				one_swiglu_ffn(&p, FT[t], ns[i], ks[j][0], ks[j][1]);
	gpu_pair_close(&p);
}
END_TEST

/* ---- rmsnorm, elementwise, softmax, copy ------------------------------- */

START_TEST(test_rmsnorm)
{
	struct gpu_pair p;
	size_t t;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++) {
		const size_t n = 7, dim = t == 2 ? 4096 : 1000;
		float *x = rand_f32(n * dim, 3.0f);
		struct bb bx = mk2(&p, GPU_DTYPE_F32, x, n * dim);
		struct bb w = rand_w(&p, FT[t], dim, 1.0f);
		struct bb out = mk2(&p, GPU_DTYPE_F32, NULL, n * dim);

		BOTH(gpu_rmsnorm(p.cpu, out.c, bx.c, w.c, n, dim, 1e-6f, &d_),
		     gpu_rmsnorm(p.cuda, out.g, bx.g, w.g, n, dim, 1e-6f, &d_));
		EXPECT_CLOSE(out, 0, n * dim, 1e-5, "rmsnorm %s", gpu_dtype_name(FT[t]));
		/* in place */
		BOTH(gpu_rmsnorm(p.cpu, bx.c, bx.c, w.c, n, dim, 1e-5f, &d_),
		     gpu_rmsnorm(p.cuda, bx.g, bx.g, w.g, n, dim, 1e-5f, &d_));
		EXPECT_CLOSE(bx, 0, n * dim, 1e-5, "rmsnorm in place %s",
			     gpu_dtype_name(FT[t]));
		free2(bx);
		free2(w);
		free2(out);
		free(x);
	}
	gpu_pair_close(&p);
}
END_TEST

/* rmsnorm and add_rmsnorm on every kernel shape: float4 rows of one warp
 * (dim 64, 128: 4 rows per block, a partial last block), 1..8 vectors per
 * thread up to dim 16384, rows too wide for registers (20000, 4097:
 * loops), scalar rows (dim % 4 != 0: 67, 1000 + 2, 5, 1); x += o must be
 * exact, the norm within 1e-5. */
START_TEST(test_norms)
{
	static const size_t cs[][2] = { { 1, 4096 }, { 7, 8192 }, { 3, 16384 },
					{ 2, 20000 }, { 33, 1000 }, { 5, 67 },
					{ 4, 4097 }, { 130, 128 }, { 9, 64 },
					{ 3, 1002 }, { 1, 1 }, { 2, 5120 },
					{ 6, 5 }, { 2, 14336 } };
	struct gpu_pair p;
	size_t c;

	if (!gpu_pair_open(&p, 3))
		return;
	for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
		const size_t n = cs[c][0], dim = cs[c][1], ne = n * dim;
		const enum gpu_dtype wt = FT[c % 3];
		float *x = rand_f32(ne, 3.0f), *o = rand_f32(ne, 1.0f);
		struct bb bx = mk2(&p, GPU_DTYPE_F32, x, ne);
		struct bb bo = mk2(&p, GPU_DTYPE_F32, o, ne);
		struct bb xn = mk2(&p, GPU_DTYPE_F32, NULL, ne);
		struct bb w = rand_w(&p, wt, dim, 1.0f);

		BOTH(gpu_rmsnorm(p.cpu, xn.c, bx.c, w.c, n, dim, 1e-6f, &d_),
		     gpu_rmsnorm(p.cuda, xn.g, bx.g, w.g, n, dim, 1e-6f, &d_));
		EXPECT_CLOSE(xn, 0, ne, 1e-5, "rmsnorm n %zu dim %zu w %s", n, dim,
			     gpu_dtype_name(wt));
		BOTH(gpu_add_rmsnorm(p.cpu, bx.c, xn.c, bo.c, w.c, n, dim, 1e-5f, &d_),
		     gpu_add_rmsnorm(p.cuda, bx.g, xn.g, bo.g, w.g, n, dim, 1e-5f, &d_));
		EXPECT_CLOSE(bx, 0, ne, 0.0, "add_rmsnorm x n %zu dim %zu", n, dim);
		EXPECT_CLOSE(xn, 0, ne, 1e-5, "add_rmsnorm xn n %zu dim %zu w %s", n,
			     dim, gpu_dtype_name(wt));
		/* in place (the q/k norm of Qwen3) */
		BOTH(gpu_rmsnorm(p.cpu, bx.c, bx.c, w.c, n, dim, 1e-6f, &d_),
		     gpu_rmsnorm(p.cuda, bx.g, bx.g, w.g, n, dim, 1e-6f, &d_));
		EXPECT_CLOSE(bx, 0, ne, 1e-5, "rmsnorm in place n %zu dim %zu", n, dim);
		free2(bx);
		free2(bo);
		free2(xn);
		free2(w);
		free(x);
		free(o);
	}
	gpu_pair_close(&p);
}
END_TEST

START_TEST(test_elementwise)
{
	const size_t n = 100003, rows = 37, dim = 513;
	struct gpu_pair p;
	float *a, *b, *gate;
	struct bb ba, bbv, bo, by, bg;

	if (!gpu_pair_open(&p, 3))
		return;
	a = rand_f32(n, 6.0f);
	b = rand_f32(n, 2.0f);
	gate = rand_f32(rows, 4.0f);
	ba = mk2(&p, GPU_DTYPE_F32, a, n);
	bbv = mk2(&p, GPU_DTYPE_F32, b, n);
	bo = mk2(&p, GPU_DTYPE_F32, NULL, n);
	BOTH(gpu_swiglu(p.cpu, bo.c, ba.c, bbv.c, n, &d_),
	     gpu_swiglu(p.cuda, bo.g, ba.g, bbv.g, n, &d_));
	EXPECT_CLOSE(bo, 0, n, 1e-6, "swiglu");
	BOTH(gpu_add(p.cpu, bo.c, ba.c, bbv.c, n, &d_),
	     gpu_add(p.cuda, bo.g, ba.g, bbv.g, n, &d_));
	EXPECT_CLOSE(bo, 0, n, 1e-7, "add");
	/* out == a, and swiglu in place on up */
	BOTH(gpu_add(p.cpu, ba.c, ba.c, bbv.c, n, &d_),
	     gpu_add(p.cuda, ba.g, ba.g, bbv.g, n, &d_));
	EXPECT_CLOSE(ba, 0, n, 1e-7, "add in place");
	BOTH(gpu_swiglu(p.cpu, bbv.c, ba.c, bbv.c, n, &d_),
	     gpu_swiglu(p.cuda, bbv.g, ba.g, bbv.g, n, &d_));
	EXPECT_CLOSE(bbv, 0, n, 1e-6, "swiglu in place");
	/* gated residual: out [rows, dim] += sigmoid(gate) * y */
	by = mk2(&p, GPU_DTYPE_F32, b, rows * dim);
	bg = mk2(&p, GPU_DTYPE_F32, gate, rows);
	BOTH(gpu_add_gated(p.cpu, bo.c, by.c, bg.c, rows, dim, &d_),
	     gpu_add_gated(p.cuda, bo.g, by.g, bg.g, rows, dim, &d_));
	EXPECT_CLOSE(bo, 0, n, 1e-6, "add_gated");
	/* softmax on wide and narrow rows, large logits */
	BOTH(gpu_softmax(p.cpu, ba.c, 25, 4000, &d_),
	     gpu_softmax(p.cuda, ba.g, 25, 4000, &d_));
	EXPECT_CLOSE(ba, 0, 25 * 4000, 1e-5, "softmax 4000");
	BOTH(gpu_softmax(p.cpu, bo.c, 1000, 7, &d_),
	     gpu_softmax(p.cuda, bo.g, 1000, 7, &d_));
	EXPECT_CLOSE(bo, 0, 7000, 1e-5, "softmax 7");
	/* copy: device to device within and between buffers (same data on
	 * both backends first: the results above differ by rounding) */
	ck_assert_int_eq(gpu_buf_write(ba.c, 0, a, n, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(ba.g, 0, a, n, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bo.c, 0, b, n, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bo.g, 0, b, n, NULL), 0);
	BOTH(gpu_copy(p.cpu, bo.c, 11, ba.c, 5, 5000, &d_),
	     gpu_copy(p.cuda, bo.g, 11, ba.g, 5, 5000, &d_));
	EXPECT_CLOSE(bo, 0, n, 0.0, "copy");
	BOTH(gpu_copy(p.cpu, bo.c, 0, bo.c, 60000, 30000, &d_),
	     gpu_copy(p.cuda, bo.g, 0, bo.g, 60000, 30000, &d_));
	EXPECT_CLOSE(bo, 0, n, 0.0, "copy within");
	{
		struct diag d;

		ck_assert_int_eq(gpu_buf_zero(bo.g, &d), 0);
		ck_assert_int_eq(gpu_buf_zero(bo.c, &d), 0);
		EXPECT_CLOSE(bo, 0, n, 0.0, "zero");
	}
	free2(ba);
	free2(bbv);
	free2(bo);
	free2(by);
	free2(bg);
	free(a);
	free(b);
	free(gate);
	gpu_pair_close(&p);
}
END_TEST

/* ---- rope -------------------------------------------------------------- */

START_TEST(test_rope)
{
	static const struct {
		size_t n_head, head_dim, n_rot;
		int mrope;
		float af;
	} cs[] = {
		{ 8, 128, 128, 0, 1.0f },
		{ 5, 128, 64, 0, 0.7f },   /* partial rotary, yarn-like factor */
		{ 4, 128, 128, 1, 1.0f },  /* MRoPE 16+24+24 */
		{ 2, 512, 512, 0, 1.0f },
	};
	static const int sec[3] = { 16, 24, 24 };
	struct gpu_pair p;
	size_t c, i;

	if (!gpu_pair_open(&p, 3))
		return;
	for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
		const size_t n = 13, half = cs[c].n_rot / 2;
		const size_t nx = n * cs[c].n_head * cs[c].head_dim;
		float *x = rand_f32(nx, 2.0f), *inv = malloc(half * sizeof *inv);
		int32_t pos[3 * 13];
		struct gpu_rope rp = { cs[c].n_rot, cs[c].af,
				       cs[c].mrope ? sec : NULL, NULL, NULL, 0.0f };
		struct bb bx, bp, bi;

		for (i = 0; i < half; i++)
			inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)cs[c].n_rot);
		for (i = 0; i < 3 * n; i++)
			pos[i] = (int32_t)test_urand(8000);
		bx = mk2(&p, GPU_DTYPE_F32, x, nx);
		bp = mk2(&p, GPU_DTYPE_I32, pos, 3 * n);
		bi = mk2(&p, GPU_DTYPE_F32, inv, half);
		BOTH(gpu_rope(p.cpu, bx.c, n, cs[c].n_head, cs[c].head_dim, bp.c,
			      bi.c, &rp, &d_),
		     gpu_rope(p.cuda, bx.g, n, cs[c].n_head, cs[c].head_dim, bp.g,
			      bi.g, &rp, &d_));
		EXPECT_CLOSE(bx, 0, nx, 1e-5, "rope case %zu", c);
		free2(bx);
		free2(bp);
		free2(bi);
		free(x);
		free(inv);
	}
	gpu_pair_close(&p);
}
END_TEST

/* ---- rope + kv_store ---------------------------------------------------- */

/* PT[0..n_pt) = the first n_pt entries of a random permutation of the
 * pool's pages 0..n_pages-1 (Fisher-Yates on test_urand): the page tables
 * of both sequences, distinct pages scattered over the pool. */
static void shuffled_pages(int32_t *pt, size_t n_pt, size_t n_pages)
{
	int32_t *perm = malloc(n_pages * sizeof *perm);
	size_t i;

	ck_assert_ptr_nonnull(perm);
	ck_assert(n_pt <= n_pages);
	for (i = 0; i < n_pages; i++)
		perm[i] = (int32_t)i;
	for (i = n_pages - 1; i > 0; i--) {
		size_t j = test_urand((unsigned)i + 1);
		int32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < n_pt; i++)
		pt[i] = perm[i];
	free(perm);
}

/* Random pool contents (the same bytes on both backends): n elements of
 * kvt, values in [-1, 1). */
static void fill_pool(struct bb b, enum gpu_dtype kvt, size_t n)
{
	size_t i;

	if (kvt == GPU_DTYPE_F16) {
		uint16_t *h = malloc(n * sizeof *h + 1);

		for (i = 0; i < n; i++)
			h[i] = test_to_f16(test_frand());
		ck_assert_int_eq(gpu_buf_write(b.c, 0, h, n, NULL), 0);
		ck_assert_int_eq(gpu_buf_write(b.g, 0, h, n, NULL), 0);
		free(h);
	} else {
		float *f = rand_f32(n, 1.0f);

		ck_assert_int_eq(gpu_buf_write(b.c, 0, f, n, NULL), 0);
		ck_assert_int_eq(gpu_buf_write(b.g, 0, f, n, NULL), 0);
		free(f);
	}
}


static float half_to_f32(uint16_t h)
{
	int e = (h >> 10) & 31;
	double m = (double)(h & 1023) / 1024.0;
	double v = e == 31 ? INFINITY : e ? ldexp(1.0 + m, e - 15) : ldexp(m, -14);

	return (float)((h & 0x8000) ? -v : v);
}

/* Pools of both backends: f32 within tol (tol 0: the same values); f16
 * compared as values within tol (tol 0: the same bits). */
static void expect_pool(struct bb b, enum gpu_dtype kvt, size_t n, double tol,
			const char *what)
{
	if (kvt == GPU_DTYPE_F32) {
		EXPECT_CLOSE(b, 0, n, tol, "%s", what);
	} else {
		uint16_t *hc = malloc(n * 2 + 2), *hg = malloc(n * 2 + 2);
		double num = 0, den = 0;
		size_t i;

		ck_assert_int_eq(gpu_buf_read(b.c, 0, hc, n, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(b.g, 0, hg, n, NULL), 0);
		if (tol == 0.0) {
			ck_assert_msg(!memcmp(hc, hg, n * 2), "%s: f16 bits differ (seed %llu)",
				      what, (unsigned long long)test_seed);
		} else {
			for (i = 0; i < n; i++) {
				double c = half_to_f32(hc[i]), g = half_to_f32(hg[i]);

				num += (g - c) * (g - c);
				den += c * c;
			}
			ck_assert_msg(sqrt(num / (den > 0 ? den : 1)) <= tol,
				      "%s: f16 rel err %.3g > %.1g (seed %llu)", what,
				      sqrt(num / (den > 0 ? den : 1)), tol,
				      (unsigned long long)test_seed);
		}
		free(hc);
		free(hg);
	}
}

/* gpu_rope_kv_store on CUDA against the CPU: n rows of two sequences
 * (row i: sequence i % 2, cache position 5 (i / 2)) over shuffled pages
 * whose pools start with random contents (so a stray or missing store
 * shows), RoPE positions random and unrelated to the cache positions
 * (distinct per MRoPE component).  q, k within 1e-5; the K pool within
 * 1e-5 (f32) or as f16 values within 1e-3 (a rounding of an f32 key that
 * differs in its last bit may flip); V exactly.
 * Then the same with n_bad invalid rows appended (sequence out of range,
 * negative position, position past the table, page entry -1, page entry
 * past the pool): CUDA must rotate their q, k and store nothing for them;
 * the reference is the CPU's gpu_rope on all rows and gpu_kv_store on the
 * valid prefix. */
static void one_rope_kv_n(struct gpu_pair *p, enum gpu_dtype kvt, size_t n_head,
			  size_t n_head_kv, size_t hd, size_t n_rot, int mrope,
			  float af, size_t ps, size_t n, int norm)
{
	enum { N_BAD = 5 };
	const size_t nt = n + N_BAD, half = n_rot / 2;
	/* valid positions stay below the last page, which is made invalid */
	const size_t max_pages = (5 * ((n + 1) / 2) + 1 + ps - 1) / ps + 2;
	const size_t n_pages = 2 * max_pages + 3, row = n_head_kv * hd;
	const size_t poolel = n_pages * ps * row, nq = nt * n_head * hd;
	const size_t nk = nt * row;
	const int sec[3] = { (int)half / 4, (int)(half * 3 / 8),
			     (int)(half - half / 4 - half * 3 / 8) };
	int32_t *pt = malloc(2 * max_pages * sizeof *pt);
	int32_t *seqs = malloc(nt * sizeof *seqs), *poss = malloc(nt * sizeof *poss);
	int32_t *rpos = malloc(3 * nt * sizeof *rpos);
	float *q = rand_f32(nq, 2.0f), *k = rand_f32(nk, 2.0f), *v = rand_f32(nk, 1.0f);
	float *inv = malloc(half * sizeof *inv);
	struct gpu_rope rp = { n_rot, af, mrope ? sec : NULL, NULL, NULL, 0.0f };
	/* rp without the q/k norm, for the CPU's separate ops (round 1) */
	const struct gpu_rope rp0 = rp;
	struct bb bq, bk, bv, bp, bi, bseq, bpos, bpt, kpool, vpool, nq_, nk_;
	struct gpu_kv_pool pc, pg;
	struct gpu_kv_batch bc, bg;
	size_t i, round;

	shuffled_pages(pt, 2 * max_pages, n_pages);
	pt[max_pages - 1] = -1;                      /* seq 0, last page */
	pt[2 * max_pages - 1] = (int32_t)n_pages;     /* seq 1, last page */
	for (i = 0; i < n; i++) {
		seqs[i] = (int32_t)(i % 2);
		poss[i] = (int32_t)(5 * (i / 2));
	}
	/* the invalid rows */
	seqs[n] = 2;
	poss[n] = 0;
	seqs[n + 1] = 0;
	poss[n + 1] = -1;
	seqs[n + 2] = 1;
	poss[n + 2] = (int32_t)(max_pages * ps);
	seqs[n + 3] = 0;
	poss[n + 3] = (int32_t)((max_pages - 1) * ps + 1);
	seqs[n + 4] = 1;
	poss[n + 4] = (int32_t)((max_pages - 1) * ps);
	for (i = 0; i < 3 * nt; i++)
		rpos[i] = (int32_t)test_urand(8000);
	for (i = 0; i < half; i++)
		inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)n_rot);
	bp = mk2(p, GPU_DTYPE_I32, NULL, 3 * nt);
	bi = mk2(p, GPU_DTYPE_F32, inv, half);
	bseq = mk2(p, GPU_DTYPE_I32, seqs, nt);
	bpos = mk2(p, GPU_DTYPE_I32, poss, nt);
	bpt = mk2(p, GPU_DTYPE_I32, pt, 2 * max_pages);
	kpool = mk2(p, kvt, NULL, poolel);
	vpool = mk2(p, kvt, NULL, poolel);
	/* norm 1: q and k norm weights bf16 (inside the launch); 2: bf16 and
	 * f16 (two norm launches first) */
	nq_ = rand_w(p, GPU_DTYPE_BF16, hd, 1.0f);
	nk_ = rand_w(p, norm == 2 ? GPU_DTYPE_F16 : GPU_DTYPE_BF16, hd, 1.0f);
	if (norm)
		rp.norm_eps = 1e-6f;
	pc = (struct gpu_kv_pool){ kpool.c, vpool.c, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	pg = (struct gpu_kv_pool){ kpool.g, vpool.g, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	for (round = 0; round < 2; round++) {
		/* round 0: the n valid rows; round 1: all nt rows, the last
		 * N_BAD invalid */
		const size_t nr = round ? nt : n;

		/* positions [3][nr]: the MRoPE rows are nr apart */
		ck_assert_int_eq(gpu_buf_write(bp.c, 0, rpos, 3 * nr, NULL), 0);
		ck_assert_int_eq(gpu_buf_write(bp.g, 0, rpos, 3 * nr, NULL), 0);
		bq = mk2(p, GPU_DTYPE_F32, q, nr * n_head * hd);
		bk = mk2(p, GPU_DTYPE_F32, k, nr * row);
		bv = mk2(p, GPU_DTYPE_F32, v, nr * row);
		fill_pool(kpool, kvt, poolel);
		fill_pool(vpool, kvt, poolel);
		bc = (struct gpu_kv_batch){ nr, bseq.c, bpos.c, bpt.c, 2, max_pages, false };
		bg = (struct gpu_kv_batch){ nr, bseq.g, bpos.g, bpt.g, 2, max_pages, false };
		if (round == 0) {
			struct gpu_rope rc_ = rp, rg_ = rp;

			if (norm) {
				rc_.q_norm = nq_.c;
				rc_.k_norm = nk_.c;
				rg_.q_norm = nq_.g;
				rg_.k_norm = nk_.g;
			}
			BOTH(gpu_rope_kv_store(p->cpu, bq.c, bk.c, bv.c, n_head, bp.c, bi.c,
					       &rc_, &pc, &bc, &d_),
			     gpu_rope_kv_store(p->cuda, bq.g, bk.g, bv.g, n_head, bp.g,
					       bi.g, &rg_, &pg, &bg, &d_));
		} else {
			struct gpu_rope rg_ = rp;
			struct diag d;

			if (norm) {
				rg_.q_norm = nq_.g;
				rg_.k_norm = nk_.g;
			}
			struct gpu_rope rc_ = rp0;

			if (norm) {
				rc_.q_norm = nq_.c;
				rc_.k_norm = nk_.c;
				rc_.norm_eps = rp.norm_eps;
			}
			/* the CPU refuses the batch and changes nothing (with
			 * the norm too: q, k are normalised below once) */
			ck_assert_int_eq(gpu_rope_kv_store(p->cpu, bq.c, bk.c, bv.c, n_head,
							   bp.c, bi.c, &rc_, &pc, &bc, &d),
					 GPU_E_INVALID);
			bc.n_rows = n;
			if (norm) {
				/* the fused norm is gpu_rmsnorm per head */
				ck_assert_int_eq(gpu_rmsnorm(p->cpu, bq.c, bq.c, nq_.c,
							     nr * n_head, hd,
							     rp.norm_eps, NULL), 0);
				ck_assert_int_eq(gpu_rmsnorm(p->cpu, bk.c, bk.c, nk_.c,
							     nr * n_head_kv, hd,
							     rp.norm_eps, NULL), 0);
			}
			BOTH(gpu_rope(p->cpu, bq.c, nr, n_head, hd, bp.c, bi.c, &rp0, &d_),
			     gpu_rope_kv_store(p->cuda, bq.g, bk.g, bv.g, n_head, bp.g,
					       bi.g, &rg_, &pg, &bg, &d_));
			BOTH(gpu_rope(p->cpu, bk.c, nr, n_head_kv, hd, bp.c, bi.c, &rp0,
				      &d_),
			     gpu_kv_store(p->cpu, &pc, &bc, bk.c, bv.c, &d_));
		}
		EXPECT_CLOSE(bq, 0, nr * n_head * hd, 1e-5,
			     "rope_kv_store q %s heads %zu/%zu hd %zu rot %zu mrope %d rows %zu norm %d",
			     gpu_dtype_name(kvt), n_head, n_head_kv, hd, n_rot, mrope, nr,
			     norm);
		EXPECT_CLOSE(bk, 0, nr * row, 1e-5,
			     "rope_kv_store k %s heads %zu/%zu hd %zu rot %zu mrope %d rows %zu norm %d",
			     gpu_dtype_name(kvt), n_head, n_head_kv, hd, n_rot, mrope, nr,
			     norm);
		{
			char what[160];

			snprintf(what, sizeof what,
				 "rope_kv_store K pool %s hd %zu rot %zu page %zu rows %zu",
				 gpu_dtype_name(kvt), hd, n_rot, ps, nr);
			expect_pool(kpool, kvt, poolel,
				    kvt == GPU_DTYPE_F32 ? 1e-5 : 1e-3, what);
			snprintf(what, sizeof what,
				 "rope_kv_store V pool %s hd %zu rot %zu page %zu rows %zu",
				 gpu_dtype_name(kvt), hd, n_rot, ps, nr);
			expect_pool(vpool, kvt, poolel, 0.0, what);
		}
		free2(bq);
		free2(bk);
		free2(bv);
	}
	free2(bp);
	free2(bi);
	free2(bseq);
	free2(bpos);
	free2(bpt);
	free2(kpool);
	free2(vpool);
	free2(nq_);
	free2(nk_);
	free(pt);
	free(seqs);
	free(poss);
	free(rpos);
	free(q);
	free(k);
	free(v);
	free(inv);
}

static void one_rope_kv(struct gpu_pair *p, enum gpu_dtype kvt, size_t n_head,
			size_t n_head_kv, size_t hd, size_t n_rot, int mrope,
			float af, size_t ps, size_t n)
{
	one_rope_kv_n(p, kvt, n_head, n_head_kv, hd, n_rot, mrope, af, ps, n, 0);
}

START_TEST(test_rope_kv_store)
{
	struct gpu_pair p;

	if (!gpu_pair_open(&p, 3))
		return;
	/* llama-3 decode and prefill shapes, f16 and f32 pools */
	one_rope_kv(&p, GPU_DTYPE_F16, 32, 8, 128, 128, 0, 1.0f, 256, 1);
	one_rope_kv(&p, GPU_DTYPE_F32, 32, 8, 128, 128, 0, 1.0f, 16, 37);
	one_rope_kv(&p, GPU_DTYPE_F16, 32, 8, 128, 128, 0, 1.0f, 16, 300);
	/* MRoPE (Qwen2-VL 16+24+24 of 64), partial rotary with a factor,
	 * head_dim 512 (8 pairs per lane), half = 33 (a second, partial lane
	 * pass), head_dim not a multiple of 4 with an unrotated tail, MHA */
	one_rope_kv(&p, GPU_DTYPE_F16, 28, 4, 128, 128, 1, 1.0f, 16, 13);
	one_rope_kv(&p, GPU_DTYPE_F32, 12, 2, 128, 128, 1, 1.0f, 7, 8);
	one_rope_kv(&p, GPU_DTYPE_F32, 5, 1, 80, 64, 0, 0.7f, 9, 11);
	one_rope_kv(&p, GPU_DTYPE_F16, 2, 2, 512, 512, 0, 1.0f, 4, 5);
	one_rope_kv(&p, GPU_DTYPE_F32, 4, 2, 66, 66, 0, 1.0f, 5, 6);
	one_rope_kv(&p, GPU_DTYPE_F16, 6, 3, 82, 64, 0, 1.0f, 7, 20);
	one_rope_kv(&p, GPU_DTYPE_F32, 4, 4, 64, 32, 1, 1.2f, 16, 3);
	/* with the q/k norm (Qwen3) inside the launch, and (norm 2) with
	 * weights of two types; partial rotary: the normed tail too */
	one_rope_kv_n(&p, GPU_DTYPE_F16, 32, 4, 128, 128, 0, 1.0f, 16, 1, 1);
	one_rope_kv_n(&p, GPU_DTYPE_F32, 16, 4, 128, 128, 0, 1.0f, 16, 37, 1);
	one_rope_kv_n(&p, GPU_DTYPE_F32, 5, 1, 80, 64, 0, 0.7f, 9, 11, 1);
	one_rope_kv_n(&p, GPU_DTYPE_F32, 6, 3, 82, 64, 0, 1.0f, 7, 20, 2);
	gpu_pair_close(&p);
}
END_TEST

/* ---- kv_store + attention ---------------------------------------------- */

/* Tolerance of rows that the prefill kernel takes (batches of >= 16 rows,
 * 64-row tiles of one sequence, head_dim % 8 == 0 and <= 256): f16 pool:
 * Q and P rounded to f16; f32 pool: split bf16 (hi + lo) products. */
static double att_tc_tol(enum gpu_dtype kvt, size_t hd)
{
	if (hd % 8 || hd > 256)
		return 1e-5;
	return kvt == GPU_DTYPE_F16 ? 2e-3 : 1e-4;
}

/* The bound for decode rows over a page table of table_span positions
 * (window: the row's, 0 for none): f32-accurate (1e-5) from the per-lane
 * decode kernel; where the tensor-core decode kernel takes them
 * (gpu/cuda/attention.cu, dtc_use: f16 pools of head_dim a multiple of 8
 * up to 128 over spans of 1024 positions or more, quantized pools of
 * head_dim 64 or 128 over 4096 or more, and with TERN_ATT_TC=1 those at
 * every span), q and
 * p are rounded to f16 as in the prefill kernel: 2e-3. */
static double dec_tol(int quant, enum gpu_dtype kvt, size_t hd, size_t table_span,
		      size_t window)
{
	const char *e = getenv("TERN_ATT_TC");
	const int force = e && !strcmp(e, "1"), never = e && !strcmp(e, "0");
	const size_t span = window && window < table_span ? window : table_span;

	if (never)
		return 1e-5;
	if (quant)
		return (force || span >= 4096) && (hd == 64 || hd == 128) ? 2e-3 : 1e-5;
	if (kvt != GPU_DTYPE_F16 || hd % 8 || hd > 128)
		return 1e-5;
	return force || span >= 1024 ? 2e-3 : 1e-5;
}

/* gpu_attention of BQ into OUT on both backends (CPU: pool PC, batch BC;
 * CUDA: PG, BG), scale 1/sqrt(hd); both must succeed. */
static void attention2(struct gpu_pair *p, struct bb out, struct bb bq,
		       const struct gpu_kv_pool *pc, const struct gpu_kv_pool *pg,
		       const struct gpu_kv_batch *bc, const struct gpu_kv_batch *bg,
		       size_t n_head, size_t hd, size_t window)
{
	BOTH(gpu_attention(p->cpu, out.c, bq.c, pc, bc, n_head,
			   1.0f / sqrtf((float)hd), window, &d_),
	     gpu_attention(p->cuda, out.g, bq.g, pg, bg, n_head,
			   1.0f / sqrtf((float)hd), window, &d_));
}

static void one_attention(struct gpu_pair *p, enum gpu_dtype kvt, size_t n_head,
			  size_t n_head_kv, size_t hd, size_t ps, size_t window)
{
	/* two sequences: seq 0 holds 75 positions, seq 1 holds 130; pages of
	 * both are interleaved in a shuffled pool */
	const size_t len[2] = { 75, 130 }, max_pages = 32;
	const size_t n_pages = 2 * max_pages + 3;
	const size_t row = n_head_kv * hd;
	int32_t pt[2 * 32], *seqs, *poss;
	size_t i, s, n_all = len[0] + len[1], nq;
	float *k, *v, *q;
	struct bb bk, bv, bseq, bpos, bpt, kpool, vpool, bq, out;
	struct gpu_kv_pool pc, pg;
	struct gpu_kv_batch bc, bg;

	shuffled_pages(pt, 2 * max_pages, n_pages);
	/* store every position of both sequences (rows in mixed order) */
	seqs = malloc(n_all * sizeof *seqs);
	poss = malloc(n_all * sizeof *poss);
	{
		size_t a = 0, b = 0;

		for (i = 0; i < n_all; i++) {
			if ((i % 2 == 0 && a < len[0]) || b >= len[1]) {
				seqs[i] = 0;
				poss[i] = (int32_t)a++;
			} else {
				seqs[i] = 1;
				poss[i] = (int32_t)b++;
			}
		}
	}
	k = rand_f32(n_all * row, 1.0f);
	v = rand_f32(n_all * row, 1.0f);
	bk = mk2(p, GPU_DTYPE_F32, k, n_all * row);
	bv = mk2(p, GPU_DTYPE_F32, v, n_all * row);
	bseq = mk2(p, GPU_DTYPE_I32, seqs, n_all);
	bpos = mk2(p, GPU_DTYPE_I32, poss, n_all);
	bpt = mk2(p, GPU_DTYPE_I32, pt, 2 * max_pages);
	kpool = mk2(p, kvt, NULL, n_pages * ps * row);
	vpool = mk2(p, kvt, NULL, n_pages * ps * row);
	gpu_buf_zero(kpool.c, NULL);
	gpu_buf_zero(kpool.g, NULL);
	gpu_buf_zero(vpool.c, NULL);
	gpu_buf_zero(vpool.g, NULL);
	pc = (struct gpu_kv_pool){ kpool.c, vpool.c, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	pg = (struct gpu_kv_pool){ kpool.g, vpool.g, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	bc = (struct gpu_kv_batch){ n_all, bseq.c, bpos.c, bpt.c, 2, max_pages, false };
	bg = (struct gpu_kv_batch){ n_all, bseq.g, bpos.g, bpt.g, 2, max_pages, false };
	BOTH(gpu_kv_store(p->cpu, &pc, &bc, bk.c, bv.c, &d_),
	     gpu_kv_store(p->cuda, &pg, &bg, bk.g, bv.g, &d_));
	if (kvt == GPU_DTYPE_F32) {
		EXPECT_CLOSE(kpool, 0, n_pages * ps * row, 0.0, "kv_store K");
		EXPECT_CLOSE(vpool, 0, n_pages * ps * row, 0.0, "kv_store V");
	} else {
		/* compare the f16 bits through an f32 view: read as halves */
		uint16_t *hc = malloc(n_pages * ps * row * 2), *hg = malloc(n_pages * ps * row * 2);

		gpu_sync(p->cuda, NULL);
		ck_assert_int_eq(gpu_buf_read(kpool.c, 0, hc, n_pages * ps * row, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(kpool.g, 0, hg, n_pages * ps * row, NULL), 0);
		ck_assert_msg(!memcmp(hc, hg, n_pages * ps * row * 2),
			      "kv_store f16 K differs (seed %llu)", (unsigned long long)test_seed);
		ck_assert_int_eq(gpu_buf_read(vpool.c, 0, hc, n_pages * ps * row, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(vpool.g, 0, hg, n_pages * ps * row, NULL), 0);
		ck_assert_msg(!memcmp(hc, hg, n_pages * ps * row * 2),
			      "kv_store f16 V differs (seed %llu)", (unsigned long long)test_seed);
		free(hc);
		free(hg);
	}
	/* queries: prefill-like rows of seq 1 (positions 0..39 and 100..129)
	 * and decode rows (last position of each sequence) */
	nq = 0;
	for (i = 0; i < 40; i++, nq++) {
		seqs[nq] = 1;
		poss[nq] = (int32_t)i;
	}
	for (i = 100; i < 130; i++, nq++) {
		seqs[nq] = 1;
		poss[nq] = (int32_t)i;
	}
	for (s = 0; s < 2; s++, nq++) {
		seqs[nq] = (int32_t)s;
		poss[nq] = (int32_t)len[s] - 1;
	}
	ck_assert_int_eq(gpu_buf_write(bseq.c, 0, seqs, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bseq.g, 0, seqs, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.c, 0, poss, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.g, 0, poss, nq, NULL), 0);
	q = rand_f32(nq * n_head * hd, 2.0f);
	bq = mk2(p, GPU_DTYPE_F32, q, nq * n_head * hd);
	out = mk2(p, GPU_DTYPE_F32, NULL, nq * n_head * hd);
	bc.n_rows = bg.n_rows = nq;
	attention2(p, out, bq, &pc, &pg, &bc, &bg, n_head, hd, window);
	/* rows 0..63 (one sequence) go to the tensor-core prefill kernel
	 * when head_dim allows (Q, P and K/V rounded to 16 bits); the last 8
	 * (two sequences) to the exact f32 decode kernel */
	EXPECT_CLOSE(out, 0, 64 * n_head * hd, att_tc_tol(kvt, hd),
		     "attention %s heads %zu/%zu hd %zu page %zu window %zu",
		     gpu_dtype_name(kvt), n_head, n_head_kv, hd, ps, window);
	EXPECT_CLOSE(out, 64 * n_head * hd, (nq - 64) * n_head * hd,
		     dec_tol(0, kvt, hd, max_pages * ps, window),
		     "attention (mixed tile) %s heads %zu/%zu hd %zu page %zu window %zu",
		     gpu_dtype_name(kvt), n_head, n_head_kv, hd, ps, window);
	free2(bk);
	free2(bv);
	free2(bseq);
	free2(bpos);
	free2(bpt);
	free2(kpool);
	free2(vpool);
	free2(bq);
	free2(out);
	free(k);
	free(v);
	free(q);
	free(seqs);
	free(poss);
}

/* Prefill-size batch: sequence 0 holds L positions, sequence 1 holds 50;
 * the batch is 3 decode-like rows (both sequences: a mixed 64-row tile,
 * decode kernel, exact) then the rows of sequence 0 at positions
 * start..L-1 (a prefill chunk: uniform tiles, prefill kernel), over
 * shuffled pages. */
static void one_prefill(struct gpu_pair *p, enum gpu_dtype kvt, size_t n_head,
			size_t n_head_kv, size_t hd, size_t ps, size_t window,
			size_t L, size_t start, int single)
{
	const size_t len1 = 50, max_pages = (L + ps - 1) / ps + 1;
	const size_t n_pages = 2 * max_pages + 3, row = n_head_kv * hd;
	const size_t n_mix = single ? 0 : 3;
	const size_t n_all = L + len1, nq = n_mix + L - start;
	int32_t *pt = malloc(2 * max_pages * sizeof *pt);
	int32_t *seqs = malloc((n_all + nq) * sizeof *seqs);
	int32_t *poss = malloc((n_all + nq) * sizeof *poss);
	float *k, *v, *q;
	struct bb bk, bv, bseq, bpos, bpt, kpool, vpool, bq, out;
	struct gpu_kv_pool pc, pg;
	struct gpu_kv_batch bc, bg;
	size_t i, nrows = n_all > nq ? n_all : nq;

	shuffled_pages(pt, 2 * max_pages, n_pages);
	for (i = 0; i < n_all; i++) {
		seqs[i] = i < L ? 0 : 1;
		poss[i] = (int32_t)(i < L ? i : i - L);
	}
	k = rand_f32(n_all * row, 1.0f);
	v = rand_f32(n_all * row, 1.0f);
	bk = mk2(p, GPU_DTYPE_F32, k, n_all * row);
	bv = mk2(p, GPU_DTYPE_F32, v, n_all * row);
	bseq = mk2(p, GPU_DTYPE_I32, NULL, nrows);
	bpos = mk2(p, GPU_DTYPE_I32, NULL, nrows);
	ck_assert_int_eq(gpu_buf_write(bseq.c, 0, seqs, n_all, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bseq.g, 0, seqs, n_all, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.c, 0, poss, n_all, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.g, 0, poss, n_all, NULL), 0);
	bpt = mk2(p, GPU_DTYPE_I32, pt, 2 * max_pages);
	kpool = mk2(p, kvt, NULL, n_pages * ps * row);
	vpool = mk2(p, kvt, NULL, n_pages * ps * row);
	gpu_buf_zero(kpool.c, NULL);
	gpu_buf_zero(kpool.g, NULL);
	gpu_buf_zero(vpool.c, NULL);
	gpu_buf_zero(vpool.g, NULL);
	pc = (struct gpu_kv_pool){ kpool.c, vpool.c, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	pg = (struct gpu_kv_pool){ kpool.g, vpool.g, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	bc = (struct gpu_kv_batch){ n_all, bseq.c, bpos.c, bpt.c, 2, max_pages, false };
	bg = (struct gpu_kv_batch){ n_all, bseq.g, bpos.g, bpt.g, 2, max_pages, false };
	BOTH(gpu_kv_store(p->cpu, &pc, &bc, bk.c, bv.c, &d_),
	     gpu_kv_store(p->cuda, &pg, &bg, bk.g, bv.g, &d_));
	if (!single) {
		seqs[0] = 1;
		poss[0] = (int32_t)len1 - 1;
		seqs[1] = 0;
		poss[1] = (int32_t)L - 1;
		seqs[2] = 1;
		poss[2] = 7;
	}
	for (i = n_mix; i < nq; i++) {
		seqs[i] = 0;
		poss[i] = (int32_t)(start + i - n_mix);
	}
	/* single: every row is of sequence 0 and the batch says so (CUDA
	 * then launches only the prefill kernel where it applies) */
	bc.single_seq = bg.single_seq = single != 0;
	ck_assert_int_eq(gpu_buf_write(bseq.c, 0, seqs, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bseq.g, 0, seqs, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.c, 0, poss, nq, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.g, 0, poss, nq, NULL), 0);
	q = rand_f32(nq * n_head * hd, 2.0f);
	bq = mk2(p, GPU_DTYPE_F32, q, nq * n_head * hd);
	out = mk2(p, GPU_DTYPE_F32, NULL, nq * n_head * hd);
	bc.n_rows = bg.n_rows = nq;
	attention2(p, out, bq, &pc, &pg, &bc, &bg, n_head, hd, window);
	if (single) {
		EXPECT_CLOSE(out, 0, nq * n_head * hd, att_tc_tol(kvt, hd),
			     "prefill (one sequence) %s heads %zu/%zu hd %zu page %zu "
			     "window %zu L %zu start %zu", gpu_dtype_name(kvt), n_head,
			     n_head_kv, hd, ps, window, L, start);
	} else {
		EXPECT_CLOSE(out, 0, 64 * n_head * hd,
			     dec_tol(0, kvt, hd, max_pages * ps, window),
			     "prefill (mixed tile) %s heads %zu/%zu hd %zu page %zu "
			     "window %zu L %zu", gpu_dtype_name(kvt), n_head, n_head_kv,
			     hd, ps, window, L);
		EXPECT_CLOSE(out, 64 * n_head * hd, (nq - 64) * n_head * hd,
			     att_tc_tol(kvt, hd),
			     "prefill %s heads %zu/%zu hd %zu page %zu window %zu L %zu "
			     "start %zu", gpu_dtype_name(kvt), n_head, n_head_kv, hd, ps,
			     window, L, start);
	}
	free2(bk);
	free2(bv);
	free2(bseq);
	free2(bpos);
	free2(bpt);
	free2(kpool);
	free2(vpool);
	free2(bq);
	free2(out);
	free(k);
	free(v);
	free(q);
	free(seqs);
	free(poss);
	free(pt);
}

/* Decode rows (row r: sequence r % 2, position rpos[r]) over page tables
 * of `span` positions per sequence, shuffled pages filled at random.  The
 * split count comes from the table's span (up to 64 splits for few rows),
 * the chunk of each split from the row's own position (a multiple of 8),
 * so short rows in a long table, positions around the chunk boundaries and
 * windows shorter than a chunk all go through the split-K path and its
 * combine, and must match the exact CPU result. */
static void one_decode(struct gpu_pair *p, enum gpu_dtype kvt, size_t n_head,
		       size_t n_head_kv, size_t hd, size_t ps, size_t window,
		       size_t span, const int32_t *rpos, size_t nr)
{
	const size_t max_pages = (span + ps - 1) / ps;
	const size_t n_pages = 2 * max_pages + 2, row = n_head_kv * hd;
	const size_t poolel = n_pages * ps * row;
	int32_t *pt = malloc(2 * max_pages * sizeof *pt);
	int32_t seqs[8];
	struct bb bseq, bpos, bpt, kpool, vpool, bq, out;
	struct gpu_kv_pool pc, pg;
	struct gpu_kv_batch bc, bg;
	float *q;
	size_t i;

	ck_assert(nr <= 8);
	shuffled_pages(pt, 2 * max_pages, n_pages);
	for (i = 0; i < nr; i++) {
		seqs[i] = (int32_t)(i % 2);
		ck_assert((size_t)rpos[i] < span);
	}
	bseq = mk2(p, GPU_DTYPE_I32, seqs, nr);
	bpos = mk2(p, GPU_DTYPE_I32, rpos, nr);
	bpt = mk2(p, GPU_DTYPE_I32, pt, 2 * max_pages);
	kpool = mk2(p, kvt, NULL, poolel);
	vpool = mk2(p, kvt, NULL, poolel);
	fill_pool(kpool, kvt, poolel);
	fill_pool(vpool, kvt, poolel);
	q = rand_f32(nr * n_head * hd, 2.0f);
	bq = mk2(p, GPU_DTYPE_F32, q, nr * n_head * hd);
	out = mk2(p, GPU_DTYPE_F32, NULL, nr * n_head * hd);
	pc = (struct gpu_kv_pool){ kpool.c, vpool.c, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	pg = (struct gpu_kv_pool){ kpool.g, vpool.g, n_pages, ps, n_head_kv, hd, 0, 0, NULL, NULL };
	bc = (struct gpu_kv_batch){ nr, bseq.c, bpos.c, bpt.c, 2, max_pages, false };
	bg = (struct gpu_kv_batch){ nr, bseq.g, bpos.g, bpt.g, 2, max_pages, false };
	attention2(p, out, bq, &pc, &pg, &bc, &bg, n_head, hd, window);
	EXPECT_CLOSE(out, 0, nr * n_head * hd,
		     dec_tol(0, kvt, hd, max_pages * ps, window),
		     "decode %s heads %zu/%zu hd %zu page %zu window %zu span %zu "
		     "rows %zu (first at %d)", gpu_dtype_name(kvt), n_head, n_head_kv,
		     hd, ps, window, span, nr, (int)rpos[0]);
	free2(bseq);
	free2(bpos);
	free2(bpt);
	free2(kpool);
	free2(vpool);
	free2(bq);
	free2(out);
	free(q);
	free(pt);
}

/* A quantized pool (gpu.h): sequence 0 holds L positions, sequence 1
 * holds 50, over shuffled pages; both backends store every position
 * (gpu_kv_store, or gpu_rope_kv_store with rope), the stored words and
 * scales must match (bit for bit without RoPE: the same codes from the
 * same arithmetic; with it, sincos may differ in the last bit, so the CPU's
 * pool is copied over), then attention of a prefill chunk of sequence 0
 * (rows start..L-1: the prefill kernel's f16 tiles of the dequantized
 * values), and of decode rows of both sequences (a decode kernel: dec_tol,
 * split over long tables) on the same pool. */
static void one_quant(struct gpu_pair *p, unsigned kb, unsigned vb, size_t n_head,
		      size_t n_head_kv, size_t hd, size_t window, size_t L,
		      size_t start, int rope)
{
	const size_t ps = 256, len1 = 50, max_pages = (L + ps - 1) / ps + 1;
	const size_t n_pages = 2 * max_pages + 3, row = n_head_kv * hd;
	const size_t ng = n_pages * ps * row / 32, n_all = L + len1;
	const size_t nq = L - start + 2;
	int32_t *pt = malloc(2 * max_pages * sizeof *pt);
	int32_t *seqs = malloc((n_all + nq) * sizeof *seqs);
	int32_t *poss = malloc((n_all + nq) * sizeof *poss);
	float *k, *v, *q, inv[256];
	struct bb bk, bv, bqr, bseq, bpos, bpt, kw, vw, ksc, vsc, bq, out, bi;
	struct gpu_kv_pool pc, pg;
	struct gpu_kv_batch bc, bg;
	struct gpu_rope rp = { hd, 1.0f, NULL, NULL, NULL, 0.0f };
	size_t i, nrows = n_all > nq ? n_all : nq;
	int same;

	shuffled_pages(pt, 2 * max_pages, n_pages);
	for (i = 0; i < n_all; i++) {
		seqs[i] = i < L ? 0 : 1;
		poss[i] = (int32_t)(i < L ? i : i - L);
	}
	for (i = 0; i < hd / 2; i++)
		inv[i] = powf(10000.0f, -2.0f * (float)i / (float)hd);
	k = rand_f32(nrows * row, 1.0f);
	v = rand_f32(nrows * row, 1.0f);
	q = rand_f32(nrows * n_head * hd, 2.0f);
	for (i = 0; i < nrows * row; i += 7)
		k[i] *= 5.0f; /* some outliers */
	if (!rope)
		k[3] = NAN; /* a group that reads back as zeros on both */
	bk = mk2(p, GPU_DTYPE_F32, k, nrows * row);
	bv = mk2(p, GPU_DTYPE_F32, v, nrows * row);
	bqr = mk2(p, GPU_DTYPE_F32, q, nrows * n_head * hd);
	bseq = mk2(p, GPU_DTYPE_I32, seqs, nrows);
	bpos = mk2(p, GPU_DTYPE_I32, poss, nrows);
	bpt = mk2(p, GPU_DTYPE_I32, pt, 2 * max_pages);
	bi = mk2(p, GPU_DTYPE_F32, inv, hd / 2);
	kw = mk2(p, GPU_DTYPE_I32, NULL, ng * kb);
	vw = mk2(p, GPU_DTYPE_I32, NULL, ng * vb);
	ksc = mk2(p, GPU_DTYPE_F16, NULL, ng);
	vsc = mk2(p, GPU_DTYPE_F16, NULL, ng);
	gpu_buf_zero(kw.c, NULL);
	gpu_buf_zero(kw.g, NULL);
	gpu_buf_zero(vw.c, NULL);
	gpu_buf_zero(vw.g, NULL);
	gpu_buf_zero(ksc.c, NULL);
	gpu_buf_zero(ksc.g, NULL);
	gpu_buf_zero(vsc.c, NULL);
	gpu_buf_zero(vsc.g, NULL);
	pc = (struct gpu_kv_pool){ kw.c, vw.c, n_pages, ps, n_head_kv, hd, kb, vb,
				   ksc.c, vsc.c };
	pg = (struct gpu_kv_pool){ kw.g, vw.g, n_pages, ps, n_head_kv, hd, kb, vb,
				   ksc.g, vsc.g };
	bc = (struct gpu_kv_batch){ n_all, bseq.c, bpos.c, bpt.c, 2, max_pages, false };
	bg = (struct gpu_kv_batch){ n_all, bseq.g, bpos.g, bpt.g, 2, max_pages, false };
	if (rope)
		BOTH(gpu_rope_kv_store(p->cpu, bqr.c, bk.c, bv.c, n_head, bpos.c, bi.c,
				       &rp, &pc, &bc, &d_),
		     gpu_rope_kv_store(p->cuda, bqr.g, bk.g, bv.g, n_head, bpos.g,
				       bi.g, &rp, &pg, &bg, &d_));
	else
		BOTH(gpu_kv_store(p->cpu, &pc, &bc, bk.c, bv.c, &d_),
		     gpu_kv_store(p->cuda, &pg, &bg, bk.g, bv.g, &d_));
	gpu_sync(p->cuda, NULL);
	{
		const size_t nw = ng * (kb > vb ? kb : vb);
		uint32_t *a = malloc(nw * 4), *b = malloc(nw * 4);
		size_t diff = 0, j;
		struct bb parts[4] = { kw, vw, ksc, vsc };
		const size_t cnt[4] = { ng * kb, ng * vb, ng, ng };

		for (j = 0; j < 4; j++) {
			ck_assert_int_eq(gpu_buf_read(parts[j].c, 0, a, cnt[j], NULL), 0);
			ck_assert_int_eq(gpu_buf_read(parts[j].g, 0, b, cnt[j], NULL), 0);
			diff += memcmp(a, b, cnt[j] * (j < 2 ? 4 : 2)) != 0;
			/* one pool for both: the CPU's */
			ck_assert_int_eq(gpu_buf_write(parts[j].g, 0, a, cnt[j], NULL), 0);
		}
		same = diff == 0;
		if (!rope)
			ck_assert_msg(same, "quantized kv_store k%u v%u hd %zu: pools differ "
				      "(seed %llu)", kb, vb, hd,
				      (unsigned long long)test_seed);
		free(a);
		free(b);
	}
	/* queries: rows start..L-1 of sequence 0 (single sequence), then the
	 * last position of each sequence as decode rows (separate call) */
	for (i = 0; i < nq - 2; i++) {
		seqs[i] = 0;
		poss[i] = (int32_t)(start + i);
	}
	ck_assert_int_eq(gpu_buf_write(bseq.c, 0, seqs, nq - 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bseq.g, 0, seqs, nq - 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.c, 0, poss, nq - 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.g, 0, poss, nq - 2, NULL), 0);
	bq = mk2(p, GPU_DTYPE_F32, q, nq * n_head * hd);
	out = mk2(p, GPU_DTYPE_F32, NULL, nq * n_head * hd);
	bc.n_rows = bg.n_rows = nq - 2;
	bc.single_seq = bg.single_seq = true;
	attention2(p, out, bq, &pc, &pg, &bc, &bg, n_head, hd, window);
	EXPECT_CLOSE(out, 0, (nq - 2) * n_head * hd, 2e-3,
		     "quantized prefill k%u v%u heads %zu/%zu hd %zu window %zu L %zu",
		     kb, vb, n_head, n_head_kv, hd, window, L);
	seqs[0] = 0;
	poss[0] = (int32_t)L - 1;
	seqs[1] = 1;
	poss[1] = (int32_t)len1 - 1;
	ck_assert_int_eq(gpu_buf_write(bseq.c, 0, seqs, 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bseq.g, 0, seqs, 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.c, 0, poss, 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bpos.g, 0, poss, 2, NULL), 0);
	bc.n_rows = bg.n_rows = 2;
	bc.single_seq = bg.single_seq = false;
	attention2(p, out, bq, &pc, &pg, &bc, &bg, n_head, hd, window);
	EXPECT_CLOSE(out, 0, 2 * n_head * hd,
		     dec_tol(1, GPU_DTYPE_F32, hd, max_pages * ps, window),
		     "quantized decode k%u v%u heads %zu/%zu hd %zu window %zu L %zu",
		     kb, vb, n_head, n_head_kv, hd, window, L);
	free2(bk);
	free2(bv);
	free2(bqr);
	free2(bseq);
	free2(bpos);
	free2(bpt);
	free2(bi);
	free2(kw);
	free2(vw);
	free2(ksc);
	free2(vsc);
	free2(bq);
	free2(out);
	free(k);
	free(v);
	free(q);
	free(pt);
	free(seqs);
	free(poss);
}

START_TEST(test_attention_quant)
{
	struct gpu_pair p;

	if (!gpu_pair_open(&p, 3))
		return;
	one_quant(&p, 4, 4, 32, 8, 128, 0, 700, 200, 0);
	one_quant(&p, 8, 8, 32, 8, 128, 0, 300, 0, 1);
	one_quant(&p, 6, 5, 12, 4, 64, 100, 400, 100, 0);
	one_quant(&p, 3, 2, 8, 2, 256, 0, 150, 0, 1);
	one_quant(&p, 2, 7, 14, 2, 96, 37, 160, 20, 0); /* pad columns */
	one_quant(&p, 4, 8, 4, 4, 32, 0, 3000, 2900, 1);
	/* tables of 4096+ positions: the tensor-core decode kernel (odd
	 * widths: one-word copies, codes from three planes) and, at head_dim
	 * 256 over 16K+ positions, the per-lane one with 8 keys in flight */
	one_quant(&p, 4, 4, 8, 2, 128, 0, 17000, 16950, 0);
	one_quant(&p, 5, 3, 16, 2, 64, 0, 5000, 4990, 0);
	one_quant(&p, 4, 4, 4, 1, 256, 0, 17000, 16990, 0);
	gpu_pair_close(&p);
}
END_TEST

START_TEST(test_attention)
{
	static const int32_t p1[] = { 511 }, p3[] = { 0, 511, 4095 },
			     p3b[] = { 1, 8, 9 }, p4[] = { 63, 64, 65, 1500 },
			     p3c[] = { 7, 100, 699 }, p1b[] = { 1023 },
			     p3d[] = { 0, 300, 511 }, p8[] = { 2, 3, 17, 16, 40, 41, 200, 130 },
			     p2[] = { 5, 900 }, p5[] = { 0, 15, 64, 4097, 8191 },
			     p3e[] = { 4000, 6000, 8191 };
	struct gpu_pair p;

	if (!gpu_pair_open(&p, 3))
		return;
	/* decode at batch 1..8 over long tables (split-K, per-row chunks) */
	one_decode(&p, GPU_DTYPE_F16, 32, 8, 128, 256, 0, 512, p1, 1);
	one_decode(&p, GPU_DTYPE_F16, 32, 8, 128, 256, 0, 4096, p1, 1);
	one_decode(&p, GPU_DTYPE_F16, 32, 8, 128, 256, 0, 4096, p3, 3);
	one_decode(&p, GPU_DTYPE_F32, 32, 8, 128, 16, 0, 4096, p3b, 3);
	one_decode(&p, GPU_DTYPE_F16, 12, 4, 64, 16, 100, 2048, p4, 4);
	one_decode(&p, GPU_DTYPE_F32, 12, 4, 64, 16, 5, 2048, p4, 4);
	one_decode(&p, GPU_DTYPE_F32, 8, 8, 80, 7, 0, 700, p3c, 3);
	one_decode(&p, GPU_DTYPE_F16, 4, 2, 256, 32, 0, 1024, p1b, 1);
	one_decode(&p, GPU_DTYPE_F32, 2, 1, 512, 16, 0, 512, p3d, 3);
	one_decode(&p, GPU_DTYPE_F16, 40, 8, 128, 16, 0, 256, p8, 8);
	/* the tensor-core decode kernel's shapes (f16, tables of 1024+
	 * positions): 7 heads a group (Qwen2.5-7B's), 8 with head_dim 40
	 * (pad columns), 16, a window over a long table, and 32 a group (past
	 * its 16 rows: the per-lane kernel, at its chunk alignment) */
	one_decode(&p, GPU_DTYPE_F16, 28, 4, 128, 256, 0, 8192, p5, 5);
	one_decode(&p, GPU_DTYPE_F16, 16, 2, 40, 16, 0, 4096, p3, 3);
	one_decode(&p, GPU_DTYPE_F16, 32, 2, 64, 64, 0, 5000, p3, 3);
	one_decode(&p, GPU_DTYPE_F16, 32, 8, 128, 256, 5000, 8192, p3e, 3);
	one_decode(&p, GPU_DTYPE_F16, 32, 1, 64, 256, 0, 4096, p1, 1);
	/* 16 splits with a window, three heads of a group of four, and
	 * splits left empty by position 5 */
	one_decode(&p, GPU_DTYPE_F16, 12, 4, 64, 16, 100, 1024, p2, 2);
	one_attention(&p, GPU_DTYPE_F32, 8, 2, 64, 16, 0);
	one_attention(&p, GPU_DTYPE_F16, 8, 2, 64, 16, 0);
	one_attention(&p, GPU_DTYPE_F32, 6, 6, 128, 7, 0);
	one_attention(&p, GPU_DTYPE_F16, 12, 4, 128, 16, 33);
	one_attention(&p, GPU_DTYPE_F32, 4, 1, 256, 32, 70);
	one_attention(&p, GPU_DTYPE_F32, 2, 1, 512, 16, 0);
	one_attention(&p, GPU_DTYPE_F32, 3, 3, 80, 9, 0); /* odd head_dim */
	one_attention(&p, GPU_DTYPE_F16, 16, 4, 64, 16, 0); /* one split */
	one_prefill(&p, GPU_DTYPE_F32, 32, 8, 128, 256, 0, 600, 0, 0);
	one_prefill(&p, GPU_DTYPE_F16, 32, 8, 128, 16, 0, 600, 300, 0);
	one_prefill(&p, GPU_DTYPE_F32, 8, 2, 64, 16, 100, 333, 0, 0);
	one_prefill(&p, GPU_DTYPE_F16, 12, 4, 256, 32, 0, 200, 0, 0);
	one_prefill(&p, GPU_DTYPE_F32, 14, 2, 80, 9, 0, 150, 20, 0);
	/* f16 pool, head_dim 80 (pad columns in the K/V tiles), pages of 9,
	 * a window of 37 (its start inside a tile) */
	one_prefill(&p, GPU_DTYPE_F16, 14, 2, 80, 9, 37, 150, 20, 0);
	one_prefill(&p, GPU_DTYPE_F16, 14, 2, 80, 9, 37, 150, 0, 1);
	one_prefill(&p, GPU_DTYPE_F32, 2, 1, 512, 16, 0, 100, 0, 0); /* decode kernel */
	/* one-sequence batches (single_seq): prefill kernel only, partial last
	 * tile, window; and where the prefill kernel does not apply (hd 512,
	 * odd hd, fewer than 16 rows) the decode kernel must still run */
	one_prefill(&p, GPU_DTYPE_F16, 32, 8, 128, 16, 0, 600, 0, 1);
	one_prefill(&p, GPU_DTYPE_F32, 8, 2, 64, 16, 100, 333, 31, 1);
	one_prefill(&p, GPU_DTYPE_F16, 12, 4, 256, 32, 0, 200, 100, 1);
	one_prefill(&p, GPU_DTYPE_F32, 2, 1, 512, 16, 0, 100, 0, 1);
	one_prefill(&p, GPU_DTYPE_F32, 3, 3, 82, 9, 0, 90, 0, 1);
	one_prefill(&p, GPU_DTYPE_F16, 8, 2, 128, 16, 0, 300, 290, 1); /* 10 rows */
	gpu_pair_close(&p);
}
END_TEST

/* ---- MoE --------------------------------------------------------------- */

/* The ids gpu_moe_route wrote on both backends (cnt of them) must be the
 * same; ic / ig: host room for cnt each. */
static void expect_same_ids(struct bb ids, size_t cnt, int32_t *ic, int32_t *ig,
			    const char *what)
{
	ck_assert_int_eq(gpu_buf_read(ids.c, 0, ic, cnt, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(ids.g, 0, ig, cnt, NULL), 0);
	ck_assert_msg(!memcmp(ic, ig, cnt * sizeof *ic),
		      "moe_route ids differ%s (seed %llu)", what,
		      (unsigned long long)test_seed);
}

START_TEST(test_moe_route)
{
	/* one warp per row up to 1024 experts, the serial kernel above */
	static const size_t ne[] = { 8, 60, 128, 1100 };
	struct gpu_pair p;
	size_t c;

	if (!gpu_pair_open(&p, 3))
		return;
	for (c = 0; c < 4; c++) {
		const size_t n = 33, k = c == 0 ? 2 : 8;
		float *lg = rand_f32(n * ne[c], 4.0f);
		int32_t *ic = malloc(n * k * 4), *ig = malloc(n * k * 4);
		struct bb bl, ids, wts;
		int renorm;

		memset(lg, 0, ne[c] * sizeof *lg); /* a row of ties */
		lg[ne[c] + 3] = lg[ne[c] + 5]; /* a tie inside a row */
		bl = mk2(&p, GPU_DTYPE_F32, lg, n * ne[c]);
		ids = mk2(&p, GPU_DTYPE_I32, NULL, n * k);
		wts = mk2(&p, GPU_DTYPE_F32, NULL, n * k);
		for (renorm = 0; renorm < 2; renorm++) {
			BOTH(gpu_moe_route(p.cpu, bl.c, ids.c, wts.c, n, ne[c], k,
					   renorm, &d_),
			     gpu_moe_route(p.cuda, bl.g, ids.g, wts.g, n, ne[c], k,
					   renorm, &d_));
			EXPECT_CLOSE(wts, 0, n * k, 1e-6, "moe_route weights %zu", ne[c]);
			expect_same_ids(ids, n * k, ic, ig, "");
		}
		free2(bl);
		free2(ids);
		free2(wts);
		free(lg);
		free(ic);
		free(ig);
	}
	/* rows with NaN (first or a later expert) and -inf logits, every
	 * expert chosen: the same ids as the CPU's loop (NaN weights are not
	 * compared) */
	for (c = 0; c < 3; c++) {
		const size_t n = 4, ne2 = c == 0 ? 2 : c == 1 ? 8 : 60, k = ne2;
		float *lg = rand_f32(n * ne2, 4.0f);
		int32_t *ic = malloc(n * k * 4), *ig = malloc(n * k * 4);
		struct bb bl, ids, wts;

		lg[0] = NAN;                       /* row 0: the first expert */
		lg[ne2 + ne2 - 1] = NAN;           /* row 1: the last */
		lg[2 * ne2] = -INFINITY;           /* row 2: -inf */
		lg[3 * ne2 + ne2 / 2] = NAN;       /* row 3: NaN and -inf */
		lg[3 * ne2] = -INFINITY;
		bl = mk2(&p, GPU_DTYPE_F32, lg, n * ne2);
		ids = mk2(&p, GPU_DTYPE_I32, NULL, n * k);
		wts = mk2(&p, GPU_DTYPE_F32, NULL, n * k);
		for (size_t q = 0; q < n * k; q++)
			ig[q] = -7; /* a sentinel the routing must overwrite */
		ck_assert_int_eq(gpu_buf_write(ids.g, 0, ig, n * k, NULL), 0);
		BOTH(gpu_moe_route(p.cpu, bl.c, ids.c, wts.c, n, ne2, k, true, &d_),
		     gpu_moe_route(p.cuda, bl.g, ids.g, wts.g, n, ne2, k, true, &d_));
		snprintf(msgbuf, sizeof msgbuf, " with NaN / -inf logits (%zu experts)",
			 ne2);
		expect_same_ids(ids, n * k, ic, ig, msgbuf);
		free2(bl);
		free2(ids);
		free2(wts);
		free(lg);
		free(ic);
		free(ig);
	}
	gpu_pair_close(&p);
}
END_TEST

/* A set of ne float experts (gate, up [n_ff, dim], down [dim, n_ff]) of
 * type t with the same values on both backends; exc / exg point into it
 * (keep it in place while they are used). */
enum { MOE_FX_MAX = 8 };
struct moe_fx {
	size_t ne;
	struct bb gate[MOE_FX_MAX], up[MOE_FX_MAX], down[MOE_FX_MAX];
	const struct gpu_buf *gc[MOE_FX_MAX], *uc[MOE_FX_MAX], *dc[MOE_FX_MAX];
	const struct gpu_buf *gg[MOE_FX_MAX], *ug[MOE_FX_MAX], *dg[MOE_FX_MAX];
	struct gpu_moe_experts exc, exg;
};

static void moe_fx_make(struct gpu_pair *p, struct moe_fx *f, enum gpu_dtype t,
			size_t ne, size_t dim, size_t n_ff, float scale)
{
	size_t e;

	ck_assert_uint_le(ne, MOE_FX_MAX);
	f->ne = ne;
	for (e = 0; e < ne; e++) {
		f->gate[e] = rand_w(p, t, n_ff * dim, scale);
		f->up[e] = rand_w(p, t, n_ff * dim, scale);
		f->down[e] = rand_w(p, t, dim * n_ff, scale);
		f->gc[e] = f->gate[e].c;
		f->uc[e] = f->up[e].c;
		f->dc[e] = f->down[e].c;
		f->gg[e] = f->gate[e].g;
		f->ug[e] = f->up[e].g;
		f->dg[e] = f->down[e].g;
	}
	f->exc = (struct gpu_moe_experts){ .n_expert = ne, .n_ff = n_ff,
					   .gate = f->gc, .up = f->uc, .down = f->dc };
	f->exg = (struct gpu_moe_experts){ .n_expert = ne, .n_ff = n_ff,
					   .gate = f->gg, .up = f->ug, .down = f->dg };
}

static void moe_fx_free(struct moe_fx *f)
{
	size_t e;

	for (e = 0; e < f->ne; e++) {
		free2(f->gate[e]);
		free2(f->up[e]);
		free2(f->down[e]);
	}
}

/* One gpu_moe_ffn case on both backends: n random rows x [n, dim], the
 * CPU's routing of random logits (ne experts, top_k) in ids / wts on both
 * (idh: its host copy), out [n, dim] and the scratch, unset. */
struct moe_case {
	float *x, *lg, *wh;
	int32_t *idh;
	struct bb bx, bl, ids, wts, out, scr;
};

static void moe_case_make(struct gpu_pair *p, struct moe_case *m, size_t n,
			  size_t ne, size_t dim, size_t n_ff, size_t top_k)
{
	m->x = rand_f32(n * dim, 1.0f);
	m->lg = rand_f32(n * ne, 3.0f);
	m->idh = malloc(n * top_k * sizeof *m->idh);
	m->wh = malloc(n * top_k * sizeof *m->wh);
	ck_assert(m->idh && m->wh);
	m->bx = mk2(p, GPU_DTYPE_F32, m->x, n * dim);
	m->bl = mk2(p, GPU_DTYPE_F32, m->lg, n * ne);
	m->ids = mk2(p, GPU_DTYPE_I32, NULL, n * top_k);
	m->wts = mk2(p, GPU_DTYPE_F32, NULL, n * top_k);
	m->out = mk2(p, GPU_DTYPE_F32, NULL, n * dim);
	m->scr = mk2(p, GPU_DTYPE_F32, NULL,
		     gpu_moe_scratch_elems(n, dim, n_ff, top_k));
	ck_assert_int_eq(gpu_moe_route(p->cpu, m->bl.c, m->ids.c, m->wts.c, n, ne,
				       top_k, true, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(m->ids.c, 0, m->idh, n * top_k, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(m->wts.c, 0, m->wh, n * top_k, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(m->ids.g, 0, m->idh, n * top_k, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(m->wts.g, 0, m->wh, n * top_k, NULL), 0);
}

static void moe_case_free(struct moe_case *m)
{
	free2(m->bx);
	free2(m->bl);
	free2(m->ids);
	free2(m->wts);
	free2(m->out);
	free2(m->scr);
	free(m->x);
	free(m->lg);
	free(m->idh);
	free(m->wh);
}

/* gpu_moe_ffn on both backends with the CPU's routing.  CUDA dispatches
 * f16/bf16 experts on the device for up to 128 assignments (n = 1, 5, 40
 * here: GEMV, f32 activations, 1e-5) and reads the routing back above
 * that or for f32 experts (n = 70: bf16 experts as grouped cuBLAS GEMMs,
 * f16 ones one GEMM or GEMV each, x rounded to half, 1e-2; f32 experts
 * one SGEMM or GEMV each).  The device path also recorded into a graph and
 * replayed (bit-identical to the direct call); a bad expert id fails with
 * GPU_E_INVALID on the host path at once, on the device path at the next
 * gpu_sync (once). */
START_TEST(test_moe_ffn)
{
	static const size_t ns[] = { 1, 5, 40, 70 };
	struct gpu_pair p;
	size_t t, c, e;

	if (!gpu_pair_open(&p, 3))
		return;
	for (t = 0; t < 3; t++)
		for (c = 0; c < 4; c++) {
			const size_t n = ns[c], n_exp = 6, top_k = 2, dim = 64,
				     n_ff = 96;
			struct moe_case m;
			struct moe_fx f;
			const struct gpu_moe_experts *const exc = &f.exc, *const exg = &f.exg;
			int dev;

			/* the same routing on both: the CPU's, copied over */
			moe_case_make(&p, &m, n, n_exp, dim, n_ff, top_k);
			moe_fx_make(&p, &f, FT[t], n_exp, dim, n_ff, 0.3f);
			BOTH(gpu_moe_ffn(p.cpu, m.out.c, m.bx.c, m.ids.c, m.wts.c, exc, n,
					 dim, top_k, m.scr.c, &d_),
			     gpu_moe_ffn(p.cuda, m.out.g, m.bx.g, m.ids.g, m.wts.g, exg, n,
					 dim, top_k, m.scr.g, &d_));
			dev = FT[t] != GPU_DTYPE_F32 && n * top_k <= 128;
			ck_assert_int_eq(gpu_moe_ffn_recordable(p.cuda, exg, n, dim,
								top_k), dev);
			ck_assert(!gpu_moe_ffn_recordable(p.cpu, exc, n, dim, top_k));
			EXPECT_CLOSE(m.out, 0, n * dim,
				     FT[t] == GPU_DTYPE_F32 || n <= 8 || dev ? 1e-5 : 1e-2,
				     "moe_ffn %s n %zu", gpu_dtype_name(FT[t]), n);
			if (dev) {
				/* recorded and replayed: the same bits */
				struct gpu_graph *gr = NULL;
				float *o1 = malloc(n * dim * 4), *o2 = malloc(n * dim * 4);

				ck_assert(o1 && o2);
				ck_assert_int_eq(gpu_buf_read(m.out.g, 0, o1, n * dim, NULL), 0);
				ck_assert_int_eq(gpu_buf_zero(m.out.g, NULL), 0);
				ck_assert_int_eq(gpu_graph_begin(p.cuda, NULL), 0);
				ck_assert_int_eq(gpu_moe_ffn(p.cuda, m.out.g, m.bx.g, m.ids.g,
							     m.wts.g, exg, n, dim, top_k,
							     m.scr.g, NULL), 0);
				ck_assert_int_eq(gpu_graph_end(p.cuda, &gr, NULL), 0);
				ck_assert_int_eq(gpu_graph_launch(gr, NULL), 0);
				ck_assert_int_eq(gpu_buf_read(m.out.g, 0, o2, n * dim, NULL), 0);
				ck_assert_msg(memcmp(o1, o2, n * dim * 4) == 0,
					      "moe_ffn %s n %zu: graph replay differs",
					      gpu_dtype_name(FT[t]), n);
				gpu_graph_free(gr);
				free(o1);
				free(o2);
			}
			/* a bad expert id (too large, negative) fails cleanly;
			 * on the device path the other rows are still right */
			for (int bad = 0; bad < 2; bad++) {
				float *nan_ = malloc(n * dim * sizeof *nan_);
				struct diag d;
				int rc;

				diag_clear(&d);
				/* NaN everywhere first: every row must be rewritten */
				ck_assert(nan_);
				for (e = 0; e < n * dim; e++)
					nan_[e] = NAN;
				ck_assert_int_eq(gpu_buf_write(m.out.g, 0, nan_, n * dim, NULL), 0);
				free(nan_);
				m.idh[0] = bad ? -1 : (int32_t)n_exp;
				gpu_buf_write(m.ids.g, 0, m.idh, n * top_k, NULL);
				rc = gpu_moe_ffn(p.cuda, m.out.g, m.bx.g, m.ids.g, m.wts.g,
						 exg, n, dim, top_k, m.scr.g, &d);
				if (dev) {
					ck_assert_int_eq(rc, 0);
					rc = gpu_sync(p.cuda, &d);
					ck_assert_int_eq(rc, GPU_E_INVALID);
					ck_assert_msg(strstr(d.msg, bad ? "expert -1 of 6"
									: "expert 6 of 6"),
						      "%s", d.msg);
					ck_assert_int_eq(gpu_sync(p.cuda, NULL), 0);
					if (n > 1)
						EXPECT_CLOSE(m.out, dim, (n - 1) * dim, 1e-5,
							     "moe_ffn %s n %zu, rows after a bad id",
							     gpu_dtype_name(FT[t]), n);
				}
				ck_assert_int_eq(rc, GPU_E_INVALID);
			}
			moe_fx_free(&f);
			moe_case_free(&m);
		}
	gpu_pair_close(&p);
}
END_TEST

/* gpu_moe_ffn on a CUDA handle opened with TERN_MOE_GROUPED and
 * TERN_MOE_CHUNK set to `grouped` and `chunk` (both restored afterwards),
 * with f's weights and m's routing: the result goes to m->out's CUDA
 * buffer (for the caller to compare with the CPU's), after exactly
 * want_chunks grouped chunks and want_calls grouped cuBLAS calls (cuBLAS
 * 12.5 or later has the grouped call for bf16). */
static void moe_grouped_variant(const char *grouped, const char *chunk,
				struct moe_case *m, struct moe_fx *f,
				enum gpu_dtype t, size_t n, size_t dim,
				size_t n_ff, size_t top_k,
				unsigned long want_chunks, unsigned long want_calls)
{
	static const char *const vars[2] = { "TERN_MOE_GROUPED", "TERN_MOE_CHUNK" };
	const char *vals[2] = { grouped, chunk };
	char *saved[2];
	struct gpu_pair q;
	struct moe_fx f2;
	struct bb x2, i2, w2, s2, y2;
	unsigned long c0, k0, c1, k1;
	float *y = malloc(n * dim * sizeof *y);
	size_t e;
	int v;

	ck_assert(y);
	for (v = 0; v < 2; v++) {
		const char *old = getenv(vars[v]);

		saved[v] = old ? strdup(old) : NULL;
		ck_assert(!old || saved[v]);
		ck_assert_int_eq(setenv(vars[v], vals[v], 1), 0);
	}
	ck_assert(gpu_pair_open(&q, 3));
	for (v = 0; v < 2; v++) {
		if (saved[v])
			ck_assert_int_eq(setenv(vars[v], saved[v], 1), 0);
		else
			ck_assert_int_eq(unsetenv(vars[v]), 0);
		free(saved[v]);
	}
	moe_fx_make(&q, &f2, t, f->ne, dim, n_ff, 0.2f);
	for (e = 0; e < f->ne; e++) { /* f's weights, through the host */
		const struct gpu_buf *src[3] = { f->gate[e].g, f->up[e].g,
						 f->down[e].g };
		struct gpu_buf *dst[3] = { f2.gate[e].g, f2.up[e].g, f2.down[e].g };

		for (int k = 0; k < 3; k++) {
			const size_t ne = n_ff * dim;
			float *h = malloc(ne * sizeof *h); /* >= ne halves */

			ck_assert(h);
			ck_assert_int_eq(gpu_buf_read(src[k], 0, h, ne, NULL), 0);
			ck_assert_int_eq(gpu_buf_write(dst[k], 0, h, ne, NULL), 0);
			free(h);
		}
	}
	x2 = mk2(&q, GPU_DTYPE_F32, m->x, n * dim);
	i2 = mk2(&q, GPU_DTYPE_I32, m->idh, n * top_k);
	w2 = mk2(&q, GPU_DTYPE_F32, m->wh, n * top_k);
	s2 = mk2(&q, GPU_DTYPE_F32, NULL, gpu_moe_scratch_elems(n, dim, n_ff, top_k));
	y2 = mk2(&q, GPU_DTYPE_F32, NULL, n * dim);
	gpu_cuda_moe_grouped_stats(&c0, &k0);
	ck_assert_int_eq(gpu_moe_ffn(q.cuda, y2.g, x2.g, i2.g, w2.g, &f2.exg, n,
				     dim, top_k, s2.g, NULL), 0);
	ck_assert_int_eq(gpu_sync(q.cuda, NULL), 0);
	gpu_cuda_moe_grouped_stats(&c1, &k1);
	ck_assert_msg(c1 - c0 == want_chunks && k1 - k0 == want_calls,
		      "grouped=%s chunk=%s %s: %lu chunks, %lu grouped calls; "
		      "expected %lu, %lu", grouped, chunk, gpu_dtype_name(t),
		      c1 - c0, k1 - k0, want_chunks, want_calls);
	/* into m->out's CUDA half, for the caller's EXPECT_CLOSE */
	ck_assert_int_eq(gpu_buf_read(y2.g, 0, y, n * dim, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(m->out.g, 0, y, n * dim, NULL), 0);
	free(y);
	moe_fx_free(&f2);
	free2(x2);
	free2(i2);
	free2(w2);
	free2(s2);
	free2(y2);
	gpu_pair_close(&q);
}

/* The host-planned path's grouped GEMMs (bf16 experts above the device
 * path's 128 assignments): 8 experts, top_k 4, 50 rows = 200 assignments,
 * random routing and routing favouring two experts (others get few rows
 * or none), against the CPU at 1e-2:
 *   default: chunks of 50 (the call's rows), 4 of them;
 *   TERN_MOE_CHUNK=7: 29 chunks, the last partial, experts spanning
 *     several chunks (asserted from the routing), rows' experts spread
 *     over many chunks;
 *   TERN_MOE_GROUPED=0: the same layout, one GemmEx per expert.
 * f16 experts take the per-expert path (no chunk, no grouped call). */
START_TEST(test_moe_ffn_grouped)
{
	enum { NE = 8 };
	const size_t n = 50, top_k = 4, dim = 128, n_ff = 160, nk = n * top_k;
	size_t t, skew, i, e;

	for (t = 1; t < 3; t++)
		for (skew = 0; skew < 2; skew++) {
			const bool bf = FT[t] == GPU_DTYPE_BF16;
			struct gpu_pair p;
			struct moe_case m;
			struct moe_fx f;
			size_t cnt[NE] = { 0 }, lo = 0;
			bool spans = false;

			if (!gpu_pair_open(&p, 3))
				return;
			moe_case_make(&p, &m, n, NE, dim, n_ff, top_k);
			if (skew) {
				/* experts 1 and 6 in every row's top 2 */
				for (i = 0; i < n; i++) {
					m.lg[i * NE + 1] += 8.0f;
					m.lg[i * NE + 6] += 8.0f;
				}
				ck_assert_int_eq(gpu_buf_write(m.bl.c, 0, m.lg, n * NE,
							       NULL), 0);
				ck_assert_int_eq(gpu_moe_route(p.cpu, m.bl.c, m.ids.c,
							       m.wts.c, n, NE, top_k,
							       true, NULL), 0);
				ck_assert_int_eq(gpu_buf_read(m.ids.c, 0, m.idh, nk,
							      NULL), 0);
				ck_assert_int_eq(gpu_buf_read(m.wts.c, 0, m.wh, nk,
							      NULL), 0);
			}
			/* some expert's rows cross a multiple of 7 (the sorted
			 * list's chunk edges below) */
			for (i = 0; i < nk; i++)
				cnt[m.idh[i]]++;
			for (e = 0; e < NE; e++) {
				if (cnt[e] && (lo / 7 != (lo + cnt[e] - 1) / 7))
					spans = true;
				lo += cnt[e];
			}
			ck_assert(spans);
			moe_fx_make(&p, &f, FT[t], NE, dim, n_ff, 0.2f);
			ck_assert(!gpu_moe_ffn_recordable(p.cuda, &f.exg, n, dim, top_k));
			ck_assert_int_eq(gpu_moe_ffn(p.cpu, m.out.c, m.bx.c, m.ids.c,
						     m.wts.c, &f.exc, n, dim, top_k,
						     m.scr.c, NULL), 0);
			moe_grouped_variant("1", "0", &m, &f, FT[t], n, dim,
					    n_ff, top_k, bf ? 4 : 0, bf ? 8 : 0);
			EXPECT_CLOSE(m.out, 0, n * dim, 1e-2, "moe_ffn grouped %s skew %zu",
				     gpu_dtype_name(FT[t]), skew);
			moe_grouped_variant("1", "7", &m, &f, FT[t], n, dim,
					    n_ff, top_k, bf ? 29 : 0, bf ? 58 : 0);
			EXPECT_CLOSE(m.out, 0, n * dim, 1e-2,
				     "moe_ffn grouped, chunks of 7, %s skew %zu",
				     gpu_dtype_name(FT[t]), skew);
			moe_grouped_variant("0", "0", &m, &f, FT[t], n,
					    dim, n_ff, top_k, bf ? 4 : 0, 0);
			EXPECT_CLOSE(m.out, 0, n * dim, 1e-2,
				     "moe_ffn per-expert GemmEx %s skew %zu",
				     gpu_dtype_name(FT[t]), skew);
			moe_fx_free(&f);
			moe_case_free(&m);
			gpu_pair_close(&p);
		}
}
END_TEST

/* The device path at real widths (dim 2048, n_ff 2056: the GEMV's
 * unguarded main loop and its tail, which the small shape above never
 * reaches), bf16 experts, 1, 3 and 6 rows, against the CPU at 1e-5. */
START_TEST(test_moe_ffn_wide)
{
	static const size_t ns[] = { 1, 3, 6 };
	enum { NE = 4 };
	const size_t dim = 2048, n_ff = 2056, top_k = 2;
	struct gpu_pair p;
	struct moe_fx f;
	size_t c;

	if (!gpu_pair_open(&p, 3))
		return;
	moe_fx_make(&p, &f, GPU_DTYPE_BF16, NE, dim, n_ff, 0.05f);
	for (c = 0; c < sizeof ns / sizeof ns[0]; c++) {
		const size_t n = ns[c];
		struct moe_case m;

		ck_assert(gpu_moe_ffn_recordable(p.cuda, &f.exg, n, dim, top_k));
		moe_case_make(&p, &m, n, NE, dim, n_ff, top_k);
		BOTH(gpu_moe_ffn(p.cpu, m.out.c, m.bx.c, m.ids.c, m.wts.c, &f.exc, n,
				 dim, top_k, m.scr.c, &d_),
		     gpu_moe_ffn(p.cuda, m.out.g, m.bx.g, m.ids.g, m.wts.g, &f.exg, n,
				 dim, top_k, m.scr.g, &d_));
		EXPECT_CLOSE(m.out, 0, n * dim, 1e-5, "moe_ffn wide n %zu", n);
		moe_case_free(&m);
	}
	moe_fx_free(&f);
	gpu_pair_close(&p);
}
END_TEST

/* ---- device memory ----------------------------------------------------- */

START_TEST(test_memory_nomem)
{
	struct gpu_pair p;
	struct gpu_buf *b = NULL;
	struct diag d;
	float one = 1.0f, back = 0.0f;

	if (!gpu_pair_open(&p, 3))
		return;
	/* 4 TiB: fails cleanly with the sizes in the message */
	diag_clear(&d);
	ck_assert_int_eq(gpu_buf_new(p.cuda, GPU_DTYPE_F32, (size_t)1 << 40, &b, &d),
			 GPU_E_NOMEM);
	ck_assert_ptr_null(b);
	ck_assert_msg(strstr(diag_message(&d, ""), "MiB free") != NULL, "%s",
		      diag_message(&d, ""));
	/* and the handle still works */
	b = mkbuf(p.cuda, GPU_DTYPE_F32, &one, 1);
	ck_assert_int_eq(gpu_buf_read(b, 0, &back, 1, &d), 0);
	ck_assert(back == 1.0f);
	gpu_buf_free(b);
	gpu_pair_close(&p);
}
END_TEST

/* Fill the device with 1 GiB buffers until GPU_E_NOMEM, free them all,
 * three times: the count must not change (freeing returns everything).
 * Skipped when TERN_GPU_NO_FILL is set (scripts/check-gpu.sh sets it
 * under compute-sanitizer, which needs device memory of its own). */
START_TEST(test_memory_fill)
{
	enum { MAXB = 256 };
	struct gpu_buf *bufs[MAXB];
	struct gpu_pair p;
	int round, counts[3];

	if (getenv("TERN_GPU_NO_FILL")) {
		printf("SKIP: memory fill (TERN_GPU_NO_FILL)\n");
		return;
	}
	if (!gpu_pair_open(&p, 3))
		return;
	for (round = 0; round < 3; round++) {
		int n = 0, i, rc = 0;
		struct diag d;

		while (n < MAXB) {
			rc = gpu_buf_new(p.cuda, GPU_DTYPE_F32, (size_t)1 << 28, &bufs[n], &d);
			if (rc < 0)
				break;
			n++;
		}
		ck_assert_msg(rc == GPU_E_NOMEM || n == MAXB, "round %d: rc %d: %s",
			      round, rc, diag_message(&d, "?"));
		counts[round] = n;
		for (i = 0; i < n; i++)
			gpu_buf_free(bufs[i]);
	}
	printf("cuda_parity: device holds %d x 1 GiB buffers (rounds: %d %d %d)\n",
	       counts[0], counts[0], counts[1], counts[2]);
	ck_assert_int_gt(counts[0], 0);
	ck_assert_int_eq(counts[0], counts[1]);
	ck_assert_int_eq(counts[1], counts[2]);
	gpu_pair_close(&p);
}
END_TEST

/* ---- timings (TERN_GPU_BENCH=1) ---------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median over 7 runs of (time of `iters` calls of fn) / iters. */
#define TIME_MEDIAN(result, iters, body)                                    \
	do {                                                                \
		double ts_[7];                                              \
		int r_, it_;                                                \
		for (it_ = 0; it_ < 3; it_++) {                             \
			body;                                               \
		}                                                           \
		gpu_sync(g, NULL);                                          \
		for (r_ = 0; r_ < 7; r_++) {                                \
			double t0_ = now_s();                               \
			for (it_ = 0; it_ < (iters); it_++) {               \
				body;                                       \
			}                                                   \
			gpu_sync(g, NULL);                                  \
			ts_[r_] = (now_s() - t0_) / (iters);                \
		}                                                           \
		qsort(ts_, 7, sizeof ts_[0], cmp_d);                        \
		(result) = ts_[3];                                          \
	} while (0)

START_TEST(test_bench)
{
	const char *env = getenv("TERN_GPU_BENCH");
	struct gpu_pair p;
	struct gpu *g;
	double t;
	size_t c;
	int gemv_only;

	/* TERN_GPU_BENCH=gemv: the copy and GEMV rows only */
	gemv_only = env && !strcmp(env, "gemv");
	if (!env || (strcmp(env, "1") && !gemv_only))
		return;
	if (!gpu_pair_open(&p, 3))
		return;
	g = p.cuda;
	printf("bench: %s\n", gpu_describe(g));
	{
		/* device copy: 1 GiB read + 1 GiB written */
		const size_t n = (size_t)1 << 28;
		struct gpu_buf *a = mkbuf(g, GPU_DTYPE_F32, NULL, n);
		struct gpu_buf *b = mkbuf(g, GPU_DTYPE_F32, NULL, n);

		gpu_buf_zero(a, NULL);
		TIME_MEDIAN(t, 10, gpu_copy(g, b, 0, a, 0, n, NULL));
		printf("bench: copy 1 GiB d2d: %.3f ms, %.0f GB/s (read + write)\n",
		       t * 1e3, 2.0 * (double)n * 4 / t / 1e9);
		gpu_buf_free(a);
		gpu_buf_free(b);
	}
	for (c = 0; c < 4; c++) {
		/* GEMV n = 1..16 (and GEMM n = 2048 for the first two), bf16
		 * W [rows, k]: q/o, gate/up, down, lm_head of llama-3-8B; 8
		 * weight copies rotated so that W never sits in L2 (50 MB),
		 * one for lm_head (1 GiB) */
		static const size_t shp[4][2] = { { 4096, 4096 }, { 14336, 4096 },
						   { 4096, 14336 }, { 128256, 4096 } };
		static const size_t nns[] = { 1, 2, 4, 8, 16 };
		const size_t rows = shp[c][0], k = shp[c][1];
		const size_t nw = c == 3 ? 1 : 8, nx = c < 2 ? 2048 : 16;
		struct gpu_buf *w[8], *x, *out;
		float *xh = rand_f32(nx * k, 1.0f);
		uint16_t *wh = malloc(rows * k * 2);
		size_t i, j = 0, nn;

		for (i = 0; i < rows * k; i++)
			wh[i] = test_to_bf16(test_frand() * 0.05f);
		for (i = 0; i < nw; i++)
			w[i] = mkbuf(g, GPU_DTYPE_BF16, wh, rows * k);
		x = mkbuf(g, GPU_DTYPE_F32, xh, nx * k);
		out = mkbuf(g, GPU_DTYPE_F32, NULL, nx * rows);
		for (nn = 0; nn < sizeof nns / sizeof nns[0]; nn++) {
			TIME_MEDIAN(t, c == 3 ? 20 : 200,
				    gpu_matmul(g, out, x, w[j++ % nw], NULL, nns[nn], k,
					       rows, NULL));
			printf("bench: gemv bf16 %zux%zu n=%zu: %.2f us, %.0f GB/s of W\n",
			       rows, k, nns[nn], t * 1e6, (double)rows * k * 2 / t / 1e9);
		}
		if (c < 2 && !gemv_only) {
			TIME_MEDIAN(t, 20, gpu_matmul(g, out, x, w[j++ % nw], NULL, 2048,
						      k, rows, NULL));
			printf("bench: gemm bf16 %zux%zu n=2048: %.3f ms, %.0f TFLOP/s "
			       "(incl. x -> bf16)\n", rows, k, t * 1e3,
			       2.0 * 2048 * (double)k * rows / t / 1e12);
		}
		for (i = 0; i < nw; i++)
			gpu_buf_free(w[i]);
		gpu_buf_free(x);
		gpu_buf_free(out);
		free(xh);
		free(wh);
	}
	if (!gemv_only) {
		/* decode attention: 1 row, 32 heads / 8 kv heads, hd 128, f16
		 * pool, context 4096 in pages of 16 */
		const size_t ctx = 4096, ps = 16, hd = 128, hkv = 8, nh = 32;
		const size_t np = ctx / ps, row = hkv * hd;
		struct gpu_buf *kp = mkbuf(g, GPU_DTYPE_F16, NULL, np * ps * row);
		struct gpu_buf *vp = mkbuf(g, GPU_DTYPE_F16, NULL, np * ps * row);
		int32_t *pt = malloc(np * 4), seq0 = 0, pos = (int32_t)ctx - 1;
		struct gpu_buf *bpt, *bs, *bp, *q, *o;
		struct gpu_kv_pool pool = { kp, vp, np, ps, hkv, hd, 0, 0, NULL, NULL };
		struct gpu_kv_batch b;
		size_t i;

		uint16_t *hk = malloc(np * ps * row * 2);
		float *qh = rand_f32(nh * hd, 1.0f);

		for (i = 0; i < np; i++)
			pt[i] = (int32_t)(np - 1 - i);
		for (i = 0; i < np * ps * row; i++)
			hk[i] = test_to_f16(test_frand());
		gpu_buf_write(kp, 0, hk, np * ps * row, NULL);
		gpu_buf_write(vp, 0, hk, np * ps * row, NULL);
		free(hk);
		bpt = mkbuf(g, GPU_DTYPE_I32, pt, np);
		bs = mkbuf(g, GPU_DTYPE_I32, &seq0, 1);
		bp = mkbuf(g, GPU_DTYPE_I32, &pos, 1);
		q = mkbuf(g, GPU_DTYPE_F32, qh, nh * hd);
		o = mkbuf(g, GPU_DTYPE_F32, NULL, nh * hd);
		free(qh);
		b = (struct gpu_kv_batch){ 1, bs, bp, bpt, 1, np, false };
		TIME_MEDIAN(t, 100, gpu_attention(g, o, q, &pool, &b, nh, 0.088f, 0, NULL));
		printf("bench: attention decode ctx %zu 32/8 heads hd 128 f16: %.1f us, "
		       "%.0f GB/s of KV\n", ctx, t * 1e6,
		       2.0 * (double)ctx * row * 2 / t / 1e9);
		{
			/* prefill chunk: 512 rows at positions 3584..4095 of
			 * the same context (FLOPs: 4 hd nh per (row, key)) */
			const size_t nr = 512;
			int32_t *ps_h = malloc(nr * 4), *ss_h = calloc(nr, 4);
			struct gpu_buf *bs2, *bp2, *q2, *o2;
			float *q2h = rand_f32(nr * nh * hd, 1.0f);
			double fl = 0.0;

			for (i = 0; i < nr; i++) {
				ps_h[i] = (int32_t)(ctx - nr + i);
				fl += 4.0 * hd * nh * (double)(ps_h[i] + 1);
			}
			bs2 = mkbuf(g, GPU_DTYPE_I32, ss_h, nr);
			bp2 = mkbuf(g, GPU_DTYPE_I32, ps_h, nr);
			q2 = mkbuf(g, GPU_DTYPE_F32, q2h, nr * nh * hd);
			o2 = mkbuf(g, GPU_DTYPE_F32, NULL, nr * nh * hd);
			b = (struct gpu_kv_batch){ nr, bs2, bp2, bpt, 1, np, true };
			TIME_MEDIAN(t, 10, gpu_attention(g, o2, q2, &pool, &b, nh, 0.088f,
							 0, NULL));
			printf("bench: attention prefill 512 rows at ctx %zu 32/8 heads "
			       "hd 128 f16: %.1f us, %.1f TFLOP/s\n", ctx, t * 1e6,
			       fl / t / 1e12);
			gpu_buf_free(bs2);
			gpu_buf_free(bp2);
			gpu_buf_free(q2);
			gpu_buf_free(o2);
			free(ps_h);
			free(ss_h);
			free(q2h);
		}
		gpu_buf_free(kp);
		gpu_buf_free(vp);
		gpu_buf_free(bpt);
		gpu_buf_free(bs);
		gpu_buf_free(bp);
		gpu_buf_free(q);
		gpu_buf_free(o);
		free(pt);
	}
	gpu_pair_close(&p);
}
END_TEST

/* ---- without a device: clean failure ----------------------------------- */

START_TEST(test_open_auto)
{
	struct gpu *g = NULL;
	struct diag d;
	int rc;

	/* AUTO always opens something; CUDA either opens or says NODEVICE */
	ck_assert_int_eq(gpu_open(GPU_KIND_AUTO, NULL, &g, &d), 0);
	ck_assert(gpu_get_kind(g) == GPU_KIND_CPU || gpu_get_kind(g) == GPU_KIND_CUDA);
	gpu_close(g);
	g = NULL;
	rc = gpu_open(GPU_KIND_CUDA, NULL, &g, &d);
	ck_assert(rc == 0 || rc == GPU_E_NODEVICE);
	ck_assert((rc == 0) == (g != NULL));
	if (g)
		ck_assert_ptr_nonnull(strstr(gpu_describe(g), "cuda:"));
	gpu_close(g);
}
END_TEST

#ifdef HAVE_CUDA
/* gpu_cuda_attention_splits_waves (the default split rule; host
 * arithmetic, no device needed): the choices of kernels.h's rule, worked
 * by hand, for the shapes docs/PERFORMANCE.md measured with 132 SMs (264
 * block slots). */
START_TEST(test_attention_splits_waves)
{
	static const struct {
		size_t items, units, max;
		int n_sm, per;
		size_t want;
	} cs[] = {
		{ 8, 16, 64, 132, 2, 16 },   /* b1 ctx 512: one round a split, a wave */
		{ 8, 64, 64, 132, 2, 32 },   /* b1 ctx 2048: 256 blocks of 2 rounds */
		{ 8, 128, 64, 132, 2, 32 },  /* b1 ctx 4096: 256 blocks of 4 rounds */
		{ 64, 128, 64, 132, 2, 4 },  /* b8 ctx 4096: 4 (5 would be 2 waves) */
		{ 64, 16, 64, 132, 2, 4 },   /* b8 ctx 512 */
		{ 8, 1024, 64, 132, 2, 32 }, /* b1 ctx 32K (64 ties: 2 waves of 16) */
		{ 264, 16, 64, 132, 2, 1 },  /* a full wave unsplit */
		{ 4096, 16, 64, 132, 2, 1 },
		{ 8, 3, 64, 132, 2, 3 },     /* at most a split a round */
		{ 8, 1024, 16, 132, 2, 16 }, /* at most max */
		{ 1, 4, 64, 0, 2, 2 },       /* no SM count: one SM, 2 slots */
		{ 8, 2048, 64, 132, 3, 49 }, /* quantized TC kernel at 128K: 3 an SM */
		{ 8, 2048, 64, 132, 2, 33 }, /* the same, 2 an SM (f16 TC kernel) */
		{ 1, 4, 64, 1, 0, 2 },       /* per_sm < 1: 2 */
	};

	for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
		ck_assert_msg(gpu_cuda_attention_splits_waves(cs[i].items, cs[i].units,
							      cs[i].max, cs[i].n_sm,
							      cs[i].per) == cs[i].want,
			      "splits_waves(%zu, %zu, %zu, %d, %d) = %zu, want %zu",
			      cs[i].items, cs[i].units, cs[i].max, cs[i].n_sm, cs[i].per,
			      gpu_cuda_attention_splits_waves(cs[i].items, cs[i].units,
							      cs[i].max, cs[i].n_sm,
							      cs[i].per),
			      cs[i].want);
}
END_TEST
#endif

Suite *cuda_parity_suite(void)
{
	Suite *s = suite_create("cuda_parity");
	TCase *tc = tcase_create("ops");
	TCase *tm = tcase_create("memory");
	TCase *tf = tcase_create("memory_fill");
	TCase *tb = tcase_create("bench");
	TCase *tg = tcase_create("gemv");
	TCase *tq = tcase_create("moe_grouped");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_open_auto);
	tcase_add_test(tc, test_get_rows);
	tcase_add_test(tc, test_matmul);
	tcase_add_test(tg, test_gemv);
	tcase_add_test(tg, test_matmul_multi);
	tcase_add_test(tg, test_matmul_swiglu);
	tcase_add_test(tg, test_swiglu_ffn);
	tcase_add_test(tc, test_rmsnorm);
	tcase_add_test(tc, test_norms);
	tcase_add_test(tc, test_elementwise);
	tcase_add_test(tc, test_rope);
	tcase_add_test(tc, test_rope_kv_store);
	tcase_add_test(tc, test_attention);
	tcase_add_test(tc, test_attention_quant);
#ifdef HAVE_CUDA
	tcase_add_test(tc, test_attention_splits_waves);
#endif
	tcase_add_test(tc, test_moe_route);
	tcase_add_test(tc, test_moe_ffn);
	tcase_add_test(tc, test_moe_ffn_wide);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tg, 120);
	suite_add_tcase(s, tg);
	tcase_set_timeout(tq, 120);
	tcase_add_test(tq, test_moe_ffn_grouped);
	suite_add_tcase(s, tq);
	tcase_add_test(tm, test_memory_nomem);
	suite_add_tcase(s, tm);
	tcase_set_timeout(tf, 300);
	tcase_add_test(tf, test_memory_fill);
	suite_add_tcase(s, tf);
	tcase_set_timeout(tb, 300);
	tcase_add_test(tb, test_bench);
	suite_add_tcase(s, tb);
	return s;
}
