/* A fake libcuda.so.1 for tests on machines without a GPU, built from cuda_hooks.def: every
 * listed entry point exists (the cuGetProcAddress table below takes each one's address), device
 * memory is host memory, and kernels occupy the simulated GPU of fake_gpu.c for a time:
 * kernelParams[0] -> uint64_t nanoseconds, else 1 us per block per 108 SMs. */
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gpu.h"

#define EXPORT __attribute__((visibility("default")))
#define CU_HOOK(name, base, ver, ptsz, params, args) EXPORT CUresult name params;
#define CU_REAL CU_HOOK
#include "cuda_hooks.def"

struct fctx { int dev; };
static struct fctx ctxs[FG_MAX_DEV];
static __thread struct fctx *cur __attribute__((tls_model("initial-exec")));

#define MAGIC 0x46414b454d454dull
/* 64 bytes before every allocation; proc is the owner's process entry, on_host a managed
 * allocation that did not fit on the device (it lives in host memory, as UVM pages would). */
struct hdr { uint64_t magic, bytes; int dev; int proc; int on_host; int pad; uint64_t pad2[4]; };

static int ctx_dev(void) { return cur ? cur->dev : -1; }

/* managed: 0 device memory, 1 managed (on the device while it fits, else host), 2 host. */
static CUresult mem_alloc_ex(CUdeviceptr *p, size_t bytes, int dev, int managed) {
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    _Atomic uint64_t *used = &fg_dev(dev)->mem_used;
    int on_host = managed == 2;
    if (!on_host && atomic_fetch_add(used, bytes) + bytes > fg_conf.mem_total) {
        atomic_fetch_sub(used, bytes);
        if (!managed) return CUDA_ERROR_OUT_OF_MEMORY;
        on_host = 1;
    }
    struct hdr *h = malloc(sizeof *h + bytes);
    if (!h) {
        if (!on_host) atomic_fetch_sub(used, bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    int proc = on_host ? -1 : fg_proc_self();
    *h = (struct hdr){.magic = MAGIC, .bytes = bytes, .dev = dev, .proc = proc, .on_host = on_host};
    if (!on_host) fg_proc_add(proc, dev, (int64_t)bytes);
    *p = (CUdeviceptr)(uintptr_t)(h + 1);
    return CUDA_SUCCESS;
}
static CUresult mem_alloc(CUdeviceptr *p, size_t bytes, int dev) { return mem_alloc_ex(p, bytes, dev, 0); }

static CUresult mem_free(uint64_t p) {
    if (!p) return CUDA_SUCCESS;
    struct hdr *h = (struct hdr *)(uintptr_t)p - 1;
    if (h->magic != MAGIC) return CUDA_ERROR_INVALID_VALUE;
    h->magic = 0;
    if (!h->on_host) {
        atomic_fetch_sub(&fg_dev(h->dev)->mem_used, h->bytes);
        fg_proc_add(h->proc, h->dev, -(int64_t)h->bytes);
    }
    free(h);
    return CUDA_SUCCESS;
}

CUresult cuInit(unsigned int Flags) { fg_state(); return Flags ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS; }
CUresult cuDriverGetVersion(int *v) { if (!v) return CUDA_ERROR_INVALID_VALUE; *v = 12090; return CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice *d, int o) {
    fg_state();
    if (!d || o < 0 || o >= fg_conf.count) return CUDA_ERROR_INVALID_DEVICE;
    *d = o;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetCount(int *c) { fg_state(); *c = fg_conf.count; return CUDA_SUCCESS; }
CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute a, CUdevice d) {
    fg_state();
    if (!pi || d < 0 || d >= fg_conf.count) return CUDA_ERROR_INVALID_VALUE;
    *pi = a == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT ? fg_conf.sms : 1;
    return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) {
    fg_state();
    if (!b || d < 0 || d >= fg_conf.count) return CUDA_ERROR_INVALID_VALUE;
    *b = fg_conf.mem_total;
    return CUDA_SUCCESS;
}
/* The primary context of a device is made once per process (its memory charged then). */
static int primary_pid[FG_MAX_DEV];
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
    fg_state();
    if (!c || d < 0 || d >= fg_conf.count) return CUDA_ERROR_INVALID_DEVICE;
    ctxs[d].dev = d;
    if (primary_pid[d] != fg_pid()) {
        primary_pid[d] = fg_pid();
        fg_new_context(d);
    }
    *c = (CUcontext)(void *)&ctxs[d];
    return CUDA_SUCCESS;
}
static CUresult ctx_create(CUcontext *c, CUdevice d) {
    fg_state();
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= fg_conf.count) return CUDA_ERROR_INVALID_DEVICE;
    struct fctx *x = malloc(sizeof *x); /* lives until exit, as the fake's contexts do */
    if (!x) return CUDA_ERROR_OUT_OF_MEMORY;
    x->dev = d;
    fg_new_context(d);
    cur = x;
    *c = (CUcontext)(void *)x;
    return CUDA_SUCCESS;
}
CUresult cuCtxCreate_v2(CUcontext *c, unsigned fl, CUdevice d) { (void)fl; return ctx_create(c, d); }
CUresult cuCtxCreate_v3(CUcontext *c, CUexecAffinityParam *p, int n, unsigned fl, CUdevice d) {
    (void)p; (void)n; (void)fl;
    return ctx_create(c, d);
}
CUresult cuCtxCreate_v4(CUcontext *c, CUctxCreateParams *p, unsigned fl, CUdevice d) {
    (void)p; (void)fl;
    return ctx_create(c, d);
}
CUresult cuDeviceGetPCIBusId(char *bus, int len, CUdevice d) {
    fg_state();
    if (!bus || len <= 0 || d < 0 || d >= fg_conf.count) return CUDA_ERROR_INVALID_VALUE;
    int n = snprintf(bus, (size_t)len, "00000000:%02X:00.0", fg_conf.phys[d] + 1);
    return n < len ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { (void)d; return CUDA_SUCCESS; }
CUresult cuCtxGetCurrent(CUcontext *c) { *c = (CUcontext)(void *)cur; return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext c) { cur = (struct fctx *)(void *)c; return CUDA_SUCCESS; }
CUresult cuCtxGetDevice(CUdevice *d) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    *d = cur->dev;
    return CUDA_SUCCESS;
}
CUresult cuCtxSynchronize(void) {
    if (!cur) return CUDA_ERROR_INVALID_CONTEXT;
    fg_sleep_until(atomic_load(&fg_dev(cur->dev)->busy_until));
    return CUDA_SUCCESS;
}
CUresult cuStreamSynchronize(CUstream s) { (void)s; return cuCtxSynchronize(); }
CUresult cuStreamSynchronize_ptsz(CUstream s) { (void)s; return cuCtxSynchronize(); }
CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st) {
    (void)s;
    *st = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}
