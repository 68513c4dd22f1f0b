/*
 * Crash-safe permits in memory shared by worker processes: the holder
 * tracking of the bulkhead and of the adaptive limiter.
 *
 * A permit IS a cell: 16 bits in a table of u64 words (four cells a word).
 * A free cell is 0; a held cell holds the tag of its holder,
 * (record index + 1) << 8 | record epoch (8 bits). Cells that exist only to
 * fill the table are padding, 0xFFFF forever (record index 254 never
 * exists, so no tag is 0xFFFF). Granting a permit is one CAS that both
 * takes the cell and records the holder; releasing it is one CAS that
 * clears the cell only if it still holds the releaser's tag. So there is
 * never a moment where a permit is counted but not attributed, and a crash
 * at any instruction leaves every cell either free or attributed.
 *
 * Layouts: a table is contiguous (logical word w is physical word w: the
 * bulkhead) or interleaved over 2^lg cache lines (logical word w is slot
 * w >> lg of line w & (2^lg - 1): the limiter, whose admissible cells are
 * the first `limit` ones, so that even a small limit spreads its cells over
 * several lines and threads on different cores do not share one).
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
 * Counter lines: each of the first `stripes` lines is owned by one thread
 * of one process (owner word: bit 63 | cell tag << 32 | thread index,
 * claimed by one CAS when the thread first uses the block), and only its
 * owner writes it: with a plain load and store, no locked instruction, so
 * a grant costs one RMW (the cell CAS) and a release one more. A line whose
 * owner's tag is no longer valid (its process was reclaimed) can be claimed
 * again; its counts stay (they are totals). Threads that find every line
 * owned count on the last line with atomic adds, and so do reclaimers. A
 * thread that exits keeps its line until its process is reclaimed. If a
 * live process is reclaimed explicitly, one of its threads already past its
 * record check may still add to a line just claimed by another thread, and
 * one count is lost: statistics only. Each line has RESIL__PM_COUNTERS
 * counters: granted, rejected and reclaimed are the module's, the others
 * the component's.
 *
 * Everything here works on a process-local view (resil__permits) that a
 * handle builds from its validated block: pointers to the cells, records
 * and lines, and their sizes. The hot path (tag check, cache entry, cell
 * CAS, counting) is inline; registration, scans and reclaim live in
 * permits.c.
 */
#ifndef RESIL_INTERNAL_PERMITS_H
#define RESIL_INTERNAL_PERMITS_H

#include <stdint.h>

#include "atomic.h"
#include "owner.h"
#include "resil/clock.h"
#include "resil/status.h"
#include "stripe.h"
#include "util.h"

#define RESIL__PM_PAD UINT64_C(0xFFFF)
#define RESIL__PM_LANES UINT64_C(0x0001000100010001)
#define RESIL__PM_HIGHS UINT64_C(0x8000800080008000)
#define RESIL__PM_MAX_RECORDS 254
#define RESIL__PM_LINE_OWNED (UINT64_C(1) << 63)

enum { RESIL__REC_FREE = 0, RESIL__REC_LIVE = 1, RESIL__REC_RECLAIMING = 2 };

/* Counters of a line: 0, 1 and 3 are the module's; 2, 4, 5, 6 the
 * component's (the numbering keeps the bulkhead's layout version 2). */
enum { RESIL__PM_GRANTED = 0, RESIL__PM_REJECTED = 1, RESIL__PM_RECLAIMED = 3 };
#define RESIL__PM_COUNTERS 7

typedef struct resil__pm_line {
    resil__atomic_u64 owner;
    resil__atomic_u64 n[RESIL__PM_COUNTERS];
} resil__pm_line;

_Static_assert(sizeof(resil__pm_line) == 64, "a counter line is one cache line");

/* Process-local view of one block's permits. */
typedef struct resil__permits {
    const void *key;               /* the block (keys the per-thread cache) */
    resil__atomic_u64 *cells;      /* nwords physical words of four cells */
    resil__atomic_u64 *records;    /* nrecords process records */
    resil__pm_line *lines;         /* stripes owned lines, then the shared one */
    resil__atomic_u64 *last_sweep; /* lazy reclaim: last time, | 1; 0 never */
    const char *name;              /* "bulkhead", "limiter": for messages */
    uint32_t ncells, nwords, nrecords, stripes;
    uint32_t lg;          /* interleaved over 2^lg lines; 0 with interleaved = 0 */
    uint32_t interleaved; /* 1: logical word w at physical resil__pm_phys(w) */
    uint64_t reclaim_interval_ns;
    resil_clock_t sweep_clock;
    resil__atomic_u32 reg; /* (record index + 1) << 8 | epoch; 0 = not registered */
    uint32_t id;           /* the block's init id (resil__pm_fresh_id) */
} resil__permits;

