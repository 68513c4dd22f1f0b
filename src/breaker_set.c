/*
 * Keyed breakers: an open-addressing table of slots, each holding a key and
 * a full breaker block. See include/resil/breaker_set.h for the behaviour.
 *
 * Slot word (one atomic per slot; every change of a slot's owner is a CAS
 * on it):
 *
 *   bits 0..1   EMPTY, BUSY (a key is being written, or an owner evicted),
 *               READY
 *   bits 2..31  epoch: +1 each time the slot gets a new key; set permits
 *               carry it, so an outcome for an evicted key is stale
 *   bits 32..63 the key's hash tag, to skip most key comparisons
 *
 * Insertion claims the first EMPTY slot on the key's probe path (linear
 * probing, at most max_probe slots), or, when there is none, evicts the
 * least recently used idle CLOSED breaker on the path. Keys are stored as
 * 64-bit atomic words and compared seqlock-style: read the slot word, the
 * key, then the slot word again. Nothing ever waits: a lookup skips BUSY
 * slots, so lookup and insert are lock-free. The price: two racing first
 * inserts of one key may create two entries; lookups settle on the first on
 * the path and the other ages out. A process that dies while a slot is BUSY
 * leaves it so for BUSY_RECLAIM_NS; then anyone may reset it to EMPTY.
 */
#include "resil/breaker_set.h"

#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/breaker.h"
#include "internal/rng.h"
#include "internal/util.h"

#define LAYOUT_VERSION 1
#define BUSY_RECLAIM_NS RESIL_SEC(1)

enum { SL_EMPTY = 0, SL_BUSY = 1, SL_READY = 2 };
enum { SW_WORD = 0, SW_USED = 1, SW_LEN = 2, SW_KEY = 3 };

