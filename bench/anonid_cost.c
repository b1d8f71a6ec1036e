/* SPDX-License-Identifier: Apache-2.0 */
/* What a signed anonymous id costs a hello (src/auth/anonid.c): issuing one, verifying one
 * under the current key, and refusing a forged one with a previous key configured (both keys
 * tried). Prints the median of 5 runs of 200,000 each, in microseconds per call. */
#include "auth/anonid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS  5
#define CALLS 200000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    rc_anonid_keys_t k;
    const char *cur = "bench-current-secret-0123456789abcdef",
               *prev = "bench-previous-0123456789abcdef";
    rc_anonid_keys_init(&k, cur, strlen(cur), prev, strlen(prev));
    char id[RC_ANONID_LEN + 1], forged[RC_ANONID_LEN + 1];
    double issue[RUNS], ok[RUNS], bad[RUNS];
    unsigned sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        for (int i = 0; i < CALLS; i++)
            sink += (unsigned)rc_anonid_issue(&k, id);
        double t1 = now_s();
        for (int i = 0; i < CALLS; i++)
            sink += (unsigned)rc_anonid_verify(&k, id, RC_ANONID_LEN);
        double t2 = now_s();
        memcpy(forged, id, sizeof(forged));
        forged[RC_ANONID_LEN - 1] = forged[RC_ANONID_LEN - 1] == '0' ? '1' : '0';
        for (int i = 0; i < CALLS; i++)
            sink += (unsigned)rc_anonid_verify(&k, forged, RC_ANONID_LEN);
        double t3 = now_s();
        issue[r] = (t1 - t0) / CALLS * 1e6;
        ok[r] = (t2 - t1) / CALLS * 1e6;
        bad[r] = (t3 - t2) / CALLS * 1e6;
    }
    qsort(issue, RUNS, sizeof(double), cmp);
    qsort(ok, RUNS, sizeof(double), cmp);
    qsort(bad, RUNS, sizeof(double), cmp);
    printf("issue %.2f us, verify %.2f us, refuse a forged id (two keys) %.2f us (median of %d "
           "runs of %d; sink %u)\n",
           issue[RUNS / 2], ok[RUNS / 2], bad[RUNS / 2], RUNS, CALLS, sink & 1);
    return 0;
}
