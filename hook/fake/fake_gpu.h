/* The simulated GPU shared by the fake libcuda.so.1 and libnvidia-ml.so.1: a state file mapped by
 * every process (FAKE_GPU_STATE, default /dev/shm/hami-fakegpu-<uid>) holding, per device, a
 * serial work queue (a kernel occupies the whole GPU for its duration), a log of busy intervals
 * for utilisation, and the physical memory in use. Knobs: FAKE_GPU_COUNT (2), FAKE_GPU_SMS (108),
 * FAKE_GPU_MEM_MIB (16384), and as a container sees its node's devices: FAKE_GPU_VISIBLE, a comma
 * list of the state's device indices that this process sees as devices 0, 1, ... (default: all);
 * FAKE_GPU_UUIDS (comma list, by state index; default GPU-fake-<i>) and FAKE_GPU_NAME (NVML). */
#ifndef FAKE_GPU_H
#define FAKE_GPU_H
#include <stdatomic.h>
#include <stdint.h>

#define FG_MAX_DEV 8
#define FG_RING 65536

struct fg_dev {
    _Atomic uint32_t lock;
    uint32_t pad;
    _Atomic uint64_t busy_until;
    _Atomic uint64_t mem_used;
    uint64_t head;
    struct {
        uint64_t start, end;
        int64_t pid;
    } ring[FG_RING];
};

struct fg_state {
    struct fg_dev dev[FG_MAX_DEV];
};

struct fg_conf {
    int count; /* devices this process sees */
    int sms;
    uint64_t mem_total;
    int phys[FG_MAX_DEV]; /* device i of this process is the state's device phys[i] */
};

extern struct fg_conf fg_conf;
struct fg_state *fg_state(void);
/* The state of this process's device dev (FAKE_GPU_VISIBLE applied). */
struct fg_dev *fg_dev(int dev);
uint64_t fg_now(void);
/* Queue dur_ns of work on dev; returns the time it completes. */
uint64_t fg_submit(int dev, uint64_t dur_ns);
/* Busy time in [t0, t1]; pid 0 = every process. */
uint64_t fg_busy_between(int dev, uint64_t t0, uint64_t t1, int pid);
void fg_sleep_until(uint64_t t);
#endif
