#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/limiter.h"
#include "support.h"

static resil_limiter_t *make(resil_limiter_algorithm alg, uint32_t initial)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = initial;
    c.min_limit = 1;
    resil_limiter_t *l = NULL;
    assert_int_equal(resil_limiter_new(&c, &l), RESIL_OK);
    return l;
}

static resil_limiter_stats_t stats(resil_limiter_t *l)
{
    resil_limiter_stats_t s;
    assert_int_equal(resil_limiter_stats(l, &s), RESIL_OK);
    return s;
}

static void admits_up_to_the_limit(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 3);
    resil_limiter_permit_t p[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    assert_int_equal(resil_limiter_try_acquire(l, &p[3]), RESIL_E_LIMIT_REACHED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    resil_limiter_stats_t s = stats(l);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.granted, 3);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.samples, 0);
    assert_int_equal(s.limit, 3);
    resil_limiter_free(l);
}

static void aimd_backs_off_once_per_round_and_grows_one_per_round(void **state)
{
    (void)state;
    resil_limiter_t *l = make(RESIL_LIMITER_AIMD, 10);
    resil_limiter_permit_t p[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(resil_limiter_try_acquire(l, &p[i]), RESIL_OK);
    /* Three drops in the same round: one decrease, 10 -> 9. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_limiter_release(l, &p[i], RESIL_MS(1), 1), RESIL_OK);
    resil_limiter_stats_t s = stats(l);
    assert_true(s.estimate > 8.999 && s.estimate < 9.001);
    assert_int_equal(s.limit, 9);
    assert_int_equal(s.drops, 3);
    /* A latency above timeout_ns (5 s) is a drop too, but still this round. */
    assert_int_equal(resil_limiter_release(l, &p[3], RESIL_SEC(6), 0), RESIL_OK);
    assert_int_equal(stats(l).limit, 9);
    /* Good samples while the limit is in use (in flight 6 >= 9 / 2) add 1/limit. */
    assert_int_equal(resil_limiter_release(l, &p[4], RESIL_MS(1), 0), RESIL_OK);
    s = stats(l);
    assert_true(s.estimate > 9.0 + 1.0 / 9 - 1e-9 && s.estimate < 9.0 + 1.0 / 9 + 1e-9);
    /* Idle limit (in flight 1 < limit / 2): no growth. */
    for (int i = 5; i < 9; i++)
        assert_int_equal(resil_limiter_release(l, &p[i], RESIL_MS(1), 0), RESIL_OK);
    double before = stats(l).estimate;
    assert_int_equal(resil_limiter_release(l, &p[9], RESIL_MS(1), 0), RESIL_OK);
    assert_true(stats(l).estimate == before);
    assert_int_equal(resil_limiter_check(l), RESIL_OK);
    resil_limiter_free(l);
}

static void bad_input_gets_clear_statuses(void **state)
{
    (void)state;
    resil_limiter_config_t c = resil_limiter_config_default();
    assert_int_equal(resil_limiter_config_check(&c), RESIL_OK);
    c.min_limit = 0;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "limiter.min_limit: must be >= 1, got 0");
    c = resil_limiter_config_default();
    c.max_limit = 2;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.initial_limit = 2000;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.backoff_ratio = 1.0;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.smoothing = 0.0 / 0.0; /* NaN */
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.algorithm = (resil_limiter_algorithm)7;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_limiter_config_default();
    c.probe_interval = 20;
    assert_int_equal(resil_limiter_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_int_equal(resil_limiter_size(&c), 0);
    assert_int_equal(resil_limiter_config_check(NULL), RESIL_E_INVALID_ARG);
    resil_limiter_t *l = (resil_limiter_t *)1;
    assert_int_equal(resil_limiter_new(&c, &l), RESIL_E_INVALID_CONFIG);
    assert_null(l);

    resil_limiter_t *a = make(RESIL_LIMITER_GRADIENT, 2), *b = make(RESIL_LIMITER_GRADIENT, 2);
    resil_limiter_permit_t p, never;
    memset(&never, 0, sizeof never);
    assert_int_equal(resil_limiter_try_acquire(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_try_acquire(a, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_release(a, &never, 1, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_try_acquire(a, &p), RESIL_OK);
    resil_limiter_permit_t copy = p;
    assert_int_equal(resil_limiter_release(b, &p, 1, 0), RESIL_E_INVALID_ARG); /* foreign */
    assert_int_equal(resil_limiter_release(a, &p, RESIL_MS(1), 0), RESIL_OK);
    assert_int_equal(resil_limiter_release(a, &p, RESIL_MS(1), 0), RESIL_E_INVALID_ARG);
    /* A copy released with nothing in flight: more than acquired. */
    assert_int_equal(resil_limiter_release(a, &copy, RESIL_MS(1), 0), RESIL_E_INVALID_ARG);
    resil_limiter_stats_t s = stats(a);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.samples, 1);
    assert_int_equal(resil_limiter_reset_in_flight(NULL, 0), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_stats(NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_check(NULL), RESIL_E_INVALID_ARG);
    resil_limiter_free(a);
    resil_limiter_free(b);
    resil_limiter_free(NULL);
}

static void caller_memory_and_supervisor_reset(void **state)
{
    (void)state;
    resil_limiter_config_t c = resil_limiter_config_default();
    c.initial_limit = 5;
    size_t len = resil_limiter_size(&c);
    assert_true(len > 0 && len <= RESIL_LIMITER_SIZE());
    unsigned char *mem = aligned_alloc(64, len);
    memset(mem, 0, len);
    resil_limiter_t *a, *b;
    assert_int_equal(resil_limiter_attach(mem, len, &a), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_limiter_init(mem + 8, len, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_limiter_init(mem, len, &c), RESIL_OK);
    assert_int_equal(resil_limiter_attach(mem, len, &a), RESIL_OK);
    assert_int_equal(resil_limiter_attach(mem, len, &b), RESIL_OK);
    resil_limiter_permit_t p;
    for (int i = 0; i < 5; i++)
        assert_int_equal(resil_limiter_try_acquire(i % 2 ? a : b, &p), RESIL_OK);
    assert_int_equal(resil_limiter_try_acquire(a, &p), RESIL_E_LIMIT_REACHED);
    /* The holders died: a supervisor that knows none is running resets. */
    assert_int_equal(resil_limiter_reset_in_flight(a, 0), RESIL_OK);
    assert_int_equal(resil_limiter_try_acquire(b, &p), RESIL_OK);
    resil_limiter_free(a);
    resil_limiter_free(b);
    mem[40] ^= 1;
    assert_int_equal(resil_limiter_attach(mem, len, &a), RESIL_E_CORRUPT);
    resil_rng_t g;
    resil_rng_seed(&g, 9);
    for (int trial = 0; trial < 2000; trial++) {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t v = resil_rng_next(&g);
            memcpy(mem + i, &v, 8);
        }
        assert_int_not_equal(resil_limiter_attach(mem, len, &a), RESIL_OK);
    }
    free(mem);
}

/* ---- convergence against a simulated server ----
 *
 * The server has capacity C: a call that starts with n calls in flight
 * (itself included) takes L * max(1, n / C). With `shed`, it also drops
 * (quickly, in L / 10) every call that starts above C. Clients have
 * unbounded demand: they keep as many calls in flight as the limiter
 * admits. Time is simulated exactly (a manual clock of our own). */

enum { MAX_REQ = 2048 };

typedef struct sim {
    resil_limiter_t *l;
    uint64_t now, L;
    uint32_t C;
    int shed, n;
    struct {
        uint64_t done;
        uint64_t latency;
        int dropped;
        resil_limiter_permit_t p;
    } req[MAX_REQ];
} sim;

/* Runs @p seconds; returns the mean of the limit estimate sampled at every
 * completion in the second half. */
static double run(sim *s, double seconds)
{
    uint64_t end = s->now + (uint64_t)(seconds * 1e9), half = s->now + (uint64_t)(seconds * 5e8);
    double sum = 0;
    uint64_t count = 0;
    while (s->now < end) {
        while (s->n < MAX_REQ && resil_limiter_try_acquire(s->l, &s->req[s->n].p) == RESIL_OK) {
            int n = s->n + 1;
            int dropped = s->shed && (uint32_t)n > s->C;
            uint64_t lat =
                dropped ? s->L / 10 : ((uint32_t)n <= s->C ? s->L : s->L * (uint64_t)n / s->C);
            s->req[s->n].done = s->now + lat;
            s->req[s->n].latency = lat;
            s->req[s->n].dropped = dropped;
            s->n++;
        }
        assert_true(s->n > 0);
        int first = 0;
        for (int i = 1; i < s->n; i++)
            if (s->req[i].done < s->req[first].done)
                first = i;
        s->now = s->req[first].done;
        assert_int_equal(resil_limiter_release(s->l, &s->req[first].p, s->req[first].latency,
                                               s->req[first].dropped),
                         RESIL_OK);
        s->req[first] = s->req[--s->n];
        if (s->now >= half) {
            resil_limiter_stats_t st;
            resil_limiter_stats(s->l, &st);
            sum += st.estimate;
            count++;
        }
    }
    return sum / (double)count;
}

static void converges(resil_limiter_algorithm alg, int shed, const char *name)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = 10;
    c.min_limit = 4;
    c.max_limit = 1000;
    sim *s = calloc(1, sizeof *s);
    s->shed = shed;
    assert_int_equal(resil_limiter_new(&c, &s->l), RESIL_OK);
    s->now = RESIL_SEC(1);
    s->L = RESIL_MS(10);
    const uint32_t caps[] = {100, 40, 250, 100};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        s->C = caps[i];
        double mean = run(s, 20.0);
        resil_limiter_stats_t st;
        resil_limiter_stats(s->l, &st);
        printf("%s: capacity %u -> mean limit %.1f (%+.1f%%) over the last 10 s, "
               "samples=%llu drops=%llu probes=%llu baseline=%.2f ms\n",
               name, caps[i], mean, (mean / caps[i] - 1) * 100, (unsigned long long)st.samples,
               (unsigned long long)st.drops, (unsigned long long)st.probes,
               (double)st.baseline_ns / 1e6);
        assert_true(mean >= 0.75 * caps[i] && mean <= 1.25 * caps[i]);
    }
    assert_int_equal(resil_limiter_check(s->l), RESIL_OK);
    resil_limiter_free(s->l);
    free(s);
}

static void gradient_converges_to_capacity_and_recovers(void **state)
{
    (void)state;
    converges(RESIL_LIMITER_GRADIENT, 0, "gradient");
}

static void aimd_converges_to_capacity_and_recovers(void **state)
{
    (void)state;
    converges(RESIL_LIMITER_AIMD, 1, "aimd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admits_up_to_the_limit),
        cmocka_unit_test(aimd_backs_off_once_per_round_and_grows_one_per_round),
        cmocka_unit_test(bad_input_gets_clear_statuses),
        cmocka_unit_test(caller_memory_and_supervisor_reset),
        cmocka_unit_test(gradient_converges_to_capacity_and_recovers),
        cmocka_unit_test(aimd_converges_to_capacity_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
