/* Lazy, once-per-process initialisation: configuration, the shared region, the real libraries.
 * Nothing runs at load time (every process of the container loads us, shells included); the
 * first hooked CUDA or NVML call pays for it. A forked child re-registers on its next call. */
#include "hook.h"
#include "region.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HK_LIMITS_FILE "/etc/hami/vgpu-limits.conf"

atomic_int hk_cuda_ready;
atomic_int hk_nvml_ready;
bool hk_acct_on;

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static int common_done, cuda_done, nvml_done, register_tried;

static void after_fork_child(void) {
    pthread_mutex_init(&init_mu, NULL);
    register_tried = 0;
    hr_after_fork_child();
    hk_map_reset_after_fork();
    hk_reconcile_after_fork();
    atomic_store(&hk_cuda_ready, 0);
    atomic_store(&hk_nvml_ready, 0);
}

static void common_init_locked(void) {
    if (!common_done) {
        /* The mounted file wins; HAMI_VGPU_LIMITS_FILE only names one where none is mounted. */
        const char *file = access(HK_LIMITS_FILE, F_OK) == 0 ? HK_LIMITS_FILE
                                                              : getenv("HAMI_VGPU_LIMITS_FILE");
        hk_config_load(&hk_cfg, file);
        hk_acct_on = !hk_cfg.disabled;
        if (hk_acct_on) {
            hr_open(hk_cfg.shm_path);
            /* The region is authoritative (all processes agree; the monitor may change it). */
            hk_cfg.any_mem_limit = hk_cfg.any_sm_limit = false;
            for (int i = 0; i < HK_MAX_DEVICES; i++) {
                hk_cfg.mem_limit[i] = hk_region.dev[i].limit_bytes;
                hk_cfg.sm_limit[i] = hk_region.dev[i].sm_limit_pct;
                hk_cfg.any_mem_limit |= hk_cfg.mem_limit[i] != 0;
                hk_cfg.any_sm_limit |= hk_cfg.sm_limit[i] != 0;
            }
            hk_limiter_setup();
        }
        pthread_atfork(NULL, NULL, after_fork_child);
        HK_INFO("initialised: region %s, limits from %s", hk_cfg.shm_path,
                hk_cfg.from_file ? "file" : "environment");
        common_done = 1;
    }
    if (hk_acct_on && hk_my_slot < 0 && !register_tried) {
        register_tried = 1;
        hr_register();
    }
}

static void *open_lib(const char *soname) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
    return h ? h : dlopen(soname, RTLD_NOW | RTLD_NODELETE);
}

static void load_table(void *lib, const struct hk_entry *tab, void **real, int n) {
    char alt[128];
    for (int i = 0; i < n; i++) {
        void *p = lib ? hk_real_dlsym(lib, tab[i].name) : NULL;
        if (!p && lib) { /* e.g. cuEventElapsedTime is cuEventElapsedTime_v2 in newer drivers */
            snprintf(alt, sizeof alt, "%s_v2", tab[i].name);
            p = hk_real_dlsym(lib, alt);
        }
        real[i] = p;
    }
}

void hk_init_cuda_slow(void) {
    pthread_mutex_lock(&init_mu);
    common_init_locked();
    if (!cuda_done) {
        void *lib = open_lib("libcuda.so.1");
        if (!lib) HK_ERR("libcuda.so.1 not found: %s", dlerror());
        load_table(lib, hk_cu_entries, hk_cu_real, CU_FN_COUNT);
        cuda_done = 1;
    }
    atomic_store_explicit(&hk_cuda_ready, 1, memory_order_release);
    pthread_mutex_unlock(&init_mu);
}

void hk_init_nvml_slow(void) {
    pthread_mutex_lock(&init_mu);
    common_init_locked();
    if (!nvml_done) {
        void *lib = open_lib("libnvidia-ml.so.1");
        if (!lib) HK_WARN("libnvidia-ml.so.1 not found: %s", dlerror());
        load_table(lib, hk_nv_entries, hk_nv_real, NV_FN_COUNT);
        nvml_done = 1;
    }
    atomic_store_explicit(&hk_nvml_ready, 1, memory_order_release);
    pthread_mutex_unlock(&init_mu);
}
