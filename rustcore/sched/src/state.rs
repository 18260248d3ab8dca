//! The cluster's usage state: node inventories and pod allocations, kept incrementally, and
//! `filter` over it. One `RwLock`: many readers evaluate in parallel; a filter that reserves
//! holds the upgradable lock, so two reservations can never pick the same free capacity.

use crate::burst::{choose, copies_on, Burst, Fitting};
use crate::codec::PairScores;
use crate::error::{Error, Result};
use crate::fit::{fit_node, score_single, Pick, PodPlan, QuotaRoom, Scratch};
use crate::mig::SharedGeometry;
use crate::mig::{encode_mig_allocations, MigAlloc, MIG_ALLOCATIONS};
use crate::model::{AllocDevice, Device, PodDevices, Usage};
use crate::node::{DevHot, NodeInventory};
use crate::policy::{GpuPolicy, NodePolicy};
use crate::reason::{ReasonCounts, NODE_UNREGISTERED};
use crate::request::PodRequest;
use crate::table::{NodeEntry, NodeTable};
use crate::vendor::{Given, Vendors};
use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// A pod's allocation as the state holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodAlloc {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Devices per container, init containers first (the allocated annotation, decoded).
    pub containers: PodDevices,
    /// How many of `containers` are init containers.
    pub init_count: usize,
    /// Every init container finished: only the app containers hold devices.
    pub init_done: bool,
    /// Set while the reservation is not yet bound: when it was made (unix seconds).
    pub reserved_at: Option<f64>,
    /// MIG instances reserved for it (`hami.io/vgpu-mig-allocations`): the memory slices they
    /// occupy on their GPUs.
    pub mig: Vec<MigAlloc>,
}

