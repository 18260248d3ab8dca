//! kube-scheduler's `ExtenderArgs` (`k8s.io/kube-scheduler/extender/v1`), read in one pass over
//! the request body. The candidates of a cluster-wide filter are thousands of node names: they
//! are copied into one buffer (no value per name), the pod and the `Nodes` list are handed back
//! as their raw JSON text. The Go types carry no JSON tags, so keys match case-insensitively;
//! the first spelling of a key wins.

use crate::error::{Codec, Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Node names in one buffer, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeNames {
    arena: String,
    spans: Vec<(u32, u32)>,
}

impl NodeNames {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.spans
            .get(i)
            .map(|&(start, end)| &self.arena[start as usize..end as usize])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| &self.arena[start as usize..end as usize])
    }

    fn push(&mut self, name: &str) {
        let start = self.arena.len() as u32;
        self.arena.push_str(name);
        self.spans.push((start, self.arena.len() as u32));
    }

    /// The names as a JSON array (for an answer that passes them through).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.iter().collect::<Vec<_>>()).expect("strings always encode")
    }
}

impl<'a> FromIterator<&'a str> for NodeNames {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut names = NodeNames::default();
        for name in iter {
            names.push(name);
        }
        names
    }
}

/// The parts of `ExtenderArgs` the extender reads. `None` where the key is absent or null.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExtenderArgs<'a> {
    /// `Pod`, as raw JSON text (any JSON value: the caller checks it is an object).
    pub pod: Option<&'a str>,
    /// `NodeNames` (`nodeCacheCapable: true`).
    pub node_names: Option<NodeNames>,
    /// `Nodes` (a NodeList), as raw JSON text.
    pub nodes: Option<&'a str>,
}

const NAMES_EXPECTED: &str = "NodeNames to be a list of strings or null";

fn err(position: String, message: impl Into<String>) -> Error {
    Error::decode(Codec::ExtenderArgs, "body", position, message)
}

/// The JSON kind a value starts with, for "must be an object, not ..." messages.
fn kind(first: u8) -> &'static str {
    match first {
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

/// Reads `ExtenderArgs` from a request body. Errors name what was wrong and where: the body is
/// not JSON, not an object, or `NodeNames` is not a list of strings.
pub fn decode_extender_args(body: &[u8]) -> Result<ExtenderArgs<'_>> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let position = |e: &serde_json::Error| format!("line {} column {}", e.line(), e.column());
    // Only what the message needs from serde's: its text, less the position we give apart.
    let message = |e: &serde_json::Error| {
        let text = e.to_string();
        let suffix = format!(" at {}", position(e));
        text.strip_suffix(&suffix).unwrap_or(&text).to_string()
    };
    if first != Some(b'{') {
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Err(e) => Err(err(position(&e), format!("the body is not JSON ({})", message(&e)))),
            Ok(_) => Err(err(
                "the top level".into(),
                format!("must be a JSON object, not {}", kind(first.unwrap_or(b'0'))),
            )),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let args = de.deserialize_map(ArgsVisitor).and_then(|args| de.end().map(|()| args));
    args.map_err(|e| {
        let text = message(&e);
        let what = if e.is_data() {
            text
        } else {
            format!("the body is not JSON ({text})")
        };
        err(position(&e), what)
    })
}

struct ArgsVisitor;

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = ExtenderArgs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtenderArgs as a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = ExtenderArgs::default();
        let (mut pod, mut names, mut nodes) = (false, false, false);
        while let Some(key) = map.next_key::<String>()? {
            let key = key.to_lowercase();
            if key == "pod" && !pod {
                pod = true;
                out.pod = non_null(map.next_value::<&'de RawValue>()?);
            } else if key == "nodenames" && !names {
                names = true;
                out.node_names = map.next_value_seed(OptionalNames)?;
            } else if key == "nodes" && !nodes {
                nodes = true;
                out.nodes = non_null(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

fn non_null(raw: &RawValue) -> Option<&str> {
    let text = raw.get();
    (text != "null").then_some(text)
}

struct OptionalNames;

impl<'de> DeserializeSeed<'de> for OptionalNames {
    type Value = Option<NodeNames>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalNames {
    type Value = Option<NodeNames>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAMES_EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(Names).map(Some)
    }
}

struct Names;

impl<'de> Visitor<'de> for Names {
    type Value = NodeNames;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAMES_EXPECTED)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let mut names = NodeNames::default();
        if let Some(n) = seq.size_hint() {
            names.spans.reserve(n);
        }
        while seq.next_element_seed(Name(&mut names))?.is_some() {}
        Ok(names)
    }
}

/// One name, appended to the buffer (borrowed or unescaped, never a separate allocation).
struct Name<'n>(&'n mut NodeNames);

impl<'de> DeserializeSeed<'de> for Name<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAMES_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<(), E> {
        self.0.push(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pod_names_and_nodes_with_any_key_case() {
        let body = br#"{"pod":{"metadata":{"name":"p"}},"NODENAMES":["a","b\u0063"],"Nodes":null,"x":[1]}"#;
        let args = decode_extender_args(body).unwrap();
        assert_eq!(args.pod, Some(r#"{"metadata":{"name":"p"}}"#));
        let names = args.node_names.unwrap();
        assert_eq!(names.iter().collect::<Vec<_>>(), ["a", "bc"]);
        assert_eq!(names.to_json(), r#"["a","bc"]"#);
        assert_eq!(args.nodes, None);
    }

    #[test]
    fn the_first_spelling_of_a_key_wins() {
        let args = decode_extender_args(br#"{"Pod":1,"pod":2,"NodeNames":null,"nodenames":["x"]}"#).unwrap();
        assert_eq!(args.pod, Some("1"));
        assert_eq!(args.node_names, None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"{", "the body is not JSON"),
            (b"", "the body is not JSON"),
            (b"[]", "must be a JSON object, not an array"),
            (b" 12 ", "must be a JSON object, not a number"),
            (br#"{"NodeNames":"a"}"#, "NodeNames to be a list of strings or null"),
            (br#"{"NodeNames":["a",1]}"#, "NodeNames to be a list of strings or null"),
        ];
        for (body, want) in cases {
            let e = decode_extender_args(body).unwrap_err().to_string();
            assert!(e.starts_with("ExtenderArgs: body at "), "{e}");
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(body));
        }
        let e = decode_extender_args(br#"{"Pod":{}} x"#).unwrap_err().to_string();
        assert!(e.contains("not JSON (trailing characters)"), "{e}");
    }
}
