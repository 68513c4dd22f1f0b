/*
 * Fuzz target: retry budgets (the budget part of resil/retry.h), all three
 * kinds, through the public API and two test hooks, against a model of
 * what the header promises (its internals are free to change).
 *
 * Configuration: every field from the input, edges included (0, 1, the
 * largest value allowed and one past it, costs above the capacity, ttl of
 * 1 ms and 1 hour either side, 64 and 65 buckets). config_check must
 * accept exactly the header's ranges and otherwise name one of the bad
 * fields; size is 0 for an invalid config, else a multiple of 64 within
 * RESIL_RETRY_BUDGET_SIZE(); init refuses an invalid config, NULL, short
 * and misaligned memory and then leaves the memory untouched; new with an
 * allocation failure returns RESIL_E_NO_MEMORY and no budget.
 *
 * Operations, in one thread, on a budget in caller memory (attached again,
 * initialized again in place with another config, or replaced by one from
 * _new): on_request, on_failure (timeout or not, asking for a retry or not,
 * cost_out or NULL), on_success with the cost granted, 0 or any value,
 * can_retry, stats, check, bursts of requests and of failures, and the test
 * hooks resil__retry_budget_lease() (a lease to this thread's stripe, what
 * contention does) and resil__retry_budget_reclaim(), at times from the
 * input (same slot, next slot, slot boundaries, jumps, steps back, near
 * UINT64_MAX). The model:
 *   token bucket: tokens in thousandths, starting at max_tokens * 1000; a
 *     failure takes 1000 (down to 0) and allows the retry iff more than
 *     max_tokens * 1000 / 2 remain; a success adds token_ratio_milli, up
 *     to the maximum;
 *   quota: starts at quota_capacity; a retry takes retry_cost
 *     (timeout_cost after a timeout) if the quota holds it, else is
 *     refused; a success refunds its cost, or no_retry_increment for 0,
 *     up to the capacity; a failure that asks for no retry changes nothing;
 *   ratio: time cut into slots of ttl_ns / buckets; the window is the last
 *     `buckets` slots; a retry is granted iff retries in the window + 1 <=
 *     requests in the window * retry_percent / 100 + min_retries_per_sec *
 *     ttl_ns / 1e9, in exact rational arithmetic, and counts in the window
 *     once granted. Verdicts are exact only while time moves forward (and
 *     within 2^24 slots, where the header's epochs would wrap); once the
 *     input moves time back a slot, only what holds whatever the time is
 *     checked.
 * After every step: verdicts, cost_out, stats (level_milli, max_milli,
 * window_requests, window_retries, granted, refused) equal the model;
 * granted and refused equal the verdicts returned; check() passes;
 * can_retry() agrees with the model (and with the verdict that follows it:
 * the explicit probe); no allocation.
 *
 * Attach: arbitrary bytes, a forged header, a valid budget (with leases
 * out, requests and retries counted) with bytes flipped, checksum
 * optionally recomputed, length shortened: a documented status; a budget
 * it accepts survives every operation and the hooks (statuses from the
 * documented sets, no crash, no hang).
 *
 * Input: byte 0 picks the mode (attach surface for 1 in 8, raw config, a
 * budget from _new); then the config and the start time; then operations
 * of one byte (kind in the low nibble, time step in bits 4..6, bit 7 a
 * variant) plus their arguments. Reading past the end yields zeros. Each
 * run first resets this thread's cached ratio slot, which outlives budgets,
 * so an input means the same whatever ran before it.
 */
#include "fuzz_input.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/retry.h"

/* Internal to src/retry_budget.c, for tests (hidden symbols of the static
 * library): grant the calling thread's stripe a lease, as a failure that
 * lost a CAS does; reclaim every lease. */
void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now);
void resil__retry_budget_reclaim(resil_retry_budget_t *b);

/*
 * Regressions (corpus files): regression-slot-cache-wrap (a thread's cached
 * ratio slot, when it was the last slot before 2^64, once captured times
 * that wrapped past 0) and regression-ratio-rounding (the allowance was
 * rounded down term by term, one retry short of the header's bound).
 */

#define MAX_OPS 400
#define MAX_BURST 1000 /* calls in bursts, per input (replays stay short under TSan) */
#define EPOCH_SLOTS (UINT64_C(1) << 24)

static uint64_t sat_add(uint64_t a, uint64_t b) { return fz_sat((fz_u128)a + b); }

static uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- model -------------------------------------------------------------- */

