/* ui/layout_impl.h — terminal size -> pane rectangles (ui/layout.c).
 *
 * Pure.  Invariants for every size (even 0x0): all rectangles have w,h >= 0,
 * lie inside the screen, and do not overlap.  Top to bottom: [sidebar |
 * transcript], notice rows (when there are notices), input separator +
 * input rows, status bar (last row).
 */
#ifndef TERN_UI_LAYOUT_IMPL_H
#define TERN_UI_LAYOUT_IMPL_H

struct ui_rect {
	int x, y, w, h;
};

#define UI_LAYOUT_SIDEBAR_MIN_COLS 60 /* narrower screens hide the sidebar */
#define UI_LAYOUT_INPUT_MAX_ROWS 10

struct ui_layout {
	struct ui_rect sidebar;    /* w == 0 when hidden */
	struct ui_rect sep;        /* vertical line between sidebar and transcript */
	struct ui_rect transcript;
	struct ui_rect notice;     /* h == 0 when no notice; else one row each */
	struct ui_rect input_sep;  /* one row above the input: border + hints */
	struct ui_rect input;
	struct ui_rect status;
	int sidebar_visible;
};

/* input_rows: rows the input text wants (>= 1); capped at a third of the
 * screen and UI_LAYOUT_INPUT_MAX_ROWS.  notice: rows of notices (0: none),
 * given before the transcript takes the rest. */
void ui_layout_compute(int cols, int rows, int sidebar_wanted, int input_rows, int notice,
		       struct ui_layout *out);

#endif
