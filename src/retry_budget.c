/*
 * Retry budgets: one pointer-free state block, lock-free, shareable between
 * processes. See include/resil/retry.h for the three semantics.
 *
 * Layout (layout version 3):
 *
 *   offset  size  field
 *        0    32  block header (kind RETRY_BUDGET)
 *       32    64  budget_cfg: the immutable configuration (hashed)
 *       96     4  owned: OWNED_MAGIC if made by resil_retry_budget_new()
 *      104     8  instance: a number no other init of this memory had
 *      128     8  level: the global share of the tokens or quota
 *      136     8  transfer: the lease transfer in progress, if any
 *      192   256  4 stripes of {lease, granted, refused, rlease, rpend},
 *                 one cache line each: a thread's lease (token bucket,
 *                 quota) or ratio lease, and its statistics (relaxed)
 *      448  8*B8  ratio kind only (B8 = buckets rounded up to 8): the B
 *                 retry words, then 4 stripes' rows of B request words
 *                 (8*B8 bytes each, so each row has its own lines)
 *
 * Token bucket and quota: leases. The tokens T (in thousandths, so gRPC's
 * three-decimal token_ratio is exact integer arithmetic) or quota units are
 * split between the level word and 4 stripe leases:
 *
 *   T = level.tokens + sum of lease.avail (+ a grant half done)
 *
 * A lease is capacity taken from the level: `avail` tokens plus `room`
 * (empty capacity), and level.leased = sum of (avail + room), so
 * level.tokens + level.leased <= max bounds T. A decision the lease on the
 * caller's stripe proves is one CAS on that stripe's cache line:
 *
 *   failure taking k (1 token, or the quota's retry cost), avail >= k:
 *     avail -= k, room += k. The retry is allowed: quota: T >= avail >= k;
 *     bucket: T after >= level.tokens, and the level keeps more than
 *     max/2 whenever anything is leased (no grant and no failure on the
 *     level takes it to max/2 or below while leases exist), so T after
 *     > max/2 exactly as gRPC asks.
 *   success giving k, room >= k: avail += k, room -= k (room is real
 *     empty capacity, so T + k <= max).
 *
 * Anything else is one CAS on the level word, which decides alone when
 * nothing is leased, or when the level alone proves the answer (a bucket
 * failure leaving the level above max/2, a quota failure it can pay, a
 * success that fits in its empty part max - tokens - leased). A decision
 * the level cannot settle (near half, near empty, near full) first
 * reclaims every lease, then decides on the whole T: every decision is
 * exact, whatever the interleaving. Leases are granted only after a CAS on
 * the level word failed (threads contending), and then to every thread
 * that would otherwise write the level its leasing peers keep reading, so
 * one thread alone never leases; a grant takes an eighth of what the level
 * can give (the tokens above max/2 for the bucket, all of them for the
 * quota), at most 64 decisions' worth.
 *
 * A transfer between the level and a lease moves an amount between two
 * words. It is made crash-safe and lock-free by the transfer word, which
 * holds at most one transfer at a time: every step is one CAS, and whoever
 * finds a transfer in progress (a crashed or preempted caller's) completes
 * it before starting another. Each step can tell whether it was applied:
 * the level carries the sequence number of the last transfer it took part
 * in; a grant goes only to an EMPTY lease, so LIVE means delivered; a
 * reclaim freezes a LIVE lease, so FROZEN means frozen for it. A helper
 * rereads the transfer word between reading a word and CASing it, so one
 * that slept through the end of its transfer touches nothing; and every
 * state change of a lease stamps it with the transfer's sequence number,
 * so a helper that sleeps between that check and its CAS cannot find an
 * EMPTY lease "unchanged" after a later transfer filled and emptied it
 * (decisions on a lease keep the stamp).
 *
 *   grant q:   transfer IDLE -> GRANT(q, stripe s, amount a)
 *              level: tokens -= a, leased += a, seq = q (if the level can
 *                     no longer give a: only seq = q, aborted = 1)
 *              lease s: EMPTY -> LIVE(avail a, room 0), stamp q
 *              transfer -> IDLE(q)
 *   reclaim q: transfer IDLE -> RECLAIM(q, s)
 *              lease s: LIVE -> FROZEN, stamp q (decisions on it stop)
 *              level: tokens += avail, leased -= avail + room, seq = q
 *              lease s: FROZEN -> EMPTY
 *              transfer -> IDLE(q)
 *
 *   level     bits 0..19 tokens or quota, 20..39 leased, 40..61 seq,
 *             62 the last grant was aborted
 *   lease     bits 0..19 avail, 20..39 room, 40..61 stamp: seq of the
 *             transfer that last changed its state, 62..63 state (EMPTY,
 *             LIVE, FROZEN)
 *   transfer  bits 0..19 amount, 20..21 stripe, 22..23 op (IDLE, GRANT,
 *             RECLAIM), 40..61 seq
 *
 * Sequence numbers wrap at 2^22: only a helper that slept through exactly
 * a multiple of 2^22 transfers, to find the transfer word bit for bit as it
 * left it, could apply a step twice.
 * resil_retry_budget_check() verifies, on a snapshot no transfer step
 * crossed: fields in range, tokens + leased <= max, leased = the sum of
 * the leases' capacities (+ a grant half done), FROZEN only under its
 * reclaim, and the bucket's "leases only while the level holds more than
 * half".
 *
 * Ratio buckets: time is cut into slots of ttl/B ns; slot number e =
 * now / (ttl/B) lives in bucket e mod B. Each counter word is
 *
 *   bits 63..40  epoch: e mod 2^24 (which slot the count belongs to)
 *   bits 39..0   count
 *
 * so a stale bucket is recognised and restarted by the same CAS that
 * counts into it. The window is the B slots up to and including the
 * current one. Requests are counted in the caller's stripe's row; the
 * window's requests are the sum of the four rows. Retries are charged to
 * the current bucket's retry word by a CAS that rechecks the allowance
 * against the count it replaces: one retry, or, while the window has room
 * for RATIO_LEASE_ROOM or more, a lease of room/8 (at most
 * RATIO_LEASE_MAX) that the CAS charges whole and the caller's stripe then
 * holds in its rlease word (remaining, bucket, slot). A retry in the same
 * slot on that stripe is one CAS on rlease. Every retry a lease grants was
 * charged before the lease existed, and within a slot the allowance only
 * grows: the bound holds. A decision that finds no room first ends every
 * lease and uncharges what it still holds (from its bucket, if the bucket
 * still counts that slot), then sums the whole window afresh and decides
 * again, so with time frozen a refusal is exact too. A lease of an older
 * slot is given back when its stripe next installs one. Moving retries
 * between a lease and a bucket touches two words: a crash in between leaves
 * retries charged that no lease holds (fewer grants until the slot leaves
 * the window, never more).
 *
 * The other buckets only receive counts while they are current, so with
 * time frozen the bound is exact under any number of threads. A call
 * stamped in an older slot counts into that slot's bucket, which threads
 * already in the current slot may not see: the previous slot's bucket is
 * read on every decision, but the older ones are summed once per slot by
 * each thread (cached in static TLS with the slot's start, length and
 * bucket, so that a decision costs no division and B - 2 fewer bucket
 * reads), and afresh before a refusal. The overshoot is at most one retry
 * per call stamped in an older slot. Epochs are compared modulo 2^24 slots
 * (194 days with 1 s slots): a bucket left untouched for exactly a
 * multiple of that would be miscounted once. The cache is keyed by the
 * block's address and `instance`, a number each init draws anew, so a
 * block initialized again at the same address is summed afresh.
 *
 * Statistics: `granted` and `refused` per stripe, counted with relaxed
 * adds. A ratio grant is not counted there: it is charged to a retry word,
 * whose count is folded into its stripe's `granted` by whoever restarts the
 * word for a new slot. So the ratio's granted = the folded counts + the
 * charges still in the buckets - the retries leases hold - rpend, where
 * rpend counts retries on their way between a lease and a bucket (added
 * before the move, removed after it; retries given back to a bucket that
 * was already folded are taken out of `granted`). A crash mid-move or
 * between a restart and its fold makes the statistic undercount, never
 * the budget.
 */
