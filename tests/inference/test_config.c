/* tests/inference/test_config.c — suite `config`: config.json parsing
 * (inference/config.c) against the tiny model fixtures (tests/data/models/,
 * written by transformers) in both the classic hub layout (config.json) and
 * the transformers-5 layout (config.v5.json), whose structs must be equal
 * field by field; expected values come from the fixtures README ("vocab 512,
 * hidden 128, intermediate 256, 2 layers, 4 heads, 2 kv heads ..."), and
 * edited copies of real configs exercise the error paths.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "inference/config_impl.h"
#include "inference/llm.h"
#include "testutil.h"

static char *fixture(const char *model, const char *file)
{
	char rel[256];

	snprintf(rel, sizeof rel, "models/%s/%s", model, file);
	return test_data_path(rel);
}

static int parse_file(const char *path, struct llm_config *cfg,
		      struct diag *d)
{
	size_t len;
	char *text = test_read_file(path, &len);
	int rc = llm_config_parse(text, len, path, cfg, d);

	free(text);
	return rc;
}

static void parse_file_ok(const char *path, struct llm_config *cfg)
{
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = parse_file(path, cfg, &d);
	ck_assert_msg(rc == 0, "%s: %d %s", path, rc, d.msg);
}

static json_t *load_json(const char *model, const char *file)
{
	char *p = fixture(model, file);
	json_error_t e;
	json_t *j = json_load_file(p, 0, &e);

	ck_assert_msg(j != NULL, "%s: %s", p, e.text);
	free(p);
	return j;
}

/* Parse an edited JSON tree (takes no ownership). */
static int parse_json(json_t *j, struct llm_config *cfg, struct diag *d)
{
	char *text = json_dumps(j, 0);
	int rc;

	ck_assert_ptr_nonnull(text);
	diag_clear(d);
	rc = llm_config_parse(text, strlen(text), "edited.json", cfg, d);
	free(text);
	return rc;
}

/* Field-by-field equality, reporting the first difference. */
static void assert_config_eq(const struct llm_config *a,
			     const struct llm_config *b, const char *what)
{
#define EQ(f) ck_assert_msg(a->f == b->f, "%s: field " #f " differs", what)
	EQ(arch);
	ck_assert_str_eq(a->arch_name, b->arch_name);
	EQ(n_vocab); EQ(n_embd); EQ(n_ff); EQ(n_layer); EQ(n_head);
	EQ(n_head_kv); EQ(head_dim); EQ(max_pos); EQ(rms_eps); EQ(rope_theta);
	EQ(rope.type); EQ(rope.factor); EQ(rope.low_freq_factor);
	EQ(rope.high_freq_factor); EQ(rope.original_max_pos);
	EQ(rope.attn_factor); EQ(rope.beta_fast); EQ(rope.beta_slow);
	EQ(rope.mrope_section[0]); EQ(rope.mrope_section[1]);
	EQ(rope.mrope_section[2]);
	EQ(tie_embeddings); EQ(attn_bias); EQ(qk_norm); EQ(sliding_window);
	EQ(n_expert); EQ(n_expert_used); EQ(n_ff_expert); EQ(n_ff_shared);
	EQ(norm_topk_prob); EQ(has_shared_expert); EQ(decoder_sparse_step);
	EQ(n_mlp_only);
	for (int i = 0; i < a->n_mlp_only; i++)
		EQ(mlp_only_layers[i]);
	EQ(bos_id); EQ(n_eos);
	for (int i = 0; i < a->n_eos; i++)
		EQ(eos_ids[i]);
	EQ(torch_dtype); EQ(exl3); EQ(exl3_bits); EQ(exl3_head_bits);
	EQ(has_vision); EQ(image_token_id); EQ(video_token_id);
	EQ(vision_start_id); EQ(vision_end_id);
	EQ(vision.n_embd); EQ(vision.depth); EQ(vision.n_head); EQ(vision.n_ff);
	EQ(vision.out_embd); EQ(vision.patch_size); EQ(vision.merge_size);
	EQ(vision.temporal_patch_size); EQ(vision.window_size);
	EQ(vision.in_channels); EQ(vision.n_fullatt);
	EQ(vision.tokens_per_second);
	for (int i = 0; i < a->vision.n_fullatt; i++)
		EQ(vision.fullatt_blocks[i]);
#undef EQ
}

