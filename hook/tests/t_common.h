/* Shared helpers of the hook's test programs. Each program is run by run_tests.py twice: with
 * libvgpu.so preloaded (EXPECT_LIMIT_MIB > 0: the limit must hold) and without (it must not). */
#ifndef T_COMMON_H
#define T_COMMON_H
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <cuda.h>
#include <dlfcn.h>
#include <nvml.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stdout, __VA_ARGS__);                                                        \
            fprintf(stdout, "\n");                                                               \
            fflush(stdout);                                                                      \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)
#define CU_OK(call)                                                                              \
    do {                                                                                         \
        CUresult r_ = (call);                                                                    \
        CHECK(r_ == CUDA_SUCCESS, "%s -> %d", #call, (int)r_);                                   \
    } while (0)

static inline uint64_t env_u64(const char *k, uint64_t d) {
    const char *v = getenv(k);
    return v && *v ? strtoull(v, NULL, 10) : d;
}

/* Limit the test expects to be enforced on device 0 (0 = none: run without the hook). */
static inline uint64_t expect_limit(void) { return env_u64("EXPECT_LIMIT_MIB", 0) * MIB; }

static inline CUcontext use_device(int dev) {
    CUcontext ctx;
    CUdevice d;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGet(&d, dev));
    CU_OK(cuDevicePrimaryCtxRetain(&ctx, d));
    CU_OK(cuCtxSetCurrent(ctx));
    return ctx;
}

/* Test-only entry points of the fake libcuda. */
uint64_t fake_gpu_now(void);
uint64_t fake_gpu_busy_ns(int dev, uint64_t t0, uint64_t t1, int pid); /* pid 0: all */
void fake_graph_set_duration(CUgraph g, uint64_t ns);
uint64_t fake_gpu_event_records(void);
#endif