#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/block.h"
#include "internal/stripe.h"
#include "internal/util.h"
#include "resil/retry.h"

#define BUDGET_LAYOUT 3
#define OWNED_MAGIC UINT32_C(0x4f574e44)
#define MILLI UINT64_C(1000)
#define EPOCH_BITS 24
#define COUNT_BITS 40
#define COUNT_MASK ((UINT64_C(1) << COUNT_BITS) - 1)
#define EPOCH_MASK ((UINT64_C(1) << EPOCH_BITS) - 1)

typedef struct budget_cfg {
    uint32_t kind;
    uint32_t max_tokens;
    uint32_t token_ratio_milli;
    uint32_t retry_percent;
    uint32_t min_retries_per_sec;
    uint32_t buckets;
    uint32_t quota_capacity;
    uint32_t retry_cost;
    uint32_t timeout_cost;
    uint32_t no_retry_increment;
    uint64_t ttl_ns;
    uint64_t slot_ns; /* ttl_ns / buckets */
    uint64_t floor;   /* min_retries_per_sec * ttl seconds, precomputed */
} budget_cfg;

#define BUDGET_STRIPES 4

typedef struct budget_stripe {
    _Alignas(64) resil__atomic_u64 lease; /* token bucket, quota: the lease */
    resil__atomic_u64 granted;
    resil__atomic_u64 refused;
    resil__atomic_u64 rlease; /* ratio: the lease of retries */
    resil__atomic_u64 rpend;  /* ratio: retries charged or freed but not settled */
} budget_stripe;

struct resil_retry_budget {
    resil__block_header h;
    budget_cfg cfg;
    uint32_t owned;
    uint64_t instance; /* differs for every init: keys per-thread caches */
    _Alignas(64) resil__atomic_u64 level;
    resil__atomic_u64 transfer;
    _Alignas(64) budget_stripe stripes[BUDGET_STRIPES];
    /* ratio: retries[nb8], then requests[BUDGET_STRIPES][nb8] */
    resil__atomic_u64 slots[];
};

