/*
 * Fuzz target: the GCRA rate limiter (resil/ratelimit.h), every input
 * surface of it.
 *
 * Configuration: rate, period and burst are decoded from the input with a
 * bias to the edges (0, 1, rate above one per ns, burst * T just past
 * 2^62, UINT64_MAX). config_check, size, init and new must agree with the
 * validity rule of the header, computed here in 128-bit arithmetic; an
 * invalid config, short or misaligned memory must leave caller memory
 * untouched.
 *
 * Decisions: a sequence of try_acquire_at / reserve_at calls, the clocked
 * variants on a manual clock and acquire_wait, new handles on the caller
 * memory and the memory initialized again, with times from the input
 * (small steps, steps back, huge jumps, values near UINT64_MAX, the exact
 * nanosecond where a request becomes conformant). Each is checked against
 * a reference model written in the other classic form of GCRA, the
 * continuous-state leaky bucket (ITU-T I.371 annex A: content X drains one
 * ns per ns since the last conformance time LCT; n cells conform iff
 * max(0, X - (t - LCT)) + n*T <= burst * T), in signed 128-bit integers,
 * with the documented edge rules (a step back is unchanged time; a TAT
 * that would pass UINT64_MAX rejects with wait UINT64_MAX). Status, wait,
 * TAT (stats.tat_ns = LCT + X) and counters must match exactly, and
 * resil_ratelimit_check() must pass after every step. The model's own
 * waits are checked against their definition: the same request is
 * rejected at t + wait - 1 and admitted at t + wait.
 *
 * Attach: arbitrary bytes (optionally behind a forged valid header), or a
 * valid block with input-chosen bytes flipped, its checksum optionally
 * recomputed and its length shortened: attach returns a documented status,
 * and a handle it grants works and passes its check.
 *
 * Input: byte 0 picks the mode (attach surface for 1 in 8) and how the
 * limiter is made (caller memory or _new, an allocation failure first);
 * then the config fields and the start time; then operations, one byte
 * each plus their arguments. Reading past the end yields zeros. Arguments
 * are always read in separate statements, so an input means the same
 * under every compiler.
 */
#include "fuzz_input.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcra_model.h"
#include "resil/ratelimit.h"

typedef struct model {
    gm_params p;
    gm_state s;
    uint64_t admitted, rejected;
} model;

/* One decision on the model, counted. */
static resil_status m_decide(model *m, uint64_t n, uint64_t slack, uint64_t t, uint64_t *wait)
{
    if (gm_decide(&m->p, &m->s, n, slack, t, wait)) {
        m->admitted += n;
        return RESIL_OK;
    }
    m->rejected++;
    gm_check_wait(&m->p, &m->s, n, t, *wait);
    return RESIL_E_RATE_LIMITED;
}

static void expect_same(const resil_ratelimit_t *r, const model *m, const char *what)
{
    MUST(resil_ratelimit_check(r) == RESIL_OK, "%s: check: %s", what, resil_status_detail());
    resil_ratelimit_stats_t s;
    MUST(resil_ratelimit_stats(r, &s) == RESIL_OK, "%s: stats", what);
    MUST(s.emission_interval_ns == m->p.T && s.tolerance_ns == m->p.horizon - m->p.T,
         "%s: T %llu tau %llu, model %llu %llu", what, (unsigned long long)s.emission_interval_ns,
         (unsigned long long)s.tolerance_ns, (unsigned long long)m->p.T,
         (unsigned long long)(m->p.horizon - m->p.T));
    MUST(s.tat_ns == gm_tat(&m->s), "%s: tat %llu, model %llu", what, (unsigned long long)s.tat_ns,
         (unsigned long long)gm_tat(&m->s));
    MUST(s.admitted == m->admitted && s.rejected == m->rejected,
         "%s: admitted %llu rejected %llu, model %llu %llu", what, (unsigned long long)s.admitted,
         (unsigned long long)s.rejected, (unsigned long long)m->admitted,
         (unsigned long long)m->rejected);
}

static void config_surface(const resil_ratelimit_config_t *c, int valid)
{
    MUST((resil_ratelimit_config_check(c) == RESIL_OK) == valid, "config_check: %s, model %d",
         resil_status_detail(), valid);
    if (!valid)
        MUST(resil_ratelimit_config_check(c) == RESIL_E_INVALID_CONFIG, "config_check status");
    size_t size = resil_ratelimit_size(c);
    MUST(valid ? size > 0 && size % 64 == 0 && size <= RESIL_RATELIMIT_SIZE() : size == 0,
         "size %zu for a %s config", size, valid ? "valid" : "invalid");
    /* Refused inits leave the memory as it was. */
    size_t len = RESIL_RATELIMIT_SIZE() + 64;
    unsigned char *mem = fz_block(len), *copy = fz_block(len);
    memset(mem, 0xA5, len);
    memcpy(copy, mem, len);
    if (!valid) {
        MUST(resil_ratelimit_init(mem, len, c) == RESIL_E_INVALID_CONFIG, "init: invalid config");
        resil_ratelimit_t *r = (resil_ratelimit_t *)1;
        MUST(resil_ratelimit_new(c, NULL, &r) == RESIL_E_INVALID_CONFIG && r == NULL, "new");
    } else {
        MUST(resil_ratelimit_init(mem, size - 1, c) == RESIL_E_INVALID_ARG, "init: short");
        MUST(resil_ratelimit_init(mem + 8, len - 8, c) == RESIL_E_INVALID_ARG, "init: misaligned");
        MUST(resil_ratelimit_init(NULL, len, c) == RESIL_E_INVALID_ARG, "init: NULL");
    }
    MUST(memcmp(mem, copy, len) == 0, "a refused init wrote to memory");
    free(mem);
    free(copy);
}

