/* themes/theme.c — role names, colour parsing and the YAML theme loader.
 *
 * Owns the role-name table (indexed by enum theme_role; a static assert
 * keeps it the same length as the enum) and the schema of theme files:
 *
 *     name: STRING                      (required)
 *     roles:                            (optional mapping)
 *       ROLE: { fg: COLOR, bg: COLOR, attrs: [bold, italic, ...] }
 *
 * The loader uses libyaml's document API so that every node carries its
 * start mark; every error names "file:line:col" (libyaml marks are 0-based,
 * messages are 1-based like compilers').  Nothing is ever silently ignored:
 * an unknown key is an error, since a typo would otherwise look like "the
 * theme does not work".
 */
#include "config.h"

#include "themes/theme.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/xalloc.h"

static const char *const role_names[] = {
	[THEME_ROLE_NORMAL] = "normal",
	[THEME_ROLE_USER] = "user",
	[THEME_ROLE_USER_LABEL] = "user-label",
	[THEME_ROLE_ASSISTANT] = "assistant",
	[THEME_ROLE_ASSISTANT_LABEL] = "assistant-label",
	[THEME_ROLE_SYSTEM] = "system",
	[THEME_ROLE_CODE] = "code",
	[THEME_ROLE_CODE_KEYWORD] = "code-keyword",
	[THEME_ROLE_CODE_STRING] = "code-string",
	[THEME_ROLE_CODE_COMMENT] = "code-comment",
	[THEME_ROLE_INLINE_CODE] = "inline-code",
	[THEME_ROLE_HEADING] = "heading",
	[THEME_ROLE_EMPHASIS] = "emphasis",
	[THEME_ROLE_STRONG] = "strong",
	[THEME_ROLE_QUOTE] = "quote",
	[THEME_ROLE_BORDER] = "border",
	[THEME_ROLE_BORDER_FOCUS] = "border-focus",
	[THEME_ROLE_TITLE] = "title",
	[THEME_ROLE_SELECTION] = "selection",
	[THEME_ROLE_STATUS] = "status",
	[THEME_ROLE_STATUS_ACCENT] = "status-accent",
	[THEME_ROLE_INPUT] = "input",
	[THEME_ROLE_ERROR] = "error",
	[THEME_ROLE_NOTICE] = "notice",
	[THEME_ROLE_DIM] = "dim",
	[THEME_ROLE_SIDEBAR] = "sidebar",
	[THEME_ROLE_SIDEBAR_ACTIVE] = "sidebar-active",
	[THEME_ROLE_DIALOG] = "dialog",
	[THEME_ROLE_KEY] = "key",
};

_Static_assert(sizeof role_names / sizeof role_names[0] == THEME_ROLE_COUNT,
	       "role_names must list every enum theme_role");

const char *theme_role_name(enum theme_role role)
{
	if ((int)role < 0 || role >= THEME_ROLE_COUNT)
		return NULL;
	return role_names[role];
}

/* Compare role names treating '_' as '-', so "code_keyword" also works. */
static int name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a == '_' ? '-' : *a;
		char y = *b == '_' ? '-' : *b;
		if (x != y)
			return 0;
	}
	return *a == *b;
}

int theme_role_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < THEME_ROLE_COUNT; i++)
		if (name_eq(name, role_names[i]))
			return i;
	return -1;
}

