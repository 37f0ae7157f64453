/* gpu/cpu/exl3.c — EXL3 on the CPU backend: the trellis tile decode (all
 * K = 1..8, codebooks 3INST / MCG / MUL1), the 128-point Hadamard transform,
 * and the EXL3 linear layer computed on the fly from the trellis.
 *
 * Format (docs/exl3-format.md §1.7, §1.8, §2, §3), with k = in_features,
 * n = out_features (both multiples of 128), K = bits per weight:
 *   trellis int16 [k/16, n/16, 16K]: tile (tk, tn) covers W_hat rows
 *     16tk.. (input channels) and columns 16tn.. (output channels); its
 *     16K int16 read as 8K little-endian uint32 words form a cyclic stream
 *     of N = 256K bits, MSB-first in each word;
 *   state(e) = stream bits [(e+1)K - 16, (e+1)K) mod N, e = 0..255;
 *   W_hat[16tk + r][16tn + c] = codebook(state(e)) with l = e >> 3,
 *     j = e & 7, r = 2(l & 3) + (j & 1) + 8((j >> 1) & 1),
 *     c = (l >> 2) + 8((j >> 2) & 1)   (mma B-fragment order);
 *   y = H128_blk(H128_blk(x * suh) . W_hat) * svh (+ bias).
 *
 * The linear never materialises W.  It runs in three pool jobs:
 *   1. row partitions: xh[i] = H(xz[i] * suh)                 (f32 [k])
 *                      and yh[i] = 0                            (f32 [n])
 *   2. tile columns:   for each tile row tk, decode the chunk's (<= 8)
 *                      tiles into a [16][128] block T, then for every row
 *                      yh[i][cols] += sum_r xh[i][16tk + r] * T[r][cols]
 *   3. row partitions: out[i][0..n_out) = (H(yh[i]) * svh + bias)[0..n_out)
 * Rows are cut into at most n_threads partitions of rpt rows; partition p's
 * xh and yh live in per-thread scratch p (indexed by partition, not by the
 * thread that happens to run it), after a T block that phase 2 uses as the
 * running thread's decode buffer, so the op needs no shared buffer:
 *   scratch[t] = [ T: 16*128 | xh: rpt * k | yh: rpt * n ].
 * Phase 2 adds over tk in order for every column, so results do not depend
 * on the thread count or the chunk schedule.  All arithmetic is f32 (the reference is float32
 * math on the exact fp16 W_hat values), so the result equals x.W up to f32
 * rounding.
 *
 * Codebook values are looked up in 65536-entry f32 tables built once
 * (pthread_once) from the exact formulas; they are immutable afterwards.
 */
#include "config.h"

#include "gpu/exl3_cb.h"
#include "gpu/exl3_ref.h"
#include "gpu/cpu/cpu_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

/* ---- codebooks (§2) ------------------------------------------------------ */

/* 3INST and MCG share the tail: keep the sign and low 12 bits of each half,
 * force exponent bits 14..12 to 011 (lop3 0x6A: (x & m) ^ c), then add the
 * two halves as fp16 with one rounding.  Each half lies in [0.125, 2) so the
 * f32 sum is exact and a single f32 -> f16 rounding reproduces __hadd. */
static uint16_t cb_two_halves(uint32_t x)
{
	float v;

	x = (x & EXL3_CB_MASK) ^ EXL3_CB_XOR;
	v = gpu_f16_to_f32((uint16_t)(x & 0xFFFFu)) +
	    gpu_f16_to_f32((uint16_t)(x >> 16));
	return gpu_f32_to_f16(v);
}