/* Physical words of a table of @p ncells cells; @p interleaved also gives
 * its lg. */
uint32_t resil__pm_words(uint32_t ncells, int interleaved, uint32_t *lg);

/* Writes the padding cells of a zeroed table. */
void resil__pm_init_cells(const resil__permits *pm);

/* A fresh nonzero 32-bit id for a block at @p mem (tells permits of
 * different blocks apart). */
uint32_t resil__pm_fresh_id(const void *mem);

static inline uint32_t resil__pm_phys(const resil__permits *pm, uint32_t w)
{
    return pm->interleaved ? (w & ((1u << pm->lg) - 1)) << 3 | w >> pm->lg : w;
}

/* ---- records ---- */

static inline uint64_t resil__rec_make(uint32_t epoch, uint32_t state, uint64_t ident)
{
    uint64_t pid = (ident >> 32) & 0x3FFFFF;
    return (uint64_t)(epoch & 0xFF) << 56 | (uint64_t)state << 54 | pid << 32 | (uint32_t)ident;
}
static inline uint32_t resil__rec_epoch(uint64_t r) { return (uint32_t)(r >> 56); }
static inline uint32_t resil__rec_state(uint64_t r) { return (uint32_t)(r >> 54) & 3; }
static inline uint64_t resil__rec_ident(uint64_t r) { return (r & UINT64_C(0x003FFFFFFFFFFFFF)); }

/* Registers the calling process in a record (or finds its own), reclaiming
 * dead processes' records once if all are taken.
 * @return RESIL_OK; RESIL_E_FULL. */
resil_status resil__pm_register(resil__permits *pm);

/* The tag this thread may write, after checking the registration is
 * current (same process, record still LIVE with our epoch). 0 = no. */
static inline uint64_t resil__pm_tag(const resil__permits *pm)
{
    uint32_t reg = resil__a32_load_acquire(&pm->reg);
    uint64_t me = resil__owner_cached();
    if (RESIL__UNLIKELY(reg == 0 || me == 0))
        return 0;
    uint32_t idx = (reg >> 8) - 1;
    uint64_t r = resil__a64_load_acquire(&pm->records[idx]);
    if (RESIL__UNLIKELY(r != resil__rec_make(reg & 0xFF, RESIL__REC_LIVE, me)))
        return 0;
    return reg;
}

/* Registers (again) and returns the new tag; 0 and RESIL_E_FULL in *@p s
 * if no record can be had. */
uint64_t resil__pm_reregister(resil__permits *pm, resil_status *s);

/* resil__pm_tag(), registering first if needed. */
static inline uint64_t resil__pm_tag_slow(resil__permits *pm, resil_status *s)
{
    uint64_t tag = resil__pm_tag(pm);
    *s = RESIL_OK;
    return RESIL__LIKELY(tag != 0) ? tag : resil__pm_reregister(pm, s);
}

/* ---- per-thread cache ---- */

/* Per thread, for the last block used in each of 8 ways (picked by the
 * block's address): the counter line the thread uses and whether it owns
 * it, a start word, and the tag they were set up for (a fork or a reclaim
 * changes the tag and so refreshes the entry). Static TLS (initial-exec:
 * one %fs-relative access, no __tls_get_addr call). */
typedef struct resil__pm_entry {
    const void *key;
    resil__pm_line *ln;
    uint32_t tag;
    uint32_t id;    /* the block's init id: a block initialized again at the
                       same address (whose tags restart) is looked up anew */
    uint32_t start; /* contiguous: where scans start; interleaved: set by the user */
    uint16_t own;   /* 1: ln is owned (plain stores); 0: the shared line */
    uint16_t span;  /* interleaved: the user's (0 after a fill) */
} resil__pm_entry;

_Static_assert(sizeof(resil__pm_entry) == 32, "a cache entry is half a line");

extern _Thread_local resil__pm_entry resil__pm_cache[8] __attribute__((tls_model("initial-exec")));

static inline resil__pm_entry *resil__pm_slot(const void *key)
{
    return &resil__pm_cache[((uintptr_t)key >> 6) & 7];
}

/* Sets @p e up for @p tag: finds the thread's counter line (one it owns
 * already, else a free one or one whose owner's tag is no longer valid,
 * claimed by CAS; else the shared line). */
void resil__pm_fill(const resil__permits *pm, resil__pm_entry *e, uint64_t tag);

/* Whether cache entry @p e is set up for @p pm (this init of it) and
 * @p tag. */
