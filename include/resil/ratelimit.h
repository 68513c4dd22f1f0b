/**
 * @file resil/ratelimit.h
 * @brief Rate limiters: cap how often calls are made, alone or per key.
 *
 * The limiter is GCRA, the generic cell rate algorithm (ATM Forum TM 4.0,
 * "virtual scheduling"; the algorithm behind many API gateways' limits):
 * `rate` permits per `period_ns`, with bursts of up to `burst` permits.
 * Its whole state is one 64-bit word, the theoretical arrival time, and a
 * decision is one CAS on it. Emission interval T = period_ns / rate
 * (rounded to the nearest ns: the effective rate is period_ns / T, within
 * 0.5 / T of the configured one, i.e. better than 0.05 % for T >= 1 us);
 * tolerance tau = T * (burst - 1). Idle time refills the burst; nothing is
 * refilled by a timer.
 *
 * Two ways to use it:
 * - policing: resil_ratelimit_try_acquire() admits or rejects at once and,
 *   on rejection, says how long until the request would be admitted;
 * - smoothing: resil_ratelimit_reserve() books the permits even when they
 *   are not due yet and returns how long to wait first, so callers that
 *   wait as told are spaced evenly at T (burst 1) however they arrive;
 *   resil_ratelimit_acquire_wait() does the waiting on the handle's clock.
 *
 * The keyed variant (resil_ratelimit_set_*) keeps one GCRA word per key
 * (client, tenant) in a fixed-capacity table: bounded memory, no
 * allocation after creation. A key whose bucket is full again (its TAT is
 * in the past) is indistinguishable from a key never seen, so such entries
 * are reused for new keys without changing any decision. Only when every
 * candidate slot of a key belongs to a key still being limited does the set
 * answer RESIL_E_FULL (the caller picks fail-open or fail-closed).
 *
 * Memory and processes: both are pointer-free blocks for caller memory,
 * including MAP_SHARED memory used by several processes (same clock domain
 * for all: CLOCK_MONOTONIC is system-wide). A rate limiter holds no
 * permits, so a process that dies mid-call loses or mints nothing: a crash
 * before the CAS admitted nothing, a crash after it consumed what it was
 * admitted.
 *
 * Thread safety: every function is thread-safe, from any attached process.
 * Progress: lock-free; a decision reads the clock once (none with the *_at
 * variants) and makes no other system call; acquire_wait may sleep.
 */
#ifndef RESIL_RATELIMIT_H
#define RESIL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest burst * T, in ns (about 146 years): beyond it a config is
 * rejected as overflowing. */
#define RESIL_RATELIMIT_MAX_HORIZON_NS (UINT64_C(1) << 62)

/** Configuration, stored in the block. Out-of-range values are rejected
 * with RESIL_E_INVALID_CONFIG naming the field, never clamped. */
typedef struct resil_ratelimit_config {
    /** Permits per period, >= 1, at most period_ns (T >= 1 ns). Default 100. */
    uint64_t rate;
    /** The period in ns, >= 1. Default 1 s. */
    uint64_t period_ns;
    /** Most permits admitted back to back after idleness, >= 1;
     * burst * T <= RESIL_RATELIMIT_MAX_HORIZON_NS. 1 means strictly
     * spaced. Default 10. */
    uint64_t burst;
} resil_ratelimit_config_t;

/** @return the documented defaults. Never fails. */
RESIL_API resil_ratelimit_config_t resil_ratelimit_config_default(void);

/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL; RESIL_E_INVALID_CONFIG
 * (zero rate, period or burst; a rate above one per ns; burst * T
 * overflowing) with a detail naming the field. */
RESIL_API resil_status resil_ratelimit_config_check(const resil_ratelimit_config_t *cfg);

/** @return bytes of state (a multiple of 64); 0 for NULL or invalid. */
RESIL_API size_t resil_ratelimit_size(const resil_ratelimit_config_t *cfg);

/** Compile-time bound of resil_ratelimit_size(). */
#define RESIL_RATELIMIT_SIZE() ((size_t)768)

/** Process-local handle. Opaque. */
typedef struct resil_ratelimit resil_ratelimit_t;

/** Process-local settings of a handle. */
typedef struct resil_ratelimit_local {
    resil_clock_t clock; /**< all-zero: CLOCK_MONOTONIC */
} resil_ratelimit_local_t;

