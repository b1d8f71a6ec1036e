/* Long-term user profiles: the store interface (in-memory here; Redis behind the same
 * interface) and the profile codec that turns a session's state into a small MessagePack
 * document and merges one back. Stores hold opaque bytes; only this codec reads them. */
#ifndef RC_PROFILE_H
#define RC_PROFILE_H

#include "engine/engine.h"
#include "wbuf.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct rc_profile_store rc_profile_store_t;

/* Result of rc_profile_load(): status 0 with the bytes (borrowed for the call), RC_ENOENT
 * when the user has no profile, or another negative code. `user` is borrowed too. */
typedef void (*rc_profile_loaded_fn)(void *ctx, const char *user, size_t user_len, int status,
                                     const void *data, size_t len);

typedef struct rc_profile_ops {
    const char *name;
    int (*load)(rc_profile_store_t *s, const char *user, size_t user_len);
    int (*save)(rc_profile_store_t *s, const char *user, size_t user_len, const void *data,
                size_t len);
    int (*erase)(rc_profile_store_t *s, const char *user, size_t user_len);
    int (*ready)(rc_profile_store_t *s, char *reason, size_t reason_len);
    void (*destroy)(rc_profile_store_t *s);
} rc_profile_ops_t;

struct rc_profile_store {
    const rc_profile_ops_t *ops;
    rc_profile_loaded_fn on_loaded; /* set by the owner before the first load */
    void *ctx;
};

/** Asks for a user's profile; the answer comes through s->on_loaded on a later loop turn,
 * never inside this call. Returns 0, or a negative code (then on_loaded never fires). */
int rc_profile_load(rc_profile_store_t *s, const char *user, size_t user_len);

/** Stores a user's profile (bytes copied). Returns 0 or a negative code. */
int rc_profile_save(rc_profile_store_t *s, const char *user, size_t user_len, const void *data,
                    size_t len);

/** Deletes a user's profile. Returns 0 (also when there was none) or a negative code. */
int rc_profile_erase(rc_profile_store_t *s, const char *user, size_t user_len);

/** 0 when usable; otherwise a negative code and a reason. */
int rc_profile_ready(rc_profile_store_t *s, char *reason, size_t reason_len);

/** Frees the store. NULL is a no-op. */
void rc_profile_store_free(rc_profile_store_t *s);

/** The in-memory store (the embedded default). Deferred answers run on `defer`'s loop
 * turns; `defer` is borrowed and must outlive the store. NULL when out of memory. */
struct rc_defer;
rc_profile_store_t *rc_profile_memory_new(struct rc_defer *defer);

/** Encodes the long-term part of `u` (category affinities, recent and excluded items by
 * id) as a profile document into `out`. Returns 0 or RC_ENOMEM. */
int rc_profile_encode(const rc_catalog_t *c, const rc_user_state_t *u, int64_t updated_ms,
                      rc_wbuf_t *out);

/** Merges a stored profile into `u`: its items come before the session's own recent ones,
 * its categories count at half weight. Unknown items are skipped (or learned, in an open
 * catalog). Returns 0 or RC_EPARSE for a document that is not a profile. */
int rc_profile_merge(rc_catalog_t *c, rc_user_state_t *u, const void *data, size_t len);

#endif
