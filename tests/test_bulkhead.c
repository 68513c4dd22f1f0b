#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/atomic.h"
#include "internal/owner.h"
#include "resil/bulkhead.h"
#include "support.h"

static resil_bulkhead_t *make(uint32_t limit)
{
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = limit;
    resil_bulkhead_t *b = NULL;
    assert_int_equal(resil_bulkhead_new(&c, NULL, &b), RESIL_OK);
    return b;
}

static resil_bulkhead_stats_t stats(resil_bulkhead_t *b)
{
    resil_bulkhead_stats_t s;
    assert_int_equal(resil_bulkhead_stats(b, &s), RESIL_OK);
    return s;
}

/* A bulkhead in MAP_SHARED memory (seen by forked children), attached
 * with @p local (may be NULL). */
static resil_bulkhead_t *make_shared(const resil_bulkhead_config_t *c,
                                     const resil_bulkhead_local_t *local, void **mem, size_t *len)
{
    *len = resil_bulkhead_size(c);
    *mem = test_shared_alloc(*len);
    assert_int_equal(resil_bulkhead_init(*mem, *len, c), RESIL_OK);
    resil_bulkhead_t *b = NULL;
    assert_int_equal(resil_bulkhead_attach(*mem, *len, local, &b), RESIL_OK);
    return b;
}

static void grants_exactly_the_limit_then_rejects(void **state)
{
    (void)state;
    for (uint32_t limit = 1; limit <= 9; limit++) {
        resil_bulkhead_t *b = make(limit);
        resil_bulkhead_permit_t p[10];
        for (uint32_t i = 0; i < limit; i++)
            assert_int_equal(resil_bulkhead_try_acquire(b, &p[i]), RESIL_OK);
        assert_int_equal(resil_bulkhead_try_acquire(b, &p[limit]), RESIL_E_BULKHEAD_FULL);
        assert_int_equal(resil_bulkhead_try_acquire(b, &p[limit]), RESIL_E_BULKHEAD_FULL);
        resil_bulkhead_stats_t s = stats(b);
        assert_int_equal(s.in_flight, limit);
        assert_int_equal(s.peak, limit);
        assert_int_equal(s.granted, limit);
        assert_int_equal(s.rejected, 2);
        assert_int_equal(resil_bulkhead_release(b, &p[0]), RESIL_OK);
        assert_int_equal(resil_bulkhead_try_acquire(b, &p[0]), RESIL_OK);
        for (uint32_t i = 0; i < limit; i++)
            assert_int_equal(resil_bulkhead_release(b, &p[i]), RESIL_OK);
        s = stats(b);
        assert_int_equal(s.in_flight, 0);
        assert_int_equal(s.peak, limit);
        assert_int_equal(s.granted, limit + 1);
        assert_int_equal(s.released, limit + 1);
        assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
        resil_bulkhead_free(b);
    }
}

static void bad_configs_are_rejected_naming_the_field(void **state)
{
    (void)state;
    struct {
        void (*set)(resil_bulkhead_config_t *);
        const char *field;
    } cases[4];
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_OK);
    assert_int_equal(c.max_concurrent, 25);
    (void)cases;
    c.max_concurrent = 0;
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_E_INVALID_CONFIG);
    assert_string_equal(resil_status_detail(),
                        "bulkhead.max_concurrent: must be in 1..65536, got 0");
    assert_int_equal(resil_bulkhead_size(&c), 0);
    c.max_concurrent = RESIL_BULKHEAD_MAX_CONCURRENT + 1;
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_bulkhead_config_default();
    c.max_processes = 255;
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_bulkhead_config_default();
    c.stripes = 3;
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_E_INVALID_CONFIG);
    c = resil_bulkhead_config_default();
    c.max_waiters = RESIL_BULKHEAD_MAX_WAITERS + 1;
    assert_int_equal(resil_bulkhead_config_check(&c), RESIL_E_INVALID_CONFIG);
    resil_bulkhead_t *b = (resil_bulkhead_t *)1;
    assert_int_equal(resil_bulkhead_new(&c, NULL, &b), RESIL_E_INVALID_CONFIG);
    assert_null(b);
    assert_int_equal(resil_bulkhead_new(NULL, NULL, &b), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_config_check(NULL), RESIL_E_INVALID_ARG);
    c = resil_bulkhead_config_default();
    c.max_concurrent = 1000;
    c.max_processes = 100;
    c.max_waiters = 300;
    c.stripes = 16;
    assert_true(resil_bulkhead_size(&c) <= RESIL_BULKHEAD_SIZE(1000, 100, 300, 16));
    assert_int_equal(resil_bulkhead_size(&c) % 64, 0);
}

