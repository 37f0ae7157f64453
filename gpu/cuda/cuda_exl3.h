/* gpu/cuda/cuda_exl3.h — EXL3 linears on the CUDA backend (internal to
 * gpu/): the extern "C" launch wrappers of gpu/cuda/exl3.cu and the host
 * side in gpu/cuda/cuda_exl3.c (the exl3_upload / exl3_release /
 * exl3_matmul vtable slots, and a timing helper for the tests).  Free of
 * CUDA types: streams are passed as void * (a cudaStream_t), halves as
 * void *, and launch wrappers return a cudaError_t as int (0 = success;
 * callers wrap them in CUDA_TRY).
 *
 * The linear (docs/exl3-format.md §3.3), k, n multiples of 128, rows in
 * chunks of at most GPU_CUDA_EXL3_ROWS:
 *   1. input:  xh[r, :] = f16(H128_blk(xz[r, :] * suh))    f16 [16, k]
 *   2. gemv:   part[s, r, :] = xh[r, k-slice s] . W_hat[k-slice s, :]
 *              (trellis decoded in registers, tensor-core mma, f32 accum)
 *                                                         f32 [n_kb, 16, n]
 *              MUL1 up to 8 rows (kernel 1, the default):
 *              K_INV * (xh . H) + K_BIAS * sum(xh)
 *              over the slice, H = 1024 + byte sum exact in f16, i.e. the
 *              codebook's values before their rounding to f16 (within
 *              2^-11 relative of W_hat)
 *   3. output: out[r, c] = (H128_blk(sum_s part[s, r, :]) * svh + bias)[c]
 *              for c < n_out
 * Optionally (kernel 2) steps 2 and 3 run as one launch (the last block
 * of each 128-column group does step 3 for it, in the same order: no
 * float atomics, deterministic).
 */
#ifndef TERN_GPU_CUDA_EXL3_H
#define TERN_GPU_CUDA_EXL3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per pass of the fused kernel (one m16 tensor-core tile). */
#define GPU_CUDA_EXL3_ROWS 16
/* Most parts of one multi-part input / output launch (mirrors
 * GPU_EXL3_MULTI_MAX of gpu.h). */
#define GPU_CUDA_EXL3_MULTI_MAX 3
/* Most k-slices (partial sums) of one gemv launch. */
#define GPU_CUDA_EXL3_MAX_KB 32

/* Number of k-slices the gemv launch uses for a k x n weight on a device
 * with n_sm multiprocessors (1 .. GPU_CUDA_EXL3_MAX_KB). */
int gpu_cuda_exl3_splits(size_t k, size_t n, int n_sm);
/* The same for np weights of one k launched together (their n side by
 * side): the slices each of them uses in gpu_cuda_launch_exl3_gemv_multi
 * when the workspace has room (1 .. GPU_CUDA_EXL3_MAX_KB). */
int gpu_cuda_exl3_splits_multi(size_t k, const size_t *n, int np, int n_sm);

/* Step 1 for nr rows (the GEMV path passes <= 16, the prefill path up to
 * GPU_CUDA_EXL3_DQ_ROWS; any count works, one grid row each): x f32
 * [nr, k_in] (k_in <= k), suh f32 [k], xh f16 [nr, k] (row stride k;
 * rows >= nr untouched). */
int gpu_cuda_launch_exl3_input(void *stream, void *xh, const float *x,
			       const float *suh, size_t nr, size_t k_in,
			       size_t k);
/* Step 2: trellis int16 [k/16, n/16, 16*bits] (16-byte aligned), cb the
 * codebook (enum gpu_exl3_cb), part f32 [n_kb, 16, n] (rows < nr written). */
int gpu_cuda_launch_exl3_gemv(void *stream, float *part, const void *xh,
			      const void *trellis, int bits, int cb, size_t nr,
			      size_t k, size_t n, int n_kb);
/* One weight of a multi-part step 2 (arguments of the single launch). */
struct gpu_cuda_exl3_gemv {
	float *part;
	const void *xh, *trellis;
	size_t n;
	int n_kb;
};
/* Step 2 for np (1..GPU_CUDA_EXL3_MULTI_MAX) weights of one bits / cb and
 * k in one launch (parts side by side along the grid's x; each exactly
 * as its own launch). */
int gpu_cuda_launch_exl3_gemv_multi(void *stream,
				    const struct gpu_cuda_exl3_gemv *p, int np,
				    int bits, int cb, size_t nr, size_t k);
