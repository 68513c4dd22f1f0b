/*
 * GCRA rate limiter: one theoretical-arrival-time word per limiter (see
 * src/internal/gcra.h for the algorithm and its source).
 *
 *   0    header (32) + config (64)
 *   128  tat: the only word a decision writes (its own cache line)
 *   192  tally: 8 counter lines owned by one thread each + 1 shared line
 *        (admitted, rejected; statistics only, see internal/tally.h), so
 *        an admission is one locked instruction, the CAS on tat
 */
#include "resil/ratelimit.h"

#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/gcra.h"
#include "internal/ratelimit.h"
#include "internal/tally.h"
#include "internal/util.h"

#define LAYOUT_VERSION 2
#define LINES 8

enum { ADMITTED, REJECTED };

typedef struct block {
    resil__block_header h;
    resil__ratelimit_params cfg;
    unsigned char pad0[128 - sizeof(resil__block_header) - sizeof(resil__ratelimit_params)];
    resil__atomic_u64 tat;
    uint64_t pad1[7];
    resil__tally_line tally[LINES + 1];
} block;

_Static_assert(sizeof(block) <= RESIL_RATELIMIT_SIZE(), "RESIL_RATELIMIT_SIZE() bounds the block");

struct resil_ratelimit {
    block *blk;
    resil_clock_t clock;
    resil_allocator_t by;
    size_t alloc_size;
};

resil_ratelimit_config_t resil_ratelimit_config_default(void)
{
    resil_ratelimit_config_t c = {100, RESIL_SEC(1), 10};
    return c;
}

resil_status resil__ratelimit_params_make(const resil_ratelimit_config_t *cfg,
                                          resil__ratelimit_params *p, const char *who)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "%s: config is NULL", who);
    if (cfg->period_ns == 0)
        return resil__fail(RESIL_E_INVALID_CONFIG, "%s.period_ns: must be >= 1, got 0", who);
    if (cfg->rate == 0 || cfg->rate > cfg->period_ns)
        return resil__fail(RESIL_E_INVALID_CONFIG,
                           "%s.rate: must be in 1..period_ns (%llu), got %llu", who,
                           (unsigned long long)cfg->period_ns, (unsigned long long)cfg->rate);
    uint64_t t = cfg->period_ns / cfg->rate;
    if ((cfg->period_ns % cfg->rate) >= cfg->rate - cfg->period_ns % cfg->rate)
        t++; /* round to nearest */
    if (cfg->burst == 0)
        return resil__fail(RESIL_E_INVALID_CONFIG, "%s.burst: must be >= 1, got 0", who);
    uint64_t horizon = resil__sat_mul(t, cfg->burst);
    if (horizon > RESIL_RATELIMIT_MAX_HORIZON_NS)
        return resil__fail(RESIL_E_INVALID_CONFIG,
                           "%s.burst: burst * interval overflows (%llu * %llu ns)", who,
                           (unsigned long long)cfg->burst, (unsigned long long)t);
    memset(p, 0, sizeof *p);
    p->rate = cfg->rate;
    p->period_ns = cfg->period_ns;
    p->burst = cfg->burst;
    p->interval_ns = t;
    p->horizon_ns = horizon;
    p->tolerance_ns = horizon - t;
    return RESIL_OK;
}

resil_status resil__ratelimit_params_verify(const resil__ratelimit_params *p)
{
    resil_ratelimit_config_t c = {p->rate, p->period_ns, p->burst};
    resil__ratelimit_params q;
    if (resil__ratelimit_params_make(&c, &q, "ratelimit") != RESIL_OK ||
        memcmp(&q, p, sizeof q) != 0)
        return resil__fail(RESIL_E_CORRUPT, "ratelimit: stored parameters are inconsistent");
    return RESIL_OK;
}

resil_status resil_ratelimit_config_check(const resil_ratelimit_config_t *cfg)
{
    resil__ratelimit_params p;
    return resil__ratelimit_params_make(cfg, &p, "ratelimit");
}

size_t resil_ratelimit_size(const resil_ratelimit_config_t *cfg)
{
    return cfg != NULL && resil_ratelimit_config_check(cfg) == RESIL_OK ? sizeof(block) : 0;
}

