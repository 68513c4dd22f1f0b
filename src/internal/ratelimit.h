/*
 * What the rate limiter and the keyed rate-limit set share: the derived
 * GCRA parameters stored in their blocks, and their validation.
 */
#ifndef RESIL_INTERNAL_RATELIMIT_H
#define RESIL_INTERNAL_RATELIMIT_H

#include <stdint.h>

#include "resil/ratelimit.h"

typedef struct resil__ratelimit_params {
    uint64_t rate, period_ns, burst;
    uint64_t interval_ns;  /* T, rounded to the nearest ns */
    uint64_t horizon_ns;   /* burst * T = tau + T */
    uint64_t tolerance_ns; /* tau */
    uint64_t pad[2];
} resil__ratelimit_params;

/* Validates @p cfg (details name "<who>.<field>") and derives @p p. */
resil_status resil__ratelimit_params_make(const resil_ratelimit_config_t *cfg,
                                          resil__ratelimit_params *p, const char *who);

/* RESIL_OK if @p p is what its own rate, period and burst derive. */
resil_status resil__ratelimit_params_verify(const resil__ratelimit_params *p);

#endif /* RESIL_INTERNAL_RATELIMIT_H */
