/* ui/ui.h — PUBLIC: the terminal chat interface.
 *
 * The UI is a passive object driven from ONE thread (the app's main thread):
 * data in through ui_*_set / ui_transcript_* calls, events out through
 * ui_poll_event.  It never sees tokens, models or threads; the app turns
 * events into engine jobs and engine progress into these calls.
 *
 * Typical loop (app/):
 *
 *     struct ui *ui = ui_new(theme);
 *     ui_term_open(ui, &d);                 // curses on, raw mode
 *     for (;;) {
 *             ui_draw(ui);                  // repaints only when dirty
 *             poll({ ui_input_fd(), wake_pipe }, ...);
 *             ui_process_input(ui);   // never blocks; call it after
 *                                     // EINTR too (SIGWINCH -> resize)
 *             while (ui_poll_event(ui, &ev)) handle(&ev);
 *     }
 *     ui_term_close(ui); ui_free(ui);
 *
 * Without ui_term_open the UI is headless: ui_handle_key / ui_paste /
 * ui_resize drive it and ui_screen_text renders a frame to plain text
 * (used by the tests).  Strings passed in are copied; strings in events are
 * owned by the UI and valid until the next ui_poll_event or ui_free.
 */
#ifndef TERN_UI_UI_H
#define TERN_UI_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"
#include "themes/theme.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ui_error {
	UI_E_TERM = -1,   /* terminal could not be initialised */
	UI_E_KEY = -2,    /* unknown key name */
	UI_E_ACTION = -3, /* unknown action name */
	UI_E_VALUE = -4,  /* a value failed validation */
};

struct ui;

/* ---- keys and actions ------------------------------------------------ */

/* A key: a Unicode code point, or UI_KEY_BASE + n for special keys, plus
 * modifier bits.  Ctrl+letter is the lowercase letter | UI_KEY_CTRL. */
#define UI_KEY_CTRL 0x01000000u
#define UI_KEY_META 0x02000000u
#define UI_KEY_SHIFT 0x04000000u
#define UI_KEY_MODS (UI_KEY_CTRL | UI_KEY_META | UI_KEY_SHIFT)
#define UI_KEY_BASE 0x00200000u
enum ui_special_key {
	UI_KEY_ENTER = UI_KEY_BASE + 1,
	UI_KEY_TAB,
	UI_KEY_BACKSPACE,
	UI_KEY_ESC,
	UI_KEY_UP,
	UI_KEY_DOWN,
	UI_KEY_LEFT,
	UI_KEY_RIGHT,
	UI_KEY_HOME,
	UI_KEY_END,
	UI_KEY_PAGEUP,
	UI_KEY_PAGEDOWN,
	UI_KEY_INSERT,
	UI_KEY_DELETE,
	UI_KEY_F1, /* F1..F12 consecutive */
	UI_KEY_F12 = UI_KEY_F1 + 11,
	UI_KEY_SPACE, /* only in names; the key itself is ' ' */
};

/* Every bindable command.  Names ("new-conversation") are in keymap.c and
 * listed by the help overlay. */
