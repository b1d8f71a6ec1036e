/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the item catalog (engine/catalog.h): the JSON-lines loader and its errors,
 * category interning, content features, upserts, open versus closed resolution, the
 * capacity limit, and the demo catalog shipped in web-demo/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "engine/catalog.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEMO_CATALOG RC_SOURCE_DIR "/web-demo/catalog/demo-catalog.jsonl"

static const char small_catalog[] =
    "# a comment line is skipped\n"
    "{\"id\":\"mug-red\",\"name\":\"Red Mug\",\"category\":\"kitchen\","
    "\"tags\":[\"red\",\"ceramic\"],\"price\":9.5,\"popularity\":120}\n"
    "\n"
    "{\"id\":\"mug-blue\",\"name\":\"Blue Mug\",\"category\":\"kitchen\","
    "\"tags\":[\"blue\",\"ceramic\"],\"price\":10,\"popularity\":80}\r\n"
    "{\"id\":\"lamp\",\"name\":\"Desk Lamp\",\"category\":\"lighting\",\"tags\":[\"red\"]}\n"
    "{\"id\":\"bare\"}\n"
    "{\"id\":\"gone\",\"name\":\"Old Stock\",\"category\":\"kitchen\",\"in_stock\":false}\n";

static int64_t find(const rc_catalog_t *c, const char *id)
{
    return rc_catalog_find(c, id, strlen(id));
}

static const rc_item_t *item(const rc_catalog_t *c, const char *id)
{
    int64_t i = find(c, id);
    if (i < 0) {
        print_error("item %s not in the catalog\n", id);
        fail();
    }
    assert_int_lt(i, c->n);
    return &c->items[i];
}

static const rc_item_label_t *label(const rc_catalog_t *c, const char *id)
{
    return &c->labels[item(c, id) - c->items];
}

static void load_text(rc_catalog_t *c, const char *text)
{
    char path[128], err[512] = "";
    rc_test_write_temp(path, sizeof(path), ".jsonl", text);
    int rc = rc_catalog_load(c, path, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        print_error("rc_catalog_load: %s\n", err);
    assert_int_equal(rc, 0);
}

static void test_load_and_find(void **state)
{
    (void)state;
    rc_catalog_t c;
    assert_int_equal(rc_catalog_init(&c, 100, false), 0);
    load_text(&c, small_catalog);
    assert_int_equal(c.n, 5);

    const rc_item_t *red = item(&c, "mug-red");
    assert_string_equal(label(&c, "mug-red")->id, "mug-red");
    assert_string_equal(label(&c, "mug-red")->name, "Red Mug");
    assert_float_equal(red->price, 9.5, 1e-6);
    assert_float_equal(red->popularity, 120, 1e-6);
    assert_int_equal(red->flags, 0);
    assert_true(rc_item_recommendable(red));

    const rc_item_t *blue = item(&c, "mug-blue"); /* CRLF line */
    assert_string_equal(label(&c, "mug-blue")->name, "Blue Mug");
    assert_float_equal(blue->price, 10, 1e-6);

    /* Only the id is required: unknown price is negative, no popularity is 0, the name is
     * the id, the category is "none". */
    const rc_item_t *bare = item(&c, "bare");
    assert_string_equal(label(&c, "bare")->name, "bare");
    assert_true(bare->price < 0);
    assert_float_equal(bare->popularity, 0, 1e-9);
    assert_int_equal(bare->category, 0);
    assert_int_equal(bare->n_feat, 0);

    const rc_item_t *gone = item(&c, "gone");
    assert_true(gone->flags & RC_ITEM_OUT_OF_STOCK);
    assert_false(rc_item_recommendable(gone));

    assert_int_equal(find(&c, "mug-green"), -1);
    assert_int_equal(rc_catalog_find(&c, "mug-red", 3), -1); /* a prefix is another id */
    /* Lookups go by bytes and length, not NUL termination. */
    assert_int_equal(rc_catalog_find(&c, "mug-redX", 7), find(&c, "mug-red"));
    rc_catalog_free(&c);
    rc_catalog_free(NULL);
}

static void test_categories_interned(void **state)
{
    (void)state;
    rc_catalog_t c;
    assert_int_equal(rc_catalog_init(&c, 1000, false), 0);
    load_text(&c, small_catalog);

    /* "" (index 0), kitchen, lighting: each name once. */
    assert_int_equal(c.n_categories, 3);
    assert_string_equal(c.categories[0], "");
    int32_t kitchen = rc_catalog_category(&c, "kitchen", 7);
    int32_t lighting = rc_catalog_category(&c, "lighting", 8);
    assert_int_gt(kitchen, 0);
    assert_int_gt(lighting, 0);
    assert_int_not_equal(kitchen, lighting);
    assert_string_equal(c.categories[kitchen], "kitchen");
    assert_string_equal(c.categories[lighting], "lighting");
    assert_int_equal(rc_catalog_category(&c, "garden", 6), -1);

    assert_int_equal(item(&c, "mug-red")->category, kitchen);
    assert_int_equal(item(&c, "mug-blue")->category, kitchen);
    assert_int_equal(item(&c, "gone")->category, kitchen);
    assert_int_equal(item(&c, "lamp")->category, lighting);

    /* Many categories: the table grows and every name keeps its index. */
    char id[32], cat[32];
    for (int i = 0; i < 300; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "x%d", i);
        snprintf(cat, sizeof(cat), "cat-%d", i % 100);
        assert_int_equal(rc_catalog_upsert(&c, id, NULL, cat, NULL, 0, -1, 0, &idx), 0);
    }
    assert_int_equal(c.n_categories, 103);
    for (int i = 0; i < 100; i++) {
        snprintf(cat, sizeof(cat), "cat-%d", i);
        int32_t k = rc_catalog_category(&c, cat, strlen(cat));
        assert_int_gt(k, 0);
        assert_string_equal(c.categories[k], cat);
        snprintf(id, sizeof(id), "x%d", i + 200);
        assert_int_equal(item(&c, id)->category, k);
    }
    assert_int_equal(rc_catalog_category(&c, "kitchen", 7), kitchen);
    rc_catalog_free(&c);
}

