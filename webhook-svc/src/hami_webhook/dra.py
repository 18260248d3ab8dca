"""The DRA path (``--dra``, off by default): HAMi-style NVIDIA requests become a claim.

A container's ``nvidia.com/gpu`` (count), ``gpumem`` (MiB) and ``gpucores`` (percent), as the
core derived them, become a ResourceClaimTemplate of the DRA driver's DeviceClass: ``count``
devices, each with a capacity request of ``memory`` and ``cores`` (consumable capacity; a whole
device asks no memory and takes all of it). Templates are shared by every pod of a namespace
with the same shape, named after it (``hami-gpu-1x-3000mi-30c``), and created by the webhook
when missing. The pod gets ``spec.resourceClaims`` naming the template and the container a
``resources.claims`` entry; its NVIDIA resources are removed and its scheduler is left alone:
kube-scheduler's DynamicResources plugin allocates, the resourceclaim controller makes the pod's
claim from the template (and deletes it with the pod). With ``count`` > 1 a ``distinctAttribute``
constraint on the device UUID keeps the devices apart.

Not convertible, refused with what to change: ``gpumem-percentage`` other than 100 (a claim
asks absolute capacity), and a pod that also asks another vendor's devices (one pod is placed
by one path).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hami_common.k8s import RESOURCE_CLAIM_TEMPLATES, AlreadyExists, KubeClient
from hami_rustcore import DeviceRequest, PodAdmission

from hami_webhook.pod_shape import CONTAINER_LISTS, containers

Json = dict[str, Any]
VENDOR = "NVIDIA"
CLAIM_PREFIX = "hami-gpu"


class ConversionError(ValueError):
    """The pod cannot take the DRA path; the message says what to change."""


@dataclass(frozen=True)
class DraConversion:
    device_class: str = "gpu.hami.io"
    driver: str = "gpu.hami.io"


class TemplateSink(Protocol):
    async def ensure(self, namespace: str, template: Json) -> None:
        """Creates the template unless one of its name exists."""
        ...


class KubeTemplateSink:
    """Creates templates through the API (RBAC: create resourceclaimtemplates)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def ensure(self, namespace: str, template: Json) -> None:
        with contextlib.suppress(AlreadyExists):
            await self.client.create(RESOURCE_CLAIM_TEMPLATES, template, namespace=namespace)


class InMemoryTemplateSink:
    def __init__(self) -> None:
        self.templates: dict[tuple[str, str], Json] = {}

    async def ensure(self, namespace: str, template: Json) -> None:
        self.templates.setdefault((namespace, template["metadata"]["name"]), template)


def template_for(dev: DeviceRequest, conv: DraConversion) -> Json:
    if dev.mem_mib <= 0 and dev.mem_percent not in (None, 100):
        raise ConversionError(
            f"nvidia.com/gpumem-percentage={dev.mem_percent} cannot become a DRA claim (a claim "
            "asks an amount of memory): use nvidia.com/gpumem in MiB, or label the pod "
            "hami.io/webhook=ignore"
        )
    requests: dict[str, str] = {}
    if dev.mem_mib > 0:
        requests["memory"] = f"{dev.mem_mib}Mi"
    if dev.cores > 0:
        requests["cores"] = str(dev.cores)
    exactly: Json = {"deviceClassName": conv.device_class, "count": dev.count}
    if requests:
        exactly["capacity"] = {"requests": requests}
    claim: Json = {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}
    if dev.count > 1:
        claim["devices"]["constraints"] = [
            {"requests": ["gpu"], "distinctAttribute": f"{conv.driver}/uuid"}
        ]
    memory = f"{dev.mem_mib}mi" if dev.mem_mib > 0 else "whole"
    name = f"{CLAIM_PREFIX}-{dev.count}x-{memory}-{dev.cores}c"
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "hami-webhook"}},
        "spec": {"spec": claim},
    }


def convert(
    pod: Json, admitted: PodAdmission, conv: DraConversion, resource_names: Mapping[str, str]
) -> list[Json]:
    """Rewrites ``pod`` (already mutated by admission) for the DRA path; returns the templates
    it names. ``resource_names``: the NVIDIA names to remove (count, memory, cores...)."""
    vendors = {d.vendor for c in admitted.request.containers for d in c.devices if d.count}
    if vendors - {VENDOR}:
        raise ConversionError(
            f"the pod asks for {', '.join(sorted(vendors - {VENDOR}))} devices too: only NVIDIA "
            "requests take the DRA path; split the pod, or label it hami.io/webhook=ignore"
        )
    templates: dict[str, Json] = {}
    spec = pod["spec"]
    for answer, request in zip(admitted.containers, admitted.request.containers, strict=True):
        devs = [d for d in request.devices if d.vendor == VENDOR and d.count > 0]
        if not devs:
            continue
        template = template_for(devs[0], conv)
        templates[template["metadata"]["name"]] = template
        kind = CONTAINER_LISTS[0 if answer.init else 1]
        container = containers(pod, kind)[answer.index]
        claim_name = f"{CLAIM_PREFIX}-{'init-' if answer.init else ''}{answer.index}"
        spec.setdefault("resourceClaims", []).append(
            {"name": claim_name, "resourceClaimTemplateName": template["metadata"]["name"]}
        )
        resources = container.setdefault("resources", {})
        for key in ("limits", "requests"):
            values = resources.get(key) or {}
            for name in resource_names.values():
                values.pop(name, None)
            if key in resources and not values:
                del resources[key]
        resources.setdefault("claims", []).append({"name": claim_name})
    return list(templates.values())
