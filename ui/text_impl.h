/* ui/text_impl.h — display width, grapheme clusters and wrapping (ui/text.c).
 *
 * The only place that knows about utf8proc.  Byte offsets everywhere; a
 * "grapheme" is an extended grapheme cluster (UAX #29) as utf8proc defines
 * it.  Width policy (documented once here, used by every view):
 *   - a grapheme is as wide as its first code point (utf8proc_charwidth);
 *   - ... except: a cluster with U+FE0F (emoji presentation) or starting with
 *     a regional indicator is 2 wide; TAB is UI_TEXT_TAB_WIDTH wide (drawn as
 *     spaces); other C0/C1 controls and invalid bytes are 1 wide (drawn as
 *     U+FFFD); private-use code points are 1 wide (tmux's policy);
 *   - zero-width clusters (a lone ZWJ, ZWSP) are 0 wide and not drawn.
 * Pure functions, thread-safe.
 */
#ifndef TERN_UI_TEXT_IMPL_H
#define TERN_UI_TEXT_IMPL_H

#include <stddef.h>

#define UI_TEXT_TAB_WIDTH 4

/* End of the grapheme starting at s[pos] (pos < n); its width in *width
 * (may be NULL).  '\n' is its own grapheme of width 0. */
size_t ui_text_next(const char *s, size_t n, size_t pos, int *width);
/* Start of the grapheme that ends at pos (pos > 0), i.e. the previous
 * cursor stop.  Scans from the start of pos's line: O(line length). */
size_t ui_text_prev(const char *s, size_t n, size_t pos);
/* Display width of s[0..n) ('\n' counts 0). */
int ui_text_width(const char *s, size_t n);
/* Bytes to draw for the grapheme s[a..b): the bytes themselves, spaces for
 * TAB, U+FFFD for controls and invalid bytes.  Writes at most cap-1 bytes
 * and a NUL; returns the length (0 when not drawn). */
size_t ui_text_display(const char *s, size_t a, size_t b, char *out, size_t cap);
/* 1 when the grapheme at s[a..b) is a space or tab (a word separator). */
int ui_text_is_space(const char *s, size_t a, size_t b);

/* A wrapped row: bytes [start, end) of the source, `width` columns. */
struct ui_span {
	size_t start, end;
	int width;
};
/* Growable list of spans; zero-initialise, free with ui_spans_fini. */
struct ui_spans {
	struct ui_span *v;
	size_t n, cap;
};
void ui_spans_fini(struct ui_spans *sp);

/* Wrap s[0..n) into rows of at most `width` columns (width < 1 acts as 1).
 * '\n' forces a break (it belongs to no row); every paragraph gives at
 * least one row, so "" gives one empty row and "a\n" two.
 * word != 0: break after spaces (spaces at a soft break are dropped, leading
 * spaces of a paragraph kept); a word longer than the row is broken between
 * graphemes.  word == 0: break between any graphemes (editor rows: no byte
 * is dropped, so every offset maps to a row).  A grapheme wider than the
 * whole row gets a row of its own.  Appends to *out (does not clear it). */
void ui_text_wrap(const char *s, size_t n, int width, int word, struct ui_spans *out);

#endif
