/*
 * libatomic_ops backend of src/internal/atomic.h. Include that, not this.
 *
 * Header-only use of Debian's libatomic-ops-dev (MIT-style part only; the GPL
 * AO_stack/AO_malloc are never used). AO_t carries the 64-bit words and
 * unsigned int the 32-bit ones. Where AO has no operation with exactly the
 * order we name, the stronger _full variant stands in: never weaker.
 * AO has no exchange, fetch_or or fetch_and, so those are CAS loops.
 */
#ifndef RESIL_INTERNAL_ATOMIC_AO_H
#define RESIL_INTERNAL_ATOMIC_AO_H

#include <atomic_ops.h>
#include <stdint.h>

#if defined(AO_USE_PTHREAD_DEFS) || !defined(AO_HAVE_fetch_compare_and_swap_full) ||               \
    !defined(AO_HAVE_int_fetch_compare_and_swap_full)
#error "libatomic_ops has no lock-free compare-and-swap on this platform"
#endif
_Static_assert(sizeof(AO_t) == 8, "the libatomic_ops backend needs a 64-bit AO_t");
_Static_assert(sizeof(unsigned int) == 4, "the libatomic_ops backend needs a 32-bit int");

typedef struct {
    volatile AO_t v;
} resil__atomic_u64;

typedef struct {
    volatile unsigned int v;
} resil__atomic_u32;

/* One set of operations per width W, value type T and AO prefix P (AO_ for
 * AO_t, AO_int_ for unsigned int). */
#define RESIL__AO_OPS(W, T, P)                                                                     \
    static inline T resil__a##W##_load_relaxed(const resil__atomic_u##W *a)                        \
    {                                                                                              \
        return (T)P##load(&a->v);                                                                  \
    }                                                                                              \
    static inline T resil__a##W##_load_acquire(const resil__atomic_u##W *a)                        \
    {                                                                                              \
        return (T)P##load_acquire(&a->v);                                                          \
    }                                                                                              \
    static inline void resil__a##W##_store_relaxed(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        P##store(&a->v, v);                                                                        \
    }                                                                                              \
    static inline void resil__a##W##_store_release(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        P##store_release(&a->v, v);                                                                \
    }                                                                                              \
    static inline T resil__a##W##_fetch_add_relaxed(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return (T)P##fetch_and_add(&a->v, v);                                                      \
    }                                                                                              \
    static inline T resil__a##W##_fetch_add_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return (T)P##fetch_and_add_full(&a->v, v);                                                 \
    }                                                                                              \
    static inline T resil__a##W##_fetch_sub_relaxed(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return (T)P##fetch_and_add(&a->v, (T)0 - v);                                               \
    }                                                                                              \
    static inline T resil__a##W##_fetch_sub_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        return (T)P##fetch_and_add_full(&a->v, (T)0 - v);                                          \
    }                                                                                              \
    static inline int resil__a##W##_cas_acq_rel(resil__atomic_u##W *a, T *expected, T desired)     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        T seen = (T)P##fetch_compare_and_swap_full(&a->v, *expected, desired);                     \
        if (seen == *expected)                                                                     \
            return 1;                                                                              \
        *expected = seen;                                                                          \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int resil__a##W##_cas_relaxed(resil__atomic_u##W *a, T *expected, T desired)     \
    {                                                                                              \
        RESIL__STEP();                                                                             \
        T seen = (T)P##fetch_compare_and_swap(&a->v, *expected, desired);                          \
        if (seen == *expected)                                                                     \
            return 1;                                                                              \
        *expected = seen;                                                                          \
        return 0;                                                                                  \
    }                                                                                              \
    /* read-modify-write through a CAS loop, for operations AO lacks */                            \
    static inline T resil__a##W##_exchange_acq_rel(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        T old = resil__a##W##_load_relaxed(a);                                                     \
        while (!resil__a##W##_cas_acq_rel(a, &old, v)) {                                           \
        }                                                                                          \
        return old;                                                                                \
    }                                                                                              \
    static inline T resil__a##W##_fetch_or_acq_rel(resil__atomic_u##W *a, T v)                     \
    {                                                                                              \
        T old = resil__a##W##_load_relaxed(a);                                                     \
        while (!resil__a##W##_cas_acq_rel(a, &old, old | v)) {                                     \
        }                                                                                          \
        return old;                                                                                \
    }                                                                                              \
    static inline T resil__a##W##_fetch_and_acq_rel(resil__atomic_u##W *a, T v)                    \
    {                                                                                              \
        T old = resil__a##W##_load_relaxed(a);                                                     \
        while (!resil__a##W##_cas_acq_rel(a, &old, old & v)) {                                     \
        }                                                                                          \
        return old;                                                                                \
    }

RESIL__AO_OPS(64, uint64_t, AO_)
RESIL__AO_OPS(32, uint32_t, AO_int_)

static inline void resil__fence_acquire(void) { AO_nop_full(); }
static inline void resil__fence_release(void) { AO_nop_full(); }
static inline void resil__fence_seq_cst(void) { AO_nop_full(); }

#endif /* RESIL_INTERNAL_ATOMIC_AO_H */
