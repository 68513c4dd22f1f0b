/*
 * Every allocation of the library goes through here, and so through the
 * allocator installed with resil_allocator_set(). Objects keep a copy of the
 * allocator that made them and free themselves through it.
 */
#ifndef RESIL_INTERNAL_ALLOC_H
#define RESIL_INTERNAL_ALLOC_H

#include <stddef.h>

#include "resil/base.h"

/* Allocates @p size bytes aligned to RESIL_BLOCK_ALIGN, zeroed. Stores the
 * allocator used in *by. Returns NULL when the allocator fails. */
void *resil__alloc(size_t size, resil_allocator_t *by);

/* Frees @p p (may be NULL) through @p by; @p size as given to resil__alloc. */
void resil__free(const resil_allocator_t *by, void *p, size_t size);

#endif /* RESIL_INTERNAL_ALLOC_H */
