/* inference/synthetic.c — random-weight models of real shapes, built in
 * memory on the backend, so speed can be measured (tern bench) without
 * downloading weights.
 *
 * A spec is "synthetic:NAME" or "synthetic:NAME@exl3:BITS".  NAME picks a
 * row of the shape table below (the values of that model's config.json);
 * the model is then made exactly like a loaded one (llm_model_setup) and
 * every weight allocated on the backend in bf16:
 *   linears, embeddings, router, biases: uniform in [-a, a] with
 *     a = sqrt(3 / fan_in) (unit-variance outputs for unit inputs;
 *     embedding and biases a = 0.02) from gpu_buf_fill_random, one seed per
 *     tensor — values are finite, so a forward pass is numerically sane;
 *   norms (input/post-attention/final, q/k norm): 1.0.
 * With @exl3:BITS every dense linear of the decoder is an EXL3 weight of
 * random int16 trellis tiles (mul1 codebook) with K bits: integer K chosen
 * per linear (floor or ceil of BITS, error-diffused over weight elements)
 * so the model's average hits BITS; suh = +-1/sqrt(k) and svh = +-1 (random
 * signs).  The lm_head is EXL3 at 6 bits, as ExLlamaV3 converts by
 * default; the embedding stays bf16.  In MoE layers every routed
 * expert's gate/up/down is such an EXL3 weight (as ExLlamaV3 stores them,
 * exl3-format.md §1.12) and the router stays bf16.
 *
 * Invariant: a synthetic model has the same fields set as one loaded from
 * a directory with the same config (so the forward pass and llm_model_free
 * cannot tell them apart); n_params equals llm_synthetic_n_params(cfg).
 */
#include "config.h"

#include "inference/synthetic_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"
#include "inference/model_impl.h"

/* One row of the shape table: published config.json values. */
struct shape {
	const char *name;
	const char *arch_name;
	enum llm_arch arch;
	int64_t n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim;
	int64_t max_pos;
	double rope_theta;
	double llama3_factor;  /* > 0: llama3 rope scaling (low 1, high 4) */
	int64_t llama3_orig;   /* its original_max_position_embeddings */
	float rms_eps;
	int tied, bias, qk_norm;
	int64_t n_expert, n_expert_used, n_ff_expert;
	int norm_topk;
};

