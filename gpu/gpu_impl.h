/* gpu/gpu_impl.h — the backend vtable behind gpu/gpu.h (internal to gpu/).
 *
 * gpu.c validates every public call once (dtypes, element counts including
 * offsets, shape relations) and then calls the backend through `struct
 * gpu_backend`; a backend may therefore assume its arguments are consistent
 * and only checks what lives in device memory (ids, page entries) where it
 * can do so cheaply.  Backends register in gpu/registry.c.
 *
 * Invariants: a `struct gpu_buf` belongs to exactly one `struct gpu` (its
 * `g`), which outlives it; `bytes == n_elems * gpu_dtype_size(dtype)`.
 */
#ifndef TERN_GPU_GPU_IMPL_H
#define TERN_GPU_GPU_IMPL_H

#include "gpu/gpu.h"

struct gpu_backend;

struct gpu {
	const struct gpu_backend *be;
	enum gpu_kind kind;
	int n_threads;     /* CPU worker count incl. caller; 1 elsewhere */
	int poisoned;      /* set after GPU_E_DEVICE: every later call fails */
	int recording;     /* between gpu_graph_begin and gpu_graph_end */
	char desc[96];     /* gpu_describe() */
	void *priv;        /* backend state */
};

struct gpu_buf {
	struct gpu *g;
	enum gpu_dtype dtype;
	size_t n_elems;
	size_t bytes;
	void *data;        /* host pointer (CPU) or device pointer (CUDA) */
};

/* An EXL3 linear (gpu.h): dims and format, backend representation in
 * priv (the CPU keeps an aligned copy of the trellis and f32 scales). */
struct gpu_exl3_weight {
	struct gpu *g;
	size_t k, n;
	int bits;
	enum gpu_exl3_cb cb;
	int has_bias;
	size_t bytes;      /* backend memory held */
	void *priv;
};

/* CUDA's device dispatch of EXL3 experts (gpu_moe_ffn for up to
 * GPU_MOE_XL_ROWS rows, A = rows * top_k <= GPU_MOE_DEVICE_MAX_ASSIGN
 * assignments) keeps its work in gpu_moe_ffn's scratch; gpu.c sizes the
 * scratch for it and gpu/cuda/cuda_exl3.c carves it, both with
 * gpu_moe_xl_layout: f32-element offsets of
 *   lists i32 [6 A + 2] | xh_gate, xh_up f16 [A, dk] | xh_down f16 [A, fk] |
 *   part_gate, part_up f32 [KB, A, fk] | part_down f32 [KB, A, dk]
 * (dk, fk: dim and n_ff rounded up to 128; KB = GPU_MOE_XL_KB, the most
 * k-slices of its GEMVs), each area on a 64-element (256-byte) boundary.
 * Returns the total; off (7 entries) may be NULL. */
#define GPU_MOE_XL_ROWS 16
#define GPU_MOE_XL_KB 4
static inline size_t gpu_moe_xl_layout(size_t A, size_t dim, size_t n_ff,
				       size_t *off)
{
	const size_t dk = (dim + 127) / 128 * 128, fk = (n_ff + 127) / 128 * 128;
	const size_t kb = GPU_MOE_XL_KB;
	const size_t sz[7] = { 6 * A + 2, A * dk / 2, A * dk / 2, A * fk / 2,
			       kb * A * fk, kb * A * fk, kb * A * dk };
	size_t t = 0;
	int i;

	for (i = 0; i < 7; i++) {
		if (off)
			off[i] = t;
		t += (sz[i] + 63) / 64 * 64;
	}
	return t;
}

/* One backend.  Every member documents whether it is required; an optional
 * member left NULL makes the matching op return GPU_E_UNSUPPORTED unless a
 * default is named.  Ops receive validated arguments (see gpu.h for the
 * formulas) and return 0 or a negative GPU_E_* with context in d. */
struct gpu_backend {
	enum gpu_kind kind;
	const char *name;

