/*
 * Circuit breaker costs beside a baseline measured in the same run: a
 * straightforward mutex-protected breaker with the same window (what a
 * competent C programmer writes in an afternoon; gobreaker has this shape:
 * lock to admit, lock to record). Also prints the machine's own limits
 * (fetch_add, clock reads) so each figure reads as a ratio to them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "internal/atomic.h"
#include "resil/breaker.h"

/* ---------------------------------------------------------------- baseline */

typedef struct mutex_breaker {
    pthread_mutex_t lock;
    int open;
    uint64_t open_until;
    /* count window */
    unsigned char ring[100];
    uint32_t head, filled, failures;
    /* time window: 10 buckets */
    uint64_t bucket_ns, epoch[10], calls[10], fails[10];
} mutex_breaker;

static void mb_init(mutex_breaker *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->bucket_ns = RESIL_SEC(1);
}

static int mb_acquire(mutex_breaker *m, uint64_t now)
{
    pthread_mutex_lock(&m->lock);
    int ok = !m->open || now >= m->open_until;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static void mb_record_count(mutex_breaker *m, int failed)
{
    pthread_mutex_lock(&m->lock);
    if (m->filled == 100)
        m->failures -= m->ring[m->head];
    else
        m->filled++;
    m->ring[m->head] = (unsigned char)failed;
    m->failures += (uint32_t)failed;
    m->head = m->head + 1 == 100 ? 0 : m->head + 1;
    if (failed && m->filled >= 100 && m->failures * 2 >= m->filled)
        m->open = 1;
    pthread_mutex_unlock(&m->lock);
}

static void mb_record_time(mutex_breaker *m, int failed, uint64_t now)
{
    pthread_mutex_lock(&m->lock);
    uint64_t e = now / m->bucket_ns;
    unsigned i = (unsigned)(e % 10);
    if (m->epoch[i] != e) {
        m->epoch[i] = e;
        m->calls[i] = m->fails[i] = 0;
    }
    m->calls[i]++;
    m->fails[i] += (uint64_t)failed;
    if (failed) {
        uint64_t c = 0, f = 0;
        for (int j = 0; j < 10; j++)
            if (e - m->epoch[j] < 10)
                c += m->calls[j], f += m->fails[j];
        if (c >= 100 && f * 2 >= c)
            m->open = 1;
    }
    pthread_mutex_unlock(&m->lock);
}

static uint64_t mono(void);
static uint64_t mono_now(void *ctx)
{
    (void)ctx;
    return mono();
}

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- cases */

static void mutex_count(void *ctx, uint64_t n)
{
    mutex_breaker *m = ctx;
    for (uint64_t i = 0; i < n; i++)
        if (mb_acquire(m, 0))
            mb_record_count(m, 0);
}

static void mutex_time(void *ctx, uint64_t n)
{
    mutex_breaker *m = ctx;
    for (uint64_t i = 0; i < n; i++)
        if (mb_acquire(m, 0))
            mb_record_time(m, 0, mono());
}

static void resil_count(void *ctx, uint64_t n)
{
    resil_breaker_t *b = ctx;
    resil_breaker_permit_t p;
    for (uint64_t i = 0; i < n; i++)
        if (resil_breaker_acquire(b, &p) == RESIL_OK)
            resil_breaker_record(b, &p, RESIL_OUTCOME_SUCCESS, 1000);
}

/* Event-loop style: the caller hands in its cached time. */
static void resil_count_at(void *ctx, uint64_t n)
{
    resil_breaker_t *b = ctx;
    resil_breaker_permit_t p;
    uint64_t now = RESIL_SEC(1000);
    for (uint64_t i = 0; i < n; i++, now += 64)
        if (resil_breaker_acquire_at(b, now, &p) == RESIL_OK)
            resil_breaker_record_at(b, &p, RESIL_OUTCOME_SUCCESS, 1000, now);
}

static void resil_reject(void *ctx, uint64_t n)
{
    resil_breaker_t *b = ctx;
    resil_breaker_permit_t p;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(resil_breaker_acquire(b, &p));
}

static void mutex_reject(void *ctx, uint64_t n)
{
    mutex_breaker *m = ctx;
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(mb_acquire(m, mono()));
}

static resil_breaker_t *make(resil_window_kind kind)
{
    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_kind = kind;
    c.window_duration_ns = RESIL_SEC(10);
    c.window_buckets = 10;
    resil_breaker_t *b = NULL;
    if (resil_breaker_new(&c, NULL, &b) != RESIL_OK)
        abort();
    return b;
}

static void *nothing(void *arg) { return arg; }

int main(void)
{
    const int R = 7;
    uint64_t n0 = bench_iters(10000000);
    {
        /* glibc skips the atomics in pthread_mutex_lock while a process has
         * never started a thread; services are multi-threaded, so measure
         * the baseline as one -- but print this figure too. */
        mutex_breaker *m0 = malloc(sizeof *m0);
        mb_init(m0);
        double st = bench_single(mutex_count, m0, n0, R);
        printf(
            "breaker.baseline.mutex_breaker_in_never_threaded_process ns_per_op=%.2f threads=1\n",
            st);
        free(m0);
        pthread_t t;
        pthread_create(&t, NULL, nothing, NULL);
        pthread_join(t, NULL);
    }
    uint64_t n = bench_iters(10000000);

    double fa = bench_single(bench_fetch_add, NULL, n, R);
    double clk = bench_single(bench_clock_read, NULL, n / 4, R);
    bench_report("breaker.limits.fetch_add", fa, 1, NULL, 0, NULL);
    bench_report("breaker.limits.clock_monotonic", clk, 1, NULL, 0, NULL);

    /* closed, count window, caller-supplied duration: no clock read */
    mutex_breaker *mb = malloc(sizeof *mb);
    mb_init(mb);
    double base1 = bench_single(mutex_count, mb, n, R);
    resil_breaker_t *bc = make(RESIL_WINDOW_COUNT);
    double ours1 = bench_single(resil_count, bc, n, R);
    bench_report("breaker.closed.count.acquire_success", ours1, 1, "mutex_breaker", base1,
                 "x_fetch_add=%.2f", ours1 / fa);

    double base2 = bench_threads(mutex_count, mb, 2, n / 2, R);
    double ours2 = bench_threads(resil_count, bc, 2, n / 2, R);
    bench_report("breaker.closed.count.acquire_success", ours2, 2, "mutex_breaker", base2,
                 "vs_one_thread=%.2f", ours1 / ours2);

    /* closed, time window, default clock read on record */
    resil_breaker_t *bt = make(RESIL_WINDOW_TIME);
    double baset = bench_single(mutex_time, mb, n / 2, R);
    double ourst = bench_single(resil_count, bt, n / 2, R);
    bench_report("breaker.closed.time.acquire_success", ourst, 1, "mutex_breaker", baset,
                 "clock=default minus_clock=%.2f", ourst - clk);
    {
        resil_breaker_config_t c = resil_breaker_config_default();
        c.window_kind = RESIL_WINDOW_TIME;
        c.window_duration_ns = RESIL_SEC(10);
        resil_breaker_local_t precise = {resil_clock_monotonic(), NULL, NULL, 0};
        resil_breaker_t *bp = NULL;
        resil_clock_t mono_clock = {mono_now, NULL, NULL};
        precise.clock = mono_clock; /* an explicit precise clock: no coarse bucketing */
        if (resil_breaker_new(&c, &precise, &bp) != RESIL_OK)
            abort();
        double op = bench_single(resil_count, bp, n / 2, R);
        bench_report("breaker.closed.time.acquire_success", op, 1, "mutex_breaker", baset,
                     "clock=explicit_monotonic minus_clock=%.2f", op - clk);
        resil_breaker_free(bp);
    }
    resil_breaker_t *bt2 = make(RESIL_WINDOW_TIME);
    bench_report("breaker.closed.time.acquire_success_at", bench_single(resil_count_at, bt2, n, R),
                 1, NULL, 0, "note=caller_supplied_time");
    resil_breaker_free(bt2);
    double baset2 = bench_threads(mutex_time, mb, 2, n / 4, R);
    double ourst2 = bench_threads(resil_count, bt, 2, n / 4, R);
    bench_report("breaker.closed.time.acquire_success", ourst2, 2, "mutex_breaker", baset2,
                 "vs_one_thread=%.2f", ourst / ourst2);

    /* open: rejection (reads the clock to compare with the deadline) */
    resil_breaker_force_open(bc);
    resil_breaker_reset(bc);
    resil_breaker_open_until(bc, resil_clock_now(NULL) + RESIL_SEC(3600));
    mb->open = 1;
    mb->open_until = UINT64_MAX;
    double baser = bench_single(mutex_reject, mb, n / 2, R);
    double oursr = bench_single(resil_reject, bc, n / 2, R);
    bench_report("breaker.open.reject", oursr, 1, "mutex_breaker", baser,
                 "clock=default minus_clock=%.2f", oursr - clk);
    {
        resil_breaker_config_t c = resil_breaker_config_default();
        resil_breaker_local_t precise = {{mono_now, NULL, NULL}, NULL, NULL, 0};
        resil_breaker_t *bp = NULL;
        if (resil_breaker_new(&c, &precise, &bp) != RESIL_OK)
            abort();
        resil_breaker_open_until(bp, mono() + RESIL_SEC(3600));
        double op = bench_single(resil_reject, bp, n / 2, R);
        bench_report("breaker.open.reject", op, 1, "mutex_breaker", baser,
                     "clock=explicit_monotonic minus_clock=%.2f", op - clk);
        resil_breaker_free(bp);
    }

    resil_breaker_config_t c = resil_breaker_config_default();
    size_t count_bytes = resil_breaker_size(&c);
    c.stripes = 1;
    size_t count_bytes_1 = resil_breaker_size(&c);
    c = resil_breaker_config_default();
    c.window_kind = RESIL_WINDOW_TIME;
    size_t time_bytes = resil_breaker_size(&c);
    c.stripes = 1;
    size_t time_bytes_1 = resil_breaker_size(&c);
    printf("breaker.state_bytes count_window=100 stripes=4 bytes=%zu stripes=1 bytes=%zu\n",
           count_bytes, count_bytes_1);
    printf("breaker.state_bytes time_window_buckets=10 stripes=4 bytes=%zu stripes=1 bytes=%zu\n",
           time_bytes, time_bytes_1);
    resil_breaker_free(bc);
    resil_breaker_free(bt);
    free(mb);
    return 0;
}
