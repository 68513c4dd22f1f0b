/*
 * Crash at every step (TESTING.md): a child process works on a bulkhead in
 * shared memory and is SIGKILLed at its N-th atomic read-modify-write, for
 * N = 1, 2, ... until it completes. After each kill the parent validates
 * the block, reclaims the dead child, and checks that no permit was lost
 * (all `LIMIT` permits can be taken again) and none minted (not one more).
 *
 * Scenario 1 kills the permit holder inside acquire, release and
 * acquire_wait. Scenario 2 kills a reclaimer inside its reclaim of another
 * dead process, then lets a later reclaim finish the job.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "resil/bulkhead.h"
#include "support.h"

enum { LIMIT = 6 };

static unsigned long kill_at, steps;

static void hook(void *ctx)
{
    (void)ctx;
    if (++steps == kill_at)
        raise(SIGKILL);
}

static size_t len;

static void *fresh_block(void)
{
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = LIMIT;
    len = resil_bulkhead_size(&c);
    void *mem = test_shared_alloc(len);
    assert_int_equal(resil_bulkhead_init(mem, len, &c), RESIL_OK);
    return mem;
}

/* After reclaiming every dead process: exactly LIMIT permits, no more. */
static void assert_nothing_lost_or_minted(resil_bulkhead_t *b)
{
    resil_bulkhead_permit_t p[LIMIT + 1];
    assert_int_equal(resil_bulkhead_check(b, 0), RESIL_OK);
    for (int i = 0; i < LIMIT; i++)
        assert_int_equal(resil_bulkhead_try_acquire(b, &p[i]), RESIL_OK);
    assert_int_equal(resil_bulkhead_try_acquire(b, &p[LIMIT]), RESIL_E_BULKHEAD_FULL);
    for (int i = 0; i < LIMIT; i++)
        assert_int_equal(resil_bulkhead_release(b, &p[i]), RESIL_OK);
    resil_bulkhead_stats_t s;
    resil_bulkhead_stats(b, &s);
    assert_int_equal(s.in_flight, 0);
}

static int run_child(void *mem, int (*body)(resil_bulkhead_t *), unsigned long at)
{
    pid_t pid = fork();
    if (pid == 0) {
        resil_bulkhead_t *b;
        if (resil_bulkhead_attach(mem, len, NULL, &b) != RESIL_OK)
            _exit(2);
        steps = 0;
        kill_at = at;
        resil__step_hook_set(hook, NULL);
        int rc = body(b);
        resil__step_hook_set(NULL, NULL);
        _exit(rc);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) {
        assert_int_equal(WTERMSIG(st), SIGKILL);
        return 1;
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

static int holder_body(resil_bulkhead_t *b)
{
    resil_bulkhead_permit_t p, q, r;
    if (resil_bulkhead_try_acquire(b, &p) != RESIL_OK)
        return 3;
    if (resil_bulkhead_try_acquire(b, &q) != RESIL_OK)
        return 4;
    if (resil_bulkhead_release(b, &p) != RESIL_OK)
        return 5;
    if (resil_bulkhead_acquire_wait(b, RESIL_MS(10), &r) != RESIL_OK)
        return 6;
    if (resil_bulkhead_release(b, &r) != RESIL_OK)
        return 7;
    return 0; /* exits holding q: reclaimed as a dead holder */
}

static void holder_killed_at_every_step_loses_and_mints_nothing(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1;; n++) {
        void *mem = fresh_block();
        resil_bulkhead_t *b;
        assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b), RESIL_OK);
        resil_bulkhead_permit_t mine;
        assert_int_equal(resil_bulkhead_try_acquire(b, &mine), RESIL_OK); /* a bystander */
        int killed = run_child(mem, holder_body, n);
        assert_int_equal(resil_bulkhead_check(b, 0), RESIL_OK);
        resil_bulkhead_stats_t s;
        resil_bulkhead_stats(b, &s);
        assert_true(s.in_flight >= 1 && s.in_flight <= 3);
        int got = resil_bulkhead_reclaim_dead(b);
        assert_true(got >= 0 && got <= 2);
        resil_bulkhead_stats(b, &s);
        assert_int_equal(s.in_flight, 1); /* only the bystander's permit */
        assert_int_equal(resil_bulkhead_release(b, &mine), RESIL_OK);
        assert_nothing_lost_or_minted(b);
        resil_bulkhead_free(b);
        test_shared_free(mem, len);
        if (!killed)
            break;
    }
    printf("holder: killed at each of %lu atomic steps, then a clean run\n", n - 1);
    assert_true(n > 6); /* acquire, release and wait really had steps */
}

static int reclaimer_body(resil_bulkhead_t *b)
{
    return resil_bulkhead_reclaim_dead(b) >= 0 ? 0 : 3;
}

static int take_three(resil_bulkhead_t *b)
{
    resil_bulkhead_permit_t p;
    for (int i = 0; i < 3; i++)
        if (resil_bulkhead_try_acquire(b, &p) != RESIL_OK)
            return 3;
    return 0;
}

static void reclaimer_killed_at_every_step_leaves_a_finishable_reclaim(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1;; n++) {
        void *mem = fresh_block();
        resil_bulkhead_t *b;
        assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b), RESIL_OK);
        assert_int_equal(run_child(mem, take_three, 0), 0); /* dies holding 3 */
        int killed = run_child(mem, reclaimer_body, n);
        assert_int_equal(resil_bulkhead_check(b, 0), RESIL_OK);
        resil_bulkhead_stats_t s;
        resil_bulkhead_stats(b, &s);
        assert_true(s.in_flight <= 3);
        assert_true(resil_bulkhead_reclaim_dead(b) >= 0); /* finishes whatever was left */
        resil_bulkhead_stats(b, &s);
        assert_int_equal(s.in_flight, 0);
        assert_int_equal(s.processes, 1);
        assert_nothing_lost_or_minted(b);
        resil_bulkhead_free(b);
        test_shared_free(mem, len);
        if (!killed)
            break;
    }
    printf("reclaimer: killed at each of %lu atomic steps, then a clean run\n", n - 1);
    assert_true(n > 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(holder_killed_at_every_step_loses_and_mints_nothing),
        cmocka_unit_test(reclaimer_killed_at_every_step_leaves_a_finishable_reclaim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
