//! Fit one pod on one node: HAMi's NVIDIA fit rules (`hami-control-plane.md` §4), vendor
//! neutral. Init containers are fitted independently and counted at their peak; app
//! containers cumulatively; each device is checked in HAMi's order and the first failing
//! check is its reason.

use crate::model::Usage;
use crate::node::NodeInventory;
use crate::policy::{GpuPolicy, NodePolicy, SortKey, Weights};
use crate::reason::{Reason, ReasonCounts};
use crate::request::{DeviceRequest, PodRequest, Selectors};
use crate::vendor::{VendorRules, Vendors};
use crate::error::{Error, Result};
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
    pub selectors: Selectors,
    pub quota: QuotaRoom,
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
                        let room = if rules.spec().quota_in_fit { quota(&d.vendor) } else { QuotaRoom::default() };
                        plans.push(VendorPlan { rules, selectors, quota: room });
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

/// One device given to a container: node-local device index, MiB, cores, vendor plan index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub device: usize,
    pub mem: u64,
    pub cores: u32,
    pub vendor: usize,
}

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
}

/// Running totals of this pod's reservation per vendor, for the quota check.
#[derive(Debug, Clone, Copy, Default)]
struct PodTotals {
    app_mem: u64,
    app_cores: u64,
    init_mem: u64,
    init_cores: u64,
}

pub fn fit_node(node: &NodeInventory, usage: &[Usage], plan: &PodPlan, s: &mut Scratch) -> std::result::Result<NodeFit, NodeMiss> {
    let n = node.devices.len();
    s.app.clear();
    s.app.extend_from_slice(usage);
    s.peak.clear();
    s.peak.extend_from_slice(usage);
    let mut totals = vec![PodTotals::default(); plan.vendors.len()];
    let mut containers = Vec::with_capacity(plan.containers.len());
    for (init, reqs) in &plan.containers {
        let mut picks = Vec::new();
        if *init {
            s.work.clear();
            s.work.extend_from_slice(usage);
        }
        let mut this_init = vec![(0u64, 0u64); if *init { plan.vendors.len() } else { 0 }];
        for (vi, req) in reqs {
            let vp = &plan.vendors[*vi];
            let t = totals[*vi];
            // What the pod holds of this vendor before this container's devices.
            let held = if *init {
                let (m, c) = this_init[*vi];
                (t.init_mem.max(t.app_mem).max(m), t.init_cores.max(t.app_cores).max(c))
            } else {
                (t.init_mem.max(t.app_mem), t.init_cores.max(t.app_cores))
            };
            let usage_now: &mut Vec<Usage> = if *init { &mut s.work } else { &mut s.app };
            let chosen = fit_vendor(node, usage_now, req, vp, &plan.gpu_policy, &plan.weights, held, &mut s.order, &mut s.collected)?;
            for &(device, mem, cores) in &chosen {
                let u = &mut usage_now[device];
                u.used += 1;
                u.usedmem += mem;
                u.usedcores += cores;
                picks.push(Pick { device, mem, cores, vendor: *vi });
                if *init {
                    this_init[*vi].0 += mem;
                    this_init[*vi].1 += u64::from(cores);
                } else {
                    totals[*vi].app_mem += mem;
                    totals[*vi].app_cores += u64::from(cores);
                }
            }
        }
        if *init {
            for (vi, (m, c)) in this_init.iter().enumerate() {
                totals[vi].init_mem = totals[vi].init_mem.max(*m);
                totals[vi].init_cores = totals[vi].init_cores.max(*c);
            }
            for i in 0..n {
                s.peak[i] = s.peak[i].max(&s.work[i]);
            }
        }
        containers.push(picks);
    }
    for i in 0..n {
        s.app[i] = s.app[i].max(&s.peak[i]);
    }
    Ok(NodeFit { containers, score: node.usage_score(&s.app) })
}

/// The score of one device for one request, HAMi's `ComputeScore` with the request's own term
/// (HAMi drops it for NVIDIA because it compares the model name with the vendor key, §12.3).
fn device_score(d: &crate::model::Device, u: &Usage, req: &DeviceRequest, w: &Weights) -> f64 {
    if d.count == 0 || d.devcore == 0 || d.devmem == 0 {
        return 0.0;
    }
    let mem = req.mem_on(d.devmem);
    10.0 * (f64::from(w.slot) * f64::from(1 + u.used) / f64::from(d.count)
        + f64::from(w.core) * f64::from(req.cores.min(100) + u.usedcores) / f64::from(d.devcore)
        + f64::from(w.memory) * (mem + u.usedmem) as f64 / d.devmem as f64)
}

fn order_devices(node: &NodeInventory, usage: &[Usage], keys: &[SortKey], mutex: bool, order: &mut [(usize, f64)]) {
    order.sort_unstable_by(|a, b| {
        let (da, db) = (&node.devices[a.0], &node.devices[b.0]);
        let mut o = if mutex { usage[a.0].used.cmp(&usage[b.0].used) } else { Ordering::Equal };
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
    });
}