/* Steps 2 + 3 in one launch (kernel 2, not the default): as the gemv, then the
 * last block of each 128-column group (counted in cnt, u32 [n/128], all 0
 * before and again after the launch) sums the group's slices in fixed
 * order and writes out f32 [nr, n_out] as step 3 does. */
int gpu_cuda_launch_exl3_gemv_out(void *stream, float *out, float *part,
				  unsigned *cnt, const void *xh,
				  const void *trellis, int bits, int cb,
				  size_t nr, size_t k, size_t n, int n_kb,
				  const float *svh, const float *bias,
				  size_t n_out);
/* k-slices of the fused launch (occupancy-aware; 1 .. MAX_KB). */
int gpu_cuda_exl3_splits2(size_t k, size_t n, int bits, int cb, int n_sm);
/* Step 3: out f32 [nr, n_out]; bias f32 [n] or NULL. */
int gpu_cuda_launch_exl3_output(void *stream, float *out, const float *part,
				int n_kb, const float *svh, const float *bias,
				size_t nr, size_t n, size_t n_out);
/* Step 1 for np (1..GPU_CUDA_EXL3_MULTI_MAX) weights of the same k
 * sharing x, in one launch: xh[j] = the rotation of x by suh[j]. */
int gpu_cuda_launch_exl3_input_multi(void *stream, void *const *xh,
				     const float *x, const float *const *suh,
				     int np, size_t nr, size_t k_in, size_t k);
/* One part of a multi-part step 3 (arguments of the single launch). */
struct gpu_cuda_exl3_out {
	float *out;
	const float *part, *svh, *bias;
	int n_kb;
	size_t n, n_out;
};
/* RoPE and the KV store inside the q/k/v output launch: kv the pool and
 * batch (nr rows), pos the rows' RoPE positions [nr], inv_freq [64],
 * attn_factor as gpu_rope's. */
struct gpu_cuda_exl3_rope {
	struct gpu_cuda_kv kv;
	const int32_t *pos;
	const float *inv_freq;
	float attn_factor;
};
/* Step 3 for np parts in one launch (each exactly as its own launch);
 * with swiglu (np = 2, one shape) only o[0].out is written, with
 * silu(y_0) * y_1 of the two parts' results, as gpu_swiglu computes it.
 * rot_xh (swiglu only; else NULL): also step 1 of the linear that takes
 * that result as its input, with its suh rot_suh and k = o[0].n (a
 * multiple of 128): rot_xh f16 [nr, k] = H128_blk(h * suh), h the result
 * zero-extended past n_out, as gpu_cuda_launch_exl3_input writes it.
 * rope (or NULL; np = 3 parts q, k, v without swiglu, each n = n_out a
 * multiple of 128: heads of head_dim 128, every dim rotated, q with
 * rope->kv's n_head_kv * a whole number of heads, k and v with n_head_kv):
 * then parts 0 and 1 are rotated by position pos[r] before they are
 * written, and parts 1 and 2 stored at row r's cache slot, as
 * gpu_cuda_launch_rope_kv_store does it (the same bits; a row whose
 * sequence, position or page entry is invalid is rotated, not stored). */
int gpu_cuda_launch_exl3_output_multi(void *stream,
				      const struct gpu_cuda_exl3_out *o, int np,
				      size_t nr, int swiglu, void *rot_xh,
				      const float *rot_suh,
				      const struct gpu_cuda_exl3_rope *rope);

/* The EXL3 experts of one MoE layer for few rows, on the device (exl3.cu,
 * "MoE experts on the device"; recordable in a graph): after
 * gpu_cuda_launch_moe_plan (kernels.h) wrote `lists` for A = n * top_k
 * assignments, five launches (input rotations of gate and up, their
 * GEMVs — two launches when gate and up differ in bits or codebook —,
 * outputs + SwiGLU + down's input rotation, down's GEMV, down's output +
 * the weighted sum per row) write out f32 [n, dim].  Every
 * expert's weight of one kind has the same k, n, bits and codebook; its
 * device block holds the trellis at offset 0 and suh / svh / bias (f32)
 * at the byte offsets given (off_bias 0: no bias).  gate / up: k = dk, n
 * = fk; down: k = fk, n = dk (dk, fk multiples of 128, dim <= dk, n_ff <=
 * fk).  Work areas (device, 16-byte aligned): xh_g, xh_u f16 [A, dk],
 * xh_d f16 [A, fk], part_g, part_u f32 [kb_gu, A, fk], part_d f32 [kb_d,
 * A, dk].  cudaErrorInvalidValue on bad sizes. */
