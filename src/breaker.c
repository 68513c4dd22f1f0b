/*
 * Circuit breaker. See include/resil/breaker.h for the behaviour; this
 * comment explains the layout and the concurrency protocol.
 *
 * State word (64 bits, one atomic; every transition is one CAS on it, so a
 * crash at any instruction leaves a valid state):
 *
 *   bits  0..2   inner state: CLOSED, OPEN, HALF_OPEN, DISABLED, FORCED_OPEN
 *   bit   3      shadow (METRICS_ONLY): evaluate, but never reject
 *   bits  4..7   re-open count, the growth step of the open wait (saturates)
 *   bits  8..23  generation: +1 per transition; permits carry it, so an
 *                outcome from an older generation never counts (gobreaker)
 *   bits 24..63  OPEN: deadline, HALF_OPEN: probe deadline; in microseconds
 *                modulo 2^40, compared with wrap-around arithmetic (valid
 *                because no wait exceeds RESIL_BREAKER_MAX_WAIT_NS < 2^39 us)
 *
 * Probe word (HALF_OPEN bookkeeping, one atomic, tagged with the generation
 * so that a new HALF_OPEN period starts at zero without a reset step):
 *
 *   bits 48..63 generation | 36..47 issued | 24..35 succeeded |
 *   12..23 failed | 0..11 slow
 *
 * Outcomes are counted by kind: fast successes (not slow), failures, slow
 * calls, slow failures. A fast success -- nearly every call -- is one
 * fetch_add on the calling thread's stripe, a cache line no other thread
 * uses when threads <= stripes, so concurrent callers do not contend. Only
 * failures and slow calls can trip the breaker, so only they evaluate the
 * window.
 *
 * Count window (last N calls): the lifetime counters double as a sequence
 * number, seq = fast + failures + slow - slow_failures. Each failure (and
 * each slow call) writes its seq into a ring of N stamps; the failures in
 * the window are the stamps newer than seq - min(N, seq - base), where base
 * is the seq at which the current CLOSED period began. Exact when calls do
 * not race; at quiescence the window holds exactly min(N, calls) calls.
 *
 * Time window (last T in B buckets): every counter word carries the epoch
 * (time / bucket length) it counts in its upper 32 bits. A recorder that
 * finds an older epoch resets the word by CAS and folds the old count into
 * a lifetime total, so expiry needs no timer and loses nothing.
 *
 * The window base (seq or epoch) of a CLOSED period is published after the
 * transition CAS, tagged with the generation; a reader that finds it missing
 * (the transitioning thread is slow or died) repairs it with its own view.
 */
#include "resil/breaker.h"

#include <math.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/breaker.h"
#include "internal/rng.h"
#include "internal/stripe.h"
#include "internal/util.h"

#define LAYOUT_VERSION 1

enum { S_CLOSED = 0, S_OPEN = 1, S_HALF_OPEN = 2, S_DISABLED = 3, S_FORCED_OPEN = 4 };
enum { K_FAST = 0, K_FAIL = 1, K_SLOW = 2, K_SLOW_FAIL = 3, N_KINDS = 4 };

#define MASK40 ((UINT64_C(1) << 40) - 1)
#define HALF40 (UINT64_C(1) << 39)

/* ---------------------------------------------------------------- words */

static inline unsigned st_inner(uint64_t s) { return (unsigned)(s & 7); }
static inline unsigned st_shadow(uint64_t s) { return (unsigned)((s >> 3) & 1); }
static inline unsigned st_reopen(uint64_t s) { return (unsigned)((s >> 4) & 15); }
static inline uint32_t st_gen(uint64_t s) { return (uint32_t)((s >> 8) & 0xffff); }
static inline uint64_t st_payload(uint64_t s) { return s >> 24; }

static inline uint64_t st_make(unsigned inner, unsigned shadow, unsigned reopen, uint32_t gen,
                               uint64_t payload)
{
    return (uint64_t)inner | (uint64_t)shadow << 3 | (uint64_t)(reopen & 15) << 4 |
           (uint64_t)(gen & 0xffff) << 8 | (payload & MASK40) << 24;
}

static inline uint32_t pr_gen(uint64_t p) { return (uint32_t)(p >> 48); }
static inline uint32_t pr_issued(uint64_t p) { return (uint32_t)((p >> 36) & 0xfff); }
static inline uint32_t pr_ok(uint64_t p) { return (uint32_t)((p >> 24) & 0xfff); }
static inline uint32_t pr_fail(uint64_t p) { return (uint32_t)((p >> 12) & 0xfff); }
static inline uint32_t pr_slow(uint64_t p) { return (uint32_t)(p & 0xfff); }

static inline uint64_t pr_make(uint32_t gen, uint32_t issued, uint32_t ok, uint32_t fail,
                               uint32_t slow)
{
    return (uint64_t)(gen & 0xffff) << 48 | (uint64_t)issued << 36 | (uint64_t)ok << 24 |
           (uint64_t)fail << 12 | slow;
}

/* Microsecond deadlines modulo 2^40 (see the state word above). */
static inline uint64_t us40(uint64_t ns) { return (ns / 1000) & MASK40; }

static inline uint64_t deadline40(uint64_t now, uint64_t wait)
{
    return (resil__sat_add(resil__sat_add(now, wait), 999) / 1000) & MASK40;
}

static inline int deadline_passed(uint64_t now, uint64_t dl40)
{
    return ((us40(now) - dl40) & MASK40) < HALF40;
}

static inline uint64_t deadline_remaining_ns(uint64_t now, uint64_t dl40)
{
    if (deadline_passed(now, dl40))
        return 0;
    uint64_t rem_us = (dl40 - us40(now)) & MASK40;
    return rem_us * 1000 - now % 1000;
}

