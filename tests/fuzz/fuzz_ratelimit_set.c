/*
 * Fuzz target: the keyed rate-limit set (resil_ratelimit_set_* in
 * resil/ratelimit.h).
 *
 * Configuration: the per-key rate, capacity and probe from the input,
 * edges included; config_check and size must agree with the header's
 * rules (rate rules as for the single limiter, capacity a power of two in
 * 8..2^24, probe in 1..min(64, capacity)).
 *
 * Keys of any bytes and length: empty (with a NULL or a non-NULL
 * pointer), bytes from the input with embedded NULs, prefixes and
 * one-byte variants of earlier keys, and long ones (up to 8 KiB). Every
 * key is passed in a heap buffer of exactly its length, so ASan sees any
 * read past it.
 *
 * Decisions: each key has its own reference model (tests/fuzz/gcra_model.h).
 * The table itself is not modeled (where a key lands depends on a hash the
 * header does not specify), so the target tracks what the header promises
 * about it. A key still being limited (TAT in the future) keeps its entry;
 * an idle one may lose it at any claim by another key, and coming back is
 * then the same as being new. A key whose entry may be gone is therefore
 * modeled by two candidate states, its own and a fresh one, and the
 * library's answer must match one of them (candidates that disagree with
 * it are dropped). Under a clock that never steps back the two are
 * equivalent, and then every candidate must give the same answer: the set
 * behaves exactly as independent limiters. RESIL_E_FULL is allowed only for
 * a key whose entry may be gone, and with a monotonic clock only when at
 * least `probe` other keys are being limited; when probe == capacity it is
 * exact: FULL iff every entry holds a limited key. Counters (admitted,
 * rejected, full) must be exact; used + evictions (entries ever claimed)
 * must lie between the number of keys seen and the number of requests that
 * could have claimed one; used <= capacity; no allocation after creation;
 * resil_ratelimit_set_check() passes after every step.
 *
 * Attach: arbitrary bytes, a forged header, a valid set with bytes
 * flipped: a documented status; a granted handle makes decisions without
 * crashing and its check returns OK or RESIL_E_CORRUPT.
 */
#include "fuzz_input.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcra_model.h"
#include "resil/ratelimit.h"

#define MAX_KEYS 48
#define MAX_CANDS 8
#define LONG_KEY 8192 /* longer ones hash the same way, only slower */

typedef struct mkey {
    unsigned char *bytes; /* exactly len bytes; NULL when len is 0 */
    size_t len;
    int seen;      /* a request got past FULL: it holds or held an entry */
    int maybe_out; /* its entry may be gone (or it never had one) */
    int unknown;   /* state no longer tracked (see decide) */
    int ncand;     /* candidate states, one unless maybe_out */
    gm_state cand[MAX_CANDS];
} mkey;

typedef struct world {
    gm_params p;
    uint32_t capacity, probe;
    int monotonic;
    mkey keys[MAX_KEYS];
    int nkeys;
    uint64_t admitted, rejected, full, claims_max;
} world;

static int key_eq(const mkey *k, const unsigned char *b, size_t len)
{
    return k->len == len && (len == 0 || memcmp(k->bytes, b, len) == 0);
}

/* The key with these bytes, added if new (the last one when the model is
 * full). */
static mkey *key_intern(world *w, const unsigned char *b, size_t len)
{
    for (int i = 0; i < w->nkeys; i++)
        if (key_eq(&w->keys[i], b, len))
            return &w->keys[i];
    if (w->nkeys == MAX_KEYS)
        return &w->keys[MAX_KEYS - 1];
    mkey *k = &w->keys[w->nkeys++];
    memset(k, 0, sizeof *k);
    k->len = len;
    if (len > 0) {
        k->bytes = malloc(len);
        MUST(k->bytes != NULL, "malloc");
        memcpy(k->bytes, b, len);
    }
    k->maybe_out = 1;
    k->ncand = 1; /* a fresh state */
    return k;
}

