/* gpu/cuda/kernels.h — extern "C" launch wrappers exported by the .cu files,
 * called by the host C code of the CUDA backend (cuda_backend.c).
 *
 * Each wrapper enqueues its kernel(s) on `stream` (a cudaStream_t passed as
 * void *, so that this header needs no CUDA types) and returns the launch's
 * cudaError_t as an int (0 = success); the caller wraps it in CUDA_TRY.
 * Arguments are already validated by gpu/gpu.c: shapes are consistent and
 * every buffer holds what the shape needs.  Pointers are device pointers.
 * Weight element types are passed as `int wt` with the values of
 * enum cuda_wt, which equal GPU_DTYPE_F32/F16/BF16 (checked in
 * cuda_backend.c).
 */
#ifndef TERN_GPU_CUDA_KERNELS_H
#define TERN_GPU_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Equal to GPU_MAX_HEAD_DIM / GPU_MAX_PAGE_SIZE (checked in cuda_backend.c). */
#define GPU_CUDA_MAX_HEAD_DIM 512
#define GPU_CUDA_MAX_PAGE_SIZE 1024

enum cuda_wt {
	CUDA_WT_F32 = 0,
	CUDA_WT_F16 = 1,
	CUDA_WT_BF16 = 2,
};

/* probe.cu: y[i] = a * x[i] + y[i] for i < n, on stream (cudaStream_t). */
int gpu_cuda_launch_axpy(void *stream, float a, const float *x, float *y, size_t n);

/* ---- ops.cu ------------------------------------------------------------ */

/* out[i, :] = table[ids[i], :] (zero row for an id outside [0, n_table)). */
int gpu_cuda_launch_get_rows(void *stream, float *out, const void *table, int wt,
			     size_t n_table, const int32_t *ids, size_t n,
			     size_t dim);
/* out[i, :] = x[i, :] / sqrt(mean(x[i,:]^2) + eps) * w[:]  (out may be x) */
int gpu_cuda_launch_rmsnorm(void *stream, float *out, const float *x,
			    const void *w, int wt, size_t n, size_t dim, float eps);
/* x[i, :] += o[i, :]; xn[i, :] = x[i, :] / sqrt(mean(x[i,:]^2) + eps) * w[:]
 * (x, xn, o distinct) */
int gpu_cuda_launch_add_rmsnorm(void *stream, float *x, float *xn,
				const float *o, const void *w, int wt, size_t n,
				size_t dim, float eps);
/* rotate-half RoPE in place, x [n, n_head, head_dim]; pos [n] or [3][n];
 * sec: cumulative mrope section ends (NULL: plain). */
int gpu_cuda_launch_rope(void *stream, float *x, size_t n, size_t n_head,
			 size_t head_dim, size_t n_rot, const int32_t *pos,
			 const float *inv_freq, const int *sec, float attn_factor);
/* out[i] = silu(gate[i]) * up[i] */
int gpu_cuda_launch_swiglu(void *stream, float *out, const float *gate,
			   const float *up, size_t n);
/* out[i] = a[i] + b[i] */
int gpu_cuda_launch_add(void *stream, float *out, const float *a,
			const float *b, size_t n);
/* out[i, :] += sigmoid(gate[i]) * y[i, :] */
int gpu_cuda_launch_add_gated(void *stream, float *out, const float *y,
			      const float *gate, size_t n, size_t dim);
/* x[i, :] = softmax(x[i, :]) */
int gpu_cuda_launch_softmax(void *stream, float *x, size_t n, size_t cols);
/* top-k softmax routing, exactly as gpu/cpu/ops.c (double exp sums). */
int gpu_cuda_launch_moe_route(void *stream, const float *logits, int32_t *ids,
			      float *weights, size_t n, size_t n_expert,
			      size_t top_k, int renorm);
/* dst[i] = (f16 or bf16)(src[i]), round to nearest even; wt F16 or BF16. */
int gpu_cuda_launch_f32_to_half(void *stream, void *dst, int wt,
				const float *src, size_t n);
/* out[i, r] += bias[r] for out [n, rows]. */
int gpu_cuda_launch_add_bias(void *stream, float *out, const void *bias,
			     int wt, size_t n, size_t rows);
