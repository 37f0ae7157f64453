/* gpu/cpu/attention.c — paged KV store and causal GQA attention on the CPU.
 *
 * Pool layout (one layer): K, V [n_pages, page_size, n_head_kv, head_dim],
 * f32 or f16.  Position t of sequence s lives in page
 * page_table[s, t / page_size], slot t % page_size.
 *
 * Attention walks a row's positions page by page with an online softmax:
 * per page it computes the scores into a stack array, and rescales the
 * running output when the running maximum grows,
 *   m' = max(m, max_t s_t), l' = l e^(m - m') + sum_t e^(s_t - m'),
 *   o' = o e^(m - m') + sum_t e^(s_t - m') v_t,   out = o / l,
 * which equals softmax(s) . V up to rounding and needs no scratch that grows
 * with the context.  Rows x heads are spread over the threads round-robin
 * (causal rows have unequal lengths).
 *
 * Every row's sequence, position and page entries are checked serially
 * before any work is done, so a bad page table fails cleanly
 * (GPU_E_INVALID) instead of reading outside the pool.
 */
#include "config.h"

#include "gpu/cpu/cpu_impl.h"

#include <math.h>

#define LANES 8

/* Check row i of the batch and return its sequence and position. */
static int row_check(const struct gpu_kv_pool *pool, const struct gpu_kv_batch *b,
		     size_t i, size_t lo_needed, size_t *seq, size_t *pos,
		     struct diag *d)
{
	const int32_t *rs = b->row_seq->data, *rp = b->row_pos->data;
	const int32_t *pt = b->page_table->data;
	size_t p, pg, last_pg;

	if (rs[i] < 0 || (size_t)rs[i] >= b->n_seq)
		return diag_fail(d, GPU_E_INVALID, "row %zu: sequence %d of %zu",
				 i, (int)rs[i], b->n_seq);
	if (rp[i] < 0)
		return diag_fail(d, GPU_E_INVALID, "row %zu: position %d", i,
				 (int)rp[i]);
	*seq = (size_t)rs[i];
	*pos = (size_t)rp[i];
	last_pg = *pos / pool->page_size;
	if (last_pg >= b->max_pages)
		return diag_fail(d, GPU_E_INVALID,
				 "row %zu: position %zu beyond %zu pages", i, *pos,
				 b->max_pages);
	for (pg = lo_needed / pool->page_size; pg <= last_pg; pg++) {
		p = (size_t)(uint32_t)pt[*seq * b->max_pages + pg];
		if (pt[*seq * b->max_pages + pg] < 0 || p >= pool->n_pages)
			return diag_fail(d, GPU_E_INVALID,
					 "sequence %zu: page %zu maps to %d of %zu",
					 *seq, pg, (int)pt[*seq * b->max_pages + pg],
					 pool->n_pages);
	}
	return 0;
}

int cpu_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
		 const struct gpu_kv_batch *b, const struct gpu_buf *k,
		 const struct gpu_buf *v, struct diag *d)
{
	const int32_t *pt = b->page_table->data;
	const size_t row = pool->n_head_kv * pool->head_dim;
	const float *kf = k->data, *vf = v->data;
	size_t i, j;
	int rc;

	(void)g;
	for (i = 0; i < b->n_rows; i++) {
		int32_t rp = ((const int32_t *)b->row_pos->data)[i];
		size_t s, p;

		rc = row_check(pool, b, i, rp >= 0 ? (size_t)rp : 0, &s, &p, d);
		if (rc < 0) {
			diag_prefix(d, "gpu_kv_store");
			return rc;
		}
	}
	for (i = 0; i < b->n_rows; i++) {
		size_t s = (size_t)((const int32_t *)b->row_seq->data)[i];
		size_t p = (size_t)((const int32_t *)b->row_pos->data)[i];
		size_t page = (size_t)pt[s * b->max_pages + p / pool->page_size];
		size_t slot = page * pool->page_size + p % pool->page_size;

		if (pool->k->dtype == GPU_DTYPE_F32) {
			memcpy((float *)pool->k->data + slot * row, kf + i * row,
			       row * sizeof(float));
			memcpy((float *)pool->v->data + slot * row, vf + i * row,
			       row * sizeof(float));
		} else {
			uint16_t *kd = (uint16_t *)pool->k->data + slot * row;
			uint16_t *vd = (uint16_t *)pool->v->data + slot * row;

			for (j = 0; j < row; j++) {
				kd[j] = cpu_f32_to_f16(kf[i * row + j]);
				vd[j] = cpu_f32_to_f16(vf[i * row + j]);
			}
		}
	}
	return 0;
}

struct attn_ctx {
	float *out;
	const float *q;
	const struct gpu_kv_pool *pool;
	const struct gpu_kv_batch *b;
	size_t n_head, window;
	float scale;
};

/* q . k over hd with LANES partial sums. */
CPU_HOT static float dot(const float *a, const float *b, size_t n)
{
	float acc[LANES] = { 0 };
	float s = 0.0f;
	size_t j, l;

	for (j = 0; j + LANES <= n; j += LANES)
		for (l = 0; l < LANES; l++)
			acc[l] += a[j + l] * b[j + l];
	for (; j < n; j++)
		s += a[j] * b[j];
	for (l = 0; l < LANES; l++)
		s += acc[l];
	return s;
}

