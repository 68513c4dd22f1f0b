/* CLOCK_MONOTONIC_COARSE is a Linux extension that strict POSIX hides. */
#define _DEFAULT_SOURCE
#include "resil/clock.h"

#include <errno.h>
#include <time.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/util.h"

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static uint64_t monotonic_now(void *ctx)
{
    (void)ctx;
    return read_clock(CLOCK_MONOTONIC);
}

static uint64_t coarse_now(void *ctx)
{
    (void)ctx;
#ifdef CLOCK_MONOTONIC_COARSE
    return read_clock(CLOCK_MONOTONIC_COARSE);
#else
    return read_clock(CLOCK_MONOTONIC);
#endif
}

static uint64_t cached_now(void *ctx) { return *(const volatile uint64_t *)ctx; }

static void real_sleep(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / UINT64_C(1000000000)), (long)(ns % UINT64_C(1000000000))};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

resil_clock_t resil_clock_monotonic(void) { return (resil_clock_t){NULL, NULL, NULL}; }

resil_clock_t resil_clock_coarse(void) { return (resil_clock_t){coarse_now, NULL, NULL}; }

resil_clock_t resil_clock_cached(const volatile uint64_t *ns)
{
    if (ns == NULL)
        return resil_clock_monotonic();
    return (resil_clock_t){cached_now, NULL, (void *)(uintptr_t)ns};
}

uint64_t resil_clock_now(const resil_clock_t *c)
{
    if (c == NULL || c->now == NULL)
        return monotonic_now(NULL);
    return c->now(c->ctx);
}

void resil_clock_sleep(const resil_clock_t *c, uint64_t ns)
{
    if (c != NULL && c->sleep != NULL)
        c->sleep(c->ctx, ns);
    else if (ns > 0)
        real_sleep(ns);
}

struct resil_manual_clock {
    resil__atomic_u64 now;
    resil_allocator_t by;
};

static uint64_t manual_now(void *ctx) { return resil_manual_clock_get(ctx); }

static void manual_sleep(void *ctx, uint64_t ns) { resil_manual_clock_advance(ctx, ns); }

resil_status resil_manual_clock_new(uint64_t start_ns, resil_manual_clock_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "manual_clock_new: out is NULL");
    resil_allocator_t by;
    resil_manual_clock_t *m = resil__alloc(sizeof *m, &by);
    *out = m;
    if (m == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "manual_clock_new: allocation failed");
    m->by = by;
    resil__a64_store_relaxed(&m->now, start_ns);
    return RESIL_OK;
}

void resil_manual_clock_free(resil_manual_clock_t *m)
{
    if (m != NULL)
        resil__free(&m->by, m, sizeof *m);
}

resil_clock_t resil_manual_clock_as_clock(resil_manual_clock_t *m)
{
    if (m == NULL)
        return resil_clock_monotonic();
    return (resil_clock_t){manual_now, manual_sleep, m};
}

uint64_t resil_manual_clock_get(const resil_manual_clock_t *m)
{
    return m != NULL ? resil__a64_load_acquire(&m->now) : 0;
}

resil_status resil_manual_clock_set(resil_manual_clock_t *m, uint64_t ns)
{
    if (m == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "manual_clock_set: clock is NULL");
    resil__a64_store_release(&m->now, ns);
    return RESIL_OK;
}

uint64_t resil_manual_clock_advance(resil_manual_clock_t *m, uint64_t delta_ns)
{
    if (m == NULL)
        return 0;
    uint64_t cur = resil__a64_load_relaxed(&m->now);
    while (!resil__a64_cas_acq_rel(&m->now, &cur, resil__sat_add(cur, delta_ns))) {
    }
    return resil__sat_add(cur, delta_ns);
}
