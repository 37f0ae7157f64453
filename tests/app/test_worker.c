/* tests/app/test_worker.c — suite `worker`: the engine thread of the chat
 * (app/worker.c) loading the bundled stories260k: with the KV-cache bits
 * of the default config (16, an f16 cache) the model loads and reports
 * itself; with bits the engine does not implement (a quantized cache) the
 * load fails with a message that names the setting, instead of silently
 * running something else.
 */
#include "config.h"

#include <check.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "app/worker.h"
#include "common/diag.h"
#include "testutil.h"

/* Load stories260k with the given KV bits and return the first LOADED or
 * LOAD_FAILED event (progress events skipped); waits at most 60 s. */
static void load_and_wait(int k_bits, int v_bits, struct app_wev *out)
{
	char *model = test_data_path("../../models/stories260k");
	struct app_worker *w;
	struct diag d;
	int fds[2], spins;

	ck_assert_int_eq(pipe(fds), 0);
	diag_clear(&d);
	w = app_worker_start(fds[1], &d);
	ck_assert_msg(w != NULL, "%s", d.msg);
	app_worker_load(w, "stories", model, 256, "cpu", 1, k_bits, v_bits);
	for (spins = 0; spins < 600; spins++) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		struct app_wev ev;
		char buf[64];

		if (poll(&p, 1, 100) > 0 && read(fds[0], buf, sizeof buf) < 0)
			ck_abort_msg("wake fd");
		while (app_worker_poll(w, &ev)) {
			if (ev.type == APP_WEV_LOADED || ev.type == APP_WEV_LOAD_FAILED) {
				*out = ev;
				app_worker_stop(w);
				close(fds[0]);
				close(fds[1]);
				free(model);
				return;
			}
			app_worker_event_fini(&ev);
		}
	}
	ck_abort_msg("no load event within 60 s");
}

START_TEST(test_f16_cache_loads)
{
	struct app_wev ev;

	load_and_wait(16, 16, &ev);
	ck_assert_msg(ev.type == APP_WEV_LOADED, "load failed: %s", ev.text);
	ck_assert_msg(ev.info.backend[0] != '\0', "no backend reported");
	app_worker_event_fini(&ev);
}
END_TEST

START_TEST(test_quantized_cache_refused)
{
	static const int bits[][2] = { { 4, 4 }, { 8, 16 }, { 16, 2 } };
	size_t i;

	for (i = 0; i < sizeof bits / sizeof *bits; i++) {
		struct app_wev ev;

		load_and_wait(bits[i][0], bits[i][1], &ev);
		ck_assert_msg(ev.type == APP_WEV_LOAD_FAILED,
			      "k_bits %d v_bits %d loaded", bits[i][0], bits[i][1]);
		ck_assert_msg(strstr(ev.text, "quantized KV cache") &&
				      strstr(ev.text, "kv_bits: 16"),
			      "message: %s", ev.text);
		app_worker_event_fini(&ev);
	}
}
END_TEST

Suite *worker_suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, test_f16_cache_loads);
	tcase_add_test(tc, test_quantized_cache_refused);
	suite_add_tcase(s, tc);
	return s;
}