static void bad_permits_change_nothing(void **state)
{
    (void)state;
    resil_bulkhead_t *a = make(2), *b = make(2);
    resil_bulkhead_permit_t p, copy, never;
    memset(&never, 0, sizeof never);
    assert_int_equal(resil_bulkhead_try_acquire(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_try_acquire(a, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_release(a, NULL), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_release(NULL, &p), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_release(a, &never), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_try_acquire(a, &p), RESIL_OK);
    copy = p;
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_E_INVALID_ARG); /* foreign */
    assert_string_equal(resil_status_detail(),
                        "bulkhead_release: permit belongs to another bulkhead");
    assert_int_equal(resil_bulkhead_release(a, &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_release(a, &p), RESIL_E_INVALID_ARG);  /* twice */
    assert_int_equal(resil_bulkhead_release(a, &copy), RESIL_E_NOT_OWNER); /* more than acquired */
    resil_bulkhead_permit_t forged = copy;
    forged.cell_ = 1u << 30;
    assert_int_equal(resil_bulkhead_release(a, &forged), RESIL_E_INVALID_ARG);
    resil_bulkhead_stats_t s = stats(a);
    assert_int_equal(s.granted, 1);
    assert_int_equal(s.released, 1);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(resil_bulkhead_check(a, 1), RESIL_OK);
    assert_int_equal(resil_bulkhead_stats(NULL, &s), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_check(NULL, 0), RESIL_E_INVALID_ARG);
    assert_true(resil_bulkhead_reclaim_dead(NULL) < 0);
    assert_true(resil_bulkhead_reclaim_pid(a, 0) < 0);
    resil_bulkhead_free(a);
    resil_bulkhead_free(b);
    resil_bulkhead_free(NULL);
}

static void caller_memory_attaches_and_rejects_garbage(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 7;
    size_t len = resil_bulkhead_size(&c);
    unsigned char *mem = aligned_alloc(64, len);
    memset(mem, 0, len);
    resil_bulkhead_t *b = (resil_bulkhead_t *)1;
    assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b), RESIL_E_NOT_INITIALIZED);
    assert_null(b);
    assert_int_equal(resil_bulkhead_init(mem + 8, len, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_init(mem, len - 64, &c), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_init(mem, len, &c), RESIL_OK);
    resil_bulkhead_t *b1, *b2;
    assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b1), RESIL_OK);
    assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b2), RESIL_OK);
    resil_bulkhead_permit_t p;
    assert_int_equal(resil_bulkhead_try_acquire(b1, &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_release(b2, &p), RESIL_OK); /* same block, other handle */
    assert_int_equal(stats(b1).processes, 1); /* both handles share this process's record */
    /* A cell naming a record that cannot exist is corruption. */
    uint64_t *cell_word = (uint64_t *)(void *)(mem + len - 64);
    uint64_t saved = *cell_word;
    *cell_word = (saved & ~UINT64_C(0xFFFF)) | UINT64_C(0x4101);
    assert_int_equal(resil_bulkhead_check(b1, 0), RESIL_E_CORRUPT);
    resil_bulkhead_t *b3;
    assert_int_equal(resil_bulkhead_attach(mem, len, NULL, &b3), RESIL_E_CORRUPT);
    *cell_word = saved;
    resil_bulkhead_free(b1);
    resil_bulkhead_free(b2);
    /* Random bytes never attach and never crash. */
    resil_rng_t r;
    resil_rng_seed(&r, 7);
    for (int trial = 0; trial < 2000; trial++) {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t v = resil_rng_next(&r);
            memcpy(mem + i, &v, 8);
        }
        if (trial % 2) {
            uint64_t tag = (uint64_t)0x4c495352 << 32 | 4u << 16 | 1u;
            memcpy(mem, &tag, 8);
        }
        assert_int_not_equal(resil_bulkhead_attach(mem, len, NULL, &b3), RESIL_OK);
    }
    free(mem);
}

