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
#include "vlmodel.h"

/* Load stories260k with the given KV bits and return the first LOADED or
 * LOAD_FAILED event (progress events skipped); waits at most 60 s. */
static void load_and_wait(const char *draft, int k_bits, int v_bits,
			  struct app_wev *out)
{
	char *model = test_data_path("../../models/stories260k");
	struct app_worker *w;
	struct diag d;
	int fds[2], spins;

	ck_assert_int_eq(pipe(fds), 0);
	diag_clear(&d);
	w = app_worker_start(fds[1], &d);
	ck_assert_msg(w != NULL, "%s", d.msg);
	app_worker_load(w, "stories", model, draft, 256, "cpu", 1, k_bits, v_bits);
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

	load_and_wait(NULL, 16, 16, &ev);
	ck_assert_msg(ev.type == APP_WEV_LOADED, "load failed: %s", ev.text);
	ck_assert_msg(ev.info.backend[0] != '\0', "no backend reported");
	app_worker_event_fini(&ev);
}
END_TEST

/* The bundled stories260k has head_dim 8: a quantized cache (groups of
 * 32 values) is refused with the reason; an f16 half with a quantized
 * half is refused whatever the model. */
START_TEST(test_quantized_cache_refused)
{
	static const int bits[][2] = { { 4, 4 }, { 8, 16 }, { 16, 2 } };
	static const char *why[] = { "multiple of 32", "both f16", "both f16" };
	size_t i;

	for (i = 0; i < sizeof bits / sizeof *bits; i++) {
		struct app_wev ev;

		load_and_wait(NULL, bits[i][0], bits[i][1], &ev);
		ck_assert_msg(ev.type == APP_WEV_LOAD_FAILED,
			      "k_bits %d v_bits %d loaded", bits[i][0], bits[i][1]);
		ck_assert_msg(strstr(ev.text, why[i]), "message: %s", ev.text);
		app_worker_event_fini(&ev);
	}
}
END_TEST

/* The presets' thinking switch for reply() (1, their default). */
static int reply_thinking = 1;

/* What a reply's TEXT and NOTICE events are checked with (may be NULL). */
typedef void (*text_check)(const struct app_wev *ev, void *user);

/* Load DIR (with DRAFT, may be NULL) on the CPU and reply greedily to
 * MSGS with at most MAX_TOKENS tokens; each TEXT event goes to ON_TEXT,
 * the loaded info to *info, the DONE event to *out (the caller finis it);
 * 60 s at most. */
static void reply(const char *dir, const char *draft, const struct app_wmsg *msgs,
		  size_t n, int max_tokens, text_check on_text, void *user,
		  struct app_model_info *info, struct app_wev *out)
{
	struct app_preset preset;
	struct app_worker *w;
	struct app_wev ev;
	struct diag d;
	int fds[2], spins, done = 0;

	memset(&preset, 0, sizeof preset);
	preset.params = llm_sampler_default_params();
	preset.params.temperature = 0.0f;
	preset.max_tokens = max_tokens;
	preset.thinking = reply_thinking;
	ck_assert_int_eq(pipe(fds), 0);
	diag_clear(&d);
	w = app_worker_start(fds[1], &d);
	ck_assert_msg(w != NULL, "%s", d.msg);
	app_worker_load(w, "m", dir, draft, 256, "cpu", 1, 16, 16);
	for (spins = 0; spins < 600 && !done; spins++) {
		struct pollfd p = { fds[0], POLLIN, 0 };
		char buf[64];

		if (poll(&p, 1, 100) > 0 && read(fds[0], buf, sizeof buf) < 0)
			ck_abort_msg("wake fd");
		while (app_worker_poll(w, &ev)) {
			if (ev.type == APP_WEV_LOAD_FAILED)
				ck_abort_msg("load failed: %s", ev.text);
			if (ev.type == APP_WEV_LOADED) {
				*info = ev.info;
				app_worker_generate(w, 3, NULL, msgs, n, &preset);
			}
			if ((ev.type == APP_WEV_TEXT || ev.type == APP_WEV_NOTICE) &&
			    ev.tag == 3 && on_text)
				on_text(&ev, user);
			if (ev.type == APP_WEV_DONE && ev.tag == 3) {
				*out = ev;
				done = 1;
				continue;
			}
			app_worker_event_fini(&ev);
		}
	}
	ck_assert_msg(done, "no reply within 60 s");
	app_worker_stop(w);
	close(fds[0]);
	close(fds[1]);
}

struct draft_counts {
	size_t last_drafted, n_text;
};

/* counted as a step makes and keeps them */
static void check_counts(const struct app_wev *ev, void *user)
{
	struct draft_counts *c = user;

	ck_assert_uint_ge(ev->stats.n_drafted, c->last_drafted);
	ck_assert_uint_le(ev->stats.n_accepted, ev->stats.n_drafted);
	c->last_drafted = ev->stats.n_drafted;
	c->n_text++;
}

