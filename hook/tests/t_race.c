/* Four processes each allocate 300 MiB at the same instant under one 1024 MiB limit, ROUNDS
 * times (default 1000): together they must never be granted more than the limit, and never
 * less than they fit (exactly three succeed). Prints overgrant_rounds=N. Without the hook all
 * four always succeed, which is what the limit is there to stop. */
#include "t_procs.h"

#define WORKERS 4

int main(void) {
    uint64_t L = expect_limit(), rounds = env_u64("ROUNDS", 1000), chunk = 300 * MIB;
    struct shared *s = shared_new(WORKERS + 1);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        CHECK(pids[w] >= 0, "fork");
        if (pids[w] == 0) {
            use_device(0);
            for (uint64_t r = 0; r < rounds; r++) {
                pthread_barrier_wait(&s->bar);
                CUdeviceptr p = 0;
                CUresult res = cuMemAlloc_v2(&p, chunk);
                s->ok[w] = res == CUDA_SUCCESS;
                if (res != CUDA_SUCCESS && res != CUDA_ERROR_OUT_OF_MEMORY) _exit(3);
                pthread_barrier_wait(&s->bar);
                pthread_barrier_wait(&s->bar);
                if (res == CUDA_SUCCESS && cuMemFree_v2(p) != CUDA_SUCCESS) _exit(4);
                pthread_barrier_wait(&s->bar);
            }
            _exit(0);
        }
    }
    uint64_t over = 0, under = 0;
    for (uint64_t r = 0; r < rounds; r++) {
        pthread_barrier_wait(&s->bar);
        pthread_barrier_wait(&s->bar);
        uint64_t granted = 0;
        for (int w = 0; w < WORKERS; w++) granted += s->ok[w] ? chunk : 0;
        uint64_t lim = L ? L : 1024 * MIB;
        over += granted > lim;
        under += L && granted < L / chunk * chunk;
        pthread_barrier_wait(&s->bar);
        pthread_barrier_wait(&s->bar);
    }
    wait_all(pids, WORKERS);
    printf("rounds=%llu overgrant_rounds=%llu undergrant_rounds=%llu\n", (unsigned long long)rounds,
           (unsigned long long)over, (unsigned long long)under);
    if (L) {
        CHECK(over == 0, "granted more than the limit in %llu rounds", (unsigned long long)over);
        CHECK(under == 0, "refused memory that fit in %llu rounds", (unsigned long long)under);
    } else {
        CHECK(over == rounds, "without the hook every round over-grants");
    }
    printf("ok\n");
    return 0;
}