static const struct shape shapes[] = {
	/* Meta-Llama-3.1-8B (same shapes as 3-8B) */
	{ "llama3-8b", "LlamaForCausalLM", LLM_ARCH_LLAMA, 128256, 4096, 14336,
	  32, 32, 8, 128, 131072, 500000.0, 8.0, 8192, 1e-5f, 0, 0, 0, 0, 0, 0, 0 },
	/* Llama-3.2-1B */
	{ "llama3-1b", "LlamaForCausalLM", LLM_ARCH_LLAMA, 128256, 2048, 8192,
	  16, 32, 8, 64, 131072, 500000.0, 32.0, 8192, 1e-5f, 1, 0, 0, 0, 0, 0, 0 },
	/* Llama-3.2-3B */
	{ "llama3-3b", "LlamaForCausalLM", LLM_ARCH_LLAMA, 128256, 3072, 8192,
	  28, 24, 8, 128, 131072, 500000.0, 32.0, 8192, 1e-5f, 1, 0, 0, 0, 0, 0, 0 },
	/* Llama-3.1-70B */
	{ "llama3-70b", "LlamaForCausalLM", LLM_ARCH_LLAMA, 128256, 8192, 28672,
	  80, 64, 8, 128, 131072, 500000.0, 8.0, 8192, 1e-5f, 0, 0, 0, 0, 0, 0, 0 },
	/* Llama-2-7b-hf */
	{ "llama2-7b", "LlamaForCausalLM", LLM_ARCH_LLAMA, 32000, 4096, 11008,
	  32, 32, 32, 128, 4096, 10000.0, 0, 0, 1e-5f, 0, 0, 0, 0, 0, 0, 0 },
	/* Mistral-7B-v0.3 */
	{ "mistral-7b", "MistralForCausalLM", LLM_ARCH_MISTRAL, 32768, 4096, 14336,
	  32, 32, 8, 128, 32768, 1000000.0, 0, 0, 1e-5f, 0, 0, 0, 0, 0, 0, 0 },
	/* Qwen2.5-0.5B */
	{ "qwen2.5-0.5b", "Qwen2ForCausalLM", LLM_ARCH_QWEN2, 151936, 896, 4864,
	  24, 14, 2, 64, 32768, 1000000.0, 0, 0, 1e-6f, 1, 1, 0, 0, 0, 0, 0 },
	/* Qwen2.5-7B */
	{ "qwen2.5-7b", "Qwen2ForCausalLM", LLM_ARCH_QWEN2, 152064, 3584, 18944,
	  28, 28, 4, 128, 131072, 1000000.0, 0, 0, 1e-6f, 0, 1, 0, 0, 0, 0, 0 },
	/* Qwen3-8B */
	{ "qwen3-8b", "Qwen3ForCausalLM", LLM_ARCH_QWEN3, 151936, 4096, 12288,
	  36, 32, 8, 128, 40960, 1000000.0, 0, 0, 1e-6f, 0, 0, 1, 0, 0, 0, 0 },
	/* Mixtral-8x7B-v0.1 */
	{ "mixtral-8x7b", "MixtralForCausalLM", LLM_ARCH_MIXTRAL, 32000, 4096,
	  14336, 32, 32, 8, 128, 32768, 1000000.0, 0, 0, 1e-5f, 0, 0, 0, 8, 2,
	  14336, 0 },
	/* Qwen3-30B-A3B */
	{ "qwen3-30b-a3b", "Qwen3MoeForCausalLM", LLM_ARCH_QWEN3MOE, 151936,
	  2048, 6144, 48, 32, 4, 128, 40960, 1000000.0, 0, 0, 1e-6f, 0, 0, 1,
	  128, 8, 768, 1 },
	/* test-only tiny shapes (tests/inference/test_synthetic.c) */
	{ "tiny-llama", "LlamaForCausalLM", LLM_ARCH_LLAMA, 512, 64, 160, 2, 4,
	  2, 16, 1024, 500000.0, 8.0, 256, 1e-5f, 0, 0, 0, 0, 0, 0, 0 },
	{ "tiny-qwen2", "Qwen2ForCausalLM", LLM_ARCH_QWEN2, 384, 64, 128, 2, 4,
	  1, 16, 1024, 1000000.0, 0, 0, 1e-6f, 1, 1, 0, 0, 0, 0, 0 },
	{ "tiny-qwen3", "Qwen3ForCausalLM", LLM_ARCH_QWEN3, 384, 64, 128, 2, 4,
	  2, 32, 1024, 1000000.0, 0, 0, 1e-6f, 0, 0, 1, 0, 0, 0, 0 },
	{ "tiny-mixtral", "MixtralForCausalLM", LLM_ARCH_MIXTRAL, 320, 64, 96,
	  2, 4, 2, 16, 1024, 1000000.0, 0, 0, 1e-5f, 0, 0, 0, 4, 2, 96, 0 },
};

#define N_SHAPES (sizeof shapes / sizeof shapes[0])

const char *llm_synthetic_names(void)
{
	return "llama3-8b, llama3-1b, llama3-3b, llama3-70b, llama2-7b, "
	       "mistral-7b, qwen2.5-0.5b, qwen2.5-7b, qwen3-8b, mixtral-8x7b, "
	       "qwen3-30b-a3b (and tiny-llama, tiny-qwen2, tiny-qwen3, "
	       "tiny-mixtral for tests); append @exl3:BITS for EXL3 weights";
}

int llm_synthetic_config(const char *spec, struct llm_config *out,
			 struct diag *d)
{
	const struct shape *s = NULL;
	struct llm_config c;
	const char *at;
	size_t nl, i;
	double bits = 0;

