/*
 * Fuzz target: the adaptive concurrency limiter (resil/limiter.h), through
 * its public API and documented behaviour only (its internals are free to
 * change).
 *
 * Configuration: every field from the input, edges included (0, 1, the
 * documented bounds and one past them, UINT32_MAX / UINT64_MAX, min_limit >
 * max_limit, initial_limit outside [min, max], both algorithms and unknown
 * ones, the doubles at their open and closed ends, one ulp inside and
 * outside, NaN, infinities, raw bit patterns). config_check, size, init and
 * new must accept exactly what the header documents and otherwise return
 * RESIL_E_INVALID_CONFIG with a detail naming one of the invalid fields;
 * size is a multiple of 64 within RESIL_LIMITER_SIZE(); refused inits
 * (invalid config, NULL, misaligned or short memory, NULL config) leave
 * the memory untouched, and a valid init writes nothing past size(); new
 * and attach with the counting allocator failing a chosen allocation
 * return RESIL_E_NO_MEMORY and no handle, leak nothing and leave the
 * existing limiter as it was.
 *
 * API sequences in one thread, against a model of permits as values:
 * limiter A in caller memory with two handles on it, limiter B from _new.
 * Operations: try_acquire; release with a latency (0, 1, at and past
 * timeout_ns, near UINT64_MAX) and a dropped flag from the input;
 * release_ignored; bursts of acquire + release; fill (acquire until
 * refused, then give those back); release of everything held; releases of
 * the same struct twice, of a copy after the original, of another
 * limiter's permit, through the other handle, of forged structs (random
 * fields, one field changed, the padding tag 0xFFFF), of what a refused
 * acquire left; reclaim_pid of this process (every permit held is then
 * fenced: RESIL_E_NOT_OWNER, and exactly as many as before can be taken),
 * of a pid without a record, of pid <= 0, reclaim_dead; the manual clock
 * (it paces lazy reclaim) advanced, stepped back, jumped, set near
 * UINT64_MAX; A's memory initialized again with another config, B freed
 * and made anew, a handle of A freed and attached again.
 *
 * Checked exactly unless said (after every step, for the limiter the step
 * touched: the other's memory did not change; the stats also after each
 * sample that may move the limit):
 * - release: RESIL_OK iff the struct names a permit still held (a copy of
 *   it included); RESIL_E_INVALID_ARG for a struct never granted, already
 *   released through itself, or of another limiter; RESIL_E_NOT_OWNER for
 *   a copy of a permit given back, or a reclaimed one; nothing changes on
 *   a refusal;
 * - admission (the header's rule: a free cell whose index is below the
 *   limit in force): the model knows of each held permit the limit it was
 *   granted under, so its cell lies below that limit, and cells are
 *   distinct. try_acquire must succeed when fewer permits are held than
 *   the limit, and must refuse when the permits granted under limits <=
 *   the current one fill it; in between (permits granted under a higher
 *   limit that has since fallen) either answer is allowed. Hall's
 *   condition holds at all times: at most k permits are held that were
 *   granted under limits <= k (so in flight never exceeds the limit in
 *   force at the oldest grant, nor limit_peak). Fill admits exactly limit
 *   minus the permits held below it, within those bounds;
 * - stats: in_flight = permits the model holds, granted, rejected (and
 *   granted + rejected = attempts), samples, drops (AIMD: dropped or
 *   latency > timeout_ns; GRADIENT: dropped), reclaimed, processes (0 or
 *   1); the same through both handles of A; check(quiescent) passes;
 * - limit and estimate within [min_limit, max_limit]; limit = floor of the
 *   estimate (GRADIENT: or min_limit while re-measuring, which needs
 *   probes > 0); limit_peak >= every limit seen and <= max_limit;
 * - AIMD, exactly (to 1e-6, the estimate's fixed point resolution, then
 *   resynchronized to the library's value after each sample): samples
 *   collect in this thread's batch of max(16, limit / 8) and are applied
 *   when it is full or with a drop / timeout that ends it; a batch with g
 *   good samples adds g / estimate while the limit is in use (held
 *   permits below the limit + the call just ended >= half the limit: when
 *   the model cannot tell from the grant limits, both outcomes are
 *   allowed); a drop multiplies by backoff_ratio iff at least
 *   floor(estimate) samples, its batch included, were applied since the
 *   last decrease (the first drop always does); limit_peak = the largest
 *   limit seen; baseline_ns = probes = 0. The estimate changes on no
 *   other call. A sample released through a handle whose registration was
 *   reclaimed may count on the shared line and be applied at once (the
 *   model cannot tell): from then on until the next init, AIMD is checked
 *   within bounds only (the estimate moves at most from cur *
 *   backoff_ratio to cur + a batch / cur);
 * - GRADIENT, within bounds only: the estimate changes only on a release
 *   with a sample, at most once, to within [(1 - s/2) e + s q, e + s q]
 *   (s smoothing, q queue_size, clamped); baseline_ns is 0 before any
 *   sample, then within the samples' [min, max] (latency 0 counts as 1;
 *   probe values capped at 2^48 - 1), and equal to their minimum when
 *   probe_interval is 0 (then probes = 0 and the limit is never pinned);
 *   probes * probe_interval <= samples.
 * No step allocates except those that make a handle.
 *
 * Lazy reclaim: in one process nobody is dead, so whatever the clock does
 * (it only paces the sweep), acquires must reclaim nothing: the exact
 * stats check this. The pacing itself is not observable without a dead
 * holder (tests/test_limiter.c forks those).
 *
 * Attach: arbitrary bytes, a forged header, a valid block (permits held,
 * samples applied) with bytes flipped, checksum optionally recomputed,
 * length shortened, misaligned: a documented status and a handle iff
 * RESIL_OK; a handle it grants survives every operation with statuses
 * from the documented sets, the limit stays in 1..RESIL_LIMITER_MAX_LIMIT,
 * and a block that passed check() after attach still passes it after
 * every operation.
 *
 * Input: byte 0 picks the mode (attach surface for 1 in 8; raw config
 * when its top two bits are set; allocation failures with 0x10; B's
 * algorithm 0x20; A's second handle on the coarse clock when both bits of
 * 0x0C are set); then the
 * config (one or more bytes per field); then two bytes per operation (op;
 * limiter, handle and slot) plus the operation's own arguments. Running
 * out of input reads zeros.
 */
#include "fuzz_input.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resil/limiter.h"

/*
 * A copy of a permit released after the same process was granted that
 * cell again equals the new permit byte for byte, and the header says the
 * release then applies to it (regression-copy-after-regrant): the model accepts
 * either outcome when the bytes name a permit it holds.
 */

#define SLOTS 16
#define STEPS 512
#define STEPS_BIG 48    /* steps when max_limit > RUN_MAX: stats scan every cell */
#define RUN_MAX 300     /* max_limit of the configs the run picker makes */
#define FILL_MAX 160    /* fill only limits up to this */
#define MAX_GRANTS 1100 /* 1 per step at most: bursts free theirs, fills keep none */
#define MAX_INC 600     /* limiters made: 2, and 1 per step at most */
#define TOL 1e-6
#define LOW48 ((UINT64_C(1) << 48) - 1)

enum { HELD, RELEASED, RECLAIMED, GONE };

typedef struct grant {
    int inc, state;
    uint32_t lim; /* the limit in force when it was granted */
    resil_limiter_permit_t value;
} grant;

typedef struct mlim {
    resil_limiter_t *h[2]; /* handles; B's two are the same */
    int inc;               /* which limiter made so far this one is */
    resil_limiter_config_t cfg;
    uint64_t granted, rejected, samples, drops, reclaimed, self_reclaims;
    int registered;       /* the process has a record */
    int stale[2];         /* the handle's registration was reclaimed since it last registered */
    int held[MAX_GRANTS]; /* grants held, by grant limit ascending */
    uint32_t nheld;
    uint32_t limit, peak_seen;
    double est;
    /* What the last sample allows the estimate to become (observe clears). */
    int est_kind; /* 0 unchanged, 1 one of cand[], 2 within [lo, hi] */
    double cand[2], lo, hi;
    int ncand;
    /* AIMD */
    int exact;      /* the model knows this thread's batch */
    uint32_t since; /* samples applied since the last decrease, saturating */
    uint64_t bn, bgood;
    /* GRADIENT */
    uint64_t rtt_min, rtt_max;
} mlim;

