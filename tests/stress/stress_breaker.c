/*
 * Breaker under threads (more than cores), on the real clock, counting
 * invariant violations:
 *   - at most K probes are ever granted in one half-open generation;
 *   - when many threads cross the threshold together there is exactly one
 *     CLOSED -> OPEN transition and one listener call;
 *   - window and lifetime totals equal what the threads recorded, once quiet;
 *   - no breaker stays half-open past its probe deadline;
 *   - every transition is reported to the listener exactly once.
 * Each scenario prints how much work it did, so a run that silently
 * serialized (or did nothing) shows.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "breaker_chaos.h"
#include "resil/breaker.h"
#include "support.h"

enum { THREADS = 8 };

/* ---------------------------------------------------------------- chaos */

typedef struct chaos {
    resil_breaker_t *b;
    double until;
    uint32_t k;
    breaker_chaos_counts n;
} chaos;

static void *chaos_thread(void *arg)
{
    chaos *c = arg;
    breaker_chaos_run(c->b, &c->n, c->k, c->until, (uint64_t)(uintptr_t)&arg);
    return NULL;
}

static void probes_never_exceed_k_and_every_transition_is_reported(void **state)
{
    (void)state;
    static chaos c;
    memset(&c, 0, sizeof c);
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 50;
    cfg.minimum_calls = 20;
    cfg.open_wait_ns = RESIL_US(200);
    cfg.half_open_probes = 3;
    cfg.half_open_max_wait_ns = RESIL_MS(2);
    c.k = cfg.half_open_probes;
    resil_breaker_local_t local = {{0}, breaker_chaos_count_event, &c.n, 1};
    assert_int_equal(resil_breaker_new(&cfg, &local, &c.b), RESIL_OK);
    c.until = test_now_seconds() + test_stress_seconds() / 2;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, chaos_thread, &c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    resil_breaker_stats_t s;
    assert_int_equal(resil_breaker_stats(c.b, &s), RESIL_OK);
    print_message("chaos: %lu recorded, %lu rejected, %lu probes, %llu transitions, "
                  "%llu opens, %lu violations (%lu probe, %lu record)\n",
                  atomic_load(&c.n.recorded), atomic_load(&c.n.rejected),
                  atomic_load(&c.n.probes_total), (unsigned long long)s.transitions,
                  (unsigned long long)s.opens, atomic_load(&c.n.violations),
                  atomic_load(&c.n.probe_violations), atomic_load(&c.n.record_violations));
    assert_int_equal(atomic_load(&c.n.violations), 0);
    assert_int_equal(s.transitions, atomic_load(&c.n.listener_calls));
    assert_true(s.opens > 0 && atomic_load(&c.n.probes_total) > 0); /* it really cycled */
    assert_int_equal(resil_breaker_check(c.b), RESIL_OK);
    /* nobody reports any more: the breaker must not stay half-open */
    double end = test_now_seconds() + 0.05;
    while (test_now_seconds() < end) {
    }
    resil_breaker_permit_t p;
    resil_status st = resil_breaker_acquire(c.b, &p);
    assert_int_not_equal(st, RESIL_E_HALF_OPEN_FULL);
    resil_breaker_free(c.b);
}

/* ---------------------------------------------------------------- crossing */

typedef struct crossing {
    resil_breaker_t *b;
    pthread_barrier_t start, done;
    atomic_int opens_reported;
    int rounds;
} crossing;

static void count_open(void *user, const resil_breaker_event_t *e)
{
    if (e->from == RESIL_BREAKER_CLOSED && e->to == RESIL_BREAKER_OPEN)
        atomic_fetch_add(&((crossing *)user)->opens_reported, 1);
}

static void *crossing_thread(void *arg)
{
    crossing *c = arg;
    for (int r = 0; r < c->rounds; r++) {
        resil_breaker_permit_t p[4];
        int got = 0;
        for (int i = 0; i < 4; i++)
            got += resil_breaker_acquire(c->b, &p[i]) == RESIL_OK;
        pthread_barrier_wait(&c->start);
        for (int i = 0; i < got; i++)
            resil_breaker_record(c->b, &p[i], RESIL_OUTCOME_FAILURE, 1);
        pthread_barrier_wait(&c->done);
        pthread_barrier_wait(&c->done); /* main thread checks and resets */
    }
    return NULL;
}

/* A fresh breaker one call short of its minimum: 32 successes, 31 failures.
 * The next failure makes 32 of 64: exactly the 50% threshold. */
static void crossing_setup(crossing *c, const resil_breaker_config_t *cfg,
                           const resil_breaker_local_t *local)
{
    atomic_store(&c->opens_reported, 0);
    assert_int_equal(resil_breaker_new(cfg, local, &c->b), RESIL_OK);
    for (int i = 0; i < 63; i++) {
        resil_breaker_permit_t p;
        assert_int_equal(resil_breaker_acquire(c->b, &p), RESIL_OK);
        resil_breaker_record(c->b, &p, i < 32 ? RESIL_OUTCOME_SUCCESS : RESIL_OUTCOME_FAILURE, 1);
    }
}

