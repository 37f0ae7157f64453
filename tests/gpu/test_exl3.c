/* tests/gpu/test_exl3.c — suite exl3: the EXL3 trellis decode, Hadamard
 * un-rotation and the on-the-fly EXL3 linear of the CPU backend against
 * ExLlamaV3's own CUDA kernels' outputs (tests/data/exl3/
 * dequant_vectors.safetensors: for codebooks cb0/cb1/cb2 (3INST, MCG, MUL1)
 * and K = 1..8 a 128 x 256 weight: trellis, suh, svh, the kernels' tile
 * decode w_hat and their fp16 reconstruction w).
 *
 *   - every tile of every w_hat reproduced bit-exactly, both by the fast
 *     tile decoder the linear uses and by the scalar reference formula
 *     (gpu_exl3_state + gpu_exl3_codebook);
 *   - the codebook values of exl3-format.md §2.4;
 *   - W = diag(suh) H w_hat H diag(svh) (our Hadamard) against the kernels'
 *     w within fp16 rounding (the kernel rounds its fp16 intermediates);
 *   - gpu_exl3_matmul: identity rows give W (vs the kernels' w), random rows
 *     give x.W (vs double precision on the kernels' w_hat), bias, padding
 *     (k_in < k zero-extends, n_out < n trims), results independent of the
 *     thread count, and argument validation;
 *   - gpu_moe_ffn with EXL3 experts (padded dim / n_ff) against the
 *     formula in double on the reconstructed W and against the op on float
 *     experts holding those W; the expert-set validation.
 * gpu-layer tests cannot link the engine's safetensors reader, so the
 * fixture is read by the small reader below (u64 header length, JSON header
 * via jansson, raw little-endian data).
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/exl3_ref.h"
#include "gpu/gpu.h"
#include "stfile.h"
#include "testutil.h"

static uint16_t rd16(const void *p, size_t i)
{
	uint16_t v;

	memcpy(&v, (const char *)p + 2 * i, 2);
	return v;
}

/* float holding an exact half value -> its bits (normal/subnormal/zero) */
static uint16_t f2h_exact(float f)
{
	double a = fabs((double)f);
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	int e;

	if (a == 0)
		return sign;
	if (a < ldexp(1.0, -14))
		return (uint16_t)(sign | (uint16_t)lrint(ldexp(a, 24)));
	frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
	return (uint16_t)(sign | (uint16_t)((e - 1 + 15) << 10) |
			  (uint16_t)(lrint(ldexp(a, 11 - e)) - 1024));
}

/* One fixture case: cb C, K bits. */
struct fx {
	const void *trellis, *suh, *svh, *w_hat, *w;
	int bits, cb;
};

#define FK 128
#define FN 256

static void fx_get(const struct test_st *s, int cb, int bits, struct fx *f)
{
	char name[64];
	long long sh[3];

	f->cb = cb;
	f->bits = bits;
	snprintf(name, sizeof name, "cb%d.k%d.trellis", cb, bits);
	f->trellis = test_st_get(s, name, "I16", 3, sh, NULL);
	ck_assert(sh[0] == FK / 16 && sh[1] == FN / 16 && sh[2] == 16 * bits);
	snprintf(name, sizeof name, "cb%d.k%d.suh", cb, bits);
	f->suh = test_st_get(s, name, "F16", 1, sh, NULL);
	ck_assert(sh[0] == FK);
	snprintf(name, sizeof name, "cb%d.k%d.svh", cb, bits);
	f->svh = test_st_get(s, name, "F16", 1, sh, NULL);
	ck_assert(sh[0] == FN);
	snprintf(name, sizeof name, "cb%d.k%d.w_hat", cb, bits);
	f->w_hat = test_st_get(s, name, "F16", 2, sh, NULL);
	ck_assert(sh[0] == FK && sh[1] == FN);
	snprintf(name, sizeof name, "cb%d.k%d.w", cb, bits);
	f->w = test_st_get(s, name, "F16", 2, sh, NULL);
	ck_assert(sh[0] == FK && sh[1] == FN);
}

/* W_ref [FK, FN] = diag(suh) H w_hat H diag(svh) in double, H = the
 * normalised 128-point Sylvester matrix built from its definition
 * H[i][j] = (-1)^popcount(i & j) / sqrt(128) (not from the code under
 * test). */
static void reconstruct_ref(const struct fx *f, double *W)
{
	double *t = malloc(FK * FN * sizeof *t);
	double hs = 1.0 / sqrt(128.0);
	size_t a, b, i;

	/* t = H_k w_hat (blockwise over rows; FK = one block) */
	for (a = 0; a < FK; a++)
		for (b = 0; b < FN; b++) {
			double s = 0;

			for (i = 0; i < 128; i++)
				s += (__builtin_popcount((unsigned)(a & i)) & 1 ? -1 : 1) *
				     (double)test_from_f16(rd16(f->w_hat, i * FN + b));
			t[a * FN + b] = s * hs;
		}
	/* W = diag(suh) t H_n diag(svh), H_n blockwise over 128 columns */
	for (a = 0; a < FK; a++)
		for (b = 0; b < FN; b++) {
			size_t blk = b / 128 * 128, bb = b % 128;
			double s = 0;

			for (i = 0; i < 128; i++)
				s += (__builtin_popcount((unsigned)(i & bb)) & 1 ? -1 : 1) *
				     t[a * FN + blk + i];
			W[a * FN + b] = s * hs * (double)test_from_f16(rd16(f->suh, a)) *
					(double)test_from_f16(rd16(f->svh, b));
		}
	free(t);
}

/* Within fp16 rounding of the kernel's fp16 arithmetic: each element within
 * 4 half-ulps of its own magnitude plus 2^-10 of the matrix's largest value
 * (the kernel's fp16 intermediates lose absolute, not relative, precision
 * on small results). */
static void expect_fp16_close(const char *what, const double *ours,
			      const void *ref_f16, size_t n)
{
	double mx = 0, worst = 0;
	size_t i, bad = 0, first = n;

	for (i = 0; i < n; i++)
		mx = fmax(mx, fabs((double)test_from_f16(rd16(ref_f16, i))));
	ck_assert_msg(mx > 0, "%s: reference is all zero", what);
	for (i = 0; i < n; i++) {
		double r = (double)test_from_f16(rd16(ref_f16, i)), df = fabs(ours[i] - r);
		double tol = 4.0 * ldexp(fabs(r), -11) + ldexp(mx, -10);

		worst = fmax(worst, df / mx);
		if (df > tol && bad++ == 0)
			first = i;
	}
	ck_assert_msg(bad == 0,
		      "%s: %zu of %zu elements off (first at %zu: %g vs %g); "
		      "worst |diff| / max = %g", what, bad, n, first,
		      first < n ? ours[first] : 0.0,
		      first < n ? (double)test_from_f16(rd16(ref_f16, first)) : 0.0, worst);
}

