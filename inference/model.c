/* inference/model.c — loading a Hugging Face model directory onto a
 * backend, the evaluation context (paged KV cache + activations) and the
 * public llm_model_* / llm_context_* functions.
 *
 * Loading: config.json (inference/config.c) decides the architecture and
 * every tensor's expected shape; each tensor is looked up by its HF name,
 * checked (shape, and dtype F32/F16/BF16), and uploaded in its own dtype.
 * The safetensors mapping is closed once everything is on the backend.
 * EXL3 checkpoints (inference/exl3.c): any linear stored as a
 * `.trellis` group loads as an EXL3 weight, including the routed MoE
 * experts (all of a layer's experts or none; the router stays float) and
 * Qwen2-MoE's shared expert.
 * Qwen2.5-VL keeps its text tensors under "model.language_model." in the
 * transformers-5 layout and under "model." in the classic one: both are
 * tried.
 *
 * Room: before the first weight is uploaded, the bytes of the tensors the
 * model will upload (safetensors headers: the text-model prefix and
 * lm_head) are compared with the backend's free memory (gpu_mem_info)
 * less a margin (256 MiB + 1/64 of the total, for the KV cache,
 * activations and library workspaces); a model that cannot fit fails
 * with LLM_E_NOSPACE naming both sizes instead of failing half-loaded.
 * Every failure path frees whatever was uploaded (llm_model_free).
 *
 * Invariants: a loaded model has every buffer the forward pass of its
 * architecture reads (NULL only for optional parts: biases, q/k norm,
 * shared expert); ownership of each buffer is in exactly one field
 * (lm_head may alias tok_embd: then it is not freed twice).
 */
#include "config.h"

#include "inference/model_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/exl3_impl.h"
#include "inference/safetensors_impl.h"

struct llm_model_params llm_model_default_params(void)
{
	struct llm_model_params p;

	memset(&p, 0, sizeof p);
	p.backend = LLM_BACKEND_AUTO;
	p.n_threads = 0;
	p.kv_type = LLM_KV_AUTO;
	return p;
}

/* One half of a KV spec: "N" or "qN" with N 2..8 or 16; -1 when bad. */
static int kv_bits_parse(const char *s, size_t n)
{
	int v = 0;
	size_t i = 0;

	if (n > 0 && (s[0] == 'q' || s[0] == 'Q'))
		i = 1;
	if (i == n || n - i > 2)
		return -1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return (v >= 2 && v <= 8) || v == 16 ? v : -1;
}

bool llm_kv_type_parse(const char *s, struct llm_model_params *p)
{
	const char *comma = strchr(s, ',');
	int kb, vb;

	if (!strcmp(s, "auto")) {
		p->kv_type = LLM_KV_AUTO;
		return true;
	}
	if (!strcmp(s, "f32")) {
		p->kv_type = LLM_KV_F32;
		return true;
	}
	if (!strcmp(s, "f16")) {
		p->kv_type = LLM_KV_F16;
		return true;
	}
	kb = kv_bits_parse(s, comma ? (size_t)(comma - s) : strlen(s));
	vb = comma ? kv_bits_parse(comma + 1, strlen(comma + 1)) : kb;
	if (kb < 0 || vb < 0 || (kb == 16) != (vb == 16))
		return false;
	if (kb == 16) {
		p->kv_type = LLM_KV_F16;
		return true;
	}
	p->kv_type = LLM_KV_QUANT;
	p->kv_k_bits = kb;
	p->kv_v_bits = vb;
	return true;
}

double llm_kv_value_bytes(const struct llm_model *m)
{
	if (m->kv_k_bits)
		return (double)(m->kv_k_bits + m->kv_v_bits) / 8.0 +
		       4.0 / GPU_KVQ_GROUP;
	return 2.0 * (double)gpu_dtype_size(m->kv_dtype);
}

/* ---- RoPE frequencies ---------------------------------------------------- */

int llm_rope_inv_freq(const struct llm_config *cfg, float *inv, struct diag *d)
{
	const int64_t hd = cfg->head_dim;
	int64_t i;

	/* inv_freq[i] = theta^(-2i / hd), as HF computes it */
	for (i = 0; i < hd / 2; i++)
		inv[i] = (float)(1.0 / pow(cfg->rope_theta, (double)(2 * i) / (double)hd));
	switch (cfg->rope.type) {
	case LLM_ROPE_DEFAULT:
	case LLM_ROPE_MROPE:
		return 0;
	case LLM_ROPE_LINEAR:
		for (i = 0; i < hd / 2; i++)
			inv[i] = (float)(inv[i] / cfg->rope.factor);
		return 0;
	case LLM_ROPE_LLAMA3: {
		/* HF _compute_llama3_parameters: wavelengths longer than
		 * old_ctx / low_freq_factor are slowed by `factor`, shorter
		 * than old_ctx / high_freq_factor kept, and the band between
		 * interpolated smoothly:
		 *   smooth = (old_ctx / wavelen - low) / (high - low)
		 *   inv' = (1 - smooth) * inv / factor + smooth * inv */
		double factor = cfg->rope.factor, lo = cfg->rope.low_freq_factor;
		double hi = cfg->rope.high_freq_factor;
		double old = (double)cfg->rope.original_max_pos;
		double lo_wl = old / lo, hi_wl = old / hi;

		if (old <= 0 || factor <= 0 || hi == lo)
			return diag_fail(d, LLM_E_FORMAT,
					 "llama3 rope_scaling needs factor, "
					 "original_max_position_embeddings and "
					 "distinct low/high_freq_factor");
		for (i = 0; i < hd / 2; i++) {
			double f = inv[i], wl = 2.0 * M_PI / f;

			if (wl < hi_wl) {
				/* high frequency: unchanged */
			} else if (wl > lo_wl) {
				f = f / factor;
			} else {
				double sm = (old / wl - lo) / (hi - lo);

				f = (1.0 - sm) * f / factor + sm * f;
			}
			inv[i] = (float)f;
		}
		return 0;
	}
	case LLM_ROPE_YARN:
	case LLM_ROPE_DYNAMIC:
		break;
	}
	return diag_fail(d, LLM_E_UNSUPPORTED,
			 "rope_scaling type %s is not supported yet",
			 cfg->rope.type == LLM_ROPE_YARN ? "yarn" : "dynamic");
}

/* ---- loading ------------------------------------------------------------- */

struct loader {
	struct llm_model *m;
	const struct llm_st_set *st;
	char prefix[64]; /* "model." or "model.language_model." */
};

