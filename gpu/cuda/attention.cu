/* gpu/cuda/attention.cu — paged KV store (alone and fused with RoPE on q
 * and k) and causal GQA attention.
 *
 * Pool layout (one layer): K, V [n_pages, page_size, n_head_kv, head_dim],
 * f32 or f16; position t of sequence s lives in page
 * page_table[s, t / page_size], slot t % page_size (gpu.h).
 *
 * kv_store: one block per row; bytes: 2 * n_rows * n_head_kv * head_dim *
 * (4 read + 2|4 written).  A row with a bad sequence, position or page is
 * skipped (the CPU backend rejects it; gpu.h allows CUDA to skip).
 *
 * attention: two kernels over the same formula as gpu/cpu/attention.c
 * (only the summation order differs), chosen per 64-row tile of the batch.
 * Scores are taken in the log2 domain: q is multiplied by scale * log2(e)
 * and every exponential is exp2f, so p_t = e^(scale q.k_t - m).
 *
 * Decode kernel (attn_decode_kernel): one block of DEC_THREADS per (row,
 * kv head, group of up to G query heads of that kv head, split), so each
 * K/V row is read once for the G heads of its GQA group (a short
 * context whose grid leaves SMs idle takes half the G; see
 * gpu_cuda_launch_attention).  Lanes form key
 * groups of LPK lanes (LPK = head_dim / 8 rounded up to a power of two,
 * at most 32); a lane holds 8 (or 16: C = 2) consecutive dims, loads them
 * with 16-byte loads (f16) or 2 x 16 bytes (f32), U keys in flight per
 * iteration; the q . k partial sums meet by shuffles inside the group.
 * Every key group keeps its own online softmax (m, l, o) per head:
 *   m' = max(m, s_t), l' = l 2^(m - m') + 2^(s_t - m'),
 *   o' = o 2^(m - m') + 2^(s_t - m') V[t],
 * and the groups of a block are merged at the end (rescale by 2^(m_g -
 * M)): by shuffles inside a warp, then across the warps through shared
 * memory behind one barrier.  The first round's K/V loads are issued
 * before q's, so the two latencies overlap.  Split-K (flash-decoding): when the blocks
 * are too few to fill the GPU the positions lo..p of a row are cut into
 * n_split chunks of a multiple of one block round (att_align: the
 * DEC_THREADS / LPK key groups x U keys a block visits at once, 32
 * positions for head_dim 128 and an f16 pool); each block writes a partial
 * (o, m, l) that attn_combine_kernel merges.  n_split comes from the page
 * table's length (a host value fixed per recorded graph), the chunk from
 * the row's position in device memory (chunk = ceil(len / n_split)
 * rounded up to the round), so a row at position 511 of a 4096-position
 * table spreads over the 16 splits it can fill (128 blocks for 8 KV heads
 * at batch 1, each one full round; chunks of 8 positions instead made 512
 * blocks, 3/4 of their threads idle, in two waves, and 64 partials per
 * head to combine).  A split past the row's length writes only (m = -inf,
 * l = 0), which the combine skips.
 * Bytes: K and V of the context once per (row, kv head); FLOPs 4 * n_head
 * * head_dim per position.
 *
 * Tensor-core decode kernel (attn_dectc_kernel, f16 pools of head_dim <= 128
 * over page tables of DTC_MIN_SPAN positions or more, quantized ones of
 * head_dim 64 or 128 from DTC_QMIN_SPAN; dtc_use): the same
 * blocks, splits and partials, but the GQA group's heads are the rows of
 * an mma.m16n8k16 A operand and each warp streams its own key tiles
 * through a cp.async ring in shared memory, so the bytes in flight no
 * longer cost registers.  Measured on an H200, llama3-8b@exl3:4.0 batch 1:
 * ctx 131072 17.96 -> 7.38 ms a step, batch 8 at ctx 4096 7.4 -> 4.7 ms
 * (docs/PERFORMANCE.md).  q and p are rounded to f16 as in the prefill
 * kernel (~1e-3 relative).
 *
 * Prefill kernel (attn_prefill_kernel, batches of >= ATT_PREFILL_MIN rows,
 * head_dim a multiple of 8 up to 256): one block of 4 warps per (64-row
 * tile, query head), for tiles whose valid rows all belong to one sequence
 * (a prefill chunk; the decode kernel takes the other tiles, so a batch
 * that mixes decoding rows of many sequences stays correct and fast).
 * When the caller promises a single-sequence batch (single_seq) every tile
 * is uniform and the decode kernel is not launched at all (it would only
 * check each tile and exit: 4096 blocks of 36 KB shared memory per layer
 * for a chunk of 512 rows, ~15 us).  Q
 * of the tile (x scale log2 e) and K/V tiles of 64 positions (each
 * position through its own page entry; invalid entries are zero rows and
 * masked out) are converted to f16 (f16 pool: K/V exact) or, for an f32
 * pool, split into two bf16 parts x = hi + lo (bf16 keeps f32's range) and
 * multiplied as hi.hi + lo.hi + hi.lo (3 MMAs, ~2^-16 relative: the f32
 * contract of f32 models holds) in shared memory; each warp owns 16 query
 * rows and computes S = Q K^T and O += P V with mma.sync m16n8k16 (f32
 * accumulate, fragments by ldmatrix), online softmax in registers, causal
 * and window masks per (row, position).  Only the positions [min lo, max
 * p] of the tile's rows are visited, and a warp skips a K/V tile outside
 * its rows' range.  With an f16 pool, rounding Q and P to f16 gives
 * errors of about 1e-3 relative, like the cuBLAS path of matmul for n > 8.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/rope_dev.cuh"
#include "gpu/cuda/exl3_dev.cuh"
#include "gpu/cuda/kvq_dev.cuh"
#include "gpu/cuda/switches.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ATT_TILE 64        /* positions per prefill K/V tile */
#define ATT_SPLIT_ALIGN 8  /* decode split chunks are multiples of this, at
			    * least (att_align) */
#define DEC_THREADS 128
/* keys in flight per key group (C: 8 dims a lane, or 16) over a page
 * table of SPAN positions: f32 2, f16 4, quantized 8 from DEC_QSPAN
 * positions (a key is 1/4 of an f16 one's bytes at 4 bits: more keys keep
 * as many bytes in flight) and 4 below (shorter rounds, more splits:
 * H200, llama3-8b@exl3:4.0, q4 at ctx 512: 3.97 ms a step with 8 against
 * f16's 3.07), 2 at C = 2, whose unpipelined loop holds every key's
 * values in registers */
#define DEC_QSPAN 16384
#define DEC_U(f16, C, span)                                                  \
	((f16) == 2 ? ((C) == 1 ? ((span) >= DEC_QSPAN ? 8 : 4) : 2) :       \
		      (f16) ? 4 : 2)
#define PF_ROWS 64         /* query rows per prefill block (16 per warp) */
#define PF_THREADS 128
#define ATT_PREFILL_MIN 16 /* batches of at least this many rows try the prefill kernel */
#define LOG2E 1.4426950408889634f

template <int F16>
__global__ static void kv_store_kernel(struct gpu_cuda_kv kv, const float *k,
				       const float *v)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const size_t row = kv.n_head_kv * kv.head_dim;
	const size_t i = blockIdx.x;
	const long long sl = kv_slot_at(kv, kv.row_seq[i], kv.row_pos[i], 0);
	size_t slot;

	if (sl < 0)
		return;
	slot = (size_t)sl;
	if constexpr (F16 == 2) {
		/* quantized: a warp per group of 32 values */
		for (size_t g = threadIdx.x >> 5; g < row / 32; g += blockDim.x >> 5) {
			const size_t e = i * row + g * 32 + (threadIdx.x & 31);

			kvq_put((uint32_t *)kv.k, (__half *)kv.ks, slot / 32 + g, kv.kb,
				k[e]);
			kvq_put((uint32_t *)kv.v, (__half *)kv.vs, slot / 32 + g, kv.vb,
				v[e]);
		}
	} else {
		for (size_t j = threadIdx.x; j < row; j += blockDim.x) {
			if (F16) {
				((__half *)kv.k)[slot + j] = __float2half_rn(k[i * row + j]);
				((__half *)kv.v)[slot + j] = __float2half_rn(v[i * row + j]);
			} else {
				((float *)kv.k)[slot + j] = k[i * row + j];
				((float *)kv.v)[slot + j] = v[i * row + j];
			}
		}
	}
}

extern "C" int gpu_cuda_launch_kv_store(void *stream, const struct gpu_cuda_kv *kv,
					const float *k, const float *v)
{
	cudaStream_t s = (cudaStream_t)stream;

	if (kv->f16 == 2)
		(void)tern_launch(kv_store_kernel<2>, (unsigned)kv->n_rows, 128,
				0, s, *kv, k, v);
	else if (kv->f16)
		(void)tern_launch(kv_store_kernel<1>, (unsigned)kv->n_rows, 128,
				0, s, *kv, k, v);
	else
		(void)tern_launch(kv_store_kernel<0>, (unsigned)kv->n_rows, 128,
				0, s, *kv, k, v);
	return (int)cudaGetLastError();
}

/* ---- RoPE + kv_store ------------------------------------------------------
 * q [n_rows, n_head, hd], k, v [n_rows, n_head_kv, hd] f32.  One warp per
 * (row i, unit u): u < n_head rotates query head u; u = n_head + hk
 * rotates key head hk and stores it and value head hk at the row's slot.
 * Lane l owns the rotation pairs (f, f + half) for f = l + 32 j < half
 * (half = n_rot / 2), and for a key unit the dims l + 32 j of v and the
 * unrotated tail [n_rot, hd) of k.  Every load (x pairs, inv_freq, v,
 * tail, the row's sequence / position / page entry) is issued before the
 * arithmetic, so a (row, head) costs about two memory latencies (the page
 * entry depends on the position) instead of three kernels' worth.  Angles
 * as rope_kernel (gpu/cuda/ops.cu) and the CPU: theta = (float)pos_c(f) *
 * inv_freq[f], cos and sin times attn_factor; computed per (row, head):
 * n_head + n_head_kv times per row instead of once, a few thousand sincosf
 * for a decode step.  Bytes: q, k read and written once, v read once, the
 * pool rows written once. */
#define RKV_WARPS 4
#define RKV_PAIRS (GPU_CUDA_MAX_HEAD_DIM / 2 / 32) /* pairs per lane, max */
#define RKV_DIMS (GPU_CUDA_MAX_HEAD_DIM / 32)      /* dims per lane, max */

template <int F16>
__device__ __forceinline__ void pool_put(void *pool, size_t e, float x)
{
	if (F16)
		((__half *)pool)[e] = __float2half_rn(x);
	else
		((float *)pool)[e] = x;
}

template <int F16>
__global__ static void __launch_bounds__(RKV_WARPS * 32)
rope_kv_kernel(struct gpu_cuda_kv kv, float *q, float *k, const float *v,
	       unsigned n_head, unsigned half, const int32_t *pos,
	       const float *inv_freq, int s0, int s1, int mrope, float af,
	       const void *qn, const void *kn, int nwt, float eps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const unsigned lane = threadIdx.x & 31;
	const size_t units = (size_t)n_head + kv.n_head_kv;
	const size_t u = (size_t)blockIdx.x * RKV_WARPS + (threadIdx.x >> 5);
	const size_t hd = kv.head_dim, n = kv.n_rows;
	const size_t i = u / units, h = u % units;
	const int is_k = h >= n_head;
	const size_t hk = is_k ? h - n_head : 0;
	float *x;
	float a[RKV_PAIRS], b[RKV_PAIRS], fr[RKV_PAIRS], vv[RKV_DIMS], tl[RKV_DIMS];
	int32_t p0, p1 = 0, p2 = 0, rs = -1, rp = -1;
	long long slot = -1; /* element offset of (slot, hk, 0) in the pool */

	if (i >= n)
		return; /* whole warps only: u is warp-uniform */
	/* the head's RMSNorm weight (q/k norm) or NULL */
	const void *nw = is_k ? kn : qn;
	x = is_k ? k + (i * kv.n_head_kv + hk) * hd : q + (i * n_head + h) * hd;
	p0 = pos[i];
	if (mrope) {
		p1 = pos[n + i];
		p2 = pos[2 * n + i];
	}
	if (is_k) {
		rs = kv.row_seq[i];
		rp = kv.row_pos[i];
	}
#pragma unroll
	for (int j = 0; j < RKV_PAIRS; j++) {
		const unsigned f = lane + 32u * j;

		if (f < half) {
			a[j] = x[f];
			b[j] = x[f + half];
			fr[j] = inv_freq[f];
		}
	}
	if (is_k || nw) {
#pragma unroll
		for (int j = 0; j < RKV_DIMS; j++) {
			const size_t dd = lane + 32u * j;

			if (dd < hd) {
				if (is_k)
					vv[j] = v[(i * kv.n_head_kv + hk) * hd + dd];
				tl[j] = dd >= 2 * (size_t)half ? x[dd] : 0.0f;
			}
		}
	}
	if (nw) {
		/* gpu_rmsnorm over the head's hd values (warp-wide), in
		 * place, before the rotation */
		float ss = 0.0f, inv;

#pragma unroll
		for (int j = 0; j < RKV_PAIRS; j++)
			if (lane + 32u * j < half)
				ss += a[j] * a[j] + b[j] * b[j];
#pragma unroll
		for (int j = 0; j < RKV_DIMS; j++)
			if (lane + 32u * j < hd)
				ss += tl[j] * tl[j]; /* 0 inside the rotated dims */
		ss = tern_warp_sum(ss);
		inv = 1.0f / sqrtf(ss / (float)hd + eps);
#pragma unroll
		for (int j = 0; j < RKV_PAIRS; j++) {
			const unsigned f = lane + 32u * j;

			if (f < half) {
				a[j] = tern_ldw(nw, nwt, f) * (a[j] * inv);
				b[j] = tern_ldw(nw, nwt, f + half) * (b[j] * inv);
			}
		}
#pragma unroll
		for (int j = 0; j < RKV_DIMS; j++) {
			const size_t dd = lane + 32u * j;

			if (dd < hd && dd >= 2 * (size_t)half) {
				tl[j] = tern_ldw(nw, nwt, dd) * (tl[j] * inv);
				x[dd] = tl[j];
			}
		}
	}
	if (is_k)
		slot = kv_slot_at(kv, rs, rp, hk);
#pragma unroll
	for (int j = 0; j < RKV_PAIRS; j++) {
		const unsigned f = lane + 32u * j;

		if (f < half) {
			const int comp = mrope ? ((int)f < s0 ? 0 : (int)f < s1 ? 1 : 2) : 0;
			const int32_t pc = comp == 0 ? p0 : comp == 1 ? p1 : p2;
			float ra, rb;

			rope_pair(a[j], b[j], pc, fr[j], af, &ra, &rb);
			x[f] = ra;
			x[f + half] = rb;
			if (F16 != 2 && slot >= 0) {
				pool_put<F16>(kv.k, (size_t)slot + f, ra);
				pool_put<F16>(kv.k, (size_t)slot + f + half, rb);
			}
		}
	}
	if (F16 != 2 && slot >= 0) {
#pragma unroll
		for (int j = 0; j < RKV_DIMS; j++) {
			const size_t dd = lane + 32u * j;

			if (dd < hd) {
				pool_put<F16>(kv.v, (size_t)slot + dd, vv[j]);
				if (dd >= 2 * (size_t)half)
					pool_put<F16>(kv.k, (size_t)slot + dd, tl[j]);
			}
		}
	}
	if (F16 == 2 && slot >= 0) {
		/* quantized: the rotated key is in x (this warp's lanes wrote
		 * it), v in vv; lane l holds value l of each group */
		__syncwarp();
#pragma unroll
		for (int j = 0; j < RKV_DIMS; j++)
			if (32u * j < hd) {
				const size_t g = (size_t)slot / 32 + j;

				kvq_put((uint32_t *)kv.k, (__half *)kv.ks, g, kv.kb,
					x[32u * j + lane]);
				kvq_put((uint32_t *)kv.v, (__half *)kv.vs, g, kv.vb,
					vv[j]);
			}
	}
}

