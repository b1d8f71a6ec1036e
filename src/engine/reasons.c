/* SPDX-License-Identifier: Apache-2.0 */
/* The reason of a ranked item, from the source that placed it: the neighbour that explains
 * it, the item of the same category, the trending segment, how long ago the user was on it.
 * First as data (rc_reason_of), then in plain words from that data (rc_reason_words), so the
 * two never disagree. Made for every item of every list pushed, so without printf. */
#include "engine/reasons.h"
#include "engine/engine_int.h"

#include <string.h>

static const char *const code_names[RC_REASON_COUNT] = {
    [RC_REASON_CO_VISITED] = "co_visited",
    [RC_REASON_SIMILAR] = "similar",
    [RC_REASON_CATEGORY] = "category_affinity",
    [RC_REASON_TRENDING] = "trending",
    [RC_REASON_TRENDING_CONTEXT] = "trending_context",
    [RC_REASON_TRENDING_LOCALE] = "trending_locale",
    [RC_REASON_PINNED] = "pinned",
    [RC_REASON_REPEAT] = "repeat",
    [RC_REASON_NEW_ITEM] = "new_item",
    [RC_REASON_POPULAR] = "popular",
};

const char *rc_reason_code_name(int code)
{
    return code >= 0 && code < RC_REASON_COUNT ? code_names[code] : "popular";
}

/* The segments of trending_context by their wire names; the words are in trending_words. */
static const char *const device_segments[RC_DEVICE_COUNT] = {
    [RC_DEV_MOBILE] = "mobile", [RC_DEV_TABLET] = "tablet", [RC_DEV_DESKTOP] = "desktop"};
static const char *const daypart_segments[RC_DAYPARTS] = {"night", "morning", "afternoon",
                                                          "evening"};

/* The trending reason of segment `seg` (trending.h): a device class or a daypart is a
 * context, a locale slot a locale; the others (all, the device class "other", a slot no
 * longer open) are trending with everyone. */
static void trending_reason(const rc_trending_t *t, int64_t seg, rc_reason_t *out)
{
    out->code = RC_REASON_TRENDING;
    if (seg >= RC_SEG_DEVICE(0) && seg < RC_SEG_DAYPART(0)) {
        out->segment = device_segments[seg - RC_SEG_DEVICE(0)];
    } else if (seg >= RC_SEG_DAYPART(0) && seg < RC_SEG_LOCALE(0)) {
        out->segment = daypart_segments[seg - RC_SEG_DAYPART(0)];
    } else if (seg >= RC_SEG_LOCALE(0) && seg < (int64_t)t->n_segments &&
               t->locales[seg - RC_SEG_LOCALE(0)][0] != '\0') {
        out->code = RC_REASON_TRENDING_LOCALE;
        out->locale = t->locales[seg - RC_SEG_LOCALE(0)];
        return;
    }
    if (out->segment != NULL)
        out->code = RC_REASON_TRENDING_CONTEXT;
}

/* The content reason: the most recent item of the session of the same category, or the
 * category alone. */
static void content_reason(const rc_catalog_t *c, const rc_user_state_t *u, const rc_item_t *it,
                           rc_reason_t *out)
{
    if (it->category == 0) {
        out->code = RC_REASON_POPULAR;
        return;
    }
    out->category = it->category;
    for (uint8_t d = 0; d < u->n_recent; d++) {
        uint32_t ri = rc_user_recent(u, d)->item;
        if (ri < c->n && c->items[ri].category == it->category) {
            out->code = RC_REASON_SIMILAR;
            out->item = ri;
            return;
        }
    }
    out->code = RC_REASON_CATEGORY;
}

void rc_reason_of(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r,
                  rc_reason_t *out)
{
    const rc_catalog_t *c = &e->catalog;
    const rc_item_t *it = &c->items[r->item];
    *out = (rc_reason_t){
        .code = RC_REASON_POPULAR, .kind = RC_EVENT_KIND_COUNT, .item = -1, .age_s = -1};
    switch (r->src) {
    case RC_SRC_COVISIT:
        if (r->ref >= 0 && (uint64_t)r->ref < c->n) {
            out->code = RC_REASON_CO_VISITED;
            out->item = r->ref;
            return;
        }
        break;
    case RC_SRC_CONTENT:
        content_reason(c, u, it, out);
        return;
    case RC_SRC_TRENDING:
        trending_reason(&e->trending, r->ref, out);
        return;
    case RC_SRC_PINNED:
        out->code = RC_REASON_PINNED;
        return;
    case RC_SRC_REPEAT:
        out->code = RC_REASON_REPEAT;
        out->age_s = r->ref >= 0 ? r->ref : -1;
        out->kind = r->kind < RC_EVENT_KIND_COUNT ? r->kind : RC_EVENT_KIND_COUNT;
        return;
    case RC_SRC_EXPLORE:
        out->code = RC_REASON_NEW_ITEM;
        out->category = it->category;
        return;
    default:
        break;
    }
    out->category = it->category;
}

/* ---- words ---- */

/* Appends to a NUL-terminated buffer, cut to len - 1 bytes as snprintf would. */
typedef struct {
    char *buf;
    size_t len, at;
    bool plain; /* no byte written needs escaping in JSON */
} words_t;

