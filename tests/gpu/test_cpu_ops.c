/* tests/gpu/test_cpu_ops.c — suite cpu_ops: every CPU backend op against a
 * straightforward formula (double precision where it matters) on small
 * random inputs, with shapes chosen to hit the kernels' edges (k not a
 * multiple of the lane count, rows not a multiple of the row block, x
 * blocks, attention across page boundaries through shuffled page tables),
 * the fused ops (add_rmsnorm, matmul_multi, rope_kv_store) bit for bit
 * against the ops they replace, plus argument validation.  Threads: 3, so
 * that splits are uneven.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "gpu/moe_plan.h"
#include "testutil.h"

static uint64_t rng_state;

static float frand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng_state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static struct gpu *open_cpu(int threads)
{
	struct gpu_params p = gpu_default_params();
	struct gpu *g = NULL;
	struct diag d;

	p.n_threads = threads;
	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, &p, &g, &d), 0);
	ck_assert_ptr_nonnull(g);
	return g;
}

static struct gpu_buf *buf_f32(struct gpu *g, const float *v, size_t n)
{
	struct gpu_buf *b = NULL;

	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, n, &b, NULL), 0);
	if (v)
		ck_assert_int_eq(gpu_buf_write(b, 0, v, n, NULL), 0);
	return b;
}

static struct gpu_buf *buf_i32(struct gpu *g, const int32_t *v, size_t n)
{
	struct gpu_buf *b = NULL;

	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, n, &b, NULL), 0);
	if (v)
		ck_assert_int_eq(gpu_buf_write(b, 0, v, n, NULL), 0);
	return b;
}

/* ---- matmul ------------------------------------------------------------ */

static void check_matmul(enum gpu_dtype wt, size_t n, size_t k, size_t rows,
			 int with_bias, int threads)
{
	struct gpu *g = open_cpu(threads);
	float *x = malloc(n * k * sizeof *x), *wf = malloc(rows * k * sizeof *wf);
	float *bias = malloc(rows * sizeof *bias), *out = malloc(n * rows * sizeof *out);
	uint16_t *wh = malloc(rows * k * sizeof *wh);
	struct gpu_buf *bx, *bw = NULL, *bb = NULL, *bo;
	size_t i, j, r;

	for (i = 0; i < n * k; i++)
		x[i] = frand();
	for (i = 0; i < rows; i++)
		bias[i] = frand();
	for (i = 0; i < rows * k; i++) {
		float v = frand();

		if (wt == GPU_DTYPE_BF16) {
			wh[i] = test_to_bf16(v);
			wf[i] = test_from_bf16(wh[i]);
		} else if (wt == GPU_DTYPE_F16) {
			wh[i] = test_to_f16(v);
			wf[i] = test_from_f16(wh[i]);
		} else {
			wf[i] = v;
		}
	}
	bx = buf_f32(g, x, n * k);
	ck_assert_int_eq(gpu_buf_new(g, wt, rows * k, &bw, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bw, 0, wt == GPU_DTYPE_F32 ? (void *)wf :
				       (void *)wh, rows * k, NULL), 0);
	if (with_bias)
		bb = buf_f32(g, bias, rows);
	bo = buf_f32(g, NULL, n * rows);
	ck_assert_int_eq(gpu_matmul(g, bo, bx, bw, bb, n, k, rows, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, n * rows, NULL), 0);
	for (i = 0; i < n; i++) {
		for (r = 0; r < rows; r++) {
			double ref = with_bias ? bias[r] : 0.0, mag = 1.0;

			for (j = 0; j < k; j++) {
				ref += (double)x[i * k + j] * wf[r * k + j];
				mag += fabs((double)x[i * k + j] * wf[r * k + j]);
			}
			ck_assert_msg(fabs(out[i * rows + r] - ref) <= 1e-5 * mag,
				      "%s n=%zu k=%zu rows=%zu: out[%zu,%zu]=%g ref %g",
				      gpu_dtype_name(wt), n, k, rows, i, r,
				      (double)out[i * rows + r], ref);
		}
	}
	gpu_buf_free(bx);
	gpu_buf_free(bw);
	gpu_buf_free(bb);
	gpu_buf_free(bo);
	gpu_close(g);
	free(x);
	free(wf);
	free(bias);
	free(out);
	free(wh);
}

START_TEST(test_matmul)
{
	static const enum gpu_dtype types[] = { GPU_DTYPE_F32, GPU_DTYPE_F16,
						GPU_DTYPE_BF16 };
	size_t t;

	rng_state = 1;
	for (t = 0; t < 3; t++) {
		check_matmul(types[t], 1, 37, 13, 1, 3);   /* decode, odd sizes */
		check_matmul(types[t], 1, 256, 300, 0, 3); /* decode, threaded */
		check_matmul(types[t], 7, 64, 33, 1, 3);   /* 4x2 tiles + tail */
		check_matmul(types[t], 70, 40, 9, 0, 2);   /* x blocks of 64 */
		check_matmul(types[t], 9, 129, 2, 1, 3);   /* split over x */
		check_matmul(types[t], 130, 96, 200, 1, 3);
	}
}
END_TEST

/* ---- rmsnorm, elementwise, softmax -------------------------------------- */

START_TEST(test_rmsnorm)
{
	struct gpu *g = open_cpu(3);
	enum { N = 5, D = 67 };
	float x[N * D], w[D], out[N * D];
	struct gpu_buf *bx, *bw, *bo;
	size_t i, j;

	rng_state = 2;
	for (i = 0; i < N * D; i++)
		x[i] = frand() * 3.0f;
	for (i = 0; i < D; i++)
		w[i] = frand();
	bx = buf_f32(g, x, N * D);
	bw = buf_f32(g, w, D);
	bo = buf_f32(g, NULL, N * D);
	ck_assert_int_eq(gpu_rmsnorm(g, bo, bx, bw, N, D, 1e-5f, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, N * D, NULL), 0);
	for (i = 0; i < N; i++) {
		double ss = 0;

		for (j = 0; j < D; j++)
			ss += (double)x[i * D + j] * x[i * D + j];
		for (j = 0; j < D; j++) {
			double ref = x[i * D + j] / sqrt(ss / D + 1e-5) * w[j];

			ck_assert(fabs(out[i * D + j] - ref) < 1e-5);
		}
	}
	/* in place gives the same */
	ck_assert_int_eq(gpu_rmsnorm(g, bx, bx, bw, N, D, 1e-5f, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bx, 0, x, N * D, NULL), 0);
	ck_assert(memcmp(x, out, sizeof x) == 0);
	gpu_buf_free(bx);
	gpu_buf_free(bw);
	gpu_buf_free(bo);
	gpu_close(g);
}
END_TEST