extern "C" int gpu_cuda_launch_rope_kv_store(void *stream,
					     const struct gpu_cuda_kv *kv,
					     float *q, float *k, const float *v,
					     size_t n_head, size_t n_rot,
					     const int32_t *pos,
					     const float *inv_freq, const int *sec,
					     float attn_factor, const void *q_norm,
					     const void *k_norm, int norm_wt,
					     float norm_eps)
{
	cudaStream_t s = (cudaStream_t)stream;
	const size_t warps = kv->n_rows * (n_head + kv->n_head_kv);
	const size_t nb = (warps + RKV_WARPS - 1) / RKV_WARPS;

	if (warps == 0)
		return 0;
	if (nb > INT_MAX || n_rot / 2 > GPU_CUDA_MAX_HEAD_DIM / 2)
		return (int)cudaErrorInvalidValue;
	if (kv->f16 == 2)
		(void)tern_launch(rope_kv_kernel<2>, (unsigned)nb,
				RKV_WARPS * 32, 0, s, *kv, q, k, v,
				(unsigned)n_head, (unsigned)(n_rot / 2), pos,
				inv_freq, sec ? sec[0] : 0, sec ? sec[1] : 0,
				sec != NULL, attn_factor, q_norm, k_norm, norm_wt,
				norm_eps);
	else if (kv->f16)
		(void)tern_launch(rope_kv_kernel<1>, (unsigned)nb,
				RKV_WARPS * 32, 0, s, *kv, q, k, v,
				(unsigned)n_head, (unsigned)(n_rot / 2), pos,
				inv_freq, sec ? sec[0] : 0, sec ? sec[1] : 0,
				sec != NULL, attn_factor, q_norm, k_norm, norm_wt,
				norm_eps);
	else
		(void)tern_launch(rope_kv_kernel<0>, (unsigned)nb,
				RKV_WARPS * 32, 0, s, *kv, q, k, v,
				(unsigned)n_head, (unsigned)(n_rot / 2), pos,
				inv_freq, sec ? sec[0] : 0, sec ? sec[1] : 0,
				sec != NULL, attn_factor, q_norm, k_norm, norm_wt,
				norm_eps);
	return (int)cudaGetLastError();
}

/* ---- shared helpers ----------------------------------------------------- */

/* The 64-row tile starting at r0 (one warp, every lane gets the result):
 * uniform = every valid row (sequence in range, position >= 0) belongs to
 * one sequence (also when none is valid); seq = that sequence or -1;
 * [tmin, tmax] = union of the valid rows' ranges lo..p. */
struct tile_info {
	int uniform, seq;
	long long tmin, tmax;
};

__device__ __forceinline__ tile_info tile_scan(const struct gpu_cuda_kv &kv,
					       size_t r0, size_t window)
{
	const int lane = threadIdx.x & 31;
	tile_info ti;
	int sq[2], ok[2];
	long long lo = LLONG_MAX, hi = -1;
	unsigned b0, b1;

	for (int k = 0; k < 2; k++) {
		const size_t r = r0 + lane + 32 * k;

		ok[k] = 0;
		sq[k] = -1;
		if (r < kv.n_rows) {
			const int32_t s = kv.row_seq[r], p = kv.row_pos[r];

			if (s >= 0 && (size_t)s < kv.n_seq && p >= 0) {
				ok[k] = 1;
				sq[k] = s;
				hi = hi > p ? hi : p;
				{
					long long l = window && (size_t)p + 1 > window ?
						(long long)p + 1 - (long long)window : 0;
					lo = lo < l ? lo : l;
				}
			}
		}
	}
	b0 = __ballot_sync(0xffffffffu, ok[0]);
	b1 = __ballot_sync(0xffffffffu, ok[1]);
	if (!b0 && !b1) {
		ti.uniform = 1;
		ti.seq = -1;
		ti.tmin = 0;
		ti.tmax = -1;
		return ti;
	}
	ti.seq = __shfl_sync(0xffffffffu, b0 ? sq[0] : sq[1],
			     __ffs(b0 ? b0 : b1) - 1);
	ti.uniform = __all_sync(0xffffffffu, (!ok[0] || sq[0] == ti.seq) &&
						     (!ok[1] || sq[1] == ti.seq));
	for (int o = 16; o > 0; o >>= 1) {
		long long l2 = __shfl_xor_sync(0xffffffffu, lo, o);
		long long h2 = __shfl_xor_sync(0xffffffffu, hi, o);

		lo = lo < l2 ? lo : l2;
		hi = hi > h2 ? hi : h2;
	}
	ti.tmin = lo;
	ti.tmax = hi;
	return ti;
}

/* 8 pool elements from element offset e (vec: 16-byte aligned, all 8 in
 * range; else the first n <= 8, the rest 0) as f32. */
template <int F16>
__device__ __forceinline__ void ld8(float *x, const void *pool, size_t e, int vec,
				    int n)
{
	if (vec) {
		if (F16) {
			uint4 u = *(const uint4 *)((const __half *)pool + e);
			const __half2 *h2 = (const __half2 *)&u;

#pragma unroll
			for (int j = 0; j < 4; j++) {
				float2 f = __half22float2(h2[j]);

				x[2 * j] = f.x;
				x[2 * j + 1] = f.y;
			}
		} else {
			float4 a = *(const float4 *)((const float *)pool + e);
			float4 b = *(const float4 *)((const float *)pool + e + 4);

			x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
			x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
		}
		return;
	}
#pragma unroll
	for (int j = 0; j < 8; j++)
		x[j] = j < n ? (F16 ? __half2float(((const __half *)pool)[e + j]) :
				      ((const float *)pool)[e + j]) :
			       0.0f;
}

/* ---- decode kernel ------------------------------------------------------ */

/* Block ((i * n_head_kv + hk) * n_grp + grp, sp): row i, query heads h0 ..
 * h0 + ng - 1 (h0 = hk n_rep + grp G), positions [lo + sp chunk, min(p, lo
 * + (sp + 1) chunk - 1)], chunk = ceil((p - lo + 1) / n_split) rounded up to
 * ALIGN (att_align: a whole number of the block's key rounds).  part_o NULL (one split): out = o / l; else the
 * unnormalised o and (m, l) (log2 domain) go to the partial slot
 * (i * n_head + h) * n_split + sp.  skip_uniform: rows of uniform tiles
 * belong to the prefill kernel (same predicate, tile_scan). */
