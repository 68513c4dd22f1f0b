/**
 * @file resil/clock.h
 * @brief Clocks: where every component reads time, and how tests control it.
 *
 * Time in libresil is a uint64_t count of nanoseconds from an arbitrary
 * origin, read from a clock object. A clock is a small value (function +
 * context), copied into the process-local handle of each component, never
 * into shared state. Four kinds come with the library:
 *
 * - monotonic: CLOCK_MONOTONIC (about 20-30 ns a read). An all-zero
 *   resil_clock_t is this clock, so `resil_clock_t c = {0};` just works.
 * - coarse: CLOCK_MONOTONIC_COARSE (a few ns, ticks every 1-4 ms). Good for
 *   time-based windows whose buckets are far longer than a tick.
 * - cached: reads a uint64_t the caller updates, e.g. an event loop that
 *   already caches the time once per iteration (nginx, libuv).
 * - manual: set and advanced by a test, so every state machine can be
 *   driven exactly. Sleeping on a manual clock advances it instead of
 *   blocking, so code that sleeps between retries runs instantly in tests.
 *
 * Thread safety: every function is thread-safe. The manual clock may be
 * read and advanced from many threads at once.
 * Progress: wait-free, except resil_clock_sleep(), which blocks on the real
 * clocks.
 */
#ifndef RESIL_CLOCK_H
#define RESIL_CLOCK_H

#include <stdint.h>

#include "resil/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Returns the current time in nanoseconds. Must be monotonic (never go
 * back) for the components to behave as documented; they tolerate a clock
 * that steps back without crashing, treating the time as unchanged. */
typedef uint64_t (*resil_now_fn)(void *ctx);
/** Waits @p ns nanoseconds (or advances a virtual clock by that much). */
typedef void (*resil_sleep_fn)(void *ctx, uint64_t ns);

/** A clock. All-zero means the default monotonic clock. */
typedef struct resil_clock {
    resil_now_fn now;     /**< NULL: CLOCK_MONOTONIC */
    resil_sleep_fn sleep; /**< NULL: nanosleep on the real clock */
    void *ctx;            /**< passed to both */
} resil_clock_t;

/** @return the CLOCK_MONOTONIC clock (equal to an all-zero resil_clock_t). */
RESIL_API resil_clock_t resil_clock_monotonic(void);

/**
 * @return the CLOCK_MONOTONIC_COARSE clock where the platform has one, else
 *         the monotonic clock. Never fails.
 */
RESIL_API resil_clock_t resil_clock_coarse(void);

/**
 * A clock that reads `*ns`, a time the caller keeps current (e.g. updated
 * once per event-loop iteration). The variable must outlive the clock.
 * Sleeping on it sleeps on the real monotonic clock.
 * @return the clock; with @p ns NULL, the monotonic clock (documented
 *         fallback, never a crash).
 */
RESIL_API resil_clock_t resil_clock_cached(const volatile uint64_t *ns);

/**
 * Reads @p c. NULL reads the monotonic clock.
 * @return nanoseconds; 0 only if the system clock itself fails.
 */
RESIL_API uint64_t resil_clock_now(const resil_clock_t *c);

/**
 * Sleeps @p ns on @p c (NULL: the monotonic clock). On the real clocks this
 * blocks the calling thread, resuming after signals until the time has
 * passed; on a manual clock it advances the clock and returns at once.
 */
RESIL_API void resil_clock_sleep(const resil_clock_t *c, uint64_t ns);

/** A clock driven by hand, for tests. Opaque; make one with
 * resil_manual_clock_new(). */
typedef struct resil_manual_clock resil_manual_clock_t;

/**
 * Allocates a manual clock reading @p start_ns.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG if @p out is NULL;
 *         RESIL_E_NO_MEMORY if the allocator fails (`*out` is set to NULL).
 */
RESIL_API resil_status resil_manual_clock_new(uint64_t start_ns, resil_manual_clock_t **out);

/** Frees @p m. Accepts NULL. Clocks made from it must no longer be read. */
RESIL_API void resil_manual_clock_free(resil_manual_clock_t *m);

/**
 * The resil_clock_t view of @p m, to hand to components. Its sleep advances
 * @p m by the time slept.
 * @return the clock; with @p m NULL, the monotonic clock.
 */
RESIL_API resil_clock_t resil_manual_clock_as_clock(resil_manual_clock_t *m);

/** @return the time @p m reads; 0 if @p m is NULL. */
RESIL_API uint64_t resil_manual_clock_get(const resil_manual_clock_t *m);

/**
 * Sets @p m to @p ns. Setting it backwards is allowed, so tests can check
 * how components survive a clock that steps back.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p m is NULL.
 */
RESIL_API resil_status resil_manual_clock_set(resil_manual_clock_t *m, uint64_t ns);

/**
 * Advances @p m by @p delta_ns, saturating at UINT64_MAX.
 * @return the new time; 0 if @p m is NULL.
 */
RESIL_API uint64_t resil_manual_clock_advance(resil_manual_clock_t *m, uint64_t delta_ns);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_CLOCK_H */
