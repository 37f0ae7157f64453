/* gpu/exl3.c — the public gpu_exl3_* entry points (gpu/gpu.h, "EXL3"
 * block): weight lifecycle and one-time validation of the EXL3 linear
 * before it is dispatched to the backend vtable (exl3_upload,
 * exl3_release, exl3_matmul in gpu/gpu_impl.h).
 *
 * Invariant: a backend sees only descriptions with k, n positive multiples
 * of 128, bits in 1..8, a known codebook and non-NULL data, and a matmul
 * whose buffers hold the elements its shape needs (sizes checked in 64-bit
 * arithmetic without overflow).
 */
#include "config.h"

#include "gpu/gpu_impl.h"

#include <stdint.h>
#include <stdlib.h>

static int live(struct gpu *g, struct diag *d)
{
	if (g->poisoned)
		return diag_fail(d, GPU_E_DEVICE,
				 "backend unusable after an earlier device error");
	return 0;
}

/* A device error poisons the handle (as in gpu/gpu.c). */
static int noted(struct gpu *g, int rc)
{
	if (rc == GPU_E_DEVICE)
		g->poisoned = 1;
	return rc;
}

int gpu_exl3_weight_new(struct gpu *g, const struct gpu_exl3_desc *desc,
			struct gpu_exl3_weight **out, struct diag *d)
{
	struct gpu_exl3_weight *w;
	size_t tiles;
	int rc;

	*out = NULL;
	rc = live(g, d);
	if (rc < 0)
		return rc;
	if (!desc)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_weight_new: no description");
	if (desc->k == 0 || desc->k % 128 || desc->n == 0 || desc->n % 128)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_weight_new: shape %zu x %zu is not a "
				 "multiple of 128 on both sides", desc->k, desc->n);
	if (desc->bits < 1 || desc->bits > 8)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_weight_new: %d bits per weight (1..8)",
				 desc->bits);
	if ((int)desc->cb < 0 || (int)desc->cb > 2)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_weight_new: codebook %d", (int)desc->cb);
	if (!desc->trellis || !desc->suh || !desc->svh)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_weight_new: trellis, suh and svh are required");
	tiles = (desc->k / 16) * (desc->n / 16);
	if (tiles / (desc->n / 16) != desc->k / 16 ||
	    tiles > SIZE_MAX / (32 * (size_t)desc->bits))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_weight_new: %zu x %zu overflows", desc->k,
				 desc->n);
	if (!g->be->exl3_upload || !g->be->exl3_release || !g->be->exl3_matmul)
		return diag_fail(d, GPU_E_UNSUPPORTED, "%s backend has no EXL3 ops",
				 g->be->name);
	w = calloc(1, sizeof *w);
	if (!w)
		return diag_fail(d, GPU_E_NOMEM, "gpu_exl3_weight_new: out of memory");
	w->g = g;
	w->k = desc->k;
	w->n = desc->n;
	w->bits = desc->bits;
	w->cb = desc->cb;
	w->has_bias = desc->bias != NULL;
	rc = noted(g, g->be->exl3_upload(g, w, desc, d));
	if (rc < 0) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void gpu_exl3_weight_free(struct gpu_exl3_weight *w)
{
	if (!w)
		return;
	w->g->be->exl3_release(w->g, w);
	free(w);
}

size_t gpu_exl3_weight_k(const struct gpu_exl3_weight *w) { return w->k; }
size_t gpu_exl3_weight_n(const struct gpu_exl3_weight *w) { return w->n; }
int gpu_exl3_weight_bits(const struct gpu_exl3_weight *w) { return w->bits; }
size_t gpu_exl3_weight_bytes(const struct gpu_exl3_weight *w) { return w->bytes; }

/* BUF must be an F32 buffer of g with at least a * b elements. */
static int need_f32(struct gpu *g, const char *name, const struct gpu_buf *buf,
		    size_t a, size_t b, struct diag *d)
{
	if (!buf)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_matmul: %s is NULL", name);
	if (buf->g != g)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul: %s belongs to another backend", name);
	if (buf->dtype != GPU_DTYPE_F32)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul: %s has dtype %s, expected f32", name,
				 gpu_dtype_name(buf->dtype));
	if (b != 0 && a > SIZE_MAX / b)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_matmul: %s shape overflows",
				 name);
	if (buf->n_elems < a * b)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul: %s has %zu elements, needs %zu", name,
				 buf->n_elems, a * b);
	return 0;
}

