#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resil/limiter.h"
#include "support.h"

static resil_limiter_config_t config(resil_limiter_algorithm alg, uint32_t initial)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = initial;
    c.min_limit = 1;
    c.probe_interval = 0;
    return c;
}

static resil_limiter_t *make(resil_limiter_algorithm alg, uint32_t initial)
{
    resil_limiter_config_t c = config(alg, initial);
    resil_limiter_t *l = NULL;
    assert_int_equal(resil_limiter_new(&c, NULL, &l), RESIL_OK);
    return l;
}

static resil_limiter_stats_t stats(resil_limiter_t *l)
{
    resil_limiter_stats_t s;
    assert_int_equal(resil_limiter_stats(l, &s), RESIL_OK);
    return s;
}

#define assert_near(x, y) assert_true((x) > (y)-1e-6 && (x) < (y) + 1e-6)

/* @p n calls, each acquired and released at once with @p latency. */
static void cycles(resil_limiter_t *l, int n, uint64_t latency, int dropped)
{
    resil_limiter_permit_t p;
    for (int i = 0; i < n; i++) {
        assert_int_equal(resil_limiter_try_acquire(l, &p), RESIL_OK);
        assert_int_equal(resil_limiter_release(l, &p, latency, dropped), RESIL_OK);
    }
}

static void admits_up_to_the_limit(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 3);
    resil_limiter_permit_t p[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    assert_int_equal(resil_limiter_try_acquire(l, &p[3]), RESIL_E_LIMIT_REACHED);
    assert_int_equal(stats(l).in_flight, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    resil_limiter_stats_t s = stats(l);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.granted, 3);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.samples, 0);
    assert_int_equal(s.limit, 3);
    assert_int_equal(s.limit_peak, 3);
    assert_int_equal(s.processes, 1);
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_free(l);
}

static void aimd_backs_off_once_per_round(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 10);
    resil_limiter_permit_t p[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    /* Three drops in the same round: one decrease, 10 -> 9, applied at once. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_release(l, &p[i], RESIL_MS(1), 1), RESIL_OK);
    resil_limiter_stats_t s = stats(l);
    assert_near(s.estimate, 9.0);
    assert_int_equal(s.limit, 9);
    assert_int_equal(s.drops, 3);
    /* A latency above timeout_ns (5 s) is a drop too, but still this round. */
    assert_int_equal(resil_limiter_release(l, &p[3], RESIL_SEC(6), 0), RESIL_OK);
    assert_int_equal(stats(l).limit, 9);
    assert_int_equal(stats(l).drops, 4);
    /* 7 cells stay held above the lowered limit: in flight may exceed it. */
    for (int i = 4; i < 10; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    /* 4 samples since the decrease; 5 more good ones (a batch is 16, so
     * they wait), then a drop: 10 >= 9, the round is over, 9 -> 8.1. */
    cycles(l, 5, RESIL_MS(1), 0);
    assert_near(stats(l).estimate, 9.0);
    cycles(l, 1, RESIL_MS(1), 1);
    assert_near(stats(l).estimate, 8.1);
    assert_int_equal(stats(l).limit, 8);
    assert_int_equal(stats(l).limit_peak, 10);
    resil_limiter_free(l);
}

static void aimd_grows_in_batches_only_while_in_use(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 32);
    resil_limiter_permit_t held[20];
    for (int i = 0; i < 20; i++) /* in use: 20 + 1 >= 32 / 2 */
        assert_int_equal(resil_limiter_try_acquire(l, &held[i]), RESIL_OK);
    cycles(l, 15, RESIL_MS(1), 0); /* a batch is max(16, 32 / 8) */
    assert_near(stats(l).estimate, 32.0);
    cycles(l, 1, RESIL_MS(1), 0); /* the 16th applies the batch: + 16 / 32 */
    assert_near(stats(l).estimate, 32.5);
    assert_int_equal(stats(l).samples, 16);
    for (int i = 0; i < 20; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &held[i]), RESIL_OK);
    cycles(l, 32, RESIL_MS(1), 0); /* not in use: no growth */
    assert_near(stats(l).estimate, 32.5);
    /* The first drop decreases (no decrease yet), applying its batch. */
    cycles(l, 1, RESIL_MS(1), 1);
    assert_near(stats(l).estimate, 32.5 * 0.9);
    /* 16 good samples (one batch, not in use, applied to count the round),
     * 12 more waiting, then a drop: 1 + 16 + 13 = 30 >= 29 samples. */
    cycles(l, 28, RESIL_MS(1), 0);
    assert_near(stats(l).estimate, 32.5 * 0.9);
    cycles(l, 1, RESIL_MS(1), 1);
    assert_near(stats(l).estimate, 32.5 * 0.9 * 0.9);
    assert_int_equal(stats(l).limit, 26);
    assert_int_equal(stats(l).samples, 16 + 32 + 1 + 28 + 1);
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_free(l);
}

