/* inference/model_impl.h — internals of the model (inference/model.c) and
 * the forward pass (inference/forward.c).  Engine-internal.
 *
 * A model is its config, a backend handle and every weight uploaded to that
 * backend (dtypes kept: f32 stays f32, bf16/f16 stay half and are converted
 * inside matmul).  A context owns a paged KV cache (one K and one V pool per
 * layer, pages of LLM_KV_PAGE tokens), the activation buffers for up to
 * n_batch rows, and the page table of its sequence slots.
 *
 * The forward pass takes a batch description (struct llm_batch): tokens,
 * the sequence slot and position of each, optional injected embeddings and
 * MRoPE positions, and which rows want logits.  The public llm_context_eval
 * drives it for one sequence; the scheduler (continuous batching) will
 * build batches over several slots with the same function.
 *
 * Invariants: every gpu_buf in a model/context belongs to model->g; a
 * context's page table covers positions [0, n_past) of each slot with
 * distinct pool pages; activations are sized at llm_context_new (decoding
 * allocates nothing).
 */
#ifndef TERN_INFERENCE_MODEL_IMPL_H
#define TERN_INFERENCE_MODEL_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "gpu/gpu.h"
#include "inference/config_impl.h"
#include "inference/llm.h"

/* Tokens per KV page (the paged pool's granularity; ARCHITECTURE §2.2). */
#define LLM_KV_PAGE 256
/* Rows one forward call processes by default (longer inputs are split
 * into chunks by the caller): llm_model_params.max_batch 0 means this on
 * the CPU backend and LLM_MAX_BATCH_GPU on CUDA; the model's choice is
 * llm_model.max_batch, at most LLM_MAX_BATCH_LIMIT (llm.h). */
#define LLM_MAX_BATCH 512
#define LLM_MAX_BATCH_GPU 2048
/* lm_head rows computed per step (bounds the logits buffer). */
#define LLM_LOGIT_ROWS 32
/* Largest batch a recorded decode step (CUDA graph) covers: one graph per
 * row count 1..LLM_GRAPH_MAX_ROWS (inference/forward.c). */
#define LLM_GRAPH_MAX_ROWS 16

struct llm_layer {
	bool moe;
	struct gpu_buf *attn_norm;           /* [E] */
	struct gpu_buf *wq, *wk, *wv, *wo;   /* [H*hd, E], [Hkv*hd, E] x2, [E, H*hd] */
	struct gpu_buf *bq, *bk, *bv;        /* qkv bias or NULL */
	struct gpu_buf *q_norm, *k_norm;     /* [hd] (qwen3) or NULL */
	struct gpu_buf *ffn_norm;            /* [E] */
	struct gpu_buf *w_gate, *w_up;       /* dense: [F, E] */
	struct gpu_buf *w_down;              /* dense: [E, F] */
	struct gpu_buf *router;              /* moe: [n_expert, E], never EXL3 */
	/* moe experts, n_expert each: float (e_*: [F_e, E], [F_e, E],
	 * [E, F_e]) or EXL3 (xe_*: E -> F_e, E -> F_e, F_e -> E); a MoE
	 * layer has exactly one of the two sets of arrays (the other NULL),
	 * every entry of it set */
	struct gpu_buf **e_gate, **e_up, **e_down;
	struct gpu_exl3_weight **xe_gate, **xe_up, **xe_down;
	struct gpu_buf *s_gate, *s_up, *s_down;    /* shared expert [Fs, E].. */
	struct gpu_buf *s_gate_inp;          /* shared expert gate [1, E] */
	/* EXL3 forms of the dense / shared-expert linears above
	 * (inference/exl3.c): when one is set, its gpu_buf twin (and q/k/v
	 * bias) is NULL */
	struct gpu_exl3_weight *xq, *xk, *xv, *xo, *x_gate, *x_up, *x_down;
	struct gpu_exl3_weight *xs_gate, *xs_up, *xs_down, *xs_gate_inp;
};

/* splitmix64 (Steele, Lea, Flood 2014): llm_mix64 is its output function
 * of Z plus the golden-ratio step, a 64-bit hash for seeded streams
 * (synthetic weights); llm_splitmix64 steps the generator whose state is
 * *S (the converter's random calibration rows). */
