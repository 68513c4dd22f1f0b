/*
 * Adaptive concurrency limiter. See include/resil/limiter.h for the
 * behaviour; this comment explains the layout and the protocol.
 *
 * Block layout (offsets derived from the config):
 *
 *   0    header (32) + config (96)
 *   128  ctl line, read by every acquire and release, written only when
 *        the limit in force changes: ctl, baseline, limit_peak
 *   192  algorithm line, written once per batch: estimate, window, folded,
 *        next_probe, probe, probe_min, probes, last_sweep
 *   256  lines[stripes + 1]: counter lines (src/internal/permits.h)
 *        records[max_processes]
 *        cells: max_limit permit cells, interleaved over cache lines
 *
 * Permits are the crash-safe cells of src/internal/permits.h: a permit is
 * a cell holding its holder's tag, granted and released by one CAS each,
 * reclaimed when its process dies. The limiter admits only cells whose
 * logical index is below the limit in force: a thread tries first its home
 * word (kept per thread in its cache entry: first a spread position among
 * the admissible words, then the word of the last cell it found), then
 * scans the admissible words from there. The cells are interleaved
 * over cache lines (logical word w is slot w >> lg of line w mod 2^lg), so
 * the words of even a small limit lie in different lines and threads on
 * different cores do not fight over one.
 *
 *   ctl:       bits 0..31 limit in force | 32..47 gen | 48 probing
 *   estimate:  bits 16..63 the algorithm's limit, fixed point with 32
 *              fraction bits | 0..15 AIMD: samples applied since the last
 *              decrease (saturating at 65535; starts saturated)
 *   window:    GRADIENT round: bits 47..63 samples | 0..46 RTT sum, ns
 *              (saturating: 39 hours)
 *   probe, probe_min: gen << 48 | count, or | minimum RTT (ns, 48 bits)
 *
 * Every word changes by single CASes (a few plain stores of the pin's end
 * precede its CAS and are harmless to repeat), so a crash at any
 * instruction leaves each of them valid; the permits are the only thing
 * whose loss or minting would matter, and they are the cells.
 *
 * Admission reads the limit, then CASes a cell: a limit lowered in
 * between admits one more call below the old limit, the same as if the
 * call had come a moment earlier. limit_peak bounds in flight either way.
 *
 * Batching: a thread counts its samples on its own line with plain stores
 * (count | good count << 32 in BATCH; GRADIENT: RTT sum in BATCH_SUM) and
 * applies them in one CAS once it holds max(16, limit / 8) of them. It
 * zeroes its batch before the CAS: a crash in between loses the batch, it
 * never applies it twice. AIMD applies a drop at once, with its batch.
 * When it applies a batch of good samples, AIMD checks whether the limit
 * is in use by counting the held cells below the limit (early exit at
 * half), about 2 loads per sample at most; GRADIENT does so only when a
 * round ends with a gradient of 1.
 *
 * GRADIENT phases (gen in ctl): normal rounds move the estimate; the sample
 * rounds are counted in `folded`, and the round that reaches `next_probe`
 * pins the limit to min_limit with gen + 1 (Envoy's minRTT window).
 * Samples of calls admitted under that gen (the permit carries it) count in
 * `probe` and give `probe_min`; the one that makes probe_samples ends the
 * pin: the baseline becomes probe_min, the estimate is in force again.
 * Samples of calls admitted before the pin are ignored while it lasts.
 * `probe` and `probe_min` carry the gen, so they reset lazily.
 */
#include "resil/limiter.h"

#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/permits.h"
#include "internal/util.h"

#define LAYOUT_VERSION 2
#define BATCH_MIN 16
#define CTL_PROBING (UINT64_C(1) << 48)
#define FX 4294967296.0 /* 2^32: fraction bits of the estimate */
#define SINCE_MAX UINT64_C(0xFFFF)
#define WSUM_MASK ((UINT64_C(1) << 47) - 1)
#define LOW48 ((UINT64_C(1) << 48) - 1)

/* Our counters of a line (src/internal/permits.h). */
enum { SAMPLES = 2, DROPS = 4, BATCH = 5, BATCH_SUM = 6 };

typedef struct lcfg {
    uint32_t algorithm, initial_limit, min_limit, max_limit;
    double backoff_ratio;
    uint64_t timeout_ns;
    double smoothing, rtt_tolerance;
    uint32_t queue_size, probe_interval, probe_samples, id;
    uint32_t max_processes, stripes, nwords, lg;
    uint64_t reclaim_interval_ns, pad;
} lcfg;

typedef struct block {
    resil__block_header h;
    lcfg cfg;
    resil__atomic_u64 ctl, baseline, limit_peak;
    uint64_t pad0[5];
    resil__atomic_u64 estimate, window, folded, next_probe, probe, probe_min, probes, last_sweep;
} block;

