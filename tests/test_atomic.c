#include <pthread.h>

#include "internal/atomic.h"
#include "support.h"

static void operations_have_their_documented_results(void **state)
{
    (void)state;
    resil__atomic_u64 a;
    resil__a64_store_relaxed(&a, 10);
    assert_int_equal(resil__a64_fetch_add_relaxed(&a, 5), 10);
    assert_int_equal(resil__a64_fetch_add_acq_rel(&a, 5), 15);
    assert_int_equal(resil__a64_fetch_sub_relaxed(&a, 1), 20);
    assert_int_equal(resil__a64_fetch_sub_acq_rel(&a, 9), 19);
    assert_int_equal(resil__a64_load_acquire(&a), 10);
    assert_int_equal(resil__a64_exchange_acq_rel(&a, 0xff00), 10);
    assert_int_equal(resil__a64_fetch_or_acq_rel(&a, 0x0f), 0xff00);
    assert_int_equal(resil__a64_fetch_and_acq_rel(&a, 0xf0f), 0xff0f);
    assert_int_equal(resil__a64_load_relaxed(&a), 0xf0f);

    uint64_t expected = 1;
    assert_false(resil__a64_cas_acq_rel(&a, &expected, 2));
    assert_int_equal(expected, 0xf0f); /* failure reports the current value */
    assert_true(resil__a64_cas_acq_rel(&a, &expected, UINT64_MAX));
    assert_int_equal(resil__a64_load_acquire(&a), UINT64_MAX);
    assert_int_equal(resil__a64_fetch_add_relaxed(&a, 1), UINT64_MAX); /* wraps, defined */
    assert_int_equal(resil__a64_load_relaxed(&a), 0);
    expected = 0;
    assert_true(resil__a64_cas_relaxed(&a, &expected, 3));
    resil__a64_store_release(&a, 4);
    assert_int_equal(resil__a64_load_acquire(&a), 4);

    resil__atomic_u32 b;
    resil__a32_store_relaxed(&b, UINT32_MAX);
    assert_int_equal(resil__a32_fetch_add_acq_rel(&b, 2), UINT32_MAX);
    assert_int_equal(resil__a32_load_acquire(&b), 1);
    uint32_t e32 = 1;
    assert_true(resil__a32_cas_acq_rel(&b, &e32, 7));
    assert_int_equal(resil__a32_exchange_acq_rel(&b, 8), 7);
    assert_int_equal(resil__a32_fetch_sub_acq_rel(&b, 8), 8);
    resil__fence_seq_cst();
    resil__fence_acquire();
    resil__fence_release();
}

enum { THREADS = 4, OPS = 200000 };
static resil__atomic_u64 counter;
static resil__atomic_u32 counter32;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < OPS; i++) {
        resil__a64_fetch_add_relaxed(&counter, 1);
        uint32_t cur = resil__a32_load_relaxed(&counter32);
        while (!resil__a32_cas_acq_rel(&counter32, &cur, cur + 1))
            resil__cpu_relax();
    }
    return NULL;
}

static void concurrent_increments_are_never_lost(void **state)
{
    (void)state;
    resil__a64_store_relaxed(&counter, 0);
    resil__a32_store_relaxed(&counter32, 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(resil__a64_load_acquire(&counter), THREADS * OPS);
    assert_int_equal(resil__a32_load_acquire(&counter32), THREADS * OPS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(operations_have_their_documented_results),
        cmocka_unit_test(concurrent_increments_are_never_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