static void reclaim_by_pid_fences_stale_releases(void **state)
{
    (void)state;
    resil_bulkhead_t *b = make(3);
    resil_bulkhead_permit_t p[3], q;
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_bulkhead_try_acquire(b, &p[i]), RESIL_OK);
    /* A supervisor declares this process gone: every permit comes back. */
    assert_int_equal(resil_bulkhead_reclaim_pid(b, (int)getpid()), 3);
    assert_int_equal(stats(b).in_flight, 0);
    assert_int_equal(stats(b).reclaimed, 3);
    /* The handle registers again (new epoch) and can use all 3 permits. */
    assert_int_equal(resil_bulkhead_try_acquire(b, &q), RESIL_OK);
    /* Stale releases change nothing, even with the same cell re-granted. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_bulkhead_release(b, &p[i]), RESIL_E_NOT_OWNER);
    assert_int_equal(stats(b).in_flight, 1);
    assert_int_equal(resil_bulkhead_release(b, &q), RESIL_OK);
    assert_int_equal(resil_bulkhead_reclaim_pid(b, 999999), 0);
    assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
    resil_bulkhead_free(b);
}

static void owner_identity_survives_pid_reuse(void **state)
{
    (void)state;
    uint64_t me = resil__owner_self();
    assert_int_equal(me >> 32, (uint64_t)getpid());
    assert_int_equal(resil__owner_cached(), me);
    resil__owner o = resil__owner_unpack(me);
    assert_int_not_equal(o.start, 0);
    assert_int_equal(resil__owner_alive(o), 1);
    resil__owner other = o;
    other.start ^= 1; /* same pid, another start time: a reused pid */
    assert_int_equal(resil__owner_alive(other), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t child = resil__owner_self();
        ssize_t w = write(fds[1], &child, sizeof child);
        _exit(w == sizeof child && (child >> 32) == (uint64_t)getpid() ? 0 : 1);
    }
    uint64_t child = 0;
    assert_int_equal(read(fds[0], &child, sizeof child), sizeof child);
    assert_int_equal(child >> 32, (uint64_t)pid);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(resil__owner_alive(resil__owner_unpack(child)), 0);
    close(fds[0]);
    close(fds[1]);
}

static void *wait_for_close(void *arg)
{
    char c;
    ssize_t r = read(*(int *)arg, &c, 1); /* returns when the parent closes */
    (void)r;
    return NULL;
}

/* A process whose main thread exited while another runs on shows its leader
 * as a zombie in /proc: it is alive, and its permits are not reclaimed
 * until its last thread exits. */
static void a_process_whose_main_thread_exited_is_alive(void **state)
{
    (void)state;
    if (TEST_UNDER_TSAN) {
        /* TSan's runtime keeps a thread of its own in every process, so a
         * process whose main thread exited never ends there */
        print_message("skipped under ThreadSanitizer\n");
        skip();
    }
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 4;
    size_t len;
    void *mem;
    resil_bulkhead_t *b = make_shared(&c, NULL, &mem, &len);
    int hold[2], ready[2];
    assert_int_equal(pipe(hold), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(hold[1]);
        resil_bulkhead_t *c;
        resil_bulkhead_permit_t p;
        if (resil_bulkhead_attach(mem, len, NULL, &c) != RESIL_OK ||
            resil_bulkhead_try_acquire(c, &p) != RESIL_OK)
            _exit(2);
        pthread_t t;
        if (pthread_create(&t, NULL, wait_for_close, &hold[0]) != 0)
            _exit(3);
        uint64_t me = resil__owner_self();
        if (write(ready[1], &me, sizeof me) != sizeof me)
            _exit(4);
        pthread_exit(NULL); /* the process lives on in t */
    }
    close(hold[0]);
    uint64_t child = 0;
    assert_int_equal(read(ready[0], &child, sizeof child), sizeof child);
    char st = 0;
    uint64_t start = 0;
    for (int i = 0; i < 2000 && st != 'Z'; i++) { /* until the leader is gone */
        assert_int_equal(resil__owner_read((int)pid, &st, &start), 0);
        if (st != 'Z')
            usleep(1000);
    }
    assert_int_equal(st, 'Z');
    assert_int_equal(resil__owner_alive(resil__owner_unpack(child)), 1);
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 0); /* alive: kept */
    assert_int_equal(stats(b).in_flight, 1);
    close(hold[1]); /* its last thread exits: now a zombie, dead */
    for (int i = 0; i < 2000 && resil__owner_alive(resil__owner_unpack(child)); i++)
        usleep(1000);
    assert_int_equal(resil__owner_alive(resil__owner_unpack(child)), 0);
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 1);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    close(ready[0]);
    close(ready[1]);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
}

