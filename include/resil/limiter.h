/**
 * @file resil/limiter.h
 * @brief Adaptive concurrency limiter: find the right cap from latency.
 *
 * Like a bulkhead, the limiter admits at most `limit` calls at once, but
 * the limit moves: each release reports the call's latency and whether the
 * dependency dropped it, and an algorithm adjusts the limit between
 * `min_limit` and `max_limit`.
 *
 * - RESIL_LIMITER_AIMD (as Netflix concurrency-limits' AIMDLimit, with
 *   TCP-style pacing): a drop or a latency above `timeout_ns` multiplies the
 *   limit by `backoff_ratio`, at most once per `limit` samples (one round of
 *   calls); any other sample adds 1/limit, i.e. +1 per round, while the
 *   limit is in use (in flight >= limit / 2).
 * - RESIL_LIMITER_GRADIENT (in the spirit of Netflix Gradient2 and Envoy's
 *   adaptive concurrency filter): long-term RTT = the no-load baseline, the
 *   minimum RTT seen, re-measured every `probe_interval` samples by pinning
 *   the limit to `min_limit` for `probe_samples` calls (Envoy's minRTT
 *   window), so the baseline can also rise; short-term RTT = each sample.
 *   gradient = clamp(rtt_tolerance * baseline / rtt, 0.5, 1.0);
 *   limit = (1 - smoothing) * limit + smoothing * (gradient * limit +
 *   queue_size). Against a server of capacity C whose latency grows with
 *   concurrency above C, the fixed point is rtt_tolerance * C + queue_size.
 *
 * Memory: one pointer-free block for caller memory or MAP_SHARED memory
 * (several processes then share one limit). Unlike the bulkhead, permits
 * are not attributed to processes: a process that dies holding permits
 * keeps them counted until resil_limiter_reset_in_flight() (see
 * docs/limits.md). A permit is a small value on the caller's stack.
 *
 * Thread safety: every function is thread-safe, from any attached process.
 * Progress: lock-free; acquire and release make no system call (release
 * reads no clock: the caller passes the latency it measured).
 */
#ifndef RESIL_LIMITER_H
#define RESIL_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest max_limit. */
#define RESIL_LIMITER_MAX_LIMIT 1000000

/** Limit algorithms. */
typedef enum resil_limiter_algorithm {
    RESIL_LIMITER_AIMD = 0,    /**< additive increase, multiplicative decrease */
    RESIL_LIMITER_GRADIENT = 1 /**< baseline RTT vs sample RTT gradient */
} resil_limiter_algorithm;

/** Configuration, stored in the block; out-of-range values are rejected
 * with RESIL_E_INVALID_CONFIG naming the field. */
typedef struct resil_limiter_config {
    resil_limiter_algorithm algorithm; /**< default RESIL_LIMITER_GRADIENT */
    uint32_t initial_limit;            /**< min_limit..max_limit; default 20 */
    uint32_t min_limit;                /**< >= 1; default 4 */
    uint32_t max_limit;                /**< min_limit..RESIL_LIMITER_MAX_LIMIT; default 1000 */
    /** AIMD: multiply by this on a drop or timeout, in (0.5, 1). Default 0.9. */
    double backoff_ratio;
    /** AIMD: a latency above this counts as a drop, ns, >= 1. Default 5 s. */
    uint64_t timeout_ns;
    /** GRADIENT: weight of each update, in (0, 1]. Default 0.2. */
    double smoothing;
    /** GRADIENT: RTT inflation tolerated, in [1, 10]. Default 1.0. */
    double rtt_tolerance;
    /** GRADIENT: calls allowed to queue above the current limit, 0..1000.
     * Default 4. */
    uint32_t queue_size;
    /** GRADIENT: samples between baseline re-measurements, >= 10 and >
     * probe_samples; 0 = never re-measure (the baseline can then only
     * fall). Default 5000. */
    uint32_t probe_interval;
    /** GRADIENT: calls in a re-measurement, 1..10000. Default 20. */
    uint32_t probe_samples;
} resil_limiter_config_t;

/** @return the documented defaults. Never fails. */
RESIL_API resil_limiter_config_t resil_limiter_config_default(void);
/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL; RESIL_E_INVALID_CONFIG. */
RESIL_API resil_status resil_limiter_config_check(const resil_limiter_config_t *cfg);
/** @return bytes of state (a multiple of 64); 0 for NULL or invalid. */
RESIL_API size_t resil_limiter_size(const resil_limiter_config_t *cfg);
/** Compile-time bound of resil_limiter_size(). */
#define RESIL_LIMITER_SIZE() ((size_t)576)

