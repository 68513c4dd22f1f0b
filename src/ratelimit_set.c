/*
 * Keyed GCRA rate limiting in a fixed-capacity open-addressing table.
 *
 *   0    header (32) + config (params 64 + capacity, probe)
 *   128  tally: 8 counter lines owned by one thread each + 1 shared line
 *        (admitted / rejected / full / evictions; statistics only, see
 *        internal/tally.h): a decision's only locked instruction is its CAS
 *   704  entries[capacity]: { key u64, tat u64 }, 4 per cache line
 *
 * key is a 64-bit hash of the key bytes, never 0 (0 = empty slot); tat is
 * that key's GCRA word. A key lives in one of `probe` consecutive slots
 * from its hash. Entries are never deleted: an entry whose tat is in the
 * past is "idle" (its bucket is full again) and means exactly what an
 * absent key means, so a new key may take it over by one CAS on the key
 * word, keeping the old tat (<= now, hence equivalent to a fresh one).
 *
 * A race documented rather than locked away: a decision for key A that
 * read A's slot just before an idle takeover by key B charges its CAS to
 * B's tat. A was idle, so A's admission was right; B is charged n permits
 * too many once (conservative: never a permit minted).
 */
#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/gcra.h"
#include "internal/ratelimit.h"
#include "internal/tally.h"
#include "internal/util.h"
#include "resil/ratelimit.h"

#define LAYOUT_VERSION 2
#define LINES 8

enum { ADMITTED, REJECTED, FULL, EVICTIONS };

typedef struct entry {
    resil__atomic_u64 key, tat;
} entry;

typedef struct scfg {
    resil__ratelimit_params p;
    uint32_t capacity, probe;
    uint64_t pad[3];
} scfg;

typedef struct block {
    resil__block_header h;
    scfg cfg;
    resil__tally_line tally[LINES + 1];
    entry entries[];
} block;

_Static_assert(sizeof(scfg) == 96, "set config is 96 bytes");
_Static_assert(offsetof(block, tally) == 128, "the tally starts on a line");
_Static_assert(sizeof(block) == 704, "entries start on a line");

struct resil_ratelimit_set {
    block *blk;
    resil_clock_t clock;
    resil_allocator_t by;
    size_t alloc_size;
};

static void count(block *k, uint32_t counter, uint64_t v)
{
    resil__tally_add(k->tally, LINES, counter, v);
}

resil_ratelimit_set_config_t resil_ratelimit_set_config_default(void)
{
    resil_ratelimit_set_config_t c;
    memset(&c, 0, sizeof c);
    c.rate = resil_ratelimit_config_default();
    c.capacity = 1024;
    c.probe = 8;
    return c;
}

static resil_status make_cfg(const resil_ratelimit_set_config_t *cfg, scfg *c)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set: config is NULL");
    memset(c, 0, sizeof *c);
    resil_status s = resil__ratelimit_params_make(&cfg->rate, &c->p, "ratelimit_set.rate");
    if (s != RESIL_OK)
        return s;
    if (cfg->capacity < 8 || cfg->capacity > RESIL_RATELIMIT_SET_MAX_CAPACITY ||
        (cfg->capacity & (cfg->capacity - 1)) != 0)
        return RESIL__BAD_CONFIG("ratelimit_set.capacity",
                                 "must be a power of two in 8..%u, got %u",
                                 (unsigned)RESIL_RATELIMIT_SET_MAX_CAPACITY, cfg->capacity);
    if (cfg->probe < 1 || cfg->probe > 64 || cfg->probe > cfg->capacity)
        return RESIL__BAD_CONFIG("ratelimit_set.probe", "must be in 1..min(64, capacity), got %u",
                                 cfg->probe);
    c->capacity = cfg->capacity;
    c->probe = cfg->probe;
    return RESIL_OK;
}

resil_status resil_ratelimit_set_config_check(const resil_ratelimit_set_config_t *cfg)
{
    scfg c;
    return make_cfg(cfg, &c);
}

static size_t size_of(uint32_t capacity) { return sizeof(block) + sizeof(entry) * capacity; }

size_t resil_ratelimit_set_size(const resil_ratelimit_set_config_t *cfg)
{
    scfg c;
    return cfg != NULL && make_cfg(cfg, &c) == RESIL_OK ? size_of(c.capacity) : 0;
}