static struct gpu *open_cpu(int threads)
{
	struct gpu_params p = gpu_default_params();
	struct gpu *g = NULL;
	struct diag d;

	diag_clear(&d);
	p.n_threads = threads;
	ck_assert_msg(gpu_open(GPU_KIND_CPU, &p, &g, &d) == 0, "%s", d.msg);
	return g;
}

static struct gpu_exl3_weight *upload(struct gpu *g, const struct fx *f,
				      const void *bias)
{
	struct gpu_exl3_desc desc;
	struct gpu_exl3_weight *w = NULL;
	struct diag d;

	diag_clear(&d);
	memset(&desc, 0, sizeof desc);
	desc.k = FK;
	desc.n = FN;
	desc.bits = f->bits;
	desc.cb = (enum gpu_exl3_cb)f->cb;
	desc.trellis = f->trellis;
	desc.suh = f->suh;
	desc.svh = f->svh;
	desc.bias = bias;
	ck_assert_msg(gpu_exl3_weight_new(g, &desc, &w, &d) == 0, "%s", d.msg);
	ck_assert_uint_eq(gpu_exl3_weight_k(w), FK);
	ck_assert_uint_eq(gpu_exl3_weight_n(w), FN);
	ck_assert_int_eq(gpu_exl3_weight_bits(w), f->bits);
	ck_assert_uint_ge(gpu_exl3_weight_bytes(w), FK * FN * (size_t)f->bits / 8);
	return w;
}

/* out [rows, n_out] = gpu_exl3_matmul(x [rows, k_in]) */
static float *run_linear(struct gpu *g, const struct gpu_exl3_weight *w,
			 const float *x, size_t rows, size_t k_in, size_t n_out)
{
	struct gpu_buf *bx = NULL, *bo = NULL;
	float *out = malloc(rows * n_out * sizeof *out);
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, rows * k_in, &bx, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, rows * n_out, &bo, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bx, 0, x, rows * k_in, NULL), 0);
	ck_assert_msg(gpu_exl3_matmul(g, bo, bx, w, rows, k_in, n_out, &d) == 0,
		      "%s", d.msg);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, rows * n_out, NULL), 0);
	gpu_buf_free(bx);
	gpu_buf_free(bo);
	return out;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* ---- tests ------------------------------------------------------------- */

/* exl3-format.md §2.4: fp16 bits of each codebook for eight states. */
START_TEST(test_codebook_values)
{
	static const struct {
		uint32_t s;
		uint16_t v[3];
	} tv[] = {
		{ 0x0000, { 0x3a25, 0x3f60, 0xc2e8 } },
		{ 0x0001, { 0xbb5b, 0x304e, 0x3921 } },
		{ 0x0002, { 0x3b74, 0xba13, 0xb72d } },
		{ 0x0003, { 0x34b6, 0x3ab8, 0x3239 } },
		{ 0x1234, { 0xc066, 0x3e0f, 0xb89e } },
		{ 0x8000, { 0xb7f8, 0xb915, 0xbaf2 } },
		{ 0xABCD, { 0xb98e, 0x35e7, 0xbd42 } },
		{ 0xFFFF, { 0xb110, 0x3acd, 0xb936 } },
	};
	size_t i;
	int cb;

	for (i = 0; i < sizeof tv / sizeof tv[0]; i++)
		for (cb = 0; cb < 3; cb++) {
			const float *lut = gpu_exl3_lut(cb);

			ck_assert_msg(gpu_exl3_codebook(tv[i].s, cb) == tv[i].v[cb],
				      "cb%d state 0x%04x: 0x%04x, expected 0x%04x",
				      cb, (unsigned)tv[i].s,
				      gpu_exl3_codebook(tv[i].s, cb), tv[i].v[cb]);
			ck_assert(lut != NULL);
			ck_assert(lut[tv[i].s] == (float)(double)test_from_f16(tv[i].v[cb]));
		}
	ck_assert_ptr_null(gpu_exl3_lut(3));
}
END_TEST

/* Every tile of w_hat, cb = _i / 8, K = _i % 8 + 1, bit for bit. */
START_TEST(test_tiles_bit_exact)
{
	const int cb = _i / 8, bits = _i % 8 + 1;
	const size_t rec = 16 * (size_t)bits; /* int16 per tile */
	float *dec = malloc(FK * FN * sizeof *dec);
	struct test_st s;
	struct fx f;
	size_t tk, tn, r, c, bad_fast = 0, bad_ref = 0, bad_lin = 0;
	float blk[16 * 128];
	int e;

	test_st_open(&s, "exl3/dequant_vectors.safetensors");
	fx_get(&s, cb, bits, &f);
	for (tk = 0; tk < FK / 16; tk++)
		for (tn = 0; tn < FN / 16; tn++) {
			const char *t16 = (const char *)f.trellis +
					  2 * (tk * (FN / 16) + tn) * rec;

			gpu_exl3_tile_decode(t16, bits, gpu_exl3_lut(cb),
					     dec + tk * 16 * FN + tn * 16, FN);
			/* the linear's own decode (tables, MUL1 by byte sum) */
			gpu_exl3_tile_decode_fast(t16, bits, cb, blk);
			for (r = 0; r < 16; r++)
				for (c = 0; c < 16; c++)
					if (f2h_exact(blk[r * 128 + c]) !=
					    rd16(f.w_hat, (16 * tk + r) * FN + 16 * tn + c))
						bad_lin++;
			/* the scalar reference: state formula + codebook */
			for (e = 0; e < 256; e++) {
				int l = e >> 3, j = e & 7;
				size_t rr = (size_t)(2 * (l & 3) + (j & 1) + 8 * ((j >> 1) & 1));
				size_t cc = (size_t)((l >> 2) + 8 * ((j >> 2) & 1));
				uint16_t v = gpu_exl3_codebook(gpu_exl3_state(t16, bits, e), cb);

				if (v != rd16(f.w_hat, (16 * tk + rr) * FN + 16 * tn + cc))
					bad_ref++;
			}
		}
	for (r = 0; r < FK; r++)
		for (c = 0; c < FN; c++)
			if (f2h_exact(dec[r * FN + c]) != rd16(f.w_hat, r * FN + c)) {
				if (bad_fast == 0)
					fprintf(stderr, "cb%d k%d: first mismatch at "
						"[%zu][%zu]: 0x%04x vs 0x%04x\n", cb, bits,
						r, c, f2h_exact(dec[r * FN + c]),
						rd16(f.w_hat, r * FN + c));
				bad_fast++;
			}
	ck_assert_msg(bad_fast == 0 && bad_ref == 0 && bad_lin == 0,
		      "cb%d k%d: %zu (decoder) / %zu (reference) / %zu (the linear's "
		      "decoder) of %d values differ from the kernels' w_hat", cb, bits,
		      bad_fast, bad_ref, bad_lin, FK * FN);
	test_st_close(&s);
	free(dec);
}
END_TEST

