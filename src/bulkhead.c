/*
 * Bulkhead: a process-shared, crash-safe counting semaphore.
 *
 * Layout of the block (offsets are computed from the config, stored in it
 * and re-derived on attach):
 *
 *   0    header (32) + config
 *   128  queue line: wq_head u32, wq_tail u32, wake u32 (futex word)
 *   192  peak u64, last_sweep u64 (rarely written)
 *   256  lines[stripes + 1]: one cache line of counters each
 *        records[max_processes]: one u64 per attached process
 *        queue slots[qcap]: ticket u32, deadline u64, owner u64
 *        cells[ceil(max_concurrent / 4)]: four 16-bit permit cells per u64
 *
 * Permits, process records, reclaim and the counter lines are the shared
 * machinery of src/internal/permits.h (contiguous cells; padding cells at
 * the end of the last word). This file adds the wait queue and the peak.
 *
 * Counters (granted, rejected, timed out, reclaimed) are statistics only:
 * no decision reads them. The number released is not counted but derived,
 * released = granted - reclaimed - held, because the cells already say
 * exactly which permits are held. A crash between a cell CAS and the
 * `granted` increment leaves `granted` (and so `released`) one short.
 */
#define _GNU_SOURCE
#include "resil/bulkhead.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/owner.h"
#include "internal/permits.h"
#include "internal/util.h"

#define LAYOUT_VERSION 2
#define SLICE_FUTEX_NS RESIL_MS(10)
#define SLICE_CLOCK_NS RESIL_MS(1)
#define STUCK_NS RESIL_MS(10)

enum { TIMED_OUT = 2 }; /* our counter of a line (permits.h) */

typedef struct bcfg {
    uint32_t max_concurrent, max_processes, max_waiters, stripes;
    uint32_t nwords, qcap, id, pad;
    uint64_t reclaim_interval_ns;
    uint64_t off_stripes, off_records, off_qticket, off_qdeadline, off_qowner, off_cells, size;
} bcfg;

typedef struct block {
    resil__block_header h;
    bcfg cfg;
    resil__atomic_u32 wq_head, wq_tail, wake, pad1;
    unsigned char pad2[48];
    resil__atomic_u64 peak, last_sweep;
    unsigned char pad3[48];
} block;

_Static_assert(sizeof(resil__block_header) + sizeof(bcfg) == 128, "header and config fill 2 lines");
_Static_assert(sizeof(block) == 256, "bulkhead block head is 4 lines");

struct resil_bulkhead {
    block *blk;
    resil__permits pm; /* cells, records, lines; the registration */
    resil_clock_t clock;
    int use_futex;
    resil_allocator_t by;
    size_t alloc_size;
};

/* ---- layout ---- */

static uint64_t align64(uint64_t x) { return (x + 63) & ~UINT64_C(63); }

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static void layout(bcfg *c)
{
    c->nwords = (c->max_concurrent + 3) / 4;
    c->qcap = pow2_at_least(c->max_waiters > 0 ? c->max_waiters : 1);
    uint64_t off = sizeof(block);
    c->off_stripes = off;
    off += ((uint64_t)c->stripes + 1) * sizeof(resil__pm_line);
    c->off_records = off;
    off = align64(off + 8 * (uint64_t)c->max_processes);
    c->off_qticket = off;
    off = align64(off + 4 * (uint64_t)c->qcap);
    c->off_qdeadline = off;
    off = align64(off + 8 * (uint64_t)c->qcap);
    c->off_qowner = off;
    off = align64(off + 8 * (uint64_t)c->qcap);
    c->off_cells = off;
    off = align64(off + 8 * (uint64_t)c->nwords);
    c->size = off;
}

