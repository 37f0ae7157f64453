/* tests/inference/test_safetensors.c — suite `safetensors`: the reader of
 * inference/safetensors.c against the tiny model fixtures
 * (tests/data/models/, written by the Python safetensors library), against
 * deliberately damaged copies, and against a 2-shard split of a fixture
 * written here.  Expected names, shapes and values were read from the
 * fixtures with Python's struct/json modules, not with this reader.
 *
 * Temporary files go to /tmp (mkstemp/mkdtemp) and are removed.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/file.h"
#include "inference/llm.h"
#include "inference/safetensors_impl.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *model_path(const char *model, const char *file)
{
	char rel[256];

	snprintf(rel, sizeof rel, "models/%s%s%s", model, file ? "/" : "",
		 file ? file : "");
	return test_data_path(rel);
}

static struct llm_st_set *open_ok(const char *path)
{
	struct llm_st_set *s = NULL;
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = llm_st_open(path, &s, &d);
	ck_assert_msg(rc == 0, "open %s: %d %s", path, rc, d.msg);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Write LEN bytes to a fresh /tmp file; returns its path (free() it). */
static char *write_temp(const void *data, size_t len)
{
	char tmpl[] = "/tmp/tern-st-XXXXXX";
	int fd = mkstemp(tmpl);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq((long)write(fd, data, len), (long)len);
	close(fd);
	return strdup(tmpl);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Expect opening DATA[LEN] (as a temp file) to fail with CODE and a message
 * naming the file and containing NEEDLE (when non-NULL). */
static void expect_bad(const void *data, size_t len, int code,
		       const char *needle)
{
	char *path = write_temp(data, len);
	struct llm_st_set *s = (struct llm_st_set *)1;
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = llm_st_open(path, &s, &d);
	ck_assert_msg(rc == code, "len %zu: rc %d, want %d (%s)", len, rc, code,
		      d.msg);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(d.msg, path) != NULL, "message '%s' lacks path",
		      d.msg);
	if (needle)
		ck_assert_msg(strstr(d.msg, needle) != NULL,
			      "message '%s' lacks '%s'", d.msg, needle);
	unlink(path);
	free(path);
}

/* A safetensors file from a header string and DATA_LEN bytes of 0xAB. */
static void *craft(const char *header, size_t data_len, size_t *len)
{
	size_t hl = strlen(header);
	unsigned char *b = malloc(8 + hl + data_len + 1);
	uint64_t n = hl;

	ck_assert_ptr_nonnull(b);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(n >> (8 * i));
	memcpy(b + 8, header, hl);
	memset(b + 8 + hl, 0xab, data_len);
	*len = 8 + hl + data_len;
	return b;
}

static void expect_bad_header(const char *header, size_t data_len, int code,
			      const char *needle)
{
	size_t len;
	void *b = craft(header, data_len, &len);

	expect_bad(b, len, code, needle);
	free(b);
}

/* ---- scalar conversions ----------------------------------------------------- */

START_TEST(test_dtypes)
{
	enum llm_dtype t;

	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_F32), 4);
	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_BF16), 2);
	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_F64), 8);
	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_I64), 8);
	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_BOOL), 1);
	ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_COUNT), 0);
	ck_assert_str_eq(llm_dtype_name(LLM_DTYPE_I16), "I16");
	ck_assert_str_eq(llm_dtype_name(LLM_DTYPE_COUNT), "?");
	for (int i = 0; i < LLM_DTYPE_COUNT; i++) {
		ck_assert_int_eq(llm_dtype_from_name(
					 llm_dtype_name((enum llm_dtype)i), &t),
				 0);
		ck_assert_int_eq(t, i);
	}
	ck_assert_int_eq(llm_dtype_from_name("F8_E4M3", &t), LLM_E_UNSUPPORTED);
}
END_TEST

