/* A process forked after the hook initialised takes its own slot: the child's allocation is
 * counted for the container while it lives and reclaimed when it exits; the parent's own usage
 * is untouched by either. */
#include "t_procs.h"

int main(void) {
    uint64_t L = expect_limit();
    CHECK(L, "run with the hook and a limit");
    use_device(0);
    CUdeviceptr mine;
    CU_OK(cuMemAlloc_v2(&mine, 100 * MIB));
    struct shared *s = shared_new(2);
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CUdeviceptr p;
        if (cuMemAlloc_v2(&p, 200 * MIB) != CUDA_SUCCESS) _exit(2);
        pthread_barrier_wait(&s->bar);
        pthread_barrier_wait(&s->bar);
        _exit(0); /* exits holding it */
    }
    pthread_barrier_wait(&s->bar);
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(t - f == 300 * MIB, "while the child lives: %zu used", t - f);
    pthread_barrier_wait(&s->bar);
    wait_all(&c, 1);
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(t - f == 100 * MIB, "after the child exits: %zu used", t - f);
    CU_OK(cuMemFree_v2(mine));
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(f == t, "all free");
    printf("ok\n");
    return 0;
}
