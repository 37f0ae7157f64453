/* gpu/cuda/exl3.cu — EXL3 linear kernels (docs/exl3-format.md §1.7, §1.8,
 * §2, §3.3): input rotation, fused trellis-decode GEMV on tensor cores,
 * output rotation.  Shapes and the pipeline are in gpu/cuda/cuda_exl3.h.
 *
 * gemv: a block of XL_NW warps owns XL_TNW = 4 tile columns (64 output
 * columns) and one k-slice; each warp takes a contiguous run of 16-row
 * k-steps of the slice.  Per k-step the 4 tiles of the warp are one
 * contiguous run of 4 * 32K bytes of the trellis (tiles are stored
 * [tk][tn]), copied with 16-byte cp.async into a warp-private ring of
 * XL_S stages together with the step's 16 x 16 slice of xh (rows < nr);
 * warps never wait for each other inside the loop.  Decode: lane l owns
 * tile elements 8l .. 8l+7, which are exactly its two m16n8k16 B
 * fragments (tensor-core element order, §1.7); their 16-bit trellis
 * windows lie in three consecutive words of the tile's cyclic stream, at
 * offsets that depend only on l and K (computed once).  Codebooks work on
 * two elements at once in half2: 3INST / MCG with one __hadd2 (the same
 * RNE rounding as __hadd), MUL1 with __dp4a + one __hfma2 — bit-identical
 * to the CPU backend's W_hat (MUL1 up to 8 rows in kernel 1 skips the
 * __hfma2: XL_AFFINE below).  The decoded registers, read as the A
 * fragment of W^T (16 columns x 16 k), go into m16n8k16 with x^T (k x 8
 * rows, f16) as B: one mma per tile for up to 8 rows (NB = 1), two for 9
 * to 16 (NB = 2); f32 accumulators; the decode is shared by the rows.
 * K = 4 (every lane at bit offset 20) takes its 8 windows straight from
 * two words.  Ring slots and global sources advance by fixed strides.
 * At the end the warps' accumulators are summed through shared memory
 * (fixed order) into the slice's partial sums: no atomics, results are
 * deterministic.  Slices: a cost model of few long warp runs against
 * SMs left with a block more than others (gpu_cuda_exl3_splits; a
 * multi-part launch is sized as a whole).
 *
 * FUSE (kernel 2, not the default): after writing its partial sums the
 * block bumps a u32 counter of its 128-column group; the last of the
 * group's (128 / XL_COLS) * n_kb blocks sums the slices in the fixed order of
 * xl_output_kernel and applies step 3, then resets the counter.  Measured
 * slower than the separate output kernel on an H200 (docs/PERFORMANCE.md).
 *
 * MUL1 up to 8 rows (XL_AFFINE; kernel 1 — the fused kernel 2 always
 * takes the 16-row shape, NB = 2, and keeps the FMA): the decode stops at
 * h = 1024 + byte sum (exact in f16) and the MMA multiplies x with h; a
 * second MMA per step, ones times x^T, sums each row of x, and the warp's
 * accumulators become K_INV * acc + K_BIAS * sum(x) before the reduction.
 * That drops the half FMA of every weight pair (4 instructions of ~47 a
 * tile) and uses the codebook's exact values where W_hat has them rounded
 * to f16.
 *
 * Rounding vs the CPU oracle (f32 throughout): xh is rounded to f16
 * (relative 2^-11 per element), so the output's relative L2 error is about
 * 3e-4; with XL_AFFINE the CPU's f16 rounding of each weight adds about
 * 2e-4 (rel L2 of x . W_exact against x . W_hat: 1.9e-4 for random MUL1
 * states and Gaussian x at k = 4096, 2.1e-4 over all states), still within
 * the tests' 1e-3.
 */
#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#include "gpu/cuda/cuda_common.cuh"
#include "gpu/cuda/cuda_exl3.h"
#include "gpu/cuda/exl3_dev.cuh"
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/rope_dev.cuh"
#include "gpu/cuda/kvq_dev.cuh"
#include "gpu/cuda/switches.h"

#ifndef XL_NW
#define XL_NW 8   /* warps per gemv block */
#endif
#ifndef XL_TNW
#define XL_TNW 4  /* 16x16 tiles per warp per k-step (64 columns) */
#endif
#define XL_COLS (16 * XL_TNW) /* 64 or 128 */
#ifndef XL_OCC
/* gemv blocks per SM (__launch_bounds__: 48 KB of shared memory, <= 64
 * registers); the slice model does not assume it */
#define XL_OCC 4
#endif
#define XL_A_BYTES 512 /* 16 rows x 16 halves */
#ifndef XL_AFFINE
/* MUL1 up to 8 rows as K_INV * (x . H) + K_BIAS * sum(x), H = 1024 + byte
 * sum (xl_gemv_block); 0: each weight's half FMA */
#define XL_AFFINE 1
#endif

static inline unsigned div_up(size_t a, size_t b)
{
	return (unsigned)((a + b - 1) / b);
}

/* ---- 1. input ------------------------------------------------------------ */

/* The parts of one input launch (gpu_exl3_matmul_multi: one x, each part
 * its suh and its f16 output area). */
struct xl_in_parts {
	__half *xh[GPU_CUDA_EXL3_MULTI_MAX];
	const float *suh[GPU_CUDA_EXL3_MULTI_MAX];
};

/* grid (div_up(k/128, 4), nr, parts), 128 threads: one warp per (row,
 * 128-block) of part blockIdx.z */
__global__ static void __launch_bounds__(128)
xl_input_kernel(const xl_in_parts ps, const float *x, size_t k_in, size_t k)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31;
	const size_t blk = (size_t)blockIdx.x * 4 + (threadIdx.x >> 5);
	const size_t r = blockIdx.y;
	__half *xh = ps.xh[0];
	const float *suh = ps.suh[0];
	size_t c0;
	float v[4];

	/* constant indices only (a dynamic one copies the struct to local
	 * memory) */
#pragma unroll
	for (int j = 1; j < GPU_CUDA_EXL3_MULTI_MAX; j++)
		if (blockIdx.z == (unsigned)j) {
			xh = ps.xh[j];
			suh = ps.suh[j];
		}
	if (blk * 128 >= k)
		return;
	c0 = blk * 128 + 4 * (size_t)lane;
#pragma unroll
	for (int q = 0; q < 4; q++) {
		size_t c = c0 + q;

		v[q] = c < k_in ? x[r * k_in + c] * suh[c] : 0.0f;
	}
	xl_fwht128(v);
	xl_store_h4(xh + r * k + c0, v);
}

/* ---- 3. output ----------------------------------------------------------- */

/* The parts of one output launch: part j owns blocks [block0_j,
 * block0_{j+1}) along x. */
struct xl_out_parts {
	float *out[GPU_CUDA_EXL3_MULTI_MAX];
	const float *part[GPU_CUDA_EXL3_MULTI_MAX];
	const float *svh[GPU_CUDA_EXL3_MULTI_MAX];
	const float *bias[GPU_CUDA_EXL3_MULTI_MAX];
	size_t n[GPU_CUDA_EXL3_MULTI_MAX], n_out[GPU_CUDA_EXL3_MULTI_MAX];
	int n_kb[GPU_CUDA_EXL3_MULTI_MAX];
	unsigned block0[GPU_CUDA_EXL3_MULTI_MAX];
	int np;
	int swiglu; /* 2 parts of one shape: out[0] = silu(y_0) * y_1 */
	/* with swiglu, or NULL: that result rotated for the next linear
	 * (xl_input_kernel's arithmetic, k_in = n_out, row stride n) */
	__half *rot_xh;
	const float *rot_suh;
	/* np = 3 (q, k, v): RoPE and the KV store (xl_out_rope) */
	int rope;
	struct gpu_cuda_kv kv;
	const int32_t *pos;
	const float *inv_freq;
	float af;
};

/* The output step's last part for a q/k/v launch with RoPE: y (lane's
 * elements c0 .. c0 + 3 of part j's row r, c0 = blk 128 + 4 lane; a
 * 128-block is one head) rotated for q and k — lane l < 16 holds the
 * first halves x[f], f = 4l + q, lane l + 16 their partners x[f + 64],
 * one shuffle apart; each lane computes its own side of rope_pair, so
 * the bits are rope_kv_kernel's — written to out, and k and v stored at
 * the row's cache slot (kv head blk). */
__device__ __forceinline__ void xl_out_rope(const xl_out_parts &ps, int j,
					    size_t r, size_t blk, float y[4],
					    float *out, size_t n_out, size_t c0)
{
	const unsigned lane = threadIdx.x & 31;

	if (j < 2) {
		const int32_t p = ps.pos[r];
		const bool lo = lane < 16;

#pragma unroll
		for (int q = 0; q < 4; q++) {
			const float pv = __shfl_xor_sync(0xffffffffu, y[q], 16);
			const float fr = ps.inv_freq[(4 * lane + q) & 63];
			float ra, rb;

			rope_pair(lo ? y[q] : pv, lo ? pv : y[q], p, fr, ps.af, &ra, &rb);
			y[q] = lo ? ra : rb;
		}
	}
	*reinterpret_cast<float4 *>(out + r * n_out + c0) =
		make_float4(y[0], y[1], y[2], y[3]);
	if (j > 0) {
		const long long slot = kv_slot_at(ps.kv, ps.kv.row_seq[r],
						  ps.kv.row_pos[r], blk);
		void *const pool = j == 1 ? ps.kv.k : ps.kv.v;

		if (slot < 0)
			return;
		if (ps.kv.f16 == 2) { /* quantized: groups of 8 lanes */
			kvq_put4((uint32_t *)pool, (__half *)(j == 1 ? ps.kv.ks : ps.kv.vs),
				 (size_t)slot / 32, j == 1 ? ps.kv.kb : ps.kv.vb, y);
		} else if (ps.kv.f16) {
			xl_store_h4((__half *)pool + slot + 4 * lane, y);
		} else {
			*reinterpret_cast<float4 *>((float *)pool + slot + 4 * lane) =
				make_float4(y[0], y[1], y[2], y[3]);
		}
	}
}