/* A draft model: the bundled model drafting for itself generates with
 * every greedy proposal kept, and the TEXT events carry the counts as they
 * grow (a step's proposals counted when made, each kept one when taken);
 * a draft of another vocabulary, or none at that path, fails the load
 * with a message. */
START_TEST(test_draft)
{
	char *model = test_data_path("../../models/stories260k");
	char *other = test_data_path("models/exl3-llama3");
	static const struct app_wmsg msg = { "user", "Once upon a time", NULL, 0 };
	struct draft_counts counts = { 0, 0 };
	struct app_model_info info;
	struct app_wev ev;

	load_and_wait(other, 16, 16, &ev);
	ck_assert_msg(ev.type == APP_WEV_LOAD_FAILED && strstr(ev.text, "vocabulary"),
		      "draft of another vocabulary: %s", ev.text);
	app_worker_event_fini(&ev);
	load_and_wait("/nonexistent/draft", 16, 16, &ev);
	ck_assert_msg(ev.type == APP_WEV_LOAD_FAILED && strstr(ev.text, "draft model"),
		      "missing draft: %s", ev.text);
	app_worker_event_fini(&ev);

	reply(model, model, &msg, 1, 60, check_counts, &counts, &info, &ev);
	ck_assert_int_eq(ev.finish, LLM_FINISH_MAX_TOKENS);
	ck_assert_uint_gt(ev.stats.n_drafted, 0);
	ck_assert_uint_eq(ev.stats.n_accepted, ev.stats.n_drafted);
	ck_assert_uint_gt(counts.n_text, 0);
	ck_assert_uint_gt(counts.last_drafted, 0);
	app_worker_event_fini(&ev);
	free(model);
	free(other);
}
END_TEST

/* The NOTICE events of a reply, one after another in a buffer. */
struct notices {
	char text[4096];
	int n_warn;
};

static void collect_notices(const struct app_wev *ev, void *user)
{
	struct notices *c = user;
	size_t at = strlen(c->text);

	if (ev->type != APP_WEV_NOTICE)
		return;
	c->n_warn += ev->warn;
	snprintf(c->text + at, sizeof c->text - at, "%s\n", ev->text);
}

void test_write_png(const char *path, int w, int h);

/* Images attached to messages reach a vision model: each adds its tokens
 * to the prompt (picture.png: 24, the chelsea photo at the fixture's 50176
 * pixels: 48); an image it cannot read (a missing file, a 10000 x 1 PNG
 * beyond the tower's 200:1) is left out with a notice naming it, and the
 * reply goes on: one bad image in the history must not fail every later
 * reply of its conversation. */
START_TEST(test_images)
{
	char *dir = test_vl_model();
	char *pic = test_data_path("models/qwen2_5_vl/picture.png");
	char *photo = test_data_path("models/qwen2_5_vl/skimage-chelsea.png");
	const char *one[1] = { pic }, *two[2] = { pic, photo }, *bad[1] = { "/nonexistent.png" };
	struct app_wmsg m[3];
	struct app_model_info info;
	struct app_wev plain, with1, with3;

	memset(m, 0, sizeof m);
	m[0].role = "user";
	m[0].content = "hi";
	reply(dir, NULL, m, 1, 6, NULL, NULL, &info, &plain);
	ck_assert_int_eq(info.has_vision, 1);
	ck_assert_int_eq(plain.finish, LLM_FINISH_MAX_TOKENS);
	m[0].images = one;
	m[0].n_images = 1;
	reply(dir, NULL, m, 1, 6, NULL, NULL, &info, &with1);
	ck_assert_msg(with1.finish == LLM_FINISH_MAX_TOKENS, "%s", with1.text);
	/* the placeholder (3 tokens) with 24 image tokens in it */
	ck_assert_uint_eq(with1.stats.n_prompt, plain.stats.n_prompt + 2 + 24);
	/* a conversation: two images in the first message, one later */
	m[1].role = "assistant";
	m[1].content = "ok";
	m[2].role = "user";
	m[2].content = "and?";
	m[0].images = two;
	m[0].n_images = 2;
	m[2].images = one;
	m[2].n_images = 1;
	reply(dir, NULL, m, 3, 6, NULL, NULL, &info, &with3);
	ck_assert_msg(with3.finish == LLM_FINISH_MAX_TOKENS, "%s", with3.text);
	ck_assert_uint_gt(with3.stats.n_prompt, 2 * 24 + 48);
	app_worker_event_fini(&with3);
	size_t n_prompt3 = with3.stats.n_prompt;
	m[2].images = bad;
	{
		struct notices nt;
		struct app_wev skipped;
		char wide[] = "/tmp/tern-wide-XXXXXX.png";
		const char *wide1[1] = { wide };
		int fd = mkstemps(wide, 4);

		memset(&nt, 0, sizeof nt);
		reply(dir, NULL, m, 3, 6, collect_notices, &nt, &info, &skipped);
		ck_assert_msg(skipped.finish == LLM_FINISH_MAX_TOKENS, "%s", skipped.text);
		ck_assert_msg(strstr(nt.text, "/nonexistent.png") != NULL, "%s", nt.text);
		ck_assert_int_eq(nt.n_warn, 1);
		/* the last message without its image: no placeholder (3
		 * tokens) with 24 image tokens */
		ck_assert_uint_eq(skipped.stats.n_prompt, n_prompt3 - 2 - 24);
		app_worker_event_fini(&skipped);
		ck_assert_int_ge(fd, 0);
		close(fd);
		test_write_png(wide, 10000, 1);
		m[0].images = wide1;
		m[0].n_images = 1;
		m[2].images = one;
		memset(&nt, 0, sizeof nt);
		reply(dir, NULL, m, 3, 6, collect_notices, &nt, &info, &skipped);
		ck_assert_msg(skipped.finish == LLM_FINISH_MAX_TOKENS, "%s", skipped.text);
		ck_assert_msg(strstr(nt.text, "10000 x 1") != NULL, "%s", nt.text);
		app_worker_event_fini(&skipped);
		unlink(wide);
	}
	app_worker_event_fini(&plain);
	app_worker_event_fini(&with1);
	test_vl_model_rm(dir);
	free(pic);
	free(photo);
}
END_TEST