typedef struct model {
    resil_retry_budget_config_t c;
    uint64_t level; /* bucket: thousandths of a token; quota: units */
    uint64_t granted, refused;
    /* ratio */
    uint64_t slot_ns;
    int exact, started;
    uint64_t e_first, e_max;
    uint64_t slot[RESIL_RETRY_BUDGET_MAX_BUCKETS]; /* slot number + 1 held; 0 none */
    uint64_t req[RESIL_RETRY_BUDGET_MAX_BUCKETS], ret[RESIL_RETRY_BUDGET_MAX_BUCKETS];
} model;

static void m_init(model *m, const resil_retry_budget_config_t *c)
{
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->level = c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? (uint64_t)c->max_tokens * 1000
                                                          : c->quota_capacity;
    m->slot_ns = c->ttl_ns / c->buckets;
    m->exact = 1;
}

static uint64_t m_max(const model *m)
{
    return m->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? (uint64_t)m->c.max_tokens * 1000
                                                        : m->c.quota_capacity;
}

/* Time @p now reached: the model's window stays exact while slots only move
 * forward, within 2^24 slots of the first. @return the slot. */
static uint64_t m_time(model *m, uint64_t now)
{
    uint64_t e = now / m->slot_ns;
    if (!m->started) {
        m->started = 1;
        m->e_first = m->e_max = e;
    }
    if (e < m->e_max || e - m->e_first >= EPOCH_SLOTS - RESIL_RETRY_BUDGET_MAX_BUCKETS)
        m->exact = 0;
    if (e > m->e_max)
        m->e_max = e;
    return e;
}

/* The slot @p e's counters, restarted if they held an older slot. */
static uint32_t m_bucket(model *m, uint64_t e)
{
    uint32_t i = (uint32_t)(e % m->c.buckets);
    if (m->slot[i] != e + 1) {
        m->slot[i] = e + 1;
        m->req[i] = m->ret[i] = 0;
    }
    return i;
}

static void m_window(const model *m, uint64_t e, uint64_t *rq, uint64_t *rt)
{
    *rq = *rt = 0;
    for (uint32_t i = 0; i < m->c.buckets; i++) {
        uint64_t f = m->slot[i];
        if (f != 0 && f - 1 <= e && e - (f - 1) < m->c.buckets) {
            *rq += m->req[i];
            *rt += m->ret[i];
        }
    }
}

/* Whether the ratio window at slot @p e has room for one more retry. */
static int m_ratio_room(const model *m, uint64_t e)
{
    uint64_t rq, rt;
    m_window(m, e, &rq, &rt);
    const resil_retry_budget_config_t *c = &m->c;
    /* (rt + 1) <= rq * p / 100 + floor_per_s * ttl / 1e9, times 1e11 */
    fz_u128 lhs = (fz_u128)(rt + 1) * 100000000000u;
    fz_u128 rhs = (fz_u128)rq * c->retry_percent * 1000000000u +
                  (fz_u128)c->min_retries_per_sec * c->ttl_ns * 100u;
    return lhs <= rhs;
}

/* Whether a retry asked for now would be granted. */
static int m_can(const model *m, uint64_t e, int timeout)
{
    switch (m->c.kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET:
        return sat_sub(m->level, 1000) > (uint64_t)m->c.max_tokens * 500;
    case RESIL_RETRY_BUDGET_QUOTA:
        return m->level >= (timeout ? m->c.timeout_cost : m->c.retry_cost);
    default:
        return m_ratio_room(m, e);
    }
}

/* ---- the world ---------------------------------------------------------- */

typedef struct world {
    resil_retry_budget_t *b;
    unsigned char *mem; /* caller memory, or NULL for a budget from _new */
    size_t len;
    model m;
    uint64_t now;
    uint64_t ok, refusals; /* verdicts returned */
    uint32_t last_cost;    /* cost_out of the last grant */
    int burst_left;
} world;

static const char *kind_name(const model *m)
{
    return m->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? "bucket"
           : m->c.kind == RESIL_RETRY_BUDGET_RATIO      ? "ratio"
                                                        : "quota";
}

