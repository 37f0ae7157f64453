/* gpu/cuda/cuda_common.cuh — helpers shared by every kernel file: grid
 * sizing, weight-element loads for the three float types, warp and block
 * reductions.  Device code only (included by .cu files). */
#ifndef TERN_GPU_CUDA_COMMON_CUH
#define TERN_GPU_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>

#include "gpu/cuda/kernels.h"

static inline unsigned tern_div_up(size_t a, size_t b)
{
	return (unsigned)((a + b - 1) / b);
}

/* Element i of a weight array of type wt (enum cuda_wt) as f32.  f16 and
 * bf16 widen exactly, as the CPU oracle's conversions do. */
__device__ __forceinline__ float tern_ldw(const void *p, int wt, size_t i)
{
	if (wt == CUDA_WT_BF16)
		return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
	if (wt == CUDA_WT_F16)
		return __half2float(((const __half *)p)[i]);
	return ((const float *)p)[i];
}

/* The part of a multi-part launch that block bx belongs to: the last j <
 * np with block0[j] <= bx (block0 ascending, block0[0] = 0).  With the
 * launch's parameter struct passed __grid_constant__, its arrays are then
 * read at [j] in place (without it a dynamic index copies the whole
 * struct to local memory). */
template <int MAX>
__device__ __forceinline__ int tern_part_of(const unsigned (&block0)[MAX],
					    int np, unsigned bx)
{
	int j = 0;

#pragma unroll
	for (int q = 1; q < MAX; q++)
		if (q < np && bx >= block0[q])
			j = q;
	return j;
}

__device__ __forceinline__ float tern_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float tern_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum / max of v over the block (blockDim.x a multiple of 32, <= 1024);
 * every thread gets the result.  sh: 32 floats of shared memory. */
__device__ __forceinline__ float tern_block_sum(float v, float *sh)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	int nw = blockDim.x >> 5;

	v = tern_warp_sum(v);
	__syncthreads(); /* sh may still be read from a previous call */
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : 0.0f;
	return tern_warp_sum(v);
}

__device__ __forceinline__ float tern_block_max(float v, float *sh)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	int nw = blockDim.x >> 5;

	v = tern_warp_max(v);
	__syncthreads();
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	v = lane < nw ? sh[lane] : -INFINITY;
	return tern_warp_max(v);
}

#endif