/* A key: an earlier one, or new bytes of some shape. */
static mkey *pick_key(fz_in *in, world *w)
{
    uint8_t k = fz_u8(in);
    if (w->nkeys > 0 && k % 8 < 3)
        return &w->keys[fz_u8(in) % w->nkeys];
    static unsigned char buf[LONG_KEY];
    size_t len = 0;
    switch (k % 8) {
    case 3: /* empty */
        break;
    case 4: /* a long one: a pattern of input bytes */
        len = 1 + (size_t)fz_bytes(in, 2) % (k & 0x80 ? LONG_KEY : 256);
        for (size_t i = 0, period = 1 + fz_u8(in) % 16; i < len; i++)
            buf[i] = i < period ? fz_u8(in) : buf[i - period];
        break;
    case 5: /* an earlier key, one byte longer, shorter or different */
        if (w->nkeys > 0) {
            const mkey *o = &w->keys[fz_u8(in) % w->nkeys];
            len = o->len;
            if (len > 0)
                memcpy(buf, o->bytes, len);
            uint8_t how = fz_u8(in);
            if (how % 3 == 0 && len < LONG_KEY)
                buf[len++] = how >> 2 & 1 ? 0 : fz_u8(in);
            else if (how % 3 == 1 && len > 0)
                len--;
            else if (len > 0)
                buf[fz_u8(in) % len] ^= (uint8_t)(1 + (how >> 2));
            break;
        }
        /* fall through */
    default: /* short bytes from the input */
        len = fz_u8(in) % 24;
        for (size_t i = 0; i < len; i++)
            buf[i] = fz_u8(in);
        break;
    }
    return key_intern(w, buf, len);
}

static uint64_t min_tat(const mkey *k)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < k->ncand; i++)
        if (gm_tat(&k->cand[i]) < m)
            m = gm_tat(&k->cand[i]);
    return m;
}

/* Keys other than @p self certainly holding an entry with TAT > now. */
static uint32_t limited_others(const world *w, const mkey *self, uint64_t now)
{
    uint32_t n = 0;
    for (int i = 0; i < w->nkeys; i++) {
        const mkey *k = &w->keys[i];
        n += k != self && !k->maybe_out && !k->unknown && min_tat(k) > now;
    }
    return n;
}

/* Checks the library's answer @p got (wait @p gw, if @p wait_known) to n
 * cells for @p k at @p now against the model, and advances the model. */
