/*
 * Rate limiters under pressure, on the real clock: threads (more than
 * cores) and then 4 forked processes share one GCRA limiter, and threads
 * share a keyed set. Offered load is far above the rate, so the admitted
 * count is never above burst + elapsed / T (nothing minted); every decision
 * is counted: admitted + rejected = attempts. How far below that bound a
 * run lands depends on how much CPU the workers got, so "nothing lost" is
 * checked exactly instead with time frozen: in each step threads (then
 * processes) hammer the limiter at one instant until each is refused, and
 * together they must have admitted exactly what a one-thread GCRA model
 * admits at that instant, however their CASes interleaved.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/ratelimit.h"
#include "support.h"

enum { THREADS = 8, PROCS = 4, KEYS = 16 };
#define RATE 200000 /* per second: T = 5 us */
#define BURST 20
#define FROZEN_BURST 2000 /* long rounds, so workers overlap */

typedef struct rounds rounds;

typedef struct shared {
    resil__atomic_u64 attempts, admitted, violations;
    resil__atomic_u64 key_admitted[KEYS];
    double until;
} shared;

struct worker {
    resil_ratelimit_t *r;
    resil_ratelimit_set_t *set;
    shared *sh;
    int id;
    rounds *rd; /* frozen-time rounds */
};

/* THREADS threads running one function, each with a copy of one worker
 * that differs only in its id. */
struct crew {
    pthread_t t[THREADS];
    struct worker w[THREADS];
};

static void crew_start(struct crew *c, void *(*fn)(void *), struct worker proto)
{
    for (int i = 0; i < THREADS; i++) {
        c->w[i] = proto;
        c->w[i].id = i;
        assert_int_equal(pthread_create(&c->t[i], NULL, fn, &c->w[i]), 0);
    }
}

static void crew_join(struct crew *c)
{
    for (int i = 0; i < THREADS; i++)
        pthread_join(c->t[i], NULL);
}

static void *limiter_main(void *arg)
{
    struct worker *w = arg;
    uint64_t n = 0;
    while ((++n & 1023) != 0 || test_now_seconds() < w->sh->until) {
        uint64_t wait = 0;
        resil_status s = resil_ratelimit_try_acquire(w->r, 1, &wait);
        resil__a64_fetch_add_relaxed(&w->sh->attempts, 1);
        if (s == RESIL_OK)
            resil__a64_fetch_add_relaxed(&w->sh->admitted, 1);
        else if (s != RESIL_E_RATE_LIMITED || wait == 0 || wait > RESIL_SEC(1))
            resil__a64_fetch_add_relaxed(&w->sh->violations, 1);
    }
    return NULL;
}

static void check(resil_ratelimit_t *r, shared *sh, double elapsed, const char *what)
{
    resil_ratelimit_stats_t s;
    assert_int_equal(resil_ratelimit_stats(r, &s), RESIL_OK);
    uint64_t attempts = resil__a64_load_relaxed(&sh->attempts);
    double allowed = BURST + elapsed * RATE + 1;
    printf("%s: attempts=%llu admitted=%llu rejected=%llu allowed<=%.0f elapsed=%.3fs\n", what,
           (unsigned long long)attempts, (unsigned long long)s.admitted,
           (unsigned long long)s.rejected, allowed, elapsed);
    assert_int_equal(resil__a64_load_relaxed(&sh->violations), 0);
    assert_int_equal(s.admitted, resil__a64_load_relaxed(&sh->admitted));
    assert_int_equal(s.admitted + s.rejected, attempts);
    assert_true((double)s.admitted <= allowed);
    assert_true(attempts > 3 * s.admitted); /* the limit was really exercised */
}

/* Frozen-time rounds, driven by step(): see the top comment. */
struct rounds {
    resil__atomic_u64 now, round, done, admitted, stop;
};

