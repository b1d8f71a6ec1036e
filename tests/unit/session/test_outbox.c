/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of frames and the per-connection outbox (outbox.h): reference counts, FIFO
 * order and its byte limit, coalescing list slots, the order in which take() drains, and the
 * ack ids it keeps.
 * Each test holds its own reference to every frame so it can watch the outbox's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "session/outbox.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static rc_frame_t *frame_of(const char *text)
{
    rc_frame_t *f = rc_frame_new(text, strlen(text), false);
    assert_non_null(f);
    return f;
}

/* Takes the next frame, checks it is `want`, and drops the reference take() handed over. */
static void take_expect(rc_outbox_t *o, rc_frame_t *want)
{
    rc_frame_t *got = rc_outbox_take(o);
    if (got != want) {
        print_error("take() returned %.*s, expected %.*s\n", got ? (int)got->len : 6,
                    got ? (const char *)rc_frame_payload(got) : "(null)", (int)want->len,
                    (const char *)rc_frame_payload(want));
        fail();
    }
    rc_frame_unref(got);
}

static void test_frame_new_copies_payload(void **state)
{
    (void)state;
    char text[] = "hello";
    rc_frame_t *f = rc_frame_new(text, 5, true);
    assert_non_null(f);
    text[0] = 'J';
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->len, 5);
    assert_true(f->binary);
    assert_false(f->is_recs);
    assert_int_equal(f->cause_t0_us, 0);
    assert_memory_equal(rc_frame_payload(f), "hello", 5);
    assert_ptr_equal(rc_frame_payload(f), f->data + RC_FRAME_HEADROOM);

    assert_ptr_equal(rc_frame_ref(f), f);
    assert_int_equal(f->refs, 2);
    rc_frame_unref(f);
    assert_int_equal(f->refs, 1);
    rc_frame_unref(f);
    rc_frame_unref(NULL);

    rc_frame_t *empty = rc_frame_new("", 0, false);
    assert_non_null(empty);
    assert_int_equal(empty->len, 0);
    rc_frame_unref(empty);
}

static void test_empty_outbox(void **state)
{
    (void)state;
    rc_outbox_t o;
    assert_int_equal(rc_outbox_init(&o, 3), 0);
    assert_true(rc_outbox_empty(&o));
    assert_null(rc_outbox_take(&o));
    rc_outbox_free(&o);
    rc_outbox_free(NULL);
}

static void test_fifo_order_and_refs(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *f[5];
    char text[8];
    assert_int_equal(rc_outbox_init(&o, 2), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "m%d", i);
        f[i] = frame_of(text);
        assert_int_equal(rc_outbox_push(&o, f[i], 1 << 20), 0);
        assert_int_equal(f[i]->refs, 2); /* ours and the outbox's */
    }
    assert_false(rc_outbox_empty(&o));
    assert_int_equal(o.fifo_bytes, 10);
    for (int i = 0; i < 5; i++) {
        rc_frame_t *got = rc_outbox_take(&o);
        assert_ptr_equal(got, f[i]);
        /* take() hands over the outbox's reference: still 2 until the caller drops it. */
        assert_int_equal(got->refs, 2);
        rc_frame_unref(got);
        assert_int_equal(f[i]->refs, 1);
    }
    assert_true(rc_outbox_empty(&o));
    assert_int_equal(o.fifo_bytes, 0);
    assert_null(rc_outbox_take(&o));
    for (int i = 0; i < 5; i++)
        rc_frame_unref(f[i]);
    rc_outbox_free(&o);
}

/* One shared frame queued on many outboxes (every tab of a user) is counted once each. */
static void test_frame_shared_between_outboxes(void **state)
{
    (void)state;
    rc_outbox_t a, b;
    rc_frame_t *f = frame_of("push");
    assert_int_equal(rc_outbox_init(&a, 1), 0);
    assert_int_equal(rc_outbox_init(&b, 1), 0);
    assert_int_equal(rc_outbox_push(&a, f, 1000), 0);
    assert_int_equal(rc_outbox_push(&b, f, 1000), 0);
    assert_false(rc_outbox_set_slot(&a, 0, f));
    assert_int_equal(f->refs, 4);
    rc_outbox_free(&a);
    assert_int_equal(f->refs, 2);
    take_expect(&b, f);
    assert_int_equal(f->refs, 1);
    rc_outbox_free(&b);
    rc_frame_unref(f);
}

