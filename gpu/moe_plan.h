/* gpu/moe_plan.h — planning one chunk of MoE work from a host copy of the
 * routing (internal to gpu/; the CUDA backend's grouped prefill path uses
 * it, tests/gpu/test_cpu_ops.c checks it).  No allocation, no errors. */
#ifndef TERN_GPU_MOE_PLAN_H
#define TERN_GPU_MOE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

/* Check a routing read back to the host: ids [n, top_k] each in [0,
 * n_expert) and no row naming an expert twice.  0, or GPU_E_INVALID
 * naming the first bad row and id (gpu_moe_ffn's messages). */
int gpu_moe_plan_check(const int32_t *ids, size_t n, size_t top_k,
		       size_t n_expert, struct diag *d);

/* Sort the assignments of n rows (ids, wts [n, top_k]; every id in [0,
 * n_expert), no repeat within a row — the caller has checked) by expert,
 * rows ascending within one (gpu/cpu/moe.c's grouping): rows, swts
 * [n * top_k] receive each sorted assignment's row and weight, start
 * [n_expert + 1] where each expert's begin (start[n_expert] = n * top_k).
 * cur: n_expert entries of scratch.  A counting sort, O(n top_k +
 * n_expert). */
void gpu_moe_plan_sort(const int32_t *ids, const float *wts, size_t n,
		       size_t top_k, size_t n_expert, int32_t *rows, float *swts,
		       size_t *start, size_t *cur);

/* One expert's run of a chunk's slots: slots [s0, s0 + m) are expert's. */
struct gpu_moe_piece {
	int32_t expert, s0, m;
};

/* The assignments of one gpu_moe_ffn call sorted by expert (rows
 * ascending within one, as gpu/cpu/moe.c groups them): rows[i], wts[i]
 * for i < start[n_expert], expert e's at [start[e], start[e + 1]); n rows
 * (every rows[i] < n; a row names an expert at most once).  For the chunk
 * of sorted slots [a, b) (a < b <= start[n_expert]; slot s of the chunk
 * is sorted entry a + s) this writes
 *   li, 5 (b - a) + 1 int32 with A = b - a:
 *     [0, A)           slot s's x row, rows[a + s]
 *     [A, 2A)          slot s's weight, wts[a + s] (f32 bits)
 *     [2A, 2A + R)     the rows the chunk touches, ascending
 *     [3A, 3A + R]     where each touched row's slots begin in the next
 *                      area (R + 1 entries, the last = A)
 *     [4A + 1, 5A + 1) each touched row's slots, ascending (so in
 *                      ascending expert order)
 *   pieces: one per expert with slots in the chunk, experts ascending,
 *     together covering slots [0, A) in order (at most n_expert).
 * cnt, fill: int32 [n] of scratch.  Returns R; *n_pieces gets the count
 * of pieces. */
size_t gpu_moe_plan_chunk(const int32_t *rows, const float *wts,
			  const size_t *start, size_t n_expert, size_t n,
			  size_t a, size_t b, int32_t *li, int32_t *cnt,
			  int32_t *fill, struct gpu_moe_piece *pieces,
			  size_t *n_pieces);

#endif
