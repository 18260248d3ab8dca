/* Allocate 64 MiB units through one allocation path and one interception route until refused:
 *   t_alloc KIND ROUTE   KIND: alloc pitch managed async pool vmm array array3d mipmap
 *                        ROUTE: direct (linked) | dlopen (dlopen+dlsym) | procaddr | procaddr_ptds
 * With a limit L: exactly floor(L / 64 MiB) units are granted, the next one fails with
 * CUDA_ERROR_OUT_OF_MEMORY, cuMemGetInfo shows total L and free L - granted, a freed unit can be
 * re-allocated (the refusal leaked nothing), and after freeing all free is L again. */
#include "t_common.h"

#define UNIT (64 * MIB)
#define APIS(X)                                                                                  \
    X(cuMemAlloc_v2, cuMemAlloc, 3020)                                                           \
    X(cuMemFree_v2, cuMemFree, 3020)                                                             \
    X(cuMemAllocPitch_v2, cuMemAllocPitch, 3020)                                                 \
    X(cuMemAllocManaged, cuMemAllocManaged, 6000)                                                \
    X(cuMemAllocAsync, cuMemAllocAsync, 11020)                                                   \
    X(cuMemFreeAsync, cuMemFreeAsync, 11020)                                                     \
    X(cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync, 11020)                                   \
    X(cuMemCreate, cuMemCreate, 10020)                                                           \
    X(cuMemRelease, cuMemRelease, 10020)                                                         \
    X(cuArrayCreate_v2, cuArrayCreate, 3020)                                                     \
    X(cuArray3DCreate_v2, cuArray3DCreate, 3020)                                                 \
    X(cuArrayDestroy, cuArrayDestroy, 2000)                                                      \
    X(cuMipmappedArrayCreate, cuMipmappedArrayCreate, 5000)                                      \
    X(cuMipmappedArrayDestroy, cuMipmappedArrayDestroy, 5000)                                    \
    X(cuMemGetInfo_v2, cuMemGetInfo, 3020)

static struct {
#define X(name, base, ver) __typeof__(&name) name;
    APIS(X)
#undef X
} api;