/* Step 3 of one (row r, 128-block) of a part: the split-K partial sums
 * (part[(s * stride + r) * n + c], slices s in order), H128; the 4 values
 * of this lane (svh and bias are the caller's). */
__device__ __forceinline__ void xl_out_block(float v[4], const float *part,
					     int n_kb, size_t stride, size_t r,
					     size_t n, size_t c0)
{
	v[0] = v[1] = v[2] = v[3] = 0.0f;
	for (int s = 0; s < n_kb; s++) {
		const float4 p = *reinterpret_cast<const float4 *>(
			part + ((size_t)s * stride + r) * n + c0);

		v[0] += p.x; v[1] += p.y; v[2] += p.z; v[3] += p.w;
	}
	xl_fwht128(v);
}

/* grid (sum of div_up(n_j/128, 4), nr), 128 threads: one warp per (row,
 * 128-block) of the block's part */
__global__ static void __launch_bounds__(128)
xl_output_kernel(const __grid_constant__ xl_out_parts ps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
#if TERN_ATT_EARLY
	/* with RoPE the decode attention comes next: it may launch now and
	 * look up its rows and pages while this runs (attn_decode_kernel) */
	if (ps.rope)
		tern_pdl_trigger();
#endif
	const int lane = threadIdx.x & 31;
	const size_t r = blockIdx.y;
	const int j = tern_part_of(ps.block0, ps.np, blockIdx.x);
	float *const out = ps.out[j];
	const float *const part = ps.part[j], *const svh = ps.svh[j];
	const float *const bias = ps.bias[j];
	const size_t n = ps.n[j], n_out = ps.n_out[j];
	const int n_kb = ps.n_kb[j];
	const size_t blk = (size_t)(blockIdx.x - ps.block0[j]) * 4 +
			   (threadIdx.x >> 5);
	size_t c0;
	float v[4];

	if (blk * 128 >= n)
		return;
	c0 = blk * 128 + 4 * (size_t)lane;
	xl_out_block(v, part, n_kb, GPU_CUDA_EXL3_ROWS, r, n, c0);
	if (ps.swiglu) {
		/* the up part at the same columns; silu(g) * u as swiglu_kernel
		 * computes it */
		float u[4];

		xl_out_block(u, ps.part[1], ps.n_kb[1], GPU_CUDA_EXL3_ROWS, r, n, c0);
#pragma unroll
		for (int q = 0; q < 4; q++) {
			const size_t c = c0 + q;

			if (c < n_out) {
				const float g = __fmaf_rn(v[q], svh[c], bias ? bias[c] : 0.0f);
				const float up = __fmaf_rn(u[q], ps.svh[1][c],
							   ps.bias[1] ? ps.bias[1][c] : 0.0f);

				v[q] = g / (1.0f + expf(-g)) * up;
				out[r * n_out + c] = v[q];
			}
		}
		if (ps.rot_xh) { /* warp-uniform */
#pragma unroll
			for (int q = 0; q < 4; q++)
				v[q] = c0 + q < n_out ? v[q] * ps.rot_suh[c0 + q] : 0.0f;
			xl_fwht128(v);
			xl_store_h4(ps.rot_xh + r * n + c0, v);
		}
		return;
	}
	if (ps.rope) { /* grid-uniform; every column < n_out (checked) */
#pragma unroll
		for (int q = 0; q < 4; q++)
			v[q] = __fmaf_rn(v[q], svh[c0 + q], bias ? bias[c0 + q] : 0.0f);
		xl_out_rope(ps, j, r, blk, v, out, n_out, c0);
		return;
	}
#pragma unroll
	for (int q = 0; q < 4; q++) {
		size_t c = c0 + q;

		if (c < n_out)
			out[r * n_out + c] = __fmaf_rn(v[q], svh[c], bias ? bias[c] : 0.0f);
	}
}

/* ---- 3'. output + residual + RMSNorm + the next input (one launch) ------ */

struct xl_tail_p {
	const float *part, *svh, *bias; /* the linear's step 3 */
	int n_kb;
	unsigned n;                     /* its padded outputs */
	float *o, *x, *xn;              /* [nr, dim] */
	const void *norm_w;
	int norm_wt;
	float eps;
	unsigned dim;
	int np;                         /* next parts (0..MULTI_MAX) */
	unsigned k2;                    /* their k (>= dim) */
	__half *xh[GPU_CUDA_EXL3_MULTI_MAX];
	const float *suh[GPU_CUDA_EXL3_MULTI_MAX];
};

/* grid (XL_TAIL_CL, nr) in clusters of XL_TAIL_CL blocks along x (one
 * cluster per row), XL_TAIL_THREADS threads, dynamic shared memory dim
 * floats.  Block b of a row owns the 128-blocks j = b (mod XL_TAIL_CL),
 * a warp per task.  The constants of each warp's first task (svh, bias,
 * the norm's and the next part's suh) are loaded before the wait for the
 * previous kernel: no kernel writes them.  Phase 1: step 3 as
 * xl_output_kernel (o), x += o (kept in shared memory) and the block's
 * sum of squares; the blocks' sums, added in rank order through
 * distributed shared memory, give the row's 1 / rms (add_rmsnorm's
 * formula, its sum in another order); phase 2, a warp per (128-block, next part): xn = w * (x *
 * inv) and xl_input_kernel's rotation of xn (zero past dim, up to the
 * next k). */
#ifndef XL_TAIL_THREADS
#define XL_TAIL_THREADS 512
#endif
#ifndef XL_TAIL_CL
#define XL_TAIL_CL 8 /* at most 8: the portable cluster size */
#endif
__global__ static void __launch_bounds__(XL_TAIL_THREADS)
xl_tail_kernel(const __grid_constant__ xl_tail_p ps)
{
	TERN_PDL_LATE_WAIT(); /* constants first: see gpu/cuda/pdl.cuh */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
	__trap(); /* no clusters: never launched (gpu_cuda_exl3_tail_ok) */
#elif defined(__CUDA_ARCH__)
	namespace cgr = cooperative_groups;
	extern __shared__ float xl_xs[];
	__shared__ float red[32];
	__shared__ float blk_ss;
	cgr::cluster_group cl = cgr::this_cluster();
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int nw = XL_TAIL_THREADS / 32;
	const unsigned cb = blockIdx.x;
	const size_t r = blockIdx.y, dim = ps.dim;
	/* 128-blocks of this block: phase 1 below dim, phase 2 below k2 */
	const unsigned nb1 = (unsigned)(dim + 127) / 128;
	const unsigned nb2 = ps.np ? ps.k2 / 128 : nb1;
	const unsigned my1 = nb1 > cb ? (nb1 - cb + XL_TAIL_CL - 1) / XL_TAIL_CL : 0;
	const unsigned my2 = nb2 > cb ? (nb2 - cb + XL_TAIL_CL - 1) / XL_TAIL_CL : 0;
	const unsigned np1 = ps.np ? (unsigned)ps.np : 1;
	/* first tasks: phase 1 block cb + XL_TAIL_CL w; phase 2 (my block w %
	 * my2, part w / my2) */
	const unsigned c1 = (cb + XL_TAIL_CL * (unsigned)w) * 128 + 4 * lane;
	const unsigned jw = my2 ? (unsigned)w % my2 : 0, pw = my2 ? (unsigned)w / my2 : 0;
	const unsigned c2 = (cb + XL_TAIL_CL * jw) * 128 + 4 * lane;
	float sv[4], bi[4], nwt[4], su[4];
	float ss = 0.0f, inv;

#pragma unroll
	for (int q = 0; q < 4; q++) {
		const bool in1 = (unsigned)w < my1 && c1 + q < dim;
		const bool in2 = pw < np1 && c2 + q < dim;

		sv[q] = in1 ? ps.svh[c1 + q] : 0.0f;
		bi[q] = in1 && ps.bias ? ps.bias[c1 + q] : 0.0f;
		nwt[q] = in2 ? tern_ldw(ps.norm_w, ps.norm_wt, c2 + q) : 0.0f;
		su[q] = in2 && ps.np ? ps.suh[pw][c2 + q] : 0.0f;
	}
	tern_pdl_wait(); /* the constants above do not depend on it */
	for (unsigned t = w; t < my1; t += nw) {
		const unsigned c0 = (cb + XL_TAIL_CL * t) * 128 + 4 * lane;
		const bool first = t == (unsigned)w;
		float v[4];

		xl_out_block(v, ps.part, ps.n_kb, GPU_CUDA_EXL3_ROWS, r, ps.n, c0);
#pragma unroll
		for (int q = 0; q < 4; q++) {
			const unsigned c = c0 + q;

			if (c < dim) {
				const float s = first ? sv[q] : ps.svh[c];
				const float bb = first ? bi[q]
						       : ps.bias ? ps.bias[c] : 0.0f;
				const float ov = v[q] * s + bb;
				const float xv = ps.x[r * dim + c] + ov;

				ps.o[r * dim + c] = ov;
				ps.x[r * dim + c] = xv;
				xl_xs[c] = xv;
				ss += xv * xv;
			}
		}
	}
	ss = tern_block_sum(ss, red); /* its barriers publish xl_xs */
	if (threadIdx.x == 0)
		blk_ss = ss;
	cl.sync();
	ss = 0.0f;
	for (unsigned b = 0; b < XL_TAIL_CL; b++)
		ss += *cl.map_shared_rank(&blk_ss, b);
	inv = 1.0f / sqrtf(ss / (float)dim + ps.eps);
	for (unsigned t = w; t < my2 * np1; t += nw) {
		const unsigned jj = t % my2, j = t / my2;
		const unsigned c0 = (cb + XL_TAIL_CL * jj) * 128 + 4 * lane;
		const bool first = t == (unsigned)w;
		float xn[4];

#pragma unroll
		for (int q = 0; q < 4; q++) {
			const unsigned c = c0 + q;

			xn[q] = 0.0f;
			if (c < dim) {
				xn[q] = (first ? nwt[q]
					       : tern_ldw(ps.norm_w, ps.norm_wt, c)) *
					(xl_xs[c] * inv);
				if (j == 0)
					ps.xn[r * dim + c] = xn[q];
			}
		}
		if (ps.np) {
			const float *const suh = ps.suh[j];
			float v[4];

#pragma unroll
			for (int q = 0; q < 4; q++)
				v[q] = c0 + q < dim
					       ? xn[q] * (first ? su[q] : suh[c0 + q])
					       : 0.0f;
			xl_fwht128(v);
			xl_store_h4(ps.xh[j] + r * ps.k2 + c0, v);
		}
	}
	cl.sync(); /* no block leaves while another may read its blk_ss */
#endif
}

