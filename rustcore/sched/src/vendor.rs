//! Vendor rules behind one trait. NVIDIA, Cambricon and Huawei Ascend (`crate::ascend`) are
//! built in; other HAMi vendors plug in as further implementations of [`VendorRules`] without
//! touching the fit skeleton.

use crate::admit::ContainerAdmission;
use crate::error::Result;
use crate::model::{Device, Usage};
use crate::node::{DevHot, NodeInventory};
use crate::reason::Reason;
use crate::request::Selectors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Names and defaults of one vendor: its resources, annotations and request defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorSpec {
    /// The vendor key, e.g. `NVIDIA`; also the `Type` written in pod device lists.
    pub key: String,
    pub resource_count: String,
    pub resource_memory: String,
    /// Empty when the vendor has no percentage resource.
    pub resource_memory_percentage: String,
    pub resource_cores: String,
    /// The task-priority resource (NVIDIA's `nvidia.com/priority`); empty when the vendor has none.
    pub resource_priority: String,
    /// The count admission adds to a container that gives memory or cores but no count
    /// (HAMi's `defaultGPUNum`); 0 adds none.
    pub default_count: u32,
    /// Admission gives a counted container that names no cores, and gives no memory, or all
    /// of it, or has no memory resource, the cores of a whole device (HAMi's
    /// `defaultExclusiveCoreIfNeeded`, NVIDIA only).
    pub exclusive_by_default: bool,
    /// MiB used when a container gives neither memory nor a percentage (0: the whole device).
    pub default_memory: u64,
    /// Cores used when a container gives none.
    pub default_cores: u32,
    /// The memory resource is counted in units of this many MiB.
    pub memory_factor: u64,
    /// Empty when the inventory is not an annotation (Cambricon's comes from node capacity).
    pub register_annotation: String,
    /// The plugin's handshake annotation (Ascend's `hami.io/node-handshake-<CW>`); empty: none.
    pub handshake_annotation: String,
    pub to_allocate_annotation: String,
    pub allocated_annotation: String,
    /// Pod annotations that select devices; empty means the vendor has no such selector.
    pub use_type_annotation: String,
    pub nouse_type_annotation: String,
    pub use_uuid_annotation: String,
    pub nouse_uuid_annotation: String,
    pub mode_annotation: String,
    /// The pod annotation that asks for soft splitting (Ascend's `huawei.com/vnpu-mode`, value
    /// `hami-core`); empty: the vendor has no such mode.
    pub soft_mode_annotation: String,
    pub numa_bind_annotation: String,
    /// Whether the namespace quota on memory and cores is checked during the fit.
    pub quota_in_fit: bool,
}

impl VendorSpec {
    pub fn nvidia() -> Self {
        VendorSpec {
            key: "NVIDIA".into(),
            resource_count: "nvidia.com/gpu".into(),
            resource_memory: "nvidia.com/gpumem".into(),
            resource_memory_percentage: "nvidia.com/gpumem-percentage".into(),
            resource_cores: "nvidia.com/gpucores".into(),
            resource_priority: "nvidia.com/priority".into(),
            default_count: 1,
            exclusive_by_default: true,
            default_memory: 0,
            default_cores: 0,
            memory_factor: 1,
            register_annotation: "hami.io/node-nvidia-register".into(),
            handshake_annotation: String::new(),
            to_allocate_annotation: "hami.io/vgpu-devices-to-allocate".into(),
            allocated_annotation: "hami.io/vgpu-devices-allocated".into(),
            use_type_annotation: "nvidia.com/use-gputype".into(),
            nouse_type_annotation: "nvidia.com/nouse-gputype".into(),
            use_uuid_annotation: "nvidia.com/use-gpuuuid".into(),
            nouse_uuid_annotation: "nvidia.com/nouse-gpuuuid".into(),
            mode_annotation: "nvidia.com/vgpu-mode".into(),
            soft_mode_annotation: String::new(),
            numa_bind_annotation: "nvidia.com/numa-bind".into(),
            quota_in_fit: true,
        }
    }