struct gpu_cuda_exl3_moe_kind {
	const void *const *base; /* n_expert device blocks */
	size_t off_suh, off_svh, off_bias;
	int bits, cb;
};
struct gpu_cuda_exl3_moe {
	struct gpu_cuda_exl3_moe_kind w[3]; /* gate, up, down */
	size_t n_expert, n, top_k, dim, n_ff, dk, fk;
	int kb_gu, kb_d;
	const float *x;        /* [n, dim] */
	float *out;            /* [n, dim] */
	const int32_t *lists;
	void *xh_g, *xh_u, *xh_d;
	float *part_g, *part_u, *part_d;
};
int gpu_cuda_launch_exl3_moe(void *stream, const struct gpu_cuda_exl3_moe *m);

/* Step 3 of one linear for nr <= GPU_CUDA_EXL3_ROWS rows fused with the
 * residual add, the RMSNorm and step 1 of np (0..MULTI_MAX) next weights
 * of k2 inputs (gpu_exl3_residual): o[r, c] = step 3 (c < dim <= n),
 * x += o, xn = norm_w * (x * inv) (add_rmsnorm's formulas, the sum of
 * squares in another order), xh[j]
 * f16 [nr, k2] = the rotation of xn by suh[j] (zero past dim).  One
 * cluster of 8 blocks per row; dim <= GPU_CUDA_EXL3_TAIL_MAX_DIM. */
#define GPU_CUDA_EXL3_TAIL_MAX_DIM 8192
struct gpu_cuda_exl3_tail {
	const float *part, *svh, *bias;
	int n_kb;
	size_t n, nr, dim;
	float *o, *x, *xn;
	const void *norm_w;
	int norm_wt;
	float eps;
	int np;
	size_t k2;
	void *xh[GPU_CUDA_EXL3_MULTI_MAX];
	const float *suh[GPU_CUDA_EXL3_MULTI_MAX];
};
int gpu_cuda_launch_exl3_tail(void *stream, const struct gpu_cuda_exl3_tail *t);
/* Whether the tail can run here (thread-block clusters: compute
 * capability 9.0 and code built for it); the launch refuses otherwise. */
int gpu_cuda_exl3_tail_ok(void);

/* ---- host side (cuda_exl3.c): the vtable slots ------------------------- */

struct gpu;
struct gpu_buf;
struct gpu_exl3_weight;
struct gpu_exl3_desc;
struct diag;

/* Upload trellis (as is), suh / svh / bias (widened to f32) to the device
 * and make sure the handle's shared workspace (xh and partial sums, kept
 * per handle and reference-counted by the weights) fits this shape.
 * Synchronous.  Errors: GPU_E_NOMEM (device memory), GPU_E_DEVICE. */
int gpu_cuda_exl3_upload(struct gpu *g, struct gpu_exl3_weight *w,
			 const struct gpu_exl3_desc *desc, struct diag *d);
/* Free the weight's device memory (waits for the device); the last weight
 * of a handle also frees the handle's EXL3 workspace. */
void gpu_cuda_exl3_release(struct gpu *g, struct gpu_exl3_weight *w);
/* gpu_exl3_matmul (gpu.h): up to GPU_CUDA_EXL3_DQ_MIN_ROWS rows, 3
 * kernels (2 with kernel 2) per 16 rows; above, the prefill path (input
 * rotation, then per column chunk dequantise + cuBLAS + output rotation,
 * in row chunks of GPU_CUDA_EXL3_DQ_ROWS); on the handle's stream,
 * allocates nothing. */
int gpu_cuda_exl3_matmul(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *x, const struct gpu_exl3_weight *w,
			 size_t n_rows, size_t k_in, size_t n_out, struct diag *d);
/* The same on raw device pointers (the MoE dispatch runs EXL3 experts on
 * its scratch): out f32 [n_rows, n_out], x f32 [n_rows, k_in], arguments
 * valid as gpu_exl3_matmul requires (not checked again), out and x not
 * overlapping; enqueued on the handle's stream, allocates nothing. */
int gpu_cuda_exl3_matmul_raw(struct gpu *g, float *out, const float *x,
			     const struct gpu_exl3_weight *w, size_t n_rows,
			     size_t k_in, size_t n_out, struct diag *d);

