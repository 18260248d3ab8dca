//! Error and argument conversion at the Python boundary.

use crate::types::AllocDevice;
use hami_sched::ascend::{ascend_spec, Ascend, AscendChip, Template};
use hami_sched::{Error, PodDevices, Vendors};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use std::sync::Arc;

create_exception!(
    hami_rustcore,
    CoreError,
    PyValueError,
    "An invalid request or input to the scheduling core."
);
create_exception!(
    hami_rustcore,
    DecodeError,
    CoreError,
    "Malformed annotation or object text; the message names the field and position."
);

/// The one place core errors become Python exceptions.
pub fn core_err(e: Error) -> PyErr {
    match e {
        Error::Decode { .. } => DecodeError::new_err(e.to_string()),
        _ => CoreError::new_err(e.to_string()),
    }
}

/// Node names from any sequence of `str`, copied into one buffer with their spans.
pub fn names_arg(obj: &Bound<'_, PyAny>) -> PyResult<(String, Vec<(usize, usize)>)> {
    fn push(arena: &mut String, spans: &mut Vec<(usize, usize)>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = item
            .cast::<PyString>()
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err("candidates: every node name must be a str"))?;
        let start = arena.len();
        arena.push_str(s.to_str()?);
        spans.push((start, arena.len()));
        Ok(())
    }
    let mut arena = String::new();
    let mut spans = Vec::new();
    if let Ok(list) = obj.cast::<PyList>() {
        arena.reserve(list.len() * 16);
        spans.reserve(list.len());
        for item in list.iter() {
            push(&mut arena, &mut spans, &item)?;
        }
    } else {
        if obj.is_instance_of::<PyString>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "candidates: expected a sequence of node names, got a str",
            ));
        }
        for item in obj.try_iter()? {
            push(&mut arena, &mut spans, &item?)?;
        }
    }
    Ok((arena, spans))
}

/// A container list given as annotation text or as lists of `AllocDevice`.
pub fn containers_arg(obj: &Bound<'_, PyAny>) -> PyResult<PodDevices> {
    if let Ok(s) = obj.cast::<PyString>() {
        return hami_sched::codec::decode_pod_devices(s.to_str()?).map_err(core_err);
    }
    let lists: Vec<Vec<AllocDevice>> = obj.extract()?;
    Ok(lists
        .into_iter()
        .map(|v| v.iter().map(AllocDevice::to_core).collect())
        .collect())
}

const STRING_KEYS: [&str; 5] = [
    "resource_count",
    "resource_memory",
    "resource_memory_percentage",
    "resource_cores",
    "resource_priority",
];
const INT_KEYS: [&str; 4] = ["default_memory", "default_cores", "memory_factor", "default_count"];
const ASCEND_KEYS: [&str; 6] = [
    "memory_allocatable",
    "memory_capacity",
    "super_pod",
    "soft_default",
    "templates",
    "kind",
];

/// A pod object's JSON text, given as `str` or UTF-8 `bytes`.
pub fn pod_text(pod_json: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = pod_json.cast::<PyBytes>() {
        return String::from_utf8(b.as_bytes().to_vec())
            .map_err(|e| DecodeError::new_err(format!("pod: not UTF-8: {e}")));
    }
    pod_json.extract::<String>()
}

fn ascend_templates(vendor: &str, value: &Bound<'_, PyAny>) -> PyResult<Vec<Template>> {
    let bad = |i: usize, what: &str| PyValueError::new_err(format!("vendors.{vendor}.templates[{i}]: {what}"));
    let list = value
        .cast::<PyList>()
        .map_err(|_| PyValueError::new_err(format!("vendors.{vendor}.templates: expected a list")))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let d = item
            .cast::<PyDict>()
            .map_err(|_| bad(i, "expected a dict with name, memory, ai_core, ai_cpu"))?;
        let get = |k: &str| d.get_item(k).ok().flatten();
        let name: String = get("name")
            .ok_or_else(|| bad(i, "name is missing"))?
            .extract()
            .map_err(|_| bad(i, "name: expected a string"))?;
        let int = |k: &str| -> PyResult<u64> {
            get(k).map_or(Ok(0), |v| {
                v.extract()
                    .map_err(|_| bad(i, &format!("{k}: expected a non-negative integer")))
            })
        };
        let memory = int("memory")?;
        if name.is_empty() || memory == 0 {
            return Err(bad(i, "needs a name and a memory size in MiB"));
        }
        out.push(Template {
            name,
            memory,
            ai_core: u32::try_from(int("ai_core")?).map_err(|_| bad(i, "ai_core: too large"))?,
            ai_cpu: u32::try_from(int("ai_cpu")?).map_err(|_| bad(i, "ai_cpu: too large"))?,
        });
    }
    Ok(out)
}

