/* inference/config.c — Hugging Face config.json (+ generation_config.json)
 * to struct llm_config; see inference/config_impl.h.
 *
 * Owns nothing beyond the call: the JSON tree lives only inside
 * llm_config_parse, and the result is plain data.
 *
 * Two layouts are accepted and must give identical structs:
 *   classic  rope_theta, rope_scaling {rope_type|type, factor, ...} and
 *            torch_dtype at top level; VL text fields flat at top level;
 *   v5       rope_parameters {rope_theta, rope_type, ...}, `dtype`, and for
 *            VL models the text fields inside `text_config`.
 * Text fields are therefore looked up in `text_config` first, then at top
 * level.  A key present with value null counts as absent (HF writes
 * "sliding_window": null, "head_dim": null).
 *
 * Validation philosophy: a key the forward pass needs is required and its
 * absence is LLM_E_FORMAT naming it; a feature we would silently compute
 * wrong (unknown rope type, biases we do not load, another quantization
 * method) is LLM_E_UNSUPPORTED, never ignored.
 */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/file.h"
#include "inference/config_impl.h"
#include "inference/llm.h"

#define CFG_MAX_FILE_BYTES (16u * 1024u * 1024u)

struct cfg_arch_desc {
	const char *hf_name;
	const char *short_name;
	enum llm_arch arch;
};

static const struct cfg_arch_desc cfg_archs[] = {
	{ "LlamaForCausalLM", "llama", LLM_ARCH_LLAMA },
	{ "MistralForCausalLM", "mistral", LLM_ARCH_MISTRAL },
	{ "Qwen2ForCausalLM", "qwen2", LLM_ARCH_QWEN2 },
	{ "Qwen3ForCausalLM", "qwen3", LLM_ARCH_QWEN3 },
	{ "MixtralForCausalLM", "mixtral", LLM_ARCH_MIXTRAL },
	{ "Qwen2MoeForCausalLM", "qwen2moe", LLM_ARCH_QWEN2MOE },
	{ "Qwen3MoeForCausalLM", "qwen3moe", LLM_ARCH_QWEN3MOE },
	{ "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl",
	  LLM_ARCH_QWEN2_5_VL },
};

#define CFG_N_ARCHS (sizeof cfg_archs / sizeof cfg_archs[0])

const char *llm_arch_supported_list(void)
{
	/* kept in sync with cfg_archs by the config test */
	return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
	       "Qwen3ForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM, "
	       "Qwen3MoeForCausalLM, Qwen2_5_VLForConditionalGeneration";
}

const char *llm_arch_name(enum llm_arch a)
{
	for (size_t i = 0; i < CFG_N_ARCHS; i++)
		if (cfg_archs[i].arch == a)
			return cfg_archs[i].short_name;
	return "?";
}

bool llm_config_layer_is_moe(const struct llm_config *cfg, int64_t l)
{
	switch (cfg->arch) {
	case LLM_ARCH_MIXTRAL:
		return true;
	case LLM_ARCH_QWEN2MOE:
	case LLM_ARCH_QWEN3MOE:
		/* transformers: not in mlp_only_layers and num_experts > 0
		 * and (layer_idx + 1) % decoder_sparse_step == 0 */
		for (int i = 0; i < cfg->n_mlp_only; i++)
			if (cfg->mlp_only_layers[i] == l)
				return false;
		return cfg->n_expert > 0 && cfg->decoder_sparse_step > 0 &&
		       (l + 1) % cfg->decoder_sparse_step == 0;
	default:
		return false;
	}
}

/* ---- lookup helpers ------------------------------------------------------ */

/* Where text fields live: TC (text_config, may be NULL) before ROOT. */
struct cfg_ctx {
	json_t *root;
	json_t *tc;
	const char *name; /* for messages */
	struct diag *d;
};

static json_t *cfg_get_in(json_t *obj, const char *key)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;

	return json_is_null(v) ? NULL : v;
}

static json_t *cfg_get(const struct cfg_ctx *c, const char *key)
{
	json_t *v = cfg_get_in(c->tc, key);

	return v ? v : cfg_get_in(c->root, key);
}

