/* gpu/gpu.c — the public gpu_* entry points: names, handle and buffer
 * lifecycle, and one-time validation of every op before it is dispatched to
 * the backend vtable (gpu/gpu_impl.h).
 *
 * Invariant: a backend op is only called with dtypes and element counts
 * that satisfy the shape contract written in gpu.h; sizes are checked in
 * 64-bit arithmetic without overflow (products go through mul_ok).
 */
#include "config.h"

#include "gpu/gpu_impl.h"
#include "gpu/half.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gpu_strerror(int err)
{
	switch (err) {
	case GPU_OK: return "success";
	case GPU_E_NOMEM: return "out of memory";
	case GPU_E_INVALID: return "invalid argument";
	case GPU_E_UNSUPPORTED: return "not supported by this backend";
	case GPU_E_DEVICE: return "device error";
	case GPU_E_NODEVICE: return "backend not available";
	}
	return "unknown error";
}

const char *gpu_kind_name(enum gpu_kind kind)
{
	switch (kind) {
	case GPU_KIND_AUTO: return "auto";
	case GPU_KIND_CPU: return "cpu";
	case GPU_KIND_CUDA: return "cuda";
	}
	return "?";
}

int gpu_kind_parse(const char *s, enum gpu_kind *out)
{
	if (!s)
		return GPU_E_INVALID;
	if (!strcmp(s, "auto"))
		*out = GPU_KIND_AUTO;
	else if (!strcmp(s, "cpu"))
		*out = GPU_KIND_CPU;
	else if (!strcmp(s, "cuda"))
		*out = GPU_KIND_CUDA;
	else
		return GPU_E_INVALID;
	return 0;
}

int gpu_kind_compiled(enum gpu_kind kind)
{
	if (kind == GPU_KIND_AUTO)
		return 1;
	return gpu_backend_find(kind) != NULL;
}

size_t gpu_dtype_size(enum gpu_dtype t)
{
	switch (t) {
	case GPU_DTYPE_F32: return 4;
	case GPU_DTYPE_F16: return 2;
	case GPU_DTYPE_BF16: return 2;
	case GPU_DTYPE_I32: return 4;
	case GPU_DTYPE_COUNT: break;
	}
	return 0;
}

const char *gpu_dtype_name(enum gpu_dtype t)
{
	switch (t) {
	case GPU_DTYPE_F32: return "f32";
	case GPU_DTYPE_F16: return "f16";
	case GPU_DTYPE_BF16: return "bf16";
	case GPU_DTYPE_I32: return "i32";
	case GPU_DTYPE_COUNT: break;
	}
	return "?";
}

struct gpu_params gpu_default_params(void)
{
	struct gpu_params p;

	memset(&p, 0, sizeof p);
	return p;
}

/* ---- handle ------------------------------------------------------------ */

int gpu_open(enum gpu_kind kind, const struct gpu_params *params,
	     struct gpu **out, struct diag *d)
{
	struct gpu_params def = gpu_default_params();
	const struct gpu_backend *be = NULL;
	struct gpu *g;
	int rc;

	*out = NULL;
	if (!params)
		params = &def;
	if (kind == GPU_KIND_AUTO) {
		/* Prefer CUDA; fall back to the CPU when it is absent or has
		 * no device. */
		be = gpu_backend_find(GPU_KIND_CUDA);
		if (be) {
			rc = gpu_open(GPU_KIND_CUDA, params, out, NULL);
			if (rc == 0)
				return 0;
		}
		kind = GPU_KIND_CPU;
	}
	be = gpu_backend_find(kind);
	if (!be)
		return diag_fail(d, GPU_E_NODEVICE,
				 "backend '%s' is not compiled into this build",
				 gpu_kind_name(kind));
	g = calloc(1, sizeof *g);
	if (!g)
		return diag_fail(d, GPU_E_NOMEM, "gpu_open: out of memory");
	g->be = be;
	g->kind = kind;
	g->n_threads = 1;
	rc = be->open(g, params, d);
	if (rc < 0) {
		free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void gpu_close(struct gpu *g)
{
	if (!g)
		return;
	g->be->close(g);
	free(g);
}

enum gpu_kind gpu_get_kind(const struct gpu *g)
{
	return g->kind;
}

const char *gpu_describe(const struct gpu *g)
{
	return g->desc;
}

int gpu_n_threads(const struct gpu *g)
{
	return g->n_threads;
}

static int check_live(struct gpu *g, struct diag *d)
{
	if (g->poisoned)
		return diag_fail(d, GPU_E_DEVICE,
				 "backend unusable after an earlier device error");
	return 0;
}

/* Calls that wait for the device or move host data may not be recorded
 * into a graph (gpu.h). */
static int check_not_recording(struct gpu *g, const char *what, struct diag *d)
{
	if (g->recording)
		return diag_fail(d, GPU_E_INVALID,
				 "%s while a graph is being recorded", what);
	return 0;
}

/* A backend error of kind DEVICE poisons the handle. */
static int note(struct gpu *g, int rc)
{
	if (rc == GPU_E_DEVICE)
		g->poisoned = 1;
	return rc;
}

int gpu_sync(struct gpu *g, struct diag *d)
{
	int rc = check_live(g, d);

	if (rc == 0)
		rc = check_not_recording(g, "gpu_sync", d);
	if (rc < 0)
		return rc;
	if (!g->be->sync)
		return 0;
	return note(g, g->be->sync(g, d));
}

/* ---- buffers ----------------------------------------------------------- */

/* a * b without overflow into *r; 0 on overflow. */
static int mul_ok(size_t a, size_t b, size_t *r)
{
	if (a && b > SIZE_MAX / a)
		return 0;
	*r = a * b;
	return 1;
}

int gpu_buf_new(struct gpu *g, enum gpu_dtype dtype, size_t n_elems,
		struct gpu_buf **out, struct diag *d)
{
	struct gpu_buf *b;
	size_t bytes;
	int rc;

	*out = NULL;
	rc = check_live(g, d);
	if (rc == 0)
		rc = check_not_recording(g, "gpu_buf_new", d);
	if (rc < 0)
		return rc;
	if (gpu_dtype_size(dtype) == 0)
		return diag_fail(d, GPU_E_INVALID, "gpu_buf_new: bad dtype %d",
				 (int)dtype);
	if (!mul_ok(n_elems, gpu_dtype_size(dtype), &bytes))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_new: %zu elements overflow", n_elems);
	b = calloc(1, sizeof *b);
	if (!b)
		return diag_fail(d, GPU_E_NOMEM, "gpu_buf_new: out of memory");
	b->g = g;
	b->dtype = dtype;
	b->n_elems = n_elems;
	b->bytes = bytes;
	rc = g->be->buf_alloc(g, b, d);
	if (rc < 0) {
		free(b);
		return note(g, rc);
	}
	*out = b;
	return 0;
}

void gpu_buf_free(struct gpu_buf *b)
{
	if (!b)
		return;
	b->g->be->buf_release(b->g, b);
	free(b);
}

enum gpu_dtype gpu_buf_dtype(const struct gpu_buf *b)
{
	return b->dtype;
}

size_t gpu_buf_n_elems(const struct gpu_buf *b)
{
	return b->n_elems;
}

size_t gpu_buf_bytes(const struct gpu_buf *b)
{
	return b->bytes;
}

static int range_ok(const struct gpu_buf *b, size_t off, size_t n)
{
	return off <= b->n_elems && n <= b->n_elems - off;
}

int gpu_buf_write(struct gpu_buf *b, size_t offset, const void *src,
		  size_t n_elems, struct diag *d)
{
	size_t es = gpu_dtype_size(b->dtype);
	int rc = check_live(b->g, d);

	if (rc == 0)
		rc = check_not_recording(b->g, "gpu_buf_write", d);
	if (rc < 0)
		return rc;
	if (!range_ok(b, offset, n_elems))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_write: [%zu, +%zu) outside a buffer of %zu",
				 offset, n_elems, b->n_elems);
	if (n_elems == 0)
		return 0;
	return note(b->g, b->g->be->buf_write(b->g, b, offset * es, src,
					      n_elems * es, d));
}

int gpu_buf_read(const struct gpu_buf *b, size_t offset, void *dst,
		 size_t n_elems, struct diag *d)
{
	size_t es = gpu_dtype_size(b->dtype);
	int rc = check_live(b->g, d);

	if (rc == 0)
		rc = check_not_recording(b->g, "gpu_buf_read", d);
	if (rc < 0)
		return rc;
	if (!range_ok(b, offset, n_elems))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_read: [%zu, +%zu) outside a buffer of %zu",
				 offset, n_elems, b->n_elems);
	if (n_elems == 0)
		return 0;
	return note(b->g, b->g->be->buf_read(b->g, b, offset * es, dst,
					     n_elems * es, d));
}

