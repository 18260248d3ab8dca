/* cuGetProcAddress / cuGetProcAddress_v2: how the CUDA runtime (11.3+) finds every driver entry
 * point. The real driver answers first (so symbolStatus, unknown names and too-old versions are
 * exactly the driver's); then, if the answer is one we intercept, we return our hook for the
 * very variant the driver picked: the newest <base>[_vN] whose version <= cudaVersion, and the
 * _ptsz variant when the per-thread default stream was asked for. */
#include "hook.h"

#include <string.h>

static void *route(const char *symbol, int cudaVersion, cuuint64_t flags) {
    int ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    const struct hk_entry *best = NULL, *legacy = NULL;
    bool base_known = false;
    for (int i = 0; i < CU_FN_COUNT; i++) {
        const struct hk_entry *e = &hk_cu_entries[i];
        if (strcmp(e->base, symbol) != 0) continue;
        base_known = true;
        if (e->version > cudaVersion) continue;
        const struct hk_entry **pick = e->ptsz ? &best : &legacy;
        if (e->ptsz && !ptds) continue;
        if (!*pick || e->version > (*pick)->version) *pick = e;
    }
    if (!base_known) return NULL;
    const struct hk_entry *e = best ? best : legacy;
    return e && e->hooked ? e->hook : NULL;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    hk_ensure_cuda();
    CUresult r = CU_CALL(cuGetProcAddress, symbol, pfn, cudaVersion, flags);
    if (r == CUDA_SUCCESS && symbol && pfn && *pfn) {
        void *h = route(symbol, cudaVersion, flags);
        if (h) *pfn = h;
    }
    return r;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus) {
    hk_ensure_cuda();
    CUresult r = CU_CALL(cuGetProcAddress_v2, symbol, pfn, cudaVersion, flags, symbolStatus);
    if (r == CUDA_SUCCESS && symbol && pfn && *pfn) {
        void *h = route(symbol, cudaVersion, flags);
        if (h) *pfn = h;
    }
    return r;
}
