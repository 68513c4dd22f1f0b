/*
 * demo: a service calls a flaky dependency and guards the call with a
 * libresil circuit breaker. The dependency fails 5% of the time at random
 * (seeded, so every run tells the same story) and is down entirely from
 * 20 s to 40 s. One request arrives every 10 ms. Time is a manual clock, so
 * the minute of traffic runs in a blink.
 *
 * Watch the breaker open soon after the outage starts, probe every 5 s while
 * it lasts (a handful of calls instead of thousands), and close again once
 * the dependency is back.
 */
#include <resil/resil.h>
#include <stdio.h>

struct dependency {
    resil_rng_t rng;
    resil_clock_t clock;
    uint64_t down_from, down_until;
    long calls; /* calls that actually reached it */
};

static resil_outcome call_dependency(void *ctx)
{
    struct dependency *d = ctx;
    d->calls++;
    uint64_t now = resil_clock_now(&d->clock);
    resil_clock_sleep(&d->clock, RESIL_MS(2)); /* the call takes 2 ms */
    if (now >= d->down_from && now < d->down_until)
        return RESIL_OUTCOME_FAILURE;
    return resil_rng_below(&d->rng, 100) < 5 ? RESIL_OUTCOME_FAILURE : RESIL_OUTCOME_SUCCESS;
}

static void on_transition(void *user, const resil_breaker_event_t *e)
{
    (void)user;
    printf("  t=%6.2f s  %-9s -> %-9s\n", (double)e->now_ns / 1e9,
           resil_breaker_state_name(e->from), resil_breaker_state_name(e->to));
}

int main(void)
{
    resil_manual_clock_t *m = NULL;
    if (resil_manual_clock_new(0, &m) != RESIL_OK)
        return 1;
    struct dependency dep = {.clock = resil_manual_clock_as_clock(m),
                             .down_from = RESIL_SEC(20),
                             .down_until = RESIL_SEC(40)};
    resil_rng_seed(&dep.rng, 2026);

    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 50;   /* judge the last 50 calls */
    cfg.minimum_calls = 20; /* ... once there are 20 */
    cfg.failure_rate_threshold = 50;
    cfg.open_wait_ns = RESIL_SEC(5); /* then probe every 5 s */
    cfg.half_open_probes = 3;
    resil_breaker_local_t local = {dep.clock, on_transition, NULL, 1};
    resil_breaker_t *b = NULL;
    resil_status s = resil_breaker_new(&cfg, &local, &b);
    if (s != RESIL_OK) {
        fprintf(stderr, "breaker: %s (%s)\n", resil_strerror(s), resil_status_detail());
        return 1;
    }

    printf("libresil %s demo: 6000 requests over 60 s, dependency down from 20 s to 40 s\n",
           resil_version_string());
    long served = 0, failed = 0, rejected = 0, outage_calls = 0;
    for (int i = 0; i < 6000; i++) {
        uint64_t t = (uint64_t)i * RESIL_MS(10);
        if (resil_manual_clock_get(m) < t)
            resil_manual_clock_set(m, t);
        long before = dep.calls;
        resil_outcome o;
        s = resil_breaker_execute(b, call_dependency, &dep, &o);
        if (s == RESIL_OK)
            served++;
        else if (s == RESIL_E_CALL_FAILED)
            failed++;
        else
            rejected++; /* failed fast: a fallback would answer here */
        if (t >= dep.down_from && t < dep.down_until)
            outage_calls += dep.calls - before;
    }
    resil_breaker_stats_t st;
    resil_breaker_stats(b, &st);
    printf("served %ld, failed %ld, rejected fast %ld\n", served, failed, rejected);
    printf("during the 20 s outage only %ld of 2000 requests reached the dependency\n",
           outage_calls);
    printf("breaker: %llu transitions, now %s\n", (unsigned long long)st.transitions,
           resil_breaker_state_name(st.state));
    resil_breaker_free(b);
    resil_manual_clock_free(m);
    /* the demo doubles as a test: the story above must hold */
    return st.state == RESIL_BREAKER_CLOSED && outage_calls < 100 && served > 3500 ? 0 : 1;
}