/* Whether the device and xl_tail_kernel's loaded code have clusters
 * (compute capability 9.0, code built for sm_90 or later); cached. */
extern "C" int gpu_cuda_exl3_tail_ok(void)
{
	static int ok = -1;

	if (ok < 0) {
		cudaFuncAttributes fa;
		int dev = 0, major = 0, v = 0;

		if (cudaGetDevice(&dev) == cudaSuccess &&
		    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
					   dev) == cudaSuccess &&
		    major >= 9 &&
		    cudaFuncGetAttributes(&fa, (const void *)xl_tail_kernel) ==
			    cudaSuccess &&
		    fa.binaryVersion >= 90) {
			/* and a cluster of the largest launch fits (an MPS or
			 * partition limit could forbid it) */
			cudaLaunchConfig_t cfg;
			cudaLaunchAttribute at;
			int nc = 0;

			memset(&cfg, 0, sizeof cfg);
			memset(&at, 0, sizeof at);
			cfg.gridDim = dim3(XL_TAIL_CL, 1);
			cfg.blockDim = dim3(XL_TAIL_THREADS);
			cfg.dynamicSmemBytes = GPU_CUDA_EXL3_TAIL_MAX_DIM * sizeof(float);
			at.id = cudaLaunchAttributeClusterDimension;
			at.val.clusterDim.x = XL_TAIL_CL;
			at.val.clusterDim.y = 1;
			at.val.clusterDim.z = 1;
			cfg.attrs = &at;
			cfg.numAttrs = 1;
			v = cudaOccupancyMaxActiveClusters(&nc, xl_tail_kernel, &cfg) ==
				    cudaSuccess &&
			    nc > 0;
		}
		(void)cudaGetLastError();
		ok = v;
	}
	return ok;
}

extern "C" int gpu_cuda_launch_exl3_tail(void *stream,
					 const struct gpu_cuda_exl3_tail *t)
{
	xl_tail_p ps;
	cudaLaunchConfig_t cfg;
	cudaLaunchAttribute at[2];

	if (!gpu_cuda_exl3_tail_ok())
		return (int)cudaErrorNotSupported;
	if (t->np < 0 || t->np > GPU_CUDA_EXL3_MULTI_MAX || t->dim == 0 ||
	    t->dim > t->n || t->n % 128 || t->dim > GPU_CUDA_EXL3_TAIL_MAX_DIM ||
	    (t->np && (t->k2 < t->dim || t->k2 % 128)) || t->nr == 0 ||
	    t->nr > GPU_CUDA_EXL3_ROWS)
		return (int)cudaErrorInvalidValue;
	memset(&ps, 0, sizeof ps);
	ps.part = t->part;
	ps.svh = t->svh;
	ps.bias = t->bias;
	ps.n_kb = t->n_kb;
	ps.n = (unsigned)t->n;
	ps.o = t->o;
	ps.x = t->x;
	ps.xn = t->xn;
	ps.norm_w = t->norm_w;
	ps.norm_wt = t->norm_wt;
	ps.eps = t->eps;
	ps.dim = (unsigned)t->dim;
	ps.np = t->np;
	ps.k2 = (unsigned)t->k2;
	for (int j = 0; j < t->np; j++) {
		ps.xh[j] = (__half *)t->xh[j];
		ps.suh[j] = t->suh[j];
	}
	memset(&cfg, 0, sizeof cfg);
	memset(at, 0, sizeof at);
	cfg.gridDim = dim3(XL_TAIL_CL, (unsigned)t->nr);
	cfg.blockDim = dim3(XL_TAIL_THREADS);
	cfg.dynamicSmemBytes = t->dim * sizeof(float);
	cfg.stream = (cudaStream_t)stream;
	at[0].id = cudaLaunchAttributeClusterDimension;
	at[0].val.clusterDim.x = XL_TAIL_CL;
	at[0].val.clusterDim.y = 1;
	at[0].val.clusterDim.z = 1;
	at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[1].val.programmaticStreamSerializationAllowed = 1;
	cfg.attrs = at;
	cfg.numAttrs = tern_pdl_ok(xl_tail_kernel) ? 2 : 1;
	return (int)cudaLaunchKernelEx(&cfg, xl_tail_kernel, ps);
}

/* ---- 2. gemv ------------------------------------------------------------- */

template <int K, int NB> struct xl_cfg {
	static constexpr int B_BYTES = XL_TNW * 32 * K;   /* trellis per step */
	static constexpr int STAGE = XL_A_BYTES + B_BYTES;
	static constexpr int S0 = 6144 / STAGE;
	static constexpr int S = S0 < 2 ? 2 : S0 > 8 ? 8 : S0; /* ring depth */
	static constexpr int PIPE = XL_NW * S * STAGE;
	static constexpr int RED = XL_NW * 8 * NB * XL_COLS * 4; /* 8 NB rows */
	static constexpr int SMEM = PIPE > RED ? PIPE : RED;
};

__device__ __forceinline__ void xl_cp16(void *smem, const void *gmem)
{
	unsigned s = (unsigned)__cvta_generic_to_shared(smem);

	asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s),
		     "l"(gmem));
}

