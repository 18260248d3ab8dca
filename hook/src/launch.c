/* Work submission hooks. Unlimited containers pay one predictable branch; limited ones go
 * through the limiter (limiter.c), which remembers each kernel's GPU time by its key. */
#include "hook.h"

/* A kernel's identity for the limiter's remembered times: the function and its grid. */
static inline uint64_t kernel_key(const void *f, unsigned gx, unsigned gy, unsigned gz) {
    return (uint64_t)(uintptr_t)f ^ ((uint64_t)gx << 40) ^ ((uint64_t)gy << 20) ^ gz;
}

#define LAUNCH(key, stream, ptsz, call)                                                          \
    hk_ensure_cuda();                                                                            \
    if (HK_LIKELY(!hk_sm_active)) return CU_CALL call;                                           \
    struct hk_launch l;                                                                          \
    hk_limiter_before(&l, (key), (stream), (ptsz));                                              \
    CUresult r = CU_CALL call;                                                                   \
    hk_limiter_after(&l, (stream), (ptsz), r);                                                   \
    return r

#define GRID_KEY kernel_key(f, gridDimX, gridDimY, gridDimZ)

CUresult cuLaunchKernel CU_LAUNCH_PARAMS {
    LAUNCH(GRID_KEY, hStream, 0, (cuLaunchKernel, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                                  blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams,
                                  extra));
}
CUresult cuLaunchKernel_ptsz CU_LAUNCH_PARAMS {
    LAUNCH(GRID_KEY, hStream, 1, (cuLaunchKernel_ptsz, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                                  blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams,
                                  extra));
}
CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                          void **extra) {
    LAUNCH(config ? kernel_key(f, config->gridDimX, config->gridDimY, config->gridDimZ) : 0,
           config ? config->hStream : NULL, 0, (cuLaunchKernelEx, config, f, kernelParams, extra));
}
CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                               void **extra) {
    LAUNCH(config ? kernel_key(f, config->gridDimX, config->gridDimY, config->gridDimZ) : 0,
           config ? config->hStream : NULL, 1,
           (cuLaunchKernelEx_ptsz, config, f, kernelParams, extra));
}
CUresult cuLaunchCooperativeKernel CU_COOP_PARAMS {
    LAUNCH(GRID_KEY, hStream, 0, (cuLaunchCooperativeKernel, f, gridDimX, gridDimY, gridDimZ,
                                  blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream,
                                  kernelParams));
}
CUresult cuLaunchCooperativeKernel_ptsz CU_COOP_PARAMS {
    LAUNCH(GRID_KEY, hStream, 1, (cuLaunchCooperativeKernel_ptsz, f, gridDimX, gridDimY,
                                  gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                                  hStream, kernelParams));
}
CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    LAUNCH((uintptr_t)hGraphExec, hStream, 0, (cuGraphLaunch, hGraphExec, hStream));
}
CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
    LAUNCH((uintptr_t)hGraphExec, hStream, 1, (cuGraphLaunch_ptsz, hGraphExec, hStream));
}
