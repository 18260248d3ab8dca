/* SM limiter: a time-based duty cycle per container and device, measured in GPU time.
 *
 * Every limited launch is bracketed by two CUDA events on its own stream. When a kernel has
 * finished, its measured GPU time g is charged to the device's shared virtual clock
 *     vt = max(vt, now - BURST) + g * 100 / limit
 * and a launch may only start once vt <= now. So the container is granted limit% of GPU time
 * whatever the SM count, block count or kernel length: the controller works on the quantity the
 * limit is defined in. At most IN_FLIGHT measured launches per thread are outstanding, bounding
 * the overshoot. vt lives in the shared region: all processes of the container share it, and a
 * single compare-and-swap updates it (no lock, nothing to recover if a process dies). */
#include "hook.h"
#include "region.h"

#include <time.h>

#define IN_FLIGHT 8
#define BURST_NS 20000000ull /* credit kept after idle time or host hiccups: 20 ms */
#define MAX_SLEEP_NS 10000000ull

bool hk_sm_active;

struct lim_tls {
    CUcontext ctx;
    int ok;
    unsigned head, count;
    int dev[IN_FLIGHT];
    CUevent start[IN_FLIGHT], end[IN_FLIGHT];
};
static __thread struct lim_tls tls;

void hk_limiter_setup(void) {
    hk_sm_active = hk_cfg.any_sm_limit && hk_cfg.policy != HK_POLICY_DISABLE;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static void charge(int dev, uint64_t gpu_ns) {
    struct hr_device *d = &hk_region.dev[dev];
    uint32_t pct = d->sm_limit_pct;
    if (!pct) return;
    atomic_fetch_add_explicit(&d->busy_ns, gpu_ns, memory_order_relaxed);
    uint64_t cost = gpu_ns * 100 / pct, now = mono_ns();
    uint64_t floor = now > BURST_NS ? now - BURST_NS : 0;
    uint64_t old = atomic_load_explicit(&d->vt_ns, memory_order_relaxed), next;
    do {
        next = (old > floor ? old : floor) + cost;
    } while (!atomic_compare_exchange_weak(&d->vt_ns, &old, next));
}

/* Charge finished launches; with wait, block for the oldest one first. */
static void drain(int wait) {
    while (tls.count) {
        unsigned i = tls.head;
        CUresult q = wait ? CU_CALL(cuEventSynchronize, tls.end[i]) : CU_CALL(cuEventQuery, tls.end[i]);
        if (q == CUDA_ERROR_NOT_READY) break;
        float ms = 0;
        if (q == CUDA_SUCCESS &&
            CU_CALL(cuEventElapsedTime, &ms, tls.start[i], tls.end[i]) == CUDA_SUCCESS && ms > 0)
            charge(tls.dev[i], (uint64_t)((double)ms * 1e6));
        tls.head = (i + 1) % IN_FLIGHT;
        tls.count--;
        wait = 0;
    }
}

static int enforcing(void) {
    if (hk_cfg.policy == HK_POLICY_FORCE) return 1;
    return atomic_load_explicit(&hk_region.hdr->util_switch, memory_order_relaxed) != 0;
}

static void note_activity(void) {
    struct hr_header *h = hk_region.hdr;
    while (atomic_load_explicit(&h->recent_kernel, memory_order_relaxed) < 0)
        sleep_ns(MAX_SLEEP_NS); /* a higher-priority container is busy (node monitor) */
    if (atomic_load_explicit(&h->recent_kernel, memory_order_relaxed) != 2)
        atomic_store_explicit(&h->recent_kernel, 2, memory_order_relaxed);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (atomic_load_explicit(&h->last_kernel_s, memory_order_relaxed) != (uint64_t)ts.tv_sec)
        atomic_store_explicit(&h->last_kernel_s, (uint64_t)ts.tv_sec, memory_order_relaxed);
}

static int bind_events(void) {
    CUcontext ctx = NULL;
    if (CU_CALL(cuCtxGetCurrent, &ctx) != CUDA_SUCCESS || !ctx) return 0;
    if (tls.ctx == ctx) return tls.ok;
    tls.ctx = ctx; /* events of a previous context are abandoned with it */
    tls.head = tls.count = 0;
    tls.ok = 1;
    for (int i = 0; i < IN_FLIGHT; i++)
        if (CU_CALL(cuEventCreate, &tls.start[i], CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
            CU_CALL(cuEventCreate, &tls.end[i], CU_EVENT_DEFAULT) != CUDA_SUCCESS)
            tls.ok = 0;
    return tls.ok;
}

static CUresult record(CUevent e, CUstream s, int ptsz) {
    return ptsz ? CU_CALL(cuEventRecord_ptsz, e, s) : CU_CALL(cuEventRecord, e, s);
}

void hk_limiter_before(struct hk_launch *l, CUstream stream, int ptsz) {
    l->armed = 0;
    CUdevice dev;
    if (CU_CALL(cuCtxGetDevice, &dev) != CUDA_SUCCESS || !hk_dev_ok(dev)) return;
    if (!hk_region.dev[dev].sm_limit_pct) return;
    /* Every launch takes part in the node monitor's priority loop, limited or not (as in
     * HAMi-core): a container the monitor let run unthrottled, because it was alone, must still
     * show that it is busy, or a lower-priority container that arrives is never held. */
    note_activity();
    if (!enforcing()) return;
    CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
    if (ptsz) CU_CALL(cuStreamIsCapturing_ptsz, stream, &cs);
    else CU_CALL(cuStreamIsCapturing, stream, &cs);
    if (cs != CU_STREAM_CAPTURE_STATUS_NONE) return; /* captured, not run: cuGraphLaunch pays */
    if (!bind_events()) return;
    drain(0);
    if (tls.count == IN_FLIGHT) drain(1);
    for (;;) {
        uint64_t now = mono_ns();
        uint64_t vt = atomic_load_explicit(&hk_region.dev[dev].vt_ns, memory_order_relaxed);
        if (vt <= now) break;
        sleep_ns(vt - now < MAX_SLEEP_NS ? vt - now : MAX_SLEEP_NS);
    }
    unsigned slot = (tls.head + tls.count) % IN_FLIGHT;
    if (record(tls.start[slot], stream, ptsz) != CUDA_SUCCESS) return;
    l->armed = 1;
    l->dev = dev;
    l->slot = (int)slot;
}

void hk_limiter_after(struct hk_launch *l, CUstream stream, int ptsz, CUresult launched) {
    if (!l->armed || launched != CUDA_SUCCESS) return;
    if (record(tls.end[l->slot], stream, ptsz) != CUDA_SUCCESS) return;
    tls.dev[l->slot] = l->dev;
    tls.count++;
}
