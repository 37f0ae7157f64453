/* inference/llm.h — the one public header of the engine layer (prefix llm_).
 *
 * Everything above the engine (app/) talks to models, tokenizers, chat
 * templates, samplers and jobs through this header only.  It never includes a
 * CUDA or curses header.  Conventions (see ARCHITECTURE.md §4):
 *   - fallible functions return 0 or a negative LLM_E_* code and fill an
 *     optional `struct diag *` with context;
 *   - handles are opaque; `_free(NULL)` is a no-op;
 *   - parameter structs come with `llm_*_default_params()` factories;
 *   - every function documents ownership, lifetime and thread-safety.
 *
 * The header is organised in sections, one per module; each module's
 * internals live in its own `inference/MODULE_impl.h` header.
 */
#ifndef TERN_INFERENCE_LLM_H
#define TERN_INFERENCE_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Errors ============================================================ */

enum llm_err {
	LLM_OK = 0,
	LLM_E_NOMEM = -1,       /* host allocation failed */
	LLM_E_IO = -2,          /* a file could not be read or written */
	LLM_E_FORMAT = -3,      /* a file's contents are malformed */
	LLM_E_UNSUPPORTED = -4, /* valid but not supported (architecture, dtype) */
	LLM_E_INVALID = -5,     /* bad argument from the caller */
	LLM_E_TEMPLATE = -6,    /* chat template syntax or runtime error */
	LLM_E_RAISED = -7,      /* chat template called raise_exception() */
	LLM_E_LIMIT = -8,       /* a resource limit was hit (loop, output size) */
	LLM_E_BACKEND = -9,     /* the compute backend failed (see diag) */
	LLM_E_CANCELLED = -10,  /* the operation was cancelled */
	LLM_E_NOSPACE = -11,    /* does not fit (KV cache, context length) */
};

/* Static English text for an LLM_E_* code; never NULL. */
const char *llm_strerror(int err);

/* Version string of the engine ("0.1.0"). */
const char *llm_version(void);

/* ==== Tokenizer (inference/tokenizer*.c) ================================= */
/* (section owned by the tokenizer module)
 *
 * A Hugging Face tokenizer.json (BPE models: byte-level like Llama-3/Qwen/
 * Mistral-Nemo, SentencePiece-style with byte fallback like Llama-2/Mistral/
 * Gemma), giving the same ids and text as HF `tokenizers`.  A loaded
 * tokenizer is immutable: every function below that takes a const tokenizer
 * may be called from several threads at once.  Texts are byte strings with
 * explicit lengths (NUL bytes allowed); input that is not valid UTF-8 is
 * repaired with U+FFFD before encoding.  Output text is always valid UTF-8. */
struct llm_tokenizer;

/* Load PATH: a model directory (reads tokenizer.json and, when present,
 * tokenizer_config.json for bos/eos and add_bos_token/add_eos_token) or a
 * tokenizer.json file (tokenizer_config.json next to it is used too).
 * *out is owned by the caller (llm_tokenizer_free).  Errors: LLM_E_IO,
 * LLM_E_FORMAT, LLM_E_UNSUPPORTED (e.g. a WordPiece/Unigram model),
 * LLM_E_NOMEM. */
int llm_tokenizer_open(const char *path, struct llm_tokenizer **out, struct diag *d);
void llm_tokenizer_free(struct llm_tokenizer *tok);

/* Encode text[0..len).  add_special adds the BOS/EOS/... that the
 * post-processor (or tokenizer_config.json) asks for.  *ids is a fresh
 * array (free() it; non-NULL even when *n_ids is 0).  Errors: LLM_E_NOMEM,
 * LLM_E_INVALID, LLM_E_LIMIT (regex engine limits). */
int llm_tokenizer_encode(const struct llm_tokenizer *tok, const char *text, size_t len,
			 bool add_special, int32_t **ids, size_t *n_ids, struct diag *d);

/* Decode ids into a fresh NUL-terminated string (*text, free() it; *len
 * excludes the NUL; len may be NULL).  skip_special drops special tokens.
 * Errors: LLM_E_INVALID for an id outside [0, n_vocab), LLM_E_NOMEM. */
int llm_tokenizer_decode(const struct llm_tokenizer *tok, const int32_t *ids, size_t n,
			 bool skip_special, char **text, size_t *len, struct diag *d);

/* Number of ids (1 + the largest id of the vocabulary and added tokens). */
int32_t llm_tokenizer_n_vocab(const struct llm_tokenizer *tok);
/* BOS / EOS ids (tokenizer_config.json, else the post-processor's leading
 * special token for BOS), or -1 when there is none. */
int32_t llm_tokenizer_bos(const struct llm_tokenizer *tok);
int32_t llm_tokenizer_eos(const struct llm_tokenizer *tok);
/* The raw vocabulary string of id ("Ġthe", "▁the", "<|eot_id|>"), NUL-
 * terminated, owned by the tokenizer; *len (may be NULL) gets its length.
 * NULL for an id outside the vocabulary. */
const char *llm_tokenizer_piece(const struct llm_tokenizer *tok, int32_t id, size_t *len);
/* true for added tokens marked special (skipped by skip_special). */
bool llm_tokenizer_is_special(const struct llm_tokenizer *tok, int32_t id);
/* Id of the token whose piece is exactly s (added tokens first), or -1. */
int32_t llm_tokenizer_token_id(const struct llm_tokenizer *tok, const char *s);

/* Streaming decoder for generation: push ids one at a time and get the new
 * text out, never a partial UTF-8 sequence (bytes of an unfinished
 * character are held back; bytes that can never form one come out as
 * U+FFFD).  The concatenated output equals llm_tokenizer_decode of the same
 * ids (for valid UTF-8 output); SentencePiece's leading-space strip applies
 * only at the start of the stream (after new/reset).  One detok per
 * sequence; not thread-safe; the tokenizer must outlive it.  Buffers are
 * sized at creation, so pushing normally allocates nothing. */
struct llm_detok;
int llm_detok_new(const struct llm_tokenizer *tok, bool skip_special,
		  struct llm_detok **out, struct diag *d);
/* text, len: the new bytes (maybe none), valid until the next call on dt.
 * Errors: LLM_E_INVALID (id out of range), LLM_E_NOMEM. */
int llm_detok_push(struct llm_detok *dt, int32_t id, const char **text, size_t *len,
		   struct diag *d);
/* End of sequence: emits held-back bytes (as U+FFFD). */
int llm_detok_flush(struct llm_detok *dt, const char **text, size_t *len);
/* Start a new sequence (drops held-back bytes). */
void llm_detok_reset(struct llm_detok *dt);
void llm_detok_free(struct llm_detok *dt);

/* ==== Chat templates (inference/jinja*.c, inference/chat_template.c) ===== */
/* A sandboxed Jinja2 interpreter configured like transformers'
 * apply_chat_template (trim_blocks, lstrip_blocks, loopcontrols, tojson
 * without ASCII escaping, raise_exception, strftime_now); renders match
 * transformers byte for byte.  Rendering is bounded: loop iterations,
 * macro recursion, memory and output size are capped (LLM_E_LIMIT).
 *
 * Errors: LLM_E_TEMPLATE (syntax or runtime error; the diag says
 * "NAME:LINE:COL: message"), LLM_E_RAISED (the template called
 * raise_exception(msg); the diag holds exactly msg), LLM_E_LIMIT,
 * LLM_E_NOMEM, LLM_E_INVALID (context is not a JSON object). */