static const char *const color_names[16] = {
	"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
	"bright-black", "bright-red", "bright-green", "bright-yellow",
	"bright-blue", "bright-magenta", "bright-cyan", "bright-white",
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int theme_color_parse(const char *s, uint32_t *out, struct diag *d)
{
	if (!s || !*s)
		return diag_fail(d, THEME_E_SCHEMA, "empty colour");
	if (s[0] == '#') {
		uint32_t v = 0;
		if (strlen(s) != 7)
			return diag_fail(d, THEME_E_SCHEMA,
					 "colour '%s': expected #rrggbb", s);
		for (int i = 1; i < 7; i++) {
			int h = hexval(s[i]);
			if (h < 0)
				return diag_fail(d, THEME_E_SCHEMA,
						 "colour '%s': '%c' is not a hex digit", s, s[i]);
			v = v << 4 | (uint32_t)h;
		}
		*out = v;
		return 0;
	}
	if (s[0] >= '0' && s[0] <= '9') {
		char *end;
		long v;

		errno = 0;
		v = strtol(s, &end, 10);
		if (*end || errno || v < 0 || v > 255)
			return diag_fail(d, THEME_E_SCHEMA,
					 "colour '%s': palette index must be 0-255", s);
		*out = THEME_COLOR_INDEX(v);
		return 0;
	}
	if (!strcmp(s, "default")) {
		*out = THEME_COLOR_DEFAULT;
		return 0;
	}
	for (int i = 0; i < 16; i++) {
		if (name_eq(s, color_names[i])) {
			*out = THEME_COLOR_INDEX(i);
			return 0;
		}
	}
	return diag_fail(d, THEME_E_SCHEMA,
			 "unknown colour '%s' (use #rrggbb, 0-255, a colour name or default)", s);
}

/* The xterm palette: 16 system colours (xterm's defaults), a 6x6x6 cube
 * with levels 0,95,135,175,215,255, and a grey ramp 8+10k. */
uint32_t theme_color_rgb(uint32_t color, uint32_t fallback)
{
	static const uint32_t sys16[16] = {
		0x000000, 0xcd0000, 0x00cd00, 0xcdcd00, 0x0000ee, 0xcd00cd, 0x00cdcd, 0xe5e5e5,
		0x7f7f7f, 0xff0000, 0x00ff00, 0xffff00, 0x5c5cff, 0xff00ff, 0x00ffff, 0xffffff,
	};
	static const unsigned lv[6] = { 0, 95, 135, 175, 215, 255 };
	unsigned n;

	if (THEME_COLOR_IS_RGB(color))
		return color;
	if (!THEME_COLOR_IS_INDEX(color))
		return fallback;
	n = color & 0xFFu;
	if (n < 16)
		return sys16[n];
	if (n < 232) {
		n -= 16;
		return lv[n / 36] << 16 | lv[n / 6 % 6] << 8 | lv[n % 6];
	}
	n = 8 + 10 * (n - 232);
	return n << 16 | n << 8 | n;
}

/* ---- YAML loading --------------------------------------------------- */

struct loader {
	const char *label;
	yaml_document_t doc;
	struct diag *d;
};

static int fail_at(struct loader *ld, const yaml_node_t *node, int code, const char *fmt, ...)
	DIAG_PRINTF(4, 5);

static int fail_at(struct loader *ld, const yaml_node_t *node, int code, const char *fmt, ...)
{
	char what[DIAG_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return diag_fail(ld->d, code, "%s:%zu:%zu: %s", ld->label,
			 node->start_mark.line + 1, node->start_mark.column + 1, what);
}

static const char *scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_attrs(struct loader *ld, yaml_node_t *node, unsigned *attrs)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{ "bold", THEME_ATTR_BOLD },         { "italic", THEME_ATTR_ITALIC },
		{ "underline", THEME_ATTR_UNDERLINE }, { "reverse", THEME_ATTR_REVERSE },
		{ "dim", THEME_ATTR_DIM },
	};
	yaml_node_item_t *it;

	if (node->type != YAML_SEQUENCE_NODE)
		return fail_at(ld, node, THEME_E_SCHEMA,
			       "attrs must be a list such as [bold, italic]");
	*attrs = 0;
	for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(&ld->doc, *it);
		const char *s = scalar(item);
		size_t k;

		if (!s)
			return fail_at(ld, item, THEME_E_SCHEMA, "attribute must be a word");
		for (k = 0; k < sizeof names / sizeof names[0]; k++)
			if (!strcmp(s, names[k].name))
				break;
		if (k == sizeof names / sizeof names[0])
			return fail_at(ld, item, THEME_E_SCHEMA,
				       "unknown attribute '%s' (bold, italic, underline, reverse, dim)", s);
		*attrs |= names[k].bit;
	}
	return 0;
}

static int parse_style(struct loader *ld, yaml_node_t *node, struct theme_style *st)
{
	yaml_node_pair_t *p;

	if (node->type != YAML_MAPPING_NODE)
		return fail_at(ld, node, THEME_E_SCHEMA,
			       "a role must be a mapping such as { fg: \"#ffffff\", attrs: [bold] }");
	/* A role given in the file is defined by the file alone: unspecified
	 * fields mean "terminal default", not "whatever the builtin had". */
	st->fg = THEME_COLOR_DEFAULT;
	st->bg = THEME_COLOR_DEFAULT;
	st->attrs = 0;
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
		const char *key = scalar(k);
		int rc;

		if (!key)
			return fail_at(ld, k, THEME_E_SCHEMA, "key must be a word");
		if (!strcmp(key, "fg") || !strcmp(key, "bg")) {
			struct diag sub;
			const char *val = scalar(v);
			if (!val)
				return fail_at(ld, v, THEME_E_SCHEMA, "%s must be a colour", key);
			diag_clear(&sub);
			rc = theme_color_parse(val, key[0] == 'f' ? &st->fg : &st->bg, &sub);
			if (rc)
				return fail_at(ld, v, rc, "%s", sub.msg);
		} else if (!strcmp(key, "attrs")) {
			rc = parse_attrs(ld, v, &st->attrs);
			if (rc)
				return rc;
		} else {
			return fail_at(ld, k, THEME_E_SCHEMA,
				       "unknown key '%s' (fg, bg, attrs)", key);
		}
	}
	return 0;
}

