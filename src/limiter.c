/*
 * Adaptive concurrency limiter. Block layout:
 *
 *   0    header (32) + config (64)
 *   128  state: in_flight (bits 0..31) | limit (bits 32..63); acquire is one
 *        CAS on it, release one more
 *   192  estimate (double bits), phase, baseline_ns, probe_min_ns, last_dec,
 *        window (GRADIENT: samples and RTT sum of the current round)
 *   256  counters (statistics only)
 *
 * phase (GRADIENT): gen (bits 48..63) | probing (bits 40..47) | samples in
 * this phase (bits 0..39). Normal phase: every sample moves the estimate and
 * lowers the baseline to the sample if smaller. After probe_interval
 * samples the limiter pins the limit to min_limit (Envoy's minRTT window);
 * samples of calls admitted during that pin (their permit carries the
 * generation) give probe_min; after probe_samples of them the baseline
 * becomes probe_min and the estimate is in force again.
 */
#include "resil/limiter.h"

#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/util.h"

#define LAYOUT_VERSION 1
#define COUNT_MASK ((UINT64_C(1) << 40) - 1)
#define WSUM_MASK ((UINT64_C(1) << 44) - 1)

typedef struct lcfg {
    uint32_t algorithm, initial_limit, min_limit, max_limit;
    double backoff_ratio;
    uint64_t timeout_ns;
    double smoothing, rtt_tolerance;
    uint32_t queue_size, probe_interval, probe_samples, id;
} lcfg;

typedef struct block {
    resil__block_header h;
    lcfg cfg;
    uint64_t pad0[4];
    resil__atomic_u64 state;
    uint64_t pad1[7];
    resil__atomic_u64 estimate, phase, baseline, probe_min, last_dec, window;
    uint64_t pad2[2];
    resil__atomic_u64 granted, rejected, samples, drops, probes;
    uint64_t pad3[3];
} block;

_Static_assert(sizeof(lcfg) == 64, "limiter config is one line");
_Static_assert(offsetof(block, state) == 128, "state on its own line");
_Static_assert(sizeof(block) == 320 && sizeof(block) <= 576, "RESIL_LIMITER_SIZE bounds it");

struct resil_limiter {
    block *blk;
    resil_allocator_t by;
    size_t alloc_size;
};

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

resil_limiter_config_t resil_limiter_config_default(void)
{
    resil_limiter_config_t c;
    memset(&c, 0, sizeof c);
    c.algorithm = RESIL_LIMITER_GRADIENT;
    c.initial_limit = 20;
    c.min_limit = 4;
    c.max_limit = 1000;
    c.backoff_ratio = 0.9;
    c.timeout_ns = RESIL_SEC(5);
    c.smoothing = 0.2;
    c.rtt_tolerance = 1.0;
    c.queue_size = 4;
    c.probe_interval = 5000;
    c.probe_samples = 20;
    return c;
}

