/*
 * The chaotic breaker workload shared by the thread and process stress
 * tests: failure-heavy phases alternate with healthy ones every 50 ms, so
 * the breaker keeps opening, probing and closing. The counters can live in
 * ordinary or MAP_SHARED memory.
 */
#ifndef RESIL_TEST_BREAKER_CHAOS_H
#define RESIL_TEST_BREAKER_CHAOS_H

#include <stdatomic.h>

#include "resil/breaker.h"

/* Probes are counted per full generation. The breaker's generation is 16
 * bits; the full one is recovered from the 64-bit transition count (every
 * transition adds one), and 2^22 counters hold about 4 M transitions before
 * they alias -- minutes of this deliberately flapping workload. */
#define BREAKER_CHAOS_GENS (1u << 22)

typedef struct breaker_chaos_counts {
    atomic_uint probes[BREAKER_CHAOS_GENS]; /* probes granted per full generation */
    atomic_ulong ops, recorded, rejected, probes_total, violations, listener_calls;
    atomic_ulong probe_violations, record_violations; /* the violations, by kind */
} breaker_chaos_counts;

/* A listener that counts its calls in the breaker_chaos_counts @p user. */
void breaker_chaos_count_event(void *user, const resil_breaker_event_t *e);

/* Runs the workload on @p b until @p until (test_now_seconds()). Counts a
 * violation for a probe beyond @p k in one generation and for a record that
 * returns anything but RESIL_OK or RESIL_E_STALE. */
void breaker_chaos_run(resil_breaker_t *b, breaker_chaos_counts *c, unsigned k, double until,
                       uint64_t seed);

#endif /* RESIL_TEST_BREAKER_CHAOS_H */
