/* tests/app/test_cmds.c — the script-facing subcommands run as programs, as
 * a user's script would run them, against references nobody here wrote:
 *   tern logits   — transformers' logits (tiny llama3 fixture), prefill and
 *                   --incremental, each within 1e-3 x max|ref| per row;
 *   tern tokenize — run.c's ids for the bundled model, exact decode, stdin
 *                   read as it is, bytes that are not UTF-8 as U+FFFD;
 *   tern template — transformers' renders (templates/cases.json), exit 3
 *                   with the message when the template raises;
 *   tern ppl      — transformers' perplexity of the shared trained-target
 *                   model on War and Peace's tail (its README's protocol:
 *                   windows of BOS + 1023 tokens), skipped without
 *                   ../shared; bad input refused with a message;
 *   tern bench    — bad options refused with the usage status and a
 *                   message naming the option. */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/file.h"
#include "common/strbuf.h"
#include "stfile.h"
#include "testutil.h"

/* Run a shell command line; capture stdout (and stderr when err_too). */
static int run(const char *cmd, struct strbuf *out)
{
	char buf[4096];
	FILE *p = popen(cmd, "r");
	size_t n;
	int st;

	ck_assert_ptr_nonnull(p);
	strbuf_reset(out);
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		ck_assert_int_eq(strbuf_append(out, buf, n), 0);
	st = pclose(p);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Run "tern SUB ARGS 2>&1" (cmd: scratch) and check its exit status and
 * that msg is in what it printed. */
static void expect_tern(struct strbuf *cmd, struct strbuf *res, const char *sub,
			const char *args, int status, const char *msg)
{
	int st;

	strbuf_reset(cmd);
	strbuf_printf(cmd, "'%s' %s %s 2>&1", TERN_BINARY, sub, args);
	st = run(strbuf_cstr(cmd), res);
	ck_assert_msg(st == status, "'%s': status %d, want %d: %s", args, st, status,
		      strbuf_cstr(res));
	ck_assert_msg(strstr(strbuf_cstr(res), msg) != NULL, "'%s': '%s' not in: %s", args,
		      msg, strbuf_cstr(res));
}

static void check_logits(int incremental)
{
	char *dir = test_data_path("models/llama3");
	char out[] = "/tmp/tern-logits-XXXXXX";
	struct strbuf ids, cmd, res;
	struct test_st ref;
	const int32_t *in;
	const float *want;
	char *got;
	size_t glen, n_ids, n_log, i, vocab, r;
	int fd = mkstemp(out);

	ck_assert_int_ge(fd, 0);
	close(fd);
	test_st_open(&ref, "models/llama3/reference.safetensors");
	in = test_st_get(&ref, "input_ids.1", "I32", 1, NULL, &n_ids);
	n_ids /= sizeof *in;
	want = test_st_get(&ref, "logits.1", "F32", 2, NULL, &n_log);
	n_log /= sizeof *want;
	vocab = n_log / n_ids;
	strbuf_init(&ids, 0);
	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	for (i = 0; i < n_ids; i++)
		strbuf_printf(&ids, "%s%d", i ? " " : "", (int)in[i]);
	strbuf_printf(&cmd, "'%s' logits -b cpu -m '%s' --ids '%s' -o '%s' %s 2>&1",
		      TERN_BINARY, dir, strbuf_cstr(&ids), out,
		      incremental ? "--incremental" : "");
	ck_assert_msg(run(strbuf_cstr(&cmd), &res) == 0, "%s", strbuf_cstr(&res));
	got = test_read_file(out, &glen);
	ck_assert_uint_eq(glen, n_log * sizeof(float));
	for (r = 0; r < n_ids; r++) {
		float mx = 0, md = 0;

		for (i = 0; i < vocab; i++) {
			float g, w = want[r * vocab + i];

			memcpy(&g, got + (r * vocab + i) * sizeof g, sizeof g);
			mx = fmaxf(mx, fabsf(w));
			md = fmaxf(md, fabsf(g - w));
		}
		ck_assert_msg(md <= 1e-3f * mx, "row %zu: max diff %g > 1e-3 x %g", r,
			      (double)md, (double)mx);
	}
	unlink(out);
	free(got);
	test_st_close(&ref);
	free(dir);
	strbuf_fini(&ids);
	strbuf_fini(&cmd);
	strbuf_fini(&res);
}

START_TEST(test_logits_prefill) { check_logits(0); }
END_TEST
START_TEST(test_logits_incremental) { check_logits(1); }
END_TEST

START_TEST(test_tokenize)
{
	struct strbuf cmd, res;
	char *model = strdup(TERN_SRCDIR "/models/stories260k");

	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	/* run.c encodes BOS + "Once upon a time" as 1 403 407 261 378. */
	strbuf_printf(&cmd, "'%s' tokenize -m '%s' --special --ids-only 'Once upon a time'",
		      TERN_BINARY, model);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_str_eq(strbuf_cstr(&res), "1 403 407 261 378\n");
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' tokenize -m '%s' --decode '1 403 407 261 378' --skip-special",
		      TERN_BINARY, model);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_str_eq(strbuf_cstr(&res), "Once upon a time"); /* no newline added */
	/* '-' reads stdin verbatim: the trailing newline is a token too. */
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "printf 'Once upon a time\\n' | '%s' tokenize -m '%s' --ids-only -",
		      TERN_BINARY, model);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_msg(strncmp(strbuf_cstr(&res), "403 407 261 378 ", 16) == 0, "%s",
		      strbuf_cstr(&res));
	/* bytes that are not UTF-8 are tokenized as U+FFFD (EF BF BD), as HF
	 * tokenizers, which only ever see a str, does */
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "printf 'a\\377b' | '%s' tokenize -m '%s' --ids-only -",
		      TERN_BINARY, model);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	{
		char *bad = strdup(strbuf_cstr(&res));

		strbuf_reset(&cmd);
		strbuf_printf(&cmd, "printf 'a\\357\\277\\275b' | '%s' tokenize -m '%s' --ids-only -",
			      TERN_BINARY, model);
		ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
		ck_assert_str_eq(bad, strbuf_cstr(&res));
		free(bad);
	}
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' tokenize -m /nonexistent/dir x 2>&1", TERN_BINARY);
	ck_assert_int_ne(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_ptr_nonnull(strstr(strbuf_cstr(&res), "/nonexistent/dir"));
	strbuf_fini(&cmd);
	strbuf_fini(&res);
	free(model);
}
END_TEST

