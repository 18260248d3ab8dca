//! `hami_rustcore`: the Python face of `hami-sched`. This crate only converts types and
//! errors; every rule lives in the pure crate.

mod admission;
mod args;
mod convert;
mod podpage;
mod types;
mod volcano;

use convert::{core_err, parse_vendor_overrides, CoreError, DecodeError};
use hami_sched::{codec, Cluster as CoreCluster, GpuPolicy, NodePolicy, PodAlloc};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use types::{
    AllocDevice, ContainerRequest, Device, DeviceRequest, DeviceUsage, FilterResult, PodAllocation, PodRequest,
};

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The cluster's usage state and the fit/score engine. Thread-safe; long calls release the GIL.
#[pyclass(module = "hami_rustcore", frozen)]
struct Cluster {
    inner: CoreCluster,
    node_policy: &'static str,
    gpu_policy: String,
}

#[pymethods]
impl Cluster {
    #[new]
    #[pyo3(signature = (node_policy="binpack", gpu_policy="spread", vendors=None, threads=None))]
    fn new(
        node_policy: &str,
        gpu_policy: &str,
        vendors: Option<&Bound<'_, PyDict>>,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        if !matches!(node_policy, "binpack" | "spread") {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "node_policy: {node_policy:?} is not one of binpack, spread"
            )));
        }
        let vendor_set = parse_vendor_overrides(vendors)?;
        let np = NodePolicy::parse(node_policy);
        let mut inner = CoreCluster::new(vendor_set, np, GpuPolicy::parse(gpu_policy));
        if let Some(t) = threads {
            inner.set_threads(t);
        }
        Ok(Cluster {
            inner,
            node_policy: np.as_str(),
            gpu_policy: gpu_policy.to_string(),
        })
    }

    #[getter]
    fn node_policy(&self) -> &str {
        self.node_policy
    }

    #[getter]
    fn gpu_policy(&self) -> &str {
        &self.gpu_policy
    }

    /// Every vendor's resource and annotation names, by vendor key.
    fn vendor_specs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::vendor_specs(py, self.inner.vendors())
    }

    /// Derives a pod's request from the pod object (JSON text or bytes).
    fn pod_request(&self, py: Python<'_>, pod_json: &Bound<'_, PyAny>) -> PyResult<PodRequest> {
        let text = convert::pod_text(pod_json)?;
        let vendors = self.inner.vendors();
        let req = py
            .detach(|| hami_sched::PodRequest::from_pod_json(&text, vendors))
            .map_err(core_err)?;
        Ok(PodRequest::from_core(req))
    }

    #[pyo3(signature = (name, devices, pair_scores=None, cordoned=None))]
    fn set_node(
        &self,
        name: &str,
        devices: Vec<PyRef<'_, Device>>,
        pair_scores: Option<Vec<(String, BTreeMap<String, i64>)>>,
        cordoned: Option<Vec<String>>,
    ) {
        let devices = devices.iter().map(|d| d.inner.clone()).collect();
        self.inner.set_node(
            name,
            devices,
            &pair_scores.unwrap_or_default(),
            &cordoned.unwrap_or_default(),
        );
    }

    fn remove_node(&self, name: &str) -> bool {
        self.inner.remove_node(name)
    }

    fn node_names(&self) -> Vec<String> {
        self.inner.node_names()
    }

    /// Adds or replaces a pod's allocation. `devices` is the allocated annotation's text or its
    /// decoded containers; `mig_allocations` the text of `hami.io/vgpu-mig-allocations` (the
    /// MIG instances it holds).
    #[pyo3(signature = (uid, namespace, name, node, devices, init_count=0, init_done=false, reserved_at=None, mig_allocations=None))]
    #[allow(clippy::too_many_arguments)]
    fn upsert_pod(
        &self,
        uid: String,
        namespace: String,
        name: String,
        node: String,
        devices: &Bound<'_, PyAny>,
        init_count: usize,
        init_done: bool,
        reserved_at: Option<f64>,
        mig_allocations: Option<&str>,
    ) -> PyResult<()> {
        let containers = convert::containers_arg(devices)?;
        let mig = match mig_allocations.filter(|t| !t.is_empty()) {
            Some(text) => hami_sched::mig::decode_mig_allocations(text).map_err(core_err)?,
            None => Vec::new(),
        };
        self.inner.upsert_pod(PodAlloc {
            uid,
            namespace,
            name,
            node,
            containers,
            init_count,
            init_done,
            reserved_at,
            mig,
        });
        Ok(())
    }

    /// Applies many allocations from their annotation text under one lock, without the GIL:
    /// `(uid, namespace, name, node, allocated_annotation, init_count)`. Returns
    /// `(uid, error)` for each pod whose annotation did not decode; the others are applied.
    fn upsert_pods(
        &self,
        py: Python<'_>,
        pods: Vec<(String, String, String, String, PyBackedStr, usize)>,
    ) -> Vec<(String, String)> {
        py.detach(|| {
            let mut errors = Vec::new();
            let mut allocs = Vec::with_capacity(pods.len());
            for (uid, namespace, name, node, text, init_count) in pods {
                match codec::decode_pod_devices(&text) {
                    Ok(containers) => allocs.push(PodAlloc {
                        uid,
                        namespace,
                        name,
                        node,
                        containers,
                        init_count,
                        init_done: false,
                        reserved_at: None,
                        mig: Vec::new(),
                    }),
                    Err(e) => errors.push((uid, e.to_string())),
                }
            }
            self.inner.upsert_pods(allocs);
            errors
        })
    }

    fn remove_pod(&self, uid: &str) -> bool {
        self.inner.remove_pod(uid)
    }

    fn pod(&self, uid: &str) -> Option<PodAllocation> {
        self.inner.pod(uid).map(PodAllocation::from_core)
    }

    fn pod_count(&self) -> usize {
        self.inner.pod_count()
    }

    fn mark_bound(&self, uid: &str) -> bool {
        self.inner.mark_bound(uid)
    }

    /// Releases reservations older than `ttl` seconds that were never bound; returns their UIDs.
    #[pyo3(signature = (ttl, now=None))]
    fn release_expired(&self, ttl: f64, now: Option<f64>) -> Vec<String> {
        self.inner.release_expired(now.unwrap_or_else(now_unix), ttl)
    }

    #[pyo3(signature = (namespace, vendor, mem=None, cores=None))]
    fn set_quota(&self, namespace: &str, vendor: &str, mem: Option<u64>, cores: Option<u64>) {
        self.inner.set_quota(namespace, vendor, mem, cores);
    }

    fn quota_usage(&self, namespace: &str, vendor: &str) -> (u64, u64) {
        self.inner.quota_usage(namespace, vendor)
    }

    fn usage(&self) -> Vec<DeviceUsage> {
        self.inner.usage().into_iter().map(DeviceUsage::from_core).collect()
    }

    /// Marks a node's allocation lock as held or free (see `filter`'s `prefer_idle` and `window`).
    fn set_node_busy(&self, name: &str, busy: bool) -> bool {
        self.inner.set_node_busy(name, busy)
    }

    /// Allocations in flight on a node: unbound reservations, plus one while it is busy.
    fn in_flight(&self, name: &str) -> u32 {
        self.inner.in_flight(name)
    }

    /// Picks the best node among `candidates` and, with `reserve`, records the allocation.
    /// With `prefer_idle`, fitting nodes with fewer allocations in flight come first. With
    /// binpack, a `backlog` of pods still to place and a `window` above 1, the pod goes to the
    /// node with the fewest allocations in flight among the (at most `window`) nodes packing
    /// fills next with the backlog.
    #[pyo3(signature = (pod, candidates, reserve=true, now=None, prefer_idle=false, backlog=0, window=1))]
    #[allow(clippy::too_many_arguments)]
    fn filter(
        &self,
        py: Python<'_>,
        pod: PyRef<'_, PodRequest>,
        candidates: &Bound<'_, PyAny>,
        reserve: bool,
        now: Option<f64>,
        prefer_idle: bool,
        backlog: u32,
        window: u32,
    ) -> PyResult<FilterResult> {
        let burst = hami_sched::Burst {
            prefer_idle,
            backlog,
            window,
        };
        let req = pod.to_core(py)?;
        let now = now.unwrap_or_else(now_unix);
        if let Ok(names) = candidates.cast::<args::NodeNames>() {
            let names = &names.get().inner; // already in one buffer: read in place
            let result = py.detach(|| {
                let names: Vec<&str> = names.iter().collect();
                self.inner.filter_with(&req, &names, reserve, now, burst)
            });
            return Ok(FilterResult::from_core(result.map_err(core_err)?));
        }
        // Copy the names into one buffer under the GIL (no per-name allocation), then let go of it.
        let (arena, spans) = convert::names_arg(candidates)?;
        let result = py.detach(|| {
            let names: Vec<&str> = spans.iter().map(|&(a, b)| &arena[a..b]).collect();
            self.inner.filter_with(&req, &names, reserve, now, burst)
        });
        Ok(FilterResult::from_core(result.map_err(core_err)?))
    }
}

