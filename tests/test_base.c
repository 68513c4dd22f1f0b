#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "support.h"

/* Impossible allocations must come back as NULL here, as they do without
 * a sanitizer, not abort the test. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifdef TEST_UNDER_ASAN
const char *__asan_default_options(void);
__attribute__((visibility("default"), used)) const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif
#if TEST_UNDER_TSAN
const char *__tsan_default_options(void);
__attribute__((visibility("default"), used)) const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

static void runtime_version_matches_the_header(void **state)
{
    (void)state;
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", RESIL_VERSION_MAJOR, RESIL_VERSION_MINOR,
             RESIL_VERSION_PATCH);
    assert_int_equal(resil_version(), RESIL_VERSION_NUMBER);
    assert_string_equal(resil_version_string(), expect);
    assert_int_equal(RESIL_VERSION_NUMBER,
                     RESIL_VERSION_MAJOR * 10000 + RESIL_VERSION_MINOR * 100 + RESIL_VERSION_PATCH);
}

static void duration_helpers_scale_to_nanoseconds(void **state)
{
    (void)state;
    assert_int_equal(RESIL_US(3), 3000);
    assert_int_equal(RESIL_MS(3), 3000000);
    assert_int_equal(RESIL_SEC(3), UINT64_C(3000000000));
    assert_int_equal(RESIL_SEC(10000000000), UINT64_C(10000000000000000000));
}

static void *my_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx, (void)size, (void)align;
    return NULL;
}
static void my_free(void *ctx, void *p, size_t size) { (void)ctx, (void)p, (void)size; }

static void allocator_rejects_half_filled_struct_and_keeps_the_old_one(void **state)
{
    (void)state;
    resil_allocator_t before = resil_allocator_get();
    resil_allocator_t half = {my_alloc, NULL, NULL};
    assert_int_equal(resil_allocator_set(&half), RESIL_E_INVALID_ARG);
    assert_true(strstr(resil_status_detail(), "alloc and free") != NULL);
    resil_allocator_t other = {NULL, my_free, NULL};
    assert_int_equal(resil_allocator_set(&other), RESIL_E_INVALID_ARG);
    resil_allocator_t now = resil_allocator_get();
    assert_ptr_equal(now.alloc, before.alloc);
    assert_ptr_equal(now.free, before.free);
}

static void installed_allocator_is_used_and_null_restores_default(void **state)
{
    (void)state;
    resil_allocator_t mine = {my_alloc, my_free, (void *)&mine};
    assert_int_equal(resil_allocator_set(&mine), RESIL_OK);
    resil_allocator_t got = resil_allocator_get();
    assert_ptr_equal(got.alloc, my_alloc);
    assert_ptr_equal(got.ctx, &mine);
    resil_manual_clock_t *m = NULL;
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_E_NO_MEMORY); /* my_alloc fails */
    assert_int_equal(resil_allocator_set(NULL), RESIL_OK);
    assert_ptr_not_equal(resil_allocator_get().alloc, my_alloc);
    assert_int_equal(resil_manual_clock_new(0, &m), RESIL_OK);
    resil_manual_clock_free(m);
}

static void allocator_can_fail_the_nth_allocation_persistently(void **state)
{
    (void)state;
    resil_manual_clock_t *c[4] = {0};
    test_alloc_install(3, 1);
    assert_int_equal(resil_manual_clock_new(0, &c[0]), RESIL_OK);
    assert_int_equal(resil_manual_clock_new(0, &c[1]), RESIL_OK);
    assert_int_equal(resil_manual_clock_new(0, &c[2]), RESIL_E_NO_MEMORY);
    assert_int_equal(resil_manual_clock_new(0, &c[3]), RESIL_E_NO_MEMORY);
    assert_int_equal(test_alloc_count(), 4);
    assert_int_equal(test_alloc_live(), 2);
    /* objects free themselves through the allocator that made them, even
     * after another one is installed */
    test_alloc_uninstall();
    for (int i = 0; i < 4; i++)
        resil_manual_clock_free(c[i]);
    assert_int_equal(test_alloc_live(), 0);
}

static unsigned long frees;
static void counting_free(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)size;
    frees++;
    free(p);
}

/* The default allocator reports an impossible request as NULL (which the
 * library turns into RESIL_E_NO_MEMORY), and freeing NULL calls no free
 * function at all. */
static void default_allocator_fails_cleanly_and_null_is_never_freed(void **state)
{
    (void)state;
    assert_int_equal(resil_allocator_set(NULL), RESIL_OK);
    resil_allocator_t a = resil_allocator_get();
    assert_null(a.alloc(a.ctx, SIZE_MAX / 2, 64));
    void *p = a.alloc(a.ctx, 100, 64);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    a.free(a.ctx, p, 100);
    resil_allocator_t counting = {a.alloc, counting_free, NULL};
    frees = 0;
    resil__free(&counting, NULL, 100);
    assert_int_equal(frees, 0);
    resil_allocator_t by;
    p = resil__alloc(64, &by);
    assert_non_null(p);
    by.free = counting_free;
    resil__free(&by, p, 64);
    assert_int_equal(frees, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runtime_version_matches_the_header),
        cmocka_unit_test(duration_helpers_scale_to_nanoseconds),
        cmocka_unit_test(allocator_rejects_half_filled_struct_and_keeps_the_old_one),
        cmocka_unit_test(installed_allocator_is_used_and_null_restores_default),
        cmocka_unit_test(allocator_can_fail_the_nth_allocation_persistently),
        cmocka_unit_test(default_allocator_fails_cleanly_and_null_is_never_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
