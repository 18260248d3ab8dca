//! NVIDIA Multi-Instance GPU, as HAMi v2.10's dynamic MIG (reference `hami-control-plane.md`
//! §4.7, `hami-node-side.md` §1.11): a GPU in `mig` mode registers the profiles it may be cut
//! into (`migProfiles`, each with its legal placements in memory slices); the fit picks, for a
//! container's memory, the smallest profile with a free placement and reserves that exact
//! placement in `hami.io/vgpu-mig-allocations`; the device plugin creates the GPU and compute
//! instance there.
//!
//! The per-model tables below are NVIDIA's geometry (GPU instance profiles, their NVML profile
//! ids, memory, SMs and possible placements) for the models HAMi's chart allows: A30, A100
//! 40/80 GB, H100 80/94 GB, H200 and B200. The fit uses them to check a registration's placements
//! (an illegal one is dropped) and to fill them in when a registration has none; the plugin's fake
//! NVML backend simulates a GPU from them. Memory sizes are NVML's `memorySizeMB` as reported by
//! the drivers of each model (MiB, rounded as NVML does); a real plugin publishes what NVML says.

use serde_json::{json, Value};
use std::sync::Arc;

pub use crate::codec::{decode_mig_allocations, encode_mig_allocations, MigAlloc, MigRuntime, MIG_ALLOCATIONS};

/// One GPU instance profile of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProfile {
    /// `1g.10gb`, `3g.40gb`, ...
    pub name: &'static str,
    /// NVML's GPU instance profile id (`NVML_GPU_INSTANCE_PROFILE_*`), for
    /// `nvmlDeviceGetGpuInstanceProfileInfo`.
    pub nvml_id: u32,
    pub memory_mb: u64,
    /// Compute slices (the `1g` of the name), also the compute instance profile's slice count.
    pub slices: u8,
    pub sms: u32,
    /// `(start, size)` in memory slices.
    pub placements: &'static [(u8, u8)],
}

/// A model's MIG geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTable {
    /// Matched as a case-insensitive substring of the NVML name (`NVIDIA A100-SXM4-40GB`).
    pub matches: &'static [&'static str],
    pub memory_slices: u8,
    pub profiles: &'static [TableProfile],
}

// NVML_GPU_INSTANCE_PROFILE_* ids.
const P1: u32 = 0; // 1_SLICE
const P2: u32 = 1; // 2_SLICE
const P3: u32 = 2; // 3_SLICE
const P4: u32 = 3; // 4_SLICE
const P7: u32 = 4; // 7_SLICE
const P1_REV2: u32 = 9; // 1_SLICE_REV2: one compute slice, two memory slices

// Placements of the 7-compute / 8-memory-slice parts (A100, H100, H200, B200).
const ONE: &[(u8, u8)] = &[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)];
const ONE_WIDE: &[(u8, u8)] = &[(0, 2), (2, 2), (4, 2), (6, 2)];
const TWO: &[(u8, u8)] = &[(0, 2), (2, 2), (4, 2)];
const THREE: &[(u8, u8)] = &[(0, 4), (4, 4)];
const FOUR: &[(u8, u8)] = &[(0, 4)];
const SEVEN: &[(u8, u8)] = &[(0, 8)];