static void null_surface(void)
{
    uint64_t w;
    MUST(resil_ratelimit_config_check(NULL) == RESIL_E_INVALID_ARG, "config_check(NULL)");
    MUST(resil_ratelimit_size(NULL) == 0, "size(NULL)");
    MUST(resil_ratelimit_try_acquire_at(NULL, 1, 0, &w) == RESIL_E_INVALID_ARG, "try NULL");
    MUST(resil_ratelimit_reserve_at(NULL, 1, 0, 0, &w) == RESIL_E_INVALID_ARG, "reserve NULL");
    MUST(resil_ratelimit_check(NULL) == RESIL_E_INVALID_ARG, "check(NULL)");
    resil_ratelimit_stats_t s;
    MUST(resil_ratelimit_stats(NULL, &s) == RESIL_E_INVALID_ARG, "stats(NULL)");
    resil_ratelimit_free(NULL);
}

/* Runs the operations of the input on @p r; @p mem is its caller memory
 * (NULL for a limiter from _new), @p mc its manual clock. */
static void run_ops(fz_in *in, resil_ratelimit_t *r, unsigned char *mem, size_t len,
                    resil_manual_clock_t *mc, model *m)
{
    resil_ratelimit_local_t local = {resil_manual_clock_as_clock(mc)};
    uint64_t now = fz_pick(in);
    for (int step = 0; fz_more(in) && step < 512; step++) {
        uint8_t op = fz_u8(in);
        uint64_t got_w = 12345, want_w = 0, *wp = op & 0x80 ? NULL : &got_w;
        resil_status got, want;
        switch (op % 16) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4: { /* policing */
            uint64_t n = gm_pick_n(in, &m->p);
            want = m_decide(m, n, 0, now, &want_w);
            got = resil_ratelimit_try_acquire_at(r, n, now, wp);
            break;
        }
        case 5:
        case 6: { /* smoothing */
            uint64_t n = gm_pick_n(in, &m->p), slack = fz_pick(in);
            want = m_decide(m, n, slack, now, &want_w);
            got = resil_ratelimit_reserve_at(r, n, slack, now, wp);
            break;
        }
        case 7:
        case 8:
        case 9:
        case 10:
            now = gm_move_time(in, &m->p, gm_tat(&m->s), now);
            expect_same(r, m, "time move");
            continue;
        case 11: { /* on the handle's (manual) clock */
            uint64_t n = gm_pick_n(in, &m->p), slack = fz_pick(in);
            resil_manual_clock_set(mc, now);
            unsigned how = fz_u8(in) % 3;
            if (how == 0) {
                want = m_decide(m, n, 0, now, &want_w);
                got = resil_ratelimit_try_acquire(r, n, wp);
            } else if (how == 1) {
                want = m_decide(m, n, slack, now, &want_w);
                got = resil_ratelimit_reserve(r, n, slack, wp);
            } else { /* reserve, then sleep the wait: the manual clock advances by it */
                want = m_decide(m, n, slack, now, &want_w);
                got = resil_ratelimit_acquire_wait(r, n, slack);
                wp = NULL;
                uint64_t after = resil_manual_clock_get(mc);
                uint64_t expect = want == RESIL_OK ? fz_sat((fz_u128)now + want_w) : now;
                MUST(after == expect, "acquire_wait: clock at %llu, expected %llu",
                     (unsigned long long)after, (unsigned long long)expect);
                now = after;
            }
            break;
        }
        case 12: { /* requests that can never be admitted: nothing changes */
            uint64_t bad[3] = {0, m->p.burst + 1, UINT64_MAX};
            uint64_t n = bad[fz_u8(in) % 3];
            got = op & 0x40 ? resil_ratelimit_reserve_at(r, n, fz_pick(in), now, wp)
                            : resil_ratelimit_try_acquire_at(r, n, now, wp);
            MUST(got == RESIL_E_INVALID_ARG, "n = %llu: %s", (unsigned long long)n,
                 resil_status_name(got));
            expect_same(r, m, "invalid request");
            continue;
        }
        case 13: /* another handle on the same caller memory carries on, or the
                  * memory is initialized again, with another config */
            if (mem != NULL) {
                if (op & 0x40) {
                    resil_ratelimit_config_t c = gm_pick_config(in, 1);
                    MUST(resil_ratelimit_init(mem, len, &c) == RESIL_OK, "init again: %s",
                         resil_status_detail());
                    memset(m, 0, sizeof *m);
                    MUST(gm_params_make(&c, &m->p), "a config that works did not");
                }
                resil_ratelimit_t *r2 = NULL;
                MUST(resil_ratelimit_attach(mem, len, &local, &r2) == RESIL_OK && r2 != NULL,
                     "re-attach: %s", resil_status_detail());
                resil_ratelimit_free(r);
                r = r2;
                expect_same(r, m, "re-attach");
            }
            continue;
        default: { /* policing, n from the whole range */
            uint64_t n = 1 + fz_pick(in) % m->p.burst;
            want = m_decide(m, n, 0, now, &want_w);
            got = resil_ratelimit_try_acquire_at(r, n, now, wp);
            break;
        }
        }
        MUST(got == want, "step %d (op %u) at %llu: %s, model %s", step, op % 16,
             (unsigned long long)now, resil_status_name(got), resil_status_name(want));
        if (wp != NULL)
            MUST(got_w == want_w, "step %d (op %u) at %llu: wait %llu, model %llu", step, op % 16,
                 (unsigned long long)now, (unsigned long long)got_w, (unsigned long long)want_w);
        expect_same(r, m, "decision");
    }
    resil_ratelimit_free(r);
}

