/* ui/ui.c — struct ui's lifecycle, data-in setters, key handling, dialogs
 * and the event queue.  No curses here (term.c/draw.c), so all of it runs
 * headless in the tests.
 *
 * Key handling: dialogs take keys first; otherwise the key's action from
 * the keymap is applied to the focused pane (input editor, transcript
 * message selection, conversation list).  Unbound printable keys type into
 * the input.  Nothing blocks: every key either changes state, queues an
 * event, or both.
 */
#include "config.h"

#include "ui/ui_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "ui/image_impl.h"
#include "ui/text_impl.h"

/* ---- helpers ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = dup_or_null(s);
}

static void free_strv(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **dup_strv(const char *const *v, int n)
{
	char **r = xcalloc((size_t)(n > 0 ? n : 1), sizeof *r);

	for (int i = 0; i < n; i++)
		r[i] = xstrdup(v[i] ? v[i] : "");
	return r;
}

static void push_event(struct ui *ui, enum ui_event_type type, int id, int index, long value,
		       const char *text)
{
	struct ui_qevent *qe;

	if (ui->q_n == ui->q_cap) {
		ui->q_cap = ui->q_cap ? ui->q_cap * 2 : 16;
		ui->q = xrealloc(ui->q, (size_t)ui->q_cap * sizeof *ui->q);
	}
	qe = &ui->q[ui->q_n++];
	qe->text = text ? xstrdup(text) : NULL; /* owned until returned + next poll */
	qe->ev.type = type;
	qe->ev.id = id;
	qe->ev.index = index;
	qe->ev.value = value;
	qe->ev.text = qe->text;
}

int ui_poll_event(struct ui *ui, struct ui_event *ev)
{
	free(ui->last_text);
	ui->last_text = NULL;
	if (ui->q_n == 0) {
		memset(ev, 0, sizeof *ev);
		return 0;
	}
	*ev = ui->q[0].ev;
	ui->last_text = ui->q[0].text;
	memmove(ui->q, ui->q + 1, (size_t)(ui->q_n - 1) * sizeof *ui->q);
	ui->q_n--;
	return 1;
}

static void mark(struct ui *ui)
{
	ui->dirty = 1;
}

static void close_dialog(struct ui *ui);

/* ---- geometry ------------------------------------------------------------ */

int ui_input_rows_wanted(struct ui *ui)
{
	struct ui_spans rows = { 0 };
	int crow, ccol, n;
	int w = ui->cols - 2;

	ui_input_layout(&ui->input, w < 1 ? 1 : w, &rows, &crow, &ccol);
	n = (int)rows.n;
	if (crow + 1 > n)
		n = crow + 1;
	ui_spans_fini(&rows);
	return n;
}

int ui_notice_kept_shown(const struct ui *ui)
{
	return ui->n_kept < UI_NOTICE_KEPT_SHOWN ? ui->n_kept : UI_NOTICE_KEPT_SHOWN;
}

int ui_notice_kept_wrap(const struct ui *ui, int i, struct ui_spans *rows)
{
	size_t n0 = rows->n;
	int w = ui->cols - 1 - UI_NOTICE_TAG_COLS;
	const char *t = ui->kept[i].text;

	ui_text_wrap(t, strlen(t), w < 1 ? 1 : w, 1, rows);
	if (rows->n - n0 > UI_NOTICE_KEPT_WRAP) {
		rows->v[n0 + UI_NOTICE_KEPT_WRAP - 1].end = strlen(t); /* drawn cut */
		rows->n = n0 + UI_NOTICE_KEPT_WRAP;
	}
	return (int)(rows->n - n0);
}

void ui_relayout(struct ui *ui)
{
	int notice = ui->notice && *ui->notice;
	struct ui_spans rows = { 0 };

	for (int i = 0; i < ui_notice_kept_shown(ui); i++)
		notice += ui_notice_kept_wrap(ui, i, &rows);
	ui_spans_fini(&rows);

	ui_layout_compute(ui->cols, ui->rows, ui->sidebar_wanted, ui_input_rows_wanted(ui), notice,
			  &ui->lay);
	ui_transcript_set_width(&ui->tr, ui->lay.transcript.w - 2);
	ui_transcript_clamp(&ui->tr, ui->lay.transcript.h);
	ui_list_scroll_to(&ui->conv_list, ui->lay.sidebar.h - 1);
	if (ui->focus == UI_FOCUS_SIDEBAR && !ui->lay.sidebar_visible)
		ui->focus = UI_FOCUS_INPUT;
}

struct ui_rect ui_dialog_rect(const struct ui *ui)
{
	struct ui_rect r;
	int w = ui->cols - 4, h = ui->rows - 4;

	if (ui->dialog == UI_DIALOG_CONFIRM_DELETE || ui->dialog == UI_DIALOG_RENAME ||
	    ui->dialog == UI_DIALOG_PRESET_SAVE || ui->dialog == UI_DIALOG_MODEL_PATH ||
	    ui->dialog == UI_DIALOG_ATTACH_PATH) {
		if (w > 60)
			w = 60;
		if (h > 6)
			h = 6;
	} else {
		if (w > 100)
			w = 100;
		if (h > 30)
			h = 30;
	}
	if (w < 1)
		w = ui->cols;
	if (h < 1)
		h = ui->rows;
	r.w = w;
	r.h = h;
	r.x = (ui->cols - w) / 2;
	r.y = (ui->rows - h) / 2;
	return r;
}

