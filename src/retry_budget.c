/*
 * Retry budgets: one pointer-free state block, lock-free, shareable between
 * processes. See include/resil/retry.h for the three semantics.
 *
 * Layout (layout version 1):
 *
 *   offset  size  field
 *        0    32  block header (kind RETRY_BUDGET)
 *       32    64  budget_cfg: the immutable configuration (hashed)
 *       96     4  owned: OWNED_MAGIC if made by resil_retry_budget_new()
 *      128     8  level: the one word every decision CASes (own cache line)
 *      192   256  4 stripes of {granted, refused}: statistics, relaxed, one
 *                 cache line per stripe, so threads counting them do not
 *                 contend with each other or with the level word
 *      448  16*B  ratio kind only: B buckets of {requests, retries}
 *
 * level: token bucket: tokens in thousandths (0..max_tokens*1000), so
 * gRPC's fractional token_ratio (3 decimals) is exact integer arithmetic
 * and "record the failure and decide the retry" is a single CAS. Quota:
 * quota units (0..capacity). Ratio: unused.
 *
 * Ratio buckets: time is cut into slots of ttl/B ns; slot number e =
 * now / (ttl/B) lives in bucket e mod B. Each counter word is
 *
 *   bits 63..40  epoch: e mod 2^24 (which slot the count belongs to)
 *   bits 39..0   count
 *
 * so a stale bucket is recognised and restarted by the same CAS that
 * counts into it. The window is the B slots up to and including the
 * current one. A retry is granted by a CAS on the current bucket's retry
 * word that rechecks the allowance against the count it replaces; the
 * other buckets only receive counts while they are current, so with time
 * frozen the bound is exact under any number of threads. Across a slot
 * boundary a thread that read an older time may count into the previous
 * slot: the overshoot is at most one retry per such thread. Epochs are
 * compared modulo 2^24 slots (194 days with 1 s slots): a bucket left
 * untouched for exactly a multiple of that would be miscounted once.
 */
#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/stripe.h"
#include "internal/util.h"
#include "resil/retry.h"

#define BUDGET_LAYOUT 1
#define OWNED_MAGIC UINT32_C(0x4f574e44)
#define MILLI UINT64_C(1000)
#define EPOCH_BITS 24
#define COUNT_BITS 40
#define COUNT_MASK ((UINT64_C(1) << COUNT_BITS) - 1)
#define EPOCH_MASK ((UINT64_C(1) << EPOCH_BITS) - 1)

typedef struct budget_cfg {
    uint32_t kind;
    uint32_t max_tokens;
    uint32_t token_ratio_milli;
    uint32_t retry_percent;
    uint32_t min_retries_per_sec;
    uint32_t buckets;
    uint32_t quota_capacity;
    uint32_t retry_cost;
    uint32_t timeout_cost;
    uint32_t no_retry_increment;
    uint64_t ttl_ns;
    uint64_t slot_ns; /* ttl_ns / buckets */
    uint64_t floor;   /* min_retries_per_sec * ttl seconds, precomputed */
} budget_cfg;

#define BUDGET_STRIPES 4

typedef struct budget_stats {
    _Alignas(64) resil__atomic_u64 granted;
    resil__atomic_u64 refused;
} budget_stats;

struct resil_retry_budget {
    resil__block_header h;
    budget_cfg cfg;
    uint32_t owned;
    _Alignas(64) resil__atomic_u64 level;
    _Alignas(64) budget_stats stats[BUDGET_STRIPES];
    resil__atomic_u64 slots[]; /* 2 per bucket: requests, retries */
};

