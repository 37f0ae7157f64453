/* gpu/cuda/cuda_exl3.c — host side of EXL3 linears on the CUDA backend:
 * weight upload / release and the matmul dispatch (vtable slots
 * exl3_upload, exl3_release, exl3_matmul; kernels and formulas in
 * gpu/cuda/exl3.cu, gpu/cuda/exl3_dq.cu and gpu/cuda/cuda_exl3.h).
 *
 * Device memory per weight (w->priv, struct cuda_exl3): one cudaMalloc
 * block holding the trellis exactly as stored (int16 [k/16, n/16, 16K]),
 * then suh f32 [k], svh f32 [n] and bias f32 [n] (widened from f16 on the
 * host at upload), each 256-byte aligned.
 *
 * Workspace (struct xl_ws): the kernels need, for the weight being run,
 *   xh    f16 [R, k]      rotated activations (R = GPU_CUDA_EXL3_DQ_ROWS
 *                         rows, or GPU_CUDA_EXL3_ROWS for a weight without
 *                         the prefill path);
 *   part  f32             the GEMV's partial sums [n_kb, 16, n] and the
 *                         prefill path's product [R, NC] (one area, sized
 *                         for the larger: the two never overlap in time);
 *   wt    f16 [NC, k]     the prefill path's decoded column chunk
 *                         (<= GPU_CUDA_EXL3_DQ_W_BYTES, 32 MiB);
 *   cnt   u32 [n/128]     the fused kernel's group counters (zero).
 * E.g. with R = 512: a 14336 x 4096 weight (NC = 1024) needs xh 14 MiB,
 * wt 28 MiB, part max(2 MiB, the GEMV's n_kb * 256 KiB: 0.5 MiB with 2
 * slices); a 4096 x 128256 lm_head (NC = 4096) xh 4 MiB, wt 32 MiB, part
 * 8 MiB; a Llama-3-8B handle about 14 + 32 + 8 MiB in all.  wt stays
 * within 32 MiB for any k <= 131072 (a larger k gets NC = 128).  One
 * workspace per handle serves every weight (ops of a handle run in stream
 * order); it lives in a small process-wide list keyed by the handle,
 * guarded by a mutex, counted by the weights that use it, grown (after a
 * stream sync) by an upload that needs more, and freed with the handle's
 * last weight.
 * So matmul allocates nothing and may be captured in a CUDA graph; upload
 * every weight before capturing (a growing upload moves the workspace).
 *
 * Up to GPU_CUDA_EXL3_DQ_MIN_ROWS (32) rows, rows are run in chunks of
 * GPU_CUDA_EXL3_ROWS (16): input, gemv, output kernels per chunk (kernel
 * 1, the default), or input and a fused gemv + output (kernel 2,
 * TERN_EXL3_KERNEL=2 / gpu_cuda_exl3_set_kernel; measured slower on an
 * H200, kept for A/B work: docs/PERFORMANCE.md).  The fused kernel also
 * uses u32 group counters [n/128] in the workspace, zero between launches.
 * Above 32 rows (prefill) the weight is decoded to f16 one column chunk at
 * a time and multiplied by cuBLAS (the backend's handle, on its stream):
 * the steps and chunk sizes are in cuda_exl3.h ("prefill" block).
 * TERN_EXL3_DQ=0 (read at the first matmul) or gpu_cuda_exl3_set_dq(0)
 * sends every row count to the GEMV path, for A/B timing.
 *
 * The handle's stream comes from gpu_cuda_stream (cuda_impl.h); upload
 * still checks that it is a live non-blocking stream of the current
 * device.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
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
#include "gpu/gpu_impl.h"
#include "gpu/half.h"

/* Weights with more outputs than this (lm_head) get no workspace room
 * for gpu_exl3_matmul_multi. */
#define XL_MULTI_MAX_N 65536

static cudaStream_t xl_stream(struct gpu *g)
{
	return (cudaStream_t)gpu_cuda_stream(g);
}

/* ---- the per-handle workspace -------------------------------------------- */

struct xl_ws {
	struct xl_ws *next;
	struct gpu *g;
	int refs;
	void *xh;          /* f16 [R or 16, k_max] */
	size_t xh_bytes;
	float *part;       /* f32 [n_kb, 16, n] (GEMV) or [R, NC] (prefill) */
	size_t part_bytes;
	unsigned *cnt;     /* u32 [n/128] group counters of the fused kernel (0) */
	size_t cnt_bytes;
	void *wt;          /* f16 [NC, k] decoded column chunk (prefill) */
	size_t wt_bytes;
};

static pthread_mutex_t g_ws_mu = PTHREAD_MUTEX_INITIALIZER;
static struct xl_ws *g_ws;

struct cuda_exl3 {
	void *mem;          /* the weight's block (owns the pointers below) */
	void *trellis;
	float *suh, *svh, *bias;
	int n_kb;           /* k-slices of the gemv (kernel 1) alone */
	int n_sm;           /* the device's multiprocessors */
	int n_kb2;          /* k-slices of the fused gemv (kernel 2) */
	size_t dq_nc;       /* prefill column chunk NC; 0: no prefill path */
	struct xl_ws *ws;
};

static size_t al256(size_t a)
{
	return (a + 255) & ~(size_t)255;
}

static void widen(float *dst, const void *src, size_t n)
{
	const unsigned char *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		uint16_t h;

		memcpy(&h, p + 2 * i, 2);
		dst[i] = gpu_f16_to_f32(h);
	}
}

/* Grow one workspace area of g to at least need bytes (the old contents
 * are dropped after a stream sync; the new area is zeroed when zero is set);
 * called with g_ws_mu held. */
static int ws_grow(struct gpu *g, void **p, size_t *cap, size_t need, int zero,
		   struct diag *d)
{
	if (*cap >= need)
		return 0;
	CUDA_TRY(cudaStreamSynchronize(xl_stream(g)));
	if (*p)
		CUDA_TRY(cudaFree(*p));
	*p = NULL;
	*cap = 0;
	if (cudaMalloc(p, need) != cudaSuccess) {
		(void)cudaGetLastError();
		*p = NULL;
		return diag_fail(d, GPU_E_NOMEM,
				 "exl3: cannot allocate a %zu-byte workspace", need);
	}
	if (zero)
		CUDA_TRY(cudaMemset(*p, 0, need));
	*cap = need;
	return 0;
}

/* Make sure ws of g holds the sizes asked for; called with g_ws_mu held.
 * cnt must be zero between launches; rows >= nr of an xh chunk are read
 * by the GEMV (never used): keep them finite. */
static int ws_fit(struct gpu *g, struct xl_ws *ws, size_t xh_bytes,
		  size_t part_bytes, size_t cnt_bytes, size_t wt_bytes,
		  struct diag *d)
{
	int rc;

	rc = ws_grow(g, (void **)&ws->cnt, &ws->cnt_bytes, cnt_bytes, 1, d);
	if (rc == 0)
		rc = ws_grow(g, &ws->xh, &ws->xh_bytes, xh_bytes, 1, d);
	if (rc == 0)
		rc = ws_grow(g, (void **)&ws->part, &ws->part_bytes, part_bytes, 0,
			     d);
	if (rc == 0)
		rc = ws_grow(g, &ws->wt, &ws->wt_bytes, wt_bytes, 0, d);
	return rc;
}

