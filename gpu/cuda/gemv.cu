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
 *
 * One launch may cover up to GPU_CUDA_GEMV_MAX_PARTS weights that share x
 * (q/k/v, gate/up: gpu_matmul_multi): the grid is the concatenation of
 * each weight's blocks and a block picks its weight by blockIdx
 * (gemv_part); every block then runs exactly the single-weight code, so a
 * part's result is bit-identical to its own launch.  Why this matters: at
 * n = 1 a warp reads one row of k = 4096 (8 KiB) in just two rounds of 8
 * loads, so a launch of a 4096 x 1024 weight (8 MiB, 1.7 us of H200
 * bandwidth) is one short wave that is mostly ramp-up, two memory
 * latencies and the tail (measured 37-42% of bandwidth); 4096 x 4096 is
 * about twice as long for the same fixed cost (58-72%).  Merging q, k and
 * v (48 MiB) pays that fixed cost once.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"
#include "gpu/cuda/pdl.cuh"

#include <limits.h>
#include <string.h>

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

/* acc[r][i] += W_r . x[i] over the whole row of k = 8 * k16 weights, for
 * the R rows whose 16-byte columns start at wr[r] (lane's column already
 * added): whole groups of 32 * U columns unguarded, R * U loads of 16 bytes
 * per lane in flight, then one guarded pass over the rest with its loads
 * still issued together. */
template <int N, int R, int U, int WT>
__device__ __forceinline__ void gemv_stream(float (&acc)[R][N],
					    const uint4 *const (&wr)[R],
					    const float *x, size_t k, int lane)
{
	const size_t k16 = k / 8;
	size_t c;

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
}

/* The weights of one launch (kernel parameter): part j owns blocks
 * [block0_j, block0_{j+1}); block0_0 = 0. */
struct gemv_parts {
	float *out[GPU_CUDA_GEMV_MAX_PARTS];
	const void *w[GPU_CUDA_GEMV_MAX_PARTS];
	const void *bias[GPU_CUDA_GEMV_MAX_PARTS];
	size_t rows[GPU_CUDA_GEMV_MAX_PARTS];
	unsigned block0[GPU_CUDA_GEMV_MAX_PARTS];
	int bias_wt[GPU_CUDA_GEMV_MAX_PARTS];
	int n;
	int swiglu; /* parts 0 (gate) and 1 (up) of one shape, no bias: the
		     * first half of a block's warps run gate rows, the second
		     * the same up rows, and out[0] = silu(gate) * up */
};

/* This block's part: its fields and the block index within it (ps is the
 * kernel's __grid_constant__ parameter, read in place). */
struct gemv_pick {
	float *out;
	const void *w, *bias;
	size_t rows;
	unsigned blk;
	int bias_wt;
};

__device__ __forceinline__ gemv_pick gemv_part(const gemv_parts &ps)
{
	const int j = ps.swiglu ? 0 : tern_part_of(ps.block0, ps.n, blockIdx.x);
	gemv_pick r;

	r.out = ps.out[j];
	r.w = ps.w[j];
	r.bias = ps.bias[j];
	r.rows = ps.rows[j];
	r.bias_wt = ps.bias_wt[j];
	r.blk = blockIdx.x - ps.block0[j];
	/* swiglu: the second half of the warps run the up rows */
	if (ps.swiglu && (threadIdx.x >> 5) >= GEMV_WARPS / 2)
		r.w = ps.w[1];
	return r;
}

/* One warp per R rows of the block's part; k % 8 == 0, x and every W
 * 16-byte aligned. */
template <int N, int WT>
__global__ static void __launch_bounds__(GEMV_WARPS * 32, gemv_cfg<N>::MINB)
gemv_vec_kernel(const __grid_constant__ gemv_parts ps, const float *x, size_t k)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	constexpr int R = gemv_cfg<N>::R, U = gemv_cfg<N>::U;
	const gemv_pick pk = gemv_part(ps);
	float *const out = pk.out;
	const void *const w = pk.w, *const bias = pk.bias;
	const size_t rows = pk.rows;
	const int bias_wt = pk.bias_wt;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	constexpr int HW = GEMV_WARPS / 2;
	/* swiglu: warps w and w + HW run the same rows of gate and up */
	const size_t r0 = ps.swiglu ? ((size_t)pk.blk * HW + warp % HW) * R
				    : ((size_t)pk.blk * GEMV_WARPS + warp) * R;
	const uint4 *wr[R];
	float acc[R][N];

	/* (swiglu: every warp reaches the barrier below; rows past the end
	 * re-read the last row and are not written) */
	if (r0 >= rows && !ps.swiglu)
		return;
