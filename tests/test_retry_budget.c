#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "internal/stripe.h"
#include "resil/retry.h"
#include "support.h"

/* Internal to src/retry_budget.c, for tests: grant the calling thread's
 * stripe a lease (what a failure that lost a CAS does); reclaim them all. */
void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now);
void resil__retry_budget_reclaim(resil_retry_budget_t *b);

enum { STRIPES = 4 };

/* The budget's words, at the offsets the layout comment in
 * src/retry_budget.c gives. */
static uint64_t word_at(const void *b, size_t off)
{
    return resil__a64_load_acquire((const resil__atomic_u64 *)((const char *)b + off));
}
static uint64_t leased(const void *b) { return (word_at(b, 128) >> 20) & 0xfffff; }

static resil_retry_budget_config_t bucket_cfg(uint32_t max, uint32_t ratio_milli)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    c.max_tokens = max;
    c.token_ratio_milli = ratio_milli;
    return c;
}

static resil_retry_budget_t *make(const resil_retry_budget_config_t *c)
{
    resil_retry_budget_t *b = NULL;
    assert_int_equal(resil_retry_budget_new(c, &b), RESIL_OK);
    assert_non_null(b);
    return b;
}

static uint64_t level(resil_retry_budget_t *b)
{
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, 0, &s), RESIL_OK);
    return s.level_milli;
}

static void token_bucket_follows_grpc_throttling_exactly(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = bucket_cfg(10, 100);
    resil_retry_budget_t *b = make(&c);
    assert_int_equal(level(b), 10000);
    /* failures take one token each; retries allowed while tokens > 5 */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(resil_retry_budget_can_retry(b, 0), 1);
        assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_OK);
    }
    assert_int_equal(level(b), 6000);
    assert_int_equal(resil_retry_budget_can_retry(b, 0), 0);
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    assert_int_equal(level(b), 5000);
    /* 0.1 per success: 10 successes give one token back */
    for (int i = 0; i < 10; i++)
        assert_int_equal(resil_retry_budget_on_success(b, 0, 0), RESIL_OK);
    assert_int_equal(level(b), 6000);
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    for (int i = 0; i < 11; i++)
        resil_retry_budget_on_success(b, 0, 0);
    assert_int_equal(level(b), 6100);
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_OK); /* 5.1 > 5 */
    /* never below 0 nor above max */
    for (int i = 0; i < 50; i++)
        resil_retry_budget_on_failure(b, 0, 0, 0, NULL);
    assert_int_equal(level(b), 0);
    for (int i = 0; i < 500; i++)
        resil_retry_budget_on_success(b, 0, 0);
    assert_int_equal(level(b), 10000);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, 0, &s), RESIL_OK);
    assert_int_equal(s.granted, 5);
    assert_int_equal(s.refused, 2);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    resil_retry_budget_free(b);
}

static void token_bucket_matches_a_model_over_a_scripted_workload(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = bucket_cfg(100, 250);
    resil_retry_budget_t *b = make(&c);
    uint64_t model = 100000, rng = 5;
    long granted = 0, refused = 0, violations = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t r = resil_splitmix64(&rng);
        /* failure rate drifts between 10 % and 90 % */
        uint64_t fail_pct = 10 + (uint64_t)(i / 5000 % 9) * 10;
        if (r % 100 < fail_pct) {
            model = model >= 1000 ? model - 1000 : 0;
            int allowed = model > 50000;
            resil_status st = resil_retry_budget_on_failure(b, 0, 0, 1, NULL);
            if ((st == RESIL_OK) != allowed)
                violations++;
            if (st == RESIL_OK) {
                granted++;
                if (level(b) <= 50000) /* the promise: never retry at or below half */
                    violations++;
            } else {
                refused++;
            }
        } else {
            model = model + 250 > 100000 ? 100000 : model + 250;
            resil_retry_budget_on_success(b, 0, 0);
        }
        if (level(b) != model)
            violations++;
    }
    assert_int_equal(violations, 0);
    assert_true(granted > 1000 && refused > 1000); /* both regimes were exercised */
    resil_retry_budget_free(b);
}

static void quota_follows_aws_standard_mode(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = RESIL_RETRY_BUDGET_QUOTA;
    resil_retry_budget_t *b = make(&c);
    assert_int_equal(level(b), 500000);
    uint32_t cost = 0;
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, &cost), RESIL_OK);
    assert_int_equal(cost, 5);
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 1, 1, &cost), RESIL_OK);
    assert_int_equal(cost, 10);
    assert_int_equal(level(b), 485000);
    /* a failure that will not be retried costs nothing */
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 1, 0, &cost), RESIL_OK);
    assert_int_equal(cost, 0);
    assert_int_equal(level(b), 485000);
    /* success of a retry refunds what it took; of a first attempt, +1 */
    assert_int_equal(resil_retry_budget_on_success(b, 0, 10), RESIL_OK);
    assert_int_equal(level(b), 495000);
    assert_int_equal(resil_retry_budget_on_success(b, 0, 0), RESIL_OK);
    assert_int_equal(level(b), 496000);
    for (int i = 0; i < 10; i++)
        resil_retry_budget_on_success(b, 0, 0);
    assert_int_equal(level(b), 500000); /* capped */
    /* 500 / 5 = 100 retries, then refused */
    int granted = 0;
    while (resil_retry_budget_on_failure(b, 0, 0, 1, &cost) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 100);
    assert_int_equal(cost, 0);
    assert_int_equal(level(b), 0);
    assert_int_equal(resil_retry_budget_can_retry(b, 0), 0);
    resil_retry_budget_free(b);
}

