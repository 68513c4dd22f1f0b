/*
 * Crash at every step of a retry-budget decision: a child process makes one
 * decision on a shared budget and dies at its N-th atomic step, for N = 1,
 * 2, ... until the decision completes, for each budget kind and each
 * operation. After every death the parent checks that the block validates,
 * that the level moved by at most that one decision (never minted, never
 * lost more), and that the budget still decides: successes refill it until
 * a retry is granted again.
 */
#include <string.h>

#include "crash_step.h"
#include "resil/retry.h"
#include "support.h"

static const char *const kind_names[] = {"token bucket", "ratio", "quota"};

static resil_retry_budget_config_t config(resil_retry_budget_kind kind)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = kind;
    c.max_tokens = 10;
    c.token_ratio_milli = 500;
    c.retry_percent = 50;
    c.min_retries_per_sec = 0;
    return c;
}

typedef struct job {
    resil_retry_budget_t *b;
    int op;
    uint64_t now;
} job;

/* One decision: a failure that asks for a retry (op 0) or a success (op 1),
 * preceded by a request for the ratio kind. */
static void decide(resil_retry_budget_t *b, int op, uint64_t now)
{
    if (op == 0) {
        resil_retry_budget_on_request(b, now);
        uint32_t cost;
        resil_retry_budget_on_failure(b, now, 0, 1, &cost);
    } else {
        resil_retry_budget_on_success(b, now, 0);
    }
}

static void decide_job(void *arg)
{
    job *j = arg;
    decide(j->b, j->op, j->now);
}

static void every_crash_point_leaves_a_valid_working_budget(void **state)
{
    (void)state;
    const uint64_t now = RESIL_SEC(1000);
    size_t len = 4096;
    void *mem = test_shared_alloc(len);
    assert_non_null(mem);
    unsigned long points = 0;
    for (int kind = 0; kind < 3; kind++) {
        resil_retry_budget_config_t c = config((resil_retry_budget_kind)kind);
        assert_true(resil_retry_budget_size(&c) <= len);
        for (int op = 0; op < 2; op++) {
            unsigned long n;
            for (n = 1; n < 100; n++) {
                memset(mem, 0, len);
                resil_retry_budget_t *b = NULL;
                assert_int_equal(resil_retry_budget_init(mem, len, &c, &b), RESIL_OK);
                for (int i = 0; i < 3; i++) /* spend some, so a success has room to refill */
                    decide(b, 0, now);
                resil_retry_budget_stats_t before, after;
                assert_int_equal(resil_retry_budget_stats(b, now, &before), RESIL_OK);
                job j = {b, op, now};
                int completed = crash_at_step(n, decide_job, &j);
                if (resil_retry_budget_check(b) != RESIL_OK)
                    fail_msg("%s, op %d, died at step %lu: %s", kind_names[kind], op, n,
                             resil_status_detail());
                assert_int_equal(resil_retry_budget_stats(b, now, &after), RESIL_OK);
                /* one decision moves the level by at most one retry's cost
                 * (5 quota units or 1 token) or one success's refund */
                uint64_t moved = after.level_milli > before.level_milli
                                     ? after.level_milli - before.level_milli
                                     : before.level_milli - after.level_milli;
                if (moved > 10000)
                    fail_msg("%s, op %d, died at step %lu: level moved by %llu milli",
                             kind_names[kind], op, n, (unsigned long long)moved);
                assert_true(after.granted + after.refused <= before.granted + before.refused + 1);
                /* still working: successes (and fresh requests) make room again */
                int granted = 0;
                for (int i = 0; i < 200 && !granted; i++) {
                    resil_retry_budget_on_success(b, now + RESIL_SEC(60), 0);
                    resil_retry_budget_on_request(b, now + RESIL_SEC(60));
                    uint32_t cost;
                    granted = resil_retry_budget_on_failure(b, now + RESIL_SEC(60), 0, 1, &cost) ==
                              RESIL_OK;
                }
                if (!granted)
                    fail_msg("%s, op %d, died at step %lu: never grants again", kind_names[kind],
                             op, n);
                points++;
                if (completed)
                    break;
            }
            assert_true(n < 100);
            print_message("%s, %s: %lu atomic steps, a crash at each one left a valid budget\n",
                          kind_names[kind], op == 0 ? "failure + retry" : "success", n - 1);
        }
    }
    print_message("%lu crash points checked\n", points);
    test_shared_free(mem, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_crash_point_leaves_a_valid_working_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
