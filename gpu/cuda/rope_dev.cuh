/* gpu/cuda/rope_dev.cuh — device helpers of the KV cache and RoPE shared
 * by the attention kernels (gpu/cuda/attention.cu) and the EXL3 output
 * launch that rotates and stores q/k/v itself (gpu/cuda/exl3.cu): a
 * position's page, a row's cache slot, and one rotation pair, so that the
 * two paths give the same bits.  Internal to gpu/cuda. */
#ifndef TERN_GPU_CUDA_ROPE_DEV_CUH
#define TERN_GPU_CUDA_ROPE_DEV_CUH

#include <stdint.h>

#include "gpu/cuda/kernels.h"

/* Page of position t of sequence s, or -1 when the entry is invalid. */
__device__ __forceinline__ long long kv_page(const struct gpu_cuda_kv &kv,
					     size_t s, size_t t)
{
	size_t pi = (unsigned)t / (unsigned)kv.page_size; /* positions are i32 */
	int32_t pg;

	if (pi >= kv.max_pages)
		return -1;
	pg = kv.page_table[s * kv.max_pages + pi];
	if (pg < 0 || (size_t)pg >= kv.n_pages)
		return -1;
	return pg;
}

/* Element offset of (the slot of sequence rs, position rp; kv head hk;
 * dim 0) in the pool, or -1 when the sequence, position or page entry is
 * invalid (the row's store is skipped). */
__device__ __forceinline__ long long kv_slot_at(const struct gpu_cuda_kv &kv,
						int32_t rs, int32_t rp, size_t hk)
{
	long long pg;

	if (rs < 0 || (size_t)rs >= kv.n_seq || rp < 0)
		return -1;
	pg = kv_page(kv, (size_t)rs, (size_t)rp);
	if (pg < 0)
		return -1;
	return (long long)((((size_t)pg * kv.page_size + (size_t)rp % kv.page_size) *
			    kv.n_head_kv + hk) * kv.head_dim);
}

/* The rotate-half pair (a, b) = (x[f], x[f + n_rot / 2]) at position p
 * with frequency fr: theta = (float)p * fr, c = cos(theta) * af, s =
 * sin(theta) * af, (a c - b s, b c + a s), every rounding explicit (no
 * contraction left to the compiler), so that every kernel rotating a pair
 * gets the same bits. */
__device__ __forceinline__ void rope_pair(float a, float b, int32_t p, float fr,
					  float af, float *ra, float *rb)
{
	const float theta = __fmul_rn((float)p, fr);
	float sn, cs;

	sincosf(theta, &sn, &cs);
	cs = __fmul_rn(cs, af);
	sn = __fmul_rn(sn, af);
	*ra = __fmaf_rn(a, cs, -__fmul_rn(b, sn));
	*rb = __fmaf_rn(b, cs, __fmul_rn(a, sn));
}

#endif
