/* inference/forward.c — the decoder forward pass as a sequence of backend
 * ops, one family function for every supported text architecture (Llama,
 * Mistral, Qwen2/3, Mixtral, Qwen2/3-MoE, Qwen2.5-VL text): they differ only
 * in flags (qkv bias, q/k norm, MoE block, shared expert, MRoPE).
 *
 * Shapes, with n rows (tokens) in the batch, E = n_embd, H / Hk heads /
 * kv heads, hd = head_dim, F = n_ff, V = n_vocab:
 *   x   [n, E]      = embed[ids]                       (residual stream)
 *   per layer:
 *     xn  [n, E]    = rmsnorm(x) * attn_norm
 *     q   [n, H, hd]  = xn Wq^T (+ bq);  k, v [n, Hk, hd] likewise
 *     q, k          = rmsnorm per head * q_norm / k_norm   (Qwen3)
 *     q, k          = rope(q, k, pos)                      (rotate-half)
 *     cache[seq, pos] <- k, v                             (paged pool)
 *     att [n, H, hd]  = softmax(q K^T / sqrt(hd), causal) V
 *     x  += att Wo^T
 *     xn            = rmsnorm(x) * ffn_norm
 *     dense: x += Wd (silu(Wg xn) * (Wu xn))
 *     MoE:   p = softmax(router xn) over experts, top-k (renormalised for
 *            Mixtral / norm_topk_prob), x += sum_j p_j expert_j(xn)
 *            (+ sigmoid(w_sg . xn) * shared_expert(xn) for Qwen2-MoE);
 *            experts float or EXL3 (gpu_moe_ffn takes either set), the
 *            shared expert through gpu_swiglu_ffn (dense weights of one
 *            dtype) or llm_linear
 *   xn [n, E]     = rmsnorm(x) * norm
 *   logits [m, V] = xn[rows wanting logits] lm_head^T
 *
 * Ops per layer (dense model):
 *   gpu_matmul_multi q/k/v   one GEMV launch at decode, one x -> half
 *                            conversion + 3 GEMMs in prefill
 *   gpu_rope_kv_store        (q/k norm,) rope q, rope k, store k and v:
 *                            one launch
 *   gpu_attention            decode (+ combine) or prefill kernel
 *   o_proj (llm_linear)
 *   gpu_add_rmsnorm          x += o; xn = rmsnorm(x) * ffn_norm
 *   gpu_swiglu_ffn           gate/up products, the SwiGLU (one GEMV
 *                            launch at batch 1) and down_proj; CUDA
 *                            prefill keeps the intermediates in bf16
 *   gpu_add_rmsnorm          x += o; xn = rmsnorm(x) * next layer's
 *                            attn_norm (after the last layer: out_norm)
 * so only layer 0's input norm is a plain gpu_rmsnorm, and the final norm
 * runs on every row inside the recorded part (the logits step gathers
 * already normed rows).  EXL3 layers use gpu_exl3_matmul_multi for q/k/v
 * and gpu_exl3_swiglu for gate/up (one input and one output launch each
 * at decode), or gpu_exl3_residual for everything from the attention to
 * the next layer's RoPE + KV store (see layers()); weights of mixed kinds
 * go through llm_linear one by one.
 *
 * Everything runs in f32 on the activations; weights are converted inside
 * matmul (cuBLAS paths round the activations to the weights' half type
 * on the way in, and gpu_swiglu_ffn on CUDA keeps its bf16 prefill
 * intermediates in bf16).  Linears go through llm_linear (inference/exl3.c): dense weights
 * to gpu_matmul, EXL3 ones to gpu_exl3_matmul (same formula, the weight
 * decoded on the fly).  The function allocates nothing: every buffer was sized by
 * llm_context_new for n_batch rows.
 *
 * Recorded decode steps (CUDA graphs): the embedding and every layer of a
 * batch of n <= LLM_GRAPH_MAX_ROWS rows depend on the batch only through
 * the context's fixed device buffers (ids, pos, seq, page table): each
 * op's sizes are n and the context's geometry (attention's grid covers
 * the whole page-table row and reads each row's position from pos; blocks
 * past it exit early).  So, per row count n (one graph per count, 1..16),
 * the first such batch runs unrecorded (it sizes the backend's scratch),
 * the second is recorded into c->graph[n], and every later one only
 * uploads the small per-step arrays and launches the graph.  The logits
 * step stays unrecorded (which rows want logits varies).  Not recorded:
 * injected embeddings or explicit MRoPE positions (host writes mid-step),
 * MoE models whose experts the backend cannot dispatch on the device
 * (f32 experts, EXL3 experts of mixed formats, more than 128 experts or
 * top_k > 8: the dispatch reads the routing back;
 * gpu_moe_ffn_recordable), and contexts with c->use_graphs off
 * (TERN_CUDA_GRAPHS=0, or a CPU backend).
 * A graph whose scratch moved (a larger batch grew it) is recorded again;
 * a failed recording falls back to the unrecorded path (after 4 failures
 * the context stops trying).  Replays run exactly the recorded kernels, so
 * logits are bit-identical with and without graphs.
 */
