/* The dlsym override: programs that dlopen libcuda/libnvidia-ml and dlsym an entry point get our
 * hook for exactly the names we intercept, and the real answer for everything else.
 *
 * Compiled with -O2 and never with sanitizers: lookups that are not ours (RTLD_NEXT included)
 * end in a tail call, so glibc sees the caller's return address and RTLD_NEXT keeps meaning
 * "after the caller", not "after libvgpu" (HAMi-core #315). */
#include "hook.h"

#include <dlfcn.h>
#include <string.h>

typedef void *(*dlsym_fn)(void *, const char *);
static dlsym_fn real_dlsym_p;

static dlsym_fn load_real(void) {
    dlsym_fn p = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (!p) p = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (!p) p = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.17");
    __atomic_store_n(&real_dlsym_p, p, __ATOMIC_RELEASE);
    return p;
}

void *hk_real_dlsym(void *handle, const char *name) {
    dlsym_fn p = __atomic_load_n(&real_dlsym_p, __ATOMIC_ACQUIRE);
    if (HK_UNLIKELY(!p)) p = load_real();
    return p ? p(handle, name) : NULL;
}

/* Exact names only: a quick prefix filter, then the generated lists. */
static void *our_hook(const char *name) {
    if (name[0] == 'c' && name[1] == 'u') {
        int i = hk_hook_index(name, hk_cu_entries, CU_FN_COUNT);
        return i >= 0 ? hk_cu_entries[i].hook : NULL;
    }
    if (name[0] == 'n' && name[1] == 'v' && name[2] == 'm' && name[3] == 'l') {
        int i = hk_hook_index(name, hk_nv_entries, NV_FN_COUNT);
        return i >= 0 ? hk_nv_entries[i].hook : NULL;
    }
    return NULL;
}

HK_EXPORT void *dlsym(void *handle, const char *name) {
    dlsym_fn real = __atomic_load_n(&real_dlsym_p, __ATOMIC_ACQUIRE);
    if (HK_UNLIKELY(!real)) real = load_real();
    if (handle == RTLD_NEXT) return real(handle, name); /* tail call */
    void *hook = our_hook(name);
    if (!hook) return real(handle, name); /* tail call */
    /* Only hand out the hook where the real lookup would have found the symbol. */
    return real(handle, name) ? hook : NULL;
}
