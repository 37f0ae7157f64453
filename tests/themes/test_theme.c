/* tests/themes/test_theme.c — theme roles, colour parsing, YAML loading.
 *
 * Expectations come from outside this code: the xterm palette formula
 * (16 + 36r + 6g + b with levels 0,95,135,175,215,255; greys 8+10k), WCAG 2
 * relative luminance and contrast ratio, and line:col positions counted by
 * hand in the inline YAML snippets.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "themes/theme.h"

#ifndef TERN_THEMES_DIR
#define TERN_THEMES_DIR "themes"
#endif

static int load_str(const char *text, struct theme *t, struct diag *d)
{
	diag_clear(d);
	return theme_load_string("t.yaml", text, strlen(text), t, d);
}

/* WCAG 2.x relative luminance of an sRGB colour. */
static double lum(uint32_t rgb)
{
	double c[3] = { (rgb >> 16 & 255) / 255.0, (rgb >> 8 & 255) / 255.0, (rgb & 255) / 255.0 };
	for (int i = 0; i < 3; i++)
		c[i] = c[i] <= 0.03928 ? c[i] / 12.92 : pow((c[i] + 0.055) / 1.055, 2.4);
	return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

static double contrast(uint32_t a, uint32_t b)
{
	double la = lum(a), lb = lum(b);
	return la > lb ? (la + 0.05) / (lb + 0.05) : (lb + 0.05) / (la + 0.05);
}

START_TEST(test_role_names)
{
	ck_assert_int_eq(theme_role_from_name("code-keyword"), THEME_ROLE_CODE_KEYWORD);
	ck_assert_int_eq(theme_role_from_name("code_keyword"), THEME_ROLE_CODE_KEYWORD);
	ck_assert_int_eq(theme_role_from_name("normal"), THEME_ROLE_NORMAL);
	ck_assert_int_eq(theme_role_from_name("nope"), -1);
	ck_assert_ptr_null(theme_role_name(THEME_ROLE_COUNT));
	/* every role name round-trips and is unique */
	for (int i = 0; i < THEME_ROLE_COUNT; i++) {
		const char *n = theme_role_name((enum theme_role)i);
		ck_assert_ptr_nonnull(n);
		ck_assert_int_eq(theme_role_from_name(n), i);
	}
}
END_TEST

START_TEST(test_color_parse)
{
	uint32_t c;
	struct diag d;

	ck_assert_int_eq(theme_color_parse("#1a2B3c", &c, NULL), 0);
	ck_assert_uint_eq(c, 0x1a2b3c);
	ck_assert_int_eq(theme_color_parse("red", &c, NULL), 0);
	ck_assert_uint_eq(c, THEME_COLOR_INDEX(1));
	ck_assert_int_eq(theme_color_parse("bright-white", &c, NULL), 0);
	ck_assert_uint_eq(c, THEME_COLOR_INDEX(15));
	ck_assert_int_eq(theme_color_parse("255", &c, NULL), 0);
	ck_assert_uint_eq(c, THEME_COLOR_INDEX(255));
	ck_assert_int_eq(theme_color_parse("default", &c, NULL), 0);
	ck_assert_uint_eq(c, THEME_COLOR_DEFAULT);
	diag_clear(&d);
	ck_assert_int_eq(theme_color_parse("256", &c, &d), THEME_E_SCHEMA);
	ck_assert_int_eq(theme_color_parse("#12345", &c, &d), THEME_E_SCHEMA);
	ck_assert_int_eq(theme_color_parse("#12345g", &c, &d), THEME_E_SCHEMA);
	ck_assert_ptr_nonnull(strstr(d.msg, "'g'"));
	ck_assert_int_eq(theme_color_parse("purple", &c, &d), THEME_E_SCHEMA);
	ck_assert_int_eq(theme_color_parse("", &c, &d), THEME_E_SCHEMA);
}
END_TEST

START_TEST(test_palette_rgb)
{
	/* xterm 256: 196 = 16+36*5 = pure red; 21 = 16+5 blue; 16 black;
	 * 231 white; 232 = grey 8; 255 = grey 238; 67 = 16+36+6*2+3 ->
	 * (95,135,175). */
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(196), 0), 0xff0000);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(21), 0), 0x0000ff);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(16), 1), 0x000000);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(231), 0), 0xffffff);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(232), 0), 0x080808);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(255), 0), 0xeeeeee);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_INDEX(67), 0), 0x5f87af);
	ck_assert_uint_eq(theme_color_rgb(0x123456, 0), 0x123456);
	ck_assert_uint_eq(theme_color_rgb(THEME_COLOR_DEFAULT, 0xabcdef), 0xabcdef);
}
END_TEST

