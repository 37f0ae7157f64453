/* app/tui.c — the interactive chat: the event loop and the controller.
 *
 * The main thread owns the UI, the configuration and the conversations;
 * the worker thread (app/worker.c) owns the model and the engine.  The loop
 * polls stdin and the worker's wake pipe: keys go to the UI, UI events are
 * turned into conversation changes and worker commands, worker events into
 * transcript and status updates.  Key handling never waits on the engine.
 *
 * Persistence: a conversation is saved (atomically) when a message is sent,
 * when a reply finishes, and on every edit, rename or branch switch; a reply
 * interrupted by a crash is kept as far as it was last saved and marked
 * partial.
 *
 * Conversation ids shown to the UI are stable small integers (`uid`);
 * message ids are indices into the conversation's message array.
 */
#include "config.h"

#include "app/tui.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/config.h"
#include "app/image.h"
#include "app/reply.h"
#include "app/store.h"
#include "app/worker.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "themes/theme.h"
#include "ui/ui.h"

struct conv_slot {
	struct app_conv *conv;
	int uid;
	int gen_tag;   /* running generation's tag, 0 when idle */
	int gen_msg;   /* message receiving the reply */
	int dirty;     /* unsaved streamed text */
	size_t ctx_used; /* positions its reply took, so far while one
			  * streams (0: none yet with this model) */
	struct app_reply_meter meter; /* its reply's tokens/s */
	size_t n_drafted, n_accepted; /* its reply's speculative decoding */
	/* the notice about its replies (an image left out, the context
	 * full, ...): shown while it is the open conversation */
	char notice[DIAG_MSG_MAX + 128];
	enum ui_notice_level notice_level;
	int image_notice; /* the notice is "reading the image" */
};

