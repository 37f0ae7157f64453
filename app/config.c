/* app/config.c — config.yaml: defaults, the YAML reader (libyaml document
 * API, so every node has a mark for file:line:col errors), the sampler field
 * table shared with the sampler panel, and the first-start default file.
 *
 * Invariant: after any call, struct app_config is complete and consistent
 * (a failed parse leaves the defaults), so the app can always start. */
#include "config.h"

#include "app/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/file.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

#define F(name, type, field, lo, hi, help) \
	{ name, type, offsetof(struct app_preset, field), lo, hi, help }
const struct app_sampler_field app_sampler_fields[] = {
	F("temperature", APP_FIELD_FLOAT, params.temperature, 0, 5, "randomness; 0 = greedy"),
	F("top_k", APP_FIELD_INT, params.top_k, 0, 1000000, "keep the k most likely tokens; 0 off"),
	F("top_p", APP_FIELD_FLOAT, params.top_p, 0, 1, "nucleus mass; 1 off"),
	F("min_p", APP_FIELD_FLOAT, params.min_p, 0, 1, "drop tokens below min_p x best; 0 off"),
	F("typical_p", APP_FIELD_FLOAT, params.typical_p, 0, 1, "locally typical mass; 1 off"),
	F("top_n_sigma", APP_FIELD_FLOAT, params.top_n_sigma, -1, 100, "keep logits within n sigma of the max; <= 0 off"),
	F("xtc_probability", APP_FIELD_FLOAT, params.xtc_probability, 0, 1, "chance XTC removes top choices; 0 off"),
	F("xtc_threshold", APP_FIELD_FLOAT, params.xtc_threshold, 0, 1, "XTC: probability of a top choice"),
	F("dry_multiplier", APP_FIELD_FLOAT, params.dry_multiplier, 0, 100, "DRY repetition penalty; 0 off"),
	F("dry_base", APP_FIELD_FLOAT, params.dry_base, 0, 10, "DRY growth per extra repeated token"),
	F("dry_allowed_length", APP_FIELD_INT, params.dry_allowed_length, 0, 1000, "DRY: repeats this long are free"),
	F("dry_penalty_last_n", APP_FIELD_INT, params.dry_penalty_last_n, -1, 1000000, "DRY window; -1 all"),
	F("repeat_penalty", APP_FIELD_FLOAT, params.repeat_penalty, 0, 10, "repetition penalty; 1 off"),
	F("frequency_penalty", APP_FIELD_FLOAT, params.frequency_penalty, -10, 10, "minus count x this"),
	F("presence_penalty", APP_FIELD_FLOAT, params.presence_penalty, -10, 10, "minus this if seen"),
	F("penalty_last_n", APP_FIELD_INT, params.penalty_last_n, -1, 1000000, "penalty window; -1 all"),
	F("mirostat", APP_FIELD_INT, params.mirostat, 0, 2, "0 off, 2 mirostat v2"),
	F("mirostat_tau", APP_FIELD_FLOAT, params.mirostat_tau, 0, 100, "mirostat target surprise"),
	F("mirostat_eta", APP_FIELD_FLOAT, params.mirostat_eta, 0, 1, "mirostat learning rate"),
	F("min_keep", APP_FIELD_INT, params.min_keep, 0, 1000, "samplers keep at least this many"),
	F("seed", APP_FIELD_SEED, params.seed, 0, 0, "random seed; 'random' for a new one each time"),
	F("order", APP_FIELD_ORDER, params.order, 0, 0, "sampler stages in order, e.g. penalties,dry,top_k,top_p,min_p,temperature"),
	F("logit_bias", APP_FIELD_BIAS, bias, 0, 0, "token biases: ID=BIAS ... (-inf bans)"),
	F("banned_tokens", APP_FIELD_BANNED, banned, 0, 0, "token ids never sampled: ID ID ..."),
	F("max_tokens", APP_FIELD_INT, max_tokens, 0, 10000000, "reply length limit; 0 = context"),
	F("stop_on_loop", APP_FIELD_INT, stop_on_loop, 0, LLM_LOOP_MAX, "stop when the last N tokens repeat one block; 0 off"),
	F("thinking", APP_FIELD_INT, thinking, 0, 1, "reasoning models think first (<think>); 0 answers at once"),
	{ NULL, 0, 0, 0, 0, NULL },
};
#undef F

