/* ui/keymap.c — key names, action names and the binding table.
 *
 * Key names follow emacs/tmux conventions: modifiers "C-", "M-", "S-" in any
 * order before a base name; Ctrl+letter is case-insensitive (terminals send
 * the same byte for both), so "C-N" is "C-n"; "S-a" is "A".  The action
 * table below is the single source for names and help text (the help
 * overlay lists it in this order).
 */
#include "config.h"

#include "ui/keymap_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/utf8.h"
#include "common/xalloc.h"

static const struct {
	const char *name, *help;
} actions[UI_ACTION_COUNT] = {
	[UI_ACTION_NONE] = { "none", "unbind the key" },
	[UI_ACTION_QUIT] = { "quit", "quit tern" },
	[UI_ACTION_HELP] = { "help", "show this help (also ? when the input is empty)" },
	[UI_ACTION_CANCEL] = { "cancel", "stop generating / close the dialog" },
	[UI_ACTION_SUBMIT] = { "submit", "send the message" },
	[UI_ACTION_NEWLINE] = { "newline", "insert a line break" },
	[UI_ACTION_FOCUS_NEXT] = { "focus-next", "focus the next pane" },
	[UI_ACTION_FOCUS_PREV] = { "focus-prev", "focus the previous pane" },
	[UI_ACTION_TOGGLE_SIDEBAR] = { "toggle-sidebar", "show/hide the conversation list" },
	[UI_ACTION_NEW_CONVERSATION] = { "new-conversation", "start a new conversation" },
	[UI_ACTION_RENAME_CONVERSATION] = { "rename-conversation", "rename the conversation" },
	[UI_ACTION_DELETE_CONVERSATION] = { "delete-conversation", "delete the conversation" },
	[UI_ACTION_NEXT_CONVERSATION] = { "next-conversation", "open the next conversation" },
	[UI_ACTION_PREV_CONVERSATION] = { "prev-conversation", "open the previous conversation" },
	[UI_ACTION_REGENERATE] = { "regenerate", "regenerate the last reply" },
	[UI_ACTION_EDIT_MESSAGE] = { "edit-message", "edit the selected (or last) user message" },
	[UI_ACTION_BRANCH_PREV] = { "branch-prev", "show the previous branch of the message" },
	[UI_ACTION_BRANCH_NEXT] = { "branch-next", "show the next branch of the message" },
	[UI_ACTION_COPY_MESSAGE] = { "copy-message", "copy the selected (or last) message" },
	[UI_ACTION_SYSTEM_PROMPT] = { "system-prompt", "edit the system prompt" },
	[UI_ACTION_SAMPLER] = { "sampler", "sampler settings and presets" },
	[UI_ACTION_MODELS] = { "models", "choose or load a model" },
	[UI_ACTION_ATTACH] = { "attach", "attach an image" },
	[UI_ACTION_THEMES] = { "themes", "choose a theme" },
	[UI_ACTION_TOGGLE_THINKING] = { "toggle-thinking", "hide/show reasoning models' thinking" },
	[UI_ACTION_SCROLL_UP] = { "scroll-up", "scroll the transcript up a page" },
	[UI_ACTION_SCROLL_DOWN] = { "scroll-down", "scroll the transcript down a page" },
	[UI_ACTION_SCROLL_TOP] = { "scroll-top", "go to the start of the transcript" },
	[UI_ACTION_SCROLL_BOTTOM] = { "scroll-bottom", "follow the newest output" },
	[UI_ACTION_UP] = { "up", "up (editor row, list item, history at the top)" },
	[UI_ACTION_DOWN] = { "down", "down" },
	[UI_ACTION_LEFT] = { "left", "previous character" },
	[UI_ACTION_RIGHT] = { "right", "next character" },
	[UI_ACTION_WORD_LEFT] = { "word-left", "previous word" },
	[UI_ACTION_WORD_RIGHT] = { "word-right", "next word" },
	[UI_ACTION_HOME] = { "home", "start of line" },
	[UI_ACTION_END] = { "end", "end of line" },
	[UI_ACTION_BACKSPACE] = { "backspace", "delete the previous character" },
	[UI_ACTION_DELETE] = { "delete", "delete the next character" },
	[UI_ACTION_KILL_LINE] = { "kill-line", "cut to the end of the line" },
	[UI_ACTION_KILL_LINE_START] = { "kill-line-start", "cut to the start of the line" },
	[UI_ACTION_KILL_WORD] = { "kill-word", "cut the previous word" },
	[UI_ACTION_YANK] = { "yank", "paste the last cut text" },
	[UI_ACTION_HISTORY_PREV] = { "history-prev", "previous input from history" },
	[UI_ACTION_HISTORY_NEXT] = { "history-next", "next input from history" },
	[UI_ACTION_REDRAW] = { "redraw", "redraw the screen" },
};

