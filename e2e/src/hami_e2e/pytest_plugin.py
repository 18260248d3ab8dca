"""pytest fixtures for suites that need Kubernetes (loaded for every package of the workspace
through the ``pytest11`` entry point; nothing starts until a test asks for a fixture).

- ``kube_cluster`` (session): the running control plane (`backend.Cluster`);
- ``kube_scheduler_extra`` (session): override it to configure kube-scheduler (extenders).
- ``kube_namespace`` (function): a fresh namespace whose ``default`` ServiceAccount exists;
  deleted after the test.
- ``fake_nodes`` (function): a factory ``fake_nodes(NodePool(...)) -> [names]`` for sync tests;
  the nodes are deleted after the test.

When a test that uses the cluster fails, the tail of every component's log is attached to its
report. Mark such tests ``@pytest.mark.e2e``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hami_common.k8s import NAMESPACES, NotFound

from hami_e2e.backend import Cluster, make_cluster
from hami_e2e.namespaces import create_namespace
from hami_e2e.nodes import NodePool, create_nodes, delete_nodes

_STASH_CLUSTER = pytest.StashKey[Cluster]()


@pytest.fixture(scope="session")
def kube_scheduler_extra() -> dict[str, Any] | None:
    """Sections merged into the KubeSchedulerConfiguration (``extenders``, ``profiles``...).
    Override this fixture in a package's conftest.py to run kube-scheduler with our extender."""
    return None


@pytest.fixture(scope="session")
def kube_cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    kube_scheduler_extra: dict[str, Any] | None,
) -> Iterator[Cluster]:
    """The control plane for the whole session (local processes, or kind where available)."""
    workdir = Path(os.environ.get("HAMI_E2E_WORKDIR") or tmp_path_factory.mktemp("cluster"))
    cluster = make_cluster(workdir, kube_scheduler_extra)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    request.config.stash[_STASH_CLUSTER] = cluster
    try:
        yield cluster
    finally:
        cluster.stop()


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"{base or 't'}-{secrets.token_hex(3)}"


async def _create_namespace(cluster: Cluster, name: str, within: float = 30.0) -> None:
    async with cluster.client() as kube:
        await create_namespace(kube, name, {"e2e": "true"}, within=within)


async def _delete_namespace(cluster: Cluster, name: str) -> None:
    async with cluster.client() as kube:
        with contextlib.suppress(NotFound):
            await kube.delete(NAMESPACES, name)


@pytest.fixture
def kube_namespace(kube_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, with its default ServiceAccount; deleted after."""
    kube_cluster.check()
    name = _namespace_name(request.node.name)
    asyncio.run(_create_namespace(kube_cluster, name))
    try:
        yield name
    finally:
        asyncio.run(_delete_namespace(kube_cluster, name))


@pytest.fixture
def fake_nodes(kube_cluster: Cluster) -> Iterator[Callable[[NodePool], list[str]]]:
    """``fake_nodes(NodePool(...))`` creates Ready kwok nodes and returns their names."""
    pools: list[NodePool] = []

    async def _create(pool: NodePool) -> list[str]:
        async with kube_cluster.client() as kube:
            return await create_nodes(kube, [pool])

    def factory(pool: NodePool) -> list[str]:
        pools.append(pool)
        return asyncio.run(_create(pool))

    yield factory

    async def _cleanup() -> None:
        async with kube_cluster.client() as kube:
            for pool in pools:
                await delete_nodes(kube, pool)

    if pools:
        asyncio.run(_cleanup())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    cluster = item.config.stash.get(_STASH_CLUSTER, None)
    if (
        report.failed
        and cluster is not None
        and "kube_cluster" in getattr(item, "fixturenames", ())
    ):
        report.sections.append(("control-plane logs", cluster.log_tails()))
    return report
