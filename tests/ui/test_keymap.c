/* tests/ui/test_keymap.c — key names, action names, binding errors. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "ui/keymap_impl.h"

static uint32_t k(const char *name)
{
	uint32_t key = 0;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(ui_key_parse(name, &key, &d) == 0, "%s: %s", name, d.msg);
	return key;
}

START_TEST(test_parse)
{
	ck_assert_uint_eq(k("C-n"), 'n' | UI_KEY_CTRL);
	ck_assert_uint_eq(k("C-N"), 'n' | UI_KEY_CTRL);
	ck_assert_uint_eq(k("M-x"), 'x' | UI_KEY_META);
	ck_assert_uint_eq(k("C-M-x"), 'x' | UI_KEY_META | UI_KEY_CTRL);
	ck_assert_uint_eq(k("M-C-x"), 'x' | UI_KEY_META | UI_KEY_CTRL);
	ck_assert_uint_eq(k("S-Tab"), UI_KEY_TAB | UI_KEY_SHIFT);
	ck_assert_uint_eq(k("S-a"), 'A');
	ck_assert_uint_eq(k("F1"), UI_KEY_F1);
	ck_assert_uint_eq(k("F12"), UI_KEY_F1 + 11);
	ck_assert_uint_eq(k("Esc"), UI_KEY_ESC);
	ck_assert_uint_eq(k("Enter"), UI_KEY_ENTER);
	ck_assert_uint_eq(k("PageUp"), UI_KEY_PAGEUP);
	ck_assert_uint_eq(k("pagedown"), UI_KEY_PAGEDOWN);
	ck_assert_uint_eq(k("Space"), ' ');
	ck_assert_uint_eq(k("?"), '?');
	ck_assert_uint_eq(k("-"), '-');
	ck_assert_uint_eq(k("M--"), '-' | UI_KEY_META);
	ck_assert_uint_eq(k("\xc3\xa9"), 0xe9); /* é */
}
END_TEST

START_TEST(test_parse_errors)
{
	uint32_t key;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(ui_key_parse("", &key, &d), UI_E_KEY);
	ck_assert_int_eq(ui_key_parse("F13", &key, &d), UI_E_KEY);
	ck_assert_ptr_nonnull(strstr(d.msg, "F1-F12"));
	ck_assert_int_eq(ui_key_parse("F0", &key, &d), UI_E_KEY);
	ck_assert_int_eq(ui_key_parse("Foo", &key, &d), UI_E_KEY);
	ck_assert_ptr_nonnull(strstr(d.msg, "'Foo'"));
	ck_assert_int_eq(ui_key_parse("C-", &key, &d), UI_E_KEY);
	ck_assert_int_eq(ui_key_parse("X-a", &key, &d), UI_E_KEY);
	ck_assert_int_eq(ui_key_parse("ab", &key, &d), UI_E_KEY);
}
END_TEST

START_TEST(test_format_roundtrip)
{
	static const char *const names[] = { "C-n", "M-x", "C-M-x", "S-Tab", "F1", "F12", "Esc",
					     "Enter", "PageUp", "Home", "M-Enter", "?", "A",
					     "\xc3\xa9", "C-Left" };
	char buf[32];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		ui_key_format(k(names[i]), buf, sizeof buf);
		ck_assert_str_eq(buf, names[i]);
	}
	ui_key_format(' ', buf, sizeof buf);
	ck_assert_str_eq(buf, "Space");
}
END_TEST

START_TEST(test_bind)
{
	struct ui_keymap km;
	struct diag d;
	char keys[128];

	ui_keymap_init(&km);
	ui_keymap_defaults(&km);
	diag_clear(&d);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'n' | UI_KEY_CTRL), UI_ACTION_NEW_CONVERSATION);
	ck_assert_int_eq(ui_keymap_lookup(&km, UI_KEY_F1), UI_ACTION_HELP);
	ck_assert_int_eq(ui_keymap_bind_names(&km, "C-t", "themes", &d), 0);
	ck_assert_int_eq(ui_keymap_lookup(&km, 't' | UI_KEY_CTRL), UI_ACTION_THEMES);
	/* rebind: done, and said, since C-n no longer opens a chat */
	ck_assert_int_eq(ui_keymap_bind_names(&km, "C-n", "quit", &d), 1);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'n' | UI_KEY_CTRL), UI_ACTION_QUIT);
	ck_assert_msg(strstr(d.msg, "C-n") && strstr(d.msg, "new-conversation") &&
		      strstr(d.msg, "quit"), "%s", d.msg);
	ck_assert_int_eq(ui_keymap_lookup(&km, 'q' | UI_KEY_CTRL), UI_ACTION_QUIT);
	ck_assert_int_eq(ui_keymap_bind_names(&km, "C-n", "quit", &d), 0); /* the same again */
	ck_assert_int_eq(ui_keymap_bind_names(&km, "C-n", "none", &d), 0); /* unbind */
	ck_assert_int_eq(ui_keymap_lookup(&km, 'n' | UI_KEY_CTRL), UI_ACTION_NONE);
	ck_assert_int_eq(ui_keymap_bind_names(&km, "C-n", "fly", &d), UI_E_ACTION);
	ck_assert_ptr_nonnull(strstr(d.msg, "'fly'"));
	ck_assert_int_eq(ui_keymap_bind_names(&km, "Hyper-x", "quit", &d), UI_E_KEY);
	ui_keymap_keys_for(&km, UI_ACTION_HELP, keys, sizeof keys);
	ck_assert_str_eq(keys, "F1");
	/* every action has a unique name that maps back */
	for (int a = 0; a < UI_ACTION_COUNT; a++) {
		ck_assert_ptr_nonnull(ui_action_name(a));
		ck_assert_ptr_nonnull(ui_action_help(a));
		ck_assert_int_eq(ui_action_from_name(ui_action_name(a)), a);
	}
	ui_keymap_fini(&km);
}
END_TEST

Suite *keymap_suite(void)
{
	Suite *s = suite_create("keymap");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_format_roundtrip);
	tcase_add_test(tc, test_bind);
	suite_add_tcase(s, tc);
	return s;
}