struct expect {
	const char *model;
	enum llm_arch arch;
	const char *arch_name;
	int64_t n_vocab, n_head_kv;
	float rms_eps;
	double theta;
	bool tie, bias, qk_norm;
	int64_t n_expert, n_ff_expert, n_ff_shared;
	bool norm_topk;
};

static const struct expect expects[] = {
	{ "llama2", LLM_ARCH_LLAMA, "LlamaForCausalLM", 512, 4, 1e-5f, 1e4,
	  false, false, false, 0, 0, 0, false },
	{ "llama3", LLM_ARCH_LLAMA, "LlamaForCausalLM", 512, 2, 1e-6f, 5e5,
	  false, false, false, 0, 0, 0, false },
	{ "mistral", LLM_ARCH_MISTRAL, "MistralForCausalLM", 512, 2, 1e-6f,
	  1e6, false, false, false, 0, 0, 0, false },
	{ "mixtral", LLM_ARCH_MIXTRAL, "MixtralForCausalLM", 512, 2, 1e-6f,
	  1e6, false, false, false, 4, 256, 0, true },
	{ "qwen2", LLM_ARCH_QWEN2, "Qwen2ForCausalLM", 512, 2, 1e-6f, 1e6,
	  true, true, false, 0, 0, 0, false },
	{ "qwen2moe", LLM_ARCH_QWEN2MOE, "Qwen2MoeForCausalLM", 512, 2, 1e-6f,
	  1e4, false, true, false, 4, 64, 128, false },
	{ "qwen3", LLM_ARCH_QWEN3, "Qwen3ForCausalLM", 512, 2, 1e-6f, 1e6,
	  true, false, true, 0, 0, 0, false },
	{ "qwen3moe", LLM_ARCH_QWEN3MOE, "Qwen3MoeForCausalLM", 512, 2, 1e-6f,
	  1e4, false, false, true, 8, 64, 0, true },
	{ "qwen2_5_vl", LLM_ARCH_QWEN2_5_VL,
	  "Qwen2_5_VLForConditionalGeneration", 520, 2, 1e-6f, 1e6, true,
	  true, false, 0, 0, 0, false },
};