static void gradient_moves_once_per_round_of_samples(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_GRADIENT, 20);
    cycles(l, 16, RESIL_MS(10), 0); /* one batch, 16 < a round of 20 */
    resil_limiter_stats_t s = stats(l);
    assert_near(s.estimate, 20.0);
    assert_int_equal(s.baseline_ns, RESIL_MS(10));
    cycles(l, 16, RESIL_MS(20), 0); /* the round ends: mean 15 ms */
    double g = 10.0 / 15.0, e = 0.8 * 20 + 0.2 * (g * 20 + 4);
    s = stats(l);
    assert_near(s.estimate, e);
    assert_int_equal(s.limit, 19);
    /* Rounds at the baseline (gradient 1) while the limit is idle: nothing. */
    cycles(l, 64, RESIL_MS(10), 0);
    assert_near(stats(l).estimate, e);
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_free(l);
}

static void gradient_remeasures_the_baseline_with_the_limit_pinned(void **state)
{
    (void)state;
    resil_limiter_config_t c = config(RESIL_LIMITER_GRADIENT, 20);
    c.min_limit = 2;
    c.probe_interval = 40;
    c.probe_samples = 3;
    resil_limiter_t *l;
    assert_int_equal(resil_limiter_new(&c, NULL, &l), RESIL_OK);
    resil_limiter_permit_t old;
    assert_int_equal(resil_limiter_try_acquire(l, &old), RESIL_OK);
    /* Batches of 16 make rounds of 32 samples (20 needed): the second
     * round ends at 64 >= 40 samples and pins the limit. */
    cycles(l, 64, RESIL_MS(10), 0);
    resil_limiter_stats_t s = stats(l);
    assert_int_equal(s.probes, 1);
    assert_int_equal(s.limit, 2); /* pinned */
    /* The call admitted before the pin says nothing about no-load RTT. */
    assert_int_equal(resil_limiter_release(l, &old, RESIL_MS(1), 0), RESIL_OK);
    /* The baseline rises: calls under the pin take 30 ms. */
    cycles(l, 2, RESIL_MS(30), 0);
    assert_int_equal(stats(l).limit, 2);
    cycles(l, 1, RESIL_MS(40), 0); /* the third: the pin ends */
    s = stats(l);
    assert_int_equal(s.baseline_ns, RESIL_MS(30));
    assert_true(s.limit > 2);
    assert_int_equal(s.limit, (uint32_t)s.estimate);
    assert_int_equal(s.samples, 64 + 1 + 3);
    resil_limiter_free(l);
}

/* Fills the limiter: @return how many more calls it admitted. */
static int fill(resil_limiter_t *l, resil_limiter_permit_t *p, int max)
{
    int n = 0;
    while (n < max && resil_limiter_try_acquire(l, &p[n]) == RESIL_OK)
        n++;
    return n;
}

