/* Allocation hooks: reserve -> allocate -> record, and on every failure undo both, so a refused
 * or failed call leaves neither a reservation nor an allocation behind. Frees of pointers we did
 * not record (made before the hook, or by paths we do not count) are forwarded untouched. */
#include "hook.h"

static int cur_dev(void) {
    CUdevice d;
    return CU_CALL(cuCtxGetDevice, &d) == CUDA_SUCCESS ? (int)d : -1;
}

typedef CUresult (*undo_fn)(uint64_t key);
static CUresult undo_free(uint64_t k) { return CU_CALL(cuMemFree_v2, (CUdeviceptr)k); }
static CUresult undo_release(uint64_t k) { return CU_CALL(cuMemRelease, k); }
static CUresult undo_array(uint64_t k) { return CU_CALL(cuArrayDestroy, (CUarray)(uintptr_t)k); }
static CUresult undo_mipmap(uint64_t k) {
    return CU_CALL(cuMipmappedArrayDestroy, (CUmipmappedArray)(uintptr_t)k);
}

static CUresult finish(CUresult r, enum hk_map_kind kind, uint64_t key, int dev, uint64_t bytes,
                       undo_fn undo) {
    if (r != CUDA_SUCCESS) {
        hk_release(dev, bytes);
        return r;
    }
    if (!hk_map_put(kind, key, dev, bytes)) {
        undo(key);
        hk_release(dev, bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

/* After the real free of a recorded key: release on success, keep counting on failure. */
static void settle(enum hk_map_kind kind, uint64_t key, int dev, uint64_t bytes, CUresult r) {
    if (r == CUDA_SUCCESS) hk_release(dev, bytes);
    else hk_map_put(kind, key, dev, bytes); /* still allocated: keep counting it */
}

#define RESERVE_OR_OOM(dev, bytes)                                                               \
    do {                                                                                         \
        if (!hk_reserve((dev), (bytes))) return CUDA_ERROR_OUT_OF_MEMORY;                        \
    } while (0)

/* Oversubscription (CUDA_OVERSUBSCRIBE=true, set by the plugin when memory scaling > 1): an
 * allocation within the container's limit that the device has no room for is made as managed
 * memory instead, which the driver backs with host memory and pages to the device on use. It
 * counts against the limit like any other, and as spilled (the monitor shows how much). Every
 * path that allocates device memory does so: cuMemAlloc, cuMemAllocPitch, the stream-ordered
 * allocations (made at once; their cuMemFreeAsync waits for the stream, then frees), and VMM's
 * cuMemCreate (host physical memory, which cuMemMap maps for the device). */
static CUresult spill(CUdeviceptr *dptr, size_t bytesize, int dev) {
    CUresult r = CU_CALL(cuMemAllocManaged, dptr, bytesize, CU_MEM_ATTACH_GLOBAL);
    if (r != CUDA_SUCCESS) {
        hk_release(dev, bytesize);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    r = finish(r, HK_MAP_SPILL, *dptr, dev, bytesize, undo_free);
    if (r == CUDA_SUCCESS) hk_account_spill(dev, bytesize, true);
    return r;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!dptr || dev < 0) return CU_CALL(cuMemAlloc_v2, dptr, bytesize);
    RESERVE_OR_OOM(dev, bytesize);
    CUresult r = CU_CALL(cuMemAlloc_v2, dptr, bytesize);
    if (HK_UNLIKELY(r == CUDA_ERROR_OUT_OF_MEMORY && hk_cfg.oversubscribe))
        return spill(dptr, bytesize, dev);
    return finish(r, HK_MAP_DPTR, *dptr, dev, bytesize, undo_free);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!dptr || dev < 0) return CU_CALL(cuMemAllocManaged, dptr, bytesize, flags);
    RESERVE_OR_OOM(dev, bytesize);
    CUresult r = CU_CALL(cuMemAllocManaged, dptr, bytesize, flags);
    return finish(r, HK_MAP_DPTR, *dptr, dev, bytesize, undo_free);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                            unsigned int ElementSizeBytes) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!dptr || !pPitch || dev < 0)
        return CU_CALL(cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    uint64_t guess = ((WidthInBytes + 511) & ~(size_t)511) * Height; /* usual pitch alignment */
    RESERVE_OR_OOM(dev, guess);
    CUresult r = CU_CALL(cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    if (HK_UNLIKELY(r == CUDA_ERROR_OUT_OF_MEMORY && hk_cfg.oversubscribe)) {
        r = spill(dptr, guess, dev); /* any pitch >= the width serves: the caller reads it */
        if (r == CUDA_SUCCESS) *pPitch = (WidthInBytes + 511) & ~(size_t)511;
        return r;
    }
    if (r != CUDA_SUCCESS) return finish(r, HK_MAP_DPTR, 0, dev, guess, undo_free);
    uint64_t real = (uint64_t)*pPitch * Height;
    if (real > guess && !hk_reserve(dev, real - guess)) {
        undo_free(*dptr);
        hk_release(dev, guess);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (real < guess) hk_release(dev, guess - real);
    return finish(r, HK_MAP_DPTR, *dptr, dev, real, undo_free);
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    hk_ensure_cuda();
    int dev;
    uint64_t bytes;
    if (!hk_map_take(HK_MAP_DPTR, dptr, &dev, &bytes)) {
        if (HK_LIKELY(!hk_cfg.oversubscribe) || !hk_map_take(HK_MAP_SPILL, dptr, &dev, &bytes))
            return CU_CALL(cuMemFree_v2, dptr);
        CUresult r = CU_CALL(cuMemFree_v2, dptr);
        if (r == CUDA_SUCCESS) hk_account_spill(dev, bytes, false);
        settle(HK_MAP_SPILL, dptr, dev, bytes, r);
        return r;
    }
    CUresult r = CU_CALL(cuMemFree_v2, dptr);
    settle(HK_MAP_DPTR, dptr, dev, bytes, r);
    return r;
}

/* Stream-ordered allocations, from the default pool or an explicit one: counted per allocation
 * while it is live (memory a pool keeps cached after a free is not counted). */
#define ASYNC_ALLOC(real, call_args)                                                             \
    hk_ensure_cuda();                                                                            \
    int dev = cur_dev();                                                                         \
    if (!dptr || dev < 0) return CU_CALL call_args;                                              \
    RESERVE_OR_OOM(dev, bytesize);                                                               \
    CUresult r = CU_CALL call_args;                                                              \
    if (HK_UNLIKELY(r == CUDA_ERROR_OUT_OF_MEMORY && hk_cfg.oversubscribe))                      \
        return spill(dptr, bytesize, dev);                                                       \
    return finish(r, HK_MAP_DPTR, *dptr, dev, bytesize, undo_free)

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    ASYNC_ALLOC(cuMemAllocAsync, (cuMemAllocAsync, dptr, bytesize, hStream));
}
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
    ASYNC_ALLOC(cuMemAllocAsync_ptsz, (cuMemAllocAsync_ptsz, dptr, bytesize, hStream));
}
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                 CUstream hStream) {
    ASYNC_ALLOC(cuMemAllocFromPoolAsync, (cuMemAllocFromPoolAsync, dptr, bytesize, pool, hStream));
}
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream) {
    ASYNC_ALLOC(cuMemAllocFromPoolAsync_ptsz,
                (cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, hStream));
}