/* Time-window counter words: epoch (low 32 bits) << 32 | count. */
static inline uint32_t tw_epoch(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t tw_count(uint64_t w) { return w & 0xffffffffu; }

/* ---------------------------------------------------------------- layout */

/* The immutable configuration as stored in the block: fixed-width fields
 * only, plus everything derived from the public config at init. */
typedef struct bcfg {
    uint32_t window_kind, window_size, buckets, minimum_calls;
    uint32_t failure_thr, slow_thr, consecutive, probes;
    uint32_t stripes, jitter_pct, id, has_fail_ring;
    uint32_t has_slow_ring, off_stripes, stripe_stride, off_buckets;
    uint32_t off_fail_ring, off_slow_ring, size, pad;
    uint64_t window_ns, bucket_ns, slow_ns, half_open_max_ns;
    uint64_t waits[RESIL_BREAKER_MAX_GROWTH_STEPS + 1];
} bcfg;

/* Words written on slow paths; on their own cache line. */
typedef struct shared_words {
    resil__atomic_u64 consec;
    resil__atomic_u64 base;              /* seq (count) or epoch (time) where the window starts */
    resil__atomic_u64 base_gen;          /* generation base belongs to */
    resil__atomic_u64 counters[N_KINDS]; /* count window: lifetime (K_FAST unused: striped);
                                            time window: folded lifetime */
    resil__atomic_u64 ignored;
    resil__atomic_u64 stale;
    resil__atomic_u64 transitions;
    resil__atomic_u64 opens;
} shared_words;

typedef struct resil__breaker_block {
    resil__block_header h;
    bcfg cfg;
    _Alignas(64) resil__atomic_u64 state;
    resil__atomic_u64 probe;
    _Alignas(64) shared_words w;
    /* then, at cfg offsets: stripes, buckets, rings */
} block;

/* Stripe: [0] fast successes (count window), [1..3] rejections by reason,
 * then (time window) one fast-success word per bucket. */
enum { SW_FAST = 0, SW_REJ_OPEN = 1, SW_REJ_FORCED = 2, SW_REJ_HALF = 3, SW_BUCKETS = 4 };
/* Bucket (time window): one word per slow-path kind. */
enum { BW_FAIL = 0, BW_SLOW = 1, BW_SLOW_FAIL = 2, BW_N = 3 };

static inline size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline resil__atomic_u64 *at(const block *b, uint32_t off)
{
    return (resil__atomic_u64 *)((unsigned char *)(uintptr_t)b + off);
}

static inline resil__atomic_u64 *stripe(const block *b, uint32_t s)
{
    return at(b, b->cfg.off_stripes + s * b->cfg.stripe_stride);
}

static inline resil__atomic_u64 *bucket(const block *b, uint32_t i)
{
    return at(b, b->cfg.off_buckets + i * BW_N * 8);
}

/* Permit flags. */
enum {
    PF_GRANTED = 1,
    PF_USED = 2,
    PF_PROBE = 4,
    PF_NORECORD = 8, /* DISABLED: nothing to record */
    PF_SHADOW = 16   /* admitted only because of shadow mode: outcome not counted */
};

/* ---------------------------------------------------------------- config */

resil_breaker_config_t resil_breaker_config_default(void)
{
    resil_breaker_config_t c;
    memset(&c, 0, sizeof c);
    c.window_kind = RESIL_WINDOW_COUNT;
    c.window_size = 100;
    c.window_duration_ns = RESIL_SEC(60);
    c.window_buckets = 10;
    c.minimum_calls = 100;
    c.failure_rate_threshold = 50;
    c.slow_rate_threshold = 0;
    c.slow_call_duration_ns = RESIL_SEC(60);
    c.consecutive_failures = 0;
    c.open_wait_ns = RESIL_SEC(60);
    c.open_wait_multiplier = 1.0;
    c.open_wait_max_ns = 0;
    c.open_wait_jitter_percent = 0;
    c.half_open_probes = 10;
    c.half_open_max_wait_ns = RESIL_SEC(60);
    c.stripes = 4;
    return c;
}

resil_status resil_breaker_config_check(const resil_breaker_config_t *c)
{
    if (c == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker: config is NULL");
    if (c->window_kind != RESIL_WINDOW_COUNT && c->window_kind != RESIL_WINDOW_TIME)
        return RESIL__BAD_CONFIG("breaker.window_kind", "must be COUNT or TIME, got %d",
                                 (int)c->window_kind);
    if (c->window_kind == RESIL_WINDOW_COUNT) {
        if (c->window_size < 1 || c->window_size > RESIL_BREAKER_MAX_WINDOW)
            return RESIL__BAD_CONFIG("breaker.window_size", "must be in 1..%d, got %u",
                                     RESIL_BREAKER_MAX_WINDOW, c->window_size);
        if (c->minimum_calls > c->window_size)
            return RESIL__BAD_CONFIG("breaker.minimum_calls", "must be <= window_size (%u), got %u",
                                     c->window_size, c->minimum_calls);
    } else {
        if (c->window_buckets < 1 || c->window_buckets > RESIL_BREAKER_MAX_BUCKETS)
            return RESIL__BAD_CONFIG("breaker.window_buckets", "must be in 1..%d, got %u",
                                     RESIL_BREAKER_MAX_BUCKETS, c->window_buckets);
        if (c->window_duration_ns == 0)
            return RESIL__BAD_CONFIG("breaker.window_duration_ns", "must be > 0");
        if (c->window_duration_ns % c->window_buckets != 0)
            return RESIL__BAD_CONFIG("breaker.window_buckets",
                                     "must divide window_duration_ns (%llu ns) evenly, got %u",
                                     (unsigned long long)c->window_duration_ns, c->window_buckets);
    }
    if (c->minimum_calls < 1)
        return RESIL__BAD_CONFIG("breaker.minimum_calls", "must be >= 1, got 0");
    if (c->failure_rate_threshold > 100)
        return RESIL__BAD_CONFIG("breaker.failure_rate_threshold",
                                 "must be in 1..100 (0 = off), got %u", c->failure_rate_threshold);
    if (c->slow_rate_threshold > 100)
        return RESIL__BAD_CONFIG("breaker.slow_rate_threshold",
                                 "must be in 1..100 (0 = off), got %u", c->slow_rate_threshold);
    if (c->failure_rate_threshold == 0 && c->slow_rate_threshold == 0 &&
        c->consecutive_failures == 0)
        return RESIL__BAD_CONFIG("breaker.failure_rate_threshold",
                                 "no trip signal: set it, slow_rate_threshold or "
                                 "consecutive_failures");
    if (c->slow_call_duration_ns < 1)
        return RESIL__BAD_CONFIG("breaker.slow_call_duration_ns", "must be >= 1 ns");
    if (c->open_wait_ns < RESIL_US(1) || c->open_wait_ns > RESIL_BREAKER_MAX_WAIT_NS)
        return RESIL__BAD_CONFIG("breaker.open_wait_ns", "must be in 1 us..5 days, got %llu ns",
                                 (unsigned long long)c->open_wait_ns);
    if (!(c->open_wait_multiplier >= 1.0 && c->open_wait_multiplier <= 100.0))
        return RESIL__BAD_CONFIG("breaker.open_wait_multiplier", "must be in 1.0..100.0, got %g",
                                 c->open_wait_multiplier);
    if (c->open_wait_max_ns != 0 &&
        (c->open_wait_max_ns < c->open_wait_ns || c->open_wait_max_ns > RESIL_BREAKER_MAX_WAIT_NS))
        return RESIL__BAD_CONFIG("breaker.open_wait_max_ns",
                                 "must be 0 or in open_wait_ns..5 days, got %llu ns",
                                 (unsigned long long)c->open_wait_max_ns);
    if (c->open_wait_jitter_percent > 100)
        return RESIL__BAD_CONFIG("breaker.open_wait_jitter_percent", "must be in 0..100, got %u",
                                 c->open_wait_jitter_percent);
    if (c->half_open_probes < 1 || c->half_open_probes > RESIL_BREAKER_MAX_PROBES)
        return RESIL__BAD_CONFIG("breaker.half_open_probes", "must be in 1..%d, got %u",
                                 RESIL_BREAKER_MAX_PROBES, c->half_open_probes);
    if (c->half_open_max_wait_ns < RESIL_US(1) ||
        c->half_open_max_wait_ns > RESIL_BREAKER_MAX_WAIT_NS)
        return RESIL__BAD_CONFIG("breaker.half_open_max_wait_ns",
                                 "must be in 1 us..5 days, got %llu ns",
                                 (unsigned long long)c->half_open_max_wait_ns);
    if (c->stripes < 1 || c->stripes > RESIL_BREAKER_MAX_STRIPES ||
        (c->stripes & (c->stripes - 1)) != 0)
        return RESIL__BAD_CONFIG("breaker.stripes", "must be a power of two in 1..%d, got %u",
                                 RESIL_BREAKER_MAX_STRIPES, c->stripes);
    return RESIL_OK;
}

/* Derives the stored configuration and the layout. Assumes a valid config. */
static void derive(const resil_breaker_config_t *c, bcfg *o)
{
    memset(o, 0, sizeof *o);
    o->window_kind = (uint32_t)c->window_kind;
    int timed = c->window_kind == RESIL_WINDOW_TIME;
    o->window_size = timed ? 0 : c->window_size;
    o->buckets = timed ? c->window_buckets : 0;
    o->minimum_calls = c->minimum_calls;
    o->failure_thr = c->failure_rate_threshold;
    o->slow_thr = c->slow_rate_threshold;
    o->consecutive = c->consecutive_failures;
    o->probes = c->half_open_probes;
    o->stripes = c->stripes;
    o->jitter_pct = c->open_wait_jitter_percent;
    o->window_ns = timed ? c->window_duration_ns : 0;
    o->bucket_ns = timed ? c->window_duration_ns / c->window_buckets : 0;
    o->slow_ns = c->slow_call_duration_ns;
    o->half_open_max_ns = c->half_open_max_wait_ns;

    uint64_t cap = c->open_wait_max_ns;
    if (cap == 0)
        cap = c->open_wait_multiplier > 1.0 ? RESIL_BREAKER_MAX_WAIT_NS : c->open_wait_ns;
    double w = (double)c->open_wait_ns;
    for (int i = 0; i <= RESIL_BREAKER_MAX_GROWTH_STEPS; i++) {
        o->waits[i] = w >= (double)cap ? cap : (uint64_t)w;
        w *= c->open_wait_multiplier;
    }

    o->has_fail_ring = !timed && o->failure_thr > 0;
    o->has_slow_ring = !timed && o->slow_thr > 0;
    size_t off = round64(sizeof(block));
    o->off_stripes = (uint32_t)off;
    o->stripe_stride = (uint32_t)round64(8 * (SW_BUCKETS + (size_t)o->buckets));
    off += (size_t)o->stripe_stride * o->stripes;
    o->off_buckets = (uint32_t)off;
    off = round64(off + (size_t)o->buckets * BW_N * 8);
    o->off_fail_ring = (uint32_t)off;
    off = round64(off + (o->has_fail_ring ? (size_t)o->window_size * 8 : 0));
    o->off_slow_ring = (uint32_t)off;
    off = round64(off + (o->has_slow_ring ? (size_t)o->window_size * 8 : 0));
    o->size = (uint32_t)off;
}

size_t resil_breaker_size(const resil_breaker_config_t *cfg)
{
    if (resil_breaker_config_check(cfg) != RESIL_OK)
        return 0;
    bcfg d;
    derive(cfg, &d);
    return d.size;
}

/* ---------------------------------------------------------------- helpers */

static inline uint64_t now_of(const resil_breaker_t *b) { return resil_clock_now(&b->clock); }

static inline uint32_t stripe_index(const block *k) { return resil__stripe(k->cfg.stripes); }

static inline uint64_t sum_stripes(const block *k, uint32_t word)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s < k->cfg.stripes; s++)
        n += resil__a64_load_relaxed(&stripe(k, s)[word]);
    return n;
}