typedef struct slot {
    resil_limiter_permit_t p;
    int inc;   /* the limiter that granted it; -1 forged or empty */
    int grant; /* index into grants, -1 forged or empty */
    int spent; /* given to release already, which answered OK or NOT_OWNER */
} slot;

typedef struct world {
    mlim l[2];
    uint32_t inc_id[MAX_INC]; /* the id_ of each limiter's permits */
    int ninc;
    grant grants[MAX_GRANTS];
    int ngrants;
    slot slots[SLOTS];
    resil_manual_clock_t *mc;
    resil_limiter_local_t local[2]; /* A's handles: manual clock; the second maybe coarse */
    unsigned char *mem;             /* A's memory, large enough for every config of A */
    size_t len;
    uint64_t aba, id_collisions;
} world;

/* ---- values from the input ---- */

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* @p x (> 0, finite) moved by @p d ulps. */
static double ulps(double x, int d)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return bits_double(b + (uint64_t)(int64_t)d);
}

/* A double for a field whose valid range lies within [0, 10]. */
static double pick_double(fz_in *in)
{
    uint8_t k = fz_u8(in);
    switch (k % 16) {
    case 0:
        return k & 0x80 ? -0.0 : 0.0;
    case 1:
        return ulps(0.5, (int)(k >> 4) % 3 - 1);
    case 2:
        return ulps(1.0, (int)(k >> 4) % 3 - 1);
    case 3:
        return ulps(10.0, (int)(k >> 4) % 3 - 1);
    case 4:
        return k & 0x80 ? NAN : -NAN;
    case 5:
        return k & 0x80 ? INFINITY : -INFINITY;
    case 6:
        return bits_double(k & 0x80 ? 1 : UINT64_C(0x0010000000000000)); /* denormal, DBL_MIN */
    case 7:
        return bits_double(fz_bytes(in, 8));
    case 8:
        return -(double)fz_u8(in) / 16;
    case 9:
    case 10:
    case 11:
        return (double)fz_bytes(in, 4) / 4294967296.0; /* [0, 1) */
    case 12:
        return 1.0 + 9.0 * (double)fz_bytes(in, 4) / 4294967296.0;
    default:
        return (double)fz_u8(in) / 8;
    }
}

/* A 32-bit field: one of @p edges (n of them), an edge off by one, or any
 * value fz_pick() makes. */
static uint32_t pick_u32(fz_in *in, const uint32_t *edges, int n)
{
    uint8_t k = fz_u8(in);
    if (k < 160) {
        uint32_t e = edges[k % n];
        int d = (int)(k / n) % 5 == 4 ? 1 : 0;
        return e + (uint32_t)d;
    }
    return (uint32_t)fz_pick(in);
}

static resil_limiter_config_t pick_config(fz_in *in, int raw)
{
    resil_limiter_config_t c = resil_limiter_config_default();
    if (raw) {
        static const uint32_t algs[] = {0, 1, 2, UINT32_MAX};
        static const uint32_t lims[] = {0,   1,    2,     3,     4,     20,
                                        299, 1000, 65534, 65535, 65536, UINT32_MAX};
        static const uint32_t queues[] = {0, 1, 4, 999, 1000, 1001, UINT32_MAX};
        static const uint32_t samples[] = {0, 1, 2, 20, 9999, 10000, 10001, UINT32_MAX};
        static const uint32_t procs[] = {0, 1, 2, 64, 253, 254, 255, UINT32_MAX};
        static const uint32_t stripes[] = {0, 1, 2, 3, 16, 32, 63, 64, 65, 128, UINT32_MAX};
        c.algorithm = (resil_limiter_algorithm)pick_u32(in, algs, 4);
        c.min_limit = pick_u32(in, lims, 12);
        c.max_limit = pick_u32(in, lims, 12);
        uint8_t k = fz_u8(in); /* initial: relative to min and max, or anything */
        switch (k % 6) {
        case 0:
            c.initial_limit = c.min_limit - (k >> 7);
            break;
        case 1:
            c.initial_limit = c.max_limit + (k >> 7);
            break;
        case 2:
            c.initial_limit = c.min_limit + (c.max_limit - c.min_limit) / 2;
            break;
        default:
            c.initial_limit = pick_u32(in, lims, 12);
            break;
        }
        c.backoff_ratio = pick_double(in);
        c.timeout_ns = fz_pick(in);
        c.smoothing = pick_double(in);
        c.rtt_tolerance = pick_double(in);
        c.queue_size = pick_u32(in, queues, 7);
        c.probe_samples = pick_u32(in, samples, 8);
        k = fz_u8(in); /* interval: 0, relative to probe_samples, or anything */
        static const uint32_t intervals[] = {0, 9, 10, 11, 5000, UINT32_MAX};
        if (k % 3 == 0)
            c.probe_interval = c.probe_samples + (uint32_t)((int)(k >> 2) % 4 - 1);
        else
            c.probe_interval = pick_u32(in, intervals, 6);
        c.max_processes = pick_u32(in, procs, 8);
        c.stripes = pick_u32(in, stripes, 11);
        c.reclaim_interval_ns = fz_pick(in);
        return c;
    }
    static const double backoffs[] = {0.6, 0.75, 0.9, 0.99};
    static const double smooths[] = {0.1, 0.2, 0.5, 1.0};
    static const double tols[] = {1.0, 1.5, 2.0, 10.0};
    static const uint32_t queues[] = {0, 1, 4, 10, 1000};
    static const uint64_t timeouts[] = {1, 1000, RESIL_MS(1), RESIL_MS(20), RESIL_SEC(5)};
    static const uint64_t reclaims[] = {0, 1, RESIL_MS(1), RESIL_MS(100), UINT64_MAX};
    uint8_t k = fz_u8(in);
    c.algorithm = (resil_limiter_algorithm)(k & 1);
    c.min_limit = k & 2 ? 1 : 1 + fz_u8(in) % 8;
    /* Mostly small: the cell table has a line per logical word up to 8
     * (max_limit 17..32 is already 256 cells), and check and stats scan
     * it every step; 1 in 4 up to RUN_MAX (batches above 16 from 136). */
    c.max_limit =
        c.min_limit + ((k & 0xC0) == 0xC0 ? (uint32_t)fz_bytes(in, 2) % RUN_MAX : fz_u8(in) % 12u);
    if (c.max_limit > RUN_MAX)
        c.max_limit = RUN_MAX;
    c.initial_limit = c.min_limit + fz_u8(in) % (c.max_limit - c.min_limit + 1);
    uint8_t b = fz_u8(in);
    c.backoff_ratio = b % 6 == 4 ? ulps(0.5, 1) : b % 6 == 5 ? ulps(1.0, -1) : backoffs[b % 6];
    b = fz_u8(in);
    c.timeout_ns = b % 6 < 5 ? timeouts[b % 6] : fz_pick(in) | 1;
    b = fz_u8(in);
    c.smoothing = b % 5 < 4 ? smooths[b % 5] : ulps(0.0, 1);
    c.rtt_tolerance = tols[fz_u8(in) % 4];
    c.queue_size = queues[fz_u8(in) % 5];
    b = fz_u8(in);
    c.probe_samples = b & 0x80 ? 10000 : 1 + b % 8u;
    uint32_t floor_interval = c.probe_samples < 10 ? 10 : c.probe_samples + 1;
    c.probe_interval = k & 4 ? 0 : floor_interval + fz_u8(in) % 64u;
    c.max_processes = 1 + fz_u8(in) % 4;
    b = fz_u8(in); /* many lines are rare: stats sum them all, every step */
    c.stripes = 1u << (b & 0x80 ? b % 7 : b % 3);
    b = fz_u8(in);
    c.reclaim_interval_ns = b % 6 < 5 ? reclaims[b % 6] : fz_pick(in);
    return c;
}

