/* SPDX-License-Identifier: Apache-2.0 */
/* Linear probing keeps lookups to one or two cache lines at the load factor used (<= 0.7);
 * backward-shift deletion avoids tombstones, so a long-running server with churning
 * sessions never degrades. */
#include "util/strmap.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void rc_strmap_init(rc_strmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void rc_strmap_free(rc_strmap_t *m)
{
    if (m == NULL)
        return;
    free(m->slots);
    rc_strmap_init(m);
}

uint64_t rc_strhash(const char *key, size_t len)
{
    uint64_t h = XXH3_64bits(key, len);
    return h ? h : 1;
}

static bool key_eq(const rc_strmap_slot_t *s, uint64_t h, const char *key, size_t len)
{
    return s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0;
}

bool rc_strmap_get(const rc_strmap_t *m, const char *key, size_t len, uint64_t *value)
{
    if (m->cap == 0)
        return false;
    uint64_t h = rc_strhash(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const rc_strmap_slot_t *s = &m->slots[i];
        if (s->hash == 0)
            return false;
        if (key_eq(s, h, key, len)) {
            if (value)
                *value = s->value;
            return true;
        }
    }
}

static void insert_slot(rc_strmap_slot_t *slots, size_t cap, const rc_strmap_slot_t *in)
{
    size_t mask = cap - 1;
    size_t i = in->hash & mask;
    while (slots[i].hash != 0)
        i = (i + 1) & mask;
    slots[i] = *in;
}

static int grow(rc_strmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    rc_strmap_slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return RC_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash != 0)
            insert_slot(slots, cap, &m->slots[i]);
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int rc_strmap_put(rc_strmap_t *m, const char *key, size_t len, uint64_t value)
{
    if ((m->len + 1) * 10 > m->cap * 7) {
        int rc = grow(m);
        if (rc != 0)
            return rc;
    }
    uint64_t h = rc_strhash(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        rc_strmap_slot_t *s = &m->slots[i];
        if (s->hash == 0) {
            *s = (rc_strmap_slot_t){h, key, (uint32_t)len, value};
            m->len++;
            return 0;
        }
        if (key_eq(s, h, key, len)) {
            s->key = key;
            s->value = value;
            return 0;
        }
    }
}

bool rc_strmap_del(rc_strmap_t *m, const char *key, size_t len)
{
    if (m->cap == 0)
        return false;
    uint64_t h = rc_strhash(key, len);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (!key_eq(&m->slots[i], h, key, len)) {
        if (m->slots[i].hash == 0)
            return false;
        i = (i + 1) & mask;
    }
    /* Backward shift: move later members of the probe run into the hole when their home
     * slot is at or before it, so no lookup ever stops early at the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].hash = 0;
    m->len--;
    return true;
}