_Static_assert(sizeof(budget_cfg) == 64, "budget config layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, cfg) == 32, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, instance) == 104, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, level) == 128, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, transfer) == 136, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, stripes) == 192, "budget layout is ABI");
_Static_assert(offsetof(struct resil_retry_budget, slots) == 448, "budget layout is ABI");
_Static_assert(BUDGET_STRIPES == 4, "the transfer word has 2 bits for the stripe");

/* Trailer after a heap block made by resil_retry_budget_new(). */
typedef struct owned_trailer {
    resil_allocator_t by;
    size_t alloc_size;
} owned_trailer;

resil_retry_budget_config_t resil_retry_budget_config_default(void)
{
    resil_retry_budget_config_t c;
    memset(&c, 0, sizeof c);
    c.kind = RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    c.max_tokens = 10;
    c.token_ratio_milli = 100;
    c.retry_percent = 20;
    c.min_retries_per_sec = 10;
    c.ttl_ns = RESIL_SEC(10);
    c.buckets = 10;
    c.quota_capacity = 500;
    c.retry_cost = 5;
    c.timeout_cost = 10;
    c.no_retry_increment = 1;
    return c;
}

static resil_status cfg_check(const resil_retry_budget_config_t *c)
{
    if ((unsigned)c->kind > RESIL_RETRY_BUDGET_QUOTA)
        return RESIL__BAD_CONFIG("retry_budget.kind", "must be a resil_retry_budget_kind, got %d",
                                 (int)c->kind);
    if (c->max_tokens < 1 || c->max_tokens > 1000)
        return RESIL__BAD_CONFIG("retry_budget.max_tokens", "must be in 1..1000, got %u",
                                 (unsigned)c->max_tokens);
    if (c->token_ratio_milli < 1 || c->token_ratio_milli > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.token_ratio_milli", "must be in 1..1000000, got %u",
                                 (unsigned)c->token_ratio_milli);
    if (c->retry_percent > 1000)
        return RESIL__BAD_CONFIG("retry_budget.retry_percent", "must be in 0..1000, got %u",
                                 (unsigned)c->retry_percent);
    if (c->min_retries_per_sec > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.min_retries_per_sec",
                                 "must be in 0..1000000, got %u", (unsigned)c->min_retries_per_sec);
    if (c->ttl_ns < RESIL_MS(1) || c->ttl_ns > RESIL_SEC(3600))
        return RESIL__BAD_CONFIG("retry_budget.ttl_ns", "must be in 1 ms..1 hour, got %llu ns",
                                 (unsigned long long)c->ttl_ns);
    if (c->buckets < 1 || c->buckets > RESIL_RETRY_BUDGET_MAX_BUCKETS)
        return RESIL__BAD_CONFIG("retry_budget.buckets", "must be in 1..%d, got %u",
                                 RESIL_RETRY_BUDGET_MAX_BUCKETS, (unsigned)c->buckets);
    if (c->quota_capacity < 1 || c->quota_capacity > 1000000)
        return RESIL__BAD_CONFIG("retry_budget.quota_capacity", "must be in 1..1000000, got %u",
                                 (unsigned)c->quota_capacity);
    if (c->retry_cost < 1 || c->retry_cost > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.retry_cost",
                                 "must be in 1..quota_capacity (%u), "
                                 "got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->retry_cost);
    if (c->timeout_cost < 1 || c->timeout_cost > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.timeout_cost",
                                 "must be in 1..quota_capacity (%u), got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->timeout_cost);
    if (c->no_retry_increment > c->quota_capacity)
        return RESIL__BAD_CONFIG("retry_budget.no_retry_increment",
                                 "must be in 0..quota_capacity (%u), got %u",
                                 (unsigned)c->quota_capacity, (unsigned)c->no_retry_increment);
    return RESIL_OK;
}

resil_status resil_retry_budget_config_check(const resil_retry_budget_config_t *cfg)
{
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_config_check: config is NULL");
    return cfg_check(cfg);
}

/* Buckets rounded up to whole cache lines of counter words. */
static inline uint32_t nb8(uint32_t buckets) { return (buckets + 7) & ~UINT32_C(7); }

static size_t size_for(uint32_t kind, uint32_t buckets)
{
    size_t nb = kind == RESIL_RETRY_BUDGET_RATIO ? nb8(buckets) : 0;
    size_t bytes =
        sizeof(struct resil_retry_budget) + nb * (1 + BUDGET_STRIPES) * sizeof(resil__atomic_u64);
    return (bytes + RESIL_BLOCK_ALIGN - 1) / RESIL_BLOCK_ALIGN * RESIL_BLOCK_ALIGN;
}

size_t resil_retry_budget_size(const resil_retry_budget_config_t *cfg)
{
    if (cfg == NULL || cfg_check(cfg) != RESIL_OK)
        return 0;
    return size_for((uint32_t)cfg->kind, cfg->buckets);
}

static uint64_t max_level(const budget_cfg *c)
{
    return c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? (uint64_t)c->max_tokens * MILLI
                                                      : (uint64_t)c->quota_capacity;
}

/* ---- level, lease and transfer words ------------------------------------ */

#define F20 ((UINT64_C(1) << 20) - 1)
#define SEQ_BITS 22
#define SEQ_MASK ((UINT32_C(1) << SEQ_BITS) - 1)

/* A ratio lease (a stripe's rlease word): retries charged to one bucket of
 * one slot and not granted yet.
 *   bits 0..15 remaining (<= RATIO_LEASE_MAX)   16..21 bucket   40..63 slot mod 2^24
 * 0 (or anything remaining 0) is no lease. */
#define RL_REM_MASK UINT64_C(0xffff)
#define RL_REM(w) ((w)&RL_REM_MASK)
#define RL_IDX(w) ((uint32_t)((w) >> 16) & 0x3f)
#define RL_EPOCH(w) ((w) >> COUNT_BITS)
#define RATIO_LEASE_ROOM 16 /* leases only while the window has this much room */
#define RATIO_LEASE_MAX 256 /* most retries one ratio lease holds */
#define LEASE_OPS 64        /* most decisions one token or quota lease covers */

enum { L_EMPTY = 0, L_LIVE = 1, L_FROZEN = 2 };  /* lease states */
enum { T_IDLE = 0, T_GRANT = 1, T_RECLAIM = 2 }; /* transfer ops */

/* Every word: a 20-bit field at bit 0, one at bit 20, the sequence number
 * at bit 40, two top bits at 62. */
static inline uint64_t pack(uint64_t lo, uint64_t mid, uint32_t seq, uint64_t top)
{
    return lo | mid << 20 | (uint64_t)(seq & SEQ_MASK) << 40 | top << 62;
}
static inline uint64_t lo20(uint64_t w) { return w & F20; }
static inline uint64_t mid20(uint64_t w) { return (w >> 20) & F20; }
static inline uint32_t seq_of(uint64_t w) { return (uint32_t)(w >> 40) & SEQ_MASK; }
static inline uint32_t top2(uint64_t w) { return (uint32_t)(w >> 62); }

#define lv_tok lo20
#define lv_leased mid20
#define lv_aborted top2
#define ls_avail lo20
#define ls_room mid20
#define ls_state top2
#define tr_amount lo20
static inline uint32_t tr_stripe(uint64_t d) { return (uint32_t)(d >> 20) & 3; }
static inline uint32_t tr_op(uint64_t d) { return (uint32_t)(d >> 22) & 3; }

/* Tokens the level must keep while anything is leased: more than half the
 * bucket; nothing for the quota. */
static inline uint64_t level_keep(const budget_cfg *c)
{
    return c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? max_level(c) / 2 + 1 : 0;
}

/* A view of the level, the transfer and the leases. */
typedef struct level_view {
    uint64_t level, transfer, leases[BUDGET_STRIPES];
    uint64_t total;    /* T: the tokens or quota, wherever they are */
    uint64_t capacity; /* what the leases hold, a grant half done included */
} level_view;

/* Reads every word of a token bucket or quota, retrying (a few times) until
 * no transfer step on the level or the transfer word happened in between.
 * Decisions on a lease may: they move tokens within its capacity.
 * @return 1 if the view is such a stable one. */
static int level_read(const struct resil_retry_budget *b, level_view *v)
{
    for (int tries = 0;; tries++) {
        uint64_t d = resil__a64_load_acquire(&b->transfer);
        uint64_t g = resil__a64_load_acquire(&b->level);
        uint64_t total = lv_tok(g), cap = 0;
        for (uint32_t s = 0; s < BUDGET_STRIPES; s++) {
            uint64_t w = resil__a64_load_acquire(&b->stripes[s].lease);
            v->leases[s] = w;
            /* a frozen lease counts until its reclaim has credited the level */
            if (ls_state(w) == L_LIVE || (ls_state(w) == L_FROZEN && seq_of(g) != seq_of(d))) {
                total += ls_avail(w);
                cap += ls_avail(w) + ls_room(w);
            }
        }
        /* a grant the level paid and its lease has not received yet */
        if (tr_op(d) == T_GRANT && seq_of(g) == seq_of(d) && !lv_aborted(g) &&
            ls_state(v->leases[tr_stripe(d)]) == L_EMPTY) {
            total += tr_amount(d);
            cap += tr_amount(d);
        }
        int stable = resil__a64_load_acquire(&b->transfer) == d &&
                     seq_of(resil__a64_load_acquire(&b->level)) == seq_of(g);
        if (stable || tries == 64) {
            v->level = g;
            v->transfer = d;
            v->total = total;
            v->capacity = cap;
            return stable;
        }
    }
}

/* A number for a fresh block that the memory's earlier inits (in any
 * process) almost surely did not have: the clock, a per-process counter and
 * the address, mixed. */
static uint64_t new_instance(const void *mem)
{
    static resil__atomic_u64 inits;
    uint64_t x = resil_clock_now(NULL) ^ (uint64_t)(uintptr_t)mem;
    x += resil__a64_fetch_add_relaxed(&inits, 1) * UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 31;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    return x ^ (x >> 29);
}

static void write_block(struct resil_retry_budget *b, const resil_retry_budget_config_t *cfg,
                        size_t size, uint32_t owned)
{
    memset(b, 0, size);
    budget_cfg *c = &b->cfg;
    c->kind = (uint32_t)cfg->kind;
    c->max_tokens = cfg->max_tokens;
    c->token_ratio_milli = cfg->token_ratio_milli;
    c->retry_percent = cfg->retry_percent;
    c->min_retries_per_sec = cfg->min_retries_per_sec;
    c->buckets = cfg->buckets;
    c->quota_capacity = cfg->quota_capacity;
    c->retry_cost = cfg->retry_cost;
    c->timeout_cost = cfg->timeout_cost;
    c->no_retry_increment = cfg->no_retry_increment;
    c->ttl_ns = cfg->ttl_ns;
    c->slot_ns = cfg->ttl_ns / cfg->buckets;
    if (c->slot_ns == 0)
        c->slot_ns = 1;
    /* <= 1e6 * 3.6e12 < 2^64 */
    c->floor = (uint64_t)cfg->min_retries_per_sec * cfg->ttl_ns / UINT64_C(1000000000);
    b->owned = owned;
    b->instance = new_instance(b);
    if (c->kind != RESIL_RETRY_BUDGET_RATIO)
        resil__a64_store_relaxed(&b->level, max_level(c)); /* all tokens, nothing leased */
    resil__block_publish(&b->h, RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT, size, &b->cfg,
                         sizeof b->cfg);
}

resil_status resil_retry_budget_init(void *mem, size_t len, const resil_retry_budget_config_t *cfg,
                                     resil_retry_budget_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_init: config is NULL");
    resil_status s = cfg_check(cfg);
    if (s != RESIL_OK)
        return s;
    size_t need = size_for((uint32_t)cfg->kind, cfg->buckets);
    s = resil__block_check_memory(mem, len, need);
    if (s != RESIL_OK)
        return s;
    write_block(mem, cfg, need, 0);
    if (out != NULL)
        *out = mem;
    return RESIL_OK;
}

/* Invariants of the level, the transfer and the leases (token bucket and
 * quota); a pure read. The words are checked one by one on any view, their
 * sums only on a view no transfer step crossed. */
static resil_status lease_invariants(const struct resil_retry_budget *b)
{
    const budget_cfg *c = &b->cfg;
    const uint64_t max = max_level(c);
    level_view v;
    int stable = level_read(b, &v);
    const uint64_t g = v.level, d = v.transfer;
    if (lv_tok(g) > max || top2(g) > 1)
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: level %llu above its maximum %llu",
                           (unsigned long long)lv_tok(g), (unsigned long long)max);
    if (lv_leased(g) > max - lv_tok(g))
        return resil__fail(RESIL_E_CORRUPT,
                           "retry_budget: level %llu + leased %llu above the maximum %llu",
                           (unsigned long long)lv_tok(g), (unsigned long long)lv_leased(g),
                           (unsigned long long)max);
    const uint32_t op = tr_op(d);
    if (op > T_RECLAIM || ((d >> 24) & 0xffff) != 0 || top2(d) != 0 || tr_amount(d) > max ||
        (op == T_IDLE && lo20(d) != 0) || (op != T_GRANT && tr_amount(d) != 0))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: transfer word %#llx is invalid",
                           (unsigned long long)d);
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++) {
        uint64_t w = v.leases[s];
        if (ls_state(w) > L_FROZEN || ls_avail(w) + ls_room(w) > max ||
            (ls_state(w) == L_EMPTY && (ls_avail(w) | ls_room(w)) != 0))
            return resil__fail(RESIL_E_CORRUPT, "retry_budget: lease %u word %#llx is invalid",
                               (unsigned)s, (unsigned long long)w);
        if (stable && ls_state(w) == L_FROZEN && !(op == T_RECLAIM && tr_stripe(d) == s))
            return resil__fail(RESIL_E_CORRUPT, "retry_budget: lease %u frozen outside its reclaim",
                               (unsigned)s);
    }
    if (!stable)
        return RESIL_OK; /* transfers kept running: the sums cannot be compared */
    const uint32_t q = seq_of(d);
    if (op == T_IDLE ? seq_of(g) != q : seq_of(g) != q && seq_of(g) != ((q - 1) & SEQ_MASK))
        return resil__fail(RESIL_E_CORRUPT,
                           "retry_budget: level seq %u does not follow transfer seq %u",
                           (unsigned)seq_of(g), (unsigned)q);
    if (v.capacity != lv_leased(g))
        return resil__fail(RESIL_E_CORRUPT,
                           "retry_budget: leases hold %llu but the level counts %llu leased",
                           (unsigned long long)v.capacity, (unsigned long long)lv_leased(g));
    if (lv_leased(g) != 0 && lv_tok(g) < level_keep(c))
        return resil__fail(RESIL_E_CORRUPT,
                           "retry_budget: level %llu at or below half while tokens are leased",
                           (unsigned long long)lv_tok(g));
    return RESIL_OK;
}