/* The quantizer's trellis search (gpu/cuda/exl3_quant.cu): the states of
 * N_TILES tiles of 256 host values X at BITS (2..8) with codebook CB
 * (enum gpu_exl3_cb), into host STATES; the same states as the host
 * search.  Synchronous on STREAM; allocates and frees its device buffers.
 * Returns a cudaError_t (0: success). */
int gpu_cuda_exl3_encode_run(void *stream, const float *x_host, size_t n_tiles,
			     int bits, int cb, int n_sm, uint16_t *states_host);
/* The vtable's exl3_encode (CB an enum gpu_exl3_cb, passed as int here so
 * that the .cu files need not see gpu.h): gpu_cuda_exl3_encode_run on the
 * handle's stream; GPU_E_UNSUPPORTED for 1 bit (the host searches those). */
int gpu_cuda_exl3_encode(struct gpu *g, const float *x, size_t n_tiles,
			 int bits, int cb, uint16_t *states, struct diag *d);

/* gpu_exl3_matmul_multi (gpu.h), parts checked by the front end: see
 * cuda_exl3.c (one input and one output launch for all parts at decode
 * row counts). */
struct gpu_exl3_part;
int gpu_cuda_exl3_matmul_multi(struct gpu *g, const struct gpu_buf *x,
			       size_t n_rows, size_t k_in,
			       const struct gpu_exl3_part *parts, int n_parts,
			       struct diag *d);
/* gpu_exl3_swiglu (gpu.h), checked by the front end: the SwiGLU in the
 * output launch of the decode path. */
int gpu_cuda_exl3_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
			 const struct gpu_buf *x,
			 const struct gpu_exl3_weight *w_gate,
			 const struct gpu_exl3_weight *w_up, size_t n_rows,
			 size_t k_in, size_t n_out, struct diag *d);

/* gpu_exl3_residual (gpu.h), checked by the front end: the fused tail for
 * up to GPU_CUDA_EXL3_ROWS rows (kernel 1, dim <=
 * GPU_CUDA_EXL3_TAIL_MAX_DIM), for r and r->then, r's att first (its
 * combine launch rotating the result for r's weight where it can), the
 * SwiGLU output launch rotating its result for then's weight where it
 * can, a rope_kv in the q/k/v output launch where it can (else the rope
 * op after it); 1 when it ran, 0 when not covered (the front end then
 * runs the sequence), or an error. */
struct gpu_exl3_residual;
int gpu_cuda_exl3_residual(struct gpu *g, const struct gpu_exl3_residual *r,
			   size_t n_rows, struct diag *d);
/* For the tests, process-wide: how many residual ops (r and r->then
 * count one each) ran fully fused (the tail launch and, with next parts,
 * their GEMVs without an input launch); how many SwiGLU output launches
 * also rotated their result for a then's weight. */
unsigned long gpu_cuda_exl3_tail_runs(void);
unsigned long gpu_cuda_exl3_rot_runs(void);
/* For the tests, process-wide: how many q/k/v output launches also
 * rotated q and k and stored k and v (gpu_exl3_residual's rope_kv). */
unsigned long gpu_cuda_exl3_rope_runs(void);

/* How many attention launches also wrote an EXL3 o_proj's rotated input
 * (gpu_exl3_residual's att); for the tests, process-wide. */
unsigned long gpu_cuda_exl3_att_runs(void);

/* gpu_attention (cuda_backend.c) with rot as gpu_cuda_launch_attention's
 * (*rotated: whether the launch wrote it; 0 when rot is NULL). */
struct gpu;
struct gpu_buf;
struct gpu_kv_pool;
struct gpu_kv_batch;
struct diag;
int gpu_cuda_attention_rot(struct gpu *g, struct gpu_buf *out,
			   const struct gpu_buf *q, const struct gpu_kv_pool *pool,
			   const struct gpu_kv_batch *b, size_t n_head,
			   float scale, size_t window,
			   const struct gpu_cuda_att_rot *rot, int *rotated,
			   struct diag *d);

/* The launch view of a pool and a batch (cuda_backend.c). */
void gpu_cuda_kv_fill(struct gpu_cuda_kv *kv, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b);

