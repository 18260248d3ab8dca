//! `hami.io/vgpu-mig-allocations`: the MIG instances the scheduler reserved for a pod (profile
//! and placement per device), with the runtime identity the device plugin adds (HAMi's
//! `pkg/device/nvidia/mig_allocations.go`).

use crate::error::{Codec, Error, Result};
use crate::mig::mask_of;
use serde_json::{json, Value};

/// The annotation the scheduler writes with a MIG decision (HAMi's name).
pub const MIG_ALLOCATIONS: &str = "hami.io/vgpu-mig-allocations";

/// The instance the device plugin made for a reservation (all three, or none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MigRuntime {
    pub mig_uuid: String,
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
}

/// One entry of `hami.io/vgpu-mig-allocations`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MigAlloc {
    /// The container's position in the pod's device lists (init containers first).
    pub container: u32,
    /// The device's position in that container's list.
    pub device: u32,
    pub gpu_uuid: String,
    pub profile: String,
    pub start: u8,
    pub size: u8,
    pub runtime: Option<MigRuntime>,
}

impl MigAlloc {
    /// The memory slices it occupies (0 for a placement outside a GPU).
    pub fn mask(&self) -> u8 {
        mask_of(self.start, self.size).unwrap_or(0)
    }
}

fn mig_err(at: String, msg: impl Into<String>) -> Error {
    Error::decode(Codec::MigAllocations, "reservation", at, msg.into())
}

/// Decodes `hami.io/vgpu-mig-allocations`. As HAMi: every entry needs its container, device,
/// GPU, profile and placement; the runtime identity is all three fields or none; a
/// (container, device) pair appears once.
pub fn decode_mig_allocations(text: &str) -> Result<Vec<MigAlloc>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| mig_err(format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(mig_err("offset 0".into(), "expected a JSON array of reservations")),
    };
    let mut out: Vec<MigAlloc> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = || format!("entry [{i}]");
        let int = |k: &str| -> Result<u64> {
            item.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| mig_err(at(), format!("{k} must be a non-negative integer")))
        };
        let text = |k: &str| -> Result<String> {
            match item.get(k).and_then(Value::as_str) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(mig_err(at(), format!("{k} must be a non-empty string"))),
            }
        };
        let placement = item
            .get("placement")
            .ok_or_else(|| mig_err(at(), "placement is missing"))?;
        let pl = |k: &str| -> Result<u8> {
            placement
                .get(k)
                .and_then(Value::as_u64)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| mig_err(at(), format!("placement.{k} must be an integer from 0 to 255")))
        };
        let (start, size) = (pl("start")?, pl("size")?);
        if mask_of(start, size).is_none() {
            return Err(mig_err(
                at(),
                format!("placement {start}+{size} is outside a GPU's 8 memory slices"),
            ));
        }
        let present =
            ["migUUID", "gpuInstanceID", "computeInstanceID"].map(|k| item.get(k).is_some_and(|v| !v.is_null()));
        let runtime = match present {
            [false, false, false] => None,
            [true, true, true] => Some(MigRuntime {
                mig_uuid: text("migUUID")?,
                gpu_instance_id: u32::try_from(int("gpuInstanceID")?)
                    .map_err(|_| mig_err(at(), "gpuInstanceID is too large"))?,
                compute_instance_id: u32::try_from(int("computeInstanceID")?)
                    .map_err(|_| mig_err(at(), "computeInstanceID is too large"))?,
            }),
            _ => {
                return Err(mig_err(
                    at(),
                    "migUUID, gpuInstanceID and computeInstanceID go together: all three or none",
                ))
            }
        };
        let entry = MigAlloc {
            container: u32::try_from(int("containerIndex")?)
                .map_err(|_| mig_err(at(), "containerIndex is too large"))?,
            device: u32::try_from(int("deviceIndex")?).map_err(|_| mig_err(at(), "deviceIndex is too large"))?,
            gpu_uuid: text("gpuUUID")?,
            profile: text("profile")?,
            start,
            size,
            runtime,
        };
        if out
            .iter()
            .any(|e| e.container == entry.container && e.device == entry.device)
        {
            return Err(mig_err(
                at(),
                format!(
                    "container {} device {} is reserved twice",
                    entry.container, entry.device
                ),
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Encodes as HAMi writes it: keys in `MigAllocation` field order, runtime fields only when set.
pub fn encode_mig_allocations(allocs: &[MigAlloc]) -> String {
    let items: Vec<Value> = allocs
        .iter()
        .map(|a| {
            let mut v = json!({
                "containerIndex": a.container,
                "deviceIndex": a.device,
                "gpuUUID": a.gpu_uuid,
                "profile": a.profile,
                "placement": {"start": a.start, "size": a.size},
            });
            if let (Some(rt), Some(obj)) = (&a.runtime, v.as_object_mut()) {
                obj.insert("migUUID".into(), json!(rt.mig_uuid));
                obj.insert("gpuInstanceID".into(), json!(rt.gpu_instance_id));
                obj.insert("computeInstanceID".into(), json!(rt.compute_instance_id));
            }
            v
        })
        .collect();
    Value::Array(items).to_string()
}