static void expect_same(world *w, const char *what)
{
    model *m = &w->m;
    MUST(resil_retry_budget_check(w->b) == RESIL_OK, "%s: check: %s", what, resil_status_detail());
    resil_retry_budget_stats_t s;
    memset(&s, 0xA5, sizeof s);
    MUST(resil_retry_budget_stats(w->b, w->now, &s) == RESIL_OK, "stats");
    MUST(s.kind == m->c.kind, "%s: stats kind %d", what, (int)s.kind);
    MUST(s.granted == w->ok && s.refused == w->refusals,
         "%s: %s granted %llu refused %llu, but %llu and %llu were returned", what, kind_name(m),
         (unsigned long long)s.granted, (unsigned long long)s.refused, (unsigned long long)w->ok,
         (unsigned long long)w->refusals);
    int can = resil_retry_budget_can_retry(w->b, w->now);
    MUST(can == 0 || can == 1, "can_retry %d", can);
    if (m->c.kind == RESIL_RETRY_BUDGET_RATIO) {
        MUST(s.level_milli == 0 && s.max_milli == 0, "%s: ratio level %llu of %llu", what,
             (unsigned long long)s.level_milli, (unsigned long long)s.max_milli);
        uint64_t e = m_time(m, w->now);
        if (!m->exact)
            return;
        uint64_t rq, rt;
        m_window(m, e, &rq, &rt);
        MUST(s.window_requests == rq && s.window_retries == rt,
             "%s: ratio window at slot %llu: %llu requests %llu retries, model %llu %llu", what,
             (unsigned long long)e, (unsigned long long)s.window_requests,
             (unsigned long long)s.window_retries, (unsigned long long)rq, (unsigned long long)rt);
    } else {
        uint64_t unit = m->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? 1 : 1000;
        MUST(s.level_milli == m->level * unit && s.max_milli == m_max(m) * unit &&
                 s.window_requests == 0 && s.window_retries == 0,
             "%s: %s level %llu of %llu, model %llu of %llu", what, kind_name(m),
             (unsigned long long)s.level_milli, (unsigned long long)s.max_milli,
             (unsigned long long)(m->level * unit), (unsigned long long)(m_max(m) * unit));
    }
    MUST(s.granted == m->granted && s.refused == m->refused,
         "%s: %s granted %llu refused %llu, model %llu %llu", what, kind_name(m),
         (unsigned long long)s.granted, (unsigned long long)s.refused,
         (unsigned long long)m->granted, (unsigned long long)m->refused);
    MUST(can == m_can(m, m_time(m, w->now), 0), "%s: %s can_retry %d, model %d", what, kind_name(m),
         can, !can);
}

static void op_request(world *w)
{
    MUST(resil_retry_budget_on_request(w->b, w->now) == RESIL_OK, "on_request");
    if (w->m.c.kind == RESIL_RETRY_BUDGET_RATIO) {
        uint64_t e = m_time(&w->m, w->now);
        w->m.req[m_bucket(&w->m, e)]++;
    }
}

/* @return the verdict. */
static resil_status op_failure(world *w, int timeout, int want, int with_cost)
{
    model *m = &w->m;
    uint64_t e = m_time(m, w->now);
    int exact = m->c.kind != RESIL_RETRY_BUDGET_RATIO || m->exact;
    int can = m_can(m, e, timeout);
    uint32_t cost = 0xdeadbeef;
    resil_status s =
        resil_retry_budget_on_failure(w->b, w->now, timeout, want, with_cost ? &cost : NULL);
    MUST(s == RESIL_OK || (want && s == RESIL_E_BUDGET_EXHAUSTED), "on_failure(want %d): %s", want,
         resil_status_name(s));
    if (want) {
        w->ok += s == RESIL_OK;
        w->refusals += s != RESIL_OK;
    }
    uint32_t want_cost = 0;
    switch (m->c.kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET:
        m->level = sat_sub(m->level, 1000);
        break;
    case RESIL_RETRY_BUDGET_QUOTA:
        if (want && can) {
            want_cost = timeout ? m->c.timeout_cost : m->c.retry_cost;
            m->level -= want_cost;
        }
        break;
    default:
        if (want && can)
            m->ret[m_bucket(m, e)]++;
        break;
    }
    if (exact) {
        uint64_t rq = 0, rt = 0;
        if (m->c.kind == RESIL_RETRY_BUDGET_RATIO)
            m_window(m, e, &rq, &rt);
        MUST(!want || (s == RESIL_OK) == can,
             "%s failure (timeout %d) at slot %llu: %s, model %s (level %llu; ratio window "
             "%llu requests %llu retries before, %u%% + %u/s * %llu ns in %u buckets)",
             kind_name(m), timeout, (unsigned long long)e, resil_status_name(s),
             can ? "allowed" : "refused", (unsigned long long)m->level, (unsigned long long)rq,
             (unsigned long long)(rt - (s == RESIL_OK && can)), m->c.retry_percent,
             m->c.min_retries_per_sec, (unsigned long long)m->c.ttl_ns, m->c.buckets);
        if (want) {
            m->granted += can;
            m->refused += !can;
        }
    }
    if (with_cost)
        MUST(cost == (s == RESIL_OK ? want_cost : 0), "%s: cost_out %u, model %u", kind_name(m),
             cost, s == RESIL_OK ? want_cost : 0);
    if (s == RESIL_OK && want)
        w->last_cost = want_cost;
    return s;
}