CUresult cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st) { return cuStreamIsCapturing(s, st); }

CUresult cuMemGetInfo_v2(size_t *f, size_t *t) {
    int d = ctx_dev();
    if (d < 0) return CUDA_ERROR_INVALID_CONTEXT;
    uint64_t used = atomic_load(&fg_dev(d)->mem_used);
    *t = fg_conf.mem_total;
    *f = used > *t ? 0 : *t - used;
    return CUDA_SUCCESS;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t b) { return mem_alloc(p, b, ctx_dev()); }
CUresult cuMemAllocManaged(CUdeviceptr *p, size_t b, unsigned f) { (void)f; return mem_alloc_ex(p, b, ctx_dev(), 1); }
CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned e) {
    if (!pitch || e == 0) return CUDA_ERROR_INVALID_VALUE;
    *pitch = (w + 511) & ~(size_t)511;
    return mem_alloc(p, *pitch * h, ctx_dev());
}
CUresult cuMemFree_v2(CUdeviceptr p) { return mem_free(p); }
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t b, CUstream s) { (void)s; return mem_alloc(p, b, ctx_dev()); }
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *p, size_t b, CUstream s) { return cuMemAllocAsync(p, b, s); }
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t b, CUmemoryPool pool, CUstream s) {
    (void)s;
    return pool ? mem_alloc(p, b, ctx_dev()) : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *p, size_t b, CUmemoryPool pool, CUstream s) {
    return cuMemAllocFromPoolAsync(p, b, pool, s);
}
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) { (void)s; return mem_free(p); }
CUresult cuMemFreeAsync_ptsz(CUdeviceptr p, CUstream s) { return cuMemFreeAsync(p, s); }
static int pool_token;
CUresult cuMemPoolCreate(CUmemoryPool *p, const CUmemPoolProps *pr) { (void)pr; *p = (CUmemoryPool)(void *)&pool_token; return CUDA_SUCCESS; }
CUresult cuMemPoolDestroy(CUmemoryPool p) { (void)p; return CUDA_SUCCESS; }