/* Write the template context of a cases.json case to a file. */
static char *write_context(json_t *c)
{
	json_t *ctx = json_object(), *v;
	const char *k;
	char path[] = "/tmp/tern-ctx-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	json_object_set(ctx, "messages", json_object_get(c, "messages"));
	json_object_set(ctx, "tools", json_object_get(c, "tools"));
	json_object_set_new(ctx, "documents", json_null());
	json_object_set(ctx, "add_generation_prompt", json_object_get(c, "add_generation_prompt"));
	json_object_foreach(json_object_get(c, "special_tokens"), k, v)
		json_object_set(ctx, k, v);
	json_object_foreach(json_object_get(c, "extra_kwargs"), k, v)
		json_object_set(ctx, k, v);
	ck_assert_int_eq(json_dump_file(ctx, path, JSON_PRESERVE_ORDER), 0);
	json_decref(ctx);
	return strdup(path);
}

START_TEST(test_template)
{
	char *cases = test_data_path("templates/cases.json");
	json_error_t err;
	json_t *root = json_load_file(cases, 0, &err), *arr;
	struct strbuf cmd, res;
	int done_ok = 0, done_raise = 0;
	size_t i;

	ck_assert_ptr_nonnull(root);
	arr = json_object_get(root, "cases");
	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	for (i = 0; i < json_array_size(arr) && !(done_ok && done_raise); i++) {
		json_t *c = json_array_get(arr, i);
		const char *name = json_string_value(json_object_get(c, "template"));
		const char *want = json_string_value(json_object_get(c, "output"));
		const char *error = json_string_value(json_object_get(c, "error"));
		char tmpl[512], *ctx;
		int rc;

		if ((want && done_ok) || (!want && (done_raise || !error ||
						    strncmp(error, "TemplateError: ", 15))))
			continue;
		snprintf(tmpl, sizeof tmpl, "%s/templates/%s.jinja",
			 getenv("TEST_DATA_DIR") ? getenv("TEST_DATA_DIR") : TEST_DATA_DIR_DEFAULT, name);
		ctx = write_context(c);
		strbuf_reset(&cmd);
		strbuf_printf(&cmd, "'%s' template --template '%s' --context '%s' %s",
			      TERN_BINARY, tmpl, ctx, want ? "" : "2>&1 >/dev/null");
		rc = run(strbuf_cstr(&cmd), &res);
		if (want) {
			ck_assert_int_eq(rc, 0);
			ck_assert_str_eq(strbuf_cstr(&res), want);
			done_ok = 1;
		} else {
			ck_assert_int_eq(rc, 3);
			ck_assert_msg(strstr(strbuf_cstr(&res), error + 15) != NULL,
				      "stderr '%s' lacks '%s'", strbuf_cstr(&res), error + 15);
			done_raise = 1;
		}
		unlink(ctx);
		free(ctx);
	}
	ck_assert(done_ok && done_raise);
	json_decref(root);
	strbuf_fini(&cmd);
	strbuf_fini(&res);
	free(cases);
}
END_TEST

