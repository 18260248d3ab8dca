#define _GNU_SOURCE
#include "fake_gpu.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct fg_conf fg_conf;
static struct fg_state *state;
static int my_pid; /* cached: getpid is a system call, and launches are hot */
static int my_proc = -1;
static void forget_pid(void) { my_pid = 0; my_proc = -1; }
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int env_int(const char *k, int d) {
    const char *v = getenv(k);
    return v && *v ? atoi(v) : d;
}

static void init(void) {
    fg_conf.count = env_int("FAKE_GPU_COUNT", 2);
    if (fg_conf.count > FG_MAX_DEV) fg_conf.count = FG_MAX_DEV;
    for (int i = 0; i < FG_MAX_DEV; i++) fg_conf.phys[i] = i;
    const char *vis = getenv("FAKE_GPU_VISIBLE");
    if (vis && *vis) { /* a container's view: some of the node's devices, renumbered from 0 */
        int n = 0;
        for (const char *c = vis; *c && n < FG_MAX_DEV;) {
            char *end;
            long v = strtol(c, &end, 10);
            if (end == c || v < 0 || v >= fg_conf.count) break;
            fg_conf.phys[n++] = (int)v;
            c = *end == ',' ? end + 1 : end;
        }
        fg_conf.count = n;
    }
    fg_conf.sms = env_int("FAKE_GPU_SMS", 108);
    fg_conf.mem_total = (uint64_t)env_int("FAKE_GPU_MEM_MIB", 16384) << 20;
    fg_conf.ctx_bytes = (uint64_t)env_int("FAKE_GPU_CTX_MIB", 0) << 20;
    fg_conf.module_bytes = (uint64_t)env_int("FAKE_GPU_MODULE_MIB", 0) << 20;
    fg_conf.pid_offset = env_int("FAKE_GPU_PID_OFFSET", 0);
    char def[128];
    const char *path = getenv("FAKE_GPU_STATE");
    if (!path || !*path) {
        snprintf(def, sizeof def, "/dev/shm/hami-fakegpu-%d", (int)getuid());
        path = def;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && ftruncate(fd, sizeof(struct fg_state)) == 0) {
        void *p = mmap(NULL, sizeof(struct fg_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) state = p;
    }
    if (fd >= 0) close(fd);
    pthread_atfork(NULL, NULL, forget_pid);
    if (!state) {
        fprintf(stderr, "fake gpu: cannot map %s\n", path);
        abort();
    }
}

struct fg_state *fg_state(void) {
    pthread_once(&once, init);
    return state;
}

struct fg_dev *fg_dev(int dev) { return &fg_state()->dev[fg_conf.phys[dev]]; }

uint64_t fg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void lock(struct fg_dev *d) {
    uint32_t z = 0;
    while (!atomic_compare_exchange_weak(&d->lock, &z, 1)) {
        z = 0;
        sched_yield();
    }
}
static void unlock(struct fg_dev *d) { atomic_store(&d->lock, 0); }

uint64_t fg_submit(int dev, uint64_t dur) {
    struct fg_dev *d = fg_dev(dev);
    lock(d);
    uint64_t now = fg_now(), bu = atomic_load(&d->busy_until);
    uint64_t start = bu > now ? bu : now, end = start + dur;
    atomic_store(&d->busy_until, end);
    d->ring[d->head % FG_RING].start = start;
    d->ring[d->head % FG_RING].end = end;
    if (!my_pid) my_pid = getpid();
    d->ring[d->head % FG_RING].pid = my_pid;
    d->head++;
    unlock(d);
    return end;
}

uint64_t fg_busy_between(int dev, uint64_t t0, uint64_t t1, int pid) {
    struct fg_dev *d = fg_dev(dev);
    uint64_t sum = 0;
    lock(d);
    for (uint64_t n = 0; n < FG_RING && n < d->head; n++) {
        uint64_t i = (d->head - 1 - n) % FG_RING;
        uint64_t s = d->ring[i].start, e = d->ring[i].end;
        if (e <= t0) break;
        if (pid && d->ring[i].pid != pid) continue;
        if (s < t0) s = t0;
        if (e > t1) e = t1;
        if (e > s) sum += e - s;
    }
    unlock(d);
    return sum;
}

int fg_proc_self(void) {
    struct fg_state *st = fg_state();
    if (my_proc >= 0) return my_proc;
    if (!my_pid) my_pid = getpid();
    for (int i = 0; i < FG_PROCS; i++) { /* our entry, if a previous call claimed it */
        if (atomic_load(&st->procs[i].pid) == my_pid) return my_proc = i;
    }
    for (int i = 0; i < FG_PROCS; i++) {
        struct fg_proc *p = &st->procs[i];
        int64_t old = atomic_load(&p->pid);
        if (old != 0 && (kill((pid_t)old, 0) == 0 || errno != ESRCH)) continue;
        if (!atomic_compare_exchange_strong(&p->pid, &old, my_pid)) continue;
        for (int d = 0; d < FG_MAX_DEV; d++) {
            atomic_store(&p->used[d], 0);
            atomic_store(&p->contexts[d], 0);
        }
        return my_proc = i;
    }
    return -1;
}

void fg_proc_add(int p, int dev, int64_t delta) {
    if (p < 0 || p >= FG_PROCS) return;
    atomic_fetch_add(&fg_state()->procs[p].used[fg_conf.phys[dev]], (uint64_t)delta);
}

void fg_charge_extra(int dev, uint64_t bytes) {
    if (!bytes) return;
    atomic_fetch_add(&fg_dev(dev)->mem_used, bytes);
    fg_proc_add(fg_proc_self(), dev, (int64_t)bytes);
}

void fg_new_context(int dev) {
    int p = fg_proc_self();
    if (p >= 0) atomic_fetch_add(&fg_state()->procs[p].contexts[fg_conf.phys[dev]], 1);
    fg_charge_extra(dev, fg_conf.ctx_bytes);
}

int fg_pid(void) {
    if (!my_pid) my_pid = getpid();
    return my_pid;
}

void fg_sleep_until(uint64_t t) {
    for (uint64_t now = fg_now(); now < t; now = fg_now()) {
        uint64_t ns = t - now;
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}