START_TEST(test_fixture_layouts)
{
	const struct expect *e = &expects[_i];
	char *p1 = fixture(e->model, "config.json");
	char *p5 = fixture(e->model, "config.v5.json");
	char *dir = fixture(e->model, "");
	struct llm_config a, b, c;
	struct diag d;

	parse_file_ok(p1, &a);
	parse_file_ok(p5, &b);
	assert_config_eq(&a, &b, e->model);

	ck_assert_int_eq(a.arch, e->arch);
	ck_assert_str_eq(a.arch_name, e->arch_name);
	ck_assert_int_eq(a.n_vocab, e->n_vocab);
	ck_assert_int_eq(a.n_embd, 128);
	ck_assert_int_eq(a.n_ff, 256);
	ck_assert_int_eq(a.n_layer, 2);
	ck_assert_int_eq(a.n_head, 4);
	ck_assert_int_eq(a.n_head_kv, e->n_head_kv);
	ck_assert_int_eq(a.head_dim, 32);
	ck_assert_int_eq(a.max_pos, 4096);
	ck_assert(a.rms_eps == e->rms_eps);
	ck_assert(a.rope_theta == e->theta);
	ck_assert_int_eq(a.tie_embeddings, e->tie);
	ck_assert_int_eq(a.attn_bias, e->bias);
	ck_assert_int_eq(a.qk_norm, e->qk_norm);
	ck_assert_int_eq(a.sliding_window, 0);
	ck_assert_int_eq(a.n_expert, e->n_expert);
	ck_assert_int_eq(a.n_expert_used, e->n_expert ? 2 : 0);
	ck_assert_int_eq(a.n_ff_expert, e->n_ff_expert);
	ck_assert_int_eq(a.n_ff_shared, e->n_ff_shared);
	ck_assert_int_eq(a.has_shared_expert, e->n_ff_shared > 0);
	ck_assert_int_eq(a.norm_topk_prob, e->norm_topk);
	ck_assert_int_eq(a.bos_id, 1);
	ck_assert_int_eq(a.n_eos, 1);
	ck_assert_int_eq(a.eos_ids[0], 2);
	ck_assert_int_eq(a.torch_dtype, LLM_DTYPE_BF16);
	ck_assert(!a.exl3);
	for (int64_t l = 0; l < a.n_layer; l++)
		ck_assert_int_eq(llm_config_layer_is_moe(&a, l),
				 e->n_expert > 0);
	if (e->arch == LLM_ARCH_LLAMA && strcmp(e->model, "llama3") == 0) {
		ck_assert_int_eq(a.rope.type, LLM_ROPE_LLAMA3);
		ck_assert(a.rope.factor == 8.0);
		ck_assert_int_eq(a.rope.original_max_pos, 256);
		ck_assert(a.rope.low_freq_factor == 1.0);
		ck_assert(a.rope.high_freq_factor == 4.0);
	} else if (e->arch == LLM_ARCH_QWEN2_5_VL) {
		ck_assert_int_eq(a.rope.type, LLM_ROPE_MROPE);
		ck_assert_int_eq(a.rope.mrope_section[0], 4);
		ck_assert_int_eq(a.rope.mrope_section[1], 6);
		ck_assert_int_eq(a.rope.mrope_section[2], 6);
		ck_assert(a.has_vision);
		ck_assert_int_eq(a.image_token_id, 512);
		ck_assert_int_eq(a.video_token_id, 513);
		ck_assert_int_eq(a.vision_start_id, 514);
		ck_assert_int_eq(a.vision_end_id, 515);
		ck_assert_int_eq(a.vision.n_embd, 64);
		ck_assert_int_eq(a.vision.depth, 4);
		ck_assert_int_eq(a.vision.n_head, 2);
		ck_assert_int_eq(a.vision.n_ff, 128);
		ck_assert_int_eq(a.vision.out_embd, 128);
		ck_assert_int_eq(a.vision.patch_size, 14);
		ck_assert_int_eq(a.vision.merge_size, 2);
		ck_assert_int_eq(a.vision.temporal_patch_size, 2);
		ck_assert_int_eq(a.vision.window_size, 56);
		ck_assert_int_eq(a.vision.n_fullatt, 2);
		ck_assert_int_eq(a.vision.fullatt_blocks[0], 1);
		ck_assert_int_eq(a.vision.fullatt_blocks[1], 3);
	} else {
		ck_assert_int_eq(a.rope.type, LLM_ROPE_DEFAULT);
		ck_assert(a.rope.factor == 1.0);
		ck_assert(!a.has_vision);
		ck_assert_int_eq(a.image_token_id, -1);
	}

	/* the directory loader (config.json + generation_config.json) */
	diag_clear(&d);
	ck_assert_int_eq(llm_config_load(dir, &c, &d), 0);
	assert_config_eq(&a, &c, "load");
	free(p1);
	free(p5);
	free(dir);
}
END_TEST

START_TEST(test_exl3_config)
{
	char *dir = fixture("exl3-llama3", "");
	struct llm_config c;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_config_load(dir, &c, &d), 0);
	ck_assert_int_eq(c.arch, LLM_ARCH_LLAMA);
	ck_assert_int_eq(c.n_vocab, 1024);
	ck_assert_int_eq(c.n_embd, 256);
	ck_assert_int_eq(c.n_ff, 512);
	ck_assert_int_eq(c.head_dim, 64);
	ck_assert(c.exl3);
	ck_assert(c.exl3_bits == 4.79);
	ck_assert(c.exl3_head_bits == 6.0);
	ck_assert_int_eq(c.rope.type, LLM_ROPE_LLAMA3);
	ck_assert_int_eq(c.rope.original_max_pos, 256);
	free(dir);
}
END_TEST