/* The open wait for growth step @p step, with jitter. */
static uint64_t open_wait(resil_breaker_t *b, unsigned step)
{
    const bcfg *c = &b->blk->cfg;
    uint64_t w =
        c->waits[step > RESIL_BREAKER_MAX_GROWTH_STEPS ? RESIL_BREAKER_MAX_GROWTH_STEPS : step];
    if (c->jitter_pct == 0)
        return w;
    __extension__ typedef unsigned __int128 u128;
    uint64_t delta = (uint64_t)((u128)w * c->jitter_pct / 100);
    uint64_t n = resil__a64_fetch_add_relaxed(&b->draws, 1);
    uint64_t x = b->seed + n * UINT64_C(0x9e3779b97f4a7c15);
    uint64_t r = resil__splitmix64_next(&x);
    uint64_t j = w - delta + resil__scale64(r, resil__sat_add(resil__sat_mul(delta, 2), 1));
    return j < RESIL_US(1) ? RESIL_US(1) : resil__min_u64(j, RESIL_BREAKER_MAX_WAIT_NS);
}

static inline resil_breaker_state public_state(uint64_t st)
{
    return st_shadow(st) ? RESIL_BREAKER_METRICS_ONLY : (resil_breaker_state)st_inner(st);
}

/* ---------------------------------------------------------------- windows */

/* Sequence number of the count window: every outcome recorded so far. */
static uint64_t count_seq(const block *k)
{
    const shared_words *w = &k->w;
    return sum_stripes(k, SW_FAST) + resil__a64_load_relaxed(&w->counters[K_FAIL]) +
           resil__a64_load_relaxed(&w->counters[K_SLOW]) -
           resil__a64_load_relaxed(&w->counters[K_SLOW_FAIL]);
}

/* Adds one to a time-window word for @p epoch, rotating it if it counts an
 * older epoch; the old count is folded into @p folded. */
static void tw_add(resil__atomic_u64 *word, uint64_t epoch, resil__atomic_u64 *folded)
{
    uint32_t e = (uint32_t)epoch;
    uint64_t cur = resil__a64_load_relaxed(word);
    for (;;) {
        /* same epoch, or a newer one (we are late): count it there */
        if ((int32_t)(tw_epoch(cur) - e) >= 0) {
            resil__a64_fetch_add_relaxed(word, 1);
            return;
        }
        if (resil__a64_cas_acq_rel(word, &cur, (uint64_t)e << 32 | 1)) {
            if (tw_count(cur) != 0)
                resil__a64_fetch_add_relaxed(folded, tw_count(cur));
            return;
        }
    }
}

/* Resets a time-window word to @p epoch with count 0 (folding the old). */
static void tw_reset(resil__atomic_u64 *word, uint64_t epoch, resil__atomic_u64 *folded)
{
    uint64_t cur = resil__a64_load_relaxed(word);
    while (!resil__a64_cas_acq_rel(word, &cur, (uint64_t)(uint32_t)epoch << 32)) {
    }
    if (tw_count(cur) != 0)
        resil__a64_fetch_add_relaxed(folded, tw_count(cur));
}

static inline uint64_t tw_value(const resil__atomic_u64 *word, uint32_t epoch)
{
    uint64_t v = resil__a64_load_relaxed(word);
    return tw_epoch(v) == epoch ? tw_count(v) : 0;
}

typedef struct window_view {
    uint64_t calls, failures, slow;
} window_view;

/* The window base of generation @p gen, repaired if its publisher has not
 * written it (yet, or ever). */
static uint64_t window_base(const block *k, uint32_t gen, uint64_t current)
{
    shared_words *w = (shared_words *)(uintptr_t)&k->w;
    if ((uint32_t)resil__a64_load_acquire(&w->base_gen) == gen)
        return resil__a64_load_relaxed(&w->base);
    resil__a64_store_relaxed(&w->base, current);
    resil__a64_store_release(&w->base_gen, gen);
    return current;
}

static uint64_t ring_count(const block *k, uint32_t off, uint64_t seq, uint64_t calls)
{
    const resil__atomic_u64 *ring = at(k, off);
    uint64_t n = 0;
    for (uint32_t i = 0; i < k->cfg.window_size; i++) {
        uint64_t stamp = resil__a64_load_relaxed(&ring[i]);
        n += stamp != 0 && stamp <= seq && seq - stamp < calls;
    }
    return n;
}

static window_view count_window(const block *k, uint32_t gen)
{
    window_view v = {0, 0, 0};
    uint64_t seq = count_seq(k);
    uint64_t base = window_base(k, gen, seq);
    v.calls = resil__min_u64(seq >= base ? seq - base : 0, k->cfg.window_size);
    if (k->cfg.has_fail_ring)
        v.failures = ring_count(k, k->cfg.off_fail_ring, seq, v.calls);
    if (k->cfg.has_slow_ring)
        v.slow = ring_count(k, k->cfg.off_slow_ring, seq, v.calls);
    return v;
}

