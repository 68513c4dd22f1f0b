#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* A policy with no jitter, so schedules are exact. */
static resil_retry_policy_t exact_policy(void)
{
    resil_retry_policy_t p = resil_retry_policy_default();
    p.jitter = RESIL_JITTER_NONE;
    p.initial_delay_ns = RESIL_MS(100);
    p.max_delay_ns = RESIL_SEC(1);
    p.max_attempts = 7;
    return p;
}

/* The delays of every retry until the policy stops, for an operation that
 * keeps failing instantly at time now (fixed). */
static int schedule(const resil_retry_policy_t *p, uint64_t *out, int max, resil_retry_reason *why)
{
    resil_retry_state_t st;
    assert_int_equal(resil_retry_state_init_at(&st, p, 0), RESIL_OK);
    int n = 0;
    for (;;) {
        uint64_t d = 12345;
        resil_retry_reason r = resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d);
        if (r != RESIL_RETRY_GO) {
            assert_int_equal(d, 0);
            *why = r;
            return n;
        }
        assert_true(n < max);
        out[n++] = d;
    }
}

static void exponential_schedule_doubles_up_to_the_cap(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    uint64_t d[16];
    resil_retry_reason why;
    int n = schedule(&p, d, 16, &why);
    const uint64_t want[] = {RESIL_MS(100), RESIL_MS(200), RESIL_MS(400),
                             RESIL_MS(800), RESIL_SEC(1),  RESIL_SEC(1)};
    assert_int_equal(n, 6); /* 7 attempts = 6 retries */
    for (int i = 0; i < n; i++)
        assert_int_equal(d[i], want[i]);
    assert_int_equal(why, RESIL_RETRY_STOP_ATTEMPTS);
}

/* d(n) = initial * m^(n-1) within 1 ns, not truncated step by step: small
 * steps add up, and bases past 2^53 keep every nanosecond */
static void exponential_schedule_follows_the_formula(void **state)
{
    (void)state;
    static uint64_t d[4000];
    resil_retry_reason why;
    resil_retry_policy_t p = exact_policy();
    p.max_delay_ns = UINT64_MAX;

    p.initial_delay_ns = 1; /* 1, 1.5, 2.25, 3.375 ... */
    p.multiplier = 1.5;
    p.max_attempts = 11;
    const uint64_t small[] = {1, 1, 2, 3, 5, 7, 11, 17, 25, 38};
    assert_int_equal(schedule(&p, d, 4000, &why), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(d[i], small[i]);
    p.initial_delay_ns = 62; /* 62 * 1.5^3 = 209.25 */
    assert_int_equal(schedule(&p, d, 4000, &why), 10);
    assert_int_equal(d[3], 209);

    p.initial_delay_ns = RESIL_US(1); /* + 0.5 ns a step at first */
    p.multiplier = 1.0005;
    p.max_attempts = 4000;
    assert_int_equal(schedule(&p, d, 4000, &why), 3999);
    long double x = 1000;
    for (int i = 0; i < 3999; i++, x *= (long double)p.multiplier) {
        long double diff = (long double)d[i] - x; /* x's rounding: n 2^-64 x */
        assert_true(diff <= x * 0x1p-50L && diff > -1 - x * 0x1p-50L);
    }
    assert_true(d[3998] > RESIL_US(7)); /* 1 us * 1.0005^3998 = 7.38 us */

    p.initial_delay_ns = (UINT64_C(1) << 62) + 3; /* not a double */
    p.multiplier = 1.0;
    p.max_attempts = 100;
    assert_int_equal(schedule(&p, d, 4000, &why), 99);
    for (int i = 0; i < 99; i++)
        assert_int_equal(d[i], (UINT64_C(1) << 62) + 3);
    p.initial_delay_ns = (UINT64_C(1) << 40) + 1; /* exact integers past 2^53 */
    p.multiplier = 3.0;
    assert_int_equal(schedule(&p, d, 4000, &why), 99);
    uint64_t want = p.initial_delay_ns;
    for (int i = 0; i < 99; i++) {
        assert_int_equal(d[i], want);
        want = want > UINT64_MAX / 3 ? UINT64_MAX : want * 3;
    }
}

static void linear_and_constant_schedules_are_exact(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    p.backoff = RESIL_BACKOFF_LINEAR;
    p.increment_ns = RESIL_MS(250);
    uint64_t d[16];
    resil_retry_reason why;
    int n = schedule(&p, d, 16, &why);
    const uint64_t lin[] = {RESIL_MS(100), RESIL_MS(350), RESIL_MS(600),
                            RESIL_MS(850), RESIL_SEC(1),  RESIL_SEC(1)};
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++)
        assert_int_equal(d[i], lin[i]);

    p.backoff = RESIL_BACKOFF_CONSTANT;
    p.max_attempts = 4;
    n = schedule(&p, d, 16, &why);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        assert_int_equal(d[i], RESIL_MS(100));
    assert_int_equal(why, RESIL_RETRY_STOP_ATTEMPTS);
}

