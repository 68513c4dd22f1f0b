/*
 * Process identity that survives PID reuse, for leases held across
 * processes (bulkhead permits, half-open probes, in-progress idempotency
 * keys).
 *
 * An identity is the pid plus the process start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot). A pid can be reused by a new
 * process after the old one dies, but the pair cannot (the new process starts
 * later), so "is the holder still alive?" is answered without false
 * positives by kill(pid, 0) plus a start-time comparison. A zombie counts as
 * dead: it holds nothing any more, and its parent may not reap it soon.
 *
 * Packed form (one 64-bit word, so it can be CASed in shared memory):
 *
 *   63..32 pid (Linux pid_max is at most 2^22)   31..0 start time, low 32 bits
 *
 * 32 bits of 100 Hz ticks wrap after 497 days of uptime: two processes only
 * collide if they share a pid and started a multiple of 497 days apart.
 * Where /proc is not readable the start time is 0 and liveness falls back to
 * kill(pid, 0) alone (a reused pid then reads as alive: conservative, the
 * lease is kept rather than minted).
 *
 * Thread-safe. The identity of the calling process is read once and cached;
 * a pthread_atfork child handler drops the cache, so a forked child gets
 * its own identity.
 */
#ifndef RESIL_INTERNAL_OWNER_H
#define RESIL_INTERNAL_OWNER_H

#include <stdint.h>

#include "atomic.h"

typedef struct resil__owner {
    uint32_t pid;
    uint32_t start; /* low 32 bits of the start time in clock ticks; 0 unknown */
} resil__owner;

static inline uint64_t resil__owner_pack(resil__owner o) { return (uint64_t)o.pid << 32 | o.start; }

static inline resil__owner resil__owner_unpack(uint64_t v)
{
    resil__owner o = {(uint32_t)(v >> 32), (uint32_t)v};
    return o;
}

/* Packed identity of the calling process (never 0: a pid is >= 1). */
uint64_t resil__owner_self(void);

extern resil__atomic_u64 resil__owner_cache __attribute__((visibility("hidden")));

/* The cached packed identity, or 0 if it must be (re)computed with
 * resil__owner_self() (first use, or in a child after fork). One relaxed
 * load, inlined: cheap enough for hot paths that must notice a fork. */
static inline uint64_t resil__owner_cached(void)
{
    return resil__a64_load_relaxed(&resil__owner_cache);
}

/* Liveness of @p o: 1 alive, 0 dead (no such process, a zombie whose
 * threads have all exited, or the pid now belongs to a process with another
 * start time; a process whose main thread exited while others run shows as
 * a zombie in /proc and is alive). Makes system calls: never call it on a
 * hot path. */
int resil__owner_alive(resil__owner o);

/* resil__owner_alive() for a process known by @p pid and the bits
 * @p start_mask of its start time (0: any start time). */
int resil__owner_alive_start(uint32_t pid, uint32_t start, uint32_t start_mask);

/* Reads the state letter (R, S, Z, ...) and the full start time of @p pid
 * from /proc. @return 0 on success, -1 if /proc cannot tell. */
int resil__owner_read(int pid, char *state, uint64_t *start_ticks);

#endif /* RESIL_INTERNAL_OWNER_H */