START_TEST(test_elementwise)
{
	struct gpu *g = open_cpu(3);
	enum { N = 50000, R = 3, D = 5 };
	float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
	float *o = malloc(N * sizeof *o);
	float sm[R * D], smo[R * D], gate[R], y[R * D], acc[R * D], acco[R * D];
	struct gpu_buf *ba, *bb, *bo, *bs, *bg, *by, *bacc;
	size_t i, j;

	rng_state = 3;
	for (i = 0; i < N; i++) {
		a[i] = frand() * 8.0f;
		b[i] = frand();
	}
	ba = buf_f32(g, a, N);
	bb = buf_f32(g, b, N);
	bo = buf_f32(g, NULL, N);
	ck_assert_int_eq(gpu_swiglu(g, bo, ba, bb, N, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, o, N, NULL), 0);
	for (i = 0; i < N; i++) {
		double ref = a[i] / (1.0 + exp(-(double)a[i])) * b[i];

		ck_assert(fabs(o[i] - ref) <= 1e-6 * (1 + fabs(ref)));
	}
	ck_assert_int_eq(gpu_add(g, bo, ba, bb, N, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, o, N, NULL), 0);
	for (i = 0; i < N; i++)
		ck_assert(o[i] == a[i] + b[i]);

	for (i = 0; i < R * D; i++) {
		sm[i] = frand() * 20.0f;
		y[i] = frand();
		acc[i] = frand();
	}
	for (i = 0; i < R; i++)
		gate[i] = frand() * 4.0f;
	bs = buf_f32(g, sm, R * D);
	ck_assert_int_eq(gpu_softmax(g, bs, R, D, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bs, 0, smo, R * D, NULL), 0);
	for (i = 0; i < R; i++) {
		double mx = -1e30, sum = 0;

		for (j = 0; j < D; j++)
			mx = fmax(mx, sm[i * D + j]);
		for (j = 0; j < D; j++)
			sum += exp(sm[i * D + j] - mx);
		for (j = 0; j < D; j++)
			ck_assert(fabs(smo[i * D + j] - exp(sm[i * D + j] - mx) / sum) <
				  1e-6);
	}
	bg = buf_f32(g, gate, R);
	by = buf_f32(g, y, R * D);
	bacc = buf_f32(g, acc, R * D);
	ck_assert_int_eq(gpu_add_gated(g, bacc, by, bg, R, D, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bacc, 0, acco, R * D, NULL), 0);
	for (i = 0; i < R; i++)
		for (j = 0; j < D; j++) {
			double ref = acc[i * D + j] +
				     y[i * D + j] / (1.0 + exp(-(double)gate[i]));

			ck_assert(fabs(acco[i * D + j] - ref) < 1e-6);
		}
	gpu_buf_free(ba);
	gpu_buf_free(bb);
	gpu_buf_free(bo);
	gpu_buf_free(bs);
	gpu_buf_free(bg);
	gpu_buf_free(by);
	gpu_buf_free(bacc);
	gpu_close(g);
	free(a);
	free(b);
	free(o);
}
END_TEST

START_TEST(test_get_rows)
{
	struct gpu *g = open_cpu(2);
	enum { V = 10, D = 12 };
	uint16_t tab[V * D];
	int32_t ids[4] = { 3, 0, 9, 12 }; /* 12: out of range -> zeros */
	float out[4 * D];
	struct gpu_buf *bt = NULL, *bi, *bo;
	size_t i, j;

	rng_state = 4;
	for (i = 0; i < V * D; i++)
		tab[i] = test_to_bf16(frand());
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_BF16, V * D, &bt, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bt, 0, tab, V * D, NULL), 0);
	bi = buf_i32(g, ids, 4);
	bo = buf_f32(g, NULL, 4 * D);
	ck_assert_int_eq(gpu_get_rows(g, bo, bt, V, bi, 1, 3, D, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, 3 * D, NULL), 0);
	for (i = 0; i < 3; i++)
		for (j = 0; j < D; j++) {
			float ref = ids[i + 1] < V ?
				test_from_bf16(tab[ids[i + 1] * D + j]) : 0.0f;

			ck_assert(out[i * D + j] == ref);
		}
	gpu_buf_free(bt);
	gpu_buf_free(bi);
	gpu_buf_free(bo);
	gpu_close(g);
}
END_TEST

/* ---- rope ---------------------------------------------------------------- */

START_TEST(test_rope)
{
	struct gpu *g = open_cpu(2);
	enum { N = 3, H = 2, HD = 8, HALF = HD / 2 };
	float x[N * H * HD], y[N * H * HD], inv[HALF];
	int32_t pos[N] = { 0, 1, 1000 };
	int32_t mpos[3 * N] = { 0, 1, 1000, 0, 1, 1000, 0, 1, 1000 };
	int32_t mpos2[3 * N] = { 5, 5, 5, 7, 7, 7, 9, 9, 9 };
	int sec[3] = { 1, 1, 2 };
	struct gpu_rope rp = { HD, 1.0f, NULL, NULL, NULL, 0.0f };
	struct gpu_buf *bx, *bp, *bi, *bm;
	size_t i, h, f;

	rng_state = 5;
	for (f = 0; f < HALF; f++)
		inv[f] = (float)(1.0 / pow(10000.0, 2.0 * (double)f / HD));
	for (i = 0; i < N * H * HD; i++)
		x[i] = frand();
	bx = buf_f32(g, x, N * H * HD);
	bp = buf_i32(g, pos, N);
	bi = buf_f32(g, inv, HALF);
	ck_assert_int_eq(gpu_rope(g, bx, N, H, HD, bp, bi, &rp, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bx, 0, y, N * H * HD, NULL), 0);
	for (i = 0; i < N; i++)
		for (h = 0; h < H; h++)
			for (f = 0; f < HALF; f++) {
				size_t o = (i * H + h) * HD;
				double th = (double)(float)((float)pos[i] * inv[f]);
				double a = x[o + f], b = x[o + f + HALF];

				/* rotate-half pairs (f, f + HD/2) */
				ck_assert(fabs(y[o + f] - (a * cos(th) - b * sin(th))) < 1e-5);
				ck_assert(fabs(y[o + f + HALF] - (b * cos(th) + a * sin(th))) <
					  1e-5);
			}
	/* position 0 is the identity */
	for (i = 0; i < H * HD; i++)
		ck_assert(y[i] == x[i]);
	/* position 1, frequency 0 (inv_freq 1): a known rotation by 1 rad */
	ck_assert(fabs(y[H * HD] - (x[H * HD] * cos(1.0) - x[H * HD + HALF] * sin(1.0))) <
		  1e-6);

	/* MRoPE with equal components equals plain RoPE */
	rp.mrope_section = sec;
	ck_assert_int_eq(gpu_buf_write(bx, 0, x, N * H * HD, NULL), 0);
	bm = buf_i32(g, mpos, 3 * N);
	ck_assert_int_eq(gpu_rope(g, bx, N, H, HD, bm, bi, &rp, NULL), 0);
	{
		float z[N * H * HD];

		ck_assert_int_eq(gpu_buf_read(bx, 0, z, N * H * HD, NULL), 0);
		ck_assert(memcmp(z, y, sizeof z) == 0);
	}
	/* distinct components: frequency f uses t (f<1), h (f<2), w (else) */
	ck_assert_int_eq(gpu_buf_write(bx, 0, x, N * H * HD, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bm, 0, mpos2, 3 * N, NULL), 0);
	ck_assert_int_eq(gpu_rope(g, bx, N, H, HD, bm, bi, &rp, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bx, 0, y, N * H * HD, NULL), 0);
	for (i = 0; i < N; i++)
		for (h = 0; h < H; h++)
			for (f = 0; f < HALF; f++) {
				size_t o = (i * H + h) * HD;
				int p = f < 1 ? 5 : f < 2 ? 7 : 9;
				double th = (double)(float)((float)p * inv[f]);
				double a = x[o + f], b = x[o + f + HALF];

				ck_assert(fabs(y[o + f] - (a * cos(th) - b * sin(th))) < 1e-5);
			}
	/* sections must add up to n_rot / 2 */
	sec[2] = 3;
	ck_assert_int_eq(gpu_rope(g, bx, N, H, HD, bm, bi, &rp, NULL),
			 GPU_E_INVALID);
	gpu_buf_free(bx);
	gpu_buf_free(bp);
	gpu_buf_free(bi);
	gpu_buf_free(bm);
	gpu_close(g);
}
END_TEST

/* ---- paged attention ------------------------------------------------------ */

/* Two sequences of lengths L0, L1 over a pool of 4-token pages with
 * shuffled page tables; the batch holds the last few rows of each sequence
 * (a "prefill chunk" after earlier tokens). */
