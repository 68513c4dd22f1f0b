/*
 * One breaker shared by forked processes: a memfd mapped twice, at two
 * addresses, 4 processes x 2 threads attached through either mapping. The
 * invariants are checked from every process; the counters they need live in
 * the shared mapping too. Then a probe owner is killed mid-probe and the
 * breaker must not stay half-open past its probe deadline.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breaker_chaos.h"
#include "resil/breaker.h"
#include "support.h"

enum { PROCS = 4, THREADS_PER_PROC = 2 };

typedef struct shared_counts {
    breaker_chaos_counts n;
    atomic_ulong checks;
    atomic_int probe_taken;
} shared_counts;

static size_t round_page(size_t n) { return (n + 4095) & ~(size_t)4095; }

typedef struct proc_ctx {
    resil_breaker_t *b;
    shared_counts *sc;
    double until;
    uint32_t k;
} proc_ctx;

static void *worker(void *arg)
{
    proc_ctx *c = arg;
    breaker_chaos_run(c->b, &c->sc->n, c->k, c->until,
                      (uint64_t)getpid() << 20 ^ (uint64_t)(uintptr_t)&arg);
    return NULL;
}

static int child_main(void *mem, size_t len, shared_counts *sc, uint32_t k, double until)
{
    proc_ctx c = {NULL, sc, until, k};
    resil_breaker_local_t local = {{0}, breaker_chaos_count_event, &sc->n, (uint64_t)getpid()};
    if (resil_breaker_attach(mem, len, &local, &c.b) != RESIL_OK)
        return 2;
    pthread_t t[THREADS_PER_PROC];
    for (int i = 0; i < THREADS_PER_PROC; i++)
        if (pthread_create(&t[i], NULL, worker, &c) != 0)
            return 3;
    for (int i = 0; i < THREADS_PER_PROC; i++)
        pthread_join(t[i], NULL);
    if (resil_breaker_check(c.b) != RESIL_OK)
        return 4;
    atomic_fetch_add(&sc->checks, 1);
    resil_breaker_free(c.b);
    return 0;
}

static void processes_share_one_breaker_through_two_mappings(void **state)
{
    (void)state;
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 50;
    cfg.minimum_calls = 20;
    cfg.open_wait_ns = RESIL_US(300);
    cfg.half_open_probes = 3;
    cfg.half_open_max_wait_ns = RESIL_MS(3);
    size_t len = round_page(resil_breaker_size(&cfg));
    int fd = memfd_create("resil-breaker", 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    void *map1 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    void *map2 = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(map1 != MAP_FAILED && map2 != MAP_FAILED && map1 != map2);
    shared_counts *sc = test_shared_alloc(round_page(sizeof *sc));
    assert_non_null(sc);
    assert_int_equal(resil_breaker_init(map1, len, &cfg), RESIL_OK);

    double until = test_now_seconds() + test_stress_seconds() / 2;
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(child_main(i % 2 ? map2 : map1, len, sc, cfg.half_open_probes, until));
    }
    int failed = 0;
    for (int i = 0; i < PROCS; i++) {
        int st = 0;
        waitpid(pids[i], &st, 0);
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    resil_breaker_t *b = NULL;
    assert_int_equal(resil_breaker_attach(map2, len, NULL, &b), RESIL_OK);
    resil_breaker_stats_t s;
    resil_breaker_stats(b, &s);
    print_message("procs: %d processes x %d threads, %lu calls, %lu probes, %llu transitions, "
                  "%lu listener calls, %lu violations (%lu probe, %lu record), %lu checks passed\n",
                  PROCS, THREADS_PER_PROC, atomic_load(&sc->n.ops),
                  atomic_load(&sc->n.probes_total), (unsigned long long)s.transitions,
                  atomic_load(&sc->n.listener_calls), atomic_load(&sc->n.violations),
                  atomic_load(&sc->n.probe_violations), atomic_load(&sc->n.record_violations),
                  atomic_load(&sc->checks));
    assert_int_equal(failed, 0);
    assert_int_equal(atomic_load(&sc->checks), PROCS);
    assert_int_equal(atomic_load(&sc->n.violations), 0);
    assert_int_equal(s.transitions, atomic_load(&sc->n.listener_calls));
    assert_true(s.opens > 0 && atomic_load(&sc->n.probes_total) > 0);
    assert_int_equal(resil_breaker_check(b), RESIL_OK);
    resil_breaker_free(b);
    test_shared_free(sc, round_page(sizeof *sc));
    munmap(map1, len);
    munmap(map2, len);
    close(fd);
}

static void killed_probe_owner_cannot_leave_it_half_open(void **state)
{
    (void)state;
    resil_breaker_config_t cfg = resil_breaker_config_default();
    cfg.window_size = 2;
    cfg.minimum_calls = 2;
    cfg.open_wait_ns = RESIL_MS(10);
    cfg.half_open_probes = 1;
    cfg.half_open_max_wait_ns = RESIL_MS(100);
    size_t len = round_page(resil_breaker_size(&cfg));
    void *mem = test_shared_alloc(len);
    shared_counts *sc = test_shared_alloc(round_page(sizeof *sc));
    assert_non_null(mem);
    assert_non_null(sc);
    assert_int_equal(resil_breaker_init(mem, len, &cfg), RESIL_OK);
    resil_breaker_t *b = NULL;
    assert_int_equal(resil_breaker_attach(mem, len, NULL, &b), RESIL_OK);
    resil_breaker_permit_t p;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(resil_breaker_acquire(b, &p), RESIL_OK);
        resil_breaker_record(b, &p, RESIL_OUTCOME_FAILURE, 1);
    }
    assert_int_equal(resil_breaker_state_get(b), RESIL_BREAKER_OPEN);
    usleep(15000); /* past the open wait */

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        resil_breaker_t *cb = NULL;
        resil_breaker_permit_t probe;
        if (resil_breaker_attach(mem, len, NULL, &cb) != RESIL_OK ||
            resil_breaker_acquire(cb, &probe) != RESIL_OK || !resil_breaker_permit_is_probe(&probe))
            _exit(2);
        atomic_store(&sc->probe_taken, 1);
        for (;;)
            pause(); /* the probe owner hangs until killed */
    }
    while (atomic_load(&sc->probe_taken) == 0)
        usleep(100);
    double taken = test_now_seconds();
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));

    /* while the lease runs, the dead owner's probe is still counted */
    assert_int_equal(resil_breaker_acquire(b, &p), RESIL_E_HALF_OPEN_FULL);
    assert_true(p.retry_after_ns <= RESIL_MS(100));
    while (test_now_seconds() - taken < 0.110)
        usleep(1000);
    /* the lease expired: back to OPEN, then a new probe closes it */
    assert_int_equal(resil_breaker_acquire(b, &p), RESIL_E_BREAKER_OPEN);
    usleep(15000);
    assert_int_equal(resil_breaker_acquire(b, &p), RESIL_OK);
    assert_true(resil_breaker_permit_is_probe(&p));
    assert_int_equal(resil_breaker_record(b, &p, RESIL_OUTCOME_SUCCESS, 1), RESIL_OK);
    assert_int_equal(resil_breaker_state_get(b), RESIL_BREAKER_CLOSED);
    print_message("killed probe owner: lease expired after %.0f ms, breaker closed again\n",
                  (test_now_seconds() - taken) * 1000);
    assert_int_equal(resil_breaker_check(b), RESIL_OK);
    resil_breaker_free(b);
    test_shared_free(sc, round_page(sizeof *sc));
    test_shared_free(mem, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(processes_share_one_breaker_through_two_mappings),
        cmocka_unit_test(killed_probe_owner_cannot_leave_it_half_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
