#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/block.h"
#include "internal/util.h"
#include "resil/ratelimit.h"
#include "support.h"

static resil_manual_clock_t *mc;

static resil_ratelimit_t *make(uint64_t rate, uint64_t period, uint64_t burst)
{
    resil_ratelimit_config_t c = {rate, period, burst};
    resil_ratelimit_local_t l = {resil_manual_clock_as_clock(mc)};
    resil_ratelimit_t *r = NULL;
    assert_int_equal(resil_ratelimit_new(&c, &l, &r), RESIL_OK);
    return r;
}

static int setup(void **state)
{
    (void)state;
    return resil_manual_clock_new(RESIL_SEC(1000), &mc) == RESIL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    resil_manual_clock_free(mc);
    return 0;
}

static uint64_t t0(void) { return resil_manual_clock_get(mc); }

static void exact_admit_reject_sequence_for_rate_and_burst(void **state)
{
    (void)state;
    resil_ratelimit_t *r = make(10, RESIL_SEC(1), 3); /* T = 100 ms, tau = 200 ms */
    uint64_t w = 1;
    /* A full burst of 3, then a rejection that names the wait. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_OK);
        assert_int_equal(w, 0);
    }
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(100));
    resil_manual_clock_advance(mc, RESIL_MS(99));
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(1));
    resil_manual_clock_advance(mc, RESIL_MS(1));
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_OK);
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(100));
    /* Idle 250 ms refills 2.5 cells: 2 admitted, the third waits 50 ms. */
    resil_manual_clock_advance(mc, RESIL_MS(250));
    assert_int_equal(resil_ratelimit_try_acquire(r, 2, &w), RESIL_OK);
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(50));
    /* A long idle never refills beyond the burst. */
    resil_manual_clock_advance(mc, RESIL_SEC(3600));
    assert_int_equal(resil_ratelimit_try_acquire(r, 3, &w), RESIL_OK);
    assert_int_equal(resil_ratelimit_try_acquire(r, 1, &w), RESIL_E_RATE_LIMITED);
    resil_ratelimit_stats_t s;
    assert_int_equal(resil_ratelimit_stats(r, &s), RESIL_OK);
    assert_int_equal(s.admitted, 3 + 1 + 2 + 3);
    assert_int_equal(s.rejected, 5);
    assert_int_equal(s.emission_interval_ns, RESIL_MS(100));
    assert_int_equal(s.tolerance_ns, RESIL_MS(200));
    assert_int_equal(resil_ratelimit_check(r), RESIL_OK);
    resil_ratelimit_free(r);
}

static void burst_of_one_spaces_requests_exactly(void **state)
{
    (void)state;
    resil_ratelimit_t *r = make(4, RESIL_SEC(1), 1); /* T = 250 ms */
    uint64_t w;
    uint64_t start = t0();
    int admitted = 0;
    for (int ms = 0; ms < 2000; ms++) {
        if (resil_ratelimit_try_acquire_at(r, 1, start + RESIL_MS(ms), &w) == RESIL_OK) {
            assert_int_equal(ms % 250, 0);
            admitted++;
        } else {
            assert_int_equal(w, RESIL_MS(250 - ms % 250));
        }
    }
    assert_int_equal(admitted, 8);
    resil_ratelimit_free(r);
}

static void long_run_rate_is_within_one_percent(void **state)
{
    (void)state;
    const uint64_t rates[] = {7, 1000, 333333};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        resil_ratelimit_t *r = make(rates[i], RESIL_SEC(1), 5);
        resil_rng_t g;
        resil_rng_seed(&g, 42 + i);
        uint64_t now = t0(), end = now + RESIL_SEC(100);
        uint64_t mean_gap = RESIL_SEC(1) / rates[i] / 3; /* offered load 3x the rate */
        uint64_t admitted = 0;
        while (now < end) {
            admitted += resil_ratelimit_try_acquire_at(r, 1, now, NULL) == RESIL_OK;
            now += 1 + resil_rng_below(&g, 2 * mean_gap);
        }
        double got = (double)admitted / 100.0;
        double err = (got - (double)rates[i]) / (double)rates[i];
        print_message("rate %llu/s: admitted %.2f/s (error %+.4f%%)\n",
                      (unsigned long long)rates[i], got, err * 100);
        assert_true(err < 0.01 && err > -0.01);
        resil_ratelimit_free(r);
    }
}