static void put_text(words_t *w, rc_text_t t)
{
    if (w->len == 0)
        return;
    size_t n = t.n, room = w->len - 1 - w->at;
    n = n < room ? n : room;
    if (n > 0)
        memcpy(w->buf + w->at, t.p, n);
    w->at += n;
    w->buf[w->at] = '\0';
    w->plain = w->plain && t.plain;
}

/* The words of this file (literals and digits): none needs escaping in JSON, and inline, the
 * length of a literal is folded. The catalog's names go through put_text with the lengths and
 * escape checks measured when they were loaded. */
static inline void put(words_t *w, const char *s)
{
    put_text(w, (rc_text_t){s, (uint32_t)strlen(s), true});
}

/* A category's display name: its own name, or its slug when the catalog gave none. */
static rc_text_t category_display(const rc_catalog_t *c, uint16_t category)
{
    rc_text_t t = rc_catalog_category_name_text(c, category);
    return t.p != NULL ? t : rc_catalog_category_text(c, category);
}

static void put_uint(words_t *w, uint64_t v)
{
    char n[24];
    size_t i = sizeof(n) - 1;
    n[i] = '\0';
    do
        n[--i] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    put(w, n + i);
}

/* "You viewed this 2 minutes ago": what the user did, then when. */
static void repeat_words(words_t *w, uint8_t kind, int64_t age_s)
{
    switch (kind) {
    case RC_EV_CART:
        put(w, "You added this to your cart");
        break;
    case RC_EV_PURCHASE:
        put(w, "You bought this");
        break;
    case RC_EV_RATING:
        put(w, "You rated this");
        break;
    default: /* views, clicks, dwell, and what is not known */
        put(w, "You viewed this");
        break;
    }
    if (age_s < 0) {
        put(w, " earlier");
    } else if (age_s < 60) {
        put(w, " just now");
    } else if (age_s < 3600) {
        put(w, " ");
        put_uint(w, (uint64_t)(age_s / 60));
        put(w, age_s < 120 ? " minute ago" : " minutes ago");
    } else if (age_s < 86400) {
        put(w, " ");
        put_uint(w, (uint64_t)(age_s / 3600));
        put(w, age_s < 7200 ? " hour ago" : " hours ago");
    } else {
        put(w, " earlier");
    }
}

static void trending_words(words_t *w, const char *segment)
{
    static const struct {
        const char *segment, *words;
    } contexts[] = {{"mobile", "Trending on mobile"},     {"tablet", "Trending on tablets"},
                    {"desktop", "Trending on desktop"},   {"night", "Trending tonight"},
                    {"morning", "Trending this morning"}, {"afternoon", "Trending this afternoon"},
                    {"evening", "Trending this evening"}};
    for (size_t i = 0; segment != NULL && i < sizeof(contexts) / sizeof(contexts[0]); i++) {
        if (strcmp(contexts[i].segment, segment) == 0) {
            put(w, contexts[i].words);
            return;
        }
    }
    put(w, "Trending now");
}

/* "<what> in <category>" or "<what>" alone when the item has no category. */
static void in_category(words_t *w, const rc_catalog_t *c, const char *what, uint16_t category)
{
    put(w, what);
    if (category != 0) {
        put(w, " in ");
        put_text(w, category_display(c, category));
    }
}

rc_text_t rc_reason_words(const rc_engine_t *e, const rc_reason_t *why, char *buf, size_t len)
{
    const rc_catalog_t *c = &e->catalog;
    words_t w = {buf, len, 0, true};
    if (len > 0)
        buf[0] = '\0';
    bool has_item = why->item >= 0 && (uint64_t)why->item < c->n;
    switch (why->code) {
    case RC_REASON_CO_VISITED:
        put(&w, "Viewed together with ");
        if (has_item)
            put_text(&w, rc_item_name_text(c, (uint32_t)why->item));
        else
            put(&w, "an item you viewed");
        break;
    case RC_REASON_SIMILAR:
        put(&w, "Similar to ");
        if (has_item)
            put_text(&w, rc_item_name_text(c, (uint32_t)why->item));
        else
            put(&w, "an item you viewed");
        break;
    case RC_REASON_CATEGORY:
        put(&w, "Because you like ");
        put_text(&w, category_display(c, why->category));
        break;
    case RC_REASON_TRENDING:
    case RC_REASON_TRENDING_CONTEXT:
        trending_words(&w, why->segment);
        break;
    case RC_REASON_TRENDING_LOCALE:
        /* The tag is data for the app to localise; in words, no code. */
        put(&w, "Trending in your region");
        break;
    case RC_REASON_PINNED:
        put(&w, "Featured");
        break;
    case RC_REASON_REPEAT:
        repeat_words(&w, why->kind, why->age_s);
        break;
    case RC_REASON_NEW_ITEM:
        in_category(&w, c, "New", why->category);
        break;
    default:
        in_category(&w, c, "Popular", why->category);
        break;
    }
    return (rc_text_t){buf, (uint32_t)w.at, w.plain};
}

void rc_reason_text(const rc_engine_t *e, const rc_user_state_t *u, const rc_ranked_t *r, char *buf,
                    size_t len)
{
    rc_reason_t why;
    rc_reason_of(e, u, r, &why);
    rc_reason_words(e, &why, buf, len);
}
