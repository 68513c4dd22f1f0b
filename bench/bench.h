/*
 * The benchmark harness. Each case prints one line:
 *
 *   <name> ns_per_op=<best> threads=<n> [vs=<baseline> vs_ns_per_op=<its best>
 *          speedup=<x>] [key=value ...]
 *
 * ns_per_op is the best of several repeats (the least disturbed run on a
 * shared machine); with threads > 1 it is wall time divided by the total
 * operations of all threads, so it reads as aggregate throughput. A
 * comparison is always measured in the same run as the case it compares:
 * speedup = baseline ns / our ns.
 */
#ifndef RESIL_BENCH_H
#define RESIL_BENCH_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal/atomic.h"
#include "resil/clock.h"

/* Keeps the compiler from discarding a value or hoisting work out of loops. */
#define BENCH_KEEP(x) __asm__ __volatile__("" : : "g"(x) : "memory")

/* The machine's own limits, which benchmarks print beside their figures:
 * one uncontended atomic fetch_add, one read of the default clock. */
static resil__atomic_u64 bench_word __attribute__((unused));

static inline void bench_fetch_add(void *ctx, uint64_t n)
{
    (void)ctx;
    for (uint64_t i = 0; i < n; i++)
        resil__a64_fetch_add_relaxed(&bench_word, 1);
}

static inline void bench_clock_read(void *ctx, uint64_t n)
{
    (void)ctx;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_clock_now(NULL));
}

/* A benchmark body: do `iters` operations on `ctx`. */
typedef void (*bench_fn)(void *ctx, uint64_t iters);

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline uint64_t bench_iters(uint64_t dflt)
{
    const char *s = getenv("RESIL_BENCH_SCALE"); /* e.g. 0.1 for a quick look */
    double scale = s != NULL ? atof(s) : 1.0;
    uint64_t n = (uint64_t)((double)dflt * (scale > 0 ? scale : 1.0));
    return n > 0 ? n : 1;
}

/* Best ns per operation over `repeats` runs of `iters` operations. */
static inline double bench_single(bench_fn fn, void *ctx, uint64_t iters, int repeats)
{
    fn(ctx, iters / 10 + 1); /* warm caches and branch predictors */
    double best = 1e300;
    for (int r = 0; r < repeats; r++) {
        double t0 = bench_now_ns();
        fn(ctx, iters);
        double dt = (bench_now_ns() - t0) / (double)iters;
        best = dt < best ? dt : best;
    }
    return best;
}

struct bench_thread_arg {
    bench_fn fn;
    void *ctx;
    uint64_t iters;
    pthread_barrier_t *start;
    double t0, t1;
};

static inline void *bench_thread_main(void *p)
{
    struct bench_thread_arg *a = p;
    pthread_barrier_wait(a->start);
    a->t0 = bench_now_ns();
    a->fn(a->ctx, a->iters);
    a->t1 = bench_now_ns();
    return NULL;
}

/* Best aggregate ns per operation with `threads` threads (at most 64) each
 * doing `iters` operations on the same `ctx`, started together by a
 * barrier. The threads time themselves, from the first one's start to the
 * last one's end, so the figure also holds at real-time priority (`chrt -f
 * 10`, the way to make both threads really run at once on a machine busy
 * with other work), where a clock in the main thread would start late. */
static inline double bench_threads(bench_fn fn, void *ctx, int threads, uint64_t iters, int repeats)
{
    if (threads <= 1)
        return bench_single(fn, ctx, iters, repeats);
    if (threads > 64)
        threads = 64;
    double best = 1e300;
    for (int r = 0; r < repeats; r++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        pthread_t t[64];
        struct bench_thread_arg arg[64];
        for (int i = 0; i < threads; i++) {
            arg[i] = (struct bench_thread_arg){fn, ctx, iters, &start, 0, 0};
            pthread_create(&t[i], NULL, bench_thread_main, &arg[i]);
        }
        double t0 = 1e300, t1 = 0;
        for (int i = 0; i < threads; i++) {
            pthread_join(t[i], NULL);
            t0 = arg[i].t0 < t0 ? arg[i].t0 : t0;
            t1 = arg[i].t1 > t1 ? arg[i].t1 : t1;
        }
        pthread_barrier_destroy(&start);
        double dt = (t1 - t0) / (double)(iters * (uint64_t)threads);
        best = dt < best ? dt : best;
    }
    return best;
}

/* Prints one result line; `extra` is printf-style "key=value ..." or NULL. */
static inline void bench_report(const char *name, double ns, int threads, const char *vs,
                                double vs_ns, const char *extra, ...)
{
    printf("%s ns_per_op=%.2f threads=%d", name, ns, threads);
    if (vs != NULL)
        printf(" vs=%s vs_ns_per_op=%.2f speedup=%.2f", vs, vs_ns, vs_ns / ns);
    if (extra != NULL) {
        va_list ap;
        va_start(ap, extra);
        putchar(' ');
        vprintf(extra, ap);
        va_end(ap);
    }
    putchar('\n');
    fflush(stdout);
}

#endif /* RESIL_BENCH_H */