_Static_assert(sizeof(resil__block_header) + sizeof(lcfg) == 128, "header and config: 2 lines");
_Static_assert(offsetof(block, ctl) == 128 && offsetof(block, estimate) == 192, "line layout");
_Static_assert(sizeof(block) == 256, "limiter block head is 4 lines");

struct resil_limiter {
    block *blk;
    resil__permits pm; /* cells, records, lines; the registration */
    resil_allocator_t by;
    size_t alloc_size;
};

/* ---- words ---- */

static inline uint32_t ctl_limit(uint64_t c) { return (uint32_t)c; }
static inline uint32_t ctl_gen(uint64_t c) { return (uint32_t)(c >> 32) & 0xFFFF; }
static inline uint64_t ctl_make(uint32_t lim, uint32_t gen, int probing)
{
    return (uint64_t)lim | (uint64_t)(gen & 0xFFFF) << 32 | (probing ? CTL_PROBING : 0);
}

static inline double est_of(uint64_t w) { return (double)(w >> 16) / FX; }
static inline uint32_t since_of(uint64_t w) { return (uint32_t)(w & SINCE_MAX); }
static inline uint64_t est_make(double e, uint64_t since)
{
    return (uint64_t)(e * FX) << 16 | (since < SINCE_MAX ? since : SINCE_MAX);
}

static inline uint64_t gen_tagged(uint32_t gen, uint64_t v) { return (uint64_t)gen << 48 | v; }

/* ---- layout ---- */

static uint64_t align64(uint64_t x) { return (x + 63) & ~UINT64_C(63); }

static uint64_t off_records(const lcfg *c)
{
    return sizeof(block) + ((uint64_t)c->stripes + 1) * sizeof(resil__pm_line);
}
static uint64_t off_cells(const lcfg *c)
{
    return align64(off_records(c) + 8 * (uint64_t)c->max_processes);
}
static uint64_t block_size(const lcfg *c)
{
    return align64(off_cells(c) + 8 * (uint64_t)c->nwords);
}

#define AT(b, off, type) ((type *)((unsigned char *)(b) + (off)))

/* The permit machinery's view of block @p k, whose config is valid. */
static void make_view(block *k, resil__permits *pm)
{
    memset(pm, 0, sizeof *pm);
    pm->key = k;
    pm->id = k->cfg.id;
    pm->cells = AT(k, off_cells(&k->cfg), resil__atomic_u64);
    pm->records = AT(k, off_records(&k->cfg), resil__atomic_u64);
    pm->lines = AT(k, sizeof(block), resil__pm_line);
    pm->last_sweep = &k->last_sweep;
    pm->name = "limiter";
    pm->ncells = k->cfg.max_limit;
    pm->nwords = k->cfg.nwords;
    pm->nrecords = k->cfg.max_processes;
    pm->stripes = k->cfg.stripes;
    pm->lg = k->cfg.lg;
    pm->interleaved = 1;
    pm->reclaim_interval_ns = k->cfg.reclaim_interval_ns;
}

/* ---- config ---- */

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
    c.max_processes = 64;
    c.stripes = 16;
    c.reclaim_interval_ns = RESIL_MS(100);
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
    if (c->max_processes < 1 || c->max_processes > RESIL_LIMITER_MAX_PROCESSES)
        return RESIL__BAD_CONFIG("limiter.max_processes", "must be in 1..%d, got %u",
                                 RESIL_LIMITER_MAX_PROCESSES, c->max_processes);
    if (c->stripes < 1 || c->stripes > 64 || (c->stripes & (c->stripes - 1)) != 0)
        return RESIL__BAD_CONFIG("limiter.stripes", "must be a power of two in 1..64, got %u",
                                 c->stripes);
    return RESIL_OK;
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
    o->max_processes = c->max_processes;
    o->stripes = c->stripes;
    o->reclaim_interval_ns = c->reclaim_interval_ns;
    o->nwords = resil__pm_words(c->max_limit, 1, &o->lg);
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
    c.max_processes = o->max_processes;
    c.stripes = o->stripes;
    c.reclaim_interval_ns = o->reclaim_interval_ns;
    return c;
}

size_t resil_limiter_size(const resil_limiter_config_t *cfg)
{
    if (cfg == NULL || resil_limiter_config_check(cfg) != RESIL_OK)
        return 0;
    lcfg c;
    to_lcfg(cfg, &c);
    return (size_t)block_size(&c);
}

