/* Dispatch of the bus interface to its backend. */
#include "bus.h"

int rc_bus_publish(rc_bus_t *b, const rc_bus_event_t *e, rc_bus_done_fn done, void *arg)
{
    return b->ops->publish(b, e, done, arg);
}

int rc_bus_ready(rc_bus_t *b, char *reason, size_t reason_len)
{
    return b->ops->ready(b, reason, reason_len);
}

void rc_bus_free(rc_bus_t *b)
{
    if (b != NULL)
        b->ops->destroy(b);
}
