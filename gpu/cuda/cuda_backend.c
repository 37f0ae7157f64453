/* gpu/cuda/cuda_backend.c — host side of the CUDA backend (C11, compiled by
 * $(CC) against the CUDA runtime and cuBLAS): the handle, device buffers,
 * and the vtable that enqueues the kernels of the gpu/cuda .cu files.
 *
 * Execution model: one handle = one device and one CUDA stream; every op is
 * enqueued on that stream and returns without waiting (gpu_sync waits), so
 * ops run in issue order.  gpu_buf_write / gpu_buf_read are synchronous.
 * The device is made current in open, buffer allocation and sync; ops
 * assume the calling thread's current device is the handle's (the
 * single-device case, or the thread that opened it).
 *
 * Errors: every CUDA / cuBLAS call goes through CUDA_TRY / CUBLAS_TRY
 * (statement, file:line and the library's text in the diag; GPU_E_DEVICE,
 * which poisons the handle in gpu.c).  Running out of device memory is not
 * a device error: buf_alloc returns GPU_E_NOMEM naming the size asked for
 * and the free / total device memory, clears CUDA's error state, and the
 * handle stays usable.
 *
 * Memory: buffers are plain cudaMalloc allocations, released by cudaFree
 * (which waits for the device), so freeing every buffer returns all device
 * memory the caller asked for.  The handle itself holds the cuBLAS handle
 * and three scratch areas that gpu_reserve sizes up front (inference does
 * so when it makes a context) and that otherwise grow on the first call of
 * a larger size and are kept (later calls of that size allocate nothing):
 * a device area for activations converted to f16/bf16 (cuBLAS path of
 * matmul), one for the partial results of split-K attention, and a host
 * area for MoE routing lists (plus the grouped MoE path's host staging,
 * grown on first use).
 *
 * Matmul convention (the one place it is written down): tern is row-major,
 * cuBLAS column-major.  A row-major [a, b] matrix is the column-major
 * [b, a] matrix with leading dimension b.  So out[n, rows] = x[n, k] .
 * W[rows, k]^T is, column-major, out^T[rows, n] = (W^T)^T[rows, k] .
 * x^T[k, n] with W^T seen as column-major [k, rows] (ld k), x^T as [k, n]
 * (ld k), out^T as [rows, n] (ld rows):
 *   cublas*gemm(OP_T, OP_N, m = rows, n = n, k = k, A = W, lda = k,
 *               B = x, ldb = k, C = out, ldc = rows).
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cuBLAS pulls in cuda_fp16.h / cuda_bf16.h, which test __cplusplus
 * without defining it first (-Wundef in C). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cublas_v2.h>
#pragma GCC diagnostic pop
#include <cuda_runtime.h>

#include "gpu/cuda/cuda_check.h"
#include "gpu/cuda/cuda_exl3.h"
#include "gpu/cuda/cuda_impl.h"
#include "gpu/cuda/kernels.h"
#include "gpu/cuda/switches.h"
#include "gpu/moe_plan.h"

_Static_assert((int)GPU_DTYPE_F32 == CUDA_WT_F32 &&
		       (int)GPU_DTYPE_F16 == CUDA_WT_F16 &&
		       (int)GPU_DTYPE_BF16 == CUDA_WT_BF16,
	       "enum cuda_wt must mirror enum gpu_dtype");
_Static_assert(GPU_CUDA_MAX_HEAD_DIM == GPU_MAX_HEAD_DIM &&
		       GPU_CUDA_MAX_PAGE_SIZE == GPU_MAX_PAGE_SIZE,
	       "kernel limits must mirror gpu.h");
_Static_assert(GPU_CUDA_MOE_MAX_ASSIGN == GPU_MOE_DEVICE_MAX_ASSIGN,
	       "gpu_moe_ffn_recordable promises what the launchers take");
_Static_assert(GPU_MATMUL_MULTI_MAX <= GPU_CUDA_GEMV_MAX_PARTS,
	       "one GEMV launch covers every part of gpu_matmul_multi");

struct cuda_state {
	int device;
	cudaStream_t stream;
	cublasHandle_t blas;
	void *half_ws;         /* device: x as f16/bf16 for cuBLAS */
	size_t half_ws_bytes;
	float *att_ws;         /* device: split-K attention partials */
	size_t att_ws_bytes;
	void *host_ws;         /* host: MoE ids, weights and row lists */
	size_t host_ws_bytes;
	int *moe_err;          /* mapped host memory, 4 ints: an expert id
				* out of range met on the device (see
				* gpu_cuda_launch_moe_plan); read by sync */
	int *moe_err_dev;      /* the same, as the device sees it */
	uint64_t ws_gen;       /* bumped whenever a device scratch area moves
				* (graphs recorded before point to the old one) */
	int grouped;           /* MoE expert GEMMs: 1 one grouped cuBLAS call
				* per kind, 0 one GemmEx per expert (no grouped
				* call for these types, or TERN_MOE_GROUPED=0) */
	size_t moe_chunk;      /* most assignments per grouped chunk
				* (TERN_MOE_CHUNK, for tests; 0: no cap) */
	void *grp_ws;          /* host: the grouped path's staging */
	size_t grp_ws_bytes;
	int ffn_half;          /* gpu_swiglu_ffn's bf16 prefill path (0:
				* TERN_FFN_HALF=0, the composition) */
};

void *gpu_cuda_stream(struct gpu *g)
{
	const struct cuda_state *st = g->priv;

	return st ? (void *)st->stream : NULL;
}

int gpu_cuda_device(struct gpu *g)
{
	const struct cuda_state *st = g->priv;

	return st ? st->device : -1;
}

void *gpu_cuda_blas(struct gpu *g)
{
	const struct cuda_state *st = g->priv;

	return st ? (void *)st->blas : NULL;
}

static struct cuda_state *cst(struct gpu *g)
{
	return (struct cuda_state *)g->priv;
}

/* ---- discovery --------------------------------------------------------- */

int gpu_cuda_device_count(int *n, struct diag *d)
{
	cudaError_t err = cudaGetDeviceCount(n);

	if (err != cudaSuccess) {
		/* no driver, no GPU, driver too old...: a CUDA build on a
		 * machine that cannot run it.  Clear the error state. */
		(void)cudaGetLastError();
		*n = 0;
		diag_fail(d, GPU_E_NODEVICE, "no CUDA device: %s",
			  cudaGetErrorString(err));
	}
	return 0;
}

int gpu_cuda_device_name(int dev, char *name, size_t cap, struct diag *d)
{
	struct cudaDeviceProp prop;

	CUDA_TRY(cudaGetDeviceProperties(&prop, dev));
	snprintf(name, cap, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major,
		 prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024));
	return 0;
}

int gpu_cuda_selftest(struct diag *d)
{
	enum { N = 1000 };
	float hx[N], hy[N];
	float *dx = NULL, *dy = NULL;
	int i, rc = 0;

	for (i = 0; i < N; i++) {
		hx[i] = (float)i;
		hy[i] = 1.0f;
	}
	CUDA_TRY(cudaMalloc((void **)&dx, sizeof hx));
	if (cudaMalloc((void **)&dy, sizeof hy) != cudaSuccess) {
		cudaFree(dx);
		return diag_fail(d, GPU_E_NOMEM, "cudaMalloc of %zu bytes failed", sizeof hy);
	}
	if (cudaMemcpy(dx, hx, sizeof hx, cudaMemcpyHostToDevice) != cudaSuccess ||
	    cudaMemcpy(dy, hy, sizeof hy, cudaMemcpyHostToDevice) != cudaSuccess ||
	    gpu_cuda_launch_axpy(NULL, 2.0f, dx, dy, N) != 0 ||
	    cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "CUDA self-test: %s",
			       cudaGetErrorString(cudaGetLastError()));
	}
	cudaFree(dx);
	cudaFree(dy);
	if (rc)
		return rc;
	for (i = 0; i < N; i++)
		if (hy[i] != 2.0f * (float)i + 1.0f)
			return diag_fail(d, GPU_E_DEVICE,
					 "CUDA self-test: y[%d] = %g, expected %g", i,
					 (double)hy[i], 2.0 * i + 1.0);
	return 0;
}

/* ---- handle ------------------------------------------------------------ */

static void state_free(struct cuda_state *st)
{
	if (!st)
		return;
	if (st->blas)
		cublasDestroy(st->blas);
	if (st->stream)
		cudaStreamDestroy(st->stream);
	cudaFree(st->half_ws);
	cudaFree(st->att_ws);
	free(st->host_ws);
	free(st->grp_ws);
	if (st->moe_err)
		cudaFreeHost(st->moe_err);
	free(st);
}