uint16_t gpu_exl3_codebook(uint32_t state, int cb)
{
	uint32_t s = state & 0xFFFFu, x, bsum;
	float h, v;

	switch (cb) {
	case GPU_EXL3_CB_3INST:
		return cb_two_halves(s * EXL3_3INST_MUL + EXL3_3INST_ADD);
	case GPU_EXL3_CB_MCG:
		return cb_two_halves(s * EXL3_MCG_MUL);
	case GPU_EXL3_CB_MUL1:
		/* v = fp16(h * K_INV + K_BIAS), h = 1024 + byte sum of s*M.
		 * K_INV = 1774 * 2^-18 and h < 2048 make the product an
		 * integer multiple of 2^-18 below 2^4, and K_BIAS is a multiple
		 * of 2^-7: the f32 fma/mul+add is exact, so one f32 -> f16
		 * rounding equals __hfma's single rounding. */
		x = s * EXL3_MUL1_MUL;
		bsum = (x & 0xFFu) + ((x >> 8) & 0xFFu) + ((x >> 16) & 0xFFu) +
		       (x >> 24);
		h = gpu_f16_to_f32((uint16_t)(0x6400u + bsum));
		v = h * gpu_f16_to_f32(EXL3_MUL1_KINV) + gpu_f16_to_f32(EXL3_MUL1_KBIAS);
		return gpu_f32_to_f16(v);
	default:
		break;
	}
	return 0;
}

static float g_lut[3][65536];
static pthread_once_t g_lut_once = PTHREAD_ONCE_INIT;

static void lut_build(void)
{
	uint32_t s;
	int cb;

	for (cb = 0; cb < 3; cb++)
		for (s = 0; s < 65536u; s++)
			g_lut[cb][s] = gpu_f16_to_f32(gpu_exl3_codebook(s, cb));
}

const float *gpu_exl3_lut(int cb)
{
	if (cb < 0 || cb > 2)
		return NULL;
	pthread_once(&g_lut_once, lut_build);
	return g_lut[cb];
}

/* ---- tile decode (§1.7, §1.8) ------------------------------------------- */

/* Word i of a tile record: int16 2i is the low half, 2i+1 the high half
 * (the int16 array read as little-endian uint32). */
static inline uint32_t tile_word(const unsigned char *p, int i)
{
	uint16_t lo, hi;

	memcpy(&lo, p + 4 * (size_t)i, 2);
	memcpy(&hi, p + 4 * (size_t)i + 2, 2);
	return (uint32_t)lo | ((uint32_t)hi << 16);
}

uint32_t gpu_exl3_state(const void *t16, int bits, int e)
{
	const unsigned char *p = t16;
	const int N = 256 * bits, W = 8 * bits;
	int end = (e + 1) * bits;        /* exclusive end bit of element e */
	int beg = end - 16 + N;          /* start bit, made positive */
	int i0 = (beg / 32) % W, i1 = ((end - 1 + N) / 32) % W;
	uint64_t m = ((uint64_t)tile_word(p, i0) << 32) | tile_word(p, i1);
	int shift = (((end - 1 + N) / 32) + 1) * 32 - (end + N); /* 0..31 */

	return (uint32_t)(m >> shift) & 0xFFFFu;
}

/* Position of encoded element e inside the tile: rc[e] = r * 16 + c. */
static uint8_t g_perm[256];
static pthread_once_t g_perm_once = PTHREAD_ONCE_INIT;

static void perm_build(void)
{
	int e;

	for (e = 0; e < 256; e++) {
		int r, c;

		gpu_exl3_tile_order(e, &r, &c);
		g_perm[e] = (uint8_t)(r * 16 + c);
	}
}

void gpu_exl3_tile_decode(const void *t16, int bits, const float *lut,
			  float *dst, size_t ld)
{
	const unsigned char *p = t16;
	uint32_t w[8 * 8 + 1];
	const int nw = 8 * bits, N = 256 * bits;
	int i, e, beg;

	pthread_once(&g_perm_once, perm_build);
	for (i = 0; i < nw; i++)
		w[i] = tile_word(p, i);
	w[nw] = w[0]; /* the stream is cyclic: a window may wrap */
	/* window of element e = stream bits [beg, beg + 16), beg =
	 * ((e+1)K - 16) mod N; in m = w[i0]:w[i0+1] stream bit beg is m's bit
	 * 63 - (beg & 31), so the window is m >> (48 - (beg & 31)). */
	beg = bits - 16 + N;
	for (e = 0; e < 256; e++, beg += bits) {
		int b = beg >= N ? beg - N : beg;
		int i0 = b >> 5, off = b & 31;
		uint64_t m = ((uint64_t)w[i0] << 32) | w[i0 + 1];
		uint32_t s = (uint32_t)(m >> (48 - off)) & 0xFFFFu;
		int rc = g_perm[e];

		dst[(size_t)(rc >> 4) * ld + (size_t)(rc & 15)] = lut[s];
	}
}