static void check_attention(enum gpu_dtype kvt, size_t window, size_t nh)
{
	enum { PS = 4, NP = 12, HKV = 2, MAXH = 20, HD = 16, MAXP = 5 };
	enum { L0 = 13, L1 = 7, NROWS = 5 };
	struct gpu *g = open_cpu(3);
	int32_t pt[2 * MAXP] = { 7, 2, 10, 0, -1, 3, 11, -1, -1, -1 };
	/* rows: seq0 positions 10, 11, 12; seq1 positions 5, 6 */
	int32_t rseq[NROWS] = { 0, 0, 0, 1, 1 }, rpos[NROWS] = { 10, 11, 12, 5, 6 };
	static float K[2][L0][HKV * HD], V[2][L0][HKV * HD];
	float q[NROWS * MAXH * HD], out[NROWS * MAXH * HD];
	int32_t allseq[L0 + L1], allpos[L0 + L1];
	struct gpu_buf *bk, *bv, *bpt, *brs, *brp, *bq, *bo, *bks, *bvs, *bas, *bap;
	struct gpu_kv_pool pool;
	struct gpu_kv_batch b;
	const float scale = 0.25f;
	size_t s, t, i, h, c, n = 0;
	float kk[(L0 + L1) * HKV * HD], vv[(L0 + L1) * HKV * HD];

	rng_state = 6;
	for (s = 0; s < 2; s++)
		for (t = 0; t < (s ? L1 : L0); t++) {
			for (c = 0; c < HKV * HD; c++) {
				K[s][t][c] = frand();
				V[s][t][c] = frand();
				if (kvt == GPU_DTYPE_F16) {
					K[s][t][c] = test_from_f16(test_to_f16(K[s][t][c]));
					V[s][t][c] = test_from_f16(test_to_f16(V[s][t][c]));
				}
				kk[n * HKV * HD + c] = K[s][t][c];
				vv[n * HKV * HD + c] = V[s][t][c];
			}
			allseq[n] = (int32_t)s;
			allpos[n] = (int32_t)t;
			n++;
		}
	for (i = 0; i < NROWS * nh * HD; i++)
		q[i] = frand() * 2.0f;
	ck_assert_int_eq(gpu_buf_new(g, kvt, NP * PS * HKV * HD, &bk, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, kvt, NP * PS * HKV * HD, &bv, NULL), 0);
	ck_assert_int_eq(gpu_buf_zero(bk, NULL), 0);
	ck_assert_int_eq(gpu_buf_zero(bv, NULL), 0);
	pool.k = bk;
	pool.v = bv;
	pool.n_pages = NP;
	pool.page_size = PS;
	pool.n_head_kv = HKV;
	pool.head_dim = HD;
	bpt = buf_i32(g, pt, 2 * MAXP);
	/* store every token of both sequences in one kv_store call */
	bas = buf_i32(g, allseq, L0 + L1);
	bap = buf_i32(g, allpos, L0 + L1);
	bks = buf_f32(g, kk, (L0 + L1) * HKV * HD);
	bvs = buf_f32(g, vv, (L0 + L1) * HKV * HD);
	b.n_rows = L0 + L1;
	b.row_seq = bas;
	b.row_pos = bap;
	b.page_table = bpt;
	b.n_seq = 2;
	b.max_pages = MAXP;
	b.single_seq = false;
	ck_assert_int_eq(gpu_kv_store(g, &pool, &b, bks, bvs, NULL), 0);

	brs = buf_i32(g, rseq, NROWS);
	brp = buf_i32(g, rpos, NROWS);
	bq = buf_f32(g, q, NROWS * nh * HD);
	bo = buf_f32(g, NULL, NROWS * nh * HD);
	b.n_rows = NROWS;
	b.row_seq = brs;
	b.row_pos = brp;
	ck_assert_int_eq(gpu_attention(g, bo, bq, &pool, &b, nh, scale, window, NULL),
			 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, NROWS * nh * HD, NULL), 0);
	for (i = 0; i < NROWS; i++) {
		for (h = 0; h < nh; h++) {
			size_t hk = h / (nh / HKV), sq = (size_t)rseq[i];
			size_t p = (size_t)rpos[i];
			size_t lo = window && p + 1 > window ? p + 1 - window : 0;
			double sc[L0], mx = -1e30, sum = 0;
			const float *qq = q + (i * nh + h) * HD;

			for (t = lo; t <= p; t++) {
				double dd = 0;

				for (c = 0; c < HD; c++)
					dd += (double)qq[c] * K[sq][t][hk * HD + c];
				sc[t] = dd * scale;
				mx = fmax(mx, sc[t]);
			}
			for (t = lo; t <= p; t++)
				sum += exp(sc[t] - mx);
			for (c = 0; c < HD; c++) {
				double ref = 0;

				for (t = lo; t <= p; t++)
					ref += exp(sc[t] - mx) / sum *
					       V[sq][t][hk * HD + c];
				ck_assert_msg(fabs(out[(i * nh + h) * HD + c] - ref) < 1e-5,
					      "row %zu head %zu dim %zu: %g vs %g", i, h,
					      c, (double)out[(i * nh + h) * HD + c], ref);
			}
		}
	}
	/* the rows are of two sequences: a single-sequence promise is refused */
	b.single_seq = true;
	ck_assert_int_eq(gpu_attention(g, bo, bq, &pool, &b, nh, scale, window, NULL),
			 GPU_E_INVALID);
	b.single_seq = false;
	/* a page entry outside the pool is refused */
	pt[1] = NP;
	ck_assert_int_eq(gpu_buf_write(bpt, 0, pt, 2 * MAXP, NULL), 0);
	ck_assert_int_eq(gpu_attention(g, bo, bq, &pool, &b, nh, scale, window, NULL),
			 GPU_E_INVALID);
	ck_assert_int_eq(gpu_kv_store(g, &pool, &b, bks, bvs, NULL), 0);
	pt[2] = -1;
	ck_assert_int_eq(gpu_buf_write(bpt, 0, pt, 2 * MAXP, NULL), 0);
	ck_assert_int_eq(gpu_kv_store(g, &pool, &b, bks, bvs, NULL), GPU_E_INVALID);
	gpu_buf_free(bk);
	gpu_buf_free(bv);
	gpu_buf_free(bpt);
	gpu_buf_free(brs);
	gpu_buf_free(brp);
	gpu_buf_free(bq);
	gpu_buf_free(bo);
	gpu_buf_free(bks);
	gpu_buf_free(bvs);
	gpu_buf_free(bas);
	gpu_buf_free(bap);
	gpu_close(g);
}

START_TEST(test_attention)
{
	check_attention(GPU_DTYPE_F32, 0, 6);
	check_attention(GPU_DTYPE_F16, 0, 6);
	check_attention(GPU_DTYPE_F32, 6, 6);  /* sliding window */
	check_attention(GPU_DTYPE_F32, 0, 20); /* 10 heads per kv head: 8 + 2 */
	check_attention(GPU_DTYPE_F32, 0, 2);  /* MHA */
}
END_TEST

/* ---- MoE ----------------------------------------------------------------- */

/* gpu_moe_plan_sort against the plain triple loop, then
 * gpu_moe_plan_chunk (the CUDA grouped prefill path's planner) over
 * chunks of 1, 2, 5, 7, 23 and all 69 of the expert-sorted assignments of
 * 23 rows routed to 3 of 9 experts each (expert 0 in most rows; experts
 * 3, 7 and 8 empty): each chunk's lists, touched rows and pieces are checked
 * against the sorted list, every assignment lands in exactly one chunk,
 * each row meets its experts in ascending order across chunks, and the
 * MoE output assembled from the plans (double) matches gpu_moe_ffn on the
 * CPU backend at 1e-5. */
