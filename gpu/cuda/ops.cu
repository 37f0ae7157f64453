/* gpu/cuda/ops.cu — the CUDA backend's small ops: row lookup, RMSNorm
 * (alone and fused with the residual add before it), RoPE, SwiGLU, add,
 * gated add, softmax, MoE routing, and the helpers of matmul and MoE
 * dispatch (f32 -> f16/bf16 conversion, bias add, row
 * gather and weighted scatter-add).
 *
 * Every kernel is memory bound (a few FLOPs per element); each reads its
 * inputs once and writes its output once, so the bytes moved are the sizes
 * of the buffers named in the formula.  Arithmetic is f32 with the
 * accurate expf/cosf/sinf (no fast-math), matching gpu/cpu/ops.c up to the
 * order of summation.  Launch wrappers (kernels.h) return the launch error.
 */
#include <limits.h>

#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"
#include "gpu/cuda/pdl.cuh"

#define EW_THREADS 256

/* ---- get_rows: out[i, :] = table[ids[i], :]  out f32 [n, dim] ----------
 * One block row per token; bytes: n * dim * (4 + sizeof W). */
__global__ static void get_rows_kernel(float *out, const void *table, int wt,
				       size_t n_table, const int32_t *ids,
				       size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t i = blockIdx.x;
	int32_t id = ids[i];
	size_t j = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (j >= dim)
		return;
	out[i * dim + j] = (id < 0 || (size_t)id >= n_table) ? 0.0f :
			   tern_ldw(table, wt, (size_t)id * dim + j);
}

extern "C" int gpu_cuda_launch_get_rows(void *stream, float *out,
					const void *table, int wt, size_t n_table,
					const int32_t *ids, size_t n, size_t dim)
{
	dim3 grid((unsigned)n, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(get_rows_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, out, table, wt, n_table, ids, dim);
	return (int)cudaGetLastError();
}

/* ---- RMSNorm and residual add + RMSNorm ----------------------------------
 *   rmsnorm:      out[i, :] = x[i, :] * inv_i * w[:]                (out may be x)
 *   add_rmsnorm:  x[i, :] += o[i, :];  xn[i, :] = x[i, :] * inv_i * w[:]
 *   inv_i = 1 / sqrt(mean_j x[i, j]^2 + eps)
 * Bytes: rmsnorm reads x and writes out; add_rmsnorm reads x and o and
 * writes x and xn (w comes from L2 after the first rows).
 *
 * norm_rows_kernel (dim up to NORM_MAX_VEC * 4 * NORM_MAX_TPR): TPR
 * threads per row (a power of two, 32..NORM_MAX_TPR), one row per block,
 * or 4 rows per block of 128 threads when TPR is 32 (a warp per row: the
 * per-head q/k norms of Qwen3 have many rows of 128).  Thread t holds the
 * elements of vectors t, t + TPR, ..., up to VPT of them, in registers:
 * float4 vectors (VEC: dim % 4 == 0 and 16-byte aligned buffers) or single
 * elements.  Every load of the row (x, o and w) is issued before the
 * reduction, so a row costs one memory latency, not one per loop
 * iteration as a strided loop has (each iteration's sum depends on the
 * last); then a warp (and for TPR > 32 a shared-memory) reduction, and the
 * stores.  Wider rows use the strided loop kernels below (x is read twice,
 * the second time from L1/L2).  The output of every element is written by
 * the thread that read it, so out == x is safe. */
#define NORM_MAX_TPR 512
#define NORM_MAX_VEC 8  /* vectors per thread (float4 or single) */
#define NORM_WARP_ROWS 4 /* rows per block when TPR == 32 */

struct f4 {
	float v[4];
};

/* vector j (4 elements, or element j) of an f32 row as f4 */
template <int VEC>
__device__ __forceinline__ f4 ld_x(const float *p, size_t j)
{
	f4 r;

	if (VEC) {
		float4 a = *reinterpret_cast<const float4 *>(p + 4 * j);

		r.v[0] = a.x; r.v[1] = a.y; r.v[2] = a.z; r.v[3] = a.w;
	} else {
		r.v[0] = p[j];
		r.v[1] = r.v[2] = r.v[3] = 0.0f;
	}
	return r;
}

template <int VEC>
__device__ __forceinline__ void st_x(float *p, size_t j, const f4 &r)
{
	if (VEC)
		*reinterpret_cast<float4 *>(p + 4 * j) =
			make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
	else
		p[j] = r.v[0];
}

/* vector j of the weight (f32: 16-byte load; f16/bf16: 8 bytes) */
template <int VEC>
__device__ __forceinline__ f4 ld_w(const void *w, int wt, size_t j)
{
	f4 r;

	if (!VEC) {
		r.v[0] = tern_ldw(w, wt, j);
		r.v[1] = r.v[2] = r.v[3] = 0.0f;
	} else if (wt == CUDA_WT_F32) {
		float4 a = *reinterpret_cast<const float4 *>((const float *)w + 4 * j);

		r.v[0] = a.x; r.v[1] = a.y; r.v[2] = a.z; r.v[3] = a.w;
	} else {
		uint2 u = *reinterpret_cast<const uint2 *>((const uint16_t *)w + 4 * j);

		if (wt == CUDA_WT_BF16) {
			r.v[0] = __uint_as_float(u.x << 16);
			r.v[1] = __uint_as_float(u.x & 0xffff0000u);
			r.v[2] = __uint_as_float(u.y << 16);
			r.v[3] = __uint_as_float(u.y & 0xffff0000u);
		} else {
			float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
			float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));

			r.v[0] = a.x; r.v[1] = a.y; r.v[2] = b.x; r.v[3] = b.y;
		}
	}
	return r;
}