	if (!strncmp(spec, "synthetic:", 10))
		spec += 10;
	at = strchr(spec, '@');
	nl = at ? (size_t)(at - spec) : strlen(spec);
	for (i = 0; i < N_SHAPES; i++)
		if (strlen(shapes[i].name) == nl &&
		    !strncmp(shapes[i].name, spec, nl))
			s = &shapes[i];
	if (!s)
		return diag_fail(d, LLM_E_INVALID,
				 "unknown synthetic model '%.*s'; known: %s",
				 (int)nl, spec, llm_synthetic_names());
	if (at) {
		char *end;

		if (strncmp(at, "@exl3:", 6) != 0)
			return diag_fail(d, LLM_E_INVALID,
					 "synthetic:%s: unknown quantization '%s' "
					 "(only @exl3:BITS)", s->name, at + 1);
		bits = strtod(at + 6, &end);
		if (end == at + 6 || *end || !(bits >= 1.0 && bits <= 8.0))
			return diag_fail(d, LLM_E_INVALID,
					 "synthetic:%s: EXL3 bits '%s' (a number "
					 "from 1 to 8, e.g. @exl3:4.0)", s->name, at + 6);
	}
	memset(&c, 0, sizeof c);
	c.arch = s->arch;
	snprintf(c.arch_name, sizeof c.arch_name, "%s", s->arch_name);
	c.n_vocab = s->n_vocab;
	c.n_embd = s->n_embd;
	c.n_ff = s->n_ff;
	c.n_layer = s->n_layer;
	c.n_head = s->n_head;
	c.n_head_kv = s->n_head_kv;
	c.head_dim = s->head_dim;
	c.max_pos = s->max_pos;
	c.rms_eps = s->rms_eps;
	c.rope_theta = s->rope_theta;
	c.rope.type = LLM_ROPE_DEFAULT;
	c.rope.factor = 1.0;
	if (s->llama3_factor > 0) {
		c.rope.type = LLM_ROPE_LLAMA3;
		c.rope.factor = s->llama3_factor;
		c.rope.low_freq_factor = 1.0;
		c.rope.high_freq_factor = 4.0;
		c.rope.original_max_pos = s->llama3_orig;
	}
	c.tie_embeddings = s->tied != 0;
	c.attn_bias = s->bias != 0;
	c.qk_norm = s->qk_norm != 0;
	c.n_expert = s->n_expert;
	c.n_expert_used = s->n_expert_used;
	c.n_ff_expert = s->n_ff_expert;
	c.norm_topk_prob = s->norm_topk != 0;
	c.decoder_sparse_step = 1;
	c.bos_id = -1;
	c.torch_dtype = LLM_DTYPE_BF16;
	if (bits > 0) {
		c.exl3 = true;
		c.exl3_bits = bits;
		c.exl3_head_bits = 6;
	}
	c.image_token_id = c.video_token_id = -1;
	c.vision_start_id = c.vision_end_id = -1;
	*out = c;
	return 0;
}

uint64_t llm_synthetic_n_params(const struct llm_config *c)
{
	const uint64_t E = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab;
	const uint64_t q = (uint64_t)(c->n_head * c->head_dim);
	const uint64_t kv = (uint64_t)(c->n_head_kv * c->head_dim);
	uint64_t n = V * E + E, per;
	int64_t l;

	if (!c->tie_embeddings || c->exl3) /* EXL3 always writes its head */
		n += V * E;
	for (l = 0; l < c->n_layer; l++) {
		per = 2 * E + 2 * q * E + 2 * kv * E; /* norms, q, o, k, v */
		if (c->attn_bias && !c->exl3) /* EXL3 biases: not counted */
			per += q + 2 * kv;
		if (c->qk_norm)
			per += 2 * (uint64_t)c->head_dim;
		if (llm_config_layer_is_moe(c, l))
			per += (uint64_t)c->n_expert * E +
			       (uint64_t)c->n_expert * 3 * E * (uint64_t)c->n_ff_expert;
		else
			per += 3 * E * (uint64_t)c->n_ff;
		n += per;
	}
	return n;
}

/* ---- building ------------------------------------------------------------ */

struct builder {
	struct llm_model *m;
	uint64_t n_tensor;   /* seeds: one per tensor */
	double bits_target;  /* EXL3 average, 0 = bf16 */
	double bits_have, elems_have; /* error diffusion of K over elements */
	uint16_t *tmp;       /* host staging for EXL3 / norms */
	size_t tmp_cap;      /* uint16 elements */
};

static int gerr(int rc)
{
	return rc == GPU_E_NOMEM ? LLM_E_NOMEM : LLM_E_BACKEND;
}