static void one_attempt_never_retries(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    p.max_attempts = 1;
    uint64_t d[2];
    resil_retry_reason why;
    assert_int_equal(schedule(&p, d, 2, &why), 0);
    assert_int_equal(why, RESIL_RETRY_STOP_ATTEMPTS);
}

static void success_and_final_failure_stop(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    resil_retry_state_t st;
    uint64_t d = 7;
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_OK);
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_SUCCESS, NULL, &d),
                     RESIL_RETRY_STOP_SUCCEEDED);
    assert_int_equal(d, 0);
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_OK);
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_FINAL, NULL, &d),
                     RESIL_RETRY_STOP_FINAL);
    assert_int_equal(resil_retry_attempts(&st), 1);
    /* a timeout is retryable like a failure */
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_OK);
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_TIMEOUT, NULL, &d), RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(100));
    assert_int_equal(resil_retry_attempts(&st), 2);
}

static void deadline_cuts_off_the_retry_that_would_start_past_it(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(1000), &m), RESIL_OK);
    resil_retry_policy_t p = exact_policy();
    p.max_attempts = 100;
    p.max_total_ns = RESIL_SEC(1);
    p.clock = resil_manual_clock_as_clock(m);
    resil_retry_state_t st;
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_OK);
    /* each attempt takes 50 ms; delays 100, 200, 400 -> attempts start at
     * 0, 150, 400, 850 ms; the next would start at 900 + 800 > 1000 */
    const uint64_t want[] = {RESIL_MS(100), RESIL_MS(200), RESIL_MS(400)};
    for (int i = 0; i < 3; i++) {
        resil_manual_clock_advance(m, RESIL_MS(50));
        uint64_t d;
        assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_FAILURE, NULL, &d),
                         RESIL_RETRY_GO);
        assert_int_equal(d, want[i]);
        resil_manual_clock_advance(m, d);
    }
    assert_int_equal(resil_manual_clock_get(m), RESIL_SEC(1000) + RESIL_MS(850));
    resil_manual_clock_advance(m, RESIL_MS(50));
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_STOP_DEADLINE);
    assert_int_equal(resil_retry_attempts(&st), 4);

    /* a delay landing exactly on the deadline is refused too (no time left) */
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, RESIL_MS(900), RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_STOP_DEADLINE);
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, RESIL_MS(899), RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_GO);
    /* past the deadline already */
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, RESIL_SEC(5), RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_STOP_DEADLINE);
    resil_manual_clock_free(m);
}

static void deadline_near_uint64_max_saturates(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    p.max_total_ns = UINT64_MAX;
    resil_retry_state_t st;
    assert_int_equal(resil_retry_state_init_at(&st, &p, UINT64_MAX - 5), RESIL_OK);
    assert_int_equal(
        resil_retry_next_delay_at(&st, UINT64_MAX - 5, RESIL_RETRY_FAILURE, NULL, NULL),
        RESIL_RETRY_GO);
    /* the clock stepping back is survived: it is still before the deadline */
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_GO);
}

/* start + max_total_ns past 2^64 is still a deadline, not "none" */
static void deadline_past_uint64_max_still_holds(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    p.max_total_ns = RESIL_SEC(1);
    const uint64_t t0 = UINT64_MAX - RESIL_MS(500);
    const uint64_t t1 = t0 + RESIL_MS(100);
    resil_retry_state_t st;
    assert_int_equal(resil_retry_state_init_at(&st, &p, t0), RESIL_OK);
    assert_int_equal(resil_retry_attempt_timeout(&st, t1), RESIL_MS(900));
    resil_retry_hint_t hour = {RESIL_RETRY_HINT_AFTER, RESIL_SEC(3600)};
    uint64_t d = 1;
    assert_int_equal(resil_retry_next_delay_at(&st, t1, RESIL_RETRY_FAILURE, &hour, &d),
                     RESIL_RETRY_STOP_DEADLINE);
    assert_int_equal(d, 0);
    /* a retry starting exactly on the deadline stops, one just before goes */
    resil_retry_hint_t on = {RESIL_RETRY_HINT_AFTER, RESIL_MS(900)};
    assert_int_equal(resil_retry_state_init_at(&st, &p, t0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, t1, RESIL_RETRY_FAILURE, &on, &d),
                     RESIL_RETRY_STOP_DEADLINE);
    on.delay_ns = RESIL_MS(900) - 1;
    assert_int_equal(resil_retry_state_init_at(&st, &p, t0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, t1, RESIL_RETRY_FAILURE, &on, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(900) - 1);
    /* a deadline that far still saturates what attempt_timeout can say */
    p.max_total_ns = UINT64_MAX;
    assert_int_equal(resil_retry_state_init_at(&st, &p, t0), RESIL_OK);
    assert_int_equal(resil_retry_attempt_timeout(&st, 0), UINT64_MAX);
    assert_int_equal(resil_retry_attempt_timeout(&st, t1), UINT64_MAX - RESIL_MS(100));
}

static void attempt_timeout_is_shortened_by_the_deadline(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    resil_retry_state_t st;
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_attempt_timeout(&st, 0), UINT64_MAX);
    p.attempt_timeout_ns = RESIL_MS(300);
    p.max_total_ns = RESIL_SEC(1);
    assert_int_equal(resil_retry_state_init_at(&st, &p, RESIL_SEC(10)), RESIL_OK);
    assert_int_equal(resil_retry_attempt_timeout(&st, RESIL_SEC(10)), RESIL_MS(300));
    assert_int_equal(resil_retry_attempt_timeout(&st, RESIL_SEC(10) + RESIL_MS(800)),
                     RESIL_MS(200));
    assert_int_equal(resil_retry_attempt_timeout(&st, RESIL_SEC(12)), 0);
    assert_int_equal(resil_retry_attempt_timeout(NULL, 0), 0);
}