/* gpu_moe_ffn with EXL3 experts on the device: whether ex qualifies for
 * n rows (gpu_cuda_launch_exl3_moe's conditions: every expert of a kind
 * one shape, bits, codebook and block layout, k / n = dim and n_ff
 * rounded up to 128, n <= GPU_MOE_XL_ROWS, n * top_k <=
 * GPU_CUDA_MOE_MAX_ASSIGN, top_k <= 8, n_expert <=
 * GPU_CUDA_MOE_MAX_EXPERTS); and the dispatch itself: the plan into the
 * scratch's lists (err as gpu_cuda_launch_moe_plan's), then
 * gpu_cuda_launch_exl3_moe on the scratch areas of gpu_moe_xl_layout
 * (gpu_impl.h).  Device pointers; enqueued on the handle's stream;
 * allocates nothing and reads nothing back. */
struct gpu_moe_experts;
bool gpu_cuda_exl3_moe_ok(const struct gpu_moe_experts *ex, size_t n,
			  size_t dim, size_t top_k);
int gpu_cuda_exl3_moe(struct gpu *g, float *out, const float *x,
		      const int32_t *ids, const float *wts,
		      const struct gpu_moe_experts *ex, size_t n, size_t dim,
		      size_t top_k, float *scratch, int *err, struct diag *d);

/* Which kernels gpu_exl3_matmul's small-row path runs: 1 (default) =
 * input, gemv, output (3 launches per 16 rows); 2 = input + fused
 * gemv/output (2 launches; on an H200 about 1-4 us slower per op, see
 * docs/PERFORMANCE.md).  The
 * environment variable TERN_EXL3_KERNEL=2 picks 2 at the first matmul
 * (TERN_EXL3_KB=n sets its slice count at upload, 0 = occupancy model);
 * set_kernel overrides it (for A/B timing).  Both give bit-identical
 * output for the same slice count, except MUL1 weights up to 8 rows:
 * kernel 1 multiplies those with the codebook's exact values (XL_AFFINE),
 * kernel 2 with W_hat (~2e-4 rel L2 apart). */
void gpu_cuda_exl3_set_kernel(int v);
int gpu_cuda_exl3_kernel(void);

/* Timing for tests/benchmarks: runs gpu_exl3_matmul(out, x, w[i % n_w],
 * n_rows, w's k, w's n) warm times, then iters times, each between two
 * CUDA events, rotating over the n_w weights (all of one shape, so that
 * repeated runs need not hit L2); *ms_op = median time of one call (all
 * three kernels), *ms_gemv = median time of the gemv kernel alone (n_rows
 * <= 16).  Needs a CUDA handle. */
int gpu_cuda_exl3_bench(struct gpu *g, struct gpu_exl3_weight *const *w,
			int n_w, struct gpu_buf *out, const struct gpu_buf *x,
			size_t n_rows, int warm, int iters, double *ms_op,
			double *ms_gemv, struct diag *d);
/* Back-to-back timing: iters calls of gpu_exl3_matmul rotating over the
 * weights, enqueued between one pair of events (no host gaps between
 * ops, as in a CUDA graph); *ms_op = mean time of one call. */
int gpu_cuda_exl3_bench_stream(struct gpu *g, struct gpu_exl3_weight *const *w,
			       int n_w, struct gpu_buf *out,
			       const struct gpu_buf *x, size_t n_rows,
			       int iters, double *ms_op, struct diag *d);

/* ---- prefill: dequantise to f16 + cuBLAS (exl3_dq.cu, cuda_exl3.c) ---- *
 *
 * gpu_exl3_matmul with n_rows > GPU_CUDA_EXL3_DQ_MIN_ROWS takes this path
 * (fewer rows keep the fused GEMV above).  Rows in chunks of at most
 * GPU_CUDA_EXL3_DQ_ROWS (R; the n_rows are split evenly over
 * ceil(n_rows / R) chunks), columns in chunks of NC (a multiple of 128 fixed
 * per weight at upload: f16 [NC, k] <= GPU_CUDA_EXL3_DQ_W_BYTES and f32
 * [R, NC] <= GPU_CUDA_EXL3_DQ_PART_BYTES, at least 128, spread evenly over
 * n); only the chunks with columns < n_out are run.  Per row chunk of nr rows:
 *   1. input:   xh[r, :] = f16(H128_blk(xz[r, :] * suh))   f16 [nr, k]
 *               (gpu_cuda_launch_exl3_input, for any nr <= 65535)
 *   per column chunk c0 .. c0 + nc:
 *   2a. dequant: wt[c, :] = W_hat[:, c0 + c]                f16 [nc, k]
 *               (bit-identical to the CPU backend's decode)
 *   2b. cuBLAS:  part[r, c] = xh[r, :] . wt[c, :]          f32 [nr, nc]
 *               (cublasGemmEx OP_T, OP_N, m = nc, n = nr, k = k, f16 in,
 *               compute 32F, on the backend's cuBLAS handle and stream)
 *   3.  output:  out[r, c0 + c] = (H128_blk(part[r, :]) * svh + bias)[c0 + c]
 *               for c0 + c < n_out
 * When one column chunk covers the columns needed, 2a runs once per call.
 * Rounding as the GEMV: only xh is rounded to f16.  xh, wt and part live
 * in the handle's EXL3 workspace (cuda_exl3.c), sized by the uploads
 * (e.g. 14 + 28 + 2.25 MiB for a 14336 x 4096 weight, 4 + 32 + 8 MiB for a
 * 4096 x 128256 head); the matmul allocates nothing.  TERN_EXL3_DQ=0 in
 * the environment (read at the first matmul) turns the path off.
 */

