//! Fit one pod on one node: HAMi's NVIDIA fit rules (`hami-control-plane.md` §4), vendor
//! neutral. Init containers are fitted independently and counted at their peak; app
//! containers cumulatively; each device is checked in HAMi's order and the first failing
//! check is its reason.

use crate::error::{Error, Result};
use crate::mig::MigPick;
use crate::model::{DeviceMode, Usage};
use crate::node::{usage_score, DevHot, NodeInventory};
use crate::policy::{GpuPolicy, NodePolicy, SortKey, Weights};
use crate::reason::{Reason, ReasonCounts};
use crate::request::{DeviceRequest, PodRequest, Selectors};
use crate::table::NodeTotals;
use crate::vendor::{VendorRules, Vendors};
use std::cmp::Ordering;
use std::sync::Arc;

/// Room left under a namespace quota for one vendor (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaRoom {
    pub mem: Option<u64>,
    pub cores: Option<u64>,
}

/// One vendor's rules and this pod's selectors for it.
#[derive(Debug, Clone)]
pub struct VendorPlan {
    pub rules: Arc<dyn VendorRules>,
    pub id: u16,
    pub selectors: Selectors,
    pub quota: QuotaRoom,
    /// Selectors by type or UUID, or a vendor check: the fit needs the node's cold inventory.
    pub needs_inventory: bool,
}

/// Everything about a pod that does not depend on the node, resolved once per filter.
#[derive(Debug, Clone)]
pub struct PodPlan {
    /// Per container: `(index into vendors, request)`.
    pub containers: Vec<(bool, Vec<(usize, DeviceRequest)>)>,
    pub vendors: Vec<VendorPlan>,
    pub node_policy: NodePolicy,
    pub gpu_policy: GpuPolicy,
    pub weights: Weights,
}

impl PodPlan {
    pub fn new(
        pod: &PodRequest,
        vendors: &Vendors,
        default_node_policy: NodePolicy,
        default_gpu_policy: &GpuPolicy,
        quota: impl Fn(&str) -> QuotaRoom,
    ) -> Result<PodPlan> {
        let mut plans: Vec<VendorPlan> = Vec::new();
        let mut containers = Vec::with_capacity(pod.containers.len());
        for c in &pod.containers {
            let mut reqs = Vec::new();
            for d in c.devices.iter().filter(|d| d.count > 0) {
                let idx = match plans.iter().position(|p| p.rules.spec().key == d.vendor) {
                    Some(i) => i,
                    None => {
                        let rules = vendors
                            .get(&d.vendor)
                            .ok_or_else(|| Error::UnknownVendor(d.vendor.clone()))?
                            .clone();
                        let selectors = Selectors::from_annotations(rules.spec(), &pod.annotations);
                        let room = if rules.spec().quota_in_fit {
                            quota(&d.vendor)
                        } else {
                            QuotaRoom::default()
                        };
                        let id = vendors.id_of(&d.vendor).unwrap_or(u16::MAX);
                        let needs_inventory = !selectors.use_types.is_empty()
                            || !selectors.nouse_types.is_empty()
                            || !selectors.use_uuids.is_empty()
                            || !selectors.nouse_uuids.is_empty()
                            || rules.has_device_check();
                        plans.push(VendorPlan {
                            rules,
                            id,
                            selectors,
                            quota: room,
                            needs_inventory,
                        });
                        plans.len() - 1
                    }
                };
                reqs.push((idx, d.clone()));
            }
            containers.push((c.init, reqs));
        }
        Ok(PodPlan {
            containers,
            vendors: plans,
            node_policy: pod.node_policy(default_node_policy),
            gpu_policy: pod.gpu_policy(default_gpu_policy),
            weights: pod.weights()?,
        })
    }
}

/// One device given to a container: node-local device index, MiB, cores, vendor plan index,
/// and on a MIG-mode GPU the profile and placement of its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub device: usize,
    pub mem: u64,
    pub cores: u32,
    pub vendor: usize,
    pub mig: Option<MigPick>,
}

/// What one device given to a container charges: MiB, cores and (MIG) the instance chosen.
type Charge = (u64, u32, Option<MigPick>);

