/* ui/ui_impl.h — the state of one UI (struct ui), shared by ui.c (events,
 * keys, dialogs), render.c (state -> screen cells), term.c and draw.c
 * (curses).  Never leaves ui/.
 *
 * Invariants: `dirty` is set by every change that can alter the frame;
 * strings are owned (xstrdup'd copies); list models' counts equal their
 * arrays' lengths.
 */
#ifndef TERN_UI_UI_IMPL_H
#define TERN_UI_UI_IMPL_H

#include "ui/form_impl.h"
#include "ui/input_impl.h"
#include "ui/keymap_impl.h"
#include "ui/layout_impl.h"
#include "ui/list_impl.h"
#include "ui/screen_impl.h"
#include "ui/transcript_impl.h"
#include "ui/ui.h"

enum ui_focus { UI_FOCUS_INPUT, UI_FOCUS_TRANSCRIPT, UI_FOCUS_SIDEBAR };

enum ui_dialog {
	UI_DIALOG_NONE,
	UI_DIALOG_HELP,
	UI_DIALOG_CONFIRM_DELETE,
	UI_DIALOG_RENAME,
	UI_DIALOG_SYSTEM_PROMPT,
	UI_DIALOG_SAMPLER,
	UI_DIALOG_PRESET_SAVE,
	UI_DIALOG_MODELS,
	UI_DIALOG_MODEL_PATH,
	UI_DIALOG_THEMES,
	UI_DIALOG_ATTACH,
	UI_DIALOG_ATTACH_PATH,
};

struct ui_conv {
	int id;
	char *title;
};

struct ui_model {
	char *name, *path, *details;
};

struct ui_dirent {
	char *name;
	int is_dir;
};

struct ui_term; /* term.c */

struct ui {
	struct theme theme;
	int cols, rows;
	struct ui_layout lay;
	int sidebar_wanted;
	enum ui_focus focus;
	enum ui_dialog dialog;
	struct ui_keymap km;

	struct ui_input input;      /* the message being composed */
	struct ui_input prompt;     /* text field of the open dialog */
	int editing_msg_id;         /* message being edited, -1 = none */
	char *edit_saved_draft;     /* input before editing started */
	char *submitted;            /* text of the last SUBMIT / MESSAGE_EDIT */
	int submitted_edit;         /* its message id (MESSAGE_EDIT), else -1 */
	struct ui_transcript tr;
	int generating;

	struct ui_conv *convs;
	int n_convs, active_conv;
	struct ui_list conv_list;

	char *st_model, *st_backend;
	long ctx_used, ctx_total;
	double tps;
	double accept; /* ui_status.accept */
	uint64_t mem_bytes;

	char *notice;               /* ui_notice_set's, replaced by the next */
	int notice_level;
	struct ui_kept_notice {
		char *text;
		int level;
	} *kept;                    /* ui_notice_push's, oldest first, until
				     * Esc dismisses them */
	int n_kept;
	char *system_prompt;

	struct ui_form form;
	int sampler_on_presets;     /* 1: the preset list has focus */
	char **presets;
	int n_presets;
	struct ui_list preset_list;

	struct ui_model *models;
	int n_models;
	struct ui_list model_list;  /* n_models + 1 ("path...") */
	double progress;
	char *progress_text, *model_error;
	int model_wait;             /* a load chosen in the model menu runs */

	char **themes;
	int n_themes;
	struct ui_list theme_list;

	char *attach_dir;
	struct ui_dirent *dir;
	int n_dir;
	struct ui_list dir_list;
	int attach_on_list;         /* 1: pending attachments list has focus */
	char **attachments;
	int n_attachments;
	struct ui_list att_list;
	uint8_t *preview;
	int preview_w, preview_h;
	char *dir_error;

	int help_scroll;

	struct ui_qevent {
		struct ui_event ev;
		char *text;         /* owned copy behind ev.text */
	} *q;                       /* pending events (FIFO) */
	int q_n, q_cap;
	char *last_text;            /* text of the event last returned */

	struct ui_screen screen;
	int dirty;
	struct ui_term *term;       /* NULL when headless */
};

/* Kept notices shown at once; more wait for Esc.  Each wraps to at most
 * UI_NOTICE_KEPT_WRAP rows, left of a UI_NOTICE_TAG_COLS-wide column for
 * the "Esc dismisses" tag. */
#define UI_NOTICE_KEPT_SHOWN 3
#define UI_NOTICE_KEPT_WRAP 2
#define UI_NOTICE_TAG_COLS 16

/* ui.c */
void ui_relayout(struct ui *ui);
/* How many kept notices the notice rows show (the first ones). */
int ui_notice_kept_shown(const struct ui *ui);
/* Kept notice I wrapped for the screen's width into *rows (appended; at
 * most UI_NOTICE_KEPT_WRAP spans, the last may be cut short); returns
 * the number of rows. */
int ui_notice_kept_wrap(const struct ui *ui, int i, struct ui_spans *rows);
int ui_input_rows_wanted(struct ui *ui);
/* Dialog geometry, shared by render.c and ui.c (page sizes). */
struct ui_rect ui_dialog_rect(const struct ui *ui);

/* render.c: paint the whole frame into ui->screen. */
void ui_render(struct ui *ui);

/* term.c / draw.c (no-ops when headless) */
void ui_term_apply_theme(struct ui *ui);
void ui_term_write(struct ui *ui, const char *bytes, size_t n);
void ui_draw_frame(struct ui *ui);
void ui_draw_invalidate(struct ui *ui);

#endif
