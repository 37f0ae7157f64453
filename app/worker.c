/* app/worker.c — see worker.h.
 *
 * Threading: one mutex guards both queues.  The worker sleeps on `cond`
 * while it has no command and the engine has no work; the main thread is
 * woken through the wake pipe.  Jobs are tracked in a small table by tag;
 * llm_job_cancel is the only engine call made for the main thread's sake,
 * and it is made on the worker too (the command carries the tag). */
#include "config.h"

#include "app/worker.h"
#include "app/image.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

enum cmd_type { CMD_LOAD, CMD_GENERATE, CMD_CANCEL, CMD_QUIT };

struct cmd {
	enum cmd_type type;
	int tag;
	char *name, *dir, *backend, *draft;
	size_t n_ctx;
	int threads;
	int k_bits, v_bits; /* KV cache bits (16 = f16) */
	char *system;
	char **roles, **contents;
	char ***images;     /* [n_msgs][n_images[i]] paths */
	size_t *n_images;
	size_t n_msgs;
	struct app_preset preset; /* a full copy: arrays inline, name NULL */
	struct cmd *next;
};

struct evnode {
	struct app_wev ev;
	struct evnode *next;
};

#define MAX_JOBS 64
#define IMG_CACHE 16 /* encoded images kept (by file: names are content hashes) */

struct jobslot {
	struct llm_job *job;
	int tag;
	int done;
	size_t n_prompt;
};

/* What a job's callback gets: the worker and the job's slot. */
struct cbctx {
	struct app_worker *w;
	struct jobslot *slot;
};

struct app_worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct cmd *cmd_head, *cmd_tail;
	struct evnode *ev_head, *ev_tail;
	int wake_fd;
	/* worker-thread state */
	struct llm_model *model, *draft; /* draft: speculative decoding, or NULL */
	struct llm_vision *vision;       /* loaded at the first image */
	char *dir;                       /* the model's directory */
	struct img_cache {
		char *path;
		float *embd;
		size_t n_tok;
		int32_t grid[3];
	} icache[IMG_CACHE];
	size_t icache_next;              /* the entry replaced next */
	struct llm_tokenizer *tok;
	struct llm_template *tmpl;
	char *bos, *eos;
	struct llm_engine *engine;
	size_t n_ctx;
	struct jobslot jobs[MAX_JOBS];
	struct cbctx cb[MAX_JOBS];
};

static void post(struct app_worker *w, const struct app_wev *ev)
{
	struct evnode *n = xcalloc(1, sizeof *n);
	char b = 1;

	n->ev = *ev;
	pthread_mutex_lock(&w->mu);
	if (w->ev_tail)
		w->ev_tail->next = n;
	else
		w->ev_head = n;
	w->ev_tail = n;
	pthread_mutex_unlock(&w->mu);
	/* A full pipe already means "wake up": ignore EAGAIN. */
	if (write(w->wake_fd, &b, 1) < 0 && errno != EAGAIN)
		(void)0;
}

static void post_text(struct app_worker *w, enum app_wev_type t, int tag,
		      const char *text, size_t len)
{
	struct app_wev ev;

	memset(&ev, 0, sizeof ev);
	ev.type = t;
	ev.tag = tag;
	ev.text = xstrndup(text ? text : "", text ? len : 0);
	ev.len = text ? len : 0;
	post(w, &ev);
}

/* Something about reply TAG the user should know (NOTICE). */
static void post_notice(struct app_worker *w, int tag, int warn, const char *msg)
{
	struct app_wev ev;

	memset(&ev, 0, sizeof ev);
	ev.type = APP_WEV_NOTICE;
	ev.tag = tag;
	ev.warn = warn;
	ev.text = xstrdup(msg);
	ev.len = strlen(msg);
	post(w, &ev);
}

/* Reply TAG ended before it began: a DONE event with MSG. */
static void post_failed(struct app_worker *w, int tag, const char *msg)
{
	struct app_wev ev;

	memset(&ev, 0, sizeof ev);
	ev.type = APP_WEV_DONE;
	ev.tag = tag;
	ev.finish = LLM_FINISH_ERROR;
	ev.text = xstrdup(msg);
	post(w, &ev);
}

