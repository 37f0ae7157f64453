/* gpu/cpu/backend.c — the CPU backend's handle, buffers and vtable.
 *
 * Buffers are 64-byte aligned host allocations (so rows start on cache
 * lines and vector loads split less).  Ops are synchronous: when an op
 * returns its result is in memory.  Owns the thread pool and the
 * per-thread scratch.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"
#include "gpu/exl3_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cpu_open(struct gpu *g, const struct gpu_params *p, struct diag *d)
{
	struct cpu_state *st;
	int n = p->n_threads;

	if (n <= 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 0 ? (int)c : 1;
	}
	if (n > 256)
		n = 256;
	st = calloc(1, sizeof *st);
	if (!st)
		return diag_fail(d, GPU_E_NOMEM, "cpu backend: out of memory");
	if (cpu_pool_new(n, &st->pool) < 0) {
		free(st);
		return diag_fail(d, GPU_E_NOMEM, "cpu backend: cannot start threads");
	}
	/* the pool may have started fewer threads than asked */
	n = cpu_pool_size(st->pool);
	st->n_threads = n;
	st->scratch = calloc((size_t)n, sizeof *st->scratch);
	st->scratch_cap = calloc((size_t)n, sizeof *st->scratch_cap);
	if (!st->scratch || !st->scratch_cap) {
		cpu_pool_free(st->pool);
		free(st->scratch);
		free(st->scratch_cap);
		free(st);
		return diag_fail(d, GPU_E_NOMEM, "cpu backend: out of memory");
	}
	g->priv = st;
	g->n_threads = n;
	snprintf(g->desc, sizeof g->desc, "cpu, %d thread%s", n, n == 1 ? "" : "s");
	return 0;
}

static void cpu_close(struct gpu *g)
{
	struct cpu_state *st = cpu_state(g);
	int i;

	if (!st)
		return;
	cpu_pool_free(st->pool);
	for (i = 0; i < st->n_threads; i++)
		free(st->scratch[i]);
	free(st->scratch);
	free(st->scratch_cap);
	free(st);
	g->priv = NULL;
}

int cpu_scratch_reserve(struct gpu *g, size_t n, struct diag *d)
{
	struct cpu_state *st = cpu_state(g);
	int i;

	for (i = 0; i < st->n_threads; i++) {
		void *p;

		if (st->scratch_cap[i] >= n)
			continue;
		if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0)
			return diag_fail(d, GPU_E_NOMEM,
					 "cpu backend: scratch of %zu floats", n);
		free(st->scratch[i]);
		st->scratch[i] = p;
		st->scratch_cap[i] = n;
	}
	return 0;
}

static int cpu_buf_alloc(struct gpu *g, struct gpu_buf *b, struct diag *d)
{
	void *p = NULL;

	(void)g;
	/* one spare cache line: kernels may read a vector past a row end */
	if (posix_memalign(&p, 64, b->bytes + 64) != 0)
		return diag_fail(d, GPU_E_NOMEM,
				 "cpu backend: cannot allocate %zu bytes", b->bytes);
	b->data = p;
	return 0;
}

static void cpu_buf_release(struct gpu *g, struct gpu_buf *b)
{
	(void)g;
	free(b->data);
	b->data = NULL;
}

static int cpu_buf_write(struct gpu *g, struct gpu_buf *b, size_t off,
			 const void *src, size_t n, struct diag *d)
{
	(void)g;
	(void)d;
	memcpy((char *)b->data + off, src, n);
	return 0;
}

static int cpu_buf_read(struct gpu *g, const struct gpu_buf *b, size_t off,
			void *dst, size_t n, struct diag *d)
{
	(void)g;
	(void)d;
	memcpy(dst, (const char *)b->data + off, n);
	return 0;
}

static int cpu_buf_zero(struct gpu *g, struct gpu_buf *b, struct diag *d)
{
	(void)g;
	(void)d;
	memset(b->data, 0, b->bytes);
	return 0;
}

int cpu_copy(struct gpu *g, struct gpu_buf *dst, size_t dst_off,
	     const struct gpu_buf *src, size_t src_off, size_t n,
	     struct diag *d)
{
	(void)g;
	(void)d;
	memmove((char *)dst->data + dst_off, (const char *)src->data + src_off, n);
	return 0;
}

struct fill_job {
	struct gpu_buf *b;
	uint64_t seed;
	float scale;
	size_t chunk;
};

static void fill_chunk(void *ctx, size_t c, int tid)
{
	const struct fill_job *j = ctx;
	size_t first = c * j->chunk, n = j->b->n_elems - first;

	(void)tid;
	if (n > j->chunk)
		n = j->chunk;
	gpu_random_fill_host((char *)j->b->data + first * gpu_dtype_size(j->b->dtype),
			     j->b->dtype, first, n, j->seed, j->scale);
}

/* gpu_buf_fill_random over the thread pool (same values as the host
 * fallback: element i depends only on seed and i). */
static int cpu_fill_random(struct gpu *g, struct gpu_buf *b, uint64_t seed,
			   float scale, struct diag *d)
{
	struct fill_job j;

	(void)d;
	j.b = b;
	j.seed = seed;
	j.scale = scale;
	j.chunk = cpu_chunk_size(b->n_elems, g->n_threads, 64, 1 << 16);
	cpu_pool_for(cpu_state(g)->pool, (b->n_elems + j.chunk - 1) / j.chunk,
		     fill_chunk, &j);
	return 0;
}

const struct gpu_backend gpu_cpu_backend = {
	.kind = GPU_KIND_CPU,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.sync = NULL,
	.buf_alloc = cpu_buf_alloc,
	.buf_release = cpu_buf_release,
	.buf_write = cpu_buf_write,
	.buf_read = cpu_buf_read,
	.buf_zero = cpu_buf_zero,
	.get_rows = cpu_get_rows,
	.matmul = cpu_matmul,
	.matmul_multi = cpu_matmul_multi,
	.rmsnorm = cpu_rmsnorm,
	.add_rmsnorm = cpu_add_rmsnorm,
	.rope = cpu_rope,
	.kv_store = cpu_kv_store,
	.rope_kv_store = cpu_rope_kv_store,
	.attention = cpu_attention,
	.swiglu = cpu_swiglu,
	.add = cpu_add,
	.add_gated = cpu_add_gated,
	.softmax = cpu_softmax,
	.copy = cpu_copy,
	.moe_route = cpu_moe_route,
	.moe_ffn = cpu_moe_ffn,
	.exl3_upload = cpu_exl3_upload,
	.exl3_release = cpu_exl3_release,
	.exl3_matmul = cpu_exl3_matmul,
	.fill_random = cpu_fill_random,
};
