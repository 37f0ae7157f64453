/* tests/app/test_run.c — suite `run`: the `tern run` subcommand end to end
 * on the bundled stories260k.  Greedy output must equal, byte for byte,
 * what karpathy's llama2.c run.c printed for the same model
 * (tests/data/stories260k/, see tests/data/README.md), the prompt given
 * by -p, -f FILE or -f - (standard input); --parallel must
 * print one labelled block per job; -n past the end of the context stops
 * there with a note; --chat on a model without a chat template and a
 * prompt that fills the context must fail with a clear message.
 *
 * --image: the tiny Qwen2.5-VL fixture with a byte-level tokenizer
 * (tests/app/vlmodel.c) runs picture.png through
 * the image processor and tower into 24 image tokens, greedy output the
 * same on every run; a model without a vision tower, or a missing image,
 * fails with a message.  (The numerics of image jobs are checked against
 * transformers in the inference suite `vision`.)
 */
#include "config.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "vlmodel.h"

/* Run `tern run -m stories260k ARGS`, capturing stdout (and stderr too
 * when want_err) into a fresh buffer; returns the exit status. */
static int run(const char *args, bool want_err, char **out, size_t *len)
{
	char *model = test_data_path("../../models/stories260k");
	char cmd[2048];
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap);
	FILE *p;
	int st;

	ck_assert_ptr_nonnull(buf);
	snprintf(cmd, sizeof cmd, "'%s' run -m '%s' %s %s", TERN_BINARY, model, args,
		 want_err ? "2>&1" : "2>/dev/null");
	free(model);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while ((r = fread(buf + n, 1, cap - 1 - n, p)) > 0)
		n += r;
	buf[n] = '\0';
	st = pclose(p);
	ck_assert(WIFEXITED(st));
	*out = buf;
	*len = n;
	return WEXITSTATUS(st);
}

static void expect_reference(const char *args, const char *ref_name)
{
	char rel[128], *path, *ref, *out;
	size_t ref_len, len;

	snprintf(rel, sizeof rel, "stories260k/%s", ref_name);
	path = test_data_path(rel);
	ref = test_read_file(path, &ref_len);
	ck_assert_int_eq(run(args, false, &out, &len), 0);
	ck_assert_msg(len == ref_len && memcmp(out, ref, len) == 0,
		      "tern run %s: output differs from %s\n--- got ---\n%s\n--- expected ---\n%s",
		      args, ref_name, out, ref);
	free(out);
	free(ref);
	free(path);
}

START_TEST(test_greedy_prompt)
{
	/* run.c -n 256 -i "Once upon a time": 5 prompt positions (BOS
	 * included) + 252 generated tokens = 256 steps */
	expect_reference("-p 'Once upon a time' -n 252 --temp 0",
			 "out_greedy_prompt_n256.txt");
}
END_TEST

START_TEST(test_greedy_bos)
{
	/* run.c -n 200 without a prompt: BOS, then one token per step */
	expect_reference("-n 200 --temp 0", "out_greedy_n200.txt");
}
END_TEST

/* The same reference text with speculative decoding at the adaptive
 * count (n-gram, and the model drafting for itself) and with the loop
 * stop on: proposals change the passes, not the tokens, and run.c's
 * story is not a loop. */
START_TEST(test_greedy_options)
{
	char *model = test_data_path("../../models/stories260k"), args[1024];

	expect_reference("-p 'Once upon a time' -n 252 --temp 0 --ngram --draft-n auto "
			 "--stop-on-loop 64", "out_greedy_prompt_n256.txt");
	expect_reference("-p 'Once upon a time' -n 252 --temp 0 --stop-on-loop 0",
			 "out_greedy_prompt_n256.txt"); /* 0: off */
	snprintf(args, sizeof args,
		 "-p 'Once upon a time' -n 252 --temp 0 --draft '%s' --draft-n auto", model);
	expect_reference(args, "out_greedy_prompt_n256.txt");
	free(model);
}
END_TEST

/* The prompt read from a file and, with -f -, from standard input: the
 * same tokens, so run.c's greedy text. */
START_TEST(test_prompt_file)
{
	char path[] = "/tmp/tern-prompt-XXXXXX", args[256];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "Once upon a time", 16), 16);
	close(fd);
	snprintf(args, sizeof args, "-f '%s' -n 252 --temp 0", path);
	expect_reference(args, "out_greedy_prompt_n256.txt");
	snprintf(args, sizeof args, "-f - -n 252 --temp 0 < '%s'", path);
	expect_reference(args, "out_greedy_prompt_n256.txt");
	unlink(path);
}
END_TEST

