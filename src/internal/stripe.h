/*
 * Which stripe the calling thread counts on. Components keep counters that
 * every call touches in several cache lines ("stripes") so that two threads
 * do not fight over one line; a thread always uses the same stripe, assigned
 * round-robin on its first call. The index is one variable in static TLS
 * (initial-exec model: a single %fs-relative load, no __tls_get_addr call,
 * although the library is position-independent).
 */
#ifndef RESIL_INTERNAL_STRIPE_H
#define RESIL_INTERNAL_STRIPE_H

#include <stdint.h>

#include "atomic.h"

extern _Thread_local uint32_t resil__stripe_plus1 __attribute__((tls_model("initial-exec")));
uint32_t resil__stripe_assign(void);

/* The calling thread's number: 0, 1, 2, ... in the order threads first ask. */
static inline uint32_t resil__thread_index(void)
{
    uint32_t s = resil__stripe_plus1;
    if (__builtin_expect(s == 0, 0))
        s = resil__stripe_assign();
    return s - 1;
}

/* The calling thread's stripe among @p stripes (a power of two). */
static inline uint32_t resil__stripe(uint32_t stripes)
{
    return resil__thread_index() & (stripes - 1);
}

#endif /* RESIL_INTERNAL_STRIPE_H */