template <int F16, int G, int C, int U>
__global__ static void __launch_bounds__(DEC_THREADS)
attn_decode_kernel(struct gpu_cuda_kv kv, float *out, const float *q,
		   unsigned n_head, unsigned n_grp, float qscale, size_t window,
		   float *part_o, float *part_ml, int skip_uniform,
		   int lpk, int vec, unsigned align)
{
	TERN_PDL_LATE_WAIT();
	/* The row's sequence, position and first round's pages come from
	 * buffers only the host writes (gpu_kv_batch: gpu_buf_write), so
	 * they are read before the wait, overlapping the previous kernel
	 * (which lets this one launch early: xl_output_kernel with RoPE);
	 * q and the K/V pool, which kernels write, only after it. */
	/* per warp and head: o (hd <= 256 C), m, l */
	__shared__ __align__(16) float red[DEC_THREADS / 32 * G * 256 * C];
	__shared__ float sm_m[DEC_THREADS / 32][G], sm_l[DEC_THREADS / 32][G];
	const int tid = threadIdx.x, li = tid & (lpk - 1), kg = tid / lpk;
	const int nkg = DEC_THREADS / lpk;
	const size_t hd = kv.head_dim, ps = kv.page_size;
	const size_t rowel = kv.n_head_kv * hd;
	/* 32-bit index math (64-bit division is a long subroutine on the
	 * critical path of a latency-bound kernel) */
	const unsigned nhk = (unsigned)kv.n_head_kv, n_rep = n_head / nhk;
	const unsigned bk = blockIdx.x / n_grp, grp = blockIdx.x - bk * n_grp;
	const size_t hk = bk % nhk, i = bk / nhk;
	const size_t h0 = hk * n_rep + grp * G;
	const int ng = (int)(n_rep - grp * G < (unsigned)G ? n_rep - grp * G : G);
	const unsigned sp = blockIdx.y, n_split = gridDim.y;
	int32_t s32, p32;
	float qr[G][C][8], o[G][C][8], m[G], l[G];
	long long t_begin, t_end;
	size_t s = 0;

	if (skip_uniform && tile_scan(kv, i / PF_ROWS * PF_ROWS, window).uniform)
		return; /* the prefill kernel owns this row */
	s32 = kv.row_seq[i];
	p32 = kv.row_pos[i];
	if (s32 < 0 || (size_t)s32 >= kv.n_seq || p32 < 0) {
		t_begin = 1;
		t_end = 0; /* invalid row: empty range, zeros out */
	} else {
		const unsigned p = (unsigned)p32;
		const unsigned lo = window && (size_t)p + 1 > window ?
					    (unsigned)((size_t)p + 1 - window) : 0;
		unsigned chunk = (p - lo + n_split) / n_split; /* ceil(len / n_split) */

		chunk = (chunk + align - 1) / align * align;
		s = (size_t)s32;
		t_begin = (long long)lo + (long long)sp * chunk;
		t_end = t_begin + (long long)chunk - 1 < (long long)p ?
				t_begin + (long long)chunk - 1 : (long long)p;
	}
	/* f16 pool, 16-byte rows: the round's K/V stay packed (8 halves per
	 * uint4) and the NEXT round's loads are issued before this round is
	 * computed, so a block no longer waits one memory latency per round
	 * (at ctx 8192, 4 rounds per split, that wait was most of the
	 * kernel: DRAM 10% busy with 2 blocks per SM).  Only for C = 1 and
	 * G <= 4: elsewhere the extra registers spill. */
	constexpr bool PIPE = F16 == 1 && C == 1 && G <= 4;
	const bool pipe = PIPE && (vec & 2); /* vec | 2: see att_pipe */
	const long long step = (long long)nkg * U;
	uint4 kp[U][C], vp[U][C];
	long long pgp[U];
	int okp[U];
	/* a round's pages (host-written table), then its K/V loads */
	auto pages = [&](long long b0) {
#pragma unroll
		for (int u = 0; u < U; u++) {
			const long long t = b0 + kg + (long long)u * nkg;

			pgp[u] = t <= t_end ? kv_page(kv, s, (size_t)t) : -1;
		}
	};
	auto loads = [&](long long b0) {
#pragma unroll
		for (int u = 0; u < U; u++) {
			const long long t = b0 + kg + (long long)u * nkg;
			const long long pg = pgp[u];

			okp[u] = pg >= 0;
#pragma unroll
			for (int c = 0; c < C; c++) {
				const size_t d0 = (size_t)(li + c * lpk) * 8;

				if (okp[u] && d0 < hd) {
					const size_t e = ((size_t)pg * ps + (unsigned)t % (unsigned)ps) *
							 rowel + hk * hd + d0;

					kp[u][c] = *(const uint4 *)((const __half *)kv.k + e);
					vp[u][c] = *(const uint4 *)((const __half *)kv.v + e);
				} else {
					kp[u][c] = vp[u][c] = make_uint4(0, 0, 0, 0);
				}
			}
		}
	};
	auto fetch = [&](long long b0) {
		pages(b0);
		loads(b0);
	};
	/* quantized pool, pipelined (C = 1): the next round's words and
	 * scales (raw) while this round is computed */
	constexpr bool QPIPE = F16 == 2 && C == 1;
	uint32_t kr[QPIPE ? U : 1][3], vr[QPIPE ? U : 1][3];
	unsigned short ksr[QPIPE ? U : 1], vsr[QPIPE ? U : 1];
	const unsigned qpart = (unsigned)li & 3u; /* this lane's 8 of a group */
	auto qloads = [&](long long b0) {
#pragma unroll
		for (int u = 0; u < (QPIPE ? U : 0); u++) {
			const long long t = b0 + kg + (long long)u * nkg;
			const long long pg = pgp[u];
			const size_t d0 = (size_t)li * 8;

			okp[u] = pg >= 0;
			if (okp[u] && d0 < hd) {
				const size_t gi = (((size_t)pg * ps + (unsigned)t % (unsigned)ps) *
						   rowel + hk * hd + d0) / 32;

				kvq_load_raw((const uint32_t *)kv.k, gi, kv.kb, qpart, kr[u]);
				kvq_load_raw((const uint32_t *)kv.v, gi, kv.vb, qpart, vr[u]);
				ksr[u] = ((const unsigned short *)kv.ks)[gi];
				vsr[u] = ((const unsigned short *)kv.vs)[gi];
			} else {
				kr[u][0] = kr[u][1] = kr[u][2] = 0;
				vr[u][0] = vr[u][1] = vr[u][2] = 0;
				ksr[u] = vsr[u] = 0; /* step 0: no contribution */
			}
		}
	};

	/* the first round's pages before the wait; its K/V loads go out
	 * before q's: their latencies overlap (q and position p were written
	 * by the kernel before, the rest long ago) */
	if ((pipe || QPIPE) && t_begin <= t_end)
		pages(t_begin);
	tern_pdl_wait(); /* q and the pool: see the top */
	if (pipe && t_begin <= t_end)
		loads(t_begin);
	if (QPIPE && t_begin <= t_end)
		qloads(t_begin);
#pragma unroll
	for (int g = 0; g < G; g++) {
		m[g] = -INFINITY;
		l[g] = 0.0f;
#pragma unroll
		for (int c = 0; c < C; c++) {
			const size_t d0 = (size_t)(li + c * lpk) * 8;
			const int nd = d0 < hd ? (hd - d0 < 8 ? (int)(hd - d0) : 8) : 0;

#pragma unroll
			for (int e = 0; e < 8; e++) {
				o[g][c][e] = 0.0f;
				qr[g][c][e] = g < ng && e < nd ?
					q[(i * n_head + h0 + g) * hd + d0 + e] : 0.0f;
			}
		}
	}
#pragma unroll
	for (int g = 0; g < G; g++)
#pragma unroll
		for (int c = 0; c < C; c++) {
			if constexpr (F16 == 2) /* into the keys' rotated domain */
				kvq_h32_8x4(qr[g][c], 1, 2);
#pragma unroll
			for (int e = 0; e < 8; e++)
				qr[g][c][e] *= qscale;
		}
	/* quantized pool: a key value is step (c + 0.5 - m), so q . k over
	 * a lane's 8 values is step (q . c + (0.5 - m) sum q) and the
	 * weighted values sum_t p_t step_t (c_t + 0.5 - m): the codes go
	 * into the products raw, qsum and ob carry the offset */
	const float koff = F16 == 2 ? 0.5f - (float)(1u << (kv.kb - 1)) : 0.0f;
	const float voff = F16 == 2 ? 0.5f - (float)(1u << (kv.vb - 1)) : 0.0f;
	float qsum[G][C], ob[G][C];

#pragma unroll
	for (int g = 0; g < G; g++)
#pragma unroll
		for (int c = 0; c < C; c++) {
			float a = 0.0f;

#pragma unroll
			for (int e = 0; e < 8; e++)
				a += qr[g][c][e];
			qsum[g][c] = a * koff;
			ob[g][c] = 0.0f;
		}
	/* base: warp-uniform trip count (the shuffles need every lane) */
	for (long long base = t_begin; base <= t_end; base += step) {
		if constexpr (QPIPE) {
			/* this round from the raw registers: the scores from
			 * the keys' words, then the next round's loads issued
			 * (over the registers just read, the values' words
			 * copied first), then softmax and values */
			uint32_t vc[U][3];
			float kst1[U], vst1[U], sq[U][G], pq[G][U];
			int okc[U];
			const float kinv = 1.0f / (float)(1u << (kv.kb - 1));
			const float vinv = 1.0f / (float)(1u << (kv.vb - 1));

#pragma unroll
			for (int u = 0; u < U; u++) {
				float kf[8];

				okc[u] = okp[u];
				kst1[u] = __half2float(__ushort_as_half(ksr[u])) * kinv;
				vst1[u] = __half2float(__ushort_as_half(vsr[u])) * vinv;
				kvq_raw_codes(kr[u], kv.kb, kf);
#pragma unroll
				for (int j = 0; j < 3; j++)
					vc[u][j] = vr[u][j];
#pragma unroll
				for (int g = 0; g < G; g++) {
					float b = qsum[g][0];

#pragma unroll
					for (int e = 0; e < 8; e++)
						b += qr[g][0][e] * kf[e];
					sq[u][g] = b * kst1[u];
				}
			}
			if (base + step <= t_end) {
				pages(base + step);
				qloads(base + step);
			}
#pragma unroll
			for (int u = 0; u < U; u++)
#pragma unroll
				for (int g = 0; g < G; g++)
					for (int off = lpk >> 1; off > 0; off >>= 1)
						sq[u][g] += __shfl_xor_sync(0xffffffffu, sq[u][g], off);
#pragma unroll
			for (int g = 0; g < G; g++) {
				float mx = m[g], corr;

#pragma unroll
				for (int u = 0; u < U; u++)
					if (okc[u])
						mx = fmaxf(mx, sq[u][g]);
				if (mx == -INFINITY) {
#pragma unroll
					for (int u = 0; u < U; u++)
						pq[g][u] = 0.0f;
					continue; /* nothing valid yet */
				}
				corr = exp2f(m[g] - mx);
				l[g] *= corr;
				ob[g][0] *= corr;
#pragma unroll
				for (int e = 0; e < 8; e++)
					o[g][0][e] *= corr;
#pragma unroll
				for (int u = 0; u < U; u++) {
					const float pp = okc[u] ? exp2f(sq[u][g] - mx) : 0.0f;

					l[g] += pp;
					pq[g][u] = pp * vst1[u];
					ob[g][0] += pq[g][u];
				}
				m[g] = mx;
			}
#pragma unroll
			for (int u = 0; u < U; u++) {
				float vf[8];

				kvq_raw_codes(vc[u], kv.vb, vf);
#pragma unroll
				for (int g = 0; g < G; g++)
#pragma unroll
					for (int e = 0; e < 8; e++)
						o[g][0][e] += pq[g][u] * vf[e];
			}
			continue;
		}
		float kx[U][C][8], vx[U][C][8], sc[U][G];
		float kst[U][C], vst[U][C]; /* quantized: the groups' steps */
		int ok[U];

		if (pipe) {
#pragma unroll
			for (int u = 0; u < U; u++) {
				ok[u] = okp[u];
#pragma unroll
				for (int c = 0; c < C; c++) {
					const __half2 *hk2 = (const __half2 *)&kp[u][c];
					const __half2 *hv2 = (const __half2 *)&vp[u][c];

#pragma unroll
					for (int j = 0; j < 4; j++) {
						const float2 fk = __half22float2(hk2[j]);
						const float2 fv = __half22float2(hv2[j]);

						kx[u][c][2 * j] = fk.x;
						kx[u][c][2 * j + 1] = fk.y;
						vx[u][c][2 * j] = fv.x;
						vx[u][c][2 * j + 1] = fv.y;
					}
				}
			}
			if (base + step <= t_end)
				fetch(base + step);
		} else {
#pragma unroll
			for (int u = 0; u < U; u++) {
				const long long t = base + kg + (long long)u * nkg;
				long long pg = -1;

				if (t <= t_end)
					pg = kv_page(kv, s, (size_t)t);
				ok[u] = pg >= 0;
#pragma unroll
				for (int c = 0; c < C; c++) {
					const size_t d0 = (size_t)(li + c * lpk) * 8;

					if (ok[u] && d0 < hd) {
						const size_t e = ((size_t)pg * ps +
								  (unsigned)t % (unsigned)ps) *
								 rowel + hk * hd + d0;
						const int nd = hd - d0 < 8 ? (int)(hd - d0) : 8;

						if constexpr (F16 == 2) {
							/* raw codes, rotated
							 * domain; e a multiple
							 * of 8 */
							kvq_codes8((const uint32_t *)kv.k,
								   e / 32, kv.kb,
								   (unsigned)(e % 32) / 8,
								   kx[u][c]);
							kvq_codes8((const uint32_t *)kv.v,
								   e / 32, kv.vb,
								   (unsigned)(e % 32) / 8,
								   vx[u][c]);
							kst[u][c] = kvq_step((const __half *)kv.ks,
									     e / 32, kv.kb);
							vst[u][c] = kvq_step((const __half *)kv.vs,
									     e / 32, kv.vb);
						} else {
							ld8<F16>(kx[u][c], kv.k, e, vec, nd);
							ld8<F16>(vx[u][c], kv.v, e, vec, nd);
						}
					} else {
#pragma unroll
						for (int e = 0; e < 8; e++)
							kx[u][c][e] = vx[u][c][e] = 0.0f;
						kst[u][c] = vst[u][c] = 0.0f;
					}
				}
			}
		}
#pragma unroll
		for (int u = 0; u < U; u++)
#pragma unroll
			for (int g = 0; g < G; g++) {
				float a = 0.0f;

#pragma unroll
				for (int c = 0; c < C; c++) {
					if constexpr (F16 == 2) {
						float b = qsum[g][c];

#pragma unroll
						for (int e = 0; e < 8; e++)
							b += qr[g][c][e] * kx[u][c][e];
						a += kst[u][c] * b;
					} else {
#pragma unroll
						for (int e = 0; e < 8; e++)
							a += qr[g][c][e] * kx[u][c][e];
					}
				}
				for (int off = lpk >> 1; off > 0; off >>= 1)
					a += __shfl_xor_sync(0xffffffffu, a, off);
				sc[u][g] = a;
			}
#pragma unroll
		for (int g = 0; g < G; g++) {
			float mx = m[g], corr, p[U];

#pragma unroll
			for (int u = 0; u < U; u++)
				if (ok[u])
					mx = fmaxf(mx, sc[u][g]);
			if (mx == -INFINITY)
				continue; /* nothing valid yet */
			corr = exp2f(m[g] - mx); /* 0 on the first valid key */
			l[g] *= corr;
#pragma unroll
			for (int u = 0; u < U; u++) {
				p[u] = ok[u] ? exp2f(sc[u][g] - mx) : 0.0f;
				l[g] += p[u];
			}
			m[g] = mx;
#pragma unroll
			for (int c = 0; c < C; c++) {
				float pv[U];

#pragma unroll
				for (int u = 0; u < U; u++)
					pv[u] = F16 == 2 ? p[u] * vst[u][c] : p[u];
				if constexpr (F16 == 2) {
					float a = ob[g][c] * corr;

#pragma unroll
					for (int u = 0; u < U; u++)
						a += pv[u];
					ob[g][c] = a;
				}
#pragma unroll
				for (int e = 0; e < 8; e++) {
					float a = o[g][c][e] * corr;

#pragma unroll
					for (int u = 0; u < U; u++)
						a += pv[u] * vx[u][c][e];
					o[g][c][e] = a;
				}
			}
		}
	}
	tern_pdl_trigger(); /* the main loop is done: see gpu/cuda/pdl.cuh */
	if constexpr (F16 == 2) /* the values' offset, then o back from
				 * their rotated domain */
#pragma unroll
		for (int g = 0; g < G; g++)
#pragma unroll
			for (int c = 0; c < C; c++) {
#pragma unroll
				for (int e = 0; e < 8; e++)
					o[g][c][e] += voff * ob[g][c];
				kvq_h32_8x4(o[g][c], 1, 2);
			}
	/* merge the key groups (M = max m_k, o = sum o_k 2^(m_k - M), same
	 * for l): first the 32 / lpk groups of a warp by shuffles, then the
	 * DEC_THREADS / 32 warps through shared memory with one barrier (the
	 * readers rescale; 32-bit index math) */
	for (int off = lpk; off < 32; off <<= 1)
#pragma unroll
		for (int g = 0; g < G; g++) {
			const float m2 = __shfl_xor_sync(0xffffffffu, m[g], off);
			const float l2 = __shfl_xor_sync(0xffffffffu, l[g], off);
			const float M = fmaxf(m[g], m2);
			const float f1 = m[g] == -INFINITY ? 0.0f : exp2f(m[g] - M);
			const float f2 = m2 == -INFINITY ? 0.0f : exp2f(m2 - M);

			l[g] = l[g] * f1 + l2 * f2;
			m[g] = M;
#pragma unroll
			for (int c = 0; c < C; c++)
#pragma unroll
				for (int e = 0; e < 8; e++)
					o[g][c][e] = o[g][c][e] * f1 +
						     __shfl_xor_sync(0xffffffffu, o[g][c][e], off) * f2;
		}
	{
		constexpr int W = DEC_THREADS / 32;
		const unsigned warp = (unsigned)tid >> 5, hdu = (unsigned)hd;

		if (tid - (int)warp * 32 < lpk) { /* key group 0 of each warp */
			if (li == 0)
#pragma unroll
				for (int g = 0; g < G; g++) {
					sm_m[warp][g] = m[g];
					sm_l[warp][g] = l[g];
				}
#pragma unroll
			for (int g = 0; g < G; g++)
#pragma unroll
				for (int c = 0; c < C; c++) {
					const unsigned d0 = (unsigned)(li + c * lpk) * 8;

					if (d0 < hdu)
#pragma unroll
						for (int e = 0; e < 8; e++)
							if (d0 + e < hdu)
								red[(warp * G + g) * hdu + d0 + e] =
									o[g][c][e];
				}
		}
		__syncthreads();
		for (unsigned idx = tid; idx < (unsigned)ng * hdu; idx += DEC_THREADS) {
			const unsigned g = idx / hdu, d = idx - g * hdu;
			const size_t h = h0 + g;
			float acc = 0.0f, L = 0.0f, M = -INFINITY, f[W];

#pragma unroll
			for (int w = 0; w < W; w++)
				M = fmaxf(M, sm_m[w][g]);
#pragma unroll
			for (int w = 0; w < W; w++) {
				f[w] = sm_m[w][g] == -INFINITY ? 0.0f : exp2f(sm_m[w][g] - M);
				L += sm_l[w][g] * f[w];
				acc += red[(w * G + g) * hdu + d] * f[w];
			}
			if (part_o) {
				const size_t slot = (i * n_head + h) * n_split + sp;

				if (M > -INFINITY) /* else the combine never reads it */
					part_o[slot * hd + d] = acc;
				if (d == 0) {
					part_ml[2 * slot] = M;
					part_ml[2 * slot + 1] = L;
				}
			} else {
				out[(i * n_head + h) * hd + d] = L > 0.0f ? acc / L : 0.0f;
			}
		}
	}
}

/* The o_proj input of one (row, head) rh = i n_head + h (head_dim 128,
 * one 128-block of that linear's input): sv[d] = out[d] * suh[h 128 + d]
 * (every thread's, published by the barrier here), H128 by warp 0 and
 * rounded to f16 at xh[i k + h 128] — xl_input_kernel's arithmetic on
 * the same values, so the bits of the input launch it replaces. */
__device__ __forceinline__ void attn_rot_head(const struct gpu_cuda_att_rot &rot,
					      size_t rh, size_t n_head,
					      const float *sv)
{
	__syncthreads();
	if (threadIdx.x < 32) {
		const unsigned lane = threadIdx.x;
		const size_t i = rh / n_head, h = rh % n_head;
		float v[4];

#pragma unroll
		for (int q = 0; q < 4; q++)
			v[q] = sv[4 * lane + q];
		xl_fwht128(v);
		xl_store_h4((__half *)rot.xh + i * rot.k + h * 128 + 4 * lane, v);
	}
}

/* Merge the n_split partials of (row, head) = blockIdx.x (log2 domain):
 *   M = max m_s, L = sum_s l_s 2^(m_s - M), out = sum_s o_s 2^(m_s - M) / L
 * (empty splits have m = -inf, l = 0 and drop out; their o is never
 * written nor read).  Latency, not bytes, is the cost at batch 1 (up to
 * 64 partials per head, in L2): thread s < n_split loads (m_s, l_s) and
 * block reductions give M and L (one load round instead of n_split
 * dependent ones); then each thread sums its dims over the splits with
 * COMB_UNROLL partial loads in flight.  blockDim (COMB_THREADS) >=
 * GPU_CUDA_ATT_MAX_SPLIT. */
#define COMB_THREADS 128
#define COMB_UNROLL 16
static_assert(GPU_CUDA_ATT_MAX_SPLIT <= COMB_THREADS,
	      "one combine thread per split");

__global__ static void __launch_bounds__(COMB_THREADS)
attn_combine_kernel(struct gpu_cuda_kv kv, float *out, const float *part_o,
		    const float *part_ml, size_t n_head, size_t n_split,
		    size_t window, int skip_uniform, struct gpu_cuda_att_rot rot)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const size_t rh = blockIdx.x, hd = kv.head_dim;
	const unsigned tid = threadIdx.x;
	__shared__ float w[GPU_CUDA_ATT_MAX_SPLIT];
	__shared__ float sh[32];
	__shared__ __align__(16) float sv[COMB_THREADS];
	float m = -INFINITY, l = 0.0f, M, L, f = 0.0f;

	if (skip_uniform &&
	    tile_scan(kv, rh / n_head / PF_ROWS * PF_ROWS, window).uniform)
		return; /* block-uniform */
	if (tid < n_split) {
		m = part_ml[2 * (rh * n_split + tid)];
		l = part_ml[2 * (rh * n_split + tid) + 1];
	}
	M = tern_block_max(m, sh);
	if (M == -INFINITY) { /* block-uniform: nothing valid */
		for (size_t d = tid; d < hd; d += blockDim.x) {
			out[rh * hd + d] = 0.0f;
			if (rot.xh) /* hd = blockDim.x; 0 * suh as the input
				     * launch computes it (signed zeros) */
				sv[d] = 0.0f * rot.suh[(rh % n_head) * hd + d];
		}
		if (rot.xh)
			attn_rot_head(rot, rh, n_head, sv);
		return;
	}
	if (tid < n_split) {
		f = m == -INFINITY ? 0.0f : exp2f(m - M);
		w[tid] = f;
	}
	L = tern_block_sum(l * f, sh); /* its barriers publish w */
	for (size_t d = tid; d < hd; d += blockDim.x) {
		float acc = 0.0f;

		for (size_t s0 = 0; s0 < n_split; s0 += COMB_UNROLL) {
			float v[COMB_UNROLL];

#pragma unroll
			for (int u = 0; u < COMB_UNROLL; u++) {
				const size_t sp = s0 + u;

				v[u] = sp < n_split && w[sp] != 0.0f ?
					part_o[(rh * n_split + sp) * hd + d] : 0.0f;
			}
#pragma unroll
			for (int u = 0; u < COMB_UNROLL; u++)
				if (s0 + u < n_split)
					acc += v[u] * w[s0 + u];
		}
		out[rh * hd + d] = acc / L;
		if (rot.xh)
			sv[d] = (acc / L) * rot.suh[(rh % n_head) * hd + d];
	}
	if (rot.xh)
		attn_rot_head(rot, rh, n_head, sv);
}

