/*
 * Counter lines bumped without locked instructions (internal/tally.h):
 * totals stay exact however many threads and processes count, a line has
 * one writer at a time, and lines of dead processes are taken back.
 */
#include <pthread.h>
#include <signal.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(totals_are_exact_with_more_threads_than_lines),
        cmocka_unit_test(forked_children_count_on_their_own_lines),
        cmocka_unit_test(lines_of_dead_processes_are_taken_back),
        cmocka_unit_test(eviction_finds_the_same_line_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