/* The larger shared fixtures: skipped when the shared folder is absent. */
START_TEST(test_shared_configs)
{
	static const char *const names[] = { "models/trained-target",
					     "models/trained-draft" };
	struct llm_config a, b;
	struct diag d;
	char *p;

	for (size_t i = 0; i < 2; i++) {
		char rel[128];

		snprintf(rel, sizeof rel, "%s/config.v5.json", names[i]);
		p = test_shared_path(rel);
		if (!p)
			return;
		parse_file_ok(p, &b);
		free(p);
		snprintf(rel, sizeof rel, "%s/config.json", names[i]);
		p = test_shared_path(rel);
		if (!p)
			return;
		parse_file_ok(p, &a);
		free(p);
		assert_config_eq(&a, &b, names[i]);
		ck_assert_int_eq(a.arch, LLM_ARCH_LLAMA);
		ck_assert_int_eq(a.n_vocab, 32000);
		ck_assert(a.tie_embeddings);
	}
	/* trained-target: hidden 384, 8 layers, 6 heads of 64, 2 kv heads */
	p = test_shared_path("models/trained-target/config.json");
	if (!p)
		return;
	parse_file_ok(p, &a);
	free(p);
	ck_assert_int_eq(a.n_embd, 384);
	ck_assert_int_eq(a.n_layer, 8);
	ck_assert_int_eq(a.n_head, 6);
	ck_assert_int_eq(a.n_head_kv, 2);
	ck_assert_int_eq(a.head_dim, 64);
	ck_assert_int_eq(a.n_ff, 1024);
	ck_assert_int_eq(a.max_pos, 2048);

	/* stories260k: float32 checkpoint, head_dim 8 */
	p = test_shared_path("models/stories260k/config.json");
	if (!p)
		return;
	diag_clear(&d);
	ck_assert_int_eq(parse_file(p, &a, &d), 0);
	free(p);
	ck_assert_int_eq(a.torch_dtype, LLM_DTYPE_F32);
	ck_assert_int_eq(a.n_embd, 64);
	ck_assert_int_eq(a.n_ff, 172);
	ck_assert_int_eq(a.n_layer, 5);
	ck_assert_int_eq(a.n_head, 8);
	ck_assert_int_eq(a.n_head_kv, 4);
	ck_assert_int_eq(a.head_dim, 8);
}
END_TEST

START_TEST(test_unsupported_arch)
{
	json_t *j = load_json("llama2", "config.json");
	struct llm_config c;
	struct diag d;
	const char *list = llm_arch_supported_list();

	json_object_set_new(j, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(d.msg, "GPT2LMHeadModel"));
	ck_assert_ptr_nonnull(strstr(d.msg, list));
	/* the list names every architecture we map */
	for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++)
		ck_assert_ptr_nonnull(strstr(list, expects[i].arch_name));
	ck_assert_str_eq(llm_arch_name(LLM_ARCH_QWEN2MOE), "qwen2moe");

	json_object_del(j, "architectures");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'architectures'"));
	json_decref(j);
}
END_TEST