static enum gpu_dtype to_gpu_dtype(enum llm_dtype t, int *ok)
{
	*ok = 1;
	switch (t) {
	case LLM_DTYPE_F32: return GPU_DTYPE_F32;
	case LLM_DTYPE_F16: return GPU_DTYPE_F16;
	case LLM_DTYPE_BF16: return GPU_DTYPE_BF16;
	default: break;
	}
	*ok = 0;
	return GPU_DTYPE_F32;
}

static int backend_err(int rc, struct diag *d)
{
	if (rc == GPU_E_NOMEM)
		return LLM_E_NOMEM;
	(void)d;
	return LLM_E_BACKEND;
}

/* Upload tensor NAME (full name) checked against SHAPE[n_dims] into *out.
 * Optional tensors (required == 0) that are absent leave *out NULL. */
static int load_full(struct loader *L, const char *name, int n_dims,
		     const int64_t *shape, int required, struct gpu_buf **out,
		     struct diag *d)
{
	const struct llm_tensor_info *t;
	enum gpu_dtype gt;
	int ok, rc;

	*out = NULL;
	if (!required && !llm_st_find(L->st, name))
		return 0;
	rc = llm_st_expect(L->st, name, n_dims, shape, &t, d);
	if (rc < 0)
		return rc;
	gt = to_gpu_dtype(t->dtype, &ok);
	if (!ok)
		return diag_fail(d, LLM_E_UNSUPPORTED,
				 "tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
				 name, llm_dtype_name(t->dtype));
	rc = gpu_buf_new(L->m->g, gt, (size_t)t->n_elems, out, d);
	if (rc == 0)
		rc = gpu_buf_write(*out, 0, t->data, (size_t)t->n_elems, d);
	if (rc < 0) {
		diag_prefix(d, "uploading '%s'", name);
		return backend_err(rc, d);
	}
	L->m->n_params += (uint64_t)t->n_elems;
	L->m->n_bytes += t->n_bytes;
	return 0;
}

/* NAME (SIZE bytes) = the text-model prefix followed by FMT formatted with
 * AP (truncated to fit). */
static void prefixed_name(const struct loader *L, char *name, size_t size,
			  const char *fmt, va_list ap) DIAG_PRINTF(4, 0);

static void prefixed_name(const struct loader *L, char *name, size_t size,
			  const char *fmt, va_list ap)
{
	size_t pl = strlen(L->prefix);

	memcpy(name, L->prefix, pl);
	vsnprintf(name + pl, size - pl, fmt, ap);
}

/* A dense linear `<key>.weight` [OUT, IN], required. */
static int load_dense(struct loader *L, const char *key, int64_t out,
		      int64_t in, struct gpu_buf **w, struct diag *d)
{
	char name[272];
	int64_t shape[2] = { out, in };

	snprintf(name, sizeof name, "%s.weight", key);
	return load_full(L, name, 2, shape, 1, w, d);
}

/* Same with the text-model prefix and a printf-formatted rest. */
static int load(struct loader *L, int required, struct gpu_buf **out,
		struct diag *d, int n_dims, int64_t d0, int64_t d1,
		const char *fmt, ...) DIAG_PRINTF(8, 9);

static int load(struct loader *L, int required, struct gpu_buf **out,
		struct diag *d, int n_dims, int64_t d0, int64_t d1,
		const char *fmt, ...)
{
	char name[256];
	int64_t shape[2] = { d0, d1 };
	va_list ap;

	va_start(ap, fmt);
	prefixed_name(L, name, sizeof name, fmt, ap);
	va_end(ap);
	return load_full(L, name, n_dims, shape, required, out, d);
}

/* A linear `<prefix><fmt>` with IN inputs and OUT outputs: EXL3 when
 * `<key>.trellis` exists (inference/exl3.c validates the group), else the
 * dense `<key>.weight` [OUT, IN].  Exactly one of *w, *q is set. */
static int load_lin(struct loader *L, struct gpu_buf **w,
		    struct gpu_exl3_weight **q, struct diag *d, int64_t out,
		    int64_t in, const char *fmt, ...) DIAG_PRINTF(7, 8);

static int load_lin(struct loader *L, struct gpu_buf **w,
		    struct gpu_exl3_weight **q, struct diag *d, int64_t out,
		    int64_t in, const char *fmt, ...)
{
	char key[256];
	va_list ap;

	*w = NULL;
	*q = NULL;
	va_start(ap, fmt);
	prefixed_name(L, key, sizeof key, fmt, ap);
	va_end(ap);
	if (llm_exl3_has(L->st, key))
		return llm_exl3_load(L->m->g, L->st, key, in, out, 0, q,
				     &L->m->n_params, &L->m->n_bytes, d);
	return load_dense(L, key, out, in, w, d);
}

/* Expert linear `<prefix><fmt>` of a MoE layer whose experts are EXL3
 * (Q: the group `<key>.trellis`... must be there, llm_exl3_load's errors
 * name the missing or malformed tensor) or float (`<key>.weight` [OUT,
 * IN]).  A layer does not mix the two: gpu_moe_ffn takes one set. */
static int load_expert(struct loader *L, bool q, struct gpu_buf **w,
		       struct gpu_exl3_weight **x, struct diag *d, int64_t out,
		       int64_t in, const char *fmt, ...) DIAG_PRINTF(8, 9);

static int load_expert(struct loader *L, bool q, struct gpu_buf **w,
		       struct gpu_exl3_weight **x, struct diag *d, int64_t out,
		       int64_t in, const char *fmt, ...)
{
	char key[256];
	va_list ap;

	va_start(ap, fmt);
	prefixed_name(L, key, sizeof key, fmt, ap);
	va_end(ap);
	if (q) {
		int rc = llm_exl3_load(L->m->g, L->st, key, in, out, 0, x,
				       &L->m->n_params, &L->m->n_bytes, d);

		if (rc < 0)
			diag_prefix(d, "EXL3 MoE expert");
		return rc;
	}
	return load_dense(L, key, out, in, w, d);
}

/* The routed experts of MoE layer L: Mixtral's block_sparse_moe.experts.E.
 * {w1 = gate, w3 = up, w2 = down} or Qwen-MoE's mlp.experts.E.{gate,up,
 * down}_proj; EXL3 when expert 0's gate has a `.trellis` (an ExLlamaV3
 * checkpoint quantizes every routed expert, exl3-format.md §1.12). */