static int list_height(const struct ui *ui)
{
	int h = ui_dialog_rect(ui).h - 5;

	return h < 1 ? 1 : h;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct ui *ui_new(const struct theme *theme)
{
	struct ui *ui = xcalloc(1, sizeof *ui);

	ui->theme = theme ? *theme : *theme_builtin_default();
	ui->cols = 80;
	ui->rows = 24;
	ui->sidebar_wanted = 1;
	ui->focus = UI_FOCUS_INPUT;
	ui->editing_msg_id = -1;
	ui->submitted_edit = -1;
	ui->active_conv = -1;
	ui->progress = -1;
	ui_keymap_init(&ui->km);
	ui_keymap_defaults(&ui->km);
	ui_input_init(&ui->input);
	ui_input_init(&ui->prompt);
	ui_transcript_init(&ui->tr, 60);
	ui_form_init(&ui->form);
	ui_screen_init(&ui->screen);
	ui->attach_dir = xstrdup(".");
	ui_relayout(ui);
	ui->dirty = 1;
	return ui;
}

static void free_models(struct ui *ui)
{
	for (int i = 0; i < ui->n_models; i++) {
		free(ui->models[i].name);
		free(ui->models[i].path);
		free(ui->models[i].details);
	}
	free(ui->models);
	ui->models = NULL;
	ui->n_models = 0;
}

static void free_dir(struct ui *ui)
{
	for (int i = 0; i < ui->n_dir; i++)
		free(ui->dir[i].name);
	free(ui->dir);
	ui->dir = NULL;
	ui->n_dir = 0;
}

static void free_convs(struct ui *ui)
{
	for (int i = 0; i < ui->n_convs; i++)
		free(ui->convs[i].title);
	free(ui->convs);
	ui->convs = NULL;
	ui->n_convs = 0;
}

void ui_free(struct ui *ui)
{
	if (!ui)
		return;
	ui_term_close(ui);
	ui_keymap_fini(&ui->km);
	ui_input_fini(&ui->input);
	ui_input_fini(&ui->prompt);
	ui_transcript_fini(&ui->tr);
	ui_form_fini(&ui->form);
	ui_screen_fini(&ui->screen);
	free_convs(ui);
	free_models(ui);
	free_dir(ui);
	free(ui->edit_saved_draft);
	free(ui->submitted);
	free(ui->st_model);
	free(ui->st_backend);
	free(ui->notice);
	for (int i = 0; i < ui->n_kept; i++)
		free(ui->kept[i].text);
	free(ui->kept);
	free(ui->system_prompt);
	free_strv(ui->presets, ui->n_presets);
	free_strv(ui->themes, ui->n_themes);
	free_strv(ui->attachments, ui->n_attachments);
	free(ui->progress_text);
	free(ui->model_error);
	free(ui->attach_dir);
	free(ui->dir_error);
	free(ui->preview);
	for (int i = 0; i < ui->q_n; i++)
		free(ui->q[i].text);
	free(ui->q);
	free(ui->last_text);
	free(ui);
}

int ui_keymap_bind(struct ui *ui, const char *key_name, const char *action_name, struct diag *d)
{
	int rc = ui_keymap_bind_names(&ui->km, key_name, action_name, d);

	mark(ui);
	return rc;
}

void ui_resize(struct ui *ui, int cols, int rows)
{
	if (cols < 0)
		cols = 0;
	if (rows < 0)
		rows = 0;
	if (cols == ui->cols && rows == ui->rows)
		return;
	ui->cols = cols;
	ui->rows = rows;
	ui_relayout(ui);
	push_event(ui, UI_EVENT_RESIZE, 0, rows, cols, NULL);
	mark(ui);
}

char *ui_screen_text(struct ui *ui)
{
	if (ui->dirty || ui->screen.cols != ui->cols || ui->screen.rows != ui->rows)
		ui_render(ui);
	ui->dirty = 0;
	return ui_screen_to_text(&ui->screen);
}

void ui_draw(struct ui *ui)
{
	if (!ui->dirty)
		return;
	ui_render(ui);
	ui->dirty = 0;
	ui_draw_frame(ui);
}

/* ---- data in ------------------------------------------------------------- */

void ui_conversations_set(struct ui *ui, const struct ui_conv_item *items, int n, int active_id)
{
	free_convs(ui);
	ui->convs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *ui->convs);
	for (int i = 0; i < n; i++) {
		ui->convs[i].id = items[i].id;
		ui->convs[i].title = xstrdup(items[i].title ? items[i].title : "");
	}
	ui->n_convs = n;
	ui->active_conv = active_id;
	ui_list_set_count(&ui->conv_list, n);
	for (int i = 0; i < n; i++)
		if (items[i].id == active_id)
			ui_list_select(&ui->conv_list, i, ui->lay.sidebar.h - 1);
	mark(ui);
}

void ui_transcript_clear(struct ui *ui)
{
	ui_transcript_reset(&ui->tr);
	mark(ui);
}

void ui_transcript_add(struct ui *ui, int msg_id, enum ui_role role, const char *text,
		       int branch_i, int branch_n)
{
	ui_transcript_add_msg(&ui->tr, msg_id, role, text, branch_i, branch_n);
	mark(ui);
}

void ui_transcript_append(struct ui *ui, int msg_id, const char *text, size_t len)
{
	ui_transcript_append_msg(&ui->tr, msg_id, text, len);
	mark(ui);
}

void ui_transcript_set(struct ui *ui, int msg_id, const char *text, int branch_i, int branch_n)
{
	ui_transcript_set_msg(&ui->tr, msg_id, text, branch_i, branch_n);
	mark(ui);
}

void ui_transcript_note(struct ui *ui, int msg_id, const char *note)
{
	ui_transcript_set_note(&ui->tr, msg_id, note);
	mark(ui);
}

void ui_transcript_truncate(struct ui *ui, int msg_id)
{
	ui_transcript_truncate_at(&ui->tr, ui_transcript_find(&ui->tr, msg_id));
	ui_transcript_clamp(&ui->tr, ui->lay.transcript.h);
	mark(ui);
}

void ui_generating_set(struct ui *ui, int on)
{
	ui->generating = on;
	mark(ui);
}

void ui_status_set(struct ui *ui, const struct ui_status *st)
{
	set_str(&ui->st_model, st->model);
	set_str(&ui->st_backend, st->backend);
	ui->ctx_used = st->ctx_used;
	ui->ctx_total = st->ctx_total;
	ui->tps = st->tokens_per_s;
	ui->accept = st->spec ? st->accept : -1.0;
	ui->mem_bytes = st->mem_bytes;
	mark(ui);
}

void ui_notice_set(struct ui *ui, enum ui_notice_level level, const char *text)
{
	set_str(&ui->notice, text && *text ? text : NULL);
	ui->notice_level = level;
	ui_relayout(ui);
	mark(ui);
}

