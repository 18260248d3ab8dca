//! Where a burst of pods goes while earlier ones are still being allocated.
//!
//! A device plugin learns which pod an `Allocate` is for only by finding the one pod being
//! allocated on its node, so each node allocates one pod at a time, and a bind to a node with an
//! allocation in flight waits for it. kube-scheduler filters the next pods long before that: with
//! `binpack` alone every pod of a burst would queue on the fullest node. With a window, the
//! filter spreads a binpack burst over the few nodes that packing fills next anyway, counted from
//! the pods still waiting to be placed: the burst ends on the nodes one-at-a-time packing would
//! use, with several of them allocating at once.

use crate::fit::PodPlan;
use crate::model::{DeviceMode, Usage};
use crate::node::DevHot;
use crate::policy::NodePolicy;

/// How a filter weighs the allocations in flight on each node (`Cluster::filter_with`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    /// Fitting nodes with the fewest allocations in flight come first, whatever the policy
    /// (spreads a burst over every fitting node).
    pub prefer_idle: bool,
    /// Pods waiting to be placed besides this one (the burst still to come).
    pub backlog: u32,
    /// With `binpack`, the most nodes a burst allocates on at once: among the nodes packing
    /// fills next, as many as the backlog fills and at most this many, the one with the fewest
    /// allocations in flight is chosen. 0 or 1: the policy alone.
    pub window: u32,
}

impl Burst {
    /// Whether the choice among fitting nodes depends on their allocations in flight.
    pub fn counts_flight(&self, policy: NodePolicy) -> bool {
        self.prefer_idle || self.windowed(policy)
    }

    /// Whether the window applies: binpack, a backlog, and room for more than one node.
    pub fn windowed(&self, policy: NodePolicy) -> bool {
        !self.prefer_idle && policy == NodePolicy::Binpack && self.backlog > 0 && self.window > 1
    }
}

/// A fitting node as the window sees it.
#[derive(Debug, Clone, Copy)]
pub struct Fitting {
    /// Position in the filter's candidates.
    pub candidate: usize,
    pub score: f64,
    pub flight: u32,
    /// About how many more pods like this one the node takes ([`copies_on`]).
    pub copies: u64,
}

/// The candidate a windowed binpack burst goes to (`fits` non-empty, `name` of a candidate):
/// the fitting nodes in binpack order (fullest first, then by name, as the plain filter ranks
/// them), the shortest prefix that takes this pod and the backlog (at most `window` nodes), and
/// in it the node with the fewest allocations in flight, the fuller first on a tie.
pub fn choose<'a>(fits: &mut [Fitting], name: impl Fn(usize) -> &'a str, backlog: u32, window: u32) -> usize {
    let order = |a: &Fitting, b: &Fitting| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| name(a.candidate).cmp(name(b.candidate)))
    };
    // Only the first `window` in binpack's order matter: select them, then order them.
    let head = (window.max(1) as usize).min(fits.len());
    if head < fits.len() {
        fits.select_nth_unstable_by(head - 1, order);
    }
    fits[..head].sort_by(order);
    let need = u64::from(backlog) + 1;
    let mut room = 0u64;
    let mut width = 0usize;
    for f in fits[..head].iter() {
        width += 1;
        room = room.saturating_add(f.copies.max(1));
        if room >= need {
            break;
        }
    }
    fits[..width]
        .iter()
        .min_by_key(|f| f.flight) // the first of equals: the fuller
        .expect("a fitting node")
        .candidate
}

