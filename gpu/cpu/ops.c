/* gpu/cpu/ops.c — the CPU backend's small ops: row lookup, RMSNorm (and
 * the residual add fused with it), RoPE, SwiGLU, add, gated add, softmax
 * and MoE routing.
 *
 * Each op is a plain loop over rows with the formula of gpu.h; rows are
 * divided between pool threads when there are enough of them to pay for
 * the dispatch (PAR_MIN elements), otherwise the caller runs it alone.
 * All arithmetic is f32 except where a comment says otherwise.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"

#include <math.h>

/* Fewer elements than this: run on the calling thread. */
#define PAR_MIN 32768

struct rows_job {
	void (*row_fn)(const void *ctx, size_t lo, size_t hi);
	const void *ctx;
	size_t n, chunk;
};

static void rows_chunk(void *ctx, size_t c, int tid)
{
	const struct rows_job *j = ctx;
	size_t lo = c * j->chunk, hi = lo + j->chunk;

	(void)tid;
	j->row_fn(j->ctx, lo, hi < j->n ? hi : j->n);
}

/* Run row_fn over [0, n) rows, split between threads when the op touches
 * at least PAR_MIN elements (work = n * row_elems). */
static void par_rows(struct gpu *g, size_t n, size_t row_elems,
		     void (*row_fn)(const void *, size_t, size_t),
		     const void *ctx)
{
	struct cpu_state *st = cpu_state(g);
	struct rows_job j;

	if (n * row_elems < PAR_MIN || n == 1 || st->n_threads == 1) {
		row_fn(ctx, 0, n);
		return;
	}
	j.row_fn = row_fn;
	j.ctx = ctx;
	j.n = n;
	j.chunk = cpu_chunk_size(n, st->n_threads, 1, 1);
	cpu_pool_for(st->pool, (n + j.chunk - 1) / j.chunk, rows_chunk, &j);
}

/* ---- get_rows: out[i, :] = table[ids[i], :] ------------------------------- */

struct get_rows_ctx {
	float *out;
	const struct gpu_buf *table;
	const int32_t *ids;
	size_t n_rows_table, dim;
};

static void get_rows_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct get_rows_ctx *c = ctx;
	size_t i;

	for (i = lo; i < hi; i++) {
		int32_t id = c->ids[i];
		float *o = c->out + i * c->dim;

		if (id < 0 || (size_t)id >= c->n_rows_table)
			memset(o, 0, c->dim * sizeof *o);
		else
			cpu_to_f32(o, c->table, (size_t)id * c->dim, c->dim);
	}
}

int cpu_get_rows(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *table,
		 size_t n_rows_table, const struct gpu_buf *ids,
		 size_t ids_offset, size_t n, size_t dim, struct diag *d)
{
	struct get_rows_ctx c = { (float *)out->data, table,
				  (const int32_t *)ids->data + ids_offset,
				  n_rows_table, dim };

	(void)d;
	par_rows(g, n, dim, get_rows_fn, &c);
	return 0;
}

/* ---- RMSNorm: out = x / sqrt(mean(x^2) + eps) * w ------------------------ */

struct rmsnorm_ctx {
	float *out;
	float *x;          /* add_rmsnorm: the residual, updated in place */
	const float *o;    /* add_rmsnorm: what is added; NULL for rmsnorm */
	const struct gpu_buf *w;
	size_t dim;
	float eps;
};

/* One row: o[j] = w[j] * (x[j] * inv), inv = 1 / sqrt(mean(x^2) + eps);
 * o may equal x. */
static void rmsnorm_row(float *o, const float *x, const struct gpu_buf *w,
			size_t dim, float eps)
{
	double ss = 0.0; /* sum of squares in double: dim may be 8k */
	float inv;
	size_t j;

	for (j = 0; j < dim; j++)
		ss += (double)x[j] * x[j];
	inv = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
	if (w->dtype == GPU_DTYPE_F32) {
		const float *wf = w->data;

		for (j = 0; j < dim; j++)
			o[j] = wf[j] * (x[j] * inv);
	} else {
		for (j = 0; j < dim; j++)
			o[j] = cpu_elem_f32(w, j) * (x[j] * inv);
	}
}

static void rmsnorm_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct rmsnorm_ctx *c = ctx;
	size_t i;

	for (i = lo; i < hi; i++)
		rmsnorm_row(c->out + i * c->dim, c->x + i * c->dim, c->w, c->dim,
			    c->eps);
}

/* x[i, :] += o[i, :] (f32 adds, as cpu_add), then the row's norm of the
 * new x: the same bits as cpu_add followed by cpu_rmsnorm. */
