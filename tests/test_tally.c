/*
 * Counter lines bumped without locked instructions (internal/tally.h):
 * totals stay exact however many threads and processes count, a line has
 * one writer at a time, and lines of dead processes are taken back.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/tally.h"
#include "support.h"

enum { LINES = 2, THREADS = 6, ADDS = 200000 };

struct adder {
    resil__tally_line *t;
    pthread_barrier_t *go;
};

static void *adder_main(void *arg)
{
    struct adder *a = arg;
    pthread_barrier_wait(a->go);
    for (int i = 0; i < ADDS; i++) {
        resil__tally_add(a->t, LINES, 0, 1);
        resil__tally_add(a->t, LINES, 6, 2);
    }
    return NULL;
}

static resil__tally_line *tally_in_shared_memory(void)
{
    resil__tally_line *t = test_shared_alloc(RESIL__TALLY_BYTES(LINES));
    assert_non_null(t);
    return t;
}

static void run_adders(resil__tally_line *t)
{
    pthread_t th[THREADS];
    struct adder a = {t, NULL};
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, THREADS);
    a.go = &go;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, adder_main, &a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

/* Six threads, two lines: two own a line each, four share the last one.
 * Two threads writing one owned line with plain stores would lose counts. */
static void totals_are_exact_with_more_threads_than_lines(void **state)
{
    (void)state;
    resil__tally_line *t = tally_in_shared_memory();
    run_adders(t);
    assert_int_equal(resil__tally_sum(t, LINES, 0), (uint64_t)THREADS * ADDS);
    assert_int_equal(resil__tally_sum(t, LINES, 6), (uint64_t)THREADS * ADDS * 2);
    assert_int_equal(resil__tally_sum(t, LINES, 3), 0);
    int owned = 0;
    for (int l = 0; l < LINES; l++)
        owned += resil__a64_load_relaxed(&t[l].owner) != 0;
    assert_int_equal(owned, LINES); /* the owned lines were used, not only the shared one */
    test_shared_free(t, RESIL__TALLY_BYTES(LINES));
}

/* A forked child inherits the parent's TLS entry but not its identity: it
 * must count on a line of its own (or the shared one), concurrently with
 * the parent's threads, and every count must arrive. */
static void forked_children_count_on_their_own_lines(void **state)
{
    (void)state;
    resil__tally_line *t = tally_in_shared_memory();
    resil__tally_add(t, LINES, 0, 1); /* the parent owns a line and caches it */
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            run_adders(t);
            _exit(0);
        }
    }
    run_adders(t);
    for (int k = 0; k < 3; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_int_equal(resil__tally_sum(t, LINES, 0), 1 + 4 * (uint64_t)THREADS * ADDS);
    assert_int_equal(resil__tally_sum(t, LINES, 6), 4 * (uint64_t)THREADS * ADDS * 2);
    test_shared_free(t, RESIL__TALLY_BYTES(LINES));
}

static void *one_add(void *arg)
{
    resil__tally_add(arg, LINES, 1, 5);
    return NULL;
}

static void add_from_a_new_thread(resil__tally_line *t)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, one_add, t), 0);
    pthread_join(th, NULL);
}

/* Children take every line. While they live, a new thread counts on the
 * shared line even when the liveness check runs; once they are dead, the
 * once-a-second check takes one line back, keeping its totals. */
static void lines_of_dead_processes_are_taken_back(void **state)
{
    (void)state;
    resil__tally_line *t = tally_in_shared_memory();
    pid_t kids[LINES];
    for (int k = 0; k < LINES; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not strand it */
            resil__tally_add(t, LINES, 1, 100);
            pause();
            _exit(0);
        }
        while (resil__tally_sum(t, LINES, 1) != 100 * (uint64_t)(k + 1))
            usleep(1000);
    }
    uint64_t dead[LINES];
    for (int l = 0; l < LINES; l++) {
        dead[l] = resil__a64_load_relaxed(&t[l].owner);
        assert_int_not_equal(dead[l], 0);
    }
    add_from_a_new_thread(t); /* the first check runs at once: owners alive */
    for (int l = 0; l < LINES; l++)
        assert_int_equal(resil__a64_load_relaxed(&t[l].owner), dead[l]);
    assert_int_equal(resil__a64_load_relaxed(&t[LINES].c[1]), 5);
    for (int k = 0; k < LINES; k++) {
        kill(kids[k], SIGKILL);
        waitpid(kids[k], NULL, 0);
    }
    int taken = 0;
    double until = test_now_seconds() + 5;
    while (taken == 0 && test_now_seconds() < until) {
        usleep(100000);
        add_from_a_new_thread(t);
        for (int l = 0; l < LINES; l++)
            taken += resil__a64_load_relaxed(&t[l].owner) != dead[l];
    }
    assert_int_equal(taken, 1); /* one line per check */
    uint64_t adds = resil__tally_sum(t, LINES, 1) - 200;
    assert_true(adds % 5 == 0 && adds >= 10);
    test_shared_free(t, RESIL__TALLY_BYTES(LINES));
}

