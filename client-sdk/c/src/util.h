/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the client library: a growable byte buffer with headroom for
 * libwebsockets, clocks, randomness, full-jitter backoff and the protocol's syntax checks.
 * Private to the library. */
#ifndef RCC_UTIL_H
#define RCC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte buffer whose data starts `headroom` bytes into its allocation, so a frame can be
 * handed to lws_write() (which needs LWS_PRE bytes before the payload) without a copy. */
typedef struct rcc_buf {
    unsigned char *mem;
    size_t headroom;
    size_t len;
    size_t cap;  /* bytes after the headroom */
    bool failed; /* an allocation failed; the contents are incomplete */
} rcc_buf_t;

/** Initialises an empty buffer; nothing is allocated until the first append. */
void rcc_buf_init(rcc_buf_t *b, size_t headroom);
/** Appends `len` bytes; on allocation failure sets b->failed and returns RCC_ENOMEM. */
int rcc_buf_append(rcc_buf_t *b, const void *data, size_t len);
/** Empties the buffer, keeping its allocation. */
void rcc_buf_reset(rcc_buf_t *b);
/** Frees the allocation; the buffer is empty and usable again. */
void rcc_buf_free(rcc_buf_t *b);
/** The payload (after the headroom); NULL while nothing was appended. */
unsigned char *rcc_buf_data(const rcc_buf_t *b);

/** Monotonic clock, microseconds. */
int64_t rcc_mono_us(void);
/** Wall clock, milliseconds since the Unix epoch. */
int64_t rcc_wall_ms(void);

/** Fills `out` with random bytes from the system's source (getrandom(), arc4random_buf() or
 * getentropy(), chosen at configure time); falls back to a seeded PRNG if it cannot answer
 * (the ids then stay unique per process, not unpredictable). */
void rcc_random_bytes(void *out, size_t len);
/** The name of the source rcc_random_bytes() uses: "getrandom", "arc4random", "getentropy" or
 * "fallback". Static string. */
const char *rcc_random_source(void);
/** A uniform random integer in [0, bound]; 0 when bound <= 0. */
int64_t rcc_random_upto(int64_t bound);

/** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)], milliseconds. */
int64_t rcc_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms);

/** PROTOCOL.md "id": 1-64 bytes of A-Z a-z 0-9 . _ : @ - */
bool rcc_valid_id(const char *s);
/** PROTOCOL.md "surface": 1-32 bytes of a-z 0-9 _ - */
bool rcc_valid_surface(const char *s);

/** Copies `s` into `dst` (size `size`), always NUL-terminated; true when it fitted. */
bool rcc_copy_str(char *dst, size_t size, const char *s);

/** A malloc'd copy of `s`, or NULL for NULL (or out of memory: check when s != NULL). */
char *rcc_strdup_or_null(const char *s);

#endif
