/* tests/app/test_image.c — image decoding for the attach pane against
 * pixel values read by an independent decoder (Pillow 9.4, see
 * tests/data/README.md): palette, grayscale, RGBA (composited on black) PNGs,
 * a baseline JPEG, a truncated JPEG (clear error), thumbnails, and storing by
 * content hash.  And the vision model's image processor
 * (llm_vision_preprocess) on the decoded qwen2_5_vl fixture images against
 * the pixel_values transformers' Qwen2VLImageProcessor made of them, with
 * the pixel bounds the reference used (reference.safetensors metadata). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "app/image.h"
#include "common/file.h"
#include "inference/llm.h"
#include "stfile.h"
#include "testutil.h"

struct px { int x, y, r, g, b; };

static void check_image(const char *rel, int w, int h, const struct px *p, int n, int tol)
{
	char *path = test_data_path(rel);
	uint8_t *rgb;
	struct diag d;
	int iw, ih, i;

	ck_assert_msg(app_image_decode(path, &rgb, &iw, &ih, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(iw, w);
	ck_assert_int_eq(ih, h);
	for (i = 0; i < n; i++) {
		const uint8_t *q = rgb + ((size_t)p[i].y * iw + p[i].x) * 3;

		ck_assert_msg(abs(q[0] - p[i].r) <= tol && abs(q[1] - p[i].g) <= tol &&
			      abs(q[2] - p[i].b) <= tol,
			      "%s (%d,%d): got %d,%d,%d want %d,%d,%d", rel, p[i].x, p[i].y,
			      q[0], q[1], q[2], p[i].r, p[i].g, p[i].b);
	}
	free(rgb);
	free(path);
}

START_TEST(test_png_palette)
{
	static const struct px p[] = { { 0, 0, 51, 0, 255 }, { 9, 9, 102, 0, 204 },
				       { 5, 3, 153, 153, 51 }, { 3, 5, 102, 204, 0 } };

	check_image("images/skimage-palette_color.png", 10, 10, p, 4, 0);
}
END_TEST

START_TEST(test_png_gray)
{
	static const struct px p[] = { { 0, 0, 200, 200, 200 }, { 511, 511, 149, 149, 149 },
				       { 256, 170, 218, 218, 218 }, { 170, 256, 27, 27, 27 } };

	check_image("images/skimage-camera.png", 512, 512, p, 4, 0);
}
END_TEST

START_TEST(test_png_rgba)
{
	static const struct px p[] = { { 0, 0, 255, 255, 255 }, { 499, 499, 255, 255, 255 },
				       { 250, 166, 255, 127, 25 }, { 166, 250, 105, 140, 52 } };

	check_image("images/skimage-logo.png", 500, 500, p, 4, 2);
}
END_TEST

START_TEST(test_jpeg)
{
	static const struct px p[] = { { 0, 0, 17, 33, 58 }, { 639, 426, 83, 61, 37 },
				       { 320, 142, 93, 85, 82 }, { 213, 213, 53, 75, 114 } };

	check_image("images/skimage-rocket.jpg", 640, 427, p, 4, 2);
}
END_TEST

START_TEST(test_bad_files)
{
	char *path = test_data_path("images/skimage-truncated.jpg");
	uint8_t *rgb = NULL;
	struct diag d;
	int w, h;

	ck_assert_int_eq(app_image_decode(path, &rgb, &w, &h, &d), -1);
	ck_assert_ptr_null(rgb);
	ck_assert_ptr_nonnull(strstr(d.msg, "skimage-truncated.jpg"));
	free(path);
	path = test_data_path("README.md");
	ck_assert_int_eq(app_image_decode(path, &rgb, &w, &h, &d), -1);
	ck_assert_ptr_nonnull(strstr(d.msg, "not a PNG or JPEG"));
	free(path);
	ck_assert_int_eq(app_image_decode("/nonexistent.png", &rgb, &w, &h, &d), -1);
}
END_TEST

START_TEST(test_thumbnail_and_store)
{
	char *path = test_data_path("images/skimage-rocket.jpg");
	char dir[] = "/tmp/tern-img-XXXXXX", *name = NULL, *name2 = NULL, cmd[128];
	uint8_t *rgb;
	struct diag d;
	int w, h;

	ck_assert_int_eq(app_image_thumbnail(path, 48, 24, &rgb, &w, &h, &d), 0);
	/* 640x427 fits 48 wide first (48x32), then 24 high: 36x24. */
	ck_assert_int_eq(w, 36);
	ck_assert_int_eq(h, 24);
	free(rgb);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(app_image_store(path, dir, &name, &d), 0);
	ck_assert_int_eq(app_image_store(path, dir, &name2, &d), 0);
	ck_assert_str_eq(name, name2); /* same bytes, same name */
	ck_assert_uint_eq(strlen(name), 16 + 4);
	ck_assert_str_eq(name + 16, ".jpg");
	free(name);
	free(name2);
	free(path);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A PNG of W x H gray pixels at PATH (through libpng's writer). */
void test_write_png(const char *path, int w, int h);
void test_write_png(const char *path, int w, int h)
{
	png_image img;
	uint8_t *px = calloc((size_t)w * h, 1);

	ck_assert_ptr_nonnull(px);
	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	img.width = (png_uint_32)w;
	img.height = (png_uint_32)h;
	img.format = PNG_FORMAT_GRAY;
	ck_assert_msg(png_image_write_to_file(&img, path, 0, px, 0, NULL), "%s", img.message);
	free(px);
}

/* app_image_size reads the size from the header (PNG, JPEG); the vision
 * tower's limit (llm_vision_check_size, no model needed) refuses what
 * llm_vision_fit refuses: a 10000 x 1 PNG decodes fine but cannot be
 * read by the vision model, which the chat checks when it is attached. */
START_TEST(test_size_and_vision_limit)
{
	char *jpg = test_data_path("images/skimage-rocket.jpg");
	char *png = test_data_path("images/skimage-camera.png");
	char wide[] = "/tmp/tern-wide-XXXXXX.png";
	struct diag d;
	int w = 0, h = 0, fd;

	ck_assert_msg(app_image_size(jpg, &w, &h, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(w, 640);
	ck_assert_int_eq(h, 427);
	ck_assert_msg(app_image_size(png, &w, &h, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(w, 512);
	ck_assert_int_eq(h, 512);
	fd = mkstemps(wide, 4);
	ck_assert_int_ge(fd, 0);
	close(fd);
	test_write_png(wide, 10000, 1);
	ck_assert_msg(app_image_size(wide, &w, &h, &d) == 0, "%s", d.msg);
	ck_assert_int_eq(w, 10000);
	ck_assert_int_eq(h, 1);
	ck_assert_int_eq(llm_vision_check_size(w, h, &d), LLM_E_INVALID);
	ck_assert_msg(strstr(d.msg, "10000 x 1") != NULL, "%s", d.msg);
	ck_assert_int_eq(llm_vision_check_size(640, 427, &d), 0);
	ck_assert_int_eq(llm_vision_check_size(200, 1, &d), 0);
	ck_assert_int_eq(llm_vision_check_size(1, 201, &d), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_check_size(0, 5, &d), LLM_E_INVALID);
	ck_assert_int_lt(app_image_size("/nonexistent.png", &w, &h, &d), 0);
	unlink(wide);
	free(jpg);
	free(png);
}
END_TEST

static void check_pixels(const char *png, const char *suffix, size_t min_px,
			 size_t max_px)
{
	char *path = test_data_path(png), *dir = test_data_path("models/qwen2_5_vl");
	struct test_st ref;
	struct llm_vision *v = NULL;
	struct diag d;
	uint8_t *rgb;
	float *px = NULL;
	const float *want;
	int32_t grid[3];
	const int32_t *wg;
	long long shape[2];
	char name[64];
	size_t n = 0, i, bad = 0;
	float md = 0.0f;
	int w, h;

	diag_clear(&d);
	ck_assert_msg(app_image_decode(path, &rgb, &w, &h, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	ck_assert_msg(llm_vision_preprocess(v, rgb, w, h, min_px, max_px, &px, &n, grid,
					    &d) == 0, "%s", d.msg);
	test_st_open(&ref, "models/qwen2_5_vl/reference.safetensors");
	snprintf(name, sizeof name, "image_grid_thw%s", suffix);
	wg = test_st_get(&ref, name, "I32", 2, NULL, NULL);
	ck_assert_msg(grid[0] == wg[0] && grid[1] == wg[1] && grid[2] == wg[2],
		      "%s: grid %d x %d x %d, transformers %d x %d x %d", png, grid[0],
		      grid[1], grid[2], wg[0], wg[1], wg[2]);
	snprintf(name, sizeof name, "pixel_values%s", suffix);
	want = test_st_get(&ref, name, "F32", 2, shape, NULL);
	ck_assert_uint_eq(n, (size_t)shape[0]);
	ck_assert_uint_eq(llm_vision_patch_len(v), (size_t)shape[1]);
	for (i = 0; i < n * (size_t)shape[1]; i++) {
		float r;
		const float e = fabsf(px[i] - (memcpy(&r, want + i, sizeof r), r));

		md = fmaxf(md, e);
		bad += e > 1e-5f;
	}
	/* one step of an 8-bit value is 1 / 255 / std ~ 0.015: every pixel
	 * must be PIL's exactly */
	ck_assert_msg(bad == 0, "%s: %zu of %zu values differ, max %g", png, bad,
		      n * (size_t)shape[1], (double)md);
	test_st_close(&ref);
	llm_vision_free(v);
	free(px);
	free(rgb);
	free(path);
	free(dir);
}

START_TEST(test_vision_pixels)
{
	check_pixels("models/qwen2_5_vl/picture.png", "", 3136, 50176);
	check_pixels("models/qwen2_5_vl/skimage-chelsea.png", ".photo", 3136, 200704);
}
END_TEST

START_TEST(test_vision_fit)
{
	char *dir = test_data_path("models/qwen2_5_vl");
	struct llm_vision *v = NULL;
	struct diag d;
	size_t lo, hi;
	int ow, oh;
	float *px;
	size_t n;
	int32_t grid[3];
	uint8_t one[3] = { 1, 2, 3 };

	diag_clear(&d);
	ck_assert_msg(llm_vision_open(dir, &v, &d) == 0, "%s", d.msg);
	/* the fixture's preprocessor_config.json: size.shortest_edge 3136,
	 * size.longest_edge 50176 */
	llm_vision_pixel_bounds(v, &lo, &hi);
	ck_assert_uint_eq(lo, 3136);
	ck_assert_uint_eq(hi, 50176);
	/* Qwen's smart_resize: round half to even (42 / 28 = 1.5 -> 2, 70 /
	 * 28 = 2.5 -> 2), then into the bounds */
	ck_assert_int_eq(llm_vision_fit(v, 70, 42, 0, 1u << 30, &ow, &oh), 0);
	ck_assert_int_eq(ow, 56);
	ck_assert_int_eq(oh, 56);
	ck_assert_int_eq(llm_vision_fit(v, 4000, 3000, 3136, 50176, &ow, &oh), 0);
	ck_assert_int_le(ow * oh, 50176);
	ck_assert_int_eq(ow % 28, 0);
	ck_assert_int_eq(oh % 28, 0);
	ck_assert_int_eq(llm_vision_fit(v, 10, 10, 3136, 50176, &ow, &oh), 0);
	ck_assert_int_ge(ow * oh, 3136);
	/* refused: empty, or beyond 200:1 */
	ck_assert_int_eq(llm_vision_fit(v, 0, 10, 3136, 50176, &ow, &oh), LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_fit(v, 5000, 10, 3136, 50176, &ow, &oh),
			 LLM_E_INVALID);
	ck_assert_int_eq(llm_vision_preprocess(v, one, 1, 0, 0, 0, &px, &n, grid, &d),
			 LLM_E_INVALID);
	ck_assert_ptr_null(px);
	/* a single pixel grows to the minimum area */
	ck_assert_int_eq(llm_vision_preprocess(v, one, 1, 1, 0, 0, &px, &n, grid, &d), 0);
	ck_assert_uint_ge(n * 14 * 14, 3136);
	free(px);
	llm_vision_free(v);
	free(dir);
}
END_TEST

Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_png_palette);
	tcase_add_test(tc, test_size_and_vision_limit);
	tcase_add_test(tc, test_png_gray);
	tcase_add_test(tc, test_png_rgba);
	tcase_add_test(tc, test_jpeg);
	tcase_add_test(tc, test_bad_files);
	tcase_add_test(tc, test_thumbnail_and_store);
	tcase_add_test(tc, test_vision_pixels);
	tcase_add_test(tc, test_vision_fit);
	suite_add_tcase(s, tc);
	return s;
}