/* The workspace of g with one more reference, fitted; NULL on error. */
static struct xl_ws *ws_get(struct gpu *g, size_t xh_bytes, size_t part_bytes,
			    size_t cnt_bytes, size_t wt_bytes, struct diag *d,
			    int *rc)
{
	struct xl_ws *ws;

	pthread_mutex_lock(&g_ws_mu);
	for (ws = g_ws; ws && ws->g != g; ws = ws->next)
		;
	if (!ws) {
		ws = calloc(1, sizeof *ws);
		if (!ws) {
			pthread_mutex_unlock(&g_ws_mu);
			*rc = diag_fail(d, GPU_E_NOMEM, "exl3: out of memory");
			return NULL;
		}
		ws->g = g;
		ws->next = g_ws;
		g_ws = ws;
	}
	ws->refs++;
	*rc = ws_fit(g, ws, xh_bytes, part_bytes, cnt_bytes, wt_bytes, d);
	pthread_mutex_unlock(&g_ws_mu);
	if (*rc < 0) {
		/* the reference is dropped by the caller's ws_put */
		return ws;
	}
	return ws;
}

static void ws_put(struct xl_ws *ws)
{
	struct xl_ws **pp;

	pthread_mutex_lock(&g_ws_mu);
	if (--ws->refs == 0) {
		for (pp = &g_ws; *pp && *pp != ws; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = ws->next;
		cudaFree(ws->xh);
		cudaFree(ws->part);
		cudaFree(ws->cnt);
		cudaFree(ws->wt);
		free(ws);
	}
	pthread_mutex_unlock(&g_ws_mu);
}

/* ---- prefill chunk sizes ------------------------------------------------ */

static size_t g_dq_cols; /* set_dq_cols override; 0: the sizes of cuda_exl3.h */
static int g_group_off;  /* set_group_splits(0) */

void gpu_cuda_exl3_set_dq_cols(size_t nc)
{
	__atomic_store_n(&g_dq_cols, nc, __ATOMIC_RELAXED);
}

void gpu_cuda_exl3_set_group_splits(int on)
{
	__atomic_store_n(&g_group_off, !on, __ATOMIC_RELAXED);
}

/* NC = 128 * per: per 128-column blocks such that f16 [NC, k] and f32
 * [R, NC] stay within their budgets (at least one block), then spread
 * evenly over the n/128 blocks (same chunk count, chunks as equal as whole
 * blocks allow). */
size_t gpu_cuda_exl3_dq_cols(size_t k, size_t n)
{
	const size_t over = __atomic_load_n(&g_dq_cols, __ATOMIC_RELAXED);
	const size_t nb = n / 128;
	size_t per, pb, n_ch;

	if (k == 0 || k % 128 || nb == 0 || k > (size_t)INT_MAX)
		return 0;
	if (over) {
		per = over / 128;
	} else {
		per = GPU_CUDA_EXL3_DQ_W_BYTES / (2 * k) / 128;
		pb = GPU_CUDA_EXL3_DQ_PART_BYTES / (4 * (size_t)GPU_CUDA_EXL3_DQ_ROWS) /
		     128;
		if (per > pb)
			per = pb;
		if (per < 1)
			per = 1;
		n_ch = (nb + per - 1) / per;
		per = (nb + n_ch - 1) / n_ch;
	}
	if (per < 1)
		per = 1;
	if (per > nb)
		per = nb;
	return per * 128;
}

/* ---- upload / release ------------------------------------------------------ */

/* The mirrored stream must be a live non-blocking stream of this device. */
static int check_stream(struct gpu *g, struct diag *d)
{
	cudaStream_t st = xl_stream(g);
	unsigned flags = 0;
	int dev = -1;

	CUDA_TRY(cudaGetDevice(&dev));
	if (!st || gpu_cuda_device(g) != dev ||
	    cudaStreamGetFlags(st, &flags) != cudaSuccess ||
	    flags != cudaStreamNonBlocking) {
		(void)cudaGetLastError();
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "exl3: the CUDA handle's layout is not the one "
				 "gpu/cuda/cuda_exl3.c expects");
	}
	return 0;
}

int gpu_cuda_exl3_upload(struct gpu *g, struct gpu_exl3_weight *w,
			 const struct gpu_exl3_desc *desc, struct diag *d)
{
	const size_t k = desc->k, n = desc->n;
	size_t tr_bytes, off_suh, off_svh, off_bias, total, xh_bytes, part_bytes;
	size_t wt_bytes, dq_part;
	struct cuda_exl3 *q;
	float *host = NULL;
	int rc, n_sm = 0;

	rc = check_stream(g, d);
	if (rc < 0)
		return rc;
	/* gpu/exl3.c checked k, n (multiples of 128) and that the tile
	 * count times 32K does not overflow */
	tr_bytes = (k / 16) * (n / 16) * 32 * (size_t)desc->bits;
	off_suh = al256(tr_bytes);
	off_svh = off_suh + al256(k * 4);
	off_bias = off_svh + al256(n * 4);
	total = off_bias + (desc->bias ? al256(n * 4) : 0);
	if (total < tr_bytes)
		return diag_fail(d, GPU_E_INVALID, "exl3: %zu x %zu weight too large",
				 k, n);
	{
		int dev = 0;

		CUDA_TRY(cudaGetDevice(&dev));
		CUDA_TRY(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount,
						dev));
	}
	q = calloc(1, sizeof *q);
	host = malloc((k > n ? k : n) * sizeof(float));
	if (!q || !host) {
		free(q);
		free(host);
		return diag_fail(d, GPU_E_NOMEM, "exl3: out of memory");
	}
	q->n_sm = n_sm;
	q->n_kb = gpu_cuda_exl3_splits(k, n, n_sm);
	/* the fused kernel: kernel 1's slices unless TERN_EXL3_KB says
	 * otherwise (0 = the occupancy model, n = n slices; for timing) */
	q->n_kb2 = q->n_kb;
	{
		const long v = tern_switch_long("TERN_EXL3_KB");

		if (v == 0)
			q->n_kb2 = gpu_cuda_exl3_splits2(k, n, desc->bits,
							 (int)desc->cb, n_sm);
		else if (v > 0)
			q->n_kb2 = (int)(v < GPU_CUDA_EXL3_MAX_KB ? v
							  : GPU_CUDA_EXL3_MAX_KB);
	}
	if (cudaMalloc(&q->mem, total) != cudaSuccess) {
		size_t fr = 0, tot = 0;

		(void)cudaGetLastError();
		(void)cudaMemGetInfo(&fr, &tot);
		free(q);
		free(host);
		return diag_fail(d, GPU_E_NOMEM,
				 "exl3: cannot allocate %zu bytes of device memory "
				 "for a %zu x %zu weight (%zu of %zu free)", total, k,
				 n, fr, tot);
	}
	{
		unsigned char *base = q->mem;

		q->trellis = base;
		q->suh = (float *)(base + off_suh);
		q->svh = (float *)(base + off_svh);
		q->bias = desc->bias ? (float *)(base + off_bias) : NULL;
	}
	/* the copies: the desc's pointers may have any alignment */
	rc = 0;
	if (cudaMemcpy(q->mem, desc->trellis, tr_bytes, cudaMemcpyHostToDevice) !=
	    cudaSuccess)
		rc = -1;
	widen(host, desc->suh, k);
	if (!rc && cudaMemcpy(q->suh, host, k * 4,
			      cudaMemcpyHostToDevice) != cudaSuccess)
		rc = -1;
	widen(host, desc->svh, n);
	if (!rc && cudaMemcpy(q->svh, host, n * 4,
			      cudaMemcpyHostToDevice) != cudaSuccess)
		rc = -1;
	if (desc->bias) {
		widen(host, desc->bias, n);
		if (!rc && cudaMemcpy(q->bias, host, n * 4,
				      cudaMemcpyHostToDevice) != cudaSuccess)
			rc = -1;
	}
	free(host);
	if (rc) {
		cudaError_t e = cudaGetLastError();

		cudaFree(q->mem);
		free(q);
		return diag_fail(d, GPU_E_DEVICE, "exl3: upload: %s",
				 cudaGetErrorString(e));
	}
	/* workspace (see the top of the file): the prefill path needs xh for
	 * R rows, part for [R, NC] and wt for [NC, k]; k <= INT_MAX there,
	 * NC <= n, so the products below do not overflow */
	q->dq_nc = gpu_cuda_exl3_dq_cols(k, n);
	xh_bytes = (size_t)(q->dq_nc ? GPU_CUDA_EXL3_DQ_ROWS : GPU_CUDA_EXL3_ROWS) *
		   k * 2;
	part_bytes = (size_t)(q->n_kb > q->n_kb2 ? q->n_kb : q->n_kb2) *
		     GPU_CUDA_EXL3_ROWS * n * 4;
	/* room for the partials of GPU_CUDA_EXL3_MULTI_MAX weights of this
	 * shape at once (gpu_exl3_matmul_multi: q/k/v, gate/up), and their
	 * rotated inputs, except for output-heavy weights (lm_head) that are
	 * never grouped */
	if (n <= XL_MULTI_MAX_N) {
		/* a group of this weight's shape may take more slices than
		 * the weight alone (gpu_cuda_exl3_splits_multi) */
		size_t nn[GPU_CUDA_EXL3_MULTI_MAX];
		size_t kbm = (size_t)q->n_kb, mp;
		int m;

		for (m = 0; m < GPU_CUDA_EXL3_MULTI_MAX; m++)
			nn[m] = n;
		for (m = 2; m <= GPU_CUDA_EXL3_MULTI_MAX; m++) {
			const size_t v = (size_t)gpu_cuda_exl3_splits_multi(k, nn, m,
									  n_sm);

			kbm = v > kbm ? v : kbm;
		}
		mp = (size_t)GPU_CUDA_EXL3_MULTI_MAX * kbm * GPU_CUDA_EXL3_ROWS * n * 4;
		const size_t mx = (size_t)GPU_CUDA_EXL3_MULTI_MAX *
				  GPU_CUDA_EXL3_ROWS * k * 2;

		part_bytes = part_bytes > mp ? part_bytes : mp;
		xh_bytes = xh_bytes > mx ? xh_bytes : mx;
	}
	dq_part = (size_t)GPU_CUDA_EXL3_DQ_ROWS * q->dq_nc * 4;
	if (part_bytes < dq_part)
		part_bytes = dq_part;
	wt_bytes = q->dq_nc * k * 2;
	q->ws = ws_get(g, xh_bytes, part_bytes, (n / 128) * sizeof(unsigned),
		       wt_bytes, d, &rc);
	if (rc < 0) {
		if (q->ws)
			ws_put(q->ws);
		cudaFree(q->mem);
		free(q);
		return rc;
	}
	w->priv = q;
	w->bytes = total;
	return 0;
}