    pub fn cambricon() -> Self {
        VendorSpec {
            key: "MLU".into(),
            resource_count: "cambricon.com/vmlu".into(),
            resource_memory: "cambricon.com/mlu.smlu.vmemory".into(),
            resource_memory_percentage: String::new(),
            resource_cores: "cambricon.com/mlu.smlu.vcore".into(),
            resource_priority: String::new(),
            default_count: 0,
            exclusive_by_default: false,
            default_memory: 0,
            // A bare `vmlu: 1` is a whole, exclusive card.
            default_cores: 100,
            memory_factor: 256,
            register_annotation: String::new(),
            handshake_annotation: String::new(),
            to_allocate_annotation: "hami.io/cambricon-mlu-devices-to-allocate".into(),
            allocated_annotation: "hami.io/cambricon-mlu-devices-allocated".into(),
            use_type_annotation: String::new(),
            nouse_type_annotation: String::new(),
            use_uuid_annotation: "cambricon.com/use-gpuuuid".into(),
            nouse_uuid_annotation: "cambricon.com/nouse-gpuuuid".into(),
            mode_annotation: String::new(),
            soft_mode_annotation: String::new(),
            numa_bind_annotation: String::new(),
            quota_in_fit: true,
        }
    }
}

/// One device a container was given, with its inventory entry: what a vendor's allocation
/// annotations are written from.
#[derive(Debug, Clone, Copy)]
pub struct Given<'a> {
    pub device: &'a Device,
    pub mem: u64,
    pub cores: u32,
}

/// Per-vendor behaviour in admission, the request and the fit. The skeleton in `fit.rs` runs
/// the checks every vendor shares (health, cordon, selectors, slots, memory, cores,
/// exclusivity, quota) and asks the vendor for the rest.
pub trait VendorRules: Send + Sync + std::fmt::Debug {
    fn spec(&self) -> &VendorSpec;

    /// `nvidia`, `cambricon` or `ascend`: how a vendor table entry of this vendor is read.
    fn kind(&self) -> &'static str;

    /// The chip's templates and sizes, for an Ascend vendor.
    fn ascend_chip(&self) -> Option<&crate::ascend::AscendChip> {
        None
    }

    /// The vendor's own admission of a container that has its count in the limits (after the
    /// shared steps): limits and requests to set, or a refusal that says what to change.
    fn admit(
        &self,
        _container: &Value,
        _who: &str,
        _annotations: &BTreeMap<String, String>,
        _out: &mut ContainerAdmission,
    ) -> Result<()> {
        Ok(())
    }

    /// The MiB one device is charged for `raw` MiB asked (before the memory factor): Ascend
    /// rounds up to a template in template mode.
    fn request_memory(&self, raw: u64, _annotations: &BTreeMap<String, String>) -> u64 {
        raw
    }

    /// A refusal of the whole node for this vendor, counted once (Ascend's `ModeNotFit`);
    /// `devices` are the node's devices of this vendor. `None` accepts.
    fn check_node(&self, _devices: &mut dyn Iterator<Item = &DevHot>, _selectors: &Selectors) -> Option<Reason> {
        None
    }

    /// A vendor-specific refusal for one device, checked after the shared selectors. `None`
    /// accepts.
    fn check_device(&self, _device: &Device, _usage: &Usage, _selectors: &Selectors) -> Option<Reason> {
        None
    }

    /// Whether `check_device` can refuse anything; when not, the scan skips the call and the
    /// device's cold record.
    fn has_device_check(&self) -> bool {
        false
    }

    /// Whether a request of `want` devices collects every fitting device and lets `choose`
    /// pick (Ascend's NetworkID groups and 910C modules); otherwise the first fitting devices in
    /// policy order are taken.
    fn collects_all(&self, _want: u32) -> bool {
        false
    }

    /// Picks `want` of the fitting `candidates` (node-local indices, in policy order), or `None`
    /// for the shared choice (topology pair scores, else the first `want`). Fewer than `want`
    /// devices means no whole set can be made: the node fails with
    /// `AllocatedCardsInsufficientRequest`.
    fn choose(
        &self,
        _node: &NodeInventory,
        _hot: &[DevHot],
        _candidates: &[usize],
        _want: usize,
    ) -> Option<Vec<usize>> {
        None
    }

    /// The vendor's pod annotations beyond the device lists, written with them at filter time
    /// (Ascend's runtime JSON, Cambricon's sMLU profile): `containers` holds this vendor's
    /// devices per container (init containers first); `now` is unix seconds.
    fn allocation_annotations(
        &self,
        _containers: &[Vec<Given<'_>>],
        _annotations: &BTreeMap<String, String>,
        _now: f64,
    ) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[derive(Debug)]
pub struct Nvidia(pub VendorSpec);

impl VendorRules for Nvidia {
    fn spec(&self) -> &VendorSpec {
        &self.0
    }

    fn kind(&self) -> &'static str {
        "nvidia"
    }
}

/// HAMi's `CAMBRICON_DSMLU_*` pod annotations (reference §2.5). HAMi v2.10 writes `ASSIGNED`;
/// Cambricon's plugin reads the older `ASSIGHED` spelling, which our plugin also reads.
pub const CAMBRICON_ASSIGNED: &str = "CAMBRICON_DSMLU_ASSIGNED";
pub const CAMBRICON_PROFILE: &str = "CAMBRICON_DSMLU_PROFILE";

#[derive(Debug)]
pub struct Cambricon(pub VendorSpec);

impl VendorRules for Cambricon {
    fn spec(&self) -> &VendorSpec {
        &self.0
    }