static void pushback_is_honoured_exactly_then_backoff_restarts(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    resil_retry_state_t st;
    uint64_t d;
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(100));
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(200));
    /* server says 3 s: more than the backoff cap, still honoured (it is a hint, not backoff) */
    resil_retry_hint_t h = {RESIL_RETRY_HINT_AFTER, RESIL_SEC(3)};
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_SEC(3));
    /* gRFC A6: then the backoff starts again from the initial delay */
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(100));
}

static void pushback_is_capped_and_bounded_by_the_deadline(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    p.max_pushback_ns = RESIL_SEC(2);
    resil_retry_state_t st;
    uint64_t d;
    resil_retry_hint_t h = {RESIL_RETRY_HINT_AFTER, RESIL_SEC(30)};
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_SEC(2));
    h.delay_ns = RESIL_MS(1); /* shorter hints are taken as they are */
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_MS(1));

    p.max_total_ns = RESIL_SEC(1);
    h.delay_ns = RESIL_MS(1500);
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_STOP_DEADLINE);
}

static void do_not_retry_hint_stops_even_with_attempts_left(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    resil_retry_state_t st;
    resil_retry_hint_t h = {RESIL_RETRY_HINT_DO_NOT_RETRY, 0};
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, NULL),
                     RESIL_RETRY_STOP_DO_NOT_RETRY);
    assert_int_equal(resil_retry_attempts(&st), 1);
    /* a hint on a success is ignored */
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_SUCCESS, &h, NULL),
                     RESIL_RETRY_STOP_SUCCEEDED);
}

