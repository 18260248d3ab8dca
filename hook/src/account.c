/* Cross-process reservations. A reservation is made under the region's robust mutex before the
 * driver is asked for memory, so processes racing for the last bytes can never be granted more
 * than the limit together; if the holder is killed mid-way the next locker rebuilds the totals
 * from the per-process slots (see hr_lock). Reads (memory queries) take no lock. */
#include "hook.h"
#include "region.h"

bool hk_reserve(int dev, uint64_t bytes) {
    if (!hk_acct_on || !hk_dev_ok(dev)) return true;
    hr_reap_dead();
    hk_reconcile_maybe(dev, bytes);
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

/* Sets this process's driver-side extra on dev (context, modules, ...) to `extra`, moving the
 * device totals by the difference. Call with the region locked. */
static void set_extra_locked(int dev, uint64_t extra) {
    struct hr_slot *s = &hk_region.slot[hk_my_slot];
    struct hr_device *d = &hk_region.dev[dev];
    uint64_t old = atomic_load_explicit(&s->ctx[dev], memory_order_relaxed);
    if (extra == old) return;
    uint64_t used = atomic_load_explicit(&d->used_bytes, memory_order_relaxed);
    uint64_t mine = atomic_load_explicit(&s->used[dev], memory_order_relaxed);
    uint64_t ctx = atomic_load_explicit(&d->ctx_bytes, memory_order_relaxed);
    if (extra > old) {
        uint64_t up = extra - old;
        used += up, mine += up, ctx += up;
    } else {
        uint64_t down = old - extra;
        used = used > down ? used - down : 0;
        mine = mine > down ? mine - down : 0;
        ctx = ctx > down ? ctx - down : 0;
    }
    atomic_store_explicit(&s->ctx[dev], extra, memory_order_relaxed);
    atomic_store_explicit(&s->used[dev], mine, memory_order_relaxed);
    atomic_store_explicit(&d->ctx_bytes, ctx, memory_order_relaxed);
    atomic_store_explicit(&d->used_bytes, used, memory_order_relaxed);
    if (used > atomic_load_explicit(&d->peak_bytes, memory_order_relaxed))
        atomic_store_explicit(&d->peak_bytes, used, memory_order_relaxed);
}

void hk_account_driver(int dev, uint64_t driver_bytes) {
    if (!hk_acct_on || !hk_dev_ok(dev) || hk_my_slot < 0) return;
    hr_lock();
    struct hr_slot *s = &hk_region.slot[hk_my_slot];
    uint64_t mine = atomic_load_explicit(&s->used[dev], memory_order_relaxed);
    uint64_t extra = atomic_load_explicit(&s->ctx[dev], memory_order_relaxed);
    uint64_t spilled = atomic_load_explicit(&s->spilled[dev], memory_order_relaxed);
    /* What the hook itself granted that lives on the device. */
    uint64_t own = mine - extra;
    own = own > spilled ? own - spilled : 0;
    set_extra_locked(dev, driver_bytes > own ? driver_bytes - own : 0);
    hr_unlock();
}

void hk_account_overhead(int dev, uint64_t bytes) {
    if (!hk_acct_on || !hk_dev_ok(dev) || hk_my_slot < 0) return;
    hr_lock();
    set_extra_locked(dev, atomic_load(&hk_region.slot[hk_my_slot].ctx[dev]) + bytes);
    hr_unlock();
}

void hk_account_spill(int dev, uint64_t bytes, bool add) {
    if (!hk_acct_on || !hk_dev_ok(dev) || hk_my_slot < 0 || bytes == 0) return;
    hr_lock();
    _Atomic uint64_t *mine = &hk_region.slot[hk_my_slot].spilled[dev];
    _Atomic uint64_t *total = &hk_region.dev[dev].spilled_bytes;
    uint64_t m = atomic_load_explicit(mine, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(total, memory_order_relaxed);
    if (add) {
        m += bytes, t += bytes;
    } else {
        m = m > bytes ? m - bytes : 0;
        t = t > bytes ? t - bytes : 0;
    }
    atomic_store_explicit(mine, m, memory_order_relaxed);
    atomic_store_explicit(total, t, memory_order_relaxed);
    hr_unlock();
}

uint64_t hk_usage(int dev) {
    if (!hk_acct_on || !hk_dev_ok(dev)) return 0;
    hr_reap_dead();
    hk_reconcile_maybe(dev, 0);
    return atomic_load_explicit(&hk_region.dev[dev].used_bytes, memory_order_acquire);
}
