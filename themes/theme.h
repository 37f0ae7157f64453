/* themes/theme.h — PUBLIC: colour themes for the terminal UI.
 *
 * A theme maps each semantic role (user text, code, border, status bar...)
 * to a style: foreground, background and attributes.  Nothing here knows
 * about curses; ui/term.c turns styles into colour pairs.  Themes come from
 * a compiled-in default (theme_builtin_default, so tern runs with no files
 * installed) or from YAML files (themes/NAME.yaml, installed to
 * $(pkgdatadir)/themes):
 *
 *     name: light
 *     roles:
 *       normal:    { fg: "#202020", bg: "#fafafa" }
 *       user:      { fg: blue, attrs: [bold] }
 *       code:      { fg: 238, bg: 254 }
 *
 * Colours are "#rrggbb", a palette name (black, red, green, yellow, blue,
 * magenta, cyan, white, bright-black ... bright-white, "default") or a
 * palette index 0-255.  Roles a file does not mention keep the compiled-in
 * default's style, so a theme may be partial.  Unknown keys, roles, colours
 * or attributes are errors reported as "file:line:col: message".
 *
 * Everything is plain data and thread-compatible (no global state).
 */
#ifndef TERN_THEMES_THEME_H
#define TERN_THEMES_THEME_H

#include <stddef.h>
#include <stdint.h>

#include "common/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative, like every layer's). */
enum theme_error {
	THEME_E_IO = -1,     /* file could not be opened or read */
	THEME_E_PARSE = -2,  /* YAML syntax error */
	THEME_E_SCHEMA = -3, /* unknown key/role, bad colour or attribute */
	THEME_E_NOTFOUND = -4,
};

/* Semantic roles.  Keep in sync with the name table in theme.c. */
enum theme_role {
	THEME_ROLE_NORMAL,        /* default text and background */
	THEME_ROLE_USER,          /* user message text */
	THEME_ROLE_USER_LABEL,    /* "You" header line */
	THEME_ROLE_ASSISTANT,     /* assistant message text */
	THEME_ROLE_ASSISTANT_LABEL,
	THEME_ROLE_SYSTEM,        /* system prompt / system messages */
	THEME_ROLE_CODE,          /* fenced code block body */
	THEME_ROLE_CODE_KEYWORD,  /* keywords inside code blocks */
	THEME_ROLE_CODE_STRING,   /* string literals inside code blocks */
	THEME_ROLE_CODE_COMMENT,  /* comments inside code blocks */
	THEME_ROLE_INLINE_CODE,   /* `inline code` */
	THEME_ROLE_HEADING,       /* # headings */
	THEME_ROLE_EMPHASIS,      /* *italic* */
	THEME_ROLE_STRONG,        /* **bold** */
	THEME_ROLE_QUOTE,         /* > quoted text */
	THEME_ROLE_BORDER,        /* separators, dialog frames */
	THEME_ROLE_BORDER_FOCUS,  /* frame of the focused pane */
	THEME_ROLE_TITLE,         /* pane and dialog titles */
	THEME_ROLE_SELECTION,     /* selected list row / message */
	THEME_ROLE_STATUS,        /* status bar */
	THEME_ROLE_STATUS_ACCENT, /* highlighted status bar items */
	THEME_ROLE_INPUT,         /* input editor text */
	THEME_ROLE_ERROR,         /* error banner and messages */
	THEME_ROLE_NOTICE,        /* notice banner (modes, hints) */
	THEME_ROLE_DIM,           /* secondary text: hints, fences, counts */
	THEME_ROLE_SIDEBAR,       /* conversation list */
	THEME_ROLE_SIDEBAR_ACTIVE,/* the open conversation in the list */
	THEME_ROLE_DIALOG,        /* dialog body */
	THEME_ROLE_KEY,           /* key names in help and hints */
	THEME_ROLE_COUNT
};

/* A colour: 0x00RRGGBB, a palette index (THEME_COLOR_INDEX(n), n 0-255), or
 * THEME_COLOR_DEFAULT (the terminal's own foreground/background). */
#define THEME_COLOR_DEFAULT 0xFF000000u
#define THEME_COLOR_INDEX_FLAG 0x01000000u
#define THEME_COLOR_INDEX(n) (THEME_COLOR_INDEX_FLAG | ((uint32_t)(n) & 0xFFu))
#define THEME_COLOR_IS_INDEX(c) (((c) & 0xFF000000u) == THEME_COLOR_INDEX_FLAG)
#define THEME_COLOR_IS_RGB(c) (((c) & 0xFF000000u) == 0)

enum theme_attr {
	THEME_ATTR_BOLD = 1u << 0,
	THEME_ATTR_ITALIC = 1u << 1,
	THEME_ATTR_UNDERLINE = 1u << 2,
	THEME_ATTR_REVERSE = 1u << 3,
	THEME_ATTR_DIM = 1u << 4,
};

struct theme_style {
	uint32_t fg, bg; /* see THEME_COLOR_* */
	unsigned attrs;  /* enum theme_attr bits */
};

#define THEME_NAME_MAX 64

struct theme {
	char name[THEME_NAME_MAX];
	struct theme_style roles[THEME_ROLE_COUNT];
};

/* The compiled-in dark default ("default").  Returns a pointer to static,
 * read-only data; copy it to modify.  Thread-safe. */
const struct theme *theme_builtin_default(void);

/* Role name ("code-keyword") of a role, or NULL when out of range. */
const char *theme_role_name(enum theme_role role);
/* Role for a name (case-sensitive, '-' or '_' accepted), or -1. */
int theme_role_from_name(const char *name);

/* Parse a colour as written in theme files ("#rrggbb", "red",
 * "bright-blue", "default", "0".."255").  Returns 0 or THEME_E_SCHEMA (with a
 * message in d). */
int theme_color_parse(const char *s, uint32_t *out, struct diag *d);

/* The RGB value a colour stands for, for contrast checks and nearest-colour
 * mapping: palette indexes use the standard xterm palette; DEFAULT returns
 * `fallback`. */
uint32_t theme_color_rgb(uint32_t color, uint32_t fallback);

/* Load a YAML theme file into *out.  out starts as a copy of the built-in
 * default; the file's `name` (required) and `roles` override it.  Returns 0,
 * THEME_E_IO, THEME_E_PARSE or THEME_E_SCHEMA; errors are reported in d as
 * "path:line:col: what" (1-based, from libyaml's marks).  On error *out is
 * left unspecified.  Thread-safe (no shared state). */
int theme_load_file(const char *path, struct theme *out, struct diag *d);
/* Same, from a string in memory; `label` names it in messages. */
int theme_load_string(const char *label, const char *text, size_t len, struct theme *out,
		      struct diag *d);

/* A list of themes: the built-in default first, then files.  Owns `items`. */
struct theme_set {
	struct theme *items;
	int n_items;
};

/* Empty set holding only the built-in default. */
void theme_set_init(struct theme_set *set);
void theme_set_fini(struct theme_set *set);
/* Add (or replace, when a theme of that name exists) a copy of *t. */
void theme_set_add(struct theme_set *set, const struct theme *t);
/* Load every "*.yaml" in dir (sorted by file name) into the set.  A file
 * that fails to load is skipped; the first failure is returned
 * (THEME_E_*) with its message in d, and later files are still loaded.
 * A missing directory is THEME_E_IO. */
int theme_set_load_dir(struct theme_set *set, const char *dir, struct diag *d);
/* Index of the theme called name, or -1. */
int theme_set_find(const struct theme_set *set, const char *name);

#ifdef __cplusplus
}
#endif
#endif
