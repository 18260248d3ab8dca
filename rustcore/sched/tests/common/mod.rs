//! Builders shared by the integration tests.
#![allow(dead_code)]

use hami_sched::*;
use std::collections::BTreeMap;

pub fn gpu(id: &str, index: u32, count: u32, mem: u64, numa: i32) -> Device {
    let mut d = Device::new(id, "NVIDIA", "NVIDIA-Tesla V100-PCIE-32GB", count, mem, 100);
    d.index = index;
    d.numa = numa;
    d
}

/// A node of `n` identical GPUs named `<node>-g<i>`.
pub fn node_gpus(node: &str, n: u32, count: u32, mem: u64) -> Vec<Device> {
    (0..n).map(|i| gpu(&format!("{node}-g{i}"), i, count, mem, 0)).collect()
}

pub fn req(count: u32, mem: u64, cores: u32) -> DeviceRequest {
    DeviceRequest {
        vendor: "NVIDIA".into(),
        count,
        mem_mib: mem,
        mem_percent: None,
        cores,
    }
}

pub fn pct(count: u32, percent: u32, cores: u32) -> DeviceRequest {
    DeviceRequest {
        vendor: "NVIDIA".into(),
        count,
        mem_mib: 0,
        mem_percent: Some(percent),
        cores,
    }
}

pub fn pod(uid: &str, containers: Vec<(bool, Vec<DeviceRequest>)>, annotations: &[(&str, &str)]) -> PodRequest {
    PodRequest {
        uid: uid.into(),
        namespace: "default".into(),
        name: uid.into(),
        containers: containers
            .into_iter()
            .map(|(init, devices)| ContainerRequest { init, devices })
            .collect(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// One app container with one request.
pub fn simple(uid: &str, r: DeviceRequest) -> PodRequest {
    pod(uid, vec![(false, vec![r])], &[])
}

pub fn alloc(uid: &str, node: &str, containers: Vec<Vec<(&str, u64, u32)>>) -> PodAlloc {
    PodAlloc {
        uid: uid.into(),
        namespace: "default".into(),
        name: uid.into(),
        node: node.into(),
        containers: containers
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|(uuid, mem, cores)| AllocDevice {
                        uuid: uuid.into(),
                        vendor: "NVIDIA".into(),
                        usedmem: mem,
                        usedcores: cores,
                    })
                    .collect()
            })
            .collect(),
        init_count: 0,
        init_done: false,
        reserved_at: None,
        mig: Vec::new(),
    }
}

pub fn cluster(policy: &str, gpu_policy: &str) -> Cluster {
    Cluster::new(
        Vendors::default(),
        NodePolicy::parse(policy),
        GpuPolicy::parse(gpu_policy),
    )
}

pub fn uuids(r: &FilterResult) -> Vec<Vec<String>> {
    r.devices
        .iter()
        .map(|c| c.iter().map(|d| d.uuid.clone()).collect())
        .collect()
}

pub fn reason<'a>(r: &'a FilterResult, node: &str) -> &'a str {
    r.failed
        .iter()
        .find(|(n, _)| n == node)
        .map(|(_, s)| s.as_str())
        .unwrap_or("")
}