static void frozen_worker(resil_ratelimit_t *r, rounds *rd)
{
    uint64_t seen = 0;
    for (;;) {
        uint64_t k;
        while ((k = resil__a64_load_acquire(&rd->round)) == seen) {
            if (resil__a64_load_acquire(&rd->stop))
                return;
            sched_yield();
        }
        seen = k;
        uint64_t now = resil__a64_load_relaxed(&rd->now), wait;
        while (resil_ratelimit_try_acquire_at(r, 1, now, &wait) == RESIL_OK)
            resil__a64_fetch_add_relaxed(&rd->admitted, 1);
        resil__a64_fetch_add_acq_rel(&rd->done, 1);
    }
}

static void *frozen_main(void *arg)
{
    struct worker *w = arg;
    frozen_worker(w->r, w->rd);
    return NULL;
}

/* Runs ROUNDS frozen instants for @p workers workers and checks each
 * round's admissions against the model. */
static void drive_rounds(rounds *rd, int workers)
{
    enum { ROUNDS = 300 };
    const uint64_t T = RESIL_SEC(1) / RATE;
    uint64_t now = RESIL_SEC(1000), tat = 0, model = 0, seed = 42;
    for (int i = 1; i <= ROUNDS; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        now += (seed >> 33) % (2 * FROZEN_BURST * T); /* up to 2 bursts' worth */
        for (;;) {                                    /* the model: GCRA at one instant */
            uint64_t base = tat > now ? tat : now;
            if (base + T - now > FROZEN_BURST * T)
                break;
            tat = base + T;
            model++;
        }
        resil__a64_store_relaxed(&rd->now, now);
        resil__a64_store_relaxed(&rd->done, 0);
        resil__a64_store_release(&rd->round, (uint64_t)i);
        while (resil__a64_load_acquire(&rd->done) != (uint64_t)workers)
            sched_yield();
        assert_int_equal(resil__a64_load_relaxed(&rd->admitted), model);
    }
    resil__a64_store_release(&rd->stop, 1);
    printf("frozen time, %d workers: %d rounds, %llu admitted, all as the model\n", workers, ROUNDS,
           (unsigned long long)model);
}