/// The `migProfiles` a MIG-mode GPU of `model` registers (JSON), limited to `allowed` profile
/// names when given; `None` for a model with no MIG table.
#[pyfunction]
#[pyo3(signature = (model, allowed=None))]
fn mig_registration(model: &str, allowed: Option<Vec<String>>) -> Option<String> {
    let allowed: Vec<&str> = allowed.iter().flatten().map(String::as_str).collect();
    hami_sched::mig::registration_for(model, &allowed).map(|v| v.to_string())
}

/// NVIDIA's MIG geometry of `model`: `(memory slices, [(profile, NVML profile id, MiB, compute
/// slices, SMs, [(start, size)])])`, or `None` for a model with no MIG table.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn mig_geometry(model: &str) -> Option<(u8, Vec<(String, u32, u64, u8, u32, Vec<(u8, u8)>)>)> {
    let t = hami_sched::mig::model_table(model)?;
    let profiles = t
        .profiles
        .iter()
        .map(|p| {
            (
                p.name.to_string(),
                p.nvml_id,
                p.memory_mb,
                p.slices,
                p.sms,
                p.placements.to_vec(),
            )
        })
        .collect();
    Some((t.memory_slices, profiles))
}

/// Checks a `hami.io/vgpu-mig-allocations` text and returns it in HAMi's canonical form (an
/// error names the entry and what is wrong with it).
#[pyfunction]
fn normalize_mig_allocations(text: &str) -> PyResult<String> {
    let allocs = hami_sched::mig::decode_mig_allocations(text).map_err(core_err)?;
    Ok(hami_sched::mig::encode_mig_allocations(&allocs))
}

