/*
 * Bulkhead: a process-shared, crash-safe counting semaphore.
 *
 * Layout of the block (offsets are computed from the config, stored in it
 * and re-derived on attach):
 *
 *   0    header (32) + config
 *   128  queue line: wq_head u32, wq_tail u32, wake u32 (futex word)
 *   192  peak u64, last_sweep u64 (rarely written)
 *   256  lines[stripes + 1]: one cache line of counters each (see below)
 *        records[max_processes]: one u64 per attached process
 *        queue slots[qcap]: ticket u32, deadline u64, owner u64
 *        cells[ceil(max_concurrent / 4)]: four 16-bit permit cells per u64
 *
 * A permit IS a cell. A free cell is 0; a held cell holds the tag of its
 * holder, (record index + 1) << 8 | record epoch (8 bits). Cells beyond
 * max_concurrent in the last word are padding, 0xFFFF forever (record index
 * 254 never exists). Granting a permit is one CAS that both takes the cell
 * and records the holder; releasing it is one CAS that clears the cell only
 * if it still holds the releaser's tag. So there is never a moment where a
 * permit is counted but not attributed, and a crash at any instruction
 * leaves every cell either free or attributed.
 *
 * A process record is one u64:
 *
 *   63..56 epoch   55..54 state (0 FREE, 1 LIVE, 2 RECLAIMING)
 *   53..32 pid (22 bits; Linux pid_max <= 2^22)   31..0 start time (low 32)
 *
 * Protocol invariant: a cell tagged (i, e) is valid iff record i is LIVE
 * with epoch e. Every record transition is one CAS:
 *
 *   FREE(e)  -> LIVE(e, me)           registration (attach, or after fork)
 *   LIVE(e)  -> RECLAIMING(e)         a reclaimer fences the record: acquirers
 *                                     check LIVE(e, me) before taking a cell
 *   RECLAIMING(e) -> FREE(e + 1)      after clearing every cell tagged (i, e)
 *
 * A reclaimer killed between these steps leaves RECLAIMING(e), which any
 * later reclaim (lazy or explicit) finishes. An acquirer that passed its
 * LIVE check just before the fence may still take a cell tagged (i, e)
 * after the sweep: such a cell is invalid by the invariant (the record is
 * no longer LIVE(e)), and every sweep clears invalid cells, so it is
 * reclaimed too. A release CASes its exact tag away, so a release of a
 * reclaimed permit fails (RESIL_E_NOT_OWNER) and changes nothing. An epoch
 * reused after 256 reclaims of one record could in principle match a very
 * old stale permit; a stale holder would have to sleep through 256
 * reclaim/re-register cycles of its own slot.
 *
 * Counters (granted, rejected, ...) are statistics only: no decision
 * reads them. The number released is not counted but derived, released =
 * granted - reclaimed - held, because the cells already say exactly which
 * permits are held. A crash between a cell CAS and the `granted` increment
 * leaves `granted` (and so `released`) one short.
 *
 * Counter lines: each of the first `stripes` lines is owned by one thread
 * of one process (owner word: bit 63 | cell tag << 32 | thread index,
 * claimed by one CAS when the thread first uses the bulkhead), and only
 * its owner writes it: with a plain load and store, no locked instruction,
 * so a grant costs one RMW (the cell CAS) and a release one more. A line
 * whose owner's tag is no longer valid (its process was reclaimed) can be
 * claimed again; its counts stay (they are totals). Threads that find
 * every line owned count on the last line with atomic adds, and so do
 * reclaimers. A thread that exits keeps its line until its process is
 * reclaimed. If a live process is reclaimed explicitly, one of its threads
 * already past its record check may still add to a line just claimed by
 * another thread, and one count is lost: statistics only.
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
#include "internal/rng.h"
#include "internal/stripe.h"
#include "internal/util.h"

#define LAYOUT_VERSION 2
#define PAD_CELL UINT64_C(0xFFFF)
#define LANES UINT64_C(0x0001000100010001)
#define HIGHS UINT64_C(0x8000800080008000)
#define SLICE_FUTEX_NS RESIL_MS(10)
#define SLICE_CLOCK_NS RESIL_MS(1)
#define STUCK_NS RESIL_MS(10)

enum { REC_FREE = 0, REC_LIVE = 1, REC_RECLAIMING = 2 };

typedef struct bcfg {
    uint32_t max_concurrent, max_processes, max_waiters, stripes;
    uint32_t nwords, qcap, id, pad;
    uint64_t reclaim_interval_ns;
    uint64_t off_stripes, off_records, off_qticket, off_qdeadline, off_qowner, off_cells, size;
} bcfg;

typedef struct line {
    resil__atomic_u64 owner, granted, rejected, timed_out, reclaimed;
    uint64_t pad[3];
} line;

#define LINE_OWNED (UINT64_C(1) << 63)

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
_Static_assert(sizeof(line) == 64, "a counter line is one cache line");

struct resil_bulkhead {
    block *blk;
    resil_clock_t clock;
    resil_clock_t sweep_clock; /* the coarse clock when `clock` is the default */
    int use_futex;
    resil__atomic_u32 reg; /* (record index + 1) << 8 | epoch; 0 = not registered */
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
    off += ((uint64_t)c->stripes + 1) * sizeof(line);
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
static line *lines(const block *k) { return AT(k, k->cfg.off_stripes, line); }
static line *shared_line(const block *k) { return &lines(k)[k->cfg.stripes]; }
static resil__atomic_u64 *records(const block *k)
{
    return AT(k, k->cfg.off_records, resil__atomic_u64);
}
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
static resil__atomic_u64 *cells(const block *k)
{
    return AT(k, k->cfg.off_cells, resil__atomic_u64);
}

