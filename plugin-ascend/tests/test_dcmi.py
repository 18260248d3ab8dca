"""The DCMI backend against a fake libdcmi.so built from the documented signatures: discovery in
logic-ID order with physical IDs, chip names, VDIE die IDs and memory, per-NPU failures that
degrade one NPU, a library that cannot start, and health changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hami_common.deviceplugin.backend import BackendInitError
from hami_plugin_ascend.dcmi import DcmiBackend
from hami_plugin_ascend.devices import NpuDevice


def _npus(backend: DcmiBackend) -> list[NpuDevice]:
    found = backend.discover()
    assert all(isinstance(d, NpuDevice) for d in found)
    return [d for d in found if isinstance(d, NpuDevice)]


def test_npus_in_logic_order_with_their_ids(
    fake_dcmi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DCMI_CARDS", "2")
    monkeypatch.setenv("FAKE_DCMI_DEVICES_PER_CARD", "2")
    monkeypatch.setenv("FAKE_DCMI_CHIP", "910B3")
    npus = _npus(DcmiBackend(str(fake_dcmi)))
    assert [d.index for d in npus] == [0, 1, 2, 3]
    assert [(d.card, d.device, d.logic_id, d.phy_id) for d in npus] == [
        (0, 0, 0, 3), (0, 1, 1, 2), (1, 0, 2, 1), (1, 1, 3, 0),
    ]  # fmt: skip
    assert npus[2].uuid == "00001002-00002000-00003000-00004000-00005001"
    assert {d.model for d in npus} == {"910B3"}
    assert {d.memory_mib for d in npus} == {65536}
    assert all(d.healthy for d in npus)


def test_without_hbm_the_ddr_memory_counts(
    fake_dcmi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DCMI_CHIP", "310P3")
    monkeypatch.setenv("FAKE_DCMI_HBM_MB", "0")
    monkeypatch.setenv("FAKE_DCMI_DDR_MB", "21527")
    npus = _npus(DcmiBackend(str(fake_dcmi)))
    assert {(d.model, d.memory_mib) for d in npus} == {("310P3", 21527)}


def test_a_failing_npu_is_unhealthy_and_named(
    fake_dcmi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DCMI_CARDS", "2")
    monkeypatch.setenv("FAKE_DCMI_DIE_FAIL", "1")
    npus = _npus(DcmiBackend(str(fake_dcmi)))
    assert [d.healthy for d in npus] == [True, False]
    assert "card 1 device 0 (logic ID 1): dcmi_get_device_die_v2 failed" in npus[1].reason
    assert "DCMI error -8005 (inner error)" in npus[1].reason


def test_a_library_that_cannot_start_is_a_clear_error(
    fake_dcmi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BackendInitError, match="install the Ascend driver, or name the library"):
        DcmiBackend(str(tmp_path / "missing.so"))
    monkeypatch.setenv("FAKE_DCMI_INIT_FAIL", "1")
    with pytest.raises(BackendInitError, match="dcmi_init failed: DCMI error -8005"):
        DcmiBackend(str(fake_dcmi))


def test_health_changes_are_reported(
    fake_dcmi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = tmp_path / "health"
    health.write_text("-1")
    monkeypatch.setenv("FAKE_DCMI_CARDS", "2")
    monkeypatch.setenv("FAKE_DCMI_HEALTH_FILE", str(health))
    backend = DcmiBackend(str(fake_dcmi), poll=0.01)
    npus = _npus(backend)

    async def first_change() -> tuple[str, bool, str]:
        events = backend.health_events(npus)
        health.write_text("1")
        change = await asyncio.wait_for(anext(events), 5)
        await events.aclose()  # type: ignore[attr-defined]
        return change.uuid, change.healthy, change.reason

    assert asyncio.run(first_change()) == (npus[1].uuid, False, "DCMI health code 3 (0 is healthy)")
