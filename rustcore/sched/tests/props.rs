//! Property tests: the fit never over-commits, selectors hold, results are deterministic, the
//! one-device fast path agrees with the general fit, and the codecs round-trip and never panic.

mod common;
use common::*;
use hami_sched::fit::{fit_node, score_single, PodPlan, QuotaRoom, Scratch};
use hami_sched::node::NodeInventory;
use hami_sched::table::NodeTotals;
use hami_sched::*;
use proptest::prelude::*;

fn arb_device(node: usize, i: usize) -> impl Strategy<Value = Device> {
    (
        1u32..6,
        1024u64..32768,
        prop_oneof![Just(100u32), Just(200u32)],
        0i32..2,
        any::<bool>(),
        0u8..10,
    )
        .prop_map(move |(count, mem, core, numa, model_a, health)| {
            let mut d = gpu(&format!("n{node}-g{i}"), i as u32, count, mem, numa);
            d.devcore = core;
            d.type_ = if model_a {
                "NVIDIA-A100".into()
            } else {
                "NVIDIA-V100".into()
            };
            d.health = health > 0;
            d
        })
}

fn arb_nodes() -> impl Strategy<Value = Vec<Vec<Device>>> {
    (1usize..5).prop_flat_map(|n| {
        (0..n)
            .map(|node| (1usize..5).prop_flat_map(move |k| (0..k).map(|i| arb_device(node, i)).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    })
}

fn arb_request() -> impl Strategy<Value = DeviceRequest> {
    (
        1u32..4,
        prop_oneof![Just(0u64), 256u64..20000],
        prop::option::of(1u32..=100),
        prop_oneof![Just(0u32), 1u32..=100, Just(100u32)],
    )
        .prop_map(|(count, mem, pctv, cores)| DeviceRequest {
            vendor: "NVIDIA".into(),
            count,
            mem_mib: mem,
            mem_percent: if mem == 0 { Some(pctv.unwrap_or(100)) } else { None },
            cores,
        })
}

fn arb_annotations() -> impl Strategy<Value = Vec<(String, String)>> {
    let policy = prop_oneof![
        Just("spread"),
        Just("binpack"),
        Just("binpack,numa"),
        Just("topology-aware"),
        Just("mutex")
    ];
    (
        policy,
        any::<bool>(),
        prop_oneof![Just(""), Just("a100"), Just("v100")],
        prop_oneof![Just(""), Just("n0-g0"), Just("n1-g1")],
    )
        .prop_map(|(p, numa, ty, nouse)| {
            let mut a = vec![("hami.io/gpu-scheduler-policy".to_string(), p.to_string())];
            if numa {
                a.push(("nvidia.com/numa-bind".into(), "true".into()));
            }
            if !ty.is_empty() {
                a.push(("nvidia.com/use-gputype".into(), ty.into()));
            }
            if !nouse.is_empty() {
                a.push(("nvidia.com/nouse-gpuuuid".into(), nouse.into()));
            }
            a
        })
}

fn arb_pod(uid: String) -> impl Strategy<Value = PodRequest> {
    (
        prop::collection::vec((any::<bool>(), arb_request()), 1..4),
        arb_annotations(),
    )
        .prop_map(move |(cs, ann)| {
            // Init containers first, as in a pod spec.
            let mut cs = cs;
            cs.sort_by_key(|(init, _)| !*init);
            let refs: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            pod(&uid, cs.into_iter().map(|(init, r)| (init, vec![r])).collect(), &refs)
        })
}

fn build(nodes: &[Vec<Device>]) -> (Cluster, Vec<String>) {
    let c = cluster("binpack", "spread");
    let names: Vec<String> = (0..nodes.len()).map(|i| format!("n{i}")).collect();
    for (i, devs) in nodes.iter().enumerate() {
        c.set_node(&names[i], devs.clone(), &vec![], &[]);
    }
    (c, names)
}

fn assert_no_overcommit(c: &Cluster) {
    for u in c.usage() {
        assert!(
            u.usage.used <= u.device.count,
            "slots over-committed on {}: {:?}",
            u.device.id,
            u.usage
        );
        assert!(
            u.usage.usedmem <= u.device.devmem,
            "memory over-committed on {}: {:?}",
            u.device.id,
            u.usage
        );
        assert!(
            u.usage.usedcores <= u.device.devcore,
            "cores over-committed on {}: {:?}",
            u.device.id,
            u.usage
        );
    }
}

/// The knobs of one listed pod that decide its class in the state load.
#[derive(Debug, Clone)]
struct ListedPod {
    uid: bool,
    name: bool,
    namespace: Option<&'static str>,
    phase: Option<&'static str>,
    node_annotation: Option<&'static str>,
    node_name: Option<&'static str>,
    init: Option<usize>,
    nvidia: Option<&'static str>,
    mlu: Option<&'static str>,
    reserved: bool,
}

fn arb_listed_pod() -> impl Strategy<Value = ListedPod> {
    let some = |v: &'static [&'static str]| prop::option::of(prop::sample::select(v.to_vec()));
    (
        (any::<u8>(), any::<u8>(), some(&["", "ns"])),
        some(&["Running", "Pending", "Succeeded", "Failed"]),
        (some(&["", "n1"]), some(&["", "n1"]), prop::option::of(0usize..3)),
        (
            some(&["", "g0,NVIDIA,100,10:;", "g0,NVIDIA,x,10:;"]),
            some(&["", "m0,MLU,256,10:;"]),
        ),
        0u8..8,
    )
        .prop_map(
            |((uid, name, namespace), phase, (node_annotation, node_name, init), (nvidia, mlu), reserved)| ListedPod {
                uid: uid > 16,
                name: name > 16,
                namespace,
                phase,
                node_annotation,
                node_name,
                init,
                nvidia,
                mlu,
                reserved: reserved == 0,
            },
        )
}

fn listed_pod_json(i: usize, p: &ListedPod) -> serde_json::Value {
    let mut ann = serde_json::Map::new();
    for (key, value) in [
        ("hami.io/vgpu-node", p.node_annotation),
        ("hami.io/vgpu-devices-allocated", p.nvidia),
        ("hami.io/cambricon-mlu-devices-allocated", p.mlu),
    ] {
        if let Some(v) = value {
            ann.insert(key.into(), v.into());
        }
    }
    let mut meta = serde_json::json!({"annotations": ann, "labels": {"a": "b"}});
    if p.uid {
        meta["uid"] = format!("u{i}").into();
    }
    if p.name {
        meta["name"] = format!("p{i}").into();
    }
    if let Some(ns) = p.namespace {
        meta["namespace"] = ns.into();
    }
    let mut spec = serde_json::json!({"containers": [{"name": "c"}]});
    if let Some(n) = p.node_name {
        spec["nodeName"] = n.into();
    }
    if let Some(k) = p.init {
        spec["initContainers"] = (0..k).map(|c| serde_json::json!({"name": format!("i{c}")})).collect();
    }
    let mut pod = serde_json::json!({"metadata": meta, "spec": spec});
    if let Some(phase) = p.phase {
        pod["status"] = serde_json::json!({"phase": phase});
    }
    pod
}

/// The class the extender's per-pod rules (`PodBatch.add`, `bulk_row`) give a pod.
fn expected_class(p: &ListedPod) -> &'static str {
    let set = |v: Option<&str>| v.is_some_and(|s| !s.is_empty());
    if !p.uid {
        return "skipped";
    }
    if matches!(p.phase, Some("Succeeded" | "Failed")) {
        return "finished";
    }
    let texts = [p.nvidia, p.mlu].into_iter().filter(|t| set(*t)).count();
    if p.reserved || !set(p.node_annotation) || !set(p.node_name) || p.init.unwrap_or(0) > 0 || texts != 1 || !p.name {
        return "other";
    }
    if set(p.nvidia) && p.nvidia.unwrap().contains(",x,") {
        "invalid"
    } else {
        "placed"
    }
}