	/* required: fill g->priv, g->n_threads, g->desc from params */
	int (*open)(struct gpu *g, const struct gpu_params *p, struct diag *d);
	/* required: release g->priv (all buffers are already freed) */
	void (*close)(struct gpu *g);
	/* optional, default: no-op (synchronous backend) */
	int (*sync)(struct gpu *g, struct diag *d);

	/* required: allocate b->bytes into b->data (bytes may be 0) */
	int (*buf_alloc)(struct gpu *g, struct gpu_buf *b, struct diag *d);
	/* required: release b->data */
	void (*buf_release)(struct gpu *g, struct gpu_buf *b);
	/* required: host <-> device copies of byte ranges */
	int (*buf_write)(struct gpu *g, struct gpu_buf *b, size_t byte_off,
			 const void *src, size_t n_bytes, struct diag *d);
	int (*buf_read)(struct gpu *g, const struct gpu_buf *b, size_t byte_off,
			void *dst, size_t n_bytes, struct diag *d);
	/* required */
	int (*buf_zero)(struct gpu *g, struct gpu_buf *b, struct diag *d);

	/* ops: all required for a backend that runs models */
	int (*get_rows)(struct gpu *g, struct gpu_buf *out,
			const struct gpu_buf *table, size_t n_rows_table,
			const struct gpu_buf *ids, size_t ids_offset, size_t n,
			size_t dim, struct diag *d);
	int (*matmul)(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		      const struct gpu_buf *w, const struct gpu_buf *bias,
		      size_t n, size_t k, size_t rows, struct diag *d);
	/* as gpu_matmul_multi; gpu.c drops parts with rows 0 (1 <= n_parts) */
	int (*matmul_multi)(struct gpu *g, const struct gpu_buf *x, size_t n,
			    size_t k, const struct gpu_matmul_part *parts,
			    size_t n_parts, struct diag *d);
	/* optional (default: matmul_multi, then swiglu): gpu_matmul_swiglu,
	 * arguments checked, n and rows > 0 */
	int (*matmul_swiglu)(struct gpu *g, struct gpu_buf *out,
			     struct gpu_buf *up, const struct gpu_buf *x,
			     const struct gpu_buf *w_gate,
			     const struct gpu_buf *w_up, size_t n, size_t k,
			     size_t rows, struct diag *d);
	/* optional (default: matmul_swiglu, then matmul): gpu_swiglu_ffn,
	 * arguments checked, n, k and n_ff > 0 */
	int (*swiglu_ffn)(struct gpu *g, struct gpu_buf *out,
			  struct gpu_buf *gate, struct gpu_buf *up,
			  const struct gpu_buf *x, const struct gpu_buf *w_gate,
			  const struct gpu_buf *w_up,
			  const struct gpu_buf *w_down, size_t n, size_t k,
			  size_t n_ff, struct diag *d);
	int (*rmsnorm)(struct gpu *g, struct gpu_buf *out,
		       const struct gpu_buf *x, const struct gpu_buf *w,
		       size_t n, size_t dim, float eps, struct diag *d);
	int (*add_rmsnorm)(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
			   const struct gpu_buf *o, const struct gpu_buf *w,
			   size_t n, size_t dim, float eps, struct diag *d);
	int (*rope)(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
		    size_t head_dim, const struct gpu_buf *pos,
		    const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
		    struct diag *d);
	int (*kv_store)(struct gpu *g, const struct gpu_kv_pool *pool,
			const struct gpu_kv_batch *b, const struct gpu_buf *k,
			const struct gpu_buf *v, struct diag *d);
	int (*rope_kv_store)(struct gpu *g, struct gpu_buf *q, struct gpu_buf *k,
			     const struct gpu_buf *v, size_t n_head,
			     const struct gpu_buf *pos,
			     const struct gpu_buf *inv_freq,
			     const struct gpu_rope *rp,
			     const struct gpu_kv_pool *pool,
			     const struct gpu_kv_batch *b, struct diag *d);
	int (*attention)(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *q, const struct gpu_kv_pool *pool,
			 const struct gpu_kv_batch *b, size_t n_head,
			 float scale, size_t window, struct diag *d);
	int (*swiglu)(struct gpu *g, struct gpu_buf *out,
		      const struct gpu_buf *gate, const struct gpu_buf *up,
		      size_t n, struct diag *d);
	int (*add)(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
		   const struct gpu_buf *b, size_t n, struct diag *d);
	int (*add_gated)(struct gpu *g, struct gpu_buf *out,
			 const struct gpu_buf *y, const struct gpu_buf *gate,
			 size_t n, size_t dim, struct diag *d);
	int (*softmax)(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
		       struct diag *d);
	/* required: device-to-device copy of a byte range */
	int (*copy)(struct gpu *g, struct gpu_buf *dst, size_t dst_byte_off,
		    const struct gpu_buf *src, size_t src_byte_off,
		    size_t n_bytes, struct diag *d);
	int (*moe_route)(struct gpu *g, const struct gpu_buf *logits,
			 struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
			 size_t n_expert, size_t top_k, bool renorm,
			 struct diag *d);
	int (*moe_ffn)(struct gpu *g, struct gpu_buf *out,
		       const struct gpu_buf *x, const struct gpu_buf *ids,
		       const struct gpu_buf *weights,
		       const struct gpu_moe_experts *ex, size_t n, size_t dim,
		       size_t top_k, struct gpu_buf *scratch, struct diag *d);
	/* optional, default false: whether moe_ffn of this (validated) set
	 * for up to n rows reads nothing back on the host, so that it may be
	 * recorded in a graph (gpu_moe_ffn_recordable) */
	bool (*moe_recordable)(struct gpu *g, const struct gpu_moe_experts *ex,
			       size_t n, size_t dim, size_t top_k);
	/* EXL3 (optional, all three or none; gpu/exl3.c validates):
	 * upload fills w->priv and w->bytes from desc (w's other fields are
	 * set); release frees w->priv; matmul as gpu_exl3_matmul. */
	int (*exl3_upload)(struct gpu *g, struct gpu_exl3_weight *w,
			   const struct gpu_exl3_desc *desc, struct diag *d);
	void (*exl3_release)(struct gpu *g, struct gpu_exl3_weight *w);
	int (*exl3_matmul)(struct gpu *g, struct gpu_buf *out,
			   const struct gpu_buf *x, const struct gpu_exl3_weight *w,
			   size_t n_rows, size_t k_in, size_t n_out, struct diag *d);
	/* optional (default: exl3_matmul per part): gpu_exl3_matmul_multi
	 * with 2..GPU_EXL3_MULTI_MAX checked parts */
	int (*exl3_matmul_multi)(struct gpu *g, const struct gpu_buf *x,
				 size_t n_rows, size_t k_in,
				 const struct gpu_exl3_part *parts, int n_parts,
				 struct diag *d);
	/* optional (default: exl3_matmul_multi, then swiglu): gpu_exl3_swiglu,
	 * arguments checked */
	int (*exl3_swiglu)(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
			   const struct gpu_buf *x,
			   const struct gpu_exl3_weight *w_gate,
			   const struct gpu_exl3_weight *w_up, size_t n_rows,
			   size_t k_in, size_t n_out, struct diag *d);
	/* optional (default: the sequence gpu_exl3_residual names):
	 * gpu_exl3_residual, arguments checked; returns 1 when it ran the
	 * whole op (r->then, and the att and rope_kv of each, included), 0
	 * (having done nothing) to ask for the default (which asks again
	 * for r->then alone) */
	int (*exl3_residual)(struct gpu *g, const struct gpu_exl3_residual *r,
			     size_t n_rows, struct diag *d);
	/* optional (default: the host search): gpu_exl3_encode_tiles' states
	 * for host tiles x, arguments checked, cb an enum gpu_exl3_cb;
	 * GPU_E_UNSUPPORTED (nothing
	 * done) sends a case back to the host */
	int (*exl3_encode)(struct gpu *g, const float *x, size_t n_tiles,
			   int bits, int cb, uint16_t *states, struct diag *d);
	/* optional (default: nothing to reserve, 0 bytes): gpu_reserve */
	int (*reserve)(struct gpu *g, const struct gpu_reserve_req *r,
		       uint64_t *bytes, struct diag *d);
	/* optional, default: the host's /proc/meminfo (MemAvailable,
	 * MemTotal) */
	int (*mem_info)(struct gpu *g, uint64_t *free_bytes,
			uint64_t *total_bytes, struct diag *d);
	/* graphs (optional, all five or none; gpu.c checks state):
	 * graph_begin starts recording the handle's op queue; graph_end
	 * stops it and returns the executable in *exec (ending the
	 * recording also on failure); graph_launch queues a replay;
	 * graph_destroy frees an executable; graph_gen is a counter that
	 * changes whenever scratch memory a graph may point to moves. */
	int (*graph_begin)(struct gpu *g, struct diag *d);
	int (*graph_end)(struct gpu *g, void **exec, struct diag *d);
	int (*graph_launch)(struct gpu *g, void *exec, struct diag *d);
	void (*graph_destroy)(struct gpu *g, void *exec);
	uint64_t (*graph_gen)(struct gpu *g);
	/* optional, default: values made by gpu_random_fill_host and written
	 * with buf_write in chunks.  Must give exactly gpu.h's values. */
	int (*fill_random)(struct gpu *g, struct gpu_buf *b, uint64_t seed,
			   float scale, struct diag *d);
};

