/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Statistics: quantiles of the log-bucketed latency histograms, counts by code, and the
 * RSS and CPU samples of the server, the machine and the generator itself (from /proc).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>

#include "loadgen.h"

static uint64_t hist_bucket_middle_ns(size_t index)
{
    if (index < 2 * HIST_SUB_COUNT)
        return index;
    size_t shift = index / HIST_SUB_COUNT - 1;
    uint64_t mantissa = index - shift * HIST_SUB_COUNT;
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

/* The smallest recorded value v such that at least `fraction` of all values are <= v. */
uint64_t lg_hist_quantile_ns(const hist_t *h, double fraction)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(fraction * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t middle = hist_bucket_middle_ns(i);
            return middle < h->max_ns ? middle : h->max_ns;
        }
    }
    return h->max_ns;
}

void lg_count_code(code_count_t *table, size_t *kinds, long code)
{
    for (size_t i = 0; i < *kinds; i++) {
        if (table[i].code == code) {
            table[i].count++;
            return;
        }
    }
    if (*kinds < LG_MAX_CODES) {
        table[*kinds].code = code;
        table[*kinds].count = 1;
        (*kinds)++;
    }
}

/* Reads VmRSS in KiB from /proc/PID/status, or -1 when there is no such process. */
long lg_read_rss_kb(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long rss_kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            rss_kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return rss_kb;
}

/*
 * Reads the user + system CPU seconds the process has used from /proc/PID/stat, or -1. The
 * command name (field 2) may hold spaces and parentheses, so parsing starts after the last ')'.
 */
double lg_read_cpu_s(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long long utime = 0, stime = 0;
    /* After ')': state, then fields 4..13, then utime (14) and stime (15). */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return -1;
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    return ticks_per_s > 0 ? (double)(utime + stime) / (double)ticks_per_s : -1;
}

/*
 * The machine is shared (by the server, by us, by whatever else runs): the busy time of all
 * CPUs during the measurement tells a noisy run from a clean one. Guest time is already
 * inside user time; iowait counts as idle.
 */
machine_cpu_t lg_read_machine_cpu(void)
{
    machine_cpu_t m = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return m;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    if (n != 8 || ticks_per_s <= 0)
        return m;
    m.busy_s = (double)(user + nice + sys + irq + softirq) / (double)ticks_per_s;
    m.steal_s = (double)steal / (double)ticks_per_s;
    m.valid = true;
    return m;
}

double lg_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
