/* gpu/cuda/gemv.cu — the decode-time linear layer: f16/bf16 weights, few
 * activation rows.
 *
 *   out[i, r] = sum_j x[i, j] * W[r, j] (+ bias[r])
 *   out f32 [n, rows], x f32 [n, k], W f16/bf16 [rows, k],
 *   1 <= n <= GPU_CUDA_GEMV_MAX_N (8; the kernel is written and was
 *   checked for up to 16)
 *
 * Memory bound: it must read W once (2 * rows * k bytes) and x (n * k * 4,
 * from L1/L2) for 2 * n * rows * k FLOPs, i.e. n FLOPs per weight byte, far
 * under the machine balance.  So the kernel has to stream W at full
 * bandwidth and keep the L1 traffic for x small:
 *   - each warp owns R consecutive weight rows; a lane loads 16 bytes
 *     (8 weights) of each of its R rows at a time, U such groups per row in
 *     flight (R * U independent 16-byte loads per lane), with an L1
 *     no-allocate hint so that W does not evict x from L1;
 *   - each x value (f32, read through L1 as float4) is used for all R rows
 *     held in registers, so x costs 2 n / R bytes of L1 traffic per weight
 *     byte instead of 2 n (one row per warp);
 *   - the n x R dot products accumulate in f32 registers (n is a template
 *     parameter), then warp shuffle reductions give the outputs.
 * The main loop runs whole groups of 32 * U 16-byte columns unguarded; one
 * guarded pass does the rest.  Rows past `rows` (last warp) re-read the last
 * row and are not written.  When k is not a multiple of 8 or x / W are not
 * 16-byte aligned (16-byte loads would be misaligned), a scalar variant
 * runs.  x is used exactly (no rounding): the result differs from the CPU
 * oracle by summation order only.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"

/* Warps per block (vector kernel) and for the scalar kernel. */
#ifndef GEMV_WARPS
#define GEMV_WARPS 4
#endif
#define GEMV_SCALAR_WARPS 8

/* Rows per warp (R) and 16-byte loads in flight per row and lane (U), by n:
 * small n is pure streaming (many loads in flight), larger n needs more
 * rows per warp to amortise the x reads; R * U loads and R * n accumulators
 * stay within 128-170 registers so that 3-4 blocks fit per SM.  Chosen on
 * an H200 (docs/PERFORMANCE.md): n = 1 with R = 1 beat R = 2 by 2-5% (lm_head
 * 1% slower), n = 2 with R = 2 beat R = 1 by 20-26%, n = 4..8 with R = 4,
 * U = 4 beat R = 2 by 10-55%.  Overridable with -D for tuning. */
#ifndef GEMV_R_ONE
#define GEMV_R_ONE 1 /* n = 1 */
#endif
#ifndef GEMV_R_SMALL
#define GEMV_R_SMALL 2 /* n = 2 */
#endif
#ifndef GEMV_U_SMALL
#define GEMV_U_SMALL 8
#endif
#ifndef GEMV_R_MID
#define GEMV_R_MID 4 /* 3 <= n <= 8 */
#endif
#ifndef GEMV_U_MID
#define GEMV_U_MID 4
#endif
#ifndef GEMV_R_BIG
#define GEMV_R_BIG 4 /* 9 <= n <= 16 */
#endif
#ifndef GEMV_U_BIG
#define GEMV_U_BIG 2
#endif

#ifndef GEMV_MINB_MID
#define GEMV_MINB_MID 3 /* blocks per SM the register budget leaves room for */
#endif

template <int N> struct gemv_cfg {
	static constexpr int R = N == 1 ? GEMV_R_ONE : N <= 2 ? GEMV_R_SMALL
				 : N <= 8 ? GEMV_R_MID : GEMV_R_BIG;
	static constexpr int U = N <= 2 ? GEMV_U_SMALL : N <= 8 ? GEMV_U_MID : GEMV_U_BIG;
	static constexpr int MINB = N <= 2 ? 4 : N <= 8 ? GEMV_MINB_MID : 2;
};

/* 16 bytes of W, read-only, streamed: not kept in L1 (x lives there). */
__device__ __forceinline__ uint4 ld_stream16(const uint4 *p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
	uint4 v;

	asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
	    : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
	    : "l"(p));
	return v;
#else
	return __ldg(p);
#endif
}

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

/* acc[r][i] += W[r][8 weights] . x[i, c*8 .. c*8+8) for the R rows of
 * one 16-byte column c; xp = x + c * 8. */
template <int N, int R, int WT>
__device__ __forceinline__ void fma_col(float (&acc)[R][N], const uint4 (&u)[R],
					const float *xp, size_t k)
{
	float wf[R][8];

#pragma unroll
	for (int r = 0; r < R; r++)
		widen8<WT>(u[r], wf[r]);
#pragma unroll
	for (int i = 0; i < N; i++) {
		const float4 a = __ldg(reinterpret_cast<const float4 *>(xp + i * k));
		const float4 b = __ldg(reinterpret_cast<const float4 *>(xp + i * k + 4));

#pragma unroll
		for (int r = 0; r < R; r++) {
			float s = acc[r][i];

			s = fmaf(wf[r][0], a.x, s);
			s = fmaf(wf[r][1], a.y, s);
			s = fmaf(wf[r][2], a.z, s);
			s = fmaf(wf[r][3], a.w, s);
			s = fmaf(wf[r][4], b.x, s);
			s = fmaf(wf[r][5], b.y, s);
			s = fmaf(wf[r][6], b.z, s);
			s = fmaf(wf[r][7], b.w, s);
			acc[r][i] = s;
		}
	}
}