int gpu_buf_zero(struct gpu_buf *b, struct diag *d)
{
	int rc = check_live(b->g, d);

	if (rc < 0)
		return rc;
	return note(b->g, b->g->be->buf_zero(b->g, b, d));
}

/* ---- random fill ------------------------------------------------------- */

void gpu_random_fill_host(void *dst, enum gpu_dtype dtype, size_t first,
			  size_t n, uint64_t seed, float scale)
{
	const float k = scale * (1.0f / 8388608.0f); /* scale * 2^-23 */
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t z = seed + (uint64_t)(first + i + 1) * 0x9E3779B97F4A7C15ull;
		float v;
		uint32_t u;

		/* splitmix64 finaliser */
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		v = (float)(z >> 40) * k - scale;
		switch (dtype) {
		case GPU_DTYPE_F32:
			((float *)dst)[i] = v;
			break;
		case GPU_DTYPE_BF16:
			memcpy(&u, &v, sizeof u);
			u += 0x7fffu + ((u >> 16) & 1); /* nearest even */
			((uint16_t *)dst)[i] = (uint16_t)(u >> 16);
			break;
		case GPU_DTYPE_F16:
			((uint16_t *)dst)[i] = gpu_f32_to_f16(v);
			break;
		case GPU_DTYPE_I32:
		case GPU_DTYPE_COUNT:
			return;
		}
	}
}

int gpu_buf_fill_random(struct gpu *g, struct gpu_buf *b, uint64_t seed,
			float scale, struct diag *d)
{
	enum { CHUNK = 1 << 20 };
	size_t es, off;
	void *tmp;
	int rc;

	rc = check_live(g, d);
	if (rc < 0)
		return rc;
	if (!b || b->g != g)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_fill_random: buffer of another backend");
	if (b->dtype != GPU_DTYPE_F32 && b->dtype != GPU_DTYPE_F16 &&
	    b->dtype != GPU_DTYPE_BF16)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_fill_random: %s buffer (float types only)",
				 gpu_dtype_name(b->dtype));
	if (!(scale >= 0.0f && scale <= 3.0e38f))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_buf_fill_random: scale %g", (double)scale);
	if (b->n_elems == 0)
		return 0;
	if (g->be->fill_random)
		return note(g, g->be->fill_random(g, b, seed, scale, d));
	es = gpu_dtype_size(b->dtype);
	tmp = malloc((size_t)CHUNK * es);
	if (!tmp)
		return diag_fail(d, GPU_E_NOMEM, "gpu_buf_fill_random: out of memory");
	for (off = 0; off < b->n_elems; off += CHUNK) {
		size_t n = b->n_elems - off < CHUNK ? b->n_elems - off : CHUNK;

		gpu_random_fill_host(tmp, b->dtype, off, n, seed, scale);
		rc = note(g, g->be->buf_write(g, b, off * es, tmp, n * es, d));
		if (rc < 0)
			break;
	}
	free(tmp);
	return rc;
}

/* ---- op validation ----------------------------------------------------- */

static int is_float(enum gpu_dtype t)
{
	return t == GPU_DTYPE_F32 || t == GPU_DTYPE_F16 || t == GPU_DTYPE_BF16;
}

/* Buffer NAME of OP must belong to g, have dtype WANT (or any float when
 * want_any_float), and hold at least off + a*b*c elements. */