/* ---- records ---- */

static uint64_t rec_make(uint32_t epoch, uint32_t state, uint64_t ident)
{
    uint64_t pid = (ident >> 32) & 0x3FFFFF;
    return (uint64_t)(epoch & 0xFF) << 56 | (uint64_t)state << 54 | pid << 32 | (uint32_t)ident;
}
static uint32_t rec_epoch(uint64_t r) { return (uint32_t)(r >> 56); }
static uint32_t rec_state(uint64_t r) { return (uint32_t)(r >> 54) & 3; }
static uint64_t rec_ident(uint64_t r) { return (r & UINT64_C(0x003FFFFFFFFFFFFF)); }
static uint64_t ident_norm(uint64_t ident) { return rec_ident(rec_make(0, 0, ident)); }

/* ---- per-thread cache ---- */

/* Per thread, for the last block used in each of 4 ways (picked by the
 * block's address): where the thread starts scanning cells, which counter
 * line it uses and whether it owns it, and the tag they were set up for (a
 * fork or a reclaim changes the tag and so refreshes the entry). Static TLS
 * (initial-exec: one %fs-relative access, no __tls_get_addr call). */
typedef struct tl_entry {
    const void *blk;
    line *ln;
    uint64_t tag;
    uint32_t start, own;
} tl_entry;

static _Thread_local tl_entry tl_cache[4] __attribute__((tls_model("initial-exec")));

static inline tl_entry *tl_of(const block *k) { return &tl_cache[((uintptr_t)k >> 6) & 3]; }

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