const char *ui_action_name(enum ui_action a)
{
	if ((int)a < 0 || a >= UI_ACTION_COUNT)
		return NULL;
	return actions[a].name;
}

const char *ui_action_help(enum ui_action a)
{
	if ((int)a < 0 || a >= UI_ACTION_COUNT)
		return NULL;
	return actions[a].help;
}

int ui_action_from_name(const char *name)
{
	for (int i = 0; i < UI_ACTION_COUNT; i++)
		if (actions[i].name && !strcmp(actions[i].name, name))
			return i;
	return -1;
}

static const struct {
	const char *name;
	uint32_t key;
} key_names[] = {
	{ "Enter", UI_KEY_ENTER },       { "Return", UI_KEY_ENTER },   { "RET", UI_KEY_ENTER },
	{ "Tab", UI_KEY_TAB },           { "Backspace", UI_KEY_BACKSPACE }, { "BS", UI_KEY_BACKSPACE },
	{ "Esc", UI_KEY_ESC },           { "Escape", UI_KEY_ESC },     { "Up", UI_KEY_UP },
	{ "Down", UI_KEY_DOWN },         { "Left", UI_KEY_LEFT },      { "Right", UI_KEY_RIGHT },
	{ "Home", UI_KEY_HOME },         { "End", UI_KEY_END },        { "PageUp", UI_KEY_PAGEUP },
	{ "PgUp", UI_KEY_PAGEUP },       { "PageDown", UI_KEY_PAGEDOWN }, { "PgDn", UI_KEY_PAGEDOWN },
	{ "Insert", UI_KEY_INSERT },     { "Delete", UI_KEY_DELETE },  { "Del", UI_KEY_DELETE },
	{ "Space", ' ' },                { "SPC", ' ' },
};

int ui_key_parse(const char *name, uint32_t *key, struct diag *d)
{
	uint32_t mods = 0, base = 0;
	const char *p = name;
	size_t n;

	if (!name || !*name)
		return diag_fail(d, UI_E_KEY, "empty key name");
	/* modifiers: "C-", "M-", "S-" followed by something */
	while (p[0] && p[1] == '-' && p[2]) {
		if (p[0] == 'C')
			mods |= UI_KEY_CTRL;
		else if (p[0] == 'M')
			mods |= UI_KEY_META;
		else if (p[0] == 'S')
			mods |= UI_KEY_SHIFT;
		else
			break;
		p += 2;
	}
	n = strlen(p);
	for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++) {
		if (!strcasecmp(p, key_names[i].name)) {
			base = key_names[i].key;
			goto found;
		}
	}
	if ((p[0] == 'F' || p[0] == 'f') && n >= 2 && n <= 3 && p[1] >= '1' && p[1] <= '9') {
		int k = atoi(p + 1);
		if (k >= 1 && k <= 12 && (n == 2 || (p[2] >= '0' && p[2] <= '9'))) {
			base = UI_KEY_F1 + (uint32_t)(k - 1);
			goto found;
		}
		return diag_fail(d, UI_E_KEY, "key '%s': function keys are F1-F12", name);
	}
	{
		uint32_t cp;
		int len = utf8_decode(p, n, &cp);
		if (len > 0 && (size_t)len == n && cp >= 0x20 && cp != 0x7f) {
			base = cp;
			goto found;
		}
	}
	return diag_fail(d, UI_E_KEY,
			 "unknown key '%s' (e.g. C-n, M-x, F1, Esc, Enter, Tab, PageUp, a)", name);