static bool has_feature(const rc_item_t *it, uint32_t f)
{
    for (uint8_t i = 0; i < it->n_feat; i++)
        if (it->feat[i] == f)
            return true;
    return false;
}

static void test_features(void **state)
{
    (void)state;
    rc_catalog_t c;
    assert_int_equal(rc_catalog_init(&c, 100, false), 0);
    load_text(&c, small_catalog);
    const rc_item_t *red = item(&c, "mug-red");
    const rc_item_t *blue = item(&c, "mug-blue");
    const rc_item_t *lamp = item(&c, "lamp");

    /* Same category: the same feature id first. */
    assert_int_equal(red->feat[0], blue->feat[0]);
    assert_int_equal(red->feat[0], rc_feature_id('c', "kitchen", 7));
    assert_int_equal(lamp->feat[0], rc_feature_id('c', "lighting", 8));
    assert_int_not_equal(red->feat[0], lamp->feat[0]);

    /* Then one per tag; a shared tag is a shared feature across categories. */
    assert_int_equal(red->n_feat, 3);
    assert_int_equal(lamp->n_feat, 2);
    assert_true(has_feature(red, rc_feature_id('t', "red", 3)));
    assert_true(has_feature(red, rc_feature_id('t', "ceramic", 7)));
    assert_true(has_feature(lamp, rc_feature_id('t', "red", 3)));
    assert_true(has_feature(blue, rc_feature_id('t', "ceramic", 7)));
    assert_false(has_feature(blue, rc_feature_id('t', "red", 3)));

    /* A category and a tag of the same spelling are different features. */
    assert_int_not_equal(rc_feature_id('c', "red", 3), rc_feature_id('t', "red", 3));
    assert_int_equal(rc_feature_id('t', "red", 3), rc_feature_id('t', "redder", 3));

    /* Category weighs 2, each tag 1. */
    assert_float_equal(red->feat_norm, sqrtf(4 + 2), 1e-5);
    assert_float_equal(lamp->feat_norm, sqrtf(4 + 1), 1e-5);

    /* Without a category the tags come first; empty tags and non-strings are skipped; at
     * most RC_ITEM_FEATURES features in all. */
    load_text(&c, "{\"id\":\"t1\",\"tags\":[\"a\",\"\",7,\"b\"]}\n"
                  "{\"id\":\"t2\",\"category\":\"k\",\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\","
                  "\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\"]}\n");
    const rc_item_t *t1 = item(&c, "t1");
    assert_int_equal(t1->n_feat, 2);
    assert_int_equal(t1->feat[0], rc_feature_id('t', "a", 1));
    assert_int_equal(t1->feat[1], rc_feature_id('t', "b", 1));
    assert_float_equal(t1->feat_norm, sqrtf(2), 1e-5);
    const rc_item_t *t2 = item(&c, "t2");
    assert_int_equal(t2->n_feat, RC_ITEM_FEATURES);
    assert_int_equal(t2->feat[0], rc_feature_id('c', "k", 1));
    assert_int_equal(t2->feat[1], rc_feature_id('t', "1", 1));
    rc_catalog_free(&c);
}

