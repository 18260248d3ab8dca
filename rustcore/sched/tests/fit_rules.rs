//! HAMi's NVIDIA fit rules (`hami-control-plane.md` §4, §5), one behaviour per test, through
//! the public `Cluster::filter`.

mod common;
use common::*;
use hami_sched::*;

#[test]
fn one_gpu_3000mib_30pct_lands_and_reserves() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16384), &vec![], &[]);
    let r = c.filter(&simple("p", req(1, 3000, 30)), &["n1"], true, 100.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0][0].usedmem, 3000);
    assert_eq!(r.devices[0][0].usedcores, 30);
    assert_eq!(
        codec::encode_pod_devices(&r.devices).unwrap(),
        format!("{},NVIDIA,3000,30:;", r.devices[0][0].uuid)
    );
    let used: u64 = c.usage().iter().map(|u| u.usage.usedmem).sum();
    assert_eq!(used, 3000);
    assert_eq!(c.pod("p").unwrap().reserved_at, Some(100.0));
}

#[test]
fn reason_summary_counts_each_device_once() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 4, 1, 16384), &vec![], &[]);
    c.upsert_pods(vec![
        alloc("a", "n1", vec![vec![("n1-g0", 100, 0)]]),
        alloc("b", "n1", vec![vec![("n1-g1", 100, 0)]]),
        alloc("c", "n1", vec![vec![("n1-g2", 100, 0)]]),
    ]);
    let r = c.filter(&simple("p", req(1, 20000, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(r.node, None);
    assert_eq!(
        reason(&r, "n1"),
        "1/4 CardInsufficientMemory, 3/4 CardTimeSlicingExhausted"
    );
    assert_eq!(r.reason_counts.get(Reason::CardTimeSlicingExhausted), 3);
}

#[test]
fn memory_by_percentage_is_a_share_of_each_device() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16384), &vec![], &[]);
    let r = c.filter(&simple("p", pct(1, 50, 0)), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.devices[0][0].usedmem, 8192);
    let r = c.filter(&simple("q", pct(1, 60, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardInsufficientMemory");
}

#[test]
fn exclusive_cores_need_an_idle_device() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16384), &vec![], &[]);
    // A zero-core tenant holds a slot: an exclusive (100-core) request may not share.
    c.upsert_pod(alloc("zero", "n1", vec![vec![("n1-g0", 1000, 0)]]));
    let r = c.filter(&simple("ex", req(1, 1000, 100)), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 ExclusiveDeviceAllocateConflict");
    // An exclusive tenant: a zero-core request finds the compute units exhausted.
    c.remove_pod("zero");
    c.upsert_pod(alloc("whole", "n1", vec![vec![("n1-g0", 1000, 100)]]));
    let r = c.filter(&simple("z", req(1, 1000, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardComputeUnitsExhausted");
    let r = c.filter(&simple("c", req(1, 1000, 10)), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardInsufficientCore");
}

#[test]
fn cores_above_100_are_clamped() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16384), &vec![], &[]);
    let r = c.filter(&simple("p", req(1, 100, 250)), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.devices[0][0].usedcores, 100);
}

#[test]
fn split_slots_limit_tenants() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 2, 16384), &vec![], &[]);
    for uid in ["a", "b"] {
        assert!(c
            .filter(&simple(uid, req(1, 100, 1)), &["n1"], true, 0.0)
            .unwrap()
            .node
            .is_some());
    }
    let r = c.filter(&simple("c", req(1, 100, 1)), &["n1"], true, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardTimeSlicingExhausted");
}

#[test]
fn type_selectors_are_case_insensitive_substrings() {
    let c = cluster("binpack", "spread");
    let mut a100 = gpu("a100", 0, 10, 40960, 0);
    a100.type_ = "NVIDIA-A100-SXM4-40GB".into();
    c.set_node("n1", vec![gpu("v100", 0, 10, 32768, 0)], &vec![], &[]);
    c.set_node("n2", vec![a100], &vec![], &[]);
    let p = pod(
        "p",
        vec![(false, vec![req(1, 1000, 0)])],
        &[("nvidia.com/use-gputype", "a100")],
    );
    let r = c.filter(&p, &["n1", "n2"], false, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n2"));
    assert_eq!(reason(&r, "n1"), "1/1 CardTypeMismatch");
    let p = pod(
        "q",
        vec![(false, vec![req(1, 1000, 0)])],
        &[("nvidia.com/nouse-gputype", "V100,A100")],
    );
    let r = c.filter(&p, &["n1", "n2"], false, 0.0).unwrap();
    assert_eq!(r.node, None);
}

#[test]
fn uuid_selectors_are_exact() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16384), &vec![], &[]);
    let p = pod(
        "p",
        vec![(false, vec![req(1, 1000, 0)])],
        &[("nvidia.com/nouse-gpuuuid", "n1-g0")],
    );
    assert_eq!(uuids(&c.filter(&p, &["n1"], false, 0.0).unwrap()), vec![vec!["n1-g1"]]);
    let p = pod(
        "q",
        vec![(false, vec![req(1, 1000, 0)])],
        &[("nvidia.com/use-gpuuuid", "n1-g")],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "2/2 CardUuidMismatch");
}