/* More tallies than TLS ways, used in turn by one thread: entries are
 * evicted and refilled, the thread finds its own line again each time
 * (no new claims), and every count lands. */
static void eviction_finds_the_same_line_again(void **state)
{
    (void)state;
    enum { TALLIES = 3 * RESIL__TALLY_WAYS };
    resil__tally_line *t = test_shared_alloc(TALLIES * RESIL__TALLY_BYTES(LINES));
    assert_non_null(t);
    for (int round = 0; round < 100; round++)
        for (int k = 0; k < TALLIES; k++)
            resil__tally_add(&t[k * (LINES + 1)], LINES, 2, 1);
    for (int k = 0; k < TALLIES; k++) {
        resil__tally_line *tk = &t[k * (LINES + 1)];
        assert_int_equal(resil__tally_sum(tk, LINES, 2), 100);
        int owned = 0;
        for (int l = 0; l < LINES; l++)
            owned += resil__a64_load_relaxed(&tk[l].owner) != 0;
        assert_int_equal(owned, 1);
        assert_int_equal(resil__a64_load_relaxed(&tk[LINES].c[2]), 0); /* never shared */
    }
    test_shared_free(t, TALLIES * RESIL__TALLY_BYTES(LINES));
}

/* Ends a forked child. exit() writes the child's coverage counts in a
 * --coverage build; under ASan it would also run the leak check, which
 * reports the parent's cmocka state (its threads are gone in the child). */
static void child_exit(int code)
{
#ifdef __SANITIZE_ADDRESS__
    _exit(code);
#else
    exit(code);
#endif
}

/* A one-line tally in shared memory with line 0 held by owner word @p o,
 * which has already counted 40 on counter 3. */
static resil__tally_line *tally_held_by(uint64_t o)
{
    resil__tally_line *t = test_shared_alloc(RESIL__TALLY_BYTES(1));
    assert_non_null(t);
    resil__a64_store_relaxed(&t[0].owner, o);
    resil__a64_store_relaxed(&t[0].c[3], 40);
    return t;
}

/* Runs @p fn(@p arg) in a new thread, whose TLS holds no line cached by
 * earlier tests for a tally at the same address. @return what fn returns. */
static void *in_new_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    void *ret = NULL;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    pthread_join(th, &ret);
    return ret;
}

static void *add_twice(void *arg)
{
    resil__tally_line *t = arg;
    resil__tally_add(t, 1, 3, 2); /* a fresh tally: the liveness check runs at once */
    uint64_t o = resil__a64_load_relaxed(&t[0].owner);
    resil__tally_add(t, 1, 3, 1);
    return resil__a64_load_relaxed(&t[0].owner) == o ? NULL : t; /* kept the line */
}

/* A new thread (fresh TLS) adds to @p t twice: the first add takes line 0
 * back from @p old_owner, keeping the 40 counted on it, the second finds
 * it owned. */
static void expect_line_taken_back(resil__tally_line *t, uint64_t old_owner)
{
    assert_null(in_new_thread(add_twice, t));
    uint64_t now_owner = resil__a64_load_relaxed(&t[0].owner);
    assert_int_not_equal(now_owner, old_owner);
    assert_int_not_equal(now_owner, 0);
    assert_int_equal(resil__a64_load_relaxed(&t[0].c[3]), 43);
    assert_int_equal(resil__a64_load_relaxed(&t[1].c[3]), 0);
}

/* Owner word layout (internal/tally.h): 63 one, 62..41 pid, 40..21 start
 * time (low 20 bits), 20..0 thread index. */
static uint64_t owner_word_of(int pid, uint64_t start, uint32_t thread)
{
    return UINT64_C(1) << 63 | (uint64_t)(pid & 0x3fffff) << 41 | (start & 0xfffff) << 21 | thread;
}

/* The owner's pid is alive but belongs to a process started at another
 * time (the pid was reused): the owner is dead, its line is taken. */