#include "config.h"

#include "inference/exl3_impl.h"
#include "inference/model_impl.h"

#include <math.h>
#include <string.h>

/* Wrap a backend call: on failure, say where and map to LLM_E_BACKEND. */
#define OP(call, ...)                                                       \
	do {                                                                \
		int rc_ = (call);                                           \
		if (rc_ < 0) {                                              \
			diag_prefix(d, __VA_ARGS__);                        \
			return rc_ == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND; \
		}                                                           \
	} while (0)

/* Dense weights of one dtype (all non-NULL): they can share one
 * gpu_matmul_multi (EXL3 linears have a NULL gpu_buf and go one by one). */
static bool same_dense(const struct gpu_buf *a, const struct gpu_buf *b,
		       const struct gpu_buf *c3)
{
	return a && b && gpu_buf_dtype(a) == gpu_buf_dtype(b) &&
	       (!c3 || gpu_buf_dtype(a) == gpu_buf_dtype(c3));
}

/* Whether q/k/v of ly are EXL3 linears only (their biases inside them):
 * then pt holds them as one gpu_exl3_matmul_multi's parts. */
static bool qkv_exl3(const struct llm_context *c, const struct llm_layer *ly,
		     struct gpu_exl3_part pt[3])
{
	const struct llm_config *cf = &c->model->cfg;
	const size_t hd = (size_t)cf->head_dim;

	if (!ly->xq || !ly->xk || !ly->xv || ly->wq || ly->wk || ly->wv ||
	    ly->bq || ly->bk || ly->bv)
		return false;
	pt[0] = (struct gpu_exl3_part){ c->q, ly->xq, (size_t)cf->n_head * hd };
	pt[1] = (struct gpu_exl3_part){ c->k, ly->xk, (size_t)cf->n_head_kv * hd };
	pt[2] = (struct gpu_exl3_part){ c->v, ly->xv, (size_t)cf->n_head_kv * hd };
	return true;
}

/* Whether ly's dense FFN has EXL3 gate and up only: then pt holds them as
 * gpu_exl3_swiglu's (out = ff_gate, up = ff_up). */
static bool gate_up_exl3(const struct llm_context *c,
			 const struct llm_layer *ly, struct gpu_exl3_part pt[2])
{
	const size_t F = (size_t)c->model->cfg.n_ff;

	if (ly->moe || !ly->x_gate || !ly->x_up || ly->w_gate || ly->w_up)
		return false;
	pt[0] = (struct gpu_exl3_part){ c->ff_gate, ly->x_gate, F };
	pt[1] = (struct gpu_exl3_part){ c->ff_up, ly->x_up, F };
	return true;
}

/* The next layer's RoPE + KV store that a down_proj op runs after its
 * q/k/v (down_residual): rp is the step's rope parameters, kb its batch;
 * rpn and rk are filled (and must outlive the op). */
struct next_rope {
	const struct gpu_rope *rp;
	struct gpu_kv_batch *kb;
	struct gpu_rope rpn;
	struct gpu_rope_kv rk;
};

/* *r = the gpu_exl3_residual of ly's EXL3 down_proj: x += ff_gate Wd^T,
 * xn = rmsnorm(x) * next_norm, and the next layer's EXL3 q/k/v (nl, or
 * NULL after the last layer) as its parts in pt when it has them, with
 * that layer's RoPE + KV store (its cache pool, nr's parameters) after
 * them.  Returns whether it has (q/k/v, RoPE and the store are then
 * done). */
