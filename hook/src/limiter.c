/* SM limiter: a time-based duty cycle per container and device, measured in GPU time.
 *
 * Launches are charged their GPU time g to the device's shared virtual clock
 *     vt = max(vt, now - BURST) + g * 100 / limit
 * and a checked launch may only start once vt <= now. So the container is granted limit% of GPU
 * time whatever the SM count, block count or kernel length: the controller works on the quantity
 * the limit is defined in. vt lives in the shared region: all processes of the container share
 * it, and a single compare-and-swap updates it (no lock, nothing to recover if a process dies).
 *
 * Measuring every launch (two CUDA events, recorded and queried) costs far more on a real driver
 * than launching a small kernel, and inference servers launch thousands per step. So each thread
 * measures one launch in `every` (per context), bracketing it with two events on its stream, and
 * remembers the measured time per kernel (function and grid; graphs by executable): a launch
 * that is not measured adds its kernel's last measured time (or, for a kernel never measured,
 * the thread's running mean) to a pending sum, which the next measured launch charges before it
 * checks the budget. `every` follows the kernels' length so that about SAMPLE_NS of GPU time
 * passes between measurements: kernels of a millisecond or more are all measured and checked, as
 * before; small ones one in up to MAX_EVERY, jittered (uniform in [every/2, 3 every/2)) so that a
 * periodic launch pattern is not always measured at the same kernel, and a kernel not yet known
 * is measured at once. An unmeasured launch costs a table lookup and an addition. At most
 * IN_FLIGHT measured launches per thread and context are outstanding, bounding the overshoot. */
#include "hook.h"
#include "region.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN_FLIGHT 8
#define CTX_CACHE 4            /* contexts a thread alternates between without rebinding */
#define BURST_NS 20000000ull   /* credit kept after idle time or host hiccups: 20 ms */
#define MAX_SLEEP_NS 10000000ull
#define SAMPLE_NS 1000000ull   /* GPU time between two measured launches */
#define MAX_EVERY 64u
#define KERNELS 64u            /* remembered kernel times per context (direct-mapped) */

bool hk_sm_active;

/* One context a thread launches on: its device (-1: no SM limit there), its events, the
 * sampling state and the kernels' last measured times. */
struct lim_ctx {
    CUcontext ctx;
    int dev;
    int ok;                    /* events made */
    uint32_t countdown;        /* launches until the next measured one */
    uint32_t every;            /* mean sampling interval */
    uint32_t rng;
    uint64_t pending_ns;       /* estimated GPU time of unmeasured launches, not yet charged */
    uint64_t mean_ns;          /* running mean of measured launches */
    unsigned head, count;
    uint64_t key[IN_FLIGHT];   /* the kernel each outstanding measurement is of */
    CUevent start[IN_FLIGHT], end[IN_FLIGHT];
    struct { uint64_t key, ns; } known[KERNELS];
};
struct lim_thread {
    unsigned last, victim;
    struct lim_ctx c[CTX_CACHE];
};
/* Made at a thread's first limited launch (the library is in every process of the container).
 * initial-exec: the library is preloaded, so its TLS is static and needs no __tls_get_addr. */
static __thread struct lim_thread *tls __attribute__((tls_model("initial-exec")));

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
    if (!pct || !gpu_ns) return;
    atomic_fetch_add_explicit(&d->busy_ns, gpu_ns, memory_order_relaxed);
    uint64_t cost = gpu_ns * 100 / pct, now = mono_ns();
    uint64_t floor = now > BURST_NS ? now - BURST_NS : 0;
    uint64_t old = atomic_load_explicit(&d->vt_ns, memory_order_relaxed), next;
    do {
        next = (old > floor ? old : floor) + cost;
    } while (!atomic_compare_exchange_weak(&d->vt_ns, &old, next));
}

static inline unsigned slot_of(uint64_t key) {
    return (unsigned)((key * 0x9E3779B97F4A7C15ull) >> 58); /* 64 slots */
}

static uint32_t next_countdown(struct lim_ctx *e) {
    e->rng ^= e->rng << 13, e->rng ^= e->rng >> 17, e->rng ^= e->rng << 5; /* xorshift32 */
    return (e->every + 1) / 2 + e->rng % e->every;
}