/* Rows above which the prefill path runs. */
#define GPU_CUDA_EXL3_DQ_MIN_ROWS 32
/* Rows per prefill chunk (R): the workspace's xh holds R rows. */
#define GPU_CUDA_EXL3_DQ_ROWS 512
/* Bytes of one f16 W_hat column chunk (NC x k), at most; 32 MiB. */
#define GPU_CUDA_EXL3_DQ_W_BYTES ((size_t)32 << 20)
/* Bytes of the f32 [R, NC] product of one chunk, at most; 32 MiB. */
#define GPU_CUDA_EXL3_DQ_PART_BYTES ((size_t)32 << 20)

/* Step 2a: columns [c0, c0 + nc) of the k x n W_hat of trellis (int16
 * [k/16, n/16, 16*bits], 4-byte aligned; cb the codebook) into wt f16
 * [nc, k] (wt[c * k + r] = W_hat[r][c0 + c]; 4-byte aligned).  k, n, c0,
 * nc multiples of 128, c0 + nc <= n.  cudaErrorInvalidValue on bad
 * arguments. */
int gpu_cuda_launch_exl3_dq(void *stream, void *wt, const void *trellis,
			    int bits, int cb, size_t k, size_t n, size_t c0,
			    size_t nc);
/* Step 3 of one column chunk: part f32 [nr, nc] (16-byte aligned, nc a
 * multiple of 128), out f32 [nr, n_out] (columns c0 .. c0 + nc below n_out
 * written), svh f32 [n], bias f32 [n] or NULL; nr <= 65535. */
int gpu_cuda_launch_exl3_dq_output(void *stream, float *out,
				   const float *part, const float *svh,
				   const float *bias, size_t nr, size_t nc,
				   size_t c0, size_t n_out);

/* Columns per chunk of a k x n weight (0: the path is unusable, k too
 * large for cuBLAS's int sizes).  Uses the override of set_dq_cols. */
size_t gpu_cuda_exl3_dq_cols(size_t k, size_t n);

/* Test / timing hooks (process-wide, not for concurrent use with
 * uploads or matmuls in other threads):
 *   set_dq(0) sends every row count to the GEMV path, set_dq(1) (the
 *   default) restores the prefill path above GPU_CUDA_EXL3_DQ_MIN_ROWS;
 *   set_dq_cols(nc) makes uploads that follow use column chunks of nc
 *   (rounded down to a multiple of 128, at least 128, at most n) instead
 *   of the sizes above; 0 restores them.  Weights keep the chunk size they
 *   were uploaded with;
 *   set_group_splits(0) makes gpu_exl3_matmul_multi's one-launch groups
 *   keep each weight's own k-slices (the fallback when the workspace has
 *   no room for the group's), 1 (the default) restores the group's. */
void gpu_cuda_exl3_set_dq(int on);
void gpu_cuda_exl3_set_dq_cols(size_t nc);
void gpu_cuda_exl3_set_group_splits(int on);

/* For the tests: decode columns [c0, c0 + nc) of w (nc <= the weight's
 * column chunk, c0 and nc multiples of 128, c0 + nc <= n) into the
 * handle's workspace and copy them to dst, u16 (f16 bits) [nc, k]
 * (dst[c * k + r] = W_hat[r][c0 + c]).  Synchronous.  Errors:
 * GPU_E_INVALID (bad range or a weight without the prefill path),
 * GPU_E_DEVICE. */
int gpu_cuda_exl3_dq_read(struct gpu *g, const struct gpu_exl3_weight *w,
			  size_t c0, size_t nc, uint16_t *dst, struct diag *d);

#ifdef __cplusplus
}
#endif
#endif