static int cfg_missing(const struct cfg_ctx *c, const char *key)
{
	return diag_fail(c->d, LLM_E_FORMAT, "%s: missing key '%s'", c->name,
			 key);
}

static int cfg_bad_type(const struct cfg_ctx *c, const char *key,
			const char *want)
{
	return diag_fail(c->d, LLM_E_FORMAT, "%s: key '%s' is not %s", c->name,
			 key, want);
}

/* Integer KEY from V (already looked up); required -> error when NULL. */
static int cfg_int_v(const struct cfg_ctx *c, json_t *v, const char *key,
		     bool required, int64_t def, int64_t *out)
{
	if (!v) {
		if (required)
			return cfg_missing(c, key);
		*out = def;
		return 0;
	}
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	/* some writers emit 4096.0: accept an integral real in range */
	if (json_is_real(v)) {
		double x = json_real_value(v);

		if (x == floor(x) && fabs(x) < 9.0e15) {
			*out = (int64_t)x;
			return 0;
		}
	}
	return cfg_bad_type(c, key, "an integer");
}

static int cfg_int(const struct cfg_ctx *c, const char *key, bool required,
		   int64_t def, int64_t *out)
{
	return cfg_int_v(c, cfg_get(c, key), key, required, def, out);
}

/* Positive integer, required. */
static int cfg_pos(const struct cfg_ctx *c, const char *key, int64_t *out)
{
	int rc = cfg_int(c, key, true, 0, out);

	if (rc == 0 && *out <= 0)
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: key '%s' must be positive (got %lld)",
				 c->name, key, (long long)*out);
	return rc;
}

static int cfg_num_v(const struct cfg_ctx *c, json_t *v, const char *key,
		     bool required, double def, double *out)
{
	if (!v) {
		if (required)
			return cfg_missing(c, key);
		*out = def;
		return 0;
	}
	if (!json_is_number(v))
		return cfg_bad_type(c, key, "a number");
	*out = json_number_value(v);
	return 0;
}

static int cfg_bool(const struct cfg_ctx *c, const char *key, bool def,
		    bool *out)
{
	json_t *v = cfg_get(c, key);

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return cfg_bad_type(c, key, "a boolean");
	*out = json_is_true(v);
	return 0;
}

/* Token id(s): an integer or a list of integers, into ids[cap]. */
static int cfg_ids(const struct cfg_ctx *c, json_t *v, const char *key,
		   int32_t *ids, int cap, int *n)
{
	size_t i;

	*n = 0;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT32_MAX)
			return cfg_bad_type(c, key, "a valid token id");
		ids[(*n)++] = (int32_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_array(v))
		return cfg_bad_type(c, key, "an integer or a list of integers");
	for (i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);

		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) > INT32_MAX)
			return cfg_bad_type(c, key,
					    "an integer or a list of integers");
		if (*n == cap)
			return diag_fail(c->d, LLM_E_UNSUPPORTED,
					 "%s: '%s' lists more than %d ids",
					 c->name, key, cap);
		ids[(*n)++] = (int32_t)json_integer_value(e);
	}
	return 0;
}

static int cfg_special_tokens(const struct cfg_ctx *c, struct llm_config *cfg,
			      bool override_only)
{
	json_t *b = cfg_get(c, "bos_token_id");
	json_t *e = cfg_get(c, "eos_token_id");
	int32_t ids[LLM_MAX_EOS];
	int n, rc;

	if (b || !override_only) {
		int32_t one[1];

		rc = cfg_ids(c, b, "bos_token_id", one, 1, &n);
		if (rc < 0)
			return rc;
		cfg->bos_id = n ? one[0] : -1;
	}
	if (e || !override_only) {
		rc = cfg_ids(c, e, "eos_token_id", ids, LLM_MAX_EOS, &n);
		if (rc < 0)
			return rc;
		memcpy(cfg->eos_ids, ids, (size_t)n * sizeof ids[0]);
		cfg->n_eos = n;
	}
	return 0;
}

/* ---- sections -------------------------------------------------------------- */

