/* gpu/cuda/switches.h — the CUDA backend's measurement switches: environment
 * variables that turn a fused path off or force a launch shape, so that two
 * forms can be timed against each other in one process (docs/PERFORMANCE.md
 * names each where it was measured).  Not user configuration: the defaults
 * are the measured best, and none of these is documented in the README.
 *
 * One reading for every switch of the backend, from C (the host files) and
 * from CUDA C++ (the kernel files' launch wrappers).  The helpers only read
 * the environment; callers cache the result where they run per step.  They
 * allocate nothing and cannot fail. */
#ifndef TERN_GPU_CUDA_SWITCHES_H
#define TERN_GPU_CUDA_SWITCHES_H

#include <stdlib.h>
#include <string.h>

/* A default-on switch: on unless `name` is set to exactly "0". */
static inline int tern_switch_on(const char *name)
{
	const char *e = getenv(name);

	return !(e && !strcmp(e, "0"));
}

/* Whether `name` is set to exactly `val`. */
static inline int tern_switch_is(const char *name, const char *val)
{
	const char *e = getenv(name);

	return e && !strcmp(e, val);
}

/* The decimal number in `name`, or -1 when it is unset or empty (strtol's
 * reading: leading digits, 0 when there are none). */
static inline long tern_switch_long(const char *name)
{
	const char *e = getenv(name);

	return e && *e ? strtol(e, NULL, 10) : -1;
}

#endif
