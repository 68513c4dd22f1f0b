/*
 * Adaptive limiter acquire + release with a latency sample (the caller
 * passes the latency it measured: no clock read inside), for both
 * algorithms, beside one fetch_add and one clock read from the same run.
 * A caller measuring latency itself adds two clock reads per call.
 *
 * Cases: the default config (AIMD stays at 20 with one call in flight, not
 * in use; GRADIENT grows to max_limit 1000 and re-measures its baseline
 * every 5000 samples); AIMD with half the limit held by others, so every
 * batch counts the held permits and grows the limit; and 2 threads on one
 * limiter (aggregate ns per call; scaling = 1-thread ns / 2-thread ns).
 */
#include "bench.h"
#include "internal/atomic.h"
#include "resil/limiter.h"

static void cycle(void *ctx, uint64_t n)
{
    resil_limiter_permit_t p;
    for (uint64_t i = 0; i < n; i++) {
        if (resil_limiter_try_acquire(ctx, &p) == RESIL_OK)
            resil_limiter_release(ctx, &p, RESIL_MS(10) + (i & 1023), 0);
    }
}

static void cycle_clocked(void *ctx, uint64_t n)
{
    resil_limiter_permit_t p;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t0 = resil_clock_now(NULL);
        if (resil_limiter_try_acquire(ctx, &p) == RESIL_OK)
            resil_limiter_release(ctx, &p, resil_clock_now(NULL) - t0, 0);
    }
}

int main(void)
{
    uint64_t iters = bench_iters(10000000);
    double fa = bench_single(bench_fetch_add, NULL, iters, 5);
    bench_report("limiter.baseline.fetch_add", fa, 1, NULL, 0, NULL);
    double ck = bench_single(bench_clock_read, NULL, iters, 5);
    bench_report("limiter.baseline.clock_monotonic", ck, 1, NULL, 0, NULL);
    const char *names[] = {"aimd", "gradient"};
    for (int a = 0; a < 2; a++) {
        resil_limiter_config_t c = resil_limiter_config_default();
        c.algorithm = (resil_limiter_algorithm)a;
        resil_limiter_t *l;
        if (resil_limiter_new(&c, NULL, &l) != RESIL_OK)
            return 1;
        char name[64];
        snprintf(name, sizeof name, "limiter.%s.acquire_release_sample", names[a]);
        double one = bench_single(cycle, l, iters, 5);
        resil_limiter_stats_t s;
        resil_limiter_stats(l, &s);
        bench_report(name, one, 1, NULL, 0, "fetch_adds=%.2f limit=%u", one / fa, s.limit);
        snprintf(name, sizeof name, "limiter.%s.acquire_release_2_clock_reads", names[a]);
        double clocked = bench_single(cycle_clocked, l, iters, 5);
        bench_report(name, clocked, 1, NULL, 0, "minus_2_clocks=%.2f", clocked - 2 * ck);
        snprintf(name, sizeof name, "limiter.%s.acquire_release_sample", names[a]);
        resil_limiter_stats(l, &s);
        uint64_t g0 = s.granted, r0 = s.rejected;
        double two = bench_threads(cycle, l, 2, iters / 2, 5);
        resil_limiter_stats(l, &s);
        /* a rejection is cheaper than a grant: the share tells the case */
        bench_report(name, two, 2, NULL, 0, "scaling_vs_1_thread=%.2f rejected_pct=%.1f limit=%u",
                     one / two,
                     100.0 * (double)(s.rejected - r0) /
                         (double)(s.granted - g0 + s.rejected - r0 + (s.granted == g0)),
                     s.limit);
        resil_limiter_free(l);
    }
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = RESIL_LIMITER_AIMD;
    c.initial_limit = 40;
    resil_limiter_t *l;
    if (resil_limiter_new(&c, NULL, &l) != RESIL_OK)
        return 1;
    resil_limiter_permit_t held[20];
    for (int i = 0; i < 20; i++)
        resil_limiter_try_acquire(l, &held[i]);
    double in_use = bench_single(cycle, l, iters, 5);
    resil_limiter_stats_t s;
    resil_limiter_stats(l, &s);
    bench_report("limiter.aimd.acquire_release_sample_in_use", in_use, 1, NULL, 0,
                 "fetch_adds=%.2f held=20 limit=%u", in_use / fa, s.limit);
    for (int i = 0; i < 20; i++)
        resil_limiter_release_ignored(l, &held[i]);
    resil_limiter_free(l);
    return 0;
}