#define GRAN (2u << 20)
CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *p, CUmemAllocationGranularity_flags o) {
    (void)p; (void)o;
    *g = GRAN;
    return CUDA_SUCCESS;
}
CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *p, unsigned long long f) {
    (void)f;
    if (!h || !p || size % GRAN) return CUDA_ERROR_INVALID_VALUE;
    CUdeviceptr d;
    int host = p->location.type == CU_MEM_LOCATION_TYPE_HOST ||
               p->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA; /* VMM host memory */
    CUresult r = mem_alloc_ex(&d, size, host ? 0 : p->location.id, host ? 2 : 0);
    if (r == CUDA_SUCCESS) *h = d;
    return r;
}
CUresult cuMemRelease(CUmemGenericAllocationHandle h) { return mem_free(h); }

static uint64_t array_bytes(size_t w, size_t h, size_t d, unsigned ch) {
    return (uint64_t)(w ? w : 1) * (h ? h : 1) * (d ? d : 1) * (ch ? ch : 1) * 4;
}
CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d) {
    CUdeviceptr p;
    CUresult r = mem_alloc(&p, array_bytes(d->Width, d->Height, 1, d->NumChannels), ctx_dev());
    if (r == CUDA_SUCCESS) *a = (CUarray)(uintptr_t)p;
    return r;
}
CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    CUdeviceptr p;
    CUresult r = mem_alloc(&p, array_bytes(d->Width, d->Height, d->Depth, d->NumChannels), ctx_dev());
    if (r == CUDA_SUCCESS) *a = (CUarray)(uintptr_t)p;
    return r;
}
CUresult cuArrayDestroy(CUarray a) { return mem_free((uintptr_t)a); }
CUresult cuMipmappedArrayCreate(CUmipmappedArray *a, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned n) {
    CUdeviceptr p;
    uint64_t bytes = 0;
    size_t w = d->Width, h = d->Height, z = d->Depth;
    for (unsigned l = 0; l < (n ? n : 1); l++) { /* every level, each half the previous */
        bytes += array_bytes(w, h, z, d->NumChannels);
        w = w > 1 ? w / 2 : 1, h = h > 1 ? h / 2 : 1, z = z > 1 ? z / 2 : 1;
    }
    CUresult r = mem_alloc(&p, bytes, ctx_dev());
    if (r == CUDA_SUCCESS) *a = (CUmipmappedArray)(uintptr_t)p;
    return r;
}
CUresult cuMipmappedArrayDestroy(CUmipmappedArray a) { return mem_free((uintptr_t)a); }

/* ---- work ---- */
/* CUDA's lazy loading: a process's first launch on a device loads its module there. */
static int module_pid[FG_MAX_DEV];
static CUresult run(unsigned gx, unsigned gy, unsigned gz, void **params) {
    int d = ctx_dev();
    if (d < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (fg_conf.module_bytes && module_pid[d] != fg_pid()) {
        module_pid[d] = fg_pid();
        fg_charge_extra(d, fg_conf.module_bytes);
    }
    uint64_t ns = params && params[0] ? *(uint64_t *)params[0]
                                      : (uint64_t)gx * gy * gz * 1000 / (uint64_t)fg_conf.sms + 1000;
    fg_submit(d, ns);
    return CUDA_SUCCESS;
}
CUresult cuLaunchKernel CU_LAUNCH_PARAMS {
    (void)f; (void)blockDimX; (void)blockDimY; (void)blockDimZ; (void)sharedMemBytes; (void)hStream; (void)extra;
    return run(gridDimX, gridDimY, gridDimZ, kernelParams);
}
CUresult cuLaunchKernel_ptsz CU_LAUNCH_PARAMS { return cuLaunchKernel CU_LAUNCH_ARGS; }
CUresult cuLaunchCooperativeKernel CU_COOP_PARAMS { return cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, NULL); }
CUresult cuLaunchCooperativeKernel_ptsz CU_COOP_PARAMS { return cuLaunchCooperativeKernel CU_COOP_ARGS; }
CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **kp, void **extra) {
    (void)f; (void)extra;
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    return run(c->gridDimX, c->gridDimY, c->gridDimZ, kp);
}
CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f, void **kp, void **extra) { return cuLaunchKernelEx(c, f, kp, extra); }

struct fgraph { uint64_t ns; };
EXPORT void fake_graph_set_duration(CUgraph g, uint64_t ns) { ((struct fgraph *)(void *)g)->ns = ns; }
CUresult cuGraphCreate(CUgraph *g, unsigned fl) {
    (void)fl;
    struct fgraph *x = malloc(sizeof *x);
    x->ns = 1000000;
    *g = (CUgraph)(void *)x;
    return CUDA_SUCCESS;
}
CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long fl) {
    (void)fl;
    struct fgraph *x = malloc(sizeof *x);
    *x = *(struct fgraph *)(void *)g;
    *e = (CUgraphExec)(void *)x;
    return CUDA_SUCCESS;
}
CUresult cuGraphExecDestroy(CUgraphExec e) { free((void *)e); return CUDA_SUCCESS; }
CUresult cuGraphDestroy(CUgraph g) { free((void *)g); return CUDA_SUCCESS; }
CUresult cuGraphLaunch(CUgraphExec e, CUstream s) {
    (void)s;
    int d = ctx_dev();
    if (d < 0) return CUDA_ERROR_INVALID_CONTEXT;
    fg_submit(d, ((struct fgraph *)(void *)e)->ns);
    return CUDA_SUCCESS;
}
CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s) { return cuGraphLaunch(e, s); }

