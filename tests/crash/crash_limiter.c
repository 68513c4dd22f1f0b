/*
 * Crash at every step (TESTING.md): a child process works on an adaptive
 * limiter in shared memory and dies at its N-th atomic read-modify-write,
 * for N = 1, 2, ... until it completes. After each death the parent
 * validates the block, reclaims the dead child, and checks that no permit
 * was lost (exactly `limit` permits can be taken again, the limit in force
 * whatever the child's samples made of it) and none minted (not one more).
 *
 * Scenario 1 kills the permit holder inside attach, acquire and release,
 * including a batch of samples being applied, an AIMD drop, and (GRADIENT)
 * a round that pins the limit to re-measure the baseline and the samples
 * that end the pin. Scenario 2 kills a reclaimer inside its reclaim of
 * another dead process, then lets a later reclaim finish the job.
 */
#include <stdio.h>

#include "crash_step.h"
#include "resil/limiter.h"

static size_t len;

static void *fresh_block(resil_limiter_algorithm alg)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = alg;
    c.initial_limit = 6;
    c.min_limit = 4; /* a pinned limit still admits the bystander and the holder's two */
    c.max_limit = 12;
    c.probe_interval = 10;
    c.probe_samples = 2;
    len = resil_limiter_size(&c);
    void *mem = test_shared_alloc(len);
    assert_int_equal(resil_limiter_init(mem, len, &c), RESIL_OK);
    return mem;
}

/* After reclaiming every dead process: exactly the limit, no more. */
static void assert_nothing_lost_or_minted(resil_limiter_t *l)
{
    resil_limiter_permit_t p[13];
    resil_limiter_stats_t s;
    assert_int_equal(resil_limiter_check(l, 1), RESIL_OK);
    resil_limiter_stats(l, &s);
    assert_int_equal(s.in_flight, 0);
    uint32_t n = 0;
    while (n < 13 && resil_limiter_try_acquire(l, &p[n]) == RESIL_OK)
        n++;
    assert_int_equal(n, s.limit);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(resil_limiter_release_ignored(l, &p[i]), RESIL_OK);
    resil_limiter_stats(l, &s);
    assert_int_equal(s.in_flight, 0);
}

static void *crash_mem;

static resil_limiter_t *attach_or_exit(void)
{
    resil_limiter_t *l;
    if (resil_limiter_attach(crash_mem, len, NULL, &l) != RESIL_OK)
        _exit(2);
    return l;
}

/* Holds two, gives one back with a sample, applies a batch of samples
 * (GRADIENT: ends a round, which starts a re-measurement, and ends that
 * too), drops one (AIMD: applied at once), and exits holding one. */
static void holder(void *ctx)
{
    (void)ctx;
    resil_limiter_t *l = attach_or_exit();
    resil_limiter_permit_t p, q, r;
    if (resil_limiter_try_acquire(l, &p) != RESIL_OK ||
        resil_limiter_try_acquire(l, &q) != RESIL_OK ||
        resil_limiter_release(l, &p, RESIL_MS(2), 0) != RESIL_OK)
        _exit(3);
    for (int i = 0; i < 18; i++)
        if (resil_limiter_try_acquire(l, &p) != RESIL_OK ||
            resil_limiter_release(l, &p, RESIL_MS(2) + (uint64_t)i, i == 16) != RESIL_OK)
            _exit(4);
    if (resil_limiter_release_ignored(l, &q) != RESIL_OK ||
        resil_limiter_try_acquire(l, &r) != RESIL_OK)
        _exit(5);
}

static void holder_killed_at_every_step(resil_limiter_algorithm alg, const char *name)
{
    unsigned long n;
    for (n = 1;; n++) {
        assert_true(n < 5000); /* the child failed without dying at a step */
        crash_mem = fresh_block(alg);
        resil_limiter_t *l;
        assert_int_equal(resil_limiter_attach(crash_mem, len, NULL, &l), RESIL_OK);
        resil_limiter_permit_t mine;
        assert_int_equal(resil_limiter_try_acquire(l, &mine), RESIL_OK); /* a bystander */
        int completed = crash_at_step(n, holder, NULL);
        assert_int_equal(resil_limiter_check(l, 0), RESIL_OK);
        resil_limiter_stats_t s;
        resil_limiter_stats(l, &s);
        assert_true(s.in_flight >= 1 && s.in_flight <= 3);
        int got = resil_limiter_reclaim_dead(l);
        assert_true(got >= 0 && got <= 2);
        resil_limiter_stats(l, &s);
        assert_int_equal(s.in_flight, 1); /* only the bystander's permit */
        assert_int_equal(s.processes, 1);
        assert_int_equal(resil_limiter_release(l, &mine, RESIL_MS(2), 0), RESIL_OK);
        assert_nothing_lost_or_minted(l);
        if (completed) {
            assert_int_equal(s.samples, 19);
            assert_true(alg == RESIL_LIMITER_AIMD ? s.drops == 1 : s.probes == 1);
        }
        resil_limiter_free(l);
        test_shared_free(crash_mem, len);
        if (completed)
            break;
    }
    printf("%s holder: died at each of %lu atomic steps, then a clean run\n", name, n - 1);
    assert_true(n > 40); /* attach, acquire, release and the batches really had steps */
}

static void aimd_holder_killed_at_every_step_loses_and_mints_nothing(void **state)
{
    (void)state;
    holder_killed_at_every_step(RESIL_LIMITER_AIMD, "aimd");
}

static void gradient_holder_killed_at_every_step_loses_and_mints_nothing(void **state)
{
    (void)state;
    holder_killed_at_every_step(RESIL_LIMITER_GRADIENT, "gradient");
}

static void take_three(void *ctx)
{
    (void)ctx;
    resil_limiter_t *l = attach_or_exit();
    resil_limiter_permit_t p;
    for (int i = 0; i < 3; i++)
        if (resil_limiter_try_acquire(l, &p) != RESIL_OK)
            _exit(3);
}

static void reclaimer(void *ctx)
{
    (void)ctx;
    if (resil_limiter_reclaim_dead(attach_or_exit()) < 0)
        _exit(3);
}

static void reclaimer_killed_at_every_step_leaves_a_finishable_reclaim(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1;; n++) {
        crash_mem = fresh_block(RESIL_LIMITER_AIMD);
        resil_limiter_t *l;
        assert_int_equal(resil_limiter_attach(crash_mem, len, NULL, &l), RESIL_OK);
        assert_int_equal(crash_at_step(1000, take_three, NULL), 1); /* dies holding 3 */
        int completed = crash_at_step(n, reclaimer, NULL);
        assert_int_equal(resil_limiter_check(l, 0), RESIL_OK);
        resil_limiter_stats_t s;
        resil_limiter_stats(l, &s);
        assert_true(s.in_flight <= 3);
        assert_true(resil_limiter_reclaim_dead(l) >= 0); /* finishes whatever was left */
        resil_limiter_stats(l, &s);
        assert_int_equal(s.in_flight, 0);
        assert_int_equal(s.processes, 1);
        assert_nothing_lost_or_minted(l);
        resil_limiter_free(l);
        test_shared_free(crash_mem, len);
        if (completed)
            break;
    }
    printf("reclaimer: died at each of %lu atomic steps, then a clean run\n", n - 1);
    assert_true(n > 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aimd_holder_killed_at_every_step_loses_and_mints_nothing),
        cmocka_unit_test(gradient_holder_killed_at_every_step_loses_and_mints_nothing),
        cmocka_unit_test(reclaimer_killed_at_every_step_leaves_a_finishable_reclaim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
