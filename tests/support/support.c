#include "support.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static atomic_ulong alloc_count;
static atomic_long alloc_live;
static unsigned long alloc_fail_at;
static int alloc_persistent;

static void *counting_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    if (alloc_fail_at != 0 && (n == alloc_fail_at || (alloc_persistent && n > alloc_fail_at)))
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    atomic_fetch_add(&alloc_live, 1);
    return p;
}

static void counting_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    atomic_fetch_sub(&alloc_live, 1);
    free(ptr);
}

void test_alloc_install(unsigned long fail_at, int persistent)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&alloc_live, 0);
    alloc_fail_at = fail_at;
    alloc_persistent = persistent;
    resil_allocator_t a = {counting_alloc, counting_free, NULL};
    assert_int_equal(resil_allocator_set(&a), RESIL_OK);
}

void test_alloc_uninstall(void) { assert_int_equal(resil_allocator_set(NULL), RESIL_OK); }

unsigned long test_alloc_count(void) { return atomic_load(&alloc_count); }

long test_alloc_live(void) { return atomic_load(&alloc_live); }

double test_stress_seconds(void)
{
    const char *s = getenv("RESIL_STRESS_SECONDS");
    double v = s != NULL ? atof(s) : 0.0;
    return v > 0.0 ? v : 2.0;
}

double test_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *test_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void test_shared_free(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}