static void reserve_smooths_a_burst_into_even_spacing(void **state)
{
    (void)state;
    resil_ratelimit_t *r = make(10, RESIL_SEC(1), 1); /* T = 100 ms */
    uint64_t w, now = t0();
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(resil_ratelimit_reserve_at(r, 1, RESIL_MS(250), now, &w), RESIL_OK);
        assert_int_equal(w, RESIL_MS(100) * i);
    }
    /* The fourth would wait 300 ms > 250 ms: rejected, nothing booked. */
    assert_int_equal(resil_ratelimit_reserve_at(r, 1, RESIL_MS(250), now, &w),
                     RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(300));
    /* acquire_wait sleeps the wait on the manual clock. */
    uint64_t before = t0();
    assert_int_equal(resil_ratelimit_acquire_wait(r, 1, RESIL_SEC(1)), RESIL_OK);
    assert_int_equal(t0() - before, RESIL_MS(300));
    assert_int_equal(resil_ratelimit_acquire_wait(r, 1, RESIL_MS(50)), RESIL_E_RATE_LIMITED);
    resil_ratelimit_free(r);
}

static void bad_configs_and_requests_get_clear_statuses(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = resil_ratelimit_config_default();
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_OK);
    c.rate = 0;
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(),
                        "ratelimit.rate: must be in 1..period_ns (1000000000), got 0");
    c.rate = RESIL_SEC(1) + 1; /* more than one per ns */
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_ratelimit_config_default();
    c.burst = 0;
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "ratelimit.burst: must be >= 1, got 0");
    c.burst = UINT64_MAX; /* burst * T overflows */
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_ratelimit_config_default();
    c.period_ns = 0;
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    c.period_ns = UINT64_MAX;
    c.rate = 1;
    c.burst = 1;
    assert_int_equal(resil_ratelimit_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_int_equal(resil_ratelimit_config_check(NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_size(&c), 0);
    resil_ratelimit_t *r = (resil_ratelimit_t *)1;
    assert_int_equal(resil_ratelimit_new(&c, NULL, &r), RESIL_E_INVALID_CONFIG);
    assert_null(r);

    r = make(10, RESIL_SEC(1), 3);
    uint64_t w = 7;
    assert_int_equal(resil_ratelimit_try_acquire(r, 0, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(w, 0);
    assert_int_equal(resil_ratelimit_try_acquire(r, 4, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_try_acquire(NULL, 1, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_reserve(r, 0, 1, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_reserve(r, 4, RESIL_SEC(10), &w), RESIL_E_INVALID_ARG);
    assert_string_equal(resil_status_detail(), "ratelimit: n must be in 1..burst (3), got 4");
    assert_int_equal(resil_ratelimit_new(&c, NULL, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_attach(&c, sizeof c, NULL, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_acquire_wait(NULL, 1, 1), RESIL_E_INVALID_ARG);
    resil_ratelimit_stats_t s;
    assert_int_equal(resil_ratelimit_stats(r, &s), RESIL_OK);
    assert_int_equal(s.admitted + s.rejected, 0); /* bad requests count nothing */
    assert_int_equal(resil_ratelimit_stats(NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_stats(r, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_check(NULL), RESIL_E_INVALID_ARG);
    resil_ratelimit_free(r);
    resil_ratelimit_free(NULL);
}

static void clock_faults_never_mint_or_hang(void **state)
{
    (void)state;
    resil_ratelimit_t *r = make(10, RESIL_SEC(1), 2);
    uint64_t w, now = RESIL_SEC(500);
    assert_int_equal(resil_ratelimit_try_acquire_at(r, 2, now, &w), RESIL_OK);
    /* Time steps back: treated as unchanged, nothing refills. */
    assert_int_equal(resil_ratelimit_try_acquire_at(r, 1, now - RESIL_SEC(100), &w),
                     RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_SEC(100) + RESIL_MS(100));
    /* Near UINT64_MAX the sums saturate: no wrap into an admission storm. */
    uint64_t admitted = 0;
    for (int i = 0; i < 10; i++)
        admitted += resil_ratelimit_try_acquire_at(r, 1, UINT64_MAX - 5, &w) == RESIL_OK;
    assert_true(admitted <= 2);
    assert_int_equal(resil_ratelimit_try_acquire_at(r, 1, UINT64_MAX, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(resil_ratelimit_check(r), RESIL_OK);
    resil_ratelimit_free(r);
}

static void caller_memory_attaches_and_garbage_does_not(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = {5, RESIL_SEC(1), 5};
    size_t len = resil_ratelimit_size(&c);
    assert_true(len > 0 && len <= RESIL_RATELIMIT_SIZE());
    unsigned char *mem = aligned_alloc(64, len);
    memset(mem, 0, len);
    resil_ratelimit_t *a, *b;
    assert_int_equal(resil_ratelimit_attach(mem, len, NULL, &a), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_ratelimit_init(mem + 8, len, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_init(mem, len, &c), RESIL_OK);
    resil_ratelimit_local_t l = {resil_manual_clock_as_clock(mc)};
    assert_int_equal(resil_ratelimit_attach(mem, len, &l, &a), RESIL_OK);
    assert_int_equal(resil_ratelimit_attach(mem, len, &l, &b), RESIL_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(resil_ratelimit_try_acquire(i % 2 ? a : b, 1, NULL), RESIL_OK);
    assert_int_equal(resil_ratelimit_try_acquire(a, 1, NULL), RESIL_E_RATE_LIMITED);
    resil_ratelimit_free(a);
    resil_ratelimit_free(b);
    mem[40] ^= 1; /* the stored rate, behind the checksum */
    assert_int_equal(resil_ratelimit_attach(mem, len, NULL, &a), RESIL_E_CORRUPT);
    resil_rng_t g;
    resil_rng_seed(&g, 3);
    for (int trial = 0; trial < 2000; trial++) {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t v = resil_rng_next(&g);
            memcpy(mem + i, &v, 8);
        }
        assert_int_not_equal(resil_ratelimit_attach(mem, len, NULL, &a), RESIL_OK);
    }
    free(mem);
}

/* ---- keyed ---- */

static resil_ratelimit_set_t *make_set(uint32_t capacity, uint32_t probe, uint64_t burst)
{
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    c.rate = (resil_ratelimit_config_t){10, RESIL_SEC(1), burst};
    c.capacity = capacity;
    c.probe = probe;
    resil_ratelimit_local_t l = {resil_manual_clock_as_clock(mc)};
    resil_ratelimit_set_t *s = NULL;
    assert_int_equal(resil_ratelimit_set_new(&c, &l, &s), RESIL_OK);
    return s;
}

static void keys_are_limited_independently(void **state)
{
    (void)state;
    resil_ratelimit_set_t *s = make_set(64, 8, 2);
    uint64_t w;
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "alice", 5, 2, &w), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "alice", 5, 1, &w), RESIL_E_RATE_LIMITED);
    assert_int_equal(w, RESIL_MS(100));
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "bob", 3, 2, &w), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "", 0, 1, &w), RESIL_OK); /* empty key */
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "bob", 3, 1, &w), RESIL_E_RATE_LIMITED);
    resil_manual_clock_advance(mc, RESIL_MS(100));
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "alice", 5, 1, &w), RESIL_OK);
    resil_ratelimit_set_stats_t st;
    assert_int_equal(resil_ratelimit_set_stats(s, &st), RESIL_OK);
    assert_int_equal(st.used, 3);
    assert_int_equal(st.admitted, 6);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_OK);
    /* bad input */
    assert_int_equal(resil_ratelimit_set_try_acquire(s, NULL, 3, 1, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "a", 1, 0, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "a", 1, 3, &w), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_set_try_acquire(NULL, "a", 1, 1, &w), RESIL_E_INVALID_ARG);
    resil_ratelimit_set_free(s);
}

static void full_table_refuses_new_keys_until_entries_go_idle(void **state)
{
    (void)state;
    resil_ratelimit_set_t *s = make_set(8, 8, 1); /* one neighbourhood: the whole table */
    char key[16];
    for (int i = 0; i < 8; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(resil_ratelimit_set_try_acquire(s, key, (size_t)n, 1, NULL), RESIL_OK);
    }
    /* Every key is still being limited: a ninth key gets E_FULL, and the
     * existing ones keep their state. */
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "new", 3, 1, NULL), RESIL_E_FULL);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "k3", 2, 1, NULL), RESIL_E_RATE_LIMITED);
    /* After T every bucket is full again: idle entries are reused. */
    resil_manual_clock_advance(mc, RESIL_MS(100));
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "new", 3, 1, NULL), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_try_acquire(s, "new", 3, 1, NULL), RESIL_E_RATE_LIMITED);
    resil_ratelimit_set_stats_t st;
    assert_int_equal(resil_ratelimit_set_stats(s, &st), RESIL_OK);
    assert_int_equal(st.used, 8);
    assert_int_equal(st.full, 1);
    assert_int_equal(st.evictions, 1);
    resil_ratelimit_set_free(s);
}

