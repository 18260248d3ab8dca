"""Prepare and unprepare of the NVIDIA DRA driver.

Prepare reads the claim (kubelet sends only its namespace, name and UID), takes the devices the
scheduler allocated from this node's pool and what each consumed, checks that together with the
claims already prepared no device is over-committed (the driver is the last line of defence
against a stale scheduler), and then writes what the device plugin's Allocate writes, through
the same code (`NvidiaPolicy.hook_edits`): the per-claim folder and read-only limits file on the
host, and the env and mounts, here as a CDI spec named after the claim. The claim is recorded
in the checkpoint last; prepare of a recorded claim answers from it without reading the API.
Unprepare removes the spec, the files and the record; an unknown claim is already unprepared.

With a tracer, a first prepare is a span ``NodePrepareResources`` in the trace of the pod the
claim is reserved for (the webhook's ``hami.io/trace-context``, as ``Allocate`` on the
device-plugin path), with the claim, the node, the devices and what each consumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami_common.deviceplugin.backend import PhysicalDevice
from hami_common.dra.api import dra_pb2 as dra
from hami_common.dra.cdi import CdiEdits, CdiMount, qualified_name, remove_spec, write_spec
from hami_common.dra.checkpoint import Checkpoint
from hami_common.dra.claims import ClaimError, allocated_devices
from hami_common.dra.server import PrepareError
from hami_common.k8s import PODS, RESOURCE_CLAIMS, ApiError, KubeClient, NotFound
from hami_common.telemetry import context_from_pod
from opentelemetry import trace

from hami_plugin_nvidia.dra.devices import CDI_KIND, DRIVER_NAME, capacity, consumed, device_name
from hami_plugin_nvidia.policy import NvidiaPolicy

log = logging.getLogger(__name__)
Json = dict[str, Any]


def _key(uid: str) -> str:
    return f"claim-{uid}"


class NvidiaDraDriver:
    def __init__(
        self,
        client: KubeClient,
        node: str,
        policy: NvidiaPolicy,
        devices: Sequence[PhysicalDevice],
        checkpoint: Checkpoint,
        *,
        cdi_dir: Path,
        name: str = DRIVER_NAME,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.client = client
        self.node = node
        self.policy = policy
        self.name = name
        self.cdi_dir = cdi_dir
        self.checkpoint = checkpoint
        self.devices = {device_name(d): d for d in devices}
        self.tracer = tracer
        self._lock = asyncio.Lock()

    # -- prepare ------------------------------------------------------------------------------

    async def prepare(self, claim: dra.Claim) -> list[dra.Device]:
        async with self._lock:
            entry = self.checkpoint.get(claim.uid)
            if entry is None:
                entry = await self._entry(claim)
                self._materialize(claim.uid, entry)
                self.checkpoint.put(claim.uid, entry)
                log.info("prepared claim %s/%s: %s", claim.namespace, claim.name, entry["shares"])
            else:
                self._materialize(claim.uid, entry)
            return [
                dra.Device(
                    request_names=[s["request"]],
                    pool_name=self.node,
                    device_name=s["device"],
                    cdi_device_ids=[qualified_name(CDI_KIND, f"{claim.uid}-{s['device']}")],
                    **({"share_id": s["share_id"]} if s["share_id"] else {}),
                )
                for s in entry["shares"]
            ]

    async def _entry(self, claim: dra.Claim) -> Json:
        ref = f"{claim.namespace}/{claim.name}"
        try:
            obj = await self.client.get(RESOURCE_CLAIMS, claim.name, namespace=claim.namespace)
        except NotFound:
            raise PrepareError(f"claim {ref} not found") from None
        except ApiError as exc:
            raise PrepareError(f"claim {ref}: reading it failed: {exc}") from None
        if self.tracer is None:
            return self._shares(ref, claim.uid, obj)
        pod = await self._consumer(obj)
        with self.tracer.start_as_current_span(
            "NodePrepareResources", context=context_from_pod(pod) if pod else None
        ) as span:
            span.set_attribute("k8s.namespace.name", claim.namespace)
            span.set_attribute("k8s.node.name", self.node)
            span.set_attribute("hami.dra.claim", claim.name)
            if pod is not None:
                span.set_attribute("k8s.pod.name", str(pod["metadata"].get("name", "")))
            try:
                entry = self._shares(ref, claim.uid, obj)
            except PrepareError as exc:
                span.set_status(trace.StatusCode.ERROR, str(exc))
                raise
            shares = entry["shares"]
            span.set_attribute("hami.dra.devices", [s["device"] for s in shares])
            span.set_attribute("hami.dra.memory_mib", [s["memory_mib"] for s in shares])
            span.set_attribute("hami.dra.cores", [s["cores"] for s in shares])
            return entry

    async def _consumer(self, claim: Json) -> Json | None:
        """The pod the claim is reserved for (its metadata), for the trace; None when there is
        none or it cannot be read (the span then starts a trace of its own)."""
        reserved = (claim.get("status") or {}).get("reservedFor") or []
        pod = next((r for r in reserved if r.get("resource") == "pods"), None)
        if pod is None:
            return None
        try:
            return await self.client.get(PODS, str(pod.get("name")),
                                         namespace=claim["metadata"]["namespace"],
                                         metadata_only=True)  # fmt: skip
        except ApiError:
            return None

    def _shares(self, ref: str, uid: str, obj: Json) -> Json:
        try:
            allocated = allocated_devices(obj, uid=uid, driver=self.name, pool=self.node)
        except ClaimError as exc:
            raise PrepareError(str(exc)) from None
        shares: list[Json] = []
        for a in allocated:
            dev = self.devices.get(a.device)
            if dev is None:
                raise PrepareError(f"claim {ref}: device {a.device} is not on node {self.node}")
            full = capacity(dev, self.policy.options)
            try:
                got = consumed(a.consumed, full, f"claim {ref} device {a.device}")
            except ValueError as exc:
                raise PrepareError(str(exc)) from None
            shares.append(
                {
                    "request": a.request,
                    "device": a.device,
                    "uuid": dev.uuid,
                    "share_id": a.share_id,
                    "memory_mib": got.memory_mib,
                    "cores": got.cores,
                }
            )
        self._check_fits(ref, uid, shares)
        meta = obj["metadata"]
        return {"namespace": meta["namespace"], "name": meta["name"], "shares": shares}

    def _check_fits(self, ref: str, uid: str, shares: list[Json]) -> None:
        """Refuses a claim that, with the prepared ones, would over-commit a device."""
        for share in shares:
            dev = self.devices[share["device"]]
            full = capacity(dev, self.policy.options)
            memory, cores, count = share["memory_mib"], share["cores"], 1
            for other_uid, other in self.checkpoint.claims.items():
                for s in other["shares"]:
                    if other_uid != uid and s["device"] == share["device"]:
                        memory, cores, count = (
                            memory + s["memory_mib"],
                            cores + s["cores"],
                            count + 1,
                        )
            if (
                memory > full.memory_mib
                or cores > full.cores
                or (count > self.policy.options.split_count)
            ):
                raise PrepareError(
                    f"claim {ref}: device {share['device']} would be over-committed "
                    f"({memory}/{full.memory_mib} MiB, {cores}/{full.cores} cores, {count}/"
                    f"{self.policy.options.split_count} shares with the claims prepared)"
                )

    def _materialize(self, uid: str, entry: Json) -> None:
        """The limits file, folders and CDI spec of a claim (rewritten the same when present)."""
        shares = entry["shares"]
        ref = f"{entry['namespace']}/{entry['name']}"
        try:
            edits = self.policy.hook_edits(
                who=f"claim {ref}",
                owner=f"claim {ref} (uid {uid})",
                key=_key(uid),
                uuids=[s["uuid"] for s in shares],
                memory_mib=[s["memory_mib"] for s in shares],
                cores=shares[0]["cores"],
                cache_id=_key(uid),
            )
        except (ValueError, OSError) as exc:
            raise PrepareError(f"claim {ref}: {exc}") from None
        per_device = {f"CUDA_DEVICE_MEMORY_LIMIT_{i}" for i in range(len(shares))}
        devices = {
            f"{uid}-{s['device']}": CdiEdits(
                env={f"CUDA_DEVICE_MEMORY_LIMIT_{i}": edits.env[f"CUDA_DEVICE_MEMORY_LIMIT_{i}"]}
            )
            for i, s in enumerate(shares)
        }
        common = CdiEdits(
            env={k: v for k, v in edits.env.items() if k not in per_device},
            mounts=[CdiMount(m.container_path, m.host_path, m.read_only) for m in edits.mounts],
        )
        write_spec(self.cdi_dir, CDI_KIND, uid, devices, common)

    # -- unprepare ----------------------------------------------------------------------------

    async def unprepare(self, claim: dra.Claim) -> None:
        async with self._lock:
            remove_spec(self.cdi_dir, CDI_KIND, claim.uid)
            self.policy.remove_hook_files(_key(claim.uid))
            if self.checkpoint.remove(claim.uid):
                log.info("unprepared claim %s/%s", claim.namespace, claim.name)