/* The linear's decoder (its AVX2 route where the CPU has one, and its
 * scalar route) against the reference decoder on random tiles of every K
 * and codebook (with 256 states a tile, 400 tiles reach ~80% of the
 * 65,536 states), bit for bit. */
START_TEST(test_fast_decode_random)
{
	unsigned char t16[32 * 8];
	float ref[16 * 128], fast[16 * 128];
	int cb, bits, it, r, c, simd;
	size_t i;
	uint32_t st = 0x9E3779B9u;

	for (simd = 0; simd < 2; simd++) {
	if (simd && !gpu_exl3_set_simd(1))
		break; /* no AVX2 here: the scalar route was the one in use */
	if (!simd)
		(void)gpu_exl3_set_simd(0);
	for (cb = 0; cb < 3; cb++)
		for (bits = 1; bits <= 8; bits++)
			for (it = 0; it < 400; it++) {
				for (i = 0; i < 32 * (size_t)bits; i++) {
					st ^= st << 13;
					st ^= st >> 17;
					st ^= st << 5;
					t16[i] = (unsigned char)(st >> 24);
				}
				gpu_exl3_tile_decode(t16, bits, gpu_exl3_lut(cb), ref, 128);
				gpu_exl3_tile_decode_fast(t16, bits, cb, fast);
				for (r = 0; r < 16; r++)
					for (c = 0; c < 16; c++)
						ck_assert_msg(!memcmp(&ref[r * 128 + c],
								      &fast[r * 128 + c],
								      sizeof(float)),
							      "simd %d cb%d k%d tile %d [%d][%d]: "
							      "%a vs %a", simd, cb, bits, it, r,
							      c, (double)fast[r * 128 + c],
							      (double)ref[r * 128 + c]);
			}
	}
	(void)gpu_exl3_set_simd(1);
}
END_TEST

/* Our Hadamard un-rotation vs the kernels' w, and vs an independent
 * double-precision H; then the same through gpu_exl3_matmul on identity
 * rows (x = e_a gives row a of W). */
START_TEST(test_reconstruct)
{
	const int cb = _i / 8, bits = _i % 8 + 1;
	double *W = malloc(FK * FN * sizeof *W), *Wl = malloc(FK * FN * sizeof *Wl);
	float *x = calloc(FK * FK, sizeof *x), *out, v[128];
	struct gpu *g = open_cpu(3);
	struct gpu_exl3_weight *w;
	char what[64];
	struct test_st s;
	struct fx f;
	size_t i, a, b;
	double mx = 0, md = 0;

	test_st_open(&s, "exl3/dequant_vectors.safetensors");
	fx_get(&s, cb, bits, &f);
	/* gpu_exl3_fwht128 against the matrix definition on a random vector */
	for (i = 0; i < 128; i++)
		v[i] = frand();
	{
		float u[128];

		memcpy(u, v, sizeof u);
		gpu_exl3_fwht128(u);
		for (a = 0; a < 128; a++) {
			double sum = 0;

			for (i = 0; i < 128; i++)
				sum += (__builtin_popcount((unsigned)(a & i)) & 1 ? -1 : 1) *
				       (double)v[i];
			ck_assert_msg(fabs(sum / sqrt(128.0) - u[a]) < 1e-5,
				      "fwht128[%zu]: %g vs %g", a, (double)u[a],
				      sum / sqrt(128.0));
		}
	}
	reconstruct_ref(&f, W);
	snprintf(what, sizeof what, "cb%d k%d reconstruction", cb, bits);
	expect_fp16_close(what, W, f.w, FK * FN);

	w = upload(g, &f, NULL);
	for (a = 0; a < FK; a++)
		x[a * FK + a] = 1.0f;
	out = run_linear(g, w, x, FK, FK, FN);
	for (i = 0; i < FK * FN; i++) {
		Wl[i] = out[i];
		mx = fmax(mx, fabs(W[i]));
		md = fmax(md, fabs(W[i] - Wl[i]));
	}
	snprintf(what, sizeof what, "cb%d k%d linear on identity", cb, bits);
	expect_fp16_close(what, Wl, f.w, FK * FN);
	/* against our own double reconstruction: f32 rounding only */
	ck_assert_msg(md <= 1e-5 * mx, "%s: max |diff| %g vs double (max %g)", what,
		      md, mx);
	(void)b;
	free(out);
	gpu_exl3_weight_free(w);
	gpu_close(g);
	test_st_close(&s);
	free(W);
	free(Wl);
	free(x);
}
END_TEST

/* Random rows, bias, padding and thread independence (cb1, K = 3 and cb2,
 * K = 5 exercise windows that straddle words). */