static int grow(struct builder *B, size_t n, struct diag *d)
{
	uint16_t *p;

	if (n <= B->tmp_cap)
		return 0;
	p = realloc(B->tmp, n * sizeof *p);
	if (!p)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	B->tmp = p;
	B->tmp_cap = n;
	return 0;
}

/* bf16 [rows, cols] uniform in [-scale, scale]. */
static int rnd(struct builder *B, struct gpu_buf **out, int64_t rows,
	       int64_t cols, float scale, struct diag *d)
{
	size_t n = (size_t)rows * (size_t)cols;
	int rc;

	rc = gpu_buf_new(B->m->g, GPU_DTYPE_BF16, n, out, d);
	if (rc == 0)
		rc = gpu_buf_fill_random(B->m->g, *out, llm_mix64(++B->n_tensor), scale, d);
	if (rc < 0)
		return gerr(rc);
	B->m->n_params += n;
	B->m->n_bytes += gpu_buf_bytes(*out);
	return 0;
}

/* A dense linear [out, in] with unit-variance outputs. */
static int lin(struct builder *B, struct gpu_buf **out, int64_t rows,
	       int64_t cols, struct diag *d)
{
	return rnd(B, out, rows, cols, (float)sqrt(3.0 / (double)cols), d);
}

/* bf16 [n] of ones (RMSNorm weights). */
static int ones(struct builder *B, struct gpu_buf **out, int64_t n,
		struct diag *d)
{
	int64_t i;
	int rc;

	rc = grow(B, (size_t)n, d);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++)
		B->tmp[i] = 0x3F80; /* bf16 1.0 */
	rc = gpu_buf_new(B->m->g, GPU_DTYPE_BF16, (size_t)n, out, d);
	if (rc == 0)
		rc = gpu_buf_write(*out, 0, B->tmp, (size_t)n, d);
	if (rc < 0)
		return gerr(rc);
	B->m->n_params += (uint64_t)n;
	B->m->n_bytes += gpu_buf_bytes(*out);
	return 0;
}

/* An EXL3 linear with IN inputs, OUT outputs: random trellis at K bits
 * (HEAD_BITS > 0: exactly that; else the error-diffused mix), mul1
 * codebook, random-sign scales. */
static int exl3(struct builder *B, struct gpu_exl3_weight **out, int64_t in,
		int64_t outf, int head_bits, bool bias, struct diag *d)
{
	const size_t kp = (size_t)(in + 127) / 128 * 128;
	const size_t np = (size_t)(outf + 127) / 128 * 128;
	const double el = (double)in * (double)outf;
	struct gpu_exl3_desc desc;
	size_t n_tr, i;
	uint64_t z;
	uint16_t sk;
	int K, rc;

	if (head_bits > 0) {
		K = head_bits;
	} else {
		/* floor(bits) unless the model so far is short of its
		 * average by more than half this layer's worth */
		double want = B->bits_target * (B->elems_have + el);

		K = (int)floor(B->bits_target);
		if (K < 8 && B->bits_have + K * el < want - 0.5 * el)
			K++;
		B->bits_have += K * el;
		B->elems_have += el;
	}
	n_tr = kp / 16 * (np / 16) * 16 * (size_t)K;
	rc = grow(B, n_tr + kp + 2 * np, d);
	if (rc < 0)
		return rc;
	z = llm_mix64(++B->n_tensor);
	for (i = 0; i < n_tr; i += 4) {
		uint64_t r = z = llm_mix64(z);
		size_t j;

		for (j = 0; j < 4 && i + j < n_tr; j++)
			B->tmp[i + j] = (uint16_t)(r >> (16 * j));
	}
	/* f16 1/sqrt(kp) rounded (truncation is fine: only the scale) */
	{
		float f = 1.0f / sqrtf((float)kp);
		uint32_t u;

		memcpy(&u, &f, sizeof u);
		/* f in [2^-14, 1): normal half */
		sk = (uint16_t)((((u >> 23) & 0xff) - 112) << 10 | ((u >> 13) & 0x3ff));
	}
	for (i = 0; i < kp; i++) {
		z = llm_mix64(z);
		B->tmp[n_tr + i] = (uint16_t)(sk | (z & 1 ? 0x8000 : 0));
	}
	for (i = 0; i < np; i++) {
		z = llm_mix64(z);
		B->tmp[n_tr + kp + i] = (uint16_t)(0x3C00 | (z & 1 ? 0x8000 : 0));
	}
	for (i = 0; bias && i < np; i++) {
		z = llm_mix64(z);
		/* +-0.01 in f16 */
		B->tmp[n_tr + kp + np + i] = (uint16_t)(0x211F | (z & 1 ? 0x8000 : 0));
	}
	memset(&desc, 0, sizeof desc);
	desc.k = kp;
	desc.n = np;
	desc.bits = K;
	desc.cb = GPU_EXL3_CB_MUL1;
	desc.trellis = B->tmp;
	desc.suh = B->tmp + n_tr;
	desc.svh = B->tmp + n_tr + kp;
	desc.bias = bias ? B->tmp + n_tr + kp + np : NULL;
	rc = gpu_exl3_weight_new(B->m->g, &desc, out, d);
	if (rc < 0) {
		diag_prefix(d, "EXL3 weight");
		return gerr(rc);
	}
	B->m->n_params += (uint64_t)in * (uint64_t)outf;
	/* what the file would hold: trellis, suh, svh, bias, mul1 flag */
	B->m->n_bytes += 2 * (n_tr + kp + np + (bias ? np : 0)) + 4;
	return 0;
}

