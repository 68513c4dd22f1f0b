/* Keyed breaker set: independent breakers per key, bounded memory, eviction
 * of idle CLOSED breakers only, stale permits after eviction, shared memory. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/block.h"
#include "internal/util.h"
#include "resil/breaker_set.h"
#include "support.h"

typedef struct fx {
    resil_manual_clock_t *m;
    resil_breaker_set_t *s;
    char last_key[64];
    int events;
} fx;

static void on_event(void *user, const void *key, size_t len, const resil_breaker_event_t *e)
{
    fx *f = user;
    (void)e;
    f->events++;
    snprintf(f->last_key, sizeof f->last_key, "%.*s", (int)len, (const char *)key);
}

static resil_breaker_set_config_t small(uint32_t capacity)
{
    resil_breaker_set_config_t c = resil_breaker_set_config_default();
    c.capacity = capacity;
    c.key_max = 32;
    c.idle_evict_ns = RESIL_SEC(60);
    c.breaker.window_size = 2;
    c.breaker.minimum_calls = 2;
    c.breaker.open_wait_ns = RESIL_SEC(10);
    return c;
}

static fx *make(const resil_breaker_set_config_t *c)
{
    fx *f = calloc(1, sizeof *f);
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(1000), &f->m), RESIL_OK);
    resil_breaker_set_local_t local = {resil_manual_clock_as_clock(f->m), on_event, f, 1};
    assert_int_equal(resil_breaker_set_new(c, &local, &f->s), RESIL_OK);
    return f;
}

static void done(fx *f)
{
    resil_breaker_set_free(f->s);
    resil_manual_clock_free(f->m);
    free(f);
}

static resil_status call(fx *f, const char *key, resil_outcome o)
{
    resil_breaker_set_permit_t p;
    resil_status s = resil_breaker_set_acquire(f->s, key, strlen(key), &p);
    if (s != RESIL_OK)
        return s;
    return resil_breaker_set_record(f->s, &p, o, 1);
}

static resil_breaker_state state_of(fx *f, const char *key)
{
    resil_breaker_t *b = NULL;
    if (resil_breaker_set_find(f->s, key, strlen(key), &b) != RESIL_OK)
        return (resil_breaker_state)-1;
    return resil_breaker_state_get(b);
}

static void each_key_has_its_own_breaker(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(8);
    fx *f = make(&c);
    assert_int_equal(call(f, "db-1", RESIL_OUTCOME_FAILURE), RESIL_OK);
    assert_int_equal(call(f, "db-2", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    assert_int_equal(call(f, "db-1", RESIL_OUTCOME_FAILURE), RESIL_OK);
    assert_int_equal(state_of(f, "db-1"), RESIL_BREAKER_OPEN);
    assert_int_equal(state_of(f, "db-2"), RESIL_BREAKER_CLOSED);
    assert_int_equal(call(f, "db-1", RESIL_OUTCOME_SUCCESS), RESIL_E_BREAKER_OPEN);
    assert_int_equal(call(f, "db-2", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    assert_int_equal(f->events, 1);
    assert_string_equal(f->last_key, "db-1");
    resil_breaker_set_stats_t st;
    assert_int_equal(resil_breaker_set_stats(f->s, &st), RESIL_OK);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.inserts, 2);
    assert_int_equal(st.slots, 16);
    resil_breaker_t *b = NULL;
    assert_int_equal(resil_breaker_set_find(f->s, "db-3", 4, &b), RESIL_E_NOT_FOUND);
    assert_null(b);
    done(f);
}

static void keys_are_bytes_not_strings(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(8);
    fx *f = make(&c);
    const unsigned char k1[] = {0, 1, 2}, k2[] = {0, 1, 3}, k3[] = {0, 1};
    resil_breaker_set_permit_t p;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(resil_breaker_set_acquire(f->s, k1, 3, &p), RESIL_OK);
        assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_OK);
    }
    resil_breaker_t *b;
    assert_int_equal(resil_breaker_set_find(f->s, k1, 3, &b), RESIL_OK);
    assert_int_equal(resil_breaker_state_get(b), RESIL_BREAKER_OPEN);
    assert_int_equal(resil_breaker_set_acquire(f->s, k2, 3, &p), RESIL_OK);
    assert_int_equal(resil_breaker_set_acquire(f->s, k3, 2, &p), RESIL_OK);
    done(f);
}

static void idle_closed_breakers_are_evicted_open_ones_never(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(2); /* 4 slots */
    fx *f = make(&c);
    char key[16];
    int held = 0;
    for (int i = 0; i < 64 && held < 4; i++) { /* fill every slot */
        snprintf(key, sizeof key, "k%d", i);
        if (call(f, key, RESIL_OUTCOME_FAILURE) == RESIL_OK)
            held++;
    }
    resil_breaker_set_stats_t st;
    resil_breaker_set_stats(f->s, &st);
    assert_int_equal(st.keys, 4);
    /* not idle yet: nothing can be evicted */
    assert_int_equal(call(f, "newcomer", RESIL_OUTCOME_SUCCESS), RESIL_E_FULL);
    /* open two of the four held keys */
    int opened = 0;
    char open_keys[2][16];
    for (int i = 0; i < 64 && opened < 2; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (state_of(f, key) == RESIL_BREAKER_CLOSED &&
            call(f, key, RESIL_OUTCOME_FAILURE) == RESIL_OK &&
            state_of(f, key) == RESIL_BREAKER_OPEN)
            memcpy(open_keys[opened++], key, sizeof key);
    }
    assert_int_equal(opened, 2);
    resil_manual_clock_advance(f->m, RESIL_SEC(61)); /* everyone is idle now */
    assert_int_equal(call(f, "n1", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    assert_int_equal(call(f, "n2", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    /* n1 and n2 are fresh (not idle) and the rest are OPEN: full */
    assert_int_equal(call(f, "n3", RESIL_OUTCOME_SUCCESS), RESIL_E_FULL);
    assert_int_equal(state_of(f, open_keys[0]), RESIL_BREAKER_OPEN);
    assert_int_equal(state_of(f, open_keys[1]), RESIL_BREAKER_OPEN);
    resil_breaker_set_stats(f->s, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.full, 2);
    assert_int_equal(st.keys, 4);
    done(f);
}

static void permit_of_an_evicted_key_is_stale(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(1); /* 2 slots */
    c.idle_evict_ns = 0;                     /* any CLOSED breaker may go */
    fx *f = make(&c);
    resil_breaker_set_permit_t p;
    assert_int_equal(resil_breaker_set_acquire(f->s, "a", 1, &p), RESIL_OK);
    resil_manual_clock_advance(f->m, RESIL_SEC(1));
    assert_int_equal(call(f, "b", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    resil_manual_clock_advance(f->m, RESIL_SEC(1));
    /* both slots are on every key's path (2 slots); a is the least recently
     * used, so c takes its slot */
    assert_int_equal(call(f, "c", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    resil_breaker_t *b;
    assert_int_equal(resil_breaker_set_find(f->s, "a", 1, &b), RESIL_E_NOT_FOUND);
    assert_int_equal(resil_breaker_set_find(f->s, "b", 1, &b), RESIL_OK);
    assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_FAILURE, 1), RESIL_E_STALE);
    resil_breaker_set_stats_t st;
    resil_breaker_set_stats(f->s, &st);
    assert_int_equal(st.evictions, 1);
    done(f);
}

/* A key that takes over an evicted key's slot starts with an empty window:
 * nothing of the old key's calls (here slow ones, counted in the slow ring
 * of a slow-rate-only breaker) counts toward its rate. */
static void new_key_in_a_recycled_slot_starts_empty(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(1); /* 2 slots */
    c.idle_evict_ns = 0;
    c.breaker.failure_rate_threshold = 0;
    c.breaker.slow_rate_threshold = 50;
    c.breaker.slow_call_duration_ns = RESIL_MS(1);
    assert_int_equal(resil_breaker_config_check(&c.breaker), RESIL_OK);
    fx *f = make(&c);
    resil_breaker_set_permit_t p;
    assert_int_equal(resil_breaker_set_acquire(f->s, "a", 1, &p), RESIL_OK);
    assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_SUCCESS, RESIL_MS(5)),
                     RESIL_OK); /* 1 call of 2 needed: stays CLOSED, evictable */
    resil_manual_clock_advance(f->m, RESIL_SEC(1));
    assert_int_equal(call(f, "b", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    resil_manual_clock_advance(f->m, RESIL_SEC(1));
    assert_int_equal(resil_breaker_set_acquire(f->s, "c", 1, &p), RESIL_OK); /* evicts a */
    resil_breaker_t *b = NULL;
    assert_int_equal(resil_breaker_set_find(f->s, "a", 1, &b), RESIL_E_NOT_FOUND);
    assert_int_equal(resil_breaker_set_find(f->s, "c", 1, &b), RESIL_OK);
    resil_breaker_stats_t st;
    assert_int_equal(resil_breaker_stats(b, &st), RESIL_OK);
    assert_int_equal(st.window_calls, 0);
    assert_int_equal(st.window_slow, 0);
    /* one slow call of its own does not trip it (minimum 2); a second does */
    assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_SUCCESS, RESIL_MS(5)),
                     RESIL_OK);
    assert_int_equal(state_of(f, "c"), RESIL_BREAKER_CLOSED);
    assert_int_equal(call(f, "c", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    assert_int_equal(state_of(f, "c"), RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_set_acquire(f->s, "c", 1, &p), RESIL_OK);
    assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_SUCCESS, RESIL_MS(5)),
                     RESIL_OK);
    assert_int_equal(state_of(f, "c"), RESIL_BREAKER_OPEN);
    done(f);
}

static void bad_keys_and_arguments_are_refused(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(4);
    fx *f = make(&c);
    resil_breaker_set_permit_t p;
    char big[40];
    memset(big, 'x', sizeof big);
    assert_int_equal(resil_breaker_set_acquire(f->s, "", 0, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_acquire(f->s, big, sizeof big, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_acquire(f->s, NULL, 1, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_acquire(NULL, "a", 1, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_acquire(f->s, "a", 1, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_record(f->s, NULL, RESIL_OUTCOME_SUCCESS, 1),
                     RESIL_E_INVALID_ARG);
    memset(&p, 0xff, sizeof p);
    assert_int_equal(resil_breaker_set_record(f->s, &p, RESIL_OUTCOME_SUCCESS, 1),
                     RESIL_E_INVALID_ARG);
    resil_breaker_t *b;
    assert_int_equal(resil_breaker_set_find(f->s, "a", 1, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_find(NULL, "a", 1, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_stats(f->s, NULL), RESIL_E_INVALID_ARG);
    resil_breaker_set_free(NULL);
    resil_breaker_set_config_t bad = small(0);
    resil_breaker_set_t *s = NULL;
    assert_int_equal(resil_breaker_set_new(&bad, NULL, &s), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(),
                        "breaker_set.capacity: must be in 1..1048576, got 0");
    bad = small(4);
    bad.key_max = 0;
    assert_int_equal(resil_breaker_set_new(&bad, NULL, &s), RESIL_E_INVALID_CONFIG);
    bad = small(4);
    bad.breaker.half_open_probes = 0;
    assert_int_equal(resil_breaker_set_new(&bad, NULL, &s), RESIL_E_INVALID_CONFIG);
    assert_non_null(strstr(resil_status_detail(), "breaker.half_open_probes"));
    assert_int_equal(resil_breaker_set_size(&bad), 0);
    assert_int_equal(resil_breaker_set_size(NULL), 0);
    assert_int_equal(resil_breaker_set_new(NULL, NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_new(&bad, NULL, NULL), RESIL_E_INVALID_ARG);
    c = small(4);
    size_t need = resil_breaker_set_size(&c);
    unsigned char *raw = aligned_alloc(64, need + 64);
    assert_int_equal(resil_breaker_set_init(raw + 8, need, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_init(raw, need - 1, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_init(NULL, need, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_init(raw, need, &bad), RESIL_E_INVALID_CONFIG);
    assert_int_equal(resil_breaker_set_init(raw, need, &c), RESIL_OK);
    assert_int_equal(resil_breaker_set_attach(raw, need, NULL, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_breaker_set_attach(raw, need - 64, NULL, &s), RESIL_E_CORRUPT);
    free(raw);
    test_alloc_install(1, 0);
    assert_int_equal(resil_breaker_set_new(&c, NULL, &s), RESIL_E_NO_MEMORY);
    assert_null(s);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
    done(f);
}

static void config_limits_are_enforced_not_clamped(void **state)
{
    (void)state;
    resil_breaker_set_t *s = NULL;
    resil_breaker_set_config_t c = small(RESIL_BREAKER_SET_MAX_CAPACITY + 1);
    assert_int_equal(resil_breaker_set_new(&c, NULL, &s), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(),
                        "breaker_set.capacity: must be in 1..1048576, got 1048577");
    c = small(4);
    c.key_max = RESIL_BREAKER_SET_MAX_KEY + 1;
    assert_int_equal(resil_breaker_set_new(&c, NULL, &s), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "breaker_set.key_max: must be in 1..1024, got 1025");
    assert_int_equal(resil_breaker_set_size(&c), 0);
    /* the largest key and capacity are accepted on their own... */
    c = small(RESIL_BREAKER_SET_MAX_CAPACITY);
    c.key_max = RESIL_BREAKER_SET_MAX_KEY;
    assert_true(resil_breaker_set_size(&c) > (size_t)RESIL_BREAKER_SET_MAX_CAPACITY * 1024);
    /* ...but not with breakers so large that the set passes 1 TiB */
    c.breaker.window_size = RESIL_BREAKER_MAX_WINDOW;
    c.breaker.minimum_calls = RESIL_BREAKER_MAX_WINDOW;
    assert_int_equal(resil_breaker_config_check(&c.breaker), RESIL_OK);
    assert_int_equal(resil_breaker_set_size(&c), 0);
    assert_int_equal(resil_breaker_set_new(&c, NULL, &s), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(), "breaker_set.capacity: the set would exceed 1 TiB");
    assert_null(s);
}

/* A permit that acquire never filled (all zero) names slot 0 at epoch 0,
 * which no key ever holds (a slot's first key gets epoch 1): it records
 * nothing, whatever sits in slot 0. */
static void zeroed_permit_records_nothing(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(1); /* 2 slots: every key's path covers slot 0 */
    fx *f = make(&c);
    resil_breaker_set_permit_t zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(resil_breaker_set_record(f->s, &zero, RESIL_OUTCOME_FAILURE, 1),
                     RESIL_E_STALE);
    assert_int_equal(call(f, "a", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    assert_int_equal(call(f, "b", RESIL_OUTCOME_SUCCESS), RESIL_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(resil_breaker_set_record(f->s, &zero, RESIL_OUTCOME_FAILURE, 1),
                         RESIL_E_STALE);
    assert_int_equal(state_of(f, "a"), RESIL_BREAKER_CLOSED);
    assert_int_equal(state_of(f, "b"), RESIL_BREAKER_CLOSED);
    assert_int_equal(f->events, 0);
    assert_int_equal(resil_breaker_set_record(NULL, &zero, RESIL_OUTCOME_FAILURE, 1),
                     RESIL_E_INVALID_ARG);
    resil_breaker_set_stats_t st;
    assert_int_equal(resil_breaker_set_stats(NULL, &st), RESIL_E_INVALID_ARG);
    done(f);
}

static void attach_without_memory_fails_cleanly(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(4);
    size_t need = resil_breaker_set_size(&c);
    void *raw = aligned_alloc(64, need);
    assert_int_equal(resil_breaker_set_init(raw, need, &c), RESIL_OK);
    resil_breaker_set_t *s = (resil_breaker_set_t *)raw; /* must be cleared on failure */
    test_alloc_install(1, 0);
    assert_int_equal(resil_breaker_set_attach(raw, need, NULL, &s), RESIL_E_NO_MEMORY);
    assert_null(s);
    assert_int_equal(test_alloc_live(), 0);
    test_alloc_uninstall();
    /* the block is untouched: the next attach works */
    assert_int_equal(resil_breaker_set_attach(raw, need, NULL, &s), RESIL_OK);
    resil_breaker_set_permit_t p;
    assert_int_equal(resil_breaker_set_acquire(s, "k", 1, &p), RESIL_OK);
    resil_breaker_set_free(s);
    free(raw);
}

/* Mirror of the stored config of breaker_set.c, layout version 1. */
typedef struct stored_cfg {
    uint32_t capacity, slots, mask, key_max;
    uint32_t key_words, max_probe, off_slots, slot_stride;
    uint32_t breaker_off, breaker_size;
    uint64_t idle_ns, seed;
} stored_cfg;

/* One bad field of a stored config: the field's offset and what is added to
 * it (modulo 2^32). Written for small(4): 8 slots, key_max 32. */
typedef struct bad_field {
    size_t off;
    uint32_t add;
} bad_field;

#define F(field) offsetof(stored_cfg, field)
static const bad_field bad_fields[] = {
    {F(slots), (uint32_t)-7},     /* 1 slot */
    {F(slots), (uint32_t)-1},     /* 7: not a power of two */
    {F(mask), (uint32_t)-4},      /* 3 with 8 slots */
    {F(capacity), (uint32_t)-4},  /* 0 */
    {F(capacity), 5},             /* 9: more than the slots */
    {F(key_max), (uint32_t)-32},  /* 0 */
    {F(key_max), 993},            /* 1025 */
    {F(key_words), 1},            /* 5 for 32-byte keys */
    {F(max_probe), (uint32_t)-8}, /* 0 */
    {F(max_probe), 1},            /* 9: more than the slots */
    {F(breaker_off), 64},
    {F(slot_stride), 64},
    {F(off_slots), 64},
};
#undef F

/* Makes the checksum of the (edited) stored config match again, as a
 * writer with a bug would have. */
static void rehash(void *mem)
{
    resil__block_header *h = mem;
    h->config_hash = resil__fnv1a64((unsigned char *)mem + h->config_off, h->config_len);
}

static void expect_corrupt_layout(void *mem, size_t len, const char *what)
{
    resil_breaker_set_t *s = NULL;
    resil_status a = resil_breaker_set_attach(mem, len, NULL, &s);
    if (a != RESIL_E_CORRUPT)
        fail_msg("%s: %s (%s)", what, resil_status_name(a), resil_status_detail());
    assert_string_equal(resil_status_detail(), "breaker_set: stored layout is inconsistent");
    assert_null(s);
}

/* Attach trusts no field of the block, even when the checksum matches:
 * each inconsistent layout field, and each header field that does not
 * describe this layout, is found. */
static void attach_refuses_an_inconsistent_layout(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(4);
    size_t need = resil_breaker_set_size(&c), len = need + 64;
    unsigned char *raw = aligned_alloc(64, len), *good = malloc(len);
    assert_int_equal(resil_breaker_set_init(raw, len, &c), RESIL_OK);
    resil__block_header *h = (resil__block_header *)raw;
    assert_int_equal(h->config_len, sizeof(stored_cfg));
    assert_int_equal(((stored_cfg *)(raw + h->config_off))->slots, 8);
    memcpy(good, raw, len);
    char what[32];
    for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
        memcpy(raw, good, len);
        uint32_t *field = (uint32_t *)(raw + h->config_off + bad_fields[i].off);
        *field += bad_fields[i].add;
        rehash(raw);
        snprintf(what, sizeof what, "bad field %zu", i);
        expect_corrupt_layout(raw, len, what);
    }
    memcpy(raw, good, len);
    h->config_len -= 8;
    rehash(raw);
    expect_corrupt_layout(raw, len, "config_len");
    memcpy(raw, good, len);
    h->config_off += 8;
    rehash(raw);
    expect_corrupt_layout(raw, len, "config_off");
    memcpy(raw, good, len);
    h->size += 64; /* within the memory given, but not what the layout needs */
    expect_corrupt_layout(raw, len, "size");
    memcpy(raw, good, len);
    resil_breaker_set_t *s = NULL;
    assert_int_equal(resil_breaker_set_attach(raw, len, NULL, &s), RESIL_OK);
    resil_breaker_set_free(s);
    free(good);
    free(raw);
}

static void set_in_shared_memory_is_shared_by_processes(void **state)
{
    (void)state;
    resil_breaker_set_config_t c = small(16);
    size_t len = (resil_breaker_set_size(&c) + 4095) & ~(size_t)4095;
    void *mem = test_shared_alloc(len);
    assert_non_null(mem);
    resil_breaker_set_t *s = NULL;
    assert_int_equal(resil_breaker_set_attach(mem, len, NULL, &s), RESIL_E_NOT_INITIALIZED);
    assert_int_equal(resil_breaker_set_init(mem, len, &c), RESIL_OK);
    assert_int_equal(resil_breaker_set_attach(mem, len, NULL, &s), RESIL_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        resil_breaker_set_t *cs = NULL;
        if (resil_breaker_set_attach(mem, len, NULL, &cs) != RESIL_OK)
            _exit(2);
        for (int i = 0; i < 2; i++) {
            resil_breaker_set_permit_t p;
            if (resil_breaker_set_acquire(cs, "upstream-7", 10, &p) != RESIL_OK)
                _exit(3);
            resil_breaker_set_record(cs, &p, RESIL_OUTCOME_FAILURE, 1);
        }
        resil_breaker_set_free(cs);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    resil_breaker_set_permit_t p;
    assert_int_equal(resil_breaker_set_acquire(s, "upstream-7", 10, &p), RESIL_E_BREAKER_OPEN);
    assert_int_equal(resil_breaker_set_acquire(s, "upstream-8", 10, &p), RESIL_OK);
    resil_breaker_set_free(s);
    /* a corrupted slot is found at attach */
    ((unsigned char *)mem)[len / 2] ^= 0xff;
    resil_status a = resil_breaker_set_attach(mem, len, NULL, &s);
    assert_true(a == RESIL_OK || a == RESIL_E_CORRUPT); /* the byte may be a counter */
    if (a == RESIL_OK)
        resil_breaker_set_free(s);
    memset(mem, 0x5a, 64);
    assert_int_equal(resil_breaker_set_attach(mem, len, NULL, &s), RESIL_E_CORRUPT);
    test_shared_free(mem, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_key_has_its_own_breaker),
        cmocka_unit_test(keys_are_bytes_not_strings),
        cmocka_unit_test(idle_closed_breakers_are_evicted_open_ones_never),
        cmocka_unit_test(permit_of_an_evicted_key_is_stale),
        cmocka_unit_test(new_key_in_a_recycled_slot_starts_empty),
        cmocka_unit_test(bad_keys_and_arguments_are_refused),
        cmocka_unit_test(config_limits_are_enforced_not_clamped),
        cmocka_unit_test(zeroed_permit_records_nothing),
        cmocka_unit_test(attach_without_memory_fails_cleanly),
        cmocka_unit_test(attach_refuses_an_inconsistent_layout),
        cmocka_unit_test(set_in_shared_memory_is_shared_by_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