/* The ring grows while its head is in the middle, and the order survives the copy. */
static void test_fifo_order_across_ring_growth(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *f[40];
    char text[8];
    int next_take = 0;
    assert_int_equal(rc_outbox_init(&o, 0), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(text, sizeof(text), "f%02d", i);
        f[i] = frame_of(text);
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(rc_outbox_push(&o, f[i], 1 << 20), 0);
    while (next_take < 4)
        take_expect(&o, f[next_take++]);
    for (int i = 6; i < 40; i++) {
        assert_int_equal(rc_outbox_push(&o, f[i], 1 << 20), 0);
        if (i % 5 == 0)
            take_expect(&o, f[next_take++]);
    }
    while (next_take < 40)
        take_expect(&o, f[next_take++]);
    assert_true(rc_outbox_empty(&o));
    for (int i = 0; i < 40; i++) {
        assert_int_equal(f[i]->refs, 1);
        rc_frame_unref(f[i]);
    }
    rc_outbox_free(&o);
}

/* The limit is checked against what is already queued: a push is refused once the FIFO
 * holds max_bytes or more, and a refused frame is neither queued nor referenced. */
static void test_byte_limit(void **state)
{
    (void)state;
    rc_outbox_t o;
    char big[100];
    memset(big, 'x', sizeof(big));
    rc_frame_t *a = rc_frame_new(big, 100, false);
    rc_frame_t *b = rc_frame_new(big, 100, false);
    rc_frame_t *c = rc_frame_new(big, 100, false);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(rc_outbox_init(&o, 1), 0);

    assert_int_equal(rc_outbox_push(&o, a, 150), 0);
    assert_int_equal(rc_outbox_push(&o, b, 150), 0); /* 100 < 150: still room */
    assert_int_equal(o.fifo_bytes, 200);
    assert_int_equal(rc_outbox_push(&o, c, 150), RC_EFULL);
    assert_int_equal(c->refs, 1);
    assert_int_equal(o.fifo_bytes, 200);
    assert_int_equal(rc_outbox_push(&o, c, 200), RC_EFULL); /* exactly full is full */
    assert_int_equal(c->refs, 1);

    /* List slots do not count against the FIFO's limit. */
    assert_false(rc_outbox_set_slot(&o, 0, c));

    take_expect(&o, a);
    take_expect(&o, b);
    take_expect(&o, c);
    assert_null(rc_outbox_take(&o));
    /* Draining made room again. */
    assert_int_equal(rc_outbox_push(&o, c, 150), 0);
    assert_int_equal(c->refs, 2);
    rc_outbox_free(&o);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);
    assert_int_equal(c->refs, 1);
    rc_frame_unref(a);
    rc_frame_unref(b);
    rc_frame_unref(c);
}

static void test_slot_replacement_releases_old(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *old = frame_of("list v1");
    rc_frame_t *newer = frame_of("list v2");
    assert_int_equal(rc_outbox_init(&o, 2), 0);

    assert_false(rc_outbox_set_slot(&o, 1, old));
    assert_int_equal(old->refs, 2);
    assert_false(rc_outbox_empty(&o));
    assert_true(rc_outbox_set_slot(&o, 1, newer));
    assert_int_equal(old->refs, 1); /* the outbox let go of the stale list */
    assert_int_equal(newer->refs, 2);

    /* The same frame again is still a replacement and keeps exactly one outbox ref. */
    assert_true(rc_outbox_set_slot(&o, 1, newer));
    assert_int_equal(newer->refs, 2);

    take_expect(&o, newer);
    assert_null(rc_outbox_take(&o));
    assert_true(rc_outbox_empty(&o));
    assert_int_equal(newer->refs, 1);

    /* After a take the slot is free again: the next list is not a replacement. */
    assert_false(rc_outbox_set_slot(&o, 1, old));
    rc_outbox_free(&o);
    assert_int_equal(old->refs, 1);
    rc_frame_unref(old);
    rc_frame_unref(newer);
}

