/*
 * Bulkhead under pressure: more threads than cores, then 4 forked processes
 * sharing one block. A ghost counter (incremented after a grant, decremented
 * before a release) must never exceed the limit; at quiescence every permit
 * is back and granted + rejected + timed out = attempts.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/bulkhead.h"
#include "support.h"

enum { THREADS = 8, PROCS = 4, LIMIT = 5 };

typedef struct shared {
    resil__atomic_u64 ghost, violations, attempts, granted, refused, timed_out;
    double until;
} shared;

struct worker {
    resil_bulkhead_t *b;
    shared *sh;
    int id;
};

static void run(resil_bulkhead_t *b, shared *sh, int id)
{
    uint64_t n = 0;
    while ((++n & 255) != 0 || test_now_seconds() < sh->until) {
        resil_bulkhead_permit_t p;
        resil_status s = (n + (uint64_t)id) % 8 == 0
                             ? resil_bulkhead_acquire_wait(b, RESIL_US(200), &p)
                             : resil_bulkhead_try_acquire(b, &p);
        resil__a64_fetch_add_relaxed(&sh->attempts, 1);
        if (s == RESIL_OK) {
            resil__a64_fetch_add_relaxed(&sh->granted, 1);
            if (resil__a64_fetch_add_acq_rel(&sh->ghost, 1) + 1 > LIMIT)
                resil__a64_fetch_add_relaxed(&sh->violations, 1);
            if (n % 3 == 0)
                sched_yield();
            resil__a64_fetch_sub_acq_rel(&sh->ghost, 1);
            if (resil_bulkhead_release(b, &p) != RESIL_OK)
                resil__a64_fetch_add_relaxed(&sh->violations, 1);
        } else if (s == RESIL_E_BULKHEAD_FULL) {
            resil__a64_fetch_add_relaxed(&sh->refused, 1);
        } else if (s == RESIL_E_TIMEOUT) {
            resil__a64_fetch_add_relaxed(&sh->timed_out, 1);
        } else {
            resil__a64_fetch_add_relaxed(&sh->violations, 1);
        }
    }
}

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    run(w->b, w->sh, w->id);
    return NULL;
}

static void check_totals(resil_bulkhead_t *b, shared *sh, const char *what)
{
    resil_bulkhead_stats_t s;
    assert_int_equal(resil_bulkhead_stats(b, &s), RESIL_OK);
    uint64_t attempts = resil__a64_load_relaxed(&sh->attempts);
    printf("%s: attempts=%llu granted=%llu rejected=%llu timed_out=%llu peak=%u violations=%llu\n",
           what, (unsigned long long)attempts, (unsigned long long)s.granted,
           (unsigned long long)s.rejected, (unsigned long long)s.timed_out, s.peak,
           (unsigned long long)resil__a64_load_relaxed(&sh->violations));
    assert_int_equal(resil__a64_load_relaxed(&sh->violations), 0);
    assert_int_equal(s.in_flight, 0);
    assert_true(s.peak <= LIMIT);
    assert_int_equal(s.granted, resil__a64_load_relaxed(&sh->granted));
    assert_int_equal(s.rejected, resil__a64_load_relaxed(&sh->refused));
    assert_int_equal(s.timed_out, resil__a64_load_relaxed(&sh->timed_out));
    assert_int_equal(s.granted + s.rejected + s.timed_out, attempts);
    assert_true(s.rejected > 0);   /* the limit really was contended */
    assert_true(attempts > 10000); /* and the run was not serialized away */
    assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
}

static void threads_never_exceed_the_limit(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = LIMIT;
    resil_bulkhead_t *b;
    assert_int_equal(resil_bulkhead_new(&c, NULL, &b), RESIL_OK);
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.until = test_now_seconds() + test_stress_seconds() / 2;
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){b, &sh, i};
        pthread_create(&t[i], NULL, thread_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    check_totals(b, &sh, "threads");
    resil_bulkhead_free(b);
}

static void processes_never_exceed_the_limit(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = LIMIT;
    size_t len = resil_bulkhead_size(&c);
    void *mem = test_shared_alloc(len);
    shared *sh = test_shared_alloc(sizeof(shared));
    assert_int_equal(resil_bulkhead_init(mem, len, &c), RESIL_OK);
    sh->until = test_now_seconds() + test_stress_seconds() / 2;
    for (int i = 0; i < PROCS; i++) {
        if (fork() == 0) {
            resil_bulkhead_t *b;
            if (resil_bulkhead_attach(mem, len, NULL, &b) != RESIL_OK)
                _exit(2);
            pthread_t t;
            struct worker w = {b, sh, i + 100};
            pthread_create(&t, NULL, thread_main, &w); /* 2 threads per process */
            run(b, sh, i);
            pthread_join(t, NULL);
            /* invariants hold from each process's view */
            _exit(resil_bulkhead_check(b, 0) == RESIL_OK ? 0 : 3);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    resil_bulkhead_t *b;
    assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b), RESIL_OK);
    check_totals(b, sh, "processes");
    resil_bulkhead_stats_t s;
    resil_bulkhead_stats(b, &s);
    /* the parent, plus the children whose records no lazy reclaim has freed
     * yet: a child that exits while others still run may already be gone */
    assert_true(s.processes >= 1 && s.processes <= PROCS + 1);
    /* The children exited: their records are reclaimed, holding nothing. */
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 0);
    resil_bulkhead_stats(b, &s);
    assert_int_equal(s.processes, 1);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
    test_shared_free(sh, sizeof(shared));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_never_exceed_the_limit),
        cmocka_unit_test(processes_never_exceed_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
