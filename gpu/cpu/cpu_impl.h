/* gpu/cpu/cpu_impl.h — internals of the CPU backend (only the gpu/cpu sources).
 *
 * The CPU backend is the oracle: plain loops in f32, shapes in comments.
 * Work is spread over a persistent thread pool (pool.c): an op cuts its
 * work into chunks and calls cpu_pool_for(n_chunks, fn, ctx); the threads
 * (the caller is thread 0) claim chunks until none are left, so a thread
 * the OS does not schedule in time simply does less.  `tid` only selects
 * per-thread scratch.
 * Hot loops are written with fixed-width lane arrays so that gcc vectorizes
 * them without intrinsics; CPU_HOT additionally builds an AVX2+FMA clone
 * picked at run time (ifunc), so the default x86-64 binary still runs
 * everywhere.
 *
 * Per-thread scratch (weight rows converted to f32) is grown by the
 * serial part of an op before dispatch, so a warmed-up backend allocates
 * nothing while decoding.
 */
#ifndef TERN_GPU_CPU_CPU_IMPL_H
#define TERN_GPU_CPU_CPU_IMPL_H

#include <stdint.h>
#include <string.h>

#include "gpu/gpu_impl.h"
#include "gpu/half.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
	!defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CPU_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CPU_HOT
#endif

struct cpu_pool;

typedef void (*cpu_chunk_fn)(void *ctx, size_t chunk, int tid);

/* Start n_threads - 1 workers (the caller is the n-th). */
int cpu_pool_new(int n_threads, struct cpu_pool **out);
void cpu_pool_free(struct cpu_pool *p);
/* Threads actually running (may be fewer than asked if pthread_create
 * failed part way). */
int cpu_pool_size(const struct cpu_pool *p);
/* Run fn(ctx, c, tid) for every chunk c in [0, n_chunks), spread over the
 * threads, and return when all are done.  Not reentrant. */
void cpu_pool_for(struct cpu_pool *p, size_t n_chunks, cpu_chunk_fn fn,
		  void *ctx);

/* Chunk size for n items over nt threads: about 4 chunks per thread (for
 * balance when threads are delayed), a multiple of align, at least min. */
static inline size_t cpu_chunk_size(size_t n, int nt, size_t align, size_t min)
{
	size_t c = n / ((size_t)nt * 4);

	if (c < min)
		c = min;
	c = (c + align - 1) / align * align;
	return c ? c : 1;
}

struct cpu_state {
	struct cpu_pool *pool;
	int n_threads;
	float **scratch;      /* per thread */
	size_t *scratch_cap;  /* floats per thread */
};

static inline struct cpu_state *cpu_state(struct gpu *g)
{
	return (struct cpu_state *)g->priv;
}

/* Ensure every thread has at least n floats of scratch. GPU_E_NOMEM. */
int cpu_scratch_reserve(struct gpu *g, size_t n, struct diag *d);

/* bf16 -> f32 is the top half of an f32: a shift. */
static inline float cpu_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* Element i of a float buffer as f32. */
static inline float cpu_elem_f32(const struct gpu_buf *b, size_t i)
{
	switch (b->dtype) {
	case GPU_DTYPE_F32: return ((const float *)b->data)[i];
	case GPU_DTYPE_F16: return gpu_f16_to_f32(((const uint16_t *)b->data)[i]);
	case GPU_DTYPE_BF16: return cpu_bf16_to_f32(((const uint16_t *)b->data)[i]);
	case GPU_DTYPE_I32: return (float)((const int32_t *)b->data)[i];
	case GPU_DTYPE_COUNT: break;
	}
	return 0.0f;
}

/* Convert n elements of a float buffer starting at element off to f32. */
void cpu_to_f32(float *dst, const struct gpu_buf *b, size_t off, size_t n);

/* Matmul on host pointers (used by moe.c on its scratch):
 * out [n, rows] = x [n, k] . W[rows, k]^T (+ bias), W any float. */
int cpu_matmul_host(struct gpu *g, float *out, const float *x,
		    const struct gpu_buf *w, const struct gpu_buf *bias,
		    size_t n, size_t k, size_t rows, struct diag *d);

/* vtable entries implemented in the op files */
int cpu_get_rows(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *table,
		 size_t n_rows_table, const struct gpu_buf *ids,
		 size_t ids_offset, size_t n, size_t dim, struct diag *d);
int cpu_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_buf *bias, size_t n,
	       size_t k, size_t rows, struct diag *d);
int cpu_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n, size_t k,
		     const struct gpu_matmul_part *parts, size_t n_parts,
		     struct diag *d);
int cpu_rmsnorm(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *w, size_t n, size_t dim, float eps,
		struct diag *d);
int cpu_add_rmsnorm(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
		    const struct gpu_buf *o, const struct gpu_buf *w, size_t n,
		    size_t dim, float eps, struct diag *d);
int cpu_rope(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
	     size_t head_dim, const struct gpu_buf *pos,
	     const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
	     struct diag *d);
int cpu_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
		 const struct gpu_kv_batch *b, const struct gpu_buf *k,
		 const struct gpu_buf *v, struct diag *d);
int cpu_rope_kv_store(struct gpu *g, struct gpu_buf *q, struct gpu_buf *k,
		      const struct gpu_buf *v, size_t n_head,
		      const struct gpu_buf *pos, const struct gpu_buf *inv_freq,
		      const struct gpu_rope *rp, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b, struct diag *d);
int cpu_attention(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *q,
		  const struct gpu_kv_pool *pool, const struct gpu_kv_batch *b,
		  size_t n_head, float scale, size_t window, struct diag *d);
int cpu_swiglu(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *gate,
	       const struct gpu_buf *up, size_t n, struct diag *d);
int cpu_add(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
	    const struct gpu_buf *b, size_t n, struct diag *d);
int cpu_add_gated(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *y,
		  const struct gpu_buf *gate, size_t n, size_t dim,
		  struct diag *d);
int cpu_softmax(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
		struct diag *d);
int cpu_copy(struct gpu *g, struct gpu_buf *dst, size_t dst_byte_off,
	     const struct gpu_buf *src, size_t src_byte_off, size_t n_bytes,
	     struct diag *d);
int cpu_moe_route(struct gpu *g, const struct gpu_buf *logits,
		  struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
		  size_t n_expert, size_t top_k, bool renorm, struct diag *d);
int cpu_moe_ffn(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *ids, const struct gpu_buf *weights,
		const struct gpu_moe_experts *ex, size_t n, size_t dim,
		size_t top_k, struct gpu_buf *scratch, struct diag *d);

#endif
