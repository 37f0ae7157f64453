/* inference/config_impl.h — internal API of the model config reader
 * (inference/config.c).  Engine-internal: never include outside inference/.
 *
 * `struct llm_config` is the architecture-independent description of a
 * decoder model, filled from a Hugging Face `config.json` in either layout:
 *   - classic hub layout: rope_theta / rope_scaling / torch_dtype at top
 *     level, VL text fields flat at top level;
 *   - transformers-5 layout: rope_parameters {rope_theta, rope_type, ...},
 *     `dtype`, and for VL models a nested `text_config`.
 * Both layouts of the same model yield identical structs.  The struct is
 * plain data (no pointers): copy freely, nothing to free.
 *
 * Invariants after a successful load: n_vocab, n_embd, n_ff, n_layer, n_head,
 * n_head_kv, head_dim > 0; n_head % n_head_kv == 0; for MoE archs
 * n_expert >= n_expert_used >= 1.
 */
#ifndef TERN_INFERENCE_CONFIG_IMPL_H
#define TERN_INFERENCE_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "inference/safetensors_impl.h"

enum llm_arch {
	LLM_ARCH_LLAMA,      /* LlamaForCausalLM */
	LLM_ARCH_MISTRAL,    /* MistralForCausalLM */
	LLM_ARCH_QWEN2,      /* Qwen2ForCausalLM */
	LLM_ARCH_QWEN3,      /* Qwen3ForCausalLM */
	LLM_ARCH_MIXTRAL,    /* MixtralForCausalLM */
	LLM_ARCH_QWEN2MOE,   /* Qwen2MoeForCausalLM */
	LLM_ARCH_QWEN3MOE,   /* Qwen3MoeForCausalLM */
	LLM_ARCH_QWEN2_5_VL  /* Qwen2_5_VLForConditionalGeneration */
};

enum llm_rope_type {
	LLM_ROPE_DEFAULT,
	LLM_ROPE_LLAMA3,
	LLM_ROPE_LINEAR,
	LLM_ROPE_YARN,
	LLM_ROPE_DYNAMIC, /* parsed; the forward pass may reject it */
	LLM_ROPE_MROPE
};

#define LLM_MAX_EOS 8
#define LLM_MAX_MLP_ONLY 64
#define LLM_MAX_VISION_FULLATT 16

struct llm_config {
	enum llm_arch arch;
	char arch_name[64]; /* e.g. "LlamaForCausalLM" */
	int64_t n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim,
		max_pos;
	float rms_eps;
	double rope_theta;
	struct {
		enum llm_rope_type type;
		double factor;           /* 1.0 when no scaling */
		double low_freq_factor;  /* llama3 */
		double high_freq_factor; /* llama3 */
		int64_t original_max_pos; /* llama3/yarn; 0 if absent */
		double attn_factor;      /* yarn; 0 if absent (= use default) */
		double beta_fast, beta_slow; /* yarn; 0 if absent */
		int mrope_section[3];    /* mrope: (t, h, w) rotary pairs */
	} rope;
	bool tie_embeddings;
	bool attn_bias; /* qwen2 qkv bias (qwen2, qwen2moe, qwen2.5-vl) */
	bool qk_norm;   /* qwen3 (qwen3, qwen3moe) */
	int64_t sliding_window; /* 0 = none (use_sliding_window false / null) */
	/* MoE (0 / false for dense archs) */
	int64_t n_expert, n_expert_used, n_ff_expert, n_ff_shared;
	bool norm_topk_prob;
	bool has_shared_expert;
	int64_t decoder_sparse_step; /* qwen MoE: layer l is sparse when
				      * (l + 1) % step == 0; 1 otherwise */
	int n_mlp_only;              /* qwen MoE: dense-MLP layers */
	int32_t mlp_only_layers[LLM_MAX_MLP_ONLY];
	/* special tokens: from config.json, overridden by
	 * generation_config.json when present; -1 = none */
	int32_t bos_id, eos_ids[LLM_MAX_EOS];
	int n_eos;
	enum llm_dtype torch_dtype; /* LLM_DTYPE_F32 when absent */
	/* quantization (quantization_config with quant_method "exl3") */
	bool exl3;
	double exl3_bits, exl3_head_bits;
	/* vision (qwen2.5-vl); -1 ids when absent */
	bool has_vision;
	int64_t image_token_id, video_token_id, vision_start_id, vision_end_id;
	struct {
		int64_t n_embd, depth, n_head, n_ff, out_embd;
		int64_t patch_size, merge_size, temporal_patch_size,
			window_size, in_channels;
		int n_fullatt;
		int32_t fullatt_blocks[LLM_MAX_VISION_FULLATT];
		double tokens_per_second;
	} vision;
};

/* Read MODEL_DIR/config.json (+ MODEL_DIR/generation_config.json if present,
 * whose bos/eos override config.json's) into *cfg.
 * Errors: LLM_E_IO (no config.json), LLM_E_FORMAT (bad JSON: file:line:col;
 * missing/ill-typed required key: names it), LLM_E_UNSUPPORTED (unknown
 * architecture: the message lists the supported ones), LLM_E_NOMEM.
 * *cfg is fully written only on success. */
int llm_config_load(const char *model_dir, struct llm_config *cfg,
		    struct diag *d);

/* Parse config.json text (LEN bytes, need not be NUL-terminated).
 * NAME_FOR_ERRORS prefixes messages ("x/config.json: missing key ..."). */
int llm_config_parse(const char *json_text, size_t len,
		     const char *name_for_errors, struct llm_config *cfg,
		     struct diag *d);

/* Apply a generation_config.json text on top of CFG (bos_token_id,
 * eos_token_id int or list).  Absent keys leave CFG unchanged. */
int llm_config_apply_generation(const char *json_text, size_t len,
				const char *name_for_errors,
				struct llm_config *cfg, struct diag *d);

/* "LlamaForCausalLM, MistralForCausalLM, ..." (static). */
const char *llm_arch_supported_list(void);
/* Short name of an arch ("llama", "qwen2moe", ...), static. */
const char *llm_arch_name(enum llm_arch a);

/* true when layer L (0-based) uses the MoE block instead of the dense MLP:
 * false for dense archs; for mixtral/qwen3moe every layer (unless in
 * mlp_only_layers); for qwen2moe/qwen3moe honours decoder_sparse_step and
 * mlp_only_layers as transformers does. */
bool llm_config_layer_is_moe(const struct llm_config *cfg, int64_t l);

#endif
