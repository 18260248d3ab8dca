"""Admission on the real API server: bad device values are refused at creation with what to
write, clamped ones are admitted with a warning that the API server passes on (kubectl prints
it), and an ephemeral container added to a GPU pod is reviewed (as ``kubectl debug`` adds one:
a strategic-merge PATCH of the ``ephemeralcontainers`` subresource)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hami_common.k8s import PODS, ApiError, KubeClient, load_config
from hami_e2e.stack import HamiStack
from hami_extender.testing import gpu_pod

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


class WarningRecorder(httpx.AsyncBaseTransport):
    """The real HTTPS transport, keeping the ``Warning`` headers of every response."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.warnings: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.warnings += response.headers.get_list("warning")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(stack: HamiStack) -> tuple[KubeClient, WarningRecorder]:
    config = load_config(stack.cluster.kubeconfig)
    recorder = WarningRecorder(httpx.AsyncHTTPTransport(verify=config.ssl_context()))
    return KubeClient(config, transport=recorder), recorder


def test_bytes_for_gpumem_are_refused_at_creation_with_the_mib_to_write(
    hami_stack: HamiStack, hami_ns: str
) -> None:
    async def go() -> ApiError:
        async with hami_stack.client() as kube:
            pod = gpu_pod("bytes", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4Gi"})
            with pytest.raises(ApiError) as refused:
                await kube.create(PODS, pod, namespace=hami_ns)
            return refused.value

    error = asyncio.run(go())
    assert error.status == 400
    assert 'admission webhook "vgpu.hami.io" denied the request' in error.message
    assert "nvidia.com/gpumem is 4Gi" in error.message
    assert error.message.endswith("nvidia.com/gpumem is in MiB: write 4096")


def test_clamped_cores_are_admitted_with_a_warning_the_api_server_passes_on(
    hami_stack: HamiStack, hami_ns: str
) -> None:
    async def go() -> tuple[Json, list[str]]:
        kube, recorder = _client(hami_stack)
        async with kube:
            pod = gpu_pod("clamped", {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"})
            created = await kube.create(PODS, pod, namespace=hami_ns)
            return created, recorder.warnings

    created, warnings = asyncio.run(go())
    assert created["spec"]["schedulerName"] == "hami-scheduler"
    assert created["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpucores"] == "150"
    assert any(
        "nvidia.com/gpucores is 150, more than the 100 percent of one device; it is taken as 100"
        in w
        for w in warnings
    ), warnings


def _debugger(name: str, **fields: Any) -> Json:
    return {"name": name, "image": "busybox", "stdin": True, "tty": True, **fields}


async def _add_ephemeral(kube: KubeClient, ns: str, pod: str, container: Json) -> Json:
    """What ``kubectl debug`` sends: a strategic-merge patch of pods/<pod>/ephemeralcontainers."""
    return await kube.patch(
        PODS,
        pod,
        {"spec": {"ephemeralContainers": [container]}},
        namespace=ns,
        patch_type="strategic",
        subresource="ephemeralcontainers",
    )


def test_ephemeral_containers_on_a_gpu_pod_get_no_devices(
    hami_stack: HamiStack, hami_ns: str
) -> None:
    async def go() -> tuple[ApiError, ApiError, Json, Json]:
        async with hami_stack.client() as kube:
            await kube.create(PODS, gpu_pod("gpu", {"nvidia.com/gpu": "1"}), namespace=hami_ns)
            await kube.create(PODS, gpu_pod("plain", {}), namespace=hami_ns)
            privileged = _debugger("root", securityContext={"privileged": True})
            with pytest.raises(ApiError) as refused:
                await _add_ephemeral(kube, hami_ns, "gpu", privileged)
            env = [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]
            with pytest.raises(ApiError) as asks:
                await _add_ephemeral(kube, hami_ns, "gpu", _debugger("all", env=env))
            allowed = await _add_ephemeral(kube, hami_ns, "gpu", _debugger("shell"))
            plain = await _add_ephemeral(kube, hami_ns, "plain", privileged)
            return refused.value, asks.value, allowed, plain

    refused, asks, allowed, plain = asyncio.run(go())
    assert refused.status == 403
    assert "ephemeral container root is privileged and the pod holds shared devices" in (
        refused.message
    )
    assert asks.status == 403
    assert "remove NVIDIA_VISIBLE_DEVICES or set it to none" in asks.message
    [shell] = allowed["spec"]["ephemeralContainers"]
    assert shell["name"] == "shell"
    assert shell["env"] == [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}]
    # a pod without shared devices is not ours to police
    [root] = plain["spec"]["ephemeralContainers"]
    assert root["securityContext"] == {"privileged": True}
    assert "env" not in root
