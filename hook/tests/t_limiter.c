/* SM limiter accuracy on the simulated GPU: t_limiter PATH SECONDS
 * PATH: launch | launch_ptsz | ex | coop | graph. Launches 2 ms kernels (KERNEL_US, or the
 * lengths of KERNEL_PATTERN in turn: then most launches are not measured) back to back,
 * at most 8 in flight, and prints the GPU's busy share over the steady-state window, measured in
 * simulated GPU time (OWN_ONLY=1: this process's kernels only). With EXPECT_UTIL=P it must be
 * within TOL (default 3) points of P; with EXPECT_MEASURED_MAX=M the hook measured (bracketed
 * with events) at most M% of the launches. */
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
    /* KERNEL_PATTERN: kernel lengths in us, cycled (a step's kernel sequence, e.g. 50,50,50,400) */
    uint64_t pattern[16];
    int plen = 0;
    for (const char *c = getenv("KERNEL_PATTERN"); c && *c && plen < 16;) {
        char *end;
        pattern[plen++] = strtoull(c, &end, 10) * 1000;
        c = *end == ',' ? end + 1 : end;
        if (end == c && *c) break;
    }
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
    /* The application keeps at most WINDOW launches in flight (default 8; small kernels need
     * more, or a late wake-up of this host thread leaves the GPU idle). */
    uint64_t window = env_u64("WINDOW", 8);
    CHECK(window >= 1 && window <= 256, "WINDOW");
    CUevent ev[256];
    for (uint64_t i = 0; i < window; i++) CU_OK(cuEventCreate(&ev[i], 0));
    uint64_t t0 = fake_gpu_now(), warm = t0 + 300000000ull, t1 = t0 + (uint64_t)(secs * 1e9);
    CUfunction f = (CUfunction)(uintptr_t)0x1;
    uint64_t n = 0;
    for (; fake_gpu_now() < t1; n++) {
        if (n >= window) CU_OK(cuEventSynchronize(ev[n % window]));
        if (plen) { /* each length its own kernel, as an application's kernels are */
            dur = pattern[n % (uint64_t)plen];
            f = (CUfunction)(uintptr_t)(1 + n % (uint64_t)plen);
        }
        if (!strcmp(path, "launch")) CU_OK(cuLaunchKernel(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
        else if (!strcmp(path, "launch_ptsz")) CU_OK(launch_ptsz(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
        else if (!strcmp(path, "ex")) CU_OK(cuLaunchKernelEx(&cfg, f, params, NULL));
        else if (!strcmp(path, "coop")) CU_OK(cuLaunchCooperativeKernel(f, 1000, 1, 1, 128, 1, 1, 0, NULL, params));
        else if (!strcmp(path, "graph")) CU_OK(cuGraphLaunch(ge, NULL));
        else CHECK(0, "unknown path %s", path);
        CU_OK(cuEventRecord(ev[n % window], NULL));
    }
    uint64_t end = fake_gpu_now();
    /* The application records one event per launch; the hook two per launch it measures. */
    uint64_t launches = 0;
    int pid = getenv("OWN_ONLY") ? (int)getpid() : 0; /* this process's share of the GPU */
    double util = 100.0 * (double)fake_gpu_busy_ns(0, warm, end, pid) / (double)(end - warm);
    launches = n;
    double measured = 100.0 * (double)(fake_gpu_event_records() - launches) / 2.0 / (double)launches;
    printf("util_pct=%.2f measured_pct=%.1f\n", util, measured);
    const char *most = getenv("EXPECT_MEASURED_MAX");
    if (most) CHECK(measured <= atof(most), "%.1f%% of launches measured, at most %s%% expected",
                    measured, most);
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