/* A slot index the outbox does not have is refused without taking a reference. */
static void test_slot_out_of_range(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *f = frame_of("list");
    assert_int_equal(rc_outbox_init(&o, 2), 0);
    assert_false(rc_outbox_set_slot(&o, 2, f));
    assert_false(rc_outbox_set_slot(&o, UINT32_MAX, f));
    assert_int_equal(f->refs, 1);
    rc_outbox_clear_slot(&o, 7);
    assert_true(rc_outbox_empty(&o));
    rc_outbox_free(&o);
    rc_frame_unref(f);
}

static void test_take_fifo_first_then_slots_round_robin(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *q1 = frame_of("ack 1"), *q2 = frame_of("ack 2");
    rc_frame_t *s0 = frame_of("slot 0"), *s1 = frame_of("slot 1"), *s2 = frame_of("slot 2");
    rc_frame_t *s0b = frame_of("slot 0 again");
    assert_int_equal(rc_outbox_init(&o, 3), 0);

    assert_false(rc_outbox_set_slot(&o, 0, s0));
    assert_int_equal(rc_outbox_push(&o, q1, 1 << 20), 0);
    assert_false(rc_outbox_set_slot(&o, 2, s2));
    assert_false(rc_outbox_set_slot(&o, 1, s1));
    assert_int_equal(rc_outbox_push(&o, q2, 1 << 20), 0);

    take_expect(&o, q1);
    take_expect(&o, q2);
    take_expect(&o, s0);
    /* Slot 0 refills before the others drained: it waits its turn behind 1 and 2. */
    assert_false(rc_outbox_set_slot(&o, 0, s0b));
    take_expect(&o, s1);
    /* A FIFO message still jumps ahead of pending lists. */
    assert_int_equal(rc_outbox_push(&o, q1, 1 << 20), 0);
    take_expect(&o, q1);
    take_expect(&o, s2);
    take_expect(&o, s0b);
    assert_null(rc_outbox_take(&o));
    assert_true(rc_outbox_empty(&o));

    rc_frame_t *all[] = {q1, q2, s0, s1, s2, s0b};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        assert_int_equal(all[i]->refs, 1);
        rc_frame_unref(all[i]);
    }
    rc_outbox_free(&o);
}

/* With every slot kept full, each one is served in turn: none starves. */
static void test_round_robin_no_starvation(void **state)
{
    (void)state;
    enum { SLOTS = 4, ROUNDS = 12 };
    rc_outbox_t o;
    rc_frame_t *f[SLOTS];
    int served[SLOTS] = {0};
    char text[16];
    assert_int_equal(rc_outbox_init(&o, SLOTS), 0);
    for (int s = 0; s < SLOTS; s++) {
        snprintf(text, sizeof(text), "slot %d", s);
        f[s] = frame_of(text);
        rc_outbox_set_slot(&o, (uint32_t)s, f[s]);
    }
    for (int r = 0; r < ROUNDS; r++) {
        rc_frame_t *got = rc_outbox_take(&o);
        assert_non_null(got);
        int s = 0;
        while (s < SLOTS && f[s] != got)
            s++;
        assert_int_lt(s, SLOTS);
        assert_int_equal(s, r % SLOTS);
        served[s]++;
        rc_frame_unref(got);
        /* The surface that was just served publishes again at once. */
        assert_false(rc_outbox_set_slot(&o, (uint32_t)s, f[s]));
    }
    for (int s = 0; s < SLOTS; s++)
        assert_int_equal(served[s], ROUNDS / SLOTS);
    rc_outbox_free(&o);
    for (int s = 0; s < SLOTS; s++) {
        assert_int_equal(f[s]->refs, 1);
        rc_frame_unref(f[s]);
    }
}