static void free_cmd(struct cmd *c)
{
	size_t i;

	free(c->name);
	free(c->dir);
	free(c->backend);
	free(c->draft);
	free(c->system);
	for (i = 0; c->images && i < c->n_msgs; i++) {
		size_t k;

		for (k = 0; k < c->n_images[i]; k++)
			free(c->images[i][k]);
		free(c->images[i]);
	}
	free(c->images);
	free(c->n_images);
	for (i = 0; i < c->n_msgs; i++) {
		free(c->roles[i]);
		free(c->contents[i]);
	}
	free(c->roles);
	free(c->contents);
	free(c);
}

static void send_cmd(struct app_worker *w, struct cmd *c)
{
	pthread_mutex_lock(&w->mu);
	if (w->cmd_tail)
		w->cmd_tail->next = c;
	else
		w->cmd_head = c;
	w->cmd_tail = c;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

static void unload(struct app_worker *w)
{
	int i;

	for (i = 0; i < MAX_JOBS; i++) {
		if (w->jobs[i].job) {
			if (!w->jobs[i].done) {
				struct app_wev ev;

				memset(&ev, 0, sizeof ev);
				ev.type = APP_WEV_DONE;
				ev.tag = w->jobs[i].tag;
				ev.finish = LLM_FINISH_CANCELLED;
				ev.text = xstrdup("");
				post(w, &ev);
			}
			llm_job_free(w->jobs[i].job);
			w->jobs[i].job = NULL;
		}
	}
	llm_engine_free(w->engine);
	w->engine = NULL;
	llm_template_free(w->tmpl);
	w->tmpl = NULL;
	free(w->bos);
	free(w->eos);
	w->bos = w->eos = NULL;
	llm_tokenizer_free(w->tok);
	w->tok = NULL;
	llm_vision_free(w->vision); /* before its model (its buffers) */
	w->vision = NULL;
	llm_model_free(w->model);
	w->model = NULL;
	llm_model_free(w->draft);
	w->draft = NULL;
	free(w->dir);
	w->dir = NULL;
	for (size_t e = 0; e < IMG_CACHE; e++) {
		free(w->icache[e].path);
		free(w->icache[e].embd);
		memset(&w->icache[e], 0, sizeof w->icache[e]);
	}
	w->icache_next = 0;
}

static void do_load(struct app_worker *w, struct cmd *c)
{
	struct llm_model_params mp = llm_model_default_params();
	struct llm_engine_params ep = llm_engine_default_params();
	struct app_wev ev;
	struct diag d;
	int rc;

	diag_clear(&d);
	unload(w); /* the old model goes completely before the new one loads */
	post_text(w, APP_WEV_PROGRESS, 0, "loading weights", 15);
	if (strcmp(c->backend, "cpu") == 0)
		mp.backend = LLM_BACKEND_CPU;
	else if (strcmp(c->backend, "cuda") == 0)
		mp.backend = LLM_BACKEND_CUDA;
	mp.n_threads = c->threads;
	if (c->k_bits == 16 && c->v_bits == 16) {
		mp.kv_type = LLM_KV_F16;
	} else if (c->k_bits <= 8 && c->v_bits <= 8) {
		mp.kv_type = LLM_KV_QUANT;
		mp.kv_k_bits = c->k_bits;
		mp.kv_v_bits = c->v_bits;
	} else {
		diag_fail(&d, LLM_E_UNSUPPORTED,
			  "%s: k_bits %d with v_bits %d: keys and values are both "
			  "f16 (16) or both quantized (2..8 bits each)",
			  c->name, c->k_bits, c->v_bits);
		goto fail;
	}
	if (llm_model_open(c->dir, &mp, &w->model, &d) < 0)
		goto fail;
	w->dir = xstrdup(c->dir);
	if (c->draft) {
		post_text(w, APP_WEV_PROGRESS, 0, "loading the draft model", 23);
		/* the draft's cache is small: f16 (any head size) */
		mp.kv_type = LLM_KV_F16;
		if (llm_model_open(c->draft, &mp, &w->draft, &d) < 0) {
			diag_prefix(&d, "draft model");
			goto fail;
		}
	}
	post_text(w, APP_WEV_PROGRESS, 0, "loading tokenizer", 17);
	if (llm_tokenizer_open(c->dir, &w->tok, &d) < 0)
		goto fail;
	/* No chat template is fine: completion mode.  One that does not
	 * compile (or no memory) fails the load. */
	rc = llm_chat_template_open(c->dir, &w->tmpl, &w->bos, &w->eos, &d);
	if (rc == LLM_E_TEMPLATE || rc == LLM_E_NOMEM)
		goto fail;
	if (rc < 0)
		diag_clear(&d);
	w->n_ctx = c->n_ctx;
	if (!w->n_ctx) {
		int64_t t = llm_model_n_ctx_train(w->model);

		w->n_ctx = t > 0 && t < 8192 ? (size_t)t : 8192;
	}
	ep.n_ctx = w->n_ctx;
	ep.n_slots = 4;
	if (llm_engine_new(w->model, w->draft, &ep, w->tok, &w->engine, &d) < 0)
		goto fail;
	memset(&ev, 0, sizeof ev);
	ev.type = APP_WEV_LOADED;
	ev.text = xstrdup(c->name);
	snprintf(ev.info.arch, sizeof ev.info.arch, "%s", llm_model_arch(w->model));
	snprintf(ev.info.backend, sizeof ev.info.backend, "%s", llm_model_backend(w->model));
	ev.info.n_ctx = w->n_ctx;
	ev.info.has_template = w->tmpl != NULL;
	ev.info.has_vision = llm_model_image_token(w->model) >= 0;
	ev.info.n_vocab = llm_model_n_vocab(w->model);
	ev.info.bytes = llm_model_bytes(w->model);
	post(w, &ev);
	return;
fail:
	{
		char msg[DIAG_MSG_MAX + 64];

		snprintf(msg, sizeof msg, "%s", diag_message(&d, "unknown error"));
		unload(w);
		post_text(w, APP_WEV_LOAD_FAILED, 0, msg, strlen(msg));
	}
}

static struct jobslot *find_slot(struct app_worker *w, int tag)
{
	int i;

	for (i = 0; i < MAX_JOBS; i++)
		if (w->jobs[i].job && w->jobs[i].tag == tag)
			return &w->jobs[i];
	return NULL;
}


static void job_cb(struct llm_job *job, const struct llm_job_event *e, void *user)
{
	struct cbctx *cb = user;
	struct app_worker *w = cb->w;
	struct jobslot *s = cb->slot;
	struct app_wev ev;

	(void)job;
	if (e->type == LLM_JOB_EVENT_TOKEN) {
		if (e->text_len) {
			memset(&ev, 0, sizeof ev);
			ev.type = APP_WEV_TEXT;
			ev.tag = s->tag;
			ev.text = xstrndup(e->text, e->text_len);
			ev.len = e->text_len;
			if (e->stats) {
				ev.stats = *e->stats;
				ev.ctx_used = e->stats->n_prompt + e->stats->n_generated;
			}
			post(w, &ev);
		}
		return;
	}
	if (e->type != LLM_JOB_EVENT_FINISH)
		return;
	if (e->text_len)
		post_text(w, APP_WEV_TEXT, s->tag, e->text, e->text_len);
	memset(&ev, 0, sizeof ev);
	ev.type = APP_WEV_DONE;
	ev.tag = s->tag;
	ev.finish = e->finish;
	if (e->stats) {
		ev.stats = *e->stats;
		ev.ctx_used = e->stats->n_prompt + e->stats->n_generated;
	}
	ev.text = xstrdup(e->finish == LLM_FINISH_ERROR && e->error_msg ? e->error_msg : "");
	post(w, &ev);
	s->done = 1;
}

/* Message I's content with one placeholder per attached image first (a
 * fresh string), when the model reads images. */
static char *msg_text(const struct app_worker *w, const struct cmd *c, size_t i)
{
	struct strbuf sb;
	size_t k, len;

	if (!c->images || !c->n_images[i] || llm_model_image_token(w->model) < 0)
		return xstrdup(c->contents[i]);
	strbuf_init(&sb, 0);
	for (k = 0; k < c->n_images[i]; k++)
		strbuf_puts(&sb, LLM_VISION_IMAGE_TEXT);
	strbuf_puts(&sb, c->contents[i]);
	return strbuf_take(&sb, &len);
}

static int render_prompt(struct app_worker *w, struct cmd *c, int32_t **ids,
			 size_t *n, struct diag *d)
{
	char *text = NULL, **body = xcalloc(c->n_msgs + 1, sizeof *body);
	size_t len = 0, i;
	int rc;

	for (i = 0; i < c->n_msgs; i++)
		body[i] = msg_text(w, c, i);

	if (w->tmpl) {
		struct llm_chat_msg *msgs = xcalloc(c->n_msgs + 1, sizeof *msgs);
		size_t k = 0;

		if (c->system && c->system[0]) {
			msgs[k].role = "system";
			msgs[k++].content = c->system;
		}
		for (i = 0; i < c->n_msgs; i++) {
			msgs[k].role = c->roles[i];
			msgs[k++].content = body[i];
		}
		/* thinking off: Qwen3's (and like templates') switch; others
		 * ignore the variable */
		rc = llm_chat_render(w->tmpl, msgs, k, true, w->bos, w->eos,
				     c->preset.thinking ? NULL : "{\"enable_thinking\": false}",
				     &text, &len, d);
		free(msgs);
		if (rc < 0)
			return rc;
		/* The template writes BOS itself, as transformers' apply_chat_template. */
		rc = llm_tokenizer_encode(w->tok, text, len, false, ids, n, d);
	} else {
		struct strbuf sb;

		/* Completion mode: the transcript is one text, continued. */
		strbuf_init(&sb, 0);
		if (c->system && c->system[0])
			strbuf_puts(&sb, c->system);
		for (i = 0; i < c->n_msgs; i++)
			strbuf_puts(&sb, body[i]);
		text = strbuf_take(&sb, &len);
		rc = llm_tokenizer_encode(w->tok, text, len, true, ids, n, d);
	}
	free(text);
	for (i = 0; i < c->n_msgs; i++)
		free(body[i]);
	free(body);
	return rc;
}

/* Image PATH encoded (from the cache when seen before). */
static const struct img_cache *encode_image(struct app_worker *w, const char *path,
					    struct diag *d)
{
	struct img_cache *e;
	uint8_t *rgb = NULL;
	float *px = NULL;
	size_t i, n = 0;
	int iw, ih;

	for (i = 0; i < IMG_CACHE; i++)
		if (w->icache[i].path && !strcmp(w->icache[i].path, path))
			return &w->icache[i];
	if (!w->vision) {
		struct diag d2;

		if (llm_vision_open(w->dir, &w->vision, d) < 0)
			return NULL;
		/* on the model's GPU; should that fail (memory), the host's
		 * path still encodes */
		diag_clear(&d2);
		if (llm_model_on_gpu(w->model))
			(void)llm_vision_use_backend(w->vision, w->model, &d2);
	}
	e = &w->icache[w->icache_next];
	w->icache_next = (w->icache_next + 1) % IMG_CACHE;
	free(e->path);
	free(e->embd);
	memset(e, 0, sizeof *e);
	if (app_image_decode(path, &rgb, &iw, &ih, d) < 0)
		return NULL;
	if (llm_vision_preprocess(w->vision, rgb, iw, ih, 0, 0, &px, &n, e->grid, d) < 0 ||
	    llm_vision_n_tokens(w->vision, e->grid, &e->n_tok) < 0) {
		free(rgb);
		return NULL;
	}
	free(rgb);
	e->embd = malloc(e->n_tok * llm_vision_n_embd(w->vision) * sizeof *e->embd);
	if (!e->embd || llm_vision_encode(w->vision, px, n, e->grid, e->embd, d) < 0) {
		if (!e->embd)
			diag_fail(d, LLM_E_NOMEM, "out of memory");
		free(px);
		free(e->embd);
		e->embd = NULL;
		return NULL;
	}
	free(px);
	e->path = xstrdup(path);
	return e;
}

/* The prompt's images: each image token of *ids expanded to its image's
 * tokens (images in message order), their embeddings and MRoPE
 * positions into JP, the arrays also in *embd_out and *mpos_out (the
 * caller frees them; NULL without images). */
static int add_images(struct app_worker *w, struct cmd *c, int32_t **ids, size_t *n,
		      struct llm_job_params *jp, float **embd_out, int32_t **mpos_out,
		      struct diag *d)
{
	const int32_t tok = llm_model_image_token(w->model);
	const struct img_cache **im;
	size_t n_im = 0, i, k, j, at, E, n_out = 0;
	int32_t *out = NULL, *mpos = NULL, (*grids)[3];
	float *embd = NULL;
	int64_t next = 0;
	int rc = 0;

	if (tok < 0 || !c->images)
		return 0;
	for (i = 0; i < c->n_msgs; i++)
		n_im += c->n_images[i];
	if (!n_im)
		return 0;
	im = xcalloc(n_im, sizeof *im);
	grids = xcalloc(n_im, sizeof *grids);
	for (i = 0, k = 0; i < c->n_msgs && rc == 0; i++)
		for (j = 0; j < c->n_images[i] && rc == 0; j++, k++) {
			im[k] = encode_image(w, c->images[i][j], d);
			if (!im[k]) {
				diag_prefix(d, "%s", c->images[i][j]);
				rc = -1;
			} else {
				memcpy(grids[k], im[k]->grid, sizeof grids[k]);
			}
		}
	if (rc == 0)
		rc = llm_vision_expand_prompt(w->vision, *ids, *n, tok,
					      (const int32_t(*)[3])grids, n_im, &out, &n_out,
					      &mpos, &next, d);
	if (rc == 0) {
		E = llm_vision_n_embd(w->vision);
		for (k = 0, at = 0; k < n_im; k++)
			at += im[k]->n_tok;
		embd = malloc(at * E * sizeof *embd);
		if (!embd)
			rc = diag_fail(d, LLM_E_NOMEM, "out of memory");
		for (k = 0, at = 0; embd && k < n_im; k++) {
			memcpy(embd + at * E, im[k]->embd, im[k]->n_tok * E * sizeof *embd);
			at += im[k]->n_tok;
		}
	}
	free(im);
	free(grids);
	if (rc < 0) {
		free(out);
		free(mpos);
		return rc;
	}
	free(*ids);
	*ids = out;
	*n = n_out;
	jp->embd = *embd_out = embd;
	jp->n_embd = at;
	jp->mpos = *mpos_out = mpos;
	jp->mpos_next = next;
	return 0;
}

/* Leave out of C the images the vision tower cannot take (a file that
 * cannot be read, or a size llm_vision_check_size refuses), each with a
 * NOTICE: checked from the file's header, so nothing is decoded twice. */
static void drop_bad_images(struct app_worker *w, struct cmd *c)
{
	size_t i, j, k, e;

	if (!c->images || llm_model_image_token(w->model) < 0)
		return;
	for (i = 0; i < c->n_msgs; i++)
		for (j = 0; j < c->n_images[i];) {
			const char *path = c->images[i][j];
			char msg[DIAG_MSG_MAX + 64];
			struct diag d;
			int iw, ih, cached = 0;

			for (e = 0; e < IMG_CACHE; e++)
				if (w->icache[e].path && !strcmp(w->icache[e].path, path))
					cached = 1;
			diag_clear(&d);
			if (cached || (app_image_size(path, &iw, &ih, &d) == 0 &&
				       llm_vision_check_size(iw, ih, &d) == 0)) {
				j++;
				continue;
			}
			if (!strstr(d.msg, path))
				diag_prefix(&d, "%s", path);
			snprintf(msg, sizeof msg, "an image was left out of the reply's prompt: %s", d.msg);
			post_notice(w, c->tag, 1, msg);
			free(c->images[i][j]);
			for (k = j + 1; k < c->n_images[i]; k++)
				c->images[i][k - 1] = c->images[i][k];
			c->n_images[i]--;
		}
}

static void do_generate(struct app_worker *w, struct cmd *c)
{
	struct llm_job_params jp = llm_job_default_params();
	struct llm_sampler_params sp;
	struct jobslot *s = NULL;
	int32_t *ids = NULL, *img_mpos = NULL;
	float *img_embd = NULL;
	size_t n = 0;
	struct diag d;
	int i;

	diag_clear(&d);
	if (!w->engine) {
		post_failed(w, c->tag, "no model is loaded");
		return;
	}
	for (i = 0; i < MAX_JOBS; i++)
		if (!w->jobs[i].job) {
			s = &w->jobs[i];
			break;
		}
	if (s)
		drop_bad_images(w, c);
	if (!s || render_prompt(w, c, &ids, &n, &d) < 0 || n == 0 ||
	    add_images(w, c, &ids, &n, &jp, &img_embd, &img_mpos, &d) < 0) {
		post_failed(w, c->tag, !s ? "too many replies in progress" :
				       n == 0 && !d.msg[0] ? "empty prompt" : d.msg);
		goto out;
	}
	/* Keep the newest tokens when the conversation outgrows the context
	 * (leaving room for the reply). */
	{
		size_t room = c->preset.max_tokens > 0 ? (size_t)c->preset.max_tokens : w->n_ctx / 4;

		if (room >= w->n_ctx)
			room = w->n_ctx / 2;
		if (n + room > w->n_ctx && jp.embd) {
			/* dropping part of an image would garble it */
			post_failed(w, c->tag, "the conversation and its images no longer "
					       "fit the context: start a new one");
			goto out;
		}
		if (n + room > w->n_ctx) {
			size_t keep = w->n_ctx - room, drop = n - keep;
			char msg[256];

			memmove(ids, ids + drop, keep * sizeof *ids);
			n = keep;
			snprintf(msg, sizeof msg,
				 "prompt cut to fit: first %zu of %zu tokens left out (context %zu)",
				 drop, n + drop, w->n_ctx);
			post_notice(w, c->tag, 1, msg);
		}
	}
	s->tag = c->tag;
	s->done = 0;
	s->n_prompt = n;
	w->cb[s - w->jobs].w = w;
	w->cb[s - w->jobs].slot = s;
	jp.prompt = ids;
	jp.n_prompt = n;
	sp = app_preset_params(&c->preset);
	jp.sampler = &sp;
	jp.max_tokens = c->preset.max_tokens;
	jp.stop_on_loop = c->preset.stop_on_loop;
	jp.callback = job_cb;
	jp.user = &w->cb[s - w->jobs];
	if (llm_job_submit(w->engine, &jp, &s->job, &d) < 0) {
		post_failed(w, c->tag, d.msg);
		s->job = NULL;
	}
out:
	free(ids);
	free(img_embd);
	free(img_mpos);
}

static void *worker_main(void *arg)
{
	struct app_worker *w = arg;
	int quit = 0;

	while (!quit) {
		struct cmd *c, *next;
		int i;

		pthread_mutex_lock(&w->mu);
		while (!w->cmd_head && !(w->engine && llm_engine_has_work(w->engine)))
			pthread_cond_wait(&w->cond, &w->mu);
		c = w->cmd_head;
		w->cmd_head = w->cmd_tail = NULL;
		pthread_mutex_unlock(&w->mu);
		for (; c; c = next) {
			next = c->next;
			switch (c->type) {
			case CMD_LOAD:
				do_load(w, c);
				break;
			case CMD_GENERATE:
				do_generate(w, c);
				break;
			case CMD_CANCEL: {
				struct jobslot *s = find_slot(w, c->tag);

				if (s && !s->done)
					llm_job_cancel(s->job);
				break;
			}
			case CMD_QUIT:
				quit = 1;
				break;
			}
			free_cmd(c);
		}
		if (quit)
			break;
		if (w->engine && llm_engine_has_work(w->engine)) {
			struct diag d;

			/* A failing job reports itself through its FINISH
			 * event; the others go on. */
			llm_engine_step(w->engine, &d);
		}
		for (i = 0; i < MAX_JOBS; i++)
			if (w->jobs[i].job && w->jobs[i].done) {
				llm_job_free(w->jobs[i].job);
				w->jobs[i].job = NULL;
			}
	}
	unload(w);
	return NULL;
}

struct app_worker *app_worker_start(int wake_fd, struct diag *d)
{
	struct app_worker *w = xcalloc(1, sizeof *w);
	int rc;

	w->wake_fd = wake_fd;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		diag_fail(d, -1, "cannot start the engine thread: %s", strerror(rc));
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cond);
		free(w);
		return NULL;
	}
	return w;
}