static uint32_t fresh_id(const void *mem)
{
    static resil__atomic_u64 seq;
    uint64_t s = resil__a64_fetch_add_relaxed(&seq, 1) ^ (uint64_t)(uintptr_t)mem ^
                 resil_clock_now(NULL) ^ resil__owner_self();
    uint32_t id = (uint32_t)resil__splitmix64_next(&s);
    return id != 0 ? id : 1;
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
    c.id = fresh_id(mem);
    k->cfg = c;
    uint32_t pad_lanes = c.nwords * 4 - c.max_concurrent;
    if (pad_lanes > 0) {
        uint64_t v = 0;
        for (uint32_t l = 4 - pad_lanes; l < 4; l++)
            v |= PAD_CELL << (16 * l);
        resil__a64_store_relaxed(&cells(k)[c.nwords - 1], v);
    }
    resil__block_publish(&k->h, RESIL__KIND_BULKHEAD, LAYOUT_VERSION, (size_t)c.size, &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

/* ---- reclaim ---- */

/* Lanes of @p v that hold a nonzero cell: the high bit of each lane is set
 * iff the lane is nonzero; the multiply sums the four bits into the top
 * lane (no popcount instruction in the baseline x86-64 ISA). */
static inline uint32_t busy_lanes(uint64_t v)
{
    const uint64_t low = ~HIGHS;
    uint64_t nz = ((((v & low) + low) | v) & HIGHS) >> 15;
    return (uint32_t)((nz * LANES) >> 48);
}

/* Whether a cell tag is valid now (see the protocol invariant above). */
static int tag_valid(const block *k, uint64_t tag)
{
    uint64_t idx = (tag >> 8) - 1;
    if (tag == 0 || idx >= k->cfg.max_processes)
        return 0;
    uint64_t r = resil__a64_load_acquire(&records(k)[idx]);
    return rec_state(r) == REC_LIVE && rec_epoch(r) == (tag & 0xFF);
}

/* Finds the counter line of this thread for @p tag: one it owns already,
 * else a free one or one whose owner's tag is no longer valid, claimed by
 * CAS; else the shared line. */
static void fill_entry(block *k, tl_entry *e, uint64_t tag)
{
    uint32_t t = resil__thread_index(), n = k->cfg.nwords, S = k->cfg.stripes;
    uint64_t mine = LINE_OWNED | tag << 32 | t;
    line *got = NULL;
    for (int pass = 0; pass < 2 && got == NULL && tag != 0; pass++) {
        for (uint32_t i = 0; i < S; i++) {
            line *l = &lines(k)[(t + i) & (S - 1)];
            uint64_t o = resil__a64_load_acquire(&l->owner);
            if (o == mine || (pass == 1 && (o == 0 || !tag_valid(k, (o >> 32) & 0xFFFF)) &&
                              resil__a64_cas_acq_rel(&l->owner, &o, mine))) {
                got = l;
                break;
            }
        }
    }
    e->start = n >= 16 ? (t * 8 + t / (n / 8)) % n : t % n;
    e->ln = got != NULL ? got : shared_line(k);
    e->own = got != NULL;
    e->tag = tag;
    e->blk = k;
}

/* This thread's cache entry for @p k, set up for @p tag. */
static inline tl_entry *entry(block *k, uint64_t tag)
{
    tl_entry *e = tl_of(k);
    if (RESIL__UNLIKELY(e->blk != k || e->tag != tag))
        fill_entry(k, e, tag);
    return e;
}

/* Adds one to counter @p c of entry @p e's line. */
static inline void bump(const tl_entry *e, resil__atomic_u64 *c)
{
    if (RESIL__LIKELY(e->own))
        resil__a64_store_relaxed(c, resil__a64_load_relaxed(c) + 1);
    else
        resil__a64_fetch_add_relaxed(c, 1);
}

/* Clears every cell whose tag is invalid. @return cells cleared. */
static uint32_t sweep_cells(block *k)
{
    uint32_t n = 0, last = k->cfg.nwords - 1, pad = k->cfg.nwords * 4 - k->cfg.max_concurrent;
    for (uint32_t w = 0; w <= last; w++) {
        resil__atomic_u64 *cw = &cells(k)[w];
        uint64_t v = resil__a64_load_acquire(cw);
        for (;;) {
            uint64_t clear = 0;
            uint32_t lanes = w == last ? 4 - pad : 4;
            for (uint32_t l = 0; l < lanes; l++) {
                uint64_t t = (v >> (16 * l)) & 0xFFFF;
                if (t != 0 && !tag_valid(k, t))
                    clear |= UINT64_C(0xFFFF) << (16 * l);
            }
            if (clear == 0)
                break;
            if (resil__a64_cas_acq_rel(cw, &v, v & ~clear)) {
                n += (uint32_t)__builtin_popcountll(clear) / 16;
                break;
            }
        }
    }
    if (n > 0)
        resil__a64_fetch_add_relaxed(&shared_line(k)->reclaimed, n);
    return n;
}

/* Fences record @p i (LIVE -> RECLAIMING) if it still reads @p r, or
 * continues a reclaim left half-done; then sweeps and frees it. */
static void reclaim_record(block *k, uint32_t i, uint64_t r)
{
    resil__atomic_u64 *rw = &records(k)[i];
    if (rec_state(r) == REC_LIVE) {
        uint64_t fenced = rec_make(rec_epoch(r), REC_RECLAIMING, rec_ident(r));
        if (!resil__a64_cas_acq_rel(rw, &r, fenced))
            return; /* changed under us: someone else is on it */
        r = fenced;
    }
    if (rec_state(r) != REC_RECLAIMING)
        return;
    sweep_cells(k); /* clears (i, epoch) cells: RECLAIMING makes them invalid */
    resil__a64_cas_acq_rel(rw, &r, rec_make(rec_epoch(r) + 1, REC_FREE, 0));
}

static uint64_t total_reclaimed(const block *k)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s <= k->cfg.stripes; s++)
        n += resil__a64_load_relaxed(&lines(k)[s].reclaimed);
    return n;
}

