"""kubelet's DRA manager role, for fake nodes: what a real kubelet does with a DRA driver.

It finds the driver's registration socket in the node's registry folder, calls ``GetInfo``
(checks ``DRAPlugin`` and ``v1.DRAPlugin``) and ``NotifyRegistrationStatus``; for a pod bound to
its node it resolves the pod's claims (``spec.resourceClaims[].resourceClaimName``, or the
claim the resourceclaim controller made from a template: ``status.resourceClaimStatuses``),
checks each is reserved for the pod, and calls ``NodePrepareResources`` with their namespace,
name and UID, as kubelet does before the containers start; ``release`` calls
``NodeUnprepareResources``. `DraManager.run` does both on its own, as kubelet does: it prepares
every pod bound to the node once its claims are reserved for it, and unprepares them when the
pod goes. Real gRPC over the driver's real unix sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import grpc.aio
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.api import registration_pb2 as reg
from hami_common.dra.api.services import (
    DRA_PLUGIN_TYPE,
    SUPPORTED_VERSION,
    DraStub,
    RegistrationStub,
)
from hami_common.k8s import PODS, RESOURCE_CLAIMS, ApiError, KubeClient, list_then_watch

log = logging.getLogger(__name__)
Json = dict[str, Any]
TIMEOUT = 45.0
"""kubelet's timeout for a DRA call."""


class DraError(RuntimeError):
    pass


