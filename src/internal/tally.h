/*
 * Statistics counters that a thread bumps without a locked instruction.
 *
 * A tally is `n` owned counter lines followed by one shared line, n + 1
 * cache lines inside a state block (pointer-free, so it can sit in
 * MAP_SHARED memory). Each owned line belongs to one thread of one process,
 * and only that thread writes it, with a plain load and store: no lock
 * prefix, about 1 ns where an uncontended fetch_add costs about 6 (and a
 * locked instruction also waits for every store before it to drain).
 * Threads that find no free line add to the shared line with atomic adds.
 * Readers sum the lines with relaxed loads: a total is exact at quiescence.
 * Counters are statistics: no decision may read them.
 *
 * Owner word (0 = free):
 *
 *   63 one   62..41 pid (22 bits)   40..21 start time, low 20 bits
 *   20..0 thread index (resil__thread_index(); threads past 2^21 - 1 use
 *         the shared line)
 *
 * Two live threads never share an owner word: a pid is unique among live
 * processes (of one pid namespace), thread indices within one. A line is
 * claimed by one CAS and kept for the thread's life (a thread that exits
 * keeps it); counts are totals and stay with the line when it changes
 * hands. Lines of dead processes are taken back lazily: a thread that
 * finds no free line checks the liveness of one owner (a few system calls
 * reading /proc), at most once per second per tally (coarse clock, kept in
 * the shared line's owner word). A check that calls a live owner dead is
 * impossible (pid + start time), so a line never has two writers, except
 * across pid namespaces sharing memory.
 *
 * Each thread caches its line per tally in static TLS (8 ways, keyed by
 * the tally's address; initial-exec, so one %fs-relative access). The
 * entry also holds the process identity, so a forked child, whose identity
 * differs, looks up a line of its own, and the line's owner word, which
 * each add compares, so a tally initialized again at the same address is
 * looked up anew.
 */
#ifndef RESIL_INTERNAL_TALLY_H
#define RESIL_INTERNAL_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "owner.h"
#include "util.h"

/* Counters per line. */
#define RESIL__TALLY_COUNTERS 7

typedef struct resil__tally_line {
    resil__atomic_u64 owner;
    resil__atomic_u64 c[RESIL__TALLY_COUNTERS];
} resil__tally_line;

_Static_assert(sizeof(resil__tally_line) == 64, "a tally line is one cache line");

/* Bytes of a tally with @p n owned lines. */
#define RESIL__TALLY_BYTES(n) (((size_t)(n) + 1) * sizeof(resil__tally_line))

typedef struct resil__tally_tl {
    const resil__tally_line *tally;
    uint64_t me;  /* process identity the entry was made for */
    uintptr_t ln; /* the line; bit 0 set = owned */
    uint64_t own; /* owned: the line's owner word (0 = the shared line) */
} resil__tally_tl;

#define RESIL__TALLY_WAYS 8

extern _Thread_local resil__tally_tl resil__tally_tls[RESIL__TALLY_WAYS]
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

/* Slow path of resil__tally_add(): finds or claims this thread's line of
 * tally @p t (n owned lines) and fills @p e. */
void resil__tally_fill(resil__tally_line *t, uint32_t n, resil__tally_tl *e);

/* Adds @p v to counter @p i of this thread's line of tally @p t. */
static inline void resil__tally_add(resil__tally_line *t, uint32_t n, uint32_t i, uint64_t v)
{
    resil__tally_tl *e = &resil__tally_tls[((uintptr_t)t >> 6) & (RESIL__TALLY_WAYS - 1)];
    uint64_t me = resil__owner_cached();
    if (RESIL__UNLIKELY(e->tally != t || e->me != me || me == 0))
        resil__tally_fill(t, n, e);
    resil__tally_line *l = (resil__tally_line *)(e->ln & ~(uintptr_t)1);
    /* An owned line must still name this thread: a tally initialized
     * again at the same address has freed it (one load, on the line the
     * store goes to). */
    if (RESIL__UNLIKELY((e->ln & 1) && resil__a64_load_relaxed(&l->owner) != e->own)) {
        resil__tally_fill(t, n, e);
        l = (resil__tally_line *)(e->ln & ~(uintptr_t)1);
    }
    resil__atomic_u64 *c = &l->c[i];
    if (RESIL__LIKELY(e->ln & 1))
        resil__a64_store_relaxed(c, resil__a64_load_relaxed(c) + v);
    else
        resil__a64_fetch_add_relaxed(c, v);
}

/* Sum of counter @p i over every line of tally @p t. */
uint64_t resil__tally_sum(const resil__tally_line *t, uint32_t n, uint32_t i);

#endif /* RESIL_INTERNAL_TALLY_H */
