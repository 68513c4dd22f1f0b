/**
 * @file resil/bulkhead.h
 * @brief Bulkhead: cap how many calls run at once against one dependency.
 *
 * A bulkhead is a counting semaphore of `max_concurrent` permits. A call
 * takes a permit before it starts and gives it back when it ends, so one
 * slow dependency can never tie up more than `max_concurrent` threads or
 * workers. resil_bulkhead_try_acquire() never blocks;
 * resil_bulkhead_acquire_wait() waits up to a bound for a permit.
 *
 * Crash safety across processes: the state is one pointer-free block that
 * may live in MAP_SHARED memory used by several worker processes. Every
 * permit is a cell of the block that records, in the same CAS that grants
 * it, which attached process holds it (a process record: pid + process start
 * time, so pid reuse cannot fool it, plus an epoch). A process that dies
 * holding permits does not shrink the bulkhead forever: its permits are
 * reclaimed lazily (an acquire that finds the bulkhead full checks, at most
 * once per `reclaim_interval_ns`, whether holders are still alive) or
 * explicitly (resil_bulkhead_reclaim_dead(), resil_bulkhead_reclaim_pid(),
 * e.g. from an nginx master that reaped a worker). A reclaim at any moment,
 * even one that is itself killed half-way, never loses or mints a permit;
 * a release of a permit that was reclaimed returns RESIL_E_NOT_OWNER and
 * changes nothing (fencing).
 *
 * Waiting: acquire_wait() callers queue FIFO by ticket (at most
 * `max_waiters` at once); only the head of the queue takes a freed permit,
 * so waiters are served in arrival order and none starves under steady
 * load. A waiter whose deadline passes (or whose process died) is skipped.
 * try_acquire() does not queue and may take a free permit ahead of waiters,
 * like java.util.concurrent.Semaphore.tryAcquire(). With the default clock
 * the wait blocks on a Linux futex on a 32-bit word inside the block,
 * without FUTEX_PRIVATE_FLAG, so it works across processes on MAP_SHARED
 * memory; each futex sleep is capped at 10 ms, bounding the delay of any
 * missed wake-up. With another clock (manual, cached) the wait sleeps on
 * that clock in small steps (a manual clock advances, so tests run
 * instantly).
 *
 * Memory: caller memory must be RESIL_BLOCK_ALIGN (64) aligned and at least
 * resil_bulkhead_size() bytes, and must outlive every handle on it. Init
 * writes it; attach validates magic, kind, layout version, size, config
 * checksum and every cell. The library never allocates inside it.
 *
 * Thread safety: every function is thread-safe and may be called from any
 * process attached to the block.
 * Progress: try_acquire and release are lock-free and make no system call
 * (the slow path that looks for dead holders runs only when the bulkhead is
 * full, at most once per reclaim interval). acquire_wait may block.
 */
#ifndef RESIL_BULKHEAD_H
#define RESIL_BULKHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "resil/base.h"
#include "resil/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most permits of one bulkhead. */
#define RESIL_BULKHEAD_MAX_CONCURRENT 65536
/** Most processes attached at once (each attached process takes a record). */
#define RESIL_BULKHEAD_MAX_PROCESSES 254
/** Most acquire_wait() callers queued at once. */
#define RESIL_BULKHEAD_MAX_WAITERS 4096

/** Configuration, stored inside the block. Get the defaults from
 * resil_bulkhead_config_default(); values out of range are rejected with
 * RESIL_E_INVALID_CONFIG naming the field, never clamped. */
typedef struct resil_bulkhead_config {
    /** Permits, 1..RESIL_BULKHEAD_MAX_CONCURRENT. Default 25. */
    uint32_t max_concurrent;
    /** Process records, 1..RESIL_BULKHEAD_MAX_PROCESSES. Default 64. */
    uint32_t max_processes;
    /** Queue capacity of acquire_wait(), 0..RESIL_BULKHEAD_MAX_WAITERS;
     * 0 makes acquire_wait() behave as try_acquire(). Default 256. */
    uint32_t max_waiters;
    /** Counter lines a thread can own, a power of two 1..64. Each of the
     * first `stripes` threads (over all processes) to use the bulkhead
     * owns one line and counts on it without atomic read-modify-writes;
     * later threads share one more line with atomic adds. A line comes
     * free when its process is reclaimed. 64 bytes each. Default 16. */
    uint32_t stripes;
    /** Lazy reclaim: a full bulkhead checks holders' liveness at most this
     * often, in ns; 0 turns lazy reclaim off (explicit reclaim only).
     * Default 100 ms. */
    uint64_t reclaim_interval_ns;
} resil_bulkhead_config_t;

