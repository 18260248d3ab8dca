//! `RequestModel`: the core's model of what a pod requests, for admission. It derives requests
//! exactly as `Cluster.pod_request` does (same vendor table, same code), and adds admission's
//! defaults, checks, warnings and quota amounts (`hami_sched::admit`).

use crate::convert::{core_err, parse_vendor_overrides, pod_text};
use crate::types::PodRequest;
use hami_sched::Vendors;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;

/// What admission does to one container.
#[pyclass(module = "hami_rustcore", frozen, get_all)]
pub struct ContainerAdmission {
    pub init: bool,
    pub index: usize,
    pub added_limits: Vec<(String, String)>,
    pub set_requests: Vec<(String, String)>,
    pub vendors: Vec<String>,
    pub priorities: BTreeMap<String, i64>,
}

#[pymethods]
impl ContainerAdmission {
    fn __repr__(&self) -> String {
        format!(
            "ContainerAdmission(init={}, index={}, added_limits={:?}, vendors={:?})",
            if self.init { "True" } else { "False" },
            self.index,
            self.added_limits,
            self.vendors
        )
    }
}

/// The outcome of `RequestModel.admit`.
#[pyclass(module = "hami_rustcore", frozen, get_all)]
pub struct PodAdmission {
    pub containers: Vec<Py<ContainerAdmission>>,
    pub request: Py<PodRequest>,
    pub quota: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
}

#[pymethods]
impl PodAdmission {
    /// Whether any container asks for any vendor's devices (HAMi's `hasResource`).
    fn has_devices(&self, py: Python<'_>) -> bool {
        self.containers.iter().any(|c| !c.borrow(py).vendors.is_empty())
    }

    fn __repr__(&self) -> String {
        format!(
            "PodAdmission(containers={}, quota={:?}, warnings={})",
            self.containers.len(),
            self.quota,
            self.warnings.len()
        )
    }
}

/// The request model over one vendor table (the same table `Cluster(vendors=...)` takes).
#[pyclass(module = "hami_rustcore", frozen)]
pub struct RequestModel {
    vendors: Vendors,
}

#[pymethods]
impl RequestModel {
    #[new]
    #[pyo3(signature = (vendors=None))]
    fn new(vendors: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(RequestModel {
            vendors: parse_vendor_overrides(vendors)?,
        })
    }

    /// Every vendor's resource and annotation names and defaults, by vendor key.
    fn vendor_specs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::convert::vendor_specs(py, &self.vendors)
    }

    /// Derives a pod's request from the pod object (JSON text or bytes), as `Cluster.pod_request`.
    fn pod_request(&self, py: Python<'_>, pod_json: &Bound<'_, PyAny>) -> PyResult<PodRequest> {
        let text = pod_text(pod_json)?;
        let req = py
            .detach(|| hami_sched::PodRequest::from_pod_json(&text, &self.vendors))
            .map_err(core_err)?;
        Ok(PodRequest::from_core(req))
    }

    /// What the pod counts against a namespace quota, per resource name (zeros left out).
    fn quota_request(&self, py: Python<'_>, pod_json: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, u64>> {
        let text = pod_text(pod_json)?;
        py.detach(|| {
            hami_sched::PodRequest::from_pod_json(&text, &self.vendors)
                .map(|req| hami_sched::quota_request(&req, &self.vendors))
        })
        .map_err(core_err)
    }

    /// Admits a pod object: the limits to add per container, the request of the pod with them,
    /// its quota amounts and warnings. Raises `CoreError` with what to write instead.
    fn admit(&self, py: Python<'_>, pod_json: &Bound<'_, PyAny>) -> PyResult<PodAdmission> {
        let text = pod_text(pod_json)?;
        let admitted = py
            .detach(|| {
                let pod = hami_sched::request::parse_pod_json(&text)?;
                hami_sched::admit_pod(&pod, &self.vendors)
            })
            .map_err(core_err)?;
        let containers = admitted
            .containers
            .into_iter()
            .map(|c| {
                Py::new(
                    py,
                    ContainerAdmission {
                        init: c.init,
                        index: c.index,
                        added_limits: c.added_limits,
                        set_requests: c.set_requests,
                        vendors: c.vendors,
                        priorities: c.priorities.into_iter().collect(),
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PodAdmission {
            containers,
            request: Py::new(py, PodRequest::from_core(admitted.request))?,
            quota: admitted.quota,
            warnings: admitted.warnings,
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RequestModel>()?;
    m.add_class::<PodAdmission>()?;
    m.add_class::<ContainerAdmission>()?;
    Ok(())
}