int gpu_exl3_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		    const struct gpu_exl3_weight *w, size_t n_rows, size_t k_in,
		    size_t n_out, struct diag *d)
{
	int rc = live(g, d);

	if (rc < 0)
		return rc;
	if (!w || w->g != g)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul: weight missing or from another backend");
	if (k_in == 0 || k_in > w->k || n_out == 0 || n_out > w->n)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul: %zu inputs / %zu outputs for a "
				 "%zu x %zu weight", k_in, n_out, w->k, w->n);
	rc = need_f32(g, "out", out, n_rows, n_out, d);
	if (rc == 0)
		rc = need_f32(g, "x", x, n_rows, k_in, d);
	if (rc < 0)
		return rc;
	if (out == x)
		return diag_fail(d, GPU_E_INVALID, "gpu_exl3_matmul: out aliases x");
	if (n_rows == 0)
		return 0;
	return noted(g, g->be->exl3_matmul(g, out, x, w, n_rows, k_in, n_out, d));
}

/* The checks of gpu_exl3_matmul_multi (and gpu_exl3_swiglu). */
static int multi_check(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
		       size_t k_in, const struct gpu_exl3_part *parts,
		       int n_parts, struct diag *d)
{
	int rc = live(g, d), j, i;

	if (rc < 0)
		return rc;
	if (!parts || n_parts < 1 || n_parts > GPU_EXL3_MULTI_MAX)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_matmul_multi: %d parts (1..%d)", n_parts,
				 GPU_EXL3_MULTI_MAX);
	for (j = 0; j < n_parts; j++) {
		const struct gpu_exl3_weight *w = parts[j].w;

		if (!w || w->g != g)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_matmul_multi: part %d: weight missing "
					 "or from another backend", j);
		if (w->k != parts[0].w->k)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_matmul_multi: part %d has k %zu, part 0 "
					 "%zu", j, w->k, parts[0].w->k);
		if (k_in == 0 || k_in > w->k || parts[j].n_out == 0 ||
		    parts[j].n_out > w->n)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_matmul_multi: part %d: %zu inputs / %zu "
					 "outputs for a %zu x %zu weight", j, k_in,
					 parts[j].n_out, w->k, w->n);
		rc = need_f32(g, "out", parts[j].out, n_rows, parts[j].n_out, d);
		if (rc < 0)
			return rc;
		if (parts[j].out == x)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_matmul_multi: part %d's out aliases x", j);
		for (i = 0; i < j; i++)
			if (parts[i].out == parts[j].out)
				return diag_fail(d, GPU_E_INVALID,
						 "gpu_exl3_matmul_multi: parts %d and %d "
						 "share an output", i, j);
	}
	return need_f32(g, "x", x, n_rows, k_in, d);
}

/* The checked parts to the backend: its multi op, or one matmul each. */
static int multi_run(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
		     size_t k_in, const struct gpu_exl3_part *parts, int n_parts,
		     struct diag *d)
{
	int rc, j;

	if (g->be->exl3_matmul_multi && n_parts > 1)
		return noted(g, g->be->exl3_matmul_multi(g, x, n_rows, k_in, parts,
							   n_parts, d));
	for (j = 0; j < n_parts; j++) {
		rc = noted(g, g->be->exl3_matmul(g, parts[j].out, x, parts[j].w,
						 n_rows, k_in, parts[j].n_out, d));
		if (rc < 0)
			return rc;
	}
	return 0;
}

int gpu_exl3_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n_rows,
			  size_t k_in, const struct gpu_exl3_part *parts,
			  int n_parts, struct diag *d)
{
	int rc = multi_check(g, x, n_rows, k_in, parts, n_parts, d);

	if (rc < 0 || n_rows == 0)
		return rc;
	return multi_run(g, x, n_rows, k_in, parts, n_parts, d);
}

/* gpu_exl3_swiglu's checked arguments to the backend: its fused op, or
 * multi_run of the two and its swiglu. */