START_TEST(test_linear)
{
	const int cases[2][2] = { { 1, 3 }, { 2, 5 } };
	const int cb = cases[_i][0], bits = cases[_i][1];
	const size_t R = 7;
	double *W = malloc(FK * FN * sizeof *W);
	float *x = malloc(R * FK * sizeof *x), *xs = malloc(R * 100 * sizeof *xs);
	uint16_t bias[FN];
	struct gpu *g1 = open_cpu(1), *g3 = open_cpu(3);
	struct gpu_exl3_weight *w1, *w3, *wb;
	float *o1, *o3, *ob, *ot, *op;
	struct test_st s;
	struct fx f;
	size_t i, a, b;
	double mx = 0, md = 0;

	test_st_open(&s, "exl3/dequant_vectors.safetensors");
	fx_get(&s, cb, bits, &f);
	reconstruct_ref(&f, W);
	for (i = 0; i < R * FK; i++)
		x[i] = frand();
	for (b = 0; b < FN; b++)
		bias[b] = (uint16_t)(0x3800 + (b * 37) % 512) | (b & 1 ? 0x8000 : 0);
	w1 = upload(g1, &f, NULL);
	w3 = upload(g3, &f, NULL);
	wb = upload(g3, &f, bias);
	o1 = run_linear(g1, w1, x, R, FK, FN);
	o3 = run_linear(g3, w3, x, R, FK, FN);
	ob = run_linear(g3, wb, x, R, FK, FN);
	/* x . W in double */
	for (i = 0; i < R; i++)
		for (b = 0; b < FN; b++) {
			double y = 0;

			for (a = 0; a < FK; a++)
				y += (double)x[i * FK + a] * W[a * FN + b];
			mx = fmax(mx, fabs(y));
			md = fmax(md, fabs(y - o3[i * FN + b]));
			ck_assert_msg(fabs((double)ob[i * FN + b] -
					   (y + (double)test_from_f16(bias[b]))) <= 1e-5 * (fabs(y) + 4),
				      "bias row %zu col %zu", i, b);
		}
	ck_assert_msg(md <= 1e-5 * mx, "x.W: max |diff| %g (max %g)", md, mx);
	ck_assert_msg(memcmp(o1, o3, R * FN * sizeof *o1) == 0,
		      "1 and 3 threads differ");
	/* padding: k_in = 100 zero-extends, n_out = 200 trims */
	for (i = 0; i < R; i++)
		for (a = 0; a < 100; a++)
			xs[i * 100 + a] = x[i * FK + a];
	{
		float *xz = calloc(R * FK, sizeof *xz);

		for (i = 0; i < R; i++)
			memcpy(xz + i * FK, xs + i * 100, 100 * sizeof *xz);
		op = run_linear(g3, w3, xz, R, FK, FN);
		ot = run_linear(g3, w3, xs, R, 100, 200);
		for (i = 0; i < R; i++)
			ck_assert_msg(memcmp(ot + i * 200, op + i * FN,
					     200 * sizeof *ot) == 0,
				      "padded row %zu differs", i);
		free(xz);
	}
	free(o1);
	free(o3);
	free(ob);
	free(ot);
	free(op);
	gpu_exl3_weight_free(w1);
	gpu_exl3_weight_free(w3);
	gpu_exl3_weight_free(wb);
	gpu_close(g1);
	gpu_close(g3);
	test_st_close(&s);
	free(W);
	free(x);
	free(xs);
}
END_TEST

/* A larger random weight (k 384, n 512) through the threaded path must
 * equal a straightforward dequantize-then-multiply built from the scalar
 * reference (state + codebook + Hadamard definition). */
START_TEST(test_linear_large)
{
	const size_t k = 384, n = 512, R = 3;
	const int bits = 6, cb = 0;
	size_t n16 = (k / 16) * (n / 16) * 16 * (size_t)bits, i, a, b, r;
	int16_t *tr = malloc(n16 * sizeof *tr);
	uint16_t *suh = malloc(k * 2), *svh = malloc(n * 2);
	double *what = calloc(k * n, sizeof *what), *t = calloc(k * n, sizeof *t);
	double *W = calloc(k * n, sizeof *W), hs = 1.0 / sqrt(128.0), mx = 0, md = 0;
	float *x = malloc(R * k * sizeof *x), *out;
	struct gpu *g = open_cpu(4);
	struct gpu_exl3_weight *w = NULL;
	struct gpu_exl3_desc desc;
	struct diag dg;
	int e;

	for (i = 0; i < n16; i++)
		tr[i] = (int16_t)(frand() * 32767);
	for (i = 0; i < k; i++)
		suh[i] = (uint16_t)(0x2c00 + (i * 13) % 1024) | (i % 3 ? 0 : 0x8000);
	for (i = 0; i < n; i++)
		svh[i] = (uint16_t)(0x3400 + (i * 7) % 1024) | (i % 5 ? 0x8000 : 0);
	for (i = 0; i < R * k; i++)
		x[i] = frand();
	/* W_hat from the scalar reference */
	for (a = 0; a < k / 16; a++)
		for (b = 0; b < n / 16; b++) {
			const int16_t *t16 = tr + (a * (n / 16) + b) * 16 * (size_t)bits;

			for (e = 0; e < 256; e++) {
				int l = e >> 3, j = e & 7;
				size_t rr = (size_t)(2 * (l & 3) + (j & 1) + 8 * ((j >> 1) & 1));
				size_t cc = (size_t)((l >> 2) + 8 * ((j >> 2) & 1));

				what[(16 * a + rr) * n + 16 * b + cc] =
					(double)test_from_f16(gpu_exl3_codebook(gpu_exl3_state(t16, bits, e), cb));
			}
		}
	/* W = diag(suh) H_k W_hat H_n diag(svh), blockwise */
	for (a = 0; a < k; a++)
		for (b = 0; b < n; b++) {
			double s = 0;

			for (r = 0; r < 128; r++)
				s += (__builtin_popcount((unsigned)((a % 128) & r)) & 1 ? -1 : 1) *
				     what[(a / 128 * 128 + r) * n + b];
			t[a * n + b] = s * hs;
		}
	for (a = 0; a < k; a++)
		for (b = 0; b < n; b++) {
			double s = 0;

			for (r = 0; r < 128; r++)
				s += (__builtin_popcount((unsigned)((b % 128) & r)) & 1 ? -1 : 1) *
				     t[a * n + b / 128 * 128 + r];
			W[a * n + b] = s * hs * (double)test_from_f16(suh[a]) * (double)test_from_f16(svh[b]);
		}
	memset(&desc, 0, sizeof desc);
	desc.k = k;
	desc.n = n;
	desc.bits = bits;
	desc.cb = GPU_EXL3_CB_3INST;
	desc.trellis = tr;
	desc.suh = suh;
	desc.svh = svh;
	diag_clear(&dg);
	ck_assert_msg(gpu_exl3_weight_new(g, &desc, &w, &dg) == 0, "%s", dg.msg);
	{
		struct gpu_buf *bx = NULL, *bo = NULL;

		ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, R * k, &bx, NULL), 0);
		ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, R * n, &bo, NULL), 0);
		ck_assert_int_eq(gpu_buf_write(bx, 0, x, R * k, NULL), 0);
		ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, R, k, n, &dg), 0);
		out = malloc(R * n * sizeof *out);
		ck_assert_int_eq(gpu_buf_read(bo, 0, out, R * n, NULL), 0);
		gpu_buf_free(bx);
		gpu_buf_free(bo);
	}
	for (i = 0; i < R; i++)
		for (b = 0; b < n; b++) {
			double y = 0;

			for (a = 0; a < k; a++)
				y += (double)x[i * k + a] * W[a * n + b];
			mx = fmax(mx, fabs(y));
			md = fmax(md, fabs(y - out[i * n + b]));
		}
	ck_assert_msg(md <= 1e-5 * mx, "max |diff| %g (max %g)", md, mx);
	gpu_exl3_weight_free(w);
	gpu_close(g);
	free(out);
	free(tr);
	free(suh);
	free(svh);
	free(what);
	free(t);
	free(W);
	free(x);
}
END_TEST