void ui_notice_push(struct ui *ui, enum ui_notice_level level, const char *text)
{
	char *p;

	if (!text || !*text)
		return;
	ui->kept = xrealloc(ui->kept, (size_t)(ui->n_kept + 1) * sizeof *ui->kept);
	ui->kept[ui->n_kept].text = xstrdup(text);
	ui->kept[ui->n_kept].level = level;
	for (p = ui->kept[ui->n_kept].text; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	ui->n_kept++;
	ui_relayout(ui);
	mark(ui);
}

/* Esc on notices: the banner and the kept notices on screen go; the next
 * kept ones (if any) take their rows. */
static void notices_dismiss(struct ui *ui)
{
	int n = ui_notice_kept_shown(ui);

	for (int i = 0; i < n; i++)
		free(ui->kept[i].text);
	memmove(ui->kept, ui->kept + n, (size_t)(ui->n_kept - n) * sizeof *ui->kept);
	ui->n_kept -= n;
	ui_notice_set(ui, UI_NOTICE_INFO, NULL);
}

void ui_system_prompt_set(struct ui *ui, const char *text)
{
	set_str(&ui->system_prompt, text);
	mark(ui);
}

int ui_sampler_refuse(struct ui *ui, int index, const char *text, const char *msg)
{
	struct ui_form *f = &ui->form;

	if (ui->dialog != UI_DIALOG_SAMPLER || index < 0 || index >= f->n_fields)
		return 0;
	f->list.sel = index;
	ui_input_set(&ui->prompt, text ? text : "");
	f->editing = 1;
	snprintf(f->error, sizeof f->error, "%s", msg ? msg : "");
	mark(ui);
	return 1;
}

void ui_sampler_set(struct ui *ui, const struct ui_field *fields, int n)
{
	int sel = ui->form.list.sel;

	ui_form_set(&ui->form, fields, n);
	ui_list_select(&ui->form.list, sel, list_height(ui));
	mark(ui);
}

void ui_presets_set(struct ui *ui, const char *const *names, int n)
{
	free_strv(ui->presets, ui->n_presets);
	ui->presets = dup_strv(names, n);
	ui->n_presets = n;
	ui_list_set_count(&ui->preset_list, n);
	mark(ui);
}

void ui_models_set(struct ui *ui, const struct ui_model_item *items, int n)
{
	free_models(ui);
	ui->models = xcalloc((size_t)(n > 0 ? n : 1), sizeof *ui->models);
	for (int i = 0; i < n; i++) {
		ui->models[i].name = xstrdup(items[i].name ? items[i].name : "");
		ui->models[i].path = xstrdup(items[i].path ? items[i].path : "");
		ui->models[i].details = xstrdup(items[i].details ? items[i].details : "");
	}
	ui->n_models = n;
	ui_list_set_count(&ui->model_list, n + 1);
	mark(ui);
}

void ui_model_progress(struct ui *ui, double fraction, const char *text)
{
	ui->progress = fraction;
	set_str(&ui->progress_text, text);
	mark(ui);
}

void ui_model_loaded(struct ui *ui)
{
	ui->progress = -1;
	set_str(&ui->progress_text, NULL);
	if (ui->model_wait && ui->dialog == UI_DIALOG_MODELS)
		close_dialog(ui);
	ui->model_wait = 0;
	mark(ui);
}

void ui_model_error(struct ui *ui, const char *text)
{
	set_str(&ui->model_error, text);
	if (text)
		ui->model_wait = 0; /* the menu stays open to show it */
	mark(ui);
}

void ui_themes_set(struct ui *ui, const char *const *names, int n)
{
	free_strv(ui->themes, ui->n_themes);
	ui->themes = dup_strv(names, n);
	ui->n_themes = n;
	ui_list_set_count(&ui->theme_list, n);
	mark(ui);
}

void ui_theme_apply(struct ui *ui, const struct theme *theme)
{
	ui->theme = theme ? *theme : *theme_builtin_default();
	ui_term_apply_theme(ui);
	mark(ui);
}

void ui_image_preview_set(struct ui *ui, const uint8_t *rgb, int w, int h)
{
	free(ui->preview);
	ui->preview = NULL;
	ui->preview_w = ui->preview_h = 0;
	if (rgb && w > 0 && h > 0 && (size_t)w <= ((size_t)1 << 14) && (size_t)h <= ((size_t)1 << 14)) {
		size_t n = (size_t)w * (size_t)h * 3;
		ui->preview = xmalloc(n);
		memcpy(ui->preview, rgb, n);
		ui->preview_w = w;
		ui->preview_h = h;
	}
	mark(ui);
}

void ui_attachments_set(struct ui *ui, const char *const *names, int n)
{
	free_strv(ui->attachments, ui->n_attachments);
	ui->attachments = dup_strv(names, n);
	ui->n_attachments = n;
	ui_list_set_count(&ui->att_list, n);
	mark(ui);
}

/* ---- file browser --------------------------------------------------------- */

static int has_image_ext(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
		       !strcasecmp(dot, ".jpeg"));
}

static int cmp_dirent(const void *a, const void *b)
{
	const struct ui_dirent *x = a, *y = b;

	if (x->is_dir != y->is_dir)
		return y->is_dir - x->is_dir; /* directories first */
	return strcmp(x->name, y->name);
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = xmalloc(n);

	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* List ui->attach_dir: "..", sub-directories, PNG/JPEG files. */
static void dir_load(struct ui *ui)
{
	DIR *dh;
	struct dirent *de;
	int cap = 0;

	free_dir(ui);
	set_str(&ui->dir_error, NULL);
	dh = opendir(ui->attach_dir);
	if (!dh) {
		/* the dialog title shows the directory; the reason fits below */
		set_str(&ui->dir_error, strerror(errno));
		ui_list_set_count(&ui->dir_list, 0);
		return;
	}
	while ((de = readdir(dh))) {
		struct stat st;
		char *full;
		int is_dir;

		if (!strcmp(de->d_name, "."))
			continue;
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".."))
			continue; /* hidden files */
		full = path_join(ui->attach_dir, de->d_name);
		is_dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
		free(full);
		if (!is_dir && !has_image_ext(de->d_name))
			continue;
		if (ui->n_dir == cap) {
			cap = cap ? cap * 2 : 32;
			ui->dir = xrealloc(ui->dir, (size_t)cap * sizeof *ui->dir);
		}
		ui->dir[ui->n_dir].name = xstrdup(de->d_name);
		ui->dir[ui->n_dir].is_dir = is_dir;
		ui->n_dir++;
	}
	closedir(dh);
	if (ui->n_dir)
		qsort(ui->dir, (size_t)ui->n_dir, sizeof *ui->dir, cmp_dirent);
	ui->dir_list.sel = ui->dir_list.top = 0;
	ui_list_set_count(&ui->dir_list, ui->n_dir);
}