#[test]
fn vgpu_mode_selector_must_contain_the_device_mode() {
    let c = cluster("binpack", "spread");
    let mut mig = gpu("mig", 0, 7, 40960, 0);
    mig.mode = DeviceMode::Mig;
    c.set_node("n1", vec![mig], &vec![], &[]);
    let p = pod(
        "p",
        vec![(false, vec![req(1, 1000, 0)])],
        &[("nvidia.com/vgpu-mode", "hami-core")],
    );
    assert_eq!(
        reason(&c.filter(&p, &["n1"], false, 0.0).unwrap(), "n1"),
        "1/1 CardTypeMismatch"
    );
}

#[test]
fn unhealthy_and_cordoned_devices_are_skipped() {
    let c = cluster("binpack", "spread");
    let mut devs = node_gpus("n1", 3, 10, 16384);
    devs[0].health = false;
    c.set_node("n1", devs, &vec![], &["n1-g1".to_string()]);
    let r = c.filter(&simple("p", req(1, 1000, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(uuids(&r), vec![vec!["n1-g2"]]);
    let r = c.filter(&simple("p", req(2, 1000, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(
        reason(&r, "n1"),
        "1/3 AllocatedCardsInsufficientRequest, 1/3 CardCordoned, 1/3 CardNotHealth"
    );
}

#[test]
fn more_devices_than_the_node_has() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16384), &vec![], &[]);
    let r = c
        .filter(&simple("p", req(3, 1000, 0)), &["n1", "ghost"], false, 0.0)
        .unwrap();
    assert_eq!(reason(&r, "n1"), "3/2 NodeInsufficientDevice");
    assert_eq!(reason(&r, "ghost"), "node unregistered");
}

#[test]
fn numa_bind_takes_all_devices_from_one_numa_node() {
    let c = cluster("binpack", "spread");
    let devs = vec![
        gpu("a0", 0, 10, 16384, 0),
        gpu("a1", 1, 10, 16384, 0),
        gpu("b0", 2, 10, 16384, 1),
        gpu("b1", 3, 10, 16384, 1),
    ];
    c.set_node("n1", devs, &vec![], &[]);
    c.upsert_pod(alloc("x", "n1", vec![vec![("a0", 16000, 0)]]));
    let p = pod(
        "p",
        vec![(false, vec![req(2, 1000, 0)])],
        &[("nvidia.com/numa-bind", "true")],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    let mut got = uuids(&r)[0].clone();
    got.sort();
    assert_eq!(got, vec!["b0", "b1"]);
    // Without numa-bind, spread takes the two emptiest, across NUMA nodes.
    let r = c.filter(&simple("q", req(3, 300, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(r.devices[0].len(), 3);
    // Three devices on one NUMA node do not exist.
    let p = pod(
        "r",
        vec![(false, vec![req(3, 100, 0)])],
        &[("nvidia.com/numa-bind", "true")],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    assert!(reason(&r, "n1").contains("NumaNotFit"), "{}", reason(&r, "n1"));
}

#[test]
fn init_containers_fit_independently_and_count_at_their_peak() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16000), &vec![], &[]);
    // init 10000 then app 12000: each fits alone; together they would not.
    let p = pod(
        "p",
        vec![(true, vec![req(1, 10000, 0)]), (false, vec![req(1, 12000, 0)])],
        &[],
    );
    let r = c.filter(&p, &["n1"], true, 0.0).unwrap();
    assert_eq!(r.devices.len(), 2);
    let u = &c.usage()[0].usage;
    assert_eq!((u.usedmem, u.used), (12000, 1));
    // Two app containers are cumulative.
    let p = pod(
        "q",
        vec![(false, vec![req(1, 3000, 0)]), (false, vec![req(1, 3000, 0)])],
        &[],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardInsufficientMemory");
}

#[test]
fn collapse_counts_app_containers_sharing_a_device_as_slots() {
    let mut p = alloc(
        "p",
        "n1",
        vec![vec![("g", 5000, 10)], vec![("g", 1000, 5)], vec![("g", 2000, 5)]],
    );
    p.init_count = 1;
    let c = p.collapsed();
    // (Two holders without a MIG reservation: only a MIG-mode GPU minds.)
    let held = |mem| Usage {
        unreserved: 2,
        ..Usage::new(2, mem, 10)
    };
    assert_eq!(c, vec![("g".to_string(), held(5000))]);
    p.init_done = true;
    assert_eq!(p.collapsed(), vec![("g".to_string(), held(3000))]);
}

#[test]
fn hami_bug_12_3_padding_keeps_positional_alignment() {
    // HAMi pads per model name; a GPU container after a non-GPU one could land at index 0.
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16384), &vec![], &[]);
    let p = pod(
        "p",
        vec![(false, vec![]), (false, vec![req(1, 1000, 10)]), (false, vec![])],
        &[],
    );
    let r = c.filter(&p, &["n1"], true, 0.0).unwrap();
    assert_eq!(
        codec::encode_pod_devices(&r.devices).unwrap(),
        ";n1-g0,NVIDIA,1000,10:;;"
    );
}

#[test]
fn hami_bug_12_3_device_score_counts_the_request() {
    // HAMi compares the model name with "NVIDIA" exactly and so leaves the request out of the
    // device score: two idle devices tie. With the request counted, spread prefers the device
    // the request loads least.
    let c = cluster("binpack", "spread");
    c.set_node(
        "n1",
        vec![gpu("small", 0, 10, 8192, 0), gpu("big", 1, 10, 81920, 0)],
        &vec![],
        &[],
    );
    let r = c.filter(&simple("p", req(1, 6000, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(uuids(&r), vec![vec!["big"]]);
    let p = pod(
        "q",
        vec![(false, vec![req(1, 6000, 0)])],
        &[("hami.io/gpu-scheduler-policy", "binpack")],
    );
    assert_eq!(uuids(&c.filter(&p, &["n1"], false, 0.0).unwrap()), vec![vec!["small"]]);
}

#[test]
fn node_policy_binpack_fills_spread_balances() {
    let c = cluster("binpack", "spread");
    c.set_node("a", node_gpus("a", 2, 10, 16384), &vec![], &[]);
    c.set_node("b", node_gpus("b", 2, 10, 16384), &vec![], &[]);
    c.upsert_pod(alloc("x", "b", vec![vec![("b-g0", 4000, 20)]]));
    let r = c
        .filter(&simple("p", req(1, 1000, 10)), &["a", "b"], false, 0.0)
        .unwrap();
    assert_eq!(r.node.as_deref(), Some("b"));
    let p = pod(
        "q",
        vec![(false, vec![req(1, 1000, 10)])],
        &[("hami.io/node-scheduler-policy", "spread")],
    );
    assert_eq!(
        c.filter(&p, &["a", "b"], false, 0.0).unwrap().node.as_deref(),
        Some("a")
    );
}

#[test]
fn gpu_policy_binpack_stacks_spread_separates() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16384), &vec![], &[]);
    c.upsert_pod(alloc("x", "n1", vec![vec![("n1-g1", 4000, 20)]]));
    assert_eq!(
        uuids(&c.filter(&simple("p", req(1, 1000, 10)), &["n1"], false, 0.0).unwrap()),
        vec![vec!["n1-g0"]]
    );
    let p = pod(
        "q",
        vec![(false, vec![req(1, 1000, 10)])],
        &[("hami.io/gpu-scheduler-policy", "binpack")],
    );
    assert_eq!(uuids(&c.filter(&p, &["n1"], false, 0.0).unwrap()), vec![vec!["n1-g1"]]);
}

#[test]
fn mutex_policy_takes_only_idle_devices() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16384), &vec![], &[]);
    c.upsert_pod(alloc("x", "n1", vec![vec![("n1-g0", 10, 1)]]));
    let p = pod(
        "p",
        vec![(false, vec![req(2, 10, 1)])],
        &[("hami.io/gpu-scheduler-policy", "mutex")],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    assert!(
        reason(&r, "n1").contains("1/2 ExclusiveDeviceAllocateConflict"),
        "{}",
        reason(&r, "n1")
    );
}

fn nvlink_node(c: &Cluster) {
    // g0-g1 and g2-g3 are NVLink pairs (600); everything else PCIe (20).
    let devs = node_gpus("n", 4, 10, 16384);
    let island = |i: usize| i / 2;
    let pairs = (0..4)
        .map(|a| {
            let scores = (0..4)
                .filter(|b| *b != a)
                .map(|b| (format!("n-g{b}"), if island(a) == island(b) { 600 } else { 20 }))
                .collect();
            (format!("n-g{a}"), scores)
        })
        .collect();
    c.set_node("n", devs, &pairs, &[]);
}

#[test]
fn topology_aware_picks_the_best_connected_pair() {
    let c = cluster("binpack", "topology-aware");
    nvlink_node(&c);
    // Load g0 a little so plain spread would pick g1 and g2 (different islands).
    c.upsert_pod(alloc("x", "n", vec![vec![("n-g0", 100, 1)]]));
    let r = c.filter(&simple("p", req(2, 1000, 0)), &["n"], false, 0.0).unwrap();
    let mut got = uuids(&r)[0].clone();
    got.sort();
    assert!(got == vec!["n-g0", "n-g1"] || got == vec!["n-g2", "n-g3"], "{got:?}");
}

#[test]
fn topology_aware_single_device_keeps_pairs_whole() {
    let c = cluster("binpack", "topology-aware");
    nvlink_node(&c);
    // g3 is taken: g2 has lost its partner, so a single-device pod should take g2.
    c.upsert_pod(alloc("x", "n", vec![vec![("n-g3", 16384, 100)]]));
    let r = c.filter(&simple("p", req(1, 1000, 0)), &["n"], false, 0.0).unwrap();
    assert_eq!(uuids(&r), vec![vec!["n-g2"]]);
}

#[test]
fn ties_are_broken_by_node_name_whatever_the_candidate_order() {
    let c = cluster("binpack", "spread");
    for n in ["c", "a", "b"] {
        c.set_node(n, node_gpus(n, 1, 10, 16384), &vec![], &[]);
    }
    for order in [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]] {
        assert_eq!(
            c.filter(&simple("p", req(1, 100, 1)), &order, false, 0.0)
                .unwrap()
                .node
                .as_deref(),
            Some("a")
        );
    }
}

#[test]
fn refilter_replaces_the_earlier_reservation() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16000), &vec![], &[]);
    for _ in 0..3 {
        let r = c.filter(&simple("p", req(1, 10000, 0)), &["n1"], true, 0.0).unwrap();
        assert_eq!(
            r.node.as_deref(),
            Some("n1"),
            "a retried pod must not be blocked by itself"
        );
    }
    assert_eq!(c.usage()[0].usage.usedmem, 10000);
    assert_eq!(c.pod_count(), 1);
}

