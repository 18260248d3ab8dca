//! Dynamic MIG in the fit (`hami-control-plane.md` §4.7): the smallest profile with a free legal
//! placement, the reservation annotation, occupancy from reservations, GPUs revisited for
//! several instances, and nodes where some GPUs are MIG and some shared by the hook.

mod common;

use common::*;
use hami_sched::mig::{decode_mig_allocations, registration_for, MigAlloc, MIG_ALLOCATIONS};
use hami_sched::*;

const A100_40: &str = "NVIDIA A100-SXM4-40GB";

/// A MIG-mode GPU of `model` as the plugin registers it: its whole memory, 7 instances at most.
fn mig_gpu(id: &str, index: u32, model: &str) -> Device {
    let whole = hami_sched::mig::model_table(model)
        .unwrap()
        .profiles
        .iter()
        .map(|p| p.memory_mb)
        .max()
        .unwrap();
    let mut d = Device::new(id, "NVIDIA", model, 7, whole, 100);
    d.index = index;
    d.mode = DeviceMode::Mig;
    d.mig_profiles = registration_for(model, &[]);
    d
}

fn mig_of(r: &FilterResult) -> Vec<MigAlloc> {
    let text = r
        .annotations
        .iter()
        .find(|(k, _)| k == MIG_ALLOCATIONS)
        .map(|(_, v)| v.as_str())
        .unwrap_or("[]");
    decode_mig_allocations(text).unwrap()
}

fn placements(r: &FilterResult) -> Vec<(String, u8, u8)> {
    mig_of(r).into_iter().map(|a| (a.profile, a.start, a.size)).collect()
}

fn mig_pod(uid: &str, count: u32, mem: u64) -> PodRequest {
    pod(
        uid,
        vec![(false, vec![req(count, mem, 0)])],
        &[("nvidia.com/vgpu-mode", "mig")],
    )
}

#[test]
fn smallest_profile_and_hamis_placement_order() {
    let c = cluster("binpack", "binpack");
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40)], &vec![], &[]);
    // 4 GiB: 1g.5gb, tried from the highest start (6).
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], true, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("1g.5gb".into(), 6, 1)]);
    // The device charges the profile's memory and core, not the request's.
    assert_eq!((r.devices[0][0].usedmem, r.devices[0][0].usedcores), (4864, 15));
    // 9 GiB: 1g.10gb (memory 9856) before 2g.10gb (same memory, more slices); a 1g profile
    // from the highest start: 6..8 overlaps slice 6, so 4..6.
    let r = c.filter(&mig_pod("b", 1, 9000), &["n1"], true, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("1g.10gb".into(), 4, 2)]);
    // 3g.20gb from the highest start: 4..8 is taken, 0..4 is free.
    let r = c.filter(&mig_pod("c", 1, 15000), &["n1"], true, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("3g.20gb".into(), 0, 4)]);
    // Only slice 7 is left, where no profile may start: nothing more fits, even with memory
    // left over (5504 MiB of 40192).
    let r = c.filter(&mig_pod("e", 1, 1), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.node, None);
    assert_eq!(reason(&r, "n1"), "1/1 CardMigTopologyInfeasible");
    // A 2g profile starts from the lowest free placement once 4..6 is freed: removing a pod
    // frees exactly its slices.
    assert!(c.remove_pod("b"));
    let r = c.filter(&mig_pod("f", 1, 9900), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.node, None, "9900 MiB needs a 3g.20gb: no room");
    let p = pod(
        "g",
        vec![(false, vec![req(1, 9000, 0)])],
        &[("nvidia.com/vgpu-mode", "mig"), ("nvidia.com/use-gpuuuid", "GPU-m")],
    );
    let r = c.filter(&p, &["n1"], true, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("1g.10gb".into(), 4, 2)]);
}

