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
            /* the full generation: the one nearest to 1 + transitions with
             * the permit's 16 bits (the transition count may lag the state
             * by a few, in either direction of the 16-bit value) */
            resil_breaker_stats_t st;
            resil_breaker_stats(b, &st);
            uint64_t now_gen = 1 + st.transitions;
            int16_t delta = (int16_t)(uint16_t)(resil_breaker_permit_generation(&p) - now_gen);
            uint64_t full = now_gen + (uint64_t)(int64_t)delta;
            unsigned n = atomic_fetch_add(&c->probes[full % BREAKER_CHAOS_GENS], 1) + 1;
            atomic_fetch_add(&c->probes_total, 1);
            if (n > k) {
                atomic_fetch_add(&c->violations, 1);
                atomic_fetch_add(&c->probe_violations, 1);
            }
        }
        uint64_t phase = (uint64_t)(test_now_seconds() * 20) & 1;
        resil_outcome o = resil_rng_below(&r, 100) < (phase ? 70 : 5) ? RESIL_OUTCOME_FAILURE
                                                                      : RESIL_OUTCOME_SUCCESS;
        s = resil_breaker_record(b, &p, o, resil_rng_below(&r, 2000));
        if (s == RESIL_OK || s == RESIL_E_STALE) {
            atomic_fetch_add(&c->recorded, 1);
        } else {
            atomic_fetch_add(&c->violations, 1);
            atomic_fetch_add(&c->record_violations, 1);
        }
    }
    atomic_fetch_add(&c->ops, ops);
}