/* ---- prefill kernel ----------------------------------------------------- */

template <int F16> struct pf_t;
template <> struct pf_t<1> {
	static __device__ __forceinline__ uint32_t pack(float a, float b)
	{
		__half2 h = __floats2half2_rn(a, b);
		return *(uint32_t *)&h;
	}
	static __device__ __forceinline__ void mma(float *c, const uint32_t *a,
						   uint32_t b0, uint32_t b1)
	{
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
			     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
			     "{%0,%1,%2,%3};\n"
			     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),
			       "r"(b0), "r"(b1));
	}
};
template <> struct pf_t<0> {
	static __device__ __forceinline__ uint32_t pack(float a, float b)
	{
		__nv_bfloat162 h = __floats2bfloat162_rn(a, b);
		return *(uint32_t *)&h;
	}
	static __device__ __forceinline__ void mma(float *c, const uint32_t *a,
						   uint32_t b0, uint32_t b1)
	{
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
			     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
			     "{%0,%1,%2,%3};\n"
			     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),
			       "r"(b0), "r"(b1));
	}
};

/* One k16 x n16 step of a prefill product: c0 += a b[0..1], c1 += a
 * b[2..3] (the two n8 halves); bf16 (F16 = 0) adds the low parts' terms,
 * al b and a bl (hi/lo split, f32-accurate). */
template <int F16>
__device__ __forceinline__ void pf_mma16(float *c0, float *c1,
					 const uint32_t *a, const uint32_t *al,
					 const uint32_t *b, const uint32_t *bl)
{
	pf_t<F16>::mma(c0, a, b[0], b[1]);
	pf_t<F16>::mma(c1, a, b[2], b[3]);
	if (!F16) {
		pf_t<F16>::mma(c0, al, b[0], b[1]);
		pf_t<F16>::mma(c1, al, b[2], b[3]);
		pf_t<F16>::mma(c0, a, bl[0], bl[1]);
		pf_t<F16>::mma(c1, a, bl[2], bl[3]);
	}
}

__device__ __forceinline__ void ldsm4(uint32_t *r, const void *p)
{
	unsigned a = (unsigned)__cvta_generic_to_shared(p);

	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(a));
}

__device__ __forceinline__ void ldsm4t(uint32_t *r, const void *p)
{
	unsigned a = (unsigned)__cvta_generic_to_shared(p);

	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(a));
}

/* 8 f32 -> 8 16-bit values (4 packed pairs) */
template <int F16>
__device__ __forceinline__ uint4 cvt8(const float *x)
{
	uint4 u;

	u.x = pf_t<F16>::pack(x[0], x[1]);
	u.y = pf_t<F16>::pack(x[2], x[3]);
	u.z = pf_t<F16>::pack(x[4], x[5]);
	u.w = pf_t<F16>::pack(x[6], x[7]);
	return u;
}

/* x = hi + lo, both bf16 (16 mantissa bits together; bf16 keeps f32's
 * range): products hi.hi + lo.hi + hi.lo are f32-accurate to ~2^-16. */
__device__ __forceinline__ void cvt8s(const float *x, uint4 *hi, uint4 *lo)
{
	float r[8];

#pragma unroll
	for (int e = 0; e < 8; e++)
		r[e] = x[e] - __bfloat162float(__float2bfloat16_rn(x[e]));
	*hi = cvt8<0>(x);
	*lo = cvt8<0>(r);
}

/* Q, K, V tiles (f32 pool: hi and lo parts each) + page offsets; pipe
 * (f16 pool): two K/V tiles and two sets of page offsets */
static size_t pf_smem(int D, int f16, int pipe)
{
	if (pipe)
		return 5 * (size_t)PF_ROWS * (size_t)(D + 8) * 2 +
		       2 * ATT_TILE * sizeof(long long);
	return (f16 ? 3 : 6) * (size_t)PF_ROWS * (size_t)(D + 8) * 2 +
	       ATT_TILE * sizeof(long long);
}

/* Devices a kernel's opt-in state is remembered for. */
#define ATT_MAX_DEV 64

/* Opt kernel fn in to bytes of dynamic shared memory on the current
 * device, once per device (state[dev]: 0 not yet, 1 set, -1 too little
 * memory); carveout: also prefer the largest shared-memory carveout.
 * *ok = 1 when fn may be launched with bytes, 0 when the device lacks
 * them (nothing set; the caller takes another path).  Returns a CUDA
 * error code, 0 on success. */
static int att_smem_optin(const void *fn, size_t bytes, int carveout,
			  int state[ATT_MAX_DEV], int *ok)
{
	cudaError_t e;
	int dev = 0, maxs = 0;

	*ok = 0;
	e = cudaGetDevice(&dev);
	if (e != cudaSuccess)
		return (int)e;
	if (dev >= 0 && dev < ATT_MAX_DEV && state[dev]) {
		*ok = state[dev] > 0;
		return 0;
	}
	e = cudaDeviceGetAttribute(&maxs, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
	if (e != cudaSuccess)
		return (int)e;
	if ((size_t)maxs < bytes) {
		if (dev >= 0 && dev < ATT_MAX_DEV)
			state[dev] = -1;
		return 0;
	}
	e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
				 (int)bytes);
	if (e == cudaSuccess && carveout)
		e = cudaFuncSetAttribute(fn, cudaFuncAttributePreferredSharedMemoryCarveout,
					 cudaSharedmemCarveoutMaxShared);
	if (e != cudaSuccess)
		return (int)e;
	if (dev >= 0 && dev < ATT_MAX_DEV)
		state[dev] = 1;
	*ok = 1;
	return 0;
}

/* ---- the prefill loops' page offsets; the pipelined loop's copies -------
 * The pipelined loop (PIPE = 1, f16 pools; the default, TERN_ATT_PF_PIPE=0
 * turns it off): the next K/V tile is copied with cp.async into a second
 * buffer while the current one is computed (the plain loop loads, waits,
 * then computes).  H100 SXM, Llama-3-8B-shaped prefill of 2048 tokens:
 * 30,574 -> 32,380 tok/s for the whole prompt (2026-11-28). */

/* Page of position t0 + tid of the tile's sequence (-1: missing or
 * outside [tmin, tmax]); threads 0..63 each hold one in a register, so
 * the page-table load of tile i + 2 flies while tile i is computed. */
__device__ __forceinline__ long long pf_page(const struct gpu_cuda_kv &kv,
					     const tile_info &ti, long long t0,
					     int tid)
{
	const long long t = t0 + tid;

	if (tid >= ATT_TILE || t < ti.tmin || t > ti.tmax)
		return -1;
	return kv_page(kv, (size_t)ti.seq, (size_t)t);
}

/* pgo[tid] = element offset of position t0 + tid's K/V row of head hk
 * (page pg from pf_page; -1 when missing), threads 0..63 */
__device__ __forceinline__ void pf_off(long long pg, long long t0,
				       long long *pgo, int tid, size_t ps,
				       size_t rowel, size_t hk, size_t hd)
{
	const long long t = t0 + tid;

	if (tid < ATT_TILE)
		pgo[tid] = pg < 0 ? -1 :
			(long long)(((size_t)pg * ps + (unsigned)t % (unsigned)ps) * rowel +
				    hk * hd);
}

__device__ __forceinline__ void pf_cp16(void *smem_dst, const void *gmem)
{
	unsigned a = (unsigned)__cvta_generic_to_shared(smem_dst);

	asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a),
		     "l"(gmem) : "memory");
}

/* cp.async of one f16 K/V tile (page offsets pgo) into Kd / Vd; missing
 * positions stored as zero rows; pad columns (d >= hd) left alone */
