/*
 * Retry policy, per-operation state, next_delay and the one-call executor.
 * See include/resil/retry.h for the behaviour.
 *
 * The state carries the un-jittered backoff of the next retry, so each step
 * is O(1) whatever the attempt number: the exponential kind multiplies it
 * once per retry, saturating at the cap. It is kept in 64.64 fixed point
 * (backoff_ns whole ns, u.frac the fraction), and the multiplier used as
 * the exact dyadic M * 2^-k it is, so d(n) stays within 1 ns below
 * initial * m^(n-1) (each step truncates less than 2^-64 ns) rather than
 * losing up to 1 ns a step, which kept a small backoff from ever growing.
 * The jitter formulas follow the AWS Architecture Blog "Exponential Backoff
 * And Jitter" (Brooker, 2015) and gRFC A6 (proportional +-20 %):
 *
 *   full:         U[0, d)
 *   equal:        d - floor(d/2) + U[0, floor(d/2))   i.e. [ceil(d/2), d)
 *   decorrelated: U[base, min(cap, 3 * prev))          prev_0 = base
 *   proportional: U[d - s, min(cap, d + s))            s = d * p / 100
 *
 * where d = min(cap, d(n)). Every draw is below the cap (or equal to it when
 * the range is empty), and none is forced onto exactly the cap: capping the
 * bound before drawing, rather than the draw after, keeps delays near the
 * cap spread out instead of collapsing onto it.
 *
 * Random numbers: a splitmix64 state (8 bytes) per operation, mapped to a
 * range with Lemire's multiply-shift (resil__scale64), so a full-jitter step
 * is a handful of multiplies and no division.
 */
#include "resil/retry.h"

#include <math.h>
#include <string.h>

#include "internal/rng.h"
#include "internal/util.h"

__extension__ typedef unsigned __int128 u128;

#define ST_INIT 1u
#define ST_DEADLINE 2u    /* the operation has a deadline */
#define ST_DEADLINE_HI 4u /* ... at 2^64 + deadline_ns: start + max_total_ns carried */

const char *resil_retry_reason_name(resil_retry_reason r)
{
    switch (r) {
    case RESIL_RETRY_GO:
        return "go";
    case RESIL_RETRY_STOP_SUCCEEDED:
        return "succeeded";
    case RESIL_RETRY_STOP_FINAL:
        return "final_failure";
    case RESIL_RETRY_STOP_ATTEMPTS:
        return "attempts_exhausted";
    case RESIL_RETRY_STOP_DEADLINE:
        return "deadline";
    case RESIL_RETRY_STOP_DO_NOT_RETRY:
        return "do_not_retry";
    case RESIL_RETRY_STOP_BUDGET:
        return "budget_exhausted";
    case RESIL_RETRY_STOP_INVALID_ARG:
        return "invalid_arg";
    }
    return "unknown";
}

resil_status resil_retry_reason_status(resil_retry_reason r)
{
    switch (r) {
    case RESIL_RETRY_GO:
    case RESIL_RETRY_STOP_SUCCEEDED:
        return RESIL_OK;
    case RESIL_RETRY_STOP_DEADLINE:
        return RESIL_E_DEADLINE_EXCEEDED;
    case RESIL_RETRY_STOP_BUDGET:
        return RESIL_E_BUDGET_EXHAUSTED;
    case RESIL_RETRY_STOP_FINAL:
    case RESIL_RETRY_STOP_ATTEMPTS:
    case RESIL_RETRY_STOP_DO_NOT_RETRY:
        return RESIL_E_CALL_FAILED;
    case RESIL_RETRY_STOP_INVALID_ARG:
        return RESIL_E_INVALID_ARG;
    }
    return RESIL_E_INVALID_ARG;
}

resil_retry_policy_t resil_retry_policy_default(void)
{
    resil_retry_policy_t p;
    memset(&p, 0, sizeof p);
    p.backoff = RESIL_BACKOFF_EXPONENTIAL;
    p.jitter = RESIL_JITTER_FULL;
    p.initial_delay_ns = RESIL_MS(100);
    p.increment_ns = RESIL_MS(100);
    p.multiplier = 2.0;
    p.max_delay_ns = RESIL_SEC(10);
    p.jitter_percent = 20;
    p.max_attempts = 3;
    return p;
}

