/* A fake libnvidia-ml.so.1 built from nvml_hooks.def: memory and utilisation come from the
 * simulated GPU (fake_gpu.c) that the fake libcuda drives. */
#define _GNU_SOURCE
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <nvml.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gpu.h"

#define EXPORT __attribute__((visibility("default")))
#define NV_HOOK(name, params, args) EXPORT nvmlReturn_t name params;
#define NV_REAL NV_HOOK
#include "nvml_hooks.def"

static int inited;
static int devs[FG_MAX_DEV];
#define DEV(h) ((int)((int *)(void *)(h) - devs))

static int up(void) { return __atomic_load_n(&inited, __ATOMIC_SEQ_CST) > 0; }
/* Reference counted, as NVML's: every nvmlInit needs its nvmlShutdown. */
nvmlReturn_t nvmlInit_v2(void) { fg_state(); __atomic_add_fetch(&inited, 1, __ATOMIC_SEQ_CST); return NVML_SUCCESS; }
nvmlReturn_t nvmlShutdown(void) {
    if (__atomic_load_n(&inited, __ATOMIC_SEQ_CST) <= 0) return NVML_ERROR_UNINITIALIZED;
    __atomic_sub_fetch(&inited, 1, __ATOMIC_SEQ_CST);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n) {
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    *n = (unsigned)fg_conf.count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d) {
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    if (i >= (unsigned)fg_conf.count || !d) return NVML_ERROR_INVALID_ARGUMENT;
    *d = (nvmlDevice_t)(void *)&devs[i];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus, nvmlDevice_t *d) {
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    unsigned dom, b, dev, fn;
    if (!bus || !d || sscanf(bus, "%x:%x:%x.%x", &dom, &b, &dev, &fn) != 4)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < fg_conf.count; i++) {
        if (fg_conf.phys[i] + 1 == (int)b) {
            *d = (nvmlDevice_t)(void *)&devs[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}
/* Processes with a context on the device, by their PID as the driver sees it. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned *count, nvmlProcessInfo_t *infos) {
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    struct fg_state *st = fg_state();
    int phys = fg_conf.phys[DEV(d)];
    unsigned n = 0;
    for (int i = 0; i < FG_PROCS; i++) {
        struct fg_proc *p = &st->procs[i];
        int64_t pid = atomic_load(&p->pid);
        if (!pid || !atomic_load(&p->contexts[phys]) || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
            continue;
        if (infos && n < *count)
            infos[n] = (nvmlProcessInfo_t){.pid = (unsigned)(pid + fg_conf.pid_offset),
                                           .usedGpuMemory = atomic_load(&p->used[phys]),
                                           .gpuInstanceId = 0xFFFFFFFFu, .computeInstanceId = 0xFFFFFFFFu};
        n++;
    }
    nvmlReturn_t r = n > *count ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
    *count = n;
    return r;
}
nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned *i) { *i = (unsigned)DEV(d); return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t used = atomic_load(&fg_dev(DEV(d))->mem_used);
    m->total = fg_conf.mem_total;
    m->used = used;
    m->free = used > m->total ? 0 : m->total - used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    if (!m || m->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    uint64_t used = atomic_load(&fg_dev(DEV(d))->mem_used);
    m->total = fg_conf.mem_total;
    m->reserved = 0;
    m->used = used;
    m->free = used > m->total ? 0 : m->total - used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    uint64_t now = fg_now(), win = 1000000000ull;
    u->gpu = (unsigned)(fg_busy_between(DEV(d), now - win, now, 0) * 100 / win);
    u->memory = 0;
    return NVML_SUCCESS;
}

/* What a node monitor asks of NVML beyond the hooked list (pynvml's nvmlInit, UUID, name). */
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return nvmlInit_v2(); }
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    if (!uuid || !length) return NVML_ERROR_INVALID_ARGUMENT;
    int phys = fg_conf.phys[DEV(d)];
    const char *list = getenv("FAKE_GPU_UUIDS");
    for (int i = 0; list && *list && i < phys; i++) { /* the phys-th comma-separated entry */
        list = strchr(list, ',');
        if (list) list++;
    }
    int n = 0;
    if (list && *list) {
        const char *end = strchr(list, ',');
        n = snprintf(uuid, length, "%.*s", end ? (int)(end - list) : (int)strlen(list), list);
    } else {
        n = snprintf(uuid, length, "GPU-fake-%d", phys);
    }
    return n >= 0 && (unsigned)n < length ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
}
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    (void)d;
    if (!up()) return NVML_ERROR_UNINITIALIZED;
    if (!name || !length) return NVML_ERROR_INVALID_ARGUMENT;
    const char *v = getenv("FAKE_GPU_NAME");
    int n = snprintf(name, length, "%s", v && *v ? v : "Fake GPU");
    return n >= 0 && (unsigned)n < length ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
}