struct tui {
	struct app_config cfg;
	struct ui *ui;
	struct app_worker *worker;
	int wake[2];
	char *conv_dir, *image_dir;
	struct conv_slot *convs;
	size_t n_convs;
	int active;           /* index into convs */
	int next_uid, next_tag;
	struct app_preset preset; /* settings for the next generation */
	char *model_name;     /* loaded model (NULL while none) */
	struct app_model_info info;
	int loading;
	struct theme_set themes;
	char **attach;        /* pending image paths */
	size_t n_attach;
	int kv_k, kv_v;       /* --kv-type for every load, or 0: the entry's */
	int quit;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static struct conv_slot *active(struct tui *t)
{
	return t->n_convs ? &t->convs[t->active] : NULL;
}

static void push_conversations(struct tui *t);
static void push_transcript(struct tui *t);

static void save_conv(struct tui *t, struct conv_slot *s)
{
	struct diag d;
	int rc = app_conv_save(s->conv, t->conv_dir, &d);

	if (rc < 0) {
		char msg[DIAG_MSG_MAX + 32];

		snprintf(msg, sizeof msg, "could not save: %s", d.msg);
		ui_notice_set(t->ui, UI_NOTICE_ERROR, msg);
	} else if (rc > 0) {
		/* another tern saved it meanwhile: merged (new branches) or
		 * saved beside it as a copy; kept until dismissed */
		ui_notice_push(t->ui, UI_NOTICE_INFO, d.msg);
		push_conversations(t);
		if (s == active(t))
			push_transcript(t);
	}
	s->dirty = 0;
}

static void push_conversations(struct tui *t)
{
	struct ui_conv_item *items = xcalloc(t->n_convs + 1, sizeof *items);
	size_t i;

	for (i = 0; i < t->n_convs; i++) {
		items[i].id = t->convs[i].uid;
		items[i].title = t->convs[i].conv->title;
	}
	ui_conversations_set(t->ui, items, (int)t->n_convs,
			     t->n_convs ? t->convs[t->active].uid : -1);
	free(items);
}

static enum ui_role ui_role_of(enum app_role r)
{
	switch (r) {
	case APP_ROLE_USER: return UI_ROLE_USER;
	case APP_ROLE_ASSISTANT: return UI_ROLE_ASSISTANT;
	default: return UI_ROLE_SYSTEM;
	}
}

/* Message idx's note in the transcript: its images, and "stopped" for a
 * reply interrupted (not the one streaming now). */
static void push_note(struct tui *t, struct conv_slot *s, int idx)
{
	const struct app_msg *m = &s->conv->msgs[idx];
	char note[64] = "";

	if (m->n_images)
		snprintf(note, sizeof note, "+%zu image%s", m->n_images,
			 m->n_images == 1 ? "" : "s");
	if (m->partial && !(s->gen_tag && idx == s->gen_msg))
		snprintf(note + strlen(note), sizeof note - strlen(note), "%sstopped",
			 note[0] ? ", " : "");
	ui_transcript_note(t->ui, idx, note);
}

static void push_transcript(struct tui *t)
{
	struct conv_slot *s = active(t);
	int path[4096];
	size_t n, i;

	ui_transcript_clear(t->ui);
	if (!s)
		return;
	n = app_conv_path(s->conv, path, 4096);
	if (n > 4096)
		n = 4096;
	for (i = 0; i < n; i++) {
		const struct app_msg *m = &s->conv->msgs[path[i]];
		int bi, bn;

		app_conv_siblings(s->conv, path[i], &bi, &bn);
		/* added as a reply streams in: the content may hold NUL bytes */
		ui_transcript_add(t->ui, path[i], ui_role_of(m->role), "", bi, bn);
		ui_transcript_append(t->ui, path[i], m->content, m->content_bytes);
		push_note(t, s, path[i]);
	}
	ui_system_prompt_set(t->ui, s->conv->system);
	ui_generating_set(t->ui, s->gen_tag != 0);
}

/* S's notice (NULL clears it), on screen when S is the open
 * conversation. */
static void conv_notice(struct tui *t, struct conv_slot *s, enum ui_notice_level level,
			const char *text)
{
	snprintf(s->notice, sizeof s->notice, "%s", text ? text : "");
	s->notice_level = level;
	s->image_notice = 0;
	if (s == active(t))
		ui_notice_set(t->ui, level, s->notice[0] ? s->notice : NULL);
}

/* The open conversation's notice replaces whatever the last one showed. */
static void show_conv_notice(struct tui *t)
{
	struct conv_slot *s = active(t);

	ui_notice_set(t->ui, s ? s->notice_level : UI_NOTICE_INFO,
		      s && s->notice[0] ? s->notice : NULL);
}

/* The status bar for the open conversation: its context, and while its
 * reply streams that reply's own tokens/s and acceptance. */
static void push_status(struct tui *t)
{
	struct conv_slot *s = active(t);
	struct ui_status st;
	char model[160];

	memset(&st, 0, sizeof st);
	if (t->model_name) {
		snprintf(model, sizeof model, "%s%s", t->model_name,
			 t->info.has_template ? "" : " (completion)");
		st.model = model;
		st.backend = t->info.backend;
		st.ctx_total = (long)t->info.n_ctx;
		st.mem_bytes = t->info.bytes;
	} else {
		st.model = t->loading ? "loading..." : NULL;
	}
	st.ctx_used = s ? (long)s->ctx_used : 0;
	st.tokens_per_s = s && s->gen_tag ? app_reply_meter_tps(&s->meter, clock_now_s()) : 0;
	st.spec = s && s->n_drafted;
	st.accept = s && s->n_drafted ? (double)s->n_accepted / (double)s->n_drafted : 0;
	ui_status_set(t->ui, &st);
}

static void push_sampler(struct tui *t)
{
	const struct app_sampler_field *f;
	struct ui_field fields[64];
	char (*values)[APP_PRESET_TEXT_MAX] = xcalloc(64, sizeof *values);
	const char *names[256];
	int n = 0;
	size_t i;

	for (f = app_sampler_fields; f->name && n < 64; f++, n++) {
		app_preset_get(&t->preset, f, values[n], sizeof values[n]);
		fields[n].name = f->name;
		fields[n].type = f->type == APP_FIELD_FLOAT ? UI_FIELD_FLOAT :
				 f->type == APP_FIELD_INT ? UI_FIELD_INT : UI_FIELD_STRING;
		fields[n].min = f->min;
		fields[n].max = f->max;
		fields[n].value = values[n];
		fields[n].help = f->help;
	}
	ui_sampler_set(t->ui, fields, n); /* copies */
	free(values);
	for (i = 0; i < t->cfg.n_presets && i < 256; i++)
		names[i] = t->cfg.presets[i].name;
	ui_presets_set(t->ui, names, (int)i);
}

/* The KV bits a model gets: --kv-type's (t->kv_k, t->kv_v) when given,
 * else the entry's (*kb, *vb as passed). */
static void kv_bits(const struct tui *t, int *kb, int *vb)
{
	if (t->kv_k) {
		*kb = t->kv_k;
		*vb = t->kv_v;
	}
}

/* A model entry's KV cache as --kv-type writes it: f16, q4, q8,q4. */
static void kv_desc(char *buf, size_t n, int kb, int vb)
{
	if (kb == 16 && vb == 16)
		snprintf(buf, n, "f16");
	else if (kb == vb)
		snprintf(buf, n, "q%d", kb);
	else
		snprintf(buf, n, "q%d,q%d", kb, vb);
}

static void push_models(struct tui *t)
{
	struct ui_model_item *items = xcalloc(t->cfg.n_models + 1, sizeof *items);
	char (*details)[128] = xcalloc(t->cfg.n_models + 1, sizeof *details);
	size_t i;

	for (i = 0; i < t->cfg.n_models; i++) {
		const struct app_model_entry *m = &t->cfg.models[i];
		int kb = m->k_bits, vb = m->v_bits;
		char kv[16];

		kv_bits(t, &kb, &vb);
		kv_desc(kv, sizeof kv, kb, vb);
		snprintf(details[i], sizeof details[i], "ctx %ld%s, kv %s%s%s",
			 m->context, m->context ? "" : " (model's)", kv,
			 m->draft ? ", draft " : "", m->draft ? m->draft : "");
		items[i].name = m->name;
		items[i].path = m->path;
		items[i].details = details[i];
	}
	ui_models_set(t->ui, items, (int)t->cfg.n_models);
	free(items);
	free(details);
}

static void push_themes(struct tui *t)
{
	const char *names[128];
	int i;

	for (i = 0; i < t->themes.n_items && i < 128; i++)
		names[i] = t->themes.items[i].name;
	ui_themes_set(t->ui, names, i);
}

/* K_BITS / V_BITS: the model entry's KV-cache bits (16 for a path typed
 * in the model menu or given with -m); --kv-type overrides them
 * (kv_bits). */
static void load_model(struct tui *t, const char *name, const char *path,
		       const char *draft, size_t n_ctx, int k_bits, int v_bits)
{
	size_t i;

	kv_bits(t, &k_bits, &v_bits);
	/* Stop replies in flight: the old model is unloaded completely. */
	for (i = 0; i < t->n_convs; i++)
		if (t->convs[i].gen_tag)
			app_worker_cancel(t->worker, t->convs[i].gen_tag);
	free(t->model_name);
	t->model_name = NULL;
	t->loading = 1;
	ui_model_error(t->ui, NULL);
	ui_model_progress(t->ui, 0.0, "unloading");
	ui_notice_set(t->ui, UI_NOTICE_INFO, "loading model...");
	app_worker_load(t->worker, name, path, draft, n_ctx, t->cfg.backend,
			t->cfg.threads, k_bits, v_bits);
	push_status(t);
}

/* A new empty conversation, made active.  Not saved: its file is written
 * with its first message (or name, or system prompt), so an empty chat
 * leaves no file behind. */
static struct conv_slot *new_conv(struct tui *t)
{
	struct conv_slot *s;