static int parse_roles(struct loader *ld, yaml_node_t *node, struct theme *out)
{
	yaml_node_pair_t *p;

	if (node->type != YAML_MAPPING_NODE)
		return fail_at(ld, node, THEME_E_SCHEMA, "roles must be a mapping of role: style");
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
		const char *key = scalar(k);
		int role = key ? theme_role_from_name(key) : -1;
		int rc;

		if (role < 0)
			return fail_at(ld, k, THEME_E_SCHEMA, "unknown role '%s'",
				       key ? key : "(not a word)");
		rc = parse_style(ld, v, &out->roles[role]);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_root(struct loader *ld, struct theme *out)
{
	yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
	yaml_node_pair_t *p;
	int have_name = 0;

	if (!root)
		return diag_fail(ld->d, THEME_E_SCHEMA, "%s: empty theme file", ld->label);
	if (root->type != YAML_MAPPING_NODE)
		return fail_at(ld, root, THEME_E_SCHEMA, "a theme must be a mapping (name:, roles:)");
	for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&ld->doc, p->value);
		const char *key = scalar(k);
		int rc;

		if (key && !strcmp(key, "name")) {
			const char *s = scalar(v);
			if (!s || !*s)
				return fail_at(ld, v, THEME_E_SCHEMA, "name must be a non-empty string");
			if (strlen(s) >= sizeof out->name)
				return fail_at(ld, v, THEME_E_SCHEMA, "name is longer than %d bytes",
					       THEME_NAME_MAX - 1);
			snprintf(out->name, sizeof out->name, "%s", s);
			have_name = 1;
		} else if (key && !strcmp(key, "roles")) {
			rc = parse_roles(ld, v, out);
			if (rc)
				return rc;
		} else {
			return fail_at(ld, k, THEME_E_SCHEMA, "unknown key '%s' (name, roles)",
				       key ? key : "(not a word)");
		}
	}
	if (!have_name)
		return fail_at(ld, root, THEME_E_SCHEMA, "missing 'name'");
	return 0;
}

int theme_load_string(const char *label, const char *text, size_t len, struct theme *out,
		      struct diag *d)
{
	yaml_parser_t parser;
	struct loader ld = { .label = label, .d = d };
	int rc;

	*out = *theme_builtin_default();
	out->name[0] = '\0';
	if (!yaml_parser_initialize(&parser))
		return diag_fail(d, THEME_E_PARSE, "%s: cannot initialise YAML parser", label);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &ld.doc)) {
		rc = diag_fail(d, THEME_E_PARSE, "%s:%zu:%zu: %s", label,
			       parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			       parser.problem ? parser.problem : "YAML error");
		yaml_parser_delete(&parser);
		return rc;
	}
	rc = parse_root(&ld, out);
	yaml_document_delete(&ld.doc);
	yaml_parser_delete(&parser);
	return rc;
}

int theme_load_file(const char *path, struct theme *out, struct diag *d)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t len = 0, cap = 4096;
	int rc;

	if (!f)
		return diag_fail(d, THEME_E_IO, "%s: %s", path, strerror(errno));
	buf = xmalloc(cap);
	for (;;) {
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (len < cap)
			break;
		if (cap >= (size_t)1 << 20) {
			fclose(f);
			free(buf);
			return diag_fail(d, THEME_E_IO, "%s: larger than 1 MiB", path);
		}
		cap *= 2;
		buf = xrealloc(buf, cap);
	}
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return diag_fail(d, THEME_E_IO, "%s: read error", path);
	}
	fclose(f);
	rc = theme_load_string(path, buf, len, out, d);
	free(buf);
	return rc;
}

/* ---- theme sets ----------------------------------------------------- */

void theme_set_init(struct theme_set *set)
{
	set->items = xmalloc(sizeof *set->items);
	set->items[0] = *theme_builtin_default();
	set->n_items = 1;
}

void theme_set_fini(struct theme_set *set)
{
	if (!set)
		return;
	free(set->items);
	set->items = NULL;
	set->n_items = 0;
}

int theme_set_find(const struct theme_set *set, const char *name)
{
	for (int i = 0; i < set->n_items; i++)
		if (!strcmp(set->items[i].name, name))
			return i;
	return -1;
}

void theme_set_add(struct theme_set *set, const struct theme *t)
{
	int i = theme_set_find(set, t->name);

	if (i >= 0) {
		set->items[i] = *t;
		return;
	}
	set->items = xrealloc(set->items, (size_t)(set->n_items + 1) * sizeof *set->items);
	set->items[set->n_items++] = *t;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int theme_set_load_dir(struct theme_set *set, const char *dir, struct diag *d)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int first_rc = 0;

	if (!dh)
		return diag_fail(d, THEME_E_IO, "%s: %s", dir, strerror(errno));
	while ((de = readdir(dh))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml") && de->d_name[0] != '.') {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrdup(de->d_name);
		}
	}
	closedir(dh);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t plen = strlen(dir) + strlen(names[i]) + 2;
		char *path = xmalloc(plen);
		struct theme t;
		struct diag sub;
		int rc;

		snprintf(path, plen, "%s/%s", dir, names[i]);
		diag_clear(&sub);
		rc = theme_load_file(path, &t, &sub);
		if (rc == 0)
			theme_set_add(set, &t);
		else if (first_rc == 0) {
			first_rc = rc;
			diag_fail(d, rc, "%s", sub.msg);
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return first_rc;
}
