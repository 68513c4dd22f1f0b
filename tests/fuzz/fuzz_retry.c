/*
 * Fuzz target: retry policies, the per-operation state and the executor
 * (resil/retry.h), against a small model of what the header promises.
 *
 * Policy: every field decoded from the input with a bias to the edges (0,
 * 1, powers of two, near 2^63 and UINT64_MAX; max_attempts 0, 1, in the
 * thousands, RESIL_RETRY_MAX_ATTEMPTS and past it; every backoff and jitter
 * kind and values past them; jitter_percent 0, 100, 101; multipliers 0,
 * -0, denormal, 1, 1 + 2^-52, 2, 1e6, past 1e6, infinite, NaN, raw bits).
 * resil_retry_policy_check() must accept exactly the policies the header
 * calls valid and otherwise return RESIL_E_INVALID_CONFIG with a detail
 * naming one of the invalid fields; state_init and execute refuse them the
 * same way (the state is then uninitialized: next_delay stops with
 * INVALID_ARG; execute never calls the operation).
 *
 * Sequences: state_init_at / next_delay_at (and the clocked variants on a
 * manual clock) with outcomes (success, failure, timeout, final, values
 * outside the enum) and hints (none, retry after D with D at the edges,
 * do-not-retry, kinds outside the enum) at times from the input (forward,
 * back, jumps, near UINT64_MAX, one nanosecond either side of the
 * deadline), reseeds, copies, re-inits, and bursts of failures thousands of
 * attempts long. The model follows the header's order of checks: outcome,
 * hint, attempt limit, delay, deadline, budget. It checks the reason of
 * every answer; attempts never above max_attempts; the delay of a GO
 * within the documented range of its jitter kind around d = min(cap,
 * d(n)), computed here in 128-bit integers (none: d exactly; full: [0, d);
 * equal: [d/2, d); decorrelated: [base, min(cap, 3 * previous)), previous
 * starting at base; proportional: [d - p% d, min(cap, d + p% d)); a range
 * holding no integer gives d, or base for decorrelated); with no jitter
 * the delay equals the header's formula (exponential: initial *
 * multiplier^(n - 1), within 1 ns plus float rounding); a pushback delay is
 * exactly the hint clamped to max_pushback_ns and restarts the backoff;
 * no GO whose retry would start at or past the deadline, and a deadline
 * stop only when it would; do-not-retry stops with its reason even past
 * the attempt limit; the listener is called once per GO with its event;
 * delay_ns is 0 on a stop; invalid arguments change nothing. A twin state
 * (the same seed, or a copy) runs in parallel and must give the same
 * answers and delays. An optional token-bucket or quota budget (a twin for
 * the twin state) is checked against a model of its level: the failure is
 * recorded on every stop after the hint check, a refusal stops with
 * BUDGET, a success refunds what the last retry took.
 *
 * Executor: resil_retry_execute() on a manual clock with a scripted
 * operation (results, hints, time spent per attempt) and classifier: the
 * attempts it makes, the clock at each, and its result must be those of
 * the documented loop (a state driven by next_delay_at with the same
 * seed), and no attempt starts at or past the deadline.
 *
 * Input: byte 0 picks the mode (raw policy fields, a budget, the
 * executor); then the policy; then operations of one byte (kind in the low
 * nibble, time step in bits 4..6, bit 7 the clocked variant) plus their
 * arguments. Reading past the end yields zeros; arguments are read in
 * separate statements, so an input means the same under every compiler.
 */
#include "fuzz_input.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/clock.h"
#include "resil/retry.h"

#define MAX_BURST_STEPS 8192 /* next_delay calls in bursts, per input */
#define MAX_OPS 400
#define SCRIPT 24 /* attempts an executor script describes */

static uint64_t sat_add(uint64_t a, uint64_t b) { return fz_sat((fz_u128)a + b); }
static uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- budget model ------------------------------------------------------- */

typedef struct mbudget {
    int on; /* 0 none, else a budget of kind c.kind */
    resil_retry_budget_config_t c;
    uint64_t level; /* bucket: thousandths of a token; quota: units */
    uint64_t granted, refused;
} mbudget;

/* A failure, asking for a retry or not. @return 1 if the retry is allowed;
 * *cost the quota it took. */
static int mb_failure(mbudget *b, int timeout, int want, uint32_t *cost)
{
    *cost = 0;
    int allowed;
    if (b->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET) {
        b->level = sat_sub(b->level, 1000);
        allowed = b->level > (uint64_t)b->c.max_tokens * 500; /* tokens > max_tokens / 2 */
    } else {
        if (!want)
            return 0;
        uint32_t k = timeout ? b->c.timeout_cost : b->c.retry_cost;
        allowed = b->level >= k;
        if (allowed) {
            b->level -= k;
            *cost = k;
        }
    }
    if (want) {
        b->granted += allowed;
        b->refused += !allowed;
    }
    return allowed;
}

/* Whether a failure asking for a retry would be allowed (without it). */
static int mb_would(const mbudget *b, int timeout)
{
    if (b->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET)
        return sat_sub(b->level, 1000) > (uint64_t)b->c.max_tokens * 500;
    return b->level >= (timeout ? b->c.timeout_cost : b->c.retry_cost);
}

static void mb_success(mbudget *b, uint32_t cost)
{
    if (b->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET)
        b->level = min64((uint64_t)b->c.max_tokens * 1000, b->level + b->c.token_ratio_milli);
    else
        b->level =
            min64(b->c.quota_capacity, b->level + (cost != 0 ? cost : b->c.no_retry_increment));
}

static void mb_expect(const mbudget *m, resil_retry_budget_t *b, const char *what)
{
    MUST(resil_retry_budget_check(b) == RESIL_OK, "%s: budget check: %s", what,
         resil_status_detail());
    resil_retry_budget_stats_t s;
    MUST(resil_retry_budget_stats(b, 0, &s) == RESIL_OK, "stats");
    uint64_t unit = m->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? 1 : 1000;
    MUST(s.level_milli == m->level * unit && s.granted == m->granted && s.refused == m->refused,
         "%s: budget level %llu granted %llu refused %llu, model %llu %llu %llu", what,
         (unsigned long long)s.level_milli, (unsigned long long)s.granted,
         (unsigned long long)s.refused, (unsigned long long)(m->level * unit),
         (unsigned long long)m->granted, (unsigned long long)m->refused);
    int can = mb_would(m, 0); /* quota: "holding a retry's cost", not a timeout's */
    MUST(resil_retry_budget_can_retry(b, 0) == can, "%s: can_retry %d, model %d", what, !can, can);
}

