/* ui/term_impl.h — terminal state shared by term.c and draw.c (the only
 * files that include curses).  Plain data; no curses types leak out.
 */
#ifndef TERN_UI_TERM_IMPL_H
#define TERN_UI_TERM_IMPL_H

#include "common/strbuf.h"
#include "themes/theme.h"
#include "ui/screen_impl.h"

struct ui_term {
	int direct;                        /* colour numbers are 0xRRGGBB */
	int colors;                        /* COLORS */
	int role_pair[THEME_ROLE_COUNT];   /* extended pair per role */
	unsigned role_attr[THEME_ROLE_COUNT]; /* curses attr_t bits */
	struct ui_cell *prev;              /* last frame sent to curses */
	int prev_cols, prev_rows;
	int in_paste;
	struct strbuf paste;
};

/* Curses colour number for a theme colour (-1 = terminal default). */
int ui_term_color(const struct ui_term *t, uint32_t c, int is_fg);

#endif
