/* Real-GPU probe for test_hook_gpu.sh, driver API only (PTX is JIT-compiled, no nvcc needed).
 * It finds libcuda with dlopen + dlsym, one of the routes the hook intercepts.
 *   gpu_bench launch      ns per launch of an empty kernel (best of 20 batches of 2000)
 *   gpu_bench spin SECS   compute-bound kernels (every SM spins ~1 ms) completed per second
 *   gpu_bench oversub ROUTE PHYS_MIB -- READER...
 *                         oversubscription (CUDA_OVERSUBSCRIBE) through one allocation path:
 *                         1 GiB units until refused, each written by cuMemsetD32 and a kernel
 *                         and read back; the units the hook spilled to host memory found by
 *                         the driver (managed pointers, VMM handles not on the device); READER
 *                         run (without the hook) with PHASE=held and EXPECT_SPILLED_BYTES while
 *                         they are held, then with PHASE=freed. Prints gpu_oversubscribe_ROUTE_*
 *                         lines; exits 0 when more than PHYS_MIB was granted, some of it
 *                         spilled, every unit kept its data and the readers agreed. ROUTE: alloc
 *                         (cuMemAlloc), pitch (cuMemAllocPitch), async (cuMemAllocAsync), pool
 *                         (cuMemAllocFromPoolAsync), vmm (cuMemCreate + cuMemMap). */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry empty() { ret; }\n"
    ".visible .entry spin(.param .u64 cycles) {\n"
    "  .reg .u64 %rd<4>; .reg .pred %p;\n"
    "  ld.param.u64 %rd1, [cycles];\n"
    "  mov.u64 %rd2, %clock64;\n"
    "LOOP:\n"
    "  mov.u64 %rd3, %clock64;\n"
    "  sub.u64 %rd3, %rd3, %rd2;\n"
    "  setp.lt.u64 %p, %rd3, %rd1;\n"
    "  @%p bra LOOP;\n"
    "  ret;\n}\n";

/* Its own module, loaded by the oversub mode only: the other modes never depend on it.
 * touch(p, pages): +1 on the first word of every 4 KiB page (grid-stride). */
