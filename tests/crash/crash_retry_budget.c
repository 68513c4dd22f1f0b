/*
 * Crash at every step of a retry-budget decision or lease transfer: a child
 * process makes one decision (or moves a lease) on a shared budget and dies
 * at its N-th atomic step, for N = 1, 2, ... until it completes, for each
 * budget kind and each operation. After every death the parent checks that
 * the block validates, that the level moved by at most that one decision
 * (never minted, never lost more; a transfer moves nothing), and that the
 * budget still decides: successes refill it until a retry is granted
 * again. Then it reclaims every lease, which completes a transfer the child
 * left half done, and checks that nothing was lost on the way.
 */
#include <string.h>

#include "crash_step.h"
#include "resil/retry.h"
#include "support.h"

/* Internal to src/retry_budget.c, for tests: grant the calling thread's
 * stripe a lease (what a failure that lost a CAS does); reclaim them all. */
void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now);
void resil__retry_budget_reclaim(resil_retry_budget_t *b);

enum { OPS = 5 };
static const char *const op_names[OPS] = {"failure + retry", "success", "lease grant",
                                          "lease reclaim", "failure + success on a lease"};

static const char *const kind_names[] = {"token bucket", "ratio", "quota"};

static resil_retry_budget_config_t config(resil_retry_budget_kind kind, int op)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = kind;
    c.max_tokens = op < 2 ? 10 : 100; /* leases need tokens above half to lend */
    c.token_ratio_milli = 500;
    c.retry_percent = 50;
    c.min_retries_per_sec = op < 2 ? 0 : 100; /* ratio leases need room: 1000 retries */
    return c;
}

typedef struct job {
    resil_retry_budget_t *b;
    int op;
    uint64_t now;
} job;

/* One decision: a failure that asks for a retry (op 0) or a success (op 1),
 * preceded by a request for the ratio kind; a lease granted to this
 * thread's stripe (2) or all reclaimed (3); both decisions, on the lease
 * the parent granted to the stripe the child shares with it (4). */
static void decide(resil_retry_budget_t *b, int op, uint64_t now)
{
    if (op == 0 || op == 4) {
        resil_retry_budget_on_request(b, now);
        uint32_t cost;
        resil_retry_budget_on_failure(b, now, 0, 1, &cost);
    }
    if (op == 1 || op == 4)
        resil_retry_budget_on_success(b, now, 0);
    if (op == 2)
        resil__retry_budget_lease(b, now);
    if (op == 3)
        resil__retry_budget_reclaim(b);
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
        for (int op = 0; op < OPS; op++) {
            resil_retry_budget_config_t c = config((resil_retry_budget_kind)kind, op);
            assert_true(resil_retry_budget_size(&c) <= len);
            unsigned long n;
            for (n = 1; n < 100; n++) {
                memset(mem, 0, len);
                resil_retry_budget_t *b = NULL;
                assert_int_equal(resil_retry_budget_init(mem, len, &c, &b), RESIL_OK);
                for (int i = 0; i < 3; i++) /* spend some, so a success has room to refill */
                    decide(b, 0, now);
                if (op >= 3) /* a lease for the child to reclaim or decide on */
                    resil__retry_budget_lease(b, now);
                resil_retry_budget_stats_t before, after;
                assert_int_equal(resil_retry_budget_stats(b, now, &before), RESIL_OK);
                job j = {b, op, now};
                int completed = crash_at_step(n, decide_job, &j);
                if (resil_retry_budget_check(b) != RESIL_OK)
                    fail_msg("%s, %s, died at step %lu: %s", kind_names[kind], op_names[op], n,
                             resil_status_detail());
                assert_int_equal(resil_retry_budget_stats(b, now, &after), RESIL_OK);
                /* one decision moves the level by at most one retry's cost
                 * (5 quota units or 1 token) or one success's refund; a
                 * transfer moves nothing */
                uint64_t moved = after.level_milli > before.level_milli
                                     ? after.level_milli - before.level_milli
                                     : before.level_milli - after.level_milli;
                if (moved > (op == 2 || op == 3 ? 0 : 10000))
                    fail_msg("%s, %s, died at step %lu: level moved by %llu milli",
                             kind_names[kind], op_names[op], n, (unsigned long long)moved);
                assert_true(after.granted + after.refused <= before.granted + before.refused + 1);
                if (kind == RESIL_RETRY_BUDGET_RATIO) {
                    /* the window's promise: what was granted before, what
                     * is granted now until refused, and the child's one
                     * retry fit in the allowance, exactly when the child
                     * completed; a crash loses at most one lease's retries
                     * (256 at most; 125 here) from it */
                    const uint64_t allow =
                        after.window_requests * c.retry_percent / 100 +
                        (uint64_t)c.min_retries_per_sec * c.ttl_ns / RESIL_SEC(1);
                    uint64_t g = 0;
                    while (g <= allow && /* bounded: a minting budget must fail, not hang */
                           resil_retry_budget_on_failure(b, now, 0, 1, NULL) == RESIL_OK)
                        g++;
                    if (before.granted + g > allow || before.granted + g + 1 + 125 < allow ||
                        (completed && after.granted + g != allow))
                        fail_msg("ratio, %s, died at step %lu: %llu + %llu granted, allowance %llu",
                                 op_names[op], n, (unsigned long long)before.granted,
                                 (unsigned long long)g, (unsigned long long)allow);
                }
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
                    fail_msg("%s, %s, died at step %lu: never grants again", kind_names[kind],
                             op_names[op], n);
                /* a transfer left half done is completed by the next one:
                 * everything comes back to the level, nothing lost */
                assert_int_equal(resil_retry_budget_stats(b, now, &before), RESIL_OK);
                resil__retry_budget_reclaim(b);
                assert_int_equal(resil_retry_budget_check(b), RESIL_OK);
                assert_int_equal(resil_retry_budget_stats(b, now, &after), RESIL_OK);
                assert_int_equal(after.level_milli, before.level_milli);
                const unsigned char *w = mem;
                for (size_t off = 136; off < 448; off += off == 136 ? 56 : 64) {
                    uint64_t word; /* transfer idle, every lease empty */
                    memcpy(&word, w + off, 8);
                    assert_int_equal((word >> 22) & 3, 0);
                    if (off > 136)
                        assert_int_equal(word >> 62, 0);
                }
                for (size_t off = 192 + 24; off < 448; off += 64) {
                    uint64_t word; /* no ratio lease holds retries */
                    memcpy(&word, w + off, 8);
                    assert_int_equal(word & 0xffff, 0);
                }
                points++;
                if (completed)
                    break;
            }
            assert_true(n < 100);
            print_message("%s, %s: %lu atomic steps, a crash at each one left a valid budget\n",
                          kind_names[kind], op_names[op], n - 1);
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
