/* ui/render.c — paint the UI state into the off-screen frame (ui->screen).
 *
 * Pure: the same state always gives the same cells, so tests read frames
 * as text.  Owns the look: what each pane shows and with which theme role.
 * Order: panes first, then the open dialog on top; the cursor is placed
 * last (in the focused text field, hidden otherwise).
 */
#include "config.h"

#include "ui/ui_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "themes/theme.h"
#include "ui/image_impl.h"

#define HLINE "\xe2\x94\x80" /* ─ */
#define VLINE "\xe2\x94\x82" /* │ */

static void hline(struct ui_screen *s, int x, int y, int w, int role)
{
	for (int i = 0; i < w; i++)
		ui_screen_puts(s, x + i, y, 1, HLINE, role);
}

static void render_sidebar(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect r = ui->lay.sidebar;
	int focus = ui->focus == UI_FOCUS_SIDEBAR;

	if (!ui->lay.sidebar_visible || r.h <= 0)
		return;
	ui_screen_fill(s, r, THEME_ROLE_SIDEBAR);
	ui_screen_puts(s, r.x + 1, r.y, r.w - 1, "Conversations", THEME_ROLE_TITLE);
	for (int i = 0; i + 1 < r.h; i++) {
		int k = ui->conv_list.top + i;
		int role = THEME_ROLE_SIDEBAR;
		struct ui_rect row = { r.x, r.y + 1 + i, r.w, 1 };

		if (k >= ui->n_convs)
			break;
		if (ui->convs[k].id == ui->active_conv)
			role = THEME_ROLE_SIDEBAR_ACTIVE;
		ui_screen_fill(s, row, role);
		ui_screen_puts(s, r.x, row.y, 2, ui->convs[k].id == ui->active_conv ? "\xe2\x96\x8c" : " ",
			       THEME_ROLE_BORDER_FOCUS);
		ui_screen_puts(s, r.x + 1, row.y, r.w - 1, ui->convs[k].title, role);
		if (focus && k == ui->conv_list.sel)
			ui_screen_set_role(s, row, THEME_ROLE_SELECTION);
	}
	for (int y = 0; y < ui->lay.sep.h; y++)
		ui_screen_puts(s, ui->lay.sep.x, ui->lay.sep.y + y, 1, VLINE,
			       focus ? THEME_ROLE_BORDER_FOCUS : THEME_ROLE_BORDER);
}

static void render_transcript(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect r = ui->lay.transcript;
	long top, total;

	ui_screen_fill(s, r, THEME_ROLE_NORMAL);
	if (r.h <= 0 || r.w <= 0)
		return;
	if (ui->tr.n_msgs == 0) {
		const char *hint = "Type a message and press Enter.  F1: help";
		int w = (int)strlen(hint);
		ui_screen_puts(s, r.x + (r.w > w ? (r.w - w) / 2 : 0), r.y + r.h / 2, r.w, hint,
			       THEME_ROLE_DIM);
		return;
	}
	ui_transcript_clamp(&ui->tr, r.h);
	top = ui_transcript_top(&ui->tr, r.h);
	total = ui_transcript_rows(&ui->tr);
	for (int y = 0; y < r.h && top + y < total; y++) {
		int m;
		const struct ui_tline *l = ui_transcript_row(&ui->tr, top + y, &m);
		struct ui_rect row = { r.x, r.y + y, r.w, 1 };
		int x = r.x + 1, maxw = r.w - 2;

		if (!l)
			break;
		if (l->fill_role >= 0)
			ui_screen_fill(s, (struct ui_rect){ x, row.y, maxw, 1 }, l->fill_role);
		for (int k = 0; k < l->n_runs; k++) {
			const struct ui_run *run = &l->runs[k];
			int used = ui_text_width(l->text, run->start);
			if (used < maxw)
				ui_screen_put(s, x + used, row.y, maxw - used, l->text + run->start,
					      run->end - run->start, run->role);
		}
		if (l->kind == UI_TLINE_HEADER && m == ui->tr.selected &&
		    ui->focus == UI_FOCUS_TRANSCRIPT)
			ui_screen_set_role(s, row, THEME_ROLE_SELECTION);
		if (l->kind == UI_TLINE_HEADER && m == ui->tr.n_msgs - 1 && ui->generating) {
			int w = ui_text_width(l->text, l->len);
			ui_screen_puts(s, x + w + 1, row.y, maxw - w - 1, "\xe2\x80\xa6 generating",
				       THEME_ROLE_DIM);
		}
	}
	if (ui->tr.scroll > 0) {
		char b[48];
		int w;
		snprintf(b, sizeof b, " \xe2\x86\x93 %ld more ", ui->tr.scroll);
		w = ui_text_width(b, strlen(b));
		ui_screen_puts(s, r.x + r.w - w, r.y + r.h - 1, w, b, THEME_ROLE_STATUS_ACCENT);
	}
}