static void threads_crossing_the_threshold_together_open_it_once(void **state)
{
    (void)state;
    static crossing c;
    memset(&c, 0, sizeof c);
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 64;
    cfg.minimum_calls = 64;
    resil_breaker_local_t local = {{0}, count_open, &c, 1};
    crossing_setup(&c, &cfg, &local);
    c.rounds = 300;
    pthread_barrier_init(&c.start, NULL, THREADS + 1);
    pthread_barrier_init(&c.done, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, crossing_thread, &c), 0);
    int bad = 0;
    for (int r = 0; r < c.rounds; r++) {
        pthread_barrier_wait(&c.start); /* all permits taken, failures about to land */
        pthread_barrier_wait(&c.done);
        resil_breaker_stats_t s;
        resil_breaker_stats(c.b, &s);
        if (s.opens != 1 || atomic_load(&c.opens_reported) != 1 ||
            resil_breaker_state_get(c.b) != RESIL_BREAKER_OPEN)
            bad++;
        resil_breaker_free(c.b);
        crossing_setup(&c, &cfg, &local);
        pthread_barrier_wait(&c.done);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    print_message("crossing: %d rounds of %d threads x 4 failures, %d rounds without exactly "
                  "one open\n",
                  c.rounds, THREADS, bad);
    assert_int_equal(bad, 0);
    resil_breaker_free(c.b);
}

/* ---------------------------------------------------------------- totals */

typedef struct totals {
    resil_breaker_t *b;
    double until;
    atomic_ulong successes, failures, slow;
} totals;

static void *totals_thread(void *arg)
{
    totals *c = arg;
    resil_rng_t r;
    resil_rng_seed(&r, (uint64_t)(uintptr_t)&r);
    unsigned long ops = 0;
    while ((ops & 255) != 0 || test_now_seconds() < c->until) {
        ops++;
        resil_breaker_permit_t p;
        if (resil_breaker_acquire(c->b, &p) != RESIL_OK)
            continue;
        int f = resil_rng_below(&r, 10) == 0;
        uint64_t d = resil_rng_below(&r, 20) == 0 ? RESIL_SEC(2) : 1;
        if (resil_breaker_record(c->b, &p, f ? RESIL_OUTCOME_FAILURE : RESIL_OUTCOME_SUCCESS, d) !=
            RESIL_OK)
            continue;
        atomic_fetch_add(f ? &c->failures : &c->successes, 1);
        if (d > 1)
            atomic_fetch_add(&c->slow, 1);
    }
    return NULL;
}

static void run_totals(resil_window_kind kind)
{
    static totals c;
    memset(&c, 0, sizeof c);
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_kind = kind;
    cfg.window_size = 1000;
    cfg.window_duration_ns = RESIL_SEC(600); /* longer than the run: holds every call */
    cfg.window_buckets = 10;
    cfg.failure_rate_threshold = 100; /* never reached: 10% failures */
    cfg.slow_rate_threshold = 100;
    cfg.slow_call_duration_ns = RESIL_SEC(1);
    assert_int_equal(resil_breaker_new(&cfg, NULL, &c.b), RESIL_OK);
    c.until = test_now_seconds() + test_stress_seconds() / 4;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, totals_thread, &c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    resil_breaker_stats_t s;
    assert_int_equal(resil_breaker_stats(c.b, &s), RESIL_OK);
    unsigned long ok = atomic_load(&c.successes), bad = atomic_load(&c.failures);
    print_message("%s window: %lu successes, %lu failures, %lu slow recorded by %d threads; "
                  "window holds %llu calls\n",
                  kind == RESIL_WINDOW_TIME ? "time" : "count", ok, bad, atomic_load(&c.slow),
                  THREADS, (unsigned long long)s.window_calls);
    assert_true(ok + bad > 1000);
    assert_int_equal(s.successes, ok);
    assert_int_equal(s.failures, bad);
    assert_int_equal(s.slow_calls, atomic_load(&c.slow));
    assert_int_equal(resil_breaker_state_get(c.b), RESIL_BREAKER_CLOSED);
    if (kind == RESIL_WINDOW_TIME) {
        assert_int_equal(s.window_calls, ok + bad);
        assert_int_equal(s.window_failures, bad);
        assert_int_equal(s.window_slow, atomic_load(&c.slow));
    } else {
        assert_int_equal(s.window_calls, 1000);
        /* once quiet, the window is exactly the last 1000 calls */
        for (int i = 0; i < 1000; i++) {
            resil_breaker_permit_t p;
            assert_int_equal(resil_breaker_acquire(c.b, &p), RESIL_OK);
            resil_breaker_record(c.b, &p,
                                 i % 4 == 0 ? RESIL_OUTCOME_FAILURE : RESIL_OUTCOME_SUCCESS, 1);
        }
        resil_breaker_stats(c.b, &s);
        assert_int_equal(s.window_calls, 1000);
        assert_int_equal(s.window_failures, 250);
    }
    assert_int_equal(resil_breaker_check(c.b), RESIL_OK);
    resil_breaker_free(c.b);
}

static void count_window_totals_equal_recorded_outcomes(void **state)
{
    (void)state;
    run_totals(RESIL_WINDOW_COUNT);
}

static void time_window_totals_equal_recorded_outcomes(void **state)
{
    (void)state;
    run_totals(RESIL_WINDOW_TIME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probes_never_exceed_k_and_every_transition_is_reported),
        cmocka_unit_test(threads_crossing_the_threshold_together_open_it_once),
        cmocka_unit_test(count_window_totals_equal_recorded_outcomes),
        cmocka_unit_test(time_window_totals_equal_recorded_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
