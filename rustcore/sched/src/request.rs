//! What a pod asks for: per container and vendor a count, memory (MiB or % of the device) and
//! cores; per vendor the selectors from the pod's annotations; the policies.

use crate::codec::parse_go_bool;
use crate::error::{Codec, Error, Result};
use crate::policy::{
    GpuPolicy, NodePolicy, Weights, GPU_POLICY_ANNOTATION, NODE_POLICY_ANNOTATION, WEIGHTS_ANNOTATION,
};
use crate::quantity::{quantity_value, QuantityError};
use crate::vendor::{VendorSpec, Vendors};
use serde_json::Value;
use std::collections::BTreeMap;

/// One vendor's part of one container's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    pub vendor: String,
    /// How many devices.
    pub count: u32,
    /// MiB per device; 0 when memory is given as a percentage.
    pub mem_mib: u64,
    /// Percent of each device's memory (1..=100), when `mem_mib` is 0.
    pub mem_percent: Option<u32>,
    /// Percent of each device's cores (100 = exclusive).
    pub cores: u32,
}

impl DeviceRequest {
    /// The memory this request takes on a device with `total` MiB.
    pub fn mem_on(&self, total: u64) -> u64 {
        if self.mem_mib > 0 {
            self.mem_mib
        } else {
            total * u64::from(self.mem_percent.unwrap_or(100)) / 100
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerRequest {
    pub init: bool,
    pub devices: Vec<DeviceRequest>,
}

/// Device selectors a pod's annotations set for one vendor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selectors {
    /// Lower-cased; the device type must contain one of them.
    pub use_types: Vec<String>,
    /// Lower-cased; the device type must contain none of them.
    pub nouse_types: Vec<String>,
    pub use_uuids: Vec<String>,
    pub nouse_uuids: Vec<String>,
    /// The device mode (`hami-core`, `mig`, `mps`) must be a substring of this.
    pub mode: Option<String>,
    /// The pod asks for soft splitting (Ascend's `huawei.com/vnpu-mode: hami-core`).
    pub soft_mode: bool,
    pub numa_bind: bool,
}

fn comma_list(s: &str, lower: bool) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| if lower { x.to_lowercase() } else { x.to_string() })
        .collect()
}

impl Selectors {
    pub fn from_annotations(spec: &VendorSpec, ann: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| -> Option<&str> {
            if key.is_empty() {
                None
            } else {
                ann.get(key).map(String::as_str)
            }
        };
        Selectors {
            use_types: get(&spec.use_type_annotation).map_or_else(Vec::new, |s| comma_list(s, true)),
            nouse_types: get(&spec.nouse_type_annotation).map_or_else(Vec::new, |s| comma_list(s, true)),
            use_uuids: get(&spec.use_uuid_annotation).map_or_else(Vec::new, |s| comma_list(s, false)),
            nouse_uuids: get(&spec.nouse_uuid_annotation).map_or_else(Vec::new, |s| comma_list(s, false)),
            mode: get(&spec.mode_annotation).map(str::to_string),
            soft_mode: get(&spec.soft_mode_annotation).is_some_and(|m| m == "hami-core"),
            numa_bind: get(&spec.numa_bind_annotation)
                .and_then(|s| parse_go_bool(s.trim()))
                .unwrap_or(false),
        }
    }
}

/// A pod object from its JSON text; the error says where the text stopped being JSON.
pub fn parse_pod_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::decode(
            Codec::PodSpec,
            "JSON",
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })
}

/// A pod as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRequest {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Init containers first, then app containers, in spec order; one entry per container.
    pub containers: Vec<ContainerRequest>,
    pub annotations: BTreeMap<String, String>,
}

impl PodRequest {
    pub fn has_devices(&self) -> bool {
        self.containers.iter().any(|c| c.devices.iter().any(|d| d.count > 0))
    }

    pub fn init_count(&self) -> usize {
        self.containers.iter().take_while(|c| c.init).count()
    }

    pub fn node_policy(&self, default: NodePolicy) -> NodePolicy {
        self.annotations
            .get(NODE_POLICY_ANNOTATION)
            .map_or(default, |s| NodePolicy::parse(s))
    }

    pub fn gpu_policy(&self, default: &GpuPolicy) -> GpuPolicy {
        self.annotations
            .get(GPU_POLICY_ANNOTATION)
            .map_or_else(|| default.clone(), |s| GpuPolicy::parse(s))
    }

    pub fn weights(&self) -> Result<Weights> {
        self.annotations
            .get(WEIGHTS_ANNOTATION)
            .map_or(Ok(Weights::default()), |s| Weights::parse(s))
    }

    /// Derives the request from a Kubernetes pod object (JSON), as HAMi's
    /// `GenerateResourceRequests` does for each known vendor.
    pub fn from_pod_json(text: &str, vendors: &Vendors) -> Result<PodRequest> {
        Self::from_pod_value(&parse_pod_json(text)?, vendors)
    }