/* Invariants of an attached block; a pure read. */
static resil_status invariants(const struct resil_retry_budget *b)
{
    const budget_cfg *c = &b->cfg;
    resil_retry_budget_config_t pub;
    memset(&pub, 0, sizeof pub);
    pub.kind = (resil_retry_budget_kind)c->kind;
    pub.max_tokens = c->max_tokens;
    pub.token_ratio_milli = c->token_ratio_milli;
    pub.retry_percent = c->retry_percent;
    pub.min_retries_per_sec = c->min_retries_per_sec;
    pub.ttl_ns = c->ttl_ns;
    pub.buckets = c->buckets;
    pub.quota_capacity = c->quota_capacity;
    pub.retry_cost = c->retry_cost;
    pub.timeout_cost = c->timeout_cost;
    pub.no_retry_increment = c->no_retry_increment;
    if ((unsigned)c->kind > RESIL_RETRY_BUDGET_QUOTA || cfg_check(&pub) != RESIL_OK)
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: stored configuration is invalid");
    if (c->slot_ns != (c->ttl_ns / c->buckets ? c->ttl_ns / c->buckets : 1))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: stored slot length does not match");
    if (b->h.size != size_for(c->kind, c->buckets))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: size %llu does not match its config",
                           (unsigned long long)b->h.size);
    if (c->kind == RESIL_RETRY_BUDGET_RATIO) {
        uint64_t any = resil__a64_load_acquire(&b->level) | resil__a64_load_acquire(&b->transfer);
        for (uint32_t s = 0; s < BUDGET_STRIPES; s++)
            any |= resil__a64_load_acquire(&b->stripes[s].lease);
        if (any != 0)
            return resil__fail(RESIL_E_CORRUPT,
                               "retry_budget: a ratio budget has a level or token lease");
        for (uint32_t s = 0; s < BUDGET_STRIPES; s++) {
            uint64_t w = resil__a64_load_acquire(&b->stripes[s].rlease);
            if (RL_REM(w) > RATIO_LEASE_MAX || (RL_REM(w) != 0 && RL_IDX(w) >= c->buckets) ||
                (w & UINT64_C(0xFFFFC00000)) != 0)
                return resil__fail(RESIL_E_CORRUPT,
                                   "retry_budget: ratio lease %u word %#llx is invalid",
                                   (unsigned)s, (unsigned long long)w);
        }
        return RESIL_OK;
    }
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++)
        if ((resil__a64_load_acquire(&b->stripes[s].rlease) |
             resil__a64_load_acquire(&b->stripes[s].rpend)) != 0)
            return resil__fail(RESIL_E_CORRUPT,
                               "retry_budget: a token bucket or quota has a ratio lease");
    return lease_invariants(b);
}

resil_status resil_retry_budget_attach(void *mem, size_t len, resil_retry_budget_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_attach: out is NULL");
    resil_status s = resil__block_attach(mem, len, RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT);
    if (s != RESIL_OK)
        return s;
    const struct resil_retry_budget *b = mem;
    if (b->h.config_off != offsetof(struct resil_retry_budget, cfg) ||
        b->h.config_len != sizeof(budget_cfg))
        return resil__fail(RESIL_E_CORRUPT, "retry_budget: config region misplaced");
    s = invariants(b);
    if (s != RESIL_OK)
        return s;
    *out = mem;
    return RESIL_OK;
}

resil_status resil_retry_budget_new(const resil_retry_budget_config_t *cfg,
                                    resil_retry_budget_t **out)
{
    if (out == NULL || cfg == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_new: %s is NULL",
                           out == NULL ? "out" : "config");
    *out = NULL;
    resil_status s = cfg_check(cfg);
    if (s != RESIL_OK)
        return s;
    size_t size = size_for((uint32_t)cfg->kind, cfg->buckets);
    size_t alloc_size = size + sizeof(owned_trailer);
    resil_allocator_t by;
    void *mem = resil__alloc(alloc_size, &by);
    if (mem == NULL)
        return resil__fail(RESIL_E_NO_MEMORY, "retry_budget_new: allocating %zu bytes failed",
                           alloc_size);
    write_block(mem, cfg, size, OWNED_MAGIC);
    owned_trailer t;
    t.by = by;
    t.alloc_size = alloc_size;
    memcpy((unsigned char *)mem + size, &t, sizeof t);
    *out = mem;
    return RESIL_OK;
}

void resil_retry_budget_free(resil_retry_budget_t *b)
{
    if (b == NULL || b->owned != OWNED_MAGIC)
        return;
    owned_trailer t;
    memcpy(&t, (unsigned char *)b + b->h.size, sizeof t);
    resil__block_retire(&b->h);
    resil__free(&t.by, b, t.alloc_size);
}

/* ---- ratio window ------------------------------------------------------ */

/* The slot a thread used last, and the window sums of the buckets older
 * than the previous slot for one block. Static TLS (initial-exec: one
 * %fs-relative access, no __tls_get_addr call). The slot depends only on
 * the slot length and the bucket count; the sums belong to one block
 * instance. */
typedef struct slot_cache {
    uint64_t slot_ns, start, e;
    uint32_t buckets, idx, prev;
    const struct resil_retry_budget *blk;
    uint64_t instance, sums_e, old_rq, old_rt;
} slot_cache;

static _Thread_local slot_cache tl_slot __attribute__((tls_model("initial-exec")));

/* Slot number of time @p now, and its bucket in @p idx: the thread's last
 * slot while @p now stays in it, else two hardware divisions (measured
 * faster on this AMD EPYC than a precomputed multiply-shift divider). */
static inline uint64_t slot_at(const budget_cfg *c, uint64_t now, uint32_t *idx)
{
    slot_cache *t = &tl_slot;
    if (RESIL__UNLIKELY(now - t->start >= t->slot_ns || now < t->start ||
                        t->slot_ns != c->slot_ns || t->buckets != c->buckets)) {
        uint64_t e = now / c->slot_ns;
        t->slot_ns = c->slot_ns;
        t->buckets = c->buckets;
        t->start = e * c->slot_ns;
        t->e = e;
        t->idx = (uint32_t)(e % c->buckets);
        t->prev = t->idx == 0 ? c->buckets - 1 : t->idx - 1;
    }
    *idx = t->idx;
    return t->e;
}