/* ADD = 0: out = norm(xin) * w.  ADD = 1: xin += o (stored), out = norm. */
template <int VPT, int VEC, int ADD>
__global__ static void __launch_bounds__(NORM_MAX_TPR)
norm_rows_kernel(float *out, float *xin, const float *o, const void *w, int wt,
		 size_t n, size_t dim, float eps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ float sh[NORM_MAX_TPR / 32];
	const int tpr = blockDim.x, tx = threadIdx.x;
	const size_t row = (size_t)blockIdx.x * blockDim.y + threadIdx.y;
	const size_t nv = VEC ? dim / 4 : dim; /* vectors per row */
	const size_t base = row * dim;
	f4 xv[VPT], ov[VPT], wv[VPT];
	float ss = 0.0f, inv;

	/* only a warp-per-row block (no __syncthreads) has rows past n */
	if (row >= n)
		return;
	/* all loads first */
#pragma unroll
	for (int t = 0; t < VPT; t++) {
		const size_t j = (size_t)tx + (size_t)t * tpr;

		if (j < nv) {
			xv[t] = ld_x<VEC>(xin + base, j);
			if (ADD)
				ov[t] = ld_x<VEC>(o + base, j);
			wv[t] = ld_w<VEC>(w, wt, j);
		}
	}
#pragma unroll
	for (int t = 0; t < VPT; t++) {
		const size_t j = (size_t)tx + (size_t)t * tpr;

		if (j < nv) {
			if (ADD) {
#pragma unroll
				for (int e = 0; e < 4; e++)
					xv[t].v[e] = xv[t].v[e] + ov[t].v[e];
				st_x<VEC>(xin + base, j, xv[t]);
			}
#pragma unroll
			for (int e = 0; e < (VEC ? 4 : 1); e++)
				ss += xv[t].v[e] * xv[t].v[e];
		}
	}
	ss = tern_warp_sum(ss);
	if (tpr > 32) {
		const int lane = tx & 31, nw = tpr >> 5;

		if (lane == 0)
			sh[tx >> 5] = ss;
		__syncthreads();
		ss = tern_warp_sum(lane < nw ? sh[lane] : 0.0f);
	}
	inv = 1.0f / sqrtf(ss / (float)dim + eps);
#pragma unroll
	for (int t = 0; t < VPT; t++) {
		const size_t j = (size_t)tx + (size_t)t * tpr;

		if (j < nv) {
			f4 r;

#pragma unroll
			for (int e = 0; e < 4; e++)
				r.v[e] = wv[t].v[e] * (xv[t].v[e] * inv);
			st_x<VEC>(out + base, j, r);
		}
	}
}