/* The linear's tile decode: the same values as gpu_exl3_tile_decode (the
 * reference, checked against the fixture), faster.  Tables built once
 * give, for every position q = 16r + c of a tile and each K, the stream
 * word and shift of the element stored there, so a tile is produced in
 * position order (row by row, no scattered stores); MUL1 (the converter's
 * default codebook) is looked up by the product's byte sum in a
 * 1,021-entry table that stays in L1 instead of the 65,536-entry one.  On
 * x86-64 CPUs with AVX2 and F16C (xl_tile_decode_avx2) eight lanes of the
 * tile at a time, the codebooks computed rather than looked up.  The tile's
 * 32K bytes are read as 8K little-endian words, as tile_word does on the
 * little-endian hosts this backend runs on.  dst: 16 rows 128 apart. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "xl_tile_decode reads the trellis as little-endian words"
#endif
struct xl_dec_tab {
	uint8_t i0[256];  /* word holding the window's first bit */
	uint8_t sh[256];  /* the window is (w[i0]:w[i0+1]) >> sh, 17..48 */
};
static struct xl_dec_tab g_dec[9];  /* by K, in position order */
static float g_mul1[1024];          /* MUL1 value by byte sum (0..1020) */
/* xl_tile_decode_avx2: for K and b, the first word of lanes 4a + b (a =
 * 0..7) and their common bit offset */
static struct {
	int32_t ix[4][8];
	int off[4];
} g_lane[9];
static int g_simd;                  /* AVX2 path available and on */
static pthread_once_t g_dec_once = PTHREAD_ONCE_INIT;

/* Whether this CPU (and OS) runs xl_tile_decode_avx2: AVX2 (which the
 * builtin checks together with the OS's AVX state) and F16C (CPUID 1,
 * ECX bit 29; not every compiler's builtin knows it). */
static int xl_simd_cpu(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	unsigned a, b, c, d;

	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2"))
		return 0;
	return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
#else
	return 0;
#endif
}

static void dec_build(void)
{
	int bits, e;
	uint32_t h;

	pthread_once(&g_perm_once, perm_build);
	for (bits = 1; bits <= 8; bits++) {
		const int N = 256 * bits;

		for (e = 0; e < 256; e++) {
			const int b = ((e + 1) * bits - 16 + N) % N;

			g_dec[bits].i0[g_perm[e]] = (uint8_t)(b >> 5);
			g_dec[bits].sh[g_perm[e]] = (uint8_t)(48 - (b & 31));
		}
	}
	for (bits = 1; bits <= 8; bits++) {
		const int nw = 8 * bits;
		int b, a;

		for (b = 0; b < 4; b++) {
			/* lane 4a + b starts at bit (32aK + c) mod 256K */
			const int c = (8 * b + 1) * bits - 16; /* < 0 for b = 0 */
			const int off = c & 31;
			const int qb = (c - off) / 32;        /* floor(c / 32) */

			g_lane[bits].off[b] = off;
			for (a = 0; a < 8; a++)
				g_lane[bits].ix[b][a] = ((a * bits + qb) % nw + nw) % nw;
		}
	}
	/* the value of any state whose product has byte sum h */
	for (h = 0; h <= 1020; h++) {
		const float hv = gpu_f16_to_f32((uint16_t)(0x6400u + h));

		g_mul1[h] = gpu_f16_to_f32(gpu_f32_to_f16(
			hv * gpu_f16_to_f32(EXL3_MUL1_KINV) + gpu_f16_to_f32(EXL3_MUL1_KBIAS)));
	}
	g_simd = xl_simd_cpu();
}