__device__ __forceinline__ void xl_commit(void)
{
	asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> __device__ __forceinline__ void xl_wait(void)
{
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void xl_mma(float c[4], const uint32_t a[4],
				       uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
		     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
		       "r"(b1));
}

/* The 16-bit window at constant bit P (0 .. 56) of the 96-bit big-endian
 * run v0:v1:v2 (the lane's words already shifted left by its offset; the
 * windows of a lane's 8 elements end before bit 72). */
template <int P>
__device__ __forceinline__ uint32_t xl_win(uint32_t v0, uint32_t v1,
					   uint32_t v2)
{
	if constexpr (P + 16 <= 32)
		return (v0 >> (16 - P)) & 0xFFFFu;
	else if constexpr (P < 32)
		return __funnelshift_l(v1, v0, P) >> 16;
	else if constexpr (P + 16 <= 64)
		return (v1 >> (48 - P)) & 0xFFFFu;
	else
		return __funnelshift_l(v2, v1, P - 32) >> 16;
}

/* The 8 windows of a lane's elements (tile words w0 = W[i0], w1 = W[i1],
 * w2 = W[i2], bit offset off; see xl_gemv_block), zero-extended.  K = 4
 * has off = 20 in every lane: window e is bits 28 - 4e .. 43 - 4e of the
 * 64-bit w0:w1, taken with 10 operations (w0's bits past 11 are never
 * used, so with them cleared the two windows crossing into w0 need no
 * mask, and the 64-bit run shifted right by 4 gives the odd nibble
 * offsets by whole bytes); K = 2 and K = 8 have shortcuts of their own
 * (below); other K shift each window out of the lane's run. */
template <int K>
__device__ __forceinline__ void xl_windows(uint32_t s[8], uint32_t w0,
					   uint32_t w1, uint32_t w2, int off)
{
	if constexpr (K == 4) {
		const uint32_t z = w0 & 0xFFFu;
		const uint32_t a = __funnelshift_r(w1, z, 4);

		s[0] = __funnelshift_r(w1, z, 28);
		s[1] = __byte_perm(w1, z, 0x6643);
		s[2] = a >> 16;
		s[3] = w1 >> 16;
		s[4] = __byte_perm(a, 0u, 0x4421);
		s[5] = __byte_perm(w1, 0u, 0x4421);
		s[6] = a & 0xFFFFu;
		s[7] = w1 & 0xFFFFu;
	} else if constexpr (K == 2) {
		/* every window lies in the 32 bits v at the lane's offset
		 * (off + 14 + 16 <= 48): window e is v >> (16 - 2e), masked;
		 * the shifts 16 and 8 are whole bytes, and v shifted by 2, 4
		 * and 6 gives each of the other six shifts as a byte select
		 * or a mask (12 operations instead of 17) */
		const uint32_t v = __funnelshift_l(w1, w0, off);
		const uint32_t c = v >> 2, a = v >> 4, d = v >> 6;

		s[0] = v >> 16;
		s[1] = __byte_perm(d, 0u, 0x4421);
		s[2] = __byte_perm(a, 0u, 0x4421);
		s[3] = __byte_perm(c, 0u, 0x4421);
		s[4] = __byte_perm(v, 0u, 0x4421);
		s[5] = d & 0xFFFFu;
		s[6] = a & 0xFFFFu;
		s[7] = c & 0xFFFFu;
	} else if constexpr (K == 8) {
		/* off = 24 in every lane: window e is bits 24 + 8e .. 39 + 8e
		 * of w0:w1:w2, two whole bytes (w0's low byte cleared of the
		 * rest serves the first as its zero source; 10 operations) */
		const uint32_t z = w0 & 0xFFu;

		(void)off;
		s[0] = __byte_perm(w1, z, 0x5543);
		s[1] = w1 >> 16;
		s[2] = __byte_perm(w1, 0u, 0x4421);
		s[3] = w1 & 0xFFFFu;
		s[4] = __funnelshift_l(w2, w1, 8) & 0xFFFFu;
		s[5] = w2 >> 16;
		s[6] = __byte_perm(w2, 0u, 0x4421);
		s[7] = w2 & 0xFFFFu;
	} else {
		/* shift the lane's bits to the top: only bits < off + 7K + 16
		 * <= 96 are used, so w2 << off needs nothing of the next word
		 * (and for K < 4, where w2 stands in for w1, nothing past bit
		 * 64) */
		const uint32_t v0 = __funnelshift_l(w1, w0, off);
		const uint32_t v1 = __funnelshift_l(w2, w1, off);
		const uint32_t v2 = w2 << off;

		s[0] = xl_win<0 * K>(v0, v1, v2);
		s[1] = xl_win<1 * K>(v0, v1, v2);
		s[2] = xl_win<2 * K>(v0, v1, v2);
		s[3] = xl_win<3 * K>(v0, v1, v2);
		s[4] = xl_win<4 * K>(v0, v1, v2);
		s[5] = xl_win<5 * K>(v0, v1, v2);
		s[6] = xl_win<6 * K>(v0, v1, v2);
		s[7] = xl_win<7 * K>(v0, v1, v2);
	}
}

/* grid (n/XL_COLS, n_kb), XL_NW warps; dynamic shared memory
 * xl_cfg<K, NB>::SMEM. */
struct xl_fuse {
	float *out;
	const float *svh, *bias;
	unsigned *cnt;
	size_t n_out;
};

/* The weights of one GEMV launch (one K and codebook, sharing k): part
 * j owns the column groups [block0_j, block0_{j+1}) along x and n_kb_j of
 * the grid's rows along y (blocks above exit at once); its rotated input,
 * trellis and partial-sum area are its own. */
struct xl_gparts {
	float *part[GPU_CUDA_EXL3_MULTI_MAX];
	const __half *xh[GPU_CUDA_EXL3_MULTI_MAX];
	const uint8_t *tr[GPU_CUDA_EXL3_MULTI_MAX];
	size_t n[GPU_CUDA_EXL3_MULTI_MAX];
	unsigned n_kb[GPU_CUDA_EXL3_MULTI_MAX];
	unsigned per[GPU_CUDA_EXL3_MULTI_MAX]; /* k-steps per slice (host) */
	unsigned block0[GPU_CUDA_EXL3_MULTI_MAX];
	int np;
};

/* The work of one gemv block: column group bx (XL_TNW tiles) of a k x n
 * weight (trellis tr), k-slice blockIdx.y of nky (per k-steps each), nr
 * rows of xh (row stride k); the slice's partial sums go to part[(slice *
 * pstride + r) * n + column].  Uses all of the dynamic shared memory;
 * ends without a barrier after the reduction (a caller running it again
 * must __syncthreads() first). */
template <int K, int CB, bool FUSE, int NB>
__device__ __forceinline__ void
xl_gemv_block(float *const part, const unsigned pstride,
	      const __half *const xh, const uint8_t *const tr, const unsigned n,
	      const unsigned nky, const unsigned per, const unsigned bx,
	      const int nr, const unsigned k, const xl_fuse &fu)
{
	typedef xl_cfg<K, NB> C;
	extern __shared__ __align__(16) uint8_t xl_smem[];
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int g = lane >> 2, t = lane & 3;
	const unsigned ntn = n / 16, ktiles = k / 16;
	const unsigned tn0 = bx * XL_TNW;
	uint8_t *ring = xl_smem + w * (C::S * C::STAGE);
	float acc[XL_TNW][NB][4];

	/* this block's k-slice and this warp's run of it (32-bit: k / 16
	 * steps and tile indices fit; only byte offsets are 64-bit) */
	unsigned kw0, kw1;
	{
		const unsigned kb0 = min(blockIdx.y * per, ktiles);
		const unsigned kb1 = min(kb0 + per, ktiles);
		const unsigned pw = (kb1 - kb0 + XL_NW - 1) / XL_NW;

		kw0 = min(kb0 + w * pw, kb1);
		kw1 = min(kw0 + pw, kb1);
	}
	const int n_steps = (int)(kw1 - kw0);
	/* AF: xs[h] = ones . x^T over the run, one more MMA a step: c0, c1
	 * are the sums of x's rows 8h + 2t and 8h + 2t + 1 (the rows of
	 * acc[j][h][0, 2] and [1, 3]) in f32, exact sums of f16 values up
	 * to the tensor cores' f32 accumulation */
	constexpr bool AF = CB == 2 && XL_AFFINE && NB == 1; /* NB 2 spills */
	float xs[NB][4];
	const uint32_t ones[4] = { 0x3C003C00u, 0x3C003C00u, 0x3C003C00u,
				   0x3C003C00u };

#pragma unroll
	for (int j = 0; j < XL_TNW; j++)
#pragma unroll
		for (int h = 0; h < NB; h++)
#pragma unroll
			for (int q = 0; q < 4; q++)
				acc[j][h][q] = 0.0f;
#pragma unroll
	for (int h = 0; h < NB; h++)
#pragma unroll
		for (int q = 0; q < 4; q++)
			xs[h][q] = 0.0f;

	/* lane's stream words and bit offset (same in every tile):
	 * elements 8l .. 8l+7 have windows starting at (8l+1)K - 16 + jK */
	const int nbit = 256 * K, nword = 8 * K;
	const int b0 = ((8 * lane + 1) * K - 16 + nbit) % nbit;
	const int i0 = b0 >> 5, off = b0 & 31;
	const int i1 = (i0 + 1) % nword, i2 = (i0 + 2) % nword;

	/* the copies of the next step into the next ring slot; sources and
	 * slots advance by a fixed stride (no per-step 64-bit products) */
	const unsigned step_bytes = ntn * (32 * K);
	const uint8_t *g_tr = tr + (size_t)(kw0 * ntn + tn0) * (32 * K) +
			      lane * 16;
	const __half *g_x = xh + (lane >> 1) * k + kw0 * 16 + (lane & 1) * 8;
	uint8_t *w_st = ring + lane * 16;        /* slot being filled */
	const uint8_t *r_st = ring;              /* slot being read */
	uint8_t *const ring_end = ring + C::S * C::STAGE;
	auto issue = [&]() {
		if (lane < 2 * nr)
			xl_cp16(w_st, g_x);
#pragma unroll
		for (int c = 0; c * 32 + lane < C::B_BYTES / 16; c++)
			xl_cp16(w_st + XL_A_BYTES + c * 512, g_tr + c * 512);
		g_tr += step_bytes;
		g_x += 16;
		w_st += C::STAGE;
		if (w_st >= ring_end)
			w_st -= C::S * C::STAGE;
	};
	/* one k-step from the slot r_st: decode the warp's tiles into the A
	 * fragments of W^T and multiply with x^T */
	auto step = [&]() {
		const uint8_t *st = r_st;
		const uint32_t *A = reinterpret_cast<const uint32_t *>(st);
		uint32_t bx[NB][2];

		r_st += C::STAGE;
		if (r_st >= ring_end)
			r_st = ring;
		/* B' fragment of x^T (k x rows): rows 8h + g, k 2t.. / 2t+8.. */
#pragma unroll
		for (int h = 0; h < NB; h++) {
			bx[h][0] = A[(8 * h + g) * 8 + t];
			bx[h][1] = A[(8 * h + g) * 8 + t + 4];
			if constexpr (AF)
				xl_mma(xs[h], ones, bx[h][0], bx[h][1]);
		}
#pragma unroll
		for (int j = 0; j < XL_TNW; j++) {
			const uint32_t *W = reinterpret_cast<const uint32_t *>(
				st + XL_A_BYTES + j * 32 * K);
			const uint32_t w0 = W[i0], w1 = W[i1];
			const uint32_t w2 = K > 4 ? W[i2] : w1;
			uint32_t sw[8], wa[4];

			xl_windows<K>(sw, w0, w1, w2, off);
			/* (sw[0], sw[1]), (sw[2], sw[3]): the B fragment of
			 * columns 0..7 (k 2t.., 2t+8..), the next two pairs of
			 * columns 8..15; read as the A fragment of W^T (16
			 * columns x 16 k) they are a0, a2, a1, a3 */
			if constexpr (AF) {
				wa[0] = xl_mul1_h(sw[0], sw[1]);
				wa[2] = xl_mul1_h(sw[2], sw[3]);
				wa[1] = xl_mul1_h(sw[4], sw[5]);
				wa[3] = xl_mul1_h(sw[6], sw[7]);
			} else {
				wa[0] = xl_cb2<CB>(sw[0], sw[1]);
				wa[2] = xl_cb2<CB>(sw[2], sw[3]);
				wa[1] = xl_cb2<CB>(sw[4], sw[5]);
				wa[3] = xl_cb2<CB>(sw[6], sw[7]);
			}
#pragma unroll
			for (int h = 0; h < NB; h++)
				xl_mma(acc[j][h], wa, bx[h][0], bx[h][1]);
		}
	};

#pragma unroll
	for (int s = 0; s < C::S - 1; s++) {
		if (s < n_steps)
			issue();
		xl_commit();
	}
	/* steady state: every step refills the slot read S - 1 steps ago;
	 * the last S - 1 steps only drain the ring (no branch per step) */
	int i = 0;

	for (; i < n_steps - (C::S - 1); i++) {
		issue();
		xl_commit();
		xl_wait<C::S - 1>();
		__syncwarp();
		step();
		__syncwarp(); /* this slot is refilled next iteration */
	}
	for (; i < n_steps; i++) {
		xl_commit();
		xl_wait<C::S - 1>();
		__syncwarp();
		step();
	}
	xl_wait<0>();
	tern_pdl_trigger(); /* the main loop is done: see gpu/cuda/pdl.cuh */
	if constexpr (AF) {
		/* acc holds x . H over the run; x . W_mul1 = K_INV (x . H) +
		 * K_BIAS sum(x) */
#pragma unroll
		for (int j = 0; j < XL_TNW; j++)
#pragma unroll
			for (int h = 0; h < NB; h++)
#pragma unroll
				for (int q = 0; q < 4; q++)
					acc[j][h][q] = acc[j][h][q] * EXL3_MUL1_KINV_F +
						       xs[h][q & 1] * EXL3_MUL1_KBIAS_F;
	}
	__syncthreads(); /* the reduction area overlaps every warp's ring */

	/* red[w][row][col]: D' = W^T x^T is (16 columns x 8 rows) per tile
	 * and row group h: c0, c1 at (column g, rows 8h + 2t, +1), c2, c3 at
	 * (column g + 8, the same rows) */
	{
		float *red = reinterpret_cast<float *>(xl_smem);
		float *rw = red + (size_t)w * 8 * NB * XL_COLS;

#pragma unroll
		for (int j = 0; j < XL_TNW; j++)
#pragma unroll
			for (int h = 0; h < NB; h++) {
				const int c = j * 16 + g, r = 8 * h + 2 * t;

				rw[r * XL_COLS + c] = acc[j][h][0];
				rw[(r + 1) * XL_COLS + c] = acc[j][h][1];
				rw[r * XL_COLS + c + 8] = acc[j][h][2];
				rw[(r + 1) * XL_COLS + c + 8] = acc[j][h][3];
			}
		__syncthreads();
		for (int idx = threadIdx.x; idx < nr * XL_COLS; idx += XL_NW * 32) {
			const int r = idx / XL_COLS, c = idx % XL_COLS;
			float sum = 0.0f;

#pragma unroll
			for (int v = 0; v < XL_NW; v++)
				sum += red[(size_t)v * 8 * NB * XL_COLS + idx];
			part[((size_t)blockIdx.y * pstride + r) * n +
			     tn0 * 16 + c] = sum;
		}
	}
	if constexpr (FUSE) {
		/* the last of the (128 / XL_COLS) n_kb blocks of this
		 * 128-column group sums the slices in fixed order (s = 0 ..
		 * n_kb-1, as xl_output_kernel) and applies step 3 */
		__shared__ int xl_last;
		constexpr unsigned BPG = 128 / XL_COLS; /* blocks per group */
		const unsigned grp = bx / BPG;

		__threadfence();
		__syncthreads();
		if (threadIdx.x == 0)
			xl_last = atomicAdd(&fu.cnt[grp], 1u) ==
				  BPG * nky - 1u;
		__syncthreads();
		if (!xl_last)
			return;
		__threadfence();
		for (int r = w; r < nr; r += XL_NW) {
			const size_t c0 = (size_t)grp * 128 + 4 * (size_t)lane;
			float v[4] = { 0.0f, 0.0f, 0.0f, 0.0f };

			for (unsigned s = 0; s < nky; s++) {
				const float4 p = __ldcg(reinterpret_cast<const float4 *>(
					part + ((size_t)s * pstride + r) * n + c0));

				v[0] += p.x; v[1] += p.y; v[2] += p.z; v[3] += p.w;
			}
			xl_fwht128(v);
#pragma unroll
			for (int q = 0; q < 4; q++) {
				const size_t c = c0 + q;

				if (c < fu.n_out)
					fu.out[(size_t)r * fu.n_out + c] =
						v[q] * fu.svh[c] +
						(fu.bias ? fu.bias[c] : 0.0f);
			}
		}
		if (threadIdx.x == 0)
			fu.cnt[grp] = 0; /* ready for the next launch */
	}
}

template <int K, int CB, bool FUSE, int NB>
__global__ static void __launch_bounds__(XL_NW * 32, XL_OCC)
xl_gemv_kernel(const __grid_constant__ xl_gparts ps, int nr, unsigned k,
	       xl_fuse fu)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int pj = tern_part_of(ps.block0, ps.np, blockIdx.x);
	const unsigned nky = ps.n_kb[pj];

	if (blockIdx.y >= nky)
		return; /* block-uniform: a part with fewer k-slices */
	xl_gemv_block<K, CB, FUSE, NB>(ps.part[pj], GPU_CUDA_EXL3_ROWS, ps.xh[pj],
				       ps.tr[pj], (unsigned)ps.n[pj], nky,
				       ps.per[pj], blockIdx.x - ps.block0[pj], nr,
				       k, fu);
}