int app_preset_set(struct app_preset *p, const struct app_sampler_field *f,
		   const char *text, struct diag *d)
{
	char *end;
	void *dst = (char *)p + f->offset;

	errno = 0;
	if (f->type == APP_FIELD_ORDER) {
		enum llm_sampler_stage st[LLM_SAMPLER_MAX_STAGES];
		char buf[512], *tok, *save = NULL;
		int n = 0;

		snprintf(buf, sizeof buf, "%s", text);
		for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
			if (n == LLM_SAMPLER_MAX_STAGES)
				return diag_fail(d, -1, "order: more than %d stages", LLM_SAMPLER_MAX_STAGES);
			if (llm_sampler_stage_parse(tok, &st[n], NULL) < 0)
				return diag_fail(d, -1, "order: unknown stage '%s'", tok);
			n++;
		}
		memcpy(p->params.order, st, (size_t)n * sizeof st[0]);
		p->params.n_order = n;
		return 0;
	}
	if (f->type == APP_FIELD_BIAS || f->type == APP_FIELD_BANNED) {
		const char *s = text;
		size_t n = 0;

		while (*s) {
			long id;
			double b = 0;

			while (*s == ' ' || *s == ',')
				s++;
			if (!*s)
				break;
			id = strtol(s, &end, 10);
			if (end == s || id < 0 || id > INT32_MAX)
				return diag_fail(d, -1, "%s: bad token id near '%.16s'", f->name, s);
			s = end;
			if (f->type == APP_FIELD_BIAS) {
				if (*s != '=')
					return diag_fail(d, -1, "%s: expected ID=BIAS near '%.16s'", f->name, s);
				s++;
				if (strncmp(s, "-inf", 4) == 0) {
					b = -INFINITY;
					end = (char *)(uintptr_t)(s + 4);
				} else {
					b = strtod(s, &end);
					if (end == s || !isfinite(b))
						return diag_fail(d, -1, "%s: bad bias near '%.16s'", f->name, s);
				}
				s = end;
				if (n == APP_MAX_BIAS)
					return diag_fail(d, -1, "%s: at most %d entries", f->name, APP_MAX_BIAS);
				p->bias[n].token = (int32_t)id;
				p->bias[n].bias = (float)b;
			} else {
				if (n == APP_MAX_BANNED)
					return diag_fail(d, -1, "%s: at most %d entries", f->name, APP_MAX_BANNED);
				p->banned[n] = (int32_t)id;
			}
			n++;
			if (*s && *s != ' ' && *s != ',')
				return diag_fail(d, -1, "%s: unexpected '%.16s'", f->name, s);
		}
		if (f->type == APP_FIELD_BIAS)
			p->n_bias = n;
		else
			p->n_banned = n;
		return 0;
	}
	if (f->type == APP_FIELD_SEED) {
		unsigned long long v;

		if (strcmp(text, "random") == 0 || strcmp(text, "-1") == 0) {
			*(uint64_t *)dst = LLM_SAMPLER_SEED_RANDOM;
			return 0;
		}
		v = strtoull(text, &end, 10);
		if (end == text || *end || errno || text[0] == '-')
			return diag_fail(d, -1, "%s: '%s' is not a seed (a number or 'random')",
					 f->name, text);
		*(uint64_t *)dst = v;
		return 0;
	}
	if (f->type == APP_FIELD_INT) {
		long v = strtol(text, &end, 10);

		if (end == text || *end || errno)
			return diag_fail(d, -1, "%s: '%s' is not a whole number", f->name, text);
		if ((double)v < f->min || (double)v > f->max)
			return diag_fail(d, -1, "%s: %ld is outside [%g, %g]", f->name, v,
					 f->min, f->max);
		*(int32_t *)dst = (int32_t)v;
		return 0;
	}
	{
		double v = strtod(text, &end);

		if (end == text || *end || errno || !isfinite(v))
			return diag_fail(d, -1, "%s: '%s' is not a number", f->name, text);
		if (v < f->min || v > f->max)
			return diag_fail(d, -1, "%s: %g is outside [%g, %g]", f->name, v,
					 f->min, f->max);
		*(float *)dst = (float)v;
	}
	return 0;
}

