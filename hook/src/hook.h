/* Internal interface of libvgpu.so. Everything here is hidden (-fvisibility=hidden); only the
 * names in the two .def lists and dlsym are exported (see exports.map.in). */
#ifndef HAMI_HOOK_H
#define HAMI_HOOK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Raw, unversioned names: cuMemAlloc_v2 means exactly that exported symbol. */
#define __CUDA_API_VERSION_INTERNAL 1
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <cuda.h>
#include <nvml.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HK_EXPORT __attribute__((visibility("default")))
#define HK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HK_MAX_DEVICES 32

/* ---- generated tables ------------------------------------------------------------------- */
#define CU_HOOK(name, base, ver, ptsz, params, args) typedef CUresult (*pfn_##name) params;
#define CU_REAL(name, base, ver, ptsz, params, args) typedef CUresult (*pfn_##name) params;
#include "cuda_hooks.def"
#define NV_HOOK(name, params, args) typedef nvmlReturn_t (*pfn_##name) params;
#define NV_REAL(name, params, args) typedef nvmlReturn_t (*pfn_##name) params;
#include "nvml_hooks.def"

enum hk_cu_index {
#define CU_HOOK(name, base, ver, ptsz, params, args) CUI_##name,
#define CU_REAL(name, base, ver, ptsz, params, args) CUI_##name,
#include "cuda_hooks.def"
    CU_FN_COUNT
};
enum hk_nv_index {
#define NV_HOOK(name, params, args) NVI_##name,
#define NV_REAL(name, params, args) NVI_##name,
#include "nvml_hooks.def"
    NV_FN_COUNT
};

/* Our own definitions of the hooked symbols (prototypes for -Wmissing-declarations and so
 * tables can take their address). */
#define CU_HOOK(name, base, ver, ptsz, params, args) HK_EXPORT CUresult name params;
#include "cuda_hooks.def"
#define NV_HOOK(name, params, args) HK_EXPORT nvmlReturn_t name params;
#include "nvml_hooks.def"

struct hk_entry {
    const char *name;
    const char *base;
    int version;
    int ptsz;
    bool hooked;
    void *hook; /* our definition, NULL for CU_REAL/NV_REAL */
};
extern const struct hk_entry hk_cu_entries[CU_FN_COUNT];
extern const struct hk_entry hk_nv_entries[NV_FN_COUNT];
extern void *hk_cu_real[CU_FN_COUNT];
extern void *hk_nv_real[NV_FN_COUNT];

