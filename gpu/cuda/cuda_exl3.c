/* gpu/cuda/cuda_exl3.c — host side of EXL3 linears on the CUDA backend:
 * weight upload / release and the matmul dispatch (vtable slots
 * exl3_upload, exl3_release, exl3_matmul; kernels and formulas in
 * gpu/cuda/exl3.cu and gpu/cuda/cuda_exl3.h).
 *
 * Device memory per weight (w->priv, struct cuda_exl3): one cudaMalloc
 * block holding the trellis exactly as stored (int16 [k/16, n/16, 16K]),
 * then suh f32 [k], svh f32 [n] and bias f32 [n] (widened from f16 on the
 * host at upload), each 256-byte aligned.
 *
 * Workspace: the kernels need xh f16 [16, k] and the partial sums f32
 * [n_kb, 16, n] of the weight being run.  One workspace per handle serves
 * every weight (ops of a handle run in stream order); it lives in a small
 * process-wide list keyed by the handle, guarded by a mutex, counted by
 * the weights that use it, grown (after a stream sync) by an upload that
 * needs more, and freed with the handle's last weight.  So matmul
 * allocates nothing and may be captured in a CUDA graph; upload every
 * weight before capturing (a growing upload moves the workspace).
 *
 * Rows are run in chunks of GPU_CUDA_EXL3_ROWS (16): input, gemv, output
 * kernels per chunk (kernel 1, the default), or input and a fused gemv +
 * output (kernel 2, TERN_EXL3_KERNEL=2 / gpu_cuda_exl3_set_kernel; measured
 * slower on an H200, kept for A/B work: docs/PERFORMANCE.md).  The fused
 * kernel also uses u32 group counters [n/128] in the workspace, zero
 * between launches.  Above 16 rows the trellis is therefore decoded once
 * per 16 rows (correct, not yet the prefill path: see the report of
 * issue 8 — a dequantise-to-f16 + cuBLAS path belongs here).
 *
 * The handle's stream comes from gpu_cuda_stream (cuda_impl.h); upload
 * still checks that it is a live non-blocking stream of the current
 * device.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "gpu/cuda/cuda_check.h"
#include "gpu/cuda/cuda_exl3.h"
#include "gpu/cuda/cuda_impl.h"
#include "gpu/gpu_impl.h"

static cudaStream_t xl_stream(struct gpu *g)
{
	return (cudaStream_t)gpu_cuda_stream(g);
}

/* ---- the per-handle workspace -------------------------------------------- */

struct xl_ws {
	struct xl_ws *next;
	struct gpu *g;
	int refs;
	void *xh;          /* f16 [16, k_max] */
	size_t xh_bytes;
	float *part;       /* f32 [n_kb, 16, n] */
	size_t part_bytes;
	unsigned *cnt;     /* u32 [n/128] group counters of the fused kernel (0) */
	size_t cnt_bytes;
};

static pthread_mutex_t g_ws_mu = PTHREAD_MUTEX_INITIALIZER;
static struct xl_ws *g_ws;

struct cuda_exl3 {
	void *mem;          /* the weight's block (owns the pointers below) */
	void *trellis;
	float *suh, *svh, *bias;
	int n_kb;           /* k-slices of the gemv (kernel 1) */
	int n_kb2;          /* k-slices of the fused gemv (kernel 2) */
	struct xl_ws *ws;
};

static size_t al256(size_t a)
{
	return (a + 255) & ~(size_t)255;
}

static float h2f(uint16_t h)
{
	uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u,
		 m = h & 1023u, u;
	float f;

	if (e == 31) {
		u = s | 0x7F800000u | (m << 13);
	} else if (e) {
		u = s | ((e + 112u) << 23) | (m << 13);
	} else if (m) { /* subnormal: m 2^-24, exact in f32 */
		f = (float)m * 5.9604644775390625e-8f;
		return (h & 0x8000u) ? -f : f;
	} else {
		u = s;
	}
	memcpy(&f, &u, 4);
	return f;
}

static void widen(float *dst, const void *src, size_t n)
{
	const unsigned char *p = src;
	size_t i;

	for (i = 0; i < n; i++) {
		uint16_t h;

		memcpy(&h, p + 2 * i, 2);
		dst[i] = h2f(h);
	}
}

