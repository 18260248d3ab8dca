/* The per-container shared region, layout version 2. Documented in hook/README.md and read by
 * common/src/hami_common/shm/region.py: every offset here is asserted at compile time, keep the
 * three in step. All integers are little-endian host order, all counters are byte counts. */
#ifndef HAMI_REGION_H
#define HAMI_REGION_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#define HR_MAGIC 0x315253494D414855ull /* "UHAMISR1" little-endian: bytes 'U','H','A','M','I','S','R','1' */
#define HR_VERSION 2u
#define HR_DEVICES 32u
#define HR_SLOTS 1024u

enum hr_slot_state { HR_SLOT_FREE = 0, HR_SLOT_ACTIVE = 1 };

typedef union {
    pthread_mutex_t m;
    uint8_t pad[64];
} hr_mutex;

struct hr_header {                  /* 256 bytes at offset 0 */
    uint64_t magic;                 /* 0   HR_MAGIC, written last by the creator */
    uint32_t version;               /* 8   HR_VERSION */
    uint32_t header_size;           /* 12  256 */
    uint64_t region_size;           /* 16  total bytes */
    uint32_t device_count;          /* 24  HR_DEVICES (array length, not GPUs present) */
    uint32_t slot_count;            /* 28  HR_SLOTS */
    uint32_t device_size;           /* 32  sizeof(struct hr_device) */
    uint32_t slot_size;             /* 36  sizeof(struct hr_slot) */
    uint32_t devices_offset;        /* 40 */
    uint32_t slots_offset;          /* 44 */
    int32_t priority;               /* 48  CUDA_TASK_PRIORITY (0 high, 1 low) */
    _Atomic int32_t util_switch;    /* 52  1 = enforce SM limit under policy "default" (monitor) */
    _Atomic int32_t recent_kernel;  /* 56  hook sets 2 on limited launches; < 0 = blocked */
    _Atomic uint32_t slot_hw;       /* 60  slots [0, slot_hw) may be in use */
    _Atomic uint64_t last_kernel_s; /* 64  CLOCK_REALTIME seconds of the last limited launch */
    _Atomic uint64_t generation;    /* 72  bumped on every process registration */
    _Atomic uint64_t reclaimed;     /* 80  number of dead processes reclaimed */
    char boot_id[40];               /* 88  /proc/sys/kernel/random/boot_id of the formatter */
    hr_mutex lock;                  /* 128 robust, process-shared: guards reservations */
    hr_mutex ctx_lock;              /* 192 robust: one context creation at a time (reconcile.c) */
};

struct hr_device {                  /* 64 bytes each, HR_DEVICES of them at devices_offset */
    uint64_t limit_bytes;           /* 0   0 = unlimited */
    _Atomic uint64_t used_bytes;    /* 8   sum of the slots' used[] for this device */
    uint32_t sm_limit_pct;          /* 16  0 = unlimited */
    uint32_t reserved0;             /* 20 */
    _Atomic uint64_t vt_ns;         /* 24  limiter virtual time (CLOCK_MONOTONIC ns) */
    _Atomic uint64_t busy_ns;       /* 32  GPU time charged to the container by the limiter */
    _Atomic uint64_t peak_bytes;    /* 40  high-water mark of used_bytes */
    _Atomic uint64_t ctx_bytes;     /* 48  of used_bytes: what the driver holds for the processes */
                                    /*     beyond their allocations (contexts, modules, pools) */
    _Atomic uint64_t spilled_bytes; /* 56  of used_bytes: allocations backed by host memory */
};

struct hr_slot {                    /* 896 bytes each, HR_SLOTS of them at slots_offset */
    hr_mutex anchor;                /* 0   held for life by the process's anchor thread; its */
                                    /*     first word gets FUTEX_OWNER_DIED when it dies */
    _Atomic int32_t pid;            /* 64  PID in the container's namespace */
    _Atomic uint32_t state;         /* 68  enum hr_slot_state */
    uint64_t generation;            /* 72  header.generation at registration */
    _Atomic int32_t host_pid;       /* 80  PID the driver knows the process by (0 = not known) */
    uint8_t reserved[44];           /* 84 */
    _Atomic uint64_t used[HR_DEVICES];    /* 128 bytes this process holds per device (all of it) */
    _Atomic uint64_t ctx[HR_DEVICES];     /* 384 of used: driver memory beyond its allocations */
    _Atomic uint64_t spilled[HR_DEVICES]; /* 640 of used: its allocations backed by host memory */
};

#define HR_DEVICES_OFFSET 256u
#define HR_SLOTS_OFFSET (HR_DEVICES_OFFSET + HR_DEVICES * 64u)
#define HR_SLOT_SIZE 896u
#define HR_REGION_SIZE (HR_SLOTS_OFFSET + HR_SLOTS * HR_SLOT_SIZE)
#define HR_FUTEX_OWNER_DIED 0x40000000u

_Static_assert(sizeof(struct hr_header) == 256, "header size");
_Static_assert(offsetof(struct hr_header, lock) == 128, "lock offset");
_Static_assert(offsetof(struct hr_header, last_kernel_s) == 64, "last_kernel offset");
_Static_assert(sizeof(struct hr_device) == 64, "device size");
_Static_assert(offsetof(struct hr_device, vt_ns) == 24, "vt offset");
_Static_assert(offsetof(struct hr_device, ctx_bytes) == 48, "ctx offset");
_Static_assert(offsetof(struct hr_device, spilled_bytes) == 56, "spilled offset");
_Static_assert(sizeof(struct hr_slot) == HR_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct hr_slot, host_pid) == 80, "host_pid offset");
_Static_assert(offsetof(struct hr_slot, used) == 128, "used offset");
_Static_assert(offsetof(struct hr_slot, ctx) == 384, "ctx offset");
_Static_assert(offsetof(struct hr_slot, spilled) == 640, "spilled offset");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits");

struct hr_region {
    struct hr_header *hdr;
    struct hr_device *dev;
    struct hr_slot *slot;
};

/* region.c */
extern struct hr_region hk_region;
extern int hk_my_slot; /* -1 until registered */
int hr_open(const char *path);        /* map (creating if needed) or fall back to private memory */
int hr_register(void);                /* claim a slot and start its anchor thread */
void hr_lock(void);                   /* robust lock; repairs the totals after a dead holder */
void hr_unlock(void);
void hr_ctx_lock(void);               /* serialises context creations of the container */
void hr_ctx_unlock(void);
void hr_reap_dead(void);              /* reclaim slots whose anchor owner died (cheap when none) */
void hr_after_fork_child(void);

#endif
