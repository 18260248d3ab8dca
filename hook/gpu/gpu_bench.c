/* Real-GPU probe for test_hook_gpu.sh, driver API only (PTX is JIT-compiled, no nvcc needed).
 * It finds libcuda with dlopen + dlsym, one of the routes the hook intercepts.
 *   gpu_bench launch      ns per launch of an empty kernel (best of 20 batches of 2000)
 *   gpu_bench spin SECS   compute-bound kernels (every SM spins ~1 ms) completed per second */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define FN(name) static __typeof__(&name) p_##name
FN(cuInit); FN(cuDeviceGet); FN(cuDeviceGetAttribute); FN(cuDevicePrimaryCtxRetain);
FN(cuCtxSetCurrent); FN(cuModuleLoadData); FN(cuModuleGetFunction); FN(cuLaunchKernel);
FN(cuCtxSynchronize); FN(cuEventCreate); FN(cuEventRecord); FN(cuEventSynchronize);

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
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction empty, spin;
    CK(p_cuInit(0));
    CK(p_cuDeviceGet(&dev, 0));
    CK(p_cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(p_cuCtxSetCurrent(ctx));
    CK(p_cuModuleLoadData(&mod, ptx));
    CK(p_cuModuleGetFunction(&empty, mod, "empty"));
    CK(p_cuModuleGetFunction(&spin, mod, "spin"));
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
    fprintf(stderr, "usage: gpu_bench launch | spin SECONDS\n");
    return 2;
}
