/*
 * Fuzz target: the bulkhead (resil/bulkhead.h), through its public API and
 * documented behaviour only (its internals are free to change).
 *
 * Configuration: every field from the input, edges included; config_check
 * and size must agree with the header's ranges, size with
 * RESIL_BULKHEAD_SIZE(); refused inits leave caller memory untouched; new
 * and attach with an allocation failure return RESIL_E_NO_MEMORY and no
 * handle.
 *
 * API sequences in one thread, against a model: bulkhead A in caller
 * memory with two handles on it, bulkhead B from _new. Operations:
 * try_acquire; acquire_wait on a manual clock (times out after its wait,
 * or is refused at once when it may not queue); release of a held permit,
 * of the same struct twice, of a copy after the original (and the other
 * way round), of a permit of the other bulkhead, through the other handle,
 * of structs the input forged (random bytes, or a real permit with a field
 * changed), of the struct a refused acquire left; reclaim of this process
 * (every permit held is then fenced: RESIL_E_NOT_OWNER), of a pid without a
 * record, of dead processes; A's memory initialized again with another
 * config, B freed and made anew (old permits then belong to no bulkhead).
 * The model knows permits by their values: a release is RESIL_OK iff the
 * struct equals a permit still held; RESIL_E_INVALID_ARG for a struct never
 * granted, already released through itself, or of another bulkhead;
 * RESIL_E_NOT_OWNER for a permit given back through a copy or reclaimed.
 * After every step, for both bulkheads: resil_bulkhead_check(quiescent)
 * passes; stats are exact (in_flight = held <= max_concurrent, granted,
 * rejected, timed_out, released, reclaimed; peak within [in_flight,
 * max_concurrent]; nobody waiting; at most one process record); no
 * allocation except where a handle is made.
 *
 * Attach: arbitrary bytes, a forged header, a valid block (with permits
 * held) with bytes flipped, checksum optionally recomputed, length
 * shortened: a documented status; a handle it grants survives every
 * operation (statuses from the documented sets, no crash, no hang).
 *
 * Input: byte 0 picks the mode (attach surface for 1 in 8, raw config,
 * allocation failures); then the config; then two bytes per operation (op,
 * and bulkhead / handle / slot) plus the operation's own arguments.
 */
#include "fuzz_input.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resil/bulkhead.h"

/*
 * A copy of a permit released after the same process was granted that
 * cell again equals the new permit byte for byte, and the header says the
 * release then applies to it (regression-copy-release-after-regrant): the model accepts
 * either outcome when the bytes name a permit it holds.
 */

#define SLOTS 16
#define MAX_GRANTS 1100 /* 2 per step at most, and the probes */
#define MAX_INC 600     /* bulkheads made: 2, and 1 per step at most */

enum { HELD, RELEASED, RECLAIMED, GONE };

typedef struct mbulk {
    resil_bulkhead_t *h[2]; /* handles; B's two are the same */
    int inc;                /* which bulkhead made so far this one is */
    uint32_t max, max_waiters;
    uint64_t held, granted, rejected, timed_out, released, reclaimed;
} mbulk;

typedef struct grant {
    int inc, state;
    resil_bulkhead_permit_t value;
} grant;

typedef struct slot {
    resil_bulkhead_permit_t p;
    int inc;   /* the bulkhead that granted it; -1 forged or empty */
    int grant; /* index into grants, -1 forged or empty */
    int spent; /* given to release already, which answered OK or NOT_OWNER */
} slot;

typedef struct world {
    mbulk b[2];
    uint32_t inc_id[MAX_INC]; /* the id_ of each bulkhead's permits */
    int ninc;
    grant grants[MAX_GRANTS];
    int ngrants;
    slot slots[SLOTS];
    resil_manual_clock_t *mc;
    resil_bulkhead_local_t local;
    unsigned char *mem; /* A's memory, large enough for every config of A */
    size_t len;
    uint64_t aba, id_collisions;
} world;

/* Permits are equal as values: every field but the padding. */
static int same_permit(const resil_bulkhead_permit_t *a, const resil_bulkhead_permit_t *b)
{
    return a->id_ == b->id_ && a->cell_ == b->cell_ && a->tag_ == b->tag_ && a->live_ == b->live_;
}

