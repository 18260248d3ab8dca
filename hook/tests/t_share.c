/* Sixteen processes share one region: each holds 50 MiB, every one of them sees the container's
 * total in cuMemGetInfo, and after they exit (without freeing) the parent's next query shows
 * the memory reclaimed. */
#include "t_procs.h"

#define N 16

int main(void) {
    uint64_t L = expect_limit();
    struct shared *s = shared_new(N);
    pid_t pids[N];
    for (int w = 0; w < N; w++) {
        pids[w] = fork();
        CHECK(pids[w] >= 0, "fork");
        if (pids[w] == 0) {
            use_device(0);
            CUdeviceptr p;
            CU_OK(cuMemAlloc_v2(&p, 50 * MIB));
            pthread_barrier_wait(&s->bar);
            size_t f, t;
            CU_OK(cuMemGetInfo_v2(&f, &t));
            s->val[w] = t - f;
            pthread_barrier_wait(&s->bar);
            _exit(0); /* exits holding the memory */
        }
    }
    wait_all(pids, N);
    for (int w = 0; w < N; w++) {
        uint64_t want = L ? N * 50 * MIB : 0;
        if (L) CHECK(s->val[w] == want, "worker %d saw %llu used", w, (unsigned long long)s->val[w]);
    }
    use_device(0);
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    if (L) CHECK(f == t, "after 16 exits: %zu of %zu free", f, t);
    else CHECK(t - f == N * 50 * MIB, "the fake driver alone does not reclaim");
    printf("ok\n");
    return 0;
}
