//! Huawei Ascend NPUs (reference `hami-vendors.md` §1): one vendor per chip of the device
//! config's `vnpus`, keyed by its `commonWord`. Template (hard-split) mode rounds a request's
//! memory up to the smallest vNPU template that holds it; hami-core (soft-split) mode, asked for
//! by the pod annotation `huawei.com/vnpu-mode: hami-core`, shares an NPU by memory and core
//! percent and needs a node that supports it (`hami-vnpu-core: "true"`). Several 910-series NPUs
//! are taken from one HCCS group (`custominfo.NetworkID`), and 910C NPUs in whole modules of two.
//!
//! Where HAMi is wrong, this is right, each with a named test (`tests/fit_rules.rs`,
//! `admit.rs`): the 910C multi-device check uses the rounded count, memory given only in
//! `requests` is honoured, a pod that skipped admission is charged its template's memory, and
//! a request of one chip never takes another chip's NPUs (`Ascend910B4` vs `Ascend910B4-1`).

use crate::admit::ContainerAdmission;
use crate::codec::{encode_ascend_runtime, RuntimeInfo};
use crate::error::{Error, Result};
use crate::model::DeviceMode;
use crate::node::{DevHot, NodeInventory};
use crate::reason::Reason;
use crate::request::{count_error, given, limit, memory_error, shown, whole, Selectors, INT32_MAX};
use crate::vendor::{Given, VendorRules, VendorSpec};
use serde_json::Value;
use std::collections::BTreeMap;

/// The pod annotation that asks for soft splitting, and its one value that does.
pub const MODE_ANNOTATION: &str = "huawei.com/vnpu-mode";
pub const SOFT_MODE: &str = "hami-core";
/// The node annotation of a node whose NPUs take soft-split pods (`"true"`).
pub const NODE_SOFT_ANNOTATION: &str = "hami-vnpu-core";
pub const PREDICATE_TIME: &str = "predicate-time";

/// One vNPU template: its name, MiB, AI cores and AI CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub memory: u64,
    pub ai_core: u32,
    pub ai_cpu: u32,
}

/// A chip's entry of `vnpus` as the scheduler uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AscendChip {
    /// MiB of a whole NPU: the default memory and every device's `devmem`.
    pub memory_allocatable: u64,
    /// A request above the largest template but within this is a whole NPU.
    pub memory_capacity: u64,
    /// 910C: one module is two NPUs, so a request of 1 becomes 2.
    pub super_pod: bool,
    /// Sorted by memory, ascending.
    pub templates: Vec<Template>,
    /// The cluster default of soft splitting (`vnpus.hamiVnpuCore`), for nodes that do not say.
    pub soft_default: bool,
}

impl AscendChip {
    /// HAMi's `trimMemory`: the smallest template with at least `mib`, else a whole NPU when
    /// `mib` is within the capacity, else `None`.
    pub fn trim_memory(&self, mib: u64) -> Option<(u64, Option<&Template>)> {
        if let Some(t) = self.templates.iter().find(|t| t.memory >= mib) {
            return Some((t.memory, Some(t)));
        }
        (mib <= self.memory_capacity).then_some((self.memory_allocatable, None))
    }
}

/// The resource and annotation names of one chip, from its common word.
pub fn ascend_spec(common_word: &str, count: &str, memory: &str, cores: &str, memory_factor: u64) -> VendorSpec {
    VendorSpec {
        key: common_word.to_string(),
        resource_count: count.to_string(),
        resource_memory: memory.to_string(),
        resource_memory_percentage: String::new(),
        resource_cores: cores.to_string(),
        resource_priority: String::new(),
        default_count: 0,
        exclusive_by_default: false,
        default_memory: 0,
        default_cores: 0,
        memory_factor: memory_factor.max(1),
        register_annotation: format!("hami.io/node-register-{common_word}"),
        handshake_annotation: format!("hami.io/node-handshake-{common_word}"),
        to_allocate_annotation: format!("hami.io/{common_word}-devices-to-allocate"),
        allocated_annotation: format!("hami.io/{common_word}-devices-allocated"),
        use_type_annotation: String::new(),
        nouse_type_annotation: String::new(),
        use_uuid_annotation: format!("hami.io/use-{common_word}-uuid"),
        nouse_uuid_annotation: format!("hami.io/no-use-{common_word}-uuid"),
        mode_annotation: String::new(),
        soft_mode_annotation: MODE_ANNOTATION.to_string(),
        numa_bind_annotation: String::new(),
        quota_in_fit: false,
    }
}

#[derive(Debug)]
pub struct Ascend {
    pub spec: VendorSpec,
    pub chip: AscendChip,
}

fn soft(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(MODE_ANNOTATION).is_some_and(|m| m == SOFT_MODE)
}

impl Ascend {
    pub fn new(spec: VendorSpec, mut chip: AscendChip) -> Self {
        chip.templates.sort_by_key(|t| t.memory);
        Ascend { spec, chip }
    }

    fn is_910c(&self) -> bool {
        self.spec.key == "Ascend910C"
    }

    fn template_sizes(&self) -> String {
        let sizes: Vec<String> = self.chip.templates.iter().map(|t| t.memory.to_string()).collect();
        sizes.join(", ")
    }

