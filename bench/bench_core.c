/*
 * The machine's own limits, printed so every other figure can be read as a
 * ratio to them: one uncontended atomic fetch_add, one read of each clock,
 * one mutex lock + unlock, and the random generators.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"
#include "internal/atomic.h"
#include "resil/resil.h"

static void raw_clock(clockid_t id, uint64_t n)
{
    struct timespec ts;
    for (uint64_t i = 0; i < n; i++) {
        clock_gettime(id, &ts);
        BENCH_KEEP(ts.tv_nsec);
    }
}

static void clock_monotonic(void *ctx, uint64_t n) { (void)ctx, raw_clock(CLOCK_MONOTONIC, n); }
static void clock_coarse(void *ctx, uint64_t n) { (void)ctx, raw_clock(CLOCK_MONOTONIC_COARSE, n); }

static void resil_clock(void *ctx, uint64_t n)
{
    const resil_clock_t *c = ctx;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_clock_now(c));
}

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

static void mutex_lock_unlock(void *ctx, uint64_t n)
{
    (void)ctx;
    for (uint64_t i = 0; i < n; i++) {
        pthread_mutex_lock(&mutex);
        BENCH_KEEP(i);
        pthread_mutex_unlock(&mutex);
    }
}

static void rng_next(void *ctx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_rng_next(ctx));
}

static void libc_rand(void *ctx, uint64_t n)
{
    (void)ctx;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(rand());
}

static void thread_random(void *ctx, uint64_t n)
{
    (void)ctx;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_random_u64());
}

int main(void)
{
    const int R = 7;
    uint64_t n = bench_iters(20000000);
    bench_report("core.atomic_fetch_add", bench_single(bench_fetch_add, NULL, n, R), 1, NULL, 0,
                 NULL);
    bench_report("core.atomic_fetch_add", bench_threads(bench_fetch_add, NULL, 2, n / 2, R), 2,
                 NULL, 0, "note=contended_one_word");

    uint64_t nc = bench_iters(5000000);
    double mono = bench_single(clock_monotonic, NULL, nc, R);
    bench_report("core.clock_gettime_monotonic", mono, 1, NULL, 0, NULL);
    bench_report("core.clock_gettime_monotonic_coarse", bench_single(clock_coarse, NULL, nc, R), 1,
                 NULL, 0, NULL);
    resil_clock_t c_mono = resil_clock_monotonic(), c_coarse = resil_clock_coarse();
    bench_report("core.resil_clock_now.monotonic", bench_single(resil_clock, &c_mono, nc, R), 1,
                 "clock_gettime_monotonic", mono, NULL);
    bench_report("core.resil_clock_now.coarse", bench_single(resil_clock, &c_coarse, nc, R), 1,
                 NULL, 0, NULL);
    resil_manual_clock_t *m = NULL;
    if (resil_manual_clock_new(0, &m) == RESIL_OK) {
        resil_clock_t c_manual = resil_manual_clock_as_clock(m);
        bench_report("core.resil_clock_now.manual", bench_single(resil_clock, &c_manual, nc, R), 1,
                     NULL, 0, NULL);
        resil_manual_clock_free(m);
    }

    bench_report("core.mutex_lock_unlock", bench_single(mutex_lock_unlock, NULL, n, R), 1, NULL, 0,
                 NULL);
    bench_report("core.mutex_lock_unlock", bench_threads(mutex_lock_unlock, NULL, 2, n / 4, R), 2,
                 NULL, 0, "note=contended");

    resil_rng_t rng;
    resil_rng_seed(&rng, 1);
    double rand_ns = bench_single(libc_rand, NULL, n, R);
    bench_report("core.rng_next", bench_single(rng_next, &rng, n, R), 1, "libc_rand", rand_ns,
                 NULL);
    bench_report("core.random_u64_thread", bench_single(thread_random, NULL, n, R), 1, "libc_rand",
                 rand_ns, NULL);
    return 0;
}