void gpu_cuda_exl3_release(struct gpu *g, struct gpu_exl3_weight *w)
{
	struct cuda_exl3 *q = w->priv;

	(void)g;
	if (!q)
		return;
	cudaFree(q->mem); /* waits for the device */
	ws_put(q->ws);
	free(q);
	w->priv = NULL;
}

/* ---- matmul ------------------------------------------------------------------ */

static int g_kernel; /* 0: not yet chosen */

void gpu_cuda_exl3_set_kernel(int v)
{
	__atomic_store_n(&g_kernel, v == 2 ? 2 : 1, __ATOMIC_RELAXED);
}

int gpu_cuda_exl3_kernel(void)
{
	int v = __atomic_load_n(&g_kernel, __ATOMIC_RELAXED);

	if (!v) {
		v = tern_switch_is("TERN_EXL3_KERNEL", "2") ? 2 : 1;
		__atomic_store_n(&g_kernel, v, __ATOMIC_RELAXED);
	}
	return v;
}

static int g_dq; /* prefill path: 0 not yet chosen, 1 on, 2 off */

void gpu_cuda_exl3_set_dq(int on)
{
	__atomic_store_n(&g_dq, on ? 1 : 2, __ATOMIC_RELAXED);
}

static int dq_on(void)
{
	int v = __atomic_load_n(&g_dq, __ATOMIC_RELAXED);

	if (!v) {
		v = tern_switch_is("TERN_EXL3_DQ", "0") ? 2 : 1;
		__atomic_store_n(&g_dq, v, __ATOMIC_RELAXED);
	}
	return v == 1;
}

/* The prefill path (cuda_exl3.h, "prefill" block): x f32 [n_rows, k_in],
 * out f32 [n_rows, n_out].  Row chunks of nr <= R rows (n_rows spread
 * evenly), column chunks of nc <= NC columns below n_out; the workspace's
 * xh [nr, k], wt [nc, k] (k contiguous) and part [nr, nc], all row-major.
 * Column-major, as cuBLAS sees them: xh is [k, nr] (ld k), wt is [k, nc]
 * (ld k), part is [nc, nr] (ld nc), and part[r][c] = wt[c, :] . xh[r, :]
 * is part_cm = wt_cm^T . xh_cm:
 *   cublasGemmEx(OP_T, OP_N, m = nc, n = nr, k = k, A = wt, lda = k,
 *                B = xh, ldb = k, C = part, ldc = nc)
 * (the convention of cuda_backend.c's matmul, with W = wt). */
static int dq_matmul(struct gpu *g, float *op, const float *xp,
		     const struct gpu_exl3_weight *w, size_t n_rows, size_t k_in,
		     size_t n_out, struct diag *d)
{
	const struct cuda_exl3 *q = w->priv;
	const struct xl_ws *ws = q->ws;
	cudaStream_t st = xl_stream(g);
	cublasHandle_t blas = (cublasHandle_t)gpu_cuda_blas(g);
	const size_t k = w->k, n = w->n, nc_max = q->dq_nc;
	const size_t n_rc = (n_rows + GPU_CUDA_EXL3_DQ_ROWS - 1) / GPU_CUDA_EXL3_DQ_ROWS;
	const size_t per = (n_rows + n_rc - 1) / n_rc; /* <= R */
	const int once = n_out <= nc_max; /* one column chunk: decode it once */
	const float one = 1.0f, zero = 0.0f;
	size_t r0, c0;

	if (!blas)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "exl3: the CUDA handle has no cuBLAS handle");
	for (r0 = 0; r0 < n_rows; r0 += per) {
		const size_t nr = n_rows - r0 < per ? n_rows - r0 : per;

		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_input(
			st, ws->xh, xp + r0 * k_in, q->suh, nr, k_in, k));
		/* c0 < n_out <= n, both multiples of 128 apart from n_out:
		 * nc >= 128 */
		for (c0 = 0; c0 < n_out; c0 += nc_max) {
			const size_t nc = n - c0 < nc_max ? n - c0 : nc_max;

			if (!once || r0 == 0)
				CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_dq(
					st, ws->wt, q->trellis, w->bits, (int)w->cb, k,
					n, c0, nc));
			CUBLAS_TRY(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nc,
						(int)nr, (int)k, &one, ws->wt,
						CUDA_R_16F, (int)k, ws->xh, CUDA_R_16F,
						(int)k, &zero, ws->part, CUDA_R_32F,
						(int)nc, CUBLAS_COMPUTE_32F,
						CUBLAS_GEMM_DEFAULT));
			CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_dq_output(
				st, op + r0 * n_out, ws->part, q->svh, q->bias, nr, nc,
				c0, n_out));
		}
	}
	return 0;
}

