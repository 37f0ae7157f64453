/* gpu/cpu/attention.c — paged KV store (alone and after RoPE on q and k)
 * and causal GQA attention on the CPU.
 *
 * Pool layout (one layer): K, V [n_pages, page_size, n_head_kv, head_dim],
 * f32 or f16, or quantized (gpu.h: groups of 32 values in bit planes with
 * an f16 scale, stored and read back through gpu/kvq.c, the reference the
 * CUDA kernels follow).  Position t of sequence s lives in page
 * page_table[s, t / page_size], slot t % page_size.
 *
 * Attention walks a row's positions page by page with an online softmax:
 * per page it computes the scores into a stack array, and rescales the
 * running output when the running maximum grows,
 *   m' = max(m, max_t s_t), l' = l e^(m - m') + sum_t e^(s_t - m'),
 *   o' = o e^(m - m') + sum_t e^(s_t - m') v_t,   out = o / l,
 * which equals softmax(s) . V up to rounding and needs no scratch that grows
 * with the context.  The query heads that share a KV head (GQA) are
 * processed together, up to ATT_GROUP at a time, so each K and V row is
 * loaded once for all of them; each (row, kv head, sub-group) is one chunk
 * for the pool (causal rows have unequal lengths; claiming balances them).
 *
 * Every row's sequence, position and page entries are checked serially
 * before any work is done, so a bad page table fails cleanly
 * (GPU_E_INVALID) instead of reading outside the pool.  Attention also
 * checks a batch's single-sequence promise (gpu_kv_batch.single_seq).
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

/* Every row's sequence, position and page entry (the KV store's checks). */
static int kv_rows_check(const struct gpu_kv_pool *pool,
			 const struct gpu_kv_batch *b, const char *op,
			 struct diag *d)
{
	size_t i;
	int rc;

	for (i = 0; i < b->n_rows; i++) {
		int32_t rp = ((const int32_t *)b->row_pos->data)[i];
		size_t s, p;

		rc = row_check(pool, b, i, rp >= 0 ? (size_t)rp : 0, &s, &p, d);
		if (rc < 0) {
			diag_prefix(d, "%s", op);
			return rc;
		}
	}
	return 0;
}

/* Quantized pool (gpu.h): slot's groups of 32 values from k, v f32
 * [n_head_kv * head_dim] (gpu/kvq.c). */
static void kvq_store_row(const struct gpu_kv_pool *pool, size_t slot,
			  const float *k, const float *v)
{
	const size_t ng = pool->n_head_kv * pool->head_dim / GPU_KVQ_GROUP;
	uint32_t *kw = (uint32_t *)pool->k->data + slot * ng * pool->k_bits;
	uint32_t *vw = (uint32_t *)pool->v->data + slot * ng * pool->v_bits;
	uint16_t *ks = (uint16_t *)pool->k_scale->data + slot * ng;
	uint16_t *vs = (uint16_t *)pool->v_scale->data + slot * ng;
	size_t j;

	for (j = 0; j < ng; j++) {
		gpu_kvq_quantize(k + j * GPU_KVQ_GROUP, pool->k_bits,
				 kw + j * pool->k_bits, ks + j);
		gpu_kvq_quantize(v + j * GPU_KVQ_GROUP, pool->v_bits,
				 vw + j * pool->v_bits, vs + j);
	}
}

/* Head hk of a quantized pool's slot as f32 [head_dim] in the rotated
 * domain (gpu_kvq_values: attention rotates q in and o out once instead
 * of every key and value back). */
static void kvq_load_head(const struct gpu_buf *words, const struct gpu_buf *scales,
			  unsigned bits, const struct gpu_kv_pool *pool,
			  size_t slot, size_t hk, float *dst)
{
	const size_t ng = pool->n_head_kv * pool->head_dim / GPU_KVQ_GROUP;
	const size_t g0 = slot * ng + hk * (pool->head_dim / GPU_KVQ_GROUP);
	size_t j;

	for (j = 0; j < pool->head_dim / GPU_KVQ_GROUP; j++)
		gpu_kvq_values((const uint32_t *)words->data + (g0 + j) * bits,
			       ((const uint16_t *)scales->data)[g0 + j], bits,
			       dst + j * GPU_KVQ_GROUP);
}

