/* Circuit breaker: exact transitions under a manual clock, every trip
 * signal, window kind and special state, and bad input. */
#include <stdlib.h>
#include <string.h>

#include "resil/breaker.h"
#include "support.h"

/* ---------------------------------------------------------------- fixture */

#define MAX_EVENTS 64

typedef struct fixture {
    resil_manual_clock_t *m;
    resil_breaker_t *b;
    resil_breaker_event_t ev[MAX_EVENTS];
    int n_ev;
} fixture;

static void on_event(void *user, const resil_breaker_event_t *e)
{
    fixture *f = user;
    if (f->n_ev < MAX_EVENTS)
        f->ev[f->n_ev] = *e;
    f->n_ev++;
}

static fixture *make_at(const resil_breaker_config_t *cfg, uint64_t start_ns)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(resil_manual_clock_new(start_ns, &f->m), RESIL_OK);
    resil_breaker_local_t local = {resil_manual_clock_as_clock(f->m), on_event, f, 42};
    assert_int_equal(resil_breaker_new(cfg, &local, &f->b), RESIL_OK);
    return f;
}

static fixture *make(const resil_breaker_config_t *cfg) { return make_at(cfg, RESIL_SEC(1000)); }

static void done(fixture *f)
{
    assert_int_equal(resil_breaker_check(f->b), RESIL_OK);
    resil_breaker_free(f->b);
    resil_manual_clock_free(f->m);
    free(f);
}

static void advance(fixture *f, uint64_t ns) { resil_manual_clock_advance(f->m, ns); }

/* One admitted call with @p outcome and @p duration; asserts admission. */
static resil_status call(fixture *f, resil_outcome outcome, uint64_t duration)
{
    resil_breaker_permit_t p;
    assert_int_equal(resil_breaker_acquire(f->b, &p), RESIL_OK);
    return resil_breaker_record(f->b, &p, outcome, duration);
}

static void succeedn(fixture *f, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(call(f, RESIL_OUTCOME_SUCCESS, RESIL_MS(1)), RESIL_OK);
}

static void failn(fixture *f, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(call(f, RESIL_OUTCOME_FAILURE, RESIL_MS(1)), RESIL_OK);
}

static resil_breaker_state cur(fixture *f) { return resil_breaker_state_get(f->b); }

static resil_status try_acquire(fixture *f, resil_breaker_permit_t *p)
{
    return resil_breaker_acquire(f->b, p);
}

static void expect_event(fixture *f, int i, resil_breaker_state from, resil_breaker_state to,
                         resil_breaker_reason why)
{
    assert_true(f->n_ev > i);
    assert_int_equal(f->ev[i].from, from);
    assert_int_equal(f->ev[i].to, to);
    assert_int_equal(f->ev[i].reason, why);
}

static resil_breaker_config_t small_count(uint32_t size, uint32_t min, uint32_t thr)
{
    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_size = size;
    c.minimum_calls = min;
    c.failure_rate_threshold = thr;
    c.open_wait_ns = RESIL_SEC(10);
    c.half_open_probes = 2;
    c.half_open_max_wait_ns = RESIL_SEC(5);
    return c;
}

/* ---------------------------------------------------------------- config */

static void defaults_match_the_documentation(void **state)
{
    (void)state;
    resil_breaker_config_t c = resil_breaker_config_default();
    assert_int_equal(c.window_kind, RESIL_WINDOW_COUNT);
    assert_int_equal(c.window_size, 100);
    assert_int_equal(c.minimum_calls, 100);
    assert_int_equal(c.failure_rate_threshold, 50);
    assert_int_equal(c.slow_rate_threshold, 0);
    assert_int_equal(c.slow_call_duration_ns, RESIL_SEC(60));
    assert_int_equal(c.consecutive_failures, 0);
    assert_int_equal(c.open_wait_ns, RESIL_SEC(60));
    assert_true(c.open_wait_multiplier == 1.0);
    assert_int_equal(c.half_open_probes, 10);
    assert_int_equal(c.half_open_max_wait_ns, RESIL_SEC(60));
    assert_int_equal(c.stripes, 4);
    assert_int_equal(c.window_duration_ns, RESIL_SEC(60));
    assert_int_equal(c.window_buckets, 10);
    assert_int_equal(resil_breaker_config_check(&c), RESIL_OK);
}

typedef struct bad_case {
    const char *field;
    void (*mutate)(resil_breaker_config_t *);
} bad_case;

#define BAD(name, body)                                                                            \
    static void name(resil_breaker_config_t *c) { body; }
BAD(rate_0_all_off, { c->failure_rate_threshold = 0; })
BAD(rate_101, { c->failure_rate_threshold = 101; })
BAD(slow_rate_101, { c->slow_rate_threshold = 101; })
BAD(window_0, { c->window_size = 0; })
BAD(window_huge, { c->window_size = RESIL_BREAKER_MAX_WINDOW + 1; })
BAD(min_over_window, { c->minimum_calls = 101; })
BAD(min_0, { c->minimum_calls = 0; })
BAD(probes_0, { c->half_open_probes = 0; })
BAD(probes_huge, { c->half_open_probes = RESIL_BREAKER_MAX_PROBES + 1; })
BAD(wait_0, { c->open_wait_ns = 0; })
BAD(wait_huge, { c->open_wait_ns = RESIL_BREAKER_MAX_WAIT_NS + 1; })
BAD(wait_overflow, { c->open_wait_ns = UINT64_MAX; })
BAD(mult_nan, { c->open_wait_multiplier = 0.0 / 0.0; })
BAD(mult_small, { c->open_wait_multiplier = 0.5; })
BAD(cap_below_wait, { c->open_wait_max_ns = RESIL_SEC(1); })
BAD(jitter_101, { c->open_wait_jitter_percent = 101; })
BAD(half_wait_0, { c->half_open_max_wait_ns = 0; })
BAD(half_wait_overflow, { c->half_open_max_wait_ns = UINT64_MAX; })
BAD(stripes_3, { c->stripes = 3; })
BAD(stripes_0, { c->stripes = 0; })
BAD(slow_duration_0, { c->slow_call_duration_ns = 0; })
BAD(kind_9, { c->window_kind = (resil_window_kind)9; })
BAD(buckets_not_dividing, {
    c->window_kind = RESIL_WINDOW_TIME;
    c->window_duration_ns = RESIL_SEC(10);
    c->window_buckets = 3;
})
BAD(buckets_0, {
    c->window_kind = RESIL_WINDOW_TIME;
    c->window_buckets = 0;
})
BAD(buckets_huge, {
    c->window_kind = RESIL_WINDOW_TIME;
    c->window_buckets = RESIL_BREAKER_MAX_BUCKETS + 1;
})
BAD(mult_huge, { c->open_wait_multiplier = 100.5; })
BAD(cap_huge, { c->open_wait_max_ns = RESIL_BREAKER_MAX_WAIT_NS + 1; })
BAD(stripes_huge, { c->stripes = RESIL_BREAKER_MAX_STRIPES * 2; })
BAD(duration_0, {
    c->window_kind = RESIL_WINDOW_TIME;
    c->window_duration_ns = 0;
})