#[test]
fn one_gpu_gives_several_instances_to_one_container() {
    let c = cluster("binpack", "binpack");
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40)], &vec![], &[]);
    // Three 1g.5gb instances from one GPU: more devices than the node has GPUs.
    let r = c.filter(&mig_pod("a", 3, 4000), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
    assert_eq!(uuids(&r), vec![vec!["GPU-m".to_string(); 3]]);
    assert_eq!(
        placements(&r),
        vec![
            ("1g.5gb".into(), 6, 1),
            ("1g.5gb".into(), 5, 1),
            ("1g.5gb".into(), 4, 1)
        ]
    );
    let devices: Vec<u32> = mig_of(&r).iter().map(|a| a.device).collect();
    assert_eq!(devices, vec![0, 1, 2]);
    // Eight 1g.5gb cannot exist on a 7-compute-slice GPU.
    let r = c.filter(&mig_pod("b", 5, 4000), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.node, None);
}

#[test]
fn reservations_rebuild_occupancy_and_bad_ones_are_refused() {
    let c = cluster("binpack", "binpack");
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40)], &vec![], &[]);
    // A bound pod holding 0..4 (3g.20gb) and 4..8 (4g.20gb... only legal at 0: not here) comes
    // back from its annotations after a restart.
    let mig = decode_mig_allocations(
        r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-m","profile":"3g.20gb","placement":{"start":4,"size":4},
            "migUUID":"MIG-1","gpuInstanceID":2,"computeInstanceID":0}]"#,
    )
    .unwrap();
    let mut held = alloc("held", "n1", vec![vec![("GPU-m", 19968, 43)]]);
    held.mig = mig;
    c.upsert_pod(held);
    let r = c.filter(&mig_pod("a", 1, 15000), &["n1"], false, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("3g.20gb".into(), 0, 4)]);
    let r = c.filter(&mig_pod("b", 1, 20000), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/1 CardMigTopologyInfeasible");
    for (bad, says) in [
        (
            r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"G","profile":"1g.5gb","placement":{"start":7,"size":2}}]"#,
            "outside",
        ),
        (
            r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"G","profile":"1g.5gb","placement":{"start":0,"size":1},"migUUID":"M"}]"#,
            "all three or none",
        ),
        (
            r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"G","profile":"1g.5gb","placement":{"start":0,"size":1}},
             {"containerIndex":0,"deviceIndex":0,"gpuUUID":"G","profile":"1g.5gb","placement":{"start":1,"size":1}}]"#,
            "reserved twice",
        ),
        (
            r#"[{"containerIndex":0,"deviceIndex":0,"profile":"1g.5gb","placement":{"start":0,"size":1}}]"#,
            "gpuUUID",
        ),
        (r#"{"x":1}"#, "JSON array"),
    ] {
        let e = decode_mig_allocations(bad).unwrap_err().to_string();
        assert!(e.contains(says) && e.contains("vgpu-mig-allocations"), "{bad}: {e}");
    }
}

#[test]
fn mixed_node_mig_and_hook_shared_gpus() {
    let c = cluster("binpack", "binpack");
    let shared = {
        let mut d = gpu("GPU-s", 1, 10, 40960, 0);
        d.type_ = A100_40.into();
        d
    };
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40), shared], &vec![], &[]);
    // A MIG pod lands on the MIG GPU only.
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], true, 0.0).unwrap();
    assert_eq!(uuids(&r), vec![vec!["GPU-m".to_string()]]);
    assert_eq!(placements(&r).len(), 1);
    // A hami-core pod lands on the shared GPU, with no MIG reservation.
    let p = pod(
        "b",
        vec![(false, vec![req(1, 4000, 10)])],
        &[("nvidia.com/vgpu-mode", "hami-core")],
    );
    let r = c.filter(&p, &["n1"], true, 0.0).unwrap();
    assert_eq!(uuids(&r), vec![vec!["GPU-s".to_string()]]);
    assert!(mig_of(&r).is_empty());
    // A pod that names no mode may take either; two devices from one MIG GPU and the shared
    // one together are a legal answer, the MIG entry only for the MIG device.
    let r = c.filter(&simple("c", req(2, 4000, 0)), &["n1"], true, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
    let ids = uuids(&r);
    let mig = mig_of(&r);
    assert_eq!(mig.len(), ids[0].iter().filter(|u| *u == "GPU-m").count());
    assert!(mig.iter().all(|a| a.gpu_uuid == "GPU-m"));
}

