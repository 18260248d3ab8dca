//! One page of the API server's list of placed pods, read for the state load without building
//! the pods: a page is ~2 MB of JSON for 500 pods, of which the load needs a few fields each
//! (`metadata.uid/namespace/name`, two annotations, `spec.nodeName`, how many init containers,
//! `status.phase`). Everything else is skipped while parsing.
//!
//! Each pod lands in one class, with exactly the rules of the extender's per-pod path:
//!
//! - no `metadata.uid` string: not a pod we can track, skipped (and not listed);
//! - `status.phase` Succeeded or Failed: finished, its devices are released;
//! - the common placed pod (not reserved in memory, `hami.io/vgpu-node` set, bound, no init
//!   containers, exactly one vendor's allocated annotation): decoded here into a [`PodAlloc`],
//!   or an [`InvalidPod`] when its annotation does not decode;
//! - every other pod, including any whose fields have an unexpected shape: its JSON text, for
//!   the per-pod path, which owns the uncommon rules (init containers, several vendors,
//!   unbound reservations, objects written by hand).
//!
//! A page that is not a JSON list is an error naming the field and position; nothing of it is
//! used. One pod's bad field never fails the page.

use crate::codec::decode_pod_devices;
use crate::error::{Codec, Error, Result};
use crate::state::PodAlloc;
use crate::vendor::Vendors;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// The annotation naming the node a pod was placed on; the list is selected on its label.
pub const VGPU_NODE: &str = "hami.io/vgpu-node";

/// What one page says, sorted by what the load does with each pod.
#[derive(Debug, Default)]
pub struct PodPage<'a> {
    /// `metadata.continue`: the token of the next page; `None` (or empty) on the last one.
    pub continue_token: Option<String>,
    /// `metadata.resourceVersion` of the list, empty when absent.
    pub resource_version: String,
    /// Common placed pods, decoded: bound allocations for `Cluster::upsert_pods`.
    pub placed: Vec<PodAlloc>,
    /// UIDs of finished pods (Succeeded, Failed): they hold no devices any more.
    pub finished: Vec<String>,
    /// Common placed pods whose allocated annotation did not decode.
    pub invalid: Vec<InvalidPod>,
    /// Every other pod, as its JSON text (a slice of the page), for the per-pod path.
    pub others: Vec<&'a str>,
}

/// A pod whose allocation cannot be counted until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The annotation's decode error (names the container and device).
    pub error: Error,
}

/// Reads one page of a pod list (`{"metadata": {...}, "items": [...]}`, as bytes from the API).
/// `reserved` says which UIDs hold a reservation in memory that is not written yet: those pods
/// go to the per-pod path, which decides whether the API's copy is newer.
pub fn decode_pod_page<'a>(page: &'a [u8], vendors: &Vendors, reserved: &dyn Fn(&str) -> bool) -> Result<PodPage<'a>> {
    let doc = parse_page(page)?;
    let keys: Vec<&str> = vendors.iter().map(|v| v.spec().allocated_annotation.as_str()).collect();
    let mut out = PodPage {
        continue_token: doc.continue_token.filter(|t| !t.is_empty()).map(Cow::into_owned),
        resource_version: doc.resource_version.map(Cow::into_owned).unwrap_or_default(),
        ..PodPage::default()
    };
    for item in doc.items {
        match classify(item, &keys, reserved) {
            Class::Skip => {}
            Class::Finished(uid) => out.finished.push(uid),
            Class::Placed(pod) => out.placed.push(pod),
            Class::Invalid(pod) => out.invalid.push(pod),
            Class::Other => out.others.push(item.get()),
        }
    }
    Ok(out)
}

enum Class {
    Skip,
    Finished(String),
    Placed(PodAlloc),
    Invalid(InvalidPod),
    Other,
}

