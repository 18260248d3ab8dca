/* Interception routes, checked by where each returned pointer lives (dladdr):
 * dlsym on the libcuda handle, RTLD_DEFAULT and RTLD_NEXT, cuGetProcAddress[_v2] with versions
 * and the per-thread default-stream flag, exact names only. EXPECT_HOOKED=1 with the preload. */
#include "t_common.h"

static int hooked;

static const char *where(void *p, const char **sym) {
    Dl_info info;
    if (!p || !dladdr(p, &info)) return "none";
    *sym = info.dli_sname ? info.dli_sname : "?";
    return strstr(info.dli_fname, "libvgpu") ? "hook" : strstr(info.dli_fname, "libcuda") ? "cuda" : info.dli_fname;
}

static void expect_at(void *p, const char *owner, const char *sym) {
    const char *s = "";
    const char *w = where(p, &s);
    CHECK(strcmp(w, owner) == 0, "owner %s, want %s (%s)", w, owner, sym);
    if (sym) CHECK(strcmp(s, sym) == 0, "symbol %s, want %s", s, sym);
}

typedef __typeof__(&cuGetProcAddress_v2) gpa2_t;
typedef CUresult (*gpa1_t)(const char *, void **, int, cuuint64_t);

static void *proc(gpa2_t gpa, const char *name, int ver, cuuint64_t flags, CUresult want,
                  CUdriverProcAddressQueryResult want_status) {
    void *p = NULL;
    CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)-1;
    CUresult r = gpa(name, &p, ver, flags, &st);
    CHECK(r == want, "%s@%d -> %d", name, ver, (int)r);
    CHECK(st == want_status, "%s@%d status %d", name, ver, (int)st);
    return p;
}

int main(void) {
    hooked = (int)env_u64("EXPECT_HOOKED", 0);
    const char *H = hooked ? "hook" : "cuda";
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    CHECK(h, "dlopen");
    /* dlsym on the library handle: exact hooked names only. */
    expect_at(dlsym(h, "cuMemAlloc_v2"), H, "cuMemAlloc_v2");
    expect_at(dlsym(h, "cuLaunchKernel_ptsz"), H, "cuLaunchKernel_ptsz");
    expect_at(dlsym(h, "cuInit"), "cuda", "cuInit");               /* not ours: real */
    CHECK(dlsym(h, "cuMemAlloc") == NULL, "v1 name does not exist in the fake");
    CHECK(dlsym(h, "cudnnCreate") == NULL, "a cu-prefixed name that is not the driver's");
    CHECK(dlsym(h, "nvmlDeviceGetMemoryInfo") == NULL, "NVML name on the CUDA handle");
    /* RTLD_NEXT from the program means "after the program": the preloaded hook comes first. */
    void *next = dlsym(RTLD_NEXT, "cuMemGetInfo_v2");
    void *dflt = dlsym(RTLD_DEFAULT, "cuMemGetInfo_v2");
    CHECK(next == dflt, "RTLD_NEXT %p != RTLD_DEFAULT %p", next, dflt);
    expect_at(next, H, "cuMemGetInfo_v2");
    void *nv = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    CHECK(nv, "dlopen nvml");
    const char *s = "";
    CHECK(strcmp(where(dlsym(nv, "nvmlDeviceGetMemoryInfo_v2"), &s), hooked ? "hook" : s) == 0 ||
              !hooked, "nvml hook");
    CHECK(strstr(where(dlsym(nv, "nvmlInit_v2"), &s), "nvidia-ml") != NULL, "nvmlInit is real");

    /* cuGetProcAddress_v2: the variant the driver would pick, our hook for it. */
    gpa2_t gpa = (gpa2_t)dlsym(h, "cuGetProcAddress_v2");
    CHECK(gpa, "cuGetProcAddress_v2");
    cuuint64_t PT = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, OK = CU_GET_PROC_ADDRESS_SUCCESS;
    expect_at(proc(gpa, "cuMemAlloc", 12000, 0, CUDA_SUCCESS, OK), H, "cuMemAlloc_v2");
    expect_at(proc(gpa, "cuLaunchKernel", 12000, 0, CUDA_SUCCESS, OK), H, "cuLaunchKernel");
    expect_at(proc(gpa, "cuLaunchKernel", 12000, PT, CUDA_SUCCESS, OK), H, "cuLaunchKernel_ptsz");
    expect_at(proc(gpa, "cuLaunchKernel", 6050, PT, CUDA_SUCCESS, OK), H, "cuLaunchKernel");
    expect_at(proc(gpa, "cuMemAlloc", 12000, PT, CUDA_SUCCESS, OK), H, "cuMemAlloc_v2");
    expect_at(proc(gpa, "cuGraphLaunch", 12000, PT, CUDA_SUCCESS, OK), H, "cuGraphLaunch_ptsz");
    expect_at(proc(gpa, "cuInit", 12000, 0, CUDA_SUCCESS, OK), "cuda", "cuInit");
    expect_at(proc(gpa, "cuEventRecord", 12000, PT, CUDA_SUCCESS, OK), "cuda", "cuEventRecord_ptsz");
    proc(gpa, "cuMemAllocAsync", 11000, 0, CUDA_ERROR_NOT_FOUND,
         CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    proc(gpa, "cuNoSuchThing", 12000, 0, CUDA_ERROR_NOT_FOUND, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    /* The runtime asks for cuGetProcAddress itself and keeps using what it got. */
    gpa2_t again = (gpa2_t)proc(gpa, "cuGetProcAddress", 12000, 0, CUDA_SUCCESS, OK);
    expect_at((void *)again, H, "cuGetProcAddress_v2");
    expect_at(proc(again, "cuMemGetInfo", 12090, 0, CUDA_SUCCESS, OK), H, "cuMemGetInfo_v2");
    gpa1_t v1 = (gpa1_t)dlsym(h, "cuGetProcAddress");
    void *p = NULL;
    CU_OK(v1("cuMemFree", &p, 11040, 0));
    expect_at(p, H, "cuMemFree_v2");
    printf("ok\n");
    return 0;
}
