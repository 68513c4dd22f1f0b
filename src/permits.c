/*
 * Crash-safe permits: registration, counter lines, scans and reclaim. The
 * protocol is described in src/internal/permits.h.
 */
#include "internal/permits.h"

#include <limits.h>

#include "internal/rng.h"

_Thread_local resil__pm_entry resil__pm_cache[8] __attribute__((tls_model("initial-exec")));

static uint64_t ident_norm(uint64_t ident)
{
    return resil__rec_ident(resil__rec_make(0, 0, ident));
}

/* ---- layout ---- */

uint32_t resil__pm_words(uint32_t ncells, int interleaved, uint32_t *lg)
{
    uint32_t nw = (ncells + 3) / 4;
    *lg = 0;
    if (!interleaved)
        return nw;
    /* At least one line per logical word up to 8 lines, so that a small
     * limit's cells lie in different lines; then 8 words a line. */
    uint32_t want = nw < 8 ? nw : 8;
    while ((1u << *lg) < want || (8u << *lg) < nw)
        (*lg)++;
    return 8u << *lg;
}

/* The logical cell index of lane @p l of physical word @p p. */
static uint32_t logical_cell(const resil__permits *pm, uint32_t p, uint32_t l)
{
    uint32_t w = pm->interleaved ? (p & 7) << pm->lg | p >> 3 : p;
    return w * 4 + l;
}

void resil__pm_init_cells(const resil__permits *pm)
{
    for (uint32_t p = 0; p < pm->nwords; p++) {
        uint64_t v = 0;
        for (uint32_t l = 0; l < 4; l++)
            if (logical_cell(pm, p, l) >= pm->ncells)
                v |= RESIL__PM_PAD << (16 * l);
        if (v != 0)
            resil__a64_store_relaxed(&pm->cells[p], v);
    }
}

uint32_t resil__pm_fresh_id(const void *mem)
{
    static resil__atomic_u64 seq;
    uint64_t s = resil__a64_fetch_add_relaxed(&seq, 1) ^ (uint64_t)(uintptr_t)mem ^
                 resil_clock_now(NULL) ^ resil__owner_self();
    uint32_t id = (uint32_t)resil__splitmix64_next(&s);
    return id != 0 ? id : 1;
}

/* ---- lines ---- */

int resil__pm_tag_valid(const resil__permits *pm, uint64_t tag)
{
    uint64_t idx = (tag >> 8) - 1;
    if (tag == 0 || idx >= pm->nrecords)
        return 0;
    uint64_t r = resil__a64_load_acquire(&pm->records[idx]);
    return resil__rec_state(r) == RESIL__REC_LIVE && resil__rec_epoch(r) == (tag & 0xFF);
}

void resil__pm_fill(const resil__permits *pm, resil__pm_entry *e, uint64_t tag)
{
    uint32_t t = resil__thread_index(), n = pm->nwords, S = pm->stripes;
    uint64_t mine = RESIL__PM_LINE_OWNED | tag << 32 | t;
    resil__pm_line *got = NULL;
    for (int pass = 0; pass < 2 && got == NULL && tag != 0; pass++) {
        for (uint32_t i = 0; i < S; i++) {
            resil__pm_line *l = &pm->lines[(t + i) & (S - 1)];
            uint64_t o = resil__a64_load_acquire(&l->owner);
            if (o == mine ||
                (pass == 1 && (o == 0 || !resil__pm_tag_valid(pm, (o >> 32) & 0xFFFF)) &&
                 resil__a64_cas_acq_rel(&l->owner, &o, mine))) {
                got = l;
                break;
            }
        }
    }
    /* Contiguous tables: spread threads' first words over cache lines. */
    e->start = pm->interleaved ? 0 : n >= 16 ? (t * 8 + t / (n / 8)) % n : t % n;
    e->span = 0;
    e->ln = got != NULL ? got : &pm->lines[S];
    e->own = got != NULL;
    e->tag = (uint32_t)tag;
    e->id = pm->id;
    e->key = pm->key;
}

uint64_t resil__pm_sum(const resil__permits *pm, int c)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s <= pm->stripes; s++)
        n += resil__a64_load_relaxed(&pm->lines[s].n[c]);
    return n;
}

/* ---- cells ---- */

/* Clears every cell whose tag is invalid. @return cells cleared. */
static uint32_t sweep_cells(const resil__permits *pm)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < pm->nwords; w++) {
        resil__atomic_u64 *cw = &pm->cells[w];
        uint64_t v = resil__a64_load_acquire(cw);
        for (;;) {
            uint64_t clear = 0;
            for (uint32_t l = 0; l < 4; l++) {
                uint64_t t = (v >> (16 * l)) & 0xFFFF;
                if (t != 0 && t != RESIL__PM_PAD && !resil__pm_tag_valid(pm, t))
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
        resil__a64_fetch_add_relaxed(&pm->lines[pm->stripes].n[RESIL__PM_RECLAIMED], n);
    return n;
}

resil_status resil__pm_check_cells(const resil__permits *pm, int quiescent, uint32_t *held)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < pm->nwords; w++) {
        uint64_t v = resil__a64_load_acquire(&pm->cells[w]);
        for (uint32_t l = 0; l < 4; l++) {
            uint64_t t = (v >> (16 * l)) & 0xFFFF;
            uint32_t cell = logical_cell(pm, w, l);
            int is_pad = cell >= pm->ncells;
            if (is_pad != (t == RESIL__PM_PAD))
                return resil__fail(RESIL_E_CORRUPT, "%s: cell %u holds 0x%04x", pm->name, cell,
                                   (unsigned)t);
            if (is_pad || t == 0)
                continue;
            if ((t >> 8) == 0 || (t >> 8) > pm->nrecords)
                return resil__fail(RESIL_E_CORRUPT, "%s: cell %u names record %u of %u", pm->name,
                                   cell, (unsigned)(t >> 8), pm->nrecords);
            if (quiescent && !resil__pm_tag_valid(pm, t))
                return resil__fail(RESIL_E_CORRUPT, "%s: cell %u is held by a reclaimed record",
                                   pm->name, cell);
            n++;
        }
    }
    *held = n;
    return RESIL_OK;
}

