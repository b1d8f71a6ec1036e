/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal intrusive doubly linked list (circular, with a sentinel head). Nodes embed an
 * rc_link_t; RC_CONTAINER_OF gets back to the owner. No allocation, O(1) unlink. */
#ifndef RC_LIST_H
#define RC_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rc_link {
    struct rc_link *prev, *next;
} rc_link_t;

#define RC_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void rc_list_init(rc_link_t *head)
{
    head->prev = head->next = head;
}

static inline bool rc_list_empty(const rc_link_t *head)
{
    return head->next == head;
}

/* A node that is in no list points at itself, so unlinking twice is harmless. */
static inline void rc_list_unlink(rc_link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline void rc_list_push_back(rc_link_t *head, rc_link_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline bool rc_list_linked(const rc_link_t *n)
{
    return n->next != n;
}

#endif
