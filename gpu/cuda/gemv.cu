/* gpu/cuda/gemv.cu — the decode-time linear layer: f16/bf16 weights, few
 * activation rows.
 *
 *   out[i, r] = sum_j x[i, j] * W[r, j] (+ bias[r])
 *   out f32 [n, rows], x f32 [n, k], W f16/bf16 [rows, k], n <= 8
 *
 * Memory bound: it must read W once (2 * rows * k bytes) and x (n * k * 4,
 * from L1/L2 after the first warp) for 2 * n * rows * k FLOPs, i.e. n FLOPs
 * per weight byte, far under the machine balance.  So the kernel only has
 * to stream W at full bandwidth: one warp per weight row, each lane loading
 * 16 bytes (8 weights) at a time with UNROLL independent loads in flight,
 * widening to f32 in registers and accumulating n dot products in f32;
 * a warp shuffle reduction gives the row's n outputs.  When k is not a
 * multiple of 8 or x / W are not 16-byte aligned (16-byte loads would be
 * misaligned), a scalar variant runs.
 * Result differs from the CPU oracle by summation order only.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"

#define GEMV_WARPS 8
#define GEMV_UNROLL 4

/* Widen 8 packed weights (one 16-byte load) to f32. */
template <int WT>
__device__ __forceinline__ void widen8(const uint4 &u, float f[8])
{
	const uint32_t w[4] = { u.x, u.y, u.z, u.w };

#pragma unroll
	for (int q = 0; q < 4; q++) {
		if (WT == CUDA_WT_BF16) {
			f[2 * q] = __uint_as_float(w[q] << 16);
			f[2 * q + 1] = __uint_as_float(w[q] & 0xffff0000u);
		} else {
			__half2 h = *reinterpret_cast<const __half2 *>(&w[q]);
			float2 t = __half22float2(h);

			f[2 * q] = t.x;
			f[2 * q + 1] = t.y;
		}
	}
}

/* acc[i] += W8 . x[i, j..j+8) */
template <int N>
__device__ __forceinline__ void fma8(float acc[N], const float wf[8],
				     const float *x, size_t k, size_t j)
{
#pragma unroll
	for (int i = 0; i < N; i++) {
		const float4 a = __ldg(reinterpret_cast<const float4 *>(x + i * k + j));
		const float4 b = __ldg(reinterpret_cast<const float4 *>(x + i * k + j + 4));

		acc[i] += wf[0] * a.x + wf[1] * a.y + wf[2] * a.z + wf[3] * a.w +
			  wf[4] * b.x + wf[5] * b.y + wf[6] * b.z + wf[7] * b.w;
	}
}

template <int N, int WT>
__global__ static void __launch_bounds__(GEMV_WARPS * 32)
gemv_vec_kernel(float *out, const float *x, const void *w, const void *bias,
		int bias_wt, size_t k, size_t rows)
{
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
	const uint4 *wr;
	float acc[N];
	size_t j;

	if (r >= rows)
		return;
	wr = reinterpret_cast<const uint4 *>((const uint16_t *)w + r * k);
#pragma unroll
	for (int i = 0; i < N; i++)
		acc[i] = 0.0f;
	/* main loop: UNROLL loads of 16 bytes per lane in flight */
	for (j = 0; j + 256 * GEMV_UNROLL <= k; j += 256 * GEMV_UNROLL) {
		uint4 u[GEMV_UNROLL];

#pragma unroll
		for (int q = 0; q < GEMV_UNROLL; q++)
			u[q] = __ldg(wr + (j + q * 256) / 8 + lane);
#pragma unroll
		for (int q = 0; q < GEMV_UNROLL; q++) {
			float wf[8];

			widen8<WT>(u[q], wf);
			fma8<N>(acc, wf, x, k, j + q * 256 + lane * 8);
		}
	}
	/* tail: whole 8-element groups (k % 8 == 0 on this path) */
	for (; j < k; j += 256) {
		size_t jj = j + lane * 8;

		if (jj < k) {
			float wf[8];

			widen8<WT>(__ldg(wr + jj / 8), wf);
			fma8<N>(acc, wf, x, k, jj);
		}
	}
#pragma unroll
	for (int i = 0; i < N; i++)
		acc[i] = tern_warp_sum(acc[i]);
	if (lane == 0) {
		float b = bias ? tern_ldw(bias, bias_wt, r) : 0.0f;

#pragma unroll
		for (int i = 0; i < N; i++)
			out[i * rows + r] = acc[i] + b;
	}
}

/* Any k: scalar loads, one warp per (row, x row). */
__global__ static void gemv_scalar_kernel(float *out, const float *x,
					  const void *w, int wt, const void *bias,
					  int bias_wt, size_t n, size_t k,
					  size_t rows)
{
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);

	if (r >= rows)
		return;
	for (size_t i = 0; i < n; i++) {
		float acc = 0.0f;

		for (size_t j = lane; j < k; j += 32)
			acc += tern_ldw(w, wt, r * k + j) * x[i * k + j];
		acc = tern_warp_sum(acc);
		if (lane == 0)
			out[i * rows + r] = acc +
				(bias ? tern_ldw(bias, bias_wt, r) : 0.0f);
	}
}

template <int WT>
static void launch_vec(cudaStream_t s, unsigned blocks, float *out,
		       const float *x, const void *w, const void *bias,
		       int bias_wt, size_t n, size_t k, size_t rows)
{
	const unsigned th = GEMV_WARPS * 32;

	switch (n) {
#define CASE(N)                                                              \
	case N:                                                              \
		gemv_vec_kernel<N, WT><<<blocks, th, 0, s>>>(out, x, w, bias, \
							     bias_wt, k, rows); \
		break;
	CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
	default:
		break;
	}
}

extern "C" int gpu_cuda_launch_gemv(void *stream, float *out, const float *x,
				    const void *w, int wt, const void *bias,
				    int bias_wt, size_t n, size_t k, size_t rows)
{
	cudaStream_t s = (cudaStream_t)stream;
	unsigned blocks = tern_div_up(rows, GEMV_WARPS);

	if (n == 0 || n > GPU_CUDA_GEMV_MAX_N || wt == CUDA_WT_F32)
		return (int)cudaErrorInvalidValue;
	if (k % 8 == 0 && ((uintptr_t)x | (uintptr_t)w) % 16 == 0) {
		if (wt == CUDA_WT_BF16)
			launch_vec<CUDA_WT_BF16>(s, blocks, out, x, w, bias,
						 bias_wt, n, k, rows);
		else
			launch_vec<CUDA_WT_F16>(s, blocks, out, x, w, bias,
						bias_wt, n, k, rows);
	} else {
		gemv_scalar_kernel<<<blocks, GEMV_WARPS * 32, 0, s>>>(
			out, x, w, wt, bias, bias_wt, n, k, rows);
	}
	return (int)cudaGetLastError();
}
