/* gpu/cpu/matmul.c — the linear layer on the CPU, the hot loop (and
 * gpu_matmul_multi, a loop over it).
 *
 *   out[i, r] = sum_j x[i, j] * W[r, j] (+ bias[r])
 *   out f32 [n, rows], x f32 [n, k], W f32/f16/bf16 [rows, k]
 *
 * Work split: output rows (weight rows) are divided between threads in
 * blocks of MM_RB, because decode (n = 1) is memory bound and every thread
 * must stream its own part of W.  When there are too few weight rows for
 * the threads (routers, gates), the x rows are divided instead.
 * Within a thread, x is taken in blocks of MM_XB rows (kept in cache) and
 * each group of MM_RB weight rows is converted to f32 once per x block
 * (bf16 -> f32 is a shift, f16 a table-free bit conversion) into the
 * thread's scratch, then multiplied against the block's x rows in 4 x 2
 * tiles so that each loaded weight value serves two tokens.
 * Accumulation is in f32 over LANES independent partial sums (which is what
 * lets the compiler vectorize a reduction without -ffast-math), added up
 * at the end; the result differs from a sequential sum by rounding only.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"

#include <stdlib.h>

#define MM_RB 4
#define MM_XB 64
#define LANES 8

/* dst[0..k) = f32(src[0..k)) for bf16 */
CPU_HOT static void conv_bf16(float *restrict dst, const uint16_t *restrict src,
			      size_t k)
{
	size_t j;

	for (j = 0; j < k; j++) {
		uint32_t u = (uint32_t)src[j] << 16;

		memcpy(&dst[j], &u, sizeof u);
	}
}

static void conv_f16(float *restrict dst, const uint16_t *restrict src, size_t k)
{
	size_t j;

	for (j = 0; j < k; j++)
		dst[j] = gpu_f16_to_f32(src[j]);
}

void cpu_to_f32(float *dst, const struct gpu_buf *b, size_t off, size_t n)
{
	switch (b->dtype) {
	case GPU_DTYPE_F32:
		memcpy(dst, (const float *)b->data + off, n * sizeof(float));
		break;
	case GPU_DTYPE_F16:
		conv_f16(dst, (const uint16_t *)b->data + off, n);
		break;
	case GPU_DTYPE_BF16:
		conv_bf16(dst, (const uint16_t *)b->data + off, n);
		break;
	case GPU_DTYPE_I32:
	case GPU_DTYPE_COUNT:
		memset(dst, 0, n * sizeof(float));
		break;
	}
}

/* Horizontal sum of one accumulator plus the scalar tail. */
static inline float hsum(const float acc[LANES])
{
	float s = 0.0f;
	size_t l;

	for (l = 0; l < LANES; l++)
		s += acc[l];
	return s;
}

/* res[a][b] = w[a] . x[b] for 4 weight rows and 2 x rows, length k.
 * Eight accumulators of LANES floats (one vector register each with AVX):
 * every weight value loaded serves both x rows. */
CPU_HOT static void kern_4x2(const float *restrict w0, const float *restrict w1,
			     const float *restrict w2, const float *restrict w3,
			     const float *restrict x0, const float *restrict x1,
			     size_t k, float res[4][2])
{
	float a00[LANES] = { 0 }, a10[LANES] = { 0 }, a20[LANES] = { 0 },
	      a30[LANES] = { 0 };
	float a01[LANES] = { 0 }, a11[LANES] = { 0 }, a21[LANES] = { 0 },
	      a31[LANES] = { 0 };
	size_t j, l;

	for (j = 0; j + LANES <= k; j += LANES) {
		for (l = 0; l < LANES; l++) {
			float u = x0[j + l], v = x1[j + l];

			a00[l] += w0[j + l] * u;
			a10[l] += w1[j + l] * u;
			a20[l] += w2[j + l] * u;
			a30[l] += w3[j + l] * u;
			a01[l] += w0[j + l] * v;
			a11[l] += w1[j + l] * v;
			a21[l] += w2[j + l] * v;
			a31[l] += w3[j + l] * v;
		}
	}
	res[0][0] = hsum(a00);
	res[1][0] = hsum(a10);
	res[2][0] = hsum(a20);
	res[3][0] = hsum(a30);
	res[0][1] = hsum(a01);
	res[1][1] = hsum(a11);
	res[2][1] = hsum(a21);
	res[3][1] = hsum(a31);
	for (; j < k; j++) {
		res[0][0] += w0[j] * x0[j];
		res[1][0] += w1[j] * x0[j];
		res[2][0] += w2[j] * x0[j];
		res[3][0] += w3[j] * x0[j];
		res[0][1] += w0[j] * x1[j];
		res[1][1] += w1[j] * x1[j];
		res[2][1] += w2[j] * x1[j];
		res[3][1] += w3[j] * x1[j];
	}
}