/* Store the rows of k, v f32 [n_rows, n_head_kv, head_dim] at their slots
 * (rows already checked). */
static void kv_store_rows(const struct gpu_kv_pool *pool,
			  const struct gpu_kv_batch *b, const float *kf,
			  const float *vf)
{
	const int32_t *pt = b->page_table->data;
	const size_t row = pool->n_head_kv * pool->head_dim;
	size_t i, j;

	for (i = 0; i < b->n_rows; i++) {
		size_t s = (size_t)((const int32_t *)b->row_seq->data)[i];
		size_t p = (size_t)((const int32_t *)b->row_pos->data)[i];
		size_t page = (size_t)pt[s * b->max_pages + p / pool->page_size];
		size_t slot = page * pool->page_size + p % pool->page_size;

		if (pool->k_bits) {
			kvq_store_row(pool, slot, kf + i * row, vf + i * row);
		} else if (pool->k->dtype == GPU_DTYPE_F32) {
			memcpy((float *)pool->k->data + slot * row, kf + i * row,
			       row * sizeof(float));
			memcpy((float *)pool->v->data + slot * row, vf + i * row,
			       row * sizeof(float));
		} else {
			uint16_t *kd = (uint16_t *)pool->k->data + slot * row;
			uint16_t *vd = (uint16_t *)pool->v->data + slot * row;

			for (j = 0; j < row; j++) {
				kd[j] = gpu_f32_to_f16(kf[i * row + j]);
				vd[j] = gpu_f32_to_f16(vf[i * row + j]);
			}
		}
	}
}

int cpu_kv_store(struct gpu *g, const struct gpu_kv_pool *pool,
		 const struct gpu_kv_batch *b, const struct gpu_buf *k,
		 const struct gpu_buf *v, struct diag *d)
{
	int rc = kv_rows_check(pool, b, "gpu_kv_store", d);

	(void)g;
	if (rc < 0)
		return rc;
	kv_store_rows(pool, b, k->data, v->data);
	return 0;
}

/* gpu_rope_kv_store: check every row first (a bad row changes nothing),
 * then the ops in order: the bits of gpu_rmsnorm (q, k; with rp->q_norm),
 * gpu_rope, gpu_rope and gpu_kv_store. */
int cpu_rope_kv_store(struct gpu *g, struct gpu_buf *q, struct gpu_buf *k,
		      const struct gpu_buf *v, size_t n_head,
		      const struct gpu_buf *pos, const struct gpu_buf *inv_freq,
		      const struct gpu_rope *rp, const struct gpu_kv_pool *pool,
		      const struct gpu_kv_batch *b, struct diag *d)
{
	int rc = kv_rows_check(pool, b, "gpu_rope_kv_store", d);

	if (rc == 0 && rp->q_norm) {
		rc = cpu_rmsnorm(g, q, q, rp->q_norm, b->n_rows * n_head,
				 pool->head_dim, rp->norm_eps, d);
		if (rc == 0)
			rc = cpu_rmsnorm(g, k, k, rp->k_norm,
					 b->n_rows * pool->n_head_kv,
					 pool->head_dim, rp->norm_eps, d);
	}
	if (rc == 0 && n_head)
		rc = cpu_rope(g, q, b->n_rows, n_head, pool->head_dim, pos,
			      inv_freq, rp, d);
	if (rc == 0)
		rc = cpu_rope(g, k, b->n_rows, pool->n_head_kv, pool->head_dim,
			      pos, inv_freq, rp, d);
	if (rc < 0)
		return rc;
	kv_store_rows(pool, b, k->data, v->data);
	return 0;
}