void app_worker_stop(struct app_worker *w)
{
	struct cmd *c;
	struct evnode *e, *n;

	if (!w)
		return;
	c = xcalloc(1, sizeof *c);
	c->type = CMD_QUIT;
	/* The worker handles QUIT after at most one engine step, then frees
	 * its jobs and the model. */
	send_cmd(w, c);
	pthread_join(w->thread, NULL);
	for (e = w->ev_head; e; e = n) {
		n = e->next;
		app_worker_event_fini(&e->ev);
		free(e);
	}
	for (c = w->cmd_head; c; c = w->cmd_head) {
		w->cmd_head = c->next;
		free_cmd(c);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}

void app_worker_load(struct app_worker *w, const char *name, const char *dir,
		     const char *draft, size_t n_ctx, const char *backend,
		     int threads, int k_bits, int v_bits)
{
	struct cmd *c = xcalloc(1, sizeof *c);

	c->type = CMD_LOAD;
	c->name = xstrdup(name);
	c->dir = xstrdup(dir);
	c->draft = draft ? xstrdup(draft) : NULL;
	c->backend = xstrdup(backend ? backend : "auto");
	c->n_ctx = n_ctx;
	c->threads = threads;
	c->k_bits = k_bits;
	c->v_bits = v_bits;
	send_cmd(w, c);
}

void app_worker_generate(struct app_worker *w, int tag, const char *system,
			 const struct app_wmsg *msgs, size_t n_msgs,
			 const struct app_preset *preset)
{
	struct cmd *c = xcalloc(1, sizeof *c);
	size_t i;

	c->type = CMD_GENERATE;
	c->tag = tag;
	c->system = xstrdup(system ? system : "");
	c->roles = xcalloc(n_msgs + 1, sizeof *c->roles);
	c->contents = xcalloc(n_msgs + 1, sizeof *c->contents);
	c->images = xcalloc(n_msgs + 1, sizeof *c->images);
	c->n_images = xcalloc(n_msgs + 1, sizeof *c->n_images);
	for (i = 0; i < n_msgs; i++) {
		size_t k;

		c->roles[i] = xstrdup(msgs[i].role);
		c->contents[i] = xstrdup(msgs[i].content);
		c->images[i] = xcalloc(msgs[i].n_images + 1, sizeof *c->images[i]);
		for (k = 0; k < msgs[i].n_images; k++)
			c->images[i][k] = xstrdup(msgs[i].images[k]);
		c->n_images[i] = msgs[i].n_images;
	}
	c->n_msgs = n_msgs;
	c->preset = *preset;
	c->preset.name = NULL;
	send_cmd(w, c);
}

void app_worker_cancel(struct app_worker *w, int tag)
{
	struct cmd *c = xcalloc(1, sizeof *c);

	c->type = CMD_CANCEL;
	c->tag = tag;
	send_cmd(w, c);
}

int app_worker_poll(struct app_worker *w, struct app_wev *ev)
{
	struct evnode *n;

	pthread_mutex_lock(&w->mu);
	n = w->ev_head;
	if (n) {
		w->ev_head = n->next;
		if (!w->ev_head)
			w->ev_tail = NULL;
	}
	pthread_mutex_unlock(&w->mu);
	if (!n)
		return 0;
	*ev = n->ev;
	free(n);
	return 1;
}

void app_worker_event_fini(struct app_wev *ev)
{
	free(ev->text);
	ev->text = NULL;
}
