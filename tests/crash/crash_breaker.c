/*
 * Crash at every step: a child process performs one breaker operation on a
 * shared block and dies at its N-th atomic read-modify-write (the step hook
 * calls _exit there), for N = 1, 2, ... until the operation completes. After
 * every death the parent validates the block and must be able to drive the
 * breaker through OPEN and HALF_OPEN back to CLOSED: no crash point may
 * leave it corrupt or stuck. Time is passed in explicitly, so every run is
 * exact.
 */
#include <string.h>

#include "crash_step.h"
#include "resil/breaker.h"
#include "support.h"

typedef enum op { OP_TRIP, OP_HALF_OPEN, OP_CLOSE, OP_REOPEN, N_OPS } op;
static const char *const op_names[] = {"trip", "half-open", "close", "reopen"};

#define T0 RESIL_SEC(1000)
#define WAIT RESIL_SEC(10)
#define PROBE_WAIT RESIL_SEC(5)

static resil_breaker_config_t config(void)
{
    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_size = 4;
    c.minimum_calls = 4;
    c.open_wait_ns = WAIT;
    c.half_open_probes = 1;
    c.half_open_max_wait_ns = PROBE_WAIT;
    c.stripes = 2;
    return c;
}

static void call_at(resil_breaker_t *b, uint64_t t, resil_outcome o)
{
    resil_breaker_permit_t p;
    if (resil_breaker_acquire_at(b, t, &p) == RESIL_OK)
        resil_breaker_record_at(b, &p, o, 1, t);
}

/* Brings a fresh breaker to the state just before @p which, and returns the
 * time the operation runs at. Probe permits the parent takes are reported
 * by the child (it is the child's operation). */
static uint64_t prepare(resil_breaker_t *b, op which, resil_breaker_permit_t *probe)
{
    for (int i = 0; i < 3; i++)
        call_at(b, T0, i == 0 ? RESIL_OUTCOME_SUCCESS : RESIL_OUTCOME_FAILURE);
    if (which == OP_TRIP)
        return T0; /* the next failure trips: 3 of 4 */
    call_at(b, T0, RESIL_OUTCOME_FAILURE);
    if (which == OP_HALF_OPEN)
        return T0 + WAIT; /* the next acquire half-opens */
    assert_int_equal(resil_breaker_acquire_at(b, T0 + WAIT, probe), RESIL_OK);
    return T0 + WAIT; /* the child reports the probe: success closes, failure reopens */
}

typedef struct job {
    resil_breaker_t *b;
    op which;
    uint64_t t;
    resil_breaker_permit_t *probe;
} job;

static void perform(void *arg)
{
    job *j = arg;
    resil_breaker_t *b = j->b;
    uint64_t t = j->t;
    resil_breaker_permit_t *probe = j->probe;
    op which = j->which;
    resil_breaker_permit_t p;
    switch (which) {
    case OP_TRIP:
        call_at(b, t, RESIL_OUTCOME_FAILURE);
        break;
    case OP_HALF_OPEN:
        resil_breaker_acquire_at(b, t, &p);
        break;
    case OP_CLOSE:
        resil_breaker_record_at(b, probe, RESIL_OUTCOME_SUCCESS, 1, t);
        break;
    default:
        resil_breaker_record_at(b, probe, RESIL_OUTCOME_FAILURE, 1, t);
        break;
    }
}

/* From any valid state, time and probes must bring the breaker to CLOSED. */
static int recovers(resil_breaker_t *b, uint64_t t)
{
    for (int round = 0; round < 6; round++) {
        if (resil_breaker_state_get(b) == RESIL_BREAKER_CLOSED)
            return 1;
        t += RESIL_SEC(3600); /* past any open wait and probe deadline */
        resil_breaker_permit_t p;
        if (resil_breaker_acquire_at(b, t, &p) == RESIL_OK)
            resil_breaker_record_at(b, &p, RESIL_OUTCOME_SUCCESS, 1, t);
    }
    return resil_breaker_state_get(b) == RESIL_BREAKER_CLOSED;
}

static void every_crash_point_leaves_a_valid_recoverable_breaker(void **state)
{
    (void)state;
    resil_breaker_config_t cfg = config();
    size_t len = (resil_breaker_size(&cfg) + 4095) & ~(size_t)4095;
    void *mem = test_shared_alloc(len);
    assert_non_null(mem);
    unsigned long points = 0;
    for (op which = OP_TRIP; which < N_OPS; which++) {
        unsigned long n;
        for (n = 1; n < 200; n++) {
            memset(mem, 0, len);
            assert_int_equal(resil_breaker_init(mem, len, &cfg), RESIL_OK);
            resil_breaker_t *b = NULL;
            assert_int_equal(resil_breaker_attach(mem, len, NULL, &b), RESIL_OK);
            resil_breaker_permit_t probe;
            memset(&probe, 0, sizeof probe);
            uint64_t t = prepare(b, which, &probe);
            job j = {b, which, t, &probe};
            int completed = crash_at_step(n, perform, &j);
            if (resil_breaker_check(b) != RESIL_OK)
                fail_msg("%s, died at step %lu: %s", op_names[which], n, resil_status_detail());
            if (!recovers(b, t))
                fail_msg("%s, died at step %lu: stuck in %s", op_names[which], n,
                         resil_breaker_state_name(resil_breaker_state_get(b)));
            resil_breaker_free(b);
            points++;
            if (completed)
                break;
        }
        assert_true(n < 200);
        print_message("%s: %lu atomic steps, a crash at each one recovered\n", op_names[which],
                      n - 1);
    }
    print_message("%lu crash points checked\n", points);
    test_shared_free(mem, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_crash_point_leaves_a_valid_recoverable_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