/* tern run --chat: the model's chat template is rendered (here a minimal
 * one written into a copy of the bundled model that writes BOS and the
 * message text) and encoded without adding BOS again, so the greedy reply
 * equals the plain run's continuation of the same text. */
START_TEST(test_run_chat)
{
	char dir[] = "/tmp/tern-chat-XXXXXX", path[256];
	static const char *const files[] = { "config.json", "generation_config.json",
		"model.safetensors", "tokenizer.json", "tokenizer_config.json" };
	struct strbuf cmd, chat, plain;
	struct diag d;
	size_t i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		char target[512];

		snprintf(target, sizeof target, "%s/models/stories260k/%s", TERN_SRCDIR, files[i]);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		ck_assert_int_eq(symlink(target, path), 0);
	}
	snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
	{
		static const char tmpl[] =
			"{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}";

		ck_assert_int_eq(file_write_atomic(path, tmpl, sizeof tmpl - 1, &d), 0);
	}
	strbuf_init(&cmd, 0);
	strbuf_init(&chat, 0);
	strbuf_init(&plain, 0);
	strbuf_printf(&cmd, "'%s' run -m '%s' --chat -p 'Once upon a time' --temp 0 -n 30",
		      TERN_BINARY, dir);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &chat), 0);
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' run -m '%s/models/stories260k' -p 'Once upon a time' --temp 0 -n 30",
		      TERN_BINARY, TERN_SRCDIR);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &plain), 0);
	ck_assert(strncmp(strbuf_cstr(&plain), "Once upon a time", 16) == 0);
	ck_assert_uint_gt(chat.len, 20);
	ck_assert_str_eq(strbuf_cstr(&chat), strbuf_cstr(&plain) + 16);
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
	unlink(path);
	rmdir(dir);
	strbuf_fini(&cmd);
	strbuf_fini(&chat);
	strbuf_fini(&plain);
}
END_TEST