static void xl_tile_decode_scalar(const uint32_t *w, int bits, int cb,
				  const float *lut, float *restrict dst)
{
	const struct xl_dec_tab *t = &g_dec[bits];
	int q;

	for (q = 0; q < 256; q++) {
		const uint64_t m = ((uint64_t)w[t->i0[q]] << 32) | w[t->i0[q] + 1];
		const uint32_t s = (uint32_t)(m >> t->sh[q]) & 0xFFFFu;
		float v;

		if (cb == GPU_EXL3_CB_MUL1) {
			const uint32_t x = s * EXL3_MUL1_MUL;
			const uint32_t u = (x & 0x00FF00FFu) + ((x >> 8) & 0x00FF00FFu);

			v = g_mul1[(u + (u >> 16)) & 0xFFFFu];
		} else
			v = lut[s];
		dst[(size_t)(q >> 4) * 128 + (size_t)(q & 15)] = v;
	}
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* Bits [P, P + 16) of the big-endian 96-bit runs w0:w1:w2 (P <= 80, the
 * same P in every lane). */
__attribute__((target("avx2"))) static inline __m256i
xl_win8(__m256i w0, __m256i w1, __m256i w2, int P)
{
	const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
	__m256i v;

	if (P + 16 <= 32)
		v = _mm256_srl_epi32(w0, _mm_cvtsi32_si128(16 - P));
	else if (P < 32)
		v = _mm256_or_si256(_mm256_sll_epi32(w0, _mm_cvtsi32_si128(P - 16)),
				    _mm256_srl_epi32(w1, _mm_cvtsi32_si128(48 - P)));
	else if (P + 16 <= 64)
		v = _mm256_srl_epi32(w1, _mm_cvtsi32_si128(48 - P));
	else if (P < 64)
		v = _mm256_or_si256(_mm256_sll_epi32(w1, _mm_cvtsi32_si128(P - 48)),
				    _mm256_srl_epi32(w2, _mm_cvtsi32_si128(80 - P)));
	else
		v = _mm256_srl_epi32(w2, _mm_cvtsi32_si128(80 - P));
	return _mm256_and_si256(v, lo16);
}

/* f32 -> the nearest-even f16 value, back in f32 (vcvtps2ph / vcvtph2ps:
 * the rounding of gpu_f32_to_f16, subnormals included with FTZ off). */
__attribute__((target("avx2,f16c"))) static inline __m256 xl_round_f16(__m256 v)
{
	return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT |
						  _MM_FROUND_NO_EXC));
}

/* The codebook (§2) of eight 16-bit states, computed (no table): MUL1 as
 * 1024 + byte sum times K_INV plus K_BIAS (exact in f32) rounded once to
 * f16; 3INST / MCG as the two masked halves read as f16, added (exact in
 * f32) and rounded once — gpu_exl3_codebook's arithmetic. */
__attribute__((target("avx2,f16c"))) static inline __m256
xl_cb8(__m256i st, int cb)
{
	if (cb == GPU_EXL3_CB_MUL1) {
		const __m256i m8 = _mm256_set1_epi32(0x00FF00FF);
		const __m256i x = _mm256_mullo_epi32(st, _mm256_set1_epi32((int)EXL3_MUL1_MUL));
		__m256i u = _mm256_add_epi32(_mm256_and_si256(x, m8),
					     _mm256_and_si256(_mm256_srli_epi32(x, 8), m8));
		__m256 h;

		u = _mm256_and_si256(_mm256_add_epi32(u, _mm256_srli_epi32(u, 16)),
				     _mm256_set1_epi32(0xFFFF));
		h = _mm256_cvtepi32_ps(_mm256_add_epi32(u, _mm256_set1_epi32(1024)));
		return xl_round_f16(_mm256_add_ps(
			_mm256_mul_ps(h, _mm256_set1_ps(gpu_f16_to_f32(EXL3_MUL1_KINV))),
			_mm256_set1_ps(gpu_f16_to_f32(EXL3_MUL1_KBIAS))));
	} else {
		__m256i x = cb == GPU_EXL3_CB_3INST
			? _mm256_add_epi32(_mm256_mullo_epi32(st, _mm256_set1_epi32((int)EXL3_3INST_MUL)),
					   _mm256_set1_epi32((int)EXL3_3INST_ADD))
			: _mm256_mullo_epi32(st, _mm256_set1_epi32((int)EXL3_MCG_MUL));
		__m256i p;

		x = _mm256_xor_si256(_mm256_and_si256(x, _mm256_set1_epi32((int)EXL3_CB_MASK)),
				     _mm256_set1_epi32((int)EXL3_CB_XOR));
		/* low halves 0..7 then high halves 0..7 as 16-bit lanes */
		p = _mm256_packus_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0xFFFF)),
					_mm256_srli_epi32(x, 16));
		p = _mm256_permute4x64_epi64(p, 0xD8);
		return xl_round_f16(_mm256_add_ps(
			_mm256_cvtph_ps(_mm256_castsi256_si128(p)),
			_mm256_cvtph_ps(_mm256_extracti128_si256(p, 1))));
	}
}

