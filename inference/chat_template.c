/* inference/chat_template.c — public chat-template API (inference/llm.h,
 * "Chat templates"): compile/render wrappers over the Jinja interpreter,
 * finding a model's template and special tokens, and rendering a plain list
 * of messages with the variables transformers passes.
 *
 * Invariant: `struct llm_template` is the interpreter's jinja_template;
 * JSON goes through jansson, whose objects keep insertion order, so key
 * order in tojson output follows the input files.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/file.h"
#include "inference/jinja_impl.h"
#include "inference/llm.h"

#define CONFIG_MAX_BYTES ((size_t)64 << 20)

struct llm_template {
	struct jinja_template *t;
};

int llm_template_compile(const char *src, size_t len, const char *name,
			 struct llm_template **out, struct diag *d)
{
	*out = NULL;
	if (!src)
		return diag_fail(d, LLM_E_INVALID, "template source is NULL");
	struct llm_template *t = calloc(1, sizeof *t);
	if (!t)
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	int rc = jinja_compile(src, len, name, &t->t, d);
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void llm_template_free(struct llm_template *t)
{
	if (!t)
		return;
	jinja_template_free(t->t);
	free(t);
}

static int render_obj(const struct llm_template *t, json_t *ctx, char **out,
		      size_t *out_len, struct diag *d)
{
	return jinja_render_json(t->t, ctx, out, out_len, d);
}

int llm_template_render(const struct llm_template *t, const char *context_json,
			char **out, size_t *out_len, struct diag *d)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	json_error_t je;
	json_t *ctx = json_loads(context_json ? context_json : "{}",
				 JSON_ALLOW_NUL, &je);
	if (!ctx)
		return diag_fail(d, LLM_E_INVALID, "context: %d:%d: %s", je.line,
				 je.column, je.text);
	int rc = render_obj(t, ctx, out, out_len, d);
	json_decref(ctx);
	return rc;
}

/* "tok" or {"content": "tok", ...} -> fresh string or NULL */
static char *token_string(json_t *v)
{
	if (json_is_object(v))
		v = json_object_get(v, "content");
	if (!json_is_string(v))
		return NULL;
	return strdup(json_string_value(v));
}

static json_t *load_json(const char *path, struct diag *d, int *rc)
{
	json_error_t je;
	char *buf = NULL;
	size_t len = 0;
	*rc = file_read_all(path, CONFIG_MAX_BYTES, &buf, &len, d);
	if (*rc) {
		*rc = LLM_E_IO;
		return NULL;
	}
	/* integers as reals: Hugging Face writes model_max_length as
	 * 1000000000000000019884624838656, past any C integer; only strings
	 * are read from these files */
	json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
	free(buf);
	if (!j) {
		*rc = diag_fail(d, LLM_E_FORMAT, "%s:%d:%d: %s", path, je.line,
				je.column, je.text);
		return NULL;
	}
	return j;
}

/* chat_template value: a string or [{name, template}] -> "default" */
static char *template_from_value(json_t *v)
{
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) {
			json_t *n = json_object_get(e, "name");
			if (json_is_string(n) && !strcmp(json_string_value(n), "default")) {
				json_t *s = json_object_get(e, "template");
				if (json_is_string(s))
					return strdup(json_string_value(s));
			}
		}
	}
	return NULL;
}