static int reclaim_where(block *k, int pid, int check_alive)
{
    uint64_t before = total_reclaimed(k);
    for (uint32_t i = 0; i < k->cfg.max_processes; i++) {
        uint64_t r = resil__a64_load_acquire(&records(k)[i]);
        uint32_t st = rec_state(r);
        if (st == REC_FREE)
            continue;
        resil__owner o = resil__owner_unpack(rec_ident(r));
        if (pid > 0 && o.pid != (uint32_t)pid)
            continue;
        if (check_alive && st == REC_LIVE && resil__owner_alive(o))
            continue;
        reclaim_record(k, i, r);
    }
    sweep_cells(k); /* orphans of fenced acquirers */
    uint64_t n = total_reclaimed(k) - before;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int resil_bulkhead_reclaim_dead(resil_bulkhead_t *b)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_reclaim_dead: handle is NULL");
    return reclaim_where(b->blk, 0, 1);
}

int resil_bulkhead_reclaim_pid(resil_bulkhead_t *b, int pid)
{
    if (b == NULL || pid <= 0)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_reclaim_pid: %s",
                           b == NULL ? "handle is NULL" : "pid must be > 0");
    return reclaim_where(b->blk, pid, 0);
}

/* ---- registration ---- */

static resil_status register_self(resil_bulkhead_t *h)
{
    block *k = h->blk;
    uint64_t me = ident_norm(resil__owner_self());
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < k->cfg.max_processes; i++) {
            uint64_t r = resil__a64_load_acquire(&records(k)[i]);
            if (rec_state(r) == REC_LIVE && rec_ident(r) == me) {
                resil__a32_store_release(&h->reg, (i + 1) << 8 | rec_epoch(r));
                return RESIL_OK;
            }
        }
        for (uint32_t i = 0; i < k->cfg.max_processes; i++) {
            resil__atomic_u64 *rw = &records(k)[i];
            uint64_t r = resil__a64_load_acquire(rw);
            while (rec_state(r) == REC_FREE) {
                if (resil__a64_cas_acq_rel(rw, &r, rec_make(rec_epoch(r), REC_LIVE, me))) {
                    resil__a32_store_release(&h->reg, (i + 1) << 8 | rec_epoch(r));
                    return RESIL_OK;
                }
            }
        }
        if (pass == 0)
            reclaim_where(k, 0, 1);
    }
    return resil__fail(RESIL_E_FULL, "bulkhead: all %u process records belong to live processes",
                       k->cfg.max_processes);
}