/* Lane l = 4a + b of the tile holds elements 8l .. 8l+7; for one b the
 * eight lanes a = 0..7 start at the same bit offset of words (aK + q_b)
 * mod 8K, and element j of each lands in one tile row at columns c0 ..
 * c0+7 (r = 2b + (j & 1) + 8((j >> 1) & 1), c0 = 8((j >> 2) & 1)): three
 * gathers per b, then every window is a shift by the same count in all
 * lanes and every row segment one store.  w: the tile's 8K words and two
 * more wrapping around. */
__attribute__((target("avx2,f16c"))) static void
xl_tile_decode_avx2(const uint32_t *w, int bits, int cb, float *restrict dst)
{
	const int *wi = (const int *)w;
	int b, j;

	for (b = 0; b < 4; b++) {
		const int off = g_lane[bits].off[b];
		const __m256i idx = _mm256_loadu_si256(
			(const __m256i *)g_lane[bits].ix[b]);
		__m256i w0, w1, w2;

		w0 = _mm256_i32gather_epi32(wi, idx, 4);
		w1 = _mm256_i32gather_epi32(wi + 1, idx, 4);
		w2 = _mm256_i32gather_epi32(wi + 2, idx, 4);
		for (j = 0; j < 8; j++) {
			const int r = 2 * b + (j & 1) + 8 * ((j >> 1) & 1);
			const int c0 = 8 * ((j >> 2) & 1);

			_mm256_storeu_ps(dst + (size_t)r * 128 + (size_t)c0,
					 xl_cb8(xl_win8(w0, w1, w2, off + j * bits), cb));
		}
	}
}
#endif

static void xl_tile_decode(const unsigned char *p, int bits, int cb,
			   const float *lut, float *restrict dst)
{
	uint32_t w[8 * 8 + 2];
	const int nw = 8 * bits;

	memcpy(w, p, 4 * (size_t)nw);
	w[nw] = w[0]; /* the stream is cyclic: a window may wrap */
	w[nw + 1] = w[1 % nw];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (__atomic_load_n(&g_simd, __ATOMIC_RELAXED)) {
		xl_tile_decode_avx2(w, bits, cb, dst);
		return;
	}
#endif
	xl_tile_decode_scalar(w, bits, cb, lut, dst);
}

void gpu_exl3_tile_decode_fast(const void *t16, int bits, int cb, float *dst)
{
	pthread_once(&g_dec_once, dec_build);
	xl_tile_decode(t16, bits, cb, gpu_exl3_lut(cb), dst);
}

int gpu_exl3_set_simd(int on)
{
	int had;

	pthread_once(&g_dec_once, dec_build);
	had = xl_simd_cpu();
	__atomic_store_n(&g_simd, on && had, __ATOMIC_RELAXED);
	return had;
}

/* ---- Hadamard (§3.1) ------------------------------------------------------- */

CPU_HOT void gpu_exl3_fwht128(float *v)
{
	int h, i, j;

	for (h = 1; h < 128; h <<= 1)
		for (i = 0; i < 128; i += 2 * h)
			for (j = i; j < i + h; j++) {
				float a = v[j], b = v[j + h];

				v[j] = a + b;
				v[j + h] = a - b;
			}
	for (i = 0; i < 128; i++)
		v[i] *= 0.088388347648f; /* 1 / sqrt(128) */
}

/* ---- the backend's weight ------------------------------------------------ */

/* w->priv: one 64-byte aligned block holding an aligned copy of the
 * trellis and the scale vectors converted to f32. */
