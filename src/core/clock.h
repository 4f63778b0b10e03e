/* clock.h: monotonic wall time for progress lines and benchmarks. */
#ifndef LOOM_CORE_CLOCK_H
#define LOOM_CORE_CLOCK_H

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin; differences only). */
double clock_now_s(void);

#endif
