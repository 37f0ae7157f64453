/* gpu/cpu/moe.c — mixture-of-experts dispatch on the CPU.
 *
 *   out[i, :] = sum_j weights[i, j] * down[e] (silu(gate[e] x_i) * (up[e] x_i)),
 *   e = ids[i, j]
 *
 * Grouped by expert, in expert order (as transformers' loop over experts
 * does, so the sums are added in the same order): for each expert e the
 * rows routed to it are gathered into scratch, the three matmuls run on the
 * gathered block (so a weight row serves every token routed to e), and the
 * weighted result is added back to each row.
 *
 * EXL3 experts (ex->xgate...) take the same path with the on-the-fly
 * EXL3 linear (gpu/cpu/exl3.c) in place of the dense matmul:
 *   hg = xg . Wg, hu = xg . Wu (dim -> n_ff), yo = hg . Wd (n_ff -> dim),
 *   W = diag(suh) H W_hat H diag(svh) (+ bias), padding handled by it.
 *
 * Scratch layout (f32 elements, gpu_moe_scratch_elems):
 *   xg [n, dim] | hg [n, n_ff] | hu [n, n_ff] | yo [n, dim] |
 *   rows i32 [n * top_k] | wts f32 [n * top_k]
 * (a token picks an expert at most once, so at most n rows per expert).
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"
#include "gpu/exl3_ref.h"
#include "gpu/moe_plan.h"

#include <math.h>

int cpu_moe_ffn(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *ids, const struct gpu_buf *weights,
		const struct gpu_moe_experts *ex, size_t n, size_t dim,
		size_t top_k, struct gpu_buf *scratch, struct diag *d)
{
	const int32_t *id = ids->data;
	const float *wt = weights->data, *xv = x->data;
	float *o = out->data;
	float *xg = scratch->data;
	float *hg = xg + n * dim;
	float *hu = hg + n * ex->n_ff;
	float *yo = hu + n * ex->n_ff;
	int32_t *rows = (int32_t *)(void *)(yo + n * dim);
	float *wts = (float *)(void *)(rows + n * top_k);
	size_t i, j, e, t, m;
	int rc;

	rc = gpu_moe_plan_check(id, n, top_k, ex->n_expert, d);
	if (rc < 0)
		return rc;
	memset(o, 0, n * dim * sizeof *o);
	for (e = 0; e < ex->n_expert; e++) {
		m = 0;
		for (i = 0; i < n; i++)
			for (j = 0; j < top_k; j++)
				if ((size_t)id[i * top_k + j] == e) {
					rows[m] = (int32_t)i;
					wts[m] = wt[i * top_k + j];
					m++;
				}
		if (m == 0)
			continue;
		for (t = 0; t < m; t++)
			memcpy(xg + t * dim, xv + (size_t)rows[t] * dim,
			       dim * sizeof *xg);
		/* hg, hu [m, n_ff] = xg [m, dim] . W^T */
		if (ex->xgate) {
			rc = cpu_exl3_matmul_host(g, hg, xg, ex->xgate[e], m, dim,
						  ex->n_ff, d);
			if (rc == 0)
				rc = cpu_exl3_matmul_host(g, hu, xg, ex->xup[e], m,
							  dim, ex->n_ff, d);
		} else {
			rc = cpu_matmul_host(g, hg, xg, ex->gate[e], NULL, m, dim,
					     ex->n_ff, d);
			if (rc == 0)
				rc = cpu_matmul_host(g, hu, xg, ex->up[e], NULL, m,
						     dim, ex->n_ff, d);
		}
		if (rc < 0)
			return rc;
		for (i = 0; i < m * ex->n_ff; i++)
			hg[i] = hg[i] / (1.0f + expf(-hg[i])) * hu[i];
		/* yo [m, dim] = hg [m, n_ff] . down^T */
		if (ex->xdown)
			rc = cpu_exl3_matmul_host(g, yo, hg, ex->xdown[e], m,
						  ex->n_ff, dim, d);
		else
			rc = cpu_matmul_host(g, yo, hg, ex->down[e], NULL, m,
					     ex->n_ff, dim, d);
		if (rc < 0)
			return rc;
		for (t = 0; t < m; t++) {
			float *dst = o + (size_t)rows[t] * dim;

			for (j = 0; j < dim; j++)
				dst[j] += wts[t] * yo[t * dim + j];
		}
	}
	return 0;
}