/* ---- backoff model ------------------------------------------------------ */

typedef struct mstate {
    int init;
    uint32_t attempt;
    uint32_t cost; /* quota taken by the last retry granted */
    int has_deadline;
    fz_u128 deadline;
    /* the un-jittered delay of the next backoff retry: d as the library
     * computes it, in 64.64 fixed point (checked against the formula
     * whenever a delay shows it) */
    uint64_t d, frac;
    uint32_t n;    /* its retry number since the backoff (re)started */
    fz_u128 exact; /* integer multipliers, linear: the formula, exactly */
    long double x; /* other multipliers: initial * m^(n-1), uncapped */
    uint64_t prev; /* decorrelated: the previous delay */
    int prev_known;
} mstate;

static int integer_multiplier(double m) { return m >= 1.0 && m <= 1e6 && m == (double)(uint64_t)m; }

static void backoff_restart(const resil_retry_policy_t *p, mstate *m)
{
    m->d = p->initial_delay_ns;
    m->frac = 0;
    m->n = 1;
    m->exact = p->initial_delay_ns;
    m->x = (long double)p->initial_delay_ns;
    m->prev = p->initial_delay_ns;
    m->prev_known = 1;
}

/* d * m in 64.64 fixed point, truncated and capped: m is exactly
 * sig * 2^-k, so the product is the 181-bit (d.frac * 2^64) * sig >> k. */
static void fixed_mul(mstate *m, double mult, uint64_t cap)
{
    uint64_t bits;
    memcpy(&bits, &mult, 8);
    uint64_t e = bits >> 52, sig = bits & ((UINT64_C(1) << 52) - 1);
    int k = e != 0 ? 1075 - (int)e : 1074;
    if (e != 0)
        sig |= UINT64_C(1) << 52;
    /* the product in three 64-bit words, w2:w1:w0 */
    fz_u128 lo = (fz_u128)m->frac * sig, hi = (fz_u128)m->d * sig;
    uint64_t w[3];
    w[0] = (uint64_t)lo;
    fz_u128 mid = (lo >> 64) + (uint64_t)hi;
    w[1] = (uint64_t)mid;
    w[2] = (uint64_t)((hi >> 64) + (mid >> 64));
    /* bits k .. k + 127 are the result; anything above means >= 2^64 ns */
    uint64_t r[2] = {0, 0};
    int over = 0;
    for (int b = 0; b < 192; b++) {
        if (!((w[b / 64] >> (b % 64)) & 1))
            continue;
        if (b >= k + 128)
            over = 1;
        else if (b >= k)
            r[(b - k) / 64] |= UINT64_C(1) << ((b - k) % 64);
    }
    if (over || r[1] >= cap) {
        m->d = cap;
        m->frac = 0;
    } else {
        m->d = r[1];
        m->frac = r[0];
    }
}

/* d(n + 1) from d(n): the library multiplies step by step, in integers for
 * 2.0 and in 64.64 fixed point otherwise; the formula is tracked beside
 * it. */
static void backoff_advance(const resil_retry_policy_t *p, mstate *m)
{
    const uint64_t cap = p->max_delay_ns;
    const fz_u128 big = (fz_u128)1 << 100;
    m->n++;
    switch (p->backoff) {
    case RESIL_BACKOFF_LINEAR:
        m->exact = m->exact + p->increment_ns;
        if (m->exact > big)
            m->exact = big;
        m->d = (uint64_t)(m->exact < cap ? m->exact : cap);
        break;
    case RESIL_BACKOFF_EXPONENTIAL: {
        double mult = p->multiplier;
        if (mult == 2.0)
            m->d = m->d > cap / 2 ? cap : m->d * 2;
        else
            fixed_mul(m, mult, cap);
        if (integer_multiplier(mult)) {
            m->exact = m->exact * (uint64_t)mult;
            if (m->exact > big)
                m->exact = big;
        }
        m->x *= mult;
        if (m->x > 0x1p80L)
            m->x = 0x1p80L;
        break;
    }
    default:
        break;
    }
}

/* A delay with no jitter equals the formula: constant and linear exactly,
 * exponential exactly for 2.0, within double rounding for other integer
 * multipliers, and within 1 ns (plus rounding) of initial * m^(n-1) for
 * the others. */
static void check_formula(const resil_retry_policy_t *p, const mstate *m, uint64_t delay)
{
    const uint64_t cap = p->max_delay_ns;
    if (p->backoff != RESIL_BACKOFF_EXPONENTIAL) {
        uint64_t want = p->backoff == RESIL_BACKOFF_CONSTANT
                            ? p->initial_delay_ns
                            : (uint64_t)(m->exact < cap ? m->exact : cap);
        MUST(delay == want, "retry %u: delay %llu, formula %llu", m->n, (unsigned long long)delay,
             (unsigned long long)want);
        return;
    }
    long double want;
    long double tol;
    if (integer_multiplier(p->multiplier)) {
        fz_u128 v = m->exact < cap ? m->exact : cap;
        want = (long double)v;
        tol = p->multiplier == 2.0 ? 0 : 1 + want * 0x1p-30L;
    } else {
        want = m->x < (long double)cap ? m->x : (long double)cap;
        tol = 1 + want * 0x1p-30L;
    }
    long double diff = (long double)delay - want;
    if (diff < 0)
        diff = -diff;
    MUST(diff <= tol,
         "retry %u: delay %llu, but initial %llu * %.17g^%u capped at %llu is %.3Lf "
         "(tolerance %.3Lf)",
         m->n, (unsigned long long)delay, (unsigned long long)p->initial_delay_ns, p->multiplier,
         m->n - 1, (unsigned long long)cap, want, tol);
}