int gpu_cuda_exl3_dq_read(struct gpu *g, const struct gpu_exl3_weight *w,
			  size_t c0, size_t nc, uint16_t *dst, struct diag *d)
{
	const struct cuda_exl3 *q;
	cudaStream_t st;

	if (!g || g->kind != GPU_KIND_CUDA || !w || w->g != g || !w->priv || !dst)
		return diag_fail(d, GPU_E_INVALID, "exl3 dq_read: bad arguments");
	q = w->priv;
	if (!q->dq_nc || nc == 0 || nc > q->dq_nc || c0 % 128 || nc % 128 ||
	    c0 > w->n || nc > w->n - c0)
		return diag_fail(d, GPU_E_INVALID,
				 "exl3 dq_read: columns %zu + %zu of a %zu x %zu "
				 "weight with %zu-column chunks", c0, nc, w->k, w->n,
				 q->dq_nc);
	st = xl_stream(g);
	CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_dq(st, q->ws->wt, q->trellis,
						      w->bits, (int)w->cb, w->k,
						      w->n, c0, nc));
	CUDA_TRY(cudaMemcpyAsync(dst, q->ws->wt, nc * w->k * 2,
				 cudaMemcpyDeviceToHost, st));
	CUDA_TRY(cudaStreamSynchronize(st));
	return 0;
}

int gpu_cuda_exl3_matmul(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *x, const struct gpu_exl3_weight *w,
			 size_t n_rows, size_t k_in, size_t n_out, struct diag *d)
{
	return gpu_cuda_exl3_matmul_raw(g, (float *)out->data,
					(const float *)x->data, w, n_rows, k_in,
					n_out, d);
}

int gpu_cuda_exl3_matmul_raw(struct gpu *g, float *op, const float *xp,
			     const struct gpu_exl3_weight *w, size_t n_rows,
			     size_t k_in, size_t n_out, struct diag *d)
{
	const struct cuda_exl3 *q = w->priv;
	cudaStream_t st = xl_stream(g);
	const int fused = gpu_cuda_exl3_kernel() == 2;
	size_t r0;

	if (n_rows > GPU_CUDA_EXL3_DQ_MIN_ROWS && q->dq_nc && dq_on())
		return dq_matmul(g, op, xp, w, n_rows, k_in, n_out, d);
	for (r0 = 0; r0 < n_rows; r0 += GPU_CUDA_EXL3_ROWS) {
		size_t nr = n_rows - r0 < GPU_CUDA_EXL3_ROWS ? n_rows - r0
							      : GPU_CUDA_EXL3_ROWS;

		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_input(
			st, q->ws->xh, xp + r0 * k_in, q->suh, nr, k_in, w->k));
		if (fused) {
			CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_gemv_out(
				st, op + r0 * n_out, q->ws->part, q->ws->cnt,
				q->ws->xh, q->trellis, w->bits, (int)w->cb, nr,
				w->k, w->n, q->n_kb2, q->svh, q->bias, n_out));
			continue;
		}
		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_gemv(
			st, q->ws->part, q->ws->xh, q->trellis, w->bits, (int)w->cb,
			nr, w->k, w->n, q->n_kb));
		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_output(
			st, op + r0 * n_out, q->ws->part, q->n_kb, q->svh, q->bias,
			nr, w->n, n_out));
	}
	return 0;
}

/* Whether the environment switch `name` (a fused path, for A/B timing)
 * is on: anything but "0", cached in *cache (-1 until read). */
static int xl_switch_on(const char *name, int *cache)
{
	if (*cache < 0)
		*cache = tern_switch_on(name);
	return *cache;
}

static unsigned long g_tail_runs; /* gpu_cuda_exl3_tail_runs */
static unsigned long g_rot_runs;  /* gpu_cuda_exl3_rot_runs */
static unsigned long g_rope_runs; /* gpu_cuda_exl3_rope_runs */
static unsigned long g_att_runs;  /* gpu_cuda_exl3_att_runs */

unsigned long gpu_cuda_exl3_att_runs(void)
{
	return __atomic_load_n(&g_att_runs, __ATOMIC_RELAXED);
}

unsigned long gpu_cuda_exl3_rope_runs(void)
{
	return __atomic_load_n(&g_rope_runs, __ATOMIC_RELAXED);
}

/* Whether xl_multi's output launch can take a's RoPE and KV store for
 * parts q, k, v (gpu_cuda_launch_exl3_output_multi's conditions: head_dim
 * and the rotated dims 128, no MRoPE, no q/k norm, n = n_out for each
 * part, the batch's rows), unless TERN_EXL3_ROPE=0 (for measurements). */
static bool xl_rope_ok(const struct gpu_rope_kv *a,
		       const struct gpu_exl3_part *parts, int n_parts,
		       size_t n_rows)
{
	static int on = -1;
	const struct gpu_rope *rp = a ? a->rp : NULL;
	size_t hk;
	int j;

	if (!xl_switch_on("TERN_EXL3_ROPE", &on) || !rp || n_parts != 3 ||
	    a->pool->head_dim != 128 || rp->n_rot != 128 ||
	    rp->mrope_section || rp->q_norm || rp->k_norm ||
	    a->b->n_rows != n_rows || a->q != parts[0].out ||
	    a->k != parts[1].out || a->v != parts[2].out)
		return false;
	hk = a->pool->n_head_kv;
	for (j = 0; j < 3; j++)
		if (parts[j].w->n != parts[j].n_out)
			return false;
	return parts[0].n_out == a->n_head * 128 && a->n_head % hk == 0 &&
	       parts[1].n_out == hk * 128 && parts[2].n_out == hk * 128;
}

unsigned long gpu_cuda_exl3_tail_runs(void)
{
	return __atomic_load_n(&g_tail_runs, __ATOMIC_RELAXED);
}

unsigned long gpu_cuda_exl3_rot_runs(void)
{
	return __atomic_load_n(&g_rot_runs, __ATOMIC_RELAXED);
}

/* The fused decode path of gpu_exl3_matmul_multi / gpu_exl3_swiglu: for
 * up to GPU_CUDA_EXL3_ROWS rows with kernel 1, one input launch rotating
 * x for every part into its own slice of the workspace's xh, the parts'
 * GEMVs (one launch when they share bits and codebook) each into its own
 * slice of part, and one output launch (with swiglu:
 * writing silu(y_0) * y_1 to part 0's output only).  Returns 1 when it
 * ran, 0 when the case is not covered (more rows, kernel 2, weights of
 * different workspaces, a workspace too small for the parts together),
 * or an error.  When the parts share bits and codebook (one GEMV launch)
 * and the workspace has room, their k-slices are chosen for the launch as
 * a whole (gpu_cuda_exl3_splits_multi), so a part's result can differ
 * from its own call's in the order its partial sums were added (f32
 * rounding); otherwise each keeps its own slices and its own call's bits.
 * gpu_exl3_swiglu and gpu_exl3_matmul_multi of the same weights agree bit
 * for bit.  have_xh: the rotated inputs are already in the workspace's
 * slots (no input launch).  rot (with swiglu, or NULL): the weight that
 * takes the SwiGLU result as its input; when it shares the workspace,
 * its k is the parts' n and its k_in their n_out, the output launch also
 * rotates the result for it into the workspace's xh (slot 0, row stride
 * its k) and *rotated is set to 1 (else 0).  rope (or NULL; without
 * swiglu): the gpu_rope_kv_store that follows the three parts q, k, v;
 * where xl_rope_ok, the output launch runs it and *roped is set to 1
 * (else 0: the caller runs it). */
