/* ui/transcript_impl.h — the transcript view-model (ui/transcript.c).
 *
 * Owns the messages of the open conversation (source text, as the app gave
 * it) and their rendering: markdown-ish source lines -> styled rows wrapped
 * to the current width; a reply's <think> ... </think> block (reasoning
 * models) as dim rows behind a dotted bar.  Each row owns its bytes and a list of runs (byte
 * range + theme role).  Rendering is incremental: appending streamed text
 * re-renders only the message's last source line onward, resuming with the
 * parser state (inside a code fence or not) saved at that line.
 *
 * Line numbering: for each message, one header row ("You", branch i/n),
 * its body rows, then one blank separator row.  `scroll` counts rows from
 * the bottom (0 = follow the newest output).
 */
#ifndef TERN_UI_TRANSCRIPT_IMPL_H
#define TERN_UI_TRANSCRIPT_IMPL_H

#include <stddef.h>

#include "common/strbuf.h"
#include "ui/ui.h"

struct ui_run {
	size_t start, end;  /* bytes of the row's text */
	int role;           /* enum theme_role */
};

enum ui_tline_kind { UI_TLINE_BODY, UI_TLINE_HEADER, UI_TLINE_BLANK };

struct ui_tline {
	char *text;         /* owned, NUL-terminated, no '\n' */
	size_t len;
	struct ui_run *runs; /* owned; cover text in order, may leave gaps */
	int n_runs;
	int fill_role;      /* role of the rest of the row (code blocks) */
	int kind;           /* enum ui_tline_kind */
};

struct ui_tmsg {
	int id;
	enum ui_role role;
	struct strbuf text;     /* source */
	int branch_i, branch_n;
	char *note;             /* owned or NULL: dim, after the label */
	struct ui_tline header;
	struct ui_tline *lines; /* body rows */
	size_t n_lines, cap_lines;
	/* resume point for streaming: the last source line */
	size_t tail_src;        /* byte offset where it starts */
	size_t tail_line;       /* body rows before it */
	int tail_state;         /* parser state at tail_src: inside a ```
				 * fence, a <think> block, blocks folded
				 * (transcript.c) */
};

struct ui_transcript {
	struct ui_tmsg *msgs;
	int n_msgs, cap_msgs;
	int width;      /* wrap width (columns) */
	long scroll;    /* rows from the bottom */
	int selected;   /* message index, -1 = none */
	int hide_think; /* <think> blocks as their label row alone */
};

void ui_transcript_init(struct ui_transcript *t, int width);
void ui_transcript_fini(struct ui_transcript *t);
void ui_transcript_reset(struct ui_transcript *t);
/* Re-wrap everything when the width changes. */
void ui_transcript_set_width(struct ui_transcript *t, int width);
/* Show (0) or fold (1) reasoning models' <think> blocks: folded, a block
 * is its "thinking (hidden)" label row; everything is re-rendered. */
void ui_transcript_set_hide_think(struct ui_transcript *t, int hide);
int ui_transcript_add_msg(struct ui_transcript *t, int id, enum ui_role role, const char *text,
			  int branch_i, int branch_n);
/* Returns the message index, or -1 when id is unknown. */
int ui_transcript_find(const struct ui_transcript *t, int id);
int ui_transcript_append_msg(struct ui_transcript *t, int id, const char *s, size_t n);
int ui_transcript_set_msg(struct ui_transcript *t, int id, const char *text, int branch_i,
			  int branch_n);
void ui_transcript_truncate_at(struct ui_transcript *t, int index);
/* A dim note after message id's label (NULL or "" clears); -1 when id is
 * unknown.  Rows do not change. */
int ui_transcript_set_note(struct ui_transcript *t, int id, const char *note);

/* Total rows, and row i (0 = top).  *msg receives the message index. */
long ui_transcript_rows(const struct ui_transcript *t);
const struct ui_tline *ui_transcript_row(const struct ui_transcript *t, long i, int *msg);
/* First row of message index m (its header). */
long ui_transcript_msg_row(const struct ui_transcript *t, int m);

/* Scrolling with a viewport of `height` rows; clamps to [0, rows-height]. */
void ui_transcript_scroll(struct ui_transcript *t, long delta, int height);
void ui_transcript_clamp(struct ui_transcript *t, int height);
/* Index of the top visible row. */
long ui_transcript_top(const struct ui_transcript *t, int height);
/* Move the message selection (delta -1/+1; from none it starts at the
 * last message) and scroll so the selected header is visible. */
void ui_transcript_select(struct ui_transcript *t, int delta, int height);

#endif
