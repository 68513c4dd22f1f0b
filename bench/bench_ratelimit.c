/*
 * GCRA decision cost (one CAS on the TAT word + a striped counter), with
 * and without the clock read, beside one clock read measured in the same
 * run. Admitted and rejected decisions cost the same: both are one CAS or
 * one load.
 */
#include "bench.h"
#include "internal/atomic.h"
#include "resil/ratelimit.h"

static void decide_now(void *ctx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_ratelimit_try_acquire(ctx, 1, NULL));
}

static uint64_t fake_now = 1;

static void decide_at(void *ctx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        fake_now += 10;
        BENCH_KEEP(resil_ratelimit_try_acquire_at(ctx, 1, fake_now, NULL));
    }
}

static void keyed_at(void *ctx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)(i & 255);
        fake_now += 10;
        BENCH_KEEP(resil_ratelimit_set_try_acquire_at(ctx, &key, sizeof key, 1, fake_now, NULL));
    }
}

int main(void)
{
    uint64_t iters = bench_iters(10000000);
    double ck = bench_single(bench_clock_read, NULL, iters, 5);
    bench_report("ratelimit.baseline.clock_monotonic", ck, 1, NULL, 0, NULL);

    resil_ratelimit_config_t c = {50000000, RESIL_SEC(1), 100}; /* T = 20 ns: about half admitted */
    resil_ratelimit_t *r;
    if (resil_ratelimit_new(&c, NULL, &r) != RESIL_OK)
        return 1;
    double at = bench_single(decide_at, r, iters, 5);
    bench_report("ratelimit.try_acquire_at", at, 1, NULL, 0, "no clock read");
    double now = bench_single(decide_now, r, iters, 5);
    bench_report("ratelimit.try_acquire", now, 1, NULL, 0, "minus_clock=%.2f", now - ck);
    double two = bench_threads(decide_now, r, 2, iters / 2, 5);
    bench_report("ratelimit.try_acquire", two, 2, NULL, 0, "contended TAT word");
    resil_ratelimit_free(r);

    resil_ratelimit_set_config_t sc = resil_ratelimit_set_config_default();
    sc.rate = c;
    resil_ratelimit_set_t *s;
    if (resil_ratelimit_set_new(&sc, NULL, &s) != RESIL_OK)
        return 1;
    double keyed = bench_single(keyed_at, s, iters, 5);
    bench_report("ratelimit_set.try_acquire_at", keyed, 1, NULL, 0, "256 keys, 4-byte keys");
    resil_ratelimit_set_free(s);
    return 0;
}