class DraManager:
    def __init__(self, node: str, registry_dir: Path, client: KubeClient) -> None:
        self.node = node
        self.registry_dir = registry_dir
        self.client = client
        self.info: reg.PluginInfo | None = None
        self.prepared: dict[str, dra.NodePrepareResourceResponse] = {}
        """Claim UID -> the driver's answer."""
        self.errors: list[str] = []
        """What the driver refused, while `run` ran."""
        self.pods: dict[str, list[dra.Claim]] = {}
        """Pod UID -> its prepared claims, while `run` runs."""

    async def register(self, within: float = 60.0) -> reg.PluginInfo:
        deadline = time.monotonic() + within
        while not (sockets := sorted(self.registry_dir.glob("*-reg.sock"))):
            if time.monotonic() > deadline:
                raise DraError(f"node {self.node}: no DRA driver registered in {within}s")
            await asyncio.sleep(0.1)
        async with grpc.aio.insecure_channel(f"unix://{sockets[0]}") as channel:
            stub = RegistrationStub(channel)
            info = await stub.GetInfo(reg.InfoRequest(), timeout=TIMEOUT)
            ok = info.type == DRA_PLUGIN_TYPE and SUPPORTED_VERSION in info.supported_versions
            error = "" if ok else f"unsupported plugin {info.type} {list(info.supported_versions)}"
            await stub.NotifyRegistrationStatus(
                reg.RegistrationStatus(plugin_registered=ok, error=error), timeout=TIMEOUT
            )
        if not ok:
            raise DraError(f"node {self.node}: {error}")
        self.info = info
        return info

    async def claims_of(self, pod: Json) -> list[dra.Claim]:
        """The pod's claims as kubelet sends them; each must be reserved for the pod."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        statuses = {
            s["name"]: s.get("resourceClaimName")
            for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []
        }
        out = []
        for entry in spec.get("resourceClaims") or []:
            name = entry.get("resourceClaimName") or statuses.get(entry["name"])
            if not name:
                raise DraError(f"pod {meta['name']}: claim {entry['name']} has no ResourceClaim")
            claim = await self.client.get(RESOURCE_CLAIMS, name, namespace=meta["namespace"])
            reserved = (claim.get("status") or {}).get("reservedFor") or []
            if not any(r.get("uid") == meta["uid"] for r in reserved):
                raise DraError(f"claim {name} is not reserved for pod {meta['name']}")
            out.append(dra.Claim(namespace=meta["namespace"], name=name,
                                 uid=claim["metadata"]["uid"]))  # fmt: skip
        return out

    async def _stub_call(self, method: str, claims: list[dra.Claim]) -> Any:
        if self.info is None:
            raise DraError(f"node {self.node}: no DRA driver registered")
        async with grpc.aio.insecure_channel(f"unix://{self.info.endpoint}") as channel:
            stub = DraStub(channel)
            if method == "prepare":
                return await stub.NodePrepareResources(
                    dra.NodePrepareResourcesRequest(claims=claims), timeout=TIMEOUT
                )
            return await stub.NodeUnprepareResources(
                dra.NodeUnprepareResourcesRequest(claims=claims), timeout=TIMEOUT
            )

    async def admit(self, pod: Json) -> dict[str, dra.NodePrepareResourceResponse]:
        """Prepares the claims of a pod bound to this node; the driver's answer per claim UID."""
        if (pod.get("spec") or {}).get("nodeName") != self.node:
            raise DraError(f"pod {pod['metadata']['name']} is not bound to {self.node}")
        return await self.prepare(await self.claims_of(pod))

    async def prepare(self, claims: list[dra.Claim]) -> dict[str, dra.NodePrepareResourceResponse]:
        answer: dra.NodePrepareResourcesResponse = await self._stub_call("prepare", claims)
        got = {c.uid: answer.claims[c.uid] for c in claims}
        self.prepared.update(got)
        return got

    async def release(self, claims: list[dra.Claim]) -> dict[str, str]:
        """Unprepares claims (a pod's, read before it was deleted); the error per claim UID."""
        answer: dra.NodeUnprepareResourcesResponse = await self._stub_call("unprepare", claims)
        for c in claims:
            self.prepared.pop(c.uid, None)
        return {c.uid: answer.claims[c.uid].error for c in claims}

    async def run(self) -> None:
        """Until cancelled: prepares the claims of each pod bound to this node (once they are
        reserved for it; a pod whose claims are not yet is tried again at its next change) and
        unprepares them when the pod is deleted. ``errors`` records the driver's refusals."""
        held = self.pods
        selector = f"spec.nodeName={self.node}"
        async for event in list_then_watch(self.client, PODS, field_selector=selector):
            pods = event.object["items"] if event.type == "SYNC" else [event.object]
            for pod in pods:
                uid = pod["metadata"]["uid"]
                if event.type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                    claims = held.pop(uid, None)
                    if claims:
                        for claim_uid, error in (await self.release(claims)).items():
                            if error:
                                self.errors.append(f"unprepare {claim_uid}: {error}")
                        meta = pod["metadata"]
                        log.info("NodeUnprepareResources for %s/%s: %s", meta["namespace"],
                                 meta["name"], ", ".join(c.name for c in claims))  # fmt: skip
                    continue
                if uid in held or not (pod.get("spec") or {}).get("resourceClaims"):
                    continue
                try:
                    claims = await self.claims_of(pod)
                except (DraError, ApiError) as exc:
                    log.info("pod %s: not prepared yet (%s)", pod["metadata"]["name"], exc)
                    continue
                answer = await self.prepare(claims)
                self.errors += [f"prepare {u}: {a.error}" for u, a in answer.items() if a.error]
                held[uid] = claims
                for c in claims:
                    log.info("%s", describe_prepared(pod, c, answer[c.uid]))


def describe_prepared(pod: Json, claim: dra.Claim, answer: dra.NodePrepareResourceResponse) -> str:
    """One log line for a prepared claim: the devices and CDI devices the container would get."""
    where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']} claim {claim.name}"
    if answer.error:
        return f"NodePrepareResources for {where} failed: {answer.error}"
    devices = ", ".join(
        f"{d.pool_name}/{d.device_name}"
        + (f" share {d.share_id}" if d.share_id else "")
        + f" (CDI {','.join(d.cdi_device_ids)})"
        for d in answer.devices
    )
    return f"NodePrepareResources for {where}: {devices}"
