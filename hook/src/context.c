/* Context creation: where the driver starts holding memory for the process that the hook never
 * sees as an allocation. The driver-side PID is learnt here and the context counted at once
 * (reconcile.c), before the first allocation is checked against the limit. */
#include "hook.h"

#define AROUND(dev, call)                                                                        \
    hk_ensure_cuda();                                                                            \
    struct hk_ctx_probe probe;                                                                   \
    hk_ctx_before((int)(dev), &probe);                                                           \
    CUresult r = CU_CALL call;                                                                   \
    hk_ctx_after((int)(dev), &probe, r);                                                         \
    return r

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    AROUND(dev, (cuDevicePrimaryCtxRetain, pctx, dev));
}
CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) {
    AROUND(dev, (cuCtxCreate_v2, pctx, flags, dev));
}
CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams,
                        unsigned int flags, CUdevice dev) {
    AROUND(dev, (cuCtxCreate_v3, pctx, paramsArray, numParams, flags, dev));
}
CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags,
                        CUdevice dev) {
    AROUND(dev, (cuCtxCreate_v4, pctx, ctxCreateParams, flags, dev));
}