START_TEST(test_validation)
{
	struct gpu *g = open_cpu(2);
	int16_t tr[16 * 8 * 8 * 2];
	uint16_t sv[256];
	struct gpu_exl3_desc desc;
	struct gpu_exl3_weight *w = NULL;
	struct gpu_buf *bx = NULL, *bo = NULL, *bi = NULL;
	struct diag d;

	memset(tr, 0, sizeof tr);
	memset(sv, 0, sizeof sv);
	memset(&desc, 0, sizeof desc);
	desc.k = 128;
	desc.n = 128;
	desc.bits = 2;
	desc.trellis = tr;
	desc.suh = sv;
	desc.svh = sv;
	diag_clear(&d);
	desc.bits = 0;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "bits"));
	desc.bits = 9;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), GPU_E_INVALID);
	desc.bits = 2;
	desc.k = 100;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "128"));
	desc.k = 128;
	desc.cb = (enum gpu_exl3_cb)3;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), GPU_E_INVALID);
	desc.cb = GPU_EXL3_CB_MUL1;
	desc.suh = NULL;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), GPU_E_INVALID);
	ck_assert_ptr_null(w);
	desc.suh = sv;
	ck_assert_int_eq(gpu_exl3_weight_new(g, &desc, &w, &d), 0);

	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, 2 * 128, &bx, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, 2 * 128, &bo, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, 2 * 128, &bi, NULL), 0);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, 2, 129, 128, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, 2, 128, 0, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, 3, 128, 128, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "elements"));
	ck_assert_int_eq(gpu_exl3_matmul(g, bi, bx, w, 2, 128, 128, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_exl3_matmul(g, bx, bx, w, 2, 128, 128, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, NULL, 2, 128, 128, &d), GPU_E_INVALID);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, 0, 128, 128, &d), 0);
	ck_assert_int_eq(gpu_exl3_matmul(g, bo, bx, w, 2, 128, 128, &d), 0);
	gpu_exl3_weight_free(NULL);
	gpu_exl3_weight_free(w);
	gpu_buf_free(bx);
	gpu_buf_free(bo);
	gpu_buf_free(bi);
	gpu_close(g);
}
END_TEST

/* ---- MoE experts in EXL3 form (gpu_moe_ffn with ex.xgate/xup/xdown) ----- */

/* A random EXL3 linear of logical IN x OUT (padded to 128 both ways),
 * K bits, codebook CB; its reconstruction W [in, out] (input-major) in
 * double: W_hat from the bit-exact tile decode (checked against
 * ExLlamaV3's tiles above), then diag(suh) H W_hat H diag(svh) with H from
 * its definition, as reconstruct_ref. */
struct moe_lin {
	struct gpu_exl3_weight *w;
	double *W;       /* [in, out] */
	size_t in, out;
};

static void moe_lin_make(struct gpu *g, struct moe_lin *L, size_t in,
			 size_t out, int bits, int cb)
{
	const size_t kp = (in + 127) / 128 * 128, np = (out + 127) / 128 * 128;
	const size_t ntr = kp / 16 * (np / 16) * 16 * (size_t)bits;
	const size_t tb = 16 * (size_t)bits * 2; /* bytes of one tile */
	/* exactly representable halves: 1/4 * {0.75, 1, 1.25} and
	 * {0.75, 1, 1.25} */
	static const uint16_t su_mag[3] = { 0x3200, 0x3400, 0x3500 };
	static const uint16_t sv_mag[3] = { 0x3A00, 0x3C00, 0x3D00 };
	int16_t *tr = malloc(ntr * sizeof *tr);
	uint16_t *suh = malloc(kp * 2), *svh = malloc(np * 2);
	float *what = malloc(kp * np * sizeof *what);
	double *t = malloc(kp * np * sizeof *t), hs = 1.0 / sqrt(128.0);
	const float *lut = gpu_exl3_lut(cb);
	struct gpu_exl3_desc desc;
	struct diag d;
	size_t i, a, b, tk, tn;

	ck_assert(tr && suh && svh && what && t && lut);
	for (i = 0; i < ntr; i++)
		tr[i] = (int16_t)(int)(frand() * 32767.0f);
	for (i = 0; i < kp; i++)
		suh[i] = (uint16_t)(su_mag[i % 3] | (frand() < 0 ? 0x8000 : 0));
	for (i = 0; i < np; i++)
		svh[i] = (uint16_t)(sv_mag[(i / 2) % 3] | (frand() < 0 ? 0x8000 : 0));
	memset(&desc, 0, sizeof desc);
	desc.k = kp;
	desc.n = np;
	desc.bits = bits;
	desc.cb = (enum gpu_exl3_cb)cb;
	desc.trellis = tr;
	desc.suh = suh;
	desc.svh = svh;
	diag_clear(&d);
	ck_assert_msg(gpu_exl3_weight_new(g, &desc, &L->w, &d) == 0, "%s", d.msg);
	/* W_hat [kp, np] */
	for (tk = 0; tk < kp / 16; tk++)
		for (tn = 0; tn < np / 16; tn++)
			gpu_exl3_tile_decode((const char *)tr +
						     (tk * (np / 16) + tn) * tb,
					     bits, lut, what + tk * 16 * np + tn * 16,
					     np);
	/* t = H_k W_hat (blockwise over rows) */
	for (a = 0; a < kp; a++)
		for (b = 0; b < np; b++) {
			size_t blk = a / 128 * 128, aa = a % 128;
			double sum = 0;

			for (i = 0; i < 128; i++)
				sum += (__builtin_popcount((unsigned)(aa & i)) & 1 ? -1 : 1) *
				       (double)what[(blk + i) * np + b];
			t[a * np + b] = sum * hs;
		}
	/* W = diag(suh) t H_n diag(svh), trimmed to [in, out] */
	L->W = malloc(in * out * sizeof *L->W);
	for (a = 0; a < in; a++)
		for (b = 0; b < out; b++) {
			size_t blk = b / 128 * 128, bb = b % 128;
			double sum = 0;

			for (i = 0; i < 128; i++)
				sum += (__builtin_popcount((unsigned)(i & bb)) & 1 ? -1 : 1) *
				       t[a * np + blk + i];
			L->W[a * out + b] = sum * hs *
					    (double)test_from_f16(suh[a]) *
					    (double)test_from_f16(svh[b]);
		}
	L->in = in;
	L->out = out;
	free(tr);
	free(suh);
	free(svh);
	free(what);
	free(t);
}