static int cfg_rope(const struct cfg_ctx *c, struct llm_config *cfg)
{
	json_t *rp = cfg_get(c, "rope_parameters");
	json_t *sc, *t, *ms;
	const char *type = NULL;
	int64_t omp;
	int rc;

	if (rp && !json_is_object(rp))
		return cfg_bad_type(c, "rope_parameters", "an object");
	if (rp) {
		/* v5: theta lives inside rope_parameters */
		sc = rp;
		rc = cfg_num_v(c, cfg_get_in(rp, "rope_theta"),
			       "rope_parameters.rope_theta", true, 0,
			       &cfg->rope_theta);
	} else {
		sc = cfg_get(c, "rope_scaling");
		if (sc && !json_is_object(sc))
			return cfg_bad_type(c, "rope_scaling", "an object");
		/* transformers' default for every supported family */
		rc = cfg_num_v(c, cfg_get(c, "rope_theta"), "rope_theta", false,
			       10000.0, &cfg->rope_theta);
	}
	if (rc < 0)
		return rc;
	if (!(cfg->rope_theta > 0))
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: rope_theta must be positive", c->name);

	cfg->rope.type = LLM_ROPE_DEFAULT;
	cfg->rope.factor = 1.0;
	if (!sc)
		return 0;

	/* Qwen-VL writes {"type": "mrope", "mrope_section": [...]} and v5
	 * adds "rope_type": "default" beside it: the section is decisive. */
	ms = cfg_get_in(sc, "mrope_section");
	t = cfg_get_in(sc, "rope_type");
	if (!t)
		t = cfg_get_in(sc, "type");
	if (t && !json_is_string(t))
		return cfg_bad_type(c, "rope_type", "a string");
	type = t ? json_string_value(t) : "default";
	if (ms) {
		if (!json_is_array(ms) || json_array_size(ms) != 3)
			return cfg_bad_type(c, "mrope_section",
					    "a list of 3 integers");
		for (int i = 0; i < 3; i++) {
			json_t *e = json_array_get(ms, (size_t)i);

			if (!json_is_integer(e) || json_integer_value(e) < 0 ||
			    json_integer_value(e) > 4096)
				return cfg_bad_type(c, "mrope_section",
						    "a list of 3 integers");
			cfg->rope.mrope_section[i] = (int)json_integer_value(e);
		}
		cfg->rope.type = LLM_ROPE_MROPE;
	} else if (strcmp(type, "default") == 0) {
		cfg->rope.type = LLM_ROPE_DEFAULT;
	} else if (strcmp(type, "llama3") == 0) {
		cfg->rope.type = LLM_ROPE_LLAMA3;
	} else if (strcmp(type, "linear") == 0) {
		cfg->rope.type = LLM_ROPE_LINEAR;
	} else if (strcmp(type, "yarn") == 0) {
		cfg->rope.type = LLM_ROPE_YARN;
	} else if (strcmp(type, "dynamic") == 0) {
		cfg->rope.type = LLM_ROPE_DYNAMIC;
	} else if (strcmp(type, "mrope") == 0) {
		return cfg_missing(c, "mrope_section");
	} else {
		return diag_fail(c->d, LLM_E_UNSUPPORTED,
				 "%s: rope type '%s' is not supported "
				 "(default, llama3, linear, yarn, dynamic, "
				 "mrope)", c->name, type);
	}

	if (cfg->rope.type == LLM_ROPE_DEFAULT ||
	    cfg->rope.type == LLM_ROPE_MROPE)
		return 0;
	rc = cfg_num_v(c, cfg_get_in(sc, "factor"), "rope factor", true, 1.0,
		       &cfg->rope.factor);
	if (rc < 0)
		return rc;
	if (!(cfg->rope.factor > 0))
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: rope factor must be positive", c->name);
	rc = cfg_int_v(c, cfg_get_in(sc, "original_max_position_embeddings"),
		       "original_max_position_embeddings",
		       cfg->rope.type == LLM_ROPE_LLAMA3, 0, &omp);
	if (rc < 0)
		return rc;
	if (omp < 0)
		return cfg_bad_type(c, "original_max_position_embeddings",
				    "a non-negative integer");
	cfg->rope.original_max_pos = omp;
	if (cfg->rope.type == LLM_ROPE_LLAMA3) {
		rc = cfg_num_v(c, cfg_get_in(sc, "low_freq_factor"),
			       "low_freq_factor", true, 0,
			       &cfg->rope.low_freq_factor);
		if (rc == 0)
			rc = cfg_num_v(c, cfg_get_in(sc, "high_freq_factor"),
				       "high_freq_factor", true, 0,
				       &cfg->rope.high_freq_factor);
		if (rc < 0)
			return rc;
		if (!(cfg->rope.high_freq_factor > cfg->rope.low_freq_factor))
			return diag_fail(c->d, LLM_E_FORMAT,
					 "%s: llama3 rope needs "
					 "high_freq_factor > low_freq_factor",
					 c->name);
	}
	if (cfg->rope.type == LLM_ROPE_YARN) {
		rc = cfg_num_v(c, cfg_get_in(sc, "attention_factor"),
			       "attention_factor", false, 0,
			       &cfg->rope.attn_factor);
		if (rc == 0)
			rc = cfg_num_v(c, cfg_get_in(sc, "beta_fast"),
				       "beta_fast", false, 0,
				       &cfg->rope.beta_fast);
		if (rc == 0)
			rc = cfg_num_v(c, cfg_get_in(sc, "beta_slow"),
				       "beta_slow", false, 0,
				       &cfg->rope.beta_slow);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int cfg_dtype(const struct cfg_ctx *c, struct llm_config *cfg)
{
	json_t *v = cfg_get(c, "torch_dtype");
	const char *s;

	if (!v)
		v = cfg_get(c, "dtype");
	cfg->torch_dtype = LLM_DTYPE_F32;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return cfg_bad_type(c, "torch_dtype", "a string");
	s = json_string_value(v);
	if (strcmp(s, "float32") == 0)
		cfg->torch_dtype = LLM_DTYPE_F32;
	else if (strcmp(s, "float16") == 0)
		cfg->torch_dtype = LLM_DTYPE_F16;
	else if (strcmp(s, "bfloat16") == 0)
		cfg->torch_dtype = LLM_DTYPE_BF16;
	else
		return diag_fail(c->d, LLM_E_UNSUPPORTED,
				 "%s: dtype '%s' is not supported (float32, "
				 "float16, bfloat16)", c->name, s);
	return 0;
}

static int cfg_quant(const struct cfg_ctx *c, struct llm_config *cfg)
{
	json_t *q = cfg_get(c, "quantization_config");
	json_t *m;
	int rc;

	if (!q)
		return 0;
	if (!json_is_object(q))
		return cfg_bad_type(c, "quantization_config", "an object");
	m = cfg_get_in(q, "quant_method");
	if (!json_is_string(m))
		return cfg_missing(c, "quantization_config.quant_method");
	if (strcmp(json_string_value(m), "exl3") != 0)
		return diag_fail(c->d, LLM_E_UNSUPPORTED,
				 "%s: quantization method '%s' is not "
				 "supported (exl3)", c->name,
				 json_string_value(m));
	cfg->exl3 = true;
	rc = cfg_num_v(c, cfg_get_in(q, "bits"), "quantization_config.bits",
		       true, 0, &cfg->exl3_bits);
	if (rc == 0)
		rc = cfg_num_v(c, cfg_get_in(q, "head_bits"),
			       "quantization_config.head_bits", false, 0,
			       &cfg->exl3_head_bits);
	return rc;
}

static int cfg_int_list(const struct cfg_ctx *c, json_t *v, const char *key,
			int32_t *out, int cap, int *n)
{
	*n = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return cfg_bad_type(c, key, "a list of integers");
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);

		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) > INT32_MAX)
			return cfg_bad_type(c, key, "a list of integers");
		if (*n == cap)
			return diag_fail(c->d, LLM_E_UNSUPPORTED,
					 "%s: '%s' has more than %d entries",
					 c->name, key, cap);
		out[(*n)++] = (int32_t)json_integer_value(e);
	}
	return 0;
}

