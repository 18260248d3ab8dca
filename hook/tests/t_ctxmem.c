/* Memory the driver holds beyond allocations (FAKE_GPU_CTX_MIB per context, FAKE_GPU_MODULE_MIB
 * at the first launch) counts against the limit L:
 *   t_ctxmem alloc   one process: (launch, then) 64 MiB units until refused
 *   t_ctxmem procs   N processes (PROCS, default 2) each with its context, allocating in turn
 * With the hook (EXPECT_LIMIT_MIB=L): the device never holds more than L for the container, and
 * no fewer units are granted than fit beside the contexts and modules (EXPECT_EXTRA_MIB in all);
 * cuMemGetInfo shows that usage. Without it (NOMINAL_MIB=L): granting floor(L / 64 MiB) units,
 * as a hook blind to contexts does, puts more than L on the device. */
#include "t_procs.h"

#define UNIT (64 * MIB)

uint64_t fake_gpu_mem_used(int dev);

static void kernel(void) {
    uint64_t ns = 1000;
    void *params[1] = {&ns};
    CU_OK(cuLaunchKernel((CUfunction)(uintptr_t)1, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
    CU_OK(cuCtxSynchronize());
}

/* Units of 64 MiB until the first refusal (at most `cap`); returns how many were granted. */
static uint64_t fill(uint64_t cap) {
    uint64_t n = 0;
    CUdeviceptr p;
    while (n < cap) {
        CUresult r = cuMemAlloc_v2(&p, UNIT);
        if (r == CUDA_ERROR_OUT_OF_MEMORY) break;
        CHECK(r == CUDA_SUCCESS, "cuMemAlloc -> %d", (int)r);
        n++;
    }
    return n;
}

static void one(uint64_t L, uint64_t extra) {
    use_device(0);
    if (env_u64("FAKE_GPU_MODULE_MIB", 0)) kernel();
    if (!L) {
        uint64_t nominal = env_u64("NOMINAL_MIB", 1024) * MIB;
        uint64_t n = fill(nominal / UNIT);
        uint64_t real = fake_gpu_mem_used(0);
        printf("granted=%llu real_mib=%llu\n", (unsigned long long)n,
               (unsigned long long)(real / MIB));
        CHECK(real > nominal, "without the hook the device should hold more than %llu MiB",
              (unsigned long long)(nominal / MIB));
        return;
    }
    uint64_t n = fill(1000);
    uint64_t real = fake_gpu_mem_used(0);
    printf("granted=%llu real_mib=%llu\n", (unsigned long long)n, (unsigned long long)(real / MIB));
    CHECK(real <= L, "the device holds %llu MiB for a container limited to %llu MiB",
          (unsigned long long)(real / MIB), (unsigned long long)(L / MIB));
    CHECK(n >= (L - extra) / UNIT, "granted %llu units, %llu fit beside %llu MiB of contexts",
          (unsigned long long)n, (unsigned long long)((L - extra) / UNIT),
          (unsigned long long)(extra / MIB));
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(t == L && t - f == real, "cuMemGetInfo used %zu, the device holds %llu", t - f,
          (unsigned long long)real);
}

static void procs(uint64_t L, uint64_t extra) {
    int n = (int)env_u64("PROCS", 2);
    CHECK(n > 0 && n <= 16, "PROCS");
    struct shared *s = shared_new((unsigned)n);
    pid_t pids[16];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0, "fork");
        if (pids[i] == 0) {
            use_device(0);
            pthread_barrier_wait(&s->bar); /* every context exists before anyone allocates */
            s->val[i] = fill(1000);
            pthread_barrier_wait(&s->bar); /* hold it until everyone is done */
            s->ok[i] = 1;
            _exit(0);
        }
    }
    uint64_t granted = 0;
    wait_all(pids, n);
    for (int i = 0; i < n; i++) granted += s->val[i];
    /* The fake driver keeps a dead process's memory: what the children held is still there. */
    uint64_t real = fake_gpu_mem_used(0);
    printf("granted=%llu real_mib=%llu\n", (unsigned long long)granted,
           (unsigned long long)(real / MIB));
    CHECK(real <= L, "%d processes: the device holds %llu MiB for a container limited to %llu MiB",
          n, (unsigned long long)(real / MIB), (unsigned long long)(L / MIB));
    CHECK(granted >= (L - extra) / UNIT, "granted %llu units, %llu fit",
          (unsigned long long)granted, (unsigned long long)((L - extra) / UNIT));
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: t_ctxmem alloc|procs");
    uint64_t L = expect_limit(), extra = env_u64("EXPECT_EXTRA_MIB", 0) * MIB;
    if (!strcmp(argv[1], "alloc")) one(L, extra);
    else if (!strcmp(argv[1], "procs")) procs(L, extra);
    else CHECK(0, "unknown mode %s", argv[1]);
    printf("ok\n");
    return 0;
}