/* The value of "key value" line KEY in OUT (-1 when absent). */
static double kv_get(const char *out, const char *key)
{
	const size_t n = strlen(key);
	const char *p = out;

	while (p && *p) {
		if (!strncmp(p, key, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1.0;
}

/* tern convert through the command line: usage errors with status 2,
 * an interrupted job (--max-layers) that refuses a plain rerun, resumes,
 * reports its progress a line per linear on a non-terminal stderr, and
 * leaves a model tern ppl runs. */
START_TEST(test_convert_cli)
{
	static const struct {
		const char *args; /* after "tern convert" */
		const char *msg;
	} usage[] = {
		{ "", "-i MODEL_DIR and -o OUT_DIR are required" },
		{ "-i a -o b -b 9", "--bits wants a number from 1 to 8" },
		{ "-i a -o b --head-bits 12", "--head-bits wants 1 to 8 or 16" },
		{ "-i a -o b --codebook e8p", "--codebook is mul1, mcg or 3inst" },
		{ "-i a -o b --cal-rows 0", "--cal-rows wants a positive whole number" },
		{ "-i a -o b --seed x", "--seed wants a whole number" },
	};
	char dir[] = "/tmp/tern-convert-cli-XXXXXX";
	struct strbuf cmd, res;
	size_t i;
	char *src = strdup(TERN_SRCDIR "/models/stories260k");
	const char *common = "-b 3 --head-bits 16 --cal-rows 2 --cal-cols 32 -t 2";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	for (i = 0; i < sizeof usage / sizeof usage[0]; i++)
		expect_tern(&cmd, &res, "convert", usage[i].args, 2, usage[i].msg);
	/* interrupted after 2 of 5 layers */
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' convert -i '%s' -o '%s/out' %s --max-layers 2 2>&1",
		      TERN_BINARY, src, dir, common);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 1);
	ck_assert_msg(strstr(strbuf_cstr(&res), "stopped after 2 layers") != NULL, "%s",
		      strbuf_cstr(&res));
	/* a progress line per linear: 2 layers of 7 */
	ck_assert_msg(strstr(strbuf_cstr(&res), "14/35  layers.1.mlp.down_proj (3 bits") !=
			      NULL, "%s", strbuf_cstr(&res));
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' convert -i '%s' -o '%s/out' %s 2>&1", TERN_BINARY,
		      src, dir, common);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 1);
	ck_assert_msg(strstr(strbuf_cstr(&res), "--resume") != NULL, "%s",
		      strbuf_cstr(&res));
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' convert -i '%s' -o '%s/out' %s -q --resume", TERN_BINARY,
		      src, dir, common);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_ptr_nonnull(strstr(strbuf_cstr(&res), "converted"));
	strbuf_reset(&cmd);
	strbuf_printf(&cmd,
		      "printf 'Once upon a time, there was a little girl named Lily.' | "
		      "'%s' ppl -b cpu -m '%s/out' -f - -c 8", TERN_BINARY, dir);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert(isfinite(kv_get(strbuf_cstr(&res), "ppl")));
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	strbuf_fini(&cmd);
	strbuf_fini(&res);
	free(src);
}
END_TEST

START_TEST(test_ppl_reference)
{
	char *dir = test_shared_path("models/trained-target");
	char *text = test_shared_path("text/war-and-peace-tail.txt");
	struct strbuf cmd, res;
	json_t *ev, *h;
	json_error_t je;
	char *evp;
	double want, got;

	if (!dir || !text) {
		free(dir);
		free(text);
		return; /* skipped: message printed by test_shared_path */
	}
	evp = test_shared_path("models/trained-target/eval.json");
	ck_assert_ptr_nonnull(evp);
	ev = json_load_file(evp, 0, &je);
	ck_assert_msg(ev != NULL, "%s: %s", evp, je.text);
	h = json_object_get(json_object_get(ev, "heldout"), "war-and-peace-tail");
	ck_assert_ptr_nonnull(h);
	want = json_number_value(json_object_get(h, "mean_nll"));
	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	strbuf_printf(&cmd, "'%s' ppl -b cpu -q -m '%s' -f '%s' 2>&1", TERN_BINARY, dir,
		      text);
	ck_assert_msg(run(strbuf_cstr(&cmd), &res) == 0, "%s", strbuf_cstr(&res));
	/* the same tokens and windows as the reference, every one scored */
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "tokens"),
			 (int)json_integer_value(json_object_get(h, "tokens")));
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "scored"),
			 (int)json_integer_value(json_object_get(h, "tokens")));
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "windows"),
			 (int)json_integer_value(json_object_get(h, "windows")));
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "ctx"), 1024);
	/* float32 logits on both sides: the mean over 40k tokens agrees to
	 * about 1e-6; the bound leaves room for summation order */
	got = kv_get(strbuf_cstr(&res), "mean_nll");
	ck_assert_msg(fabs(got - want) <= 2e-5, "mean NLL %.6f, transformers %.6f", got,
		      want);
	got = kv_get(strbuf_cstr(&res), "ppl");
	want = json_number_value(json_object_get(h, "ppl"));
	ck_assert_msg(fabs(got - want) <= 2e-5 * want + 1e-4, "ppl %.4f, transformers %.4f",
		      got, want);
	json_decref(ev);
	strbuf_fini(&cmd);
	strbuf_fini(&res);
	free(evp);
	free(dir);
	free(text);
}
END_TEST