/// Decodes a JSON register annotation. `mode` replaces every device's mode (the extender sets
/// an Ascend node's NPUs to `hami-core` or `template` from its `hami-vnpu-core` annotation).
#[pyfunction]
#[pyo3(signature = (text, vendor="NVIDIA", mode=None))]
fn decode_node_devices(text: &str, vendor: &str, mode: Option<&str>) -> PyResult<Vec<Device>> {
    let mode = mode
        .map(|m| {
            hami_sched::DeviceMode::from_name(m).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "mode: {m:?} is not one of hami-core, mig, mps, template"
                ))
            })
        })
        .transpose()?;
    Ok(codec::decode_node_devices(text, vendor)
        .map_err(core_err)?
        .into_iter()
        .map(|mut d| {
            if let Some(m) = mode {
                d.mode = m;
            }
            Device::from_core(d)
        })
        .collect())
}

/// Encodes a JSON register annotation; `with_mode=False` leaves the `mode` key out, as the
/// Ascend plugin's `json.Marshal` does.
#[pyfunction]
#[pyo3(signature = (devices, with_mode=true))]
fn encode_node_devices(devices: Vec<PyRef<'_, Device>>, with_mode: bool) -> String {
    let d: Vec<_> = devices.iter().map(|d| d.inner.clone()).collect();
    codec::encode_node_devices_as(&d, with_mode)
}

/// Cambricon's inventory from the node's capacity of the sMLU core and memory resources
/// (HAMi synthesizes it; no annotation carries it).
#[pyfunction]
fn cambricon_devices(node: &str, vcore: i64, vmemory: i64) -> Vec<Device> {
    hami_sched::vendor::cambricon_devices(node, &hami_sched::VendorSpec::cambricon(), vcore, vmemory)
        .into_iter()
        .map(Device::from_core)
        .collect()
}

/// Encodes the Ascend runtime annotation `huawei.com/<CW>` from `(uuid, temp, memory, core)`.
#[pyfunction]
fn encode_ascend_runtime(items: Vec<(String, String, u64, u32)>) -> String {
    let items: Vec<codec::RuntimeInfo> = items
        .into_iter()
        .map(|(uuid, temp, memory, core)| codec::RuntimeInfo {
            uuid,
            temp,
            memory,
            core,
        })
        .collect();
    codec::encode_ascend_runtime(&items)
}