/* Rows too wide for registers: strided loops, x read twice. */
__global__ static void rmsnorm_loop_kernel(float *out, const float *x,
					   const void *w, int wt, size_t dim,
					   float eps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ float sh[32];
	const float *xr = x + (size_t)blockIdx.x * dim;
	float *o = out + (size_t)blockIdx.x * dim;
	float ss = 0.0f, inv;

	for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
		ss += xr[j] * xr[j];
	ss = tern_block_sum(ss, sh);
	inv = 1.0f / sqrtf(ss / (float)dim + eps);
	for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
		o[j] = tern_ldw(w, wt, j) * (xr[j] * inv);
}

__global__ static void add_rmsnorm_loop_kernel(float *x, float *xn,
					       const float *o, const void *w,
					       int wt, size_t dim, float eps)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ float sh[32];
	float *xr = x + (size_t)blockIdx.x * dim;
	const float *orow = o + (size_t)blockIdx.x * dim;
	float *xo = xn + (size_t)blockIdx.x * dim;
	float ss = 0.0f, inv;

	for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
		const float v = xr[j] + orow[j];

		xr[j] = v;
		ss += v * v;
	}
	ss = tern_block_sum(ss, sh);
	inv = 1.0f / sqrtf(ss / (float)dim + eps);
	/* each thread rereads only the elements it wrote */
	for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
		xo[j] = tern_ldw(w, wt, j) * (xr[j] * inv);
}

template <int VEC, int ADD>
static void norm_launch_vpt(int vpt, dim3 grid, dim3 block, cudaStream_t s,
			    float *out, float *x, const float *o, const void *w,
			    int wt, size_t n, size_t dim, float eps)
{
	switch (vpt) {
	case 1:
		(void)tern_launch(norm_rows_kernel<1, VEC, ADD>, grid, block, 0,
				s, out, x, o, w, wt, n, dim, eps);
		break;
	case 2:
		(void)tern_launch(norm_rows_kernel<2, VEC, ADD>, grid, block, 0,
				s, out, x, o, w, wt, n, dim, eps);
		break;
	case 4:
		(void)tern_launch(norm_rows_kernel<4, VEC, ADD>, grid, block, 0,
				s, out, x, o, w, wt, n, dim, eps);
		break;
	default:
		(void)tern_launch(norm_rows_kernel<8, VEC, ADD>, grid, block, 0,
				s, out, x, o, w, wt, n, dim, eps);
		break;
	}
}

/* Pick the register kernel's shape for a row of dim elements: about 4
 * vectors per thread, TPR a power of two in 32..NORM_MAX_TPR, VPT the
 * vectors per thread rounded up to 1, 2, 4 or 8.  Returns 0 when the row
 * does not fit (then the loop kernel runs). */
static int norm_shape(size_t nv, int *tpr, int *vpt)
{
	size_t t = 32, v;

	while (t < NORM_MAX_TPR && t * 4 < nv)
		t *= 2;
	v = (nv + t - 1) / t;
	if (v > NORM_MAX_VEC)
		return 0;
	*tpr = (int)t;
	*vpt = v <= 1 ? 1 : v <= 2 ? 2 : v <= 4 ? 4 : 8;
	return 1;
}