static const char ptx_touch[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry touch(.param .u64 p, .param .u64 pages) {\n"
    "  .reg .u64 %rd<8>; .reg .u32 %r<8>; .reg .pred %q;\n"
    "  ld.param.u64 %rd1, [p];\n"
    "  ld.param.u64 %rd2, [pages];\n"
    "  mov.u32 %r1, %ctaid.x;\n"
    "  mov.u32 %r2, %ntid.x;\n"
    "  mov.u32 %r3, %tid.x;\n"
    "  mad.lo.u32 %r4, %r1, %r2, %r3;\n"
    "  cvt.u64.u32 %rd3, %r4;\n"
    "  mov.u32 %r5, %nctaid.x;\n"
    "  mul.lo.u32 %r5, %r5, %r2;\n"
    "  cvt.u64.u32 %rd4, %r5;\n"
    "TLOOP:\n"
    "  setp.ge.u64 %q, %rd3, %rd2;\n"
    "  @%q bra TDONE;\n"
    "  shl.b64 %rd5, %rd3, 12;\n"
    "  add.u64 %rd6, %rd1, %rd5;\n"
    "  ld.global.u32 %r6, [%rd6];\n"
    "  add.u32 %r6, %r6, 1;\n"
    "  st.global.u32 [%rd6], %r6;\n"
    "  add.u64 %rd3, %rd3, %rd4;\n"
    "  bra TLOOP;\n"
    "TDONE:\n"
    "  ret;\n}\n";

#define FN(name) static __typeof__(&name) p_##name
FN(cuInit); FN(cuDeviceGet); FN(cuDeviceGetAttribute); FN(cuDevicePrimaryCtxRetain);
FN(cuCtxSetCurrent); FN(cuModuleLoadData); FN(cuModuleGetFunction); FN(cuLaunchKernel);
FN(cuCtxSynchronize); FN(cuEventCreate); FN(cuEventRecord); FN(cuEventSynchronize);
FN(cuMemAlloc); FN(cuMemAllocPitch); FN(cuMemAllocAsync); FN(cuMemAllocFromPoolAsync);
FN(cuMemPoolCreate); FN(cuMemFree); FN(cuMemFreeAsync); FN(cuMemCreate); FN(cuMemRelease);
FN(cuMemAddressReserve); FN(cuMemAddressFree); FN(cuMemMap); FN(cuMemUnmap); FN(cuMemSetAccess);
FN(cuMemGetAllocationPropertiesFromHandle); FN(cuPointerGetAttribute); FN(cuMemsetD32);
FN(cuMemcpyDtoH); FN(cuStreamSynchronize);

#define CK(call)                                                                                 \
    do {                                                                                         \
        CUresult r_ = (call);                                                                    \
        if (r_ != CUDA_SUCCESS) {                                                                \
            fprintf(stderr, "%s failed: %d\n", #call, (int)r_);                                  \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define OVER_UNIT (1024ull << 20)
#define OVER_MAX 512
enum route { R_ALLOC, R_PITCH, R_ASYNC, R_POOL, R_VMM, R_COUNT };
static const char *route_names[R_COUNT] = {"alloc", "pitch", "async", "pool", "vmm"};
struct unit {
    CUdeviceptr ptr;                   /* what kernels use (the mapped range for vmm) */
    CUmemGenericAllocationHandle handle; /* vmm */
    size_t bytes;                      /* as the hook counts it */
    int spilled;
};

/* One unit through the route; CUDA_ERROR_OUT_OF_MEMORY when the hook refuses it. */
static CUresult over_alloc(enum route route, CUmemoryPool pool, struct unit *u) {
    CUresult r;
    switch (route) {
    case R_PITCH: {
        size_t pitch = 0;
        r = p_cuMemAllocPitch(&u->ptr, &pitch, (1 << 20) - 100, OVER_UNIT >> 20, 4);
        u->bytes = pitch * (OVER_UNIT >> 20);
        break;
    }
    case R_ASYNC: r = p_cuMemAllocAsync(&u->ptr, OVER_UNIT, NULL); u->bytes = OVER_UNIT; break;
    case R_POOL:
        r = p_cuMemAllocFromPoolAsync(&u->ptr, OVER_UNIT, pool, NULL);
        u->bytes = OVER_UNIT;
        break;
    case R_VMM: {
        CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        r = p_cuMemCreate(&u->handle, OVER_UNIT, &prop, 0);
        if (r != CUDA_SUCCESS) return r;
        u->bytes = OVER_UNIT;
        CK(p_cuMemGetAllocationPropertiesFromHandle(&prop, u->handle));
        u->spilled = prop.location.type != CU_MEM_LOCATION_TYPE_DEVICE;
        CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                               .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
        CK(p_cuMemAddressReserve(&u->ptr, OVER_UNIT, 0, 0, 0));
        CK(p_cuMemMap(u->ptr, OVER_UNIT, 0, u->handle, 0));
        CK(p_cuMemSetAccess(u->ptr, OVER_UNIT, &acc, 1));
        return CUDA_SUCCESS;
    }
    default: r = p_cuMemAlloc(&u->ptr, OVER_UNIT); u->bytes = OVER_UNIT;
    }
    if (r == CUDA_SUCCESS) {
        unsigned int managed = 0;
        CK(p_cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, u->ptr));
        u->spilled = managed != 0;
    }
    return r;
}

static void over_free(enum route route, struct unit *u) {
    switch (route) {
    case R_ASYNC: case R_POOL: CK(p_cuMemFreeAsync(u->ptr, NULL)); break;
    case R_VMM:
        CK(p_cuMemUnmap(u->ptr, OVER_UNIT));
        CK(p_cuMemAddressFree(u->ptr, OVER_UNIT));
        CK(p_cuMemRelease(u->handle));
        break;
    default: CK(p_cuMemFree(u->ptr));
    }
}

static int run_reader(char **argv, const char *phase, size_t spilled) {
    fflush(stdout);
    pid_t c = fork();
    if (c < 0) return 1;
    if (c == 0) {
        char want[32];
        snprintf(want, sizeof want, "%zu", spilled);
        unsetenv("LD_PRELOAD");
        setenv("PHASE", phase, 1);
        setenv("EXPECT_SPILLED_BYTES", want, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    return waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
}

static int oversub(const char *name, size_t phys_mib, char **reader, CUfunction touch) {
    enum route route = R_ALLOC;
    while (route < R_COUNT && strcmp(route_names[route], name) != 0) route++;
    if (route == R_COUNT) return fprintf(stderr, "unknown route %s\n", name), 2;
    CUmemoryPool pool = NULL;
    if (route == R_POOL) {
        CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        CK(p_cuMemPoolCreate(&pool, &props));
    }
    static struct unit units[OVER_MAX];
    int n = 0;
    CUresult last = CUDA_SUCCESS;
    size_t granted = 0, spilled = 0;
    for (; n < OVER_MAX; n++) {
        memset(&units[n], 0, sizeof units[n]);
        last = over_alloc(route, pool, &units[n]);
        if (last != CUDA_SUCCESS) break;
        granted += units[n].bytes;
        if (units[n].spilled) spilled += units[n].bytes;
    }
    /* Every unit written (memset), then read and written by a kernel, then read back. */
    int data_ok = last == CUDA_ERROR_OUT_OF_MEMORY, bad = 0;
    CUresult r = CUDA_SUCCESS;
    for (int i = 0; i < n && r == CUDA_SUCCESS; i++) {
        unsigned long long pages = units[i].bytes >> 12;
        void *params[2] = {&units[i].ptr, &pages};
        r = p_cuMemsetD32(units[i].ptr, 0x5a5a0000u + (unsigned)i, units[i].bytes / 4);
        if (r == CUDA_SUCCESS)
            r = p_cuLaunchKernel(touch, 1024, 1, 1, 256, 1, 1, 0, NULL, params, NULL);
    }
    if (r == CUDA_SUCCESS) r = p_cuCtxSynchronize();
    for (int i = 0; i < n && r == CUDA_SUCCESS; i++) {
        unsigned int first = 0, end = 0, want = 0x5a5a0001u + (unsigned)i;
        r = p_cuMemcpyDtoH(&first, units[i].ptr, 4);
        if (r == CUDA_SUCCESS)
            r = p_cuMemcpyDtoH(&end, units[i].ptr + units[i].bytes - 4096, 4);
        bad += first != want || end != want;
    }
    if (r != CUDA_SUCCESS || bad) data_ok = 0;
    printf("gpu_oversubscribe_%s_granted_mib=%zu\n", name, granted >> 20);
    printf("gpu_oversubscribe_%s_spilled_mib=%zu\n", name, spilled >> 20);
    printf("gpu_oversubscribe_%s_stopped_by=%d\n", name, (int)last);
    printf("gpu_oversubscribe_%s_touch_result=%d\n", name, (int)r);
    printf("gpu_oversubscribe_%s_units_bad=%d\n", name, bad);
    int held = run_reader(reader, "held", spilled);
    if (r == CUDA_SUCCESS) { /* after a kernel fault the context is gone: nothing to free */
        for (int i = 0; i < n; i++) over_free(route, &units[i]);
        CK(p_cuStreamSynchronize(NULL));
    }
    int freed = r == CUDA_SUCCESS ? run_reader(reader, "freed", 0) : 1;
    int ok = granted >> 20 > phys_mib && spilled > 0 && data_ok && !held && !freed;
    printf("gpu_oversubscribe_%s_ok=%d\n", name, ok);
    return !ok;
}

int main(int argc, char **argv) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!h) return fprintf(stderr, "no libcuda.so.1\n"), 1;
#define LOAD(name, sym) p_##name = (__typeof__(p_##name))dlsym(h, sym)
    LOAD(cuInit, "cuInit"); LOAD(cuDeviceGet, "cuDeviceGet");
    LOAD(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    LOAD(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    LOAD(cuCtxSetCurrent, "cuCtxSetCurrent"); LOAD(cuModuleLoadData, "cuModuleLoadData");
    LOAD(cuModuleGetFunction, "cuModuleGetFunction"); LOAD(cuLaunchKernel, "cuLaunchKernel");
    LOAD(cuCtxSynchronize, "cuCtxSynchronize"); LOAD(cuEventCreate, "cuEventCreate");
    LOAD(cuEventRecord, "cuEventRecord"); LOAD(cuEventSynchronize, "cuEventSynchronize");
    LOAD(cuMemAlloc, "cuMemAlloc_v2"); LOAD(cuMemAllocPitch, "cuMemAllocPitch_v2");
    LOAD(cuMemAllocAsync, "cuMemAllocAsync");
    LOAD(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync");
    LOAD(cuMemPoolCreate, "cuMemPoolCreate"); LOAD(cuMemFree, "cuMemFree_v2");
    LOAD(cuMemFreeAsync, "cuMemFreeAsync"); LOAD(cuMemCreate, "cuMemCreate");
    LOAD(cuMemRelease, "cuMemRelease"); LOAD(cuMemAddressReserve, "cuMemAddressReserve");
    LOAD(cuMemAddressFree, "cuMemAddressFree"); LOAD(cuMemMap, "cuMemMap");
    LOAD(cuMemUnmap, "cuMemUnmap"); LOAD(cuMemSetAccess, "cuMemSetAccess");
    LOAD(cuMemGetAllocationPropertiesFromHandle, "cuMemGetAllocationPropertiesFromHandle");
    LOAD(cuPointerGetAttribute, "cuPointerGetAttribute"); LOAD(cuMemsetD32, "cuMemsetD32_v2");
    LOAD(cuMemcpyDtoH, "cuMemcpyDtoH_v2"); LOAD(cuStreamSynchronize, "cuStreamSynchronize");
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUmodule touch_mod;
    CUfunction empty, spin, touch;
    CK(p_cuInit(0));
    CK(p_cuDeviceGet(&dev, 0));
    CK(p_cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(p_cuCtxSetCurrent(ctx));
    CK(p_cuModuleLoadData(&mod, ptx));
    CK(p_cuModuleGetFunction(&empty, mod, "empty"));
    CK(p_cuModuleGetFunction(&spin, mod, "spin"));
    if (argc >= 6 && !strcmp(argv[1], "oversub") && !strcmp(argv[4], "--")) {
        CK(p_cuModuleLoadData(&touch_mod, ptx_touch));
        CK(p_cuModuleGetFunction(&touch, touch_mod, "touch"));
        return oversub(argv[2], strtoull(argv[3], NULL, 10), argv + 5, touch);
    }
    if (argc >= 2 && !strcmp(argv[1], "launch")) {
        double best = 1e30;
        for (int b = 0; b < 20; b++) {
            double t0 = now();
            for (int i = 0; i < 2000; i++)
                CK(p_cuLaunchKernel(empty, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
            double per = (now() - t0) / 2000 * 1e9;
            CK(p_cuCtxSynchronize());
            if (per < best) best = per;
        }
        printf("%.1f\n", best);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "spin")) {
        int sms, clock_khz;
        CK(p_cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
        CK(p_cuDeviceGetAttribute(&clock_khz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, dev));
        unsigned long long cycles = (unsigned long long)clock_khz; /* ~1 ms per kernel */
        void *params[1] = {&cycles};
        CUevent ev[4];
        for (int i = 0; i < 4; i++) CK(p_cuEventCreate(&ev[i], 0));
        double secs = atof(argv[2]), t0 = now(), warm = t0 + 0.5;
        long done = 0;
        for (long n = 0;; n++) {
            if (n >= 4) CK(p_cuEventSynchronize(ev[n % 4]));
            double t = now();
            if (t >= warm && done == 0) done = -n; /* count from here */
            if (t >= t0 + secs) {
                done += n;
                break;
            }
            CK(p_cuLaunchKernel(spin, (unsigned)sms * 4, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
            CK(p_cuEventRecord(ev[n % 4], NULL));
        }
        printf("%.3f\n", (double)done / (secs - 0.5));
        return 0;
    }
    fprintf(stderr, "usage: gpu_bench launch | spin SECONDS | oversub ROUTE PHYS_MIB -- READER...\n");
    return 2;
}