    fn kind(&self) -> &'static str {
        "cambricon"
    }

    /// `CAMBRICON_DSMLU_ASSIGNED: "false"` and `CAMBRICON_DSMLU_PROFILE: <index>_<cores>_<units>`
    /// of the first device of the first container that has an MLU (HAMi's `PatchAnnotations`).
    fn allocation_annotations(
        &self,
        containers: &[Vec<Given<'_>>],
        _annotations: &BTreeMap<String, String>,
        _now: f64,
    ) -> Vec<(String, String)> {
        let Some(first) = containers.iter().find_map(|c| c.first()) else {
            return Vec::new();
        };
        let unit = self.0.memory_factor.max(1);
        vec![
            (CAMBRICON_ASSIGNED.to_string(), "false".to_string()),
            (
                CAMBRICON_PROFILE.to_string(),
                format!("{}_{}_{}", first.device.index, first.cores, first.mem / unit),
            ),
        ]
    }
}

/// Cambricon's inventory, which no annotation carries: HAMi synthesizes it from the node's
/// capacity of the sMLU core and memory resources (reference §2.3): one device per 100 cores,
/// `<node>-cambricon-mlu-<i>`, 100 slots, the memory shared evenly in MiB (`vmemory` is in
/// units of `memory_factor` MiB). No device when the core capacity is 0.
pub fn cambricon_devices(node: &str, spec: &VendorSpec, vcore: i64, vmemory: i64) -> Vec<Device> {
    if vcore <= 0 {
        return Vec::new();
    }
    let factor = i64::try_from(spec.memory_factor.max(1)).unwrap_or(256);
    let devmem = vmemory.max(0).saturating_mul(factor).saturating_mul(100) / vcore;
    let devmem = u64::try_from(devmem.min(i64::from(i32::MAX))).unwrap_or(0);
    (0..)
        .take_while(|i: &i64| i * 100 < vcore)
        .map(|i| {
            let mut d = Device::new(&format!("{node}-cambricon-mlu-{i}"), &spec.key, "MLU", 100, devmem, 100);
            d.index = i as u32;
            d
        })
        .collect()
}

/// The vendors a cluster knows, by key.
#[derive(Debug, Clone)]
pub struct Vendors {
    by_key: BTreeMap<String, Arc<dyn VendorRules>>,
}

impl Default for Vendors {
    fn default() -> Self {
        let mut v = Vendors {
            by_key: BTreeMap::new(),
        };
        v.insert(Arc::new(Nvidia(VendorSpec::nvidia())));
        v.insert(Arc::new(Cambricon(VendorSpec::cambricon())));
        v
    }
}

impl Vendors {
    pub fn insert(&mut self, rules: Arc<dyn VendorRules>) {
        self.by_key.insert(rules.spec().key.clone(), rules);
    }

    /// A small number for the vendor, stable while the set is unchanged.
    pub fn id_of(&self, key: &str) -> Option<u16> {
        self.by_key.keys().position(|k| k == key).map(|i| i as u16)
    }

    pub fn get(&self, key: &str) -> Option<&Arc<dyn VendorRules>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn VendorRules>> {
        self.by_key.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cambricon_inventory_from_capacity_is_hamis() {
        // 8 x 24 GiB cards: vcore 800, vmemory 768 units of 256 MiB
        let d = cambricon_devices("node1", &VendorSpec::cambricon(), 800, 768);
        assert_eq!(d.len(), 8);
        assert_eq!(d[7].id, "node1-cambricon-mlu-7");
        assert_eq!(
            (d[7].index, d[7].count, d[7].devmem, d[7].devcore),
            (7, 100, 24576, 100)
        );
        assert_eq!(
            (d[0].type_.as_str(), d[0].vendor.as_str(), d[0].health),
            ("MLU", "MLU", true)
        );
        // a partial card still counts (HAMi emits devices while i x 100 < vcore)
        assert_eq!(cambricon_devices("n", &VendorSpec::cambricon(), 150, 10).len(), 2);
        assert!(cambricon_devices("n", &VendorSpec::cambricon(), 0, 768).is_empty());
    }
}