/* ADD: x += o, out = norm(x) (x in/out); else out = norm(x). */
static int norm_launch(cudaStream_t s, int add, float *out, float *x,
		       const float *o, const void *w, int wt, size_t n,
		       size_t dim, float eps)
{
	const uintptr_t al = (uintptr_t)out | (uintptr_t)x | (uintptr_t)o;
	const int vec = dim % 4 == 0 && al % 16 == 0 &&
			(uintptr_t)w % (wt == CUDA_WT_F32 ? 16 : 8) == 0;
	int tpr, vpt;

	if (norm_shape(vec ? dim / 4 : dim, &tpr, &vpt)) {
		const unsigned rpb = tpr == 32 ? NORM_WARP_ROWS : 1;
		dim3 grid(tern_div_up(n, rpb)), block((unsigned)tpr, rpb);

		if (vec && add)
			norm_launch_vpt<1, 1>(vpt, grid, block, s, out, x, o, w, wt, n,
					      dim, eps);
		else if (vec)
			norm_launch_vpt<1, 0>(vpt, grid, block, s, out, x, o, w, wt, n,
					      dim, eps);
		else if (add)
			norm_launch_vpt<0, 1>(vpt, grid, block, s, out, x, o, w, wt, n,
					      dim, eps);
		else
			norm_launch_vpt<0, 0>(vpt, grid, block, s, out, x, o, w, wt, n,
					      dim, eps);
	} else if (add) {
		(void)tern_launch(add_rmsnorm_loop_kernel, (unsigned)n, 512, 0,
				s, x, out, o, w, wt, dim, eps);
	} else {
		(void)tern_launch(rmsnorm_loop_kernel, (unsigned)n, 512, 0, s,
				out, x, w, wt, dim, eps);
	}
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_rmsnorm(void *stream, float *out, const float *x,
				       const void *w, int wt, size_t n,
				       size_t dim, float eps)
{
	/* x is only read when add is 0 */
	return norm_launch((cudaStream_t)stream, 0, out, const_cast<float *>(x),
			   NULL, w, wt, n, dim, eps);
}

extern "C" int gpu_cuda_launch_add_rmsnorm(void *stream, float *x, float *xn,
					   const float *o, const void *w, int wt,
					   size_t n, size_t dim, float eps)
{
	return norm_launch((cudaStream_t)stream, 1, xn, x, o, w, wt, n, dim, eps);
}

/* ---- RoPE (rotate-half), in place ----------------------------------------
 * x f32 [n, n_head, head_dim]; for f < half = n_rot/2:
 *   theta = (float)pos_c(f)[i] * inv_freq[f]
 *   (a, b) = (x[f], x[f+half]) -> ((a cos - b sin) af, (b cos + a sin) af)
 * One block per token: cos/sin computed once per frequency into shared
 * memory, then applied to every head. */
__global__ static void rope_kernel(float *x, size_t n, size_t n_head,
				   size_t head_dim, size_t half,
				   const int32_t *pos, const float *inv_freq,
				   int s0, int s1, int mrope, float af)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ float cs[GPU_CUDA_MAX_HEAD_DIM / 2], sn[GPU_CUDA_MAX_HEAD_DIM / 2];
	size_t i = blockIdx.x;

	for (size_t f = threadIdx.x; f < half; f += blockDim.x) {
		int comp = 0;
		float theta;

		if (mrope)
			comp = (int)f < s0 ? 0 : (int)f < s1 ? 1 : 2;
		theta = (float)pos[(size_t)comp * n + i] * inv_freq[f];
		cs[f] = cosf(theta) * af;
		sn[f] = sinf(theta) * af;
	}
	__syncthreads();
	for (size_t t = threadIdx.x; t < n_head * half; t += blockDim.x) {
		size_t h = t / half, f = t % half;
		float *v = x + (i * n_head + h) * head_dim;
		float a = v[f], b = v[f + half];

		v[f] = a * cs[f] - b * sn[f];
		v[f + half] = b * cs[f] + a * sn[f];
	}
}

extern "C" int gpu_cuda_launch_rope(void *stream, float *x, size_t n,
				    size_t n_head, size_t head_dim, size_t n_rot,
				    const int32_t *pos, const float *inv_freq,
				    const int *sec, float attn_factor)
{
	(void)tern_launch(rope_kernel, (unsigned)n, 128, 0,
			(cudaStream_t)stream, x, n, n_head, head_dim, n_rot / 2,
			pos, inv_freq, sec ? sec[0] : 0, sec ? sec[1] : 0,
			sec != NULL, attn_factor);
	return (int)cudaGetLastError();
}

/* ---- elementwise ---------------------------------------------------------
 * swiglu: out = g / (1 + exp(-g)) * u;  add: out = a + b.  Grid-stride. */
__global__ static void swiglu_kernel(float *out, const float *gate,
				     const float *up, size_t n)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