START_TEST(test_builtin_readable)
{
	const struct theme *t = theme_builtin_default();

	ck_assert_str_eq(t->name, "default");
	/* a role left out of the designated initializers would be black on
	 * black (fg 0, bg 0); assume a dark terminal background. */
	for (int i = 0; i < THEME_ROLE_COUNT; i++) {
		uint32_t fg = theme_color_rgb(t->roles[i].fg, 0xd0d0d0);
		uint32_t bg = theme_color_rgb(t->roles[i].bg, 0x000000);
		ck_assert_msg(contrast(fg, bg) >= 3.0, "role %s unreadable", theme_role_name(i));
	}
}
END_TEST

static void load_shipped(const char *file, struct theme *t)
{
	char path[1024];
	struct diag d;

	snprintf(path, sizeof path, "%s/%s", TERN_THEMES_DIR, file);
	diag_clear(&d);
	ck_assert_msg(theme_load_file(path, t, &d) == 0, "%s", d.msg);
}

START_TEST(test_shipped_default_matches_builtin)
{
	struct theme t;

	load_shipped("default.yaml", &t);
	ck_assert_str_eq(t.name, "default");
	ck_assert_mem_eq(t.roles, theme_builtin_default()->roles, sizeof t.roles);
}
END_TEST

START_TEST(test_shipped_light)
{
	struct theme t;

	load_shipped("light.yaml", &t);
	ck_assert_str_eq(t.name, "light");
	/* a light theme: background brighter than text, and every text role
	 * readable (WCAG AA 4.5:1) on its own background, which it must set
	 * explicitly (a light theme cannot rely on the terminal's colours). */
	ck_assert(lum(t.roles[THEME_ROLE_NORMAL].bg) > lum(t.roles[THEME_ROLE_NORMAL].fg));
	for (int i = 0; i < THEME_ROLE_COUNT; i++) {
		ck_assert_msg(THEME_COLOR_IS_RGB(t.roles[i].fg) && THEME_COLOR_IS_RGB(t.roles[i].bg),
			      "role %s keeps a terminal default colour", theme_role_name(i));
		if (i == THEME_ROLE_BORDER)
			continue; /* decoration, not text */
		ck_assert_msg(contrast(t.roles[i].fg, t.roles[i].bg) >= 4.5, "role %s: %.2f",
			      theme_role_name(i), contrast(t.roles[i].fg, t.roles[i].bg));
	}
}
END_TEST

START_TEST(test_shipped_high_contrast)
{
	struct theme t;

	load_shipped("high-contrast.yaml", &t);
	ck_assert_str_eq(t.name, "high-contrast");
	for (int i = 0; i < THEME_ROLE_COUNT; i++) {
		ck_assert(THEME_COLOR_IS_RGB(t.roles[i].fg) && THEME_COLOR_IS_RGB(t.roles[i].bg));
		ck_assert_msg(contrast(t.roles[i].fg, t.roles[i].bg) >= 7.0, "role %s: %.2f",
			      theme_role_name(i), contrast(t.roles[i].fg, t.roles[i].bg));
	}
	ck_assert_uint_eq(t.roles[THEME_ROLE_HEADING].attrs, THEME_ATTR_BOLD | THEME_ATTR_UNDERLINE);
}
END_TEST

START_TEST(test_partial_and_fields)
{
	struct theme t;
	struct diag d;

	ck_assert_int_eq(load_str("name: x\nroles:\n  user: { fg: 33, attrs: [bold, reverse] }\n",
				  &t, &d), 0);
	ck_assert_str_eq(t.name, "x");
	ck_assert_uint_eq(t.roles[THEME_ROLE_USER].fg, THEME_COLOR_INDEX(33));
	ck_assert_uint_eq(t.roles[THEME_ROLE_USER].bg, THEME_COLOR_DEFAULT);
	ck_assert_uint_eq(t.roles[THEME_ROLE_USER].attrs, THEME_ATTR_BOLD | THEME_ATTR_REVERSE);
	/* untouched role keeps the builtin style */
	ck_assert_mem_eq(&t.roles[THEME_ROLE_CODE], &theme_builtin_default()->roles[THEME_ROLE_CODE],
			 sizeof t.roles[0]);
}
END_TEST