enum ui_action {
	UI_ACTION_NONE,
	UI_ACTION_QUIT,
	UI_ACTION_HELP,
	UI_ACTION_CANCEL,           /* stop generation / close dialog */
	UI_ACTION_SUBMIT,
	UI_ACTION_NEWLINE,
	UI_ACTION_FOCUS_NEXT,
	UI_ACTION_FOCUS_PREV,
	UI_ACTION_TOGGLE_SIDEBAR,
	UI_ACTION_NEW_CONVERSATION,
	UI_ACTION_RENAME_CONVERSATION,
	UI_ACTION_DELETE_CONVERSATION,
	UI_ACTION_NEXT_CONVERSATION,
	UI_ACTION_PREV_CONVERSATION,
	UI_ACTION_REGENERATE,
	UI_ACTION_EDIT_MESSAGE,
	UI_ACTION_BRANCH_PREV,
	UI_ACTION_BRANCH_NEXT,
	UI_ACTION_COPY_MESSAGE,
	UI_ACTION_SYSTEM_PROMPT,
	UI_ACTION_SAMPLER,
	UI_ACTION_MODELS,
	UI_ACTION_ATTACH,
	UI_ACTION_THEMES,
	UI_ACTION_TOGGLE_THINKING,  /* fold / show <think> blocks */
	UI_ACTION_SCROLL_UP,        /* transcript page up */
	UI_ACTION_SCROLL_DOWN,
	UI_ACTION_SCROLL_TOP,
	UI_ACTION_SCROLL_BOTTOM,
	UI_ACTION_UP,               /* editing and list movement */
	UI_ACTION_DOWN,
	UI_ACTION_LEFT,
	UI_ACTION_RIGHT,
	UI_ACTION_WORD_LEFT,
	UI_ACTION_WORD_RIGHT,
	UI_ACTION_HOME,
	UI_ACTION_END,
	UI_ACTION_BACKSPACE,
	UI_ACTION_DELETE,
	UI_ACTION_KILL_LINE,        /* to end of line */
	UI_ACTION_KILL_LINE_START,
	UI_ACTION_KILL_WORD,        /* word before the cursor */
	UI_ACTION_YANK,
	UI_ACTION_HISTORY_PREV,
	UI_ACTION_HISTORY_NEXT,
	UI_ACTION_REDRAW,
	UI_ACTION_COUNT
};

/* Name of an action ("new-conversation"), NULL when out of range. */
const char *ui_action_name(enum ui_action a);
/* One-line description for the help overlay. */
const char *ui_action_help(enum ui_action a);
/* Parse a key name ("C-n", "M-x", "C-M-x", "S-Tab", "F1", "Esc", "Enter",
 * "Tab", "Backspace", "Delete", "PageUp", "Up", "Space", "a", "?", "é").
 * Returns 0 and sets *key, or UI_E_KEY with a message in d. */
int ui_key_parse(const char *name, uint32_t *key, struct diag *d);
/* Format a key as its canonical name into buf (always NUL-terminated). */
void ui_key_format(uint32_t key, char *buf, size_t cap);

/* Bind key_name to action_name ("none" unbinds); the action's other keys
 * keep it.  Later binds of the same key replace earlier ones.  Returns 0;
 * 1 when the key did another action until now (bound all the same; d says
 * which, for the user: binding Enter to quit loses sending); UI_E_KEY or
 * UI_E_ACTION (message in d names the bad word). */
int ui_keymap_bind(struct ui *ui, const char *key_name, const char *action_name, struct diag *d);

/* ---- lifecycle ------------------------------------------------------- */

/* A new headless UI (80x24 until resized) using a copy of *theme (NULL =
 * built-in default).  Never NULL (aborts on out of memory). */
struct ui *ui_new(const struct theme *theme);
/* Closes the terminal if open and frees everything.  NULL is a no-op. */
void ui_free(struct ui *ui);

/* Start curses on the controlling terminal: raw mode, keypad, bracketed
 * paste, colours from the theme.  Returns 0 or UI_E_TERM (d says why, e.g.
 * "not a terminal").  Installs nothing global except the state used by
 * ui_term_restore. */
int ui_term_open(struct ui *ui, struct diag *d);
/* Leave curses and restore the terminal (idempotent). */
void ui_term_close(struct ui *ui);
/* Restore the terminal from an atexit or fatal-signal handler: endwin and
 * the "bracketed paste off" sequence, nothing else.  Safe to call twice and
 * when curses was never started. */
void ui_term_restore(void);
/* The fd to poll for key input (0), or -1 when headless. */
int ui_input_fd(const struct ui *ui);
/* Read every pending key without blocking and handle it (keys, pastes,
 * resize).  Returns the number of keys handled. */
int ui_process_input(struct ui *ui);
/* Repaint if anything changed since the last frame: one doupdate per frame.
 * Headless: renders into the off-screen frame only. */
void ui_draw(struct ui *ui);

/* Headless driving (also used by ui_process_input). */
void ui_handle_key(struct ui *ui, uint32_t key);
void ui_paste(struct ui *ui, const char *text, size_t len);
void ui_resize(struct ui *ui, int cols, int rows);
/* The last frame as UTF-8 text: rows separated by '\n', trailing spaces
 * kept (every row is exactly `cols` columns wide).  Renders first when
 * dirty.  Caller frees. */
