/* tests/gpu/test_kvq.c — the quantized KV cache (gpu.h, struct
 * gpu_kv_pool with k_bits / v_bits) on the CPU backend.
 *
 * The reference is ExLlamaV3's scheme as ../shared/docs/exl3-format.md
 * 6.2-6.3 states it, transcribed here on its own terms and not from
 * gpu/kvq.c: the rotation is a product with the Hadamard matrix built from
 * its definition (H[i][j] = (-1)^popcount(i & j)) in double precision, the
 * codes come from the formula, and the planes from the layout rule (plane
 * widths 8, 4, 2, 1 of bits' binary form, widest = most significant
 * first; code j's w bits at bit j w of its plane).  Then the ops: a pool
 * written by gpu_kv_store / gpu_rope_kv_store and read by gpu_attention
 * must give attention over the read-back values, and bad pools are
 * refused.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "testutil.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* [-1, 1) */
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int hsign(unsigned i, unsigned j)
{
	return __builtin_popcount(i & j) & 1 ? -1 : 1;
}

/* The spec's quantizer: codes[32] and scale (f16 bits). */
static void ref_codes(const float *x, unsigned bits, unsigned *codes,
		      uint16_t *scale)
{
	const double m = (double)(1u << (bits - 1));
	double r[32], mx = 0.0, s;
	unsigned i, j;

	for (i = 0; i < 32; i++) {
		r[i] = 0.0;
		for (j = 0; j < 32; j++)
			r[i] += hsign(i, j) * (double)x[j];
		r[i] /= sqrt(32.0);
		mx = fabs(r[i]) > mx ? fabs(r[i]) : mx;
	}
	s = mx + 1e-10;
	*scale = test_to_f16((float)(s < 65504.0 ? s : 65504.0));
	s = test_from_f16(*scale);
	for (i = 0; i < 32; i++) {
		double c = floor(r[i] / s * m + m);

		codes[i] = c < 0 ? 0 : c > 2 * m - 1 ? (unsigned)(2 * m - 1) : (unsigned)c;
	}
}

/* The spec's layout, read: codes of a group's `bits` words. */
static void ref_unpack(const uint32_t *words, unsigned bits, unsigned *codes)
{
	static const unsigned widths[4] = { 8, 4, 2, 1 };
	unsigned k, j, off = 0;

	memset(codes, 0, 32 * sizeof *codes);
	for (k = 0; k < 4; k++) {
		const unsigned w = widths[k];

		if (!(bits & w))
			continue;
		for (j = 0; j < 32; j++) {
			const unsigned bit = j * w;
			const unsigned part = (words[off + bit / 32] >> (bit % 32)) &
					      ((1u << w) - 1);

			codes[j] = (codes[j] << w) | part;
		}
		off += w;
	}
}

/* The spec's read-back: x' = H ((c - m + 0.5) s / m) / sqrt(32). */
static void ref_values(const unsigned *codes, uint16_t scale, unsigned bits,
		       double *x)
{
	const double m = (double)(1u << (bits - 1)), s = test_from_f16(scale);
	unsigned i, j;

	for (i = 0; i < 32; i++) {
		x[i] = 0.0;
		for (j = 0; j < 32; j++)
			x[i] += hsign(i, j) * ((double)codes[j] - m + 0.5) * s / m;
		x[i] /= sqrt(32.0);
	}
}

/* A group of test values: Gaussian-ish, sometimes with an outlier or all
 * zero, or huge (past f16's range after the rotation). */
static void make_group(float *x, int kind)
{
	unsigned i;

	for (i = 0; i < 32; i++)
		x[i] = kind == 1 ? 0.0f :
		       (frand() + frand() + frand()) * (kind == 2 ? 3e5f : 1.0f);
	if (kind == 3)
		x[(unsigned)(frand() * 16 + 16)] = 40.0f;
}