static inline unsigned sl_state(uint64_t w) { return (unsigned)(w & 3); }
static inline uint32_t sl_epoch(uint64_t w) { return (uint32_t)((w >> 2) & 0x3fffffff); }
static inline uint32_t sl_hash(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t sl_make(unsigned st, uint32_t epoch, uint32_t hash)
{
    return (uint64_t)st | (uint64_t)(epoch & 0x3fffffff) << 2 | (uint64_t)hash << 32;
}

typedef struct scfg {
    uint32_t capacity, slots, mask, key_max;
    uint32_t key_words, max_probe, off_slots, slot_stride;
    uint32_t breaker_off, breaker_size;
    uint64_t idle_ns, seed;
} scfg;

typedef struct sblock {
    resil__block_header h;
    scfg cfg;
    _Alignas(64) resil__atomic_u64 inserts;
    resil__atomic_u64 evictions;
    resil__atomic_u64 full;
} sblock;

typedef struct slot_handle {
    resil_breaker_t h;
    resil_breaker_set_t *set;
    uint32_t index;
} slot_handle;

struct resil_breaker_set {
    sblock *blk;
    resil_breaker_set_local_t local;
    resil_clock_t touch_clock; /* for last-used stamps; coarse by default */
    slot_handle *slots;
    resil_allocator_t by;
    size_t alloc_size;
};

static inline size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline resil__atomic_u64 *slot(const sblock *k, uint32_t i)
{
    return (resil__atomic_u64 *)((unsigned char *)(uintptr_t)k + k->cfg.off_slots +
                                 (size_t)i * k->cfg.slot_stride);
}

/* ---------------------------------------------------------------- config */

resil_breaker_set_config_t resil_breaker_set_config_default(void)
{
    resil_breaker_set_config_t c;
    memset(&c, 0, sizeof c);
    c.breaker = resil_breaker_config_default();
    c.breaker.stripes = 1;
    c.capacity = 1024;
    c.key_max = 64;
    c.idle_evict_ns = RESIL_SEC(60);
    return c;
}

static resil_status check_config(const resil_breaker_set_config_t *c)
{
    if (c == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set: config is NULL");
    if (c->capacity < 1 || c->capacity > RESIL_BREAKER_SET_MAX_CAPACITY)
        return RESIL__BAD_CONFIG("breaker_set.capacity", "must be in 1..%d, got %u",
                                 RESIL_BREAKER_SET_MAX_CAPACITY, c->capacity);
    if (c->key_max < 1 || c->key_max > RESIL_BREAKER_SET_MAX_KEY)
        return RESIL__BAD_CONFIG("breaker_set.key_max", "must be in 1..%d, got %u",
                                 RESIL_BREAKER_SET_MAX_KEY, c->key_max);
    return resil_breaker_config_check(&c->breaker);
}

static int derive(const resil_breaker_set_config_t *c, scfg *o, size_t *total)
{
    memset(o, 0, sizeof *o);
    size_t bsize = resil_breaker_size(&c->breaker);
    uint32_t slots = 2;
    while (slots < 2 * c->capacity)
        slots <<= 1;
    o->capacity = c->capacity;
    o->slots = slots;
    o->mask = slots - 1;
    o->key_max = c->key_max;
    o->key_words = (c->key_max + 7) / 8;
    o->max_probe = slots < 64 ? slots : 64;
    o->breaker_off = (uint32_t)round64(8 * (SW_KEY + (size_t)o->key_words));
    o->breaker_size = (uint32_t)bsize;
    o->idle_ns = c->idle_evict_ns;
    size_t stride = o->breaker_off + bsize;
    size_t off = round64(sizeof(sblock));
    size_t all = off + stride * slots;
    if (stride > UINT32_MAX || all > ((size_t)1 << 40))
        return 0;
    o->slot_stride = (uint32_t)stride;
    o->off_slots = (uint32_t)off;
    *total = all;
    return 1;
}

/* Validates @p cfg and derives the stored config and total size. */
static resil_status plan(const resil_breaker_set_config_t *cfg, scfg *d, size_t *total)
{
    resil_status st = check_config(cfg);
    if (st != RESIL_OK)
        return st;
    if (!derive(cfg, d, total))
        return RESIL__BAD_CONFIG("breaker_set.capacity", "the set would exceed 1 TiB");
    return RESIL_OK;
}

size_t resil_breaker_set_size(const resil_breaker_set_config_t *cfg)
{
    scfg d;
    size_t total = 0;
    return plan(cfg, &d, &total) == RESIL_OK ? total : 0;
}

/* ---------------------------------------------------------------- keys */

static uint64_t key_hash(const sblock *k, const void *key, size_t len)
{
    uint64_t h = resil__fnv1a64(key, len) ^ k->cfg.seed;
    return resil__splitmix64_next(&h);
}

/* The key as zero-padded 64-bit words, as stored in slots. */
static void key_words(const void *key, size_t len, uint64_t *out, uint32_t n)
{
    memset(out, 0, (size_t)n * 8);
    memcpy(out, key, len);
}

static int key_equal(const resil__atomic_u64 *sl, const uint64_t *words, size_t len, uint32_t n)
{
    if (resil__a64_load_relaxed(&sl[SW_LEN]) != len)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (resil__a64_load_relaxed(&sl[SW_KEY + i]) != words[i])
            return 0;
    return 1;
}

static inline uint64_t touch_now(const resil_breaker_set_t *s)
{
    return resil_clock_now(&s->touch_clock);
}

/* A BUSY slot whose owner has been gone for BUSY_RECLAIM_NS (it died, or
 * stalled that long) goes back to EMPTY. @return the slot word after. */
static uint64_t reclaim_if_abandoned(resil_breaker_set_t *s, resil__atomic_u64 *sl, uint64_t w)
{
    uint64_t since = resil__a64_load_relaxed(&sl[SW_USED]);
    uint64_t now = touch_now(s);
    if (now > since && now - since > BUSY_RECLAIM_NS) {
        uint64_t empty = sl_make(SL_EMPTY, sl_epoch(w) + 1, 0);
        if (resil__a64_cas_acq_rel(&sl[SW_WORD], &w, empty))
            return empty;
    }
    return w;
}

typedef struct found {
    uint32_t index, epoch;
} found;

/* Looks @p key up. @return 1 and *f if present; 0 if not. */
static int lookup(resil_breaker_set_t *s, const uint64_t *words, size_t len, uint64_t h, found *f)
{
    const sblock *k = s->blk;
    const scfg *c = &k->cfg;
    for (uint32_t d = 0; d < c->max_probe; d++) {
        uint32_t i = (uint32_t)(h + d) & c->mask;
        resil__atomic_u64 *sl = slot(k, i);
        uint64_t w = resil__a64_load_acquire(&sl[SW_WORD]);
        if (sl_state(w) == SL_BUSY)
            w = reclaim_if_abandoned(s, sl, w);
        if (sl_state(w) == SL_EMPTY)
            return 0;
        if (sl_state(w) == SL_BUSY)
            continue; /* being written: never wait for it (lock-free) */
        if (sl_hash(w) != (uint32_t)(h >> 32) || !key_equal(sl, words, len, c->key_words))
            continue;
        if (resil__a64_load_acquire(&sl[SW_WORD]) != w) { /* changed under us: look again */
            d--;
            continue;
        }
        f->index = i;
        f->epoch = sl_epoch(w);
        return 1;
    }
    return 0;
}

/* Gives slot @p i, which this thread made @p busy, to the key.
 * @return 0 if the slot was reclaimed from under a stalled installer. */
static int install(resil_breaker_set_t *s, uint32_t i, uint64_t busy, const uint64_t *words,
                   size_t len, uint64_t h)
{
    sblock *k = s->blk;
    resil__atomic_u64 *sl = slot(k, i);
    for (uint32_t w = 0; w < k->cfg.key_words; w++)
        resil__a64_store_relaxed(&sl[SW_KEY + w], words[w]);
    resil__a64_store_relaxed(&sl[SW_LEN], len);
    resil__breaker_recycle(&s->slots[i].h);
    resil__a64_store_relaxed(&sl[SW_USED], touch_now(s));
    if (!resil__a64_cas_acq_rel(&sl[SW_WORD], &busy,
                                sl_make(SL_READY, sl_epoch(busy), (uint32_t)(h >> 32))))
        return 0;
    resil__a64_fetch_add_relaxed(&k->inserts, 1);
    return 1;
}

/* Finds or inserts @p key. @return RESIL_OK and *f, or RESIL_E_FULL. */
static resil_status find_or_insert(resil_breaker_set_t *s, const void *key, size_t len, found *f)
{
    sblock *k = s->blk;
    const scfg *c = &k->cfg;
    uint64_t words[RESIL_BREAKER_SET_MAX_KEY / 8];
    key_words(key, len, words, c->key_words);
    uint64_t h = key_hash(k, key, len);
    for (int attempt = 0; attempt < 8; attempt++) {
        if (lookup(s, words, len, h, f))
            return RESIL_OK;
        uint64_t now = touch_now(s);
        uint32_t victim = UINT32_MAX;
        uint64_t victim_word = 0, oldest = UINT64_MAX;
        for (uint32_t d = 0; d < c->max_probe; d++) {
            uint32_t i = (uint32_t)(h + d) & c->mask;
            resil__atomic_u64 *sl = slot(k, i);
            uint64_t w = resil__a64_load_acquire(&sl[SW_WORD]);
            if (sl_state(w) == SL_EMPTY) {
                uint64_t busy = sl_make(SL_BUSY, sl_epoch(w) + 1, (uint32_t)(h >> 32));
                resil__a64_store_relaxed(&sl[SW_USED], now); /* busy since: before it shows */
                if (!resil__a64_cas_acq_rel(&sl[SW_WORD], &w, busy))
                    break; /* someone took it: start over */
                if (!install(s, i, busy, words, len, h))
                    break;
                f->index = i;
                f->epoch = sl_epoch(busy);
                return RESIL_OK;
            }
            if (sl_state(w) != SL_READY || !resil__breaker_evictable(&s->slots[i].h))
                continue;
            uint64_t used = resil__a64_load_relaxed(&sl[SW_USED]);
            if (now >= used && now - used >= c->idle_ns && used < oldest) {
                oldest = used;
                victim = i;
                victim_word = w;
            }
        }
        if (victim == UINT32_MAX)
            continue;
        resil__atomic_u64 *sl = slot(k, victim);
        uint64_t busy = sl_make(SL_BUSY, sl_epoch(victim_word) + 1, (uint32_t)(h >> 32));
        resil__a64_store_relaxed(&sl[SW_USED], now); /* busy since: before it shows BUSY */
        if (!resil__a64_cas_acq_rel(&sl[SW_WORD], &victim_word, busy))
            continue;
        if (!resil__breaker_evictable(&s->slots[victim].h)) {
            /* it tripped meanwhile: give it back untouched */
            resil__a64_store_release(&sl[SW_WORD], victim_word);
            continue;
        }
        if (!install(s, victim, busy, words, len, h))
            continue;
        resil__a64_fetch_add_relaxed(&k->evictions, 1);
        f->index = victim;
        f->epoch = sl_epoch(busy);
        return RESIL_OK;
    }
    resil__a64_fetch_add_relaxed(&k->full, 1);
    return resil__fail(RESIL_E_FULL, "breaker_set: no free or evictable slot for the key");
}

/* ---------------------------------------------------------------- use */

static resil_status check_key(const resil_breaker_set_t *s, const void *key, size_t len)
{
    if (s == NULL || key == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set: NULL argument");
    if (len == 0 || len > s->blk->cfg.key_max)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set: key of %zu bytes, must be 1..%u", len,
                           s->blk->cfg.key_max);
    return RESIL_OK;
}

resil_status resil_breaker_set_acquire(resil_breaker_set_t *s, const void *key, size_t key_len,
                                       resil_breaker_set_permit_t *permit)
{
    resil_status st = check_key(s, key, key_len);
    if (st != RESIL_OK)
        return st;
    if (permit == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_acquire: permit is NULL");
    memset(permit, 0, sizeof *permit);
    permit->slot_ = UINT32_MAX;
    const scfg *c = &s->blk->cfg;
    for (;;) {
        found f;
        st = find_or_insert(s, key, key_len, &f);
        if (st != RESIL_OK)
            return st;
        resil__atomic_u64 *sl = slot(s->blk, f.index);
        st = resil_breaker_acquire(&s->slots[f.index].h, &permit->breaker);
        uint64_t w = resil__a64_load_acquire(&sl[SW_WORD]);
        if (sl_state(w) != SL_READY || sl_epoch(w) != f.epoch)
            continue; /* evicted between lookup and acquire: that permit is void */
        uint64_t now = touch_now(s), used = resil__a64_load_relaxed(&sl[SW_USED]);
        if (now > used && now - used > c->idle_ns / 16)
            resil__a64_store_relaxed(&sl[SW_USED], now);
        permit->slot_ = f.index;
        permit->epoch_ = f.epoch;
        return st;
    }
}

resil_status resil_breaker_set_record(resil_breaker_set_t *s, resil_breaker_set_permit_t *permit,
                                      resil_outcome outcome, uint64_t duration_ns)
{
    if (s == NULL || permit == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_record: NULL argument");
    if (permit->slot_ >= s->blk->cfg.slots)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_record: permit has no slot");
    uint64_t w = resil__a64_load_acquire(&slot(s->blk, permit->slot_)[SW_WORD]);
    if (sl_state(w) != SL_READY || sl_epoch(w) != permit->epoch_)
        return resil__fail(RESIL_E_STALE, "breaker_set_record: the key was evicted");
    return resil_breaker_record(&s->slots[permit->slot_].h, &permit->breaker, outcome, duration_ns);
}

resil_status resil_breaker_set_find(resil_breaker_set_t *s, const void *key, size_t key_len,
                                    resil_breaker_t **out)
{
    resil_status st = check_key(s, key, key_len);
    if (st != RESIL_OK)
        return st;
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_find: out is NULL");
    uint64_t words[RESIL_BREAKER_SET_MAX_KEY / 8];
    key_words(key, key_len, words, s->blk->cfg.key_words);
    found f;
    if (!lookup(s, words, key_len, key_hash(s->blk, key, key_len), &f)) {
        *out = NULL;
        return RESIL_E_NOT_FOUND;
    }
    *out = &s->slots[f.index].h;
    return RESIL_OK;
}

resil_status resil_breaker_set_stats(resil_breaker_set_t *s, resil_breaker_set_stats_t *out)
{
    if (s == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_stats: NULL argument");
    const sblock *k = s->blk;
    memset(out, 0, sizeof *out);
    out->capacity = k->cfg.capacity;
    out->slots = k->cfg.slots;
    for (uint32_t i = 0; i < k->cfg.slots; i++) {
        unsigned st = sl_state(resil__a64_load_acquire(&slot(k, i)[SW_WORD]));
        out->keys += st == SL_READY;
        out->busy += st == SL_BUSY;
    }
    out->inserts = resil__a64_load_relaxed(&k->inserts);
    out->evictions = resil__a64_load_relaxed(&k->evictions);
    out->full = resil__a64_load_relaxed(&k->full);
    return RESIL_OK;
}

/* ---------------------------------------------------------------- life */

resil_status resil_breaker_set_init(void *mem, size_t len, const resil_breaker_set_config_t *cfg)
{
    scfg d;
    size_t total;
    resil_status st = plan(cfg, &d, &total);
    if (st != RESIL_OK)
        return st;
    st = resil__block_check_memory(mem, len, total);
    if (st != RESIL_OK)
        return st;
    sblock *k = mem;
    memset(k, 0, sizeof *k);
    do
        d.seed = resil_random_u64();
    while (d.seed == 0);
    k->cfg = d;
    for (uint32_t i = 0; i < d.slots; i++) {
        resil__atomic_u64 *sl = slot(k, i);
        memset(sl, 0, d.breaker_off);
        st = resil_breaker_init((unsigned char *)sl + d.breaker_off, d.breaker_size, &cfg->breaker);
        if (st != RESIL_OK)
            return st;
    }
    resil__block_publish(&k->h, RESIL__KIND_BREAKER_SET, LAYOUT_VERSION, total, &k->cfg,
                         sizeof k->cfg);
    return RESIL_OK;
}

static void set_trampoline(void *user, const resil_breaker_event_t *ev)
{
    slot_handle *sh = user;
    resil_breaker_set_t *s = sh->set;
    const resil__atomic_u64 *sl = slot(s->blk, sh->index);
    uint64_t words[RESIL_BREAKER_SET_MAX_KEY / 8];
    size_t len = (size_t)resil__a64_load_relaxed(&sl[SW_LEN]);
    for (uint32_t i = 0; i < s->blk->cfg.key_words; i++)
        words[i] = resil__a64_load_relaxed(&sl[SW_KEY + i]);
    s->local.listener(s->local.user, words, len <= s->blk->cfg.key_max ? len : 0, ev);
}

static resil_status validate(const void *mem, size_t len)
{
    resil_status st = resil__block_attach(mem, len, RESIL__KIND_BREAKER_SET, LAYOUT_VERSION);
    if (st != RESIL_OK)
        return st;
    const sblock *k = mem;
    const scfg *c = &k->cfg;
    if (k->h.config_off != offsetof(sblock, cfg) || k->h.config_len != sizeof(scfg) ||
        c->slots < 2 || (c->slots & (c->slots - 1)) != 0 || c->mask != c->slots - 1 ||
        c->capacity < 1 || c->capacity > c->slots || c->key_max < 1 ||
        c->key_max > RESIL_BREAKER_SET_MAX_KEY || c->key_words != (c->key_max + 7) / 8 ||
        c->max_probe < 1 || c->max_probe > c->slots ||
        c->breaker_off != round64(8 * (SW_KEY + (size_t)c->key_words)) ||
        c->slot_stride != (size_t)c->breaker_off + c->breaker_size ||
        c->off_slots != round64(sizeof(sblock)) ||
        (size_t)c->off_slots + (size_t)c->slot_stride * c->slots != k->h.size)
        return resil__fail(RESIL_E_CORRUPT, "breaker_set: stored layout is inconsistent");
    return RESIL_OK;
}

static resil_status make_handle(sblock *k, const resil_breaker_set_local_t *local,
                                size_t state_size, resil_breaker_set_t **out)
{
    size_t head = round64(sizeof(resil_breaker_set_t));
    size_t slots_bytes = round64(sizeof(slot_handle) * k->cfg.slots);
    size_t size = head + slots_bytes + state_size;
    resil_allocator_t by;
    unsigned char *mem = resil__alloc(size, &by);
    if (mem == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "breaker_set: allocation of %zu bytes failed", size);
    resil_breaker_set_t *s = (resil_breaker_set_t *)mem;
    s->by = by;
    s->alloc_size = size;
    s->slots = (slot_handle *)(mem + head);
    s->blk = state_size != 0 ? (sblock *)(mem + head + slots_bytes) : k;
    if (local != NULL)
        s->local = *local;
    *out = s;
    return RESIL_OK;
}

/* Binds the per-slot handles once the block is valid. */
static void bind_slots(resil_breaker_set_t *s)
{
    const scfg *c = &s->blk->cfg;
    s->touch_clock = s->local.clock.now != NULL ? s->local.clock : resil_clock_coarse();
    for (uint32_t i = 0; i < c->slots; i++) {
        resil_breaker_local_t bl = {s->local.clock, NULL, NULL, s->local.seed + i};
        if (s->local.listener != NULL) {
            bl.listener = set_trampoline;
            bl.user = &s->slots[i];
        }
        s->slots[i].set = s;
        s->slots[i].index = i;
        resil__breaker_bind(&s->slots[i].h, (unsigned char *)slot(s->blk, i) + c->breaker_off, &bl);
    }
}

resil_status resil_breaker_set_attach(void *mem, size_t len, const resil_breaker_set_local_t *local,
                                      resil_breaker_set_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_attach: out is NULL");
    *out = NULL;
    resil_status st = validate(mem, len);
    if (st != RESIL_OK)
        return st;
    sblock *k = mem;
    /* every slot's breaker must be a valid breaker of the stated size */
    for (uint32_t i = 0; i < k->cfg.slots; i++) {
        st = resil__breaker_validate((unsigned char *)slot(k, i) + k->cfg.breaker_off,
                                     k->cfg.breaker_size);
        if (st != RESIL_OK)
            return resil__fail(RESIL_E_CORRUPT, "breaker_set: slot %u holds no valid breaker (%s)",
                               i, resil_status_name(st));
    }
    st = make_handle(k, local, 0, out);
    if (st == RESIL_OK)
        bind_slots(*out);
    return st;
}

resil_status resil_breaker_set_new(const resil_breaker_set_config_t *cfg,
                                   const resil_breaker_set_local_t *local,
                                   resil_breaker_set_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "breaker_set_new: out is NULL");
    *out = NULL;
    scfg d;
    size_t total;
    resil_status st = plan(cfg, &d, &total);
    if (st != RESIL_OK)
        return st;
    sblock shape; /* enough of a block for make_handle to size the handles */
    shape.cfg = d;
    resil_breaker_set_t *s = NULL;
    st = make_handle(&shape, local, total, &s);
    if (st != RESIL_OK)
        return st;
    st = resil_breaker_set_init(s->blk, total, cfg);
    if (st != RESIL_OK) {
        resil__free(&s->by, s, s->alloc_size);
        return st;
    }
    bind_slots(s);
    *out = s;
    return RESIL_OK;
}

void resil_breaker_set_free(resil_breaker_set_t *s)
{
    if (s != NULL)
        resil__free(&s->by, s, s->alloc_size);
}
