/*
 * Fuzz target: a sequence of breaker operations, decoded from the input, is
 * run against the real breaker and against a small reference model written
 * the straightforward way (single-threaded, an array for the window). After
 * every operation the two must agree on the status returned and the state;
 * the block must pass resil_breaker_check(). Any disagreement aborts, which
 * is what a fuzzer (or the replay driver) reports.
 *
 * Input: 8 bytes of configuration (count window of 1-8 calls, minimum,
 * failure threshold, consecutive threshold, K probes, open wait, probe
 * lease), then two bytes per operation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/breaker.h"

#define MUST(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_breaker: " __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct model {
    /* config */
    unsigned n, min, thr, consec_thr, k;
    uint64_t wait, lease;
    /* state */
    resil_breaker_state state;
    unsigned gen;
    int ring[8], filled, head, consec;
    uint64_t deadline;
    unsigned issued, ok, failed;
} model;

typedef struct mpermit {
    int held, probe, used, norecord;
    unsigned gen;
    resil_breaker_permit_t real;
} mpermit;

static void m_enter(model *m, resil_breaker_state s, uint64_t now)
{
    m->state = s;
    m->gen++;
    if (s == RESIL_BREAKER_CLOSED) {
        m->filled = m->head = m->consec = 0;
    } else if (s == RESIL_BREAKER_OPEN) {
        m->deadline = now + m->wait;
    } else if (s == RESIL_BREAKER_HALF_OPEN) {
        m->deadline = now + m->lease;
        m->issued = m->ok = m->failed = 0;
    }
}

static resil_status m_acquire(model *m, uint64_t now, mpermit *p)
{
    p->held = 1;
    p->used = 0;
    p->probe = 0;
    p->norecord = m->state == RESIL_BREAKER_DISABLED;
    for (;;) {
        p->gen = m->gen;
        switch (m->state) {
        case RESIL_BREAKER_CLOSED:
        case RESIL_BREAKER_DISABLED:
            return RESIL_OK;
        case RESIL_BREAKER_FORCED_OPEN:
            p->held = 0;
            return RESIL_E_BREAKER_FORCED_OPEN;
        case RESIL_BREAKER_OPEN:
            if (now < m->deadline) {
                p->held = 0;
                return RESIL_E_BREAKER_OPEN;
            }
            m_enter(m, RESIL_BREAKER_HALF_OPEN, now);
            p->gen = m->gen;
            if (m->issued < m->k) { /* the thread that half-opens takes a probe */
                m->issued++;
                p->probe = 1;
                return RESIL_OK;
            }
            continue;
        default: /* HALF_OPEN */
            if (now >= m->deadline) {
                m_enter(m, RESIL_BREAKER_OPEN, now);
                continue;
            }
            if (m->issued >= m->k) {
                p->held = 0;
                return RESIL_E_HALF_OPEN_FULL;
            }
            m->issued++;
            p->probe = 1;
            return RESIL_OK;
        }
    }
}