resil_status resil_ratelimit_set_init(void *mem, size_t len,
                                      const resil_ratelimit_set_config_t *cfg)
{
    scfg c;
    resil_status s = make_cfg(cfg, &c);
    if (s == RESIL_OK)
        s = resil__block_check_memory(mem, len, size_of(c.capacity));
    if (s != RESIL_OK)
        return s;
    block *k = mem;
    resil__block_retire(&k->h);
    memset((unsigned char *)mem + sizeof k->h, 0, size_of(c.capacity) - sizeof k->h);
    k->cfg = c;
    resil__block_publish(&k->h, RESIL__KIND_RATELIMIT_SET, LAYOUT_VERSION, size_of(c.capacity),
                         &k->cfg, sizeof k->cfg);
    return RESIL_OK;
}

static resil_status make_handle(void *mem, const resil_ratelimit_local_t *local, size_t state,
                                resil_ratelimit_set_t **out)
{
    resil_allocator_t by;
    size_t hsize = (sizeof(resil_ratelimit_set_t) + 63) & ~(size_t)63;
    resil_ratelimit_set_t *r = resil__alloc(hsize + state, &by);
    if (r == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "ratelimit_set: allocation failed");
    r->blk = mem != NULL ? mem : (block *)(void *)((unsigned char *)r + hsize);
    if (local != NULL)
        r->clock = local->clock;
    r->by = by;
    r->alloc_size = hsize + state;
    *out = r;
    return RESIL_OK;
}

static resil_status verify(const block *k, size_t len)
{
    if (k->h.config_off != offsetof(block, cfg) || k->h.config_len != sizeof(scfg))
        return resil__fail(RESIL_E_CORRUPT, "ratelimit_set: header does not describe a set");
    resil_ratelimit_set_config_t pub;
    memset(&pub, 0, sizeof pub);
    pub.rate.rate = k->cfg.p.rate;
    pub.rate.period_ns = k->cfg.p.period_ns;
    pub.rate.burst = k->cfg.p.burst;
    pub.capacity = k->cfg.capacity;
    pub.probe = k->cfg.probe;
    scfg c;
    if (make_cfg(&pub, &c) != RESIL_OK || memcmp(&c, &k->cfg, sizeof c) != 0 ||
        k->h.size != size_of(c.capacity) || len < size_of(c.capacity))
        return resil__fail(RESIL_E_CORRUPT, "ratelimit_set: stored config is inconsistent");
    return RESIL_OK;
}

resil_status resil_ratelimit_set_attach(void *mem, size_t len, const resil_ratelimit_local_t *local,
                                        resil_ratelimit_set_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set_attach: out is NULL");
    *out = NULL;
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_RATELIMIT_SET, LAYOUT_VERSION);
    if (s == RESIL_OK && len < sizeof(block))
        s = resil__fail(RESIL_E_CORRUPT, "ratelimit_set: block too small");
    if (s == RESIL_OK)
        s = verify(mem, len);
    return s == RESIL_OK ? make_handle(mem, local, 0, out) : s;
}

resil_status resil_ratelimit_set_new(const resil_ratelimit_set_config_t *cfg,
                                     const resil_ratelimit_local_t *local,
                                     resil_ratelimit_set_t **out)
{
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set_new: out is NULL");
    *out = NULL;
    scfg c;
    resil_status s = make_cfg(cfg, &c);
    if (s != RESIL_OK)
        return s;
    resil_ratelimit_set_t *r = NULL;
    s = make_handle(NULL, local, size_of(c.capacity), &r);
    if (s != RESIL_OK)
        return s;
    resil_ratelimit_set_init(r->blk, size_of(c.capacity), cfg);
    *out = r;
    return RESIL_OK;
}

void resil_ratelimit_set_free(resil_ratelimit_set_t *s)
{
    if (s != NULL)
        resil__free(&s->by, s, s->alloc_size);
}