START_TEST(test_scalar_conv)
{
	/* known encodings (IEEE 754 binary16 / bfloat16) */
	ck_assert(llm_f16_to_f32(0x3c00) == 1.0f);
	ck_assert(llm_f16_to_f32(0xc000) == -2.0f);
	ck_assert(llm_f16_to_f32(0x7bff) == 65504.0f);
	ck_assert(llm_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
	ck_assert(llm_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
	ck_assert(isinf(llm_f16_to_f32(0x7c00)));
	ck_assert(isnan(llm_f16_to_f32(0x7e00)));
	ck_assert(llm_bf16_to_f32(0x3f80) == 1.0f);
	ck_assert(llm_bf16_to_f32(0x3dbc) == 0.091796875f);
	ck_assert_uint_eq(llm_f32_to_bf16(1.0f), 0x3f80);
	/* ties go to even: 1 + 2^-8 is halfway between 0x3f80 and 0x3f81 */
	ck_assert_uint_eq(llm_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
	ck_assert_uint_eq(llm_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
	ck_assert(isnan(llm_bf16_to_f32(llm_f32_to_bf16(NAN))));
	ck_assert_uint_eq(llm_f32_to_f16(65504.0f), 0x7bff);
	ck_assert_uint_eq(llm_f32_to_f16(65520.0f), 0x7c00); /* rounds up */
	ck_assert_uint_eq(llm_f32_to_f16(1e10f), 0x7c00);
	ck_assert_uint_eq(llm_f32_to_f16(-1e-10f), 0x8000);
	ck_assert_uint_eq(llm_f32_to_f16(ldexpf(1.0f, -25)), 0x0000); /* tie */
	ck_assert_uint_eq(llm_f32_to_f16(ldexpf(3.0f, -26)), 0x0001);
	ck_assert_uint_eq(llm_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
	ck_assert_uint_eq(llm_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);
	/* every finite/inf half and bfloat16 survives the round trip */
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0)
			ck_assert_uint_eq(llm_f32_to_f16(llm_f16_to_f32(
						  (uint16_t)h)), h);
		if ((h & 0x7f80) != 0x7f80 || (h & 0x7f) == 0)
			ck_assert_uint_eq(llm_f32_to_bf16(llm_bf16_to_f32(
						  (uint16_t)h)), h);
	}
}
END_TEST

/* ---- the fixtures ----------------------------------------------------------- */

struct fixture_count {
	const char *model;
	size_t n_model, n_ref;
};

static const struct fixture_count fixture_counts[] = {
	{ "llama2", 21, 7 },   { "llama3", 21, 7 },      { "mistral", 21, 7 },
	{ "mixtral", 41, 7 },  { "qwen2", 26, 7 },       { "qwen2moe", 55, 7 },
	{ "qwen3", 24, 7 },    { "qwen3moe", 69, 7 },    { "qwen2_5_vl", 80, 10 },
	{ "exl3-llama3", 59, 7 },
};

START_TEST(test_fixtures_open)
{
	const struct fixture_count *fc = &fixture_counts[_i];
	char *dir = model_path(fc->model, NULL);
	char *ref = model_path(fc->model, "reference.safetensors");
	struct llm_st_set *s;

	/* directory form finds model.safetensors */
	s = open_ok(dir);
	ck_assert_uint_eq(llm_st_count(s), fc->n_model);
	ck_assert_int_eq(llm_st_n_files(s), 1);
	if (strcmp(fc->model, "exl3-llama3") == 0)
		ck_assert_ptr_null(llm_st_metadata(s, "format"));
	else
		ck_assert_str_eq(llm_st_metadata(s, "format"), "pt");
	for (size_t i = 0; i < llm_st_count(s); i++) {
		const struct llm_tensor_info *t = llm_st_at(s, i);

		ck_assert_ptr_eq(llm_st_find(s, t->name), t);
		ck_assert_uint_eq(t->n_bytes, (uint64_t)t->n_elems *
						       llm_dtype_size(t->dtype));
		ck_assert_int_eq(t->file_index, 0);
	}
	ck_assert_ptr_null(llm_st_at(s, fc->n_model));
	ck_assert_ptr_null(llm_st_find(s, "model.nonexistent.weight"));
	llm_st_close(s);

	/* single-file form */
	s = open_ok(ref);
	ck_assert_uint_eq(llm_st_count(s), fc->n_ref);
	llm_st_close(s);
	free(dir);
	free(ref);
}
END_TEST

START_TEST(test_fixture_values)
{
	char *dir = model_path("llama3", NULL);
	char *ref = model_path("llama3", "reference.safetensors");
	struct llm_st_set *s = open_ok(dir);
	const struct llm_tensor_info *t;
	int64_t kshape[2] = { 64, 128 };
	float *buf;
	int32_t ids[7];
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.0.self_attn.k_proj.weight",
				       2, kshape, &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_BF16);
	ck_assert_int_eq(t->n_elems, 64 * 128);
	buf = malloc(sizeof(float) * (size_t)t->n_elems);
	ck_assert_int_eq(llm_tensor_to_f32(t, buf, &d), 0);
	/* first values, bf16 0x3dbc 0xbd86 0xbda5 0xbdf2 in the file */
	ck_assert(buf[0] == 0.091796875f);
	ck_assert(buf[1] == -0.0654296875f);
	ck_assert(buf[2] == -0.08056640625f);
	ck_assert(buf[3] == -0.1181640625f);
	free(buf);
	/* lm_head is the first tensor in the file's data section */
	ck_assert_int_eq(llm_st_expect(s, "lm_head.weight", 2,
				       (const int64_t[]){ 512, 128 }, NULL, &d),
			 0);
	ck_assert_int_eq(llm_st_expect(s, "model.norm.weight", 1,
				       (const int64_t[]){ 128 }, NULL, &d), 0);
	/* wrong shape and missing tensor: messages name the tensor */
	ck_assert_int_eq(llm_st_expect(s, "model.norm.weight", 1,
				       (const int64_t[]){ 64 }, NULL, &d),
			 LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'model.norm.weight'"));
	ck_assert_ptr_nonnull(strstr(d.msg, "[128]"));
	ck_assert_ptr_nonnull(strstr(d.msg, "[64]"));
	ck_assert_int_eq(llm_st_expect(s, "model.layers.2.mlp.up_proj.weight", 2,
				       kshape, &t, &d), LLM_E_FORMAT);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(d.msg, "missing tensor 'model.layers.2"));
	/* -1 = any extent; NULL shape = existence only */
	ck_assert_int_eq(llm_st_expect(s, "lm_head.weight", 2,
				       (const int64_t[]){ -1, 128 }, NULL, &d),
			 0);
	ck_assert_int_eq(llm_st_expect(s, "lm_head.weight", 0, NULL, NULL, &d),
			 0);
	llm_st_close(s);

	s = open_ok(ref);
	ck_assert_int_eq(llm_st_expect(s, "logits.0", 2,
				       (const int64_t[]){ 1, 512 }, &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_F32);
	buf = malloc(512 * sizeof(float));
	ck_assert_int_eq(llm_tensor_to_f32(t, buf, &d), 0);
	ck_assert_float_eq_tol(buf[0], -0.6292449235916138f, 1e-7f);
	ck_assert_float_eq_tol(buf[3], -1.4419819116592407f, 1e-7f);
	free(buf);
	ck_assert_int_eq(llm_st_expect(s, "logits.2", 2,
				       (const int64_t[]){ 33, 512 }, NULL, &d),
			 0);
	ck_assert_int_eq(llm_st_expect(s, "input_ids.1", 1,
				       (const int64_t[]){ 7 }, &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_I32);
	memcpy(ids, t->data, sizeof ids);
	ck_assert_int_eq(ids[0], 95);
	ck_assert_int_eq(ids[3], 366);
	ck_assert_int_eq(ids[6], 458);
	/* integer tensors are not converted */
	ck_assert_int_eq(llm_tensor_to_f32(t, (float *)ids, &d),
			 LLM_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(d.msg, "input_ids.1"));
	ck_assert_str_eq(llm_st_metadata(s, "seed"), "1");
	llm_st_close(s);
	free(dir);
	free(ref);
}
END_TEST

START_TEST(test_fixture_shapes)
{
	struct diag d;
	struct llm_st_set *s;
	const struct llm_tensor_info *t;
	char *p;
	int16_t tr[4];
	int32_t flag;
	float f[4];

	diag_clear(&d);
	p = model_path("qwen2moe", NULL);
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.1.mlp.experts.3.down_proj.weight",
				       2, (const int64_t[]){ 128, 64 }, NULL, &d), 0);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.0.mlp.shared_expert_gate.weight",
				       2, (const int64_t[]){ 1, 128 }, NULL, &d), 0);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.0.self_attn.q_proj.bias",
				       1, (const int64_t[]){ 128 }, NULL, &d), 0);
	llm_st_close(s);

	p = model_path("qwen3", NULL);
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.1.self_attn.q_norm.weight",
				       1, (const int64_t[]){ 32 }, NULL, &d), 0);
	ck_assert_ptr_null(llm_st_find(s, "lm_head.weight")); /* tied */
	llm_st_close(s);

	p = model_path("mixtral", NULL);
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.0.block_sparse_moe.gate.weight",
				       2, (const int64_t[]){ 4, 128 }, NULL, &d), 0);
	ck_assert_int_eq(llm_st_expect(s, "model.layers.1.block_sparse_moe.experts.3.w2.weight",
				       2, (const int64_t[]){ 128, 256 }, NULL, &d), 0);
	llm_st_close(s);

	p = model_path("qwen2_5_vl", NULL);
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "visual.blocks.0.attn.qkv.weight",
				       2, (const int64_t[]){ 192, 64 }, NULL, &d), 0);
	ck_assert_int_eq(llm_st_expect(s, "visual.merger.mlp.0.weight",
				       2, (const int64_t[]){ 256, 256 }, NULL, &d), 0);
	llm_st_close(s);
	p = model_path("qwen2_5_vl", "reference.safetensors");
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "pixel_values.photo", 2,
				       (const int64_t[]){ 704, 1176 }, NULL, &d), 0);
	ck_assert_int_eq(llm_st_expect(s, "image_grid_thw", 2,
				       (const int64_t[]){ 1, 3 }, &t, &d), 0);
	{
		int32_t g[3];

		memcpy(g, t->data, sizeof g);
		ck_assert_int_eq(g[0], 1);
		ck_assert_int_eq(g[1], 8);
		ck_assert_int_eq(g[2], 12);
	}
	ck_assert_str_eq(llm_st_metadata(s, "photo"), "skimage-chelsea.png");
	ck_assert_str_eq(llm_st_metadata(s, "picture_max_pixels"), "50176");
	ck_assert_ptr_null(llm_st_metadata(s, "nope"));
	llm_st_close(s);

	/* EXL3 layout: I16 trellis, F16 scales, I32 scalar flags */
	p = model_path("exl3-llama3", NULL);
	s = open_ok(p);
	free(p);
	ck_assert_int_eq(llm_st_expect(s, "lm_head.trellis", 3,
				       (const int64_t[]){ 16, 64, 96 }, &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_I16);
	memcpy(tr, t->data, sizeof tr);
	ck_assert_int_eq(tr[0], -14594);
	ck_assert_int_eq(tr[3], -17295);
	ck_assert_int_eq(llm_st_expect(s, "lm_head.mul1", 0, (const int64_t[]){ 0 },
				       &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_I32);
	ck_assert_int_eq(t->n_elems, 1);
	ck_assert_uint_eq(t->n_bytes, 4);
	memcpy(&flag, t->data, 4);
	ck_assert_int_eq(flag, -2082680531);
	ck_assert_int_eq(llm_st_expect(s, "lm_head.suh", 1,
				       (const int64_t[]){ 256 }, &t, &d), 0);
	ck_assert_int_eq(t->dtype, LLM_DTYPE_F16);
	{
		float *all = malloc(256 * sizeof(float));

		ck_assert_int_eq(llm_tensor_to_f32(t, all, &d), 0);
		memcpy(f, all, sizeof f);
		free(all);
	}
	ck_assert(f[0] == -0.053070068359375f);
	ck_assert(f[3] == 0.052978515625f);
	llm_st_close(s);
}
END_TEST

START_TEST(test_missing)
{
	struct llm_st_set *s = NULL;
	struct diag d;
	char dir[] = "/tmp/tern-st-XXXXXX";

	diag_clear(&d);
	ck_assert_int_eq(llm_st_open("/nonexistent/x.safetensors", &s, &d),
			 LLM_E_IO);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/x.safetensors"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_IO);
	ck_assert_ptr_nonnull(strstr(d.msg, "model.safetensors"));
	rmdir(dir);
	llm_st_close(NULL);
}
END_TEST

/* ---- damaged files ------------------------------------------------------------- */

START_TEST(test_truncated)
{
	char *p = model_path("llama2", "model.safetensors");
	size_t len, i;
	char *b = test_read_file(p, &len);
	/* file: 920984 bytes, header 2192 bytes; data starts at 2200 */
	const size_t cuts[] = { 0, 1, 7, 8, 9, 100, 2199, 2200, 2201, 133372,
				len / 2, len - 1 };

	ck_assert_uint_eq(len, 920984);
	for (i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
		expect_bad(b, cuts[i], LLM_E_FORMAT,
			   cuts[i] < 8 ? "truncated" : NULL);
	/* the cut inside the data names a tensor that ends past the end */
	/* lm_head.weight is data [0, 131072), embed_tokens the next 131072 */
	expect_bad(b, 2200 + 131072 + 100, LLM_E_FORMAT,
		   "'model.embed_tokens.weight' ends past end");
	expect_bad(b, 2200, LLM_E_FORMAT, "'lm_head.weight' ends past end");
	/* header length: huge, too small, past the end */
	memset(b, 0xff, 8);
	expect_bad(b, len, LLM_E_FORMAT, "header length");
	memset(b, 0, 8);
	b[0] = 1;
	expect_bad(b, len, LLM_E_FORMAT, "header length");
	b[0] = 0;
	b[3] = 1; /* 16 MiB header in a 0.9 MB file */
	expect_bad(b, len, LLM_E_FORMAT, "truncated");
	/* bad JSON: clobber the opening brace */
	b[3] = 0;
	b[0] = (char)(2192 & 0xff);
	b[1] = (char)(2192 >> 8);
	b[8] = 'x';
	expect_bad(b, len, LLM_E_FORMAT, "JSON");
	b[8] = '{';
	/* header length 8 short: the JSON (which ends "784]}}" + 4 spaces of
	 * padding) is cut inside the last tensor entry */
	b[0] = (char)((2192 - 8) & 0xff);
	expect_bad(b, len, LLM_E_FORMAT, "JSON");
	free(b);
	free(p);
}
END_TEST

START_TEST(test_bad_headers)
{
	expect_bad_header("[1, 2]", 0, LLM_E_FORMAT, "not a JSON object");
	expect_bad_header("{\"a\": 3}", 0, LLM_E_FORMAT, "'a'");
	expect_bad_header("{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}",
			  8, LLM_E_FORMAT, "'dtype'");
	expect_bad_header("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}",
			  8, LLM_E_FORMAT, "'shape'");
	expect_bad_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8,
			  LLM_E_FORMAT, "data_offsets");
	expect_bad_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], "
			  "\"data_offsets\": [0]}}", 8, LLM_E_FORMAT,
			  "data_offsets");
	/* offsets past the end of the data section */
	expect_bad_header("{\"weight\": {\"dtype\": \"F32\", \"shape\": [4], "
			  "\"data_offsets\": [0, 16]}}", 8, LLM_E_FORMAT,
			  "'weight' ends past end of file");
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], "
			  "\"data_offsets\": [9223372036854775800, "
			  "9223372036854775804]}}", 8, LLM_E_FORMAT, "'w'");
	/* end before begin */
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], "
			  "\"data_offsets\": [8, 4]}}", 8, LLM_E_FORMAT, "begin");
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], "
			  "\"data_offsets\": [-4, 0]}}", 8, LLM_E_FORMAT, "'w'");
	/* shape and bytes disagree */
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], "
			  "\"data_offsets\": [0, 8]}}", 12, LLM_E_FORMAT,
			  "shape needs 12");
	expect_bad_header("{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 2], "
			  "\"data_offsets\": [0, 16]}}", 16, LLM_E_FORMAT, "'w'");
	/* element count overflow: 2^32 * 2^32 * 2^32 */
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, "
			  "4294967296, 4294967296], \"data_offsets\": [0, 0]}}",
			  0, LLM_E_FORMAT, "overflow");
	/* byte size overflow: 2^62 elements of 8 bytes */
	expect_bad_header("{\"w\": {\"dtype\": \"F64\", \"shape\": "
			  "[4611686018427387904], \"data_offsets\": [0, 0]}}",
			  0, LLM_E_FORMAT, "overflow");
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], "
			  "\"data_offsets\": [0, 0]}}", 0, LLM_E_FORMAT, "shape");
	expect_bad_header("{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], "
			  "\"data_offsets\": [0, 8]}}", 8, LLM_E_FORMAT, "shape");
	/* unsupported but well-formed */
	expect_bad_header("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], "
			  "\"data_offsets\": [0, 2]}}", 2, LLM_E_UNSUPPORTED,
			  "F8_E4M3");
	expect_bad_header("{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,2], "
			  "\"data_offsets\": [0, 2]}}", 2, LLM_E_UNSUPPORTED,
			  "dimensions");
	/* duplicate names, bad metadata */
	expect_bad_header("{\"w\": {\"dtype\": \"U8\", \"shape\": [1], "
			  "\"data_offsets\": [0, 1]}, \"w\": {\"dtype\": \"U8\", "
			  "\"shape\": [1], \"data_offsets\": [0, 1]}}", 1,
			  LLM_E_FORMAT, "JSON");
	expect_bad_header("{\"__metadata__\": [1]}", 0, LLM_E_FORMAT,
			  "__metadata__");
}
END_TEST