__global__ static void add_kernel(float *out, const float *a, const float *b,
				  size_t n)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		out[i] = a[i] + b[i];
}

static unsigned ew_blocks(size_t n)
{
	size_t b = (n + EW_THREADS - 1) / EW_THREADS;

	return (unsigned)(b > 65535 ? 65535 : b);
}

extern "C" int gpu_cuda_launch_swiglu(void *stream, float *out,
				      const float *gate, const float *up,
				      size_t n)
{
	(void)tern_launch(swiglu_kernel, ew_blocks(n), EW_THREADS, 0,
			(cudaStream_t)stream, out, gate, up, n);
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_add(void *stream, float *out, const float *a,
				   const float *b, size_t n)
{
	(void)tern_launch(add_kernel, ew_blocks(n), EW_THREADS, 0,
			(cudaStream_t)stream, out, a, b, n);
	return (int)cudaGetLastError();
}

/* out[i, :] += sigmoid(gate[i]) * y[i, :]  out, y [n, dim], gate [n] */
__global__ static void add_gated_kernel(float *out, const float *y,
					const float *gate, size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t i = blockIdx.x;
	size_t j = (size_t)blockIdx.y * blockDim.x + threadIdx.x;
	float s;

	if (j >= dim)
		return;
	s = 1.0f / (1.0f + expf(-gate[i]));
	out[i * dim + j] += s * y[i * dim + j];
}

extern "C" int gpu_cuda_launch_add_gated(void *stream, float *out,
					 const float *y, const float *gate,
					 size_t n, size_t dim)
{
	dim3 grid((unsigned)n, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(add_gated_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, out, y, gate, dim);
	return (int)cudaGetLastError();
}

/* ---- softmax over rows, in place: x = exp(x - max) / sum ----------------
 * One block per row; three passes over the row (L1/L2 resident). */
__global__ static void softmax_kernel(float *x, size_t cols)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	__shared__ float sh[32];
	float *r = x + (size_t)blockIdx.x * cols;
	float mx = -INFINITY, sum = 0.0f, inv;

	for (size_t j = threadIdx.x; j < cols; j += blockDim.x)
		mx = fmaxf(mx, r[j]);
	mx = tern_block_max(mx, sh);
	for (size_t j = threadIdx.x; j < cols; j += blockDim.x) {
		float e = expf(r[j] - mx);

		r[j] = e;
		sum += e;
	}
	sum = tern_block_sum(sum, sh);
	inv = 1.0f / sum;
	for (size_t j = threadIdx.x; j < cols; j += blockDim.x)
		r[j] *= inv;
}

extern "C" int gpu_cuda_launch_softmax(void *stream, float *x, size_t n,
				       size_t cols)
{
	(void)tern_launch(softmax_kernel, (unsigned)n, cols >= 4096 ? 512 : 256,
			0, (cudaStream_t)stream, x, cols);
	return (int)cudaGetLastError();
}

/* ---- MoE routing ---------------------------------------------------------
 * One thread per token, the CPU's algorithm step for step: softmax
 * denominator in double, top_k by repeated arg-max (ties: lower index),
 * p = exp(l - max) / sum, optional renormalisation over the chosen k.
 * n_expert is small (<= a few hundred): the per-token work is tiny. */
/* Row i by one thread, the CPU's loop exactly (also its NaN behaviour:
 * the first untaken expert wins a round when it is NaN). */
__device__ static void moe_route_row(const float *logits, int32_t *ids,
				     float *wts, size_t i, size_t n_expert,
				     size_t top_k, int renorm)
{
	const float *row;
	float mx;
	double sum = 0.0, ksum = 0.0;

	row = logits + i * n_expert;
	mx = row[0];
	for (size_t e = 1; e < n_expert; e++)
		if (row[e] > mx)
			mx = row[e];
	for (size_t e = 0; e < n_expert; e++)
		sum += exp((double)(row[e] - mx));
	for (size_t j = 0; j < top_k; j++) {
		size_t best = n_expert;

		for (size_t e = 0; e < n_expert; e++) {
			int taken = 0;

			for (size_t q = 0; q < j; q++)
				if ((size_t)ids[i * top_k + q] == e)
					taken = 1;
			if (taken)
				continue;
			if (best == n_expert || row[e] > row[best])
				best = e;
		}
		ids[i * top_k + j] = (int32_t)best;
		wts[i * top_k + j] = (float)(exp((double)(row[best] - mx)) / sum);
		ksum += wts[i * top_k + j];
	}
	if (renorm)
		for (size_t j = 0; j < top_k; j++)
			wts[i * top_k + j] = (float)(wts[i * top_k + j] / ksum);
}

__global__ static void moe_route_kernel(const float *logits, int32_t *ids,
					float *wts, size_t n, size_t n_expert,
					size_t top_k, int renorm)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		moe_route_row(logits, ids, wts, i, n_expert, top_k, renorm);
}

