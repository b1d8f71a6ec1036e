/* SPDX-License-Identifier: Apache-2.0 */
/* The reason of a ranked item in words, from the source that placed it: the neighbour that
 * explains it, the item of the same category, the trending segment, how long ago the user
 * was on it. Made for every item of every list pushed, so without printf. */
#include "engine/reasons.h"
#include "engine/engine_int.h"

#include <string.h>

/* `a` then `b` into buf, cut to len - 1 bytes as snprintf would (reasons are made for every
 * item of every list pushed; printf's parsing showed in profiles). */
static void phrase(char *buf, size_t len, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (len == 0)
        return;
    na = na < len - 1 ? na : len - 1;
    nb = nb < len - 1 - na ? nb : len - 1 - na;
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    buf[na + nb] = '\0';
}

/* The reason of an item of the session: how long ago the user was on it. */
static void repeat_phrase(int64_t age_s, char *buf, size_t len)
{
    char n[24];
    if (age_s < 0) {
        phrase(buf, len, "You viewed this earlier", "");
    } else if (age_s < 60) {
        phrase(buf, len, "You viewed this just now", "");
    } else if (age_s < 3600) {
        int64_t m = age_s / 60;
        /* Not snprintf: reasons are made for every item of every list pushed. */
        size_t i = sizeof(n) - 1;
        n[i] = '\0';
        do
            n[--i] = (char)('0' + m % 10);
        while ((m /= 10) > 0);
        char text[48];
        phrase(text, sizeof(text), "You viewed this ", n + i);
        phrase(buf, len, text, age_s < 120 ? " minute ago" : " minutes ago");
    } else {
        phrase(buf, len, "You viewed this earlier today", "");
    }
}

/* The reason of a trending item, from the segment that carried it. */
static void trending_phrase(const rc_trending_t *t, int64_t seg, char *buf, size_t len)
{
    static const char *const devices[] = {[RC_DEV_MOBILE] = "on mobile",
                                          [RC_DEV_TABLET] = "on tablets",
                                          [RC_DEV_DESKTOP] = "on desktop"};
    static const char *const dayparts[RC_DAYPARTS] = {"tonight", "this morning", "this afternoon",
                                                      "this evening"};
    const char *what = "now";
    if (seg >= RC_SEG_DEVICE(0) && seg < RC_SEG_DAYPART(0) &&
        seg - RC_SEG_DEVICE(0) < (int64_t)(sizeof(devices) / sizeof(devices[0])) &&
        devices[seg - RC_SEG_DEVICE(0)] != NULL)
        what = devices[seg - RC_SEG_DEVICE(0)];
    else if (seg >= RC_SEG_DAYPART(0) && seg < RC_SEG_LOCALE(0))
        what = dayparts[seg - RC_SEG_DAYPART(0)];
    else if (seg >= RC_SEG_LOCALE(0) && seg < (int64_t)t->n_segments) {
        phrase(buf, len, "Trending in ", t->locales[seg - RC_SEG_LOCALE(0)]);
        return;
    }
    phrase(buf, len, "Trending ", what);
}

void rc_reason_text(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                    size_t len)
{
    const rc_catalog_t *c = &e->catalog;
    const rc_item_t *it = &c->items[r->item];
    switch (r->src) {
    case RC_SRC_COVISIT:
        if (r->ref >= 0 && (uint64_t)r->ref < c->n) {
            phrase(buf, len, "Viewed together with ", rc_item_name(c, (uint32_t)r->ref));
            return;
        }
        break;
    case RC_SRC_CONTENT:
        /* Name the most recent item of the same category, if there is one. */
        for (uint8_t d = 0; d < u->n_recent; d++) {
            uint32_t ri = rc_user_recent(u, d)->item;
            if (ri < c->n && it->category != 0 && c->items[ri].category == it->category) {
                phrase(buf, len, "Similar to ", rc_item_name(c, ri));
                return;
            }
        }
        if (it->category != 0) {
            phrase(buf, len, "Because you like ", c->categories[it->category]);
            return;
        }
        break;
    case RC_SRC_TRENDING:
        trending_phrase(&e->trending, r->ref, buf, len);
        return;
    case RC_SRC_PINNED:
        phrase(buf, len, "Featured", "");
        return;
    case RC_SRC_REPEAT:
        repeat_phrase(r->ref, buf, len);
        return;
    case RC_SRC_EXPLORE:
        if (it->category != 0)
            phrase(buf, len, "New in ", c->categories[it->category]);
        else
            phrase(buf, len, "New", "");
        return;
    default:
        break;
    }
    if (it->category != 0)
        phrase(buf, len, "Popular in ", c->categories[it->category]);
    else
        phrase(buf, len, "Popular", "");
}
