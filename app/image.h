/* app/image.h — images picked in the attach pane: decoding (libpng,
 * libjpeg-turbo) for the preview thumbnail, and copying an attachment into
 * the data directory under its content hash. */
#ifndef TERN_APP_IMAGE_H
#define TERN_APP_IMAGE_H

#include <stdint.h>

#include "common/diag.h"

/* Largest image accepted (pixels); larger ones are refused, not decoded. */
#define APP_IMAGE_MAX_PIXELS (64u * 1024 * 1024)

/* Decode PATH (PNG: gray, gray+alpha, RGB, RGBA, palette, 16-bit; JPEG:
 * baseline/progressive, gray/RGB/CMYK) to 8-bit RGB: *rgb (w*h*3 bytes,
 * free() it).  Errors (-1, message in d naming the file): unreadable,
 * neither PNG nor JPEG, truncated/corrupt, over APP_IMAGE_MAX_PIXELS. */
int app_image_decode(const char *path, uint8_t **rgb, int *w, int *h,
		     struct diag *d);
/* The size of image PATH (PNG or JPEG) from its header, nothing decoded.
 * Errors (-1, message in d naming the file) as app_image_decode's. */
int app_image_size(const char *path, int *w, int *h, struct diag *d);
/* Decode and shrink (box filter, aspect kept) to fit MAX_W x MAX_H. */
int app_image_thumbnail(const char *path, int max_w, int max_h, uint8_t **rgb,
			int *w, int *h, struct diag *d);
/* Copy PATH into DIR as HASH.EXT (FNV-1a 64 of the bytes); *name is the
 * file name (free() it).  An existing copy is reused. */
int app_image_store(const char *path, const char *dir, char **name,
		    struct diag *d);

#endif