/// About how many more pods asking what `plan` asks fit on a node with these devices and this
/// usage: per request, the slices of it each usable device still takes (free slots, memory and
/// cores), summed and divided by the devices it asks for; the smallest over the pod's
/// requests. Selectors and topology are not applied: an estimate that only orders a burst.
pub fn copies_on(plan: &PodPlan, hot: &[DevHot], usage: &[Usage]) -> u64 {
    let containers = plan.containers.iter().filter(|(init, _)| !init);
    let mut least: Option<u64> = None;
    for (vi, req) in containers.flat_map(|(_, reqs)| reqs) {
        let vendor = plan.vendors[*vi].id;
        let cores = u64::from(req.cores.min(100));
        let slices: u64 = hot
            .iter()
            .zip(usage)
            .filter(|(d, _)| d.vendor == vendor && d.health && !d.cordoned && d.mode != DeviceMode::Mig)
            .map(|(d, u)| {
                let slots = u64::from(d.count.saturating_sub(u.used));
                let mem = req.mem_on(d.devmem);
                let by_mem = d.devmem.saturating_sub(u.usedmem).checked_div(mem).unwrap_or(u64::MAX);
                let free_cores = u64::from(d.devcore.saturating_sub(u.usedcores));
                let by_cores = if cores == 100 {
                    u64::from(u.used == 0 && u.usedcores == 0)
                } else {
                    free_cores.checked_div(cores).unwrap_or(u64::MAX)
                };
                slots.min(by_mem).min(by_cores)
            })
            .sum();
        let copies = slices / u64::from(req.count.max(1));
        least = Some(least.map_or(copies, |l| l.min(copies)));
    }
    least.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(candidate: usize, score: f64, flight: u32, copies: u64) -> Fitting {
        Fitting {
            candidate,
            score,
            flight,
            copies,
        }
    }

    const NAMES: [&str; 4] = ["a", "b", "c", "d"];

    #[test]
    fn the_window_holds_what_the_backlog_fills_and_no_more() {
        // a is fullest and busy; b and c come next, each taking 2 more pods; d is empty.
        let fits = [
            fit(0, 0.9, 1, 2),
            fit(1, 0.5, 0, 2),
            fit(2, 0.5, 0, 2),
            fit(3, 0.0, 0, 8),
        ];
        // A backlog of 1 fits in a with this pod: a, queued (the window holds one node).
        assert_eq!(choose(&mut fits.clone(), |i| NAMES[i], 1, 4), 0);
        // A backlog of 2: a and b fill with it, b is idle.
        assert_eq!(choose(&mut fits.clone(), |i| NAMES[i], 2, 4), 1);
        // b busy too: c is within the window only once the backlog reaches it.
        let mut busy_b = fits;
        busy_b[1].flight = 1;
        assert_eq!(
            choose(&mut busy_b.clone(), |i| NAMES[i], 3, 4),
            0,
            "a and b hold it all"
        );
        assert_eq!(choose(&mut busy_b.clone(), |i| NAMES[i], 4, 4), 2);
        // The window caps the width: at 2, c stays out however long the backlog.
        assert_eq!(choose(&mut busy_b.clone(), |i| NAMES[i], 100, 2), 0);
    }

    #[test]
    fn ties_go_by_name_as_the_plain_filter() {
        let fits = [fit(2, 0.0, 0, 8), fit(1, 0.0, 0, 8), fit(0, 0.0, 1, 8)];
        // a (busy) comes first by name, then b: b takes it.
        assert_eq!(choose(&mut fits.clone(), |i| NAMES[i], 50, 3), 1);
    }

    #[test]
    fn a_node_with_no_estimate_still_widens_the_window_by_one() {
        // copies 0 (the estimate says none, the fit says one): counted as one.
        let fits = [fit(0, 0.9, 1, 0), fit(1, 0.5, 0, 0)];
        assert_eq!(choose(&mut fits.clone(), |i| NAMES[i], 1, 4), 1);
    }

    #[test]
    fn only_binpack_with_a_backlog_and_a_window_is_windowed() {
        let b = Burst {
            prefer_idle: false,
            backlog: 3,
            window: 4,
        };
        assert!(b.windowed(NodePolicy::Binpack));
        assert!(!b.windowed(NodePolicy::Spread));
        assert!(!Burst { backlog: 0, ..b }.windowed(NodePolicy::Binpack));
        assert!(!Burst { window: 1, ..b }.windowed(NodePolicy::Binpack));
        let idle = Burst { prefer_idle: true, ..b };
        assert!(!idle.windowed(NodePolicy::Binpack) && idle.counts_flight(NodePolicy::Spread));
        assert!(!Burst::default().counts_flight(NodePolicy::Binpack));
    }
}
