/* common/diag.c — see diag.h. */
#include "config.h"

#include "common/diag.h"

#include <stdio.h>
#include <string.h>

void diag_clear(struct diag *d)
{
	if (!d)
		return;
	d->code = 0;
	d->msg[0] = '\0';
}

int diag_vfail(struct diag *d, int code, const char *fmt, va_list ap)
{
	if (!d)
		return code;
	d->code = code;
	vsnprintf(d->msg, sizeof d->msg, fmt, ap);
	return code;
}

int diag_fail(struct diag *d, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vfail(d, code, fmt, ap);
	va_end(ap);
	return code;
}

void diag_prefix(struct diag *d, const char *fmt, ...)
{
	char pre[DIAG_MSG_MAX];
	char old[DIAG_MSG_MAX];
	va_list ap;

	if (!d)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, d->msg, sizeof old);
	/* Truncation is fine: the message is for people and stays terminated. */
	{
		size_t n = strlen(pre);

		if (n >= sizeof d->msg)
			n = sizeof d->msg - 1;
		memcpy(d->msg, pre, n);
		d->msg[n] = '\0';
		if (old[0] && n + 2 < sizeof d->msg) {
			memcpy(d->msg + n, ": ", 3);
			n += 2;
			strncat(d->msg + n, old, sizeof d->msg - n - 1);
		}
	}
}

const char *diag_message(const struct diag *d, const char *fallback)
{
	if (!d || !d->msg[0])
		return fallback;
	return d->msg;
}