/* ---- MoE experts on the device ------------------------------------------
 *
 * gpu_cuda_launch_exl3_moe (cuda_exl3.h): the experts of one MoE layer,
 * every expert's gate (and up, and down) of one shape, bits and codebook,
 * routed by the plan of gpu_cuda_launch_moe_plan (kernels.h lists: slots
 * sorted by expert, groups).  A weight's device block keeps suh / svh /
 * bias at offsets that depend only on its shape and bits
 * (gpu_cuda_exl3_upload), so a launch carries one base pointer per
 * expert and the common offsets.  Steps, each the per-weight kernel's
 * arithmetic on the slots' rows:
 *   in:   xh_p[s] = f16(H128(x[row(s)] * suh_p[e(s)]))  (p = gate, up)
 *   gemv: per group (expert e, its slots s0 .. s0 + m - 1 as rows) the
 *         gemv block above, parts gate and up in one grid (or one each
 *         when their bits differ), then down
 *   mid:  h = silu(H128(sum part_gate) * svh + bias) * (... up ...),
 *         xh_down[s] = f16(H128(h * suh_down[e]))  (h = 0 past n_ff)
 *   out:  out[i] = sum over row i's slots (ascending) of
 *         fmaf(w(s), H128(sum part_down[s]) * svh + bias, acc), from 0.
 */

/* One kind of weight (gate, up or down) of every expert: block bases and
 * the offsets of suh, svh and bias (0: no bias) in each block. */
struct xl_moe_kind {
	const uint8_t *base[GPU_CUDA_MOE_MAX_EXPERTS];
	unsigned off_suh, off_svh, off_bias;
};

struct xl_moe_in_p {
	xl_moe_kind w[2]; /* gate, up */
	__half *xh[2];
	const float *x;
	const int32_t *lists;
	int A;
	unsigned dim, k;
};

/* grid (div_up(k/128, 4), A, 2), 128 threads: one warp per (slot,
 * 128-block, part); xl_input_kernel's arithmetic on row row(s) of x */
__global__ static void __launch_bounds__(128)
xl_moe_in_kernel(const __grid_constant__ xl_moe_in_p ps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31, p = blockIdx.z, s = blockIdx.y;
	const unsigned blk = blockIdx.x * 4 + (threadIdx.x >> 5);
	const int A = ps.A;

	if (blk * 128 >= ps.k)
		return;
	const int e = ps.lists[GPU_CUDA_MOE_SEXP(A) + s];
	if (e < 0)
		return; /* unused slot: no group reads it */
	const size_t row = (size_t)ps.lists[GPU_CUDA_MOE_SROW(A) + s];
	const float *const suh =
		reinterpret_cast<const float *>(ps.w[p].base[e] + ps.w[p].off_suh);
	const unsigned c0 = blk * 128 + 4 * lane;
	float v[4];

#pragma unroll
	for (int q = 0; q < 4; q++) {
		const unsigned c = c0 + q;

		v[q] = c < ps.dim ? ps.x[row * ps.dim + c] * suh[c] : 0.0f;
	}
	xl_fwht128(v);
	xl_store_h4(ps.xh[p] + (size_t)s * ps.k + c0, v);
}

/* The parts of one expert gemv launch (gate + up, or one of them, or
 * down): part j owns the column groups [block0_j, block0_{j+1}) along x;
 * blockIdx.z is the group.  Partial sums [n_kb, A, n_j] per part. */
struct xl_moe_gp {
	const uint8_t *tr[2][GPU_CUDA_MOE_MAX_EXPERTS];
	float *part[2];
	const __half *xh[2];
	unsigned n[2], block0[2];
	unsigned n_kb, per;
	int np, A;
	const int32_t *lists;
};

template <int K, int CB, int NB>
__global__ static void __launch_bounds__(XL_NW * 32, XL_OCC)
xl_moe_gemv_kernel(const __grid_constant__ xl_moe_gp ps, unsigned k)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int A = ps.A, grp = blockIdx.z;

	if (grp >= ps.lists[GPU_CUDA_MOE_NGROUP(A)])
		return;
	const int e = ps.lists[GPU_CUDA_MOE_GEXP(A) + grp];
	const int s0 = ps.lists[GPU_CUDA_MOE_GSTART(A) + grp];
	const int m = ps.lists[GPU_CUDA_MOE_GSTART(A) + grp + 1] - s0;
	const int pj = tern_part_of(ps.block0, ps.np, blockIdx.x);
	const unsigned n = ps.n[pj];
	const xl_fuse fu = { NULL, NULL, NULL, NULL, 0 };

	/* a group holds at most one slot per row (distinct top-k ids), so
	 * one pass for the batches this path takes; more in chunks */
	for (int r0 = 0; r0 < m; r0 += 8 * NB) {
		if (r0)
			__syncthreads(); /* the last pass's reduction area */
		xl_gemv_block<K, CB, false, NB>(
			ps.part[pj] + (size_t)(s0 + r0) * n, (unsigned)A,
			ps.xh[pj] + (size_t)(s0 + r0) * k, ps.tr[pj][e], n, ps.n_kb,
			ps.per, blockIdx.x - ps.block0[pj], min(m - r0, 8 * NB), k,
			fu);
	}
}

