/* tests/ui/test_form.c — sampler field validation. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "ui/form_impl.h"

static int v(enum ui_field_type type, double min, double max, const char *text, char *out)
{
	struct ui_form_field f = { .name = (char[]){ "f" }, .type = type, .min = min, .max = max };
	char err[160];

	return ui_form_validate(&f, text, out, 64, err, sizeof err);
}

START_TEST(test_int)
{
	char out[64];

	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "40", out), 0);
	ck_assert_str_eq(out, "40");
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, " 7 ", out), 0);
	ck_assert_str_eq(out, "7");
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "100", out), 0);
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "101", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "-1", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "4.5", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "abc", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_INT, 0, 100, "", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_INT, -1e30, 1e30, "99999999999999999999999", out), UI_E_VALUE);
}
END_TEST

START_TEST(test_float)
{
	char out[64];

	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "0.7", out), 0);
	ck_assert_str_eq(out, "0.7");
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "2", out), 0);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "2.0001", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "-0.1", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "nan", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, -1e308, 1e308, "1e400", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "0.7x", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_FLOAT, 0, 2, "1e-1", out), 0);
	ck_assert_str_eq(out, "0.1");
}
END_TEST

START_TEST(test_bool_string)
{
	char out[64];

	ck_assert_int_eq(v(UI_FIELD_BOOL, 0, 0, "Yes", out), 0);
	ck_assert_str_eq(out, "true");
	ck_assert_int_eq(v(UI_FIELD_BOOL, 0, 0, "off", out), 0);
	ck_assert_str_eq(out, "false");
	ck_assert_int_eq(v(UI_FIELD_BOOL, 0, 0, "maybe", out), UI_E_VALUE);
	ck_assert_int_eq(v(UI_FIELD_STRING, 0, 0, "stop here", out), 0);
	ck_assert_str_eq(out, "stop here");
	ck_assert_int_eq(v(UI_FIELD_STRING, 0, 0, "a\x01", out), UI_E_VALUE);
}
END_TEST

START_TEST(test_error_text)
{
	struct ui_form_field f = { .name = (char[]){ "top_k" }, .type = UI_FIELD_INT, .min = 0,
				   .max = 100 };
	char out[64], err[160];

	ck_assert_int_eq(ui_form_validate(&f, "500", out, sizeof out, err, sizeof err), UI_E_VALUE);
	ck_assert_str_eq(err, "top_k: must be between 0 and 100");
}
END_TEST

Suite *form_suite(void)
{
	Suite *s = suite_create("form");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_int);
	tcase_add_test(tc, test_float);
	tcase_add_test(tc, test_bool_string);
	tcase_add_test(tc, test_error_text);
	suite_add_tcase(s, tc);
	return s;
}