char *ui_screen_text(struct ui *ui);

/* ---- events out ------------------------------------------------------ */

enum ui_event_type {
	UI_EVENT_NONE,
	UI_EVENT_SUBMIT,          /* text: the message (attachments: see app);
				   * the editor is cleared: ui_submit_refuse
				   * gives the text back */
	UI_EVENT_CANCEL,          /* stop generation */
	UI_EVENT_QUIT,
	UI_EVENT_CONV_NEW,
	UI_EVENT_CONV_SELECT,     /* id */
	UI_EVENT_CONV_RENAME,     /* id, text = new title */
	UI_EVENT_CONV_DELETE,     /* id (already confirmed by the user) */
	UI_EVENT_MESSAGE_EDIT,    /* id = message, text = new content: branch;
				   * the draft from before the edit is back
				   * in the editor */
	UI_EVENT_REGENERATE,      /* id = message to regenerate (last reply) */
	UI_EVENT_BRANCH_PREV,     /* id = message */
	UI_EVENT_BRANCH_NEXT,     /* id = message */
	UI_EVENT_COPY,            /* id = message; OSC 52 already written */
	UI_EVENT_SYSTEM_PROMPT,   /* text = new system prompt */
	UI_EVENT_SAMPLER_FIELD,   /* index = field, text = validated value */
	UI_EVENT_PRESET_LOAD,     /* index, text = preset name */
	UI_EVENT_PRESET_SAVE,     /* text = preset name */
	UI_EVENT_MODEL_SELECT,    /* index into the model list */
	UI_EVENT_MODEL_PATH,      /* text = typed path */
	UI_EVENT_ATTACH_PREVIEW,  /* text = highlighted image path: decode it
				   * and call ui_image_preview_set (or clear) */
	UI_EVENT_ATTACH,          /* text = image path to attach */
	UI_EVENT_ATTACH_REMOVE,   /* index into the pending attachments */
	UI_EVENT_THEME_SELECT,    /* index into the theme list, text = name */
	UI_EVENT_RESIZE,          /* value = cols, index = rows */
};

struct ui_event {
	enum ui_event_type type;
	int id;           /* conversation or message id */
	int index;        /* list index */
	long value;
	const char *text; /* owned by the UI; valid until the next poll */
};

/* Take the oldest pending event.  Returns 1 and fills *ev, or 0 when none. */
int ui_poll_event(struct ui *ui, struct ui_event *ev);

/* The app cannot take the message of the last UI_EVENT_SUBMIT or
 * UI_EVENT_MESSAGE_EDIT (no model loaded...): put its text back into the
 * editor, so that nothing typed is lost.  Text typed since follows it on a
 * new line; an edit is in progress again, with what the editor held as
 * its draft.  Say why with ui_notice_set.  A no-op when nothing was
 * submitted since the last call. */
void ui_submit_refuse(struct ui *ui);

/* ---- data in ---------------------------------------------------------- */

/* Conversations (sidebar).  Copied.  active_id marks the open one. */
struct ui_conv_item {
	int id;
	const char *title;
};
void ui_conversations_set(struct ui *ui, const struct ui_conv_item *items, int n, int active_id);

enum ui_role {
	UI_ROLE_USER,
	UI_ROLE_ASSISTANT,
	UI_ROLE_SYSTEM,
	UI_ROLE_ERROR,
};

/* Transcript of the open conversation.  Message ids are the app's; a
 * message shows "branch i/n" when n > 1 (i is 1-based). */
void ui_transcript_clear(struct ui *ui);
void ui_transcript_add(struct ui *ui, int msg_id, enum ui_role role, const char *text,
		       int branch_i, int branch_n);
/* Append streamed text to a message (re-wraps only its tail). */
void ui_transcript_append(struct ui *ui, int msg_id, const char *text, size_t len);
/* Replace a message's text / branch counters (after a branch flip). */
void ui_transcript_set(struct ui *ui, int msg_id, const char *text, int branch_i, int branch_n);
/* Drop a message and every message after it (regenerate / edit). */
void ui_transcript_truncate(struct ui *ui, int msg_id);
/* A dim note after a message's label (its images, "stopped"); NULL or ""
 * clears it.  The text is copied. */
