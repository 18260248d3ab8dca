"""Fakes shared by the tests and the e2e harness: a device backend driven by a device spec.

The spec is JSON (or YAML), either a list of devices or ``{"devices": [...], "init_error": ...}``.
A device is the e2e node pool's inventory entry (``hami_e2e.nodes``) plus optional topology and
injected failures::

    {"index": 0, "uuid": "GPU-...", "model": "Tesla V100-PCIE-32GB", "memory_mib": 32768,
     "numa": 0, "healthy": true,
     "links": {"GPU-other": {"p2p": "SameBoard", "nvlinks": 2}},
     "fail": "query"}

``fail``: ``query`` (discovery of that device fails: it is reported unhealthy),
``health`` (the health watcher reports it unhealthy, like an XID error), ``links`` (its topology
query fails: it scores 0). ``init_error`` makes discovery fail as a whole (no driver).

With ``spec_path``, the health watcher re-reads the file every ``poll`` seconds, so a test or the
harness flips ``healthy`` in the file and the plugin process follows.

For the tests of a plugin's entry point: `run_plugin` runs it as its own process, and
`undocumented` lists the settings its ``--help`` leaves out; `build_fake_library` builds a
fake vendor library for the tests of a plugin's real backend; `allocate_request` is kubelet's
Allocate for the allocator tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hami_common.deviceplugin.api import api_pb2 as pb
from hami_common.deviceplugin.backend import (
    BackendInitError,
    HealthChange,
    Link,
    Links,
    PhysicalDevice,
)
from hami_common.settings import ServiceSettings

Json = dict[str, Any]
_XID = "XID 79: GPU has fallen off the bus (injected)"
_SPEC_UNHEALTHY = "unhealthy in the device spec"


class SpecError(ValueError):
    """A device spec that is not one; the message names the device and key."""


def load_spec(path: Path) -> Json:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"device spec {path}: {exc}") from None
    return normalise_spec(data, str(path))


def normalise_spec(data: Any, where: str = "device spec") -> Json:
    if isinstance(data, list):
        data = {"devices": data}
    if not isinstance(data, dict) or not isinstance(data.get("devices", []), list):
        raise SpecError(f"{where}: expected a list of devices or {{'devices': [...]}}")
    for i, dev in enumerate(data.get("devices", [])):
        if not isinstance(dev, dict) or not isinstance(dev.get("uuid"), str):
            raise SpecError(f"{where}: devices[{i}]: needs a string 'uuid'")
        if dev.get("fail") not in (None, "query", "health", "links"):
            raise SpecError(
                f"{where}: devices[{i}].fail: {dev.get('fail')!r} is not query, health or links"
            )
    return data


def device_spec(
    count: int,
    *,
    node: str = "node",
    model: str = "Tesla V100-PCIE-32GB",
    memory_mib: int = 32768,
    numa_nodes: int = 1,
    nvlinks: int = 0,
) -> Json:
    """A spec of ``count`` identical devices (UUIDs derived from ``node``); with ``nvlinks``,
    every pair is linked by that many links on one board."""
    per_numa = max(1, -(-count // numa_nodes))
    uuids = [f"GPU-{node}-{i:04d}" for i in range(count)]
    devices: list[Json] = []
    for i, uuid in enumerate(uuids):
        dev: Json = {
            "index": i,
            "uuid": uuid,
            "model": model,
            "memory_mib": memory_mib,
            "numa": min(i // per_numa, numa_nodes - 1),
            "healthy": True,
        }
        if nvlinks:
            dev["links"] = {o: {"p2p": "SameBoard", "nvlinks": nvlinks} for o in uuids if o != uuid}
        devices.append(dev)
    return {"devices": devices}


def _device(dev: Json) -> PhysicalDevice:
    if dev.get("fail") == "query":
        return PhysicalDevice(
            uuid=dev["uuid"],
            index=int(dev.get("index", 0)),
            model=str(dev.get("model", "")),
            memory_mib=0,
            numa=int(dev.get("numa", 0)),
            healthy=False,
            reason="device query failed (injected)",
        )
    return PhysicalDevice(
        uuid=dev["uuid"],
        index=int(dev.get("index", 0)),
        model=str(dev.get("model", "")),
        memory_mib=int(dev.get("memory_mib", 0)),
        numa=max(0, int(dev.get("numa", 0))),
        mode=str(dev.get("mode", "hami-core")),
        healthy=bool(dev.get("healthy", True)),
        reason="" if dev.get("healthy", True) else "unhealthy in the device spec",
    )


class FakeBackend:
    """A `DeviceBackend` over a device spec (a dict, or a file it re-reads for health)."""

    def __init__(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        spec_path: Path | None = None,
        poll: float = 0.2,
    ) -> None:
        if (spec is None) == (spec_path is None):
            raise ValueError("give exactly one of spec and spec_path")
        self.spec_path = spec_path
        self.spec = load_spec(spec_path) if spec_path else normalise_spec(dict(spec or {}))
        self.poll = poll
        self.closed = False
        self._changes: asyncio.Queue[HealthChange] = asyncio.Queue()

    def device_from_spec(self, dev: Json) -> PhysicalDevice:
        """One device of the spec as discovered (a vendor's fake adds its own fields)."""
        return _device(dev)

    def discover(self) -> list[PhysicalDevice]:
        if self.spec.get("init_error"):
            raise BackendInitError(str(self.spec["init_error"]))
        devices = [self.device_from_spec(d) for d in self.spec.get("devices", [])]
        return sorted(devices, key=lambda d: d.index)

    def links(self, devices: Sequence[PhysicalDevice]) -> Links:
        wanted = {d.uuid for d in devices}
        out: dict[tuple[str, str], Link] = {}
        for dev in self.spec.get("devices", []):
            if dev["uuid"] not in wanted or dev.get("fail") == "links":
                continue
            for other, link in (dev.get("links") or {}).items():
                if other in wanted:
                    out[(dev["uuid"], other)] = Link(
                        str(link.get("p2p", "")), int(link.get("nvlinks", 0))
                    )
        return out

    def set_health(self, uuid: str, healthy: bool, reason: str = "") -> None:
        """Reports a health change (in-process tests)."""
        self._changes.put_nowait(HealthChange(uuid, healthy, reason or "set by the test"))

    async def health_events(self, devices: Sequence[PhysicalDevice]) -> AsyncIterator[HealthChange]:
        for dev in self.spec.get("devices", []):
            if dev.get("fail") == "health":
                yield HealthChange(
                    dev["uuid"], False, "XID 79: GPU has fallen off the bus (injected)"
                )
        known = {d.uuid: d.healthy for d in devices}
        while True:
            try:
                change: HealthChange | None = await asyncio.wait_for(self._changes.get(), self.poll)
            except TimeoutError:
                change = None
            if change is not None:
                yield change
            if self.spec_path is None:
                continue
            try:
                fresh = load_spec(self.spec_path)
            except SpecError:
                continue  # a half-written file: read it again next time
            for dev in fresh.get("devices", []):
                healthy = bool(dev.get("healthy", True)) and dev.get("fail") != "health"
                if dev["uuid"] in known and known[dev["uuid"]] != healthy:
                    known[dev["uuid"]] = healthy
                    yield HealthChange(
                        dev["uuid"], healthy, "" if healthy else "unhealthy in the device spec"
                    )

    def close(self) -> None:
        self.closed = True


def run_plugin(
    package: str, *args: str, fake_env: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m <package> <args>``: a plugin's real entry point as its own process (as the
    DaemonSet runs it), without this process's ``HAMI_*``, ``OTEL_*`` and ``NODE_NAME`` (and the
    variables starting with ``fake_env``: a fake vendor library's), with ``env`` on top; help
    is not wrapped below 400 columns."""
    drop = ("HAMI_", "OTEL_", *((fake_env,) if fake_env else ()))
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "NODE_NAME"}
    return subprocess.run(
        [sys.executable, "-m", package, *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**base, "COLUMNS": "400", **env},
    )  # fmt: skip


def undocumented(settings_type: type[ServiceSettings], help_text: str) -> list[str]:
    """The settings that ``--help`` (``help_text``) does not document: no description, or its
    flag or env variable not in the text."""
    return [
        name
        for name, info in settings_type.model_fields.items()
        if not info.description
        or settings_type.flag(name) not in help_text
        or settings_type.env_name(name) not in help_text
    ]


def build_fake_library(source: Path, out: Path) -> Path:
    """A fake vendor library (``plugin-<vendor>/fake/fake_*.c``, from the vendor's documented
    signatures) built with gcc into the shared object ``out``, exporting only its API;
    `FileNotFoundError` when gcc is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError(f"gcc is needed to build the fake {out.name} from {source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
         "-o", str(out), str(source)],
        check=True,
    )  # fmt: skip
    return out


def allocate_request(*counts: int) -> pb.AllocateRequest:
    """kubelet's Allocate with one container request per count (device IDs ``x-0``, ``x-1``...:
    only their number matters to HAMi's protocol)."""
    return pb.AllocateRequest(
        container_requests=[
            pb.ContainerAllocateRequest(devices_ids=[f"x-{i}" for i in range(n)]) for n in counts
        ]
    )