#pragma unroll
	for (int r = 0; r < R; r++) {
		const size_t rr = r0 + r < rows ? r0 + r : rows - 1;

		wr[r] = reinterpret_cast<const uint4 *>((const uint16_t *)w + rr * k) + lane;
#pragma unroll
		for (int i = 0; i < N; i++)
			acc[r][i] = 0.0f;
	}
	gemv_stream<N, R, U, WT>(acc, wr, x, k, lane);
	if (ps.swiglu) {
		__shared__ float up[HW][R][N];

#pragma unroll
		for (int r = 0; r < R; r++)
#pragma unroll
			for (int i = 0; i < N; i++) {
				acc[r][i] = tern_warp_sum(acc[r][i]);
				if (warp >= HW && lane == 0)
					up[warp - HW][r][i] = acc[r][i];
			}
		__syncthreads();
		if (warp >= HW)
			return;
#pragma unroll
		for (int r = 0; r < R; r++) {
			const size_t rr = r0 + r;

			if (rr >= rows)
				continue;
			/* silu(g) * u as swiglu_kernel computes it */
#pragma unroll
			for (int i = 0; i < N; i++)
				if (lane == ((r * N + i) & 31)) {
					const float g = acc[r][i];

					out[i * rows + rr] = g / (1.0f + expf(-g)) *
							     up[warp][r][i];
				}
		}
		return;
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
__global__ static void gemv_scalar_kernel(const __grid_constant__ gemv_parts ps,
					  const float *x,
					  int wt, size_t n, size_t k)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const gemv_pick pk = gemv_part(ps);
	float *const out = pk.out;
	const void *const w = pk.w, *const bias = pk.bias;
	const size_t rows = pk.rows;
	const int bias_wt = pk.bias_wt;
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)pk.blk * GEMV_SCALAR_WARPS + (threadIdx.x >> 5);

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

/* Blocks of the launch: part j gets ceil(rows_j / rows_per_block) blocks
 * from block0_j on; returns the total (0 when it overflows unsigned). */
static size_t gemv_layout(gemv_parts *ps, const struct gpu_cuda_gemv_part *parts,
			  int n_parts, size_t rows_per_block)
{
	size_t total = 0;

	memset(ps, 0, sizeof *ps);
	ps->n = n_parts;
	for (int j = 0; j < n_parts; j++) {
		ps->out[j] = parts[j].out;
		ps->w[j] = parts[j].w;
		ps->bias[j] = parts[j].bias;
		ps->bias_wt[j] = parts[j].bias_wt;
		ps->rows[j] = parts[j].rows;
		ps->block0[j] = (unsigned)total;
		total += (parts[j].rows + rows_per_block - 1) / rows_per_block;
		if (total > UINT_MAX)
			return 0;
	}
	return total;
}

template <int N, int WT>
static int launch_n(cudaStream_t s, const float *x,
		    const struct gpu_cuda_gemv_part *parts, int n_parts, size_t k)
{
	gemv_parts ps;
	const size_t nb = gemv_layout(&ps, parts, n_parts,
				      (size_t)GEMV_WARPS * gemv_cfg<N>::R);

	if (nb == 0)
		return (int)cudaErrorInvalidValue;
	(void)tern_launch(gemv_vec_kernel<N, WT>, (unsigned)nb, GEMV_WARPS * 32,
			0, s, ps, x, k);
	return 0;
}

template <int WT>
static int launch_vec(cudaStream_t s, const float *x,
		      const struct gpu_cuda_gemv_part *parts, int n_parts,
		      size_t n, size_t k)
{
	switch (n) {
#define CASE(N)                                                              \
	case N:                                                              \
		return launch_n<N, WT>(s, x, parts, n_parts, k);
	CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#if GPU_CUDA_GEMV_MAX_N > 8
	CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#endif
#undef CASE
	default:
		return (int)cudaErrorInvalidValue;
	}
}