static void add_rmsnorm_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct rmsnorm_ctx *c = ctx;
	size_t i, j;

	for (i = lo; i < hi; i++) {
		float *x = c->x + i * c->dim;
		const float *o = c->o + i * c->dim;

		for (j = 0; j < c->dim; j++)
			x[j] = x[j] + o[j];
		rmsnorm_row(c->out + i * c->dim, x, c->w, c->dim, c->eps);
	}
}

int cpu_rmsnorm(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *w, size_t n, size_t dim, float eps,
		struct diag *d)
{
	/* x is only read (the cast drops const for the shared context) */
	struct rmsnorm_ctx c = { (float *)out->data, (float *)x->data, NULL, w,
				 dim, eps };

	(void)d;
	par_rows(g, n, dim, rmsnorm_fn, &c);
	return 0;
}

int cpu_add_rmsnorm(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
		    const struct gpu_buf *o, const struct gpu_buf *w, size_t n,
		    size_t dim, float eps, struct diag *d)
{
	struct rmsnorm_ctx c = { (float *)xn->data, (float *)x->data,
				 (const float *)o->data, w, dim, eps };

	(void)d;
	par_rows(g, n, dim, add_rmsnorm_fn, &c);
	return 0;
}

/* ---- RoPE (rotate-half) ------------------------------------------------ */

struct rope_ctx {
	float *x;
	size_t n, n_head, head_dim, half;
	const int32_t *pos; /* [n] or [3][n] */
	const float *inv_freq;
	int sec[3];         /* cumulative section ends, or all 0 for plain */
	int mrope;
	float attn_factor;
};

static void rope_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct rope_ctx *c = ctx;
	float cs[GPU_MAX_HEAD_DIM / 2], sn[GPU_MAX_HEAD_DIM / 2];
	size_t i, h, f;

	for (i = lo; i < hi; i++) {
		/* angles for this token: theta_f = pos_c(f) * inv_freq[f] */
		for (f = 0; f < c->half; f++) {
			int comp = 0;
			float theta;

			if (c->mrope)
				comp = (int)f < c->sec[0] ? 0 :
				       (int)f < c->sec[1] ? 1 : 2;
			theta = (float)c->pos[(size_t)comp * c->n + i] *
				c->inv_freq[f];
			cs[f] = cosf(theta) * c->attn_factor;
			sn[f] = sinf(theta) * c->attn_factor;
		}
		for (h = 0; h < c->n_head; h++) {
			float *v = c->x + (i * c->n_head + h) * c->head_dim;

			for (f = 0; f < c->half; f++) {
				float a = v[f], b = v[f + c->half];

				v[f] = a * cs[f] - b * sn[f];
				v[f + c->half] = b * cs[f] + a * sn[f];
			}
		}
	}
}

int cpu_rope(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
	     size_t head_dim, const struct gpu_buf *pos,
	     const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
	     struct diag *d)
{
	struct rope_ctx c;

	(void)d;
	c.x = x->data;
	c.n = n;
	c.n_head = n_head;
	c.head_dim = head_dim;
	c.half = rp->n_rot / 2;
	c.pos = pos->data;
	c.inv_freq = inv_freq->data;
	c.mrope = rp->mrope_section != NULL;
	c.sec[0] = c.sec[1] = c.sec[2] = 0;
	if (c.mrope) {
		c.sec[0] = rp->mrope_section[0];
		c.sec[1] = c.sec[0] + rp->mrope_section[1];
		c.sec[2] = c.sec[1] + rp->mrope_section[2];
	}
	c.attn_factor = rp->attn_factor;
	par_rows(g, n, n_head * head_dim, rope_fn, &c);
	return 0;
}

/* ---- elementwise ------------------------------------------------------- */

struct ew_ctx {
	float *out;
	const float *a, *b;
};

static void swiglu_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct ew_ctx *c = ctx;
	size_t i;

	/* silu(g) * u = g / (1 + exp(-g)) * u */
	for (i = lo; i < hi; i++) {
		float gv = c->a[i];

		c->out[i] = gv / (1.0f + expf(-gv)) * c->b[i];
	}
}

static void add_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct ew_ctx *c = ctx;
	size_t i;

	for (i = lo; i < hi; i++)
		c->out[i] = c->a[i] + c->b[i];
}

/* Elementwise ops are split in 4096-element "rows" for the thread helper. */
#define EW_CHUNK 4096

struct ew_chunk_ctx {
	void (*fn)(const void *, size_t, size_t);
	const struct ew_ctx *c;
	size_t n;
};