static int cfg_moe(const struct cfg_ctx *c, struct llm_config *cfg)
{
	json_t *v;
	int rc;

	/* Mixtral says num_local_experts; Qwen MoE says num_experts (and
	 * some writers use num_local_experts there too). */
	v = cfg_get(c, "num_experts");
	if (!v)
		v = cfg_get(c, "num_local_experts");
	rc = cfg_int_v(c, v, "num_experts", true, 0, &cfg->n_expert);
	if (rc == 0)
		rc = cfg_int(c, "num_experts_per_tok", true, 0,
			     &cfg->n_expert_used);
	if (rc < 0)
		return rc;
	if (cfg->n_expert < 1 || cfg->n_expert_used < 1 ||
	    cfg->n_expert_used > cfg->n_expert)
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: need 1 <= num_experts_per_tok (%lld) <= "
				 "num_experts (%lld)", c->name,
				 (long long)cfg->n_expert_used,
				 (long long)cfg->n_expert);
	if (cfg->arch == LLM_ARCH_MIXTRAL) {
		/* Mixtral experts are full-size MLPs and always renormalise
		 * the top-k softmax weights. */
		cfg->n_ff_expert = cfg->n_ff;
		cfg->norm_topk_prob = true;
		cfg->decoder_sparse_step = 1;
		return 0;
	}
	rc = cfg_pos(c, "moe_intermediate_size", &cfg->n_ff_expert);
	if (rc == 0)
		rc = cfg_bool(c, "norm_topk_prob", false, &cfg->norm_topk_prob);
	if (rc == 0)
		rc = cfg_int(c, "decoder_sparse_step", false, 1,
			     &cfg->decoder_sparse_step);
	if (rc == 0)
		rc = cfg_int_list(c, cfg_get(c, "mlp_only_layers"),
				  "mlp_only_layers", cfg->mlp_only_layers,
				  LLM_MAX_MLP_ONLY, &cfg->n_mlp_only);
	if (rc < 0)
		return rc;
	if (cfg->decoder_sparse_step < 1)
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: decoder_sparse_step must be >= 1",
				 c->name);
	if (cfg->arch == LLM_ARCH_QWEN2MOE) {
		rc = cfg_int(c, "shared_expert_intermediate_size", false, 0,
			     &cfg->n_ff_shared);
		if (rc < 0)
			return rc;
		if (cfg->n_ff_shared < 0)
			return cfg_bad_type(c, "shared_expert_intermediate_size",
					    "a non-negative integer");
		cfg->has_shared_expert = cfg->n_ff_shared > 0;
	}
	return 0;
}

