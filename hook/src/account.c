/* Cross-process reservations. A reservation is made under the region's robust mutex before the
 * driver is asked for memory, so processes racing for the last bytes can never be granted more
 * than the limit together; if the holder is killed mid-way the next locker rebuilds the totals
 * from the per-process slots (see hr_lock). Reads (memory queries) take no lock. */
#include "hook.h"
#include "region.h"

bool hk_reserve(int dev, uint64_t bytes) {
    if (!hk_acct_on || !hk_dev_ok(dev)) return true;
    hr_reap_dead();
    hr_lock();
    struct hr_device *d = &hk_region.dev[dev];
    uint64_t limit = d->limit_bytes;
    uint64_t used = atomic_load_explicit(&d->used_bytes, memory_order_relaxed);
    if (limit && (bytes > limit || used > limit - bytes)) {
        hr_unlock();
        return false;
    }
    atomic_store_explicit(&d->used_bytes, used + bytes, memory_order_relaxed);
    if (hk_my_slot >= 0)
        atomic_fetch_add_explicit(&hk_region.slot[hk_my_slot].used[dev], bytes,
                                  memory_order_relaxed);
    if (used + bytes > atomic_load_explicit(&d->peak_bytes, memory_order_relaxed))
        atomic_store_explicit(&d->peak_bytes, used + bytes, memory_order_relaxed);
    hr_unlock();
    return true;
}

void hk_release(int dev, uint64_t bytes) {
    if (!hk_acct_on || !hk_dev_ok(dev) || bytes == 0) return;
    hr_lock();
    struct hr_device *d = &hk_region.dev[dev];
    uint64_t used = atomic_load_explicit(&d->used_bytes, memory_order_relaxed);
    atomic_store_explicit(&d->used_bytes, used > bytes ? used - bytes : 0, memory_order_relaxed);
    if (hk_my_slot >= 0) {
        _Atomic uint64_t *mine = &hk_region.slot[hk_my_slot].used[dev];
        uint64_t m = atomic_load_explicit(mine, memory_order_relaxed);
        atomic_store_explicit(mine, m > bytes ? m - bytes : 0, memory_order_relaxed);
    }
    hr_unlock();
}

uint64_t hk_usage(int dev) {
    if (!hk_acct_on || !hk_dev_ok(dev)) return 0;
    hr_reap_dead();
    return atomic_load_explicit(&hk_region.dev[dev].used_bytes, memory_order_acquire);
}