static void invalid_config_is_rejected_naming_the_field(void **state)
{
    (void)state;
    const bad_case cases[] = {
        {"breaker.failure_rate_threshold", rate_0_all_off},
        {"breaker.failure_rate_threshold", rate_101},
        {"breaker.slow_rate_threshold", slow_rate_101},
        {"breaker.window_size", window_0},
        {"breaker.window_size", window_huge},
        {"breaker.minimum_calls", min_over_window},
        {"breaker.minimum_calls", min_0},
        {"breaker.half_open_probes", probes_0},
        {"breaker.half_open_probes", probes_huge},
        {"breaker.open_wait_ns", wait_0},
        {"breaker.open_wait_ns", wait_huge},
        {"breaker.open_wait_ns", wait_overflow},
        {"breaker.open_wait_multiplier", mult_nan},
        {"breaker.open_wait_multiplier", mult_small},
        {"breaker.open_wait_max_ns", cap_below_wait},
        {"breaker.open_wait_jitter_percent", jitter_101},
        {"breaker.half_open_max_wait_ns", half_wait_0},
        {"breaker.half_open_max_wait_ns", half_wait_overflow},
        {"breaker.stripes", stripes_3},
        {"breaker.stripes", stripes_0},
        {"breaker.slow_call_duration_ns", slow_duration_0},
        {"breaker.window_kind", kind_9},
        {"breaker.window_buckets", buckets_not_dividing},
        {"breaker.window_buckets", buckets_0},
        {"breaker.window_duration_ns", duration_0},
        {"breaker.window_buckets", buckets_huge},
        {"breaker.open_wait_multiplier", mult_huge},
        {"breaker.open_wait_max_ns", cap_huge},
        {"breaker.stripes", stripes_huge},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resil_breaker_config_t c = resil_breaker_config_default();
        cases[i].mutate(&c);
        assert_int_equal(resil_breaker_config_check(&c), RESIL_E_INVALID_CONFIG);
        const char *d = resil_status_detail();
        if (strncmp(d, cases[i].field, strlen(cases[i].field)) != 0)
            fail_msg("case %zu: detail '%s' does not name %s", i, d, cases[i].field);
        assert_int_equal(resil_breaker_size(&c), 0);
        resil_breaker_t *b = (resil_breaker_t *)&c;
        assert_int_equal(resil_breaker_new(&c, NULL, &b), RESIL_E_INVALID_CONFIG);
        assert_null(b);
    }
    assert_int_equal(resil_breaker_config_check(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_size(NULL), 0);
}

/* ---------------------------------------------------------------- count window */

static void failure_rate_trips_exactly_at_minimum_calls(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(10, 10, 50);
    fixture *f = make(&c);
    failn(f, 5);
    succeedn(f, 4); /* 9 calls, 5 failures: 55% but below the minimum */
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    resil_breaker_stats_t s;
    assert_int_equal(resil_breaker_stats(f->b, &s), RESIL_OK);
    assert_int_equal(s.window_calls, 9);
    assert_int_equal(s.window_failures, 5);
    assert_true(s.failure_rate == -1.0);
    succeedn(f, 1); /* a success never trips: 10 calls, 50% */
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_stats(f->b, &s), RESIL_OK);
    assert_true(s.failure_rate == 50.0);
    failn(f, 1); /* window: the oldest failure left, this one came: still 5/10 */
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    assert_int_equal(f->n_ev, 1);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_FAILURE_RATE);
    assert_int_equal(f->ev[0].open_until_ns, RESIL_SEC(1010));
    done(f);
}

static void count_window_forgets_the_oldest_call(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(4, 4, 50);
    fixture *f = make(&c);
    failn(f, 1);
    succeedn(f, 3); /* F S S S: 25% */
    succeedn(f, 1); /* S S S S: the failure slid out */
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 4);
    assert_int_equal(s.window_failures, 0);
    failn(f, 1); /* S S S F: 25% */
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    failn(f, 1); /* S S F F: 50% */
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    done(f);
}

static void slow_calls_trip_the_slow_rate(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(4, 4, 0);
    c.slow_rate_threshold = 50;
    c.slow_call_duration_ns = RESIL_MS(100);
    fixture *f = make(&c);
    assert_int_equal(call(f, RESIL_OUTCOME_SUCCESS, RESIL_MS(100)), RESIL_OK); /* not > 100 ms */
    assert_int_equal(call(f, RESIL_OUTCOME_SUCCESS, RESIL_MS(101)), RESIL_OK); /* slow success */
    succeedn(f, 1);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED); /* 3 calls, below minimum */
    assert_int_equal(call(f, RESIL_OUTCOME_FAILURE, RESIL_SEC(1)), RESIL_OK); /* slow failure */
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_SLOW_RATE);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.successes, 3);
    assert_int_equal(s.failures, 1);
    assert_int_equal(s.slow_calls, 2);
    done(f);
}

static void consecutive_failures_trip_regardless_of_minimum(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(100, 100, 0);
    c.consecutive_failures = 3;
    fixture *f = make(&c);
    failn(f, 2);
    succeedn(f, 1); /* the run restarts */
    failn(f, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.consecutive_failures, 2);
    failn(f, 1);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_CONSECUTIVE);
    done(f);
}

/* ---------------------------------------------------------------- open and half-open */

