/* ui/input_impl.h — the multi-line input editor model (ui/input.c).
 *
 * Owns the text being composed (UTF-8, '\n' between lines, never '\r'), a
 * cursor that is always on a grapheme boundary, a kill buffer, and the
 * history of submitted entries.  Pure: no curses, testable alone.
 * Invariant: 0 <= cursor <= text.len and cursor is a grapheme boundary.
 */
#ifndef TERN_UI_INPUT_IMPL_H
#define TERN_UI_INPUT_IMPL_H

#include <stddef.h>

#include "common/strbuf.h"
#include "ui/text_impl.h"

#define UI_INPUT_HISTORY_MAX 200

struct ui_input {
	struct strbuf text;
	size_t cursor;          /* byte offset */
	int goal_col;           /* column kept across up/down; -1 = none */
	struct strbuf kill;     /* last killed text, for yank */
	char **history;         /* oldest first; owned */
	int n_history;
	int hist_pos;           /* n_history = editing the draft */
	char *draft;            /* text saved when browsing history */
};

void ui_input_init(struct ui_input *in);
void ui_input_fini(struct ui_input *in);
const char *ui_input_text(const struct ui_input *in);
int ui_input_empty(const struct ui_input *in);
/* Replace the text, cursor at the end. */
void ui_input_set(struct ui_input *in, const char *text);
void ui_input_clear(struct ui_input *in);

/* Insert UTF-8 at the cursor ("\r\n" and "\r" become "\n"; other controls
 * except TAB dropped; invalid bytes kept and shown as U+FFFD). */
void ui_input_insert(struct ui_input *in, const char *s, size_t n);
void ui_input_backspace(struct ui_input *in);   /* delete grapheme before */
void ui_input_delete(struct ui_input *in);      /* delete grapheme after */
void ui_input_left(struct ui_input *in);
void ui_input_right(struct ui_input *in);
void ui_input_word_left(struct ui_input *in);
void ui_input_word_right(struct ui_input *in);
void ui_input_home(struct ui_input *in);        /* start of logical line */
void ui_input_end(struct ui_input *in);
void ui_input_kill_line(struct ui_input *in);   /* to end of line (or the \n) */
void ui_input_kill_line_start(struct ui_input *in);
void ui_input_kill_word(struct ui_input *in);   /* word before cursor */
void ui_input_yank(struct ui_input *in);

/* Rows of the text wrapped to `width` (grapheme wrap) and the cursor's
 * row/column in them.  A cursor after a full row is placed at column 0 of
 * the next row (which may be one past the last: *n_rows counts it). */
void ui_input_layout(const struct ui_input *in, int width, struct ui_spans *rows, int *crow,
		     int *ccol);
/* Move one visual row up/down keeping the goal column.  Returns 0 when
 * already on the first/last row (the caller may then browse history). */
int ui_input_vertical(struct ui_input *in, int delta, int width);

/* History: add (skips empty and repeats of the last entry); browse. */
void ui_input_history_add(struct ui_input *in, const char *text);
int ui_input_history_prev(struct ui_input *in); /* 0 when at the oldest */
int ui_input_history_next(struct ui_input *in); /* 0 when at the draft */

#endif