/* Heads of one GQA group processed together (they share K/V rows). */
#define ATT_GROUP 8

struct attn_ctx {
	float *out;
	const float *q;
	const struct gpu_kv_pool *pool;
	const struct gpu_kv_batch *b;
	size_t n_head, window;
	size_t n_sub;      /* head sub-groups per kv head: ceil(n_rep / ATT_GROUP) */
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

/* o[0..n) += p * v */
CPU_HOT static void axpy(float *restrict o, float p, const float *restrict v,
			 size_t n)
{
	size_t j;

	for (j = 0; j < n; j++)
		o[j] += p * v[j];
}

/* An f16 pool row as f32 (exact).  Where the compiler has _Float16 (GCC
 * 12+ on x86-64) the conversion is the hardware's (F16C's vcvtph2ps in
 * the x86-64-v3 clone) instead of gpu_f16_to_f32's bit manipulation:
 * decode of trained-target at ctx 1024 on 2 cores with an f16 pool went
 * from ~28% slower than f32 to about even (best of several runs). */
CPU_HOT static void to_f32(float *restrict dst, const void *restrict src,
			   size_t n)
{
	size_t j;
#ifdef __FLT16_MAX__
	const _Float16 *h = src;

	for (j = 0; j < n; j++)
		dst[j] = (float)h[j];
#else
	for (j = 0; j < n; j++)
		dst[j] = gpu_f16_to_f32(((const uint16_t *)src)[j]);
#endif
}

/* Row i, kv head hk, query heads h0 .. h0 + ng - 1 (all mapped to hk):
 * each K and V row is loaded once for the ng heads. */
static void attn_group(const struct attn_ctx *c, size_t i, size_t hk,
		       size_t h0, size_t ng)
{
	const struct gpu_kv_pool *pool = c->pool;
	const struct gpu_kv_batch *b = c->b;
	const size_t hd = pool->head_dim, ps = pool->page_size;
	const size_t row = pool->n_head_kv * hd;
	const int qnt = pool->k_bits != 0;
	const int f16 = !qnt && pool->k->dtype == GPU_DTYPE_F16;
	const size_t es = f16 ? 2 : 4; /* plain pools */
	const size_t s = (size_t)((const int32_t *)b->row_seq->data)[i];
	const size_t p = (size_t)((const int32_t *)b->row_pos->data)[i];
	const int32_t *pt = (const int32_t *)b->page_table->data + s * b->max_pages;
	const float *q = c->q + (i * c->n_head + h0) * hd; /* [ng, hd] */
	float o[ATT_GROUP][GPU_MAX_HEAD_DIM], sc[ATT_GROUP][GPU_MAX_PAGE_SIZE];
	float qrot[ATT_GROUP * GPU_MAX_HEAD_DIM];
	float kbuf[GPU_MAX_HEAD_DIM], vbuf[GPU_MAX_HEAD_DIM];
	float m[ATT_GROUP], l[ATT_GROUP];
	size_t lo = c->window && p + 1 > c->window ? p + 1 - c->window : 0;
	size_t t0, t, g, j;

	for (g = 0; g < ng; g++) {
		memset(o[g], 0, hd * sizeof(float));
		m[g] = -INFINITY;
		l[g] = 0.0f;
	}
	if (qnt) { /* q into the stored keys' rotated domain */
		memcpy(qrot, q, ng * hd * sizeof *qrot);
		for (j = 0; j < ng * hd; j += GPU_KVQ_GROUP)
			gpu_kvq_rotate(qrot + j);
		q = qrot;
	}
	for (t0 = lo - lo % ps; t0 <= p; t0 += ps) {
		size_t page = (size_t)pt[t0 / ps];
		const char *kb = qnt ? NULL : (const char *)pool->k->data + page * ps * row * es;
		const char *vb = qnt ? NULL : (const char *)pool->v->data + page * ps * row * es;
		size_t ta = t0 < lo ? lo : t0;
		size_t tb = t0 + ps - 1 < p ? t0 + ps - 1 : p;
		float mx[ATT_GROUP];

		/* scores s_t = scale * q . k_t for every head of the group */
		for (g = 0; g < ng; g++)
			mx[g] = m[g];
		for (t = ta; t <= tb; t++) {
			const void *kp = qnt ? NULL : kb + ((t - t0) * row + hk * hd) * es;
			const float *kv = kp;

			if (qnt) {
				kvq_load_head(pool->k, pool->k_scale, pool->k_bits, pool,
					      page * ps + (t - t0), hk, kbuf);
				kv = kbuf;
			} else if (f16) {
				to_f32(kbuf, kp, hd);
				kv = kbuf;
			}
			for (g = 0; g < ng; g++) {
				float sv = dot(q + g * hd, kv, hd) * c->scale;

				sc[g][t - ta] = sv;
				if (sv > mx[g])
					mx[g] = sv;
			}
		}
		/* rescale what was accumulated under the old maximum
		 * (e^-inf = 0 on the first page), then add this page */
		for (g = 0; g < ng; g++) {
			float corr = expf(m[g] - mx[g]);

			l[g] *= corr;
			for (j = 0; j < hd; j++)
				o[g][j] *= corr;
			for (t = ta; t <= tb; t++) {
				sc[g][t - ta] = expf(sc[g][t - ta] - mx[g]);
				l[g] += sc[g][t - ta];
			}
			m[g] = mx[g];
		}
		for (t = ta; t <= tb; t++) {
			const void *vp = qnt ? NULL : vb + ((t - t0) * row + hk * hd) * es;
			const float *vv = vp;

			if (qnt) {
				kvq_load_head(pool->v, pool->v_scale, pool->v_bits, pool,
					      page * ps + (t - t0), hk, vbuf);
				vv = vbuf;
			} else if (f16) {
				to_f32(vbuf, vp, hd);
				vv = vbuf;
			}
			for (g = 0; g < ng; g++)
				axpy(o[g], sc[g][t - ta], vv, hd);
		}
	}
	for (g = 0; g < ng; g++) {
		float *out = c->out + (i * c->n_head + h0 + g) * hd;

		if (qnt) /* o back from the values' rotated domain */
			for (j = 0; j < hd; j += GPU_KVQ_GROUP)
				gpu_kvq_rotate(o[g] + j);
		for (j = 0; j < hd; j++)
			out[j] = o[g][j] / l[g];
	}
}

/* Chunk c = (row, kv head, head sub-group), in that order. */
static void attn_chunk(void *ctx, size_t c, int tid)
{
	const struct attn_ctx *a = ctx;
	const size_t hkv = a->pool->n_head_kv, n_rep = a->n_head / hkv;
	size_t sub = c % a->n_sub, hk = (c / a->n_sub) % hkv;
	size_t i = c / a->n_sub / hkv;
	size_t h0 = hk * n_rep + sub * ATT_GROUP;
	size_t ng = n_rep - sub * ATT_GROUP < ATT_GROUP ? n_rep - sub * ATT_GROUP :
		    ATT_GROUP;

	(void)tid;
	attn_group(a, i, hk, h0, ng);
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
		if (b->single_seq && s != (size_t)((const int32_t *)b->row_seq->data)[0])
			return diag_fail(d, GPU_E_INVALID,
					 "gpu_attention: row %zu is in sequence %zu, row 0 "
					 "in %d, but the batch says it is one sequence",
					 i, s, (int)((const int32_t *)b->row_seq->data)[0]);
	}
	c.out = out->data;
	c.q = q->data;
	c.pool = pool;
	c.b = b;
	c.n_head = n_head;
	c.window = window;
	c.scale = scale;
	c.n_sub = (n_head / pool->n_head_kv + ATT_GROUP - 1) / ATT_GROUP;
	cpu_pool_for(cpu_state(g)->pool, b->n_rows * pool->n_head_kv * c.n_sub,
		     attn_chunk, &c);
	return 0;
}
