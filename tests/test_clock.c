#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include "support.h"

static void manual_clock_reads_exactly_what_was_set(void **state)
{
    (void)state;
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(5), &m), RESIL_OK);
    resil_clock_t c = resil_manual_clock_as_clock(m);
    assert_int_equal(resil_clock_now(&c), RESIL_SEC(5));
    assert_int_equal(resil_manual_clock_advance(m, RESIL_MS(1)), RESIL_SEC(5) + RESIL_MS(1));
    assert_int_equal(resil_clock_now(&c), UINT64_C(5001000000));
    assert_int_equal(resil_manual_clock_set(m, 7), RESIL_OK);
    assert_int_equal(resil_clock_now(&c), 7);
    /* stepping back is allowed: components must survive it */
    assert_int_equal(resil_manual_clock_set(m, 3), RESIL_OK);
    assert_int_equal(resil_manual_clock_get(m), 3);
    resil_manual_clock_free(m);
}

static void manual_clock_advance_saturates(void **state)
{
    (void)state;
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(UINT64_MAX - 10, &m), RESIL_OK);
    assert_int_equal(resil_manual_clock_advance(m, 5), UINT64_MAX - 5);
    assert_int_equal(resil_manual_clock_advance(m, UINT64_MAX), UINT64_MAX);
    assert_int_equal(resil_manual_clock_get(m), UINT64_MAX);
    resil_manual_clock_free(m);
}

static void sleeping_on_a_manual_clock_advances_it(void **state)
{
    (void)state;
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(100, &m), RESIL_OK);
    resil_clock_t c = resil_manual_clock_as_clock(m);
    double t0 = test_now_seconds();
    resil_clock_sleep(&c, RESIL_SEC(3600));
    assert_true(test_now_seconds() - t0 < 1.0); /* did not really sleep an hour */
    assert_int_equal(resil_manual_clock_get(m), 100 + RESIL_SEC(3600));
    resil_manual_clock_free(m);
}

struct advancer {
    resil_manual_clock_t *m;
    int n;
};

static void *advance_many(void *arg)
{
    struct advancer *a = arg;
    for (int i = 0; i < a->n; i++)
        resil_manual_clock_advance(a->m, 1);
    return NULL;
}

static void manual_clock_advances_from_threads_add_up(void **state)
{
    (void)state;
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    pthread_t t[4];
    struct advancer a = {m, 50000};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, advance_many, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(resil_manual_clock_get(m), 200000);
    resil_manual_clock_free(m);
}

static void real_clocks_are_monotonic_and_move(void **state)
{
    (void)state;
    resil_clock_t mono = resil_clock_monotonic();
    resil_clock_t zero = {0};
    resil_clock_t coarse = resil_clock_coarse();
    uint64_t a = resil_clock_now(&mono);
    uint64_t z = resil_clock_now(&zero);
    uint64_t n = resil_clock_now(NULL);
    assert_true(a > 0);
    assert_true(z >= a && n >= z);
    uint64_t c0 = resil_clock_now(&coarse);
    resil_clock_sleep(&mono, RESIL_MS(20));
    uint64_t b = resil_clock_now(&mono);
    uint64_t c1 = resil_clock_now(&coarse);
    assert_true(b - a >= RESIL_MS(20));
    assert_true(c1 > c0); /* coarse ticks every few ms at most */
}

static void cached_clock_reads_the_callers_variable(void **state)
{
    (void)state;
    volatile uint64_t loop_time = 42;
    resil_clock_t c = resil_clock_cached(&loop_time);
    assert_int_equal(resil_clock_now(&c), 42);
    loop_time = RESIL_MS(1500);
    assert_int_equal(resil_clock_now(&c), RESIL_MS(1500));
    resil_clock_t fallback = resil_clock_cached(NULL);
    assert_true(resil_clock_now(&fallback) > 0);
}

static void bad_input_gets_a_status_not_a_crash(void **state)
{
    (void)state;
    assert_int_equal(resil_manual_clock_new(0, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_manual_clock_set(NULL, 1), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_manual_clock_get(NULL), 0);
    assert_int_equal(resil_manual_clock_advance(NULL, 1), 0);
    resil_manual_clock_free(NULL);
    resil_clock_t c = resil_manual_clock_as_clock(NULL);
    assert_true(resil_clock_now(&c) > 0); /* falls back to the monotonic clock */
    resil_clock_sleep(NULL, 0);
}

static void manual_clock_reports_allocation_failure(void **state)
{
    (void)state;
    test_alloc_install(1, 0);
    resil_manual_clock_t *m = (resil_manual_clock_t *)&m;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_E_NO_MEMORY);
    assert_null(m);
    /* the next allocation succeeds: the failure was once, not persistent */
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    assert_int_equal(test_alloc_live(), 1);
    resil_manual_clock_free(m);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A signal that interrupts a real sleep (a handler installed without
 * SA_RESTART) does not cut it short: the sleep resumes for what is left. */
static void real_sleep_outlasts_interrupting_signals(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval every_5ms = {{0, 5000}, {0, 5000}}, off;
    memset(&off, 0, sizeof off);
    alarms = 0;
    assert_int_equal(setitimer(ITIMER_REAL, &every_5ms, NULL), 0);
    resil_clock_t mono = resil_clock_monotonic();
    uint64_t t0 = resil_clock_now(&mono);
    resil_clock_sleep(&mono, RESIL_MS(40));
    uint64_t slept = resil_clock_now(&mono) - t0;
    assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
    assert_true(alarms >= 2);
    assert_true(slept >= RESIL_MS(40));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(manual_clock_reads_exactly_what_was_set),
        cmocka_unit_test(manual_clock_advance_saturates),
        cmocka_unit_test(sleeping_on_a_manual_clock_advances_it),
        cmocka_unit_test(manual_clock_advances_from_threads_add_up),
        cmocka_unit_test(real_clocks_are_monotonic_and_move),
        cmocka_unit_test(cached_clock_reads_the_callers_variable),
        cmocka_unit_test(bad_input_gets_a_status_not_a_crash),
        cmocka_unit_test(manual_clock_reports_allocation_failure),
        cmocka_unit_test(real_sleep_outlasts_interrupting_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