static int cfg_vision(const struct cfg_ctx *c, struct llm_config *cfg)
{
	json_t *vc = cfg_get_in(c->root, "vision_config");
	struct cfg_ctx vctx = { vc, NULL, c->name, c->d };
	int rc;

	if (!json_is_object(vc))
		return cfg_missing(c, "vision_config");
	cfg->has_vision = true;
	rc = cfg_pos(c, "image_token_id", &cfg->image_token_id);
	if (rc == 0)
		rc = cfg_pos(c, "video_token_id", &cfg->video_token_id);
	if (rc == 0)
		rc = cfg_pos(c, "vision_start_token_id", &cfg->vision_start_id);
	if (rc == 0)
		rc = cfg_pos(c, "vision_end_token_id", &cfg->vision_end_id);
	if (rc < 0)
		return rc;
	/* messages name the nested keys plainly; prefix on failure */
	rc = cfg_pos(&vctx, "hidden_size", &cfg->vision.n_embd);
	if (rc == 0)
		rc = cfg_pos(&vctx, "depth", &cfg->vision.depth);
	if (rc == 0)
		rc = cfg_pos(&vctx, "num_heads", &cfg->vision.n_head);
	if (rc == 0)
		rc = cfg_pos(&vctx, "intermediate_size", &cfg->vision.n_ff);
	if (rc == 0)
		rc = cfg_pos(&vctx, "out_hidden_size", &cfg->vision.out_embd);
	if (rc == 0)
		rc = cfg_pos(&vctx, "patch_size", &cfg->vision.patch_size);
	if (rc == 0)
		rc = cfg_int(&vctx, "spatial_merge_size", false, 2,
			     &cfg->vision.merge_size);
	if (rc == 0)
		rc = cfg_int(&vctx, "temporal_patch_size", false, 2,
			     &cfg->vision.temporal_patch_size);
	if (rc == 0)
		rc = cfg_int(&vctx, "window_size", false, 112,
			     &cfg->vision.window_size);
	if (rc == 0)
		rc = cfg_int(&vctx, "in_channels", false, 3,
			     &cfg->vision.in_channels);
	if (rc == 0)
		rc = cfg_num_v(&vctx, cfg_get_in(vc, "tokens_per_second"),
			       "tokens_per_second", false, 2.0,
			       &cfg->vision.tokens_per_second);
	if (rc == 0)
		rc = cfg_int_list(&vctx, cfg_get_in(vc, "fullatt_block_indexes"),
				  "fullatt_block_indexes",
				  cfg->vision.fullatt_blocks,
				  LLM_MAX_VISION_FULLATT,
				  &cfg->vision.n_fullatt);
	if (rc < 0)
		return rc;
	if (cfg->vision.n_embd % cfg->vision.n_head != 0 ||
	    cfg->vision.merge_size < 1 || cfg->vision.temporal_patch_size < 1)
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: inconsistent vision_config", c->name);
	return 0;
}