static bool down_residual(struct llm_context *c, const struct llm_layer *ly,
			  const struct llm_layer *nl,
			  const struct gpu_buf *next_norm,
			  struct gpu_exl3_part pt[3], struct gpu_exl3_residual *r,
			  struct next_rope *nr)
{
	const struct llm_config *cf = &c->model->cfg;
	const bool qkv = nl && qkv_exl3(c, nl, pt);

	*r = (struct gpu_exl3_residual){
		.x = c->x, .xn = c->xn, .o = c->o, .a = c->ff_gate,
		.w = ly->x_down, .k_in = (size_t)cf->n_ff,
		.dim = (size_t)cf->n_embd, .norm_w = next_norm,
		.eps = cf->rms_eps, .next = qkv ? pt : NULL,
		.n_next = qkv ? 3 : 0,
	};
	if (qkv) {
		nr->rpn = *nr->rp;
		nr->rpn.q_norm = nl->q_norm;
		nr->rpn.k_norm = nl->k_norm;
		nr->rk = (struct gpu_rope_kv){
			c->q, c->k, c->v, (size_t)cf->n_head, c->pos,
			c->model->inv_freq, &nr->rpn,
			&c->kv[nl - c->model->layers], nr->kb,
		};
		r->rope_kv = &nr->rk;
	}
	return qkv;
}

/* q [n, H*hd], k, v [n, Hk*hd] = xn Wq^T (+ bq), xn Wk^T (+ bk), xn Wv^T
 * (+ bv): one gpu_matmul_multi for dense weights, else llm_linear each. */
static int qkv_proj(struct llm_context *c, const struct llm_layer *ly,
		    size_t n, int64_t l, struct diag *d)
{
	const struct llm_config *cf = &c->model->cfg;
	const size_t E = (size_t)cf->n_embd, hd = (size_t)cf->head_dim;
	const size_t H = (size_t)cf->n_head, Hk = (size_t)cf->n_head_kv;

	if (ly->wv && same_dense(ly->wq, ly->wk, ly->wv)) {
		const struct gpu_matmul_part pt[3] = {
			{ c->q, ly->wq, ly->bq, H * hd },
			{ c->k, ly->wk, ly->bk, Hk * hd },
			{ c->v, ly->wv, ly->bv, Hk * hd },
		};

		OP(gpu_matmul_multi(c->g, c->xn, n, E, pt, 3, d),
		   "layer %lld q/k/v_proj", (long long)l);
		return 0;
	}
	{
		struct gpu_exl3_part pt[3];

		if (qkv_exl3(c, ly, pt)) {
			OP(gpu_exl3_matmul_multi(c->g, c->xn, n, E, pt, 3, d),
			   "layer %lld q/k/v_proj (EXL3)", (long long)l);
			return 0;
		}
	}
	OP(llm_linear(c->g, c->q, c->xn, ly->wq, ly->xq, ly->bq, n, E, H * hd, d),
	   "layer %lld q_proj", (long long)l);
	OP(llm_linear(c->g, c->k, c->xn, ly->wk, ly->xk, ly->bk, n, E, Hk * hd,
		      d),
	   "layer %lld k_proj", (long long)l);
	OP(llm_linear(c->g, c->v, c->xn, ly->wv, ly->xv, ly->bv, n, E, Hk * hd,
		      d),
	   "layer %lld v_proj", (long long)l);
	return 0;
}

/* ff_gate [n, F] = silu(Wg xn) * (Wu xn), the first half of an FFN whose
 * gate and up are dense (wg, wu) or EXL3 (xg, xu) linears: one
 * gpu_matmul_swiglu (one GEMV launch at decode) for dense weights of one
 * dtype, one gpu_exl3_swiglu (one output launch) for EXL3 ones, else
 * llm_linear each and gpu_swiglu.  WHAT ("" or "shared ") names the FFN
 * in errors. */