struct llm_template;

/* Compile SRC[0..len) (UTF-8).  NAME is used in messages (NULL:
 * "<template>").  The template is immutable afterwards: several threads
 * may render it at once.  Free with llm_template_free. */
int llm_template_compile(const char *src, size_t len, const char *name,
			 struct llm_template **out, struct diag *d);
void llm_template_free(struct llm_template *t);

/* Render with every key of CONTEXT_JSON (a JSON object, e.g.
 * {"messages": [...], "add_generation_prompt": true, "bos_token": "<s>"})
 * as a template variable.  On success *out is a fresh NUL-terminated
 * string (free() it) and *out_len (may be NULL) its length; on failure
 * *out is NULL. */
int llm_template_render(const struct llm_template *t, const char *context_json,
			char **out, size_t *out_len, struct diag *d);

/* The chat template of a model directory (or of a tokenizer_config.json /
 * chat_template.json / *.jinja file): chat_template.jinja, else
 * chat_template.json's "chat_template", else tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template} from which
 * "default" is taken).  bos/eos come from tokenizer_config.json's
 * bos_token/eos_token (strings or {"content": ...}); NULL when absent.
 * All outputs are fresh strings (free() them); bos/eos may be NULL
 * pointers when not wanted.  Errors: LLM_E_IO, LLM_E_FORMAT (no template,
 * malformed JSON), LLM_E_NOMEM. */
int llm_chat_template_load(const char *path, char **src, char **bos,
			   char **eos, struct diag *d);
/* llm_chat_template_load, then llm_template_compile of the source (named
 * "chat_template"): *out the compiled template (llm_template_free), *bos
 * and *eos as llm_chat_template_load (NULL pointers when not wanted).  On
 * failure nothing is left allocated.  Errors: those of the two calls —
 * LLM_E_IO / LLM_E_FORMAT when there is no usable template source,
 * LLM_E_TEMPLATE when it does not compile, LLM_E_NOMEM. */
int llm_chat_template_open(const char *path, struct llm_template **out,
			   char **bos, char **eos, struct diag *d);

/* One chat message for llm_chat_render. */
struct llm_chat_msg {
	const char *role;    /* "system", "user", "assistant", "tool" */
	const char *content; /* UTF-8 */
};

/* Render MSGS with transformers' variables: messages, tools (none),
 * documents (none), add_generation_prompt, bos_token/eos_token (omitted
 * when NULL) and the keys of EXTRA_JSON (a JSON object or NULL, e.g.
 * {"enable_thinking": false}).  Output as for llm_template_render. */
int llm_chat_render(const struct llm_template *t, const struct llm_chat_msg *msgs,
		    size_t n_msgs, bool add_generation_prompt, const char *bos,
		    const char *eos, const char *extra_json, char **out,
		    size_t *out_len, struct diag *d);

/* ==== Models and the forward pass (inference/model*.c, forward*.c) ====== */
/* A model is a Hugging Face model directory (config.json + safetensors)
 * loaded onto a compute backend: every weight validated (name, shape,
 * dtype) and uploaded, f32 weights as f32, bf16/f16 kept half (converted
 * inside matmul).  Architectures: LlamaForCausalLM (incl. llama3 RoPE
 * scaling), MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
 * MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM and the
 * text part of Qwen2_5_VLForConditionalGeneration.
 *
 * A context is one evaluation state over a model: a paged KV cache (pages
 * of 256 tokens) and activation buffers, all sized by llm_context_new so
 * that evaluating tokens allocates nothing.
 *
 * Thread-safety: a model is read-only after llm_model_open, but its
 * backend executes one op stream: contexts of one model must not evaluate
 * concurrently (the engine's worker thread serialises them).  A context is
 * used by one thread at a time. */

struct llm_model;
struct llm_context;

enum llm_backend {
	LLM_BACKEND_AUTO = 0, /* CUDA when available, else CPU */
	LLM_BACKEND_CPU,
	LLM_BACKEND_CUDA,
};

/* Element type of the KV cache of a model's contexts. */
enum llm_kv_type {
	LLM_KV_AUTO = 0, /* f16 on CUDA (half the bytes, the precision of
			  * transformers' own bf16/f16 cache or better),
			  * f32 on the CPU backend (the reference) */
	LLM_KV_F32,
	LLM_KV_F16,
	LLM_KV_QUANT,    /* kv_k_bits-bit keys, kv_v_bits-bit values (2..8
			  * each): groups of 32 values Hadamard-rotated with
			  * an f16 scale, bits + 0.5 bits a value (gpu.h,
			  * struct gpu_kv_pool; ExLlamaV3's quantized cache) */
};

struct llm_model_params {
	enum llm_backend backend;
	int n_threads;            /* CPU backend threads; <= 0: all cores */
	enum llm_kv_type kv_type; /* KV cache of the model's contexts */
	int kv_k_bits, kv_v_bits; /* LLM_KV_QUANT only: 2..8 each */
	size_t max_batch;         /* most rows one forward pass computes: the
				   * prefill chunk of llm_context_eval and the
				   * batch ceiling of every context; 0 = auto
				   * (2048 on CUDA, where larger GEMMs fill the
				   * tensor cores; 512 on the CPU); at most
				   * LLM_MAX_BATCH_LIMIT */
};

/* Largest max_batch a model accepts. */
#define LLM_MAX_BATCH_LIMIT 4096

/* The KV cache type of p from "auto", "f32", "f16", "qN" (N-bit keys and
 * values, N 2..8; "16" is f16) or "K,V" (each a bit count 2..8 or 16,
 * "q" allowed before it: "q8,q4", "8,4"; 16 twice is f16, 16 with a
 * quantized half is refused): sets p->kv_type and, for LLM_KV_QUANT,
 * kv_k_bits and kv_v_bits.  false (p unchanged) for anything else. */
bool llm_kv_type_parse(const char *s, struct llm_model_params *p);

/* Defaults: LLM_BACKEND_AUTO, all cores, LLM_KV_AUTO, max_batch 0 (auto). */
struct llm_model_params llm_model_default_params(void);

/* Load the model in directory DIR.  params may be NULL (defaults).  On
 * success *out owns the backend and every weight; free with
 * llm_model_free after every context made from it.
 * Errors: LLM_E_IO (missing files), LLM_E_FORMAT (a tensor missing or of
 * the wrong shape: the message names it and both shapes),
 * LLM_E_UNSUPPORTED (architecture, with the list of supported ones; tensor
 * dtype; RoPE type), LLM_E_BACKEND (no such backend / device error),
 * LLM_E_NOMEM. */
int llm_model_open(const char *dir, const struct llm_model_params *params,
		   struct llm_model **out, struct diag *d);
/* Release every byte the model took, backend included.  NULL is a no-op. */
void llm_model_free(struct llm_model *m);