const fn seven_slice(names: [&'static str; 6], mem: [u64; 6], sms: [u32; 6]) -> [TableProfile; 6] {
    [
        TableProfile {
            name: names[0],
            nvml_id: P1,
            memory_mb: mem[0],
            slices: 1,
            sms: sms[0],
            placements: ONE,
        },
        TableProfile {
            name: names[1],
            nvml_id: P1_REV2,
            memory_mb: mem[1],
            slices: 1,
            sms: sms[1],
            placements: ONE_WIDE,
        },
        TableProfile {
            name: names[2],
            nvml_id: P2,
            memory_mb: mem[2],
            slices: 2,
            sms: sms[2],
            placements: TWO,
        },
        TableProfile {
            name: names[3],
            nvml_id: P3,
            memory_mb: mem[3],
            slices: 3,
            sms: sms[3],
            placements: THREE,
        },
        TableProfile {
            name: names[4],
            nvml_id: P4,
            memory_mb: mem[4],
            slices: 4,
            sms: sms[4],
            placements: FOUR,
        },
        TableProfile {
            name: names[5],
            nvml_id: P7,
            memory_mb: mem[5],
            slices: 7,
            sms: sms[5],
            placements: SEVEN,
        },
    ]
}

static A30: [TableProfile; 3] = [
    TableProfile {
        name: "1g.6gb",
        nvml_id: P1,
        memory_mb: 5836,
        slices: 1,
        sms: 14,
        placements: &[(0, 1), (1, 1), (2, 1), (3, 1)],
    },
    TableProfile {
        name: "2g.12gb",
        nvml_id: P2,
        memory_mb: 11672,
        slices: 2,
        sms: 28,
        placements: &[(0, 2), (2, 2)],
    },
    TableProfile {
        name: "4g.24gb",
        nvml_id: P4,
        memory_mb: 23344,
        slices: 4,
        sms: 56,
        placements: &[(0, 4)],
    },
];
static A100_40: [TableProfile; 6] = seven_slice(
    ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"],
    [4864, 9856, 9856, 19968, 19968, 40192],
    [14, 14, 28, 42, 56, 98],
);
static A100_80: [TableProfile; 6] = seven_slice(
    ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
    [9728, 19968, 19968, 40192, 40192, 80896],
    [14, 14, 28, 42, 56, 98],
);
static H100_80: [TableProfile; 6] = seven_slice(
    ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"],
    [9984, 20096, 20096, 40320, 40320, 80896],
    [16, 26, 32, 60, 64, 132],
);
static H100_94: [TableProfile; 6] = seven_slice(
    ["1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"],
    [11264, 23040, 23040, 47104, 47104, 95232],
    [16, 26, 32, 60, 64, 132],
);
static H200: [TableProfile; 6] = seven_slice(
    ["1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"],
    [16640, 33536, 33536, 67328, 67328, 143360],
    [16, 26, 32, 60, 64, 132],
);
static B200: [TableProfile; 6] = seven_slice(
    ["1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"],
    [23040, 45056, 45056, 92160, 92160, 183296],
    [18, 18, 36, 54, 72, 148],
);

/// The models, most specific first (`H100` alone is the 80 GB part).
pub static MODELS: [ModelTable; 7] = [
    ModelTable {
        matches: &["A30"],
        memory_slices: 4,
        profiles: &A30,
    },
    ModelTable {
        matches: &["A100-SXM4-40GB", "A100-PCIE-40GB", "A100 40GB"],
        memory_slices: 8,
        profiles: &A100_40,
    },
    ModelTable {
        matches: &["A100-SXM4-80GB", "A100-PCIE-80GB", "A100 80GB", "A100 PCIE 80GB"],
        memory_slices: 8,
        profiles: &A100_80,
    },
    ModelTable {
        matches: &["H100 NVL", "H100-NVL", "H100 94GB", "H100-94GB"],
        memory_slices: 8,
        profiles: &H100_94,
    },
    ModelTable {
        matches: &["H200"],
        memory_slices: 8,
        profiles: &H200,
    },
    ModelTable {
        matches: &["B200"],
        memory_slices: 8,
        profiles: &B200,
    },
    ModelTable {
        matches: &["H100"],
        memory_slices: 8,
        profiles: &H100_80,
    },
];

/// The table of the model whose name contains one of a table's markers (case-insensitive).
pub fn model_table(model: &str) -> Option<&'static ModelTable> {
    let lower = model.to_ascii_lowercase();
    MODELS
        .iter()
        .find(|m| m.matches.iter().any(|s| lower.contains(&s.to_ascii_lowercase())))
}

/// HAMi's `core` of a profile: `ceil(SMs × 100 / SMs of the largest profile)`.
pub fn core_percent(sms: u32, max_sms: u32) -> u32 {
    if max_sms == 0 {
        return 0;
    }
    (sms * 100).div_ceil(max_sms)
}

/// A profile name looks like `<N>g.<x>` (HAMi's allowlist validation).
pub fn valid_profile_name(name: &str) -> bool {
    let Some((g, rest)) = name.split_once("g.") else {
        return false;
    };
    !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
}

/// One profile of a registered GPU, as the fit uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub memory_mb: u64,
    pub core: u32,
    pub slices: u32,
    /// Legal placements `(start, size)`, in the order the fit tries them.
    pub placements: Vec<(u8, u8)>,
    /// The memory slices each placement occupies, as a bit mask.
    pub masks: Vec<u8>,
}

/// What a MIG-mode GPU may be cut into: its profiles, by memory then slices (HAMi's order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geometry {
    pub profiles: Vec<Profile>,
}

/// The memory slices `[start, start + size)` as a bit mask (`None` outside a GPU's 8).
pub(crate) fn mask_of(start: u8, size: u8) -> Option<u8> {
    if size == 0 || u32::from(start) + u32::from(size) > 8 {
        return None;
    }
    Some((((1u16 << size) - 1) << start) as u8)
}