    /// 910-series NPUs of one node in HCCS groups, largest first, filled in order.
    fn by_network(
        &self,
        node: &NodeInventory,
        hot: &[DevHot],
        candidates: &[usize],
        want: usize,
    ) -> Option<Vec<usize>> {
        let vendor = hot[*candidates.first()?].vendor;
        let network = |i: usize| {
            node.devices[i]
                .custominfo
                .as_ref()
                .and_then(|c| c.get("NetworkID"))
                .and_then(Value::as_i64)
        };
        // HAMi groups only when every NPU of this chip on the node names its group.
        let all_named = (0..hot.len())
            .filter(|&i| hot[i].vendor == vendor)
            .all(|i| network(i).is_some());
        if !all_named || candidates.len() == want {
            return None;
        }
        let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
        for &i in candidates {
            let id = network(i).unwrap_or_default();
            match groups.iter_mut().find(|(g, _)| *g == id) {
                Some((_, members)) => members.push(i),
                None => groups.push((id, vec![i])),
            }
        }
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        Some(groups.into_iter().flat_map(|(_, m)| m).take(want).collect())
    }

    /// 910C: whole modules (NPUs `2k` and `2k+1`), fullest modules first; fewer than `want`
    /// when not enough whole modules fit.
    fn by_module(hot: &[DevHot], candidates: &[usize], want: usize) -> Vec<usize> {
        let mut modules: Vec<(u32, Vec<usize>)> = Vec::new();
        for &i in candidates {
            let m = hot[i].index / 2;
            match modules.iter_mut().find(|(k, _)| *k == m) {
                Some((_, members)) => members.push(i),
                None => modules.push((m, vec![i])),
            }
        }
        modules.sort_by_key(|m| std::cmp::Reverse(m.1.len()));
        let mut chosen = Vec::with_capacity(want);
        for (_, members) in modules.into_iter().filter(|(_, m)| m.len() == 2) {
            if chosen.len() >= want {
                break;
            }
            chosen.extend(members);
        }
        chosen.truncate(want);
        chosen
    }
}

impl VendorRules for Ascend {
    fn spec(&self) -> &VendorSpec {
        &self.spec
    }