/* MoE test experts: E experts of f32 weights, gate and up [F, D], down
 * [D, F], each element frand() * scale (gate, up, down of one index in
 * turn), kept in wg/wu/wd (E x F*D floats each, expert-major) and as
 * buffers in eg/eu/ed, which *ex names. */
static void moe_experts_new(struct gpu *g, size_t E, size_t F, size_t D,
			    float scale, float *wg, float *wu, float *wd,
			    struct gpu_buf **eg, struct gpu_buf **eu,
			    struct gpu_buf **ed, struct gpu_moe_experts *ex)
{
	size_t e, i;

	for (e = 0; e < E; e++) {
		float *g_ = wg + e * F * D, *u_ = wu + e * F * D, *d_ = wd + e * F * D;

		for (i = 0; i < F * D; i++) {
			g_[i] = frand() * scale;
			u_[i] = frand() * scale;
			d_[i] = frand() * scale;
		}
		eg[e] = buf_f32(g, g_, F * D);
		eu[e] = buf_f32(g, u_, F * D);
		ed[e] = buf_f32(g, d_, D * F);
	}
	memset(ex, 0, sizeof *ex);
	ex->n_expert = E;
	ex->n_ff = F;
	ex->gate = (const struct gpu_buf *const *)eg;
	ex->up = (const struct gpu_buf *const *)eu;
	ex->down = (const struct gpu_buf *const *)ed;
}

static void moe_experts_free(size_t E, struct gpu_buf **eg, struct gpu_buf **eu,
			     struct gpu_buf **ed)
{
	size_t e;

	for (e = 0; e < E; e++) {
		gpu_buf_free(eg[e]);
		gpu_buf_free(eu[e]);
		gpu_buf_free(ed[e]);
	}
}

/* One expert's output for one row, in double: y [D] = Wd (silu(Wg x) *
 * (Wu x)), wg/wu [F, D] and wd [D, F] that expert's weights. */
static void expert_ref(const float *wg, const float *wu, const float *wd,
		       const float *x, size_t F, size_t D, double *y)
{
	double h[64];
	size_t f, c;

	ck_assert_uint_le(F, 64);
	for (f = 0; f < F; f++) {
		double a = 0, b = 0;

		for (c = 0; c < D; c++) {
			a += (double)wg[f * D + c] * x[c];
			b += (double)wu[f * D + c] * x[c];
		}
		h[f] = a / (1 + exp(-a)) * b;
	}
	for (c = 0; c < D; c++) {
		y[c] = 0;
		for (f = 0; f < F; f++)
			y[c] += wd[c * F + f] * h[f];
	}
}

START_TEST(test_moe_plan)
{
	enum { N = 23, E = 9, K = 3, D = 16, F = 12, NK = N * K };
	static const size_t acs[] = { 1, 2, 5, 7, 23, NK };
	struct gpu *g = open_cpu(2);
	float x[N * D], out[N * D], wts[NK], swts[NK];
	float wg[E][F * D], wu[E][F * D], wd[E][D * F];
	int32_t ids[NK], srows[NK], li[5 * NK + 2], cnt[N], fill[N];
	size_t start[E + 1], m = 0, i, j, e, c, t;
	struct gpu_moe_piece pc[E];
	struct gpu_buf *bi, *bw, *bx, *bo, *bs, *eg[E], *eu[E], *ed[E];
	struct gpu_moe_experts ex;
	double y[NK][D];

	rng_state = 11;
	for (i = 0; i < N; i++)
		for (j = 0; j < K; j++) {
			bool ok;

			do { /* distinct per row; expert 0 first in most rows */
				ids[i * K + j] = j == 0 && i % 4 ? 0 :
						 (int32_t)((frand() + 1.0f) * 0.5f * (E - 3));
				if (ids[i * K + j] >= 3) /* expert 3 stays empty */
					ids[i * K + j]++;
				ok = ids[i * K + j] < E;
				for (c = 0; c < j; c++)
					ok = ok && ids[i * K + c] != ids[i * K + j];
			} while (!ok);
			wts[i * K + j] = 0.25f + 0.5f * (frand() + 1.0f) * 0.5f;
		}
	for (i = 0; i < N * D; i++)
		x[i] = frand();
	moe_experts_new(g, E, F, D, 0.5f, wg[0], wu[0], wd[0], eg, eu, ed, &ex);
	/* expert-sorted, rows ascending within one (gpu/cpu/moe.c's order) */
	for (e = 0; e < E; e++) {
		start[e] = m;
		for (i = 0; i < N; i++)
			for (j = 0; j < K; j++)
				if ((size_t)ids[i * K + j] == e) {
					srows[m] = (int32_t)i;
					swts[m++] = wts[i * K + j];
				}
	}
	start[E] = m;
	ck_assert_uint_eq(m, NK);
	ck_assert_uint_eq(start[E - 1], start[E]); /* empty experts, */
	ck_assert_uint_eq(start[3], start[4]);     /* one among others */
	ck_assert_uint_lt(start[4], start[5]);
	{ /* gpu_moe_plan_sort gives the same lists */
		int32_t r2[NK];
		float w2[NK];
		size_t s2[E + 1], cur[E];

		gpu_moe_plan_sort(ids, wts, N, K, E, r2, w2, s2, cur);
		ck_assert(memcmp(r2, srows, sizeof r2) == 0);
		ck_assert(memcmp(w2, swts, sizeof w2) == 0);
		ck_assert(memcmp(s2, start, sizeof s2) == 0);
	}
	/* each sorted assignment's expert output, in double */
	for (t = 0; t < NK; t++) {
		for (e = 0; start[e + 1] <= t; e++)
			;
		expert_ref(wg[e], wu[e], wd[e], x + srows[t] * D, F, D, y[t]);
	}
	bi = buf_i32(g, ids, NK);
	bw = buf_f32(g, wts, NK);
	bx = buf_f32(g, x, N * D);
	bo = buf_f32(g, NULL, N * D);
	bs = buf_f32(g, NULL, gpu_moe_scratch_elems(N, D, F, K));
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, K, bs, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, N * D, NULL), 0);

	for (size_t q = 0; q < sizeof acs / sizeof acs[0]; q++) {
		const size_t ac = acs[q];
		double acc[N][D];
		int seen[NK] = { 0 }, last_e[N];
		size_t a, b;

		memset(acc, 0, sizeof acc);
		for (i = 0; i < N; i++)
			last_e[i] = -1;
		for (a = 0; a < NK; a = b) {
			const size_t A = NK - a < ac ? NK - a : ac;
			size_t R, np, s, r, k, run = 0;
			const float *lw = (const float *)(const void *)(li + A);

			b = a + A;
			li[5 * A + 1] = 0x7eadbeef; /* a canary after the lists */
			R = gpu_moe_plan_chunk(srows, swts, start, E, N, a, b, li, cnt,
					       fill, pc, &np);
			ck_assert_int_eq(li[5 * A + 1], 0x7eadbeef);
			for (s = 0; s < A; s++) {
				ck_assert_int_eq(li[s], srows[a + s]);
				ck_assert(lw[s] == swts[a + s]);
				ck_assert_int_eq(seen[a + s]++, 0);
			}
			/* touched rows ascending, each with its slots ascending */
			ck_assert_int_eq(li[3 * A], 0);
			ck_assert_int_eq(li[3 * A + R], (int)A);
			for (r = 0; r < R; r++) {
				const int32_t row = li[2 * A + r];
				size_t want = 0;

				ck_assert(r == 0 || row > li[2 * A + r - 1]);
				for (s = 0; s < A; s++)
					if (srows[a + s] == row) {
						const int32_t sl = li[4 * A + 1 + li[3 * A + r] +
								     (int32_t)want];

						ck_assert_int_lt((int)want,
								 li[3 * A + r + 1] - li[3 * A + r]);
						ck_assert_int_eq(sl, (int)s);
						want++;
					}
				ck_assert_int_eq((int)want, li[3 * A + r + 1] - li[3 * A + r]);
			}
			for (i = 0, k = 0; i < N; i++)
				k += cnt[i] != 0;
			ck_assert_uint_eq(k, R);
			/* pieces: experts ascending, contiguous, inside their
			 * expert's range */
			for (k = 0; k < np; k++) {
				e = (size_t)pc[k].expert;
				ck_assert(k == 0 || pc[k].expert > pc[k - 1].expert);
				ck_assert_int_eq(pc[k].s0, (int)run);
				ck_assert_int_gt(pc[k].m, 0);
				ck_assert_uint_ge(a + (size_t)pc[k].s0, start[e]);
				ck_assert_uint_le(a + (size_t)(pc[k].s0 + pc[k].m), start[e + 1]);
				run += (size_t)pc[k].m;
			}
			ck_assert_uint_eq(run, A);
			/* assemble: each touched row adds its slots in order */
			for (r = 0; r < R; r++) {
				const int32_t row = li[2 * A + r];

				for (int32_t jj = li[3 * A + r]; jj < li[3 * A + r + 1]; jj++) {
					const size_t sl = (size_t)li[4 * A + 1 + jj];

					for (k = 0; k < np; k++)
						if (sl >= (size_t)pc[k].s0 &&
						    sl < (size_t)(pc[k].s0 + pc[k].m))
							break;
					ck_assert_uint_lt(k, np);
					ck_assert_int_gt(pc[k].expert, last_e[row]);
					last_e[row] = pc[k].expert;
					for (c = 0; c < D; c++)
						acc[row][c] += lw[sl] * y[a + sl][c];
				}
			}
		}
		for (t = 0; t < NK; t++)
			ck_assert_int_eq(seen[t], 1);
		for (i = 0; i < N * D; i++)
			ck_assert_msg(fabs(out[i] - acc[i / D][i % D]) < 1e-5,
				      "chunks of %zu: %g vs %g at %zu", ac, out[i],
				      acc[i / D][i % D], i);
	}
	moe_experts_free(E, eg, eu, ed);
	gpu_buf_free(bi);
	gpu_buf_free(bw);
	gpu_buf_free(bx);
	gpu_buf_free(bo);
	gpu_buf_free(bs);
	gpu_close(g);
}
END_TEST