static window_view time_window(const block *k, uint32_t gen, uint64_t now)
{
    const bcfg *c = &k->cfg;
    window_view v = {0, 0, 0};
    uint64_t epoch = now / c->bucket_ns;
    uint64_t base = window_base(k, gen, epoch);
    uint64_t first = epoch >= (uint64_t)c->buckets - 1 ? epoch - (c->buckets - 1) : 0;
    if (first < base)
        first = base;
    for (uint64_t e = first; e <= epoch; e++) {
        uint32_t i = (uint32_t)(e % c->buckets);
        const resil__atomic_u64 *bw = bucket(k, i);
        uint64_t fast = 0;
        for (uint32_t s = 0; s < c->stripes; s++)
            fast += tw_value(&stripe(k, s)[SW_BUCKETS + i], (uint32_t)e);
        uint64_t fail = tw_value(&bw[BW_FAIL], (uint32_t)e);
        uint64_t slow = tw_value(&bw[BW_SLOW], (uint32_t)e);
        uint64_t slow_fail = tw_value(&bw[BW_SLOW_FAIL], (uint32_t)e);
        v.calls += fast + fail + slow - resil__min_u64(slow_fail, slow);
        v.failures += fail;
        v.slow += slow;
    }
    return v;
}

static window_view view_window(const block *k, uint32_t gen, uint64_t now)
{
    return k->cfg.window_kind == RESIL_WINDOW_TIME ? time_window(k, gen, now)
                                                   : count_window(k, gen);
}

/* Starts an empty window for CLOSED generation @p gen. */
static void window_restart(block *k, uint32_t gen, uint64_t now)
{
    const bcfg *c = &k->cfg;
    uint64_t base;
    if (c->window_kind == RESIL_WINDOW_TIME) {
        base = now / c->bucket_ns;
        uint32_t i = (uint32_t)(base % c->buckets);
        for (uint32_t s = 0; s < c->stripes; s++)
            tw_reset(&stripe(k, s)[SW_BUCKETS + i], base, &k->w.counters[K_FAST]);
        resil__atomic_u64 *bw = bucket(k, i);
        tw_reset(&bw[BW_FAIL], base, &k->w.counters[K_FAIL]);
        tw_reset(&bw[BW_SLOW], base, &k->w.counters[K_SLOW]);
        tw_reset(&bw[BW_SLOW_FAIL], base, &k->w.counters[K_SLOW_FAIL]);
    } else {
        base = count_seq(k);
    }
    resil__a64_store_relaxed(&k->w.base, base);
    resil__a64_store_release(&k->w.base_gen, gen);
    resil__a64_store_relaxed(&k->w.consec, 0);
}

/* Counts one outcome of kind set (fast, or any mix of fail/slow) in the
 * window and the lifetime totals. @p in_window is 0 for probes. */
static void count_outcome(block *k, int fail, int slow, uint64_t now, int in_window)
{
    const bcfg *c = &k->cfg;
    shared_words *w = &k->w;
    if (c->window_kind == RESIL_WINDOW_TIME) {
        if (!in_window) {
            if (!fail && !slow)
                resil__a64_fetch_add_relaxed(&w->counters[K_FAST], 1);
            if (fail)
                resil__a64_fetch_add_relaxed(&w->counters[K_FAIL], 1);
            if (slow)
                resil__a64_fetch_add_relaxed(&w->counters[K_SLOW], 1);
            if (fail && slow)
                resil__a64_fetch_add_relaxed(&w->counters[K_SLOW_FAIL], 1);
            return;
        }
        uint64_t epoch = now / c->bucket_ns;
        uint32_t i = (uint32_t)(epoch % c->buckets);
        if (!fail && !slow) {
            tw_add(&stripe(k, stripe_index(k))[SW_BUCKETS + i], epoch, &w->counters[K_FAST]);
            return;
        }
        resil__atomic_u64 *bw = bucket(k, i);
        if (fail && slow)
            tw_add(&bw[BW_SLOW_FAIL], epoch, &w->counters[K_SLOW_FAIL]);
        if (slow)
            tw_add(&bw[BW_SLOW], epoch, &w->counters[K_SLOW]);
        if (fail)
            tw_add(&bw[BW_FAIL], epoch, &w->counters[K_FAIL]);
        return;
    }
    if (!fail && !slow) {
        resil__a64_fetch_add_relaxed(&stripe(k, stripe_index(k))[SW_FAST], 1);
        return;
    }
    /* Slow failures are counted first, so a concurrent seq never sees a
     * slow call without its slow-failure mark (seq would be too high). */
    if (fail && slow)
        resil__a64_fetch_add_relaxed(&w->counters[K_SLOW_FAIL], 1);
    uint64_t fail_pos = 0, slow_pos = 0;
    if (slow)
        slow_pos = resil__a64_fetch_add_relaxed(&w->counters[K_SLOW], 1);
    if (fail)
        fail_pos = resil__a64_fetch_add_relaxed(&w->counters[K_FAIL], 1);
    if (!in_window)
        return;
    uint64_t seq = count_seq(k);
    if (fail && c->has_fail_ring)
        resil__a64_store_relaxed(&at(k, c->off_fail_ring)[fail_pos % c->window_size], seq);
    if (slow && c->has_slow_ring)
        resil__a64_store_relaxed(&at(k, c->off_slow_ring)[slow_pos % c->window_size], seq);
}

/* ---------------------------------------------------------------- transitions */

/* One CAS from @p from to @p to; the winner applies the side effects and
 * tells the listener. @return 1 if this call made the transition. */
static int transition(resil_breaker_t *b, uint64_t from, uint64_t to, resil_breaker_reason reason,
                      uint64_t now)
{
    block *k = b->blk;
    if (!resil__a64_cas_acq_rel(&k->state, &from, to))
        return 0;
    resil__a64_fetch_add_relaxed(&k->w.transitions, 1);
    if (st_inner(to) == S_CLOSED)
        window_restart(k, st_gen(to), now);
    if (st_inner(to) == S_OPEN)
        resil__a64_fetch_add_relaxed(&k->w.opens, 1);
    if (b->listener != NULL) {
        resil_breaker_event_t ev;
        ev.from = (resil_breaker_state)st_inner(from);
        ev.to = (resil_breaker_state)st_inner(to);
        if (st_shadow(from) != st_shadow(to)) { /* entering or leaving METRICS_ONLY */
            ev.from = public_state(from);
            ev.to = public_state(to);
        }
        ev.reason = reason;
        ev.shadow = (int)st_shadow(to);
        ev.generation = st_gen(to);
        ev.now_ns = now;
        ev.open_until_ns = st_inner(to) == S_OPEN
                               ? resil__sat_add(now, deadline_remaining_ns(now, st_payload(to)))
                               : 0;
        b->listener(b->user, &ev);
    }
    return 1;
}

static inline uint64_t next_gen_state(uint64_t st, unsigned inner, unsigned shadow, unsigned reopen,
                                      uint64_t payload)
{
    return st_make(inner, shadow, reopen, st_gen(st) + 1, payload);
}

/* Opens from CLOSED or HALF_OPEN state @p st with growth step @p step. */
static int trip(resil_breaker_t *b, uint64_t st, unsigned step, resil_breaker_reason reason,
                uint64_t now)
{
    uint64_t dl = deadline40(now, open_wait(b, step));
    return transition(b, st, next_gen_state(st, S_OPEN, st_shadow(st), step, dl), reason, now);
}

/* ---------------------------------------------------------------- acquire */

static inline void grant(resil_breaker_permit_t *p, const block *k, uint64_t st, unsigned flags)
{
    p->retry_after_ns = 0;
    p->breaker_id_ = k->cfg.id;
    p->generation_ = (uint16_t)st_gen(st);
    p->flags_ = (uint16_t)(PF_GRANTED | flags);
}