static void bad_arguments_stop_with_invalid_arg(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    resil_retry_state_t st;
    uint64_t d = 9;
    assert_int_equal(resil_retry_next_delay(NULL, RESIL_RETRY_FAILURE, NULL, &d),
                     RESIL_RETRY_STOP_INVALID_ARG);
    assert_int_equal(d, 0);
    p.max_attempts = 0;
    memset(&st, 0xff, sizeof st);
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_E_INVALID_CONFIG);
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_FAILURE, NULL, &d),
                     RESIL_RETRY_STOP_INVALID_ARG);
    assert_int_equal(resil_retry_attempts(&st), 0);
    assert_int_equal(resil_retry_state_init(&st, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_state_init(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_state_seed(NULL, 1), RESIL_E_INVALID_ARG);
    p.max_attempts = 3;
    assert_int_equal(resil_retry_state_init(&st, &p), RESIL_OK);
    assert_int_equal(resil_retry_next_delay(&st, (resil_retry_outcome)42, NULL, &d),
                     RESIL_RETRY_STOP_INVALID_ARG);
    resil_retry_hint_t h = {(resil_retry_hint_kind)9, 0};
    assert_int_equal(resil_retry_next_delay(&st, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_STOP_INVALID_ARG);
    /* nothing was recorded: the operation still has its retries */
    assert_int_equal(resil_retry_attempts(&st), 1);
    assert_int_equal(resil_retry_policy_check(NULL), RESIL_E_INVALID_ARG);
}

static void each_bad_policy_field_is_named(void **state)
{
    (void)state;
    int n = 0;
#define CASE(body, text)                                                                           \
    do {                                                                                           \
        resil_retry_policy_t p = resil_retry_policy_default();                                     \
        body;                                                                                      \
        assert_int_equal(resil_retry_policy_check(&p), RESIL_E_INVALID_CONFIG);                    \
        assert_string_equal(resil_status_detail(), text);                                          \
        n++;                                                                                       \
    } while (0)
    CASE(p.max_attempts = 0, "retry.max_attempts: must be in 1..100000, got 0");
    CASE(p.max_attempts = 100001, "retry.max_attempts: must be in 1..100000, got 100001");
    CASE(p.multiplier = NAN, "retry.multiplier: must be finite and in (0, 1e6], got nan");
    CASE(p.multiplier = INFINITY, "retry.multiplier: must be finite and in (0, 1e6], got inf");
    CASE(p.multiplier = -2.0, "retry.multiplier: must be finite and in (0, 1e6], got -2");
    CASE(p.multiplier = 0.0, "retry.multiplier: must be finite and in (0, 1e6], got 0");
    CASE(p.max_delay_ns = 5, "retry.max_delay_ns: must be >= initial_delay_ns (100000000), got 5");
    CASE(p.jitter_percent = 101, "retry.jitter_percent: must be in 0..100, got 101");
    CASE(p.backoff = (resil_backoff_kind)3, "retry.backoff: must be a resil_backoff_kind, got 3");
    CASE(p.jitter = (resil_jitter_kind)5, "retry.jitter: must be a resil_jitter_kind, got 5");
#undef CASE
    assert_int_equal(n, 10);
    resil_retry_policy_t ok = resil_retry_policy_default();
    assert_int_equal(resil_retry_policy_check(&ok), RESIL_OK);
    ok.multiplier = 0.5; /* gRPC allows a shrinking backoff */
    assert_int_equal(resil_retry_policy_check(&ok), RESIL_OK);
}

/* ---- jitter statistics --------------------------------------------------- */

/* (tests are not linked with libm) */
static double dmin(double a, double b) { return a < b ? a : b; }
static double dabs(double a) { return a < 0 ? -a : a; }

typedef struct {
    double sum;        /* of delays / d */
    double pos_sum;    /* of the position of each delay within its range, in [0, 1) */
    long bins[10];     /* histogram of positions */
    long out_of_range; /* delays outside their documented range */
    long at_cap;       /* delays exactly equal to the cap */
    long n;
} jstats;

/* Draws n delays of @p p (constant backoff at d = initial) and checks each
 * against the documented range. */
static void sample(const resil_retry_policy_t *p, long n, uint64_t seed, jstats *js)
{
    memset(js, 0, sizeof *js);
    resil_retry_state_t st;
    const uint64_t cap = p->max_delay_ns, d = p->initial_delay_ns;
    uint64_t prev = p->initial_delay_ns;
    assert_int_equal(resil_retry_state_init_at(&st, p, 0), RESIL_OK);
    resil_retry_state_seed(&st, seed);
    while (js->n < n) {
        uint64_t x;
        if (resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &x) != RESIL_RETRY_GO) {
            assert_int_equal(resil_retry_state_init_at(&st, p, 0), RESIL_OK);
            resil_retry_state_seed(&st, seed + (uint64_t)js->n);
            prev = p->initial_delay_ns;
            continue;
        }
        double lo, hi;
        switch (p->jitter) {
        case RESIL_JITTER_FULL:
            lo = 0, hi = (double)d;
            break;
        case RESIL_JITTER_EQUAL:
            lo = (double)(d - d / 2), hi = (double)d;
            break;
        case RESIL_JITTER_PROPORTIONAL: {
            double s = (double)d * p->jitter_percent / 100.0;
            lo = (double)d - s, hi = dmin((double)cap, (double)d + s);
            break;
        }
        case RESIL_JITTER_DECORRELATED:
            lo = (double)p->initial_delay_ns;
            hi = dmin((double)cap, 3.0 * (double)prev);
            prev = x;
            break;
        default:
            lo = hi = (double)d;
        }
        if ((double)x < lo || (double)x >= hi || x > cap)
            js->out_of_range++;
        if (x == cap)
            js->at_cap++;
        double pos = ((double)x - lo) / (hi - lo);
        js->pos_sum += pos;
        int b = (int)(pos * 10);
        js->bins[b < 0 ? 0 : b > 9 ? 9 : b]++;
        js->sum += (double)x / (double)d;
        js->n++;
    }
}

static resil_retry_policy_t stat_policy(resil_jitter_kind j, uint64_t d, uint64_t cap)
{
    resil_retry_policy_t p = resil_retry_policy_default();
    p.backoff = RESIL_BACKOFF_CONSTANT;
    p.jitter = j;
    p.initial_delay_ns = d;
    p.max_delay_ns = cap;
    p.max_attempts = RESIL_RETRY_MAX_ATTEMPTS;
    return p;
}

#define SAMPLES 100000L
/* Tolerance on means: the standard error of a uniform position over 1e5
 * samples is 0.289 / 316 = 0.0009; 0.005 is over 5 standard errors. */
#define MEAN_TOL 0.005

static void check_uniform(const jstats *js)
{
    assert_int_equal(js->out_of_range, 0);
    assert_true(dabs(js->pos_sum / (double)js->n - 0.5) < MEAN_TOL);
    for (int b = 0; b < 10; b++) /* each tenth holds 10 % +- 0.5 % of the draws */
        assert_true(labs(js->bins[b] - js->n / 10) < js->n / 200);
}

static void full_jitter_is_uniform_below_d(void **state)
{
    (void)state;
    resil_retry_policy_t p = stat_policy(RESIL_JITTER_FULL, RESIL_MS(800), RESIL_SEC(1));
    jstats js;
    sample(&p, SAMPLES, 11, &js);
    check_uniform(&js);
    assert_true(dabs(js.sum / (double)js.n - 0.5) < MEAN_TOL); /* E = d/2 */
}

static void equal_jitter_is_uniform_in_upper_half(void **state)
{
    (void)state;
    resil_retry_policy_t p = stat_policy(RESIL_JITTER_EQUAL, RESIL_MS(800), RESIL_SEC(1));
    jstats js;
    sample(&p, SAMPLES, 12, &js);
    check_uniform(&js);
    assert_true(dabs(js.sum / (double)js.n - 0.75) < MEAN_TOL); /* E = 3d/4 */
}

static void proportional_jitter_is_plus_minus_twenty_percent(void **state)
{
    (void)state;
    resil_retry_policy_t p = stat_policy(RESIL_JITTER_PROPORTIONAL, RESIL_MS(500), RESIL_SEC(1));
    jstats js;
    sample(&p, SAMPLES, 13, &js);
    check_uniform(&js);
    assert_true(dabs(js.sum / (double)js.n - 1.0) < MEAN_TOL); /* E = d */
}

static void decorrelated_jitter_draws_between_base_and_three_times_previous(void **state)
{
    (void)state;
    resil_retry_policy_t p = stat_policy(RESIL_JITTER_DECORRELATED, RESIL_MS(10), RESIL_SEC(1));
    jstats js;
    sample(&p, SAMPLES, 14, &js);
    check_uniform(&js); /* uniform within [base, min(cap, 3 prev)) at every step */
    assert_int_equal(js.at_cap, 0);
}

static void delays_near_the_cap_do_not_collapse_onto_it(void **state)
{
    (void)state;
    const resil_jitter_kind kinds[] = {RESIL_JITTER_FULL, RESIL_JITTER_EQUAL,
                                       RESIL_JITTER_PROPORTIONAL, RESIL_JITTER_DECORRELATED};
    for (int k = 0; k < 4; k++) {
        /* d(n) far above the cap: d = cap */
        resil_retry_policy_t p = resil_retry_policy_default();
        p.jitter = kinds[k];
        p.initial_delay_ns = RESIL_MS(100);
        p.max_delay_ns = RESIL_SEC(1);
        p.max_attempts = RESIL_RETRY_MAX_ATTEMPTS;
        resil_retry_state_t st;
        assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
        resil_retry_state_seed(&st, 99 + (uint64_t)k);
        long at_cap = 0, above_90 = 0, n = 0;
        double sum = 0;
        for (int i = 0; i < 20000; i++) {
            uint64_t x;
            assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &x),
                             RESIL_RETRY_GO);
            assert_true(x <= p.max_delay_ns);
            if (i < 50)
                continue; /* past the growth */
            at_cap += x == p.max_delay_ns;
            above_90 += x >= RESIL_MS(900);
            sum += (double)x;
            n++;
        }
        assert_int_equal(at_cap, 0);
        /* proportional: uniform in [0.8 cap, cap), mean 0.9 cap, every draw
         * in the top 20 %: half of them above 0.9 cap */
        if (kinds[k] == RESIL_JITTER_PROPORTIONAL) {
            assert_true(dabs(sum / (double)n / 1e9 - 0.9) < MEAN_TOL);
            assert_true(labs(above_90 - n / 2) < n / 50);
        }
    }
}

