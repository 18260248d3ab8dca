/* Memory queries under a limit L on device 0 and none on device 1: cuMemGetInfo,
 * cuDeviceTotalMem and nvmlDeviceGetMemoryInfo (v1 and v2) show total L and the container's
 * usage; after the node monitor lowers the limit below the usage, free is 0, never wrapped. */
#include "t_common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    uint64_t L = expect_limit();
    use_device(0);
    CUdeviceptr a, b;
    CU_OK(cuMemAlloc_v2(&a, 300 * MIB));
    CU_OK(cuMemAlloc_v2(&b, 200 * MIB));
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    size_t tm0, tm1;
    CU_OK(cuDeviceTotalMem_v2(&tm0, 0));
    CU_OK(cuDeviceTotalMem_v2(&tm1, 1));
    CHECK(nvmlInit_v2() == NVML_SUCCESS, "nvmlInit");
    nvmlDevice_t d0, d1;
    CHECK(nvmlDeviceGetHandleByIndex_v2(0, &d0) == NVML_SUCCESS, "handle");
    CHECK(nvmlDeviceGetHandleByIndex_v2(1, &d1) == NVML_SUCCESS, "handle");
    nvmlMemory_t m;
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    CHECK(nvmlDeviceGetMemoryInfo(d0, &m) == NVML_SUCCESS, "nvml v1");
    CHECK(nvmlDeviceGetMemoryInfo_v2(d0, &m2) == NVML_SUCCESS, "nvml v2");
    uint64_t phys = 16384 * MIB, used = 500 * MIB;
    uint64_t want_t = L ? L : phys;
    CHECK(t == want_t && f == want_t - used, "cuMemGetInfo %zu/%zu", f, t);
    CHECK(tm0 == want_t && tm1 == phys, "cuDeviceTotalMem %zu %zu", tm0, tm1);
    CHECK(m.total == want_t && m.used == used && m.free == want_t - used, "nvml v1 %llu/%llu",
          m.used, m.total);
    CHECK(m2.total == want_t && m2.used == used && m2.free == want_t - used, "nvml v2");
    nvmlMemory_t n1;
    CHECK(nvmlDeviceGetMemoryInfo(d1, &n1) == NVML_SUCCESS && n1.total == phys, "device 1 unlimited");
    if (L) {
        /* The node monitor lowers the limit below current usage (region layout: hook/README). */
        int fd = open(getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE"), O_RDWR);
        CHECK(fd >= 0, "open region");
        uint8_t *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(r != MAP_FAILED, "mmap");
        uint64_t low = 256 * MIB;
        memcpy(r + 256 + 0, &low, 8); /* devices[0].limit_bytes */
        CU_OK(cuMemGetInfo_v2(&f, &t));
        CHECK(f == 0 && t == low, "over the lowered limit: free %zu total %zu", f, t);
        CHECK(nvmlDeviceGetMemoryInfo(d0, &m) == NVML_SUCCESS, "nvml");
        CHECK(m.free == 0 && m.used == low && m.total == low, "nvml free %llu (wrapped?)", m.free);
        CUdeviceptr c;
        CHECK(cuMemAlloc_v2(&c, MIB) == CUDA_ERROR_OUT_OF_MEMORY, "allocation above lowered limit");
        munmap(r, 4096);
        close(fd);
    }
    CU_OK(cuMemFree_v2(a));
    CU_OK(cuMemFree_v2(b));
    printf("ok\n");
    return 0;
}