/* The values of gpu_buf_fill_random for elements [first, first + n) of a
 * float buffer of DTYPE, written to host memory DST (n elements of that
 * dtype).  Shared by the host fallback and the CPU backend. */
void gpu_random_fill_host(void *dst, enum gpu_dtype dtype, size_t first,
			  size_t n, uint64_t seed, float scale);

/* gpu_matmul_swiglu without a fused path (gpu/gpu.c): the backend's
 * matmul_multi of W_gate -> out and W_up -> up, then its swiglu in place
 * on out.  Arguments as checked by gpu_matmul_swiglu.  Shared by the
 * default and the CUDA backend's fallback. */
int gpu_matmul_swiglu_unfused(struct gpu *g, struct gpu_buf *out,
			      struct gpu_buf *up, const struct gpu_buf *x,
			      const struct gpu_buf *w_gate,
			      const struct gpu_buf *w_up, size_t n, size_t k,
			      size_t rows, struct diag *d);

/* gpu_swiglu_ffn as its composition (gpu/gpu.c): gpu_matmul_swiglu's
 * path (the backend's fused one when it has it) into gate, then the
 * backend's matmul of gate by W_down into out.  Arguments as checked by
 * gpu_swiglu_ffn.  Shared by the default and the CUDA backend's decode
 * and fallback. */