static void same_seed_gives_same_delays(void **state)
{
    (void)state;
    resil_retry_policy_t p = resil_retry_policy_default();
    p.seed = 1234;
    p.max_attempts = 50;
    uint64_t a[64], b[64], c[64];
    resil_retry_reason why;
    int na = schedule(&p, a, 64, &why);
    int nb = schedule(&p, b, 64, &why);
    assert_int_equal(na, 49);
    assert_int_equal(nb, 49);
    assert_memory_equal(a, b, sizeof(uint64_t) * 49);
    p.seed = 1235;
    schedule(&p, c, 64, &why);
    int same = 0;
    for (int i = 0; i < 49; i++)
        same += a[i] == c[i];
    assert_true(same < 3);
}

/* seed 0: a copy made before the first draw is still the same operation,
 * while two operations draw apart */
static void copy_of_an_unseeded_state_draws_the_same_delays(void **state)
{
    (void)state;
    resil_retry_policy_t p = resil_retry_policy_default();
    p.max_attempts = 50;
    resil_retry_state_t a, b, c;
    assert_int_equal(resil_retry_state_init_at(&a, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_state_init_at(&c, &p, 0), RESIL_OK);
    b = a;
    int same = 0;
    for (int i = 0; i < 49; i++) {
        uint64_t da, db, dc;
        assert_int_equal(resil_retry_next_delay_at(&a, 0, RESIL_RETRY_FAILURE, NULL, &da),
                         RESIL_RETRY_GO);
        assert_int_equal(resil_retry_next_delay_at(&b, 0, RESIL_RETRY_FAILURE, NULL, &db),
                         RESIL_RETRY_GO);
        assert_int_equal(resil_retry_next_delay_at(&c, 0, RESIL_RETRY_FAILURE, NULL, &dc),
                         RESIL_RETRY_GO);
        assert_int_equal(da, db);
        same += da == dc;
    }
    assert_true(same < 3);
}

static void huge_attempts_and_bases_saturate_without_overflow(void **state)
{
    (void)state;
    const resil_jitter_kind kinds[] = {RESIL_JITTER_NONE, RESIL_JITTER_FULL, RESIL_JITTER_EQUAL,
                                       RESIL_JITTER_DECORRELATED, RESIL_JITTER_PROPORTIONAL};
    const resil_backoff_kind backoffs[] = {RESIL_BACKOFF_CONSTANT, RESIL_BACKOFF_LINEAR,
                                           RESIL_BACKOFF_EXPONENTIAL};
    const uint64_t bases[] = {1, UINT64_C(1) << 62, UINT64_C(1) << 63, UINT64_MAX};
    const uint64_t caps[] = {UINT64_C(1) << 63, UINT64_MAX};
    long checked = 0;
    for (int k = 0; k < 5; k++)
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 4; i++)
                for (int c = 0; c < 2; c++) {
                    if (bases[i] > caps[c])
                        continue;
                    resil_retry_policy_t p = resil_retry_policy_default();
                    p.jitter = kinds[k];
                    p.backoff = backoffs[b];
                    p.initial_delay_ns = bases[i];
                    p.increment_ns = UINT64_MAX;
                    p.multiplier = 1e6;
                    p.jitter_percent = 100;
                    p.max_delay_ns = caps[c];
                    p.max_attempts = 2000;
                    p.seed = 7;
                    resil_retry_state_t st;
                    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
                    uint64_t x;
                    uint32_t n = 0;
                    while (resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &x) ==
                           RESIL_RETRY_GO) {
                        assert_true(x <= p.max_delay_ns);
                        n++;
                        checked++;
                    }
                    assert_int_equal(n, 1999);
                }
    assert_true(checked > 100000);
}