/** Writes a new limiter (full burst available) into @p mem.
 * @return RESIL_OK; RESIL_E_INVALID_ARG (NULL, misaligned or short
 * memory); RESIL_E_INVALID_CONFIG. On error @p mem is untouched. */
RESIL_API resil_status resil_ratelimit_init(void *mem, size_t len,
                                            const resil_ratelimit_config_t *cfg);

/** Handle on an initialized limiter. @p local may be NULL.
 * @return RESIL_OK; RESIL_E_INVALID_ARG; RESIL_E_NOT_INITIALIZED;
 * RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION; RESIL_E_NO_MEMORY.
 * On error `*out` is NULL. */
RESIL_API resil_status resil_ratelimit_attach(void *mem, size_t len,
                                              const resil_ratelimit_local_t *local,
                                              resil_ratelimit_t **out);

/** Allocates a limiter for this process. @p local may be NULL.
 * @return RESIL_OK; RESIL_E_INVALID_ARG; RESIL_E_INVALID_CONFIG;
 * RESIL_E_NO_MEMORY. On error `*out` is NULL. */
RESIL_API resil_status resil_ratelimit_new(const resil_ratelimit_config_t *cfg,
                                           const resil_ratelimit_local_t *local,
                                           resil_ratelimit_t **out);

/** Frees a handle (and the state of _new). Accepts NULL. */
RESIL_API void resil_ratelimit_free(resil_ratelimit_t *r);

/**
 * Admits @p n permits now or rejects them (policing).
 * @param wait_ns may be NULL; on RESIL_E_RATE_LIMITED receives the ns until
 *        the same request would be admitted; 0 on RESIL_OK.
 * @return RESIL_OK; RESIL_E_RATE_LIMITED (nothing consumed);
 *         RESIL_E_INVALID_ARG for NULL @p r, n = 0 or n > burst (a request
 *         that could never be admitted).
 */
RESIL_API resil_status resil_ratelimit_try_acquire(resil_ratelimit_t *r, uint64_t n,
                                                   uint64_t *wait_ns);

/** resil_ratelimit_try_acquire() at the caller's time @p now_ns (same
 * clock domain). Same returns. */
RESIL_API resil_status resil_ratelimit_try_acquire_at(resil_ratelimit_t *r, uint64_t n,
                                                      uint64_t now_ns, uint64_t *wait_ns);

/**
 * Books @p n permits even if they are not due yet, as long as the caller
 * would have to wait at most @p max_wait_ns for them (smoothing).
 * @param wait_ns receives the ns to wait before proceeding (RESIL_OK) or the
 *        ns until admission without booking ahead (RESIL_E_RATE_LIMITED).
 * @return RESIL_OK (booked: wait, then go); RESIL_E_RATE_LIMITED (nothing
 *         booked); RESIL_E_INVALID_ARG as for try_acquire.
 */
RESIL_API resil_status resil_ratelimit_reserve(resil_ratelimit_t *r, uint64_t n,
                                               uint64_t max_wait_ns, uint64_t *wait_ns);

/** resil_ratelimit_reserve() at the caller's time. Same returns. */
RESIL_API resil_status resil_ratelimit_reserve_at(resil_ratelimit_t *r, uint64_t n,
                                                  uint64_t max_wait_ns, uint64_t now_ns,
                                                  uint64_t *wait_ns);

/** Reserves, then sleeps the wait on the handle's clock (a manual clock
 * advances instead). @return as resil_ratelimit_reserve(). */
RESIL_API resil_status resil_ratelimit_acquire_wait(resil_ratelimit_t *r, uint64_t n,
                                                    uint64_t max_wait_ns);

/** A snapshot. */
typedef struct resil_ratelimit_stats {
    uint64_t emission_interval_ns; /**< T */
    uint64_t tolerance_ns;         /**< tau = T * (burst - 1) */
    uint64_t tat_ns;               /**< theoretical arrival time (0: never used) */
    uint64_t admitted;             /**< permits admitted (reserved ones included) */
    uint64_t rejected;             /**< requests rejected */
} resil_ratelimit_stats_t;

/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_ratelimit_stats(const resil_ratelimit_t *r,
                                             resil_ratelimit_stats_t *out);

/** Validates the block with plain reads (config consistent with T and tau).
 * @return RESIL_OK; RESIL_E_CORRUPT; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_ratelimit_check(const resil_ratelimit_t *r);

/* ------------------------------------------------------------------ */
/** @name Keyed rate limiting
 * @{ */

