/**
 * @file resil/breaker_set.h
 * @brief Keyed breakers: one circuit breaker per upstream host, endpoint or
 * tenant, in a fixed-capacity table with bounded memory.
 *
 * A set is sized for `capacity` breakers (its table has twice as many
 * slots), all with the same configuration, found by a key of up to
 * `key_max` bytes (any bytes). A key seen for the
 * first time gets a fresh CLOSED breaker. When the table has no room on the
 * key's probe path, an idle CLOSED breaker is evicted to make room; OPEN,
 * HALF_OPEN, DISABLED and FORCED_OPEN breakers are never evicted, because
 * forgetting them would send traffic to a dependency known to be failing.
 * If nothing can be evicted, the call gets RESIL_E_FULL (fail open or closed
 * as you choose: the set does not decide for you).
 *
 * Like a single breaker, a set is one pointer-free block that can live in
 * memory shared by several processes; every process attaches with its own
 * process-local handle (clock and listener).
 *
 * Thread safety: every function is thread-safe and may be called from any
 * process attached to the block.
 * Progress: lock-free: lookup, insert, eviction and the breaker operations
 * never wait for another thread. A slot is briefly busy while a key is
 * written into it; lookups pass it by, so two threads inserting the same new
 * key at the same moment may create two entries, of which lookups then use
 * the first and the other ages out. A process that dies while its slot is
 * busy leaves it busy for 1 s, after which others reclaim it.
 */
#ifndef RESIL_BREAKER_SET_H
#define RESIL_BREAKER_SET_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/breaker.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most keys in one set. */
#define RESIL_BREAKER_SET_MAX_CAPACITY 1048576
/** Longest key, in bytes. */
#define RESIL_BREAKER_SET_MAX_KEY 1024

/** Configuration of a set, stored in its block. */
typedef struct resil_breaker_set_config {
    /** Configuration of every breaker in the set (see breaker.h). Default:
     * resil_breaker_config_default() with stripes = 1, since a set spreads
     * its load over many breakers. */
    resil_breaker_config_t breaker;
    /** Most keys held at once, 1..RESIL_BREAKER_SET_MAX_CAPACITY. The table
     * has twice as many slots, rounded up to a power of two. Default 1024. */
    uint32_t capacity;
    /** Longest key in bytes, 1..RESIL_BREAKER_SET_MAX_KEY. Default 64. */
    uint32_t key_max;
    /** A CLOSED breaker not used for this long (ns) may be evicted to make
     * room; 0 means any CLOSED breaker may be. Default 60 s. */
    uint64_t idle_evict_ns;
} resil_breaker_set_config_t;

/** @return the defaults documented on each field. Never fails. */
RESIL_API resil_breaker_set_config_t resil_breaker_set_config_default(void);

/**
 * Bytes a set with @p cfg needs (a multiple of 64).
 * @return the size; 0 if @p cfg is NULL or invalid (check it with
 *         resil_breaker_set_init() or resil_breaker_set_new() for the
 *         detail).
 */
RESIL_API size_t resil_breaker_set_size(const resil_breaker_set_config_t *cfg);

/** Process-local handle on a set. Opaque. */
typedef struct resil_breaker_set resil_breaker_set_t;

/** Called once per transition of any breaker in the set, with its key. */
typedef void (*resil_breaker_set_listener_fn)(void *user, const void *key, size_t key_len,
                                              const resil_breaker_event_t *event);

/** Process-local settings of a set handle. */
typedef struct resil_breaker_set_local {
    resil_clock_t clock;                    /**< all-zero: CLOCK_MONOTONIC */
    resil_breaker_set_listener_fn listener; /**< NULL: no events */
    void *user;                             /**< passed to the listener */
    uint64_t seed;                          /**< jitter seed; 0: random */
} resil_breaker_set_local_t;

