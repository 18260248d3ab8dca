//! Python classes: plain values mirroring the pure crate's types.

use crate::convert::core_err;
use hami_sched as core;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::{BTreeMap, HashMap};

/// One physical device as a node registers it.
#[pyclass(module = "hami_rustcore", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct Device {
    pub inner: core::Device,
}

impl Device {
    pub fn from_core(inner: core::Device) -> Self {
        Device { inner }
    }
}

#[pymethods]
impl Device {
    #[new]
    #[pyo3(signature = (id, count, devmem, devcore, r#type, vendor="NVIDIA", index=0, numa=0, mode="hami-core", health=true, device_vendor="", custominfo_json=None, mig_profiles_json=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: &str,
        count: u32,
        devmem: u64,
        devcore: u32,
        r#type: &str,
        vendor: &str,
        index: u32,
        numa: i32,
        mode: &str,
        health: bool,
        device_vendor: &str,
        custominfo_json: Option<&str>,
        mig_profiles_json: Option<&str>,
    ) -> PyResult<Self> {
        let mode = core::DeviceMode::from_name(mode).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "mode: {mode:?} is not one of hami-core, mig, mps, template"
            ))
        })?;
        let custominfo = custominfo_json
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("custominfo_json: {e}")))?;
        let mut d = core::Device::new(id, vendor, r#type, count, devmem, devcore);
        d.index = index;
        d.numa = numa;
        d.mode = mode;
        d.health = health;
        d.device_vendor = device_vendor.to_string();
        d.custominfo = custominfo;
        d.mig_profiles = mig_profiles_json
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("mig_profiles_json: {e}")))?;
        Ok(Device { inner: d })
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[getter]
    fn index(&self) -> u32 {
        self.inner.index
    }
    #[getter]
    fn count(&self) -> u32 {
        self.inner.count
    }
    #[getter]
    fn devmem(&self) -> u64 {
        self.inner.devmem
    }
    #[getter]
    fn devcore(&self) -> u32 {
        self.inner.devcore
    }
    #[getter]
    fn r#type(&self) -> &str {
        &self.inner.type_
    }
    #[getter]
    fn numa(&self) -> i32 {
        self.inner.numa
    }
    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.as_str()
    }
    #[getter]
    fn health(&self) -> bool {
        self.inner.health
    }
    #[getter]
    fn vendor(&self) -> &str {
        &self.inner.vendor
    }
    #[getter]
    fn device_vendor(&self) -> &str {
        &self.inner.device_vendor
    }
    #[getter]
    fn custominfo_json(&self) -> Option<String> {
        self.inner.custominfo.as_ref().map(|v| v.to_string())
    }
    #[getter]
    fn mig_profiles_json(&self) -> Option<String> {
        self.inner.mig_profiles.as_ref().map(|v| v.to_string())
    }

    fn __repr__(&self) -> String {
        let d = &self.inner;
        format!(
            "Device(id={:?}, index={}, count={}, devmem={}, devcore={}, type={:?}, numa={}, mode={:?}, health={}, vendor={:?})",
            d.id, d.index, d.count, d.devmem, d.devcore, d.type_, d.numa, d.mode.as_str(), if d.health { "True" } else { "False" }, d.vendor
        )
    }
}

/// One device given to one container (an entry of the pod device annotation).
#[pyclass(module = "hami_rustcore", frozen, get_all, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AllocDevice {
    pub uuid: String,
    pub vendor: String,
    pub usedmem: u64,
    pub usedcores: u32,
}

impl AllocDevice {
    pub fn from_core(d: core::AllocDevice) -> Self {
        AllocDevice {
            uuid: d.uuid,
            vendor: d.vendor,
            usedmem: d.usedmem,
            usedcores: d.usedcores,
        }
    }
    pub fn to_core(&self) -> core::AllocDevice {
        core::AllocDevice {
            uuid: self.uuid.clone(),
            vendor: self.vendor.clone(),
            usedmem: self.usedmem,
            usedcores: self.usedcores,
        }
    }
}

#[pymethods]
impl AllocDevice {
    #[new]
    fn new(uuid: String, vendor: String, usedmem: u64, usedcores: u32) -> Self {
        AllocDevice {
            uuid,
            vendor,
            usedmem,
            usedcores,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "AllocDevice(uuid={:?}, vendor={:?}, usedmem={}, usedcores={})",
            self.uuid, self.vendor, self.usedmem, self.usedcores
        )
    }
}

fn containers_to_py(c: core::PodDevices) -> Vec<Vec<AllocDevice>> {
    c.into_iter()
        .map(|v| v.into_iter().map(AllocDevice::from_core).collect())
        .collect()
}

