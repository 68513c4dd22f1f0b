/*
 * N clients retrying against a dependency that fails and recovers: why
 * jitter and retry budgets matter. The figures in docs/retry.md come from
 * this program.
 *
 * Model (discrete time, 10 ms ticks, driven by a manual clock so it runs in
 * a fraction of a second and is exactly repeatable):
 *   - CLIENTS clients each start one request per second (spread evenly), so
 *     the offered load is CLIENTS/100 new requests per tick;
 *   - the dependency serves CAPACITY attempts per tick when healthy. It is
 *     down (serves nothing) from 2 s to 5 s, then recovers. When overloaded
 *     its goodput collapses: with load L > capacity C it completes only
 *     max(0, 2C - L) attempts (queues time out, work is wasted), the usual
 *     shape of a metastable failure;
 *   - every request retries with the policy under test (up to 5 attempts,
 *     exponential backoff from 50 ms, cap 2 s), with or without a budget
 *     shared by all clients.
 * Reported: attempts sent (load on the dependency), requests that
 * succeeded, peak attempts in one tick, and when the dependency was serving
 * every request again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/resil.h"

enum {
    CLIENTS = 5000,   /* requests per second: 50 per tick */
    CAPACITY = 80,    /* attempts per tick when healthy */
    TICKS = 3000,     /* 30 s */
    DOWN_FROM = 200,  /* 2 s */
    DOWN_UNTIL = 500, /* 5 s */
    MAX_TICKS_AHEAD = 512
};
#define TICK_NS RESIL_MS(10)

typedef struct request {
    resil_retry_state_t st;
    int next; /* next request in the same tick's list, -1 ends */
} request;

typedef struct result {
    long requests, succeeded, attempts, peak, refused;
    int recovered_tick; /* first tick after the outage from which every tick served all */
} result;

static request g_req[CLIENTS * TICKS / 100 + 16];

static result simulate(resil_jitter_kind jitter, resil_retry_budget_t *budget, uint64_t seed)
{
    resil_manual_clock_t *m;
    if (resil_manual_clock_new(0, &m) != RESIL_OK)
        exit(1);
    resil_retry_policy_t p = resil_retry_policy_default();
    p.jitter = jitter;
    p.initial_delay_ns = RESIL_MS(50);
    p.max_delay_ns = RESIL_SEC(2);
    p.max_attempts = 5;
    p.clock = resil_manual_clock_as_clock(m);
    p.budget = budget;

    static int head[TICKS + MAX_TICKS_AHEAD];
    for (int t = 0; t < TICKS + MAX_TICKS_AHEAD; t++)
        head[t] = -1;
    result r;
    memset(&r, 0, sizeof r);
    r.recovered_tick = -1;
    uint64_t rng = seed;
    long n = 0;
    for (int t = 0; t < TICKS; t++) {
        /* new requests this tick */
        for (int k = 0; k < CLIENTS / 100; k++, n++) {
            resil_retry_state_init(&g_req[n].st, &p);
            resil_retry_state_seed(&g_req[n].st, seed * 1000003u + (uint64_t)n);
            g_req[n].next = head[t];
            head[t] = (int)n;
            r.requests++;
        }
        long load = 0;
        for (int i = head[t]; i >= 0; i = g_req[i].next)
            load++;
        long cap = t >= DOWN_FROM && t < DOWN_UNTIL ? 0 : CAPACITY;
        long served = load <= cap ? load : (2 * cap - load > 0 ? 2 * cap - load : 0);
        r.attempts += load;
        r.peak = load > r.peak ? load : r.peak;
        if (t >= DOWN_UNTIL && served == load && r.recovered_tick < 0)
            r.recovered_tick = t;
        else if (served != load)
            r.recovered_tick = -1;

        /* each attempt of this tick succeeds with probability served/load */
        for (int i = head[t], next; i >= 0; i = next) {
            next = g_req[i].next;
            int ok = (long)(resil_splitmix64(&rng) % (uint64_t)load) < served;
            uint64_t delay;
            resil_retry_reason why = resil_retry_next_delay(
                &g_req[i].st, ok ? RESIL_RETRY_SUCCESS : RESIL_RETRY_FAILURE, NULL, &delay);
            if (why == RESIL_RETRY_STOP_SUCCEEDED) {
                r.succeeded++;
            } else if (why == RESIL_RETRY_GO) {
                uint64_t ahead = (delay + TICK_NS - 1) / TICK_NS;
                int at = t + (int)(ahead < 1 ? 1 : ahead);
                if (at < TICKS + MAX_TICKS_AHEAD) {
                    g_req[i].next = head[at];
                    head[at] = i;
                }
            } else if (why == RESIL_RETRY_STOP_BUDGET) {
                r.refused++;
            }
        }
        resil_manual_clock_advance(m, TICK_NS);
    }
    resil_manual_clock_free(m);
    return r;
}

