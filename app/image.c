/* app/image.c — see image.h.  Decoders report every libpng/libjpeg error
 * through the diag (setjmp-based error exits), never by exiting. */
#include "config.h"

#include "app/image.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/xalloc.h"

static int decode_png(const char *path, const uint8_t *buf, size_t len,
		      uint8_t **rgb, int *w, int *h, struct diag *d)
{
	png_image img;
	uint8_t *px;

	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, buf, len))
		return diag_fail(d, -1, "%s: %s", path, img.message);
	if ((uint64_t)img.width * img.height > APP_IMAGE_MAX_PIXELS || !img.width || !img.height) {
		png_image_free(&img);
		return diag_fail(d, -1, "%s: %ux%u image is too large (at most %u pixels)",
				 path, img.width, img.height, APP_IMAGE_MAX_PIXELS);
	}
	img.format = PNG_FORMAT_RGB; /* alpha composited on black by libpng */
	px = malloc(PNG_IMAGE_SIZE(img));
	if (!px) {
		png_image_free(&img);
		return diag_fail(d, -1, "%s: out of memory", path);
	}
	if (!png_image_finish_read(&img, NULL, px, 0, NULL)) {
		free(px);
		return diag_fail(d, -1, "%s: %s", path, img.message);
	}
	*rgb = px;
	*w = (int)img.width;
	*h = (int)img.height;
	return 0;
}

struct jerr {
	struct jpeg_error_mgr mgr;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail(j_common_ptr c)
{
	struct jerr *e = (struct jerr *)c->err;

	c->err->format_message(c, e->msg);
	longjmp(e->jb, 1);
}

static void jpeg_warn(j_common_ptr c, int level)
{
	/* Corrupt-data warnings (level -1) mean a damaged file: treat as an
	 * error rather than showing a half-grey picture. */
	if (level < 0 && c->err->num_warnings++ == 0) {
		struct jerr *e = (struct jerr *)c->err;

		c->err->format_message(c, e->msg);
		longjmp(e->jb, 1);
	}
}

/* c with errors, and corrupt-data warnings, that longjmp to err->jb (the
 * caller's setjmp, made right after). */
static void jpeg_prepare(struct jpeg_decompress_struct *c, struct jerr *err)
{
	memset(c, 0, sizeof *c);
	c->err = jpeg_std_error(&err->mgr);
	err->mgr.error_exit = jpeg_fail;
	err->mgr.emit_message = jpeg_warn;
}

/* Create c over the JPEG in buf and read its header (errors longjmp). */
static void jpeg_header(struct jpeg_decompress_struct *c, const uint8_t *buf, size_t len)
{
	jpeg_create_decompress(c);
	jpeg_mem_src(c, buf, (unsigned long)len);
	jpeg_read_header(c, TRUE);
}

static int decode_jpeg(const char *path, const uint8_t *buf, size_t len,
		       uint8_t **rgb, int *w, int *h, struct diag *d)
{
	struct jpeg_decompress_struct c;
	struct jerr err;
	uint8_t *volatile px = NULL;

	jpeg_prepare(&c, &err);
	if (setjmp(err.jb)) {
		jpeg_destroy_decompress(&c);
		free(px);
		return diag_fail(d, -1, "%s: %s", path, err.msg);
	}
	jpeg_header(&c, buf, len);
	if ((uint64_t)c.image_width * c.image_height > APP_IMAGE_MAX_PIXELS) {
		unsigned iw = c.image_width, ih = c.image_height;

		jpeg_destroy_decompress(&c);
		return diag_fail(d, -1, "%s: %ux%u image is too large (at most %u pixels)",
				 path, iw, ih, APP_IMAGE_MAX_PIXELS);
	}
	c.out_color_space = JCS_RGB;
	jpeg_start_decompress(&c);
	px = malloc((size_t)c.output_width * c.output_height * 3);
	if (!px) {
		jpeg_destroy_decompress(&c);
		return diag_fail(d, -1, "%s: out of memory", path);
	}
	while (c.output_scanline < c.output_height) {
		JSAMPROW row = px + (size_t)c.output_scanline * c.output_width * 3;

		jpeg_read_scanlines(&c, &row, 1);
	}
	jpeg_finish_decompress(&c);
	*w = (int)c.output_width;
	*h = (int)c.output_height;
	jpeg_destroy_decompress(&c);
	*rgb = px;
	return 0;
}

int app_image_decode(const char *path, uint8_t **rgb, int *w, int *h,
		     struct diag *d)
{
	char *buf;
	size_t len;
	int rc;