static int ffn_gate_up(struct llm_context *c, const struct gpu_buf *wg,
		       const struct gpu_buf *wu, const struct gpu_exl3_weight *xg,
		       const struct gpu_exl3_weight *xu, size_t F, size_t n,
		       int64_t l, const char *what, struct diag *d)
{
	const size_t E = (size_t)c->model->cfg.n_embd;

	if (same_dense(wg, wu, NULL)) {
		OP(gpu_matmul_swiglu(c->g, c->ff_gate, c->ff_up, c->xn, wg, wu, n,
				     E, F, d),
		   "layer %lld %sgate/up_proj + swiglu", (long long)l, what);
	} else if (xg && xu && !wg && !wu) {
		OP(gpu_exl3_swiglu(c->g, c->ff_gate, c->ff_up, c->xn, xg, xu, n, E,
				   F, d),
		   "layer %lld %sgate/up_proj + swiglu (EXL3)", (long long)l, what);
	} else {
		OP(llm_linear(c->g, c->ff_gate, c->xn, wg, xg, NULL, n, E, F, d),
		   "layer %lld %sgate_proj", (long long)l, what);
		OP(llm_linear(c->g, c->ff_up, c->xn, wu, xu, NULL, n, E, F, d),
		   "layer %lld %sup_proj", (long long)l, what);
		OP(gpu_swiglu(c->g, c->ff_gate, c->ff_gate, c->ff_up, n * F, d),
		   "layer %lld %sswiglu", (long long)l, what);
	}
	return 0;
}

static int ffn_moe(struct llm_context *c, const struct llm_layer *ly, size_t n,
		   int64_t l, struct diag *d)
{
	const struct llm_model *m = c->model;
	const struct llm_config *cf = &m->cfg;
	const size_t E = (size_t)cf->n_embd, ne = (size_t)cf->n_expert;
	const size_t k = (size_t)cf->n_expert_used;
	struct gpu_moe_experts ex;

	/* router: r [n, ne] = xn R^T; top-k of softmax(r) */
	OP(gpu_matmul(c->g, c->r_logits, c->xn, ly->router, NULL, n, E, ne, d),
	   "layer %lld router", (long long)l);
	OP(gpu_moe_route(c->g, c->r_logits, c->r_ids, c->r_wts, n, ne, k,
			 m->moe_renorm, d),
	   "layer %lld routing", (long long)l);
	llm_layer_experts(m, ly, &ex);
	OP(gpu_moe_ffn(c->g, c->o, c->xn, c->r_ids, c->r_wts, &ex, n, E, k,
		       c->moe_scratch, d),
	   "layer %lld experts", (long long)l);
	if (ly->s_gate || ly->xs_gate) {
		const size_t Fs = (size_t)cf->n_ff_shared;

		/* o += sigmoid(xn . w_sg) * Wd_s (silu(Wg_s xn) * (Wu_s xn)) */
		if (ly->s_down && same_dense(ly->s_gate, ly->s_up, ly->s_down)) {
			OP(gpu_swiglu_ffn(c->g, c->sh_out, c->ff_gate, c->ff_up,
					  c->xn, ly->s_gate, ly->s_up, ly->s_down,
					  n, E, Fs, d),
			   "layer %lld shared expert FFN", (long long)l);
		} else {
			int rc = ffn_gate_up(c, ly->s_gate, ly->s_up, ly->xs_gate,
					     ly->xs_up, Fs, n, l, "shared ", d);

			if (rc < 0)
				return rc;
			OP(llm_linear(c->g, c->sh_out, c->ff_gate, ly->s_down,
				      ly->xs_down, NULL, n, Fs, E, d),
			   "layer %lld shared down_proj", (long long)l);
		}
		OP(llm_linear(c->g, c->sh_gate, c->xn, ly->s_gate_inp,
			      ly->xs_gate_inp, NULL, n, E, 1, d),
		   "layer %lld shared_expert_gate", (long long)l);
		OP(gpu_add_gated(c->g, c->o, c->sh_out, c->sh_gate, n, E, d),
		   "layer %lld shared expert", (long long)l);
	}
	return 0;
}

/* Upload the batch description: ids, positions ([3][n] for MRoPE),
 * sequence slots and (if changed) the page table. */
static int upload_batch(struct llm_context *c, const struct llm_batch *b,
			struct diag *d)
{
	const size_t n = b->n;
	size_t i, r;
	int32_t *ids = c->h_rows;

	for (i = 0; i < n; i++)
		ids[i] = b->ids[i] < 0 ? -1 : b->ids[i];
	OP(gpu_buf_write(c->ids, 0, ids, n, d), "batch ids");
	OP(gpu_buf_write(c->seq, 0, b->seq, n, d), "batch slots");
	if (c->model->mrope) {
		for (r = 0; r < 3; r++)
			for (i = 0; i < n; i++)
				c->h_pos[r * n + i] =
					b->mpos ? b->mpos[r * n + i] : b->pos[i];
		OP(gpu_buf_write(c->pos, 0, c->h_pos, 3 * n, d), "batch positions");
	} else
		OP(gpu_buf_write(c->pos, 0, b->pos, n, d), "batch positions");
	if (c->pt_dirty) {
		OP(gpu_buf_write(c->page_table_dev, 0, c->page_table,
				 c->n_seq * c->max_pages, d),
		   "page table");
		c->pt_dirty = false;
	}
	return 0;
}