static void ew_chunk_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct ew_chunk_ctx *c = ctx;
	size_t a = lo * EW_CHUNK, b = hi * EW_CHUNK;

	if (b > c->n)
		b = c->n;
	c->fn(c->c, a, b);
}

static void ew_run(struct gpu *g, size_t n,
		   void (*fn)(const void *, size_t, size_t), const struct ew_ctx *c)
{
	struct ew_chunk_ctx cc = { fn, c, n };

	par_rows(g, (n + EW_CHUNK - 1) / EW_CHUNK, EW_CHUNK, ew_chunk_fn, &cc);
}

int cpu_swiglu(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *gate,
	       const struct gpu_buf *up, size_t n, struct diag *d)
{
	struct ew_ctx c = { (float *)out->data, (const float *)gate->data,
			    (const float *)up->data };

	(void)d;
	ew_run(g, n, swiglu_fn, &c);
	return 0;
}

int cpu_add(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
	    const struct gpu_buf *b, size_t n, struct diag *d)
{
	struct ew_ctx c = { (float *)out->data, (const float *)a->data,
			    (const float *)b->data };

	(void)d;
	ew_run(g, n, add_fn, &c);
	return 0;
}

int cpu_add_gated(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *y,
		  const struct gpu_buf *gate, size_t n, size_t dim,
		  struct diag *d)
{
	float *o = out->data;
	const float *yv = y->data, *gv = gate->data;
	size_t i, j;

	(void)g;
	(void)d;
	for (i = 0; i < n; i++) {
		/* sigmoid(z) = 1 / (1 + exp(-z)) */
		float s = 1.0f / (1.0f + expf(-gv[i]));

		for (j = 0; j < dim; j++)
			o[i * dim + j] += s * yv[i * dim + j];
	}
	return 0;
}

/* ---- softmax ----------------------------------------------------------- */

struct softmax_ctx {
	float *x;
	size_t cols;
};

static void softmax_row(float *x, size_t cols)
{
	float mx = x[0], sum = 0.0f;
	size_t j;

	for (j = 1; j < cols; j++)
		if (x[j] > mx)
			mx = x[j];
	for (j = 0; j < cols; j++) {
		x[j] = expf(x[j] - mx);
		sum += x[j];
	}
	for (j = 0; j < cols; j++)
		x[j] /= sum;
}

static void softmax_fn(const void *ctx, size_t lo, size_t hi)
{
	const struct softmax_ctx *c = ctx;
	size_t i;

	for (i = lo; i < hi; i++)
		softmax_row(c->x + i * c->cols, c->cols);
}

int cpu_softmax(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
		struct diag *d)
{
	struct softmax_ctx c = { (float *)x->data, cols };

	(void)d;
	par_rows(g, n, cols, softmax_fn, &c);
	return 0;
}

/* ---- MoE routing ------------------------------------------------------- */

int cpu_moe_route(struct gpu *g, const struct gpu_buf *logits,
		  struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
		  size_t n_expert, size_t top_k, bool renorm, struct diag *d)
{
	const float *lg = logits->data;
	int32_t *id = ids->data;
	float *wt = weights->data;
	size_t i, j, e;

	(void)g;
	(void)d;
	for (i = 0; i < n; i++) {
		const float *row = lg + i * n_expert;
		float mx = row[0];
		double sum = 0.0, ksum = 0.0;

		for (e = 1; e < n_expert; e++)
			if (row[e] > mx)
				mx = row[e];
		for (e = 0; e < n_expert; e++)
			sum += exp((double)(row[e] - mx));
		/* selection by repeated arg-max: n_expert is small (<= 256)
		 * and top_k smaller; ties go to the lower index */
		for (j = 0; j < top_k; j++) {
			size_t best = n_expert;

			for (e = 0; e < n_expert; e++) {
				size_t q;
				int taken = 0;

				for (q = 0; q < j; q++)
					if ((size_t)id[i * top_k + q] == e)
						taken = 1;
				if (taken)
					continue;
				if (best == n_expert || row[e] > row[best])
					best = e;
			}
			id[i * top_k + j] = (int32_t)best;
			/* p = exp(l - max) / sum */
			wt[i * top_k + j] =
				(float)(exp((double)(row[best] - mx)) / sum);
			ksum += wt[i * top_k + j];
		}
		if (renorm)
			for (j = 0; j < top_k; j++)
				wt[i * top_k + j] = (float)(wt[i * top_k + j] / ksum);
	}
	return 0;
}
