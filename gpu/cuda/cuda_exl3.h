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
 *   3. output: out[r, c] = (H128_blk(sum_s part[s, r, :]) * svh + bias)[c]
 *              for c < n_out
 * Optionally (kernel 2) steps 2 and 3 run as one launch (the last block
 * of each 128-column group does step 3 for it, in the same order: no
 * float atomics, deterministic).
 */
#ifndef TERN_GPU_CUDA_EXL3_H
#define TERN_GPU_CUDA_EXL3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per pass of the fused kernel (one m16 tensor-core tile). */
#define GPU_CUDA_EXL3_ROWS 16
/* Most k-slices (partial sums) of one gemv launch. */
#define GPU_CUDA_EXL3_MAX_KB 32

/* Number of k-slices the gemv launch uses for a k x n weight on a device
 * with n_sm multiprocessors (1 .. GPU_CUDA_EXL3_MAX_KB). */
int gpu_cuda_exl3_splits(size_t k, size_t n, int n_sm);

/* Step 1 for nr <= 16 rows: x f32 [nr, k_in] (k_in <= k), suh f32 [k],
 * xh f16 [16, k] (rows >= nr untouched). */
int gpu_cuda_launch_exl3_input(void *stream, void *xh, const float *x,
			       const float *suh, size_t nr, size_t k_in,
			       size_t k);
/* Step 2: trellis int16 [k/16, n/16, 16*bits] (16-byte aligned), cb the
 * codebook (enum gpu_exl3_cb), part f32 [n_kb, 16, n] (rows < nr written). */
int gpu_cuda_launch_exl3_gemv(void *stream, float *part, const void *xh,
			      const void *trellis, int bits, int cb, size_t nr,
			      size_t k, size_t n, int n_kb);
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
/* gpu_exl3_matmul (gpu.h): enqueues 3 kernels (2 with kernel 2) per 16
 * rows on the handle's stream; allocates nothing. */
int gpu_cuda_exl3_matmul(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *x, const struct gpu_exl3_weight *w,
			 size_t n_rows, size_t k_in, size_t n_out, struct diag *d);

/* Which kernels gpu_exl3_matmul runs: 1 (default) = input, gemv, output
 * (3 launches per 16 rows); 2 = input + fused gemv/output (2 launches; on
 * an H200 about 1-4 us slower per op, see docs/PERFORMANCE.md).  The
 * environment variable TERN_EXL3_KERNEL=2 picks 2 at the first matmul
 * (TERN_EXL3_KB=n sets its slice count at upload, 0 = occupancy model);
 * set_kernel overrides it (for A/B timing).  Both give bit-identical
 * output for the same slice count. */
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

#ifdef __cplusplus
}
#endif
#endif
