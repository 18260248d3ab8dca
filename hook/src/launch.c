/* Work submission hooks. Unlimited containers pay one predictable branch; limited ones go
 * through the limiter (limiter.c). */
#include "hook.h"

#define LAUNCH(stream, ptsz, call)                                                               \
    hk_ensure_cuda();                                                                            \
    if (HK_LIKELY(!hk_sm_active)) return CU_CALL call;                                           \
    struct hk_launch l;                                                                          \
    hk_limiter_before(&l, (stream), (ptsz));                                                     \
    CUresult r = CU_CALL call;                                                                   \
    hk_limiter_after(&l, (stream), (ptsz), r);                                                   \
    return r

CUresult cuLaunchKernel CU_LAUNCH_PARAMS {
    LAUNCH(hStream, 0, (cuLaunchKernel, f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
                        blockDimZ, sharedMemBytes, hStream, kernelParams, extra));
}
CUresult cuLaunchKernel_ptsz CU_LAUNCH_PARAMS {
    LAUNCH(hStream, 1, (cuLaunchKernel_ptsz, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                        blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra));
}
CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                          void **extra) {
    LAUNCH(config ? config->hStream : NULL, 0, (cuLaunchKernelEx, config, f, kernelParams, extra));
}
CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                               void **extra) {
    LAUNCH(config ? config->hStream : NULL, 1,
           (cuLaunchKernelEx_ptsz, config, f, kernelParams, extra));
}
CUresult cuLaunchCooperativeKernel CU_COOP_PARAMS {
    LAUNCH(hStream, 0, (cuLaunchCooperativeKernel, f, gridDimX, gridDimY, gridDimZ, blockDimX,
                        blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams));
}
CUresult cuLaunchCooperativeKernel_ptsz CU_COOP_PARAMS {
    LAUNCH(hStream, 1, (cuLaunchCooperativeKernel_ptsz, f, gridDimX, gridDimY, gridDimZ,
                        blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams));
}
CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    LAUNCH(hStream, 0, (cuGraphLaunch, hGraphExec, hStream));
}
CUresult cuGraphLaunch_ptsz(CUgraphExec hGraphExec, CUstream hStream) {
    LAUNCH(hStream, 1, (cuGraphLaunch_ptsz, hGraphExec, hStream));
}
