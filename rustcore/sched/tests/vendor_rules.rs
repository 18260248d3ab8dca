//! Huawei Ascend and Cambricon through the public API (`hami-vendors.md` §1, §2): admission,
//! the request, the fit, usage from the allocation annotations and the annotations written at
//! filter time. Each HAMi bug fixed here is a test named `hami_bug_ascend_*`.

mod common;
use common::*;
use hami_sched::ascend::chart_chip;
use hami_sched::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

fn vendors() -> Vendors {
    let mut v = Vendors::default();
    for cw in [
        "Ascend910B3",
        "Ascend910B4",
        "Ascend910B4-1",
        "Ascend310P",
        "Ascend910C",
    ] {
        v.insert(Arc::new(chart_chip(cw).unwrap()));
    }
    v
}

fn ascend_cluster() -> Cluster {
    Cluster::new(vendors(), NodePolicy::Binpack, GpuPolicy::parse("spread"))
}

/// `n` NPUs as ADP registers them: 4 slots (65536 / 16384), the chip's memory and AI cores,
/// NetworkID 0 for list positions 0-3 and 1 from 4 on (910B); `mode` from the node's support.
fn npus(node: &str, cw: &str, n: u32, mode: DeviceMode) -> Vec<Device> {
    let (mem, core) = match cw {
        "Ascend310P" => (21527, 8),
        "Ascend910B4" => (32768, 20),
        _ => (65536, 20),
    };
    (0..n)
        .map(|i| {
            let mut d = Device::new(&format!("{node}-vdie-{i}"), cw, cw, 4, mem, core);
            d.index = i;
            d.mode = mode;
            if cw.starts_with("Ascend910") {
                let id = if cw == "Ascend910C" || i < 4 { 0 } else { 1 };
                d.custominfo = Some(json!({ "NetworkID": id }));
            }
            d
        })
        .collect()
}

fn npu_req(cw: &str, count: u32, mem: u64, cores: u32) -> DeviceRequest {
    DeviceRequest {
        vendor: cw.into(),
        count,
        mem_mib: mem,
        mem_percent: None,
        cores,
    }
}

fn annotation<'a>(r: &'a FilterResult, key: &str) -> &'a str {
    r.annotations
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

const SOFT: (&str, &str) = ("huawei.com/vnpu-mode", "hami-core");

