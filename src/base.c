#include "resil/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/atomic.h"
#include "internal/stripe.h"
#include "internal/util.h"

#define RESIL__STR2(x) #x
#define RESIL__STR(x) RESIL__STR2(x)

unsigned resil_version(void) { return RESIL_VERSION_NUMBER; }

const char *resil_version_string(void)
{
    return RESIL__STR(RESIL_VERSION_MAJOR) "." RESIL__STR(RESIL_VERSION_MINOR) "." RESIL__STR(
        RESIL_VERSION_PATCH);
}

static void *default_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = NULL;
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void default_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    free(ptr);
}

/* Allocation is never on a hot path, so a mutex guards the setting. */
static pthread_mutex_t allocator_lock = PTHREAD_MUTEX_INITIALIZER;
static resil_allocator_t allocator = {default_alloc, default_free, NULL};

resil_status resil_allocator_set(const resil_allocator_t *a)
{
    if (a != NULL && (a->alloc == NULL || a->free == NULL))
        return resil__fail(RESIL_E_INVALID_ARG, "allocator: alloc and free must both be set");
    pthread_mutex_lock(&allocator_lock);
    if (a != NULL)
        allocator = *a;
    else
        allocator = (resil_allocator_t){default_alloc, default_free, NULL};
    pthread_mutex_unlock(&allocator_lock);
    return RESIL_OK;
}

resil_allocator_t resil_allocator_get(void)
{
    pthread_mutex_lock(&allocator_lock);
    resil_allocator_t a = allocator;
    pthread_mutex_unlock(&allocator_lock);
    return a;
}

void *resil__alloc(size_t size, resil_allocator_t *by)
{
    *by = resil_allocator_get();
    void *p = by->alloc(by->ctx, size, RESIL_BLOCK_ALIGN);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

void resil__free(const resil_allocator_t *by, void *p, size_t size)
{
    if (p != NULL)
        by->free(by->ctx, p, size);
}

_Thread_local uint32_t resil__stripe_plus1 __attribute__((tls_model("initial-exec")));
static resil__atomic_u32 next_stripe;

uint32_t resil__stripe_assign(void)
{
    resil__stripe_plus1 = resil__a32_fetch_add_relaxed(&next_stripe, 1) + 1;
    return resil__stripe_plus1;
}

#ifdef RESIL_STEP_HOOKS
/* Test-only: set before the threads or processes under test start. */
static resil__step_fn step_fn;
static void *step_ctx;

void resil__step_hook_set(resil__step_fn fn, void *ctx)
{
    step_ctx = ctx;
    step_fn = fn;
}

void resil__step(void)
{
    if (step_fn != NULL)
        step_fn(step_ctx);
}
#endif