/* The documented range [lo, hi] of the next backoff delay (hi inclusive). */
static void jitter_range(const resil_retry_policy_t *p, const mstate *m, uint64_t *lo, uint64_t *hi)
{
    const uint64_t d = m->d, cap = p->max_delay_ns;
    switch (p->jitter) {
    case RESIL_JITTER_FULL: /* [0, d) */
        *lo = 0;
        *hi = d > 0 ? d - 1 : 0;
        break;
    case RESIL_JITTER_EQUAL: /* [d/2, d): integers from ceil(d/2) */
        *lo = d >= 2 ? d - d / 2 : d;
        *hi = d >= 2 ? d - 1 : d;
        break;
    case RESIL_JITTER_DECORRELATED: { /* [base, min(cap, 3 prev)) */
        uint64_t base = p->initial_delay_ns;
        uint64_t top = m->prev_known ? fz_sat((fz_u128)m->prev * 3) : cap;
        top = min64(top, cap);
        if (m->prev_known) {
            *lo = base;
            *hi = top > base ? top - 1 : base;
        } else { /* some previous delay in [base, cap] */
            *lo = base;
            *hi = cap > base ? cap - 1 : base;
        }
        break;
    }
    case RESIL_JITTER_PROPORTIONAL: { /* [d - p% d, min(cap, d + p% d)) */
        if (d == 0) {
            *lo = *hi = 0; /* [0, 0) */
            break;
        }
        fz_u128 dp = (fz_u128)d * p->jitter_percent;     /* 100 * spread */
        fz_i128 l = (fz_i128)(d - (uint64_t)(dp / 100)); /* ceil(d - dp/100) */
        fz_u128 up = (fz_u128)d * 100 + dp;              /* 100 * (d + spread), >= 100 */
        fz_i128 h;                                       /* the largest integer below both bounds */
        if ((fz_u128)cap * 100 <= up)
            h = (fz_i128)cap - 1;
        else
            h = (fz_i128)((up - 1) / 100);
        if (h < l) {
            *lo = *hi = d; /* no integer in the range */
        } else {
            *lo = (uint64_t)l;
            *hi = (uint64_t)h;
        }
        break;
    }
    default: /* none */
        *lo = *hi = d;
        break;
    }
}

/* ---- the world ---------------------------------------------------------- */

typedef struct listen_log {
    uint32_t calls;
    resil_retry_event_t ev;
} listen_log;

static void listener(void *user, const resil_retry_event_t *ev)
{
    listen_log *l = user;
    l->calls++;
    l->ev = *ev;
}

typedef struct world {
    resil_retry_policy_t p[2]; /* the policy and the twin's (own budget, own log) */
    resil_retry_budget_t *b[2];
    listen_log log[2];
    mbudget mb;
    resil_retry_state_t st[2];
    mstate m;
    resil_manual_clock_t *mc;
    uint64_t now, last_delay;
    int burst_left;
    uint64_t gos, stops;
} world;

static void expect_budgets(world *w, const char *what)
{
    if (!w->mb.on)
        return;
    for (int i = 0; i < 2; i++)
        mb_expect(&w->mb, w->b[i], what);
}

static int deadline_reached(const mstate *m, fz_u128 start)
{
    return m->has_deadline && start >= m->deadline;
}

/* Starts both states at w->now (clocked: through the policy's clock). */
static void start(fz_in *in, world *w, int clocked)
{
    const resil_retry_policy_t *p = &w->p[0];
    resil_status s;
    resil_manual_clock_set(w->mc, w->now);
    uint64_t t = clocked && !(p->max_total_ns != 0 || p->budget != NULL) ? 0 : w->now;
    for (int i = 0; i < 2; i++) {
        if (i == 1 && p->seed == 0 && !w->mb.on)
            break; /* a copy instead, below */
        s = clocked ? resil_retry_state_init(&w->st[i], &w->p[i])
                    : resil_retry_state_init_at(&w->st[i], &w->p[i], w->now);
        MUST(s == RESIL_OK, "state_init: %s", resil_status_detail());
    }
    mstate *m = &w->m;
    memset(m, 0, sizeof *m);
    m->init = 1;
    m->attempt = 1;
    m->has_deadline = p->max_total_ns != 0;
    m->deadline = (fz_u128)t + p->max_total_ns;
    backoff_restart(p, m);
    if (p->seed == 0) {
        if (w->mb.on) { /* twins with their own budgets: seed both alike */
            uint64_t seed = fz_pick(in);
            for (int i = 0; i < 2; i++)
                MUST(resil_retry_state_seed(&w->st[i], seed) == RESIL_OK, "seed");
        } else {
            w->st[1] = w->st[0]; /* "copying it copies the operation" */
        }
    }
    for (int i = 0; i < 2; i++)
        MUST(resil_retry_attempts(&w->st[i]) == 1, "attempts after init: %u",
             resil_retry_attempts(&w->st[i]));
    expect_budgets(w, "init");
}

/* Calls next_delay on state @p i; @return the reason, *delay. */
static resil_retry_reason call(world *w, int i, int clocked, int outcome,
                               const resil_retry_hint_t *hint, uint64_t *delay)
{
    *delay = UINT64_C(0xdeadbeef);
    w->log[0].calls = w->log[1].calls = 0;
    if (clocked) {
        resil_manual_clock_set(w->mc, w->now);
        return resil_retry_next_delay(&w->st[i], (resil_retry_outcome)outcome, hint, delay);
    }
    return resil_retry_next_delay_at(&w->st[i], w->now, (resil_retry_outcome)outcome, hint, delay);
}

static const char *rname(resil_retry_reason r) { return resil_retry_reason_name(r); }

/*
 * One next_delay step on both states, checked against the model.
 * @return the reason.
 */