void app_preset_get(const struct app_preset *p, const struct app_sampler_field *f,
		    char *buf, size_t cap)
{
	const void *src = (const char *)p + f->offset;

	switch (f->type) {
	case APP_FIELD_ORDER: {
		size_t o = 0;
		int i;

		buf[0] = '\0';
		for (i = 0; i < p->params.n_order && o < cap; i++)
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? "," : "",
					      llm_sampler_stage_name(p->params.order[i]));
		break;
	}
	case APP_FIELD_BIAS:
	case APP_FIELD_BANNED: {
		size_t o = 0, i, n = f->type == APP_FIELD_BIAS ? p->n_bias : p->n_banned;

		buf[0] = '\0';
		for (i = 0; i < n && o < cap; i++) {
			if (f->type == APP_FIELD_BIAS)
				o += (size_t)snprintf(buf + o, cap - o, "%s%d=%g", i ? " " : "",
						      (int)p->bias[i].token, (double)p->bias[i].bias);
			else
				o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? " " : "",
						      (int)p->banned[i]);
		}
		break;
	}
	case APP_FIELD_SEED: {
		uint64_t s = *(const uint64_t *)src;

		if (s == LLM_SAMPLER_SEED_RANDOM)
			snprintf(buf, cap, "random");
		else
			snprintf(buf, cap, "%llu", (unsigned long long)s);
		break;
	}
	case APP_FIELD_INT:
		snprintf(buf, cap, "%d", (int)*(const int32_t *)src);
		break;
	case APP_FIELD_FLOAT:
		snprintf(buf, cap, "%g", (double)*(const float *)src);
		break;
	}
}

struct llm_sampler_params app_preset_params(const struct app_preset *p)
{
	struct llm_sampler_params sp = p->params;

	sp.logit_bias = p->n_bias ? p->bias : NULL;
	sp.n_logit_bias = p->n_bias;
	sp.banned_tokens = p->n_banned ? p->banned : NULL;
	sp.n_banned_tokens = p->n_banned;
	return sp;
}

/* Store a copy of *P in C under NAME, replacing a preset of that name
 * (the later definition wins: config file over built-ins, saved files over
 * both). */
static void preset_put(struct app_config *c, const char *name,
		       const struct app_preset *p)
{
	size_t i;

	for (i = 0; i < c->n_presets; i++)
		if (strcmp(c->presets[i].name, name) == 0)
			break;
	if (i == c->n_presets) {
		c->presets = xrealloc(c->presets, (c->n_presets + 1) * sizeof *c->presets);
		c->n_presets++;
	} else {
		free(c->presets[i].name);
	}
	c->presets[i] = *p;
	c->presets[i].name = xstrdup(name);
}

static void preset_add(struct app_config *c, const char *name, float temp,
		       float top_p, float min_p, int top_k)
{
	struct app_preset *p;

	c->presets = xrealloc(c->presets, (c->n_presets + 1) * sizeof *c->presets);
	p = &c->presets[c->n_presets++];
	memset(p, 0, sizeof *p);
	p->name = xstrdup(name);
	p->params = llm_sampler_default_params();
	p->params.temperature = temp;
	p->params.top_p = top_p;
	p->params.min_p = min_p;
	p->params.top_k = top_k;
	p->params.seed = LLM_SAMPLER_SEED_RANDOM;
	p->stop_on_loop = APP_LOOP_DEFAULT;
	p->thinking = 1;
}

void app_config_defaults(struct app_config *c, const char *bundled)
{
	memset(c, 0, sizeof *c);
	c->model = xstrdup("stories260k");
	c->preset = xstrdup("balanced");
	c->theme = xstrdup("default");
	c->backend = xstrdup("auto");
	c->models = xcalloc(1, sizeof *c->models);
	c->n_models = 1;
	c->models[0].name = xstrdup("stories260k");
	c->models[0].path = xstrdup(bundled);
	c->models[0].k_bits = c->models[0].v_bits = 16;
	preset_add(c, "balanced", 0.8f, 0.95f, 0.05f, 40);
	preset_add(c, "precise", 0.2f, 0.9f, 0.1f, 20);
	preset_add(c, "creative", 1.1f, 0.98f, 0.02f, 0);
	preset_add(c, "greedy", 0.0f, 1.0f, 0.0f, 0);
}