START_TEST(test_ppl_errors)
{
	static const struct {
		const char *args; /* after "tern ppl -b cpu -m MODEL" */
		int status;
		const char *msg;
	} cases[] = {
		{ "", 2, "-f FILE is required" },
		{ "-f /nonexistent/text.txt", 1, "/nonexistent/text.txt" },
		{ "-f /dev/null", 1, "no token to score" },
		{ "-f /dev/null -c 1", 2, "--ctx wants a whole number of at least 2" },
		{ "-f /dev/null -w 0", 2, "--windows wants a whole number of at least 1" },
		{ "-f /dev/null -c 9999999", 2, "more than the model's context" },
		{ "-m '" TERN_SRCDIR "/models/stories260k/config.json' -f /dev/null", 2,
		  "-m expects a model directory, not the file " },
	};
	struct strbuf cmd, res;
	size_t i;

	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_tern(&cmd, &res, "ppl -b cpu -m '" TERN_SRCDIR "/models/stories260k'",
			    cases[i].args, cases[i].status, cases[i].msg);
	/* standard input, a small window and a window count: 2 windows of
	 * BOS + 7 tokens, every token scored, a finite perplexity */
	strbuf_reset(&cmd);
	strbuf_printf(&cmd,
		      "printf 'Once upon a time, there was a little girl named Lily.' | "
		      "'%s' ppl -b cpu -m '%s/models/stories260k' -f - -c 8 -w 2",
		      TERN_BINARY, TERN_SRCDIR);
	ck_assert_int_eq(run(strbuf_cstr(&cmd), &res), 0);
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "windows"), 2);
	ck_assert_int_eq((int)kv_get(strbuf_cstr(&res), "scored"), 14);
	ck_assert(kv_get(strbuf_cstr(&res), "ppl") > 1.0);
	ck_assert(isfinite(kv_get(strbuf_cstr(&res), "mean_nll")));
	strbuf_fini(&cmd);
	strbuf_fini(&res);
}
END_TEST

/* tern bench's command line: values it cannot measure are refused with
 * the usage status and a message naming the option. */
START_TEST(test_bench_errors)
{
	static const struct {
		const char *args; /* after "tern bench -b cpu -m MODEL" */
		const char *msg;
	} cases[] = {
		{ "--ctx 513", "--ctx 513 is more than the model's context (512)" },
		{ "-p 0 -g 0", "--prompt and --gen are both 0: nothing to measure" },
		{ "-B 0", "--batch: '0' is not an integer in [1, " },
		{ "-u 0", "--ubatch: '0' is not an integer in [1, " },
		{ "--reps x", "--reps: 'x' is not an integer in [1, " },
		{ "-p 8 extra", "unexpected argument 'extra'" },
		{ "-m '" TERN_SRCDIR "/models/stories260k/config.json'",
		  "-m expects a model directory, not the file " },
	};
	struct strbuf cmd, res;
	size_t i;

	strbuf_init(&cmd, 0);
	strbuf_init(&res, 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_tern(&cmd, &res, "bench -b cpu -m '" TERN_SRCDIR "/models/stories260k'",
			    cases[i].args, 2, cases[i].msg);
	/* the model's whole context is fine */
	strbuf_reset(&cmd);
	strbuf_printf(&cmd, "'%s' bench -b cpu -m '%s/models/stories260k' -p 8 -g 4 -r 1 "
		      "--ctx 512 --no-bandwidth 2>&1", TERN_BINARY, TERN_SRCDIR);
	ck_assert_msg(run(strbuf_cstr(&cmd), &res) == 0, "%s", strbuf_cstr(&res));
	ck_assert_msg(strstr(strbuf_cstr(&res), "at ctx 512") != NULL, "%s",
		      strbuf_cstr(&res));
	strbuf_fini(&cmd);
	strbuf_fini(&res);
}
END_TEST

Suite *cmds_suite(void)
{
	Suite *s = suite_create("cmds");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_logits_prefill);
	tcase_add_test(tc, test_logits_incremental);
	tcase_add_test(tc, test_tokenize);
	tcase_add_test(tc, test_template);
	tcase_add_test(tc, test_run_chat);
	tcase_add_test(tc, test_ppl_errors);
	tcase_add_test(tc, test_bench_errors);
	tcase_add_test(tc, test_convert_cli);
	suite_add_tcase(s, tc);
	tc = tcase_create("ppl");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_ppl_reference);
	suite_add_tcase(s, tc);
	return s;
}