/* The float twin of L: f32 [out, in] (HF orientation) = W^T. */
static struct gpu_buf *moe_lin_float(struct gpu *g, const struct moe_lin *L)
{
	float *v = malloc(L->in * L->out * sizeof *v);
	struct gpu_buf *b = NULL;
	size_t i, j;

	for (i = 0; i < L->out; i++)
		for (j = 0; j < L->in; j++)
			v[i * L->in + j] = (float)L->W[j * L->out + i];
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, L->in * L->out, &b, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(b, 0, v, L->in * L->out, NULL), 0);
	free(v);
	return b;
}

/* gpu_moe_ffn with EXL3 experts (dim 200 and n_ff 100, both padded: inputs
 * zero-extended, outputs trimmed) against the formula in double on the
 * reconstructed W, and against the same op on float experts holding those
 * W; then the expert-set validation. */
START_TEST(test_moe_experts)
{
	enum { N = 7, NE = 3, TK = 2, D = 200, F = 100 };
	struct gpu *g = open_cpu(2);
	struct moe_lin lg[NE], lu[NE], ld[NE];
	const struct gpu_exl3_weight *xg[NE], *xu[NE], *xd[NE];
	const struct gpu_buf *fg[NE], *fu[NE], *fd[NE];
	struct gpu_buf *own[3 * NE], *bx, *bo, *bi, *bw, *bs;
	struct gpu_moe_experts ex, exf;
	float x[N * D], wts[N * TK], out[N * D], outf[N * D];
	int32_t ids[N * TK];
	double mx = 0, err = 0, errf = 0;
	struct diag d;
	size_t i, j, e, c, f;

	rng = 99;
	for (e = 0; e < NE; e++) {
		moe_lin_make(g, &lg[e], D, F, 2 + (int)e, (int)e % 3);
		moe_lin_make(g, &lu[e], D, F, 3, (int)(e + 1) % 3);
		moe_lin_make(g, &ld[e], F, D, 4 - (int)e, (int)(e + 2) % 3);
		xg[e] = lg[e].w;
		xu[e] = lu[e].w;
		xd[e] = ld[e].w;
		fg[e] = own[3 * e] = moe_lin_float(g, &lg[e]);
		fu[e] = own[3 * e + 1] = moe_lin_float(g, &lu[e]);
		fd[e] = own[3 * e + 2] = moe_lin_float(g, &ld[e]);
	}
	for (i = 0; i < N * D; i++)
		x[i] = frand();
	for (i = 0; i < N; i++) {
		/* two distinct experts per row, expert 2 left out of row 0 */
		ids[i * TK] = (int32_t)(i % NE);
		ids[i * TK + 1] = (int32_t)((i + 1 + i / NE) % NE);
		if (ids[i * TK + 1] == ids[i * TK])
			ids[i * TK + 1] = (ids[i * TK] + 1) % NE;
		wts[i * TK] = 0.25f + 0.1f * (float)i;
		wts[i * TK + 1] = 1.0f - wts[i * TK];
	}
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, N * D, &bx, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, N * D, &bo, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_I32, N * TK, &bi, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32, N * TK, &bw, NULL), 0);
	ck_assert_int_eq(gpu_buf_new(g, GPU_DTYPE_F32,
				     gpu_moe_scratch_elems(N, D, F, TK), &bs, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bx, 0, x, N * D, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bi, 0, ids, N * TK, NULL), 0);
	ck_assert_int_eq(gpu_buf_write(bw, 0, wts, N * TK, NULL), 0);
	memset(&ex, 0, sizeof ex);
	ex.n_expert = NE;
	ex.n_ff = F;
	ex.xgate = xg;
	ex.xup = xu;
	ex.xdown = xd;
	exf = ex;
	exf.xgate = exf.xup = exf.xdown = NULL;
	exf.gate = fg;
	exf.up = fu;
	exf.down = fd;
	diag_clear(&d);
	ck_assert_msg(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, TK, bs, &d) == 0,
		      "%s", d.msg);
	ck_assert_int_eq(gpu_buf_read(bo, 0, out, N * D, NULL), 0);
	ck_assert_msg(gpu_moe_ffn(g, bo, bx, bi, bw, &exf, N, D, TK, bs, &d) == 0,
		      "%s", d.msg);
	ck_assert_int_eq(gpu_buf_read(bo, 0, outf, N * D, NULL), 0);
	for (i = 0; i < N; i++) {
		double ref[D] = { 0 };

		for (j = 0; j < TK; j++) {
			double h[F];

			e = (size_t)ids[i * TK + j];
			for (f = 0; f < F; f++) {
				double a = 0, b = 0;

				for (c = 0; c < D; c++) {
					a += lg[e].W[c * F + f] * x[i * D + c];
					b += lu[e].W[c * F + f] * x[i * D + c];
				}
				h[f] = a / (1 + exp(-a)) * b;
			}
			for (c = 0; c < D; c++) {
				double y = 0;

				for (f = 0; f < F; f++)
					y += ld[e].W[f * D + c] * h[f];
				ref[c] += wts[i * TK + j] * y;
			}
		}
		for (c = 0; c < D; c++) {
			mx = fmax(mx, fabs(ref[c]));
			err = fmax(err, fabs(out[i * D + c] - ref[c]));
			errf = fmax(errf, fabs(out[i * D + c] - outf[i * D + c]));
		}
	}
	ck_assert(mx > 0.1);
	/* f32 arithmetic on both sides: a few ulps of the largest value */
	ck_assert_msg(err <= 1e-5 * mx, "EXL3 experts vs formula: %g of %g", err, mx);
	ck_assert_msg(errf <= 1e-5 * mx, "EXL3 vs float experts: %g of %g", errf, mx);

	/* validation: both triples, neither, a NULL entry, too small */
	exf.xgate = xg;
	exf.xup = xu;
	exf.xdown = xd;
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &exf, N, D, TK, bs, &d),
			 GPU_E_INVALID);
	exf = ex;
	exf.xdown = NULL;
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &exf, N, D, TK, bs, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "bad expert set"));
	xd[1] = NULL;
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, TK, bs, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "expert 1 down is NULL"));
	/* a down projection with 128 outputs for dim 200 */
	xd[1] = lg[1].w;
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, TK, bs, &d),
			 GPU_E_INVALID);
	ck_assert_msg(strstr(d.msg, "expert 1 down is 256 x 128") != NULL, "%s",
		      d.msg);
	/* a gate whose k (128) is short of dim 200 */
	xd[1] = ld[1].w;
	xg[2] = ld[0].w; /* 128 x 256: k 128 < 200 */
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, TK, bs, &d),
			 GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "expert 2 gate"));
	xg[2] = lg[2].w;
	ck_assert_int_eq(gpu_moe_ffn(g, bo, bx, bi, bw, &ex, N, D, TK, bs, &d), 0);
	for (e = 0; e < NE; e++) {
		gpu_exl3_weight_free(lg[e].w);
		gpu_exl3_weight_free(lu[e].w);
		gpu_exl3_weight_free(ld[e].w);
		free(lg[e].W);
		free(lu[e].W);
		free(ld[e].W);
	}
	for (e = 0; e < 3 * NE; e++)
		gpu_buf_free(own[e]);
	gpu_buf_free(bx);
	gpu_buf_free(bo);
	gpu_buf_free(bi);
	gpu_buf_free(bw);
	gpu_buf_free(bs);
	gpu_close(g);
}
END_TEST