static void op_success(world *w, uint32_t cost)
{
    MUST(resil_retry_budget_on_success(w->b, w->now, cost) == RESIL_OK, "on_success");
    model *m = &w->m;
    if (m->c.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET)
        m->level = min64(m_max(m), m->level + m->c.token_ratio_milli);
    else if (m->c.kind == RESIL_RETRY_BUDGET_QUOTA)
        m->level = min64(m_max(m), m->level + (cost != 0 ? cost : m->c.no_retry_increment));
}

/* ---- configuration ------------------------------------------------------ */

static const char *const field_names[11] = {"retry_budget.kind:",
                                            "retry_budget.max_tokens:",
                                            "retry_budget.token_ratio_milli:",
                                            "retry_budget.retry_percent:",
                                            "retry_budget.min_retries_per_sec:",
                                            "retry_budget.ttl_ns:",
                                            "retry_budget.buckets:",
                                            "retry_budget.quota_capacity:",
                                            "retry_budget.retry_cost:",
                                            "retry_budget.timeout_cost:",
                                            "retry_budget.no_retry_increment:"};

/* The fields out of the header's ranges: a bit per field_names entry. */
static unsigned config_bad(const resil_retry_budget_config_t *c)
{
    unsigned bad = 0;
    if ((uint32_t)c->kind > RESIL_RETRY_BUDGET_QUOTA)
        bad |= 1u << 0;
    if (c->max_tokens < 1 || c->max_tokens > 1000)
        bad |= 1u << 1;
    if (c->token_ratio_milli < 1 || c->token_ratio_milli > 1000000)
        bad |= 1u << 2;
    if (c->retry_percent > 1000)
        bad |= 1u << 3;
    if (c->min_retries_per_sec > 1000000)
        bad |= 1u << 4;
    if (c->ttl_ns < RESIL_MS(1) || c->ttl_ns > RESIL_SEC(3600))
        bad |= 1u << 5;
    if (c->buckets < 1 || c->buckets > RESIL_RETRY_BUDGET_MAX_BUCKETS)
        bad |= 1u << 6;
    if (c->quota_capacity < 1 || c->quota_capacity > 1000000)
        bad |= 1u << 7;
    if (c->retry_cost < 1 || c->retry_cost > c->quota_capacity)
        bad |= 1u << 8;
    if (c->timeout_cost < 1 || c->timeout_cost > c->quota_capacity)
        bad |= 1u << 9;
    if (c->no_retry_increment > c->quota_capacity)
        bad |= 1u << 10;
    return bad;
}

static uint32_t pick_u32(fz_in *in, const uint32_t *edges, int n, uint32_t range)
{
    uint8_t k = fz_u8(in);
    if (k % 4 == 0)
        return edges[(k >> 2) % n];
    if (k % 4 == 1)
        return (uint32_t)fz_pick(in);
    return 1 + (uint32_t)fz_bytes(in, k % 4 == 2 ? 1 : 3) % range;
}

