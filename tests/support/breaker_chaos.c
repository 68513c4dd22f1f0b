#include "breaker_chaos.h"

#include "support.h"

void breaker_chaos_count_event(void *user, const resil_breaker_event_t *e)
{
    (void)e;
    atomic_fetch_add(&((breaker_chaos_counts *)user)->listener_calls, 1);
}

void breaker_chaos_run(resil_breaker_t *b, breaker_chaos_counts *c, unsigned k, double until,
                       uint64_t seed)
{
    resil_rng_t r;
    resil_rng_seed(&r, seed);
    unsigned long ops = 0;
    while ((ops & 255) != 0 || test_now_seconds() < until) {
        ops++;
        resil_breaker_permit_t p;
        resil_status s = resil_breaker_acquire(b, &p);
        if (s != RESIL_OK) {
            atomic_fetch_add(&c->rejected, 1);
            continue;
        }
        if (resil_breaker_permit_is_probe(&p)) {
            unsigned n = atomic_fetch_add(&c->probes[resil_breaker_permit_generation(&p)], 1) + 1;
            atomic_fetch_add(&c->probes_total, 1);
            if (n > k)
                atomic_fetch_add(&c->violations, 1);
        }
        uint64_t phase = (uint64_t)(test_now_seconds() * 20) & 1;
        resil_outcome o = resil_rng_below(&r, 100) < (phase ? 70 : 5) ? RESIL_OUTCOME_FAILURE
                                                                      : RESIL_OUTCOME_SUCCESS;
        s = resil_breaker_record(b, &p, o, resil_rng_below(&r, 2000));
        if (s == RESIL_OK || s == RESIL_E_STALE)
            atomic_fetch_add(&c->recorded, 1);
        else
            atomic_fetch_add(&c->violations, 1);
    }
    atomic_fetch_add(&c->ops, ops);
}