/// A reserving filter answers, or refuses a pod that is already bound and leaves it as it was.
fn expect_answer_or_bound(
    c: &Cluster,
    p: &PodRequest,
    r: hami_sched::Result<hami_sched::FilterResult>,
) -> std::result::Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(hami_sched::Error::AlreadyBound { .. }) => {
            let held = c.pod(&p.uid);
            prop_assert!(
                held.is_some_and(|a| a.reserved_at.is_none()),
                "AlreadyBound for a pod that is not bound"
            );
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("filter failed: {e}"))),
    }
}

/// The nodes with `pods` reserved on them, then the nodes marked busy as `busy` says (in order).
fn reserved(nodes: &[Vec<Device>], pods: Vec<PodRequest>, busy: &[bool]) -> (Cluster, Vec<String>) {
    let (c, names) = build(nodes);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for (i, mut q) in pods.into_iter().enumerate() {
        q.uid = format!("pod-{i}");
        let _ = c.filter(&q, &refs, true, 0.0).unwrap();
    }
    for (name, b) in names.iter().zip(busy) {
        c.set_node_busy(name, *b);
    }
    (c, names)
}

const IDLE: Burst = Burst {
    prefer_idle: true,
    backlog: 0,
    window: 0,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn reservations_never_over_commit(nodes in arb_nodes(), pods in prop::collection::vec((arb_pod(String::new()), 0u8..10), 1..25)) {
        let (c, names) = build(&nodes);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for (i, (p, action)) in pods.into_iter().enumerate() {
            let mut p = p;
            p.uid = format!("pod-{}", i % 7);
            match action {
                // Some pods go away, some nodes are re-registered, reservations are bound or
                // expire, locks come and go: usage and the in-flight counts must follow.
                0 => { c.remove_pod(&p.uid); }
                1 => c.set_node(&names[i % names.len()], nodes[i % names.len()].clone(), &vec![], &[]),
                2 => { c.mark_bound(&p.uid); }
                3 => { c.release_expired(i as f64, 3.0); }
                4 => { c.set_node_busy(&names[i % names.len()], i % 2 == 0); }
                // A pod already bound is refused (its devices stay its own); anything else
                // must answer.
                5 => expect_answer_or_bound(&c, &p, c.filter_with(&p, &refs, true, i as f64, IDLE))?,
                6 => {
                    let burst = Burst { prefer_idle: false, backlog: (i % 6) as u32, window: 3 };
                    expect_answer_or_bound(&c, &p, c.filter_with(&p, &refs, true, i as f64, burst))?
                }
                _ => expect_answer_or_bound(&c, &p, c.filter(&p, &refs, true, i as f64))?,
            }
            assert_no_overcommit(&c);
            prop_assert_eq!(c.check_invariants(), Ok(()));
        }
    }

    #[test]
    fn prefer_idle_picks_a_fitting_node_with_the_fewest_in_flight(
        nodes in arb_nodes(), pods in prop::collection::vec(arb_pod(String::new()), 1..12),
        busy in prop::collection::vec(any::<bool>(), 6), p in arb_pod("probe".into()),
    ) {
        let (c, names) = reserved(&nodes, pods, &busy);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let plain = c.filter(&p, &refs, false, 0.0).unwrap();
        let idle = c.filter_with(&p, &refs, false, 0.0, IDLE).unwrap();
        // The same nodes fit and fail either way; only the choice among fitting ones differs.
        prop_assert_eq!(plain.node.is_some(), idle.node.is_some());
        prop_assert_eq!(&plain.failed, &idle.failed);
        if let Some(chosen) = idle.node {
            let failed: Vec<&str> = idle.failed.iter().map(|(n, _)| n.as_str()).collect();
            let least = refs.iter().filter(|n| !failed.contains(n)).map(|n| c.in_flight(n)).min();
            prop_assert_eq!(Some(c.in_flight(&chosen)), least);
        }
    }

    #[test]
    fn a_windowed_burst_stays_on_the_nodes_packing_fills_next(
        nodes in arb_nodes(), pods in prop::collection::vec(arb_pod(String::new()), 1..12),
        busy in prop::collection::vec(any::<bool>(), 6), p in arb_pod("probe".into()),
        backlog in 0u32..20, window in 0u32..5,
    ) {
        let (c, names) = reserved(&nodes, pods, &busy);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let plain = c.filter(&p, &refs, false, 0.0).unwrap();
        let burst = Burst { prefer_idle: false, backlog, window };
        let win = c.filter_with(&p, &refs, false, 0.0, burst).unwrap();
        // The same nodes fit and fail either way; only the choice among fitting ones differs.
        prop_assert_eq!(plain.node.is_some(), win.node.is_some());
        prop_assert_eq!(&plain.failed, &win.failed);
        let Some(chosen) = win.node else { return Ok(()) };
        let policy = p.annotations.get("hami.io/node-scheduler-policy").map_or("binpack", String::as_str);
        if backlog == 0 || window <= 1 || policy != "binpack" {
            prop_assert_eq!(Some(&chosen), plain.node.as_ref(), "no window: the policy alone");
            return Ok(());
        }
        // Binpack's order of the fitting nodes (fullest first, then by name): the chosen node is
        // among the first `window`, and has no more allocations in flight than packing's pick.
        let mut ranked: Vec<(f64, &str)> = refs
            .iter()
            .filter_map(|n| c.filter(&p, &[n], false, 0.0).unwrap().node.map(|_| n))
            .map(|n| (c.filter(&p, &[n], false, 0.0).unwrap().score, *n))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        prop_assert_eq!(Some(ranked[0].1), plain.node.as_deref());
        let rank = ranked.iter().position(|(_, n)| *n == chosen).unwrap();
        prop_assert!(rank < window as usize, "rank {} outside a window of {}", rank, window);
        prop_assert!(c.in_flight(&chosen) <= c.in_flight(ranked[0].1));
    }

    #[test]
    fn chosen_devices_respect_every_selector(nodes in arb_nodes(), p in arb_pod("p".into())) {
        let (c, names) = build(&nodes);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = c.filter(&p, &refs, false, 0.0).unwrap();
        let Some(node) = r.node.clone() else { return Ok(()) };
        let idx: usize = node[1..].parse().unwrap();
        let devs = &nodes[idx];
        let sel = Selectors::from_annotations(&VendorSpec::nvidia(), &p.annotations);
        for (ci, chosen) in r.devices.iter().enumerate() {
            let want: u32 = p.containers[ci].devices.iter().map(|d| d.count).sum();
            prop_assert_eq!(chosen.len() as u32, want);
            let mut numas = std::collections::BTreeSet::new();
            let mut seen = std::collections::BTreeSet::new();
            for a in chosen {
                let d = devs.iter().find(|d| d.id == a.uuid).unwrap();
                prop_assert!(d.health);
                prop_assert!(seen.insert(&a.uuid), "a container got the same device twice");
                prop_assert!(sel.use_types.is_empty() || sel.use_types.iter().any(|t| d.type_.to_lowercase().contains(t.as_str())));
                prop_assert!(!sel.nouse_uuids.contains(&d.id));
                numas.insert(d.numa);
            }
            if sel.numa_bind {
                prop_assert!(numas.len() <= 1, "numa-bind spread over {:?}", numas);
            }
        }
    }

    #[test]
    fn results_are_deterministic_and_ignore_candidate_order(nodes in arb_nodes(), p in arb_pod("p".into()), seed in any::<u64>()) {
        let (c, names) = build(&nodes);
        let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let a = c.filter(&p, &refs, false, 0.0).unwrap();
        let k = (seed as usize) % refs.len();
        refs.rotate_left(k);
        refs.reverse();
        let b = c.filter(&p, &refs, false, 0.0).unwrap();
        prop_assert_eq!(a.node, b.node);
        prop_assert_eq!(a.devices, b.devices);
        let mut fa = a.failed.clone();
        let mut fb = b.failed.clone();
        fa.sort();
        fb.sort();
        prop_assert_eq!(fa, fb);
    }

    #[test]
    fn single_device_fast_path_agrees_with_the_general_fit(devs in (1usize..6).prop_flat_map(|k| (0..k).map(|i| arb_device(0, i)).collect::<Vec<_>>()),
                                                            r in arb_request(), used in prop::collection::vec((0u32..3, 0u64..20000, 0u32..100), 6),
                                                            policy in prop_oneof![Just("spread"), Just("binpack"), Just("mutex"), Just("binpack,numa")]) {
        let mut r = r;
        r.count = 1;
        let p = pod("p", vec![(false, vec![r])], &[("hami.io/gpu-scheduler-policy", policy)]);
        let vendors = Vendors::default();
        let plan = PodPlan::new(&p, &vendors, NodePolicy::Binpack, &GpuPolicy::default(), |_| QuotaRoom::default()).unwrap();
        let (inv, hot) = NodeInventory::new("n", devs.clone(), &vec![], &[], &vendors);
        let usage: Vec<Usage> = devs.iter().zip(&used).map(|(d, (u, m, c))| Usage::new((*u).min(d.count), (*m).min(d.devmem), (*c).min(d.devcore))).collect();
        let general = fit_node(&inv, &hot, &usage, &plan, &mut Scratch::default(), true);
        let (vi, req) = plan.single().expect("a one-device plan");
        // Walking every device: the same device as the general fit. With the node's totals: the
        // same score (the walk may stop at the first fitting device).
        let walked = score_single(Some(&inv), &hot, &usage, None, &plan, vi, req);
        let totals = NodeTotals::of(&hot, &usage);
        let first_fit = score_single(Some(&inv), &hot, &usage, Some(totals), &plan, vi, req);
        match (general, walked, first_fit) {
            (Ok(g), Ok((score, device)), Ok((score2, _))) => {
                prop_assert!((g.score - score).abs() < 1e-9, "{} != {}", g.score, score);
                prop_assert!((g.score - score2).abs() < 1e-9, "{} != {}", g.score, score2);
                prop_assert_eq!(g.containers[0][0].device, device);
            }
            (Err(g), Err(f), Err(f2)) => {
                prop_assert_eq!(&g.summary, &f.summary);
                prop_assert_eq!(&g.summary, &f2.summary);
            }
            (g, f, f2) => prop_assert!(false, "general {:?}, walked {:?}, first-fit {:?}", g.map(|x| x.score), f.map(|x| x.0), f2.map(|x| x.0)),
        }
    }

    #[test]
    fn node_register_round_trips(devs in prop::collection::vec(arb_device(0, 0), 0..6), custom in any::<bool>()) {
        let devs: Vec<Device> = devs.into_iter().enumerate().map(|(i, mut d)| {
            d.id = format!("GPU-{i}<&>\"x");
            d.index = i as u32;
            if custom { d.custominfo = Some(serde_json::json!({"NetworkID": i})); }
            d
        }).collect();
        let text = codec::encode_node_devices(&devs);
        prop_assert_eq!(codec::decode_node_devices(&text, "NVIDIA").unwrap(), devs.clone());
        let plain: Vec<Device> = devs.into_iter().map(|mut d| { d.id = d.id.replace([',', ':'], ""); d.custominfo = None; d }).collect();
        let legacy = codec::encode_node_devices_legacy(&plain);
        prop_assert_eq!(codec::decode_node_devices_legacy(&legacy, "NVIDIA").unwrap(), plain);
    }

    #[test]
    fn pod_devices_round_trip(cs in prop::collection::vec(prop::collection::vec(("[A-Za-z0-9-]{1,12}", 0u64..100000, 0u32..200), 0..4), 0..5)) {
        let pd: PodDevices = cs.into_iter().map(|c| c.into_iter().map(|(u, m, k)| AllocDevice { uuid: u, vendor: "NVIDIA".into(), usedmem: m, usedcores: k }).collect()).collect();
        let text = codec::encode_pod_devices(&pd).unwrap();
        prop_assert_eq!(codec::decode_pod_devices(&text).unwrap(), pd);
    }

    #[test]
    fn pair_scores_round_trip(entries in prop::collection::btree_map("[a-z]{1,6}", prop::collection::btree_map("[a-z]{1,6}", -5i64..1000, 0..4), 0..4)) {
        let scores: codec::PairScores = entries.into_iter().collect();
        let text = codec::encode_pair_scores(&scores);
        prop_assert_eq!(codec::decode_pair_scores(&text).unwrap(), scores);
    }

    #[test]
    fn mig_allocations_round_trip(items in prop::collection::vec((0u32..4, "GPU-[a-z]{1,4}", "[1-7]g\\.[0-9]{1,3}gb", 0u8..8, 1u8..9, prop::option::of(("MIG-[a-z0-9]{1,6}", 0u32..15, 0u32..8))), 0..6)) {
        let allocs: Vec<codec::MigAlloc> = items.into_iter().enumerate().filter(|(_, i)| u32::from(i.3) + u32::from(i.4) <= 8).map(|(d, (container, gpu_uuid, profile, start, size, rt))| codec::MigAlloc {
            container, device: d as u32, gpu_uuid, profile, start, size,
            runtime: rt.map(|(mig_uuid, gpu_instance_id, compute_instance_id)| codec::MigRuntime { mig_uuid, gpu_instance_id, compute_instance_id }),
        }).collect();
        let text = codec::encode_mig_allocations(&allocs);
        prop_assert_eq!(codec::decode_mig_allocations(&text).unwrap(), allocs);
    }

    #[test]
    fn ascend_runtime_round_trips(items in prop::collection::vec(("[a-z0-9<&-]{1,12}", "[a-z0-9_]{0,12}", 0u64..100_000, 0u32..101), 0..6)) {
        let items: Vec<codec::RuntimeInfo> = items.into_iter().map(|(uuid, temp, memory, core)| codec::RuntimeInfo { uuid, temp, memory, core }).collect();
        let text = codec::encode_ascend_runtime(&items);
        prop_assert_eq!(codec::decode_ascend_runtime(&text).unwrap(), items.clone());
        let go: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(go.as_array().unwrap().len(), items.len());
    }

    #[test]
    fn ascend_admission_never_panics(count in "[0-9]{1,3}|-1|1.5|x", mem in "[0-9]{1,6}|[0-9]Gi|-3", core in "[0-9]{1,3}", soft in any::<bool>(), cw in prop::sample::select(vec!["Ascend910B3", "Ascend910C", "Ascend310P"])) {
        let mut ann = serde_json::Map::new();
        if soft {
            ann.insert("huawei.com/vnpu-mode".into(), "hami-core".into());
        }
        let pod = serde_json::json!({"metadata": {"annotations": ann}, "spec": {"containers": [{"name": "c", "resources": {"limits": {
            format!("huawei.com/{cw}"): count, format!("huawei.com/{cw}-memory"): mem, format!("huawei.com/{cw}-core"): core}}}]}});
        if let Ok(a) = hami_sched::admit_pod(&pod, &ascend_vendors()) {
            // what admission accepts, the request model takes, with at most one NPU's memory each
            for d in a.request.containers.iter().flat_map(|c| &c.devices) {
                prop_assert!(d.mem_mib <= 65536 || soft, "{:?}", d);
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_random_input(bytes in prop::collection::vec(any::<u8>(), 0..200), s in "[\\[\\]{}\":,;0-9a-z-]{0,80}") {
        let text = String::from_utf8_lossy(&bytes);
        for t in [text.as_ref(), s.as_str()] {
            let _ = codec::decode_node_devices(t, "NVIDIA");
            let _ = codec::decode_node_devices_legacy(t, "DCU");
            let _ = codec::decode_pod_devices(t);
            let _ = codec::decode_pair_scores(t);
            let _ = codec::decode_ascend_runtime(t);
            let _ = codec::decode_mig_allocations(t);
            let _ = Weights::parse(t);
            let _ = PodRequest::from_pod_json(t, &Vendors::default());
            if let Ok(pod) = hami_sched::request::parse_pod_json(t) {
                let _ = hami_sched::admit_pod(&pod, &Vendors::default());
                let _ = hami_sched::admit_pod(&pod, &ascend_vendors());
            }
            let _ = quantity::parse_quantity("x", t);
            let _ = codec::decode_extender_args(t.as_bytes());
            let _ = podlist::decode_pod_page(t.as_bytes(), &Vendors::default(), &|_| false);
            let page = format!(r#"{{"metadata":{{"continue":"x"}},"items":[{t}]}}"#);
            let _ = podlist::decode_pod_page(page.as_bytes(), &Vendors::default(), &|_| true);
        }
        let _ = codec::decode_extender_args(&bytes);
        let _ = podlist::decode_pod_page(&bytes, &Vendors::default(), &|_| false);
    }

    #[test]
    fn pod_page_classes_follow_the_per_pod_rules(pods in prop::collection::vec(arb_listed_pod(), 0..30)) {
        let items: Vec<serde_json::Value> = pods.iter().enumerate().map(|(i, p)| listed_pod_json(i, p)).collect();
        let page = serde_json::json!({"kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": items}).to_string();
        let reserved: Vec<String> = pods.iter().enumerate().filter(|(_, p)| p.reserved).map(|(i, _)| format!("u{i}")).collect();
        let got = podlist::decode_pod_page(page.as_bytes(), &Vendors::default(), &|uid| reserved.iter().any(|r| r == uid)).unwrap();
        let mut classes = std::collections::BTreeMap::new();
        for p in &got.placed {
            classes.insert(p.uid.clone(), "placed");
            let listed = &pods[p.uid[1..].parse::<usize>().unwrap()];
            prop_assert_eq!(p.namespace.as_str(), if listed.namespace == Some("ns") { "ns" } else { "default" });
            prop_assert_eq!((p.node.as_str(), p.reserved_at, p.init_count), ("n1", None, 0));
        }
        for uid in &got.finished {
            classes.insert(uid.clone(), "finished");
        }
        for p in &got.invalid {
            classes.insert(p.uid.clone(), "invalid");
        }
        for text in &got.others {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            classes.insert(v["metadata"]["uid"].as_str().unwrap().to_string(), "other");
        }
        for (i, p) in pods.iter().enumerate() {
            let want = expected_class(p);
            let got = classes.get(&format!("u{i}")).copied().unwrap_or("skipped");
            prop_assert_eq!(got, want, "{:?}", p);
        }
        prop_assert_eq!(got.resource_version, "9");
    }
}

fn ascend_vendors() -> Vendors {
    let mut v = Vendors::default();
    for cw in ["Ascend910B3", "Ascend910C", "Ascend310P"] {
        v.insert(std::sync::Arc::new(hami_sched::ascend::chart_chip(cw).unwrap()));
    }
    v
}