/* A valid limiter for attach_surface() to corrupt. */
static unsigned char *make_block(fz_in *in, size_t *len)
{
    resil_ratelimit_config_t c;
    c.rate = 1 + fz_pick(in) % 1000;
    c.period_ns = 1 + fz_pick(in);
    c.burst = 1 + fz_u8(in);
    if (resil_ratelimit_config_check(&c) != RESIL_OK)
        c = resil_ratelimit_config_default();
    *len = resil_ratelimit_size(&c);
    unsigned char *mem = fz_block(*len);
    MUST(resil_ratelimit_init(mem, *len, &c) == RESIL_OK, "init");
    return mem;
}

/* Attach to bytes from the input, or to a valid block with some flipped. */
static void attach_surface(fz_in *in)
{
    unsigned char *at;
    size_t len;
    unsigned char *mem =
        fz_attach_memory(in, RESIL_RATELIMIT_SIZE() + 65, 5, make_block, &at, &len);
    resil_ratelimit_t *r = (resil_ratelimit_t *)1;
    resil_status s = resil_ratelimit_attach(at, len, NULL, &r);
    fz_attach_answer(s, r, RESIL_OK);
    if (s == RESIL_OK) { /* whatever got through works and stays valid */
        MUST(resil_ratelimit_check(r) == RESIL_OK, "check after attach: %s", resil_status_detail());
        uint64_t w;
        for (int i = 0; i < 4; i++) {
            uint64_t slack = fz_pick(in), t = fz_pick(in);
            resil_status d = resil_ratelimit_reserve_at(r, 1, slack, t, &w);
            MUST(d == RESIL_OK || d == RESIL_E_RATE_LIMITED, "decision: %s", resil_status_name(d));
        }
        resil_ratelimit_stats_t st;
        MUST(resil_ratelimit_stats(r, &st) == RESIL_OK, "stats");
        MUST(resil_ratelimit_check(r) == RESIL_OK, "check: %s", resil_status_detail());
        resil_ratelimit_free(r);
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
    resil_ratelimit_config_t c = gm_pick_config(&in, mode >> 6);
    model m;
    memset(&m, 0, sizeof m);
    int valid = gm_params_make(&c, &m.p);
    config_surface(&c, valid);
    if (!valid)
        return 0;

    resil_manual_clock_t *mc = NULL;
    MUST(resil_manual_clock_new(0, &mc) == RESIL_OK, "manual clock");
    resil_ratelimit_local_t local = {resil_manual_clock_as_clock(mc)};
    resil_ratelimit_t *r = NULL;
    unsigned char *mem = NULL;
    size_t len = resil_ratelimit_size(&c);
    if (mode & 0x10) /* an allocation failure first: a status, nothing half-made */
        fz_heap.fail_in = 0;
    if (mode & 0x20) { /* caller memory, exactly as large as asked for */
        mem = fz_block(len);
        MUST(resil_ratelimit_init(mem, len, &c) == RESIL_OK, "init: %s", resil_status_detail());
        resil_status s = resil_ratelimit_attach(mem, len, &local, &r);
        if (s == RESIL_E_NO_MEMORY && r == NULL)
            s = resil_ratelimit_attach(mem, len, &local, &r);
        MUST(s == RESIL_OK, "attach: %s", resil_status_detail());
    } else {
        resil_status s = resil_ratelimit_new(&c, &local, &r);
        if (s == RESIL_E_NO_MEMORY && r == NULL)
            s = resil_ratelimit_new(&c, &local, &r);
        MUST(s == RESIL_OK, "new: %s", resil_status_detail());
    }
    MUST(fz_heap.fail_in < 0, "the planned allocation failure did not happen");
    expect_same(r, &m, "fresh limiter");
    run_ops(&in, r, mem, len, mc, &m);
    free(mem);
    resil_manual_clock_free(mc);
    return 0;
}