/* Everything after the architecture is known. */
static int cfg_fill(const struct cfg_ctx *c, struct llm_config *cfg)
{
	bool flag, use_sw;
	json_t *v;
	double eps;
	int rc;

	rc = cfg_pos(c, "vocab_size", &cfg->n_vocab);
	if (rc == 0)
		rc = cfg_pos(c, "hidden_size", &cfg->n_embd);
	if (rc == 0)
		rc = cfg_pos(c, "intermediate_size", &cfg->n_ff);
	if (rc == 0)
		rc = cfg_pos(c, "num_hidden_layers", &cfg->n_layer);
	if (rc == 0)
		rc = cfg_pos(c, "num_attention_heads", &cfg->n_head);
	if (rc == 0)
		rc = cfg_int(c, "num_key_value_heads", false, cfg->n_head,
			     &cfg->n_head_kv);
	if (rc == 0)
		rc = cfg_int(c, "head_dim", false, 0, &cfg->head_dim);
	if (rc == 0)
		rc = cfg_pos(c, "max_position_embeddings", &cfg->max_pos);
	if (rc == 0)
		rc = cfg_num_v(c, cfg_get(c, "rms_norm_eps"), "rms_norm_eps",
			       false, 1e-6, &eps);
	if (rc < 0)
		return rc;
	if (cfg->n_head_kv <= 0 || cfg->n_head % cfg->n_head_kv != 0)
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: num_attention_heads (%lld) is not a "
				 "multiple of num_key_value_heads (%lld)",
				 c->name, (long long)cfg->n_head,
				 (long long)cfg->n_head_kv);
	if (cfg->head_dim == 0) {
		if (cfg->n_embd % cfg->n_head != 0)
			return diag_fail(c->d, LLM_E_FORMAT,
					 "%s: no head_dim and hidden_size is "
					 "not a multiple of "
					 "num_attention_heads", c->name);
		cfg->head_dim = cfg->n_embd / cfg->n_head;
	} else if (cfg->head_dim < 0) {
		return cfg_bad_type(c, "head_dim", "a positive integer");
	}
	if (!(eps > 0 && eps < 1))
		return diag_fail(c->d, LLM_E_FORMAT,
				 "%s: rms_norm_eps out of range", c->name);
	cfg->rms_eps = (float)eps;

	rc = cfg_rope(c, cfg);
	if (rc == 0)
		rc = cfg_dtype(c, cfg);
	if (rc == 0)
		rc = cfg_quant(c, cfg);
	if (rc == 0)
		rc = cfg_bool(c, "tie_word_embeddings", false,
			      &cfg->tie_embeddings);
	if (rc == 0)
		rc = cfg_special_tokens(c, cfg, false);
	if (rc < 0)
		return rc;

	/* Biases: Qwen2-family q/k/v always carry one (qkv_bias when given);
	 * Llama-style attention_bias also biases o_proj, and mlp_bias the
	 * MLP: tensors the forward pass does not load, so refuse them. */
	switch (cfg->arch) {
	case LLM_ARCH_QWEN2:
	case LLM_ARCH_QWEN2MOE:
	case LLM_ARCH_QWEN2_5_VL:
		rc = cfg_bool(c, "qkv_bias", true, &cfg->attn_bias);
		break;
	default:
		cfg->attn_bias = false;
		rc = cfg_bool(c, "attention_bias", false, &flag);
		if (rc == 0 && flag)
			return diag_fail(c->d, LLM_E_UNSUPPORTED,
					 "%s: attention_bias true is not "
					 "supported for %s", c->name,
					 cfg->arch_name);
		break;
	}
	if (rc == 0)
		rc = cfg_bool(c, "mlp_bias", false, &flag);
	if (rc < 0)
		return rc;
	if (flag)
		return diag_fail(c->d, LLM_E_UNSUPPORTED,
				 "%s: mlp_bias true is not supported", c->name);
	cfg->qk_norm = cfg->arch == LLM_ARCH_QWEN3 ||
		       cfg->arch == LLM_ARCH_QWEN3MOE;

	/* Sliding window: Mistral/Mixtral use sliding_window on every layer
	 * (null = none).  Qwen only when use_sliding_window, and then per
	 * layer from max_window_layers, which this struct cannot express. */
	rc = cfg_int(c, "sliding_window", false, 0, &cfg->sliding_window);
	if (rc < 0)
		return rc;
	if (cfg->sliding_window < 0)
		return cfg_bad_type(c, "sliding_window",
				    "a non-negative integer or null");
	if (cfg->arch != LLM_ARCH_MISTRAL && cfg->arch != LLM_ARCH_MIXTRAL) {
		rc = cfg_bool(c, "use_sliding_window", false, &use_sw);
		if (rc < 0)
			return rc;
		if (use_sw)
			return diag_fail(c->d, LLM_E_UNSUPPORTED,
					 "%s: use_sliding_window true is not "
					 "supported for %s", c->name,
					 cfg->arch_name);
		cfg->sliding_window = 0;
	}
	/* v5 spells the same as layer_types; only full attention fits the
	 * above (anything else is a per-layer mix we do not express). */
	v = cfg_get(c, "layer_types");
	if (v) {
		if (!json_is_array(v))
			return cfg_bad_type(c, "layer_types", "a list");
		for (size_t i = 0; i < json_array_size(v); i++) {
			const char *lt = json_string_value(json_array_get(v, i));

			if (!lt)
				return cfg_bad_type(c, "layer_types",
						    "a list of strings");
			if (strcmp(lt, "full_attention") != 0 &&
			    !(strcmp(lt, "sliding_attention") == 0 &&
			      cfg->sliding_window > 0 &&
			      (cfg->arch == LLM_ARCH_MISTRAL ||
			       cfg->arch == LLM_ARCH_MIXTRAL)))
				return diag_fail(c->d, LLM_E_UNSUPPORTED,
						 "%s: layer type '%s' is not "
						 "supported", c->name, lt);
		}
	}

	switch (cfg->arch) {
	case LLM_ARCH_MIXTRAL:
	case LLM_ARCH_QWEN2MOE:
	case LLM_ARCH_QWEN3MOE:
		rc = cfg_moe(c, cfg);
		break;
	default:
		break;
	}
	if (rc < 0)
		return rc;

	cfg->image_token_id = cfg->video_token_id = -1;
	cfg->vision_start_id = cfg->vision_end_id = -1;
	if (cfg->arch == LLM_ARCH_QWEN2_5_VL)
		rc = cfg_vision(c, cfg);
	return rc;
}