/// One item's class. An item whose fields do not have the shapes the API gives them (a
/// metadata that is not an object, a duplicate key...) is left to the per-pod path, which reads
/// any shape.
fn classify(item: &RawValue, keys: &[&str], reserved: &dyn Fn(&str) -> bool) -> Class {
    let Ok(pod) = serde_json::from_str::<PodView<'_>>(item.get()) else {
        return Class::Other;
    };
    let Some(meta) = pod.metadata else { return Class::Skip };
    let Some(uid) = meta.uid else { return Class::Skip };
    let phase = pod.status.and_then(|s| s.phase);
    if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Class::Finished(uid.0.into_owned());
    }
    if reserved(&uid) {
        return Class::Other;
    }
    let (Some(ann), Some(spec), Some(name)) = (meta.annotations, pod.spec, meta.name) else {
        return Class::Other;
    };
    let bound = spec.node_name.is_some_and(|n| !n.is_empty());
    if ann.odd || !bound || spec.init_containers.is_some_and(|n| n.0 > 0) {
        return Class::Other;
    }
    let Some(node) = ann.get(VGPU_NODE).filter(|n| !n.is_empty()) else {
        return Class::Other;
    };
    let mut texts = keys.iter().filter_map(|k| ann.get(k)).filter(|t| !t.is_empty());
    let (Some(text), None) = (texts.next(), texts.next()) else {
        return Class::Other;
    };
    let namespace = meta
        .namespace
        .filter(|n| !n.is_empty())
        .map_or(Cow::Borrowed("default"), |n| n.0);
    match decode_pod_devices(text) {
        Ok(containers) => Class::Placed(PodAlloc {
            uid: uid.0.into_owned(),
            namespace: namespace.into_owned(),
            name: name.0.into_owned(),
            node: node.to_string(),
            containers,
            init_count: 0,
            init_done: false,
            reserved_at: None,
        }),
        Err(error) => Class::Invalid(InvalidPod {
            uid: uid.0.into_owned(),
            namespace: namespace.into_owned(),
            name: name.0.into_owned(),
            error,
        }),
    }
}

// -- the page --------------------------------------------------------------------------------

struct PageDoc<'a> {
    continue_token: Option<Cow<'a, str>>,
    resource_version: Option<Cow<'a, str>>,
    items: Vec<&'a RawValue>,
}

/// Parses the page's envelope, keeping each item as raw text. The field being read when the
/// parse failed is named in the error.
fn parse_page(page: &[u8]) -> Result<PageDoc<'_>> {
    let field = Cell::new("(page)");
    let mut de = serde_json::Deserializer::from_slice(page);
    let doc = (&mut de)
        .deserialize_map(PageVisitor { field: &field })
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|e| json_error(field.get(), &e))?;
    Ok(doc)
}

fn json_error(field: &str, e: &serde_json::Error) -> Error {
    let position = format!("line {} column {}", e.line(), e.column());
    let text = e.to_string();
    let message = text.strip_suffix(&format!(" at {position}")).unwrap_or(&text);
    Error::decode(Codec::PodList, field, position, message)
}

struct PageVisitor<'f> {
    field: &'f Cell<&'static str>,
}

impl<'de> Visitor<'de> for PageVisitor<'_> {
    type Value = PageDoc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a list)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<PageDoc<'de>, A::Error> {
        let mut doc = PageDoc {
            continue_token: None,
            resource_version: None,
            items: Vec::new(),
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "metadata" => {
                    self.field.set("metadata");
                    if let Some(meta) = map.next_value::<Option<ListMeta<'de>>>()? {
                        doc.continue_token = meta.continue_token.map(|s| s.0);
                        doc.resource_version = meta.resource_version.map(|s| s.0);
                    }
                }
                "items" => {
                    self.field.set("items");
                    doc.items = map.next_value::<Option<Vec<&'de RawValue>>>()?.unwrap_or_default();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.field.set("(page)");
        }
        Ok(doc)
    }
}