void app_config_fini(struct app_config *c)
{
	size_t i;

	free(c->path);
	free(c->model);
	free(c->preset);
	free(c->theme);
	free(c->backend);
	for (i = 0; i < c->n_models; i++) {
		free(c->models[i].name);
		free(c->models[i].path);
		free(c->models[i].draft);
	}
	free(c->models);
	for (i = 0; i < c->n_presets; i++)
		free(c->presets[i].name);
	free(c->presets);
	for (i = 0; i < c->n_keys; i++) {
		free(c->keys[i].action);
		free(c->keys[i].key);
	}
	free(c->keys);
	memset(c, 0, sizeof *c);
}

static int load_saved_presets(struct app_config *c, const char *config_path,
			      const char *bundled, struct diag *d);

/* ---- YAML walking ------------------------------------------------------- */

struct reader {
	yaml_document_t doc;
	const char *label;
	struct diag *d;
};

static int fail_at(struct reader *r, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct reader *r, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[DIAG_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return diag_fail(r->d, -1, "%s:%zu:%zu: %s", r->label,
			 n ? n->start_mark.line + 1 : 0,
			 n ? n->start_mark.column + 1 : 0, msg);
}

static const char *scalar(struct reader *r, yaml_node_t *n, const char *key)
{
	if (!n || n->type != YAML_SCALAR_NODE) {
		fail_at(r, n, "%s: expected a single value", key);
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

char *app_expand_home(const char *p)
{
	const char *home = getenv("HOME");

	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home) {
		char *s = xmalloc(strlen(home) + strlen(p) + 1);

		strcpy(s, home);
		strcat(s, p + 1);
		return s;
	}
	return xstrdup(p);
}

static int get_long(struct reader *r, yaml_node_t *n, const char *key, long lo,
		    long hi, long *out)
{
	const char *s = scalar(r, n, key);
	char *end;
	long v;

	if (!s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno)
		return fail_at(r, n, "%s: '%s' is not a whole number", key, s);
	if (v < lo || v > hi)
		return fail_at(r, n, "%s: %ld is outside [%ld, %ld]", key, v, lo, hi);
	*out = v;
	return 0;
}

static int set_str(struct reader *r, yaml_node_t *n, const char *key, char **dst)
{
	const char *s = scalar(r, n, key);

	if (!s)
		return -1;
	free(*dst);
	*dst = xstrdup(s);
	return 0;
}

static int parse_model(struct reader *r, yaml_node_t *n, struct app_model_entry *m)
{
	yaml_node_pair_t *p;

	if (n->type != YAML_MAPPING_NODE)
		return fail_at(r, n, "models: each entry must be a mapping (name:, path:, ...)");
	m->k_bits = m->v_bits = 16;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
		const char *key = scalar(r, k, "key");
		long x;

		if (!key)
			return -1;
		if (strcmp(key, "name") == 0) {
			if (set_str(r, v, key, &m->name))
				return -1;
		} else if (strcmp(key, "path") == 0 || strcmp(key, "draft") == 0) {
			const char *s = scalar(r, v, key);
			char **dst = key[0] == 'p' ? &m->path : &m->draft;

			if (!s)
				return -1;
			free(*dst);
			*dst = s[0] ? app_expand_home(s) : NULL;
		} else if (strcmp(key, "context") == 0) {
			if (get_long(r, v, key, 0, 1L << 24, &x))
				return -1;
			m->context = x;
		} else if (strcmp(key, "kv_bits") == 0 || strcmp(key, "k_bits") == 0 ||
			   strcmp(key, "v_bits") == 0) {
			if (get_long(r, v, key, 2, 16, &x))
				return -1;
			if (x > 8 && x != 16)
				return fail_at(r, v, "%s: %ld bits: use 2..8 (quantized) or 16", key, x);
			if (key[0] != 'v')
				m->k_bits = (int)x;
			if (key[0] != 'k')
				m->v_bits = (int)x;
		} else {
			return fail_at(r, k, "models: unknown key '%s' (name, path, draft, context, kv_bits, k_bits, v_bits)", key);
		}
	}
	if (!m->name)
		return fail_at(r, n, "models: entry has no name");
	if (!m->path)
		return fail_at(r, n, "models: '%s' has no path", m->name);
	return 0;
}

static int parse_preset(struct reader *r, yaml_node_t *n, struct app_preset *ps)
{
	yaml_node_pair_t *p;

	if (n->type != YAML_MAPPING_NODE)
		return fail_at(r, n, "presets: each entry must be a mapping (name:, temperature:, ...)");
	ps->params = llm_sampler_default_params();
	ps->params.seed = LLM_SAMPLER_SEED_RANDOM;
	ps->stop_on_loop = APP_LOOP_DEFAULT;
	ps->thinking = 1;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
		const char *key = scalar(r, k, "key");
		const struct app_sampler_field *f;
		const char *val;

		if (!key)
			return -1;
		if (strcmp(key, "name") == 0) {
			if (set_str(r, v, key, &ps->name))
				return -1;
			continue;
		}
		for (f = app_sampler_fields; f->name; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (!f->name)
			return fail_at(r, k, "presets: unknown sampler setting '%s'", key);
		val = scalar(r, v, key);
		if (!val)
			return -1;
		{
			struct diag sub;

			if (app_preset_set(ps, f, val, &sub) < 0)
				return fail_at(r, v, "%s", sub.msg);
		}
	}
	if (!ps->name)
		return fail_at(r, n, "presets: entry has no name");
	return 0;
}

static int parse_root(struct reader *r, struct app_config *c)
{
	yaml_node_t *root = yaml_document_get_root_node(&r->doc);
	yaml_node_pair_t *p;

	if (!root)
		return 0; /* empty file: all defaults */
	if (root->type != YAML_MAPPING_NODE)
		return fail_at(r, root, "the configuration must be a mapping of keys");
	for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
		const char *key = scalar(r, k, "key");
		long x;

		if (!key)
			return -1;
		if (strcmp(key, "model") == 0) {
			if (set_str(r, v, key, &c->model))
				return -1;
		} else if (strcmp(key, "preset") == 0) {
			if (set_str(r, v, key, &c->preset))
				return -1;
		} else if (strcmp(key, "theme") == 0) {
			if (set_str(r, v, key, &c->theme))
				return -1;
			/* themes are found by the chat, which reports a bad name here */
			c->theme_line = (int)v->start_mark.line + 1;
			c->theme_col = (int)v->start_mark.column + 1;
		} else if (strcmp(key, "backend") == 0) {
			const char *s = scalar(r, v, key);

			if (!s)
				return -1;
			if (strcmp(s, "auto") && strcmp(s, "cpu") && strcmp(s, "cuda"))
				return fail_at(r, v, "backend: '%s' is not auto, cpu or cuda", s);
			free(c->backend);
			c->backend = xstrdup(s);
		} else if (strcmp(key, "threads") == 0) {
			if (get_long(r, v, key, 0, 4096, &x))
				return -1;
			c->threads = (int)x;
		} else if (strcmp(key, "models") == 0 || strcmp(key, "presets") == 0) {
			yaml_node_item_t *it;
			int models = key[0] == 'm';

			if (v->type != YAML_SEQUENCE_NODE)
				return fail_at(r, v, "%s: expected a list ('- name: ...')", key);
			for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *e = yaml_document_get_node(&r->doc, *it);

				if (models) {
					struct app_model_entry m = { 0 };
					size_t i;

					if (parse_model(r, e, &m)) {
						free(m.name);
						free(m.path);
						free(m.draft);
						return -1;
					}
					for (i = 0; i < c->n_models; i++)
						if (strcmp(c->models[i].name, m.name) == 0)
							break;
					if (i < c->n_models) { /* same name: replace */
						free(c->models[i].name);
						free(c->models[i].path);
						free(c->models[i].draft);
					} else {
						c->models = xrealloc(c->models, (c->n_models + 1) * sizeof *c->models);
						i = c->n_models++;
					}
					c->models[i] = m;
				} else {
					struct app_preset ps;

					memset(&ps, 0, sizeof ps);
					if (parse_preset(r, e, &ps)) {
						free(ps.name);
						return -1;
					}
					preset_put(c, ps.name, &ps);
					free(ps.name);
				}
			}
		} else if (strcmp(key, "keys") == 0) {
			yaml_node_pair_t *q;

			if (v->type != YAML_MAPPING_NODE)
				return fail_at(r, v, "keys: expected a mapping of ACTION: KEY");
			for (q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
				yaml_node_t *kk = yaml_document_get_node(&r->doc, q->key);
				yaml_node_t *kv = yaml_document_get_node(&r->doc, q->value);
				const char *a = scalar(r, kk, "keys"), *b;
				struct app_keybinding *kb;

				if (!a)
					return -1;
				b = scalar(r, kv, a);
				if (!b)
					return -1;
				c->keys = xrealloc(c->keys, (c->n_keys + 1) * sizeof *c->keys);
				kb = &c->keys[c->n_keys++];
				kb->action = xstrdup(a);
				kb->key = xstrdup(b);
				kb->line = (int)kv->start_mark.line + 1;
				kb->col = (int)kv->start_mark.column + 1;
			}
		} else {
			return fail_at(r, k, "unknown key '%s' (model, preset, theme, backend, threads, models, presets, keys)", key);
		}
	}
	if (!app_config_find_model(c, c->model))
		return fail_at(r, root, "model: '%s' is not in the models list", c->model);
	if (!app_config_find_preset(c, c->preset))
		return fail_at(r, root, "preset: '%s' is not in the presets list", c->preset);
	return 0;
}

