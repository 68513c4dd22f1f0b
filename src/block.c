#include "internal/block.h"

#include <stdint.h>

#include "internal/util.h"
#include "resil/base.h"

uint64_t resil__fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t make_tag(uint16_t kind, uint16_t layout)
{
    return (uint64_t)RESIL__BLOCK_MAGIC << 32 | (uint64_t)kind << 16 | layout;
}

resil_status resil__block_check_memory(const void *mem, size_t len, size_t need)
{
    if (mem == NULL)
        return resil__fail(RESIL_E_INVALID_ARG, "block: memory is NULL");
    if ((uintptr_t)mem % RESIL_BLOCK_ALIGN != 0)
        return resil__fail(RESIL_E_INVALID_ARG, "block: memory must be %d-byte aligned",
                           RESIL_BLOCK_ALIGN);
    if (len < need)
        return resil__fail(RESIL_E_INVALID_ARG, "block: %zu bytes given, %zu needed", len, need);
    return RESIL_OK;
}

void resil__block_publish(resil__block_header *h, uint16_t kind, uint16_t layout, size_t size,
                          const void *config, uint32_t config_len)
{
    h->size = size;
    h->config_off = (uint32_t)((const unsigned char *)config - (const unsigned char *)h);
    h->config_len = config_len;
    h->config_hash = resil__fnv1a64(config, config_len);
    resil__a64_store_release(&h->tag, make_tag(kind, layout));
}

resil_status resil__block_attach(const void *mem, size_t len, uint16_t kind, uint16_t layout)
{
    resil_status s = resil__block_check_memory(mem, len, sizeof(resil__block_header));
    if (s != RESIL_OK)
        return s;
    const resil__block_header *h = mem;
    uint64_t tag = resil__a64_load_acquire(&h->tag);
    if (tag == 0)
        return resil__fail(RESIL_E_NOT_INITIALIZED, "block: tag is zero (never initialized, "
                                                    "being initialized, or destroyed)");
    if ((uint32_t)(tag >> 32) != RESIL__BLOCK_MAGIC)
        return resil__fail(RESIL_E_CORRUPT, "block: bad magic 0x%08x",
                           (unsigned)(uint32_t)(tag >> 32));
    if ((uint16_t)(tag >> 16) != kind)
        return resil__fail(RESIL_E_WRONG_KIND, "block: kind %u, expected %u",
                           (unsigned)(uint16_t)(tag >> 16), (unsigned)kind);
    if ((uint16_t)tag != layout)
        return resil__fail(RESIL_E_VERSION, "block: layout version %u, this library reads %u",
                           (unsigned)(uint16_t)tag, (unsigned)layout);
    if (h->size < sizeof *h || h->size > len)
        return resil__fail(RESIL_E_CORRUPT, "block: recorded size %llu, memory given %zu",
                           (unsigned long long)h->size, len);
    if (h->config_off < sizeof *h || h->config_len > h->size ||
        h->config_off > h->size - h->config_len)
        return resil__fail(RESIL_E_CORRUPT, "block: config region %u+%u outside block of %llu",
                           (unsigned)h->config_off, (unsigned)h->config_len,
                           (unsigned long long)h->size);
    if (resil__fnv1a64(resil__block_config(h), h->config_len) != h->config_hash)
        return resil__fail(RESIL_E_CORRUPT, "block: config checksum mismatch");
    return RESIL_OK;
}

void resil__block_retire(resil__block_header *h) { resil__a64_store_release(&h->tag, 0); }
