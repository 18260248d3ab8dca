//! One page of the API server's list of placed pods, read for the state load without building
//! the pods: a page is ~2 MB of JSON for 500 pods, of which the load needs a few fields each
//! (`metadata.uid/namespace/name`, two annotations, `spec.nodeName`, how many init containers,
//! `status.phase`). Everything else is skipped while parsing.
//!
//! Each pod lands in one class, with exactly the rules of the extender's per-pod path:
//!
//! - no `metadata.uid` string: not a pod we can track, skipped (and not listed);
//! - `status.phase` Succeeded or Failed: finished, its devices are released;
//! - the common placed pod (not reserved in memory, `hami.io/vgpu-node` set, bound, not
//!   `bind-phase=allocating`, no init containers, exactly one vendor's allocated annotation):
//!   decoded here into a [`PodAlloc`], or an [`InvalidPod`] when its annotation does not decode;
//! - every other pod, including any whose fields have an unexpected shape: its JSON text, for
//!   the per-pod path, which owns the uncommon rules (init containers, several vendors,
//!   unbound reservations, pods whose devices are being allocated, objects written by hand).
//!
//! A page that is not a JSON list is an error naming the field and position; nothing of it is
//! used. One pod's bad field never fails the page.

use crate::codec::decode_pod_devices;
use crate::error::{Codec, Error, Result};
use crate::mig::{decode_mig_allocations, MIG_ALLOCATIONS};
use crate::state::PodAlloc;
use crate::vendor::Vendors;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// The annotation naming the node a pod was placed on; the list is selected on its label.
pub const VGPU_NODE: &str = "hami.io/vgpu-node";
/// HAMi's bind phase, and its value while the device plugin has not allocated the pod yet.
pub const BIND_PHASE: &str = "hami.io/bind-phase";
pub const PHASE_ALLOCATING: &str = "allocating";