static resil_retry_budget_config_t ratio_cfg(uint32_t pct, uint32_t min_rps)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = RESIL_RETRY_BUDGET_RATIO;
    c.retry_percent = pct;
    c.min_retries_per_sec = min_rps;
    c.ttl_ns = RESIL_SEC(10);
    c.buckets = 10;
    return c;
}

/* Failures asking for a retry at time @p t until one is refused.
 * @return the retries granted. */
static int drain(resil_retry_budget_t *b, uint64_t t)
{
    int granted = 0;
    while (resil_retry_budget_on_failure(b, t, 0, 1, NULL) == RESIL_OK)
        granted++;
    return granted;
}

static void ratio_allows_percent_of_requests_plus_floor(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(20, 0);
    resil_retry_budget_t *b = make(&c);
    const uint64_t t = RESIL_SEC(1000);
    assert_int_equal(resil_retry_budget_on_failure(b, t, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    for (int i = 0; i < 100; i++)
        resil_retry_budget_on_request(b, t);
    assert_int_equal(drain(b, t), 20);
    resil_retry_budget_free(b);

    c = ratio_cfg(20, 2); /* floor: 2/s * 10 s = 20 retries */
    b = make(&c);
    assert_int_equal(drain(b, t), 20);
    for (int i = 0; i < 50; i++)
        resil_retry_budget_on_request(b, t);
    assert_int_equal(drain(b, t), 10); /* 20 + 50 * 20 % = 30 in all */
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, t, &s), RESIL_OK);
    assert_int_equal(s.window_requests, 50);
    assert_int_equal(s.window_retries, 30);
    /* the window slides: after ttl everything has expired */
    assert_int_equal(resil_retry_budget_stats(b, t + RESIL_SEC(10), &s), RESIL_OK);
    assert_int_equal(s.window_requests, 0);
    assert_int_equal(s.window_retries, 0);
    assert_int_equal(resil_retry_budget_can_retry(b, t + RESIL_SEC(10)), 1);
    resil_retry_budget_free(b);
}

/* The allowance is the sum rounded down once: 76 % of 1 request plus 3/s
 * over 1.5 s is 0.76 + 4.5 = 5.26, room for 5 retries (rounding each term
 * down first would give 0 + 4). */
static void ratio_allowance_rounds_the_sum_down_once(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(76, 3);
    c.ttl_ns = RESIL_MS(1500);
    c.buckets = 1;
    resil_retry_budget_t *b = make(&c);
    const uint64_t t = RESIL_SEC(100);
    assert_int_equal(resil_retry_budget_on_request(b, t), RESIL_OK);
    assert_int_equal(drain(b, t), 5);
    assert_int_equal(resil_retry_budget_can_retry(b, t), 0);
    resil_retry_budget_free(b);
    /* 24 % of 1 request + 4.5: 4.74, still 4 */
    c.retry_percent = 24;
    b = make(&c);
    assert_int_equal(resil_retry_budget_on_request(b, t), RESIL_OK);
    assert_int_equal(drain(b, t), 4);
    resil_retry_budget_free(b);
}

static void ratio_never_exceeds_its_promise_over_a_scripted_workload(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(10, 1);
    resil_retry_budget_t *b = make(&c);
    /* per 10 ms tick: 5 requests, each failing with a drifting probability
     * and asking for up to 2 retries; 60 simulated seconds. The promise
     * holds when each retry is granted: retries in the window, that one
     * included, <= 10 % of the requests in the window + 1/s * 10 s. (Later,
     * as old requests leave the window, earlier grants may exceed the new
     * allowance for a while; that is the nature of a sliding window.) */
    const uint64_t tick = RESIL_MS(10), slot = RESIL_SEC(1);
    uint64_t rng = 77;
    enum { SLOTS = 60 };
    uint64_t req[SLOTS] = {0}, ret[SLOTS] = {0};
    long violations = 0, granted = 0, refused = 0, tight = 0;
    for (uint64_t now = 0; now < SLOTS * slot; now += tick) {
        uint64_t e = now / slot;
        for (int k = 0; k < 5; k++) {
            resil_retry_budget_on_request(b, now);
            req[e]++;
            uint64_t fail_pct = e < 20 ? 5 : e < 40 ? 80 : 30;
            for (int a = 0; a < 2 && resil_splitmix64(&rng) % 100 < fail_pct; a++) {
                uint64_t rq = 0, rt = 0;
                for (uint64_t i = e >= 9 ? e - 9 : 0; i <= e; i++)
                    rq += req[i], rt += ret[i];
                int room = rt + 1 <= rq * 10 / 100 + 10;
                resil_status st = resil_retry_budget_on_failure(b, now, 0, 1, NULL);
                if ((st == RESIL_OK) != room)
                    violations++; /* granted without room, or refused with room */
                if (st != RESIL_OK) {
                    refused++;
                    break;
                }
                tight += rt + 1 == rq * 10 / 100 + 10;
                granted++;
                ret[e]++;
            }
        }
    }
    assert_int_equal(violations, 0);
    assert_true(granted > 1000 && refused > 1000); /* both regimes were exercised */
    assert_true(tight > 10);                       /* the bound was reached, not just approached */
    resil_retry_budget_free(b);
}

/* ---- leases: a script run on every stripe, one call at a time -------- */

/* A thread that runs calls for the test thread, so that a sequential script
 * can decide on each stripe's lease. */
typedef struct stripe_worker {
    pthread_t t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(void *);
    void *arg;
    int busy, quit, ready;
    uint32_t stripe;
} stripe_worker;

