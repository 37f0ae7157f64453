/* tests/app/test_image.c — image decoding for the attach pane against
 * pixel values read by an independent decoder (Pillow 9.4, see
 * tests/data/README.md): palette, grayscale, RGBA (composited on black) PNGs,
 * a baseline JPEG, a truncated JPEG (clear error), thumbnails, and storing by
 * content hash. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/image.h"
#include "common/file.h"
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

Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_png_palette);
	tcase_add_test(tc, test_png_gray);
	tcase_add_test(tc, test_png_rgba);
	tcase_add_test(tc, test_jpeg);
	tcase_add_test(tc, test_bad_files);
	tcase_add_test(tc, test_thumbnail_and_store);
	suite_add_tcase(s, tc);
	return s;
}