#define AT(b, off, type) ((type *)((unsigned char *)(b) + (off)))
static resil__atomic_u32 *qticket(const block *k)
{
    return AT(k, k->cfg.off_qticket, resil__atomic_u32);
}
static resil__atomic_u64 *qdeadline(const block *k)
{
    return AT(k, k->cfg.off_qdeadline, resil__atomic_u64);
}
static resil__atomic_u64 *qowner(const block *k)
{
    return AT(k, k->cfg.off_qowner, resil__atomic_u64);
}

/* The permit machinery's view of block @p k, whose config is valid. */
static void make_view(block *k, resil__permits *pm)
{
    memset(pm, 0, sizeof *pm);
    pm->key = k;
    pm->id = k->cfg.id;
    pm->cells = AT(k, k->cfg.off_cells, resil__atomic_u64);
    pm->records = AT(k, k->cfg.off_records, resil__atomic_u64);
    pm->lines = AT(k, k->cfg.off_stripes, resil__pm_line);
    pm->last_sweep = &k->last_sweep;
    pm->name = "bulkhead";
    pm->ncells = k->cfg.max_concurrent;
    pm->nwords = k->cfg.nwords;
    pm->nrecords = k->cfg.max_processes;
    pm->stripes = k->cfg.stripes;
    pm->reclaim_interval_ns = k->cfg.reclaim_interval_ns;
}

/* ---- config ---- */

resil_bulkhead_config_t resil_bulkhead_config_default(void)
{
    resil_bulkhead_config_t c;
    memset(&c, 0, sizeof c);
    c.max_concurrent = 25;
    c.max_processes = 64;
    c.max_waiters = 256;
    c.stripes = 16;
    c.reclaim_interval_ns = RESIL_MS(100);
    return c;
}

resil_status resil_bulkhead_config_check(const resil_bulkhead_config_t *cfg)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead: config is NULL");
    if (cfg->max_concurrent < 1 || cfg->max_concurrent > RESIL_BULKHEAD_MAX_CONCURRENT)
        return RESIL__BAD_CONFIG("bulkhead.max_concurrent", "must be in 1..%d, got %u",
                                 RESIL_BULKHEAD_MAX_CONCURRENT, cfg->max_concurrent);
    if (cfg->max_processes < 1 || cfg->max_processes > RESIL_BULKHEAD_MAX_PROCESSES)
        return RESIL__BAD_CONFIG("bulkhead.max_processes", "must be in 1..%d, got %u",
                                 RESIL_BULKHEAD_MAX_PROCESSES, cfg->max_processes);
    if (cfg->max_waiters > RESIL_BULKHEAD_MAX_WAITERS)
        return RESIL__BAD_CONFIG("bulkhead.max_waiters", "must be in 0..%d, got %u",
                                 RESIL_BULKHEAD_MAX_WAITERS, cfg->max_waiters);
    if (cfg->stripes < 1 || cfg->stripes > 64 || (cfg->stripes & (cfg->stripes - 1)) != 0)
        return RESIL__BAD_CONFIG("bulkhead.stripes", "must be a power of two in 1..64, got %u",
                                 cfg->stripes);
    return RESIL_OK;
}

static void make_cfg(const resil_bulkhead_config_t *cfg, bcfg *c)
{
    memset(c, 0, sizeof *c);
    c->max_concurrent = cfg->max_concurrent;
    c->max_processes = cfg->max_processes;
    c->max_waiters = cfg->max_waiters;
    c->stripes = cfg->stripes;
    c->reclaim_interval_ns = cfg->reclaim_interval_ns;
    layout(c);
}

size_t resil_bulkhead_size(const resil_bulkhead_config_t *cfg)
{
    if (cfg == NULL || resil_bulkhead_config_check(cfg) != RESIL_OK)
        return 0;
    bcfg c;
    make_cfg(cfg, &c);
    return (size_t)c.size;
}