/* ---- configuration surface ---- */

static int is_pow2_1_64(uint32_t s) { return s >= 1 && s <= 64 && (s & (s - 1)) == 0; }

/* The header's ranges: the names of the invalid fields, comma-separated
 * (empty: valid). */
static void invalid_fields(const resil_limiter_config_t *c, char *out, size_t n)
{
    out[0] = 0;
#define BAD(field, cond)                                                                           \
    if (cond)                                                                                      \
    snprintf(out + strlen(out), n - strlen(out), "%s,", field)
    BAD("algorithm", c->algorithm != RESIL_LIMITER_AIMD && c->algorithm != RESIL_LIMITER_GRADIENT);
    BAD("min_limit", c->min_limit < 1);
    BAD("max_limit", c->max_limit < c->min_limit || c->max_limit > RESIL_LIMITER_MAX_LIMIT);
    BAD("initial_limit", c->initial_limit < c->min_limit || c->initial_limit > c->max_limit);
    BAD("backoff_ratio", !(c->backoff_ratio > 0.5 && c->backoff_ratio < 1.0));
    BAD("timeout_ns", c->timeout_ns < 1);
    BAD("smoothing", !(c->smoothing > 0.0 && c->smoothing <= 1.0));
    BAD("rtt_tolerance", !(c->rtt_tolerance >= 1.0 && c->rtt_tolerance <= 10.0));
    BAD("queue_size", c->queue_size > 1000);
    BAD("probe_interval", c->probe_interval != 0 &&
                              (c->probe_interval < 10 || c->probe_interval <= c->probe_samples));
    BAD("probe_samples", c->probe_samples < 1 || c->probe_samples > 10000);
    BAD("max_processes", c->max_processes < 1 || c->max_processes > RESIL_LIMITER_MAX_PROCESSES);
    BAD("stripes", !is_pow2_1_64(c->stripes));
#undef BAD
}

/* The detail of the last refusal names one of the fields in @p bad. */
static void names_a_field(const char *call, const char *bad)
{
    const char *d = resil_status_detail();
    MUST(strncmp(d, "limiter.", 8) == 0, "%s: detail \"%s\" names no limiter field", call, d);
    const char *colon = strchr(d + 8, ':');
    MUST(colon != NULL, "%s: detail \"%s\"", call, d);
    char field[40];
    size_t fl = (size_t)(colon - (d + 8));
    MUST(fl < sizeof field - 1, "%s: detail \"%s\"", call, d);
    memcpy(field, d + 8, fl);
    field[fl] = ',';
    field[fl + 1] = 0;
    char list[200];
    snprintf(list, sizeof list, ",%s", bad);
    char needle[44];
    snprintf(needle, sizeof needle, ",%s", field);
    MUST(strstr(list, needle) != NULL, "%s: detail \"%s\" names a valid field (invalid: %s)", call,
         d, bad);
}

static void config_surface(fz_in *in, const resil_limiter_config_t *c, int valid, const char *bad)
{
    resil_status s = resil_limiter_config_check(c);
    MUST(s == (valid ? RESIL_OK : RESIL_E_INVALID_CONFIG), "config_check: %s, model %s",
         resil_status_name(s), valid ? "valid" : bad);
    if (!valid)
        names_a_field("config_check", bad);
    size_t size = resil_limiter_size(c);
    MUST(valid ? size > 0 && size % 64 == 0 &&
                     size <= RESIL_LIMITER_SIZE(c->max_limit, c->max_processes, c->stripes)
               : size == 0,
         "size %zu for a %s config", size, valid ? "valid" : "invalid");
    size_t len = valid ? size : 1024;
    unsigned char *mem = fz_block(len + 64), *copy = fz_block(len + 64);
    memset(mem, 0x5A, len + 64);
    memcpy(copy, mem, len + 64);
    size_t off = 1 + fz_u8(in) % 63;
    if (valid) {
        MUST(resil_limiter_init(mem, len - 1, c) == RESIL_E_INVALID_ARG, "init: short");
        MUST(resil_limiter_init(mem + off, len, c) == RESIL_E_INVALID_ARG, "init: misaligned");
        MUST(resil_limiter_init(NULL, len, c) == RESIL_E_INVALID_ARG, "init: NULL memory");
        MUST(resil_limiter_init(mem, len, NULL) == RESIL_E_INVALID_ARG, "init: NULL config");
    } else {
        s = resil_limiter_init(mem, len, c);
        MUST(s == RESIL_E_INVALID_CONFIG, "init of an invalid config: %s", resil_status_name(s));
        names_a_field("init", bad);
        s = resil_limiter_init(mem + off, len, c); /* either refusal will do */
        MUST(s == RESIL_E_INVALID_CONFIG || s == RESIL_E_INVALID_ARG, "init: %s",
             resil_status_name(s));
        resil_limiter_t *l = (resil_limiter_t *)1;
        uint64_t allocs = fz_heap.allocs;
        MUST(resil_limiter_new(c, NULL, &l) == RESIL_E_INVALID_CONFIG && l == NULL, "new");
        names_a_field("new", bad);
        MUST(fz_heap.allocs == allocs, "new of an invalid config allocated");
    }
    MUST(memcmp(mem, copy, len + 64) == 0, "a refused init wrote to memory");
    if (valid) { /* a valid init writes no byte past size(), and reads as fresh */
        MUST(resil_limiter_init(mem, len, c) == RESIL_OK, "init: %s", resil_status_detail());
        MUST(memcmp(mem + len, copy + len, 64) == 0, "init wrote past size()");
    }
    free(mem);
    free(copy);
}

static void null_surface(void)
{
    resil_limiter_permit_t p;
    memset(&p, 0, sizeof p);
    resil_limiter_config_t c = resil_limiter_config_default();
    resil_limiter_t *l = (resil_limiter_t *)1;
    MUST(resil_limiter_config_check(NULL) == RESIL_E_INVALID_ARG, "config_check(NULL)");
    MUST(resil_limiter_size(NULL) == 0, "size(NULL)");
    MUST(resil_limiter_attach(NULL, 4096, NULL, &l) == RESIL_E_INVALID_ARG && l == NULL,
         "attach(NULL)");
    MUST(resil_limiter_new(NULL, NULL, &l) == RESIL_E_INVALID_ARG && l == NULL, "new(NULL)");
    MUST(resil_limiter_new(&c, NULL, NULL) == RESIL_E_INVALID_ARG, "new(out NULL)");
    MUST(resil_limiter_try_acquire(NULL, &p) == RESIL_E_INVALID_ARG, "try(NULL)");
    MUST(resil_limiter_release(NULL, &p, 1, 0) == RESIL_E_INVALID_ARG, "release(NULL)");
    MUST(resil_limiter_release_ignored(NULL, &p) == RESIL_E_INVALID_ARG, "ignored(NULL)");
    MUST(resil_limiter_reclaim_dead(NULL) < 0 && resil_limiter_reclaim_pid(NULL, 1) < 0, "NULL");
    MUST(resil_limiter_check(NULL, 1) == RESIL_E_INVALID_ARG, "check(NULL)");
    resil_limiter_stats_t s;
    MUST(resil_limiter_stats(NULL, &s) == RESIL_E_INVALID_ARG, "stats(NULL)");
    resil_limiter_free(NULL);
}