void ui_attach_dir_set(struct ui *ui, const char *dir)
{
	set_str(&ui->attach_dir, dir && *dir ? dir : ".");
	if (ui->dialog == UI_DIALOG_ATTACH)
		dir_load(ui);
	mark(ui);
}

static void attach_preview_request(struct ui *ui)
{
	if (ui->n_dir && !ui->dir[ui->dir_list.sel].is_dir) {
		char *p = path_join(ui->attach_dir, ui->dir[ui->dir_list.sel].name);
		push_event(ui, UI_EVENT_ATTACH_PREVIEW, 0, 0, 0, p);
		free(p);
	} else if (ui->preview) {
		ui_image_preview_set(ui, NULL, 0, 0);
	}
}

static void dir_enter(struct ui *ui, const char *name)
{
	char *p;

	if (!strcmp(name, "..")) {
		char *slash = strrchr(ui->attach_dir, '/');
		if (!strcmp(ui->attach_dir, ".") || !strcmp(ui->attach_dir, ".."))
			p = path_join(ui->attach_dir, "..");
		else if (slash && slash[1] == '.' && slash[2] == '.' && !slash[3])
			p = path_join(ui->attach_dir, "..");
		else if (slash == ui->attach_dir)
			p = xstrdup("/");
		else if (slash)
			p = xstrndup(ui->attach_dir, (size_t)(slash - ui->attach_dir));
		else
			p = xstrdup(".");
	} else if (!strcmp(ui->attach_dir, "/")) {
		size_t n = strlen(name) + 2;
		p = xmalloc(n);
		snprintf(p, n, "/%s", name);
	} else {
		p = path_join(ui->attach_dir, name);
	}
	{
		/* canonical, so the header reads /home/me/pics, not ./../.. */
		char *r = realpath(p, NULL);

		if (r) {
			free(p);
			p = r;
		}
	}
	free(ui->attach_dir);
	ui->attach_dir = p;
	dir_load(ui);
	attach_preview_request(ui);
}

/* A path typed in the attach dialog that names a directory: browse it. */
static int dir_typed(struct ui *ui, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	set_str(&ui->attach_dir, path);
	dir_enter(ui, ".");
	return 1;
}

/* ---- actions on messages ---------------------------------------------------- */

/* The message an action applies to: the selected one when the transcript
 * is focused on a selection, else the last message of `role` (-1: any). */
static int target_msg(struct ui *ui, int role)
{
	if (ui->tr.selected >= 0 && ui->tr.selected < ui->tr.n_msgs &&
	    (role < 0 || (int)ui->tr.msgs[ui->tr.selected].role == role))
		return ui->tr.selected;
	for (int i = ui->tr.n_msgs - 1; i >= 0; i--)
		if (role < 0 || (int)ui->tr.msgs[i].role == role)
			return i;
	return -1;
}

static void copy_message(struct ui *ui)
{
	int m = target_msg(ui, ui->tr.selected >= 0 ? -1 : UI_ROLE_ASSISTANT);
	struct strbuf sb;
	char note[96];

	if (m < 0)
		return;
	strbuf_init(&sb, 0);
	ui_osc52_encode(ui->tr.msgs[m].text.data ? ui->tr.msgs[m].text.data : "",
			ui->tr.msgs[m].text.len, &sb);
	ui_term_write(ui, strbuf_cstr(&sb), sb.len);
	strbuf_fini(&sb);
	snprintf(note, sizeof note, "copied %zu bytes to the clipboard (OSC 52)",
		 ui->tr.msgs[m].text.len);
	ui_notice_set(ui, UI_NOTICE_INFO, note);
	push_event(ui, UI_EVENT_COPY, ui->tr.msgs[m].id, m, 0, NULL);
}

static void start_edit(struct ui *ui)
{
	int m = target_msg(ui, UI_ROLE_USER);

	if (m < 0)
		return;
	free(ui->edit_saved_draft);
	ui->edit_saved_draft = xstrdup(ui_input_text(&ui->input));
	ui->editing_msg_id = ui->tr.msgs[m].id;
	ui_input_set(&ui->input, strbuf_cstr(&ui->tr.msgs[m].text));
	ui->focus = UI_FOCUS_INPUT;
	ui_relayout(ui);
}

static void stop_edit(struct ui *ui)
{
	if (ui->editing_msg_id < 0)
		return;
	ui->editing_msg_id = -1;
	ui_input_set(&ui->input, ui->edit_saved_draft ? ui->edit_saved_draft : "");
	free(ui->edit_saved_draft);
	ui->edit_saved_draft = NULL;
	ui_relayout(ui);
}

static void branch_flip(struct ui *ui, int dir)
{
	int m = -1;

	if (ui->tr.selected >= 0)
		m = ui->tr.selected;
	else
		for (int i = ui->tr.n_msgs - 1; i >= 0 && m < 0; i--)
			if (ui->tr.msgs[i].branch_n > 1)
				m = i;
	if (m < 0 || ui->tr.msgs[m].branch_n <= 1)
		return;
	push_event(ui, dir < 0 ? UI_EVENT_BRANCH_PREV : UI_EVENT_BRANCH_NEXT, ui->tr.msgs[m].id, m,
		   0, NULL);
}

static void submit(struct ui *ui)
{
	const char *t = ui_input_text(&ui->input);

	if (!*t)
		return;
	if (ui->generating) {
		ui_notice_set(ui, UI_NOTICE_INFO, "still generating: Esc stops it");
		return;
	}
	ui_input_history_add(&ui->input, t);
	set_str(&ui->submitted, t);
	ui->submitted_edit = ui->editing_msg_id;
	if (ui->editing_msg_id >= 0) {
		push_event(ui, UI_EVENT_MESSAGE_EDIT, ui->editing_msg_id, 0, 0, t);
		ui->editing_msg_id = -1;
		/* the draft set aside for the edit comes back */
		ui_input_set(&ui->input, ui->edit_saved_draft ? ui->edit_saved_draft : "");
		free(ui->edit_saved_draft);
		ui->edit_saved_draft = NULL;
	} else {
		push_event(ui, UI_EVENT_SUBMIT, 0, 0, 0, t);
		ui_input_clear(&ui->input);
	}
	ui->tr.scroll = 0;
	ui->tr.selected = -1;
	ui_relayout(ui);
}