/* gpu_moe_scratch_elems never shrinks as n grows (a context sizes its
 * MoE scratch once for its largest batch and runs smaller ones in it),
 * across CUDA's device-path limit of 128 assignments; and it covers both
 * layouts (gpu/gpu.c). */
START_TEST(test_moe_scratch_monotone)
{
	static const size_t shp[][3] = { { 2048, 768, 8 }, { 4096, 14336, 2 },
					 { 64, 96, 2 }, { 128, 64, 4 } };
	size_t s, n;

	for (s = 0; s < sizeof shp / sizeof shp[0]; s++) {
		const size_t dim = shp[s][0], ff = shp[s][1], k = shp[s][2];
		size_t prev = 0;

		for (n = 1; n <= 300; n++) {
			const size_t e = gpu_moe_scratch_elems(n, dim, ff, k);
			const size_t a = n * k < 128 ? n * k : 128;

			ck_assert_msg(e >= prev, "dim %zu: %zu rows need %zu < %zu for %zu",
				      dim, n, e, prev, n - 1);
			ck_assert_uint_ge(e, n * (2 * dim + 2 * ff + 2 * k));
			ck_assert_uint_ge(e, a * (2 * dim + ff + 5) + 2);
			prev = e;
		}
	}
}
END_TEST

START_TEST(test_moe)
{
	enum { N = 6, E = 5, K = 2, D = 12, F = 9 };
	struct gpu *g = open_cpu(3);
	float lg[N * E], wts[N * K], x[N * D], out[N * D];
	float wg[E][F * D], wu[E][F * D], wd[E][D * F];
	int32_t ids[N * K];
	struct gpu_buf *bl, *bi, *bw, *bx, *bo, *bs;
	struct gpu_buf *eg[E], *eu[E], *ed[E];
	struct gpu_moe_experts ex;
	size_t i, j, e, c;
	int renorm;

	rng_state = 7;
	for (i = 0; i < N * E; i++)
		lg[i] = frand() * 3.0f;
	lg[0] = lg[1] = 2.5f; /* a tie: the lower index comes first */
	for (i = 0; i < N * D; i++)
		x[i] = frand();
	moe_experts_new(g, E, F, D, 1.0f, wg[0], wu[0], wd[0], eg, eu, ed, &ex);
	bl = buf_f32(g, lg, N * E);
	bi = buf_i32(g, NULL, N * K);
	bw = buf_f32(g, NULL, N * K);
	for (renorm = 0; renorm < 2; renorm++) {
		ck_assert_int_eq(gpu_moe_route(g, bl, bi, bw, N, E, K, renorm, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(bi, 0, ids, N * K, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(bw, 0, wts, N * K, NULL), 0);
		for (i = 0; i < N; i++) {
			double sum = 0, ks = 0, p[E];
			int order[E];

			for (e = 0; e < E; e++)
				sum += exp(lg[i * E + e]);
			for (e = 0; e < E; e++) {
				p[e] = exp(lg[i * E + e]) / sum;
				order[e] = (int)e;
			}
			/* stable selection sort, descending */
			for (e = 0; e < E; e++)
				for (c = e + 1; c < E; c++)
					if (p[order[c]] > p[order[e]]) {
						int tmp = order[e];

						order[e] = order[c];
						order[c] = tmp;
					}
			for (j = 0; j < K; j++)
				ks += p[order[j]];
			for (j = 0; j < K; j++) {
				ck_assert_int_eq(ids[i * K + j], order[j]);
				ck_assert(fabs(wts[i * K + j] -
					       p[order[j]] / (renorm ? ks : 1.0)) < 1e-6);
			}
		}
	}
	ck_assert_int_eq(ids[0], 0);
	ck_assert_int_eq(ids[1], 1);

	bx = buf_f32(g, x, N * D);
	bo = buf_f32(g, NULL, N * D);
	bs = buf_f32(g, NULL, gpu_moe_scratch_elems(N, D, F, K));
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, K, bs, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, N * D, NULL), 0);
	for (i = 0; i < N; i++) {
		double ref[D] = { 0 };

		for (j = 0; j < K; j++) {
			double y[D];

			e = (size_t)ids[i * K + j];
			expert_ref(wg[e], wu[e], wd[e], x + i * D, F, D, y);
			for (c = 0; c < D; c++)
				ref[c] += wts[i * K + j] * y[c];
		}
		for (c = 0; c < D; c++)
			ck_assert(fabs(out[i * D + c] - ref[c]) < 1e-5);
	}
	/* a bad expert id is refused */
	ids[3] = E;
	ck_assert_int_eq(gpu_buf_write(bi, 0, ids, N * K, NULL), 0);
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, K, bs, NULL),
			 GPU_E_INVALID);
	moe_experts_free(E, eg, eu, ed);
	gpu_buf_free(bl);
	gpu_buf_free(bi);
	gpu_buf_free(bw);
	gpu_buf_free(bx);
	gpu_buf_free(bo);
	gpu_buf_free(bs);
	gpu_close(g);
}
END_TEST

/* ---- fused ops: each equals the composition of the ops it replaces ------ */