START_TEST(test_group_vs_spec)
{
	unsigned bits;

	for (bits = GPU_KVQ_MIN_BITS; bits <= GPU_KVQ_MAX_BITS; bits++) {
		size_t n = 0, exact = 0;
		int t;

		for (t = 0; t < 400; t++) {
			float x[32], y[32];
			uint32_t words[8];
			unsigned want[32], got[32], i;
			uint16_t s_ref, s;
			double xr[32], bound = 0.0, err = 0.0;
			const int kind = t % 50 == 7 ? 1 : t % 50 == 9 ? 2 : t % 5 == 3 ? 3 : 0;

			make_group(x, kind);
			memset(words, 0xa5, sizeof words); /* every bit written */
			gpu_kvq_quantize(x, bits, words, &s);
			ref_codes(x, bits, want, &s_ref);
			/* the scale: f16 of the same max up to float rounding */
			ck_assert_msg(abs((int)s - (int)s_ref) <= 1,
				      "bits %u group %d: scale %04x, spec %04x", bits,
				      t, s, s_ref);
			ref_unpack(words, bits, got);
			for (i = 0; i < 32; i++) {
				ck_assert_msg(abs((int)got[i] - (int)want[i]) <= 1,
					      "bits %u group %d value %u: code %u, spec %u",
					      bits, t, i, got[i], want[i]);
				exact += got[i] == want[i];
				n++;
			}
			/* read back: the spec's values of OUR codes and scale */
			gpu_kvq_dequantize(words, s, bits, y);
			ref_values(got, s, bits, xr);
			for (i = 0; i < 32; i++)
				ck_assert_msg(fabs((double)y[i] - xr[i]) <=
						      1e-5 * test_from_f16(s) + 1e-30,
					      "bits %u group %d value %u: %g, spec %g",
					      bits, t, i, (double)y[i], xr[i]);
			/* the rotation is orthonormal and each rotated value
			 * is within half a step (s / 2m) of its code's centre
			 * (unless f16 rounded the scale below the max): the
			 * error's L2 norm is at most sqrt(32) s / 2m */
			if (kind != 2) {
				for (i = 0; i < 32; i++)
					err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
				bound = sqrt(32.0) * test_from_f16(s) / (double)(1u << bits) *
					(1.0 + 2e-3);
				ck_assert_msg(sqrt(err) <= bound + 1e-7,
					      "bits %u group %d: error %g > bound %g", bits,
					      t, sqrt(err), bound);
			}
		}
		/* the float butterflies may cross a code boundary the double
		 * product does not, rarely */
		ck_assert_msg(exact >= n - n / 200, "bits %u: %zu of %zu codes exact",
			      bits, exact, n);
	}
}
END_TEST

/* A small paged layout: 2 sequences over 9 pages of 4, 2 kv heads of 64,
 * 6 query heads. */
enum { PS = 4, NP = 9, HKV = 2, H = 6, HD = 64, MAXP = 4, N = 7 };

static struct gpu_buf *buf_new(struct gpu *g, enum gpu_dtype t, size_t n,
			       const void *src)
{
	struct gpu_buf *b;

	ck_assert_int_eq(gpu_buf_new(g, t, n, &b, NULL), 0);
	if (src)
		ck_assert_int_eq(gpu_buf_write(b, 0, src, n, NULL), 0);
	else
		ck_assert_int_eq(gpu_buf_zero(b, NULL), 0);
	return b;
}

static void *read_all(const struct gpu_buf *b)
{
	void *p = malloc(gpu_buf_bytes(b));

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(gpu_buf_read(b, 0, p, gpu_buf_n_elems(b), NULL), 0);
	return p;
}