extern "C" int gpu_cuda_launch_gemv_multi(void *stream, const float *x, int wt,
					  size_t n, size_t k,
					  const struct gpu_cuda_gemv_part *parts,
					  int n_parts)
{
	cudaStream_t s = (cudaStream_t)stream;
	uintptr_t al = (uintptr_t)x;
	int rc;

	if (n == 0 || n > GPU_CUDA_GEMV_MAX_N || n > 16 || wt == CUDA_WT_F32 ||
	    n_parts < 1 || n_parts > GPU_CUDA_GEMV_MAX_PARTS)
		return (int)cudaErrorInvalidValue;
	for (int j = 0; j < n_parts; j++) {
		if (parts[j].rows == 0)
			return (int)cudaErrorInvalidValue;
		al |= (uintptr_t)parts[j].w;
	}
	if (k % 8 == 0 && al % 16 == 0) {
		if (wt == CUDA_WT_BF16)
			rc = launch_vec<CUDA_WT_BF16>(s, x, parts, n_parts, n, k);
		else
			rc = launch_vec<CUDA_WT_F16>(s, x, parts, n_parts, n, k);
	} else {
		gemv_parts ps;
		const size_t nb = gemv_layout(&ps, parts, n_parts, GEMV_SCALAR_WARPS);

		rc = nb ? 0 : (int)cudaErrorInvalidValue;
		if (nb)
			(void)tern_launch(gemv_scalar_kernel, (unsigned)nb,
					GEMV_SCALAR_WARPS * 32, 0, s, ps, x, wt,
					n, k);
	}
	if (rc)
		return rc;
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_gemv_swiglu(void *stream, float *out,
					   const float *x, int wt, size_t n,
					   size_t k, const void *w_gate,
					   const void *w_up, size_t rows)
{
	/* one row only: on an H200 the fused launch was 1% faster at batch 1
	 * (4.61 / 4.60 against 4.70 / 4.62 ms per llama3-8b step) and 5%
	 * slower at batch 8 (8.23 against 7.83 ms) */
	constexpr size_t rpb = (size_t)(GEMV_WARPS / 2) * gemv_cfg<1>::R;
	cudaStream_t s = (cudaStream_t)stream;
	gemv_parts ps;
	const size_t nb = (rows + rpb - 1) / rpb;

	if (n != 1 || wt == CUDA_WT_F32 || rows == 0 || k % 8 ||
	    ((uintptr_t)x | (uintptr_t)w_gate | (uintptr_t)w_up) % 16)
		return 1; /* not this kernel's case */
	if (nb > UINT_MAX)
		return (int)cudaErrorInvalidValue;
	memset(&ps, 0, sizeof ps);
	ps.n = 2;
	ps.swiglu = 1;
	ps.out[0] = out;
	ps.w[0] = w_gate;
	ps.w[1] = w_up;
	ps.rows[0] = ps.rows[1] = rows;
	if (wt == CUDA_WT_BF16)
		(void)tern_launch(gemv_vec_kernel<1, CUDA_WT_BF16>, (unsigned)nb,
				GEMV_WARPS * 32, 0, s, ps, x, k);
	else
		(void)tern_launch(gemv_vec_kernel<1, CUDA_WT_F16>, (unsigned)nb,
				GEMV_WARPS * 32, 0, s, ps, x, k);
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_gemv(void *stream, float *out, const float *x,
				    const void *w, int wt, const void *bias,
				    int bias_wt, size_t n, size_t k, size_t rows)
{
	struct gpu_cuda_gemv_part pt;

	if (rows == 0)
		return 0;
	pt.out = out;
	pt.w = w;
	pt.bias = bias;
	pt.bias_wt = bias_wt;
	pt.rows = rows;
	return gpu_cuda_launch_gemv_multi(stream, x, wt, n, k, &pt, 1);
}

/* ---- MoE experts dispatched on the device (decode) ----------------------
 *
 * gpu_cuda_launch_moe_plan, _moe_gemv and _moe_combine (kernels.h) run a
 * MoE layer's experts for few rows without reading the routing on the
 * host, so the layer can be recorded in a CUDA graph.  The plan (one
 * block) sorts the A = n * top_k assignments by expert, rows ascending
 * within an expert — the host path's grouping (gpu/cpu/moe.c) — into
 * "slots"; the experts that got at least one slot become groups.  The
 * expert GEMVs then run one grid row (blockIdx.y) per group over the
 * slots of that group (so each chosen expert's weights are read once, as
 * on the host path) with the same streaming loop as gemv_vec_kernel, in
 * chunks of up to 8 slots; the weights' addresses travel in the launch's
 * parameter (__grid_constant__, read in place by index).  The combine
 * sums each row's slots in slot (= expert) order starting from zero with
 * one fmaf per term, as the host path's scatter-add does. */

/* Whether assignment a repeats an expert id of an earlier slot of its
 * row (an invalid routing: it gets no slot, as an id out of range). */
__device__ __forceinline__ bool moe_repeat(const int32_t *ids, int a, int top_k)
{
	for (int b = a - a % top_k; b < a; b++)
		if (ids[b] == ids[a])
			return true;
	return false;
}

__global__ static void moe_plan_kernel(const int32_t *ids, const float *wts,
				       int A, int top_k, int n_expert,
				       int32_t *lists, int *err)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ int cnt[GPU_CUDA_MOE_MAX_EXPERTS];
	__shared__ int off[GPU_CUDA_MOE_MAX_EXPERTS];
	__shared__ int slot_of[GPU_CUDA_MOE_MAX_ASSIGN];
	__shared__ int total;
	int32_t *srow = lists + GPU_CUDA_MOE_SROW(A), *rslot = lists + GPU_CUDA_MOE_RSLOT(A);
	float *swt = reinterpret_cast<float *>(lists + GPU_CUDA_MOE_SWT(A));
	int32_t *sexp = lists + GPU_CUDA_MOE_SEXP(A);
	const int e = threadIdx.x;

	if (e < A)
		slot_of[e] = -1;
	if (e < n_expert) {
		int c = 0;

		for (int a = 0; a < A; a++)
			c += ids[a] == e && !moe_repeat(ids, a, top_k);
		cnt[e] = c;
	}
	__syncthreads();
	if (e == 0) {
		int s = 0, g = 0;

		for (int x = 0; x < n_expert; x++) {
			off[x] = s;
			if (cnt[x]) {
				lists[GPU_CUDA_MOE_GEXP(A) + g] = x;
				lists[GPU_CUDA_MOE_GSTART(A) + g] = s;
				g++;
			}
			s += cnt[x];
		}
		lists[GPU_CUDA_MOE_GSTART(A) + g] = s;
		lists[GPU_CUDA_MOE_NGROUP(A)] = g;
		total = s;
		for (int a = 0; a < A; a++) {
			const int bad = ids[a] < 0 || ids[a] >= n_expert ? 1
					: moe_repeat(ids, a, top_k) ? 2 : 0;

			if (bad && err && !err[0]) {
				err[1] = a / top_k;
				err[2] = ids[a];
				err[3] = n_expert;
				__threadfence_system();
				err[0] = bad;
			}
		}
	}
	__syncthreads();
	if (e < n_expert && cnt[e]) {
		int s = off[e];

		for (int a = 0; a < A; a++)
			if (ids[a] == e && !moe_repeat(ids, a, top_k)) {
				srow[s] = a / top_k;
				swt[s] = wts[a];
				sexp[s] = e;
				slot_of[a] = s++;
			}
	}
	/* unused tail slots (ids out of range): gathered from row 0, never
	 * summed */
	if (e >= total && e < A) {
		srow[e] = 0;
		swt[e] = 0.0f;
		sexp[e] = -1;
	}
	__syncthreads();
	if (e < A / top_k) {
		int v[8];

		/* the row's slots ascending (top_k <= 8), invalid ones last */
		for (int j = 0; j < top_k; j++) {
			int s = slot_of[e * top_k + j], q = j;

			s = s < 0 ? INT_MAX : s;
			while (q > 0 && v[q - 1] > s) {
				v[q] = v[q - 1];
				q--;
			}
			v[q] = s;
		}
		for (int j = 0; j < top_k; j++)
			rslot[e * top_k + j] = v[j] == INT_MAX ? -1 : v[j];
	}
}

/* The expert weights of one launch, indexed by expert (read in place). */
struct moe_gemv_p {
	const void *wa[GPU_CUDA_MOE_MAX_EXPERTS]; /* gate (or down) */
	const void *wb[GPU_CUDA_MOE_MAX_EXPERTS]; /* up (gate/up launch) */
	const float *x;    /* [A, k] slot rows */
	float *out;        /* [A, rows] */
	const int32_t *lists;
	int A;
	size_t k, rows;
};

/* N slots (x rows xs, outputs os) of weight row r: one warp; with GU the
 * gate and up rows together and out = silu(gate) * up. */
template <int N, int WT, bool GU>
__device__ __forceinline__ void moe_rows(const void *wa, const void *wb,
					 const float *xs, float *os, size_t k,
					 size_t rows, size_t r, int lane)
{
	constexpr int R = GU ? 2 : 1, U = N <= 2 ? 8 : 4;
	const uint4 *wr[R];
	float acc[R][N];

	wr[0] = reinterpret_cast<const uint4 *>((const uint16_t *)wa + r * k) + lane;
	if (GU)
		wr[R - 1] = reinterpret_cast<const uint4 *>((const uint16_t *)wb + r * k) + lane;
#pragma unroll
	for (int q = 0; q < R; q++)
#pragma unroll
		for (int i = 0; i < N; i++)
			acc[q][i] = 0.0f;
	gemv_stream<N, R, U, WT>(acc, wr, xs, k, lane);
#pragma unroll
	for (int i = 0; i < N; i++) {
		float g = tern_warp_sum(acc[0][i]);

		if (GU) {
			const float up = tern_warp_sum(acc[R - 1][i]);

			/* silu(g) * u as swiglu_kernel computes it */
			g = g / (1.0f + expf(-g)) * up;
		}
		if (lane == (i & 31))
			os[(size_t)i * rows + r] = g;
	}
}

/* grid (ceil(rows / GEMV_WARPS), groups): warp w of block x runs weight
 * row x * GEMV_WARPS + w of its group's expert for every slot of the
 * group; k % 8 == 0, weights, x and out 16-byte aligned. */
template <int WT, bool GU>
__global__ static void __launch_bounds__(GEMV_WARPS * 32)
moe_gemv_kernel(const __grid_constant__ moe_gemv_p p)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int A = p.A, g = blockIdx.y;
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);

	if (g >= p.lists[GPU_CUDA_MOE_NGROUP(A)] || r >= p.rows)
		return;
	const int e = p.lists[GPU_CUDA_MOE_GEXP(A) + g];
	const int s0 = p.lists[GPU_CUDA_MOE_GSTART(A) + g];
	const int m = p.lists[GPU_CUDA_MOE_GSTART(A) + g + 1] - s0;
	const void *wa = p.wa[e], *wb = GU ? p.wb[e] : nullptr;

	for (int c0 = 0; c0 < m; c0 += 8) {
		const float *xs = p.x + (size_t)(s0 + c0) * p.k;
		float *os = p.out + (size_t)(s0 + c0) * p.rows;

		switch (m - c0 < 8 ? m - c0 : 8) {
#define CASE(N)                                                              \
	case N:                                                              \
		moe_rows<N, WT, GU>(wa, wb, xs, os, p.k, p.rows, r, lane);   \
		break;
		CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
		}
	}
}