/* ---- events: a timestamp = when all work queued on the device so far is done ---- */
struct fevent { uint64_t t; int recorded; };
CUresult cuEventCreate(CUevent *e, unsigned fl) {
    (void)fl;
    *e = (CUevent)(void *)calloc(1, sizeof(struct fevent));
    return CUDA_SUCCESS;
}
CUresult cuEventDestroy_v2(CUevent e) { free((void *)e); return CUDA_SUCCESS; }
static _Atomic uint64_t event_records;
CUresult cuEventRecord(CUevent e, CUstream s) {
    (void)s;
    atomic_fetch_add_explicit(&event_records, 1, memory_order_relaxed);
    int d = ctx_dev();
    if (d < 0 || !e) return CUDA_ERROR_INVALID_CONTEXT;
    struct fevent *x = (struct fevent *)(void *)e;
    uint64_t now = fg_now(), bu = atomic_load(&fg_dev(d)->busy_until);
    x->t = bu > now ? bu : now;
    x->recorded = 1;
    return CUDA_SUCCESS;
}
CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { return cuEventRecord(e, s); }
CUresult cuEventQuery(CUevent e) {
    struct fevent *x = (struct fevent *)(void *)e;
    return !x->recorded || fg_now() >= x->t ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}
CUresult cuEventSynchronize(CUevent e) {
    fg_sleep_until(((struct fevent *)(void *)e)->t);
    return CUDA_SUCCESS;
}
CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
    struct fevent *x = (struct fevent *)(void *)a, *y = (struct fevent *)(void *)b;
    if (!x->recorded || !y->recorded) return CUDA_ERROR_INVALID_HANDLE;
    if (cuEventQuery(b) != CUDA_SUCCESS) return CUDA_ERROR_NOT_READY;
    *ms = (float)((double)(y->t - x->t) / 1e6);
    return CUDA_SUCCESS;
}

/* Test helpers (not part of the CUDA API). */
EXPORT uint64_t fake_gpu_now(void) { return fg_now(); }
/* Events recorded by this process so far (the application's and the hook's). */
EXPORT uint64_t fake_gpu_event_records(void) { return atomic_load(&event_records); }
/* Device memory really in use on dev (every process: contexts, modules, allocations). */
EXPORT uint64_t fake_gpu_mem_used(int dev) { fg_state(); return atomic_load(&fg_dev(dev)->mem_used); }
EXPORT uint64_t fake_gpu_busy_ns(int dev, uint64_t t0, uint64_t t1, int pid) { return fg_busy_between(dev, t0, t1, pid); }

/* ---- cuGetProcAddress, generated from the list ---- */
static const struct { const char *name, *base; int ver, ptsz; void *fn; } table[] = {
#define CU_HOOK(name, base, ver, ptsz, params, args) {#name, #base, ver, ptsz, (void *)name},
#define CU_REAL CU_HOOK
#include "cuda_hooks.def"
};

static CUresult lookup(const char *sym, void **pfn, int ver, cuuint64_t flags, CUdriverProcAddressQueryResult *st) {
    int ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0, known = 0, best = -1, legacy = -1;
    for (int i = 0; i < (int)(sizeof table / sizeof table[0]); i++) {
        if (strcmp(table[i].base, sym) != 0) continue;
        known = 1;
        if (table[i].ver > ver || (table[i].ptsz && !ptds)) continue;
        int *pick = table[i].ptsz ? &best : &legacy;
        if (*pick < 0 || table[i].ver > table[*pick].ver) *pick = i;
    }
    int i = best >= 0 ? best : legacy;
    if (st) *st = i >= 0 ? CU_GET_PROC_ADDRESS_SUCCESS : known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    *pfn = i >= 0 ? table[i].fn : NULL;
    return i >= 0 ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}
CUresult cuGetProcAddress(const char *s, void **p, int v, cuuint64_t f) { return lookup(s, p, v, f, NULL); }
CUresult cuGetProcAddress_v2(const char *s, void **p, int v, cuuint64_t f, CUdriverProcAddressQueryResult *st) {
    return lookup(s, p, v, f, st);
}
