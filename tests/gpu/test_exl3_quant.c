/* tests/gpu/test_exl3_quant.c — suite exl3_quant: the EXL3 quantizer's
 * numeric core (gpu/exl3_quant.c) against references nobody here wrote:
 *
 *   - the trellis search's output is a valid tail-biting EXL3 bitstream:
 *     packed, every element's state read back by the format's scalar
 *     formula (gpu_exl3_state, held bit-exact to ExLlamaV3's kernels by
 *     suite exl3) equals the state the search chose, for every K and
 *     codebook, and the values are the codebook's;
 *   - its mean squared error on i.i.d. unit Gaussian data lies between
 *     Shannon's distortion-rate bound 2^(-2R) (no code can do better) and
 *     the optimal scalar (Lloyd-Max) quantizer of the same rate (Max 1960:
 *     0.3634, 0.1175, 0.03454, 0.009497 for 1-4 bits), which a trellis
 *     code must beat; at 2 bits it is within QTIP's published figure for
 *     its 16-bit trellis codes (0.069, Tseng et al. 2024, Table 1) + 5%;
 *   - a quantized linear, loaded by the CPU backend's EXL3 op, computes
 *     x.W with the error the search's MSE predicts, and with a Hessian
 *     from correlated inputs (LDLQ) its output error on those inputs is
 *     clearly smaller than without one;
 *   - results do not depend on the thread count; bad arguments are
 *     refused;
 *   - on a CUDA device (skipped without one), the device's search gives
 *     the host's states bit for bit, for every K it takes and every
 *     codebook, and a whole linear quantized with it the same bytes.
 * The Gaussian samples come from the test's own generator (Box-Muller on
 * an LCG), independent of the code under test.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/exl3_ref.h"
#include "gpu/gpu.h"
#include "gpupair.h"
#include "testutil.h"

static uint64_t g_lcg = 12345;

static double gauss(void)
{
	double u1, u2;

	g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
	u1 = ((double)(g_lcg >> 11) + 0.5) / 9007199254740992.0;
	g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
	u2 = ((double)(g_lcg >> 11) + 0.5) / 9007199254740992.0;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Tiles of unit Gaussians times SCALE: encode, check the stream, return
 * the MSE of value / scale against the data. */
static double encode_check(int bits, int cb, size_t nt, double scale)
{
	float *x = malloc(nt * 256 * sizeof *x), *v = malloc(nt * 256 * sizeof *v);
	uint16_t *st = malloc(nt * 256 * sizeof *st), t16[128];
	const float *lut = gpu_exl3_lut(cb);
	double err = 0.0;
	size_t t, e;
	struct diag d;

	for (e = 0; e < nt * 256; e++)
		x[e] = (float)(gauss() * scale);
	diag_clear(&d);
	ck_assert_msg(gpu_exl3_encode_tiles(NULL, x, nt, bits, cb, 2, st, v, &d) == 0,
		      "%s", d.msg);
	for (t = 0; t < nt; t++) {
		ck_assert_int_eq(gpu_exl3_pack_tile(st + 256 * t, bits, t16), 0);
		for (e = 0; e < 256; e++) {
			const uint32_t s = gpu_exl3_state(t16, bits, (int)e);

			ck_assert_msg(s == st[256 * t + e],
				      "K=%d cb=%d tile %zu element %zu: stream holds state "
				      "%u, search chose %u", bits, cb, t, e, s,
				      st[256 * t + e]);
			ck_assert(v[256 * t + e] == lut[s]);
			err += ((double)v[256 * t + e] - x[256 * t + e]) *
			       ((double)v[256 * t + e] - x[256 * t + e]);
		}
	}
	free(x);
	free(v);
	free(st);
	return err / (double)(nt * 256) / (scale * scale);
}

START_TEST(test_encode_stream)
{
	int bits, cb;

	/* every K with MUL1, the other codebooks at 3 and 5 */
	for (bits = 1; bits <= 8; bits++)
		(void)encode_check(bits, GPU_EXL3_CB_MUL1, 2, 1.0);
	for (cb = 0; cb < 2; cb++) {
		(void)encode_check(3, cb, 2, 1.2);
		(void)encode_check(5, cb, 2, 1.2);
	}
}
END_TEST