/* x [n, E] = embed[ids] (with layers(): the part a graph records). */
static int embed(struct llm_context *c, size_t n, struct diag *d)
{
	const struct llm_model *m = c->model;

	OP(gpu_get_rows(c->g, c->x, m->tok_embd, (size_t)m->cfg.n_vocab, c->ids,
			0, n, (size_t)m->cfg.n_embd, d),
	   "embedding");
	return 0;
}

/* Every layer over the n rows of the batch: x in; x out (the residual
 * stream) and xn = rmsnorm(x) * out_norm (the final norm, every row).
 * KVPOS holds the cache position of each row; ONE_SEQ: every row is of one
 * sequence (the attention's single_seq promise; false in recorded graphs,
 * whose replays may batch other sequences).
 *
 * Each residual add is fused with the norm after it (gpu_add_rmsnorm): the
 * attention residual with the layer's ffn_norm, the FFN residual with the
 * next layer's attn_norm or, after the last layer, with out_norm; so only
 * layer 0's input norm is a plain gpu_rmsnorm.  An EXL3 o_proj or
 * down_proj takes the add and the norm into one gpu_exl3_residual, with
 * the EXL3 products that follow (gate/up + SwiGLU; the next layer's
 * q/k/v with its RoPE + KV store) when those are EXL3 too; with EXL3
 * gate, up and down the down_proj's op rides along as the o_proj op's
 * `then`, so everything from the attention on is one call (CUDA rotates
 * the attention's result for o_proj in its combine launch and the SwiGLU
 * result for down_proj in the launch that computes it, and rotates and
 * stores the next q/k/v in the launch that writes them). */
/* The converter's capture hook at point PT of the layer being captured
 * (model_impl.h): returns its result (< 0 error, 1 stop, 0 go on). */
static int capture(const struct llm_capture *cap, enum llm_capture_point pt,
		   const struct gpu_buf *x, size_t n, size_t k, struct diag *d)
{
	int rc = cap->fn(cap->user, pt, x, n, k, d);

	if (rc < 0)
		diag_prefix(d, "calibration capture");
	return rc;
}

#define CAPTURE(pt, x, k)                                                   \
	do {                                                                \
		int crc_ = capture(cap, (pt), (x), n, (k), d);              \
		if (crc_ != 0)                                              \
			return crc_ < 0 ? crc_ : 0;                         \
	} while (0)

