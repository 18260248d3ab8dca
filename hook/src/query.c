/* Memory queries show the limit as the total and the container's usage as used; free is
 * clamped at zero and never exceeds what the device really has free (no wrap-around). With
 * CUDA_OVERSUBSCRIBE the limit may exceed the device (host memory backs the rest): the total is
 * the limit and free is what is left under it. */
#include "hook.h"
#include "region.h"

static inline uint64_t limit_of(int dev) {
    return hk_acct_on && hk_dev_ok(dev) ? hk_region.dev[dev].limit_bytes : 0;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
    hk_ensure_cuda();
    CUresult r = CU_CALL(cuMemGetInfo_v2, free, total);
    if (r != CUDA_SUCCESS || !hk_cfg.any_mem_limit || !free || !total) return r;
    CUdevice d;
    if (CU_CALL(cuCtxGetDevice, &d) != CUDA_SUCCESS) return r;
    uint64_t limit = limit_of(d);
    if (!limit) return r;
    uint64_t used = hk_usage(d);
    uint64_t t = limit < *total || hk_cfg.oversubscribe ? limit : *total;
    uint64_t f = used >= t ? 0 : t - used;
    *total = t;
    *free = f < *free || hk_cfg.oversubscribe ? f : *free;
    return r;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    hk_ensure_cuda();
    CUresult r = CU_CALL(cuDeviceTotalMem_v2, bytes, dev);
    if (r != CUDA_SUCCESS || !bytes) return r;
    uint64_t limit = limit_of(dev);
    if (limit && (limit < *bytes || hk_cfg.oversubscribe)) *bytes = limit;
    return r;
}

/* NVML numbers devices its own way; map to the CUDA ordinal the limits are indexed by. */
static int cuda_dev_of(nvmlDevice_t device) {
    unsigned idx;
    if (NV_CALL(nvmlDeviceGetIndex, device, &idx) != NVML_SUCCESS || idx >= HK_MAX_DEVICES)
        return -1;
    return hk_cfg.cuda_of_nvml[idx];
}

static void fake_mem(int dev, unsigned long long *total, unsigned long long *used,
                     unsigned long long *free) {
    uint64_t limit = limit_of(dev);
    if (!limit) return;
    uint64_t u = hk_usage(dev);
    uint64_t t = limit < *total || hk_cfg.oversubscribe ? limit : *total;
    *total = t;
    *used = u < t ? u : t;
    *free = t - *used;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    hk_ensure_nvml();
    nvmlReturn_t r = NV_CALL(nvmlDeviceGetMemoryInfo, device, memory);
    if (r == NVML_SUCCESS && memory && hk_cfg.any_mem_limit)
        fake_mem(cuda_dev_of(device), &memory->total, &memory->used, &memory->free);
    return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    hk_ensure_nvml();
    nvmlReturn_t r = NV_CALL(nvmlDeviceGetMemoryInfo_v2, device, memory);
    if (r == NVML_SUCCESS && memory && hk_cfg.any_mem_limit) {
        int dev = cuda_dev_of(device);
        if (limit_of(dev)) {
            memory->reserved = 0;
            fake_mem(dev, &memory->total, &memory->used, &memory->free);
        }
    }
    return r;
}