#[test]
fn template_request_lands_with_hamis_runtime_annotation() {
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend910B3", 8, DeviceMode::Template), &vec![], &[]);
    let r = c
        .filter(
            &simple("p", npu_req("Ascend910B3", 1, 16384, 0)),
            &["n1"],
            true,
            1787293240.5,
        )
        .unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
    let id = &r.devices[0][0].uuid;
    assert_eq!(
        codec::encode_pod_devices(&r.devices).unwrap(),
        format!("{id},Ascend910B3,16384,0:;")
    );
    assert_eq!(
        annotation(&r, "huawei.com/Ascend910B3"),
        format!(r#"[{{"UUID":"{id}","temp":"vir05_1c_16g","memory":16384}}]"#)
    );
    assert_eq!(annotation(&r, "predicate-time"), "1787293240");
}

#[test]
fn soft_mode_needs_a_soft_node_and_writes_memory_and_core() {
    let c = ascend_cluster();
    c.set_node(
        "hard",
        npus("hard", "Ascend910B3", 8, DeviceMode::Template),
        &vec![],
        &[],
    );
    let p = pod("p", vec![(false, vec![npu_req("Ascend910B3", 1, 28672, 40)])], &[SOFT]);
    let r = c.filter(&p, &["hard"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "hard"), "1/8 ModeNotFit");
    let mut soft = npus("soft", "Ascend910B3", 8, DeviceMode::HamiCore);
    for d in &mut soft {
        d.devcore = 100; // ADP registers 100 in hami-core mode
    }
    c.set_node("soft", soft, &vec![], &[]);
    let r = c.filter(&p, &["hard", "soft"], true, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("soft"));
    let id = &r.devices[0][0].uuid;
    assert_eq!(
        annotation(&r, "huawei.com/Ascend910B3"),
        format!(r#"[{{"UUID":"{id}","memory":28672,"core":40}}]"#)
    );
    // a template pod may still land on a soft node (HAMi does not check the reverse)
    let r = c
        .filter(&simple("t", npu_req("Ascend910B3", 1, 16384, 0)), &["soft"], false, 0.0)
        .unwrap();
    assert_eq!(r.node.as_deref(), Some("soft"));
}

#[test]
fn template_sharing_is_bounded_by_slots_and_memory() {
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend910B3", 1, DeviceMode::Template), &vec![], &[]);
    for i in 0..4 {
        let r = c
            .filter(
                &simple(&format!("p{i}"), npu_req("Ascend910B3", 1, 16384, 0)),
                &["n1"],
                true,
                0.0,
            )
            .unwrap();
        assert_eq!(r.node.as_deref(), Some("n1"), "tenant {i}");
    }
    let r = c
        .filter(&simple("p4", npu_req("Ascend910B3", 1, 16384, 0)), &["n1"], false, 0.0)
        .unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardTimeSlicingExhausted");
    c.remove_pod("p3");
    let r = c
        .filter(&simple("big", npu_req("Ascend910B3", 1, 32768, 0)), &["n1"], false, 0.0)
        .unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardInsufficientMemory");
}

#[test]
fn several_910b_npus_come_from_one_network_group() {
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend910B3", 8, DeviceMode::Template), &vec![], &[]);
    // whole NPUs 0-2 taken: group 0 has one NPU left, group 1 four
    for i in 0..3 {
        let mut a = alloc(&format!("w{i}"), "n1", vec![vec![(&format!("n1-vdie-{i}"), 65536, 0)]]);
        a.containers[0][0].vendor = "Ascend910B3".into();
        c.upsert_pod(a);
    }
    let r = c
        .filter(&simple("p", npu_req("Ascend910B3", 2, 65536, 0)), &["n1"], false, 0.0)
        .unwrap();
    let mut got = uuids(&r)[0].clone();
    got.sort();
    let groups: Vec<bool> = got.iter().map(|u| u.ends_with(['4', '5', '6', '7'])).collect();
    assert_eq!(groups, vec![true, true], "{got:?}");
}

#[test]
fn several_910c_npus_are_whole_modules() {
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend910C", 4, DeviceMode::Template), &vec![], &[]);
    let mut a = alloc("x", "n1", vec![vec![("n1-vdie-1", 65536, 0)]]);
    a.containers[0][0].vendor = "Ascend910C".into();
    c.upsert_pod(a);
    let r = c
        .filter(&simple("p", npu_req("Ascend910C", 2, 65536, 0)), &["n1"], false, 0.0)
        .unwrap();
    let mut got = uuids(&r)[0].clone();
    got.sort();
    assert_eq!(got, vec!["n1-vdie-2", "n1-vdie-3"]);
    // NPU 0 fits, but its module partner is taken: only one whole module is left
    let r = c
        .filter(&simple("q", npu_req("Ascend910C", 4, 65536, 0)), &["n1"], false, 0.0)
        .unwrap();
    assert_eq!(
        reason(&r, "n1"),
        "1/4 CardInsufficientMemory, 3/4 AllocatedCardsInsufficientRequest"
    );
}

#[test]
fn usage_is_counted_from_the_allocation_annotation() {
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend310P", 1, DeviceMode::Template), &vec![], &[]);
    let text = "n1-vdie-0,Ascend310P,12288,0:;";
    let mut a = alloc("x", "n1", vec![]);
    a.containers = codec::decode_pod_devices(text).unwrap();
    c.upsert_pod(a);
    let u = c.usage();
    assert_eq!((u[0].usage.used, u[0].usage.usedmem), (1, 12288));
    let r = c
        .filter(&simple("p", npu_req("Ascend310P", 1, 12288, 0)), &["n1"], false, 0.0)
        .unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardInsufficientMemory");
}

#[test]
fn hami_bug_ascend_910b4_does_not_take_910b4_1_devices() {
    // HAMi matches the device type by substring, so a request of Ascend910B4 was offered the
    // NPUs of an Ascend910B4-1 node and written under a key that node's plugin never reads.
    let c = ascend_cluster();
    c.set_node("n1", npus("n1", "Ascend910B4-1", 8, DeviceMode::Template), &vec![], &[]);
    let r = c
        .filter(&simple("p", npu_req("Ascend910B4", 1, 8192, 0)), &["n1"], false, 0.0)
        .unwrap();
    assert_eq!(r.node, None);
    assert_eq!(reason(&r, "n1"), "1/0 NodeInsufficientDevice");
}

fn pod_json(annotations: Value, limits: Value) -> String {
    json!({"metadata": {"name": "p", "annotations": annotations},
           "spec": {"containers": [{"name": "main", "resources": {"limits": limits}}]}})
    .to_string()
}

#[test]
fn hami_bug_ascend_unadmitted_memory_not_rounded() {
    // HAMi charges the memory as written when the webhook was skipped (failurePolicy: Ignore),
    // while the runtime creates the template: 2000 MiB asked, a 16384 MiB vNPU made.
    let v = vendors();
    let text = pod_json(
        json!({}),
        json!({"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "2000"}),
    );
    let p = PodRequest::from_pod_json(&text, &v).unwrap();
    assert_eq!(p.containers[0].devices[0].mem_mib, 16384);
    let soft = pod_json(
        json!({"huawei.com/vnpu-mode": "hami-core"}),
        json!({"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "2000"}),
    );
    let p = PodRequest::from_pod_json(&soft, &v).unwrap();
    assert_eq!(p.containers[0].devices[0].mem_mib, 2000);
    let bare = pod_json(json!({}), json!({"huawei.com/Ascend910B3": "1"}));
    let d = &PodRequest::from_pod_json(&bare, &v).unwrap().containers[0].devices[0];
    assert_eq!((d.mem_mib, d.mem_percent, d.cores), (0, Some(100), 0));
}

fn admit_one(annotations: Value, limits: Value) -> Result<admit::PodAdmission> {
    let pod: Value = serde_json::from_str(&pod_json(annotations, limits)).unwrap();
    admit_pod(&pod, &vendors())
}

type Pairs = Vec<(String, String)>;

fn set(a: &admit::PodAdmission) -> (Pairs, Pairs) {
    (
        a.containers[0].added_limits.clone(),
        a.containers[0].set_requests.clone(),
    )
}

fn pairs(items: &[(&str, &str)]) -> Pairs {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn template_memory_is_rounded_as_hamis_webhook_table() {
    let mem = "huawei.com/Ascend910B3-memory";
    for (asked, resolved) in [
        (None, "65536"),
        (Some("2000"), "16384"),
        (Some("20000"), "32768"),
        (Some("40000"), "65536"),
    ] {
        let mut limits = json!({"huawei.com/Ascend910B3": "1"});
        if let Some(m) = asked {
            limits[mem] = json!(m);
        }
        let a = admit_one(json!({}), limits).unwrap();
        assert_eq!(
            set(&a),
            (pairs(&[(mem, resolved)]), pairs(&[(mem, resolved)])),
            "{asked:?}"
        );
        assert_eq!(a.containers[0].vendors, vec!["Ascend910B3"]);
    }
    let e = admit_one(json!({}), json!({"huawei.com/Ascend910B3": "1", mem: "70000"}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than one Ascend910B3 holds (65536)") && e.contains("16384, 32768"),
        "{e}"
    );
    let e = admit_one(json!({}), json!({"huawei.com/Ascend910B3": "2", mem: "16384"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a vNPU template cannot span several NPUs"), "{e}");
    let e = admit_one(
        json!({}),
        json!({"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-core": "40"}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("only supported in hami-core") && e.contains("huawei.com/vnpu-mode: hami-core"),
        "{e}"
    );
    let soft = admit_one(
        json!({"huawei.com/vnpu-mode": "hami-core"}),
        json!({"huawei.com/Ascend910B3": "1", mem: "28672", "huawei.com/Ascend910B3-core": "40"}),
    )
    .unwrap();
    assert_eq!(set(&soft).0, pairs(&[(mem, "28672")]));
    let d = &soft.request.containers[0].devices[0];
    assert_eq!((d.mem_mib, d.cores), (28672, 40));
}

#[test]
fn ascend_910c_rounds_one_to_a_module() {
    let a = admit_one(json!({}), json!({"huawei.com/Ascend910C": "1"})).unwrap();
    assert_eq!(
        set(&a).0,
        pairs(&[
            ("huawei.com/Ascend910C", "2"),
            ("huawei.com/Ascend910C-memory", "65536")
        ])
    );
    assert_eq!(a.request.containers[0].devices[0].count, 2);
    let e = admit_one(json!({}), json!({"huawei.com/Ascend910C": "3"}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("huawei.com/Ascend910C is 3") && e.contains("an even number"),
        "{e}"
    );
}

#[test]
fn hami_bug_ascend_910c_rounded_pair_cannot_carry_a_template() {
    // HAMi checks "one template on several NPUs" against the count as written (1), before it
    // rounds it to 2: its own example job-910C.yaml (1 NPU, 16384 MiB) became two NPUs each
    // asking the runtime for a template, which it can only make on one.
    let e = admit_one(
        json!({}),
        json!({"huawei.com/Ascend910C": "1", "huawei.com/Ascend910C-memory": "16384"}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("one 910C module, 2 NPUs") && e.contains("cannot span several NPUs"),
        "{e}"
    );
}

#[test]
fn hami_bug_ascend_requests_only_memory() {
    // HAMi reads the memory from the limits only and overwrites a value given in requests
    // alone with a whole NPU; it is honoured (rounded to its template) here.
    let pod = json!({"spec": {"containers": [{"name": "main", "resources": {
        "limits": {"huawei.com/Ascend910B3": "1"},
        "requests": {"huawei.com/Ascend910B3-memory": "8000"}}}]}});
    let a = admit_pod(&pod, &vendors()).unwrap();
    let mem = "huawei.com/Ascend910B3-memory";
    assert_eq!(set(&a), (pairs(&[(mem, "16384")]), pairs(&[(mem, "16384")])));
}

#[test]
fn cambricon_writes_hamis_profile_and_device_list() {
    let c = cluster("binpack", "spread");
    c.set_node(
        "node1",
        vendor::cambricon_devices("node1", &VendorSpec::cambricon(), 800, 768),
        &vec![],
        &[],
    );
    let text = r#"{"metadata":{"uid":"u","name":"p"},"spec":{"containers":[{"name":"c","resources":{"limits":
        {"cambricon.com/vmlu":"1","cambricon.com/mlu.smlu.vmemory":"20","cambricon.com/mlu.smlu.vcore":"10"}}}]}}"#;
    let p = PodRequest::from_pod_json(text, &Vendors::default()).unwrap();
    // pin device 0, the reference's example
    let mut p = p;
    p.annotations = BTreeMap::from([("cambricon.com/use-gpuuuid".into(), "node1-cambricon-mlu-0".into())]);
    let r = c.filter(&p, &["node1"], true, 0.0).unwrap();
    assert_eq!(
        codec::encode_pod_devices(&r.devices).unwrap(),
        "node1-cambricon-mlu-0,MLU,5120,10:;"
    );
    assert_eq!(annotation(&r, "CAMBRICON_DSMLU_ASSIGNED"), "false");
    assert_eq!(annotation(&r, "CAMBRICON_DSMLU_PROFILE"), "0_10_20");
}

#[test]
fn ascend_uuid_selectors_and_health_are_hamis() {
    let c = ascend_cluster();
    let mut devices = npus("n1", "Ascend910B3", 4, DeviceMode::Template);
    devices[0].health = false;
    c.set_node("n1", devices, &vec![], &[]);
    let chosen = |ann: &[(&str, &str)]| {
        let p = pod("p", vec![(false, vec![npu_req("Ascend910B3", 1, 16384, 0)])], ann);
        let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
        (uuids(&r), reason(&r, "n1").to_string())
    };
    // hami.io/use-<CW>-uuid: exactly these NPUs; an unhealthy one is CardNotHealth
    let (got, _) = chosen(&[("hami.io/use-Ascend910B3-uuid", "n1-vdie-2")]);
    assert_eq!(got, vec![vec!["n1-vdie-2".to_string()]]);
    let (got, why) = chosen(&[("hami.io/use-Ascend910B3-uuid", "n1-vdie-0")]);
    assert!(got.is_empty());
    assert_eq!(why, "1/4 CardNotHealth, 3/4 CardUuidMismatch");
    let (got, _) = chosen(&[("hami.io/no-use-Ascend910B3-uuid", "n1-vdie-1,n1-vdie-2,n1-vdie-3")]);
    assert!(got.is_empty());
}
