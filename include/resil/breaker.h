/**
 * @file resil/breaker.h
 * @brief Circuit breaker: stop calling a dependency that keeps failing.
 *
 * A breaker watches the outcomes of calls to one dependency. While the
 * dependency is healthy the breaker is CLOSED and admits every call. When a
 * trip signal fires it goes OPEN and rejects calls at once, giving the
 * dependency time to recover. After the open wait it goes HALF_OPEN and
 * admits exactly K probe calls; their outcomes decide between CLOSED and OPEN
 * again.
 *
 * Trip signals, any combination (each can be turned off):
 * - failure rate >= failure_rate_threshold percent of the calls in the window;
 * - slow-call rate >= slow_rate_threshold percent, where a call is slow when
 *   its duration exceeds slow_call_duration_ns (success or failure);
 * - consecutive_failures failures in a row (gobreaker's default trip).
 * Rates are evaluated only once the window holds minimum_calls calls.
 *
 * Windows: count-based (the last window_size calls) or time-based (the last
 * window_duration_ns, in window_buckets buckets; a bucket is the unit of
 * expiry).
 *
 * Special states: DISABLED (always admit, record nothing), FORCED_OPEN
 * (always reject) and METRICS_ONLY (shadow mode: the state machine runs and
 * reports its transitions, but no call is ever rejected; use it to roll a
 * breaker out safely).
 *
 * Memory: the breaker's state is one pointer-free block that can live in
 * memory the caller provides, including MAP_SHARED memory used by several
 * processes at once (an nginx shared zone): resil_breaker_init() writes it,
 * resil_breaker_attach() gives another process (or the same one) a handle on
 * it after validating it. resil_breaker_new() does both in heap memory for the
 * common single-process case. Requirements on caller memory: aligned to
 * RESIL_BLOCK_ALIGN (64) bytes, at least resil_breaker_size() bytes, zeroed or
 * not, alive while any handle uses it; the library never allocates inside it.
 * Every process attached to one block must read time from the same clock
 * domain (CLOCK_MONOTONIC is system-wide).
 *
 * Thread safety: every function is thread-safe and may be called from any
 * process attached to the block.
 * Progress: lock-free. Admitting a call and recording its outcome take no
 * lock, make no allocation and no system call other than reading the clock
 * (and a CLOSED count-window breaker reads no clock at all when the caller
 * supplies durations).
 *
 * Two API levels: resil_breaker_acquire() / resil_breaker_record() for event
 * loops (a permit is a small value on the caller's stack), and
 * resil_breaker_execute() which runs a callback and measures its duration.
 */
#ifndef RESIL_BREAKER_H
#define RESIL_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Breaker states. Values are stable. */
typedef enum resil_breaker_state {
    RESIL_BREAKER_CLOSED = 0,      /**< admitting calls, watching outcomes */
    RESIL_BREAKER_OPEN = 1,        /**< rejecting calls until the open wait ends */
    RESIL_BREAKER_HALF_OPEN = 2,   /**< admitting exactly K probes */
    RESIL_BREAKER_DISABLED = 3,    /**< admitting everything, recording nothing */
    RESIL_BREAKER_FORCED_OPEN = 4, /**< rejecting everything until reset */
    RESIL_BREAKER_METRICS_ONLY = 5 /**< shadow mode: never rejecting, still evaluating */
} resil_breaker_state;

/** Outcome of a guarded call. */
typedef enum resil_outcome {
    RESIL_OUTCOME_SUCCESS = 0, /**< counts as a success (slow if too long) */
    RESIL_OUTCOME_FAILURE = 1, /**< counts as a failure (slow if too long) */
    RESIL_OUTCOME_IGNORED = 2  /**< counts as neither; a probe permit is handed back */
} resil_outcome;

/** Window kinds. */
typedef enum resil_window_kind {
    RESIL_WINDOW_COUNT = 0, /**< the last window_size calls */
    RESIL_WINDOW_TIME = 1   /**< the last window_duration_ns */
} resil_window_kind;