static int need(struct gpu *g, const char *op, const char *name,
		const struct gpu_buf *buf, int want, size_t off, size_t a,
		size_t b, size_t c, struct diag *d)
{
	size_t n, n2;

	if (!buf)
		return diag_fail(d, GPU_E_INVALID, "%s: %s is NULL", op, name);
	if (buf->g != g)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: %s belongs to another backend", op, name);
	if (want < 0) {
		if (!is_float(buf->dtype))
			return diag_fail(d, GPU_E_INVALID,
					 "%s: %s has dtype %s, expected a float type",
					 op, name, gpu_dtype_name(buf->dtype));
	} else if ((int)buf->dtype != want) {
		return diag_fail(d, GPU_E_INVALID,
				 "%s: %s has dtype %s, expected %s", op, name,
				 gpu_dtype_name(buf->dtype),
				 gpu_dtype_name((enum gpu_dtype)want));
	}
	if (!mul_ok(a, b, &n) || !mul_ok(n, c, &n2) || n2 > SIZE_MAX - off)
		return diag_fail(d, GPU_E_INVALID, "%s: %s shape overflows",
				 op, name);
	if (buf->n_elems < off + n2)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: %s has %zu elements, needs %zu", op, name,
				 buf->n_elems, off + n2);
	return 0;
}

#define ANY_FLOAT (-1)
#define F32 ((int)GPU_DTYPE_F32)
#define I32 ((int)GPU_DTYPE_I32)
#define F16 ((int)GPU_DTYPE_F16)

/* Run the backend's op after validation; NULL slot = unsupported. */
#define DISPATCH(g, slot, ...)                                              \
	do {                                                                \
		if (!(g)->be->slot)                                         \
			return diag_fail(d, GPU_E_UNSUPPORTED,              \
					 "%s backend has no %s op",         \
					 (g)->be->name, #slot);             \
		return note((g), (g)->be->slot(g, __VA_ARGS__));            \
	} while (0)

#define TRY(x)                                                              \
	do {                                                                \
		int rc_ = (x);                                              \
		if (rc_ < 0)                                                \
			return rc_;                                         \
	} while (0)

int gpu_get_rows(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *table,
		 size_t n_rows_table, const struct gpu_buf *ids, size_t ids_offset,
		 size_t n, size_t dim, struct diag *d)
{
	const char *op = "gpu_get_rows";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "table", table, ANY_FLOAT, 0, n_rows_table, dim, 1, d));
	TRY(need(g, op, "ids", ids, I32, ids_offset, n, 1, 1, d));
	if (n == 0)
		return 0;
	DISPATCH(g, get_rows, out, table, n_rows_table, ids, ids_offset, n,
		 dim, d);
}

int gpu_matmul(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
	       const struct gpu_buf *w, const struct gpu_buf *bias, size_t n,
	       size_t k, size_t rows, struct diag *d)
{
	const char *op = "gpu_matmul";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, rows, 1, d));
	TRY(need(g, op, "x", x, F32, 0, n, k, 1, d));
	TRY(need(g, op, "W", w, ANY_FLOAT, 0, rows, k, 1, d));
	if (bias)
		TRY(need(g, op, "bias", bias, ANY_FLOAT, 0, rows, 1, 1, d));
	if (out == x)
		return diag_fail(d, GPU_E_INVALID, "%s: out aliases x", op);
	if (n == 0 || rows == 0)
		return 0;
	DISPATCH(g, matmul, out, x, w, bias, n, k, rows, d);
}

int gpu_matmul_multi(struct gpu *g, const struct gpu_buf *x, size_t n,
		     size_t k, const struct gpu_matmul_part *parts,
		     size_t n_parts, struct diag *d)
{
	const char *op = "gpu_matmul_multi";
	struct gpu_matmul_part live[GPU_MATMUL_MULTI_MAX];
	size_t j, i, n_live = 0;

	TRY(check_live(g, d));
	if (!parts || n_parts == 0 || n_parts > GPU_MATMUL_MULTI_MAX)
		return diag_fail(d, GPU_E_INVALID, "%s: %zu parts (1..%d)", op,
				 n_parts, GPU_MATMUL_MULTI_MAX);
	TRY(need(g, op, "x", x, F32, 0, n, k, 1, d));
	for (j = 0; j < n_parts; j++) {
		const struct gpu_matmul_part *pt = &parts[j];
		int rc = need(g, op, "out", pt->out, F32, 0, n, pt->rows, 1, d);

		if (rc == 0)
			rc = need(g, op, "W", pt->w, ANY_FLOAT, 0, pt->rows, k, 1, d);
		if (rc == 0 && pt->bias)
			rc = need(g, op, "bias", pt->bias, ANY_FLOAT, 0, pt->rows,
				  1, 1, d);
		if (rc < 0) {
			diag_prefix(d, "part %zu", j);
			return rc;
		}
		if (pt->w->dtype != parts[0].w->dtype)
			return diag_fail(d, GPU_E_INVALID,
					 "%s: W %zu is %s, W 0 is %s", op, j,
					 gpu_dtype_name(pt->w->dtype),
					 gpu_dtype_name(parts[0].w->dtype));
		if (pt->out == x)
			return diag_fail(d, GPU_E_INVALID, "%s: out %zu aliases x",
					 op, j);
		for (i = 0; i < j; i++)
			if (parts[i].out == pt->out)
				return diag_fail(d, GPU_E_INVALID,
						 "%s: outs %zu and %zu alias", op, i, j);
		if (pt->rows)
			live[n_live++] = *pt;
	}
	if (n == 0 || n_live == 0)
		return 0;
	DISPATCH(g, matmul_multi, x, n, k, live, n_live, d);
}

int gpu_rmsnorm(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *w, size_t n, size_t dim, float eps,
		struct diag *d)
{
	const char *op = "gpu_rmsnorm";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "x", x, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "w", w, ANY_FLOAT, 0, dim, 1, 1, d));
	if (dim == 0)
		return diag_fail(d, GPU_E_INVALID, "%s: dim is 0", op);
	if (n == 0)
		return 0;
	DISPATCH(g, rmsnorm, out, x, w, n, dim, eps, d);
}

int gpu_add_rmsnorm(struct gpu *g, struct gpu_buf *x, struct gpu_buf *xn,
		    const struct gpu_buf *o, const struct gpu_buf *w, size_t n,
		    size_t dim, float eps, struct diag *d)
{
	const char *op = "gpu_add_rmsnorm";

	TRY(check_live(g, d));
	TRY(need(g, op, "x", x, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "xn", xn, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "o", o, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "w", w, ANY_FLOAT, 0, dim, 1, 1, d));
	if (dim == 0)
		return diag_fail(d, GPU_E_INVALID, "%s: dim is 0", op);
	if (x == xn || x == o || xn == o)
		return diag_fail(d, GPU_E_INVALID, "%s: x, xn and o must be distinct",
				 op);
	if (n == 0)
		return 0;
	DISPATCH(g, add_rmsnorm, x, xn, o, w, n, dim, eps, d);
}

