//! The NVIDIA pair-score annotation (`hami.io/node-nvidia-score`):
//! `[{"uuid":"GPU-a","score":{"GPU-b":200,"GPU-c":20}},...]`.

use super::gojson::write_string;
use crate::error::{Codec, Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Per device, in annotation order: its UUID and its score with each other device.
pub type PairScores = Vec<(String, BTreeMap<String, i64>)>;

pub fn decode_pair_scores(text: &str) -> Result<PairScores> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::decode(
            Codec::PairScores,
            "JSON",
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(Error::decode(
                Codec::PairScores,
                "(top level)",
                "offset 0",
                "expected a JSON array of {\"uuid\":..., \"score\":{...}}",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str, msg: &str| Error::decode(Codec::PairScores, field, format!("entry [{i}]"), msg);
        let uuid = item
            .get("uuid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| at("uuid", "expected a non-empty string"))?;
        let mut scores = BTreeMap::new();
        match item.get("score") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (other, v) in map {
                    let s = v
                        .as_i64()
                        .ok_or_else(|| at("score", &format!("score for {other:?} must be an integer")))?;
                    scores.insert(other.clone(), s);
                }
            }
            Some(_) => return Err(at("score", "expected an object of UUID to integer")),
        }
        out.push((uuid.to_string(), scores));
    }
    Ok(out)
}

pub fn encode_pair_scores(scores: &PairScores) -> String {
    let mut out = String::from("[");
    for (i, (uuid, map)) in scores.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"uuid\":");
        write_string(&mut out, uuid);
        out.push_str(",\"score\":{");
        for (j, (other, s)) in map.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_string(&mut out, other);
            let _ = write!(out, ":{s}");
        }
        out.push_str("}}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_reference_example() {
        let text = r#"[{"uuid":"GPU-a","score":{"GPU-b":200,"GPU-c":20}}]"#;
        let s = decode_pair_scores(text).unwrap();
        assert_eq!(s[0].1["GPU-b"], 200);
        assert_eq!(encode_pair_scores(&s), text);
    }
}