static void check_attention(unsigned kb, unsigned vb, int rope)
{
	struct gpu_params gp = gpu_default_params();
	struct gpu *g;
	/* seq 0: pages 5 3 8 -, seq 1: 0 6 - -; rows attend positions
	 * 0..pos of their sequence: every such position is stored below */
	int32_t pt[2 * MAXP] = { 5, 3, 8, -1, 0, 6, -1, -1 };
	const size_t ng = HKV * HD / 32, slots = NP * PS;
	int32_t rseq[2 * 12], rpos[2 * 12], pos[2 * 12];
	float *k, *v, *q, *kr, *vr, *o1, *o2, *o3, inv[HD / 2];
	struct gpu_buf *bk, *bv, *bq, *brs, *brp, *bpt, *bp, *bi;
	struct gpu_buf *qk, *qv, *qks, *qvs, *fk, *fv, *fk0, *fv0, *out;
	struct gpu_kv_pool pq, pf, pf0;
	struct gpu_kv_batch b;
	struct gpu_rope rp = { HD, 1.0f, NULL, NULL, NULL, 0.0f };
	const size_t nr = 2 * 12;
	double num = 0, den = 0, num0 = 0;
	size_t i, s, j;
	struct diag d;

	gp.n_threads = 2;
	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, &gp, &g, NULL), 0);
	/* rows: positions 0..11 of sequence 0, 0..7 (and 4 more repeats
	 * re-storing 4..7) of sequence 1 */
	for (i = 0; i < nr; i++) {
		rseq[i] = i < 12 ? 0 : 1;
		rpos[i] = i < 12 ? (int32_t)i : (int32_t)((i - 12) % 8);
		pos[i] = rpos[i] * 3 + 1;
	}
	k = malloc(nr * HKV * HD * sizeof *k);
	v = malloc(nr * HKV * HD * sizeof *v);
	q = malloc(nr * H * HD * sizeof *q);
	for (i = 0; i < nr * HKV * HD; i++) {
		k[i] = 2.0f * frand() + (i % HD == 3 ? 6.0f : 0.0f); /* a hot dim */
		v[i] = frand();
	}
	for (i = 0; i < nr * H * HD; i++)
		q[i] = frand();
	for (i = 0; i < HD / 2; i++)
		inv[i] = (float)pow(10000.0, -2.0 * (double)i / HD);
	bk = buf_new(g, GPU_DTYPE_F32, nr * HKV * HD, k);
	bv = buf_new(g, GPU_DTYPE_F32, nr * HKV * HD, v);
	bq = buf_new(g, GPU_DTYPE_F32, nr * H * HD, q);
	brs = buf_new(g, GPU_DTYPE_I32, nr, rseq);
	brp = buf_new(g, GPU_DTYPE_I32, nr, rpos);
	bpt = buf_new(g, GPU_DTYPE_I32, 2 * MAXP, pt);
	bp = buf_new(g, GPU_DTYPE_I32, nr, pos);
	bi = buf_new(g, GPU_DTYPE_F32, HD / 2, inv);
	qk = buf_new(g, GPU_DTYPE_I32, slots * ng * kb, NULL);
	qv = buf_new(g, GPU_DTYPE_I32, slots * ng * vb, NULL);
	qks = buf_new(g, GPU_DTYPE_F16, slots * ng, NULL);
	qvs = buf_new(g, GPU_DTYPE_F16, slots * ng, NULL);
	fk0 = buf_new(g, GPU_DTYPE_F32, slots * HKV * HD, NULL);
	fv0 = buf_new(g, GPU_DTYPE_F32, slots * HKV * HD, NULL);
	out = buf_new(g, GPU_DTYPE_F32, nr * H * HD, NULL);
	pq = (struct gpu_kv_pool){ qk, qv, NP, PS, HKV, HD, kb, vb, qks, qvs };
	pf0 = (struct gpu_kv_pool){ fk0, fv0, NP, PS, HKV, HD, 0, 0, NULL, NULL };
	memset(&b, 0, sizeof b);
	b.n_rows = nr;
	b.row_seq = brs;
	b.row_pos = brp;
	b.page_table = bpt;
	b.n_seq = 2;
	b.max_pages = MAXP;
	if (rope) {
		struct gpu_buf *q2 = buf_new(g, GPU_DTYPE_F32, nr * H * HD, q);
		struct gpu_buf *k2 = buf_new(g, GPU_DTYPE_F32, nr * HKV * HD, k);

		ck_assert_int_eq(gpu_rope_kv_store(g, bq, bk, bv, H, bp, bi, &rp, &pq,
						   &b, &d), 0);
		ck_assert_int_eq(gpu_rope(g, q2, nr, H, HD, bp, bi, &rp, NULL), 0);
		ck_assert_int_eq(gpu_rope(g, k2, nr, HKV, HD, bp, bi, &rp, NULL), 0);
		ck_assert_int_eq(gpu_kv_store(g, &pf0, &b, k2, bv, NULL), 0);
		gpu_buf_free(q2);
		gpu_buf_free(k2);
	} else {
		ck_assert_int_eq(gpu_kv_store(g, &pq, &b, bk, bv, &d), 0);
		ck_assert_int_eq(gpu_kv_store(g, &pf0, &b, bk, bv, NULL), 0);
	}
	/* the f32 pool of the spec's read-back values of the stored codes */
	{
		uint32_t *wk = read_all(qk), *wv = read_all(qv);
		uint16_t *sk = read_all(qks), *sv = read_all(qvs);

		kr = calloc(slots * HKV * HD, sizeof *kr);
		vr = calloc(slots * HKV * HD, sizeof *vr);
		for (s = 0; s < slots; s++)
			for (j = 0; j < ng; j++) {
				unsigned c[32], e;
				double x[32];

				ref_unpack(wk + (s * ng + j) * kb, kb, c);
				ref_values(c, sk[s * ng + j], kb, x);
				for (e = 0; e < 32; e++)
					kr[s * HKV * HD + j * 32 + e] = (float)x[e];
				ref_unpack(wv + (s * ng + j) * vb, vb, c);
				ref_values(c, sv[s * ng + j], vb, x);
				for (e = 0; e < 32; e++)
					vr[s * HKV * HD + j * 32 + e] = (float)x[e];
			}
		free(wk);
		free(wv);
		free(sk);
		free(sv);
	}
	fk = buf_new(g, GPU_DTYPE_F32, slots * HKV * HD, kr);
	fv = buf_new(g, GPU_DTYPE_F32, slots * HKV * HD, vr);
	pf = (struct gpu_kv_pool){ fk, fv, NP, PS, HKV, HD, 0, 0, NULL, NULL };
	/* attention on the quantized pool == on the read-back values; and
	 * close to the unquantized values' (relative L2, by bits) */
	ck_assert_int_eq(gpu_attention(g, out, bq, &pq, &b, H, 0.125f, 0, &d), 0);
	o1 = read_all(out);
	ck_assert_int_eq(gpu_attention(g, out, bq, &pf, &b, H, 0.125f, 0, &d), 0);
	o2 = read_all(out);
	ck_assert_int_eq(gpu_attention(g, out, bq, &pf0, &b, H, 0.125f, 0, &d), 0);
	o3 = read_all(out);
	for (i = 0; i < nr * H * HD; i++) {
		ck_assert_msg(fabsf(o1[i] - o2[i]) <= 2e-5f,
			      "k%u v%u: out[%zu] %g, over the read-back values %g",
			      kb, vb, i, (double)o1[i], (double)o2[i]);
		num += ((double)o1[i] - o3[i]) * ((double)o1[i] - o3[i]);
		den += (double)o3[i] * o3[i];
		num0 += (double)o3[i] * o3[i];
	}
	/* a value's error: uniform over a step s / m, s ~ 2.5 sigma (the
	 * max of 32 rotated values), RMS ~ 0.72 sigma / m: 0.36 at 2 bits,
	 * 0.0056 at 8; the output's stays below about twice the worse
	 * half's */
	{
		const unsigned lo = kb < vb ? kb : vb;
		const double lim = 3.0 / (double)(1u << lo);

		if (getenv("TERN_TEST_VERBOSE"))
			fprintf(stderr, "kvq k%u v%u rope %d: relative L2 %.5f\n", kb,
				vb, rope, sqrt(num / den));

		ck_assert_msg(sqrt(num / den) < lim,
			      "k%u v%u: attention off the f32 cache's by %g (limit %g)",
			      kb, vb, sqrt(num / den), lim);
	}
	(void)num0;
	free(o1);
	free(o2);
	free(o3);
	free(kr);
	free(vr);
	free(k);
	free(v);
	free(q);
	gpu_buf_free(bk);
	gpu_buf_free(bv);
	gpu_buf_free(bq);
	gpu_buf_free(brs);
	gpu_buf_free(brp);
	gpu_buf_free(bpt);
	gpu_buf_free(bp);
	gpu_buf_free(bi);
	gpu_buf_free(qk);
	gpu_buf_free(qv);
	gpu_buf_free(qks);
	gpu_buf_free(qvs);
	gpu_buf_free(fk);
	gpu_buf_free(fv);
	gpu_buf_free(fk0);
	gpu_buf_free(fv0);
	gpu_buf_free(out);
	gpu_close(g);
}