__device__ __forceinline__ void pf_issue(const struct gpu_cuda_kv &kv,
					 const long long *pgo, uint16_t *Kd,
					 uint16_t *Vd, int tid, int LD, int CH,
					 size_t hd)
{
	for (int idx = tid; idx < ATT_TILE * CH; idx += PF_THREADS) {
		const int r = idx / CH, c = idx % CH;
		const size_t d0 = (size_t)c * 8;
		const long long e = pgo[r];

		if (d0 >= hd)
			continue;
		if (e >= 0) {
			pf_cp16(Kd + r * LD + c * 8, (const __half *)kv.k + e + d0);
			pf_cp16(Vd + r * LD + c * 8, (const __half *)kv.v + e + d0);
		} else {
			*(uint4 *)(Kd + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
			*(uint4 *)(Vd + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
		}
	}
	asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* The online softmax step of a warp's 16 rows over NB n8 blocks of scores
 * sf (mma C fragments, log2 domain, masked entries -inf; rows a: e = 0,
 * 1; b: e = 2, 3, each row's 16 NB values over the 4 lanes of a quad):
 * the row maxima m, p = 2^(s - m) in place of the scores, this lane's
 * part of l and o rescaled by 2^(m_old - m). */
template <int NB, int D>
__device__ __forceinline__ void frag_softmax(float (&sf)[NB][4], float (&mrow)[2],
					     float (&lrow)[2], float (&of)[D / 8][4])
{
	float cr[2];

#pragma unroll
	for (int k = 0; k < 2; k++) {
		float mx = mrow[k], mu, corr, ls = 0.0f;

#pragma unroll
		for (int nb = 0; nb < NB; nb++)
#pragma unroll
			for (int e = 0; e < 2; e++)
				mx = fmaxf(mx, sf[nb][2 * k + e]);
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
		mu = mx == -INFINITY ? 0.0f : mx;
		corr = exp2f(mrow[k] - mu);
#pragma unroll
		for (int nb = 0; nb < NB; nb++)
#pragma unroll
			for (int e = 0; e < 2; e++) {
				const float pv = exp2f(sf[nb][2 * k + e] - mu);

				sf[nb][2 * k + e] = pv;
				ls += pv;
			}
		lrow[k] = lrow[k] * corr + ls;
		mrow[k] = mx;
		cr[k] = corr;
	}
	/* o's rescale, skipped (multiplying by exactly 1) when no row of
	 * the warp's tile raised its maximum: over long contexts most tiles */
	if (__any_sync(0xffffffffu, cr[0] != 1.0f || cr[1] != 1.0f))
#pragma unroll
		for (int k = 0; k < 2; k++)
#pragma unroll
			for (int nd = 0; nd < D / 8; nd++) {
				of[nd][2 * k] *= cr[k];
				of[nd][2 * k + 1] *= cr[k];
			}
}

/* o (a warp's 16 x D accumulator fragments) back from a quantized pool's
 * rotated domain: R over each group of 32 dims, which are fragments
 * 4 G .. 4 G + 3 (x 2 values) of the 4 lanes of a row.  Every lane of the
 * warp calls it (prefill and decode tiles alike). */
template <int D>
__device__ __forceinline__ void frag_unrotate(float (&of)[D / 8][4])
{
#pragma unroll
	for (int k = 0; k < 2; k++)
#pragma unroll
		for (int G = 0; G < D / 32; G++) {
			float x[8];

#pragma unroll
			for (int e = 0; e < 8; e++)
				x[e] = of[4 * G + e / 2][2 * k + (e & 1)];
			kvq_h32_8x4(x, 1, 2);
#pragma unroll
			for (int e = 0; e < 8; e++)
				of[4 * G + e / 2][2 * k + (e & 1)] = x[e];
		}
}

/* One K/V tile (positions t0 .. t0 + 63 in Ks / Vs, f32 pool: plus the
 * low parts Kl / Vl; pgo[i] < 0: position t0 + i is missing) against
 * this warp's 16 query rows: S = Q K^T, the causal / window masks of
 * each row (plo, phi), the online softmax (mrow, lrow) and O += P V. */
template <int F16, int D>
__device__ __forceinline__ void
pf_tile(const uint16_t *Qs, const uint16_t *Ql, const uint16_t *Ks,
	const uint16_t *Kl, const uint16_t *Vs, const uint16_t *Vl,
	const long long *pgo, long long t0, const long long (&plo)[2],
	const long long (&phi)[2], float (&mrow)[2], float (&lrow)[2],
	float (&of)[D / 8][4], size_t hd, int LD, int warp, int lane, int cq)
{
		float sf[8][4];
		const int nk = (int)((hd + 15) / 16);

#pragma unroll
		for (int nb = 0; nb < 8; nb++)
			sf[nb][0] = sf[nb][1] = sf[nb][2] = sf[nb][3] = 0.0f;
		/* S = Q K^T */
#pragma unroll
		for (int kk = 0; kk < D / 16; kk++) {
			uint32_t a[4], al[4];
			const int qo = (16 * warp + (lane & 15)) * LD + kk * 16 +
				       (lane >> 4) * 8;

			if (kk >= nk)
				break;
			ldsm4(a, Qs + qo);
			if (!F16)
				ldsm4(al, Ql + qo);
#pragma unroll
			for (int j = 0; j < 4; j++) {
				uint32_t b[4], bl[4];
				const int ko = (j * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD +
					       kk * 16 + ((lane >> 3) & 1) * 8;

				ldsm4(b, Ks + ko);
				if (!F16)
					ldsm4(bl, Kl + ko);
				pf_mma16<F16>(sf[2 * j], sf[2 * j + 1], a, al, b, bl);
			}
		}
		/* masks (rows a: e = 0, 1; b: e = 2, 3), online softmax */
#pragma unroll
		for (int k = 0; k < 2; k++)
#pragma unroll
			for (int nb = 0; nb < 8; nb++)
#pragma unroll
				for (int e = 0; e < 2; e++) {
					const int kt = nb * 8 + 2 * cq + e;
					const long long t = t0 + kt;

					if (pgo[kt] < 0 || t < plo[k] || t > phi[k])
						sf[nb][2 * k + e] = -INFINITY;
				}
		frag_softmax<8, D>(sf, mrow, lrow, of);
		/* O += P V */
#pragma unroll
		for (int j = 0; j < 4; j++) {
			uint32_t a[4], al[4];
			const float *p0 = sf[2 * j], *p1 = sf[2 * j + 1];

			a[0] = pf_t<F16>::pack(p0[0], p0[1]);
			a[1] = pf_t<F16>::pack(p0[2], p0[3]);
			a[2] = pf_t<F16>::pack(p1[0], p1[1]);
			a[3] = pf_t<F16>::pack(p1[2], p1[3]);
			if (!F16) {
				float r0[4], r1[4];

#pragma unroll
				for (int e = 0; e < 4; e++) {
					r0[e] = p0[e] - __bfloat162float(__float2bfloat16_rn(p0[e]));
					r1[e] = p1[e] - __bfloat162float(__float2bfloat16_rn(p1[e]));
				}
				al[0] = pf_t<F16>::pack(r0[0], r0[1]);
				al[1] = pf_t<F16>::pack(r0[2], r0[3]);
				al[2] = pf_t<F16>::pack(r1[0], r1[1]);
				al[3] = pf_t<F16>::pack(r1[2], r1[3]);
			}
#pragma unroll
			for (int dp = 0; dp < D / 16; dp++) {
				uint32_t b[4], bl[4];
				const int vo = (j * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
					       dp * 16 + (lane >> 4) * 8;

				if (dp >= nk)
					break;
				ldsm4t(b, Vs + vo);
				if (!F16)
					ldsm4t(bl, Vl + vo);
				pf_mma16<F16>(of[2 * dp], of[2 * dp + 1], a, al, b, bl);
			}
		}
}

/* Block (tile, h) = (n_tiles - 1 - blockIdx.x / n_head, blockIdx.x %
 * n_head): rows [64 tile, 64 tile + 64) of a uniform tile, query head h;
 * warp w owns rows 16 w .. 16 w + 15.  Fragment layouts: PTX
 * mma.m16n8k16 (g = lane / 4, c = lane % 4: A rows g, g + 8, cols 2c..,
 * 2c + 8..; B k 2c.., 2c + 8.., n g; C rows g, g + 8, cols 2c, 2c + 1). */
template <int F16, int D, int PIPE, int QN>
__global__ static void __launch_bounds__(PF_THREADS)
attn_prefill_kernel(struct gpu_cuda_kv kv, float *out, const float *q,
		    unsigned n_head, float qscale, size_t window)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	extern __shared__ __align__(16) unsigned char smem[];
	const int LD = D + 8; /* 16-bit elements per smem row (+16 B: no conflicts) */
	uint16_t *Qs = (uint16_t *)smem, *Ks = Qs + PF_ROWS * LD,
		 *Vs = Ks + ATT_TILE * LD;
	/* f32 pool: low parts (x - bf16(x)) after the high parts */
	uint16_t *Ql = Vs + ATT_TILE * LD, *Kl = Ql + PF_ROWS * LD,
		 *Vl = Kl + ATT_TILE * LD;
	/* PIPE: Qs | Ks | Vs | second Ks | second Vs | pgo [2][64] */
	long long *pgo = (long long *)(PIPE ? Vs + 3 * ATT_TILE * LD :
				       F16 ? Ql : Vl + ATT_TILE * LD);
	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const int gq = lane >> 2, cq = lane & 3;
	const size_t n_tiles = (kv.n_rows + PF_ROWS - 1) / PF_ROWS;
	const size_t tile = n_tiles - 1 - blockIdx.x / n_head, h = blockIdx.x % n_head;
	const size_t r0 = tile * PF_ROWS, hd = kv.head_dim, ps = kv.page_size;
	const size_t hk = h / (n_head / kv.n_head_kv);
	const size_t rowel = kv.n_head_kv * hd;
	const int CH = D / 8; /* 8-element chunks per smem row */
	const tile_info ti = tile_scan(kv, r0, window);
	long long plo[2], phi[2], wlo, whi;
	float of[D / 8][4], mrow[2], lrow[2];

	if (!ti.uniform)
		return; /* the decode kernel takes this tile */
	/* Q (x scale log2 e) and zero pads */
	for (int idx = tid; idx < PF_ROWS * CH; idx += PF_THREADS) {
		const int r = idx / CH, c = idx % CH;
		const size_t d0 = (size_t)c * 8;
		float x[8];

#pragma unroll
		for (int e = 0; e < 8; e++)
			x[e] = 0.0f;
		if (r0 + r < kv.n_rows && d0 < hd) {
			const float4 *src = (const float4 *)(q + ((r0 + r) * n_head + h) * hd + d0);
			float4 a = src[0], b = src[1];

			x[0] = a.x * qscale; x[1] = a.y * qscale;
			x[2] = a.z * qscale; x[3] = a.w * qscale;
			x[4] = b.x * qscale; x[5] = b.y * qscale;
			x[6] = b.z * qscale; x[7] = b.w * qscale;
		}
		if (QN) /* into the keys' rotated domain (lanes 4a..4a+3 hold
			 * chunks 4b..4b+3: CH divides 128) */
			kvq_h32_8x4(x, 1, 2);
		if (F16) {
			*(uint4 *)(Qs + r * LD + c * 8) = cvt8<1>(x);
		} else {
			uint4 hi, lo;

			cvt8s(x, &hi, &lo);
			*(uint4 *)(Qs + r * LD + c * 8) = hi;
			*(uint4 *)(Ql + r * LD + c * 8) = lo;
		}
		if (d0 >= hd) {
			*(uint4 *)(Ks + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
			*(uint4 *)(Vs + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
			if (PIPE) {
				*(uint4 *)(Ks + (2 * ATT_TILE + r) * LD + c * 8) =
					make_uint4(0, 0, 0, 0);
				*(uint4 *)(Vs + (2 * ATT_TILE + r) * LD + c * 8) =
					make_uint4(0, 0, 0, 0);
			}
			if (!F16) {
				*(uint4 *)(Kl + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
				*(uint4 *)(Vl + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
			}
		}
	}
	/* this thread's rows: a = 16 warp + g, b = a + 8 */
	wlo = LLONG_MAX;
	whi = -1;
	for (int k = 0; k < 2; k++) {
		const size_t r = r0 + 16 * warp + gq + 8 * k;

		plo[k] = 0;
		phi[k] = -1;
		if (r < kv.n_rows) {
			const int32_t s = kv.row_seq[r], p = kv.row_pos[r];

			if (s >= 0 && (size_t)s < kv.n_seq && p >= 0) {
				phi[k] = p;
				plo[k] = window && (size_t)p + 1 > window ?
					(long long)p + 1 - (long long)window : 0;
				wlo = wlo < plo[k] ? wlo : plo[k];
				whi = whi > phi[k] ? whi : phi[k];
			}
		}
		mrow[k] = -INFINITY;
		lrow[k] = 0.0f;
	}
	for (int o = 16; o > 0; o >>= 1) {
		long long a = __shfl_xor_sync(0xffffffffu, wlo, o);
		long long b = __shfl_xor_sync(0xffffffffu, whi, o);

		wlo = wlo < a ? wlo : a;
		whi = whi > b ? whi : b;
	}
#pragma unroll
	for (int nd = 0; nd < D / 8; nd++)
		of[nd][0] = of[nd][1] = of[nd][2] = of[nd][3] = 0.0f;

	if (PIPE) {
		/* tile i computes from buffer i % 2 while tile i + 1's copies
		 * fly into the other; three barriers a tile, as below */
		const long long T0 = ti.tmin / ATT_TILE * ATT_TILE;
		long long i = 0, pg_next = -1;

		if (ti.tmax >= 0) {
			pf_off(pf_page(kv, ti, T0, tid), T0, pgo, tid, ps, rowel, hk, hd);
			pg_next = pf_page(kv, ti, T0 + ATT_TILE, tid);
			__syncthreads(); /* tile 0's page offsets */
			pf_issue(kv, pgo, Ks, Vs, tid, LD, CH, hd);
		}
		for (long long t0 = T0; ti.tmax >= 0 && t0 <= ti.tmax;
		     t0 += ATT_TILE, i++) {
			const int b = (int)(i & 1);
			const long long *pc = pgo + b * ATT_TILE;
			long long *pn = pgo + (b ^ 1) * ATT_TILE;
			const uint16_t *Kc = Ks + b * 2 * ATT_TILE * LD;
			const uint16_t *Vc = Vs + b * 2 * ATT_TILE * LD;
			const bool next = t0 + ATT_TILE <= ti.tmax;

			__syncthreads(); /* tile i - 1 (the other buffers) done */
			if (next)
				pf_off(pg_next, t0 + ATT_TILE, pn, tid, ps, rowel, hk,
				       hd);
			__syncthreads(); /* tile i + 1's page offsets */
			if (next) {
				pf_issue(kv, pn, Ks + (b ^ 1) * 2 * ATT_TILE * LD,
					 Vs + (b ^ 1) * 2 * ATT_TILE * LD, tid, LD, CH, hd);
				/* tile i + 2's pages, in flight during tile i */
				pg_next = pf_page(kv, ti, t0 + 2 * ATT_TILE, tid);
			} else {
				asm volatile("cp.async.commit_group;\n" ::: "memory");
			}
			/* all but the newest group done: tile i's copies */
			asm volatile("cp.async.wait_group 1;\n" ::: "memory");
			__syncthreads(); /* every thread's */
			if (whi < t0 || wlo > t0 + ATT_TILE - 1)
				continue; /* none of this warp's rows sees this tile */
			pf_tile<F16, D>(Qs, Ql, Kc, Kc, Vc, Vc, pc, t0, plo, phi, mrow,
					lrow, of, hd, LD, warp, lane, cq);
		}
	}
	for (long long t0 = ti.tmax < 0 || PIPE ? 1 : ti.tmin / ATT_TILE * ATT_TILE;
	     !PIPE && t0 <= ti.tmax; t0 += ATT_TILE) {
		__syncthreads(); /* previous tile's K/V/pgo read; Q written */
		if (tid < ATT_TILE)
			pf_off(pf_page(kv, ti, t0, tid), t0, pgo, tid, ps, rowel, hk,
			       hd);
		__syncthreads();
		for (int idx = tid; idx < ATT_TILE * CH; idx += PF_THREADS) {
			const int r = idx / CH, c = idx % CH;
			const size_t d0 = (size_t)c * 8;
			const long long e = pgo[r];
			uint4 ku = make_uint4(0, 0, 0, 0), vu = ku, kl = ku, vl = ku;

			if (d0 >= hd)
				continue; /* pad: zeroed above */
			if (e >= 0) {
				if (QN) {
					const size_t el = (size_t)e + d0;
					float x[8];

					kvq_get8((const uint32_t *)kv.k,
						 (const __half *)kv.ks, el / 32, kv.kb,
						 (unsigned)(el % 32) / 8, x);
					ku = cvt8<1>(x);
					kvq_get8((const uint32_t *)kv.v,
						 (const __half *)kv.vs, el / 32, kv.vb,
						 (unsigned)(el % 32) / 8, x);
					vu = cvt8<1>(x);
				} else if (F16) {
					ku = *(const uint4 *)((const __half *)kv.k + e + d0);
					vu = *(const uint4 *)((const __half *)kv.v + e + d0);
				} else {
					float x[8];

					ld8<0>(x, kv.k, (size_t)e + d0, 1, 8);
					cvt8s(x, &ku, &kl);
					ld8<0>(x, kv.v, (size_t)e + d0, 1, 8);
					cvt8s(x, &vu, &vl);
				}
			}
			*(uint4 *)(Ks + r * LD + c * 8) = ku;
			*(uint4 *)(Vs + r * LD + c * 8) = vu;
			if (!F16) {
				*(uint4 *)(Kl + r * LD + c * 8) = kl;
				*(uint4 *)(Vl + r * LD + c * 8) = vl;
			}
		}
		__syncthreads();
		if (whi < t0 || wlo > t0 + ATT_TILE - 1)
			continue; /* none of this warp's rows sees this tile */
		pf_tile<F16, D>(Qs, Ql, Ks, Kl, Vs, Vl, pgo, t0, plo, phi, mrow, lrow,
				of, hd, LD, warp, lane, cq);
	}
	if (QN) /* o back from the values' rotated domain */
		frag_unrotate<D>(of);
	/* out = o / l (l summed over the 4 lanes of a row) */
#pragma unroll
	for (int k = 0; k < 2; k++) {
		const size_t r = r0 + 16 * warp + gq + 8 * k;
		float L = lrow[k], inv;

		L += __shfl_xor_sync(0xffffffffu, L, 1);
		L += __shfl_xor_sync(0xffffffffu, L, 2);
		inv = L > 0.0f ? 1.0f / L : 0.0f;
		if (r >= kv.n_rows)
			continue;
#pragma unroll
		for (int nd = 0; nd < D / 8; nd++) {
			const size_t d = (size_t)nd * 8 + 2 * cq;

			if (d < hd)
				*(float2 *)(out + (r * n_head + h) * hd + d) =
					make_float2(of[nd][2 * k] * inv, of[nd][2 * k + 1] * inv);
		}
	}
}

/* ---- tensor-core decode kernel ------------------------------------------
 * attn_dectc_kernel: the decode rows of a long page table (dtc_use).
 * Block (row i, kv head hk) x split, DTC_WARPS warps: the query heads of
 * the GQA group are the rows of one m16n8k16 A operand (heads past n_rep
 * zero), and each warp walks its own key tiles of DTC_KEYS positions
 * (tile j of the split goes to warp j % DTC_WARPS) with S = Q K^T and
 * O += P V on tensor cores, an online softmax per head in registers, as
 * the prefill kernel's tile (f16 Q, K, V and P; f32 accumulators).  The
 * K/V rows go global -> shared memory by cp.async into a ring of
 * DTC_STAGES tiles (quantized: DTC_QSTAGES) private to the warp (no block
 * barrier in the loop), so a warp has tiles of copies in flight while it
 * computes another
 * from registers that hold no loaded data: the per-lane kernel above keeps
 * its keys in registers (a round of 4 keys a lane in flight, 223-255
 * registers, two blocks an SM) and reached ~25% of the memory bandwidth
 * at ctx 131072 on an H200.  A quantized pool (QN) copies the raw words
 * and scales of the tile, and the warp decodes them to an f16 tile (the
 * rotated domain, kvq_get8's values rounded to f16 as the prefill
 * kernel's) before its products; q goes into that domain first and o
 * back at the end.  The warps' (m, l, o) meet through shared memory at
 * the end; the split's result goes out as the per-lane kernel's (final
 * or a partial for attn_combine_kernel).  Chunks are multiples of
 * DTC_ROUND positions (att_align).  KB, VB: the quantized pool's widths
 * when the launch knows them (dtc_launch_q: both 4 or both 8 bits), 0 to
 * read them from kv; known widths fold the plane layout's tests and the
 * copies' index arithmetic away, and 4 bits decode a whole group a lane
 * (dequant).  H200, llama3-8b@exl3:4.0 with a q4 cache at ctx 131072: the
 * step 10.27 -> 6.44 ms (docs/PERFORMANCE.md). */
#define DTC_WARPS 4
#define DTC_KEYS 16
#define DTC_STAGES 3
/* quantized pools: two stages (a q4 tile is 2.3 KB, and the smaller ring
 * lets three blocks share an SM: DTC_QBLOCKS) */
#define DTC_QSTAGES 2
#define DTC_NS(qn) ((qn) ? DTC_QSTAGES : DTC_STAGES)
#define DTC_ROUND (DTC_WARPS * DTC_KEYS)

/* u32 words of one stage's raw quantized tile, K and V (at most 8 bits:
 * words, then the f16 scales two a word) */
#define DTC_RAW(D) (2 * DTC_KEYS * ((D) / 32) * 8 + 2 * DTC_KEYS * ((D) / 32) / 2)

static size_t dtc_smem(int D, int qn)
{
	const size_t ld = (size_t)D + 8, q = 16 * ld * 2;
	const size_t mask = (size_t)DTC_WARPS * DTC_NS(qn) * sizeof(unsigned);

	if (qn)
		return q + (size_t)DTC_WARPS * 2 * DTC_KEYS * ld * 2 +
		       (size_t)DTC_WARPS * DTC_QSTAGES * DTC_RAW(D) * 4 + mask;
	return q + (size_t)DTC_WARPS * DTC_STAGES * 2 * DTC_KEYS * ld * 2 + mask;
}

__device__ __forceinline__ void dtc_cp4(void *smem_dst, const void *gmem)
{
	unsigned a = (unsigned)__cvta_generic_to_shared(smem_dst);

	asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(a),
		     "l"(gmem) : "memory");
}

/* n u32 words from global src to shared dst by the warp (16-byte copies
 * when w16: both 16-byte aligned and n a multiple of 4) */
__device__ __forceinline__ void dtc_cpw(uint32_t *dst, const uint32_t *src, int n,
					int w16, int lane)
{
	if (w16) {
		for (int j = lane; j < n / 4; j += 32)
			pf_cp16(dst + 4 * j, src + 4 * j);
	} else {
		for (int j = lane; j < n; j += 32)
			dtc_cp4(dst + j, src + j);
	}
}

/* (x & m) | c in one instruction (lop3: the compiler emits two when both
 * are constants, an instruction taking one immediate) */
__device__ __forceinline__ uint32_t dtc_andor(uint32_t x, uint32_t m, uint32_t c)
{
	uint32_t d;

	asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(x), "r"(m), "r"(c));
	return d;
}

/* The 8 codes of kvq_load_raw's words (values e = 0..7 of a part) as
 * four half2 bit patterns pr[s] = (1024 + c_s, 1024 + c_s+4): exact (f16
 * spacing 1 over [1024, 2048)), the 4- and 8-bit planes without
 * unpacking. */
__device__ __forceinline__ void dtc_pairs(const uint32_t *r, unsigned bits, uint32_t *pr)
{
	if (bits == 4) {
#pragma unroll
		for (int s = 0; s < 4; s++)
			pr[s] = dtc_andor(r[0] >> (4 * s), 0x000F000Fu, 0x64006400u);
		return;
	}
	if (bits == 8) {
#pragma unroll
		for (int s = 0; s < 4; s++)
			pr[s] = dtc_andor(__byte_perm(r[0], r[1], (unsigned)(s | (s + 4) << 8)),
					  0x00FF00FFu, 0x64006400u);
		return;
	}
#pragma unroll
	for (int s = 0; s < 4; s++)
		pr[s] = kvq_code(r, bits, s) | (kvq_code(r, bits, s + 4) << 16) |
			0x64006400u;
}

template <int D, int QN, int KB = 0, int VB = 0>
__global__ static void __launch_bounds__(DTC_WARPS * 32)
attn_dectc_kernel(struct gpu_cuda_kv kv, float *out, const float *q,
		  unsigned n_head, float qscale, size_t window, float *part_o,
		  float *part_ml, int skip_uniform, unsigned align)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	extern __shared__ __align__(16) unsigned char smem[];
	constexpr int LD = D + 8, CH = D / 8, NT = DTC_WARPS * 32;
	constexpr int NG = D / 32; /* quantized groups a head */
	constexpr int NS = DTC_NS(QN); /* ring stages */
	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const int cq = lane & 3, gq = lane >> 2;
	uint16_t *Qs = (uint16_t *)smem, *St = Qs + 16 * LD;
	/* f16: St = [warp][stage][K | V][DTC_KEYS][LD]; QN: St = [warp][K | V]
	 * [DTC_KEYS][LD] f16 tiles, then raw = [warp][stage][DTC_RAW] */
	uint32_t *raw = (uint32_t *)(St + DTC_WARPS * 2 * DTC_KEYS * LD);
	unsigned *vmask = QN ? (unsigned *)(raw + DTC_WARPS * NS * DTC_RAW(D)) :
			       (unsigned *)(St + DTC_WARPS * DTC_STAGES * 2 * DTC_KEYS * LD);
	const size_t hd = kv.head_dim, ps = kv.page_size;
	const size_t rowel = kv.n_head_kv * hd;
	const unsigned nhk = (unsigned)kv.n_head_kv, n_rep = n_head / nhk;
	const size_t hk = blockIdx.x % nhk, i = blockIdx.x / nhk;
	const size_t h0 = hk * n_rep;
	const unsigned sp = blockIdx.y, n_split = gridDim.y;
	const int nk = (int)((hd + 15) / 16);
	long long t_begin = 1, t_end = 0;
	size_t s = 0;

	if (skip_uniform && tile_scan(kv, i / PF_ROWS * PF_ROWS, window).uniform)
		return; /* the prefill kernel owns this row */
	{
		const int32_t s32 = kv.row_seq[i], p32 = kv.row_pos[i];

		if (s32 >= 0 && (size_t)s32 < kv.n_seq && p32 >= 0) {
			const unsigned p = (unsigned)p32;
			const unsigned lo = window && (size_t)p + 1 > window ?
						    (unsigned)((size_t)p + 1 - window) : 0;
			unsigned chunk = (p - lo + n_split) / n_split;

			chunk = (chunk + align - 1) / align * align;
			s = (size_t)s32;
			t_begin = (long long)lo + (long long)sp * chunk;
			t_end = t_begin + (long long)chunk - 1 < (long long)p ?
					t_begin + (long long)chunk - 1 : (long long)p;
		}
	}
	/* Q: rows = the group's heads (x scale log2 e; QN: rotated), f16 */
	for (int idx = tid; idx < 16 * CH; idx += NT) {
		const int r = idx / CH, c = idx % CH;
		const size_t d0 = (size_t)c * 8;
		float x[8];

#pragma unroll
		for (int e = 0; e < 8; e++)
			x[e] = 0.0f;
		if ((unsigned)r < n_rep && d0 < hd) {
			const float4 *src = (const float4 *)(q + (i * n_head + h0 + r) * hd + d0);
			const float4 a = src[0], b = src[1];

			x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
			x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
		}
		if (QN) /* lanes 4a..4a+3 hold chunks 4b..4b+3 (CH divides 128) */
			kvq_h32_8x4(x, 1, 2);
#pragma unroll
		for (int e = 0; e < 8; e++)
			x[e] *= qscale;
		if (QN) { /* the tiles' column order (dequant) */
			float y[8];

#pragma unroll
			for (int e = 0; e < 8; e++)
				y[e] = x[(e >> 1) + 4 * (e & 1)];
			*(uint4 *)(Qs + r * LD + c * 8) = cvt8<1>(y);
		} else {
			*(uint4 *)(Qs + r * LD + c * 8) = cvt8<1>(x);
		}
	}
	/* the tiles' pad columns (d >= hd): zero once, no copy touches them */
	if (hd < (size_t)D)
		for (int idx = tid; idx < DTC_WARPS * (QN ? 1 : DTC_STAGES) * 2 * DTC_KEYS * CH;
		     idx += NT)
			if ((size_t)(idx % CH) * 8 >= hd)
				*(uint4 *)(St + idx / CH * LD + idx % CH * 8) =
					make_uint4(0, 0, 0, 0);
	__syncthreads();

	uint32_t qa[D / 16][4];
	float of[D / 8][4], mrow[2], lrow[2];

#pragma unroll
	for (int kk = 0; kk < D / 16; kk++)
		if (kk < nk)
			ldsm4(qa[kk], Qs + (lane & 15) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
	for (int nd = 0; nd < D / 8; nd++)
		of[nd][0] = of[nd][1] = of[nd][2] = of[nd][3] = 0.0f;
	mrow[0] = mrow[1] = -INFINITY;
	lrow[0] = lrow[1] = 0.0f;

	uint16_t *Kw = QN ? St + warp * 2 * DTC_KEYS * LD :
			    St + warp * DTC_STAGES * 2 * DTC_KEYS * LD;
	uint32_t *Rw = raw + warp * NS * DTC_RAW(D);
	const long long first = t_begin + (long long)warp * DTC_KEYS;
	const long long stride = DTC_ROUND;
	/* the page-table entry of position T + lane (lanes < DTC_KEYS; -1
	 * past t_end; .y: the position's slot in its page), loaded a tile
	 * before its copies need it and checked only then, so the load's
	 * latency hides behind a tile */
	auto entry = [&](long long T) -> int2 {
		const long long t = T + lane;
		int2 e = make_int2(-1, 0);

		if (lane < DTC_KEYS && t <= t_end) {
			const unsigned pi = (unsigned)t / (unsigned)ps;

			e.y = (int)((unsigned)t - pi * (unsigned)ps);
			if (pi < kv.max_pages)
				e.x = kv.page_table[s * kv.max_pages + pi];
		}
		return e;
	};
	/* copies of the tile whose entries entry() gave (ent) into stage st,
	 * one group */
	auto issue = [&](int st, int2 ent) {
		const long long off = ent.x >= 0 && (size_t)ent.x < kv.n_pages ?
			(long long)(((size_t)ent.x * ps + (unsigned)ent.y) * rowel +
				    hk * hd) : -1;
		const unsigned vm = __ballot_sync(0xffffffffu, lane < DTC_KEYS && off >= 0);

		if (lane == 0)
			vmask[warp * NS + st] = vm;
		if constexpr (QN) {
			/* a key's words: NG kb (NG vb) u32 from word g0 kb, g0 =
			 * its element offset / 32, in 16-byte units where they
			 * are whole (then aligned: g0 is a multiple of NG), else
			 * one word a copy; its scales NG / 2 u32; the pieces of
			 * the tile spread over the lanes, each lane finding its
			 * key's offset by shuffle (every lane shuffles) */
			uint32_t *R = Rw + st * DTC_RAW(D);
			const unsigned kb = KB ? KB : kv.kb, vb = VB ? VB : kv.vb;
			uint32_t *Rk = R, *Rv = R + DTC_KEYS * NG * kb;
			uint32_t *Sk = Rv + DTC_KEYS * NG * vb, *Sv = Sk + DTC_KEYS * NG / 2;
			/* the key's first group (-1: none), 32 bits (dtc_use) */
			const int go = off >= 0 ? (int)(off >> 5) : -1;

#pragma unroll
			for (int h = 0; h < 2; h++) {
				const unsigned b = h ? vb : kb;
				const int u = (NG * b) % 4 == 0 ? 4 : 1; /* words a copy */
				const int nu = NG * (int)b / u, tot = DTC_KEYS * nu;
				const uint32_t *src = (const uint32_t *)(h ? kv.v : kv.k);
				uint32_t *dst = h ? Rv : Rk;

				/* idx / nu by a float reciprocal (exact: idx < 256,
				 * nu <= 16), not an integer division a copy; a
				 * shift where the widths are known */
				const float inu = 1.0f / (float)nu;

				for (int b0 = 0; b0 < tot; b0 += 32) {
					const int idx = b0 + lane;
					const int r = idx >= tot ? 0 : KB && VB ? idx / nu :
						(int)(((float)idx + 0.5f) * inu);
					const int e = __shfl_sync(0xffffffffu, go, r);

					if (idx >= tot)
						continue;
					{
						uint32_t *d = dst + r * NG * b + (idx - r * nu) * u;

						if (e < 0) {
							if (u == 4)
								*(uint4 *)d = make_uint4(0, 0, 0, 0);
							else
								d[0] = 0u;
						} else {
							const uint32_t *g = src + (size_t)e * b +
									    (idx - r * nu) * u;

							if (u == 4)
								pf_cp16(d, g);
							else
								dtc_cp4(d, g);
						}
					}
				}
			}
			{
				/* scales: DTC_KEYS NG / 2 <= 32 words a half */
				const int tot = DTC_KEYS * NG / 2, r = lane < tot ? lane / (NG / 2) : 0;
				const int e = __shfl_sync(0xffffffffu, go, r);

				if (lane < tot) {
					const int j = lane - r * (NG / 2);

					if (e < 0) {
						Sk[lane] = Sv[lane] = 0u;
					} else {
						dtc_cp4(Sk + lane, (const uint16_t *)kv.ks + (size_t)e + 2 * j);
						dtc_cp4(Sv + lane, (const uint16_t *)kv.vs + (size_t)e + 2 * j);
					}
				}
			}
		} else {
			uint16_t *Kd = Kw + st * 2 * DTC_KEYS * LD, *Vd = Kd + DTC_KEYS * LD;

#pragma unroll
			for (int idx = lane; idx < DTC_KEYS * CH; idx += 32) {
				const int r = idx / CH, c = idx % CH;
				const long long e = __shfl_sync(0xffffffffu, off, r);

				if ((size_t)c * 8 >= hd)
					continue;
				if (e >= 0) {
					pf_cp16(Kd + r * LD + c * 8, (const __half *)kv.k + e + c * 8);
					pf_cp16(Vd + r * LD + c * 8, (const __half *)kv.v + e + c * 8);
				} else {
					*(uint4 *)(Kd + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
					*(uint4 *)(Vd + r * LD + c * 8) = make_uint4(0, 0, 0, 0);
				}
			}
		}
		asm volatile("cp.async.commit_group;\n" ::: "memory");
	};
	/* QN: stage st's raw tile -> the warp's f16 K and V tiles, a lane 8
	 * values (key r, group g, part p) at a time: code pairs (c_e, c_e+4)
	 * as half2 1024 + c (dtc_pairs), then (c - m) step + step / 2 in one
	 * rounding (hsub2 exact, hfma2): kvq_get8's values rounded to f16, to
	 * the bit.  Columns 8 p + 2 s, 8 p + 2 s + 1 get values 8 p + s and 8
	 * p + s + 4: q is laid out alike, and o's columns are mapped back at
	 * the end (dtc_col). */
	auto dequant = [&](int st) {
		const uint32_t *R = Rw + st * DTC_RAW(D);
		const unsigned kb = KB ? KB : kv.kb, vb = VB ? VB : kv.vb;
		const uint32_t *Rk = R, *Rv = R + DTC_KEYS * NG * kb;
		const __half *Sk = (const __half *)(Rv + DTC_KEYS * NG * vb);
		const __half *Sv = Sk + DTC_KEYS * NG;
		uint16_t *Kt = Kw, *Vt = Kw + DTC_KEYS * LD;
		const __half2 mk = __float2half2_rn(1024.0f + (float)(1u << (kb - 1)));
		const __half2 mv = __float2half2_rn(1024.0f + (float)(1u << (vb - 1)));
		/* 1 / m and 1 / (2 m): powers of two, so scale x them rounds
		 * to the f16 of the exact step (and half step) */
		const __half2 ik = __float2half2_rn(1.0f / (float)(1u << (kb - 1)));
		const __half2 iv = __float2half2_rn(1.0f / (float)(1u << (vb - 1)));
		const __half2 hk = __float2half2_rn(0.5f / (float)(1u << (kb - 1)));
		const __half2 hv = __float2half2_rn(0.5f / (float)(1u << (vb - 1)));

		if constexpr (KB == 4 && VB == 4) {
			/* 4 bits: a lane takes a whole group (key r, group g) at
			 * a time, its 4 words in one 16-byte load and its step
			 * once.  Groups vary fastest over the lanes (a load
			 * phase's 8 lanes read 128 contiguous bytes); lanes of
			 * groups 2, 3 store their parts in the order p ^ 2, so a
			 * store phase's 8 lanes (2 rows x 4 groups) hit distinct
			 * banks (groups 0 and 2 of a row are 64 bytes apart). */
			const __half2 m64 = __float2half2_rn(64.0f + (float)(1u << (KB - 1)));

#pragma unroll
			for (int idx = lane; idx < DTC_KEYS * NG; idx += 32) {
				const int r = idx / NG, g = idx % NG;
				const bool flip = (g & 2) != 0;
#pragma unroll
				for (int h = 0; h < 2; h++) {
					const uint4 u = *(const uint4 *)((h ? Rv : Rk) + (r * NG + g) * 4);
					const __half2 sc = __half2half2((h ? Sv : Sk)[r * NG + g]);
					const __half2 s2 = __hmul2(sc, h ? iv : ik);
					const __half2 s1 = __hmul2(sc, h ? hv : hk);
					const uint32_t wd[4] = {u.x, u.y, u.z, u.w};

#pragma unroll
					for (int p0 = 0; p0 < 4; p0++) {
						const int p = flip ? p0 ^ 2 : p0;
						/* codes s, s + 4 as half2 1024 + c (s
						 * even: bits 0-3 of each half) or 64 + c
						 * (s odd: bits 4-7, spacing 1/16), one
						 * shift a word */
						const uint32_t x = flip ? wd[p0 ^ 2] : wd[p0], y = x >> 8;
						uint32_t pr[4];

						pr[0] = dtc_andor(x, 0x000F000Fu, 0x64006400u);
						pr[1] = dtc_andor(x, 0x00F000F0u, 0x54005400u);
						pr[2] = dtc_andor(y, 0x000F000Fu, 0x64006400u);
						pr[3] = dtc_andor(y, 0x00F000F0u, 0x54005400u);
#pragma unroll
						for (int q2 = 0; q2 < 4; q2++) {
							/* mk = mv: KB == VB */
							__half2 v = __hsub2(*(__half2 *)&pr[q2],
									    q2 & 1 ? m64 : mk);

							v = __hfma2(v, s2, s1);
							pr[q2] = *(uint32_t *)&v;
						}
						*(uint4 *)((h ? Vt : Kt) + r * LD + g * 32 + p * 8) =
							make_uint4(pr[0], pr[1], pr[2], pr[3]);
					}
				}
			}
		} else {
#pragma unroll
			for (int idx = lane; idx < DTC_KEYS * NG * 4; idx += 32) {
				const int r = idx / (NG * 4), g = idx / 4 % NG, p = idx % 4;
#pragma unroll
				for (int h = 0; h < 2; h++) {
					const unsigned b = h ? vb : kb;
					const uint32_t *w = (h ? Rv : Rk) + r * NG * b;
					const __half2 sc = __half2half2((h ? Sv : Sk)[r * NG + g]);
					const __half2 s2 = __hmul2(sc, h ? iv : ik), s1 = __hmul2(sc, h ? hv : hk);
					uint32_t raw[3], pr[4];
					uint4 o;

					kvq_load_raw(w, (size_t)g, b, (unsigned)p, raw);
					dtc_pairs(raw, b, pr);
#pragma unroll
					for (int q2 = 0; q2 < 4; q2++) {
						__half2 x = __hsub2(*(__half2 *)&pr[q2], h ? mv : mk);

						x = __hfma2(x, s2, s1);
						pr[q2] = *(uint32_t *)&x;
					}
					o = make_uint4(pr[0], pr[1], pr[2], pr[3]);
					*(uint4 *)((h ? Vt : Kt) + r * LD + g * 32 + p * 8) = o;
				}
			}
		}
	};
	/* S = Q K^T over the tile, softmax, O += P V (pf_tile for 16 keys;
	 * vm: the valid positions) */
	auto tile = [&](const uint16_t *Ks, const uint16_t *Vs, unsigned vm) {
		float sf[2][4];

#pragma unroll
		for (int nb = 0; nb < 2; nb++)
			sf[nb][0] = sf[nb][1] = sf[nb][2] = sf[nb][3] = 0.0f;
#pragma unroll
		for (int kk = 0; kk < D / 16; kk++) {
			uint32_t b[4];

			if (kk >= nk)
				break;
			ldsm4(b, Ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 +
					 ((lane >> 3) & 1) * 8);
			pf_t<1>::mma(sf[0], qa[kk], b[0], b[1]);
			pf_t<1>::mma(sf[1], qa[kk], b[2], b[3]);
		}
#pragma unroll
		for (int k = 0; k < 2; k++)
#pragma unroll
			for (int nb = 0; nb < 2; nb++)
#pragma unroll
				for (int e = 0; e < 2; e++)
					if (!((vm >> (nb * 8 + 2 * cq + e)) & 1u))
						sf[nb][2 * k + e] = -INFINITY;
		frag_softmax<2, D>(sf, mrow, lrow, of);
		{
			uint32_t a[4];

			a[0] = pf_t<1>::pack(sf[0][0], sf[0][1]);
			a[1] = pf_t<1>::pack(sf[0][2], sf[0][3]);
			a[2] = pf_t<1>::pack(sf[1][0], sf[1][1]);
			a[3] = pf_t<1>::pack(sf[1][2], sf[1][3]);
#pragma unroll
			for (int dp = 0; dp < D / 16; dp++) {
				uint32_t b[4];

				if (dp >= nk)
					break;
				ldsm4t(b, Vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * LD +
						  dp * 16 + (lane >> 4) * 8);
				pf_t<1>::mma(of[2 * dp], a, b[0], b[1]);
				pf_t<1>::mma(of[2 * dp + 1], a, b[2], b[3]);
			}
		}
	};

	/* the ring: tiles n + 1 .. n + NS - 1 in flight while tile n
	 * is computed; an empty group where a tile is past the split */
	{
		int2 ent = entry(first);

		for (int st = 0; st < NS - 1; st++) {
			const long long T = first + st * stride;
			const int2 nx = entry(T + stride);

			if (T <= t_end)
				issue(st, ent);
			else
				asm volatile("cp.async.commit_group;\n" ::: "memory");
			ent = nx;
		}
		for (int n = 0;; n++) {
			const long long T = first + (long long)n * stride;
			const long long Tn = T + (long long)(NS - 1) * stride;
			const int cur = n % NS;

			if (T > t_end)
				break;
			{
				const int2 e = ent;

				ent = entry(Tn + stride);
				if (Tn <= t_end)
					issue((n + NS - 1) % NS, e);
				else
					asm volatile("cp.async.commit_group;\n" ::: "memory");
			}
			/* all but the newest NS - 1 groups: tile n */
			asm volatile("cp.async.wait_group %0;\n" ::"n"(NS - 1) : "memory");
			__syncwarp();
			if constexpr (QN) {
				dequant(cur);
				__syncwarp();
				tile(Kw, Kw + DTC_KEYS * LD, vmask[warp * NS + cur]);
			} else {
				const uint16_t *Kc = Kw + cur * 2 * DTC_KEYS * LD;

				tile(Kc, Kc + DTC_KEYS * LD, vmask[warp * NS + cur]);
			}
			__syncwarp(); /* stage cur (and QN's tiles) read */
		}
	}
	tern_pdl_trigger(); /* the main loop is done: see gpu/cuda/pdl.cuh */
	asm volatile("cp.async.wait_group 0;\n" ::: "memory");
	if (QN) /* o back from the values' rotated domain */
		frag_unrotate<D>(of);
	__syncthreads(); /* every warp done with its stages: reused below */
	{
		/* [warp][16][D] o, then [warp][16] m and l */
		float *ro = (float *)St, *rm = ro + DTC_WARPS * 16 * D,
		      *rl = rm + DTC_WARPS * 16;

#pragma unroll
		for (int k = 0; k < 2; k++) {
			const int r = gq + 8 * k;
			float L = lrow[k];

			L += __shfl_xor_sync(0xffffffffu, L, 1);
			L += __shfl_xor_sync(0xffffffffu, L, 2);
#pragma unroll
			for (int nd = 0; nd < D / 8; nd++) {
				float *dst = ro + (warp * 16 + r) * D + nd * 8;

				if (QN) { /* columns 2 cq, 2 cq + 1 are dims cq, cq + 4 */
					dst[cq] = of[nd][2 * k];
					dst[cq + 4] = of[nd][2 * k + 1];
				} else {
					*(float2 *)(dst + 2 * cq) =
						make_float2(of[nd][2 * k], of[nd][2 * k + 1]);
				}
			}
			if (cq == 0) {
				rm[warp * 16 + r] = mrow[k];
				rl[warp * 16 + r] = L;
			}
		}
		__syncthreads();
		for (unsigned idx = tid; idx < n_rep * (unsigned)hd; idx += NT) {
			const unsigned g = idx / (unsigned)hd, d = idx - g * (unsigned)hd;
			const size_t h = h0 + g;
			float acc = 0.0f, L = 0.0f, M = -INFINITY;

#pragma unroll
			for (int w = 0; w < DTC_WARPS; w++)
				M = fmaxf(M, rm[w * 16 + g]);
#pragma unroll
			for (int w = 0; w < DTC_WARPS; w++) {
				const float mw = rm[w * 16 + g];
				const float f = mw == -INFINITY ? 0.0f : exp2f(mw - M);

				L += rl[w * 16 + g] * f;
				acc += ro[(w * 16 + g) * D + d] * f;
			}
			if (part_o) {
				const size_t slot = (i * n_head + h) * n_split + sp;

				if (M > -INFINITY) /* else the combine never reads it */
					part_o[slot * hd + d] = acc;
				if (d == 0) {
					part_ml[2 * slot] = M;
					part_ml[2 * slot + 1] = L;
				}
			} else {
				out[(i * n_head + h) * hd + d] = L > 0.0f ? acc / L : 0.0f;
			}
		}
	}
}

/* ---- host side ---------------------------------------------------------- */

/* Keys a decode block visits per round: DEC_THREADS / LPK key groups x
 * U keys in flight (LPK lanes per key: head_dim / 8 rounded up to a power
 * of two, at most 32). */
static size_t dec_round(size_t hd, int f16, size_t span)
{
	const size_t n8 = (hd + 7) / 8;
	size_t lpk = 1;

	while (lpk < n8 && lpk < 32)
		lpk *= 2;
	return DEC_THREADS / lpk * (size_t)DEC_U(f16, (n8 + lpk - 1) / lpk, span);
}

/* Whether the decode rows over a page table of span positions take the
 * tensor-core kernel (attn_dectc_kernel): f16 pools of head_dim a
 * multiple of 8 up to 128 from DTC_MIN_SPAN positions, quantized pools of
 * head_dim 64 or 128 from DTC_QMIN_SPAN (below, the per-lane kernel's
 * shorter chains win or tie; docs/PERFORMANCE.md); TERN_ATT_TC=0 never,
 * TERN_ATT_TC=1 at every
 * span (tests, measurements).  The launch also needs at most 16 query
 * heads a KV head and 16-byte aligned pools. */
#define DTC_MIN_SPAN 1024
#define DTC_QMIN_SPAN 4096 /* quantized pools (their tiles' decoding) */
/* blocks an SM holds of the quantized kernel (dtc_smem: 72 KB at head_dim
 * 128; the split rule counts on it) */
#define DTC_QBLOCKS 3
static int dtc_use(size_t hd, int f16, size_t span)
{
	static int mode = -1;

	if (mode < 0)
		mode = tern_switch_is("TERN_ATT_TC", "0") ? 0 :
		       tern_switch_is("TERN_ATT_TC", "1") ? 2 : 1;
	if (!mode)
		return 0;
	if (f16 == 1 ? !(hd % 8 == 0 && hd <= 128) :
	    f16 == 2 ? !(hd == 64 || hd == 128) : 1)
		return 0;
	return mode == 2 || span >= (f16 == 2 ? DTC_QMIN_SPAN : DTC_MIN_SPAN);
}

/* Launch attn_dectc_kernel<D, QN, KB, VB>; *done = 0 (nothing launched)
 * when the device lacks the shared memory. */
template <int D, int QN, int KB = 0, int VB = 0>
static int dtc_launch(dim3 grid, cudaStream_t s, const struct gpu_cuda_kv *kv,
		      float *out, const float *q, size_t n_head, float qs,
		      size_t window, float *po, float *pml, int skip,
		      unsigned align, int *done)
{
	static int attr_set[ATT_MAX_DEV];
	const size_t bytes = dtc_smem(D, QN);
	/* as many blocks as the memory holds: the carveout at its maximum */
	const int e = att_smem_optin((const void *)attn_dectc_kernel<D, QN, KB, VB>,
				     bytes, 1, attr_set, done);

	if (e || !*done)
		return e;
	(void)tern_launch(attn_dectc_kernel<D, QN, KB, VB>, grid, DTC_WARPS * 32, bytes,
			s, *kv, out, q, (unsigned)n_head, qs, window, po, pml, skip,
			align);
	return (int)cudaPeekAtLastError();
}

/* dtc_launch for a quantized pool: the common widths (both 4 or both 8
 * bits) with the widths known to the compiler (no per-value tests of the
 * plane layout; TERN_ATT_QSPEC=0 takes the generic kernel, for
 * measurements), any other pair with them read from kv. */
template <int D>
static int dtc_launch_q(dim3 grid, cudaStream_t s, const struct gpu_cuda_kv *kv,
			float *out, const float *q, size_t n_head, float qs,
			size_t window, float *po, float *pml, int skip,
			unsigned align, int *done)
{
	static int spec = -1;

	if (spec < 0)
		spec = !tern_switch_is("TERN_ATT_QSPEC", "0");
	if (spec && kv->kb == 4 && kv->vb == 4)
		return dtc_launch<D, 1, 4, 4>(grid, s, kv, out, q, n_head, qs, window,
					      po, pml, skip, align, done);
	if (spec && kv->kb == 8 && kv->vb == 8)
		return dtc_launch<D, 1, 8, 8>(grid, s, kv, out, q, n_head, qs, window,
					      po, pml, skip, align, done);
	return dtc_launch<D, 1>(grid, s, kv, out, q, n_head, qs, window, po, pml,
				skip, align, done);
}

/* Positions of a split chunk are a multiple of this: one whole round of
 * the block (a chunk of 8 positions kept 3/4 of a 128-thread block idle,
 * and 64 such splits at position 511 made two waves of latency-bound
 * blocks plus 64 partials per head to combine); TERN_ATT_ALIGN
 * overrides, for measurements. */
static size_t att_align(size_t hd, int f16, size_t span)
{
	static long env = -2;
	size_t a;

	if (env == -2)
		env = tern_switch_long("TERN_ATT_ALIGN");
	if (env > 0)
		return (size_t)env;
	if (dtc_use(hd, f16, span))
		return DTC_ROUND;
	a = dec_round(hd, f16, span);
	return a > ATT_SPLIT_ALIGN ? a : ATT_SPLIT_ALIGN;
}

/* The current device's multiprocessors (cached per process; 1 when the
 * query fails). */
static int att_n_sm(void)
{
	static int n = 0;

	if (n == 0) {
		int dev = 0, v = 0;

		if (cudaGetDevice(&dev) != cudaSuccess ||
		    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) !=
			    cudaSuccess || v < 1) {
			v = 1;
			(void)cudaGetLastError(); /* only the failed query's */
		}
		n = v;
	}
	return n;
}

/* 2 (the decode kernel's pipelined f16 path) unless TERN_ATT_PIPE=0, for
 * measurements. */
static int att_pipe(void)
{
	static int v = -1;

	if (v < 0)
		v = tern_switch_is("TERN_ATT_PIPE", "0") ? 0 : 2;
	return v;
}

/* The old rule's target block count: 512, or TERN_ATT_TARGET (both only
 * under TERN_ATT_SPLITS=target, for measurements).  Measured on an H200
 * (llama3-8b@exl3:4.0, 2026-11-28): 264 (one wave of two blocks an SM)
 * against 512 at batch 1, ctx 2048 3.50 / 3.59 ms, 4096 3.66 / 3.83, 8192
 * 4.20 / 4.31 (fewer, longer splits), but batch 8 at ctx 4096 9.50 / 7.46
 * ms (5 splits: a second wave) — hence gpu_cuda_attention_splits_waves,
 * the default since it measured as fast or faster at every shape
 * (docs/PERFORMANCE.md). */
static size_t att_target(void)
{
	static long v = -2;

	if (v == -2)
		v = tern_switch_long("TERN_ATT_TARGET");
	return v > 0 ? (size_t)v : 512;
}

extern "C" size_t gpu_cuda_attention_splits_waves(size_t items, size_t units,
						  size_t max_split, int n_sm, int per_sm)
{
	const size_t slots = (size_t)(per_sm > 0 ? per_sm : 2) * (size_t)(n_sm > 0 ? n_sm : 1);
	size_t s, n_split = 1, best = 0;

	if (items >= slots)
		return 1; /* a wave is full unsplit: splits would only add
			   * partials to merge */
	if (max_split > units)
		max_split = units;
	for (s = 1; s <= max_split; s++) {
		const size_t waves = (items * s + slots - 1) / slots;
		const size_t cost = waves * ((units + s - 1) / s);

		if (best == 0 || cost < best) {
			best = cost;
			n_split = s;
		}
	}
	return n_split;
}

/* 1 (gpu_cuda_attention_splits_waves) unless TERN_ATT_SPLITS=target
 * selects the old fixed-target rule, for measurements. */
static int att_waves(void)
{
	static int v = -1;

	if (v < 0)
		v = !tern_switch_is("TERN_ATT_SPLITS", "target");
	return v;
}

extern "C" size_t gpu_cuda_attention_splits(size_t n_rows, size_t n_head_kv,
					    size_t span, size_t head_dim, int f16)
{
	/* blocks = n_rows * n_head_kv * n_split; a split needs at least one
	 * round of positions (att_align).  Default: the waves rule; under
	 * TERN_ATT_SPLITS=target about 4 blocks per SM on 132 SMs. */
	const size_t target = att_target(), items = n_rows * n_head_kv;
	const size_t al = att_align(head_dim, f16, span);
	size_t n_split = 1, units = (span + al - 1) / al;

	if (att_waves())
		return gpu_cuda_attention_splits_waves(items, units,
						       GPU_CUDA_ATT_MAX_SPLIT,
						       att_n_sm(),
						       f16 == 2 && dtc_use(head_dim, f16, span) ?
							       DTC_QBLOCKS : 2);
	if (items < target)
		n_split = (target + items - 1) / items;
	if (n_split > units)
		n_split = units;
	if (n_split > GPU_CUDA_ATT_MAX_SPLIT)
		n_split = GPU_CUDA_ATT_MAX_SPLIT;
	return n_split ? n_split : 1;
}

template <int F16, int G, int C>
static void dec_launch(dim3 grid, cudaStream_t s, const struct gpu_cuda_kv *kv,
		       float *out, const float *q, unsigned n_head, unsigned n_grp,
		       float qs, size_t window, float *po, float *pml,
		       int skip, int lpk, int vec, unsigned align, size_t span)
{
	if (F16 == 2 && C == 1 && DEC_U(F16, C, span) == 8)
		(void)tern_launch(attn_decode_kernel<F16, G, C, DEC_U(F16, C, DEC_QSPAN)>,
				grid, DEC_THREADS, 0, s, *kv, out, q, n_head, n_grp,
				qs, window, po, pml, skip, lpk, vec, align);
	else
		(void)tern_launch(attn_decode_kernel<F16, G, C, DEC_U(F16, C, 0)>, grid,
				DEC_THREADS, 0, s, *kv, out, q, n_head, n_grp, qs,
				window, po, pml, skip, lpk, vec, align);
}

template <int F16, int C>
static void dec_launch_g(int G, dim3 grid, cudaStream_t s,
			 const struct gpu_cuda_kv *kv, float *out, const float *q,
			 unsigned n_head, unsigned n_grp, float qs, size_t window,
			 float *po, float *pml, int skip, int lpk,
			 int vec, unsigned al, size_t span)
{
	if (G == 1)
		dec_launch<F16, 1, C>(grid, s, kv, out, q, n_head, n_grp, qs, window,
				      po, pml, skip, lpk, vec, al, span);
	else if (G == 2)
		dec_launch<F16, 2, C>(grid, s, kv, out, q, n_head, n_grp, qs, window,
				      po, pml, skip, lpk, vec, al, span);
	else if (G == 4)
		dec_launch<F16, 4, C>(grid, s, kv, out, q, n_head, n_grp, qs, window,
				      po, pml, skip, lpk, vec, al, span);
	else if (C == 1 && F16 != 2) /* a quantized pool: G <= 4 */
		dec_launch<F16 == 2 ? 0 : F16, 8, 1>(grid, s, kv, out, q, n_head,
						     n_grp, qs, window, po, pml, skip,
						     lpk, vec, al, span);
}

/* dec_launch_g for C (8 dims a lane, or 16) known at run time. */
template <int F16>
static void dec_launch_c(int C, int G, dim3 grid, cudaStream_t s,
			 const struct gpu_cuda_kv *kv, float *out, const float *q,
			 unsigned n_head, unsigned n_grp, float qs, size_t window,
			 float *po, float *pml, int skip, int lpk, int vec,
			 unsigned al, size_t span)
{
	if (C == 1)
		dec_launch_g<F16, 1>(G, grid, s, kv, out, q, n_head, n_grp, qs, window,
				     po, pml, skip, lpk, vec, al, span);
	else
		dec_launch_g<F16, 2>(G, grid, s, kv, out, q, n_head, n_grp, qs, window,
				     po, pml, skip, lpk, vec, al, span);
}

/* Launch the prefill kernel; *done = 0 (nothing launched) when the device
 * lacks the shared memory (e.g. 99 KB on sm_86/89: f32 pool, D >= 128). */
template <int F16, int D, int PIPE, int QN = 0>
static int pf_launch1(cudaStream_t s, const struct gpu_cuda_kv *kv, float *out,
		      const float *q, size_t n_head, float qs, size_t window,
		      int *done)
{
	static int attr_set[ATT_MAX_DEV];
	const size_t bytes = pf_smem(D, F16, PIPE);
	const size_t n_tiles = (kv->n_rows + PF_ROWS - 1) / PF_ROWS;
	const int e = att_smem_optin((const void *)attn_prefill_kernel<F16, D, PIPE, QN>,
				     bytes, 0, attr_set, done);

	if (e || !*done)
		return e;
	(void)tern_launch(attn_prefill_kernel<F16, D, PIPE, QN>,
			(unsigned)(n_tiles * n_head), PF_THREADS, bytes, s, *kv,
			out, q, (unsigned)n_head, qs, window);
	return (int)cudaPeekAtLastError();
}

/* 1 unless TERN_ATT_PF_PIPE=0: f16 pools take the pipelined prefill loop
 * (see pf_issue). */
static int att_pf_pipe(void)
{
	static int v = -1;

	if (v < 0)
		v = !tern_switch_is("TERN_ATT_PF_PIPE", "0");
	return v;
}

/* KIND: the pool's (gpu_cuda_kv.f16: 0 f32, 1 f16, 2 quantized, whose
 * tiles are dequantized to f16). */
template <int KIND, int D>
static int pf_launch(cudaStream_t s, const struct gpu_cuda_kv *kv, float *out,
		     const float *q, size_t n_head, float qs, size_t window,
		     int *done)
{
	if constexpr (KIND == 1) {
		if (att_pf_pipe()) {
			const int rc = pf_launch1<1, D, 1>(s, kv, out, q, n_head, qs,
							   window, done);

			if (rc || *done)
				return rc;
			/* too little shared memory for two K/V tiles (e.g.
			 * head_dim 256 on sm_80): the plain loop */
		}
	}
	return pf_launch1<KIND != 0, D, 0, KIND == 2>(s, kv, out, q, n_head, qs,
						      window, done);
}

/* pf_launch at the smallest tile width D >= head_dim (<= 256). */
template <int KIND>
static int pf_launch_hd(cudaStream_t s, const struct gpu_cuda_kv *kv, float *out,
			const float *q, size_t n_head, float qs, size_t window,
			int *done)
{
	const size_t hd = kv->head_dim;

	return hd <= 64 ? pf_launch<KIND, 64>(s, kv, out, q, n_head, qs, window, done) :
	       hd <= 128 ? pf_launch<KIND, 128>(s, kv, out, q, n_head, qs, window, done) :
			   pf_launch<KIND, 256>(s, kv, out, q, n_head, qs, window, done);
}

extern "C" int gpu_cuda_launch_attention(void *stream, const struct gpu_cuda_kv *kv,
					 float *out, const float *q, size_t n_head,
					 float scale, size_t window, size_t n_split,
					 int single_seq, float *part_o, float *part_ml,
					 const struct gpu_cuda_att_rot *rot,
					 int *rotated)
{
	cudaStream_t s = (cudaStream_t)stream;
	const size_t hd = kv->head_dim, n_rep = n_head / kv->n_head_kv;
	const size_t n8 = (hd + 7) / 8;
	const float qs = scale * LOG2E;
	const int aligned = !(((uintptr_t)kv->k | (uintptr_t)kv->v | (uintptr_t)q |
			       (uintptr_t)out) & 15);
	const int vec = hd % 8 == 0 && aligned ? 1 | att_pipe() : 0;
	/* the positions a row may attend (the page table's, or the window) */
	const size_t span = window && window < kv->max_pages * kv->page_size ?
				    window : kv->max_pages * kv->page_size;
	const unsigned al = (unsigned)att_align(hd, kv->f16, span);
	int lpk = 1, C, G, skip = 0, rc;
	size_t n_grp;

	struct gpu_cuda_att_rot rt = { NULL, NULL, 0 };

	if (rotated)
		*rotated = 0;
	if (kv->n_rows == 0)
		return 0;
	if (n_split <= 1) {
		part_o = NULL;
		part_ml = NULL;
		n_split = 1;
	}
	/* the o_proj input in the combine: only where the combine writes
	 * every row (no prefill kernel) and a head is one 128-block */
	if (rot && rot->xh && rot->suh && n_split > 1 && hd == 128 &&
	    kv->n_rows < ATT_PREFILL_MIN && rot->k == n_head * 128)
		rt = *rot;
	/* prefill: tensor-core kernel for the uniform 64-row tiles */
	if (kv->n_rows >= ATT_PREFILL_MIN && vec && hd <= 256) {
		rc = kv->f16 == 2 ? pf_launch_hd<2>(s, kv, out, q, n_head, qs, window, &skip) :
		     kv->f16 ? pf_launch_hd<1>(s, kv, out, q, n_head, qs, window, &skip) :
			       pf_launch_hd<0>(s, kv, out, q, n_head, qs, window, &skip);
		if (rc)
			return rc; /* skip = 1: the decode kernel leaves uniform tiles */
		if (skip && single_seq)
			return 0; /* every tile is uniform: nothing left to do */
	}
	/* decode: the tensor-core kernel over long page tables (a quantized
	 * pool's group index in 32 bits there) */
	if ((vec & 1) && n_rep <= 16 && dtc_use(hd, kv->f16, span) &&
	    (kv->f16 != 2 || kv->n_pages * kv->page_size * kv->n_head_kv * hd / 32 <
			     (size_t)INT_MAX)) {
		dim3 grid((unsigned)(kv->n_rows * kv->n_head_kv), (unsigned)n_split);
		int done = 0;

		rc = kv->f16 == 2 ?
			(hd <= 64 ? dtc_launch_q<64>(grid, s, kv, out, q, n_head, qs, window,
						     part_o, part_ml, skip, al, &done) :
				    dtc_launch_q<128>(grid, s, kv, out, q, n_head, qs, window,
						      part_o, part_ml, skip, al, &done)) :
			(hd <= 64 ? dtc_launch<64, 0>(grid, s, kv, out, q, n_head, qs, window,
						      part_o, part_ml, skip, al, &done) :
				    dtc_launch<128, 0>(grid, s, kv, out, q, n_head, qs, window,
						       part_o, part_ml, skip, al, &done));
		if (rc)
			return rc;
		if (done)
			goto combine;
	}
	/* decode: lanes per key, dims per lane (8 C), heads per block */
	while ((size_t)lpk < n8 && lpk < 32)
		lpk *= 2;
	C = (int)((n8 + (size_t)lpk - 1) / (size_t)lpk); /* 1, or 2 for hd > 256 */
	/* at most 4 heads a block on a quantized pool: its pipelined
	 * decode's registers (a second block of the group reads the same
	 * small rows, from L2) */
	for (G = 1; (size_t)G < n_rep && G < (C == 1 && kv->f16 != 2 ? 8 : 4);)
		G *= 2;
	n_grp = (n_rep + (size_t)G - 1) / (size_t)G;
	/* a short context (the page table's span, as n_split counts it, not
	 * the rows' positions): every split one chunk of al positions (one
	 * round of the block) and at most one block per SM.  Each block is then a
	 * single chain of latencies whose length is its G heads' arithmetic
	 * (one warp a scheduler; 12.8k cycles at G = 4 on an H200), so
	 * halving G halves it, twice the blocks reading the same K/V rows (the
	 * second read from L2).  Measured on an H200, llama3-8b@exl3:4.0
	 * decode at ctx 512: 3.31 -> 3.23 ms a step (G = 1: 3.30-3.35); at
	 * ctx 4096 (8 rounds a split) G = 2 was slower, 3.92 against 3.86,
	 * and batch 8 (512 blocks) keeps G too. */
	if (G > 2 && n_split > 1) {
		if (span <= n_split * al &&
		    kv->n_rows * kv->n_head_kv * n_grp * n_split <= (size_t)att_n_sm()) {
			G /= 2;
			n_grp = (n_rep + (size_t)G - 1) / (size_t)G;
		}
	}
	{
		dim3 grid((unsigned)(kv->n_rows * kv->n_head_kv * n_grp), (unsigned)n_split);

		if (kv->f16 == 2)
			dec_launch_c<2>(C, G, grid, s, kv, out, q, (unsigned)n_head,
					(unsigned)n_grp, qs, window, part_o, part_ml, skip,
					lpk, vec, al, span);
		else if (kv->f16)
			dec_launch_c<1>(C, G, grid, s, kv, out, q, (unsigned)n_head,
					(unsigned)n_grp, qs, window, part_o, part_ml, skip,
					lpk, vec, al, span);
		else
			dec_launch_c<0>(C, G, grid, s, kv, out, q, (unsigned)n_head,
					(unsigned)n_grp, qs, window, part_o, part_ml, skip,
					lpk, vec, al, span);
	}
combine:
	if (n_split > 1 && cudaPeekAtLastError() == cudaSuccess)
		(void)tern_launch(attn_combine_kernel,
				(unsigned)(kv->n_rows * n_head), COMB_THREADS,
				0, s, *kv, out, part_o, part_ml, n_head,
				n_split, window, skip, rt);
	if (rotated)
		*rotated = rt.xh != NULL;
	return (int)cudaGetLastError();
}
