#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resil/retry.h"
#include "support.h"

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

static void ratio_allows_percent_of_requests_plus_floor(void **state)
{
    (void)state;
    resil_retry_budget_config_t c = ratio_cfg(20, 0);
    resil_retry_budget_t *b = make(&c);
    const uint64_t t = RESIL_SEC(1000);
    assert_int_equal(resil_retry_budget_on_failure(b, t, 0, 1, NULL), RESIL_E_BUDGET_EXHAUSTED);
    for (int i = 0; i < 100; i++)
        resil_retry_budget_on_request(b, t);
    int granted = 0;
    while (resil_retry_budget_on_failure(b, t, 0, 1, NULL) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 20);
    resil_retry_budget_free(b);

    c = ratio_cfg(20, 2); /* floor: 2/s * 10 s = 20 retries */
    b = make(&c);
    granted = 0;
    while (resil_retry_budget_on_failure(b, t, 0, 1, NULL) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 20);
    for (int i = 0; i < 50; i++)
        resil_retry_budget_on_request(b, t);
    granted = 0;
    while (resil_retry_budget_on_failure(b, t, 0, 1, NULL) == RESIL_OK)
        granted++;
    assert_int_equal(granted, 10); /* 20 + 50 * 20 % = 30 in all */
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
    assert_int_equal(resil_retry_budget_size(&c), 448); /* header, config, level, 4 stat stripes */
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
        cmocka_unit_test(ratio_never_exceeds_its_promise_over_a_scripted_workload),
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