/** Why a transition happened. */
typedef enum resil_breaker_reason {
    RESIL_BREAKER_REASON_FAILURE_RATE = 1,  /**< failure rate reached its threshold */
    RESIL_BREAKER_REASON_SLOW_RATE = 2,     /**< slow-call rate reached its threshold */
    RESIL_BREAKER_REASON_CONSECUTIVE = 3,   /**< consecutive failures reached their threshold */
    RESIL_BREAKER_REASON_WAIT_ELAPSED = 4,  /**< the open wait ended: OPEN to HALF_OPEN */
    RESIL_BREAKER_REASON_PROBES_PASSED = 5, /**< the K probes were healthy: HALF_OPEN to CLOSED */
    RESIL_BREAKER_REASON_PROBES_FAILED = 6, /**< the probes tripped a signal: HALF_OPEN to OPEN */
    RESIL_BREAKER_REASON_PROBE_TIMEOUT = 7, /**< probes did not all report in time */
    RESIL_BREAKER_REASON_OPEN_UNTIL = 8,    /**< resil_breaker_open_until() (e.g. Retry-After) */
    RESIL_BREAKER_REASON_MANUAL = 9         /**< a manual transition function */
} resil_breaker_reason;

/** Longest open wait, half-open wait or open_until horizon: 5 days. Longer
 * durations are rejected (the state word stores deadlines compactly). */
#define RESIL_BREAKER_MAX_WAIT_NS RESIL_SEC(5 * 86400)
/** Most probes in HALF_OPEN. */
#define RESIL_BREAKER_MAX_PROBES 4095
/** Most calls in a count window and most buckets in a time window. */
#define RESIL_BREAKER_MAX_WINDOW 1048576
#define RESIL_BREAKER_MAX_BUCKETS 1024
/** Most stripes (per-thread counter lines). */
#define RESIL_BREAKER_MAX_STRIPES 64
/** Most growth steps of the open wait (re-opens after the first). */
#define RESIL_BREAKER_MAX_GROWTH_STEPS 15

/**
 * Configuration, stored inside the state block: every process attached to a
 * breaker uses the configuration its creator gave. Get one from
 * resil_breaker_config_default() and change what you need. Out-of-range
 * values are rejected with RESIL_E_INVALID_CONFIG and a detail naming the
 * field (resil_status_detail()); nothing is silently clamped.
 */
typedef struct resil_breaker_config {
    /** Count or time window. Default RESIL_WINDOW_COUNT. */
    resil_window_kind window_kind;
    /** COUNT: calls in the window, 1..RESIL_BREAKER_MAX_WINDOW. Default 100. */
    uint32_t window_size;
    /** TIME: length of the window in ns, > 0, a multiple of window_buckets.
     * Default 60 s. */
    uint64_t window_duration_ns;
    /** TIME: buckets in the window, 1..RESIL_BREAKER_MAX_BUCKETS; the window
     * drops one bucket at a time. Default 10. */
    uint32_t window_buckets;
    /** Calls the window must hold before rates are evaluated; 1.., and at
     * most window_size for a count window. Default 100. */
    uint32_t minimum_calls;
    /** Open when the failure rate is >= this percent, 1..100; 0 turns the
     * signal off. Default 50. */
    uint32_t failure_rate_threshold;
    /** Open when the slow-call rate is >= this percent, 1..100; 0 turns the
     * signal off. Default 0 (off). */
    uint32_t slow_rate_threshold;
    /** A call is slow when its duration is > this, in ns, >= 1. Default 60 s. */
    uint64_t slow_call_duration_ns;
    /** Open after this many failures in a row; 0 turns the signal off.
     * Default 0. At least one of the three signals must be on. */
    uint32_t consecutive_failures;
    /** First open wait in ns, 1 us..RESIL_BREAKER_MAX_WAIT_NS. Default 60 s. */
    uint64_t open_wait_ns;
    /** Each re-open (HALF_OPEN back to OPEN) multiplies the wait by this,
     * 1.0..100.0; the growth resets when the breaker closes. Default 1.0. */
    double open_wait_multiplier;
    /** Cap on the grown wait, >= open_wait_ns, <= RESIL_BREAKER_MAX_WAIT_NS.
     * Default 0, meaning "same as open_wait_ns" unless a multiplier > 1 is
     * set, when it means RESIL_BREAKER_MAX_WAIT_NS. */
    uint64_t open_wait_max_ns;
    /** Spread each open wait uniformly by +/- this percent, 0..100, so a
     * fleet does not probe in lockstep. Default 0. */
    uint32_t open_wait_jitter_percent;
    /** K: probes admitted in HALF_OPEN, 1..RESIL_BREAKER_MAX_PROBES.
     * Default 10. */
    uint32_t half_open_probes;
    /** If the K probes have not all reported this long after HALF_OPEN began,
     * the breaker reopens: a crashed or forgetful probe owner can never leave
     * it stuck half-open. 1 us..RESIL_BREAKER_MAX_WAIT_NS. Default 60 s. */
    uint64_t half_open_max_wait_ns;
    /** Counter stripes, a power of two 1..RESIL_BREAKER_MAX_STRIPES. Threads
     * record successes on their own stripe's cache line, so concurrent calls
     * do not contend; each stripe costs a cache line (count window) or
     * window_buckets words (time window). Default 4. */
    uint32_t stripes;
} resil_breaker_config_t;

