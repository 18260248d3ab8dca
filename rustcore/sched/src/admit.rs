//! Admission of a pod (HAMi's `MutateAdmission` of every vendor, reference §1.4), in the core:
//! the limits admission adds (the default count, a whole device's cores), which containers ask
//! for which vendor's devices, the checks HAMi's webhook makes, warnings for values that are
//! accepted but clamped, and what the pod counts against a namespace quota.
//!
//! The request is derived from the pod *with* the added limits by the code the extender runs
//! ([`PodRequest::from_pod_value`]), so what admission accepts is what the fit later sees, and
//! a value the fit would refuse is refused here, at the door, with what to write instead.

use crate::error::{Error, Result};
use crate::quantity::has_byte_suffix;
use crate::request::{
    container_label, given, limit, memory_hint, memory_unit, percent_error, shown, whole, PodRequest,
};
use crate::vendor::{VendorSpec, Vendors};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What admission does to one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerAdmission {
    pub init: bool,
    /// Position in its list (`spec.initContainers` or `spec.containers`).
    pub index: usize,
    /// Limits to add or replace, in order: `(resource name, value)`.
    pub added_limits: Vec<(String, String)>,
    /// Requests to set, in order (Ascend writes the memory it resolved to both limits and
    /// requests): `(resource name, value)`.
    pub set_requests: Vec<(String, String)>,
    /// Keys of the vendors whose devices the container asks for: their count is in its limits,
    /// given or added (HAMi's `MutateAdmission` answer per vendor).
    pub vendors: Vec<String>,
    /// `(vendor key, value)` of each priority resource in the container's limits.
    pub priorities: Vec<(String, i64)>,
}

/// The outcome of [`admit_pod`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodAdmission {
    /// Init containers first, then app containers, in spec order.
    pub containers: Vec<ContainerAdmission>,
    /// The request of the pod with the added limits.
    pub request: PodRequest,
    /// What the pod counts against a namespace quota, per resource name ([`quota_request`]).
    pub quota: BTreeMap<String, u64>,
    /// Values accepted as HAMi accepts them, but not as written (`gpucores: 150` is 100).
    pub warnings: Vec<String>,
}

impl PodAdmission {
    /// Whether any container asks for any vendor's devices (HAMi's `hasResource`).
    pub fn has_devices(&self) -> bool {
        self.containers.iter().any(|c| !c.vendors.is_empty())
    }
}

/// Admits a pod object: the defaults to add, the request, the quota amounts and warnings, or
/// an error that names the container and resource and says what to write.
pub fn admit_pod(pod: &Value, vendors: &Vendors) -> Result<PodAdmission> {
    let mut defaulted = pod.clone();
    let mut containers = Vec::new();
    let mut warnings = Vec::new();
    let annotations = pod_annotations(pod);
    for (list, init) in [("initContainers", true), ("containers", false)] {
        let Some(items) = pod.get("spec").and_then(|s| s.get(list)).and_then(Value::as_array) else {
            continue;
        };
        for (index, c) in items.iter().enumerate() {
            let at = format!("spec.{list}[{index}]");
            let admitted = admit_container(c, &at, init, index, vendors, &annotations, &mut warnings)?;
            if !admitted.added_limits.is_empty() {
                set_resources(&mut defaulted["spec"][list][index], "limits", &admitted.added_limits);
            }
            if !admitted.set_requests.is_empty() {
                set_resources(&mut defaulted["spec"][list][index], "requests", &admitted.set_requests);
            }
            containers.push(admitted);
        }
    }
    let request = PodRequest::from_pod_value(&defaulted, vendors)?;
    let quota = quota_request(&request, vendors);
    Ok(PodAdmission {
        containers,
        request,
        quota,
        warnings,
    })
}

/// The pod's string annotations (others are ignored, as the request model ignores them).
pub(crate) fn pod_annotations(pod: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(map)) = pod.get("metadata").and_then(|m| m.get("annotations")) {
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    out
}

