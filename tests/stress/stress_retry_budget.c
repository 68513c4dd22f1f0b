/*
 * Retry budgets under contention: more threads than cores, then forked
 * processes, on one budget block.
 *
 * Invariants checked (violations counted and printed):
 *   - mixed phase: the level read by any thread is always within [0, max];
 *     a token-bucket retry is granted only when the level the granting CAS
 *     wrote is above half (checked through the stats: granted retries can
 *     not exceed what the tokens allow, see the exact phase);
 *   - exact phase (repeated): N threads record only failures asking for a
 *     retry on a fresh budget; the number granted is exactly what the
 *     semantics promise whatever the interleaving: token bucket with max M
 *     grants M - floor(M/2) - 1 (levels M-1 .. floor(M/2)+1), a quota of C
 *     with cost k grants C / k, a ratio budget with R requests and frozen
 *     time grants R * p % + floor;
 *   - processes: the same exact phase with forked children attaching to a
 *     MAP_SHARED block;
 *   - the threads contend, so token buckets and quotas decide on leases;
 *     in the mixed phase threads also ask for leases now and then, as
 *     contention would make them (leases are counted by sampling the level
 *     word's leased field: a run that never leased would not have tested
 *     them), and resil_retry_budget_check() passes after every phase.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/retry.h"
#include "support.h"

/* Internal to src/retry_budget.c, for tests: grant the calling thread's
 * stripe a lease, as a failure that lost a CAS on the level does. */
void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now);

/* Whether the budget has leases out: the level word's leased field (layout
 * in src/retry_budget.c). */
static int has_leases(const resil_retry_budget_t *b)
{
    uint64_t g = resil__a64_load_relaxed((const resil__atomic_u64 *)((const char *)b + 128));
    return ((g >> 20) & 0xfffff) != 0;
}

enum { THREADS = 8, PROCS = 4 };

typedef struct {
    resil_retry_budget_t *b;
    pthread_barrier_t *start;
    int mode; /* 0 mixed, 1 failures only */
    long ops;
    long granted;
    long violations;
    long leased; /* samples that saw leases out */
    double until;
    uint64_t seed;
} worker;

static void *run(void *p)
{
    worker *w = p;
    pthread_barrier_wait(w->start);
    uint64_t rng = w->seed;
    if (w->mode == 1) {
        for (;;) {
            resil_status s = resil_retry_budget_on_failure(w->b, RESIL_SEC(100), 0, 1, NULL);
            w->ops++;
            w->leased += (w->ops & 7) == 0 && has_leases(w->b);
            if (s == RESIL_OK)
                w->granted++;
            else if (!resil_retry_budget_can_retry(w->b, RESIL_SEC(100)))
                break;                 /* exhausted for good: nothing refills it */
            if (w->ops == 100000000) { /* can_retry() disagrees with the decisions */
                w->violations++;
                break;
            }
        }
        return NULL;
    }
    resil_retry_budget_stats_t st;
    while (test_now_seconds() < w->until) {
        for (int i = 0; i < 256; i++) {
            uint64_t r = resil_splitmix64(&rng);
            uint32_t cost = 0;
            if (r % 509 == 0)
                resil__retry_budget_lease(w->b, RESIL_SEC(100));
            w->leased += (i & 7) == 0 && has_leases(w->b);
            if (r % 3 == 0) {
                if (resil_retry_budget_on_failure(w->b, RESIL_SEC(100), (int)(r >> 8) & 1, 1,
                                                  &cost) == RESIL_OK)
                    w->granted++;
            } else {
                resil_retry_budget_on_success(w->b, RESIL_SEC(100), (r >> 9) & 1 ? cost : 5);
            }
            w->ops++;
        }
        resil_retry_budget_stats(w->b, RESIL_SEC(100), &st);
        if (st.level_milli > st.max_milli && w->violations++ == 0)
            print_message("level %llu above max %llu\n", (unsigned long long)st.level_milli,
                          (unsigned long long)st.max_milli);
    }
    return NULL;
}

static long run_threads(resil_retry_budget_t *b, int mode, double until, long *granted,
                        long *violations, long *leased)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){
            .b = b, .start = &start, .mode = mode, .until = until, .seed = (uint64_t)i * 7919 + 1};
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    long ops = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ops += w[i].ops;
        *granted += w[i].granted;
        *violations += w[i].violations;
        *leased += w[i].leased;
    }
    pthread_barrier_destroy(&start);
    return ops;
}

/* What an exhausted fresh budget must have granted. */
static long promised(const resil_retry_budget_config_t *c, long requests)
{
    switch (c->kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET:
        return (long)c->max_tokens - (long)c->max_tokens / 2 - 1;
    case RESIL_RETRY_BUDGET_QUOTA:
        return (long)(c->quota_capacity / c->retry_cost);
    default:
        return requests * (long)c->retry_percent / 100 +
               (long)((uint64_t)c->min_retries_per_sec * c->ttl_ns / 1000000000u);
    }
}