/* xg[t, :] = x[rows[t], :] for t < m. */
int gpu_cuda_launch_gather_rows(void *stream, float *xg, const float *x,
				const int32_t *rows, size_t m, size_t dim);
/* out[rows[t], :] += wts[t] * y[t, :] for t < m, in order of t (rows are
 * distinct within one call: one token picks an expert once). */
int gpu_cuda_launch_scatter_add(void *stream, float *out, const float *y,
				const int32_t *rows, const float *wts, size_t m,
				size_t dim);
/* Half-precision helpers of the host-planned MoE path's grouped GEMMs
 * (and, the SwiGLU, of gpu_swiglu_ffn's bf16 path); wt F16 or BF16:
 * dst [m, dim] = half(x[rows[t], :]) for t < m; */
int gpu_cuda_launch_gather_rows_half(void *stream, void *dst, int wt,
				     const float *x, const int32_t *rows,
				     size_t m, size_t dim);
/* dst[i] = half(silu(gate[i]) * up[i]) (gpu_cuda_launch_swiglu's float
 * expression on gate, up of half type wt_in, rounded to nearest even);
 * dst may equal gate or up (gpu_swiglu_ffn's bf16 path runs it in
 * place); 16-byte vector loads where bf16 in and out, n % 8 == 0 and
 * aligned (same bits). */
int gpu_cuda_launch_swiglu_half(void *stream, void *dst, int wt,
				const void *gate, const void *up, int wt_in,
				size_t n);
/* for r < n_rows: out[rows[r], :] += wts[s] * y[s, :] (y of half type
 * wt) for s = slot[j], j = start[r] .. start[r + 1] - 1 in that order
 * (one fmaf each); rows distinct. */
int gpu_cuda_launch_moe_scatter_csr(void *stream, float *out, const void *y,
				    int wt, const float *wts,
				    const int32_t *rows, const int32_t *start,
				    const int32_t *slot, size_t n_rows,
				    size_t dim);

/* ---- gemv.cu ----------------------------------------------------------- */

/* Largest n the GEMV path takes (above it: cuBLAS). */
#define GPU_CUDA_GEMV_MAX_N 8

/* out[i, r] = sum_j x[i, j] * W[r, j] (+ bias[r]) for n <= GEMV_MAX_N,
 * W f16/bf16 [rows, k]; bias any float or NULL. */
int gpu_cuda_launch_gemv(void *stream, float *out, const float *x,
			 const void *w, int wt, const void *bias, int bias_wt,
			 size_t n, size_t k, size_t rows);

/* Most weights one GEMV launch covers. */
#define GPU_CUDA_GEMV_MAX_PARTS 4

/* One weight of a multi-weight GEMV: out f32 [n, rows], W [rows, k] (the
 * launch's wt), bias of type bias_wt or NULL; rows > 0. */
struct gpu_cuda_gemv_part {
	float *out;
	const void *w;
	const void *bias;
	int bias_wt;
	size_t rows;
};

/* The GEMV above for 1..GPU_CUDA_GEMV_MAX_PARTS weights of one dtype
 * sharing x [n, k], in one launch (blocks pick their weight by index);
 * each part's result equals its own gpu_cuda_launch_gemv bit for bit. */
int gpu_cuda_launch_gemv_multi(void *stream, const float *x, int wt, size_t n,
			       size_t k, const struct gpu_cuda_gemv_part *parts,
			       int n_parts);
/* out f32 [1, rows] = silu(x W_gate^T) * (x W_up^T) for half weights of
 * one shape [rows, k], no bias, one row of x, in one launch of the GEMV
 * above (each block runs the same rows of both; each product
 * bit-identical to its own GEMV, the SwiGLU as gpu_cuda_launch_swiglu).
 * Returns 1, launching nothing, for any other case (n != 1: measured
 * slower at batch 8; f32 weights, k % 8, misaligned pointers). */
int gpu_cuda_launch_gemv_swiglu(void *stream, float *out, const float *x,
				int wt, size_t n, size_t k, const void *w_gate,
				const void *w_up, size_t rows);