struct xl_moe_mid_p {
	xl_moe_kind w[3]; /* gate, up, down */
	const float *part[2];
	__half *xh;
	const int32_t *lists;
	int A, n_kb;
	unsigned nf, n_ff; /* padded (gate / up n = down k) and real */
};

/* grid (div_up(nf/128, 4), A), 128 threads: one warp per (slot,
 * 128-block): gate and up outputs (xl_output_kernel's arithmetic), the
 * SwiGLU (swiglu_kernel's), down's input rotation (xl_input_kernel's) */
__global__ static void __launch_bounds__(128)
xl_moe_mid_kernel(const __grid_constant__ xl_moe_mid_p ps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31, s = blockIdx.y, A = ps.A;
	const unsigned blk = blockIdx.x * 4 + (threadIdx.x >> 5);

	if (blk * 128 >= ps.nf)
		return;
	const int e = ps.lists[GPU_CUDA_MOE_SEXP(A) + s];
	if (e < 0)
		return;
	const unsigned c0 = blk * 128 + 4 * lane;
	const xl_moe_kind &wg = ps.w[0], &wu = ps.w[1], &wd = ps.w[2];
	const float *const svg = reinterpret_cast<const float *>(wg.base[e] + wg.off_svh);
	const float *const svu = reinterpret_cast<const float *>(wu.base[e] + wu.off_svh);
	const float *const bg = wg.off_bias ? reinterpret_cast<const float *>(
						      wg.base[e] + wg.off_bias) : NULL;
	const float *const bu = wu.off_bias ? reinterpret_cast<const float *>(
						      wu.base[e] + wu.off_bias) : NULL;
	const float *const suh = reinterpret_cast<const float *>(wd.base[e] + wd.off_suh);
	float v[4], u[4];

	xl_out_block(v, ps.part[0], ps.n_kb, A, s, ps.nf, c0);
	xl_out_block(u, ps.part[1], ps.n_kb, A, s, ps.nf, c0);
#pragma unroll
	for (int q = 0; q < 4; q++) {
		const unsigned c = c0 + q;
		float h = 0.0f;

		if (c < ps.n_ff) {
			const float g = v[q] * svg[c] + (bg ? bg[c] : 0.0f);
			const float up = u[q] * svu[c] + (bu ? bu[c] : 0.0f);

			h = __fmul_rn(g / (1.0f + expf(-g)) * up, suh[c]);
		}
		v[q] = h;
	}
	xl_fwht128(v);
	xl_store_h4(ps.xh + (size_t)s * ps.nf + c0, v);
}

/* launch parameters stay within the classic 4 KB (GPU_CUDA_MOE_MAX_EXPERTS
 * pointers per kind travel in them) */
static_assert(sizeof(xl_moe_in_p) <= 4096, "xl_moe_in_p too large");
static_assert(sizeof(xl_moe_gp) <= 4096, "xl_moe_gp too large");
static_assert(sizeof(xl_moe_mid_p) <= 4096, "xl_moe_mid_p too large");

struct xl_moe_out_p {
	xl_moe_kind w; /* down */
	const float *part;
	float *out;
	const int32_t *lists;
	int A, n_kb, top_k;
	unsigned nd, dim; /* padded (down n) and real */
};

/* grid (div_up(nd/128, 4), rows), 128 threads: one warp per (row,
 * 128-block): each of the row's slots' down output (xl_output_kernel's
 * arithmetic) weighted and summed as moe_combine_kernel does */
__global__ static void __launch_bounds__(128)
xl_moe_out_kernel(const __grid_constant__ xl_moe_out_p ps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31, i = blockIdx.y, A = ps.A;
	const unsigned blk = blockIdx.x * 4 + (threadIdx.x >> 5);
	const int32_t *const rs = ps.lists + GPU_CUDA_MOE_RSLOT(A) + (size_t)i * ps.top_k;
	const float *const swt =
		reinterpret_cast<const float *>(ps.lists + GPU_CUDA_MOE_SWT(A));

	if (blk * 128 >= ps.nd)
		return;
	const unsigned c0 = blk * 128 + 4 * lane;
	float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };

	for (int j = 0; j < ps.top_k; j++) {
		const int s = rs[j];

		if (s < 0)
			break;
		const int e = ps.lists[GPU_CUDA_MOE_SEXP(A) + s];
		const float *const svh =
			reinterpret_cast<const float *>(ps.w.base[e] + ps.w.off_svh);
		const float *const bias = ps.w.off_bias
			? reinterpret_cast<const float *>(ps.w.base[e] + ps.w.off_bias)
			: NULL;
		const float ws = swt[s];
		float v[4];

		xl_out_block(v, ps.part, ps.n_kb, A, s, ps.nd, c0);
#pragma unroll
		for (int q = 0; q < 4; q++) {
			const unsigned c = c0 + q;

			if (c < ps.dim) {
				const float y = v[q] * svh[c] + (bias ? bias[c] : 0.0f);

				acc[q] = fmaf(ws, y, acc[q]);
			}
		}
	}
#pragma unroll
	for (int q = 0; q < 4; q++)
		if (c0 + q < ps.dim)
			ps.out[(size_t)i * ps.dim + c0 + q] = acc[q];
}

template <int K, int CB, bool FUSE, int NB>
static cudaError_t xl_gemv_launch1(cudaStream_t st, const xl_gparts &ps, int nr,
				   size_t k, const xl_fuse &fu)
{
	typedef xl_cfg<K, NB> C;
	static int attr_done; /* benign race: the same value is set */
	const unsigned ktiles = (unsigned)(k / 16);
	unsigned gx = 0, gy = 0;
	xl_gparts q = ps;

	for (int j = 0; j < q.np; j++) {
		if (q.n_kb[j] < 1)
			return cudaErrorInvalidValue;
		q.per[j] = (ktiles + q.n_kb[j] - 1) / q.n_kb[j];
		gx += (unsigned)(q.n[j] / XL_COLS);
		gy = q.n_kb[j] > gy ? q.n_kb[j] : gy;
	}
	if (!attr_done) {
		cudaError_t e = cudaFuncSetAttribute(
			xl_gemv_kernel<K, CB, FUSE, NB>,
			cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM);

		if (e != cudaSuccess)
			return e;
		attr_done = 1;
	}
	(void)tern_launch(xl_gemv_kernel<K, CB, FUSE, NB>, dim3(gx, gy), XL_NW * 32,
			C::SMEM, st, q, nr, (unsigned)k, fu);
	return cudaGetLastError();
}

/* One row group (NB = 1: one mma per tile) for up to 8 rows, two above;
 * the fused kernel 2 always takes two. */
template <int K, int CB, bool FUSE>
static cudaError_t xl_gemv_launch(cudaStream_t st, const xl_gparts &ps, int nr,
				  size_t k, const xl_fuse &fu)
{
	if (!FUSE && nr <= 8)
		return xl_gemv_launch1<K, CB, false, 1>(st, ps, nr, k, fu);
	return xl_gemv_launch1<K, CB, FUSE, 2>(st, ps, nr, k, fu);
}

template <int K, int CB>
static int xl_occ(void)
{
	int nb = 0;

	if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
		    &nb, xl_gemv_kernel<K, CB, true, 2>, XL_NW * 32,
		    xl_cfg<K, 2>::SMEM) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return nb;
}

template <int K>
static cudaError_t xl_gemv_cb(cudaStream_t st, const xl_gparts &ps, int cb,
			      int nr, size_t k, const xl_fuse &fu, int *occ)
{
	if (occ) {
		*occ = cb == 0 ? xl_occ<K, 0>() : cb == 1 ? xl_occ<K, 1>()
							  : xl_occ<K, 2>();
		return cudaSuccess;
	}
	if (fu.out) {
		switch (cb) {
		case 0: return xl_gemv_launch<K, 0, true>(st, ps, nr, k, fu);
		case 1: return xl_gemv_launch<K, 1, true>(st, ps, nr, k, fu);
		default: return xl_gemv_launch<K, 2, true>(st, ps, nr, k, fu);
		}
	}
	switch (cb) {
	case 0: return xl_gemv_launch<K, 0, false>(st, ps, nr, k, fu);
	case 1: return xl_gemv_launch<K, 1, false>(st, ps, nr, k, fu);
	default: return xl_gemv_launch<K, 2, false>(st, ps, nr, k, fu);
	}
}

/* f(std::integral_constant<int, bits>()) for bits 1..8 (the K a kernel is
 * specialised on), cudaErrorInvalidValue otherwise. */
template <class F> static cudaError_t xl_by_bits(int bits, F &&f)
{
	switch (bits) {
	case 1: return f(std::integral_constant<int, 1>());
	case 2: return f(std::integral_constant<int, 2>());
	case 3: return f(std::integral_constant<int, 3>());
	case 4: return f(std::integral_constant<int, 4>());
	case 5: return f(std::integral_constant<int, 5>());
	case 6: return f(std::integral_constant<int, 6>());
	case 7: return f(std::integral_constant<int, 7>());
	case 8: return f(std::integral_constant<int, 8>());
	default: return cudaErrorInvalidValue;
	}
}

static cudaError_t xl_gemv_any(cudaStream_t st, const xl_gparts &ps, int bits,
			       int cb, int r, size_t k, const xl_fuse &fu,
			       int *occ)
{
	return xl_by_bits(bits, [&](auto K) {
		return xl_gemv_cb<decltype(K)::value>(st, ps, cb, r, k, fu, occ);
	});
}

/* A one-part xl_gparts. */
static xl_gparts xl_one(float *part, const void *xh, const void *tr, size_t n,
			int n_kb)
{
	xl_gparts ps;

	memset(&ps, 0, sizeof ps);
	ps.np = 1;
	ps.part[0] = part;
	ps.xh[0] = (const __half *)xh;
	ps.tr[0] = (const uint8_t *)tr;
	ps.n[0] = n;
	ps.n_kb[0] = (unsigned)n_kb;
	return ps;
}

/* ---- launch wrappers ------------------------------------------------------ */