void ui_submit_refuse(struct ui *ui)
{
	char *typed;

	if (!ui->submitted)
		return;
	typed = xstrdup(ui_input_text(&ui->input));
	if (ui->submitted_edit >= 0 && ui->editing_msg_id < 0) {
		/* back to editing; what was typed since is the draft again */
		ui->editing_msg_id = ui->submitted_edit;
		free(ui->edit_saved_draft);
		ui->edit_saved_draft = typed;
		typed = NULL;
	}
	ui_input_set(&ui->input, ui->submitted);
	if (typed && *typed) {
		ui_input_insert(&ui->input, "\n", 1);
		ui_input_insert(&ui->input, typed, strlen(typed));
	}
	free(typed);
	free(ui->submitted);
	ui->submitted = NULL;
	ui->submitted_edit = -1;
	ui->focus = UI_FOCUS_INPUT;
	ui_relayout(ui);
	mark(ui);
}

static int conv_index(const struct ui *ui, int id)
{
	for (int i = 0; i < ui->n_convs; i++)
		if (ui->convs[i].id == id)
			return i;
	return -1;
}

/* ---- dialogs ------------------------------------------------------------------ */

static void open_dialog(struct ui *ui, enum ui_dialog d, const char *prefill)
{
	ui->dialog = d;
	ui_input_clear(&ui->prompt);
	if (prefill)
		ui_input_set(&ui->prompt, prefill);
	ui->help_scroll = 0;
	ui->form.editing = 0;
	ui->form.error[0] = '\0';
	if (d == UI_DIALOG_ATTACH) {
		dir_load(ui);
		attach_preview_request(ui);
	}
	mark(ui);
}

static void close_dialog(struct ui *ui)
{
	ui->dialog = UI_DIALOG_NONE;
	ui->form.editing = 0;
	mark(ui);
}

/* Editing actions shared by every text field.  Returns 1 when handled. */
static int edit_action(struct ui_input *in, enum ui_action a, int width)
{
	switch (a) {
	case UI_ACTION_LEFT: ui_input_left(in); return 1;
	case UI_ACTION_RIGHT: ui_input_right(in); return 1;
	case UI_ACTION_WORD_LEFT: ui_input_word_left(in); return 1;
	case UI_ACTION_WORD_RIGHT: ui_input_word_right(in); return 1;
	case UI_ACTION_HOME: ui_input_home(in); return 1;
	case UI_ACTION_END: ui_input_end(in); return 1;
	case UI_ACTION_BACKSPACE: ui_input_backspace(in); return 1;
	case UI_ACTION_DELETE: ui_input_delete(in); return 1;
	case UI_ACTION_KILL_LINE: ui_input_kill_line(in); return 1;
	case UI_ACTION_KILL_LINE_START: ui_input_kill_line_start(in); return 1;
	case UI_ACTION_KILL_WORD: ui_input_kill_word(in); return 1;
	case UI_ACTION_YANK: ui_input_yank(in); return 1;
	case UI_ACTION_UP: return ui_input_vertical(in, -1, width);
	case UI_ACTION_DOWN: return ui_input_vertical(in, +1, width);
	default: return 0;
	}
}

static int printable(uint32_t key)
{
	return !(key & UI_KEY_MODS) && key < UI_KEY_BASE && key >= 0x20 && key != 0x7f;
}

static void insert_key(struct ui_input *in, uint32_t key)
{
	char buf[4];
	int n = utf8_encode(key, buf);

	if (n > 0)
		ui_input_insert(in, buf, (size_t)n);
}

static int prompt_width(const struct ui *ui)
{
	int w = ui_dialog_rect(ui).w - 4;

	return w < 1 ? 1 : w;
}

/* Keys for a dialog's text field; returns 1 when consumed. */
static int prompt_key(struct ui *ui, uint32_t key, enum ui_action a, int multiline)
{
	if (a == UI_ACTION_NEWLINE && multiline) {
		ui_input_insert(&ui->prompt, "\n", 1);
		return 1;
	}
	if (edit_action(&ui->prompt, a, prompt_width(ui)))
		return 1;
	if (a == UI_ACTION_NONE && printable(key)) {
		insert_key(&ui->prompt, key);
		return 1;
	}
	return 0;
}

static void sampler_commit(struct ui *ui)
{
	struct ui_form *f = &ui->form;
	struct ui_form_field *fld;
	char out[256];

	if (!f->n_fields)
		return;
	fld = &f->fields[f->list.sel];
	if (ui_form_validate(fld, ui_input_text(&ui->prompt), out, sizeof out, f->error,
			     sizeof f->error))
		return; /* stay in edit mode with the error shown */
	set_str(&fld->value, out);
	f->editing = 0;
	f->error[0] = '\0';
	push_event(ui, UI_EVENT_SAMPLER_FIELD, 0, f->list.sel, 0, out);
}