	*rgb = NULL;
	if (file_read_all(path, 256u << 20, &buf, &len, d) < 0)
		return -1;
	if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0)
		rc = decode_png(path, (const uint8_t *)buf, len, rgb, w, h, d);
	else if (len >= 3 && memcmp(buf, "\xff\xd8\xff", 3) == 0)
		rc = decode_jpeg(path, (const uint8_t *)buf, len, rgb, w, h, d);
	else
		rc = diag_fail(d, -1, "%s: not a PNG or JPEG image", path);
	free(buf);
	return rc;
}

int app_image_size(const char *path, int *w, int *h, struct diag *d)
{
	char *buf;
	size_t len;
	int rc = 0;

	if (file_read_all(path, 256u << 20, &buf, &len, d) < 0)
		return -1;
	if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0) {
		png_image img;

		memset(&img, 0, sizeof img);
		img.version = PNG_IMAGE_VERSION;
		if (!png_image_begin_read_from_memory(&img, buf, len)) {
			rc = diag_fail(d, -1, "%s: %s", path, img.message);
		} else {
			*w = (int)img.width;
			*h = (int)img.height;
			png_image_free(&img);
		}
	} else if (len >= 3 && memcmp(buf, "\xff\xd8\xff", 3) == 0) {
		struct jpeg_decompress_struct c;
		struct jerr err;

		jpeg_prepare(&c, &err);
		if (setjmp(err.jb)) {
			jpeg_destroy_decompress(&c);
			free(buf);
			return diag_fail(d, -1, "%s: %s", path, err.msg);
		}
		jpeg_header(&c, (const uint8_t *)buf, len);
		*w = (int)c.image_width;
		*h = (int)c.image_height;
		jpeg_destroy_decompress(&c);
	} else {
		rc = diag_fail(d, -1, "%s: not a PNG or JPEG image", path);
	}
	free(buf);
	return rc;
}

int app_image_thumbnail(const char *path, int max_w, int max_h, uint8_t **rgb,
			int *w, int *h, struct diag *d)
{
	uint8_t *src, *dst;
	int sw, sh, tw, th, x, y;

	if (app_image_decode(path, &src, &sw, &sh, d) < 0)
		return -1;
	tw = sw;
	th = sh;
	if (tw > max_w) {
		th = (int)((long)th * max_w / tw);
		tw = max_w;
	}
	if (th > max_h) {
		tw = (int)((long)tw * max_h / th);
		th = max_h;
	}
	if (tw < 1)
		tw = 1;
	if (th < 1)
		th = 1;
	dst = xmalloc((size_t)tw * th * 3);
	/* Box filter: average the source pixels that map to each target. */
	for (y = 0; y < th; y++) {
		int y0 = (int)((long)y * sh / th), y1 = (int)((long)(y + 1) * sh / th);

		if (y1 <= y0)
			y1 = y0 + 1;
		for (x = 0; x < tw; x++) {
			int x0 = (int)((long)x * sw / tw), x1 = (int)((long)(x + 1) * sw / tw);
			unsigned long acc[3] = { 0, 0, 0 }, n = 0;
			int yy, xx, ch;

			if (x1 <= x0)
				x1 = x0 + 1;
			for (yy = y0; yy < y1; yy++)
				for (xx = x0; xx < x1; xx++, n++)
					for (ch = 0; ch < 3; ch++)
						acc[ch] += src[((size_t)yy * sw + xx) * 3 + ch];
			for (ch = 0; ch < 3; ch++)
				dst[((size_t)y * tw + x) * 3 + ch] = (uint8_t)(acc[ch] / n);
		}
	}
	free(src);
	*rgb = dst;
	*w = tw;
	*h = th;
	return 0;
}

int app_image_store(const char *path, const char *dir, char **name,
		    struct diag *d)
{
	uint64_t hsh = 1469598103934665603ull;
	const char *ext;
	char *buf, *dst, fname[64];
	size_t len, i;
	int rc = 0;

	*name = NULL;
	if (file_read_all(path, 256u << 20, &buf, &len, d) < 0)
		return -1;
	for (i = 0; i < len; i++) {
		hsh ^= (uint8_t)buf[i];
		hsh *= 1099511628211ull;
	}
	ext = len >= 8 && memcmp(buf, "\x89PNG", 4) == 0 ? "png" : "jpg";
	snprintf(fname, sizeof fname, "%016llx.%s", (unsigned long long)hsh, ext);
	if (file_mkdirs(dir, d) < 0) {
		free(buf);
		return -1;
	}
	dst = file_join(dir, fname);
	if (!file_is_file(dst))
		rc = file_write_atomic(dst, buf, len, d) < 0 ? -1 : 0;
	free(dst);
	free(buf);
	if (rc == 0)
		*name = xstrdup(fname);
	return rc;
}