static int xl_multi(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
		    size_t k_in, const struct gpu_exl3_part *parts, int n_parts,
		    int swiglu, int have_xh, const struct gpu_exl3_weight *rot,
		    size_t rot_k_in, int *rotated, const struct gpu_rope_kv *rope,
		    int *roped, struct diag *d)
{
	const struct cuda_exl3 *q0 = parts[0].w->priv;
	const size_t k = parts[0].w->k;
	cudaStream_t st = xl_stream(g);
	struct gpu_cuda_exl3_out o[GPU_CUDA_EXL3_MULTI_MAX];
	void *xh[GPU_CUDA_EXL3_MULTI_MAX];
	float *pp[GPU_CUDA_EXL3_MULTI_MAX];
	const float *suh[GPU_CUDA_EXL3_MULTI_MAX];
	size_t ns[GPU_CUDA_EXL3_MULTI_MAX];
	size_t off = 0;
	int j, ok, kbg, pass, same;
	void *rot_xh = NULL;
	const float *rot_suh = NULL;

	struct gpu_cuda_exl3_rope rk;
	const struct gpu_cuda_exl3_rope *rkp = NULL;

	if (rotated)
		*rotated = 0;
	if (roped)
		*roped = 0;
	ok = n_rows <= GPU_CUDA_EXL3_ROWS && gpu_cuda_exl3_kernel() == 1 &&
	     n_parts <= GPU_CUDA_EXL3_MULTI_MAX &&
	     (size_t)n_parts * GPU_CUDA_EXL3_ROWS * k * 2 <= q0->ws->xh_bytes;
	for (j = 0; ok && j < n_parts; j++) {
		ok = ((const struct cuda_exl3 *)parts[j].w->priv)->ws == q0->ws;
		ns[j] = parts[j].w->n;
	}
	if (!ok)
		return 0;
	/* the slices of the launch as a whole (one grid: a group's blocks
	 * share the SMs), else each weight's own when the workspace has no
	 * room for those */
	for (j = 1; j < n_parts; j++)
		if (parts[j].w->bits != parts[0].w->bits ||
		    parts[j].w->cb != parts[0].w->cb)
			break;
	same = j == n_parts;
	kbg = gpu_cuda_exl3_splits_multi(k, ns, n_parts, q0->n_sm);
	pass = same && !__atomic_load_n(&g_group_off, __ATOMIC_RELAXED) ? 0 : 1;
	for (; pass < 2; pass++) {
		/* each part's slices of xh and part (nothing runs unless all
		 * fit) */
		off = 0;
		for (j = 0; j < n_parts; j++) {
			const struct gpu_exl3_weight *w = parts[j].w;
			const struct cuda_exl3 *q = w->priv;
			const int kb = pass == 0 ? kbg : q->n_kb;

			xh[j] = (char *)q0->ws->xh + (size_t)j * GPU_CUDA_EXL3_ROWS * k * 2;
			suh[j] = q->suh;
			pp[j] = (float *)(void *)((char *)q0->ws->part + off);
			o[j].out = (float *)parts[j].out->data;
			o[j].part = pp[j];
			o[j].n_kb = kb;
			o[j].svh = q->svh;
			o[j].bias = q->bias;
			o[j].n = w->n;
			o[j].n_out = parts[j].n_out;
			off += (size_t)kb * GPU_CUDA_EXL3_ROWS * w->n * 4;
		}
		if (off <= q0->ws->part_bytes)
			break;
	}
	if (pass == 2)
		return 0;
	if (!have_xh) /* else gpu_cuda_exl3_residual's tail wrote them */
		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_input_multi(
			st, xh, (const float *)x->data, suh, n_parts, n_rows, k_in,
			k));
	/* the GEMVs: one launch when every part has the same bits and
	 * codebook (the kernel is specialised on both) */
	if (same) {
		struct gpu_cuda_exl3_gemv gv[GPU_CUDA_EXL3_MULTI_MAX];

		for (j = 0; j < n_parts; j++) {
			const struct cuda_exl3 *q = parts[j].w->priv;

			gv[j].part = pp[j];
			gv[j].xh = xh[j];
			gv[j].trellis = q->trellis;
			gv[j].n = parts[j].w->n;
			gv[j].n_kb = o[j].n_kb;
		}
		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_gemv_multi(
			st, gv, n_parts, parts[0].w->bits, (int)parts[0].w->cb,
			n_rows, k));
	} else {
		for (j = 0; j < n_parts; j++) {
			const struct gpu_exl3_weight *w = parts[j].w;
			const struct cuda_exl3 *q = w->priv;

			CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_gemv(
				st, pp[j], xh[j], q->trellis, w->bits, (int)w->cb,
				n_rows, w->k, w->n, o[j].n_kb));
		}
	}
	if (rot && swiglu && ((const struct cuda_exl3 *)rot->priv)->ws == q0->ws &&
	    rot->k == parts[0].w->n && rot_k_in == parts[0].n_out &&
	    GPU_CUDA_EXL3_ROWS * rot->k * 2 <= q0->ws->xh_bytes) {
		/* xh slot 0: the GEMVs above have read the parts' inputs by
		 * the time the output launch writes it */
		rot_xh = q0->ws->xh;
		rot_suh = ((const struct cuda_exl3 *)rot->priv)->suh;
	}
	if (!swiglu && roped && xl_rope_ok(rope, parts, n_parts, n_rows)) {
		gpu_cuda_kv_fill(&rk.kv, rope->pool, rope->b);
		rk.pos = (const int32_t *)rope->pos->data;
		rk.inv_freq = (const float *)rope->inv_freq->data;
		rk.attn_factor = rope->rp->attn_factor;
		rkp = &rk;
	}
	CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_output_multi(
		st, o, n_parts, n_rows, swiglu, rot_xh, rot_suh, rkp));
	if (rotated)
		*rotated = rot_xh != NULL;
	if (rot_xh)
		__atomic_add_fetch(&g_rot_runs, 1, __ATOMIC_RELAXED);
	if (rkp) {
		*roped = 1;
		__atomic_add_fetch(&g_rope_runs, 1, __ATOMIC_RELAXED);
	}
	return 1;
}

/* Each part by its own gpu_cuda_exl3_matmul_raw. */
static int xl_per_part(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
		       size_t k_in, const struct gpu_exl3_part *parts,
		       int n_parts, struct diag *d)
{
	int j, rc = 0;

	for (j = 0; rc == 0 && j < n_parts; j++)
		rc = gpu_cuda_exl3_matmul_raw(g, (float *)parts[j].out->data,
					      (const float *)x->data, parts[j].w,
					      n_rows, k_in, parts[j].n_out, d);
	return rc;
}