static int cuda_open(struct gpu *g, const struct gpu_params *p, struct diag *d)
{
	struct cuda_state *st;
	char name[80];
	int n = 0, rc;
	cudaError_t err = cudaGetDeviceCount(&n);

	if (err != cudaSuccess || n == 0) {
		(void)cudaGetLastError();
		return diag_fail(d, GPU_E_NODEVICE, "no CUDA device: %s",
				 err != cudaSuccess ? cudaGetErrorString(err) :
						      "none found");
	}
	if (p->device < 0 || p->device >= n)
		return diag_fail(d, GPU_E_NODEVICE,
				 "CUDA device %d requested, %d present", p->device, n);
	st = calloc(1, sizeof *st);
	if (!st)
		return diag_fail(d, GPU_E_NOMEM, "cuda backend: out of memory");
	st->device = p->device;
	{
		const long chunk = tern_switch_long("TERN_MOE_CHUNK");

		st->grouped = tern_switch_on("TERN_MOE_GROUPED");
		st->moe_chunk = chunk > 0 ? (size_t)chunk : 0;
		st->ffn_half = tern_switch_on("TERN_FFN_HALF");
	}
	rc = 0;
	if (cudaSetDevice(st->device) != cudaSuccess ||
	    cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking) !=
		    cudaSuccess) {
		cudaError_t e2 = cudaGetLastError();

		rc = diag_fail(d, GPU_E_NODEVICE, "CUDA device %d unusable: %s",
			       st->device, cudaGetErrorString(e2));
	} else {
		cublasStatus_t bs = cublasCreate(&st->blas);

		if (bs != CUBLAS_STATUS_SUCCESS) {
			st->blas = NULL;
			rc = diag_fail(d, GPU_E_DEVICE, "cublasCreate: %s",
				       cublasGetStatusString(bs));
		} else if ((bs = cublasSetStream(st->blas, st->stream)) !=
			   CUBLAS_STATUS_SUCCESS) {
			rc = diag_fail(d, GPU_E_DEVICE, "cublasSetStream: %s",
				       cublasGetStatusString(bs));
		}
	}
	if (rc == 0) {
		void *hp = NULL, *dp = NULL;
		cudaError_t e2 = cudaHostAlloc(&hp, 4 * sizeof(int), cudaHostAllocMapped);

		if (e2 == cudaSuccess) {
			st->moe_err = (int *)hp;
			memset(hp, 0, 4 * sizeof(int));
			e2 = cudaHostGetDevicePointer(&dp, hp, 0);
		}
		if (e2 != cudaSuccess) {
			(void)cudaGetLastError();
			rc = diag_fail(d, GPU_E_DEVICE,
				       "CUDA device %d: mapped host memory: %s",
				       st->device, cudaGetErrorString(e2));
		}
		st->moe_err_dev = (int *)dp;
	}
	if (rc == 0)
		rc = gpu_cuda_device_name(st->device, name, sizeof name, d);
	if (rc < 0) {
		state_free(st);
		return rc;
	}
	g->priv = st;
	g->n_threads = 1;
	snprintf(g->desc, sizeof g->desc, "cuda:%d %s", st->device, name);
	return 0;
}

static void cuda_close(struct gpu *g)
{
	struct cuda_state *st = cst(g);

	if (!st)
		return;
	cudaSetDevice(st->device);
	cudaStreamSynchronize(st->stream);
	state_free(st);
	g->priv = NULL;
}

static int cuda_sync(struct gpu *g, struct diag *d)
{
	struct cuda_state *st = cst(g);

	CUDA_TRY(cudaSetDevice(st->device));
	CUDA_TRY(cudaStreamSynchronize(st->stream));
	if (st->moe_err[0]) {
		volatile int *e = st->moe_err;
		const int kind = e[0], row = e[1], id = e[2], ne = e[3];

		e[0] = 0;
		if (kind == 2)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_moe_ffn: row %d routed to expert %d twice "
					 "(found on the device; the repeat added nothing)",
					 row, id);
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_moe_ffn: row %d routed to expert %d of %d "
				 "(found on the device; it added nothing)",
				 row, id, ne);
	}
	return 0;
}

/* ---- buffers ----------------------------------------------------------- */

/* cudaMalloc that reports running out of memory as GPU_E_NOMEM with the
 * sizes involved (and clears the error, so the handle stays usable). */
static int dev_alloc(void **p, size_t bytes, const char *what, struct diag *d)
{
	cudaError_t err = cudaMalloc(p, bytes);

	if (err == cudaErrorMemoryAllocation) {
		size_t fr = 0, tot = 0;

		(void)cudaGetLastError();
		*p = NULL;
		if (cudaMemGetInfo(&fr, &tot) != cudaSuccess)
			(void)cudaGetLastError();
		return diag_fail(d, GPU_E_NOMEM,
				 "cuda: cannot allocate %zu bytes for %s "
				 "(%zu MiB free of %zu MiB on the device)",
				 bytes, what, fr >> 20, tot >> 20);
	}
	if (err != cudaSuccess)
		*p = NULL;
	CUDA_TRY(err);
	return 0;
}

static int cuda_buf_alloc(struct gpu *g, struct gpu_buf *b, struct diag *d)
{
	CUDA_TRY(cudaSetDevice(cst(g)->device));
	b->data = NULL;
	if (b->bytes == 0)
		return 0;
	return dev_alloc(&b->data, b->bytes, "a buffer", d);
}

static void cuda_buf_release(struct gpu *g, struct gpu_buf *b)
{
	(void)g;
	/* cudaFree waits for work using the buffer; nothing to report to */
	if (b->data)
		cudaFree(b->data);
	b->data = NULL;
}

static int cuda_buf_write(struct gpu *g, struct gpu_buf *b, size_t off,
			  const void *src, size_t n, struct diag *d)
{
	struct cuda_state *st = cst(g);

	CUDA_TRY(cudaMemcpyAsync((char *)b->data + off, src, n,
				 cudaMemcpyHostToDevice, st->stream));
	CUDA_TRY(cudaStreamSynchronize(st->stream));
	return 0;
}

static int cuda_buf_read(struct gpu *g, const struct gpu_buf *b, size_t off,
			 void *dst, size_t n, struct diag *d)
{
	struct cuda_state *st = cst(g);

	CUDA_TRY(cudaMemcpyAsync(dst, (const char *)b->data + off, n,
				 cudaMemcpyDeviceToHost, st->stream));
	CUDA_TRY(cudaStreamSynchronize(st->stream));
	return 0;
}

static int cuda_buf_zero(struct gpu *g, struct gpu_buf *b, struct diag *d)
{
	if (b->bytes == 0)
		return 0;
	CUDA_TRY(cudaMemsetAsync(b->data, 0, b->bytes, cst(g)->stream));
	return 0;
}

static int cuda_copy(struct gpu *g, struct gpu_buf *dst, size_t dst_off,
		     const struct gpu_buf *src, size_t src_off, size_t n,
		     struct diag *d)
{
	CUDA_TRY(cudaMemcpyAsync((char *)dst->data + dst_off,
				 (const char *)src->data + src_off, n,
				 cudaMemcpyDeviceToDevice, cst(g)->stream));
	return 0;
}

/* ---- matmul ------------------------------------------------------------ */

/* Grow a device scratch area *p of *cap bytes to at least `bytes`. */
static int ws_reserve(struct cuda_state *st, void **p, size_t *cap, size_t bytes,
		      const char *what, struct diag *d)
{
	int rc;

	enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;

	if (*cap >= bytes)
		return 0;
	CUDA_TRY(cudaStreamIsCapturing(st->stream, &cs));
	if (cs != cudaStreamCaptureStatusNone)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "%s would grow to %zu bytes while a graph is "
				 "recorded (run the sequence unrecorded first)",
				 what, bytes);
	st->ws_gen++;
	CUDA_TRY(cudaStreamSynchronize(st->stream)); /* old area may be in use */
	CUDA_TRY(cudaFree(*p));
	*p = NULL;
	*cap = 0;
	rc = dev_alloc(p, bytes, what, d);
	if (rc < 0)
		return rc;
	*cap = bytes;
	return 0;
}

/* Bytes of split-K attention partials for n_rows rows of n_head heads in
 * n_split splits (o [.., head_dim] then (m, l)); 0 without splits. */
static size_t att_ws_need(size_t n_rows, size_t n_head, size_t n_split,
			  size_t head_dim)
{
	return n_split > 1 ? n_rows * n_head * n_split * (head_dim + 2) * sizeof(float)
			   : 0;
}

