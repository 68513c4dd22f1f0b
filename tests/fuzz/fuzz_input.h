/*
 * What the fuzz targets of the limits (rate limiter, keyed set, bulkhead)
 * share: an abort-on-failure check; a reader that turns the fuzzer's bytes
 * into values (running out of input reads zeros, so every input is a
 * complete test; one value per statement, so an input means the same under
 * every compiler); a picker for 64-bit values that hits the edges (0, 1,
 * powers of two, near UINT64_MAX) far more often than uniform bytes would;
 * a counting allocator for the library's hook that can fail a chosen
 * allocation; the start of a run (thread index, mode byte); and memory for
 * attach tests: arbitrary bytes, forged headers, corrupted valid blocks.
 */
#ifndef RESIL_FUZZ_INPUT_H
#define RESIL_FUZZ_INPUT_H

/* posix_memalign; the replay build defines _GNU_SOURCE, libFuzzer's not.
 * Include this header first. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/base.h"
#include "resil/bulkhead.h"
#include "resil/ratelimit.h"

#define MUST(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

__extension__ typedef unsigned __int128 fz_u128;
__extension__ typedef __int128 fz_i128;

typedef struct fz_in {
    const uint8_t *p;
    size_t n, i;
} fz_in;

static inline int fz_more(const fz_in *in) { return in->i < in->n; }

static inline uint8_t fz_u8(fz_in *in) { return in->i < in->n ? in->p[in->i++] : 0; }

/* @p bytes little-endian bytes (at most 8). */
static inline uint64_t fz_bytes(fz_in *in, int bytes)
{
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)fz_u8(in) << (8 * k);
    return v;
}

static inline uint64_t fz_sat(fz_u128 v) { return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v; }

static inline uint64_t fz_clamp(fz_i128 v)
{
    return v < 0 ? 0 : v > (fz_i128)UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

/* A 64-bit value, biased towards the edges where arithmetic breaks. */
static inline uint64_t fz_pick(fz_in *in)
{
    uint8_t k = fz_u8(in);
    switch (k % 8) {
    case 0:
        return fz_u8(in);
    case 1:
        return fz_bytes(in, 2);
    case 2:
        return fz_bytes(in, 4);
    case 3:
        return fz_bytes(in, 8);
    case 4: { /* a power of two, give or take a little */
        uint64_t p = UINT64_C(1) << (fz_u8(in) % 64);
        int d = (int)(k >> 3) % 5 - 2;
        return d < 0 && p < 2 ? 0 : p + (uint64_t)(int64_t)d;
    }
    case 5:
        return UINT64_MAX - fz_u8(in);
    case 6: { /* a power of ten: 1 ns .. 10^19 ns */
        uint64_t v = 1;
        for (int e = fz_u8(in) % 20; e > 0; e--)
            v *= 10;
        return v;
    }
    default:
        return k >> 7;
    }
}

/* Library allocations through a counter that can fail the n-th one. */
static struct {
    uint64_t allocs, frees;
    long fail_in; /* fail when this many more allocations were made; <0 never */
} fz_heap = {0, 0, -1};

static inline void *fz_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    if (fz_heap.fail_in >= 0 && fz_heap.fail_in-- == 0)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0)
        return NULL;
    fz_heap.allocs++;
    return p;
}

static inline void fz_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    if (p != NULL)
        fz_heap.frees++;
    free(p);
}

/* Installs the counting allocator (once) and clears the failure plan. */
static inline void fz_heap_setup(void)
{
    static int done;
    if (!done) {
        resil_allocator_t a = {fz_alloc, fz_free, NULL};
        MUST(resil_allocator_set(&a) == RESIL_OK, "allocator_set");
        done = 1;
    }
    fz_heap.fail_in = -1;
}

/* A call that gives a helper thread its library thread index. */
static inline void *fz_touch(void *arg)
{
    resil_ratelimit_config_t rc = resil_ratelimit_config_default();
    resil_ratelimit_t *r = NULL;
    MUST(resil_ratelimit_new(&rc, NULL, &r) == RESIL_OK &&
             resil_ratelimit_try_acquire_at(r, 1, 0, NULL) == RESIL_OK,
         "helper thread");
    resil_ratelimit_free(r);
    resil_bulkhead_config_t bc = resil_bulkhead_config_default();
    resil_bulkhead_t *b = NULL;
    resil_bulkhead_permit_t p;
    MUST(resil_bulkhead_new(&bc, NULL, &b) == RESIL_OK &&
             resil_bulkhead_try_acquire(b, &p) == RESIL_OK &&
             resil_bulkhead_release(b, &p) == RESIL_OK,
         "helper thread");
    resil_bulkhead_free(b);
    return arg;
}

/*
 * The common start of a run: gives the calling thread library thread index
 * @p thread_index (once per process; the library numbers threads 0, 1, ...
 * in the order they first use it, and its per-thread caches of start words
 * and counter lines are trivial for index 0 only, so helper threads take
 * the lower indices first), installs the counting allocator and starts
 * reading the input. Its first byte is the run's mode: 1 run in 8 is
 * @p attach, the target's attach test, instead of its own.
 * @return the mode, or -1 after an attach test.
 */