static int notice_role(int level)
{
	return level == UI_NOTICE_ERROR ? THEME_ROLE_ERROR : THEME_ROLE_NOTICE;
}

/* Kept notices first, wrapped left of a column where the last one shown
 * says what Esc does and how many more wait; then the banner, on the row
 * above the input.  Rows the layout did not give are left out, the
 * banner's last. */
static void render_notice(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect r = ui->lay.notice;
	int banner = ui->notice != NULL, n = ui_notice_kept_shown(ui), y = r.y;
	int end = r.y + r.h - banner;
	char tag[32];

	if (r.h <= 0)
		return;
	for (int i = 0; i < n && y < end; i++) {
		struct ui_spans rows = { 0 };
		int role = notice_role(ui->kept[i].level);
		const char *t = ui->kept[i].text;

		ui_notice_kept_wrap(ui, i, &rows);
		for (size_t k = 0; k < rows.n && y < end; k++, y++) {
			ui_screen_fill(s, (struct ui_rect){ r.x, y, r.w, 1 }, role);
			ui_screen_put(s, r.x + 1, y, r.w - 1 - UI_NOTICE_TAG_COLS,
				      t + rows.v[k].start, rows.v[k].end - rows.v[k].start, role);
		}
		ui_spans_fini(&rows);
		if (i == n - 1 || y == end) {
			if (ui->n_kept > i + 1)
				snprintf(tag, sizeof tag, "+%d more, Esc ", ui->n_kept - i - 1);
			else
				snprintf(tag, sizeof tag, "Esc dismisses ");
			ui_screen_puts(s, r.x + r.w - ui_text_width(tag, strlen(tag)), y - 1,
				       UI_NOTICE_TAG_COLS, tag, role);
		}
	}
	if (banner) {
		int role = notice_role(ui->notice_level);

		ui_screen_fill(s, (struct ui_rect){ r.x, r.y + r.h - 1, r.w, 1 }, role);
		ui_screen_puts_clip(s, r.x + 1, r.y + r.h - 1, r.w - 1, ui->notice, role);
	}
}

static void render_input(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect sep = ui->lay.input_sep, r = ui->lay.input;
	int focus = ui->focus == UI_FOCUS_INPUT && ui->dialog == UI_DIALOG_NONE;
	struct ui_spans rows = { 0 };
	int crow, ccol, first, x;
	char hint[160];
	const char *txt = ui_input_text(&ui->input);

	if (sep.h > 0) {
		hline(s, sep.x, sep.y, sep.w, focus ? THEME_ROLE_BORDER_FOCUS : THEME_ROLE_BORDER);
		x = sep.x + 1;
		if (ui->editing_msg_id >= 0)
			x += ui_screen_puts(s, x, sep.y, sep.w - 2,
					    " editing message: Enter sends it as a new branch, Esc cancels ",
					    THEME_ROLE_NOTICE);
		if (ui->n_attachments) {
			snprintf(hint, sizeof hint, " +%d image%s: %s%s ", ui->n_attachments,
				 ui->n_attachments > 1 ? "s" : "", ui->attachments[0],
				 ui->n_attachments > 1 ? ", ..." : "");
			x += ui_screen_puts(s, x, sep.y, sep.x + sep.w - x, hint, THEME_ROLE_STATUS_ACCENT);
		}
		if (ui->cols >= 40) {
			const char *h = " F1 help ";
			int w = (int)strlen(h);
			if (sep.x + sep.w - w - 1 > x)
				ui_screen_puts(s, sep.x + sep.w - w - 1, sep.y, w, h, THEME_ROLE_DIM);
		}
	}
	if (r.h <= 0)
		return;
	ui_screen_fill(s, r, THEME_ROLE_INPUT);
	ui_input_layout(&ui->input, r.w - 2 < 1 ? 1 : r.w - 2, &rows, &crow, &ccol);
	first = crow - r.h + 1 > 0 ? crow - r.h + 1 : 0; /* keep the cursor row visible */
	for (int y = 0; y < r.h && first + y < (int)rows.n; y++) {
		const struct ui_span *sp = &rows.v[first + y];
		if (first + y == 0)
			ui_screen_puts(s, r.x, r.y + y, 2, "\xe2\x80\xba", /* › */
				       focus ? THEME_ROLE_BORDER_FOCUS : THEME_ROLE_DIM);
		ui_screen_put(s, r.x + 2, r.y + y, r.w - 2, txt + sp->start, sp->end - sp->start,
			      THEME_ROLE_INPUT);
	}
	if (!*txt && r.w > 30)
		ui_screen_puts(s, r.x + 2, r.y, r.w - 2,
			       ui->generating ? "generating... (Esc stops)"
					      : "message (Enter sends, Alt-Enter/C-j new line, F1 help)",
			       THEME_ROLE_DIM);
	if (focus) {
		s->cur_x = r.x + 2 + ccol;
		s->cur_y = r.y + crow - first;
		s->cur_visible = s->cur_x < r.x + r.w && s->cur_y < r.y + r.h;
	}
	ui_spans_fini(&rows);
}

