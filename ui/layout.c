/* ui/layout.c — pane geometry (see layout_impl.h).
 *
 * Space is handed out bottom-up in priority order: the status bar, the
 * input (at least one row), its separator, the notice rows, and the rest to the
 * transcript; on tiny screens lower-priority panes get zero rows rather than
 * negative ones.  The sidebar takes a fifth of the width (16..32 columns)
 * when the screen is at least UI_LAYOUT_SIDEBAR_MIN_COLS wide.
 */
#include "config.h"

#include "ui/layout_impl.h"

#include <string.h>

static int take(int *avail, int want)
{
	int got = want < *avail ? want : *avail;

	if (got < 0)
		got = 0;
	*avail -= got;
	return got;
}

void ui_layout_compute(int cols, int rows, int sidebar_wanted, int input_rows, int notice,
		       struct ui_layout *o)
{
	int avail, y, in_cap, sw;

	memset(o, 0, sizeof *o);
	if (cols < 0)
		cols = 0;
	if (rows < 0)
		rows = 0;
	avail = rows;
	o->status.h = take(&avail, 1);
	in_cap = rows / 3;
	if (in_cap > UI_LAYOUT_INPUT_MAX_ROWS)
		in_cap = UI_LAYOUT_INPUT_MAX_ROWS;
	if (in_cap < 1)
		in_cap = 1;
	if (input_rows < 1)
		input_rows = 1;
	o->input.h = take(&avail, input_rows < in_cap ? input_rows : in_cap);
	o->input_sep.h = take(&avail, 1);
	o->notice.h = take(&avail, notice);
	o->transcript.h = avail;

	/* stack from the top */
	y = 0;
	o->transcript.y = y;
	y += o->transcript.h;
	o->notice.y = y;
	y += o->notice.h;
	o->input_sep.y = y;
	y += o->input_sep.h;
	o->input.y = y;
	y += o->input.h;
	o->status.y = y;

	o->status.w = o->input.w = o->input_sep.w = o->notice.w = cols;
	sw = 0;
	if (sidebar_wanted && cols >= UI_LAYOUT_SIDEBAR_MIN_COLS) {
		sw = cols / 5;
		sw = sw < 16 ? 16 : sw > 32 ? 32 : sw;
	}
	o->sidebar_visible = sw > 0;
	o->sidebar = (struct ui_rect){ 0, 0, sw, sw ? o->transcript.h : 0 };
	o->sep = (struct ui_rect){ sw, 0, sw ? 1 : 0, sw ? o->transcript.h : 0 };
	o->transcript.x = sw + o->sep.w;
	o->transcript.w = cols - o->transcript.x;
}