static int layers(struct llm_context *c, size_t n, struct gpu_buf *kvpos,
		  bool one_seq, struct diag *d)
{
	const struct llm_model *m = c->model;
	const struct llm_config *cf = &m->cfg;
	const size_t E = (size_t)cf->n_embd, H = (size_t)cf->n_head;
	const size_t hd = (size_t)cf->head_dim;
	const float scale = 1.0f / sqrtf((float)hd);
	struct gpu_kv_batch kb;
	struct gpu_rope rp;
	struct next_rope nrp = { .rp = &rp, .kb = &kb };
	const struct llm_capture *cap = m->capture;
	bool qkv_done = false;
	int64_t l;
	int rc = 0;

	kb.n_rows = n;
	kb.row_seq = c->seq;
	kb.row_pos = kvpos;
	kb.page_table = c->page_table_dev;
	kb.n_seq = c->n_seq;
	kb.max_pages = c->max_pages;
	kb.single_seq = one_seq;
	rp.n_rot = hd;
	rp.attn_factor = 1.0f;
	rp.mrope_section = m->mrope ? m->mrope_section : NULL;
	rp.q_norm = rp.k_norm = NULL;
	rp.norm_eps = cf->rms_eps;

	/* xn = rmsnorm(x) * attn_norm of layer 0 (out_norm without layers) */
	OP(gpu_rmsnorm(c->g, c->xn, c->x,
		       cf->n_layer > 0 ? m->layers[0].attn_norm : m->out_norm, n,
		       E, cf->rms_eps, d),
	   "layer 0 input_layernorm");
	for (l = 0; l < cf->n_layer; l++) {
		const struct llm_layer *ly = &m->layers[l];
		const bool last = l + 1 == cf->n_layer;
		const struct llm_layer *nl = last ? NULL : &m->layers[l + 1];
		const struct gpu_buf *next_norm = last ? m->out_norm : nl->attn_norm;
		/* an EXL3 down_proj (whose input is ff_gate) */
		const bool xdown = !ly->moe && ly->x_down && !ly->w_down;
		struct gpu_exl3_part nx[3], nq[3];
		struct gpu_exl3_residual rd;
		bool gu_done = false, down_done = false;
		/* the layer the converter captures runs op by op */
		const bool capl = cap && cap->layer == l;

		/* attention block (xn = its input norm, from the step before;
		 * q/k/v with their RoPE and KV store too when the last op made
		 * them) */
		if (capl)
			CAPTURE(LLM_CAPTURE_ATTN_IN, c->xn, E);
		if (!qkv_done) {
			rc = qkv_proj(c, ly, n, l, d);
			if (rc < 0)
				return rc;
			/* Qwen3: RMSNorm over each head's hd values of q and
			 * k (NULL otherwise), inside the rope launch; q, k =
			 * rope(q, k, pos); cache[seq, kvpos] <- k, v */
			rp.q_norm = ly->q_norm;
			rp.k_norm = ly->k_norm;
			OP(gpu_rope_kv_store(c->g, c->q, c->k, c->v, H, c->pos,
					     m->inv_freq, &rp, &c->kv[l], &kb, d),
			   "layer %lld rope + kv store", (long long)l);
		}
		qkv_done = false;
		/* att = attention(q, cache); o = att Wo; x += o; xn =
		 * rmsnorm(x) * ffn_norm — one op with an EXL3 o_proj (and with
		 * EXL3 gate/up, those and the SwiGLU too) */
		if (ly->xo && !ly->wo && !capl) {
			const struct gpu_attention_args at = {
				c->att, c->q, &c->kv[l], &kb, H, scale,
				(size_t)cf->sliding_window,
			};
			struct gpu_exl3_residual r = {
				.x = c->x, .xn = c->xn, .o = c->o, .a = c->att,
				.w = ly->xo, .k_in = H * hd, .dim = E,
				.norm_w = ly->ffn_norm, .eps = cf->rms_eps,
				.att = &at,
			};

			gu_done = gate_up_exl3(c, ly, nx);
			r.next = gu_done ? nx : NULL;
			r.n_next = gu_done ? 2 : 0;
			r.swiglu = gu_done;
			/* and with EXL3 gate/up and down, the rest of the layer
			 * in the same op (one launch fewer on CUDA) */
			if (gu_done && xdown) {
				qkv_done = down_residual(c, ly, nl, next_norm, nq, &rd,
							 &nrp);
				r.then = &rd;
				down_done = true;
			}
			OP(gpu_exl3_residual(c->g, &r, n, d),
			   "layer %lld attention + o_proj + residual + "
			   "post_attention_layernorm%s%s%s",
			   (long long)l, gu_done ? " + gate/up_proj + swiglu" : "",
			   down_done ? " + down_proj + residual + next norm" : "",
			   down_done && qkv_done ?
				   " + next q/k/v_proj + rope + kv store" : "");
			if (down_done)
				continue;
		} else {
			OP(gpu_attention(c->g, c->att, c->q, &c->kv[l], &kb, H,
					 scale, (size_t)cf->sliding_window, d),
			   "layer %lld attention", (long long)l);
			if (capl)
				CAPTURE(LLM_CAPTURE_ATTN_O, c->att, H * hd);
			OP(llm_linear(c->g, c->o, c->att, ly->wo, ly->xo, NULL, n,
				      H * hd, E, d),
			   "layer %lld o_proj", (long long)l);
			OP(gpu_add_rmsnorm(c->g, c->x, c->xn, c->o, ly->ffn_norm, n,
					   E, cf->rms_eps, d),
			   "layer %lld residual + post_attention_layernorm",
			   (long long)l);
		}

		/* feed-forward block: o = FFN(xn) */
		if (capl)
			CAPTURE(LLM_CAPTURE_MLP_IN, c->xn, E);
		if (ly->moe) {
			rc = ffn_moe(c, ly, n, l, d);
		} else if (!gu_done && ly->w_down && !capl &&
			   same_dense(ly->w_gate, ly->w_up, ly->w_down)) {
			/* dense weights of one dtype: the whole FFN in one op
			 * (prefill keeps its intermediates in half on CUDA) */
			OP(gpu_swiglu_ffn(c->g, c->o, c->ff_gate, c->ff_up, c->xn,
					  ly->w_gate, ly->w_up, ly->w_down, n, E,
					  (size_t)cf->n_ff, d),
			   "layer %lld gate/up_proj + swiglu + down_proj",
			   (long long)l);
			down_done = true;
		} else if (!gu_done) {
			rc = ffn_gate_up(c, ly->w_gate, ly->w_up, ly->x_gate,
					 ly->x_up, (size_t)cf->n_ff, n, l, "", d);
		}
		if (rc < 0)
			return rc;
		if (capl && !ly->moe)
			CAPTURE(LLM_CAPTURE_MLP_DOWN, c->ff_gate, (size_t)cf->n_ff);
		if (xdown) {
			/* down_proj, x += o, the next norm (and the next
			 * layer's EXL3 q/k/v) in one op */
			qkv_done = down_residual(c, ly, nl, next_norm, nq, &rd,
						 &nrp);
			OP(gpu_exl3_residual(c->g, &rd, n, d),
			   "layer %lld down_proj + residual + %s%s", (long long)l,
			   last ? "final norm" : "next input_layernorm",
			   qkv_done ? " + next q/k/v_proj + rope + kv store" : "");
			continue;
		}
		if (!ly->moe && !down_done)
			OP(llm_linear(c->g, c->o, c->ff_gate, ly->w_down, ly->x_down,
				      NULL, n, (size_t)cf->n_ff, E, d),
			   "layer %lld down_proj", (long long)l);
		/* x += o; xn = rmsnorm(x) * (next attn_norm | out_norm) */
		OP(gpu_add_rmsnorm(c->g, c->x, c->xn, c->o, next_norm, n, E,
				   cf->rms_eps, d),
		   "layer %lld residual + %s", (long long)l,
		   last ? "final norm" : "next input_layernorm");
	}
	if (cap && cap->layer == cf->n_layer)
		CAPTURE(LLM_CAPTURE_HEAD, c->xn, E);
	return 0;
}
#undef CAPTURE

