/* gpu/cuda/attention.cu — paged KV store and causal GQA attention.
 *
 * Pool layout (one layer): K, V [n_pages, page_size, n_head_kv, head_dim],
 * f32 or f16; position t of sequence s lives in page
 * page_table[s, t / page_size], slot t % page_size (gpu.h).
 *
 * kv_store: one block per row; bytes: 2 * n_rows * n_head_kv * head_dim *
 * (4 read + 2|4 written).  A row with a bad sequence, position or page is
 * skipped (the CPU backend rejects it; gpu.h allows CUDA to skip).
 *
 * attention (decode and prefill, one kernel for now): one block of
 * ATT_THREADS per (row, query head, split); kv head hk = h / (n_head /
 * n_head_kv).  Split-K (flash-decoding): when rows x heads are too few to
 * fill the GPU (decode), the positions lo..p of a row are cut into n_split
 * chunks of whole tiles, each block producing a partial (m, l, o) that
 * attn_combine_kernel merges.  A block walks its positions in tiles of
 * ATT_TILE:
 *   1. page entries of the tile -> shared (invalid entries: -1, skipped);
 *   2. scores s_t = scale * q . K[t] — one warp per position, lanes over
 *      head_dim, shuffle reduction;
 *   3. online softmax: m' = max(m, max s_t), p_t = e^(s_t - m'),
 *      l' = l e^(m - m') + sum p_t, o' = o e^(m - m') + sum_t p_t V[t]
 *      (thread d owns output dims d, d + ATT_THREADS, ... in registers);
 *   out = o / l (or the partial, merged by rescaling with e^(m_s - M)).
 *   Same formula as gpu/cpu/attention.c; only the summation order differs.
 * Bytes: per (row, head) (p - lo + 1) * head_dim * 2 * sizeof(elem) (K and V
 * of the GQA group come from L2 after the first head); FLOPs 4 * that count
 * * head_dim.  Still to do (docs/PERFORMANCE.md): one block per GQA group
 * so K/V are read once for its query heads, and a tensor-core tile kernel
 * for prefill.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_TILE 64
#define ATT_DPT (GPU_CUDA_MAX_HEAD_DIM / ATT_THREADS) /* dims per thread */

template <int F16>
__device__ __forceinline__ float kv_ld(const void *p, size_t i)
{
	if (F16)
		return __half2float(((const __half *)p)[i]);
	return ((const float *)p)[i];
}

/* Page of position t of sequence s, or -1 when the entry is invalid. */
__device__ __forceinline__ long long kv_page(const struct gpu_cuda_kv &kv,
					     size_t s, size_t t)
{
	size_t pi = t / kv.page_size;
	int32_t pg;

	if (pi >= kv.max_pages)
		return -1;
	pg = kv.page_table[s * kv.max_pages + pi];
	if (pg < 0 || (size_t)pg >= kv.n_pages)
		return -1;
	return pg;
}