resil_status resil_limiter_init(void *mem, size_t len, const resil_limiter_config_t *cfg)
{
    resil_status s = resil_limiter_config_check(cfg);
    if (s != RESIL_OK)
        return s;
    lcfg c;
    to_lcfg(cfg, &c);
    size_t size = (size_t)block_size(&c);
    s = resil__block_check_memory(mem, len, size);
    if (s != RESIL_OK)
        return s;
    block *k = mem;
    resil__block_retire(&k->h);
    memset((unsigned char *)mem + sizeof k->h, 0, size - sizeof k->h);
    c.id = resil__pm_fresh_id(mem);
    k->cfg = c;
    resil__permits pm;
    make_view(k, &pm);
    resil__pm_init_cells(&pm);
    resil__a64_store_relaxed(&k->ctl, ctl_make(c.initial_limit, 0, 0));
    resil__a64_store_relaxed(&k->limit_peak, c.initial_limit);
    resil__a64_store_relaxed(&k->estimate, est_make(c.initial_limit, SINCE_MAX));
    resil__a64_store_relaxed(&k->next_probe, c.probe_interval);
    resil__block_publish(&k->h, RESIL__KIND_LIMITER, LAYOUT_VERSION, size, &k->cfg, sizeof k->cfg);
    return RESIL_OK;
}

/* ---- limit ---- */

static uint32_t clamp_limit(const block *k, double e)
{
    uint32_t lim = e >= (double)k->cfg.max_limit ? k->cfg.max_limit : (uint32_t)e;
    return lim < k->cfg.min_limit ? k->cfg.min_limit : lim;
}

static double clamp_estimate(const block *k, double e)
{
    double lo = k->cfg.min_limit, hi = k->cfg.max_limit;
    return e < lo ? lo : e > hi ? hi : e;
}

/* Raises limit_peak to @p lim if below. */
static void note_peak(block *k, uint64_t lim)
{
    uint64_t p = resil__a64_load_relaxed(&k->limit_peak);
    while (lim > p && !resil__a64_cas_relaxed(&k->limit_peak, &p, lim)) {
    }
}

/* Puts the current estimate in force unless the limit is pinned. Reads
 * the estimate afresh on every try, so the last publisher publishes the
 * last estimate whatever the order of their CASes. */
static void publish(block *k)
{
    uint64_t c = resil__a64_load_acquire(&k->ctl);
    uint32_t lim;
    do {
        lim = clamp_limit(k, est_of(resil__a64_load_acquire(&k->estimate)));
        if ((c & CTL_PROBING) || ctl_limit(c) == lim)
            return;
    } while (!resil__a64_cas_acq_rel(&k->ctl, &c, (c & ~UINT64_C(0xFFFFFFFF)) | lim));
    note_peak(k, lim);
}

/* Lanes of a word whose logical index, counted from @p first, is below
 * @p lim, as the high bit of each lane. */
static inline uint64_t admissible(uint32_t first, uint32_t lim)
{
    uint32_t m = lim - first;
    return m >= 4 ? RESIL__PM_HIGHS : RESIL__PM_HIGHS & ((UINT64_C(1) << (16 * m)) - 1);
}

/* Whether at least @p need cells below @p lim are held; stops as soon as
 * the answer is known. */
static int held_at_least(const resil__permits *pm, uint32_t lim, uint32_t need)
{
    uint32_t held = 0;
    for (uint32_t w = 0; 4 * w < lim; w++) {
        if (held >= need || held + (lim - 4 * w) < need)
            break;
        uint64_t v = resil__a64_load_relaxed(&pm->cells[resil__pm_phys(pm, w)]);
        held += resil__pm_busy_lanes(v & (admissible(4 * w, lim) >> 15) * 0xFFFF);
    }
    return held >= need;
}

/* The limit is in use: with the call just ended, at least half of it. */
static int in_use(const resil__permits *pm, uint32_t lim)
{
    return held_at_least(pm, lim, (lim + 1) / 2 - 1);
}

/* ---- acquire ---- */

/* Physical word of logical word @p w (the table is always interleaved). */
static inline uint32_t phys(const resil__permits *pm, uint32_t w)
{
    return (w & ((1u << pm->lg) - 1)) << 3 | w >> pm->lg;
}

/* Tries the admissible lanes @p mask of logical word @p w for @p tag and
 * fills the permit (@p c: the ctl word the limit was read from). */
static inline int take_in(const resil_limiter_t *l, uint64_t tag, uint32_t w, uint64_t mask,
                          uint64_t c, resil_limiter_permit_t *permit)
{
    uint32_t p = phys(&l->pm, w);
    resil__atomic_u64 *cw = &l->pm.cells[p];
    uint64_t v = resil__a64_load_relaxed(cw), z;
    while ((z = resil__pm_zero_lanes(v) & mask) != 0) {
        uint32_t lane = (uint32_t)__builtin_ctzll(z) / 16;
        if (resil__a64_cas_acq_rel(cw, &v, v | tag << (16 * lane))) {
            resil_limiter_permit_t q = {l->blk->cfg.id, (uint16_t)(p * 4 + lane), (uint16_t)tag,
                                        (uint16_t)ctl_gen(c), 1};
            *permit = q;
            return 1;
        }
    }
    return 0;
}