/// What one page says, sorted by what the load does with each pod.
#[derive(Debug, Default)]
pub struct PodPage<'a> {
    /// `metadata.continue`: the token of the next page; `None` on the last one (an empty
    /// token reads as none, as in the per-pod path).
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
///
/// One pass classifies every pod as it is parsed; a second pass, only for a page that has
/// pods for the per-pod path, picks their text out.
pub fn decode_pod_page<'a>(page: &'a [u8], vendors: &Vendors, reserved: &dyn Fn(&str) -> bool) -> Result<PodPage<'a>> {
    let keys: Vec<&str> = vendors.iter().map(|v| v.spec().allocated_annotation.as_str()).collect();
    let mut out = PodPage::default();
    let mut others = Vec::new();
    let meta = parse_page(
        page,
        ClassifyItems {
            keys: &keys,
            reserved,
            out: &mut out,
            others: &mut others,
        },
    )?;
    out.continue_token = meta.continue_token.filter(|t| !t.is_empty()).map(|t| t.0.into_owned());
    out.resource_version = meta.resource_version.map(|v| v.0.into_owned()).unwrap_or_default();
    if !others.is_empty() {
        parse_page(
            page,
            RawItems {
                wanted: &others,
                out: &mut out.others,
            },
        )?;
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

/// One item's class. An item with a field we read in a shape the API never gives (a metadata
/// that is not an object, a number for a name...) is left to the per-pod path, which reads any
/// shape.
fn classify(pod: Field<PodView<'_>>, keys: &[&str], reserved: &dyn Fn(&str) -> bool) -> Class {
    let Field::Value(pod) = pod else { return Class::Other };
    let meta = match pod.metadata {
        Field::Absent => return Class::Skip,
        Field::Odd => return Class::Other,
        Field::Value(meta) => meta,
    };
    let uid = match meta.uid {
        Field::Absent => return Class::Skip,
        Field::Odd => return Class::Other,
        Field::Value(uid) => uid,
    };
    let phase = match pod.status {
        Field::Absent => Field::Absent,
        Field::Odd => return Class::Other,
        Field::Value(status) => status.phase,
    };
    match phase {
        Field::Odd => return Class::Other,
        Field::Value(p) if matches!(&*p, "Succeeded" | "Failed") => return Class::Finished(uid.0.into_owned()),
        _ => {}
    }
    if reserved(&uid) {
        return Class::Other;
    }
    let (Field::Value(ann), Field::Value(spec), Field::Value(name)) = (meta.annotations, pod.spec, meta.name) else {
        return Class::Other;
    };
    let bound = matches!(&spec.node_name, Field::Value(n) if !n.is_empty());
    let inits = matches!(spec.init_containers, Field::Absent | Field::Value(Count(0)));
    if ann.odd || !bound || !inits {
        return Class::Other;
    }
    let namespace = match meta.namespace {
        Field::Odd => return Class::Other,
        Field::Value(ns) if !ns.is_empty() => ns.0,
        _ => Cow::Borrowed("default"),
    };
    let Some(node) = ann.get(VGPU_NODE).filter(|n| !n.is_empty()) else {
        return Class::Other;
    };
    if ann.get(BIND_PHASE) == Some(PHASE_ALLOCATING) {
        return Class::Other; // its node is busy until the plugin answers: the per-pod path knows
    }
    let mut texts = keys.iter().filter_map(|k| ann.get(k)).filter(|t| !t.is_empty());
    let (Some(text), None) = (texts.next(), texts.next()) else {
        return Class::Other;
    };
    let mig = ann
        .get(MIG_ALLOCATIONS)
        .filter(|t| !t.is_empty())
        .map(decode_mig_allocations);
    match decode_pod_devices(text).and_then(|c| Ok((c, mig.transpose()?.unwrap_or_default()))) {
        Ok((containers, mig)) => Class::Placed(PodAlloc {
            uid: uid.0.into_owned(),
            namespace: namespace.into_owned(),
            name: name.0.into_owned(),
            node: node.to_string(),
            containers,
            init_count: 0,
            init_done: false,
            reserved_at: None,
            mig,
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

#[derive(Default)]
struct ListMeta<'a> {
    continue_token: Option<Str<'a>>,
    resource_version: Option<Str<'a>>,
}

/// Parses the page's envelope, handing `items` to `seed`. The field being read when the parse
/// failed is named in the error.
fn parse_page<'de, S: DeserializeSeed<'de, Value = ()>>(page: &'de [u8], seed: S) -> Result<ListMeta<'de>> {
    let field = Cell::new("(page)");
    let mut de = serde_json::Deserializer::from_slice(page);
    let visitor = PageVisitor {
        field: &field,
        items: Some(seed),
    };
    let meta = (&mut de)
        .deserialize_map(visitor)
        .and_then(|meta| de.end().map(|()| meta))
        .map_err(|e| json_error(field.get(), &e))?;
    Ok(meta)
}

fn json_error(field: &str, e: &serde_json::Error) -> Error {
    let position = format!("line {} column {}", e.line(), e.column());
    let text = e.to_string();
    let message = text.strip_suffix(&format!(" at {position}")).unwrap_or(&text);
    Error::decode(Codec::PodList, field, position, message)
}

struct PageVisitor<'f, S> {
    field: &'f Cell<&'static str>,
    items: Option<S>,
}

impl<'de, S: DeserializeSeed<'de, Value = ()>> Visitor<'de> for PageVisitor<'_, S> {
    type Value = ListMeta<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a list)")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<ListMeta<'de>, A::Error> {
        let mut meta = ListMeta::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "metadata" => {
                    self.field.set("metadata");
                    meta = map
                        .next_value::<Option<ListMetaSeen<'de>>>()?
                        .map(|m| m.0)
                        .unwrap_or_default();
                }
                "items" => {
                    self.field.set("items");
                    let seed = self.items.take().ok_or_else(|| de::Error::duplicate_field("items"))?;
                    map.next_value_seed(seed)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.field.set("(page)");
        }
        Ok(meta)
    }
}

/// The list's `metadata`: the continue token and the resourceVersion, strings when present.
struct ListMetaSeen<'a>(ListMeta<'a>);

impl<'de> Deserialize<'de> for ListMetaSeen<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListMetaSeen<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ListMetaSeen<'de>, A::Error> {
                let mut meta = ListMeta::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key {
                        "continue" => meta.continue_token = map.next_value()?,
                        "resourceVersion" => meta.resource_version = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ListMetaSeen(meta))
            }
        }
        d.deserialize_map(V)
    }
}

/// `items`, each pod classified as it is parsed (null: no items).
struct ClassifyItems<'s, 'a> {
    keys: &'s [&'s str],
    reserved: &'s dyn Fn(&str) -> bool,
    out: &'s mut PodPage<'a>,
    /// Positions of the pods for the per-pod path.
    others: &'s mut Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for ClassifyItems<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ClassifyItems<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of pods")
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0;
        while let Some(pod) = seq.next_element::<Field<PodView<'de>>>()? {
            match classify(pod, self.keys, self.reserved) {
                Class::Skip => {}
                Class::Finished(uid) => self.out.finished.push(uid),
                Class::Placed(pod) => self.out.placed.push(pod),
                Class::Invalid(pod) => self.out.invalid.push(pod),
                Class::Other => self.others.push(index),
            }
            index += 1;
        }
        Ok(())
    }
}