/* Error positions: libyaml marks are 0-based; messages are 1-based. */
START_TEST(test_errors_line_col)
{
	struct theme t;
	struct diag d;

	/* unknown top-level key "colour" at line 2 col 1 */
	ck_assert_int_eq(load_str("name: x\ncolour: red\n", &t, &d), THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:2:1: unknown key 'colour'") != NULL, "%s", d.msg);

	/* unknown role "usr" at line 3 col 3 */
	ck_assert_int_eq(load_str("name: x\nroles:\n  usr: { fg: red }\n", &t, &d), THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:3:3: unknown role 'usr'") != NULL, "%s", d.msg);

	/* bad colour value: "  user: { fg: '#12' }" value starts at col 15 */
	ck_assert_int_eq(load_str("name: x\nroles:\n  user: { fg: '#12' }\n", &t, &d), THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:3:15: colour '#12'") != NULL, "%s", d.msg);

	/* unknown attribute on line 4, col 14 ("    attrs: [bold, blink]") */
	ck_assert_int_eq(load_str("name: x\nroles:\n  user:\n    attrs: [bold, blink]\n", &t, &d),
			 THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:4:19: unknown attribute 'blink'") != NULL, "%s", d.msg);

	/* unknown style key "fgcolor" at 3:11 */
	ck_assert_int_eq(load_str("name: x\nroles:\n  user: { fgcolor: red }\n", &t, &d),
			 THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:3:11: unknown key 'fgcolor'") != NULL, "%s", d.msg);

	/* missing name */
	ck_assert_int_eq(load_str("roles: {}\n", &t, &d), THEME_E_SCHEMA);
	ck_assert_ptr_nonnull(strstr(d.msg, "missing 'name'"));

	/* YAML syntax error: unclosed flow mapping, reported with a position */
	ck_assert_int_eq(load_str("name: x\nroles: { user: {fg: red}\n", &t, &d), THEME_E_PARSE);
	ck_assert_msg(strncmp(d.msg, "t.yaml:", 7) == 0 && strstr(d.msg, ":3:") != NULL, "%s", d.msg);

	/* not a mapping */
	ck_assert_int_eq(load_str("- a\n- b\n", &t, &d), THEME_E_SCHEMA);
	ck_assert_msg(strstr(d.msg, "t.yaml:1:1:") != NULL, "%s", d.msg);
}
END_TEST

START_TEST(test_missing_file)
{
	struct theme t;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(theme_load_file("/nonexistent/x.yaml", &t, &d), THEME_E_IO);
	ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/x.yaml"));
}
END_TEST

START_TEST(test_set_load_dir)
{
	struct theme_set set;
	struct diag d;

	theme_set_init(&set);
	diag_clear(&d);
	ck_assert_msg(theme_set_load_dir(&set, TERN_THEMES_DIR, &d) == 0, "%s", d.msg);
	/* builtin "default" replaced by default.yaml, plus light + high-contrast */
	ck_assert_int_eq(set.n_items, 3);
	ck_assert_int_eq(theme_set_find(&set, "default"), 0);
	ck_assert_int_ge(theme_set_find(&set, "light"), 1);
	ck_assert_int_ge(theme_set_find(&set, "high-contrast"), 1);
	ck_assert_int_eq(theme_set_find(&set, "nope"), -1);
	ck_assert_int_eq(theme_set_load_dir(&set, "/nonexistent-dir", &d), THEME_E_IO);
	theme_set_fini(&set);
}
END_TEST

Suite *theme_suite(void)
{
	Suite *s = suite_create("theme");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_role_names);
	tcase_add_test(tc, test_color_parse);
	tcase_add_test(tc, test_palette_rgb);
	tcase_add_test(tc, test_builtin_readable);
	tcase_add_test(tc, test_shipped_default_matches_builtin);
	tcase_add_test(tc, test_shipped_light);
	tcase_add_test(tc, test_shipped_high_contrast);
	tcase_add_test(tc, test_partial_and_fields);
	tcase_add_test(tc, test_errors_line_col);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_set_load_dir);
	suite_add_tcase(s, tc);
	return s;
}
