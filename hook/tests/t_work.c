/* A container's GPU work, for the node monitor's tests and the end-to-end stack: holds memory on
 * every device the process sees and launches kernels on them in turn (paced by the simulated GPU
 * and, preloaded, by the hook's limiter and the node monitor's priority hold) until SIGTERM or
 * WORK_SECONDS. Settings (env): WORK_MIB (per device, default 0), WORK_KERNEL_US (default 1000),
 * WORK_SECONDS (0: until stopped), WORK_REPORT_MS (print "t_ms=T launches=N" that often; 0:
 * quiet). Prints "ready" once the memory is held. */
#include "t_common.h"

#include <signal.h>
#include <time.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(void) {
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    uint64_t mib = env_u64("WORK_MIB", 0), kernel_ns = env_u64("WORK_KERNEL_US", 1000) * 1000;
    uint64_t seconds = env_u64("WORK_SECONDS", 0), report = env_u64("WORK_REPORT_MS", 0);
    int count = 0;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetCount(&count));
    CHECK(count > 0 && count <= 8, "%d devices", count);
    CUcontext ctx[8];
    CUevent ev[8][8];
    for (int d = 0; d < count; d++) {
        ctx[d] = use_device(d);
        for (int i = 0; i < 8; i++) CU_OK(cuEventCreate(&ev[d][i], 0));
        if (mib) {
            CUdeviceptr p;
            CU_OK(cuMemAlloc_v2(&p, mib * MIB));
        }
    }
    printf("ready devices=%d\n", count);
    fflush(stdout);
    void *params[1] = {&kernel_ns};
    CUfunction fn = (CUfunction)(uintptr_t)1;
    uint64_t start = mono_ms(), next = start + report, n = 0;
    while (!stop && (!seconds || mono_ms() - start < seconds * 1000u)) {
        int d = (int)(n % (uint64_t)count);
        uint64_t k = n / (uint64_t)count;
        CU_OK(cuCtxSetCurrent(ctx[d]));
        if (k >= 8) CU_OK(cuEventSynchronize(ev[d][k % 8]));
        CU_OK(cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CU_OK(cuEventRecord(ev[d][k % 8], NULL));
        n++;
        if (report && mono_ms() >= next) {
            printf("t_ms=%llu launches=%llu\n", (unsigned long long)(mono_ms() - start),
                   (unsigned long long)n);
            fflush(stdout);
            next += report;
        }
    }
    printf("done launches=%llu\n", (unsigned long long)n);
    return 0;
}
