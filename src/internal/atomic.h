/*
 * The only place libresil spells a memory order.
 *
 * Every shared word is a resil__atomic_u64 or resil__atomic_u32: 8 or 4
 * bytes, naturally aligned, lock-free (checked at compile time below), so it
 * works in memory shared between processes. Function names carry their
 * order, so `grep release` finds every publication point:
 *
 *   resil__a64_<op>_<order>(ptr, ...)       and the same with a32 for u32
 *
 * Barrier rules, stated once:
 *   - A writer that publishes data others will read (an initialized block, a
 *     new state word with its fields) ends with a *_release store or RMW; a
 *     reader that acts on that data starts with a *_acquire load or RMW.
 *   - State transitions are a single cas_acq_rel on a packed state word: the
 *     acquire side sees everything published before the state it replaces,
 *     the release side publishes everything the new state implies.
 *   - Statistics counters that no decision reads back use *_relaxed.
 *   - Prefer ordering on the word itself to standalone fences: gcc's
 *     ThreadSanitizer refuses fences and clang's models them weakly.
 *   - cas_* is strong and, on failure, writes the current value to
 *     *expected (with acquire ordering), like C11's compare_exchange.
 *
 * Backends, picked in one #if chain, one file each, same interface:
 *   RESIL_ATOMICS_LIBATOMIC_OPS  libatomic_ops (AO_*), header-only use
 *   (default)                    C11 <stdatomic.h>
 *
 * Step hook: with RESIL_STEP_HOOKS defined, every read-modify-write first
 * calls resil__step(), which tests use to widen race windows or to kill a
 * process at its N-th atomic step. Without it the hook compiles to nothing.
 */
#ifndef RESIL_INTERNAL_ATOMIC_H
#define RESIL_INTERNAL_ATOMIC_H

#include <stdint.h>

#ifdef RESIL_STEP_HOOKS
/* Called before every atomic read-modify-write. Set by tests; NULL = off. */
typedef void (*resil__step_fn)(void *ctx);
void resil__step_hook_set(resil__step_fn fn, void *ctx);
void resil__step(void);
#define RESIL__STEP() resil__step()
#else
#define RESIL__STEP() ((void)0)
#endif

#if defined(RESIL_ATOMICS_LIBATOMIC_OPS)
#include "atomic_ao.h"
#else
#include "atomic_c11.h"
#endif

/* Both backends must lay shared words out identically, so that a block
 * written by one can be read by the other. */
_Static_assert(sizeof(resil__atomic_u64) == 8, "shared 64-bit word must be 8 bytes");
_Static_assert(_Alignof(resil__atomic_u64) == 8, "shared 64-bit word must be 8-aligned");
_Static_assert(sizeof(resil__atomic_u32) == 4, "shared 32-bit word must be 4 bytes");
_Static_assert(_Alignof(resil__atomic_u32) == 4, "shared 32-bit word must be 4-aligned");

/* Hint to the CPU that this is a spin-wait loop. */
static inline void resil__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* RESIL_INTERNAL_ATOMIC_H */