START_TEST(test_missing_keys)
{
	static const char *const required[] = {
		"vocab_size", "hidden_size", "intermediate_size",
		"num_hidden_layers", "num_attention_heads",
		"max_position_embeddings",
	};
	struct llm_config c;
	struct diag d;
	json_t *j, *tc;
	char want[64];

	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
		j = load_json("llama2", "config.json");
		json_object_del(j, required[i]);
		ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
		snprintf(want, sizeof want, "missing key '%s'", required[i]);
		ck_assert_msg(strstr(d.msg, want) != NULL, "%s", d.msg);
		ck_assert_ptr_nonnull(strstr(d.msg, "edited.json"));
		json_decref(j);
	}
	/* v5 VL: the key lives inside text_config */
	j = load_json("qwen2_5_vl", "config.v5.json");
	tc = json_object_get(j, "text_config");
	json_object_del(tc, "num_hidden_layers");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'num_hidden_layers'"));
	json_decref(j);
	/* v5 rope_parameters without rope_theta */
	j = load_json("llama3", "config.v5.json");
	json_object_del(json_object_get(j, "rope_parameters"), "rope_theta");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "rope_theta"));
	json_decref(j);
	/* llama3 scaling needs its original context */
	j = load_json("llama3", "config.json");
	json_object_del(json_object_get(j, "rope_scaling"),
			"original_max_position_embeddings");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "original_max_position_embeddings"));
	json_decref(j);
	/* MoE without its expert count */
	j = load_json("mixtral", "config.json");
	json_object_del(j, "num_local_experts");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "num_experts"));
	json_decref(j);
	/* VL without vision_config */
	j = load_json("qwen2_5_vl", "config.json");
	json_object_del(j, "vision_config");
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'vision_config'"));
	json_decref(j);
	/* wrong types */
	j = load_json("llama2", "config.json");
	json_object_set_new(j, "hidden_size", json_string("128"));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'hidden_size' is not an integer"));
	json_object_set_new(j, "hidden_size", json_integer(-128));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "positive"));
	json_object_set_new(j, "hidden_size", json_integer(128));
	json_object_set_new(j, "num_key_value_heads", json_integer(3));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "num_key_value_heads"));
	json_decref(j);
}
END_TEST

START_TEST(test_defaults_and_variants)
{
	struct llm_config c;
	struct diag d;
	json_t *j;

	/* head_dim absent or null: hidden / heads; kv heads default to heads */
	j = load_json("llama3", "config.json");
	json_object_del(j, "head_dim");
	json_object_del(j, "num_key_value_heads");
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.head_dim, 32);
	ck_assert_int_eq(c.n_head_kv, 4);
	json_object_set_new(j, "head_dim", json_null());
	json_object_set_new(j, "hidden_size", json_integer(256));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.head_dim, 64);
	/* no dtype: float32 */
	json_object_del(j, "torch_dtype");
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.torch_dtype, LLM_DTYPE_F32);
	json_object_set_new(j, "torch_dtype", json_string("float8_e4m3fn"));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(d.msg, "float8_e4m3fn"));
	json_object_set_new(j, "torch_dtype", json_string("float16"));
	/* other rope types */
	json_object_set_new(j, "rope_scaling",
			    json_pack("{s:s, s:f}", "type", "linear", "factor", 2.0));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.rope.type, LLM_ROPE_LINEAR);
	ck_assert(c.rope.factor == 2.0);
	ck_assert_int_eq(c.torch_dtype, LLM_DTYPE_F16);
	json_object_set_new(j, "rope_scaling",
			    json_pack("{s:s, s:f, s:i, s:f, s:f}", "rope_type",
				      "yarn", "factor", 4.0,
				      "original_max_position_embeddings", 32768,
				      "beta_fast", 32.0, "beta_slow", 1.0));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.rope.type, LLM_ROPE_YARN);
	ck_assert_int_eq(c.rope.original_max_pos, 32768);
	ck_assert(c.rope.beta_fast == 32.0 && c.rope.beta_slow == 1.0);
	json_object_set_new(j, "rope_scaling",
			    json_pack("{s:s, s:f}", "rope_type", "longrope",
				      "factor", 4.0));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(d.msg, "longrope"));
	json_object_set_new(j, "rope_scaling", json_null());
	/* biases we do not load are refused, not ignored */
	json_object_set_new(j, "mlp_bias", json_true());
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	json_object_set_new(j, "mlp_bias", json_false());
	json_object_set_new(j, "attention_bias", json_true());
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	json_object_set_new(j, "attention_bias", json_false());
	/* another quantization method */
	json_object_set_new(j, "quantization_config",
			    json_pack("{s:s, s:i}", "quant_method", "gptq",
				      "bits", 4));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(d.msg, "gptq"));
	json_decref(j);

	/* Mistral: sliding_window null = none, a number = that window */
	j = load_json("mistral", "config.json");
	json_object_set_new(j, "sliding_window", json_integer(4096));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.sliding_window, 4096);
	json_decref(j);
	/* Qwen: a window only with use_sliding_window, which we refuse */
	j = load_json("qwen2", "config.json");
	json_object_set_new(j, "sliding_window", json_integer(4096));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.sliding_window, 0);
	json_object_set_new(j, "use_sliding_window", json_true());
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_UNSUPPORTED);
	json_decref(j);

	/* Qwen MoE sparse-layer rules (transformers' Qwen2MoeDecoderLayer) */
	j = load_json("qwen2moe", "config.json");
	json_object_set_new(j, "num_hidden_layers", json_integer(4));
	json_object_set_new(j, "decoder_sparse_step", json_integer(2));
	json_object_set_new(j, "mlp_only_layers", json_pack("[i]", 3));
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert(!llm_config_layer_is_moe(&c, 0));
	ck_assert(llm_config_layer_is_moe(&c, 1));
	ck_assert(!llm_config_layer_is_moe(&c, 2));
	ck_assert(!llm_config_layer_is_moe(&c, 3));
	ck_assert_int_eq(c.n_mlp_only, 1);
	json_object_set_new(j, "num_experts_per_tok", json_integer(5));
	ck_assert_int_eq(parse_json(j, &c, &d), LLM_E_FORMAT);
	json_decref(j);

	/* eos as a list, bos null */
	j = load_json("llama3", "config.json");
	json_object_set_new(j, "eos_token_id", json_pack("[i,i,i]", 2, 7, 9));
	json_object_set_new(j, "bos_token_id", json_null());
	ck_assert_int_eq(parse_json(j, &c, &d), 0);
	ck_assert_int_eq(c.n_eos, 3);
	ck_assert_int_eq(c.eos_ids[2], 9);
	ck_assert_int_eq(c.bos_id, -1);
	json_decref(j);
}
END_TEST

