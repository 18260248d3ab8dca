//! Node storage laid out for the filter scan: names map to small ids, and every node's hot
//! device fields and usage sit in two contiguous arrays, so a scan over thousands of nodes
//! touches a couple of megabytes instead of chasing a pointer per node and device.

use crate::model::Usage;
use crate::node::{DevHot, NodeInventory};
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use std::hash::BuildHasher;

/// A node's sums over every device: capacity (fixed by the inventory) and usage (kept in step
/// with every usage change), so the node score needs no walk over the devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeTotals {
    pub count: u64,
    pub devcore: u64,
    pub devmem: u64,
    pub used: u64,
    pub usedcores: u64,
    pub usedmem: u64,
}

impl NodeTotals {
    pub fn of(hot: &[DevHot], usage: &[Usage]) -> Self {
        let mut t = NodeTotals::default();
        for (d, u) in hot.iter().zip(usage) {
            t.count += u64::from(d.count);
            t.devcore += u64::from(d.devcore);
            t.devmem += d.devmem;
            t.used += u64::from(u.used);
            t.usedcores += u64::from(u.usedcores);
            t.usedmem += u.usedmem;
        }
        t
    }
}

#[derive(Debug, Default)]
pub struct NodeEntry {
    pub name: String,
    pub inventory: Option<NodeInventory>,
    /// UIDs of the pods whose allocations are on this node.
    pub pods: FxHashSet<String>,
}

/// Node names are looked up by a 64-bit hash of their bytes, checked against a contiguous name
/// arena: the scan touches no per-name heap allocation. Names whose hash is already taken by
/// another name (practically never) live in `collisions`, so lookups stay exact.
#[derive(Debug, Default)]
pub struct NodeTable {
    index: FxHashMap<u64, u32>,
    collisions: FxHashMap<String, u32>,
    arena: String,
    /// Per id: `(start, len)` of its name in `arena`.
    names: Vec<(u32, u32)>,
    entries: Vec<NodeEntry>,
    /// Per id: `(start, len)` into `hot` and `usage`.
    ranges: Vec<(u32, u32)>,
    registered: Vec<bool>,
    totals: Vec<NodeTotals>,
    /// Per id: reservations on the node not yet bound, plus one while its allocation lock is
    /// held (`set_busy`): the allocations in flight there.
    in_flight: Vec<u32>,
    busy: Vec<bool>,
    hot: Vec<DevHot>,
    usage: Vec<Usage>,
    free_ids: Vec<u32>,
    /// Slots in `hot`/`usage` no range points at any more.
    waste: usize,
}

impl NodeTable {
    fn hash(name: &str) -> u64 {
        FxBuildHasher.hash_one(name)
    }

    fn name_of(&self, id: u32) -> &str {
        let (start, len) = self.names[id as usize];
        &self.arena[start as usize..(start + len) as usize]
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        match self.index.get(&Self::hash(name)) {
            Some(&id) if self.name_of(id) == name => Some(id),
            Some(_) => self.collisions.get(name).copied(),
            None => None,
        }
    }