/* A random-weight model of a real model's shapes, built in memory on the
 * backend (inference/synthetic.c), for measuring speed without weights.
 * SPEC is "synthetic:NAME" (the prefix is optional), NAME one of
 * llama3-8b, llama3-1b, llama3-3b, llama3-70b, llama2-7b, mistral-7b,
 * qwen2.5-0.5b, qwen2.5-7b, qwen3-8b, mixtral-8x7b, qwen3-30b-a3b (and
 * the test-only tiny-llama, tiny-qwen2, tiny-qwen3, tiny-mixtral): bf16
 * weights, small uniform random values (deterministic), norms 1.  With
 * "@exl3:BITS" (1..8, e.g. synthetic:llama3-8b@exl3:4.0,
 * synthetic:mixtral-8x7b@exl3:3.0) the decoder linears — in MoE models
 * every routed expert's gate/up/down as well — are random EXL3 trellises
 * averaging BITS bits, lm_head at 6; embeddings, norms and MoE routers
 * stay bf16.  Ownership as llm_model_open.  Errors: LLM_E_INVALID
 * (unknown name: the message lists the known ones; bad suffix),
 * LLM_E_NOMEM (also: the weights would not fit the host's available
 * memory on the CPU backend), LLM_E_BACKEND (allocation on the device
 * failed: too big for it). */
int llm_model_new_synthetic(const char *spec, const struct llm_model_params *p,
			    struct llm_model **out, struct diag *d);

int64_t llm_model_n_vocab(const struct llm_model *m);
int64_t llm_model_n_embd(const struct llm_model *m);
int64_t llm_model_n_layer(const struct llm_model *m);
/* max_position_embeddings from config.json */
int64_t llm_model_n_ctx_train(const struct llm_model *m);
/* "LlamaForCausalLM", ...; owned by the model */
const char *llm_model_arch(const struct llm_model *m);
/* Weight elements (a tied embedding counted once) and their bytes on the
 * backend. */
uint64_t llm_model_n_params(const struct llm_model *m);
uint64_t llm_model_bytes(const struct llm_model *m);
/* Backend description ("cpu, 8 threads"); owned by the model. */
const char *llm_model_backend(const struct llm_model *m);
/* BOS id (-1 if none) and whether ID is one of the model's EOS ids. */
int32_t llm_model_bos(const struct llm_model *m);
/* The image placeholder token of a model with a vision tower, else -1. */
int32_t llm_model_image_token(const struct llm_model *m);
/* Whether M runs on a GPU (its backend is not the CPU). */
bool llm_model_on_gpu(const struct llm_model *m);
bool llm_model_is_eos(const struct llm_model *m, int32_t id);

/* ---- EXL3 conversion (inference/convert.c) -------------------------------
 * `tern convert`: quantize a bf16/f16/f32 Hugging Face model to EXL3
 * (docs/exl3-format.md §4), layer by layer on calibration text, resumable
 * from its work directory. */

/* What llm_convert reports after each quantized linear. */
struct llm_convert_progress {
	size_t step, n_steps;    /* linears done (this one included), of all */
	const char *what;        /* "layer 3 mlp.down_proj (4 bits, error
				  * 0.0671)"; valid during the call */
	int bits;
	double rel_err;          /* relative RMS error of the rotated weight */
	double elapsed_s;        /* since this run began */
	double eta_s;            /* estimated seconds left; < 0: unknown */
	size_t bad_rows;         /* calibration row captures dropped so far
				  * for holding inf or NaN */
};

struct llm_convert_params {
	const char *in_dir;      /* source model directory */
	const char *out_dir;     /* output directory (created) */
	const char *work_dir;    /* NULL: OUT/convert-work */
	const char *cal_file;    /* calibration text; NULL: random token ids
				  * only (models without a tokenizer) */
	double bits;             /* target average bits per weight, 1..8 */
	int head_bits;           /* lm_head: 1..8, or 16 to keep it as is */
	const char *codebook;    /* "mul1" (default), "mcg" or "3inst" */
	size_t cal_rows, cal_cols; /* calibration rows x tokens per row */
	uint64_t seed;           /* of the random sign vectors and rows */
	enum llm_backend backend; /* for the calibration forward passes */
	int n_threads;           /* CPU threads (<= 0: all cores) */
	bool resume;             /* continue the job in the work directory */
	bool keep_work;          /* keep the work directory after success */
	int max_layers;          /* > 0: stop (LLM_E_CANCELLED) after this many
				  * layers, as an interruption would (tests) */
	void (*progress)(void *user, const struct llm_convert_progress *p);
	void *user;              /* for progress */
};

/* Defaults: 4.0 bits, head 6, mul1, 64 rows of 512 tokens, seed 1, the
 * CPU backend; the directories and the calibration file unset. */
struct llm_convert_params llm_convert_default_params(void);

/* Convert P->in_dir into P->out_dir (inference/convert.c's header has the
 * pipeline).  Progress goes to P->progress on the calling thread.  The
 * output is a model directory llm_model_open loads (and ExLlamaV3's
 * format).  Errors: LLM_E_INVALID (bad parameters; an unfinished job in the
 * work directory without resume, or with other settings), LLM_E_IO,
 * LLM_E_FORMAT, LLM_E_UNSUPPORTED (already quantized models, other tensor
 * layouts), LLM_E_NOMEM, LLM_E_BACKEND, LLM_E_CANCELLED (max_layers
 * reached: the work directory can be resumed).  On failure the work
 * directory keeps every finished layer. */
int llm_convert(const struct llm_convert_params *p, struct diag *d);

/* Which logits llm_context_eval returns. */
enum llm_logits {
	LLM_LOGITS_NONE = 0, /* none (prompt prefill whose logits are unused) */
	LLM_LOGITS_LAST,     /* the last row: [n_vocab] */
	LLM_LOGITS_ALL,      /* every row: [n, n_vocab] */
};

/* New context of N_CTX positions (0: the model's n_ctx_train) over MODEL,
 * which must outlive it.  Errors: LLM_E_INVALID (n_ctx), LLM_E_NOMEM,
 * LLM_E_BACKEND. */
int llm_context_new(struct llm_model *model, size_t n_ctx,
		    struct llm_context **out, struct diag *d);
/* NULL is a no-op. */
void llm_context_free(struct llm_context *c);

/* Append tokens IDS[0..n) at the current position (one prefill; long
 * inputs run in chunks internally) and write logits as WHICH says into
 * LOGITS (n x n_vocab floats for LLM_LOGITS_ALL, n_vocab for LAST; may be
 * NULL for NONE).  Errors: LLM_E_INVALID (an id outside the vocabulary;
 * nothing is evaluated), LLM_E_NOSPACE (n_past + n > n_ctx; nothing is
 * evaluated), LLM_E_BACKEND (the context's cache is then reset to the
 * position before the call). */
int llm_context_eval(struct llm_context *c, const int32_t *ids, size_t n,
		     enum llm_logits which, float *logits, struct diag *d);
/* Positions evaluated so far. */
size_t llm_context_n_past(const struct llm_context *c);
size_t llm_context_n_ctx(const struct llm_context *c);
/* Forget everything (n_past = 0). */
void llm_context_reset(struct llm_context *c);
/* Roll back to N positions (N <= n_past; used by regenerate and
 * speculative decoding).  LLM_E_INVALID when N > n_past. */
int llm_context_truncate(struct llm_context *c, size_t n, struct diag *d);

/* ==== Vision (inference/vision.c) ======================================== */
/* The vision tower of a Qwen2.5-VL model directory, on the host in
 * float32 (the reference), or on a model's backend (llm_vision_use_backend:
 * the GPU): image patches as the image processor writes them
 * (pixel_values) in, one embedding per merged token out, in raster order —
 * what the language model takes in place of the image pad tokens.
 * Weights are converted to float32 at open (several GB for a 7B model's
 * tower).  A loaded tower is immutable once set up: on the host, encode
 * may run on several threads at once; on a backend, as that backend's
 * other calls (one thread at a time). */