/* o[0..n) = o * c + p * v */
CPU_HOT static void scale_axpy(float *restrict o, float c, float p,
			       const float *restrict v, size_t n)
{
	size_t j;

	for (j = 0; j < n; j++)
		o[j] = o[j] * c + p * v[j];
}

static void to_f32(float *dst, const void *src, int f16, size_t n)
{
	size_t j;

	if (!f16) {
		memcpy(dst, src, n * sizeof(float));
		return;
	}
	for (j = 0; j < n; j++)
		dst[j] = cpu_f16_to_f32(((const uint16_t *)src)[j]);
}

static void attn_one(const struct attn_ctx *c, size_t i, size_t h)
{
	const struct gpu_kv_pool *pool = c->pool;
	const struct gpu_kv_batch *b = c->b;
	const size_t hd = pool->head_dim, ps = pool->page_size;
	const size_t n_rep = c->n_head / pool->n_head_kv, hk = h / n_rep;
	const size_t row = pool->n_head_kv * hd;
	const int f16 = pool->k->dtype == GPU_DTYPE_F16;
	const size_t es = f16 ? 2 : 4;
	const size_t s = (size_t)((const int32_t *)b->row_seq->data)[i];
	const size_t p = (size_t)((const int32_t *)b->row_pos->data)[i];
	const int32_t *pt = (const int32_t *)b->page_table->data + s * b->max_pages;
	const float *q = c->q + (i * c->n_head + h) * hd;
	float *out = c->out + (i * c->n_head + h) * hd;
	float o[GPU_MAX_HEAD_DIM], sc[GPU_MAX_PAGE_SIZE];
	float kbuf[GPU_MAX_HEAD_DIM], vbuf[GPU_MAX_HEAD_DIM];
	float m = -INFINITY, l = 0.0f;
	size_t lo = c->window && p + 1 > c->window ? p + 1 - c->window : 0;
	size_t t0, t, j;

	memset(o, 0, hd * sizeof *o);
	for (t0 = lo - lo % ps; t0 <= p; t0 += ps) {
		size_t page = (size_t)pt[t0 / ps];
		const char *kb = (const char *)pool->k->data + page * ps * row * es;
		const char *vb = (const char *)pool->v->data + page * ps * row * es;
		size_t ta = t0 < lo ? lo : t0;
		size_t tb = t0 + ps - 1 < p ? t0 + ps - 1 : p;
		float mx = m, corr;

		/* scores s_t = scale * q . k_t */
		for (t = ta; t <= tb; t++) {
			const char *kp = kb + ((t - t0) * row + hk * hd) * es;
			float sv;

			if (f16) {
				to_f32(kbuf, kp, 1, hd);
				sv = dot(q, kbuf, hd);
			} else {
				sv = dot(q, (const float *)(const void *)kp, hd);
			}
			sv *= c->scale;
			sc[t - ta] = sv;
			if (sv > mx)
				mx = sv;
		}
		corr = expf(m - mx); /* 0 on the first page (m = -inf) */
		l *= corr;
		for (t = ta; t <= tb; t++) {
			const char *vp = vb + ((t - t0) * row + hk * hd) * es;
			float pw = expf(sc[t - ta] - mx);
			const float *vv;

			if (f16) {
				to_f32(vbuf, vp, 1, hd);
				vv = vbuf;
			} else {
				vv = (const float *)(const void *)vp;
			}
			l += pw;
			scale_axpy(o, t == ta ? corr : 1.0f, pw, vv, hd);
		}
		m = mx;
	}
	for (j = 0; j < hd; j++)
		out[j] = o[j] / l;
}

static void attn_thread(void *ctx, int tid, int nt)
{
	const struct attn_ctx *c = ctx;
	size_t n_task = c->b->n_rows * c->n_head, task;

	for (task = (size_t)tid; task < n_task; task += (size_t)nt)
		attn_one(c, task / c->n_head, task % c->n_head);
}

int cpu_attention(struct gpu *g, struct gpu_buf *out, const struct gpu_buf *q,
		  const struct gpu_kv_pool *pool, const struct gpu_kv_batch *b,
		  size_t n_head, float scale, size_t window, struct diag *d)
{
	struct attn_ctx c;
	size_t i;
	int rc;

	for (i = 0; i < b->n_rows; i++) {
		size_t s, p, lo;
		int32_t rp = ((const int32_t *)b->row_pos->data)[i];

		lo = rp >= 0 && window && (size_t)rp + 1 > window ?
			(size_t)rp + 1 - window : 0;
		rc = row_check(pool, b, i, lo, &s, &p, d);
		if (rc < 0) {
			diag_prefix(d, "gpu_attention");
			return rc;
		}
	}
	c.out = out->data;
	c.q = q->data;
	c.pool = pool;
	c.b = b;
	c.n_head = n_head;
	c.window = window;
	c.scale = scale;
	if (b->n_rows * n_head < 2)
		attn_thread(&c, 0, 1);
	else
		cpu_pool_run(cpu_state(g)->pool, attn_thread, &c);
	return 0;
}
