/*
 * Adaptive limiter under pressure: more threads than cores, then 4 forked
 * processes x 2 threads sharing one block, for both algorithms. The limit
 * moves all the time (AIMD: frequent drops against in-use growth;
 * GRADIENT: latency that grows with the calls in flight).
 *
 * A ghost counter (incremented after a grant, decremented before the
 * release) must never exceed the largest limit in force so far
 * (stats.limit_peak, read after the increment): every held permit is a
 * distinct cell whose index was below the limit when it was granted. At
 * quiescence every permit is back, granted + rejected = attempts, and the
 * samples counted equal the sampled releases.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/limiter.h"
#include "support.h"

enum { THREADS = 8, PROCS = 4, MAX_LIMIT = 64 };

typedef struct shared {
    resil__atomic_u64 ghost, violations, attempts, granted, refused, sampled, ghost_max;
    double until;
} shared;

struct worker {
    resil_limiter_t *l;
    shared *sh;
    int id;
};

static void run(resil_limiter_t *l, shared *sh, int id)
{
    uint64_t n = 0, x = (uint64_t)id * 0x9E3779B97F4A7C15u + 1;
    while ((++n & 255) != 0 || test_now_seconds() < sh->until) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        resil_limiter_permit_t p;
        resil_status s = resil_limiter_try_acquire(l, &p);
        resil__a64_fetch_add_relaxed(&sh->attempts, 1);
        if (s == RESIL_E_LIMIT_REACHED) {
            resil__a64_fetch_add_relaxed(&sh->refused, 1);
            if (n % 4 == 0)
                sched_yield(); /* back off: let descheduled holders run */
            continue;
        }
        if (s != RESIL_OK) {
            resil__a64_fetch_add_relaxed(&sh->violations, 1);
            continue;
        }
        resil__a64_fetch_add_relaxed(&sh->granted, 1);
        uint64_t g = resil__a64_fetch_add_acq_rel(&sh->ghost, 1) + 1;
        resil_limiter_stats_t st;
        resil_limiter_stats(l, &st);
        if (g > st.limit_peak || st.limit_peak > MAX_LIMIT)
            resil__a64_fetch_add_relaxed(&sh->violations, 1);
        uint64_t m = resil__a64_load_relaxed(&sh->ghost_max);
        while (g > m && !resil__a64_cas_relaxed(&sh->ghost_max, &m, g)) {
        }
        if (n % 3 == 0)
            sched_yield();
        resil__a64_fetch_sub_acq_rel(&sh->ghost, 1);
        /* Latency grows with the calls in flight; 1 in 8 is dropped. */
        uint64_t lat = RESIL_MS(1) * (1 + g / 2) + (x & 1023);
        if (x % 16 == 0) {
            s = resil_limiter_release_ignored(l, &p);
        } else {
            s = resil_limiter_release(l, &p, lat, x % 8 == 1);
            resil__a64_fetch_add_relaxed(&sh->sampled, 1);
        }
        if (s != RESIL_OK)
            resil__a64_fetch_add_relaxed(&sh->violations, 1);
    }
}

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    run(w->l, w->sh, w->id);
    return NULL;
}

static resil_limiter_config_t config(resil_limiter_algorithm alg)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = 4;
    c.min_limit = 1;
    c.max_limit = MAX_LIMIT;
    c.backoff_ratio = 0.6;
    c.probe_interval = 200;
    c.probe_samples = 5;
    c.queue_size = 0;
    return c;
}

