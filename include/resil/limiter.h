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
 *   limit is in use: when the sample's batch (below) is applied, the held
 *   permits below the limit, plus the call just ended, are at least half
 *   the limit. That count is a scan of the permit cells, with early exit,
 *   made once per batch.
 * - RESIL_LIMITER_GRADIENT (in the spirit of Netflix Gradient2 and Envoy's
 *   adaptive concurrency filter): long-term RTT = the no-load baseline, the
 *   minimum RTT seen, re-measured every `probe_interval` samples by pinning
 *   the limit to `min_limit` for `probe_samples` calls (Envoy's minRTT
 *   window), so the baseline can also rise; short-term RTT = the mean RTT of
 *   a round of max(limit, 10) samples. Once per round:
 *   gradient = clamp(rtt_tolerance * baseline / rtt, 0.5, 1.0);
 *   limit = (1 - smoothing) * limit + smoothing * (gradient * limit +
 *   queue_size), except that a gradient of 1 while the limit is not in use
 *   (as for AIMD) changes nothing. Against a server of capacity C whose
 *   latency grows with concurrency above C, the fixed point is
 *   rtt_tolerance * C + queue_size.
 *
 * Batching: samples do not each write shared memory. A thread's samples
 * collect in its own counter line (plain stores) and reach the algorithm
 * in batches of max(16, limit / 8) samples, one CAS per batch; an AIMD
 * drop is applied at once, with the batch it ends. So each thread holds
 * back fewer than one batch: with T threads the algorithm runs at most
 * T batches (about T / 8 rounds, for limits of 128 and more) behind, and a
 * thread that stops calling leaves its last partial batch unapplied.
 * Threads beyond `stripes` apply each sample at once.
 *
 * Admission takes a free permit cell whose index is below the limit in
 * force. Lowering the limit revokes nothing: in flight may exceed a freshly
 * lowered limit until holders release (as in Netflix's limiters), but never
 * the largest limit in force while the oldest current holder held its
 * permit (see `limit_peak`).
 *
 * Crash safety across processes, as for the bulkhead (resil/bulkhead.h):
 * the state is one pointer-free block that may live in MAP_SHARED memory;
 * every permit is a cell that records, in the same CAS that grants it,
 * which attached process (pid + start time + epoch) holds it. Permits of a
 * process that died are reclaimed lazily (an acquire that finds no free
 * cell below the limit checks, at most once per `reclaim_interval_ns`,
 * whether holders are alive) or explicitly (resil_limiter_reclaim_dead(),
 * resil_limiter_reclaim_pid()). Nothing is lost or minted, even when a
 * process dies at any instruction; a release of a reclaimed permit returns
 * RESIL_E_NOT_OWNER and changes nothing. The algorithm's words (estimate,
 * round, baseline) are each changed by single CASes, so a crash can lose
 * at most the dying thread's unapplied batch.
 *
 * Memory: caller memory must be RESIL_BLOCK_ALIGN (64) aligned and at least
 * resil_limiter_size() bytes, and must outlive every handle on it. Init
 * writes it; attach validates magic, kind, layout version, size, config
 * checksum, the limit and estimate, and every cell. The library never
 * allocates inside it.
 *
 * Thread safety: every function is thread-safe, from any attached process.
 * Progress: try_acquire and release are lock-free and make no system call
 * (release reads no clock: the caller passes the latency it measured; the
 * slow path that looks for dead holders runs only when no permit is free,
 * at most once per reclaim interval).
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

/** Largest max_limit (permits are 16-bit cells of one table). */
#define RESIL_LIMITER_MAX_LIMIT 65535
/** Most processes attached at once (each attached process takes a record). */
#define RESIL_LIMITER_MAX_PROCESSES 254

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
     * fall). Counted in applied batches, so a re-measurement starts at the
     * end of the round that reaches it. Default 5000. */
    uint32_t probe_interval;
    /** GRADIENT: calls in a re-measurement, 1..10000. Default 20. */
    uint32_t probe_samples;
    /** Process records, 1..RESIL_LIMITER_MAX_PROCESSES. Default 64. */
    uint32_t max_processes;
    /** Counter lines a thread can own, a power of two 1..64 (as the
     * bulkhead's): each of the first `stripes` threads (over all processes)
     * counts and batches its samples on its own line; later threads share
     * one more line with atomic adds and apply each sample at once. 64
     * bytes each. Default 16. */
    uint32_t stripes;
    /** Lazy reclaim: an acquire that finds no free permit checks holders'
     * liveness at most this often, in ns; 0 turns lazy reclaim off
     * (explicit reclaim only). Default 100 ms. */
    uint64_t reclaim_interval_ns;
} resil_limiter_config_t;

/** @return the documented defaults. Never fails. */
RESIL_API resil_limiter_config_t resil_limiter_config_default(void);
/** @return RESIL_OK; RESIL_E_INVALID_ARG for NULL; RESIL_E_INVALID_CONFIG. */
RESIL_API resil_status resil_limiter_config_check(const resil_limiter_config_t *cfg);
/** @return bytes of state (a multiple of 64); 0 for NULL or invalid. */
RESIL_API size_t resil_limiter_size(const resil_limiter_config_t *cfg);
/** Compile-time upper bound of resil_limiter_size() for @p max_limit,
 * @p processes and @p stripes. */
#define RESIL_LIMITER_SIZE(max_limit, processes, stripes)                                          \
    ((size_t)(256 + 64 * ((size_t)(stripes) + 1) + 8 * ((size_t)(processes) + 8) +                 \
              4 * ((size_t)(max_limit) + 3) + 640))

/** Process-local handle. Opaque. */
typedef struct resil_limiter resil_limiter_t;