/* Bucket @p i's retry word, and stripe @p s's request word for it. */
static inline resil__atomic_u64 *retry_word(const struct resil_retry_budget *b, uint32_t i)
{
    return (resil__atomic_u64 *)&b->slots[i];
}
static inline resil__atomic_u64 *request_word(const struct resil_retry_budget *b, uint32_t s,
                                              uint32_t i)
{
    return (resil__atomic_u64 *)&b->slots[(size_t)nb8(b->cfg.buckets) * (1 + s) + i];
}

/* Adds one to counter word @p w for slot @p e, restarting it if it holds
 * an older slot's count; saturates at the 40-bit maximum. */
static inline void count_one(resil__atomic_u64 *w, uint64_t e)
{
    uint64_t tag = (e & EPOCH_MASK) << COUNT_BITS;
    uint64_t cur = resil__a64_load_relaxed(w);
    for (;;) {
        uint64_t n = (cur & ~COUNT_MASK) == tag ? (cur & COUNT_MASK) : 0;
        if (n == COUNT_MASK)
            return; /* saturated */
        if (resil__a64_cas_acq_rel(w, &cur, tag | (n + 1)))
            return;
    }
}

/* Value of counter word @p v if its slot is within the window ending at
 * slot @p e, else 0. */
static inline uint64_t live_count(const budget_cfg *c, uint64_t v, uint64_t e)
{
    uint64_t age = ((e & EPOCH_MASK) - (v >> COUNT_BITS)) & EPOCH_MASK;
    return age < c->buckets ? (v & COUNT_MASK) : 0;
}

/* Requests counted in bucket @p i in the window ending at slot @p e. */
static inline uint64_t requests_in(const struct resil_retry_budget *b, uint32_t i, uint64_t e)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++)
        n += live_count(&b->cfg, resil__a64_load_acquire(request_word(b, s, i)), e);
    return n;
}

/* Sums requests and retry charges over the buckets of the window ending at
 * slot @p e, except @p skip1 and @p skip2 (UINT32_MAX for none). */
static void window_sums(const struct resil_retry_budget *b, uint64_t e, uint32_t skip1,
                        uint32_t skip2, uint64_t *requests, uint64_t *retries)
{
    uint64_t rq = 0, rt = 0;
    for (uint32_t i = 0; i < b->cfg.buckets; i++) {
        if (i != skip1 && i != skip2) {
            rq += requests_in(b, i, e);
            rt += live_count(&b->cfg, resil__a64_load_acquire(retry_word(b, i)), e);
        }
    }
    *requests = rq;
    *retries = rt;
}

/* floor(requests * percent / 100 + min_retries_per_sec * ttl_ns / 1e9),
 * the sum rounded down once: the two whole parts, plus one if the two
 * fractions (hundredths and nanoseconds) add up to one. */
static inline uint64_t allowance(const budget_cfg *c, uint64_t requests)
{
    /* requests < 4 * 64 * 2^40, percent <= 1000; min_rps * ttl_ns <= 1e6 *
     * 3.6e12: no overflow */
    const uint64_t a = requests * c->retry_percent;
    const uint64_t f = (uint64_t)c->min_retries_per_sec * c->ttl_ns % UINT64_C(1000000000);
    return a / 100 + c->floor + ((a % 100) * UINT64_C(10000000) + f >= UINT64_C(1000000000));
}

static inline uint64_t rl_key(uint64_t e, uint32_t idx)
{
    return (e & EPOCH_MASK) << COUNT_BITS | (uint64_t)idx << 16;
}

/* Remaining retries of lease @p w if it belongs to the window ending at
 * slot @p e. */
static inline uint64_t rl_live(const budget_cfg *c, uint64_t w, uint64_t e)
{
    uint64_t age = ((e & EPOCH_MASK) - RL_EPOCH(w)) & EPOCH_MASK;
    return age < c->buckets ? RL_REM(w) : 0;
}

/* Gives back @p r retries charged to the bucket and slot of lease word
 * @p w: uncharges them while the bucket still counts that slot, else
 * takes them out of stripe @p st's granted statistic (the bucket's count
 * was folded into some stripe's). */
static void ratio_uncharge(struct resil_retry_budget *b, budget_stripe *st, uint64_t w, uint64_t r)
{
    resil__atomic_u64 *rw = retry_word(b, RL_IDX(w));
    uint64_t cur = resil__a64_load_acquire(rw);
    for (;;) {
        if ((cur >> COUNT_BITS) != RL_EPOCH(w) || (cur & COUNT_MASK) < r) {
            resil__a64_fetch_add_relaxed(&st->granted, (uint64_t)0 - r);
            return;
        }
        if (resil__a64_cas_acq_rel(rw, &cur, cur - r))
            return;
    }
}

/* Ends stripe @p st's lease @p w (read from it) and gives its remaining
 * retries back. The statistics see them as pending (rpend) from before the
 * lease ends until they are back, so a crash in between only undercounts.
 * @return 0 if the lease word was no longer @p w. */
static int ratio_retire(struct resil_retry_budget *b, budget_stripe *st, uint64_t w)
{
    uint64_t r = RL_REM(w);
    resil__a64_fetch_add_relaxed(&st->rpend, r);
    if (!resil__a64_cas_acq_rel(&st->rlease, &w, 0)) {
        resil__a64_fetch_add_relaxed(&st->rpend, (uint64_t)0 - r);
        return 0;
    }
    ratio_uncharge(b, st, w, r);
    resil__a64_fetch_add_relaxed(&st->rpend, (uint64_t)0 - r);
    return 1;
}

/* Ends every stripe's lease. @return 1 if any had retries left. */
static int ratio_reclaim_all(struct resil_retry_budget *b)
{
    int any = 0;
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++) {
        budget_stripe *st = &b->stripes[s];
        uint64_t w = resil__a64_load_acquire(&st->rlease);
        while (RL_REM(w) != 0) {
            if (ratio_retire(b, st, w)) {
                any = 1;
                break;
            }
            w = resil__a64_load_acquire(&st->rlease);
        }
    }
    return any;
}

/* Makes @p w stripe @p st's lease, ending the one it has (a stripe-mate's,
 * or one of an older slot). The @p charged retries its charge added to
 * rpend leave it once the lease is in place. */
static void ratio_install(struct resil_retry_budget *b, budget_stripe *st, uint64_t w,
                          uint64_t charged)
{
    uint64_t cur = resil__a64_load_acquire(&st->rlease);
    for (;;) {
        if (RL_REM(cur) != 0 && !ratio_retire(b, st, cur)) {
            cur = resil__a64_load_acquire(&st->rlease);
            continue;
        }
        if (RL_REM(cur) != 0)
            cur = 0;
        if (resil__a64_cas_acq_rel(&st->rlease, &cur, w))
            break;
    }
    resil__a64_fetch_add_relaxed(&st->rpend, (uint64_t)0 - charged);
}

/* A retry decision that the caller's lease did not cover: one CAS on the
 * bucket's retry word that rechecks the allowance against the count it
 * replaces, charging one retry, or a lease of up to RATIO_LEASE_MAX while the
 * window has RATIO_LEASE_ROOM or more room. Before refusing, it takes every
 * lease back and sums the whole window afresh. A retry word restarted for
 * a new slot hands its old count to the stripe's statistics. */