/* The same routing with one warp per row (n_expert <= 32 * 32): lane l
 * holds experts l, l + 32, ... and a bit per expert it has handed out;
 * each of the top_k rounds is a warp arg-max (ties to the lower index, as
 * the scan above), so the ids are the serial kernel's.  The exp sum is
 * taken in double per lane and then across lanes — a different order than
 * the CPU's running sum, which may move a weight by one float ulp.  A row
 * holding a NaN (where `>` is no order) goes to moe_route_row on lane 0,
 * the CPU's loop.  The
 * serial kernel kept the chosen ids in global memory and re-read them for
 * every expert of every round: top 8 of 128 experts cost ~0.2 ms a row. */
#define MOE_ROUTE_WARPS 4
__global__ static void moe_route_warp_kernel(const float *logits, int32_t *ids,
					     float *wts, size_t n, int n_expert,
					     int top_k, int renorm)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int lane = threadIdx.x & 31;
	const size_t i = (size_t)blockIdx.x * MOE_ROUTE_WARPS + (threadIdx.x >> 5);
	const float *row;
	float mx = -INFINITY;
	double sum = 0.0, ksum = 0.0;
	uint32_t taken = 0;

	if (i >= n)
		return;
	row = logits + i * (size_t)n_expert;
	{
		bool nan = false;

		for (int e = lane; e < n_expert; e += 32) {
			nan |= isnan(row[e]);
			mx = fmaxf(mx, row[e]);
		}
		if (__any_sync(0xffffffffu, nan)) {
			if (lane == 0)
				moe_route_row(logits, ids, wts, i, (size_t)n_expert,
					      (size_t)top_k, renorm);
			return;
		}
	}
	mx = tern_warp_max(mx);
	for (int e = lane; e < n_expert; e += 32)
		sum += exp((double)(row[e] - mx));
	for (int o = 16; o > 0; o >>= 1)
		sum += __shfl_xor_sync(0xffffffffu, sum, o);
	for (int j = 0; j < top_k; j++) {
		float bv = 0.0f;
		int be = INT_MAX; /* none */

		for (int e = lane, q = 0; e < n_expert; e += 32, q++)
			if (!((taken >> q) & 1u) && (be == INT_MAX || row[e] > bv)) {
				bv = row[e];
				be = e;
			}
		for (int o = 16; o > 0; o >>= 1) {
			const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
			const int oe = __shfl_xor_sync(0xffffffffu, be, o);

			if (oe != INT_MAX &&
			    (be == INT_MAX || ov > bv || (ov == bv && oe < be))) {
				bv = ov;
				be = oe;
			}
		}
		if ((be & 31) == lane)
			taken |= 1u << (be >> 5);
		if (lane == 0) {
			const float w = (float)(exp((double)(row[be] - mx)) / sum);

			ids[i * top_k + j] = be;
			wts[i * top_k + j] = w;
			ksum += w;
		}
	}
	if (renorm && lane == 0)
		for (int j = 0; j < top_k; j++)
			wts[i * top_k + j] = (float)(wts[i * top_k + j] / ksum);
}

