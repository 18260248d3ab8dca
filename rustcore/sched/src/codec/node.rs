//! The node register annotation (`hami.io/node-nvidia-register`): a JSON array of `DeviceInfo`
//! with Go's `omitempty` on every key, and the legacy colon format some vendors still use.

use super::gojson::{write_string, write_value};
use super::parse_go_bool;
use crate::error::{Codec, Error, Result};
use crate::model::{Device, DeviceMode};
use serde_json::Value;
use std::fmt::Write;

/// Decodes the JSON register annotation. Missing keys are zero or false, as in Go; `vendor` is
/// the vendor key of the annotation the text came from.
pub fn decode_node_devices(text: &str, vendor: &str) -> Result<Vec<Device>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::decode(
            Codec::NodeRegister,
            "JSON",
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => {
            return Err(Error::decode(
                Codec::NodeRegister,
                "(top level)",
                "offset 0",
                format!("expected a JSON array of devices, got {}", kind(&other)),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| decode_device(i, item, vendor))
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_device(i: usize, item: &Value, vendor: &str) -> Result<Device> {
    let obj = item.as_object().ok_or_else(|| {
        Error::decode(
            Codec::NodeRegister,
            "(device)",
            format!("device [{i}]"),
            format!("expected an object, got {}", kind(item)),
        )
    })?;
    let field_err = |field: &str, msg: String| Error::decode(Codec::NodeRegister, field, format!("device [{i}]"), msg);
    let string = |field: &str| -> Result<String> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(field_err(field, format!("expected a string, got {}", kind(other)))),
        }
    };
    let uint = |field: &str, max: u64| -> Result<u64> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= max => Ok(v),
                _ => Err(field_err(
                    field,
                    format!("expected an integer from 0 to {max}, got {n}"),
                )),
            },
            Some(other) => Err(field_err(field, format!("expected an integer, got {}", kind(other)))),
        }
    };
    let numa = match obj.get("numa") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| field_err("numa", format!("expected an integer, got {n}")))?,
        Some(other) => return Err(field_err("numa", format!("expected an integer, got {}", kind(other)))),
    };
    let health = match obj.get("health") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(field_err("health", format!("expected a boolean, got {}", kind(other)))),
    };
    let mode_text = string("mode")?;
    let mode = DeviceMode::parse(&mode_text).ok_or_else(|| {
        field_err(
            "mode",
            format!("unknown mode {mode_text:?}: expected hami-core, mig or mps"),
        )
    })?;
    let id = string("id")?;
    if id.is_empty() {
        return Err(field_err("id", "missing or empty device id".into()));
    }
    let keep = |field: &str| obj.get(field).filter(|v| !v.is_null()).cloned();
    Ok(Device {
        id,
        index: uint("index", u64::from(u32::MAX))? as u32,
        count: uint("count", i32::MAX as u64)? as u32,
        devmem: uint("devmem", i32::MAX as u64)?,
        devcore: uint("devcore", i32::MAX as u64)? as u32,
        type_: string("type")?,
        numa,
        mode,
        health,
        vendor: vendor.to_string(),
        device_vendor: string("devicevendor")?,
        mig_profiles: keep("migProfiles"),
        custominfo: keep("custominfo"),
    })
}

/// Encodes as HAMi's device plugin does: keys in `DeviceInfo` field order, zero values omitted.
pub fn encode_node_devices(devices: &[Device]) -> String {
    encode_node_devices_as(devices, true)
}

