/* gpu/cuda/exl3_dq.cu — the kernels of the EXL3 prefill path
 * (docs/exl3-format.md §1.7, §1.8, §2, §3.3): decode a chunk of columns of
 * the trellis to an f16 W_hat for cuBLAS, and apply the output rotation to
 * the chunk's product.  The pipeline, shapes and chunk sizes are in
 * gpu/cuda/cuda_exl3.h ("prefill" block); the host side is
 * gpu/cuda/cuda_exl3.c.
 *
 * dequant: columns [c0, c0 + nc) of W_hat (k x n, tiles of 16 x 16 stored
 * [tk][tn], 32K bytes each) are written transposed, as wt f16 [nc, k]
 * (wt[c][r] = W_hat[r][c0 + c]: k contiguous, the "A = W, OP_T" operand of
 * cublasGemmEx, as the bf16 matmul of cuda_backend.c passes its weights).
 * One warp per tile, lane l decodes the tile's elements 8l .. 8l+7 (the
 * order of the GEMV of exl3.cu): element e = 8l + j has the 16-bit window
 * of stream bits [(e+1)K - 16, (e+1)K) mod 256K (the tile's 8K words read
 * as little-endian u32, MSB-first) and sits at tile row
 * r = 2(l & 3) + (j & 1) + 8((j >> 1) & 1), column c = (l >> 2) + 8(j >> 2)
 * (§1.7; gpu/cpu/exl3.c perm_build).  Elements 2p, 2p+1 are rows r, r+1 of
 * one column, so each pair goes out as one half2 store.  Codebooks as in
 * exl3.cu's xl_cb2 (half2, one RNE rounding): bit-identical to the CPU
 * backend's W_hat.
 *
 * output: out[r, c0 + c] = (H128_blk(part[r, :]) * svh + bias)[c0 + c] for
 * c0 + c < n_out, part f32 [nr, nc] (row stride nc); 128-blocks are
 * independent, so a chunk of whole blocks is finished on its own.
 *
 * Step 1 (xh = f16(H128_blk(x * suh)), R rows) is exl3.cu's input kernel.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "gpu/cuda/cuda_exl3.h"
#include "gpu/cuda/exl3_dev.cuh"
#include "gpu/cuda/pdl.cuh"

namespace {

/* tiles (warps) per dequant block */
constexpr int XDQ_TPB = 8;

/* ---- dequant ------------------------------------------------------------- */

/* grid ((k/16) * (nc/16) / XDQ_TPB), XDQ_TPB warps: warp t of the chunk is
 * tile (tk, c0/16 + tc), t = tk * (nc/16) + tc (a warp row of the grid
 * reads consecutive tiles of the trellis).  wt f16 [nc, k]. */
template <int CB>
__global__ void __launch_bounds__(XDQ_TPB * 32)
xdq_kernel(__half *wt, const uint8_t *trellis, int bits, size_t k, size_t n,
	   size_t c0, size_t nc)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31;
	const size_t t = (size_t)blockIdx.x * XDQ_TPB + (threadIdx.x >> 5);
	const size_t ntc = nc / 16, ntn = n / 16;
	const size_t tk = t / ntc, tc = t % ntc;
	const int nbit = 256 * bits, nword = 8 * bits;
	uint32_t s[8];

	if (tk >= k / 16)
		return;
	/* the tile's stream: 8K little-endian u32 words, MSB-first */
	const uint32_t *w = reinterpret_cast<const uint32_t *>(
		trellis + (tk * ntn + c0 / 16 + tc) * (32 * (size_t)bits));

#pragma unroll
	for (int j = 0; j < 8; j++) {
		/* window of element e = 8 lane + j: stream bits [b, b + 16),
		 * b = ((e+1)K - 16) mod 256K; stream bit b is bit
		 * 63 - (b & 31) of m = word[b / 32] : word[b / 32 + 1]
		 * (cyclic), so the window is m >> (48 - (b & 31)). */
		int b = (8 * lane + j + 1) * bits - 16;

		if (b < 0)
			b += nbit;
		const int i0 = b >> 5, off = b & 31;
		const int i1 = i0 + 1 == nword ? 0 : i0 + 1;
		const uint64_t m = ((uint64_t)__ldg(w + i0) << 32) | __ldg(w + i1);

		s[j] = (uint32_t)(m >> (48 - off)) & 0xFFFFu;
	}
	/* pair p = elements 2p, 2p+1: tile rows r0 + 8(p & 1) and the next
	 * one, tile column cl + 8(p >> 1); in wt column-of-W-major:
	 * wt[(16 tc + col) k + 16 tk + row], the pair's rows adjacent (the
	 * even row in the low half).  4-byte aligned: k and r0 are even. */
	const int r0 = 2 * (lane & 3), cl = lane >> 2;
	__half *dst = wt + (tc * 16 + (size_t)cl) * k + tk * 16 + (size_t)r0;