/* A float buffer of dtype t holding v (rounded to t), n elements. */
static struct gpu_buf *buf_typed(struct gpu *g, enum gpu_dtype t, const float *v,
				 size_t n)
{
	struct gpu_buf *b = NULL;
	uint16_t *h;
	size_t i;

	if (t == GPU_DTYPE_F32)
		return buf_f32(g, v, n);
	h = malloc(n * sizeof *h + 1);
	for (i = 0; i < n; i++)
		h[i] = t == GPU_DTYPE_BF16 ? test_to_bf16(v[i]) : test_to_f16(v[i]);
	ck_assert_int_eq(gpu_buf_new(g, t, n, &b, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(b, 0, h, n, NULL), 0);
	free(h);
	return b;
}

/* Read n elements of b (any dtype) as raw bytes into a new allocation. */
static void *read_raw(const struct gpu_buf *b, size_t n)
{
	void *h = malloc(n * gpu_dtype_size(gpu_buf_dtype(b)) + 1);

	ck_assert_int_eq(gpu_buf_read(b, 0, h, n, NULL), 0);
	return h;
}

static void expect_same(const struct gpu_buf *a, const struct gpu_buf *b,
			size_t n, const char *what)
{
	void *ha = read_raw(a, n), *hb = read_raw(b, n);

	ck_assert_msg(!memcmp(ha, hb, n * gpu_dtype_size(gpu_buf_dtype(a))),
		      "%s differs from the composition", what);
	free(ha);
	free(hb);
}

START_TEST(test_add_rmsnorm)
{
	static const size_t dims[] = { 1, 67, 4096 };
	static const size_t ns[] = { 1, 5, 40 };
	static const enum gpu_dtype wts[] = { GPU_DTYPE_F32, GPU_DTYPE_F16,
					      GPU_DTYPE_BF16 };
	struct gpu *g = open_cpu(3);
	size_t a, b, t, i;

	rng_state = 11;
	for (a = 0; a < 3; a++)
		for (b = 0; b < 3; b++)
			for (t = 0; t < 3; t++) {
				const size_t n = ns[b], dim = dims[a], ne = n * dim;
				float *x = malloc(ne * sizeof *x), *o = malloc(ne * sizeof *o);
				float *w = malloc(dim * sizeof *w);
				struct gpu_buf *x1, *x2, *ob, *xn1, *xn2, *bw;

				for (i = 0; i < ne; i++) {
					x[i] = frand() * 3.0f;
					o[i] = frand();
				}
				for (i = 0; i < dim; i++)
					w[i] = frand();
				x1 = buf_f32(g, x, ne);
				x2 = buf_f32(g, x, ne);
				ob = buf_f32(g, o, ne);
				xn1 = buf_f32(g, NULL, ne);
				xn2 = buf_f32(g, NULL, ne);
				bw = buf_typed(g, wts[t], w, dim);
				ck_assert_int_eq(gpu_add_rmsnorm(g, x1, xn1, ob, bw, n, dim,
								 1e-5f, NULL), 0);
				ck_assert_int_eq(gpu_add(g, x2, x2, ob, ne, NULL), 0);
				ck_assert_int_eq(gpu_rmsnorm(g, xn2, x2, bw, n, dim, 1e-5f,
							     NULL), 0);
				expect_same(x1, x2, ne, "add_rmsnorm x");
				expect_same(xn1, xn2, ne, "add_rmsnorm xn");
				if (dim == 67 && n == 5) {
					struct diag d;

					/* x, xn, o distinct; shapes checked */
					ck_assert_int_eq(gpu_add_rmsnorm(g, x1, x1, ob, bw, n,
									 dim, 1e-5f, &d),
							 GPU_E_INVALID);
					ck_assert_int_eq(gpu_add_rmsnorm(g, x1, xn1, x1, bw, n,
									 dim, 1e-5f, &d),
							 GPU_E_INVALID);
					ck_assert_int_eq(gpu_add_rmsnorm(g, x1, xn1, ob, bw, n,
									 dim + 1, 1e-5f, &d),
							 GPU_E_INVALID);
					ck_assert_int_eq(gpu_add_rmsnorm(g, x1, xn1, ob, bw, n,
									 0, 1e-5f, &d),
							 GPU_E_INVALID);
				}
				gpu_buf_free(x1);
				gpu_buf_free(x2);
				gpu_buf_free(ob);
				gpu_buf_free(xn1);
				gpu_buf_free(xn2);
				gpu_buf_free(bw);
				free(x);
				free(o);
				free(w);
			}
	gpu_close(g);
}
END_TEST

/* v rounded to dtype t (what buf_typed stores), back in f32 */
static float round_to(enum gpu_dtype t, float v)
{
	if (t == GPU_DTYPE_BF16)
		return test_from_bf16(test_to_bf16(v));
	if (t == GPU_DTYPE_F16)
		return test_from_f16(test_to_f16(v));
	return v;
}

/* gpu_swiglu_ffn against the formula in double precision (weights as
 * rounded to their dtype), n on both sides of the one-row and x-block
 * paths, and its argument checks. */
START_TEST(test_swiglu_ffn)
{
	static const enum gpu_dtype wts[] = { GPU_DTYPE_F32, GPU_DTYPE_F16,
					      GPU_DTYPE_BF16 };
	static const size_t ns[] = { 1, 5, 70 };
	enum { K = 67, F = 45 };
	struct gpu *g = open_cpu(3);
	size_t t, c, i, r, j;

	rng_state = 31;
	for (t = 0; t < 3; t++)
		for (c = 0; c < 3; c++) {
			const size_t n = ns[c];
			float *x = malloc(n * K * sizeof *x), *o = malloc(n * K * sizeof *o);
			float wg[F * K], wu[F * K], wd[K * F];
			double h[F];
			struct gpu_buf *bx, *bg, *bu, *bd, *bo, *sg, *su, *bad;
			struct diag d;

			for (i = 0; i < n * K; i++)
				x[i] = frand();
			for (i = 0; i < F * K; i++) {
				wg[i] = round_to(wts[t], frand() * 0.5f);
				wu[i] = round_to(wts[t], frand() * 0.5f);
				wd[i] = round_to(wts[t], frand() * 0.5f);
			}
			bx = buf_f32(g, x, n * K);
			bg = buf_typed(g, wts[t], wg, F * K);
			bu = buf_typed(g, wts[t], wu, F * K);
			bd = buf_typed(g, wts[t], wd, K * F);
			bo = buf_f32(g, NULL, n * K);
			sg = buf_f32(g, NULL, n * F);
			su = buf_f32(g, NULL, n * F);
			ck_assert_int_eq(gpu_swiglu_ffn(g, bo, sg, su, bx, bg, bu, bd, n,
							K, F, &d), 0);
			ck_assert_int_eq(gpu_buf_read(bo, 0, o, n * K, NULL), 0);
			for (i = 0; i < n; i++) {
				for (r = 0; r < F; r++) {
					double a = 0, b = 0;

					for (j = 0; j < K; j++) {
						a += (double)x[i * K + j] * wg[r * K + j];
						b += (double)x[i * K + j] * wu[r * K + j];
					}
					h[r] = a / (1.0 + exp(-a)) * b;
				}
				for (j = 0; j < K; j++) {
					double ref = 0, mag = 1;

					for (r = 0; r < F; r++) {
						ref += h[r] * wd[j * F + r];
						mag += fabs(h[r] * wd[j * F + r]);
					}
					ck_assert_msg(fabs(o[i * K + j] - ref) <= 1e-5 * mag,
						      "swiglu_ffn %s n=%zu: out[%zu,%zu]=%g ref %g",
						      gpu_dtype_name(wts[t]), n, i, j,
						      (double)o[i * K + j], ref);
				}
			}
			/* refused: aliasing, n_ff 0, W_down too small, mixed
			 * dtypes; out untouched by a refused call */
			ck_assert_int_eq(gpu_swiglu_ffn(g, bo, sg, sg, bx, bg, bu, bd, n,
							K, F, &d), GPU_E_INVALID);
			ck_assert_int_eq(gpu_swiglu_ffn(g, bx, sg, su, bx, bg, bu, bd, n,
							K, F, &d), GPU_E_INVALID);
			ck_assert_int_eq(gpu_swiglu_ffn(g, bo, sg, su, bx, bg, bu, bd, n,
							K, 0, &d), GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "n_ff"));
			bad = buf_typed(g, wts[t], wd, K * F - 1);
			ck_assert_int_eq(gpu_swiglu_ffn(g, bo, sg, su, bx, bg, bu, bad, n,
							K, F, &d), GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "W_down"));
			gpu_buf_free(bad);
			bad = buf_typed(g, wts[(t + 1) % 3], wd, K * F);
			ck_assert_int_eq(gpu_swiglu_ffn(g, bo, sg, su, bx, bg, bu, bad, n,
							K, F, &d), GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "W_down"));
			gpu_buf_free(bad);
			{
				float *o2 = malloc(n * K * sizeof *o2);

				ck_assert_int_eq(gpu_buf_read(bo, 0, o2, n * K, NULL), 0);
				ck_assert(!memcmp(o, o2, n * K * sizeof *o));
				free(o2);
			}
			gpu_buf_free(bx);
			gpu_buf_free(bg);
			gpu_buf_free(bu);
			gpu_buf_free(bd);
			gpu_buf_free(bo);
			gpu_buf_free(sg);
			gpu_buf_free(su);
			free(x);
			free(o);
		}
	gpu_close(g);
}
END_TEST