/* Charge finished measurements; with wait, block for the oldest one first. */
static void drain(struct lim_ctx *e, int wait) {
    while (e->count) {
        unsigned i = e->head;
        CUresult q = wait ? CU_CALL(cuEventSynchronize, e->end[i])
                          : CU_CALL(cuEventQuery, e->end[i]);
        if (q == CUDA_ERROR_NOT_READY) break;
        float ms = 0;
        if (q == CUDA_SUCCESS &&
            CU_CALL(cuEventElapsedTime, &ms, e->start[i], e->end[i]) == CUDA_SUCCESS && ms >= 0) {
            uint64_t g = (uint64_t)((double)ms * 1e6);
            charge(e->dev, g);
            unsigned k = slot_of(e->key[i]);
            e->known[k].key = e->key[i];
            e->known[k].ns = g | 1; /* nonzero: known */
            e->mean_ns = e->mean_ns ? (e->mean_ns * 7 + g) / 8 : g | 1;
            uint64_t every = e->mean_ns > SAMPLE_NS ? 1 : SAMPLE_NS / e->mean_ns;
            e->every = every > MAX_EVERY ? MAX_EVERY : (uint32_t)every;
        }
        e->head = (i + 1) % IN_FLIGHT;
        e->count--;
        wait = 0;
    }
}

static int enforcing(void) {
    if (hk_cfg.policy == HK_POLICY_FORCE) return 1;
    return atomic_load_explicit(&hk_region.hdr->util_switch, memory_order_relaxed) != 0;
}

static void note_time(void) {
    struct hr_header *h = hk_region.hdr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (atomic_load_explicit(&h->last_kernel_s, memory_order_relaxed) != (uint64_t)ts.tv_sec)
        atomic_store_explicit(&h->last_kernel_s, (uint64_t)ts.tv_sec, memory_order_relaxed);
}

/* recent_kernel is not 2: the monitor counted it down (or holds us, < 0). */
static void note_activity_slow(void) {
    struct hr_header *h = hk_region.hdr;
    while (atomic_load_explicit(&h->recent_kernel, memory_order_relaxed) < 0)
        sleep_ns(MAX_SLEEP_NS); /* a higher-priority container is busy (node monitor) */
    atomic_store_explicit(&h->recent_kernel, 2, memory_order_relaxed);
    note_time();
}

static void unbind(struct lim_ctx *e) {
    if (e->ok) {
        if (e->dev >= 0) charge(e->dev, e->pending_ns);
        for (int i = 0; i < IN_FLIGHT; i++) {
            CU_CALL(cuEventDestroy_v2, e->start[i]); /* an error if the context is gone */
            CU_CALL(cuEventDestroy_v2, e->end[i]);
        }
    }
    memset(e, 0, sizeof *e);
}

/* A thread's state goes with the thread: what it had pending is charged, its events destroyed. */
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void thread_gone(void *p) {
    struct lim_thread *t = p;
    for (unsigned i = 0; i < CTX_CACHE; i++) unbind(&t->c[i]);
    free(t);
    tls = NULL;
}
static void make_key(void) { tls_key_ok = pthread_key_create(&tls_key, thread_gone) == 0; }