/// One vendor's part of one container's request.
#[pyclass(module = "hami_rustcore", frozen, get_all, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct DeviceRequest {
    pub vendor: String,
    pub count: u32,
    pub mem_mib: u64,
    pub mem_percent: Option<u32>,
    pub cores: u32,
}

#[pymethods]
impl DeviceRequest {
    #[new]
    #[pyo3(signature = (vendor, count, mem_mib=0, mem_percent=None, cores=0))]
    fn new(vendor: String, count: u32, mem_mib: u64, mem_percent: Option<u32>, cores: u32) -> PyResult<Self> {
        if mem_percent.is_some_and(|p| p == 0 || p > 100) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "mem_percent must be between 1 and 100",
            ));
        }
        Ok(DeviceRequest {
            vendor,
            count,
            mem_mib,
            mem_percent,
            cores,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "DeviceRequest(vendor={:?}, count={}, mem_mib={}, mem_percent={}, cores={})",
            self.vendor,
            self.count,
            self.mem_mib,
            self.mem_percent.map_or("None".to_string(), |p| p.to_string()),
            self.cores
        )
    }
}

/// One container's request: init or app, and its devices per vendor.
#[pyclass(module = "hami_rustcore", frozen, get_all, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct ContainerRequest {
    pub devices: Vec<DeviceRequest>,
    pub init: bool,
}

#[pymethods]
impl ContainerRequest {
    #[new]
    #[pyo3(signature = (devices, init=false))]
    fn new(devices: Vec<DeviceRequest>, init: bool) -> Self {
        ContainerRequest { devices, init }
    }

    fn __repr__(&self) -> String {
        format!(
            "ContainerRequest(devices=[{} device request(s)], init={})",
            self.devices.len(),
            if self.init { "True" } else { "False" }
        )
    }
}

/// A pod as the scheduler sees it.
#[pyclass(module = "hami_rustcore", frozen, get_all, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct PodRequest {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerRequest>,
    pub annotations: BTreeMap<String, String>,
}

impl PodRequest {
    pub fn from_core(r: core::PodRequest) -> Self {
        PodRequest {
            uid: r.uid,
            namespace: r.namespace,
            name: r.name,
            containers: r
                .containers
                .into_iter()
                .map(|c| ContainerRequest {
                    init: c.init,
                    devices: c
                        .devices
                        .into_iter()
                        .map(|d| DeviceRequest {
                            vendor: d.vendor,
                            count: d.count,
                            mem_mib: d.mem_mib,
                            mem_percent: d.mem_percent,
                            cores: d.cores,
                        })
                        .collect(),
                })
                .collect(),
            annotations: r.annotations,
        }
    }

    pub fn to_core(&self, _py: Python<'_>) -> PyResult<core::PodRequest> {
        let mut seen_app = false;
        for c in &self.containers {
            if c.init && seen_app {
                return Err(core_err(core::Error::InvalidRequest(
                    "containers: init containers must come before app containers".into(),
                )));
            }
            seen_app |= !c.init;
        }
        Ok(core::PodRequest {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            containers: self
                .containers
                .iter()
                .map(|c| core::ContainerRequest {
                    init: c.init,
                    devices: c
                        .devices
                        .iter()
                        .map(|d| core::DeviceRequest {
                            vendor: d.vendor.clone(),
                            count: d.count,
                            mem_mib: d.mem_mib,
                            mem_percent: d.mem_percent,
                            cores: d.cores,
                        })
                        .collect(),
                })
                .collect(),
            annotations: self.annotations.clone(),
        })
    }
}

#[pymethods]
impl PodRequest {
    #[new]
    #[pyo3(signature = (uid, namespace, name, containers, annotations=None))]
    fn new(
        uid: String,
        namespace: String,
        name: String,
        containers: Vec<ContainerRequest>,
        annotations: Option<BTreeMap<String, String>>,
    ) -> Self {
        PodRequest {
            uid,
            namespace,
            name,
            containers,
            annotations: annotations.unwrap_or_default(),
        }
    }

    /// Whether any container asks for a managed device.
    fn has_devices(&self) -> bool {
        self.containers.iter().any(|c| c.devices.iter().any(|d| d.count > 0))
    }

    fn __repr__(&self) -> String {
        format!(
            "PodRequest(uid={:?}, namespace={:?}, name={:?}, containers={})",
            self.uid,
            self.namespace,
            self.name,
            self.containers.len()
        )
    }
}