/* RoPE parameters against head_dim; *n_comp = position rows (1 or 3). */
static int check_rope(const char *op, const struct gpu_rope *rp,
		      size_t head_dim, size_t *n_comp, struct diag *d)
{
	*n_comp = 1;
	if (!rp)
		return diag_fail(d, GPU_E_INVALID, "%s: no parameters", op);
	if (rp->n_rot == 0 || rp->n_rot % 2 || rp->n_rot > head_dim ||
	    head_dim > GPU_MAX_HEAD_DIM)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: n_rot %zu with head_dim %zu", op, rp->n_rot,
				 head_dim);
	if (rp->mrope_section) {
		const int *s = rp->mrope_section;

		if (s[0] < 0 || s[1] < 0 || s[2] < 0 ||
		    (size_t)s[0] + (size_t)s[1] + (size_t)s[2] != rp->n_rot / 2)
			return diag_fail(d, GPU_E_INVALID,
					 "%s: mrope sections %d+%d+%d != n_rot/2 = %zu",
					 op, s[0], s[1], s[2], rp->n_rot / 2);
		*n_comp = 3;
	}
	return 0;
}

int gpu_rope(struct gpu *g, struct gpu_buf *x, size_t n, size_t n_head,
	     size_t head_dim, const struct gpu_buf *pos,
	     const struct gpu_buf *inv_freq, const struct gpu_rope *rp,
	     struct diag *d)
{
	const char *op = "gpu_rope";
	size_t n_comp;

	TRY(check_live(g, d));
	TRY(check_rope(op, rp, head_dim, &n_comp, d));
	if (rp->q_norm || rp->k_norm)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: q/k norm weights are for gpu_rope_kv_store", op);
	TRY(need(g, op, "x", x, F32, 0, n, n_head, head_dim, d));
	TRY(need(g, op, "pos", pos, I32, 0, n_comp, n, 1, d));
	TRY(need(g, op, "inv_freq", inv_freq, F32, 0, rp->n_rot / 2, 1, 1, d));
	if (n == 0 || n_head == 0)
		return 0;
	DISPATCH(g, rope, x, n, n_head, head_dim, pos, inv_freq, rp, d);
}

static int check_kv(struct gpu *g, const char *op, const struct gpu_kv_pool *pool,
		    const struct gpu_kv_batch *b, struct diag *d)
{
	if (!pool || !b)
		return diag_fail(d, GPU_E_INVALID, "%s: NULL pool or batch", op);
	if (pool->page_size == 0 || pool->page_size > GPU_MAX_PAGE_SIZE ||
	    pool->head_dim == 0 || pool->head_dim > GPU_MAX_HEAD_DIM ||
	    pool->n_head_kv == 0)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: bad pool geometry (page %zu, kv heads %zu, head_dim %zu)",
				 op, pool->page_size, pool->n_head_kv,
				 pool->head_dim);
	if (pool->k_bits || pool->v_bits) {
		const size_t ng = pool->n_head_kv * pool->head_dim / GPU_KVQ_GROUP;

		if (pool->k_bits < GPU_KVQ_MIN_BITS || pool->k_bits > GPU_KVQ_MAX_BITS ||
		    pool->v_bits < GPU_KVQ_MIN_BITS || pool->v_bits > GPU_KVQ_MAX_BITS)
			return diag_fail(d, GPU_E_INVALID,
					 "%s: quantized KV pool of %u-bit keys and %u-bit "
					 "values (each must be %d..%d)", op, pool->k_bits,
					 pool->v_bits, GPU_KVQ_MIN_BITS, GPU_KVQ_MAX_BITS);
		if (pool->head_dim % GPU_KVQ_GROUP)
			return diag_fail(d, GPU_E_INVALID,
					 "%s: a quantized KV pool needs head_dim a multiple "
					 "of %d (it is %zu)", op, GPU_KVQ_GROUP,
					 pool->head_dim);
		TRY(need(g, op, "K pool", pool->k, I32, 0, pool->n_pages,
			 pool->page_size, ng * pool->k_bits, d));
		TRY(need(g, op, "V pool", pool->v, I32, 0, pool->n_pages,
			 pool->page_size, ng * pool->v_bits, d));
		TRY(need(g, op, "K scales", pool->k_scale, F16, 0, pool->n_pages,
			 pool->page_size, ng, d));
		TRY(need(g, op, "V scales", pool->v_scale, F16, 0, pool->n_pages,
			 pool->page_size, ng, d));
	} else {
		if (!pool->k || !pool->v || pool->k->dtype != pool->v->dtype ||
		    (pool->k->dtype != GPU_DTYPE_F32 &&
		     pool->k->dtype != GPU_DTYPE_F16))
			return diag_fail(d, GPU_E_INVALID,
					 "%s: K and V pools must both be f32 or both f16",
					 op);
		TRY(need(g, op, "K pool", pool->k, (int)pool->k->dtype, 0,
			 pool->n_pages, pool->page_size,
			 pool->n_head_kv * pool->head_dim, d));
		TRY(need(g, op, "V pool", pool->v, (int)pool->v->dtype, 0,
			 pool->n_pages, pool->page_size,
			 pool->n_head_kv * pool->head_dim, d));
	}
	if (b->n_seq == 0 || b->max_pages == 0)
		return diag_fail(d, GPU_E_INVALID, "%s: empty page table", op);
	TRY(need(g, op, "row_seq", b->row_seq, I32, 0, b->n_rows, 1, 1, d));
	TRY(need(g, op, "row_pos", b->row_pos, I32, 0, b->n_rows, 1, 1, d));
	TRY(need(g, op, "page_table", b->page_table, I32, 0, b->n_seq,
		 b->max_pages, 1, d));
	return 0;
}

int gpu_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
		 const struct gpu_kv_batch *b, const struct gpu_buf *k,
		 const struct gpu_buf *v, struct diag *d)
{
	const char *op = "gpu_kv_store";

	TRY(check_live(g, d));
	TRY(check_kv(g, op, pool, b, d));
	TRY(need(g, op, "k", k, F32, 0, b->n_rows, pool->n_head_kv,
		 pool->head_dim, d));
	TRY(need(g, op, "v", v, F32, 0, b->n_rows, pool->n_head_kv,
		 pool->head_dim, d));
	if (b->n_rows == 0)
		return 0;
	DISPATCH(g, kv_store, pool, b, k, v, d);
}