#[test]
fn a_bound_pod_is_never_placed_again_and_keeps_its_devices() {
    // kube-scheduler asks again for a pod it has not seen bound yet (the answer to its bind
    // was lost when the extender died): the new placement must not replace the bound one,
    // which would free devices the pod still uses and let another pod have them.
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16000), &vec![], &[]);
    c.filter(&simple("p", req(1, 10000, 0)), &["n1"], true, 0.0).unwrap();
    assert!(c.mark_bound("p"));
    let before = c.usage();
    let err = c
        .filter(&simple("p", req(1, 10000, 0)), &["n1"], true, 1.0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod default/p is bound to node n1 already; it is not placed again"
    );
    assert_eq!(c.usage(), before);
    assert_eq!(c.pod("p").unwrap().reserved_at, None);
    // a dry run (no reservation) still answers
    assert!(c.filter(&simple("p", req(1, 1000, 0)), &["n1"], false, 1.0).is_ok());
}

#[test]
fn expired_reservations_are_released_bound_ones_kept() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16000), &vec![], &[]);
    c.filter(&simple("old", req(1, 1000, 0)), &["n1"], true, 100.0).unwrap();
    c.filter(&simple("bound", req(1, 1000, 0)), &["n1"], true, 100.0)
        .unwrap();
    c.filter(&simple("new", req(1, 1000, 0)), &["n1"], true, 150.0).unwrap();
    assert!(c.mark_bound("bound"));
    assert_eq!(c.release_expired(161.0, 60.0), vec!["old".to_string()]);
    assert_eq!(c.usage()[0].usage.usedmem, 2000);
}

