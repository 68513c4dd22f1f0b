/*
 * Helpers shared by the test programs: cmocka's includes in the right order,
 * a counting allocator that fails on demand, stress-test timing, and shared
 * memory for multi-process tests.
 */
#ifndef RESIL_TEST_SUPPORT_H
#define RESIL_TEST_SUPPORT_H

/* cmocka needs these four before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "resil/resil.h"

/* Installs a counting allocator. Allocation number @p fail_at (1-based,
 * counted from this call) fails; with @p persistent, every later one fails
 * too. fail_at = 0 never fails. */
void test_alloc_install(unsigned long fail_at, int persistent);
/* Restores the default allocator. */
void test_alloc_uninstall(void);
/* Allocations made since install, and how many are still live (not freed). */
unsigned long test_alloc_count(void);
long test_alloc_live(void);

/* RESIL_STRESS_SECONDS from the environment (set by CTest), default 2. */
double test_stress_seconds(void);
/* Monotonic seconds, for bounding stress loops. */
double test_now_seconds(void);

/* @p size bytes of zeroed MAP_SHARED anonymous memory, page-aligned, shared
 * with children forked later. NULL on failure. */
void *test_shared_alloc(size_t size);
void test_shared_free(void *p, size_t size);

/* 1 in a ThreadSanitizer build (gcc or clang), else 0. */
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

#endif /* RESIL_TEST_SUPPORT_H */
