/* tests/app/test_reply.c — suite `reply`: what the chat shows about a
 * reply (app/reply.c).  Two replies streaming at once each have their own
 * tokens/s (the status bar once showed every stream's tokens counted from
 * the newest one's start); a reply cut by a full context or a loop says
 * so, the others need no notice. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "app/reply.h"

START_TEST(test_meters_are_per_reply)
{
	struct app_reply_meter a, b;
	int i;

	app_reply_meter_start(&a, 100.0);
	ck_assert(app_reply_meter_tps(&a, 100.0) == 0.0);
	for (i = 0; i < 90; i++)
		app_reply_meter_token(&a);
	app_reply_meter_start(&b, 100.5);
	for (i = 0; i < 90; i++)
		app_reply_meter_token(&a);
	for (i = 0; i < 45; i++)
		app_reply_meter_token(&b);
	/* A: 180 tokens in 2 s; B, started half a second later: 45 in 1.5 s */
	ck_assert_double_eq_tol(app_reply_meter_tps(&a, 102.0), 90.0, 1e-9);
	ck_assert_double_eq_tol(app_reply_meter_tps(&b, 102.0), 30.0, 1e-9);
	/* a new reply starts from nothing */
	app_reply_meter_start(&a, 200.0);
	ck_assert(app_reply_meter_tps(&a, 201.0) == 0.0);
}
END_TEST

START_TEST(test_finish_notices)
{
	ck_assert_ptr_nonnull(app_reply_finish_notice(LLM_FINISH_CONTEXT));
	ck_assert_ptr_nonnull(strstr(app_reply_finish_notice(LLM_FINISH_CONTEXT), "context is full"));
	ck_assert_ptr_nonnull(strstr(app_reply_finish_notice(LLM_FINISH_LOOP), "repeating"));
	ck_assert_ptr_null(app_reply_finish_notice(LLM_FINISH_EOS));
	ck_assert_ptr_null(app_reply_finish_notice(LLM_FINISH_MAX_TOKENS));
	ck_assert_ptr_null(app_reply_finish_notice(LLM_FINISH_CANCELLED));
	ck_assert_ptr_null(app_reply_finish_notice(LLM_FINISH_ERROR));
}
END_TEST

Suite *reply_suite(void)
{
	Suite *s = suite_create("reply");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_meters_are_per_reply);
	tcase_add_test(tc, test_finish_notices);
	suite_add_tcase(s, tc);
	return s;
}
