/*
 * demo: a service calls a flaky dependency and guards the call with
 * libresil. The dependency fails 30% of the time at random (seeded, so every
 * run prints the same story) and is down entirely for a stretch in the
 * middle. Time is a manual clock, so the demo runs instantly.
 *
 * This first version shows the foundation only: a seeded fault source, a
 * manual clock and jittered retries built by hand. Later versions guard the
 * same call with the circuit breaker and the retry policy.
 */
#include <resil/resil.h>
#include <stdio.h>

struct dependency {
    resil_rng_t rng;
    resil_clock_t clock;
    uint64_t down_from, down_until; /* a full outage, in ns */
};

/* The flaky call: RESIL_OK or RESIL_E_CALL_FAILED. */
static resil_status call_dependency(struct dependency *d)
{
    uint64_t now = resil_clock_now(&d->clock);
    if (now >= d->down_from && now < d->down_until)
        return RESIL_E_CALL_FAILED;
    return resil_rng_below(&d->rng, 100) < 30 ? RESIL_E_CALL_FAILED : RESIL_OK;
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
    resil_rng_t jitter;
    resil_rng_seed(&jitter, 7);

    int requests = 0, served = 0, attempts = 0;
    for (int i = 0; i < 600; i++, requests++) {
        resil_clock_sleep(&dep.clock, RESIL_MS(100)); /* one request every 100 ms */
        uint64_t backoff = RESIL_MS(10);
        for (int attempt = 1; attempt <= 3; attempt++) {
            attempts++;
            if (call_dependency(&dep) == RESIL_OK) {
                served++;
                break;
            }
            /* full jitter: sleep a uniform time in [0, backoff) */
            resil_clock_sleep(&dep.clock, resil_rng_below(&jitter, backoff));
            backoff *= 2;
        }
    }
    printf("libresil %s demo: %d requests, %d served, %d attempts on the dependency\n",
           resil_version_string(), requests, served, attempts);
    printf("(virtual time %.1f s; the dependency was down from 20 s to 40 s)\n",
           (double)resil_manual_clock_get(m) / 1e9);
    resil_manual_clock_free(m);
    return served > 0 ? 0 : 1;
}