/** @return the defaults documented on each field. Never fails. */
RESIL_API resil_bulkhead_config_t resil_bulkhead_config_default(void);

/**
 * Validates @p cfg.
 * @return RESIL_OK; RESIL_E_INVALID_ARG for NULL; RESIL_E_INVALID_CONFIG
 *         with a detail naming the field.
 */
RESIL_API resil_status resil_bulkhead_config_check(const resil_bulkhead_config_t *cfg);

/**
 * Bytes of state a bulkhead with @p cfg needs (a multiple of 64).
 * @return the size; 0 if @p cfg is NULL or invalid.
 */
RESIL_API size_t resil_bulkhead_size(const resil_bulkhead_config_t *cfg);

/** Compile-time upper bound of resil_bulkhead_size() for @p permits,
 * @p processes, @p waiters and @p stripes. */
#define RESIL_BULKHEAD_SIZE(permits, processes, waiters, stripes)                                  \
    ((size_t)(256 + 64 * ((size_t)(stripes) + 1) + 8 * ((size_t)(processes) + 8) +                 \
              40 * ((size_t)(waiters) + 8) + 2 * ((size_t)(permits) + 32) + 256))

/** Process-local handle on a bulkhead. Opaque. */
typedef struct resil_bulkhead resil_bulkhead_t;

/** Process-local settings of a handle (never stored in the block). */
typedef struct resil_bulkhead_local {
    resil_clock_t clock; /**< waits and lazy reclaim; all-zero: CLOCK_MONOTONIC */
} resil_bulkhead_local_t;

/**
 * Writes a new, empty bulkhead into @p mem (@p len bytes).
 * @return RESIL_OK; RESIL_E_INVALID_ARG (NULL, misaligned or short memory,
 *         NULL @p cfg); RESIL_E_INVALID_CONFIG. On error @p mem is untouched.
 */
RESIL_API resil_status resil_bulkhead_init(void *mem, size_t len,
                                           const resil_bulkhead_config_t *cfg);

/**
 * Makes a handle on an initialized bulkhead and registers the calling
 * process in it (or joins its existing record). Allocates the handle only.
 * @p local may be NULL.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG; RESIL_E_NOT_INITIALIZED;
 *         RESIL_E_CORRUPT; RESIL_E_WRONG_KIND; RESIL_E_VERSION;
 *         RESIL_E_FULL if every process record belongs to a live process;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_bulkhead_attach(void *mem, size_t len,
                                             const resil_bulkhead_local_t *local,
                                             resil_bulkhead_t **out);

/**
 * Allocates a bulkhead (state and handle) for this process. @p local may be
 * NULL.
 * @return RESIL_OK and `*out`; RESIL_E_INVALID_ARG; RESIL_E_INVALID_CONFIG;
 *         RESIL_E_NO_MEMORY. On error `*out` is NULL.
 */
RESIL_API resil_status resil_bulkhead_new(const resil_bulkhead_config_t *cfg,
                                          const resil_bulkhead_local_t *local,
                                          resil_bulkhead_t **out);

/** Frees a handle (and the state of resil_bulkhead_new()). Permits still
 * held stay held (release them first). The process record stays until the
 * process dies. Accepts NULL. */
RESIL_API void resil_bulkhead_free(resil_bulkhead_t *b);

/** A permit: a small value on the caller's stack, given back exactly once
 * with resil_bulkhead_release(). Fields are private. */
typedef struct resil_bulkhead_permit {
    uint32_t id_;   /**< which bulkhead */
    uint32_t cell_; /**< which cell */
    uint16_t tag_;  /**< process record + epoch written in the cell */
    uint16_t live_; /**< 1 while held */
    uint32_t pad_;
} resil_bulkhead_permit_t;

