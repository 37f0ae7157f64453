/* gpu/exl3_quant.c — the EXL3 quantizer's numeric core (gpu/gpu.h,
 * "EXL3 quantizer" block): the tail-biting Viterbi trellis search of one
 * 16x16 tile, its bit packing, and the quantization of one linear layer
 * (incoherence processing, Hessian-aware LDLQ, global scale search), all
 * as docs/exl3-format.md §3.4 and §4.4-4.10 describe ExLlamaV3's
 * converter.  Host code on any backend: the Viterbi search, the Cholesky's
 * rows and the LDLQ feedback are spread over n_threads POSIX threads, and
 * the search runs on a backend that has one of its own (CUDA,
 * gpu/cuda/exl3_quant.cu) when the caller names it.
 *
 * Trellis search (§4.8).  A tile is a cyclic sequence of 256 values x_e
 * (tensor-core element order, §1.7).  Element e's 16-bit state s_e is a
 * shift register: s_e = ((s_{e-1} << K) | new K bits) & 0xFFFF, and its
 * value is the codebook's cb(s_e).  Viterbi runs over "edges", the low
 * 16-K bits o of a state (E = 2^(16-K) of them): the state s = (hi <<
 * (16-K)) | o has predecessor edge p = s >> K, so
 *   cost_e[o] = min over hi in [0, 2^K) of cost_{e-1}[p(hi, o)]
 *               + (cb(s) - x_e)^2
 * and the best hi is found again on the way back (the host keeps every
 * step's cost row and recomputes it, xq_pick; the CUDA kernel stores it
 * per step).  The ring closes by QTIP's two passes:
 * pass 1 starts at element 128 unconstrained, goes round, and its best
 * path's edge before element 0 is b; pass 2 starts at element 0 with only
 * edge b allowed before it and ends at edge b, so s_0 >> K equals s_255's
 * low 16-K bits and the packed stream decodes to exactly these states.
 * Costs are f32 (ExLlamaV3 keeps them in f16: the same search, ties and
 * near-ties may resolve differently).
 *
 * Linear quantization (y = x W, W [k][n] input-major, both sides multiples
 * of 128):
 *   sv = sign_n * RMS_rows(W) / mean  (0 for zero columns), W1 = (W / sv) Hn
 *   su = sign_k * RMS_cols(W1) / -1.24371088, then su /= g (scale search)
 *   W_reg = Hk diag(1/su) W1           (~ i.i.d. at the codebook's scale)
 *   H_reg = Hk diag(su) (H + damp) diag(su) Hk   (the proxy loss of an error
 *           E in W_reg's basis: tr(E' H_reg E) up to the output rotation)
 *   H_reg = (L + I) D (L + I)'  (block LDL, 16x16 blocks)
 *   for 16-row blocks i from the last: Q_i = trellis(W_reg_i +
 *           sum_{j>i} L_ji' (W_reg_j - Q_j))                    (LDLQ)
 * stored as suh = f16(su), svh = f16(sv) and the packed states.  Unlike
 * ExLlamaV3, H_reg folds in the input scales, not only the signs (the
 * proxy loss then is the layer's true output error), and the random signs
 * come from splitmix64 seeded by the caller (torch's generator is not
 * reproduced: files differ bit-wise, not in kind).  Without H the blocks
 * are quantized independently (§4.9's fallback).
 *
 * Invariants: every public function validates its arguments before
 * touching memory; nothing here keeps state between calls (the codebook
 * tables are gpu_exl3_lut's, immutable).
 */
#include "config.h"

#include "gpu/exl3_ref.h"
#include "gpu/half.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* §3.4: the historical codebook RMS the input scales are divided by. */
#define XQ_CB_DIV (-1.24371088)

/* ---- a tiny parallel-for ------------------------------------------------ */

typedef void (*xq_fn)(void *ctx, size_t i, void *scratch);

struct xq_par {
	xq_fn fn;
	void *ctx;
	size_t n;
	atomic_size_t next;
	size_t scratch_bytes;
	atomic_int failed;
};

static void xq_run_items(struct xq_par *p)
{
	void *scratch = NULL;
	size_t i;

	if (p->scratch_bytes) {
		scratch = malloc(p->scratch_bytes);
		if (!scratch) {
			atomic_store(&p->failed, 1);
			return;
		}
	}
	while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
		p->fn(p->ctx, i, scratch);
	free(scratch);
}

static void *xq_thread(void *arg)
{
	xq_run_items(arg);
	return NULL;
}

static int xq_threads(int n_threads)
{
	long n = n_threads > 0 ? n_threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > 256 ? 256 : (int)n;
}

/* Run fn(ctx, i, scratch) for i in [0, n) on up to n_threads threads
 * (the caller is one), each with its own SCRATCH_BYTES of scratch.
 * 0, or GPU_E_NOMEM when scratch could not be had (some items may then
 * not have run). */