/* res[a] = w[a] . x for 4 weight rows and one x row. */
CPU_HOT static void kern_4x1(const float *restrict w0, const float *restrict w1,
			     const float *restrict w2, const float *restrict w3,
			     const float *restrict x0, size_t k, float res[4])
{
	float a0[LANES] = { 0 }, a1[LANES] = { 0 }, a2[LANES] = { 0 },
	      a3[LANES] = { 0 };
	size_t j, l;

	for (j = 0; j + LANES <= k; j += LANES) {
		for (l = 0; l < LANES; l++) {
			float u = x0[j + l];

			a0[l] += w0[j + l] * u;
			a1[l] += w1[j + l] * u;
			a2[l] += w2[j + l] * u;
			a3[l] += w3[j + l] * u;
		}
	}
	res[0] = hsum(a0);
	res[1] = hsum(a1);
	res[2] = hsum(a2);
	res[3] = hsum(a3);
	for (; j < k; j++) {
		res[0] += w0[j] * x0[j];
		res[1] += w1[j] * x0[j];
		res[2] += w2[j] * x0[j];
		res[3] += w3[j] * x0[j];
	}
}

/* bf16 weight value as f32 (in a vector register: widen, shift). */
static inline float bf(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

#define BF_LANES 16

static inline float hsum16(const float acc[BF_LANES])
{
	float s = 0.0f;
	size_t l;

	for (l = 0; l < BF_LANES; l++)
		s += acc[l];
	return s;
}

/* Decode path for bf16 without a conversion pass: res[a] = w[a] . x with
 * the bf16 weight rows widened in registers.  16 lanes: with 8, gcc's SLP
 * pass picks 128-bit vectors for the widening loads; with 16 it uses full
 * AVX2 registers in the x86-64-v3 clone. */
CPU_HOT static void kern_4x1_bf16(const uint16_t *restrict w0,
				  const uint16_t *restrict w1,
				  const uint16_t *restrict w2,
				  const uint16_t *restrict w3,
				  const float *restrict x0, size_t k, float res[4])
{
	float a0[BF_LANES] = { 0 }, a1[BF_LANES] = { 0 }, a2[BF_LANES] = { 0 },
	      a3[BF_LANES] = { 0 };
	size_t j, l;

	for (j = 0; j + BF_LANES <= k; j += BF_LANES) {
		for (l = 0; l < BF_LANES; l++) {
			float u = x0[j + l];

			a0[l] += bf(w0[j + l]) * u;
			a1[l] += bf(w1[j + l]) * u;
			a2[l] += bf(w2[j + l]) * u;
			a3[l] += bf(w3[j + l]) * u;
		}
	}
	res[0] = hsum16(a0);
	res[1] = hsum16(a1);
	res[2] = hsum16(a2);
	res[3] = hsum16(a3);
	for (; j < k; j++) {
		res[0] += bf(w0[j]) * x0[j];
		res[1] += bf(w1[j]) * x0[j];
		res[2] += bf(w2[j]) * x0[j];
		res[3] += bf(w3[j]) * x0[j];
	}
}

struct mm_job {
	float *out;
	const float *x;
	const struct gpu_buf *w;
	const struct gpu_buf *bias;
	size_t n, k, rows;
	int split_x; /* divide x rows between threads instead of W rows */
	size_t chunk; /* rows (of x or W) per chunk */
	struct cpu_state *st;
};

/* One thread's share: W rows [r_lo, r_hi), x rows [i_lo, i_hi). */
static void mm_range(const struct mm_job *jb, float *scratch, size_t r_lo,
		     size_t r_hi, size_t i_lo, size_t i_hi)
{
	const size_t k = jb->k, rows = jb->rows;
	const struct gpu_buf *w = jb->w;
	size_t i0, r0, a, i;

	for (i0 = i_lo; i0 < i_hi; i0 += MM_XB) {
		size_t i1 = i0 + MM_XB < i_hi ? i0 + MM_XB : i_hi;

		for (r0 = r_lo; r0 < r_hi; r0 += MM_RB) {
			const float *wr[MM_RB];
			size_t nr = r_hi - r0 < MM_RB ? r_hi - r0 : MM_RB;
			float bias[MM_RB];

			for (a = 0; a < MM_RB; a++)
				bias[a] = jb->bias && a < nr ?
					cpu_elem_f32(jb->bias, r0 + a) : 0.0f;
			if (w->dtype == GPU_DTYPE_BF16 && i1 - i0 == 1) {
				/* decode: convert in registers, no scratch */
				const uint16_t *wb = (const uint16_t *)w->data;
				const uint16_t *p[MM_RB];
				float res[MM_RB];

				for (a = 0; a < MM_RB; a++)
					p[a] = wb + (r0 + (a < nr ? a : nr - 1)) * k;
				kern_4x1_bf16(p[0], p[1], p[2], p[3],
					      jb->x + i0 * k, k, res);
				for (a = 0; a < nr; a++)
					jb->out[i0 * rows + r0 + a] = res[a] + bias[a];
				continue;
			}
			for (a = 0; a < MM_RB; a++) {
				size_t r = r0 + (a < nr ? a : nr - 1);

				if (w->dtype == GPU_DTYPE_F32) {
					wr[a] = (const float *)w->data + r * k;
				} else {
					cpu_to_f32(scratch + a * k, w, r * k, k);
					wr[a] = scratch + a * k;
				}
			}
			for (i = i0; i + 2 <= i1; i += 2) {
				float res[4][2];

				kern_4x2(wr[0], wr[1], wr[2], wr[3],
					 jb->x + i * k, jb->x + (i + 1) * k, k,
					 res);
				for (a = 0; a < nr; a++) {
					jb->out[i * rows + r0 + a] = res[a][0] + bias[a];
					jb->out[(i + 1) * rows + r0 + a] =
						res[a][1] + bias[a];
				}
			}
			if (i < i1) {
				float res[4];

				kern_4x1(wr[0], wr[1], wr[2], wr[3],
					 jb->x + i * k, k, res);
				for (a = 0; a < nr; a++)
					jb->out[i * rows + r0 + a] = res[a] + bias[a];
			}
		}
	}
}

/* Chunk c: x rows [c*chunk, ..) against all of W (split_x), or W rows
 * [c*chunk, ..) against all x rows. */
static void mm_chunk(void *ctx, size_t c, int tid)
{
	const struct mm_job *jb = ctx;
	float *scratch = jb->st->scratch[tid];
	size_t total = jb->split_x ? jb->n : jb->rows;
	size_t lo = c * jb->chunk, hi = lo + jb->chunk;

	if (hi > total)
		hi = total;
	if (jb->split_x)
		mm_range(jb, scratch, 0, jb->rows, lo, hi);
	else
		mm_range(jb, scratch, lo, hi, 0, jb->n);
}

int cpu_matmul_host(struct gpu *g, float *out, const float *x,
		    const struct gpu_buf *w, const struct gpu_buf *bias,
		    size_t n, size_t k, size_t rows, struct diag *d)
{
	struct cpu_state *st = cpu_state(g);
	struct mm_job jb;
	int rc;

	if (w->dtype != GPU_DTYPE_F32) {
		rc = cpu_scratch_reserve(g, MM_RB * k, d);
		if (rc < 0)
			return rc;
	}
	jb.out = out;
	jb.x = x;
	jb.w = w;
	jb.bias = bias;
	jb.n = n;
	jb.k = k;
	jb.rows = rows;
	jb.st = st;
	jb.split_x = rows < (size_t)st->n_threads * MM_RB * 2 &&
		     n >= (size_t)st->n_threads;
	jb.chunk = jb.split_x ? cpu_chunk_size(n, st->n_threads, 1, 1) :
		   cpu_chunk_size(rows, st->n_threads, MM_RB, MM_RB);
	/* tiny problems: threads would cost more than they save */
	if (n * rows * k < 16384)
		jb.chunk = jb.split_x ? n : rows;
	cpu_pool_for(st->pool, ((jb.split_x ? n : rows) + jb.chunk - 1) / jb.chunk,
		     mm_chunk, &jb);
	return 0;
}

int cpu_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_buf *bias, size_t n,
	       size_t k, size_t rows, struct diag *d)
{
	return cpu_matmul_host(g, (float *)out->data, (const float *)x->data, w,
			       bias, n, k, rows, d);
}

/* gpu_matmul_multi: each part on its own, in order (the same bits as
 * separate gpu_matmul calls). */
int cpu_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n, size_t k,
		     const struct gpu_matmul_part *parts, size_t n_parts,
		     struct diag *d)
{
	size_t j;
	int rc;

	for (j = 0; j < n_parts; j++) {
		rc = cpu_matmul_host(g, (float *)parts[j].out->data,
				     (const float *)x->data, parts[j].w,
				     parts[j].bias, n, k, parts[j].rows, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}