/**
 * Takes a permit if one is free. Never blocks.
 * @return RESIL_OK (`*permit` must be released); RESIL_E_BULKHEAD_FULL;
 *         RESIL_E_INVALID_ARG for NULL arguments; RESIL_E_FULL if this
 *         process was reclaimed and no process record is free to register
 *         again.
 */
RESIL_API resil_status resil_bulkhead_try_acquire(resil_bulkhead_t *b,
                                                  resil_bulkhead_permit_t *permit);

/**
 * Takes a permit, waiting up to @p max_wait_ns for one (FIFO among
 * waiters). 0 waits not at all.
 * @return RESIL_OK; RESIL_E_TIMEOUT if no permit came in time;
 *         RESIL_E_BULKHEAD_FULL if the wait queue is full (or max_waiters is
 *         0 and no permit is free); RESIL_E_INVALID_ARG; RESIL_E_FULL as for
 *         try_acquire.
 */
RESIL_API resil_status resil_bulkhead_acquire_wait(resil_bulkhead_t *b, uint64_t max_wait_ns,
                                                   resil_bulkhead_permit_t *permit);

/**
 * Gives a permit back and wakes a waiter if any.
 * @return RESIL_OK; RESIL_E_NOT_OWNER if the permit was reclaimed (its
 *         process was declared dead) or was already given back through a
 *         copy: nothing changes (a permit names a cell and a process, so a
 *         copy released after the same process was granted that cell again
 *         releases the new permit: never release a copy); RESIL_E_INVALID_ARG for NULL arguments, a
 *         permit of another bulkhead, a permit never granted or already
 *         released: nothing changes.
 */
RESIL_API resil_status resil_bulkhead_release(resil_bulkhead_t *b, resil_bulkhead_permit_t *permit);

/**
 * Reclaims the permits and records of every attached process that is no
 * longer alive (checked by pid + start time). Makes system calls.
 * @return the number of permits reclaimed (>= 0); RESIL_E_INVALID_ARG
 *         (negative) for NULL.
 */
RESIL_API int resil_bulkhead_reclaim_dead(resil_bulkhead_t *b);

/**
 * Reclaims the permits and record of process @p pid without checking that
 * it is dead: for a supervisor that reaped it (an nginx master). Any later
 * release from that process returns RESIL_E_NOT_OWNER.
 * @return the number of permits reclaimed (>= 0, 0 when @p pid holds no
 *         record); RESIL_E_INVALID_ARG (negative) for NULL or pid <= 0.
 */
RESIL_API int resil_bulkhead_reclaim_pid(resil_bulkhead_t *b, int pid);

/** A snapshot; each value is exact at quiescence. */
typedef struct resil_bulkhead_stats {
    uint32_t max_concurrent; /**< the configured limit */
    uint32_t in_flight;      /**< permits held now (a scan of the cells) */
    uint32_t peak;           /**< most permits seen held at once (see docs) */
    uint32_t waiting;        /**< acquire_wait() callers queued now */
    uint32_t processes;      /**< process records in use */
    uint64_t granted;        /**< permits granted (try and wait) */
    uint64_t rejected;       /**< try_acquire rejections and full-queue rejections */
    uint64_t timed_out;      /**< acquire_wait() calls that timed out */
    uint64_t released;       /**< permits given back: derived, granted - reclaimed - in_flight */
    uint64_t reclaimed;      /**< permits taken back from dead or reclaimed processes */
} resil_bulkhead_stats_t;

/** Fills @p out. @return RESIL_OK; RESIL_E_INVALID_ARG for NULL. */
RESIL_API resil_status resil_bulkhead_stats(const resil_bulkhead_t *b, resil_bulkhead_stats_t *out);

/**
 * Validates the block's invariants with plain reads (callable from any
 * process, also after a crash): every cell is free or names a process
 * record, in_flight <= max_concurrent, queue bounds. At quiescence (no
 * call in progress) it also checks that no cell is held by a reclaimed
 * process record.
 * @param quiescent 1 to include the quiescent checks.
 * @return RESIL_OK; RESIL_E_CORRUPT with a detail; RESIL_E_INVALID_ARG.
 */
RESIL_API resil_status resil_bulkhead_check(const resil_bulkhead_t *b, int quiescent);

#ifdef __cplusplus
}
#endif

#endif /* RESIL_BULKHEAD_H */