found:
	if (base < 0x80 && base >= 'A' && base <= 'Z' && (mods & UI_KEY_CTRL))
		base += 'a' - 'A'; /* C-N == C-n */
	if (base < 0x80 && base >= 'a' && base <= 'z' && (mods & UI_KEY_SHIFT) &&
	    !(mods & UI_KEY_CTRL)) {
		base -= 'a' - 'A'; /* S-a == A */
		mods &= ~UI_KEY_SHIFT;
	}
	*key = base | mods;
	return 0;
}

void ui_key_format(uint32_t key, char *buf, size_t cap)
{
	uint32_t base = key & ~UI_KEY_MODS;
	char name[16];
	size_t i;

	name[0] = '\0';
	for (i = 0; i < sizeof key_names / sizeof key_names[0]; i++) {
		if (key_names[i].key == base) {
			snprintf(name, sizeof name, "%s", key_names[i].name);
			break;
		}
	}
	if (!name[0]) {
		if (base >= UI_KEY_F1 && base <= UI_KEY_F12) {
			snprintf(name, sizeof name, "F%u", (unsigned)(base - UI_KEY_F1 + 1));
		} else {
			int len = utf8_encode(base, name);
			name[len > 0 ? len : 0] = '\0';
			if (len <= 0)
				snprintf(name, sizeof name, "?");
		}
	}
	snprintf(buf, cap, "%s%s%s%s", key & UI_KEY_CTRL ? "C-" : "", key & UI_KEY_META ? "M-" : "",
		 key & UI_KEY_SHIFT ? "S-" : "", name);
}

void ui_keymap_init(struct ui_keymap *km)
{
	memset(km, 0, sizeof *km);
}

void ui_keymap_fini(struct ui_keymap *km)
{
	free(km->b);
	memset(km, 0, sizeof *km);
}

void ui_keymap_set(struct ui_keymap *km, uint32_t key, enum ui_action a)
{
	for (int i = 0; i < km->n; i++) {
		if (km->b[i].key == key) {
			if (a == UI_ACTION_NONE)
				km->b[i] = km->b[--km->n];
			else
				km->b[i].action = a;
			return;
		}
	}
	if (a == UI_ACTION_NONE)
		return;
	if (km->n == km->cap) {
		km->cap = km->cap ? km->cap * 2 : 64;
		km->b = xrealloc(km->b, (size_t)km->cap * sizeof *km->b);
	}
	km->b[km->n].key = key;
	km->b[km->n].action = a;
	km->n++;
}

enum ui_action ui_keymap_lookup(const struct ui_keymap *km, uint32_t key)
{
	for (int i = 0; i < km->n; i++)
		if (km->b[i].key == key)
			return km->b[i].action;
	return UI_ACTION_NONE;
}

int ui_keymap_bind_names(struct ui_keymap *km, const char *key_name, const char *action_name,
			 struct diag *d)
{
	uint32_t key;
	int a, rc;

	rc = ui_key_parse(key_name, &key, d);
	if (rc)
		return rc;
	a = action_name ? ui_action_from_name(action_name) : -1;
	if (a < 0)
		return diag_fail(d, UI_E_ACTION, "unknown action '%s' for key '%s'",
				 action_name ? action_name : "(null)", key_name);
	{
		const enum ui_action old = ui_keymap_lookup(km, key);

		ui_keymap_set(km, key, (enum ui_action)a);
		if (old != UI_ACTION_NONE && old != (enum ui_action)a &&
		    a != UI_ACTION_NONE) {
			char kn[32];

			ui_key_format(key, kn, sizeof kn);
			diag_fail(d, 0, "%s no longer does %s: it is bound to %s now", kn,
				  ui_action_name(old), ui_action_name((enum ui_action)a));
			return 1;
		}
	}
	return 0;
}