    fn kind(&self) -> &'static str {
        "ascend"
    }

    fn ascend_chip(&self) -> Option<&AscendChip> {
        Some(&self.chip)
    }

    /// HAMi's `MutateAdmission` (§1.2), with its 910C ordering bug and its requests-only
    /// memory loss fixed.
    fn admit(
        &self,
        c: &Value,
        who: &str,
        annotations: &BTreeMap<String, String>,
        out: &mut ContainerAdmission,
    ) -> Result<()> {
        let spec = &self.spec;
        let Some(v) = limit(c, &spec.resource_count) else {
            return Ok(());
        };
        let mut count = match whole(v) {
            Ok(0) => return Ok(()),
            Ok(n) if (1..=INT32_MAX).contains(&n) => n,
            _ => return Err(count_error(who, spec, v)),
        };
        let soft = soft(annotations);
        let (name, mem_name) = (&spec.resource_count, &spec.resource_memory);
        if self.is_910c() && self.chip.super_pod {
            if count == 1 {
                count = 2;
                out.added_limits.push((name.clone(), "2".into()));
                let in_requests = c
                    .get("resources")
                    .and_then(|r| r.get("requests"))
                    .and_then(|r| r.get(name.as_str()))
                    .is_some();
                if in_requests {
                    out.set_requests.push((name.clone(), "2".into()));
                }
            } else if count % 2 == 1 {
                return Err(Error::Resource(format!(
                    "{who}: {name} is {count}; an Ascend910C module is 2 NPUs, so ask for 1 (taken \
                     as one module, 2 NPUs) or an even number"
                )));
            }
        }
        if !soft && !spec.resource_cores.is_empty() {
            if let Some(v) = given(c, &spec.resource_cores) {
                if whole(v).is_ok_and(|n| n > 0) {
                    return Err(Error::Resource(format!(
                        "{who}: {} is {}, but a share of the cores is only supported in hami-core \
                         (soft split) mode; remove {}, or annotate the pod with {MODE_ANNOTATION}: \
                         {SOFT_MODE}",
                        spec.resource_cores,
                        shown(v),
                        spec.resource_cores
                    )));
                }
            }
        }
        let whole_npu = self.chip.memory_allocatable;
        let mut mem = whole_npu;
        // HAMi reads the memory from the limits only, so a value given in requests alone was
        // replaced by a whole NPU; it is honoured here (hami_bug_ascend_requests_only_memory).
        if let Some(v) = given(c, mem_name) {
            let raw = match whole(v) {
                Ok(m) if (0..=INT32_MAX).contains(&m) => m as u64,
                value => return Err(memory_error(who, spec, v, value)),
            };
            if soft {
                mem = raw;
            } else {
                mem = match self.chip.trim_memory(raw) {
                    Some((m, _)) => m,
                    None => {
                        return Err(Error::Resource(format!(
                            "{who}: {mem_name} is {raw} MiB, more than one {} holds ({}); ask for at \
                             most {}, or a vNPU template's size: {}",
                            spec.key,
                            self.chip.memory_capacity,
                            self.chip.memory_capacity,
                            self.template_sizes()
                        )))
                    }
                };
            }
        }
        // HAMi checks the count as written, before the 910C rounding, so `Ascend910C: 1` with
        // a template became 2 NPUs each carrying it, which the runtime cannot create
        // (hami_bug_ascend_910c_rounded_pair_cannot_carry_a_template).
        if !soft && count > 1 && mem != whole_npu {
            let rounded =
                if self.is_910c() && self.chip.super_pod && limit(c, name).and_then(|v| whole(v).ok()) == Some(1) {
                    format!(" ({name}: 1 is one 910C module, 2 NPUs)")
                } else {
                    String::new()
                };
            return Err(Error::Resource(format!(
                "{who}: asks for {count} {} NPUs{rounded} with {mem_name} {mem}: a vNPU template \
                 cannot span several NPUs; ask for whole NPUs (remove {mem_name}, or set it to \
                 {whole_npu}), or for hami-core mode ({MODE_ANNOTATION}: {SOFT_MODE})",
                spec.key
            )));
        }
        out.added_limits.push((mem_name.clone(), mem.to_string()));
        out.set_requests.push((mem_name.clone(), mem.to_string()));
        Ok(())
    }

    /// A pod that skipped admission is charged its template's memory, as the runtime will
    /// create that template (hami_bug_ascend_unadmitted_memory_not_rounded).
    fn request_memory(&self, raw: u64, annotations: &BTreeMap<String, String>) -> u64 {
        if soft(annotations) {
            return raw;
        }
        self.chip.trim_memory(raw).map_or(raw, |(m, _)| m)
    }

    fn check_node(&self, devices: &mut dyn Iterator<Item = &DevHot>, selectors: &Selectors) -> Option<Reason> {
        let first = devices.next()?;
        (selectors.soft_mode && first.mode != DeviceMode::HamiCore).then_some(Reason::ModeNotFit)
    }

    fn collects_all(&self, want: u32) -> bool {
        want > 1 && self.spec.key.starts_with("Ascend910")
    }

    fn choose(&self, node: &NodeInventory, hot: &[DevHot], candidates: &[usize], want: usize) -> Option<Vec<usize>> {
        if want <= 1 || candidates.is_empty() {
            return None;
        }
        if self.is_910c() {
            return Some(Self::by_module(hot, candidates, want));
        }
        self.by_network(node, hot, candidates, want)
    }

    /// `predicate-time` and the runtime JSON `huawei.com/<CW>` (HAMi's `PatchAnnotations`).
    fn allocation_annotations(
        &self,
        containers: &[Vec<Given<'_>>],
        annotations: &BTreeMap<String, String>,
        now: f64,
    ) -> Vec<(String, String)> {
        let soft = soft(annotations);
        let items: Vec<RuntimeInfo> = containers
            .iter()
            .flatten()
            .map(|g| RuntimeInfo {
                uuid: g.device.id.clone(),
                temp: if soft {
                    String::new()
                } else {
                    self.chip
                        .trim_memory(g.mem)
                        .and_then(|(_, t)| t)
                        .map(|t| t.name.clone())
                        .unwrap_or_default()
                },
                memory: g.mem,
                core: g.cores,
            })
            .collect();
        if items.is_empty() {
            return Vec::new();
        }
        vec![
            (PREDICATE_TIME.to_string(), format!("{}", now.max(0.0) as i64)),
            (format!("huawei.com/{}", self.spec.key), encode_ascend_runtime(&items)),
        ]
    }
}

/// HAMi chart's chips (reference §1.1), for tests and benchmarks.
pub fn chart_chip(common_word: &str) -> Option<Ascend> {
    let t = |name: &str, memory: u64, ai_core: u32, ai_cpu: u32| Template {
        name: name.into(),
        memory,
        ai_core,
        ai_cpu,
    };
    let (allocatable, capacity, super_pod, templates) = match common_word {
        "Ascend910B3" | "Ascend910B4-1" | "Ascend910C" => (
            65536,
            65536,
            common_word == "Ascend910C",
            vec![t("vir05_1c_16g", 16384, 5, 1), t("vir10_3c_32g", 32768, 10, 3)],
        ),
        "Ascend910B4" => (
            32768,
            32768,
            false,
            vec![t("vir05_1c_8g", 8192, 5, 1), t("vir10_3c_16g", 16384, 10, 3)],
        ),
        "Ascend310P" => (
            21527,
            24576,
            false,
            vec![t("vir01", 3072, 1, 1), t("vir02", 6144, 2, 2), t("vir04", 12288, 4, 4)],
        ),
        _ => return None,
    };
    let res = format!("huawei.com/{common_word}");
    let spec = ascend_spec(common_word, &res, &format!("{res}-memory"), &format!("{res}-core"), 1);
    Some(Ascend::new(
        spec,
        AscendChip {
            memory_allocatable: allocatable,
            memory_capacity: capacity,
            super_pod,
            templates,
            soft_default: false,
        },
    ))
}