int app_config_parse(struct app_config *c, const char *label, const char *text,
		     size_t len, const char *bundled, struct diag *d)
{
	yaml_parser_t parser;
	struct reader r;
	int rc;

	app_config_defaults(c, bundled);
	r.label = label;
	r.d = d;
	if (!yaml_parser_initialize(&parser))
		return diag_fail(d, -1, "%s: cannot start the YAML parser", label);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &r.doc)) {
		rc = diag_fail(d, -1, "%s:%zu:%zu: %s", label,
			       parser.problem_mark.line + 1,
			       parser.problem_mark.column + 1,
			       parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		return rc;
	}
	rc = parse_root(&r, c);
	yaml_document_delete(&r.doc);
	yaml_parser_delete(&parser);
	if (rc) {
		app_config_fini(c);
		app_config_defaults(c, bundled);
		return -1;
	}
	c->path = xstrdup(label);
	return 0;
}

char *app_config_default_text(const char *bundled)
{
	struct strbuf sb;

	strbuf_init(&sb, 0);
	strbuf_printf(&sb,
		"# tern configuration.  Every key is optional; unknown keys are errors.\n"
		"# See `tern --help` and README.md.\n"
		"\n"
		"# The model loaded at start (a name from `models` below).\n"
		"model: stories260k\n"
		"\n"
		"# Sampler preset used at start (a name from `presets`; built in:\n"
		"# balanced, precise, creative, greedy).\n"
		"preset: balanced\n"
		"\n"
		"# Theme: default, light, high-contrast, or the name of one of yours\n"
		"# (themes/NAME.yaml beside this file; see tern's themes/default.yaml).\n"
		"theme: default\n"
		"\n"
		"# Compute backend: auto (CUDA when there is a GPU), cpu or cuda.\n"
		"backend: auto\n"
		"# CPU threads (0: all cores).\n"
		"threads: 0\n"
		"\n"
		"models:\n"
		"  # The small story model bundled with tern (no chat template:\n"
		"  # the chat runs in completion mode).\n"
		"  - name: stories260k\n"
		"    path: %s\n"
		"  # A Hugging Face model directory:\n"
		"  # - name: llama3.2-1b\n"
		"  #   path: ~/models/Llama-3.2-1B-Instruct\n"
		"  #   draft: ~/models/some-small-draft   # optional, speculative decoding\n"
		"  #   context: 8192                      # tokens (0: the model's own)\n"
		"  #   kv_bits: 16                        # 16 = f16; 2..8 = quantized (4: a quarter\n"
		"  #                                      # of the memory); k_bits / v_bits apart\n"
		"\n"
		"# Your own sampler presets (any field of the sampler panel):\n"
		"# presets:\n"
		"#   - name: my-preset\n"
		"#     temperature: 0.7\n"
		"#     top_p: 0.9\n"
		"#     repeat_penalty: 1.1\n"
		"\n"
		"# Key bindings (ACTION: KEY); F1 in the chat lists every action.\n"
		"# keys:\n"
		"#   quit: C-q\n"
		"#   new-conversation: C-n\n",
		bundled);
	return strbuf_take(&sb, NULL);
}

