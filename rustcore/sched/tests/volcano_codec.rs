//! volcano's vGPU formats: golden strings from volcano's own code and tests, round trips, and
//! random input that never panics a decoder.
//!
//! Sources (volcano-sh/volcano at ed72c7c8, Project-HAMi/volcano-vgpu-device-plugin at 4fb76ba1):
//! - `pkg/scheduler/api/devices/nvidia/vgpu/utils_test.go` `TestDecodeContainerDevicesRejectsInvalidUsage`
//!   (volcano): `GPU-0,NVIDIA,4096,30:` and the invalid `GPU-0,NVIDIA,-5,30:`,
//!   `GPU-0,NVIDIA,4096,-1:`, `GPU-0,NVIDIA,abc,30:`, `GPU-0,NVIDIA:`.
//! - `pkg/scheduler/api/devices/nvidia/vgpu/device_info_test.go` (volcano): the allocation
//!   `GPU-aaaa,NVIDIA,80,0:` in both `volcano.sh/vgpu-ids-new` and `volcano.sh/devices-to-allocate`,
//!   and `GPU-1234,NVIDIA,4096,0` (no terminating `:`).
//! - `pkg/scheduler/api/devices/nvidia/vgpu/utils.go` `encodePodDevices` (volcano): containers
//!   joined by `;`; `decodeNodeDevices`: six fields `uuid,count,devmem,type,health,mode`.
//! - `pkg/util/util.go` `EncodeNodeDevices` (volcano-vgpu-device-plugin): what the plugin writes,
//!   `Id,Count,Devmem,Type,FormatBool(Health),Mode:` per device, `Type` = `NVIDIA-<model>`
//!   (`pkg/plugin/register.go` `ConvertDeviceInfo`).

use hami_sched::codec;
use hami_sched::model::{AllocDevice, Device, DeviceMode, PodDevices};
use proptest::prelude::*;

fn dev(uuid: &str, mem: u64, cores: u32) -> AllocDevice {
    AllocDevice {
        uuid: uuid.into(),
        vendor: "NVIDIA".into(),
        usedmem: mem,
        usedcores: cores,
    }
}

/// What volcano-vgpu-device-plugin's `EncodeNodeDevices` writes for two T4s split 10 ways.
const TWO_T4: &str = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,15360,NVIDIA-Tesla T4,true,hami-core:\
GPU-8d9c4ba8-3a6e-4f1c-9d17-1c5b2d0f3e11,10,15360,NVIDIA-Tesla T4,false,hami-core:";

#[test]
fn node_register_golden_decodes_and_encodes_byte_for_byte() {
    let devices = codec::decode_volcano_node_devices(TWO_T4).unwrap();
    assert_eq!(devices.len(), 2);
    let d = &devices[0];
    assert_eq!(d.id, "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448");
    assert_eq!((d.count, d.devmem, d.devcore), (10, 15360, codec::VOLCANO_DEVICE_CORES));
    assert_eq!(d.type_, "NVIDIA-Tesla T4");
    assert!(d.health && !devices[1].health);
    assert_eq!(d.mode, DeviceMode::HamiCore);
    assert_eq!((devices[0].index, devices[1].index), (0, 1));
    assert_eq!(codec::encode_volcano_node_devices(&devices).unwrap(), TWO_T4);
}

#[test]
fn node_register_follows_volcanos_decoder_at_the_edges() {
    // no `:` at all: volcano reads no device; a MIG node; fields past the sixth ignored
    assert!(codec::decode_volcano_node_devices("").unwrap().is_empty());
    let mig = codec::decode_volcano_node_devices("GPU-a,7,40960,NVIDIA-A100-SXM4-40GB,true,mig:").unwrap();
    assert_eq!(mig[0].mode, DeviceMode::Mig);
    let extra = codec::decode_volcano_node_devices("GPU-a,2,1024,NVIDIA-T4,true,hami-core,3:").unwrap();
    assert_eq!(extra[0].count, 2);
    // fewer than six fields: volcano drops the whole node ("wrong Node GPU info"); we name it
    let err = codec::decode_volcano_node_devices("GPU-a,2,1024,NVIDIA-T4,true:")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("volcano.sh/node-vgpu-register") && err.contains("device [0]"),
        "{err}"
    );
    for (text, field) in [
        ("GPU-a,x,1024,T,true,hami-core:", "count"),
        ("GPU-a,1,-5,T,true,hami-core:", "devmem"),
        ("GPU-a,1,5,T,maybe,hami-core:", "health"),
        ("GPU-a,1,5,T,true,vfio:", "mode"),
        (",1,5,T,true,hami-core:", "id"),
    ] {
        let err = codec::decode_volcano_node_devices(text).unwrap_err().to_string();
        assert!(err.contains(field), "{text}: {err}");
    }
}

#[test]
fn node_register_encoder_refuses_what_volcano_could_not_read() {
    let mut d = Device::new("GPU-a", "NVIDIA", "NVIDIA-T4", 10, 15360, 100);
    d.type_ = "NVIDIA,T4".into();
    assert!(codec::encode_volcano_node_devices(&[d.clone()]).is_err());
    d.type_ = "NVIDIA-T4".into();
    d.mode = DeviceMode::Template;
    assert!(codec::encode_volcano_node_devices(&[d]).is_err());
}