static resil_retry_budget_config_t pick_config(fz_in *in, int raw)
{
    resil_retry_budget_config_t c = resil_retry_budget_config_default();
    uint8_t k = fz_u8(in);
    c.kind = (resil_retry_budget_kind)(raw && (k & 0xF0) == 0xF0 ? (uint32_t)fz_pick(in) : k % 3u);
    if (raw) {
        static const uint32_t tok[] = {0, 1, 2, 999, 1000, 1001, UINT32_MAX};
        static const uint32_t ratio[] = {0, 1, 500, 1000, 1000000, 1000001};
        static const uint32_t pct[] = {0, 1, 20, 100, 1000, 1001, UINT32_MAX};
        static const uint32_t caps[] = {0, 1, 2, 5, 1000000, 1000001};
        static const uint32_t bk[] = {0, 1, 2, 8, 64, 65};
        c.max_tokens = pick_u32(in, tok, 7, 1000);
        c.token_ratio_milli = pick_u32(in, ratio, 6, 1000000);
        c.retry_percent = pick_u32(in, pct, 7, 1000);
        c.min_retries_per_sec = pick_u32(in, ratio, 6, 1000000);
        uint8_t t = fz_u8(in);
        static const uint64_t ttls[] = {0,
                                        RESIL_MS(1) - 1,
                                        RESIL_MS(1),
                                        RESIL_SEC(10),
                                        RESIL_SEC(3600),
                                        RESIL_SEC(3600) + 1,
                                        UINT64_MAX};
        c.ttl_ns = t % 2 ? fz_pick(in) : ttls[(t >> 1) % 7];
        c.buckets = pick_u32(in, bk, 6, 64);
        c.quota_capacity = pick_u32(in, caps, 6, 1000);
        c.retry_cost = pick_u32(in, caps, 6, 1000);
        c.timeout_cost = pick_u32(in, caps, 6, 1000);
        c.no_retry_increment = pick_u32(in, caps, 6, 1000);
        return c;
    }
    uint8_t a = fz_u8(in);
    c.max_tokens = a & 0x80 ? 1 + (uint32_t)fz_bytes(in, 2) % 1000 : 1 + a % 12u;
    uint8_t r = fz_u8(in);
    c.token_ratio_milli = r & 0x80 ? 1 + (uint32_t)fz_bytes(in, 3) % 1000000 : 1 + (r % 64u) * 37;
    uint8_t p = fz_u8(in);
    c.retry_percent = p & 0x80 ? (uint32_t)fz_bytes(in, 2) % 1001 : p % 8 == 0 ? 0 : p % 101;
    uint8_t f = fz_u8(in);
    c.min_retries_per_sec = f & 0x80 ? (uint32_t)fz_bytes(in, 3) % 1000001 : f % 4;
    uint8_t t = fz_u8(in);
    static const uint64_t ttls[] = {RESIL_MS(1),    RESIL_MS(1) + 1, 1u << 20,
                                    RESIL_MS(1500), RESIL_SEC(10),   RESIL_SEC(3600)};
    c.ttl_ns =
        t % 8 < 6 ? ttls[t % 8] : RESIL_MS(1) + fz_pick(in) % (RESIL_SEC(3600) - RESIL_MS(1));
    uint8_t bb = fz_u8(in);
    c.buckets = bb & 0x80 ? 1 + bb % 64u : 1 + bb % 4u;
    uint8_t q = fz_u8(in);
    c.quota_capacity = q & 0x80 ? 1 + (uint32_t)fz_bytes(in, 3) % 1000000 : 1 + q % 40u;
    c.retry_cost = 1 + fz_u8(in) % c.quota_capacity;
    c.timeout_cost = 1 + fz_u8(in) % c.quota_capacity;
    c.no_retry_increment = fz_u8(in) % (c.quota_capacity + 1);
    return c;
}

static void config_surface(fz_in *in, const resil_retry_budget_config_t *c, unsigned bad)
{
    resil_status s = resil_retry_budget_config_check(c);
    if (bad == 0) {
        MUST(s == RESIL_OK, "config_check of a valid config: %s (%s)", resil_status_name(s),
             resil_status_detail());
    } else {
        MUST(s == RESIL_E_INVALID_CONFIG, "config_check with bad fields %#x: %s", bad,
             resil_status_name(s));
        const char *detail = resil_status_detail();
        int named = 0;
        for (int i = 0; i < 11; i++)
            if ((bad >> i & 1) && strncmp(detail, field_names[i], strlen(field_names[i])) == 0)
                named = 1;
        MUST(named, "config_check with bad fields %#x: detail \"%s\"", bad, detail);
    }
    size_t size = resil_retry_budget_size(c);
    uint32_t nb = c->kind == RESIL_RETRY_BUDGET_RATIO ? c->buckets : 1;
    MUST(bad ? size == 0 : size > 0 && size % 64 == 0 && size <= RESIL_RETRY_BUDGET_SIZE(nb),
         "size %zu for a %s config", size, bad ? "invalid" : "valid");
    size_t len = bad ? 4096 : size;
    unsigned char *mem = fz_block(len + 64), *copy = fz_block(len + 64);
    for (size_t i = 0; i < len + 64; i++)
        mem[i] = (unsigned char)(0x5A ^ i);
    memcpy(copy, mem, len + 64);
    resil_retry_budget_t *b = (resil_retry_budget_t *)1;
    if (bad) {
        MUST(resil_retry_budget_init(mem, len, c, &b) == RESIL_E_INVALID_CONFIG && b == NULL,
             "init: invalid");
        b = (resil_retry_budget_t *)1;
        MUST(resil_retry_budget_new(c, &b) == RESIL_E_INVALID_CONFIG && b == NULL, "new");
    } else {
        size_t off = 1 + fz_u8(in) % 63;
        MUST(resil_retry_budget_init(mem, len - 1 - fz_u8(in) % 64, c, &b) == RESIL_E_INVALID_ARG &&
                 b == NULL,
             "init: short");
        MUST(resil_retry_budget_init(mem + off, len, c, NULL) == RESIL_E_INVALID_ARG,
             "init: misaligned by %zu", off);
        MUST(resil_retry_budget_init(NULL, len, c, &b) == RESIL_E_INVALID_ARG, "init: NULL");
        MUST(resil_retry_budget_init(mem, len, NULL, NULL) == RESIL_E_INVALID_ARG,
             "init: NULL config");
        fz_heap.fail_in = 0;
        b = (resil_retry_budget_t *)1;
        MUST(resil_retry_budget_new(c, &b) == RESIL_E_NO_MEMORY && b == NULL, "new with no memory");
        fz_heap.fail_in = -1;
    }
    MUST(memcmp(mem, copy, len + 64) == 0, "a refused init wrote to memory");
    free(mem);
    free(copy);
}