int app_config_load(struct app_config *c, const char *path, const char *bundled,
		    struct diag *d)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = file_read_all(path, 1 << 20, &text, &len, d);
	if (rc == -ENOENT) {
		char *dir = xstrdup(path), *slash = strrchr(dir, '/');

		if (slash) {
			*slash = '\0';
			if (file_mkdirs(dir, d) < 0) {
				free(dir);
				app_config_defaults(c, bundled);
				return -1;
			}
		}
		free(dir);
		text = app_config_default_text(bundled);
		len = strlen(text);
		if (file_write_atomic(path, text, len, d) < 0) {
			free(text);
			app_config_defaults(c, bundled);
			return -1;
		}
	} else if (rc < 0) {
		app_config_defaults(c, bundled);
		return -1;
	}
	rc = app_config_parse(c, path, text, len, bundled, d);
	free(text);
	if (rc == 0)
		rc = load_saved_presets(c, path, bundled, d);
	return rc;
}

int app_config_set_top(const char *path, const char *key, const char *value,
		       struct diag *d)
{
	char *text = NULL;
	size_t len = 0, klen = strlen(key), i;
	struct strbuf out, val;
	int found = 0, plain = *value != '\0', rc;
	const char *p, *end;

	if (file_read_all(path, 1u << 20, &text, &len, d) < 0)
		return -1;
	/* the value as a plain scalar where that reads back the same, else
	 * double-quoted */
	for (i = 0; value[i]; i++)
		if (!isalnum((unsigned char)value[i]) && !strchr("-_./", value[i]))
			plain = 0;
	strbuf_init(&val, 0);
	if (plain) {
		strbuf_puts(&val, value);
	} else {
		strbuf_putc(&val, '"');
		for (i = 0; value[i]; i++) {
			if (value[i] == '"' || value[i] == '\\')
				strbuf_putc(&val, '\\');
			strbuf_putc(&val, value[i]);
		}
		strbuf_putc(&val, '"');
	}
	strbuf_init(&out, len + 64);
	for (p = text; p < text + len; p = end) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));

		end = nl ? nl + 1 : text + len;
		if (!found && (size_t)(end - p) > klen && !memcmp(p, key, klen) && p[klen] == ':') {
			/* the top-level line (column 0); a comment after the
			 * value stays */
			const char *c = p + klen + 1, *hash = NULL;

			for (; c < end && *c != '\n'; c++)
				if (*c == '#' && c[-1] == ' ') {
					hash = c;
					break;
				}
			strbuf_printf(&out, "%s: %s", key, strbuf_cstr(&val));
			if (hash)
				strbuf_printf(&out, "  %.*s", (int)(end - hash - (nl ? 1 : 0)), hash);
			strbuf_putc(&out, '\n');
			found = 1;
			continue;
		}
		strbuf_append(&out, p, (size_t)(end - p));
	}
	if (!found) {
		if (out.len && strbuf_cstr(&out)[out.len - 1] != '\n')
			strbuf_putc(&out, '\n');
		strbuf_printf(&out, "%s: %s\n", key, strbuf_cstr(&val));
	}
	rc = file_write_atomic(path, strbuf_cstr(&out), out.len, d);
	strbuf_fini(&out);
	strbuf_fini(&val);
	free(text);
	return rc < 0 ? -1 : 0;
}

