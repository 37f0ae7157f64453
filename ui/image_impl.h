/* ui/image_impl.h — colour mapping, half-block thumbnails, OSC 52 payload
 * (ui/image.c).  Pure functions.
 */
#ifndef TERN_UI_IMAGE_IMPL_H
#define TERN_UI_IMAGE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

/* Nearest xterm-256 colour (16..255: the 6x6x6 cube or the grey ramp; the
 * 16 system colours are avoided because terminals redefine them). */
int ui_color_to_256(uint32_t rgb);
/* Nearest of the 8 basic ANSI colours (for 8/16-colour terminals). */
int ui_color_to_8(uint32_t rgb);

/* A thumbnail cell: the upper and lower half ("▀" with fg = top, bg =
 * bottom), 0xRRGGBB each. */
struct ui_thumb_cell {
	uint32_t top, bottom;
};

/* Scale an RGB image (w*h*3 bytes) to fit cols x rows cells (each cell is
 * one pixel wide and two tall, which is about square on a terminal),
 * keeping the aspect ratio, by box-averaging.  Writes *out_cols x *out_rows
 * cells row-major into out (capacity cols*rows).  Sizes <= 0 give 0x0. */
void ui_thumb_make(const uint8_t *rgb, int w, int h, int cols, int rows, struct ui_thumb_cell *out,
		   int *out_cols, int *out_rows);

/* Append the OSC 52 "set clipboard" sequence for text to sb:
 * ESC ] 52 ; c ; BASE64 BEL. */
void ui_osc52_encode(const char *text, size_t len, struct strbuf *sb);
/* RFC 4648 base64 (with padding) of data, appended to sb. */
void ui_base64_encode(const uint8_t *data, size_t len, struct strbuf *sb);

#endif