static resil_status policy_check(const resil_retry_policy_t *p)
{
    if ((unsigned)p->backoff > RESIL_BACKOFF_EXPONENTIAL)
        return RESIL__BAD_CONFIG("retry.backoff", "must be a resil_backoff_kind, got %d",
                                 (int)p->backoff);
    if ((unsigned)p->jitter > RESIL_JITTER_PROPORTIONAL)
        return RESIL__BAD_CONFIG("retry.jitter", "must be a resil_jitter_kind, got %d",
                                 (int)p->jitter);
    /* written so that NaN fails too */
    if (!(p->multiplier > 0.0 && p->multiplier <= 1e6))
        return RESIL__BAD_CONFIG("retry.multiplier", "must be finite and in (0, 1e6], got %g",
                                 p->multiplier);
    if (p->max_delay_ns < p->initial_delay_ns)
        return RESIL__BAD_CONFIG(
            "retry.max_delay_ns", "must be >= initial_delay_ns (%llu), got %llu",
            (unsigned long long)p->initial_delay_ns, (unsigned long long)p->max_delay_ns);
    if (p->jitter_percent > 100)
        return RESIL__BAD_CONFIG("retry.jitter_percent", "must be in 0..100, got %u",
                                 (unsigned)p->jitter_percent);
    if (p->max_attempts < 1 || p->max_attempts > RESIL_RETRY_MAX_ATTEMPTS)
        return RESIL__BAD_CONFIG("retry.max_attempts", "must be in 1..%u, got %u",
                                 (unsigned)RESIL_RETRY_MAX_ATTEMPTS, (unsigned)p->max_attempts);
    return RESIL_OK;
}