static inline resil_status reject(resil_breaker_permit_t *p, block *k, uint32_t word,
                                  uint64_t retry_after, resil_status why)
{
    p->retry_after_ns = retry_after;
    p->breaker_id_ = k->cfg.id;
    p->generation_ = 0;
    p->flags_ = 0;
    resil__a64_fetch_add_relaxed(&stripe(k, stripe_index(k))[word], 1);
    return why;
}

static __attribute__((noinline)) resil_status acquire(resil_breaker_t *b, int have_now,
                                                      uint64_t now, resil_breaker_permit_t *p)
{
    block *k = b->blk;
    uint64_t st = resil__a64_load_acquire(&k->state);
    /* Set once this call has itself started a HALF_OPEN period: it then
     * takes a probe without re-checking that period's deadline. Without it,
     * a clock pinned at UINT64_MAX (saturated deadlines equal to now) would
     * cycle OPEN -> HALF_OPEN -> OPEN forever. */
    int opened_half = 0;
    for (;;) {
        unsigned inner = st_inner(st);
        if (RESIL__LIKELY(inner == S_CLOSED)) {
            grant(p, k, st, 0);
            return RESIL_OK;
        }
        if (inner == S_DISABLED) {
            grant(p, k, st, PF_NORECORD);
            return RESIL_OK;
        }
        if (inner == S_FORCED_OPEN)
            return reject(p, k, SW_REJ_FORCED, UINT64_MAX, RESIL_E_BREAKER_FORCED_OPEN);
        if (inner == S_OPEN) {
            uint64_t t = have_now ? now : resil_clock_now(&b->open_clock);
            if (!deadline_passed(t, st_payload(st))) {
                if (st_shadow(st)) {
                    grant(p, k, st, PF_SHADOW);
                    return RESIL_OK;
                }
                return reject(p, k, SW_REJ_OPEN, deadline_remaining_ns(t, st_payload(st)),
                              RESIL_E_BREAKER_OPEN);
            }
            if (!have_now) {
                now = now_of(b);
                have_now = 1;
            }
            uint64_t half = next_gen_state(st, S_HALF_OPEN, st_shadow(st), st_reopen(st),
                                           deadline40(now, k->cfg.half_open_max_ns));
            if (transition(b, st, half, RESIL_BREAKER_REASON_WAIT_ELAPSED, now)) {
                st = half;
                opened_half = 1;
            } else
                st = resil__a64_load_acquire(&k->state);
            continue;
        }
        /* HALF_OPEN */
        if (!have_now) {
            now = now_of(b);
            have_now = 1;
        }
        if (!opened_half && deadline_passed(now, st_payload(st))) {
            unsigned step = st_reopen(st) < 15 ? st_reopen(st) + 1 : 15;
            trip(b, st, step, RESIL_BREAKER_REASON_PROBE_TIMEOUT, now);
            st = resil__a64_load_acquire(&k->state);
            continue;
        }
        uint32_t gen = st_gen(st);
        uint64_t pw = resil__a64_load_acquire(&k->probe);
        if ((int16_t)(uint16_t)(pr_gen(pw) - gen) > 0) {
            /* the probe word is already a later generation's: our view of
             * the state is old, so look again rather than overwrite it */
            st = resil__a64_load_acquire(&k->state);
            continue;
        }
        uint64_t cur = pr_gen(pw) == gen ? pw : pr_make(gen, 0, 0, 0, 0);
        if (pr_issued(cur) >= k->cfg.probes) {
            if (st_shadow(st)) {
                grant(p, k, st, PF_SHADOW);
                return RESIL_OK;
            }
            return reject(p, k, SW_REJ_HALF, deadline_remaining_ns(now, st_payload(st)),
                          RESIL_E_HALF_OPEN_FULL);
        }
        uint64_t want = cur + ((uint64_t)1 << 36);
        if (resil__a64_cas_acq_rel(&k->probe, &pw, want)) {
            /* The probe counts only if the breaker is still in this
             * half-open generation; otherwise its outcome is stale. */
            grant(p, k, st, PF_PROBE);
            return RESIL_OK;
        }
        st = resil__a64_load_acquire(&k->state);
    }
}