static void many_keys_stay_in_bounded_memory(void **state)
{
    (void)state;
    resil_ratelimit_set_t *s = make_set(256, 8, 1);
    char key[32];
    uint64_t ok = 0, full = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 1000; i++) {
            int n = snprintf(key, sizeof key, "client-%d-%d", round, i);
            resil_status st = resil_ratelimit_set_try_acquire(s, key, (size_t)n, 1, NULL);
            assert_true(st == RESIL_OK || st == RESIL_E_FULL);
            ok += st == RESIL_OK;
            full += st == RESIL_E_FULL;
        }
        resil_manual_clock_advance(mc, RESIL_MS(100)); /* all idle again */
    }
    resil_ratelimit_set_stats_t st;
    assert_int_equal(resil_ratelimit_set_stats(s, &st), RESIL_OK);
    assert_int_equal(st.capacity, 256);
    assert_true(st.used <= 256);
    assert_int_equal(st.admitted, ok);
    assert_int_equal(st.full, full);
    assert_true(ok >= 50 * 200); /* most of the table is usable each round */
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_OK);
    resil_ratelimit_set_free(s);
}

static void set_bad_configs_and_memory(void **state)
{
    (void)state;
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    assert_int_equal(resil_ratelimit_set_config_check(&c), RESIL_OK);
    c.capacity = 100;
    assert_int_equal(resil_ratelimit_set_config_check(&c), RESIL_E_INVALID_CONFIG);
    c.capacity = 64;
    c.probe = 0;
    assert_int_equal(resil_ratelimit_set_config_check(&c), RESIL_E_INVALID_CONFIG);
    c.probe = 8;
    c.rate.burst = 0;
    assert_int_equal(resil_ratelimit_set_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "ratelimit_set.rate.burst: must be >= 1, got 0");
    c.rate.burst = 4;
    size_t len = resil_ratelimit_set_size(&c);
    assert_true(len <= RESIL_RATELIMIT_SET_SIZE(64));
    unsigned char *mem = aligned_alloc(64, len);
    memset(mem, 0, len);
    resil_ratelimit_set_t *s;
    assert_int_equal(resil_ratelimit_set_attach(mem, len, NULL, &s), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_ratelimit_set_init(mem, len - 1, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_set_init(mem, len, &c), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_attach(mem, len, NULL, &s), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_OK);
    resil_ratelimit_set_free(s);
    test_alloc_install(1, 1);
    assert_int_equal(resil_ratelimit_set_attach(mem, len, NULL, &s), RESIL_E_NO_MEMORY);
    assert_null(s);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
    free(mem);
}

/* Makes the block header's config checksum match again after an edit of
 * the header, as a writer with a bug would have. */
static void rehash(void *mem)
{
    resil__block_header *h = mem;
    h->config_hash = resil__fnv1a64((unsigned char *)mem + h->config_off, h->config_len);
}

/* Headers whose checksum matches but which do not describe a rate limiter
 * of this layout: attach refuses each, and a block shorter than a limiter
 * too. */
static void attach_refuses_a_header_of_another_shape(void **state)
{
    (void)state;
    resil_ratelimit_config_t c = {5, RESIL_SEC(1), 5};
    size_t len = resil_ratelimit_size(&c), room = len + 64;
    unsigned char *mem = aligned_alloc(64, room);
    assert_int_equal(resil_ratelimit_init(mem, room, &c), RESIL_OK);
    resil__block_header *h = (resil__block_header *)mem, good = *h;
    resil_ratelimit_t *r = NULL;
    h->size += 64; /* inside the memory given, not a limiter's size */
    assert_int_equal(resil_ratelimit_attach(mem, room, NULL, &r), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(),
                        "ratelimit: header does not describe a rate limiter");
    *h = good;
    h->config_len -= 8;
    rehash(mem);
    assert_int_equal(resil_ratelimit_attach(mem, room, NULL, &r), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(),
                        "ratelimit: header does not describe a rate limiter");
    *h = good;
    h->config_off += 8;
    rehash(mem);
    assert_int_equal(resil_ratelimit_attach(mem, room, NULL, &r), RESIL_E_CORRUPT);
    *h = good;
    h->size = h->config_off + h->config_len; /* a block that ends after its config */
    assert_int_equal(resil_ratelimit_attach(mem, (size_t)h->size, NULL, &r), RESIL_E_CORRUPT);
    assert_null(r);
    *h = good;
    assert_int_equal(resil_ratelimit_attach(mem, room, NULL, &r), RESIL_OK);
    resil_ratelimit_free(r);
    free(mem);
}

/* The same for keyed sets, and resil_ratelimit_set_check() on a live set
 * finds a header changed under it, or an empty entry with a time. */
static void set_attach_and_check_refuse_inconsistent_blocks(void **state)
{
    (void)state;
    resil_ratelimit_set_config_t c = resil_ratelimit_set_config_default();
    c.capacity = 64;
    size_t len = resil_ratelimit_set_size(&c), room = len + 64;
    unsigned char *mem = aligned_alloc(64, room);
    assert_int_equal(resil_ratelimit_set_init(mem, room, &c), RESIL_OK);
    resil__block_header *h = (resil__block_header *)mem, good = *h;
    resil_ratelimit_set_t *s = NULL;
    assert_int_equal(resil_ratelimit_set_attach(mem, room, NULL, NULL), RESIL_E_INVALID_ARG);
    h->size += 64;
    assert_int_equal(resil_ratelimit_set_attach(mem, room, NULL, &s), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(), "ratelimit_set: stored config is inconsistent");
    *h = good;
    h->config_len -= 8;
    rehash(mem);
    assert_int_equal(resil_ratelimit_set_attach(mem, room, NULL, &s), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(), "ratelimit_set: header does not describe a set");
    *h = good;
    h->size = h->config_off + h->config_len;
    assert_int_equal(resil_ratelimit_set_attach(mem, (size_t)h->size, NULL, &s), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(), "ratelimit_set: block too small");
    assert_null(s);
    *h = good;
    assert_int_equal(resil_ratelimit_set_attach(mem, room, NULL, &s), RESIL_OK);
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_OK);
    h->size += 64;
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_E_CORRUPT);
    *h = good;
    /* entries are the last 16 * capacity bytes (RESIL_RATELIMIT_SET_SIZE):
     * {key, tat}; give the last, empty, one a tat */
    uint64_t tat = 12345;
    memcpy(mem + len - 8, &tat, 8);
    assert_int_equal(resil_ratelimit_set_check(s), RESIL_E_CORRUPT);
    assert_string_equal(resil_status_detail(), "ratelimit_set: empty slot 63 has a tat");
    resil_ratelimit_set_stats_t st;
    assert_int_equal(resil_ratelimit_set_stats(s, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_ratelimit_set_stats(NULL, &st), RESIL_E_INVALID_ARG);
    resil_ratelimit_set_t *n = (resil_ratelimit_set_t *)mem;
    assert_int_equal(resil_ratelimit_set_new(&c, NULL, NULL), RESIL_E_INVALID_ARG);
    c.probe = 0;
    assert_int_equal(resil_ratelimit_set_new(&c, NULL, &n), RESIL_E_INVALID_CONFIG);
    assert_null(n);
    resil_ratelimit_set_free(s);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_admit_reject_sequence_for_rate_and_burst),
        cmocka_unit_test(burst_of_one_spaces_requests_exactly),
        cmocka_unit_test(long_run_rate_is_within_one_percent),
        cmocka_unit_test(reserve_smooths_a_burst_into_even_spacing),
        cmocka_unit_test(bad_configs_and_requests_get_clear_statuses),
        cmocka_unit_test(clock_faults_never_mint_or_hang),
        cmocka_unit_test(caller_memory_attaches_and_garbage_does_not),
        cmocka_unit_test(keys_are_limited_independently),
        cmocka_unit_test(full_table_refuses_new_keys_until_entries_go_idle),
        cmocka_unit_test(many_keys_stay_in_bounded_memory),
        cmocka_unit_test(set_bad_configs_and_memory),
        cmocka_unit_test(attach_refuses_a_header_of_another_shape),
        cmocka_unit_test(set_attach_and_check_refuse_inconsistent_blocks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