static void fmt_bytes(uint64_t b, char *out, size_t cap)
{
	if (b >= (uint64_t)1 << 30)
		snprintf(out, cap, "%.1f GiB", (double)b / (double)((uint64_t)1 << 30));
	else
		snprintf(out, cap, "%.0f MiB", (double)b / (double)(1 << 20));
}

static void render_status(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect r = ui->lay.status;
	char b[128];
	int x;

	if (r.h <= 0)
		return;
	ui_screen_fill(s, r, THEME_ROLE_STATUS);
	x = r.x + 1;
	x += ui_screen_puts(s, x, r.y, r.x + r.w - x, ui->st_model ? ui->st_model : "no model",
			    THEME_ROLE_STATUS_ACCENT);
	if (ui->st_backend) {
		snprintf(b, sizeof b, " " VLINE " %s", ui->st_backend);
		x += ui_screen_puts(s, x, r.y, r.x + r.w - x, b, THEME_ROLE_STATUS);
	}
	if (ui->ctx_total > 0) {
		snprintf(b, sizeof b, " " VLINE " ctx %ld/%ld", ui->ctx_used, ui->ctx_total);
		x += ui_screen_puts(s, x, r.y, r.x + r.w - x, b, THEME_ROLE_STATUS);
	}
	if (ui->generating) {
		snprintf(b, sizeof b, " " VLINE " %.1f tok/s", ui->tps);
		x += ui_screen_puts(s, x, r.y, r.x + r.w - x, b, THEME_ROLE_STATUS_ACCENT);
	}
	if (ui->accept >= 0.0) {
		snprintf(b, sizeof b, " " VLINE " draft %.0f%%", 100.0 * ui->accept);
		x += ui_screen_puts(s, x, r.y, r.x + r.w - x, b, THEME_ROLE_STATUS);
	}
	if (ui->mem_bytes) {
		char m[32];
		fmt_bytes(ui->mem_bytes, m, sizeof m);
		snprintf(b, sizeof b, " " VLINE " mem %s", m);
		x += ui_screen_puts(s, x, r.y, r.x + r.w - x, b, THEME_ROLE_STATUS);
	}
	(void)x;
}

/* ---- dialogs ---------------------------------------------------------------- */

static struct ui_rect frame(struct ui *ui, const char *title)
{
	struct ui_rect r = ui_dialog_rect(ui);

	ui_screen_fill(&ui->screen, r, THEME_ROLE_DIALOG);
	ui_screen_box(&ui->screen, r, THEME_ROLE_BORDER_FOCUS);
	if (r.w > 4) {
		char t[128];
		snprintf(t, sizeof t, " %s ", title);
		ui_screen_puts(&ui->screen, r.x + 2, r.y, r.w - 4, t, THEME_ROLE_TITLE);
	}
	return (struct ui_rect){ r.x + 2, r.y + 1, r.w - 4 > 0 ? r.w - 4 : 0,
				 r.h - 2 > 0 ? r.h - 2 : 0 };
}

