/* app/config.h — tern's configuration ($XDG_CONFIG_HOME/tern/config.yaml).
 *
 * Schema (every key optional; unknown keys and bad values are errors with
 * file:line:col, never silently ignored):
 *
 *   model: NAME             model (from `models`) loaded at start
 *   preset: NAME            sampler preset used at start
 *   theme: NAME             theme name (builtin "default" or themes/NAME.yaml)
 *   backend: auto|cpu|cuda
 *   threads: N              CPU threads (0: all cores)
 *   models:                 the model registry
 *     - name: NAME
 *       path: DIR           Hugging Face model directory (~ expanded)
 *       draft: DIR          optional draft model for speculative decoding
 *       context: N          context length in tokens (0: the model's)
 *       kv_bits: N          KV-cache bits for K and V (16 = f16; 2..8 quantized:
 *                           groups of 32 rotated values, an f16 scale each)
 *       k_bits: N / v_bits: N   the same, separately
 *   presets:                named sampler settings (any sampler field, see
 *     - name: NAME          `tern help run`)
 *       temperature: 0.7
 *       ...
 *   keys:                   key bindings: ACTION: KEY (e.g. quit: C-q)
 *
 * Ownership: struct app_config owns every string and array it holds;
 * app_config_fini frees them.
 */
#ifndef TERN_APP_CONFIG_H
#define TERN_APP_CONFIG_H

#include <stddef.h>

#include "common/diag.h"
#include "inference/llm.h"

struct app_model_entry {
	char *name;
	char *path;
	char *draft;   /* NULL when none */
	long context;  /* 0: the model's own */
	int k_bits, v_bits;
};

#define APP_MAX_BIAS 64
/* Presets stop a reply whose last 256 tokens repeat one block (of at most
 * 128 tokens) unless they say otherwise: a small model's loop ends there
 * instead of filling the context, and real text that long is never one
 * block repeated. */
#define APP_LOOP_DEFAULT 256
#define APP_MAX_BANNED 64

struct app_preset {
	char *name;
	/* params.logit_bias / banned_tokens are NOT set here: they live in
	 * bias[] / banned[] below, and whoever submits a job points the
	 * params at (a copy of) them (app_preset_params). */
	struct llm_sampler_params params;
	int max_tokens;                   /* 0: until the context is full */
	int stop_on_loop;                 /* llm_job_params'; 0 off */
	int thinking;                     /* 0: the chat template's
					   * enable_thinking false (Qwen3 and
					   * other reasoning models answer
					   * without a <think> block); 1 (the
					   * presets' default): the template's
					   * own default */
	struct llm_logit_bias bias[APP_MAX_BIAS];
	size_t n_bias;
	int32_t banned[APP_MAX_BANNED];
	size_t n_banned;
};

struct app_keybinding {
	char *action;
	char *key;
	int line, col; /* where it was written, for error messages */
};

struct app_config {
	char *path;     /* file it was read from (NULL: built-in defaults) */
	char *model;    /* name of the start model */
	char *preset;
	char *theme;
	int theme_line, theme_col; /* where `theme:` was written (0: nowhere);
				    * the name is checked against the themes
				    * found, by the chat */
	char *backend;  /* "auto", "cpu" or "cuda" */
	int threads;
	struct app_model_entry *models;
	size_t n_models;
	struct app_preset *presets;
	size_t n_presets;
	struct app_keybinding *keys;
	size_t n_keys;
};

/* A sampler field that presets (and the sampler panel) can set. */
enum app_field_type {
	APP_FIELD_INT,
	APP_FIELD_FLOAT,
	APP_FIELD_SEED,
	APP_FIELD_ORDER,  /* "penalties,dry,top_k,..." (stage names) */
	APP_FIELD_BIAS,   /* "ID=BIAS ID=BIAS" (BIAS a number or -inf) */
	APP_FIELD_BANNED, /* "ID ID ..." */
};
struct app_sampler_field {
	const char *name;    /* YAML key and panel label */
	enum app_field_type type;
	size_t offset;       /* into struct app_preset */
	double min, max;
	const char *help;
};
/* The table, terminated by a NULL name. */
extern const struct app_sampler_field app_sampler_fields[];
/* Set field f of preset p from text; 0, or -1 with a reason in d. */
int app_preset_set(struct app_preset *p, const struct app_sampler_field *f,
		   const char *text, struct diag *d);
/* P's sampler parameters with logit_bias / banned_tokens pointing into P
 * (valid while P is unchanged). */
struct llm_sampler_params app_preset_params(const struct app_preset *p);
/* Room that app_preset_get needs for any field (64 biases of "ID=BIAS"). */
#define APP_PRESET_TEXT_MAX 2048
/* Format field f of p into buf (cap >= APP_PRESET_TEXT_MAX never truncates). */
void app_preset_get(const struct app_preset *p, const struct app_sampler_field *f,
		    char *buf, size_t cap);

/* Built-in defaults: the bundled model, the "balanced" preset and friends. */
void app_config_defaults(struct app_config *c, const char *bundled_model_dir);
/* Parse YAML text (label names it in errors).  Starts from the defaults,
 * then applies the file.  Returns 0 or -1 with "label:line:col: ..." in d;
 * on failure c is left holding the defaults. */
int app_config_parse(struct app_config *c, const char *label, const char *text,
		     size_t len, const char *bundled_model_dir, struct diag *d);
/* Read PATH; when it does not exist, write the commented default config
 * there (creating directories) and use it.  Returns 0 or -1. */
int app_config_load(struct app_config *c, const char *path,
		    const char *bundled_model_dir, struct diag *d);
void app_config_fini(struct app_config *c);

/* $XDG_CONFIG_HOME/tern/config.yaml (or ~/.config/...); fresh string. */
char *app_config_default_path(void);
/* $XDG_DATA_HOME/tern (or ~/.local/share/tern); fresh string. */
char *app_data_dir(void);
/* Set the top-level KEY of the config file at PATH to VALUE (a scalar,
 * quoted when needed), in place: the rest of the file, its comments and
 * a comment after the old value stay; KEY is appended when absent.  The
 * file is rewritten atomically.  Returns 0 or -1 (d says why; the file
 * is then unchanged). */
int app_config_set_top(const char *path, const char *key, const char *value,
		       struct diag *d);
/* P with a leading "~/" (or a lone "~") as $HOME; fresh string. */
char *app_expand_home(const char *p);
/* LEAF in the directory of the config file at CONFIG_PATH (presets/,
 * themes/); fresh string. */
char *app_config_sibling(const char *config_path, const char *leaf);

const struct app_model_entry *app_config_find_model(const struct app_config *c,
						    const char *name);
const struct app_preset *app_config_find_preset(const struct app_config *c,
						const char *name);

/* Save preset P under NAME: into the config's list (replacing one of
 * that name) and to presets/NAME.yaml beside the config file, which
 * app_config_load reads back.  0 or -1 with d. */
int app_preset_save(struct app_config *c, const char *name,
		    const struct app_preset *p, struct diag *d);

/* The text written on first start (commented; names the bundled model). */
char *app_config_default_text(const char *bundled_model_dir);

#endif