/* A decoder linear: dense bf16 (+ bf16 bias [out] into *b when b is
 * non-NULL) or EXL3 (bias inside the weight, as the format stores it). */
static int linear(struct builder *B, struct gpu_buf **w,
		  struct gpu_exl3_weight **q, struct gpu_buf **b, int64_t out,
		  int64_t in, struct diag *d)
{
	int rc;

	if (B->bits_target > 0)
		return exl3(B, q, in, out, 0, b != NULL, d);
	rc = lin(B, w, out, in, d);
	if (rc == 0 && b)
		rc = rnd(B, b, out, 1, 0.02f, d);
	return rc;
}

static int build_layer(struct builder *B, int64_t l, struct diag *d)
{
	const struct llm_config *c = &B->m->cfg;
	struct llm_layer *ly = &B->m->layers[l];
	const int64_t E = c->n_embd, Q = c->n_head * c->head_dim;
	const int64_t KV = c->n_head_kv * c->head_dim;
	int64_t e;
	int rc;

#define T(x)                                                                \
	do {                                                                \
		rc = (x);                                                   \
		if (rc < 0)                                                 \
			return rc;                                          \
	} while (0)
	T(ones(B, &ly->attn_norm, E, d));
	T(ones(B, &ly->ffn_norm, E, d));
	T(linear(B, &ly->wq, &ly->xq, c->attn_bias ? &ly->bq : NULL, Q, E, d));
	T(linear(B, &ly->wk, &ly->xk, c->attn_bias ? &ly->bk : NULL, KV, E, d));
	T(linear(B, &ly->wv, &ly->xv, c->attn_bias ? &ly->bv : NULL, KV, E, d));
	T(linear(B, &ly->wo, &ly->xo, NULL, E, Q, d));
	if (c->qk_norm) {
		T(ones(B, &ly->q_norm, c->head_dim, d));
		T(ones(B, &ly->k_norm, c->head_dim, d));
	}
	ly->moe = llm_config_layer_is_moe(c, l);
	if (!ly->moe) {
		T(linear(B, &ly->w_gate, &ly->x_gate, NULL, c->n_ff, E, d));
		T(linear(B, &ly->w_up, &ly->x_up, NULL, c->n_ff, E, d));
		T(linear(B, &ly->w_down, &ly->x_down, NULL, E, c->n_ff, d));
		return 0;
	}
	/* the router stays bf16 (ExLlamaV3 does not quantize it) */
	T(lin(B, &ly->router, c->n_expert, E, d));
	if (B->bits_target > 0) {
		ly->xe_gate = calloc((size_t)c->n_expert, sizeof *ly->xe_gate);
		ly->xe_up = calloc((size_t)c->n_expert, sizeof *ly->xe_up);
		ly->xe_down = calloc((size_t)c->n_expert, sizeof *ly->xe_down);
		if (!ly->xe_gate || !ly->xe_up || !ly->xe_down)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		for (e = 0; e < c->n_expert; e++) {
			T(exl3(B, &ly->xe_gate[e], E, c->n_ff_expert, 0, false, d));
			T(exl3(B, &ly->xe_up[e], E, c->n_ff_expert, 0, false, d));
			T(exl3(B, &ly->xe_down[e], c->n_ff_expert, E, 0, false, d));
		}
		return 0;
	}
	ly->e_gate = calloc((size_t)c->n_expert, sizeof *ly->e_gate);
	ly->e_up = calloc((size_t)c->n_expert, sizeof *ly->e_up);
	ly->e_down = calloc((size_t)c->n_expert, sizeof *ly->e_down);
	if (!ly->e_gate || !ly->e_up || !ly->e_down)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	for (e = 0; e < c->n_expert; e++) {
		T(lin(B, &ly->e_gate[e], c->n_ff_expert, E, d));
		T(lin(B, &ly->e_up[e], c->n_ff_expert, E, d));
		T(lin(B, &ly->e_down[e], E, c->n_ff_expert, d));
	}
	return 0;
#undef T
}

