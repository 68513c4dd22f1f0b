#include "resil/random.h"

#include <stdint.h>

#include "internal/atomic.h"
#include "internal/rng.h"
#include "resil/clock.h"

uint64_t resil_splitmix64(uint64_t *state)
{
    return state != NULL ? resil__splitmix64_next(state) : 0;
}

resil_status resil_rng_seed(resil_rng_t *rng, uint64_t seed)
{
    if (rng == NULL)
        return RESIL_E_INVALID_ARG;
    /* splitmix64 is a bijection of its counter, so four consecutive outputs
     * are never all zero. */
    for (int i = 0; i < 4; i++)
        rng->s[i] = resil__splitmix64_next(&seed);
    return RESIL_OK;
}

static int rng_is_zero(const resil_rng_t *rng)
{
    return (rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0;
}

uint64_t resil_rng_next(resil_rng_t *rng)
{
    if (rng == NULL)
        return 0;
    if (rng_is_zero(rng))
        resil_rng_seed(rng, 0);
    return resil__xoshiro_next(rng);
}

uint64_t resil_rng_below(resil_rng_t *rng, uint64_t bound)
{
    if (rng == NULL || bound == 0)
        return 0;
    /* Lemire's method: reject the few low products that would bias. */
    __extension__ typedef unsigned __int128 u128;
    u128 m = (u128)resil_rng_next(rng) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            m = (u128)resil_rng_next(rng) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double resil_rng_unit(resil_rng_t *rng)
{
    return rng != NULL ? resil__unit_double(resil_rng_next(rng)) : 0.0;
}

/* Per-thread default generator: no lock, no shared cache line after seeding.
 * Seeds differ between threads through a process-wide counter mixed with
 * the time and the address of the thread's state. */
static _Thread_local resil_rng_t thread_rng;
static resil__atomic_u64 seed_counter;

static resil_rng_t *thread_generator(void)
{
    if (__builtin_expect(rng_is_zero(&thread_rng), 0)) {
        uint64_t n = resil__a64_fetch_add_relaxed(&seed_counter, 1);
        uint64_t seed = n * UINT64_C(0x9e3779b97f4a7c15) ^ resil_clock_now(NULL) ^
                        (uint64_t)(uintptr_t)&thread_rng;
        resil_rng_seed(&thread_rng, seed);
    }
    return &thread_rng;
}

uint64_t resil_random_u64(void) { return resil__xoshiro_next(thread_generator()); }

uint64_t resil_random_below(uint64_t bound) { return resil_rng_below(thread_generator(), bound); }

void resil_random_seed_thread(uint64_t seed) { resil_rng_seed(&thread_rng, seed); }
