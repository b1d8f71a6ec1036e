/* SPDX-License-Identifier: Apache-2.0 */
/* Trending: time-decayed interaction counts per item and per context segment (all traffic,
 * each device class, each part of the day in the user's time zone, each locale met). Top
 * lists are rebuilt periodically off the event path; the event path only adds to a
 * counter. */
#ifndef RC_TRENDING_H
#define RC_TRENDING_H

#include "engine/catalog.h"

#include <stdint.h>

enum { RC_DAYPARTS = 4 }; /* night 0-6h, morning 6-12h, afternoon 12-18h, evening 18-24h */

/* Locale segments are earned, not taken (issue S: eight made-up hello.locale values held
 * every segment for the life of the process). A tag met in hello or on the bus is tracked in
 * a table of RC_LOCALE_TAGS (the least recently used untracked when it is full); it gets a
 * segment only once events from RC_LOCALE_MIN_USERS distinct users carried it, and, when all
 * RC_LOCALES segments are taken, only if its recent activity (events, decayed with the
 * trending half-life) exceeds that of the least active locale holding one, which then gives
 * its segment up. A locale's counts start when it gets its segment; until then its events
 * count in the other segments only. */
#define RC_LOCALES          8
#define RC_LOCALE_TAGS      64
#define RC_LOCALE_MIN_USERS 5
#define RC_LOCALE_MAX       16 /* bytes of a locale tag, as the protocol allows */

/* One tracked locale tag. A reference to it (rc_trending_locale()) carries its generation,
 * so a reference to an entry since reused for another tag resolves to nothing. */
typedef struct rc_locale_entry {
    char tag[RC_LOCALE_MAX + 1]; /* canonical; "" when free */
    uint16_t gen;
    int8_t slot;     /* its segment's locale slot (0..RC_LOCALES-1), or -1 */
    uint8_t n_users; /* distinct users seen, counted up to RC_LOCALE_MIN_USERS */
    uint32_t users[RC_LOCALE_MIN_USERS];
    double activity; /* events, decayed, as of used_s */
    double used_s;   /* last met (hello or event) */
} rc_locale_entry_t;

/* Segments: 0 = all, 1..4 = device classes, 5..8 = dayparts, 9.. = locales. */
#define RC_SEG_ALL          0
#define RC_SEG_DEVICE(d)    (1 + (d))
#define RC_SEG_DAYPART(p)   (5 + (p))
#define RC_SEG_LOCALE(l)    (9 + (l))
#define RC_SEGMENTS         (9 + RC_LOCALES)
#define RC_TRENDING_TOP     100
#define RC_TRENDING_PER_CAT 40

typedef struct rc_trending {
    /* Per item, its n_segments scores side by side (item i's segment s at
     * [i * n_segments + s]), scaled like covisit (see trending.c): ranking a candidate reads
     * one or two cache lines, not one per segment. */
    float *score;
    uint32_t n_items;
    uint32_t n_segments; /* in use: the fixed ones and one per locale slot opened */
    char locales[RC_LOCALES][RC_LOCALE_MAX + 1]; /* each slot's tag, for the reasons */
    int8_t slot_entry[RC_LOCALES];               /* each slot's entry in locale_tab, or -1 */
    rc_locale_entry_t locale_tab[RC_LOCALE_TAGS];
    double half_life_s;
    double epoch_s;
    /* Rebuilt by rc_trending_refresh(): */
    uint32_t top[RC_SEGMENTS][RC_TRENDING_TOP];
    uint32_t n_top[RC_SEGMENTS];
    float top_max[RC_SEGMENTS]; /* the best score of each segment, for normalising */
    uint32_t *by_category;      /* RC_TRENDING_PER_CAT per category, best first */
    uint16_t *n_by_category;
    uint32_t n_categories;
    float popularity_max;
    void *heap; /* scratch of the refresh: RC_TRENDING_PER_CAT per category */
    /* A refresh in progress (rc_trending_refresh_step): one pass over the catalog, a slice
     * at a time, into scratch heaps; the published lists above change only at its end. */
    bool pass_active;
    uint32_t pass_cursor, pass_items, pass_categories;
    float pass_pop_max;             /* the prior's scale, from the previous pass */
    float pass_pop_seen;            /* the largest popularity met in this pass */
    float pass_best[RC_SEGMENTS];   /* each segment's best score met in this pass */
    float pass_raised[RC_SEGMENTS]; /* the best score events made during the pass */
    float pass_norm0;               /* segment 0's best, for the category blend */
    void *seg_heap;                 /* RC_TRENDING_TOP per segment */
    uint32_t seg_n[RC_SEGMENTS];
    uint16_t *pass_cat_n; /* fill of each category's heap */
} rc_trending_t;

