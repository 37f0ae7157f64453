/* common/strbuf.h — growable byte buffer, always NUL-terminated.
 *
 * Owns `data`.  A zero-initialised struct strbuf is a valid empty buffer
 * (data may be NULL until the first append; use strbuf_cstr to read).
 * A buffer has a hard cap (`max`, 0 = 1 GiB default) so that untrusted input
 * (templates, tokenizer output) cannot exhaust memory.
 * Appends return 0 or -1 (out of memory / cap exceeded); on failure the
 * contents are unchanged.
 */
#ifndef TERN_COMMON_STRBUF_H
#define TERN_COMMON_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct strbuf {
	char *data;  /* NUL-terminated when non-NULL */
	size_t len;  /* bytes used, excluding the NUL */
	size_t cap;  /* bytes allocated */
	size_t max;  /* hard cap on len; 0 means STRBUF_DEFAULT_MAX */
};

#define STRBUF_DEFAULT_MAX ((size_t)1 << 30)

void strbuf_init(struct strbuf *sb, size_t max);
void strbuf_fini(struct strbuf *sb);       /* frees data; sb reusable */
void strbuf_reset(struct strbuf *sb);      /* len = 0, keeps memory */
int strbuf_reserve(struct strbuf *sb, size_t extra);
int strbuf_append(struct strbuf *sb, const void *p, size_t n);
int strbuf_puts(struct strbuf *sb, const char *s);
int strbuf_putc(struct strbuf *sb, char c);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* Always a valid C string ("" when empty). Borrowed: valid until the next
 * modification of sb. */
const char *strbuf_cstr(const struct strbuf *sb);
/* Hand the buffer to the caller (free() it); sb becomes empty. Never NULL
 * unless out of memory. */
char *strbuf_take(struct strbuf *sb, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