static resil_status m_record(model *m, uint64_t now, mpermit *p, resil_outcome o)
{
    if (!p->held || p->used)
        return RESIL_E_INVALID_ARG;
    p->used = 1;
    if (p->norecord) /* granted while DISABLED: nothing to record, ever */
        return RESIL_OK;
    if (p->gen != m->gen)
        return RESIL_E_STALE;
    if (o == RESIL_OUTCOME_IGNORED) {
        if (p->probe)
            m->issued--;
        return RESIL_OK;
    }
    int fail = o == RESIL_OUTCOME_FAILURE;
    if (p->probe) {
        if (fail)
            m->failed++;
        else
            m->ok++;
        int reopen =
            (m->thr && m->failed * 100 >= m->thr * m->k) ||
            (m->consec_thr && m->failed > 0 && (m->thr == 0 || m->failed >= m->consec_thr));
        if (reopen)
            m_enter(m, RESIL_BREAKER_OPEN, now);
        else if (m->ok + m->failed == m->k)
            m_enter(m, RESIL_BREAKER_CLOSED, now);
        return RESIL_OK;
    }
    m->ring[m->head] = fail;
    m->head = (m->head + 1) % (int)m->n;
    if (m->filled < (int)m->n)
        m->filled++;
    if (!fail) {
        m->consec = 0;
        return RESIL_OK;
    }
    m->consec++;
    int fails = 0;
    for (int i = 0; i < m->filled; i++)
        fails += m->ring[i];
    if ((m->consec_thr && (unsigned)m->consec >= m->consec_thr) ||
        (m->thr && (unsigned)m->filled >= m->min && (unsigned)fails * 100 >= m->thr * m->filled))
        m_enter(m, RESIL_BREAKER_OPEN, now);
    return RESIL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    model m;
    memset(&m, 0, sizeof m);
    m.n = 1 + data[0] % 8;
    m.min = 1 + data[1] % m.n;
    m.thr = data[2] % 101;
    m.consec_thr = data[3] % 4;
    if (m.thr == 0 && m.consec_thr == 0)
        m.thr = 50;
    m.k = 1 + data[4] % 4;
    m.wait = RESIL_MS(1 + data[5] % 50);
    m.lease = RESIL_MS(1 + data[6] % 50);
    m.gen = 1;
    m.state = RESIL_BREAKER_CLOSED;

    resil_breaker_config_t c = resil_breaker_config_default();
    c.window_size = m.n;
    c.minimum_calls = m.min;
    c.failure_rate_threshold = m.thr;
    c.consecutive_failures = m.consec_thr;
    c.half_open_probes = m.k;
    c.open_wait_ns = m.wait;
    c.half_open_max_wait_ns = m.lease;
    c.stripes = 1u << (data[7] % 3);
    resil_breaker_t *b = NULL;
    MUST(resil_breaker_new(&c, NULL, &b) == RESIL_OK, "new: %s", resil_status_detail());

    uint64_t now = RESIL_SEC(1000);
    mpermit permits[8];
    memset(permits, 0, sizeof permits);
    for (size_t i = 8; i + 1 < size; i += 2) {
        unsigned op = data[i] % 8, arg = data[i + 1];
        mpermit *p = &permits[arg % 8];
        resil_status want = RESIL_OK, got = RESIL_OK;
        switch (op) {
        case 0:
        case 1: /* acquire (twice as likely) */
            want = m_acquire(&m, now, p);
            got = resil_breaker_acquire_at(b, now, &p->real);
            MUST(!(got == RESIL_OK && p->probe != resil_breaker_permit_is_probe(&p->real)),
                 "op %zu: probe flag differs", i);
            break;
        case 2:
        case 3:
        case 4: {
            resil_outcome o = (resil_outcome)(op - 2);
            want = m_record(&m, now, p, o);
            got = resil_breaker_record_at(b, &p->real, o, 1, now);
            break;
        }
        case 5: /* time passes, in whole microseconds */
            if (arg < 48 && m.deadline > now + RESIL_US(1)) /* to a deadline's edge */
                now = m.deadline - RESIL_US(1) + RESIL_US(1) * (arg % 3);
            else
                now += RESIL_US(1) * (1 + (uint64_t)arg * arg * 4);
            continue;
        default: /* manual transitions, rarely */
            if (arg % 16 == 0) {
                got = resil_breaker_reset(b);
                m_enter(&m, RESIL_BREAKER_CLOSED, now);
            } else if (arg % 16 == 1) {
                got = resil_breaker_force_open(b);
                if (m.state != RESIL_BREAKER_FORCED_OPEN)
                    m_enter(&m, RESIL_BREAKER_FORCED_OPEN, now);
            } else if (arg % 16 == 2) {
                got = resil_breaker_disable(b);
                if (m.state != RESIL_BREAKER_DISABLED)
                    m_enter(&m, RESIL_BREAKER_DISABLED, now);
            }
            break;
        }
        MUST(got == want, "op %zu (%u, %u): got %s, model says %s", i, op, arg,
             resil_status_name(got), resil_status_name(want));
        resil_breaker_state real = resil_breaker_state_get(b);
        MUST(real == m.state, "op %zu (%u, %u): state %s, model says %s", i, op, arg,
             resil_breaker_state_name(real), resil_breaker_state_name(m.state));
        MUST(resil_breaker_check(b) == RESIL_OK, "op %zu: check: %s", i, resil_status_detail());
    }
    resil_breaker_free(b);
    return 0;
}