#[derive(Deserialize)]
struct ListMeta<'a> {
    #[serde(borrow, rename = "continue")]
    continue_token: Option<Str<'a>>,
    #[serde(borrow, rename = "resourceVersion")]
    resource_version: Option<Str<'a>>,
}

// -- one pod ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PodView<'a> {
    #[serde(borrow)]
    metadata: Option<MetaView<'a>>,
    #[serde(borrow)]
    spec: Option<SpecView<'a>>,
    #[serde(borrow)]
    status: Option<StatusView<'a>>,
}

#[derive(Deserialize)]
struct MetaView<'a> {
    #[serde(borrow)]
    uid: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    annotations: Option<Annotations<'a>>,
}

#[derive(Deserialize)]
struct SpecView<'a> {
    #[serde(borrow, rename = "nodeName")]
    node_name: Option<Str<'a>>,
    #[serde(rename = "initContainers")]
    init_containers: Option<Count>,
}

#[derive(Deserialize)]
struct StatusView<'a> {
    #[serde(borrow)]
    phase: Option<Str<'a>>,
}

/// A string borrowed from the page when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The length of an array, its elements skipped.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A pod's annotations with string values (the later of duplicate keys wins, as in the
/// per-pod path); `odd` when any value is not a string, which only the per-pod path reads.
struct Annotations<'a> {
    entries: Vec<(Str<'a>, Str<'a>)>,
    odd: bool,
}

