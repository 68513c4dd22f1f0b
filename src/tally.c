/* Statistics counters bumped without locked instructions: see
 * internal/tally.h. */
#define _DEFAULT_SOURCE
#include "internal/tally.h"

#include <time.h>

#include "internal/stripe.h"

#define OWNED (UINT64_C(1) << 63)
#define PID_BITS 22
#define START_BITS 20
#define THREAD_BITS 21
#define FIELD(bits) ((UINT64_C(1) << (bits)) - 1)
#define RECHECK_NS UINT64_C(1000000000)

_Thread_local resil__tally_tl resil__tally_tls[RESIL__TALLY_WAYS]
    __attribute__((tls_model("initial-exec")));

static uint64_t owner_word(uint64_t me, uint32_t thread)
{
    resil__owner o = resil__owner_unpack(me);
    return OWNED | (uint64_t)(o.pid & FIELD(PID_BITS)) << (START_BITS + THREAD_BITS) |
           (uint64_t)(o.start & FIELD(START_BITS)) << THREAD_BITS | thread;
}

/* Whether the process named in owner word @p w is gone
 * (resil__owner_alive_start() on the start time's low bits the word
 * keeps). When /proc cannot tell, kill() decides: a live owner is never
 * called dead, so a line never has two writers. */
static int owner_dead(uint64_t w)
{
    uint32_t pid = (uint32_t)((w >> (START_BITS + THREAD_BITS)) & FIELD(PID_BITS));
    uint32_t start = (uint32_t)((w >> THREAD_BITS) & FIELD(START_BITS));
    return !resil__owner_alive_start(pid, start, (uint32_t)FIELD(START_BITS));
}

static uint64_t coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Takes line @p l of a dead owner, checking at most once per RECHECK_NS
 * per tally (the shared line's owner word holds the last check time). */
static int take_from_dead(resil__tally_line *shared, resil__tally_line *l, uint64_t mine)
{
    uint64_t now = coarse_now();
    uint64_t last = resil__a64_load_relaxed(&shared->owner);
    if (now - last < RECHECK_NS || !resil__a64_cas_relaxed(&shared->owner, &last, now))
        return 0;
    uint64_t o = resil__a64_load_acquire(&l->owner);
    return o != 0 && o != mine && owner_dead(o) && resil__a64_cas_acq_rel(&l->owner, &o, mine);
}

void resil__tally_fill(resil__tally_line *t, uint32_t n, resil__tally_tl *e)
{
    uint64_t me = resil__owner_self();
    uint32_t thread = resil__thread_index();
    resil__tally_line *got = NULL;
    if (n > 0 && thread <= FIELD(THREAD_BITS)) {
        uint64_t mine = owner_word(me, thread);
        for (uint32_t pass = 0; pass < 2 && got == NULL; pass++) {
            for (uint32_t i = 0; i < n; i++) {
                resil__tally_line *l = &t[(thread + i) % n];
                uint64_t o = resil__a64_load_acquire(&l->owner);
                if (o == mine ||
                    (pass == 1 && o == 0 && resil__a64_cas_acq_rel(&l->owner, &o, mine))) {
                    got = l;
                    break;
                }
            }
        }
        if (got == NULL) {
            /* a different candidate each second */
            resil__tally_line *l = &t[(thread + coarse_now() / RECHECK_NS) % n];
            if (take_from_dead(&t[n], l, mine))
                got = l;
        }
    }
    e->tally = t;
    e->me = me;
    e->ln = got != NULL ? (uintptr_t)got | 1 : (uintptr_t)&t[n];
    e->own = got != NULL ? owner_word(me, thread) : 0;
}

uint64_t resil__tally_sum(const resil__tally_line *t, uint32_t n, uint32_t i)
{
    uint64_t s = 0;
    for (uint32_t l = 0; l <= n; l++)
        s += resil__a64_load_relaxed(&t[l].c[i]);
    return s;
}
