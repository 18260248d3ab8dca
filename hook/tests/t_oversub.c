/* Oversubscription on a device of FAKE_GPU_MEM_MIB under a larger limit (EXPECT_LIMIT_MIB):
 *   t_oversub COMMAND...
 * Allocates 256 MiB units until refused, runs COMMAND (the region reader) with PHASE=held,
 * frees them all, runs it again with PHASE=freed. With CUDA_OVERSUBSCRIBE=true every unit under
 * the limit is granted though the device holds less (the rest is backed by host memory and
 * counted as spilled); without it the units stop at the device's size. ROUTE picks the
 * allocation path: alloc (cuMemAlloc, the default), pitch (cuMemAllocPitch), async
 * (cuMemAllocAsync / cuMemFreeAsync), pool (cuMemAllocFromPoolAsync), vmm (cuMemCreate /
 * cuMemRelease). */
#include "t_common.h"

#include <sys/wait.h>
#include <unistd.h>

uint64_t fake_gpu_mem_used(int dev);
#define UNIT (256 * MIB)

static int run(char **argv, const char *phase) {
    fflush(stdout);
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        unsetenv("LD_PRELOAD");
        setenv("PHASE", phase, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c, "waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

enum route { R_ALLOC, R_PITCH, R_ASYNC, R_POOL, R_VMM };
static CUmemoryPool pool;

static CUresult unit_alloc(enum route route, uint64_t *key) {
    CUdeviceptr p = 0;
    CUresult r;
    switch (route) {
    case R_PITCH: {
        size_t pitch = 0;
        r = cuMemAllocPitch_v2(&p, &pitch, MIB - 100, 256, 4); /* pitch 1 MiB: 256 MiB */
        if (r == CUDA_SUCCESS) CHECK(pitch >= MIB - 100 && pitch % 512 == 0, "pitch %zu", pitch);
        break;
    }
    case R_ASYNC: r = cuMemAllocAsync(&p, UNIT, NULL); break;
    case R_POOL: r = cuMemAllocFromPoolAsync(&p, UNIT, pool, NULL); break;
    case R_VMM: {
        CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        CUmemGenericAllocationHandle h = 0;
        r = cuMemCreate(&h, UNIT, &prop, 0);
        *key = h;
        return r;
    }
    default: r = cuMemAlloc_v2(&p, UNIT);
    }
    *key = p;
    return r;
}

static CUresult unit_free(enum route route, uint64_t key) {
    switch (route) {
    case R_ASYNC: case R_POOL: return cuMemFreeAsync((CUdeviceptr)key, NULL);
    case R_VMM: return cuMemRelease(key);
    default: return cuMemFree_v2((CUdeviceptr)key);
    }
}

int main(int argc, char **argv) {
    CHECK(argc >= 2, "usage: t_oversub COMMAND...");
    use_device(0);
    uint64_t limit = env_u64("EXPECT_LIMIT_MIB", 0) * MIB, device = env_u64("FAKE_GPU_MEM_MIB", 0) * MIB;
    int over = getenv("CUDA_OVERSUBSCRIBE") != NULL;
    const char *names[] = {"alloc", "pitch", "async", "pool", "vmm"};
    const char *name = getenv("ROUTE") ? getenv("ROUTE") : "alloc";
    enum route route = R_ALLOC;
    while (route < R_VMM && strcmp(names[route], name) != 0) route++;
    CHECK(strcmp(names[route], name) == 0, "ROUTE=%s is not one of alloc pitch async pool vmm", name);
    if (route == R_POOL) {
        CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        CU_OK(cuMemPoolCreate(&pool, &props));
    }
    uint64_t p[64];
    int n = 0;
    for (; n < 64; n++) {
        CUresult r = unit_alloc(route, &p[n]);
        if (r == CUDA_ERROR_OUT_OF_MEMORY) break;
        CHECK(r == CUDA_SUCCESS, "%s -> %d", name, (int)r);
    }
    uint64_t real = fake_gpu_mem_used(0);
    printf("granted=%d device_mib=%llu\n", n, (unsigned long long)(real / MIB));
    CHECK(real <= device, "the device holds %llu MiB of %llu", (unsigned long long)(real / MIB),
          (unsigned long long)(device / MIB));
    uint64_t want = (over ? limit : device) / UNIT;
    CHECK((uint64_t)n == want, "granted %d units of 256 MiB, expected %llu", n,
          (unsigned long long)want);
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    uint64_t total = over || limit < device ? limit : device; /* the limit, past the device */
    CHECK(t == total && t - f == (uint64_t)n * UNIT, "cuMemGetInfo: %zu of %zu used", t - f, t);
    if (run(argv + 1, "held")) return 1;
    for (int i = 0; i < n; i++) CU_OK(unit_free(route, p[i]));
    CHECK(fake_gpu_mem_used(0) == 0, "memory left on the device after the frees");
    return run(argv + 1, "freed");
}