static void test_upsert_replaces(void **state)
{
    (void)state;
    rc_catalog_t c;
    uint32_t idx, idx2;
    const char *tags[] = {"steel"};
    assert_int_equal(rc_catalog_init(&c, 100, false), 0);
    load_text(&c, small_catalog);
    uint32_t n = c.n;
    int64_t before = find(&c, "mug-red");

    assert_int_equal(
        rc_catalog_upsert(&c, "mug-red", "Red Steel Mug", "outdoor", tags, 1, 12.25, 7, &idx), 0);
    assert_int_equal(idx, before);
    assert_int_equal(c.n, n);
    const rc_item_t *it = &c.items[idx];
    assert_string_equal(rc_item_name(&c, idx), "Red Steel Mug");
    assert_string_equal(c.categories[it->category], "outdoor");
    assert_float_equal(it->price, 12.25, 1e-6);
    assert_float_equal(it->popularity, 7, 1e-6);
    assert_int_equal(it->n_feat, 2);
    assert_int_equal(it->feat[0], rc_feature_id('c', "outdoor", 7));
    assert_int_equal(it->feat[1], rc_feature_id('t', "steel", 5));
    assert_false(has_feature(it, rc_feature_id('t', "ceramic", 7)));

    /* Reloading a line brings an out-of-stock item back when it no longer says so. */
    assert_false(rc_item_recommendable(item(&c, "gone")));
    load_text(&c, "{\"id\":\"gone\",\"name\":\"Old Stock\",\"category\":\"kitchen\"}\n");
    assert_true(rc_item_recommendable(item(&c, "gone")));
    assert_int_equal(c.n, n);

    /* The same id twice in a file: one item, the later line wins. */
    load_text(&c, "{\"id\":\"dup\",\"name\":\"First\",\"price\":1}\n"
                  "{\"id\":\"dup\",\"name\":\"Second\",\"price\":2}\n");
    assert_int_equal(c.n, n + 1);
    assert_string_equal(rc_item_name(&c, (uint32_t)find(&c, "dup")), "Second");
    assert_float_equal(item(&c, "dup")->price, 2, 1e-6);
    n = c.n;

    /* A new id through upsert gets a new index; the id is copied. */
    char id[] = "fresh";
    assert_int_equal(rc_catalog_upsert(&c, id, "Fresh", NULL, NULL, 0, -5, -1, &idx2), 0);
    id[0] = 'F';
    assert_int_equal(idx2, n);
    assert_int_equal(find(&c, "fresh"), idx2);
    assert_true(c.items[idx2].price < 0);
    assert_float_equal(c.items[idx2].popularity, 0, 1e-9);
    assert_int_equal(c.items[idx2].category, 0);
    rc_catalog_free(&c);
}

/* A bad line stops the load and the message names the file and the line. */
static void test_bad_lines(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        {"{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\": oops}\n", ":3:"},
        {"{\"id\":\"a\"}\n{\"name\":\"no id\"}\n", ":2:"},
        {"# comment\n\n[\"not\",\"an\",\"object\"]\n", ":3:"},
        {"{\"id\":\"\"}\n", ":1:"},
        {"{\"id\":42}\n", ":1:"},
        {"{\"id\":\"a\"}\n{\"id\":\"a\"} trailing\n", ":2:"},
        {"{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}\n",
         ":1:"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc_catalog_t c;
        char path[128], err[512] = "";
        assert_int_equal(rc_catalog_init(&c, 100, false), 0);
        rc_test_write_temp(path, sizeof(path), ".jsonl", cases[i].text);
        int rc = rc_catalog_load(&c, path, err, sizeof(err));
        unlink(path);
        if (rc != RC_EPARSE) {
            print_error("case %zu: rc %d (%s), expected a parse error\n", i, rc, rc_strerror(rc));
            fail();
        }
        assert_contains(err, path);
        assert_contains(err, cases[i].where);
        rc_catalog_free(&c);
    }

    rc_catalog_t c;
    char err[512] = "";
    assert_int_equal(rc_catalog_init(&c, 100, false), 0);
    assert_int_equal(rc_catalog_load(&c, "/nonexistent/catalog.jsonl", err, sizeof(err)), RC_EIO);
    assert_contains(err, "/nonexistent/catalog.jsonl");
    rc_catalog_free(&c);
}