/* ---- listener ------------------------------------------------------------ */

typedef struct {
    resil_retry_event_t ev[16];
    int n;
} listen_log;

static void on_retry(void *user, const resil_retry_event_t *ev)
{
    listen_log *l = user;
    if (l->n < 16)
        l->ev[l->n++] = *ev;
}

static void listener_hears_each_retry_before_it_happens(void **state)
{
    (void)state;
    listen_log log = {0};
    resil_retry_policy_t p = exact_policy();
    p.max_attempts = 3;
    p.on_retry = on_retry;
    p.on_retry_user = &log;
    resil_retry_state_t st;
    resil_retry_hint_t h = {RESIL_RETRY_HINT_AFTER, RESIL_MS(7)};
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_TIMEOUT, NULL, NULL),
                     RESIL_RETRY_GO);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, NULL),
                     RESIL_RETRY_GO);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, NULL),
                     RESIL_RETRY_STOP_ATTEMPTS);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.ev[0].attempt, 2);
    assert_int_equal(log.ev[0].delay_ns, RESIL_MS(100));
    assert_int_equal(log.ev[0].outcome, RESIL_RETRY_TIMEOUT);
    assert_int_equal(log.ev[0].pushback, 0);
    assert_int_equal(log.ev[1].attempt, 3);
    assert_int_equal(log.ev[1].delay_ns, RESIL_MS(7));
    assert_int_equal(log.ev[1].pushback, 1);
}

/* ---- executor ------------------------------------------------------------ */