/* One warp per R rows; k % 8 == 0, x and W 16-byte aligned. */
template <int N, int WT>
__global__ static void __launch_bounds__(GEMV_WARPS * 32, gemv_cfg<N>::MINB)
gemv_vec_kernel(float *out, const float *x, const void *w, const void *bias,
		int bias_wt, size_t k, size_t rows)
{
	constexpr int R = gemv_cfg<N>::R, U = gemv_cfg<N>::U;
	const int lane = threadIdx.x & 31;
	const size_t r0 = ((size_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5)) * R;
	const size_t k16 = k / 8; /* 16-byte columns per row */
	const uint4 *wr[R];
	float acc[R][N];
	size_t c;

	if (r0 >= rows)
		return;
#pragma unroll
	for (int r = 0; r < R; r++) {
		const size_t rr = r0 + r < rows ? r0 + r : rows - 1;

		wr[r] = reinterpret_cast<const uint4 *>((const uint16_t *)w + rr * k) + lane;
#pragma unroll
		for (int i = 0; i < N; i++)
			acc[r][i] = 0.0f;
	}
	/* main loop: R * U loads of 16 bytes per lane in flight */
	for (c = 0; c + 32 * U <= k16; c += 32 * U) {
		uint4 u[U][R];

#pragma unroll
		for (int q = 0; q < U; q++)
#pragma unroll
			for (int r = 0; r < R; r++)
				u[q][r] = ld_stream16(wr[r] + c + q * 32);
#pragma unroll
		for (int q = 0; q < U; q++)
			fma_col<N, R, WT>(acc, u[q], x + (c + q * 32 + lane) * 8, k);
	}
	/* rest: fewer than 32 * U columns, loads still issued together */
	if (c < k16) {
		uint4 u[U][R];

#pragma unroll
		for (int q = 0; q < U; q++)
#pragma unroll
			for (int r = 0; r < R; r++)
				u[q][r] = c + q * 32 + lane < k16 ? ld_stream16(wr[r] + c + q * 32)
								  : make_uint4(0, 0, 0, 0);
#pragma unroll
		for (int q = 0; q < U; q++)
			if (c + q * 32 + lane < k16)
				fma_col<N, R, WT>(acc, u[q], x + (c + q * 32 + lane) * 8, k);
	}
#pragma unroll
	for (int r = 0; r < R; r++) {
		const size_t rr = r0 + r;
		float b = 0.0f;

#pragma unroll
		for (int i = 0; i < N; i++)
			acc[r][i] = tern_warp_sum(acc[r][i]);
		if (rr >= rows)
			continue;
		if (bias)
			b = tern_ldw(bias, bias_wt, rr);
		/* every lane holds every sum: spread the stores over lanes */
#pragma unroll
		for (int i = 0; i < N; i++)
			if (lane == ((r * N + i) & 31))
				out[i * rows + rr] = acc[r][i] + b;
	}
}

/* Any k: scalar loads, one warp per (row, x row). */
__global__ static void gemv_scalar_kernel(float *out, const float *x,
					  const void *w, int wt, const void *bias,
					  int bias_wt, size_t n, size_t k,
					  size_t rows)
{
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)blockIdx.x * GEMV_SCALAR_WARPS + (threadIdx.x >> 5);

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

template <int N, int WT>
static void launch_n(cudaStream_t s, float *out, const float *x, const void *w,
		     const void *bias, int bias_wt, size_t k, size_t rows)
{
	const size_t rows_per_block = (size_t)GEMV_WARPS * gemv_cfg<N>::R;

	gemv_vec_kernel<N, WT><<<(unsigned)tern_div_up(rows, rows_per_block),
				 GEMV_WARPS * 32, 0, s>>>(out, x, w, bias, bias_wt,
							   k, rows);
}

template <int WT>
static void launch_vec(cudaStream_t s, float *out, const float *x, const void *w,
		       const void *bias, int bias_wt, size_t n, size_t k,
		       size_t rows)
{
	switch (n) {
#define CASE(N)                                                              \
	case N:                                                              \
		launch_n<N, WT>(s, out, x, w, bias, bias_wt, k, rows);       \
		break;
	CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#if GPU_CUDA_GEMV_MAX_N > 8
	CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#endif
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

	if (n == 0 || n > GPU_CUDA_GEMV_MAX_N || n > 16 || wt == CUDA_WT_F32)
		return (int)cudaErrorInvalidValue;
	if (rows == 0)
		return 0;
	if (k % 8 == 0 && ((uintptr_t)x | (uintptr_t)w) % 16 == 0) {
		if (wt == CUDA_WT_BF16)
			launch_vec<CUDA_WT_BF16>(s, out, x, w, bias, bias_wt, n, k, rows);
		else
			launch_vec<CUDA_WT_F16>(s, out, x, w, bias, bias_wt, n, k, rows);
	} else {
		gemv_scalar_kernel<<<(unsigned)tern_div_up(rows, GEMV_SCALAR_WARPS),
				     GEMV_SCALAR_WARPS * 32, 0, s>>>(
			out, x, w, wt, bias, bias_wt, n, k, rows);
	}
	return (int)cudaGetLastError();
}
