/* Per-call cost of the hooked entry points on the fake driver, run by bench_hook.py once with
 * libvgpu.so preloaded and once without, alternately. For each operation it prints the best
 * (least disturbed) average over BATCHES batches, in ns: launch_ns, alloc_free_ns (a 1 MiB
 * cuMemAlloc + cuMemFree pair) and meminfo_ns (cuMemGetInfo). */
#include "t_common.h"

#include <time.h>

#define BATCHES 40

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static CUfunction fn = (CUfunction)(uintptr_t)1;
static uint64_t zero_ns = 0;
static void *params[1] = {&zero_ns};

static void op_launch(void) { cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL); }
static void op_alloc_free(void) {
    CUdeviceptr p;
    if (cuMemAlloc_v2(&p, MIB) == CUDA_SUCCESS) cuMemFree_v2(p);
}
static void op_meminfo(void) {
    size_t f, t;
    cuMemGetInfo_v2(&f, &t);
}

static double best(void (*op)(void), unsigned per_batch) {
    double lo = 1e30;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < per_batch; i++) op();
        double avg = (double)(now_ns() - t0) / per_batch;
        if (avg < lo) lo = avg;
    }
    return lo;
}

int main(void) {
    use_device(0);
    for (int i = 0; i < 1000; i++) op_alloc_free(); /* warm caches, region and malloc */
    printf("launch_ns=%.2f\n", best(op_launch, 20000));
    printf("alloc_free_ns=%.2f\n", best(op_alloc_free, 2000));
    printf("meminfo_ns=%.2f\n", best(op_meminfo, 20000));
    return 0;
}