/* The permit held from bulkhead @p inc equal to @p p, or -1. */
static int held_equal(const world *w, int inc, const resil_bulkhead_permit_t *p)
{
    for (int i = 0; i < w->ngrants; i++)
        if (w->grants[i].inc == inc && w->grants[i].state == HELD &&
            same_permit(&w->grants[i].value, p))
            return i;
    return -1;
}

static void expect_same(const world *w, const char *what)
{
    for (int bk = 0; bk < 2; bk++) {
        const mbulk *m = &w->b[bk];
        MUST(resil_bulkhead_check(m->h[0], 1) == RESIL_OK, "%s: check(%c): %s", what, 'A' + bk,
             resil_status_detail());
        resil_bulkhead_stats_t s;
        MUST(resil_bulkhead_stats(m->h[0], &s) == RESIL_OK, "stats");
        MUST(s.max_concurrent == m->max && s.in_flight == m->held &&
                 s.in_flight <= s.max_concurrent,
             "%s: %c in flight %u of %u, model %llu of %u", what, 'A' + bk, s.in_flight,
             s.max_concurrent, (unsigned long long)m->held, m->max);
        MUST(s.granted == m->granted && s.rejected == m->rejected && s.timed_out == m->timed_out &&
                 s.released == m->released && s.reclaimed == m->reclaimed,
             "%s: %c granted %llu rejected %llu timed out %llu released %llu reclaimed %llu; "
             "model %llu %llu %llu %llu %llu",
             what, 'A' + bk, (unsigned long long)s.granted, (unsigned long long)s.rejected,
             (unsigned long long)s.timed_out, (unsigned long long)s.released,
             (unsigned long long)s.reclaimed, (unsigned long long)m->granted,
             (unsigned long long)m->rejected, (unsigned long long)m->timed_out,
             (unsigned long long)m->released, (unsigned long long)m->reclaimed);
        MUST(s.peak >= s.in_flight && s.peak <= s.max_concurrent, "%s: peak %u", what, s.peak);
        MUST(s.waiting == 0, "%s: %u waiting in one thread", what, s.waiting);
        MUST(s.processes <= 1 && (m->held == 0 || s.processes == 1), "%s: %u process records", what,
             s.processes);
    }
}

/* Records a grant from bulkhead @p bk into slot @p si. */
static void granted(world *w, int bk, int si, const resil_bulkhead_permit_t *p)
{
    mbulk *m = &w->b[bk];
    MUST(m->held < m->max, "%c: granted with %llu of %u held", 'A' + bk,
         (unsigned long long)m->held, m->max);
    MUST(held_equal(w, m->inc, p) < 0, "%c: a permit equal to one still held", 'A' + bk);
    MUST(w->ngrants < MAX_GRANTS, "more grants than steps");
    m->held++;
    m->granted++;
    grant *g = &w->grants[w->ngrants];
    g->inc = m->inc;
    g->state = HELD;
    g->value = *p;
    slot *s = &w->slots[si];
    s->p = *p;
    s->inc = m->inc;
    s->grant = w->ngrants++;
    s->spent = 0;
}

/* Bulkhead @p bk was just made (handles in place): a new model, whose
 * permits' id_ a probe permit tells. */
static void made(world *w, int bk, uint32_t max, uint32_t max_waiters)
{
    mbulk *m = &w->b[bk];
    m->max = max;
    m->max_waiters = max_waiters;
    m->held = m->granted = m->rejected = m->timed_out = m->released = m->reclaimed = 0;
    MUST(w->ninc < MAX_INC, "more bulkheads than steps");
    m->inc = w->ninc++;
    resil_bulkhead_permit_t p;
    MUST(resil_bulkhead_try_acquire(m->h[0], &p) == RESIL_OK, "probe: %s", resil_status_detail());
    w->inc_id[m->inc] = p.id_;
    MUST(resil_bulkhead_release(m->h[0], &p) == RESIL_OK, "probe release");
    m->granted = m->released = 1;
    for (int i = 0; i < m->inc; i++)
        w->id_collisions += w->inc_id[i] == p.id_;
}

/* Makes A anew in its memory, or B with _new; what the old one had out is
 * gone. */
