/*
 * Crash at every step of inserting a key into a shared breaker set: the
 * inserting process dies at its N-th atomic step, N = 1, 2, ... After every
 * death the parent attaches afresh (the block must validate), the key must
 * still be usable, and once the 1 s busy lease has passed no slot may stay
 * busy: an abandoned slot is reclaimed by the next lookup that passes it.
 */
#include <string.h>

#include "crash_step.h"
#include "resil/breaker_set.h"
#include "support.h"

static void insert_alpha(void *set)
{
    resil_breaker_set_permit_t p;
    resil_breaker_set_acquire(set, "alpha", 5, &p);
}

static void every_crash_point_of_an_insert_leaves_a_usable_set(void **state)
{
    (void)state;
    resil_breaker_set_config_t cfg = resil_breaker_set_config_default();
    cfg.capacity = 4;
    cfg.breaker.window_size = 4;
    cfg.breaker.minimum_calls = 4;
    size_t len = (resil_breaker_set_size(&cfg) + 4095) & ~(size_t)4095;
    void *mem = test_shared_alloc(len);
    assert_non_null(mem);
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(100), &m), RESIL_OK);
    resil_breaker_set_local_t local = {resil_manual_clock_as_clock(m), NULL, NULL, 1};
    unsigned long n;
    for (n = 1; n < 10000; n++) {
        resil_manual_clock_set(m, RESIL_SEC(100));
        assert_int_equal(resil_breaker_set_init(mem, len, &cfg), RESIL_OK);
        resil_breaker_set_t *s = NULL;
        assert_int_equal(resil_breaker_set_attach(mem, len, &local, &s), RESIL_OK);
        int completed = crash_at_step(n, insert_alpha, s);
        resil_breaker_set_free(s);
        s = NULL;
        if (resil_breaker_set_attach(mem, len, &local, &s) != RESIL_OK)
            fail_msg("died at step %lu: the set no longer validates: %s", n, resil_status_detail());
        resil_manual_clock_advance(m, RESIL_SEC(2)); /* past the busy lease */
        resil_breaker_set_permit_t p;
        if (resil_breaker_set_acquire(s, "alpha", 5, &p) != RESIL_OK ||
            resil_breaker_set_record(s, &p, RESIL_OUTCOME_SUCCESS, 1) != RESIL_OK)
            fail_msg("died at step %lu: key unusable", n);
        resil_breaker_set_stats_t ss;
        resil_breaker_set_stats(s, &ss);
        if (ss.busy != 0 || ss.keys < 1)
            fail_msg("died at step %lu: %u busy slots, %u keys", n, ss.busy, ss.keys);
        resil_breaker_t *b = NULL;
        assert_int_equal(resil_breaker_set_find(s, "alpha", 5, &b), RESIL_OK);
        assert_int_equal(resil_breaker_check(b), RESIL_OK);
        resil_breaker_set_free(s);
        if (completed)
            break;
    }
    assert_true(n < 10000);
    print_message("insert: %lu atomic steps, a crash at each one left a usable set\n", n - 1);
    resil_manual_clock_free(m);
    test_shared_free(mem, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_crash_point_of_an_insert_leaves_a_usable_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
