/* Oversubscription on a device of FAKE_GPU_MEM_MIB under a larger limit (EXPECT_LIMIT_MIB):
 *   t_oversub COMMAND...
 * Allocates 256 MiB units until refused, runs COMMAND (the region reader) with PHASE=held,
 * frees them all, runs it again with PHASE=freed. With CUDA_OVERSUBSCRIBE=true every unit under
 * the limit is granted though the device holds less (the rest is backed by host memory and
 * counted as spilled); without it the units stop at the device's size. */
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

int main(int argc, char **argv) {
    CHECK(argc >= 2, "usage: t_oversub COMMAND...");
    use_device(0);
    uint64_t limit = env_u64("EXPECT_LIMIT_MIB", 0) * MIB, device = env_u64("FAKE_GPU_MEM_MIB", 0) * MIB;
    int over = getenv("CUDA_OVERSUBSCRIBE") != NULL;
    CUdeviceptr p[64];
    int n = 0;
    for (; n < 64; n++) {
        CUresult r = cuMemAlloc_v2(&p[n], UNIT);
        if (r == CUDA_ERROR_OUT_OF_MEMORY) break;
        CHECK(r == CUDA_SUCCESS, "cuMemAlloc -> %d", (int)r);
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
    for (int i = 0; i < n; i++) CU_OK(cuMemFree_v2(p[i]));
    CHECK(fake_gpu_mem_used(0) == 0, "memory left on the device after the frees");
    return run(argv + 1, "freed");
}