static int xq_parallel(size_t n, int n_threads, size_t scratch_bytes,
		       xq_fn fn, void *ctx, struct diag *d)
{
	struct xq_par p = { .fn = fn, .ctx = ctx, .n = n,
			    .scratch_bytes = scratch_bytes };
	pthread_t th[256];
	int nt = xq_threads(n_threads), started = 0, t;

	atomic_init(&p.next, 0);
	atomic_init(&p.failed, 0);
	if ((size_t)nt > n)
		nt = n ? (int)n : 1;
	for (t = 1; t < nt; t++) {
		if (pthread_create(&th[started], NULL, xq_thread, &p) != 0)
			break;
		started++;
	}
	xq_run_items(&p);
	for (t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	if (atomic_load(&p.failed))
		return diag_fail(d, GPU_E_NOMEM,
				 "EXL3 quantizer: out of memory for %zu bytes of "
				 "search scratch", scratch_bytes);
	return 0;
}

/* ---- tile search ---------------------------------------------------------- */

/* A search keeps every step's cost row: 257 rows of E floats (plus 8 of
 * slack each, for the K <= 2 loads), 4 MB at K = 4, 32 MB at K = 1. */
static size_t xq_row_len(int bits)
{
	return ((size_t)1 << (16 - bits)) + 8;
}

static size_t xq_scratch_bytes(int bits)
{
	return 257 * xq_row_len(bits) * sizeof(float);
}

/* One step of the search for element value XE: for every out-edge o,
 * cn[o] = min over hi of fma(df, df, cp[p]) with df = lut[s] - xe, s = (hi
 * << (16-K)) | o and p = s >> K = hi * J + (o >> K), J = E >> K.  Only the
 * costs are kept; the backtrack finds the hi again (xq_pick), with the
 * same arithmetic.  Portable form. */
static void xq_step_c(const float *cp, float *cn, const float *lut, float xe,
		      int K)
{
	const int E = 1 << (16 - K), J = E >> K, NH = 1 << K;
	int o, hi;

	for (o = 0; o < E; o++)
		cn[o] = INFINITY;
	for (hi = 0; hi < NH; hi++) {
		const float *cph = cp + hi * J;
		const float *lv = lut + (size_t)hi * (size_t)E;

		for (o = 0; o < E; o++) {
			const float df = lv[o] - xe;
			const float v = fmaf(df, df, cph[o >> K]);

			cn[o] = v < cn[o] ? v : cn[o];
		}
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define XQ_HAVE_AVX2 1
/* The same step 32 out-edges at a time with AVX2 + FMA (four independent
 * min chains).  cp must be readable 8 floats past E (the K <= 2 path
 * loads 8 predecessor costs and spreads them over the lanes). */
__attribute__((target("avx2,fma"))) static void
xq_step_avx2(const float *cp, float *cn, const float *lut, float xe, int K)
{
	const int E = 1 << (16 - K), J = E >> K, NH = 1 << K;
	const __m256 vx = _mm256_set1_ps(xe);
	const __m256i spread = _mm256_srli_epi32(
		_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), K < 3 ? K : 0);
	int o0, hi, g;

	for (o0 = 0; o0 < E; o0 += 32) {
		__m256 best[4];

		for (g = 0; g < 4; g++)
			best[g] = _mm256_set1_ps(INFINITY);
		for (hi = 0; hi < NH; hi++) {
			const float *lv = lut + (size_t)hi * (size_t)E + (size_t)o0;
			const float *cph = cp + hi * J;

			for (g = 0; g < 4; g++) {
				const int og = o0 + 8 * g;
				const __m256 df = _mm256_sub_ps(_mm256_loadu_ps(lv + 8 * g), vx);
				__m256 c;

				if (K >= 3)
					c = _mm256_broadcast_ss(cph + (og >> K));
				else
					c = _mm256_permutevar8x32_ps(
						_mm256_loadu_ps(cph + (og >> K)), spread);
				/* min(v, best) keeps best on ties: the first hi */
				best[g] = _mm256_min_ps(_mm256_fmadd_ps(df, df, c), best[g]);
			}
		}
		for (g = 0; g < 4; g++)
			_mm256_storeu_ps(cn + o0 + 8 * g, best[g]);
	}
}

static int xq_avx2(void)
{
	static atomic_int have = -1;
	int h = atomic_load(&have);

	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		atomic_store(&have, h);
	}
	return h;
}
#endif

/* One Viterbi pass over the 256 elements start, start+1, ... (mod 256):
 * rows[0] holds the costs of the edges before the first element (0 or
 * +inf, set by the caller), rows[i + 1] gets the costs after step i. */
static void xq_forward(const float *x, const float *lut, int bits, int start,
		       float *rows)
{
	const size_t R = xq_row_len(bits);
	int i;

	for (i = 0; i < 256; i++) {
		const int e = (start + i) & 255;

#ifdef XQ_HAVE_AVX2
		if (xq_avx2())
			xq_step_avx2(rows + (size_t)i * R, rows + (size_t)(i + 1) * R,
				     lut, x[e], bits);
		else
#endif
			xq_step_c(rows + (size_t)i * R, rows + (size_t)(i + 1) * R, lut,
				  x[e], bits);
	}
}

/* The hi whose candidate gave out-edge O its cost at a step with cost row
 * CP before it and value XE: the first minimum, recomputed exactly as the
 * step computed it. */
static int xq_pick(const float *cp, const float *lut, float xe, int K, int o)
{
	const int E = 1 << (16 - K), J = E >> K, NH = 1 << K;
	float best = INFINITY;
	int hi, arg = 0;

	for (hi = 0; hi < NH; hi++) {
		const float df = lut[(size_t)hi * (size_t)E + (size_t)o] - xe;
		const float v = fmaf(df, df, cp[hi * J + (o >> K)]);

		if (v < best) {
			best = v;
			arg = hi;
		}
	}
	return arg;
}

/* Walk back from out-edge END of element start+255 to element start,
 * writing each element's state; returns element start's predecessor edge. */
static int xq_backtrack(const float *x, const float *lut, int bits, int start,
			int end, const float *rows, uint16_t *states)
{
	const int K = bits;
	const size_t R = xq_row_len(bits);
	int o = end, i;

	for (i = 255; i >= 0; i--) {
		const int e = (start + i) & 255;
		const int hi = xq_pick(rows + (size_t)i * R, lut, x[e], K, o);
		const uint32_t s = ((uint32_t)hi << (16 - K)) | (uint32_t)o;

		states[e] = (uint16_t)s;
		o = (int)(s >> K);
	}
	return o;
}

/* The two-pass tail-biting search of one tile (header comment). */
static void xq_search(const float *x, const float *lut, int bits,
		      uint16_t *states, float *values, void *scratch)
{
	const int E = 1 << (16 - bits);
	const size_t R = xq_row_len(bits);
	float *rows = scratch, *last = rows + 256 * R;
	int o, best_o = 0, b, e;

	/* slack past E in every row: finite, never chosen */
	for (e = 0; e < 257; e++)
		for (o = E; o < E + 8; o++)
			rows[(size_t)e * R + (size_t)o] = 0.0f;
	/* pass 1: rotated start, free boundary */
	for (o = 0; o < E; o++)
		rows[o] = 0.0f;
	xq_forward(x, lut, bits, 128, rows);
	for (o = 1; o < E; o++)
		if (last[o] < last[best_o])
			best_o = o;
	xq_backtrack(x, lut, bits, 128, best_o, rows, states);
	b = states[0] >> bits;
	/* pass 2: from element 0, the ring closed on edge b */
	for (o = 0; o < E; o++)
		rows[o] = o == b ? 0.0f : INFINITY;
	xq_forward(x, lut, bits, 0, rows);
	xq_backtrack(x, lut, bits, 0, b, rows, states);
	if (values)
		for (e = 0; e < 256; e++)
			values[e] = lut[states[e]];
}

/* gpu_exl3_tile_order's row of element E (its column into *c). */
static int xq_row_of(int e, int *r, int *c)
{
	gpu_exl3_tile_order(e, r, c);
	return *r;
}

struct xq_tiles {
	const float *x;
	const float *lut;
	int bits;
	uint16_t *states;
	float *values;
};

static void xq_tile_job(void *ctx, size_t i, void *scratch)
{
	const struct xq_tiles *t = ctx;

	xq_search(t->x + 256 * i, t->lut, t->bits, t->states + 256 * i,
		  t->values ? t->values + 256 * i : NULL, scratch);
}

static int xq_check_cb(int bits, enum gpu_exl3_cb cb, const char *who,
		       struct diag *d)
{
	if (bits < 1 || bits > 8)
		return diag_fail(d, GPU_E_INVALID, "%s: %d bits per weight (1..8)",
				 who, bits);
	if ((int)cb < 0 || (int)cb > 2)
		return diag_fail(d, GPU_E_INVALID, "%s: codebook %d", who, (int)cb);
	return 0;
}

int gpu_exl3_encode_tiles(struct gpu *g, const float *x, size_t n_tiles,
			  int bits, enum gpu_exl3_cb cb, int n_threads,
			  uint16_t *states, float *values, struct diag *d)
{
	struct xq_tiles t = { x, NULL, bits, states, values };
	int rc = xq_check_cb(bits, cb, "gpu_exl3_encode_tiles", d);
	size_t i;

	if (rc < 0)
		return rc;
	if (n_tiles && (!x || !states))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_encode_tiles: NULL input or output");
	if (n_tiles == 0)
		return 0;
	if (n_tiles > ((size_t)1 << 30))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_encode_tiles: %zu tiles (at most 2^30)", n_tiles);
	for (i = 0; i < n_tiles * 256; i++)
		if (!isfinite(x[i]))
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_encode_tiles: value %zu of tile %zu is "
					 "not finite", i % 256, i / 256);
	t.lut = gpu_exl3_lut((int)cb);
	if (g && g->poisoned)
		return diag_fail(d, GPU_E_DEVICE,
				 "backend unusable after an earlier device error");
	if (g && g->be->exl3_encode) {
		rc = g->be->exl3_encode(g, x, n_tiles, bits, (int)cb, states, d);
		if (rc == 0) {
			if (values)
				for (i = 0; i < n_tiles * 256; i++)
					values[i] = t.lut[states[i]];
			return 0;
		}
		if (rc != GPU_E_UNSUPPORTED) {
			if (rc == GPU_E_DEVICE)
				g->poisoned = 1;
			return rc;
		}
		diag_clear(d);
	}
	return xq_parallel(n_tiles, n_threads, xq_scratch_bytes(bits), xq_tile_job,
			   &t, d);
}

