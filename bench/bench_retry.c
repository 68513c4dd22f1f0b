/*
 * Retry costs beside baselines measured in the same run:
 *
 *   - next_delay with full jitter vs the naive version most code has
 *     (rand() for the jitter, pow() for the growth; pow is looked up in
 *     libm with dlsym because benchmarks do not link libm, which costs the
 *     naive version one indirect call, the same as a PLT call);
 *   - the one-call executor with a callback that succeeds at once vs calling
 *     the callback directly (both through a function pointer);
 *   - a budget decision (record a failure + grant a retry, then record the
 *     success) vs one uncontended fetch_add, and the same with 2 threads
 *     (timed by the threads: see bench_threads in bench.h);
 *     the ratio budget with its largest window (64 buckets), whose cost
 *     should not depend on the bucket count; also the healthy path (a
 *     success on a full bucket).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal/atomic.h"
#include "resil/retry.h"

/* ---------------------------------------------------------------- next_delay */

typedef struct {
    resil_retry_policy_t p;
    resil_retry_state_t st;
    double (*pow_fn)(double, double);
} delay_ctx;

static void bench_next_delay(void *c, uint64_t iters)
{
    delay_ctx *x = c;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < iters; i++) {
        uint64_t d;
        if (resil_retry_next_delay_at(&x->st, 0, RESIL_RETRY_FAILURE, NULL, &d) != RESIL_RETRY_GO)
            resil_retry_state_init_at(&x->st, &x->p, 0);
        sum += d;
    }
    BENCH_KEEP(sum);
}

/* The naive version: attempt counter, pow() for the growth, rand() for the
 * jitter, min() for the cap. */
static void bench_naive_delay(void *c, uint64_t iters)
{
    delay_ctx *x = c;
    uint64_t sum = 0;
    unsigned attempt = 0;
    for (uint64_t i = 0; i < iters; i++) {
        double d = (double)x->p.initial_delay_ns * x->pow_fn(x->p.multiplier, attempt);
        if (d > (double)x->p.max_delay_ns)
            d = (double)x->p.max_delay_ns;
        uint64_t delay = (uint64_t)(d * ((double)rand() / ((double)RAND_MAX + 1.0)));
        attempt = attempt + 1 == x->p.max_attempts ? 0 : attempt + 1;
        sum += delay;
    }
    BENCH_KEEP(sum);
}

/* ---------------------------------------------------------------- executor */

static int __attribute__((noinline)) succeed(void *ctx, uint32_t attempt, resil_retry_hint_t *h)
{
    (void)h;
    BENCH_KEEP(ctx);
    return (int)(attempt - 1);
}

typedef struct {
    resil_retry_policy_t p;
    resil_retry_call_fn fn;
} exec_ctx;

static void bench_direct(void *c, uint64_t iters)
{
    exec_ctx *x = c;
    resil_retry_call_fn volatile fn = x->fn;
    int sum = 0;
    for (uint64_t i = 0; i < iters; i++) {
        resil_retry_hint_t h = {RESIL_RETRY_HINT_NONE, 0};
        sum += fn(x, 1, &h);
    }
    BENCH_KEEP(sum);
}

static void bench_execute(void *c, uint64_t iters)
{
    exec_ctx *x = c;
    resil_retry_call_fn volatile fn = x->fn;
    int sum = 0;
    for (uint64_t i = 0; i < iters; i++)
        sum += (int)resil_retry_execute(&x->p, fn, NULL, x, NULL);
    BENCH_KEEP(sum);
}

/* ---------------------------------------------------------------- budgets */

static void bench_budget_cycle(void *c, uint64_t iters)
{
    resil_retry_budget_t *b = c;
    for (uint64_t i = 0; i < iters; i++) {
        uint32_t cost;
        resil_status s = resil_retry_budget_on_failure(b, 0, 0, 1, &cost);
        resil_retry_budget_on_success(b, 0, cost);
        BENCH_KEEP(s);
    }
}

static void bench_budget_ratio_cycle(void *c, uint64_t iters)
{
    resil_retry_budget_t *b = c;
    uint64_t now = RESIL_SEC(1000000); /* a monotonic clock about 11 days after boot */
    for (uint64_t i = 0; i < iters; i++, now += 100) {
        resil_retry_budget_on_request(b, now);
        resil_status s = resil_retry_budget_on_failure(b, now, 0, 1, NULL);
        BENCH_KEEP(s);
    }
}

static void bench_budget_healthy(void *c, uint64_t iters)
{
    resil_retry_budget_t *b = c;
    for (uint64_t i = 0; i < iters; i++)
        resil_retry_budget_on_success(b, 0, 0);
}