/* gpu_exl3_matmul_multi's CUDA path: xl_multi, else part by part.
 * have_xh as xl_multi's (the part-by-part path rotates x itself).
 * Returns 1 when xl_multi ran, 0 when the parts ran one by one. */
static int xl_matmul_multi(struct gpu *g, const struct gpu_buf *x,
			   size_t n_rows, size_t k_in,
			   const struct gpu_exl3_part *parts, int n_parts,
			   int have_xh, const struct gpu_rope_kv *rope,
			   int *roped, struct diag *d)
{
	int rc = xl_multi(g, x, n_rows, k_in, parts, n_parts, 0, have_xh, NULL, 0,
			  NULL, rope, roped, d);

	if (rc == 0) {
		const int rc2 = xl_per_part(g, x, n_rows, k_in, parts, n_parts, d);

		if (rc2 < 0)
			return rc2;
	}
	return rc;
}

/* gpu_exl3_swiglu's CUDA path: xl_multi with the SwiGLU in its output
 * launch (TERN_FUSE_SWIGLU=0: without, then the swiglu kernel), else both
 * products part by part and the swiglu kernel.  have_xh and the result as
 * xl_matmul_multi's; rot, rot_k_in and *rotated as xl_multi's (rotated may
 * be NULL when rot is). */
static int xl_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		     const struct gpu_buf *x, const struct gpu_exl3_weight *w_gate,
		     const struct gpu_exl3_weight *w_up, size_t n_rows,
		     size_t k_in, size_t n_out, int have_xh,
		     const struct gpu_exl3_weight *rot, size_t rot_k_in,
		     int *rotated, struct diag *d)
{
	const struct gpu_exl3_part pt[2] = { { out, w_gate, n_out },
					     { up, w_up, n_out } };
	const int fuse = gpu_cuda_fuse_swiglu();
	int rc = xl_multi(g, x, n_rows, k_in, pt, 2, fuse, have_xh,
			  fuse ? rot : NULL, rot_k_in, rotated, NULL, NULL, d);

	if (rc < 0 || (rc == 1 && fuse))
		return rc;
	if (rc == 0) {
		const int rc2 = xl_per_part(g, x, n_rows, k_in, pt, 2, d);

		if (rc2 < 0)
			return rc2;
	}
	CUDA_TRY((cudaError_t)gpu_cuda_launch_swiglu(xl_stream(g), (float *)out->data,
						     (const float *)out->data,
						     (const float *)up->data,
						     n_rows * n_out));
	return rc;
}

/* gpu_exl3_matmul_multi, parts checked by the front end */
int gpu_cuda_exl3_matmul_multi(struct gpu *g, const struct gpu_buf *x,
			       size_t n_rows, size_t k_in,
			       const struct gpu_exl3_part *parts, int n_parts,
			       struct diag *d)
{
	const int rc = xl_matmul_multi(g, x, n_rows, k_in, parts, n_parts, 0,
				       NULL, NULL, d);

	return rc < 0 ? rc : 0;
}

/* gpu_exl3_swiglu, checked by the front end */
int gpu_cuda_exl3_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
			 const struct gpu_buf *x,
			 const struct gpu_exl3_weight *w_gate,
			 const struct gpu_exl3_weight *w_up, size_t n_rows,
			 size_t k_in, size_t n_out, struct diag *d)
{
	const int rc = xl_swiglu(g, out, up, x, w_gate, w_up, n_rows, k_in, n_out,
				 0, NULL, 0, NULL, d);

	return rc < 0 ? rc : 0;
}


/* Whether xl_residual covers r (the same answer for every op of a
 * model's layers: rows, kernel, dim and the device). */
static int xl_residual_ok(const struct gpu_exl3_residual *r, size_t n_rows)
{
	static int tail_on = -1; /* TERN_EXL3_TAIL=0: the sequence (A/B timing) */

	return n_rows <= GPU_CUDA_EXL3_ROWS && gpu_cuda_exl3_kernel() == 1 &&
	       r->dim <= GPU_CUDA_EXL3_TAIL_MAX_DIM &&
	       xl_switch_on("TERN_EXL3_TAIL", &tail_on) && gpu_cuda_exl3_tail_ok();
}

/* One gpu_exl3_residual (r->then aside) where xl_residual_ok: the
 * linear's input launch (unless have_xh: its rotated input is already in
 * the workspace's xh slot 0) and GEMV launch, then one tail launch (its
 * output step, x += o, the norm, the next parts' input rotation into
 * xl_multi's slots), then xl_multi without its input launch (or, when the
 * next parts do not fit the workspace together, their own ops on xn).
 * rot / rot_k_in / *rotated: xl_swiglu's, for r->swiglu.  r->rope_kv
 * rides in the next parts' output launch where xl_multi can take it, else
 * the backend's rope op runs after them.  Returns 0 or an error. */
static int xl_residual(struct gpu *g, const struct gpu_exl3_residual *r,
		       size_t n_rows, int have_xh,
		       const struct gpu_exl3_weight *rot, size_t rot_k_in,
		       int *rotated, struct diag *d)
{
	const struct gpu_exl3_weight *w = r->w;
	const struct cuda_exl3 *q = w->priv;
	cudaStream_t st = xl_stream(g);
	const size_t k2 = r->n_next ? r->next[0].w->k : 0;
	struct gpu_cuda_exl3_tail t;
	int j, rc, ok, roped = 0;

	if (rotated)
		*rotated = 0;
	memset(&t, 0, sizeof t);
	ok = r->n_next > 0 && r->n_next <= GPU_CUDA_EXL3_MULTI_MAX &&
	     (size_t)r->n_next * GPU_CUDA_EXL3_ROWS * k2 * 2 <= q->ws->xh_bytes;
	for (j = 0; ok && j < r->n_next; j++)
		ok = ((const struct cuda_exl3 *)r->next[j].w->priv)->ws == q->ws;
	if (ok) {
		t.np = r->n_next;
		t.k2 = k2;
		for (j = 0; j < r->n_next; j++) {
			t.xh[j] = (char *)q->ws->xh + (size_t)j * GPU_CUDA_EXL3_ROWS * k2 * 2;
			t.suh[j] = ((const struct cuda_exl3 *)r->next[j].w->priv)->suh;
		}
	}
	if (!have_xh)
		CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_input(
			st, q->ws->xh, (const float *)r->a->data, q->suh, n_rows,
			r->k_in, w->k));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_gemv(
		st, q->ws->part, q->ws->xh, q->trellis, w->bits, (int)w->cb, n_rows,
		w->k, w->n, q->n_kb));
	t.part = q->ws->part;
	t.svh = q->svh;
	t.bias = q->bias;
	t.n_kb = q->n_kb;
	t.n = w->n;
	t.nr = n_rows;
	t.dim = r->dim;
	t.o = (float *)r->o->data;
	t.x = (float *)r->x->data;
	t.xn = (float *)r->xn->data;
	t.norm_w = r->norm_w->data;
	t.norm_wt = (int)r->norm_w->dtype;
	t.eps = r->eps;
	CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_tail(st, &t));
	if (!r->n_next) {
		__atomic_add_fetch(&g_tail_runs, 1, __ATOMIC_RELAXED);
		return 0;
	}
	/* the next parts from the inputs the tail rotated into xl_multi's
	 * slots (t.np), else as their own ops on xn (xl_multi's conditions
	 * do not depend on have_xh: where it declines one, the parts run one
	 * by one from xn) */
	rc = r->swiglu ? xl_swiglu(g, r->next[0].out, r->next[1].out, r->xn,
				   r->next[0].w, r->next[1].w, n_rows, r->dim,
				   r->next[0].n_out, t.np != 0, rot, rot_k_in,
				   rotated, d)
		       : xl_matmul_multi(g, r->xn, n_rows, r->dim, r->next,
					 r->n_next, t.np != 0, r->rope_kv, &roped,
					 d);
	if (rc < 0)
		return rc;
	if (rc == 1 && t.np)
		__atomic_add_fetch(&g_tail_runs, 1, __ATOMIC_RELAXED);
	if (r->rope_kv && !roped) { /* checked by the front end */
		const struct gpu_rope_kv *a = r->rope_kv;

		rc = g->be->rope_kv_store(g, a->q, a->k, a->v, a->n_head, a->pos,
					  a->inv_freq, a->rp, a->pool, a->b, d);
	}
	return rc < 0 ? rc : 0;
}