#[allow(clippy::too_many_arguments)]
fn fit_vendor(
    node: &NodeInventory,
    usage: &[Usage],
    req: &DeviceRequest,
    vp: &VendorPlan,
    policy: &GpuPolicy,
    weights: &Weights,
    held: (u64, u64),
    order: &mut Vec<(usize, f64)>,
    collected: &mut Vec<usize>,
) -> std::result::Result<Vec<(usize, u64, u32)>, NodeMiss> {
    let key = &vp.rules.spec().key;
    order.clear();
    for (i, d) in node.devices.iter().enumerate() {
        if d.vendor == *key {
            order.push((i, device_score(d, &usage[i], req, weights)));
        }
    }
    let total = order.len();
    let want = req.count as usize;
    let mut counts = ReasonCounts::default();
    if want > total {
        counts.add(Reason::NodeInsufficientDevice, 1);
        return Err(NodeMiss { summary: format!("{want}/{total} NodeInsufficientDevice"), counts });
    }
    let sel = &vp.selectors;
    let keys = if sel.numa_bind { policy.with_numa_first() } else { policy.keys.clone() };
    order_devices(node, usage, &keys, policy.mutex, order);
    let cores = req.cores.min(100);
    collected.clear();
    let finish = |collected: &[usize]| -> Vec<(usize, u64, u32)> {
        let chosen = if collected.len() > want { select_topology(node, collected, want) } else { collected.to_vec() };
        chosen.into_iter().map(|i| (i, req.mem_on(node.devices[i].devmem), cores)).collect()
    };
    let mut group_numa = None;
    let mut pending = (0u64, 0u64);
    for &(i, _) in order.iter() {
        let d = &node.devices[i];
        if sel.numa_bind && group_numa != Some(d.numa) {
            if policy.topology && collected.len() >= want {
                return Ok(finish(collected));
            }
            // A new NUMA node: what the previous one collected cannot be combined with it.
            counts.add(Reason::NumaNotFit, collected.len() as u32);
            collected.clear();
            pending = (0, 0);
            group_numa = Some(d.numa);
        }
        let u = &usage[i];
        let mem = req.mem_on(d.devmem);
        let reason = check_device(node, i, u, sel, policy, mem, cores, held, pending, vp)
            .or_else(|| vp.rules.check_device(d, u, sel));
        if let Some(r) = reason {
            counts.add(r, 1);
            continue;
        }
        collected.push(i);
        pending.0 += mem;
        pending.1 += u64::from(cores);
        if !policy.topology && collected.len() == want {
            return Ok(finish(collected));
        }
    }
    if collected.len() >= want {
        return Ok(finish(collected));
    }
    counts.add(Reason::AllocatedCardsInsufficientRequest, collected.len() as u32);
    Err(NodeMiss { summary: counts.summary(total), counts })
}

#[allow(clippy::too_many_arguments)]
fn check_device(
    node: &NodeInventory,
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
    let d = &node.devices[i];
    if !d.health {
        return Some(Reason::CardNotHealth);
    }
    if node.cordoned[i] {
        return Some(Reason::CardCordoned);
    }
    let ty = &node.types_lower[i];
    if (!sel.use_types.is_empty() && !sel.use_types.iter().any(|t| ty.contains(t.as_str())))
        || sel.nouse_types.iter().any(|t| ty.contains(t.as_str()))
        || sel.mode.as_ref().is_some_and(|m| !m.contains(d.mode.as_str()))
    {
        return Some(Reason::CardTypeMismatch);
    }
    if (!sel.use_uuids.is_empty() && !sel.use_uuids.contains(&d.id)) || sel.nouse_uuids.contains(&d.id) {
        return Some(Reason::CardUuidMismatch);
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
    None
}

/// Topology-aware choice among more candidates than needed (§4.6): one device takes the
/// least-connected candidate, keeping well-connected ones for multi-device jobs; several take
/// the set with the highest sum of pair scores. Ties keep the earlier candidate in try order,
/// so the result is deterministic.
fn select_topology(node: &NodeInventory, cands: &[usize], want: usize) -> Vec<usize> {
    if want == 1 {
        let sum = |i: usize| cands.iter().filter(|&&j| j != i).map(|&j| node.pair_score(i, j)).sum::<i64>();
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
    best.map(|(_, ix)| ix.into_iter().map(|i| cands[i]).collect()).unwrap_or_default()
}

fn greedy_topology(node: &NodeInventory, cands: &[usize], want: usize) -> Vec<usize> {
    let mut chosen = vec![cands[0]];
    while chosen.len() < want {
        let next = cands
            .iter()
            .copied()
            .filter(|c| !chosen.contains(c))
            .max_by(|&a, &b| {
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