extern "C" int gpu_cuda_launch_moe_route(void *stream, const float *logits,
					 int32_t *ids, float *weights, size_t n,
					 size_t n_expert, size_t top_k, int renorm)
{
	if (n_expert <= 32 * 32)
		(void)tern_launch(moe_route_warp_kernel,
				tern_div_up(n, MOE_ROUTE_WARPS), MOE_ROUTE_WARPS * 32,
				0, (cudaStream_t)stream, logits, ids, weights, n,
				(int)n_expert, (int)top_k, renorm);
	else
		(void)tern_launch(moe_route_kernel, tern_div_up(n, 64), 64, 0,
				(cudaStream_t)stream, logits, ids, weights, n,
				n_expert, top_k, renorm);
	return (int)cudaGetLastError();
}

/* ---- matmul / MoE helpers --------------------------------------------- */

/* dst[i] = half(src[i]) (f16 or bf16, round to nearest even) */
__global__ static void f32_to_half_kernel(void *dst, int wt, const float *src,
					  size_t n)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		if (wt == CUDA_WT_BF16)
			((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
		else
			((__half *)dst)[i] = __float2half_rn(src[i]);
	}
}

extern "C" int gpu_cuda_launch_f32_to_half(void *stream, void *dst, int wt,
					   const float *src, size_t n)
{
	(void)tern_launch(f32_to_half_kernel, ew_blocks(n), EW_THREADS, 0,
			(cudaStream_t)stream, dst, wt, src, n);
	return (int)cudaGetLastError();
}

/* out[i, r] += bias[r]   out [n, rows] */
__global__ static void add_bias_kernel(float *out, const void *bias, int wt,
				       size_t rows)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t i = blockIdx.x;
	size_t r = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (r < rows)
		out[i * rows + r] += tern_ldw(bias, wt, r);
}

extern "C" int gpu_cuda_launch_add_bias(void *stream, float *out,
					const void *bias, int wt, size_t n,
					size_t rows)
{
	dim3 grid((unsigned)n, tern_div_up(rows, EW_THREADS));

	(void)tern_launch(add_bias_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, out, bias, wt, rows);
	return (int)cudaGetLastError();
}

/* xg[t, :] = x[rows[t], :] */
__global__ static void gather_rows_kernel(float *xg, const float *x,
					  const int32_t *rows, size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t t = blockIdx.x;
	size_t j = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (j < dim)
		xg[t * dim + j] = x[(size_t)rows[t] * dim + j];
}

