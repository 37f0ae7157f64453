/* common/diag.h — error context shared by every layer.
 *
 * A fallible function returns 0 or a negative LAYER_E_* code and, when the
 * caller passed a non-NULL `struct diag *`, writes a human-readable message
 * ("model.safetensors: tensor 'x' ends past end of file") into it.  Libraries
 * never print; the application decides where messages go.
 *
 * Invariant: `msg` is always NUL-terminated; an empty message means "no
 * context recorded".  A diag is plain data: copy it, stack-allocate it, no
 * cleanup needed.  Not thread-safe to share one diag between threads.
 */
#ifndef TERN_COMMON_DIAG_H
#define TERN_COMMON_DIAG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIAG_MSG_MAX 512

struct diag {
	int code;               /* last error code recorded (0 = none) */
	char msg[DIAG_MSG_MAX]; /* "where: what", NUL-terminated */
};

#if defined(__GNUC__)
#define DIAG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DIAG_PRINTF(a, b)
#endif

/* Reset to "no error".  d may be NULL. */
void diag_clear(struct diag *d);

/* Record code and a printf-style message, replacing any previous one.
 * Returns `code` so that callers can write `return diag_fail(d, E, ...)`.
 * d may be NULL (then only the code is returned). */
int diag_fail(struct diag *d, int code, const char *fmt, ...) DIAG_PRINTF(3, 4);
int diag_vfail(struct diag *d, int code, const char *fmt, va_list ap);

/* Prepend context to an existing message: "ctx: old message".  Keeps the
 * code.  Useful when unwinding ("config.json: " + "key 'x': not a number").
 * d may be NULL. */
void diag_prefix(struct diag *d, const char *fmt, ...) DIAG_PRINTF(2, 3);

/* The message, or `fallback` when none was recorded.  Never NULL when
 * fallback is non-NULL. */
const char *diag_message(const struct diag *d, const char *fallback);

#ifdef __cplusplus
}
#endif
#endif