static void a_lowered_limit_revokes_nothing_and_admits_below_it(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 10);
    resil_limiter_permit_t p[12];
    assert_int_equal(fill(l, p, 12), 10);
    /* A drop lowers the limit to 9 with 9 calls still holding permits. */
    assert_int_equal(resil_limiter_release(l, &p[9], RESIL_MS(1), 1), RESIL_OK);
    assert_int_equal(stats(l).limit, 9);
    /* A new call needs a free cell below 9: the freed cell may be one (then
     * in flight is back at 10 > 9 until the holder above 9 releases). */
    int more = fill(l, &p[9], 3);
    assert_true(more <= 1);
    assert_int_equal(stats(l).in_flight, 9 + more);
    assert_int_equal(stats(l).limit_peak, 10);
    for (int i = 0; i < 9 + more; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    /* Drained: exactly the new limit is admitted. */
    assert_int_equal(fill(l, p, 12), 9);
    for (int i = 0; i < 9; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_free(l);
}

static void bad_input_gets_clear_statuses(void **state)
{
    (void)state;
    resil_limiter_config_t c = resil_limiter_config_default();
    assert_int_equal(resil_limiter_config_check(&c), RESIL_OK);
    c.min_limit = 0;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "limiter.min_limit: must be >= 1, got 0");
    c = resil_limiter_config_default();
    c.max_limit = 2;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c.max_limit = RESIL_LIMITER_MAX_LIMIT + 1;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.initial_limit = 2000;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.backoff_ratio = 1.0;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.smoothing = 0.0 / 0.0; /* NaN */
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.algorithm = (resil_limiter_algorithm)7;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.max_processes = RESIL_LIMITER_MAX_PROCESSES + 1;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "limiter.max_processes: must be in 1..254, got 255");
    c = resil_limiter_config_default();
    c.stripes = 12;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.probe_interval = 20;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_int_equal(resil_limiter_size(&c), 0);
    assert_int_equal(resil_limiter_size(NULL), 0);
    assert_int_equal(resil_limiter_config_check(NULL), RESIL_E_INVALID_ARG);
    resil_limiter_t *l = (resil_limiter_t *)1;
    assert_int_equal(resil_limiter_new(&c, NULL, &l), RESIL_E_INVALID_CONFIG);
    assert_null(l);
    assert_int_equal(resil_limiter_new(NULL, NULL, &l), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_new(&c, NULL, NULL), RESIL_E_INVALID_ARG);

    resil_limiter_t *a = make(RESIL_LIMITER_GRADIENT, 2), *b = make(RESIL_LIMITER_GRADIENT, 2);
    resil_limiter_permit_t p, never;
    memset(&never, 0, sizeof never);
    assert_int_equal(resil_limiter_try_acquire(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_try_acquire(a, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_release(a, &never, 1, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_release(a, NULL, 1, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_release(NULL, &p, 1, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_release_ignored(a, &never), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_try_acquire(a, &p), RESIL_OK);
    resil_limiter_permit_t copy = p;
    assert_int_equal(resil_limiter_release(b, &p, 1, 0), RESIL_E_INVALID_ARG); /* foreign */
    assert_int_equal(resil_limiter_release(a, &p, RESIL_MS(1), 0), RESIL_OK);
    assert_int_equal(resil_limiter_release(a, &p, RESIL_MS(1), 0), RESIL_E_INVALID_ARG);
    /* A copy given back again: its cell no longer holds it. */
    assert_int_equal(resil_limiter_release(a, &copy, RESIL_MS(1), 0), RESIL_E_NOT_OWNER);
    resil_limiter_stats_t s = stats(a);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.samples, 1);
    assert_true(resil_limiter_reclaim_dead(NULL) < 0);
    assert_true(resil_limiter_reclaim_pid(a, 0) < 0);
    assert_true(resil_limiter_reclaim_pid(NULL, 1) < 0);
    assert_int_equal(resil_limiter_stats(NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_stats(a, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_check(NULL, 0), RESIL_E_INVALID_ARG);
    resil_limiter_free(a);
    resil_limiter_free(b);
    resil_limiter_free(NULL);
}

static void latencies_of_any_size_keep_the_estimate_in_bounds(void **state)
{
    (void)state;
    const uint64_t lat[] = {0, 1, UINT64_MAX, UINT64_MAX / 2, RESIL_SEC(3600), 7};
    for (int alg = 0; alg < 2; alg++) {
        resil_limiter_t *l = make((resil_limiter_algorithm)alg, 50);
        for (int r = 0; r < 200; r++)
            cycles(l, 1, lat[r % 6], r % 7 == 0);
        resil_limiter_stats_t s = stats(l);
        assert_true(s.estimate >= 1 && s.estimate <= 1000);
        assert_int_equal(s.samples, 200);
        assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
        resil_limiter_free(l);
    }
}

static void caller_memory_attaches_and_rejects_garbage(void **state)
{
    (void)state;
    resil_limiter_config_t c = resil_limiter_config_default();
    c.initial_limit = 4;
    for (uint32_t max = 4; max <= RESIL_LIMITER_MAX_LIMIT; max = max * 3 + 1) {
        c.max_limit = max;
        for (uint32_t stripes = 1; stripes <= 64; stripes *= 8) {
            c.stripes = stripes;
            c.max_processes = stripes * 3;
            size_t len = resil_limiter_size(&c);
            assert_true(len > 0 && len % 64 == 0);
            assert_true(len <= RESIL_LIMITER_SIZE(max, stripes * 3, stripes));
        }
    }
    c = resil_limiter_config_default();
    c.initial_limit = 5;
    size_t len = resil_limiter_size(&c);
    unsigned char *mem = aligned_alloc(64, len);
    memset(mem, 0, len);
    resil_limiter_t *a, *b;
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &a), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_limiter_init(mem + 8, len, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_init(mem, len - 64, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_init(mem, len, &c), RESIL_OK);
    assert_int_equal(resil_limiter_attach(mem, len - 64, NULL, &a), RESIL_E_CORRUPT);
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &a), RESIL_OK);
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &b), RESIL_OK);
    resil_limiter_permit_t p;
    assert_int_equal(resil_limiter_try_acquire(a, &p), RESIL_OK);
    assert_int_equal(resil_limiter_release(b, &p, 1, 0), RESIL_OK); /* other handle */
    assert_int_equal(stats(a).processes, 1); /* both handles share this process's record */
    /* A cell naming a record that cannot exist is corruption. */
    uint64_t *cell_word = (uint64_t *)(void *)(mem + len - 64 * 8);
    uint64_t saved = *cell_word;
    *cell_word = (saved & ~UINT64_C(0xFFFF)) | UINT64_C(0x4101);
    assert_int_equal(resil_limiter_check(a, 0), RESIL_E_CORRUPT);
    resil_limiter_t *x;
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &x), RESIL_E_CORRUPT);
    *cell_word = saved;
    assert_int_equal(resil_limiter_check(a, 1), RESIL_OK);
    resil_limiter_free(a);
    resil_limiter_free(b);
    mem[40] ^= 1;
    assert_int_equal(resil_limiter_attach(mem, len, NULL, &a), RESIL_E_CORRUPT);
    resil_rng_t g;
    resil_rng_seed(&g, 9);
    for (int trial = 0; trial < 2000; trial++) {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t v = resil_rng_next(&g);
            memcpy(mem + i, &v, 8);
        }
        if (trial % 2) {
            uint64_t tag = (uint64_t)0x4c495352 << 32 | 6u << 16 | 2u;
            memcpy(mem, &tag, 8);
        }
        assert_int_not_equal(resil_limiter_attach(mem, len, NULL, &a), RESIL_OK);
    }
    free(mem);
}

