/**
 * @file resil/random.h
 * @brief Seedable random numbers for jitter and fault injection.
 *
 * Randomness in libresil comes from here, never from rand(), so the same seed
 * gives the same delays and the same injected faults.
 *
 * - resil_rng_t is xoshiro256** (Blackman and Vigna, "Scrambled linear
 *   pseudorandom number generators", ACM TOMS 2021): 32 bytes of explicit
 *   state, fast, statistically strong, not cryptographic. Seeds are expanded
 *   with splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom
 *   number generators", OOPSLA 2014), as the xoshiro authors recommend.
 * - resil_random_*() use a per-thread generator, seeded on first use from a
 *   process-wide counter, the time and the thread's address: thread-safe with
 *   no lock and no shared cache line. resil_random_seed_thread() makes it
 *   deterministic for the calling thread.
 *
 * Thread safety: a resil_rng_t must not be used by two threads at once (it
 * is plain memory); the resil_random_*() functions are thread-safe.
 * Progress: wait-free.
 */
#ifndef RESIL_RANDOM_H
#define RESIL_RANDOM_H

#include <stdint.h>

#include "resil/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** xoshiro256** state. All-zero is the one invalid state; seeding never
 * produces it. */
typedef struct resil_rng {
    uint64_t s[4];
} resil_rng_t;

/**
 * Advances a splitmix64 state and returns its next output. Useful on its own
 * where 8 bytes of state must do (e.g. inside a per-request struct).
 * @return the next output; 0 if @p state is NULL.
 */
RESIL_API uint64_t resil_splitmix64(uint64_t *state);

/**
 * Seeds @p rng from @p seed; any seed, 0 included, gives a valid state.
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p rng is NULL.
 */
RESIL_API resil_status resil_rng_seed(resil_rng_t *rng, uint64_t seed);

/** @return the next 64 random bits; 0 if @p rng is NULL. An all-zero
 * (never seeded) state is reseeded with 0 first rather than stuck at 0. */
RESIL_API uint64_t resil_rng_next(resil_rng_t *rng);

/**
 * A uniform integer in [0, @p bound), without modulo bias (Lemire, "Fast
 * random integer generation in an interval", ACM TOMACS 2019).
 * @return the integer; 0 if @p bound is 0 or @p rng is NULL.
 */
RESIL_API uint64_t resil_rng_below(resil_rng_t *rng, uint64_t bound);

/** @return a uniform double in [0, 1) with 53 random bits; 0.0 if @p rng is
 * NULL. */
RESIL_API double resil_rng_unit(resil_rng_t *rng);

/** @return 64 random bits from the calling thread's generator. */
RESIL_API uint64_t resil_random_u64(void);

/** @return a uniform integer in [0, @p bound) from the calling thread's
 * generator; 0 if @p bound is 0. */
RESIL_API uint64_t resil_random_below(uint64_t bound);

/** Reseeds the calling thread's generator, making its sequence repeatable.
 * Other threads are unaffected. Never fails. */
RESIL_API void resil_random_seed_thread(uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_RANDOM_H */