int gpu_exl3_pack_tile(const uint16_t *states, int bits, uint16_t *t16)
{
	uint32_t w[64];
	const int nw = 8 * bits;
	int e, i, pos = 0;

	if (bits < 1 || bits > 8 || !states || !t16)
		return GPU_E_INVALID;
	memset(w, 0, sizeof w);
	for (e = 0; e < 256; e++) {
		const uint32_t v = states[e] & ((1u << bits) - 1u);
		int b;

		for (b = bits - 1; b >= 0; b--, pos++)
			if ((v >> b) & 1u)
				w[pos >> 5] |= 1u << (31 - (pos & 31));
	}
	for (i = 0; i < nw; i++) {
		t16[2 * i] = (uint16_t)(w[i] & 0xFFFFu);
		t16[2 * i + 1] = (uint16_t)(w[i] >> 16);
	}
	return 0;
}

void gpu_exl3_tile_order(int e, int *r, int *c)
{
	const int l = e >> 3, j = e & 7;

	*r = 2 * (l & 3) + (j & 1) + 8 * ((j >> 1) & 1);
	*c = (l >> 2) + 8 * ((j >> 2) & 1);
}

/* ---- linear quantization -------------------------------------------------- */

static uint64_t xq_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static float xq_sign(uint64_t *s)
{
	return (xq_splitmix(s) >> 63) ? -1.0f : 1.0f;
}