/* A limiter in MAP_SHARED memory (seen by forked children). */
static resil_limiter_t *make_shared(const resil_limiter_config_t *c,
                                    const resil_limiter_local_t *local, void **mem, size_t *len)
{
    *len = resil_limiter_size(c);
    *mem = test_shared_alloc(*len);
    assert_int_equal(resil_limiter_init(*mem, *len, c), RESIL_OK);
    resil_limiter_t *l = NULL;
    assert_int_equal(resil_limiter_attach(*mem, *len, local, &l), RESIL_OK);
    return l;
}

/* A forked child takes permits and dies without releasing them. */
static pid_t child_takes_and_dies(void *mem, size_t len, int n, int linger)
{
    pid_t pid = fork();
    if (pid == 0) {
        resil_limiter_t *c;
        if (resil_limiter_attach(mem, len, NULL, &c) != RESIL_OK)
            _exit(2);
        resil_limiter_permit_t p;
        for (int i = 0; i < n; i++)
            if (resil_limiter_try_acquire(c, &p) != RESIL_OK)
                _exit(3);
        if (linger)
            pause();
        _exit(0);
    }
    return pid;
}

static void dead_holders_are_reclaimed_lazily_and_explicitly(void **state)
{
    (void)state;
    resil_manual_clock_t *mc;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(1), &mc), RESIL_OK);
    resil_limiter_local_t local = {resil_manual_clock_as_clock(mc)};
    resil_limiter_config_t c = config(RESIL_LIMITER_AIMD, 4);
    c.reclaim_interval_ns = RESIL_MS(100);
    size_t len;
    void *mem;
    resil_limiter_t *l = make_shared(&c, &local, &mem, &len);

    int st;
    pid_t pid = child_takes_and_dies(mem, len, 4, 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stats(l).in_flight, 4);
    assert_int_equal(stats(l).processes, 2);
    /* Lazy: the full limiter notices the dead holder, once per interval. */
    resil_limiter_permit_t p;
    assert_int_equal(resil_limiter_try_acquire(l, &p), RESIL_OK);
    assert_int_equal(stats(l).reclaimed, 4);
    assert_int_equal(stats(l).processes, 1);
    pid = child_takes_and_dies(mem, len, 3, 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    resil_limiter_permit_t q;
    assert_int_equal(resil_limiter_try_acquire(l, &q), RESIL_E_LIMIT_REACHED); /* too soon */
    resil_manual_clock_advance(mc, RESIL_MS(100));
    assert_int_equal(resil_limiter_try_acquire(l, &q), RESIL_OK);
    assert_int_equal(stats(l).reclaimed, 7);
    assert_int_equal(resil_limiter_release(l, &p, RESIL_MS(1), 0), RESIL_OK);
    assert_int_equal(resil_limiter_release(l, &q, RESIL_MS(1), 0), RESIL_OK);

    /* Explicit: a live but killed child (a zombie until reaped) is dead. */
    pid = child_takes_and_dies(mem, len, 2, 1);
    while (stats(l).in_flight != 2)
        usleep(1000);
    assert_int_equal(resil_limiter_reclaim_dead(l), 0); /* alive: kept */
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(resil_limiter_reclaim_dead(l), 2);
    assert_int_equal(stats(l).in_flight, 0);
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_free(l);
    test_shared_free(mem, len);
    resil_manual_clock_free(mc);
}