/* NULL arguments beside a live handle. */
static void null_args(resil_limiter_t *l, void *mem, size_t len)
{
    resil_limiter_permit_t p;
    memset(&p, 0, sizeof p);
    MUST(resil_limiter_try_acquire(l, NULL) == RESIL_E_INVALID_ARG, "try(permit NULL)");
    MUST(resil_limiter_release(l, NULL, 1, 0) == RESIL_E_INVALID_ARG, "release(permit NULL)");
    MUST(resil_limiter_release_ignored(l, NULL) == RESIL_E_INVALID_ARG, "ignored(permit NULL)");
    MUST(resil_limiter_stats(l, NULL) == RESIL_E_INVALID_ARG, "stats(out NULL)");
    MUST(resil_limiter_reclaim_pid(l, 0) < 0 && resil_limiter_reclaim_pid(l, -1) < 0 &&
             resil_limiter_reclaim_pid(l, INT32_MIN) < 0,
         "reclaim_pid(<= 0)");
    MUST(resil_limiter_attach(mem, len, NULL, NULL) == RESIL_E_INVALID_ARG, "attach(out NULL)");
}

/* ---- the model ---- */

/* Permits name the same cell of the same holder: every field but gen_
 * (which only routes a GRADIENT sample). */
static int same_permit(const resil_limiter_permit_t *a, const resil_limiter_permit_t *b)
{
    return a->id_ == b->id_ && a->cell_ == b->cell_ && a->tag_ == b->tag_ && a->live_ == b->live_;
}

/* The grant held from limiter @p bk that @p p names, or -1. */
static int held_equal(const world *w, int bk, const resil_limiter_permit_t *p)
{
    const mlim *m = &w->l[bk];
    for (uint32_t i = 0; i < m->nheld; i++)
        if (same_permit(&w->grants[m->held[i]].value, p))
            return m->held[i];
    return -1;
}

static void held_insert(world *w, mlim *m, int g)
{
    uint32_t i = m->nheld;
    while (i > 0 && w->grants[m->held[i - 1]].lim > w->grants[g].lim) {
        m->held[i] = m->held[i - 1];
        i--;
    }
    m->held[i] = g;
    m->nheld++;
}

static void held_remove(mlim *m, int g)
{
    for (uint32_t i = 0; i < m->nheld; i++)
        if (m->held[i] == g) {
            memmove(&m->held[i], &m->held[i + 1], (m->nheld - i - 1) * sizeof m->held[0]);
            m->nheld--;
            return;
        }
    MUST(0, "model: grant %d is not held", g);
}

/* Bounds on how many held permits lie below @p lim: each lies below the
 * limit it was granted under, all in distinct cells; at most the ones
 * granted under a higher limit can lie at or above @p lim, as many as fit
 * into [lim, their grant limits) (greedy over ascending grant limits). */
static void below(const world *w, const mlim *m, uint32_t lim, uint32_t *lo, uint32_t *hi)
{
    uint32_t above = 0, next = lim;
    for (uint32_t i = 0; i < m->nheld; i++) {
        uint32_t g = w->grants[m->held[i]].lim;
        if (g > lim && next < g) {
            next++;
            above++;
        }
    }
    *lo = m->nheld - above;
    *hi = m->nheld < lim ? m->nheld : lim;
}

static double clamp_est(const mlim *m, double e)
{
    double lo = m->cfg.min_limit, hi = m->cfg.max_limit;
    return e < lo ? lo : e > hi ? hi : e;
}

/* Reads the stats of limiter @p bk and checks them against the model: the
 * counters exactly, the estimate against what the last sample allows,
 * limit, peak, baseline and probes within their rules. Then the model
 * takes the library's estimate and limit. */
static resil_limiter_stats_t observe(world *w, int bk, const char *what)
{
    mlim *m = &w->l[bk];
    const resil_limiter_config_t *c = &m->cfg;
    char n = (char)('A' + bk);
    resil_limiter_stats_t s;
    MUST(resil_limiter_stats(m->h[0], &s) == RESIL_OK, "stats");
    MUST(s.in_flight == m->nheld, "%s: %c in flight %u, model holds %u", what, n, s.in_flight,
         m->nheld);
    MUST(s.granted == m->granted && s.rejected == m->rejected && s.samples == m->samples &&
             s.drops == m->drops && s.reclaimed == m->reclaimed,
         "%s: %c granted %llu rejected %llu samples %llu drops %llu reclaimed %llu; model %llu "
         "%llu %llu %llu %llu",
         what, n, (unsigned long long)s.granted, (unsigned long long)s.rejected,
         (unsigned long long)s.samples, (unsigned long long)s.drops,
         (unsigned long long)s.reclaimed, (unsigned long long)m->granted,
         (unsigned long long)m->rejected, (unsigned long long)m->samples,
         (unsigned long long)m->drops, (unsigned long long)m->reclaimed);
    MUST(s.processes == (uint32_t)m->registered, "%s: %c %u process records, model %d", what, n,
         s.processes, m->registered);
    MUST(s.limit >= c->min_limit && s.limit <= c->max_limit, "%s: %c limit %u outside %u..%u", what,
         n, s.limit, c->min_limit, c->max_limit);
    MUST(s.estimate >= c->min_limit && s.estimate <= c->max_limit,
         "%s: %c estimate %.9g outside %u..%u", what, n, s.estimate, c->min_limit, c->max_limit);
    uint32_t fl = (uint32_t)s.estimate;
    if (c->algorithm == RESIL_LIMITER_AIMD) {
        MUST(s.limit == fl, "%s: %c AIMD limit %u, estimate %.9g", what, n, s.limit, s.estimate);
        MUST(s.baseline_ns == 0 && s.probes == 0, "%s: %c AIMD baseline %llu probes %llu", what, n,
             (unsigned long long)s.baseline_ns, (unsigned long long)s.probes);
    } else {
        MUST(s.limit == fl || (s.limit == c->min_limit && c->probe_interval != 0 && s.probes > 0),
             "%s: %c GRADIENT limit %u, estimate %.9g, probes %llu", what, n, s.limit, s.estimate,
             (unsigned long long)s.probes);
        if (c->probe_interval == 0)
            MUST(s.probes == 0, "%s: %c probes %llu with probe_interval 0", what, n,
                 (unsigned long long)s.probes);
        else
            MUST(s.probes * c->probe_interval <= s.samples,
                 "%s: %c probes %llu after %llu samples, interval %u", what, n,
                 (unsigned long long)s.probes, (unsigned long long)s.samples, c->probe_interval);
        if (m->rtt_max == 0)
            MUST(s.baseline_ns == 0, "%s: %c baseline %llu before any sample", what, n,
                 (unsigned long long)s.baseline_ns);
        else if (c->probe_interval == 0)
            MUST(s.baseline_ns == m->rtt_min, "%s: %c baseline %llu, least sample %llu", what, n,
                 (unsigned long long)s.baseline_ns, (unsigned long long)m->rtt_min);
        else
            MUST(s.baseline_ns >= (m->rtt_min < LOW48 ? m->rtt_min : LOW48) &&
                     s.baseline_ns <= m->rtt_max,
                 "%s: %c baseline %llu outside samples %llu..%llu", what, n,
                 (unsigned long long)s.baseline_ns, (unsigned long long)m->rtt_min,
                 (unsigned long long)m->rtt_max);
    }
    if (m->est_kind == 0) {
        MUST(s.estimate == m->est, "%s: %c estimate %.17g changed from %.17g", what, n, s.estimate,
             m->est);
    } else if (m->est_kind == 1) {
        int ok = 0;
        for (int i = 0; i < m->ncand; i++)
            ok |= fabs(s.estimate - m->cand[i]) <= TOL;
        MUST(ok, "%s: %c AIMD estimate %.17g from %.17g, model %.17g%s%.17g", what, n, s.estimate,
             m->est, m->cand[0], m->ncand > 1 ? " or " : "", m->ncand > 1 ? m->cand[1] : 0.0);
    } else {
        MUST(s.estimate == m->est || (s.estimate >= m->lo - TOL && s.estimate <= m->hi + TOL),
             "%s: %c estimate %.17g from %.17g, not within %.17g..%.17g", what, n, s.estimate,
             m->est, m->lo, m->hi);
    }
    m->est_kind = 0;
    m->est = s.estimate;
    m->limit = s.limit;
    if (s.limit > m->peak_seen)
        m->peak_seen = s.limit;
    MUST(s.limit_peak >= m->peak_seen && s.limit_peak <= c->max_limit,
         "%s: %c limit_peak %u, largest limit seen %u, max %u", what, n, s.limit_peak, m->peak_seen,
         c->max_limit);
    if (c->algorithm == RESIL_LIMITER_AIMD)
        MUST(s.limit_peak == m->peak_seen, "%s: %c AIMD limit_peak %u, largest limit seen %u", what,
             n, s.limit_peak, m->peak_seen);
    /* Hall: at most k held permits were granted under limits <= k. */
    for (uint32_t i = 0; i < m->nheld; i++)
        MUST(w->grants[m->held[i]].lim >= i + 1,
             "%s: %c holds %u permits granted under limits <= %u", what, n, i + 1,
             w->grants[m->held[i]].lim);
    return s;
}