/* MoE experts dispatched on the device (gemv.cu; recordable in a graph):
 * for A = n * top_k <= GPU_CUDA_MOE_MAX_ASSIGN assignments (top_k <= 8)
 * and n_expert <= GPU_CUDA_MOE_MAX_EXPERTS f16/bf16 experts.
 *   1. gpu_cuda_launch_moe_plan: sorts the assignments by expert (rows
 *      ascending within one, as gpu/cpu/moe.c groups them) into slots and
 *      writes `lists` (gpu_cuda_moe_list_elems(A) int32, device): the x
 *      row and routing weight of each slot, each row's slots in
 *      ascending order, the groups (experts with a slot) and each slot's
 *      expert (-1 for the unused tail).  An id
 *      outside [0, n_expert), or repeating an earlier id of its row, gets
 *      no slot; the first one seen is written to err (mapped host memory,
 *      may be NULL): err[1] row, err[2] id, err[3] n_expert, then err[0] =
 *      1 (out of range) or 2 (a repeat).
 *   2. gpu_cuda_launch_gather_rows(xg, x, lists (first A entries), A, dim).
 *   3. gpu_cuda_launch_moe_gemv, gate_up = 1: out [A, rows] = silu(xg
 *      gate_e^T) * (xg up_e^T) per slot with e its expert (wa = gate, wb
 *      = up, n_expert entries each, [rows, k]); gate_up = 0: out = x
 *      down_e^T (wa = down, wb unused).  k % 8 == 0; weights, x, out
 *      16-byte aligned.
 *   4. gpu_cuda_launch_moe_combine: out [n, dim] = sum over each row's
 *      slots (ascending) of weight * y[slot], from zero, one fmaf each. */
#define GPU_CUDA_MOE_MAX_EXPERTS 128
#define GPU_CUDA_MOE_MAX_ASSIGN 128
/* Offsets (int32 elements) of the plan's lists for A assignments; the EXL3
 * expert kernels (exl3.cu) read the same lists. */
#define GPU_CUDA_MOE_SROW(A) 0                /* x row of slot s */
#define GPU_CUDA_MOE_SWT(A) (A)               /* routing weight of slot s (f32 bits) */
#define GPU_CUDA_MOE_RSLOT(A) (2 * (A))       /* row i's slots, ascending, -1 padded */
#define GPU_CUDA_MOE_GEXP(A) (3 * (A))        /* expert of group g */
#define GPU_CUDA_MOE_GSTART(A) (4 * (A))      /* first slot of group g (A + 1) */
#define GPU_CUDA_MOE_NGROUP(A) (5 * (A) + 1)  /* number of groups */
#define GPU_CUDA_MOE_SEXP(A) (5 * (A) + 2)    /* expert of slot s, -1: unused */
/* 6 A + 2 */
size_t gpu_cuda_moe_list_elems(size_t A);
int gpu_cuda_launch_moe_plan(void *stream, const int32_t *ids, const float *wts,
			     size_t n, size_t top_k, size_t n_expert,
			     int32_t *lists, int *err);
int gpu_cuda_launch_moe_gemv(void *stream, int wt, int gate_up,
			     const void *const *wa, const void *const *wb,
			     size_t n_expert, const float *x, float *out,
			     const int32_t *lists, size_t A, size_t k, size_t rows);
int gpu_cuda_launch_moe_combine(void *stream, float *out, const float *y,
				const int32_t *lists, size_t n, size_t top_k,
				size_t dim);

/* ---- attention.cu ------------------------------------------------------ */

/* Paged KV geometry and batch, device pointers (see gpu.h). */
struct gpu_cuda_kv {
	void *k, *v;          /* [n_pages, page_size, n_head_kv, head_dim];
			       * quantized: u32 words, bits a group of 32 */
	int f16;              /* pool element type: 1 = f16, 0 = f32,
			       * 2 = quantized (gpu.h: kb, vb, ks, vs) */
	unsigned kb, vb;      /* quantized: bits of keys and values */
	void *ks, *vs;        /* quantized: f16 scales, one a group */
	size_t n_pages, page_size, n_head_kv, head_dim;
	const int32_t *row_seq, *row_pos, *page_table;
	size_t n_rows, n_seq, max_pages;
};