impl PodAlloc {
    /// HAMi's `CollapseInitContainerUsage`: per device, the larger of the init peak and the app
    /// sum, with slots counting the app containers that share the device.
    pub fn collapsed(&self) -> Vec<(String, Usage)> {
        let mut per: BTreeMap<&str, (Usage, Usage)> = BTreeMap::new();
        for (ci, devices) in self.containers.iter().enumerate() {
            let init = ci < self.init_count;
            if init && self.init_done {
                continue;
            }
            for (di, d) in devices.iter().enumerate() {
                let e = per.entry(d.uuid.as_str()).or_default();
                let mut u = Usage::new(1, d.usedmem, d.usedcores);
                // Held with no MIG reservation (what it means on a MIG-mode GPU: `Usage`).
                let reserved = self
                    .mig
                    .iter()
                    .any(|a| a.container as usize == ci && a.device as usize == di && a.gpu_uuid == d.uuid);
                u.unreserved = u16::from(!reserved);
                if init {
                    e.0 = e.0.max(&u);
                } else {
                    e.1.add(&u);
                }
            }
        }
        let held: Vec<&str> = per.keys().copied().collect();
        for a in &self.mig {
            let ci = a.container as usize;
            let init = ci < self.init_count;
            if init && self.init_done {
                continue;
            }
            // A reservation on a GPU the pod holds no entry for still occupies its slices (HAMi
            // restores it), or, on a GPU the node does not have, fails the node's MIG GPUs
            // closed (`NodeInventory::place`).
            let e = per.entry(a.gpu_uuid.as_str()).or_default();
            if init {
                e.0.mig |= a.mask();
            } else {
                e.1.mig |= a.mask();
            }
        }
        per.into_iter()
            .map(|(uuid, (init, app))| {
                let mut u = init.max(&app);
                if held.contains(&uuid) {
                    u.used = u.used.max(1);
                }
                (uuid.to_string(), u)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct QuotaEntry {
    mem_limit: Option<u64>,
    cores_limit: Option<u64>,
    used_mem: u64,
    used_cores: u64,
}

#[derive(Debug, Default)]
struct State {
    nodes: NodeTable,
    pods: FxHashMap<String, PodAlloc>,
    /// (namespace, vendor key) -> quota.
    quotas: FxHashMap<(String, String), QuotaEntry>,
    /// The distinct MIG geometries registered: every GPU of the same geometry points at one.
    geometries: Vec<SharedGeometry>,
}

/// Points each MIG-mode GPU at the cluster's copy of its geometry (adding it when new), and
/// forgets geometries no GPU registers any more.
fn intern(geometries: &mut Vec<SharedGeometry>, hot: &mut [DevHot]) {
    for d in hot.iter_mut() {
        let Some(g) = d.mig.as_mut() else { continue };
        match geometries.iter().find(|known| **known == *g) {
            Some(known) => *g = known.clone(),
            None => geometries.push(g.clone()),
        }
    }
    geometries.retain(|g| std::sync::Arc::strong_count(g) > 1);
}

/// The outcome of `filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterResult {
    /// The chosen node, if any fits.
    pub node: Option<String>,
    pub score: f64,
    /// Devices per container (init first) on the chosen node.
    pub devices: PodDevices,
    /// A reason for every candidate that does not fit, HAMi's summary format.
    pub failed: Vec<(String, String)>,
    /// Reasons counted over all failed nodes and devices, for metrics and events.
    pub reason_counts: ReasonCounts,
    /// Whether the devices were reserved in the state.
    pub reserved: bool,
    /// The vendors' pod annotations beyond the device lists (Ascend's runtime JSON,
    /// Cambricon's sMLU profile), to write with them.
    pub annotations: Vec<(String, String)>,
}

/// A device's inventory and usage, for metrics and the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUsageView {
    pub node: String,
    pub device: Device,
    pub usage: Usage,
    pub cordoned: bool,
}

pub struct Cluster {
    state: RwLock<State>,
    vendors: Vendors,
    node_policy: NodePolicy,
    gpu_policy: GpuPolicy,
    threads: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("Cluster")
            .field("nodes", &s.nodes.ids().count())
            .field("pods", &s.pods.len())
            .finish()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new(Vendors::default(), NodePolicy::Binpack, GpuPolicy::default())
    }
}

/// Candidates below this are evaluated on the calling thread.
const PARALLEL_MIN_NODES: usize = 1024;

impl Cluster {
    pub fn new(vendors: Vendors, node_policy: NodePolicy, gpu_policy: GpuPolicy) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        Cluster {
            state: RwLock::new(State::default()),
            vendors,
            node_policy,
            gpu_policy,
            threads,
        }
    }

    pub fn vendors(&self) -> &Vendors {
        &self.vendors
    }

    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Replaces a node's inventory (all vendors) and recomputes its usage from its pods.
    pub fn set_node(&self, name: &str, devices: Vec<Device>, pairs: &PairScores, cordoned: &[String]) {
        let (inv, mut hot) = NodeInventory::new(name, devices, pairs, cordoned, &self.vendors);
        let mut s = self.state.write();
        let State {
            nodes,
            pods,
            geometries,
            ..
        } = &mut *s;
        intern(geometries, &mut hot);
        let id = nodes.id_or_insert(name);
        nodes.set_inventory(id, inv, hot);
        recompute_usage(nodes, id, pods);
    }