#[derive(Debug, Clone, PartialEq)]
pub struct NodeFit {
    /// Per container (init first), the devices chosen.
    pub containers: Vec<Vec<Pick>>,
    /// The node score after placing the pod (higher is fuller).
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMiss {
    /// HAMi's summary, e.g. `1/4 CardInsufficientMemory, 3/4 CardTimeSlicingExhausted`.
    pub summary: String,
    pub counts: ReasonCounts,
}

/// Buffers reused across nodes so the hot loop does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    work: Vec<Usage>,
    app: Vec<Usage>,
    peak: Vec<Usage>,
    order: Vec<(usize, f64)>,
    collected: Vec<usize>,
    charges: Vec<Charge>,
    chosen: Vec<(usize, Charge)>,
    totals: Vec<PodTotals>,
    this_init: Vec<(u64, u64)>,
    keys: Vec<SortKey>,
}

/// Running totals of this pod's reservation per vendor, for the quota check.
#[derive(Debug, Clone, Copy, Default)]
struct PodTotals {
    app_mem: u64,
    app_cores: u64,
    init_mem: u64,
    init_cores: u64,
}

impl PodPlan {
    pub fn needs_inventory(&self) -> bool {
        self.vendors.iter().any(|v| v.needs_inventory)
    }

    /// The common shape: one app container asking one vendor for one device, no topology or
    /// NUMA binding. The scan over candidates then takes `score_single`.
    pub fn single(&self) -> Option<(usize, &DeviceRequest)> {
        match self.containers.as_slice() {
            [(false, reqs)] => match reqs.as_slice() {
                [(vi, req)]
                    if req.count == 1
                        && !self.gpu_policy.topology
                        && !self.vendors[*vi].selectors.numa_bind
                        && !self.vendors[*vi].rules.collects_all(1) =>
                {
                    Some((*vi, req))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// The node score for a `PodPlan::single` pod in one pass over the node's devices, with no
/// copy of the usage: the same checks, device order and score as `fit_node`, which the tests
/// hold it to.
///
/// The node score depends on the chosen device only through its memory. With memory in MiB and
/// the node's `totals` at hand, any fitting device gives the same score, so the walk stops at the
/// first (the returned device is then that one, not the policy's choice; the winner is fitted
/// again in full). A node that does not fit is always walked to the end, for its reasons.
#[allow(clippy::too_many_arguments)]
pub fn score_single(
    node: Option<&NodeInventory>,
    hot: &[DevHot],
    usage: &[Usage],
    totals: Option<NodeTotals>,
    plan: &PodPlan,
    vi: usize,
    req: &DeviceRequest,
) -> std::result::Result<(f64, usize), NodeMiss> {
    let vp = &plan.vendors[vi];
    let policy = &plan.gpu_policy;
    let sel = &vp.selectors;
    let cores = req.cores.min(100);
    let mut counts = ReasonCounts::default();
    let mut best: Option<(usize, f64, u64)> = None;
    let simple_rank = match policy.keys.as_slice() {
        [SortKey::Spread] => Some(1.0),
        [SortKey::Binpack] => Some(-1.0),
        _ => None,
    };
    if let Some(miss) = node_refusal(hot, vp) {
        return Err(miss);
    }
    let mut total = 0usize;
    let first_fit = totals.is_some() && req.mem_mib > 0;
    for (i, (d, u)) in hot.iter().zip(usage).enumerate() {
        if d.vendor != vp.id {
            continue;
        }
        total += 1;
        let mem = req.mem_on(d.devmem);
        let reason = check_device(node, hot, i, u, sel, policy, mem, cores, (0, 0), (0, 0), vp);
        if let Some(r) = reason {
            counts.add(r, 1);
            continue;
        }
        let mem = if d.mode == DeviceMode::Mig {
            charge_of(d, u, mem, cores).0
        } else {
            mem
        };
        if first_fit {
            best = Some((i, 0.0, mem));
            break;
        }
        let score = device_score(d, u, req, &plan.weights);
        let better = match (best, simple_rank) {
            (None, _) => true,
            // One sort key: compare (used if mutex, ±score, NUMA, index) without the chain loop.
            (Some((b, bs, _)), Some(sign)) => {
                let (db, ub) = (&hot[b], &usage[b]);
                let mutex_o = if policy.mutex {
                    u.used.cmp(&ub.used)
                } else {
                    Ordering::Equal
                };
                mutex_o
                    .then((sign * score).total_cmp(&(sign * bs)))
                    .then(d.numa.cmp(&db.numa))
                    .then(d.index.cmp(&db.index))
                    .then(i.cmp(&b))
                    .is_lt()
            }
            (Some((b, bs, _)), None) => {
                try_order(hot, usage, &policy.keys, policy.mutex, &(i, score), &(b, bs)).is_lt()
            }
        };
        if better {
            best = Some((i, score, mem));
        }
    }
    if total == 0 {
        counts.add(Reason::NodeInsufficientDevice, 1);
        return Err(NodeMiss {
            summary: "1/0 NodeInsufficientDevice".to_string(),
            counts,
        });
    }
    let t = totals.unwrap_or_else(|| NodeTotals::of(hot, usage));
    let (used, count, ucores, tcores, umem, tmem) = (t.used, t.count, t.usedcores, t.devcore, t.usedmem, t.devmem);
    let Some((device, _, mem)) = best else {
        return Err(NodeMiss {
            summary: counts.summary(total),
            counts,
        });
    };
    if count == 0 || tcores == 0 || tmem == 0 {
        return Ok((0.0, device));
    }
    let score = 10.0
        * ((used + 1) as f64 / count as f64
            + (ucores + u64::from(cores)) as f64 / tcores as f64
            + (umem + mem) as f64 / tmem as f64);
    Ok((score, device))
}

/// Fits the pod on the node. With `want_picks` false only the score is computed (the hot
/// path over every candidate); the winner is fitted again with its picks.
pub fn fit_node(
    node: &NodeInventory,
    hot: &[DevHot],
    usage: &[Usage],
    plan: &PodPlan,
    s: &mut Scratch,
    want_picks: bool,
) -> std::result::Result<NodeFit, NodeMiss> {
    let n = hot.len();
    s.app.clear();
    s.app.extend_from_slice(usage);
    let has_init = plan.containers.first().is_some_and(|c| c.0);
    if has_init {
        s.peak.clear();
        s.peak.extend_from_slice(usage);
    }
    s.totals.clear();
    s.totals.resize(plan.vendors.len(), PodTotals::default());
    let mut containers = Vec::with_capacity(if want_picks { plan.containers.len() } else { 0 });
    for (init, reqs) in &plan.containers {
        let mut picks = Vec::new();
        if *init {
            s.work.clear();
            s.work.extend_from_slice(usage);
            s.this_init.clear();
            s.this_init.resize(plan.vendors.len(), (0, 0));
        }
        for (vi, req) in reqs {
            let vp = &plan.vendors[*vi];
            let t = s.totals[*vi];
            // What the pod holds of this vendor before this container's devices.
            let held = if *init {
                let (m, c) = s.this_init[*vi];
                (t.init_mem.max(t.app_mem).max(m), t.init_cores.max(t.app_cores).max(c))
            } else {
                (t.init_mem.max(t.app_mem), t.init_cores.max(t.app_cores))
            };
            let usage_now: &mut Vec<Usage> = if *init { &mut s.work } else { &mut s.app };
            let ctx = VendorFit {
                node,
                hot,
                req,
                vp,
                policy: &plan.gpu_policy,
                weights: &plan.weights,
                held,
                want_picks,
            };
            fit_vendor(
                &ctx,
                usage_now,
                &mut s.order,
                (&mut s.collected, &mut s.charges),
                &mut s.keys,
                &mut s.chosen,
            )?;
            for &(device, (mem, cores, mig)) in &s.chosen {
                let u = &mut usage_now[device];
                u.used += 1;
                u.usedmem += mem;
                u.usedcores += cores;
                if let (Some(pick), Some(g)) = (mig, &hot[device].mig) {
                    u.mig |= g.mask(pick);
                }
                if want_picks {
                    picks.push(Pick {
                        device,
                        mem,
                        cores,
                        vendor: *vi,
                        mig,
                    });
                }
                if *init {
                    s.this_init[*vi].0 += mem;
                    s.this_init[*vi].1 += u64::from(cores);
                } else {
                    s.totals[*vi].app_mem += mem;
                    s.totals[*vi].app_cores += u64::from(cores);
                }
            }
        }
        if *init {
            for (vi, (m, c)) in s.this_init.iter().enumerate() {
                s.totals[vi].init_mem = s.totals[vi].init_mem.max(*m);
                s.totals[vi].init_cores = s.totals[vi].init_cores.max(*c);
            }
            for i in 0..n {
                s.peak[i] = s.peak[i].max(&s.work[i]);
            }
        }
        if want_picks {
            containers.push(picks);
        }
    }
    if !has_init {
        return Ok(NodeFit {
            containers,
            score: usage_score(hot, &s.app),
        });
    }
    for i in 0..n {
        s.app[i] = s.app[i].max(&s.peak[i]);
    }
    Ok(NodeFit {
        containers,
        score: usage_score(hot, &s.app),
    })
}

/// The score of one device for one request, HAMi's `ComputeScore` with the request's own term
/// (HAMi drops it for NVIDIA because it compares the model name with the vendor key, §12.3).
#[inline(always)]
fn device_score(d: &DevHot, u: &Usage, req: &DeviceRequest, w: &Weights) -> f64 {
    let [slot, core, mem] = d.score_scale;
    let m = req.mem_on(d.devmem);
    f64::from(w.slot) * f64::from(1 + u.used) * slot
        + f64::from(w.core) * f64::from(req.cores.min(100) + u.usedcores) * core
        + f64::from(w.memory) * (m + u.usedmem) as f64 * mem
}

fn order_devices(hot: &[DevHot], usage: &[Usage], keys: &[SortKey], mutex: bool, order: &mut [(usize, f64)]) {
    order.sort_unstable_by(|a, b| try_order(hot, usage, keys, mutex, a, b));
}

/// The order in which devices are tried: `Less` is tried first.
fn try_order(
    hot: &[DevHot],
    usage: &[Usage],
    keys: &[SortKey],
    mutex: bool,
    a: &(usize, f64),
    b: &(usize, f64),
) -> Ordering {
    {
        let (da, db) = (&hot[a.0], &hot[b.0]);
        let mut o = if mutex {
            usage[a.0].used.cmp(&usage[b.0].used)
        } else {
            Ordering::Equal
        };
        for k in keys {
            if o != Ordering::Equal {
                break;
            }
            o = match k {
                SortKey::Binpack => b.1.total_cmp(&a.1),
                SortKey::Spread => a.1.total_cmp(&b.1),
                SortKey::Numa => da.numa.cmp(&db.numa),
            };
        }
        o.then(da.index.cmp(&db.index)).then(a.0.cmp(&b.0))
    }
}

/// What one vendor's part of one container is fitted with.
struct VendorFit<'a> {
    node: &'a NodeInventory,
    hot: &'a [DevHot],
    req: &'a DeviceRequest,
    vp: &'a VendorPlan,
    policy: &'a GpuPolicy,
    weights: &'a Weights,
    /// What the pod already holds of this vendor (MiB, cores), for the quota check.
    held: (u64, u64),
    /// The caller needs the exact devices (not only the node score).
    want_picks: bool,
}

/// Chooses the devices for one vendor request into `chosen` as (device, MiB, cores).
fn fit_vendor(
    ctx: &VendorFit<'_>,
    usage: &[Usage],
    order: &mut Vec<(usize, f64)>,
    (collected, charges): (&mut Vec<usize>, &mut Vec<Charge>),
    keys: &mut Vec<SortKey>,
    chosen: &mut Vec<(usize, Charge)>,
) -> std::result::Result<(), NodeMiss> {
    let VendorFit {
        node,
        hot,
        req,
        vp,
        policy,
        weights,
        held,
        want_picks,
    } = *ctx;
    order.clear();
    chosen.clear();
    for (i, d) in hot.iter().enumerate() {
        if d.vendor == vp.id {
            order.push((i, device_score(d, &usage[i], req, weights)));
        }
    }
    let total = order.len();
    let want = req.count as usize;
    let mut counts = ReasonCounts::default();
    let sel = &vp.selectors;
    // HAMi's `isMIGRequest`: a MIG-mode GPU of this vendor is on the node and the pod's mode
    // (if it names one) allows mig. Its GPUs give several instances each, so it may ask for
    // more devices than the node has GPUs.
    let mig_request = sel.mode.as_ref().is_none_or(|m| m.contains(DeviceMode::Mig.as_str()))
        && order.iter().any(|&(i, _)| hot[i].mode == DeviceMode::Mig);
    if want > total && !mig_request {
        counts.add(Reason::NodeInsufficientDevice, 1);
        return Err(NodeMiss {
            summary: format!("{want}/{total} NodeInsufficientDevice"),
            counts,
        });
    }
    if let Some(miss) = node_refusal(hot, vp) {
        return Err(miss);
    }
    keys.clear();
    if sel.numa_bind {
        keys.extend(policy.with_numa_first());
    } else {
        keys.extend_from_slice(&policy.keys);
    }
    let cores = req.cores.min(100);
    // Collect every fitting device and choose among them (topology, or the vendor's grouping).
    let collect_all = policy.topology || vp.rules.collects_all(req.count);
    if want == 1 && !collect_all && !sel.numa_bind {
        // One device: the first that passes in try order is the best-ranked passing device,
        // found in one pass without sorting.
        let mut best: Option<(usize, f64)> = None;
        for &(i, score) in order.iter() {
            let u = &usage[i];
            let mem = req.mem_on(hot[i].devmem);
            let reason = check_device(Some(node), hot, i, u, sel, policy, mem, cores, held, (0, 0), vp);
            match reason {
                Some(r) => counts.add(r, 1),
                None => {
                    if best.is_none_or(|b| try_order(hot, usage, keys, policy.mutex, &(i, score), &b).is_lt()) {
                        best = Some((i, score));
                    }
                }
            }
        }
        if let Some((i, _)) = best {
            chosen.push((i, charge_of(&hot[i], &usage[i], req.mem_on(hot[i].devmem), cores)));
            return Ok(());
        }
        return Err(NodeMiss {
            summary: counts.summary(total),
            counts,
        });
    }
    order_devices(hot, usage, keys, policy.mutex, order);
    collected.clear();
    charges.clear();
    // Chooses `want` of the collected devices; false when the vendor's choice cannot make up
    // a whole set (the node then fails with what it collected).
    let mut finish = |collected: &[usize], charges: &[Charge]| -> bool {
        // What a device charges: as collected (its first collection; a MIG GPU may be
        // collected several times, each one instance, and is then taken in order).
        let mem_of = |i: usize| {
            let at = collected.iter().position(|&c| c == i).unwrap_or(0);
            (i, charges[at])
        };
        // The node score depends on which devices are chosen only through their memory, and
        // only when memory is a percentage: a score-only scan skips the combinatorial choice.
        if let Some(pick) = vp.rules.choose(node, hot, collected, want) {
            if pick.len() != want {
                return false;
            }
            chosen.extend(pick.into_iter().map(mem_of));
        } else if collected.len() > want && (want_picks || req.mem_mib == 0) && !mig_request {
            chosen.extend(select_topology(node, collected, want).into_iter().map(mem_of));
        } else {
            let n = collected.len().min(want);
            chosen.extend(collected[..n].iter().copied().zip(charges[..n].iter().copied()));
        }
        true
    };
    let mut group_numa = None;
    let mut pending = (0u64, 0u64);
    for &(i, _) in order.iter() {
        let d = &hot[i];
        if sel.numa_bind && group_numa != Some(d.numa) {
            if collect_all && collected.len() >= want && finish(collected, charges) {
                return Ok(());
            }
            // A new NUMA node: what the previous one collected cannot be combined with it.
            counts.add(Reason::NumaNotFit, collected.len() as u32);
            collected.clear();
            charges.clear();
            pending = (0, 0);
            group_numa = Some(d.numa);
        }
        let mem = req.mem_on(d.devmem);
        // A MIG-mode GPU is revisited (as HAMi's walk does) while it has room for another
        // instance: the usage it is checked against includes the instances already taken.
        let mut u = usage[i];
        let mut first = true;
        loop {
            let reason = check_device(Some(node), hot, i, &u, sel, policy, mem, cores, held, pending, vp);
            if let Some(r) = reason {
                if first {
                    counts.add(r, 1);
                }
                break;
            }
            let c = charge_of(d, &u, mem, cores);
            collected.push(i);
            charges.push(c);
            pending.0 += c.0;
            pending.1 += u64::from(c.1);
            if !collect_all && collected.len() == want && finish(collected, charges) {
                return Ok(());
            }
            let (Some(pick), Some(g)) = (c.2, &d.mig) else { break };
            if collect_all {
                break;
            }
            u.used += 1;
            u.usedmem += c.0;
            u.usedcores += c.1;
            u.mig |= g.mask(pick);
            first = false;
        }
    }
    if collected.len() >= want && finish(collected, charges) {
        return Ok(());
    }
    counts.add(Reason::AllocatedCardsInsufficientRequest, collected.len() as u32);
    Err(NodeMiss {
        summary: counts.summary(total),
        counts,
    })
}

/// The vendor's refusal of the whole node (Ascend's `ModeNotFit`), counted once over the
/// node's devices of that vendor, as HAMi reports it (`1/8 ModeNotFit`).
fn node_refusal(hot: &[DevHot], vp: &VendorPlan) -> Option<NodeMiss> {
    let reason = vp
        .rules
        .check_node(&mut hot.iter().filter(|d| d.vendor == vp.id), &vp.selectors)?;
    let total = hot.iter().filter(|d| d.vendor == vp.id).count();
    let mut counts = ReasonCounts::default();
    counts.add(reason, 1);
    Some(NodeMiss {
        summary: counts.summary(total),
        counts,
    })
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
/// HAMi's per-device checks in HAMi's order (§4.3), then the vendor's own; the first failing
/// one is the device's reason. `node` (the cold inventory) is read only when
/// `vp.needs_inventory`, and must then be given.
fn check_device(
    node: Option<&NodeInventory>,
    hot: &[DevHot],
    i: usize,
    u: &Usage,
    sel: &Selectors,
    policy: &GpuPolicy,
    mem: u64,
    cores: u32,
    held: (u64, u64),
    pending: (u64, u64),
    vp: &VendorPlan,
) -> Option<Reason> {
    let d = &hot[i];
    // Fail closed, as HAMi's rebuild: a MIG-mode GPU someone holds without a MIG reservation,
    // or another GPU carrying one, is not trusted with more.
    let mig_unknown = if d.mode == DeviceMode::Mig {
        u.unreserved > 0
    } else {
        u.mig != 0
    };
    if !d.health || mig_unknown {
        return Some(Reason::CardNotHealth);
    }
    if d.cordoned {
        return Some(Reason::CardCordoned);
    }
    let cold = || node.expect("the caller passes the inventory when the plan needs it");
    if !sel.use_types.is_empty() || !sel.nouse_types.is_empty() {
        let ty = &cold().types_lower[i];
        if (!sel.use_types.is_empty() && !sel.use_types.iter().any(|t| ty.contains(t.as_str())))
            || sel.nouse_types.iter().any(|t| ty.contains(t.as_str()))
        {
            return Some(Reason::CardTypeMismatch);
        }
    }
    if sel.mode.as_ref().is_some_and(|m| !m.contains(d.mode.as_str())) {
        return Some(Reason::CardTypeMismatch);
    }
    if !sel.use_uuids.is_empty() || !sel.nouse_uuids.is_empty() {
        let id = &cold().devices[i].id;
        if (!sel.use_uuids.is_empty() && !sel.use_uuids.contains(id)) || sel.nouse_uuids.contains(id) {
            return Some(Reason::CardUuidMismatch);
        }
    }
    if d.count <= u.used {
        return Some(Reason::CardTimeSlicingExhausted);
    }
    if policy.mutex && u.used > 0 {
        return Some(Reason::ExclusiveDeviceAllocateConflict);
    }
    let q = vp.quota;
    if q.mem.is_some_and(|room| held.0 + pending.0 + mem > room)
        || q.cores.is_some_and(|room| held.1 + pending.1 + u64::from(cores) > room)
    {
        return Some(Reason::ResourceQuotaNotFit);
    }
    if d.devmem.saturating_sub(u.usedmem) < mem {
        return Some(Reason::CardInsufficientMemory);
    }
    if d.devcore.saturating_sub(u.usedcores) < cores {
        return Some(Reason::CardInsufficientCore);
    }
    if d.devcore == 100 && cores == 100 && u.used > 0 {
        return Some(Reason::ExclusiveDeviceAllocateConflict);
    }
    if cores == 0 && d.devcore != 0 && u.usedcores == d.devcore {
        return Some(Reason::CardComputeUnitsExhausted);
    }
    if d.mode == DeviceMode::Mig && mig_choice(d, mem, u.mig).is_none() {
        return Some(Reason::CardMigTopologyInfeasible);
    }
    if vp.needs_inventory {
        return vp.rules.check_device(&cold().devices[i], u, sel);
    }
    None
}

/// The instance a MIG-mode GPU gives `mem` MiB with the memory slices `occupied` taken: HAMi's
/// smallest fitting profile with a free placement (`None`: no geometry, or nothing free).
#[inline(always)]
fn mig_choice(d: &DevHot, mem: u64, occupied: u8) -> Option<Charge> {
    let g = d.mig.as_ref()?;
    let pick = g.choose(mem, occupied)?;
    let p = g.profile(pick);
    Some((p.memory_mb, p.core, Some(pick)))
}

/// What device `i` charges for a request that passed its checks: the request's MiB and cores,
/// or on a MIG-mode GPU its instance's profile (as HAMi's `AddResourceUsage`).
#[inline(always)]
fn charge_of(d: &DevHot, u: &Usage, mem: u64, cores: u32) -> Charge {
    match d.mode {
        DeviceMode::Mig => mig_choice(d, mem, u.mig).unwrap_or((mem, cores, None)),
        _ => (mem, cores, None),
    }
}

/// Topology-aware choice among more candidates than needed (§4.6): one device takes the
/// least-connected candidate, keeping well-connected ones for multi-device jobs; several take
/// the set with the highest sum of pair scores. Ties keep the earlier candidate in try order,
/// so the result is deterministic.
fn select_topology(node: &NodeInventory, cands: &[usize], want: usize) -> Vec<usize> {
    if want == 1 {
        let sum = |i: usize| {
            cands
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| node.pair_score(i, j))
                .sum::<i64>()
        };
        let best = cands.iter().copied().min_by_key(|&i| sum(i)).unwrap_or(cands[0]);
        return vec![best];
    }
    const MAX_COMBINATIONS: u64 = 200_000;
    if binomial(cands.len() as u64, want as u64) > MAX_COMBINATIONS {
        return greedy_topology(node, cands, want);
    }
    let mut idx: Vec<usize> = (0..want).collect();
    let mut best: Option<(i64, Vec<usize>)> = None;
    loop {
        let mut s = 0i64;
        for a in 0..want {
            for b in a + 1..want {
                s += node.pair_score(cands[idx[a]], cands[idx[b]]);
            }
        }
        if best.as_ref().is_none_or(|(bs, _)| s > *bs) {
            best = Some((s, idx.clone()));
        }
        // Next combination in lexicographic order.
        let mut p = want;
        while p > 0 && idx[p - 1] == cands.len() - want + p - 1 {
            p -= 1;
        }
        if p == 0 {
            break;
        }
        idx[p - 1] += 1;
        for q in p..want {
            idx[q] = idx[q - 1] + 1;
        }
    }
    best.map(|(_, ix)| ix.into_iter().map(|i| cands[i]).collect())
        .unwrap_or_default()
}

fn greedy_topology(node: &NodeInventory, cands: &[usize], want: usize) -> Vec<usize> {
    let mut chosen = vec![cands[0]];
    while chosen.len() < want {
        let next = cands.iter().copied().filter(|c| !chosen.contains(c)).max_by(|&a, &b| {
            let sa: i64 = chosen.iter().map(|&c| node.pair_score(a, c)).sum();
            let sb: i64 = chosen.iter().map(|&c| node.pair_score(b, c)).sum();
            // max_by keeps the last maximum; reverse the tie so the earlier one wins.
            sa.cmp(&sb).then(Ordering::Greater)
        });
        match next {
            Some(n) => chosen.push(n),
            None => break,
        }
    }
    chosen
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k.min(n));
    let mut r: u64 = 1;
    for i in 0..k {
        r = r.saturating_mul(n - i) / (i + 1);
    }
    r
}