/** @return the defaults documented on each field. Never fails. */
RESIL_API resil_breaker_config_t resil_breaker_config_default(void);

/**
 * Validates @p cfg without creating anything.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p cfg is NULL;
 *         RESIL_E_INVALID_CONFIG with a detail naming the field.
 */
RESIL_API resil_status resil_breaker_config_check(const resil_breaker_config_t *cfg);

/**
 * Bytes of state a breaker with @p cfg needs (a multiple of 64).
 * @return the size; 0 if @p cfg is NULL or invalid (see
 *         resil_breaker_config_check() for why).
 */
RESIL_API size_t resil_breaker_size(const resil_breaker_config_t *cfg);

/**
 * Compile-time upper bound of resil_breaker_size(), to size a static array
 * or an nginx zone: @p window is window_size for a count window or
 * window_buckets for a time window, @p stripes the stripe count. Count
 * windows with both rate signals on need the most; this macro assumes that.
 */
#define RESIL_BREAKER_SIZE(window, stripes)                                                        \
    ((size_t)(1024 + 64 * (size_t)(stripes) + 8 * (size_t)(window) * (size_t)(stripes) +           \
              16 * (size_t)(window) + 64))

/** Process-local handle on a breaker's state. Opaque. */
typedef struct resil_breaker resil_breaker_t;

/** A transition, as reported to the listener. */
typedef struct resil_breaker_event {
    resil_breaker_state from; /**< state before (inner state in shadow mode) */
    resil_breaker_state to;   /**< state after (inner state in shadow mode) */
    resil_breaker_reason reason;
    int shadow;             /**< 1 if the breaker is METRICS_ONLY: nothing was rejected */
    uint32_t generation;    /**< generation after the transition (16 bits) */
    uint64_t now_ns;        /**< the time the transition was decided */
    uint64_t open_until_ns; /**< for OPEN: when the first probe may be admitted */
} resil_breaker_event_t;

/** Called once per transition, in the thread (and process) whose action
 * made it, after the new state is visible. It may call back into the
 * breaker (no lock is held). */
typedef void (*resil_breaker_listener_fn)(void *user, const resil_breaker_event_t *event);

/** Process-local settings of a handle: never stored in shared state. */
typedef struct resil_breaker_local {
    resil_clock_t clock;                /**< all-zero: CLOCK_MONOTONIC */
    resil_breaker_listener_fn listener; /**< NULL: no events */
    void *user;                         /**< passed to the listener */
    uint64_t seed;                      /**< jitter seed; 0: a random one */
} resil_breaker_local_t;

/**
 * Writes a new CLOSED breaker into caller memory @p mem of @p len bytes. It
 * can then be attached from this and other processes.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p mem is NULL, misaligned or
 *         shorter than resil_breaker_size(); RESIL_E_INVALID_CONFIG (detail
 *         names the field). On error the memory is left untouched.
 */
RESIL_API resil_status resil_breaker_init(void *mem, size_t len, const resil_breaker_config_t *cfg);

/**
 * Makes a handle on an initialized breaker in @p mem, after checking that it
 * is one (magic, kind, layout version, size, configuration checksum and
 * invariants). Allocates only the small handle.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG (NULL or misaligned
 *         arguments); RESIL_E_NOT_INITIALIZED (zeroed memory, or an init in
 *         progress); RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_breaker_attach(void *mem, size_t len,
                                            const resil_breaker_local_t *local,
                                            resil_breaker_t **out);

/**
 * Allocates a breaker (state and handle together) for use in this process.
 * @p local may be NULL.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG if @p cfg or @p out is
 *         NULL; RESIL_E_INVALID_CONFIG; RESIL_E_NO_MEMORY. On error `*out` is
 *         NULL.
 */
RESIL_API resil_status resil_breaker_new(const resil_breaker_config_t *cfg,
                                         const resil_breaker_local_t *local, resil_breaker_t **out);

