/* The simulated GPU shared by the fake libcuda.so.1 and libnvidia-ml.so.1: a state file mapped by
 * every process (FAKE_GPU_STATE, default /dev/shm/hami-fakegpu-<uid>) holding, per device, a
 * serial work queue (a kernel occupies the whole GPU for its duration), a log of busy intervals
 * for utilisation, and the physical memory in use, in all and per process (what NVML lists).
 * Knobs: FAKE_GPU_COUNT (2), FAKE_GPU_SMS (108), FAKE_GPU_MEM_MIB (16384), and as a container
 * sees its node's devices: FAKE_GPU_VISIBLE, a comma list of the state's device indices that this
 * process sees as devices 0, 1, ... (default: all); FAKE_GPU_UUIDS (comma list, by state index;
 * default GPU-fake-<i>) and FAKE_GPU_NAME (NVML). What a real driver holds beyond allocations:
 * FAKE_GPU_CTX_MIB (each context, 0), FAKE_GPU_MODULE_MIB (loaded at a process's first launch on
 * a device, as CUDA's lazy loading does, 0); FAKE_GPU_PID_OFFSET: NVML reports PID + offset, as a
 * driver outside the container's PID namespace does (0). */
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

#define FG_PROCS 256
struct fg_proc {             /* a process's device memory, as NVML lists it */
    _Atomic int64_t pid;     /* 0 free; a dead PID's entry is reused */
    _Atomic uint64_t used[FG_MAX_DEV];
    _Atomic uint32_t contexts[FG_MAX_DEV]; /* NVML lists a process with a context there */
};

struct fg_state {
    struct fg_dev dev[FG_MAX_DEV];
    struct fg_proc procs[FG_PROCS];
};

struct fg_conf {
    int count; /* devices this process sees */
    int sms;
    uint64_t mem_total;
    int phys[FG_MAX_DEV]; /* device i of this process is the state's device phys[i] */
    uint64_t ctx_bytes, module_bytes;
    int64_t pid_offset;
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
/* This process's entry in the state's process table (claimed on first use), or -1 when full. */
int fg_proc_self(void);
/* Adds (or with a negative delta, removes) device memory of process entry p on dev. */
void fg_proc_add(int p, int dev, int64_t delta);
/* Device memory held by the driver for contexts and modules: charged to the device and this
 * process (never freed before the process exits, as a real context lives until then). */
void fg_charge_extra(int dev, uint64_t bytes);
/* A context of this process on dev: listed by NVML from now on, its memory charged. */
void fg_new_context(int dev);
/* This process's PID, cached (reset in a forked child). */
int fg_pid(void);
#endif
