/* SPDX-License-Identifier: Apache-2.0 */
/* The directory of users' loops (directory.h): string maps in shards, each behind its own
 * lock, so that loops starting sessions of different users rarely wait for each other. */
#include "session/directory.h"
#include "util/strmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

typedef struct entry {
    uint64_t loops;
    size_t len;
    char key[]; /* the pseudonym, which the shard's map borrows */
} entry_t;

typedef struct shard {
    _Alignas(64) pthread_mutex_t lock;
    rc_strmap_t map; /* pseudonym -> entry_t* */
} shard_t;

struct rc_directory {
    shard_t shards[SHARDS];
};

static shard_t *shard_of(rc_directory_t *d, const char *pseudo, size_t len)
{
    return &d->shards[rc_strhash(pseudo, len) % SHARDS];
}

rc_directory_t *rc_directory_new(void)
{
    rc_directory_t *d = aligned_alloc(64, sizeof(*d));
    if (d == NULL)
        return NULL;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&d->shards[i].lock, NULL);
        rc_strmap_init(&d->shards[i].map);
    }
    return d;
}

static void free_entries(rc_strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash != 0) /* 0: an empty slot */
            free((entry_t *)(uintptr_t)m->slots[i].value);
}

void rc_directory_free(rc_directory_t *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        free_entries(&d->shards[i].map);
        rc_strmap_free(&d->shards[i].map);
        pthread_mutex_destroy(&d->shards[i].lock);
    }
    free(d);
}

uint64_t rc_directory_join(rc_directory_t *d, const char *pseudo, size_t len, uint32_t loop)
{
    shard_t *s = shard_of(d, pseudo, len);
    uint64_t bit = 1ull << loop, before = UINT64_MAX, value;
    pthread_mutex_lock(&s->lock);
    if (rc_strmap_get(&s->map, pseudo, len, &value)) {
        entry_t *e = (entry_t *)(uintptr_t)value;
        before = e->loops & ~bit;
        e->loops |= bit;
    } else {
        entry_t *e = malloc(sizeof(*e) + len);
        if (e != NULL) {
            e->loops = bit;
            e->len = len;
            memcpy(e->key, pseudo, len);
            if (rc_strmap_put(&s->map, e->key, len, (uint64_t)(uintptr_t)e) == 0)
                before = 0;
            else
                free(e);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return before;
}

uint64_t rc_directory_leave(rc_directory_t *d, const char *pseudo, size_t len, uint32_t loop)
{
    shard_t *s = shard_of(d, pseudo, len);
    uint64_t left = 0, value;
    pthread_mutex_lock(&s->lock);
    if (rc_strmap_get(&s->map, pseudo, len, &value)) {
        entry_t *e = (entry_t *)(uintptr_t)value;
        e->loops &= ~(1ull << loop);
        left = e->loops;
        if (left == 0) {
            rc_strmap_del(&s->map, pseudo, len);
            free(e);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return left;
}

uint64_t rc_directory_loops(rc_directory_t *d, const char *pseudo, size_t len)
{
    shard_t *s = shard_of(d, pseudo, len);
    uint64_t loops = 0, value;
    pthread_mutex_lock(&s->lock);
    if (rc_strmap_get(&s->map, pseudo, len, &value))
        loops = ((entry_t *)(uintptr_t)value)->loops;
    pthread_mutex_unlock(&s->lock);
    return loops;
}