/* A forked child takes permits and dies without releasing them. */
static pid_t child_takes_and_dies(void *mem, size_t len, int n, int linger)
{
    pid_t pid = fork();
    if (pid == 0) {
        resil_bulkhead_t *c;
        if (resil_bulkhead_attach(mem, len, NULL, &c) != RESIL_OK)
            _exit(2);
        resil_bulkhead_permit_t p;
        for (int i = 0; i < n; i++)
            if (resil_bulkhead_try_acquire(c, &p) != RESIL_OK)
                _exit(3);
        if (linger)
            pause();
        _exit(0);
    }
    return pid;
}

static void dead_holders_are_reclaimed_lazily_and_explicitly(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 4;
    c.reclaim_interval_ns = 1; /* every full acquire may look */
    size_t len;
    void *mem;
    resil_bulkhead_t *b = make_shared(&c, NULL, &mem, &len);

    int st;
    pid_t pid = child_takes_and_dies(mem, len, 4, 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stats(b).in_flight, 4);
    assert_int_equal(stats(b).processes, 2);
    /* Lazy: the full bulkhead notices the dead holder. */
    resil_bulkhead_permit_t p;
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_OK);
    assert_int_equal(stats(b).reclaimed, 4);
    assert_int_equal(stats(b).processes, 1);
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_OK);

    /* Explicit: a live but killed child (a zombie until reaped) is dead. */
    pid = child_takes_and_dies(mem, len, 2, 1);
    while (stats(b).in_flight != 2)
        usleep(1000);
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 0); /* alive: kept */
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 2);
    assert_int_equal(stats(b).in_flight, 0);
    assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
}

struct counter_thread {
    resil_bulkhead_t *b;
    pthread_barrier_t *go;
    uint64_t ok, full;
};

static void *counter_main(void *arg)
{
    struct counter_thread *t = arg;
    resil_bulkhead_permit_t p;
    pthread_barrier_wait(t->go);
    for (int i = 0; i < 100000; i++) {
        resil_status s = resil_bulkhead_try_acquire(t->b, &p);
        if (s == RESIL_OK) {
            t->ok++;
            if (i % 256 == 0)
                sched_yield(); /* holding: the others meet a full bulkhead */
            if (resil_bulkhead_release(t->b, &p) != RESIL_OK)
                return arg; /* caught below */
        } else if (s == RESIL_E_BULKHEAD_FULL) {
            t->full++;
        }
    }
    return NULL;
}

/* Runs 4 threads on @p b and checks the counters against their own tally. */
static void four_threads_count_exactly(resil_bulkhead_t *b, uint64_t *granted, uint64_t *rejected)
{
    pthread_t t[4];
    struct counter_thread w[4];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 4);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct counter_thread){b, &go, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, counter_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
        *granted += w[i].ok;
        *rejected += w[i].full;
    }
    pthread_barrier_destroy(&go);
    resil_bulkhead_stats_t s = stats(b);
    assert_int_equal(s.granted, *granted);
    assert_int_equal(s.rejected, *rejected);
    assert_int_equal(s.released, *granted);
    assert_int_equal(s.in_flight, 0);
    assert_true(*rejected > 0); /* one permit, four threads: they met */
}

/* Counter lines: 2 for 1 child + 4 + 4 threads. Owners count without
 * atomic adds, the rest share a line; a dead process's line is claimed
 * again after its reclaim. Lost or doubled counts show as a mismatch. */