/* out[i, c] = sum over row i's slots s (ascending) of swt[s] * y[s, c] */
__global__ static void moe_combine_kernel(float *out, const float *y,
					  const int32_t *lists, int A,
					  int top_k, size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int i = blockIdx.x;
	const size_t c = (size_t)blockIdx.y * blockDim.x + threadIdx.x;
	const int32_t *rs = lists + GPU_CUDA_MOE_RSLOT(A) + (size_t)i * top_k;
	const float *swt = reinterpret_cast<const float *>(lists + GPU_CUDA_MOE_SWT(A));
	float acc = 0.0f;

	if (c >= dim)
		return;
	for (int j = 0; j < top_k; j++) {
		const int s = rs[j];

		if (s < 0)
			break;
		acc = fmaf(swt[s], y[(size_t)s * dim + c], acc);
	}
	out[(size_t)i * dim + c] = acc;
}

extern "C" size_t gpu_cuda_moe_list_elems(size_t A)
{
	return 6 * A + 2;
}

extern "C" int gpu_cuda_launch_moe_plan(void *stream, const int32_t *ids,
					const float *wts, size_t n, size_t top_k,
					size_t n_expert, int32_t *lists, int *err)
{
	const size_t A = n * top_k;

	if (A == 0 || A > GPU_CUDA_MOE_MAX_ASSIGN || top_k > 8 ||
	    n_expert == 0 || n_expert > GPU_CUDA_MOE_MAX_EXPERTS)
		return (int)cudaErrorInvalidValue;
	(void)tern_launch(moe_plan_kernel, 1, GPU_CUDA_MOE_MAX_EXPERTS > GPU_CUDA_MOE_MAX_ASSIGN
					? GPU_CUDA_MOE_MAX_EXPERTS : GPU_CUDA_MOE_MAX_ASSIGN,
			0, (cudaStream_t)stream, ids, wts, (int)A, (int)top_k,
			(int)n_expert, lists, err);
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_moe_gemv(void *stream, int wt, int gate_up,
					const void *const *wa, const void *const *wb,
					size_t n_expert, const float *x, float *out,
					const int32_t *lists, size_t A, size_t k,
					size_t rows)
{
	moe_gemv_p p;
	const size_t groups = A < n_expert ? A : n_expert;
	const size_t nb = (rows + GEMV_WARPS - 1) / GEMV_WARPS;

	if (A == 0 || A > GPU_CUDA_MOE_MAX_ASSIGN || n_expert == 0 ||
	    n_expert > GPU_CUDA_MOE_MAX_EXPERTS || k % 8 || rows == 0 ||
	    nb > INT_MAX || (wt != CUDA_WT_BF16 && wt != CUDA_WT_F16))
		return (int)cudaErrorInvalidValue;
	memset(&p, 0, sizeof p);
	for (size_t e = 0; e < n_expert; e++) {
		p.wa[e] = wa[e];
		p.wb[e] = gate_up ? wb[e] : NULL;
	}
	p.x = x;
	p.out = out;
	p.lists = lists;
	p.A = (int)A;
	p.k = k;
	p.rows = rows;
	dim3 grid((unsigned)nb, (unsigned)groups);
	if (wt == CUDA_WT_BF16)
		(void)(gate_up ? tern_launch(moe_gemv_kernel<CUDA_WT_BF16, true>, grid,
					     GEMV_WARPS * 32, 0, (cudaStream_t)stream, p)
			       : tern_launch(moe_gemv_kernel<CUDA_WT_BF16, false>, grid,
					     GEMV_WARPS * 32, 0, (cudaStream_t)stream, p));
	else
		(void)(gate_up ? tern_launch(moe_gemv_kernel<CUDA_WT_F16, true>, grid,
					     GEMV_WARPS * 32, 0, (cudaStream_t)stream, p)
			       : tern_launch(moe_gemv_kernel<CUDA_WT_F16, false>, grid,
					     GEMV_WARPS * 32, 0, (cudaStream_t)stream, p));
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_moe_combine(void *stream, float *out,
					   const float *y, const int32_t *lists,
					   size_t n, size_t top_k, size_t dim)
{
	const size_t A = n * top_k;

	if (A == 0 || A > GPU_CUDA_MOE_MAX_ASSIGN || dim == 0)
		return (int)cudaErrorInvalidValue;
	(void)tern_launch(moe_combine_kernel, dim3((unsigned)n, tern_div_up(dim, 256)),
			256, 0, (cudaStream_t)stream, out, y, lists, (int)A,
			(int)top_k, dim);
	return (int)cudaGetLastError();
}