/// `{"NVIDIA": {"resource_count": "nvidia.com/gpu", "default_memory": 0, ...}}`: overrides of
/// the built-in vendors' resource names and defaults, and Ascend chips (`"kind": "ascend"`, the
/// key is the chip's common word). Unknown vendors and keys are errors.
pub fn parse_vendor_overrides(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Vendors> {
    let mut vendors = Vendors::default();
    let Some(overrides) = overrides else { return Ok(vendors) };
    for (vendor, cfg) in overrides.iter() {
        let vendor: String = vendor.extract()?;
        let cfg = cfg
            .cast::<PyDict>()
            .map_err(|_| PyValueError::new_err(format!("vendors.{vendor}: expected a dict")))?;
        let kind: Option<String> = match cfg.get_item("kind")? {
            None => None,
            Some(k) => Some(
                k.extract()
                    .map_err(|_| PyValueError::new_err(format!("vendors.{vendor}.kind: expected a string")))?,
            ),
        };
        let (kind, mut spec) = match (vendors.get(&vendor), kind.as_deref()) {
            (Some(base), None) => (base.kind(), base.spec().clone()),
            (Some(base), Some(k)) if k == base.kind() => (base.kind(), base.spec().clone()),
            (None, Some("ascend")) => ("ascend", ascend_spec(&vendor, "", "", "", 1)),
            (_, Some(k)) => {
                return Err(PyValueError::new_err(format!(
                    "vendors.{vendor}.kind: {k:?} is not this vendor's kind; NVIDIA is nvidia, MLU is \
                     cambricon, and a new vendor may only be an Ascend chip (ascend)"
                )))
            }
            (None, None) => {
                return Err(PyValueError::new_err(format!(
                    "vendors: unknown vendor {vendor:?}; NVIDIA and MLU are built in, and an Ascend chip \
                     needs \"kind\": \"ascend\""
                )))
            }
        };
        let mut chip = AscendChip::default();
        for (k, v) in cfg.iter() {
            let k: String = k.extract()?;
            let bad = |what: &str| PyValueError::new_err(format!("vendors.{vendor}.{k}: expected {what}"));
            let ascend = kind == "ascend";
            match k.as_str() {
                "kind" => {}
                "resource_count" => spec.resource_count = v.extract().map_err(|_| bad("a string"))?,
                "resource_memory" => spec.resource_memory = v.extract().map_err(|_| bad("a string"))?,
                "resource_memory_percentage" => {
                    spec.resource_memory_percentage = v.extract().map_err(|_| bad("a string"))?
                }
                "resource_cores" => spec.resource_cores = v.extract().map_err(|_| bad("a string"))?,
                "resource_priority" => spec.resource_priority = v.extract().map_err(|_| bad("a string"))?,
                "default_count" => {
                    spec.default_count = v.extract().map_err(|_| bad("a non-negative integer (devices)"))?
                }
                "default_memory" => {
                    spec.default_memory = v.extract().map_err(|_| bad("a non-negative integer (MiB)"))?
                }
                "default_cores" => {
                    let c: u32 = v.extract().map_err(|_| bad("an integer from 0 to 100"))?;
                    if c > 100 {
                        return Err(bad("an integer from 0 to 100"));
                    }
                    spec.default_cores = c;
                }
                "memory_factor" => {
                    let f: u64 = v.extract().map_err(|_| bad("a positive integer"))?;
                    if f == 0 {
                        return Err(bad("a positive integer"));
                    }
                    spec.memory_factor = f;
                }
                "memory_allocatable" if ascend => {
                    chip.memory_allocatable = v.extract().map_err(|_| bad("a non-negative integer (MiB)"))?
                }
                "memory_capacity" if ascend => {
                    chip.memory_capacity = v.extract().map_err(|_| bad("a non-negative integer (MiB)"))?
                }
                "super_pod" if ascend => chip.super_pod = v.extract().map_err(|_| bad("a bool"))?,
                "soft_default" if ascend => chip.soft_default = v.extract().map_err(|_| bad("a bool"))?,
                "templates" if ascend => chip.templates = ascend_templates(&vendor, &v)?,
                _ => {
                    let extra = if ascend {
                        format!(", {}", ASCEND_KEYS.join(", "))
                    } else {
                        String::new()
                    };
                    return Err(PyValueError::new_err(format!(
                        "vendors.{vendor}: unknown key {k:?}; known keys: {}, {}{extra}",
                        STRING_KEYS.join(", "),
                        INT_KEYS.join(", ")
                    )));
                }
            }
        }
        let rules: Arc<dyn hami_sched::VendorRules> = match kind {
            "nvidia" => Arc::new(hami_sched::vendor::Nvidia(spec)),
            "cambricon" => Arc::new(hami_sched::vendor::Cambricon(spec)),
            _ => {
                if spec.resource_count.is_empty() || spec.resource_memory.is_empty() {
                    return Err(PyValueError::new_err(format!(
                        "vendors.{vendor}: an Ascend chip needs resource_count and resource_memory"
                    )));
                }
                if chip.memory_allocatable == 0 {
                    return Err(PyValueError::new_err(format!(
                        "vendors.{vendor}.memory_allocatable: an Ascend chip needs the MiB of a whole NPU"
                    )));
                }
                chip.memory_capacity = chip.memory_capacity.max(chip.memory_allocatable);
                Arc::new(Ascend::new(spec, chip))
            }
        };
        vendors.insert(rules);
    }
    Ok(vendors)
}

pub fn vendor_specs<'py>(py: Python<'py>, vendors: &Vendors) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for rules in vendors.iter() {
        let s = rules.spec();
        let d = PyDict::new(py);
        for (k, v) in [
            ("resource_count", &s.resource_count),
            ("resource_memory", &s.resource_memory),
            ("resource_memory_percentage", &s.resource_memory_percentage),
            ("resource_cores", &s.resource_cores),
            ("resource_priority", &s.resource_priority),
            ("register_annotation", &s.register_annotation),
            ("to_allocate_annotation", &s.to_allocate_annotation),
            ("allocated_annotation", &s.allocated_annotation),
            ("use_type_annotation", &s.use_type_annotation),
            ("nouse_type_annotation", &s.nouse_type_annotation),
            ("use_uuid_annotation", &s.use_uuid_annotation),
            ("nouse_uuid_annotation", &s.nouse_uuid_annotation),
            ("mode_annotation", &s.mode_annotation),
            ("soft_mode_annotation", &s.soft_mode_annotation),
            ("numa_bind_annotation", &s.numa_bind_annotation),
            ("handshake_annotation", &s.handshake_annotation),
        ] {
            d.set_item(k, v)?;
        }
        d.set_item("kind", rules.kind())?;
        if let Some(chip) = rules.ascend_chip() {
            d.set_item("memory_allocatable", chip.memory_allocatable)?;
            d.set_item("memory_capacity", chip.memory_capacity)?;
            d.set_item("super_pod", chip.super_pod)?;
            d.set_item("soft_default", chip.soft_default)?;
            let templates = PyList::empty(py);
            for t in &chip.templates {
                let td = PyDict::new(py);
                td.set_item("name", &t.name)?;
                td.set_item("memory", t.memory)?;
                td.set_item("ai_core", t.ai_core)?;
                td.set_item("ai_cpu", t.ai_cpu)?;
                templates.append(td)?;
            }
            d.set_item("templates", templates)?;
        }
        d.set_item("default_memory", s.default_memory)?;
        d.set_item("default_cores", s.default_cores)?;
        d.set_item("memory_factor", s.memory_factor)?;
        d.set_item("default_count", s.default_count)?;
        d.set_item("exclusive_by_default", s.exclusive_by_default)?;
        d.set_item("quota_in_fit", s.quota_in_fit)?;
        out.set_item(&s.key, d)?;
    }
    Ok(out)
}
