/* Processes killed with SIGKILL at random instants while allocating and freeing on every path,
 * and one killed while holding the region lock half-way through a reservation: afterwards the
 * container's usage is exactly zero on the next query, and the whole limit can be allocated at
 * once (nothing leaked, no lock left held). */
#include "t_procs.h"
#include "region.h"

#include <fcntl.h>
#include <time.h>

static void churn(unsigned seed) {
    use_device(0);
    CUdeviceptr live[8] = {0};
    CUmemGenericAllocationHandle vmm[8] = {0};
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    for (;;) {
        unsigned i = (unsigned)rand_r(&seed) % 8, how = (unsigned)rand_r(&seed) % 3;
        size_t sz = ((size_t)rand_r(&seed) % 32 + 1) * MIB;
        if (live[i]) {
            cuMemFree_v2(live[i]);
            live[i] = 0;
        } else if (vmm[i]) {
            cuMemRelease(vmm[i]);
            vmm[i] = 0;
        } else if (how == 0) {
            cuMemAlloc_v2(&live[i], sz);
        } else if (how == 1) {
            if (cuMemAllocAsync(&live[i], sz, NULL) != CUDA_SUCCESS) live[i] = 0;
        } else if (cuMemCreate(&vmm[i], 2 * MIB * (sz / MIB), &prop, 0) != CUDA_SUCCESS) {
            vmm[i] = 0;
        }
    }
}

static void sleep_us(long us) {
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int main(void) {
    uint64_t L = expect_limit(), kills = env_u64("KILLS", 60);
    CHECK(L, "run with the hook and a limit");
    unsigned seed = 12345;
    pid_t pair[2] = {0, 0};
    for (uint64_t k = 0; k < kills; k++) {
        int slot = (int)(k % 2);
        if (pair[slot]) {
            kill(pair[slot], SIGKILL);
            waitpid(pair[slot], NULL, 0);
        }
        pair[slot] = fork();
        CHECK(pair[slot] >= 0, "fork");
        if (pair[slot] == 0) churn((unsigned)k * 7919u + 1);
        sleep_us(rand_r(&seed) % 20000);
    }
    for (int i = 0; i < 2; i++) {
        kill(pair[i], SIGKILL);
        waitpid(pair[i], NULL, 0);
    }
    /* One dies holding the lock, its total bumped but its slot not yet: the next locker must
     * rebuild the totals from the slots, then reclaim the slot. */
    pid_t p = fork();
    if (p == 0) {
        use_device(0);
        CUdeviceptr x;
        CU_OK(cuMemAlloc_v2(&x, 10 * MIB));
        int fd = open(getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE"), O_RDWR);
        struct hr_header *h = mmap(NULL, HR_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        pthread_mutex_lock(&h->lock.m);
        struct hr_device *d0 = (struct hr_device *)((char *)h + HR_DEVICES_OFFSET);
        atomic_fetch_add(&d0->used_bytes, 999 * MIB);
        raise(SIGKILL);
    }
    int st;
    waitpid(p, &st, 0);
    CHECK(WIFSIGNALED(st), "lock holder was killed");
    use_device(0);
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(t == L && f == L, "after %llu kills: %zu of %zu free", (unsigned long long)kills, f, t);
    CUdeviceptr all;
    CU_OK(cuMemAlloc_v2(&all, L));
    CU_OK(cuMemFree_v2(all));
    printf("ok\n");
    return 0;
}