typedef struct {
    int fail_first; /* attempts that fail before one succeeds */
    int result;     /* what a failing attempt returns */
    int calls;
    uint32_t attempts_seen[16];
    resil_retry_hint_t hint; /* given on every failure */
    resil_manual_clock_t *clock;
    uint64_t attempt_cost_ns; /* clock advance per attempt */
} op_ctx;

static int op(void *ctx, uint32_t attempt, resil_retry_hint_t *hint_out)
{
    op_ctx *o = ctx;
    assert_int_equal(hint_out->kind, RESIL_RETRY_HINT_NONE);
    if (o->calls < 16)
        o->attempts_seen[o->calls] = attempt;
    o->calls++;
    if (o->clock != NULL)
        resil_manual_clock_advance(o->clock, o->attempt_cost_ns);
    if (o->calls > o->fail_first)
        return 0;
    *hint_out = o->hint;
    return o->result;
}

static resil_retry_outcome classify(void *ctx, int result)
{
    (void)ctx;
    return result == 0     ? RESIL_RETRY_SUCCESS
           : result == 400 ? RESIL_RETRY_FINAL
           : result == 504 ? RESIL_RETRY_TIMEOUT
                           : RESIL_RETRY_FAILURE;
}

static void execute_retries_until_success_sleeping_exactly(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    resil_retry_policy_t p = exact_policy();
    p.clock = resil_manual_clock_as_clock(m);
    op_ctx o = {.fail_first = 3, .result = 503, .clock = m, .attempt_cost_ns = RESIL_MS(10)};
    resil_retry_result_t r;
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_OK);
    assert_int_equal(o.calls, 4);
    assert_int_equal(r.attempts, 4);
    assert_int_equal(r.last_result, 0);
    assert_int_equal(r.outcome, RESIL_RETRY_SUCCESS);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_SUCCEEDED);
    for (int i = 0; i < 4; i++)
        assert_int_equal(o.attempts_seen[i], i + 1);
    /* 4 attempts of 10 ms + sleeps of 100 + 200 + 400 ms */
    assert_int_equal(resil_manual_clock_get(m), RESIL_MS(740));
    resil_manual_clock_free(m);
}

static void execute_reports_each_way_of_stopping(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    resil_retry_policy_t p = exact_policy();
    p.clock = resil_manual_clock_as_clock(m);
    p.max_attempts = 4;
    resil_retry_result_t r;

    op_ctx o = {.fail_first = 100, .result = 503};
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_E_CALL_FAILED);
    assert_int_equal(r.attempts, 4);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_ATTEMPTS);
    assert_int_equal(r.last_result, 503);

    o = (op_ctx){.fail_first = 100, .result = 400};
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_E_CALL_FAILED);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_FINAL);
    assert_int_equal(r.outcome, RESIL_RETRY_FINAL);

    /* no classifier: nonzero is retryable */
    o = (op_ctx){.fail_first = 100, .result = 400};
    assert_int_equal(resil_retry_execute(&p, op, NULL, &o, &r), RESIL_E_CALL_FAILED);
    assert_int_equal(r.attempts, 4);

    o = (op_ctx){.fail_first = 100, .result = 503, .hint = {RESIL_RETRY_HINT_DO_NOT_RETRY, 0}};
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_E_CALL_FAILED);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_DO_NOT_RETRY);
    assert_int_equal(r.attempts, 1);

    uint64_t t0 = resil_manual_clock_get(m);
    o = (op_ctx){.fail_first = 1, .result = 503, .hint = {RESIL_RETRY_HINT_AFTER, RESIL_SEC(5)}};
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_OK);
    assert_int_equal(resil_manual_clock_get(m) - t0, RESIL_SEC(5));

    p.max_total_ns = RESIL_MS(250); /* 100 fits, 100 + 200 does not */
    o = (op_ctx){.fail_first = 100, .result = 504};
    t0 = resil_manual_clock_get(m);
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_E_DEADLINE_EXCEEDED);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_DEADLINE);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(resil_manual_clock_get(m) - t0, RESIL_MS(100));
    resil_manual_clock_free(m);
}

static resil_retry_outcome bad_classify(void *ctx, int result)
{
    (void)ctx;
    (void)result;
    return (resil_retry_outcome)77;
}

static void execute_rejects_bad_arguments_without_calling(void **state)
{
    (void)state;
    resil_retry_policy_t p = exact_policy();
    op_ctx o = {0};
    resil_retry_result_t r;
    assert_int_equal(resil_retry_execute(NULL, op, NULL, &o, &r), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_execute(&p, NULL, NULL, &o, &r), RESIL_E_INVALID_ARG);
    p.multiplier = NAN;
    assert_int_equal(resil_retry_execute(&p, op, NULL, &o, &r), RESIL_E_INVALID_CONFIG);
    assert_int_equal(o.calls, 0);
    p = exact_policy();
    o = (op_ctx){.fail_first = 5, .result = 1};
    assert_int_equal(resil_retry_execute(&p, op, bad_classify, &o, &r), RESIL_E_INVALID_ARG);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_INVALID_ARG);
    assert_int_equal(o.calls, 1);
}