static void footer(struct ui *ui, struct ui_rect in, const char *text)
{
	if (in.h > 0)
		ui_screen_puts(&ui->screen, in.x, in.y + in.h - 1, in.w, text, THEME_ROLE_DIM);
}

/* A text field of the dialog at row y, one row or several (system prompt). */
static void field(struct ui *ui, struct ui_rect in, int y, int h)
{
	struct ui_screen *s = &ui->screen;
	struct ui_spans rows = { 0 };
	int crow, ccol, first;
	const char *t = ui_input_text(&ui->prompt);

	if (h < 1 || in.w < 1)
		return;
	ui_screen_fill(s, (struct ui_rect){ in.x, y, in.w, h }, THEME_ROLE_INPUT);
	ui_input_layout(&ui->prompt, in.w, &rows, &crow, &ccol);
	first = crow - h + 1 > 0 ? crow - h + 1 : 0;
	for (int k = 0; k < h && first + k < (int)rows.n; k++)
		ui_screen_put(s, in.x, y + k, in.w, t + rows.v[first + k].start,
			      rows.v[first + k].end - rows.v[first + k].start, THEME_ROLE_INPUT);
	s->cur_x = in.x + ccol;
	s->cur_y = y + crow - first;
	s->cur_visible = 1;
	ui_spans_fini(&rows);
}

static void list_rows(struct ui *ui, struct ui_rect r, struct ui_list *l, int focused,
		      const char *(*label)(struct ui *, int, char *, size_t))
{
	char buf[512];

	ui_list_scroll_to(l, r.h);
	for (int i = 0; i < r.h && l->top + i < l->n; i++) {
		int k = l->top + i;
		struct ui_rect row = { r.x, r.y + i, r.w, 1 };
		ui_screen_puts(&ui->screen, r.x, row.y, r.w, label(ui, k, buf, sizeof buf),
			       THEME_ROLE_DIALOG);
		if (k == l->sel && focused)
			ui_screen_set_role(&ui->screen, row, THEME_ROLE_SELECTION);
	}
}

static const char *model_label(struct ui *ui, int k, char *b, size_t cap)
{
	if (k >= ui->n_models)
		return "path...  (type a model directory)";
	snprintf(b, cap, "%-20s %s  %s", ui->models[k].name, ui->models[k].details,
		 ui->models[k].path);
	return b;
}

static const char *theme_label(struct ui *ui, int k, char *b, size_t cap)
{
	snprintf(b, cap, "%s%s", ui->themes[k], strcmp(ui->themes[k], ui->theme.name) ? "" : "  (current)");
	return b;
}

static const char *preset_label(struct ui *ui, int k, char *b, size_t cap)
{
	snprintf(b, cap, "%s", ui->presets[k]);
	return b;
}

static const char *field_label(struct ui *ui, int k, char *b, size_t cap)
{
	const struct ui_form_field *f = &ui->form.fields[k];
	snprintf(b, cap, "%-18s %s", f->name, f->value);
	return b;
}

static const char *dir_label(struct ui *ui, int k, char *b, size_t cap)
{
	snprintf(b, cap, "%s%s", ui->dir[k].name, ui->dir[k].is_dir ? "/" : "");
	return b;
}

static const char *att_label(struct ui *ui, int k, char *b, size_t cap)
{
	snprintf(b, cap, "%d. %s", k + 1, ui->attachments[k]);
	return b;
}