/* After every step, for the limiters it touched (@p which: bit 0 A, bit
 * 1 B; the other's memory did not change): check(quiescent) (through A's
 * handles in turn), the stats (every 4th step also through A's second
 * handle: the same). */
static void expect_same(world *w, int which, int step, const char *what)
{
    for (int bk = 0; bk < 2; bk++) {
        mlim *m = &w->l[bk];
        if (!(which >> bk & 1))
            continue;
        int hi = step & 1;
        MUST(resil_limiter_check(m->h[hi], 1) == RESIL_OK, "%s: check(%c%d): %s", what, 'A' + bk,
             hi, resil_status_detail());
        resil_limiter_stats_t s0 = observe(w, bk, what), s1;
        if (bk == 0 && step % 4 == 0) {
            MUST(resil_limiter_stats(m->h[1], &s1) == RESIL_OK, "stats");
            MUST(memcmp(&s0, &s1, sizeof s0) == 0, "%s: A's handles see different stats", what);
        }
    }
}

/* AIMD: the model of one sample (a release that returned OK) through
 * handle @p hi: the batching and the update the header describes; sets
 * the estimates allowed. */
static void aimd_sample(world *w, mlim *m, int hi, uint64_t lat, int dropped)
{
    const resil_limiter_config_t *c = &m->cfg;
    int bad = dropped || lat > c->timeout_ns;
    uint32_t L = m->limit;
    uint64_t bs = L / 8 > 16 ? L / 8 : 16;
    m->drops += (uint64_t)bad;
    if (m->exact && m->stale[hi])
        m->exact = 0; /* it may count on the shared line, applied at once */
    if (!m->exact) {  /* bounds: from cur * backoff to cur + a batch / cur */
        uint64_t bmax = c->max_limit / 8 > 16 ? c->max_limit / 8 : 16;
        m->est_kind = 2;
        m->lo = clamp_est(m, m->est * c->backoff_ratio);
        m->hi = clamp_est(m, m->est + (double)bmax / m->est);
        return;
    }
    m->bn++;
    m->bgood += (uint64_t)!bad;
    if (!bad && m->bn < bs)
        return; /* joins the batch */
    uint64_t n = m->bn, good = m->bgood;
    m->bn = m->bgood = 0;
    double cur = m->est;
    uint32_t fl = (uint32_t)cur;
    int dec = bad && m->since + n >= fl;
    int use_lo = 0, use_hi = 0;
    if (good > 0) {
        uint32_t lo, hi2, need = (L + 1) / 2 - 1;
        below(w, m, L, &lo, &hi2);
        use_lo = lo >= need;
        use_hi = hi2 >= need;
    }
    m->est_kind = 1;
    m->ncand = 0;
    for (int use = use_lo; use <= use_hi; use++) {
        double e = cur;
        if (use)
            e += (double)good / cur;
        if (dec)
            e *= c->backoff_ratio;
        m->cand[m->ncand++] = clamp_est(m, e);
    }
    /* A batch that changes nothing may leave the count alone: it is past
     * the round either way, and stays so until a decrease. */
    m->since = dec ? 0 : m->since + n < 0xFFFF ? (uint32_t)(m->since + n) : 0xFFFF;
}

/* GRADIENT: one sample; the estimate may move at most one round. */
static void gradient_sample(mlim *m, uint64_t lat, int dropped)
{
    const resil_limiter_config_t *c = &m->cfg;
    uint64_t rtt = lat > 0 ? lat : 1;
    m->drops += (uint64_t)(dropped != 0);
    if (m->rtt_max == 0 || rtt < m->rtt_min)
        m->rtt_min = rtt;
    if (rtt > m->rtt_max)
        m->rtt_max = rtt;
    double s = c->smoothing, q = c->queue_size, e = m->est;
    m->est_kind = 2;
    m->lo = clamp_est(m, (1.0 - s) * e + s * (0.5 * e + q));
    m->hi = clamp_est(m, (1.0 - s) * e + s * (e + q));
    m->lo -= TOL * m->lo;
    m->hi += TOL * m->hi;
}

/* A permit granted by limiter @p bk into slot @p si (NULL: not kept in a
 * slot), under limit @p lim. @return the grant's index. */
static int granted(world *w, int bk, slot *s, const resil_limiter_permit_t *p, uint32_t lim)
{
    mlim *m = &w->l[bk];
    MUST(held_equal(w, bk, p) < 0, "%c: a permit equal to one still held", 'A' + bk);
    MUST(w->ngrants < MAX_GRANTS, "more grants than steps");
    m->granted++;
    grant *g = &w->grants[w->ngrants];
    g->inc = m->inc;
    g->state = HELD;
    g->lim = lim;
    g->value = *p;
    held_insert(w, m, w->ngrants);
    for (uint32_t i = 0; i < m->nheld; i++) /* Hall, as in observe() */
        MUST(w->grants[m->held[i]].lim >= i + 1, "%c holds %u permits granted under limits <= %u",
             'A' + bk, i + 1, w->grants[m->held[i]].lim);
    if (s != NULL) {
        s->p = *p;
        s->inc = m->inc;
        s->grant = w->ngrants;
        s->spent = 0;
    }
    return w->ngrants++;
}

/* Handle @p hi of limiter @p bk registered the process (B's two handles
 * are one). */
static void registers(world *w, int bk, int hi)
{
    mlim *m = &w->l[bk];
    m->registered = 1;
    m->stale[hi] = 0;
    if (bk == 1)
        m->stale[0] = m->stale[1] = 0;
}

/* try_acquire on limiter @p bk through handle @p hi, checked against the
 * admission rule. @return the status. */
static resil_status acquire(world *w, int bk, int hi, slot *s)
{
    mlim *m = &w->l[bk];
    uint32_t L = m->limit, lo, hi2;
    below(w, m, L, &lo, &hi2);
    resil_limiter_permit_t p;
    memset(&p, 0xA5, sizeof p);
    resil_status got = resil_limiter_try_acquire(m->h[hi], &p);
    registers(w, bk, hi);
    if (got == RESIL_OK) {
        MUST(lo < L, "%c: granted with %u permits surely below the limit %u", 'A' + bk, lo, L);
        granted(w, bk, s, &p, L);
    } else {
        MUST(got == RESIL_E_LIMIT_REACHED, "%c: try_acquire: %s", 'A' + bk, resil_status_name(got));
        MUST(hi2 >= L, "%c: refused with %u held, limit %u", 'A' + bk, m->nheld, L);
        m->rejected++;
        /* what a refused acquire left is no permit */
        resil_status r = resil_limiter_release(m->h[hi], &p, 1, 0);
        MUST(r == RESIL_E_INVALID_ARG || r == RESIL_E_NOT_OWNER, "release after a refusal: %s",
             resil_status_name(r));
    }
    return got; /* the limit did not move: the stats wait for the step's end */
}

/* Releases slot @p s through handle @p hi of limiter @p bk (@p sample 0:
 * release_ignored) and checks the answer against the header's rules. */