/* The unrecorded step: embedding, injected rows, layers. */
static int eager_step(struct llm_context *c, const struct llm_batch *b,
		      size_t n, struct gpu_buf *kvpos, bool one_seq,
		      struct diag *d)
{
	const size_t E = (size_t)c->model->cfg.n_embd;
	size_t i;
	int rc = embed(c, n, d);

	if (rc < 0)
		return rc;
	/* injected rows overwrite theirs */
	if (b->embd)
		for (i = 0; i < n; i++)
			if (b->ids[i] < 0)
				OP(gpu_buf_write(c->x, i * E, b->embd + i * E, E, d),
				   "injected embedding row %zu", i);
	return layers(c, n, kvpos, one_seq, d);
}

/* Embedding + layers of n rows through c->graph[n] (see the file comment):
 * unrecorded the first time, recorded the second, replayed afterwards. */
static int graph_step(struct llm_context *c, size_t n, struct diag *d)
{
	struct gpu_graph **gp = &c->graph[n];
	struct diag d2;
	int rc, rc2;

	if (*gp && !gpu_graph_valid(*gp)) {
		gpu_graph_free(*gp);
		*gp = NULL;
		c->graph_runs[n] = 0;
	}
	if (!*gp) {
		if (c->graph_runs[n] == 0) {
			c->graph_runs[n] = 1;
			rc = embed(c, n, d);
			return rc < 0 ? rc : layers(c, n, c->pos, false, d);
		}
		diag_clear(&d2);
		rc = gpu_graph_begin(c->g, &d2) < 0 ? LLM_E_BACKEND : 0;
		if (rc == 0) {
			rc = embed(c, n, &d2);
			if (rc == 0)
				rc = layers(c, n, c->pos, false, &d2);
			/* ends the recording in every case */
			rc2 = gpu_graph_end(c->g, gp, rc < 0 ? NULL : &d2);
			if (rc == 0 && rc2 < 0)
				rc = LLM_E_BACKEND;
		}
		if (rc < 0) {
			/* nothing ran: do the step unrecorded, try again later
			 * (a recording cut short by an op's validation error
			 * may still have ended as a partial graph: drop it) */
			gpu_graph_free(*gp);
			*gp = NULL;
			c->graph_runs[n] = 0;
			if (++c->graph_fails >= 4)
				c->use_graphs = false;
			rc = embed(c, n, d);
			return rc < 0 ? rc : layers(c, n, c->pos, false, d);
		}
	}
	OP(gpu_graph_launch(*gp, d), "decode graph of %zu rows", n);
	c->graph_launches++;
	return 0;
}