static __attribute__((noinline)) int ratio_decide(struct resil_retry_budget *b, uint64_t e,
                                                  uint32_t idx, budget_stripe *st)
{
    const budget_cfg *c = &b->cfg;
    slot_cache *t = &tl_slot;
    resil__atomic_u64 *w = retry_word(b, idx);
    const uint64_t tag = (e & EPOCH_MASK) << COUNT_BITS;
    for (int fresh = 0;; fresh = 1) {
        /* Buckets older than the previous slot only change when a call
         * stamped more than a slot in the past counts into one, or a lease
         * gives retries back: the thread sums them once per slot, and
         * afresh before it refuses. */
        if (fresh || t->blk != b || t->instance != b->instance || t->sums_e != e) {
            window_sums(b, e, idx, t->prev, &t->old_rq, &t->old_rt);
            t->blk = b;
            t->instance = b->instance;
            t->sums_e = e;
        }
        uint64_t requests = t->old_rq + requests_in(b, idx, e);
        uint64_t others = t->old_rt;
        if (t->prev != idx) {
            requests += requests_in(b, t->prev, e);
            others += live_count(c, resil__a64_load_acquire(retry_word(b, t->prev)), e);
        }
        uint64_t allow = allowance(c, requests);
        uint64_t cur = resil__a64_load_acquire(w);
        for (;;) {
            int same = (cur & ~COUNT_MASK) == tag;
            uint64_t n = same ? (cur & COUNT_MASK) : 0;
            uint64_t room = resil__sat_sub(allow, others + n);
            room = resil__min_u64(room, COUNT_MASK - n);
            if (room == 0)
                break;
            uint64_t k = room >= RATIO_LEASE_ROOM ? resil__min_u64(RATIO_LEASE_MAX, room / 8) : 1;
            if (k > 1)
                resil__a64_fetch_add_relaxed(&st->rpend, k);
            if (resil__a64_cas_acq_rel(w, &cur, tag | (n + k))) {
                if (RESIL__UNLIKELY(!same && (cur & COUNT_MASK) != 0))
                    resil__a64_fetch_add_relaxed(&st->granted, cur & COUNT_MASK);
                if (k > 1)
                    ratio_install(b, st, rl_key(e, idx) | (k - 1), k);
                return 1;
            }
            if (k > 1)
                resil__a64_fetch_add_relaxed(&st->rpend, (uint64_t)0 - k);
        }
        if (fresh)
            return 0;
        ratio_reclaim_all(b);
    }
}

/* Grants a retry if the window has room: from the caller's stripe's lease
 * when it covers this slot (one CAS on the stripe's line), else by
 * ratio_decide(). */
static inline int ratio_try_retry(struct resil_retry_budget *b, uint64_t now)
{
    uint32_t idx;
    uint64_t e = slot_at(&b->cfg, now, &idx);
    budget_stripe *st = &b->stripes[resil__stripe(BUDGET_STRIPES)];
    uint64_t w = resil__a64_load_acquire(&st->rlease);
    const uint64_t key = rl_key(e, idx);
    while ((w & ~RL_REM_MASK) == key && RL_REM(w) != 0) {
        if (resil__a64_cas_acq_rel(&st->rlease, &w, w - 1))
            return 1;
    }
    return ratio_decide(b, e, idx, st);
}

/* Retries the leases of the window ending at slot @p e still hold. */
static uint64_t ratio_leased(const struct resil_retry_budget *b, uint64_t e)
{
    uint64_t n = 0;
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++)
        n += rl_live(&b->cfg, resil__a64_load_acquire(&b->stripes[s].rlease), e);
    return n;
}

/* ---- leases: transfers ------------------------------------------------- */

/* Whether transfer @p d is still the one in progress. A helper checks it
 * between reading a word and CASing it: a transfer word unchanged at the
 * check was unchanged since the read (it only moves forward), so the word
 * read belongs to this transfer; one that slept through the transfer's end
 * stops before touching words a later transfer owns. */
static inline int transfer_still(const struct resil_retry_budget *b, uint64_t d)
{
    return resil__a64_load_acquire(&b->transfer) == d;
}

/* Applies every step of transfer @p d (GRANT or RECLAIM) not applied yet,
 * then marks it done. Any thread may run it, any number of times, also
 * for a transfer a crashed process started. While d is in progress the
 * level carries seq(d) - 1 or, once its step is applied, seq(d); a grant
 * goes to an EMPTY lease, so LIVE means delivered; a reclaim freezes a
 * LIVE lease, and FROZEN means frozen for it. */
static void transfer_complete(struct resil_retry_budget *b, uint64_t d)
{
    const budget_cfg *c = &b->cfg;
    const uint32_t q = seq_of(d);
    resil__atomic_u64 *lp = &b->stripes[tr_stripe(d)].lease;
    uint64_t g, w;
    if (tr_op(d) == T_GRANT) {
        const uint64_t a = tr_amount(d);
        for (;;) { /* the level pays, or aborts if it no longer can */
            g = resil__a64_load_acquire(&b->level);
            if (seq_of(g) == q)
                break;
            if (!transfer_still(b, d))
                return;
            uint64_t ng = lv_tok(g) >= level_keep(c) + a
                              ? pack(lv_tok(g) - a, lv_leased(g) + a, q, 0)
                              : pack(lv_tok(g), lv_leased(g), q, 1);
            if (resil__a64_cas_acq_rel(&b->level, &g, ng))
                break;
        }
        for (;;) { /* the lease receives what the level paid */
            g = resil__a64_load_acquire(&b->level);
            w = resil__a64_load_acquire(lp);
            if (!transfer_still(b, d))
                return;
            if (lv_aborted(g) || ls_state(w) != L_EMPTY)
                break;
            if (resil__a64_cas_acq_rel(lp, &w, pack(a, 0, q, L_LIVE)))
                break;
        }
    } else {
        for (;;) { /* freeze: decisions on the lease stop */
            w = resil__a64_load_acquire(lp);
            if (ls_state(w) != L_LIVE)
                break;
            if (!transfer_still(b, d))
                return;
            if (resil__a64_cas_acq_rel(lp, &w, pack(ls_avail(w), ls_room(w), q, L_FROZEN)))
                break;
        }
        for (;;) { /* the level takes back what the frozen lease holds */
            g = resil__a64_load_acquire(&b->level);
            if (seq_of(g) == q)
                break;
            w = resil__a64_load_acquire(lp);
            if (!transfer_still(b, d))
                return;
            uint64_t ng = pack(lv_tok(g), lv_leased(g), q, 0);
            if (ls_state(w) == L_FROZEN)
                ng = pack(lv_tok(g) + ls_avail(w), lv_leased(g) - ls_avail(w) - ls_room(w), q, 0);
            if (resil__a64_cas_acq_rel(&b->level, &g, ng))
                break;
        }
        for (;;) { /* thaw, empty */
            w = resil__a64_load_acquire(lp);
            if (ls_state(w) != L_FROZEN)
                break;
            if (!transfer_still(b, d))
                return;
            if (resil__a64_cas_acq_rel(lp, &w, pack(0, 0, q, L_EMPTY)))
                break;
        }
    }
    resil__a64_cas_acq_rel(&b->transfer, &d, pack(0, 0, q, T_IDLE));
}

/* @return the transfer word once no transfer is in progress (completing
 * the one that is). */
static uint64_t transfer_idle(struct resil_retry_budget *b)
{
    uint64_t d = resil__a64_load_acquire(&b->transfer);
    while (tr_op(d) != T_IDLE) {
        transfer_complete(b, d);
        d = resil__a64_load_acquire(&b->transfer);
    }
    return d;
}

/* Starts and completes transfer @p op on stripe @p s, unless another
 * started after @p idle (then the caller looks again). */
static void transfer_run(struct resil_retry_budget *b, uint64_t idle, uint32_t op, uint32_t s,
                         uint64_t amount)
{
    uint64_t d = pack(amount, s | op << 2, seq_of(idle) + 1, 0);
    if (resil__a64_cas_acq_rel(&b->transfer, &idle, d))
        transfer_complete(b, d);
}