resil_status resil_bulkhead_init(void *mem, size_t len, const resil_bulkhead_config_t *cfg)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_init: config is NULL");
    resil_status s = resil_bulkhead_config_check(cfg);
    if (s != RESIL_OK)
        return s;
    bcfg c;
    make_cfg(cfg, &c);
    s = resil__block_check_memory(mem, len, (size_t)c.size);
    if (s != RESIL_OK)
        return s;
    block *k = mem;
    resil__block_retire(&k->h);
    memset((unsigned char *)mem + sizeof(resil__block_header), 0,
           (size_t)c.size - sizeof(resil__block_header));
    c.id = resil__pm_fresh_id(mem);
    k->cfg = c;
    resil__permits pm;
    make_view(k, &pm);
    resil__pm_init_cells(&pm);
    resil__block_publish(&k->h, RESIL__KIND_BULKHEAD, LAYOUT_VERSION, (size_t)c.size, &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

/* ---- reclaim ---- */

int resil_bulkhead_reclaim_dead(resil_bulkhead_t *b)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_reclaim_dead: handle is NULL");
    return resil__pm_reclaim(&b->pm, 0, 1);
}

int resil_bulkhead_reclaim_pid(resil_bulkhead_t *b, int pid)
{
    if (b == NULL || pid <= 0)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_reclaim_pid: %s",
                           b == NULL ? "handle is NULL" : "pid must be > 0");
    return resil__pm_reclaim(&b->pm, pid, 0);
}

/* ---- acquire / release ---- */

static void note_peak(block *k, uint32_t seen)
{
    uint64_t p = resil__a64_load_relaxed(&k->peak);
    while (seen > p && !resil__a64_cas_relaxed(&k->peak, &p, seen)) {
    }
}

/* Records the grant of lane @p lane of word @p w, whose value before the
 * CAS was @p v, after passing @p seen busy cells. */
static inline void granted(resil_bulkhead_t *h, const resil__pm_entry *e, uint32_t w, uint32_t lane,
                           uint64_t v, uint32_t seen, resil_bulkhead_permit_t *permit)
{
    block *k = h->blk;
    uint32_t n = h->pm.nwords, busy = resil__pm_busy_lanes(v);
    if (w == n - 1)
        busy -= n * 4 - h->pm.ncells; /* padding cells read as busy */
    seen += busy + 1;
    if (RESIL__UNLIKELY(seen > resil__a64_load_relaxed(&k->peak)))
        note_peak(k, seen);
    resil_bulkhead_permit_t p = {k->cfg.id, w * 4 + lane, (uint16_t)e->tag, 1, 0};
    *permit = p;
    resil__pm_add(e, RESIL__PM_GRANTED, 1);
}

/* One pass over the cells from this thread's start word. */
static resil_status take_cell(resil_bulkhead_t *h, const resil__pm_entry *e,
                              resil_bulkhead_permit_t *permit)
{
    uint32_t n = h->pm.nwords, w = e->start, seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        resil__atomic_u64 *cw = &h->pm.cells[w];
        uint64_t v = resil__a64_load_relaxed(cw);
        uint64_t z;
        while ((z = resil__pm_zero_lanes(v)) != 0) {
            uint32_t lane = (uint32_t)__builtin_ctzll(z) / 16;
            if (resil__a64_cas_acq_rel(cw, &v, v | (uint64_t)e->tag << (16 * lane))) {
                granted(h, e, w, lane, v, seen, permit);
                return RESIL_OK;
            }
        }
        seen += w == n - 1 ? 4 - (n * 4 - h->pm.ncells) : 4; /* all real lanes busy */
        if (++w == n)
            w = 0;
    }
    return RESIL_E_BULKHEAD_FULL;
}

static void clear_permit(resil_bulkhead_permit_t *p) { memset(p, 0, sizeof *p); }

/* try_inner() without its fast path: registration, the scan, lazy reclaim
 * (at most once per interval, only when full). */