/* gpu_exl3_residual, checked by the front end: r's attention (whose
 * combine launch rotates w's input where it can), xl_residual for r and,
 * when set, r->then, whose input rotation rides in r's SwiGLU output
 * launch where xl_multi can do it.  Returns 1 when it ran (both), 0 when
 * the case is not covered (nothing ran). */
int gpu_cuda_exl3_residual(struct gpu *g, const struct gpu_exl3_residual *r,
			   size_t n_rows, struct diag *d)
{
	const struct gpu_exl3_residual *t = r->then;
	int rc, rotated = 0, att_rot = 0;

	/* (r and then share rows and dim in every model, so the second test
	 * only guards the contract) */
	if (!xl_residual_ok(r, n_rows) || (t && !xl_residual_ok(t, n_rows)))
		return 0;
	if (r->att) {
		/* the attention; its combine writes w's rotated input where
		 * it can (a head is one 128-block of w's input: k_in =
		 * n_head * 128 = w's k; the workspace's xh slot 0 as
		 * xl_residual's input launch would), unless TERN_EXL3_ATT=0 */
		static int att_on = -1; /* TERN_EXL3_ATT=0: the input launch */
		const struct gpu_attention_args *a = r->att;
		const struct cuda_exl3 *q = r->w->priv;
		struct gpu_cuda_att_rot rot = { q->ws->xh, q->suh, r->w->k };
		const int use = xl_switch_on("TERN_EXL3_ATT", &att_on) &&
				a->pool->head_dim == 128 &&
				r->k_in == a->n_head * 128 && r->w->k == r->k_in &&
				GPU_CUDA_EXL3_ROWS * r->w->k * 2 <= q->ws->xh_bytes;

		rc = gpu_cuda_attention_rot(g, a->out, a->q, a->pool, a->b,
					    a->n_head, a->scale, a->window,
					    use ? &rot : NULL, &att_rot, d);
		if (rc < 0)
			return rc;
	}
	rc = xl_residual(g, r, n_rows, att_rot, t ? t->w : NULL,
			 t ? t->k_in : 0, &rotated, d);
	if (rc == 0 && att_rot)
		__atomic_add_fetch(&g_att_runs, 1, __ATOMIC_RELAXED);
	if (rc == 0 && t)
		rc = xl_residual(g, t, n_rows, rotated, NULL, 0, NULL, d);
	return rc < 0 ? rc : 1;
}

/* ---- MoE experts on the device ------------------------------------------ */

/* The kind (0 gate, 1 up, 2 down) of expert e. */
static const struct gpu_exl3_weight *moe_w(const struct gpu_moe_experts *ex,
					   int kind, size_t e)
{
	return kind == 0 ? ex->xgate[e] : kind == 1 ? ex->xup[e] : ex->xdown[e];
}

static size_t moe_off(const struct cuda_exl3 *q, const void *p)
{
	return p ? (size_t)((const char *)p - (const char *)q->mem) : 0;
}

bool gpu_cuda_exl3_moe_ok(const struct gpu_moe_experts *ex, size_t n,
			  size_t dim, size_t top_k)
{
	const size_t dk = (dim + 127) / 128 * 128;
	const size_t fk = (ex->n_ff + 127) / 128 * 128;
	size_t e;
	int kind;

	if (!ex->xgate || !ex->xup || !ex->xdown || ex->n_expert == 0 ||
	    ex->n_expert > GPU_CUDA_MOE_MAX_EXPERTS || top_k == 0 || top_k > 8 ||
	    n == 0 || n > GPU_MOE_XL_ROWS || n * top_k > GPU_CUDA_MOE_MAX_ASSIGN ||
	    dim == 0 || ex->n_ff == 0)
		return false;
	for (kind = 0; kind < 3; kind++) {
		const struct gpu_exl3_weight *w0 = moe_w(ex, kind, 0);
		const struct cuda_exl3 *q0 = w0 ? w0->priv : NULL;

		if (!q0 || w0->k != (kind < 2 ? dk : fk) ||
		    w0->n != (kind < 2 ? fk : dk) || q0->trellis != q0->mem)
			return false;
		for (e = 1; e < ex->n_expert; e++) {
			const struct gpu_exl3_weight *w = moe_w(ex, kind, e);
			const struct cuda_exl3 *q = w ? w->priv : NULL;

			if (!q || w->k != w0->k || w->n != w0->n ||
			    w->bits != w0->bits || w->cb != w0->cb ||
			    q->trellis != q->mem ||
			    moe_off(q, q->suh) != moe_off(q0, q0->suh) ||
			    moe_off(q, q->svh) != moe_off(q0, q0->svh) ||
			    moe_off(q, q->bias) != moe_off(q0, q0->bias))
				return false;
		}
	}
	return true;
}

int gpu_cuda_exl3_moe(struct gpu *g, float *out, const float *x,
		      const int32_t *ids, const float *wts,
		      const struct gpu_moe_experts *ex, size_t n, size_t dim,
		      size_t top_k, float *scratch, int *err, struct diag *d)
{
	const size_t A = n * top_k, ne = ex->n_expert;
	const struct cuda_exl3 *q0 = ex->xgate[0]->priv;
	const void *base[3][GPU_CUDA_MOE_MAX_EXPERTS];
	struct gpu_cuda_exl3_moe m;
	cudaStream_t st = xl_stream(g);
	size_t off[7], e, groups;
	int kind;

	(void)d;
	gpu_moe_xl_layout(A, dim, ex->n_ff, off);
	memset(&m, 0, sizeof m);
	for (kind = 0; kind < 3; kind++) {
		const struct cuda_exl3 *qk = moe_w(ex, kind, 0)->priv;

		for (e = 0; e < ne; e++)
			base[kind][e] = ((const struct cuda_exl3 *)
						 moe_w(ex, kind, e)->priv)->mem;
		m.w[kind].base = base[kind];
		m.w[kind].off_suh = moe_off(qk, qk->suh);
		m.w[kind].off_svh = moe_off(qk, qk->svh);
		m.w[kind].off_bias = moe_off(qk, qk->bias);
		m.w[kind].bits = moe_w(ex, kind, 0)->bits;
		m.w[kind].cb = (int)moe_w(ex, kind, 0)->cb;
	}
	m.n_expert = ne;
	m.n = n;
	m.top_k = top_k;
	m.dim = dim;
	m.n_ff = ex->n_ff;
	m.dk = ex->xgate[0]->k;
	m.fk = ex->xgate[0]->n;
	groups = A < ne ? A : ne;
	/* the slice model for the launch's whole grid (groups experts side
	 * by side, gate and up together when one launch), at most the
	 * scratch's GPU_MOE_XL_KB */
	m.kb_gu = gpu_cuda_exl3_splits(
		m.dk, groups * (m.w[0].bits == m.w[1].bits && m.w[0].cb == m.w[1].cb
					? 2 * m.fk : m.fk),
		q0->n_sm);
	m.kb_d = gpu_cuda_exl3_splits(m.fk, groups * m.dk, q0->n_sm);
	if (m.kb_gu > GPU_MOE_XL_KB)
		m.kb_gu = GPU_MOE_XL_KB;
	if (m.kb_d > GPU_MOE_XL_KB)
		m.kb_d = GPU_MOE_XL_KB;
	m.x = x;
	m.out = out;
	m.lists = (const int32_t *)(void *)(scratch + off[0]);
	m.xh_g = scratch + off[1];
	m.xh_u = scratch + off[2];
	m.xh_d = scratch + off[3];
	m.part_g = scratch + off[4];
	m.part_u = scratch + off[5];
	m.part_d = scratch + off[6];
	CUDA_TRY((cudaError_t)gpu_cuda_launch_moe_plan(
		st, ids, wts, n, top_k, ne, (int32_t *)(void *)(scratch + off[0]),
		err));
	CUDA_TRY((cudaError_t)gpu_cuda_launch_exl3_moe(st, &m));
	return 0;
}