/* The tag this thread may write, after checking the handle's registration
 * is current (same process, record still LIVE with our epoch). 0 = no. */
static inline uint64_t current_tag(const resil_bulkhead_t *h)
{
    uint32_t reg = resil__a32_load_acquire(&h->reg);
    uint64_t me = resil__owner_cached();
    if (RESIL__UNLIKELY(reg == 0 || me == 0))
        return 0;
    uint32_t idx = (reg >> 8) - 1;
    uint64_t r = resil__a64_load_acquire(&records(h->blk)[idx]);
    if (RESIL__UNLIKELY(r != rec_make(reg & 0xFF, REC_LIVE, me)))
        return 0;
    return reg;
}

/* ---- acquire / release ---- */

static inline uint64_t zero_lanes(uint64_t v) { return (v - LANES) & ~v & HIGHS; }

static void note_peak(block *k, uint32_t seen)
{
    uint64_t p = resil__a64_load_relaxed(&k->peak);
    while (seen > p && !resil__a64_cas_relaxed(&k->peak, &p, seen)) {
    }
}

/* Records the grant of lane @p lane of word @p w, whose value before the
 * CAS was @p v, after passing @p seen busy cells. */
static inline void granted(block *k, const tl_entry *e, uint32_t w, uint32_t lane, uint64_t v,
                           uint32_t seen, resil_bulkhead_permit_t *permit)
{
    uint32_t n = k->cfg.nwords, busy = busy_lanes(v);
    if (w == n - 1)
        busy -= n * 4 - k->cfg.max_concurrent; /* padding cells read as busy */
    seen += busy + 1;
    if (RESIL__UNLIKELY(seen > resil__a64_load_relaxed(&k->peak)))
        note_peak(k, seen);
    resil_bulkhead_permit_t p = {k->cfg.id, w * 4 + lane, (uint16_t)e->tag, 1, 0};
    *permit = p;
    bump(e, &e->ln->granted);
}

/* One pass over the cells from this thread's start word. */
static resil_status take_cell(block *k, const tl_entry *e, resil_bulkhead_permit_t *permit)
{
    uint32_t n = k->cfg.nwords, w = e->start, seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        resil__atomic_u64 *cw = &cells(k)[w];
        uint64_t v = resil__a64_load_relaxed(cw);
        uint64_t z;
        while ((z = zero_lanes(v)) != 0) {
            uint32_t lane = (uint32_t)__builtin_ctzll(z) / 16;
            if (resil__a64_cas_acq_rel(cw, &v, v | e->tag << (16 * lane))) {
                granted(k, e, w, lane, v, seen, permit);
                return RESIL_OK;
            }
        }
        seen += w == n - 1 ? 4 - (n * 4 - k->cfg.max_concurrent) : 4; /* all real lanes busy */
        if (++w == n)
            w = 0;
    }
    return RESIL_E_BULKHEAD_FULL;
}

static void clear_permit(resil_bulkhead_permit_t *p) { memset(p, 0, sizeof *p); }

/* Lazy reclaim, at most once per interval, only when full. */
static int maybe_reclaim(resil_bulkhead_t *h)
{
    block *k = h->blk;
    uint64_t iv = k->cfg.reclaim_interval_ns;
    if (iv == 0)
        return 0;
    uint64_t now = resil_clock_now(&h->sweep_clock);
    uint64_t last = resil__a64_load_relaxed(&k->last_sweep);
    uint64_t prev = last & ~UINT64_C(1); /* stored with bit 0 set: 0 means never */
    if (last != 0 && now >= prev && now - prev < iv)
        return 0;
    if (!resil__a64_cas_relaxed(&k->last_sweep, &last, now | 1))
        return 0;
    return reclaim_where(k, 0, 1);
}

