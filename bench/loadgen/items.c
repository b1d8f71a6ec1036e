/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The item ids events name: the "id" of every line of a JSONL catalog, or synthetic
 * ids i0..iN-1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static bool is_protocol_id(const char *s, size_t n)
{
    if (n < 1 || n > LG_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '@' ||
                  ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int items_push(items_t *items, size_t *cap, const char *id, size_t n)
{
    if (items->count == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 1024;
        char **ids = realloc(items->ids, new_cap * sizeof(*ids));
        if (!ids)
            return -1;
        items->ids = ids;
        *cap = new_cap;
    }
    char *copy = strndup(id, n);
    if (!copy)
        return -1;
    items->ids[items->count++] = copy;
    return 0;
}

/* Takes the "id" of every catalog line; lines without a valid id are skipped and counted. */
int lg_items_load_catalog(items_t *items, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "rankcast-loadgen: cannot open catalog %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t line_cap = 0, cap = 0, skipped = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &line_cap, f)) >= 0) {
        const char *id = NULL;
        size_t id_len = 0;
        if (lg_json_find_string(line, (size_t)n, "id", &id, &id_len) < 0 ||
            !is_protocol_id(id, id_len)) {
            skipped += n > 1;
            continue;
        }
        if (items_push(items, &cap, id, id_len) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (skipped)
        fprintf(stderr, "rankcast-loadgen: skipped %zu catalog lines without a usable id\n",
                skipped);
    if (rc == 0 && items->count == 0) {
        fprintf(stderr, "rankcast-loadgen: no item ids in %s\n", path);
        return -1;
    }
    return rc;
}

int lg_items_make_synthetic(items_t *items, uint32_t count)
{
    size_t cap = 0;
    char id[24];
    for (uint32_t i = 0; i < count; i++) {
        int n = snprintf(id, sizeof(id), "i%" PRIu32, i);
        if (items_push(items, &cap, id, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

void lg_items_free(items_t *items)
{
    for (size_t i = 0; i < items->count; i++)
        free(items->ids[i]);
    free(items->ids);
    items->ids = NULL;
    items->count = 0;
}