#[test]
fn namespace_quota_limits_memory_and_cores() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 2, 10, 16000), &vec![], &[]);
    c.set_quota("default", "NVIDIA", Some(5000), None);
    assert!(c
        .filter(&simple("a", req(1, 3000, 0)), &["n1"], true, 0.0)
        .unwrap()
        .node
        .is_some());
    let r = c.filter(&simple("b", req(1, 3000, 0)), &["n1"], true, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "2/2 ResourceQuotaNotFit");
    assert_eq!(c.quota_usage("default", "NVIDIA"), (3000, 0));
    // Re-filtering the same pod does not count it twice against the quota.
    assert!(c
        .filter(&simple("a", req(1, 3000, 0)), &["n1"], true, 0.0)
        .unwrap()
        .node
        .is_some());
    c.remove_pod("a");
    assert_eq!(c.quota_usage("default", "NVIDIA"), (0, 0));
}

#[test]
fn node_update_recounts_usage_and_drops_vanished_devices() {
    let c = cluster("binpack", "spread");
    c.upsert_pod(alloc("x", "n1", vec![vec![("n1-g0", 4000, 10)]]));
    // The pod was seen before the node: it counts once the node registers.
    c.set_node("n1", node_gpus("n1", 2, 10, 16000), &vec![], &[]);
    assert_eq!(c.usage()[0].usage.usedmem, 4000);
    c.set_node("n1", vec![gpu("n1-g1", 1, 10, 16000, 0)], &vec![], &[]);
    assert_eq!(c.usage().len(), 1);
    assert!(c.remove_node("n1"));
    assert!(c.usage().is_empty());
    assert_eq!(c.pod("x").unwrap().node, "n1");
}

