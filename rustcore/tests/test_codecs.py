"""HAMi's annotation formats through the binding: golden strings from the reference, errors
that name the field, and random input that never crashes."""

from __future__ import annotations

import contextlib

import hami_rustcore as hc
import pytest
from hypothesis import given
from hypothesis import strategies as st

V100 = (
    '[{"id":"GPU-0055","count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},'
    '{"id":"GPU-0fc3","index":1,"count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
)


def test_register_annotation_golden_round_trip() -> None:
    devices = hc.decode_node_devices(V100)
    assert [d.index for d in devices] == [0, 1]
    assert devices[0].type == "NVIDIA-Tesla V100-PCIE-32GB"
    assert devices[0].vendor == "NVIDIA"
    assert hc.encode_node_devices(devices) == V100


def test_register_annotation_omits_zero_values_like_go() -> None:
    d = hc.Device("GPU-x", 10, 1024, 100, "NVIDIA-T4", health=False, numa=0, index=0)
    assert hc.encode_node_devices([d]) == (
        '[{"id":"GPU-x","count":10,"devmem":1024,"devcore":100,"type":"NVIDIA-T4","mode":"hami-core"}]'
    )


def test_legacy_colon_format() -> None:
    text = "test-0,1,1024,100,DCU,0,true,0,hami-core:"
    devices = hc.decode_node_devices_legacy(text, "DCU")
    assert devices[0].devmem == 1024
    assert hc.encode_node_devices_legacy(devices) == text


@pytest.mark.parametrize(
    "text",
    [
        "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,NVIDIA,3000,30:;",
        "GPU-aaa,NVIDIA,3000,50:;GPU-bbb,NVIDIA,4000,60:;",
        "GPU-a,NVIDIA,1000,0:GPU-b,NVIDIA,1000,0:;",
        ";GPU-a,NVIDIA,1000,0:;",
    ],
)
def test_pod_device_list_golden(text: str) -> None:
    assert hc.encode_pod_devices(hc.decode_pod_devices(text)) == text


def test_pod_device_list_fields() -> None:
    [[a], [b]] = hc.decode_pod_devices("GPU-aaa,NVIDIA,3000,50:;GPU-bbb,NVIDIA,4000,60:;")
    assert (a.uuid, a.vendor, a.usedmem, a.usedcores) == ("GPU-aaa", "NVIDIA", 3000, 50)
    assert b == hc.AllocDevice("GPU-bbb", "NVIDIA", 4000, 60)


def test_pair_scores_golden() -> None:
    text = '[{"uuid":"GPU-a","score":{"GPU-b":200,"GPU-c":20}}]'
    scores = hc.decode_pair_scores(text)
    assert scores == [("GPU-a", {"GPU-b": 200, "GPU-c": 20})]
    assert hc.encode_pair_scores(scores) == text


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: hc.decode_node_devices('[{"id":"a"},{"id":"b","devmem":-1}]'), "device [1]"),
        (lambda: hc.decode_node_devices("[{"), "line 1 column"),
        (lambda: hc.decode_node_devices('{"id":"a"}'), "expected a JSON array"),
        (lambda: hc.decode_pod_devices("GPU-a,NVIDIA,1:;"), "container 0, device 0"),
        (lambda: hc.decode_pod_devices("GPU-a,NVIDIA,x,1:;"), "Usedmem"),
        (lambda: hc.decode_node_devices_legacy("a,1:", "DCU"), "7 or 9"),
        (lambda: hc.decode_pair_scores('[{"score":{}}]'), "uuid"),
    ],
)
def test_malformed_input_names_the_field(call: object, fragment: str) -> None:
    with pytest.raises(hc.DecodeError, match=fragment.replace("[", r"\[")):
        call()  # type: ignore[operator]


@given(st.text(max_size=200))
def test_random_text_never_crashes_a_decoder(text: str) -> None:
    for decode in (
        hc.decode_node_devices,
        hc.decode_pod_devices,
        hc.decode_pair_scores,
        lambda t: hc.decode_node_devices_legacy(t, "DCU"),
    ):
        with contextlib.suppress(hc.DecodeError):
            decode(text)


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.from_regex(r"[A-Za-z0-9-]{1,16}", fullmatch=True),
                st.integers(0, 2**31),
                st.integers(0, 100),
            ),
            max_size=4,
        ),
        max_size=5,
    )
)
def test_pod_devices_round_trip(containers: list[list[tuple[str, int, int]]]) -> None:
    pd = [[hc.AllocDevice(u, "NVIDIA", m, c) for u, m, c in cont] for cont in containers]
    assert hc.decode_pod_devices(hc.encode_pod_devices(pd)) == pd


def test_encoding_refuses_separators_in_uuids() -> None:
    with pytest.raises(hc.DecodeError, match="UUID"):
        hc.encode_pod_devices([[hc.AllocDevice("GPU,a", "NVIDIA", 1, 1)]])