static void execute_stops_when_the_budget_refuses(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    resil_retry_budget_config_t bc = resil_retry_budget_config_default();
    bc.max_tokens = 4; /* retries while tokens after the failure > 2 */
    resil_retry_budget_t *b;
    assert_int_equal(resil_retry_budget_new(&bc, &b), RESIL_OK);
    resil_retry_policy_t p = exact_policy();
    p.clock = resil_manual_clock_as_clock(m);
    p.max_attempts = 10;
    p.budget = b;
    op_ctx o = {.fail_first = 100, .result = 503};
    resil_retry_result_t r;
    /* failures take tokens 4 -> 3 (retry) -> 2 (refused) */
    assert_int_equal(resil_retry_execute(&p, op, classify, &o, &r), RESIL_E_BUDGET_EXHAUSTED);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.reason, RESIL_RETRY_STOP_BUDGET);
    resil_retry_budget_stats_t s;
    assert_int_equal(resil_retry_budget_stats(b, 0, &s), RESIL_OK);
    assert_int_equal(s.granted, 1);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.level_milli, 2000);
    resil_retry_budget_free(b);
    resil_manual_clock_free(m);
}

static void reason_names_and_statuses(void **state)
{
    (void)state;
    assert_string_equal(resil_retry_reason_name(RESIL_RETRY_GO), "go");
    assert_string_equal(resil_retry_reason_name(RESIL_RETRY_STOP_BUDGET), "budget_exhausted");
    assert_string_equal(resil_retry_reason_name(RESIL_RETRY_STOP_DEADLINE), "deadline");
    assert_string_equal(resil_retry_reason_name((resil_retry_reason)99), "unknown");
    assert_int_equal(resil_retry_reason_status(RESIL_RETRY_STOP_SUCCEEDED), RESIL_OK);
    assert_int_equal(resil_retry_reason_status(RESIL_RETRY_STOP_BUDGET), RESIL_E_BUDGET_EXHAUSTED);
    assert_int_equal(resil_retry_reason_status(RESIL_RETRY_STOP_DEADLINE),
                     RESIL_E_DEADLINE_EXCEEDED);
    assert_int_equal(resil_retry_reason_status(RESIL_RETRY_STOP_ATTEMPTS), RESIL_E_CALL_FAILED);
    assert_int_equal(resil_retry_reason_status((resil_retry_reason)99), RESIL_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exponential_schedule_doubles_up_to_the_cap),
        cmocka_unit_test(exponential_schedule_follows_the_formula),
        cmocka_unit_test(linear_and_constant_schedules_are_exact),
        cmocka_unit_test(one_attempt_never_retries),
        cmocka_unit_test(success_and_final_failure_stop),
        cmocka_unit_test(deadline_cuts_off_the_retry_that_would_start_past_it),
        cmocka_unit_test(deadline_near_uint64_max_saturates),
        cmocka_unit_test(deadline_past_uint64_max_still_holds),
        cmocka_unit_test(attempt_timeout_is_shortened_by_the_deadline),
        cmocka_unit_test(pushback_is_honoured_exactly_then_backoff_restarts),
        cmocka_unit_test(pushback_is_capped_and_bounded_by_the_deadline),
        cmocka_unit_test(do_not_retry_hint_stops_even_with_attempts_left),
        cmocka_unit_test(bad_arguments_stop_with_invalid_arg),
        cmocka_unit_test(each_bad_policy_field_is_named),
        cmocka_unit_test(full_jitter_is_uniform_below_d),
        cmocka_unit_test(equal_jitter_is_uniform_in_upper_half),
        cmocka_unit_test(proportional_jitter_is_plus_minus_twenty_percent),
        cmocka_unit_test(decorrelated_jitter_draws_between_base_and_three_times_previous),
        cmocka_unit_test(delays_near_the_cap_do_not_collapse_onto_it),
        cmocka_unit_test(same_seed_gives_same_delays),
        cmocka_unit_test(copy_of_an_unseeded_state_draws_the_same_delays),
        cmocka_unit_test(huge_attempts_and_bases_saturate_without_overflow),
        cmocka_unit_test(listener_hears_each_retry_before_it_happens),
        cmocka_unit_test(execute_retries_until_success_sleeping_exactly),
        cmocka_unit_test(execute_reports_each_way_of_stopping),
        cmocka_unit_test(execute_rejects_bad_arguments_without_calling),
        cmocka_unit_test(execute_stops_when_the_budget_refuses),
        cmocka_unit_test(reason_names_and_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