static void *worker_main(void *p)
{
    stripe_worker *w = p;
    pthread_mutex_lock(&w->mu);
    w->stripe = resil__stripe(STRIPES);
    w->ready = 1;
    pthread_cond_broadcast(&w->cv);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        w->fn(w->arg);
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void worker_run(stripe_worker *w, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&w->mu);
    w->fn = fn;
    w->arg = arg;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void worker_stop(stripe_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->t, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* Starts @p w's thread and waits until it knows its stripe. */
static void worker_launch(stripe_worker *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    assert_int_equal(pthread_create(&w->t, NULL, worker_main, w), 0);
    pthread_mutex_lock(&w->mu);
    while (!w->ready)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Starts threads until every stripe has one; pool[s] runs on stripe s.
 * Threads get stripes round-robin as they first ask, so a probe thread
 * tells which stripe the next thread gets; the resident one takes it. */
static void workers_start(stripe_worker *pool)
{
    for (int have = 0; have < STRIPES;) {
        stripe_worker probe;
        memset(&probe, 0, sizeof probe);
        worker_launch(&probe);
        worker_stop(&probe);
        stripe_worker *slot = &pool[(probe.stripe + 1) % STRIPES];
        if (!slot->ready) {
            worker_launch(slot);
            assert_true(slot == &pool[slot->stripe]);
            have++;
        }
    }
}

/* A pool of one thread per stripe (pool[s] on stripe s). */
static stripe_worker *pool_start(void)
{
    stripe_worker *pool = calloc(STRIPES, sizeof *pool);
    assert_non_null(pool);
    workers_start(pool);
    return pool;
}

static void pool_stop(stripe_worker *pool)
{
    for (int i = 0; i < STRIPES; i++)
        worker_stop(&pool[i]);
    free(pool);
}

typedef struct call {
    resil_retry_budget_t *b;
    int what; /* 0 failure asking for a retry, 1 success, 2 lease, 3 reclaim */
    int timeout;
    uint32_t cost;
    resil_status st;
} call;

static void call_run(void *p)
{
    call *c = p;
    switch (c->what) {
    case 0:
        c->st = resil_retry_budget_on_failure(c->b, 0, c->timeout, 1, &c->cost);
        break;
    case 1:
        c->st = resil_retry_budget_on_success(c->b, 0, c->cost);
        break;
    case 2:
        resil__retry_budget_lease(c->b, 0);
        break;
    default:
        resil__retry_budget_reclaim(c->b);
    }
}

/* A script of calls, one at a time, each on a chosen stripe, against an
 * integer model of T: every verdict, every level and the invariants after
 * every call must be the model's. Leases never change a decision. */
typedef struct script {
    resil_retry_budget_t *b;
    stripe_worker *pool;
    int bucket;
    uint64_t max, model, last_leased;
    long violations, granted, refused, with_leases, emptied;
} script;

static void script_start(script *sc, resil_retry_budget_kind kind)
{
    memset(sc, 0, sizeof *sc);
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = kind;
    c.max_tokens = 100;
    c.token_ratio_milli = 250; /* quota: capacity 500, costs 5 and 10, +1 */
    sc->b = make(&c);
    sc->pool = pool_start();
    sc->bucket = kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    sc->max = sc->model = sc->bucket ? 100000 : 500000;
}

/* Runs call @p what (0 failure asking for a retry, 1 success, 2 lease,
 * 3 reclaim) on stripe @p s; quota: @p timeout picks the cost, @p refund a
 * retry's refund (5) over a first attempt's (+1). @return the verdict. */
static int script_step(script *sc, uint32_t s, int what, int timeout, int refund)
{
    call k = {sc->b, what, timeout, sc->bucket || !refund ? 0 : 5, RESIL_OK};
    int allowed = 0;
    if (what == 0) {
        uint64_t cost = sc->bucket ? 1000 : (timeout ? 10000 : 5000); /* milli */
        if (sc->bucket) {
            sc->model = sc->model >= cost ? sc->model - cost : 0;
            allowed = sc->model > sc->max / 2;
        } else if (sc->model >= cost) {
            sc->model -= cost;
            allowed = 1;
        }
    } else if (what == 1) {
        uint64_t add = sc->bucket ? 250 : (refund ? 5000 : 1000);
        sc->model = sc->model + add > sc->max ? sc->max : sc->model + add;
    }
    sc->with_leases += leased(sc->b) != 0;
    worker_run(&sc->pool[s], call_run, &k);
    if (what == 0) {
        if ((k.st == RESIL_OK) != allowed)
            sc->violations++;
        sc->granted += k.st == RESIL_OK;
        sc->refused += k.st != RESIL_OK;
        if (!sc->bucket && k.cost != (allowed ? (timeout ? 10u : 5u) : 0u))
            sc->violations++;
    }
    if (level(sc->b) != sc->model && sc->violations++ == 0)
        print_message("call %d on stripe %u: level %llu, model %llu\n", what, (unsigned)s,
                      (unsigned long long)level(sc->b), (unsigned long long)sc->model);
    if (resil_retry_budget_check(sc->b) != RESIL_OK && sc->violations++ == 0)
        print_message("call %d on stripe %u: %s\n", what, (unsigned)s, resil_status_detail());
    sc->emptied += what < 2 && sc->last_leased != 0 && leased(sc->b) == 0; /* reclaimed */
    sc->last_leased = leased(sc->b);
    return k.st == RESIL_OK;
}

static void script_stop(script *sc)
{
    assert_int_equal(sc->violations, 0);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(sc->b, 0, &s), RESIL_OK);
    assert_int_equal(s.granted, (uint64_t)sc->granted);
    assert_int_equal(s.refused, (uint64_t)sc->refused);
    pool_stop(sc->pool);
    resil_retry_budget_free(sc->b);
}

/* Random calls on random stripes, leases granted often (as contention
 * would) and reclaimed sometimes, failure rates drifting across each kind's
 * thresholds: 5 % .. 40 % for the bucket (a failure -1, a success +0.25),
 * 10 % .. 90 % for the quota. */
static void leases_match_the_model(resil_retry_budget_kind kind)
{
    script sc;
    script_start(&sc, kind);
    uint64_t rng = 11;
    for (int i = 0; i < 20000; i++) {
        uint64_t r = resil_splitmix64(&rng);
        uint64_t fail_pct =
            sc.bucket ? 5 + (uint64_t)(i / 1000 % 8) * 5 : 10 + (uint64_t)(i / 1000 % 9) * 10;
        int what = r % 100 < 8 ? 2 : r % 1000 < 85 ? 3 : (r >> 8) % 100 < fail_pct ? 0 : 1;
        script_step(&sc, (uint32_t)(r >> 32) % STRIPES, what, (int)(r >> 20) & 1,
                    (int)(r >> 24) & 1);
    }
    print_message("%s: granted %ld, refused %ld, %ld calls with leases out, %ld reclaims by "
                  "decisions\n",
                  sc.bucket ? "token bucket" : "quota", sc.granted, sc.refused, sc.with_leases,
                  sc.emptied);
    assert_true(sc.granted > 1000 && sc.refused > 1000); /* both regimes were exercised */
    assert_true(sc.with_leases > 2500);                  /* and decided on leases */
    assert_true(sc.emptied > 10);                        /* thresholds reclaimed them */
    script_stop(&sc);
}

static void token_bucket_on_leases_matches_the_model_exactly(void **state)
{
    (void)state;
    leases_match_the_model(RESIL_RETRY_BUDGET_TOKEN_BUCKET);
}

static void quota_on_leases_matches_the_model_exactly(void **state)
{
    (void)state;
    leases_match_the_model(RESIL_RETRY_BUDGET_QUOTA);
}

/* Ratio leases, one call at a time on chosen stripes, against the exact
 * sliding-window model: a retry is granted iff the window's grants plus one
 * fit in p % of its requests plus the floor. Leases (taken whenever the
 * window has room, and by the test hook) hold retries charged to their
 * slot; a decision that finds no room takes them all back first, so no
 * verdict differs from the model's, whatever the stripes hold. */
typedef struct rcall {
    resil_retry_budget_t *b;
    int what; /* 0 request, 1 failure asking for a retry, 2 lease, 3 reclaim */
    uint64_t now;
    resil_status st;
} rcall;

static void rcall_run(void *p)
{
    rcall *c = p;
    c->st = RESIL_OK;
    if (c->what == 0)
        c->st = resil_retry_budget_on_request(c->b, c->now);
    else if (c->what == 1)
        c->st = resil_retry_budget_on_failure(c->b, c->now, 0, 1, NULL);
    else if (c->what == 2)
        resil__retry_budget_lease(c->b, c->now);
    else
        resil__retry_budget_reclaim(c->b);
}

/* Stripe @p i's ratio lease word (layout in src/retry_budget.c). */
static uint64_t lease_word(const resil_retry_budget_t *b, int i)
{
    uint64_t w;
    memcpy(&w, (const unsigned char *)b + 192 + 64 * i + 24, sizeof w);
    return w;
}

static void ratio_leases_on_every_stripe_match_the_window_model(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(20, 1); /* floor 10 in a 10 s window */
    resil_retry_budget_t *b = make(&c);
    stripe_worker *pool = pool_start();
    enum { SLOTS = 400 };
    uint64_t req[SLOTS] = {0}, ret[SLOTS] = {0};
    uint64_t rng = 5, now = 0;
    long violations = 0, granted = 0, refused = 0, leased_calls = 0, tight = 0;
    while (now / RESIL_SEC(1) < SLOTS) {
        uint64_t r = resil_splitmix64(&rng);
        uint64_t e = now / RESIL_SEC(1);
        /* failure share drifts 10 % .. 90 % every 20 s */
        uint64_t fail_pct = 10 + (e / 20 % 5) * 20;
        int what = r % 100 < 3 ? 2 : r % 1000 < 35 ? 3 : (r >> 8) % 100 < fail_pct ? 1 : 0;
        uint64_t rq = 0, rt = 0;
        for (uint64_t i = e >= 9 ? e - 9 : 0; i <= e; i++)
            rq += req[i], rt += ret[i];
        int room = rt + 1 <= rq * 20 / 100 + 10;
        rcall k = {b, what, now, RESIL_OK};
        worker_run(&pool[(r >> 32) % STRIPES], rcall_run, &k);
        if (what == 0)
            req[e]++;
        if (what == 1) {
            if ((k.st == RESIL_OK) != room && violations++ == 0)
                print_message("t=%llu ms: %s with %llu granted of %llu allowed\n",
                              (unsigned long long)(now / RESIL_MS(1)),
                              k.st == RESIL_OK ? "granted" : "refused", (unsigned long long)rt,
                              (unsigned long long)(rq * 20 / 100 + 10));
            if (k.st == RESIL_OK) {
                ret[e]++;
                granted++;
                tight += rt + 1 == rq * 20 / 100 + 10;
            } else {
                refused++;
            }
        }
        resil_retry_budget_stats_t s;
        assert_int_equal(resil_retry_budget_stats(b, now, &s), RESIL_OK);
        rt += what == 1 && k.st == RESIL_OK;
        rq += what == 0;
        if ((s.granted != (uint64_t)granted || s.refused != (uint64_t)refused ||
             s.window_requests != rq || s.window_retries != rt) &&
            violations++ == 0)
            print_message(
                "t=%llu ms: stats %llu/%llu, window %llu/%llu; model %ld/%ld, %llu/%llu\n",
                (unsigned long long)(now / RESIL_MS(1)), (unsigned long long)s.granted,
                (unsigned long long)s.refused, (unsigned long long)s.window_requests,
                (unsigned long long)s.window_retries, granted, refused, (unsigned long long)rq,
                (unsigned long long)rt);
        if (resil_retry_budget_check(b) != RESIL_OK && violations++ == 0)
            print_message("check: %s\n", resil_status_detail());
        for (int i = 0; i < STRIPES; i++)
            leased_calls += (lease_word(b, i) & 0xffff) != 0;
        now += (r >> 40) % RESIL_MS(40); /* about 50 calls a second */
    }
    print_message("ratio: granted %ld, refused %ld, %ld stripe-calls with a lease out, %ld "
                  "grants at the bound\n",
                  granted, refused, leased_calls, tight);
    assert_int_equal(violations, 0);
    assert_true(granted > 1000 && refused > 1000); /* both regimes were exercised */
    assert_true(leased_calls > 2000);              /* on leases */
    assert_true(tight > 50);                       /* up to the bound */
    pool_stop(pool);
    resil_retry_budget_free(b);
}

/* A decision that finds no room takes back the retries other stripes'
 * leases hold, and grants them: all the allowance is granted on one stripe
 * while two others sit on leases. */
static void ratio_decisions_without_room_take_leases_back(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(20, 0);
    resil_retry_budget_t *b = make(&c);
    stripe_worker *pool = pool_start();
    const uint64_t now = RESIL_SEC(50);
    rcall k = {b, 0, now, RESIL_OK};
    for (int i = 0; i < 1000; i++) /* allowance 200 */
        worker_run(&pool[0], rcall_run, &k);
    k.what = 2;
    worker_run(&pool[2], rcall_run, &k); /* 200 / 8 = 25 */
    worker_run(&pool[3], rcall_run, &k); /* 175 / 8 = 21 */
    assert_int_equal(lease_word(b, 2) & 0xffff, 25);
    assert_int_equal(lease_word(b, 3) & 0xffff, 21);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, now, &s), RESIL_OK);
    assert_int_equal(s.granted, 0);
    assert_int_equal(s.window_retries, 0);
    assert_int_equal(resil_retry_budget_can_retry(b, now), 1);
    long granted = 0;
    k.what = 1;
    for (worker_run(&pool[1], rcall_run, &k); k.st == RESIL_OK; worker_run(&pool[1], rcall_run, &k))
        granted++;
    assert_int_equal(k.st, RESIL_E_BUDGET_EXHAUSTED);
    assert_int_equal(granted, 200);
    assert_int_equal(lease_word(b, 2) & 0xffff, 0);
    assert_int_equal(lease_word(b, 3) & 0xffff, 0);
    assert_int_equal(resil_retry_budget_stats(b, now, &s), RESIL_OK);
    assert_int_equal(s.granted, 200);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.window_retries, 200);
    assert_int_equal(resil_retry_budget_can_retry(b, now), 0);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    pool_stop(pool);
    resil_retry_budget_free(b);
}