/* Rotate every row's 128-blocks: W[a][.] <- W[a][.] Hn (W [k][n]). */
static void xq_rot_rows(float *w, size_t k, size_t n)
{
	size_t a, b;

	for (a = 0; a < k; a++)
		for (b = 0; b < n; b += 128)
			gpu_exl3_fwht128(w + a * n + b);
}

/* Rotate every column's 128-blocks: W <- Hk W. */
static void xq_rot_cols(float *w, size_t k, size_t n)
{
	float v[128];
	size_t a, b, i;

	for (a = 0; a < k; a += 128)
		for (b = 0; b < n; b++) {
			for (i = 0; i < 128; i++)
				v[i] = w[(a + i) * n + b];
			gpu_exl3_fwht128(v);
			for (i = 0; i < 128; i++)
				w[(a + i) * n + b] = v[i];
		}
}

/* The 256 values of tile (tk, tn) of W [.][n] in element order. */
static void xq_gather_tile(const float *w, size_t n, size_t tk, size_t tn,
			   float *dst)
{
	int e, r, c;

	for (e = 0; e < 256; e++) {
		gpu_exl3_tile_order(e, &r, &c);
		dst[e] = w[(tk * 16 + (size_t)r) * n + tn * 16 + (size_t)c];
	}
}

/* Summed squared error of quantizing s * T, divided by s, against the
 * sampled tiles T (tile-major, 256 each). */
static int xq_scale_mse(struct gpu *g, const float *tiles, size_t nt, float s,
			int bits,
			enum gpu_exl3_cb cb, int n_threads, float *buf,
			uint16_t *st, double *out, struct diag *d)
{
	double err = 0.0;
	size_t i;
	int rc;

	for (i = 0; i < nt * 256; i++)
		buf[i] = tiles[i] * s;
	rc = gpu_exl3_encode_tiles(g, buf, nt, bits, cb, n_threads, st, buf, d);
	if (rc < 0)
		return rc;
	for (i = 0; i < nt * 256; i++) {
		const double df = (double)buf[i] / s - tiles[i];

		err += df * df;
	}
	*out = err;
	return 0;
}

/* §4.7's global scale search, on fewer tiles: 4 to 48 tiles along a wrapped
 * diagonal of the tile grid (a sixteenth of the tiles) plus the 8 (2 in
 * matrices of fewer than 256 tiles) of highest and of lowest RMS; a
 * coarse grid 0.1, 0.3, .., 1.9, then 5 points 0.075 apart around its best
 * and a parabola through the best three.  *gs gets the factor W_reg is
 * multiplied by.  G: the backend searching the tiles (NULL: host). */
static int xq_scale_search(struct gpu *g, const float *w, size_t k, size_t n,
			   int bits,
			   enum gpu_exl3_cb cb, int n_threads, float *gs,
			   struct diag *d)
{
	const size_t TK = k / 16, TN = n / 16, nt_all = TK * TN;
	size_t pick[64], np = 0, i, j;
	float *tiles = NULL, *buf = NULL;
	uint16_t *st = NULL;
	double best = INFINITY, mse[5];
	float bs = 1.0f, s;
	int rc = 0, bi;