static void test_resolve_closed(void **state)
{
    (void)state;
    rc_catalog_t c;
    assert_int_equal(rc_catalog_init(&c, 100, false), 0);
    load_text(&c, small_catalog);
    uint32_t n = c.n;
    assert_int_equal(rc_catalog_resolve(&c, "lamp", 4), find(&c, "lamp"));
    assert_int_equal(rc_catalog_resolve(&c, "unknown", 7), -1);
    assert_int_equal(c.n, n);
    assert_int_equal(find(&c, "unknown"), -1);
    rc_catalog_free(&c);
}

/* Issue S: traffic learns an item only once enough distinct users named it, never more than
 * learned_max of them, and nothing at all in a closed catalog. */
static void test_learn_from_traffic(void **state)
{
    (void)state;
    rc_catalog_t c, closed;
    uint32_t idx;
    assert_int_equal(rc_catalog_init(&closed, 100, false), 0);
    assert_int_equal(rc_catalog_learn_from(&closed, "x", 1, 7), -1);
    rc_catalog_free(&closed);

    assert_int_equal(rc_catalog_init(&c, 100, true), 0);
    load_text(&c, small_catalog);
    rc_catalog_set_learning(&c, 2, 3);
    uint32_t n = c.n;
    assert_int_equal(rc_catalog_learn_from(&c, "lamp", 4, 1), find(&c, "lamp"));
    /* One user naming it often, or no user at all, never makes it an item. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(rc_catalog_learn_from(&c, "new-1", 5, 42), RC_CATALOG_UNTRUSTED);
    assert_int_equal(rc_catalog_learn_from(&c, "new-1", 5, 0), RC_CATALOG_UNTRUSTED);
    assert_int_equal(rc_catalog_learn_from(&c, "new-1", 5, 43), RC_CATALOG_UNTRUSTED);
    assert_int_equal(c.n, n);
    assert_int_equal(find(&c, "new-1"), -1);
    /* The third distinct user does. */
    int64_t learned = rc_catalog_learn_from(&c, "new-1", 5, 44);
    assert_int_equal(learned, n);
    assert_true(c.items[learned].flags & RC_ITEM_LEARNED);
    assert_int_equal(c.n_learned, 1);
    assert_int_equal(rc_catalog_learn_from(&c, "new-1", 5, 45), learned);
    for (uint32_t u = 1; u <= 3; u++)
        rc_catalog_learn_from(&c, "new-2", 5, u);
    assert_int_equal(c.n_learned, 2);
    /* At learned_max, a trusted id waits; an upsert makes a learned item the operator's and
     * frees its place. */
    for (uint32_t u = 1; u <= 3; u++)
        assert_int_equal(rc_catalog_learn_from(&c, "new-3", 5, u), RC_CATALOG_UNTRUSTED);
    assert_int_equal(rc_catalog_upsert(&c, "new-1", "Real", "lighting", NULL, 0, 2, 0, &idx), 0);
    assert_int_equal(c.n_learned, 1);
    assert_int_ge(rc_catalog_learn_from(&c, "new-3", 5, 4), 0);
    assert_int_equal(c.n_learned, 2);
    /* Ids too long for an item are not tracked. */
    char long_id[80];
    memset(long_id, 'a', sizeof(long_id));
    assert_int_equal(rc_catalog_learn_from(&c, long_id, sizeof(long_id), 1), -1);
    /* More ids than the table tracks: the least recently named are forgotten, so an id that
     * was two users short starts again. */
    rc_catalog_learn_from(&c, "early", 5, 1);
    rc_catalog_learn_from(&c, "early", 5, 2);
    char id[16];
    for (int i = 0; i < RC_CATALOG_PENDING; i++) {
        snprintf(id, sizeof(id), "junk-%d", i);
        assert_int_equal(rc_catalog_learn_from(&c, id, strlen(id), 9), RC_CATALOG_UNTRUSTED);
    }
    rc_catalog_set_learning(&c, 10, 3);
    assert_int_equal(rc_catalog_learn_from(&c, "early", 5, 3), RC_CATALOG_UNTRUSTED);
    /* What goes is the least recently *named*: an id named again in the meantime stays, and
     * an entry freed by learning is taken before any other. */
    rc_catalog_learn_from(&c, "kept", 4, 1);
    rc_catalog_learn_from(&c, "kept", 4, 2);
    for (int i = 0; i < RC_CATALOG_PENDING; i++) {
        snprintf(id, sizeof(id), "more-%d", i);
        rc_catalog_learn_from(&c, id, strlen(id), 9);
        if (i == RC_CATALOG_PENDING / 2)
            rc_catalog_learn_from(&c, "kept", 4, 2);
    }
    assert_int_ge(rc_catalog_learn_from(&c, "kept", 4, 3), 0);
    rc_catalog_learn_from(&c, "fresh", 5, 1);   /* takes the entry "kept" left */
    rc_catalog_learn_from(&c, "more-1", 6, 10); /* the least recently named: still tracked */
    assert_int_ge(rc_catalog_learn_from(&c, "more-1", 6, 11), 0);
    rc_catalog_free(&c);
}