impl Geometry {
    /// The geometry a registration gives (`migProfiles`), checked against the model's table when
    /// the model is known: a placement the model does not have is dropped, and a profile that
    /// lists none gets the table's. Unknown models are taken as registered. Profiles with no
    /// placement left are dropped; `None` when nothing usable remains.
    pub fn from_registration(value: &Value, model: &str) -> Option<Geometry> {
        let table = model_table(model);
        let mut profiles = Vec::new();
        for p in value.as_array()? {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let memory_mb = p.get("memoryMB").and_then(Value::as_u64).unwrap_or(0);
            let core = p.get("core").and_then(Value::as_u64).unwrap_or(0).min(100) as u32;
            let slices = p.get("sliceCount").and_then(Value::as_u64).unwrap_or(0) as u32;
            let known = table.and_then(|t| t.profiles.iter().find(|tp| tp.name == name));
            let mut placements: Vec<(u8, u8)> = p
                .get("placements")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|pl| {
                            let start = u8::try_from(pl.get("start")?.as_u64()?).ok()?;
                            let size = u8::try_from(pl.get("size")?.as_u64()?).ok()?;
                            mask_of(start, size).map(|_| (start, size))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(tp) = known {
                if placements.is_empty() {
                    placements = tp.placements.to_vec();
                }
                placements.retain(|pl| tp.placements.contains(pl));
            }
            if placements.is_empty() || memory_mb == 0 {
                continue;
            }
            // HAMi tries 1g and 3g profiles from the highest start, the others from the lowest.
            placements.sort_by_key(|&(start, _)| start);
            if name.starts_with("1g.") || name.starts_with("3g.") {
                placements.reverse();
            }
            let masks = placements.iter().filter_map(|&(s, z)| mask_of(s, z)).collect();
            profiles.push(Profile {
                name: name.to_string(),
                memory_mb,
                core,
                slices,
                placements,
                masks,
            });
        }
        profiles.sort_by(|a, b| a.memory_mb.cmp(&b.memory_mb).then(a.slices.cmp(&b.slices)));
        (!profiles.is_empty()).then_some(Geometry { profiles })
    }

    /// HAMi's `selectMigCandidate`: the smallest profile (by memory, then slices) with at least
    /// `mem` MiB and a placement free of `occupied`; `(profile, placement)` indices.
    pub fn choose(&self, mem: u64, occupied: u8) -> Option<MigPick> {
        for (pi, p) in self.profiles.iter().enumerate() {
            if p.memory_mb < mem {
                continue;
            }
            if let Some(li) = p.masks.iter().position(|m| m & occupied == 0) {
                return Some(MigPick {
                    profile: pi as u8,
                    placement: li as u8,
                });
            }
        }
        None
    }

    pub fn profile(&self, pick: MigPick) -> &Profile {
        &self.profiles[pick.profile as usize]
    }

    pub fn mask(&self, pick: MigPick) -> u8 {
        self.profiles[pick.profile as usize].masks[pick.placement as usize]
    }

    pub fn placement(&self, pick: MigPick) -> (u8, u8) {
        self.profiles[pick.profile as usize].placements[pick.placement as usize]
    }
}

/// A profile and placement chosen on one GPU's geometry (indices into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MigPick {
    pub profile: u8,
    pub placement: u8,
}

/// The `migProfiles` a plugin registers for `model` with the allowed profile names (all of the
/// model's when `allowed` is empty): what the fake NVML backend and tests publish.
pub fn registration_for(model: &str, allowed: &[&str]) -> Option<Value> {
    let t = model_table(model)?;
    let max_sms = t.profiles.iter().map(|p| p.sms).max().unwrap_or(0);
    let list: Vec<Value> = t
        .profiles
        .iter()
        .filter(|p| allowed.is_empty() || allowed.contains(&p.name))
        .map(|p| {
            json!({
                "name": p.name,
                "memoryMB": p.memory_mb,
                "core": core_percent(p.sms, max_sms),
                "sliceCount": p.slices,
                "placements": p.placements.iter().map(|&(s, z)| json!({"start": s, "size": z})).collect::<Vec<_>>(),
            })
        })
        .collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

/// Parsed geometries are shared between nodes of one model (5,000 identical GPUs parse once per
/// distinct registration text).
pub type SharedGeometry = Arc<Geometry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_legal_layouts() {
        for m in &MODELS {
            for p in m.profiles {
                assert!(valid_profile_name(p.name), "{}", p.name);
                for &(s, z) in p.placements {
                    assert!(
                        u32::from(s) + u32::from(z) <= u32::from(m.memory_slices),
                        "{} {s}+{z}",
                        p.name
                    );
                }
            }
        }
        assert_eq!(model_table("NVIDIA A100-SXM4-40GB").unwrap().profiles[0].name, "1g.5gb");
        assert_eq!(
            model_table("NVIDIA H100 80GB HBM3").unwrap().profiles[5].name,
            "7g.80gb"
        );
        assert_eq!(model_table("NVIDIA H100 NVL").unwrap().profiles[5].name, "7g.94gb");
        assert_eq!(model_table("NVIDIA H200").unwrap().profiles[0].name, "1g.18gb");
        assert!(model_table("Tesla T4").is_none());
    }

    #[test]
    fn core_is_hamis_ceiling() {
        assert_eq!(core_percent(14, 98), 15);
        assert_eq!(core_percent(98, 98), 100);
        assert_eq!(core_percent(16, 132), 13);
    }

    #[test]
    fn profile_names() {
        assert!(valid_profile_name("1g.5gb") && valid_profile_name("7g.141gb"));
        assert!(!valid_profile_name("g.5gb") && !valid_profile_name("1g.") && !valid_profile_name("x1g.5gb"));
    }
}