static void remake(world *w, int bk, const resil_bulkhead_config_t *c)
{
    mbulk *m = &w->b[bk];
    for (int i = 0; i < w->ngrants; i++)
        if (w->grants[i].inc == m->inc && w->grants[i].state == HELD)
            w->grants[i].state = GONE;
    resil_bulkhead_free(m->h[0]);
    if (bk == 0) {
        resil_bulkhead_free(m->h[1]);
        MUST(resil_bulkhead_init(w->mem, w->len, c) == RESIL_OK, "init: %s", resil_status_detail());
        for (int hi = 0; hi < 2; hi++)
            MUST(resil_bulkhead_attach(w->mem, w->len, &w->local, &m->h[hi]) == RESIL_OK,
                 "attach: %s", resil_status_detail());
    } else {
        MUST(resil_bulkhead_new(c, &w->local, &m->h[0]) == RESIL_OK, "new: %s",
             resil_status_detail());
        m->h[1] = m->h[0];
    }
    made(w, bk, c->max_concurrent, c->max_waiters);
}

/* A struct the input forged: random bytes, or a permit with a field
 * changed. */
static void forge(fz_in *in, world *w, slot *s)
{
    uint8_t how = fz_u8(in);
    const slot *src = &w->slots[fz_u8(in) % SLOTS];
    s->p = src->p;
    uint32_t v = (uint32_t)fz_bytes(in, 4);
    switch (how % 6) {
    case 0:
        memset(&s->p, 0, sizeof s->p);
        s->p.id_ = v;
        s->p.cell_ = (uint32_t)fz_bytes(in, 4);
        s->p.tag_ = (uint16_t)fz_bytes(in, 2);
        s->p.live_ = (uint16_t)fz_bytes(in, 2);
        break;
    case 1:
        s->p.id_ ^= v | 1;
        break;
    case 2:
        s->p.cell_ ^= how & 0x80 ? v | 1 : 1 + v % 8;
        break;
    case 3:
        s->p.tag_ ^= (uint16_t)(v | 1);
        break;
    case 4:
        s->p.live_ ^= (uint16_t)(v | 1);
        break;
    default:
        s->p.pad_ ^= v | 1;
        break;
    }
    s->inc = -1;
    s->grant = -1;
    s->spent = 0;
}

/* Releases slot @p si through handle @p hi of bulkhead @p bk and checks the
 * answer against the header's rules. */
static void release(world *w, int bk, int hi, int si)
{
    slot *s = &w->slots[si];
    mbulk *m = &w->b[bk];
    resil_bulkhead_permit_t before = s->p;
    int cur = m->inc, match = held_equal(w, cur, &before);
    int foreign = s->inc >= 0 && s->inc != cur;
    resil_status got = resil_bulkhead_release(m->h[hi], &s->p);
    const char *why;
    int ok_allowed = 0, inval_allowed = 0, not_owner_allowed = 0, ok_required = 0;
    if (foreign && w->inc_id[s->inc] != w->inc_id[cur]) {
        why = "a permit of another bulkhead";
        inval_allowed = 1;
    } else if (foreign || s->inc < 0) { /* ids that collide make a permit a forgery */
        why = foreign ? "a permit of another bulkhead with the same id" : "a forged struct";
        inval_allowed = not_owner_allowed = 1;
        if (match >= 0 && before.pad_ == w->grants[match].value.pad_)
            ok_required = ok_allowed = 1; /* it is a copy of a held permit */
        else
            ok_allowed = match >= 0; /* equal but for the padding */
    } else if (s->spent) {
        why = "a struct already released";
        inval_allowed = not_owner_allowed = 1;
        ok_allowed = match >= 0;
    } else if (w->grants[s->grant].state == HELD) {
        why = "a held permit";
        MUST(match == s->grant, "a held permit is not the value it was granted as");
        ok_required = ok_allowed = 1;
    } else {
        why = w->grants[s->grant].state == RECLAIMED ? "a reclaimed permit"
                                                     : "a copy of a permit given back";
        not_owner_allowed = 1;
        ok_allowed = match >= 0;
    }
    MUST((got == RESIL_OK && ok_allowed) || (got == RESIL_E_INVALID_ARG && inval_allowed) ||
             (got == RESIL_E_NOT_OWNER && not_owner_allowed),
         "release of %s to %c: %s", why, 'A' + bk, resil_status_name(got));
    MUST(!ok_required || got == RESIL_OK, "release of %s to %c: %s", why, 'A' + bk,
         resil_status_name(got));
    if (got == RESIL_OK) {
        w->aba += s->inc == cur && match != s->grant;
        w->grants[match].state = RELEASED;
        m->held--;
        m->released++;
    }
    if (got == RESIL_OK || got == RESIL_E_NOT_OWNER)
        s->spent = 1;
}

