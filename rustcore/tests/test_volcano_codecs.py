"""volcano's vGPU formats through the binding: golden strings from volcano's code and tests
(volcano-sh/volcano ``pkg/scheduler/api/devices/nvidia/vgpu/utils_test.go`` and
``device_info_test.go``; Project-HAMi/volcano-vgpu-device-plugin ``pkg/util/util.go``
``EncodeNodeDevices``), errors that name the field, random input that never crashes."""

from __future__ import annotations

import contextlib

import hami_rustcore as hc
import pytest
from hypothesis import given
from hypothesis import strategies as st

# what volcano-vgpu-device-plugin's EncodeNodeDevices writes: Id,Count,Devmem,Type,Health,Mode:
TWO_T4 = (
    "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,15360,NVIDIA-Tesla T4,true,hami-core:"
    "GPU-8d9c4ba8-3a6e-4f1c-9d17-1c5b2d0f3e11,10,15360,NVIDIA-Tesla T4,false,hami-core:"
)


def test_node_register_golden_round_trip() -> None:
    devices = hc.decode_volcano_node_devices(TWO_T4)
    assert [(d.id[:12], d.count, d.devmem, d.devcore, d.health) for d in devices] == [
        ("GPU-0fc3eda5", 10, 15360, 100, True),
        ("GPU-8d9c4ba8", 10, 15360, 100, False),
    ]
    assert devices[0].type == "NVIDIA-Tesla T4"
    assert hc.encode_volcano_node_devices(devices) == TWO_T4


def test_node_register_from_our_device_model() -> None:
    # devcore, numa and index are not part of volcano's format
    d = hc.Device("GPU-x", 10, 1024, 50, "NVIDIA-T4", health=True, numa=1, index=3)
    assert hc.encode_volcano_node_devices([d]) == "GPU-x,10,1024,NVIDIA-T4,true,hami-core:"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("GPU-0,NVIDIA,4096,30:", [[("GPU-0", 4096, 30)]]),  # utils_test.go
        ("GPU-aaaa,NVIDIA,80,0:", [[("GPU-aaaa", 80, 0)]]),  # device_info_test.go
        ("GPU-a,NVIDIA,1,2:;GPU-b,NVIDIA,3,4:", [[("GPU-a", 1, 2)], [("GPU-b", 3, 4)]]),
        (";GPU-b,NVIDIA,3,4:", [[], [("GPU-b", 3, 4)]]),
    ],
)
def test_pod_devices_golden_round_trip(text: str, want: list[list[tuple[str, int, int]]]) -> None:
    got = hc.decode_volcano_pod_devices(text)
    assert [[(d.uuid, d.usedmem, d.usedcores) for d in c] for c in got] == want
    assert all(d.vendor == "NVIDIA" for c in got for d in c)
    assert hc.encode_volcano_pod_devices(got) == text


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: hc.decode_volcano_pod_devices("GPU-0,NVIDIA,-5,30:"), "Usedmem"),
        (lambda: hc.decode_volcano_pod_devices("GPU-0,NVIDIA:"), "container 0, device 0"),
        (lambda: hc.decode_volcano_node_devices("GPU-a,2,1024,T4,true:"), "expected 6"),
        (lambda: hc.decode_volcano_node_devices("GPU-a,2,1024,T4,yes,hami-core:"), "health"),
        (
            lambda: hc.encode_volcano_pod_devices([[hc.AllocDevice("GPU;a", "NVIDIA", 1, 1)]]),
            "UUID",
        ),
    ],
)
def test_malformed_input_names_the_field(call: object, fragment: str) -> None:
    with pytest.raises(hc.DecodeError, match=fragment):
        call()  # type: ignore[operator]


@given(st.text(max_size=200))
def test_random_text_never_crashes_a_decoder(text: str) -> None:
    for decode in (hc.decode_volcano_node_devices, hc.decode_volcano_pod_devices):
        with contextlib.suppress(hc.DecodeError):
            decode(text)


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.from_regex(r"GPU-[A-Za-z0-9-]{1,16}", fullmatch=True),
                st.integers(0, 2**31),
                st.integers(0, 100),
            ),
            max_size=4,
        ),
        min_size=2,
        max_size=5,
    )
)
def test_pod_devices_round_trip(containers: list[list[tuple[str, int, int]]]) -> None:
    pd = [[hc.AllocDevice(u, "NVIDIA", m, c) for u, m, c in cont] for cont in containers]
    assert hc.decode_volcano_pod_devices(hc.encode_volcano_pod_devices(pd)) == pd