/* ---- MoE experts as grouped GEMMs (the host-planned path) ----------------
 *
 * Above the device path's size (prefill), gpu_moe_ffn reads the routing
 * back and sorts the assignments by expert (rows ascending within one, as
 * gpu/cpu/moe.c).  For bf16 experts the sorted list is then cut into
 * chunks of at most `ac` assignments (as many as gpu_moe_ffn's scratch
 * holds, at most the call's rows; an expert's rows may span several
 * chunks), and each chunk runs as
 *   gather its x rows, as half          (1 launch)
 *   gate and up of every expert in it   (1 grouped cuBLAS call)
 *   silu(gate) * up, as half            (1 launch)
 *   down of every expert in it          (1 grouped cuBLAS call)
 *   each touched row += weight * output (1 launch; a row's terms in
 *                                        ascending expert order)
 * instead of six launches per expert.  Each row's sum is in gpu/cpu/moe.c's
 * order (from zero, experts ascending) wherever the chunks are cut (an
 * expert cut in two runs as two products of other sizes, for which
 * cuBLAS may pick other kernels: its last bits may differ).
 *
 * Device layout inside the scratch (f32 elements, areas 64-aligned):
 *   ptr  void * [9 * n_expert]: A, B, C arrays of the gate/up call (2 P
 *        each), then of the down call (P each), P <= n_expert problems
 *   li   int32 [5 ac + 1]: slot's x row, slot's weight (f32 bits),
 *        touched rows, their first entry in slot (R + 1), slots per row
 *   hg, hu [ac, n_ff], yo [ac, dim] in bf16: cuBLAS's grouped call
 *   writes half results only (f32 accumulation; f32 output is refused
 *   with NOT_SUPPORTED), so the gate, up and expert outputs are rounded
 *   once more than on the other paths (as transformers' bf16 modules
 *   round every product); 1e-2 of the CPU in the tests, like every
 *   half-weight cuBLAS path.  f16 experts keep the per-expert path (f16
 *   results could overflow).
 * Each chunk's lists and its per-expert pieces come from
 * gpu_moe_plan_chunk (gpu/moe_plan.h, tested on the CPU in cpu_ops);
 * host staging: st->grp_ws (see moe_ffn_grouped). */
struct moe_grp {
	size_t ac;
	void **ptr;
	int32_t *li;
	uint16_t *hg, *hu, *yo;
};

static size_t al64(size_t n)
{
	return (n + 63) / 64 * 64;
}

/* Assignments per chunk that `elems` floats of scratch hold (0: none). */
static size_t moe_grp_fit(size_t elems, size_t n_expert, size_t dim,
			  size_t n_ff)
{
	const size_t fixed = al64(18 * n_expert) + 5 * 64 + 64;
	/* 5 list entries, n_ff + dim halves; the odd half and each area's
	 * 64-float alignment are within the +2 and `fixed` */
	const size_t per = n_ff + dim / 2 + 7;

	return elems > fixed ? (elems - fixed) / per : 0;
}

static void moe_grp_layout(float *base, size_t ac, size_t n_expert,
			   size_t dim, size_t n_ff, struct moe_grp *L)
{
	size_t o = 0;

	L->ac = ac;
	L->ptr = (void **)(void *)base;
	o += al64(18 * n_expert);
	L->li = (int32_t *)(void *)(base + o);
	o += al64(5 * ac + 1);
	L->hg = (uint16_t *)(void *)(base + o);
	o += al64((ac * n_ff + 1) / 2);
	L->hu = (uint16_t *)(void *)(base + o);
	o += al64((ac * n_ff + 1) / 2);
	L->yo = (uint16_t *)(void *)(base + o);
}

/* Bytes of MoE host lists for nk = rows x top_k assignments of n_expert
 * experts (ids, weights, rows, row weights; expert starts and the sort's
 * cursors). */
static size_t moe_host_need(size_t nk, size_t n_expert)
{
	return nk * 4 * sizeof(int32_t) + (2 * n_expert + 1) * sizeof(size_t);
}

/* Grow a host area (*p, *cap bytes: the MoE lists or the grouped path's
 * staging) to at least `bytes` (kept afterwards). */
static int host_reserve(struct cuda_state *st, void **p, size_t *cap,
			size_t bytes, const char *what, struct diag *d)
{
	void *q;

	if (*cap >= bytes)
		return 0;
	/* copies from the old area may still be queued */
	CUDA_TRY(cudaStreamSynchronize(st->stream));
	q = realloc(*p, bytes);
	if (!q)
		return diag_fail(d, GPU_E_NOMEM, "%s: %zu bytes of host scratch",
				 what, bytes);
	*p = q;
	*cap = bytes;
	return 0;
}

/* out [n, rows] (type out_ty) = xh [n, k] . W[rows, k]^T, row-major
 * device arrays, W and xh of type ty, by one cuBLAS GemmEx with f32
 * accumulation (sizes already checked against INT_MAX). */
static int gemm_ex(struct cuda_state *st, cudaDataType_t ty,
		   cudaDataType_t out_ty, const void *w, const void *xh,
		   void *out, size_t n, size_t k, size_t rows, struct diag *d)
{
	const float one = 1.0f, zero = 0.0f;

	CUBLAS_TRY(cublasGemmEx(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows,
				(int)n, (int)k, &one, w, ty, (int)k, xh, ty,
				(int)k, &zero, out, out_ty, (int)rows,
				CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	return 0;
}

/* out [n, rows] = xh [n, k] . W[rows, k]^T (+ bias) in f32 by gemm_ex, xh
 * already in W's type (f16/bf16), then the bias kernel. */
static int gemm_half(struct cuda_state *st, float *out, const void *xh,
		     const struct gpu_buf *w, const struct gpu_buf *bias,
		     size_t n, size_t k, size_t rows, struct diag *d)
{
	const cudaDataType_t ty = w->dtype == GPU_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
	int rc = gemm_ex(st, ty, CUDA_R_32F, w->data, xh, out, n, k, rows, d);

	if (rc < 0)
		return rc;
	if (bias)
		CUDA_TRY((cudaError_t)gpu_cuda_launch_add_bias(st->stream, out,
							       bias->data,
							       (int)bias->dtype, n,
							       rows));
	return 0;
}

/* out [n, rows] = x [n, k] . W[rows, k]^T (+ bias) on device pointers.
 * f16/bf16 W and n <= GEMV_MAX_N: the GEMV kernel (decode).  Otherwise
 * cuBLAS with f32 accumulation: f32 W by SGEMM; f16/bf16 W by GemmEx
 * after converting x to W's type (tensor cores; x loses its low mantissa
 * bits, within the 1e-2 bound of half-precision weight paths), then a
 * bias kernel. */
static int mm_raw(struct gpu *g, float *out, const float *x,
		  const struct gpu_buf *w, const struct gpu_buf *bias, size_t n,
		  size_t k, size_t rows, struct diag *d)
{
	struct cuda_state *st = cst(g);
	const int wt = (int)w->dtype;
	const void *bp = bias ? bias->data : NULL;
	const int bwt = bias ? (int)bias->dtype : CUDA_WT_F32;
	const float one = 1.0f, zero = 0.0f;
	int rc;

	if (wt != CUDA_WT_F32 && n <= GPU_CUDA_GEMV_MAX_N) {
		CUDA_TRY((cudaError_t)gpu_cuda_launch_gemv(st->stream, out, x, w->data,
							   wt, bp, bwt, n, k, rows));
		return 0;
	}
	if (n > INT_MAX || k > INT_MAX || rows > INT_MAX)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "gpu_matmul: %zu x %zu x %zu exceeds cuBLAS's int sizes",
				 n, k, rows);
	if (wt != CUDA_WT_F32) {
		rc = ws_reserve(st, &st->half_ws, &st->half_ws_bytes, n * k * 2,
				"matmul scratch", d);
		if (rc < 0)
			return rc;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_f32_to_half(st->stream, st->half_ws,
								  wt, x, n * k));
		return gemm_half(st, out, st->half_ws, w, bias, n, k, rows, d);
	}
	CUBLAS_TRY(cublasSgemm(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows,
			       (int)n, (int)k, &one, (const float *)w->data,
			       (int)k, x, (int)k, &zero, out, (int)rows));
	if (bias)
		CUDA_TRY((cudaError_t)gpu_cuda_launch_add_bias(st->stream, out, bp,
							       bwt, n, rows));
	return 0;
}

