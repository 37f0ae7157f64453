/* ui/term.c — the only file that starts and stops curses.
 *
 * Owns: terminal setup (raw mode, keypad, 25 ms ESC delay, bracketed paste
 * on/off), colour pairs derived from the theme, translation of curses key
 * codes into tern's key encoding (ui.h), and the restore path used by the
 * app's atexit/signal handlers (htop's CRT_done, kilo's editorAtExit).
 *
 * Colours: a terminfo with direct colour (RGB flag, e.g. TERM=xterm-direct)
 * gets exact 24-bit colours; otherwise theme colours map to the nearest of
 * the 256-colour palette (or of 8 on poor terminals).  Pairs come from
 * ncurses' alloc_pair, which recycles the least recently used pair.
 */
#include "config.h"

#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/utf8.h"
#include "common/xalloc.h"
#include "ui/image_impl.h"
#include "ui/term_impl.h"
#include "ui/ui_impl.h"

#define KEY_TERN_PASTE_BEGIN (KEY_MAX + 1)
#define KEY_TERN_PASTE_END (KEY_MAX + 2)

static const char paste_on[] = "\033[?2004h";
static const char paste_off[] = "\033[?2004l";

/* Set while curses is active; read by ui_term_restore from handlers. */
static volatile int curses_on;
static SCREEN *the_screen;

int ui_term_color(const struct ui_term *t, uint32_t c, int is_fg)
{
	if (c == THEME_COLOR_DEFAULT)
		return -1;
	if (THEME_COLOR_IS_INDEX(c) && (int)(c & 0xFF) < t->colors && !t->direct)
		return (int)(c & 0xFF);
	c = theme_color_rgb(c, is_fg ? 0xd0d0d0 : 0);
	if (t->direct)
		return (int)c;
	if (t->colors >= 256)
		return ui_color_to_256(c);
	return ui_color_to_8(c);
}

void ui_term_apply_theme(struct ui *ui)
{
	struct ui_term *t = ui->term;

	if (!t)
		return;
	for (int r = 0; r < THEME_ROLE_COUNT; r++) {
		const struct theme_style *st = &ui->theme.roles[r];
		unsigned a = 0;
		int p = -1;

		if (t->colors > 0)
			p = alloc_pair(ui_term_color(t, st->fg, 1), ui_term_color(t, st->bg, 0));
		t->role_pair[r] = p < 0 ? 0 : p;
		if (st->attrs & THEME_ATTR_BOLD)
			a |= A_BOLD;
		if (st->attrs & THEME_ATTR_ITALIC)
			a |= A_ITALIC;
		if (st->attrs & THEME_ATTR_UNDERLINE)
			a |= A_UNDERLINE;
		if (st->attrs & THEME_ATTR_REVERSE)
			a |= A_REVERSE;
		if (st->attrs & THEME_ATTR_DIM)
			a |= A_DIM;
		t->role_attr[r] = a;
	}
	ui_draw_invalidate(ui);
}

void ui_term_restore(void)
{
	if (!curses_on)
		return;
	curses_on = 0;
	endwin();
	/* write(2) is async-signal-safe; the result is irrelevant here */
	if (write(STDOUT_FILENO, paste_off, sizeof paste_off - 1) < 0)
		return;
}

int ui_term_open(struct ui *ui, struct diag *d)
{
	struct ui_term *t;
	const char *ct;

	if (ui->term)
		return 0;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		return diag_fail(d, UI_E_TERM, "not a terminal (stdin/stdout)");
	/* wide-character curses needs a UTF-8 LC_CTYPE; respect one the app set */
	{
		const char *cur = setlocale(LC_CTYPE, NULL);
		if (!cur || !strcmp(cur, "C") || !strcmp(cur, "POSIX"))
			setlocale(LC_CTYPE, "");
	}
	the_screen = newterm(NULL, stdout, stdin);
	if (!the_screen)
		return diag_fail(d, UI_E_TERM, "cannot initialise terminal '%s'",
				 getenv("TERM") ? getenv("TERM") : "(TERM unset)");
	set_term(the_screen);
	curses_on = 1;
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	leaveok(stdscr, FALSE);
	scrollok(stdscr, FALSE);
	define_key("\033[200~", KEY_TERN_PASTE_BEGIN);
	define_key("\033[201~", KEY_TERN_PASTE_END);

	t = xcalloc(1, sizeof *t);
	strbuf_init(&t->paste, 0);
	if (has_colors()) {
		start_color();
		use_default_colors();
		t->colors = COLORS;
		ct = getenv("COLORTERM");
		t->direct = tigetflag("RGB") > 0 || COLORS >= 0x1000000;
		if (t->direct && COLORS < 0x1000000)
			t->direct = 0; /* RGB flag without 24-bit colour numbers */
		(void)ct; /* COLORTERM alone cannot make curses emit 24-bit SGR */
	}
	ui->term = t;
	ui_term_apply_theme(ui);
	if (write(STDOUT_FILENO, paste_on, sizeof paste_on - 1) < 0) {
		/* no bracketed paste: pastes arrive as typed keys */
	}
	ui_resize(ui, COLS, LINES);
	ui->dirty = 1;
	return 0;
}

void ui_term_close(struct ui *ui)
{
	if (!ui->term)
		return;
	ui_term_restore();
	if (the_screen) {
		delscreen(the_screen);
		the_screen = NULL;
	}
	strbuf_fini(&ui->term->paste);
	free(ui->term->prev);
	free(ui->term);
	ui->term = NULL;
}