static void decide(world *w, mkey *k, uint64_t n, uint64_t now, resil_status got, uint64_t gw,
                   int wait_known)
{
    MUST(got == RESIL_OK || got == RESIL_E_RATE_LIMITED || got == RESIL_E_FULL, "status %s",
         resil_status_name(got));
    if (got == RESIL_E_FULL) {
        w->full++;
        if (k->unknown)
            return;
        MUST(k->maybe_out, "FULL for a key that holds an entry (len %zu)", k->len);
        if (w->monotonic) {
            uint32_t lim = limited_others(w, k, now);
            MUST(lim >= w->probe, "FULL with only %u keys limited, probe %u", lim, w->probe);
        }
        return;
    }
    if (w->monotonic && w->probe == w->capacity && !k->unknown)
        MUST(limited_others(w, k, now) < w->capacity, "not FULL with every entry limited");
    if (got == RESIL_OK)
        w->admitted += n;
    else
        w->rejected++;
    if (k->maybe_out) {
        w->claims_max++;
        /* This request may claim an entry, and may evict any idle key. */
        for (int i = 0; i < w->nkeys; i++) {
            mkey *o = &w->keys[i];
            if (o != k && !o->maybe_out && min_tat(o) <= now) {
                o->maybe_out = 1;
                if (o->ncand < MAX_CANDS) {
                    memset(&o->cand[o->ncand], 0, sizeof o->cand[0]);
                    o->ncand++;
                } else {
                    o->unknown = 1;
                }
            }
        }
    }
    int was_out = k->maybe_out;
    k->seen = 1;
    k->maybe_out = 0;
    if (k->unknown)
        return;
    gm_state next[MAX_CANDS];
    int nn = 0, nmatch = 0;
    for (int i = 0; i < k->ncand; i++) {
        gm_state s = k->cand[i];
        uint64_t mw;
        int fresh = gm_tat(&s) == 0;
        resil_status want = gm_decide(&w->p, &s, n, 0, now, &mw) ? RESIL_OK : RESIL_E_RATE_LIMITED;
        if (want == RESIL_E_RATE_LIMITED)
            gm_check_wait(&w->p, &s, n, now, mw);
        else
            mw = 0;
        int match = want == got && (mw == gw || !wait_known);
        MUST(match || !w->monotonic || k->ncand == 1 || nmatch == 0,
             "monotonic clock: candidates of one key disagree");
        if (!match)
            continue;
        nmatch++;
        if (want == RESIL_E_RATE_LIMITED && mw == UINT64_MAX && fresh && was_out) {
            /* A new entry that rejected keeps the TAT of the idle key it
             * took over (any value <= now): no longer a single state. */
            k->unknown = !w->monotonic;
        }
        int dup = 0;
        for (int j = 0; j < nn; j++)
            dup |= gm_tat(&next[j]) == gm_tat(&s);
        if (!dup)
            next[nn++] = s;
    }
    if (nmatch == 0) {
        gm_state c = k->cand[0];
        uint64_t mw;
        int ok = gm_decide(&w->p, &c, n, 0, now, &mw);
        MUST(0, "key (len %zu) at %llu, n %llu: got %s wait %llu; model (%d states): %s wait %llu",
             k->len, (unsigned long long)now, (unsigned long long)n, resil_status_name(got),
             (unsigned long long)gw, k->ncand, ok ? "admit" : "reject",
             (unsigned long long)(ok ? 0 : mw));
    }
    MUST(!w->monotonic || nmatch == k->ncand, "monotonic clock: candidates disagree");
    memcpy(k->cand, next, sizeof next[0] * (size_t)nn);
    k->ncand = nn;
}

static void expect_same(const resil_ratelimit_set_t *s, const world *w, uint64_t now)
{
    MUST(resil_ratelimit_set_check(s) == RESIL_OK, "check: %s", resil_status_detail());
    resil_ratelimit_set_stats_t st;
    MUST(resil_ratelimit_set_stats(s, &st) == RESIL_OK, "stats");
    MUST(st.capacity == w->capacity, "capacity %u, configured %u", st.capacity, w->capacity);
    MUST(st.admitted == w->admitted && st.rejected == w->rejected && st.full == w->full,
         "admitted %llu rejected %llu full %llu, model %llu %llu %llu",
         (unsigned long long)st.admitted, (unsigned long long)st.rejected,
         (unsigned long long)st.full, (unsigned long long)w->admitted,
         (unsigned long long)w->rejected, (unsigned long long)w->full);
    uint64_t seen = 0;
    for (int i = 0; i < w->nkeys; i++)
        seen += w->keys[i].seen;
    uint64_t claims = (uint64_t)st.used + st.evictions;
    MUST(st.used <= w->capacity && claims >= seen && claims <= w->claims_max,
         "used %u evictions %llu: %llu keys seen, at most %llu claims", st.used,
         (unsigned long long)st.evictions, (unsigned long long)seen,
         (unsigned long long)w->claims_max);
    if (w->monotonic)
        MUST(st.used >= limited_others(w, NULL, now), "used %u < keys being limited", st.used);
}

/* The header's rules for a set config, on top of the rate's. */
static int set_config_valid(const resil_ratelimit_set_config_t *c)
{
    gm_params p;
    return gm_params_make(&c->rate, &p) && c->capacity >= 8 &&
           c->capacity <= RESIL_RATELIMIT_SET_MAX_CAPACITY &&
           (c->capacity & (c->capacity - 1)) == 0 && c->probe >= 1 && c->probe <= 64 &&
           c->probe <= c->capacity;
}

