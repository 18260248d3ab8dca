"""The CNDev backend against a fake libcndev.so built from the documented signatures: discovery
(UUIDs as Cambricon's plugin names them, card names, memory, NUMA), sMLU instances made from a
reused or new profile, CNDev's refusals, a library that cannot start, health changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hami_common.deviceplugin.backend import BackendInitError
from hami_plugin_cambricon.cndev import CndevBackend
from hami_plugin_cambricon.devices import MluDevice, SmluError


def test_mlus_are_discovered(fake_cndev: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CNDEV_CARDS", "4")
    monkeypatch.setenv("FAKE_CNDEV_MODEL", "MLU370-X8")
    monkeypatch.setenv("FAKE_CNDEV_MEMORY_MB", "49152")
    found = CndevBackend(str(fake_cndev)).discover()
    assert all(isinstance(d, MluDevice) for d in found)
    assert [d.uuid for d in found][:2] == [
        "MLU-00000000-fake-4000-8000-000000000000",
        "MLU-00000001-fake-4000-8000-000000000001",
    ]
    assert {(d.model, d.memory_mib) for d in found} == {("MLU370-X8", 49152)}
    assert [d.numa for d in found] == [0, 0, 1, 1]
    assert all(d.healthy for d in found)


def test_smlus_reuse_a_profile_of_the_same_size(
    fake_cndev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CNDEV_SMLU_LIMIT", "2")
    backend = CndevBackend(str(fake_cndev))
    backend.discover()
    a = backend.create_smlu(1, 10, 5120)
    b = backend.create_smlu(1, 10, 5120)
    c = backend.create_smlu(0, 50, 2048)
    assert a.profile_id == b.profile_id != c.profile_id
    assert a.handle != b.handle
    assert (a.slot, c.slot) == (1, 0)
    assert a.dev_node.startswith("/dev/cambricon-smlu1/")
    assert a.annotation == f"{a.profile_id}_{a.handle}_1_{a.instance_id}"
    with pytest.raises(SmluError, match=r"MLU 1: cndevCreateSMluInstanceByProfileId failed: "
                       r"CNDev error 9 \(insufficient space\)"):  # fmt: skip
        backend.create_smlu(1, 10, 5120)
    with pytest.raises(SmluError, match="invalid argument"):
        backend.create_smlu(0, 10, 10**9)  # more memory than the MLU has


def test_a_library_that_cannot_start_is_a_clear_error(
    fake_cndev: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BackendInitError, match="install Cambricon's driver"):
        CndevBackend(str(tmp_path / "missing.so"))
    monkeypatch.setenv("FAKE_CNDEV_INIT_FAIL", "1")
    with pytest.raises(BackendInitError, match=r"cndevInit failed: CNDev error 1 \(no driver\)"):
        CndevBackend(str(fake_cndev))


def test_health_changes_are_reported(
    fake_cndev: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = tmp_path / "health"
    health.write_text("-1")
    monkeypatch.setenv("FAKE_CNDEV_HEALTH_FILE", str(health))
    backend = CndevBackend(str(fake_cndev), poll=0.01)
    found = backend.discover()

    async def first_change() -> tuple[str, bool, str]:
        events = backend.health_events(found)
        health.write_text("1")
        change = await asyncio.wait_for(anext(events), 5)
        await events.aclose()  # type: ignore[attr-defined]
        return change.uuid, change.healthy, change.reason

    uuid, healthy, reason = asyncio.run(first_change())
    assert (uuid, healthy) == (found[1].uuid, False)
    assert "device state 0, driver state 4" in reason
