//! The Ascend runtime annotation `huawei.com/<CW>` (reference §1.5): a JSON array with one
//! object per allocated NPU, across all containers in order, as Go's `json.Marshal` writes HAMi's
//! `RuntimeInfo` (`UUID`, `temp`, `memory`, `core`, each omitted when empty or 0).

use super::gojson::write_string;
use crate::error::{Codec, Error, Result};
use serde_json::Value;
use std::fmt::Write;

/// One NPU of the runtime annotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeInfo {
    pub uuid: String,
    /// The vNPU template (template mode); empty for a whole NPU and in hami-core mode.
    pub temp: String,
    /// MiB.
    pub memory: u64,
    /// Percent of the NPU's cores (hami-core mode).
    pub core: u32,
}

pub fn encode_ascend_runtime(items: &[RuntimeInfo]) -> String {
    let mut out = String::with_capacity(items.len() * 64 + 2);
    out.push('[');
    for (i, r) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        let mut sep = "";
        if !r.uuid.is_empty() {
            out.push_str("\"UUID\":");
            write_string(&mut out, &r.uuid);
            sep = ",";
        }
        if !r.temp.is_empty() {
            out.push_str(sep);
            out.push_str("\"temp\":");
            write_string(&mut out, &r.temp);
            sep = ",";
        }
        if r.memory != 0 {
            let _ = write!(out, "{sep}\"memory\":{}", r.memory);
            sep = ",";
        }
        if r.core != 0 {
            let _ = write!(out, "{sep}\"core\":{}", r.core);
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// Decodes the annotation; every entry needs a `UUID` (the plugin maps NPUs by it).
pub fn decode_ascend_runtime(text: &str) -> Result<Vec<RuntimeInfo>> {
    let err = |field: &str, position: String, msg: String| Error::decode(Codec::AscendRuntime, field, position, msg);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(
            "JSON",
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let Value::Array(items) = value else {
        return Err(err("(top level)", "offset 0".into(), "expected a JSON array".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = || format!("entry [{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| err("(entry)", at(), "expected an object".into()))?;
            let text = |k: &str| -> Result<String> {
                match obj.get(k) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(err(k, at(), "expected a string".into())),
                }
            };
            let num = |k: &str, max: u64| -> Result<u64> {
                match obj.get(k) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => v
                        .as_u64()
                        .filter(|n| *n <= max)
                        .ok_or_else(|| err(k, at(), format!("expected an integer from 0 to {max}, got {v}"))),
                }
            };
            let uuid = text("UUID")?;
            if uuid.is_empty() {
                return Err(err("UUID", at(), "missing or empty NPU id".into()));
            }
            Ok(RuntimeInfo {
                uuid,
                temp: text("temp")?,
                memory: num("memory", i32::MAX as u64)?,
                core: num("core", u64::from(u32::MAX))? as u32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples_round_trip_byte_for_byte() {
        for text in [
            r#"[{"UUID":"vdie-3","temp":"vir05_1c_16g","memory":16384}]"#,
            r#"[{"UUID":"vdie-3","memory":28672,"core":40}]"#,
            r#"[{"UUID":"a","memory":65536},{"UUID":"b","memory":65536}]"#,
            "[]",
        ] {
            let items = decode_ascend_runtime(text).unwrap();
            assert_eq!(encode_ascend_runtime(&items), text);
        }
    }

    #[test]
    fn errors_name_the_entry() {
        let e = decode_ascend_runtime(r#"[{"UUID":"a"},{"temp":"x"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry [1]") && e.contains("UUID"), "{e}");
        let e = decode_ascend_runtime("{").unwrap_err().to_string();
        assert!(e.contains("huawei.com/<CW>"), "{e}");
    }
}