int main(void)
{
    const uint64_t n = bench_iters(20000000);
    const int reps = 5;

    /* next_delay: exponential 1 ms x2 capped at 10 s, full jitter */
    delay_ctx dc;
    memset(&dc, 0, sizeof dc);
    dc.p = resil_retry_policy_default();
    dc.p.initial_delay_ns = RESIL_MS(1);
    dc.p.max_attempts = 20;
    dc.p.seed = 42;
    resil_retry_state_init_at(&dc.st, &dc.p, 0);
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    dc.pow_fn = libm != NULL ? (double (*)(double, double))dlsym(libm, "pow") : NULL;
    double ours = bench_single(bench_next_delay, &dc, n, reps);
    if (dc.pow_fn != NULL) {
        srand(42);
        double naive = bench_single(bench_naive_delay, &dc, n, reps);
        bench_report("retry_next_delay_full_jitter", ours, 1, "naive_rand_pow", naive, NULL);
    } else {
        bench_report("retry_next_delay_full_jitter", ours, 1, NULL, 0, "naive=unavailable");
    }
    /* a multiplier that is not a power of two takes the fixed-point path */
    dc.p.multiplier = 1.5;
    resil_retry_state_init_at(&dc.st, &dc.p, 0);
    double ours15 = bench_single(bench_next_delay, &dc, n, reps);
    if (dc.pow_fn != NULL) {
        double naive15 = bench_single(bench_naive_delay, &dc, n, reps);
        bench_report("retry_next_delay_full_jitter_x1.5", ours15, 1, "naive_rand_pow", naive15,
                     NULL);
    } else {
        bench_report("retry_next_delay_full_jitter_x1.5", ours15, 1, NULL, 0, "naive=unavailable");
    }
    dc.p.multiplier = 2.0;
    dc.p.jitter = RESIL_JITTER_DECORRELATED;
    resil_retry_state_init_at(&dc.st, &dc.p, 0);
    bench_report("retry_next_delay_decorrelated", bench_single(bench_next_delay, &dc, n, reps), 1,
                 NULL, 0, NULL);

    /* executor overhead */
    exec_ctx ec;
    ec.p = resil_retry_policy_default();
    ec.fn = succeed;
    double direct = bench_single(bench_direct, &ec, n, reps);
    double exec = bench_single(bench_execute, &ec, n, reps);
    bench_report("retry_execute_success", exec, 1, "direct_call", direct, "overhead_ns=%.2f",
                 exec - direct);

    /* budgets */
    double fa = bench_single(bench_fetch_add, NULL, n, reps);
    bench_report("fetch_add_uncontended", fa, 1, NULL, 0, NULL);
    const char *names[3] = {"token_bucket", "ratio", "quota"};
    for (int k = 0; k < 4; k++) { /* 3: the ratio kind with 64 buckets */
        resil_retry_budget_config_t bc = resil_retry_budget_config_default();
        bc.kind = (resil_retry_budget_kind)(k == 3 ? 1 : k);
        bc.max_tokens = 1000;
        bc.token_ratio_milli = 1000; /* failure -1, success +1: stays mid-range */
        bc.retry_percent = 1000;
        bc.min_retries_per_sec = 1000000;
        if (k == 3)
            bc.buckets = RESIL_RETRY_BUDGET_MAX_BUCKETS;
        resil_retry_budget_t *b;
        if (resil_retry_budget_new(&bc, &b) != RESIL_OK)
            return 1;
        char name[96];
        snprintf(name, sizeof name,
                 k == 3   ? "retry_budget_ratio_64_buckets_request_fail_retry"
                 : k == 1 ? "retry_budget_%s_request_fail_retry"
                          : "retry_budget_%s_fail_retry_success",
                 names[k % 3]);
        bench_fn cycle =
            bc.kind == RESIL_RETRY_BUDGET_RATIO ? bench_budget_ratio_cycle : bench_budget_cycle;
        double one = bench_single(cycle, b, n / 4, reps);
        bench_report(name, one, 1, "fetch_add", fa, "x_fetch_add=%.2f", one / fa);
        if (k < 3) {
            double two = bench_threads(cycle, b, 2, n / 8, reps);
            bench_report(name, two, 2, "1_thread", one, NULL);
        }
        resil_retry_budget_free(b);
    }
    {
        resil_retry_budget_config_t bc = resil_retry_budget_config_default();
        resil_retry_budget_t *b;
        if (resil_retry_budget_new(&bc, &b) != RESIL_OK)
            return 1;
        double one = bench_single(bench_budget_healthy, b, n, reps);
        bench_report("retry_budget_token_bucket_success_full", one, 1, "fetch_add", fa,
                     "x_fetch_add=%.2f", one / fa);
        double two = bench_threads(bench_budget_healthy, b, 2, n / 2, reps);
        bench_report("retry_budget_token_bucket_success_full", two, 2, "1_thread", one, NULL);
        resil_retry_budget_free(b);
    }
    if (libm != NULL)
        dlclose(libm);
    return 0;
}