/**
 * Frees a handle (and, for resil_breaker_new(), the state). Memory given to
 * resil_breaker_init() stays the caller's and stays valid for other handles.
 * Accepts NULL.
 */
RESIL_API void resil_breaker_free(resil_breaker_t *b);

/** A permit: proof that a call was admitted, reported back exactly once. A
 * small value, usually on the caller's stack; fields are private except
 * retry_after_ns. */
typedef struct resil_breaker_permit {
    /** On rejection: ns until a probe may be admitted (UINT64_MAX when the
     * breaker is forced open). 0 when admitted. */
    uint64_t retry_after_ns;
    uint32_t breaker_id_;
    uint16_t generation_;
    uint16_t flags_;
} resil_breaker_permit_t;

/**
 * Asks to make a call. Reads the clock only when the breaker is not CLOSED.
 * @return RESIL_OK: make the call, then report it with resil_breaker_record();
 *         RESIL_E_BREAKER_OPEN, RESIL_E_BREAKER_FORCED_OPEN,
 *         RESIL_E_HALF_OPEN_FULL: rejected, do not call (and do not record);
 *         `permit->retry_after_ns` tells how long until a probe may be admitted;
 *         RESIL_E_INVALID_ARG if @p b or @p permit is NULL.
 */
RESIL_API resil_status resil_breaker_acquire(resil_breaker_t *b, resil_breaker_permit_t *permit);

/** resil_breaker_acquire() with the time given by the caller (an event
 * loop's cached time), in the breaker's clock domain. Same returns. */
RESIL_API resil_status resil_breaker_acquire_at(resil_breaker_t *b, uint64_t now_ns,
                                                resil_breaker_permit_t *permit);

/**
 * Reports the outcome of an admitted call and its duration. Consumes the
 * permit: reporting it again is an error and counts nothing. A time-window
 * breaker reads the clock to find the bucket; a count-window one does not.
 * @return RESIL_OK: counted;
 *         RESIL_E_STALE: the breaker changed generation since the permit was
 *         granted (it opened, closed or was reset), so the outcome does not
 *         count toward the new period. Generations are 16 bits: an outcome
 *         reported after exactly a multiple of 65536 further transitions
 *         would be taken as current (a breaker flapping every millisecond
 *         wraps in about a minute; with open waits of seconds, in days);
 *         RESIL_E_INVALID_ARG: NULL arguments, an outcome out of range, a
 *         permit that was never granted, was already reported, or belongs to
 *         another breaker. Nothing is recorded on error.
 */
RESIL_API resil_status resil_breaker_record(resil_breaker_t *b, resil_breaker_permit_t *permit,
                                            resil_outcome outcome, uint64_t duration_ns);

/** resil_breaker_record() with the time given by the caller. Same returns. */
RESIL_API resil_status resil_breaker_record_at(resil_breaker_t *b, resil_breaker_permit_t *permit,
                                               resil_outcome outcome, uint64_t duration_ns,
                                               uint64_t now_ns);

/** @return 1 if @p permit was granted as a half-open probe (give it a
 * short timeout, log it), else 0; 0 for NULL. */
RESIL_API int resil_breaker_permit_is_probe(const resil_breaker_permit_t *permit);

/** @return the generation (16 bits) @p permit was granted in; 0 for NULL or
 * a rejection. */
RESIL_API uint32_t resil_breaker_permit_generation(const resil_breaker_permit_t *permit);

/** The guarded call for resil_breaker_execute(): returns its outcome. */
typedef resil_outcome (*resil_breaker_call_fn)(void *ctx);

/**
 * One-call helper: acquire, run @p fn, measure its duration on the handle's
 * clock, record the outcome.
 * @return RESIL_OK if @p fn ran and succeeded (or its outcome was ignored);
 *         RESIL_E_CALL_FAILED if it ran and failed; a rejection status if it
 *         was not run; RESIL_E_INVALID_ARG for NULL @p b or @p fn.
 *         `*outcome` (if not NULL) receives @p fn's outcome when it ran.
 */
RESIL_API resil_status resil_breaker_execute(resil_breaker_t *b, resil_breaker_call_fn fn,
                                             void *ctx, resil_outcome *outcome);

/** @name Manual transitions
 * Each returns RESIL_OK (also when the breaker was already in that state,
 * without a new transition), or RESIL_E_INVALID_ARG for a NULL handle. Each
 * real transition starts a new generation and is reported to the listener
 * with reason RESIL_BREAKER_REASON_MANUAL.
 * @{ */