static void null_surface(void)
{
    uint32_t cost = 7;
    resil_retry_budget_t *b = (resil_retry_budget_t *)1;
    resil_retry_budget_stats_t s;
    MUST(resil_retry_budget_config_check(NULL) == RESIL_E_INVALID_ARG, "config_check(NULL)");
    MUST(resil_retry_budget_size(NULL) == 0, "size(NULL)");
    MUST(resil_retry_budget_new(NULL, &b) == RESIL_E_INVALID_ARG, "new(NULL)");
    MUST(resil_retry_budget_attach(NULL, 4096, &b) == RESIL_E_INVALID_ARG && b == NULL,
         "attach(NULL)");
    MUST(resil_retry_budget_on_request(NULL, 0) == RESIL_E_INVALID_ARG, "on_request(NULL)");
    MUST(resil_retry_budget_on_failure(NULL, 0, 0, 1, &cost) == RESIL_E_INVALID_ARG && cost == 0,
         "on_failure(NULL)");
    MUST(resil_retry_budget_on_success(NULL, 0, 1) == RESIL_E_INVALID_ARG, "on_success(NULL)");
    MUST(resil_retry_budget_can_retry(NULL, 0) == 0, "can_retry(NULL)");
    MUST(resil_retry_budget_stats(NULL, 0, &s) == RESIL_E_INVALID_ARG, "stats(NULL)");
    MUST(resil_retry_budget_check(NULL) == RESIL_E_INVALID_ARG, "check(NULL)");
    resil_retry_budget_free(NULL);
}

/* ---- attach ------------------------------------------------------------- */

/* Some use of a budget: requests, failures, successes, leases. */
static void scribble(fz_in *in, resil_retry_budget_t *b, uint64_t now, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t op = fz_u8(in);
        now += (uint64_t)(op >> 4) * RESIL_MS(1);
        switch (op % 6) {
        case 0:
        case 1:
            resil_retry_budget_on_request(b, now);
            break;
        case 2:
        case 3:
            resil_retry_budget_on_failure(b, now, op & 8, 1, NULL);
            break;
        case 4:
            resil_retry_budget_on_success(b, now, op & 8 ? 5 : 0);
            break;
        default:
            resil__retry_budget_lease(b, now);
            break;
        }
    }
}

/* A valid budget, used a little (requests, retries, leases out). */
static unsigned char *make_block(fz_in *in, size_t *len)
{
    resil_retry_budget_config_t c = pick_config(in, 0);
    *len = resil_retry_budget_size(&c);
    unsigned char *mem = fz_block(*len);
    resil_retry_budget_t *b = NULL;
    MUST(resil_retry_budget_init(mem, *len, &c, &b) == RESIL_OK && b == (void *)mem, "init");
    scribble(in, b, RESIL_SEC(100), fz_u8(in) % 24);
    return mem;
}