static uint64_t key_hash(const void *key, size_t len)
{
    uint64_t h = resil__fnv1a64(key, len);
    h ^= h >> 33; /* FNV's low bits are weak for short keys: finish with a mix */
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

resil_status resil_ratelimit_set_try_acquire_at(resil_ratelimit_set_t *s, const void *key,
                                                size_t key_len, uint64_t n, uint64_t now,
                                                uint64_t *wait_ns)
{
    if (wait_ns != NULL)
        *wait_ns = 0;
    if (s == NULL || (key == NULL && key_len > 0))
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set: %s",
                           s == NULL ? "handle is NULL" : "key is NULL");
    block *k = s->blk;
    if (n == 0 || n > k->cfg.p.burst)
        return resil__fail(RESIL_E_INVALID_ARG,
                           "ratelimit_set: n must be in 1..burst (%llu), got %llu",
                           (unsigned long long)k->cfg.p.burst, (unsigned long long)n);
    uint64_t h = key_hash(key_len > 0 ? key : "", key_len);
    uint32_t mask = k->cfg.capacity - 1;
    entry *e = NULL;
    for (int attempt = 0; attempt < 4 && e == NULL; attempt++) {
        entry *free_slot = NULL, *idle_slot = NULL;
        uint64_t idle_key = 0;
        for (uint32_t i = 0; i < k->cfg.probe; i++) {
            entry *c = &k->entries[(h + i) & mask];
            uint64_t ck = resil__a64_load_acquire(&c->key);
            if (ck == h) {
                e = c;
                break;
            }
            if (ck == 0) {
                if (free_slot == NULL)
                    free_slot = c;
            } else if (idle_slot == NULL && resil__a64_load_relaxed(&c->tat) <= now) {
                idle_slot = c;
                idle_key = ck;
            }
        }
        if (e != NULL)
            break;
        if (free_slot != NULL) {
            uint64_t z = 0;
            if (resil__a64_cas_acq_rel(&free_slot->key, &z, h))
                e = free_slot;
        } else if (idle_slot != NULL) {
            if (resil__a64_cas_acq_rel(&idle_slot->key, &idle_key, h)) {
                e = idle_slot;
                count(k, EVICTIONS, 1);
            }
        } else {
            count(k, FULL, 1);
            return resil__fail(RESIL_E_FULL,
                               "ratelimit_set: all %u slots of this key hold limited keys",
                               k->cfg.probe);
        }
        /* a lost CAS means another thread changed the slots: look again */
    }
    if (e == NULL) {
        count(k, FULL, 1);
        return resil__fail(RESIL_E_FULL, "ratelimit_set: slots kept changing under contention");
    }
    uint64_t w;
    if (resil__gcra_decide(&e->tat, now, n * k->cfg.p.interval_ns, k->cfg.p.horizon_ns, 0, &w)) {
        count(k, ADMITTED, n);
        return RESIL_OK;
    }
    count(k, REJECTED, 1);
    if (wait_ns != NULL)
        *wait_ns = w;
    return RESIL_E_RATE_LIMITED;
}

resil_status resil_ratelimit_set_try_acquire(resil_ratelimit_set_t *s, const void *key,
                                             size_t key_len, uint64_t n, uint64_t *wait_ns)
{
    if (s == NULL)
        return resil_ratelimit_set_try_acquire_at(NULL, key, key_len, n, 0, wait_ns);
    return resil_ratelimit_set_try_acquire_at(s, key, key_len, n, resil_clock_now(&s->clock),
                                              wait_ns);
}

resil_status resil_ratelimit_set_stats(const resil_ratelimit_set_t *s,
                                       resil_ratelimit_set_stats_t *out)
{
    if (s == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set_stats: NULL argument");
    const block *k = s->blk;
    memset(out, 0, sizeof *out);
    out->capacity = k->cfg.capacity;
    out->admitted = resil__tally_sum(k->tally, LINES, ADMITTED);
    out->rejected = resil__tally_sum(k->tally, LINES, REJECTED);
    out->full = resil__tally_sum(k->tally, LINES, FULL);
    out->evictions = resil__tally_sum(k->tally, LINES, EVICTIONS);
    for (uint32_t i = 0; i < k->cfg.capacity; i++)
        out->used += resil__a64_load_relaxed(&k->entries[i].key) != 0;
    return RESIL_OK;
}

resil_status resil_ratelimit_set_check(const resil_ratelimit_set_t *s)
{
    if (s == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "ratelimit_set_check: handle is NULL");
    const block *k = s->blk;
    resil_status st = verify(k, (size_t)k->h.size);
    if (st != RESIL_OK)
        return st;
    for (uint32_t i = 0; i < k->cfg.capacity; i++)
        if (resil__a64_load_relaxed(&k->entries[i].key) == 0 &&
            resil__a64_load_relaxed(&k->entries[i].tat) != 0)
            return resil__fail(RESIL_E_CORRUPT, "ratelimit_set: empty slot %u has a tat", i);
    return RESIL_OK;
}