    pub fn id_or_insert(&mut self, name: &str) -> u32 {
        if let Some(id) = self.id(name) {
            return id;
        }
        let entry = NodeEntry {
            name: name.to_string(),
            ..NodeEntry::default()
        };
        let start = self.arena.len() as u32;
        self.arena.push_str(name);
        let span = (start, name.len() as u32);
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                self.ranges[id as usize] = (0, 0);
                self.registered[id as usize] = false;
                self.totals[id as usize] = NodeTotals::default();
                self.in_flight[id as usize] = 0;
                self.busy[id as usize] = false;
                self.names[id as usize] = span;
                id
            }
            None => {
                self.entries.push(entry);
                self.ranges.push((0, 0));
                self.registered.push(false);
                self.totals.push(NodeTotals::default());
                self.in_flight.push(0);
                self.busy.push(false);
                self.names.push(span);
                (self.entries.len() - 1) as u32
            }
        };
        match self.index.entry(Self::hash(name)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(name.to_string(), id);
            }
        }
        id
    }

    pub fn entry(&self, id: u32) -> &NodeEntry {
        &self.entries[id as usize]
    }

    pub fn entry_mut(&mut self, id: u32) -> &mut NodeEntry {
        &mut self.entries[id as usize]
    }

    /// Whether the node has an inventory (from the hot arrays; no cold read).
    pub fn registered(&self, id: u32) -> bool {
        self.registered[id as usize]
    }

    /// The node's hot device fields and usage.
    pub fn devices(&self, id: u32) -> (&[DevHot], &[Usage]) {
        let (start, len) = self.ranges[id as usize];
        let r = start as usize..(start + len) as usize;
        (&self.hot[r.clone()], &self.usage[r])
    }

    pub fn totals(&self, id: u32) -> NodeTotals {
        self.totals[id as usize]
    }

    /// Allocations in flight on the node: unbound reservations, plus one while it is busy.
    pub fn in_flight(&self, id: u32) -> u32 {
        self.in_flight[id as usize] + u32::from(self.busy[id as usize])
    }

    /// Unbound reservations counted on the node.
    pub fn unbound(&self, id: u32) -> u32 {
        self.in_flight[id as usize]
    }

    /// Counts one more (or one fewer) unbound reservation on the node.
    pub fn change_in_flight(&mut self, id: u32, add: bool) {
        let n = &mut self.in_flight[id as usize];
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
    }

    pub fn set_busy(&mut self, id: u32, busy: bool) {
        self.busy[id as usize] = busy;
    }

    /// Replaces the node's usage (in device order) and its totals.
    pub fn set_usage(&mut self, id: u32, usage: &[Usage]) {
        let (start, len) = self.ranges[id as usize];
        let r = start as usize..(start + len) as usize;
        self.usage[r.clone()].copy_from_slice(usage);
        self.totals[id as usize] = NodeTotals::of(&self.hot[r.clone()], &self.usage[r]);
    }

    /// Adds (or takes away) one device's usage, keeping the node's totals in step.
    pub fn change_usage(&mut self, id: u32, device: usize, delta: &Usage, add: bool) {
        let (start, _) = self.ranges[id as usize];
        let slot = &mut self.usage[start as usize + device];
        let before = *slot;
        if add {
            slot.add(delta);
        } else {
            slot.sub(delta);
        }
        let after = *slot;
        let t = &mut self.totals[id as usize];
        t.used = t.used + u64::from(after.used) - u64::from(before.used);
        t.usedcores = t.usedcores + u64::from(after.usedcores) - u64::from(before.usedcores);
        t.usedmem = t.usedmem + after.usedmem - before.usedmem;
    }

    /// Installs a node's inventory with zero usage (the caller recomputes it).
    pub fn set_inventory(&mut self, id: u32, inv: NodeInventory, hot: Vec<DevHot>) {
        let (start, len) = self.ranges[id as usize];
        if len as usize == hot.len() && len > 0 {
            let r = start as usize..(start + len) as usize;
            self.hot[r.clone()].clone_from_slice(&hot);
            self.usage[r].fill(Usage::default());
        } else {
            self.waste += len as usize;
            let start = self.hot.len() as u32;
            self.ranges[id as usize] = (start, hot.len() as u32);
            self.usage.extend(std::iter::repeat_n(Usage::default(), hot.len()));
            self.hot.extend(hot);
        }
        self.entries[id as usize].inventory = Some(inv);
        self.registered[id as usize] = true;
        let (start, len) = self.ranges[id as usize];
        let r = start as usize..(start + len) as usize;
        self.totals[id as usize] = NodeTotals::of(&self.hot[r.clone()], &self.usage[r]);
        self.compact_if_wasteful();
    }

    pub fn clear_inventory(&mut self, id: u32) {
        let (_, len) = self.ranges[id as usize];
        self.waste += len as usize;
        self.ranges[id as usize] = (0, 0);
        self.entries[id as usize].inventory = None;
        self.registered[id as usize] = false;
        self.totals[id as usize] = NodeTotals::default();
        self.compact_if_wasteful();
    }

    /// Drops a node that has neither inventory nor pods.
    pub fn remove_if_unused(&mut self, id: u32) {
        let e = &self.entries[id as usize];
        if e.inventory.is_none() && e.pods.is_empty() {
            let name = std::mem::take(&mut self.entries[id as usize].name);
            let h = Self::hash(&name);
            if self.collisions.remove(&name).is_none() {
                self.index.remove(&h);
                // Promote a colliding name with the same hash, if any.
                if let Some((other, &oid)) = self.collisions.iter().find(|(n, _)| Self::hash(n) == h) {
                    let other = other.clone();
                    self.collisions.remove(&other);
                    self.index.insert(h, oid);
                }
            }
            self.names[id as usize] = (0, 0);
            self.free_ids.push(id);
            if self.arena.len() > 4096 && self.arena.len() > 2 * self.live_name_bytes() {
                self.compact_names();
            }
        }
    }

    fn live_name_bytes(&self) -> usize {
        self.names.iter().map(|(_, len)| *len as usize).sum()
    }

    fn compact_names(&mut self) {
        let mut arena = String::with_capacity(self.live_name_bytes());
        for span in &mut self.names {
            let (start, len) = *span;
            let name = &self.arena[start as usize..(start + len) as usize];
            *span = (arena.len() as u32, len);
            arena.push_str(name);
        }
        self.arena = arena;
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.values().chain(self.collisions.values()).copied()
    }

    fn compact_if_wasteful(&mut self) {
        if self.waste < 4096 || self.waste * 2 < self.hot.len() {
            return;
        }
        let mut hot = Vec::with_capacity(self.hot.len() - self.waste);
        let mut usage = Vec::with_capacity(hot.capacity());
        for range in &mut self.ranges {
            let (start, len) = *range;
            let r = start as usize..(start + len) as usize;
            *range = (hot.len() as u32, len);
            hot.extend_from_slice(&self.hot[r.clone()]);
            usage.extend_from_slice(&self.usage[r]);
        }
        self.hot = hot;
        self.usage = usage;
        self.waste = 0;
    }
}