static void frozen_time_admits_exactly_what_the_model_does(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = {RATE, RESIL_SEC(1), FROZEN_BURST};
    resil_ratelimit_t *r;
    assert_int_equal(resil_ratelimit_new(&c, NULL, &r), RESIL_OK);
    rounds rd;
    memset(&rd, 0, sizeof rd);
    struct crew c8;
    crew_start(&c8, frozen_main, (struct worker){r, NULL, NULL, 0, &rd});
    drive_rounds(&rd, THREADS);
    crew_join(&c8);
    resil_ratelimit_free(r);

    /* again with processes sharing the block */
    size_t len = resil_ratelimit_size(&c);
    void *mem = test_shared_alloc(len);
    rounds *prd = test_shared_alloc(sizeof(rounds));
    assert_int_equal(resil_ratelimit_init(mem, len, &c), RESIL_OK);
    for (int i = 0; i < PROCS; i++) {
        if (fork() == 0) {
            resil_ratelimit_t *pr;
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed round must not strand it */
            if (resil_ratelimit_attach(mem, len, NULL, &pr) != RESIL_OK)
                _exit(2);
            frozen_worker(pr, prd);
            _exit(0);
        }
    }
    drive_rounds(prd, PROCS);
    for (int i = 0; i < PROCS; i++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    test_shared_free(mem, len);
    test_shared_free(prd, sizeof(rounds));
}

static void threads_share_one_limiter(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = {RATE, RESIL_SEC(1), BURST};
    resil_ratelimit_t *r;
    assert_int_equal(resil_ratelimit_new(&c, NULL, &r), RESIL_OK);
    shared sh;
    memset(&sh, 0, sizeof sh);
    double start = test_now_seconds();
    sh.until = start + test_stress_seconds() / 3;
    struct crew c8;
    crew_start(&c8, limiter_main, (struct worker){r, NULL, &sh, 0, NULL});
    crew_join(&c8);
    check(r, &sh, test_now_seconds() - start, "threads");
    resil_ratelimit_free(r);
}

static void processes_share_one_limiter(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = {RATE, RESIL_SEC(1), BURST};
    size_t len = resil_ratelimit_size(&c);
    void *mem = test_shared_alloc(len);
    shared *sh = test_shared_alloc(sizeof(shared));
    assert_int_equal(resil_ratelimit_init(mem, len, &c), RESIL_OK);
    double start = test_now_seconds();
    sh->until = start + test_stress_seconds() / 3;
    for (int i = 0; i < PROCS; i++) {
        if (fork() == 0) {
            resil_ratelimit_t *r;
            if (resil_ratelimit_attach(mem, len, NULL, &r) != RESIL_OK)
                _exit(2);
            struct worker w = {r, NULL, sh, i, NULL};
            limiter_main(&w);
            _exit(resil_ratelimit_check(r) == RESIL_OK ? 0 : 3);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    resil_ratelimit_t *r;
    assert_int_equal(resil_ratelimit_attach(mem, len, NULL, &r), RESIL_OK);
    check(r, sh, test_now_seconds() - start, "processes");
    resil_ratelimit_free(r);
    test_shared_free(mem, len);
    test_shared_free(sh, sizeof(shared));
}

static void *set_main(void *arg)
{
    struct worker *w = arg;
    uint64_t n = 0;
    while ((++n & 1023) != 0 || test_now_seconds() < w->sh->until) {
        int key = (int)((n * 7 + (uint64_t)w->id) % KEYS);
        resil_status s = resil_ratelimit_set_try_acquire(w->set, &key, sizeof key, 1, NULL);
        resil__a64_fetch_add_relaxed(&w->sh->attempts, 1);
        if (s == RESIL_OK)
            resil__a64_fetch_add_relaxed(&w->sh->key_admitted[key], 1);
        else if (s != RESIL_E_RATE_LIMITED)
            resil__a64_fetch_add_relaxed(&w->sh->violations, 1);
    }
    return NULL;
}

static void threads_share_a_keyed_set(void **state)
{
    (void)state;
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    c.rate = (resil_ratelimit_config_t){RATE / KEYS, RESIL_SEC(1), BURST};
    c.capacity = 64;
    resil_ratelimit_set_t *set;
    assert_int_equal(resil_ratelimit_set_new(&c, NULL, &set), RESIL_OK);
    shared sh;
    memset(&sh, 0, sizeof sh);
    double start = test_now_seconds();
    sh.until = start + test_stress_seconds() / 3;
    struct crew c8;
    crew_start(&c8, set_main, (struct worker){NULL, set, &sh, 0, NULL});
    crew_join(&c8);
    double elapsed = test_now_seconds() - start;
    double allowed = BURST + elapsed * (RATE / KEYS) + 1;
    uint64_t total = 0;
    for (int k = 0; k < KEYS; k++) {
        uint64_t a = resil__a64_load_relaxed(&sh.key_admitted[k]);
        total += a;
        assert_true((double)a <= allowed);
    }
    resil_ratelimit_set_stats_t st;
    assert_int_equal(resil_ratelimit_set_stats(set, &st), RESIL_OK);
    printf("keyed: attempts=%llu admitted=%llu rejected=%llu per-key allowed<=%.0f used=%u\n",
           (unsigned long long)resil__a64_load_relaxed(&sh.attempts), (unsigned long long)total,
           (unsigned long long)st.rejected, allowed, st.used);
    assert_int_equal(resil__a64_load_relaxed(&sh.violations), 0);
    assert_int_equal(st.admitted, total);
    assert_int_equal(st.admitted + st.rejected, resil__a64_load_relaxed(&sh.attempts));
    assert_int_equal(st.used, KEYS);
    assert_int_equal(resil_ratelimit_set_check(set), RESIL_OK);
    resil_ratelimit_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_share_one_limiter),
        cmocka_unit_test(processes_share_one_limiter),
        cmocka_unit_test(frozen_time_admits_exactly_what_the_model_does),
        cmocka_unit_test(threads_share_a_keyed_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