static inline int fz_begin(fz_in *in, const uint8_t *data, size_t size, int thread_index,
                           void (*attach)(fz_in *in))
{
    static int helpers;
    for (; helpers < thread_index; helpers++) {
        pthread_t t;
        MUST(pthread_create(&t, NULL, fz_touch, NULL) == 0 && pthread_join(t, NULL) == 0,
             "pthread");
    }
    fz_heap_setup();
    in->p = data;
    in->n = size;
    in->i = 0;
    uint8_t mode = fz_u8(in);
    if (mode % 8 == 7) {
        attach(in);
        return -1;
    }
    return mode;
}

/* @p len bytes at a 64-byte boundary, exactly, so ASan sees any read past
 * them. Never fails (aborts instead). */
static inline unsigned char *fz_block(size_t len)
{
    void *p = NULL;
    MUST(posix_memalign(&p, 64, len > 0 ? len : 1) == 0, "posix_memalign(%zu)", len);
    return p;
}

/*
 * The state-block header every component starts with (src/internal/block.h,
 * part of the shared-memory ABI): tag (magic:32 | kind:16 | layout:16) at 0,
 * size at 8, FNV-1a 64 of the config region at 16, config offset and length
 * at 24 and 28. Corruption tests use it to forge a header that passes the
 * generic checks, so the component's own checks are reached.
 */
#define FZ_BLOCK_MAGIC UINT64_C(0x4c495352)

static inline uint64_t fz_fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static inline void fz_put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static inline void fz_block_tag(unsigned char *mem, size_t len, uint16_t kind, uint16_t layout)
{
    if (len >= 8)
        fz_put64(mem, FZ_BLOCK_MAGIC << 32 | (uint64_t)kind << 16 | layout);
}

/* Recomputes the config checksum of the header in @p mem, where the
 * recorded config region lies inside @p len bytes. */
static inline void fz_block_rehash(unsigned char *mem, size_t len)
{
    if (len < 32)
        return;
    uint32_t off, clen;
    memcpy(&off, mem + 24, 4);
    memcpy(&clen, mem + 28, 4);
    if (off >= 32 && clen <= len && off <= len - clen)
        fz_put64(mem + 16, fz_fnv1a64(mem + off, clen));
}

/*
 * Corrupts a valid block the way the input says: a few bytes XORed at
 * chosen offsets (biased to the header and the first lines, where the
 * config lives), the length claimed shortened, and optionally the checksum
 * recomputed so the corruption gets past it. @return the length to claim.
 */
static inline size_t fz_corrupt(fz_in *in, unsigned char *mem, size_t len)
{
    unsigned flips = fz_u8(in) % 6;
    for (unsigned f = 0; f < flips && len > 0; f++) {
        uint8_t where = fz_u8(in);
        size_t off = where & 0x80 ? (size_t)fz_bytes(in, 2) % len : (size_t)(where % 192) % len;
        mem[off] ^= (uint8_t)(fz_u8(in) | 1);
    }
    uint8_t how = fz_u8(in);
    if (how & 1)
        fz_block_rehash(mem, len);
    if (how & 2)
        len -= (size_t)fz_bytes(in, 2) % (len + 1);
    return len;
}

/* Writes a valid block from the input's choices into fresh fz_block()
 * memory of exactly *len bytes, and returns it. */
typedef unsigned char *(*fz_make_fn)(fz_in *in, size_t *len);

/*
 * Memory for an attach test, in a shape the input picks: arbitrary bytes
 * (fewer than @p max_len; sometimes behind a header tagged with @p kind or
 * another kind and layout 1..3, its checksum sometimes recomputed), or the
 * valid block @p make writes, corrupted by fz_corrupt(). *len is the length
 * to claim and *at where to attach: @p mem, @p mem plus a misalignment, or
 * NULL. Free the returned memory.
 */
static inline unsigned char *fz_attach_memory(fz_in *in, size_t max_len, uint16_t kind,
                                              fz_make_fn make, unsigned char **at, size_t *len)
{
    uint8_t how = fz_u8(in);
    unsigned char *mem;
    if (how % 2 == 0) {
        *len = (size_t)fz_bytes(in, 2) % max_len;
        mem = fz_block(*len);
        for (size_t i = 0; i < *len; i++)
            mem[i] = fz_u8(in);
        if (how & 2) {
            uint8_t k = fz_u8(in);
            fz_block_tag(mem, *len, k & 0x80 ? k % 12 : kind, 1 + k % 3);
        }
        if (how & 4)
            fz_block_rehash(mem, *len);
    } else {
        mem = make(in, len);
        *len = fz_corrupt(in, mem, *len);
    }
    size_t offset = how & 8 ? fz_u8(in) % 64 : 0;
    *at = offset <= *len ? mem + offset : NULL;
    *len = offset <= *len ? *len - offset : 0;
    return mem;
}

/* Checks an attach's answer: a status from the documented set (@p also:
 * one more, or RESIL_OK), and a handle iff RESIL_OK. */
static inline void fz_attach_answer(resil_status s, const void *handle, resil_status also)
{
    MUST(s == RESIL_OK || s == RESIL_E_INVALID_ARG || s == RESIL_E_NOT_INITIALIZED ||
             s == RESIL_E_CORRUPT || s == RESIL_E_WRONG_KIND || s == RESIL_E_VERSION ||
             s == RESIL_E_NO_MEMORY || s == also,
         "attach: %s", resil_status_name(s));
    MUST((s == RESIL_OK) == (handle != NULL), "attach: %s with handle %p", resil_status_name(s),
         handle);
}

#endif /* RESIL_FUZZ_INPUT_H */