static resil_retry_reason step(world *w, int clocked, int outcome, const resil_retry_hint_t *hint)
{
    const resil_retry_policy_t *p = &w->p[0];
    mstate *m = &w->m;
    resil_retry_state_t before = w->st[0];
    uint64_t delay = 0, d2 = 0;
    resil_retry_reason r = call(w, 0, clocked, outcome, hint, &delay);
    listen_log got_log = w->log[0];
    got_log.calls += w->log[1].calls;
    if (w->log[1].calls)
        got_log.ev = w->log[1].ev;
    resil_retry_reason r2 = call(w, 1, clocked, outcome, hint, &d2);
    MUST(r2 == r && d2 == delay,
         "twin: %s after %llu ns, state: %s after %llu ns (policy seed %llu)", rname(r2),
         (unsigned long long)d2, rname(r), (unsigned long long)delay, (unsigned long long)p->seed);
    MUST(r == RESIL_RETRY_GO || delay == 0, "%s with delay %llu", rname(r),
         (unsigned long long)delay);
    MUST(got_log.calls == (p->on_retry != NULL && r == RESIL_RETRY_GO),
         "%s: listener called %u times", rname(r), got_log.calls);

    resil_retry_reason want;
    int unchanged = 0;
    if (!m->init) {
        want = RESIL_RETRY_STOP_INVALID_ARG;
        unchanged = 1;
    } else if (outcome == RESIL_RETRY_SUCCESS) {
        want = RESIL_RETRY_STOP_SUCCEEDED;
        if (w->mb.on)
            mb_success(&w->mb, m->cost);
    } else if (outcome == RESIL_RETRY_FINAL) {
        want = RESIL_RETRY_STOP_FINAL;
    } else if (outcome != RESIL_RETRY_FAILURE && outcome != RESIL_RETRY_TIMEOUT) {
        want = RESIL_RETRY_STOP_INVALID_ARG;
        unchanged = 1;
    } else {
        const int timeout = outcome == RESIL_RETRY_TIMEOUT;
        resil_retry_hint_kind hk = hint != NULL ? hint->kind : RESIL_RETRY_HINT_NONE;
        uint32_t cost = 0;
        if (hk == RESIL_RETRY_HINT_DO_NOT_RETRY) {
            want = RESIL_RETRY_STOP_DO_NOT_RETRY;
            if (w->mb.on)
                mb_failure(&w->mb, timeout, 0, &cost);
        } else if (hk != RESIL_RETRY_HINT_NONE && hk != RESIL_RETRY_HINT_AFTER) {
            want = RESIL_RETRY_STOP_INVALID_ARG;
            unchanged = 1;
        } else if (m->attempt >= p->max_attempts) {
            want = RESIL_RETRY_STOP_ATTEMPTS;
            if (w->mb.on)
                mb_failure(&w->mb, timeout, 0, &cost);
        } else {
            /* the delay: the hint's, or the jittered backoff's */
            uint64_t lo, hi;
            int pushback = hk == RESIL_RETRY_HINT_AFTER;
            if (pushback) {
                lo = hint->delay_ns;
                if (p->max_pushback_ns != 0 && lo > p->max_pushback_ns)
                    lo = p->max_pushback_ns;
                hi = lo;
                backoff_restart(p, m);
            } else {
                jitter_range(p, m, &lo, &hi);
            }
            const fz_u128 now = w->now;
            /* stops iff now + delay >= deadline: surely for the shortest
             * delay the range allows, never if the longest would not */
            int stop_deadline = deadline_reached(m, now + lo)    ? 1
                                : !deadline_reached(m, now + hi) ? 0
                                                                 : r == RESIL_RETRY_STOP_DEADLINE;
            if (stop_deadline) {
                want = RESIL_RETRY_STOP_DEADLINE;
                if (w->mb.on)
                    mb_failure(&w->mb, timeout, 0, &cost);
            } else {
                int allowed = w->mb.on ? mb_failure(&w->mb, timeout, 1, &cost) : 1;
                want = allowed ? RESIL_RETRY_GO : RESIL_RETRY_STOP_BUDGET;
                if (allowed && r == RESIL_RETRY_GO) {
                    MUST(r != RESIL_RETRY_GO || (delay >= lo && delay <= hi),
                         "retry %u (%s jitter %d, d %llu, prev %llu%s): delay %llu outside "
                         "[%llu, %llu]",
                         m->attempt, pushback ? "pushback" : "backoff", (int)p->jitter,
                         (unsigned long long)m->d, (unsigned long long)m->prev,
                         m->prev_known ? "" : "?", (unsigned long long)delay,
                         (unsigned long long)lo, (unsigned long long)hi);
                    MUST(r != RESIL_RETRY_GO || !deadline_reached(m, now + delay),
                         "GO after %llu ns at %llu: starts at or past the deadline",
                         (unsigned long long)delay, (unsigned long long)w->now);
                    if (r == RESIL_RETRY_GO && !pushback && p->jitter == RESIL_JITTER_NONE)
                        check_formula(p, m, delay);
                    if (r == RESIL_RETRY_GO) {
                        MUST(p->on_retry == NULL ||
                                 (got_log.ev.attempt == m->attempt + 1 &&
                                  got_log.ev.delay_ns == delay &&
                                  got_log.ev.outcome == (resil_retry_outcome)outcome &&
                                  got_log.ev.pushback == pushback),
                             "listener event: attempt %u delay %llu outcome %d pushback %d",
                             got_log.ev.attempt, (unsigned long long)got_log.ev.delay_ns,
                             (int)got_log.ev.outcome, got_log.ev.pushback);
                        m->attempt++;
                        m->cost = cost;
                    }
                }
            }
            /* what the step did to the backoff */
            if (!pushback) {
                if (p->jitter == RESIL_JITTER_DECORRELATED) {
                    if (r == RESIL_RETRY_GO) {
                        m->prev = delay;
                        m->prev_known = 1;
                    } else if (lo == hi) {
                        m->prev = lo;
                        m->prev_known = 1;
                    } else {
                        m->prev_known = 0;
                    }
                } else {
                    backoff_advance(p, m);
                }
            }
        }
    }
    MUST(r == want,
         "outcome %d hint %d at %llu, attempt %u of %u: %s after %llu, model %s (deadline "
         "%s%#llx:%016llx, d %llu, jitter %d)",
         outcome, hint != NULL ? (int)hint->kind : -1, (unsigned long long)w->now, m->attempt,
         p->max_attempts, rname(r), (unsigned long long)delay, rname(want),
         m->has_deadline ? "" : "none ", (unsigned long long)(m->deadline >> 64),
         (unsigned long long)m->deadline, (unsigned long long)m->d, (int)p->jitter);
    if (unchanged)
        MUST(memcmp(&before, &w->st[0], sizeof before) == 0, "%s changed the state", rname(r));
    uint32_t att = resil_retry_attempts(&w->st[0]);
    MUST(att == (m->init ? m->attempt : 0) && att <= p->max_attempts,
         "attempts %u, model %u, max %u", att, m->attempt, p->max_attempts);
    if (r == RESIL_RETRY_GO) {
        w->gos++;
        w->last_delay = delay;
    } else {
        w->stops++;
    }
    expect_budgets(w, rname(r));
    return r;
}

/* ---- decoding ----------------------------------------------------------- */