impl Annotations<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| **k == *key).map(|(_, v)| &**v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Annotations<'de>, A::Error> {
                let mut out = Annotations {
                    entries: Vec::with_capacity(map.size_hint().unwrap_or(8)),
                    odd: false,
                };
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match map.next_value::<StrOrOther<'de>>()?.0 {
                        Some(value) => out.entries.push((key, value)),
                        None => out.odd = true,
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// A string, or `None` for any other JSON value (skipped).
struct StrOrOther<'a>(Option<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for StrOrOther<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrOther<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(Some(Str(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(Some(Str(Cow::Owned(v.to_string())))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(None))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<StrOrOther<'de>, E> {
                Ok(StrOrOther(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<StrOrOther<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrOrOther(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<StrOrOther<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrOrOther(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AllocDevice;

    const ALLOCATED: &str = "hami.io/vgpu-devices-allocated";
    const MLU_ALLOCATED: &str = "hami.io/cambricon-mlu-devices-allocated";

    /// A pod shaped like what the API server returns (managed fields, status...).
    fn pod(uid: &str, phase: &str, extra_spec: &str, annotations: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"p-{uid}","namespace":"ns","uid":"{uid}","resourceVersion":"7",
                "labels":{{"hami.io/vgpu-node":"n1"}},"annotations":{{{annotations}}},
                "managedFields":[{{"manager":"hami","fieldsV1":{{"f:metadata":{{"f:annotations":{{}}}}}}}}]}},
              "spec":{{"containers":[{{"name":"c","resources":{{"limits":{{"nvidia.com/gpu":"1"}}}}}}]{extra_spec}}},
              "status":{{"phase":"{phase}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
        )
    }

    fn placed(uid: &str, gpu: &str) -> String {
        pod(
            uid,
            "Running",
            r#","nodeName":"n1""#,
            &format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"{gpu},NVIDIA,2000,10:;""#),
        )
    }

    fn page(meta: &str, items: &[String]) -> String {
        format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{meta},"items":[{}]}}"#,
            items.join(",")
        )
    }

    fn decode<'a>(text: &'a str, reserved: &[&str]) -> PodPage<'a> {
        decode_pod_page(text.as_bytes(), &Vendors::default(), &|uid| reserved.contains(&uid)).unwrap()
    }

    fn uids_of_others(p: &PodPage<'_>) -> Vec<String> {
        p.others
            .iter()
            .map(|o| {
                let v: serde_json::Value = serde_json::from_str(o).unwrap();
                v["metadata"]["uid"].as_str().unwrap_or("?").to_string()
            })
            .collect()
    }

    #[test]
    fn golden_page() {
        let text = page(
            r#"{"resourceVersion":"100","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"}"#,
            &[placed("u1", "GPU-a"), placed("u2", "GPU-b")],
        );
        let p = decode(&text, &[]);
        assert_eq!(p.continue_token.as_deref(), Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"));
        assert_eq!(p.resource_version, "100");
        assert_eq!(
            p.placed[0],
            PodAlloc {
                uid: "u1".into(),
                namespace: "ns".into(),
                name: "p-u1".into(),
                node: "n1".into(),
                containers: vec![vec![AllocDevice {
                    uuid: "GPU-a".into(),
                    vendor: "NVIDIA".into(),
                    usedmem: 2000,
                    usedcores: 10,
                }]],
                init_count: 0,
                init_done: false,
                reserved_at: None,
            }
        );
        assert_eq!(p.placed.len(), 2);
        assert!(p.finished.is_empty() && p.invalid.is_empty() && p.others.is_empty());
    }

    #[test]
    fn the_last_page_has_no_continue_token() {
        for meta in [r#"{"resourceVersion":"5","continue":""}"#, r#"{"resourceVersion":"5"}"#] {
            let text = page(meta, &[]);
            let p = decode(&text, &[]);
            assert_eq!((p.continue_token, p.resource_version.as_str()), (None, "5"));
        }
        let p = decode(r#"{"items":null}"#, &[]);
        assert_eq!((p.continue_token, p.resource_version.as_str()), (None, ""));
    }

    #[test]
    fn finished_pods_release_whatever_else_they_carry() {
        let odd = pod("u3", "Failed", r#","initContainers":[{}]"#, r#""hami.io/vgpu-node":5"#);
        let text = page("{}", &[placed("u1", "g").replace("Running", "Succeeded"), odd]);
        let p = decode(&text, &["u1"]);
        assert_eq!(p.finished, ["u1", "u3"]);
        assert!(p.placed.is_empty() && p.others.is_empty());
    }

    #[test]
    fn uncommon_pods_go_to_the_per_pod_path_as_their_json() {
        let both =
            format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,1,1:;","{MLU_ALLOCATED}":"m,MLU,1,1:;""#);
        let one = format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,1,1:;""#);
        let items = [
            pod(
                "init",
                "Running",
                r#","nodeName":"n1","initContainers":[{"name":"i"}]"#,
                &one,
            ),
            pod("unbound", "Pending", "", &one),
            pod("two-vendors", "Running", r#","nodeName":"n1""#, &both),
            pod(
                "no-node",
                "Running",
                r#","nodeName":"n1""#,
                &format!(r#""{ALLOCATED}":"g,NVIDIA,1,1:;""#),
            ),
            pod(
                "no-allocation",
                "Running",
                r#","nodeName":"n1""#,
                r#""hami.io/vgpu-node":"n1""#,
            ),
            pod(
                "odd-value",
                "Running",
                r#","nodeName":"n1""#,
                &format!(r#"{one},"x":1"#),
            ),
            placed("reserved", "g"),
            r#"{"metadata":{"uid":"bad-meta","name":7},"spec":{}}"#.to_string(),
            r#"{"metadata":{"uid":"dup","uid":"dup"}}"#.to_string(),
        ];
        let text = page("{}", &items);
        let p = decode(&text, &["reserved"]);
        assert!(p.placed.is_empty() && p.finished.is_empty() && p.invalid.is_empty());
        assert_eq!(
            uids_of_others(&p),
            [
                "init",
                "unbound",
                "two-vendors",
                "no-node",
                "no-allocation",
                "odd-value",
                "reserved",
                "bad-meta",
                "dup"
            ]
        );
        assert_eq!(p.others[0], items[0], "the pod's own text, untouched");
    }

    #[test]
    fn empty_init_containers_and_empty_other_vendors_are_common() {
        let ann = format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,1,1:;","{MLU_ALLOCATED}":"""#);
        let text = page(
            "{}",
            &[pod("u1", "Running", r#","nodeName":"n1","initContainers":[]"#, &ann)],
        );
        assert_eq!(decode(&text, &[]).placed.len(), 1);
    }

    #[test]
    fn pods_without_a_uid_are_skipped() {
        let items = [
            r#"{"metadata":{"name":"x"}}"#.to_string(),
            r#"{"spec":{}}"#.to_string(),
            r#"{"metadata":null}"#.to_string(),
        ];
        let text = page("{}", &items);
        let p = decode(&text, &[]);
        assert!(p.placed.is_empty() && p.finished.is_empty() && p.others.is_empty());
    }

    #[test]
    fn items_of_another_shape_are_left_to_the_per_pod_path() {
        let items = [
            "5".to_string(),
            "null".into(),
            r#"{"metadata":"x"}"#.into(),
            "[]".into(),
        ];
        let text = page("{}", &items);
        assert_eq!(decode(&text, &[]).others, ["5", "null", r#"{"metadata":"x"}"#, "[]"]);
    }

    #[test]
    fn escapes_namespace_default_and_the_last_duplicate_annotation() {
        let item = format!(
            r#"{{"metadata":{{"uid":"u\u0031","name":"p\/1","annotations":{{"hami.io/vgpu-node":"old",
                "hami.io/vgpu-node":"n\u00e9","{ALLOCATED}":"g,NVIDIA,5,1:;"}}}},"spec":{{"nodeName":"x"}}}}"#
        );
        let text = page("{}", &[item]);
        let p = decode(&text, &[]);
        let pod = &p.placed[0];
        assert_eq!(
            (
                pod.uid.as_str(),
                pod.namespace.as_str(),
                pod.name.as_str(),
                pod.node.as_str()
            ),
            ("u1", "default", "p/1", "né")
        );
    }

    #[test]
    fn a_bad_allocation_is_reported_for_that_pod_only() {
        let bad = pod(
            "bad",
            "Running",
            r#","nodeName":"n1""#,
            &format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,abc,10:;""#),
        );
        let text = page("{}", &[bad, placed("ok", "g")]);
        let p = decode(&text, &[]);
        assert_eq!(p.placed.len(), 1);
        let invalid = &p.invalid[0];
        assert_eq!(
            (invalid.uid.as_str(), invalid.namespace.as_str(), invalid.name.as_str()),
            ("bad", "ns", "p-bad")
        );
        assert!(matches!(&invalid.error, Error::Decode { codec: Codec::PodDevices, field, .. } if field == "Usedmem"));
    }

    #[test]
    fn a_malformed_page_is_an_error_naming_the_field() {
        let cases = [
            ("", "(page)"),
            ("garbage", "(page)"),
            ("[]", "(page)"),
            (r#"{"items":5}"#, "items"),
            (r#"{"items":[{"a":1},"#, "items"),
            (r#"{"metadata":{"continue":7}}"#, "metadata"),
            (r#"{"metadata":[]}"#, "metadata"),
            (r#"{"items":[]} x"#, "(page)"),
        ];
        for (text, want) in cases {
            match decode_pod_page(text.as_bytes(), &Vendors::default(), &|_| false) {
                Err(Error::Decode {
                    codec: Codec::PodList,
                    field,
                    position,
                    ..
                }) => {
                    assert_eq!(field, want, "{text}");
                    assert!(position.starts_with("line 1 column"), "{position}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = decode_pod_page(b"{\"items\":[\xff]}", &Vendors::default(), &|_| false).unwrap_err();
        assert!(
            e.to_string().starts_with("pod list page: items at line 1 column"),
            "{e}"
        );
    }
}