START_TEST(test_crafted_ok)
{
	/* scalar, zero-sized, non-contiguous (a gap) and out-of-order
	 * tensors, trailing header spaces, and non-string metadata */
	const char *h = "{\"__metadata__\": {\"format\": \"pt\", \"n\": 3}, "
			"\"b\": {\"dtype\": \"F16\", \"shape\": [2], "
			"\"data_offsets\": [12, 16]}, "
			"\"a\": {\"dtype\": \"F64\", \"shape\": [], "
			"\"data_offsets\": [0, 8]}, "
			"\"z\": {\"dtype\": \"I64\", \"shape\": [0, 5], "
			"\"data_offsets\": [16, 16]}}    ";
	size_t len;
	unsigned char *b = craft(h, 16, &len);
	const size_t base = 8 + strlen(h);
	const double dv = -2.5;
	const uint16_t hv[2] = { 0x3c00, 0xc000 };
	char *path;
	struct llm_st_set *s;
	const struct llm_tensor_info *t;
	float f[2];
	struct diag d;

	memcpy(b + base, &dv, 8);
	memcpy(b + base + 12, hv, 4);
	path = write_temp(b, len);
	s = open_ok(path);
	diag_clear(&d);
	ck_assert_uint_eq(llm_st_count(s), 3);
	ck_assert_str_eq(llm_st_at(s, 0)->name, "b"); /* header order */
	ck_assert_str_eq(llm_st_metadata(s, "format"), "pt");
	ck_assert_ptr_null(llm_st_metadata(s, "n"));
	t = llm_st_find(s, "a");
	ck_assert_int_eq(t->n_dims, 0);
	ck_assert_int_eq(t->n_elems, 1);
	ck_assert_int_eq(llm_tensor_to_f32(t, f, &d), 0);
	ck_assert(f[0] == -2.5f);
	t = llm_st_find(s, "b");
	ck_assert_ptr_eq(t->data, (const void *)((const unsigned char *)
		llm_st_find(s, "a")->data + 12));
	ck_assert_int_eq(llm_tensor_to_f32(t, f, &d), 0);
	ck_assert(f[0] == 1.0f && f[1] == -2.0f);
	t = llm_st_find(s, "z");
	ck_assert_int_eq(t->n_elems, 0);
	ck_assert_uint_eq(t->n_bytes, 0);
	ck_assert_int_eq(t->shape[1], 5);
	llm_st_close(s);
	unlink(path);
	free(path);
	free(b);
}
END_TEST