static double pick_multiplier(fz_in *in, int raw)
{
    uint8_t k = fz_u8(in);
    uint64_t bits;
    double v;
    switch (k % (raw ? 16 : 11)) {
    case 0:
        return 2.0;
    case 1:
        return 1.0;
    case 2:
        return 1.5;
    case 3:
        return 3.0;
    case 4:
        return 0.5;
    case 5:
        return 1e6;
    case 6:
        return (double)(1 + fz_u8(in));
    case 7:
        return 1.0 + (double)(1 + fz_bytes(in, 2)) / 65536.0;
    case 8:
        bits = UINT64_C(0x3ff0000000000001); /* 1 + 2^-52 */
        memcpy(&v, &bits, 8);
        return v;
    case 9:
        bits = 1 + fz_bytes(in, 2); /* denormal */
        memcpy(&v, &bits, 8);
        return v;
    case 10:
        return (double)fz_u8(in) / 256.0 + 0x1p-40;
    case 11:
        bits = UINT64_C(0x412e848000000001); /* just above 1e6 */
        memcpy(&v, &bits, 8);
        return v;
    case 12:
        return k & 0x80 ? 0.0 : -0.0;
    case 13:
        bits = k & 0x80 ? UINT64_C(0x7ff0000000000000) : UINT64_C(0x7ff8000000000000);
        memcpy(&v, &bits, 8); /* infinity, NaN */
        return v;
    case 14:
        return -1.0;
    default:
        bits = fz_bytes(in, 8);
        memcpy(&v, &bits, 8);
        return v;
    }
}

static uint32_t pick_attempts(fz_in *in, int raw)
{
    uint8_t k = fz_u8(in);
    switch (k % (raw ? 8 : 6)) {
    case 0:
        return 1;
    case 1:
        return 2 + k / 8 % 4;
    case 2:
        return 1 + fz_u8(in);
    case 3:
        return 1000 + (uint32_t)fz_bytes(in, 2) % 4000;
    case 4:
        return RESIL_RETRY_MAX_ATTEMPTS;
    case 5:
        return 3;
    case 6:
        return k & 0x80 ? 0 : RESIL_RETRY_MAX_ATTEMPTS + 1;
    default:
        return (uint32_t)fz_pick(in);
    }
}

static uint64_t pick_zero_or(fz_in *in)
{
    uint8_t k = fz_u8(in);
    return k % 3 == 0 ? 0 : fz_pick(in);
}

static resil_retry_policy_t pick_policy(fz_in *in, int raw)
{
    resil_retry_policy_t p = resil_retry_policy_default();
    uint8_t kinds = fz_u8(in);
    if (raw && (kinds & 0xC0) == 0xC0) {
        p.backoff = (resil_backoff_kind)(uint32_t)fz_pick(in);
        p.jitter = (resil_jitter_kind)(uint32_t)fz_pick(in);
    } else {
        p.backoff = (resil_backoff_kind)(kinds % 3);
        p.jitter = (resil_jitter_kind)(kinds / 3 % 5);
    }
    p.initial_delay_ns = fz_pick(in);
    p.increment_ns = fz_pick(in);
    p.multiplier = pick_multiplier(in, raw);
    uint8_t capk = fz_u8(in);
    switch (capk % (raw ? 5 : 4)) {
    case 0:
        p.max_delay_ns = sat_add(p.initial_delay_ns, fz_pick(in));
        break;
    case 1:
        p.max_delay_ns = p.initial_delay_ns;
        break;
    case 2:
        p.max_delay_ns = UINT64_MAX;
        break;
    case 3:
        p.max_delay_ns = p.initial_delay_ns > 0 ? p.initial_delay_ns * (1 + capk / 8 % 64) : 0;
        if (p.max_delay_ns / (1 + capk / 8 % 64) != p.initial_delay_ns)
            p.max_delay_ns = UINT64_MAX;
        break;
    default:
        p.max_delay_ns = fz_pick(in);
        break;
    }
    uint8_t jp = fz_u8(in);
    static const uint32_t percents[8] = {0, 1, 20, 50, 99, 100, 101, UINT32_MAX};
    p.jitter_percent =
        jp & 1 ? (uint32_t)(jp >> 1) % (raw ? 128 : 101) : percents[(jp >> 1) % (raw ? 8 : 6)];
    p.max_attempts = pick_attempts(in, raw);
    p.max_total_ns = pick_zero_or(in);
    p.attempt_timeout_ns = pick_zero_or(in);
    p.max_pushback_ns = pick_zero_or(in);
    p.seed = pick_zero_or(in);
    return p;
}

/* Moves w->now as the op byte's bits 4..6 say. */
static void move_time(fz_in *in, world *w, uint8_t op)
{
    uint8_t a;
    switch ((op >> 4) & 7) {
    case 0:
        break;
    case 1:
        w->now = sat_add(w->now, fz_u8(in));
        break;
    case 2:
        w->now = sat_add(w->now, fz_pick(in));
        break;
    case 3: /* a step back */
        a = fz_u8(in);
        w->now = sat_sub(w->now, a & 0x80 ? fz_pick(in) : a);
        break;
    case 4:
        w->now = fz_pick(in);
        break;
    case 5:
        w->now = UINT64_MAX - fz_u8(in);
        break;
    case 6: /* the previous delay slept, and some time spent */
        w->now = sat_add(w->now, sat_add(w->last_delay, fz_u8(in)));
        break;
    default: /* where the next delay just fits before the deadline, or just not */
        a = fz_u8(in);
        if (w->m.has_deadline) {
            uint64_t d = a & 0x80 ? w->p[0].max_pushback_ns : w->m.d;
            fz_u128 t = w->m.deadline > d ? w->m.deadline - d : 0;
            t = a % 3 == 0 ? (t > 0 ? t - 1 : 0) : a % 3 == 1 ? t : t + 1; /* -1, 0, +1 */
            w->now = fz_sat(t);
        } else {
            w->now = sat_add(w->now, a);
        }
        break;
    }
}