int gpu_rope_kv_check(struct gpu *g, const struct gpu_rope_kv *a,
		      struct diag *d)
{
	const char *op = "gpu_rope_kv_store";
	struct gpu_buf *q = a->q, *k = a->k;
	const struct gpu_buf *v = a->v, *pos = a->pos, *inv_freq = a->inv_freq;
	const struct gpu_rope *rp = a->rp;
	const struct gpu_kv_pool *pool = a->pool;
	const struct gpu_kv_batch *b = a->b;
	const size_t n_head = a->n_head;
	size_t n_comp;

	if (!rp)
		return diag_fail(d, GPU_E_INVALID, "%s: no rope parameters", op);
	TRY(check_kv(g, op, pool, b, d));
	TRY(check_rope(op, rp, pool->head_dim, &n_comp, d));
	TRY(need(g, op, "q", q, F32, 0, b->n_rows, n_head, pool->head_dim, d));
	TRY(need(g, op, "k", k, F32, 0, b->n_rows, pool->n_head_kv,
		 pool->head_dim, d));
	TRY(need(g, op, "v", v, F32, 0, b->n_rows, pool->n_head_kv,
		 pool->head_dim, d));
	TRY(need(g, op, "pos", pos, I32, 0, n_comp, b->n_rows, 1, d));
	TRY(need(g, op, "inv_freq", inv_freq, F32, 0, rp->n_rot / 2, 1, 1, d));
	if (!rp->q_norm != !rp->k_norm)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: q_norm and k_norm go together", op);
	if (rp->q_norm) {
		TRY(need(g, op, "q_norm", rp->q_norm, ANY_FLOAT, 0,
			 pool->head_dim, 1, 1, d));
		TRY(need(g, op, "k_norm", rp->k_norm, ANY_FLOAT, 0,
			 pool->head_dim, 1, 1, d));
		if (!(rp->norm_eps >= 0.0f) || isinf(rp->norm_eps))
			return diag_fail(d, GPU_E_INVALID, "%s: norm eps %g", op,
					 (double)rp->norm_eps);
	}
	if (q == k || q == v || k == v)
		return diag_fail(d, GPU_E_INVALID, "%s: q, k and v must be distinct",
				 op);
	if (!g->be->rope_kv_store)
		return diag_fail(d, GPU_E_UNSUPPORTED, "%s backend has no %s op",
				 g->be->name, "rope_kv_store");
	return 0;
}

int gpu_rope_kv_store(struct gpu *g, struct gpu_buf *q, struct gpu_buf *k,
		      const struct gpu_buf *v, size_t n_head,
		      const struct gpu_buf *pos, const struct gpu_buf *inv_freq,
		      const struct gpu_rope *rp, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b, struct diag *d)
{
	const struct gpu_rope_kv a = { q, k, v, n_head, pos, inv_freq, rp, pool, b };

	TRY(check_live(g, d));
	TRY(gpu_rope_kv_check(g, &a, d));
	if (b->n_rows == 0)
		return 0;
	DISPATCH(g, rope_kv_store, q, k, v, n_head, pos, inv_freq, rp, pool, b,
		 d);
}

int gpu_attention_check(struct gpu *g, const struct gpu_attention_args *a,
			struct diag *d)
{
	const char *op = "gpu_attention";
	const struct gpu_buf *out = a->out, *q = a->q;
	const struct gpu_kv_pool *pool = a->pool;
	const struct gpu_kv_batch *b = a->b;
	const size_t n_head = a->n_head;

	TRY(check_kv(g, op, pool, b, d));
	if (n_head == 0 || n_head % pool->n_head_kv)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: %zu heads is not a multiple of %zu kv heads",
				 op, n_head, pool->n_head_kv);
	TRY(need(g, op, "out", out, F32, 0, b->n_rows, n_head, pool->head_dim, d));
	TRY(need(g, op, "q", q, F32, 0, b->n_rows, n_head, pool->head_dim, d));
	if (out == q)
		return diag_fail(d, GPU_E_INVALID, "%s: out aliases q", op);
	if (!g->be->attention)
		return diag_fail(d, GPU_E_UNSUPPORTED, "%s backend has no %s op",
				 g->be->name, "attention");
	return 0;
}

int gpu_attention(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *q,
		  const struct gpu_kv_pool *pool, const struct gpu_kv_batch *b,
		  size_t n_head, float scale, size_t window, struct diag *d)
{
	const struct gpu_attention_args a = { out, q, pool, b, n_head, scale, window };

	TRY(check_live(g, d));
	TRY(gpu_attention_check(g, &a, d));
	if (b->n_rows == 0)
		return 0;
	DISPATCH(g, attention, out, q, pool, b, n_head, scale, window, d);
}

/* gpu_matmul_swiglu's arguments checked: the backend's fused op where it
 * has one, else the composition (also gpu_swiglu_ffn_composed's first
 * half). */
static int matmul_swiglu_run(struct gpu *g, struct gpu_buf *out,
			     struct gpu_buf *up, const struct gpu_buf *x,
			     const struct gpu_buf *w_gate,
			     const struct gpu_buf *w_up, size_t n, size_t k,
			     size_t rows, struct diag *d)
{
	return g->be->matmul_swiglu ?
	       g->be->matmul_swiglu(g, out, up, x, w_gate, w_up, n, k, rows, d) :
	       gpu_matmul_swiglu_unfused(g, out, up, x, w_gate, w_up, n, k,
					 rows, d);
}

int gpu_matmul_swiglu(struct gpu *g, struct gpu_buf *out, struct gpu_buf *up,
		      const struct gpu_buf *x, const struct gpu_buf *w_gate,
		      const struct gpu_buf *w_up, size_t n, size_t k,
		      size_t rows, struct diag *d)
{
	const char *op = "gpu_matmul_swiglu";

	TRY(check_live(g, d));
	TRY(need(g, op, "x", x, F32, 0, n, k, 1, d));
	TRY(need(g, op, "out", out, F32, 0, n, rows, 1, d));
	TRY(need(g, op, "up", up, F32, 0, n, rows, 1, d));
	TRY(need(g, op, "W_gate", w_gate, ANY_FLOAT, 0, rows, k, 1, d));
	TRY(need(g, op, "W_up", w_up, ANY_FLOAT, 0, rows, k, 1, d));
	if (w_gate->dtype != w_up->dtype)
		return diag_fail(d, GPU_E_INVALID, "%s: W_gate is %s, W_up %s", op,
				 gpu_dtype_name(w_gate->dtype),
				 gpu_dtype_name(w_up->dtype));
	if (out == x || up == x || out == up)
		return diag_fail(d, GPU_E_INVALID, "%s: out, up and x alias", op);
	if (n == 0 || rows == 0)
		return 0;
	return note(g, matmul_swiglu_run(g, out, up, x, w_gate, w_up, n, k, rows,
					 d));
}