static int cuda_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		       const struct gpu_buf *w, const struct gpu_buf *bias,
		       size_t n, size_t k, size_t rows, struct diag *d)
{
	return mm_raw(g, (float *)out->data, (const float *)x->data, w, bias, n,
		      k, rows, d);
}

/* gpu_matmul_multi (weights of one dtype sharing x; gpu.c dropped empty
 * parts): f16/bf16 W and n <= GEMV_MAX_N: one GEMV launch over every
 * part's rows; f16/bf16 W above: x converted once, then one GemmEx (+
 * bias) per part; f32 W: mm_raw per part (SGEMM reads x as it is). */
static int cuda_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n,
			     size_t k, const struct gpu_matmul_part *parts,
			     size_t n_parts, struct diag *d)
{
	struct cuda_state *st = cst(g);
	const int wt = (int)parts[0].w->dtype;
	size_t j;
	int rc;

	if (wt != CUDA_WT_F32 && n <= GPU_CUDA_GEMV_MAX_N &&
	    n_parts <= GPU_CUDA_GEMV_MAX_PARTS) {
		struct gpu_cuda_gemv_part gp[GPU_CUDA_GEMV_MAX_PARTS];

		for (j = 0; j < n_parts; j++) {
			gp[j].out = (float *)parts[j].out->data;
			gp[j].w = parts[j].w->data;
			gp[j].bias = parts[j].bias ? parts[j].bias->data : NULL;
			gp[j].bias_wt = parts[j].bias ? (int)parts[j].bias->dtype :
				       CUDA_WT_F32;
			gp[j].rows = parts[j].rows;
		}
		CUDA_TRY((cudaError_t)gpu_cuda_launch_gemv_multi(
			st->stream, (const float *)x->data, wt, n, k, gp,
			(int)n_parts));
		return 0;
	}
	if (wt == CUDA_WT_F32) {
		for (j = 0; j < n_parts; j++) {
			rc = mm_raw(g, (float *)parts[j].out->data,
				    (const float *)x->data, parts[j].w,
				    parts[j].bias, n, k, parts[j].rows, d);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	for (j = 0; j < n_parts; j++)
		if (n > INT_MAX || k > INT_MAX || parts[j].rows > INT_MAX)
			return diag_fail(d, GPU_E_UNSUPPORTED,
					 "gpu_matmul_multi: %zu x %zu x %zu exceeds "
					 "cuBLAS's int sizes", n, k, parts[j].rows);
	rc = ws_reserve(st, &st->half_ws, &st->half_ws_bytes, n * k * 2,
			"matmul scratch", d);
	if (rc < 0)
		return rc;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_f32_to_half(st->stream, st->half_ws, wt,
							  (const float *)x->data,
							  n * k));
	for (j = 0; j < n_parts; j++) {
		rc = gemm_half(st, (float *)parts[j].out->data, st->half_ws,
			       parts[j].w, parts[j].bias, n, k, parts[j].rows, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- small ops --------------------------------------------------------- */

static int cuda_get_rows(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *table, size_t n_rows_table,
			 const struct gpu_buf *ids, size_t ids_offset, size_t n,
			 size_t dim, struct diag *d)
{
	if (dim == 0)
		return 0;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_get_rows(
		cst(g)->stream, (float *)out->data, table->data, (int)table->dtype,
		n_rows_table, (const int32_t *)ids->data + ids_offset, n, dim));
	return 0;
}

static int cuda_rmsnorm(struct gpu *g, struct gpu_buf *out,
			const struct gpu_buf *x, const struct gpu_buf *w,
			size_t n, size_t dim, float eps, struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_rmsnorm(cst(g)->stream,
						      (float *)out->data,
						      (const float *)x->data, w->data,
						      (int)w->dtype, n, dim, eps));
	return 0;
}

static int cuda_add_rmsnorm(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
			    const struct gpu_buf *o, const struct gpu_buf *w,
			    size_t n, size_t dim, float eps, struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_add_rmsnorm(
		cst(g)->stream, (float *)x->data, (float *)xn->data,
		(const float *)o->data, w->data, (int)w->dtype, n, dim, eps));
	return 0;
}

/* Cumulative MRoPE section ends (the kernels' form of rp->mrope_section). */
static const int *mrope_ends(const struct gpu_rope *rp, int sec[3])
{
	if (!rp->mrope_section)
		return NULL;
	sec[0] = rp->mrope_section[0];
	sec[1] = sec[0] + rp->mrope_section[1];
	sec[2] = sec[1] + rp->mrope_section[2];
	return sec;
}

static int cuda_rope(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
		     size_t head_dim, const struct gpu_buf *pos,
		     const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
		     struct diag *d)
{
	int sec[3];

	CUDA_TRY((cudaError_t)gpu_cuda_launch_rope(
		cst(g)->stream, (float *)x->data, n, n_head, head_dim, rp->n_rot,
		(const int32_t *)pos->data, (const float *)inv_freq->data,
		mrope_ends(rp, sec), rp->attn_factor));
	return 0;
}

void gpu_cuda_kv_fill(struct gpu_cuda_kv *kv, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b)
{
	kv->k = pool->k->data;
	kv->v = pool->v->data;
	kv->f16 = pool->k_bits ? 2 : pool->k->dtype == GPU_DTYPE_F16;
	kv->kb = pool->k_bits;
	kv->vb = pool->v_bits;
	kv->ks = pool->k_bits ? pool->k_scale->data : NULL;
	kv->vs = pool->k_bits ? pool->v_scale->data : NULL;
	kv->n_pages = pool->n_pages;
	kv->page_size = pool->page_size;
	kv->n_head_kv = pool->n_head_kv;
	kv->head_dim = pool->head_dim;
	kv->row_seq = (const int32_t *)b->row_seq->data;
	kv->row_pos = (const int32_t *)b->row_pos->data;
	kv->page_table = (const int32_t *)b->page_table->data;
	kv->n_rows = b->n_rows;
	kv->n_seq = b->n_seq;
	kv->max_pages = b->max_pages;
}

static int cuda_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
			 const struct gpu_kv_batch *b, const struct gpu_buf *k,
			 const struct gpu_buf *v, struct diag *d)
{
	struct gpu_cuda_kv kv;

	gpu_cuda_kv_fill(&kv, pool, b);
	CUDA_TRY((cudaError_t)gpu_cuda_launch_kv_store(cst(g)->stream, &kv,
						       (const float *)k->data,
						       (const float *)v->data));
	return 0;
}

static int cuda_rope_kv_store(struct gpu *g, struct gpu_buf *q,
			      struct gpu_buf *k, const struct gpu_buf *v,
			      size_t n_head, const struct gpu_buf *pos,
			      const struct gpu_buf *inv_freq,
			      const struct gpu_rope *rp,
			      const struct gpu_kv_pool *pool,
			      const struct gpu_kv_batch *b, struct diag *d)
{
	struct gpu_cuda_kv kv;
	int sec[3];

	const void *qn = NULL, *kn = NULL;
	int nwt = CUDA_WT_F32;

	gpu_cuda_kv_fill(&kv, pool, b);
	if (rp->q_norm && rp->q_norm->dtype == rp->k_norm->dtype) {
		/* inside the launch */
		qn = rp->q_norm->data;
		kn = rp->k_norm->data;
		nwt = (int)rp->q_norm->dtype;
	} else if (rp->q_norm) {
		/* weights of two types: two norm launches first */
		CUDA_TRY((cudaError_t)gpu_cuda_launch_rmsnorm(
			cst(g)->stream, (float *)q->data, (const float *)q->data,
			rp->q_norm->data, (int)rp->q_norm->dtype, b->n_rows * n_head,
			pool->head_dim, rp->norm_eps));
		CUDA_TRY((cudaError_t)gpu_cuda_launch_rmsnorm(
			cst(g)->stream, (float *)k->data, (const float *)k->data,
			rp->k_norm->data, (int)rp->k_norm->dtype,
			b->n_rows * pool->n_head_kv, pool->head_dim, rp->norm_eps));
	}
	CUDA_TRY((cudaError_t)gpu_cuda_launch_rope_kv_store(
		cst(g)->stream, &kv, (float *)q->data, (float *)k->data,
		(const float *)v->data, n_head, rp->n_rot,
		(const int32_t *)pos->data, (const float *)inv_freq->data,
		mrope_ends(rp, sec), rp->attn_factor, qn, kn, nwt, rp->norm_eps));
	return 0;
}