int ui_input_fd(const struct ui *ui)
{
	return ui->term ? STDIN_FILENO : -1;
}

void ui_term_write(struct ui *ui, const char *bytes, size_t n)
{
	if (!ui->term)
		return;
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, bytes, n);
		if (w <= 0)
			return;
		bytes += w;
		n -= (size_t)w;
	}
}

static uint32_t map_function_key(int k)
{
	const char *name;

	switch (k) {
	case KEY_UP: return UI_KEY_UP;
	case KEY_DOWN: return UI_KEY_DOWN;
	case KEY_LEFT: return UI_KEY_LEFT;
	case KEY_RIGHT: return UI_KEY_RIGHT;
	case KEY_HOME: return UI_KEY_HOME;
	case KEY_END: return UI_KEY_END;
	case KEY_PPAGE: return UI_KEY_PAGEUP;
	case KEY_NPAGE: return UI_KEY_PAGEDOWN;
	case KEY_IC: return UI_KEY_INSERT;
	case KEY_DC: return UI_KEY_DELETE;
	case KEY_BACKSPACE: return UI_KEY_BACKSPACE;
	case KEY_ENTER: return UI_KEY_ENTER;
	case KEY_BTAB: return UI_KEY_TAB | UI_KEY_SHIFT;
	case KEY_SLEFT: return UI_KEY_LEFT | UI_KEY_SHIFT;
	case KEY_SRIGHT: return UI_KEY_RIGHT | UI_KEY_SHIFT;
	default: break;
	}
	if (k >= KEY_F(1) && k <= KEY_F(12))
		return UI_KEY_F1 + (uint32_t)(k - KEY_F(1));
	/* xterm's modified cursor keys: kUP3 = Alt+Up, kUP5 = Ctrl+Up ... */
	name = keyname(k);
	if (name && name[0] == 'k') {
		static const struct {
			const char *base;
			uint32_t key;
		} m[] = { { "kUP", UI_KEY_UP },     { "kDN", UI_KEY_DOWN }, { "kLFT", UI_KEY_LEFT },
			  { "kRIT", UI_KEY_RIGHT }, { "kHOM", UI_KEY_HOME }, { "kEND", UI_KEY_END },
			  { "kDC", UI_KEY_DELETE }, { "kPRV", UI_KEY_PAGEUP }, { "kNXT", UI_KEY_PAGEDOWN } };
		for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
			size_t l = strlen(m[i].base);
			if (!strncmp(name, m[i].base, l) && name[l] >= '2' && name[l] <= '8' && !name[l + 1]) {
				int mod = name[l] - '1'; /* xterm: 1 + shift(1) + alt(2) + ctrl(4) */
				uint32_t key = m[i].key;
				if (mod & 1)
					key |= UI_KEY_SHIFT;
				if (mod & 2)
					key |= UI_KEY_META;
				if (mod & 4)
					key |= UI_KEY_CTRL;
				return key;
			}
		}
	}
	return 0;
}

static uint32_t map_char(wint_t c)
{
	if (c == '\r')
		return UI_KEY_ENTER;
	if (c == '\t')
		return UI_KEY_TAB;
	if (c == 0x7f)
		return UI_KEY_BACKSPACE;
	if (c == 0x1b)
		return UI_KEY_ESC;
	if (c >= 1 && c <= 26)
		return ('a' + (uint32_t)c - 1) | UI_KEY_CTRL;
	if (c < 0x20)
		return 0;
	return (uint32_t)c;
}

int ui_process_input(struct ui *ui)
{
	struct ui_term *t = ui->term;
	int n = 0;
	wint_t c;
	int r;

	if (!t)
		return 0;
	while ((r = wget_wch(stdscr, &c)) != ERR) {
		uint32_t key = 0;

		if (r == KEY_CODE_YES && (int)c == KEY_TERN_PASTE_BEGIN) {
			t->in_paste = 1;
			strbuf_reset(&t->paste);
			continue;
		}
		if (r == KEY_CODE_YES && (int)c == KEY_TERN_PASTE_END) {
			t->in_paste = 0;
			ui_paste(ui, strbuf_cstr(&t->paste), t->paste.len);
			strbuf_reset(&t->paste);
			n++;
			continue;
		}
		if (t->in_paste) {
			char buf[8];
			int len;
			if (r == KEY_CODE_YES) {
				if ((int)c == KEY_ENTER)
					strbuf_putc(&t->paste, '\n');
				continue;
			}
			len = utf8_encode((uint32_t)c, buf);
			if (len > 0)
				strbuf_append(&t->paste, buf, (size_t)len);
			continue;
		}
		if (r == KEY_CODE_YES) {
			if ((int)c == KEY_RESIZE) {
				ui_resize(ui, COLS, LINES);
				ui_draw_invalidate(ui);
				continue;
			}
			key = map_function_key((int)c);
		} else if (c == 0x1b) {
			/* Alt+key arrives as ESC then the key, with no delay */
			wint_t c2;
			int r2 = wget_wch(stdscr, &c2);
			if (r2 == OK && c2 != 0x1b) {
				key = map_char(c2);
				if (key)
					key |= UI_KEY_META;
			} else if (r2 == KEY_CODE_YES) {
				key = map_function_key((int)c2);
				if (key)
					key |= UI_KEY_META;
			} else {
				key = UI_KEY_ESC;
			}
		} else {
			key = map_char(c);
		}
		if (key) {
			ui_handle_key(ui, key);
			n++;
		}
	}
	return n;
}