/// Encodes with or without the `mode` key: HAMi's NVIDIA plugin always writes it; the Ascend
/// plugin leaves `mode` empty, so Go's `omitempty` drops it.
pub fn encode_node_devices_as(devices: &[Device], with_mode: bool) -> String {
    let mut out = String::with_capacity(devices.len() * 160);
    out.push('[');
    for (i, d) in devices.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(k);
            out.push_str("\":");
        };
        out.push('{');
        if !d.id.is_empty() {
            key(&mut out, "id");
            write_string(&mut out, &d.id);
        }
        for (k, v) in [
            ("index", u64::from(d.index)),
            ("count", u64::from(d.count)),
            ("devmem", d.devmem),
            ("devcore", u64::from(d.devcore)),
        ] {
            if v != 0 {
                key(&mut out, k);
                let _ = write!(out, "{v}");
            }
        }
        if !d.type_.is_empty() {
            key(&mut out, "type");
            write_string(&mut out, &d.type_);
        }
        if d.numa != 0 {
            key(&mut out, "numa");
            let _ = write!(out, "{}", d.numa);
        }
        if with_mode {
            key(&mut out, "mode");
            write_string(&mut out, d.mode.as_str());
        }
        if let Some(p) = d.mig_profiles.as_ref().filter(|p| !is_empty_value(p)) {
            key(&mut out, "migProfiles");
            write_value(&mut out, p);
        }
        if d.health {
            key(&mut out, "health");
            out.push_str("true");
        }
        if !d.device_vendor.is_empty() {
            key(&mut out, "devicevendor");
            write_string(&mut out, &d.device_vendor);
        }
        if let Some(c) = d.custominfo.as_ref().filter(|c| !is_empty_value(c)) {
            key(&mut out, "custominfo");
            write_value(&mut out, c);
        }
        out.push('}');
    }
    out.push(']');
    out
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Decodes the legacy colon format: `id,count,devmem,devcore,type,numa,health[,index,mode]:`
/// per device, each terminated by `:`. Seven fields default the index to 0 and the mode to
/// hami-core; any other field count is an error.
pub fn decode_node_devices_legacy(text: &str, vendor: &str) -> Result<Vec<Device>> {
    let mut devices = Vec::new();
    let mut offset = 0usize;
    for segment in text.split(':') {
        let pos = offset;
        offset += segment.len() + 1;
        if segment.is_empty() {
            continue;
        }
        let at = |field: &str, msg: String| {
            Error::decode(
                Codec::NodeRegisterLegacy,
                field,
                format!("device [{}] (byte {pos})", devices.len()),
                msg,
            )
        };
        let f: Vec<&str> = segment.split(',').collect();
        if f.len() != 7 && f.len() != 9 {
            return Err(at(
                "(fields)",
                format!(
                    "expected 7 or 9 comma-separated fields (id,count,devmem,devcore,type,numa,health[,index,mode]), got {}",
                    f.len()
                ),
            ));
        }
        let num = |idx: usize, name: &str| -> Result<u64> {
            f[idx]
                .parse::<u64>()
                .ok()
                .filter(|v| *v <= i32::MAX as u64)
                .ok_or_else(|| at(name, format!("expected a non-negative integer, got {:?}", f[idx])))
        };
        let numa = f[5]
            .parse::<i32>()
            .map_err(|_| at("numa", format!("expected an integer, got {:?}", f[5])))?;
        let health =
            parse_go_bool(f[6]).ok_or_else(|| at("health", format!("expected true or false, got {:?}", f[6])))?;
        let (index, mode) = if f.len() == 9 {
            let mode = DeviceMode::parse(f[8]).ok_or_else(|| {
                at(
                    "mode",
                    format!("unknown mode {:?}: expected hami-core, mig or mps", f[8]),
                )
            })?;
            (num(7, "index")? as u32, mode)
        } else {
            (0, DeviceMode::HamiCore)
        };
        if f[0].is_empty() {
            return Err(at("id", "missing or empty device id".into()));
        }
        devices.push(Device {
            id: f[0].to_string(),
            index,
            count: num(1, "count")? as u32,
            devmem: num(2, "devmem")?,
            devcore: num(3, "devcore")? as u32,
            type_: f[4].to_string(),
            numa,
            mode,
            health,
            vendor: vendor.to_string(),
            device_vendor: String::new(),
            mig_profiles: None,
            custominfo: None,
        });
    }
    Ok(devices)
}

/// Encodes the legacy colon format with all nine fields.
pub fn encode_node_devices_legacy(devices: &[Device]) -> String {
    let mut out = String::new();
    for d in devices {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}:",
            d.id,
            d.count,
            d.devmem,
            d.devcore,
            d.type_,
            d.numa,
            d.health,
            d.index,
            d.mode.as_str()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V100: &str = r#"[{"id":"GPU-0055","count":10,"devmem":32768,"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},{"id":"GPU-0fc3","index":1,"count":10,"devmem":32768,"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]"#;

    #[test]
    fn golden_reference_example_round_trips_byte_for_byte() {
        let devices = decode_node_devices(V100, "NVIDIA").unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].index, 0);
        assert_eq!(devices[1].index, 1);
        assert_eq!(devices[0].numa, 0);
        assert!(devices[0].health);
        assert_eq!(encode_node_devices(&devices), V100);
    }

    #[test]
    fn ascend_register_example_round_trips_without_mode() {
        let text = r#"[{"id":"vdie-0","count":4,"devmem":65536,"devcore":20,"type":"Ascend910B3","health":true,"custominfo":{"NetworkID":0}},{"id":"vdie-1","index":1,"count":4,"devmem":65536,"devcore":20,"type":"Ascend910B3","health":true,"custominfo":{"NetworkID":0}}]"#;
        let d = decode_node_devices(text, "Ascend910B3").unwrap();
        assert_eq!(d[1].custominfo.as_ref().unwrap()["NetworkID"], 0);
        assert_eq!(encode_node_devices_as(&d, false), text);
    }

    #[test]
    fn missing_keys_decode_as_zero_and_false() {
        let d = decode_node_devices(r#"[{"id":"GPU-x"}]"#, "NVIDIA").unwrap();
        assert_eq!(d[0].count, 0);
        assert!(!d[0].health);
        assert_eq!(d[0].mode, DeviceMode::HamiCore);
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let err = decode_node_devices(r#"[{"id":"a"},{"id":"b","devmem":-3}]"#, "NVIDIA")
            .unwrap_err()
            .to_string();
        assert!(err.contains("devmem") && err.contains("device [1]"), "{err}");
        let err = decode_node_devices("[{", "NVIDIA").unwrap_err().to_string();
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn legacy_example_round_trips() {
        let text = "test-0,1,1024,100,DCU,0,true,0,hami-core:";
        let d = decode_node_devices_legacy(text, "DCU").unwrap();
        assert_eq!(d[0].devmem, 1024);
        assert_eq!(encode_node_devices_legacy(&d), text);
        let seven = decode_node_devices_legacy("a,2,10,100,DCU,1,false:", "DCU").unwrap();
        assert_eq!(seven[0].numa, 1);
        assert!(!seven[0].health);
        let err = decode_node_devices_legacy("a,2,10:", "DCU").unwrap_err().to_string();
        assert!(err.contains("7 or 9"), "{err}");
    }
}
