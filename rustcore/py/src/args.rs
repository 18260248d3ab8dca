//! kube-scheduler's `ExtenderArgs`, read by the core: the extender's `/filter` body goes in as
//! bytes and its thousands of node names stay in one Rust buffer, handed to `Cluster.filter`
//! without ever becoming Python strings.

use crate::convert::core_err;
use hami_sched::codec;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList};

/// Node names held by the core, in request order (a read-only sequence of `str`).
#[pyclass(module = "hami_rustcore", frozen, sequence)]
pub struct NodeNames {
    pub inner: codec::NodeNames,
}

#[pymethods]
impl NodeNames {
    #[new]
    fn new(names: Vec<String>) -> Self {
        NodeNames {
            inner: names.iter().map(String::as_str).collect(),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __getitem__(&self, index: isize) -> PyResult<String> {
        let len = self.inner.len() as isize;
        let i = if index < 0 { index + len } else { index };
        (0..len)
            .contains(&i)
            .then(|| self.inner.get(i as usize))
            .flatten()
            .map(str::to_string)
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err("NodeNames index out of range"))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyList::new(py, self.inner.iter())?.try_iter()
    }

    fn to_list(&self) -> Vec<String> {
        self.inner.iter().map(str::to_string).collect()
    }

    /// The names as a JSON array (UTF-8), for an answer that passes them through.
    fn to_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.to_json().as_bytes())
    }

    fn __repr__(&self) -> String {
        format!("NodeNames(<{} names>)", self.inner.len())
    }
}

/// `(pod, node_names, nodes)` from an `ExtenderArgs` body: the pod and the `Nodes` list as their
/// raw JSON (None when absent or null), the names as `NodeNames` (None when absent or null).
/// Raises `DecodeError` naming what was wrong (not JSON, not an object, names not strings).
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn parse_extender_args<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<(
    Option<Bound<'py, PyBytes>>,
    Option<NodeNames>,
    Option<Bound<'py, PyBytes>>,
)> {
    let args = codec::decode_extender_args(body).map_err(core_err)?;
    let raw = |text: Option<&str>| text.map(|t| PyBytes::new(py, t.as_bytes()));
    Ok((
        raw(args.pod),
        args.node_names.map(|inner| NodeNames { inner }),
        raw(args.nodes),
    ))
}