/* try_inner() without its fast path: registration, the scan, lazy reclaim. */
static __attribute__((noinline)) resil_status try_slow(resil_bulkhead_t *h,
                                                       resil_bulkhead_permit_t *permit)
{
    uint64_t tag = current_tag(h);
    if (RESIL__UNLIKELY(tag == 0)) {
        resil_status s = register_self(h);
        if (s != RESIL_OK)
            return s;
        tag = current_tag(h);
        if (tag == 0)
            return resil__fail(RESIL_E_FULL, "bulkhead: registration lost to a reclaim");
    }
    const tl_entry *e = entry(h->blk, tag);
    resil_status s = take_cell(h->blk, e, permit);
    if (RESIL__UNLIKELY(s != RESIL_OK) && maybe_reclaim(h) > 0)
        s = take_cell(h->blk, e, permit);
    return s;
}

/* The common case inline (registered, this thread's cache entry current,
 * its start word holding a free cell, the CAS winning at once); the rest
 * in try_slow(). A small fast path also keeps the stores before each
 * locked instruction few: a locked instruction waits for them to drain. */
static inline resil_status try_inner(resil_bulkhead_t *h, resil_bulkhead_permit_t *permit)
{
    block *k = h->blk;
    uint64_t tag = current_tag(h);
    const tl_entry *e = tl_of(k);
    if (RESIL__LIKELY(tag != 0 && e->blk == k && e->tag == tag)) {
        uint32_t w = e->start;
        resil__atomic_u64 *cw = &cells(k)[w];
        uint64_t v = resil__a64_load_relaxed(cw);
        uint64_t z = zero_lanes(v);
        if (RESIL__LIKELY(z != 0)) {
            uint32_t lane = (uint32_t)__builtin_ctzll(z) / 16;
            if (RESIL__LIKELY(resil__a64_cas_acq_rel(cw, &v, v | tag << (16 * lane)))) {
                granted(k, e, w, lane, v, 0, permit);
                return RESIL_OK;
            }
        }
    }
    return try_slow(h, permit);
}