#[test]
fn pod_devices_golden_from_volcanos_tests() {
    for (text, want) in [
        ("GPU-0,NVIDIA,4096,30:", vec![vec![dev("GPU-0", 4096, 30)]]),
        ("GPU-aaaa,NVIDIA,80,0:", vec![vec![dev("GPU-aaaa", 80, 0)]]),
        (
            "GPU-0,NVIDIA,4096,30:GPU-1,NVIDIA,2048,10:",
            vec![vec![dev("GPU-0", 4096, 30), dev("GPU-1", 2048, 10)]],
        ),
        // two containers joined by `;`, and the state after the plugin erased the first
        (
            "GPU-0,NVIDIA,4096,30:;GPU-1,NVIDIA,2048,10:",
            vec![vec![dev("GPU-0", 4096, 30)], vec![dev("GPU-1", 2048, 10)]],
        ),
        (";GPU-1,NVIDIA,2048,10:", vec![vec![], vec![dev("GPU-1", 2048, 10)]]),
        (";", vec![vec![], vec![]]),
    ] {
        let got = codec::decode_volcano_pod_devices(text).unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(codec::encode_volcano_pod_devices(&got).unwrap(), text);
    }
    // no terminating `:` (device_info_test.go): read as volcano reads it
    assert_eq!(
        codec::decode_volcano_pod_devices("GPU-1234,NVIDIA,4096,0").unwrap(),
        vec![vec![dev("GPU-1234", 4096, 0)]]
    );
    // the plugin's last erase leaves one empty container: the empty string, as in volcano
    assert_eq!(codec::encode_volcano_pod_devices(&vec![vec![]]).unwrap(), "");
    assert!(codec::decode_volcano_pod_devices("").unwrap().is_empty());
}

#[test]
fn pod_devices_volcano_skips_are_our_errors() {
    // volcano's decoder skips these devices (utils_test.go); a plugin that skipped them would
    // give the container fewer devices than the scheduler counted
    for (text, field) in [
        ("GPU-0,NVIDIA,-5,30:", "Usedmem"),
        ("GPU-0,NVIDIA,4096,-1:", "Usedcores"),
        ("GPU-0,NVIDIA,abc,30:", "Usedmem"),
        ("GPU-0,NVIDIA:", "(fields)"),
        ("GPU-0,NVIDIA,1,1:;GPU-1,NVIDIA,x,1:", "container 1, device 0"),
    ] {
        let err = codec::decode_volcano_pod_devices(text).unwrap_err().to_string();
        assert!(
            err.starts_with("volcano pod device annotation") && err.contains(field),
            "{text}: {err}"
        );
    }
}

fn arb_pod() -> impl Strategy<Value = PodDevices> {
    prop::collection::vec(
        prop::collection::vec(("GPU-[A-Za-z0-9-]{1,12}", 0u64..200_000, 0u32..=100), 0..4),
        0..5,
    )
    .prop_map(|cs| {
        cs.into_iter()
            .map(|c| c.into_iter().map(|(u, m, k)| dev(&u, m, k)).collect())
            .collect()
    })
}

proptest! {
    #[test]
    fn pod_devices_round_trip(pd in arb_pod()) {
        let text = codec::encode_volcano_pod_devices(&pd).unwrap();
        let back = codec::decode_volcano_pod_devices(&text).unwrap();
        // volcano's encoding of one empty container is the empty string, which is no container
        if pd.len() == 1 && pd[0].is_empty() {
            prop_assert!(back.is_empty());
        } else {
            prop_assert_eq!(back, pd.clone());
        }
        // HAMi's list differs only by the terminating `;`
        let hami = codec::encode_pod_devices(&pd).unwrap();
        if !pd.is_empty() {
            prop_assert_eq!(hami, format!("{text};"));
        }
    }

    #[test]
    fn node_register_round_trips(devs in prop::collection::vec(("[A-Za-z0-9-]{1,40}", 1u32..100, 0u64..=i32::MAX as u64, "NVIDIA-[A-Za-z0-9 -]{1,20}", any::<bool>(), prop::sample::select(vec![DeviceMode::HamiCore, DeviceMode::Mig, DeviceMode::Mps])), 0..8)) {
        let devices: Vec<Device> = devs.into_iter().enumerate().map(|(i, (id, count, mem, ty, health, mode))| {
            let mut d = Device::new(&id, "NVIDIA", &ty, count, mem, codec::VOLCANO_DEVICE_CORES);
            d.index = i as u32;
            d.health = health;
            d.mode = mode;
            d
        }).collect();
        let text = codec::encode_volcano_node_devices(&devices).unwrap();
        prop_assert_eq!(text.matches(':').count(), devices.len());
        prop_assert_eq!(codec::decode_volcano_node_devices(&text).unwrap(), devices);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), s in "[,:;0-9a-zA-Z-]{0,80}") {
        let text = String::from_utf8_lossy(&bytes);
        for t in [text.as_ref(), s.as_str()] {
            if let Ok(pd) = codec::decode_volcano_pod_devices(t) {
                // what decodes, encodes again and decodes to the same devices
                if let Ok(again) = codec::encode_volcano_pod_devices(&pd) {
                    let back = codec::decode_volcano_pod_devices(&again).unwrap();
                    let flat = |p: &PodDevices| p.iter().flatten().cloned().collect::<Vec<_>>();
                    prop_assert_eq!(flat(&back), flat(&pd));
                }
            }
            if let Ok(devs) = codec::decode_volcano_node_devices(t) {
                if let Ok(again) = codec::encode_volcano_node_devices(&devs) {
                    prop_assert_eq!(codec::decode_volcano_node_devices(&again).unwrap(), devs);
                }
            }
        }
    }
}