static void test_resolve_open_learns(void **state)
{
    (void)state;
    rc_catalog_t c;
    uint32_t idx;
    assert_int_equal(rc_catalog_init(&c, 100, true), 0);
    load_text(&c, small_catalog);
    uint32_t n = c.n;

    assert_int_equal(rc_catalog_resolve(&c, "lamp", 4), find(&c, "lamp"));
    assert_false(item(&c, "lamp")->flags & RC_ITEM_LEARNED);

    /* The id is taken by length from a buffer that is not NUL-terminated there. */
    int64_t learned = rc_catalog_resolve(&c, "sku-77,extra", 6);
    assert_int_equal(learned, n);
    assert_int_equal(c.n, n + 1);
    const rc_item_t *it = &c.items[learned];
    assert_string_equal(rc_item_id(&c, (uint32_t)learned), "sku-77");
    assert_string_equal(rc_item_name(&c, (uint32_t)learned), "sku-77");
    assert_true(it->flags & RC_ITEM_LEARNED);
    assert_int_equal(it->category, 0);
    assert_int_equal(it->n_feat, 0);
    assert_true(it->price < 0);
    assert_true(rc_item_recommendable(it));
    assert_int_equal(find(&c, "sku-77"), learned);

    /* An id with a NUL byte inside (a snapshot's ids are not checked for them) is kept
     * whole: its measured length is all of it (the copy once stopped at the NUL, and encoders
     * read past it). */
    int64_t odd = rc_catalog_resolve(&c, "x\0y", 3);
    assert_true(odd >= 0);
    rc_text_t t = rc_item_id_text(&c, (uint32_t)odd);
    assert_int_equal(t.n, 3);
    assert_memory_equal(t.p, "x\0y", 3);
    assert_int_equal(rc_catalog_find(&c, "x\0y", 3), odd);

    /* Resolving again finds it; nothing new is added. */
    assert_int_equal(rc_catalog_resolve(&c, "sku-77", 6), learned);
    assert_int_equal(c.n, n + 2);

    /* The catalog file later describes it: same index, no longer learned. */
    assert_int_equal(rc_catalog_upsert(&c, "sku-77", "Lantern", "lighting", NULL, 0, 20, 1, &idx),
                     0);
    assert_int_equal(idx, learned);
    assert_false(c.items[idx].flags & RC_ITEM_LEARNED);
    assert_string_equal(rc_item_name(&c, idx), "Lantern");
    assert_int_equal(c.items[idx].n_feat, 1);
    rc_catalog_free(&c);
}