int gpu_cuda_attention_rot(struct gpu *g, struct gpu_buf *out,
			   const struct gpu_buf *q, const struct gpu_kv_pool *pool,
			   const struct gpu_kv_batch *b, size_t n_head,
			   float scale, size_t window,
			   const struct gpu_cuda_att_rot *rot, int *rotated,
			   struct diag *d)
{
	struct cuda_state *st = cst(g);
	struct gpu_cuda_kv kv;
	size_t span = b->max_pages * pool->page_size, n_split, need;
	float *po = NULL, *pml = NULL;
	int rc;

	if (rotated)
		*rotated = 0;

	if (b->n_rows * n_head > UINT_MAX)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "gpu_attention: %zu rows x %zu heads", b->n_rows,
				 n_head);
	if (window && window < span)
		span = window;
	n_split = gpu_cuda_attention_splits(b->n_rows, pool->n_head_kv, span,
					    pool->head_dim,
					    pool->k_bits ? 2 :
					    pool->k->dtype == GPU_DTYPE_F16);
	if (n_split > 1) {
		need = att_ws_need(b->n_rows, n_head, n_split, pool->head_dim);
		rc = ws_reserve(st, (void **)&st->att_ws, &st->att_ws_bytes, need,
				"attention scratch", d);
		if (rc < 0)
			return rc;
		po = st->att_ws;
		pml = po + b->n_rows * n_head * n_split * pool->head_dim;
	}
	gpu_cuda_kv_fill(&kv, pool, b);
	CUDA_TRY((cudaError_t)gpu_cuda_launch_attention(
		st->stream, &kv, (float *)out->data, (const float *)q->data,
		n_head, scale, window, n_split, b->single_seq ? 1 : 0, po, pml,
		rot, rotated));
	return 0;
}

static int cuda_attention(struct gpu *g, struct gpu_buf *out,
			  const struct gpu_buf *q, const struct gpu_kv_pool *pool,
			  const struct gpu_kv_batch *b, size_t n_head,
			  float scale, size_t window, struct diag *d)
{
	return gpu_cuda_attention_rot(g, out, q, pool, b, n_head, scale, window,
				      NULL, NULL, d);
}

static int cuda_swiglu(struct gpu *g, struct gpu_buf *out,
		       const struct gpu_buf *gate, const struct gpu_buf *up,
		       size_t n, struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_swiglu(cst(g)->stream,
						     (float *)out->data,
						     (const float *)gate->data,
						     (const float *)up->data, n));
	return 0;
}

int gpu_cuda_fuse_swiglu(void)
{
	static int v = -1;

	if (v < 0)
		v = tern_switch_on("TERN_FUSE_SWIGLU");
	return v;
}

/* gpu_matmul_swiglu: one GEMV launch for one row of half weights, else
 * matmul_multi + the swiglu kernel. */
static int cuda_matmul_swiglu(struct gpu *g, struct gpu_buf *out,
			      struct gpu_buf *up, const struct gpu_buf *x,
			      const struct gpu_buf *w_gate,
			      const struct gpu_buf *w_up, size_t n, size_t k,
			      size_t rows, struct diag *d)
{
	int rc = gpu_cuda_fuse_swiglu() ?
		gpu_cuda_launch_gemv_swiglu(cst(g)->stream, (float *)out->data,
					    (const float *)x->data,
					    (int)w_gate->dtype, n, k, w_gate->data,
					    w_up->data, rows) : 1;

	if (rc == 0)
		return 0;
	if (rc != 1)
		CUDA_TRY((cudaError_t)rc);
	return gpu_matmul_swiglu_unfused(g, out, up, x, w_gate, w_up, n, k, rows, d);
}

/* gpu_swiglu_ffn.  bf16 weights and more rows than the GEMV takes
 * (prefill): x converted to bf16 once; the gate and up products by GemmEx
 * with bf16 outputs into the first halves of gate's and up's bytes; the
 * SwiGLU in bf16 in place over gate's; the down GEMM reads that and
 * writes out in f32.  Against the composition (x -> bf16, two f32
 * products written and read back, an f32 SwiGLU, its conversion to bf16
 * for the down GEMM) this moves 16 bytes fewer per element of [n, n_ff]:
 * 0.47 GB a layer at 2048 rows and n_ff 14336, 0.16 ms a layer on an
 * H100 SXM (Llama-3-8B shape, prefill 2048: 32,870 -> 35,805 tok/s).
 * f16 weights keep the composition (a half product could overflow
 * 65504), as do f32 weights, batches of up to GPU_CUDA_GEMV_MAX_N rows
 * (the GEMV) and TERN_FFN_HALF=0. */
static int cuda_swiglu_ffn(struct gpu *g, struct gpu_buf *out,
			   struct gpu_buf *gate, struct gpu_buf *up,
			   const struct gpu_buf *x, const struct gpu_buf *w_gate,
			   const struct gpu_buf *w_up,
			   const struct gpu_buf *w_down, size_t n, size_t k,
			   size_t n_ff, struct diag *d)
{
	struct cuda_state *st = cst(g);
	int rc;

	if (!st->ffn_half || w_gate->dtype != GPU_DTYPE_BF16 ||
	    n <= GPU_CUDA_GEMV_MAX_N || n > INT_MAX || k > INT_MAX ||
	    n_ff > INT_MAX)
		return gpu_swiglu_ffn_composed(g, out, gate, up, x, w_gate, w_up,
					       w_down, n, k, n_ff, d);
	rc = ws_reserve(st, &st->half_ws, &st->half_ws_bytes, n * k * 2,
			"matmul scratch", d);
	if (rc < 0)
		return rc;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_f32_to_half(
		st->stream, st->half_ws, CUDA_WT_BF16, (const float *)x->data,
		n * k));
	rc = gemm_ex(st, CUDA_R_16BF, CUDA_R_16BF, w_gate->data, st->half_ws,
		     gate->data, n, k, n_ff, d);
	if (rc == 0)
		rc = gemm_ex(st, CUDA_R_16BF, CUDA_R_16BF, w_up->data, st->half_ws,
			     up->data, n, k, n_ff, d);
	if (rc < 0)
		return rc;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_swiglu_half(
		st->stream, gate->data, CUDA_WT_BF16, gate->data, up->data,
		CUDA_WT_BF16, n * n_ff));
	return gemm_half(st, (float *)out->data, gate->data, w_down, NULL, n, n_ff,
			 k, d);
}

static int cuda_add(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
		    const struct gpu_buf *b, size_t n, struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_add(cst(g)->stream, (float *)out->data,
						  (const float *)a->data,
						  (const float *)b->data, n));
	return 0;
}

static int cuda_add_gated(struct gpu *g, struct gpu_buf *out,
			  const struct gpu_buf *y, const struct gpu_buf *gate,
			  size_t n, size_t dim, struct diag *d)
{
	if (dim == 0)
		return 0;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_add_gated(cst(g)->stream,
							(float *)out->data,
							(const float *)y->data,
							(const float *)gate->data,
							n, dim));
	return 0;
}

static int cuda_softmax(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
			struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_softmax(cst(g)->stream,
						      (float *)x->data, n, cols));
	return 0;
}

static int cuda_moe_route(struct gpu *g, const struct gpu_buf *logits,
			  struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
			  size_t n_expert, size_t top_k, bool renorm,
			  struct diag *d)
{
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_route(
		cst(g)->stream, (const float *)logits->data, (int32_t *)ids->data,
		(float *)weights->data, n, n_expert, top_k, renorm ? 1 : 0));
	return 0;
}

/* ---- MoE dispatch ------------------------------------------------------
 * Two paths.  The device path (cuda_moe_recordable: few rows, f16/bf16
 * experts — moe_ffn_device below — or EXL3 experts of one format per
 * kind — gpu_cuda_exl3_moe) plans and dispatches on the device and reads
 * nothing back.  The host path, for everything else (prefill), follows.
 * Same grouping and summation order as gpu/cpu/moe.c: the routing (ids,
 * weights, n * top_k values) is copied to the host, which validates every
 * expert id (GPU_E_INVALID, nothing computed) and builds, per expert in
 * order, the list of rows routed to it.  bf16 experts then run as grouped
 * GEMMs, a few launches per chunk of the sorted list (moe_ffn_grouped,
 * "MoE experts as grouped GEMMs" above).  f32, f16 and EXL3 experts, and
 * a scratch too small for one assignment of the grouped layout, take the
 * lists back to the rows/wts part of the caller's
 * scratch in one copy each, then per expert with m > 0 rows: gather x
 * rows -> xg [m, dim]; hg, hu [m, n_ff] = xg . gate^T, xg . up^T; hg =
 * silu(hg) * hu; yo [m, dim] = hg . down^T; out[rows] += wts * yo.  EXL3
 * experts (ex->xgate...) run the three products with
 * gpu_cuda_exl3_matmul_raw (fused GEMV for m <= 32 rows, dequantise +
 * cuBLAS above, in the EXL3 workspace sized at upload) on the same
 * stream.  That per-expert path's scratch layout is the CPU's:
 *   xg [n, dim] | hg [n, n_ff] | hu [n, n_ff] | yo [n, dim] |
 *   rows i32 [n * top_k] | wts f32 [n * top_k]
 * The copy to the host synchronises the stream (once per call). */