char *app_config_sibling(const char *config_path, const char *leaf)
{
	const char *slash = strrchr(config_path, '/');
	struct strbuf sb;

	strbuf_init(&sb, 0);
	if (slash)
		strbuf_append(&sb, config_path, (size_t)(slash - config_path));
	else
		strbuf_puts(&sb, ".");
	strbuf_printf(&sb, "/%s", leaf);
	return strbuf_take(&sb, NULL);
}

/* presets/ beside the config file. */
static char *presets_dir(const char *config_path)
{
	return app_config_sibling(config_path, "presets");
}

int app_preset_save(struct app_config *c, const char *name,
		    const struct app_preset *p, struct diag *d)
{
	const struct app_sampler_field *f;
	struct strbuf sb;
	char *dir, *path, *text, val[APP_PRESET_TEXT_MAX];
	size_t i;
	int rc;

	for (i = 0; name[i]; i++)
		if (name[i] == '/' || name[i] == '\n' || (i == 0 && name[i] == '.'))
			return diag_fail(d, -1, "preset name '%s' cannot be a file name", name);
	strbuf_init(&sb, 0);
	strbuf_puts(&sb, "# tern sampler preset (saved from the sampler panel)\npresets:\n");
	strbuf_printf(&sb, "  - name: \"%s\"\n", name);
	for (f = app_sampler_fields; f->name; f++) {
		app_preset_get(p, f, val, sizeof val);
		strbuf_printf(&sb, "    %s: %s\n", f->name, val);
	}
	dir = presets_dir(c->path ? c->path : "./config.yaml");
	if (file_mkdirs(dir, d) < 0) {
		free(dir);
		strbuf_fini(&sb);
		return -1;
	}
	{
		struct strbuf pb;

		strbuf_init(&pb, 0);
		strbuf_printf(&pb, "%s/%s.yaml", dir, name);
		path = strbuf_take(&pb, NULL);
	}
	text = strbuf_take(&sb, &i);
	rc = file_write_atomic(path, text, i, d) < 0 ? -1 : 0;
	free(text);
	free(path);
	free(dir);
	if (rc)
		return rc;
	preset_put(c, name, p);
	return 0;
}