/// `items` again, keeping the text of the pods at `wanted` (ascending positions).
struct RawItems<'s, 'a> {
    wanted: &'s [usize],
    out: &'s mut Vec<&'a str>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for RawItems<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for RawItems<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of pods")
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut wanted = self.wanted.iter().copied().peekable();
        let mut index = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if wanted.next_if_eq(&index).is_some() {
                self.out.push(raw.get());
            }
            index += 1;
        }
        Ok(())
    }
}

// -- one pod ---------------------------------------------------------------------------------

/// A field read whatever its JSON type: missing or null (`Absent`; the per-pod path reads both
/// the same), the shape the API gives it, or any other (`Odd`).
#[derive(Default)]
enum Field<T> {
    #[default]
    Absent,
    Value(T),
    Odd,
}

/// What a [`Field`] accepts; every other JSON value is skipped as `Odd`.
trait Shape<'de>: Sized {
    fn borrowed_str(_: &'de str) -> Option<Self> {
        None
    }
    fn str(_: &str) -> Option<Self> {
        None
    }
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> std::result::Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, T: Shape<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<T>(PhantomData<T>);

fn field<T>(value: Option<T>) -> Field<T> {
    value.map_or(Field::Odd, Field::Value)
}

impl<'de, T: Shape<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Field<T>, E> {
        Ok(Field::Absent)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Field<T>, E> {
        Ok(Field::Absent)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Field<T>, E> {
        Ok(Field::Odd)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Field<T>, E> {
        Ok(Field::Odd)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Field<T>, E> {
        Ok(Field::Odd)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Field<T>, E> {
        Ok(Field::Odd)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Field<T>, E> {
        Ok(field(T::borrowed_str(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Field<T>, E> {
        Ok(field(T::str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Field<T>, A::Error> {
        Ok(field(T::seq(seq)?))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Field<T>, A::Error> {
        Ok(field(T::map(map)?))
    }
}

/// The fields of a pod the load reads; the rest is skipped unparsed. A repeated key replaces
/// the earlier value, as in the per-pod path.
struct PodView<'a> {
    metadata: Field<MetaView<'a>>,
    spec: Field<SpecView<'a>>,
    status: Field<StatusView<'a>>,
}

struct MetaView<'a> {
    uid: Field<Str<'a>>,
    namespace: Field<Str<'a>>,
    name: Field<Str<'a>>,
    annotations: Field<Annotations<'a>>,
}

struct SpecView<'a> {
    node_name: Field<Str<'a>>,
    init_containers: Field<Count>,
}

struct StatusView<'a> {
    phase: Field<Str<'a>>,
}

impl<'de> Shape<'de> for PodView<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut pod = PodView {
            metadata: Field::Absent,
            spec: Field::Absent,
            status: Field::Absent,
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "metadata" => pod.metadata = map.next_value()?,
                "spec" => pod.spec = map.next_value()?,
                "status" => pod.status = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(pod))
    }
}

impl<'de> Shape<'de> for MetaView<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut meta = MetaView {
            uid: Field::Absent,
            namespace: Field::Absent,
            name: Field::Absent,
            annotations: Field::Absent,
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "uid" => meta.uid = map.next_value()?,
                "namespace" => meta.namespace = map.next_value()?,
                "name" => meta.name = map.next_value()?,
                "annotations" => meta.annotations = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(meta))
    }
}

impl<'de> Shape<'de> for SpecView<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut spec = SpecView {
            node_name: Field::Absent,
            init_containers: Field::Absent,
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "nodeName" => spec.node_name = map.next_value()?,
                "initContainers" => spec.init_containers = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(spec))
    }
}

impl<'de> Shape<'de> for StatusView<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut phase = Field::Absent;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            if &*key == "phase" {
                phase = map.next_value()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(StatusView { phase }))
    }
}

