/* gpu/moe_plan.c — see gpu/moe_plan.h. */
#include "config.h"

#include <string.h>

#include "gpu/gpu.h"
#include "gpu/moe_plan.h"

int gpu_moe_plan_check(const int32_t *ids, size_t n, size_t top_k,
		       size_t n_expert, struct diag *d)
{
	size_t i, j;

	for (i = 0; i < n * top_k; i++) {
		if (ids[i] < 0 || (size_t)ids[i] >= n_expert)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_moe_ffn: row %zu routed to expert %d of %zu",
					 i / top_k, (int)ids[i], n_expert);
		for (j = i - i % top_k; j < i; j++)
			if (ids[j] == ids[i])
				return diag_fail(d, GPU_E_INVALID,
						 "gpu_moe_ffn: row %zu routed to expert "
						 "%d twice", i / top_k, (int)ids[i]);
	}
	return 0;
}

void gpu_moe_plan_sort(const int32_t *ids, const float *wts, size_t n,
		       size_t top_k, size_t n_expert, int32_t *rows, float *swts,
		       size_t *start, size_t *cur)
{
	const size_t nk = n * top_k;
	size_t i, e;

	memset(cur, 0, n_expert * sizeof *cur);
	for (i = 0; i < nk; i++)
		cur[ids[i]]++;
	for (e = 0, i = 0; e < n_expert; e++) {
		const size_t c = cur[e];

		start[e] = cur[e] = i;
		i += c;
	}
	start[n_expert] = nk;
	for (i = 0; i < nk; i++) { /* rows in order: ascending per expert */
		const size_t p = cur[ids[i]]++;

		rows[p] = (int32_t)(i / top_k);
		swts[p] = wts[i];
	}
}

size_t gpu_moe_plan_chunk(const int32_t *rows, const float *wts,
			  const size_t *start, size_t n_expert, size_t n,
			  size_t a, size_t b, int32_t *li, int32_t *cnt,
			  int32_t *fill, struct gpu_moe_piece *pieces,
			  size_t *n_pieces)
{
	const size_t A = b - a;
	int32_t *const srow = li, *const touched = li + 2 * A;
	int32_t *const first = li + 3 * A, *const slot = li + 4 * A + 1;
	float *const swt = (float *)(void *)(li + A);
	size_t i, e, R = 0, pos = 0, np = 0;

	memset(cnt, 0, n * sizeof *cnt);
	for (i = a; i < b; i++) {
		srow[i - a] = rows[i];
		swt[i - a] = wts[i];
		cnt[rows[i]]++;
	}
	for (i = 0; i < n; i++)
		if (cnt[i]) {
			touched[R] = (int32_t)i;
			first[R++] = (int32_t)pos;
			fill[i] = (int32_t)pos;
			pos += (size_t)cnt[i];
		}
	first[R] = (int32_t)pos;
	for (i = a; i < b; i++)
		slot[fill[rows[i]]++] = (int32_t)(i - a);
	for (e = 0; e < n_expert; e++) {
		const size_t lo = start[e] > a ? start[e] : a;
		const size_t hi = start[e + 1] < b ? start[e + 1] : b;

		if (lo < hi)
			pieces[np++] = (struct gpu_moe_piece){
				.expert = (int32_t)e, .s0 = (int32_t)(lo - a),
				.m = (int32_t)(hi - lo) };
	}
	*n_pieces = np;
	return R;
}
