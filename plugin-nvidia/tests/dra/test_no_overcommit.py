"""Property: whatever claims kubelet prepares and unprepares, in any order, the claims the driver
holds prepared never exceed a device's memory, cores or shares, and a claim is refused exactly
when it would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hami_common.deviceplugin.testing import FakeBackend, device_spec
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.checkpoint import Checkpoint
from hami_common.dra.server import PrepareError
from hami_common.dra.testing import allocated_claim
from hami_common.k8s import RESOURCE_CLAIMS
from hami_common.k8s.testing import FakeApiServer
from hami_plugin_nvidia.config import NvidiaOptions
from hami_plugin_nvidia.dra.devices import DRIVER_NAME
from hami_plugin_nvidia.dra.driver import NvidiaDraDriver
from hami_plugin_nvidia.policy import NvidiaPolicy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

MEMORY, SPLIT = 4096, 3
step = st.one_of(
    st.tuples(st.just("prepare"), st.integers(0, 1), st.integers(1, 3000), st.integers(0, 45)),
    st.tuples(st.just("unprepare"), st.integers(0, 20), st.just(0), st.just(0)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, max_size=20))
@example(steps=[("prepare", 0, 3000, 0), ("prepare", 0, 1500, 0)])  # memory, just over
@example(steps=[("prepare", 1, 10, 60), ("prepare", 1, 10, 41)])  # cores, just over
@example(steps=[("prepare", 0, 1, 0)] * 4)  # a fourth share of a device split in three
@example(steps=[("prepare", 0, 4000, 0), ("unprepare", 0, 0, 0), ("prepare", 0, 4000, 0)])
def test_prepared_claims_never_exceed_a_device(tmp_path_factory, steps) -> None:  # type: ignore[no-untyped-def]
    root: Path = tmp_path_factory.mktemp("prop")
    devices = FakeBackend(device_spec(2, node="n1", memory_mib=MEMORY)).discover()
    api = FakeApiServer()
    policy = NvidiaPolicy(NvidiaOptions(split_count=SPLIT), hook_path=root / "hook",
                          lock_dir=root / "lock")  # fmt: skip

    async def run() -> None:
        async with api.client() as client:
            checkpoint = Checkpoint(root / "checkpoint.json")
            driver = NvidiaDraDriver(client, "n1", policy, devices, checkpoint,
                                     cdi_dir=root / "cdi")  # fmt: skip
            held: dict[str, tuple[str, int, int]] = {}
            made: list[str] = []
            for i, (op, dev, memory, cores) in enumerate(steps):
                if op == "unprepare":
                    if made:
                        uid = made[dev % len(made)]
                        await driver.unprepare(dra.Claim(namespace="default", name=uid, uid=uid))
                        held.pop(uid, None)
                    continue
                name, device = f"c{i}", f"gpu-{dev}"
                api.add(RESOURCE_CLAIMS, allocated_claim(
                    name, uid=name, driver=DRIVER_NAME, pool="n1",
                    devices=[(device, {"memory": f"{memory}Mi", "cores": str(cores)})],
                ))  # fmt: skip
                made.append(name)
                on = [v for v in held.values() if v[0] == device]
                fits = (sum(v[1] for v in on) + memory <= MEMORY
                        and sum(v[2] for v in on) + cores <= 100 and len(on) < SPLIT)  # fmt: skip
                refused = ""
                try:
                    await driver.prepare(dra.Claim(namespace="default", name=name, uid=name))
                except PrepareError as exc:
                    refused = str(exc)
                assert bool(refused) is not fits, (name, device, refused or "prepared")
                if refused:
                    continue
                held[name] = (device, memory, cores)
            assert set(driver.checkpoint.claims) == set(held)

    asyncio.run(run())
