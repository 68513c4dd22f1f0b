/**
 * @file resil/base.h
 * @brief Version, export macro, duration helpers and the allocator hook.
 *
 * Every other libresil header includes this one. It holds what all components
 * share and nothing that belongs to one of them.
 *
 * Thread safety: every function here is thread-safe.
 * Progress: wait-free (no function here loops or blocks).
 */
#ifndef RESIL_BASE_H
#define RESIL_BASE_H

#include <stddef.h>
#include <stdint.h>

#include "resil/export.h"
#include "resil/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Version
 * The single source of the version: CMake reads these three lines. Releases
 * with the same major version are ABI compatible (SONAME libresil.so.MAJOR).
 * @{ */
#define RESIL_VERSION_MAJOR 0
#define RESIL_VERSION_MINOR 1
#define RESIL_VERSION_PATCH 0
/** MAJOR * 10000 + MINOR * 100 + PATCH, for `#if RESIL_VERSION_NUMBER >= ...`. */
#define RESIL_VERSION_NUMBER                                                                       \
    (RESIL_VERSION_MAJOR * 10000 + RESIL_VERSION_MINOR * 100 + RESIL_VERSION_PATCH)
/** @} */

/** @name Durations
 * Durations and instants are uint64_t nanoseconds everywhere in the API.
 * These helpers make call sites read in the unit the author thinks in.
 * @{ */
#define RESIL_NS(x) ((uint64_t)(x))
#define RESIL_US(x) ((uint64_t)(x)*UINT64_C(1000))
#define RESIL_MS(x) ((uint64_t)(x)*UINT64_C(1000000))
#define RESIL_SEC(x) ((uint64_t)(x)*UINT64_C(1000000000))
/** @} */

/** Alignment of every state block, in bytes (one cache line). */
#define RESIL_BLOCK_ALIGN 64

/**
 * Runtime version of the library that is linked, as RESIL_VERSION_NUMBER.
 * Compare it with the macro to detect a header/library mismatch.
 * @return the version number; never fails.
 */
RESIL_API unsigned resil_version(void);

/**
 * Runtime version as "MAJOR.MINOR.PATCH".
 * @return a static string; never NULL, never fails.
 */
RESIL_API const char *resil_version_string(void);

/** Allocates @p size bytes aligned to @p align (a power of two, at most 4096). */
typedef void *(*resil_alloc_fn)(void *ctx, size_t size, size_t align);
/** Frees what the paired resil_alloc_fn returned; @p size is the size asked for. */
typedef void (*resil_free_fn)(void *ctx, void *ptr, size_t size);

/**
 * The allocator every library allocation goes through. Only process-local
 * handles are allocated (`*_new` functions); hot paths never allocate, and
 * state blocks placed in caller memory need no allocation at all.
 */
typedef struct resil_allocator {
    resil_alloc_fn alloc; /**< required */
    resil_free_fn free;   /**< required */
    void *ctx;            /**< passed to both, may be NULL */
} resil_allocator_t;

/**
 * Installs @p a as the process-wide allocator for allocations made from now
 * on. The struct is copied. Each object remembers the allocator that made it
 * and frees itself through that one, so switching allocators while objects
 * live is safe. Passing NULL restores the default (posix_memalign / free).
 *
 * Thread-safe, but allocations already in progress on other threads may use
 * either the old or the new allocator.
 *
 * @return RESIL_OK; RESIL_E_INVALID_ARG if @p a is non-NULL and has a NULL
 *         alloc or free function (the allocator in force is unchanged).
 */
RESIL_API resil_status resil_allocator_set(const resil_allocator_t *a);

/**
 * The allocator in force.
 * @return a copy of it; never fails.
 */
RESIL_API resil_allocator_t resil_allocator_get(void);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_BASE_H */