	/* the diagonal: up to 48 tiles, fewer for small matrices (a sixteenth
	 * of them, at least 4: the search then costs about as much as the
	 * quantization or less) */
	{
		const size_t nd = TK > TN ? TK : TN;
		size_t want = nt_all / 16 < 4 ? 4 : nt_all / 16;
		size_t step;

		want = want > 48 ? 48 : want;
		step = nd > want ? nd / want : 1;
		for (i = 0; i < nd && np < want; i += step)
			pick[np++] = (i % TK) * TN + (i * 7 + 3) % TN;
	}
	/* the extremes of tile RMS: the 8 largest and 8 smallest */
	{
		double *ms = malloc(nt_all * sizeof *ms);
		int pass, m;

		if (!ms)
			return diag_fail(d, GPU_E_NOMEM, "EXL3 scale search: out of memory");
		for (i = 0; i < nt_all; i++) {
			const size_t tk = i / TN, tn = i % TN;
			double ss = 0.0;
			int r, c;

			for (r = 0; r < 16; r++)
				for (c = 0; c < 16; c++) {
					const double v = w[(tk * 16 + (size_t)r) * n + tn * 16 + (size_t)c];

					ss += v * v;
				}
			ms[i] = ss;
		}
		const int n_ext = nt_all >= 256 ? 8 : 2;

		for (pass = 0; pass < 2; pass++)
			for (m = 0; m < n_ext && (size_t)m < nt_all; m++) {
				size_t best_i = SIZE_MAX;

				for (i = 0; i < nt_all; i++) {
					if (isnan(ms[i]))
						continue;
					if (best_i == SIZE_MAX ||
					    (pass == 0 ? ms[i] > ms[best_i] : ms[i] < ms[best_i]))
						best_i = i;
				}
				if (best_i == SIZE_MAX)
					break;
				pick[np++] = best_i;
				ms[best_i] = NAN; /* taken */
			}
		free(ms);
	}
	/* drop repeats */
	for (i = 0, j = 0; i < np; i++) {
		size_t m;

		for (m = 0; m < j && pick[m] != pick[i]; m++)
			;
		if (m == j)
			pick[j++] = pick[i];
	}
	np = j;
	tiles = malloc(np * 256 * sizeof *tiles);
	buf = malloc(np * 256 * sizeof *buf);
	st = malloc(np * 256 * sizeof *st);
	if (!tiles || !buf || !st) {
		rc = diag_fail(d, GPU_E_NOMEM, "EXL3 scale search: out of memory");
		goto out;
	}
	for (i = 0; i < np; i++)
		xq_gather_tile(w, n, pick[i] / TN, pick[i] % TN, tiles + 256 * i);
	/* coarse: every third sampled tile */
	{
		float *sub = malloc(np * 256 * sizeof *sub);
		size_t ns = 0;

		if (!sub) {
			rc = diag_fail(d, GPU_E_NOMEM, "EXL3 scale search: out of memory");
			goto out;
		}
		for (i = 0; i < np; i += 3)
			memcpy(sub + 256 * ns++, tiles + 256 * i, 256 * sizeof *sub);
		for (s = 0.1f; s < 2.0f; s += 0.2f) {
			double e;

			rc = xq_scale_mse(g, sub, ns, s, bits, cb, n_threads, buf, st, &e, d);
			if (rc < 0)
				break;
			if (e < best) {
				best = e;
				bs = s;
			}
		}
		free(sub);
		if (rc < 0)
			goto out;
	}
	/* fine: 5 points 0.075 apart on every sampled tile */
	for (bi = 0; bi < 5; bi++) {
		const float sf = bs + 0.075f * (float)(bi - 2);

		if (sf < 0.01f) {
			mse[bi] = INFINITY;
			continue;
		}
		rc = xq_scale_mse(g, tiles, np, sf, bits, cb, n_threads, buf, st,
				  &mse[bi], d);
		if (rc < 0)
			goto out;
	}
	{
		int m = 0;
		float off = 0.0f;

		for (bi = 1; bi < 5; bi++)
			if (mse[bi] < mse[m])
				m = bi;
		if (m > 0 && m < 4 && isfinite(mse[m - 1]) && isfinite(mse[m + 1])) {
			const double den = mse[m - 1] - 2.0 * mse[m] + mse[m + 1];

			if (den > 0.0)
				off = (float)(0.5 * (mse[m - 1] - mse[m + 1]) / den);
			if (off > 0.5f)
				off = 0.5f;
			if (off < -0.5f)
				off = -0.5f;
		}
		*gs = bs + 0.075f * ((float)(m - 2) + off);
		if (*gs < 0.01f)
			*gs = 0.01f;
	}
out:
	free(tiles);
	free(buf);
	free(st);
	return rc;
}

/* Cholesky H = C C' (lower triangle of h [k][k] in place, upper zeroed),
 * blocked left-looking by panels of XQ_CHOL_B columns:
 *   1. every row i at or below the panel takes the columns left of it:
 *      A[i][J + c] -= sum_{m < J} C[i][m] C[J + c][m]   (the k^3/6 work:
 *      four rows against one panel row at a time, eight lanes of f32
 *      partial sums, row chunks over the threads);
 *   2. the panel's diagonal block is factored on one thread, then every
 *      row below solves for its panel columns (row chunks over threads).
 * Each entry is computed by one thread in a fixed order: the result does
 * not depend on the thread count. */
#define XQ_CHOL_B 64
#define XQ_CHOL_ROWS 32

typedef float xq_v8 __attribute__((vector_size(32)));

/* an AVX2 + FMA clone of the hot update next to the baseline one, picked
 * at run time (as gpu/cpu's CPU_HOT) */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
	!defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define XQ_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define XQ_HOT
#endif

struct xq_chol {
	float *h;
	size_t k, J, jb;
};

/* dot of two f32 rows of length n: eight lane sums, then the lanes */
static inline float xq_dot_tail(const float *a, const float *b, size_t n,
				const xq_v8 *acc)
{
	float s = 0.0f;
	size_t m;
	int l;

	for (l = 0; l < 8; l++)
		s += (*acc)[l];
	for (m = n & ~(size_t)7; m < n; m++)
		s += a[m] * b[m];
	return s;
}