static struct lim_ctx *bind(CUcontext c) {
    if (!tls) {
        pthread_once(&tls_once, make_key);
        if (!tls_key_ok) return NULL;
        tls = calloc(1, sizeof *tls);
        if (!tls) return NULL;
        pthread_setspecific(tls_key, tls);
    }
    for (unsigned i = 0; i < CTX_CACHE; i++) {
        if (tls->c[i].ctx == c) {
            tls->last = i;
            return &tls->c[i];
        }
    }
    unsigned v = tls->victim++ % CTX_CACHE;
    struct lim_ctx *e = &tls->c[v];
    unbind(e);
    e->ctx = c;
    e->every = e->countdown = 1;
    e->rng = (uint32_t)(uintptr_t)e ^ 0x9e3779b9u;
    CUdevice dev;
    e->dev = CU_CALL(cuCtxGetDevice, &dev) == CUDA_SUCCESS && hk_dev_ok(dev) &&
                     hk_region.dev[dev].sm_limit_pct
                 ? (int)dev
                 : -1;
    if (e->dev >= 0) {
        e->ok = 1;
        for (int i = 0; i < IN_FLIGHT; i++)
            if (CU_CALL(cuEventCreate, &e->start[i], CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
                CU_CALL(cuEventCreate, &e->end[i], CU_EVENT_DEFAULT) != CUDA_SUCCESS)
                e->ok = 0;
    }
    tls->last = v;
    return e;
}

static CUresult record(CUevent e, CUstream s, int ptsz) {
    return ptsz ? CU_CALL(cuEventRecord_ptsz, e, s) : CU_CALL(cuEventRecord, e, s);
}

/* A measured launch: charge what is pending and what finished, wait for the budget, record the
 * start event. */
static void measure(struct hk_launch *l, struct lim_ctx *e, uint64_t key, CUstream stream,
                    int ptsz) {
    e->countdown = next_countdown(e);
    note_time();
    if (!e->ok) return;
    CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
    if (ptsz) CU_CALL(cuStreamIsCapturing_ptsz, stream, &cs);
    else CU_CALL(cuStreamIsCapturing, stream, &cs);
    if (cs != CU_STREAM_CAPTURE_STATUS_NONE) { /* captured, not run: cuGraphLaunch pays */
        e->pending_ns = 0;
        e->countdown = 1;
        return;
    }
    charge(e->dev, e->pending_ns);
    e->pending_ns = 0;
    drain(e, 0);
    if (e->count == IN_FLIGHT) drain(e, 1);
    for (;;) {
        uint64_t now = mono_ns();
        uint64_t vt = atomic_load_explicit(&hk_region.dev[e->dev].vt_ns, memory_order_relaxed);
        if (vt <= now) break;
        sleep_ns(vt - now < MAX_SLEEP_NS ? vt - now : MAX_SLEEP_NS);
    }
    unsigned slot = (e->head + e->count) % IN_FLIGHT;
    if (record(e->start[slot], stream, ptsz) != CUDA_SUCCESS) return;
    e->key[slot] = key;
    l->e = e;
    l->slot = (int)slot;
}

void hk_limiter_before(struct hk_launch *l, uint64_t key, CUstream stream, int ptsz) {
    l->e = NULL;
    CUcontext c = NULL;
    if (CU_CALL(cuCtxGetCurrent, &c) != CUDA_SUCCESS || !c) return;
    struct lim_ctx *e;
    if (HK_LIKELY(tls && tls->c[tls->last].ctx == c)) e = &tls->c[tls->last];
    else if (!(e = bind(c))) return;
    if (e->dev < 0) return;
    /* Every launch on a limited device takes part in the node monitor's priority loop, limited
     * or not (as in HAMi-core): a container the monitor let run unthrottled, because it was
     * alone, must still show that it is busy, or a lower-priority one that arrives is never
     * held. The monitor counts recent_kernel down; the launch after that sets it again. */
    if (HK_UNLIKELY(atomic_load_explicit(&hk_region.hdr->recent_kernel, memory_order_relaxed) != 2))
        note_activity_slow();
    if (!enforcing()) return;
    if (HK_LIKELY(--e->countdown)) {
        unsigned k = slot_of(key);
        if (HK_LIKELY(e->known[k].key == key && e->known[k].ns)) {
            e->pending_ns += e->known[k].ns;
            return;
        }
        if (e->mean_ns && e->known[k].ns) { /* slot taken by another kernel: use the mean */
            e->pending_ns += e->mean_ns;
            return;
        }
        /* a kernel never measured: measure it now */
    }
    measure(l, e, key, stream, ptsz);
}

void hk_limiter_after(struct hk_launch *l, CUstream stream, int ptsz, CUresult launched) {
    struct lim_ctx *e = l->e;
    if (!e || launched != CUDA_SUCCESS) return;
    if (record(e->end[l->slot], stream, ptsz) != CUDA_SUCCESS) return;
    e->count++;
}
