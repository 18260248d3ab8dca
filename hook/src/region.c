/* The per-container shared region: creation, process slots, the robust lock and the reaper.
 *
 * Liveness without system calls: every process holds its slot's robust mutex for its whole life
 * from a dedicated "anchor" thread. When the process dies (kill -9 included) the kernel walks the
 * robust-futex list and sets FUTEX_OWNER_DIED in that mutex word, so any other process sees the
 * death with one memory load and reclaims the slot's usage on its next allocation or query. */
#include "hook.h"
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h> /* fchmod */
#include <unistd.h>

struct hr_region hk_region;
int hk_my_slot = -1;

static _Atomic uint32_t *futex_word(hr_mutex *m) { return (_Atomic uint32_t *)(void *)m->pad; }

static void init_mutex(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static void layout(void *base) {
    hk_region.hdr = base;
    hk_region.dev = (struct hr_device *)((char *)base + HR_DEVICES_OFFSET);
    hk_region.slot = (struct hr_slot *)((char *)base + HR_SLOTS_OFFSET);
}

/* Robust mutexes only recover from deaths the kernel saw: a region that survived a reboot holds
 * owners that never died in this boot, so it is reformatted (no process of it can be alive). */
static void read_boot_id(char out[40]) {
    memset(out, 0, 40);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, out, 39);
    close(fd);
    if (n > 0 && out[n - 1] == '\n') out[n - 1] = 0;
}

static void format_region(void) {
    struct hr_header *h = hk_region.hdr;
    read_boot_id(h->boot_id);
    h->version = HR_VERSION;
    h->header_size = sizeof(struct hr_header);
    h->region_size = HR_REGION_SIZE;
    h->device_count = HR_DEVICES;
    h->slot_count = HR_SLOTS;
    h->device_size = sizeof(struct hr_device);
    h->slot_size = sizeof(struct hr_slot);
    h->devices_offset = HR_DEVICES_OFFSET;
    h->slots_offset = HR_SLOTS_OFFSET;
    h->priority = hk_cfg.priority;
    atomic_store(&h->util_switch, 1);
    init_mutex(&h->lock.m);
    init_mutex(&h->ctx_lock.m);
    for (unsigned i = 0; i < HR_DEVICES; i++) {
        hk_region.dev[i].limit_bytes = hk_cfg.mem_limit[i];
        hk_region.dev[i].sm_limit_pct = hk_cfg.sm_limit[i];
    }
    for (unsigned i = 0; i < HR_SLOTS; i++) init_mutex(&hk_region.slot[i].anchor.m);
    atomic_thread_fence(memory_order_release);
    __atomic_store_n(&h->magic, HR_MAGIC, __ATOMIC_RELEASE);
}

