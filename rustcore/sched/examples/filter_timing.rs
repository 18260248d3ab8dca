//! Times `Cluster::filter` in pure Rust (no Python): `cargo run --release --example filter_timing`.
use hami_sched::*;
use std::time::Instant;

fn main() {
    let mut c = Cluster::default();
    c.set_threads(std::env::var("T").ok().and_then(|t| t.parse().ok()).unwrap_or(1));
    for n in 0..5000 {
        let devs = (0..8)
            .map(|g| {
                let mut d = Device::new(&format!("GPU-{n}-{g}"), "NVIDIA", "NVIDIA-H100", 10, 81920, 100);
                d.index = g;
                d
            })
            .collect();
        c.set_node(&format!("node-{n:05}"), devs, &vec![], &[]);
    }
    let pods: Vec<PodAlloc> = (0..40000)
        .map(|p| PodAlloc {
            uid: format!("u{p}"),
            namespace: "b".into(),
            name: format!("p{p}"),
            node: format!("node-{:05}", p % 5000),
            containers: vec![vec![AllocDevice {
                uuid: format!("GPU-{}-{}", p % 5000, (p / 5000) % 8),
                vendor: "NVIDIA".into(),
                usedmem: 5000,
                usedcores: 20,
            }]],
            init_count: 0,
            init_done: false,
            reserved_at: None,
            mig: Vec::new(),
        })
        .collect();
    c.upsert_pods(pods);
    let names: Vec<String> = (0..5000).map(|n| format!("node-{n:05}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pod = PodRequest {
        uid: "x".into(),
        namespace: "b".into(),
        name: "x".into(),
        containers: vec![ContainerRequest {
            init: false,
            devices: vec![DeviceRequest {
                vendor: "NVIDIA".into(),
                count: 1,
                mem_mib: 3000,
                mem_percent: None,
                cores: 30,
            }],
        }],
        annotations: Default::default(),
    };
    fn cpu_us() -> u128 {
        let mut ts = std::mem::MaybeUninit::<[i64; 2]>::uninit();
        extern "C" {
            fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
        }
        unsafe {
            clock_gettime(3, ts.as_mut_ptr());
            let t = ts.assume_init();
            (t[0] as u128) * 1_000_000 + (t[1] as u128) / 1000
        }
    }
    let mut cpu = Vec::new();
    let mut v = Vec::new();
    for _ in 0..std::env::var("N").ok().and_then(|t| t.parse().ok()).unwrap_or(51) {
        let t = Instant::now();
        let c0 = cpu_us();
        let r = c.filter(&pod, &refs, false, 0.0).unwrap();
        cpu.push(cpu_us() - c0);
        v.push(t.elapsed().as_micros());
        assert!(r.node.is_some());
    }
    v.sort();
    cpu.sort();
    println!(
        "rust filter median {} us wall, {} us cpu",
        v[v.len() / 2],
        cpu[cpu.len() / 2]
    );
}