static void pick_hint(fz_in *in, resil_retry_hint_t *h, const resil_retry_hint_t **hp, uint8_t sel)
{
    memset(h, 0, sizeof *h);
    *hp = h;
    switch (sel % 8) {
    case 0:
    case 1:
        *hp = NULL;
        break;
    case 2:
        h->kind = RESIL_RETRY_HINT_NONE;
        h->delay_ns = sel & 0x80 ? fz_pick(in) : 0; /* ignored */
        break;
    case 3:
    case 4:
        h->kind = RESIL_RETRY_HINT_AFTER;
        h->delay_ns = fz_pick(in);
        break;
    case 5:
        h->kind = RESIL_RETRY_HINT_AFTER;
        h->delay_ns = sel & 0x80 ? 0 : UINT64_MAX;
        break;
    case 6:
        h->kind = RESIL_RETRY_HINT_DO_NOT_RETRY;
        break;
    default:
        h->kind = (resil_retry_hint_kind)(sel & 0x80 ? 3 : 0x7fffffff);
        break;
    }
}

static int pick_outcome(uint8_t sel)
{
    switch (sel % 8) {
    case 0:
        return RESIL_RETRY_SUCCESS;
    case 1:
    case 2:
    case 3:
        return RESIL_RETRY_FAILURE;
    case 4:
    case 5:
        return RESIL_RETRY_TIMEOUT;
    case 6:
        return RESIL_RETRY_FINAL;
    default:
        return sel & 0x80 ? 4 : -1;
    }
}

/* ---- surfaces ----------------------------------------------------------- */

static const char *const field_names[6] = {
    "retry.backoff:",      "retry.jitter:",         "retry.multiplier:",
    "retry.max_delay_ns:", "retry.jitter_percent:", "retry.max_attempts:"};

/* The invalid fields of @p p, as the header's ranges say: a bit per
 * field_names entry. */
static unsigned policy_bad(const resil_retry_policy_t *p)
{
    unsigned bad = 0;
    if ((uint32_t)p->backoff > RESIL_BACKOFF_EXPONENTIAL)
        bad |= 1;
    if ((uint32_t)p->jitter > RESIL_JITTER_PROPORTIONAL)
        bad |= 2;
    if (!(p->multiplier > 0.0 && p->multiplier <= 1e6)) /* finite, 0 < m <= 1e6 */
        bad |= 4;
    if (p->max_delay_ns < p->initial_delay_ns)
        bad |= 8;
    if (p->jitter_percent > 100)
        bad |= 16;
    if (p->max_attempts < 1 || p->max_attempts > RESIL_RETRY_MAX_ATTEMPTS)
        bad |= 32;
    return bad;
}

static void expect_status(resil_status s, unsigned bad, const char *what)
{
    if (bad == 0) {
        MUST(s == RESIL_OK, "%s of a valid policy: %s (%s)", what, resil_status_name(s),
             resil_status_detail());
        return;
    }
    MUST(s == RESIL_E_INVALID_CONFIG, "%s of a policy with bad fields %#x: %s", what, bad,
         resil_status_name(s));
    const char *detail = resil_status_detail();
    int named = 0;
    for (int i = 0; i < 6; i++)
        if ((bad >> i & 1) && strncmp(detail, field_names[i], strlen(field_names[i])) == 0)
            named = 1;
    MUST(named, "%s of a policy with bad fields %#x: detail \"%s\"", what, bad, detail);
}

static int never_call(void *ctx, uint32_t attempt, resil_retry_hint_t *hint_out)
{
    (void)ctx;
    (void)attempt;
    (void)hint_out;
    MUST(0, "execute called the operation");
    return 0;
}

/* check, init and execute on @p p agree with the header's ranges. */
static void policy_surface(const resil_retry_policy_t *p, unsigned bad)
{
    expect_status(resil_retry_policy_check(p), bad, "policy_check");
    resil_retry_state_t st;
    memset(&st, 0xA5, sizeof st);
    expect_status(resil_retry_state_init_at(&st, p, 12345), bad, "state_init_at");
    if (bad) { /* marked uninitialized */
        uint64_t d = 1;
        MUST(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d) ==
                     RESIL_RETRY_STOP_INVALID_ARG &&
                 d == 0,
             "next_delay after a refused init");
        MUST(resil_retry_attempts(&st) == 0 && resil_retry_attempt_timeout(&st, 0) == 0,
             "attempts after a refused init");
        resil_retry_result_t out;
        memset(&out, 0x5A, sizeof out);
        expect_status(resil_retry_execute(p, never_call, NULL, NULL, &out), bad, "execute");
        MUST(out.attempts == 0, "execute of an invalid policy: %u attempts", out.attempts);
    }
}

/* Calls with NULL, uninitialized states and values outside the enums. */
static void null_surface(fz_in *in, const resil_retry_policy_t *valid)
{
    static int done;
    if (!done) {
        resil_retry_policy_t d = resil_retry_policy_default();
        MUST(d.backoff == RESIL_BACKOFF_EXPONENTIAL && d.jitter == RESIL_JITTER_FULL &&
                 d.initial_delay_ns == RESIL_MS(100) && d.multiplier == 2.0 &&
                 d.max_delay_ns == RESIL_SEC(10) && d.max_attempts == 3 && d.max_total_ns == 0 &&
                 d.seed == 0 && d.budget == NULL && d.on_retry == NULL &&
                 resil_retry_policy_check(&d) == RESIL_OK,
             "policy_default");
        done = 1;
    }
    uint64_t d = 7;
    MUST(resil_retry_policy_check(NULL) == RESIL_E_INVALID_ARG, "policy_check(NULL)");
    MUST(resil_retry_state_init_at(NULL, valid, 0) == RESIL_E_INVALID_ARG, "init(NULL)");
    resil_retry_state_t st;
    memset(&st, 0, sizeof st);
    MUST(resil_retry_next_delay_at(&st, 0, RESIL_RETRY_FAILURE, NULL, &d) ==
                 RESIL_RETRY_STOP_INVALID_ARG &&
             d == 0,
         "next_delay on a zeroed state");
    MUST(resil_retry_state_init_at(&st, valid, 0) == RESIL_OK, "init");
    MUST(resil_retry_state_init_at(&st, NULL, 0) == RESIL_E_INVALID_ARG, "init(st, NULL)");
    MUST(resil_retry_next_delay(&st, RESIL_RETRY_FAILURE, NULL, &d) == RESIL_RETRY_STOP_INVALID_ARG,
         "next_delay after init(st, NULL)");
    MUST(resil_retry_next_delay_at(NULL, 0, RESIL_RETRY_FAILURE, NULL, NULL) ==
             RESIL_RETRY_STOP_INVALID_ARG,
         "next_delay(NULL)");
    MUST(resil_retry_attempts(NULL) == 0 && resil_retry_attempt_timeout(NULL, 0) == 0 &&
             resil_retry_attempts(&st) == 0 && resil_retry_attempt_timeout(&st, 5) == 0,
         "attempts/timeout of NULL");
    MUST(resil_retry_state_seed(NULL, 1) == RESIL_E_INVALID_ARG, "seed(NULL)");
    resil_retry_result_t out;
    MUST(resil_retry_execute(NULL, never_call, NULL, NULL, &out) == RESIL_E_INVALID_ARG &&
             resil_retry_execute(valid, NULL, NULL, NULL, NULL) == RESIL_E_INVALID_ARG,
         "execute(NULL)");
    /* reasons and their statuses */
    int r = (int)(uint32_t)fz_pick(in);
    static const resil_status st_of[8] = {RESIL_OK,
                                          RESIL_OK,
                                          RESIL_E_CALL_FAILED,
                                          RESIL_E_CALL_FAILED,
                                          RESIL_E_DEADLINE_EXCEEDED,
                                          RESIL_E_CALL_FAILED,
                                          RESIL_E_BUDGET_EXHAUSTED,
                                          RESIL_E_INVALID_ARG};
    for (int k = 0; k < 2; k++, r = r % 10 - 1) {
        const char *name = resil_retry_reason_name((resil_retry_reason)r);
        resil_status s = resil_retry_reason_status((resil_retry_reason)r);
        int in_enum = r >= 0 && r <= RESIL_RETRY_STOP_INVALID_ARG;
        MUST(name != NULL && (strcmp(name, "unknown") == 0) == !in_enum, "reason_name(%d): %s", r,
             name);
        MUST(s == (in_enum ? st_of[r] : RESIL_E_INVALID_ARG), "reason_status(%d): %s", r,
             resil_status_name(s));
    }
}