START_TEST(test_parallel)
{
	char *out, *one;
	size_t len, one_len;
	const char *b1, *b2, *b3;

	ck_assert_int_eq(run("-p 'Once upon a time' -n 40 --temp 0 --parallel 3", false,
			     &out, &len), 0);
	b1 = strstr(out, "--- [1] ---\n");
	b2 = strstr(out, "--- [2] ---\n");
	b3 = strstr(out, "--- [3] ---\n");
	ck_assert(b1 == out && b2 && b3 && b2 < b3);
	/* greedy: every block is the single run's text */
	ck_assert_int_eq(run("-p 'Once upon a time' -n 40 --temp 0", false, &one,
			     &one_len), 0);
	ck_assert_uint_eq((size_t)(b2 - b1), strlen("--- [1] ---\n") + one_len);
	ck_assert(memcmp(b1 + strlen("--- [1] ---\n"), one, one_len) == 0);
	ck_assert(memcmp(b3 + strlen("--- [3] ---\n"), one, one_len) == 0);
	free(out);
	free(one);
}
END_TEST

START_TEST(test_errors)
{
	char *out;
	size_t len;

	ck_assert_int_eq(run("--chat -p hi", true, &out, &len), 1);
	ck_assert_msg(strstr(out, "no usable chat template"), "%s", out);
	free(out);
	/* a prompt that fills the context alone */
	ck_assert_int_eq(run("-p 'Once upon a time' --ctx 5", true, &out, &len), 1);
	ck_assert_msg(strstr(out, "prompt of 5 tokens leaves no room in the context of 5"),
		      "%s", out);
	free(out);
	/* the model's context is the limit, as for ppl and bench */
	ck_assert_int_eq(run("-p hi --ctx 513", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "--ctx 513 is more than the model's context (512)"), "%s",
		      out);
	free(out);
	ck_assert_int_eq(run("--temp x", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "--temp"), "%s", out);
	free(out);
	/* sampler values outside the sampler panel's ranges */
	{
		static const char *const bad[][2] = {
			{ "--top-p 5", "--top-p: '5' is not a number in [0, 1]" },
			{ "--min-p 2", "--min-p: '2' is not a number in [0, 1]" },
			{ "--top-k -3", "--top-k: '-3' is not an integer in [0, 1000000]" },
			{ "--mirostat 1", "--mirostat: 1 (mirostat v1) is not supported" },
			{ "--logit-bias 99999=1",
			  "--logit-bias: token 99999 is outside the model's vocabulary of 512" },
			{ "--logit-bias 5=inf", "BIAS is a number or -inf" },
		};
		char args[128];
		size_t i;

		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			snprintf(args, sizeof args, "-p hi %s", bad[i][0]);
			ck_assert_int_eq(run(args, true, &out, &len), 2);
			ck_assert_msg(strstr(out, bad[i][1]), "%s: %s", args, out);
			free(out);
		}
	}
	ck_assert_int_eq(run("-p hi --stop-on-loop 1", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "'1' is not 0 (off) or an integer in [2, 1024]"), "%s", out);
	free(out);
	/* proposals a step without anything proposing them */
	ck_assert_int_eq(run("-p hi --draft-n 4", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "--draft-n needs --draft DIR or --ngram"), "%s", out);
	free(out);
	ck_assert_int_eq(run("-p a -f b", true, &out, &len), 2);
	free(out);
	ck_assert_int_eq(run("--kv-type q9 -p hi", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "unknown KV type 'q9'"), "%s", out);
	free(out);
	ck_assert_int_eq(run("--kv-type 16,4 -p hi", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "unknown KV type '16,4'"), "%s", out);
	free(out);
	/* stories260k's heads are 8 wide: no groups of 32 to quantize */
	ck_assert_int_eq(run("--kv-type q4 -p hi", true, &out, &len), 1);
	ck_assert_msg(strstr(out, "not a multiple of 32"), "%s", out);
	free(out);
	/* a model's file instead of its directory (the later -m wins) */
	{
		char *cfg = test_data_path("../../models/stories260k/config.json"), args[1024];

		snprintf(args, sizeof args, "-m '%s' -p hi", cfg);
		ck_assert_int_eq(run(args, true, &out, &len), 2);
		ck_assert_msg(strstr(out, "tern: run: -m expects a model directory, not the file "),
			      "%s", out);
		free(out);
		snprintf(args, sizeof args, "--draft '%s' -p hi", cfg);
		ck_assert_int_eq(run(args, true, &out, &len), 2);
		ck_assert_msg(strstr(out, "--draft expects a model directory"), "%s", out);
		free(out);
		free(cfg);
	}
	ck_assert_int_eq(run("-b tpu -p hi", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "unknown backend 'tpu'"), "%s", out);
	free(out);
}
END_TEST