/* ---- timing -------------------------------------------------------------------- */

static int cmp_f(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

int gpu_cuda_exl3_bench(struct gpu *g, struct gpu_exl3_weight *const *w,
			int n_w, struct gpu_buf *out, const struct gpu_buf *x,
			size_t n_rows, int warm, int iters, double *ms_op,
			double *ms_gemv, struct diag *d)
{
	cudaStream_t st = xl_stream(g);
	cudaEvent_t e0 = NULL, e1 = NULL;
	float *t_op, *t_gv;
	int i, rc = 0;

	if (n_w < 1 || iters < 1 || g->kind != GPU_KIND_CUDA)
		return diag_fail(d, GPU_E_INVALID, "exl3 bench: bad arguments");
	t_op = calloc((size_t)iters, sizeof *t_op);
	t_gv = calloc((size_t)iters, sizeof *t_gv);
	if (!t_op || !t_gv) {
		free(t_op);
		free(t_gv);
		return diag_fail(d, GPU_E_NOMEM, "exl3 bench: out of memory");
	}
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: cudaEventCreate");
		goto done;
	}
	for (i = 0; i < warm + iters && rc == 0; i++) {
		const struct gpu_exl3_weight *wi = w[i % n_w];
		const struct cuda_exl3 *q = wi->priv;
		const size_t nr1 = n_rows < GPU_CUDA_EXL3_ROWS ? n_rows
							       : GPU_CUDA_EXL3_ROWS;
		float ms = 0;

		if (cudaEventRecord(e0, st) != cudaSuccess) {
			rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: cudaEventRecord");
			break;
		}
		rc = gpu_exl3_matmul(g, out, x, wi, n_rows, wi->k, wi->n, d);
		if (rc < 0)
			break;
		if (cudaEventRecord(e1, st) != cudaSuccess ||
		    cudaEventSynchronize(e1) != cudaSuccess ||
		    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
			rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: events");
			break;
		}
		if (i >= warm)
			t_op[i - warm] = ms;
		/* the gemv alone (xh and partials as left by the call) */
		if (cudaEventRecord(e0, st) != cudaSuccess ||
		    (gpu_cuda_exl3_kernel() == 2
			     ? gpu_cuda_launch_exl3_gemv_out(
				       st, (float *)out->data, q->ws->part,
				       q->ws->cnt, q->ws->xh, q->trellis,
				       wi->bits, (int)wi->cb, nr1, wi->k, wi->n,
				       q->n_kb2, q->svh, q->bias, wi->n)
			     : gpu_cuda_launch_exl3_gemv(
				       st, q->ws->part, q->ws->xh, q->trellis,
				       wi->bits, (int)wi->cb, nr1, wi->k, wi->n,
				       q->n_kb)) != 0 ||
		    cudaEventRecord(e1, st) != cudaSuccess ||
		    cudaEventSynchronize(e1) != cudaSuccess ||
		    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
			rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: gemv: %s",
				       cudaGetErrorString(cudaGetLastError()));
			break;
		}
		if (i >= warm)
			t_gv[i - warm] = ms;
	}
	if (rc == 0) {
		qsort(t_op, (size_t)iters, sizeof *t_op, cmp_f);
		qsort(t_gv, (size_t)iters, sizeof *t_gv, cmp_f);
		*ms_op = t_op[iters / 2];
		*ms_gemv = t_gv[iters / 2];
	}
done:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	free(t_op);
	free(t_gv);
	return rc;
}

int gpu_cuda_exl3_bench_stream(struct gpu *g, struct gpu_exl3_weight *const *w,
			       int n_w, struct gpu_buf *out,
			       const struct gpu_buf *x, size_t n_rows,
			       int iters, double *ms_op, struct diag *d)
{
	cudaStream_t st = xl_stream(g);
	cudaEvent_t e0 = NULL, e1 = NULL;
	float ms = 0;
	int i, rc = 0;

	if (n_w < 1 || iters < 1 || g->kind != GPU_KIND_CUDA)
		return diag_fail(d, GPU_E_INVALID, "exl3 bench: bad arguments");
	if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: cudaEventCreate");
		goto done;
	}
	/* warm-up, then one timed run of iters calls */
	for (i = 0; i < n_w && rc == 0; i++)
		rc = gpu_exl3_matmul(g, out, x, w[i], n_rows, w[i]->k, w[i]->n, d);
	if (rc < 0)
		goto done;
	if (cudaEventRecord(e0, st) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: cudaEventRecord");
		goto done;
	}
	for (i = 0; i < iters && rc == 0; i++) {
		const struct gpu_exl3_weight *wi = w[i % n_w];

		rc = gpu_exl3_matmul(g, out, x, wi, n_rows, wi->k, wi->n, d);
	}
	if (rc < 0)
		goto done;
	if (cudaEventRecord(e1, st) != cudaSuccess ||
	    cudaEventSynchronize(e1) != cudaSuccess ||
	    cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
		rc = diag_fail(d, GPU_E_DEVICE, "exl3 bench: events");
		goto done;
	}
	*ms_op = ms / iters;
done:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	return rc;
}

int gpu_cuda_exl3_encode(struct gpu *g, const float *x, size_t n_tiles,
			 int bits, int cb, uint16_t *states, struct diag *d)
{
	int dev = 0, n_sm = 0, e;

	if (bits < 2)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "exl3 encode: 1 bit is searched on the host");
	CUDA_TRY(cudaGetDevice(&dev));
	CUDA_TRY(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
	e = gpu_cuda_exl3_encode_run(gpu_cuda_stream(g), x, n_tiles, bits, cb, n_sm,
				     states);
	if (e != 0) {
		(void)cudaGetLastError();
		return diag_fail(d, e == (int)cudaErrorMemoryAllocation ? GPU_E_NOMEM
									 : GPU_E_DEVICE,
				 "exl3 encode: %s", cudaGetErrorString((cudaError_t)e));
	}
	return 0;
}
