/* The driver's view of this process: memory the hook never sees as an allocation (the context,
 * module code and data loaded at the first launch of a kernel, what pools and the allocation
 * granularity add) is counted from the driver's per-process usage, read through NVML:
 *
 *     this process's usage on dev = max(driver usage, the hook's own records)
 *
 * so reservations are checked against what the device really holds for the container.
 *
 * The driver knows the process by its PID in the host's namespace. When NVML lists our own PID
 * (host PID namespace, standalone use) that is it; otherwise it is the one PID that appears in
 * the device's process list across our first context creation (HAMi-core makes a throwaway
 * context for that; we watch the application's own). When two processes create contexts on one
 * device at the same instant (the container's own processes take turns, so only another
 * container's can) the PID stays unknown and the context's size is estimated from the
 * device's used memory around its creation (counted once).
 *
 * When: every context creation (forced), and before a reservation when the last reading is
 * older than STALE_NS or the grant would leave less than a quarter of the limit free (then
 * always, so module memory loaded since the last reading cannot be over-granted). */
#include "hook.h"
#include "region.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define STALE_NS 100000000ull
#define NEAR_DIVISOR 4u
#define MAX_PROCS 256u
#define MAX_ESTIMATE (8ull << 30)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int nvml_state;                   /* 0 untried, 1 usable, -1 not */
static nvmlDevice_t nv_of[HK_MAX_DEVICES];       /* guarded by mu */
static int nv_state[HK_MAX_DEVICES];             /* guarded by mu: 0 untried, 1 ok, -1 none */
static _Atomic int32_t host_pid;                 /* 0: not known */
static _Atomic int active[HK_MAX_DEVICES];       /* we made a context there: reconcile it */
static _Atomic int estimated[HK_MAX_DEVICES];    /* context size charged from the estimate */
static _Atomic uint64_t last_ns[HK_MAX_DEVICES]; /* last reading */

static uint64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool limited(int dev) {
    return hk_acct_on && hk_cfg.any_mem_limit && hk_dev_ok(dev) && hk_region.dev[dev].limit_bytes;
}

/* Call with mu held. */
static bool nv_handle(int dev, nvmlDevice_t *out) {
    int st = atomic_load(&nvml_state);
    if (st == 0) {
        hk_ensure_nvml();
        st = NV_CALL(nvmlInit_v2) == NVML_SUCCESS ? 1 : -1;
        if (st < 0) HK_INFO("NVML unavailable: context and module memory are not counted");
        atomic_store(&nvml_state, st);
    }
    if (st < 0) return false;
    if (nv_state[dev] == 0) {
        char bus[32] = {0};
        nv_state[dev] = -1;
        if (CU_CALL(cuDeviceGetPCIBusId, bus, (int)sizeof bus, (CUdevice)dev) == CUDA_SUCCESS &&
            NV_CALL(nvmlDeviceGetHandleByPciBusId_v2, bus, &nv_of[dev]) == NVML_SUCCESS)
            nv_state[dev] = 1;
    }
    *out = nv_of[dev];
    return nv_state[dev] > 0;
}

/* The device's compute processes, or -1. Call with mu held. */
static int list_procs(int dev, nvmlProcessInfo_t *buf) {
    nvmlDevice_t h;
    if (!nv_handle(dev, &h)) return -1;
    unsigned n = MAX_PROCS;
    nvmlReturn_t r = NV_CALL(nvmlDeviceGetComputeRunningProcesses_v3, h, &n, buf);
    if (r != NVML_SUCCESS) return -1;
    return (int)(n < MAX_PROCS ? n : MAX_PROCS);
}

static uint64_t device_used(int dev) {
    nvmlDevice_t h;
    nvmlMemory_t m;
    if (!nv_handle(dev, &h) || NV_CALL(nvmlDeviceGetMemoryInfo, h, &m) != NVML_SUCCESS) return 0;
    return m.used;
}

static void set_host_pid(int32_t pid) {
    atomic_store(&host_pid, pid);
    if (hk_my_slot >= 0) atomic_store(&hk_region.slot[hk_my_slot].host_pid, pid);
}