static int load_experts(struct loader *L, int64_t l, struct diag *d)
{
	const struct llm_config *c = &L->m->cfg;
	struct llm_layer *ly = &L->m->layers[l];
	const int64_t E = c->n_embd, F = c->n_ff_expert, ne = c->n_expert;
	const bool mx = c->arch == LLM_ARCH_MIXTRAL;
	const char *mp = mx ? "block_sparse_moe" : "mlp";
	const char *ng = mx ? "w1" : "gate_proj", *nu = mx ? "w3" : "up_proj";
	const char *nd = mx ? "w2" : "down_proj";
	char key[256];
	bool q;
	int64_t e;
	int rc;

	snprintf(key, sizeof key, "%slayers.%" PRId64 ".%s.experts.0.%s",
		 L->prefix, l, mp, ng);
	q = llm_exl3_has(L->st, key);
	if (q) {
		ly->xe_gate = calloc((size_t)ne, sizeof *ly->xe_gate);
		ly->xe_up = calloc((size_t)ne, sizeof *ly->xe_up);
		ly->xe_down = calloc((size_t)ne, sizeof *ly->xe_down);
		if (!ly->xe_gate || !ly->xe_up || !ly->xe_down)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
	} else {
		ly->e_gate = calloc((size_t)ne, sizeof *ly->e_gate);
		ly->e_up = calloc((size_t)ne, sizeof *ly->e_up);
		ly->e_down = calloc((size_t)ne, sizeof *ly->e_down);
		if (!ly->e_gate || !ly->e_up || !ly->e_down)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	for (e = 0; e < ne; e++) {
		rc = load_expert(L, q, q ? NULL : &ly->e_gate[e],
				 q ? &ly->xe_gate[e] : NULL, d, F, E,
				 "layers.%" PRId64 ".%s.experts.%" PRId64 ".%s", l,
				 mp, e, ng);
		if (rc == 0)
			rc = load_expert(L, q, q ? NULL : &ly->e_up[e],
					 q ? &ly->xe_up[e] : NULL, d, F, E,
					 "layers.%" PRId64 ".%s.experts.%" PRId64 ".%s",
					 l, mp, e, nu);
		if (rc == 0)
			rc = load_expert(L, q, q ? NULL : &ly->e_down[e],
					 q ? &ly->xe_down[e] : NULL, d, E, F,
					 "layers.%" PRId64 ".%s.experts.%" PRId64 ".%s",
					 l, mp, e, nd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int load_layer(struct loader *L, int64_t l, struct diag *d)
{
	const struct llm_config *c = &L->m->cfg;
	struct llm_layer *ly = &L->m->layers[l];
	const int64_t E = c->n_embd, H = c->n_head, Hk = c->n_head_kv;
	const int64_t hd = c->head_dim;
	const char *mp; /* MoE block name */
	int rc;

#define TRYL(x)                                                             \
	do {                                                                \
		rc = (x);                                                   \
		if (rc < 0)                                                 \
			return rc;                                          \
	} while (0)
	TRYL(load(L, 1, &ly->attn_norm, d, 1, E, 0, "layers.%" PRId64 ".input_layernorm.weight", l));
	TRYL(load(L, 1, &ly->ffn_norm, d, 1, E, 0, "layers.%" PRId64 ".post_attention_layernorm.weight", l));
	TRYL(load_lin(L, &ly->wq, &ly->xq, d, H * hd, E, "layers.%" PRId64 ".self_attn.q_proj", l));
	TRYL(load_lin(L, &ly->wk, &ly->xk, d, Hk * hd, E, "layers.%" PRId64 ".self_attn.k_proj", l));
	TRYL(load_lin(L, &ly->wv, &ly->xv, d, Hk * hd, E, "layers.%" PRId64 ".self_attn.v_proj", l));
	TRYL(load_lin(L, &ly->wo, &ly->xo, d, E, H * hd, "layers.%" PRId64 ".self_attn.o_proj", l));
	/* an EXL3 linear carries its own .bias (f16, padded) */
	if (c->attn_bias && !ly->xq) {
		TRYL(load(L, 1, &ly->bq, d, 1, H * hd, 0, "layers.%" PRId64 ".self_attn.q_proj.bias", l));
		TRYL(load(L, 1, &ly->bk, d, 1, Hk * hd, 0, "layers.%" PRId64 ".self_attn.k_proj.bias", l));
		TRYL(load(L, 1, &ly->bv, d, 1, Hk * hd, 0, "layers.%" PRId64 ".self_attn.v_proj.bias", l));
	}
	if (c->qk_norm) {
		TRYL(load(L, 1, &ly->q_norm, d, 1, hd, 0, "layers.%" PRId64 ".self_attn.q_norm.weight", l));
		TRYL(load(L, 1, &ly->k_norm, d, 1, hd, 0, "layers.%" PRId64 ".self_attn.k_norm.weight", l));
	}
	ly->moe = llm_config_layer_is_moe(c, l);
	if (!ly->moe) {
		TRYL(load_lin(L, &ly->w_gate, &ly->x_gate, d, c->n_ff, E, "layers.%" PRId64 ".mlp.gate_proj", l));
		TRYL(load_lin(L, &ly->w_up, &ly->x_up, d, c->n_ff, E, "layers.%" PRId64 ".mlp.up_proj", l));
		TRYL(load_lin(L, &ly->w_down, &ly->x_down, d, E, c->n_ff, "layers.%" PRId64 ".mlp.down_proj", l));
		return 0;
	}
	/* the router stays float in EXL3 checkpoints (qmap None, §1.9) */
	mp = c->arch == LLM_ARCH_MIXTRAL ? "block_sparse_moe" : "mlp";
	TRYL(load(L, 1, &ly->router, d, 2, c->n_expert, E, "layers.%" PRId64 ".%s.gate.weight", l, mp));
	TRYL(load_experts(L, l, d));
	if (c->has_shared_expert) {
		const int64_t Fs = c->n_ff_shared;

		/* EXL3 or dense, each as the checkpoint stores it */
		TRYL(load_lin(L, &ly->s_gate, &ly->xs_gate, d, Fs, E, "layers.%" PRId64 ".mlp.shared_expert.gate_proj", l));
		TRYL(load_lin(L, &ly->s_up, &ly->xs_up, d, Fs, E, "layers.%" PRId64 ".mlp.shared_expert.up_proj", l));
		TRYL(load_lin(L, &ly->s_down, &ly->xs_down, d, E, Fs, "layers.%" PRId64 ".mlp.shared_expert.down_proj", l));
		TRYL(load_lin(L, &ly->s_gate_inp, &ly->xs_gate_inp, d, 1, E, "layers.%" PRId64 ".mlp.shared_expert_gate", l));
	}
	return 0;
#undef TRYL
}

static void free_layer(const struct llm_config *c, struct llm_layer *ly)
{
	int64_t e;

	gpu_buf_free(ly->attn_norm);
	gpu_buf_free(ly->ffn_norm);
	gpu_buf_free(ly->wq);
	gpu_buf_free(ly->wk);
	gpu_buf_free(ly->wv);
	gpu_buf_free(ly->wo);
	gpu_buf_free(ly->bq);
	gpu_buf_free(ly->bk);
	gpu_buf_free(ly->bv);
	gpu_buf_free(ly->q_norm);
	gpu_buf_free(ly->k_norm);
	gpu_buf_free(ly->w_gate);
	gpu_buf_free(ly->w_up);
	gpu_buf_free(ly->w_down);
	gpu_buf_free(ly->router);
	for (e = 0; e < c->n_expert; e++) {
		if (ly->e_gate)
			gpu_buf_free(ly->e_gate[e]);
		if (ly->e_up)
			gpu_buf_free(ly->e_up[e]);
		if (ly->e_down)
			gpu_buf_free(ly->e_down[e]);
	}
	for (e = 0; e < c->n_expert; e++) {
		if (ly->xe_gate)
			gpu_exl3_weight_free(ly->xe_gate[e]);
		if (ly->xe_up)
			gpu_exl3_weight_free(ly->xe_up[e]);
		if (ly->xe_down)
			gpu_exl3_weight_free(ly->xe_down[e]);
	}
	free(ly->e_gate);
	free(ly->e_up);
	free(ly->e_down);
	free(ly->xe_gate);
	free(ly->xe_up);
	free(ly->xe_down);
	gpu_exl3_weight_free(ly->xs_gate);
	gpu_exl3_weight_free(ly->xs_up);
	gpu_exl3_weight_free(ly->xs_down);
	gpu_exl3_weight_free(ly->xs_gate_inp);
	gpu_buf_free(ly->s_gate);
	gpu_buf_free(ly->s_up);
	gpu_buf_free(ly->s_down);
	gpu_buf_free(ly->s_gate_inp);
	gpu_exl3_weight_free(ly->xq);
	gpu_exl3_weight_free(ly->xk);
	gpu_exl3_weight_free(ly->xv);
	gpu_exl3_weight_free(ly->xo);
	gpu_exl3_weight_free(ly->x_gate);
	gpu_exl3_weight_free(ly->x_up);
	gpu_exl3_weight_free(ly->x_down);
}

void llm_model_free(struct llm_model *m)
{
	int64_t l;

	if (!m)
		return;
	if (m->layers)
		for (l = 0; l < m->cfg.n_layer; l++)
			free_layer(&m->cfg, &m->layers[l]);
	free(m->layers);
	if (m->lm_head != m->tok_embd)
		gpu_buf_free(m->lm_head);
	gpu_exl3_weight_free(m->x_lm_head);
	gpu_buf_free(m->tok_embd);
	gpu_buf_free(m->out_norm);
	gpu_buf_free(m->inv_freq);
	gpu_close(m->g);
	free(m);
}

static int load_weights(struct loader *L, struct diag *d)
{
	struct llm_model *m = L->m;
	const struct llm_config *c = &m->cfg;
	const int64_t V = c->n_vocab, E = c->n_embd;
	int64_t l;
	int rc;

	rc = load(L, 1, &m->tok_embd, d, 2, V, E, "embed_tokens.weight");
	if (rc == 0)
		rc = load(L, 1, &m->out_norm, d, 1, E, 0, "norm.weight");
	if (rc < 0)
		return rc;
	if (llm_exl3_has(L->st, "lm_head")) {
		/* EXL3 conversion always writes its own head, at exactly
		 * quantization_config.head_bits (exl3-format.md §1.10) */
		double hb = c->exl3_head_bits;
		int want = hb >= 1 && hb <= 8 && hb == (double)(int)hb ? (int)hb : 0;

		rc = llm_exl3_load(m->g, L->st, "lm_head", E, V, want,
				   &m->x_lm_head, &m->n_params, &m->n_bytes, d);
		if (rc < 0)
			return rc;
	} else if (c->tie_embeddings) {
		m->lm_head = m->tok_embd;
	} else {
		int64_t shape[2] = { V, E };

		rc = load_full(L, "lm_head.weight", 2, shape, 1, &m->lm_head, d);
		if (rc < 0)
			return rc;
	}
	m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
	if (!m->layers)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	for (l = 0; l < c->n_layer; l++) {
		rc = load_layer(L, l, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int llm_model_setup(struct llm_model *m, const struct llm_model_params *params,
		    const char *name, struct diag *d)
{
	struct llm_model_params def = llm_model_default_params();
	struct gpu_params gp = gpu_default_params();
	enum gpu_kind kind;
	float *inv = NULL;
	int rc;

	if (!params)
		params = &def;
	if (params->max_batch > LLM_MAX_BATCH_LIMIT)
		return diag_fail(d, LLM_E_INVALID, "%s: batch of %zu rows (at most %d)",
				 name, params->max_batch, LLM_MAX_BATCH_LIMIT);
	snprintf(m->arch, sizeof m->arch, "%s", m->cfg.arch_name);
	if (m->cfg.head_dim % 2 || m->cfg.head_dim > GPU_MAX_HEAD_DIM)
		return diag_fail(d, LLM_E_UNSUPPORTED, "%s: head_dim %" PRId64,
				 name, m->cfg.head_dim);
	/* Mixtral always renormalises its top-k weights; Qwen MoE only with
	 * norm_topk_prob. */
	m->moe_renorm = m->cfg.arch == LLM_ARCH_MIXTRAL || m->cfg.norm_topk_prob;
	if (m->cfg.rope.type == LLM_ROPE_MROPE) {
		m->mrope = true;
		memcpy(m->mrope_section, m->cfg.rope.mrope_section,
		       sizeof m->mrope_section);
		if ((int64_t)m->mrope_section[0] + m->mrope_section[1] +
		    m->mrope_section[2] != m->cfg.head_dim / 2)
			return diag_fail(d, LLM_E_FORMAT,
					 "%s: mrope_section [%d, %d, %d] does not add up "
					 "to head_dim / 2 = %" PRId64, name,
					 m->mrope_section[0], m->mrope_section[1],
					 m->mrope_section[2], m->cfg.head_dim / 2);
	}

	switch (params->backend) {
	case LLM_BACKEND_CPU: kind = GPU_KIND_CPU; break;
	case LLM_BACKEND_CUDA: kind = GPU_KIND_CUDA; break;
	default: kind = GPU_KIND_AUTO; break;
	}
	gp.n_threads = params->n_threads;
	rc = gpu_open(kind, &gp, &m->g, d);
	if (rc < 0)
		return backend_err(rc, d);
	m->kv_dtype = params->kv_type == LLM_KV_F16 ? GPU_DTYPE_F16 :
		      params->kv_type == LLM_KV_F32 ? GPU_DTYPE_F32 :
		      gpu_get_kind(m->g) == GPU_KIND_CUDA ? GPU_DTYPE_F16 :
							     GPU_DTYPE_F32;
	if (params->kv_type == LLM_KV_QUANT) {
		const int kb = params->kv_k_bits, vb = params->kv_v_bits;

		if (kb < GPU_KVQ_MIN_BITS || kb > GPU_KVQ_MAX_BITS ||
		    vb < GPU_KVQ_MIN_BITS || vb > GPU_KVQ_MAX_BITS)
			return diag_fail(d, LLM_E_INVALID,
					 "quantized KV cache of %d-bit keys and %d-bit "
					 "values: each must be %d..%d bits", kb, vb,
					 GPU_KVQ_MIN_BITS, GPU_KVQ_MAX_BITS);
		if (m->cfg.head_dim % GPU_KVQ_GROUP)
			return diag_fail(d, LLM_E_UNSUPPORTED,
					 "%s: head_dim %" PRId64 " is not a multiple of "
					 "%d, which a quantized KV cache needs; use an "
					 "f16 cache (--kv-type f16; in the chat's "
					 "config kv_bits: 16)", name, m->cfg.head_dim,
					 GPU_KVQ_GROUP);
		m->kv_k_bits = (unsigned)kb;
		m->kv_v_bits = (unsigned)vb;
	}
	m->max_batch = params->max_batch ? params->max_batch :
		       gpu_get_kind(m->g) == GPU_KIND_CUDA ? LLM_MAX_BATCH_GPU :
							      LLM_MAX_BATCH;

	inv = malloc((size_t)(m->cfg.head_dim / 2) * sizeof *inv);
	if (!inv)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	rc = llm_rope_inv_freq(&m->cfg, inv, d);
	if (rc == 0) {
		rc = gpu_buf_new(m->g, GPU_DTYPE_F32, (size_t)(m->cfg.head_dim / 2),
				 &m->inv_freq, d);
		if (rc == 0)
			rc = gpu_buf_write(m->inv_freq, 0, inv,
					   (size_t)(m->cfg.head_dim / 2), d);
		if (rc < 0)
			rc = backend_err(rc, d);
	}
	free(inv);
	return rc;
}

/* LLM_E_NOSPACE when the weights the loader will upload (tensors under
 * L->prefix and lm_head.*) exceed the backend's free memory less the
 * margin (file comment).  A backend that reports no total (0) passes. */
static int check_room(struct loader *L, const char *dir, struct diag *d)
{
	const size_t pl = strlen(L->prefix);
	uint64_t need = 0, fr = 0, tot = 0, margin;
	size_t i, n = llm_st_count(L->st);
	int rc;

	for (i = 0; i < n; i++) {
		const struct llm_tensor_info *t = llm_st_at(L->st, i);

		if (!strncmp(t->name, L->prefix, pl) ||
		    !strncmp(t->name, "lm_head.", 8))
			need += t->n_bytes;
	}
	rc = gpu_mem_info(L->m->g, &fr, &tot, d);
	if (rc < 0)
		return backend_err(rc, d);
	if (tot == 0)
		return 0;
	margin = ((uint64_t)256 << 20) + tot / 64;
	if (need > fr || fr - need < margin)
		return diag_fail(d, LLM_E_NOSPACE,
				 "%s: the weights take %.2f GiB, %s has %.2f GiB free "
				 "(%.2f GiB must stay free for the KV cache and "
				 "scratch)", dir, (double)need / (1 << 30),
				 gpu_describe(L->m->g), (double)fr / (1 << 30),
				 (double)margin / (1 << 30));
	return 0;
}

int llm_model_open(const char *dir, const struct llm_model_params *params,
		   struct llm_model **out, struct diag *d)
{
	struct llm_st_set *st = NULL;
	struct llm_model *m;
	struct loader L;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	rc = llm_config_load(dir, &m->cfg, d);
	if (rc < 0)
		goto fail;
	rc = llm_model_setup(m, params, dir, d);
	if (rc < 0)
		goto fail;

	rc = llm_st_open(dir, &st, d);
	if (rc < 0)
		goto fail;
	memset(&L, 0, sizeof L);
	L.m = m;
	L.st = st;
	snprintf(L.prefix, sizeof L.prefix, "%s",
		 llm_st_find(st, "model.language_model.embed_tokens.weight") ?
		 "model.language_model." : "model.");
	rc = check_room(&L, dir, d);
	if (rc < 0)
		goto fail;
	rc = load_weights(&L, d);
	if (rc < 0) {
		diag_prefix(d, "%s", dir);
		goto fail;
	}
	llm_st_close(st);
	*out = m;
	return 0;
fail:
	llm_st_close(st);
	llm_model_free(m);
	return rc;
}

int64_t llm_model_n_vocab(const struct llm_model *m) { return m->cfg.n_vocab; }
int64_t llm_model_n_embd(const struct llm_model *m) { return m->cfg.n_embd; }
int64_t llm_model_n_layer(const struct llm_model *m) { return m->cfg.n_layer; }
int64_t llm_model_n_ctx_train(const struct llm_model *m) { return m->cfg.max_pos; }
const char *llm_model_arch(const struct llm_model *m) { return m->arch; }
uint64_t llm_model_n_params(const struct llm_model *m) { return m->n_params; }
uint64_t llm_model_bytes(const struct llm_model *m) { return m->n_bytes; }
const char *llm_model_backend(const struct llm_model *m) { return gpu_describe(m->g); }
bool llm_model_on_gpu(const struct llm_model *m)
{
	return gpu_get_kind(m->g) != GPU_KIND_CPU;
}
int32_t llm_model_bos(const struct llm_model *m) { return m->cfg.bos_id; }
int32_t llm_model_image_token(const struct llm_model *m)
{
	return m->cfg.has_vision ? (int32_t)m->cfg.image_token_id : -1;
}

bool llm_model_is_eos(const struct llm_model *m, int32_t id)
{
	int i;

	for (i = 0; i < m->cfg.n_eos; i++)
		if (m->cfg.eos_ids[i] == id)
			return true;
	return false;
}

/* ---- KV pages -------------------------------------------------------------- */

int llm_kv_reserve(struct llm_context *c, size_t seq, size_t n, struct diag *d)
{
	size_t need = (n + LLM_KV_PAGE - 1) / LLM_KV_PAGE, p;
	int32_t *row = c->page_table + seq * c->max_pages;

	if (n > c->n_ctx || need > c->max_pages)
		return diag_fail(d, LLM_E_NOSPACE,
				 "%zu positions exceed the context of %zu", n,
				 c->n_ctx);
	for (p = 0; p < need; p++) {
		if (row[p] >= 0)
			continue;
		if (c->n_free == 0)
			return diag_fail(d, LLM_E_NOSPACE, "KV cache pool is full");
		row[p] = c->free_pages[--c->n_free];
		c->pt_dirty = true;
	}
	return 0;
}

void llm_kv_release(struct llm_context *c, size_t seq, size_t n)
{
	size_t keep = (n + LLM_KV_PAGE - 1) / LLM_KV_PAGE, p;
	int32_t *row = c->page_table + seq * c->max_pages;

	for (p = keep; p < c->max_pages; p++) {
		if (row[p] < 0)
			continue;
		c->free_pages[c->n_free++] = row[p];
		row[p] = -1;
		c->pt_dirty = true;
	}
}

/* ---- context ------------------------------------------------------------- */

void llm_context_free(struct llm_context *c)
{
	size_t l;

	if (!c)
		return;
	for (l = 0; l <= LLM_GRAPH_MAX_ROWS; l++)
		gpu_graph_free(c->graph[l]);
	if (c->kv) {
		for (l = 0; l < (size_t)c->model->cfg.n_layer; l++) {
			gpu_buf_free(c->kv[l].k);
			gpu_buf_free(c->kv[l].v);
			gpu_buf_free(c->kv[l].k_scale);
			gpu_buf_free(c->kv[l].v_scale);
		}
	}
	free(c->kv);
	gpu_buf_free(c->x);
	gpu_buf_free(c->xn);
	gpu_buf_free(c->q);
	gpu_buf_free(c->k);
	gpu_buf_free(c->v);
	gpu_buf_free(c->att);
	gpu_buf_free(c->o);
	gpu_buf_free(c->ff_gate);
	gpu_buf_free(c->ff_up);
	gpu_buf_free(c->ids);
	gpu_buf_free(c->pos);
	gpu_buf_free(c->seq);
	gpu_buf_free(c->page_table_dev);
	gpu_buf_free(c->r_logits);
	gpu_buf_free(c->r_ids);
	gpu_buf_free(c->r_wts);
	gpu_buf_free(c->moe_scratch);
	gpu_buf_free(c->sh_out);
	gpu_buf_free(c->sh_gate);
	gpu_buf_free(c->lrows);
	gpu_buf_free(c->xl);
	gpu_buf_free(c->lg);
	free(c->page_table);
	free(c->free_pages);
	free(c->n_past);
	free(c->h_pos);
	free(c->h_rows);
	free(c->ev_seq);
	free(c->ev_pos);
	free(c->ev_want);
	free(c);
}

static int newbuf(struct llm_context *c, struct gpu_buf **b, enum gpu_dtype t,
		  size_t n, struct diag *d)
{
	int rc = gpu_buf_new(c->g, t, n ? n : 1, b, d);

	if (rc < 0) {
		diag_prefix(d, "context");
		return backend_err(rc, d);
	}
	return 0;
}

/* The expert set of MoE layer ly as gpu_moe_ffn takes it. */
void llm_layer_experts(const struct llm_model *m, const struct llm_layer *ly,
		       struct gpu_moe_experts *ex)
{
	/* float (e_*) or EXL3 (xe_*), the other triple NULL */
	memset(ex, 0, sizeof *ex);
	ex->n_expert = (size_t)m->cfg.n_expert;
	ex->n_ff = (size_t)m->cfg.n_ff_expert;
	ex->gate = (const struct gpu_buf *const *)ly->e_gate;
	ex->up = (const struct gpu_buf *const *)ly->e_up;
	ex->down = (const struct gpu_buf *const *)ly->e_down;
	ex->xgate = (const struct gpu_exl3_weight *const *)ly->xe_gate;
	ex->xup = (const struct gpu_exl3_weight *const *)ly->xe_up;
	ex->xdown = (const struct gpu_exl3_weight *const *)ly->xe_down;
}

/* Whether contexts of M record decode steps (forward.c): a CUDA backend,
 * every MoE layer's experts dispatched on the device
 * (gpu_moe_ffn_recordable), and TERN_CUDA_GRAPHS not set to "0". */
static bool graphs_wanted(const struct llm_model *m)
{
	const char *env = getenv("TERN_CUDA_GRAPHS");
	int64_t l;

	if ((env && !strcmp(env, "0")) || gpu_get_kind(m->g) != GPU_KIND_CUDA ||
	    m->capture)
		return false;
	/* EXL3 linears are recordable: their workspace is sized when the
	 * weights are uploaded, before any graph is recorded, and matmul
	 * neither allocates nor synchronises.  MoE layers are when the
	 * backend dispatches their experts on the device for every batch a
	 * graph may hold (f16/bf16 experts, or EXL3 experts of one format
	 * per kind, on CUDA); otherwise the dispatch reads the routing on
	 * the host. */
	for (l = 0; l < m->cfg.n_layer; l++)
		if (m->layers[l].moe) {
			struct gpu_moe_experts ex;

			llm_layer_experts(m, &m->layers[l], &ex);
			if (!gpu_moe_ffn_recordable(m->g, &ex, LLM_GRAPH_MAX_ROWS,
						    (size_t)m->cfg.n_embd,
						    (size_t)m->cfg.n_expert_used))
				return false;
		}
	return true;
}

/* Rows one forward call of a context of n_ctx positions x n_seq slots
 * takes: the model's max_batch, or fewer when the context holds fewer. */
static size_t context_batch(const struct llm_model *m, size_t n_ctx,
			    size_t n_seq)
{
	return n_ctx * n_seq < m->max_batch ? n_ctx * n_seq : m->max_batch;
}

/* LLM_E_NOSPACE, with the sizes, when the KV pool and the activation
 * buffers of a context (n_pages 0: every slot can fill n_ctx) would not
 * fit the backend's free memory (device memory on CUDA, available host
 * memory on the CPU) — checked before anything is allocated, so an
 * impossible context fails at once instead of half-allocated (or, on the
 * CPU, by the kernel's OOM killer when the pages are touched). */
static int context_fits(const struct llm_model *m, size_t n_ctx,
			size_t n_seq, size_t n_pages, struct diag *d)
{
	const struct llm_config *cf = &m->cfg;
	const double E = (double)cf->n_embd, H = (double)cf->n_head;
	const double Hk = (double)cf->n_head_kv, hd = (double)cf->head_dim;
	const double F = (double)(cf->n_ff_shared > cf->n_ff ? cf->n_ff_shared :
							       cf->n_ff);
	const size_t max_pages = (n_ctx + LLM_KV_PAGE - 1) / LLM_KV_PAGE;
	const double pages = (double)(n_pages ? n_pages : max_pages * n_seq);
	const double B = (double)context_batch(m, n_ctx, n_seq);
	double kv, act, margin;
	uint64_t fr = 0, tot = 0;
	struct diag d2;

	diag_clear(&d2);
	if (gpu_mem_info(m->g, &fr, &tot, &d2) < 0 || tot == 0)
		return 0; /* unknown: the allocations will tell */
	kv = (double)cf->n_layer * pages * LLM_KV_PAGE * Hk * hd *
	     llm_kv_value_bytes(m);
	act = 4.0 * B * (3.0 * E + 2.0 * H * hd + 2.0 * Hk * hd + 2.0 * F +
			 (double)cf->n_vocab);
	margin = (double)(64u << 20);
	if (kv + act + margin <= (double)fr)
		return 0;
	return diag_fail(d, LLM_E_NOSPACE,
			 "context of %zu positions x %zu slots: the KV cache takes "
			 "%.2f GiB (%.0f pages of %d positions, %s) and the "
			 "activations about %.2f GiB, but %s has %.2f GiB free; "
			 "use a shorter context or fewer slots%s",
			 n_ctx, n_seq, kv / (1 << 30), pages, LLM_KV_PAGE,
			 m->kv_k_bits ? "quantized" : gpu_dtype_name(m->kv_dtype),
			 act / (1 << 30), gpu_describe(m->g), (double)fr / (1 << 30),
			 m->kv_k_bits ? "" :
			 m->kv_dtype == GPU_DTYPE_F32 ? " (or an f16 or quantized cache: --kv-type f16, q8, q4)" :
			 " (or a quantized cache: --kv-type q8 or q4)");
}

/* The backend's scratch areas sized for the context's largest ops
 * (gpu_reserve), so that no forward pass allocates and recorded decode
 * graphs stay valid when a prefill follows them. */
static int reserve_scratch(struct llm_context *c, struct diag *d)
{
	const struct llm_config *cf = &c->model->cfg;
	struct gpu_reserve_req r;
	size_t k = (size_t)cf->n_embd, span = c->max_pages * LLM_KV_PAGE;
	const size_t ks[3] = { (size_t)(cf->n_head * cf->head_dim),
			       (size_t)cf->n_ff, (size_t)cf->n_ff_shared };
	int i, rc;

	for (i = 0; i < 3; i++)
		k = ks[i] > k ? ks[i] : k;
	if (cf->n_ff_expert > 0 && (size_t)cf->n_ff_expert > k)
		k = (size_t)cf->n_ff_expert;
	if (cf->sliding_window > 0 && (size_t)cf->sliding_window < span)
		span = (size_t)cf->sliding_window;
	memset(&r, 0, sizeof r);
	r.n_rows = c->n_batch > LLM_LOGIT_ROWS ? c->n_batch : LLM_LOGIT_ROWS;
	r.k_max = k;
	r.n_head = (size_t)cf->n_head;
	r.n_head_kv = (size_t)cf->n_head_kv;
	r.head_dim = (size_t)cf->head_dim;
	r.span = span;
	r.kv_dtype = c->model->kv_dtype;
	r.kv_k_bits = c->model->kv_k_bits;
	if (cf->n_expert > 0) {
		r.moe_rows_k = c->n_batch * (size_t)cf->n_expert_used;
		r.moe_experts = (size_t)cf->n_expert;
	}
	rc = gpu_reserve(c->g, &r, NULL, d);
	if (rc < 0) {
		diag_prefix(d, "context scratch");
		return backend_err(rc, d);
	}
	return 0;
}

int llm_context_new(struct llm_model *m, size_t n_ctx, struct llm_context **out,
		    struct diag *d)
{
	return llm_context_new_slots(m, n_ctx, 1, 0, out, d);
}

int llm_context_new_slots(struct llm_model *m, size_t n_ctx, size_t n_seq,
			  size_t n_pages, struct llm_context **out,
			  struct diag *d)
{
	const struct llm_config *cf = &m->cfg;
	struct llm_context *c;
	size_t B, E = (size_t)cf->n_embd, H = (size_t)cf->n_head;
	size_t Hk = (size_t)cf->n_head_kv, hd = (size_t)cf->head_dim;
	size_t F = (size_t)cf->n_ff, l, i;
	int rc;

	*out = NULL;
	if (n_ctx == 0)
		n_ctx = cf->max_pos > 0 ? (size_t)cf->max_pos : 4096;
	if (n_ctx > ((size_t)1 << 24))
		return diag_fail(d, LLM_E_INVALID, "context of %zu positions", n_ctx);
	if ((size_t)cf->n_ff_shared > F)
		F = (size_t)cf->n_ff_shared;
	if (n_seq == 0 || n_seq > 4096)
		return diag_fail(d, LLM_E_INVALID, "%zu sequence slots", n_seq);
	rc = context_fits(m, n_ctx, n_seq, n_pages, d);
	if (rc < 0)
		return rc;
	c = calloc(1, sizeof *c);
	if (!c)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	c->model = m;
	c->g = m->g;
	c->n_ctx = n_ctx;
	c->n_seq = n_seq;
	c->n_batch = B = context_batch(m, n_ctx, n_seq);
	c->max_pages = (n_ctx + LLM_KV_PAGE - 1) / LLM_KV_PAGE;
	/* n_pages 0: enough for every slot to fill its context */
	c->n_pages = n_pages ? n_pages : c->max_pages * c->n_seq;
	c->page_table = malloc(c->n_seq * c->max_pages * sizeof *c->page_table);
	c->free_pages = malloc(c->n_pages * sizeof *c->free_pages);
	c->n_past = calloc(c->n_seq, sizeof *c->n_past);
	c->h_pos = malloc(3 * B * sizeof *c->h_pos);
	c->h_rows = malloc(B * sizeof *c->h_rows);
	c->ev_seq = malloc(B * sizeof *c->ev_seq);
	c->ev_pos = malloc(B * sizeof *c->ev_pos);
	c->ev_want = malloc(B);
	c->kv = calloc((size_t)cf->n_layer, sizeof *c->kv);
	if (!c->page_table || !c->free_pages || !c->n_past || !c->h_pos ||
	    !c->h_rows || !c->ev_seq || !c->ev_pos || !c->ev_want || !c->kv) {
		llm_context_free(c);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	for (i = 0; i < c->n_seq * c->max_pages; i++)
		c->page_table[i] = -1;
	/* the free stack hands out high pages first: page tables are then
	 * not the identity, so attention really goes through them */
	for (i = 0; i < c->n_pages; i++)
		c->free_pages[i] = (int32_t)i;
	c->n_free = c->n_pages;
	c->pt_dirty = true;
	c->use_graphs = graphs_wanted(m);

#define NB(field, type, count)                                              \
	do {                                                                \
		rc = newbuf(c, &c->field, type, count, d);                  \
		if (rc < 0)                                                 \
			goto fail;                                          \
	} while (0)
	for (l = 0; l < (size_t)cf->n_layer; l++) {
		size_t n = c->n_pages * LLM_KV_PAGE * Hk * hd;

		if (m->kv_k_bits) {
			const size_t ng = n / GPU_KVQ_GROUP;

			NB(kv[l].k, GPU_DTYPE_I32, ng * m->kv_k_bits);
			NB(kv[l].v, GPU_DTYPE_I32, ng * m->kv_v_bits);
			NB(kv[l].k_scale, GPU_DTYPE_F16, ng);
			NB(kv[l].v_scale, GPU_DTYPE_F16, ng);
			c->kv[l].k_bits = m->kv_k_bits;
			c->kv[l].v_bits = m->kv_v_bits;
		} else {
			NB(kv[l].k, m->kv_dtype, n);
			NB(kv[l].v, m->kv_dtype, n);
		}
		c->kv[l].n_pages = c->n_pages;
		c->kv[l].page_size = LLM_KV_PAGE;
		c->kv[l].n_head_kv = Hk;
		c->kv[l].head_dim = hd;
	}
	NB(x, GPU_DTYPE_F32, B * E);
	NB(xn, GPU_DTYPE_F32, B * E);
	NB(q, GPU_DTYPE_F32, B * H * hd);
	NB(k, GPU_DTYPE_F32, B * Hk * hd);
	NB(v, GPU_DTYPE_F32, B * Hk * hd);
	NB(att, GPU_DTYPE_F32, B * H * hd);
	NB(o, GPU_DTYPE_F32, B * E);
	NB(ff_gate, GPU_DTYPE_F32, B * F);
	NB(ff_up, GPU_DTYPE_F32, B * F);
	NB(ids, GPU_DTYPE_I32, B);
	NB(pos, GPU_DTYPE_I32, 3 * B);
	NB(seq, GPU_DTYPE_I32, B);
	NB(page_table_dev, GPU_DTYPE_I32, c->n_seq * c->max_pages);
	if (cf->n_expert > 0) {
		size_t ne = (size_t)cf->n_expert, k = (size_t)cf->n_expert_used;

		NB(r_logits, GPU_DTYPE_F32, B * ne);
		NB(r_ids, GPU_DTYPE_I32, B * k);
		NB(r_wts, GPU_DTYPE_F32, B * k);
		NB(moe_scratch, GPU_DTYPE_F32,
		   gpu_moe_scratch_elems(B, E, (size_t)cf->n_ff_expert, k));
		NB(sh_out, GPU_DTYPE_F32, B * E);
		NB(sh_gate, GPU_DTYPE_F32, B);
	}
	NB(lrows, GPU_DTYPE_I32, B);
	NB(xl, GPU_DTYPE_F32, LLM_LOGIT_ROWS * E);
	NB(lg, GPU_DTYPE_F32, LLM_LOGIT_ROWS * (size_t)cf->n_vocab);
#undef NB
	rc = reserve_scratch(c, d);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	llm_context_free(c);
	return rc;
}

size_t llm_context_n_past(const struct llm_context *c) { return c->n_past[0]; }
size_t llm_context_n_ctx(const struct llm_context *c) { return c->n_ctx; }

void llm_context_reset(struct llm_context *c)
{
	llm_kv_release(c, 0, 0);
	c->n_past[0] = 0;
}

int llm_context_truncate(struct llm_context *c, size_t n, struct diag *d)
{
	if (n > c->n_past[0])
		return diag_fail(d, LLM_E_INVALID,
				 "cannot truncate %zu positions to %zu", c->n_past[0],
				 n);
	/* stale K/V beyond n stay in the kept pages; they are overwritten
	 * before anything reads them (attention reads only <= position) */
	llm_kv_release(c, 0, n);
	c->n_past[0] = n;
	return 0;
}

int llm_context_eval(struct llm_context *c, const int32_t *ids, size_t n,
		     enum llm_logits which, float *logits, struct diag *d)
{
	const size_t V = (size_t)c->model->cfg.n_vocab;
	const size_t start = c->n_past[0];
	int32_t *const seq = c->ev_seq, *const pos = c->ev_pos;
	uint8_t *const want = c->ev_want;
	size_t i, done;
	int rc;

	if (n == 0)
		return 0;
	if (which != LLM_LOGITS_NONE && !logits)
		return diag_fail(d, LLM_E_INVALID, "llm_context_eval: no logits buffer");
	for (i = 0; i < n; i++)
		if (ids[i] < 0 || (size_t)ids[i] >= V)
			return diag_fail(d, LLM_E_INVALID,
					 "token %zu: id %d outside the vocabulary of %zu",
					 i, (int)ids[i], V);
	if (n > c->n_ctx - start)
		return diag_fail(d, LLM_E_NOSPACE,
				 "%zu + %zu tokens exceed the context of %zu", start,
				 n, c->n_ctx);
	rc = llm_kv_reserve(c, 0, start + n, d);
	if (rc < 0)
		return rc;
	for (done = 0; done < n;) {
		struct llm_batch b;
		size_t m = n - done < c->n_batch ? n - done : c->n_batch;

		for (i = 0; i < m; i++) {
			seq[i] = 0;
			pos[i] = (int32_t)(start + done + i);
			want[i] = which == LLM_LOGITS_ALL ||
				  (which == LLM_LOGITS_LAST && done + i == n - 1);
		}
		memset(&b, 0, sizeof b);
		b.n = m;
		b.ids = ids + done;
		b.seq = seq;
		b.pos = pos;
		b.logits = which == LLM_LOGITS_NONE ? NULL : want;
		b.logits_out = which == LLM_LOGITS_ALL ? logits + done * V : logits;
		rc = llm_forward(c, &b, d);
		if (rc < 0) {
			llm_kv_release(c, 0, start);
			c->n_past[0] = start;
			return rc;
		}
		done += m;
		c->n_past[0] = start + done;
	}
	return 0;
}