/// The outcome of `Cluster.filter`. The per-node reasons stay in Rust, in candidate order: a
/// cluster-wide miss has thousands, and the extender needs them as JSON and a few as a dict.
#[pyclass(module = "hami_rustcore", frozen)]
pub struct FilterResult {
    #[pyo3(get)]
    pub node: Option<String>,
    #[pyo3(get)]
    pub score: f64,
    #[pyo3(get)]
    pub devices: Vec<Vec<AllocDevice>>,
    pub failed_nodes: Vec<(String, String)>,
    #[pyo3(get)]
    pub reasons: HashMap<String, u32>,
    #[pyo3(get)]
    pub reserved: bool,
    /// The vendors' pod annotations beyond the device lists (Ascend's runtime JSON and
    /// `predicate-time`, Cambricon's `CAMBRICON_DSMLU_*`), to write with them.
    #[pyo3(get)]
    pub annotations: BTreeMap<String, String>,
}

impl FilterResult {
    pub fn from_core(r: core::FilterResult) -> Self {
        FilterResult {
            node: r.node,
            score: r.score,
            devices: containers_to_py(r.devices),
            failed_nodes: r.failed,
            reasons: r
                .reason_counts
                .reasons()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect(),
            reserved: r.reserved,
            annotations: r.annotations.into_iter().collect(),
        }
    }
}

#[pymethods]
impl FilterResult {
    /// Every rejected node and its reason.
    #[getter]
    fn failed(&self) -> HashMap<String, String> {
        self.failed_nodes.iter().cloned().collect()
    }

    #[getter]
    fn failed_count(&self) -> usize {
        self.failed_nodes.len()
    }

    /// How many candidates are not registered nodes (no device plugin annotation).
    #[getter]
    fn unregistered_count(&self) -> usize {
        let unregistered = hami_sched::reason::NODE_UNREGISTERED;
        self.failed_nodes.iter().filter(|(_, r)| r == unregistered).count()
    }

    /// The first `n` rejected nodes (candidate order) and their reasons.
    fn failed_head(&self, n: usize) -> Vec<(String, String)> {
        self.failed_nodes.iter().take(n).cloned().collect()
    }

    /// Every rejected node and its reason as a JSON object (UTF-8), in candidate order.
    fn failed_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = String::with_capacity(self.failed_nodes.len() * 48 + 2);
        out.push('{');
        for (i, (node, reason)) in self.failed_nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(node).expect("strings always encode"));
            out.push(':');
            out.push_str(&serde_json::to_string(reason).expect("strings always encode"));
        }
        out.push('}');
        PyBytes::new(py, out.as_bytes())
    }

    fn __repr__(&self) -> String {
        format!(
            "FilterResult(node={:?}, score={:.3}, failed={} node(s), reserved={})",
            self.node,
            self.score,
            self.failed_nodes.len(),
            self.reserved
        )
    }
}

/// A pod's allocation as the state holds it.
#[pyclass(module = "hami_rustcore", frozen, get_all)]
pub struct PodAllocation {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub devices: Vec<Vec<AllocDevice>>,
    pub init_count: usize,
    pub init_done: bool,
    pub reserved_at: Option<f64>,
    /// Its `hami.io/vgpu-mig-allocations` (canonical JSON), when it holds MIG instances.
    pub mig_allocations: Option<String>,
}

impl PodAllocation {
    pub fn from_core(p: core::PodAlloc) -> Self {
        let mig_allocations = (!p.mig.is_empty()).then(|| core::mig::encode_mig_allocations(&p.mig));
        PodAllocation {
            mig_allocations,
            uid: p.uid,
            namespace: p.namespace,
            name: p.name,
            node: p.node,
            devices: containers_to_py(p.containers),
            init_count: p.init_count,
            init_done: p.init_done,
            reserved_at: p.reserved_at,
        }
    }
}

#[pymethods]
impl PodAllocation {
    fn __repr__(&self) -> String {
        format!(
            "PodAllocation(uid={:?}, {}/{} on {:?})",
            self.uid, self.namespace, self.name, self.node
        )
    }
}

/// One device's inventory and what is in use on it.
#[pyclass(module = "hami_rustcore", frozen, get_all)]
pub struct DeviceUsage {
    pub node: String,
    pub device: Device,
    pub used: u32,
    pub usedmem: u64,
    pub usedcores: u32,
    pub cordoned: bool,
}

impl DeviceUsage {
    pub fn from_core(v: core::DeviceUsageView) -> Self {
        DeviceUsage {
            node: v.node,
            device: Device::from_core(v.device),
            used: v.usage.used,
            usedmem: v.usage.usedmem,
            usedcores: v.usage.usedcores,
            cordoned: v.cordoned,
        }
    }
}

#[pymethods]
impl DeviceUsage {
    fn __repr__(&self) -> String {
        format!(
            "DeviceUsage(node={:?}, device={:?}, used={}, usedmem={}, usedcores={})",
            self.node, self.device.inner.id, self.used, self.usedmem, self.usedcores
        )
    }
}