/* Each threshold with leases out: the level alone cannot settle the
 * decision, so it reclaims them and decides on the whole T. */
static void decisions_at_thresholds_reclaim_leases_first(void **state)
{
    (void)state;
    script sc;
    /* bucket near half: stripe 0 holds a lease it has nearly spent, stripe 1
     * has none and drains the level */
    script_start(&sc, RESIL_RETRY_BUDGET_TOKEN_BUCKET);
    script_step(&sc, 0, 2, 0, 0); /* lends (100 000 - 50 001) / 8 = 6 249 */
    assert_int_equal(leased(sc.b), 6249);
    for (int i = 0; i < 6; i++)
        assert_true(script_step(&sc, 0, 0, 0, 0)); /* 249 left on the lease */
    int granted = 0;
    while (script_step(&sc, 1, 0, 0, 0))
        granted++;
    assert_int_equal(granted, 94 - 50 - 1); /* tokens after: 93 .. 51 */
    assert_int_equal(leased(sc.b), 0);      /* the decision at half reclaimed */
    script_stop(&sc);

    /* bucket near full: stripe 0's room holds what a success on stripe 1
     * needs */
    script_start(&sc, RESIL_RETRY_BUDGET_TOKEN_BUCKET);
    script_step(&sc, 0, 2, 0, 0);
    script_step(&sc, 0, 0, 0, 0); /* room 1 000 on the lease, level space 0 */
    for (int i = 0; i < 5; i++)
        script_step(&sc, 1, 1, 0, 0); /* the first reclaims; 4 x 250 refill it */
    assert_int_equal(leased(sc.b), 0);
    assert_int_equal(level(sc.b), 100000);
    script_stop(&sc);

    /* quota near empty: the last retry's cost is split between a lease and
     * the level */
    script_start(&sc, RESIL_RETRY_BUDGET_QUOTA);
    script_step(&sc, 0, 2, 0, 0); /* lends 500 / 8 = 62 units */
    assert_int_equal(leased(sc.b), 62);
    for (int i = 0; i < 12; i++)
        assert_true(script_step(&sc, 0, 0, 0, 0)); /* 2 left on the lease */
    granted = 0;
    while (script_step(&sc, 1, 0, 0, 0))
        granted++;
    assert_int_equal(granted, 100 - 12); /* 500 / 5 in all */
    assert_int_equal(leased(sc.b), 0);
    script_stop(&sc);
}

