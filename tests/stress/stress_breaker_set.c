/*
 * Keyed breakers under churn: 8 threads, 200 keys, a table of 32 slots and
 * no idle grace, so keys are evicted and slots recycled all the time. One key
 * in ten is "bad-N" and only ever fails; the "good-N" others only ever
 * succeed, so a good key seen OPEN, or holding a failure, means an outcome
 * reached the wrong key's breaker: that is the violation counted.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "resil/breaker_set.h"
#include "support.h"

enum { THREADS = 8, KEYS = 200 };

typedef struct ctx {
    resil_breaker_set_t *s;
    double until;
    atomic_ulong ops, full, stale, violations;
} ctx;

static void *worker(void *arg)
{
    ctx *c = arg;
    resil_rng_t r;
    resil_rng_seed(&r, (uint64_t)(uintptr_t)&r);
    unsigned long ops = 0;
    char key[32];
    while ((ops & 63) != 0 || test_now_seconds() < c->until) {
        ops++;
        unsigned k = (unsigned)resil_rng_below(&r, KEYS);
        int good = k % 10 != 0;
        int n = snprintf(key, sizeof key, "%s-%u", good ? "good" : "bad", k);
        resil_breaker_set_permit_t p;
        resil_status s = resil_breaker_set_acquire(c->s, key, (size_t)n, &p);
        if (s == RESIL_E_FULL) {
            atomic_fetch_add(&c->full, 1);
            continue;
        }
        if (good && s == RESIL_E_BREAKER_OPEN)
            atomic_fetch_add(&c->violations, 1);
        if (s != RESIL_OK)
            continue;
        s = resil_breaker_set_record(c->s, &p, good ? RESIL_OUTCOME_SUCCESS : RESIL_OUTCOME_FAILURE,
                                     1);
        if (s == RESIL_E_STALE)
            atomic_fetch_add(&c->stale, 1);
        else if (s != RESIL_OK)
            atomic_fetch_add(&c->violations, 1);
    }
    atomic_fetch_add(&c->ops, ops);
    return NULL;
}

static void outcomes_never_reach_another_keys_breaker(void **state)
{
    (void)state;
    static ctx c;
    memset(&c, 0, sizeof c);
    resil_breaker_set_config_t cfg = resil_breaker_set_config_default();
    cfg.capacity = 16;
    cfg.idle_evict_ns = 0;
    cfg.breaker.window_size = 4;
    cfg.breaker.minimum_calls = 2;
    cfg.breaker.open_wait_ns = RESIL_MS(1);
    cfg.breaker.half_open_probes = 1;
    assert_int_equal(resil_breaker_set_new(&cfg, NULL, &c.s), RESIL_OK);
    c.until = test_now_seconds() + test_stress_seconds() / 2;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    unsigned long bad_state = 0;
    char key[32];
    for (unsigned k = 1; k < KEYS; k++) {
        if (k % 10 == 0)
            continue;
        int n = snprintf(key, sizeof key, "good-%u", k);
        resil_breaker_t *b = NULL;
        if (resil_breaker_set_find(c.s, key, (size_t)n, &b) != RESIL_OK)
            continue;
        resil_breaker_stats_t st;
        resil_breaker_stats(b, &st);
        bad_state += st.failures != 0 || st.state != RESIL_BREAKER_CLOSED;
        assert_int_equal(resil_breaker_check(b), RESIL_OK);
    }
    resil_breaker_set_stats_t ss;
    resil_breaker_set_stats(c.s, &ss);
    print_message("set churn: %lu ops, %llu inserts, %llu evictions, %lu full, %lu stale, "
                  "%lu violations, %lu good keys in a bad state\n",
                  atomic_load(&c.ops), (unsigned long long)ss.inserts,
                  (unsigned long long)ss.evictions, atomic_load(&c.full), atomic_load(&c.stale),
                  atomic_load(&c.violations), bad_state);
    assert_true(ss.evictions > 100); /* the churn really happened */
    assert_int_equal(atomic_load(&c.violations), 0);
    assert_int_equal(bad_state, 0);
    resil_breaker_set_free(c.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outcomes_never_reach_another_keys_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