/** To FORCED_OPEN: reject everything until reset. */
RESIL_API resil_status resil_breaker_force_open(resil_breaker_t *b);
/** To DISABLED: admit everything, record nothing. */
RESIL_API resil_status resil_breaker_disable(resil_breaker_t *b);
/** To METRICS_ONLY: evaluate as usual from CLOSED, but never reject. */
RESIL_API resil_status resil_breaker_metrics_only(resil_breaker_t *b);
/** To CLOSED with an empty window and no open-wait growth. Always a new
 * generation, even from CLOSED: a reset empties the window. */
RESIL_API resil_status resil_breaker_reset(resil_breaker_t *b);
/** @} */

/**
 * Opens the breaker until @p until_ns (e.g. a server said Retry-After). From
 * CLOSED, HALF_OPEN or OPEN; an OPEN breaker's deadline only moves later.
 * Not a re-open for wait growth.
 * @return RESIL_OK; RESIL_E_INVALID_ARG for a NULL handle or a deadline more
 *         than RESIL_BREAKER_MAX_WAIT_NS ahead; RESIL_E_STATE if the breaker
 *         is DISABLED, FORCED_OPEN or METRICS_ONLY (they are operator
 *         decisions and win).
 */
RESIL_API resil_status resil_breaker_open_until(resil_breaker_t *b, uint64_t until_ns);

/** @return the current state; RESIL_BREAKER_CLOSED for a NULL handle. Does
 * not apply lazy transitions (see resil_breaker_acquire()). */
RESIL_API resil_breaker_state resil_breaker_state_get(const resil_breaker_t *b);

/** @return a static name such as "HALF_OPEN"; "UNKNOWN" out of range. */
RESIL_API const char *resil_breaker_state_name(resil_breaker_state s);

/** A consistent-enough snapshot: each counter is exact at quiescence. */
typedef struct resil_breaker_stats {
    resil_breaker_state state;       /**< as resil_breaker_state_get() */
    resil_breaker_state inner_state; /**< in METRICS_ONLY, the shadow state; else = state */
    uint32_t generation;             /**< 16 bits, grows by one per transition */
    uint64_t successes;              /**< recorded successes, slow ones included */
    uint64_t failures;               /**< recorded failures, slow ones included */
    uint64_t slow_calls;             /**< recorded calls slower than the threshold */
    uint64_t ignored;                /**< outcomes reported as ignored */
    uint64_t stale;                  /**< outcomes dropped as from an older generation */
    uint64_t rejected_open;          /**< rejections while OPEN */
    uint64_t rejected_forced;        /**< rejections while FORCED_OPEN */
    uint64_t rejected_half_open;     /**< rejections while HALF_OPEN with every probe taken */
    uint64_t transitions;            /**< state transitions so far */
    uint64_t opens;                  /**< transitions into OPEN */
    uint64_t window_calls;           /**< calls in the current window */
    uint64_t window_failures;        /**< failures in the current window */
    uint64_t window_slow;            /**< slow calls in the current window (a count
                                          window keeps none when slow_rate_threshold
                                          is 0: then 0; slow_calls still counts) */
    double failure_rate;             /**< percent of window_calls; -1 below minimum_calls */
    double slow_rate;                /**< percent of window_calls; -1 below minimum_calls */
    double window_fill;              /**< count window: window_calls / window_size; time: 1 */
    uint32_t consecutive_failures;   /**< current run of failures */
    uint32_t probes_issued;          /**< HALF_OPEN: probes admitted so far */
    uint32_t probes_completed;       /**< HALF_OPEN: probes reported so far */
    uint64_t retry_after_ns;         /**< OPEN: ns until a probe may be admitted, else 0 */
} resil_breaker_stats_t;

/**
 * Fills @p out.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if either argument is NULL.
 */
RESIL_API resil_status resil_breaker_stats(resil_breaker_t *b, resil_breaker_stats_t *out);

/**
 * Checks the invariants of the state block behind @p b (a pure read, safe
 * from any process, also after a crash): state and counters in range,
 * probes completed <= issued <= K, configuration consistent.
 * @return RESIL_OK; RESIL_E_INVALID_ARG for NULL; RESIL_E_CORRUPT with a
 *         detail naming the broken invariant.
 */
RESIL_API resil_status resil_breaker_check(const resil_breaker_t *b);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_BREAKER_H */
