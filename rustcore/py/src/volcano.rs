//! volcano's vGPU formats (`hami_sched::codec::volcano`): the node registration
//! `volcano.sh/node-vgpu-register` and the pod lists `volcano.sh/vgpu-ids-new` /
//! `volcano.sh/devices-to-allocate`. This only converts.

use crate::convert::core_err;
use crate::types::{AllocDevice, Device};
use hami_sched::codec;
use pyo3::prelude::*;

/// Decodes `volcano.sh/node-vgpu-register` (vendor `NVIDIA`, `devcore` volcano's 100).
#[pyfunction]
fn decode_volcano_node_devices(text: &str) -> PyResult<Vec<Device>> {
    Ok(codec::decode_volcano_node_devices(text)
        .map_err(core_err)?
        .into_iter()
        .map(Device::from_core)
        .collect())
}

/// Encodes `volcano.sh/node-vgpu-register`: `id,count,devmem,type,health,mode:` per device.
#[pyfunction]
fn encode_volcano_node_devices(devices: Vec<PyRef<'_, Device>>) -> PyResult<String> {
    let d: Vec<_> = devices.iter().map(|d| d.inner.clone()).collect();
    codec::encode_volcano_node_devices(&d).map_err(core_err)
}

/// Decodes a volcano pod device list: containers separated by `;`.
#[pyfunction]
fn decode_volcano_pod_devices(text: &str) -> PyResult<Vec<Vec<AllocDevice>>> {
    let c = codec::decode_volcano_pod_devices(text).map_err(core_err)?;
    Ok(c.into_iter()
        .map(|v| v.into_iter().map(AllocDevice::from_core).collect())
        .collect())
}

/// Encodes a volcano pod device list: the containers joined by `;`.
#[pyfunction]
fn encode_volcano_pod_devices(containers: Vec<Vec<PyRef<'_, AllocDevice>>>) -> PyResult<String> {
    let pd: Vec<Vec<_>> = containers
        .iter()
        .map(|c| c.iter().map(|d| d.to_core()).collect())
        .collect();
    codec::encode_volcano_pod_devices(&pd).map_err(core_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_volcano_node_devices, m)?)?;
    m.add_function(wrap_pyfunction!(encode_volcano_node_devices, m)?)?;
    m.add_function(wrap_pyfunction!(decode_volcano_pod_devices, m)?)?;
    m.add_function(wrap_pyfunction!(encode_volcano_pod_devices, m)?)?;
    Ok(())
}