void ui_transcript_note(struct ui *ui, int msg_id, const char *note);

/* Generation state: while on, Esc sends UI_EVENT_CANCEL and the status bar
 * shows tokens/s. */
void ui_generating_set(struct ui *ui, int on);

struct ui_status {
	const char *model;    /* NULL = "no model" */
	const char *backend;  /* "cuda", "cpu" */
	long ctx_used, ctx_total;
	double tokens_per_s;  /* shown while generating */
	uint64_t mem_bytes;   /* memory in use (0 = hide) */
	bool spec;            /* speculative decoding: show accept */
	double accept;        /* share of the proposed tokens kept, 0..1 */
};
void ui_status_set(struct ui *ui, const struct ui_status *st);

enum ui_notice_level { UI_NOTICE_INFO, UI_NOTICE_ERROR };
/* A one-line banner above the input (NULL or "" clears); the next call
 * replaces it: progress, and answers to what the user just did. */
void ui_notice_set(struct ui *ui, enum ui_notice_level level, const char *text);
/* A notice kept until the user dismisses it: problems found at start
 * (configuration errors, damaged conversation files) that later
 * ui_notice_set calls must not hide.  Kept notices queue up, oldest first,
 * above ui_notice_set's banner, three at a time (a row or two each; the
 * last one shown says how many more wait); Esc dismisses the ones shown
 * and the banner.  Copied (line breaks become spaces); NULL or "" is
 * ignored. */
void ui_notice_push(struct ui *ui, enum ui_notice_level level, const char *text);

/* System prompt shown in the system-prompt dialog. */
void ui_system_prompt_set(struct ui *ui, const char *text);

/* Sampler panel: fields and presets (copied). */
enum ui_field_type { UI_FIELD_INT, UI_FIELD_FLOAT, UI_FIELD_BOOL, UI_FIELD_STRING };
struct ui_field {
	const char *name;
	enum ui_field_type type;
	double min, max;    /* numeric bounds (ignored for bool/string) */
	const char *value;  /* current value as text */
	const char *help;
};
void ui_sampler_set(struct ui *ui, const struct ui_field *fields, int n);
/* The app refused field index's value TEXT (a check the form cannot make,
 * e.g. a sampler order): while the sampler panel is open its editor
 * reopens on that field with TEXT and MSG shown, so nothing typed is
 * lost.  Returns 1 when shown there, 0 otherwise (the caller says it
 * another way). */
int ui_sampler_refuse(struct ui *ui, int index, const char *text, const char *msg);
void ui_presets_set(struct ui *ui, const char *const *names, int n);

/* Model menu. */
struct ui_model_item {
	const char *name, *path, *details;
};
void ui_models_set(struct ui *ui, const struct ui_model_item *items, int n);
/* Load progress: fraction in [0,1] (< 0 hides the bar) and text. */
void ui_model_progress(struct ui *ui, double fraction, const char *text);
/* The model has loaded: hides the progress bar and closes the model menu
 * when the load was chosen there (a failed load keeps it open, showing
 * ui_model_error's text). */
void ui_model_loaded(struct ui *ui);
/* Model load error shown in the model menu (NULL clears). */
void ui_model_error(struct ui *ui, const char *text);

/* Themes: names for the theme dialog; ui_theme_apply recolours at once. */
void ui_themes_set(struct ui *ui, const char *const *names, int n);
void ui_theme_apply(struct ui *ui, const struct theme *theme);

/* Image attach pane.  rgb is w*h*3 bytes, copied (NULL clears). */
void ui_image_preview_set(struct ui *ui, const uint8_t *rgb, int w, int h);
/* Pending attachments of the message being composed (display names). */
void ui_attachments_set(struct ui *ui, const char *const *names, int n);
/* Starting directory of the file browser (default: current directory). */
void ui_attach_dir_set(struct ui *ui, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