static void dialog_key(struct ui *ui, uint32_t key, enum ui_action a)
{
	int lh = list_height(ui);

	switch (ui->dialog) {
	case UI_DIALOG_HELP:
		if (a == UI_ACTION_UP || key == 'k')
			ui->help_scroll--;
		else if (a == UI_ACTION_DOWN || key == 'j')
			ui->help_scroll++;
		else if (a == UI_ACTION_SCROLL_UP)
			ui->help_scroll -= lh;
		else if (a == UI_ACTION_SCROLL_DOWN)
			ui->help_scroll += lh;
		else if (a == UI_ACTION_CANCEL || a == UI_ACTION_HELP || a == UI_ACTION_SUBMIT ||
			 key == 'q' || key == '?')
			close_dialog(ui);
		if (ui->help_scroll < 0)
			ui->help_scroll = 0; /* upper bound clamped by render */
		break;
	case UI_DIALOG_CONFIRM_DELETE:
		if (key == 'y' || key == 'Y' || a == UI_ACTION_SUBMIT) {
			if (ui->n_convs)
				push_event(ui, UI_EVENT_CONV_DELETE, ui->convs[ui->conv_list.sel].id,
					   ui->conv_list.sel, 0, NULL);
			close_dialog(ui);
		} else if (key == 'n' || key == 'N' || a == UI_ACTION_CANCEL) {
			close_dialog(ui);
		}
		break;
	case UI_DIALOG_RENAME:
	case UI_DIALOG_PRESET_SAVE:
	case UI_DIALOG_MODEL_PATH:
	case UI_DIALOG_ATTACH_PATH:
	case UI_DIALOG_SYSTEM_PROMPT:
		if (a == UI_ACTION_CANCEL) {
			enum ui_dialog back = ui->dialog == UI_DIALOG_PRESET_SAVE ? UI_DIALOG_SAMPLER
					      : ui->dialog == UI_DIALOG_MODEL_PATH ? UI_DIALOG_MODELS
					      : ui->dialog == UI_DIALOG_ATTACH_PATH ? UI_DIALOG_ATTACH
										  : UI_DIALOG_NONE;
			close_dialog(ui);
			ui->dialog = back;
		} else if (a == UI_ACTION_SUBMIT) {
			const char *t = ui_input_text(&ui->prompt);
			enum ui_dialog d = ui->dialog;
			if (d == UI_DIALOG_RENAME && *t && ui->n_convs)
				push_event(ui, UI_EVENT_CONV_RENAME, ui->convs[ui->conv_list.sel].id,
					   ui->conv_list.sel, 0, t);
			else if (d == UI_DIALOG_PRESET_SAVE && *t)
				push_event(ui, UI_EVENT_PRESET_SAVE, 0, 0, 0, t);
			else if (d == UI_DIALOG_MODEL_PATH && *t) {
				push_event(ui, UI_EVENT_MODEL_PATH, 0, 0, 0, t);
				ui->model_wait = 1;
			}
			else if (d == UI_DIALOG_ATTACH_PATH && *t && !dir_typed(ui, t))
				push_event(ui, UI_EVENT_ATTACH, 0, 0, 0, t);
			else if (d == UI_DIALOG_SYSTEM_PROMPT) {
				push_event(ui, UI_EVENT_SYSTEM_PROMPT, 0, 0, 0, t);
				set_str(&ui->system_prompt, t);
			}
			close_dialog(ui);
			if (d == UI_DIALOG_PRESET_SAVE)
				ui->dialog = UI_DIALOG_SAMPLER;
			else if (d == UI_DIALOG_MODEL_PATH)
				ui->dialog = UI_DIALOG_MODELS; /* to watch progress */
			else if (d == UI_DIALOG_ATTACH_PATH)
				ui->dialog = UI_DIALOG_ATTACH;
		} else {
			prompt_key(ui, key, a, ui->dialog == UI_DIALOG_SYSTEM_PROMPT);
		}
		break;
	case UI_DIALOG_SAMPLER:
		if (ui->form.editing) {
			if (a == UI_ACTION_CANCEL) {
				ui->form.editing = 0;
				ui->form.error[0] = '\0';
			} else if (a == UI_ACTION_SUBMIT) {
				sampler_commit(ui);
			} else {
				prompt_key(ui, key, a, 0);
			}
			break;
		}
		if (a == UI_ACTION_CANCEL) {
			close_dialog(ui);
		} else if (a == UI_ACTION_FOCUS_NEXT || a == UI_ACTION_FOCUS_PREV) {
			ui->sampler_on_presets = !ui->sampler_on_presets;
		} else if (ui->sampler_on_presets) {
			if (a == UI_ACTION_UP)
				ui_list_move(&ui->preset_list, -1, lh);
			else if (a == UI_ACTION_DOWN)
				ui_list_move(&ui->preset_list, 1, lh);
			else if (a == UI_ACTION_SUBMIT && ui->n_presets)
				push_event(ui, UI_EVENT_PRESET_LOAD, 0, ui->preset_list.sel, 0,
					   ui->presets[ui->preset_list.sel]);
			else if (key == 's')
				open_dialog(ui, UI_DIALOG_PRESET_SAVE,
					    ui->n_presets ? ui->presets[ui->preset_list.sel] : NULL);
		} else {
			struct ui_form *f = &ui->form;
			if (a == UI_ACTION_UP)
				ui_list_move(&f->list, -1, lh);
			else if (a == UI_ACTION_DOWN)
				ui_list_move(&f->list, 1, lh);
			else if (key == 's')
				open_dialog(ui, UI_DIALOG_PRESET_SAVE, NULL);
			else if (f->n_fields && (a == UI_ACTION_SUBMIT || key == ' ')) {
				struct ui_form_field *fld = &f->fields[f->list.sel];
				if (fld->type == UI_FIELD_BOOL) {
					const char *nv = !strcmp(fld->value, "true") ? "false" : "true";
					set_str(&fld->value, nv);
					push_event(ui, UI_EVENT_SAMPLER_FIELD, 0, f->list.sel, 0, nv);
				} else if (a == UI_ACTION_SUBMIT) {
					ui_input_set(&ui->prompt, fld->value);
					f->editing = 1;
					f->error[0] = '\0';
				}
			}
		}
		break;
	case UI_DIALOG_MODELS:
		if (a == UI_ACTION_CANCEL)
			close_dialog(ui);
		else if (a == UI_ACTION_UP)
			ui_list_move(&ui->model_list, -1, lh);
		else if (a == UI_ACTION_DOWN)
			ui_list_move(&ui->model_list, 1, lh);
		else if (a == UI_ACTION_SUBMIT) {
			if (ui->model_list.sel < ui->n_models) {
				set_str(&ui->model_error, NULL);
				ui->model_wait = 1; /* closes once loaded */
				push_event(ui, UI_EVENT_MODEL_SELECT, 0, ui->model_list.sel, 0,
					   ui->models[ui->model_list.sel].path);
			} else {
				open_dialog(ui, UI_DIALOG_MODEL_PATH, NULL);
			}
		} else if (key == 'p' || key == '/') {
			open_dialog(ui, UI_DIALOG_MODEL_PATH, NULL);
		}
		break;
	case UI_DIALOG_THEMES:
		if (a == UI_ACTION_CANCEL)
			close_dialog(ui);
		else if (a == UI_ACTION_UP)
			ui_list_move(&ui->theme_list, -1, lh);
		else if (a == UI_ACTION_DOWN)
			ui_list_move(&ui->theme_list, 1, lh);
		else if (a == UI_ACTION_SUBMIT && ui->n_themes) {
			push_event(ui, UI_EVENT_THEME_SELECT, 0, ui->theme_list.sel, 0,
				   ui->themes[ui->theme_list.sel]);
			close_dialog(ui);
		}
		break;
	case UI_DIALOG_ATTACH:
		if (a == UI_ACTION_CANCEL) {
			close_dialog(ui);
		} else if (a == UI_ACTION_FOCUS_NEXT || a == UI_ACTION_FOCUS_PREV) {
			ui->attach_on_list = !ui->attach_on_list && ui->n_attachments > 0;
		} else if (ui->attach_on_list) {
			if (a == UI_ACTION_UP)
				ui_list_move(&ui->att_list, -1, lh);
			else if (a == UI_ACTION_DOWN)
				ui_list_move(&ui->att_list, 1, lh);
			else if ((a == UI_ACTION_DELETE || a == UI_ACTION_BACKSPACE || key == 'd') &&
				 ui->n_attachments)
				push_event(ui, UI_EVENT_ATTACH_REMOVE, 0, ui->att_list.sel, 0,
					   ui->attachments[ui->att_list.sel]);
		} else if (a == UI_ACTION_UP || a == UI_ACTION_DOWN) {
			ui_list_move(&ui->dir_list, a == UI_ACTION_UP ? -1 : 1, lh);
			attach_preview_request(ui);
		} else if (a == UI_ACTION_SUBMIT && ui->n_dir) {
			struct ui_dirent *e = &ui->dir[ui->dir_list.sel];
			if (e->is_dir) {
				char *name = xstrdup(e->name);
				dir_enter(ui, name);
				free(name);
			} else {
				char *p = path_join(ui->attach_dir, e->name);
				push_event(ui, UI_EVENT_ATTACH, 0, 0, 0, p);
				free(p);
			}
		} else if (a == UI_ACTION_BACKSPACE) {
			dir_enter(ui, "..");
		} else if (key == '/' || key == 'p') {
			open_dialog(ui, UI_DIALOG_ATTACH_PATH, NULL);
		}
		break;
	case UI_DIALOG_NONE:
		break;
	}
	mark(ui);
}