static void render_help(struct ui *ui)
{
	struct ui_rect in = frame(ui, "Help: keys");
	int n = UI_ACTION_COUNT - 1 + 3, body = in.h - 1;
	int y = 0;

	if (body < 1)
		return;
	if (ui->help_scroll > n - body)
		ui->help_scroll = n - body > 0 ? n - body : 0;
	for (int i = 0; i < n; i++) {
		char keys[128], line[256];
		int row = i - ui->help_scroll;
		if (row < 0)
			continue;
		if (row >= body)
			break;
		y = in.y + row;
		if (i < UI_ACTION_COUNT - 1) {
			enum ui_action a = (enum ui_action)(i + 1);
			ui_keymap_keys_for(&ui->km, a, keys, sizeof keys);
			ui_screen_puts(&ui->screen, in.x, y, 22, keys[0] ? keys : "(unbound)",
				       keys[0] ? THEME_ROLE_KEY : THEME_ROLE_DIM);
			snprintf(line, sizeof line, "%-20s %s", ui_action_name(a), ui_action_help(a));
			ui_screen_puts(&ui->screen, in.x + 23, y, in.w - 23, line, THEME_ROLE_DIALOG);
		} else {
			static const char *const extra[] = {
				"transcript (Tab to focus): Up/Down select, e edit, c copy, r regenerate, [ ] branch",
				"conversations (Tab to focus): Up/Down, Enter open, r rename, d delete",
				"dialogs: Enter choose, Esc close; sampler: Tab presets, s save preset",
			};
			ui_screen_puts(&ui->screen, in.x, y, in.w, extra[i - (UI_ACTION_COUNT - 1)],
				       THEME_ROLE_DIM);
		}
	}
	footer(ui, in, "Up/Down/PageUp/PageDown scroll, Esc closes");
}

static void render_preview(struct ui *ui, struct ui_rect r)
{
	struct ui_thumb_cell *cells;
	int cw, ch;

	if (!ui->preview || r.w <= 0 || r.h <= 0)
		return;
	cells = xmalloc((size_t)r.w * (size_t)r.h * sizeof *cells);
	ui_thumb_make(ui->preview, ui->preview_w, ui->preview_h, r.w, r.h, cells, &cw, &ch);
	for (int y = 0; y < ch; y++)
		for (int x = 0; x < cw; x++)
			ui_screen_put_rgb(&ui->screen, r.x + x, r.y + y, "\xe2\x96\x80", /* ▀ */
					  cells[y * cw + x].top, cells[y * cw + x].bottom);
	free(cells);
}