static void check_totals(resil_limiter_t *l, shared *sh, const char *what)
{
    resil_limiter_stats_t s;
    assert_int_equal(resil_limiter_stats(l, &s), RESIL_OK);
    uint64_t attempts = resil__a64_load_relaxed(&sh->attempts);
    printf("%s: attempts=%llu granted=%llu rejected=%llu samples=%llu drops=%llu probes=%llu "
           "limit=%u limit_peak=%u ghost_max=%llu violations=%llu\n",
           what, (unsigned long long)attempts, (unsigned long long)s.granted,
           (unsigned long long)s.rejected, (unsigned long long)s.samples,
           (unsigned long long)s.drops, (unsigned long long)s.probes, s.limit, s.limit_peak,
           (unsigned long long)resil__a64_load_relaxed(&sh->ghost_max),
           (unsigned long long)resil__a64_load_relaxed(&sh->violations));
    assert_int_equal(resil__a64_load_relaxed(&sh->violations), 0);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.granted, resil__a64_load_relaxed(&sh->granted));
    assert_int_equal(s.rejected, resil__a64_load_relaxed(&sh->refused));
    assert_int_equal(s.granted + s.rejected, attempts);
    assert_int_equal(s.samples, resil__a64_load_relaxed(&sh->sampled));
    assert_true(s.rejected > 0);  /* the limit really was contended */
    assert_true(attempts > 2000); /* and the run was not serialized away */
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
}

static void threads(resil_limiter_algorithm alg, const char *what)
{
    resil_limiter_config_t c = config(alg);
    resil_limiter_t *l;
    assert_int_equal(resil_limiter_new(&c, NULL, &l), RESIL_OK);
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.until = test_now_seconds() + test_stress_seconds() / 4;
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){l, &sh, i};
        pthread_create(&t[i], NULL, thread_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    check_totals(l, &sh, what);
    resil_limiter_free(l);
}

static void processes(resil_limiter_algorithm alg, const char *what)
{
    resil_limiter_config_t c = config(alg);
    size_t len = resil_limiter_size(&c);
    void *mem = test_shared_alloc(len);
    shared *sh = test_shared_alloc(sizeof(shared));
    assert_int_equal(resil_limiter_init(mem, len, &c), RESIL_OK);
    sh->until = test_now_seconds() + test_stress_seconds() / 4;
    for (int i = 0; i < PROCS; i++) {
        if (fork() == 0) {
            resil_limiter_t *l;
            if (resil_limiter_attach(mem, len, NULL, &l) != RESIL_OK)
                _exit(2);
            pthread_t t;
            struct worker w = {l, sh, i + 100};
            pthread_create(&t, NULL, thread_main, &w); /* 2 threads per process */
            run(l, sh, i);
            pthread_join(t, NULL);
            /* invariants hold from each process's view */
            _exit(resil_limiter_check(l, 0) == RESIL_OK ? 0 : 3);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    resil_limiter_t *l;
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &l), RESIL_OK);
    check_totals(l, sh, what);
    /* The children exited holding nothing: reclaiming them frees records
     * only (a lazy reclaim may have freed some already). */
    assert_int_equal(resil_limiter_reclaim_dead(l), 0);
    resil_limiter_stats_t s;
    resil_limiter_stats(l, &s);
    assert_int_equal(s.processes, 1);
    resil_limiter_free(l);
    test_shared_free(mem, len);
    test_shared_free(sh, sizeof(shared));
}

static void aimd_threads_never_exceed_the_limit(void **state)
{
    (void)state;
    threads(RESIL_LIMITER_AIMD, "aimd threads");
}

static void gradient_threads_never_exceed_the_limit(void **state)
{
    (void)state;
    threads(RESIL_LIMITER_GRADIENT, "gradient threads");
}

static void aimd_processes_never_exceed_the_limit(void **state)
{
    (void)state;
    processes(RESIL_LIMITER_AIMD, "aimd processes");
}

static void gradient_processes_never_exceed_the_limit(void **state)
{
    (void)state;
    processes(RESIL_LIMITER_GRADIENT, "gradient processes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aimd_threads_never_exceed_the_limit),
        cmocka_unit_test(gradient_threads_never_exceed_the_limit),
        cmocka_unit_test(aimd_processes_never_exceed_the_limit),
        cmocka_unit_test(gradient_processes_never_exceed_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
