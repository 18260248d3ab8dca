/* Lock-free maps from a device pointer (or VMM handle) to (device, bytes): open addressing with
 * linear probing, claimed by compare-and-swap, freed cells become tombstones that later inserts
 * reuse. Sized for 262,144 live allocations per kind; the memory is reserved lazily
 * (MAP_NORESERVE), so only touched pages cost RAM. */
#include "hook.h"

#include <sys/mman.h>

#define MAP_BITS 18
#define MAP_CAP (1u << MAP_BITS)
#define KEY_EMPTY 0ull
#define KEY_TOMB UINT64_MAX

struct cell {
    _Atomic uint64_t key;
    _Atomic uint64_t val; /* bytes << 6 | device */
};
static struct cell *_Atomic maps[HK_MAP_KINDS];

static struct cell *get_map(enum hk_map_kind kind) {
    struct cell *m = atomic_load_explicit(&maps[kind], memory_order_acquire);
    if (HK_LIKELY(m)) return m;
    void *p = mmap(NULL, sizeof(struct cell) * MAP_CAP, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    struct cell *expected = NULL;
    if (!atomic_compare_exchange_strong(&maps[kind], &expected, (struct cell *)p)) {
        munmap(p, sizeof(struct cell) * MAP_CAP);
        return expected;
    }
    return p;
}

static inline uint32_t slot_of(uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - MAP_BITS));
}

bool hk_map_put(enum hk_map_kind kind, uint64_t key, int dev, uint64_t bytes) {
    struct cell *m = get_map(kind);
    if (!m || key == KEY_EMPTY || key == KEY_TOMB || bytes >= (1ull << 58)) return false;
    uint64_t val = bytes << 6 | (uint64_t)dev;
    for (uint32_t n = 0, i = slot_of(key); n < MAP_CAP; n++, i = (i + 1) & (MAP_CAP - 1)) {
        uint64_t k = atomic_load_explicit(&m[i].key, memory_order_relaxed);
        if (k != KEY_EMPTY && k != KEY_TOMB) continue;
        if (atomic_compare_exchange_strong(&m[i].key, &k, key)) {
            atomic_store_explicit(&m[i].val, val, memory_order_release);
            return true;
        }
    }
    return false;
}

bool hk_map_take(enum hk_map_kind kind, uint64_t key, int *dev, uint64_t *bytes) {
    struct cell *m = atomic_load_explicit(&maps[kind], memory_order_acquire);
    if (!m || key == KEY_EMPTY || key == KEY_TOMB) return false;
    for (uint32_t n = 0, i = slot_of(key); n < MAP_CAP; n++, i = (i + 1) & (MAP_CAP - 1)) {
        uint64_t k = atomic_load_explicit(&m[i].key, memory_order_acquire);
        if (k == KEY_EMPTY) return false;
        if (k != key) continue;
        uint64_t val = atomic_load_explicit(&m[i].val, memory_order_acquire);
        if (!atomic_compare_exchange_strong(&m[i].key, &k, KEY_TOMB)) return false;
        *dev = (int)(val & 63);
        *bytes = val >> 6;
        return true;
    }
    return false;
}

void hk_map_reset_after_fork(void) {
    for (int k = 0; k < HK_MAP_KINDS; k++) {
        struct cell *m = atomic_exchange(&maps[k], NULL);
        if (m) munmap(m, sizeof(struct cell) * MAP_CAP);
    }
}
