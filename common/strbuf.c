/* common/strbuf.c — see strbuf.h. */
#include "config.h"

#include "common/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(struct strbuf *sb, size_t max)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->max = max;
}

void strbuf_fini(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

int strbuf_reserve(struct strbuf *sb, size_t extra)
{
	size_t max = sb->max ? sb->max : STRBUF_DEFAULT_MAX;
	size_t need, ncap;
	char *p;

	if (extra > max || sb->len > max - extra)
		return -1;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	ncap = sb->cap ? sb->cap : 64;
	while (ncap < need)
		ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
	p = realloc(sb->data, ncap);
	if (!p)
		return -1;
	sb->data = p;
	sb->cap = ncap;
	return 0;
}

int strbuf_append(struct strbuf *sb, const void *p, size_t n)
{
	if (strbuf_reserve(sb, n) < 0)
		return -1;
	if (n)
		memcpy(sb->data + sb->len, p, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
	return 0;
}

int strbuf_puts(struct strbuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

int strbuf_putc(struct strbuf *sb, char c)
{
	return strbuf_append(sb, &c, 1);
}

int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || strbuf_reserve(sb, (size_t)n) < 0)
		return -1;
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return rc;
}

const char *strbuf_cstr(const struct strbuf *sb)
{
	return sb->data ? sb->data : "";
}

char *strbuf_take(struct strbuf *sb, size_t *len)
{
	char *p;

	if (!sb->data && strbuf_reserve(sb, 0) < 0)
		return NULL;
	if (!sb->data)
		return NULL;
	sb->data[sb->len] = '\0';
	p = sb->data;
	if (len)
		*len = sb->len;
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
	return p;
}