/* check() sees a lease that does not add up, or a frozen one outside a
 * reclaim. */
static void check_verifies_lease_conservation(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(1)];
    resil_retry_budget_config_t c = bucket_cfg(100, 250);
    resil_retry_budget_t *b;
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    resil__retry_budget_lease(b, 0);
    size_t lease = 192 + 64 * (size_t)resil__stripe(STRIPES);
    uint64_t w = word_at(b, lease);
    assert_true(leased(b) > 0 && w >> 62 == 1); /* LIVE, counted in the level */
    assert_int_equal(level(b), 100000);         /* T did not move */
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    uint64_t bad = w + 1; /* one token more in the lease than the level lent */
    memcpy(mem + lease, &bad, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_E_CORRUPT);
    assert_non_null(strstr(resil_status_detail(), "leased"));
    bad = (w & ~(UINT64_C(3) << 62)) | UINT64_C(2) << 62; /* FROZEN with no reclaim */
    memcpy(mem + lease, &bad, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_E_CORRUPT);
    assert_non_null(strstr(resil_status_detail(), "frozen"));
    memcpy(mem + lease, &w, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    resil__retry_budget_reclaim(b);
    assert_int_equal(leased(b), 0);
    assert_int_equal(word_at(b, lease) >> 62, 0); /* EMPTY */
    assert_int_equal(level(b), 100000);
    /* the level may not lend below half plus one: 50 001 tokens stay */
    for (int i = 0; i < 49; i++)
        assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_OK);
    resil__retry_budget_lease(b, 0);
    assert_int_equal(leased(b), 0); /* 51 tokens: an eighth of 0.999 is less than one */
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
}

