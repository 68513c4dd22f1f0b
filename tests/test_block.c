#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/block.h"
#include "support.h"

/* A toy component built on the block convention, as real ones are. */
typedef struct {
    resil__block_header h;
    struct {
        uint64_t limit;
        uint64_t window;
    } config;
    resil__atomic_u64 counter;
} toy_block;

#define TOY_LAYOUT 3

static resil_status toy_init(void *mem, size_t len, uint64_t limit)
{
    resil_status s = resil__block_check_memory(mem, len, sizeof(toy_block));
    if (s != RESIL_OK)
        return s;
    toy_block *b = mem;
    memset(b, 0, sizeof *b);
    b->config.limit = limit;
    b->config.window = 10;
    resil__block_publish(&b->h, RESIL__KIND_TEST, TOY_LAYOUT, sizeof *b, &b->config,
                         sizeof b->config);
    return RESIL_OK;
}

static toy_block *fresh(void)
{
    toy_block *b = aligned_alloc(64, 128);
    assert_non_null(b);
    memset(b, 0, 128);
    assert_int_equal(toy_init(b, 128, 5), RESIL_OK);
    return b;
}

static void initialized_block_attaches(void **state)
{
    (void)state;
    toy_block *b = fresh();
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_OK);
    const uint64_t *cfg = resil__block_config(&b->h);
    assert_int_equal(cfg[0], 5);
    free(b);
}

static void zeroed_block_is_not_initialized(void **state)
{
    (void)state;
    toy_block *b = aligned_alloc(64, 128);
    memset(b, 0, 128);
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT),
                     RESIL_E_NOT_INITIALIZED);
    free(b);
}

static void each_corruption_gets_its_status(void **state)
{
    (void)state;
    toy_block *b = fresh();
    unsigned char *bytes = (unsigned char *)b;

    bytes[7] ^= 0x40; /* magic */
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_E_CORRUPT);
    bytes[7] ^= 0x40;
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_BREAKER, TOY_LAYOUT),
                     RESIL_E_WRONG_KIND);
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT + 1),
                     RESIL_E_VERSION);
    assert_string_equal(resil_status_detail(), "block: layout version 3, this library reads 4");

    b->config.limit = 6; /* config changed behind the checksum */
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_E_CORRUPT);
    b->config.limit = 5;

    b->h.size = 4096; /* claims more memory than the caller has */
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_E_CORRUPT);
    b->h.size = sizeof *b;

    b->h.config_off = 120; /* config region runs past the block */
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_E_CORRUPT);
    b->h.config_off = offsetof(toy_block, config);

    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT), RESIL_OK);
    free(b);
}

static void retired_block_no_longer_attaches(void **state)
{
    (void)state;
    toy_block *b = fresh();
    resil__block_retire(&b->h);
    assert_int_equal(resil__block_attach(b, 128, RESIL__KIND_TEST, TOY_LAYOUT),
                     RESIL_E_NOT_INITIALIZED);
    free(b);
}

static void bad_memory_is_an_invalid_argument(void **state)
{
    (void)state;
    unsigned char *raw = aligned_alloc(64, 256);
    memset(raw, 0, 256);
    assert_int_equal(resil__block_check_memory(NULL, 128, sizeof(toy_block)), RESIL_E_INVALID_ARG);
    assert_int_equal(toy_init(raw + 8, 128, 1), RESIL_E_INVALID_ARG);
    assert_int_equal(toy_init(raw, sizeof(toy_block) - 1, 1), RESIL_E_INVALID_ARG);
    assert_int_equal(resil__block_attach(NULL, 128, RESIL__KIND_TEST, TOY_LAYOUT),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil__block_attach(raw + 8, 128, RESIL__KIND_TEST, TOY_LAYOUT),
                     RESIL_E_INVALID_ARG);
    assert_int_equal(resil__block_attach(raw, 16, RESIL__KIND_TEST, TOY_LAYOUT),
                     RESIL_E_INVALID_ARG);
    free(raw);
}

static void random_bytes_never_attach_and_never_crash(void **state)
{
    (void)state;
    unsigned char *raw = aligned_alloc(64, 256);
    resil_rng_t r;
    resil_rng_seed(&r, 2024);
    int ok = 0;
    for (int trial = 0; trial < 20000; trial++) {
        for (int i = 0; i < 256; i += 8) {
            uint64_t v = resil_rng_next(&r);
            memcpy(raw + i, &v, 8);
        }
        if (trial % 2) /* half the time keep a valid tag, to reach the later checks */
            memcpy(raw,
                   &(uint64_t){(uint64_t)RESIL__BLOCK_MAGIC << 32 |
                               (uint64_t)RESIL__KIND_TEST << 16 | TOY_LAYOUT},
                   8);
        resil_status s = resil__block_attach(raw, 256, RESIL__KIND_TEST, TOY_LAYOUT);
        assert_true(s == RESIL_E_CORRUPT || s == RESIL_E_WRONG_KIND || s == RESIL_E_VERSION ||
                    s == RESIL_E_NOT_INITIALIZED || s == RESIL_OK);
        ok += s == RESIL_OK;
    }
    assert_int_equal(ok, 0);
    free(raw);
}

static void block_in_shared_memory_is_seen_by_forked_children(void **state)
{
    (void)state;
    toy_block *b = test_shared_alloc(4096);
    assert_non_null(b);
    assert_int_equal(toy_init(b, 4096, 9), RESIL_OK);
    enum { CHILDREN = 4, ADDS = 10000 };
    for (int c = 0; c < CHILDREN; c++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (resil__block_attach(b, 4096, RESIL__KIND_TEST, TOY_LAYOUT) != RESIL_OK)
                _exit(2);
            for (int i = 0; i < ADDS; i++)
                resil__a64_fetch_add_relaxed(&b->counter, 1);
            _exit(0);
        }
    }
    for (int c = 0; c < CHILDREN; c++) {
        int st = 0;
        wait(&st);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_int_equal(resil__a64_load_acquire(&b->counter), CHILDREN * ADDS);
    test_shared_free(b, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(initialized_block_attaches),
        cmocka_unit_test(zeroed_block_is_not_initialized),
        cmocka_unit_test(each_corruption_gets_its_status),
        cmocka_unit_test(retired_block_no_longer_attaches),
        cmocka_unit_test(bad_memory_is_an_invalid_argument),
        cmocka_unit_test(random_bytes_never_attach_and_never_crash),
        cmocka_unit_test(block_in_shared_memory_is_seen_by_forked_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