#pragma unroll
	for (int p = 0; p < 4; p++) {
		const uint32_t h = xl_cb2<CB>(s[2 * p], s[2 * p + 1]);

		*reinterpret_cast<uint32_t *>(dst + (size_t)(p >> 1) * 8 * k +
					      (size_t)(p & 1) * 8) = h;
	}
}

/* ---- output -------------------------------------------------------------- */

/* grid (div_up(nc/128, 4), nr), 128 threads: one warp per (row, 128-block)
 * of the chunk; part f32 [nr, nc], out f32 [nr, n_out]. */
__global__ void __launch_bounds__(128)
xdq_output_kernel(float *out, const float *part, const float *svh,
		  const float *bias, size_t nc, size_t c0, size_t n_out)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31;
	const size_t blk = (size_t)blockIdx.x * 4 + (threadIdx.x >> 5);
	const size_t r = blockIdx.y;

	if (blk * 128 >= nc)
		return;
	const size_t cl = blk * 128 + 4 * (size_t)lane;
	const float4 p = *reinterpret_cast<const float4 *>(part + r * nc + cl);
	float v[4] = { p.x, p.y, p.z, p.w };

	xl_fwht128(v);
#pragma unroll
	for (int q = 0; q < 4; q++) {
		const size_t c = c0 + cl + q;

		if (c < n_out)
			out[r * n_out + c] = v[q] * svh[c] + (bias ? bias[c] : 0.0f);
	}
}

} /* namespace */

/* ---- launch wrappers ------------------------------------------------------ */

extern "C" int gpu_cuda_launch_exl3_dq(void *stream, void *wt,
				       const void *trellis, int bits, int cb,
				       size_t k, size_t n, size_t c0, size_t nc)
{
	const cudaStream_t st = (cudaStream_t)stream;
	size_t tiles, blocks;

	if (bits < 1 || bits > 8 || k == 0 || k % 128 || n % 128 || nc == 0 ||
	    nc % 128 || c0 % 128 || c0 > n || nc > n - c0)
		return (int)cudaErrorInvalidValue;
	tiles = (k / 16) * (nc / 16); /* a multiple of XDQ_TPB (nc % 128 == 0) */
	blocks = tiles / XDQ_TPB;
	if (blocks > (size_t)INT_MAX)
		return (int)cudaErrorInvalidValue;
	switch (cb) {
	case 0:
		(void)tern_launch(xdq_kernel<0>, (unsigned)blocks, XDQ_TPB * 32,
				0, st, (__half *)wt, (const uint8_t *)trellis,
				bits, k, n, c0, nc);
		break;
	case 1:
		(void)tern_launch(xdq_kernel<1>, (unsigned)blocks, XDQ_TPB * 32,
				0, st, (__half *)wt, (const uint8_t *)trellis,
				bits, k, n, c0, nc);
		break;
	case 2:
		(void)tern_launch(xdq_kernel<2>, (unsigned)blocks, XDQ_TPB * 32,
				0, st, (__half *)wt, (const uint8_t *)trellis,
				bits, k, n, c0, nc);
		break;
	default:
		return (int)cudaErrorInvalidValue;
	}
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_exl3_dq_output(void *stream, float *out,
					      const float *part, const float *svh,
					      const float *bias, size_t nr,
					      size_t nc, size_t c0, size_t n_out)
{
	dim3 grid((unsigned)((nc / 128 + 3) / 4), (unsigned)nr);

	if (nr == 0 || nr > 65535 || nc == 0 || nc % 128)
		return (int)cudaErrorInvalidValue;
	(void)tern_launch(xdq_output_kernel, grid, 128, 0, (cudaStream_t)stream,
			out, part, svh, bias, nc, c0, n_out);
	return (int)cudaGetLastError();
}