struct llm_vision;

/* Load DIR's vision_config and visual.* tensors.  *out is owned by the
 * caller (llm_vision_free).  Errors: LLM_E_IO, LLM_E_FORMAT (a tensor
 * missing or of the wrong shape: named), LLM_E_UNSUPPORTED (no vision
 * tower; a head size not a multiple of 4), LLM_E_NOMEM. */
int llm_vision_open(const char *dir, struct llm_vision **out, struct diag *d);
/* NULL is a no-op. */
void llm_vision_free(struct llm_vision *v);
/* Run V's encodes on M's backend from now on: its weights are copied
 * there (float32, about 4 bytes a parameter: 2.5 GB for Qwen2.5-VL-7B's
 * tower) and llm_vision_encode computes with the backend's ops, attention
 * window by window through its paged attention (the merger's GELU on the
 * host).  On the CPU backend this works too (with its threads), but the
 * weights are then in host memory twice: the apps call it when
 * llm_model_on_gpu.  V must be freed before M.  Errors: LLM_E_NOMEM (host
 * or device memory: V keeps the host path), LLM_E_BACKEND. */
int llm_vision_use_backend(struct llm_vision *v, struct llm_model *m,
			   struct diag *d);
/* Floats in one patch row (channels x temporal patch x patch x patch),
 * the width of an output embedding, and the merge size (a merged token is
 * merge x merge patches). */
size_t llm_vision_patch_len(const struct llm_vision *v);
size_t llm_vision_n_embd(const struct llm_vision *v);
size_t llm_vision_merge(const struct llm_vision *v);
/* Merged tokens of a grid (frames, patch rows, patch columns) into *n;
 * LLM_E_INVALID when a side is not a positive multiple of the merge size. */
int llm_vision_n_tokens(const struct llm_vision *v, const int32_t grid[3], size_t *n);
/* Encode N patch rows PIXELS [n, patch_len] of grid GRID (n = frames x
 * rows x columns, in the processor's order: the merge x merge patches of
 * each merged token together) into OUT [n / merge^2, n_embd].  Allocates
 * its scratch per call (on the backend too).  Errors: LLM_E_INVALID (n or
 * grid inconsistent), LLM_E_NOMEM, LLM_E_BACKEND. */
int llm_vision_encode(const struct llm_vision *v, const float *pixels, size_t n,
		      const int32_t grid[3], float *out, struct diag *d);
/* The image processor's pixel bounds (preprocessor_config.json:
 * min_pixels / max_pixels or size.shortest_edge / longest_edge; else 3136
 * and 1003520). */
void llm_vision_pixel_bounds(const struct llm_vision *v, size_t *min_pixels,
			     size_t *max_pixels);
/* Whether the image processor takes an image of W x H pixels at all
 * (each side at least 1, sides within 200:1): 0, or LLM_E_INVALID with
 * "vision: an image of W x H pixels (...)" in d.  Needs no model, so an
 * image can be checked when it is picked, before any is encoded; the
 * same limit llm_vision_fit and llm_vision_preprocess apply. */
int llm_vision_check_size(int w, int h, struct diag *d);
/* smart_resize: the size (*ow x *oh, multiples of patch x merge) an image
 * of W x H pixels is resized to, its area brought into [min_pixels,
 * max_pixels].  LLM_E_INVALID for an empty image or sides beyond 200:1
 * (llm_vision_check_size). */
int llm_vision_fit(const struct llm_vision *v, int w, int h, size_t min_pixels,
		   size_t max_pixels, int *ow, int *oh);
/* The image processor on one 8-bit RGB image RGB [h, w, 3]: resized to
 * llm_vision_fit's size as PIL's bicubic filter does it, scaled to [0, 1],
 * normalised with the processor's mean and std, cut into patch rows.
 * MIN_PIXELS / MAX_PIXELS 0: the processor's.  *pixels (fresh, free() it)
 * gets *n rows of llm_vision_patch_len floats, grid the (1, rows,
 * columns) of patches.  Errors: LLM_E_INVALID (no image, bad size),
 * LLM_E_NOMEM. */
int llm_vision_preprocess(const struct llm_vision *v, const uint8_t *rgb, int w,
			  int h, size_t min_pixels, size_t max_pixels, float **pixels,
			  size_t *n, int32_t grid[3], struct diag *d);
/* MRoPE positions of a prompt IDS[0..n) (get_rope_index of transformers'
 * Qwen2.5-VL, images only): text tokens count up on all three axes; the
 * run of image tokens of image k (grids[k] in patches) gets (t, row,
 * column) = (at, at + r, at + c) over its merged grid, at being the next
 * text position, and the text after it starts one past the image's
 * largest.  MPOS [3][n] (t, h, w); *next: the position of a token after
 * the prompt.  Errors: LLM_E_INVALID (image tokens and grids disagree). */
int llm_vision_rope_index(const struct llm_vision *v, const int32_t *ids, size_t n,
			  int32_t image_token, const int32_t (*grids)[3], size_t n_images,
			  int32_t *mpos, int64_t *next, struct diag *d);
/* The text the Qwen2.5-VL chat templates write for an image: tokenized,
 * it holds one image token, which llm_vision_expand_prompt widens. */
#define LLM_VISION_IMAGE_TEXT "<|vision_start|><|image_pad|><|vision_end|>"
/* A prompt IDS[0..n) whose k-th image token stands for image k (grid
 * grids[k]) made ready for a job: each such token repeated to its image's
 * merged tokens into *out (*n_out of them), their MRoPE positions into
 * *mpos ([3][*n_out], llm_vision_rope_index's) and *next.  *out and *mpos
 * are fresh (free() them).  Errors: LLM_E_INVALID (not exactly n_images
 * image tokens, or a bad grid), LLM_E_NOMEM. */
int llm_vision_expand_prompt(const struct llm_vision *v, const int32_t *ids, size_t n,
			     int32_t image_token, const int32_t (*grids)[3],
			     size_t n_images, int32_t **out, size_t *n_out,
			     int32_t **mpos, int64_t *next, struct diag *d);

/* ==== Benchmark (inference/bench.c) ===================================== */
/* What `tern bench` measures over a model (docs/PERFORMANCE.md).  Runs on
 * the calling thread; prints nothing. */

struct llm_bench_params {
	size_t n_prompt;  /* prefill: random ids in one sequence (0: skip) */
	size_t n_gen;     /* decode: timed batched steps (0: skip) */
	size_t n_batch;   /* decode: sequences stepped together (>= 1) */
	size_t n_ctx;     /* decode: the timed steps cover positions
			   * [n_ctx - n_gen, n_ctx) of every sequence; earlier
			   * positions hold zeroed K/V (not computed); 0:
			   * n_prompt + n_gen */
	int n_reps;       /* prefill repetitions (median reported; >= 1) */
	int n_warmup;     /* untimed decode steps first (and one untimed
			   * prefill chunk) */
	bool measure_bw;  /* time a large device copy for the roofline */
};

/* Defaults: prompt 512, gen 128, batch 1, ctx 0, 3 reps, 3 warm-up steps,
 * measure_bw true. */
struct llm_bench_params llm_bench_default_params(void);