static void render_dialog(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;
	struct ui_rect in;
	char b[512];

	switch (ui->dialog) {
	case UI_DIALOG_NONE:
		return;
	case UI_DIALOG_HELP:
		render_help(ui);
		return;
	case UI_DIALOG_CONFIRM_DELETE:
		in = frame(ui, "Delete conversation");
		snprintf(b, sizeof b, "Delete \"%s\"?", ui->n_convs ? ui->convs[ui->conv_list.sel].title : "");
		ui_screen_puts(s, in.x, in.y + 1, in.w, b, THEME_ROLE_DIALOG);
		footer(ui, in, "y / Enter: delete    n / Esc: keep");
		return;
	case UI_DIALOG_RENAME:
	case UI_DIALOG_PRESET_SAVE:
	case UI_DIALOG_MODEL_PATH:
	case UI_DIALOG_ATTACH_PATH:
		in = frame(ui, ui->dialog == UI_DIALOG_RENAME ? "Rename conversation"
			       : ui->dialog == UI_DIALOG_PRESET_SAVE ? "Save preset as"
			       : ui->dialog == UI_DIALOG_MODEL_PATH ? "Model path"
								    : "Image path");
		field(ui, in, in.y + 1, 1);
		footer(ui, in, "Enter: ok    Esc: cancel");
		return;
	case UI_DIALOG_SYSTEM_PROMPT:
		in = frame(ui, "System prompt");
		field(ui, in, in.y, in.h - 1);
		footer(ui, in, "Enter: save    Alt-Enter/C-j: new line    Esc: cancel");
		return;
	case UI_DIALOG_SAMPLER: {
		int lw;
		in = frame(ui, "Sampler");
		lw = ui->n_presets ? in.w * 2 / 3 : in.w;
		list_rows(ui, (struct ui_rect){ in.x, in.y, lw - 1, in.h - 3 }, &ui->form.list,
			  !ui->sampler_on_presets, field_label);
		if (ui->n_presets) {
			ui_screen_puts(s, in.x + lw, in.y, in.w - lw, "presets", THEME_ROLE_TITLE);
			list_rows(ui, (struct ui_rect){ in.x + lw, in.y + 1, in.w - lw, in.h - 4 },
				  &ui->preset_list, ui->sampler_on_presets, preset_label);
		}
		/* one row for the field's help, or the error that replaces it */
		ui_screen_fill(s, (struct ui_rect){ in.x, in.y + in.h - 3, in.w, 1 },
			       THEME_ROLE_DIALOG);
		if (ui->form.editing && ui->form.error[0]) {
			ui_screen_puts(s, in.x, in.y + in.h - 3, in.w, ui->form.error,
				       THEME_ROLE_ERROR);
		} else if (ui->form.n_fields) {
			const struct ui_form_field *f = &ui->form.fields[ui->form.list.sel];
			if (f->type == UI_FIELD_INT || f->type == UI_FIELD_FLOAT)
				snprintf(b, sizeof b, "%s  [%.10g .. %.10g]", f->help, f->min, f->max);
			else
				snprintf(b, sizeof b, "%s", f->help);
			ui_screen_puts(s, in.x, in.y + in.h - 3, in.w, b, THEME_ROLE_DIM);
		}
		if (ui->form.editing)
			field(ui, in, in.y + in.h - 2, 1);
		footer(ui, in, ui->form.editing ? "Enter: set    Esc: cancel"
			       : "Enter: edit/toggle  Tab: presets  Enter on preset: load  s: save  Esc");
		return;
	}
	case UI_DIALOG_MODELS:
		in = frame(ui, "Models");
		list_rows(ui, (struct ui_rect){ in.x, in.y, in.w, in.h - 3 }, &ui->model_list, 1,
			  model_label);
		if (ui->progress >= 0) {
			int bw = in.w / 2, fill = (int)(ui->progress * bw + 0.5);
			if (fill > bw)
				fill = bw;
			for (int i = 0; i < bw; i++)
				ui_screen_puts(s, in.x + i, in.y + in.h - 2, 1,
					       i < fill ? "\xe2\x96\x88" : "\xe2\x96\x91",
					       THEME_ROLE_STATUS_ACCENT);
			snprintf(b, sizeof b, " %3.0f%% %s", ui->progress * 100,
				 ui->progress_text ? ui->progress_text : "");
			ui_screen_puts(s, in.x + bw, in.y + in.h - 2, in.w - bw, b, THEME_ROLE_DIALOG);
		}
		if (ui->model_error)
			ui_screen_puts(s, in.x, in.y + in.h - 3, in.w, ui->model_error, THEME_ROLE_ERROR);
		footer(ui, in, "Enter: load    p: type a path    Esc: close");
		return;
	case UI_DIALOG_THEMES:
		in = frame(ui, "Themes");
		list_rows(ui, (struct ui_rect){ in.x, in.y, in.w, in.h - 1 }, &ui->theme_list, 1,
			  theme_label);
		footer(ui, in, "Enter: apply    Esc: close");
		return;
	case UI_DIALOG_ATTACH: {
		int lw;
		in = frame(ui, "Attach image (PNG/JPEG)");
		lw = in.w / 2;
		ui_screen_puts(s, in.x, in.y, lw - 1, ui->attach_dir, THEME_ROLE_TITLE);
		if (ui->dir_error)
			ui_screen_puts(s, in.x, in.y + 1, lw - 1, ui->dir_error, THEME_ROLE_ERROR);
		list_rows(ui, (struct ui_rect){ in.x, in.y + 1, lw - 1, in.h - 3 - (ui->n_attachments ? 2 : 0) },
			  &ui->dir_list, !ui->attach_on_list, dir_label);
		if (ui->n_attachments) {
			int y = in.y + in.h - 4;
			ui_screen_puts(s, in.x, y, lw - 1, "attached:", THEME_ROLE_TITLE);
			list_rows(ui, (struct ui_rect){ in.x + 10, y, lw - 11, 2 }, &ui->att_list,
				  ui->attach_on_list, att_label);
		}
		render_preview(ui, (struct ui_rect){ in.x + lw, in.y, in.w - lw, in.h - 1 });
		footer(ui, in, "Enter: attach/open  /: type path  Tab: attached (d removes)  Esc");
		return;
	}
	}
}

void ui_render(struct ui *ui)
{
	struct ui_screen *s = &ui->screen;

	if (s->cols != ui->cols || s->rows != ui->rows)
		ui_screen_resize(s, ui->cols, ui->rows);
	ui_screen_fill(s, (struct ui_rect){ 0, 0, ui->cols, ui->rows }, THEME_ROLE_NORMAL);
	s->cur_visible = 0;
	render_sidebar(ui);
	render_transcript(ui);
	render_notice(ui);
	render_input(ui);
	render_status(ui);
	if (ui->dialog != UI_DIALOG_NONE) {
		s->cur_visible = 0;
		render_dialog(ui);
	}
}