/* Call the real function; a missing symbol answers the library's own error code. */
#define CU_CALL(name, ...)                                                                       \
    (hk_cu_real[CUI_##name] ? ((pfn_##name)hk_cu_real[CUI_##name])(__VA_ARGS__)                  \
                            : CUDA_ERROR_NOT_FOUND)
#define NV_CALL(name, ...)                                                                       \
    (hk_nv_real[NVI_##name] ? ((pfn_##name)hk_nv_real[NVI_##name])(__VA_ARGS__)                  \
                            : NVML_ERROR_FUNCTION_NOT_FOUND)

/* ---- configuration (config.c) -------------------------------------------------------------- */
enum hk_policy { HK_POLICY_DEFAULT = 0, HK_POLICY_FORCE = 1, HK_POLICY_DISABLE = 2 };
struct hk_config {
    uint64_t mem_limit[HK_MAX_DEVICES]; /* bytes, 0 = unlimited */
    uint32_t sm_limit[HK_MAX_DEVICES];  /* percent, 0 = unlimited */
    int cuda_of_nvml[HK_MAX_DEVICES];   /* NVML index -> CUDA ordinal (CUDA_VISIBLE_DEVICES) */
    char shm_path[512];
    int priority;
    enum hk_policy policy;
    int log_level;
    bool disabled; /* CUDA_DISABLE_CONTROL */
    bool oversubscribe; /* CUDA_OVERSUBSCRIBE: what does not fit on the device goes to host memory */
    bool from_file;
    bool any_mem_limit;
    bool any_sm_limit;
};
extern struct hk_config hk_cfg;
extern bool hk_acct_on; /* false under CUDA_DISABLE_CONTROL */
/* Parse limits from the file at path (if readable) else from the environment. */
void hk_config_load(struct hk_config *cfg, const char *file_path);
/* "1024m", "2g", "512Mi", "123" -> bytes; returns false on garbage. */
bool hk_parse_size(const char *s, uint64_t *out);

/* ---- logging (log.c) ---------------------------------------------------------------------- */
void hk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define HK_ERR(...) hk_log(1, __VA_ARGS__)
#define HK_WARN(...) hk_log(2, __VA_ARGS__)
#define HK_INFO(...) hk_log(3, __VA_ARGS__)

/* ---- init (init.c) ------------------------------------------------------------------------ */
extern atomic_int hk_cuda_ready;
extern atomic_int hk_nvml_ready;
void hk_init_cuda_slow(void);
void hk_init_nvml_slow(void);
static inline void hk_ensure_cuda(void) {
    if (HK_UNLIKELY(!atomic_load_explicit(&hk_cuda_ready, memory_order_acquire)))
        hk_init_cuda_slow();
}
static inline void hk_ensure_nvml(void) {
    if (HK_UNLIKELY(!atomic_load_explicit(&hk_nvml_ready, memory_order_acquire)))
        hk_init_nvml_slow();
}
void *hk_real_dlsym(void *handle, const char *name);
int hk_hook_index(const char *name, const struct hk_entry *tab, int n);

/* ---- accounting (account.c) ---------------------------------------------------------------- */
/* Reserve bytes on CUDA device dev for this process; false when the limit would be exceeded. */
bool hk_reserve(int dev, uint64_t bytes);
void hk_release(int dev, uint64_t bytes);
/* Container usage of dev after reclaiming dead processes. */
uint64_t hk_usage(int dev);
/* The driver says this process holds driver_bytes on dev: what the hook did not grant itself
 * (context, modules, pool slack) is counted as this process's extra. */
void hk_account_driver(int dev, uint64_t driver_bytes);
/* Adds an estimated extra (a context whose driver-side PID is not known). */
void hk_account_overhead(int dev, uint64_t bytes);
/* Bytes of this process's allocations on dev that live in host memory (oversubscription). */
void hk_account_spill(int dev, uint64_t bytes, bool add);

/* ---- reconciliation with the driver (reconcile.c) ------------------------------------------ */
struct hk_ctx_probe {
    int n; /* processes listed before the context was made; -1 = not looked */
    uint64_t used;
    bool locked; /* holds the region's context lock */
    nvmlProcessInfo_t procs[256];
};
void hk_ctx_before(int dev, struct hk_ctx_probe *p);
void hk_ctx_after(int dev, struct hk_ctx_probe *p, CUresult r);
/* Re-reads the driver's usage of dev when stale, or when granting `want` more would come near
 * the limit. */
void hk_reconcile_maybe(int dev, uint64_t want);
void hk_reconcile_after_fork(void);
static inline bool hk_dev_ok(int dev) { return dev >= 0 && dev < HK_MAX_DEVICES; }

/* ---- pointer maps (ptrmap.c): key -> (device, bytes), lock-free ----------------------------- */
/* HK_MAP_SPILL, HK_MAP_SPILL_HANDLE: allocations (pointers, VMM handles) backed by host memory
 * (CUDA_OVERSUBSCRIBE). */
enum hk_map_kind {
    HK_MAP_DPTR = 0,
    HK_MAP_HANDLE = 1,
    HK_MAP_SPILL = 2,
    HK_MAP_SPILL_HANDLE = 3,
    HK_MAP_KINDS = 4
};
bool hk_map_put(enum hk_map_kind kind, uint64_t key, int dev, uint64_t bytes);
bool hk_map_take(enum hk_map_kind kind, uint64_t key, int *dev, uint64_t *bytes);
void hk_map_reset_after_fork(void);

/* ---- limiter (limiter.c) ------------------------------------------------------------------ */
extern bool hk_sm_active; /* some device has an SM limit and the policy does not disable it */
struct lim_ctx;
struct hk_launch {
    struct lim_ctx *e; /* a measured launch: its context's state; NULL otherwise */
    int slot;
};
/* key names the kernel (function and grid, or the graph): its GPU time is remembered. */
void hk_limiter_before(struct hk_launch *l, uint64_t key, CUstream stream, int ptsz);
void hk_limiter_after(struct hk_launch *l, CUstream stream, int ptsz, CUresult launched);
void hk_limiter_setup(void);

#endif