struct llm_bench_result {
	/* prefill (one sequence, chunks of the context's batch size) */
	double prefill_s;        /* median wall time of the whole prompt */
	double prefill_tok_s;    /* n_prompt / prefill_s */
	double prefill_flops;    /* model FLOPs of the prompt: every layer's
				  * linears (2 k n a row; MoE: router, the
				  * routed experts, shared expert), causal
				  * attention (4 head_dim per query head, row
				  * and visible key, within a sliding window)
				  * and the lm_head of the last row; the
				  * embedding is a lookup (none) */
	double prefill_flop_s;   /* prefill_flops / prefill_s */
	/* decode: n_batch rows per step, logits of every row */
	double step_s;           /* median wall time of one step */
	double step_min_s, step_mean_s;
	double decode_tok_s;     /* n_batch / step_s */
	/* memory on the backend (bytes) */
	uint64_t weight_bytes;   /* llm_model_bytes */
	uint64_t kv_bytes;       /* the context's K/V pools */
	uint64_t act_bytes;      /* activations and batch buffers */
	uint64_t mem_bytes;      /* the sum */
	/* roofline of one decode step */
	double step_weight_bytes; /* weights read (MoE: expected distinct
				   * experts n_e (1 - (1 - k/n_e)^B); the
				   * embedding: B rows) */
	double step_kv_bytes;    /* K/V read over the timed steps' mean
				  * attended length */
	double bw_bytes_s;       /* measured copy bandwidth (read + write
				  * bytes per second); 0 when not measured */
	double bw_bytes;         /* bytes moved per timed copy */
	double roofline;         /* (step bytes / step_s) / bw_bytes_s */
	char backend[96];        /* llm_model_backend */
	size_t n_ctx;
	double kv_elem_bytes;    /* bytes of one K (or V) element (a
				  * quantized cache: bits / 8 + its scale's
				  * share) */
	size_t chunk;            /* rows per forward pass (prefill chunk) */
};

/* Measure M as P says into *r.  Makes (and frees) a context of n_seq =
 * n_batch slots of max(n_ctx, n_prompt) positions; the bandwidth buffer
 * (1 GiB on a GPU, 256 MiB on the CPU, halved until it fits) is freed
 * before the model is used.  Errors: LLM_E_INVALID (n_gen > n_ctx, zero
 * batch), LLM_E_NOMEM, LLM_E_NOSPACE, LLM_E_BACKEND. */
int llm_bench_run(struct llm_model *m, const struct llm_bench_params *p,
		  struct llm_bench_result *r, struct diag *d);

/* ==== Engine and jobs (inference/engine.c) ==== */
/* The engine serves many generation jobs over one model with continuous
 * batching: jobs join and leave at any step; each llm_engine_step builds
 * ONE batch holding the next token of every decoding job plus chunks of
 * prompts still being prefilled (so a long prompt never stalls the others)
 * and runs one forward pass over it.
 *
 * The KV cache is a pool of 256-token pages (inference/kvcache.c).  Full
 * pages are keyed by a chained hash of their tokens; a job whose prompt
 * starts with the same tokens as an earlier (finished or running) job
 * reuses those pages instead of recomputing them (same system prompt,
 * regenerate, a conversation continued after an edit).  Unreferenced
 * cached pages are evicted least recently used first.  A job is admitted
 * only when the pool can hold its whole run (prompt + max_tokens), so a
 * running job never runs out of pages; a job that does not fit now waits;
 * one that can never fit is refused at submit.
 *
 * Thread-safety: an engine and its jobs are driven by one thread (the
 * "engine thread": submit, step, has_work, job_free, engine_free and the
 * stats getters).  Only llm_job_cancel may be called from any thread at
 * any time before llm_job_free.  Callbacks run on the engine thread, inside
 * llm_engine_step. */

struct llm_engine;
struct llm_job;
struct llm_sampler_params; /* section "Sampling" */

struct llm_engine_params {
	size_t n_ctx;         /* positions per job (prompt + output); 0: the
			       * model's max_position_embeddings */
	size_t n_slots;       /* jobs running at once (sequence slots); >= 1 */
	size_t n_pages;       /* KV pool pages of 256 tokens; 0: enough for
			       * every slot to fill n_ctx */
	size_t prefill_chunk; /* most prompt tokens computed per step (over
			       * all jobs); clamped to the batch size (512) */
	/* Speculative decoding: each step a decoding job may feed up to
	 * n_draft guessed tokens after its last one, and keeps those the
	 * target samples itself (see llm_engine_new).  The guesses come from
	 * the draft model when there is one, else from n-gram lookup in the
	 * job's own tokens when ngram is set; 0: LLM_SPEC_DEFAULT_DRAFT with
	 * either, none without. */
	size_t n_draft;
	bool ngram;
	/* Adaptive proposals: each job starts at n_draft proposals a step;
	 * after a step that kept them all it takes LLM_SPEC_ADAPT_UP more
	 * (up to n_draft), after one that did not, one fewer (down to 1);
	 * after LLM_SPEC_ADAPT_MISSES steps in a row that kept none it makes
	 * no proposal for LLM_SPEC_ADAPT_PAUSE steps, then tries one again.
	 * The tokens are the same either way; only the work differs. */
	bool draft_adaptive;
};

/* Draft tokens per step when n_draft is 0 and a drafter is on; at most
 * LLM_SPEC_MAX_DRAFT. */
#define LLM_SPEC_DEFAULT_DRAFT 4
#define LLM_SPEC_MAX_DRAFT 16
#define LLM_SPEC_ADAPT_UP 2
#define LLM_SPEC_ADAPT_MISSES 4
#define LLM_SPEC_ADAPT_PAUSE 16

/* Defaults: n_ctx 0 (the model's), 4 slots, n_pages 0 (auto), chunk 512,
 * no speculative decoding. */
struct llm_engine_params llm_engine_default_params(void);

/* Make an engine over MODEL (which must outlive it).  DRAFT (may be NULL;
 * must outlive the engine) turns on speculative decoding with a smaller
 * model of the same vocabulary: each step it proposes n_draft tokens by
 * argmax (from its own KV cache, kept in step with each job), the target
 * scores them all in the job's rows of one forward pass, and the job takes
 * the target's own samples in order while they equal the proposals, plus
 * the first that does not.  Every generated token is thus drawn from the
 * target's distribution by the job's sampler, one draw per token in order:
 * the output is the one decoding without a draft gives (the same ids for
 * greedy and for a seeded sampler), only in fewer target passes.  TOK (may
 * be NULL; then jobs get token ids but no text, and stop/banned strings are
 * refused) is borrowed and must outlive the engine.  params NULL: defaults.
 * Allocates the KV pool and every buffer a step needs (the draft's too).
 * Errors: LLM_E_INVALID (params; a draft whose vocabulary size differs
 * from the model's), LLM_E_NOMEM, LLM_E_BACKEND. */
int llm_engine_new(struct llm_model *model, struct llm_model *draft,
		   const struct llm_engine_params *params,
		   const struct llm_tokenizer *tok, struct llm_engine **out,
		   struct diag *d);

/* Free the engine, its pool and its cached pages.  Unfinished jobs are
 * detached without events (their handles stay valid for llm_job_free,
 * which the caller still owes).  NULL is a no-op. */
void llm_engine_free(struct llm_engine *e);

