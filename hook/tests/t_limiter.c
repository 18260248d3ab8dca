/* SM limiter accuracy on the simulated GPU: t_limiter PATH SECONDS
 * PATH: launch | launch_ptsz | ex | coop | graph. Launches 2 ms kernels (KERNEL_US) back to back,
 * at most 8 in flight, and prints the GPU's busy share over the steady-state window, measured in
 * simulated GPU time (OWN_ONLY=1: this process's kernels only). With EXPECT_UTIL=P it must be
 * within TOL (default 3) points of P. */
#include "t_common.h"

#include <math.h>
#include <unistd.h>

typedef __typeof__(&cuGetProcAddress_v2) gpa_t;

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: t_limiter PATH SECONDS");
    const char *path = argv[1];
    double secs = atof(argv[2]);
    use_device(0);
    uint64_t dur = env_u64("KERNEL_US", 2000) * 1000;
    void *params[1] = {&dur};
    __typeof__(&cuLaunchKernel) launch_ptsz = NULL;
    gpa_t gpa = (gpa_t)dlsym(RTLD_DEFAULT, "cuGetProcAddress_v2");
    CUdriverProcAddressQueryResult st;
    CU_OK(gpa("cuLaunchKernel", (void **)&launch_ptsz, 12000,
              CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
    CUgraph g;
    CUgraphExec ge;
    CU_OK(cuGraphCreate(&g, 0));
    fake_graph_set_duration(g, dur);
    CU_OK(cuGraphInstantiateWithFlags(&ge, g, 0));
    CUlaunchConfig cfg = {.gridDimX = 1000, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 128,
                          .blockDimY = 1, .blockDimZ = 1};
    CUevent ev[8];
    for (int i = 0; i < 8; i++) CU_OK(cuEventCreate(&ev[i], 0));
    uint64_t t0 = fake_gpu_now(), warm = t0 + 300000000ull, t1 = t0 + (uint64_t)(secs * 1e9);
    CUfunction f = (CUfunction)(uintptr_t)0x1;
    for (uint64_t n = 0; fake_gpu_now() < t1; n++) {
        if (n >= 8) CU_OK(cuEventSynchronize(ev[n % 8])); /* the app keeps <= 8 in flight */
        if (!strcmp(path, "launch")) CU_OK(cuLaunchKernel(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
        else if (!strcmp(path, "launch_ptsz")) CU_OK(launch_ptsz(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
        else if (!strcmp(path, "ex")) CU_OK(cuLaunchKernelEx(&cfg, f, params, NULL));
        else if (!strcmp(path, "coop")) CU_OK(cuLaunchCooperativeKernel(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params));
        else if (!strcmp(path, "graph")) CU_OK(cuGraphLaunch(ge, NULL));
        else CHECK(0, "unknown path %s", path);
        CU_OK(cuEventRecord(ev[n % 8], NULL));
    }
    uint64_t end = fake_gpu_now();
    int pid = getenv("OWN_ONLY") ? (int)getpid() : 0; /* this process's share of the GPU */
    double util = 100.0 * (double)fake_gpu_busy_ns(0, warm, end, pid) / (double)(end - warm);
    printf("util_pct=%.2f\n", util);
    /* NVML's utilisation (last second, from the simulated activity) agrees with it. */
    nvmlDevice_t nd;
    nvmlUtilization_t nu;
    CHECK(nvmlInit_v2() == NVML_SUCCESS && nvmlDeviceGetHandleByIndex_v2(0, &nd) == NVML_SUCCESS,
          "nvml");
    CHECK(nvmlDeviceGetUtilizationRates(nd, &nu) == NVML_SUCCESS, "nvml utilisation");
    if (!pid) CHECK(fabs((double)nu.gpu - util) <= 6, "NVML says %u%%, measured %.1f%%", nu.gpu, util);
    CU_OK(cuCtxSynchronize());
    const char *want = getenv("EXPECT_UTIL");
    if (want) {
        double tol = getenv("TOL") ? atof(getenv("TOL")) : 3.0;
        CHECK(fabs(util - atof(want)) <= tol, "utilisation %.2f%%, target %s%%", util, want);
    }
    printf("ok\n");
    return 0;
}