template <int F16>
__global__ static void kv_store_kernel(struct gpu_cuda_kv kv, const float *k,
				       const float *v)
{
	const size_t row = kv.n_head_kv * kv.head_dim;
	size_t i = blockIdx.x;
	int32_t s = kv.row_seq[i], p = kv.row_pos[i];
	long long pg;
	size_t slot;

	if (s < 0 || (size_t)s >= kv.n_seq || p < 0)
		return;
	pg = kv_page(kv, (size_t)s, (size_t)p);
	if (pg < 0)
		return;
	slot = ((size_t)pg * kv.page_size + (size_t)p % kv.page_size) * row;
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

extern "C" int gpu_cuda_launch_kv_store(void *stream, const struct gpu_cuda_kv *kv,
					const float *k, const float *v)
{
	cudaStream_t s = (cudaStream_t)stream;

	if (kv->f16)
		kv_store_kernel<1><<<(unsigned)kv->n_rows, 128, 0, s>>>(*kv, k, v);
	else
		kv_store_kernel<0><<<(unsigned)kv->n_rows, 128, 0, s>>>(*kv, k, v);
	return (int)cudaGetLastError();
}

/* Block (row i, head h, split sp) covers positions
 * [lo + sp * chunk, min(p, lo + (sp + 1) * chunk - 1)].  With part_o NULL
 * (one split) it writes out = o / l; otherwise its unnormalised o and its
 * (m, l) go to part_o / part_ml for attn_combine_kernel. */
template <int F16>
__global__ static void __launch_bounds__(ATT_THREADS)
attention_kernel(struct gpu_cuda_kv kv, float *out, const float *q,
		 size_t n_head, float scale, size_t window, size_t chunk,
		 float *part_o, float *part_ml)
{
	__shared__ float qs[GPU_CUDA_MAX_HEAD_DIM];
	__shared__ float sc[ATT_TILE];
	__shared__ long long pgs[ATT_TILE];
	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const size_t i = blockIdx.x / n_head, h = blockIdx.x % n_head;
	const size_t sp = blockIdx.y, n_split = gridDim.y;
	const size_t hd = kv.head_dim, ps = kv.page_size;
	const size_t hk = h / (n_head / kv.n_head_kv);
	const size_t rowel = kv.n_head_kv * hd;
	const size_t slot = (i * n_head + h) * n_split + sp; /* partial index */
	float *o_row = out + (i * n_head + h) * hd;
	int32_t s32 = kv.row_seq[i], p32 = kv.row_pos[i];
	float o[ATT_DPT];
	float m = -INFINITY, l = 0.0f;
	size_t s, p, lo, t_begin, t_end;

#pragma unroll
	for (int r = 0; r < ATT_DPT; r++)
		o[r] = 0.0f;
	if (s32 < 0 || (size_t)s32 >= kv.n_seq || p32 < 0) {
		t_begin = 1;
		t_end = 0; /* invalid row: empty range, zeros out */
		s = p = 0;
	} else {
		s = (size_t)s32;
		p = (size_t)p32;
		lo = window && p + 1 > window ? p + 1 - window : 0;
		t_begin = lo + sp * chunk;
		t_end = t_begin + chunk - 1 < p ? t_begin + chunk - 1 : p;
	}
	for (size_t d = tid; d < hd; d += ATT_THREADS)
		qs[d] = q[(i * n_head + h) * hd + d];
	for (size_t t0 = t_begin; t0 <= t_end; t0 += ATT_TILE) {
		const int nt = (int)(t_end - t0 + 1 < ATT_TILE ? t_end - t0 + 1 : ATT_TILE);
		float part[ATT_TILE / ATT_WARPS];
		float tmax = m, corr, lsum = 0.0f;

		__syncthreads(); /* qs written / previous tile's sc, pgs read */
		if (tid < nt)
			pgs[tid] = kv_page(kv, s, t0 + tid);
		__syncthreads();
		/* partial dots of this warp's positions tt = warp + j * WARPS,
		 * all loads independent, then one reduction each */
#pragma unroll
		for (int j = 0; j < ATT_TILE / ATT_WARPS; j++) {
			const int tt = warp + j * ATT_WARPS;

			part[j] = 0.0f;
			if (tt < nt && pgs[tt] >= 0) {
				const size_t base = ((size_t)pgs[tt] * ps + (t0 + tt) % ps) *
						    rowel + hk * hd;

				for (size_t d = lane; d < hd; d += 32)
					part[j] += qs[d] * kv_ld<F16>(kv.k, base + d);
			}
		}
#pragma unroll
		for (int j = 0; j < ATT_TILE / ATT_WARPS; j++) {
			const int tt = warp + j * ATT_WARPS;
			float dot = tern_warp_sum(part[j]);

			if (lane == 0 && tt < nt)
				sc[tt] = pgs[tt] >= 0 ? dot * scale : -INFINITY;
		}
		__syncthreads();
		for (int tt = 0; tt < nt; tt++)
			tmax = fmaxf(tmax, sc[tt]);
		if (tmax == -INFINITY)
			continue; /* nothing valid yet: keep m, l, o */
		corr = expf(m - tmax); /* e^-inf = 0 on the first tile */
		__syncthreads(); /* every thread has read sc for the max */
		if (tid < nt)
			sc[tid] = expf(sc[tid] - tmax);
		__syncthreads();
		for (int tt = 0; tt < nt; tt++)
			lsum += sc[tt];
		l = l * corr + lsum;
		m = tmax;
#pragma unroll
		for (int r = 0; r < ATT_DPT; r++) {
			const size_t d = tid + (size_t)r * ATT_THREADS;
			float acc;

			if (d >= hd)
				break;
			acc = o[r] * corr;
#pragma unroll 8
			for (int tt = 0; tt < nt; tt++) {
				const long long pg = pgs[tt];

				if (pg >= 0)
					acc += sc[tt] *
					       kv_ld<F16>(kv.v,
							  ((size_t)pg * ps + (t0 + tt) % ps) *
								  rowel + hk * hd + d);
			}
			o[r] = acc;
		}
	}
	if (part_o) {
#pragma unroll
		for (int r = 0; r < ATT_DPT; r++) {
			const size_t d = tid + (size_t)r * ATT_THREADS;

			if (d < hd)
				part_o[slot * hd + d] = o[r];
		}
		if (tid == 0) {
			part_ml[2 * slot] = m;
			part_ml[2 * slot + 1] = l;
		}
		return;
	}
#pragma unroll
	for (int r = 0; r < ATT_DPT; r++) {
		const size_t d = tid + (size_t)r * ATT_THREADS;

		if (d < hd)
			o_row[d] = l > 0.0f ? o[r] / l : 0.0f;
	}
}

/* Merge the n_split partials of (row, head) = blockIdx.x:
 *   M = max m_s, L = sum_s l_s e^(m_s - M), out = sum_s o_s e^(m_s - M) / L
 * (empty splits have m = -inf, l = 0 and drop out). */
__global__ static void attn_combine_kernel(float *out, const float *part_o,
					   const float *part_ml, size_t n_split,
					   size_t hd)
{
	const size_t rh = blockIdx.x;
	float mx = -INFINITY, L = 0.0f;

	for (size_t sp = 0; sp < n_split; sp++)
		mx = fmaxf(mx, part_ml[2 * (rh * n_split + sp)]);
	if (mx == -INFINITY) {
		for (size_t d = threadIdx.x; d < hd; d += blockDim.x)
			out[rh * hd + d] = 0.0f;
		return;
	}
	for (size_t sp = 0; sp < n_split; sp++) {
		const float ms = part_ml[2 * (rh * n_split + sp)];

		if (ms != -INFINITY)
			L += part_ml[2 * (rh * n_split + sp) + 1] * expf(ms - mx);
	}
	for (size_t d = threadIdx.x; d < hd; d += blockDim.x) {
		float acc = 0.0f;

		for (size_t sp = 0; sp < n_split; sp++) {
			const float ms = part_ml[2 * (rh * n_split + sp)];

			if (ms != -INFINITY)
				acc += part_o[(rh * n_split + sp) * hd + d] * expf(ms - mx);
		}
		out[rh * hd + d] = acc / L;
	}
}

extern "C" size_t gpu_cuda_attention_splits(size_t n_rows, size_t n_head,
					    size_t span, size_t *chunk)
{
	const size_t target = 1024; /* blocks: several waves on 132 SMs */
	size_t n_split = 1, tiles = (span + ATT_TILE - 1) / ATT_TILE;

	if (n_rows * n_head < target)
		n_split = (target + n_rows * n_head - 1) / (n_rows * n_head);
	if (n_split > tiles)
		n_split = tiles ? tiles : 1;
	if (n_split > GPU_CUDA_ATT_MAX_SPLIT)
		n_split = GPU_CUDA_ATT_MAX_SPLIT;
	/* chunk: whole tiles, n_split chunks cover span */
	*chunk = (tiles + n_split - 1) / n_split * ATT_TILE;
	if (*chunk == 0)
		*chunk = ATT_TILE;
	n_split = (span + *chunk - 1) / *chunk;
	return n_split ? n_split : 1;
}

extern "C" int gpu_cuda_launch_attention(void *stream, const struct gpu_cuda_kv *kv,
					 float *out, const float *q, size_t n_head,
					 float scale, size_t window, size_t n_split,
					 size_t chunk, float *part_o, float *part_ml)
{
	cudaStream_t s = (cudaStream_t)stream;
	dim3 grid((unsigned)(kv->n_rows * n_head), (unsigned)n_split);

	if (n_split <= 1) {
		part_o = NULL;
		part_ml = NULL;
	}
	if (kv->f16)
		attention_kernel<1><<<grid, ATT_THREADS, 0, s>>>(*kv, out, q, n_head,
								 scale, window, chunk,
								 part_o, part_ml);
	else
		attention_kernel<0><<<grid, ATT_THREADS, 0, s>>>(*kv, out, q, n_head,
								 scale, window, chunk,
								 part_o, part_ml);
	if (n_split > 1 && cudaPeekAtLastError() == cudaSuccess)
		attn_combine_kernel<<<(unsigned)(kv->n_rows * n_head), 128, 0, s>>>(
			out, part_o, part_ml, n_split, kv->head_dim);
	return (int)cudaGetLastError();
}