static void release(world *w, int bk, int hi, slot *s, int sample, uint64_t lat, int dropped)
{
    mlim *m = &w->l[bk];
    resil_limiter_permit_t before = s->p;
    int cur = m->inc, match = held_equal(w, bk, &before);
    int foreign = s->inc >= 0 && s->inc != cur;
    resil_status got = sample ? resil_limiter_release(m->h[hi], &s->p, lat, dropped)
                              : resil_limiter_release_ignored(m->h[hi], &s->p);
    const char *why;
    int ok_allowed = 0, inval_allowed = 0, not_owner_allowed = 0, ok_required = 0;
    if (foreign && w->inc_id[s->inc] != w->inc_id[cur]) {
        why = "a permit of another limiter";
        inval_allowed = 1;
    } else if (foreign || s->inc < 0) { /* ids that collide make a permit a forgery */
        why = foreign ? "a permit of another limiter with the same id" : "a forged struct";
        inval_allowed = not_owner_allowed = 1;
        ok_allowed = match >= 0;
        ok_required = match >= 0 && before.gen_ == w->grants[match].value.gen_; /* a copy */
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
        held_remove(m, match);
        if (sample) {
            m->samples++;
            if (m->cfg.algorithm == RESIL_LIMITER_AIMD)
                aimd_sample(w, m, hi, lat, dropped);
            else
                gradient_sample(m, lat, dropped);
        }
    }
    if (got == RESIL_OK || got == RESIL_E_NOT_OWNER)
        s->spent = 1;
    if (m->est_kind != 0) /* the limit may have moved: the model must see it now */
        observe(w, bk, "release");
}

/* A latency for a sample: edges of the arithmetic and of timeout_ns, or a
 * few milliseconds (GRADIENT compares them with the baseline). */
static uint64_t pick_latency(fz_in *in, const mlim *m)
{
    uint8_t k = fz_u8(in);
    uint64_t t = m->cfg.timeout_ns;
    switch (k % 8) {
    case 0:
        return fz_pick(in);
    case 1:
        return k >> 7 ? 0 : UINT64_MAX - (k >> 3 & 3);
    case 2:
        return k >> 7 ? t : t == UINT64_MAX ? t : t + 1;
    default:
        return RESIL_US(500) * (1 + (k >> 3));
    }
}

/* A struct the input forged: random fields, or a permit with a field
 * changed. */
static void forge(fz_in *in, world *w, slot *s)
{
    uint8_t how = fz_u8(in);
    const slot *src = &w->slots[fz_u8(in) % SLOTS];
    s->p = src->p;
    uint32_t v = (uint32_t)fz_bytes(in, 4);
    switch (how % 8) {
    case 0:
        s->p.id_ = how & 0x80 ? w->inc_id[w->l[0].inc] : v;
        s->p.cell_ = (uint16_t)fz_bytes(in, 2);
        s->p.tag_ = (uint16_t)fz_bytes(in, 2);
        s->p.gen_ = (uint16_t)fz_bytes(in, 2);
        s->p.live_ = how & 0x40 ? 1 : (uint16_t)fz_bytes(in, 2);
        break;
    case 1:
        s->p.id_ ^= v | 1;
        break;
    case 2:
        s->p.cell_ ^= (uint16_t)(how & 0x80 ? v | 1 : 1 + v % 8);
        break;
    case 3:
        s->p.tag_ ^= (uint16_t)(how & 0x80 ? v | 1 : 1 + v % 4); /* another epoch, record */
        break;
    case 4:
        s->p.live_ ^= (uint16_t)(v | 1);
        break;
    case 5:
        s->p.gen_ ^= (uint16_t)(v | 1);
        break;
    case 6: /* the tag of padding cells, at any cell */
        s->p.id_ = w->inc_id[w->l[(how >> 7) & 1].inc];
        s->p.cell_ = (uint16_t)(how & 0x40 ? v : v % 1280);
        s->p.tag_ = 0xFFFF;
        s->p.live_ = 1;
        break;
    default: /* a real one's id and tag at another cell */
        s->p.cell_ = (uint16_t)(v % 1280);
        s->p.live_ = 1;
        break;
    }
    s->inc = -1;
    s->grant = -1;
    s->spent = 0;
}

/* Every grant of limiter @p bk held now becomes @p state. */
static void drop_all(world *w, int bk, int state)
{
    mlim *m = &w->l[bk];
    for (uint32_t i = 0; i < m->nheld; i++)
        w->grants[m->held[i]].state = state;
    m->nheld = 0;
}

static void reclaim(fz_in *in, world *w, int bk, int hi)
{
    mlim *m = &w->l[bk];
    uint8_t how = fz_u8(in);
    int n;
    if (how % 3 == 0 && m->self_reclaims < 250) {
        /* this process, as a supervisor would after reaping it (record
         * epochs are 8 bits: 256 reclaims would let an old permit match) */
        n = resil_limiter_reclaim_pid(m->h[hi], (int)getpid());
        MUST(n >= 0 && (uint32_t)n == m->nheld, "reclaim_pid(self) on %c: %d, %u held", 'A' + bk, n,
             m->nheld);
        m->reclaimed += m->nheld;
        drop_all(w, bk, RECLAIMED);
        m->registered = 0;
        m->stale[0] = m->stale[1] = 1;
        m->self_reclaims++;
    } else if (how % 3 == 1) { /* a process without a record */
        n = resil_limiter_reclaim_pid(m->h[hi], (int)getppid());
        MUST(n == 0, "reclaim_pid(parent): %d", n);
    } else { /* nobody is dead */
        n = resil_limiter_reclaim_dead(m->h[hi]);
        MUST(n == 0, "reclaim_dead: %d", n);
    }
}

/* Acquires until refused, checks how many were admitted, gives them back:
 * nothing lost or minted. */
static void fill(world *w, int bk, int hi)
{
    mlim *m = &w->l[bk];
    uint32_t L = m->limit, lo, hi2;
    if (L > FILL_MAX)
        return;
    below(w, m, L, &lo, &hi2);
    static resil_limiter_permit_t got[FILL_MAX + 1];
    static uint8_t taken[65536 / 8]; /* cells held: every permit held now has this tag */
    for (uint32_t i = 0; i < m->nheld; i++) {
        uint16_t cell = w->grants[m->held[i]].value.cell_;
        taken[cell / 8] |= (uint8_t)(1u << cell % 8);
    }
    uint32_t k = 0;
    for (;;) {
        resil_status s = resil_limiter_try_acquire(m->h[hi], &got[k]);
        registers(w, bk, hi);
        if (s != RESIL_OK) {
            MUST(s == RESIL_E_LIMIT_REACHED, "fill: %s", resil_status_name(s));
            MUST(m->nheld + k >= L, "fill of %c refused at %u + %u held, limit %u", 'A' + bk,
                 m->nheld, k, L);
            m->rejected++;
            break;
        }
        MUST(lo + k < L, "fill of %c: granted beyond the limit %u (%u + %u surely below)", 'A' + bk,
             L, lo, k);
        uint16_t cell = got[k].cell_;
        MUST(!(taken[cell / 8] >> cell % 8 & 1), "fill: cell %u granted twice", cell);
        taken[cell / 8] |= (uint8_t)(1u << cell % 8);
        m->granted++;
        k++;
    }
    MUST(k >= L - hi2 && k <= L - lo, "fill of %c admitted %u, limit %u, %u..%u held below",
         'A' + bk, k, L, lo, hi2);
    resil_limiter_stats_t s;
    MUST(resil_limiter_stats(m->h[0], &s) == RESIL_OK && s.in_flight == m->nheld + k,
         "fill: in flight %u, %u + %u", s.in_flight, m->nheld, k);
    for (uint32_t j = 0; j < k; j++)
        MUST(resil_limiter_release_ignored(m->h[(hi + j) & 1], &got[j]) == RESIL_OK,
             "fill: release %u of %u", j, k);
    memset(taken, 0, sizeof taken);
    observe(w, bk, "fill");
}

/* Releases every permit held (copies of their values), then nothing is in
 * flight. */