static size_t ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int llm_chat_template_load(const char *path, char **src, char **bos,
			   char **eos, struct diag *d)
{
	int rc = 0;
	char *tpl = NULL, *cfg_path = NULL;
	*src = NULL;
	if (bos)
		*bos = NULL;
	if (eos)
		*eos = NULL;

	if (file_is_dir(path)) {
		char *p = file_join(path, "chat_template.jinja");
		if (!p)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		if (file_is_file(p)) {
			size_t len;
			if (file_read_all(p, CONFIG_MAX_BYTES, &tpl, &len, d)) {
				free(p);
				return LLM_E_IO;
			}
		}
		free(p);
		if (!tpl) {
			p = file_join(path, "chat_template.json");
			if (!p)
				return diag_fail(d, LLM_E_NOMEM, "out of memory");
			if (file_is_file(p)) {
				json_t *j = load_json(p, d, &rc);
				if (!j) {
					free(p);
					return rc;
				}
				tpl = template_from_value(json_object_get(j, "chat_template"));
				json_decref(j);
			}
			free(p);
		}
		cfg_path = file_join(path, "tokenizer_config.json");
		if (!cfg_path) {
			free(tpl);
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
		}
	} else if (ends_with(path, ".jinja")) {
		size_t len;
		if (file_read_all(path, CONFIG_MAX_BYTES, &tpl, &len, d))
			return LLM_E_IO;
		*src = tpl;
		return 0;
	} else if (ends_with(path, "chat_template.json")) {
		json_t *j = load_json(path, d, &rc);
		if (!j)
			return rc;
		tpl = template_from_value(json_object_get(j, "chat_template"));
		json_decref(j);
		if (!tpl)
			return diag_fail(d, LLM_E_FORMAT, "%s: no chat_template", path);
		*src = tpl;
		return 0;
	} else {
		cfg_path = strdup(path);
		if (!cfg_path)
			return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}

	if (file_is_file(cfg_path)) {
		json_t *j = load_json(cfg_path, d, &rc);
		if (!j) {
			free(cfg_path);
			free(tpl);
			return rc;
		}
		if (!tpl)
			tpl = template_from_value(json_object_get(j, "chat_template"));
		if (bos)
			*bos = token_string(json_object_get(j, "bos_token"));
		if (eos)
			*eos = token_string(json_object_get(j, "eos_token"));
		json_decref(j);
	}
	if (!tpl) {
		rc = diag_fail(d, LLM_E_FORMAT, "%s: no chat template found "
			       "(chat_template.jinja, chat_template.json or "
			       "tokenizer_config.json)", path);
		free(cfg_path);
		if (bos) {
			free(*bos);
			*bos = NULL;
		}
		if (eos) {
			free(*eos);
			*eos = NULL;
		}
		return rc;
	}
	free(cfg_path);
	*src = tpl;
	return 0;
}

int llm_chat_template_open(const char *path, struct llm_template **out,
			   char **bos, char **eos, struct diag *d)
{
	char *src = NULL, *b = NULL, *e = NULL;
	int rc;

	*out = NULL;
	if (bos)
		*bos = NULL;
	if (eos)
		*eos = NULL;
	rc = llm_chat_template_load(path, &src, &b, &e, d);
	if (rc == 0)
		rc = llm_template_compile(src, strlen(src), "chat_template", out, d);
	free(src);
	if (rc < 0) {
		free(b);
		free(e);
		return rc;
	}
	if (bos)
		*bos = b;
	else
		free(b);
	if (eos)
		*eos = e;
	else
		free(e);
	return 0;
}

int llm_chat_render(const struct llm_template *t, const struct llm_chat_msg *msgs,
		    size_t n_msgs, bool add_generation_prompt, const char *bos,
		    const char *eos, const char *extra_json, char **out,
		    size_t *out_len, struct diag *d)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	json_t *ctx = json_object();
	json_t *arr = json_array();
	int rc = 0;
	if (!ctx || !arr) {
		json_decref(ctx);
		json_decref(arr);
		return diag_fail(d, LLM_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n_msgs; i++) {
		json_t *m = json_object();
		if (!m || json_object_set_new(m, "role", json_string(msgs[i].role ? msgs[i].role : "")) ||
		    json_object_set_new(m, "content", json_string(msgs[i].content ? msgs[i].content : "")) ||
		    json_array_append_new(arr, m)) {
			rc = diag_fail(d, LLM_E_INVALID,
				       "message %zu: role/content must be valid UTF-8", i);
			goto out;
		}
	}
	json_object_set_new(ctx, "messages", arr);
	arr = NULL;
	json_object_set_new(ctx, "tools", json_null());
	json_object_set_new(ctx, "documents", json_null());
	json_object_set_new(ctx, "add_generation_prompt",
			    json_boolean(add_generation_prompt));
	if (bos)
		json_object_set_new(ctx, "bos_token", json_string(bos));
	if (eos)
		json_object_set_new(ctx, "eos_token", json_string(eos));
	if (extra_json) {
		json_error_t je;
		json_t *x = json_loads(extra_json, JSON_ALLOW_NUL, &je);
		if (!json_is_object(x)) {
			json_decref(x);
			rc = diag_fail(d, LLM_E_INVALID, "extra variables: not a JSON object");
			goto out;
		}
		json_object_update(ctx, x);
		json_decref(x);
	}
	rc = render_obj(t, ctx, out, out_len, d);
out:
	json_decref(arr);
	json_decref(ctx);
	return rc;
}