int gpu_matmul_swiglu_unfused(struct gpu *g, struct gpu_buf *out,
			      struct gpu_buf *up, const struct gpu_buf *x,
			      const struct gpu_buf *w_gate,
			      const struct gpu_buf *w_up, size_t n, size_t k,
			      size_t rows, struct diag *d)
{
	struct gpu_matmul_part pt[2];
	int rc;

	pt[0].out = out;
	pt[0].w = w_gate;
	pt[0].bias = NULL;
	pt[0].rows = rows;
	pt[1].out = up;
	pt[1].w = w_up;
	pt[1].bias = NULL;
	pt[1].rows = rows;
	rc = g->be->matmul_multi(g, x, n, k, pt, 2, d);
	return rc < 0 ? rc : g->be->swiglu(g, out, out, up, n * rows, d);
}

int gpu_swiglu_ffn(struct gpu *g, struct gpu_buf *out, struct gpu_buf *gate,
		   struct gpu_buf *up, const struct gpu_buf *x,
		   const struct gpu_buf *w_gate, const struct gpu_buf *w_up,
		   const struct gpu_buf *w_down, size_t n, size_t k, size_t n_ff,
		   struct diag *d)
{
	const char *op = "gpu_swiglu_ffn";

	TRY(check_live(g, d));
	TRY(need(g, op, "x", x, F32, 0, n, k, 1, d));
	TRY(need(g, op, "out", out, F32, 0, n, k, 1, d));
	TRY(need(g, op, "gate", gate, F32, 0, n, n_ff, 1, d));
	TRY(need(g, op, "up", up, F32, 0, n, n_ff, 1, d));
	TRY(need(g, op, "W_gate", w_gate, ANY_FLOAT, 0, n_ff, k, 1, d));
	TRY(need(g, op, "W_up", w_up, ANY_FLOAT, 0, n_ff, k, 1, d));
	TRY(need(g, op, "W_down", w_down, ANY_FLOAT, 0, k, n_ff, 1, d));
	if (w_gate->dtype != w_up->dtype || w_gate->dtype != w_down->dtype)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: W_gate is %s, W_up %s, W_down %s", op,
				 gpu_dtype_name(w_gate->dtype),
				 gpu_dtype_name(w_up->dtype),
				 gpu_dtype_name(w_down->dtype));
	if (out == x || out == gate || out == up || gate == x || up == x ||
	    gate == up)
		return diag_fail(d, GPU_E_INVALID,
				 "%s: out, gate, up and x alias", op);
	if (n_ff == 0)
		return diag_fail(d, GPU_E_INVALID, "%s: n_ff is 0", op);
	if (n == 0 || k == 0)
		return 0;
	if (g->be->swiglu_ffn)
		DISPATCH(g, swiglu_ffn, out, gate, up, x, w_gate, w_up, w_down, n,
			 k, n_ff, d);
	return note(g, gpu_swiglu_ffn_composed(g, out, gate, up, x, w_gate,
					       w_up, w_down, n, k, n_ff, d));
}

int gpu_swiglu_ffn_composed(struct gpu *g, struct gpu_buf *out,
			    struct gpu_buf *gate, struct gpu_buf *up,
			    const struct gpu_buf *x,
			    const struct gpu_buf *w_gate,
			    const struct gpu_buf *w_up,
			    const struct gpu_buf *w_down, size_t n, size_t k,
			    size_t n_ff, struct diag *d)
{
	int rc = matmul_swiglu_run(g, gate, up, x, w_gate, w_up, n, k, n_ff, d);

	return rc < 0 ? rc : g->be->matmul(g, out, gate, w_down, NULL, n, n_ff, k, d);
}

int gpu_swiglu(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *gate,
	       const struct gpu_buf *up, size_t n, struct diag *d)
{
	const char *op = "gpu_swiglu";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, 1, 1, d));
	TRY(need(g, op, "gate", gate, F32, 0, n, 1, 1, d));
	TRY(need(g, op, "up", up, F32, 0, n, 1, 1, d));
	if (n == 0)
		return 0;
	DISPATCH(g, swiglu, out, gate, up, n, d);
}

int gpu_add(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *a,
	    const struct gpu_buf *b, size_t n, struct diag *d)
{
	const char *op = "gpu_add";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, 1, 1, d));
	TRY(need(g, op, "a", a, F32, 0, n, 1, 1, d));
	TRY(need(g, op, "b", b, F32, 0, n, 1, 1, d));
	if (n == 0)
		return 0;
	DISPATCH(g, add, out, a, b, n, d);
}

int gpu_add_gated(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *y,
		  const struct gpu_buf *gate, size_t n, size_t dim,
		  struct diag *d)
{
	const char *op = "gpu_add_gated";

	TRY(check_live(g, d));
	TRY(need(g, op, "out", out, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "y", y, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "gate", gate, F32, 0, n, 1, 1, d));
	if (out == y || out == gate)
		return diag_fail(d, GPU_E_INVALID, "%s: out aliases an input", op);
	if (n == 0)
		return 0;
	DISPATCH(g, add_gated, out, y, gate, n, dim, d);
}

int gpu_softmax(struct gpu *g, struct gpu_buf *x, size_t n, size_t cols,
		struct diag *d)
{
	TRY(check_live(g, d));
	TRY(need(g, "gpu_softmax", "x", x, F32, 0, n, cols, 1, d));
	if (n == 0 || cols == 0)
		return 0;
	DISPATCH(g, softmax, x, n, cols, d);
}

int gpu_copy(struct gpu *g, struct gpu_buf *dst, size_t dst_off,
	     const struct gpu_buf *src, size_t src_off, size_t n,
	     struct diag *d)
{
	const char *op = "gpu_copy";
	size_t es;

