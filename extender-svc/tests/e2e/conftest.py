"""The whole control plane of hami-rs on the real Kubernetes components.

`hami_stack` (session) starts its own local control plane whose kube-scheduler has the extender
configured as HAMi's chart does (§2.7: ``nodeCacheCapable``, filter and bind verbs, the device
resources ``ignoredByScheduler``), the webhook as a real process that the real kube-apiserver calls
over TLS, and the extender as a real process (so tests can kill it), all from
`hami_e2e.stack` (which the demo shares). The extender serves HTTPS and kube-scheduler presents
its client certificate. `manual_extender` (session) is a second extender that places only pods
of the scheduler name ``nobody``, which no kube-scheduler profile has: tests act as
kube-scheduler there, calling its verbs in the order they need. `gpu_nodes` makes fake nodes
with what runs on a real GPU node: the real NVIDIA device plugin (its own process, fake backend)
on each, and kubelet's device-manager stand-in (`hami_e2e.kubelet`, its own process) calling the
plugins' Allocate for every pod bound there. With ``agents=False`` the nodes are bare: a test
then runs `hami_e2e.kubelet.node.GpuNode` itself, to decide when kubelet calls Allocate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hami_common.k8s import (
    NAMESPACES,
    PODS,
    NotFound,
)
from hami_e2e.components import free_port
from hami_e2e.kubelet.node import NodeAgents, start_agents
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import NodePool, create_nodes, delete_nodes
from hami_e2e.stack import (
    MANUAL_SCHEDULER,
    WEBHOOK_NAMESPACE_LABEL,
    HamiStack,
    running_stack,
)

Json = dict[str, Any]


@pytest.fixture(scope="session")
def hami_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HamiStack]:
    with running_stack(tmp_path_factory.mktemp("hami-stack")) as stack:
        yield stack


@dataclass(frozen=True)
class Manual:
    """An extender for pods of ``nobody`` (kube-scheduler never calls it: the test does)."""

    port: int
    node_lock: str


@pytest.fixture(scope="session", params=["memory", "annotation"])
def manual_extender(hami_stack: HamiStack, request: pytest.FixtureRequest) -> Manual:
    """One per way of allocating one pod per node at a time (``--node-lock``), each with its
    own Lease; binds wait at most 3 s for a node."""
    port, mode = free_port(), str(request.param)
    flags = ("--scheduler-name", MANUAL_SCHEDULER, "--lease-name", f"hami-extender-manual-{mode}",
             "--node-lock", mode, "--lock-wait-seconds", "3")  # fmt: skip
    hami_stack.extender(port, *flags, name=f"manual-{mode}").wait_ready(60)
    return Manual(port, mode)


@pytest.fixture
def hami_ns(hami_stack: HamiStack, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace whose pods go through the webhook."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    name += "-" + os.urandom(2).hex()

    async def create() -> None:
        async with hami_stack.client() as kube:
            await create_namespace(kube, name, {WEBHOOK_NAMESPACE_LABEL: "true"})

    asyncio.run(create())
    yield name

    async def delete() -> None:
        # The test's pods go first, at once: a pod still Pending while its namespace terminates
        # would be placed on the next test's nodes and hold devices there until its
        # reservation expires.
        async with hami_stack.client() as kube:
            for pod in (await kube.list(PODS, namespace=name)).get("items") or []:
                with contextlib.suppress(NotFound):
                    await kube.delete(PODS, pod["metadata"]["name"], namespace=name,
                                      grace_period_seconds=0)  # fmt: skip
            with contextlib.suppress(NotFound):
                await kube.delete(NAMESPACES, name)

    asyncio.run(delete())


@pytest.fixture
def gpu_nodes(hami_stack: HamiStack) -> Iterator[Callable[..., list[str]]]:
    """``gpu_nodes(pool, agents=True)``: the pool's nodes, with their plugins registered."""
    pools: list[NodePool] = []
    running: list[NodeAgents] = []

    def make(pool: NodePool, *, agents: bool = True) -> list[str]:
        pools.append(pool)

        async def go() -> list[str]:
            async with hami_stack.client() as kube:
                names = await create_nodes(kube, [pool])
                if agents:
                    running.append(await start_agents(hami_stack.cluster, kube, names))
                return names

        return asyncio.run(go())

    yield make
    for agents in running:
        agents.stop()

    async def cleanup() -> None:
        async with hami_stack.client() as kube:
            for pool in pools:
                await delete_nodes(kube, pool)

    asyncio.run(cleanup())
