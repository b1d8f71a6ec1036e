/* SPDX-License-Identifier: Apache-2.0 */
/* Clocks: a monotonic one for durations and latency, the wall clock for what clients see. */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Microseconds on CLOCK_MONOTONIC: for intervals only, never shown to clients. */
static inline uint64_t rc_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/** Milliseconds since the Unix epoch (CLOCK_REALTIME). */
static inline int64_t rc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