	TRY(check_live(g, d));
	if (!src || !dst)
		return diag_fail(d, GPU_E_INVALID, "%s: NULL buffer", op);
	TRY(need(g, op, "dst", dst, (int)dst->dtype, dst_off, n, 1, 1, d));
	TRY(need(g, op, "src", src, (int)dst->dtype, src_off, n, 1, 1, d));
	if (dst == src && dst_off < src_off + n && src_off < dst_off + n)
		return diag_fail(d, GPU_E_INVALID, "%s: overlapping ranges", op);
	if (n == 0)
		return 0;
	es = gpu_dtype_size(dst->dtype);
	DISPATCH(g, copy, dst, dst_off * es, src, src_off * es, n * es, d);
}

int gpu_moe_route(struct gpu *g, const struct gpu_buf *logits,
		  struct gpu_buf *ids, struct gpu_buf *weights, size_t n,
		  size_t n_expert, size_t top_k, bool renorm, struct diag *d)
{
	const char *op = "gpu_moe_route";

	TRY(check_live(g, d));
	if (top_k == 0 || top_k > n_expert)
		return diag_fail(d, GPU_E_INVALID, "%s: top_k %zu of %zu experts",
				 op, top_k, n_expert);
	TRY(need(g, op, "logits", logits, F32, 0, n, n_expert, 1, d));
	TRY(need(g, op, "ids", ids, I32, 0, n, top_k, 1, d));
	TRY(need(g, op, "weights", weights, F32, 0, n, top_k, 1, d));
	if (n == 0)
		return 0;
	DISPATCH(g, moe_route, logits, ids, weights, n, n_expert, top_k,
		 renorm, d);
}

/* EXL3 expert E of EX: three weights of g, each big enough for the
 * gpu_exl3_matmul it will serve (gate/up: dim -> n_ff; down: n_ff -> dim;
 * k_in <= k and n_out <= n). */
static int check_exl3_expert(struct gpu *g, const struct gpu_moe_experts *ex,
			     size_t e, size_t dim, struct diag *d)
{
	const struct gpu_exl3_weight *w[3] = { ex->xgate[e], ex->xup[e],
					       ex->xdown[e] };
	static const char *const nm[3] = { "gate", "up", "down" };
	int i;

	for (i = 0; i < 3; i++) {
		size_t kin = i < 2 ? dim : ex->n_ff, nout = i < 2 ? ex->n_ff : dim;

		if (!w[i])
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_moe_ffn: EXL3 expert %zu %s is NULL", e,
					 nm[i]);
		if (w[i]->g != g)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_moe_ffn: EXL3 expert %zu %s belongs to "
					 "another backend", e, nm[i]);
		if (kin == 0 || kin > w[i]->k || nout == 0 || nout > w[i]->n)
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_moe_ffn: EXL3 expert %zu %s is %zu x %zu "
					 "(k x n), needs at least %zu x %zu", e, nm[i],
					 w[i]->k, w[i]->n, kin, nout);
	}
	return 0;
}

size_t gpu_moe_scratch_elems(size_t n, size_t dim, size_t n_ff, size_t top_k)
{
	/* host grouping (gpu/cpu/moe.c, CUDA's host path): gathered x [n,
	 * dim], gate and up [n, n_ff], expert output [n, dim], and two
	 * i32/f32 row lists of n * top_k; CUDA's device path for A = n *
	 * top_k <= GPU_MOE_DEVICE_MAX_ASSIGN: x per assignment [A, dim],
	 * silu(gate) * up [A, n_ff], expert outputs [A, dim] and its lists
	 * (6 A + 2 int32, gpu/cuda/kernels.h); its EXL3 experts for up to
	 * GPU_MOE_XL_ROWS rows: gpu_moe_xl_layout (gpu_impl.h).  CUDA's
	 * grouped host path cuts its work into chunks of what this holds
	 * (n_ff + dim / 2 + 7 floats an assignment, plus 18 n_expert + 384:
	 * n or more assignments at real widths; where not even one fits,
	 * the per-expert path runs). */
	const size_t host = n * (2 * dim + 2 * n_ff + 2 * top_k);
	/* non-decreasing in n (a buffer sized for B rows serves every call
	 * of fewer): the device path's part counts up to the most rows it
	 * takes, even above them */
	const size_t nd = top_k && n > GPU_MOE_DEVICE_MAX_ASSIGN / top_k
				  ? GPU_MOE_DEVICE_MAX_ASSIGN / top_k : n;
	const size_t dev = nd * top_k * (2 * dim + n_ff + 6) + 2;
	const size_t nx = nd < GPU_MOE_XL_ROWS ? nd : GPU_MOE_XL_ROWS;
	const size_t xl = nx ? gpu_moe_xl_layout(nx * top_k, dim, n_ff, NULL) : 0;
	size_t need = dev > host ? dev : host;

	return xl > need ? xl : need;
}

/* Exactly one complete triple of experts: float or EXL3. */
static bool moe_set_ok(const struct gpu_moe_experts *ex)
{
	const bool fl = ex->gate || ex->up || ex->down;
	const bool q = ex->xgate || ex->xup || ex->xdown;

	return fl != q && (!fl || (ex->gate && ex->up && ex->down)) &&
	       (!q || (ex->xgate && ex->xup && ex->xdown));
}

bool gpu_moe_ffn_recordable(struct gpu *g, const struct gpu_moe_experts *ex,
			    size_t n, size_t dim, size_t top_k)
{
	size_t e;

	if (!g || g->poisoned || !ex || !g->be->moe_recordable ||
	    ex->n_expert == 0 || top_k == 0 || top_k > ex->n_expert ||
	    !moe_set_ok(ex))
		return false;
	for (e = 0; ex->gate && e < ex->n_expert; e++)
		if (!ex->gate[e] || !ex->up[e] || !ex->down[e] ||
		    ex->gate[e]->g != g || ex->up[e]->g != g || ex->down[e]->g != g)
			return false;
	for (e = 0; ex->xgate && e < ex->n_expert; e++)
		if (!ex->xgate[e] || !ex->xup[e] || !ex->xdown[e] ||
		    ex->xgate[e]->g != g || ex->xup[e]->g != g ||
		    ex->xdown[e]->g != g)
			return false;
	return g->be->moe_recordable(g, ex, n, dim, top_k);
}