static void counts_stay_exact_when_threads_outnumber_counter_lines(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 1;
    c.stripes = 2;
    size_t len;
    void *mem;
    resil_bulkhead_t *b = make_shared(&c, NULL, &mem, &len);
    pid_t pid = fork();
    if (pid == 0) {
        resil_bulkhead_t *cb;
        resil_bulkhead_permit_t p;
        if (resil_bulkhead_attach(mem, len, NULL, &cb) != RESIL_OK)
            _exit(2);
        for (int i = 0; i < 1000; i++)
            if (resil_bulkhead_try_acquire(cb, &p) != RESIL_OK ||
                resil_bulkhead_release(cb, &p) != RESIL_OK)
                _exit(3);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    uint64_t granted = 1000, rejected = 0;
    assert_int_equal(stats(b).granted, granted);
    four_threads_count_exactly(b, &granted, &rejected);
    assert_int_equal(resil_bulkhead_reclaim_dead(b), 0); /* frees its record and line */
    assert_int_equal(stats(b).processes, 1);
    four_threads_count_exactly(b, &granted, &rejected);
    assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
}

static void lazy_reclaim_respects_its_interval_and_can_be_off(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(10), &m), RESIL_OK);
    resil_bulkhead_local_t local = {resil_manual_clock_as_clock(m)};
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 1;
    c.reclaim_interval_ns = RESIL_MS(100);
    size_t len;
    void *mem;
    resil_bulkhead_t *b = make_shared(&c, &local, &mem, &len);
    resil_bulkhead_permit_t p;
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_E_BULKHEAD_FULL); /* sweeps now */
    assert_int_equal(resil_bulkhead_reclaim_pid(b, (int)getpid()), 1);
    int st;
    pid_t pid = child_takes_and_dies(mem, len, 1, 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_E_BULKHEAD_FULL); /* too soon */
    resil_manual_clock_advance(m, RESIL_MS(100));
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_OK);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
    resil_manual_clock_free(m);
}

static void wait_times_out_exactly_on_a_manual_clock(void **state)
{
    (void)state;
    resil_manual_clock_t *m;
    assert_int_equal(resil_manual_clock_new(RESIL_SEC(1), &m), RESIL_OK);
    resil_bulkhead_local_t local = {resil_manual_clock_as_clock(m)};
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 1;
    c.reclaim_interval_ns = 0;
    resil_bulkhead_t *b;
    assert_int_equal(resil_bulkhead_new(&c, &local, &b), RESIL_OK);
    resil_bulkhead_permit_t p, q;
    assert_int_equal(resil_bulkhead_acquire_wait(b, RESIL_MS(5), &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_acquire_wait(b, 0, &q), RESIL_E_BULKHEAD_FULL);
    assert_int_equal(resil_bulkhead_acquire_wait(b, RESIL_MS(5), &q), RESIL_E_TIMEOUT);
    assert_int_equal(resil_manual_clock_get(m), RESIL_SEC(1) + RESIL_MS(5));
    resil_bulkhead_stats_t s = stats(b);
    assert_int_equal(s.timed_out, 1);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.waiting, 0); /* the timed-out waiter left the queue */
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_acquire_wait(b, RESIL_MS(5), &q), RESIL_OK);
    assert_int_equal(resil_bulkhead_acquire_wait(NULL, 1, &q), RESIL_E_INVALID_ARG);
    assert_int_equal(resil_bulkhead_release(b, &q), RESIL_OK);
    resil_bulkhead_free(b);
    /* max_waiters = 0: waiting degrades to try_acquire. */
    c.max_waiters = 0;
    assert_int_equal(resil_bulkhead_new(&c, &local, &b), RESIL_OK);
    assert_int_equal(resil_bulkhead_acquire_wait(b, RESIL_MS(5), &p), RESIL_OK);
    assert_int_equal(resil_bulkhead_acquire_wait(b, RESIL_MS(5), &q), RESIL_E_BULKHEAD_FULL);
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_OK);
    resil_bulkhead_free(b);
    resil_manual_clock_free(m);
}

struct waiter {
    resil_bulkhead_t *b;
    int index;
    resil__atomic_u32 *order;
    int *served;
    resil_status status;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    resil_bulkhead_permit_t p;
    w->status = resil_bulkhead_acquire_wait(w->b, RESIL_SEC(10), &p);
    if (w->status == RESIL_OK) {
        w->served[resil__a32_fetch_add_relaxed(w->order, 1)] = w->index;
        resil_bulkhead_release(w->b, &p);
    }
    return NULL;
}

