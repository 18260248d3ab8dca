/* Tables generated from cuda_hooks.def and nvml_hooks.def, and the name lookup used by dlsym
 * and cuGetProcAddress. */
#include "hook.h"

#include <string.h>

const struct hk_entry hk_cu_entries[CU_FN_COUNT] = {
#define CU_HOOK(name, base, ver, ptsz, params, args) {#name, #base, ver, ptsz, true, (void *)name},
#define CU_REAL(name, base, ver, ptsz, params, args) {#name, #base, ver, ptsz, false, NULL},
#include "cuda_hooks.def"
};
const struct hk_entry hk_nv_entries[NV_FN_COUNT] = {
#define NV_HOOK(name, params, args) {#name, #name, 0, 0, true, (void *)name},
#define NV_REAL(name, params, args) {#name, #name, 0, 0, false, NULL},
#include "nvml_hooks.def"
};
void *hk_cu_real[CU_FN_COUNT];
void *hk_nv_real[NV_FN_COUNT];

int hk_hook_index(const char *name, const struct hk_entry *tab, int n) {
    for (int i = 0; i < n; i++)
        if (tab[i].hooked && strcmp(tab[i].name, name) == 0) return i;
    return -1;
}