/* Slices of kernel 1 for one launch of np weights side by side (ncg
 * column groups in all, k / 16 steps each).  Cost model, in k-steps of
 * one warp: an SM holding b of the launch's blocks is issue-bound and
 * takes b * (s + XL_RUN_COST), s the steps of a warp's run and
 * XL_RUN_COST what a run costs besides (prologue, filling the ring from
 * DRAM, the block's reduction); the busiest SM sets the time.  So long
 * runs beat short ones, and a slice count that leaves a few SMs with one
 * block more than the rest loses.  Measured on an H200 (llama3-8b at 4
 * bits, decode batch 1, whole step): o and down with 2 slices (one block
 * per SM) 3.64 ms, down with 3 (60 SMs with two) 3.81 ms, 4 3.64 ms;
 * gate + up (448 groups) with 1 slice 3.73 ms, 2 3.64 ms; every weight
 * with 3 slices 4.00 ms.  Ties go to fewer slices.  TERN_EXL3_KB1=n
 * forces n (timing experiments). */
#define XL_RUN_COST 3
static int xl_splits_model(size_t k, size_t ncg, int n_sm)
{
	const size_t ktiles = k / 16;
	const size_t sm = (size_t)(n_sm > 0 ? n_sm : 1);
	const long env = tern_switch_long("TERN_EXL3_KB1");
	size_t kb, best = 1, kb_max = ktiles / XL_NW;
	double best_t = 1e300;

	if (kb_max > GPU_CUDA_EXL3_MAX_KB)
		kb_max = GPU_CUDA_EXL3_MAX_KB;
	if (kb_max < 1)
		kb_max = 1;
	if (env > 0)
		return (size_t)env < kb_max ? (int)env : (int)kb_max;
	for (kb = 1; kb <= kb_max; kb++) {
		const size_t per = (ktiles + kb - 1) / kb;
		const size_t s = (per + XL_NW - 1) / XL_NW;
		const size_t b = (ncg * kb + sm - 1) / sm;
		const double t = (double)b * (double)(s + XL_RUN_COST);

		if (t < best_t) {
			best_t = t;
			best = kb;
		}
	}
	return (int)best;
}

extern "C" int gpu_cuda_exl3_splits(size_t k, size_t n, int n_sm)
{
	return xl_splits_model(k, n / XL_COLS, n_sm);
}

extern "C" int gpu_cuda_exl3_splits_multi(size_t k, const size_t *n, int np,
					  int n_sm)
{
	size_t ncg = 0;

	for (int j = 0; j < np; j++)
		ncg += n[j] / XL_COLS;
	return xl_splits_model(k, ncg, n_sm);
}

extern "C" int gpu_cuda_launch_exl3_input(void *stream, void *xh,
					  const float *x, const float *suh,
					  size_t nr, size_t k_in, size_t k)
{
	return gpu_cuda_launch_exl3_input_multi(stream, &xh, x, &suh, 1, nr, k_in,
						k);
}