fn set_resources(container: &mut Value, part: &str, added: &[(String, String)]) {
    let Value::Object(c) = container else { return };
    let resources = c.entry("resources").or_insert_with(|| Value::Object(Map::new()));
    if !resources.is_object() {
        *resources = Value::Object(Map::new());
    }
    let limits = resources
        .as_object_mut()
        .map(|r| r.entry(part).or_insert_with(|| Value::Object(Map::new())));
    if let Some(limits) = limits {
        if !limits.is_object() {
            *limits = Value::Object(Map::new());
        }
        if let Value::Object(l) = limits {
            for (name, value) in added {
                l.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
}

fn admit_container(
    c: &Value,
    at: &str,
    init: bool,
    index: usize,
    vendors: &Vendors,
    annotations: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<ContainerAdmission> {
    let who = container_label(c, at);
    let mut out = ContainerAdmission {
        init,
        index,
        ..ContainerAdmission::default()
    };
    for rules in vendors.iter() {
        let spec = rules.spec();
        // 1. The percentage must be 0..100 (HAMi refuses the pod otherwise).
        let percent = match given(c, &spec.resource_memory_percentage) {
            None => None,
            Some(v) => match whole(v) {
                Ok(p) if (0..=100).contains(&p) => Some(p),
                _ => return Err(percent_error(&who, &spec.resource_memory_percentage, v)),
            },
        };
        // 2. The priority becomes the container's task priority.
        if let Some(v) = limit(c, &spec.resource_priority) {
            match whole(v) {
                Ok(p) => out.priorities.push((spec.key.clone(), p)),
                Err(_) => {
                    return Err(Error::Resource(format!(
                        "{who}: {} is {}; write a whole number (0: high priority, 1: low)",
                        spec.resource_priority,
                        shown(v)
                    )))
                }
            }
        }
        // 3. The count, or the default count for a container that gives memory or cores.
        let mut asks = limit(c, &spec.resource_count).is_some();
        let partial = [
            &spec.resource_cores,
            &spec.resource_memory,
            &spec.resource_memory_percentage,
        ]
        .iter()
        .any(|name| limit(c, name).is_some());
        if !asks && partial && spec.default_count > 0 {
            out.added_limits
                .push((spec.resource_count.clone(), spec.default_count.to_string()));
            asks = true;
        }
        // 4. A whole device's cores when no share of it is given.
        if spec.exclusive_by_default
            && !spec.resource_cores.is_empty()
            && (asks || given(c, &spec.resource_count).is_some())
            && given(c, &spec.resource_cores).is_none()
        {
            let gives_memory = given(c, &spec.resource_memory).is_some() || percent.is_some();
            if percent == Some(100) || spec.resource_memory.is_empty() || !gives_memory {
                out.added_limits.push((spec.resource_cores.clone(), "100".into()));
            }
        }
        if asks {
            out.vendors.push(spec.key.clone());
        }
        rules.admit(c, &who, annotations, &mut out)?;
        warn(c, &who, spec, warnings);
    }
    Ok(out)
}

/// Warnings for values the request takes, but not as the user probably meant them.
fn warn(c: &Value, who: &str, spec: &VendorSpec, warnings: &mut Vec<String>) {
    if let Some(v) = given(c, &spec.resource_cores) {
        if let Ok(cores) = whole(v) {
            if cores > 100 {
                warnings.push(format!(
                    "{who}: {} is {}, more than the 100 percent of one device; it is taken as 100 \
                     (the whole device's cores)",
                    spec.resource_cores,
                    shown(v)
                ));
            }
        }
    }
    if let Some(v) = given(c, &spec.resource_memory) {
        let written = shown(v);
        if let (true, Ok(m)) = (has_byte_suffix(&written), whole(v)) {
            if let (true, Some(hint)) = (m <= i64::from(i32::MAX), memory_hint(spec, m)) {
                let unit = memory_unit(spec);
                warnings.push(format!(
                    "{who}: {} is {written}, i.e. {m} {unit} per device; it is in {unit}, not \
                     bytes: for {written} of memory write {hint}",
                    spec.resource_memory
                ));
            }
        }
    }
}

/// What a pod counts against a namespace quota, per resource name (HAMi's `fitResourceQuota`,
/// reference §4.9): per vendor, the larger of the app containers' sum and the init containers'
/// peak of `MiB x count` (under the memory name) and of `cores x count` (under the core name).
/// Memory given only as a percentage counts 0, as the device is not known yet (the fit checks
/// it); cores count as the fit counts them, at most 100 per device. Zeros are left out.
pub fn quota_request(request: &PodRequest, vendors: &Vendors) -> BTreeMap<String, u64> {
    // vendor key -> (app mem, app cores, init mem peak, init cores peak)
    let mut per_vendor: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for c in &request.containers {
        for d in c.devices.iter().filter(|d| d.count > 0) {
            let count = u64::from(d.count);
            let mem = d.mem_mib.saturating_mul(count);
            let cores = u64::from(d.cores.min(100)) * count;
            let e = per_vendor.entry(d.vendor.as_str()).or_default();
            if c.init {
                e[2] = e[2].max(mem);
                e[3] = e[3].max(cores);
            } else {
                e[0] = e[0].saturating_add(mem);
                e[1] = e[1].saturating_add(cores);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (key, [mem, cores, init_mem, init_cores]) in per_vendor {
        let Some(rules) = vendors.get(key) else { continue };
        let spec = rules.spec();
        for (name, amount) in [
            (&spec.resource_memory, mem.max(init_mem)),
            (&spec.resource_cores, cores.max(init_cores)),
        ] {
            if !name.is_empty() && amount > 0 {
                *out.entry(name.clone()).or_insert(0) += amount;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admit(limits: Value) -> Result<PodAdmission> {
        let pod = json!({"spec": {"containers": [{"name": "main", "resources": {"limits": limits}}]}});
        admit_pod(&pod, &Vendors::default())
    }

    fn added(a: &PodAdmission) -> Vec<(String, String)> {
        a.containers[0].added_limits.clone()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn bare_count_gets_a_whole_device() {
        let a = admit(json!({"nvidia.com/gpu": "1"})).unwrap();
        assert_eq!(added(&a), vec![pair("nvidia.com/gpucores", "100")]);
        assert_eq!(a.containers[0].vendors, vec!["NVIDIA"]);
        assert_eq!(a.request.containers[0].devices[0].cores, 100);
        assert_eq!(a.quota, BTreeMap::from([("nvidia.com/gpucores".to_string(), 100)]));
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn memory_without_count_gets_the_default_count_and_shares_cores() {
        let a = admit(json!({"nvidia.com/gpumem": "3000"})).unwrap();
        assert_eq!(added(&a), vec![pair("nvidia.com/gpu", "1")]);
        let d = &a.request.containers[0].devices[0];
        assert_eq!((d.count, d.mem_mib, d.cores), (1, 3000, 0));
    }

    #[test]
    fn full_percentage_is_exclusive_and_a_partial_one_is_not() {
        let full = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "100"})).unwrap();
        assert_eq!(added(&full), vec![pair("nvidia.com/gpucores", "100")]);
        let half = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"})).unwrap();
        assert!(added(&half).is_empty());
        assert!(half.quota.is_empty(), "a percentage counts 0 against quota");
    }

    #[test]
    fn bytes_for_memory_are_refused_with_the_mib_to_write() {
        let e = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("container main: nvidia.com/gpumem is 4Gi"), "{e}");
        assert!(e.ends_with("nvidia.com/gpumem is in MiB: write 4096"), "{e}");
        let e = admit(json!({"nvidia.com/gpumem": "1e30"})).unwrap_err().to_string();
        assert!(e.contains("nvidia.com/gpumem is 1e30, more than any device has"), "{e}");
        let e = admit(json!({"nvidia.com/gpumem": "1.5"})).unwrap_err().to_string();
        assert!(e.contains("whole number of MiB"), "{e}");
        let e = admit(json!({"nvidia.com/gpu": "1e30"})).unwrap_err().to_string();
        assert!(
            e.contains("nvidia.com/gpu is 1e30; write a whole number of devices"),
            "{e}"
        );
    }

    #[test]
    fn clamped_cores_and_byte_suffixes_are_warnings() {
        let a = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"})).unwrap();
        assert_eq!(a.request.containers[0].devices[0].cores, 150);
        assert_eq!(a.quota["nvidia.com/gpucores"], 100);
        assert!(a.warnings[0].contains("nvidia.com/gpucores is 150"), "{:?}", a.warnings);
        let a = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1Gi"})).unwrap();
        assert!(
            a.warnings[0].ends_with("for 1Gi of memory write 1024"),
            "{:?}",
            a.warnings
        );
    }

    #[test]
    fn percentage_and_priority_are_checked() {
        for bad in ["101", "-1", "0.5", "x"] {
            let e = admit(json!({"nvidia.com/gpumem-percentage": bad}))
                .unwrap_err()
                .to_string();
            assert!(e.contains("set it between 0 and 100"), "{bad}: {e}");
        }
        let a = admit(json!({"nvidia.com/gpu": "1", "nvidia.com/priority": "1"})).unwrap();
        assert_eq!(a.containers[0].priorities, vec![("NVIDIA".to_string(), 1)]);
        let e = admit(json!({"nvidia.com/priority": "high"})).unwrap_err().to_string();
        assert!(e.contains("nvidia.com/priority is high"), "{e}");
    }

    #[test]
    fn quota_sums_app_containers_and_takes_the_init_peak() {
        let pod = json!({"spec": {
            "initContainers": [{"resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4000"}}}],
            "containers": [
                {"resources": {"limits": {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "1000", "nvidia.com/gpucores": "10"}}},
                {"resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "500"}}},
                {"resources": {"limits": {"cambricon.com/vmlu": "1", "cambricon.com/mlu.smlu.vmemory": "4"}}}]}});
        let a = admit_pod(&pod, &Vendors::default()).unwrap();
        assert_eq!(
            a.quota,
            BTreeMap::from([
                ("nvidia.com/gpumem".to_string(), 4000),
                ("nvidia.com/gpucores".to_string(), 20),
                ("cambricon.com/mlu.smlu.vmemory".to_string(), 1024),
                ("cambricon.com/mlu.smlu.vcore".to_string(), 100),
            ])
        );
        assert_eq!(a.containers[3].vendors, vec!["MLU"]);
        assert!(a.containers[3].added_limits.is_empty(), "Cambricon adds nothing");
    }
}