/* A group holding a NaN reads back as zeros (gpu.h): the NaN does not
 * spread into attention through a garbage scale. */
START_TEST(test_group_nan)
{
	unsigned bits;

	for (bits = GPU_KVQ_MIN_BITS; bits <= GPU_KVQ_MAX_BITS; bits++) {
		float x[32], y[32];
		uint32_t words[8];
		uint16_t s;
		unsigned i;

		make_group(x, 0);
		x[bits] = NAN;
		gpu_kvq_quantize(x, bits, words, &s);
		gpu_kvq_dequantize(words, s, bits, y);
		for (i = 0; i < 32; i++)
			ck_assert_msg(y[i] == 0.0f, "bits %u: value %u %g after a NaN",
				      bits, i, (double)y[i]);
	}
}
END_TEST

START_TEST(test_pool_attention)
{
	static const unsigned kv[][2] = { { 8, 8 }, { 4, 4 }, { 6, 5 }, { 3, 2 },
					  { 2, 7 } };
	size_t i;

	for (i = 0; i < sizeof kv / sizeof *kv; i++) {
		check_attention(kv[i][0], kv[i][1], 0);
		check_attention(kv[i][0], kv[i][1], 1);
	}
}
END_TEST

START_TEST(test_pool_validation)
{
	struct gpu_params gp = gpu_default_params();
	struct gpu *g;
	int32_t pt[MAXP] = { 0, 1, 2, 3 }, zero = 0;
	float kvals[HKV * HD] = { 0 };
	struct gpu_buf *qk, *qv, *qks, *qvs, *bk, *brs, *bpt, *f16s;
	struct gpu_kv_pool p;
	struct gpu_kv_batch b;
	const size_t ng = HKV * HD / 32, slots = NP * PS;
	struct diag d;

	gp.n_threads = 1;
	ck_assert_int_eq(gpu_open(GPU_KIND_CPU, &gp, &g, NULL), 0);
	qk = buf_new(g, GPU_DTYPE_I32, slots * ng * 4, NULL);
	qv = buf_new(g, GPU_DTYPE_I32, slots * ng * 4, NULL);
	qks = buf_new(g, GPU_DTYPE_F16, slots * ng, NULL);
	qvs = buf_new(g, GPU_DTYPE_F16, slots * ng, NULL);
	f16s = buf_new(g, GPU_DTYPE_F16, slots * ng * 8, NULL);
	bk = buf_new(g, GPU_DTYPE_F32, HKV * HD, kvals);
	brs = buf_new(g, GPU_DTYPE_I32, 1, &zero);
	bpt = buf_new(g, GPU_DTYPE_I32, MAXP, pt);
	memset(&b, 0, sizeof b);
	b.n_rows = 1;
	b.row_seq = brs;
	b.row_pos = brs;
	b.page_table = bpt;
	b.n_seq = 1;
	b.max_pages = MAXP;
	p = (struct gpu_kv_pool){ qk, qv, NP, PS, HKV, HD, 4, 4, qks, qvs };
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), 0);
	/* bits out of range, one half plain */
	p.k_bits = 9;
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "9-bit keys"));
	p.k_bits = 0;
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	p.k_bits = 4;
	p.v_bits = 1;
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	/* more bits than the buffers hold */
	p.v_bits = 5;
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "V pool"));
	/* words of the wrong type, scales missing or of the wrong type */
	p = (struct gpu_kv_pool){ f16s, qv, NP, PS, HKV, HD, 4, 4, qks, qvs };
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	p = (struct gpu_kv_pool){ qk, qv, NP, PS, HKV, HD, 4, 4, NULL, qvs };
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	p = (struct gpu_kv_pool){ qk, qv, NP, PS, HKV, HD, 4, 4, qks, qk };
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "V scales"));
	/* head_dim not a multiple of 32 */
	p = (struct gpu_kv_pool){ qk, qv, NP, PS, 2 * HKV, HD / 2 - 16, 4, 4, qks, qvs };
	ck_assert_int_eq(gpu_kv_store(g, &p, &b, bk, bk, &d), GPU_E_INVALID);
	ck_assert_ptr_nonnull(strstr(d.msg, "multiple of 32"));
	gpu_buf_free(qk);
	gpu_buf_free(qv);
	gpu_buf_free(qks);
	gpu_buf_free(qvs);
	gpu_buf_free(f16s);
	gpu_buf_free(bk);
	gpu_buf_free(brs);
	gpu_buf_free(bpt);
	gpu_close(g);
}
END_TEST

Suite *kvq_suite(void)
{
	Suite *s = suite_create("kvq");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_group_vs_spec);
	tcase_add_test(tc, test_group_nan);
	tcase_add_test(tc, test_pool_attention);
	tcase_add_test(tc, test_pool_validation);
	suite_add_tcase(s, tc);
	return s;
}