/* step 1 for rows [J + c*ROWS, ...): A[i][J + q] -= dot(C[i][0:J], C[J + q][0:J]) */
XQ_HOT static void xq_chol_update(void *ctx, size_t c, void *scratch)
{
	const struct xq_chol *q = ctx;
	const size_t k = q->k, J = q->J, jb = q->jb;
	const size_t i0 = J + c * XQ_CHOL_ROWS;
	const size_t i1 = i0 + XQ_CHOL_ROWS < k ? i0 + XQ_CHOL_ROWS : k;
	const size_t n8 = J & ~(size_t)7;
	size_t i, col, m;

	(void)scratch;
	for (i = i0; i < i1; i += 4) {
		const size_t nr = i1 - i < 4 ? i1 - i : 4;

		for (col = 0; col < jb; col++) {
			const float *pr = q->h + (J + col) * k;
			xq_v8 acc[4] = { { 0 }, { 0 }, { 0 }, { 0 } };
			size_t r;

			if (J + col > i + nr - 1)
				break; /* above the diagonal for every row here */
			for (m = 0; m < n8; m += 8) {
				xq_v8 pv;

				memcpy(&pv, pr + m, sizeof pv);
				for (r = 0; r < nr; r++) {
					xq_v8 av;

					memcpy(&av, q->h + (i + r) * k + m, sizeof av);
					acc[r] += av * pv;
				}
			}
			for (r = 0; r < nr; r++)
				if (J + col <= i + r)
					q->h[(i + r) * k + J + col] -=
						xq_dot_tail(q->h + (i + r) * k, pr, J, &acc[r]);
		}
	}
}

/* step 2 for rows below the panel: C[i][J + c] = (A[i][J + c] - sum_{m =
 * J}^{J + c - 1} C[i][m] C[J + c][m]) / C[J + c][J + c] */
static void xq_chol_solve(void *ctx, size_t c, void *scratch)
{
	const struct xq_chol *q = ctx;
	const size_t k = q->k, J = q->J, jb = q->jb;
	const size_t i0 = J + jb + c * XQ_CHOL_ROWS;
	const size_t i1 = i0 + XQ_CHOL_ROWS < k ? i0 + XQ_CHOL_ROWS : k;
	size_t i, col, m;

	(void)scratch;
	for (i = i0; i < i1; i++) {
		float *ri = q->h + i * k;

		for (col = J; col < J + jb; col++) {
			const float *rc = q->h + col * k;
			double t = ri[col];

			for (m = J; m < col; m++)
				t -= (double)ri[m] * rc[m];
			ri[col] = (float)(t / rc[col]);
		}
	}
}

/* 0, -1 when H is not positive definite, -2 out of memory (threads). */
static int xq_cholesky(float *h, size_t k, int n_threads)
{
	size_t i, j, m, J;

	for (J = 0; J < k; J += XQ_CHOL_B) {
		struct xq_chol q = { h, k, J, k - J < XQ_CHOL_B ? k - J : XQ_CHOL_B };
		const size_t ch1 = (k - J + XQ_CHOL_ROWS - 1) / XQ_CHOL_ROWS;
		const size_t below = k - J - q.jb;
		const size_t ch2 = (below + XQ_CHOL_ROWS - 1) / XQ_CHOL_ROWS;

		if (J > 0) {
			if (ch1 > 1 && (k - J) * J > ((size_t)1 << 16)) {
				if (xq_parallel(ch1, n_threads, 0, xq_chol_update, &q, NULL) < 0)
					return -2;
			} else {
				for (i = 0; i < ch1; i++)
					xq_chol_update(&q, i, NULL);
			}
		}
		/* the diagonal block, unblocked */
		for (j = J; j < J + q.jb; j++) {
			float *rj = h + j * k;
			double s = rj[j];

			for (m = J; m < j; m++)
				s -= (double)rj[m] * rj[m];
			if (!(s > 0.0))
				return -1;
			rj[j] = (float)sqrt(s);
			for (i = j + 1; i < J + q.jb; i++) {
				float *ri = h + i * k;
				double t = ri[j];

				for (m = J; m < j; m++)
					t -= (double)ri[m] * rj[m];
				ri[j] = (float)(t / rj[j]);
			}
		}
		if (below > 0) {
			if (ch2 > 1 && below * q.jb > ((size_t)1 << 14)) {
				if (xq_parallel(ch2, n_threads, 0, xq_chol_solve, &q, NULL) < 0)
					return -2;
			} else {
				for (i = 0; i < ch2; i++)
					xq_chol_solve(&q, i, NULL);
			}
		}
	}
	for (i = 0; i < k; i++)
		for (j = i + 1; j < k; j++)
			h[i * k + j] = 0.0f;
	return 0;
}

/* The LDLQ feedback for the 16-row block at BLK, XQ_FB_COLS columns a
 * chunk: target[r][b] += sum over rows a below the block of L[a][blk + r]
 * * err[a][b]. */
#define XQ_FB_COLS 256

struct xq_fb {
	float *target;
	const float *l, *err;
	size_t k, n, blk;
};

static void xq_fb_cols(void *ctx, size_t c, void *scratch)
{
	const struct xq_fb *f = ctx;
	const size_t b0 = c * XQ_FB_COLS;
	const size_t b1 = b0 + XQ_FB_COLS < f->n ? b0 + XQ_FB_COLS : f->n;
	size_t a, b;
	int r;

	(void)scratch;
	for (a = f->blk + 16; a < f->k; a++) {
		const float *la = f->l + a * f->k + f->blk;
		const float *ea = f->err + a * f->n;

		for (r = 0; r < 16; r++) {
			const float l = la[r];
			float *tr = f->target + (size_t)r * f->n;

			if (l == 0.0f)
				continue;
			for (b = b0; b < b1; b++)
				tr[b] += l * ea[b];
		}
	}
}

