/*
 * The state-block convention (DESIGN.md principle 1), shared by every
 * component whose state may live in caller memory or in memory shared by
 * several processes.
 *
 * A state block is one RESIL_BLOCK_ALIGN-aligned, fixed-size run of bytes
 * with no pointers in it. It starts with this header:
 *
 *   offset  size  field
 *        0     8  tag          magic:32 | kind:16 | layout:16, atomic
 *        8     8  size         bytes of the whole block
 *       16     8  config_hash  FNV-1a 64 of the config region
 *       24     4  config_off   where the component's immutable config lies
 *       28     4  config_len   and how long it is
 *
 * Init writes everything else first and publishes the tag last with a
 * release store; attach loads the tag with acquire, so an attacher that sees
 * the tag sees a fully initialized block. An all-zero tag means "not
 * initialized" (fresh zeroed shared memory, an init in progress elsewhere, or
 * a destroyed block). Attach trusts nothing: it checks magic, kind, layout
 * version, size against the memory the caller has, and the config hash, and
 * returns a status for each failure. The component then checks its own
 * invariants.
 */
#ifndef RESIL_INTERNAL_BLOCK_H
#define RESIL_INTERNAL_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "resil/status.h"

#define RESIL__BLOCK_MAGIC UINT32_C(0x4c495352) /* "RSIL" read little-endian */

/* Component kinds. Values are part of the shared-memory ABI: never reuse. */
enum resil__kind {
    RESIL__KIND_TEST = 1,
    RESIL__KIND_BREAKER = 2,
    RESIL__KIND_BREAKER_SET = 3,
    RESIL__KIND_BULKHEAD = 4,
    RESIL__KIND_RATELIMIT = 5,
    RESIL__KIND_LIMITER = 6,
    RESIL__KIND_RETRY_BUDGET = 7,
    RESIL__KIND_IDEMPOTENCY = 8,
    RESIL__KIND_RATELIMIT_SET = 9,
    RESIL__KIND_HISTOGRAM = 10,
    RESIL__KIND_SLO = 11,
};

typedef struct resil__block_header {
    resil__atomic_u64 tag;
    uint64_t size;
    uint64_t config_hash;
    uint32_t config_off;
    uint32_t config_len;
} resil__block_header;

_Static_assert(sizeof(resil__block_header) == 32, "block header layout is ABI");

/* FNV-1a 64 of @p len bytes. */
uint64_t resil__fnv1a64(const void *data, size_t len);

/* Checks caller memory for a block of @p need bytes: non-NULL, aligned to
 * RESIL_BLOCK_ALIGN, @p len >= @p need. RESIL_E_INVALID_ARG otherwise. */
resil_status resil__block_check_memory(const void *mem, size_t len, size_t need);

/* Fills the header of a block whose body (config included) is already
 * written, and publishes it (release). @p config lies inside the block. */
void resil__block_publish(resil__block_header *h, uint16_t kind, uint16_t layout, size_t size,
                          const void *config, uint32_t config_len);

/* Validates a block someone else initialized. @return RESIL_OK, or
 * RESIL_E_INVALID_ARG (NULL, misaligned, @p len too small for a header),
 * RESIL_E_NOT_INITIALIZED, RESIL_E_CORRUPT, RESIL_E_WRONG_KIND,
 * RESIL_E_VERSION; each with a detail. */
resil_status resil__block_attach(const void *mem, size_t len, uint16_t kind, uint16_t layout);

/* Marks the block not initialized, so later attaches fail cleanly. */
void resil__block_retire(resil__block_header *h);

/* The config region of a validated block. */
static inline const void *resil__block_config(const resil__block_header *h)
{
    return (const unsigned char *)h + h->config_off;
}

#endif /* RESIL_INTERNAL_BLOCK_H */