extern "C" int gpu_cuda_launch_gather_rows(void *stream, float *xg,
					   const float *x, const int32_t *rows,
					   size_t m, size_t dim)
{
	dim3 grid((unsigned)m, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(gather_rows_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, xg, x, rows, dim);
	return (int)cudaGetLastError();
}

/* out[rows[t], :] += wts[t] * y[t, :]; rows distinct within a launch */
__global__ static void scatter_add_kernel(float *out, const float *y,
					  const int32_t *rows, const float *wts,
					  size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t t = blockIdx.x;
	size_t j = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (j < dim)
		out[(size_t)rows[t] * dim + j] += wts[t] * y[t * dim + j];
}

extern "C" int gpu_cuda_launch_scatter_add(void *stream, float *out,
					   const float *y, const int32_t *rows,
					   const float *wts, size_t m, size_t dim)
{
	dim3 grid((unsigned)m, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(scatter_add_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, out, y, rows, wts, dim);
	return (int)cudaGetLastError();
}

/* ---- MoE experts as grouped GEMMs (host-planned prefill path) --------- */

__device__ static inline void st_half(void *dst, int wt, size_t i, float v)
{
	if (wt == CUDA_WT_BF16)
		((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(v);
	else
		((__half *)dst)[i] = __float2half_rn(v);
}

/* dst[t, :] = half(x[rows[t], :]) */
__global__ static void gather_rows_half_kernel(void *dst, int wt,
					       const float *x,
					       const int32_t *rows, size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	size_t t = blockIdx.x;
	size_t j = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (j < dim)
		st_half(dst, wt, t * dim + j, x[(size_t)rows[t] * dim + j]);
}

extern "C" int gpu_cuda_launch_gather_rows_half(void *stream, void *dst,
						int wt, const float *x,
						const int32_t *rows, size_t m,
						size_t dim)
{
	dim3 grid((unsigned)m, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(gather_rows_half_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, dst, wt, x, rows, dim);
	return (int)cudaGetLastError();
}

/* dst[i] = half(silu(gate[i]) * up[i]) with gate, up of type wt_in, the
 * float expression of swiglu_kernel */
__global__ static void swiglu_half_kernel(void *dst, int wt, const void *gate,
					  const void *up, int wt_in, size_t n)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float g = tern_ldw(gate, wt_in, i);

		st_half(dst, wt, i, g / (1.0f + expf(-g)) * tern_ldw(up, wt_in, i));
	}
}

/* swiglu_half_kernel for bf16 in and out, eight elements a thread with
 * 16-byte loads and stores (n8 groups of eight; 16-byte aligned) */
__global__ static void swiglu_bf16x8_kernel(uint4 *dst, const uint4 *gate,
					    const uint4 *up, size_t n8)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8;
	     i += (size_t)gridDim.x * blockDim.x) {
		uint4 gv = gate[i], uv = up[i], ov;
		const __nv_bfloat162 *g2 = (const __nv_bfloat162 *)&gv;
		const __nv_bfloat162 *u2 = (const __nv_bfloat162 *)&uv;
		__nv_bfloat162 *o2 = (__nv_bfloat162 *)&ov;

		for (int j = 0; j < 4; j++) {
			const float2 g = __bfloat1622float2(g2[j]);
			const float2 u = __bfloat1622float2(u2[j]);

			o2[j] = __floats2bfloat162_rn(g.x / (1.0f + expf(-g.x)) * u.x,
						      g.y / (1.0f + expf(-g.y)) * u.y);
		}
		dst[i] = ov;
	}
}

extern "C" int gpu_cuda_launch_swiglu_half(void *stream, void *dst, int wt,
					   const void *gate, const void *up,
					   int wt_in, size_t n)
{
	if (wt == CUDA_WT_BF16 && wt_in == CUDA_WT_BF16 && n % 8 == 0 &&
	    !(((uintptr_t)dst | (uintptr_t)gate | (uintptr_t)up) & 15)) {
		(void)tern_launch(swiglu_bf16x8_kernel, ew_blocks(n / 8),
				EW_THREADS, 0, (cudaStream_t)stream, (uint4 *)dst,
				(const uint4 *)gate, (const uint4 *)up, n / 8);
		return (int)cudaGetLastError();
	}
	(void)tern_launch(swiglu_half_kernel, ew_blocks(n), EW_THREADS, 0,
			(cudaStream_t)stream, dst, wt, gate, up, wt_in, n);
	return (int)cudaGetLastError();
}

/* Block (r, column block): out[rows[r], c] accumulates, from its value,
 * wts[s] * y[s, c] (y of type wt) for s = slot[start[r]] ..
 * slot[start[r + 1] - 1] in that order, one fmaf each. */
__global__ static void moe_scatter_csr_kernel(float *out, const void *y, int wt,
					      const float *wts,
					      const int32_t *rows,
					      const int32_t *start,
					      const int32_t *slot, size_t dim)
{
	tern_pdl_wait(); /* first: see gpu/cuda/pdl.cuh */
	const int r = blockIdx.x;
	const size_t c = (size_t)blockIdx.y * blockDim.x + threadIdx.x;

	if (c >= dim)
		return;
	float *o = out + (size_t)rows[r] * dim + c;
	float acc = *o;

	for (int j = start[r]; j < start[r + 1]; j++) {
		const int s = slot[j];

		acc = fmaf(wts[s], tern_ldw(y, wt, (size_t)s * dim + c), acc);
	}
	*o = acc;
}

extern "C" int gpu_cuda_launch_moe_scatter_csr(void *stream, float *out,
					       const void *y, int wt,
					       const float *wts,
					       const int32_t *rows,
					       const int32_t *start,
					       const int32_t *slot,
					       size_t n_rows, size_t dim)
{
	dim3 grid((unsigned)n_rows, tern_div_up(dim, EW_THREADS));

	(void)tern_launch(moe_scatter_csr_kernel, grid, EW_THREADS, 0,
			(cudaStream_t)stream, out, y, wt, wts, rows, start, slot,
			dim);
	return (int)cudaGetLastError();
}