int gpu_swiglu_ffn_composed(struct gpu *g, struct gpu_buf *out,
			    struct gpu_buf *gate, struct gpu_buf *up,
			    const struct gpu_buf *x,
			    const struct gpu_buf *w_gate,
			    const struct gpu_buf *w_up,
			    const struct gpu_buf *w_down, size_t n, size_t k,
			    size_t n_ff, struct diag *d);

/* gpu_rope_kv_store's checks of *a (gpu/gpu.c), nothing run: 0 or the
 * error that op would return (GPU_E_INVALID, GPU_E_UNSUPPORTED without the
 * backend op). */
int gpu_rope_kv_check(struct gpu *g, const struct gpu_rope_kv *a,
		      struct diag *d);

/* gpu_attention's checks of *a (gpu/gpu.c), nothing run: 0 or the error
 * that op would return. */
int gpu_attention_check(struct gpu *g, const struct gpu_attention_args *a,
			struct diag *d);

/* Registry (gpu/registry.c): the backend for KIND, or NULL when not
 * compiled in.  KIND is never GPU_KIND_AUTO here. */
const struct gpu_backend *gpu_backend_find(enum gpu_kind kind);

/* A recorded op sequence (gpu.h): the backend's executable and the
 * scratch generation it was recorded at. */
struct gpu_graph {
	struct gpu *g;
	void *exec;
	uint64_t gen;
};

/* Backends (the CUDA one exists only in builds with HAVE_CUDA). */
extern const struct gpu_backend gpu_cpu_backend;
extern const struct gpu_backend gpu_cuda_backend;

#endif