extern "C" int gpu_cuda_launch_exl3_input_multi(void *stream, void *const *xh,
						const float *x,
						const float *const *suh, int np,
						size_t nr, size_t k_in, size_t k)
{
	dim3 grid(div_up(k / 128, 4), (unsigned)nr, (unsigned)np);
	xl_in_parts ps;

	if (np < 1 || np > GPU_CUDA_EXL3_MULTI_MAX)
		return (int)cudaErrorInvalidValue;
	memset(&ps, 0, sizeof ps);
	for (int j = 0; j < np; j++) {
		ps.xh[j] = (__half *)xh[j];
		ps.suh[j] = suh[j];
	}
	(void)tern_launch(xl_input_kernel, grid, 128, 0, (cudaStream_t)stream,
			ps, x, k_in, k);
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_exl3_gemv(void *stream, float *part,
					 const void *xh, const void *trellis,
					 int bits, int cb, size_t nr, size_t k,
					 size_t n, int n_kb)
{
	const xl_fuse fu = { NULL, NULL, NULL, NULL, 0 };

	return (int)xl_gemv_any((cudaStream_t)stream,
				xl_one(part, xh, trellis, n, n_kb), bits, cb,
				(int)nr, k, fu, NULL);
}

extern "C" int gpu_cuda_launch_exl3_gemv_multi(void *stream,
					       const struct gpu_cuda_exl3_gemv *p,
					       int np, int bits, int cb,
					       size_t nr, size_t k)
{
	const xl_fuse fu = { NULL, NULL, NULL, NULL, 0 };
	xl_gparts ps;
	unsigned b0 = 0;

	if (np < 1 || np > GPU_CUDA_EXL3_MULTI_MAX)
		return (int)cudaErrorInvalidValue;
	memset(&ps, 0, sizeof ps);
	ps.np = np;
	for (int j = 0; j < np; j++) {
		ps.part[j] = p[j].part;
		ps.xh[j] = (const __half *)p[j].xh;
		ps.tr[j] = (const uint8_t *)p[j].trellis;
		ps.n[j] = p[j].n;
		ps.n_kb[j] = (unsigned)p[j].n_kb;
		ps.block0[j] = b0;
		b0 += (unsigned)(p[j].n / XL_COLS);
	}
	return (int)xl_gemv_any((cudaStream_t)stream, ps, bits, cb, (int)nr, k, fu,
				NULL);
}

extern "C" int gpu_cuda_launch_exl3_gemv_out(void *stream, float *out,
					     float *part, unsigned *cnt,
					     const void *xh, const void *trellis,
					     int bits, int cb, size_t nr,
					     size_t k, size_t n, int n_kb,
					     const float *svh, const float *bias,
					     size_t n_out)
{
	const xl_fuse fu = { out, svh, bias, cnt, n_out };

	return (int)xl_gemv_any((cudaStream_t)stream,
				xl_one(part, xh, trellis, n, n_kb), bits, cb,
				(int)nr, k, fu, NULL);
}

/* Slices for the fused kernel: a per-SM cost model (block-steps when the
 * SM is issue-bound, a latency floor per step when few warps share it, a
 * fixed cost per wave); ties go to fewer slices. */
extern "C" int gpu_cuda_exl3_splits2(size_t k, size_t n, int bits, int cb,
				     int n_sm)
{
	const size_t ncg = n / XL_COLS, ktiles = k / 16;
	const xl_fuse fu = { NULL, NULL, NULL, NULL, 0 };
	int occ = 0, best = 1, kb;
	double best_t = 1e300;

	(void)xl_gemv_any(NULL, xl_one(NULL, NULL, NULL, n, 1), bits, cb, 0, k,
			  fu, &occ);
	if (occ < 1)
		occ = 1;
	if (n_sm < 1)
		n_sm = 1;
	for (kb = 1; kb <= GPU_CUDA_EXL3_MAX_KB; kb++) {
		const size_t per = (ktiles + kb - 1) / kb;
		const double steps = (double)((per + XL_NW - 1) / XL_NW);
		const size_t blocks = ncg * (size_t)kb;
		const double b = (double)((blocks + n_sm - 1) / (size_t)n_sm);
		const double waves = (double)((blocks + (size_t)n_sm * occ - 1) /
					      ((size_t)n_sm * occ));
		double t = b * steps;

		if (kb > 1 && per < (size_t)XL_NW)
			break;
		if (t < waves * steps * 3.0)
			t = waves * steps * 3.0;
		t += waves * 8.0;
		if (t < best_t) {
			best_t = t;
			best = kb;
		}
	}
	return best;
}

extern "C" int gpu_cuda_launch_exl3_output(void *stream, float *out,
					   const float *part, int n_kb,
					   const float *svh, const float *bias,
					   size_t nr, size_t n, size_t n_out)
{
	struct gpu_cuda_exl3_out o;

	o.out = out;
	o.part = part;
	o.n_kb = n_kb;
	o.svh = svh;
	o.bias = bias;
	o.n = n;
	o.n_out = n_out;
	return gpu_cuda_launch_exl3_output_multi(stream, &o, 1, nr, 0, NULL, NULL,
						 NULL);
}

extern "C" int gpu_cuda_launch_exl3_output_multi(void *stream,
						 const struct gpu_cuda_exl3_out *o,
						 int np, size_t nr, int swiglu,
						 void *rot_xh, const float *rot_suh,
						 const struct gpu_cuda_exl3_rope *rope)
{
	xl_out_parts ps;
	size_t total = 0;

	if (np < 1 || np > GPU_CUDA_EXL3_MULTI_MAX ||
	    (swiglu && (np != 2 || o[0].n != o[1].n || o[0].n_out != o[1].n_out)) ||
	    (rot_xh && (!swiglu || !rot_suh || o[0].n % 128)))
		return (int)cudaErrorInvalidValue;
	if (rope) {
		const size_t hk = rope->kv.n_head_kv;

		if (swiglu || np != 3 || rope->kv.head_dim != 128 ||
		    rope->kv.n_rows != nr || hk == 0 || o[1].n != hk * 128 ||
		    o[2].n != hk * 128 || o[0].n % (hk * 128) || !rope->pos ||
		    !rope->inv_freq)
			return (int)cudaErrorInvalidValue;
		for (int j = 0; j < 3; j++)
			if (o[j].n_out != o[j].n)
				return (int)cudaErrorInvalidValue;
	}
	memset(&ps, 0, sizeof ps);
	ps.np = swiglu ? 1 : np; /* swiglu: blocks cover part 0 only */
	ps.swiglu = swiglu;
	ps.rot_xh = (__half *)rot_xh;
	ps.rot_suh = rot_suh;
	if (rope) {
		ps.rope = 1;
		ps.kv = rope->kv;
		ps.pos = rope->pos;
		ps.inv_freq = rope->inv_freq;
		ps.af = rope->attn_factor;
	}
	for (int j = 0; j < np; j++) {
		ps.out[j] = o[j].out;
		ps.part[j] = o[j].part;
		ps.svh[j] = o[j].svh;
		ps.bias[j] = o[j].bias;
		ps.n[j] = o[j].n;
		ps.n_out[j] = o[j].n_out;
		ps.n_kb[j] = o[j].n_kb;
		ps.block0[j] = (unsigned)total;
		if (j < ps.np)
			total += div_up(o[j].n / 128, 4);
	}
	(void)tern_launch(xl_output_kernel, dim3((unsigned)total, (unsigned)nr), 128,
			0, (cudaStream_t)stream, ps);
	return (int)cudaGetLastError();
}

/* ---- MoE experts: launch wrapper ----------------------------------------- */

template <int K, int CB, int NB>
static cudaError_t xl_moe_gemv_launch1(cudaStream_t st, const xl_moe_gp &ps,
				       unsigned gx, unsigned groups, size_t k)
{
	typedef xl_cfg<K, NB> C;
	static int attr_done; /* benign race: the same value is set */

	if (!attr_done) {
		cudaError_t e = cudaFuncSetAttribute(
			xl_moe_gemv_kernel<K, CB, NB>,
			cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM);

		if (e != cudaSuccess)
			return e;
		attr_done = 1;
	}
	(void)tern_launch(xl_moe_gemv_kernel<K, CB, NB>, dim3(gx, ps.n_kb, groups),
			XL_NW * 32, C::SMEM, st, ps, (unsigned)k);
	return cudaGetLastError();
}

template <int K>
static cudaError_t xl_moe_gemv_cb(cudaStream_t st, const xl_moe_gp &ps, int cb,
				  int nb, unsigned gx, unsigned groups, size_t k)
{
	if (nb == 1)
		switch (cb) {
		case 0: return xl_moe_gemv_launch1<K, 0, 1>(st, ps, gx, groups, k);
		case 1: return xl_moe_gemv_launch1<K, 1, 1>(st, ps, gx, groups, k);
		default: return xl_moe_gemv_launch1<K, 2, 1>(st, ps, gx, groups, k);
		}
	switch (cb) {
	case 0: return xl_moe_gemv_launch1<K, 0, 2>(st, ps, gx, groups, k);
	case 1: return xl_moe_gemv_launch1<K, 1, 2>(st, ps, gx, groups, k);
	default: return xl_moe_gemv_launch1<K, 2, 2>(st, ps, gx, groups, k);
	}
}

static cudaError_t xl_moe_gemv_any(cudaStream_t st, const xl_moe_gp &ps,
				   int bits, int cb, int nb, unsigned gx,
				   unsigned groups, size_t k)
{
	return xl_by_bits(bits, [&](auto K) {
		return xl_moe_gemv_cb<decltype(K)::value>(st, ps, cb, nb, gx, groups,
							  k);
	});
}

static bool xl_moe_kind_set(xl_moe_kind *d, const struct gpu_cuda_exl3_moe_kind *s,
			    size_t n_expert)
{
	if (s->off_suh > UINT_MAX || s->off_svh > UINT_MAX || s->off_bias > UINT_MAX ||
	    s->bits < 1 || s->bits > 8 || s->cb < 0 || s->cb > 2)
		return false;
	for (size_t e = 0; e < n_expert; e++)
		d->base[e] = (const uint8_t *)s->base[e];
	d->off_suh = (unsigned)s->off_suh;
	d->off_svh = (unsigned)s->off_svh;
	d->off_bias = (unsigned)s->off_bias;
	return true;
}

extern "C" int gpu_cuda_launch_exl3_moe(void *stream,
					const struct gpu_cuda_exl3_moe *m)
{
	cudaStream_t st = (cudaStream_t)stream;
	const size_t A = m->n * m->top_k;
	const unsigned groups = (unsigned)(A < m->n_expert ? A : m->n_expert);
	const int nb = m->n <= 8 ? 1 : 2;
	const struct gpu_cuda_exl3_moe_kind *wg = &m->w[0], *wu = &m->w[1];
	const struct gpu_cuda_exl3_moe_kind *wd = &m->w[2];
	cudaError_t e;

	if (A == 0 || A > GPU_CUDA_MOE_MAX_ASSIGN || m->top_k > 8 ||
	    m->n_expert == 0 || m->n_expert > GPU_CUDA_MOE_MAX_EXPERTS ||
	    m->dk == 0 || m->dk % 128 || m->fk == 0 || m->fk % 128 ||
	    m->dim == 0 || m->dim > m->dk || m->n_ff == 0 || m->n_ff > m->fk ||
	    m->dk > UINT_MAX || m->fk > UINT_MAX || m->kb_gu < 1 || m->kb_d < 1)
		return (int)cudaErrorInvalidValue;
	{
		xl_moe_in_p ip;

		memset(&ip, 0, sizeof ip);
		if (!xl_moe_kind_set(&ip.w[0], wg, m->n_expert) ||
		    !xl_moe_kind_set(&ip.w[1], wu, m->n_expert))
			return (int)cudaErrorInvalidValue;
		ip.xh[0] = (__half *)m->xh_g;
		ip.xh[1] = (__half *)m->xh_u;
		ip.x = m->x;
		ip.lists = m->lists;
		ip.A = (int)A;
		ip.dim = (unsigned)m->dim;
		ip.k = (unsigned)m->dk;
		(void)tern_launch(xl_moe_in_kernel, dim3(div_up(m->dk / 128, 4),
							  (unsigned)A, 2),
				128, 0, st, ip);
		if ((e = cudaGetLastError()) != cudaSuccess)
			return (int)e;
	}
	{
		/* gate and up: one grid when they share bits and codebook */
		xl_moe_gp gp;
		const unsigned ncg = (unsigned)(m->fk / XL_COLS);
		const unsigned kt = (unsigned)(m->dk / 16);
		const bool one = wg->bits == wu->bits && wg->cb == wu->cb;

		memset(&gp, 0, sizeof gp);
		for (size_t x = 0; x < m->n_expert; x++) {
			gp.tr[0][x] = (const uint8_t *)wg->base[x];
			gp.tr[1][x] = (const uint8_t *)wu->base[x];
		}
		gp.part[0] = m->part_g;
		gp.part[1] = m->part_u;
		gp.xh[0] = (const __half *)m->xh_g;
		gp.xh[1] = (const __half *)m->xh_u;
		gp.n[0] = gp.n[1] = (unsigned)m->fk;
		gp.block0[1] = ncg;
		gp.n_kb = (unsigned)m->kb_gu;
		gp.per = (kt + gp.n_kb - 1) / gp.n_kb;
		gp.np = one ? 2 : 1;
		gp.A = (int)A;
		gp.lists = m->lists;
		e = xl_moe_gemv_any(st, gp, wg->bits, wg->cb, nb, one ? 2 * ncg : ncg,
				    groups, m->dk);
		if (e == cudaSuccess && !one) {
			/* up alone: its part as part 0 */
			for (size_t x = 0; x < m->n_expert; x++)
				gp.tr[0][x] = gp.tr[1][x];
			gp.part[0] = m->part_u;
			gp.xh[0] = (const __half *)m->xh_u;
			e = xl_moe_gemv_any(st, gp, wu->bits, wu->cb, nb, ncg, groups,
					    m->dk);
		}
		if (e != cudaSuccess)
			return (int)e;
	}
	{
		xl_moe_mid_p mp;

		memset(&mp, 0, sizeof mp);
		if (!xl_moe_kind_set(&mp.w[0], wg, m->n_expert) ||
		    !xl_moe_kind_set(&mp.w[1], wu, m->n_expert) ||
		    !xl_moe_kind_set(&mp.w[2], wd, m->n_expert))
			return (int)cudaErrorInvalidValue;
		mp.part[0] = m->part_g;
		mp.part[1] = m->part_u;
		mp.xh = (__half *)m->xh_d;
		mp.lists = m->lists;
		mp.A = (int)A;
		mp.n_kb = m->kb_gu;
		mp.nf = (unsigned)m->fk;
		mp.n_ff = (unsigned)m->n_ff;
		(void)tern_launch(xl_moe_mid_kernel, dim3(div_up(m->fk / 128, 4),
							   (unsigned)A),
				128, 0, st, mp);
		if ((e = cudaGetLastError()) != cudaSuccess)
			return (int)e;
	}
	{
		xl_moe_gp gp;
		const unsigned kt = (unsigned)(m->fk / 16);

		memset(&gp, 0, sizeof gp);
		for (size_t x = 0; x < m->n_expert; x++)
			gp.tr[0][x] = (const uint8_t *)wd->base[x];
		gp.part[0] = m->part_d;
		gp.xh[0] = (const __half *)m->xh_d;
		gp.n[0] = (unsigned)m->dk;
		gp.n_kb = (unsigned)m->kb_d;
		gp.per = (kt + gp.n_kb - 1) / gp.n_kb;
		gp.np = 1;
		gp.A = (int)A;
		gp.lists = m->lists;
		e = xl_moe_gemv_any(st, gp, wd->bits, wd->cb, nb,
				    (unsigned)(m->dk / XL_COLS), groups, m->fk);
		if (e != cudaSuccess)
			return (int)e;
	}
	{
		xl_moe_out_p op;

		memset(&op, 0, sizeof op);
		if (!xl_moe_kind_set(&op.w, wd, m->n_expert))
			return (int)cudaErrorInvalidValue;
		op.part = m->part_d;
		op.out = m->out;
		op.lists = m->lists;
		op.A = (int)A;
		op.n_kb = m->kb_d;
		op.top_k = (int)m->top_k;
		op.nd = (unsigned)m->dk;
		op.dim = (unsigned)m->dim;
		(void)tern_launch(xl_moe_out_kernel, dim3(div_up(m->dk / 128, 4),
							   (unsigned)m->n),
				128, 0, st, op);
	}
	return (int)cudaGetLastError();
}
