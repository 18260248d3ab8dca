/* The node monitor's two controls, written into the region as hami_common.shm.region does:
 *   t_policy switch   policy "default", SM limit 30: util_switch = 0 lets the container run
 *                     unthrottled, util_switch = 1 limits it again;
 *   t_policy block    recent_kernel < 0 holds limited launches until the monitor lifts it. */
#include "t_common.h"
#include "region.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static struct hr_header *hdr;
static uint64_t dur = 2000000;
static void *params[1] = {&dur};
static CUfunction fn = (CUfunction)(uintptr_t)1;

static double run_for(double secs) {
    CUevent ev[8];
    for (int i = 0; i < 8; i++) CU_OK(cuEventCreate(&ev[i], 0));
    uint64_t t0 = fake_gpu_now(), warm = t0 + 200000000ull, t1 = t0 + (uint64_t)(secs * 1e9);
    for (uint64_t n = 0; fake_gpu_now() < t1; n++) {
        if (n >= 8) CU_OK(cuEventSynchronize(ev[n % 8]));
        CU_OK(cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CU_OK(cuEventRecord(ev[n % 8], NULL));
    }
    uint64_t end = fake_gpu_now();
    CU_OK(cuCtxSynchronize());
    return 100.0 * (double)fake_gpu_busy_ns(0, warm, end, 0) / (double)(end - warm);
}

static void *unblock(void *arg) {
    (void)arg;
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    atomic_store(&hdr->recent_kernel, 0);
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: t_policy switch|block");
    use_device(0);
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t)); /* the hook creates the region */
    int fd = open(getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE"), O_RDWR);
    CHECK(fd >= 0, "open region");
    hdr = mmap(NULL, HR_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(hdr != MAP_FAILED, "mmap");
    if (!strcmp(argv[1], "switch")) {
        double on = run_for(1.0);
        atomic_store(&hdr->util_switch, 0);
        double off = run_for(1.0);
        atomic_store(&hdr->util_switch, 1);
        double again = run_for(1.0);
        printf("switch_on=%.1f switch_off=%.1f switch_on_again=%.1f\n", on, off, again);
        CHECK(on < 33 && again < 33, "limited while the switch is on");
        CHECK(off > 90, "unthrottled while the monitor has switched it off");
    } else {
        atomic_store(&hdr->recent_kernel, -1);
        pthread_t th;
        pthread_create(&th, NULL, unblock, NULL);
        uint64_t t0 = fake_gpu_now();
        CU_OK(cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        uint64_t waited = fake_gpu_now() - t0;
        pthread_join(th, NULL);
        printf("blocked_ms=%.0f\n", (double)waited / 1e6);
        CHECK(waited >= 250000000ull, "launch ran while a higher-priority container was busy");
        CHECK(atomic_load(&hdr->recent_kernel) == 2, "launch marks the container active");
    }
    printf("ok\n");
    return 0;
}