/* Leases stripe @p s an eighth of what the level can spare, at most
 * LEASE_OPS decisions costing @p k; nothing if that is less than one. A
 * lease is granted only to an EMPTY stripe: one spent down to less than k
 * is taken back first. */
static void lease_grant(struct resil_retry_budget *b, uint32_t s, uint64_t k)
{
    uint64_t d = transfer_idle(b);
    if (ls_state(resil__a64_load_acquire(&b->stripes[s].lease)) != L_EMPTY) {
        transfer_run(b, d, T_RECLAIM, s, 0);
        d = transfer_idle(b);
        if (ls_state(resil__a64_load_acquire(&b->stripes[s].lease)) != L_EMPTY)
            return; /* granted again meanwhile */
    }
    uint64_t tok = lv_tok(resil__a64_load_acquire(&b->level)), keep = level_keep(&b->cfg);
    uint64_t a =
        resil__min_u64(tok > keep ? (tok - keep) / (2 * BUDGET_STRIPES) : 0, LEASE_OPS * k);
    if (a >= k)
        transfer_run(b, d, T_GRANT, s, a);
}

/* Returns every live lease to the level, so that the level word alone
 * holds T (unless leases are granted again meanwhile: callers look again).
 * @return 0 if it found no transfer and no lease: then a level that still
 * counts leases was overwritten (check() says so), and callers stop
 * looking after a while rather than spin on a corrupt block. */
static int reclaim_all(struct resil_retry_budget *b)
{
    int found = tr_op(resil__a64_load_acquire(&b->transfer)) != T_IDLE;
    for (uint32_t s = 0; s < BUDGET_STRIPES; s++) {
        uint64_t d = transfer_idle(b);
        if (ls_state(resil__a64_load_acquire(&b->stripes[s].lease)) == L_LIVE) {
            transfer_run(b, d, T_RECLAIM, s, 0);
            found = 1;
        }
    }
    return found;
}

/* Rounds of reclaim_all() finding nothing after which a decision gives up
 * on a level that counts leases nobody holds (a corrupt block): far more
 * than concurrent grants can cause. */
#define RECLAIM_FUTILE 1000

/* ---- leases: decisions ------------------------------------------------- */

/* Records a failure taking @p k (bucket: one token, down to 0; quota: the
 * retry's cost, only if T holds it), on stripe @p s's lease when it can.
 * @return 1 if the retry is allowed: bucket: T after > max/2; quota: paid. */
static __attribute__((noinline)) int take_slow(struct resil_retry_budget *b, uint32_t s, uint64_t k)
{
    const budget_cfg *c = &b->cfg;
    const int bucket = c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET;
    const uint64_t keep = level_keep(c); /* bucket: max/2 + 1 */
    resil__atomic_u64 *lp = &b->stripes[s].lease;
    uint64_t g = resil__a64_load_acquire(&b->level);
    int futile = 0, leased_here = 0;
    for (;;) {
        if (lv_leased(g) != 0) { /* leases exist: maybe this stripe's */
            uint64_t w = resil__a64_load_acquire(lp);
            while (ls_state(w) == L_LIVE && ls_avail(w) >= k)
                if (resil__a64_cas_acq_rel(lp, &w, w - k + (k << 20))) /* avail -k, room +k */
                    return 1;
            /* Others decide on leases because threads contended: writing
             * the level would take its cache line from all of them (they
             * read it), so lease too, once per call, if the level can. */
            if (!leased_here) {
                leased_here = 1;
                lease_grant(b, s, k);
                g = resil__a64_load_acquire(&b->level);
                continue;
            }
        }
        uint64_t tok = lv_tok(g);
        if (lv_leased(g) == 0) { /* the level holds T */
            if (tok < k && (!bucket || tok == 0))
                return 0; /* quota short, or bucket empty: nothing to write */
            uint64_t next = tok >= k ? tok - k : 0;
            if (resil__a64_cas_acq_rel(&b->level, &g, g - (tok - next)))
                return !bucket || next >= keep;
        } else if (tok >= keep + k) { /* the level alone proves it */
            if (resil__a64_cas_acq_rel(&b->level, &g, g - k))
                return 1;
        } else {
            /* near half or empty: decide on the whole T */
            if (!reclaim_all(b) && ++futile > RECLAIM_FUTILE)
                return 0; /* corrupt: refuse, take nothing */
            g = resil__a64_load_acquire(&b->level);
            continue;
        }
        lease_grant(b, s, k); /* the CAS lost to another thread */
        g = resil__a64_load_acquire(&b->level);
    }
}

/* Records a success giving @p k back (never above max) on the level, once
 * give() found no room on the caller's lease. */
static __attribute__((noinline)) void give_slow(struct resil_retry_budget *b, uint64_t k)
{
    const uint64_t max = max_level(&b->cfg);
    uint64_t g = resil__a64_load_acquire(&b->level);
    int futile = 0;
    for (;;) {
        uint64_t space = resil__sat_sub(max, lv_tok(g) + lv_leased(g));
        if (space >= k || lv_leased(g) == 0) {
            uint64_t add = resil__min_u64(k, space);
            if (add == 0 || resil__a64_cas_acq_rel(&b->level, &g, g + add))
                return;
        } else {
            /* near full: the room may be in the leases */
            if (!reclaim_all(b) && ++futile > RECLAIM_FUTILE)
                return; /* corrupt: give nothing */
            g = resil__a64_load_acquire(&b->level);
        }
    }
}

/* For tests (declared there; hidden like every resil__ name): what a
 * failure that lost a CAS on the level does, a grant to the calling
 * thread's stripe, and what a decision near a threshold does, reclaiming
 * every lease. Both do nothing to a ratio budget. */
void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now);
void resil__retry_budget_reclaim(resil_retry_budget_t *b);

void resil__retry_budget_lease(resil_retry_budget_t *b, uint64_t now)
{
    if (b->cfg.kind != RESIL_RETRY_BUDGET_RATIO) {
        lease_grant(b, resil__stripe(BUDGET_STRIPES),
                    b->cfg.kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? MILLI : b->cfg.retry_cost);
        return;
    }
    /* a decision that charges a lease, then its own retry given back */
    budget_stripe *st = &b->stripes[resil__stripe(BUDGET_STRIPES)];
    uint32_t idx;
    uint64_t e = slot_at(&b->cfg, now, &idx);
    uint64_t w = resil__a64_load_acquire(&st->rlease);
    if (RL_REM(w) != 0 && !ratio_retire(b, st, w))
        return;
    if (ratio_decide(b, e, idx, st)) {
        w = resil__a64_load_acquire(&st->rlease);
        if ((w & ~RL_REM_MASK) == rl_key(e, idx) && RL_REM(w) != 0 &&
            resil__a64_cas_acq_rel(&st->rlease, &w, w + 1))
            return;
        resil__a64_fetch_add_relaxed(&st->rpend, 1);
        ratio_uncharge(b, st, rl_key(e, idx), 1);
        resil__a64_fetch_add_relaxed(&st->rpend, (uint64_t)0 - 1);
    }
}

void resil__retry_budget_reclaim(resil_retry_budget_t *b)
{
    if (b->cfg.kind != RESIL_RETRY_BUDGET_RATIO)
        reclaim_all(b);
    else
        ratio_reclaim_all(b);
}

/* The common cases of take_slow() inline: nothing leased and the level
 * holds k (one CAS on the level), or this stripe's lease holds k (one CAS on
 * the lease). */