/* ---- executor ----------------------------------------------------------- */

typedef struct xattempt {
    int result;
    resil_retry_hint_t hint;
    uint64_t cost; /* clock time the attempt takes */
} xattempt;

typedef struct xctx {
    resil_manual_clock_t *mc;
    int n, calls;
    xattempt script[SCRIPT];
    uint64_t start[SCRIPT + 1], end[SCRIPT + 1];
} xctx;

static int x_call(void *ctx, uint32_t attempt, resil_retry_hint_t *hint_out)
{
    xctx *x = ctx;
    MUST(hint_out->kind == RESIL_RETRY_HINT_NONE && hint_out->delay_ns == 0,
         "execute: hint not zeroed before attempt %u", attempt);
    MUST(attempt == (uint32_t)x->calls + 1, "execute: attempt %u after %d calls", attempt,
         x->calls);
    MUST(x->calls <= x->n, "execute: an attempt after the script's success");
    int c = x->calls++;
    x->start[c] = resil_manual_clock_get(x->mc);
    int r = 0; /* once the script is over, success */
    if (c < x->n) {
        resil_manual_clock_advance(x->mc, x->script[c].cost);
        *hint_out = x->script[c].hint;
        r = x->script[c].result;
    }
    x->end[c] = resil_manual_clock_get(x->mc);
    return r;
}

static resil_retry_outcome x_classify(void *ctx, int result)
{
    (void)ctx;
    return (resil_retry_outcome)result; /* 0..3 the outcomes, others outside the enum */
}

static void execute_surface(fz_in *in, world *w)
{
    resil_retry_policy_t p = w->p[0];
    p.budget = NULL;
    p.clock = resil_manual_clock_as_clock(w->mc);
    if (p.seed == 0)
        p.seed = 1 + fz_u8(in);
    listen_log lg;
    memset(&lg, 0, sizeof lg);
    p.on_retry = listener;
    p.on_retry_user = &lg;
    static xctx x;
    memset(&x, 0, sizeof x);
    x.mc = w->mc;
    uint8_t k = fz_u8(in);
    int classify = k & 1;
    x.n = k / 2 % (SCRIPT + 1);
    for (int i = 0; i < x.n; i++) {
        uint8_t sel = fz_u8(in);
        x.script[i].result = sel % 16 < 14 ? 1 + sel % 3 : sel % 16 == 14 ? 0 : 4 + (sel >> 7);
        if (!classify && x.script[i].result >= 4)
            x.script[i].result = -x.script[i].result; /* NULL classifier: a failure */
        const resil_retry_hint_t *hp;
        pick_hint(in, &x.script[i].hint, &hp, fz_u8(in));
        if (hp == NULL)
            memset(&x.script[i].hint, 0, sizeof x.script[i].hint);
        uint8_t c = fz_u8(in);
        x.script[i].cost = c & 0x80 ? fz_pick(in) : c;
    }
    uint64_t t0 = fz_pick(in);
    resil_manual_clock_set(w->mc, t0);
    resil_retry_result_t out;
    resil_status s = resil_retry_execute(&p, x_call, classify ? x_classify : NULL, &x, &out);

    /* the documented loop, on a state with the same seed */
    const int timed = p.max_total_ns != 0;
    resil_retry_policy_t q = p;
    q.on_retry = NULL;
    resil_retry_state_t sh;
    MUST(resil_retry_state_init_at(&sh, &q, timed ? t0 : 0) == RESIL_OK, "shadow init");
    fz_u128 deadline = (fz_u128)t0 + p.max_total_ns;
    uint64_t next_start = t0;
    MUST(x.calls >= 1, "execute made no attempt");
    for (int i = 0; i < x.calls; i++) {
        MUST(x.start[i] == next_start, "execute: attempt %d at %llu, expected %llu", i + 1,
             (unsigned long long)x.start[i], (unsigned long long)next_start);
        MUST(i == 0 || !timed || (fz_u128)x.start[i] < deadline,
             "execute: attempt %d starts at %llu, at or past the deadline", i + 1,
             (unsigned long long)x.start[i]);
        int result = i < x.n ? x.script[i].result : 0;
        resil_retry_outcome o = classify      ? (resil_retry_outcome)result
                                : result == 0 ? RESIL_RETRY_SUCCESS
                                              : RESIL_RETRY_FAILURE;
        resil_retry_hint_t h;
        memset(&h, 0, sizeof h);
        if (i < x.n)
            h = x.script[i].hint;
        uint64_t now = timed && o != RESIL_RETRY_FINAL ? x.end[i] : 0, d = 0;
        resil_retry_reason r = resil_retry_next_delay_at(&sh, now, o, &h, &d);
        if (r == RESIL_RETRY_GO) {
            MUST(i + 1 < x.calls, "execute stopped (%s) where the loop goes on after %llu ns",
                 rname(out.reason), (unsigned long long)d);
            next_start = sat_add(x.end[i], d);
        } else {
            MUST(i + 1 == x.calls, "execute went on after %s", rname(r));
            MUST(out.reason == r && out.attempts == resil_retry_attempts(&sh) &&
                     out.last_result == result && out.outcome == o &&
                     s == resil_retry_reason_status(r),
                 "execute: %s (%s, %u attempts, result %d, outcome %d); loop: %s, %u attempts",
                 resil_status_name(s), rname(out.reason), out.attempts, out.last_result,
                 (int)out.outcome, rname(r), resil_retry_attempts(&sh));
        }
    }
    MUST(lg.calls == (uint32_t)x.calls - 1, "execute: listener called %u times for %d attempts",
         lg.calls, x.calls);
    MUST(resil_manual_clock_get(w->mc) == x.end[x.calls - 1], "execute slept after the end");
}

