//! Scheduling policies: node policy (binpack or spread), GPU policy chains
//! (`binpack`, `spread`, `numa`, `mutex`, `topology-aware`), and device-scoring weights.

use crate::error::{Codec, Error, Result};

pub const NODE_POLICY_ANNOTATION: &str = "hami.io/node-scheduler-policy";
pub const GPU_POLICY_ANNOTATION: &str = "hami.io/gpu-scheduler-policy";
pub const WEIGHTS_ANNOTATION: &str = "hami.io/device-scoring-weights";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodePolicy {
    /// Fill the fullest node first.
    #[default]
    Binpack,
    /// Put the pod on the emptiest node.
    Spread,
}

impl NodePolicy {
    /// HAMi's rule: `spread` is spread; any other value behaves like binpack.
    pub fn parse(s: &str) -> Self {
        if s.trim() == "spread" {
            NodePolicy::Spread
        } else {
            NodePolicy::Binpack
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            NodePolicy::Binpack => "binpack",
            NodePolicy::Spread => "spread",
        }
    }
}

/// One sort key of a GPU policy chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The most used device first.
    Binpack,
    /// The least used device first.
    Spread,
    /// The lowest NUMA node first.
    Numa,
}

/// A parsed GPU policy: an ordered chain of sort keys plus the two filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuPolicy {
    pub keys: Vec<SortKey>,
    /// Only idle devices (`Used == 0`), idle first.
    pub mutex: bool,
    /// Collect every fitting device, then pick the best-connected set (NVLink pair scores).
    pub topology: bool,
    text: String,
}

impl Default for GpuPolicy {
    fn default() -> Self {
        GpuPolicy::parse("spread")
    }
}

impl GpuPolicy {
    /// Parses a comma-separated chain. Unknown tokens are ignored (HAMi falls back to spread);
    /// a chain naming no sort key sorts as spread.
    pub fn parse(s: &str) -> Self {
        let mut p = GpuPolicy {
            keys: Vec::new(),
            mutex: false,
            topology: false,
            text: s.trim().to_string(),
        };
        for token in s.split(',').map(str::trim) {
            match token {
                "binpack" => p.keys.push(SortKey::Binpack),
                "spread" => p.keys.push(SortKey::Spread),
                "numa" => p.keys.push(SortKey::Numa),
                "mutex" => p.mutex = true,
                "topology-aware" => p.topology = true,
                _ => {}
            }
        }
        if !p.keys.iter().any(|k| matches!(k, SortKey::Binpack | SortKey::Spread)) {
            p.keys.push(SortKey::Spread);
        }
        p
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// With `numa-bind`, devices of one NUMA node must stay together: NUMA becomes the first key.
    pub fn with_numa_first(&self) -> Vec<SortKey> {
        let mut keys = vec![SortKey::Numa];
        keys.extend(self.keys.iter().copied().filter(|k| *k != SortKey::Numa));
        keys
    }
}

/// Weights of the device score terms (slot, core, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub slot: u32,
    pub core: u32,
    pub memory: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            slot: 1,
            core: 1,
            memory: 1,
        }
    }
}

impl Weights {
    /// `slot=1,core=1,memory=3`: exactly these three keys, each once, non-negative integers,
    /// at least one above zero.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |field: &str, msg: String| Error::decode(Codec::ScoringWeights, field, format!("{s:?}"), msg);
        let mut slot = None;
        let mut core = None;
        let mut memory = None;
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(part.trim(), "expected key=value, e.g. slot=1,core=1,memory=3".into()))?;
            let k = k.trim();
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| err(k, format!("{:?} is not a non-negative integer", v.trim())))?;
            let slot_ref = match k {
                "slot" => &mut slot,
                "core" => &mut core,
                "memory" => &mut memory,
                _ => return Err(err(k, "unknown key: expected slot, core and memory".into())),
            };
            if slot_ref.replace(v).is_some() {
                return Err(err(k, "given more than once".into()));
            }
        }
        match (slot, core, memory) {
            (Some(slot), Some(core), Some(memory)) if slot + core + memory > 0 => Ok(Weights { slot, core, memory }),
            (Some(_), Some(_), Some(_)) => Err(err("(all)", "at least one weight must be above 0".into())),
            _ => Err(err("(keys)", "slot, core and memory must all be given".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_policy_chains() {
        let p = GpuPolicy::parse("binpack,numa");
        assert_eq!(p.keys, vec![SortKey::Binpack, SortKey::Numa]);
        let p = GpuPolicy::parse("topology-aware");
        assert!(p.topology);
        assert_eq!(p.keys, vec![SortKey::Spread]);
        let p = GpuPolicy::parse("mutex");
        assert!(p.mutex);
    }

    #[test]
    fn weights_are_strict() {
        assert_eq!(
            Weights::parse("slot=1,core=1,memory=3").unwrap(),
            Weights {
                slot: 1,
                core: 1,
                memory: 3
            }
        );
        for bad in [
            "slot=1,core=1",
            "slot=1,core=1,memory=1,slot=2",
            "slot=0,core=0,memory=0",
            "slot=-1,core=1,memory=1",
            "gpu=1,core=1,memory=1",
        ] {
            let e = Weights::parse(bad).unwrap_err().to_string();
            assert!(e.contains("device-scoring-weights"), "{bad}: {e}");
        }
    }
}