#[test]
fn fail_closed_when_what_a_gpu_holds_is_unknown() {
    let c = cluster("binpack", "binpack");
    let shared = {
        let mut d = gpu("GPU-s", 1, 10, 40960, 0);
        d.type_ = A100_40.into();
        d
    };
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40), shared], &vec![], &[]);
    // A pod holds the MIG-mode GPU with no MIG reservation: which slices it uses is unknown.
    c.upsert_pod(alloc("legacy", "n1", vec![vec![("GPU-m", 4864, 15)]]));
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/2 CardNotHealth, 1/2 CardTypeMismatch");
    assert!(c.remove_pod("legacy"));
    // A hook-shared GPU carrying a MIG reservation is not trusted either.
    let mut odd = alloc("odd", "n1", vec![vec![("GPU-s", 4864, 15)]]);
    odd.mig = decode_mig_allocations(
        r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-s","profile":"1g.5gb","placement":{"start":0,"size":1}}]"#,
    )
    .unwrap();
    c.upsert_pod(odd);
    let p = pod(
        "b",
        vec![(false, vec![req(1, 1000, 10)])],
        &[("nvidia.com/vgpu-mode", "hami-core")],
    );
    let r = c.filter(&p, &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/2 CardNotHealth, 1/2 CardTypeMismatch");
    // The MIG GPU, with its reservation-less holder gone, takes MIG pods again.
    let r = c.filter(&mig_pod("c", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
}

#[test]
fn a_reservation_on_a_gpu_unknown_to_the_node_fails_its_mig_gpus_closed() {
    let c = cluster("binpack", "binpack");
    let shared = {
        let mut d = gpu("GPU-s", 2, 10, 40960, 0);
        d.type_ = A100_40.into();
        d
    };
    let devices = vec![mig_gpu("GPU-m", 0, A100_40), mig_gpu("GPU-n", 1, A100_40), shared];
    c.set_node("n1", devices.clone(), &vec![], &[]);
    // A pod whose reservation names a GPU the node does not register (gone, or renamed): what
    // the node's MIG instances hold is unknown, so none of its MIG GPUs takes a MIG pod.
    let mut stray = alloc("stray", "n1", vec![vec![("GPU-gone", 4864, 15)]]);
    stray.mig = decode_mig_allocations(
        r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-gone","profile":"1g.5gb","placement":{"start":6,"size":1}}]"#,
    )
    .unwrap();
    c.upsert_pod(stray);
    c.check_invariants().unwrap();
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(reason(&r, "n1"), "1/3 CardTypeMismatch, 2/3 CardNotHealth");
    // The hook-shared GPU is not concerned.
    let p = pod(
        "b",
        vec![(false, vec![req(1, 1000, 10)])],
        &[("nvidia.com/vgpu-mode", "hami-core")],
    );
    assert_eq!(c.filter(&p, &["n1"], false, 0.0).unwrap().node.as_deref(), Some("n1"));
    // The node registering again (the same devices) keeps it failed closed.
    c.set_node("n1", devices, &vec![], &[]);
    c.check_invariants().unwrap();
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(r.node, None);
    // Resolved (the pod gone): the MIG GPUs take MIG pods again.
    assert!(c.remove_pod("stray"));
    c.check_invariants().unwrap();
    let r = c.filter(&mig_pod("c", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(r.node.as_deref(), Some("n1"));
}

#[test]
fn a_reservation_on_a_known_gpu_the_pod_holds_no_entry_for_occupies_its_slices() {
    let c = cluster("binpack", "binpack");
    c.set_node("n1", vec![mig_gpu("GPU-m", 0, A100_40)], &vec![], &[]);
    // HAMi restores such a reservation: slice 6 stays taken, so a 1g.5gb goes to 5.
    let mut p = alloc("p", "n1", vec![vec![]]);
    p.mig = decode_mig_allocations(
        r#"[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-m","profile":"1g.5gb","placement":{"start":6,"size":1}}]"#,
    )
    .unwrap();
    c.upsert_pod(p);
    c.check_invariants().unwrap();
    let r = c.filter(&mig_pod("a", 1, 4000), &["n1"], false, 0.0).unwrap();
    assert_eq!(placements(&r), vec![("1g.5gb".into(), 5, 1)]);
}

#[test]
fn every_model_table_fills_a_gpu_exactly() {
    // Seven 1g instances fill every 7-slice model; the A30 takes four.
    for (model, max) in [
        ("NVIDIA A30", 4),
        (A100_40, 7),
        ("NVIDIA A100-SXM4-80GB", 7),
        ("NVIDIA H100 80GB HBM3", 7),
        ("NVIDIA H100 NVL", 7),
        ("NVIDIA H200", 7),
        ("NVIDIA B200", 7),
    ] {
        let c = cluster("binpack", "binpack");
        let mut d = mig_gpu("GPU-m", 0, model);
        d.count = 7;
        c.set_node("n1", vec![d], &vec![], &[]);
        let r = c.filter(&mig_pod("a", max, 1), &["n1"], true, 0.0).unwrap();
        assert_eq!(mig_of(&r).len(), max as usize, "{model}");
        let mut starts: Vec<u8> = mig_of(&r).iter().map(|a| a.start).collect();
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(starts.len(), max as usize, "{model}: overlapping placements");
        let r = c.filter(&mig_pod("b", 1, 1), &["n1"], true, 0.0).unwrap();
        assert_eq!(r.node, None, "{model}: an instance past a full GPU");
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever MIG pods come and go, the reserved instances are legal placements of their
        /// GPU's model and never share a memory slice.
        #[test]
        fn instances_never_overlap(ops in prop::collection::vec((0u8..4, 1u32..3, 1u64..40000), 1..40)) {
            let c = cluster("binpack", "binpack");
            c.set_node("n1", vec![mig_gpu("GPU-a", 0, A100_40), mig_gpu("GPU-h", 1, "NVIDIA H100 80GB HBM3")], &vec![], &[]);
            for (i, (op, count, mem)) in ops.into_iter().enumerate() {
                if op == 0 {
                    c.remove_pod(&format!("p{}", i / 2));
                    continue;
                }
                let _ = c.filter(&mig_pod(&format!("p{i}"), count, mem), &["n1"], true, 0.0).unwrap();
                let mut taken: std::collections::BTreeMap<String, u8> = Default::default();
                for j in 0..=i {
                    let Some(p) = c.pod(&format!("p{j}")) else { continue };
                    for a in &p.mig {
                        let model = if a.gpu_uuid == "GPU-a" { A100_40 } else { "NVIDIA H100 80GB HBM3" };
                        let t = hami_sched::mig::model_table(model).unwrap();
                        let legal = t.profiles.iter().any(|tp| tp.name == a.profile && tp.placements.contains(&(a.start, a.size)));
                        prop_assert!(legal, "{} at {}+{} on {}", a.profile, a.start, a.size, model);
                        let m = taken.entry(a.gpu_uuid.clone()).or_default();
                        prop_assert_eq!(*m & a.mask(), 0, "overlap on {}", a.gpu_uuid);
                        *m |= a.mask();
                    }
                }
                prop_assert_eq!(c.check_invariants(), Ok(()));
            }
        }
    }
}