/// Decodes the Ascend runtime annotation into `(uuid, temp, memory, core)` per NPU.
#[pyfunction]
fn decode_ascend_runtime(text: &str) -> PyResult<Vec<(String, String, u64, u32)>> {
    Ok(codec::decode_ascend_runtime(text)
        .map_err(core_err)?
        .into_iter()
        .map(|r| (r.uuid, r.temp, r.memory, r.core))
        .collect())
}

#[pyfunction]
#[pyo3(signature = (text, vendor))]
fn decode_node_devices_legacy(text: &str, vendor: &str) -> PyResult<Vec<Device>> {
    Ok(codec::decode_node_devices_legacy(text, vendor)
        .map_err(core_err)?
        .into_iter()
        .map(Device::from_core)
        .collect())
}

#[pyfunction]
fn encode_node_devices_legacy(devices: Vec<PyRef<'_, Device>>) -> String {
    let d: Vec<_> = devices.iter().map(|d| d.inner.clone()).collect();
    codec::encode_node_devices_legacy(&d)
}

#[pyfunction]
fn decode_pod_devices(text: &str) -> PyResult<Vec<Vec<AllocDevice>>> {
    let c = codec::decode_pod_devices(text).map_err(core_err)?;
    Ok(c.into_iter()
        .map(|v| v.into_iter().map(AllocDevice::from_core).collect())
        .collect())
}

#[pyfunction]
fn encode_pod_devices(containers: &Bound<'_, PyAny>) -> PyResult<String> {
    codec::encode_pod_devices(&convert::containers_arg(containers)?).map_err(core_err)
}

#[pyfunction]
fn decode_pair_scores(text: &str) -> PyResult<Vec<(String, BTreeMap<String, i64>)>> {
    codec::decode_pair_scores(text).map_err(core_err)
}

#[pyfunction]
fn encode_pair_scores(scores: Vec<(String, BTreeMap<String, i64>)>) -> String {
    codec::encode_pair_scores(&scores)
}

/// A resource quantity's value when it is a whole number (`"16000"`, `"16k"`, `"2Gi"`).
#[pyfunction]
fn quantity_value(text: &str) -> PyResult<i64> {
    hami_sched::quantity::parse_quantity("quantity", text).map_err(core_err)
}

#[pymodule]
fn hami_rustcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", hami_sched::VERSION)?;
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add(
        "FAILURE_REASONS",
        hami_sched::reason::ALL_REASONS
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
    )?;
    m.add("NODE_UNREGISTERED", hami_sched::reason::NODE_UNREGISTERED)?;
    m.add_class::<Cluster>()?;
    m.add_class::<Device>()?;
    m.add_class::<AllocDevice>()?;
    m.add_class::<DeviceRequest>()?;
    m.add_class::<ContainerRequest>()?;
    m.add_class::<PodRequest>()?;
    m.add_class::<FilterResult>()?;
    m.add_class::<PodAllocation>()?;
    m.add_class::<DeviceUsage>()?;
    m.add_class::<args::NodeNames>()?;
    m.add_function(wrap_pyfunction!(args::parse_extender_args, m)?)?;
    m.add_function(wrap_pyfunction!(decode_node_devices, m)?)?;
    m.add_function(wrap_pyfunction!(mig_registration, m)?)?;
    m.add_function(wrap_pyfunction!(mig_geometry, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_mig_allocations, m)?)?;
    m.add_function(wrap_pyfunction!(encode_node_devices, m)?)?;
    m.add_function(wrap_pyfunction!(decode_node_devices_legacy, m)?)?;
    m.add_function(wrap_pyfunction!(encode_node_devices_legacy, m)?)?;
    m.add_function(wrap_pyfunction!(decode_pod_devices, m)?)?;
    m.add_function(wrap_pyfunction!(encode_pod_devices, m)?)?;
    m.add_function(wrap_pyfunction!(decode_pair_scores, m)?)?;
    m.add_function(wrap_pyfunction!(encode_pair_scores, m)?)?;
    m.add_function(wrap_pyfunction!(quantity_value, m)?)?;
    m.add_function(wrap_pyfunction!(cambricon_devices, m)?)?;
    m.add_function(wrap_pyfunction!(encode_ascend_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(decode_ascend_runtime, m)?)?;
    podpage::register(m)?;
    admission::register(m)?;
    volcano::register(m)?;
    Ok(())
}