/* Host memory the kernel could give us now (MemAvailable), or 0 when
 * unknown. */
static uint64_t host_available(void)
{
	char line[128];
	unsigned long long kb;
	uint64_t r = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
			r = (uint64_t)kb * 1024;
			break;
		}
	fclose(f);
	return r;
}

/* Backend bytes the weights of CFG take (EXL3: BITS per decoder weight,
 * lm_head 6 bits, embedding bf16). */
static double weight_bytes(const struct llm_config *c)
{
	double n = (double)llm_synthetic_n_params(c), ve;

	if (!c->exl3)
		return 2.0 * n;
	ve = (double)c->n_vocab * (double)c->n_embd;
	return 2.0 * ve + ve * 6.0 / 8.0 + (n - 2.0 * ve) * c->exl3_bits / 8.0;
}

int llm_model_new_synthetic(const char *spec, const struct llm_model_params *p,
			    struct llm_model **out, struct diag *d)
{
	struct builder B;
	struct llm_model *m;
	const struct llm_config *c;
	int64_t l;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	memset(&B, 0, sizeof B);
	B.m = m;
	rc = llm_synthetic_config(spec, &m->cfg, d);
	if (rc == 0)
		rc = llm_model_setup(m, p, spec, d);
	if (rc < 0)
		goto fail;
	c = &m->cfg;
	B.bits_target = c->exl3 ? c->exl3_bits : 0;
	/* On the CPU the buffers are host memory that is only committed
	 * when filled: a model larger than the machine would be killed by
	 * the OOM killer half way instead of failing cleanly. */
	if (gpu_get_kind(m->g) == GPU_KIND_CPU) {
		uint64_t avail = host_available();
		double need = weight_bytes(c);

		if (avail > 0 && need > 0.9 * (double)avail) {
			rc = diag_fail(d, LLM_E_NOMEM,
				       "weights need %.1f GiB, only %.1f GiB of host "
				       "memory is available",
				       need / 1073741824.0,
				       (double)avail / 1073741824.0);
			goto fail;
		}
	}
	rc = rnd(&B, &m->tok_embd, c->n_vocab, c->n_embd, 0.02f, d);
	if (rc == 0)
		rc = ones(&B, &m->out_norm, c->n_embd, d);
	if (rc == 0 && c->exl3)
		rc = exl3(&B, &m->x_lm_head, c->n_embd, c->n_vocab,
			  (int)c->exl3_head_bits, false, d);
	else if (rc == 0 && c->tie_embeddings)
		m->lm_head = m->tok_embd;
	else if (rc == 0)
		rc = lin(&B, &m->lm_head, c->n_vocab, c->n_embd, d);
	if (rc < 0)
		goto fail;
	m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
	if (!m->layers) {
		rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		goto fail;
	}
	for (l = 0; l < c->n_layer; l++) {
		rc = build_layer(&B, l, d);
		if (rc < 0) {
			diag_prefix(d, "layer %" PRId64, l);
			goto fail;
		}
	}
	free(B.tmp);
	*out = m;
	return 0;
fail:
	diag_prefix(d, "synthetic model '%s'", spec);
	free(B.tmp);
	llm_model_free(m);
	return rc;
}