static int swiglu_run(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		      const struct gpu_buf *x,
		      const struct gpu_exl3_weight *w_gate,
		      const struct gpu_exl3_weight *w_up, size_t n_rows,
		      size_t k_in, size_t n_out, struct diag *d)
{
	const struct gpu_exl3_part pt[2] = { { out, w_gate, n_out },
					     { up, w_up, n_out } };
	int rc;

	if (g->be->exl3_swiglu)
		return noted(g, g->be->exl3_swiglu(g, out, up, x, w_gate, w_up,
						   n_rows, k_in, n_out, d));
	rc = multi_run(g, x, n_rows, k_in, pt, 2, d);
	if (rc < 0)
		return rc;
	return noted(g, g->be->swiglu(g, out, out, up, n_rows * n_out, d));
}

int gpu_exl3_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		    const struct gpu_buf *x, const struct gpu_exl3_weight *w_gate,
		    const struct gpu_exl3_weight *w_up, size_t n_rows, size_t k_in,
		    size_t n_out, struct diag *d)
{
	const struct gpu_exl3_part pt[2] = { { out, w_gate, n_out },
					     { up, w_up, n_out } };
	int rc = multi_check(g, x, n_rows, k_in, pt, 2, d);

	if (rc < 0)
		return rc;
	if (w_gate->n != w_up->n)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_swiglu: gate has %zu outputs, up %zu",
				 w_gate->n, w_up->n);
	if (n_rows == 0)
		return 0;
	return swiglu_run(g, out, up, x, w_gate, w_up, n_rows, k_in, n_out, d);
}