/* A grant a crashed (or preempted) caller left half done is completed by
 * the next transfer: paid if the level can still lend it, else aborted,
 * never minting tokens; check() and the level count it while in flight. */
static void half_done_grants_complete_or_abort(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(1)];
    resil_retry_budget_config_t c = bucket_cfg(100, 250);
    resil_retry_budget_t *b;
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    for (int i = 0; i < 40; i++)
        resil_retry_budget_on_failure(b, 0, 0, 0, NULL); /* 60 tokens: 9 999 above half + 1 */
    /* transfer word: amount, stripe 2 at bit 20, op GRANT (1) at bit 22, seq at bit 40 */
    uint64_t d = 20000 | UINT64_C(2) << 20 | UINT64_C(1) << 22 | UINT64_C(1) << 40;
    memcpy(mem + 136, &d, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK); /* started, nothing moved yet */
    assert_int_equal(level(b), 60000);
    resil__retry_budget_reclaim(b); /* completes it first: the level cannot pay, aborted */
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    assert_int_equal(level(b), 60000);
    assert_int_equal(leased(b), 0);
    assert_int_equal(word_at(b, 192 + 2 * 64), 0); /* the lease never received it */
    assert_int_equal((word_at(b, 136) >> 22) & 3, 0);

    /* one it can pay, left after the level paid and before the lease got it */
    d = 5000 | UINT64_C(2) << 20 | UINT64_C(1) << 22 | UINT64_C(2) << 40;
    uint64_t g = word_at(b, 128);
    uint64_t paid =
        ((g & 0xfffff) - 5000) | (((g >> 20) & 0xfffff) + 5000) << 20 | UINT64_C(2) << 40;
    memcpy(mem + 136, &d, 8);
    memcpy(mem + 128, &paid, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK); /* in flight, counted */
    assert_int_equal(level(b), 60000);
    resil__retry_budget_reclaim(b); /* delivers it, then takes every lease back */
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    assert_int_equal(level(b), 60000);
    assert_int_equal(leased(b), 0);
    /* the budget decides as if nothing happened: 9 retries down to 51 tokens */
    int granted = 0;
    while (resil_retry_budget_on_failure(b, 0, 0, 1, NULL) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 9);
}

/* A level overwritten to count leases nobody holds: check() says so, and
 * decisions that would wait for those leases give up instead of spinning. */
static void a_corrupt_level_never_hangs_a_decision(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(1)];
    resil_retry_budget_config_t c = bucket_cfg(100, 250);
    resil_retry_budget_t *b;
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    uint64_t g = 50500 | UINT64_C(100) << 20; /* near half, 100 "leased" */
    memcpy(mem + 128, &g, 8);
    assert_int_equal(resil_retry_budget_check(b), RESIL_E_CORRUPT);
    assert_int_equal(resil_retry_budget_on_failure(b, 0, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    g = 99950 | UINT64_C(50) << 20; /* full but for the phantom lease */
    memcpy(mem + 128, &g, 8);
    assert_int_equal(resil_retry_budget_on_success(b, 0, 0), RESIL_OK);
    assert_int_equal(word_at(b, 128), g); /* gave nothing */
}

/* Each thread sums a ratio window's older buckets once per slot: the sums
 * belong to one block, and to one init of its memory. */
static void ratio_window_sums_belong_to_one_block(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(10)];
    resil_retry_budget_config_t c = ratio_cfg(50, 0);
    resil_retry_budget_t *b, *other = make(&c);
    const uint64_t t = RESIL_SEC(1000), later = t + RESIL_SEC(3);
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    for (int i = 0; i < 10; i++)
        resil_retry_budget_on_request(b, t);
    assert_int_equal(resil_retry_budget_on_failure(b, later, 0, 1, NULL), RESIL_OK);
    /* same slot, another block with the same configuration: its own window */
    assert_int_equal(resil_retry_budget_on_failure(other, later, 0, 1, NULL),
                     RESIL_E_BUDGET_EXHAUSTED);
    assert_int_equal(resil_retry_budget_on_failure(b, later, 0, 1, NULL), RESIL_OK);
    /* the same memory initialized again: an empty window */
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    assert_int_equal(resil_retry_budget_on_failure(b, later, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    /* grants are counted in the buckets and folded into the statistics when
     * a bucket is reused a window later */
    for (int i = 0; i < 10; i++)
        resil_retry_budget_on_request(b, later);
    int granted = 0;
    while (resil_retry_budget_on_failure(b, later, 0, 1, NULL) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 5);
    resil_retry_budget_on_request(b, later + RESIL_SEC(10)); /* same bucket, next window */
    assert_true(resil_retry_budget_on_failure(b, later + RESIL_SEC(10), 0, 1, NULL) != RESIL_OK);
    for (int i = 0; i < 2; i++)
        resil_retry_budget_on_request(b, later + RESIL_SEC(10));
    assert_int_equal(resil_retry_budget_on_failure(b, later + RESIL_SEC(10), 0, 1, NULL), RESIL_OK);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, later + RESIL_SEC(10), &s), RESIL_OK);
    assert_int_equal(s.granted, 6);
    assert_int_equal(s.refused, 3);
    assert_int_equal(s.window_retries, 1);
    resil_retry_budget_free(other);
}