/* ---- main key handling ------------------------------------------------------ */

static void focus_cycle(struct ui *ui, int dir)
{
	int order[3] = { UI_FOCUS_INPUT, UI_FOCUS_TRANSCRIPT, UI_FOCUS_SIDEBAR };
	int n = ui->lay.sidebar_visible ? 3 : 2, i;

	for (i = 0; i < n && order[i] != (int)ui->focus; i++)
		;
	i = ((i + dir) % n + n) % n;
	ui->focus = (enum ui_focus)order[i];
	if (ui->focus == UI_FOCUS_TRANSCRIPT && ui->tr.selected < 0)
		ui_transcript_select(&ui->tr, 0, ui->lay.transcript.h);
	if (ui->focus != UI_FOCUS_TRANSCRIPT)
		ui->tr.selected = -1;
}

static void conv_step(struct ui *ui, int dir)
{
	int i = conv_index(ui, ui->active_conv);

	if (ui->n_convs == 0)
		return;
	i = i < 0 ? 0 : i + dir;
	if (i < 0 || i >= ui->n_convs)
		return;
	push_event(ui, UI_EVENT_CONV_SELECT, ui->convs[i].id, i, 0, NULL);
}

/* Plain letters act on the selected message when the transcript has focus. */
static enum ui_action transcript_letter(uint32_t key)
{
	switch (key) {
	case 'e': return UI_ACTION_EDIT_MESSAGE;
	case 'c': case 'y': return UI_ACTION_COPY_MESSAGE;
	case 'r': return UI_ACTION_REGENERATE;
	case '[': case 'h': return UI_ACTION_BRANCH_PREV;
	case ']': case 'l': return UI_ACTION_BRANCH_NEXT;
	case 'k': return UI_ACTION_UP;
	case 'j': return UI_ACTION_DOWN;
	case 'g': return UI_ACTION_SCROLL_TOP;
	case 'G': return UI_ACTION_SCROLL_BOTTOM;
	default: return UI_ACTION_NONE;
	}
}