static resil_retry_budget_config_t config(int kind)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = (resil_retry_budget_kind)kind;
    c.max_tokens = 1000;
    c.token_ratio_milli = 500;
    c.quota_capacity = 100000;
    c.retry_cost = 3;
    c.retry_percent = 25;
    c.min_retries_per_sec = 100;
    return c;
}

static void threads_keep_every_budget_within_its_promise(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(RESIL_RETRY_BUDGET_MAX_BUCKETS)];
    const double secs = test_stress_seconds();
    long ops = 0, rounds = 0, violations = 0, exact_bad = 0, leased = 0;
    for (int kind = 0; kind < 3; kind++) {
        double kind_end = test_now_seconds() + secs / 3;
        while (test_now_seconds() < kind_end || rounds < 3 * (kind + 1)) {
            resil_retry_budget_config_t c = config(kind);
            resil_retry_budget_t *b;
            assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
            /* mixed phase */
            long g = 0;
            ops += run_threads(b, 0, test_now_seconds() + 0.05, &g, &violations, &leased);
            if (resil_retry_budget_check(b) != RESIL_OK && violations++ == 0)
                print_message("kind %d: %s\n", kind, resil_status_detail());
            /* exact phase on a fresh budget */
            assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
            long requests = 20000;
            for (long i = 0; i < requests; i++)
                resil_retry_budget_on_request(b, RESIL_SEC(100));
            g = 0;
            ops += run_threads(b, 1, 0, &g, &violations, &leased);
            if (resil_retry_budget_check(b) != RESIL_OK && violations++ == 0)
                print_message("kind %d: %s\n", kind, resil_status_detail());
            if (g != promised(&c, requests)) {
                if (exact_bad++ == 0)
                    print_message("kind %d: granted %ld, promised %ld\n", kind, g,
                                  promised(&c, requests));
            }
            resil_retry_budget_stats_t s;
            resil_retry_budget_stats(b, RESIL_SEC(100), &s);
            if ((long)s.granted != g)
                exact_bad++;
            rounds++;
        }
    }
    printf("stress_retry_budget threads=%d rounds=%ld ops=%ld violations=%ld exact_mismatch=%ld "
           "lease_samples=%ld\n",
           THREADS, rounds, ops, violations, exact_bad, leased);
    assert_int_equal(violations, 0);
    assert_int_equal(exact_bad, 0);
    assert_true(ops > 10000);
    assert_true(leased > 0);
}

static void forked_processes_share_a_budget_exactly(void **state)
{
    (void)state;
    const double secs = test_stress_seconds();
    double end = test_now_seconds() + secs / 2;
    long rounds = 0, bad = 0, ops = 0;
    while (test_now_seconds() < end || rounds < 3) {
        int kind = (int)(rounds % 3);
        resil_retry_budget_config_t c = config(kind);
        size_t sz = resil_retry_budget_size(&c);
        void *mem = test_shared_alloc(sz);
        assert_non_null(mem);
        assert_int_equal(resil_retry_budget_init(mem, sz, &c, NULL), RESIL_OK);
        long requests = 4000;
        resil_retry_budget_t *b;
        assert_int_equal(resil_retry_budget_attach(mem, sz, &b), RESIL_OK);
        for (long i = 0; i < requests; i++)
            resil_retry_budget_on_request(b, RESIL_SEC(100));
        pid_t pids[PROCS];
        for (int k = 0; k < PROCS; k++) {
            pids[k] = fork();
            assert_true(pids[k] >= 0);
            if (pids[k] == 0) {
                resil_retry_budget_t *cb;
                if (resil_retry_budget_attach(mem, sz, &cb) != RESIL_OK)
                    _exit(2);
                /* bounded: a budget whose can_retry() disagrees with its
                 * decisions must fail the test, not hang it */
                long spins = 0;
                while ((resil_retry_budget_on_failure(cb, RESIL_SEC(100), 0, 1, NULL) == RESIL_OK ||
                        resil_retry_budget_can_retry(cb, RESIL_SEC(100))) &&
                       ++spins < 100000000)
                    ;
                _exit(spins == 100000000 ? 4 : resil_retry_budget_check(cb) == RESIL_OK ? 0 : 3);
            }
        }
        for (int k = 0; k < PROCS; k++) {
            int st;
            assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                bad++;
        }
        resil_retry_budget_stats_t s;
        assert_int_equal(resil_retry_budget_stats(b, RESIL_SEC(100), &s), RESIL_OK);
        if ((long)s.granted != promised(&c, requests)) {
            if (bad++ == 0)
                print_message("kind %d: granted %llu, promised %ld\n", kind,
                              (unsigned long long)s.granted, promised(&c, requests));
        }
        ops += (long)(s.granted + s.refused);
        test_shared_free(mem, sz);
        rounds++;
    }
    printf("stress_retry_budget processes=%d rounds=%ld ops=%ld violations=%ld\n", PROCS, rounds,
           ops, bad);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_keep_every_budget_within_its_promise),
        cmocka_unit_test(forked_processes_share_a_budget_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