static inline int resil__pm_entry_current(const resil__permits *pm, const resil__pm_entry *e,
                                          uint64_t tag)
{
    return e->key == pm->key && e->tag == tag && e->id == pm->id;
}

/* This thread's cache entry for @p pm, set up for @p tag. */
static inline resil__pm_entry *resil__pm_entry_of(const resil__permits *pm, uint64_t tag)
{
    resil__pm_entry *e = resil__pm_slot(pm->key);
    if (RESIL__UNLIKELY(!resil__pm_entry_current(pm, e, tag)))
        resil__pm_fill(pm, e, tag);
    return e;
}

/* Adds @p d to counter @p c of entry @p e's line. */
static inline void resil__pm_add(const resil__pm_entry *e, int c, uint64_t d)
{
    resil__atomic_u64 *w = &e->ln->n[c];
    if (RESIL__LIKELY(e->own))
        resil__a64_store_relaxed(w, resil__a64_load_relaxed(w) + d);
    else
        resil__a64_fetch_add_relaxed(w, d);
}

/* Counts one on counter @p c for the calling thread (the shared line when
 * it has no valid tag). */
static inline void resil__pm_count(const resil__permits *pm, int c)
{
    uint64_t tag = resil__pm_tag(pm);
    if (tag == 0)
        resil__a64_fetch_add_relaxed(&pm->lines[pm->stripes].n[c], 1);
    else
        resil__pm_add(resil__pm_entry_of(pm, tag), c, 1);
}

/* ---- cells ---- */

/* Lanes of @p v that are 0, as the high bit of each lane. */
static inline uint64_t resil__pm_zero_lanes(uint64_t v)
{
    return (v - RESIL__PM_LANES) & ~v & RESIL__PM_HIGHS;
}

/* Lanes of @p v that hold a nonzero cell: the high bit of each lane is set
 * iff the lane is nonzero; the multiply sums the four bits into the top
 * lane (no popcount instruction in the baseline x86-64 ISA). */
static inline uint32_t resil__pm_busy_lanes(uint64_t v)
{
    const uint64_t low = ~RESIL__PM_HIGHS;
    uint64_t nz = ((((v & low) + low) | v) & RESIL__PM_HIGHS) >> 15;
    return (uint32_t)((nz * RESIL__PM_LANES) >> 48);
}

/* Clears cell @p cell (physical index) if it holds @p tag.
 * @return 1 if it did; 0 if the cell holds something else (reclaimed or
 * already released): nothing changes. */
static inline int resil__pm_clear(const resil__permits *pm, uint32_t cell, uint64_t tag)
{
    resil__atomic_u64 *cw = &pm->cells[cell / 4];
    uint32_t shift = 16 * (cell % 4);
    uint64_t mask = UINT64_C(0xFFFF) << shift;
    tag <<= shift;
    uint64_t v = resil__a64_load_relaxed(cw);
    for (;;) {
        if (RESIL__UNLIKELY((v & mask) != tag))
            return 0;
        if (resil__a64_cas_acq_rel(cw, &v, v & ~mask))
            return 1;
    }
}

/* Whether a cell tag is valid now (see the protocol invariant above). */
int resil__pm_tag_valid(const resil__permits *pm, uint64_t tag);

/* Checks every cell: free, padding where padding belongs, or naming a
 * record; with @p quiescent also that its record is LIVE with its epoch.
 * @return RESIL_OK and the number held in *@p held; RESIL_E_CORRUPT. */
resil_status resil__pm_check_cells(const resil__permits *pm, int quiescent, uint32_t *held);

/* Cells held now: a count without validation (for snapshots). */
uint32_t resil__pm_held(const resil__permits *pm);

/* ---- reclaim ---- */

/* Reclaims the records (and so the cells) of processes that are dead
 * (@p check_alive) and/or have pid @p pid (> 0), then clears orphaned
 * cells. @return cells reclaimed. */
int resil__pm_reclaim(resil__permits *pm, int pid, int check_alive);

/* Lazy reclaim: at most once per interval (0 = never). @return cells
 * reclaimed. */
int resil__pm_maybe_reclaim(resil__permits *pm);

/* ---- inspect ---- */

/* The sum of counter @p c over all lines. */
uint64_t resil__pm_sum(const resil__permits *pm, int c);

/* Process records in use (not FREE). */
uint32_t resil__pm_processes(const resil__permits *pm);

/* RESIL_OK, or RESIL_E_CORRUPT if a record has the impossible state 3. */
resil_status resil__pm_check_records(const resil__permits *pm);

#endif /* RESIL_INTERNAL_PERMITS_H */