/* -n is "at most": more than the context holds stops at its end, as
 * without -n (BOS "hi" is 3 tokens, 509 more fill the 512 positions),
 * and says so on stderr; the output is the one without -n. */
START_TEST(test_max_tokens_past_context)
{
	char *out, *all;
	size_t len, all_len;

	ck_assert_int_eq(run("-p hi -n 100000 --temp 0 --ignore-eos --stats", true, &out,
			     &len), 0);
	ck_assert_msg(strstr(out, "stopped after 509 of the 100000 tokens of -n: the "
			      "context of 512 positions is full"), "%s", out);
	ck_assert_msg(strstr(out, "[1] context: prompt 3 tokens"), "%s", out);
	free(out);
	ck_assert_int_eq(run("-p hi -n 100000 --temp 0 --ignore-eos", false, &out, &len), 0);
	ck_assert_int_eq(run("-p hi --temp 0 --ignore-eos", false, &all, &all_len), 0);
	ck_assert_uint_eq(len, all_len);
	ck_assert(memcmp(out, all, len) == 0);
	free(out);
	free(all);
	/* exactly the room left: no note */
	ck_assert_int_eq(run("-p hi -n 509 --temp 0 --ignore-eos", true, &out, &len), 0);
	ck_assert_msg(!strstr(out, "stopped after"), "%s", out);
	free(out);
}
END_TEST

/* The CPU backend with an explicit f32 cache is the reference path: the
 * greedy output is run.c's, byte for byte, as without the options. */
START_TEST(test_backend_kv_options)
{
	expect_reference("-b cpu --kv-type f32 -p 'Once upon a time' -n 252 --temp 0",
			 "out_greedy_prompt_n256.txt");
}
END_TEST

START_TEST(test_image)
{
	char *dir = test_vl_model(), args[1024];
	char *png = test_data_path("models/qwen2_5_vl/picture.png");
	char *out, *first = NULL;
	size_t len;
	int k;

	/* run() names stories260k first; the later -m picks the VL model */
	for (k = 0; k < 2; k++) {
		snprintf(args, sizeof args,
			 "-b cpu -m '%s' --image '%s' -p 'what is it?' -n 8 --temp 0 "
			 "--ignore-eos --stats", dir, png);
		ck_assert_msg(run(args, true, &out, &len) == 0, "%s", out);
		ck_assert_msg(strstr(out, "8 x 12 patches, 24 tokens") != NULL, "%s", out);
		ck_assert_msg(strstr(out, "8 generated") != NULL, "%s", out);
		if (k == 0)
			first = out;
	}
	/* the same text both times (the timing figures aside) */
	ck_assert(strncmp(first, out, (size_t)(strstr(out, "[1]") - out)) == 0);
	free(first);
	free(out);
	/* refused: no vision tower (stories260k), no such image */
	snprintf(args, sizeof args, "-b cpu --image '%s' -p x -n 2", png);
	ck_assert_int_ne(run(args, true, &out, &len), 0);
	ck_assert_msg(strstr(out, "no vision tower") != NULL, "%s", out);
	free(out);
	snprintf(args, sizeof args, "-b cpu -m '%s' --image /nonexistent.png -p x", dir);
	ck_assert_int_ne(run(args, true, &out, &len), 0);
	ck_assert_msg(strstr(out, "/nonexistent.png") != NULL, "%s", out);
	free(out);
	test_vl_model_rm(dir);
	free(png);
}
END_TEST

Suite *run_suite(void)
{
	Suite *s = suite_create("run");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_greedy_prompt);
	tcase_add_test(tc, test_greedy_bos);
	tcase_add_test(tc, test_greedy_options);
	tcase_add_test(tc, test_prompt_file);
	tcase_add_test(tc, test_parallel);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_max_tokens_past_context);
	tcase_add_test(tc, test_backend_kv_options);
	tcase_add_test(tc, test_image);
	suite_add_tcase(s, tc);
	return s;
}