/* Why a job ended. */
enum llm_finish_reason {
	LLM_FINISH_NONE = 0,   /* still running */
	LLM_FINISH_EOS,        /* the model produced an end-of-sequence id */
	LLM_FINISH_STOP,       /* a stop string (not emitted) */
	LLM_FINISH_MAX_TOKENS, /* max_tokens generated */
	LLM_FINISH_CONTEXT,    /* n_ctx positions filled (max_tokens <= 0) */
	LLM_FINISH_CANCELLED,  /* llm_job_cancel */
	LLM_FINISH_ERROR,      /* see the event's error / llm_job_error */
	LLM_FINISH_LOOP,       /* the output repeats itself (stop_on_loop) */
};

/* "eos", "stop", "max_tokens", "context", "cancelled", "error", "loop",
 * "none". */
const char *llm_finish_reason_name(enum llm_finish_reason r);

struct llm_job_stats {
	size_t n_prompt;    /* prompt tokens */
	size_t n_reused;    /* prompt tokens whose KV came from cached pages */
	size_t n_computed;  /* positions run through the model for this job
			     * (prompt minus reused, plus each decode step's
			     * rows: one, and the proposals it verified) */
	size_t n_generated; /* tokens generated (kept; banned back-offs undone) */
	double t_queued;    /* seconds from submit to admission */
	double t_prefill;   /* seconds from admission to the first token */
	double t_decode;    /* seconds from the first token to the end */
	double prefill_tps; /* computed prompt tokens / t_prefill */
	double decode_tps;  /* (n_generated - 1) / t_decode (0 when undefined) */
	size_t n_drafted;   /* speculative decoding: tokens proposed */
	size_t n_accepted;  /* of which the target kept (acceptance =
			     * n_accepted / n_drafted) */
	size_t n_verify;    /* decode steps that fed proposals */
};

enum llm_job_event_type {
	LLM_JOB_EVENT_TOKEN = 0, /* a generated token and the text now safe */
	LLM_JOB_EVENT_ROLLBACK,  /* tokens from `pos` on were withdrawn (banned
				  * string back-off); their text was never
				  * shown (the stop matcher held it) */
	LLM_JOB_EVENT_FINISH,    /* the last event of a job */
};

/* What a callback receives.  Pointers are valid only during the callback. */
struct llm_job_event {
	enum llm_job_event_type type;
	int32_t token;   /* TOKEN: the id; FINISH: the EOS id for FINISH_EOS,
			  * else -1 */
	int64_t pos;     /* TOKEN: index of the token among the generated
			  * ones; ROLLBACK: first withdrawn index */
	const char *text; /* new UTF-8 text (complete characters only; may be
			   * empty, never NULL); FINISH: held text released
			   * at the end */
	size_t text_len;
	enum llm_finish_reason finish;     /* FINISH */
	int32_t stop_index;                /* FINISH_STOP: which stop string */
	int error;                         /* FINISH_ERROR: LLM_E_* */
	const char *error_msg;             /* FINISH_ERROR: message */
	const struct llm_job_stats *stats; /* current statistics */
};

/* Called on the engine thread during llm_engine_step.  It may call
 * llm_job_cancel on any job, but must not call other engine functions. */
typedef void (*llm_job_callback)(struct llm_job *job,
				 const struct llm_job_event *ev, void *user);

struct llm_job_params {
	const int32_t *prompt; /* token ids, BOS included when wanted; copied;
				* at least one */
	size_t n_prompt;
	/* sampler settings (see "Sampling" below), borrowed during submit
	 * only; NULL: llm_sampler_default_params() */
	const struct llm_sampler_params *sampler;
	const char *const *stop_strings;   /* copied; need a tokenizer */
	size_t n_stop_strings;
	const char *const *banned_strings; /* copied; need a tokenizer */
	size_t n_banned_strings;
	bool ignore_eos;    /* do not stop at the model's EOS ids */
	int64_t max_tokens; /* tokens to generate at most; <= 0: until n_ctx */
	/* Loop stop: finish with LLM_FINISH_LOOP (held text released) as
	 * soon as the last stop_on_loop generated tokens repeat one block
	 * (llm_loop_period); 0 off, else LLM_LOOP_MIN .. LLM_LOOP_MAX. */
	int32_t stop_on_loop;
	llm_job_callback callback; /* may be NULL */
	void *user;
	/* Images (a model with a vision tower): EMBD holds one row of
	 * llm_model_n_embd floats for each prompt token that is the model's
	 * image token, in order (n_embd rows, llm_vision_encode's output);
	 * copied; NULL: none.  MPOS: the prompt's MRoPE positions [3][n_prompt]
	 * (t, h, w; llm_vision_rope_index), copied, NULL: each token's index
	 * on all three; then the generated tokens take mpos_next, +1, ... on
	 * all three.  A job with embeddings neither reuses cached pages nor
	 * leaves its own (image tokens have one id for every image). */
	const float *embd;
	size_t n_embd;
	const int32_t *mpos;
	int64_t mpos_next;
};

/* Defaults: no prompt, sampler NULL (defaults), no strings, stop at
 * EOS, max_tokens 0 (until the context is full), no callback. */
struct llm_job_params llm_job_default_params(void);

/* Queue a job; it is admitted by a later llm_engine_step when a slot and
 * enough KV pages are free.  *out is owned by the caller: free it with
 * llm_job_free after its FINISH event (or after llm_engine_free).
 * Errors (nothing queued, *out NULL): LLM_E_INVALID (empty prompt, an id
 * outside the vocabulary, strings without a tokenizer, bad sampler
 * params), LLM_E_NOSPACE (can never fit: n_prompt + max_tokens > n_ctx, or
 * more pages than the whole pool; the message gives the numbers),
 * LLM_E_NOMEM. */
int llm_job_submit(struct llm_engine *e, const struct llm_job_params *p,
		   struct llm_job **out, struct diag *d);

/* One scheduler iteration: handle cancellations, admit waiting jobs while
 * slots and pages allow (FIFO), run one forward over every running job's
 * next token plus prefill chunks, sample, match stop conditions and
 * deliver events.  Jobs that fail finish with LLM_FINISH_ERROR (their
 * event says why); the step then returns that error too (LLM_E_BACKEND,
 * LLM_E_NOMEM), and the other jobs are unaffected and continue at the next
 * step.  Returns 0 when nothing was to do. */
int llm_engine_step(struct llm_engine *e, struct diag *d);

/* true while some job is queued or running. */
bool llm_engine_has_work(const struct llm_engine *e);

/* Ask JOB to stop; safe from any thread (an atomic flag).  The job ends
 * with LLM_FINISH_CANCELLED at the next llm_engine_step (its held text is
 * released in the FINISH event); no effect on a finished job. */
void llm_job_cancel(struct llm_job *job);

/* Free a job handle.  An unfinished job is first removed from its engine
 * without events (engine thread only).  NULL is a no-op. */
void llm_job_free(struct llm_job *job);

/* Finish reason so far (LLM_FINISH_NONE while running). */
enum llm_finish_reason llm_job_finish_reason(const struct llm_job *job);
/* The generated ids so far (owned by the job, valid until the next step or
 * llm_job_free). */
const int32_t *llm_job_tokens(const struct llm_job *job, size_t *n);
void llm_job_get_stats(const struct llm_job *job, struct llm_job_stats *out);

