/* SPDX-License-Identifier: Apache-2.0 */
/* A loop's mailbox (mailbox.h): an MPSC queue drained by a uv_async_t. libuv coalesces
 * uv_async_send() calls, so a post wakes the loop only when the queue was empty; the loop
 * takes the whole queue on each wake. */
#include "util/mailbox.h"
#include "util/error.h"

static void drain(rc_mailbox_t *mb)
{
    rc_mpsc_link_t *m = rc_mpsc_take_all(&mb->queue);
    while (m != NULL) {
        rc_mpsc_link_t *next = m->next;
        mb->deliver(mb->ctx, m);
        m = next;
    }
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

int rc_mailbox_init(rc_mailbox_t *mb, uv_loop_t *loop, rc_mailbox_deliver_fn deliver, void *ctx)
{
    rc_mpsc_init(&mb->queue);
    mb->deliver = deliver;
    mb->ctx = ctx;
    mb->async.data = mb;
    return uv_async_init(loop, &mb->async, on_async) == 0 ? 0 : RC_EIO;
}

void rc_mailbox_post(rc_mailbox_t *mb, rc_mail_t *m)
{
    /* Woken once per empty-to-non-empty turn: a post racing the drain finds the queue
     * empty and wakes it again. uv_async_send() fails only on a closing handle, which the
     * contract rules out. */
    if (rc_mpsc_push(&mb->queue, m))
        uv_async_send(&mb->async);
}

void rc_mailbox_close(rc_mailbox_t *mb)
{
    drain(mb);
    uv_close((uv_handle_t *)&mb->async, NULL);
}
