/* tests/app/test_run.c — suite `run`: the `tern run` subcommand end to end
 * on the bundled stories260k.  Greedy output must equal, byte for byte,
 * what karpathy's llama2.c run.c printed for the same model
 * (tests/data/stories260k/, see tests/data/README.md); --parallel must
 * print one labelled block per job; --chat on a model without a chat
 * template and impossible lengths must fail with a clear message.
 *
 * --image: the tiny Qwen2.5-VL fixture (tests/data/models/qwen2_5_vl) with
 * a byte-level tokenizer written here (bytes 0..255, its image and vision
 * markers at the fixture's ids 512, 514, 515) runs picture.png through
 * the image processor and tower into 24 image tokens, greedy output the
 * same on every run; a model without a vision tower, or a missing image,
 * fails with a message.  (The numerics of image jobs are checked against
 * transformers in the inference suite `vision`.)
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

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
	ck_assert_int_eq(run("-p hi -n 600", true, &out, &len), 1);
	ck_assert_msg(strstr(out, "exceed the context of 512"), "%s", out);
	free(out);
	ck_assert_int_eq(run("--temp x", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "--temp"), "%s", out);
	free(out);
	ck_assert_int_eq(run("-p a -f b", true, &out, &len), 2);
	free(out);
	ck_assert_int_eq(run("--kv-type q4 -p hi", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "unknown KV type 'q4'"), "%s", out);
	free(out);
	ck_assert_int_eq(run("-b tpu -p hi", true, &out, &len), 2);
	ck_assert_msg(strstr(out, "unknown backend 'tpu'"), "%s", out);
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

/* A byte-level BPE tokenizer.json: the 256 bytes as GPT-2's printable
 * characters at ids 0..255, no merges, the vision markers as added
 * special tokens. */
static void write_byte_tokenizer(const char *path)
{
	json_t *root = json_object(), *model = json_object(), *vocab = json_object();
	json_t *added = json_array(), *pre = json_object(), *dec = json_object();
	static const struct { const char *s; int id; } sp[] = {
		{ "<|image_pad|>", 512 }, { "<|video_pad|>", 513 },
		{ "<|vision_start|>", 514 }, { "<|vision_end|>", 515 },
	};
	int b, n = 0;
	size_t i;

	for (b = 0; b < 256; b++) {
		/* GPT-2 bytes_to_unicode */
		int cp = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
				 (b >= 0xAE && b <= 0xFF) ? b : 256 + n++;
		char u[4];

		if (cp < 0x80) {
			u[0] = (char)cp;
			u[1] = 0;
		} else {
			u[0] = (char)(0xC0 | (cp >> 6));
			u[1] = (char)(0x80 | (cp & 0x3F));
			u[2] = 0;
		}
		json_object_set_new(vocab, u, json_integer(b));
	}
	json_object_set_new(model, "type", json_string("BPE"));
	json_object_set_new(model, "vocab", vocab);
	json_object_set_new(model, "merges", json_array());
	for (i = 0; i < sizeof sp / sizeof sp[0]; i++) {
		json_t *t = json_object();

		json_object_set_new(t, "id", json_integer(sp[i].id));
		json_object_set_new(t, "content", json_string(sp[i].s));
		json_object_set_new(t, "single_word", json_false());
		json_object_set_new(t, "lstrip", json_false());
		json_object_set_new(t, "rstrip", json_false());
		json_object_set_new(t, "normalized", json_false());
		json_object_set_new(t, "special", json_true());
		json_array_append_new(added, t);
	}
	json_object_set_new(pre, "type", json_string("ByteLevel"));
	json_object_set_new(pre, "add_prefix_space", json_false());
	json_object_set_new(pre, "trim_offsets", json_true());
	json_object_set_new(pre, "use_regex", json_true());
	json_object_set_new(dec, "type", json_string("ByteLevel"));
	json_object_set_new(dec, "add_prefix_space", json_true());
	json_object_set_new(dec, "trim_offsets", json_true());
	json_object_set_new(dec, "use_regex", json_true());
	json_object_set_new(root, "version", json_string("1.0"));
	json_object_set_new(root, "added_tokens", added);
	json_object_set_new(root, "normalizer", json_null());
	json_object_set_new(root, "pre_tokenizer", pre);
	json_object_set_new(root, "post_processor", json_null());
	json_object_set_new(root, "decoder", dec);
	json_object_set_new(root, "model", model);
	ck_assert_int_eq(json_dump_file(root, path, 0), 0);
	json_decref(root);
}

START_TEST(test_image)
{
	static const char *const files[] = { "config.json", "generation_config.json",
		"model.safetensors", "preprocessor_config.json" };
	char dir[] = "/tmp/tern-vl-XXXXXX", path[512], cmd[2048];
	char *src = test_data_path("models/qwen2_5_vl");
	char *png = test_data_path("models/qwen2_5_vl/picture.png");
	char buf[8192], first[8192];
	size_t i, n;
	int k, st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		char target[512];

		snprintf(target, sizeof target, "%s/%s", src, files[i]);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		ck_assert_int_eq(symlink(target, path), 0);
	}
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	write_byte_tokenizer(path);
	for (k = 0; k < 2; k++) {
		FILE *p;

		snprintf(cmd, sizeof cmd,
			 "'%s' run -b cpu -m '%s' --image '%s' -p 'what is it?' -n 8 "
			 "--temp 0 --ignore-eos --stats 2>&1", TERN_BINARY, dir, png);
		p = popen(cmd, "r");
		ck_assert_ptr_nonnull(p);
		n = fread(buf, 1, sizeof buf - 1, p);
		buf[n] = 0;
		st = pclose(p);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", buf);
		ck_assert_msg(strstr(buf, "8 x 12 patches, 24 tokens") != NULL, "%s", buf);
		ck_assert_msg(strstr(buf, "8 generated") != NULL, "%s", buf);
		if (k == 0)
			memcpy(first, buf, n + 1);
	}
	/* the same text both times (the timing figures aside) */
	ck_assert(strncmp(first, buf, (size_t)(strstr(buf, "[1]") - buf)) == 0);
	/* refused: no vision tower, no such image */
	snprintf(cmd, sizeof cmd, "'%s' run -b cpu --image '%s' -p x -n 2 2>&1", TERN_BINARY,
		 png);
	{
		FILE *p = popen(cmd, "r");

		n = fread(buf, 1, sizeof buf - 1, p);
		buf[n] = 0;
		st = pclose(p);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		ck_assert_msg(strstr(buf, "no vision tower") != NULL, "%s", buf);
	}
	snprintf(cmd, sizeof cmd, "'%s' run -b cpu -m '%s' --image /nonexistent.png -p x 2>&1",
		 TERN_BINARY, dir);
	{
		FILE *p = popen(cmd, "r");

		n = fread(buf, 1, sizeof buf - 1, p);
		buf[n] = 0;
		st = pclose(p);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		ck_assert_msg(strstr(buf, "/nonexistent.png") != NULL, "%s", buf);
	}
	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/tokenizer.json", dir);
	unlink(path);
	rmdir(dir);
	free(src);
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
	tcase_add_test(tc, test_parallel);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_backend_kv_options);
	tcase_add_test(tc, test_image);
	suite_add_tcase(s, tc);
	return s;
}
