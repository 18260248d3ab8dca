/* No process-wide side effects beyond the limits: umask and signal dispositions untouched,
 * nothing on stderr (checked by the runner), and no CUDA context created on a device the
 * program did not use (queries without a context stay without one). */
#include "t_common.h"

#include <signal.h>
#include <sys/stat.h>

int main(void) {
    umask(027);
    struct sigaction before[4], after;
    int sigs[4] = {SIGUSR1, SIGUSR2, SIGSEGV, SIGCHLD};
    for (int i = 0; i < 4; i++) sigaction(sigs[i], NULL, &before[i]);
    CU_OK(cuInit(0));
    size_t total;
    CU_OK(cuDeviceTotalMem_v2(&total, 1)); /* hooked, but needs no context */
    CUcontext cur = (CUcontext)0x1;
    CU_OK(cuCtxGetCurrent(&cur));
    CHECK(cur == NULL, "a context appeared on a device the program never used");
    size_t f, t;
    CHECK(cuMemGetInfo_v2(&f, &t) == CUDA_ERROR_INVALID_CONTEXT, "meminfo without a context");
    use_device(0);
    CUdeviceptr p;
    CU_OK(cuMemAlloc_v2(&p, MIB));
    CU_OK(cuMemFree_v2(p));
    CUfunction fn = (CUfunction)(uintptr_t)1;
    uint64_t ns = 1000;
    void *params[1] = {&ns};
    CU_OK(cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
    CU_OK(cuCtxSynchronize());
    mode_t m = umask(0);
    CHECK(m == 027, "umask changed to %o", (unsigned)m);
    for (int i = 0; i < 4; i++) {
        sigaction(sigs[i], NULL, &after);
        CHECK(after.sa_handler == before[i].sa_handler, "handler of signal %d replaced", sigs[i]);
    }
    printf("ok\n");
    return 0;
}