static void release_all(fz_in *in, world *w, int bk, int hi)
{
    mlim *m = &w->l[bk];
    uint8_t how = fz_u8(in);
    uint64_t lat = pick_latency(in, m);
    while (m->nheld > 0) {
        int g = m->held[how & 1 ? m->nheld - 1 : 0];
        slot s = {w->grants[g].value, m->inc, g, 0};
        release(w, bk, hi, &s, how % 3 != 2, lat, (how >> 2) % 5 == 0);
    }
    resil_limiter_stats_t st;
    MUST(resil_limiter_stats(m->h[hi], &st) == RESIL_OK && st.in_flight == 0,
         "after releasing everything %c has %u in flight", 'A' + bk, st.in_flight);
}

/* @p n calls, each acquired and released at once with one latency. */
static void burst(fz_in *in, world *w, int bk, int hi)
{
    mlim *m = &w->l[bk];
    int n = 1 + fz_u8(in) % 24;
    uint64_t lat = pick_latency(in, m);
    uint8_t drops = fz_u8(in); /* the (drops % 32)-th calls are dropped; 0: none */
    for (int i = 0; i < n; i++) {
        slot s;
        if (acquire(w, bk, hi, &s) != RESIL_OK)
            break;
        release(w, bk, (hi + i) & 1, &s, 1, lat, drops % 32 != 0 && (i + 1) % (drops % 32) == 0);
        if (s.grant == w->ngrants - 1) /* no slot knows it: its entry is free again */
            w->ngrants--;
    }
}

/* Limiter @p bk was just made (handles in place): a new model, whose
 * permits' id_ a probe permit tells. */
static void made(world *w, int bk, const resil_limiter_config_t *c)
{
    mlim *m = &w->l[bk];
    resil_limiter_t *h0 = m->h[0], *h1 = m->h[1];
    memset(m, 0, sizeof *m);
    m->h[0] = h0;
    m->h[1] = h1;
    m->cfg = *c;
    m->registered = 1;
    m->limit = m->peak_seen = c->initial_limit;
    m->est = c->initial_limit;
    m->exact = 1;
    m->since = 0xFFFF;
    MUST(w->ninc < MAX_INC, "more limiters than steps");
    m->inc = w->ninc++;
    resil_limiter_permit_t p;
    MUST(resil_limiter_try_acquire(m->h[0], &p) == RESIL_OK, "probe: %s", resil_status_detail());
    w->inc_id[m->inc] = p.id_;
    MUST(resil_limiter_release_ignored(m->h[0], &p) == RESIL_OK, "probe release");
    m->granted = 1;
    for (int i = 0; i < m->inc; i++)
        w->id_collisions += w->inc_id[i] == p.id_;
    observe(w, bk, "made");
}

/* Makes A anew in its memory, or B with _new; what the old one had out is
 * gone. */
static void remake(world *w, int bk, const resil_limiter_config_t *c)
{
    mlim *m = &w->l[bk];
    drop_all(w, bk, GONE);
    resil_limiter_free(m->h[0]);
    if (bk == 0) {
        resil_limiter_free(m->h[1]);
        MUST(resil_limiter_init(w->mem, w->len, c) == RESIL_OK, "init: %s", resil_status_detail());
        for (int hi = 0; hi < 2; hi++)
            MUST(resil_limiter_attach(w->mem, w->len, &w->local[hi], &m->h[hi]) == RESIL_OK,
                 "attach: %s", resil_status_detail());
    } else {
        MUST(resil_limiter_new(c, &w->local[0], &m->h[0]) == RESIL_OK, "new: %s",
             resil_status_detail());
        m->h[1] = m->h[0];
    }
    made(w, bk, c);
}

/* Handle @p hi of A freed and attached again; or an attach / new that the
 * allocator fails: a status, no handle, nothing leaked, A unchanged. */
static void handles(fz_in *in, world *w, int hi)
{
    mlim *m = &w->l[0];
    uint8_t how = fz_u8(in);
    if (how % 2 == 0) {
        resil_limiter_free(m->h[hi]);
        MUST(resil_limiter_attach(w->mem, w->len, &w->local[hi], &m->h[hi]) == RESIL_OK,
             "attach again: %s", resil_status_detail());
        registers(w, 0, hi);
        return;
    }
    uint64_t live = fz_heap.allocs - fz_heap.frees;
    resil_limiter_t *x = (resil_limiter_t *)1;
    fz_heap.fail_in = (how >> 1) % 3;
    resil_status s = how & 0x80 ? resil_limiter_new(&w->l[1].cfg, NULL, &x)
                                : resil_limiter_attach(w->mem, w->len, &w->local[hi], &x);
    fz_heap.fail_in = -1;
    MUST((s == RESIL_OK && x != NULL) || (s == RESIL_E_NO_MEMORY && x == NULL),
         "%s with allocation %d failing: %s", how & 0x80 ? "new" : "attach", (how >> 1) % 3,
         resil_status_name(s));
    MUST(s == RESIL_OK || fz_heap.allocs - fz_heap.frees == live, "a failed call leaked");
    if (s == RESIL_OK && !(how & 0x80))
        m->registered = 1; /* the process has a record again; the old handles are as they were */
    resil_limiter_free(x);
    MUST(fz_heap.allocs - fz_heap.frees == live, "new + free or attach + free leaked");
}

static void clock_step(fz_in *in, world *w)
{
    uint8_t how = fz_u8(in);
    resil_manual_clock_t *mc = w->mc;
    uint64_t now = resil_manual_clock_get(mc);
    switch (how % 5) {
    case 0:
        resil_manual_clock_advance(mc, RESIL_MS(1) * (how >> 3));
        break;
    case 1:
        resil_manual_clock_advance(mc, fz_pick(in));
        break;
    case 2: { /* back */
        uint64_t d = fz_pick(in);
        resil_manual_clock_set(mc, now > d ? now - d : 0);
        break;
    }
    case 3:
        resil_manual_clock_set(mc, UINT64_MAX - fz_u8(in));
        break;
    default:
        resil_manual_clock_set(mc, fz_pick(in));
        break;
    }
}

/* ---- attach surface ---- */

/* A valid limiter with permits held and samples applied (by a handle since
 * freed), for attach_surface() to corrupt. */
static unsigned char *make_block(fz_in *in, size_t *len)
{
    resil_limiter_config_t c = pick_config(in, 0);
    *len = resil_limiter_size(&c);
    unsigned char *mem = fz_block(*len);
    MUST(resil_limiter_init(mem, *len, &c) == RESIL_OK, "init");
    resil_limiter_t *l = NULL;
    MUST(resil_limiter_attach(mem, *len, NULL, &l) == RESIL_OK, "attach");
    resil_limiter_permit_t p[4];
    uint8_t k = fz_u8(in);
    for (int i = 0; i < 40 * (k & 1); i++) /* samples: the algorithm's words move */
        if (resil_limiter_try_acquire(l, &p[0]) == RESIL_OK)
            resil_limiter_release(l, &p[0], RESIL_MS(1) + RESIL_US(100) * (uint64_t)i, i % 9 == 0);
    for (int i = 0; i < (k >> 1) % 5; i++)
        resil_limiter_try_acquire(l, &p[i]);
    if (k & 0x80)
        resil_limiter_reclaim_pid(l, (int)getpid());
    resil_limiter_free(l);
    return mem;
}

