/* ui/image.c — nearest-colour mapping, half-block thumbnails, OSC 52.
 *
 * The app decodes images (libpng/libjpeg); the UI only gets RGB pixels and
 * reduces them to terminal cells here.  Colour distances are plain squared
 * RGB distances: good enough for a preview, and cheap.
 */
#include "config.h"

#include "ui/image_impl.h"

#include <string.h>

static const int cube[6] = { 0, 95, 135, 175, 215, 255 };

static int dist2(int r1, int g1, int b1, int r2, int g2, int b2)
{
	return (r1 - r2) * (r1 - r2) + (g1 - g2) * (g1 - g2) + (b1 - b2) * (b1 - b2);
}

static int cube_idx(int v)
{
	/* midpoints between levels 0|95|135|175|215|255 */
	if (v < 48)
		return 0;
	if (v < 115)
		return 1;
	return (v - 35) / 40;
}

int ui_color_to_256(uint32_t rgb)
{
	int r = (int)(rgb >> 16 & 255), g = (int)(rgb >> 8 & 255), b = (int)(rgb & 255);
	int ri = cube_idx(r), gi = cube_idx(g), bi = cube_idx(b);
	int avg = (r + g + b) / 3, gr, gv;

	gr = avg > 238 ? 23 : avg < 8 ? 0 : (avg - 3) / 10;
	if (gr > 23)
		gr = 23;
	gv = 8 + 10 * gr;
	if (dist2(r, g, b, gv, gv, gv) < dist2(r, g, b, cube[ri], cube[gi], cube[bi]))
		return 232 + gr;
	return 16 + 36 * ri + 6 * gi + bi;
}

int ui_color_to_8(uint32_t rgb)
{
	static const int pal[8][3] = { { 0, 0, 0 },     { 205, 0, 0 },   { 0, 205, 0 },
				       { 205, 205, 0 }, { 0, 0, 238 },   { 205, 0, 205 },
				       { 0, 205, 205 }, { 229, 229, 229 } };
	int r = (int)(rgb >> 16 & 255), g = (int)(rgb >> 8 & 255), b = (int)(rgb & 255);
	int best = 0, bd = 1 << 30;

	for (int i = 0; i < 8; i++) {
		int d = dist2(r, g, b, pal[i][0], pal[i][1], pal[i][2]);
		if (d < bd) {
			bd = d;
			best = i;
		}
	}
	return best;
}

/* Average of the source box [x0,x1) x [y0,y1) (clamped non-empty). */
static uint32_t box(const uint8_t *rgb, int w, int x0, int x1, int y0, int y1)
{
	unsigned long s[3] = { 0, 0, 0 }, n = 0;

	if (x1 <= x0)
		x1 = x0 + 1;
	if (y1 <= y0)
		y1 = y0 + 1;
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++) {
			const uint8_t *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
			s[0] += p[0];
			s[1] += p[1];
			s[2] += p[2];
			n++;
		}
	return (uint32_t)((s[0] + n / 2) / n) << 16 | (uint32_t)((s[1] + n / 2) / n) << 8 |
	       (uint32_t)((s[2] + n / 2) / n);
}

void ui_thumb_make(const uint8_t *rgb, int w, int h, int cols, int rows, struct ui_thumb_cell *out,
		   int *out_cols, int *out_rows)
{
	int tw, th; /* target size in pixels: tw x th, th = 2 * rows */

	*out_cols = *out_rows = 0;
	if (!rgb || w <= 0 || h <= 0 || cols <= 0 || rows <= 0)
		return;
	/* fit w x h into cols x (2*rows) pixels keeping aspect; never upscale */
	tw = cols;
	th = (int)((long)h * tw / w);
	if (th > 2 * rows) {
		th = 2 * rows;
		tw = (int)((long)w * th / h);
	}
	if (tw > w) {
		tw = w;
		th = h;
	}
	if (tw < 1)
		tw = 1;
	if (th < 1)
		th = 1;
	*out_cols = tw;
	*out_rows = (th + 1) / 2;
	for (int cy = 0; cy < *out_rows; cy++) {
		for (int cx = 0; cx < tw; cx++) {
			int x0 = (int)((long)cx * w / tw), x1 = (int)((long)(cx + 1) * w / tw);
			int py = 2 * cy;
			int y0 = (int)((long)py * h / th), y1 = (int)((long)(py + 1) * h / th);
			struct ui_thumb_cell *c = &out[cy * tw + cx];
			c->top = box(rgb, w, x0, x1, y0, y1 < h ? y1 : h);
			if (py + 1 < th) {
				int y2 = (int)((long)(py + 2) * h / th);
				c->bottom = box(rgb, w, x0, x1, y1 < h ? y1 : h - 1, y2 < h ? y2 : h);
			} else {
				c->bottom = c->top;
			}
		}
	}
}

void ui_base64_encode(const uint8_t *d, size_t n, struct strbuf *sb)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		char q[4] = { tab[v >> 18], tab[v >> 12 & 63], tab[v >> 6 & 63], tab[v & 63] };
		strbuf_append(sb, q, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)d[i] << 16;
		char q[4] = { tab[v >> 18], tab[v >> 12 & 63], '=', '=' };
		strbuf_append(sb, q, 4);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
		char q[4] = { tab[v >> 18], tab[v >> 12 & 63], tab[v >> 6 & 63], '=' };
		strbuf_append(sb, q, 4);
	}
}

void ui_osc52_encode(const char *text, size_t len, struct strbuf *sb)
{
	strbuf_puts(sb, "\033]52;c;");
	ui_base64_encode((const uint8_t *)text, len, sb);
	strbuf_putc(sb, '\a');
}