resil_status resil_ratelimit_init(void *mem, size_t len, const resil_ratelimit_config_t *cfg)
{
    resil__ratelimit_params p;
    resil_status s = resil__ratelimit_params_make(cfg, &p, "ratelimit");
    if (s == RESIL_OK)
        s = resil__block_check_memory(mem, len, sizeof(block));
    if (s != RESIL_OK)
        return s;
    block *k = mem;
    resil__block_retire(&k->h);
    memset((unsigned char *)mem + sizeof k->h, 0, sizeof(block) - sizeof k->h);
    k->cfg = p;
    resil__block_publish(&k->h, RESIL__KIND_RATELIMIT, LAYOUT_VERSION, sizeof(block), &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

static resil_status make_handle(void *mem, const resil_ratelimit_local_t *local, int with_state,
                                resil_ratelimit_t **out)
{
    resil_allocator_t by;
    size_t hsize = (sizeof(resil_ratelimit_t) + 63) & ~(size_t)63;
    size_t total = hsize + (with_state ? sizeof(block) : 0);
    resil_ratelimit_t *r = resil__alloc(total, &by);
    if (r == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "ratelimit: allocation of %zu bytes failed", total);
    r->blk = mem != NULL ? mem : (block *)(void *)((unsigned char *)r + hsize);
    if (local != NULL)
        r->clock = local->clock;
    r->by = by;
    r->alloc_size = total;
    *out = r;
    return RESIL_OK;
}

resil_status resil_ratelimit_attach(void *mem, size_t len, const resil_ratelimit_local_t *local,
                                    resil_ratelimit_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_RATELIMIT, LAYOUT_VERSION);
    if (s != RESIL_OK)
        return s;
    const block *k = mem;
    if (len < sizeof(block) || k->h.size != sizeof(block) ||
        k->h.config_off != offsetof(block, cfg) || k->h.config_len != sizeof k->cfg)
        return resil__fail(RESIL_E_CORRUPT, "ratelimit: header does not describe a rate limiter");
    s = resil__ratelimit_params_verify(&k->cfg);
    if (s != RESIL_OK)
        return s;
    return make_handle(mem, local, 0, out);
}

resil_status resil_ratelimit_new(const resil_ratelimit_config_t *cfg,
                                 const resil_ratelimit_local_t *local, resil_ratelimit_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_new: out is NULL");
    *out = NULL;
    resil_status s = resil_ratelimit_config_check(cfg);
    if (s != RESIL_OK)
        return s;
    resil_ratelimit_t *r = NULL;
    s = make_handle(NULL, local, 1, &r);
    if (s != RESIL_OK)
        return s;
    resil_ratelimit_init(r->blk, sizeof(block), cfg);
    *out = r;
    return RESIL_OK;
}

void resil_ratelimit_free(resil_ratelimit_t *r)
{
    if (r != NULL)
        resil__free(&r->by, r, r->alloc_size);
}

static inline resil_status decide(resil_ratelimit_t *r, uint64_t n, uint64_t slack, uint64_t now,
                                  uint64_t *wait_ns)
{
    block *k = r->blk;
    uint64_t w;
    if (resil__gcra_decide(&k->tat, now, n * k->cfg.interval_ns, k->cfg.horizon_ns, slack, &w)) {
        resil__tally_add(k->tally, LINES, ADMITTED, n);
        if (wait_ns != NULL)
            *wait_ns = w;
        return RESIL_OK;
    }
    resil__tally_add(k->tally, LINES, REJECTED, 1);
    if (wait_ns != NULL)
        *wait_ns = w;
    return RESIL_E_RATE_LIMITED;
}

static resil_status bad_request(const resil_ratelimit_t *r, uint64_t n, uint64_t *wait_ns)
{
    if (wait_ns != NULL)
        *wait_ns = 0;
    if (r == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit: handle is NULL");
    return resil__fail(RESIL_E_INVALID_ARG, "ratelimit: n must be in 1..burst (%llu), got %llu",
                       (unsigned long long)r->blk->cfg.burst, (unsigned long long)n);
}

resil_status resil_ratelimit_try_acquire_at(resil_ratelimit_t *r, uint64_t n, uint64_t now_ns,
                                            uint64_t *wait_ns)
{
    if (RESIL__UNLIKELY(r == NULL || n == 0 || n > r->blk->cfg.burst))
        return bad_request(r, n, wait_ns);
    return decide(r, n, 0, now_ns, wait_ns);
}

resil_status resil_ratelimit_try_acquire(resil_ratelimit_t *r, uint64_t n, uint64_t *wait_ns)
{
    if (RESIL__UNLIKELY(r == NULL || n == 0 || n > r->blk->cfg.burst))
        return bad_request(r, n, wait_ns);
    return decide(r, n, 0, resil_clock_now(&r->clock), wait_ns);
}

resil_status resil_ratelimit_reserve_at(resil_ratelimit_t *r, uint64_t n, uint64_t max_wait_ns,
                                        uint64_t now_ns, uint64_t *wait_ns)
{
    if (RESIL__UNLIKELY(r == NULL || n == 0 || n > r->blk->cfg.burst))
        return bad_request(r, n, wait_ns);
    return decide(r, n, max_wait_ns, now_ns, wait_ns);
}

resil_status resil_ratelimit_reserve(resil_ratelimit_t *r, uint64_t n, uint64_t max_wait_ns,
                                     uint64_t *wait_ns)
{
    if (RESIL__UNLIKELY(r == NULL || n == 0 || n > r->blk->cfg.burst))
        return bad_request(r, n, wait_ns);
    return decide(r, n, max_wait_ns, resil_clock_now(&r->clock), wait_ns);
}

resil_status resil_ratelimit_acquire_wait(resil_ratelimit_t *r, uint64_t n, uint64_t max_wait_ns)
{
    uint64_t w = 0;
    resil_status s = resil_ratelimit_reserve(r, n, max_wait_ns, &w);
    if (s == RESIL_OK && w > 0)
        resil_clock_sleep(&r->clock, w);
    return s;
}

resil_status resil_ratelimit_stats(const resil_ratelimit_t *r, resil_ratelimit_stats_t *out)
{
    if (r == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_stats: NULL argument");
    const block *k = r->blk;
    memset(out, 0, sizeof *out);
    out->emission_interval_ns = k->cfg.interval_ns;
    out->tolerance_ns = k->cfg.tolerance_ns;
    out->tat_ns = resil__a64_load_acquire(&k->tat);
    out->admitted = resil__tally_sum(k->tally, LINES, ADMITTED);
    out->rejected = resil__tally_sum(k->tally, LINES, REJECTED);
    return RESIL_OK;
}

resil_status resil_ratelimit_check(const resil_ratelimit_t *r)
{
    if (r == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_check: handle is NULL");
    return resil__ratelimit_params_verify(&r->blk->cfg);
}
