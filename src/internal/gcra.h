/*
 * GCRA, the generic cell rate algorithm, in its "virtual scheduling" form
 * (ATM Forum Traffic Management 4.0, section 4.4.2; ITU-T I.371 annex A):
 * one word, the theoretical arrival time TAT, decides conformance.
 *
 *   T   = emission interval = period / rate
 *   tau = tolerance = T * (burst - 1)
 *   a request for n cells at time t is admitted iff
 *         max(TAT, t) + n*T - t <= tau + T         (= burst * T)
 *   and then TAT := max(TAT, t) + n*T; otherwise it would be admitted
 *   after  max(TAT, t) + n*T - t - burst*T  more ns.
 *
 * With `slack` > 0 the request may also book time ahead (the smooth
 * limiter): it is admitted iff the excess is <= slack, and the caller
 * waits the excess before proceeding. One CAS per decision; a clock that
 * steps back is treated as unchanged time (max with TAT); a TAT that would
 * pass UINT64_MAX rejects rather than wraps or saturates into admissions.
 */
#ifndef RESIL_INTERNAL_GCRA_H
#define RESIL_INTERNAL_GCRA_H

#include <stdint.h>

#include "atomic.h"
#include "util.h"

/* @return 1 admitted (*wait = ns to wait first, 0 unless slack was used),
 * 0 rejected (*wait = ns until it would be admitted without slack). */
static inline int resil__gcra_decide(resil__atomic_u64 *tat_word, uint64_t now, uint64_t cost,
                                     uint64_t limit_ahead, uint64_t slack, uint64_t *wait)
{
    uint64_t tat = resil__a64_load_relaxed(tat_word);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        if (RESIL__UNLIKELY(base > UINT64_MAX - cost)) {
            *wait = UINT64_MAX; /* the end of representable time: never admit */
            return 0;
        }
        uint64_t next = base + cost;
        uint64_t ahead = next - now;
        if (ahead > limit_ahead) {
            uint64_t excess = ahead - limit_ahead;
            if (excess > slack) {
                *wait = excess;
                return 0;
            }
            if (resil__a64_cas_acq_rel(tat_word, &tat, next)) {
                *wait = excess;
                return 1;
            }
            continue;
        }
        if (resil__a64_cas_acq_rel(tat_word, &tat, next)) {
            *wait = 0;
            return 1;
        }
    }
}

#endif /* RESIL_INTERNAL_GCRA_H */