static void config_surface(const resil_ratelimit_set_config_t *c, int valid)
{
    resil_status s = resil_ratelimit_set_config_check(c);
    MUST(s == (valid ? RESIL_OK : RESIL_E_INVALID_CONFIG), "config_check: %s, model %d",
         resil_status_name(s), valid);
    size_t size = resil_ratelimit_set_size(c);
    MUST(valid ? size >= 16 * (size_t)c->capacity && size % 64 == 0 &&
                     size <= RESIL_RATELIMIT_SET_SIZE(c->capacity)
               : size == 0,
         "size %zu for a %s config", size, valid ? "valid" : "invalid");
    if (!valid) {
        static unsigned char pattern[4096];
        unsigned char *mem = fz_block(sizeof pattern);
        memset(pattern, 0x5A, sizeof pattern);
        memcpy(mem, pattern, sizeof pattern);
        MUST(resil_ratelimit_set_init(mem, sizeof pattern, c) == RESIL_E_INVALID_CONFIG, "init");
        MUST(memcmp(mem, pattern, sizeof pattern) == 0, "a refused init wrote to memory");
        free(mem);
        resil_ratelimit_set_t *r = (resil_ratelimit_set_t *)1;
        MUST(resil_ratelimit_set_new(c, NULL, &r) == RESIL_E_INVALID_CONFIG && r == NULL, "new");
    }
}

static void null_surface(void)
{
    uint64_t w;
    MUST(resil_ratelimit_set_config_check(NULL) == RESIL_E_INVALID_ARG, "config_check(NULL)");
    MUST(resil_ratelimit_set_size(NULL) == 0, "size(NULL)");
    MUST(resil_ratelimit_set_try_acquire_at(NULL, "k", 1, 1, 0, &w) == RESIL_E_INVALID_ARG, "NULL");
    MUST(resil_ratelimit_set_try_acquire(NULL, "k", 1, 1, &w) == RESIL_E_INVALID_ARG, "NULL");
    MUST(resil_ratelimit_set_check(NULL) == RESIL_E_INVALID_ARG, "check(NULL)");
    resil_ratelimit_set_stats_t st;
    MUST(resil_ratelimit_set_stats(NULL, &st) == RESIL_E_INVALID_ARG, "stats(NULL)");
    resil_ratelimit_set_free(NULL);
}

/* Initializes the caller memory @p mem (@p len bytes) again, with a config
 * from the input that fits; every key is then new. */
static void reinit(fz_in *in, world *w, unsigned char *mem, size_t len)
{
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    c.rate = gm_pick_config(in, 1);
    c.capacity = 8u << fz_u8(in) % 5;
    c.probe = 1;
    while (resil_ratelimit_set_size(&c) > len)
        c.capacity /= 2;
    uint8_t p = fz_u8(in);
    c.probe = p & 1 ? c.capacity : 1 + p / 2 % c.capacity;
    if (c.probe > 64)
        c.probe = 64;
    MUST(resil_ratelimit_set_init(mem, len, &c) == RESIL_OK, "init again: %s",
         resil_status_detail());
    MUST(gm_params_make(&c.rate, &w->p), "a config that works did not");
    w->capacity = c.capacity;
    w->probe = c.probe;
    w->admitted = w->rejected = w->full = w->claims_max = 0;
    for (int i = 0; i < w->nkeys; i++) {
        mkey *k = &w->keys[i];
        k->seen = k->unknown = 0;
        k->maybe_out = k->ncand = 1;
        memset(k->cand, 0, sizeof k->cand);
    }
}