static void waiters_are_served_in_arrival_order(void **state)
{
    (void)state;
    resil_bulkhead_t *b = make(1);
    resil_bulkhead_permit_t hold;
    assert_int_equal(resil_bulkhead_try_acquire(b, &hold), RESIL_OK);
    enum { N = 4 };
    pthread_t t[N];
    struct waiter w[N];
    int served[N] = {0};
    resil__atomic_u32 order;
    resil__a32_store_relaxed(&order, 0);
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){b, i, &order, served, RESIL_E_STATE};
        pthread_create(&t[i], NULL, waiter_main, &w[i]);
        while (stats(b).waiting != (uint32_t)i + 1) /* queue them one by one */
            usleep(200);
    }
    assert_int_equal(resil_bulkhead_release(b, &hold), RESIL_OK);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].status, RESIL_OK);
        assert_int_equal(served[i], i);
    }
    resil_bulkhead_stats_t s = stats(b);
    assert_int_equal(s.granted, N + 1);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(resil_bulkhead_check(b, 1), RESIL_OK);
    resil_bulkhead_free(b);
}

static void wait_across_processes_wakes_on_release(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    c.max_concurrent = 1;
    size_t len;
    void *mem;
    resil_bulkhead_t *b = make_shared(&c, NULL, &mem, &len);
    resil_bulkhead_permit_t p;
    assert_int_equal(resil_bulkhead_try_acquire(b, &p), RESIL_OK);
    pid_t pid = fork();
    if (pid == 0) {
        resil_bulkhead_t *cb;
        resil_bulkhead_permit_t q;
        if (resil_bulkhead_attach(mem, len, NULL, &cb) != RESIL_OK)
            _exit(2);
        double t0 = test_now_seconds();
        if (resil_bulkhead_acquire_wait(cb, RESIL_SEC(20), &q) != RESIL_OK)
            _exit(3);
        if (test_now_seconds() - t0 < 0.04)
            _exit(4); /* must really have waited for the release */
        _exit(resil_bulkhead_release(cb, &q) == RESIL_OK ? 0 : 5);
    }
    while (stats(b).waiting != 1)
        usleep(1000);
    usleep(50000);
    assert_int_equal(resil_bulkhead_release(b, &p), RESIL_OK);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stats(b).in_flight, 0);
    resil_bulkhead_free(b);
    test_shared_free(mem, len);
}

static void allocation_failure_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    resil_bulkhead_config_t c = resil_bulkhead_config_default();
    for (unsigned long at = 1; at <= 2; at++) {
        test_alloc_install(at, 1);
        resil_bulkhead_t *b = (resil_bulkhead_t *)1;
        resil_status s = resil_bulkhead_new(&c, NULL, &b);
        if (at == 1) {
            assert_int_equal(s, RESIL_E_NO_MEMORY);
            assert_null(b);
        }
        resil_bulkhead_free(s == RESIL_OK ? b : NULL);
        assert_int_equal(test_alloc_live(), 0);
        test_alloc_uninstall();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grants_exactly_the_limit_then_rejects),
        cmocka_unit_test(bad_configs_are_rejected_naming_the_field),
        cmocka_unit_test(bad_permits_change_nothing),
        cmocka_unit_test(caller_memory_attaches_and_rejects_garbage),
        cmocka_unit_test(reclaim_by_pid_fences_stale_releases),
        cmocka_unit_test(owner_identity_survives_pid_reuse),
        cmocka_unit_test(a_process_whose_main_thread_exited_is_alive),
        cmocka_unit_test(dead_holders_are_reclaimed_lazily_and_explicitly),
        cmocka_unit_test(counts_stay_exact_when_threads_outnumber_counter_lines),
        cmocka_unit_test(lazy_reclaim_respects_its_interval_and_can_be_off),
        cmocka_unit_test(wait_times_out_exactly_on_a_manual_clock),
        cmocka_unit_test(waiters_are_served_in_arrival_order),
        cmocka_unit_test(wait_across_processes_wakes_on_release),
        cmocka_unit_test(allocation_failure_is_reported_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
