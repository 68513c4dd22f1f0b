/*
 * What the keyed breaker set needs from the breaker: the handle's layout
 * (so the set can keep one handle per slot without allocating each), and
 * the operations a set performs on the blocks of its slots.
 */
#ifndef RESIL_INTERNAL_BREAKER_H
#define RESIL_INTERNAL_BREAKER_H

#include "atomic.h"
#include "resil/breaker.h"

typedef struct resil__breaker_block block;

struct resil_breaker {
    block *blk;
    resil_clock_t clock;
    /* Cheap reads for decisions that tolerate a tick of lag. With the
     * default clock, time-window buckets of 50 ms or more are picked on
     * CLOCK_MONOTONIC_COARSE, and so is the "still open?" test when the open
     * wait is 50 ms or more: the same time base, at most one kernel tick
     * (1-4 ms) behind, about 20 ns cheaper than a precise read, and unlike
     * the vDSO's precise read it does not wait for the locked instructions
     * before it. A lagging read can only make a bucket or a deadline end a
     * tick later. Transitions and deadlines use the precise clock. Any
     * clock the caller sets is used for everything. */
    resil_clock_t bucket_clock;
    resil_clock_t open_clock;
    resil_breaker_listener_fn listener;
    void *user;
    uint64_t seed;
    resil__atomic_u64 draws; /* jitter draws, for a repeatable sequence */
    resil_allocator_t by;
    size_t alloc_size;
};

/* Makes @p h a handle on the initialized block @p blk with @p local's
 * settings (NULL: defaults), without allocating; resil_breaker_free() must
 * not be called on it. */
void resil__breaker_bind(resil_breaker_t *h, void *blk, const resil_breaker_local_t *local);

/* Empties the breaker for reuse under a new key: every counter, window and
 * probe word is zeroed with atomic stores and a fresh CLOSED generation
 * begins (no listener call). Outcomes of permits granted before are stale. */
void resil__breaker_recycle(resil_breaker_t *h);

/* The checks resil_breaker_attach() makes, without making a handle. */
resil_status resil__breaker_validate(const void *mem, size_t len);

/* Whether the breaker may be evicted from a set: CLOSED (also in shadow
 * mode), never OPEN, HALF_OPEN, DISABLED or FORCED_OPEN. */
int resil__breaker_evictable(const resil_breaker_t *h);

#endif /* RESIL_INTERNAL_BREAKER_H */