static void attach_surface(fz_in *in)
{
    unsigned char *at;
    size_t len;
    unsigned char *mem = fz_attach_memory(in, 4096, 7, make_block, &at, &len);
    resil_retry_budget_t *b = (resil_retry_budget_t *)1;
    resil_status s = resil_retry_budget_attach(at, len, &b);
    fz_attach_answer(s, b, RESIL_OK);
    MUST(s != RESIL_E_NO_MEMORY, "attach allocated");
    if (s == RESIL_OK) { /* whatever got through survives use */
        MUST(b == (void *)at, "attach: a handle other than the memory");
        uint64_t now = fz_pick(in);
        for (int i = 0; i < 16; i++) {
            uint8_t op = fz_u8(in);
            uint32_t cost = 0;
            resil_status r;
            resil_retry_budget_stats_t st;
            now = op & 0x80 ? fz_pick(in) : now + (uint64_t)(op >> 4) * RESIL_MS(3);
            switch (op % 8) {
            case 0:
                MUST(resil_retry_budget_on_request(b, now) == RESIL_OK, "on_request");
                break;
            case 1:
            case 2:
                r = resil_retry_budget_on_failure(b, now, op & 8, op & 16 ? 0 : 1, &cost);
                MUST(r == RESIL_OK || r == RESIL_E_BUDGET_EXHAUSTED, "on_failure: %s",
                     resil_status_name(r));
                break;
            case 3:
                MUST(resil_retry_budget_on_success(b, now, op & 8 ? (uint32_t)fz_pick(in) : 0) ==
                         RESIL_OK,
                     "on_success");
                break;
            case 4:
                MUST(resil_retry_budget_can_retry(b, now) <= 1, "can_retry");
                MUST(resil_retry_budget_stats(b, now, &st) == RESIL_OK, "stats");
                MUST(st.level_milli <= st.max_milli, "stats: level %llu above %llu",
                     (unsigned long long)st.level_milli, (unsigned long long)st.max_milli);
                break;
            case 5:
                resil__retry_budget_lease(b, now);
                break;
            case 6:
                resil__retry_budget_reclaim(b);
                break;
            default: {
                resil_retry_budget_t *b2 = NULL;
                r = resil_retry_budget_attach(at, len, &b2);
                fz_attach_answer(r, b2, RESIL_OK);
                break;
            }
            }
            s = resil_retry_budget_check(b);
            MUST(s == RESIL_OK || s == RESIL_E_CORRUPT, "check: %s", resil_status_name(s));
        }
        resil_retry_budget_free(b); /* caller memory: nothing */
    }
    free(mem);
}

/* ---- driver ------------------------------------------------------------- */

/* Moves w->now as bits 4..6 of @p op say. */
static void move_time(fz_in *in, world *w, uint8_t op)
{
    const uint64_t s = w->m.slot_ns;
    uint8_t a;
    switch ((op >> 4) & 7) {
    case 0:
        break;
    case 1:
        w->now = sat_add(w->now, fz_u8(in));
        break;
    case 2: /* a fraction of a slot */
        a = fz_u8(in);
        w->now = sat_add(w->now, s / 16 * (a % 32));
        break;
    case 3: /* the first or last nanosecond of a slot a little ahead */
        a = fz_u8(in);
        w->now = fz_sat(((fz_u128)(w->now / s) + a % (2 * w->m.c.buckets + 2)) * s +
                        (a & 0x80 ? s - 1 : 0));
        break;
    case 4:
        w->now = sat_add(w->now, fz_pick(in));
        break;
    case 5: /* back */
        a = fz_u8(in);
        w->now = sat_sub(w->now, a & 0x80 ? fz_pick(in) : a % 2 ? s : a);
        break;
    case 6:
        w->now = fz_pick(in);
        break;
    default:
        w->now = UINT64_MAX - fz_u8(in);
        break;
    }
}

/* A budget made anew with @p c: in place in the memory when it fits and
 * @p in_place, else in fresh memory or from _new. */