START_TEST(test_matmul_multi)
{
	static const enum gpu_dtype wts[] = { GPU_DTYPE_F32, GPU_DTYPE_F16,
					      GPU_DTYPE_BF16 };
	static const size_t rows[4] = { 37, 5, 0, 64 };
	static const size_t ns[] = { 1, 3, 70 };
	struct gpu *g = open_cpu(3);
	const size_t k = 67;
	size_t t, c, j, i;

	rng_state = 12;
	for (t = 0; t < 3; t++)
		for (c = 0; c < 3; c++) {
			const size_t n = ns[c];
			float *x = malloc(n * k * sizeof *x), *wf = malloc(64 * k * sizeof *wf);
			float bias[64];
			struct gpu_buf *bx, *bw[4], *bb[4], *o1[4], *o2[4], *wother;
			struct gpu_matmul_part pt[4];
			struct diag d;

			for (i = 0; i < n * k; i++)
				x[i] = frand();
			bx = buf_f32(g, x, n * k);
			for (j = 0; j < 4; j++) {
				for (i = 0; i < rows[j] * k; i++)
					wf[i] = frand();
				for (i = 0; i < rows[j]; i++)
					bias[i] = frand();
				bw[j] = buf_typed(g, wts[t], wf, rows[j] * k);
				/* biases of mixed types, one part without */
				bb[j] = j == 1 ? NULL : buf_typed(g, wts[(t + j) % 3], bias,
								  rows[j]);
				o1[j] = buf_f32(g, NULL, n * rows[j]);
				o2[j] = buf_f32(g, NULL, n * rows[j]);
				pt[j] = (struct gpu_matmul_part){ o1[j], bw[j], bb[j], rows[j] };
				ck_assert_int_eq(gpu_matmul(g, o2[j], bx, bw[j], bb[j], n, k,
							    rows[j], NULL), 0);
			}
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 4, NULL), 0);
			for (j = 0; j < 4; j++)
				expect_same(o1[j], o2[j], n * rows[j], "matmul_multi");
			/* validation */
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 0, &d),
					 GPU_E_INVALID);
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 5, &d),
					 GPU_E_INVALID);
			pt[3].out = o1[0];
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 4, &d),
					 GPU_E_INVALID);
			pt[3].out = bx;
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 4, &d),
					 GPU_E_INVALID);
			pt[3].out = o1[3];
			pt[3].rows = 65; /* W has 64 rows */
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 4, &d),
					 GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "part 3"));
			pt[3].rows = 64;
			/* a weight of another dtype */
			wother = buf_typed(g, wts[(t + 1) % 3], wf, 5 * k);
			pt[1].w = wother;
			ck_assert_int_eq(gpu_matmul_multi(g, bx, n, k, pt, 4, &d),
					 GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "W 1"));
			gpu_buf_free(wother);
			for (j = 0; j < 4; j++) {
				gpu_buf_free(bw[j]);
				gpu_buf_free(bb[j]);
				gpu_buf_free(o1[j]);
				gpu_buf_free(o2[j]);
			}
			gpu_buf_free(bx);
			free(x);
			free(wf);
		}
	gpu_close(g);
}
END_TEST

/* gpu_rope_kv_store against gpu_rope (q), gpu_rope (k), gpu_kv_store on
 * copies: q, k and both pools must hold the same bits; a bad page entry
 * fails before anything changed. */