static __attribute__((noinline)) resil_status try_slow(resil_bulkhead_t *h,
                                                       resil_bulkhead_permit_t *permit)
{
    resil_status s;
    uint64_t tag = resil__pm_tag_slow(&h->pm, &s);
    if (RESIL__UNLIKELY(tag == 0))
        return s;
    const resil__pm_entry *e = resil__pm_entry_of(&h->pm, tag);
    s = take_cell(h, e, permit);
    if (RESIL__UNLIKELY(s != RESIL_OK) && resil__pm_maybe_reclaim(&h->pm) > 0)
        s = take_cell(h, e, permit);
    return s;
}

/* The common case inline (registered, this thread's cache entry current,
 * its start word holding a free cell, the CAS winning at once); the rest
 * in try_slow(). A small fast path also keeps the stores before each
 * locked instruction few: a locked instruction waits for them to drain. */
static inline resil_status try_inner(resil_bulkhead_t *h, resil_bulkhead_permit_t *permit)
{
    uint64_t tag = resil__pm_tag(&h->pm);
    const resil__pm_entry *e = resil__pm_slot(h->pm.key);
    if (RESIL__LIKELY(tag != 0 && resil__pm_entry_current(&h->pm, e, tag))) {
        uint32_t w = e->start;
        resil__atomic_u64 *cw = &h->pm.cells[w];
        uint64_t v = resil__a64_load_relaxed(cw);
        uint64_t z = resil__pm_zero_lanes(v);
        if (RESIL__LIKELY(z != 0)) {
            uint32_t lane = (uint32_t)__builtin_ctzll(z) / 16;
            if (RESIL__LIKELY(resil__a64_cas_acq_rel(cw, &v, v | tag << (16 * lane)))) {
                granted(h, e, w, lane, v, 0, permit);
                return RESIL_OK;
            }
        }
    }
    return try_slow(h, permit);
}

/* Counts a rejection or a time-out on this thread's line. */
static void count_refusal(resil_bulkhead_t *h, int timed_out)
{
    resil__pm_count(&h->pm, timed_out ? TIMED_OUT : RESIL__PM_REJECTED);
}