/** Process-local settings of a handle (never stored in the block). */
typedef struct resil_limiter_local {
    resil_clock_t clock; /**< paces lazy reclaim; all-zero: the coarse monotonic clock */
} resil_limiter_local_t;

/**
 * Writes a new limiter into @p mem (@p len bytes).
 * @return RESIL_OK; RESIL_E_INVALID_ARG (NULL, misaligned or short memory,
 *         NULL @p cfg); RESIL_E_INVALID_CONFIG. On error @p mem is untouched.
 */
RESIL_API resil_status resil_limiter_init(void *mem, size_t len, const resil_limiter_config_t *cfg);

/**
 * Makes a handle on an initialized limiter and registers the calling
 * process in it (or joins its existing record). Allocates the handle only.
 * @p local may be NULL.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG; RESIL_E_NOT_INITIALIZED;
 *         RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION;
 *         RESIL_E_FULL if every process record belongs to a live process;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_limiter_attach(void *mem, size_t len,
                                            const resil_limiter_local_t *local,
                                            resil_limiter_t **out);

/**
 * Allocates a limiter (state and handle) for this process. @p local may be
 * NULL.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG; RESIL_E_INVALID_CONFIG;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_limiter_new(const resil_limiter_config_t *cfg,
                                         const resil_limiter_local_t *local, resil_limiter_t **out);

/** Frees a handle (and the state of _new). Permits still held stay held
 * (release them first). The process record stays until the process dies.
 * Accepts NULL. */
RESIL_API void resil_limiter_free(resil_limiter_t *l);

/** A permit: a small value on the caller's stack, given back exactly once.
 * Fields are private. */
typedef struct resil_limiter_permit {
    uint32_t id_;   /**< which limiter */
    uint16_t cell_; /**< which cell */
    uint16_t tag_;  /**< process record + epoch written in the cell */
    uint16_t gen_;  /**< GRADIENT: the baseline re-measurement it belongs to */
    uint16_t live_; /**< 1 while held */
} resil_limiter_permit_t;

/**
 * Admits a call if a permit below the current limit is free. Never blocks.
 * @return RESIL_OK (`*permit` must be released); RESIL_E_LIMIT_REACHED;
 *         RESIL_E_INVALID_ARG for NULL arguments; RESIL_E_FULL if this
 *         process was reclaimed and no process record is free to register
 *         again.
 */
RESIL_API resil_status resil_limiter_try_acquire(resil_limiter_t *l,
                                                 resil_limiter_permit_t *permit);

/**
 * Ends an admitted call and feeds its sample to the algorithm.
 * @param latency_ns the call's duration as the caller measured it.
 * @param dropped 1 if the dependency dropped or rejected the call (a
 *        timeout, 503, overload error), else 0.
 * @return RESIL_OK; RESIL_E_NOT_OWNER if the permit was reclaimed (its
 *         process was declared dead) or was already given back through a
 *         copy: nothing changes (a permit names a cell and a process, so a
 *         copy released after the same process was granted that cell again
 *         releases the new permit: never release a copy); RESIL_E_INVALID_ARG for NULL arguments, a
 *         permit of another limiter, one never granted or already
 *         released: nothing changes.
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
 * Reclaims the permits and records of every attached process that is no
 * longer alive (checked by pid + start time). Makes system calls.
 * @return the number of permits reclaimed (>= 0); RESIL_E_INVALID_ARG
 *         (negative) for NULL.
 */
RESIL_API int resil_limiter_reclaim_dead(resil_limiter_t *l);

/**
 * Reclaims the permits and record of process @p pid without checking that
 * it is dead: for a supervisor that reaped it (an nginx master). Any later
 * release from that process returns RESIL_E_NOT_OWNER.
 * @return the number of permits reclaimed (>= 0, 0 when @p pid holds no
 *         record); RESIL_E_INVALID_ARG (negative) for NULL or pid <= 0.
 */
RESIL_API int resil_limiter_reclaim_pid(resil_limiter_t *l, int pid);

/** A snapshot; each value is exact at quiescence. */
typedef struct resil_limiter_stats {
    uint32_t limit;       /**< the limit in force (min_limit while re-measuring) */
    uint32_t limit_peak;  /**< the largest limit in force since init */
    uint32_t in_flight;   /**< permits held now (a scan of the cells) */
    uint32_t processes;   /**< process records in use */
    double estimate;      /**< the algorithm's limit, unrounded */
    uint64_t baseline_ns; /**< GRADIENT: the no-load RTT in use (0: none yet) */
    uint64_t granted;     /**< calls admitted */
    uint64_t rejected;    /**< calls refused */
    uint64_t samples;     /**< latency samples taken (applied or still batched) */
    uint64_t drops;       /**< samples reported dropped (AIMD: or timed out) */
    uint64_t probes;      /**< GRADIENT: baseline re-measurements started */
    uint64_t reclaimed;   /**< permits taken back from dead or reclaimed processes */
} resil_limiter_stats_t;

/** Fills @p out. @return RESIL_OK; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_limiter_stats(const resil_limiter_t *l, resil_limiter_stats_t *out);

/**
 * Validates the block's invariants with plain reads (callable from any
 * process, also after a crash): config, limit and estimate within bounds,
 * every cell free or naming a process record. At quiescence (no call in
 * progress) it also checks that no cell is held by a reclaimed record.
 * @param quiescent 1 to include the quiescent checks.
 * @return RESIL_OK; RESIL_E_CORRUPT with a detail; RESIL_E_INVALID_ARG.
 */
RESIL_API resil_status resil_limiter_check(const resil_limiter_t *l, int quiescent);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_LIMITER_H */