/* gpu_exl3_residual's checks of one op (r->then aside). */
static int residual_check(struct gpu *g, const struct gpu_exl3_residual *r,
			  size_t n_rows, struct diag *d)
{
	const struct gpu_buf *const bufs[4] = { r ? r->x : NULL, r ? r->xn : NULL,
						r ? r->o : NULL, r ? r->a : NULL };
	int rc, i, j;

	if (!r || !r->w || r->w->g != g)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_residual: weight missing or from another "
				 "backend");
	if (r->k_in == 0 || r->k_in > r->w->k || r->dim == 0 || r->dim > r->w->n)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_residual: %zu inputs / %zu outputs for a "
				 "%zu x %zu weight", r->k_in, r->dim, r->w->k, r->w->n);
	rc = need_f32(g, "a", r->a, n_rows, r->k_in, d);
	if (rc == 0)
		rc = need_f32(g, "o", r->o, n_rows, r->dim, d);
	if (rc == 0)
		rc = need_f32(g, "x", r->x, n_rows, r->dim, d);
	if (rc == 0)
		rc = need_f32(g, "xn", r->xn, n_rows, r->dim, d);
	if (rc < 0)
		return rc;
	if (!r->norm_w || r->norm_w->g != g ||
	    (r->norm_w->dtype != GPU_DTYPE_F32 && r->norm_w->dtype != GPU_DTYPE_F16 &&
	     r->norm_w->dtype != GPU_DTYPE_BF16) || r->norm_w->n_elems < r->dim)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_residual: norm_w must be a float buffer of "
				 "at least %zu elements on this backend", r->dim);
	for (i = 0; i < 4; i++)
		for (j = 0; j < i; j++)
			if (bufs[i] == bufs[j])
				return diag_fail(d, GPU_E_INVALID,
						 "gpu_exl3_residual: x, xn, o and a "
						 "must be distinct");
	if (r->n_next) {
		rc = multi_check(g, r->xn, n_rows, r->dim, r->next, r->n_next, d);
		if (rc < 0)
			return rc;
		for (j = 0; j < r->n_next; j++)
			for (i = 0; i < 4; i++)
				if (r->next[j].out == bufs[i])
					return diag_fail(d, GPU_E_INVALID,
							 "gpu_exl3_residual: next part "
							 "%d's output aliases x, xn, o "
							 "or a", j);
		if (r->swiglu && (r->n_next != 2 || r->next[0].w->n != r->next[1].w->n ||
				  r->next[0].n_out != r->next[1].n_out))
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_residual: swiglu needs a gate and an "
					 "up part of one shape");
	} else if (r->swiglu) {
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_exl3_residual: swiglu without next parts");
	}
	if (r->att) {
		const struct gpu_attention_args *a = r->att;

		if (a->out != r->a || !a->b || a->b->n_rows != n_rows || !a->pool ||
		    a->n_head * a->pool->head_dim != r->k_in)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_residual: att needs the op's input a "
					 "as its out, a batch of the op's %zu rows and "
					 "heads x head_dim = k_in (%zu)", n_rows,
					 r->k_in);
		rc = gpu_attention_check(g, a, d);
		if (rc < 0)
			return rc;
	}
	if (r->rope_kv) {
		const struct gpu_rope_kv *a = r->rope_kv;

		if (r->n_next != 3 || r->swiglu || a->q != r->next[0].out ||
		    a->k != r->next[1].out || a->v != r->next[2].out || !a->b ||
		    a->b->n_rows != n_rows || !a->pool ||
		    r->next[0].n_out != a->n_head * a->pool->head_dim ||
		    r->next[1].n_out != a->pool->n_head_kv * a->pool->head_dim ||
		    r->next[2].n_out != a->pool->n_head_kv * a->pool->head_dim)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_residual: rope_kv needs the three "
					 "next outputs as its q, k and v (heads x "
					 "head_dim columns each) and a batch of the "
					 "op's %zu rows", n_rows);
		rc = gpu_rope_kv_check(g, a, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* gpu_rope_kv_store of *a (checked) on the backend. */
static int rope_kv_run(struct gpu *g, const struct gpu_rope_kv *a,
		       struct diag *d)
{
	return noted(g, g->be->rope_kv_store(g, a->q, a->k, a->v, a->n_head,
					     a->pos, a->inv_freq, a->rp, a->pool,
					     a->b, d));
}

/* One op (r->then aside) as the sequence of the ops it stands for. */
static int residual_seq(struct gpu *g, const struct gpu_exl3_residual *r,
			size_t n_rows, struct diag *d)
{
	int rc = 0;

	if (r->att) {
		const struct gpu_attention_args *a = r->att;

		rc = noted(g, g->be->attention(g, a->out, a->q, a->pool, a->b,
					       a->n_head, a->scale, a->window, d));
		if (rc < 0)
			return rc;
	}
	rc = noted(g, g->be->exl3_matmul(g, r->o, r->a, r->w, n_rows, r->k_in,
					 r->dim, d));
	if (rc == 0)
		rc = noted(g, g->be->add_rmsnorm(g, r->x, r->xn, r->o, r->norm_w,
						 n_rows, r->dim, r->eps, d));
	if (rc < 0 || !r->n_next)
		return rc;
	if (r->swiglu)
		return swiglu_run(g, r->next[0].out, r->next[1].out, r->xn,
				  r->next[0].w, r->next[1].w, n_rows, r->dim,
				  r->next[0].n_out, d);
	rc = multi_run(g, r->xn, n_rows, r->dim, r->next, r->n_next, d);
	if (rc == 0 && r->rope_kv)
		rc = rope_kv_run(g, r->rope_kv, d);
	return rc;
}

/* One checked op (and its then): the backend's fused path where it has
 * one and takes the case, else the sequence. */
static int residual_run(struct gpu *g, const struct gpu_exl3_residual *r,
			size_t n_rows, struct diag *d)
{
	int rc;

	if (g->be->exl3_residual) {
		rc = noted(g, g->be->exl3_residual(g, r, n_rows, d));
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	rc = residual_seq(g, r, n_rows, d);
	if (rc == 0 && r->then) /* then->then is NULL (checked) */
		rc = residual_run(g, r->then, n_rows, d);
	return rc;
}

int gpu_exl3_residual(struct gpu *g, const struct gpu_exl3_residual *r,
		      size_t n_rows, struct diag *d)
{
	int rc = live(g, d);

	if (rc == 0)
		rc = residual_check(g, r, n_rows, d);
	if (rc == 0 && r->then) {
		const struct gpu_exl3_residual *t = r->then;

		if (!r->swiglu || t->then || t->att || t->a != r->next[0].out)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_exl3_residual: then needs a SwiGLU op "
					 "whose result is its input, and no then "
					 "or att of its own");
		rc = residual_check(g, t, n_rows, d);
	}
	if (rc < 0 || n_rows == 0)
		return rc;
	return residual_run(g, r, n_rows, d);
}