uint32_t resil__pm_held(const resil__permits *pm)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < pm->nwords; w++)
        n += resil__pm_busy_lanes(resil__a64_load_relaxed(&pm->cells[w]));
    return n - (pm->nwords * 4 - pm->ncells); /* padding cells read as busy */
}

/* ---- reclaim ---- */

/* Fences record @p i (LIVE -> RECLAIMING) if it still reads @p r, or
 * continues a reclaim left half-done; then sweeps and frees it. */
static void reclaim_record(const resil__permits *pm, uint32_t i, uint64_t r)
{
    resil__atomic_u64 *rw = &pm->records[i];
    if (resil__rec_state(r) == RESIL__REC_LIVE) {
        uint64_t fenced =
            resil__rec_make(resil__rec_epoch(r), RESIL__REC_RECLAIMING, resil__rec_ident(r));
        if (!resil__a64_cas_acq_rel(rw, &r, fenced))
            return; /* changed under us: someone else is on it */
        r = fenced;
    }
    if (resil__rec_state(r) != RESIL__REC_RECLAIMING)
        return;
    sweep_cells(pm); /* clears (i, epoch) cells: RECLAIMING makes them invalid */
    resil__a64_cas_acq_rel(rw, &r, resil__rec_make(resil__rec_epoch(r) + 1, RESIL__REC_FREE, 0));
}

int resil__pm_reclaim(resil__permits *pm, int pid, int check_alive)
{
    uint64_t before = resil__pm_sum(pm, RESIL__PM_RECLAIMED);
    for (uint32_t i = 0; i < pm->nrecords; i++) {
        uint64_t r = resil__a64_load_acquire(&pm->records[i]);
        uint32_t st = resil__rec_state(r);
        if (st == RESIL__REC_FREE)
            continue;
        resil__owner o = resil__owner_unpack(resil__rec_ident(r));
        if (pid > 0 && o.pid != (uint32_t)pid)
            continue;
        if (check_alive && st == RESIL__REC_LIVE && resil__owner_alive(o))
            continue;
        reclaim_record(pm, i, r);
    }
    sweep_cells(pm); /* orphans of fenced acquirers */
    uint64_t n = resil__pm_sum(pm, RESIL__PM_RECLAIMED) - before;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int resil__pm_maybe_reclaim(resil__permits *pm)
{
    uint64_t iv = pm->reclaim_interval_ns;
    if (iv == 0)
        return 0;
    uint64_t now = resil_clock_now(&pm->sweep_clock);
    uint64_t last = resil__a64_load_relaxed(pm->last_sweep);
    uint64_t prev = last & ~UINT64_C(1); /* stored with bit 0 set: 0 means never */
    if (last != 0 && now >= prev && now - prev < iv)
        return 0;
    if (!resil__a64_cas_relaxed(pm->last_sweep, &last, now | 1))
        return 0;
    return resil__pm_reclaim(pm, 0, 1);
}

/* ---- registration ---- */

resil_status resil__pm_register(resil__permits *pm)
{
    uint64_t me = ident_norm(resil__owner_self());
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < pm->nrecords; i++) {
            uint64_t r = resil__a64_load_acquire(&pm->records[i]);
            if (resil__rec_state(r) == RESIL__REC_LIVE && resil__rec_ident(r) == me) {
                resil__a32_store_release(&pm->reg, (i + 1) << 8 | resil__rec_epoch(r));
                return RESIL_OK;
            }
        }
        for (uint32_t i = 0; i < pm->nrecords; i++) {
            resil__atomic_u64 *rw = &pm->records[i];
            uint64_t r = resil__a64_load_acquire(rw);
            while (resil__rec_state(r) == RESIL__REC_FREE) {
                uint64_t live = resil__rec_make(resil__rec_epoch(r), RESIL__REC_LIVE, me);
                if (resil__a64_cas_acq_rel(rw, &r, live)) {
                    resil__a32_store_release(&pm->reg, (i + 1) << 8 | resil__rec_epoch(r));
                    return RESIL_OK;
                }
            }
        }
        if (pass == 0)
            resil__pm_reclaim(pm, 0, 1);
    }
    return resil__fail(RESIL_E_FULL, "%s: all %u process records belong to live processes",
                       pm->name, pm->nrecords);
}

uint64_t resil__pm_reregister(resil__permits *pm, resil_status *s)
{
    *s = resil__pm_register(pm);
    if (*s != RESIL_OK)
        return 0;
    uint64_t tag = resil__pm_tag(pm);
    if (tag == 0)
        *s = resil__fail(RESIL_E_FULL, "%s: registration lost to a reclaim", pm->name);
    return tag;
}

/* ---- inspect ---- */

uint32_t resil__pm_processes(const resil__permits *pm)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < pm->nrecords; i++)
        n += resil__rec_state(resil__a64_load_relaxed(&pm->records[i])) != RESIL__REC_FREE;
    return n;
}

resil_status resil__pm_check_records(const resil__permits *pm)
{
    for (uint32_t i = 0; i < pm->nrecords; i++)
        if (resil__rec_state(resil__a64_load_relaxed(&pm->records[i])) == 3)
            return resil__fail(RESIL_E_CORRUPT, "%s: record %u has state 3", pm->name, i);
    return RESIL_OK;
}