resil_status resil_limiter_config_check(const resil_limiter_config_t *c)
{
    if (c == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter: config is NULL");
    if (c->algorithm != RESIL_LIMITER_AIMD && c->algorithm != RESIL_LIMITER_GRADIENT)
        return RESIL__BAD_CONFIG("limiter.algorithm", "must be AIMD (0) or GRADIENT (1), got %d",
                                 (int)c->algorithm);
    if (c->min_limit < 1)
        return RESIL__BAD_CONFIG("limiter.min_limit", "must be >= 1, got 0");
    if (c->max_limit < c->min_limit || c->max_limit > RESIL_LIMITER_MAX_LIMIT)
        return RESIL__BAD_CONFIG("limiter.max_limit", "must be in min_limit (%u)..%d, got %u",
                                 c->min_limit, RESIL_LIMITER_MAX_LIMIT, c->max_limit);
    if (c->initial_limit < c->min_limit || c->initial_limit > c->max_limit)
        return RESIL__BAD_CONFIG("limiter.initial_limit", "must be in %u..%u, got %u", c->min_limit,
                                 c->max_limit, c->initial_limit);
    if (!(c->backoff_ratio > 0.5 && c->backoff_ratio < 1.0))
        return RESIL__BAD_CONFIG("limiter.backoff_ratio", "must be in (0.5, 1), got %g",
                                 c->backoff_ratio);
    if (c->timeout_ns < 1)
        return RESIL__BAD_CONFIG("limiter.timeout_ns", "must be >= 1, got 0");
    if (!(c->smoothing > 0.0 && c->smoothing <= 1.0))
        return RESIL__BAD_CONFIG("limiter.smoothing", "must be in (0, 1], got %g", c->smoothing);
    if (!(c->rtt_tolerance >= 1.0 && c->rtt_tolerance <= 10.0))
        return RESIL__BAD_CONFIG("limiter.rtt_tolerance", "must be in [1, 10], got %g",
                                 c->rtt_tolerance);
    if (c->queue_size > 1000)
        return RESIL__BAD_CONFIG("limiter.queue_size", "must be in 0..1000, got %u", c->queue_size);
    if (c->probe_samples < 1 || c->probe_samples > 10000)
        return RESIL__BAD_CONFIG("limiter.probe_samples", "must be in 1..10000, got %u",
                                 c->probe_samples);
    if (c->probe_interval != 0 && (c->probe_interval < 10 || c->probe_interval <= c->probe_samples))
        return RESIL__BAD_CONFIG("limiter.probe_interval",
                                 "must be 0 or >= 10 and > probe_samples (%u), got %u",
                                 c->probe_samples, c->probe_interval);
    return RESIL_OK;
}

size_t resil_limiter_size(const resil_limiter_config_t *cfg)
{
    return cfg != NULL && resil_limiter_config_check(cfg) == RESIL_OK ? sizeof(block) : 0;
}

static void to_lcfg(const resil_limiter_config_t *c, lcfg *o)
{
    memset(o, 0, sizeof *o);
    o->algorithm = (uint32_t)c->algorithm;
    o->initial_limit = c->initial_limit;
    o->min_limit = c->min_limit;
    o->max_limit = c->max_limit;
    o->backoff_ratio = c->backoff_ratio;
    o->timeout_ns = c->timeout_ns;
    o->smoothing = c->smoothing;
    o->rtt_tolerance = c->rtt_tolerance;
    o->queue_size = c->queue_size;
    o->probe_interval = c->probe_interval;
    o->probe_samples = c->probe_samples;
}

static resil_limiter_config_t from_lcfg(const lcfg *o)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    c.algorithm = (resil_limiter_algorithm)o->algorithm;
    c.initial_limit = o->initial_limit;
    c.min_limit = o->min_limit;
    c.max_limit = o->max_limit;
    c.backoff_ratio = o->backoff_ratio;
    c.timeout_ns = o->timeout_ns;
    c.smoothing = o->smoothing;
    c.rtt_tolerance = o->rtt_tolerance;
    c.queue_size = o->queue_size;
    c.probe_interval = o->probe_interval;
    c.probe_samples = o->probe_samples;
    return c;
}

