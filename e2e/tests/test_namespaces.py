"""create_namespace returns once the namespace's default ServiceAccount exists, and says so
when the controller-manager never creates it (copies of it used to return silently after 30 s,
or wait forever). The API here is the in-memory one: the real controller-manager's side runs in
every e2e suite's namespace fixture."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hami_common.k8s import NAMESPACES, SERVICE_ACCOUNTS
from hami_common.k8s.testing import FakeApiServer
from hami_e2e.namespaces import create_namespace


def test_returns_once_the_default_service_account_exists() -> None:
    api = FakeApiServer()
    gets = 0

    def controller_manager(request: httpx.Request) -> httpx.Response | None:
        nonlocal gets
        if request.method == "GET" and request.url.path.endswith("/serviceaccounts/default"):
            gets += 1
            if gets == 3:  # it comes a little after the namespace
                api.add(SERVICE_ACCOUNTS, {"metadata": {"name": "default", "namespace": "t1"}})
        return None

    api.intercept = controller_manager

    async def main() -> str:
        async with api.client() as kube:
            return await create_namespace(kube, "t1", {"e2e": "true"})

    assert asyncio.run(main()) == "t1"
    assert gets == 3
    assert api.obj(NAMESPACES, "t1")["metadata"]["labels"] == {"e2e": "true"}


def test_no_default_service_account_is_a_timeout_naming_the_controller_manager() -> None:
    api = FakeApiServer()

    async def main() -> str:
        async with api.client() as kube:
            return await create_namespace(kube, "t2", within=0.3)

    with pytest.raises(TimeoutError, match="namespace t2: the controller-manager created no"):
        asyncio.run(main())