struct cpu_exl3 {
	void *mem;                    /* the block (owns everything below) */
	const unsigned char *trellis; /* [k/16][n/16][32K bytes] */
	const float *suh;             /* [k] */
	const float *svh;             /* [n] */
	const float *bias;            /* [n] or NULL */
	const float *lut;             /* codebook table */
	int cb;                       /* enum gpu_exl3_cb */
	size_t tile_bytes;            /* 32 * K */
};

static int size_add(size_t *acc, size_t a)
{
	size_t r = (a + 63) & ~(size_t)63;

	if (r < a || *acc > SIZE_MAX - r)
		return 0;
	*acc += r;
	return 1;
}

static void f16_to_f32_vec(float *dst, const void *src, size_t n)
{
	const unsigned char *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		uint16_t h;

		memcpy(&h, p + 2 * i, 2);
		dst[i] = gpu_f16_to_f32(h);
	}
}

int cpu_exl3_upload(struct gpu *g, struct gpu_exl3_weight *w,
		    const struct gpu_exl3_desc *desc, struct diag *d)
{
	const size_t k = desc->k, n = desc->n;
	size_t tile_bytes = 32 * (size_t)desc->bits, n_tiles, tr_bytes;
	size_t off_suh, off_svh, off_bias, total = 0;
	struct cpu_exl3 *q;
	unsigned char *blk;
	void *mem = NULL;

	(void)g;
	/* sizes: gpu_exl3_weight_new checked k, n, bits; products are
	 * checked again here because they size allocations */
	n_tiles = (k / 16) * (n / 16);
	if (n_tiles / (n / 16) != k / 16 || n_tiles > SIZE_MAX / tile_bytes)
		return diag_fail(d, GPU_E_INVALID, "exl3: %zu x %zu weight too large",
				 k, n);
	tr_bytes = n_tiles * tile_bytes;
	if (!size_add(&total, tr_bytes))
		goto too_big;
	off_suh = total;
	if (k > SIZE_MAX / 4 || !size_add(&total, k * 4))
		goto too_big;
	off_svh = total;
	if (n > SIZE_MAX / 4 || !size_add(&total, n * 4))
		goto too_big;
	off_bias = total;
	if (desc->bias && !size_add(&total, n * 4))
		goto too_big;
	q = calloc(1, sizeof *q);
	if (!q || posix_memalign(&mem, 64, total ? total : 64) != 0) {
		free(q);
		return diag_fail(d, GPU_E_NOMEM,
				 "exl3: cannot allocate %zu bytes for a %zu x %zu weight",
				 total, k, n);
	}
	blk = mem;
	memcpy(blk, desc->trellis, tr_bytes);
	f16_to_f32_vec((float *)(blk + off_suh), desc->suh, k);
	f16_to_f32_vec((float *)(blk + off_svh), desc->svh, n);
	if (desc->bias)
		f16_to_f32_vec((float *)(blk + off_bias), desc->bias, n);
	q->mem = mem;
	q->trellis = blk;
	q->suh = (const float *)(blk + off_suh);
	q->svh = (const float *)(blk + off_svh);
	q->bias = desc->bias ? (const float *)(blk + off_bias) : NULL;
	q->lut = gpu_exl3_lut((int)desc->cb);
	q->cb = (int)desc->cb;
	q->tile_bytes = tile_bytes;
	pthread_once(&g_dec_once, dec_build);
	w->priv = q;
	w->bytes = total;
	return 0;
too_big:
	return diag_fail(d, GPU_E_INVALID, "exl3: %zu x %zu weight too large", k, n);
}

void cpu_exl3_release(struct gpu *g, struct gpu_exl3_weight *w)
{
	struct cpu_exl3 *q = w->priv;

	(void)g;
	if (!q)
		return;
	free(q->mem);
	free(q);
	w->priv = NULL;
}

/* ---- the linear ---------------------------------------------------------- */

#define XL_T (16 * 128) /* floats of the decoded tile block */
#define XL_TILES 8      /* tiles decoded per block (128 columns) */

