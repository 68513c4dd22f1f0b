#include "internal/divide.h"
#include "support.h"

static void check(uint64_t n, uint64_t d)
{
    resil__divider v = resil__divider_make(d);
    if (resil__div(&v, n) != n / d || resil__mod(&v, n) != n % d)
        fail_msg("%llu / %llu: got %llu rem %llu", (unsigned long long)n, (unsigned long long)d,
                 (unsigned long long)resil__div(&v, n), (unsigned long long)resil__mod(&v, n));
}

static void matches_hardware_division_on_edges(void **state)
{
    (void)state;
    const uint64_t ds[] = {1,
                           2,
                           3,
                           5,
                           7,
                           10,
                           100,
                           1000,
                           1000000,
                           1000000000,
                           6,
                           641,
                           UINT64_C(0x7fffffffffffffff),
                           UINT64_C(0x8000000000000000),
                           UINT64_C(0x8000000000000001),
                           UINT64_MAX - 1,
                           UINT64_MAX};
    const uint64_t ns[] = {0,
                           1,
                           2,
                           3,
                           99,
                           100,
                           101,
                           999,
                           1000,
                           1001,
                           UINT32_MAX,
                           (uint64_t)UINT32_MAX + 1,
                           UINT64_MAX / 2,
                           UINT64_MAX - 1,
                           UINT64_MAX};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            check(ns[j], ds[i]);
            check(ns[j] - (ns[j] > 0), ds[i]);
            check(ds[i] * 3, ds[i]);
            check(ds[i] * 3 - 1, ds[i]);
        }
}

static void matches_hardware_division_on_random_pairs(void **state)
{
    (void)state;
    resil_rng_t r;
    resil_rng_seed(&r, 5);
    for (int i = 0; i < 2000000; i++) {
        uint64_t d = resil_rng_next(&r) >> (resil_rng_next(&r) % 64);
        uint64_t n = resil_rng_next(&r) >> (resil_rng_next(&r) % 64);
        check(n, d ? d : 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_hardware_division_on_edges),
        cmocka_unit_test(matches_hardware_division_on_random_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