int llm_config_parse(const char *json_text, size_t len,
		     const char *name_for_errors, struct llm_config *cfg,
		     struct diag *d)
{
	struct llm_config tmp;
	struct cfg_ctx c;
	json_error_t jerr;
	json_t *root, *archs, *tc;
	const char *an;
	size_t i;
	int rc;

	if (!name_for_errors)
		name_for_errors = "config.json";
	root = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s",
				 name_for_errors, jerr.line, jerr.column,
				 jerr.text);
	memset(&tmp, 0, sizeof tmp);
	c.root = root;
	c.tc = NULL;
	c.name = name_for_errors;
	c.d = d;
	if (!json_is_object(root)) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: not a JSON object",
			       name_for_errors);
		goto out;
	}
	tc = json_object_get(root, "text_config");
	if (tc && !json_is_null(tc)) {
		if (!json_is_object(tc)) {
			rc = cfg_bad_type(&c, "text_config", "an object");
			goto out;
		}
		c.tc = tc;
	}

	archs = json_object_get(root, "architectures");
	if (!json_is_array(archs) || json_array_size(archs) < 1 ||
	    !json_is_string(json_array_get(archs, 0))) {
		rc = diag_fail(d, LLM_E_FORMAT,
			       "%s: missing key 'architectures' (a list of "
			       "class names)", name_for_errors);
		goto out;
	}
	an = json_string_value(json_array_get(archs, 0));
	for (i = 0; i < CFG_N_ARCHS; i++)
		if (strcmp(an, cfg_archs[i].hf_name) == 0)
			break;
	if (i == CFG_N_ARCHS) {
		rc = diag_fail(d, LLM_E_UNSUPPORTED,
			       "%s: architecture '%s' is not supported; "
			       "supported: %s", name_for_errors, an,
			       llm_arch_supported_list());
		goto out;
	}
	tmp.arch = cfg_archs[i].arch;
	snprintf(tmp.arch_name, sizeof tmp.arch_name, "%s",
		 cfg_archs[i].hf_name);

	rc = cfg_fill(&c, &tmp);
	if (rc == 0)
		*cfg = tmp;