struct llm_engine_stats {
	uint64_t n_reused;    /* prompt tokens served from cached pages */
	uint64_t n_computed;  /* positions run through the model */
	uint64_t n_steps;     /* forward passes */
	size_t n_pages;       /* pool size */
	size_t n_pages_used;  /* pages referenced by running jobs */
	size_t n_pages_cached; /* unreferenced pages kept for reuse */
	size_t n_pages_free;  /* never used or evicted */
	size_t n_running, n_waiting;
	uint64_t n_drafted, n_accepted; /* speculative decoding, all jobs */
};
void llm_engine_get_stats(const struct llm_engine *e, struct llm_engine_stats *out);

/* ==== Sampling (inference/sampler.c) ==== */
/* Turning one row of logits into a token, and deciding when generation stops.
 *
 * struct llm_sampler: a pipeline of stages over a float logits vector of
 * n_vocab entries, independent of any model.  Logit bias and banned tokens
 * always run first; then the stages listed in `order` run in that order
 * (defaults follow llama.cpp: penalties, dry, top_n_sigma, top_k, typical,
 * top_p, min_p, xtc, temperature); then a token is drawn from the softmax of
 * what is left with the sampler's seeded generator (xoshiro256**, seeded by
 * splitmix64: the same seed gives the same tokens on every platform whose
 * expf/logf agree).  Sampling allocates nothing: all scratch is sized for
 * n_vocab (and the history window) when the sampler is made.
 *
 * struct llm_stop (inference/stop.c): stop strings and banned strings over
 * the decoded text stream; holds back text that may still become one.
 *
 * Thread-safety: a sampler or a stop matcher is used by one thread at a time;
 * distinct objects are independent. */

/* Pipeline stages that `order` can list.  A stage not listed does not run,
 * except temperature, which runs last when not listed (so that temperature
 * <= 0 always means greedy). */
enum llm_sampler_stage {
	LLM_SAMPLER_STAGE_PENALTIES = 0, /* repeat / frequency / presence */
	LLM_SAMPLER_STAGE_DRY,
	LLM_SAMPLER_STAGE_TOP_N_SIGMA,
	LLM_SAMPLER_STAGE_TOP_K,
	LLM_SAMPLER_STAGE_TYPICAL,
	LLM_SAMPLER_STAGE_TOP_P,
	LLM_SAMPLER_STAGE_MIN_P,
	LLM_SAMPLER_STAGE_XTC,
	LLM_SAMPLER_STAGE_TEMPERATURE,
	LLM_SAMPLER_STAGE_COUNT
};

#define LLM_SAMPLER_MAX_STAGES 16
/* seed value meaning "pick one from the clock" (not reproducible) */
#define LLM_SAMPLER_SEED_RANDOM UINT64_MAX

struct llm_logit_bias {
	int32_t token;
	float bias; /* added to the logit; -INFINITY bans the token */
};

/* Plain data; start from llm_sampler_default_params().  Arrays are borrowed
 * only for the duration of llm_sampler_new / llm_sampler_set_params, which
 * copy them (strings included). */
struct llm_sampler_params {
	float temperature;     /* logits / T; <= 0: greedy (argmax, ties -> lowest id) */
	int32_t top_k;         /* keep the k highest logits; <= 0 off */
	float top_p;           /* nucleus: smallest prefix with mass >= p; >= 1 off */
	float min_p;           /* keep p_i >= min_p * p_max; <= 0 off */
	float typical_p;       /* locally typical mass; >= 1 off */
	float top_n_sigma;     /* keep logit >= max - n * stddev(logits); <= 0 off */
	float xtc_probability; /* chance per token that XTC acts; <= 0 off */
	float xtc_threshold;   /* XTC: tokens with p >= this are "top choices"; > 0.5 off */
	int32_t min_keep;      /* top_p, min_p, typical, xtc keep at least this many */

	/* DRY ("don't repeat yourself"): a token that would extend a repeat of
	 * length L >= allowed_length gets logit -= multiplier * base^(L - allowed). */
	float dry_multiplier;        /* 0 off */
	float dry_base;              /* < 1 off */
	int32_t dry_allowed_length;
	int32_t dry_penalty_last_n;  /* tokens looked at; -1: n_history_max; 0 off */
	const char *const *dry_sequence_breakers; /* a token whose piece contains one ends any repeat */
	size_t n_dry_sequence_breakers;

	/* penalties over the last penalty_last_n accepted tokens (count c > 0):
	 * logit = logit > 0 ? logit / repeat : logit * repeat; then
	 * logit -= c * frequency + presence. */
	float repeat_penalty;    /* 1 off */
	float frequency_penalty; /* 0 off */
	float presence_penalty;  /* 0 off */
	int32_t penalty_last_n;  /* -1: n_history_max; 0 off */

	/* mirostat v2 (0 off, 2 on; 1 is not supported).  When on, only the
	 * penalties and dry stages of `order` run, then temperature, then the
	 * mirostat truncation {i : -log2 p_i <= mu}; mu starts at 2 tau and on
	 * each accept becomes mu - eta * (-log2 p_token - tau). */
	int32_t mirostat;
	float mirostat_tau;
	float mirostat_eta;

	uint64_t seed; /* LLM_SAMPLER_SEED_RANDOM: from the clock */

	enum llm_sampler_stage order[LLM_SAMPLER_MAX_STAGES];
	int32_t n_order;

	const struct llm_logit_bias *logit_bias; /* copied */
	size_t n_logit_bias;
	const int32_t *banned_tokens; /* never sampled; copied */
	size_t n_banned_tokens;

	int32_t n_history_max; /* accepted tokens remembered (penalties, DRY); >= 1 */
};

/* The defaults listed above: temperature 0.8, top_k 40, top_p 0.95, min_p
 * 0.05, typical 1 (off), top_n_sigma -1 (off), xtc 0 / 0.1, dry 0 (off) /
 * 1.75 / 2 / -1 / {"\n", ":", "\"", "*"}, penalties 1 / 0 / 0 / 64,
 * mirostat 0 / 5 / 0.1, seed LLM_SAMPLER_SEED_RANDOM, llama.cpp's order,
 * no bias, no bans, n_history_max 4096. */
struct llm_sampler_params llm_sampler_default_params(void);

/* "penalties", "dry", "top_n_sigma", "top_k", "typical_p", "top_p", "min_p",
 * "xtc", "temperature" (llama.cpp's names); "?" for a bad value. */
const char *llm_sampler_stage_name(enum llm_sampler_stage stage);
/* Parse one of those names (also "typical", "temp"); LLM_E_INVALID if none. */
int llm_sampler_stage_parse(const char *name, enum llm_sampler_stage *out,
			    struct diag *d);

struct llm_sampler;

/* Make a sampler for logits of n_vocab entries.  Copies everything in *p.
 * Errors: LLM_E_INVALID (bad value, token id out of range), LLM_E_UNSUPPORTED
 * (mirostat 1), LLM_E_NOMEM.  *out is set only on success. */
int llm_sampler_new(const struct llm_sampler_params *p, int32_t n_vocab,
		    struct llm_sampler **out, struct diag *d);
void llm_sampler_free(struct llm_sampler *s);

/* Replace the parameters, keeping history and bans; the generator is
 * re-seeded only when the seed changes, mirostat's mu restarts (2 tau) only
 * when mirostat or tau change.  May allocate (a longer history).
 * On error the sampler keeps its old parameters. */