/* Takes a permit into slot @p si, as the model says it must go. */
static void acquire(fz_in *in, world *w, int bk, int hi, int si, int wait)
{
    mbulk *m = &w->b[bk];
    resil_bulkhead_permit_t p;
    memset(&p, 0, sizeof p);
    resil_status got;
    if (!wait) {
        resil_status want = m->held < m->max ? RESIL_OK : RESIL_E_BULKHEAD_FULL;
        got = resil_bulkhead_try_acquire(m->h[hi], &p);
        MUST(got == want, "try_acquire on %c with %llu of %u held: %s", 'A' + bk,
             (unsigned long long)m->held, m->max, resil_status_name(got));
        if (got == RESIL_OK)
            granted(w, bk, si, &p);
        else
            m->rejected++;
    } else {
        uint64_t max_wait = RESIL_US(100) * (fz_u8(in) % 64);
        uint64_t start = resil_manual_clock_get(w->mc);
        int free_cell = m->held < m->max;
        got = resil_bulkhead_acquire_wait(m->h[hi], max_wait, &p);
        uint64_t end = resil_manual_clock_get(w->mc);
        if (free_cell) {
            MUST(got == RESIL_OK && end == start, "acquire_wait with a free permit: %s",
                 resil_status_name(got));
            granted(w, bk, si, &p);
        } else if (m->max_waiters == 0 || max_wait == 0) { /* may not queue */
            MUST(got == RESIL_E_BULKHEAD_FULL || (max_wait == 0 && got == RESIL_E_TIMEOUT),
                 "acquire_wait(%llu) on a full %c, %u waiters: %s", (unsigned long long)max_wait,
                 'A' + bk, m->max_waiters, resil_status_name(got));
            MUST(end == start, "acquire_wait that may not wait slept");
            if (got == RESIL_E_BULKHEAD_FULL)
                m->rejected++;
            else
                m->timed_out++;
        } else {
            MUST(got == RESIL_E_TIMEOUT, "acquire_wait(%llu) on a full %c: %s",
                 (unsigned long long)max_wait, 'A' + bk, resil_status_name(got));
            MUST(end >= start + max_wait, "timed out after %llu of %llu ns",
                 (unsigned long long)(end - start), (unsigned long long)max_wait);
            m->timed_out++;
        }
    }
    if (got != RESIL_OK) { /* what a refused acquire left is no permit */
        resil_status r = resil_bulkhead_release(m->h[hi], &p);
        MUST(r == RESIL_E_INVALID_ARG || r == RESIL_E_NOT_OWNER, "release after %s: %s",
             resil_status_name(got), resil_status_name(r));
    }
}

static void reclaim(fz_in *in, world *w, int bk, int hi)
{
    mbulk *m = &w->b[bk];
    uint8_t how = fz_u8(in);
    int n;
    if (how % 3 == 0) { /* this process, as a supervisor would after reaping it */
        n = resil_bulkhead_reclaim_pid(m->h[hi], (int)getpid());
        MUST(n >= 0 && (uint64_t)n == m->held, "reclaim_pid(self) on %c: %d, %llu held", 'A' + bk,
             n, (unsigned long long)m->held);
        for (int i = 0; i < w->ngrants; i++)
            if (w->grants[i].inc == m->inc && w->grants[i].state == HELD)
                w->grants[i].state = RECLAIMED;
        m->reclaimed += m->held;
        m->held = 0;
    } else if (how % 3 == 1) { /* a process without a record */
        n = resil_bulkhead_reclaim_pid(m->h[hi], (int)getppid());
        MUST(n == 0, "reclaim_pid(parent): %d", n);
        MUST(resil_bulkhead_reclaim_pid(m->h[hi], 0) < 0, "reclaim_pid(0)");
    } else { /* nobody is dead */
        n = resil_bulkhead_reclaim_dead(m->h[hi]);
        MUST(n == 0, "reclaim_dead: %d", n);
    }
}