struct xl_job {
	const struct gpu_exl3_weight *w;
	const struct cpu_exl3 *q;
	const float *x;      /* [n_rows, k_in] */
	float *out;          /* [n_rows, n_out] */
	size_t n_rows, k_in, n_out, k, n;
	size_t n_part, rpt;  /* row partitions, rows per partition */
	size_t cols;         /* tile columns per phase-2 chunk (<= XL_TILES) */
	float *const *scratch;
};

/* Rows of partition p: [p * rpt, min((p + 1) * rpt, n_rows)).  Their xh
 * and yh live in scratch[p] after the T block; T itself is used by the
 * thread that runs a phase-2 chunk (scratch[tid][0 .. XL_T)), which never
 * overlaps a partition's rows. */
static inline float *xl_xh(const struct xl_job *j, size_t p)
{
	return j->scratch[p] + XL_T;
}

static inline float *xl_yh(const struct xl_job *j, size_t p)
{
	return j->scratch[p] + XL_T + j->rpt * j->k;
}

static inline void xl_rows(const struct xl_job *j, size_t p, size_t *lo,
			   size_t *hi)
{
	*lo = p * j->rpt;
	*hi = *lo + j->rpt < j->n_rows ? *lo + j->rpt : j->n_rows;
	if (*lo > *hi)
		*lo = *hi;
}

/* Phase 1 (chunk = partition p): xh = H(xz * suh), yh = 0. */
static void xl_in(void *ctx, size_t p, int tid)
{
	const struct xl_job *j = ctx;
	const size_t k = j->k, k_in = j->k_in;
	float *xh = xl_xh(j, p), *yh = xl_yh(j, p);
	size_t lo, hi, i, c;

	(void)tid;
	xl_rows(j, p, &lo, &hi);
	for (i = lo; i < hi; i++) {
		const float *xr = j->x + i * k_in;
		float *h = xh + (i - lo) * k;

		for (c = 0; c < k_in; c++)
			h[c] = xr[c] * j->q->suh[c];
		for (; c < k; c++)
			h[c] = 0.0f; /* zero-extension (padded in_features) */
		for (c = 0; c < k; c += 128)
			gpu_exl3_fwht128(h + c);
		memset(yh + (i - lo) * j->n, 0, j->n * sizeof(float));
	}
}

/* y[0..w) += sum_r x[r] * T[r][0..w), T rows 128 floats apart; each y[c]
 * adds its 16 products in order r = 0..15.  Eight columns at a time in a
 * GCC/Clang vector (one register with AVX; the loop over r stays outside
 * it, so no sum is reordered). */
typedef float xl_v8 __attribute__((vector_size(32)));

CPU_HOT static void xl_acc(float *restrict y, const float *restrict x,
			   const float *restrict T, size_t w)
{
	size_t c;
	int r;

	for (c = 0; c + 8 <= w; c += 8) {
		xl_v8 a, t;

		memcpy(&a, y + c, sizeof a);
		for (r = 0; r < 16; r++) {
			memcpy(&t, T + (size_t)r * 128 + c, sizeof t);
			a += x[r] * t;
		}
		memcpy(y + c, &a, sizeof a);
	}
	for (; c < w; c++) {
		float s = y[c];

		for (r = 0; r < 16; r++)
			s += x[r] * T[(size_t)r * 128 + c];
		y[c] = s;
	}
}

/* Phase 2 (chunk = tile columns [ch * cols, +cols) of the n/16), every
 * row: decode the chunk's tiles of one tile row at a time into T and
 * accumulate. */
static void xl_mid(void *ctx, size_t ch, int tid)
{
	const struct xl_job *j = ctx;
	const struct cpu_exl3 *q = j->q;
	const size_t k = j->k, n = j->n, ntn = n / 16;
	const size_t cc = ch * j->cols;
	const size_t nc = ntn - cc < j->cols ? ntn - cc : j->cols;
	float *T = j->scratch[tid];
	size_t tk, c, i, lo, hi, p;

	for (tk = 0; tk < k / 16; tk++) {
		/* T [16][16 nc] = W_hat[16tk .. +16][16cc .. 16(cc+nc)] */
		for (c = 0; c < nc; c++)
			xl_tile_decode(q->trellis +
				       (tk * ntn + cc + c) * q->tile_bytes,
				       j->w->bits, q->cb, q->lut, T + 16 * c);
		for (p = 0; p < j->n_part; p++) {
			const float *xh = xl_xh(j, p);
			float *yh = xl_yh(j, p);

			xl_rows(j, p, &lo, &hi);
			for (i = lo; i < hi; i++)
				xl_acc(yh + (i - lo) * n + 16 * cc,
				       xh + (i - lo) * k + 16 * tk, T, 16 * nc);
		}
	}
}