static void remake(world *w, const resil_retry_budget_config_t *c, int how)
{
    size_t size = resil_retry_budget_size(c);
    resil_retry_budget_free(w->mem == NULL ? w->b : NULL);
    w->b = NULL;
    if (how == 2) {
        free(w->mem);
        w->mem = NULL;
        MUST(resil_retry_budget_new(c, &w->b) == RESIL_OK, "new: %s", resil_status_detail());
    } else {
        if (w->mem == NULL || size > w->len || how == 1) {
            free(w->mem);
            w->len = size;
            w->mem = fz_block(w->len);
        }
        resil_retry_budget_t *out = NULL;
        MUST(resil_retry_budget_init(w->mem, w->len, c, &out) == RESIL_OK && out == (void *)w->mem,
             "init: %s", resil_status_detail());
        MUST(resil_retry_budget_attach(w->mem, w->len, &w->b) == RESIL_OK && w->b == (void *)w->mem,
             "attach: %s", resil_status_detail());
    }
    m_init(&w->m, c);
    w->ok = w->refusals = 0;
    w->last_cost = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Each thread caches the slot of its last ratio call, across budgets
     * with the same slot length and bucket count. Calls at time 0 on two
     * scratch budgets with different slot lengths leave it in a state no
     * earlier input decided (the second call cannot hit the cache). */
    static resil_retry_budget_t *scratch[2];
    for (int i = 0; i < 2; i++) {
        if (scratch[i] == NULL) {
            resil_retry_budget_config_t sc = resil_retry_budget_config_default();
            sc.kind = RESIL_RETRY_BUDGET_RATIO;
            sc.ttl_ns = RESIL_SEC(1 + i);
            size_t n = resil_retry_budget_size(&sc);
            MUST(resil_retry_budget_init(fz_block(n), n, &sc, &scratch[i]) == RESIL_OK, "scratch");
        }
        MUST(resil_retry_budget_can_retry(scratch[i], 0) == 1, "scratch");
    }
    fz_in in;
    int mode = fz_begin(&in, data, size, 1, attach_surface);
    if (mode < 0)
        return 0;
    null_surface();
    resil_retry_budget_config_t c = pick_config(&in, (mode & 0xC0) == 0xC0);
    unsigned bad = config_bad(&c);
    config_surface(&in, &c, bad);
    if (bad)
        return 0;

    static world w;
    memset(&w, 0, sizeof w);
    remake(&w, &c, mode & 0x20 ? 2 : 0);
    w.now = fz_pick(&in);
    w.burst_left = MAX_BURST;
    expect_same(&w, "fresh");
    for (int ops = 0; ops < MAX_OPS && fz_more(&in); ops++) {
        uint8_t op = fz_u8(&in);
        const int variant = op >> 7;
        uint64_t heap = fz_heap.allocs - fz_heap.frees;
        move_time(&in, &w, op);
        switch (op % 16) {
        case 0:
        case 1:
            op_request(&w);
            break;
        case 2:
        case 3:
        case 4: {
            uint8_t a = fz_u8(&in);
            op_failure(&w, a & 1, a % 8 != 6, a & 8 ? 0 : 1);
            break;
        }
        case 5: {
            uint8_t a = fz_u8(&in);
            uint32_t cost = a % 4 == 0 ? 0 : a % 4 == 1 ? (uint32_t)fz_pick(&in) : w.last_cost;
            op_success(&w, cost);
            break;
        }
        case 6: { /* can_retry agrees with the verdict that follows it */
            int can = resil_retry_budget_can_retry(w.b, w.now);
            resil_status s = op_failure(&w, 0, 1, 1);
            MUST(can == (s == RESIL_OK) || (w.m.c.kind == RESIL_RETRY_BUDGET_RATIO && !w.m.exact),
                 "can_retry said %d, on_failure answered %s", can, resil_status_name(s));
            break;
        }
        case 7: {
            uint64_t t = w.now;
            resil__retry_budget_lease(w.b, t);
            m_time(&w.m, t);
            break;
        }
        case 8:
            resil__retry_budget_reclaim(w.b);
            break;
        case 9: { /* made anew */
            uint8_t how = fz_u8(&in);
            resil_retry_budget_config_t n = variant ? c : pick_config(&in, 0);
            remake(&w, &n, how % 3);
            c = n;
            heap = fz_heap.allocs - fz_heap.frees;
            break;
        }
        case 10: /* another handle on the memory: the same budget */
            if (w.mem != NULL) {
                resil_retry_budget_t *b2 = NULL;
                MUST(resil_retry_budget_attach(w.mem, w.len, &b2) == RESIL_OK && b2 == w.b,
                     "attach to a live budget: %s", resil_status_detail());
                resil_retry_budget_free(b2); /* caller memory: nothing */
            }
            break;
        case 11: { /* requests in a row */
            uint16_t n = (uint16_t)fz_bytes(&in, 2) % 2048;
            for (; n > 0 && w.burst_left > 0; n--, w.burst_left--)
                op_request(&w);
            break;
        }
        case 12: { /* failures asking for retries in a row */
            uint8_t n = fz_u8(&in);
            for (int k = variant ? n * 4 : n % 16; k > 0 && w.burst_left > 0; k--, w.burst_left--)
                op_failure(&w, k & 1 && (n & 1), 1, 1);
            break;
        }
        default: {
            uint8_t a = fz_u8(&in);
            op_failure(&w, a & 1, 1, a & 2);
            break;
        }
        }
        MUST(fz_heap.allocs - fz_heap.frees == heap, "op %d allocated", op % 16);
        expect_same(&w, "step");
    }
    resil_retry_budget_free(w.mem == NULL ? w.b : NULL);
    free(w.mem);
    return 0;
}