/* gpu_moe_ffn_recordable (gpu.c checked the set): the device path's
 * limits (gpu/cuda/kernels.h). */
static bool cuda_moe_recordable(struct gpu *g, const struct gpu_moe_experts *ex,
				size_t n, size_t dim, size_t top_k)
{
	enum gpu_dtype wt;
	size_t e;

	(void)g;
	if (ex->xgate)
		return gpu_cuda_exl3_moe_ok(ex, n, dim, top_k);
	if (!ex->gate || ex->n_expert > GPU_CUDA_MOE_MAX_EXPERTS || top_k > 8 ||
	    n > GPU_MOE_DEVICE_MAX_ASSIGN / top_k || dim % 8 || ex->n_ff % 8 ||
	    dim == 0 || ex->n_ff == 0)
		return false;
	wt = ex->gate[0]->dtype;
	if (wt != GPU_DTYPE_BF16 && wt != GPU_DTYPE_F16)
		return false;
	for (e = 0; e < ex->n_expert; e++) {
		const struct gpu_buf *b[3] = { ex->gate[e], ex->up[e], ex->down[e] };

		for (int i = 0; i < 3; i++)
			if (b[i]->dtype != wt || (uintptr_t)b[i]->data % 16)
				return false;
	}
	return true;
}

/* Device path (gpu/cuda/kernels.h, "MoE experts dispatched on the
 * device"): plan, gather, gate/up + SwiGLU, down, combine — five launches,
 * nothing read back.  Scratch: xg [A, dim] | h [A, n_ff] | y [A, dim] |
 * lists (int32). */
static int moe_ffn_device(struct cuda_state *st, struct gpu_buf *out,
			  const struct gpu_buf *x, const struct gpu_buf *ids,
			  const struct gpu_buf *weights,
			  const struct gpu_moe_experts *ex, size_t n, size_t dim,
			  size_t top_k, struct gpu_buf *scratch, struct diag *d)
{
	const size_t A = n * top_k, ne = ex->n_expert, n_ff = ex->n_ff;
	const int wt = (int)ex->gate[0]->dtype;
	float *xg = (float *)scratch->data;
	float *h = xg + A * dim, *y = h + A * n_ff;
	int32_t *lists = (int32_t *)(void *)(y + A * dim);
	const void *wg[GPU_CUDA_MOE_MAX_EXPERTS], *wu[GPU_CUDA_MOE_MAX_EXPERTS];
	const void *wd[GPU_CUDA_MOE_MAX_EXPERTS];
	size_t e;

	for (e = 0; e < ne; e++) {
		wg[e] = ex->gate[e]->data;
		wu[e] = ex->up[e]->data;
		wd[e] = ex->down[e]->data;
	}
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_plan(
		st->stream, (const int32_t *)ids->data, (const float *)weights->data,
		n, top_k, ne, lists, st->moe_err_dev));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_gather_rows(
		st->stream, xg, (const float *)x->data, lists, A, dim));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_gemv(st->stream, wt, 1, wg, wu,
							ne, xg, h, lists, A, dim,
							n_ff));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_gemv(st->stream, wt, 0, wd, NULL,
							ne, h, y, lists, A, n_ff,
							dim));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_combine(
		st->stream, (float *)out->data, y, lists, n, top_k, dim));
	(void)d;
	return 0;
}

/* Whether the grouped path takes these experts: bf16 weights only (its
 * products are written in the weights' type; f16's range, 65504, could
 * turn a large gate/up or expert output into inf, so f16 experts keep the
 * per-expert path and its f32 outputs). */
static bool moe_grp_ok(const struct gpu_moe_experts *ex)
{
	size_t e;

	if (ex->xgate)
		return false;
	for (e = 0; e < ex->n_expert; e++)
		if (ex->gate[e]->dtype != GPU_DTYPE_BF16 ||
		    ex->up[e]->dtype != GPU_DTYPE_BF16 ||
		    ex->down[e]->dtype != GPU_DTYPE_BF16)
			return false;
	return true;
}

static unsigned long g_grp_chunks, g_grp_calls; /* gpu_cuda_moe_grouped_stats */

void gpu_cuda_moe_grouped_stats(unsigned long *chunks, unsigned long *calls)
{
	if (chunks)
		*chunks = __atomic_load_n(&g_grp_chunks, __ATOMIC_RELAXED);
	if (calls)
		*calls = __atomic_load_n(&g_grp_calls, __ATOMIC_RELAXED);
}