/* ---- driver ------------------------------------------------------------- */

static void expect_timeout(world *w)
{
    const resil_retry_policy_t *p = &w->p[0];
    uint64_t want = p->attempt_timeout_ns != 0 ? p->attempt_timeout_ns : UINT64_MAX;
    if (w->m.has_deadline) {
        fz_u128 left = w->m.deadline > w->now ? w->m.deadline - w->now : 0;
        want = min64(want, fz_sat(left));
    }
    for (int i = 0; i < 2; i++) {
        uint64_t got = resil_retry_attempt_timeout(&w->st[i], w->now);
        MUST(got == want, "attempt_timeout at %llu: %llu, model %llu", (unsigned long long)w->now,
             (unsigned long long)got, (unsigned long long)want);
    }
}

static resil_retry_budget_t *make_budget(const resil_retry_budget_config_t *c)
{
    resil_retry_budget_t *b = NULL;
    MUST(resil_retry_budget_new(c, &b) == RESIL_OK, "budget_new: %s", resil_status_detail());
    return b;
}

static void pick_budget(fz_in *in, world *w, int kind)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    c.kind = kind == 1 ? RESIL_RETRY_BUDGET_TOKEN_BUCKET : RESIL_RETRY_BUDGET_QUOTA;
    c.max_tokens = 1 + fz_u8(in) % 8;
    uint8_t r = fz_u8(in);
    c.token_ratio_milli = r & 0x80 ? 1 + (uint32_t)fz_bytes(in, 3) % 1000000 : 1 + r * 8u;
    c.quota_capacity = 1 + fz_u8(in) % 40;
    c.retry_cost = 1 + fz_u8(in) % c.quota_capacity;
    c.timeout_cost = 1 + fz_u8(in) % c.quota_capacity;
    c.no_retry_increment = fz_u8(in) % (c.quota_capacity + 1);
    w->mb.on = 1;
    w->mb.c = c;
    w->mb.level = c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? (uint64_t)c.max_tokens * 1000
                                                            : c.quota_capacity;
    for (int i = 0; i < 2; i++) {
        w->b[i] = make_budget(&c);
        w->p[i].budget = w->b[i];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_heap_setup();
    fz_in in = {data, size, 0};
    uint8_t mode = fz_u8(&in);
    resil_retry_policy_t p = pick_policy(&in, (mode & 3) == 3);
    unsigned bad = policy_bad(&p);
    policy_surface(&p, bad);
    resil_retry_policy_t dflt = resil_retry_policy_default();
    null_surface(&in, bad ? &dflt : &p);
    if (bad)
        return 0;

    static world w;
    memset(&w, 0, sizeof w);
    MUST(resil_manual_clock_new(0, &w.mc) == RESIL_OK, "manual clock");
    p.clock = resil_manual_clock_as_clock(w.mc);
    if (mode & 4) {
        p.on_retry = listener;
        p.on_retry_user = &w.log[0];
    }
    w.p[0] = w.p[1] = p;
    w.p[1].on_retry_user = &w.log[1];
    if ((mode >> 3) % 4 == 1 || (mode >> 3) % 4 == 2)
        pick_budget(&in, &w, (mode >> 3) % 4);
    if ((mode >> 5) % 8 == 7) {
        execute_surface(&in, &w);
    } else {
        w.now = fz_pick(&in);
        w.burst_left = MAX_BURST_STEPS;
        start(&in, &w, mode >> 7);
        for (int ops = 0; ops < MAX_OPS && fz_more(&in); ops++) {
            uint8_t op = fz_u8(&in);
            int clocked = op >> 7;
            move_time(&in, &w, op);
            switch (op % 16) {
            case 9: /* the operation starts again */
                start(&in, &w, clocked);
                break;
            case 10: { /* both reseeded alike */
                uint64_t seed = fz_pick(&in);
                for (int i = 0; i < 2; i++)
                    MUST(resil_retry_state_seed(&w.st[i], seed) == RESIL_OK, "seed");
                break;
            }
            case 11: /* the twin becomes a copy */
                if (!w.mb.on)
                    w.st[1] = w.st[0];
                break;
            case 12:
                expect_timeout(&w);
                break;
            case 13: { /* failures in a row, as a retry loop makes them */
                uint16_t n = (uint16_t)fz_bytes(&in, 2);
                uint8_t spent = fz_u8(&in);
                for (int k = n % 4096; k > 0 && w.burst_left > 0; k--, w.burst_left--) {
                    if (step(&w, 0, RESIL_RETRY_FAILURE, NULL) != RESIL_RETRY_GO)
                        break;
                    w.now = sat_add(w.now, sat_add(w.last_delay, spent));
                }
                break;
            }
            default: {
                uint8_t sel = fz_u8(&in);
                resil_retry_hint_t h;
                const resil_retry_hint_t *hp;
                pick_hint(&in, &h, &hp, fz_u8(&in));
                step(&w, clocked, pick_outcome(sel), hp);
                break;
            }
            }
        }
        MUST(w.gos + w.stops < (uint64_t)MAX_OPS + MAX_BURST_STEPS + 1, "steps");
    }
    for (int i = 0; i < 2; i++)
        resil_retry_budget_free(w.b[i]);
    resil_manual_clock_free(w.mc);
    return 0;
}
