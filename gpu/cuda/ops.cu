/* gpu/cuda/ops.cu — the CUDA backend's small ops: row lookup, RMSNorm,
 * RoPE, SwiGLU, add, gated add, softmax, MoE routing, and the helpers of
 * matmul and MoE dispatch (f32 -> f16/bf16 conversion, bias add, row
 * gather and weighted scatter-add).
 *
 * Every kernel is memory bound (a few FLOPs per element); each reads its
 * inputs once and writes its output once, so the bytes moved are the sizes
 * of the buffers named in the formula.  Arithmetic is f32 with the
 * accurate expf/cosf/sinf (no fast-math), matching gpu/cpu/ops.c up to the
 * order of summation.  Launch wrappers (kernels.h) return the launch error.
 */
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/cuda_common.cuh"

#define EW_THREADS 256

/* ---- get_rows: out[i, :] = table[ids[i], :]  out f32 [n, dim] ----------
 * One block row per token; bytes: n * dim * (4 + sizeof W). */
__global__ static void get_rows_kernel(float *out, const void *table, int wt,
				       size_t n_table, const int32_t *ids,
				       size_t dim)
{
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

	get_rows_kernel<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(
		out, table, wt, n_table, ids, dim);
	return (int)cudaGetLastError();
}

/* ---- RMSNorm -------------------------------------------------------------
 *   out[i, :] = x[i, :] / sqrt(mean_j x[i, j]^2 + eps) * w[:]
 * One block per row; x read twice (second time from L1/L2), out written once.
 * out may equal x: each element is read before it is written by the same
 * thread, after the block-wide reduction. */
__global__ static void rmsnorm_kernel(float *out, const float *x, const void *w,
				      int wt, size_t dim, float eps)
{
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

extern "C" int gpu_cuda_launch_rmsnorm(void *stream, float *out, const float *x,
				       const void *w, int wt, size_t n,
				       size_t dim, float eps)
{
	rmsnorm_kernel<<<(unsigned)n, dim >= 1024 ? 512 : 256, 0,
			 (cudaStream_t)stream>>>(out, x, w, wt, dim, eps);
	return (int)cudaGetLastError();
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
	rope_kernel<<<(unsigned)n, 128, 0, (cudaStream_t)stream>>>(
		x, n, n_head, head_dim, n_rot / 2, pos, inv_freq,
		sec ? sec[0] : 0, sec ? sec[1] : 0, sec != NULL, attn_factor);
	return (int)cudaGetLastError();
}

/* ---- elementwise ---------------------------------------------------------
 * swiglu: out = g / (1 + exp(-g)) * u;  add: out = a + b.  Grid-stride. */
__global__ static void swiglu_kernel(float *out, const float *gate,
				     const float *up, size_t n)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

__global__ static void add_kernel(float *out, const float *a, const float *b,
				  size_t n)
{
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
	swiglu_kernel<<<ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream>>>(
		out, gate, up, n);
	return (int)cudaGetLastError();
}

extern "C" int gpu_cuda_launch_add(void *stream, float *out, const float *a,
				   const float *b, size_t n)
{
	add_kernel<<<ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream>>>(out, a,
									   b, n);
	return (int)cudaGetLastError();
}

/* out[i, :] += sigmoid(gate[i]) * y[i, :]  out, y [n, dim], gate [n] */
__global__ static void add_gated_kernel(float *out, const float *y,
					const float *gate, size_t dim)
{
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

	add_gated_kernel<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(out, y,
									  gate, dim);
	return (int)cudaGetLastError();
}

/* ---- softmax over rows, in place: x = exp(x - max) / sum ----------------
 * One block per row; three passes over the row (L1/L2 resident). */
__global__ static void softmax_kernel(float *x, size_t cols)
{
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
	softmax_kernel<<<(unsigned)n, cols >= 4096 ? 512 : 256, 0,
			 (cudaStream_t)stream>>>(x, cols);
	return (int)cudaGetLastError();
}

/* ---- MoE routing ---------------------------------------------------------
 * One thread per token, the CPU's algorithm step for step: softmax
 * denominator in double, top_k by repeated arg-max (ties: lower index),
 * p = exp(l - max) / sum, optional renormalisation over the chosen k.
 * n_expert is small (<= a few hundred): the per-token work is tiny. */
__global__ static void moe_route_kernel(const float *logits, int32_t *ids,
					float *wts, size_t n, size_t n_expert,
					size_t top_k, int renorm)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	const float *row;
	float mx;
	double sum = 0.0, ksum = 0.0;

	if (i >= n)
		return;
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

extern "C" int gpu_cuda_launch_moe_route(void *stream, const float *logits,
					 int32_t *ids, float *weights, size_t n,
					 size_t n_expert, size_t top_k, int renorm)
{
	moe_route_kernel<<<tern_div_up(n, 64), 64, 0, (cudaStream_t)stream>>>(
		logits, ids, weights, n, n_expert, top_k, renorm);
	return (int)cudaGetLastError();
}

/* ---- matmul / MoE helpers --------------------------------------------- */

/* dst[i] = half(src[i]) (f16 or bf16, round to nearest even) */
__global__ static void f32_to_half_kernel(void *dst, int wt, const float *src,
					  size_t n)
{
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
	f32_to_half_kernel<<<ew_blocks(n), EW_THREADS, 0, (cudaStream_t)stream>>>(
		dst, wt, src, n);
	return (int)cudaGetLastError();
}

/* out[i, r] += bias[r]   out [n, rows] */
__global__ static void add_bias_kernel(float *out, const void *bias, int wt,
				       size_t rows)
{
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

	add_bias_kernel<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(out, bias,
									 wt, rows);
	return (int)cudaGetLastError();
}

/* xg[t, :] = x[rows[t], :] */
__global__ static void gather_rows_kernel(float *xg, const float *x,
					  const int32_t *rows, size_t dim)
{
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

	gather_rows_kernel<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(
		xg, x, rows, dim);
	return (int)cudaGetLastError();
}

/* out[rows[t], :] += wts[t] * y[t, :]; rows distinct within a launch */
__global__ static void scatter_add_kernel(float *out, const float *y,
					  const int32_t *rows, const float *wts,
					  size_t dim)
{
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

	scatter_add_kernel<<<grid, EW_THREADS, 0, (cudaStream_t)stream>>>(
		out, y, rows, wts, dim);
	return (int)cudaGetLastError();
}