resil_status resil_breaker_acquire(resil_breaker_t *b, resil_breaker_permit_t *permit)
{
    if (b == NULL || permit == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_acquire: NULL argument");
    uint64_t st = resil__a64_load_acquire(&b->blk->state);
    if (RESIL__LIKELY(st_inner(st) == S_CLOSED)) {
        grant(permit, b->blk, st, 0);
        return RESIL_OK;
    }
    return acquire(b, 0, 0, permit);
}

resil_status resil_breaker_acquire_at(resil_breaker_t *b, uint64_t now_ns,
                                      resil_breaker_permit_t *permit)
{
    if (b == NULL || permit == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_acquire_at: NULL argument");
    return acquire(b, 1, now_ns, permit);
}

/* ---------------------------------------------------------------- record */

/* Whether @p failures and @p slow out of @p calls reach a rate threshold. */
static resil_breaker_reason rate_trip(const bcfg *c, uint64_t calls, uint64_t failures,
                                      uint64_t slow)
{
    if (c->failure_thr != 0 && failures * 100 >= (uint64_t)c->failure_thr * calls)
        return RESIL_BREAKER_REASON_FAILURE_RATE;
    if (c->slow_thr != 0 && slow * 100 >= (uint64_t)c->slow_thr * calls)
        return RESIL_BREAKER_REASON_SLOW_RATE;
    return 0;
}

static resil_status record_probe(resil_breaker_t *b, const resil_breaker_permit_t *p, int fail,
                                 int slow, uint64_t now, int have_now)
{
    block *k = b->blk;
    const bcfg *c = &k->cfg;
    uint64_t pw = resil__a64_load_acquire(&k->probe);
    uint64_t next;
    do {
        if (pr_gen(pw) != p->generation_ ||
            pr_ok(pw) + pr_fail(pw) >= pr_issued(pw)) { /* more outcomes than probes */
            resil__a64_fetch_add_relaxed(&k->w.stale, 1);
            return RESIL_E_STALE;
        }
        next = pw + (fail ? (uint64_t)1 << 12 : (uint64_t)1 << 24) + (slow ? 1 : 0);
    } while (!resil__a64_cas_acq_rel(&k->probe, &pw, next));
    count_outcome(k, fail, slow, now, 0);

    uint32_t done = pr_ok(next) + pr_fail(next);
    /* Rates over all K probes: open as soon as the failures so far reach the
     * threshold whatever the rest do; close when all K reported below it. */
    resil_breaker_reason why = rate_trip(c, c->probes, pr_fail(next), pr_slow(next));
    if (why == 0 && c->consecutive != 0 && pr_fail(next) > 0 &&
        (c->failure_thr == 0 && c->slow_thr == 0 ? 1 : pr_fail(next) >= c->consecutive))
        why = RESIL_BREAKER_REASON_CONSECUTIVE;
    if (why == 0 && done < c->probes)
        return RESIL_OK;
    if (!have_now)
        now = now_of(b);
    uint64_t st = resil__a64_load_acquire(&k->state);
    if (st_inner(st) != S_HALF_OPEN || st_gen(st) != p->generation_)
        return RESIL_OK; /* someone else decided (e.g. the probe deadline) */
    if (why != 0) {
        unsigned step = st_reopen(st) < 15 ? st_reopen(st) + 1 : 15;
        trip(b, st, step, RESIL_BREAKER_REASON_PROBES_FAILED, now);
    } else {
        transition(b, st, next_gen_state(st, S_CLOSED, st_shadow(st), 0, 0),
                   RESIL_BREAKER_REASON_PROBES_PASSED, now);
    }
    return RESIL_OK;
}

static void release_probe(block *k, const resil_breaker_permit_t *p)
{
    uint64_t pw = resil__a64_load_acquire(&k->probe);
    while (pr_gen(pw) == p->generation_ && pr_issued(pw) > pr_ok(pw) + pr_fail(pw)) {
        if (resil__a64_cas_acq_rel(&k->probe, &pw, pw - ((uint64_t)1 << 36)))
            return;
    }
}

static __attribute__((noinline)) resil_status record(resil_breaker_t *b, resil_breaker_permit_t *p,
                                                     resil_outcome outcome, uint64_t duration,
                                                     int have_now, uint64_t now)
{
    if (b == NULL || p == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_record: NULL argument");
    block *k = b->blk;
    if ((unsigned)outcome > RESIL_OUTCOME_IGNORED)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_record: outcome %d out of range",
                           (int)outcome);
    if (p->breaker_id_ != k->cfg.id || (p->flags_ & (PF_GRANTED | PF_USED)) != PF_GRANTED)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_record: permit %s",
                           p->breaker_id_ != k->cfg.id ? "belongs to another breaker"
                           : (p->flags_ & PF_USED)     ? "was already reported"
                                                       : "was not granted");
    unsigned flags = p->flags_;
    p->flags_ = (uint16_t)(flags | PF_USED);
    if (flags & PF_NORECORD)
        return RESIL_OK;
    shared_words *w = &k->w;
    uint64_t st = resil__a64_load_acquire(&k->state);
    if (st_gen(st) != p->generation_) {
        resil__a64_fetch_add_relaxed(&w->stale, 1);
        return RESIL_E_STALE;
    }
    if (outcome == RESIL_OUTCOME_IGNORED || (flags & PF_SHADOW)) {
        resil__a64_fetch_add_relaxed(&w->ignored, 1);
        if (flags & PF_PROBE)
            release_probe(k, p);
        return RESIL_OK;
    }
    int fail = outcome == RESIL_OUTCOME_FAILURE;
    int slow = duration > k->cfg.slow_ns;
    const bcfg *c = &k->cfg;
    int timed = c->window_kind == RESIL_WINDOW_TIME;
    if (timed && !have_now) {
        now = now_of(b);
        have_now = 1;
    }
    if (flags & PF_PROBE)
        return record_probe(b, p, fail, slow, now, have_now);

    count_outcome(k, fail, slow, now, 1);
    if (!fail) {
        if (resil__a64_load_relaxed(&w->consec) != 0)
            resil__a64_store_relaxed(&w->consec, 0);
        if (!slow || c->slow_thr == 0)
            return RESIL_OK;
    }
    /* A failure or a slow call: the only outcomes that can trip. */
    resil_breaker_reason why = 0;
    if (fail) {
        uint64_t run = resil__a64_fetch_add_relaxed(&w->consec, 1) + 1;
        if (c->consecutive != 0 && run >= c->consecutive)
            why = RESIL_BREAKER_REASON_CONSECUTIVE;
    }
    if (why == 0 && (c->failure_thr != 0 || c->slow_thr != 0)) {
        window_view v = view_window(k, st_gen(st), now);
        if (v.calls >= c->minimum_calls)
            why = rate_trip(c, v.calls, v.failures, v.slow);
    }
    if (why == 0)
        return RESIL_OK;
    if (!have_now)
        now = now_of(b);
    trip(b, st, 0, why, now);
    return RESIL_OK;
}

/* The common case, kept small enough to inline: a fast success on a permit
 * granted while CLOSED, in the generation it was granted in. Anything else
 * returns 0 and goes the full way. */
static inline int record_fast(resil_breaker_t *b, resil_breaker_permit_t *p, resil_outcome outcome,
                              uint64_t duration, int have_now, uint64_t now)
{
    block *k = b->blk;
    const bcfg *c = &k->cfg;
    if (outcome != RESIL_OUTCOME_SUCCESS || p->flags_ != PF_GRANTED || p->breaker_id_ != c->id ||
        duration > c->slow_ns)
        return 0;
    uint64_t st = resil__a64_load_acquire(&k->state);
    if (st_gen(st) != p->generation_)
        return 0;
    p->flags_ = PF_GRANTED | PF_USED;
    resil__atomic_u64 *mine = stripe(k, stripe_index(k));
    if (c->window_kind == RESIL_WINDOW_COUNT) {
        resil__a64_fetch_add_relaxed(&mine[SW_FAST], 1);
    } else {
        uint64_t epoch = (have_now ? now : resil_clock_now(&b->bucket_clock)) / c->bucket_ns;
        uint32_t i = (uint32_t)(epoch % c->buckets);
        tw_add(&mine[SW_BUCKETS + i], epoch, &k->w.counters[K_FAST]);
    }
    if (RESIL__UNLIKELY(resil__a64_load_relaxed(&k->w.consec) != 0))
        resil__a64_store_relaxed(&k->w.consec, 0);
    return 1;
}

resil_status resil_breaker_record(resil_breaker_t *b, resil_breaker_permit_t *permit,
                                  resil_outcome outcome, uint64_t duration_ns)
{
    if (RESIL__LIKELY(b != NULL && permit != NULL) &&
        record_fast(b, permit, outcome, duration_ns, 0, 0))
        return RESIL_OK;
    return record(b, permit, outcome, duration_ns, 0, 0);
}

resil_status resil_breaker_record_at(resil_breaker_t *b, resil_breaker_permit_t *permit,
                                     resil_outcome outcome, uint64_t duration_ns, uint64_t now_ns)
{
    if (RESIL__LIKELY(b != NULL && permit != NULL) &&
        record_fast(b, permit, outcome, duration_ns, 1, now_ns))
        return RESIL_OK;
    return record(b, permit, outcome, duration_ns, 1, now_ns);
}

int resil_breaker_permit_is_probe(const resil_breaker_permit_t *permit)
{
    return permit != NULL && (permit->flags_ & (PF_GRANTED | PF_PROBE)) == (PF_GRANTED | PF_PROBE);
}

uint32_t resil_breaker_permit_generation(const resil_breaker_permit_t *permit)
{
    return permit != NULL && (permit->flags_ & PF_GRANTED) ? permit->generation_ : 0;
}

resil_status resil_breaker_execute(resil_breaker_t *b, resil_breaker_call_fn fn, void *ctx,
                                   resil_outcome *outcome)
{
    if (b == NULL || fn == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_execute: NULL argument");
    resil_breaker_permit_t p;
    resil_status s = acquire(b, 0, 0, &p);
    if (s != RESIL_OK)
        return s;
    uint64_t t0 = now_of(b);
    resil_outcome o = fn(ctx);
    uint64_t t1 = now_of(b);
    if (outcome != NULL)
        *outcome = o;
    if ((unsigned)o > RESIL_OUTCOME_IGNORED)
        o = RESIL_OUTCOME_FAILURE; /* a callback returning garbage failed */
    record(b, &p, o, t1 > t0 ? t1 - t0 : 0, 1, t1);
    return o == RESIL_OUTCOME_FAILURE ? RESIL_E_CALL_FAILED : RESIL_OK;
}

/* ---------------------------------------------------------------- manual */

static resil_status manual(resil_breaker_t *b, unsigned inner, unsigned shadow)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker: NULL handle");
    block *k = b->blk;
    uint64_t now = now_of(b);
    for (;;) {
        uint64_t st = resil__a64_load_acquire(&k->state);
        int reset = inner == S_CLOSED && !shadow;
        if (!reset && st_inner(st) == inner && st_shadow(st) == shadow)
            return RESIL_OK;
        if (shadow && st_shadow(st))
            return RESIL_OK;
        if (transition(b, st, next_gen_state(st, inner, shadow, 0, 0), RESIL_BREAKER_REASON_MANUAL,
                       now))
            return RESIL_OK;
    }
}

resil_status resil_breaker_force_open(resil_breaker_t *b) { return manual(b, S_FORCED_OPEN, 0); }
resil_status resil_breaker_disable(resil_breaker_t *b) { return manual(b, S_DISABLED, 0); }
resil_status resil_breaker_metrics_only(resil_breaker_t *b) { return manual(b, S_CLOSED, 1); }
resil_status resil_breaker_reset(resil_breaker_t *b) { return manual(b, S_CLOSED, 0); }

resil_status resil_breaker_open_until(resil_breaker_t *b, uint64_t until_ns)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_open_until: NULL handle");
    block *k = b->blk;
    uint64_t now = now_of(b);
    if (until_ns <= now)
        return RESIL_OK; /* the hint has already passed */
    if (until_ns - now > RESIL_BREAKER_MAX_WAIT_NS)
        return resil__fail(RESIL_E_INVALID_ARG,
                           "breaker_open_until: deadline %llu ns ahead exceeds 5 days",
                           (unsigned long long)(until_ns - now));
    for (;;) {
        uint64_t st = resil__a64_load_acquire(&k->state);
        unsigned inner = st_inner(st);
        if (inner == S_DISABLED || inner == S_FORCED_OPEN || st_shadow(st))
            return resil__fail(RESIL_E_STATE, "breaker_open_until: breaker is %s",
                               resil_breaker_state_name(public_state(st)));
        if (inner == S_OPEN && deadline_remaining_ns(now, st_payload(st)) >= until_ns - now)
            return RESIL_OK;
        uint64_t open = next_gen_state(st, S_OPEN, 0, st_reopen(st), deadline40(until_ns, 0));
        if (transition(b, st, open, RESIL_BREAKER_REASON_OPEN_UNTIL, now))
            return RESIL_OK;
    }
}