static void each_bad_budget_field_is_named(void **state)
{
    (void)state;
    int n = 0;
#define CASE(body, text)                                                                           \
    do {                                                                                           \
        resil_retry_budget_config_t c = resil_retry_budget_config_default();                       \
        body;                                                                                      \
        assert_int_equal(resil_retry_budget_config_check(&c), RESIL_E_INVALID_CONFIG);             \
        assert_string_equal(resil_status_detail(), text);                                          \
        assert_int_equal(resil_retry_budget_size(&c), 0);                                          \
        n++;                                                                                       \
    } while (0)
    CASE(c.kind = (resil_retry_budget_kind)3,
         "retry_budget.kind: must be a resil_retry_budget_kind, got 3");
    CASE(c.max_tokens = 0, "retry_budget.max_tokens: must be in 1..1000, got 0");
    CASE(c.max_tokens = 1001, "retry_budget.max_tokens: must be in 1..1000, got 1001");
    CASE(c.token_ratio_milli = 0, "retry_budget.token_ratio_milli: must be in 1..1000000, got 0");
    CASE(c.retry_percent = 1001, "retry_budget.retry_percent: must be in 0..1000, got 1001");
    CASE(c.min_retries_per_sec = 1000001,
         "retry_budget.min_retries_per_sec: must be in 0..1000000, got 1000001");
    CASE(c.ttl_ns = 5, "retry_budget.ttl_ns: must be in 1 ms..1 hour, got 5 ns");
    CASE(c.buckets = 65, "retry_budget.buckets: must be in 1..64, got 65");
    CASE(c.quota_capacity = 0, "retry_budget.quota_capacity: must be in 1..1000000, got 0");
    CASE(c.retry_cost = 501,
         "retry_budget.retry_cost: must be in 1..quota_capacity (500), got 501");
    CASE(c.timeout_cost = 0,
         "retry_budget.timeout_cost: must be in 1..quota_capacity (500), got 0");
    CASE(c.no_retry_increment = 600,
         "retry_budget.no_retry_increment: must be in 0..quota_capacity (500), got 600");
#undef CASE
    assert_int_equal(n, 12);
    assert_int_equal(resil_retry_budget_config_check(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_size(NULL), 0);
}

static void null_budget_arguments_are_reported(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    resil_retry_budget_t *b = (resil_retry_budget_t *)&c;
    uint32_t cost = 9;
    assert_int_equal(resil_retry_budget_new(NULL, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_new(&c, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_on_request(NULL, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_on_failure(NULL, 0, 0, 1, &cost), RESIL_E_INVALID_ARG);
    assert_int_equal(cost, 0);
    assert_int_equal(resil_retry_budget_on_success(NULL, 0, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_can_retry(NULL, 0), 0);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(NULL, 0, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_check(NULL), RESIL_E_INVALID_ARG);
    resil_retry_budget_free(NULL);
}

static void sizes_are_cache_lines_and_within_the_macro(void **state)
{
    (void)state;
    for (uint32_t nb = 1; nb <= RESIL_RETRY_BUDGET_MAX_BUCKETS; nb++) {
        resil_retry_budget_config_t c = ratio_cfg(20, 10);
        c.buckets = nb;
        size_t sz = resil_retry_budget_size(&c);
        assert_int_equal(sz % 64, 0);
        assert_true(sz <= RESIL_RETRY_BUDGET_SIZE(nb));
    }
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    assert_int_equal(resil_retry_budget_size(&c), 448); /* header, config, level, 4 stripes */
    assert_true(resil_retry_budget_size(&c) <= RESIL_RETRY_BUDGET_SIZE(1));
}

static void init_attach_and_corruption(void **state)
{
    (void)state;
    static _Alignas(64) unsigned char mem[RESIL_RETRY_BUDGET_SIZE(10)];
    resil_retry_budget_config_t c = ratio_cfg(20, 10);
    size_t need = resil_retry_budget_size(&c);
    resil_retry_budget_t *b, *a;
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_E_NOT_INITIALIZED);
    assert_null(a);
    assert_int_equal(resil_retry_budget_init(mem, need - 1, &c, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_init(mem + 8, sizeof mem - 8, &c, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_init(NULL, sizeof mem, &c, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, NULL, &b), RESIL_E_INVALID_ARG);
    c.buckets = 0;
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_E_INVALID_CONFIG);
    c.buckets = 10;
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    assert_ptr_equal(b, mem);
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_OK);
    assert_ptr_equal(a, mem);
    assert_int_equal(resil_retry_budget_attach(mem, need - 64, &a), RESIL_E_CORRUPT);
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, NULL), RESIL_E_INVALID_ARG);
    resil_retry_budget_free(b); /* caller memory: nothing happens */
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_OK);

    mem[40] ^= 1; /* inside the stored config */
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_E_CORRUPT);
    assert_int_equal(resil_retry_budget_check(b), RESIL_E_CORRUPT);
    mem[40] ^= 1;
    mem[7] ^= 0x10; /* magic */
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_E_CORRUPT);
    mem[7] ^= 0x10;

    /* a token level above its maximum is caught by attach and check */
    c = bucket_cfg(10, 100);
    assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
    memset(mem + 128, 0xff, 8); /* the level word: see the layout in retry_budget.c */
    assert_int_equal(resil_retry_budget_attach(mem, sizeof mem, &a), RESIL_E_CORRUPT);
    assert_int_equal(resil_retry_budget_check(b), RESIL_E_CORRUPT);
    assert_non_null(strstr(resil_status_detail(), "above its maximum"));

    /* random bytes never crash attach */
    uint64_t rng = 3;
    for (int i = 0; i < 2000; i++) {
        for (size_t k = 0; k < sizeof mem; k += 8) {
            uint64_t r = resil_splitmix64(&rng);
            memcpy(mem + k, &r, 8);
        }
        if (i & 1) { /* half the time: a valid block with one flipped byte after the tag */
            assert_int_equal(resil_retry_budget_init(mem, sizeof mem, &c, &b), RESIL_OK);
            mem[8 + (size_t)(i % 160)] ^= (unsigned char)(1 + i % 255);
        }
        assert_true(resil_retry_budget_attach(mem, sizeof mem, &a) <= RESIL_OK);
    }
}