static cudaDataType_t half_type(int wt)
{
	return wt == CUDA_WT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

/* np products C_i [n_i, m_i] = B_i [n_i, k_i] . A_i [m_i, k_i]^T (A: a
 * weight, ld k_i; C of the same half type ty, ld m_i; f32 accumulation),
 * as one grouped cuBLAS call (dA, dB, dC: the pointer arrays on the
 * device) or, once cuBLAS has answered NOT_SUPPORTED (remembered for the
 * handle), one GemmEx each (hA, hB, hC: the same pointers on the host). */
static int gemm_grouped(struct cuda_state *st, cudaDataType_t ty, int np,
			const cublasOperation_t *opT, const cublasOperation_t *opN,
			const int *m, const int *n, const int *k,
			const float *alpha, const float *beta, const int *gs,
			void *const *dA, void *const *dB, void *const *dC,
			void *const *hA, void *const *hB, void *const *hC,
			struct diag *d)
{
	int i, rc;

	if (st->grouped) {
		cublasStatus_t bs = cublasGemmGroupedBatchedEx(
			st->blas, opT, opN, m, n, k, alpha,
			(const void *const *)dA, ty, k, (const void *const *)dB,
			ty, k, beta, dC, ty, m, np, gs,
			CUBLAS_COMPUTE_32F);

		if (bs == CUBLAS_STATUS_SUCCESS) {
			__atomic_add_fetch(&g_grp_calls, 1, __ATOMIC_RELAXED);
			return 0;
		}
		if (bs != CUBLAS_STATUS_NOT_SUPPORTED)
			return diag_fail(d, GPU_E_DEVICE,
					 "cublasGemmGroupedBatchedEx (%d experts' "
					 "products): %s", np,
					 cublasGetStatusString(bs));
		st->grouped = 0;
	}
	for (i = 0; i < np; i++) {
		rc = gemm_ex(st, ty, ty, hA[i], hB[i], hC[i], (size_t)n[i],
			     (size_t)k[i], (size_t)m[i], d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The grouped path of cuda_moe_ffn (bf16 experts, moe_grp_ok): see "MoE
 * experts as grouped GEMMs" above.  h_rows / h_wts / start: the
 * assignments sorted by expert (host).
 *
 * Host staging: every chunk's lists and pointer arrays get their own part
 * of st->grp_ws, which nothing rewrites before the next gpu_moe_ffn has
 * synchronised the stream (its routing read-back) — so the asynchronous
 * copies from it never race a rewrite, whatever the driver does with
 * pageable memory.  The problem-size arrays are read by cuBLAS during
 * each call and reused. */
static int moe_ffn_grouped(struct cuda_state *st, float *out, const float *x,
			   const struct gpu_moe_experts *ex, size_t n,
			   size_t dim, size_t nk, const int32_t *h_rows,
			   const float *h_wts, const size_t *start,
			   const struct moe_grp *L, struct diag *d)
{
	const size_t E = ex->n_expert, n_ff = ex->n_ff, ac = L->ac;
	const size_t n_ch = (nk + ac - 1) / ac;
	const int wgu = (int)ex->gate[0]->dtype, wdn = (int)ex->down[0]->dtype;
	const size_t wide = dim > n_ff ? dim : n_ff;
	/* fixed arrays, counters, then per chunk: lists (5 A + 1 int32,
	 * padded to 8 bytes) and 9 P pointers; sum of P <= E + n_ch - 1 */
	const size_t fixed = 4 * E * sizeof(cublasOperation_t) +
			     11 * E * sizeof(int) + 4 * E * sizeof(float) +
			     E * sizeof(struct gpu_moe_piece) +
			     2 * n * sizeof(int32_t);
	const size_t need = al64(fixed) + (5 * nk + 2 * n_ch) * sizeof(int32_t) +
			    9 * (E + n_ch) * sizeof(void *) + 64;
	cublasOperation_t *opT, *opN;
	int *gm, *gn, *gk, *dm, *dn, *dk, *gs;
	float *alpha, *beta;
	struct gpu_moe_piece *pc;
	int32_t *cnt, *fill;
	char *stage, *xh;
	size_t a, b, e, i;
	int rc;

	if (nk > INT32_MAX || wide > INT_MAX / 2)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "gpu_moe_ffn: %zu assignments of width %zu exceed "
				 "cuBLAS's int sizes", nk, wide);
	rc = ws_reserve(st, &st->half_ws, &st->half_ws_bytes, ac * wide * 2,
			"matmul scratch", d);
	if (rc < 0)
		return rc;
	xh = (char *)st->half_ws; /* after the reserve: it may have moved */
	rc = host_reserve(st, &st->grp_ws, &st->grp_ws_bytes, need,
			  "gpu_moe_ffn", d);
	if (rc < 0)
		return rc;
	opT = (cublasOperation_t *)st->grp_ws;
	opN = opT + 2 * E;
	gm = (int *)(void *)(opN + 2 * E);
	gn = gm + 2 * E;
	gk = gn + 2 * E;
	dm = gk + 2 * E;
	dn = dm + E;
	dk = dn + E;
	gs = dk + E;
	alpha = (float *)(void *)(gs + 2 * E);
	beta = alpha + 2 * E;
	pc = (struct gpu_moe_piece *)(void *)(beta + 2 * E);
	cnt = (int32_t *)(void *)(pc + E);
	fill = cnt + n;
	stage = (char *)st->grp_ws + al64(fixed);
	for (i = 0; i < 2 * E; i++) {
		opT[i] = CUBLAS_OP_T;
		opN[i] = CUBLAS_OP_N;
		gm[i] = (int)n_ff;
		gk[i] = (int)dim;
		gs[i] = 1;
		alpha[i] = 1.0f;
		beta[i] = 0.0f;
	}
	for (e = 0; e < E; e++) {
		dm[e] = (int)dim;
		dk[e] = (int)n_ff;
	}
	CUDA_TRY(cudaMemsetAsync(out, 0, n * dim * sizeof(float), st->stream));
	for (a = 0; a < nk; a = b) {
		const size_t A = nk - a < ac ? nk - a : ac;
		int32_t *const sl = (int32_t *)(void *)stage;
		void **const hp = (void **)(void *)(sl + (5 * A + 2) / 2 * 2);
		void **gA, **gB, **gC, **dA, **dB, **dC;
		void **const pd = L->ptr;
		int32_t *const li = L->li;
		size_t R, np, P;

		b = a + A;
		/* the chunk's slots, the rows it touches with their slots in
		 * ascending order, and one piece per expert in it */
		R = gpu_moe_plan_chunk(h_rows, h_wts, start, E, n, a, b, sl, cnt,
				       fill, pc, &np);
		gA = hp;
		gB = gA + 2 * np;
		gC = gB + 2 * np;
		dA = gC + 2 * np;
		dB = dA + np;
		dC = dB + np;
		for (P = 0; P < np; P++) {
			const size_t ee = (size_t)pc[P].expert, s0 = (size_t)pc[P].s0;

			gA[2 * P] = ex->gate[ee]->data;
			gA[2 * P + 1] = ex->up[ee]->data;
			gB[2 * P] = gB[2 * P + 1] = xh + s0 * dim * 2;
			gC[2 * P] = L->hg + s0 * n_ff;
			gC[2 * P + 1] = L->hu + s0 * n_ff;
			gn[2 * P] = gn[2 * P + 1] = pc[P].m;
			dA[P] = ex->down[ee]->data;
			dB[P] = xh + s0 * n_ff * 2;
			dC[P] = L->yo + s0 * dim;
			dn[P] = pc[P].m;
		}
		stage = (char *)(hp + 9 * np);
		CUDA_TRY(cudaMemcpyAsync(li, sl, (5 * A + 1) * sizeof *sl,
					 cudaMemcpyHostToDevice, st->stream));
		CUDA_TRY(cudaMemcpyAsync(pd, hp, 9 * (size_t)np * sizeof *hp,
					 cudaMemcpyHostToDevice, st->stream));
		CUDA_TRY((cudaError_t)gpu_cuda_launch_gather_rows_half(
			st->stream, xh, wgu, x, li, A, dim));
		rc = gemm_grouped(st, half_type(wgu), (int)(2 * np), opT, opN, gm,
				  gn, gk, alpha, beta, gs, pd, pd + 2 * np,
				  pd + 4 * np, gA, gB, gC, d);
		if (rc < 0)
			return rc;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_swiglu_half(
			st->stream, xh, wdn, L->hg, L->hu, wgu, A * n_ff));
		rc = gemm_grouped(st, half_type(wdn), (int)np, opT, opN, dm, dn, dk,
				  alpha, beta, gs, pd + 6 * np, pd + 7 * np,
				  pd + 8 * np, dA, dB, dC, d);
		if (rc < 0)
			return rc;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_scatter_csr(
			st->stream, out, L->yo, wdn,
			(const float *)(const void *)(li + A), li + 2 * A, li + 3 * A,
			li + 4 * A + 1, R, dim));
		__atomic_add_fetch(&g_grp_chunks, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static int cuda_moe_ffn(struct gpu *g, struct gpu_buf *out,
			const struct gpu_buf *x, const struct gpu_buf *ids,
			const struct gpu_buf *weights,
			const struct gpu_moe_experts *ex, size_t n, size_t dim,
			size_t top_k, struct gpu_buf *scratch, struct diag *d)
{
	struct cuda_state *st = cst(g);
	const size_t nk = n * top_k, n_ff = ex->n_ff;
	const size_t need = moe_host_need(nk, ex->n_expert);
	float *xg = (float *)scratch->data;
	float *hg = xg + n * dim, *hu = hg + n * n_ff, *yo = hu + n * n_ff;
	int32_t *d_rows = (int32_t *)(void *)(yo + n * dim);
	float *d_wts = (float *)(void *)(d_rows + nk);
	int32_t *h_id, *h_rows;
	float *h_wt, *h_wts;
	size_t *start, e, m;
	int rc;

	if (cuda_moe_recordable(g, ex, n, dim, top_k) &&
	    ((uintptr_t)x->data | (uintptr_t)scratch->data) % 16 == 0)
		return ex->xgate
			       ? gpu_cuda_exl3_moe(g, (float *)out->data,
						   (const float *)x->data,
						   (const int32_t *)ids->data,
						   (const float *)weights->data, ex,
						   n, dim, top_k,
						   (float *)scratch->data,
						   st->moe_err_dev, d)
			       : moe_ffn_device(st, out, x, ids, weights, ex, n,
						dim, top_k, scratch, d);
	if (g->recording)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_moe_ffn: buffers not 16-byte aligned while "
				 "recording");
	rc = host_reserve(st, &st->host_ws, &st->host_ws_bytes, need,
			  "gpu_moe_ffn", d);
	if (rc < 0)
		return rc;
	h_id = (int32_t *)st->host_ws;
	h_wt = (float *)(void *)(h_id + nk);
	h_rows = (int32_t *)(void *)(h_wt + nk);
	h_wts = (float *)(void *)(h_rows + nk);
	start = (size_t *)(void *)(h_wts + nk);
	CUDA_TRY(cudaMemcpyAsync(h_id, ids->data, nk * sizeof *h_id,
				 cudaMemcpyDeviceToHost, st->stream));
	CUDA_TRY(cudaMemcpyAsync(h_wt, weights->data, nk * sizeof *h_wt,
				 cudaMemcpyDeviceToHost, st->stream));
	CUDA_TRY(cudaStreamSynchronize(st->stream));
	rc = gpu_moe_plan_check(h_id, n, top_k, ex->n_expert, d);
	if (rc < 0)
		return rc;
	/* bucket rows by expert, in expert order, rows ascending */
	gpu_moe_plan_sort(h_id, h_wt, n, top_k, ex->n_expert, h_rows, h_wts, start,
			  start + ex->n_expert + 1);
	if (moe_grp_ok(ex)) {
		size_t ac = moe_grp_fit(scratch->n_elems, ex->n_expert, dim, n_ff);

		/* gpu_reserve sized the half area for n rows of the widest
		 * input (else ws_reserve grows it: never while recording) */
		ac = ac < n ? ac : n;
		if (st->moe_chunk && ac > st->moe_chunk)
			ac = st->moe_chunk;
		if (ac > 0) {
			struct moe_grp L;

			moe_grp_layout(xg, ac, ex->n_expert, dim, n_ff, &L);
			return moe_ffn_grouped(st, (float *)out->data,
					       (const float *)x->data, ex, n, dim,
					       nk, h_rows, h_wts, start, &L, d);
		}
	}
	CUDA_TRY(cudaMemcpyAsync(d_rows, h_rows, nk * sizeof *h_rows,
				 cudaMemcpyHostToDevice, st->stream));
	CUDA_TRY(cudaMemcpyAsync(d_wts, h_wts, nk * sizeof *h_wts,
				 cudaMemcpyHostToDevice, st->stream));
	CUDA_TRY(cudaMemsetAsync(out->data, 0, n * dim * sizeof(float), st->stream));
	for (e = 0; e < ex->n_expert; e++) {
		size_t s0 = start[e];

		m = start[e + 1] - s0;
		if (m == 0)
			continue;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_gather_rows(
			st->stream, xg, (const float *)x->data, d_rows + s0, m, dim));
		if (ex->xgate) {
			rc = gpu_cuda_exl3_matmul_raw(g, hg, xg, ex->xgate[e], m,
						      dim, n_ff, d);
			if (rc == 0)
				rc = gpu_cuda_exl3_matmul_raw(g, hu, xg, ex->xup[e],
							      m, dim, n_ff, d);
		} else {
			rc = mm_raw(g, hg, xg, ex->gate[e], NULL, m, dim, n_ff, d);
			if (rc == 0)
				rc = mm_raw(g, hu, xg, ex->up[e], NULL, m, dim, n_ff,
					    d);
		}
		if (rc < 0)
			return rc;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_swiglu(st->stream, hg, hg, hu,
							     m * n_ff));
		if (ex->xdown)
			rc = gpu_cuda_exl3_matmul_raw(g, yo, hg, ex->xdown[e], m,
						      n_ff, dim, d);
		else
			rc = mm_raw(g, yo, hg, ex->down[e], NULL, m, n_ff, dim, d);
		if (rc < 0)
			return rc;
		CUDA_TRY((cudaError_t)gpu_cuda_launch_scatter_add(
			st->stream, (float *)out->data, yo, d_rows + s0, d_wts + s0,
			m, dim));
	}
	/* the copies from h_rows / h_wts may still be queued: host_ws is
	 * rewritten only after the next call's read-back has synchronised
	 * the stream (or host_reserve has) */
	return 0;
}

/* ---- memory and graphs ------------------------------------------------ */

/* gpu_reserve: grow the three scratch areas to what the largest ops of R
 * take (the sizes each op asks ws_reserve / the host list for). */
static int cuda_reserve(struct gpu *g, const struct gpu_reserve_req *r,
			uint64_t *bytes, struct diag *d)
{
	struct cuda_state *st = cst(g);
	size_t half = 0, att = 0, host = 0, n;
	int rc;

	if (r->n_rows > GPU_CUDA_GEMV_MAX_N)
		half = r->n_rows * r->k_max * 2; /* cuBLAS path of half weights */
	if (r->n_head)
		for (n = 1; n <= r->n_rows && n * r->n_head_kv < 1024; n++) {
			const size_t sp = gpu_cuda_attention_splits(
				n, r->n_head_kv, r->span, r->head_dim,
				r->kv_k_bits ? 2 : r->kv_dtype == GPU_DTYPE_F16);
			const size_t need = att_ws_need(n, r->n_head, sp,
							r->head_dim);

			att = need > att ? need : att;
		}
	if (r->moe_experts)
		host = moe_host_need(r->moe_rows_k, r->moe_experts);
	rc = ws_reserve(st, &st->half_ws, &st->half_ws_bytes, half,
			"matmul scratch", d);
	if (rc == 0)
		rc = ws_reserve(st, (void **)&st->att_ws, &st->att_ws_bytes, att,
				"attention scratch", d);
	if (rc == 0)
		rc = host_reserve(st, &st->host_ws, &st->host_ws_bytes, host,
				  "gpu_reserve", d);
	if (rc < 0)
		return rc;
	*bytes = (uint64_t)st->half_ws_bytes + st->att_ws_bytes;
	return 0;
}

static int cuda_mem_info(struct gpu *g, uint64_t *fr, uint64_t *tot,
			 struct diag *d)
{
	size_t f = 0, t = 0;

	CUDA_TRY(cudaSetDevice(cst(g)->device));
	CUDA_TRY(cudaMemGetInfo(&f, &t));
	*fr = f;
	*tot = t;
	return 0;
}

/* Graphs: stream capture of the handle's stream (thread-local mode, so
 * other threads' CUDA calls are unaffected), instantiated on end. */
static int cuda_graph_begin(struct gpu *g, struct diag *d)
{
	struct cuda_state *st = cst(g);

	CUDA_TRY(cudaSetDevice(st->device));
	CUDA_TRY(cudaStreamBeginCapture(st->stream,
					cudaStreamCaptureModeThreadLocal));
	return 0;
}

static int cuda_graph_end(struct gpu *g, void **exec, struct diag *d)
{
	struct cuda_state *st = cst(g);
	cudaGraph_t graph = NULL;
	cudaGraphExec_t ex = NULL;
	cudaError_t err = cudaStreamEndCapture(st->stream, &graph);

	*exec = NULL;
	if (err != cudaSuccess || !graph) {
		/* an invalidated recording: nothing ran, the handle is fine */
		(void)cudaGetLastError();
		if (graph)
			cudaGraphDestroy(graph);
		return diag_fail(d, GPU_E_UNSUPPORTED, "graph recording failed: %s",
				 cudaGetErrorString(err));
	}
	err = cudaGraphInstantiate(&ex, graph, 0);
	cudaGraphDestroy(graph);
	if (err == cudaErrorMemoryAllocation) {
		(void)cudaGetLastError();
		return diag_fail(d, GPU_E_NOMEM, "cudaGraphInstantiate: %s",
				 cudaGetErrorString(err));
	}
	CUDA_TRY(err);
	*exec = ex;
	return 0;
}

static int cuda_graph_launch(struct gpu *g, void *exec, struct diag *d)
{
	CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)exec, cst(g)->stream));
	return 0;
}