START_TEST(test_encode_mse)
{
	static const double lloyd_max[4] = { 0.3634, 0.1175, 0.03454, 0.009497 };
	int bits;

	for (bits = 1; bits <= 4; bits++) {
		const double shannon = pow(2.0, -2.0 * bits);
		/* MUL1's values have RMS ~1; 3INST's ~1.24 (exl3-format.md §3.4) */
		const double m1 = encode_check(bits, GPU_EXL3_CB_MUL1, 24, 1.0);
		const double m0 = encode_check(bits, GPU_EXL3_CB_3INST, 24, 1.2);

		ck_assert_msg(m1 > shannon && m1 < lloyd_max[bits - 1],
			      "MUL1 K=%d: MSE %.5f outside (%.5f, %.5f)", bits, m1, shannon,
			      lloyd_max[bits - 1]);
		ck_assert_msg(m0 > shannon && m0 < lloyd_max[bits - 1],
			      "3INST K=%d: MSE %.5f outside (%.5f, %.5f)", bits, m0,
			      shannon, lloyd_max[bits - 1]);
		if (bits == 2)
			ck_assert_msg(m1 < 0.069 * 1.05 && m0 < 0.069 * 1.05,
				      "2 bits: MSE %.5f / %.5f against QTIP's 0.069", m1, m0);
	}
}
END_TEST

/* A 256 x 384 linear with uneven column and row scales, inputs x = z A
 * (correlated, a few strong directions) and H = mean x'x. */
#define QK 256
#define QN 384
#define QT 1024

struct qcase {
	float *w, *x, *h;
};

static void qcase_make(struct qcase *q)
{
	float *a = malloc(QK * QK * sizeof *a), z[QK];
	size_t i, j, t;

	q->w = malloc(QK * QN * sizeof *q->w);
	q->x = malloc(QT * QK * sizeof *q->x);
	q->h = calloc(QK * QK, sizeof *q->h);
	g_lcg = 777;
	for (i = 0; i < QK; i++)
		for (j = 0; j < QN; j++)
			q->w[i * QN + j] = (float)(gauss() * 0.02 * (j % 7 ? 1.0 : 4.0) *
						   (i % 11 ? 1.0 : 2.0));
	for (i = 0; i < QK * QK; i++)
		a[i] = (float)(gauss() / 16.0 * (i % QK < 8 ? 5.0 : 1.0));
	for (t = 0; t < QT; t++) {
		for (i = 0; i < QK; i++)
			z[i] = (float)gauss();
		for (j = 0; j < QK; j++) {
			double s = 0.0;

			for (i = 0; i < QK; i++)
				s += (double)z[i] * a[i * QK + j];
			q->x[t * QK + j] = (float)s;
		}
	}
	for (t = 0; t < QT; t++)
		for (i = 0; i < QK; i++)
			for (j = 0; j < QK; j++)
				q->h[i * QK + j] += q->x[t * QK + i] * q->x[t * QK + j] / QT;
	free(a);
}

static void qcase_free(struct qcase *q)
{
	free(q->w);
	free(q->x);
	free(q->h);
}

/* Relative RMS error of x.W_q (the CPU backend's EXL3 linear on the
 * quantized tensors) against x.W in double, over the first 256 rows. */
