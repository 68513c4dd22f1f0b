/*
 * Small helpers every source file uses: branch hints, saturating arithmetic
 * and the one way to fail with a detail message.
 */
#ifndef RESIL_INTERNAL_UTIL_H
#define RESIL_INTERNAL_UTIL_H

#include <stdint.h>

#include "resil/status.h"

#define RESIL__LIKELY(x) __builtin_expect(!!(x), 1)
#define RESIL__UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline uint64_t resil__sat_add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t resil__sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static inline uint64_t resil__sat_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t resil__min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t resil__max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/*
 * Records a printf-style detail for resil_status_detail() on this thread and
 * returns @p s, so error paths read `return resil__fail(RESIL_E_..., "...")`.
 */
resil_status resil__fail(resil_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Config validation failure naming the field: "<field>: <rule>". */
#define RESIL__BAD_CONFIG(field, ...) resil__fail(RESIL_E_INVALID_CONFIG, field ": " __VA_ARGS__)

#endif /* RESIL_INTERNAL_UTIL_H */