void ui_keymap_defaults(struct ui_keymap *km)
{
	static const struct {
		const char *key;
		enum ui_action a;
	} def[] = {
		{ "C-q", UI_ACTION_QUIT },
		{ "F1", UI_ACTION_HELP },
		{ "Esc", UI_ACTION_CANCEL },
		{ "C-c", UI_ACTION_CANCEL },
		{ "C-g", UI_ACTION_CANCEL },
		{ "Enter", UI_ACTION_SUBMIT },
		{ "M-Enter", UI_ACTION_NEWLINE },
		{ "C-j", UI_ACTION_NEWLINE },
		{ "Tab", UI_ACTION_FOCUS_NEXT },
		{ "S-Tab", UI_ACTION_FOCUS_PREV },
		{ "F9", UI_ACTION_TOGGLE_SIDEBAR },
		{ "C-n", UI_ACTION_NEW_CONVERSATION },
		{ "F2", UI_ACTION_RENAME_CONVERSATION },
		{ "F8", UI_ACTION_DELETE_CONVERSATION },
		{ "M-n", UI_ACTION_NEXT_CONVERSATION },
		{ "M-Down", UI_ACTION_NEXT_CONVERSATION },
		{ "M-p", UI_ACTION_PREV_CONVERSATION },
		{ "M-Up", UI_ACTION_PREV_CONVERSATION },
		{ "C-r", UI_ACTION_REGENERATE },
		{ "F5", UI_ACTION_REGENERATE },
		{ "M-e", UI_ACTION_EDIT_MESSAGE },
		{ "M-,", UI_ACTION_BRANCH_PREV },
		{ "M-.", UI_ACTION_BRANCH_NEXT },
		{ "M-c", UI_ACTION_COPY_MESSAGE },
		{ "F6", UI_ACTION_SYSTEM_PROMPT },
		{ "F4", UI_ACTION_SAMPLER },
		{ "F3", UI_ACTION_MODELS },
		{ "F7", UI_ACTION_ATTACH },
		{ "F10", UI_ACTION_THEMES },
		{ "M-t", UI_ACTION_TOGGLE_THINKING },
		{ "PageUp", UI_ACTION_SCROLL_UP },
		{ "PageDown", UI_ACTION_SCROLL_DOWN },
		{ "M-<", UI_ACTION_SCROLL_TOP },
		{ "C-Home", UI_ACTION_SCROLL_TOP },
		{ "M->", UI_ACTION_SCROLL_BOTTOM },
		{ "C-End", UI_ACTION_SCROLL_BOTTOM },
		{ "Up", UI_ACTION_UP },
		{ "Down", UI_ACTION_DOWN },
		{ "Left", UI_ACTION_LEFT },
		{ "C-b", UI_ACTION_LEFT },
		{ "Right", UI_ACTION_RIGHT },
		{ "C-f", UI_ACTION_RIGHT },
		{ "M-b", UI_ACTION_WORD_LEFT },
		{ "C-Left", UI_ACTION_WORD_LEFT },
		{ "M-f", UI_ACTION_WORD_RIGHT },
		{ "C-Right", UI_ACTION_WORD_RIGHT },
		{ "Home", UI_ACTION_HOME },
		{ "C-a", UI_ACTION_HOME },
		{ "End", UI_ACTION_END },
		{ "C-e", UI_ACTION_END },
		{ "Backspace", UI_ACTION_BACKSPACE },
		{ "C-h", UI_ACTION_BACKSPACE },
		{ "Delete", UI_ACTION_DELETE },
		{ "C-d", UI_ACTION_DELETE },
		{ "C-k", UI_ACTION_KILL_LINE },
		{ "C-u", UI_ACTION_KILL_LINE_START },
		{ "C-w", UI_ACTION_KILL_WORD },
		{ "M-Backspace", UI_ACTION_KILL_WORD },
		{ "C-y", UI_ACTION_YANK },
		{ "C-p", UI_ACTION_HISTORY_PREV },
		{ "M-Left", UI_ACTION_HISTORY_PREV },
		{ "M-Right", UI_ACTION_HISTORY_NEXT },
		{ "C-l", UI_ACTION_REDRAW },
	};

	for (size_t i = 0; i < sizeof def / sizeof def[0]; i++) {
		uint32_t key;
		int rc = ui_key_parse(def[i].key, &key, NULL);
		if (rc == 0)
			ui_keymap_set(km, key, def[i].a);
	}
}

void ui_keymap_keys_for(const struct ui_keymap *km, enum ui_action a, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < km->n; i++) {
		char k[32];
		if (km->b[i].action != a)
			continue;
		ui_key_format(km->b[i].key, k, sizeof k);
		len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s",
					len ? ", " : "", k);
		if (len >= cap)
			break;
	}
}
