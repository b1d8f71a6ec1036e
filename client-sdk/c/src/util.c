/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers of the client library (see util.h), the error-code names and the event id
 * generator. */
#include "util.h"

#include "rankcast/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(RCC_HAVE_GETRANDOM)
#include <sys/random.h>
#elif defined(RCC_HAVE_GETENTROPY) && defined(__APPLE__)
#include <sys/random.h> /* getentropy() lives here on macOS and iOS */
#endif
#include <time.h>
#include <unistd.h>

/* ---- byte buffer ---- */

void rcc_buf_init(rcc_buf_t *b, size_t headroom)
{
    memset(b, 0, sizeof(*b));
    b->headroom = headroom;
}

int rcc_buf_append(rcc_buf_t *b, const void *data, size_t len)
{
    if (b->failed)
        return RCC_ENOMEM;
    if (len > b->cap - b->len || b->mem == NULL) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < len) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return RCC_ENOMEM;
            }
            cap *= 2;
        }
        unsigned char *mem = realloc(b->mem, b->headroom + cap);
        if (mem == NULL) {
            b->failed = true;
            return RCC_ENOMEM;
        }
        b->mem = mem;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->mem + b->headroom + b->len, data, len);
    b->len += len;
    return 0;
}

void rcc_buf_reset(rcc_buf_t *b)
{
    b->len = 0;
    b->failed = false;
}

void rcc_buf_free(rcc_buf_t *b)
{
    free(b->mem);
    rcc_buf_init(b, b->headroom);
}

unsigned char *rcc_buf_data(const rcc_buf_t *b)
{
    return b->mem ? b->mem + b->headroom : NULL;
}

/* ---- clocks ---- */

int64_t rcc_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rcc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- randomness ---- */

/* xorshift64*, only for the unlikely case that the system's source is unavailable (old
 * kernels, seccomp sandboxes, a platform with none of the three). Seeded from the clocks and the
 * pid, so two processes still differ. */
static uint64_t fallback_next(void)
{
    static uint64_t state;
    if (state == 0)
        state = (uint64_t)rcc_mono_us() ^ ((uint64_t)rcc_wall_ms() << 20) ^
                ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
}

/* The kernel's (or the C library's) random source, chosen at configure time (see
 * CMakeLists.txt): getrandom() on Linux and Android, arc4random_buf() on macOS, iOS and the
 * BSDs (and glibc from 2.36), getentropy() elsewhere. Returns how many bytes it filled. */
static size_t system_random(unsigned char *p, size_t len)
{
#if defined(RCC_HAVE_GETRANDOM)
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(p + got, len - got, GRND_NONBLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
#elif defined(RCC_HAVE_ARC4RANDOM)
    arc4random_buf(p, len); /* cannot fail */
    return len;
#elif defined(RCC_HAVE_GETENTROPY)
    size_t got = 0;
    while (got < len) {
        size_t n = len - got > 256 ? 256 : len - got; /* getentropy() takes at most 256 */
        if (getentropy(p + got, n) != 0)
            break;
        got += n;
    }
    return got;
#else
    (void)p;
    (void)len;
    return 0;
#endif
}

const char *rcc_random_source(void)
{
#if defined(RCC_HAVE_GETRANDOM)
    return "getrandom";
#elif defined(RCC_HAVE_ARC4RANDOM)
    return "arc4random";
#elif defined(RCC_HAVE_GETENTROPY)
    return "getentropy";
#else
    return "fallback";
#endif
}

void rcc_random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    size_t got = system_random(p, len);
    for (; got < len; got++)
        p[got] = (unsigned char)(fallback_next() >> 56);
}

int64_t rcc_random_upto(int64_t bound)
{
    uint64_t r;
    if (bound <= 0)
        return 0;
    rcc_random_bytes(&r, sizeof(r));
    /* The modulo bias is below 2^-40 for the bounds used here (milliseconds). */
    return (int64_t)(r % ((uint64_t)bound + 1));
}

int64_t rcc_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t ceiling = base_ms;
    /* Doubling stops at the cap, so the product never overflows. */
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return rcc_random_upto(ceiling);
}

int rcc_make_event_id(char *buf, size_t buflen)
{
    unsigned char raw[16];
    static const char hex[] = "0123456789abcdef";
    if (buf == NULL || buflen < 2 + 2 * sizeof(raw) + 1)
        return RCC_EINVAL;
    rcc_random_bytes(raw, sizeof(raw));
    buf[0] = 'e';
    buf[1] = '-';
    for (size_t i = 0; i < sizeof(raw); i++) {
        buf[2 + 2 * i] = hex[raw[i] >> 4];
        buf[3 + 2 * i] = hex[raw[i] & 15];
    }
    buf[2 + 2 * sizeof(raw)] = '\0';
    return 0;
}

/* ---- syntax ---- */

static bool id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == ':' || ch == '@' || ch == '-';
}

bool rcc_valid_id(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++)
        if (n >= RCC_ID_MAX || !id_char(s[n]))
            return false;
    return n > 0;
}

bool rcc_valid_surface(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (n >= RCC_SURFACE_MAX ||
            !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return n > 0;
}

bool rcc_copy_str(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size) {
        dst[0] = '\0';
        return false;
    }
    memcpy(dst, s, n + 1);
    return true;
}

char *rcc_strdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- error names ---- */

static const char *server_error_name(int code)
{
    switch (code) {
    case 4000:
        return "malformed";
    case 4001:
        return "unknown_type";
    case 4002:
        return "invalid_field";
    case 4003:
        return "too_large";
    case 4004:
        return "hello_required";
    case 4005:
        return "hello_repeated";
    case 4006:
        return "unsupported_version";
    case 4007:
        return "wrong_frame_kind";
    case 4008:
        return "too_many_errors";
    case 4010:
        return "unauthorized";
    case 4011:
        return "token_expired";
    case 4012:
        return "unknown_item";
    case 4013:
        return "anonymous_id_refused";
    case 4020:
        return "rate_limited";
    case 4021:
        return "too_many_subscriptions";
    case 4022:
        return "batch_too_large";
    case 4040:
        return "unknown_surface";
    case 4050:
        return "slow_consumer";
    case 4500:
        return "internal";
    case 4503:
        return "unavailable";
    default:
        return "unknown server error";
    }
}

const char *rcc_strerror(int code)
{
    switch (code) {
    case RCC_OK:
        return "success";
    case RCC_EINVAL:
        return "invalid argument";
    case RCC_ENOMEM:
        return "out of memory";
    case RCC_EFULL:
        return "event queue full";
    case RCC_ELIMIT:
        return "beyond the server's limits";
    case RCC_ENOENT:
        return "no such subscription";
    case RCC_ECLOSED:
        return "client closed";
    case RCC_ECANCELED:
        return "canceled";
    case RCC_ECONNECT:
        return "connection failed";
    case RCC_EPROTO:
        return "protocol error";
    case RCC_ETOOBIG:
        return "message too large";
    case RCC_EIO:
        return "I/O error";
    default:
        return code > 0 ? server_error_name(code) : "unknown error";
    }
}