/* One pass over the admissible words from this thread's home word. The
 * home word is a spread position (given by the thread and its process
 * record) among the n admissible words, chosen again whenever n changes,
 * so threads stay on different words, also after a re-measurement pinned
 * them all to one word. Within the same n, the word where a cell is found
 * becomes the home word, so a thread that holds many permits (an event
 * loop) finds a free cell at once next time instead of scanning past its
 * own. */
static int take_cell(resil_limiter_t *l, resil__pm_entry *e, resil_limiter_permit_t *permit)
{
    uint64_t c = resil__a64_load_acquire(&l->blk->ctl);
    uint32_t lim = ctl_limit(c), n = (lim + 3) / 4;
    if (e->span != n) {
        uint32_t frac = resil__thread_index() * 0x9E3779B9u + (uint32_t)(e->tag >> 8) * 0x7F4A7C15u;
        e->start = (uint32_t)(((uint64_t)frac * n) >> 32);
        e->span = (uint16_t)n;
    }
    uint32_t w = e->start;
    for (uint32_t i = 0; i < n; i++) {
        if (take_in(l, e->tag, w, admissible(4 * w, lim), c, permit)) {
            e->start = w;
            return 1;
        }
        if (++w == n)
            w = 0;
    }
    return 0;
}

static void clear_permit(resil_limiter_permit_t *p) { memset(p, 0, sizeof *p); }

/* try_acquire() without its fast path: registration, the scan, lazy
 * reclaim, counting. */
static __attribute__((noinline)) resil_status acquire_slow(resil_limiter_t *l,
                                                           resil_limiter_permit_t *permit)
{
    resil_status s;
    uint64_t tag = resil__pm_tag_slow(&l->pm, &s);
    if (RESIL__UNLIKELY(tag == 0)) {
        clear_permit(permit);
        return s;
    }
    resil__pm_entry *e = resil__pm_entry_of(&l->pm, tag);
    if (take_cell(l, e, permit) ||
        (resil__pm_maybe_reclaim(&l->pm) > 0 && take_cell(l, e, permit))) {
        resil__pm_add(e, RESIL__PM_GRANTED, 1);
        return RESIL_OK;
    }
    clear_permit(permit);
    resil__pm_add(e, RESIL__PM_REJECTED, 1);
    return RESIL_E_LIMIT_REACHED;
}