static inline int take(struct resil_retry_budget *b, uint32_t s, uint64_t k)
{
    uint64_t g = resil__a64_load_acquire(&b->level);
    if (RESIL__LIKELY(lv_leased(g) == 0)) {
        if (lv_tok(g) >= k && resil__a64_cas_acq_rel(&b->level, &g, g - k))
            return b->cfg.kind != RESIL_RETRY_BUDGET_TOKEN_BUCKET ||
                   lv_tok(g) - k >= level_keep(&b->cfg);
    } else {
        resil__atomic_u64 *lp = &b->stripes[s].lease;
        uint64_t w = resil__a64_load_acquire(lp);
        if (ls_state(w) == L_LIVE && ls_avail(w) >= k &&
            resil__a64_cas_acq_rel(lp, &w, w - k + (k << 20))) /* avail -k, room +k */
            return 1;
    }
    return take_slow(b, s, k);
}

/* The common cases of give_slow() inline: nothing leased (one load when
 * full, else one CAS on the level), or the caller's lease has the room. */
static inline void give(struct resil_retry_budget *b, uint64_t k)
{
    uint64_t g = resil__a64_load_acquire(&b->level);
    if (RESIL__LIKELY(lv_leased(g) == 0)) {
        uint64_t add = resil__min_u64(k, resil__sat_sub(max_level(&b->cfg), lv_tok(g)));
        if (add == 0 || resil__a64_cas_acq_rel(&b->level, &g, g + add))
            return;
    } else {
        resil__atomic_u64 *lp = &b->stripes[resil__stripe(BUDGET_STRIPES)].lease;
        uint64_t w = resil__a64_load_acquire(lp);
        if (ls_state(w) == L_LIVE && ls_room(w) >= k &&
            resil__a64_cas_acq_rel(lp, &w, w + k - (k << 20))) /* avail +k, room -k */
            return;
    }
    give_slow(b, k);
}

/* ---- operations -------------------------------------------------------- */

resil_status resil_retry_budget_on_request(resil_retry_budget_t *b, uint64_t now_ns)
{
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_request: budget is NULL");
    if (b->cfg.kind == RESIL_RETRY_BUDGET_RATIO) {
        uint32_t idx;
        uint64_t e = slot_at(&b->cfg, now_ns, &idx);
        count_one(request_word(b, resil__stripe(BUDGET_STRIPES), idx), e);
    }
    return RESIL_OK;
}

resil_status resil_retry_budget_on_failure(resil_retry_budget_t *b, uint64_t now_ns, int timeout,
                                           int want_retry, uint32_t *cost_out)
{
    if (cost_out != NULL)
        *cost_out = 0;
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_failure: budget is NULL");
    const budget_cfg *c = &b->cfg;
    int allowed;
    if (c->kind == RESIL_RETRY_BUDGET_RATIO) {
        /* a grant is counted in its bucket, not in the statistics */
        if (!want_retry || ratio_try_retry(b, now_ns))
            return RESIL_OK;
        allowed = 0;
    } else if (c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET) {
        allowed = take(b, resil__stripe(BUDGET_STRIPES), MILLI);
        if (!want_retry)
            return RESIL_OK;
    } else {
        if (!want_retry)
            return RESIL_OK;
        const uint32_t cost = timeout ? c->timeout_cost : c->retry_cost;
        allowed = take(b, resil__stripe(BUDGET_STRIPES), cost);
        if (allowed && cost_out != NULL)
            *cost_out = cost;
    }
    budget_stripe *mine = &b->stripes[resil__stripe(BUDGET_STRIPES)];
    if (allowed) {
        resil__a64_fetch_add_relaxed(&mine->granted, 1);
        return RESIL_OK;
    }
    /* a refusal is an ordinary outcome, not an error: no detail to format */
    resil__a64_fetch_add_relaxed(&mine->refused, 1);
    return RESIL_E_BUDGET_EXHAUSTED;
}

resil_status resil_retry_budget_on_success(resil_retry_budget_t *b, uint64_t now_ns, uint32_t cost)
{
    (void)now_ns;
    if (RESIL__UNLIKELY(b == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_on_success: budget is NULL");
    const budget_cfg *c = &b->cfg;
    uint64_t k;
    if (c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET)
        k = c->token_ratio_milli;
    else if (c->kind == RESIL_RETRY_BUDGET_QUOTA)
        k = cost != 0 ? cost : c->no_retry_increment;
    else
        return RESIL_OK;
    if (k != 0)
        give(b, resil__min_u64(k, max_level(c)));
    return RESIL_OK;
}

int resil_retry_budget_can_retry(const resil_retry_budget_t *b, uint64_t now_ns)
{
    if (b == NULL)
        return 0;
    const budget_cfg *c = &b->cfg;
    level_view v;
    switch (c->kind) {
    case RESIL_RETRY_BUDGET_TOKEN_BUCKET:
        level_read(b, &v);
        return v.total >= MILLI && v.total - MILLI >= level_keep(c);
    case RESIL_RETRY_BUDGET_QUOTA:
        level_read(b, &v);
        return v.total >= c->retry_cost;
    default: {
        uint32_t idx;
        uint64_t rq, rt, e = slot_at(c, now_ns, &idx);
        window_sums(b, e, UINT32_MAX, UINT32_MAX, &rq, &rt);
        return resil__sat_sub(rt, ratio_leased(b, e)) + 1 <= allowance(c, rq);
    }
    }
}

resil_status resil_retry_budget_stats(const resil_retry_budget_t *b, uint64_t now_ns,
                                      resil_retry_budget_stats_t *out)
{
    if (b == NULL || out == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_stats: %s is NULL",
                           b == NULL ? "budget" : "out");
    memset(out, 0, sizeof *out);
    const budget_cfg *c = &b->cfg;
    out->kind = (resil_retry_budget_kind)c->kind;
    if (c->kind == RESIL_RETRY_BUDGET_RATIO) {
        /* granted = folded counts + charges still in the buckets - retries
         * leases hold - retries pending (charged or freed, not settled);
         * modular sums, a negative total (after a crash) reads 0 */
        uint32_t idx;
        uint64_t e = slot_at(c, now_ns, &idx), rt, g = 0;
        window_sums(b, e, UINT32_MAX, UINT32_MAX, &out->window_requests, &rt);
        out->window_retries = resil__sat_sub(rt, ratio_leased(b, e));
        for (uint32_t i = 0; i < c->buckets; i++)
            g += resil__a64_load_relaxed(retry_word(b, i)) & COUNT_MASK;
        for (int i = 0; i < BUDGET_STRIPES; i++) {
            g += resil__a64_load_relaxed(&b->stripes[i].granted);
            g -= RL_REM(resil__a64_load_relaxed(&b->stripes[i].rlease));
            g -= resil__a64_load_relaxed(&b->stripes[i].rpend);
            out->refused += resil__a64_load_relaxed(&b->stripes[i].refused);
        }
        out->granted = (int64_t)g < 0 ? 0 : g;
        return RESIL_OK;
    } else {
        level_view v;
        level_read(b, &v);
        uint64_t unit = c->kind == RESIL_RETRY_BUDGET_TOKEN_BUCKET ? 1 : MILLI;
        out->level_milli = resil__min_u64(v.total, max_level(c)) * unit;
        out->max_milli = max_level(c) * unit;
    }
    for (int i = 0; i < BUDGET_STRIPES; i++) {
        out->granted += resil__a64_load_relaxed(&b->stripes[i].granted);
        out->refused += resil__a64_load_relaxed(&b->stripes[i].refused);
    }
    return RESIL_OK;
}

resil_status resil_retry_budget_check(const resil_retry_budget_t *b)
{
    if (b == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "retry_budget_check: budget is NULL");
    resil_status s = resil__block_attach(b, b->h.size >= sizeof b->h ? b->h.size : sizeof b->h,
                                         RESIL__KIND_RETRY_BUDGET, BUDGET_LAYOUT);
    if (s != RESIL_OK)
        return s;
    return invariants(b);
}
