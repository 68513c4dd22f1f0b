/*
 * Unsigned 64-bit division by a divisor fixed at init, without a divide
 * instruction on the hot path (a 64-bit `div` costs 25-40 cycles here).
 *
 * Granlund and Montgomery, "Division by invariant integers using
 * multiplication", PLDI 1994, figure 4.1: for d > 0 and l = ceil(log2 d),
 *   m' = floor(2^64 * (2^l - d) / d) + 1
 *   q  = (t + ((n - t) >> sh1)) >> sh2,  t = mulhi(m', n),
 *   sh1 = min(l, 1), sh2 = max(l - 1, 0)
 * gives q = floor(n / d) for every 64-bit n. The struct is plain data, so it
 * can sit in a state block's config and serve every process.
 */
#ifndef RESIL_INTERNAL_DIVIDE_H
#define RESIL_INTERNAL_DIVIDE_H

#include <stdint.h>

typedef struct resil__divider {
    uint64_t magic;
    uint64_t d;
    uint8_t sh1, sh2, pad[6];
} resil__divider;

static inline resil__divider resil__divider_make(uint64_t d)
{
    __extension__ typedef unsigned __int128 u128;
    resil__divider r = {0, d, 0, 0, {0}};
    if (d == 0)
        return r; /* callers validate d; a zero divider divides as 1 */
    int l = 0;
    while (l < 64 && (UINT64_C(1) << l) < d)
        l++;
    u128 two_l = (u128)1 << l;
    r.magic = (uint64_t)((((two_l - d) << 64) / d) + 1);
    r.sh1 = (uint8_t)(l < 1 ? l : 1);
    r.sh2 = (uint8_t)(l > 1 ? l - 1 : 0);
    return r;
}

static inline uint64_t resil__div(const resil__divider *v, uint64_t n)
{
    __extension__ typedef unsigned __int128 u128;
    if (v->d <= 1)
        return n;
    uint64_t t = (uint64_t)(((u128)v->magic * n) >> 64);
    return (t + ((n - t) >> v->sh1)) >> v->sh2;
}

static inline uint64_t resil__mod(const resil__divider *v, uint64_t n)
{
    return v->d <= 1 ? 0 : n - resil__div(v, n) * v->d;
}

#endif /* RESIL_INTERNAL_DIVIDE_H */