resil_status resil_bulkhead_try_acquire(resil_bulkhead_t *h, resil_bulkhead_permit_t *permit)
{
    if (RESIL__UNLIKELY(h == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_try_acquire: NULL argument");
    resil_status s = try_inner(h, permit);
    if (RESIL__UNLIKELY(s != RESIL_OK)) {
        clear_permit(permit);
        if (s == RESIL_E_BULKHEAD_FULL)
            count_refusal(h, 0);
    }
    return s;
}

static void futex_wake_all(resil__atomic_u32 *w)
{
    syscall(SYS_futex, (uint32_t *)(void *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void bump_wake(block *k)
{
    resil__a32_fetch_add_acq_rel(&k->wake, 1);
    futex_wake_all(&k->wake);
}

resil_status resil_bulkhead_release(resil_bulkhead_t *h, resil_bulkhead_permit_t *permit)
{
    if (RESIL__UNLIKELY(h == NULL || permit == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_release: NULL argument");
    block *k = h->blk;
    if (RESIL__UNLIKELY(permit->live_ != 1 || permit->id_ != k->cfg.id ||
                        permit->cell_ >= k->cfg.max_concurrent || permit->tag_ == 0))
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_release: permit %s",
                           permit->id_ != k->cfg.id && permit->live_ == 1
                               ? "belongs to another bulkhead"
                               : "was never granted or is already released");
    if (RESIL__UNLIKELY(!resil__pm_clear(&h->pm, permit->cell_, permit->tag_))) {
        clear_permit(permit);
        return resil__fail(RESIL_E_NOT_OWNER,
                           "bulkhead_release: the permit was reclaimed or already released");
    }
    clear_permit(permit);
    if (RESIL__UNLIKELY(resil__a32_load_acquire(&k->wq_tail) !=
                        resil__a32_load_acquire(&k->wq_head)))
        bump_wake(k);
    return RESIL_OK;
}

/* ---- waiting ---- */

static void advance_head(block *k, uint32_t from, uint64_t now);

/* Whether the queue entry for ticket @p t can be skipped: its waiter's
 * deadline passed, or it has sat at the head, unwritten or owned by a dead
 * process, for longer than STUCK_NS (tracked by the observer). */
static int entry_skippable(block *k, uint32_t t, uint64_t now, uint64_t *stuck_since,
                           uint32_t *stuck_t)
{
    uint32_t slot = t & (k->cfg.qcap - 1);
    int written = resil__a32_load_acquire(&qticket(k)[slot]) == t + 1;
    if (written && resil__a64_load_relaxed(&qdeadline(k)[slot]) <= now)
        return 1;
    if (*stuck_t != t) {
        *stuck_t = t;
        *stuck_since = now;
        return 0;
    }
    if (now - *stuck_since < STUCK_NS)
        return 0;
    *stuck_since = now;
    if (!written)
        return 1;
    return !resil__owner_alive(resil__owner_unpack(resil__a64_load_relaxed(&qowner(k)[slot])));
}

static void advance_head(block *k, uint32_t from, uint64_t now)
{
    uint32_t h = from;
    if (!resil__a32_cas_acq_rel(&k->wq_head, &h, from + 1))
        return;
    /* Skip entries whose deadline has passed, so a queue of timed-out
     * waiters drains without anyone waiting on it. */
    h = from + 1;
    while (h != resil__a32_load_acquire(&k->wq_tail)) {
        uint32_t slot = h & (k->cfg.qcap - 1);
        if (resil__a32_load_acquire(&qticket(k)[slot]) != h + 1 ||
            resil__a64_load_relaxed(&qdeadline(k)[slot]) > now)
            break;
        uint32_t e = h;
        if (!resil__a32_cas_acq_rel(&k->wq_head, &e, h + 1))
            break;
        h++;
    }
    bump_wake(k);
}

static void wait_step(resil_bulkhead_t *h, uint32_t seq, uint64_t now, uint64_t deadline)
{
    uint64_t left = deadline - now;
    if (h->use_futex) {
        uint64_t ns = left < SLICE_FUTEX_NS ? left : SLICE_FUTEX_NS;
        struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
        syscall(SYS_futex, (uint32_t *)(void *)&h->blk->wake, FUTEX_WAIT, seq, &ts, NULL, 0);
    } else {
        resil_clock_sleep(&h->clock, left < SLICE_CLOCK_NS ? left : SLICE_CLOCK_NS);
    }
}

resil_status resil_bulkhead_acquire_wait(resil_bulkhead_t *h, uint64_t max_wait_ns,
                                         resil_bulkhead_permit_t *permit)
{
    if (h == NULL || permit == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_acquire_wait: NULL argument");
    block *k = h->blk;
    clear_permit(permit);
    if (resil__a32_load_acquire(&k->wq_tail) == resil__a32_load_acquire(&k->wq_head) ||
        max_wait_ns == 0 || k->cfg.max_waiters == 0) {
        resil_status s = try_inner(h, permit);
        if (s != RESIL_E_BULKHEAD_FULL || max_wait_ns == 0 || k->cfg.max_waiters == 0) {
            if (s == RESIL_E_BULKHEAD_FULL)
                count_refusal(h, 0);
            return s;
        }
    }
    uint64_t now = resil_clock_now(&h->clock);
    uint64_t deadline = resil__sat_add(now, max_wait_ns);
    uint64_t stuck_since = 0;
    uint32_t stuck_t = 0;
enqueue:;
    uint32_t t = resil__a32_load_acquire(&k->wq_tail);
    for (;;) {
        uint32_t head = resil__a32_load_acquire(&k->wq_head);
        if (t - head >= k->cfg.max_waiters) {
            count_refusal(h, 0);
            return resil__fail(RESIL_E_BULKHEAD_FULL, "bulkhead: wait queue is full");
        }
        if (resil__a32_cas_acq_rel(&k->wq_tail, &t, t + 1))
            break;
    }
    uint32_t slot = t & (k->cfg.qcap - 1);
    resil__a64_store_relaxed(&qdeadline(k)[slot], deadline);
    resil__a64_store_relaxed(&qowner(k)[slot], resil__owner_self());
    resil__a32_store_release(&qticket(k)[slot], t + 1);
    for (;;) {
        uint32_t seq = resil__a32_load_acquire(&k->wake);
        uint32_t head = resil__a32_load_acquire(&k->wq_head);
        now = resil_clock_now(&h->clock);
        if ((int32_t)(head - t) > 0) { /* skipped while we were away */
            if (now >= deadline)
                break;
            goto enqueue;
        }
        if (head == t) {
            resil_status s = try_inner(h, permit);
            if (s == RESIL_OK || s != RESIL_E_BULKHEAD_FULL) {
                advance_head(k, t, now);
                return s;
            }
        } else if (entry_skippable(k, head, now, &stuck_since, &stuck_t)) {
            advance_head(k, head, now);
            continue;
        }
        if (now >= deadline) {
            if (head == t)
                advance_head(k, t, now);
            break;
        }
        wait_step(h, seq, now, deadline);
    }
    count_refusal(h, 1);
    return resil__fail(RESIL_E_TIMEOUT, "bulkhead: no permit within %llu ns",
                       (unsigned long long)max_wait_ns);
}

/* ---- handles ---- */

static resil_status make_handle(void *mem, const resil_bulkhead_local_t *local, size_t state_size,
                                resil_bulkhead_t **out)
{
    resil_allocator_t by;
    size_t hsize = (sizeof(resil_bulkhead_t) + 63) & ~(size_t)63;
    size_t total = hsize + state_size;
    resil_bulkhead_t *h = resil__alloc(total, &by);
    if (h == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "bulkhead: allocation of %zu bytes failed", total);
    h->blk = mem != NULL ? mem : (block *)(void *)((unsigned char *)h + hsize);
    if (local != NULL)
        h->clock = local->clock;
    h->use_futex = h->clock.now == NULL;
    h->by = by;
    h->alloc_size = total;
    *out = h;
    return RESIL_OK;
}

/* Sets up the permit view of a handle whose block is valid and registers
 * this process; frees the handle on failure. */
static resil_status open_handle(resil_bulkhead_t *h, resil_bulkhead_t **out)
{
    make_view(h->blk, &h->pm);
    /* Lazy reclaim only asks "has the interval (default 100 ms) passed?",
     * on every rejection of a full bulkhead: a coarse read (about 4 ns,
     * ticks of a few ms, same epoch) instead of a precise one (about 28). */
    h->pm.sweep_clock = h->use_futex ? resil_clock_coarse() : h->clock;
    resil_status s = resil__pm_register(&h->pm);
    if (s != RESIL_OK) {
        resil__free(&h->by, h, h->alloc_size);
        return s;
    }
    *out = h;
    return RESIL_OK;
}

static resil_status check_config(const block *k, size_t len)
{
    if (k->h.config_off != offsetof(block, cfg) || k->h.config_len != sizeof(bcfg))
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: header does not describe a bulkhead");
    resil_bulkhead_config_t pub = resil_bulkhead_config_default();
    pub.max_concurrent = k->cfg.max_concurrent;
    pub.max_processes = k->cfg.max_processes;
    pub.max_waiters = k->cfg.max_waiters;
    pub.stripes = k->cfg.stripes;
    pub.reclaim_interval_ns = k->cfg.reclaim_interval_ns;
    if (resil_bulkhead_config_check(&pub) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: stored config is invalid");
    bcfg c;
    make_cfg(&pub, &c);
    c.id = k->cfg.id;
    if (memcmp(&c, &k->cfg, sizeof c) != 0 || c.size > len || c.size != k->h.size)
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: stored layout is inconsistent");
    return RESIL_OK;
}

resil_status resil_bulkhead_attach(void *mem, size_t len, const resil_bulkhead_local_t *local,
                                   resil_bulkhead_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_BULKHEAD, LAYOUT_VERSION);
    if (s != RESIL_OK)
        return s;
    if (len < sizeof(block))
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: block too small");
    s = check_config(mem, len);
    if (s == RESIL_OK) {
        resil__permits pm;
        uint32_t n;
        make_view(mem, &pm);
        s = resil__pm_check_cells(&pm, 0, &n);
    }
    resil_bulkhead_t *h = NULL;
    if (s == RESIL_OK)
        s = make_handle(mem, local, 0, &h);
    return s == RESIL_OK ? open_handle(h, out) : s;
}

resil_status resil_bulkhead_new(const resil_bulkhead_config_t *cfg,
                                const resil_bulkhead_local_t *local, resil_bulkhead_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_new: out is NULL");
    *out = NULL;
    size_t size = resil_bulkhead_size(cfg);
    if (size == 0)
        return cfg == NULL ? resil__fail(RESIL_E_INVALID_ARG, "bulkhead_new: config is NULL")
                           : resil_bulkhead_config_check(cfg);
    resil_bulkhead_t *h = NULL;
    resil_status s = make_handle(NULL, local, size, &h);
    if (s != RESIL_OK)
        return s;
    s = resil_bulkhead_init(h->blk, size, cfg);
    if (s != RESIL_OK) {
        resil__free(&h->by, h, h->alloc_size);
        return s;
    }
    return open_handle(h, out);
}

void resil_bulkhead_free(resil_bulkhead_t *h)
{
    if (h != NULL)
        resil__free(&h->by, h, h->alloc_size);
}

/* ---- inspect ---- */

resil_status resil_bulkhead_stats(const resil_bulkhead_t *h, resil_bulkhead_stats_t *out)
{
    if (h == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_stats: NULL argument");
    const block *k = h->blk;
    memset(out, 0, sizeof *out);
    out->max_concurrent = k->cfg.max_concurrent;
    out->granted = resil__pm_sum(&h->pm, RESIL__PM_GRANTED);
    out->rejected = resil__pm_sum(&h->pm, RESIL__PM_REJECTED);
    out->timed_out = resil__pm_sum(&h->pm, TIMED_OUT);
    out->reclaimed = resil__pm_sum(&h->pm, RESIL__PM_RECLAIMED);
    uint32_t n = 0;
    if (resil__pm_check_cells(&h->pm, 0, &n) != RESIL_OK)
        n = 0;
    out->in_flight = n;
    /* derived (see the top comment); a crash can leave granted short */
    out->released = out->granted > out->reclaimed + n ? out->granted - out->reclaimed - n : 0;
    uint64_t p = resil__a64_load_relaxed(&k->peak);
    out->peak = (uint32_t)(p > n ? p : n);
    uint32_t head = resil__a32_load_acquire(&k->wq_head);
    out->waiting = resil__a32_load_acquire(&k->wq_tail) - head;
    out->processes = resil__pm_processes(&h->pm);
    return RESIL_OK;
}

resil_status resil_bulkhead_check(const resil_bulkhead_t *h, int quiescent)
{
    if (h == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_check: handle is NULL");
    const block *k = h->blk;
    uint32_t n;
    resil_status s = resil__pm_check_cells(&h->pm, quiescent, &n);
    if (s != RESIL_OK)
        return s;
    if (n > k->cfg.max_concurrent)
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: %u permits held, limit %u", n,
                           k->cfg.max_concurrent);
    uint32_t head = resil__a32_load_acquire(&k->wq_head);
    uint32_t tail = resil__a32_load_acquire(&k->wq_tail);
    if (tail - head > k->cfg.max_waiters)
        return resil__fail(RESIL_E_CORRUPT, "bulkhead: %u queued, at most %u", tail - head,
                           k->cfg.max_waiters);
    return resil__pm_check_records(&h->pm);
}