/** Most entries of a set. */
#define RESIL_RATELIMIT_SET_MAX_CAPACITY (UINT32_C(1) << 24)

/** Configuration of a keyed set; every key gets the same rate. */
typedef struct resil_ratelimit_set_config {
    resil_ratelimit_config_t rate; /**< the per-key limit */
    /** Entries (distinct keys held at once), a power of two in
     * 8..RESIL_RATELIMIT_SET_MAX_CAPACITY. Default 1024. 16 bytes each. */
    uint32_t capacity;
    /** Slots a key may occupy (linear probing distance), 1..64, at most
     * capacity. Default 8. */
    uint32_t probe;
} resil_ratelimit_set_config_t;

/** @return the defaults. Never fails. */
RESIL_API resil_ratelimit_set_config_t resil_ratelimit_set_config_default(void);
/** @return RESIL_OK; RESIL_E_INVALID_ARG; RESIL_E_INVALID_CONFIG. */
RESIL_API resil_status resil_ratelimit_set_config_check(const resil_ratelimit_set_config_t *cfg);
/** @return bytes of state; 0 for NULL or invalid. */
RESIL_API size_t resil_ratelimit_set_size(const resil_ratelimit_set_config_t *cfg);
/** Compile-time bound of resil_ratelimit_set_size(). */
#define RESIL_RATELIMIT_SET_SIZE(capacity) ((size_t)(704 + 16 * (size_t)(capacity)))

/** Process-local handle on a set. Opaque. */
typedef struct resil_ratelimit_set resil_ratelimit_set_t;

/** As resil_ratelimit_init(). */
RESIL_API resil_status resil_ratelimit_set_init(void *mem, size_t len,
                                                const resil_ratelimit_set_config_t *cfg);
/** As resil_ratelimit_attach(). */
RESIL_API resil_status resil_ratelimit_set_attach(void *mem, size_t len,
                                                  const resil_ratelimit_local_t *local,
                                                  resil_ratelimit_set_t **out);
/** As resil_ratelimit_new(). */
RESIL_API resil_status resil_ratelimit_set_new(const resil_ratelimit_set_config_t *cfg,
                                               const resil_ratelimit_local_t *local,
                                               resil_ratelimit_set_t **out);
/** Frees a handle. Accepts NULL. */
RESIL_API void resil_ratelimit_set_free(resil_ratelimit_set_t *s);

/**
 * Admits @p n permits for the key @p key (@p key_len bytes, any bytes, may
 * be 0 long) or rejects them. Keys are told apart by a 64-bit hash of
 * their bytes (two keys collide with probability about 2^-64 per pair).
 * @return RESIL_OK; RESIL_E_RATE_LIMITED (`*wait_ns` as for the single
 *         limiter); RESIL_E_FULL if the key is new and every slot it may
 *         use holds a key that is still being limited (nothing consumed);
 *         RESIL_E_INVALID_ARG for NULL @p s, NULL @p key with a length,
 *         n = 0 or n > burst.
 */
RESIL_API resil_status resil_ratelimit_set_try_acquire(resil_ratelimit_set_t *s, const void *key,
                                                       size_t key_len, uint64_t n,
                                                       uint64_t *wait_ns);

/** The same at the caller's time. Same returns. */
RESIL_API resil_status resil_ratelimit_set_try_acquire_at(resil_ratelimit_set_t *s, const void *key,
                                                          size_t key_len, uint64_t n,
                                                          uint64_t now_ns, uint64_t *wait_ns);

/** A snapshot of a set. */
typedef struct resil_ratelimit_set_stats {
    uint32_t capacity;  /**< entries */
    uint32_t used;      /**< entries holding a key (idle ones included) */
    uint64_t admitted;  /**< permits admitted */
    uint64_t rejected;  /**< requests rate-limited */
    uint64_t full;      /**< requests refused with RESIL_E_FULL */
    uint64_t evictions; /**< idle entries reused for another key */
} resil_ratelimit_set_stats_t;

/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_ratelimit_set_stats(const resil_ratelimit_set_t *s,
                                                 resil_ratelimit_set_stats_t *out);

/** Validates the block with plain reads. @return RESIL_OK; RESIL_E_CORRUPT;
 * RESIL_E_INVALID_ARG. */
RESIL_API resil_status resil_ratelimit_set_check(const resil_ratelimit_set_t *s);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* RESIL_RATELIMIT_H */