out:
	json_decref(root);
	return rc;
}

int llm_config_apply_generation(const char *json_text, size_t len,
				const char *name_for_errors,
				struct llm_config *cfg, struct diag *d)
{
	struct llm_config tmp = *cfg;
	struct cfg_ctx c;
	json_error_t jerr;
	json_t *root;
	int rc;

	if (!name_for_errors)
		name_for_errors = "generation_config.json";
	root = json_loadb(json_text, len, 0, &jerr);
	if (!root)
		return diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s",
				 name_for_errors, jerr.line, jerr.column,
				 jerr.text);
	c.root = root;
	c.tc = NULL;
	c.name = name_for_errors;
	c.d = d;
	if (!json_is_object(root))
		rc = diag_fail(d, LLM_E_FORMAT, "%s: not a JSON object",
			       name_for_errors);
	else
		rc = cfg_special_tokens(&c, &tmp, true);
	if (rc == 0)
		*cfg = tmp;
	json_decref(root);
	return rc;
}

int llm_config_load(const char *model_dir, struct llm_config *cfg,
		    struct diag *d)
{
	struct llm_config tmp;
	char *path, *text = NULL;
	size_t len;
	int rc;

	path = file_join(model_dir, "config.json");
	if (!path)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	rc = file_read_all(path, CFG_MAX_FILE_BYTES, &text, &len, d);
	if (rc < 0) {
		free(path);
		if (d)
			d->code = LLM_E_IO;
		return LLM_E_IO;
	}
	rc = llm_config_parse(text, len, path, &tmp, d);
	free(text);
	free(path);
	text = NULL;
	if (rc < 0)
		return rc;

	path = file_join(model_dir, "generation_config.json");
	if (!path)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	if (file_is_file(path)) {
		rc = file_read_all(path, CFG_MAX_FILE_BYTES, &text, &len, d);
		if (rc < 0) {
			if (d)
				d->code = LLM_E_IO;
			rc = LLM_E_IO;
		} else {
			rc = llm_config_apply_generation(text, len, path, &tmp,
							 d);
		}
		free(text);
	}
	free(path);
	if (rc == 0)
		*cfg = tmp;
	return rc;
}