_Static_assert(sizeof(budget_cfg) == 64, "budget config layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, cfg) == 32, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, level) == 128, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, stats) == 192, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, slots) == 448, "budget layout is ABI");

/* Trailer after a heap block made by resil_retry_budget_new(). */
typedef struct owned_trailer {
    resil_allocator_t by;
    size_t alloc_size;
} owned_trailer;

resil_retry_budget_config_t resil_retry_budget_config_default(void)
{
    resil_retry_budget_config_t c;
    memset(&c, 0, sizeof c);
    c.kind = RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    c.max_tokens = 10;
    c.token_ratio_milli = 100;
    c.retry_percent = 20;
    c.min_retries_per_sec = 10;
    c.ttl_ns = RESIL_SEC(10);
    c.buckets = 10;
    c.quota_capacity = 500;
    c.retry_cost = 5;
    c.timeout_cost = 10;
    c.no_retry_increment = 1;
    return c;
}

static resil_status cfg_check(const resil_retry_budget_config_t *c)
{
    if ((unsigned)c->kind > RESIL_RETRY_BUDGET_QUOTA)
        return RESIL__BAD_CONFIG("retry_budget.kind", "must be a resil_retry_budget_kind, got %d",
                                 (int)c->kind);
    if (c->max_tokens < 1 || c->max_tokens > 1000)
        return RESIL__BAD_CONFIG("retry_budget.max_tokens", "must be in 1..1000, got %u",
                                 (unsigned)c->max_tokens);
    if (c->token_ratio_milli < 1 || c->token_ratio_milli > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.token_ratio_milli", "must be in 1..1000000, got %u",
                                 (unsigned)c->token_ratio_milli);
    if (c->retry_percent > 1000)
        return RESIL__BAD_CONFIG("retry_budget.retry_percent", "must be in 0..1000, got %u",
                                 (unsigned)c->retry_percent);
    if (c->min_retries_per_sec > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.min_retries_per_sec",
                                 "must be in 0..1000000, got %u", (unsigned)c->min_retries_per_sec);
    if (c->ttl_ns < RESIL_MS(1) || c->ttl_ns > RESIL_SEC(3600))
        return RESIL__BAD_CONFIG("retry_budget.ttl_ns", "must be in 1 ms..1 hour, got %llu ns",
                                 (unsigned long long)c->ttl_ns);
    if (c->buckets < 1 || c->buckets > RESIL_RETRY_BUDGET_MAX_BUCKETS)
        return RESIL__BAD_CONFIG("retry_budget.buckets", "must be in 1..%d, got %u",
                                 RESIL_RETRY_BUDGET_MAX_BUCKETS, (unsigned)c->buckets);
    if (c->quota_capacity < 1 || c->quota_capacity > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.quota_capacity", "must be in 1..1000000, got %u",
                                 (unsigned)c->quota_capacity);
    if (c->retry_cost < 1 || c->retry_cost > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.retry_cost",
                                 "must be in 1..quota_capacity (%u), "
                                 "got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->retry_cost);
    if (c->timeout_cost < 1 || c->timeout_cost > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.timeout_cost",
                                 "must be in 1..quota_capacity (%u), got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->timeout_cost);
    if (c->no_retry_increment > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.no_retry_increment",
                                 "must be in 0..quota_capacity (%u), got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->no_retry_increment);
    return RESIL_OK;
}

resil_status resil_retry_budget_config_check(const resil_retry_budget_config_t *cfg)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_config_check: config is NULL");
    return cfg_check(cfg);
}

static size_t size_for(uint32_t kind, uint32_t buckets)
{
    size_t nb = kind == RESIL_RETRY_BUDGET_RATIO ? buckets : 0;
    size_t bytes = sizeof(struct resil_retry_budget) + nb * 2 * sizeof(resil__atomic_u64);
    return (bytes + RESIL_BLOCK_ALIGN - 1) / RESIL_BLOCK_ALIGN * RESIL_BLOCK_ALIGN;
}

size_t resil_retry_budget_size(const resil_retry_budget_config_t *cfg)
{
    if (cfg == NULL || cfg_check(cfg) != RESIL_OK)
        return 0;
    return size_for((uint32_t)cfg->kind, cfg->buckets);
}

static uint64_t max_level(const budget_cfg *c)
{
    return c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? (uint64_t)c->max_tokens * MILLI
                                                      : (uint64_t)c->quota_capacity;
}

static void write_block(struct resil_retry_budget *b, const resil_retry_budget_config_t *cfg,
                        size_t size, uint32_t owned)
{
    memset(b, 0, size);
    budget_cfg *c = &b->cfg;
    c->kind = (uint32_t)cfg->kind;
    c->max_tokens = cfg->max_tokens;
    c->token_ratio_milli = cfg->token_ratio_milli;
    c->retry_percent = cfg->retry_percent;
    c->min_retries_per_sec = cfg->min_retries_per_sec;
    c->buckets = cfg->buckets;
    c->quota_capacity = cfg->quota_capacity;
    c->retry_cost = cfg->retry_cost;
    c->timeout_cost = cfg->timeout_cost;
    c->no_retry_increment = cfg->no_retry_increment;
    c->ttl_ns = cfg->ttl_ns;
    c->slot_ns = cfg->ttl_ns / cfg->buckets;
    if (c->slot_ns == 0)
        c->slot_ns = 1;
    /* <= 1e6 * 3.6e12 < 2^64 */
    c->floor = (uint64_t)cfg->min_retries_per_sec * cfg->ttl_ns / UINT64_C(1000000000);
    b->owned = owned;
    resil__a64_store_relaxed(&b->level, max_level(c));
    resil__block_publish(&b->h, RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT, size, &b->cfg,
                         sizeof b->cfg);
}

resil_status resil_retry_budget_init(void *mem, size_t len, const resil_retry_budget_config_t *cfg,
                                     resil_retry_budget_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_init: config is NULL");
    resil_status s = cfg_check(cfg);
    if (s != RESIL_OK)
        return s;
    size_t need = size_for((uint32_t)cfg->kind, cfg->buckets);
    s = resil__block_check_memory(mem, len, need);
    if (s != RESIL_OK)
        return s;
    write_block(mem, cfg, need, 0);
    if (out != NULL)
        *out = mem;
    return RESIL_OK;
}

/* Invariants of an attached block; a pure read. */
static resil_status invariants(const struct resil_retry_budget *b)
{
    const budget_cfg *c = &b->cfg;
    resil_retry_budget_config_t pub;
    memset(&pub, 0, sizeof pub);
    pub.kind = (resil_retry_budget_kind)c->kind;
    pub.max_tokens = c->max_tokens;
    pub.token_ratio_milli = c->token_ratio_milli;
    pub.retry_percent = c->retry_percent;
    pub.min_retries_per_sec = c->min_retries_per_sec;
    pub.ttl_ns = c->ttl_ns;
    pub.buckets = c->buckets;
    pub.quota_capacity = c->quota_capacity;
    pub.retry_cost = c->retry_cost;
    pub.timeout_cost = c->timeout_cost;
    pub.no_retry_increment = c->no_retry_increment;
    if ((unsigned)c->kind > RESIL_RETRY_BUDGET_QUOTA || cfg_check(&pub) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: stored configuration is invalid");
    if (c->slot_ns != (c->ttl_ns / c->buckets ? c->ttl_ns / c->buckets : 1))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: stored slot length does not match");
    if (b->h.size != size_for(c->kind, c->buckets))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: size %llu does not match its config",
                           (unsigned long long)b->h.size);
    uint64_t lvl = resil__a64_load_acquire(&b->level);
    if (lvl > max_level(c))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: level %llu above its maximum %llu",
                           (unsigned long long)lvl, (unsigned long long)max_level(c));
    return RESIL_OK;
}

resil_status resil_retry_budget_attach(void *mem, size_t len, resil_retry_budget_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_attach: out is NULL");
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT);
    if (s != RESIL_OK)
        return s;
    const struct resil_retry_budget *b = mem;
    if (b->h.config_off != offsetof(struct resil_retry_budget, cfg) ||
        b->h.config_len != sizeof(budget_cfg))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: config region misplaced");
    s = invariants(b);
    if (s != RESIL_OK)
        return s;
    *out = mem;
    return RESIL_OK;
}

resil_status resil_retry_budget_new(const resil_retry_budget_config_t *cfg,
                                    resil_retry_budget_t **out)
{
    if (out == NULL || cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_new: %s is NULL",
                           out == NULL ? "out" : "config");
    *out = NULL;
    resil_status s = cfg_check(cfg);
    if (s != RESIL_OK)
        return s;
    size_t size = size_for((uint32_t)cfg->kind, cfg->buckets);
    size_t alloc_size = size + sizeof(owned_trailer);
    resil_allocator_t by;
    void *mem = resil__alloc(alloc_size, &by);
    if (mem == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "retry_budget_new: allocating %zu bytes failed",
                           alloc_size);
    write_block(mem, cfg, size, OWNED_MAGIC);
    owned_trailer t;
    t.by = by;
    t.alloc_size = alloc_size;
    memcpy((unsigned char *)mem + size, &t, sizeof t);
    *out = mem;
    return RESIL_OK;
}

void resil_retry_budget_free(resil_retry_budget_t *b)
{
    if (b == NULL || b->owned != OWNED_MAGIC)
        return;
    owned_trailer t;
    memcpy(&t, (unsigned char *)b + b->h.size, sizeof t);
    resil__block_retire(&b->h);
    resil__free(&t.by, b, t.alloc_size);
}

/* ---- ratio window ------------------------------------------------------ */

static inline uint64_t slot_of(const budget_cfg *c, uint64_t now)
{
    /* hardware division: measured faster here (AMD EPYC) than a
     * precomputed multiply-shift divider */
    return now / c->slot_ns;
}

static inline uint32_t bucket_of(const budget_cfg *c, uint64_t slot)
{
    return (uint32_t)(slot % c->buckets);
}

/* Adds one to counter word @p w for slot @p e, restarting it if it holds
 * an older slot's count; saturates at the 40-bit maximum. */
static inline void count_one(resil__atomic_u64 *w, uint64_t e)
{
    uint64_t tag = (e & EPOCH_MASK) << COUNT_BITS;
    uint64_t cur = resil__a64_load_relaxed(w);
    for (;;) {
        uint64_t n = (cur & ~COUNT_MASK) == tag ? (cur & COUNT_MASK) : 0;
        if (n == COUNT_MASK)
            return; /* saturated */
        if (resil__a64_cas_acq_rel(w, &cur, tag | (n + 1)))
            return;
    }
}

/* Value of counter word @p v if its slot is within the window ending at
 * slot @p e, else 0. */
static inline uint64_t live_count(const budget_cfg *c, uint64_t v, uint64_t e)
{
    uint64_t age = ((e & EPOCH_MASK) - (v >> COUNT_BITS)) & EPOCH_MASK;
    return age < c->buckets ? (v & COUNT_MASK) : 0;
}

/* Sums the window: requests over every bucket, retries over every bucket
 * except @p skip (the current one, whose word the caller CASes). */
static void window_sums(const struct resil_retry_budget *b, uint64_t e, uint32_t skip,
                        uint64_t *requests, uint64_t *retries)
{
    const budget_cfg *c = &b->cfg;
    uint64_t rq = 0, rt = 0;
    for (uint32_t i = 0; i < c->buckets; i++) {
        rq += live_count(c, resil__a64_load_acquire(&b->slots[2 * i]), e);
        if (i != skip)
            rt += live_count(c, resil__a64_load_acquire(&b->slots[2 * i + 1]), e);
    }
    *requests = rq;
    *retries = rt;
}

static inline uint64_t allowance(const budget_cfg *c, uint64_t requests)
{
    /* requests < 64 * 2^40, percent <= 1000: no overflow */
    return requests * c->retry_percent / 100 + c->floor;
}

static resil_status ratio_try_retry(struct resil_retry_budget *b, uint64_t now)
{
    const budget_cfg *c = &b->cfg;
    uint64_t e = slot_of(c, now);
    uint32_t idx = bucket_of(c, e);
    uint64_t requests, others;
    window_sums(b, e, idx, &requests, &others);
    uint64_t allow = allowance(c, requests);
    resil__atomic_u64 *w = &b->slots[2 * idx + 1];
    uint64_t tag = (e & EPOCH_MASK) << COUNT_BITS;
    uint64_t cur = resil__a64_load_acquire(w);
    for (;;) {
        uint64_t n = (cur & ~COUNT_MASK) == tag ? (cur & COUNT_MASK) : 0;
        if (others + n + 1 > allow || n == COUNT_MASK)
            return RESIL_E_BUDGET_EXHAUSTED;
        if (resil__a64_cas_acq_rel(w, &cur, tag | (n + 1)))
            return RESIL_OK;
    }
}

/* ---- operations -------------------------------------------------------- */

resil_status resil_retry_budget_on_request(resil_retry_budget_t *b, uint64_t now_ns)
{
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_request: budget is NULL");
    if (b->cfg.kind == RESIL_RETRY_BUDGET_RATIO) {
        uint64_t e = slot_of(&b->cfg, now_ns);
        count_one(&b->slots[2 * bucket_of(&b->cfg, e)], e);
    }
    return RESIL_OK;
}

static inline resil_status verdict(resil_retry_budget_t *b, int allowed)
{
    budget_stats *mine = &b->stats[resil__stripe(BUDGET_STRIPES)];
    if (allowed) {
        resil__a64_fetch_add_relaxed(&mine->granted, 1);
        return RESIL_OK;
    }
    /* a refusal is an ordinary outcome, not an error: no detail to format */
    resil__a64_fetch_add_relaxed(&mine->refused, 1);
    return RESIL_E_BUDGET_EXHAUSTED;
}

resil_status resil_retry_budget_on_failure(resil_retry_budget_t *b, uint64_t now_ns, int timeout,
                                           int want_retry, uint32_t *cost_out)
{
    if (cost_out != NULL)
        *cost_out = 0;
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_failure: budget is NULL");
    const budget_cfg *c = &b->cfg;
    switch (c->kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET: {
        const uint64_t half = (uint64_t)c->max_tokens * MILLI / 2;
        uint64_t cur = resil__a64_load_acquire(&b->level);
        uint64_t next;
        do {
            next = cur >= MILLI ? cur - MILLI : 0;
            if (next == cur)
                break; /* empty: nothing to write */
        } while (!resil__a64_cas_acq_rel(&b->level, &cur, next));
        return want_retry ? verdict(b, next > half) : RESIL_OK;
    }
    case RESIL_RETRY_BUDGET_QUOTA: {
        if (!want_retry)
            return RESIL_OK;
        const uint64_t cost = timeout ? c->timeout_cost : c->retry_cost;
        uint64_t cur = resil__a64_load_acquire(&b->level);
        for (;;) {
            if (cur < cost)
                return verdict(b, 0);
            if (resil__a64_cas_acq_rel(&b->level, &cur, cur - cost))
                break;
        }
        if (cost_out != NULL)
            *cost_out = (uint32_t)cost;
        return verdict(b, 1);
    }
    default: /* RATIO */
        if (!want_retry)
            return RESIL_OK;
        return verdict(b, ratio_try_retry(b, now_ns) == RESIL_OK);
    }
}

resil_status resil_retry_budget_on_success(resil_retry_budget_t *b, uint64_t now_ns, uint32_t cost)
{
    (void)now_ns;
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_success: budget is NULL");
    const budget_cfg *c = &b->cfg;
    uint64_t add, max;
    if (c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET) {
        add = c->token_ratio_milli;
        max = (uint64_t)c->max_tokens * MILLI;
    } else if (c->kind == RESIL_RETRY_BUDGET_QUOTA) {
        add = cost != 0 ? cost : c->no_retry_increment;
        max = c->quota_capacity;
    } else {
        return RESIL_OK;
    }
    /* A healthy dependency keeps the level full: then this is one load. */
    uint64_t cur = resil__a64_load_acquire(&b->level);
    for (;;) {
        uint64_t next = resil__min_u64(max, cur + add);
        if (next == cur || resil__a64_cas_acq_rel(&b->level, &cur, next))
            return RESIL_OK;
    }
}

int resil_retry_budget_can_retry(const resil_retry_budget_t *b, uint64_t now_ns)
{
    if (b == NULL)
        return 0;
    const budget_cfg *c = &b->cfg;
    uint64_t lvl = resil__a64_load_acquire(&b->level);
    switch (c->kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET:
        return lvl >= MILLI && lvl - MILLI > (uint64_t)c->max_tokens * MILLI / 2;
    case RESIL_RETRY_BUDGET_QUOTA:
        return lvl >= c->retry_cost;
    default: {
        uint64_t e = slot_of(c, now_ns), rq, rt;
        window_sums(b, e, UINT32_MAX, &rq, &rt);
        return rt + 1 <= allowance(c, rq);
    }
    }
}

resil_status resil_retry_budget_stats(const resil_retry_budget_t *b, uint64_t now_ns,
                                      resil_retry_budget_stats_t *out)
{
    if (b == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_stats: %s is NULL",
                           b == NULL ? "budget" : "out");
    memset(out, 0, sizeof *out);
    const budget_cfg *c = &b->cfg;
    out->kind = (resil_retry_budget_kind)c->kind;
    uint64_t lvl = resil__a64_load_acquire(&b->level);
    if (c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET) {
        out->level_milli = lvl;
        out->max_milli = (uint64_t)c->max_tokens * MILLI;
    } else if (c->kind == RESIL_RETRY_BUDGET_QUOTA) {
        out->level_milli = lvl * MILLI;
        out->max_milli = (uint64_t)c->quota_capacity * MILLI;
    } else {
        window_sums(b, slot_of(c, now_ns), UINT32_MAX, &out->window_requests, &out->window_retries);
    }
    out->granted = out->refused = 0;
    for (int i = 0; i < BUDGET_STRIPES; i++) {
        out->granted += resil__a64_load_relaxed(&b->stats[i].granted);
        out->refused += resil__a64_load_relaxed(&b->stats[i].refused);
    }
    return RESIL_OK;
}

resil_status resil_retry_budget_check(const resil_retry_budget_t *b)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_check: budget is NULL");
    resil_status s = resil__block_attach(b, b->h.size >= sizeof b->h ? b->h.size : sizeof b->h,
                                         RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT);
    if (s != RESIL_OK)
        return s;
    return invariants(b);
}