/* Read our driver-side usage on dev and account it. Call with mu held. */
static void reconcile_locked(int dev) {
    int32_t pid = atomic_load(&host_pid);
    if (!pid) return;
    nvmlProcessInfo_t buf[MAX_PROCS];
    int n = list_procs(dev, buf);
    if (n < 0) return;
    uint64_t used = 0;
    const unsigned long long unknown = (unsigned long long)NVML_VALUE_NOT_AVAILABLE;
    for (int i = 0; i < n; i++)
        if ((int32_t)buf[i].pid == pid && buf[i].usedGpuMemory != unknown)
            used = buf[i].usedGpuMemory;
    hk_account_driver(dev, used);
    atomic_store(&last_ns[dev], coarse_ns());
}

void hk_ctx_before(int dev, struct hk_ctx_probe *p) {
    p->n = -1;
    p->used = 0;
    p->locked = false;
    if (!limited(dev) || atomic_load(&host_pid)) return;
    /* The container's processes make their contexts one at a time, so the one new PID is ours
     * (only another container's context made at the same instant can blur it). */
    hr_ctx_lock();
    p->locked = true;
    pthread_mutex_lock(&mu);
    p->n = list_procs(dev, p->procs);
    if (p->n >= 0) p->used = device_used(dev);
    pthread_mutex_unlock(&mu);
}

static bool listed(const nvmlProcessInfo_t *b, int n, unsigned pid) {
    for (int i = 0; i < n; i++)
        if (b[i].pid == pid) return true;
    return false;
}

void hk_ctx_after(int dev, struct hk_ctx_probe *p, CUresult r) {
    if (r != CUDA_SUCCESS || !limited(dev)) {
        if (p->locked) hr_ctx_unlock();
        return;
    }
    atomic_store(&active[dev], 1);
    pthread_mutex_lock(&mu);
    if (!atomic_load(&host_pid) && p->n >= 0) {
        nvmlProcessInfo_t after[MAX_PROCS];
        int n = list_procs(dev, after);
        unsigned self = (unsigned)getpid(), found = 0, fresh = 0;
        for (int i = 0; i < n; i++) {
            if (after[i].pid == self) found = self;
            else if (!listed(p->procs, p->n, after[i].pid)) {
                fresh = fresh ? UINT32_MAX : after[i].pid; /* more than one: ambiguous */
            }
        }
        if (found) set_host_pid((int32_t)found);
        else if (fresh && fresh != UINT32_MAX) set_host_pid((int32_t)fresh);
        else if (n >= 0 && !atomic_exchange(&estimated[dev], 1)) {
            uint64_t now = device_used(dev);
            uint64_t est = now > p->used ? now - p->used : 0;
            if (est > MAX_ESTIMATE) est = MAX_ESTIMATE;
            HK_INFO("device %d: driver PID not found, context counted as %llu bytes", dev,
                    (unsigned long long)est);
            hk_account_overhead(dev, est);
        }
    }
    reconcile_locked(dev);
    pthread_mutex_unlock(&mu);
    if (p->locked) hr_ctx_unlock();
}

void hk_reconcile_maybe(int dev, uint64_t want) {
    if (!hk_dev_ok(dev) || !atomic_load_explicit(&active[dev], memory_order_relaxed) ||
        !atomic_load_explicit(&host_pid, memory_order_relaxed))
        return;
    struct hr_device *d = &hk_region.dev[dev];
    uint64_t limit = d->limit_bytes;
    uint64_t used = atomic_load_explicit(&d->used_bytes, memory_order_relaxed);
    bool near = limit && used + want > limit - limit / NEAR_DIVISOR;
    if (!near && coarse_ns() - atomic_load_explicit(&last_ns[dev], memory_order_relaxed) < STALE_NS)
        return;
    pthread_mutex_lock(&mu);
    reconcile_locked(dev);
    pthread_mutex_unlock(&mu);
}

void hk_reconcile_after_fork(void) {
    /* The child has its own PID and no context of its parent's. */
    pthread_mutex_init(&mu, NULL);
    atomic_store(&host_pid, 0);
    for (int i = 0; i < HK_MAX_DEVICES; i++) {
        atomic_store(&active[i], 0);
        atomic_store(&estimated[i], 0);
        atomic_store(&last_ns[i], 0);
    }
}
