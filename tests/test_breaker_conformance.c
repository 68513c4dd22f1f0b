/*
 * Conformance table: the documented behaviour of resilience4j's and
 * gobreaker's breakers, and libresil's own additions, as scripts run
 * against a breaker on a manual clock. Each script is a line of tokens:
 *
 *   S F s f I   acquire (must be admitted) and record success, failure,
 *               slow success, slow failure, ignored
 *   P           acquire a probe (must be admitted as a probe) and keep it
 *   P. Pf Ps    report the oldest kept probe: success, failure ("Ps" = slow)
 *   +30s +5ms   advance the clock
 *   =CLOSED     expect a state (=OPEN, =HALF_OPEN, =DISABLED, =FORCED_OPEN,
 *               =METRICS_ONLY)
 *   !open !full !forced   expect acquire to be rejected for that reason
 *   ok          expect acquire to be admitted (the permit is dropped unused
 *               -- only valid where that cannot matter, i.e. not a probe)
 *   @force @disable @shadow @reset   manual transitions
 *   xN          the previous token N times in all
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/breaker.h"
#include "support.h"

typedef struct scenario {
    const char *name;
    resil_window_kind kind;
    uint32_t window; /* count: calls; time: seconds (1 s buckets) */
    uint32_t minimum;
    uint32_t fail_pct;
    uint32_t slow_pct;
    uint32_t consecutive;
    uint32_t probes;
    const char *script;
} scenario;

/* Open wait 60 s (the resilience4j and gobreaker default), probe deadline
 * 60 s, slow threshold 1 s. */
static const scenario table[] = {
    {"r4j: opens when the failure rate reaches the threshold at the minimum number of calls",
     RESIL_WINDOW_COUNT, 10, 10, 50, 0, 0, 10, "S x5 F x4 =CLOSED F =OPEN !open"},
    {"r4j: no evaluation below the minimum number of calls", RESIL_WINDOW_COUNT, 10, 10, 50, 0, 0,
     10, "F x8 =CLOSED"},
    {"r4j: a failure rate below the threshold keeps it closed", RESIL_WINDOW_COUNT, 10, 10, 50, 0,
     0, 10, "S x6 F x3 =CLOSED F =CLOSED F =OPEN"},
    {"r4j: the count window keeps only the last N calls", RESIL_WINDOW_COUNT, 4, 4, 50, 0, 0, 10,
     "F S S S S F =CLOSED F =OPEN"},
    {"r4j: OPEN rejects until the wait duration has elapsed, then HALF_OPEN", RESIL_WINDOW_COUNT, 2,
     2, 50, 0, 0, 3, "F F =OPEN +59s !open =OPEN +1s P =HALF_OPEN"},
    {"r4j: HALF_OPEN permits exactly the configured number of calls", RESIL_WINDOW_COUNT, 2, 2, 50,
     0, 0, 3, "F F +60s P P P !full !full =HALF_OPEN"},
    {"r4j: HALF_OPEN closes when the permitted calls are below the thresholds", RESIL_WINDOW_COUNT,
     2, 2, 50, 0, 0, 3, "F F +60s P P P P. Pf P. =CLOSED S =CLOSED"},
    {"r4j: HALF_OPEN reopens when the permitted calls reach the failure threshold",
     RESIL_WINDOW_COUNT, 2, 2, 50, 0, 0, 4, "F F +60s P P P P Pf P. Pf =OPEN !open"},
    {"r4j: slow calls trip the slow-call rate", RESIL_WINDOW_COUNT, 4, 4, 0, 50, 0, 10,
     "S s S =CLOSED s =OPEN"},
    {"r4j: a slow failure counts as failure and as slow", RESIL_WINDOW_COUNT, 2, 2, 100, 100, 0, 10,
     "f =CLOSED f =OPEN"},
    {"r4j: ignored outcomes count as neither success nor failure", RESIL_WINDOW_COUNT, 2, 2, 50, 0,
     0, 10, "I x10 =CLOSED F F =OPEN"},
    {"r4j: DISABLED always permits and records nothing", RESIL_WINDOW_COUNT, 2, 2, 50, 0, 0, 10,
     "@disable =DISABLED F x20 =DISABLED ok @reset =CLOSED"},
    {"r4j: FORCED_OPEN always rejects", RESIL_WINDOW_COUNT, 2, 2, 50, 0, 0, 10,
     "@force !forced +1000s !forced =FORCED_OPEN @reset S =CLOSED"},
    {"r4j: METRICS_ONLY evaluates but never rejects", RESIL_WINDOW_COUNT, 2, 2, 50, 0, 0, 10,
     "@shadow F F =METRICS_ONLY ok ok F S =METRICS_ONLY"},
    {"r4j: the time window forgets calls older than its length", RESIL_WINDOW_TIME, 10, 4, 50, 0, 0,
     10, "F F S +10s S S F =CLOSED F =OPEN"},
    {"gobreaker: ConsecutiveFailures > 5 trips (six in a row)", RESIL_WINDOW_COUNT, 100, 100, 0, 0,
     6, 1, "F x5 S F x5 =CLOSED F =OPEN"},
    {"gobreaker: any failure in half-open reopens", RESIL_WINDOW_COUNT, 100, 100, 0, 0, 1, 3,
     "F =OPEN +60s P P Pf =OPEN"},
    {"gobreaker: MaxRequests consecutive successes in half-open close it", RESIL_WINDOW_COUNT, 100,
     100, 0, 0, 1, 2, "F +60s P P !full P. P. =CLOSED"},
    {"libresil: a success never opens it; the next failure does (r4j would open here)",
     RESIL_WINDOW_COUNT, 4, 4, 50, 0, 0, 10, "F F S =CLOSED S =CLOSED F =OPEN"},
    {"libresil: a half-open probe that never reports does not block forever", RESIL_WINDOW_COUNT, 2,
     2, 50, 0, 0, 1, "F F +60s P !full +59s !full +1s !open =OPEN"},
};