START_TEST(test_generation_config)
{
	char *p = fixture("llama3", "config.json");
	struct llm_config c;
	struct diag d;
	const char *gen = "{\"bos_token_id\": 5, \"eos_token_id\": [2, 11]}";

	parse_file_ok(p, &c);
	diag_clear(&d);
	ck_assert_int_eq(llm_config_apply_generation(gen, strlen(gen), "g.json",
						     &c, &d), 0);
	ck_assert_int_eq(c.bos_id, 5);
	ck_assert_int_eq(c.n_eos, 2);
	ck_assert_int_eq(c.eos_ids[1], 11);
	/* absent keys leave the config alone; errors leave it untouched */
	ck_assert_int_eq(llm_config_apply_generation("{}", 2, "g.json", &c, &d),
			 0);
	ck_assert_int_eq(c.bos_id, 5);
	ck_assert_int_eq(llm_config_apply_generation("{\"eos_token_id\": \"x\"}",
						     22, "g.json", &c, &d),
			 LLM_E_FORMAT);
	ck_assert_int_eq(c.n_eos, 2);
	ck_assert_int_eq(llm_config_apply_generation("{", 1, "g.json", &c, &d),
			 LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "g.json:1:"));
	free(p);
}
END_TEST

START_TEST(test_bad_json_and_io)
{
	struct llm_config c;
	struct diag d;
	const char *bad = "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  oops\n}";

	diag_clear(&d);
	ck_assert_int_eq(llm_config_parse(bad, strlen(bad), "x/config.json", &c,
					  &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "x/config.json:3:"));
	ck_assert_int_eq(llm_config_parse("[]", 2, "y.json", &c, &d),
			 LLM_E_FORMAT);
	ck_assert_int_eq(llm_config_load("/nonexistent-dir", &c, &d), LLM_E_IO);
	ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent-dir/config.json"));
}
END_TEST

Suite *config_suite(void);
Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_fixture_layouts, 0,
			    (int)(sizeof expects / sizeof expects[0]));
	tcase_add_test(tc, test_exl3_config);
	tcase_add_test(tc, test_shared_configs);
	tcase_add_test(tc, test_unsupported_arch);
	tcase_add_test(tc, test_missing_keys);
	tcase_add_test(tc, test_defaults_and_variants);
	tcase_add_test(tc, test_generation_config);
	tcase_add_test(tc, test_bad_json_and_io);
	suite_add_tcase(s, tc);
	return s;
}
