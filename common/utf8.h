/* common/utf8.h — small UTF-8 helpers (validation, decoding) used by the
 * tokenizer's streaming decoder and the UI.  Width and grapheme questions go
 * to utf8proc in ui/text.c; this file needs no library.  Pure functions,
 * thread-safe. */
#ifndef TERN_COMMON_UTF8_H
#define TERN_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decode one code point from s[0..n).  Returns its length in bytes (1..4)
 * and stores the code point, or returns -1 for an invalid or truncated
 * sequence (overlongs, surrogates and > U+10FFFF are invalid). */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Encode cp into out (at least 4 bytes); returns the length, or 0 when cp is
 * not a Unicode scalar value. */
int utf8_encode(uint32_t cp, char *out);

/* Length of the longest prefix of s[0..n) that ends on a complete code point
 * boundary, treating a trailing *incomplete but so far valid* sequence as not
 * yet complete.  Bytes that can never become valid count as complete (they
 * are passed through so that a stream never stalls). */
size_t utf8_complete_prefix(const char *s, size_t n);

/* 1 when s[0..n) is entirely valid UTF-8. */
int utf8_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
