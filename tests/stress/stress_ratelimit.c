/*
 * Rate limiters under pressure, on the real clock: threads (more than
 * cores) and then 4 forked processes share one GCRA limiter, and threads
 * share a keyed set. Offered load is far above the rate, so the admitted
 * count must track elapsed / T: never above burst + elapsed / T (nothing
 * minted), and not far below it (nothing lost to CAS races). Every
 * decision is counted: admitted + rejected = attempts.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/ratelimit.h"
#include "support.h"

enum { THREADS = 8, PROCS = 4, KEYS = 16 };
#define RATE 200000 /* per second: T = 5 us */
#define BURST 20

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
};

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
    assert_true((double)s.admitted >= 0.5 * elapsed * RATE);
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
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){r, NULL, &sh, i};
        pthread_create(&t[i], NULL, limiter_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
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
            struct worker w = {r, NULL, sh, i};
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
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){NULL, set, &sh, i};
        pthread_create(&t[i], NULL, set_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
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
        cmocka_unit_test(threads_share_a_keyed_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