/* ---------------------------------------------------------------- inspect */

resil_breaker_state resil_breaker_state_get(const resil_breaker_t *b)
{
    if (b == NULL)
        return RESIL_BREAKER_CLOSED;
    return public_state(resil__a64_load_acquire(&b->blk->state));
}

const char *resil_breaker_state_name(resil_breaker_state s)
{
    static const char *const names[] = {"CLOSED",   "OPEN",        "HALF_OPEN",
                                        "DISABLED", "FORCED_OPEN", "METRICS_ONLY"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN";
}

resil_status resil_breaker_stats(resil_breaker_t *b, resil_breaker_stats_t *out)
{
    if (b == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_stats: NULL argument");
    block *k = b->blk;
    const bcfg *c = &k->cfg;
    const shared_words *w = &k->w;
    memset(out, 0, sizeof *out);
    uint64_t now = now_of(b);
    uint64_t st = resil__a64_load_acquire(&k->state);
    out->state = public_state(st);
    out->inner_state = (resil_breaker_state)st_inner(st);
    out->generation = st_gen(st);

    uint64_t kinds[N_KINDS];
    for (int i = 0; i < N_KINDS; i++)
        kinds[i] = resil__a64_load_relaxed(&w->counters[i]);
    kinds[K_FAST] += sum_stripes(k, SW_FAST);
    if (c->window_kind == RESIL_WINDOW_TIME) { /* live bucket words hold the rest */
        for (uint32_t i = 0; i < c->buckets; i++) {
            for (uint32_t s = 0; s < c->stripes; s++)
                kinds[K_FAST] += tw_count(resil__a64_load_relaxed(&stripe(k, s)[SW_BUCKETS + i]));
            const resil__atomic_u64 *bw = bucket(k, i);
            kinds[K_FAIL] += tw_count(resil__a64_load_relaxed(&bw[BW_FAIL]));
            kinds[K_SLOW] += tw_count(resil__a64_load_relaxed(&bw[BW_SLOW]));
            kinds[K_SLOW_FAIL] += tw_count(resil__a64_load_relaxed(&bw[BW_SLOW_FAIL]));
        }
    }
    out->failures = kinds[K_FAIL];
    out->slow_calls = kinds[K_SLOW];
    out->successes =
        kinds[K_FAST] + kinds[K_SLOW] - resil__min_u64(kinds[K_SLOW_FAIL], kinds[K_SLOW]);
    out->ignored = resil__a64_load_relaxed(&w->ignored);
    out->stale = resil__a64_load_relaxed(&w->stale);
    out->rejected_open = sum_stripes(k, SW_REJ_OPEN);
    out->rejected_forced = sum_stripes(k, SW_REJ_FORCED);
    out->rejected_half_open = sum_stripes(k, SW_REJ_HALF);
    out->transitions = resil__a64_load_relaxed(&w->transitions);
    out->opens = resil__a64_load_relaxed(&w->opens);
    out->consecutive_failures = (uint32_t)resil__a64_load_relaxed(&w->consec);

    out->failure_rate = out->slow_rate = -1;
    if (st_inner(st) == S_CLOSED) {
        window_view v = view_window(k, st_gen(st), now);
        out->window_calls = v.calls;
        out->window_failures = v.failures;
        out->window_slow = v.slow;
        if (v.calls >= c->minimum_calls && v.calls > 0) {
            out->failure_rate = 100.0 * (double)v.failures / (double)v.calls;
            out->slow_rate = 100.0 * (double)v.slow / (double)v.calls;
        }
    }
    out->window_fill = c->window_kind == RESIL_WINDOW_TIME
                           ? 1.0
                           : (double)out->window_calls / (double)c->window_size;
    if (st_inner(st) == S_HALF_OPEN) {
        uint64_t pw = resil__a64_load_acquire(&k->probe);
        if (pr_gen(pw) == st_gen(st)) {
            out->probes_issued = pr_issued(pw);
            out->probes_completed = pr_ok(pw) + pr_fail(pw);
        }
    }
    if (st_inner(st) == S_OPEN)
        out->retry_after_ns = deadline_remaining_ns(now, st_payload(st));
    return RESIL_OK;
}

static resil_status check_block(const block *k)
{
    const bcfg *c = &k->cfg;
    uint64_t st = resil__a64_load_acquire(&k->state);
    if (st_inner(st) > S_FORCED_OPEN)
        return resil__fail(RESIL_E_CORRUPT, "breaker: state %u out of range", st_inner(st));
    if (st_shadow(st) && st_inner(st) > S_HALF_OPEN)
        return resil__fail(RESIL_E_CORRUPT, "breaker: shadow flag on state %u", st_inner(st));
    uint64_t pw = resil__a64_load_acquire(&k->probe);
    if (pr_issued(pw) > c->probes || pr_ok(pw) + pr_fail(pw) > pr_issued(pw) ||
        pr_slow(pw) > pr_ok(pw) + pr_fail(pw))
        return resil__fail(RESIL_E_CORRUPT,
                           "breaker: probes issued %u, completed %u, slow %u with K = %u",
                           pr_issued(pw), pr_ok(pw) + pr_fail(pw), pr_slow(pw), c->probes);
    return RESIL_OK;
}

/* Validates the stored configuration against the layout it implies. */
static resil_status check_config(const block *k, size_t len)
{
    const bcfg *c = &k->cfg;
    resil_breaker_config_t pub = resil_breaker_config_default();
    pub.window_kind = (resil_window_kind)c->window_kind;
    pub.window_size = c->window_kind == RESIL_WINDOW_TIME ? 1 : c->window_size;
    pub.window_buckets = c->window_kind == RESIL_WINDOW_TIME ? c->buckets : 1;
    pub.window_duration_ns = c->window_kind == RESIL_WINDOW_TIME ? c->window_ns : 1;
    pub.minimum_calls = c->minimum_calls;
    pub.failure_rate_threshold = c->failure_thr;
    pub.slow_rate_threshold = c->slow_thr;
    pub.slow_call_duration_ns = c->slow_ns;
    pub.consecutive_failures = c->consecutive;
    pub.open_wait_ns = c->waits[0];
    pub.open_wait_max_ns = c->waits[RESIL_BREAKER_MAX_GROWTH_STEPS];
    pub.open_wait_jitter_percent = c->jitter_pct;
    pub.half_open_probes = c->probes;
    pub.half_open_max_wait_ns = c->half_open_max_ns;
    pub.stripes = c->stripes;
    if (resil_breaker_config_check(&pub) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "breaker: stored configuration is invalid");
    bcfg d;
    derive(&pub, &d);
    if (d.off_stripes != c->off_stripes || d.stripe_stride != c->stripe_stride ||
        d.off_buckets != c->off_buckets || d.off_fail_ring != c->off_fail_ring ||
        d.off_slow_ring != c->off_slow_ring || d.size != c->size || c->size > len ||
        c->bucket_ns != d.bucket_ns)
        return resil__fail(RESIL_E_CORRUPT, "breaker: stored layout does not match its config");
    for (int i = 1; i <= RESIL_BREAKER_MAX_GROWTH_STEPS; i++)
        if (c->waits[i] < c->waits[i - 1])
            return resil__fail(RESIL_E_CORRUPT, "breaker: open waits decrease");
    return RESIL_OK;
}

resil_status resil_breaker_check(const resil_breaker_t *b)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_check: NULL handle");
    resil_status s = check_config(b->blk, b->blk->cfg.size);
    return s != RESIL_OK ? s : check_block(b->blk);
}

/* ---------------------------------------------------------------- life */

static uint32_t fresh_id(void)
{
    uint32_t id;
    do
        id = (uint32_t)resil_random_u64();
    while (id == 0);
    return id;
}

resil_status resil_breaker_init(void *mem, size_t len, const resil_breaker_config_t *cfg)
{
    resil_status s = resil_breaker_config_check(cfg);
    if (s != RESIL_OK)
        return s;
    bcfg d;
    derive(cfg, &d);
    s = resil__block_check_memory(mem, len, d.size);
    if (s != RESIL_OK)
        return s;
    block *k = mem;
    memset(k, 0, d.size);
    d.id = fresh_id();
    k->cfg = d;
    resil__a64_store_relaxed(&k->state, st_make(S_CLOSED, 0, 0, 1, 0));
    resil__a64_store_relaxed(&k->w.base, 0);
    resil__a64_store_relaxed(&k->w.base_gen, 1);
    resil__block_publish(&k->h, RESIL__KIND_BREAKER, LAYOUT_VERSION, d.size, &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

static void apply_local(resil_breaker_t *b, const resil_breaker_local_t *local)
{
    if (local != NULL) {
        b->clock = local->clock;
        b->listener = local->listener;
        b->user = local->user;
        b->seed = local->seed;
    }
    if (b->seed == 0)
        b->seed = resil_random_u64();
}

/* Called once the handle's block is initialized. */
static void pick_bucket_clock(resil_breaker_t *b)
{
    const bcfg *c = &b->blk->cfg;
    int dflt = b->clock.now == NULL;
    b->bucket_clock = b->clock;
    b->open_clock = b->clock;
    if (dflt && c->window_kind == RESIL_WINDOW_TIME && c->bucket_ns >= RESIL_MS(50))
        b->bucket_clock = resil_clock_coarse();
    if (dflt && c->waits[0] >= RESIL_MS(50))
        b->open_clock = resil_clock_coarse();
}

static resil_status make_handle(block *k, const resil_breaker_local_t *local, size_t extra,
                                resil_breaker_t **out)
{
    resil_allocator_t by;
    size_t size = round64(sizeof(resil_breaker_t)) + extra;
    unsigned char *mem = resil__alloc(size, &by);
    if (mem == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "breaker: allocation of %zu bytes failed", size);
    resil_breaker_t *b = (resil_breaker_t *)mem;
    b->blk = k != NULL ? k : (block *)(mem + round64(sizeof(resil_breaker_t)));
    b->by = by;
    b->alloc_size = size;
    apply_local(b, local);
    *out = b;
    return RESIL_OK;
}

void resil__breaker_bind(resil_breaker_t *h, void *blk, const resil_breaker_local_t *local)
{
    memset(h, 0, sizeof *h);
    h->blk = blk;
    apply_local(h, local);
    pick_bucket_clock(h);
}

int resil__breaker_evictable(const resil_breaker_t *h)
{
    return st_inner(resil__a64_load_acquire(&h->blk->state)) == S_CLOSED;
}

static void zero_words(block *k, uint32_t off, size_t bytes)
{
    resil__atomic_u64 *w = at(k, off);
    for (size_t i = 0; i < bytes / 8; i++)
        resil__a64_store_relaxed(&w[i], 0);
}

void resil__breaker_recycle(resil_breaker_t *h)
{
    block *k = h->blk;
    const bcfg *c = &k->cfg;
    zero_words(k, c->off_stripes, (size_t)c->stripe_stride * c->stripes);
    zero_words(k, c->off_buckets, (size_t)c->buckets * BW_N * 8);
    zero_words(k, c->off_fail_ring, c->has_fail_ring ? (size_t)c->window_size * 8 : 0);
    zero_words(k, c->off_slow_ring, c->has_slow_ring ? (size_t)c->window_size * 8 : 0);
    zero_words(k, (uint32_t)offsetof(block, w), sizeof(shared_words));
    resil__a64_store_relaxed(&k->probe, 0);
    uint64_t st = resil__a64_load_acquire(&k->state);
    uint64_t fresh;
    do
        fresh = next_gen_state(st, S_CLOSED, 0, 0, 0);
    while (!resil__a64_cas_acq_rel(&k->state, &st, fresh));
    window_restart(k, st_gen(fresh), now_of(h));
}

resil_status resil__breaker_validate(const void *mem, size_t len)
{
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_BREAKER, LAYOUT_VERSION);
    if (s != RESIL_OK)
        return s;
    const block *k = mem;
    if (k->h.config_off != offsetof(block, cfg) || k->h.config_len != sizeof(bcfg) ||
        len < sizeof(block))
        return resil__fail(RESIL_E_CORRUPT, "breaker: header does not describe a breaker");
    s = check_config(k, len);
    return s != RESIL_OK ? s : check_block(k);
}

resil_status resil_breaker_attach(void *mem, size_t len, const resil_breaker_local_t *local,
                                  resil_breaker_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__breaker_validate(mem, len);
    if (s != RESIL_OK)
        return s;
    s = make_handle(mem, local, 0, out);
    if (s == RESIL_OK)
        pick_bucket_clock(*out);
    return s;
}

resil_status resil_breaker_new(const resil_breaker_config_t *cfg,
                               const resil_breaker_local_t *local, resil_breaker_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_new: out is NULL");
    *out = NULL;
    size_t size = resil_breaker_size(cfg);
    if (size == 0)
        return cfg == NULL ? resil__fail(RESIL_E_INVALID_ARG, "breaker_new: config is NULL")
                           : resil_breaker_config_check(cfg);
    resil_breaker_t *b = NULL;
    resil_status s = make_handle(NULL, local, size, &b);
    if (s != RESIL_OK)
        return s;
    s = resil_breaker_init(b->blk, size, cfg);
    if (s != RESIL_OK) {
        resil__free(&b->by, b, b->alloc_size);
        return s;
    }
    pick_bucket_clock(b);
    *out = b;
    return RESIL_OK;
}

void resil_breaker_free(resil_breaker_t *b)
{
    if (b != NULL)
        resil__free(&b->by, b, b->alloc_size);
}