static void open_rejects_until_the_wait_ends_then_half_opens_lazily(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    failn(f, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(p.retry_after_ns, RESIL_SEC(10));
    advance(f, RESIL_SEC(10) - 1);
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(p.retry_after_ns, 1);
    advance(f, 1);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);   /* no timer: nothing happens by itself */
    assert_int_equal(try_acquire(f, &p), RESIL_OK); /* first probe */
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
    expect_event(f, 1, RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN,
                 RESIL_BREAKER_REASON_WAIT_ELAPSED);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.rejected_open, 2);
    done(f);
}

static void half_open_admits_exactly_k_probes_and_closes_when_they_pass(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 3;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(try_acquire(f, &p[i]), RESIL_OK);
    assert_int_equal(try_acquire(f, &p[3]), RESIL_E_HALF_OPEN_FULL);
    assert_int_equal(p[3].retry_after_ns, RESIL_SEC(5)); /* until the probe deadline */
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.probes_issued, 3);
    assert_int_equal(s.probes_completed, 0);
    assert_int_equal(resil_breaker_record(f->b, &p[0], RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p[1], RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(try_acquire(f, &p[3]), RESIL_E_HALF_OPEN_FULL); /* still K issued */
    assert_int_equal(resil_breaker_record(f->b, &p[2], RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_CLOSED,
                 RESIL_BREAKER_REASON_PROBES_PASSED);
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 0); /* a fresh window */
    assert_int_equal(s.rejected_half_open, 2);
    done(f);
}

static void half_open_reopens_as_soon_as_probes_reach_the_threshold(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 4;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(try_acquire(f, &p[i]), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p[0], RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN); /* 1 of 4 failed: 25% so far */
    assert_int_equal(resil_breaker_record(f->b, &p[1], RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN); /* 2 of 4 = 50% whatever the rest do */
    expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                 RESIL_BREAKER_REASON_PROBES_FAILED);
    /* the remaining probes belong to a finished generation */
    assert_int_equal(resil_breaker_record(f->b, &p[2], RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    assert_int_equal(resil_breaker_record(f->b, &p[3], RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.stale, 2);
    done(f);
}

static void probes_that_never_report_cannot_leave_it_half_open(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p[3];
    assert_int_equal(try_acquire(f, &p[0]), RESIL_OK);
    assert_int_equal(try_acquire(f, &p[1]), RESIL_OK); /* both probes taken, owners vanish */
    advance(f, RESIL_SEC(5) - 1);
    assert_int_equal(try_acquire(f, &p[2]), RESIL_E_HALF_OPEN_FULL);
    advance(f, 1); /* the probe deadline passes */
    assert_int_equal(try_acquire(f, &p[2]), RESIL_E_BREAKER_OPEN);
    expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                 RESIL_BREAKER_REASON_PROBE_TIMEOUT);
    assert_int_equal(p[2].retry_after_ns, RESIL_SEC(10));
    /* the late owners' reports change nothing */
    assert_int_equal(resil_breaker_record(f->b, &p[0], RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    assert_int_equal(resil_breaker_record(f->b, &p[1], RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    done(f);
}

static void ignored_probe_hands_its_slot_back(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p, q;
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(try_acquire(f, &q), RESIL_E_HALF_OPEN_FULL);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_IGNORED, 1), RESIL_OK);
    assert_int_equal(try_acquire(f, &q), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &q, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.ignored, 1);
    done(f);
}

static void consecutive_only_breaker_reopens_on_first_failed_probe(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(10, 10, 0);
    c.consecutive_failures = 2;
    c.half_open_probes = 3;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p[2];
    assert_int_equal(try_acquire(f, &p[0]), RESIL_OK);
    assert_int_equal(try_acquire(f, &p[1]), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p[0], RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p[1], RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                 RESIL_BREAKER_REASON_PROBES_FAILED);
    done(f);
}

static void open_wait_grows_to_its_cap_and_resets_after_close(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    c.open_wait_multiplier = 2.0;
    c.open_wait_max_ns = RESIL_SEC(40);
    fixture *f = make(&c);
    const uint64_t expect[] = {RESIL_SEC(10), RESIL_SEC(20), RESIL_SEC(40), RESIL_SEC(40)};
    failn(f, 2);
    resil_breaker_permit_t p;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
        assert_int_equal(p.retry_after_ns, expect[i]);
        advance(f, expect[i]);
        assert_int_equal(try_acquire(f, &p), RESIL_OK);
        assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    }
    /* a probe that passes closes it, and the growth starts over */
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    advance(f, RESIL_SEC(40));
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    failn(f, 2);
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(p.retry_after_ns, RESIL_SEC(10));
    done(f);
}

static void jittered_waits_stay_in_bounds_and_repeat_for_a_seed(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(1, 1, 50);
    c.half_open_probes = 1;
    c.open_wait_jitter_percent = 20;
    uint64_t first[50];
    for (int run = 0; run < 2; run++) {
        fixture *f = make(&c); /* same seed (42) both runs */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 50; i++) {
            failn(f, 1);
            resil_breaker_permit_t p;
            assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
            uint64_t w = p.retry_after_ns;
            assert_true(w >= RESIL_SEC(8) && w <= RESIL_SEC(12));
            if (run == 0)
                first[i] = w;
            else
                assert_int_equal(w, first[i]);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
            advance(f, w);
            assert_int_equal(try_acquire(f, &p), RESIL_OK);
            assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
        }
        assert_true(hi - lo > RESIL_SEC(2)); /* they really spread */
        done(f);
    }
}

/* Waits the breaker announces for its next probe, over @p n failed probes
 * (K = 1) after the first trip. */
static void expect_open_waits(fixture *f, const uint64_t *expect, int n)
{
    resil_breaker_permit_t p;
    for (int i = 0; i < n; i++) {
        assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
        assert_int_equal(p.retry_after_ns, expect[i]);
        advance(f, expect[i]);
        assert_int_equal(try_acquire(f, &p), RESIL_OK);
        assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    }
}

/* open_wait_max_ns = 0 means RESIL_BREAKER_MAX_WAIT_NS once the wait may
 * grow, and open_wait_ns while it may not. */
static void without_a_cap_the_wait_grows_to_five_days_or_stays(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    c.open_wait_multiplier = 100.0;
    fixture *f = make(&c);
    failn(f, 2);
    const uint64_t grows[] = {RESIL_SEC(10), RESIL_SEC(1000), RESIL_SEC(100000),
                              RESIL_BREAKER_MAX_WAIT_NS, RESIL_BREAKER_MAX_WAIT_NS};
    expect_open_waits(f, grows, 5);
    done(f);
    c.open_wait_multiplier = 1.0;
    f = make(&c);
    failn(f, 2);
    const uint64_t stays[] = {RESIL_SEC(10), RESIL_SEC(10), RESIL_SEC(10)};
    expect_open_waits(f, stays, 3);
    done(f);
}

/* Jitter of 100% around 1 us would draw waits down to 0: the wait never
 * goes below the 1 us minimum of open_wait_ns. */
static void jittered_wait_never_drops_below_one_microsecond(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(1, 1, 50);
    c.half_open_probes = 1;
    c.open_wait_ns = RESIL_US(1);
    c.open_wait_jitter_percent = 100;
    fixture *f = make(&c);
    int at_floor = 0;
    for (int i = 0; i < 40; i++) {
        failn(f, 1);
        resil_breaker_permit_t p;
        assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
        assert_true(p.retry_after_ns >= RESIL_US(1) && p.retry_after_ns <= RESIL_US(2));
        at_floor += p.retry_after_ns == RESIL_US(1);
        advance(f, p.retry_after_ns);
        assert_int_equal(try_acquire(f, &p), RESIL_OK);
        assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    }
    assert_true(at_floor > 5); /* about half the draws fall below 1 us */
    done(f);
}

/* Slow calls count as slow, but with slow_rate_threshold 0 they never trip
 * the breaker, however many. */
static void slow_successes_never_trip_without_a_slow_threshold(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(4, 4, 50);
    c.slow_call_duration_ns = RESIL_MS(1);
    fixture *f = make(&c);
    for (int i = 0; i < 8; i++)
        assert_int_equal(call(f, RESIL_OUTCOME_SUCCESS, RESIL_MS(5)), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.slow_calls, 8);
    assert_int_equal(s.window_calls, 4);
    assert_int_equal(f->n_ev, 0);
    done(f);
}

/* Operator states win over a server's Retry-After; a second metrics_only
 * (even while it would be open) changes nothing. */
static void operator_states_refuse_open_until(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    uint64_t later = resil_manual_clock_get(f->m) + RESIL_SEC(30);
    assert_int_equal(resil_breaker_disable(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_open_until(f->b, later), RESIL_E_STATE);
    assert_int_equal(cur(f), RESIL_BREAKER_DISABLED);
    assert_int_equal(resil_breaker_force_open(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_open_until(f->b, later), RESIL_E_STATE);
    assert_int_equal(cur(f), RESIL_BREAKER_FORCED_OPEN);
    assert_int_equal(resil_breaker_metrics_only(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_open_until(f->b, later), RESIL_E_STATE);
    assert_string_equal(resil_status_detail(), "breaker_open_until: breaker is METRICS_ONLY");
    int events = f->n_ev;
    failn(f, 2); /* would open: still admits */
    assert_int_equal(cur(f), RESIL_BREAKER_METRICS_ONLY);
    events = f->n_ev;
    assert_int_equal(resil_breaker_metrics_only(f->b), RESIL_OK);
    assert_int_equal(f->n_ev, events);
    assert_int_equal(cur(f), RESIL_BREAKER_METRICS_ONLY);
    assert_int_equal(resil_breaker_reset(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_open_until(f->b, later), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    done(f);
}

/* ---------------------------------------------------------------- permits */

static void outcome_from_an_older_generation_does_not_count(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    resil_breaker_permit_t early;
    assert_int_equal(try_acquire(f, &early), RESIL_OK);
    failn(f, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    assert_int_equal(resil_breaker_record(f->b, &early, RESIL_OUTCOME_FAILURE, 1), RESIL_E_STALE);
    assert_int_equal(resil_breaker_reset(f->b), RESIL_OK);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 0);
    assert_int_equal(s.stale, 1);
    assert_int_equal(s.failures, 2);
    done(f);
}

static void bad_permits_are_refused_and_count_nothing(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(10, 10, 50);
    fixture *f = make(&c);
    fixture *g = make(&c);
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(g->b, &p, RESIL_OUTCOME_FAILURE, 1),
                     RESIL_E_INVALID_ARG); /* foreign */
    assert_non_null(strstr(resil_status_detail(), "another breaker"));
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_FAILURE, 1),
                     RESIL_E_INVALID_ARG); /* twice */
    assert_non_null(strstr(resil_status_detail(), "already reported"));
    resil_breaker_permit_t zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(resil_breaker_record(f->b, &zero, RESIL_OUTCOME_SUCCESS, 1),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, (resil_outcome)7, 1), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.failures, 1);
    assert_int_equal(s.successes, 1);
    resil_breaker_stats(g->b, &s);
    assert_int_equal(s.failures + s.successes, 0);
    done(g);
    done(f);
}

static void rejected_permit_cannot_be_reported(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(1, 1, 50);
    fixture *f = make(&c);
    failn(f, 1);
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_E_INVALID_ARG);
    done(f);
}

static void null_arguments_get_invalid_argument(void **state)
{
    (void)state;
    resil_breaker_permit_t p;
    resil_breaker_stats_t s;
    resil_breaker_config_t c = resil_breaker_config_default();
    assert_int_equal(resil_breaker_acquire(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_acquire_at(NULL, 0, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_record(NULL, &p, RESIL_OUTCOME_SUCCESS, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_record_at(NULL, &p, RESIL_OUTCOME_SUCCESS, 0, 0),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_execute(NULL, NULL, NULL, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_stats(NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_check(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_force_open(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_disable(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_metrics_only(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_reset(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_open_until(NULL, 1), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_state_get(NULL), RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_new(&c, NULL, NULL), RESIL_E_INVALID_ARG);
    resil_breaker_t *b = NULL;
    assert_int_equal(resil_breaker_new(NULL, NULL, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_attach(NULL, 0, NULL, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_attach(NULL, 0, NULL, NULL), RESIL_E_INVALID_ARG);
    resil_breaker_free(NULL);
    fixture *f = make(&c);
    assert_int_equal(resil_breaker_acquire(f->b, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_record(f->b, NULL, RESIL_OUTCOME_SUCCESS, 0),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_acquire_at(f->b, 0, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_record_at(f->b, NULL, RESIL_OUTCOME_SUCCESS, 0, 0),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_permit_is_probe(NULL), 0);
    assert_int_equal(resil_breaker_permit_generation(NULL), 0);
    assert_int_equal(resil_breaker_stats(f->b, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_execute(f->b, NULL, NULL, NULL), RESIL_E_INVALID_ARG);
    assert_string_equal(resil_breaker_state_name((resil_breaker_state)17), "UNKNOWN");
    assert_string_equal(resil_breaker_state_name(RESIL_BREAKER_HALF_OPEN), "HALF_OPEN");
    done(f);
}

/* ---------------------------------------------------------------- special states */

static void disabled_admits_everything_and_records_nothing(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    assert_int_equal(resil_breaker_disable(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_disable(f->b), RESIL_OK); /* no second transition */
    assert_int_equal(f->n_ev, 1);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_DISABLED, RESIL_BREAKER_REASON_MANUAL);
    failn(f, 50);
    assert_int_equal(cur(f), RESIL_BREAKER_DISABLED);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.failures, 0);
    done(f);
}

static void forced_open_rejects_everything_until_reset(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    assert_int_equal(resil_breaker_force_open(f->b), RESIL_OK);
    resil_breaker_permit_t p;
    advance(f, RESIL_SEC(86400));
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_FORCED_OPEN);
    assert_int_equal(p.retry_after_ns, UINT64_MAX);
    assert_int_equal(resil_breaker_open_until(f->b, RESIL_SEC(100000)), RESIL_E_STATE);
    assert_int_equal(resil_breaker_reset(f->b), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    succeedn(f, 1);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.rejected_forced, 1);
    assert_int_equal(s.transitions, 2);
    done(f);
}

static void metrics_only_never_rejects_but_reports_what_it_would_do(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    fixture *f = make(&c);
    assert_int_equal(resil_breaker_metrics_only(f->b), RESIL_OK);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_METRICS_ONLY,
                 RESIL_BREAKER_REASON_MANUAL);
    failn(f, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_METRICS_ONLY);
    expect_event(f, 1, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_FAILURE_RATE);
    assert_int_equal(f->ev[1].shadow, 1);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.inner_state, RESIL_BREAKER_OPEN);
    failn(f, 5); /* admitted although "open"; not counted */
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.rejected_open, 0);
    assert_int_equal(s.ignored, 5);
    advance(f, RESIL_SEC(10));
    succeedn(f, 1); /* the shadow probe passes */
    expect_event(f, 2, RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN,
                 RESIL_BREAKER_REASON_WAIT_ELAPSED);
    expect_event(f, 3, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_CLOSED,
                 RESIL_BREAKER_REASON_PROBES_PASSED);
    assert_int_equal(cur(f), RESIL_BREAKER_METRICS_ONLY);
    assert_int_equal(resil_breaker_reset(f->b), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    done(f);
}

static void open_until_follows_the_servers_hint(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    uint64_t now = resil_manual_clock_get(f->m);
    assert_int_equal(resil_breaker_open_until(f->b, now + RESIL_SEC(30)), RESIL_OK);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_OPEN_UNTIL);
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(p.retry_after_ns, RESIL_SEC(30));
    /* an earlier deadline does not shorten it; a later one extends it */
    assert_int_equal(resil_breaker_open_until(f->b, now + RESIL_SEC(5)), RESIL_OK);
    assert_int_equal(f->n_ev, 1);
    assert_int_equal(resil_breaker_open_until(f->b, now + RESIL_SEC(45)), RESIL_OK);
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(p.retry_after_ns, RESIL_SEC(45));
    assert_int_equal(resil_breaker_open_until(f->b, now + RESIL_BREAKER_MAX_WAIT_NS + 1),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_open_until(f->b, now - 1), RESIL_OK); /* past: no-op */
    advance(f, RESIL_SEC(45));
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
    done(f);
}

/* ---------------------------------------------------------------- time window */

static resil_breaker_config_t small_time(void)
{
    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_kind = RESIL_WINDOW_TIME;
    c.window_duration_ns = RESIL_SEC(10);
    c.window_buckets = 10;
    c.minimum_calls = 4;
    c.failure_rate_threshold = 50;
    c.open_wait_ns = RESIL_SEC(5);
    c.half_open_probes = 1;
    return c;
}

static void time_window_drops_whole_buckets_as_time_passes(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_time();
    fixture *f = make(&c); /* clock at 1000 s: a bucket boundary */
    failn(f, 1);
    advance(f, RESIL_SEC(1));
    succeedn(f, 2);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 3);
    assert_int_equal(s.window_failures, 1);
    advance(f, RESIL_SEC(9) - 1); /* 1009.999999999 s: bucket 1000 s is still in */
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_failures, 1);
    advance(f, 1); /* 1010 s: the first bucket rolls out */
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 2);
    assert_int_equal(s.window_failures, 0);
    failn(f, 1); /* 3 calls: under the minimum */
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    failn(f, 1); /* 4 calls, 2 failures: 50% */
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.failures, 3);
    assert_int_equal(s.successes, 2);
    done(f);
}

static void time_window_starts_empty_after_closing(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_time();
    fixture *f = make(&c);
    failn(f, 4);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    advance(f, RESIL_SEC(5)); /* within the same 10 s window as the failures */
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    failn(f, 1); /* the old failures must not count */
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 1);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    done(f);
}

/* ---------------------------------------------------------------- execute and clock */

typedef struct slow_call {
    resil_manual_clock_t *m;
    uint64_t takes;
    resil_outcome outcome;
    int calls;
} slow_call;

static resil_outcome run_slow(void *ctx)
{
    slow_call *s = ctx;
    s->calls++;
    resil_manual_clock_advance(s->m, s->takes);
    return s->outcome;
}

static void execute_measures_the_call_on_the_handles_clock(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 0);
    c.slow_rate_threshold = 100;
    c.slow_call_duration_ns = RESIL_MS(50);
    fixture *f = make(&c);
    slow_call sc = {f->m, RESIL_MS(80), RESIL_OUTCOME_SUCCESS, 0};
    resil_outcome o = RESIL_OUTCOME_FAILURE;
    assert_int_equal(resil_breaker_execute(f->b, run_slow, &sc, &o), RESIL_OK);
    assert_int_equal(o, RESIL_OUTCOME_SUCCESS);
    sc.outcome = RESIL_OUTCOME_FAILURE;
    assert_int_equal(resil_breaker_execute(f->b, run_slow, &sc, &o), RESIL_E_CALL_FAILED);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN); /* both slow: 100% */
    assert_int_equal(resil_breaker_execute(f->b, run_slow, &sc, &o), RESIL_E_BREAKER_OPEN);
    assert_int_equal(sc.calls, 2); /* not run when rejected */
    done(f);
}

static void clock_that_steps_back_or_jumps_never_breaks_it(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    failn(f, 2);
    resil_breaker_permit_t p;
    resil_manual_clock_set(f->m, RESIL_SEC(1)); /* 999 s back */
    assert_int_equal(try_acquire(f, &p), RESIL_E_BREAKER_OPEN);
    assert_true(p.retry_after_ns > RESIL_SEC(10));       /* still open, and longer */
    resil_manual_clock_set(f->m, RESIL_SEC(1000000000)); /* 31 years ahead */
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);
    resil_manual_clock_set(f->m, UINT64_MAX - RESIL_SEC(1));
    failn(f, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    resil_manual_clock_set(f->m, UINT64_MAX);
    assert_int_equal(try_acquire(f, &p), RESIL_OK); /* saturated deadline reached */
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
    done(f);
}

static void listener_sees_each_transition_once_in_order(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    failn(f, 1); /* probe fails */
    advance(f, RESIL_SEC(10));
    succeedn(f, 1); /* probe passes */
    assert_int_equal(f->n_ev, 5);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_FAILURE_RATE);
    expect_event(f, 1, RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN,
                 RESIL_BREAKER_REASON_WAIT_ELAPSED);
    expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                 RESIL_BREAKER_REASON_PROBES_FAILED);
    expect_event(f, 3, RESIL_BREAKER_OPEN, RESIL_BREAKER_HALF_OPEN,
                 RESIL_BREAKER_REASON_WAIT_ELAPSED);
    expect_event(f, 4, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_CLOSED,
                 RESIL_BREAKER_REASON_PROBES_PASSED);
    for (int i = 1; i < 5; i++)
        assert_int_equal(f->ev[i].generation, (f->ev[i - 1].generation + 1) & 0xffff);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.transitions, 5);
    assert_int_equal(s.opens, 2);
    done(f);
}

/* ---------------------------------------------------------------- edges */

/* A probe granted in one HALF_OPEN period and reported in a later one
 * (the breaker reopened, or its probe deadline passed, meanwhile) is stale
 * and counts toward neither period. */
static void probe_from_an_earlier_half_open_period_is_stale(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50); /* K = 2, 10 s open, 5 s probing */
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p1, p2, p3, p4;
    assert_int_equal(try_acquire(f, &p1), RESIL_OK);
    assert_int_equal(try_acquire(f, &p2), RESIL_OK);
    assert_true(resil_breaker_permit_is_probe(&p2));
    assert_int_equal(resil_breaker_record(f->b, &p1, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN); /* 1 of 2 probes failed: 50% */
    advance(f, RESIL_SEC(10));
    assert_int_equal(try_acquire(f, &p3), RESIL_OK);
    assert_int_not_equal(resil_breaker_permit_generation(&p3),
                         resil_breaker_permit_generation(&p2));
    assert_int_equal(resil_breaker_record(f->b, &p2, RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.probes_issued, 1);
    assert_int_equal(s.probes_completed, 0);
    assert_int_equal(s.stale, 1);
    /* the deadline passes with p3 and p4 out: both are void */
    assert_int_equal(try_acquire(f, &p4), RESIL_OK);
    advance(f, RESIL_SEC(5));
    assert_int_equal(try_acquire(f, &p1), RESIL_E_BREAKER_OPEN);
    assert_int_equal(resil_breaker_permit_generation(&p1), 0); /* a rejection grants nothing */
    assert_false(resil_breaker_permit_is_probe(&p1));
    assert_int_equal(resil_breaker_record(f->b, &p3, RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    assert_int_equal(resil_breaker_record(f->b, &p4, RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.stale, 3);
    assert_int_equal(s.successes, 0);
    done(f);
}

/* With a rate threshold as well (failure or slow), a HALF_OPEN breaker
 * reopens once consecutive_failures probes have failed, before the rate
 * over all K probes is known; fewer failed probes leave it probing. */
static void failed_probes_reaching_the_consecutive_limit_reopen(void **state)
{
    (void)state;
    for (int slow_signal = 0; slow_signal < 2; slow_signal++) {
        resil_breaker_config_t c = small_count(4, 4, slow_signal ? 0 : 100);
        c.slow_rate_threshold = slow_signal ? 100 : 0; /* the rate needs all 4 */
        c.half_open_probes = 4;
        c.consecutive_failures = 2;
        fixture *f = make(&c);
        failn(f, 2);
        expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN,
                     RESIL_BREAKER_REASON_CONSECUTIVE);
        advance(f, RESIL_SEC(10));
        resil_breaker_permit_t p[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(try_acquire(f, &p[i]), RESIL_OK);
        assert_int_equal(resil_breaker_record(f->b, &p[0], RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
        assert_int_equal(resil_breaker_record(f->b, &p[1], RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
        assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
        assert_int_equal(resil_breaker_record(f->b, &p[2], RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
        assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
        expect_event(f, 2, RESIL_BREAKER_HALF_OPEN, RESIL_BREAKER_OPEN,
                     RESIL_BREAKER_REASON_PROBES_FAILED);
        assert_int_equal(resil_breaker_record(f->b, &p[3], RESIL_OUTCOME_SUCCESS, 1),
                         RESIL_E_STALE);
        done(f);
    }
}

static void a_copied_probe_permit_counts_once(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 2;
    fixture *f = make(&c);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t p, copy;
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    copy = p; /* the caller duplicated the value */
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &copy, RESIL_OUTCOME_SUCCESS, 1), RESIL_E_STALE);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.probes_completed, 1); /* one probe issued, one outcome */
    assert_int_equal(cur(f), RESIL_BREAKER_HALF_OPEN);
    done(f);
}

static resil_outcome garbage(void *ctx)
{
    (void)ctx;
    return (resil_outcome)99;
}

static void execute_treats_a_garbage_outcome_as_failure(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    fixture *f = make(&c);
    resil_outcome o;
    assert_int_equal(resil_breaker_execute(f->b, garbage, NULL, &o), RESIL_E_CALL_FAILED);
    assert_int_equal(o, 99); /* what the callback said, untouched */
    assert_int_equal(resil_breaker_execute(f->b, garbage, NULL, NULL), RESIL_E_CALL_FAILED);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    done(f);
}

static void shadow_mode_admits_past_k_probes_and_is_entered_once(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(2, 2, 50);
    c.half_open_probes = 1;
    fixture *f = make(&c);
    assert_int_equal(resil_breaker_metrics_only(f->b), RESIL_OK);
    assert_int_equal(resil_breaker_metrics_only(f->b), RESIL_OK);
    assert_int_equal(f->n_ev, 1);
    failn(f, 2);
    advance(f, RESIL_SEC(10));
    resil_breaker_permit_t probe, extra;
    assert_int_equal(try_acquire(f, &probe), RESIL_OK);
    assert_true(resil_breaker_permit_is_probe(&probe));
    assert_int_equal(try_acquire(f, &extra), RESIL_OK); /* would be HALF_OPEN_FULL */
    assert_false(resil_breaker_permit_is_probe(&extra));
    assert_int_equal(resil_breaker_record(f->b, &extra, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &probe, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.inner_state, RESIL_BREAKER_CLOSED); /* the extra call did not count */
    assert_int_equal(resil_breaker_open_until(f->b, RESIL_SEC(2000)), RESIL_E_STATE);
    done(f);
}

static void time_window_probe_failure_reopens(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_time();
    c.slow_rate_threshold = 50;
    c.slow_call_duration_ns = RESIL_MS(100);
    fixture *f = make(&c);
    failn(f, 4);
    advance(f, RESIL_SEC(5));
    resil_breaker_permit_t p;
    assert_int_equal(try_acquire(f, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(f->b, &p, RESIL_OUTCOME_FAILURE, RESIL_SEC(1)), RESIL_OK);
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.failures, 5);
    assert_int_equal(s.slow_calls, 1);
    assert_int_equal(s.opens, 2);
    done(f);
}

/* ---------------------------------------------------------------- memory */

/* One admitted call at @p now with @p outcome taking @p duration, all with
 * explicit times; the handle's clock (for stats) is set to @p now too. */
static void call_at(fixture *f, uint64_t now, resil_outcome outcome, uint64_t duration)
{
    resil_manual_clock_set(f->m, now);
    resil_breaker_permit_t p;
    assert_int_equal(resil_breaker_acquire_at(f->b, now, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record_at(f->b, &p, outcome, duration, now), RESIL_OK);
}

/* A time window with a clock that starts at 0 (fewer seconds than the
 * window has buckets), explicit times, and the slow signal: slow successes
 * and slow failures land in their buckets, the slow rate trips it, and
 * probes count slow and failed outcomes in the lifetime totals. */
static void time_window_counts_slow_calls_from_time_zero(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_time(); /* 10 x 1 s, minimum 4, 50% */
    c.slow_rate_threshold = 50;
    c.slow_call_duration_ns = RESIL_MS(1);
    fixture *f = make_at(&c, 0);
    call_at(f, 0, RESIL_OUTCOME_SUCCESS, 1);
    call_at(f, RESIL_SEC(1), RESIL_OUTCOME_SUCCESS, RESIL_MS(2));
    call_at(f, RESIL_SEC(2), RESIL_OUTCOME_FAILURE, RESIL_MS(2));
    resil_breaker_stats_t s;
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.window_calls, 3);
    assert_int_equal(s.window_failures, 1);
    assert_int_equal(s.window_slow, 2);
    assert_int_equal(cur(f), RESIL_BREAKER_CLOSED);               /* under the minimum */
    call_at(f, RESIL_SEC(3), RESIL_OUTCOME_SUCCESS, RESIL_MS(2)); /* 3 of 4 slow */
    assert_int_equal(cur(f), RESIL_BREAKER_OPEN);
    expect_event(f, 0, RESIL_BREAKER_CLOSED, RESIL_BREAKER_OPEN, RESIL_BREAKER_REASON_SLOW_RATE);
    /* probes (K = 1): a slow failure and a slow success each reopen it, a
     * fast success closes it */
    static const struct {
        resil_outcome o;
        uint64_t duration;
        resil_breaker_state after;
    } probes[] = {{RESIL_OUTCOME_FAILURE, RESIL_MS(2), RESIL_BREAKER_OPEN},
                  {RESIL_OUTCOME_SUCCESS, RESIL_MS(2), RESIL_BREAKER_OPEN},
                  {RESIL_OUTCOME_SUCCESS, 1, RESIL_BREAKER_CLOSED}};
    uint64_t now = RESIL_SEC(3);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        now += RESIL_SEC(5); /* the open wait */
        call_at(f, now, probes[i].o, probes[i].duration);
        assert_int_equal(cur(f), probes[i].after);
    }
    resil_breaker_stats(f->b, &s);
    assert_int_equal(s.successes, 5);
    assert_int_equal(s.failures, 2);
    assert_int_equal(s.slow_calls, 5);
    done(f);
}

static void caller_memory_init_and_attach_share_one_breaker(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(10, 2, 50);
    size_t need = resil_breaker_size(&c);
    assert_true(need > 0 && need % 64 == 0);
    assert_true(need <= RESIL_BREAKER_SIZE(10, 4));
    unsigned char *mem = aligned_alloc(64, need + 64);
    memset(mem, 0xa5, need + 64);
    assert_int_equal(resil_breaker_init(mem + 8, need, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_init(mem, need - 1, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_init(NULL, need, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_init(mem, need, &c), RESIL_OK);
    resil_breaker_t *a = NULL, *b = NULL;
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &a), RESIL_OK);
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_OK);
    resil_breaker_permit_t p;
    assert_int_equal(resil_breaker_acquire(a, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(resil_breaker_acquire(b, &p), RESIL_OK);
    assert_int_equal(resil_breaker_record(a, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    assert_int_equal(resil_breaker_state_get(a), RESIL_BREAKER_OPEN);
    assert_int_equal(resil_breaker_state_get(b), RESIL_BREAKER_OPEN);
    assert_int_equal(resil_breaker_check(a), RESIL_OK);
    resil_breaker_free(a);
    resil_breaker_free(b);
    free(mem);
}

static void attach_refuses_zeroed_corrupt_and_foreign_blocks(void **state)
{
    (void)state;
    resil_breaker_config_t c = small_count(10, 2, 50);
    size_t need = resil_breaker_size(&c);
    unsigned char *mem = aligned_alloc(64, need);
    resil_breaker_t *b = NULL;
    memset(mem, 0, need);
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_breaker_init(mem, need, &c), RESIL_OK);
    assert_int_equal(resil_breaker_attach(mem, need - 64, NULL, &b), RESIL_E_CORRUPT);
    assert_null(b);
    mem[40] ^= 1; /* a config byte behind the checksum */
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_CORRUPT);
    mem[40] ^= 1;
    mem[0] ^= 1; /* the layout version (low 16 bits of the tag) */
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_VERSION);
    mem[0] ^= 1;
    mem[4] ^= 1; /* the magic */
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_CORRUPT);
    mem[4] ^= 1;
    mem[2] ^= 1; /* the kind */
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_WRONG_KIND);
    mem[2] ^= 1;
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_OK);
    resil_breaker_free(b);
    /* damage the live state, which no checksum covers: attach checks it */
    uint64_t saved = 0, bad_state = 7; /* inner state 7 does not exist */
    size_t state_off = 0;
    for (size_t off = 64; off < need; off += 64) { /* the state word leads its line */
        memcpy(&saved, mem + off, 8);
        if ((saved & 0xffffff) == 0x000100) { /* CLOSED, generation 1 */
            state_off = off;
            break;
        }
    }
    assert_true(state_off != 0);
    memcpy(mem + state_off, &bad_state, 8);
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_CORRUPT);
    assert_non_null(strstr(resil_status_detail(), "out of range"));
    uint64_t too_many = (uint64_t)1 << 48 | (uint64_t)4095 << 36; /* 4095 probes issued, K = 10 */
    memcpy(mem + state_off, &saved, 8);
    memcpy(mem + state_off + 8, &too_many, 8);
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_E_CORRUPT);
    memset(mem + state_off + 8, 0, 8);
    assert_int_equal(resil_breaker_attach(mem, need, NULL, &b), RESIL_OK);
    resil_breaker_free(b);
    /* random bytes: a status, never a crash */
    resil_rng_t r;
    resil_rng_seed(&r, 77);
    for (int t = 0; t < 2000; t++) {
        for (size_t i = 0; i < need; i++)
            mem[i] = (unsigned char)resil_rng_next(&r);
        resil_status s = resil_breaker_attach(mem, need, NULL, &b);
        assert_int_not_equal(s, RESIL_OK);
        assert_null(b);
    }
    free(mem);
}

static void allocation_failure_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    resil_breaker_config_t c = resil_breaker_config_default();
    resil_breaker_t *b = (resil_breaker_t *)&c;
    test_alloc_install(1, 1);
    assert_int_equal(resil_breaker_new(&c, NULL, &b), RESIL_E_NO_MEMORY);
    assert_null(b);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_install(0, 0);
    assert_int_equal(resil_breaker_new(&c, NULL, &b), RESIL_OK);
    assert_int_equal(test_alloc_live(), 1);
    resil_breaker_free(b);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_the_documentation),
        cmocka_unit_test(invalid_config_is_rejected_naming_the_field),
        cmocka_unit_test(failure_rate_trips_exactly_at_minimum_calls),
        cmocka_unit_test(count_window_forgets_the_oldest_call),
        cmocka_unit_test(slow_calls_trip_the_slow_rate),
        cmocka_unit_test(consecutive_failures_trip_regardless_of_minimum),
        cmocka_unit_test(open_rejects_until_the_wait_ends_then_half_opens_lazily),
        cmocka_unit_test(half_open_admits_exactly_k_probes_and_closes_when_they_pass),
        cmocka_unit_test(half_open_reopens_as_soon_as_probes_reach_the_threshold),
        cmocka_unit_test(probes_that_never_report_cannot_leave_it_half_open),
        cmocka_unit_test(ignored_probe_hands_its_slot_back),
        cmocka_unit_test(consecutive_only_breaker_reopens_on_first_failed_probe),
        cmocka_unit_test(open_wait_grows_to_its_cap_and_resets_after_close),
        cmocka_unit_test(jittered_waits_stay_in_bounds_and_repeat_for_a_seed),
        cmocka_unit_test(outcome_from_an_older_generation_does_not_count),
        cmocka_unit_test(bad_permits_are_refused_and_count_nothing),
        cmocka_unit_test(rejected_permit_cannot_be_reported),
        cmocka_unit_test(null_arguments_get_invalid_argument),
        cmocka_unit_test(disabled_admits_everything_and_records_nothing),
        cmocka_unit_test(forced_open_rejects_everything_until_reset),
        cmocka_unit_test(metrics_only_never_rejects_but_reports_what_it_would_do),
        cmocka_unit_test(open_until_follows_the_servers_hint),
        cmocka_unit_test(time_window_drops_whole_buckets_as_time_passes),
        cmocka_unit_test(time_window_starts_empty_after_closing),
        cmocka_unit_test(execute_measures_the_call_on_the_handles_clock),
        cmocka_unit_test(clock_that_steps_back_or_jumps_never_breaks_it),
        cmocka_unit_test(listener_sees_each_transition_once_in_order),
        cmocka_unit_test(a_copied_probe_permit_counts_once),
        cmocka_unit_test(execute_treats_a_garbage_outcome_as_failure),
        cmocka_unit_test(shadow_mode_admits_past_k_probes_and_is_entered_once),
        cmocka_unit_test(time_window_probe_failure_reopens),
        cmocka_unit_test(without_a_cap_the_wait_grows_to_five_days_or_stays),
        cmocka_unit_test(jittered_wait_never_drops_below_one_microsecond),
        cmocka_unit_test(slow_successes_never_trip_without_a_slow_threshold),
        cmocka_unit_test(operator_states_refuse_open_until),
        cmocka_unit_test(time_window_counts_slow_calls_from_time_zero),
        cmocka_unit_test(probe_from_an_earlier_half_open_period_is_stale),
        cmocka_unit_test(failed_probes_reaching_the_consecutive_limit_reopen),
        cmocka_unit_test(caller_memory_init_and_attach_share_one_breaker),
        cmocka_unit_test(attach_refuses_zeroed_corrupt_and_foreign_blocks),
        cmocka_unit_test(allocation_failure_is_reported_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
