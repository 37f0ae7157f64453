/* tests/inference/test_vision.c — suite `vision`: the Qwen2.5-VL vision
 * tower on the host (inference/vision.c) against transformers.
 *
 * tests/data/models/qwen2_5_vl is a tiny random Qwen2.5-VL (vision width
 * 64, 4 blocks, blocks 1 and 3 with full attention, windows of 2 x 2
 * merged tokens); its reference.safetensors holds the image processor's
 * pixel_values and image_grid_thw for two images and the image_embeds
 * transformers' vision tower makes of them (float32, eager attention).
 * picture.png gives a grid of 1 x 8 x 12 patches (4 x 6 merged tokens:
 * whole windows, plus the empty padded row and column of windows the
 * reference skips), skimage-chelsea.png 1 x 22 x 32 (11 x 16 merged
 * tokens: the last row of windows cut in half).  Measured here: max
 * |diff| 3.8e-6 and 3.5e-6 against max |ref| 2.6 and 2.8; the bound is
 * 1e-4 x max |ref|.  Also: bad grids and a model without a vision tower
 * are refused with a message.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inference/llm.h"
#include "inference/safetensors_impl.h"
#include "refutil.h"
#include "testutil.h"

static void check_image(const char *suffix)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *refp = test_data_path("models/qwen2_5_vl/reference.safetensors");
	struct llm_st_set *ref = NULL;
	struct llm_vision *v = NULL;
	const struct llm_tensor_info *tp, *tg, *te;
	char name[64];
	float *px, *want, *got;
	int32_t grid[3];
	size_t n, n_tok = 0, D, i;
	float mx = 0.0f, md = 0.0f;
	struct diag d;

	diag_clear(&d);
	ck_assert_msg(llm_st_open(refp, &ref, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	snprintf(name, sizeof name, "pixel_values%s", suffix);
	tp = llm_st_find(ref, name);
	snprintf(name, sizeof name, "image_grid_thw%s", suffix);
	tg = llm_st_find(ref, name);
	snprintf(name, sizeof name, "image_embeds%s", suffix);
	te = llm_st_find(ref, name);
	ck_assert(tp && tg && te);
	ck_assert_uint_eq((size_t)tp->shape[1], llm_vision_patch_len(v));
	memcpy(grid, tg->data, sizeof grid);
	n = (size_t)tp->shape[0];
	D = llm_vision_n_embd(v);
	ck_assert_int_eq(llm_vision_n_tokens(v, grid, &n_tok), 0);
	ck_assert_uint_eq(n_tok, (size_t)te->shape[0]);
	ck_assert_uint_eq(D, (size_t)te->shape[1]);
	px = malloc(n * llm_vision_patch_len(v) * sizeof *px);
	want = malloc(n_tok * D * sizeof *want);
	got = malloc(n_tok * D * sizeof *got);
	ck_assert(px && want && got);
	ck_assert_int_eq(llm_tensor_to_f32(tp, px, &d), 0);
	ck_assert_int_eq(llm_tensor_to_f32(te, want, &d), 0);
	ck_assert_msg(llm_vision_encode(v, px, n, grid, got, &d) == 0, "%s", d.msg);
	for (i = 0; i < n_tok * D; i++) {
		mx = fmaxf(mx, fabsf(want[i]));
		md = fmaxf(md, fabsf(got[i] - want[i]));
	}
	ck_assert_msg(md <= 1e-4f * mx, "image%s (grid %d x %d x %d): max diff %g, "
		      "max |ref| %g", suffix, grid[0], grid[1], grid[2], (double)md,
		      (double)mx);
	free(px);
	free(want);
	free(got);
	llm_vision_free(v);
	llm_st_close(ref);
	free(dir);
	free(refp);
}

START_TEST(test_picture) { check_image(""); }
END_TEST

START_TEST(test_photo) { check_image(".photo"); }
END_TEST

START_TEST(test_refused)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	char *text_only = test_data_path("models/qwen2");
	struct llm_vision *v = NULL;
	float px[16] = { 0 }, out[16];
	const int32_t odd[3] = { 1, 3, 4 }, zero[3] = { 0, 2, 2 }, ok[3] = { 1, 2, 2 };
	size_t n;
	struct diag d;

	diag_clear(&d);
	ck_assert_int_eq(llm_vision_open(text_only, &v, &d), LLM_E_UNSUPPORTED);
	ck_assert_ptr_null(v);
	ck_assert_msg(strstr(d.msg, "vision") != NULL, "%s", d.msg);
	diag_clear(&d);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(llm_vision_n_tokens(v, odd, &n), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_n_tokens(v, zero, &n), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_encode(v, px, 3, odd, out, &d), LLM_E_INVALID);
	/* 4 patches claimed for a 1 x 2 x 2 grid, 5 given */
	ck_assert_int_eq(llm_vision_encode(v, px, 5, ok, out, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "5 patches") != NULL, "%s", d.msg);
	llm_vision_free(v);
	free(dir);
	free(text_only);
}
END_TEST

Suite *vision_suite(void)
{
	Suite *s = suite_create("vision");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_picture);
	tcase_add_test(tc, test_photo);
	tcase_add_test(tc, test_refused);
	suite_add_tcase(s, tc);
	return s;
}