/* Read the files in presets/ (saved by app_preset_save) into C. */
static int load_saved_presets(struct app_config *c, const char *config_path,
			      const char *bundled, struct diag *d)
{
	char *dir = presets_dir(config_path);
	struct dirent *e;
	DIR *dp = opendir(dir);
	int rc = 0;

	if (!dp) {
		free(dir);
		return 0;
	}
	while ((e = readdir(dp)) != NULL) {
		size_t l = strlen(e->d_name);
		struct app_config one;
		char *path, *text;
		size_t len;

		if (l < 6 || strcmp(e->d_name + l - 5, ".yaml") != 0)
			continue;
		path = file_join(dir, e->d_name);
		if (!path || file_read_all(path, 1 << 20, &text, &len, d) < 0) {
			free(path);
			rc = -1;
			continue;
		}
		if (app_config_parse(&one, path, text, len, bundled, d) < 0) {
			rc = -1;
		} else {
			/* The file NAME.yaml holds the preset NAME. */
			const struct app_preset *fp;
			char stem[256];

			snprintf(stem, sizeof stem, "%.*s", (int)(l - 5), e->d_name);
			fp = app_config_find_preset(&one, stem);
			if (fp)
				preset_put(c, stem, fp);
		}
		app_config_fini(&one);
		free(text);
		free(path);
	}
	closedir(dp);
	free(dir);
	return rc;
}

static char *xdg_dir(const char *var, const char *fallback, const char *leaf)
{
	const char *base = getenv(var), *home = getenv("HOME");
	struct strbuf sb;

	strbuf_init(&sb, 0);
	if (base && base[0] == '/')
		strbuf_printf(&sb, "%s/tern%s", base, leaf);
	else
		strbuf_printf(&sb, "%s/%s/tern%s", home && *home ? home : ".", fallback, leaf);
	return strbuf_take(&sb, NULL);
}

char *app_config_default_path(void)
{
	return xdg_dir("XDG_CONFIG_HOME", ".config", "/config.yaml");
}

char *app_data_dir(void)
{
	return xdg_dir("XDG_DATA_HOME", ".local/share", "");
}

const struct app_model_entry *app_config_find_model(const struct app_config *c,
						    const char *name)
{
	size_t i;

	for (i = 0; i < c->n_models; i++)
		if (strcmp(c->models[i].name, name) == 0)
			return &c->models[i];
	return NULL;
}

const struct app_preset *app_config_find_preset(const struct app_config *c,
						const char *name)
{
	size_t i;

	for (i = 0; i < c->n_presets; i++)
		if (strcmp(c->presets[i].name, name) == 0)
			return &c->presets[i];
	return NULL;
}
