/* Trending: time-decayed interaction counts per item and per context segment (all traffic,
 * each device class, each part of the day in the user's time zone). Top lists are rebuilt
 * periodically off the event path; the event path only adds to a counter. */
#ifndef RC_TRENDING_H
#define RC_TRENDING_H

#include "catalog.h"

#include <stdint.h>

enum { RC_DAYPARTS = 4 }; /* night 0-6h, morning 6-12h, afternoon 12-18h, evening 18-24h */

/* Segments: 0 = all, 1..4 = device classes, 5..8 = dayparts. */
#define RC_SEG_ALL          0
#define RC_SEG_DEVICE(d)    (1 + (d))
#define RC_SEG_DAYPART(p)   (5 + (p))
#define RC_SEGMENTS         9
#define RC_TRENDING_TOP     100
#define RC_TRENDING_PER_CAT 40

typedef struct rc_trending {
    float *score[RC_SEGMENTS]; /* per item, scaled like covisit (see trending.c) */
    uint32_t n_items;
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
} rc_trending_t;

/** Prepares an empty model. Caller frees with rc_trending_free(). */
void rc_trending_init(rc_trending_t *t, double half_life_s, double now_s);
void rc_trending_free(rc_trending_t *t);

/** Counts weight `w` for `item` in the segments all, `device` and `daypart`. */
int rc_trending_add(rc_trending_t *t, uint32_t item, int device, int daypart, float w,
                    double now_s);

/** A segment score of `item` normalised to 0..1 by the segment's best (0 when unknown). */
float rc_trending_norm(const rc_trending_t *t, int segment, uint32_t item);

/** Rebuilds the top lists from the scores and the catalog's popularity prior. Cost is
 * linear in the catalog; called from a timer. Returns 0 or RC_ENOMEM. */
int rc_trending_refresh(rc_trending_t *t, const rc_catalog_t *c);

/** The part of the day (0..3) at wall time `wall_ms` for a client at `tz_offset_min`. */
int rc_daypart(int64_t wall_ms, int tz_offset_min);

#endif
