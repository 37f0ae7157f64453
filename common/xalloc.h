/* common/xalloc.h — allocate or abort, for app/, ui/ and themes/ only.
 *
 * The engine (inference/, gpu/) must return LLM_E_NOMEM / GPU_E_NOMEM
 * instead; these wrappers are for interactive code where running out of
 * memory for a 40-byte UI string has no useful recovery.  They print one line
 * to stderr and abort(); the terminal is restored by the app's atexit/signal
 * handlers.
 */
#ifndef TERN_COMMON_XALLOC_H
#define TERN_COMMON_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
