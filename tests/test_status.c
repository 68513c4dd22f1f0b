#include <string.h>

#include "internal/util.h"
#include "support.h"

static const resil_status all_codes[] = {
#define CODE_(name, value, msg) RESIL_##name,
    RESIL_STATUS_LIST(CODE_)
#undef CODE_
};
#define N_CODES (sizeof all_codes / sizeof all_codes[0])

static void every_status_has_a_name_and_a_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *name = resil_status_name(all_codes[i]);
        const char *msg = resil_strerror(all_codes[i]);
        assert_non_null(name);
        assert_non_null(msg);
        assert_true(strncmp(name, "RESIL_", 6) == 0);
        assert_string_not_equal(name, "RESIL_E_UNKNOWN");
        assert_string_not_equal(msg, "unknown status");
        assert_true(strlen(msg) > 4);
    }
    assert_string_equal(resil_status_name(RESIL_E_BREAKER_OPEN), "RESIL_E_BREAKER_OPEN");
    assert_string_equal(resil_status_name(RESIL_OK), "RESIL_OK");
}

static void names_and_values_are_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++)
        for (size_t j = i + 1; j < N_CODES; j++) {
            assert_int_not_equal(all_codes[i], all_codes[j]);
            assert_string_not_equal(resil_status_name(all_codes[i]),
                                    resil_status_name(all_codes[j]));
        }
}

static void published_values_are_fixed(void **state)
{
    (void)state;
    /* The ABI: these numbers never change once released. */
    assert_int_equal(RESIL_OK, 0);
    assert_int_equal(RESIL_E_INVALID_ARG, -1);
    assert_int_equal(RESIL_E_INVALID_CONFIG, -2);
    assert_int_equal(RESIL_E_NO_MEMORY, -3);
    assert_int_equal(RESIL_E_BREAKER_OPEN, -10);
    assert_int_equal(RESIL_E_BULKHEAD_FULL, -13);
    assert_int_equal(RESIL_E_RATE_LIMITED, -14);
    assert_int_equal(RESIL_E_BUDGET_EXHAUSTED, -15);
    assert_int_equal(RESIL_E_TIMEOUT, -20);
    assert_int_equal(RESIL_E_IN_PROGRESS, -22);
    assert_int_equal(RESIL_E_NOT_OWNER, -30);
    assert_int_equal(RESIL_E_CORRUPT, -40);
    assert_int_equal(RESIL_E_VERSION, -41);
    assert_int_equal(RESIL_E_FULL, -50);
}

static void unknown_values_get_a_fallback_not_a_crash(void **state)
{
    (void)state;
    assert_string_equal(resil_strerror((resil_status)12345), "unknown status");
    assert_string_equal(resil_status_name((resil_status)-9999), "RESIL_E_UNKNOWN");
    assert_int_equal(resil_status_is_rejection((resil_status)-9999), 0);
}

static void rejections_are_exactly_the_policy_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        int expect = all_codes[i] <= -10 && all_codes[i] >= -19;
        assert_int_equal(resil_status_is_rejection(all_codes[i]), expect);
    }
    assert_true(resil_status_is_rejection(RESIL_E_BREAKER_OPEN));
    assert_true(resil_status_is_rejection(RESIL_E_BUDGET_EXHAUSTED));
    assert_false(resil_status_is_rejection(RESIL_E_TIMEOUT));
    assert_false(resil_status_is_rejection(RESIL_OK));
}

static void config_failure_names_the_field(void **state)
{
    (void)state;
    resil_status s = RESIL__BAD_CONFIG("breaker.window_size", "must be >= 1, got %d", 0);
    assert_int_equal(s, RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "breaker.window_size: must be >= 1, got 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_status_has_a_name_and_a_message),
        cmocka_unit_test(names_and_values_are_unique),
        cmocka_unit_test(published_values_are_fixed),
        cmocka_unit_test(unknown_values_get_a_fallback_not_a_crash),
        cmocka_unit_test(rejections_are_exactly_the_policy_refusals),
        cmocka_unit_test(config_failure_names_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