static double output_error(const struct qcase *q, const uint16_t *tr,
			   const uint16_t *suh, const uint16_t *svh, int bits)
{
	const size_t R = 256;
	struct gpu_exl3_desc desc = { QK, QN, bits, GPU_EXL3_CB_MUL1, tr, suh, svh,
				      NULL };
	struct gpu_params op = gpu_default_params();
	struct gpu *g = NULL;
	struct gpu_exl3_weight *w = NULL;
	struct gpu_buf *xb = NULL, *ob = NULL;
	float *o = malloc(R * QN * sizeof *o);
	double e2 = 0.0, y2 = 0.0;
	size_t t, a, b;
	struct diag d;

	diag_clear(&d);
	op.n_threads = 2;
	ck_assert_msg(gpu_open(GPU_KIND_CPU, &op, &g, &d) == 0, "%s", d.msg);
	ck_assert_msg(gpu_exl3_weight_new(g, &desc, &w, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, R * QK, &xb, &d), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, R * QN, &ob, &d), 0);
	ck_assert_int_eq(gpu_buf_write(xb, 0, q->x, R * QK, &d), 0);
	ck_assert_msg(gpu_exl3_matmul(g, ob, xb, w, R, QK, QN, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(gpu_buf_read(ob, 0, o, R * QN, &d), 0);
	for (t = 0; t < R; t++)
		for (b = 0; b < QN; b++) {
			double y = 0.0;

			for (a = 0; a < QK; a++)
				y += (double)q->x[t * QK + a] * q->w[a * QN + b];
			e2 += (y - o[t * QN + b]) * (y - o[t * QN + b]);
			y2 += y * y;
		}
	gpu_buf_free(xb);
	gpu_buf_free(ob);
	gpu_exl3_weight_free(w);
	gpu_close(g);
	free(o);
	return sqrt(e2 / y2);
}

START_TEST(test_quantize_linear)
{
	const int bits = _i == 0 ? 4 : 2;
	const size_t n16 = QK / 16 * QN / 16 * 16 * (size_t)bits;
	uint16_t *tr = malloc(n16 * sizeof *tr), *tr1 = malloc(n16 * sizeof *tr1);
	uint16_t suh[QK], svh[QN], suh1[QK], svh1[QN];
	struct gpu_exl3_qparams p;
	struct gpu_exl3_qstats st;
	struct qcase q;
	double e_plain, e_ldlq, mse;
	struct diag d;

	qcase_make(&q);
	diag_clear(&d);
	memset(&p, 0, sizeof p);
	p.bits = bits;
	p.cb = GPU_EXL3_CB_MUL1;
	p.seed = 5;
	p.n_threads = 2;
	/* without a Hessian: the error is the trellis's on near-Gaussian data */
	ck_assert_msg(gpu_exl3_quantize(q.w, QK, QN, NULL, &p, tr, suh, svh, &st,
					&d) == 0, "%s", d.msg);
	e_plain = output_error(&q, tr, suh, svh, bits);
	mse = bits == 4 ? 0.009497 : 0.1175; /* Lloyd-Max, the bound above */
	ck_assert_msg(st.rel_err * st.rel_err < mse,
		      "K=%d: rotated-domain error %.4f", bits, st.rel_err);
	ck_assert_msg(e_plain < 1.25 * st.rel_err && e_plain > 0.75 * st.rel_err,
		      "K=%d: output error %.4f, the quantizer's own %.4f", bits, e_plain,
		      st.rel_err);
	/* the same with one thread: identical bytes */
	p.n_threads = 1;
	ck_assert_msg(gpu_exl3_quantize(q.w, QK, QN, NULL, &p, tr1, suh1, svh1, NULL,
					&d) == 0, "%s", d.msg);
	ck_assert(memcmp(tr, tr1, n16 * sizeof *tr) == 0);
	ck_assert(memcmp(suh, suh1, sizeof suh) == 0 && memcmp(svh, svh1, sizeof svh) == 0);
	/* with H: smaller error on the inputs H came from */
	p.n_threads = 2;
	ck_assert_msg(gpu_exl3_quantize(q.w, QK, QN, q.h, &p, tr, suh, svh, &st, &d) == 0,
		      "%s", d.msg);
	e_ldlq = output_error(&q, tr, suh, svh, bits);
	ck_assert_msg(e_ldlq < 0.8 * e_plain,
		      "K=%d: LDLQ output error %.4f, plain %.4f", bits, e_ldlq, e_plain);
	free(tr);
	free(tr1);
	qcase_free(&q);
}
END_TEST

START_TEST(test_quantize_validation)
{
	float w[128 * 128], h[128 * 128];
	uint16_t tr[64 * 16 * 8], suh[128], svh[128], st[256];
	struct gpu_exl3_qparams p;
	struct diag d;
	size_t i;

	for (i = 0; i < 128 * 128; i++) {
		w[i] = (float)gauss();
		h[i] = 0.0f;
	}
	memset(&p, 0, sizeof p);
	p.bits = 4;
	p.cb = GPU_EXL3_CB_MUL1;
	diag_clear(&d);
	ck_assert_int_eq(gpu_exl3_quantize(w, 120, 128, NULL, &p, tr, suh, svh, NULL, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "multiple of 128"));
	p.bits = 9;
	ck_assert_int_eq(gpu_exl3_quantize(w, 128, 128, NULL, &p, tr, suh, svh, NULL, &d),
			 GPU_E_INVALID);
	p.bits = 4;
	p.cb = (enum gpu_exl3_cb)7;
	ck_assert_int_eq(gpu_exl3_quantize(w, 128, 128, NULL, &p, tr, suh, svh, NULL, &d),
			 GPU_E_INVALID);
	p.cb = GPU_EXL3_CB_MUL1;
	w[77] = NAN;
	ck_assert_int_eq(gpu_exl3_quantize(w, 128, 128, NULL, &p, tr, suh, svh, NULL, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "not finite"));
	w[77] = 0.5f;
	/* an all-zero H is degenerate: the fallback quantizes without it */
	ck_assert_msg(gpu_exl3_quantize(w, 128, 128, h, &p, tr, suh, svh, NULL, &d) == 0,
		      "%s", d.msg);
	ck_assert_int_eq(gpu_exl3_encode_tiles(NULL, w, 1, 0, GPU_EXL3_CB_MUL1, 1, st, NULL, &d),
			 GPU_E_INVALID);
	w[3] = INFINITY;
	ck_assert_int_eq(gpu_exl3_encode_tiles(NULL, w, 1, 4, GPU_EXL3_CB_MUL1, 1, st, NULL, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "not finite"));
	ck_assert_int_eq(gpu_exl3_pack_tile(st, 9, tr), GPU_E_INVALID);
}
END_TEST

START_TEST(test_cuda_search)
{
	struct gpu_pair gp;
	const size_t nt = 40; /* more than one tile per block on small grids */
	float *x = malloc(nt * 256 * sizeof *x);
	uint16_t *sh = malloc(nt * 256 * sizeof *sh), *sc = malloc(nt * 256 * sizeof *sc);
	struct diag d;
	size_t i;
	int bits, cb;

	if (!gpu_pair_open(&gp, 2)) {
		free(x);
		free(sh);
		free(sc);
		return;
	}
	diag_clear(&d);
	g_lcg = test_seed | 1;
	for (i = 0; i < nt * 256; i++)
		x[i] = (float)gauss();
	for (bits = 1; bits <= 8; bits++)
		for (cb = 0; cb < 3; cb++) {
			if (cb != GPU_EXL3_CB_MUL1 && bits != 3 && bits != 6)
				continue;
			ck_assert_msg(gpu_exl3_encode_tiles(NULL, x, nt, bits, cb, 2, sh, NULL,
							    &d) == 0, "%s", d.msg);
			ck_assert_msg(gpu_exl3_encode_tiles(gp.cuda, x, nt, bits, cb, 2, sc,
							    NULL, &d) == 0, "%s", d.msg);
			for (i = 0; i < nt * 256; i++)
				ck_assert_msg(sh[i] == sc[i],
					      "K=%d cb=%d tile %zu element %zu: host state %u, "
					      "CUDA %u (seed %llu)", bits, cb, i / 256, i % 256,
					      sh[i], sc[i], (unsigned long long)test_seed);
		}
	/* a whole linear with its Hessian: the same file either way */
	{
		const size_t n16 = QK / 16 * QN / 16 * 16 * 4;
		uint16_t *t0 = malloc(n16 * sizeof *t0), *t1 = malloc(n16 * sizeof *t1);
		uint16_t u0[QK], v0[QN], u1[QK], v1[QN];
		struct gpu_exl3_qparams p;
		struct qcase q;

		qcase_make(&q);
		memset(&p, 0, sizeof p);
		p.bits = 4;
		p.cb = GPU_EXL3_CB_MUL1;
		p.seed = 9;
		p.n_threads = 2;
		ck_assert_msg(gpu_exl3_quantize(q.w, QK, QN, q.h, &p, t0, u0, v0, NULL,
						&d) == 0, "%s", d.msg);
		p.g = gp.cuda;
		ck_assert_msg(gpu_exl3_quantize(q.w, QK, QN, q.h, &p, t1, u1, v1, NULL,
						&d) == 0, "%s", d.msg);
		ck_assert(memcmp(t0, t1, n16 * sizeof *t0) == 0);
		ck_assert(memcmp(u0, u1, sizeof u0) == 0 && memcmp(v0, v1, sizeof v0) == 0);
		free(t0);
		free(t1);
		qcase_free(&q);
	}
	/* TERN_GPU_BENCH=1: the search's speed, device against host threads */
	if (getenv("TERN_GPU_BENCH") && !strcmp(getenv("TERN_GPU_BENCH"), "1")) {
		const size_t nb = 8192;
		float *xb = malloc(nb * 256 * sizeof *xb);
		uint16_t *sb = malloc(nb * 256 * sizeof *sb);
		struct timespec t0, t1;
		int bb;

		for (i = 0; i < nb * 256; i++)
			xb[i] = (float)gauss();
		for (bb = 2; bb <= 6; bb += 2) {
			double tc, th;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			ck_assert(gpu_exl3_encode_tiles(gp.cuda, xb, nb, bb, GPU_EXL3_CB_MUL1, 0,
							sb, NULL, &d) == 0);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			tc = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
			clock_gettime(CLOCK_MONOTONIC, &t0);
			ck_assert(gpu_exl3_encode_tiles(NULL, xb, nb / 8, bb, GPU_EXL3_CB_MUL1, 0,
							sb, NULL, &d) == 0);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			th = ((double)(t1.tv_sec - t0.tv_sec) +
			      1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)) * 8;
			printf("BENCH exl3 search K=%d: CUDA %.0f tiles/s, host (all cores) "
			       "%.0f tiles/s\n", bb, (double)nb / tc, (double)nb / th);
		}
		free(xb);
		free(sb);
		/* whole Llama-3-8B-shaped linears (gate/up 4096 x 14336, down
		 * 14336 x 4096) with a dense Hessian (diagonal + rank 8), the
		 * search on the device, the rest on the host's threads */
		{
			const size_t shapes[2][2] = { { 4096, 14336 }, { 14336, 4096 } };
			int si;

			for (si = 0; si < 2; si++) {
				const size_t K = shapes[si][0], N = shapes[si][1], R = 8;
				float *w = malloc(K * N * sizeof *w), *h = malloc(K * K * sizeof *h);
				float *vr = malloc(K * R * sizeof *vr);
				uint16_t *tr = malloc(K / 16 * N / 16 * 16 * 4 * sizeof *tr);
				uint16_t *su = malloc(K * sizeof *su), *sv = malloc(N * sizeof *sv);
				struct gpu_exl3_qparams p;
				size_t a, b2, r;
				double t;

				for (a = 0; a < K * N; a++)
					w[a] = (float)(gauss() * 0.02);
				for (a = 0; a < K * R; a++)
					vr[a] = (float)gauss();
				for (a = 0; a < K; a++)
					for (b2 = 0; b2 < K; b2++) {
						double v = a == b2 ? 1.0 + (double)(a % 17) : 0.0;

						for (r = 0; r < R; r++)
							v += 0.1 * vr[a * R + r] * vr[b2 * R + r];
						h[a * K + b2] = (float)v;
					}
				memset(&p, 0, sizeof p);
				p.bits = 4;
				p.cb = GPU_EXL3_CB_MUL1;
				p.g = gp.cuda;
				clock_gettime(CLOCK_MONOTONIC, &t0);
				ck_assert_msg(gpu_exl3_quantize(w, K, N, h, &p, tr, su, sv, NULL,
								&d) == 0, "%s", d.msg);
				clock_gettime(CLOCK_MONOTONIC, &t1);
				t = (double)(t1.tv_sec - t0.tv_sec) +
				    1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
				printf("BENCH exl3 quantize %zu x %zu at 4 bits with H: %.1f s\n",
				       K, N, t);
				free(w);
				free(h);
				free(vr);
				free(tr);
				free(su);
				free(sv);
			}
		}
	}
	gpu_pair_close(&gp);
	free(x);
	free(sh);
	free(sc);
}
END_TEST

Suite *exl3_quant_suite(void)
{
	Suite *s = suite_create("exl3_quant");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_encode_stream);
	tcase_add_test(tc, test_encode_mse);
	tcase_add_loop_test(tc, test_quantize_linear, 0, 2);
	tcase_add_test(tc, test_quantize_validation);
	tcase_add_test(tc, test_cuda_search);
	suite_add_tcase(s, tc);
	return s;
}
