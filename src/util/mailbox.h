/* SPDX-License-Identifier: Apache-2.0 */
/* A loop's mailbox: any thread posts a message, the loop that owns the mailbox is woken
 * (uv_async_t) and delivers every message posted so far, in each poster's order, on its own
 * thread. What event loops in threads of one process send each other. */
#ifndef RC_MAILBOX_H
#define RC_MAILBOX_H

#include "util/mpsc.h"

#include <uv.h>

/* Embedded first in a message; the mailbox links it. */
typedef rc_mpsc_link_t rc_mail_t;

/* Delivers one message, on the owning loop's thread; takes ownership of `m`. */
typedef void (*rc_mailbox_deliver_fn)(void *ctx, rc_mail_t *m);

typedef struct rc_mailbox {
    rc_mpsc_t queue;
    uv_async_t async;
    rc_mailbox_deliver_fn deliver;
    void *ctx;
} rc_mailbox_t;

/** Opens a mailbox on `loop` (caller-allocated; on the loop's thread, before any post).
 * Returns 0 or a negative code. */
int rc_mailbox_init(rc_mailbox_t *mb, uv_loop_t *loop, rc_mailbox_deliver_fn deliver, void *ctx);

/** Posts `m` (any thread; ownership passes to the delivery). The mailbox must be open: no
 * post may begin after rc_mailbox_close() began (the owner stops its posters first). */
void rc_mailbox_post(rc_mailbox_t *mb, rc_mail_t *m);

/** Delivers what is queued, then closes the handle (on the owning thread; the loop must run
 * once more before `mb` is freed). */
void rc_mailbox_close(rc_mailbox_t *mb);

#endif
