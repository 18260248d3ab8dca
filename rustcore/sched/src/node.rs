//! A node's inventory as the scheduler holds it: its devices (every vendor), lower-cased types
//! for selector matching, the NVLink pair scores as a dense matrix, and cordoned devices.

use crate::codec::PairScores;
use crate::mig::{Geometry, SharedGeometry};
use crate::model::{Device, DeviceMode, Usage};
use crate::vendor::Vendors;
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// The fields the fit reads for every device of every candidate, packed so that a node's
/// devices share a few cache lines (the scan over 5,000 nodes is memory-bound).
#[derive(Debug, Clone, PartialEq)]
pub struct DevHot {
    pub devmem: u64,
    pub count: u32,
    pub devcore: u32,
    pub numa: i32,
    pub index: u32,
    /// Position of the device's vendor in [`Vendors`]; `u16::MAX` for a vendor none serves.
    pub vendor: u16,
    pub mode: DeviceMode,
    pub health: bool,
    pub cordoned: bool,
    /// `10/count`, `10/devcore`, `10/devmem` (0 when any is 0): the device score multiplies
    /// instead of dividing, three divisions per device per candidate saved.
    pub score_scale: [f64; 3],
    /// A MIG-mode GPU's geometry (what it may be cut into), shared by every GPU of the cluster
    /// that registers the same (`State` interns them, so the fit reads one copy from cache).
    pub mig: Option<SharedGeometry>,
}

#[derive(Debug, Clone, Default)]
pub struct NodeInventory {
    pub name: String,
    pub devices: Vec<Device>,
    /// `devices[i].type_` lower-cased, for the case-insensitive type selectors.
    pub types_lower: Vec<String>,
    /// `pair[i * n + j]`: the topology score between devices i and j (0 when unknown).
    pub pair: Vec<i64>,
    pub uuid_index: FxHashMap<String, usize>,
}

impl NodeInventory {
    /// The inventory and the hot fields of its devices (which the node table stores apart).
    pub fn new(
        name: &str,
        devices: Vec<Device>,
        pairs: &PairScores,
        cordoned: &[String],
        vendors: &Vendors,
    ) -> (Self, Vec<DevHot>) {
        let n = devices.len();
        let uuid_index: FxHashMap<String, usize> = devices.iter().enumerate().map(|(i, d)| (d.id.clone(), i)).collect();
        let mut pair = vec![0i64; n * n];
        for (uuid, scores) in pairs {
            if let Some(&i) = uuid_index.get(uuid) {
                for (other, s) in scores {
                    if let Some(&j) = uuid_index.get(other) {
                        pair[i * n + j] = *s;
                    }
                }
            }
        }
        let mut geometries: Vec<(&serde_json::Value, &str, SharedGeometry)> = Vec::new();
        let mut mig: Vec<Option<SharedGeometry>> = devices
            .iter()
            .map(|d| {
                let reg = d.mig_profiles.as_ref().filter(|_| d.mode == DeviceMode::Mig)?;
                // GPUs of one model register the same profiles: parse each registration once.
                if let Some((_, _, g)) = geometries.iter().find(|(r, t, _)| *r == reg && *t == d.type_) {
                    return Some(g.clone());
                }
                let g = Arc::new(Geometry::from_registration(reg, &d.type_)?);
                geometries.push((reg, &d.type_, g.clone()));
                Some(g)
            })
            .collect();
        let hot = devices
            .iter()
            .zip(mig.iter_mut())
            .map(|(d, mig)| DevHot {
                devmem: d.devmem,
                count: d.count,
                devcore: d.devcore,
                numa: d.numa,
                index: d.index,
                vendor: vendors.id_of(&d.vendor).unwrap_or(u16::MAX),
                mode: d.mode,
                health: d.health,
                cordoned: cordoned.contains(&d.id),
                score_scale: if d.count == 0 || d.devcore == 0 || d.devmem == 0 {
                    [0.0; 3]
                } else {
                    [
                        10.0 / f64::from(d.count),
                        10.0 / f64::from(d.devcore),
                        10.0 / d.devmem as f64,
                    ]
                },
                mig: mig.take(),
            })
            .collect();
        let inv = NodeInventory {
            name: name.to_string(),
            types_lower: devices.iter().map(|d| d.type_.to_lowercase()).collect(),
            devices,
            pair,
            uuid_index,
        };
        (inv, hot)
    }

    pub fn pair_score(&self, i: usize, j: usize) -> i64 {
        self.pair[i * self.devices.len() + j]
    }

    /// Where a pod's usage (`PodAlloc::collapsed`) lands on this node: (device index, usage).
    /// Usage of a device the node does not have is dropped, but a MIG reservation naming such a
    /// GPU leaves what the node's MIG instances hold unknown: until it is resolved, every
    /// MIG-mode GPU of the node counts one more user without a reservation, which the fit
    /// refuses (HAMi's fail-closed rebuild, `hami-control-plane.md` §4.7).
    pub fn place(&self, collapsed: &[(String, Usage)]) -> Vec<(usize, Usage)> {
        let mut out = Vec::with_capacity(collapsed.len());
        let mut strays: u16 = 0;
        for (uuid, u) in collapsed {
            match self.uuid_index.get(uuid) {
                Some(&i) => out.push((i, *u)),
                None if u.mig != 0 => strays = strays.saturating_add(1),
                None => {}
            }
        }
        if strays > 0 {
            let stray = Usage {
                unreserved: strays,
                ..Usage::default()
            };
            for (i, d) in self.devices.iter().enumerate() {
                if d.mode == DeviceMode::Mig {
                    out.push((i, stray));
                }
            }
        }
        out
    }
}

/// HAMi's node usage ratio: `10 × (ΣUsed/ΣCount + ΣUsedcores/ΣTotalcore + ΣUsedmem/ΣTotalmem)`
/// over every device of the node; 0 when a denominator is 0.
pub fn usage_score(hot: &[DevHot], usage: &[Usage]) -> f64 {
    let (mut used, mut count, mut cores, mut tcores, mut mem, mut tmem) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for (d, u) in hot.iter().zip(usage) {
        used += u64::from(u.used);
        count += u64::from(d.count);
        cores += u64::from(u.usedcores);
        tcores += u64::from(d.devcore);
        mem += u.usedmem;
        tmem += d.devmem;
    }
    if count == 0 || tcores == 0 || tmem == 0 {
        return 0.0;
    }
    10.0 * (used as f64 / count as f64 + cores as f64 / tcores as f64 + mem as f64 / tmem as f64)
}