static void reclaim_by_pid_fences_stale_releases(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 3);
    resil_limiter_permit_t p[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    assert_int_equal(resil_limiter_reclaim_pid(l, (int)getpid()), 3);
    resil_limiter_stats_t s = stats(l);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.reclaimed, 3);
    assert_int_equal(s.processes, 0);
    /* Our own permits were reclaimed: releasing them changes nothing. */
    assert_int_equal(resil_limiter_release(l, &p[0], 1, 0), RESIL_E_NOT_OWNER);
    assert_int_equal(resil_limiter_release_ignored(l, &p[1]), RESIL_E_NOT_OWNER);
    /* The next acquire registers again. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    assert_int_equal(resil_limiter_try_acquire(l, &p[0]), RESIL_E_LIMIT_REACHED);
    assert_int_equal(stats(l).processes, 1);
    assert_int_equal(resil_limiter_reclaim_pid(l, 999999), 0);
    resil_limiter_free(l);
}

static void allocation_failure_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    resil_limiter_config_t c = resil_limiter_config_default();
    test_alloc_install(1, 1);
    resil_limiter_t *l = (resil_limiter_t *)1;
    assert_int_equal(resil_limiter_new(&c, NULL, &l), RESIL_E_NO_MEMORY);
    assert_null(l);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
}

/* ---- convergence against a simulated server ----
 *
 * The server has capacity C: a call that starts with n calls in flight
 * (itself included) takes L * max(1, n / C). With `shed`, it also drops
 * (quickly, in L / 10) every call that starts above C. Clients have
 * unbounded demand: they keep as many calls in flight as the limiter
 * admits. Time is simulated exactly (a manual clock of our own). With
 * `threads`, completion i is released by worker thread i mod threads, in
 * lockstep: the same run, but each thread batches its own samples. */