void ui_handle_key(struct ui *ui, uint32_t key)
{
	enum ui_action a = ui_keymap_lookup(&ui->km, key);
	int th = ui->lay.transcript.h;
	int iw = ui->cols - 2;

	mark(ui);
	if (a == UI_ACTION_QUIT) { /* works everywhere, dialogs included */
		push_event(ui, UI_EVENT_QUIT, 0, 0, 0, NULL);
		return;
	}
	if (ui->dialog != UI_DIALOG_NONE) {
		dialog_key(ui, key, a);
		return;
	}
	if (a == UI_ACTION_NONE && ui->focus == UI_FOCUS_TRANSCRIPT)
		a = transcript_letter(key);
	if (a == UI_ACTION_NONE && ui->focus == UI_FOCUS_SIDEBAR && (key == 'd' || key == 'r'))
		a = key == 'd' ? UI_ACTION_DELETE_CONVERSATION : UI_ACTION_RENAME_CONVERSATION;
	if (a == UI_ACTION_NONE) {
		if (!printable(key))
			return;
		/* '?' is help from the transcript and the list; in the editor
		 * it is text (a message may start with one) */
		if (key == '?' && ui->focus != UI_FOCUS_INPUT) {
			open_dialog(ui, UI_DIALOG_HELP, NULL);
			return;
		}
		ui->focus = UI_FOCUS_INPUT;
		ui->tr.selected = -1;
		insert_key(&ui->input, key);
		ui_relayout(ui);
		return;
	}

	switch (a) {
	case UI_ACTION_QUIT: push_event(ui, UI_EVENT_QUIT, 0, 0, 0, NULL); return;
	case UI_ACTION_HELP: open_dialog(ui, UI_DIALOG_HELP, NULL); return;
	case UI_ACTION_CANCEL:
		if (ui->generating)
			push_event(ui, UI_EVENT_CANCEL, 0, 0, 0, NULL);
		else if (ui->editing_msg_id >= 0)
			stop_edit(ui);
		else if (ui->notice || ui->n_kept)
			notices_dismiss(ui);
		else if (ui->focus != UI_FOCUS_INPUT) {
			ui->focus = UI_FOCUS_INPUT;
			ui->tr.selected = -1;
		}
		return;
	case UI_ACTION_SUBMIT:
		if (ui->focus == UI_FOCUS_SIDEBAR) {
			if (ui->n_convs)
				push_event(ui, UI_EVENT_CONV_SELECT, ui->convs[ui->conv_list.sel].id,
					   ui->conv_list.sel, 0, NULL);
			ui->focus = UI_FOCUS_INPUT;
		} else if (ui->focus == UI_FOCUS_TRANSCRIPT) {
			start_edit(ui);
		} else {
			submit(ui);
		}
		return;
	case UI_ACTION_NEWLINE:
		ui->focus = UI_FOCUS_INPUT;
		ui_input_insert(&ui->input, "\n", 1);
		ui_relayout(ui);
		return;
	case UI_ACTION_FOCUS_NEXT: focus_cycle(ui, 1); return;
	case UI_ACTION_FOCUS_PREV: focus_cycle(ui, -1); return;
	case UI_ACTION_TOGGLE_SIDEBAR:
		ui->sidebar_wanted = !ui->sidebar_wanted;
		ui_relayout(ui);
		return;
	case UI_ACTION_NEW_CONVERSATION: push_event(ui, UI_EVENT_CONV_NEW, 0, 0, 0, NULL); return;
	case UI_ACTION_RENAME_CONVERSATION:
	case UI_ACTION_DELETE_CONVERSATION: {
		int i = ui->focus == UI_FOCUS_SIDEBAR ? ui->conv_list.sel
						      : conv_index(ui, ui->active_conv);
		if (i < 0 || i >= ui->n_convs)
			return;
		ui->conv_list.sel = i;
		open_dialog(ui, a == UI_ACTION_RENAME_CONVERSATION ? UI_DIALOG_RENAME
								   : UI_DIALOG_CONFIRM_DELETE,
			    a == UI_ACTION_RENAME_CONVERSATION ? ui->convs[i].title : NULL);
		return;
	}
	case UI_ACTION_NEXT_CONVERSATION: conv_step(ui, 1); return;
	case UI_ACTION_PREV_CONVERSATION: conv_step(ui, -1); return;
	case UI_ACTION_REGENERATE: {
		int m = target_msg(ui, UI_ROLE_ASSISTANT);
		if (m >= 0 && !ui->generating)
			push_event(ui, UI_EVENT_REGENERATE, ui->tr.msgs[m].id, m, 0, NULL);
		return;
	}
	case UI_ACTION_EDIT_MESSAGE: start_edit(ui); return;
	case UI_ACTION_BRANCH_PREV: branch_flip(ui, -1); return;
	case UI_ACTION_BRANCH_NEXT: branch_flip(ui, 1); return;
	case UI_ACTION_COPY_MESSAGE: copy_message(ui); return;
	case UI_ACTION_SYSTEM_PROMPT: open_dialog(ui, UI_DIALOG_SYSTEM_PROMPT, ui->system_prompt); return;
	case UI_ACTION_SAMPLER: open_dialog(ui, UI_DIALOG_SAMPLER, NULL); return;
	case UI_ACTION_MODELS: open_dialog(ui, UI_DIALOG_MODELS, NULL); return;
	case UI_ACTION_ATTACH: open_dialog(ui, UI_DIALOG_ATTACH, NULL); return;
	case UI_ACTION_THEMES: open_dialog(ui, UI_DIALOG_THEMES, NULL); return;
	case UI_ACTION_TOGGLE_THINKING:
		ui_transcript_set_hide_think(&ui->tr, !ui->tr.hide_think);
		ui_transcript_clamp(&ui->tr, th);
		return;
	case UI_ACTION_SCROLL_UP: ui_transcript_scroll(&ui->tr, th > 2 ? th - 2 : 1, th); return;
	case UI_ACTION_SCROLL_DOWN: ui_transcript_scroll(&ui->tr, -(th > 2 ? th - 2 : 1), th); return;
	case UI_ACTION_SCROLL_TOP: ui_transcript_scroll(&ui->tr, 1L << 40, th); return;
	case UI_ACTION_SCROLL_BOTTOM: ui->tr.scroll = 0; return;
	case UI_ACTION_REDRAW: ui_draw_invalidate(ui); return;
	case UI_ACTION_HISTORY_PREV:
		ui_input_history_prev(&ui->input);
		ui_relayout(ui);
		return;
	case UI_ACTION_HISTORY_NEXT:
		ui_input_history_next(&ui->input);
		ui_relayout(ui);
		return;
	default:
		break;
	}

	/* movement and editing, by focus */
	if (ui->focus == UI_FOCUS_SIDEBAR) {
		if (a == UI_ACTION_UP || a == UI_ACTION_DOWN)
			ui_list_move(&ui->conv_list, a == UI_ACTION_UP ? -1 : 1,
				     ui->lay.sidebar.h - 1);
		return;
	}
	if (ui->focus == UI_FOCUS_TRANSCRIPT) {
		if (a == UI_ACTION_UP || a == UI_ACTION_DOWN)
			ui_transcript_select(&ui->tr, a == UI_ACTION_UP ? -1 : 1, th);
		return;
	}
	if (a == UI_ACTION_UP && !ui_input_vertical(&ui->input, -1, iw)) {
		ui_input_history_prev(&ui->input);
	} else if (a == UI_ACTION_DOWN && !ui_input_vertical(&ui->input, 1, iw)) {
		ui_input_history_next(&ui->input);
	} else if (a != UI_ACTION_UP && a != UI_ACTION_DOWN) {
		edit_action(&ui->input, a, iw);
	}
	ui_relayout(ui);
}

void ui_paste(struct ui *ui, const char *text, size_t len)
{
	mark(ui);
	if (ui->dialog != UI_DIALOG_NONE) {
		if (ui->dialog == UI_DIALOG_SYSTEM_PROMPT)
			ui_input_insert(&ui->prompt, text, len);
		else if (ui->dialog == UI_DIALOG_RENAME || ui->dialog == UI_DIALOG_PRESET_SAVE ||
			 ui->dialog == UI_DIALOG_MODEL_PATH || ui->dialog == UI_DIALOG_ATTACH_PATH ||
			 (ui->dialog == UI_DIALOG_SAMPLER && ui->form.editing)) {
			/* single-line fields: newlines become spaces */
			char *one = xstrndup(text, len);
			for (char *p = one; *p; p++)
				if (*p == '\n' || *p == '\r')
					*p = ' ';
			ui_input_insert(&ui->prompt, one, strlen(one));
			free(one);
		}
		return;
	}
	ui->focus = UI_FOCUS_INPUT;
	ui->tr.selected = -1;
	ui_input_insert(&ui->input, text, len);
	ui_relayout(ui);
}