/* Store k, v f32 [n_rows, n_head_kv, head_dim] at each row's slot; a row
 * with a bad sequence, position or page entry is skipped. */
int gpu_cuda_launch_kv_store(void *stream, const struct gpu_cuda_kv *kv,
			     const float *k, const float *v);
/* Rotate-half RoPE of q [n_rows, n_head, head_dim] and k [n_rows,
 * n_head_kv, head_dim] in place (as gpu_cuda_launch_rope, positions pos [n]
 * or [3][n] with n = kv->n_rows, sec as there), then the store of the
 * rotated k and of v as gpu_cuda_launch_kv_store (bad rows skipped), in
 * one launch of a warp per (row, head).  q_norm, k_norm (both or
 * neither, [head_dim] of type norm_wt): each head RMSNorm'ed in place
 * first (as gpu_cuda_launch_rmsnorm, up to summation order). */
int gpu_cuda_launch_rope_kv_store(void *stream, const struct gpu_cuda_kv *kv,
				  float *q, float *k, const float *v,
				  size_t n_head, size_t n_rot, const int32_t *pos,
				  const float *inv_freq, const int *sec,
				  float attn_factor, const void *q_norm,
				  const void *k_norm, int norm_wt, float norm_eps);
/* Most position splits of one attention launch (flash-decoding). */
#define GPU_CUDA_ATT_MAX_SPLIT 64

/* Context splits (blocks per row and KV head) for n_rows rows of n_head_kv
 * KV heads of head_dim (pool of f16 elements when f16, else f32) whose
 * rows attend at most `span` positions.  The decode kernel divides each
 * row's actual range lo..p into n_split chunks (a multiple of one round of
 * a block's keys, 32 positions for head_dim 128 and an f16 pool, computed
 * on the device from the row's position, so short rows in a long page
 * table use as many splits as they fill and the others exit at once).
 * The partial workspace needs n_rows * n_head * n_split * (head_dim + 2)
 * f32. */
size_t gpu_cuda_attention_splits(size_t n_rows, size_t n_head_kv, size_t span,
				 size_t head_dim, int f16);
/* The split rule that counts waves (gpu_cuda_attention_splits' default;
 * TERN_ATT_SPLITS=target selects the old fixed 512-block target instead):
 * with items = n_rows * n_head_kv blocks a split, units rounds of
 * positions in the span, at most max_split splits (and units) and n_sm
 * SMs holding per_sm decode blocks each (2; 3 for the tensor-core kernel
 * on a quantized pool; < 1 counts as 2): 1 when items fill the per_sm n_sm
 * slots already, else the fewest splits s minimising ceil(items s /
 * (per_sm n_sm)) * ceil(units / s).  Pure host arithmetic. */
size_t gpu_cuda_attention_splits_waves(size_t items, size_t units,
				       size_t max_split, int n_sm, int per_sm);
/* Causal GQA attention over the pool (gpu.h formula).  A row whose
 * sequence or position is invalid gets zeros; positions whose page entry
 * is invalid are left out.  n_split > 1: part_o [rows*heads*n_split,
 * head_dim] and part_ml [rows*heads*n_split, 2] are scratch.  single_seq:
 * the caller promises every row is of one sequence (gpu_kv_batch), so
 * when the prefill kernel runs it takes every row and the decode kernel is
 * not launched. */
/* rot (or NULL): an EXL3 o_proj's input transform, xh f16 [n_rows, k]
 * = H128 per 128-block of (out * suh) (xh of the linear's workspace, k =
 * n_head * 128), which the combine launch writes beside out when it runs
 * and covers every row (split-K, fewer than 16 rows, head_dim 128);
 * *rotated (may be NULL) says whether it did. */
struct gpu_cuda_att_rot {
	void *xh;
	const float *suh;
	size_t k;
};
int gpu_cuda_launch_attention(void *stream, const struct gpu_cuda_kv *kv,
			      float *out, const float *q, size_t n_head,
			      float scale, size_t window, size_t n_split,
			      int single_seq, float *part_o, float *part_ml,
			      const struct gpu_cuda_att_rot *rot, int *rotated);

#ifdef __cplusplus
}
#endif
#endif