/**
 * Writes an empty set into caller memory (64-byte aligned, at least
 * resil_breaker_set_size() bytes). Initializing every slot's breaker is
 * O(capacity).
 * @return RESIL_OK; RESIL_E_INVALID_ARG for NULL, misaligned or short
 *         memory; RESIL_E_INVALID_CONFIG with a detail naming the field
 *         ("breaker_set.capacity", or "breaker.*" for the breakers').
 */
RESIL_API resil_status resil_breaker_set_init(void *mem, size_t len,
                                              const resil_breaker_set_config_t *cfg);

/**
 * Makes a handle on an initialized set after validating it. Allocates the
 * handle (about 200 bytes per slot: one breaker handle each).
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG; RESIL_E_NOT_INITIALIZED;
 *         RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_breaker_set_attach(void *mem, size_t len,
                                                const resil_breaker_set_local_t *local,
                                                resil_breaker_set_t **out);

/**
 * Allocates a set for this process. @p local may be NULL.
 * @return as resil_breaker_set_init() and resil_breaker_set_attach().
 */
RESIL_API resil_status resil_breaker_set_new(const resil_breaker_set_config_t *cfg,
                                             const resil_breaker_set_local_t *local,
                                             resil_breaker_set_t **out);

/** Frees a handle (and the state, for resil_breaker_set_new()). Accepts
 * NULL. */
RESIL_API void resil_breaker_set_free(resil_breaker_set_t *s);

/** A permit from a set: the breaker's permit plus where it lives. */
typedef struct resil_breaker_set_permit {
    resil_breaker_permit_t breaker; /**< retry_after_ns is meaningful on rejection */
    uint32_t slot_;
    uint32_t epoch_;
} resil_breaker_set_permit_t;

/**
 * Finds (or creates) the breaker for @p key and asks it to admit a call.
 * @return what resil_breaker_acquire() returns; RESIL_E_FULL if the key is
 *         new and no slot on its path is free or evictable (no permit);
 *         RESIL_E_INVALID_ARG for NULL arguments, an empty key or one longer
 *         than key_max.
 */
RESIL_API resil_status resil_breaker_set_acquire(resil_breaker_set_t *s, const void *key,
                                                 size_t key_len,
                                                 resil_breaker_set_permit_t *permit);

/**
 * Reports the outcome of a call admitted by resil_breaker_set_acquire().
 * @return what resil_breaker_record() returns; RESIL_E_STALE also when the
 *         key's breaker was evicted meanwhile (nothing is recorded);
 *         RESIL_E_INVALID_ARG for NULL arguments or a permit of no slot.
 */
RESIL_API resil_status resil_breaker_set_record(resil_breaker_set_t *s,
                                                resil_breaker_set_permit_t *permit,
                                                resil_outcome outcome, uint64_t duration_ns);

/**
 * The breaker handle of @p key, if the set holds it, for inspection and
 * manual transitions (resil_breaker_stats(), resil_breaker_force_open(),
 * ...). The handle belongs to the set: do not free it; it stays valid while
 * the set handle lives, but may come to serve another key after an
 * eviction, so use it at once.
 * @return RESIL_OK and `*out`; RESIL_E_NOT_FOUND; RESIL_E_INVALID_ARG.
 */
RESIL_API resil_status resil_breaker_set_find(resil_breaker_set_t *s, const void *key,
                                              size_t key_len, resil_breaker_t **out);

/** Counters of a set. */
typedef struct resil_breaker_set_stats {
    uint32_t capacity;  /**< keys the set is sized for */
    uint32_t slots;     /**< slots in the table */
    uint32_t keys;      /**< keys held now */
    uint32_t busy;      /**< slots being written now, or abandoned by a dead process */
    uint64_t inserts;   /**< keys added */
    uint64_t evictions; /**< idle CLOSED breakers evicted */
    uint64_t full;      /**< acquires refused with RESIL_E_FULL */
} resil_breaker_set_stats_t;

/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL arguments. */
RESIL_API resil_status resil_breaker_set_stats(resil_breaker_set_t *s,
                                               resil_breaker_set_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_BREAKER_SET_H */