enum { MAX_REQ = 2048, MAX_WORKERS = 8 };

typedef struct request {
    uint64_t done;
    uint64_t latency;
    int dropped;
    resil_limiter_permit_t p;
} request;

typedef struct sim {
    resil_limiter_t *l;
    uint64_t now, L, released;
    uint32_t C;
    int shed, n, threads;
    request *job; /* the completion handed to a worker; NULL: stop */
    sem_t go[MAX_WORKERS], done;
    pthread_t worker[MAX_WORKERS];
    request req[MAX_REQ];
} sim;

struct worker_arg {
    sim *s;
    int i;
};

static void *release_worker(void *arg)
{
    struct worker_arg *w = arg;
    sim *s = w->s;
    for (;;) {
        sem_wait(&s->go[w->i]);
        request *r = s->job;
        if (r == NULL)
            return NULL;
        if (resil_limiter_release(s->l, &r->p, r->latency, r->dropped) != RESIL_OK)
            abort();
        sem_post(&s->done);
    }
}

static void release_request(sim *s, request *r)
{
    if (s->threads == 0) {
        assert_int_equal(resil_limiter_release(s->l, &r->p, r->latency, r->dropped), RESIL_OK);
        return;
    }
    s->job = r;
    sem_post(&s->go[s->released++ % (uint64_t)s->threads]);
    sem_wait(&s->done);
}

/* Runs @p seconds; returns the mean of the limit estimate sampled at every
 * completion in the second half. */
static double run(sim *s, double seconds)
{
    uint64_t end = s->now + (uint64_t)(seconds * 1e9), half = s->now + (uint64_t)(seconds * 5e8);
    double sum = 0;
    uint64_t count = 0;
    while (s->now < end) {
        while (s->n < MAX_REQ && resil_limiter_try_acquire(s->l, &s->req[s->n].p) == RESIL_OK) {
            int n = s->n + 1;
            int dropped = s->shed && (uint32_t)n > s->C;
            uint64_t lat =
                dropped ? s->L / 10 : ((uint32_t)n <= s->C ? s->L : s->L * (uint64_t)n / s->C);
            s->req[s->n].done = s->now + lat;
            s->req[s->n].latency = lat;
            s->req[s->n].dropped = dropped;
            s->n++;
        }
        assert_true(s->n > 0);
        int first = 0;
        for (int i = 1; i < s->n; i++)
            if (s->req[i].done < s->req[first].done)
                first = i;
        s->now = s->req[first].done;
        release_request(s, &s->req[first]);
        s->req[first] = s->req[--s->n];
        if (s->now >= half) {
            resil_limiter_stats_t st;
            resil_limiter_stats(s->l, &st);
            sum += st.estimate;
            count++;
        }
    }
    return sum / (double)count;
}