static void run_ops(fz_in *in, world *w, resil_ratelimit_set_t *s, unsigned char *mem, size_t len,
                    resil_manual_clock_t *mc)
{
    resil_ratelimit_local_t local = {resil_manual_clock_as_clock(mc)};
    uint64_t now = fz_pick(in);
    for (int step = 0; fz_more(in) && step < 512; step++) {
        uint8_t op = fz_u8(in);
        uint64_t heap = fz_heap.allocs - fz_heap.frees, gw = 777;
        switch (op % 16) {
        case 6:
        case 7:
        case 8: { /* time moves (never back with a monotonic clock) */
            const mkey *k = w->nkeys > 0 ? &w->keys[fz_u8(in) % w->nkeys] : NULL;
            uint64_t t = gm_move_time(in, &w->p, k != NULL ? min_tat(k) : 0, now);
            now = w->monotonic && t < now ? now : t;
            break;
        }
        case 9: { /* on the handle's clock */
            mkey *k = pick_key(in, w);
            uint64_t n = gm_pick_n(in, &w->p);
            resil_manual_clock_set(mc, now);
            resil_status got = resil_ratelimit_set_try_acquire(s, k->bytes, k->len, n, &gw);
            decide(w, k, n, now, got, gw, 1);
            break;
        }
        case 10: { /* requests refused before any key is looked at */
            mkey *k = pick_key(in, w);
            uint64_t bad[3] = {0, w->p.burst + 1, UINT64_MAX};
            uint8_t how = fz_u8(in);
            resil_status got =
                how & 1 ? resil_ratelimit_set_try_acquire_at(s, NULL, 1 + how, 1, now, &gw)
                        : resil_ratelimit_set_try_acquire_at(s, k->bytes, k->len, bad[how / 2 % 3],
                                                             now, &gw);
            MUST(got == RESIL_E_INVALID_ARG, "a bad request got %s", resil_status_name(got));
            break;
        }
        case 11: /* another handle on the same memory carries on, or the memory
                  * is initialized again, with another config */
            if (mem != NULL) {
                if (op & 0x40)
                    reinit(in, w, mem, len);
                resil_ratelimit_set_t *s2 = NULL;
                MUST(resil_ratelimit_set_attach(mem, len, &local, &s2) == RESIL_OK, "re-attach: %s",
                     resil_status_detail());
                resil_ratelimit_set_free(s);
                s = s2;
            }
            break;
        default: { /* a decision; the empty key is also passed with a pointer */
            mkey *k = pick_key(in, w);
            uint64_t n = op % 16 < 4 ? 1 : gm_pick_n(in, &w->p);
            const void *kb = k->len == 0 && (op & 0x80) ? (const void *)"" : k->bytes;
            resil_status got =
                resil_ratelimit_set_try_acquire_at(s, kb, k->len, n, now, op & 0x40 ? NULL : &gw);
            decide(w, k, n, now, got, gw, !(op & 0x40));
            break;
        }
        }
        MUST(fz_heap.allocs - fz_heap.frees == heap, "step %d allocated", step);
        expect_same(s, w, now);
    }
    resil_ratelimit_set_free(s);
}

/* A valid set, every entry in use, for attach_surface() to corrupt. */
static unsigned char *make_block(fz_in *in, size_t *len)
{
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    c.capacity = 8u << fz_u8(in) % 4;
    c.probe = 1 + fz_u8(in) % c.capacity;
    if (c.probe > 64)
        c.probe = 64;
    *len = resil_ratelimit_set_size(&c);
    unsigned char *mem = fz_block(*len);
    MUST(resil_ratelimit_set_init(mem, *len, &c) == RESIL_OK, "init");
    resil_ratelimit_set_t *s = NULL;
    MUST(resil_ratelimit_set_attach(mem, *len, NULL, &s) == RESIL_OK, "attach");
    for (uint64_t i = 0; i < c.capacity; i++)
        resil_ratelimit_set_try_acquire_at(s, &i, sizeof i, 1, RESIL_SEC(1), NULL);
    resil_ratelimit_set_free(s);
    return mem;
}

