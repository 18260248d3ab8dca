//! The pod device list (`hami.io/vgpu-devices-allocated` and `-to-allocate`):
//! `UUID,Type,Usedmem,Usedcores:` per device, the devices of a container terminated by `;`,
//! one entry per container in index order (init containers first). An empty container is `;`.

use crate::error::{Codec, Error, Result};
use crate::model::{AllocDevice, PodDevices};
use std::fmt::Write;

pub fn encode_pod_devices(containers: &PodDevices) -> Result<String> {
    let mut out = String::with_capacity(containers.len() * 64);
    for (c, devices) in containers.iter().enumerate() {
        for (d, dev) in devices.iter().enumerate() {
            for (field, value) in [("UUID", &dev.uuid), ("Type", &dev.vendor)] {
                if value.is_empty() || value.contains([',', ':', ';']) {
                    return Err(Error::decode(
                        Codec::PodDevices,
                        field,
                        format!("container {c}, device {d}"),
                        format!("{value:?} must be non-empty and contain none of , : ;"),
                    ));
                }
            }
            let _ = write!(out, "{},{},{},{}:", dev.uuid, dev.vendor, dev.usedmem, dev.usedcores);
        }
        out.push(';');
    }
    Ok(out)
}

/// Decodes a device list. A trailing `;` closes the last container (HAMi's decoder also yields
/// an extra empty entry after it, which carries no device; we do not).
pub fn decode_pod_devices(text: &str) -> Result<PodDevices> {
    let mut containers: PodDevices = Vec::new();
    if text.is_empty() {
        return Ok(containers);
    }
    let body = text.strip_suffix(';').unwrap_or(text);
    let mut offset = 0usize;
    for (c, entry) in body.split(';').enumerate() {
        containers.push(decode_container(c, entry, offset)?);
        // one byte for the `;` that closed the entry
        offset += entry.len() + 1;
    }
    Ok(containers)
}

/// One container's devices (`UUID,Type,Usedmem,Usedcores:` each); `offset` is where the entry
/// starts in the whole annotation, for the error's position. Segments without a comma are
/// skipped, as in HAMi and volcano; a device needs at least four fields.
pub(crate) fn decode_container(c: usize, entry: &str, offset: usize) -> Result<Vec<AllocDevice>> {
    let mut devices = Vec::new();
    let mut offset = offset;
    for segment in entry.split(':') {
        let pos = offset;
        offset += segment.len() + 1;
        if !segment.contains(',') {
            continue;
        }
        let f: Vec<&str> = segment.split(',').collect();
        let at = |field: &str, msg: String| {
            Error::decode(
                Codec::PodDevices,
                field,
                format!("container {c}, device {} (byte {pos})", devices.len()),
                msg,
            )
        };
        if f.len() < 4 {
            return Err(at(
                "(fields)",
                format!(
                    "expected UUID,Type,Usedmem,Usedcores, got {} field(s) in {segment:?}; \
                     do not set nodeName in the pod spec",
                    f.len()
                ),
            ));
        }
        if f[0].is_empty() {
            return Err(at("UUID", "empty device UUID".into()));
        }
        let usedmem = f[2]
            .parse::<u64>()
            .map_err(|_| at("Usedmem", format!("expected MiB as an integer, got {:?}", f[2])))?;
        let usedcores = f[3]
            .parse::<u32>()
            .map_err(|_| at("Usedcores", format!("expected an integer, got {:?}", f[3])))?;
        devices.push(AllocDevice {
            uuid: f[0].to_string(),
            vendor: f[1].to_string(),
            usedmem,
            usedcores,
        });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(uuid: &str, mem: u64, cores: u32) -> AllocDevice {
        AllocDevice {
            uuid: uuid.into(),
            vendor: "NVIDIA".into(),
            usedmem: mem,
            usedcores: cores,
        }
    }

    #[test]
    fn golden_reference_examples() {
        let cases: Vec<(&str, PodDevices)> = vec![
            (
                "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,NVIDIA,3000,30:;",
                vec![vec![dev("GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448", 3000, 30)]],
            ),
            (
                "GPU-aaa,NVIDIA,3000,50:;GPU-bbb,NVIDIA,4000,60:;",
                vec![vec![dev("GPU-aaa", 3000, 50)], vec![dev("GPU-bbb", 4000, 60)]],
            ),
            (
                "GPU-a,NVIDIA,1000,0:GPU-b,NVIDIA,1000,0:;",
                vec![vec![dev("GPU-a", 1000, 0), dev("GPU-b", 1000, 0)]],
            ),
            (";GPU-a,NVIDIA,1000,0:;", vec![vec![], vec![dev("GPU-a", 1000, 0)]]),
            (";", vec![vec![]]),
        ];
        for (text, want) in cases {
            assert_eq!(decode_pod_devices(text).unwrap(), want, "{text}");
            assert_eq!(encode_pod_devices(&want).unwrap(), text);
        }
    }

    #[test]
    fn short_device_is_an_error_that_names_the_position() {
        let err = decode_pod_devices("GPU-a,NVIDIA,1:;").unwrap_err().to_string();
        assert!(err.contains("container 0, device 0"), "{err}");
        let err = decode_pod_devices("GPU-a,NVIDIA,x,1:;").unwrap_err().to_string();
        assert!(err.contains("Usedmem"), "{err}");
    }
}