#[test]
fn invalid_weights_refuse_the_pod_with_the_reason() {
    let c = cluster("binpack", "spread");
    c.set_node("n1", node_gpus("n1", 1, 10, 16000), &vec![], &[]);
    let p = pod(
        "p",
        vec![(false, vec![req(1, 1, 0)])],
        &[("hami.io/device-scoring-weights", "slot=1")],
    );
    let e = c.filter(&p, &["n1"], true, 0.0).unwrap_err();
    assert!(e.to_string().contains("slot, core and memory"), "{e}");
    assert_eq!(c.pod_count(), 0);
}

#[test]
fn cambricon_uses_the_same_skeleton() {
    let c = cluster("binpack", "spread");
    let mlu = |i: u32| {
        let mut d = Device::new(&format!("mlu-{i}"), "MLU", "MLU", 100, 24576, 100);
        d.index = i;
        d
    };
    c.set_node("n1", vec![mlu(0), mlu(1)], &vec![], &[]);
    let r = DeviceRequest {
        vendor: "MLU".into(),
        count: 1,
        mem_mib: 1024,
        mem_percent: None,
        cores: 100,
    };
    let res = c.filter(&simple("p", r.clone()), &["n1"], true, 0.0).unwrap();
    assert_eq!(res.devices[0][0].vendor, "MLU");
    // NVIDIA requests find no NVIDIA devices there.
    let res = c.filter(&simple("q", req(1, 100, 0)), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&res, "n1"), "1/0 NodeInsufficientDevice");
}

/// A vendor that allocates whole two-device modules (as Ascend 910C does), plugged in through
/// `VendorRules` alone: the fit skeleton is unchanged.
#[derive(Debug)]
struct Modules(VendorSpec);

impl VendorRules for Modules {
    fn spec(&self) -> &VendorSpec {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "modules"
    }
    fn collects_all(&self, _want: u32) -> bool {
        true
    }
    fn choose(
        &self,
        _node: &node::NodeInventory,
        hot: &[node::DevHot],
        cands: &[usize],
        want: usize,
    ) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for &c in cands {
            let partner = cands.iter().find(|&&o| o != c && hot[o].index / 2 == hot[c].index / 2);
            if let Some(&p) = partner {
                if !out.contains(&c) && out.len() + 2 <= want {
                    out.extend([c, p]);
                }
            }
        }
        Some(out)
    }
}

#[test]
fn a_vendor_can_bring_its_own_device_grouping() {
    let mut spec = VendorSpec::nvidia();
    spec.key = "NPU".into();
    let mut vendors = Vendors::default();
    vendors.insert(std::sync::Arc::new(Modules(spec)));
    let c = Cluster::new(vendors, NodePolicy::Binpack, GpuPolicy::parse("spread"));
    let npus = (0..4)
        .map(|i| {
            let mut d = Device::new(&format!("npu-{i}"), "NPU", "Ascend910C", 1, 65536, 100);
            d.index = i;
            d
        })
        .collect();
    c.set_node("n1", npus, &vec![], &[]);
    let mut taken = alloc("x", "n1", vec![vec![("npu-1", 1000, 10)]]);
    taken.containers[0][0].vendor = "NPU".into();
    c.upsert_pod(taken);
    let r = DeviceRequest {
        vendor: "NPU".into(),
        count: 2,
        mem_mib: 1000,
        mem_percent: None,
        cores: 10,
    };
    let res = c.filter(&simple("p", r), &["n1"], false, 0.0).unwrap();
    let mut got = uuids(&res)[0].clone();
    got.sort();
    assert_eq!(got, vec!["npu-2", "npu-3"]);
}