    pub fn from_pod_value(pod: &Value, vendors: &Vendors) -> Result<PodRequest> {
        let meta = pod.get("metadata");
        let text = |v: Option<&Value>, key: &str| -> String {
            v.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut annotations = BTreeMap::new();
        if let Some(Value::Object(map)) = meta.and_then(|m| m.get("annotations")) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    annotations.insert(k.clone(), s.to_string());
                }
            }
        }
        let spec = pod.get("spec");
        let mut containers = Vec::new();
        for (list, init) in [("initContainers", true), ("containers", false)] {
            let items = match spec.and_then(|s| s.get(list)) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(items)) => items,
                Some(_) => {
                    return Err(Error::decode(
                        Codec::PodSpec,
                        format!("spec.{list}"),
                        "pod",
                        "expected an array",
                    ))
                }
            };
            for (i, c) in items.iter().enumerate() {
                let at = format!("spec.{list}[{i}]");
                containers.push(ContainerRequest {
                    init,
                    devices: container_devices(c, &at, vendors, &annotations)?,
                });
            }
        }
        Ok(PodRequest {
            uid: text(meta, "uid"),
            namespace: text(meta, "namespace"),
            name: text(meta, "name"),
            containers,
            annotations,
        })
    }
}

/// A resource as a container gives it: from its limits, else its requests (HAMi's order).
pub(crate) fn given<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    if name.is_empty() {
        return None;
    }
    let res = c.get("resources")?;
    ["limits", "requests"]
        .iter()
        .find_map(|part| res.get(part).and_then(|m| m.get(name)))
}

/// A resource from the container's limits only (HAMi's webhook reads the count there).
pub(crate) fn limit<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    if name.is_empty() {
        return None;
    }
    c.get("resources")?.get("limits")?.get(name)
}

/// The value as a whole number, or why it is not one.
pub(crate) fn whole(v: &Value) -> std::result::Result<i64, QuantityError> {
    match v {
        Value::String(s) => quantity_value(s),
        Value::Number(n) => n.as_i64().ok_or(if n.is_f64() {
            QuantityError::NotWhole
        } else {
            QuantityError::TooLarge
        }),
        _ => Err(QuantityError::Syntax("expected a quantity such as \"1\"")),
    }
}

/// The value as the user wrote it, for messages.
pub(crate) fn shown(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// `container main`, or the container's path when it has no name.
pub(crate) fn container_label(c: &Value, at: &str) -> String {
    match c.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => format!("container {name}"),
        _ => at.to_string(),
    }
}

/// How a vendor's memory resource is counted: `MiB`, or `units of 256 MiB`.
pub(crate) fn memory_unit(spec: &VendorSpec) -> String {
    match spec.memory_factor {
        0 | 1 => "MiB".to_string(),
        f => format!("units of {f} MiB"),
    }
}

const MIB: i64 = 1 << 20;
pub(crate) const INT32_MAX: i64 = i32::MAX as i64;

/// The memory value to write when `bytes` were written where MiB (or units) belong, if that
/// reading gives a value the request takes.
pub(crate) fn memory_hint(spec: &VendorSpec, bytes: i64) -> Option<i64> {
    let unit = MIB.checked_mul(i64::try_from(spec.memory_factor.max(1)).ok()?)?;
    let units = (bytes + unit - 1) / unit;
    (bytes > 0 && units <= INT32_MAX).then_some(units)
}

pub(crate) fn count_error(who: &str, spec: &VendorSpec, v: &Value) -> Error {
    Error::Resource(format!(
        "{who}: {} is {}; write a whole number of devices, such as 1",
        spec.resource_count,
        shown(v)
    ))
}

pub(crate) fn memory_error(
    who: &str,
    spec: &VendorSpec,
    v: &Value,
    value: std::result::Result<i64, QuantityError>,
) -> Error {
    let (name, unit) = (&spec.resource_memory, memory_unit(spec));
    let text = shown(v);
    let too_large = || {
        format!(
            "{who}: {name} is {text}, more than any device has; write the memory per device in \
             {unit}, at most {INT32_MAX}"
        )
    };
    let message = match value {
        Err(QuantityError::TooLarge) => too_large(),
        Ok(m) if m > INT32_MAX => match memory_hint(spec, m) {
            Some(hint) => format!(
                "{who}: {name} is {text}, i.e. {m} {unit} per device; {name} is in {unit}: \
                 write {hint}"
            ),
            None => too_large(),
        },
        _ => format!(
            "{who}: {name} is {text}; write the memory per device as a whole number of {unit}, \
             such as {}",
            if spec.memory_factor > 1 { 16 } else { 4096 }
        ),
    };
    Error::Resource(message)
}

/// The refusal of a percentage resource (`gpumem-percentage`) that is not 0..100.
pub(crate) fn percent_error(who: &str, name: &str, v: &Value) -> Error {
    Error::Resource(format!(
        "{who}: {name} is {}; set it between 0 and 100 (percent of one device's memory)",
        shown(v)
    ))
}

