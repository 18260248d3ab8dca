//! volcano's vGPU formats (volcano-sh/volcano `pkg/scheduler/api/devices/nvidia/vgpu/utils.go`,
//! Project-HAMi/volcano-vgpu-device-plugin `pkg/util/util.go`), beside HAMi's:
//!
//! - the node registration `volcano.sh/node-vgpu-register`: `id,count,devmem,type,health,mode:`
//!   per device (six fields, each device terminated by `:`). There is no `devcore`: volcano
//!   counts 100 cores per device. volcano's decoder rejects the whole node when a device has
//!   fewer than six fields and ignores fields past the sixth.
//! - the pod device lists `volcano.sh/vgpu-ids-new` and `volcano.sh/devices-to-allocate`:
//!   `UUID,Type,Usedmem,Usedcores:` per device, the containers **joined** by `;` (HAMi's list
//!   terminates each container with `;` instead). volcano writes one entry per container that
//!   requests a vGPU, in `spec.containers` order; init containers and containers without a vGPU
//!   have no entry. `Type` is the request's type (`NVIDIA`), not the model.
//!
//! Decoders are strict where volcano's are lenient (volcano's skips a device whose numbers do not
//! parse and reads a bad count as 0): our plugin refuses an allocation it cannot read exactly
//! rather than give a container something other than what the scheduler counted.

use super::parse_go_bool;
use super::pod::decode_container;
use crate::error::{Codec, Error, Result};
use crate::model::{Device, DeviceMode, PodDevices};
use std::fmt::Write;

/// The cores volcano counts per device (`UsedCore + Coresreq > 100` in its fit).
pub const VOLCANO_DEVICE_CORES: u32 = 100;

fn field_ok(value: &str) -> bool {
    !value.is_empty() && !value.contains([',', ':', ';'])
}

/// Encodes `volcano.sh/node-vgpu-register`. `devcore`, `index`, `numa` and the vendor are not
/// part of the format. An id or type that is empty or holds a separator, or a mode volcano does
/// not know, is an error.
pub fn encode_volcano_node_devices(devices: &[Device]) -> Result<String> {
    let mut out = String::with_capacity(devices.len() * 80);
    for (i, d) in devices.iter().enumerate() {
        for (field, value) in [("id", &d.id), ("type", &d.type_)] {
            if !field_ok(value) {
                return Err(Error::decode(
                    Codec::VolcanoNodeRegister,
                    field,
                    format!("device [{i}]"),
                    format!("{value:?} must be non-empty and contain none of , : ;"),
                ));
            }
        }
        if d.mode == DeviceMode::Template {
            return Err(Error::decode(
                Codec::VolcanoNodeRegister,
                "mode",
                format!("device [{i}]"),
                "template mode has no volcano equivalent: use hami-core, mig or mps",
            ));
        }
        let _ = write!(
            out,
            "{},{},{},{},{},{}:",
            d.id,
            d.count,
            d.devmem,
            d.type_,
            d.health,
            d.mode.as_str()
        );
    }
    Ok(out)
}

