//! A node's inventory as the scheduler holds it: its devices (every vendor), lower-cased types
//! for selector matching, the NVLink pair scores as a dense matrix, and cordoned devices.

use crate::codec::PairScores;
use crate::model::{Device, Usage};
use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Default)]
pub struct NodeInventory {
    pub name: String,
    pub devices: Vec<Device>,
    /// `devices[i].type_` lower-cased, for the case-insensitive type selectors.
    pub types_lower: Vec<String>,
    /// `pair[i * n + j]`: the topology score between devices i and j (0 when unknown).
    pub pair: Vec<i64>,
    pub cordoned: Vec<bool>,
    pub uuid_index: FxHashMap<String, usize>,
}

impl NodeInventory {
    pub fn new(name: &str, devices: Vec<Device>, pairs: &PairScores, cordoned: &[String]) -> Self {
        let n = devices.len();
        let uuid_index: FxHashMap<String, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
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
        NodeInventory {
            name: name.to_string(),
            types_lower: devices.iter().map(|d| d.type_.to_lowercase()).collect(),
            cordoned: devices.iter().map(|d| cordoned.contains(&d.id)).collect(),
            devices,
            pair,
            uuid_index,
        }
    }

    pub fn pair_score(&self, i: usize, j: usize) -> i64 {
        self.pair[i * self.devices.len() + j]
    }

    /// HAMi's node usage ratio: `10 × (ΣUsed/ΣCount + ΣUsedcores/ΣTotalcore + ΣUsedmem/ΣTotalmem)`
    /// over every device of the node; 0 when a denominator is 0.
    pub fn usage_score(&self, usage: &[Usage]) -> f64 {
        let (mut used, mut count, mut cores, mut tcores, mut mem, mut tmem) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for (d, u) in self.devices.iter().zip(usage) {
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
}
