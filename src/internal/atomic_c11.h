/*
 * C11 <stdatomic.h> backend of src/internal/atomic.h. Include that, not this.
 */
#ifndef RESIL_INTERNAL_ATOMIC_C11_H
#define RESIL_INTERNAL_ATOMIC_C11_H

#include <stdatomic.h>
#include <stdint.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

typedef struct {
    _Atomic uint64_t v;
} resil__atomic_u64;

typedef struct {
    _Atomic uint32_t v;
} resil__atomic_u32;

/* One set of operations per width W (64, 32) and type T. */
#define RESIL__C11_OPS(W, T)                                                                       \
    static inline T resil__a##W##_load_relaxed(const resil__atomic_u##W *a)                        \
    {                                                                                              \
        return atomic_load_explicit(&a->v, memory_order_relaxed);                                  \
    }                                                                                              \
    static inline T resil__a##W##_load_acquire(const resil__atomic_u##W *a)                        \
    {                                                                                              \
        return atomic_load_explicit(&a->v, memory_order_acquire);                                  \
    }                                                                                              \
    static inline void resil__a##W##_store_relaxed(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        atomic_store_explicit(&a->v, v, memory_order_relaxed);                                     \
    }                                                                                              \
    static inline void resil__a##W##_store_release(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        atomic_store_explicit(&a->v, v, memory_order_release);                                     \
    }                                                                                              \
    static inline T resil__a##W##_fetch_add_relaxed(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_add_explicit(&a->v, v, memory_order_relaxed);                          \
    }                                                                                              \
    static inline T resil__a##W##_fetch_add_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_add_explicit(&a->v, v, memory_order_acq_rel);                          \
    }                                                                                              \
    static inline T resil__a##W##_fetch_sub_relaxed(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_sub_explicit(&a->v, v, memory_order_relaxed);                          \
    }                                                                                              \
    static inline T resil__a##W##_fetch_sub_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_sub_explicit(&a->v, v, memory_order_acq_rel);                          \
    }                                                                                              \
    static inline T resil__a##W##_fetch_or_acq_rel(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_or_explicit(&a->v, v, memory_order_acq_rel);                           \
    }                                                                                              \
    static inline T resil__a##W##_fetch_and_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_fetch_and_explicit(&a->v, v, memory_order_acq_rel);                          \
    }                                                                                              \
    static inline T resil__a##W##_exchange_acq_rel(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_exchange_explicit(&a->v, v, memory_order_acq_rel);                           \
    }                                                                                              \
    static inline int resil__a##W##_cas_acq_rel(resil__atomic_u##W *a, T *expected, T desired)     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_compare_exchange_strong_explicit(                                            \
            &a->v, expected, desired, memory_order_acq_rel, memory_order_acquire);                 \
    }                                                                                              \
    static inline int resil__a##W##_cas_relaxed(resil__atomic_u##W *a, T *expected, T desired)     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return atomic_compare_exchange_strong_explicit(                                            \
            &a->v, expected, desired, memory_order_relaxed, memory_order_relaxed);                 \
    }

RESIL__C11_OPS(64, uint64_t)
RESIL__C11_OPS(32, uint32_t)

static inline void resil__fence_acquire(void) { atomic_thread_fence(memory_order_acquire); }
static inline void resil__fence_release(void) { atomic_thread_fence(memory_order_release); }
static inline void resil__fence_seq_cst(void) { atomic_thread_fence(memory_order_seq_cst); }

#endif /* RESIL_INTERNAL_ATOMIC_C11_H */
