/*
 * breaker_shared: the shape of an nginx module or any prefork server. One
 * breaker lives in MAP_SHARED memory; two worker processes attach to it and
 * use the non-blocking two-step API with the time their event loop cached.
 * Worker 1 sees the upstream fail; worker 2, which saw nothing wrong, is
 * protected too, because the state is shared.
 */
#define _DEFAULT_SOURCE
#include <resil/breaker.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int worker(void *zone, size_t size, int fails)
{
    resil_breaker_t *b = NULL;
    if (resil_breaker_attach(zone, size, NULL, &b) != RESIL_OK)
        return 2;
    uint64_t loop_time = resil_clock_now(NULL); /* cached once per loop iteration */
    for (int i = 0; i < 10; i++) {
        resil_breaker_permit_t permit;
        if (resil_breaker_acquire_at(b, loop_time, &permit) != RESIL_OK)
            break; /* rejected: serve a fallback, never block */
        /* ... start the upstream request; when its response (or error) arrives: */
        resil_outcome o = fails ? RESIL_OUTCOME_FAILURE : RESIL_OUTCOME_SUCCESS;
        resil_breaker_record_at(b, &permit, o, RESIL_MS(3), loop_time);
    }
    int open = resil_breaker_state_get(b) == RESIL_BREAKER_OPEN;
    resil_breaker_free(b);
    return open ? 0 : 1;
}

int main(void)
{
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 10;
    cfg.minimum_calls = 5;
    size_t size = resil_breaker_size(&cfg);
    /* an nginx module would allocate this in its shared zone */
    void *zone = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (zone == MAP_FAILED || resil_breaker_init(zone, size, &cfg) != RESIL_OK)
        return 1;
    int status = 0, ok = 1;
    for (int w = 1; w <= 2; w++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(worker(zone, size, w == 1));
        waitpid(pid, &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
        printf("worker %d done: the shared breaker is %s\n", w, ok ? "OPEN" : "not open");
    }
    munmap(zone, size);
    return ok ? 0 : 1;
}