static void converges(resil_limiter_algorithm alg, int shed, const char *name, int threads,
                      double seconds)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = 10;
    c.min_limit = 4;
    c.max_limit = 1000;
    sim *s = calloc(1, sizeof *s);
    s->shed = shed;
    s->threads = threads;
    assert_int_equal(resil_limiter_new(&c, NULL, &s->l), RESIL_OK);
    struct worker_arg args[MAX_WORKERS];
    sem_init(&s->done, 0, 0);
    for (int i = 0; i < threads; i++) {
        args[i] = (struct worker_arg){s, i};
        sem_init(&s->go[i], 0, 0);
        pthread_create(&s->worker[i], NULL, release_worker, &args[i]);
    }
    s->now = RESIL_SEC(1);
    s->L = RESIL_MS(10);
    const uint32_t caps[] = {100, 40, 250, 100};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        s->C = caps[i];
        double mean = run(s, seconds);
        resil_limiter_stats_t st;
        resil_limiter_stats(s->l, &st);
        printf("%s, %d threads: capacity %u -> mean limit %.1f (%+.1f%%) over the last %g s, "
               "samples=%llu drops=%llu probes=%llu baseline=%.2f ms\n",
               name, threads > 0 ? threads : 1, caps[i], mean, (mean / caps[i] - 1) * 100,
               seconds / 2, (unsigned long long)st.samples, (unsigned long long)st.drops,
               (unsigned long long)st.probes, (double)st.baseline_ns / 1e6);
        assert_true(mean >= 0.75 * caps[i] && mean <= 1.25 * caps[i]);
    }
    s->job = NULL;
    for (int i = 0; i < threads; i++) {
        sem_post(&s->go[i]);
        pthread_join(s->worker[i], NULL);
        sem_destroy(&s->go[i]);
    }
    sem_destroy(&s->done);
    assert_int_equal(resil_limiter_check(s->l, 1), RESIL_OK);
    resil_limiter_free(s->l);
    free(s);
}

static void gradient_converges_to_capacity_and_recovers(void **state)
{
    (void)state;
    converges(RESIL_LIMITER_GRADIENT, 0, "gradient", 0, 20.0);
}

static void aimd_converges_to_capacity_and_recovers(void **state)
{
    (void)state;
    converges(RESIL_LIMITER_AIMD, 1, "aimd", 0, 20.0);
}

/* Batches are per thread: with samples from 8 threads the algorithm runs
 * a few batches behind, and still converges (shorter phases: every
 * completion is a hand-over between threads). */
static void both_converge_with_samples_from_8_threads(void **state)
{
    (void)state;
    converges(RESIL_LIMITER_GRADIENT, 0, "gradient", 8, 5.0);
    converges(RESIL_LIMITER_AIMD, 1, "aimd", 8, 5.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admits_up_to_the_limit),
        cmocka_unit_test(aimd_backs_off_once_per_round),
        cmocka_unit_test(aimd_grows_in_batches_only_while_in_use),
        cmocka_unit_test(gradient_moves_once_per_round_of_samples),
        cmocka_unit_test(gradient_remeasures_the_baseline_with_the_limit_pinned),
        cmocka_unit_test(a_lowered_limit_revokes_nothing_and_admits_below_it),
        cmocka_unit_test(bad_input_gets_clear_statuses),
        cmocka_unit_test(latencies_of_any_size_keep_the_estimate_in_bounds),
        cmocka_unit_test(caller_memory_attaches_and_rejects_garbage),
        cmocka_unit_test(dead_holders_are_reclaimed_lazily_and_explicitly),
        cmocka_unit_test(reclaim_by_pid_fences_stale_releases),
        cmocka_unit_test(allocation_failure_is_reported_and_leaks_nothing),
        cmocka_unit_test(gradient_converges_to_capacity_and_recovers),
        cmocka_unit_test(aimd_converges_to_capacity_and_recovers),
        cmocka_unit_test(both_converge_with_samples_from_8_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
