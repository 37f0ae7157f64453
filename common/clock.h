/* common/clock.h — monotonic time for rates and timeouts. Thread-safe. */
#ifndef TERN_COMMON_CLOCK_H
#define TERN_COMMON_CLOCK_H

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
uint64_t clock_now_ns(void);
/* Seconds as a double, same origin. */
double clock_now_s(void);

#endif