static void cuda_graph_destroy(struct gpu *g, void *exec)
{
	(void)g;
	if (exec)
		cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

static uint64_t cuda_graph_gen(struct gpu *g)
{
	return cst(g)->ws_gen;
}

const struct gpu_backend gpu_cuda_backend = {
	.kind = GPU_KIND_CUDA,
	.name = "cuda",
	.open = cuda_open,
	.close = cuda_close,
	.sync = cuda_sync,
	.buf_alloc = cuda_buf_alloc,
	.buf_release = cuda_buf_release,
	.buf_write = cuda_buf_write,
	.buf_read = cuda_buf_read,
	.buf_zero = cuda_buf_zero,
	.get_rows = cuda_get_rows,
	.matmul = cuda_matmul,
	.matmul_multi = cuda_matmul_multi,
	.rmsnorm = cuda_rmsnorm,
	.add_rmsnorm = cuda_add_rmsnorm,
	.rope = cuda_rope,
	.kv_store = cuda_kv_store,
	.rope_kv_store = cuda_rope_kv_store,
	.attention = cuda_attention,
	.swiglu = cuda_swiglu,
	.add = cuda_add,
	.add_gated = cuda_add_gated,
	.softmax = cuda_softmax,
	.copy = cuda_copy,
	.moe_route = cuda_moe_route,
	.moe_ffn = cuda_moe_ffn,
	.moe_recordable = cuda_moe_recordable,
	.mem_info = cuda_mem_info,
	.reserve = cuda_reserve,
	.graph_begin = cuda_graph_begin,
	.graph_end = cuda_graph_end,
	.graph_launch = cuda_graph_launch,
	.graph_destroy = cuda_graph_destroy,
	.graph_gen = cuda_graph_gen,
	.exl3_upload = gpu_cuda_exl3_upload,
	.exl3_release = gpu_cuda_exl3_release,
	.exl3_matmul = gpu_cuda_exl3_matmul,
	.matmul_swiglu = cuda_matmul_swiglu,
	.swiglu_ffn = cuda_swiglu_ffn,
	.exl3_matmul_multi = gpu_cuda_exl3_matmul_multi,
	.exl3_swiglu = gpu_cuda_exl3_swiglu,
	.exl3_residual = gpu_cuda_exl3_residual,
	.exl3_encode = gpu_cuda_exl3_encode,
};
