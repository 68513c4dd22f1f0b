/*
 * Bulkhead try_acquire + release (crash-safe holder tracking always on),
 * beside the machine's own baselines measured in the same run: one
 * uncontended fetch_add, one clock read, and POSIX sem_trywait + sem_post.
 */
#include <semaphore.h>
#include <time.h>

#include "bench.h"
#include "internal/atomic.h"
#include "resil/bulkhead.h"

static void posix_sem(void *ctx, uint64_t n)
{
    sem_t *s = ctx;
    for (uint64_t i = 0; i < n; i++) {
        if (sem_trywait(s) == 0)
            sem_post(s);
    }
}

/* The floor of any permit that records its holder: take and clear a cell
 * with two CAS instructions, nothing else. */
static void two_cas(void *ctx, uint64_t n)
{
    resil__atomic_u64 *w = ctx;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = resil__a64_load_relaxed(w);
        if (resil__a64_cas_acq_rel(w, &v, v | 0x101)) {
            v |= 0x101;
            resil__a64_cas_acq_rel(w, &v, v & ~UINT64_C(0xFFFF));
        }
    }
}

static void bulkhead(void *ctx, uint64_t n)
{
    resil_bulkhead_t *b = ctx;
    resil_bulkhead_permit_t p;
    for (uint64_t i = 0; i < n; i++) {
        if (resil_bulkhead_try_acquire(b, &p) == RESIL_OK)
            resil_bulkhead_release(b, &p);
    }
}

static void bulkhead_full(void *ctx, uint64_t n)
{
    resil_bulkhead_t *b = ctx;
    resil_bulkhead_permit_t p;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_bulkhead_try_acquire(b, &p));
}

int main(void)
{
    uint64_t iters = bench_iters(20000000);
    double fa = bench_single(bench_fetch_add, NULL, iters, 5);
    bench_report("bulkhead.baseline.fetch_add", fa, 1, NULL, 0, NULL);
    double ck = bench_single(bench_clock_read, NULL, iters / 4, 5);
    bench_report("bulkhead.baseline.clock_monotonic", ck, 1, NULL, 0, NULL);

    sem_t sem;
    sem_init(&sem, 1, 64);
    double ps1 = bench_single(posix_sem, &sem, iters, 5);
    bench_report("bulkhead.baseline.sem_trywait_post", ps1, 1, NULL, 0, NULL);
    double ps2 = bench_threads(posix_sem, &sem, 2, iters / 2, 5);
    bench_report("bulkhead.baseline.sem_trywait_post", ps2, 2, NULL, 0, NULL);

    resil__atomic_u64 word;
    resil__a64_store_relaxed(&word, 0);
    double floor = bench_single(two_cas, &word, iters, 5);
    bench_report("bulkhead.baseline.two_cas_floor", floor, 1, "sem_trywait_post", ps1,
                 "fetch_adds=%.2f", floor / fa);

    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 64;
    resil_bulkhead_t *b;
    if (resil_bulkhead_new(&c, NULL, &b) != RESIL_OK)
        return 1;
    double one = bench_single(bulkhead, b, iters, 5);
    bench_report("bulkhead.try_acquire_release", one, 1, "sem_trywait_post", ps1,
                 "fetch_adds=%.2f x_two_cas_floor=%.2f limit=64", one / fa, one / floor);
    double two = bench_threads(bulkhead, b, 2, iters / 2, 5);
    bench_report("bulkhead.try_acquire_release", two, 2, "sem_trywait_post", ps2,
                 "scaling_vs_1_thread=%.2f", one / two);

    resil_bulkhead_permit_t hold[64];
    for (int i = 0; i < 64; i++)
        resil_bulkhead_try_acquire(b, &hold[i]);
    double full = bench_single(bulkhead_full, b, iters / 4, 5);
    bench_report("bulkhead.try_acquire_rejected", full, 1, NULL, 0, "limit=64 (scans 16 words)");
    for (int i = 0; i < 64; i++)
        resil_bulkhead_release(b, &hold[i]);
    resil_bulkhead_free(b);
    sem_destroy(&sem);
    return 0;
}