/* Logits for the rows that want them, LLM_LOGIT_ROWS at a time:
 * xl = xn[rows] (layers() left xn = rmsnorm(x) * out_norm); lg = xl
 * lm_head^T */
static int logits_step(struct llm_context *c, const struct llm_batch *b,
		       struct diag *d)
{
	const struct llm_model *m = c->model;
	const struct llm_config *cf = &m->cfg;
	const size_t n = b->n, E = (size_t)cf->n_embd, V = (size_t)cf->n_vocab;
	size_t i, n_logit, l0;

	if (!b->logits)
		return 0;
	n_logit = 0;
	for (i = 0; i < n; i++)
		if (b->logits[i])
			c->h_rows[n_logit++] = (int32_t)i;
	if (n_logit == 0)
		return 0;
	OP(gpu_buf_write(c->lrows, 0, c->h_rows, n_logit, d), "logit rows");
	for (l0 = 0; l0 < n_logit; l0 += LLM_LOGIT_ROWS) {
		size_t mr = n_logit - l0 < LLM_LOGIT_ROWS ? n_logit - l0 :
			    LLM_LOGIT_ROWS;

		OP(gpu_get_rows(c->g, c->xl, c->xn, n, c->lrows, l0, mr, E, d),
		   "gather logit rows");
		OP(llm_linear(c->g, c->lg, c->xl, m->lm_head, m->x_lm_head, NULL,
			      mr, E, V, d),
		   "lm_head");
		OP(gpu_buf_read(c->lg, 0, b->logits_out + l0 * V, mr * V, d),
		   "reading logits");
	}
	return 0;
}

int llm_forward(struct llm_context *c, const struct llm_batch *b,
		struct diag *d)
{
	const struct llm_model *m = c->model;
	const struct llm_config *cf = &m->cfg;
	const size_t n = b->n, V = (size_t)cf->n_vocab;
	struct gpu_buf *kvpos;
	size_t i;
	int rc;

	if (n == 0)
		return 0;
	if (n > c->n_batch)
		return diag_fail(d, LLM_E_INVALID, "batch of %zu rows > %zu", n,
				 c->n_batch);
	for (i = 0; i < n; i++) {
		if (b->seq[i] < 0 || (size_t)b->seq[i] >= c->n_seq ||
		    b->pos[i] < 0 || (size_t)b->pos[i] >= c->n_ctx)
			return diag_fail(d, LLM_E_INVALID,
					 "row %zu: slot %d position %d", i,
					 (int)b->seq[i], (int)b->pos[i]);
		if (b->ids[i] < 0 && !b->embd)
			return diag_fail(d, LLM_E_INVALID,
					 "row %zu: no token and no embedding", i);
		if (b->ids[i] >= (int32_t)V)
			return diag_fail(d, LLM_E_INVALID, "row %zu: id %d", i,
					 (int)b->ids[i]);
	}
	rc = upload_batch(c, b, d);
	if (rc < 0)
		return rc;
	/* The KV cache is indexed by sequence position.  The pos buffer's
	 * first n entries are those positions, except with explicit MRoPE
	 * positions (images), whose temporal row differs: then the sequence
	 * positions go to `lrows`, which is free until the logits step. */
	kvpos = c->pos;
	if (m->mrope && b->mpos) {
		OP(gpu_buf_write(c->lrows, 0, b->pos, n, d), "cache positions");
		kvpos = c->lrows;
	}

	if (c->use_graphs && n <= LLM_GRAPH_MAX_ROWS && !b->embd &&
	    kvpos == c->pos) {
		rc = graph_step(c, n, d);
	} else {
		bool one_seq = true;

		for (i = 1; i < n; i++)
			if (b->seq[i] != b->seq[0])
				one_seq = false;
		rc = eager_step(c, b, n, kvpos, one_seq, d);
	}
	if (rc < 0)
		return rc;
	return logits_step(c, b, d);
}