static void print_row(const char *name, const result *r)
{
    char rec[32];
    if (r->recovered_tick >= 0)
        snprintf(rec, sizeof rec, "%.2f s", r->recovered_tick * 0.01);
    else
        snprintf(rec, sizeof rec, "never");
    printf("| %-41s | %9ld | %6.2f | %6.1f %% | %5ld | %9s |\n", name, r->attempts,
           (double)r->attempts / (double)r->requests,
           100.0 * (double)r->succeeded / (double)r->requests, r->peak, rec);
}

int main(void)
{
    printf("%d clients x 1 request/s, capacity %d/tick (10 ms), down 2 s..5 s, 30 s simulated\n\n",
           CLIENTS, CAPACITY);
    printf("| %-41s | %9s | %5s | %8s | %5s | %9s |\n", "policy (5 attempts, 50 ms x2, cap 2 s)",
           "attempts", "per rq", "success", "peak", "recovered");
    printf("|%s|%s|%s|%s|%s|%s|\n", "-------------------------------------------", "-----------",
           "--------", "----------", "-------", "-----------");

    result none = simulate(RESIL_JITTER_NONE, NULL, 1);
    print_row("no jitter, no budget", &none);
    result full = simulate(RESIL_JITTER_FULL, NULL, 1);
    print_row("full jitter, no budget", &full);

    resil_retry_budget_config_t bc = resil_retry_budget_config_default();
    bc.kind = RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    bc.max_tokens = 100;
    bc.token_ratio_milli = 100;
    resil_retry_budget_t *grpc;
    if (resil_retry_budget_new(&bc, &grpc) != RESIL_OK)
        return 1;
    result tb = simulate(RESIL_JITTER_FULL, grpc, 1);
    print_row("full jitter + token bucket (100, 0.1)", &tb);

    bc.kind = RESIL_RETRY_BUDGET_RATIO;
    bc.retry_percent = 10;
    bc.min_retries_per_sec = 10;
    bc.ttl_ns = RESIL_SEC(10);
    resil_retry_budget_t *ratio;
    if (resil_retry_budget_new(&bc, &ratio) != RESIL_OK)
        return 1;
    result rb = simulate(RESIL_JITTER_FULL, ratio, 1);
    print_row("full jitter + ratio budget (10 %, 10/s)", &rb);

    resil_retry_budget_stats_t s1, s2;
    resil_retry_budget_stats(grpc, 0, &s1);
    resil_retry_budget_stats(ratio, RESIL_SEC(30), &s2);
    printf("\nretries refused by the budget: token bucket %llu, ratio %llu\n",
           (unsigned long long)s1.refused, (unsigned long long)s2.refused);
    resil_retry_budget_free(grpc);
    resil_retry_budget_free(ratio);

    /* the example is also a test: budgets must cut the load */
    if (!(tb.attempts < full.attempts && rb.attempts < full.attempts)) {
        fprintf(stderr, "budgets did not reduce the load\n");
        return 1;
    }
    return 0;
}