fn cores_error(who: &str, name: &str, v: &Value) -> Error {
    Error::Resource(format!(
        "{who}: {name} is {}; set it between 0 and 100 (percent of one device's cores)",
        shown(v)
    ))
}

fn container_devices(
    c: &Value,
    at: &str,
    vendors: &Vendors,
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<DeviceRequest>> {
    let who = || container_label(c, at);
    let mut out = Vec::new();
    for rules in vendors.iter() {
        let spec = rules.spec();
        let count = match given(c, &spec.resource_count) {
            None => continue,
            Some(v) => match whole(v) {
                Ok(0) => continue,
                Ok(n) if (1..=INT32_MAX).contains(&n) => n as u32,
                _ => return Err(count_error(&who(), spec, v)),
            },
        };
        let mut mem_mib = match given(c, &spec.resource_memory) {
            None => 0,
            Some(v) => match whole(v) {
                Ok(0) => 0,
                Ok(m) if (0..=INT32_MAX).contains(&m) => {
                    rules.request_memory(m as u64, annotations) * spec.memory_factor.max(1)
                }
                value => return Err(memory_error(&who(), spec, v, value)),
            },
        };
        let mut mem_percent = match given(c, &spec.resource_memory_percentage) {
            None => None,
            Some(v) => match whole(v) {
                // Admission refuses values outside 0..=100; a pod that skipped it is read as
                // HAMi reads it: 0 or less is unset, more than 100 is 100.
                Ok(p) if p <= 0 => None,
                Ok(p) => Some(p.min(100) as u32),
                Err(_) => return Err(percent_error(&who(), &spec.resource_memory_percentage, v)),
            },
        };
        if mem_mib == 0 && mem_percent.is_none() {
            if spec.default_memory > 0 {
                mem_mib = spec.default_memory;
            } else {
                mem_percent = Some(100);
            }
        }
        if mem_mib > 0 {
            mem_percent = None;
        }
        let cores = match given(c, &spec.resource_cores) {
            None => spec.default_cores,
            Some(v) => match whole(v) {
                // More than 100 is a whole device: the fit counts it as 100.
                Ok(n) if n >= 0 => n.min(i64::from(u32::MAX)) as u32,
                _ => return Err(cores_error(&who(), &spec.resource_cores, v)),
            },
        };
        out.push(DeviceRequest {
            vendor: spec.key.clone(),
            count,
            mem_mib,
            mem_percent,
            cores,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_hami_example() {
        let pod = r#"{"metadata":{"uid":"u1","namespace":"default","name":"p","annotations":{"nvidia.com/use-gputype":"A100,V100"}},
            "spec":{"containers":[{"name":"c","resources":{"limits":{"nvidia.com/gpu":"1","nvidia.com/gpumem":"3000","nvidia.com/gpucores":"30"}}},
                                  {"name":"side"}]}}"#;
        let p = PodRequest::from_pod_json(pod, &Vendors::default()).unwrap();
        assert_eq!(p.containers.len(), 2);
        assert_eq!(
            p.containers[0].devices,
            vec![DeviceRequest {
                vendor: "NVIDIA".into(),
                count: 1,
                mem_mib: 3000,
                mem_percent: None,
                cores: 30
            }]
        );
        assert!(p.containers[1].devices.is_empty());
        let sel = Selectors::from_annotations(&VendorSpec::nvidia(), &p.annotations);
        assert_eq!(sel.use_types, vec!["a100", "v100"]);
    }

    #[test]
    fn defaults_and_percentages() {
        let pod = r#"{"spec":{"initContainers":[{"resources":{"limits":{"nvidia.com/gpu":2}}}],
            "containers":[{"resources":{"limits":{"nvidia.com/gpu":"1","nvidia.com/gpumem-percentage":"150"}}},
                          {"resources":{"limits":{"cambricon.com/vmlu":"1","cambricon.com/mlu.smlu.vmemory":"4"}}}]}}"#;
        let p = PodRequest::from_pod_json(pod, &Vendors::default()).unwrap();
        assert!(p.containers[0].init);
        assert_eq!(p.containers[0].devices[0].mem_percent, Some(100));
        assert_eq!(p.containers[1].devices[0].mem_percent, Some(100));
        let mlu = &p.containers[2].devices[0];
        assert_eq!((mlu.vendor.as_str(), mlu.mem_mib, mlu.cores), ("MLU", 1024, 100));
    }

    #[test]
    fn bad_quantities_name_the_container() {
        let pod =
            r#"{"spec":{"containers":[{"resources":{"limits":{"nvidia.com/gpu":"1","nvidia.com/gpumem":"-5"}}}]}}"#;
        let e = PodRequest::from_pod_json(pod, &Vendors::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.containers[0]") && e.contains("nvidia.com/gpumem"),
            "{e}"
        );
        let pod = r#"{"spec":{"containers":[{"resources":{"limits":{"nvidia.com/gpu":"1.5"}}}]}}"#;
        let e = PodRequest::from_pod_json(pod, &Vendors::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
    }
}
