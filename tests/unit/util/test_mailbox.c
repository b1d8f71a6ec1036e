/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the mailbox (util/mailbox.h): messages posted from several threads all reach
 * the owning loop, each poster's in its order, delivered on the loop's thread; what is
 * queued at close is still delivered. scripts/test also runs this under ThreadSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "assert_ext.h"
#include "util/mailbox.h"

#include <pthread.h>
#include <stdlib.h>

#define POSTERS 3
#define EACH    20000

typedef struct msg {
    rc_mail_t link; /* first */
    int poster;
    int seq;
} msg_t;

typedef struct {
    rc_mailbox_t mb;
    pthread_t owner;
    int next[POSTERS]; /* the seq each poster's next message must carry */
    int delivered, out_of_order, wrong_thread;
} box_t;

static void deliver(void *ctx, rc_mail_t *m)
{
    box_t *b = ctx;
    msg_t *x = (msg_t *)m;
    if (!pthread_equal(pthread_self(), b->owner))
        b->wrong_thread++;
    if (x->seq != b->next[x->poster])
        b->out_of_order++;
    b->next[x->poster] = x->seq + 1;
    b->delivered++;
    free(x);
}

typedef struct {
    box_t *box;
    int poster;
} poster_t;

static void *post_all(void *arg)
{
    poster_t *p = arg;
    for (int i = 0; i < EACH; i++) {
        msg_t *x = malloc(sizeof(*x));
        assert_non_null(x);
        x->poster = p->poster;
        x->seq = i;
        rc_mailbox_post(&p->box->mb, &x->link);
    }
    return NULL;
}

static void test_posts_from_threads_arrive_in_order_on_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    box_t box = {.owner = pthread_self()};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(rc_mailbox_init(&box.mb, &loop, deliver, &box), 0);
    pthread_t threads[POSTERS];
    poster_t posters[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        posters[i] = (poster_t){&box, i};
        assert_int_equal(pthread_create(&threads[i], NULL, post_all, &posters[i]), 0);
    }
    /* The loop runs while they post: deliveries interleave with posts. */
    while (box.delivered < POSTERS * EACH / 2)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    while (box.delivered < POSTERS * EACH)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(box.delivered, POSTERS * EACH);
    assert_int_equal(box.out_of_order, 0);
    assert_int_equal(box.wrong_thread, 0);

    /* Posted and not yet delivered when the mailbox closes: delivered by the close. */
    for (int i = 0; i < 5; i++) {
        msg_t *x = malloc(sizeof(*x));
        assert_non_null(x);
        *x = (msg_t){.poster = 0, .seq = EACH + i};
        rc_mailbox_post(&box.mb, &x->link);
    }
    rc_mailbox_close(&box.mb);
    assert_int_equal(box.delivered, POSTERS * EACH + 5);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_threads_arrive_in_order_on_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