    /// Forgets a node's inventory; its pods keep their allocations (they count again if the
    /// node comes back).
    pub fn remove_node(&self, name: &str) -> bool {
        let mut s = self.state.write();
        match s.nodes.id(name) {
            Some(id) if s.nodes.entry(id).inventory.is_some() => {
                s.nodes.clear_inventory(id);
                s.nodes.remove_if_unused(id);
                true
            }
            _ => false,
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        let s = self.state.read();
        let mut v: Vec<String> = s
            .nodes
            .ids()
            .map(|id| s.nodes.entry(id))
            .filter(|e| e.inventory.is_some())
            .map(|e| e.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Adds or replaces a pod's allocation.
    pub fn upsert_pod(&self, pod: PodAlloc) {
        let mut s = self.state.write();
        upsert_locked(&mut s, pod);
    }

    /// Adds many pods under one lock.
    pub fn upsert_pods(&self, pods: Vec<PodAlloc>) {
        let mut s = self.state.write();
        s.pods.reserve(pods.len());
        for p in pods {
            upsert_locked(&mut s, p);
        }
    }

    /// Removes a pod's allocation; returns whether it held one.
    pub fn remove_pod(&self, uid: &str) -> bool {
        let mut s = self.state.write();
        remove_locked(&mut s, uid).is_some()
    }

    pub fn pod(&self, uid: &str) -> Option<PodAlloc> {
        self.state.read().pods.get(uid).cloned()
    }

    pub fn pod_count(&self) -> usize {
        self.state.read().pods.len()
    }

    /// Marks a reservation as bound: it no longer expires, nor counts as in flight.
    pub fn mark_bound(&self, uid: &str) -> bool {
        let mut s = self.state.write();
        let State { nodes, pods, .. } = &mut *s;
        match pods.get_mut(uid) {
            Some(p) => {
                if p.reserved_at.take().is_some() {
                    if let Some(id) = nodes.id(&p.node) {
                        nodes.change_in_flight(id, false);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Marks a node's allocation lock as held (or free): one more allocation in flight there
    /// for `filter_with(prefer_idle)`. Returns whether the node is known.
    pub fn set_node_busy(&self, name: &str, busy: bool) -> bool {
        let mut s = self.state.write();
        match s.nodes.id(name) {
            Some(id) => {
                s.nodes.set_busy(id, busy);
                true
            }
            None => false,
        }
    }

    /// Allocations in flight on a node (see `filter_with`); 0 for an unknown node.
    pub fn in_flight(&self, name: &str) -> u32 {
        let s = self.state.read();
        s.nodes.id(name).map_or(0, |id| s.nodes.in_flight(id))
    }

    /// Releases every reservation made before `now - ttl` that was never bound; returns their UIDs.
    pub fn release_expired(&self, now: f64, ttl: f64) -> Vec<String> {
        let mut s = self.state.write();
        let expired: Vec<String> = s
            .pods
            .values()
            .filter(|p| p.reserved_at.is_some_and(|t| now - t >= ttl))
            .map(|p| p.uid.clone())
            .collect();
        for uid in &expired {
            remove_locked(&mut s, uid);
        }
        expired
    }

    /// Sets (or with both `None`, clears) a namespace quota for one vendor, in MiB and cores.
    pub fn set_quota(&self, namespace: &str, vendor: &str, mem_limit: Option<u64>, cores_limit: Option<u64>) {
        let mut s = self.state.write();
        let key = (namespace.to_string(), vendor.to_string());
        if mem_limit.is_none() && cores_limit.is_none() {
            if let Some(e) = s.quotas.get_mut(&key) {
                e.mem_limit = None;
                e.cores_limit = None;
            }
            return;
        }
        let e = s.quotas.entry(key).or_default();
        e.mem_limit = mem_limit;
        e.cores_limit = cores_limit;
    }

    /// (used MiB, used cores) of a namespace for a vendor.
    pub fn quota_usage(&self, namespace: &str, vendor: &str) -> (u64, u64) {
        let s = self.state.read();
        s.quotas
            .get(&(namespace.to_string(), vendor.to_string()))
            .map_or((0, 0), |e| (e.used_mem, e.used_cores))
    }

    /// Checks the invariants the fast paths rely on: every node's kept totals equal the sums of
    /// its devices' usage, and that usage equals what its pods' allocations add up to. For tests.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let s = self.state.read();
        for id in s.nodes.ids() {
            let e = s.nodes.entry(id);
            let unbound = e.pods.iter().filter(|uid| s.pods[*uid].reserved_at.is_some()).count();
            if s.nodes.unbound(id) as usize != unbound {
                return Err(format!(
                    "node {}: {} unbound reservations counted, {unbound} held",
                    e.name,
                    s.nodes.unbound(id)
                ));
            }
            let Some(inv) = e.inventory.as_ref() else { continue };
            let (hot, usage) = s.nodes.devices(id);
            if s.nodes.totals(id) != crate::table::NodeTotals::of(hot, usage) {
                return Err(format!("node {}: kept totals differ from its devices' usage", e.name));
            }
            let mut want = vec![Usage::default(); usage.len()];
            for uid in &e.pods {
                for (i, u) in inv.place(&s.pods[uid].collapsed()) {
                    want[i].add(&u);
                }
            }
            if want != usage {
                return Err(format!(
                    "node {}: usage {usage:?} but its pods add up to {want:?}",
                    e.name
                ));
            }
        }
        Ok(())
    }

    /// Every device with its usage, by node name then device index.
    pub fn usage(&self) -> Vec<DeviceUsageView> {
        let s = self.state.read();
        let mut ids: Vec<u32> = s.nodes.ids().collect();
        ids.sort_by(|a, b| s.nodes.entry(*a).name.cmp(&s.nodes.entry(*b).name));
        let mut out = Vec::new();
        for id in ids {
            let e = s.nodes.entry(id);
            if let Some(inv) = &e.inventory {
                let (hot, usage) = s.nodes.devices(id);
                for (i, d) in inv.devices.iter().enumerate() {
                    out.push(DeviceUsageView {
                        node: e.name.clone(),
                        device: d.clone(),
                        usage: usage[i],
                        cordoned: hot[i].cordoned,
                    });
                }
            }
        }
        out
    }

    /// Finds the best node among `candidates` for `pod` and, with `reserve`, records the
    /// allocation (replacing any earlier one of the same UID) before any other filter can run.
    pub fn filter(&self, pod: &PodRequest, candidates: &[&str], reserve: bool, now: f64) -> Result<FilterResult> {
        self.filter_with(pod, candidates, reserve, now, Burst::default())
    }

    /// `filter`, with the allocations in flight on each node (unbound reservations, a held
    /// allocation lock: `set_node_busy`) weighed as `burst` says: with `prefer_idle` the
    /// fitting nodes with the fewest come first, the node policy deciding among them; with a
    /// binpack window, the burst spreads over the nodes packing fills next anyway
    /// ([`crate::burst`]). A bind on a node whose lock is held waits until the device plugin
    /// has allocated the previous pod there, while kube-scheduler filters the next pods long
    /// before that: with the policy alone a burst would queue on one node's lock.
    pub fn filter_with(
        &self,
        pod: &PodRequest,
        candidates: &[&str],
        reserve: bool,
        now: f64,
        burst: Burst,
    ) -> Result<FilterResult> {
        let guard = self.state.upgradable_read();
        // A retried pod starts clean: its earlier reservation is not counted against it. A
        // bound pod is not retried: kube-scheduler can ask again only before it sees the
        // binding (a bind whose answer was lost), and its devices stay its own.
        let previous = guard.pods.get(&pod.uid).cloned();
        if let Some(p) = previous.as_ref().filter(|p| reserve && p.reserved_at.is_none()) {
            return Err(Error::AlreadyBound {
                pod: format!("{}/{}", p.namespace, p.name),
                node: p.node.clone(),
            });
        }
        let quota = |vendor: &str| -> QuotaRoom {
            let Some(q) = guard.quotas.get(&(pod.namespace.clone(), vendor.to_string())) else {
                return QuotaRoom::default();
            };
            let (mut used_mem, mut used_cores) = (q.used_mem, q.used_cores);
            if let Some(p) = previous.as_ref() {
                let (m, c) = pod_vendor_totals(p, vendor);
                used_mem = used_mem.saturating_sub(m);
                used_cores = used_cores.saturating_sub(c);
            }
            QuotaRoom {
                mem: q.mem_limit.map(|l| l.saturating_sub(used_mem)),
                cores: q.cores_limit.map(|l| l.saturating_sub(used_cores)),
            }
        };
        let plan = PodPlan::new(pod, &self.vendors, self.node_policy, &self.gpu_policy, quota)?;
        let outcomes = self.evaluate(&guard, &plan, candidates, previous.as_ref(), burst);
        let mut result = FilterResult {
            node: None,
            score: 0.0,
            devices: Vec::new(),
            failed: Vec::new(),
            reason_counts: ReasonCounts::default(),
            reserved: false,
            annotations: Vec::new(),
        };
        let mut best: Option<(usize, f64, u32)> = None;
        let windowed = burst.windowed(plan.node_policy);
        let mut fits: Vec<Fitting> = Vec::new();
        for (ci, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Fit(score, flight, copies) => {
                    if windowed {
                        fits.push(Fitting {
                            candidate: ci,
                            score,
                            flight,
                            copies,
                        });
                    }
                    let better = match &best {
                        None => true,
                        Some((bi, b, bf)) => {
                            let ord = match plan.node_policy {
                                NodePolicy::Binpack => score.total_cmp(b),
                                NodePolicy::Spread => b.total_cmp(&score),
                            };
                            bf.cmp(&flight)
                                .then(ord)
                                .then_with(|| candidates[*bi].cmp(candidates[ci]))
                                .is_gt()
                        }
                    };
                    if better {
                        best = Some((ci, score, flight));
                    }
                }
                Outcome::Miss(summary, counts) => {
                    result.reason_counts.merge(&counts);
                    result.failed.push((candidates[ci].to_string(), summary));
                }
                Outcome::Unregistered => result
                    .failed
                    .push((candidates[ci].to_string(), NODE_UNREGISTERED.to_string())),
            }
        }
        let Some((mut ci, mut score, _)) = best else {
            return Ok(result);
        };
        if windowed {
            ci = choose(&mut fits, |i| candidates[i], burst.backlog, burst.window);
            score = fits.iter().find(|f| f.candidate == ci).map_or(score, |f| f.score);
        }
        let node_name = candidates[ci];
        let id = guard.nodes.id(node_name).expect("a fitting node is registered");
        let inv = guard
            .nodes
            .entry(id)
            .inventory
            .as_ref()
            .expect("a fitting node has an inventory");
        let (hot, usage) = guard.nodes.devices(id);
        // The scan kept scores only; fit the winner again to get its devices.
        let mut own = Vec::new();
        let usage = usage_without(usage, inv, previous.as_ref(), node_name, &mut own);
        let fit = fit_node(inv, hot, usage, &plan, &mut Scratch::default(), true)
            .expect("the chosen node fits again under the same lock");
        result.devices = fit
            .containers
            .iter()
            .map(|picks| {
                picks
                    .iter()
                    .map(|p| AllocDevice {
                        uuid: inv.devices[p.device].id.clone(),
                        vendor: plan.vendors[p.vendor].rules.spec().key.clone(),
                        usedmem: p.mem,
                        usedcores: p.cores,
                    })
                    .collect()
            })
            .collect();
        let mig = mig_allocations(inv, hot, &fit.containers);
        if !mig.is_empty() {
            result
                .annotations
                .push((MIG_ALLOCATIONS.to_string(), encode_mig_allocations(&mig)));
        }
        for (vi, vp) in plan.vendors.iter().enumerate() {
            let given: Vec<Vec<Given<'_>>> = fit
                .containers
                .iter()
                .map(|picks| {
                    picks
                        .iter()
                        .filter(|p| p.vendor == vi)
                        .map(|p| Given {
                            device: &inv.devices[p.device],
                            mem: p.mem,
                            cores: p.cores,
                        })
                        .collect()
                })
                .collect();
            result
                .annotations
                .extend(vp.rules.allocation_annotations(&given, &pod.annotations, now));
        }
        result.node = Some(node_name.to_string());
        result.score = score;
        if reserve {
            let mut w = RwLockUpgradableReadGuard::upgrade(guard);
            upsert_locked(
                &mut w,
                PodAlloc {
                    uid: pod.uid.clone(),
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    node: node_name.to_string(),
                    containers: result.devices.clone(),
                    init_count: pod.init_count(),
                    init_done: false,
                    reserved_at: Some(now),
                    mig,
                },
            );
            result.reserved = true;
        }
        Ok(result)
    }

    fn evaluate(
        &self,
        s: &State,
        plan: &PodPlan,
        candidates: &[&str],
        previous: Option<&PodAlloc>,
        burst: Burst,
    ) -> Vec<Outcome> {
        let flights = burst.counts_flight(plan.node_policy);
        let windowed = burst.windowed(plan.node_policy);
        let single = plan.single();
        let needs_inventory = plan.needs_inventory();
        let run = |chunk: &[&str]| -> Vec<Outcome> {
            let mut scratch = Scratch::default();
            let mut own = Vec::new();
            chunk
                .iter()
                .map(|name| {
                    let Some(id) = s.nodes.id(name) else {
                        return Outcome::Unregistered;
                    };
                    if !s.nodes.registered(id) {
                        return Outcome::Unregistered;
                    }
                    // The cold inventory is a separate allocation: touch it only when needed.
                    let inv = || {
                        s.nodes
                            .entry(id)
                            .inventory
                            .as_ref()
                            .expect("a registered node has an inventory")
                    };
                    let (hot, usage) = s.nodes.devices(id);
                    let (usage, totals) = match previous {
                        Some(p) if p.node == *name => (usage_without(usage, inv(), previous, name, &mut own), None),
                        _ => (usage, Some(s.nodes.totals(id))),
                    };
                    let scored = match single {
                        Some((vi, req)) => score_single(needs_inventory.then(inv), hot, usage, totals, plan, vi, req)
                            .map(|(score, _)| score),
                        None => fit_node(inv(), hot, usage, plan, &mut scratch, false).map(|f| f.score),
                    };
                    match scored {
                        Ok(score) => {
                            // A retried pod's own reservation is not in flight against it.
                            let own = previous.is_some_and(|p| p.reserved_at.is_some() && p.node == *name);
                            let flight = if flights {
                                s.nodes.in_flight(id) - u32::from(own)
                            } else {
                                0
                            };
                            let copies = if windowed { copies_on(plan, hot, usage) } else { 0 };
                            Outcome::Fit(score, flight, copies)
                        }
                        Err(miss) => Outcome::Miss(miss.summary, miss.counts),
                    }
                })
                .collect()
        };
        if candidates.len() < PARALLEL_MIN_NODES || self.threads <= 1 {
            return run(candidates);
        }
        let chunk = candidates.len().div_ceil(self.threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = candidates
                .chunks(chunk)
                .skip(1)
                .map(|c| scope.spawn(move || run(c)))
                .collect();
            let mut out = run(&candidates[..chunk.min(candidates.len())]);
            for h in handles {
                out.extend(h.join().expect("filter worker panicked"));
            }
            out
        })
    }
}

enum Outcome {
    /// The node fits, with this score and (when asked) this many allocations in flight and
    /// about this many more pods like this one it takes.
    Fit(f64, u32, u64),
    Miss(String, ReasonCounts),
    Unregistered,
}

/// The MIG instances of a fit, as the reservation annotation lists them: per container, the
/// device's position in its list, the GPU and the profile and placement chosen on it.
fn mig_allocations(inv: &NodeInventory, hot: &[DevHot], containers: &[Vec<Pick>]) -> Vec<MigAlloc> {
    let mut out = Vec::new();
    for (ci, picks) in containers.iter().enumerate() {
        for (di, p) in picks.iter().enumerate() {
            let (Some(pick), Some(g)) = (p.mig, &hot[p.device].mig) else {
                continue;
            };
            let (start, size) = g.placement(pick);
            out.push(MigAlloc {
                container: ci as u32,
                device: di as u32,
                gpu_uuid: inv.devices[p.device].id.clone(),
                profile: g.profile(pick).name.clone(),
                start,
                size,
                runtime: None,
            });
        }
    }
    out
}

fn pod_vendor_totals(p: &PodAlloc, vendor: &str) -> (u64, u64) {
    p.collapsed()
        .iter()
        .filter(|(uuid, _)| {
            p.containers
                .iter()
                .flatten()
                .any(|d| d.uuid == *uuid && d.vendor == vendor)
        })
        .fold((0, 0), |(m, c), (_, u)| (m + u.usedmem, c + u64::from(u.usedcores)))
}

/// A node's usage, less `previous` when it is a reservation of the same pod on this node.
fn usage_without<'a>(
    usage: &'a [Usage],
    inv: &NodeInventory,
    previous: Option<&PodAlloc>,
    name: &str,
    own: &'a mut Vec<Usage>,
) -> &'a [Usage] {
    match previous {
        Some(p) if p.node == name => {
            own.clear();
            own.extend_from_slice(usage);
            for (i, u) in inv.place(&p.collapsed()) {
                own[i].sub(&u);
            }
            own
        }
        _ => usage,
    }
}

fn recompute_usage(nodes: &mut NodeTable, id: u32, pods: &FxHashMap<String, PodAlloc>) {
    let NodeEntry {
        inventory, pods: uids, ..
    } = nodes.entry(id);
    let Some(inv) = inventory.as_ref() else { return };
    let mut usage = vec![Usage::default(); inv.devices.len()];
    for uid in uids {
        if let Some(p) = pods.get(uid) {
            for (i, u) in inv.place(&p.collapsed()) {
                usage[i].add(&u);
            }
        }
    }
    nodes.set_usage(id, &usage);
}

fn apply(s: &mut State, pod: &PodAlloc, add: bool) {
    let collapsed = pod.collapsed();
    if let Some(id) = s.nodes.id(&pod.node) {
        if pod.reserved_at.is_some() {
            s.nodes.change_in_flight(id, add);
        }
        let placed = match s.nodes.entry(id).inventory.as_ref() {
            Some(inv) => inv.place(&collapsed),
            None => Vec::new(),
        };
        for (i, u) in &placed {
            s.nodes.change_usage(id, *i, u, add);
        }
    }
    let mut per_vendor: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (uuid, u) in &collapsed {
        if let Some(d) = pod.containers.iter().flatten().find(|d| d.uuid == *uuid) {
            let e = per_vendor.entry(d.vendor.as_str()).or_default();
            e.0 += u.usedmem;
            e.1 += u64::from(u.usedcores);
        }
    }
    for (vendor, (m, c)) in per_vendor {
        let q = s.quotas.entry((pod.namespace.clone(), vendor.to_string())).or_default();
        if add {
            q.used_mem += m;
            q.used_cores += c;
        } else {
            q.used_mem = q.used_mem.saturating_sub(m);
            q.used_cores = q.used_cores.saturating_sub(c);
        }
    }
}

fn remove_locked(s: &mut State, uid: &str) -> Option<PodAlloc> {
    let old = s.pods.remove(uid)?;
    apply(s, &old, false);
    if let Some(id) = s.nodes.id(&old.node) {
        s.nodes.entry_mut(id).pods.remove(uid);
        s.nodes.remove_if_unused(id);
    }
    Some(old)
}

fn upsert_locked(s: &mut State, pod: PodAlloc) {
    remove_locked(s, &pod.uid);
    // The node first, so that `apply` counts the reservation on it even before it registers.
    let id = s.nodes.id_or_insert(&pod.node);
    apply(s, &pod, true);
    s.nodes.entry_mut(id).pods.insert(pod.uid.clone());
    s.pods.insert(pod.uid.clone(), pod);
}