resil_status resil_limiter_try_acquire(resil_limiter_t *l, resil_limiter_permit_t *permit)
{
    if (RESIL__UNLIKELY(l == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_try_acquire: NULL argument");
    uint64_t tag = resil__pm_tag(&l->pm);
    const resil__pm_entry *e = resil__pm_slot(l->pm.key);
    uint64_t c = resil__a64_load_relaxed(&l->blk->ctl);
    uint32_t w = e->start, lim = ctl_limit(c);
    /* Fast path: registered, cache entry current, home word chosen for
     * this many admissible words, a free admissible lane, CAS won at once. */
    if (RESIL__LIKELY(tag != 0 && resil__pm_entry_current(&l->pm, e, tag) &&
                      e->span == (lim + 3) / 4) &&
        RESIL__LIKELY(take_in(l, tag, w, admissible(4 * w, lim), c, permit))) {
        resil__pm_add(resil__pm_slot(l->pm.key), RESIL__PM_GRANTED, 1);
        return RESIL_OK;
    }
    return acquire_slow(l, permit);
}

/* ---- samples ---- */

/* AIMD: applies a batch of @p n samples, @p good of them neither dropped
 * nor slow, the last one @p bad (dropped or slow). */
static void aimd_apply(resil_limiter_t *l, uint64_t c, uint64_t n, uint64_t good, int bad)
{
    block *k = l->blk;
    int use = good > 0 && in_use(&l->pm, ctl_limit(c));
    uint64_t w = resil__a64_load_relaxed(&k->estimate);
    for (;;) {
        double cur = est_of(w), e = cur;
        uint64_t since = since_of(w) + n;
        if (!use && !bad && since_of(w) >= (uint32_t)cur)
            return; /* nothing to change: the next drop may decrease already */
        if (use)
            e += (double)good / cur;
        if (bad && since >= (uint32_t)cur) { /* at most once per round */
            e *= k->cfg.backoff_ratio;
            since = 0;
        }
        if (resil__a64_cas_acq_rel(&k->estimate, &w, est_make(clamp_estimate(k, e), since)))
            break;
    }
    publish(k);
}

static void start_probe(block *k, uint64_t folded)
{
    uint64_t c = resil__a64_load_acquire(&k->ctl);
    if ((c & CTL_PROBING) || folded < resil__a64_load_relaxed(&k->next_probe))
        return;
    if (resil__a64_cas_acq_rel(&k->ctl, &c, ctl_make(k->cfg.min_limit, ctl_gen(c) + 1, 1)))
        resil__a64_fetch_add_relaxed(&k->probes, 1);
}

/* GRADIENT: the end of a round of @p n samples whose RTTs sum to @p sum. */
static void gradient_round(resil_limiter_t *l, uint64_t c, uint64_t n, uint64_t sum)
{
    block *k = l->blk;
    double base = (double)resil__a64_load_relaxed(&k->baseline);
    double g = k->cfg.rtt_tolerance * base / (double)(sum / n > 0 ? sum / n : 1);
    g = g < 0.5 ? 0.5 : g > 1.0 ? 1.0 : g;
    if (g < 1.0 || in_use(&l->pm, ctl_limit(c))) {
        uint64_t w = resil__a64_load_relaxed(&k->estimate);
        for (;;) {
            double cur = est_of(w);
            double e = (1.0 - k->cfg.smoothing) * cur +
                       k->cfg.smoothing * (g * cur + (double)k->cfg.queue_size);
            if (resil__a64_cas_acq_rel(&k->estimate, &w, est_make(clamp_estimate(k, e), 0)))
                break;
        }
        publish(k);
    }
    if (k->cfg.probe_interval != 0)
        start_probe(k, resil__a64_fetch_add_relaxed(&k->folded, n) + n);
}

/* GRADIENT: adds a batch to the round; the batch that completes the round
 * (max(limit, 10) samples, about one round trip of calls) empties it and
 * moves the estimate once, as Netflix's WindowedLimit does. */
static void gradient_apply(resil_limiter_t *l, uint64_t c, uint64_t n, uint64_t sum)
{
    block *k = l->blk;
    uint64_t lim = ctl_limit(c), need = lim > 10 ? lim : 10;
    uint64_t w = resil__a64_load_relaxed(&k->window);
    for (;;) {
        uint64_t n2 = (w >> 47) + n, s2 = (w & WSUM_MASK) + sum;
        s2 = s2 < WSUM_MASK ? s2 : WSUM_MASK;
        if (n2 >= need) {
            if (resil__a64_cas_acq_rel(&k->window, &w, 0)) {
                gradient_round(l, c, n2, s2);
                return;
            }
        } else if (resil__a64_cas_acq_rel(&k->window, &w, n2 << 47 | s2)) {
            return;
        }
    }
}

static void end_probe(block *k, uint32_t gen)
{
    uint64_t c = resil__a64_load_acquire(&k->ctl);
    if (!(c & CTL_PROBING) || ctl_gen(c) != gen)
        return; /* someone ended it already */
    uint64_t m = resil__a64_load_acquire(&k->probe_min);
    if ((m >> 48) == gen)
        resil__a64_store_relaxed(&k->baseline, m & LOW48);
    resil__a64_store_relaxed(&k->window, 0);
    resil__a64_store_relaxed(&k->next_probe,
                             resil__a64_load_relaxed(&k->folded) + k->cfg.probe_interval);
    uint32_t lim;
    do {
        lim = clamp_limit(k, est_of(resil__a64_load_acquire(&k->estimate)));
        if (!(c & CTL_PROBING) || ctl_gen(c) != gen)
            return;
    } while (!resil__a64_cas_acq_rel(&k->ctl, &c, ctl_make(lim, gen, 0)));
    note_peak(k, lim);
}

/* GRADIENT, while the limit is pinned: a sample of a call admitted under
 * the pin counts towards the re-measured baseline. */
static void probe_sample(block *k, uint32_t gen, uint64_t c, uint64_t rtt)
{
    if (gen != ctl_gen(c))
        return; /* admitted before the pin: says nothing about no-load RTT */
    rtt = rtt < LOW48 ? rtt : LOW48;
    uint64_t m = resil__a64_load_relaxed(&k->probe_min);
    while (((m >> 48) != gen || rtt < (m & LOW48)) &&
           !resil__a64_cas_acq_rel(&k->probe_min, &m, gen_tagged(gen, rtt))) {
    }
    uint64_t p = resil__a64_load_relaxed(&k->probe), next;
    do
        next = gen_tagged(gen, (p >> 48) == gen ? (p & LOW48) + 1 : 1);
    while (!resil__a64_cas_acq_rel(&k->probe, &p, next));
    if ((next & LOW48) >= k->cfg.probe_samples)
        end_probe(k, gen);
}

static void min_into(resil__atomic_u64 *w, uint64_t v)
{
    uint64_t cur = resil__a64_load_relaxed(w);
    while ((cur == 0 || v < cur) && !resil__a64_cas_acq_rel(w, &cur, v)) {
    }
}

/* The batch size at limit @p lim. */
static inline uint64_t batch_size(uint32_t lim)
{
    return lim / 8 > BATCH_MIN ? lim / 8 : BATCH_MIN;
}

/* AIMD: a sample that does not just join an unfinished batch. */
static void aimd_sample(resil_limiter_t *l, const resil__pm_entry *e, uint64_t c, int bad)
{
    if (bad)
        resil__pm_add(e, DROPS, 1);
    if (!e->own) {
        aimd_apply(l, c, 1, !bad, bad);
        return;
    }
    resil__atomic_u64 *b = &e->ln->n[BATCH];
    uint64_t v = resil__a64_load_relaxed(b) + 1 + ((uint64_t)!bad << 32);
    resil__a64_store_relaxed(b, 0); /* before applying: a crash loses it, never doubles it */
    aimd_apply(l, c, (uint32_t)v, v >> 32, bad);
}

/* GRADIENT: a sample that does not just join an unfinished batch. */
static void gradient_sample(resil_limiter_t *l, const resil__pm_entry *e, uint64_t c, uint32_t gen,
                            uint64_t rtt, int dropped)
{
    block *k = l->blk;
    if (dropped)
        resil__pm_add(e, DROPS, 1);
    if (c & CTL_PROBING) {
        probe_sample(k, gen, c, rtt);
        return;
    }
    min_into(&k->baseline, rtt);
    if (!e->own) {
        gradient_apply(l, c, 1, rtt < WSUM_MASK ? rtt : WSUM_MASK);
        return;
    }
    resil__atomic_u64 *b = &e->ln->n[BATCH], *bs = &e->ln->n[BATCH_SUM];
    uint64_t n = resil__a64_load_relaxed(b) + 1, sum = resil__a64_load_relaxed(bs) + rtt;
    sum = sum >= rtt && sum < WSUM_MASK ? sum : WSUM_MASK;
    if (n < batch_size(ctl_limit(c))) {
        resil__a64_store_relaxed(b, n);
        resil__a64_store_relaxed(bs, sum);
        return;
    }
    resil__a64_store_relaxed(b, 0); /* before applying: a crash loses it, never doubles it */
    resil__a64_store_relaxed(bs, 0);
    gradient_apply(l, c, n, sum);
}

/* sample() beyond its fast path. */
static __attribute__((noinline)) void sample_rest(resil_limiter_t *l, const resil__pm_entry *e,
                                                  uint64_t c, uint32_t gen, uint64_t rtt,
                                                  int dropped)
{
    resil__pm_add(e, SAMPLES, 1);
    if (l->blk->cfg.algorithm == RESIL_LIMITER_AIMD)
        aimd_sample(l, e, c, dropped || rtt > l->blk->cfg.timeout_ns);
    else
        gradient_sample(l, e, c, gen, rtt > 0 ? rtt : 1, dropped);
}

/* Feeds one sample, counted on entry @p e's line. Inline: the common case,
 * a sample that joins this thread's unfinished batch (plain stores on its
 * own line: no locked instruction, no shared write). */
static inline void sample(resil_limiter_t *l, const resil__pm_entry *e, uint32_t gen, uint64_t rtt,
                          int dropped)
{
    const block *k = l->blk;
    uint64_t c = resil__a64_load_acquire(&k->ctl);
    uint64_t batch = batch_size(ctl_limit(c));
    resil__pm_line *ln = e->ln;
    if (RESIL__LIKELY(e->own && !dropped)) {
        uint64_t v = resil__a64_load_relaxed(&ln->n[BATCH]);
        if (k->cfg.algorithm == RESIL_LIMITER_AIMD) {
            v += UINT64_C(1) << 32 | 1; /* one more, and a good one */
            if (RESIL__LIKELY(rtt <= k->cfg.timeout_ns && (uint32_t)v < batch)) {
                resil__a64_store_relaxed(&ln->n[SAMPLES],
                                         resil__a64_load_relaxed(&ln->n[SAMPLES]) + 1);
                resil__a64_store_relaxed(&ln->n[BATCH], v);
                return;
            }
        } else {
            uint64_t sum = resil__a64_load_relaxed(&ln->n[BATCH_SUM]) + rtt;
            if (RESIL__LIKELY(v + 1 < batch && !(c & CTL_PROBING) && sum >= rtt &&
                              sum < WSUM_MASK && /* baseline set and <= rtt: */
                              resil__a64_load_relaxed(&k->baseline) - 1 < rtt)) {
                resil__a64_store_relaxed(&ln->n[SAMPLES],
                                         resil__a64_load_relaxed(&ln->n[SAMPLES]) + 1);
                resil__a64_store_relaxed(&ln->n[BATCH], v + 1);
                resil__a64_store_relaxed(&ln->n[BATCH_SUM], sum);
                return;
            }
        }
    }
    sample_rest(l, e, c, gen, rtt, dropped);
}

/* ---- release ---- */

/* Gives the permit's cell back. @return RESIL_OK and the permit's gen and
 * tag. */
static inline resil_status end_call(resil_limiter_t *l, resil_limiter_permit_t *permit,
                                    uint32_t *gen, uint64_t *tag)
{
    if (RESIL__UNLIKELY(l == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_release: NULL argument");
    const block *k = l->blk;
    if (RESIL__UNLIKELY(permit->live_ != 1 || permit->id_ != k->cfg.id ||
                        permit->cell_ >= 4 * l->pm.nwords || permit->tag_ == 0 ||
                        permit->tag_ == RESIL__PM_PAD)) /* no holder has the padding's tag */
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_release: permit %s",
                           permit->id_ != k->cfg.id && permit->live_ == 1
                               ? "belongs to another limiter"
                               : "was never granted or is already released");
    *tag = permit->tag_;
    *gen = permit->gen_;
    int ok = resil__pm_clear(&l->pm, permit->cell_, *tag);
    clear_permit(permit);
    if (RESIL__UNLIKELY(!ok))
        return resil__fail(RESIL_E_NOT_OWNER,
                           "limiter_release: the permit was reclaimed or already released");
    return RESIL_OK;
}

/* The line a sample of a permit granted under @p tag counts on, when the
 * thread's cache entry is not (still) set up for it. */
static __attribute__((noinline)) void sample_slow(resil_limiter_t *l, uint32_t gen, uint64_t rtt,
                                                  int dropped)
{
    uint64_t tag = resil__pm_tag(&l->pm);
    resil__pm_entry shared = {.key = l->pm.key, .ln = &l->pm.lines[l->pm.stripes]};
    sample(l, tag != 0 ? resil__pm_entry_of(&l->pm, tag) : &shared, gen, rtt, dropped);
}

resil_status resil_limiter_release(resil_limiter_t *l, resil_limiter_permit_t *permit,
                                   uint64_t latency_ns, int dropped)
{
    uint32_t gen = 0;
    uint64_t tag = 0;
    resil_status s = end_call(l, permit, &gen, &tag);
    if (RESIL__UNLIKELY(s != RESIL_OK))
        return s;
    /* The line of the entry the permit was granted under. A process
     * reclaimed after the cell was cleared may count once on a line
     * claimed since by another thread: statistics only (permits.h). */
    const resil__pm_entry *e = resil__pm_slot(l->pm.key);
    if (RESIL__LIKELY(resil__pm_entry_current(&l->pm, e, tag)))
        sample(l, e, gen, latency_ns, dropped);
    else
        sample_slow(l, gen, latency_ns, dropped);
    return RESIL_OK;
}

resil_status resil_limiter_release_ignored(resil_limiter_t *l, resil_limiter_permit_t *permit)
{
    uint32_t gen = 0;
    uint64_t tag = 0;
    return end_call(l, permit, &gen, &tag);
}

/* ---- reclaim ---- */

int resil_limiter_reclaim_dead(resil_limiter_t *l)
{
    if (l == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_reclaim_dead: handle is NULL");
    return resil__pm_reclaim(&l->pm, 0, 1);
}

int resil_limiter_reclaim_pid(resil_limiter_t *l, int pid)
{
    if (l == NULL || pid <= 0)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_reclaim_pid: %s",
                           l == NULL ? "handle is NULL" : "pid must be > 0");
    return resil__pm_reclaim(&l->pm, pid, 0);
}

/* ---- handles ---- */

static resil_status make_handle(void *mem, size_t state_size, resil_limiter_t **out)
{
    resil_allocator_t by;
    size_t hsize = (sizeof(resil_limiter_t) + 63) & ~(size_t)63;
    size_t total = hsize + state_size;
    resil_limiter_t *l = resil__alloc(total, &by);
    if (l == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "limiter: allocation of %zu bytes failed", total);
    l->blk = mem != NULL ? mem : (block *)(void *)((unsigned char *)l + hsize);
    l->by = by;
    l->alloc_size = total;
    *out = l;
    return RESIL_OK;
}

/* Sets up the permit view of a handle whose block is valid and registers
 * this process; frees the handle on failure. */
static resil_status open_handle(resil_limiter_t *l, const resil_limiter_local_t *local,
                                resil_limiter_t **out)
{
    make_view(l->blk, &l->pm);
    /* Lazy reclaim only asks "has the interval passed?": a coarse read. */
    l->pm.sweep_clock =
        local != NULL && local->clock.now != NULL ? local->clock : resil_clock_coarse();
    resil_status s = resil__pm_register(&l->pm);
    if (s != RESIL_OK) {
        resil__free(&l->by, l, l->alloc_size);
        return s;
    }
    *out = l;
    return RESIL_OK;
}

/* The config, limit and estimate of a block someone else wrote. */
static resil_status verify(const block *k, size_t len)
{
    if (k->h.config_off != offsetof(block, cfg) || k->h.config_len != sizeof(lcfg))
        return resil__fail(RESIL_E_CORRUPT, "limiter: header does not describe a limiter");
    resil_limiter_config_t pub = from_lcfg(&k->cfg);
    if (resil_limiter_config_check(&pub) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "limiter: stored config is invalid");
    lcfg c;
    to_lcfg(&pub, &c);
    c.id = k->cfg.id;
    uint64_t size = block_size(&c);
    if (memcmp(&c, &k->cfg, sizeof c) != 0 || size > len || size != k->h.size)
        return resil__fail(RESIL_E_CORRUPT, "limiter: stored layout is inconsistent");
    uint32_t lim = ctl_limit(resil__a64_load_acquire(&k->ctl));
    if (lim < k->cfg.min_limit || lim > k->cfg.max_limit)
        return resil__fail(RESIL_E_CORRUPT, "limiter: limit %u outside %u..%u", lim,
                           k->cfg.min_limit, k->cfg.max_limit);
    double e = est_of(resil__a64_load_relaxed(&k->estimate));
    if (!(e >= k->cfg.min_limit && e <= k->cfg.max_limit))
        return resil__fail(RESIL_E_CORRUPT, "limiter: estimate out of bounds");
    return RESIL_OK;
}

resil_status resil_limiter_attach(void *mem, size_t len, const resil_limiter_local_t *local,
                                  resil_limiter_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_LIMITER, LAYOUT_VERSION);
    if (s == RESIL_OK && len < sizeof(block))
        s = resil__fail(RESIL_E_CORRUPT, "limiter: block too small");
    if (s == RESIL_OK)
        s = verify(mem, len);
    if (s == RESIL_OK) {
        resil__permits pm;
        uint32_t n;
        make_view(mem, &pm);
        s = resil__pm_check_cells(&pm, 0, &n);
    }
    resil_limiter_t *l = NULL;
    if (s == RESIL_OK)
        s = make_handle(mem, 0, &l);
    return s == RESIL_OK ? open_handle(l, local, out) : s;
}

resil_status resil_limiter_new(const resil_limiter_config_t *cfg,
                               const resil_limiter_local_t *local, resil_limiter_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_new: out is NULL");
    *out = NULL;
    size_t size = resil_limiter_size(cfg);
    if (size == 0)
        return resil_limiter_config_check(cfg);
    resil_limiter_t *l = NULL;
    resil_status s = make_handle(NULL, size, &l);
    if (s != RESIL_OK)
        return s;
    resil_limiter_init(l->blk, size, cfg);
    return open_handle(l, local, out);
}

void resil_limiter_free(resil_limiter_t *l)
{
    if (l != NULL)
        resil__free(&l->by, l, l->alloc_size);
}

/* ---- inspect ---- */

resil_status resil_limiter_stats(const resil_limiter_t *l, resil_limiter_stats_t *out)
{
    if (l == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_stats: NULL argument");
    const block *k = l->blk;
    memset(out, 0, sizeof *out);
    out->limit = ctl_limit(resil__a64_load_acquire(&k->ctl));
    out->limit_peak = (uint32_t)resil__a64_load_relaxed(&k->limit_peak);
    out->in_flight = resil__pm_held(&l->pm);
    out->processes = resil__pm_processes(&l->pm);
    out->estimate = est_of(resil__a64_load_relaxed(&k->estimate));
    out->baseline_ns = resil__a64_load_relaxed(&k->baseline);
    out->granted = resil__pm_sum(&l->pm, RESIL__PM_GRANTED);
    out->rejected = resil__pm_sum(&l->pm, RESIL__PM_REJECTED);
    out->samples = resil__pm_sum(&l->pm, SAMPLES);
    out->drops = resil__pm_sum(&l->pm, DROPS);
    out->probes = resil__a64_load_relaxed(&k->probes);
    out->reclaimed = resil__pm_sum(&l->pm, RESIL__PM_RECLAIMED);
    return RESIL_OK;
}

resil_status resil_limiter_check(const resil_limiter_t *l, int quiescent)
{
    if (l == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "limiter_check: handle is NULL");
    resil_status s = verify(l->blk, l->blk->h.size);
    uint32_t n;
    if (s == RESIL_OK)
        s = resil__pm_check_cells(&l->pm, quiescent, &n);
    return s == RESIL_OK ? resil__pm_check_records(&l->pm) : s;
}
