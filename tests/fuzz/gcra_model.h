/*
 * Reference model of the rate limiters for the fuzz targets, written from
 * the header's definitions rather than from src/internal/gcra.h: GCRA in
 * its other classic form, the continuous-state leaky bucket (ITU-T I.371
 * annex A). The bucket holds X ns of work and drains one ns per ns since
 * the last conformance time LCT; n cells conform at time t iff
 *
 *     X' + n*T <= burst * T,   X' = max(0, X - (t - LCT)),
 *
 * and then X := X' + n*T, LCT := t. The virtual-scheduling TAT the library
 * stores is LCT + X. Everything is signed 128-bit, so nothing overflows.
 * The documented edge rules: a time before LCT is unchanged time (X' grows
 * instead of draining, i.e. max(TAT, t)); a request whose TAT would pass
 * UINT64_MAX is rejected with wait UINT64_MAX ("never").
 */
#ifndef RESIL_FUZZ_GCRA_MODEL_H
#define RESIL_FUZZ_GCRA_MODEL_H

#include "fuzz_input.h"

#include <stdint.h>
#include <string.h>

#include "resil/ratelimit.h"

typedef struct gm_params {
    uint64_t T, horizon, burst; /* horizon = burst * T = tau + T */
} gm_params;

typedef struct gm_state {
    fz_i128 x;    /* bucket content, ns */
    uint64_t lct; /* last conformance time; 0 with x = 0: never used */
} gm_state;

/* The header's validity rule: rate in 1..period_ns, burst >= 1, T = period
 * / rate rounded to the nearest ns (halves up), burst * T <= 2^62.
 * @return 1 and @p p if valid. */
static inline int gm_params_make(const resil_ratelimit_config_t *c, gm_params *p)
{
    memset(p, 0, sizeof *p);
    if (c->period_ns == 0 || c->rate == 0 || c->rate > c->period_ns || c->burst == 0)
        return 0;
    fz_u128 t = ((fz_u128)c->period_ns * 2 + c->rate) / ((fz_u128)c->rate * 2);
    fz_u128 h = t * c->burst;
    if (h > RESIL_RATELIMIT_MAX_HORIZON_NS)
        return 0;
    p->T = (uint64_t)t;
    p->horizon = (uint64_t)h;
    p->burst = c->burst;
    return 1;
}

static inline uint64_t gm_tat(const gm_state *s) { return (uint64_t)(s->lct + s->x); }

/* A request of @p n cells at @p t, booking up to @p slack ns ahead.
 * @return 1 admitted (@p s updated, *wait = ns to wait first), 0 rejected
 * (*wait = ns until the request would conform). */
static inline int gm_decide(const gm_params *p, gm_state *s, uint64_t n, uint64_t slack, uint64_t t,
                            uint64_t *wait)
{
    fz_i128 xp = s->x - ((fz_i128)t - (fz_i128)s->lct);
    if (xp < 0)
        xp = 0;
    fz_i128 cost = (fz_i128)n * p->T;
    if ((fz_i128)t + xp + cost > (fz_i128)UINT64_MAX) {
        *wait = UINT64_MAX;
        return 0;
    }
    fz_i128 excess = xp + cost - p->horizon;
    if (excess > (fz_i128)slack) {
        *wait = (uint64_t)excess;
        return 0;
    }
    *wait = excess > 0 ? (uint64_t)excess : 0;
    s->x = xp + cost;
    s->lct = t;
    return 1;
}

/* Checks the model against the definition of a rejection's wait: the same
 * request is rejected at t + wait - 1 and admitted at t + wait. */
static inline void gm_check_wait(const gm_params *p, const gm_state *s, uint64_t n, uint64_t t,
                                 uint64_t w)
{
    if (w == UINT64_MAX)
        return;
    gm_state probe = *s;
    uint64_t w2;
    MUST(w >= 1, "model: a rejection with wait 0");
    MUST(gm_decide(p, &probe, n, 0, t + w - 1, &w2) == 0, "model: admitted before its wait");
    MUST(gm_decide(p, &probe, n, 0, t + w, &w2) == 1, "model: rejected after its wait");
}

/* A request size: 1, burst, or anything in between. */
static inline uint64_t gm_pick_n(fz_in *in, const gm_params *p)
{
    uint8_t k = fz_u8(in);
    if (k % 4 == 0)
        return 1;
    if (k % 4 == 1)
        return p->burst;
    return 1 + fz_pick(in) % p->burst;
}

/* A config: mostly ones that work (so decisions get fuzzed; @p style
 * nonzero), else the whole 64-bit range of each field. */
static inline resil_ratelimit_config_t gm_pick_config(fz_in *in, unsigned style)
{
    resil_ratelimit_config_t c;
    if (style != 0) {
        c.rate = 1 + fz_u8(in) % 64;
        c.period_ns = c.rate * (1 + fz_bytes(in, 2));
        c.period_ns += style & 2 ? fz_u8(in) % c.rate : 0; /* T gets rounded */
        c.burst = 1 + fz_u8(in) % 16;
    } else {
        c.rate = fz_pick(in);
        c.period_ns = fz_pick(in);
        c.burst = fz_pick(in);
    }
    return c;
}

/* Where time goes next from @p now; @p tat is a TAT whose edge of
 * conformance is worth hitting exactly. */
static inline uint64_t gm_move_time(fz_in *in, const gm_params *p, uint64_t tat, uint64_t now)
{
    uint8_t k = fz_u8(in);
    switch (k % 8) {
    case 0:
        return fz_sat((fz_u128)now + fz_u8(in));
    case 1: { /* whole intervals, give or take 1 ns */
        fz_i128 i = fz_u8(in);
        return fz_clamp((fz_i128)now + p->T * i + fz_u8(in) % 3 - 1);
    }
    case 2:
        return fz_sat((fz_u128)now + fz_pick(in));
    case 3: /* back */
        return fz_clamp((fz_i128)now - fz_pick(in));
    case 4:
        return UINT64_MAX - fz_u8(in);
    case 5: { /* where n = 1 + (byte % 4) cells become conformant, +-1 ns */
        fz_i128 n = 1 + fz_u8(in) % 4, edge = (fz_i128)tat + n * p->T - p->horizon;
        return fz_clamp(edge + fz_u8(in) % 3 - 1);
    }
    case 6:
        return fz_pick(in);
    default:
        return fz_clamp((fz_i128)now - fz_u8(in));
    }
}

#endif /* RESIL_FUZZ_GCRA_MODEL_H */