static int open_private(void) {
    void *p = mmap(NULL, HR_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    layout(p);
    format_region();
    return 0;
}

int hr_open(const char *path) {
    int created = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
        created = 1;
        (void)fchmod(fd, 0666); /* every user of the container shares it; umask untouched */
    } else if (errno == EEXIST) {
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    if (fd < 0) {
        HK_ERR("cannot open shared region %s (%s); limits apply per process", path,
               strerror(errno));
        return open_private();
    }
    /* An open-file-description lock serialises formatting; the kernel drops it if we die. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    while (fcntl(fd, F_OFD_SETLKW, &fl) != 0 && errno == EINTR) {
    }
    struct flock unl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    off_t size = lseek(fd, 0, SEEK_END); /* not fstat: that symbol is new in glibc 2.33 */
    int bad = size < 0;
    if (!bad && size < (off_t)HR_REGION_SIZE) {
        if (size != 0 && !created) {
            bad = 1; /* someone else's layout (e.g. HAMi-core's) */
        } else {
            bad = ftruncate(fd, HR_REGION_SIZE) != 0;
        }
    }
    void *p = bad ? MAP_FAILED
                  : mmap(NULL, HR_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        fcntl(fd, F_OFD_SETLK, &unl);
        close(fd);
        HK_ERR("shared region %s unusable; limits apply per process", path);
        return open_private();
    }
    layout(p);
    uint64_t magic = __atomic_load_n(&hk_region.hdr->magic, __ATOMIC_ACQUIRE);
    char boot[40];
    read_boot_id(boot);
    if (magic == HR_MAGIC && hk_region.hdr->version == HR_VERSION && boot[0] &&
        memcmp(boot, hk_region.hdr->boot_id, sizeof boot) != 0) {
        HK_INFO("shared region %s is from a previous boot: reformatting", path);
        memset(p, 0, HR_REGION_SIZE);
        magic = 0;
    }
    if (magic == 0) {
        format_region();
    } else if (magic != HR_MAGIC || hk_region.hdr->version != HR_VERSION ||
               hk_region.hdr->region_size != HR_REGION_SIZE) {
        munmap(p, HR_REGION_SIZE);
        fcntl(fd, F_OFD_SETLK, &unl);
        close(fd);
        HK_ERR("shared region %s has another layout; limits apply per process", path);
        return open_private();
    }
    /* Unlock explicitly: the mapping keeps the open file description (and so an OFD lock)
     * alive after close; only death releases it implicitly. */
    fcntl(fd, F_OFD_SETLK, &unl);
    close(fd);
    return 0;
}

static void repair_totals(void) {
    uint32_t hw = atomic_load(&hk_region.hdr->slot_hw);
    for (unsigned d = 0; d < HR_DEVICES; d++) {
        uint64_t sum = 0, ctx = 0, spilled = 0;
        for (uint32_t i = 0; i < hw; i++) {
            struct hr_slot *s = &hk_region.slot[i];
            if (atomic_load(&s->state) != HR_SLOT_ACTIVE) continue;
            sum += atomic_load(&s->used[d]);
            ctx += atomic_load(&s->ctx[d]);
            spilled += atomic_load(&s->spilled[d]);
        }
        atomic_store(&hk_region.dev[d].used_bytes, sum);
        atomic_store(&hk_region.dev[d].ctx_bytes, ctx);
        atomic_store(&hk_region.dev[d].spilled_bytes, spilled);
    }
}

/* total -= part, never below zero (the totals are sums of the slots' parts). */
static void sub_sat(_Atomic uint64_t *total, uint64_t part) {
    uint64_t t = atomic_load(total);
    atomic_store(total, t > part ? t - part : 0);
}

void hr_lock(void) {
    int r = pthread_mutex_lock(&hk_region.hdr->lock.m);
    if (r == EOWNERDEAD) {
        /* The holder died inside a reservation: rebuild the totals from the slots. */
        repair_totals();
        pthread_mutex_consistent(&hk_region.hdr->lock.m);
    } else if (r == ENOTRECOVERABLE) {
        init_mutex(&hk_region.hdr->lock.m);
        pthread_mutex_lock(&hk_region.hdr->lock.m);
        repair_totals();
    }
}

void hr_unlock(void) { pthread_mutex_unlock(&hk_region.hdr->lock.m); }

void hr_ctx_lock(void) {
    int r = pthread_mutex_lock(&hk_region.hdr->ctx_lock.m);
    if (r == EOWNERDEAD) { /* died creating a context: nothing to repair */
        pthread_mutex_consistent(&hk_region.hdr->ctx_lock.m);
    } else if (r == ENOTRECOVERABLE) {
        init_mutex(&hk_region.hdr->ctx_lock.m);
        pthread_mutex_lock(&hk_region.hdr->ctx_lock.m);
    }
}

void hr_ctx_unlock(void) { pthread_mutex_unlock(&hk_region.hdr->ctx_lock.m); }

static int slot_dead(struct hr_slot *s) {
    return atomic_load_explicit(&s->state, memory_order_relaxed) == HR_SLOT_ACTIVE &&
           (atomic_load_explicit(futex_word(&s->anchor), memory_order_relaxed) &
            HR_FUTEX_OWNER_DIED);
}

static void reap_locked(void) {
    uint32_t hw = atomic_load(&hk_region.hdr->slot_hw);
    for (uint32_t i = 0; i < hw; i++) {
        struct hr_slot *s = &hk_region.slot[i];
        if (!slot_dead(s)) continue;
        int r = pthread_mutex_trylock(&s->anchor.m);
        if (r != EOWNERDEAD) {
            if (r == 0) pthread_mutex_unlock(&s->anchor.m);
            continue;
        }
        pthread_mutex_consistent(&s->anchor.m);
        pthread_mutex_unlock(&s->anchor.m);
        for (unsigned d = 0; d < HR_DEVICES; d++) {
            sub_sat(&hk_region.dev[d].used_bytes, atomic_exchange(&s->used[d], 0));
            sub_sat(&hk_region.dev[d].ctx_bytes, atomic_exchange(&s->ctx[d], 0));
            sub_sat(&hk_region.dev[d].spilled_bytes, atomic_exchange(&s->spilled[d], 0));
        }
        atomic_store(&s->pid, 0);
        atomic_store(&s->host_pid, 0);
        atomic_store(&s->state, HR_SLOT_FREE);
        atomic_fetch_add(&hk_region.hdr->reclaimed, 1);
    }
}

void hr_reap_dead(void) {
    uint32_t hw = atomic_load_explicit(&hk_region.hdr->slot_hw, memory_order_relaxed);
    for (uint32_t i = 0; i < hw; i++) {
        if (HK_UNLIKELY(slot_dead(&hk_region.slot[i]))) {
            hr_lock();
            reap_locked();
            hr_unlock();
            return;
        }
    }
}

struct anchor_arg {
    struct hr_slot *slot;
    sem_t ready;
};

static void *anchor_main(void *p) {
    struct anchor_arg *a = p;
    struct hr_slot *s = a->slot;
    if (pthread_mutex_lock(&s->anchor.m) == EOWNERDEAD) pthread_mutex_consistent(&s->anchor.m);
    sem_post(&a->ready);
    for (;;) pause(); /* every signal is blocked here: this thread only holds the mutex */
    return NULL;
}

int hr_register(void) {
    hr_lock();
    reap_locked();
    int idx = -1;
    for (unsigned i = 0; i < HR_SLOTS; i++) {
        struct hr_slot *s = &hk_region.slot[i];
        if (atomic_load(&s->state) == HR_SLOT_FREE) {
            idx = (int)i;
            break;
        }
    }
    if (idx < 0) {
        hr_unlock();
        HK_ERR("shared region full (%u processes); usage of this one is not reclaimable",
               HR_SLOTS);
        return -1;
    }
    struct hr_slot *s = &hk_region.slot[idx];
    struct anchor_arg a = {.slot = s};
    sem_init(&a.ready, 0, 0);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the anchor inherits "everything blocked" */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    int r = pthread_create(&t, &attr, anchor_main, &a);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        hr_unlock();
        sem_destroy(&a.ready);
        HK_ERR("cannot start the anchor thread; usage of this process is not reclaimable");
        return -1;
    }
    while (sem_wait(&a.ready) != 0 && errno == EINTR) {
    }
    sem_destroy(&a.ready);
    pthread_setname_np(t, "hami-vgpu");
    for (unsigned d = 0; d < HR_DEVICES; d++) {
        atomic_store(&s->used[d], 0);
        atomic_store(&s->ctx[d], 0);
        atomic_store(&s->spilled[d], 0);
    }
    atomic_store(&s->host_pid, 0);
    atomic_store(&s->pid, (int32_t)getpid());
    s->generation = atomic_fetch_add(&hk_region.hdr->generation, 1) + 1;
    atomic_store(&s->state, HR_SLOT_ACTIVE);
    uint32_t hw = atomic_load(&hk_region.hdr->slot_hw);
    if ((uint32_t)idx + 1 > hw) atomic_store(&hk_region.hdr->slot_hw, (uint32_t)idx + 1);
    hr_unlock();
    hk_my_slot = idx;
    return idx;
}

void hr_after_fork_child(void) {
    /* The parent's anchor is not ours: take a fresh slot on the next hooked call. */
    hk_my_slot = -1;
}
