//! `load_pod_page`: one page of the API's pod list, from the response bytes into the state,
//! without a Python object per pod. The rules are `hami_sched::podlist`'s; this converts.

use crate::convert::core_err;
use crate::Cluster;
use hami_sched::podlist::decode_pod_page;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList};
use std::collections::HashSet;

/// What `load_pod_page` read from one page and did with it.
#[pyclass(module = "hami_rustcore", frozen, get_all)]
pub struct PodPage {
    /// The next page's token; None on the last page.
    continue_token: Option<String>,
    resource_version: String,
    /// `(uid, "namespace/name")` of each pod put into the state.
    loaded: Py<PyList>,
    /// UIDs of finished pods (Succeeded, Failed), not put into the state.
    finished: Py<PyList>,
    /// `(uid, namespace, name, error)` of each pod whose allocation did not decode.
    invalid: Py<PyList>,
    /// The JSON of every other pod, for the per-pod path.
    others: Py<PyList>,
}

#[pymethods]
impl PodPage {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "PodPage(loaded={}, finished={}, invalid={}, others={}, continue_token={:?})",
            self.loaded.bind(py).len(),
            self.finished.bind(py).len(),
            self.invalid.bind(py).len(),
            self.others.bind(py).len(),
            self.continue_token
        )
    }
}

/// Decodes one page of the pod list (the response body) and puts its common placed pods into
/// the state under one lock, without the GIL. `reserved`: UIDs with a reservation in memory
/// not yet written (they come back in `others`). A page that is not a pod list raises
/// `DecodeError`, and nothing of it is applied.
#[pyfunction]
#[pyo3(signature = (cluster, page, reserved=None))]
pub fn load_pod_page(
    py: Python<'_>,
    cluster: &Bound<'_, Cluster>,
    page: PyBackedBytes,
    reserved: Option<&Bound<'_, PyAny>>,
) -> PyResult<PodPage> {
    let reserved: HashSet<String> = match reserved {
        None => HashSet::new(),
        Some(uids) => uids
            .try_iter()?
            .map(|uid| uid?.extract::<String>())
            .collect::<PyResult<_>>()?,
    };
    let state = &cluster.get().inner;
    let (decoded, loaded) = py
        .detach(|| {
            let mut decoded = decode_pod_page(&page, state.vendors(), &|uid| reserved.contains(uid))?;
            let placed = std::mem::take(&mut decoded.placed);
            let loaded: Vec<(String, String)> = placed
                .iter()
                .map(|p| (p.uid.clone(), format!("{}/{}", p.namespace, p.name)))
                .collect();
            state.upsert_pods(placed);
            Ok((decoded, loaded))
        })
        .map_err(core_err)?;
    let invalid = decoded
        .invalid
        .into_iter()
        .map(|p| (p.uid, p.namespace, p.name, p.error.to_string()));
    let others = decoded.others.iter().map(|text| PyBytes::new(py, text.as_bytes()));
    Ok(PodPage {
        continue_token: decoded.continue_token,
        resource_version: decoded.resource_version,
        loaded: PyList::new(py, loaded)?.unbind(),
        finished: PyList::new(py, decoded.finished)?.unbind(),
        invalid: PyList::new(py, invalid)?.unbind(),
        others: PyList::new(py, others)?.unbind(),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PodPage>()?;
    m.add_function(wrap_pyfunction!(load_pod_page, m)?)
}