resil_status resil_limiter_init(void *mem, size_t len, const resil_limiter_config_t *cfg)
{
    resil_status s = resil_limiter_config_check(cfg);
    if (s == RESIL_OK)
        s = resil__block_check_memory(mem, len, sizeof(block));
    if (s != RESIL_OK)
        return s;
    static resil__atomic_u32 ids;
    block *k = mem;
    resil__block_retire(&k->h);
    memset((unsigned char *)mem + sizeof k->h, 0, sizeof(block) - sizeof k->h);
    to_lcfg(cfg, &k->cfg);
    k->cfg.id = (resil__a32_fetch_add_relaxed(&ids, 1) + 1) * 0x9E3779B1u ^
                (uint32_t)(uintptr_t)mem ^ (uint32_t)resil_clock_now(NULL);
    resil__a64_store_relaxed(&k->state, (uint64_t)cfg->initial_limit << 32);
    resil__a64_store_relaxed(&k->estimate, dbits((double)cfg->initial_limit));
    resil__block_publish(&k->h, RESIL__KIND_LIMITER, LAYOUT_VERSION, sizeof(block), &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

static resil_status make_handle(void *mem, int with_state, resil_limiter_t **out)
{
    resil_allocator_t by;
    size_t hsize = (sizeof(resil_limiter_t) + 63) & ~(size_t)63;
    size_t total = hsize + (with_state ? sizeof(block) : 0);
    resil_limiter_t *l = resil__alloc(total, &by);
    if (l == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "limiter: allocation of %zu bytes failed", total);
    l->blk = mem != NULL ? mem : (block *)(void *)((unsigned char *)l + hsize);
    l->by = by;
    l->alloc_size = total;
    *out = l;
    return RESIL_OK;
}

static resil_status verify(const block *k)
{
    if (k->h.size != sizeof(block) || k->h.config_off != offsetof(block, cfg) ||
        k->h.config_len != sizeof(lcfg))
        return resil__fail(RESIL_E_CORRUPT, "limiter: header does not describe a limiter");
    resil_limiter_config_t c = from_lcfg(&k->cfg);
    if (resil_limiter_config_check(&c) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "limiter: stored config is invalid");
    uint64_t st = resil__a64_load_acquire(&k->state);
    uint32_t lim = (uint32_t)(st >> 32);
    if (lim < k->cfg.min_limit || lim > k->cfg.max_limit)
        return resil__fail(RESIL_E_CORRUPT, "limiter: limit %u outside %u..%u", lim,
                           k->cfg.min_limit, k->cfg.max_limit);
    double e = bitsd(resil__a64_load_relaxed(&k->estimate));
    if (!(e >= k->cfg.min_limit && e <= k->cfg.max_limit))
        return resil__fail(RESIL_E_CORRUPT, "limiter: estimate out of bounds");
    return RESIL_OK;
}

resil_status resil_limiter_attach(void *mem, size_t len, resil_limiter_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_LIMITER, LAYOUT_VERSION);
    if (s == RESIL_OK && len < sizeof(block))
        s = resil__fail(RESIL_E_CORRUPT, "limiter: block too small");
    if (s == RESIL_OK)
        s = verify(mem);
    return s == RESIL_OK ? make_handle(mem, 0, out) : s;
}

resil_status resil_limiter_new(const resil_limiter_config_t *cfg, resil_limiter_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_new: out is NULL");
    *out = NULL;
    resil_status s = resil_limiter_config_check(cfg);
    if (s != RESIL_OK)
        return s;
    resil_limiter_t *l = NULL;
    s = make_handle(NULL, 1, &l);
    if (s != RESIL_OK)
        return s;
    resil_limiter_init(l->blk, sizeof(block), cfg);
    *out = l;
    return RESIL_OK;
}

void resil_limiter_free(resil_limiter_t *l)
{
    if (l != NULL)
        resil__free(&l->by, l, l->alloc_size);
}

resil_status resil_limiter_try_acquire(resil_limiter_t *l, resil_limiter_permit_t *permit)
{
    if (RESIL__UNLIKELY(l == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_try_acquire: NULL argument");
    block *k = l->blk;
    uint64_t st = resil__a64_load_relaxed(&k->state);
    for (;;) {
        if ((uint32_t)st >= (uint32_t)(st >> 32)) {
            permit->live_ = 0;
            resil__a64_fetch_add_relaxed(&k->rejected, 1);
            return RESIL_E_LIMIT_REACHED;
        }
        if (resil__a64_cas_acq_rel(&k->state, &st, st + 1))
            break;
    }
    permit->id_ = k->cfg.id;
    permit->gen_ = (uint16_t)(resil__a64_load_relaxed(&k->phase) >> 48);
    permit->live_ = 1;
    resil__a64_fetch_add_relaxed(&k->granted, 1);
    return RESIL_OK;
}

/* Sets the limit field of the state word, keeping in_flight. */
static void publish_limit(block *k, uint32_t lim)
{
    uint64_t st = resil__a64_load_relaxed(&k->state);
    while ((uint32_t)(st >> 32) != lim &&
           !resil__a64_cas_acq_rel(&k->state, &st, (uint64_t)lim << 32 | (uint32_t)st)) {
    }
}

static uint32_t clamp_limit(const block *k, double e)
{
    uint32_t lim = e >= (double)k->cfg.max_limit ? k->cfg.max_limit : (uint32_t)e;
    return lim < k->cfg.min_limit ? k->cfg.min_limit : lim;
}

static void min_into(resil__atomic_u64 *w, uint64_t v)
{
    uint64_t cur = resil__a64_load_relaxed(w);
    while ((cur == 0 || v < cur) && !resil__a64_cas_acq_rel(w, &cur, v)) {
    }
}

/* Moves the estimate by @p f (in the CAS loop); publishes it unless pinned. */
static void update_estimate(block *k, int kind, uint32_t in_flight, uint64_t rtt, int pinned)
{
    uint64_t old = resil__a64_load_relaxed(&k->estimate);
    double lo = k->cfg.min_limit, hi = k->cfg.max_limit, e;
    for (;;) {
        double cur = bitsd(old);
        if (kind == 0) { /* AIMD decrease */
            e = cur * k->cfg.backoff_ratio;
        } else if (kind == 1) { /* AIMD increase */
            if ((double)in_flight * 2 < cur)
                return; /* limit not in use: no evidence it could be higher */
            e = cur + 1.0 / cur;
        } else { /* gradient */
            uint64_t base = resil__a64_load_relaxed(&k->baseline);
            double g = k->cfg.rtt_tolerance * (double)base / (double)(rtt > 0 ? rtt : 1);
            g = g < 0.5 ? 0.5 : g > 1.0 ? 1.0 : g;
            if (g >= 1.0 && (double)in_flight * 2 < cur)
                return;
            double target = g * cur + (double)k->cfg.queue_size;
            e = (1.0 - k->cfg.smoothing) * cur + k->cfg.smoothing * target;
        }
        e = e < lo ? lo : e > hi ? hi : e;
        if (resil__a64_cas_acq_rel(&k->estimate, &old, dbits(e)))
            break;
    }
    if (!pinned)
        publish_limit(k, clamp_limit(k, e));
}

/* Adds a sample to the window (count in bits 44..63, RTT sum in ns in bits
 * 0..43, saturating). The sample that completes a window of max(limit, 10)
 * samples, about one round trip of calls, empties it and gets its mean RTT:
 * the estimate moves once per round, as Netflix's WindowedLimit does, not
 * once per sample (which would react a whole round late, many times over). */
static int window_add(block *k, uint64_t rtt, uint64_t *mean)
{
    uint64_t lim = resil__a64_load_relaxed(&k->state) >> 32;
    uint64_t need = lim > 10 ? lim : 10;
    uint64_t w = resil__a64_load_relaxed(&k->window);
    for (;;) {
        uint64_t n = (w >> 44) + 1, sum = (w & WSUM_MASK) + (rtt < WSUM_MASK ? rtt : WSUM_MASK);
        if (sum > WSUM_MASK)
            sum = WSUM_MASK;
        if (n >= need) {
            if (resil__a64_cas_acq_rel(&k->window, &w, 0)) {
                *mean = sum / n;
                return 1;
            }
        } else if (resil__a64_cas_acq_rel(&k->window, &w, n << 44 | sum)) {
            return 0;
        }
    }
}

static void gradient_sample(block *k, uint16_t permit_gen, uint32_t in_flight, uint64_t rtt)
{
    uint64_t ph = resil__a64_load_relaxed(&k->phase);
    if ((ph >> 40) & 0xFF) { /* re-measuring the baseline */
        if (permit_gen != (uint16_t)(ph >> 48))
            return; /* admitted before the pin: says nothing about no-load RTT */
        ph = resil__a64_fetch_add_relaxed(&k->phase, 1);
        if (!((ph >> 40) & 0xFF) || permit_gen != (uint16_t)(ph >> 48))
            return;
        min_into(&k->probe_min, rtt);
        if ((ph & COUNT_MASK) + 1 >= k->cfg.probe_samples) {
            uint64_t exp = ph + 1;
            if (resil__a64_cas_acq_rel(&k->phase, &exp, (uint64_t)permit_gen << 48)) {
                uint64_t m = resil__a64_load_relaxed(&k->probe_min);
                if (m != 0)
                    resil__a64_store_relaxed(&k->baseline, m);
                resil__a64_store_relaxed(&k->window, 0);
                publish_limit(k, clamp_limit(k, bitsd(resil__a64_load_relaxed(&k->estimate))));
            }
        }
        return;
    }
    min_into(&k->baseline, rtt);
    uint64_t mean;
    if (window_add(k, rtt, &mean))
        update_estimate(k, 2, in_flight, mean, 0);
    if (k->cfg.probe_interval == 0)
        return;
    ph = resil__a64_fetch_add_relaxed(&k->phase, 1);
    if (((ph >> 40) & 0xFF) == 0 && (ph & COUNT_MASK) + 1 == k->cfg.probe_interval) {
        uint64_t exp = ph + 1;
        uint64_t next = (uint64_t)(uint16_t)((ph >> 48) + 1) << 48 | UINT64_C(1) << 40;
        resil__a64_store_relaxed(&k->probe_min, 0);
        if (resil__a64_cas_acq_rel(&k->phase, &exp, next)) {
            resil__a64_fetch_add_relaxed(&k->probes, 1);
            publish_limit(k, k->cfg.min_limit);
        }
    }
}

static resil_status end_call(resil_limiter_t *l, resil_limiter_permit_t *permit, uint32_t *before)
{
    if (RESIL__UNLIKELY(l == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_release: NULL argument");
    block *k = l->blk;
    if (RESIL__UNLIKELY(permit->live_ != 1 || permit->id_ != k->cfg.id))
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_release: permit %s",
                           permit->live_ == 1 ? "belongs to another limiter"
                                              : "was never granted or is already released");
    uint64_t st = resil__a64_load_relaxed(&k->state);
    for (;;) {
        if (RESIL__UNLIKELY((uint32_t)st == 0))
            return resil__fail(RESIL_E_INVALID_ARG, "limiter_release: nothing is in flight");
        if (resil__a64_cas_acq_rel(&k->state, &st, st - 1))
            break;
    }
    permit->live_ = 0;
    *before = (uint32_t)st;
    return RESIL_OK;
}

resil_status resil_limiter_release(resil_limiter_t *l, resil_limiter_permit_t *permit,
                                   uint64_t latency_ns, int dropped)
{
    uint32_t in_flight = 0;
    resil_status s = end_call(l, permit, &in_flight);
    if (s != RESIL_OK)
        return s;
    block *k = l->blk;
    uint64_t idx = resil__a64_fetch_add_relaxed(&k->samples, 1);
    if (k->cfg.algorithm == RESIL_LIMITER_AIMD) {
        if (dropped || latency_ns > k->cfg.timeout_ns) {
            resil__a64_fetch_add_relaxed(&k->drops, 1);
            uint64_t last = resil__a64_load_relaxed(&k->last_dec);
            double cur = bitsd(resil__a64_load_relaxed(&k->estimate));
            if ((last == 0 || idx - (last - 1) >= (uint64_t)cur) &&
                resil__a64_cas_acq_rel(&k->last_dec, &last, idx + 1))
                update_estimate(k, 0, in_flight, latency_ns, 0);
        } else {
            update_estimate(k, 1, in_flight, latency_ns, 0);
        }
        return RESIL_OK;
    }
    if (dropped)
        resil__a64_fetch_add_relaxed(&k->drops, 1);
    gradient_sample(k, permit->gen_, in_flight, latency_ns);
    return RESIL_OK;
}

resil_status resil_limiter_release_ignored(resil_limiter_t *l, resil_limiter_permit_t *permit)
{
    uint32_t in_flight = 0;
    return end_call(l, permit, &in_flight);
}

resil_status resil_limiter_reset_in_flight(resil_limiter_t *l, uint32_t in_flight)
{
    if (l == NULL || in_flight > RESIL_LIMITER_MAX_LIMIT)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_reset_in_flight: %s",
                           l == NULL ? "handle is NULL" : "count too large");
    uint64_t st = resil__a64_load_relaxed(&l->blk->state);
    while (!resil__a64_cas_acq_rel(&l->blk->state, &st, (st & ~UINT64_C(0xFFFFFFFF)) | in_flight)) {
    }
    return RESIL_OK;
}

resil_status resil_limiter_stats(const resil_limiter_t *l, resil_limiter_stats_t *out)
{
    if (l == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_stats: NULL argument");
    const block *k = l->blk;
    uint64_t st = resil__a64_load_acquire(&k->state);
    memset(out, 0, sizeof *out);
    out->limit = (uint32_t)(st >> 32);
    out->in_flight = (uint32_t)st;
    out->estimate = bitsd(resil__a64_load_relaxed(&k->estimate));
    out->baseline_ns = resil__a64_load_relaxed(&k->baseline);
    out->granted = resil__a64_load_relaxed(&k->granted);
    out->rejected = resil__a64_load_relaxed(&k->rejected);
    out->samples = resil__a64_load_relaxed(&k->samples);
    out->drops = resil__a64_load_relaxed(&k->drops);
    out->probes = resil__a64_load_relaxed(&k->probes);
    return RESIL_OK;
}

resil_status resil_limiter_check(const resil_limiter_t *l)
{
    if (l == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_check: handle is NULL");
    return verify(l->blk);
}