static void new_fails_cleanly_when_allocation_fails(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    resil_retry_budget_t *b = (resil_retry_budget_t *)&c;
    test_alloc_install(1, 1);
    assert_int_equal(resil_retry_budget_new(&c, &b), RESIL_E_NO_MEMORY);
    assert_null(b);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
    test_alloc_install(0, 0);
    assert_int_equal(resil_retry_budget_new(&c, &b), RESIL_OK);
    assert_int_equal(test_alloc_live(), 1);
    resil_retry_budget_free(b);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
}

/* Children each record failures on one bucket in shared memory: exactly the
 * failures that leave more than half the tokens get a retry, whatever the
 * interleaving. */
static void forked_processes_share_one_budget_exactly(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = bucket_cfg(1000, 1000);
    size_t sz = resil_retry_budget_size(&c);
    void *mem = test_shared_alloc(sz);
    assert_non_null(mem);
    assert_int_equal(resil_retry_budget_init(mem, sz, &c, NULL), RESIL_OK);
    enum { KIDS = 4, EACH = 300 };
    pid_t pids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            resil_retry_budget_t *b;
            if (resil_retry_budget_attach(mem, sz, &b) != RESIL_OK)
                _exit(2);
            for (int i = 0; i < EACH; i++)
                resil_retry_budget_on_failure(b, 0, 0, 1, NULL);
            _exit(0);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int st;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    resil_retry_budget_t *b;
    assert_int_equal(resil_retry_budget_attach(mem, sz, &b), RESIL_OK);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, 0, &s), RESIL_OK);
    assert_int_equal(s.level_milli, 0); /* 1200 failures emptied 1000 tokens */
    assert_int_equal(s.granted, 499);   /* tokens after: 999 .. 501 */
    assert_int_equal(s.refused, 1200 - 499);
    assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
    test_shared_free(mem, sz);
}

static void state_init_counts_requests_in_a_ratio_budget(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(50, 0);
    resil_retry_budget_t *b = make(&c);
    resil_retry_policy_t p = resil_retry_policy_default();
    p.jitter = RESIL_JITTER_NONE;
    p.budget = b;
    p.max_attempts = 5;
    resil_retry_state_t st;
    long granted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(resil_retry_state_init_at(&st, &p, RESIL_SEC(5)), RESIL_OK);
        resil_retry_reason r;
        while ((r = resil_retry_next_delay_at(&st, RESIL_SEC(5), RESIL_RETRY_FAILURE, NULL,
                                              NULL)) == RESIL_RETRY_GO)
            granted++;
        refused += r == RESIL_RETRY_STOP_BUDGET;
    }
    /* 10 requests at 50 %: 5 retries in all, whoever asks */
    assert_int_equal(granted, 5);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, RESIL_SEC(5), &s), RESIL_OK);
    assert_int_equal(s.window_requests, 10);
    assert_int_equal(s.window_retries, 5);
    assert_int_equal(s.refused, (uint64_t)refused);
    resil_retry_budget_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_bucket_follows_grpc_throttling_exactly),
        cmocka_unit_test(token_bucket_matches_a_model_over_a_scripted_workload),
        cmocka_unit_test(quota_follows_aws_standard_mode),
        cmocka_unit_test(ratio_allows_percent_of_requests_plus_floor),
        cmocka_unit_test(ratio_allowance_rounds_the_sum_down_once),
        cmocka_unit_test(ratio_never_exceeds_its_promise_over_a_scripted_workload),
        cmocka_unit_test(token_bucket_on_leases_matches_the_model_exactly),
        cmocka_unit_test(quota_on_leases_matches_the_model_exactly),
        cmocka_unit_test(ratio_leases_on_every_stripe_match_the_window_model),
        cmocka_unit_test(ratio_decisions_without_room_take_leases_back),
        cmocka_unit_test(decisions_at_thresholds_reclaim_leases_first),
        cmocka_unit_test(check_verifies_lease_conservation),
        cmocka_unit_test(half_done_grants_complete_or_abort),
        cmocka_unit_test(a_corrupt_level_never_hangs_a_decision),
        cmocka_unit_test(ratio_window_sums_belong_to_one_block),
        cmocka_unit_test(each_bad_budget_field_is_named),
        cmocka_unit_test(null_budget_arguments_are_reported),
        cmocka_unit_test(sizes_are_cache_lines_and_within_the_macro),
        cmocka_unit_test(init_attach_and_corruption),
        cmocka_unit_test(new_fails_cleanly_when_allocation_fails),
        cmocka_unit_test(forked_processes_share_one_budget_exactly),
        cmocka_unit_test(state_init_counts_requests_in_a_ratio_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