#define LLM_SPLITMIX_STEP 0x9E3779B97F4A7C15ull

static inline uint64_t llm_mix64(uint64_t z)
{
	z += LLM_SPLITMIX_STEP;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t llm_splitmix64(uint64_t *s)
{
	const uint64_t r = llm_mix64(*s);

	*s += LLM_SPLITMIX_STEP;
	return r;
}

/* Where the converter (inference/convert.c) reads a layer's linear
 * inputs during a calibration forward pass: the rows entering q/k/v (the
 * normed residual), o_proj (the attention output), gate/up (the normed
 * residual) and down_proj (the SwiGLU result), and the rows entering
 * lm_head (every row's final norm, after the last layer). */
enum llm_capture_point {
	LLM_CAPTURE_ATTN_IN,
	LLM_CAPTURE_ATTN_O,
	LLM_CAPTURE_MLP_IN,
	LLM_CAPTURE_MLP_DOWN,
	LLM_CAPTURE_HEAD,
};

/* A capture hook: during a forward pass, layer LAYER (n_layer: the head)
 * runs its dense path op by op and FN sees each input X (f32 [n, k] on the
 * model's backend) before it is used.  FN returns < 0 to fail the forward
 * (LLM_E_*, message in d), 1 to end the pass right there (nothing after
 * that point runs: the caller wants no logits), 0 to go on. */
struct llm_capture {
	int64_t layer;
	int (*fn)(void *user, enum llm_capture_point pt, const struct gpu_buf *x,
		  size_t n, size_t k, struct diag *d);
	void *user;
};

struct llm_model {
	struct llm_config cfg;
	struct gpu *g;
	struct gpu_buf *tok_embd;  /* [V, E] */
	struct gpu_buf *out_norm;  /* [E] */
	struct gpu_buf *lm_head;   /* [V, E]; == tok_embd when tied */
	struct gpu_exl3_weight *x_lm_head; /* EXL3 head (then lm_head NULL) */
	struct gpu_buf *inv_freq;  /* f32 [hd/2], rope scaling applied */
	struct llm_layer *layers;  /* [n_layer] */
	bool moe_renorm;           /* top-k weights renormalised */
	int mrope_section[3];
	bool mrope;
	enum gpu_dtype kv_dtype;   /* KV pool elements (f32 or f16) */
	unsigned kv_k_bits, kv_v_bits; /* quantized KV pools (2..8), or 0 */
	size_t max_batch;          /* rows per forward call (params.max_batch) */
	uint64_t n_params;         /* elements of all weights (tied counted once) */
	uint64_t n_bytes;          /* bytes of all weight buffers */
	char arch[64];
	/* converter only (NULL otherwise): contexts made while it is set do
	 * not record graphs */
	const struct llm_capture *capture;
};

/* One forward call.  Rows are tokens; all arrays have n entries unless
 * said otherwise.  Positions of a slot in one batch must be increasing and
 * follow what the cache already holds for that slot (the caller keeps the
 * page table covering them). */
struct llm_batch {
	size_t n;
	const int32_t *ids;        /* token ids; a negative id takes embd's row */
	const int32_t *seq;        /* sequence slot of each row */
	const int32_t *pos;        /* position of each row in its sequence */
	const int32_t *mpos;       /* MRoPE positions [3][n] (t, h, w), or NULL:
				    * all three = pos */
	const float *embd;         /* [n, E] injected embeddings, or NULL */
	const uint8_t *logits;     /* nonzero: this row wants logits; NULL: none */
	float *logits_out;         /* [rows wanting logits, V], in row order */
};

struct llm_context {
	struct llm_model *model;
	struct gpu *g;
	size_t n_ctx;              /* positions per sequence slot */
	size_t n_batch;            /* rows per forward call */
	size_t n_seq;              /* sequence slots */
	/* KV cache */
	size_t n_pages, max_pages; /* pool pages; page-table row length */
	struct gpu_kv_pool *kv;    /* [n_layer] */
	int32_t *page_table;       /* host copy [n_seq, max_pages], -1 = none */
	int32_t *free_pages;       /* stack of free page indices */
	size_t n_free;
	size_t *n_past;            /* [n_seq] */
	bool pt_dirty;             /* device page table out of date */
	/* activations [n_batch, ...] */
	struct gpu_buf *x, *xn, *q, *k, *v, *att, *o, *ff_gate, *ff_up;
	struct gpu_buf *ids, *pos, *seq, *page_table_dev;
	struct gpu_buf *r_logits, *r_ids, *r_wts, *moe_scratch, *sh_out, *sh_gate;
	struct gpu_buf *lrows, *xl, *lg; /* logits rows, their states, logits */
	/* host staging for one batch; ev_* are llm_context_eval's chunk */
	int32_t *h_pos, *h_rows, *ev_seq, *ev_pos;
	uint8_t *ev_want;
	/* recorded decode steps (forward.c): graph[n] covers batches of n
	 * rows; use_graphs is set at creation (CUDA, no MoE layer,
	 * TERN_CUDA_GRAPHS not "0") and may be cleared by tests */
	bool use_graphs;
	struct gpu_graph *graph[LLM_GRAPH_MAX_ROWS + 1];
	uint8_t graph_runs[LLM_GRAPH_MAX_ROWS + 1]; /* unrecorded runs seen */
	int graph_fails;             /* failed recordings (4: give up) */
	uint64_t graph_launches;     /* replays so far (statistics, tests) */
};

/* A context with N_SEQ sequence slots of up to N_CTX positions each,
 * sharing a pool of N_PAGES KV pages (0: n_seq * pages(n_ctx)).  The
 * scheduler uses this for continuous batching; llm_context_new is
 * (n_ctx, 1, 0).  Errors as llm_context_new. */
int llm_context_new_slots(struct llm_model *m, size_t n_ctx, size_t n_seq,
			  size_t n_pages, struct llm_context **out,
			  struct diag *d);

/* Run one batch (b->n <= ctx->n_batch) through the model.  The page table
 * must already map every position in the batch.  Errors: LLM_E_INVALID
 * (bad row), LLM_E_BACKEND (backend op failed; message names the layer). */
int llm_forward(struct llm_context *ctx, const struct llm_batch *b,
		struct diag *d);

/* Make slot SEQ's page table cover positions [0, n): take pages from the
 * free stack.  LLM_E_NOSPACE when the pool or n_ctx is exhausted. */
int llm_kv_reserve(struct llm_context *ctx, size_t seq, size_t n,
		   struct diag *d);
/* Give back slot SEQ's pages beyond those covering [0, n). */
void llm_kv_release(struct llm_context *ctx, size_t seq, size_t n);

/* Second half of making a model, shared by llm_model_open and the
 * synthetic models (inference/synthetic.c): with M zeroed except m->cfg
 * (a valid config), check what the forward pass needs of it (head_dim,
 * mrope sections), set the derived fields (arch, moe_renorm, mrope), open
 * the backend PARAMS names (NULL: defaults) into m->g and upload
 * m->inv_freq.  NAME prefixes messages.  On failure M keeps what was made
 * (llm_model_free releases it).  Errors: LLM_E_UNSUPPORTED, LLM_E_FORMAT,
 * LLM_E_NOMEM, LLM_E_BACKEND. */
int llm_model_setup(struct llm_model *m, const struct llm_model_params *params,
		    const char *name, struct diag *d);

/* *EX = layer LY's routed experts (M's counts; the float or the EXL3
 * triple, the other NULL), borrowing LY's arrays. */
void llm_layer_experts(const struct llm_model *m, const struct llm_layer *ly,
		       struct gpu_moe_experts *ex);

/* Model FLOPs of a prefill of n tokens of one sequence from position 0,
 * as struct llm_bench_result's prefill_flops defines them (bench.c). */
double llm_prefill_flops(const struct llm_config *c, size_t n);
/* Bytes the KV cache of M's contexts spends on one position's element of
 * one head dimension, K and V together (2 x the element size; quantized:
 * (k_bits + v_bits) / 8 plus the two f16 scales' share, 4 / 32). */
double llm_kv_value_bytes(const struct llm_model *m);

/* Fill inv_freq[0 .. hd/2) for CFG's rope settings (default, linear,
 * llama3, mrope).  LLM_E_UNSUPPORTED for yarn/dynamic. */
int llm_rope_inv_freq(const struct llm_config *cfg, float *inv_freq,
		      struct diag *d);

#endif