/* Growing past the first allocation keeps every index and id valid. */
static void test_many_items(void **state)
{
    (void)state;
    rc_catalog_t c;
    char id[32];
    assert_int_equal(rc_catalog_init(&c, 10000, true), 0);
    for (int i = 0; i < 5000; i++) {
        uint32_t idx;
        snprintf(id, sizeof(id), "item-%d", i);
        if (i % 2)
            assert_int_equal(rc_catalog_resolve(&c, id, strlen(id)), i);
        else {
            assert_int_equal(rc_catalog_upsert(&c, id, id, "c", NULL, 0, 1, 1, &idx), 0);
            assert_int_equal(idx, i);
        }
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "item-%d", i);
        assert_int_equal(find(&c, id), i);
        assert_string_equal(rc_item_id(&c, (uint32_t)i), id);
    }
    /* Grown past the first allocation, the items still start at a cache line. */
    assert_int_equal((uintptr_t)c.items % 64, 0);
    rc_catalog_free(&c);
}

static void test_max_items(void **state)
{
    (void)state;
    rc_catalog_t c;
    uint32_t idx;
    assert_int_equal(rc_catalog_init(&c, 3, true), 0);
    assert_int_equal(rc_catalog_upsert(&c, "a", "A", "x", NULL, 0, 1, 1, &idx), 0);
    assert_int_equal(rc_catalog_upsert(&c, "b", "B", "x", NULL, 0, 1, 1, &idx), 0);
    assert_int_equal(rc_catalog_resolve(&c, "c", 1), 2);
    assert_int_equal(c.n, 3);

    assert_int_equal(rc_catalog_upsert(&c, "d", "D", "x", NULL, 0, 1, 1, &idx), RC_EFULL);
    assert_int_equal(rc_catalog_resolve(&c, "e", 1), -1);
    assert_int_equal(c.n, 3);
    assert_int_equal(find(&c, "d"), -1);
    assert_int_equal(find(&c, "e"), -1);

    /* Replacing an existing item still works when full. */
    assert_int_equal(rc_catalog_upsert(&c, "a", "A2", "y", NULL, 0, 2, 2, &idx), 0);
    assert_int_equal(idx, 0);
    assert_string_equal(rc_item_name(&c, 0), "A2");
    assert_int_equal(rc_catalog_resolve(&c, "b", 1), 1);

    /* The loader reports the full catalog with the line. */
    char path[128], err[512] = "";
    rc_test_write_temp(path, sizeof(path), ".jsonl", "{\"id\":\"a\"}\n{\"id\":\"z\"}\n");
    assert_int_equal(rc_catalog_load(&c, path, err, sizeof(err)), RC_EFULL);
    assert_contains(err, ":2:");
    unlink(path);
    rc_catalog_free(&c);
}

static void test_demo_catalog(void **state)
{
    (void)state;
    rc_catalog_t c;
    char err[512] = "";
    assert_int_equal(rc_catalog_init(&c, 1000000, false), 0);
    int rc = rc_catalog_load(&c, DEMO_CATALOG, err, sizeof(err));
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_gt(c.n, 3000);
    assert_int_gt(c.n_categories - 1, 15); /* not counting "" */

    /* Every item is findable by its id, and the loaded fields are sane. */
    uint32_t with_category = 0, with_price = 0;
    for (uint32_t i = 0; i < c.n; i++) {
        const rc_item_t *it = &c.items[i];
        assert_int_equal(find(&c, rc_item_id(&c, i)), i);
        assert_true(rc_item_name(&c, i) != NULL && rc_item_name(&c, i)[0] != '\0');
        assert_int_lt(it->category, c.n_categories);
        assert_true(it->popularity >= 0);
        with_category += it->category != 0;
        with_price += it->price >= 0;
    }
    assert_int_equal(with_category, c.n);
    assert_int_equal(with_price, c.n);
    /* Every category has a display name for the reasons' words (not its slug). */
    for (uint32_t k = 1; k < c.n_categories; k++) {
        assert_non_null(c.category_names[k]);
        assert_string_not_equal(c.category_names[k], c.categories[k]);
    }
    rc_catalog_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_find),
        cmocka_unit_test(test_categories_interned),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_upsert_replaces),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_resolve_closed),
        cmocka_unit_test(test_resolve_open_learns),
        cmocka_unit_test(test_many_items),
        cmocka_unit_test(test_max_items),
        cmocka_unit_test(test_learn_from_traffic),
        cmocka_unit_test(test_demo_catalog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