	t->convs = xrealloc(t->convs, (t->n_convs + 1) * sizeof *t->convs);
	memmove(t->convs + 1, t->convs, t->n_convs * sizeof *t->convs);
	t->n_convs++;
	s = &t->convs[0];
	memset(s, 0, sizeof *s);
	s->conv = app_conv_new(NULL);
	s->uid = ++t->next_uid;
	t->active = 0;
	return s;
}

/* Index of a conversation nothing was done with yet (no message, no
 * system prompt, the default title), -1 when none: C-n opens it rather
 * than piling up empty chats. */
static int find_blank(struct tui *t)
{
	size_t i;

	for (i = 0; i < t->n_convs; i++)
		if (app_conv_is_blank(t->convs[i].conv))
			return (int)i;
	return -1;
}

static int find_uid(struct tui *t, int uid)
{
	size_t i;

	for (i = 0; i < t->n_convs; i++)
		if (t->convs[i].uid == uid)
			return (int)i;
	return -1;
}

static struct conv_slot *find_tag(struct tui *t, int tag)
{
	size_t i;

	for (i = 0; i < t->n_convs; i++)
		if (t->convs[i].gen_tag == tag)
			return &t->convs[i];
	return NULL;
}

/* 1 when a reply can start now; else 0 with the reason on screen.
 * Checked before a message is added, so that a message no reply can
 * follow never enters the conversation (two user turns in a row break
 * chat templates that want the roles to alternate). */
static int can_reply(struct tui *t)
{
	if (t->model_name)
		return 1;
	ui_notice_set(t->ui, UI_NOTICE_ERROR,
		      t->loading ? "the model is still loading; your message is kept in the editor" :
		      "no model loaded (F3 opens the model menu); your message is kept in the editor");
	return 0;
}

/* Start a reply to the active path of S, into a new assistant message
 * under PARENT. */
static void start_reply(struct tui *t, struct conv_slot *s, int parent)
{
	struct app_wmsg *msgs;
	char ***imgs;
	int path[4096];
	size_t n, i, k = 0;

	if (!t->model_name) {
		ui_notice_set(t->ui, UI_NOTICE_ERROR,
			      t->loading ? "the model is still loading" : "no model loaded (F3 opens the model menu)");
		return;
	}
	s->gen_msg = app_conv_add(s->conv, parent, APP_ROLE_ASSISTANT, "");
	s->conv->msgs[s->gen_msg].partial = 1;
	s->gen_tag = ++t->next_tag;
	free(s->conv->model);
	s->conv->model = xstrdup(t->model_name);
	n = app_conv_path(s->conv, path, 4096);
	if (n > 4096)
		n = 4096;
	msgs = xcalloc(n + 1, sizeof *msgs);
	imgs = xcalloc(n + 1, sizeof *imgs);
	for (i = 0; i < n; i++) {
		const struct app_msg *m = &s->conv->msgs[path[i]];
		size_t j;

		if (path[i] == s->gen_msg)
			break;
		msgs[k].role = m->role == APP_ROLE_USER ? "user" :
			       m->role == APP_ROLE_ASSISTANT ? "assistant" : "system";
		msgs[k].content = m->content;
		/* attachments: stored in the data directory by content hash */
		if (m->n_images) {
			imgs[k] = xcalloc(m->n_images, sizeof *imgs[k]);
			for (j = 0; j < m->n_images; j++)
				imgs[k][j] = file_join(t->image_dir, m->images[j]);
			msgs[k].images = (const char *const *)imgs[k];
			msgs[k].n_images = m->n_images;
		}
		k++;
	}
	app_worker_generate(t->worker, s->gen_tag, s->conv->system, msgs, k, &t->preset);
	for (i = 0; i < k; i++) {
		size_t j;

		for (j = 0; j < msgs[i].n_images; j++)
			free(imgs[i][j]);
		free(imgs[i]);
	}
	free(imgs);
	free(msgs);
	save_conv(t, s);
	app_reply_meter_start(&s->meter, clock_now_s());
	s->n_drafted = s->n_accepted = 0;
	if (s == active(t))
		push_transcript(t);
	ui_generating_set(t->ui, 1);
}

static void store_images(struct tui *t, struct app_msg *m)
{
	size_t i;

	for (i = 0; i < t->n_attach; i++) {
		struct diag d;
		char *name = NULL;

		if (app_image_store(t->attach[i], t->image_dir, &name, &d) < 0) {
			ui_notice_set(t->ui, UI_NOTICE_ERROR, d.msg);
			continue;
		}
		m->images = xrealloc(m->images, (m->n_images + 1) * sizeof *m->images);
		m->images[m->n_images++] = name;
	}
}

/* The edited copy of a message keeps the original's images. */
static void copy_images(struct app_msg *to, const struct app_msg *from)
{
	size_t i;

	if (!from->n_images)
		return;
	to->images = xcalloc(from->n_images, sizeof *to->images);
	for (i = 0; i < from->n_images; i++)
		to->images[i] = xstrdup(from->images[i]);
	to->n_images = from->n_images;
}

/* 0 when image PATH can be attached for the loaded model; else -1 with
 * why in d: a vision model checks the size as its vision tower will
 * (llm_vision_check_size), so an image it would refuse is never sent. */
static int image_fits_model(const struct tui *t, const char *path, struct diag *d)
{
	int w, h;

	if (!t->model_name || !t->info.has_vision)
		return 0;
	if (app_image_size(path, &w, &h, d) < 0)
		return -1;
	if (llm_vision_check_size(w, h, d) < 0) {
		const char *slash = strrchr(path, '/');

		diag_prefix(d, "%s", slash ? slash + 1 : path);
		return -1;
	}
	return 0;
}

/* The pending attachments' file names (without directories) to the UI. */
static void push_attachments(struct tui *t)
{
	const char **names = xcalloc(t->n_attach + 1, sizeof *names);
	size_t k;

	for (k = 0; k < t->n_attach; k++) {
		const char *slash = strrchr(t->attach[k], '/');

		names[k] = slash ? slash + 1 : t->attach[k];
	}
	ui_attachments_set(t->ui, names, (int)t->n_attach);
	free(names);
}

static void clear_attachments(struct tui *t)
{
	size_t i;

	for (i = 0; i < t->n_attach; i++)
		free(t->attach[i]);
	free(t->attach);
	t->attach = NULL;
	t->n_attach = 0;
	ui_attachments_set(t->ui, NULL, 0);
	ui_image_preview_set(t->ui, NULL, 0, 0);
}

static void on_submit(struct tui *t, const char *text)
{
	struct conv_slot *s = active(t);
	int u;

	if (!text[0] && !t->n_attach)
		return;
	if (s && s->gen_tag) {
		ui_submit_refuse(t->ui);
		ui_notice_set(t->ui, UI_NOTICE_ERROR, "a reply is still being written (Esc stops it)");
		return;
	}
	if (!can_reply(t)) {
		ui_submit_refuse(t->ui);
		return;
	}
	if (!s)
		s = new_conv(t);
	u = app_conv_add(s->conv, app_conv_leaf(s->conv), APP_ROLE_USER, text);
	if (t->n_attach) {
		store_images(t, &s->conv->msgs[u]);
		conv_notice(t, s, UI_NOTICE_INFO,
			    t->info.has_vision ?
			    "reading the image (its encoder runs on the CPU)..." :
			    "this model reads text only: the images are kept with the message but not sent");
		s->image_notice = t->info.has_vision;
		clear_attachments(t);
	} else {
		conv_notice(t, s, UI_NOTICE_INFO, NULL);
	}
	/* The first message names the conversation. */
	if (s->conv->n_msgs == 1) {
		char title[48];
		size_t n = 0, i;

		for (i = 0; text[i] && text[i] != '\n' && n < sizeof title - 1; i++)
			title[n++] = text[i];
		while (n && (title[n - 1] & 0xC0) == 0x80)
			n--; /* never cut a UTF-8 sequence */
		if (n && (unsigned char)title[n - 1] >= 0xC0)
			n--;
		title[n] = '\0';
		if (n) {
			free(s->conv->title);
			s->conv->title = xstrdup(title);
			push_conversations(t);
		}
	}
	start_reply(t, s, u);
}

static void on_worker_event(struct tui *t, struct app_wev *ev)
{
	struct conv_slot *s;

	switch (ev->type) {
	case APP_WEV_PROGRESS:
		ui_model_progress(t->ui, ev->value, ev->text);
		break;
	case APP_WEV_LOADED:
		t->loading = 0;
		free(t->model_name);
		t->model_name = xstrdup(ev->text);
		t->info = ev->info;
		/* contexts measured with the old model mean nothing now */
		for (size_t i = 0; i < t->n_convs; i++)
			t->convs[i].ctx_used = 0;
		ui_model_loaded(t->ui);
		ui_notice_set(t->ui, UI_NOTICE_INFO, ev->info.has_template ? NULL :
			      "completion mode: this model has no chat template, so your text is continued as a story");
		push_status(t);
		break;
	case APP_WEV_LOAD_FAILED: {
		char msg[DIAG_MSG_MAX + 64];

		t->loading = 0;
		snprintf(msg, sizeof msg, "model failed to load: %s", ev->text);
		ui_model_progress(t->ui, -1, NULL);
		ui_model_error(t->ui, msg);
		ui_notice_set(t->ui, UI_NOTICE_ERROR, msg);
		push_status(t);
		break;
	}
	case APP_WEV_TEXT:
		s = find_tag(t, ev->tag);
		if (!s)
			break;
		app_conv_append_content(s->conv, s->gen_msg, ev->text, ev->len);
		s->dirty = 1;
		if (s->image_notice)
			conv_notice(t, s, UI_NOTICE_INFO, NULL);
		app_reply_meter_token(&s->meter);
		s->n_drafted = ev->stats.n_drafted;
		s->n_accepted = ev->stats.n_accepted;
		if (ev->ctx_used)
			s->ctx_used = ev->ctx_used;
		if (s == active(t)) {
			ui_transcript_append(t->ui, s->gen_msg, ev->text, ev->len);
			push_status(t);
		}
		break;
	case APP_WEV_NOTICE:
		s = find_tag(t, ev->tag);
		if (s)
			conv_notice(t, s, ev->warn ? UI_NOTICE_ERROR : UI_NOTICE_INFO, ev->text);
		break;
	case APP_WEV_DONE:
		s = find_tag(t, ev->tag);
		if (!s)
			break;
		s->gen_tag = 0;
		s->conv->msgs[s->gen_msg].partial = ev->finish == LLM_FINISH_CANCELLED ||
						     ev->finish == LLM_FINISH_ERROR;
		if (s == active(t))
			push_note(t, s, s->gen_msg);
		save_conv(t, s);
		if (ev->ctx_used)
			s->ctx_used = ev->ctx_used;
		s->n_drafted = ev->stats.n_drafted;
		s->n_accepted = ev->stats.n_accepted;
		if (s->image_notice)
			conv_notice(t, s, UI_NOTICE_INFO, NULL);
		if (ev->finish == LLM_FINISH_ERROR && ev->text && ev->text[0]) {
			char msg[DIAG_MSG_MAX + 32];

			snprintf(msg, sizeof msg, "generation failed: %s", ev->text);
			conv_notice(t, s, UI_NOTICE_ERROR, msg);
		}
		if (app_reply_finish_notice(ev->finish)) {
			/* after a warning of its own (the prompt cut to fit), both */
			char msg[sizeof s->notice + 256];

			snprintf(msg, sizeof msg, "%s%s%s", app_reply_finish_notice(ev->finish),
				 s->notice[0] ? "; " : "", s->notice);
			conv_notice(t, s, ev->finish == LLM_FINISH_CONTEXT ? UI_NOTICE_ERROR :
				    UI_NOTICE_INFO, msg);
		}
		if (s == active(t)) {
			ui_generating_set(t->ui, 0);
			push_status(t);
		}
		break;
	}
}

static int apply_theme(struct tui *t, const char *name)
{
	int i = theme_set_find(&t->themes, name);

	if (i < 0) {
		char msg[160];

		snprintf(msg, sizeof msg, "no theme called '%s'", name);
		ui_notice_set(t->ui, UI_NOTICE_ERROR, msg);
		return -1;
	}
	ui_theme_apply(t->ui, &t->themes.items[i]);
	return 0;
}

/* After the open conversation changed (new, chosen, deleted): the list,
 * its transcript, its context in the status bar and its reply's notice. */
static void show_active(struct tui *t)
{
	push_conversations(t);
	push_transcript(t);
	push_status(t);
	show_conv_notice(t);
}

static void on_ui_event(struct tui *t, const struct ui_event *ev)
{
	struct conv_slot *s = active(t);
	struct diag d;
	int i;

	switch (ev->type) {
	case UI_EVENT_NONE:
	case UI_EVENT_RESIZE:
	case UI_EVENT_COPY:
		break;
	case UI_EVENT_QUIT:
		t->quit = 1;
		break;
	case UI_EVENT_SUBMIT:
		on_submit(t, ev->text ? ev->text : "");
		break;
	case UI_EVENT_CANCEL:
		if (s && s->gen_tag)
			app_worker_cancel(t->worker, s->gen_tag);
		break;
	case UI_EVENT_CONV_NEW:
		i = find_blank(t);
		if (i >= 0)
			t->active = i;
		else
			new_conv(t);
		show_active(t);
		break;
	case UI_EVENT_CONV_SELECT:
		i = find_uid(t, ev->id);
		if (i >= 0) {
			t->active = i;
			show_active(t);
		}
		break;
	case UI_EVENT_CONV_RENAME:
		i = find_uid(t, ev->id);
		if (i >= 0 && ev->text && ev->text[0]) {
			free(t->convs[i].conv->title);
			t->convs[i].conv->title = xstrdup(ev->text);
			save_conv(t, &t->convs[i]);
			push_conversations(t);
		}
		break;
	case UI_EVENT_CONV_DELETE:
		i = find_uid(t, ev->id);
		if (i >= 0) {
			/* A file that stays on disk (read-only directory...)
			 * would come back at the next start: the entry stays
			 * too, and its reply keeps streaming. */
			if (app_conv_delete(t->convs[i].conv, t->conv_dir, &d) < 0) {
				ui_notice_set(t->ui, UI_NOTICE_ERROR, d.msg);
				break;
			}
			if (t->convs[i].gen_tag)
				app_worker_cancel(t->worker, t->convs[i].gen_tag);
			app_conv_free(t->convs[i].conv);
			memmove(t->convs + i, t->convs + i + 1,
				(t->n_convs - (size_t)i - 1) * sizeof *t->convs);
			t->n_convs--;
			/* the open conversation stays open when one above it
			 * goes; when it is the one deleted, its neighbour opens */
			if (i < t->active)
				t->active--;
			else if (t->active >= (int)t->n_convs)
				t->active = t->n_convs ? (int)t->n_convs - 1 : 0;
			if (!t->n_convs)
				new_conv(t);
			show_active(t); /* not the deleted one's context or notice */
		}
		break;
	case UI_EVENT_MESSAGE_EDIT:
		if (s && !s->gen_tag && ev->id >= 0 && ev->id < (int)s->conv->n_msgs &&
		    s->conv->msgs[ev->id].role == APP_ROLE_USER) {
			int u;

			if (!can_reply(t)) {
				ui_submit_refuse(t->ui);
				break;
			}
			u = app_conv_add(s->conv, s->conv->msgs[ev->id].parent,
					 APP_ROLE_USER, ev->text ? ev->text : "");
			copy_images(&s->conv->msgs[u], &s->conv->msgs[ev->id]);
			conv_notice(t, s, UI_NOTICE_INFO, NULL);
			start_reply(t, s, u);
		}
		break;
	case UI_EVENT_REGENERATE:
		if (s && !s->gen_tag) {
			int m = ev->id;

			if (m < 0 || m >= (int)s->conv->n_msgs)
				m = app_conv_leaf(s->conv);
			conv_notice(t, s, UI_NOTICE_INFO, NULL);
			if (m >= 0 && s->conv->msgs[m].role == APP_ROLE_ASSISTANT)
				start_reply(t, s, s->conv->msgs[m].parent);
			else if (m >= 0 && s->conv->msgs[m].role == APP_ROLE_USER)
				start_reply(t, s, m);
		}
		break;
	case UI_EVENT_BRANCH_PREV:
	case UI_EVENT_BRANCH_NEXT:
		if (s && !s->gen_tag && ev->id >= 0 && ev->id < (int)s->conv->n_msgs) {
			app_conv_switch(s->conv, ev->id,
					ev->type == UI_EVENT_BRANCH_PREV ? -1 : 1);
			save_conv(t, s);
			push_transcript(t);
		}
		break;
	case UI_EVENT_SYSTEM_PROMPT:
		if (s) {
			free(s->conv->system);
			s->conv->system = xstrdup(ev->text ? ev->text : "");
			save_conv(t, s);
			ui_system_prompt_set(t->ui, s->conv->system);
		}
		break;
	case UI_EVENT_SAMPLER_FIELD:
		if (ev->index >= 0 && app_sampler_fields[ev->index].name) {
			const struct app_sampler_field *f = &app_sampler_fields[ev->index];
			struct app_preset keep = t->preset;
			int bad = app_preset_set(&t->preset, f, ev->text ? ev->text : "", &d) < 0;

			/* token ids past the loaded model's vocabulary: said
			 * now, not when a reply is asked for */
			if (!bad && t->model_name && t->info.n_vocab > 0 &&
			    (f->type == APP_FIELD_BIAS || f->type == APP_FIELD_BANNED)) {
				int64_t id = -1;
				size_t k;

				if (f->type == APP_FIELD_BIAS) {
					for (k = 0; k < t->preset.n_bias; k++)
						if (t->preset.bias[k].token >= t->info.n_vocab)
							id = t->preset.bias[k].token;
				} else {
					for (k = 0; k < t->preset.n_banned; k++)
						if (t->preset.banned[k] >= t->info.n_vocab)
							id = t->preset.banned[k];
				}
				if (id >= 0) {
					diag_fail(&d, -1, "%s: token %lld is past the vocabulary of %s (%lld ids)",
						  f->name, (long long)id, t->model_name,
						  (long long)t->info.n_vocab);
					t->preset = keep;
					bad = 1;
				}
			}

			push_sampler(t);
			/* refused: back in the field's editor with what was typed */
			if (bad && !ui_sampler_refuse(t->ui, ev->index, ev->text, d.msg))
				ui_notice_set(t->ui, UI_NOTICE_ERROR, d.msg);
		}
		break;
	case UI_EVENT_PRESET_LOAD: {
		const struct app_preset *p = app_config_find_preset(&t->cfg, ev->text ? ev->text : "");

		if (p) {
			char *keep = t->preset.name;

			t->preset = *p;
			t->preset.name = keep;
			push_sampler(t);
			ui_notice_set(t->ui, UI_NOTICE_INFO, "preset applies to the next reply");
		}
		break;
	}
	case UI_EVENT_PRESET_SAVE:
		if (ev->text && ev->text[0]) {
			if (app_preset_save(&t->cfg, ev->text, &t->preset, &d) < 0)
				ui_notice_set(t->ui, UI_NOTICE_ERROR, d.msg);
			else
				ui_notice_set(t->ui, UI_NOTICE_INFO, "preset saved");
			push_sampler(t);
		}
		break;
	case UI_EVENT_MODEL_SELECT:
		if (ev->index >= 0 && ev->index < (int)t->cfg.n_models) {
			const struct app_model_entry *m = &t->cfg.models[ev->index];

			load_model(t, m->name, m->path, m->draft, (size_t)m->context,
				   m->k_bits, m->v_bits);
		}
		break;
	case UI_EVENT_MODEL_PATH:
		if (ev->text && ev->text[0]) {
			/* a typo must not cost the loaded model: only a model
			 * directory unloads it */
			char *dir = app_expand_home(ev->text), *cfg = file_join(dir, "config.json");
			char msg[600];

			if (!file_is_dir(dir))
				snprintf(msg, sizeof msg, "%.500s: no such directory", dir);
			else if (!file_is_file(cfg))
				snprintf(msg, sizeof msg,
					 "%.500s: no config.json (not a model directory)", dir);
			else
				msg[0] = '\0';
			if (msg[0])
				ui_model_error(t->ui, msg);
			else
				load_model(t, dir, dir, NULL, 0, 16, 16);
			free(cfg);
			free(dir);
		}
		break;
	case UI_EVENT_ATTACH_PREVIEW:
		if (ev->text && ev->text[0]) {
			uint8_t *rgb = NULL;
			int w, h;

			if (app_image_thumbnail(ev->text, 48, 24, &rgb, &w, &h, &d) == 0) {
				ui_image_preview_set(t->ui, rgb, w, h);
				free(rgb);
			} else {
				ui_image_preview_set(t->ui, NULL, 0, 0);
				ui_notice_set(t->ui, UI_NOTICE_ERROR, d.msg);
			}
		} else {
			ui_image_preview_set(t->ui, NULL, 0, 0);
		}
		break;
	case UI_EVENT_ATTACH:
		if (ev->text && ev->text[0]) {
			uint8_t *rgb = NULL;
			int w, h;

			/* Only images we can decode, and the loaded vision
			 * model can read, are attached. */
			if (image_fits_model(t, ev->text, &d) < 0 ||
			    app_image_thumbnail(ev->text, 48, 24, &rgb, &w, &h, &d) < 0) {
				char msg[DIAG_MSG_MAX + 32];

				snprintf(msg, sizeof msg, "not attached: %s", d.msg);
				ui_notice_set(t->ui, UI_NOTICE_ERROR, msg);
				break;
			}
			ui_image_preview_set(t->ui, rgb, w, h);
			free(rgb);
			t->attach = xrealloc(t->attach, (t->n_attach + 1) * sizeof *t->attach);
			t->attach[t->n_attach++] = xstrdup(ev->text);
			push_attachments(t);
		}
		break;
	case UI_EVENT_ATTACH_REMOVE:
		if (ev->index >= 0 && ev->index < (int)t->n_attach) {
			free(t->attach[ev->index]);
			memmove(t->attach + ev->index, t->attach + ev->index + 1,
				(t->n_attach - (size_t)ev->index - 1) * sizeof *t->attach);
			t->n_attach--;
			push_attachments(t);
		}
		break;
	case UI_EVENT_THEME_SELECT:
		/* chosen with F10: also the config's theme from now on */
		if (ev->text && apply_theme(t, ev->text) == 0 && t->cfg.path) {
			if (app_config_set_top(t->cfg.path, "theme", ev->text, &d) < 0) {
				char msg[DIAG_MSG_MAX + 32];

				snprintf(msg, sizeof msg, "theme not saved: %s", d.msg);
				ui_notice_set(t->ui, UI_NOTICE_ERROR, msg);
			} else {
				free(t->cfg.theme);
				t->cfg.theme = xstrdup(ev->text);
			}
		}
		break;
	}
}

static void bind_keys(struct tui *t)
{
	size_t i;

	for (i = 0; i < t->cfg.n_keys; i++) {
		struct diag d;

		if (ui_keymap_bind(t->ui, t->cfg.keys[i].key, t->cfg.keys[i].action, &d) != 0) {
			char msg[DIAG_MSG_MAX + 128];

			snprintf(msg, sizeof msg, "%s:%d:%d: %s", t->cfg.path ? t->cfg.path : "config",
				 t->cfg.keys[i].line, t->cfg.keys[i].col, d.msg);
			ui_notice_push(t->ui, UI_NOTICE_ERROR, msg);
		}
	}
}

/* The config's theme must be one that was found (the config reader
 * cannot know them); the default one is used otherwise. */
static void check_theme(struct tui *t)
{
	struct strbuf msg;
	int i;

	if (theme_set_find(&t->themes, t->cfg.theme) >= 0)
		return;
	strbuf_init(&msg, 0);
	strbuf_printf(&msg, "%s:%d:%d: theme: no theme called '%s' (", t->cfg.path ? t->cfg.path : "config",
		      t->cfg.theme_line, t->cfg.theme_col, t->cfg.theme);
	for (i = 0; i < t->themes.n_items; i++)
		strbuf_printf(&msg, "%s%s", i ? ", " : "", t->themes.items[i].name);
	strbuf_puts(&msg, ")");
	ui_notice_push(t->ui, UI_NOTICE_ERROR, strbuf_cstr(&msg));
	strbuf_fini(&msg);
}

/* Damaged files are reported with ui_notice_push, as every start-up
 * problem: kept on screen until the user dismisses them, not replaced by
 * the model's load notices that follow at once. */
static void load_conversations(struct tui *t)
{
	struct app_conv **all = NULL;
	char *warn = NULL;
	struct diag d;
	size_t n = 0, i;

	if (app_store_load_all(t->conv_dir, &all, &n, &warn, &d) < 0)
		ui_notice_push(t->ui, UI_NOTICE_ERROR, d.msg);
	t->convs = xcalloc(n + 1, sizeof *t->convs);
	for (i = 0; i < n; i++) {
		t->convs[i].conv = all[i];
		t->convs[i].uid = ++t->next_uid;
	}
	t->n_convs = n;
	free(all);
	if (warn) { /* a line a file */
		char *line = warn, *nl;

		for (; *line; line = nl + (*nl == '\n')) {
			struct strbuf msg;

			nl = strchr(line, '\n');
			if (!nl)
				nl = line + strlen(line);
			strbuf_init(&msg, 0);
			strbuf_printf(&msg, "conversation %.*s", (int)(nl - line), line);
			ui_notice_push(t->ui, UI_NOTICE_ERROR, strbuf_cstr(&msg));
			strbuf_fini(&msg);
		}
		free(warn);
	}
	if (!t->n_convs)
		new_conv(t);
	t->active = 0;
}

int app_tui_run(const char *model_override, const char *config_path,
		int k_bits, int v_bits)
{
	struct tui t;
	struct diag d;
	char *cfg_path = config_path ? xstrdup(config_path) : app_config_default_path();
	char *data = app_data_dir();
	const struct app_model_entry *me;
	const struct app_preset *pre;
	int rc = APP_STATUS_OK, cfg_rc, theme_diag[2];
	struct sigaction sa;
	struct diag td[2];
	char *themes_dir;

	memset(&t, 0, sizeof t);
	t.kv_k = k_bits;
	t.kv_v = v_bits;
	cfg_rc = app_config_load(&t.cfg, cfg_path, app_default_model_dir(), &d);
	theme_set_init(&t.themes);
	/* the bundled themes, then the user's (themes/ beside the config
	 * file; a name there replaces a bundled one); a theme that does not
	 * load is reported once the screen is up */
	themes_dir = file_join(TERN_PKGDATADIR, "themes");
	if (!file_is_dir(themes_dir)) {
		free(themes_dir);
		themes_dir = file_join(TERN_SRCDIR, "themes");
	}
	theme_diag[0] = theme_set_load_dir(&t.themes, themes_dir, &td[0]);
	free(themes_dir);
	themes_dir = app_config_sibling(cfg_path, "themes");
	theme_diag[1] = file_is_dir(themes_dir) ?
			theme_set_load_dir(&t.themes, themes_dir, &td[1]) : 0;
	free(themes_dir);
	free(cfg_path);
	{
		int ti = theme_set_find(&t.themes, t.cfg.theme);

		t.ui = ui_new(ti >= 0 ? &t.themes.items[ti] : NULL);
	}
	for (int i = 0; i < 2; i++)
		if (theme_diag[i] < 0) {
			char msg[DIAG_MSG_MAX + 64];

			snprintf(msg, sizeof msg, "theme: %s", td[i].msg);
			ui_notice_push(t.ui, UI_NOTICE_ERROR, msg);
		}
	if (cfg_rc < 0) {
		char msg[DIAG_MSG_MAX + 64];

		snprintf(msg, sizeof msg, "%s (so the built-in settings are used)", d.msg);
		ui_notice_push(t.ui, UI_NOTICE_ERROR, msg);
	}
	check_theme(&t);
	t.conv_dir = file_join(data, "conversations");
	t.image_dir = file_join(data, "images");
	free(data);
	if (pipe(t.wake) < 0) {
		app_error("pipe: %s", strerror(errno));
		rc = APP_STATUS_ERROR;
		goto out;
	}
	fcntl(t.wake[0], F_SETFL, O_NONBLOCK);
	fcntl(t.wake[1], F_SETFL, O_NONBLOCK);
	if (ui_term_open(t.ui, &d) < 0) {
		app_error("%s", d.msg);
		rc = APP_STATUS_ERROR;
		goto out;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	t.worker = app_worker_start(t.wake[1], &d);
	if (!t.worker) {
		ui_term_close(t.ui);
		app_error("%s", d.msg);
		rc = APP_STATUS_ERROR;
		goto out;
	}
	bind_keys(&t);
	pre = app_config_find_preset(&t.cfg, t.cfg.preset);
	t.preset = *pre;
	t.preset.name = NULL;
	load_conversations(&t);
	push_conversations(&t);
	push_transcript(&t);
	push_sampler(&t);
	push_models(&t);
	push_themes(&t);
	if (model_override && !app_config_find_model(&t.cfg, model_override))
		load_model(&t, model_override, model_override, NULL, 0, 16, 16);
	else if ((me = app_config_find_model(&t.cfg, model_override ? model_override : t.cfg.model)))
		load_model(&t, me->name, me->path, me->draft, (size_t)me->context,
			   me->k_bits, me->v_bits);
	push_status(&t);

	while (!t.quit && !got_signal) {
		struct pollfd pfd[2];
		struct ui_event ev;
		struct app_wev wev;
		char buf[256];
		int pr;

		ui_draw(t.ui);
		pfd[0].fd = ui_input_fd(t.ui);
		pfd[0].events = POLLIN;
		pfd[1].fd = t.wake[0];
		pfd[1].events = POLLIN;
		if ((pr = poll(pfd, 2, 1000)) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN)
			while (read(t.wake[0], buf, sizeof buf) > 0)
				;
		while (app_worker_poll(t.worker, &wev)) {
			on_worker_event(&t, &wev);
			app_worker_event_fini(&wev);
		}
		/* after EINTR or a timeout too: a SIGWINCH is read as a key */
		if (pr <= 0 || (pfd[0].revents & (POLLIN | POLLHUP)))
			ui_process_input(t.ui);
		while (!t.quit && ui_poll_event(t.ui, &ev))
			on_ui_event(&t, &ev);
	}
	/* Keep what was streamed so far, marked partial; a file that cannot
	 * be written is reported once the terminal is back. */
	{
		struct strbuf failed;
		size_t i;

		strbuf_init(&failed, 0);
		for (i = 0; i < t.n_convs; i++)
			if ((t.convs[i].gen_tag || t.convs[i].dirty) &&
			    app_conv_save(t.convs[i].conv, t.conv_dir, &d) < 0)
				strbuf_printf(&failed, "%scould not save a conversation: %s",
					      failed.len ? "\ntern: " : "", d.msg);
		app_worker_stop(t.worker);
		ui_term_close(t.ui);
		if (failed.len) {
			app_error("%s", strbuf_cstr(&failed));
			rc = APP_STATUS_ERROR;
		}
		strbuf_fini(&failed);
	}
	/* Stopped by a signal (SIGINT, SIGTERM, SIGHUP), everything saved:
	 * the status a shell gives a process the signal killed, 128 + N. */
	if (got_signal)
		rc = 128 + got_signal;
out:
	{
		size_t i;

		for (i = 0; i < t.n_convs; i++)
			app_conv_free(t.convs[i].conv);
		free(t.convs);
	}
	clear_attachments(&t);
	if (t.wake[0] > 0) {
		close(t.wake[0]);
		close(t.wake[1]);
	}
	ui_free(t.ui);
	theme_set_fini(&t.themes);
	free(t.model_name);
	free(t.conv_dir);
	free(t.image_dir);
	app_config_fini(&t.cfg);
	return rc;
}
