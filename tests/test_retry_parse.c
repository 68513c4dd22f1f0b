#include <string.h>

#include "resil/retry.h"
#include "support.h"

/* 1994-11-06 08:49:37 UTC, the RFC's example date. */
#define RFC_EXAMPLE INT64_C(784111777)

static resil_status after(const char *s, int64_t now, resil_retry_hint_t *h)
{
    h->kind = RESIL_RETRY_HINT_NONE;
    h->delay_ns = 424242;
    return resil_retry_after_parse(s, strlen(s), now, h);
}

static void retry_after_delta_seconds(void **state)
{
    (void)state;
    resil_retry_hint_t h;
    assert_int_equal(after("120", 0, &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, RESIL_SEC(120));
    assert_int_equal(after("0", 0, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, 0);
    assert_int_equal(after(" \t7 ", 0, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(7));
    assert_int_equal(after("18446744073", 0, &h), RESIL_OK); /* largest that fits in ns */
    assert_int_equal(h.delay_ns, UINT64_C(18446744073) * 1000000000u);
}

static void retry_after_imf_fixdate(void **state)
{
    (void)state;
    resil_retry_hint_t h;
    assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE - 30, &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, RESIL_SEC(30));
    /* a date in the past means "now" */
    assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE + 5, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, 0);
    /* leap day, end of year, epoch */
    assert_int_equal(after("Thu, 29 Feb 2024 00:00:00 GMT", INT64_C(1709164800) - 1, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(1));
    assert_int_equal(after("Fri, 31 Dec 2100 23:59:59 GMT", INT64_C(4133980799) - 60, &h),
                     RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(60));
    assert_int_equal(after("Thu, 01 Jan 1970 00:00:10 GMT", 0, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(10));
    /* before the epoch, with a negative now */
    assert_int_equal(after("Wed, 31 Dec 1969 23:59:50 GMT", -20, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(10));
    /* far future saturates */
    assert_int_equal(after("Fri, 31 Dec 9999 23:59:59 GMT", 0, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, UINT64_MAX);
}

static void retry_after_obsolete_date_forms(void **state)
{
    (void)state;
    resil_retry_hint_t h;
    assert_int_equal(after("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE - 30, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(30));
    assert_int_equal(after("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE - 30, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(30));
    assert_int_equal(after("Thu Dec 25 00:00:00 2025", INT64_C(1766620800) - 2, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(2));
    /* two-digit years: "30" seen in 2026 is 2030 (4 years ahead), "94" is
     * 1994 (2094 would be more than 50 years ahead) */
    const int64_t jan2026 = INT64_C(1767225600);
    assert_int_equal(after("Monday, 01-Jan-30 00:00:00 GMT", jan2026, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(INT64_C(1893456000) - jan2026));
    assert_int_equal(after("Sunday, 06-Nov-94 08:49:37 GMT", jan2026, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, 0);
    /* "10" seen in 2080 is 2110 (30 years ahead), not 2010 (70 years back) */
    const int64_t jan2080 = INT64_C(3471292800), jan2110 = INT64_C(4417977600);
    assert_int_equal(after("Wednesday, 01-Jan-10 00:00:00 GMT", jan2080, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(jan2110 - jan2080));
    /* before year 0 (now as far back as the parser allows): the proleptic
     * Gregorian calendar repeats every 400 years (146097 days), so 2400
     * years earlier the same dates are exactly as far apart */
    const int64_t shift = INT64_C(6) * 146097 * 86400;
    assert_int_equal(after("Monday, 01-Jan-30 00:00:00 GMT", jan2026 - shift, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(INT64_C(1893456000) - jan2026));
    assert_int_equal(after("Monday, 01-Jan-30 00:00:00 GMT", jan2026 - shift - 86400, &h),
                     RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(INT64_C(1893456000) - jan2026 + 86400));
    /* asctime with a two-digit day */
    assert_int_equal(after("Sun Nov 06 08:49:37 1994", RFC_EXAMPLE - 1, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(1));
}

static void malformed_retry_after_gets_a_clear_error(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "   ",
        "-5",
        "+5",
        "5s",
        "1.5",
        "0x10",
        "99999999999999999999",          /* overflows 64 bits */
        "18446744074",                   /* fits 64 bits, not as ns */
        "Sun, 06 Nov 1994 08:49:37 UTC", /* not GMT */
        "Sun, 6 Nov 1994 08:49:37 GMT",  /* one-digit day */
        "Sun, 06 nov 1994 08:49:37 GMT", /* case-sensitive month */
        "Sun, 06 Noc 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT", /* no such day */
        "Sun, 29 Feb 2023 08:49:37 GMT", /* not a leap year */
        "Sun, 29 Feb 1900 08:49:37 GMT", /* nor is 1900 */
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT x", /* trailing garbage */
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994", /* asctime pads with a space */
        "Sun Nov  6 08:49:37 94",
        "Sun",
        /* each element of each grammar missing or wrong in turn */
        "Sun, 0a Nov 1994 08:49:37 GMT", /* not a digit (above '9') */
        "Sun, 06-Nov 1994 08:49:37 GMT", /* IMF: separators */
        "Sun, 06 Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994-08:49:37 GMT",
        "Sun, 06 Nov 1994 xx:49:37 GMT", /* time of day: each field */
        "Sun, 06 Nov 1994 08-49:37 GMT",
        "Sun, 06 Nov 1994 08:4x:37 GMT",
        "Sun, 06 Nov 1994 08:49:3x GMT",
        "Sunday 06-Nov-94 08:49:37 GMT", /* rfc850: each element */
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sunday, 06-Nox-94 08:49:37 GMT",
        "Sunday, 06-Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-9x 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:xx GMT",
        "Sunday, 06-Nov-94 08:49:37 UTC",
        "Sunday, 06-Nov-94 08:49:37 GMTx",
        "Sun Nox  6 08:49:37 1994", /* asctime: each element */
        "Sun Nov-6 08:49:37 1994",
        "Sun Nov  x 08:49:37 1994",
        "Sun Nov x6 08:49:37 1994",
        "Sun Nov  6-08:49:37 1994",
        "Sun Nov  6 08:49:xx 1994",
        "Sun Nov  6 08:49:37-1994",
        "Sun Nov  6 08:49:37 1994x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resil_retry_hint_t h;
        resil_status s = after(bad[i], RFC_EXAMPLE, &h);
        if (s != RESIL_E_PARSE)
            fail_msg("\"%s\" gave %s", bad[i], resil_status_name(s));
        assert_int_equal(h.kind, RESIL_RETRY_HINT_NONE); /* untouched */
        assert_int_equal(h.delay_ns, 424242);
        assert_true(strlen(resil_status_detail()) > 10);
    }
    resil_retry_hint_t h;
    assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, &h), RESIL_E_INVALID_ARG);
    assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN, &h), RESIL_E_INVALID_ARG);
    assert_string_equal(resil_status_detail(),
                        "retry_after_parse: now_unix_s -9223372036854775808 out of range");
    assert_int_equal(resil_retry_after_parse(NULL, 3, 0, &h), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_after_parse("1", 1, 0, NULL), RESIL_E_INVALID_ARG);
    /* length is honoured: no NUL needed, nothing read past it */
    assert_int_equal(resil_retry_after_parse("12345", 2, 0, &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_SEC(12));
    assert_int_equal(after("12 3", 0, &h), RESIL_E_PARSE);
    assert_string_equal(resil_status_detail(),
                        "retry_after: unexpected character 0x20 at offset 2");
}

static resil_status grpc(const char *s, resil_retry_hint_t *h)
{
    h->kind = RESIL_RETRY_HINT_NONE;
    h->delay_ns = 1;
    return resil_retry_grpc_pushback_parse(s, strlen(s), h);
}

static void grpc_pushback_follows_grfc_a6(void **state)
{
    (void)state;
    resil_retry_hint_t h;
    assert_int_equal(grpc("250", &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, RESIL_MS(250));
    assert_int_equal(grpc("0", &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, 0);
    /* "-0" is the int32 0, which is not negative: retry at once (found by
     * fuzz_retry_parse) */
    assert_int_equal(grpc("-0", &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, 0);
    assert_int_equal(grpc("2147483647", &h), RESIL_OK);
    assert_int_equal(h.delay_ns, RESIL_MS(2147483647));
    /* negative: a valid "do not retry" */
    assert_int_equal(grpc("-1", &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_DO_NOT_RETRY);
    assert_int_equal(grpc("-2147483648", &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_DO_NOT_RETRY);
    /* malformed: an error, and "do not retry" as gRFC A6 says */
    static const char *const bad[] = {
        "",    "-",  "+5", "1e3", "12ms", "2147483648", "-2147483649", "99999999999999999999999",
        "0x1", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resil_status s = grpc(bad[i], &h);
        if (s != RESIL_E_PARSE)
            fail_msg("\"%s\" gave %s", bad[i], resil_status_name(s));
        assert_int_equal(h.kind, RESIL_RETRY_HINT_DO_NOT_RETRY);
    }
    assert_int_equal(grpc("2147483648", &h), RESIL_E_PARSE);
    assert_string_equal(resil_status_detail(),
                        "grpc-retry-pushback-ms: 2147483648 is outside int32");
    assert_int_equal(resil_retry_grpc_pushback_parse(NULL, 0, &h), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_retry_grpc_pushback_parse("1", 1, NULL), RESIL_E_INVALID_ARG);
}

static void millisecond_hints_parse_and_reject_garbage(void **state)
{
    (void)state;
    resil_retry_hint_t h = {RESIL_RETRY_HINT_NONE, 5};
    assert_int_equal(resil_retry_ms_parse("1500", 4, &h), RESIL_OK);
    assert_int_equal(h.kind, RESIL_RETRY_HINT_AFTER);
    assert_int_equal(h.delay_ns, RESIL_MS(1500));
    static const char *const bad[] = {"", "-1", "1.5", "abc", "18446744073710"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = (resil_retry_hint_t){RESIL_RETRY_HINT_NONE, 5};
        assert_int_equal(resil_retry_ms_parse(bad[i], strlen(bad[i]), &h), RESIL_E_PARSE);
        assert_int_equal(h.kind, RESIL_RETRY_HINT_NONE);
        assert_int_equal(h.delay_ns, 5);
    }
    assert_int_equal(resil_retry_ms_parse(NULL, 1, &h), RESIL_E_INVALID_ARG);
    assert_string_equal(resil_status_detail(), "retry_ms_parse: input is NULL");
    assert_int_equal(resil_retry_ms_parse("1", 1, NULL), RESIL_E_INVALID_ARG);
    assert_string_equal(resil_status_detail(), "retry_ms_parse: hint is NULL");
    /* UINT64_MAX + 1: the last digit overflows, not the multiplication */
    const char *over = "18446744073709551616";
    assert_int_equal(resil_retry_ms_parse(over, strlen(over), &h), RESIL_E_PARSE);
    assert_string_equal(resil_status_detail(), "retry_ms: number too large");
}

static void parsed_hints_drive_next_delay(void **state)
{
    (void)state;
    resil_retry_policy_t p = resil_retry_policy_default();
    p.max_attempts = 5;
    resil_retry_state_t st;
    resil_retry_hint_t h;
    uint64_t d;
    assert_int_equal(resil_retry_state_init_at(&st, &p, 0), RESIL_OK);
    assert_int_equal(after("3", 0, &h), RESIL_OK);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_GO);
    assert_int_equal(d, RESIL_SEC(3));
    grpc("junk", &h);
    assert_int_equal(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, &h, &d),
                     RESIL_RETRY_STOP_DO_NOT_RETRY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_after_delta_seconds),
        cmocka_unit_test(retry_after_imf_fixdate),
        cmocka_unit_test(retry_after_obsolete_date_forms),
        cmocka_unit_test(malformed_retry_after_gets_a_clear_error),
        cmocka_unit_test(grpc_pushback_follows_grfc_a6),
        cmocka_unit_test(millisecond_hints_parse_and_reject_garbage),
        cmocka_unit_test(parsed_hints_drive_next_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
