/* Process helpers: a process-shared barrier and a shared scratch area for forked workers. */
#ifndef T_PROCS_H
#define T_PROCS_H
#include "t_common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    pthread_barrier_t bar;
    volatile int ok[64];
    volatile uint64_t val[64];
};

static inline struct shared *shared_new(unsigned parties) {
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED, "mmap");
    pthread_barrierattr_t a;
    pthread_barrierattr_init(&a);
    pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&s->bar, &a, parties);
    return s;
}

static inline void wait_all(pid_t *pids, int n) {
    for (int i = 0; i < n; i++) {
        int st;
        CHECK(waitpid(pids[i], &st, 0) == pids[i], "waitpid");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d failed (status %d)", i, st);
    }
}
#endif