/** Process-local handle. Opaque. */
typedef struct resil_limiter resil_limiter_t;

/** @return RESIL_OK; RESIL_E_INVALID_ARG (NULL, misaligned, short memory);
 * RESIL_E_INVALID_CONFIG. On error @p mem is untouched. */
RESIL_API resil_status resil_limiter_init(void *mem, size_t len, const resil_limiter_config_t *cfg);
/** @return RESIL_OK; RESIL_E_INVALID_ARG; RESIL_E_NOT_INITIALIZED;
 * RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION; RESIL_E_NO_MEMORY.
 * On error `*out` is NULL. */
RESIL_API resil_status resil_limiter_attach(void *mem, size_t len, resil_limiter_t **out);
/** @return RESIL_OK; RESIL_E_INVALID_ARG; RESIL_E_INVALID_CONFIG;
 * RESIL_E_NO_MEMORY. On error `*out` is NULL. */
RESIL_API resil_status resil_limiter_new(const resil_limiter_config_t *cfg, resil_limiter_t **out);
/** Frees a handle (and the state of _new). Accepts NULL. */
RESIL_API void resil_limiter_free(resil_limiter_t *l);

/** A permit; fields are private. */
typedef struct resil_limiter_permit {
    uint32_t id_;
    uint16_t gen_;
    uint16_t live_;
} resil_limiter_permit_t;

/**
 * Admits a call if fewer than `limit` are in flight. Never blocks.
 * @return RESIL_OK; RESIL_E_LIMIT_REACHED; RESIL_E_INVALID_ARG for NULL.
 */
RESIL_API resil_status resil_limiter_try_acquire(resil_limiter_t *l,
                                                 resil_limiter_permit_t *permit);

/**
 * Ends an admitted call and feeds its sample to the algorithm.
 * @param latency_ns the call's duration as the caller measured it.
 * @param dropped 1 if the dependency dropped or rejected the call (a
 *        timeout, 503, overload error), else 0.
 * @return RESIL_OK; RESIL_E_INVALID_ARG for NULL arguments, a permit of
 *         another limiter, one never granted or already released, or a
 *         release with nothing in flight: nothing changes.
 */
RESIL_API resil_status resil_limiter_release(resil_limiter_t *l, resil_limiter_permit_t *permit,
                                             uint64_t latency_ns, int dropped);

/**
 * Ends an admitted call without a sample (the call was cancelled before it
 * said anything about the dependency).
 * @return as resil_limiter_release().
 */
RESIL_API resil_status resil_limiter_release_ignored(resil_limiter_t *l,
                                                     resil_limiter_permit_t *permit);

/**
 * Sets the in-flight count to @p in_flight, for a supervisor that knows
 * how many calls are really running after a worker died holding permits.
 * @return RESIL_OK; RESIL_E_INVALID_ARG for NULL or a count above
 * RESIL_LIMITER_MAX_LIMIT.
 */
RESIL_API resil_status resil_limiter_reset_in_flight(resil_limiter_t *l, uint32_t in_flight);

/** A snapshot. */
typedef struct resil_limiter_stats {
    uint32_t limit;       /**< the limit in force (min_limit while re-measuring) */
    uint32_t in_flight;   /**< calls admitted and not released */
    double estimate;      /**< the algorithm's limit, unrounded */
    uint64_t baseline_ns; /**< GRADIENT: the no-load RTT in use (0: none yet) */
    uint64_t granted;     /**< calls admitted */
    uint64_t rejected;    /**< calls refused */
    uint64_t samples;     /**< latency samples taken */
    uint64_t drops;       /**< samples reported dropped or timed out */
    uint64_t probes;      /**< GRADIENT: baseline re-measurements started */
} resil_limiter_stats_t;

/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_limiter_stats(const resil_limiter_t *l, resil_limiter_stats_t *out);

/** Validates the block with plain reads (config, limit within bounds).
 * @return RESIL_OK; RESIL_E_CORRUPT; RESIL_E_INVALID_ARG. */
RESIL_API resil_status resil_limiter_check(const resil_limiter_t *l);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_LIMITER_H */