/* Phase 3 (chunk = partition p): out = (H(yh) * svh + bias)[0..n_out). */
static void xl_out(void *ctx, size_t p, int tid)
{
	const struct xl_job *j = ctx;
	const struct cpu_exl3 *q = j->q;
	const size_t n = j->n, n_out = j->n_out;
	float *yh = xl_yh(j, p);
	size_t lo, hi, i, c;

	(void)tid;
	xl_rows(j, p, &lo, &hi);
	for (i = lo; i < hi; i++) {
		float *y = yh + (i - lo) * n;
		float *o = j->out + i * n_out;

		for (c = 0; c < n; c += 128)
			gpu_exl3_fwht128(y + c);
		if (q->bias)
			for (c = 0; c < n_out; c++)
				o[c] = y[c] * q->svh[c] + q->bias[c];
		else
			for (c = 0; c < n_out; c++)
				o[c] = y[c] * q->svh[c];
	}
}

int cpu_exl3_matmul(struct gpu *g, struct gpu_buf *out,
		    const struct gpu_buf *x, const struct gpu_exl3_weight *w,
		    size_t n_rows, size_t k_in, size_t n_out, struct diag *d)
{
	return cpu_exl3_matmul_host(g, (float *)out->data,
				    (const float *)x->data, w, n_rows, k_in,
				    n_out, d);
}

int cpu_exl3_matmul_host(struct gpu *g, float *out, const float *x,
			 const struct gpu_exl3_weight *w, size_t n_rows,
			 size_t k_in, size_t n_out, struct diag *d)
{
	struct cpu_state *st = cpu_state(g);
	const int nt = st->n_threads;
	const size_t ntn = w->n / 16;
	struct xl_job j;
	size_t per, need, n_ch, c;
	int rc;

	memset(&j, 0, sizeof j);
	j.w = w;
	j.q = w->priv;
	j.x = x;
	j.out = out;
	j.n_rows = n_rows;
	j.k_in = k_in;
	j.n_out = n_out;
	j.k = w->k;
	j.n = w->n;
	/* rows are cut into at most nt partitions, one per thread scratch */
	j.n_part = n_rows < (size_t)nt ? n_rows : (size_t)nt;
	j.rpt = (n_rows + j.n_part - 1) / j.n_part;
	j.n_part = (n_rows + j.rpt - 1) / j.rpt;
	j.cols = cpu_chunk_size(ntn, nt, 1, 1);
	if (j.cols > XL_TILES)
		j.cols = XL_TILES;
	n_ch = (ntn + j.cols - 1) / j.cols;
	/* thread scratch: T + rpt * (k + n) floats */
	per = w->k + w->n;
	if (j.rpt > (SIZE_MAX / sizeof(float) - XL_T) / per)
		return diag_fail(d, GPU_E_INVALID, "exl3: %zu rows too many",
				 n_rows);
	need = XL_T + j.rpt * per;
	rc = cpu_scratch_reserve(g, need, d);
	if (rc < 0)
		return rc;
	j.scratch = st->scratch;
	/* tiny problems: the same phases on the caller (thread 0) */
	if (n_rows * w->k * w->n < 65536) {
		for (c = 0; c < j.n_part; c++)
			xl_in(&j, c, 0);
		for (c = 0; c < n_ch; c++)
			xl_mid(&j, c, 0);
		for (c = 0; c < j.n_part; c++)
			xl_out(&j, c, 0);
		return 0;
	}
	cpu_pool_for(st->pool, j.n_part, xl_in, &j);
	cpu_pool_for(st->pool, n_ch, xl_mid, &j);
	cpu_pool_for(st->pool, j.n_part, xl_out, &j);
	return 0;
}