/* A CPU f32 (or i32) buffer of n elements holding v (or zeros). */
static struct gpu_buf *cbuf(struct gpu *g, enum gpu_dtype t, size_t n,
			    const void *v)
{
	struct gpu_buf *b = NULL;

	ck_assert_int_eq(gpu_buf_new(g, t, n, &b, NULL), 0);
	if (v)
		ck_assert_int_eq(gpu_buf_write(b, 0, v, n, NULL), 0);
	else
		ck_assert_int_eq(gpu_buf_zero(b, NULL), 0);
	return b;
}

/* Whether buffers a and b (n elements of 4 bytes) hold the same bits. */
static bool cbits_equal(struct gpu_buf *a, struct gpu_buf *b, size_t n)
{
	uint32_t *x = malloc(n * 4), *y = malloc(n * 4);
	bool same;

	ck_assert(x && y);
	ck_assert_int_eq(gpu_buf_read(a, 0, x, n, NULL), 0);
	ck_assert_int_eq(gpu_buf_read(b, 0, y, n, NULL), 0);
	same = !memcmp(x, y, n * 4);
	free(x);
	free(y);
	return same;
}

/* gpu_exl3_residual with att and rope_kv on the CPU backend (what CI
 * runs of the front end; the CUDA suite compares the fused paths): an
 * o_proj-like op (4 heads of 128 -> dim 256) whose att is the attention
 * over a paged f32 cache and whose next parts are q/k/v (256 -> 512 /
 * 256 / 256) with their RoPE + KV store, for 3 rows of 2 sequences; the
 * result equals gpu_attention, gpu_exl3_matmul, gpu_add_rmsnorm,
 * gpu_exl3_matmul_multi and gpu_rope_kv_store called in that order, bit
 * for bit (q is the attention's input and the q part's output, as in the
 * forward pass).  Refused before anything runs (x and the cache
 * unchanged): att whose out is not a or whose heads are not the op's
 * input, rope_kv without three next parts, with another batch size or
 * with heads that are not q's columns. */