typedef struct runner {
    resil_manual_clock_t *m;
    resil_breaker_t *b;
    resil_breaker_permit_t kept[16];
    int head, tail;
    const char *name;
} runner;

static void check(runner *r, int ok, const char *tok, const char *what)
{
    if (!ok)
        fail_msg("scenario \"%s\", token \"%s\": %s (state %s)", r->name, tok, what,
                 resil_breaker_state_name(resil_breaker_state_get(r->b)));
}

static void step(runner *r, const char *tok)
{
    resil_breaker_permit_t p;
    static const struct {
        const char *tok;
        resil_outcome o;
        uint64_t d;
    } calls[] = {{"S", RESIL_OUTCOME_SUCCESS, 1},
                 {"F", RESIL_OUTCOME_FAILURE, 1},
                 {"s", RESIL_OUTCOME_SUCCESS, RESIL_SEC(2)},
                 {"f", RESIL_OUTCOME_FAILURE, RESIL_SEC(2)},
                 {"I", RESIL_OUTCOME_IGNORED, 1}};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (strcmp(tok, calls[i].tok) == 0) {
            check(r, resil_breaker_acquire(r->b, &p) == RESIL_OK, tok, "call was not admitted");
            check(r, resil_breaker_record(r->b, &p, calls[i].o, calls[i].d) == RESIL_OK, tok,
                  "record failed");
            return;
        }
    if (strcmp(tok, "P") == 0) {
        check(r, resil_breaker_acquire(r->b, &r->kept[r->tail % 16]) == RESIL_OK, tok,
              "probe was not admitted");
        check(r, resil_breaker_permit_is_probe(&r->kept[r->tail % 16]), tok, "not a probe");
        r->tail++;
        return;
    }
    if (tok[0] == 'P') {
        check(r, r->head < r->tail, tok, "no probe kept");
        resil_outcome o = tok[1] == 'f' ? RESIL_OUTCOME_FAILURE : RESIL_OUTCOME_SUCCESS;
        uint64_t d = tok[1] == 's' ? RESIL_SEC(2) : 1;
        resil_status s = resil_breaker_record(r->b, &r->kept[r->head++ % 16], o, d);
        check(r, s == RESIL_OK, tok, "probe report failed");
        return;
    }
    if (tok[0] == '+') {
        char *end;
        uint64_t n = strtoull(tok + 1, &end, 10);
        uint64_t unit = strcmp(end, "s") == 0 ? RESIL_SEC(1) : RESIL_MS(1);
        resil_manual_clock_advance(r->m, n * unit);
        return;
    }
    if (tok[0] == '=') {
        check(r, strcmp(resil_breaker_state_name(resil_breaker_state_get(r->b)), tok + 1) == 0, tok,
              "unexpected state");
        return;
    }
    if (tok[0] == '!') {
        resil_status want = strcmp(tok, "!open") == 0   ? RESIL_E_BREAKER_OPEN
                            : strcmp(tok, "!full") == 0 ? RESIL_E_HALF_OPEN_FULL
                                                        : RESIL_E_BREAKER_FORCED_OPEN;
        resil_status got = resil_breaker_acquire(r->b, &p);
        check(r, got == want, tok, resil_status_name(got));
        return;
    }
    if (strcmp(tok, "ok") == 0) {
        check(r, resil_breaker_acquire(r->b, &p) == RESIL_OK, tok, "not admitted");
        return;
    }
    if (tok[0] == '@') {
        resil_status s = strcmp(tok, "@force") == 0     ? resil_breaker_force_open(r->b)
                         : strcmp(tok, "@disable") == 0 ? resil_breaker_disable(r->b)
                         : strcmp(tok, "@shadow") == 0  ? resil_breaker_metrics_only(r->b)
                                                        : resil_breaker_reset(r->b);
        check(r, s == RESIL_OK, tok, "manual transition failed");
        return;
    }
    fail_msg("scenario \"%s\": unknown token \"%s\"", r->name, tok);
}

static void run(const scenario *sc)
{
    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_kind = sc->kind;
    c.window_size = sc->kind == RESIL_WINDOW_COUNT ? sc->window : 100;
    c.window_duration_ns = RESIL_SEC(sc->window);
    c.window_buckets = sc->window;
    c.minimum_calls = sc->minimum;
    c.failure_rate_threshold = sc->fail_pct;
    c.slow_rate_threshold = sc->slow_pct;
    c.slow_call_duration_ns = RESIL_SEC(1);
    c.consecutive_failures = sc->consecutive;
    c.half_open_probes = sc->probes;
    runner r;
    memset(&r, 0, sizeof r);
    r.name = sc->name;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(1000), &r.m), RESIL_OK);
    resil_breaker_local_t local = {resil_manual_clock_as_clock(r.m), NULL, NULL, 1};
    assert_int_equal(resil_breaker_new(&c, &local, &r.b), RESIL_OK);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sc->script);
    char prev[16] = "";
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save)) {
        if (tok[0] == 'x') {
            for (long n = strtol(tok + 1, NULL, 10); n > 1; n--)
                step(&r, prev);
            continue;
        }
        step(&r, tok);
        snprintf(prev, sizeof prev, "%s", tok);
    }
    assert_int_equal(resil_breaker_check(r.b), RESIL_OK);
    resil_breaker_free(r.b);
    resil_manual_clock_free(r.m);
}

static void documented_behaviour_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        run(&table[i]);
    print_message("%zu scenarios conform\n", sizeof table / sizeof table[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(documented_behaviour_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
