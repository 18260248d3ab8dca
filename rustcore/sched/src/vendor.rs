//! Vendor rules behind one trait. NVIDIA and Cambricon are built in; Ascend (memory templates,
//! NetworkID grouping) and other HAMi vendors plug in as further implementations of
//! [`VendorRules`] without touching the fit skeleton.

use crate::model::{Device, Usage};
use crate::node::{DevHot, NodeInventory};
use crate::reason::Reason;
use crate::request::Selectors;
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
    pub register_annotation: String,
    pub to_allocate_annotation: String,
    pub allocated_annotation: String,
    /// Pod annotations that select devices; empty means the vendor has no such selector.
    pub use_type_annotation: String,
    pub nouse_type_annotation: String,
    pub use_uuid_annotation: String,
    pub nouse_uuid_annotation: String,
    pub mode_annotation: String,
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
            to_allocate_annotation: "hami.io/vgpu-devices-to-allocate".into(),
            allocated_annotation: "hami.io/vgpu-devices-allocated".into(),
            use_type_annotation: "nvidia.com/use-gputype".into(),
            nouse_type_annotation: "nvidia.com/nouse-gputype".into(),
            use_uuid_annotation: "nvidia.com/use-gpuuuid".into(),
            nouse_uuid_annotation: "nvidia.com/nouse-gpuuuid".into(),
            mode_annotation: "nvidia.com/vgpu-mode".into(),
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
            to_allocate_annotation: "hami.io/cambricon-mlu-devices-to-allocate".into(),
            allocated_annotation: "hami.io/cambricon-mlu-devices-allocated".into(),
            use_type_annotation: String::new(),
            nouse_type_annotation: String::new(),
            use_uuid_annotation: "cambricon.com/use-gpuuuid".into(),
            nouse_uuid_annotation: "cambricon.com/nouse-gpuuuid".into(),
            mode_annotation: String::new(),
            numa_bind_annotation: String::new(),
            quota_in_fit: true,
        }
    }
}

/// Per-vendor behaviour in the fit. The skeleton in `fit.rs` runs the checks every vendor
/// shares (health, cordon, selectors, slots, memory, cores, exclusivity, quota) and asks the
/// vendor for the rest.
pub trait VendorRules: Send + Sync + std::fmt::Debug {
    fn spec(&self) -> &VendorSpec;

    /// A vendor-specific refusal for one device, checked after the shared selectors
    /// (e.g. Ascend's `ModeNotFit`). `None` accepts.
    fn check_device(&self, _device: &Device, _usage: &Usage, _selectors: &Selectors) -> Option<Reason> {
        None
    }

    /// Whether `check_device` can refuse anything; when not, the scan skips the call and the
    /// device's cold record.
    fn has_device_check(&self) -> bool {
        false
    }

    /// Whether the fit collects every fitting device and lets `choose` pick (Ascend's
    /// NetworkID groups and 910C modules); otherwise the first fitting devices in policy order
    /// are taken.
    fn collects_all(&self) -> bool {
        false
    }

    /// Picks `want` of the fitting `candidates` (node-local indices, in policy order), or `None`
    /// for the shared choice (topology pair scores, else the first `want`). Returning fewer
    /// than `want` devices is a bug in the vendor rules.
    fn choose(
        &self,
        _node: &NodeInventory,
        _hot: &[DevHot],
        _candidates: &[usize],
        _want: usize,
    ) -> Option<Vec<usize>> {
        None
    }
}

#[derive(Debug)]
pub struct Nvidia(pub VendorSpec);

impl VendorRules for Nvidia {
    fn spec(&self) -> &VendorSpec {
        &self.0
    }
}

#[derive(Debug)]
pub struct Cambricon(pub VendorSpec);

impl VendorRules for Cambricon {
    fn spec(&self) -> &VendorSpec {
        &self.0
    }
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