static void check_rope_kv(enum gpu_dtype kvt, int mrope, size_t n_rot, float af)
{
	enum { PS = 4, NP = 9, HKV = 2, H = 6, HD = 16, MAXP = 4, N = 7 };
	struct gpu *g = open_cpu(3);
	/* seq 0: pages 5 3 8 -, seq 1: 0 6 - - */
	int32_t pt[2 * MAXP] = { 5, 3, 8, -1, 0, 6, -1, -1 };
	int32_t rseq[N] = { 0, 0, 1, 0, 1, 0, 1 }, rpos[N] = { 0, 4, 2, 9, 7, 10, 5 };
	int32_t pos[3 * N];
	const int sec[3] = { 1, 2, (int)n_rot / 2 - 3 };
	float q[N * H * HD], k[N * HKV * HD], v[N * HKV * HD], inv[HD / 2];
	const size_t poolel = NP * PS * HKV * HD;
	struct gpu_buf *q1, *q2, *k1, *k2, *bv, *bp, *bi, *brs, *brp, *bpt;
	struct gpu_buf *kp1, *vp1, *kp2, *vp2;
	struct gpu_kv_pool p1, p2;
	struct gpu_kv_batch b;
	struct gpu_rope rp = { n_rot, af, mrope ? sec : NULL, NULL, NULL, 0.0f };
	struct diag d;
	size_t i;

	for (i = 0; i < N * H * HD; i++)
		q[i] = frand();
	for (i = 0; i < N * HKV * HD; i++) {
		k[i] = frand();
		v[i] = frand();
	}
	for (i = 0; i < HD / 2; i++)
		inv[i] = (float)pow(10000.0, -2.0 * (double)i / HD);
	for (i = 0; i < 3 * N; i++) /* rope positions differ from cache ones */
		pos[i] = (int32_t)(frand() * 500.0f + 500.0f);
	q1 = buf_f32(g, q, N * H * HD);
	q2 = buf_f32(g, q, N * H * HD);
	k1 = buf_f32(g, k, N * HKV * HD);
	k2 = buf_f32(g, k, N * HKV * HD);
	bv = buf_f32(g, v, N * HKV * HD);
	bp = buf_i32(g, pos, 3 * N);
	bi = buf_f32(g, inv, HD / 2);
	brs = buf_i32(g, rseq, N);
	brp = buf_i32(g, rpos, N);
	bpt = buf_i32(g, pt, 2 * MAXP);
	ck_assert_int_eq(gpu_buf_new(g, kvt, poolel, &kp1, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, kvt, poolel, &vp1, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, kvt, poolel, &kp2, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, kvt, poolel, &vp2, NULL), 0);
	gpu_buf_zero(kp1, NULL);
	gpu_buf_zero(vp1, NULL);
	gpu_buf_zero(kp2, NULL);
	gpu_buf_zero(vp2, NULL);
	p1 = (struct gpu_kv_pool){ kp1, vp1, NP, PS, HKV, HD, 0, 0, NULL, NULL };
	p2 = (struct gpu_kv_pool){ kp2, vp2, NP, PS, HKV, HD, 0, 0, NULL, NULL };
	memset(&b, 0, sizeof b);
	b.n_rows = N;
	b.row_seq = brs;
	b.row_pos = brp;
	b.page_table = bpt;
	b.n_seq = 2;
	b.max_pages = MAXP;
	ck_assert_int_eq(gpu_rope_kv_store(g, q1, k1, bv, H, bp, bi, &rp, &p1, &b,
					   &d), 0);
	ck_assert_int_eq(gpu_rope(g, q2, N, H, HD, bp, bi, &rp, NULL), 0);
	ck_assert_int_eq(gpu_rope(g, k2, N, HKV, HD, bp, bi, &rp, NULL), 0);
	ck_assert_int_eq(gpu_kv_store(g, &p2, &b, k2, bv, NULL), 0);
	expect_same(q1, q2, N * H * HD, "rope_kv_store q");
	expect_same(k1, k2, N * HKV * HD, "rope_kv_store k");
	expect_same(kp1, kp2, poolel, "rope_kv_store K pool");
	expect_same(vp1, vp2, poolel, "rope_kv_store V pool");
	/* the rotation happened (position > 0 somewhere) */
	{
		float *a = read_raw(q1, N * H * HD);

		ck_assert(memcmp(a, q, sizeof q) != 0);
		free(a);
	}
	/* a bad page entry (row 3: position 9 -> page 2 of seq 0) fails
	 * before anything changed; so do a bad sequence and a position
	 * outside the table */
	{
		int32_t bad_pt = pt[2], bad_seq = rseq[1], bad_pos = rpos[6];
		int round;

		for (round = 0; round < 4; round++) {
			if (round == 0)
				pt[2] = NP;
			else if (round == 1)
				pt[2] = -1;
			else if (round == 2)
				rseq[1] = 2;
			else
				rpos[6] = MAXP * PS;
			ck_assert_int_eq(gpu_buf_write(bpt, 0, pt, 2 * MAXP, NULL), 0);
			ck_assert_int_eq(gpu_buf_write(brs, 0, rseq, N, NULL), 0);
			ck_assert_int_eq(gpu_buf_write(brp, 0, rpos, N, NULL), 0);
			ck_assert_int_eq(gpu_rope_kv_store(g, q1, k1, bv, H, bp, bi, &rp,
							   &p1, &b, &d),
					 GPU_E_INVALID);
			ck_assert_ptr_nonnull(strstr(d.msg, "gpu_rope_kv_store"));
			expect_same(q1, q2, N * H * HD, "q after a refused store");
			expect_same(k1, k2, N * HKV * HD, "k after a refused store");
			expect_same(kp1, kp2, poolel, "K pool after a refused store");
			pt[2] = bad_pt;
			rseq[1] = bad_seq;
			rpos[6] = bad_pos;
		}
	}
	/* validation: distinct buffers, rope parameters */
	ck_assert_int_eq(gpu_rope_kv_store(g, q1, q1, bv, H, bp, bi, &rp, &p1, &b, &d),
			 GPU_E_INVALID);
	ck_assert_int_eq(gpu_rope_kv_store(g, q1, k1, k1, H, bp, bi, &rp, &p1, &b, &d),
			 GPU_E_INVALID);
	rp.n_rot = HD + 2;
	ck_assert_int_eq(gpu_rope_kv_store(g, q1, k1, bv, H, bp, bi, &rp, &p1, &b, &d),
			 GPU_E_INVALID);
	gpu_buf_free(q1);
	gpu_buf_free(q2);
	gpu_buf_free(k1);
	gpu_buf_free(k2);
	gpu_buf_free(bv);
	gpu_buf_free(bp);
	gpu_buf_free(bi);
	gpu_buf_free(brs);
	gpu_buf_free(brp);
	gpu_buf_free(bpt);
	gpu_buf_free(kp1);
	gpu_buf_free(vp1);
	gpu_buf_free(kp2);
	gpu_buf_free(vp2);
	gpu_close(g);
}

START_TEST(test_rope_kv_store)
{
	rng_state = 13;
	check_rope_kv(GPU_DTYPE_F32, 0, 16, 1.0f);
	check_rope_kv(GPU_DTYPE_F16, 0, 16, 1.0f);
	check_rope_kv(GPU_DTYPE_F32, 0, 10, 0.8f); /* partial rotary, factor */
	check_rope_kv(GPU_DTYPE_F16, 1, 16, 1.0f); /* MRoPE 1+2+5 */
	check_rope_kv(GPU_DTYPE_F32, 1, 12, 1.0f); /* MRoPE 1+2+3, partial */
}
END_TEST

/* ---- validation ------------------------------------------------------------ */

START_TEST(test_validation)
{
	struct gpu *g = open_cpu(1);
	struct gpu_buf *x = buf_f32(g, NULL, 10), *w = buf_f32(g, NULL, 12);
	struct gpu_buf *o = buf_f32(g, NULL, 6), *ids = buf_i32(g, NULL, 2);
	struct diag d;
	float tmp[3];

	diag_clear(&d);
	/* x needs 2 * 5 = 10, W 3 * 5 = 15 > 12 */
	ck_assert_int_eq(gpu_matmul(g, o, x, w, NULL, 2, 5, 3, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "W"));
	ck_assert_int_eq(gpu_matmul(g, o, x, w, NULL, 2, 3, 4, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "out"));
	ck_assert_int_eq(gpu_matmul(g, o, ids, w, NULL, 2, 4, 3, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "i32"));
	ck_assert_int_eq(gpu_matmul(g, o, x, w, NULL, 2, 3, 4, NULL), GPU_E_INVALID);
	ck_assert_int_eq(gpu_matmul(g, o, x, w, NULL, 2, 5, 2, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(o, 5, tmp, 3, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_buf_write(o, 0, tmp, 3, &d), 0);
	ck_assert_int_eq(gpu_copy(g, x, 0, x, 2, 3, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_copy(g, x, 0, x, 5, 3, &d), 0);
	ck_assert_str_eq(gpu_kind_name(gpu_get_kind(g)), "cpu");
	ck_assert(gpu_kind_compiled(GPU_KIND_CPU));
	gpu_buf_free(x);
	gpu_buf_free(w);
	gpu_buf_free(o);
	gpu_buf_free(ids);
	gpu_buf_free(NULL);
	gpu_close(g);
	gpu_close(NULL);
}
END_TEST

Suite *cpu_ops_suite(void)
{
	Suite *s = suite_create("cpu_ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_matmul);
	tcase_add_test(tc, test_rmsnorm);
	tcase_add_test(tc, test_elementwise);
	tcase_add_test(tc, test_get_rows);
	tcase_add_test(tc, test_rope);
	tcase_add_test(tc, test_attention);
	tcase_add_test(tc, test_moe);
	tcase_add_test(tc, test_moe_scratch_monotone);
	tcase_add_test(tc, test_moe_plan);
	tcase_add_test(tc, test_add_rmsnorm);
	tcase_add_test(tc, test_matmul_multi);
	tcase_add_test(tc, test_swiglu_ffn);
	tcase_add_test(tc, test_rope_kv_store);
	tcase_add_test(tc, test_validation);
	suite_add_tcase(s, tc);
	return s;
}