/* A conversation longer than the context: its oldest tokens are cut with
 * a warning NOTICE, and a reply that then fills the context ends with
 * LLM_FINISH_CONTEXT (which the chat tells the user about); the TEXT
 * events carry the positions used so far, growing to the context. */
struct ctx_seen {
	size_t last_ctx;
	struct notices nt;
};

static void check_ctx(const struct app_wev *ev, void *user)
{
	struct ctx_seen *c = user;

	if (ev->type == APP_WEV_NOTICE) {
		collect_notices(ev, &c->nt);
		return;
	}
	ck_assert_uint_gt(ev->ctx_used, c->last_ctx);
	c->last_ctx = ev->ctx_used;
}

START_TEST(test_context_full)
{
	char *model = test_data_path("../../models/stories260k");
	char text[6001];
	struct app_wmsg m;
	struct app_model_info info;
	struct app_wev done;
	struct ctx_seen seen;
	size_t i;

	for (i = 0; i < sizeof text - 1; i++)
		text[i] = "Once upon a time there was a cat. "[i % 34];
	text[sizeof text - 1] = '\0';
	memset(&m, 0, sizeof m);
	m.role = "user";
	m.content = text;
	memset(&seen, 0, sizeof seen);
	reply(model, NULL, &m, 1, 0, check_ctx, &seen, &info, &done);
	ck_assert_int_eq(info.n_ctx, 256);
	ck_assert_int_eq(done.finish, LLM_FINISH_CONTEXT);
	ck_assert_uint_eq(done.ctx_used, 256);
	ck_assert_uint_gt(seen.last_ctx, 192);
	ck_assert_int_eq(seen.nt.n_warn, 1);
	ck_assert_msg(strstr(seen.nt.text, "prompt cut to fit") != NULL, "%s",
		      seen.nt.text);
	app_worker_event_fini(&done);
	free(model);
}
END_TEST

/* The preset's thinking switch reaches the chat template: Qwen3's
 * template (tests/data/templates/hf-qwen3.jinja), told enable_thinking
 * false, opens the reply with an empty think block "<think>\n\n</think>\n\n"
 * — 19 bytes, so 19 more prompt tokens with the byte tokenizer; on (the
 * default) the template's own prompt. */
START_TEST(test_thinking_switch)
{
	char *dir = test_chat_model("models/qwen3", "templates/hf-qwen3.jinja");
	static const struct app_wmsg m = { "user", "hi", NULL, 0 };
	struct app_model_info info;
	struct app_wev on, off;

	reply(dir, NULL, &m, 1, 2, NULL, NULL, &info, &on);
	ck_assert_int_eq(info.has_template, 1);
	reply_thinking = 0;
	reply(dir, NULL, &m, 1, 2, NULL, NULL, &info, &off);
	reply_thinking = 1;
	ck_assert_msg(on.finish == LLM_FINISH_MAX_TOKENS, "%s", on.text);
	ck_assert_msg(off.finish == LLM_FINISH_MAX_TOKENS, "%s", off.text);
	ck_assert_uint_eq(off.stats.n_prompt, on.stats.n_prompt + 19);
	app_worker_event_fini(&on);
	app_worker_event_fini(&off);
	test_vl_model_rm(dir);
}
END_TEST

Suite *worker_suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, test_f16_cache_loads);
	tcase_add_test(tc, test_quantized_cache_refused);
	tcase_add_test(tc, test_draft);
	tcase_add_test(tc, test_images);
	tcase_add_test(tc, test_context_full);
	tcase_add_test(tc, test_thinking_switch);
	suite_add_tcase(s, tc);
	return s;
}
