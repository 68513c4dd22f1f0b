/*
 * Inline generators for hot paths (jitter, fault injection). The public
 * functions in random.c wrap these; see resil/random.h for the citations.
 */
#ifndef RESIL_INTERNAL_RNG_H
#define RESIL_INTERNAL_RNG_H

#include <stdint.h>

#include "resil/random.h"

static inline uint64_t resil__splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint64_t resil__rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t resil__xoshiro_next(resil_rng_t *r)
{
    uint64_t *s = r->s;
    const uint64_t result = resil__rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = resil__rotl64(s[3], 45);
    return result;
}

/* (x * bound) >> 64: maps 64 random bits onto [0, bound). The bias is at
 * most bound / 2^64, far below anything jitter can notice; resil_rng_below()
 * removes it for callers that need exact uniformity. */
static inline uint64_t resil__scale64(uint64_t x, uint64_t bound)
{
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)x * bound) >> 64);
}

/* A uniform double in [0, 1) from the top 53 bits. */
static inline double resil__unit_double(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

#endif /* RESIL_INTERNAL_RNG_H */
