/* tests/inference/test_tokenizer.c — suite `tokenizer`: conformance of the
 * HF tokenizer (inference/tokenizer*.c) against HF `tokenizers` 0.23.2.
 *
 * For each of 7 real tokenizers, tests/data/tokenizers/NAME/cases.json holds
 * strings with the ids HF produced with and without special tokens and the
 * texts HF decoded (see tests/data/README.md).  Every case must match
 * exactly: encode (both ways), decode, decode with special tokens, decode
 * skipping them, and the streaming decoder's concatenated output.  Large
 * tokenizer.json files are stored gzipped and unpacked by make into
 * $(builddir)/tests/check_tokdata/NAME/.  stories260k (the bundled model) is
 * checked against karpathy's run.c encoding of "Once upon a time".
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "inference/llm.h"
#include "testutil.h"

#ifndef TEST_BUILD_DIR
#define TEST_BUILD_DIR "."
#endif

static char *tok_dir(const char *name)
{
	char rel[256], *p;
	struct stat st;

	snprintf(rel, sizeof rel, "%s/tests/check_tokdata/%s/tokenizer.json", TEST_BUILD_DIR, name);
	if (stat(rel, &st) == 0) {
		snprintf(rel, sizeof rel, "%s/tests/check_tokdata/%s", TEST_BUILD_DIR, name);
		return strdup(rel);
	}
	snprintf(rel, sizeof rel, "tokenizers/%s", name);
	p = test_data_path(rel);
	return p;
}

static struct llm_tokenizer *open_tok(const char *name)
{
	struct llm_tokenizer *t = NULL;
	struct diag d;
	char *dir = tok_dir(name);
	int rc;

	diag_clear(&d);
	rc = llm_tokenizer_open(dir, &t, &d);
	ck_assert_msg(rc == 0, "open %s: %s", dir, d.msg);
	free(dir);
	return t;
}

static bool ids_equal(json_t *want, const int32_t *got, size_t n)
{
	size_t i;

	if (json_array_size(want) != n)
		return false;
	for (i = 0; i < n; i++)
		if (json_integer_value(json_array_get(want, i)) != got[i])
			return false;
	return true;
}

static void print_ids(const char *what, const int32_t *v, size_t n)
{
	size_t i;

	fprintf(stderr, "    %s:", what);
	for (i = 0; i < n && i < 40; i++)
		fprintf(stderr, " %d", (int)v[i]);
	fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

static int32_t *to_ids(json_t *a, size_t *n)
{
	size_t i;
	int32_t *v;

	*n = json_array_size(a);
	v = malloc((*n + 1) * sizeof *v);
	ck_assert_ptr_nonnull(v);
	for (i = 0; i < *n; i++)
		v[i] = (int32_t)json_integer_value(json_array_get(a, i));
	return v;
}

static bool text_equal(json_t *want, const char *got, size_t n)
{
	return json_string_length(want) == n && memcmp(json_string_value(want), got, n) == 0;
}

/* decode through the streaming decoder, one id at a time */
static char *stream_decode(struct llm_tokenizer *t, const int32_t *ids, size_t n, bool skip,
			   size_t *len)
{
	struct llm_detok *dt = NULL;
	size_t i, cap = 64, l = 0;
	char *out = malloc(cap);
	const char *s;
	size_t sl;

	ck_assert_int_eq(llm_detok_new(t, skip, &dt, NULL), 0);
	for (i = 0; i <= n; i++) {
		if (i < n)
			ck_assert_int_eq(llm_detok_push(dt, ids[i], &s, &sl, NULL), 0);
		else
			ck_assert_int_eq(llm_detok_flush(dt, &s, &sl), 0);
		/* never a partial UTF-8 sequence */
		if (sl) {
			unsigned char last = (unsigned char)s[sl - 1];

			ck_assert_msg(last < 0x80 || (last & 0xC0) == 0x80, "stream piece ends mid-sequence");
		}
		while (l + sl + 1 > cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		memcpy(out + l, s, sl);
		l += sl;
	}
	llm_detok_free(dt);
	out[l] = 0;
	*len = l;
	return out;
}

static int run_cases(const char *name)
{
	struct llm_tokenizer *t = open_tok(name);
	char rel[256], *path;
	json_t *root, *cases, *c;
	json_error_t je;
	size_t i;
	int bad = 0, n_cases = 0;

	snprintf(rel, sizeof rel, "tokenizers/%s/cases.json", name);
	path = test_data_path(rel);
	root = json_load_file(path, JSON_ALLOW_NUL, &je);
	ck_assert_msg(root != NULL, "%s: %s", path, je.text);
	cases = json_object_get(root, "cases");
	ck_assert(json_array_size(cases) > 50);
	json_array_foreach(cases, i, c) {
		json_t *jt = json_object_get(c, "text");
		const char *id = json_string_value(json_object_get(c, "id"));
		int32_t *ids = NULL, *want;
		size_t n = 0, nw, tl;
		char *text = NULL;
		struct diag d;

		n_cases++;
		diag_clear(&d);
		ck_assert_int_eq(llm_tokenizer_encode(t, json_string_value(jt), json_string_length(jt),
						      false, &ids, &n, &d), 0);
		if (!ids_equal(json_object_get(c, "ids"), ids, n)) {
			fprintf(stderr, "%s %s: encode mismatch\n", name, id);
			want = to_ids(json_object_get(c, "ids"), &nw);
			print_ids("want", want, nw);
			print_ids("got ", ids, n);
			free(want);
			bad++;
		}
		free(ids);
		ck_assert_int_eq(llm_tokenizer_encode(t, json_string_value(jt), json_string_length(jt),
						      true, &ids, &n, &d), 0);
		if (!ids_equal(json_object_get(c, "ids_with_special"), ids, n)) {
			fprintf(stderr, "%s %s: encode with special mismatch\n", name, id);
			bad++;
		}
		free(ids);

		want = to_ids(json_object_get(c, "ids"), &nw);
		ck_assert_int_eq(llm_tokenizer_decode(t, want, nw, false, &text, &tl, &d), 0);
		if (!text_equal(json_object_get(c, "decode"), text, tl)) {
			fprintf(stderr, "%s %s: decode mismatch: got '%s' want '%s'\n", name, id, text,
				json_string_value(json_object_get(c, "decode")));
			bad++;
		}
		free(text);
		free(want);

		want = to_ids(json_object_get(c, "ids_with_special"), &nw);
		ck_assert_int_eq(llm_tokenizer_decode(t, want, nw, false, &text, &tl, &d), 0);
		if (!text_equal(json_object_get(c, "decode_with_special"), text, tl)) {
			fprintf(stderr, "%s %s: decode_with_special mismatch: got '%s' want '%s'\n", name, id,
				text, json_string_value(json_object_get(c, "decode_with_special")));
			bad++;
		}
		free(text);
		ck_assert_int_eq(llm_tokenizer_decode(t, want, nw, true, &text, &tl, &d), 0);
		if (!text_equal(json_object_get(c, "decode_with_special_skip"), text, tl)) {
			fprintf(stderr, "%s %s: decode_with_special_skip mismatch: got '%s' want '%s'\n", name,
				id, text, json_string_value(json_object_get(c, "decode_with_special_skip")));
			bad++;
		}
		free(text);
		/* streaming equals one-shot decoding; HF's ByteFallback turns
		 * each byte of a broken sequence into U+FFFD while the stream
		 * replaces maximal subparts, so compare only clean output */
		if (!strstr(json_string_value(json_object_get(c, "decode_with_special_skip")), "\xEF\xBF\xBD")) {
			text = stream_decode(t, want, nw, true, &tl);
			if (!text_equal(json_object_get(c, "decode_with_special_skip"), text, tl)) {
				fprintf(stderr, "%s %s: stream mismatch: got '%s'\n", name, id, text);
				bad++;
			}
			free(text);
		}
		free(want);
	}
	json_decref(root);
	free(path);
	llm_tokenizer_free(t);
	fprintf(stderr, "tokenizer %s: %d cases, %d mismatches\n", name, n_cases, bad);
	return bad;
}

#define CASE_TEST(fn, name)                                            \
	START_TEST(fn)                                                 \
	{                                                              \
		int bad = run_cases(name);                             \
		ck_assert_msg(bad == 0, "%s: %d mismatches", name, bad); \
	}                                                              \
	END_TEST

CASE_TEST(test_llama2, "llama2")
CASE_TEST(test_llama32, "llama3.2")
CASE_TEST(test_mistral, "mistral-7b-instruct-v0.2")
CASE_TEST(test_nemo, "mistral-nemo")
CASE_TEST(test_qwen25, "qwen2.5")
CASE_TEST(test_qwen3, "qwen3")
CASE_TEST(test_gemma3, "gemma3")

/* the bundled model: run.c encodes "Once upon a time" as [1 403 407 261 378] */
START_TEST(test_stories260k)
{
	static const int32_t want[] = { 1, 403, 407, 261, 378 };
	struct llm_tokenizer *t = NULL;
	char *dir = test_data_path("../../models/stories260k");
	int32_t *ids = NULL;
	size_t n = 0, len = 0;
	char *text = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_tokenizer_open(dir, &t, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(llm_tokenizer_encode(t, "Once upon a time", 16, true, &ids, &n, &d), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(ids, want, sizeof want);
	ck_assert_int_eq(llm_tokenizer_bos(t), 1);
	ck_assert_int_eq(llm_tokenizer_eos(t), 2);
	ck_assert_int_eq(llm_tokenizer_n_vocab(t), 512);
	ck_assert_int_eq(llm_tokenizer_decode(t, ids, n, true, &text, &len, &d), 0);
	ck_assert_str_eq(text, "Once upon a time");
	free(text);
	free(ids);
	free(dir);
	llm_tokenizer_free(t);
}
END_TEST

/* lookups, errors, and the stream holding back split UTF-8 */
START_TEST(test_api)
{
	struct llm_tokenizer *t = open_tok("llama3.2");
	struct llm_detok *dt = NULL;
	const char *s;
	size_t n, len;
	int32_t bad = 128256 + 5, ids[3], *out = NULL;
	char *text = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_tokenizer_token_id(t, "<|eot_id|>"), 128009);
	ck_assert_int_eq(llm_tokenizer_eos(t), 128009);
	ck_assert_int_eq(llm_tokenizer_bos(t), 128000);
	ck_assert(llm_tokenizer_is_special(t, 128009));
	ck_assert(!llm_tokenizer_is_special(t, 220));
	ck_assert_str_eq(llm_tokenizer_piece(t, 220, &n), "\xc4\xa0");
	ck_assert_int_eq(llm_tokenizer_decode(t, &bad, 1, false, &text, &len, &d), LLM_E_INVALID);
	ck_assert(strstr(d.msg, "outside") != NULL);
	/* "🙂" is 4 bytes: feed its byte tokens one by one */
	ck_assert_int_eq(llm_tokenizer_encode(t, "\xF0\x9F\x99\x82", 4, false, &out, &n, &d), 0);
	ck_assert_int_eq(llm_detok_new(t, false, &dt, &d), 0);
	ids[0] = t ? llm_tokenizer_token_id(t, "\xc3\xb0") : -1; /* byte 0xF0 */
	ids[1] = llm_tokenizer_token_id(t, "\xc5\x81");          /* byte 0x9F */
	ck_assert_int_ge(ids[0], 0);
	ck_assert_int_ge(ids[1], 0);
	ck_assert_int_eq(llm_detok_push(dt, ids[0], &s, &n, &d), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(llm_detok_push(dt, ids[1], &s, &n, &d), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(llm_detok_flush(dt, &s, &n), 0);
	ck_assert_uint_eq(n, 3); /* one U+FFFD for the maximal subpart F0 9F */
	ck_assert_mem_eq(s, "\xEF\xBF\xBD", 3);
	llm_detok_free(dt);
	free(out);
	llm_tokenizer_free(t);
}
END_TEST

START_TEST(test_open_errors)
{
	struct llm_tokenizer *t = NULL;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_lt(llm_tokenizer_open("/nonexistent/tokenizer.json", &t, &d), 0);
	ck_assert_ptr_null(t);
	ck_assert(d.msg[0] != 0);
}
END_TEST

Suite *tokenizer_suite(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("conformance");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_llama2);
	tcase_add_test(tc, test_llama32);
	tcase_add_test(tc, test_mistral);
	tcase_add_test(tc, test_nemo);
	tcase_add_test(tc, test_qwen25);
	tcase_add_test(tc, test_qwen3);
	tcase_add_test(tc, test_gemma3);
	tcase_add_test(tc, test_stories260k);
	tcase_add_test(tc, test_api);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	return s;
}
