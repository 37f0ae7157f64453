/* tests/ui/test_image.c — palette mapping (xterm formula), thumbnails,
 * base64 (RFC 4648 §10 test vectors) and the OSC 52 sequence. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ui/image_impl.h"

START_TEST(test_palette)
{
	ck_assert_int_eq(ui_color_to_256(0xff0000), 196);
	ck_assert_int_eq(ui_color_to_256(0x000000), 16);
	ck_assert_int_eq(ui_color_to_256(0xffffff), 231);
	ck_assert_int_eq(ui_color_to_256(0x5f87af), 67);  /* exact cube colour */
	ck_assert_int_eq(ui_color_to_256(0x808080), 244); /* grey 8+10*12 = 128 */
	ck_assert_int_eq(ui_color_to_256(0x121212), 233); /* grey 18 */
	ck_assert_int_eq(ui_color_to_8(0xee1010), 1);
	ck_assert_int_eq(ui_color_to_8(0x101010), 0);
}
END_TEST

START_TEST(test_thumb)
{
	/* 4x4: rows 0-1 red, rows 2-3 blue -> 4 cols x 2 rows of cells:
	 * first row red/red, second blue/blue */
	uint8_t img[4 * 4 * 3];
	struct ui_thumb_cell cells[40];
	int cw, ch;

	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 4; x++) {
			uint8_t *p = img + (y * 4 + x) * 3;
			p[0] = y < 2 ? 255 : 0;
			p[1] = 0;
			p[2] = y < 2 ? 0 : 255;
		}
	ui_thumb_make(img, 4, 4, 10, 4, cells, &cw, &ch);
	ck_assert_int_eq(cw, 4); /* never upscaled */
	ck_assert_int_eq(ch, 2);
	ck_assert_uint_eq(cells[0].top, 0xff0000);
	ck_assert_uint_eq(cells[0].bottom, 0xff0000);
	ck_assert_uint_eq(cells[4].top, 0x0000ff);
	ck_assert_uint_eq(cells[7].bottom, 0x0000ff);
	/* downscale 4x4 into 2 columns: each cell averages 2x... rows:
	 * 2 cols x 2 px tall = 1 row; top = red, bottom = blue */
	ui_thumb_make(img, 4, 4, 2, 1, cells, &cw, &ch);
	ck_assert_int_eq(cw, 2);
	ck_assert_int_eq(ch, 1);
	ck_assert_uint_eq(cells[0].top, 0xff0000);
	ck_assert_uint_eq(cells[0].bottom, 0x0000ff);
	/* wide image keeps its aspect: 8x2 into 4 cols -> 4x1 px -> 1 row */
	{
		uint8_t *wide = calloc(8 * 2 * 3, 1);
		ui_thumb_make(wide, 8, 2, 4, 10, cells, &cw, &ch);
		ck_assert_int_eq(cw, 4);
		ck_assert_int_eq(ch, 1);
		free(wide);
	}
	ui_thumb_make(NULL, 4, 4, 2, 2, cells, &cw, &ch);
	ck_assert_int_eq(cw, 0);
}
END_TEST

static void b64(const char *in, const char *want)
{
	struct strbuf sb;

	strbuf_init(&sb, 0);
	ui_base64_encode((const uint8_t *)in, strlen(in), &sb);
	ck_assert_str_eq(strbuf_cstr(&sb), want);
	strbuf_fini(&sb);
}

START_TEST(test_base64_osc52)
{
	struct strbuf sb;

	b64("", "");
	b64("f", "Zg==");
	b64("fo", "Zm8=");
	b64("foo", "Zm9v");
	b64("foob", "Zm9vYg==");
	b64("fooba", "Zm9vYmE=");
	b64("foobar", "Zm9vYmFy");
	strbuf_init(&sb, 0);
	ui_osc52_encode("hi", 2, &sb);
	ck_assert_str_eq(strbuf_cstr(&sb), "\033]52;c;aGk=\a");
	strbuf_fini(&sb);
}
END_TEST

Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_palette);
	tcase_add_test(tc, test_thumb);
	tcase_add_test(tc, test_base64_osc52);
	suite_add_tcase(s, tc);
	return s;
}