/** Prepares an empty model. Caller frees with rc_trending_free(). */
void rc_trending_init(rc_trending_t *t, double half_life_s, double now_s);
void rc_trending_free(rc_trending_t *t);

/** Counts weight `w` for `item` in the segments all, `device`, `daypart` and, when its locale
 * holds one, `locale` (a reference from rc_trending_locale(), or -1 for none). `user_key`
 * (a hash of the user, 0 for none) counts the locale's distinct users, which earn it a
 * segment. */
int rc_trending_add(rc_trending_t *t, uint32_t item, int device, int daypart, int locale,
                    uint32_t user_key, float w, double now_s);

/** A reference to locale tag `s` (compared without case, `_` as `-`), tracked from now on;
 * -1 when empty or malformed. The reference fits an int16_t. */
int rc_trending_locale(rc_trending_t *t, const char *s, size_t n, double now_s);

/** The reference rc_trending_locale() would give tag `s` if it is tracked now, without
 * tracking it (read only): the reference, RC_ENOENT when the tag is not tracked
 * (yet), or RC_EINVAL when it is empty or malformed (no call of rc_trending_locale() will
 * track it). */
int rc_trending_locale_find(const rc_trending_t *t, const char *s, size_t n);

/** The segment of the locale `ref` refers to, or -1 (none, not earned yet, or a stale
 * reference). */
int rc_trending_locale_segment(const rc_trending_t *t, int ref);

/** The canonical tag `ref` refers to (borrowed until the next rc_trending_locale()), or
 * NULL. */
const char *rc_trending_locale_tag(const rc_trending_t *t, int ref);

/** The scores of `item`, n_segments of them (NULL when the item has none yet). */
static inline const float *rc_trending_scores(const rc_trending_t *t, uint32_t item)
{
    return item < t->n_items ? t->score + (size_t)item * t->n_segments : NULL;
}

/** A segment score of `item` normalised to 0..1 by the segment's best (0 when unknown). */
float rc_trending_norm(const rc_trending_t *t, int segment, uint32_t item);

/** Rebuilds the top lists from the scores and the catalog's popularity prior, at once.
 * Cost is linear in the catalog (about 4 ms at 100k items). Returns 0 or RC_ENOMEM. */
int rc_trending_refresh(rc_trending_t *t, const rc_catalog_t *c);

/** The same rebuild a slice at a time, for the event loop: scans at most `max_items`
 * items and returns 1 when this call completed a pass (the lists were published), 0 when
 * the pass goes on, or RC_ENOMEM. Items added during a pass count from the next one. */
int rc_trending_refresh_step(rc_trending_t *t, const rc_catalog_t *c, uint32_t max_items);

/** The part of the day (0..3) at wall time `wall_ms` for a client at `tz_offset_min`. */
int rc_daypart(int64_t wall_ms, int tz_offset_min);

/* Snapshots (log/snapshot.h): items by catalog index. */
struct msgpack_packer;
struct msgpack_object;

/** Writes the counts and the locale table into `pk` (a map). The top lists are not written:
 * rc_trending_refresh() rebuilds them. */
void rc_trending_snapshot_write(const rc_trending_t *t, struct msgpack_packer *pk);

/** Fills a model that has counted nothing with what rc_trending_snapshot_write() wrote;
 * `map` as rc_covisit_snapshot_read()'s. Returns 0, RC_EPARSE or RC_ENOMEM. */
int rc_trending_snapshot_read(rc_trending_t *t, const struct msgpack_object *o, const int64_t *map,
                              uint32_t n_map);

#endif