static void resolve(const char *route) {
    if (strcmp(route, "direct") == 0) {
#define X(name, base, ver) api.name = name;
        APIS(X)
#undef X
        return;
    }
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    CHECK(h, "dlopen: %s", dlerror());
    if (strcmp(route, "dlopen") == 0) {
#define X(name, base, ver) api.name = (__typeof__(api.name))dlsym(h, #name);
        APIS(X)
#undef X
        return;
    }
    __typeof__(&cuGetProcAddress_v2) gpa = (__typeof__(gpa))dlsym(h, "cuGetProcAddress_v2");
    CHECK(gpa, "no cuGetProcAddress_v2");
    cuuint64_t flags = strcmp(route, "procaddr_ptds") == 0
                           ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
                           : CU_GET_PROC_ADDRESS_DEFAULT;
    CUdriverProcAddressQueryResult st;
#define X(name, base, ver)                                                                       \
    CU_OK(gpa(#base, (void **)&api.name, 12090, flags, &st));                                    \
    CHECK(st == CU_GET_PROC_ADDRESS_SUCCESS, "status %d", (int)st);
    APIS(X)
#undef X
}

static const char *kind;
static CUmemoryPool pool;

static CUresult alloc_unit(uint64_t *key) {
    CUdeviceptr p = 0;
    CUresult r;
    if (!strcmp(kind, "alloc")) r = api.cuMemAlloc_v2(&p, UNIT);
    else if (!strcmp(kind, "pitch")) {
        size_t pitch = 0;
        r = api.cuMemAllocPitch_v2(&p, &pitch, 8100, 8192, 4); /* pitch 8192 x 8192 rows */
    } else if (!strcmp(kind, "managed")) r = api.cuMemAllocManaged(&p, UNIT, CU_MEM_ATTACH_GLOBAL);
    else if (!strcmp(kind, "async")) r = api.cuMemAllocAsync(&p, UNIT, NULL);
    else if (!strcmp(kind, "pool")) r = api.cuMemAllocFromPoolAsync(&p, UNIT, pool, NULL);
    else if (!strcmp(kind, "vmm")) {
        CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                    .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        CUmemGenericAllocationHandle h = 0;
        r = api.cuMemCreate(&h, UNIT, &prop, 0);
        p = h;
    } else if (!strcmp(kind, "array")) {
        CUDA_ARRAY_DESCRIPTOR d = {.Width = 4096, .Height = 4096, .Format = CU_AD_FORMAT_FLOAT,
                                   .NumChannels = 1};
        CUarray a = NULL;
        r = api.cuArrayCreate_v2(&a, &d);
        p = (uintptr_t)a;
    } else if (!strcmp(kind, "array3d") || !strcmp(kind, "mipmap")) {
        CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 1024, .Height = 1024, .Depth = 16,
                                     .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
        if (!strcmp(kind, "array3d")) {
            CUarray a = NULL;
            r = api.cuArray3DCreate_v2(&a, &d);
            p = (uintptr_t)a;
        } else {
            CUmipmappedArray a = NULL;
            r = api.cuMipmappedArrayCreate(&a, &d, 1);
            p = (uintptr_t)a;
        }
    } else {
        CHECK(0, "unknown kind %s", kind);
    }
    *key = p;
    return r;
}

static void free_unit(uint64_t key) {
    if (!strcmp(kind, "async") || !strcmp(kind, "pool")) CU_OK(api.cuMemFreeAsync(key, NULL));
    else if (!strcmp(kind, "vmm")) CU_OK(api.cuMemRelease(key));
    else if (!strcmp(kind, "array") || !strcmp(kind, "array3d"))
        CU_OK(api.cuArrayDestroy((CUarray)(uintptr_t)key));
    else if (!strcmp(kind, "mipmap")) CU_OK(api.cuMipmappedArrayDestroy((CUmipmappedArray)(uintptr_t)key));
    else CU_OK(api.cuMemFree_v2(key));
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: t_alloc KIND ROUTE");
    kind = argv[1];
    resolve(argv[2]);
    use_device(0);
    if (!strcmp(kind, "pool")) {
        CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
        CU_OK(cuMemPoolCreate(&pool, &props));
    }
    uint64_t limit = expect_limit(), nominal = env_u64("NOMINAL_LIMIT_MIB", 1024) * MIB;
    uint64_t cap = (limit ? limit : nominal) / UNIT + 8, keys[512];
    unsigned n = 0;
    CUresult last = CUDA_SUCCESS;
    while (n < cap && n < 512) {
        last = alloc_unit(&keys[n]);
        if (last != CUDA_SUCCESS) break;
        n++;
    }
    size_t free_b, total;
    CU_OK(api.cuMemGetInfo_v2(&free_b, &total));
    printf("granted_mib=%llu\n", (unsigned long long)(n * UNIT / MIB));
    if (limit) {
        CHECK(last == CUDA_ERROR_OUT_OF_MEMORY, "refusal code %d", (int)last);
        CHECK(n == limit / UNIT, "granted %u units under %llu MiB", n,
              (unsigned long long)(limit / MIB));
        CHECK(total == limit, "total %zu", total);
        CHECK(free_b == limit - n * UNIT, "free %zu", free_b);
        free_unit(keys[--n]);
        CU_OK(alloc_unit(&keys[n++])); /* nothing leaked by the refused call */
        CHECK(alloc_unit(&keys[n]) == CUDA_ERROR_OUT_OF_MEMORY, "over limit after refill");
    } else {
        CHECK(n == cap, "refused at %u units without a limit (error %d)", n, (int)last);
        CHECK(total == 16384 * MIB, "total %zu", total);
    }
    while (n) free_unit(keys[--n]);
    CU_OK(api.cuMemGetInfo_v2(&free_b, &total));
    CHECK(free_b == total, "free %zu of %zu after freeing everything", free_b, total);
    printf("ok\n");
    return 0;
}