static void test_clear_slot(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *a = frame_of("a"), *b = frame_of("b");
    assert_int_equal(rc_outbox_init(&o, 2), 0);
    rc_outbox_set_slot(&o, 0, a);
    rc_outbox_set_slot(&o, 1, b);
    rc_outbox_clear_slot(&o, 0);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 2);
    assert_false(rc_outbox_empty(&o));
    take_expect(&o, b);
    assert_true(rc_outbox_empty(&o));
    rc_outbox_clear_slot(&o, 0); /* already empty: nothing to release */
    rc_outbox_clear_slot(&o, 1);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);
    assert_false(rc_outbox_set_slot(&o, 0, a));
    rc_outbox_free(&o);
    rc_frame_unref(a);
    rc_frame_unref(b);
}

/* Freeing with frames pending releases the outbox's references and nothing more; the
 * sanitizer build also checks that nothing leaks. */
static void test_free_with_pending(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_frame_t *held = frame_of("held by us too");
    assert_int_equal(rc_outbox_init(&o, 3), 0);
    for (int i = 0; i < 20; i++) {
        rc_frame_t *f = frame_of("only the outbox holds this");
        assert_int_equal(rc_outbox_push(&o, f, 1 << 20), 0);
        rc_frame_unref(f);
        assert_int_equal(rc_outbox_push(&o, held, 1 << 20), 0);
    }
    /* Move the head so the ring is not aligned at 0. */
    for (int i = 0; i < 3; i++)
        rc_frame_unref(rc_outbox_take(&o));
    rc_outbox_set_slot(&o, 0, held);
    rc_frame_t *slot_only = frame_of("slot only");
    rc_outbox_set_slot(&o, 2, slot_only);
    rc_frame_unref(slot_only);
    assert_int_gt(held->refs, 1);
    rc_outbox_free(&o);
    assert_int_equal(held->refs, 1);
    rc_frame_unref(held);
}

/* Acks are part of what is pending: the outbox is not empty while an id waits, ids come out
 * oldest first, at most `max` at a time, and dropping the ones encoded leaves the rest. */
static void test_acks_are_pending_until_dropped(void **state)
{
    (void)state;
    rc_outbox_t o;
    rc_str_t ids[4];
    char id[8];
    assert_int_equal(rc_outbox_init(&o, 1), 0);
    assert_int_equal(rc_outbox_peek_acks(&o, ids, 4), 0);
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        assert_int_equal(rc_outbox_add_ack(&o, id, strlen(id)), 0);
    }
    assert_false(rc_outbox_empty(&o));
    assert_null(rc_outbox_take(&o)); /* no frame: acks are not frames */
    assert_int_equal(rc_outbox_peek_acks(&o, ids, 4), 4);
    assert_int_equal(ids[0].n, 2);
    assert_memory_equal(ids[0].p, "e0", 2);
    assert_memory_equal(ids[3].p, "e3", 2);
    rc_outbox_drop_acks(&o, 4);
    assert_false(rc_outbox_empty(&o));
    assert_int_equal(rc_outbox_peek_acks(&o, ids, 4), 2);
    assert_memory_equal(ids[0].p, "e4", 2);
    assert_memory_equal(ids[1].p, "e5", 2);
    rc_outbox_drop_acks(&o, 2);
    assert_true(rc_outbox_empty(&o));
    assert_int_equal(rc_outbox_add_ack(&o, "again", 5), 0); /* the buffer is reused */
    assert_int_equal(rc_outbox_peek_acks(&o, ids, 4), 1);
    assert_memory_equal(ids[0].p, "again", 5);
    rc_outbox_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_new_copies_payload),
        cmocka_unit_test(test_empty_outbox),
        cmocka_unit_test(test_fifo_order_and_refs),
        cmocka_unit_test(test_frame_shared_between_outboxes),
        cmocka_unit_test(test_fifo_order_across_ring_growth),
        cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_slot_replacement_releases_old),
        cmocka_unit_test(test_slot_out_of_range),
        cmocka_unit_test(test_take_fifo_first_then_slots_round_robin),
        cmocka_unit_test(test_round_robin_no_starvation),
        cmocka_unit_test(test_clear_slot),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_acks_are_pending_until_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