/* Attach to bytes from the input, or to a valid set with some flipped. */
static void attach_surface(fz_in *in)
{
    unsigned char *at;
    size_t len;
    unsigned char *mem =
        fz_attach_memory(in, RESIL_RATELIMIT_SET_SIZE(64) + 65, 9, make_block, &at, &len);
    resil_ratelimit_set_t *s = (resil_ratelimit_set_t *)1;
    resil_status st = resil_ratelimit_set_attach(at, len, NULL, &s);
    fz_attach_answer(st, s, RESIL_OK);
    if (st == RESIL_OK) {
        st = resil_ratelimit_set_check(s);
        MUST(st == RESIL_OK || st == RESIL_E_CORRUPT, "check: %s", resil_status_name(st));
        for (int i = 0; i < 8; i++) {
            uint64_t key = fz_u8(in) % 12, t = fz_pick(in), w;
            st = resil_ratelimit_set_try_acquire_at(s, &key, sizeof key, 1, t, &w);
            MUST(st == RESIL_OK || st == RESIL_E_RATE_LIMITED || st == RESIL_E_FULL, "decision: %s",
                 resil_status_name(st));
        }
        resil_ratelimit_set_stats_t sst;
        MUST(resil_ratelimit_set_stats(s, &sst) == RESIL_OK && sst.used <= sst.capacity, "stats");
        st = resil_ratelimit_set_check(s);
        MUST(st == RESIL_OK || st == RESIL_E_CORRUPT, "check: %s", resil_status_name(st));
        resil_ratelimit_set_free(s);
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in;
    int mode = fz_begin(&in, data, size, 3, attach_surface);
    if (mode < 0)
        return 0;
    null_surface();
    static world w;
    memset(&w, 0, sizeof w);
    resil_ratelimit_set_config_t c;
    memset(&c, 0, sizeof c);
    c.rate = gm_pick_config(&in, mode >> 6);
    if (mode >> 6) {
        c.capacity = 8u << fz_u8(&in) % 5;
        uint8_t p = fz_u8(&in);
        c.probe = p & 1 ? c.capacity : 1 + p / 2 % c.capacity;
    } else {
        c.capacity = (uint32_t)fz_pick(&in);
        c.probe = (uint32_t)fz_pick(&in);
    }
    int valid = set_config_valid(&c);
    config_surface(&c, valid);
    if (!valid || c.capacity > 4096) /* bigger tables: configs only, not time */
        return 0;
    gm_params_make(&c.rate, &w.p);
    w.capacity = c.capacity;
    w.probe = c.probe;
    w.monotonic = (mode & 0x18) != 0x18;

    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(0, &mc) == RESIL_OK, "manual clock");
    resil_ratelimit_local_t local = {resil_manual_clock_as_clock(mc)};
    resil_ratelimit_set_t *s = NULL;
    unsigned char *mem = NULL;
    size_t len = resil_ratelimit_set_size(&c);
    if (mode & 0x20) { /* an allocation failure first */
        fz_heap.fail_in = 0;
        MUST(resil_ratelimit_set_new(&c, &local, &s) == RESIL_E_NO_MEMORY && s == NULL,
             "new with no memory");
    }
    if (mode & 0x04) { /* caller memory, exactly as large as asked for */
        mem = fz_block(len);
        MUST(resil_ratelimit_set_init(mem, len, &c) == RESIL_OK, "init: %s", resil_status_detail());
        MUST(resil_ratelimit_set_attach(mem, len, &local, &s) == RESIL_OK, "attach: %s",
             resil_status_detail());
    } else {
        MUST(resil_ratelimit_set_new(&c, &local, &s) == RESIL_OK, "new: %s", resil_status_detail());
    }
    expect_same(s, &w, 0);
    run_ops(&in, &w, s, mem, len, mc);
    for (int i = 0; i < w.nkeys; i++)
        free(w.keys[i].bytes);
    free(mem);
    resil_manual_clock_free(mc);
    return 0;
}