/* A spilled stream-ordered allocation is managed memory: freed once the stream has done with
 * it (its work so far), as cuMemFreeAsync would in stream order. */
static CUresult free_spilled_async(CUdeviceptr dptr, CUstream hStream, int ptsz) {
    int dev;
    uint64_t bytes;
    if (!hk_map_take(HK_MAP_SPILL, dptr, &dev, &bytes)) return CUDA_ERROR_NOT_FOUND;
    CUresult r = ptsz ? CU_CALL(cuStreamSynchronize_ptsz, hStream)
                      : CU_CALL(cuStreamSynchronize, hStream);
    if (r == CUDA_SUCCESS) r = CU_CALL(cuMemFree_v2, dptr);
    if (r == CUDA_SUCCESS) hk_account_spill(dev, bytes, false);
    settle(HK_MAP_SPILL, dptr, dev, bytes, r);
    return r;
}

#define ASYNC_FREE(real, ptsz)                                                                   \
    hk_ensure_cuda();                                                                            \
    int dev;                                                                                     \
    uint64_t bytes;                                                                              \
    if (!hk_map_take(HK_MAP_DPTR, dptr, &dev, &bytes)) {                                         \
        if (HK_UNLIKELY(hk_cfg.oversubscribe)) {                                                 \
            CUresult s = free_spilled_async(dptr, hStream, ptsz);                                \
            if (s != CUDA_ERROR_NOT_FOUND) return s;                                             \
        }                                                                                        \
        return CU_CALL(real, dptr, hStream);                                                     \
    }                                                                                            \
    CUresult r = CU_CALL(real, dptr, hStream);                                                   \
    settle(HK_MAP_DPTR, dptr, dev, bytes, r);                                                    \
    return r

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) { ASYNC_FREE(cuMemFreeAsync, 0); }
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream) {
    ASYNC_FREE(cuMemFreeAsync_ptsz, 1);
}

/* Virtual memory management: physical memory is what cuMemCreate makes (cuMemMap only maps it),
 * counted at the allocation granularity. */
CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                     const CUmemAllocationProp *prop, unsigned long long flags) {
    hk_ensure_cuda();
    if (!handle || !prop || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CU_CALL(cuMemCreate, handle, size, prop, flags);
    int dev = prop->location.id;
    size_t gran = 0;
    uint64_t bytes = size;
    if (CU_CALL(cuMemGetAllocationGranularity, &gran, prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) ==
            CUDA_SUCCESS &&
        gran > 1)
        bytes = (size + gran - 1) / gran * gran;
    RESERVE_OR_OOM(dev, bytes);
    CUresult r = CU_CALL(cuMemCreate, handle, size, prop, flags);
    if (HK_UNLIKELY(r == CUDA_ERROR_OUT_OF_MEMORY && hk_cfg.oversubscribe)) {
        /* Host physical memory instead (a driver with VMM host allocations, CUDA >= 12.2):
         * a host NUMA node's (any driver that has them), else plain host memory. */
        CUmemAllocationProp host = *prop;
        host.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
        host.location.id = 0;
        CUresult h = CU_CALL(cuMemCreate, handle, size, &host, flags);
        if (h != CUDA_SUCCESS && host.requestedHandleTypes == 0) {
            host.location.type = CU_MEM_LOCATION_TYPE_HOST;
            h = CU_CALL(cuMemCreate, handle, size, &host, flags);
        }
        if (h != CUDA_SUCCESS) {
            hk_release(dev, bytes);
            return r; /* the device's out-of-memory */
        }
        h = finish(h, HK_MAP_SPILL_HANDLE, *handle, dev, bytes, undo_release);
        if (h == CUDA_SUCCESS) hk_account_spill(dev, bytes, true);
        return h;
    }
    return finish(r, HK_MAP_HANDLE, *handle, dev, bytes, undo_release);
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    hk_ensure_cuda();
    int dev;
    uint64_t bytes;
    if (!hk_map_take(HK_MAP_HANDLE, handle, &dev, &bytes)) {
        if (HK_LIKELY(!hk_cfg.oversubscribe) ||
            !hk_map_take(HK_MAP_SPILL_HANDLE, handle, &dev, &bytes))
            return CU_CALL(cuMemRelease, handle);
        CUresult r = CU_CALL(cuMemRelease, handle);
        if (r == CUDA_SUCCESS) hk_account_spill(dev, bytes, false);
        settle(HK_MAP_SPILL_HANDLE, handle, dev, bytes, r);
        return r;
    }
    CUresult r = CU_CALL(cuMemRelease, handle);
    settle(HK_MAP_HANDLE, handle, dev, bytes, r);
    return r;
}

/* CUDA arrays: the size is estimated from the descriptor (elements x channels x bytes). */
static uint64_t format_bytes(CUarray_format f) {
    switch ((int)f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF:
        return 2;
    default: return 4;
    }
}
static uint64_t dim(size_t v) { return v ? v : 1; }

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *d) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!pHandle || !d || dev < 0) return CU_CALL(cuArrayCreate_v2, pHandle, d);
    uint64_t bytes = dim(d->Width) * dim(d->Height) * format_bytes(d->Format) * dim(d->NumChannels);
    RESERVE_OR_OOM(dev, bytes);
    CUresult r = CU_CALL(cuArrayCreate_v2, pHandle, d);
    return finish(r, HK_MAP_DPTR, (uintptr_t)*pHandle, dev, bytes, undo_array);
}

static uint64_t array3d_bytes(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned levels) {
    uint64_t total = 0, w = dim(d->Width), h = dim(d->Height), z = dim(d->Depth);
    for (unsigned l = 0; l < (levels ? levels : 1); l++) {
        total += w * h * z * format_bytes(d->Format) * dim(d->NumChannels);
        w = w > 1 ? w / 2 : 1;
        h = h > 1 ? h / 2 : 1;
        z = z > 1 ? z / 2 : 1;
    }
    return total;
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!pHandle || !d || dev < 0) return CU_CALL(cuArray3DCreate_v2, pHandle, d);
    uint64_t bytes = array3d_bytes(d, 1);
    RESERVE_OR_OOM(dev, bytes);
    CUresult r = CU_CALL(cuArray3DCreate_v2, pHandle, d);
    return finish(r, HK_MAP_DPTR, (uintptr_t)*pHandle, dev, bytes, undo_array);
}

CUresult cuArrayDestroy(CUarray hArray) {
    hk_ensure_cuda();
    int dev;
    uint64_t bytes, key = (uintptr_t)hArray;
    if (!hk_map_take(HK_MAP_DPTR, key, &dev, &bytes)) return CU_CALL(cuArrayDestroy, hArray);
    CUresult r = CU_CALL(cuArrayDestroy, hArray);
    settle(HK_MAP_DPTR, key, dev, bytes, r);
    return r;
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                unsigned int numMipmapLevels) {
    hk_ensure_cuda();
    int dev = cur_dev();
    if (!pHandle || !d || dev < 0)
        return CU_CALL(cuMipmappedArrayCreate, pHandle, d, numMipmapLevels);
    uint64_t bytes = array3d_bytes(d, numMipmapLevels);
    RESERVE_OR_OOM(dev, bytes);
    CUresult r = CU_CALL(cuMipmappedArrayCreate, pHandle, d, numMipmapLevels);
    return finish(r, HK_MAP_DPTR, (uintptr_t)*pHandle, dev, bytes, undo_mipmap);
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray h) {
    hk_ensure_cuda();
    int dev;
    uint64_t bytes, key = (uintptr_t)h;
    if (!hk_map_take(HK_MAP_DPTR, key, &dev, &bytes)) return CU_CALL(cuMipmappedArrayDestroy, h);
    CUresult r = CU_CALL(cuMipmappedArrayDestroy, h);
    settle(HK_MAP_DPTR, key, dev, bytes, r);
    return r;
}