static int config_valid(const resil_bulkhead_config_t *c)
{
    return c->max_concurrent >= 1 && c->max_concurrent <= RESIL_BULKHEAD_MAX_CONCURRENT &&
           c->max_processes >= 1 && c->max_processes <= RESIL_BULKHEAD_MAX_PROCESSES &&
           c->max_waiters <= RESIL_BULKHEAD_MAX_WAITERS && c->stripes >= 1 && c->stripes <= 64 &&
           (c->stripes & (c->stripes - 1)) == 0;
}

static void config_surface(const resil_bulkhead_config_t *c, int valid)
{
    resil_status s = resil_bulkhead_config_check(c);
    MUST(s == (valid ? RESIL_OK : RESIL_E_INVALID_CONFIG), "config_check: %s, model %d",
         resil_status_name(s), valid);
    size_t size = resil_bulkhead_size(c);
    MUST(valid ? size > 0 && size % 64 == 0 &&
                     size <= RESIL_BULKHEAD_SIZE(c->max_concurrent, c->max_processes,
                                                 c->max_waiters, c->stripes)
               : size == 0,
         "size %zu for a %s config", size, valid ? "valid" : "invalid");
    size_t len = valid ? size : 4096;
    unsigned char *mem = fz_block(len + 64), *copy = fz_block(len + 64);
    memset(mem, 0x5A, len + 64);
    memcpy(copy, mem, len + 64);
    if (valid) {
        MUST(resil_bulkhead_init(mem, len - 1, c) == RESIL_E_INVALID_ARG, "init: short");
        MUST(resil_bulkhead_init(mem + 32, len, c) == RESIL_E_INVALID_ARG, "init: misaligned");
    } else {
        MUST(resil_bulkhead_init(mem, len, c) == RESIL_E_INVALID_CONFIG, "init: invalid");
        resil_bulkhead_t *b = (resil_bulkhead_t *)1;
        MUST(resil_bulkhead_new(c, NULL, &b) == RESIL_E_INVALID_CONFIG && b == NULL, "new");
    }
    MUST(memcmp(mem, copy, len + 64) == 0, "a refused init wrote to memory");
    free(mem);
    free(copy);
}

static void null_surface(void)
{
    resil_bulkhead_permit_t p;
    memset(&p, 0, sizeof p);
    MUST(resil_bulkhead_config_check(NULL) == RESIL_E_INVALID_ARG, "config_check(NULL)");
    MUST(resil_bulkhead_size(NULL) == 0, "size(NULL)");
    MUST(resil_bulkhead_try_acquire(NULL, &p) == RESIL_E_INVALID_ARG, "try(NULL)");
    MUST(resil_bulkhead_acquire_wait(NULL, 1, &p) == RESIL_E_INVALID_ARG, "wait(NULL)");
    MUST(resil_bulkhead_release(NULL, &p) == RESIL_E_INVALID_ARG, "release(NULL)");
    MUST(resil_bulkhead_reclaim_dead(NULL) < 0 && resil_bulkhead_reclaim_pid(NULL, 1) < 0, "NULL");
    MUST(resil_bulkhead_check(NULL, 1) == RESIL_E_INVALID_ARG, "check(NULL)");
    resil_bulkhead_stats_t s;
    MUST(resil_bulkhead_stats(NULL, &s) == RESIL_E_INVALID_ARG, "stats(NULL)");
    resil_bulkhead_free(NULL);
}

static resil_bulkhead_config_t pick_config(fz_in *in, int raw)
{
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    static const uint64_t intervals[4] = {0, RESIL_MS(1), RESIL_MS(100), UINT64_MAX};
    if (raw) {
        c.max_concurrent = (uint32_t)fz_pick(in);
        c.max_processes = (uint32_t)fz_pick(in);
        c.max_waiters = (uint32_t)fz_pick(in);
        c.stripes = (uint32_t)fz_pick(in);
        c.reclaim_interval_ns = fz_pick(in);
        return c;
    }
    uint8_t k = fz_u8(in);
    c.max_concurrent = k & 0x80 ? 1 + (uint32_t)fz_bytes(in, 2) % 300 : 1 + k % 12u;
    c.max_processes = 1 + fz_u8(in) % 4;
    c.max_waiters = fz_u8(in) % 3;
    c.stripes = 1u << fz_u8(in) % 7;
    c.reclaim_interval_ns = intervals[fz_u8(in) % 4];
    return c;
}