int llm_sampler_set_params(struct llm_sampler *s,
			   const struct llm_sampler_params *p, struct diag *d);

/* Token text for DRY's sequence breakers: pieces[i] (piece_lens[i] bytes,
 * not necessarily NUL-terminated) is the decoded text of token i, for all
 * n_vocab tokens.  Borrowed: the table (the tokenizer's) must outlive the
 * sampler or be replaced; pass NULL to forget it.  Without a table no token
 * is a breaker.  Limitation: a breaker string that only appears split over
 * two tokens is not recognised. */
void llm_sampler_set_pieces(struct llm_sampler *s, const char *const *pieces,
			    const size_t *piece_lens);

/* Record a token that became part of the sequence (sampled or prompt) for
 * penalties and DRY.  When a distribution was computed since the last
 * accept (llm_sampler_sample / llm_sampler_probs), mirostat updates mu with
 * this token's probability in it.  LLM_E_INVALID for an id out of range. */
int llm_sampler_accept(struct llm_sampler *s, int32_t token);

/* Forget the last n accepted tokens (speculative rejection, banned-string
 * back-off); mirostat's mu returns to its value before them when they are
 * still remembered.  Bans registered for positions after the new end are
 * dropped. */
void llm_sampler_rollback(struct llm_sampler *s, int32_t n);

/* Number of tokens accepted since the last reset, minus rollbacks: the
 * position the next sample is for. */
int64_t llm_sampler_n_past(const struct llm_sampler *s);

/* Ban `token` at the current position (llm_sampler_n_past) only: the next
 * samples at this position never return it, including after later
 * rollbacks to it (so a banned-string back-off cannot loop).  Errors:
 * LLM_E_INVALID, LLM_E_LIMIT (too many position bans: give up backing off). */
int llm_sampler_ban_here(struct llm_sampler *s, int32_t token, struct diag *d);

/* Clear history, position bans and mirostat state; re-seed (a fresh clock
 * seed for LLM_SAMPLER_SEED_RANDOM). */
void llm_sampler_reset(struct llm_sampler *s);

/* Run the pipeline on logits[0..n_vocab) (not modified) and draw a token.
 * Does not accept it: call llm_sampler_accept.  Returns the id, or a negative
 * LLM_E_INVALID when every token is banned. */
int32_t llm_sampler_sample(struct llm_sampler *s, const float *logits,
			   struct diag *d);

/* Run the pipeline and write the final distribution over the whole vocab
 * into probs[0..n_vocab) (zeros for removed tokens) without drawing.  Uses
 * the generator for XTC's coin exactly as sampling would.  For speculative
 * decoding's rejection rule.  0 or LLM_E_INVALID as above. */
int llm_sampler_probs(struct llm_sampler *s, const float *logits,
		      float *probs, struct diag *d);

/* Probability of token in the last computed distribution (0 if removed or
 * none computed). */
float llm_sampler_token_prob(const struct llm_sampler *s, int32_t token);

/* Draw from an arbitrary non-negative weight vector w[0..n) with the
 * sampler's generator (speculative residual sampling).  Returns the index,
 * or LLM_E_INVALID when n <= 0 or all weights are zero. */
int32_t llm_sampler_draw(struct llm_sampler *s, const float *w, int32_t n);

/* A uniform double in [0, 1) from the sampler's generator. */
double llm_sampler_uniform(struct llm_sampler *s);

/* ---- stop strings and banned strings (inference/stop.c) ---- */

/* Loop stop spans (llm_job_params.stop_on_loop) */
#define LLM_LOOP_MIN 2
#define LLM_LOOP_MAX 1024

/* The smallest period p in 1 .. span / 2 of the last span ids of
 * ids[0..n): ids[i] == ids[i - p] for every i in [n - span + p, n), so
 * that they are one block of p ids repeated (at least twice; the last
 * repeat may be cut short).  0 when there is none, when n < span or when
 * span < 2.  At most 3 span^2 / 8 comparisons, usually about span / 2 (a
 * period fails at its first mismatch, from the end).  Allocates
 * nothing. */
size_t llm_loop_period(const int32_t *ids, size_t n, size_t span);

/* What one llm_stop_feed call found. */
enum llm_stop_status {
	LLM_STOP_CONTINUE = 0, /* keep generating; emit `emit` */
	LLM_STOP_HIT,          /* a stop string: emit `emit` (text before it), then stop */
	LLM_STOP_BANNED,       /* a banned string would appear: roll back */
	LLM_STOP_EOS,          /* an end-of-sequence id: emit the held text (not the EOS's), stop */
	LLM_STOP_MAX_TOKENS,   /* the max_tokens-th token: emit everything held, stop */
};

struct llm_stop_result {
	enum llm_stop_status status;
	const char *emit; /* text safe to show now; valid until the next call */
	size_t emit_len;
	int32_t which;    /* HIT / BANNED: index into stop_strings / banned_strings */
	/* BANNED: discard every token from position rollback_pos on (the stop
	 * matcher already did), roll the KV cache and sampler back to it
	 * (llm_sampler_rollback(n_past - rollback_pos)) and ban ban_token there
	 * (llm_sampler_ban_here). */
	int64_t rollback_pos;
	int32_t ban_token;
};

struct llm_stop_params {
	const char *const *stop_strings; /* matched across token boundaries, never emitted */
	size_t n_stop_strings;
	const char *const *banned_strings; /* never emitted; generation backs off */
	size_t n_banned_strings;
	const int32_t *eos_tokens; /* generation_config's eos_token_id(s) */
	size_t n_eos_tokens;
	int64_t max_tokens; /* tokens generated (positions) before stopping; <= 0: no limit */
};

struct llm_stop;

/* Make a matcher; copies the strings and ids.  Empty strings are ignored.
 * LLM_E_INVALID (a string that is not valid UTF-8), LLM_E_NOMEM. */
int llm_stop_new(const struct llm_stop_params *p, struct llm_stop **out,
		 struct diag *d);
void llm_stop_free(struct llm_stop *st);

/* Start a new generation (position 0, nothing held). */
void llm_stop_reset(struct llm_stop *st);

/* Feed the decoded text of the next generated token (piece may be any bytes,
 * including an incomplete UTF-8 sequence or nothing).  Fills *res.  Text is
 * held back while it may still be the start of a stop or banned string (for
 * banned strings from the start of the token where it would begin, so that
 * a back-off never takes back emitted text) or ends in an incomplete UTF-8
 * sequence.  Checked in this order: EOS id, stop / banned strings (the
 * leftmost match wins; a stop string wins a tie), max_tokens.  After a
 * final status (HIT, EOS, MAX_TOKENS) further feeds repeat it with no text.
 * Allocates only when held text outgrows its buffer: LLM_E_NOMEM. */
int llm_stop_feed(struct llm_stop *st, int32_t token, const char *piece,
		  size_t len, struct llm_stop_result *res, struct diag *d);

/* Generation ended for a reason the matcher did not see (cancel, context
 * full): release all held text (an incomplete UTF-8 tail becomes U+FFFD).
 * res->status is CONTINUE, or the final status already reported (then no
 * text). */
void llm_stop_flush(struct llm_stop *st, struct llm_stop_result *res);

/* Position of the next token to feed (tokens fed minus rollbacks). */
int64_t llm_stop_n_past(const struct llm_stop *st);

#ifdef __cplusplus
}
#endif
#endif
