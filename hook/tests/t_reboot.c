/* A region left over from a previous boot (e.g. a host directory that outlived a reboot): its
 * lock and slots are held by threads the current kernel never saw die, so robust-mutex recovery
 * cannot apply. The hook must notice the other boot id and start afresh instead of hanging on
 * the lock or counting the ghosts' 900 MiB. */
#include "t_common.h"
#include "region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    uint64_t L = expect_limit();
    CHECK(L == 1024 * MIB, "run with the hook and a 1024 MiB limit");
    const char *path = getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    CHECK(fd >= 0 && ftruncate(fd, HR_REGION_SIZE) == 0, "create %s", path);
    uint8_t *r = mmap(NULL, HR_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(r != MAP_FAILED, "mmap");
    struct hr_header *h = (struct hr_header *)r;
    struct hr_device *d = (struct hr_device *)(r + HR_DEVICES_OFFSET);
    struct hr_slot *s = (struct hr_slot *)(r + HR_SLOTS_OFFSET);
    h->version = HR_VERSION;
    h->region_size = HR_REGION_SIZE;
    snprintf(h->boot_id, sizeof h->boot_id, "00000000-0000-0000-0000-000000000000");
    uint32_t ghost = 4242; /* owner TIDs from the previous boot: no OWNER_DIED bit */
    memcpy(h->lock.pad, &ghost, 4);
    memcpy(s[0].anchor.pad, &ghost, 4);
    atomic_store(&s[0].state, HR_SLOT_ACTIVE);
    atomic_store(&s[0].used[0], 900 * MIB);
    atomic_store(&h->slot_hw, 1);
    d[0].limit_bytes = L;
    atomic_store(&d[0].used_bytes, 900 * MIB);
    __atomic_store_n(&h->magic, HR_MAGIC, __ATOMIC_RELEASE);
    munmap(r, HR_REGION_SIZE);
    close(fd);

    use_device(0);
    CUdeviceptr p;
    CU_OK(cuMemAlloc_v2(&p, 512 * MIB)); /* would hang on the ghost's lock, or be refused */
    size_t f, t;
    CU_OK(cuMemGetInfo_v2(&f, &t));
    CHECK(t == L && f == L - 512 * MIB, "free %zu of %zu", f, t);
    CU_OK(cuMemFree_v2(p));
    printf("ok\n");
    return 0;
}