/// A string borrowed from the page when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Shape<'de> for Str<'de> {
    fn borrowed_str(v: &'de str) -> Option<Self> {
        Some(Str(Cow::Borrowed(v)))
    }
    fn str(v: &str) -> Option<Self> {
        Some(Str(Cow::Owned(v.to_string())))
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

impl<'de> Shape<'de> for Count {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Some(Count(n)))
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

impl<'de> Shape<'de> for Annotations<'de> {
    fn map<A: MapAccess<'de>>(mut map: A) -> std::result::Result<Option<Self>, A::Error> {
        let mut out = Annotations {
            entries: Vec::with_capacity(map.size_hint().unwrap_or(8)),
            odd: false,
        };
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match map.next_value::<Field<Str<'de>>>()? {
                Field::Value(value) => out.entries.push((key, value)),
                Field::Absent | Field::Odd => out.odd = true,
            }
        }
        Ok(Some(out))
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
    fn mig_reservations_come_with_the_pod_and_a_bad_one_is_its_error() {
        let mig = r#"[{\"containerIndex\":0,\"deviceIndex\":0,\"gpuUUID\":\"GPU-a\",\"profile\":\"3g.20gb\",\"placement\":{\"start\":4,\"size\":4}}]"#;
        let with = |uid: &str, text: &str| {
            pod(
                uid,
                "Running",
                r#","nodeName":"n1""#,
                &format!(
                    r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"GPU-a,NVIDIA,19968,43:;","hami.io/vgpu-mig-allocations":"{text}""#
                ),
            )
        };
        let bad = r#"[{\"containerIndex\":0}]"#;
        let text = page("{}", &[with("u1", mig), with("u2", bad)]);
        let p = decode(&text, &[]);
        assert_eq!(p.placed.len(), 1);
        assert_eq!(p.placed[0].mig.len(), 1);
        assert_eq!((p.placed[0].mig[0].start, p.placed[0].mig[0].mask()), (4, 0xf0));
        assert_eq!(p.invalid.len(), 1);
        assert!(
            p.invalid[0].error.to_string().contains("vgpu-mig-allocations"),
            "{}",
            p.invalid[0].error
        );
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
                mig: Vec::new(),
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
    fn a_pod_being_allocated_goes_to_the_per_pod_path() {
        // its node takes no other pod until the plugin answers, which the per-pod path tracks
        let allocating = placed("u1", "g").replace(
            r#""hami.io/vgpu-node":"n1","#,
            r#""hami.io/vgpu-node":"n1","hami.io/bind-phase":"allocating","#,
        );
        let done = allocating.replace("allocating", "success").replace("u1", "u2");
        let text = page("{}", &[allocating, done]);
        let p = decode(&text, &[]);
        assert_eq!(uids_of_others(&p), ["u1"]);
        assert_eq!(p.placed.iter().map(|a| a.uid.as_str()).collect::<Vec<_>>(), ["u2"]);
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
    fn repeated_keys_take_the_last_value_as_the_per_pod_path_does() {
        let item = format!(
            r#"{{"metadata":{{"uid":"old","name":"p","uid":"u1","annotations":{{"hami.io/vgpu-node":"n1",
                "{ALLOCATED}":"g,NVIDIA,5,1:;"}}}},"spec":{{"nodeName":"n1"}},"status":{{"phase":"Failed"}},
                "status":{{"phase":"Running"}}}}"#
        );
        let text = page("{}", &[item]);
        let p = decode(&text, &[]);
        assert_eq!(p.placed[0].uid, "u1");
    }

    #[test]
    fn null_reads_as_absent_and_the_envelope_in_any_order() {
        let item = format!(
            r#"{{"status":null,"metadata":{{"uid":"u1","name":"p","namespace":null,"annotations":{{
                "hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,5,1:;"}}}},"spec":{{"nodeName":"n1","initContainers":null}}}}"#
        );
        let text =
            format!(r#"{{"items":[{item}],"metadata":{{"resourceVersion":"3","continue":null}},"kind":"PodList"}}"#);
        let p = decode(&text, &[]);
        assert_eq!(
            (p.placed[0].namespace.as_str(), p.resource_version.as_str()),
            ("default", "3")
        );
        assert_eq!(p.continue_token, None);
        let null_value = format!(r#""hami.io/vgpu-node":"n1","{ALLOCATED}":"g,NVIDIA,5,1:;","x":null"#);
        let text = page(r#"null"#, &[pod("u2", "Running", r#","nodeName":"n1""#, &null_value)]);
        assert_eq!(
            decode(&text, &[]).others.len(),
            1,
            "a null annotation: the per-pod path decides"
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
            (r#"{"items":[],"items":[]}"#, "items"),
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