resil_status resil_retry_policy_check(const resil_retry_policy_t *p)
{
    if (p == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_policy_check: policy is NULL");
    return policy_check(p);
}

/* Whether next_delay needs the time at all. */
static inline int needs_time(const resil_retry_policy_t *p)
{
    return p->max_total_ns != 0 || p->budget != NULL;
}

resil_status resil_retry_state_init_at(resil_retry_state_t *st, const resil_retry_policy_t *p,
                                       uint64_t now_ns)
{
    if (st == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_state_init: state is NULL");
    st->flags = 0;
    if (p == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_state_init: policy is NULL");
    resil_status s = policy_check(p);
    if (RESIL__UNLIKELY(s != RESIL_OK))
        return s;
    st->policy = p;
    /* Seed 0: a seed of its own now, not at the first draw, so that a copy
     * made at any time is the same operation (the same future delays). */
    st->rng = p->seed != 0 ? p->seed : resil_random_u64();
    st->backoff_ns = p->initial_delay_ns;
    st->u.frac = 0;
    if (p->jitter == RESIL_JITTER_DECORRELATED)
        st->u.prev_ns = p->initial_delay_ns;
    st->start_ns = now_ns;
    /* Kept exactly, in 65 bits: saturating at UINT64_MAX would make a late
     * start's deadline a time, and so a check, different from the one the
     * policy asked for (and used to read as "no deadline"). */
    st->deadline_ns = now_ns + p->max_total_ns;
    uint32_t dl = 0;
    if (p->max_total_ns != 0)
        dl = ST_DEADLINE | (st->deadline_ns < now_ns ? ST_DEADLINE_HI : 0u);
    st->attempt = 1;
    st->budget_cost = 0;
    st->last_reason = RESIL_RETRY_GO;
    st->flags = ST_INIT | dl;
    if (p->budget != NULL)
        (void)resil_retry_budget_on_request(p->budget, now_ns);
    return RESIL_OK;
}

resil_status resil_retry_state_init(resil_retry_state_t *st, const resil_retry_policy_t *p)
{
    uint64_t now = (p != NULL && needs_time(p)) ? resil_clock_now(&p->clock) : 0;
    return resil_retry_state_init_at(st, p, now);
}

resil_status resil_retry_state_seed(resil_retry_state_t *st, uint64_t seed)
{
    if (st == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_state_seed: state is NULL");
    st->rng = seed;
    return RESIL_OK;
}

/* The deadline as the 65-bit number it is; call only with ST_DEADLINE set. */
static inline u128 deadline_of(const resil_retry_state_t *st)
{
    return ((u128)((st->flags & ST_DEADLINE_HI) != 0) << 64) | st->deadline_ns;
}

static inline uint64_t draw(resil_retry_state_t *st) { return resil__splitmix64_next(&st->rng); }

/*
 * backoff *= m in 64.64 fixed point, truncated, capped. A double m in
 * (0, 1e6] is exactly M * 2^-k with M its 53-bit significand and k >= 33
 * (m < 2^20), so the product is (backoff * 2^64) * M, 181 bits as hi:lo,
 * shifted right by k. Two 64x64 multiplies and no division.
 */
static inline void backoff_mul(resil_retry_state_t *st, double m, uint64_t cap)
{
    uint64_t bits;
    memcpy(&bits, &m, sizeof bits);
    const uint64_t e = bits >> 52; /* m > 0: no sign bit */
    uint64_t sig = bits & ((UINT64_C(1) << 52) - 1);
    unsigned k = 1074; /* subnormal m */
    if (RESIL__LIKELY(e != 0)) {
        sig |= UINT64_C(1) << 52;
        k = 1075 - (unsigned)e;
    }
    const u128 a = (u128)st->u.frac * sig;
    const u128 hi = (u128)st->backoff_ns * sig + (a >> 64); /* < 2^118 */
    const uint64_t lo = (uint64_t)a;
    u128 y; /* the product, 64.64 */
    if (k >= 64)
        y = k < 192 ? hi >> (k - 64) : 0;
    else if (hi >> (64 + k) == 0)
        y = (hi << (64 - k)) | (lo >> k);
    else
        y = (u128)cap << 64; /* 2^64 ns or more */
    if ((uint64_t)(y >> 64) < cap) {
        st->backoff_ns = (uint64_t)(y >> 64);
        st->u.frac = (uint64_t)y;
    } else {
        st->backoff_ns = cap;
        st->u.frac = 0;
    }
}

/* The jittered delay of the next retry; advances the backoff. */
static inline uint64_t backoff_delay(resil_retry_state_t *st, const resil_retry_policy_t *p)
{
    const uint64_t cap = p->max_delay_ns;
    const uint64_t d = st->backoff_ns; /* always <= cap */
    uint64_t delay;

    switch (p->jitter) {
    case RESIL_JITTER_FULL:
        delay = resil__scale64(draw(st), d);
        break;
    case RESIL_JITTER_EQUAL: {
        uint64_t half = d / 2;
        delay = (d - half) + resil__scale64(draw(st), half);
        break;
    }
    case RESIL_JITTER_DECORRELATED: {
        uint64_t base = p->initial_delay_ns;
        uint64_t hi = resil__min_u64(cap, resil__sat_mul(st->u.prev_ns, 3));
        delay = hi > base ? base + resil__scale64(draw(st), hi - base) : hi;
        st->u.prev_ns = delay;
        return delay; /* decorrelated jitter grows through prev, not the backoff */
    }
    case RESIL_JITTER_PROPORTIONAL: {
        uint64_t spread = (uint64_t)(((u128)d * p->jitter_percent) / 100);
        uint64_t lo = d - spread;
        uint64_t hi = resil__min_u64(cap, resil__sat_add(d, spread));
        delay = hi > lo ? lo + resil__scale64(draw(st), hi - lo) : lo;
        break;
    }
    default: /* RESIL_JITTER_NONE */
        delay = d;
        break;
    }

    switch (p->backoff) {
    case RESIL_BACKOFF_EXPONENTIAL:
        if (RESIL__LIKELY(p->multiplier == 2.0)) {
            /* the common case: the fraction starts at 0 and doubling keeps it 0 */
            st->backoff_ns = d > cap / 2 ? cap : d * 2;
        } else {
            backoff_mul(st, p->multiplier, cap);
        }
        break;
    case RESIL_BACKOFF_LINEAR:
        st->backoff_ns = resil__min_u64(cap, resil__sat_add(d, p->increment_ns));
        break;
    default:
        break;
    }
    return delay;
}

/* Records a failure that will not be retried in the budget, and stops. */
static inline resil_retry_reason stop_failed(resil_retry_state_t *st, const resil_retry_policy_t *p,
                                             uint64_t now, resil_retry_outcome outcome,
                                             resil_retry_reason why)
{
    if (p->budget != NULL)
        (void)resil_retry_budget_on_failure(p->budget, now, outcome == RESIL_RETRY_TIMEOUT, 0,
                                            NULL);
    st->last_reason = (uint32_t)why;
    return why;
}

resil_retry_reason resil_retry_next_delay_at(resil_retry_state_t *st, uint64_t now_ns,
                                             resil_retry_outcome outcome,
                                             const resil_retry_hint_t *hint, uint64_t *delay_ns)
{
    if (delay_ns != NULL)
        *delay_ns = 0;
    if (RESIL__UNLIKELY(st == NULL || !(st->flags & ST_INIT))) {
        resil__fail(RESIL_E_INVALID_ARG, "retry_next_delay: state is NULL or not initialized");
        return RESIL_RETRY_STOP_INVALID_ARG;
    }
    const resil_retry_policy_t *p = st->policy;

    if (outcome == RESIL_RETRY_SUCCESS) {
        if (p->budget != NULL)
            (void)resil_retry_budget_on_success(p->budget, now_ns, st->budget_cost);
        st->last_reason = RESIL_RETRY_STOP_SUCCEEDED;
        return RESIL_RETRY_STOP_SUCCEEDED;
    }
    if (outcome == RESIL_RETRY_FINAL) {
        st->last_reason = RESIL_RETRY_STOP_FINAL;
        return RESIL_RETRY_STOP_FINAL;
    }
    if (RESIL__UNLIKELY(outcome != RESIL_RETRY_FAILURE && outcome != RESIL_RETRY_TIMEOUT)) {
        resil__fail(RESIL_E_INVALID_ARG,
                    "retry_next_delay: outcome %d is not a resil_retry_outcome", (int)outcome);
        return RESIL_RETRY_STOP_INVALID_ARG;
    }

    resil_retry_hint_kind hk = hint != NULL ? hint->kind : RESIL_RETRY_HINT_NONE;
    if (RESIL__UNLIKELY(hk != RESIL_RETRY_HINT_NONE)) {
        if (hk == RESIL_RETRY_HINT_DO_NOT_RETRY)
            return stop_failed(st, p, now_ns, outcome, RESIL_RETRY_STOP_DO_NOT_RETRY);
        if (hk != RESIL_RETRY_HINT_AFTER) {
            resil__fail(RESIL_E_INVALID_ARG,
                        "retry_next_delay: hint kind %d is not a "
                        "resil_retry_hint_kind",
                        (int)hk);
            return RESIL_RETRY_STOP_INVALID_ARG;
        }
    }
    if (st->attempt >= p->max_attempts)
        return stop_failed(st, p, now_ns, outcome, RESIL_RETRY_STOP_ATTEMPTS);

    uint64_t delay;
    int pushback = 0;
    if (RESIL__UNLIKELY(hk == RESIL_RETRY_HINT_AFTER)) {
        delay = hint->delay_ns;
        if (p->max_pushback_ns != 0 && delay > p->max_pushback_ns)
            delay = p->max_pushback_ns;
        /* gRFC A6: after pushback the backoff starts again from the initial delay */
        st->backoff_ns = p->initial_delay_ns;
        st->u.frac = 0;
        if (p->jitter == RESIL_JITTER_DECORRELATED)
            st->u.prev_ns = p->initial_delay_ns;
        pushback = 1;
    } else {
        delay = backoff_delay(st, p);
    }

    if ((st->flags & ST_DEADLINE) && (u128)now_ns + delay >= deadline_of(st))
        return stop_failed(st, p, now_ns, outcome, RESIL_RETRY_STOP_DEADLINE);

    uint32_t cost = 0;
    if (p->budget != NULL &&
        resil_retry_budget_on_failure(p->budget, now_ns, outcome == RESIL_RETRY_TIMEOUT, 1,
                                      &cost) != RESIL_OK) {
        st->last_reason = RESIL_RETRY_STOP_BUDGET;
        return RESIL_RETRY_STOP_BUDGET;
    }

    st->budget_cost = cost;
    st->attempt++;
    st->last_reason = RESIL_RETRY_GO;
    if (p->on_retry != NULL) {
        resil_retry_event_t ev;
        ev.attempt = st->attempt;
        ev.delay_ns = delay;
        ev.outcome = outcome;
        ev.pushback = pushback;
        p->on_retry(p->on_retry_user, &ev);
    }
    if (delay_ns != NULL)
        *delay_ns = delay;
    return RESIL_RETRY_GO;
}

resil_retry_reason resil_retry_next_delay(resil_retry_state_t *st, resil_retry_outcome outcome,
                                          const resil_retry_hint_t *hint, uint64_t *delay_ns)
{
    uint64_t now = 0;
    if (st != NULL && (st->flags & ST_INIT) && needs_time(st->policy) &&
        outcome != RESIL_RETRY_FINAL)
        now = resil_clock_now(&st->policy->clock);
    return resil_retry_next_delay_at(st, now, outcome, hint, delay_ns);
}

uint64_t resil_retry_attempt_timeout(const resil_retry_state_t *st, uint64_t now_ns)
{
    if (st == NULL || !(st->flags & ST_INIT))
        return 0;
    uint64_t t = st->policy->attempt_timeout_ns != 0 ? st->policy->attempt_timeout_ns : UINT64_MAX;
    if (st->flags & ST_DEADLINE) {
        u128 d = deadline_of(st);
        u128 left = d > now_ns ? d - now_ns : 0;
        t = resil__min_u64(t, left > UINT64_MAX ? UINT64_MAX : (uint64_t)left);
    }
    return t;
}

uint32_t resil_retry_attempts(const resil_retry_state_t *st)
{
    return (st != NULL && (st->flags & ST_INIT)) ? st->attempt : 0;
}

static inline resil_retry_outcome classify_result(resil_retry_classify_fn classify, void *ctx,
                                                  int r)
{
    return classify != NULL ? classify(ctx, r)
                            : (r == 0 ? RESIL_RETRY_SUCCESS : RESIL_RETRY_FAILURE);
}

/* Fills the caller's result, if it asked for one. */
static inline void fill_result(resil_retry_result_t *out, int r, resil_retry_outcome o,
                               uint32_t attempts, resil_retry_reason why)
{
    if (out != NULL) {
        out->last_result = r;
        out->outcome = o;
        out->attempts = attempts;
        out->reason = why;
    }
}

resil_status resil_retry_execute(const resil_retry_policy_t *p, resil_retry_call_fn fn,
                                 resil_retry_classify_fn classify, void *ctx,
                                 resil_retry_result_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (p == NULL || fn == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_execute: %s is NULL",
                           p == NULL ? "policy" : "fn");
    resil_status s = policy_check(p);
    if (RESIL__UNLIKELY(s != RESIL_OK))
        return s;
    const int timed = needs_time(p);
    resil_retry_state_t st;
    if (RESIL__LIKELY(!timed)) {
        /* Fast path: no deadline and no budget, so nothing needs recording
         * before the first attempt; a first-time success costs one check. */
        resil_retry_hint_t hint = {RESIL_RETRY_HINT_NONE, 0};
        int r = fn(ctx, 1, &hint);
        resil_retry_outcome o = classify_result(classify, ctx, r);
        if (RESIL__LIKELY(o == RESIL_RETRY_SUCCESS)) {
            fill_result(out, r, o, 1, RESIL_RETRY_STOP_SUCCEEDED);
            return RESIL_OK;
        }
        (void)resil_retry_state_init_at(&st, p, 0);
        uint64_t delay = 0;
        resil_retry_reason why = resil_retry_next_delay_at(&st, 0, o, &hint, &delay);
        if (why != RESIL_RETRY_GO) {
            fill_result(out, r, o, st.attempt, why);
            return resil_retry_reason_status(why);
        }
        resil_clock_sleep(&p->clock, delay);
    } else {
        (void)resil_retry_state_init(&st, p);
    }

    for (;;) {
        resil_retry_hint_t hint = {RESIL_RETRY_HINT_NONE, 0};
        int r = fn(ctx, st.attempt, &hint);
        resil_retry_outcome o = classify_result(classify, ctx, r);
        uint64_t now = timed && o != RESIL_RETRY_FINAL ? resil_clock_now(&p->clock) : 0;
        uint64_t delay;
        resil_retry_reason why = resil_retry_next_delay_at(&st, now, o, &hint, &delay);
        if (RESIL__LIKELY(why != RESIL_RETRY_GO)) {
            fill_result(out, r, o, st.attempt, why);
            return resil_retry_reason_status(why);
        }
        resil_clock_sleep(&p->clock, delay);
    }
}
