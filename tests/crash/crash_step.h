/*
 * Scaffolding of the crash-at-every-step tests (linked with the step-hooked
 * library): run one operation in a forked child that dies at its N-th
 * atomic read-modify-write, before that step happens.
 */
#ifndef RESIL_TEST_CRASH_STEP_H
#define RESIL_TEST_CRASH_STEP_H

#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "support.h"

enum { CRASH_COMPLETED = 42 };

static unsigned long crash_die_at, crash_steps;

static void crash_count_step(void *ctx)
{
    (void)ctx;
    if (++crash_steps == crash_die_at)
        _exit(0);
}

/* Forks; the child runs @p op(@p ctx) and dies at its @p n-th atomic step.
 * @return 1 if the operation completed before reaching step @p n (there are
 * no more crash points to try), 0 if the child died at step @p n. */
static int crash_at_step(unsigned long n, void (*op)(void *), void *ctx)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        crash_die_at = n;
        crash_steps = 0;
        resil__step_hook_set(crash_count_step, NULL);
        op(ctx);
        _exit(CRASH_COMPLETED);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st) == CRASH_COMPLETED;
}

#endif /* RESIL_TEST_CRASH_STEP_H */