/// Decodes `volcano.sh/node-vgpu-register`. Segments without a comma are skipped (as volcano
/// does, so the terminating `:` leaves no device); each device needs at least six fields, and
/// fields past the sixth are ignored, as volcano does. `devcore` is volcano's 100, `index` the
/// position, `vendor` `NVIDIA`.
pub fn decode_volcano_node_devices(text: &str) -> Result<Vec<Device>> {
    let mut devices = Vec::new();
    let mut offset = 0usize;
    for segment in text.split(':') {
        let pos = offset;
        offset += segment.len() + 1;
        if !segment.contains(',') {
            continue;
        }
        let at = |field: &str, msg: String| {
            Error::decode(
                Codec::VolcanoNodeRegister,
                field,
                format!("device [{}] (byte {pos})", devices.len()),
                msg,
            )
        };
        let f: Vec<&str> = segment.split(',').collect();
        if f.len() < 6 {
            return Err(at(
                "(fields)",
                format!(
                    "expected 6 comma-separated fields (id,count,devmem,type,health,mode), got {} in {segment:?}",
                    f.len()
                ),
            ));
        }
        if f[0].is_empty() {
            return Err(at("id", "missing or empty device id".into()));
        }
        let num = |idx: usize, name: &str| -> Result<u64> {
            f[idx]
                .parse::<u64>()
                .ok()
                .filter(|v| *v <= i32::MAX as u64)
                .ok_or_else(|| at(name, format!("expected a non-negative integer, got {:?}", f[idx])))
        };
        let health =
            parse_go_bool(f[4]).ok_or_else(|| at("health", format!("expected true or false, got {:?}", f[4])))?;
        let mode = DeviceMode::parse(f[5]).ok_or_else(|| {
            at(
                "mode",
                format!("unknown mode {:?}: expected hami-core, mig or mps", f[5]),
            )
        })?;
        let mut dev = Device::new(
            f[0],
            "NVIDIA",
            f[3],
            num(1, "count")? as u32,
            num(2, "devmem")?,
            VOLCANO_DEVICE_CORES,
        );
        dev.index = devices.len() as u32;
        dev.health = health;
        dev.mode = mode;
        devices.push(dev);
    }
    Ok(devices)
}

/// Encodes a volcano pod device list: the containers joined by `;`. An empty list, and a list
/// of one empty container, are both the empty string (as in volcano).
pub fn encode_volcano_pod_devices(containers: &PodDevices) -> Result<String> {
    let mut out = String::with_capacity(containers.len() * 64);
    for (c, devices) in containers.iter().enumerate() {
        if c > 0 {
            out.push(';');
        }
        for (d, dev) in devices.iter().enumerate() {
            for (field, value) in [("UUID", &dev.uuid), ("Type", &dev.vendor)] {
                if !field_ok(value) {
                    return Err(Error::decode(
                        Codec::VolcanoPodDevices,
                        field,
                        format!("container {c}, device {d}"),
                        format!("{value:?} must be non-empty and contain none of , : ;"),
                    ));
                }
            }
            let _ = write!(out, "{},{},{},{}:", dev.uuid, dev.vendor, dev.usedmem, dev.usedcores);
        }
    }
    Ok(out)
}

/// Decodes a volcano pod device list: every `;` separates two containers (a trailing `;` is an
/// empty last container, as in volcano). The empty string is no container.
pub fn decode_volcano_pod_devices(text: &str) -> Result<PodDevices> {
    let mut containers: PodDevices = Vec::new();
    if text.is_empty() {
        return Ok(containers);
    }
    let mut offset = 0usize;
    for (c, entry) in text.split(';').enumerate() {
        let devices = decode_container(c, entry, offset).map_err(|e| match e {
            Error::Decode {
                field,
                position,
                message,
                ..
            } => Error::Decode {
                codec: Codec::VolcanoPodDevices,
                field,
                position,
                message,
            },
            other => other,
        })?;
        containers.push(devices);
        offset += entry.len() + 1;
    }
    Ok(containers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AllocDevice;

    fn dev(uuid: &str, mem: u64, cores: u32) -> AllocDevice {
        AllocDevice {
            uuid: uuid.into(),
            vendor: "NVIDIA".into(),
            usedmem: mem,
            usedcores: cores,
        }
    }

    #[test]
    fn hami_list_with_trailing_semicolon_has_an_empty_last_container() {
        assert_eq!(
            decode_volcano_pod_devices("GPU-a,NVIDIA,1,2:;").unwrap(),
            vec![vec![dev("GPU-a", 1, 2)], vec![]]
        );
    }

    #[test]
    fn errors_name_the_volcano_format() {
        let err = decode_volcano_pod_devices("GPU-a,NVIDIA,x,1:").unwrap_err().to_string();
        assert!(err.starts_with("volcano pod device annotation"), "{err}");
        let err = decode_volcano_node_devices("GPU-a,10,1024,NVIDIA-T4,true:")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 6") && err.contains("device [0]"), "{err}");
    }
}