/* Counts a rejection or a time-out on this thread's line. */
static void count_refusal(resil_bulkhead_t *h, int timed_out)
{
    block *k = h->blk;
    uint64_t tag = current_tag(h);
    if (tag == 0) {
        line *l = shared_line(k);
        resil__a64_fetch_add_relaxed(timed_out ? &l->timed_out : &l->rejected, 1);
        return;
    }
    const tl_entry *e = entry(k, tag);
    bump(e, timed_out ? &e->ln->timed_out : &e->ln->rejected);
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
    resil__atomic_u64 *cw = &cells(k)[permit->cell_ / 4];
    uint32_t shift = 16 * (permit->cell_ % 4);
    uint64_t mask = UINT64_C(0xFFFF) << shift, tag = (uint64_t)permit->tag_ << shift;
    uint64_t v = resil__a64_load_relaxed(cw);
    for (;;) {
        if (RESIL__UNLIKELY((v & mask) != tag)) {
            clear_permit(permit);
            return resil__fail(RESIL_E_NOT_OWNER,
                               "bulkhead_release: the permit was reclaimed or already released");
        }
        if (resil__a64_cas_acq_rel(cw, &v, v & ~mask))
            break;
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
    /* Lazy reclaim only asks "has the interval (default 100 ms) passed?",
     * on every rejection of a full bulkhead: a coarse read (about 4 ns,
     * ticks of a few ms, same epoch) instead of a precise one (about 28). */
    h->sweep_clock = h->use_futex ? resil_clock_coarse() : h->clock;
    h->by = by;
    h->alloc_size = total;
    *out = h;
    return RESIL_OK;
}

static resil_status check_cells(const block *k, int quiescent, uint32_t *in_flight)
{
    uint32_t n = 0, last = k->cfg.nwords - 1, pad = k->cfg.nwords * 4 - k->cfg.max_concurrent;
    for (uint32_t w = 0; w <= last; w++) {
        uint64_t v = resil__a64_load_acquire(&cells(k)[w]);
        for (uint32_t l = 0; l < 4; l++) {
            uint64_t t = (v >> (16 * l)) & 0xFFFF;
            int is_pad = w == last && l >= 4 - pad;
            if (is_pad != (t == PAD_CELL))
                return resil__fail(RESIL_E_CORRUPT, "bulkhead: cell %u holds 0x%04x", w * 4 + l,
                                   (unsigned)t);
            if (is_pad || t == 0)
                continue;
            if ((t >> 8) == 0 || (t >> 8) > k->cfg.max_processes)
                return resil__fail(RESIL_E_CORRUPT, "bulkhead: cell %u names record %u of %u",
                                   w * 4 + l, (unsigned)(t >> 8), k->cfg.max_processes);
            if (quiescent && !tag_valid(k, t))
                return resil__fail(RESIL_E_CORRUPT,
                                   "bulkhead: cell %u is held by a reclaimed record", w * 4 + l);
            n++;
        }
    }
    *in_flight = n;
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
    uint32_t n;
    if (s == RESIL_OK)
        s = check_cells(mem, 0, &n);
    if (s != RESIL_OK)
        return s;
    resil_bulkhead_t *h = NULL;
    s = make_handle(mem, local, 0, &h);
    if (s != RESIL_OK)
        return s;
    s = register_self(h);
    if (s != RESIL_OK) {
        resil__free(&h->by, h, h->alloc_size);
        return s;
    }
    *out = h;
    return RESIL_OK;
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
    if (s == RESIL_OK)
        s = register_self(h);
    if (s != RESIL_OK) {
        resil__free(&h->by, h, h->alloc_size);
        return s;
    }
    *out = h;
    return RESIL_OK;
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
    for (uint32_t s = 0; s <= k->cfg.stripes; s++) {
        const line *st = &lines(k)[s];
        out->granted += resil__a64_load_relaxed(&st->granted);
        out->rejected += resil__a64_load_relaxed(&st->rejected);
        out->timed_out += resil__a64_load_relaxed(&st->timed_out);
        out->reclaimed += resil__a64_load_relaxed(&st->reclaimed);
    }
    uint32_t n = 0;
    if (check_cells(k, 0, &n) != RESIL_OK)
        n = 0;
    out->in_flight = n;
    /* derived (see the top comment); a crash can leave granted short */
    out->released = out->granted > out->reclaimed + n ? out->granted - out->reclaimed - n : 0;
    uint64_t p = resil__a64_load_relaxed(&k->peak);
    out->peak = (uint32_t)(p > n ? p : n);
    uint32_t head = resil__a32_load_acquire(&k->wq_head);
    out->waiting = resil__a32_load_acquire(&k->wq_tail) - head;
    for (uint32_t i = 0; i < k->cfg.max_processes; i++)
        out->processes += rec_state(resil__a64_load_relaxed(&records(k)[i])) != REC_FREE;
    return RESIL_OK;
}

resil_status resil_bulkhead_check(const resil_bulkhead_t *h, int quiescent)
{
    if (h == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "bulkhead_check: handle is NULL");
    const block *k = h->blk;
    uint32_t n;
    resil_status s = check_cells(k, quiescent, &n);
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
    for (uint32_t i = 0; i < k->cfg.max_processes; i++)
        if (rec_state(resil__a64_load_relaxed(&records(k)[i])) == 3)
            return resil__fail(RESIL_E_CORRUPT, "bulkhead: record %u has state 3", i);
    return RESIL_OK;
}