START_TEST(test_residual_att_rope)
{
	enum { N = 3, H = 4, HK = 2, HD = 128, DIM = 256, PS = 16, MP = 2, NS = 2 };
	const size_t npg = NS * MP, pool_n = npg * PS * HK * HD;
	struct gpu *g = open_cpu(2);
	struct moe_lin lo, lq, lk, lv;
	struct gpu_buf *b[2][16];
	float *x0 = malloc(N * DIM * 4), *q0 = malloc(N * H * HD * 4);
	float *kp = malloc(pool_n * 4), *vp = malloc(pool_n * 4), nwv[DIM], invf[64];
	const int32_t seq[N] = { 0, 1, 0 }, pos[N] = { 20, 9, 21 }, pt[NS * MP] = { 2, 0, 3, 1 };
	struct gpu_exl3_part parts[2][3];
	struct gpu_kv_pool pool[2];
	struct gpu_kv_batch kb[2];
	struct gpu_rope rp = { .n_rot = HD, .attn_factor = 1.0f };
	struct gpu_rope_kv rk[2];
	struct gpu_attention_args aa[2];
	struct gpu_exl3_residual r;
	struct diag d;
	size_t i;
	int v, j;

	ck_assert(x0 && q0 && kp && vp);
	moe_lin_make(g, &lo, H * HD, DIM, 4, 2);
	moe_lin_make(g, &lq, DIM, H * HD, 3, 0);
	moe_lin_make(g, &lk, DIM, HK * HD, 4, 1);
	moe_lin_make(g, &lv, DIM, HK * HD, 5, 2);
	for (i = 0; i < N * DIM; i++)
		x0[i] = frand() * 2.0f;
	for (i = 0; i < N * H * HD; i++)
		q0[i] = frand();
	for (i = 0; i < pool_n; i++) {
		kp[i] = frand();
		vp[i] = frand();
	}
	for (i = 0; i < DIM; i++)
		nwv[i] = 1.0f + 0.25f * frand();
	for (i = 0; i < 64; i++)
		invf[i] = powf(10000.0f, -(float)(2 * i) / 128.0f);
	/* [0] the op, [1] the sequence; buffers x, xn, o, att, q, k, v, K
	 * pool, V pool, row seq, row pos, page table, rope pos, inv_freq,
	 * norm */
	for (v = 0; v < 2; v++) {
		b[v][0] = cbuf(g, GPU_DTYPE_F32, N * DIM, x0);
		b[v][1] = cbuf(g, GPU_DTYPE_F32, N * DIM, NULL);
		b[v][2] = cbuf(g, GPU_DTYPE_F32, N * DIM, NULL);
		b[v][3] = cbuf(g, GPU_DTYPE_F32, N * H * HD, NULL);
		b[v][4] = cbuf(g, GPU_DTYPE_F32, N * H * HD, q0);
		b[v][5] = cbuf(g, GPU_DTYPE_F32, N * HK * HD, NULL);
		b[v][6] = cbuf(g, GPU_DTYPE_F32, N * HK * HD, NULL);
		b[v][7] = cbuf(g, GPU_DTYPE_F32, pool_n, kp);
		b[v][8] = cbuf(g, GPU_DTYPE_F32, pool_n, vp);
		b[v][9] = cbuf(g, GPU_DTYPE_I32, N, seq);
		b[v][10] = cbuf(g, GPU_DTYPE_I32, N, pos);
		b[v][11] = cbuf(g, GPU_DTYPE_I32, NS * MP, pt);
		b[v][12] = cbuf(g, GPU_DTYPE_I32, N, pos);
		b[v][13] = cbuf(g, GPU_DTYPE_F32, 64, invf);
		b[v][14] = cbuf(g, GPU_DTYPE_F32, DIM, nwv);
		b[v][15] = NULL;
		pool[v] = (struct gpu_kv_pool){ b[v][7], b[v][8], npg, PS, HK, HD, 0, 0, NULL, NULL };
		kb[v] = (struct gpu_kv_batch){ N, b[v][9], b[v][10], b[v][11], NS, MP,
					       false };
		parts[v][0] = (struct gpu_exl3_part){ b[v][4], lq.w, H * HD };
		parts[v][1] = (struct gpu_exl3_part){ b[v][5], lk.w, HK * HD };
		parts[v][2] = (struct gpu_exl3_part){ b[v][6], lv.w, HK * HD };
		rk[v] = (struct gpu_rope_kv){ b[v][4], b[v][5], b[v][6], H, b[v][12],
					      b[v][13], &rp, &pool[v], &kb[v] };
		aa[v] = (struct gpu_attention_args){ b[v][3], b[v][4], &pool[v], &kb[v],
						     H, 1.0f / sqrtf((float)HD), 0 };
	}
	memset(&r, 0, sizeof r);
	r.x = b[0][0];
	r.xn = b[0][1];
	r.o = b[0][2];
	r.a = b[0][3];
	r.w = lo.w;
	r.k_in = H * HD;
	r.dim = DIM;
	r.norm_w = b[0][14];
	r.eps = 1e-5f;
	r.next = parts[0];
	r.n_next = 3;
	r.att = &aa[0];
	r.rope_kv = &rk[0];
	/* refusals first: nothing may change */
	{
		struct gpu_exl3_residual bad = r;
		struct gpu_attention_args ba = aa[0];
		struct gpu_rope_kv br = rk[0];
		struct gpu_kv_batch bk = kb[0];

		ba.out = b[0][2]; /* not a */
		bad.att = &ba;
		ck_assert_int_eq(gpu_exl3_residual(g, &bad, N, &d), GPU_E_INVALID);
		bad = r;
		bad.next = NULL;
		bad.n_next = 0;
		ck_assert_int_eq(gpu_exl3_residual(g, &bad, N, &d), GPU_E_INVALID);
		bk.n_rows = N - 1;
		br.b = &bk;
		bad = r;
		bad.rope_kv = &br;
		ck_assert_int_eq(gpu_exl3_residual(g, &bad, N, &d), GPU_E_INVALID);
		br = rk[0];
		br.n_head = H / 2; /* q's columns are not its heads */
		ck_assert_int_eq(gpu_exl3_residual(g, &bad, N, &d), GPU_E_INVALID);
		ba = aa[0];
		ba.n_head = H / 2; /* nor the attention's */
		bad = r;
		bad.att = &ba;
		ck_assert_int_eq(gpu_exl3_residual(g, &bad, N, &d), GPU_E_INVALID);
		ck_assert(cbits_equal(b[0][0], b[1][0], N * DIM));
		ck_assert(cbits_equal(b[0][7], b[1][7], pool_n));
	}
	ck_assert_msg(gpu_exl3_residual(g, &r, N, &d) == 0, "%s", d.msg);
	/* the sequence */
	ck_assert_int_eq(gpu_attention(g, b[1][3], b[1][4], &pool[1], &kb[1], H,
				       aa[1].scale, 0, &d), 0);
	ck_assert_int_eq(gpu_exl3_matmul(g, b[1][2], b[1][3], lo.w, N, H * HD, DIM,
					 &d), 0);
	ck_assert_int_eq(gpu_add_rmsnorm(g, b[1][0], b[1][1], b[1][2], b[1][14], N,
					 DIM, 1e-5f, &d), 0);
	ck_assert_int_eq(gpu_exl3_matmul_multi(g, b[1][1], N, DIM, parts[1], 3, &d),
			 0);
	ck_assert_int_eq(gpu_rope_kv_store(g, b[1][4], b[1][5], b[1][6], H, b[1][12],
					   b[1][13], &rp, &pool[1], &kb[1], &d), 0);
	{
		static const char *const nm[9] = { "x", "xn", "o", "att", "q", "k",
						   "v", "K pool", "V pool" };
		const size_t cnt[9] = { N * DIM, N * DIM, N * DIM, N * H * HD,
					N * H * HD, N * HK * HD, N * HK * HD, pool_n,
					pool_n };

		for (j = 0; j < 9; j++)
			ck_assert_msg(cbits_equal(b[0][j], b[1][j], cnt[j]),
				      "residual with att and rope_kv: %s differs "
				      "from the sequence of ops", nm[j]);
	}
	{
		/* and the op did something: q replaced, the rows' slots of
		 * the K pool written */
		float *qq = malloc(N * H * HD * 4), *kk = malloc(pool_n * 4);

		ck_assert(qq && kk);
		ck_assert_int_eq(gpu_buf_read(b[0][4], 0, qq, N * H * HD, NULL), 0);
		ck_assert_int_eq(gpu_buf_read(b[0][7], 0, kk, pool_n, NULL), 0);
		ck_assert(memcmp(qq, q0, N * H * HD * 4) != 0);
		ck_assert(memcmp(kk, kp, pool_n * 4) != 0);
		free(qq);
		free(kk);
	}
	for (v = 0; v < 2; v++)
		for (j = 0; j < 15; j++)
			gpu_buf_free(b[v][j]);
	gpu_exl3_weight_free(lo.w);
	gpu_exl3_weight_free(lq.w);
	gpu_exl3_weight_free(lk.w);
	gpu_exl3_weight_free(lv.w);
	free(lo.W);
	free(lq.W);
	free(lk.W);
	free(lv.W);
	free(x0);
	free(q0);
	free(kp);
	free(vp);
	gpu_close(g);
}
END_TEST

Suite *exl3_suite(void)
{
	Suite *s = suite_create("exl3");
	TCase *tc = tcase_create("exl3");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_codebook_values);
	tcase_add_loop_test(tc, test_tiles_bit_exact, 0, 24);
	tcase_add_test(tc, test_fast_decode_random);
	tcase_add_loop_test(tc, test_reconstruct, 0, 24);
	tcase_add_loop_test(tc, test_linear, 0, 2);
	tcase_add_test(tc, test_linear_large);
	tcase_add_test(tc, test_validation);
	tcase_add_test(tc, test_moe_experts);
	tcase_add_test(tc, test_residual_att_rope);
	suite_add_tcase(s, tc);
	return s;
}