/* From the Cholesky factor C (lower, [k][k]): L = C blockdiag(B)^-1 - I,
 * B_i C's 16x16 diagonal blocks, so H = (L + I) D (L + I)' with L strictly
 * block-lower.  Only the blocks below the diagonal are used afterwards. */
static void xq_block_ldl(float *c, size_t k)
{
	size_t blk, i, r, q;
	double binv[16][16];

	for (blk = 0; blk < k; blk += 16) {
		/* invert the lower-triangular diagonal block */
		int a, b, m;

		for (a = 0; a < 16; a++)
			for (b = 0; b < 16; b++)
				binv[a][b] = 0.0;
		for (a = 0; a < 16; a++) {
			binv[a][a] = 1.0 / c[(blk + a) * k + blk + a];
			for (b = 0; b < a; b++) {
				double s = 0.0;

				for (m = b; m < a; m++)
					s += c[(blk + a) * k + blk + m] * binv[m][b];
				binv[a][b] = -s / c[(blk + a) * k + blk + a];
			}
		}
		/* rows below the block: C[i, blk..] <- C[i, blk..] Binv */
		for (i = blk + 16; i < k; i++) {
			float *ri = c + i * k + blk;
			double out[16];

			for (q = 0; q < 16; q++) {
				double s = 0.0;

				for (r = q; r < 16; r++)
					s += ri[r] * binv[r][q];
				out[q] = s;
			}
			for (q = 0; q < 16; q++)
				ri[q] = (float)out[q];
		}
	}
}

int gpu_exl3_quantize(const float *w_in, size_t k, size_t n, const float *h_in,
		      const struct gpu_exl3_qparams *p, uint16_t *trellis,
		      uint16_t *suh, uint16_t *svh, struct gpu_exl3_qstats *st,
		      struct diag *d)
{
	const size_t TN = n / 16;
	float *w1 = NULL, *wr = NULL, *q = NULL, *h = NULL, *target = NULL;
	float *tiles = NULL;
	float *su = NULL, *sv = NULL, *colsum = NULL;
	uint16_t *states = NULL;
	uint64_t rng;
	double damp = 0.0;
	size_t a, b, i;
	float g = 1.0f;
	int rc, bits;