/* ---- sharded ----------------------------------------------------------------- */

/* Write the tensors of S whose index i satisfies i % 2 == PARITY as a
 * safetensors file at PATH (header padded to 8 bytes, as the Python writer
 * does); adds name -> SHARD_NAME to WEIGHT_MAP. */
static void write_shard(const struct llm_st_set *s, int parity,
			const char *path, const char *shard_name,
			json_t *weight_map)
{
	json_t *hdr = json_object();
	uint64_t off = 0, hl;
	char *text;
	size_t tl, pad;
	FILE *f;

	for (size_t i = (size_t)parity; i < llm_st_count(s); i += 2) {
		const struct llm_tensor_info *t = llm_st_at(s, i);
		json_t *shape = json_array();

		for (int k = 0; k < t->n_dims; k++)
			json_array_append_new(shape, json_integer(t->shape[k]));
		json_object_set_new(hdr, t->name,
				    json_pack("{s:s, s:o, s:[I, I]}", "dtype",
					      llm_dtype_name(t->dtype), "shape",
					      shape, "data_offsets",
					      (json_int_t)off,
					      (json_int_t)(off + t->n_bytes)));
		json_object_set_new(weight_map, t->name,
				    json_string(shard_name));
		off += t->n_bytes;
	}
	text = json_dumps(hdr, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	tl = strlen(text);
	pad = (8 - tl % 8) % 8;
	hl = tl + pad;
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 8; i++)
		fputc((int)((hl >> (8 * i)) & 0xff), f);
	fwrite(text, 1, tl, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	for (size_t i = (size_t)parity; i < llm_st_count(s); i += 2) {
		const struct llm_tensor_info *t = llm_st_at(s, i);

		ck_assert_uint_eq(fwrite(t->data, 1, t->n_bytes, f), t->n_bytes);
	}
	ck_assert_int_eq(fclose(f), 0);
	free(text);
	json_decref(hdr);
}

static void write_index(const char *dir, json_t *weight_map)
{
	json_t *idx = json_pack("{s:{s:I}, s:O}", "metadata", "total_size",
				(json_int_t)0, "weight_map", weight_map);
	char *p = file_join(dir, "model.safetensors.index.json");
	char *text = json_dumps(idx, JSON_INDENT(2));

	write_file(p, text, strlen(text));
	free(text);
	free(p);
	json_decref(idx);
}

START_TEST(test_sharded)
{
	char dir[] = "/tmp/tern-st-XXXXXX";
	char *src = model_path("qwen2moe", NULL);
	struct llm_st_set *orig = open_ok(src);
	struct llm_st_set *s;
	json_t *wm = json_object();
	char *p1, *p2, *pi;
	struct diag d;
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	p1 = file_join(dir, "model-00001-of-00002.safetensors");
	p2 = file_join(dir, "model-00002-of-00002.safetensors");
	pi = file_join(dir, "model.safetensors.index.json");
	write_shard(orig, 0, p1, "model-00001-of-00002.safetensors", wm);
	write_shard(orig, 1, p2, "model-00002-of-00002.safetensors", wm);
	write_index(dir, wm);

	/* by directory and by index path */
	for (int pass = 0; pass < 2; pass++) {
		s = open_ok(pass ? pi : dir);
		ck_assert_int_eq(llm_st_n_files(s), 2);
		ck_assert_uint_eq(llm_st_count(s), llm_st_count(orig));
		for (size_t i = 0; i < llm_st_count(orig); i++) {
			const struct llm_tensor_info *a = llm_st_at(orig, i);
			const struct llm_tensor_info *b = llm_st_find(s, a->name);

			ck_assert_msg(b != NULL, "%s missing", a->name);
			ck_assert_int_eq(b->dtype, a->dtype);
			ck_assert_int_eq(b->n_dims, a->n_dims);
			ck_assert_mem_eq(b->shape, a->shape, sizeof a->shape);
			ck_assert_uint_eq(b->n_bytes, a->n_bytes);
			ck_assert_int_eq(b->file_index, (int)(i % 2));
			ck_assert(memcmp(b->data, a->data, a->n_bytes) == 0);
		}
		llm_st_close(s);
	}

	diag_clear(&d);
	/* a tensor listed for the wrong shard */
	json_object_set_new(wm, "lm_head.weight",
			    json_string("model-00002-of-00002.safetensors"));
	write_index(dir, wm);
	s = (struct llm_st_set *)1;
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_FORMAT);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(d.msg, "'lm_head.weight'"));
	/* a name no shard has */
	json_object_set_new(wm, "lm_head.weight",
			    json_string("model-00001-of-00002.safetensors"));
	json_object_set_new(wm, "extra.weight",
			    json_string("model-00001-of-00002.safetensors"));
	write_index(dir, wm);
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'extra.weight'"));
	/* a missing shard file */
	json_object_set_new(wm, "extra.weight",
			    json_string("model-00003-of-00002.safetensors"));
	write_index(dir, wm);
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_IO);
	ck_assert_ptr_nonnull(strstr(d.msg, "model-00003-of-00002"));
	/* a shard name escaping the directory */
	json_object_set_new(wm, "extra.weight",
			    json_string("../model.safetensors"));
	write_index(dir, wm);
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "'extra.weight'"));
	json_object_del(wm, "extra.weight");
	/* the same tensor in two shards */
	write_shard(orig, 0, p2, "model-00002-of-00002.safetensors", wm);
	json_object_set_new(wm, "lm_head.weight", /* keep shard 1 listed */
			    json_string("model-00001-of-00002.safetensors"));
	write_index(dir, wm);
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_FORMAT);
	ck_assert_msg(strstr(d.msg, "appears twice") != NULL, "%s", d.msg);
	/* broken index JSON */
	write_file(pi, "{\"weight_map\": ", 15);
	rc = llm_st_open(dir, &s, &d);
	ck_assert_int_eq(rc, LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "index.json"));
	write_file(pi, "{}", 2);
	ck_assert_int_eq(llm_st_open(dir, &s, &d), LLM_E_FORMAT);
	ck_assert_ptr_nonnull(strstr(d.msg, "weight_map"));

	unlink(p1);
	unlink(p2);
	unlink(pi);
	rmdir(dir);
	free(p1);
	free(p2);
	free(pi);
	json_decref(wm);
	llm_st_close(orig);
	free(src);
}
END_TEST

Suite *safetensors_suite(void);
Suite *safetensors_suite(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_dtypes);
	tcase_add_test(tc, test_scalar_conv);
	tcase_add_loop_test(tc, test_fixtures_open, 0,
			    (int)(sizeof fixture_counts / sizeof fixture_counts[0]));
	tcase_add_test(tc, test_fixture_values);
	tcase_add_test(tc, test_fixture_shapes);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_bad_headers);
	tcase_add_test(tc, test_crafted_ok);
	tcase_add_test(tc, test_sharded);
	suite_add_tcase(s, tc);
	return s;
}