/* Attach to bytes from the input, or to a valid block with some flipped. */
static void attach_surface(fz_in *in)
{
    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(RESIL_SEC(1000), &mc) == RESIL_OK, "manual clock");
    resil_limiter_local_t local = {resil_manual_clock_as_clock(mc)};
    unsigned char *at;
    size_t len;
    unsigned char *mem = fz_attach_memory(in, 8192, 6, make_block, &at, &len);
    resil_limiter_t *l = (resil_limiter_t *)1;
    resil_status s = resil_limiter_attach(at, len, &local, &l);
    fz_attach_answer(s, l, RESIL_E_FULL);
    if (s == RESIL_OK) { /* whatever got through survives use */
        int sound = resil_limiter_check(l, 0) == RESIL_OK;
        resil_limiter_permit_t p[4];
        memset(p, 0, sizeof p);
        for (int i = 0; i < 16; i++) {
            resil_limiter_permit_t *q = &p[fz_u8(in) % 4];
            uint8_t op = fz_u8(in);
            resil_status r;
            switch (op % 7) {
            case 0:
            case 1:
                r = resil_limiter_try_acquire(l, q);
                MUST(r == RESIL_OK || r == RESIL_E_LIMIT_REACHED || r == RESIL_E_FULL, "try: %s",
                     resil_status_name(r));
                break;
            case 2:
            case 3:
                r = resil_limiter_release(l, q, op & 0x80 ? fz_pick(in) : RESIL_MS(op >> 3),
                                          op & 0x40 ? 1 : 0);
                MUST(r == RESIL_OK || r == RESIL_E_INVALID_ARG || r == RESIL_E_NOT_OWNER,
                     "release: %s", resil_status_name(r));
                break;
            case 4:
                r = resil_limiter_release_ignored(l, q);
                MUST(r == RESIL_OK || r == RESIL_E_INVALID_ARG || r == RESIL_E_NOT_OWNER,
                     "release_ignored: %s", resil_status_name(r));
                break;
            case 5:
                MUST((op & 8 ? resil_limiter_reclaim_dead(l)
                             : resil_limiter_reclaim_pid(l, (int)getpid())) >= 0,
                     "reclaim");
                break;
            default:
                resil_manual_clock_advance(mc, fz_pick(in));
                break;
            }
            s = resil_limiter_check(l, 0);
            MUST(s == RESIL_OK || (s == RESIL_E_CORRUPT && !sound), "check: %s %s",
                 resil_status_name(s), resil_status_detail());
            resil_limiter_stats_t st;
            MUST(resil_limiter_stats(l, &st) == RESIL_OK, "stats");
            MUST(st.limit >= 1 && st.limit <= RESIL_LIMITER_MAX_LIMIT && st.estimate >= 1 &&
                     st.estimate <= RESIL_LIMITER_MAX_LIMIT,
                 "limit %u estimate %g", st.limit, st.estimate);
        }
        resil_limiter_free(l);
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
    resil_limiter_config_t c = pick_config(&in, (mode & 0xC0) == 0xC0);
    char bad[200];
    invalid_fields(&c, bad, sizeof bad);
    int valid = bad[0] == 0;
    config_surface(&in, &c, valid, bad);
    if (!valid)
        return 0;
    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(RESIL_SEC(1000), &mc) == RESIL_OK, "manual clock");

    static world w; /* large: the model's arrays are reset by their counts */
    memset(w.l, 0, sizeof w.l);
    w.ninc = w.ngrants = 0;
    w.aba = w.id_collisions = 0;
    w.mc = mc;
    w.local[0].clock = resil_manual_clock_as_clock(mc);
    /* A's second handle sometimes on the coarse clock (lazy reclaim then
     * sweeps in real time: liveness reads of /proc are slow under TSan) */
    w.local[1].clock = (mode & 0x0C) == 0x0C ? (resil_clock_t){0} : w.local[0].clock;
    memset(w.slots, 0, sizeof w.slots);
    for (int i = 0; i < SLOTS; i++)
        w.slots[i].inc = w.slots[i].grant = -1;
    /* A's memory fits this config and every one pick_config() makes. */
    w.len = resil_limiter_size(&c);
    if (w.len < RESIL_LIMITER_SIZE(RUN_MAX, 4, 64))
        w.len = RESIL_LIMITER_SIZE(RUN_MAX, 4, 64);
    w.mem = fz_block(w.len);
    MUST(resil_limiter_init(w.mem, w.len, &c) == RESIL_OK, "init: %s", resil_status_detail());
    if (mode & 0x10) { /* allocation failures: a status and no handle */
        resil_limiter_t *x = (resil_limiter_t *)1;
        uint64_t live = fz_heap.allocs - fz_heap.frees;
        fz_heap.fail_in = 0;
        MUST(resil_limiter_attach(w.mem, w.len, &w.local[0], &x) == RESIL_E_NO_MEMORY && x == NULL,
             "attach with no memory");
        fz_heap.fail_in = 0;
        MUST(resil_limiter_new(&c, &w.local[0], &x) == RESIL_E_NO_MEMORY && x == NULL,
             "new with no memory");
        fz_heap.fail_in = -1;
        MUST(fz_heap.allocs - fz_heap.frees == live, "failed calls leaked");
    }
    for (int hi = 0; hi < 2; hi++)
        MUST(resil_limiter_attach(w.mem, w.len, &w.local[hi], &w.l[0].h[hi]) == RESIL_OK,
             "attach: %s", resil_status_detail());
    null_args(w.l[0].h[0], w.mem, w.len);
    made(&w, 0, &c);
    resil_limiter_config_t cb = resil_limiter_config_default();
    cb.algorithm = mode & 0x20 ? RESIL_LIMITER_GRADIENT : RESIL_LIMITER_AIMD;
    cb.min_limit = 1;
    cb.max_limit = 4;
    cb.initial_limit = 1 + mode % 4;
    cb.max_processes = 2; /* B small: stats and check scan it every step */
    cb.stripes = 1;
    cb.probe_interval = 10 + mode % 3 * 20;
    cb.probe_samples = 1 + mode % 3;
    MUST(resil_limiter_new(&cb, &w.local[0], &w.l[1].h[0]) == RESIL_OK, "new");
    w.l[1].h[1] = w.l[1].h[0];
    made(&w, 1, &cb);
    expect_same(&w, 3, 0, "fresh");

    int steps = c.max_limit > RUN_MAX ? STEPS_BIG : STEPS;
    for (int step = 0; fz_more(&in) && step < steps; step++) {
        uint8_t op = fz_u8(&in), arg = fz_u8(&in);
        int bk = arg & 0x80 ? 1 : 0, hi = arg >> 6 & 1, si = arg % SLOTS;
        uint64_t heap = fz_heap.allocs - fz_heap.frees;
        int allocates = 0, touched = 1 << bk;
        switch (op % 16) {
        case 0:
        case 1:
        case 2:
            acquire(&w, bk, hi, &w.slots[si]);
            break;
        case 3:
        case 4:
        case 5: {
            uint64_t lat = pick_latency(&in, &w.l[bk]);
            release(&w, bk, hi, &w.slots[si], 1, lat, op >> 7);
            break;
        }
        case 6:
            release(&w, bk, hi, &w.slots[si], 0, 0, 0);
            break;
        case 7: /* a copy of another slot, as a careless caller makes */
            w.slots[si] = w.slots[fz_u8(&in) % SLOTS];
            touched = 0;
            break;
        case 8:
            forge(&in, &w, &w.slots[si]);
            touched = 0;
            break;
        case 9:
            reclaim(&in, &w, bk, hi);
            break;
        case 10: /* the next acquire that finds no free cell may sweep */
            clock_step(&in, &w);
            touched = 0;
            break;
        case 11:
            fill(&w, bk, hi);
            break;
        case 12:
            release_all(&in, &w, bk, hi);
            break;
        case 13:
            handles(&in, &w, hi);
            allocates = 1;
            touched = 1;
            break;
        case 14: { /* made anew: A initialized again in its memory, B freed and new */
            resil_limiter_config_t n = pick_config(&in, 0);
            if (bk == 1) { /* B stays small */
                n.max_limit = n.min_limit + n.max_limit % 4;
                n.initial_limit = n.min_limit;
                n.max_processes = 2;
                n.stripes = 1;
            }
            remake(&w, bk, &n);
            allocates = 1;
            break;
        }
        default:
            burst(&in, &w, bk, hi);
            break;
        }
        MUST(allocates || fz_heap.allocs - fz_heap.frees == heap, "step %d allocated", step);
        expect_same(&w, touched, step, "step");
    }
    for (int bk = 0; bk < 2; bk++)
        resil_limiter_free(w.l[bk].h[0]);
    resil_limiter_free(w.l[0].h[1]);
    free(w.mem);
    resil_manual_clock_free(mc);
    return 0;
}