	if (!p)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_quantize: no parameters");
	bits = p->bits;
	rc = xq_check_cb(bits, p->cb, "gpu_exl3_quantize", d);
	if (rc < 0)
		return rc;
	if (!w_in || !trellis || !suh || !svh)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_quantize: NULL argument");
	if (k == 0 || k % 128 || n == 0 || n % 128)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_quantize: shape %zu x %zu is not a multiple "
				 "of 128 on both sides", k, n);
	if (k > ((size_t)1 << 20) || n > ((size_t)1 << 22))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_quantize: shape %zu x %zu too large", k, n);
	w1 = malloc(k * n * sizeof *w1);
	wr = malloc(k * n * sizeof *wr);
	q = malloc(k * n * sizeof *q);
	su = malloc(k * sizeof *su);
	sv = malloc(n * sizeof *sv);
	colsum = calloc(n, sizeof *colsum);
	states = malloc(TN * 256 * sizeof *states);
	target = malloc(16 * n * sizeof *target);
	tiles = malloc(16 * n * sizeof *tiles);
	if (h_in)
		h = malloc(k * k * sizeof *h);
	if (!w1 || !wr || !q || !su || !sv || !colsum || !states || !target || !tiles ||
	    (h_in && !h)) {
		rc = diag_fail(d, GPU_E_NOMEM,
			       "gpu_exl3_quantize: out of memory for a %zu x %zu "
			       "linear", k, n);
		goto out;
	}
	for (i = 0; i < k * n; i++)
		if (!isfinite(w_in[i])) {
			rc = diag_fail(d, GPU_E_INVALID,
				       "gpu_exl3_quantize: weight %zu is not finite", i);
			goto out;
		}
	rng = p->seed ^ 0x6A09E667F3BCC909ull;

	/* output scales and signs: sv = sign * RMS over rows, normalised */
	{
		double mean = 0.0;
		size_t nz = 0;

		for (a = 0; a < k; a++)
			for (b = 0; b < n; b++) {
				const float v = w_in[a * n + b];

				colsum[b] += v * v;
			}
		for (b = 0; b < n; b++) {
			colsum[b] = sqrtf(colsum[b] / (float)k);
			if (colsum[b] > 0.0f) {
				mean += colsum[b];
				nz++;
			}
		}
		mean = nz ? mean / (double)nz : 1.0;
		for (b = 0; b < n; b++) {
			const float sg = xq_sign(&rng);
			float s = p->no_out_scales ? 1.0f : (float)(colsum[b] / mean);

			if (colsum[b] == 0.0f)
				s = 0.0f;
			/* within f16's normal range: a tiny nonzero column keeps a
			 * scale (not 0), a huge one no inf */
			else if (s < 6.103515625e-05f)
				s = 6.103515625e-05f;
			else if (s > 65504.0f)
				s = 65504.0f;
			sv[b] = gpu_f16_to_f32(gpu_f32_to_f16(sg * s));
		}
	}
	for (a = 0; a < k; a++)
		for (b = 0; b < n; b++)
			w1[a * n + b] = sv[b] != 0.0f ? w_in[a * n + b] / sv[b] : 0.0f;
	xq_rot_rows(w1, k, n);
	/* input scales and signs on the rotated rows */
	for (a = 0; a < k; a++) {
		double ss = 0.0;
		float s;

		for (b = 0; b < n; b++)
			ss += (double)w1[a * n + b] * w1[a * n + b];
		s = (float)sqrt(ss / (double)n);
		if (!(s > 0.0f))
			s = 0.1f;
		su[a] = xq_sign(&rng) * s / (float)XQ_CB_DIV;
	}
	/* W_reg at g = 1, the scale search on it, then su /= g and W_reg again
	 * with the f16 su the file will hold */
	for (a = 0; a < k; a++)
		for (b = 0; b < n; b++)
			wr[a * n + b] = w1[a * n + b] / su[a];
	xq_rot_cols(wr, k, n);
	rc = xq_scale_search(p->g, wr, k, n, bits, p->cb, p->n_threads, &g, d);
	if (rc < 0)
		goto out;
	for (a = 0; a < k; a++) {
		float v = su[a] / g;

		/* f16's normal range (the row's values scale with it): no inf,
		 * no zero */
		if (fabsf(v) > 65504.0f)
			v = v < 0.0f ? -65504.0f : 65504.0f;
		else if (fabsf(v) < 6.103515625e-05f)
			v = v < 0.0f ? -6.103515625e-05f : 6.103515625e-05f;
		su[a] = gpu_f16_to_f32(gpu_f32_to_f16(v));
	}
	for (a = 0; a < k; a++)
		for (b = 0; b < n; b++)
			wr[a * n + b] = w1[a * n + b] / su[a];
	xq_rot_cols(wr, k, n);

	/* the Hessian in W_reg's basis and its block LDL */
	if (h) {
		double dm = 0.0;
		int tries;

		for (a = 0; a < k; a++)
			dm += h_in[a * k + a];
		dm /= (double)k;
		if (!(dm > 1e-20) || !isfinite(dm)) {
			free(h);
			h = NULL; /* degenerate: §4.9's fallback */
		} else {
			damp = (p->sigma_reg > 0.0 ? p->sigma_reg : 0.025) * dm;
			for (tries = 0;; tries++) {
				for (a = 0; a < k; a++)
					for (b = 0; b < k; b++)
						h[a * k + b] = (float)(((double)h_in[a * k + b] +
									(a == b ? damp : 0.0)) *
								       su[a] * su[b]);
				xq_rot_rows(h, k, k);
				xq_rot_cols(h, k, k);
				rc = xq_cholesky(h, k, p->n_threads);
				if (rc == -2) {
					rc = diag_fail(d, GPU_E_NOMEM, "gpu_exl3_quantize: out of memory");
					goto out;
				}
				if (rc == 0)
					break;
				if (tries == 10) {
					rc = diag_fail(d, GPU_E_INVALID,
						       "gpu_exl3_quantize: the Hessian is "
						       "not positive definite after %d "
						       "dampings", tries);
					goto out;
				}
				damp += 2.0 * 0.025 * dm;
			}
			xq_block_ldl(h, k);
		}
	}

	/* LDLQ: 16-row blocks from the last */
	{
		size_t blk = k;

		while (blk > 0) {
			blk -= 16;
			memcpy(target, wr + blk * n, 16 * n * sizeof *target);
			if (h && blk + 16 < k) {
				/* target += L[below, blk..]' (W_reg - Q)[below] */
				struct xq_fb fb = { target, h, q, k, n, blk };

				rc = xq_parallel((n + XQ_FB_COLS - 1) / XQ_FB_COLS,
						 p->n_threads, 0, xq_fb_cols, &fb, d);
				if (rc < 0)
					goto out;
			}
			/* the block row's tiles, searched together (on p->g when
			 * it has a search), their values back in place */
			for (b = 0; b < TN; b++)
				xq_gather_tile(target, n, 0, b, tiles + 256 * b);
			rc = gpu_exl3_encode_tiles(p->g, tiles, TN, bits, p->cb,
						   p->n_threads, states, tiles, d);
			if (rc < 0)
				goto out;
			/* q holds the error W_reg - Q of every quantized row */
			for (b = 0; b < TN; b++) {
				int e, r, c;

				for (e = 0; e < 256; e++) {
					const size_t at = (blk + (size_t)xq_row_of(e, &r, &c)) * n +
							  b * 16 + (size_t)c;

					q[at] = wr[at] - tiles[256 * b + (size_t)e];
				}
			}
			for (b = 0; b < TN; b++)
				(void)gpu_exl3_pack_tile(states + 256 * b, bits,
							 trellis + ((blk / 16) * TN + b) * 16 *
									   (size_t)bits);
		}
	}
	for (a = 0; a < k; a++)
		suh[a] = gpu_f32_to_f16(su[a]);
	for (b = 0; b < n; b++)
		svh[b] = gpu_f32_to_f16(sv[b]);

	/* statistics: relative error in W_reg's basis */
	if (st) {
		double e2 = 0.0, w2 = 0.0;

		for (i = 0; i < k * n; i++) {
			const double df = q[i];

			e2 += df * df;
			w2 += (double)wr[i] * wr[i];
		}
		st->rel_err = w2 > 0.0 ? sqrt(e2 / w2) : 0.0;
		st->scale = g;
	}
	rc = 0;
out:
	free(w1);
	free(wr);
	free(q);
	free(h);
	free(su);
	free(sv);
	free(colsum);
	free(states);
	free(target);
	free(tiles);
	return rc;
}