int gpu_moe_ffn(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *x,
		const struct gpu_buf *ids, const struct gpu_buf *weights,
		const struct gpu_moe_experts *ex, size_t n, size_t dim,
		size_t top_k, struct gpu_buf *scratch, struct diag *d)
{
	const char *op = "gpu_moe_ffn";
	size_t e;
	bool fl, q;

	TRY(check_live(g, d));
	if (!ex || ex->n_expert == 0 || top_k == 0 || top_k > ex->n_expert)
		return diag_fail(d, GPU_E_INVALID, "%s: bad expert set", op);
	fl = ex->gate || ex->up || ex->down;
	q = ex->xgate || ex->xup || ex->xdown;
	if (!moe_set_ok(ex))
		return diag_fail(d, GPU_E_INVALID,
				 "%s: bad expert set (need all of gate/up/down, "
				 "float or EXL3, not both)", op);
	TRY(need(g, op, "out", out, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "x", x, F32, 0, n, dim, 1, d));
	TRY(need(g, op, "ids", ids, I32, 0, n, top_k, 1, d));
	TRY(need(g, op, "weights", weights, F32, 0, n, top_k, 1, d));
	TRY(need(g, op, "scratch", scratch, F32, 0,
		 gpu_moe_scratch_elems(n, dim, ex->n_ff, top_k), 1, 1, d));
	if (out == x)
		return diag_fail(d, GPU_E_INVALID, "%s: out aliases x", op);
	for (e = 0; q && e < ex->n_expert; e++)
		TRY(check_exl3_expert(g, ex, e, dim, d));
	for (e = 0; fl && e < ex->n_expert; e++) {
		TRY(need(g, op, "expert gate", ex->gate[e], ANY_FLOAT, 0,
			 ex->n_ff, dim, 1, d));
		TRY(need(g, op, "expert up", ex->up[e], ANY_FLOAT, 0, ex->n_ff,
			 dim, 1, d));
		TRY(need(g, op, "expert down", ex->down[e], ANY_FLOAT, 0, dim,
			 ex->n_ff, 1, d));
	}
	if (!gpu_moe_ffn_recordable(g, ex, n, dim, top_k))
		TRY(check_not_recording(g, op, d)); /* reads the routing back */
	if (n == 0)
		return 0;
	DISPATCH(g, moe_ffn, out, x, ids, weights, ex, n, dim, top_k, scratch,
		 d);
}

/* ---- memory ------------------------------------------------------------ */

/* Host memory from /proc/meminfo ("MemTotal:  123 kB"); 0 and 0 when the
 * file or a field is absent (not Linux). */
static int host_mem_info(uint64_t *fr, uint64_t *tot)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	uint64_t v;

	*fr = 0;
	*tot = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "MemTotal: %" SCNu64, &v) == 1)
			*tot = v * 1024;
		else if (sscanf(line, "MemAvailable: %" SCNu64, &v) == 1)
			*fr = v * 1024;
	}
	fclose(f);
	return 0;
}

int gpu_reserve(struct gpu *g, const struct gpu_reserve_req *r,
		uint64_t *bytes_out, struct diag *d)
{
	uint64_t b = 0;
	int rc = check_live(g, d);

	if (rc < 0)
		return rc;
	if (!r)
		return diag_fail(d, GPU_E_INVALID, "gpu_reserve: no request");
	if (r->n_head && (!r->n_head_kv || !r->head_dim || r->n_head % r->n_head_kv))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_reserve: %zu query heads over %zu KV heads of %zu",
				 r->n_head, r->n_head_kv, r->head_dim);
	if (g->recording)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "gpu_reserve while a graph is recorded");
	if (g->be->reserve) {
		rc = note(g, g->be->reserve(g, r, &b, d));
		if (rc < 0)
			return rc;
	}
	if (bytes_out)
		*bytes_out = b;
	return 0;
}

int gpu_mem_info(struct gpu *g, uint64_t *free_bytes, uint64_t *total_bytes,
		 struct diag *d)
{
	uint64_t fr = 0, tot = 0;
	int rc = check_live(g, d);

	if (rc < 0)
		return rc;
	if (g->be->mem_info)
		rc = note(g, g->be->mem_info(g, &fr, &tot, d));
	else
		rc = host_mem_info(&fr, &tot);
	if (rc < 0)
		return rc;
	if (free_bytes)
		*free_bytes = fr;
	if (total_bytes)
		*total_bytes = tot;
	return 0;
}

/* ---- graphs ------------------------------------------------------------ */

int gpu_graph_begin(struct gpu *g, struct diag *d)
{
	int rc = check_live(g, d);

	if (rc < 0)
		return rc;
	if (!g->be->graph_begin)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "the %s backend has no graphs", g->be->name);
	if (g->recording)
		return diag_fail(d, GPU_E_UNSUPPORTED,
				 "gpu_graph_begin: already recording");
	rc = note(g, g->be->graph_begin(g, d));
	if (rc == 0)
		g->recording = 1;
	return rc;
}

int gpu_graph_end(struct gpu *g, struct gpu_graph **out, struct diag *d)
{
	struct gpu_graph *gr;
	void *exec = NULL;
	int rc;

	*out = NULL;
	if (!g->recording)
		return diag_fail(d, GPU_E_INVALID, "gpu_graph_end: not recording");
	g->recording = 0;
	/* the recording is ended even on a poisoned handle */
	rc = g->be->graph_end(g, &exec, d);
	if (rc < 0)
		return note(g, rc);
	gr = calloc(1, sizeof *gr);
	if (!gr) {
		g->be->graph_destroy(g, exec);
		return diag_fail(d, GPU_E_NOMEM, "gpu_graph_end: out of memory");
	}
	gr->g = g;
	gr->exec = exec;
	gr->gen = g->be->graph_gen(g);
	*out = gr;
	return 0;
}

bool gpu_graph_valid(const struct gpu_graph *gr)
{
	return gr && gr->g->be->graph_gen(gr->g) == gr->gen;
}

int gpu_graph_launch(struct gpu_graph *gr, struct diag *d)
{
	struct gpu *g = gr->g;
	int rc = check_live(g, d);

	if (rc < 0)
		return rc;
	if (!gpu_graph_valid(gr))
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_graph_launch: the graph's scratch memory moved");
	if (g->recording)
		return diag_fail(d, GPU_E_INVALID,
				 "gpu_graph_launch while recording");
	return note(g, g->be->graph_launch(g, gr->exec, d));
}

void gpu_graph_free(struct gpu_graph *gr)
{
	if (!gr)
		return;
	gr->g->be->graph_destroy(gr->g, gr->exec);
	free(gr);
}