/* A valid bulkhead with a few permits held (by a handle since freed), for
 * attach_surface() to corrupt. */
static unsigned char *make_block(fz_in *in, size_t *len)
{
    resil_bulkhead_config_t c = pick_config(in, 0);
    *len = resil_bulkhead_size(&c);
    unsigned char *mem = fz_block(*len);
    MUST(resil_bulkhead_init(mem, *len, &c) == RESIL_OK, "init");
    resil_bulkhead_t *b = NULL;
    MUST(resil_bulkhead_attach(mem, *len, NULL, &b) == RESIL_OK, "attach");
    resil_bulkhead_permit_t p;
    for (unsigned i = fz_u8(in) % 4; i > 0; i--)
        resil_bulkhead_try_acquire(b, &p);
    resil_bulkhead_free(b);
    return mem;
}

/* Attach to bytes from the input, or to a valid block with some flipped. */
static void attach_surface(fz_in *in)
{
    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(RESIL_SEC(1000), &mc) == RESIL_OK, "manual clock");
    resil_bulkhead_local_t local = {resil_manual_clock_as_clock(mc)};
    unsigned char *at;
    size_t len;
    unsigned char *mem = fz_attach_memory(in, 8192, 4, make_block, &at, &len);
    resil_bulkhead_t *b = (resil_bulkhead_t *)1;
    resil_status s = resil_bulkhead_attach(at, len, &local, &b);
    fz_attach_answer(s, b, RESIL_E_FULL);
    if (s == RESIL_OK) { /* whatever got through survives use */
        resil_bulkhead_permit_t p[4];
        memset(p, 0, sizeof p);
        for (int i = 0; i < 12; i++) {
            resil_bulkhead_permit_t *q = &p[fz_u8(in) % 4];
            uint8_t op = fz_u8(in);
            resil_status r;
            switch (op % 6) {
            case 0:
            case 1:
                r = resil_bulkhead_try_acquire(b, q);
                MUST(r == RESIL_OK || r == RESIL_E_BULKHEAD_FULL || r == RESIL_E_FULL, "try: %s",
                     resil_status_name(r));
                break;
            case 2:
                r = resil_bulkhead_acquire_wait(b, RESIL_US(100) * (op >> 3), q);
                MUST(r == RESIL_OK || r == RESIL_E_BULKHEAD_FULL || r == RESIL_E_FULL ||
                         r == RESIL_E_TIMEOUT,
                     "wait: %s", resil_status_name(r));
                break;
            case 3:
            case 4:
                r = resil_bulkhead_release(b, q);
                MUST(r == RESIL_OK || r == RESIL_E_INVALID_ARG || r == RESIL_E_NOT_OWNER,
                     "release: %s", resil_status_name(r));
                break;
            default:
                MUST((op & 8 ? resil_bulkhead_reclaim_dead(b)
                             : resil_bulkhead_reclaim_pid(b, (int)getpid())) >= 0,
                     "reclaim");
                break;
            }
            s = resil_bulkhead_check(b, 0);
            MUST(s == RESIL_OK || s == RESIL_E_CORRUPT, "check: %s", resil_status_name(s));
        }
        resil_bulkhead_stats_t st;
        MUST(resil_bulkhead_stats(b, &st) == RESIL_OK, "stats");
        resil_bulkhead_free(b);
    }
    free(mem);
    resil_manual_clock_free(mc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in;
    int mode = fz_begin(&in, data, size, 3, attach_surface);
    if (mode < 0)
        return 0;
    null_surface();
    resil_bulkhead_config_t c = pick_config(&in, (mode & 0xC0) == 0xC0);
    int valid = config_valid(&c);
    config_surface(&c, valid);
    if (!valid || c.max_concurrent > 300) /* huge ones: configs only */
        return 0;
    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(RESIL_SEC(1000), &mc) == RESIL_OK, "manual clock");

    static world w; /* large: the model's arrays are reset by their counts */
    memset(w.b, 0, sizeof w.b);
    w.ninc = w.ngrants = 0;
    w.aba = w.id_collisions = 0;
    w.mc = mc;
    w.local.clock = resil_manual_clock_as_clock(mc);
    memset(w.slots, 0, sizeof w.slots);
    for (int i = 0; i < SLOTS; i++)
        w.slots[i].inc = w.slots[i].grant = -1;
    /* A's memory fits this config and every one pick_config() makes. */
    w.len = resil_bulkhead_size(&c);
    if (w.len < RESIL_BULKHEAD_SIZE(300, 4, 2, 64))
        w.len = RESIL_BULKHEAD_SIZE(300, 4, 2, 64);
    w.mem = fz_block(w.len);
    MUST(resil_bulkhead_init(w.mem, w.len, &c) == RESIL_OK, "init: %s", resil_status_detail());
    if (mode & 0x10) { /* allocation failures: a status and no handle */
        resil_bulkhead_t *x = (resil_bulkhead_t *)1;
        fz_heap.fail_in = 0;
        MUST(resil_bulkhead_attach(w.mem, w.len, &w.local, &x) == RESIL_E_NO_MEMORY && x == NULL,
             "attach with no memory");
        fz_heap.fail_in = 0;
        MUST(resil_bulkhead_new(&c, &w.local, &x) == RESIL_E_NO_MEMORY && x == NULL,
             "new with no memory");
    }
    for (int hi = 0; hi < 2; hi++)
        MUST(resil_bulkhead_attach(w.mem, w.len, &w.local, &w.b[0].h[hi]) == RESIL_OK, "attach: %s",
             resil_status_detail());
    made(&w, 0, c.max_concurrent, c.max_waiters);
    resil_bulkhead_config_t cb = resil_bulkhead_config_default();
    cb.max_concurrent = 1 + mode % 3;
    cb.max_processes = 2; /* B small: stats and check scan it every step */
    cb.max_waiters = 0;
    cb.stripes = 1;
    MUST(resil_bulkhead_new(&cb, &w.local, &w.b[1].h[0]) == RESIL_OK, "new");
    w.b[1].h[1] = w.b[1].h[0];
    made(&w, 1, cb.max_concurrent, cb.max_waiters);
    expect_same(&w, "fresh");

    for (int step = 0; fz_more(&in) && step < 512; step++) {
        uint8_t op = fz_u8(&in), arg = fz_u8(&in);
        int bk = arg & 0x80 ? 1 : 0, hi = arg >> 6 & 1, si = arg % SLOTS;
        uint64_t heap = fz_heap.allocs - fz_heap.frees;
        switch (op % 16) {
        case 0:
        case 1:
        case 2:
        case 3:
            acquire(&in, &w, bk, hi, si, 0);
            break;
        case 4:
            acquire(&in, &w, bk, hi, si, 1);
            break;
        case 5:
        case 6:
        case 7:
        case 8:
            release(&w, bk, hi, si);
            break;
        case 9:
        case 10: /* a copy of another slot, as a careless caller makes */
            w.slots[si] = w.slots[fz_u8(&in) % SLOTS];
            break;
        case 11:
        case 12:
            forge(&in, &w, &w.slots[si]);
            break;
        case 13:
        case 14:
            reclaim(&in, &w, bk, hi);
            break;
        default: { /* made anew: A initialized again in its memory, B freed and new */
            resil_bulkhead_config_t n = pick_config(&in, 0);
            if (bk == 1) { /* B stays small */
                n.max_concurrent = 1 + n.max_concurrent % 4;
                n.stripes = 1;
            }
            remake(&w, bk, &n);
            break;
        }
        }
        MUST(fz_heap.allocs - fz_heap.frees == heap, "step %d allocated", step);
        expect_same(&w, "step");
    }
    for (int bk = 0; bk < 2; bk++)
        resil_bulkhead_free(w.b[bk].h[0]);
    resil_bulkhead_free(w.b[0].h[1]);
    free(w.mem);
    resil_manual_clock_free(mc);
    return 0;
}
