#define _DEFAULT_SOURCE
#include "internal/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal/atomic.h"

resil__atomic_u64 resil__owner_cache; /* packed identity of this process, 0 = unknown */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void child_after_fork(void) { resil__a64_store_relaxed(&resil__owner_cache, 0); }

static void register_atfork(void) { pthread_atfork(NULL, NULL, child_after_fork); }

/* Reads the start of /proc/<pid>/<file> into @p buf (NUL-terminated).
 * @return 0; -1 if it cannot be read. */
static int proc_read(int pid, const char *file, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, size - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

int resil__owner_read(int pid, char *state, uint64_t *start_ticks)
{
    char buf[1024];
    if (proc_read(pid, "stat", buf, sizeof buf) != 0)
        return -1;
    /* "pid (comm) S f4 f5 ...": comm may hold spaces and parentheses, so
     * fields are counted from the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0')
        return -1;
    p += 2;
    *state = *p;
    /* p is at field 3; the start time is field 22. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    *start_ticks = v;
    return 0;
}

uint64_t resil__owner_self(void)
{
    uint64_t v = resil__a64_load_relaxed(&resil__owner_cache);
    if (v != 0)
        return v;
    pthread_once(&atfork_once, register_atfork);
    pid_t pid = getpid();
    char st = 0;
    uint64_t start = 0;
    if (resil__owner_read((int)pid, &st, &start) != 0)
        start = 0;
    resil__owner o = {(uint32_t)pid, (uint32_t)start};
    v = resil__owner_pack(o);
    resil__a64_store_relaxed(&resil__owner_cache, v);
    return v;
}

/* Threads of @p pid still running, from /proc/<pid>/status (which counts
 * an exited leader as one); -1 if /proc cannot tell. */
static int owner_threads(int pid)
{
    char buf[2048];
    if (proc_read(pid, "status", buf, sizeof buf) != 0)
        return -1;
    const char *p = strstr(buf, "\nThreads:");
    if (p == NULL)
        return -1;
    p += 9;
    while (*p == ' ' || *p == '\t')
        p++;
    int v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9' && v < 1000000)
        v = v * 10 + (*p++ - '0');
    return v;
}

/* Whether state letter @p state, read for @p pid, means the process is
 * dead: X, or Z with no thread left. A zombie is dead, unless only its main
 * thread exited: /proc shows the leader's state (Z) while the other
 * threads run on, and the process's Threads count still includes them. */
static int state_dead(int pid, char state)
{
    return state == 'X' || (state == 'Z' && owner_threads(pid) <= 1);
}

int resil__owner_alive_start(uint32_t pid, uint32_t start, uint32_t start_mask)
{
    if (pid == 0 || pid > (uint32_t)INT32_MAX)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    char st = 0;
    uint64_t now_start = 0;
    if (resil__owner_read((int)pid, &st, &now_start) != 0)
        return kill((pid_t)pid, 0) == 0 || errno != ESRCH; /* /proc silent: trust kill */
    if (state_dead((int)pid, st))
        return 0;
    if (((uint32_t)now_start & start_mask) != (start & start_mask))
        return 0; /* the pid was reused */
    return 1;
}

int resil__owner_alive(resil__owner o)
{
    return resil__owner_alive_start(o.pid, o.start, o.start != 0 ? UINT32_MAX : 0);
}