/* Make sure ws of g holds the sizes asked for; called with g_ws_mu held. */
static int ws_fit(struct gpu *g, struct xl_ws *ws, size_t xh_bytes,
		  size_t part_bytes, size_t cnt_bytes, struct diag *d)
{
	if (ws->cnt_bytes < cnt_bytes) {
		CUDA_TRY(cudaStreamSynchronize(xl_stream(g)));
		if (ws->cnt)
			CUDA_TRY(cudaFree(ws->cnt));
		ws->cnt = NULL;
		ws->cnt_bytes = 0;
		if (cudaMalloc((void **)&ws->cnt, cnt_bytes) != cudaSuccess) {
			(void)cudaGetLastError();
			ws->cnt = NULL;
			return diag_fail(d, GPU_E_NOMEM,
					 "exl3: cannot allocate a %zu-byte workspace",
					 cnt_bytes);
		}
		CUDA_TRY(cudaMemset(ws->cnt, 0, cnt_bytes));
		ws->cnt_bytes = cnt_bytes;
	}
	if (ws->xh_bytes < xh_bytes) {
		CUDA_TRY(cudaStreamSynchronize(xl_stream(g)));
		if (ws->xh)
			CUDA_TRY(cudaFree(ws->xh));
		ws->xh = NULL;
		ws->xh_bytes = 0;
		if (cudaMalloc(&ws->xh, xh_bytes) != cudaSuccess) {
			(void)cudaGetLastError();
			ws->xh = NULL;
			return diag_fail(d, GPU_E_NOMEM,
					 "exl3: cannot allocate a %zu-byte workspace",
					 xh_bytes);
		}
		/* rows >= nr of a chunk are read (never used): keep them finite */
		CUDA_TRY(cudaMemset(ws->xh, 0, xh_bytes));
		ws->xh_bytes = xh_bytes;
	}
	if (ws->part_bytes < part_bytes) {
		CUDA_TRY(cudaStreamSynchronize(xl_stream(g)));
		if (ws->part)
			CUDA_TRY(cudaFree(ws->part));
		ws->part = NULL;
		ws->part_bytes = 0;
		if (cudaMalloc((void **)&ws->part, part_bytes) != cudaSuccess) {
			(void)cudaGetLastError();
			ws->part = NULL;
			return diag_fail(d, GPU_E_NOMEM,
					 "exl3: cannot allocate a %zu-byte workspace",
					 part_bytes);
		}
		ws->part_bytes = part_bytes;
	}
	return 0;
}

/* The workspace of g with one more reference, fitted; NULL on error. */
static struct xl_ws *ws_get(struct gpu *g, size_t xh_bytes, size_t part_bytes,
			    size_t cnt_bytes, struct diag *d, int *rc)
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
	*rc = ws_fit(g, ws, xh_bytes, part_bytes, cnt_bytes, d);
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
		free(ws);
	}
	pthread_mutex_unlock(&g_ws_mu);
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
	q->n_kb = gpu_cuda_exl3_splits(k, n, n_sm);
	/* the fused kernel: kernel 1's slices unless TERN_EXL3_KB says
	 * otherwise (0 = the occupancy model, n = n slices; for timing) */
	q->n_kb2 = q->n_kb;
	{
		const char *e = getenv("TERN_EXL3_KB");
		long v = e && *e ? strtol(e, NULL, 10) : -1;

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
	xh_bytes = (size_t)GPU_CUDA_EXL3_ROWS * k * 2;
	part_bytes = (size_t)(q->n_kb > q->n_kb2 ? q->n_kb : q->n_kb2) *
		     GPU_CUDA_EXL3_ROWS * n * 4;
	q->ws = ws_get(g, xh_bytes, part_bytes, (n / 128) * sizeof(unsigned), d,
		       &rc);
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
		const char *e = getenv("TERN_EXL3_KERNEL");

		v = e && !strcmp(e, "2") ? 2 : 1;
		__atomic_store_n(&g_kernel, v, __ATOMIC_RELAXED);
	}
	return v;
}

int gpu_cuda_exl3_matmul(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *x, const struct gpu_exl3_weight *w,
			 size_t n_rows, size_t k_in, size_t n_out, struct diag *d)
{
	const struct cuda_exl3 *q = w->priv;
	cudaStream_t st = xl_stream(g);
	const float *xp = (const float *)x->data;
	float *op = (float *)out->data;
	const int fused = gpu_cuda_exl3_kernel() == 2;
	size_t r0;

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