static void line_of_a_reused_pid_is_taken_back(void **state)
{
    (void)state;
    char st;
    uint64_t start;
    assert_int_equal(resil__owner_read(getpid(), &st, &start), 0);
    uint64_t o = owner_word_of(getpid(), start + 1, 0);
    resil__tally_line *t = tally_held_by(o);
    expect_line_taken_back(t, o);
    test_shared_free(t, RESIL__TALLY_BYTES(1));
}

/* The owner exited and is a zombie not yet reaped: kill(pid, 0) still
 * succeeds, but no thread is left, so it is dead. */
static void line_of_a_zombie_is_taken_back(void **state)
{
    (void)state;
    resil__tally_line *t = tally_held_by(0);
    resil__a64_store_relaxed(&t[0].c[3], 0);
    fflush(NULL);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        resil__tally_add(t, 1, 3, 40); /* claims line 0: it is free */
        child_exit(resil__a64_load_relaxed(&t[0].owner) != 0 ? 0 : 1);
    }
    siginfo_t info;
    assert_int_equal(waitid(P_PID, (id_t)kid, &info, WEXITED | WNOWAIT), 0); /* not reaped */
    assert_int_equal(info.si_status, 0);
    uint64_t o = resil__a64_load_relaxed(&t[0].owner);
    assert_int_not_equal(o, 0);
    assert_int_equal(resil__a64_load_relaxed(&t[0].c[3]), 40);
    char st;
    uint64_t start;
    assert_int_equal(resil__owner_read(kid, &st, &start), 0);
    assert_int_equal(st, 'Z');
    expect_line_taken_back(t, o);
    assert_int_equal(waitpid(kid, NULL, 0), kid);
    test_shared_free(t, RESIL__TALLY_BYTES(1));
}

static void *fork_after_add(void *arg)
{
    resil__tally_line *t = arg;
    resil__tally_add(t, 1, 4, 1); /* this thread owns line 0 and caches it */
    fflush(NULL);
    pid_t kid = fork();
    if (kid == 0) {
        resil__tally_add(t, 1, 4, 5); /* with the inherited cache entry */
        child_exit(0);
    }
    int st = 0;
    if (kid < 0 || waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return NULL;
    return t;
}

/* A forked child inherits its parent thread's cached line for a tally, but
 * not the right to write it: the child's counts go to the shared line
 * while the parent, alive, keeps its own. (A new thread does the parent's
 * part: its TLS holds no entry left by earlier tests.) */
static void forked_child_never_writes_its_parents_line(void **state)
{
    (void)state;
    resil__tally_line *t = tally_held_by(0);
    resil__a64_store_relaxed(&t[0].c[3], 0);
    assert_non_null(in_new_thread(fork_after_add, t));
    assert_int_not_equal(resil__a64_load_relaxed(&t[0].owner), 0);
    assert_int_equal(resil__a64_load_relaxed(&t[0].c[4]), 1);
    assert_int_equal(resil__a64_load_relaxed(&t[1].c[4]), 5);
    test_shared_free(t, RESIL__TALLY_BYTES(1));
}

static void *add_without_owned_lines(void *arg)
{
    resil__tally_add(arg, 0, 2, 7);
    resil__tally_add(arg, 0, 2, 1);
    return NULL;
}

/* With no owned lines (n = 0) every count goes to the shared line, with
 * atomic adds, and no line is claimed. */
static void tally_without_owned_lines_counts_on_the_shared_line(void **state)
{
    (void)state;
    resil__tally_line *t = tally_held_by(0);
    resil__a64_store_relaxed(&t[0].c[3], 0);
    in_new_thread(add_without_owned_lines, t);
    in_new_thread(add_without_owned_lines, t);
    assert_int_equal(resil__a64_load_relaxed(&t[0].owner), 0);
    assert_int_equal(resil__a64_load_relaxed(&t[0].c[2]), 16);
    assert_int_equal(resil__tally_sum(t, 0, 2), 16);
    test_shared_free(t, RESIL__TALLY_BYTES(1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(totals_are_exact_with_more_threads_than_lines),
        cmocka_unit_test(forked_children_count_on_their_own_lines),
        cmocka_unit_test(lines_of_dead_processes_are_taken_back),
        cmocka_unit_test(eviction_finds_the_same_line_again),
        cmocka_unit_test(line_of_a_reused_pid_is_taken_back),
        cmocka_unit_test(line_of_a_zombie_is_taken_back),
        cmocka_unit_test(forked_child_never_writes_its_parents_line),
        cmocka_unit_test(tally_without_owned_lines_counts_on_the_shared_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
