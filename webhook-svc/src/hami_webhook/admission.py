"""The admission decision for one pod (HAMi's ``Handle``, reference §1.3), free of HTTP.

Order: the pod's shape, the opt-out label on the pod, no containers, the scheduler-name gate,
the namespace opt-out, the Rust core's admission of the pod (defaults, checks of every device
value, the request and its quota amounts: `hami_rustcore.RequestModel.admit`, the model the
extender fits with), every vendor's env rules (init containers first), the privileged check,
the scheduler name and preset ``nodeName`` check, namespace quota, then the trace context
annotation and the JSON patch. Every refusal says what to change.

`decide_ephemeral` reviews ephemeral containers added to a running pod (`hami_webhook.ephemeral`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from hami_common.k8s import ApiError
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION
from hami_rustcore import CoreError, PodAdmission, PodRequest

from hami_webhook import dra, ephemeral
from hami_webhook.devices import DeviceModel
from hami_webhook.dra import DraConversion, TemplateSink
from hami_webhook.namespaces import NamespaceSource
from hami_webhook.patch import Patch, json_patch
from hami_webhook.pod_shape import CONTAINER_LISTS, containers, pod_shape_problems
from hami_webhook.quota import QuotaSource
from hami_webhook.rules.base import container_name, set_limit, set_request

log = logging.getLogger(__name__)

IGNORE_LABEL = "hami.io/webhook"
IGNORE_VALUE = "ignore"
DEFAULT_SCHEDULER = "default-scheduler"
# The API server refuses a pod whose annotations (keys and values) exceed 256 KiB in all.
ANNOTATIONS_LIMIT_BYTES = 256 * 1024


@dataclass
class Decision:
    """The outcome. `reason` is a stable word for metrics and spans. `request` and `quota` are
    what the core derived from the pod as admitted (None and {} when it was not derived)."""

    allowed: bool
    reason: str
    patch: Patch = field(default_factory=list)
    code: int = 200
    message: str | None = None
    has_resource: bool = False
    warnings: list[str] = field(default_factory=list)
    request: PodRequest | None = None
    quota: dict[str, int] = field(default_factory=dict)


def _refuse(reason: str, message: str, code: int = 403) -> Decision:
    return Decision(allowed=False, reason=reason, code=code, message=message)


@dataclass(frozen=True)
class AdmissionPolicy:
    scheduler_name: str
    force_overwrite_default_scheduler: bool = True


def annotations_size(annotations: dict[str, str]) -> int:
    """The size the API server counts against its limit: every key and value, in bytes."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())


class Admitter:
    """Decides on pods with the given device model, quota and namespace sources."""

    def __init__(
        self,
        model: DeviceModel,
        policy: AdmissionPolicy,
        *,
        quota: QuotaSource | None = None,
        namespaces: NamespaceSource | None = None,
        api_timeout: float = 3.0,
        dra: DraConversion | None = None,
        templates: TemplateSink | None = None,
    ) -> None:
        """`api_timeout` bounds each quota or namespace lookup, so that a slow API server
        cannot push the whole review past the webhook's own timeout (the API server would then
        admit the pod unmutated, to the default scheduler); a lookup that times out fails open."""
        self.model = model
        self.api_timeout = api_timeout
        self.policy = policy
        self.quota = quota
        self.namespaces = namespaces
        self.dra = dra
        """NVIDIA requests become claims (`hami_webhook.dra`); `templates` creates theirs."""
        self.templates = templates

    def _other_scheduler(self, spec: dict[str, Any]) -> bool:
        """HAMi's gate: True when the pod names a scheduler that is not ours to replace."""
        name = spec.get("schedulerName") or ""
        if not name:
            return False
        if name == DEFAULT_SCHEDULER and self.policy.force_overwrite_default_scheduler:
            return False
        return not self.policy.scheduler_name or name != self.policy.scheduler_name

    async def _ignored(self, namespace: str, pod: dict[str, Any]) -> bool:
        """The opt-out label on the pod or on its namespace."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(IGNORE_LABEL) == IGNORE_VALUE:
            return True
        if self.namespaces is None or not namespace:
            return False
        try:
            async with asyncio.timeout(self.api_timeout):
                ns_labels = await self.namespaces.labels(namespace)
        except TimeoutError:
            log.warning("namespace %s: labels not read in time; processing the pod", namespace)
            return False
        return ns_labels.get(IGNORE_LABEL) == IGNORE_VALUE

    async def decide(
        self, namespace: str, pod: Any, traceparent: str | None = None, *, dry_run: bool = False
    ) -> Decision:
        """``dry_run``: the API server will not persist the pod; nothing else is written
        either (the DRA path's claim template)."""
        problems = pod_shape_problems(pod)
        if problems:
            return _refuse("malformed", "the pod cannot be read: " + "; ".join(problems), 400)
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(IGNORE_LABEL) == IGNORE_VALUE:
            return Decision(allowed=True, reason="ignored")
        if not containers(pod, "containers"):
            return _refuse("no-containers", "pod has no containers; add at least one container")
        if self._other_scheduler(pod["spec"]):
            return Decision(allowed=True, reason="other-scheduler")
        if await self._ignored(namespace, pod):
            return Decision(allowed=True, reason="ignored")
        try:
            admitted = self.model.requests.admit(json.dumps(pod))
        except CoreError as exc:
            return _refuse("invalid-request", str(exc), 400)

        mutated = copy.deepcopy(pod)
        has_resource = self._mutate(mutated, admitted)
        warnings = list(admitted.warnings)
        if has_resource and self.dra is not None:
            return await self._decide_dra(
                namespace=namespace, pod=pod, mutated=mutated, admitted=admitted,
                warnings=warnings, traceparent=traceparent, dry_run=dry_run,
            )  # fmt: skip
        if has_resource:
            refusal = self._check_placement(mutated)
            if refusal is None:
                refusal = await self._check_quota(namespace, admitted.quota, warnings)
            if refusal is not None:
                return refusal
            if traceparent:
                self._add_trace_context(mutated, traceparent, warnings)
        return Decision(
            allowed=True,
            reason="mutated" if has_resource else "no-devices",
            patch=json_patch(pod, mutated),
            has_resource=has_resource,
            warnings=warnings,
            request=admitted.request,
            quota=dict(admitted.quota),
        )

    async def _decide_dra(
        self,
        *,
        namespace: str,
        pod: dict[str, Any],
        mutated: dict[str, Any],
        admitted: PodAdmission,
        warnings: list[str],
        traceparent: str | None,
        dry_run: bool,
    ) -> Decision:
        """The DRA path: the pod's NVIDIA requests become a claim from a template, and
        kube-scheduler places it (its scheduler name is left alone)."""
        assert self.dra is not None  # noqa: S101 (the caller checked)
        spec = self.model.requests.vendor_specs().get(dra.VENDOR, {})
        names = {k: v for k, v in spec.items() if k.startswith("resource_") and isinstance(v, str)
                 and v}  # fmt: skip
        try:
            templates = dra.convert(mutated, admitted, self.dra, names)
        except dra.ConversionError as exc:
            return _refuse("dra-unconvertible", str(exc), 400)
        refusal = self._check_placement(mutated, set_scheduler=False)
        if refusal is None:
            refusal = await self._check_quota(namespace, admitted.quota, warnings)
        if refusal is not None:
            return refusal
        if self.templates is None:
            return _refuse(
                "dra-no-api",
                "hami-webhook has no API client to create claim templates with; run it with "
                "--kubeconfig (or in a cluster)",
                500,
            )
        try:
            async with asyncio.timeout(self.api_timeout):
                for template in templates if not dry_run else ():
                    await self.templates.ensure(namespace, template)
        except (ApiError, TimeoutError) as exc:
            return _refuse(
                "dra-template",
                f"namespace {namespace}: the ResourceClaimTemplate for this pod could not be "
                f"created ({str(exc) or 'timed out'}); retry, or check the webhook's RBAC (create "
                "resourceclaimtemplates)",
                500,
            )
        if traceparent:
            self._add_trace_context(mutated, traceparent, warnings)
        return Decision(
            allowed=True,
            reason="dra-converted",
            patch=json_patch(pod, mutated),
            has_resource=True,
            warnings=warnings,
            request=admitted.request,
            quota=dict(admitted.quota),
        )

    def _mutate(self, pod: dict[str, Any], admitted: PodAdmission) -> bool:
        """Adds the core's limits and every vendor's env; whether the pod is ours to place."""
        has_resource = False
        for answer in admitted.containers:
            container = containers(pod, CONTAINER_LISTS[0 if answer.init else 1])[answer.index]
            for name, value in answer.added_limits:
                set_limit(container, name, value)
            for name, value in answer.set_requests:
                set_request(container, name, value)
            for rules in self.model.rules:
                rules.mutate_container(container, pod, answer)
            has_resource = has_resource or not self.model.vendors.isdisjoint(answer.vendors)
        return has_resource

    def _check_placement(
        self, pod: dict[str, Any], *, set_scheduler: bool = True
    ) -> Decision | None:
        for kind in CONTAINER_LISTS:
            for container in containers(pod, kind):
                if (container.get("securityContext") or {}).get("privileged") is True:
                    return _refuse(
                        "privileged",
                        f"container {container_name(container)} is privileged and the pod asks "
                        "for shared devices: a privileged container sees every device, so its "
                        "limits cannot be enforced; remove securityContext.privileged or the "
                        "device resources",
                    )
        spec = pod["spec"]
        if self.policy.scheduler_name and set_scheduler:
            spec["schedulerName"] = self.policy.scheduler_name
            if spec.get("nodeName"):
                return _refuse(
                    "node-name",
                    f"pod has spec.nodeName={spec['nodeName']!r} preset, which bypasses device "
                    "scheduling; remove spec.nodeName and use spec.nodeSelector "
                    f"(kubernetes.io/hostname: {spec['nodeName']}) instead",
                )
        return None

    @staticmethod
    def _add_trace_context(pod: dict[str, Any], traceparent: str, warnings: list[str]) -> None:
        """The trace annotation, unless it would push the annotations past the API server's
        limit (the pod would be refused as "Too long" for a reason the user never wrote)."""
        metadata = pod.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        before = annotations_size(annotations)
        after = annotations_size({**annotations, TRACE_CONTEXT_ANNOTATION: traceparent})
        if after > ANNOTATIONS_LIMIT_BYTES:
            if before <= ANNOTATIONS_LIMIT_BYTES:
                warnings.append(
                    f"hami-webhook did not add the {TRACE_CONTEXT_ANNOTATION} annotation: the "
                    f"pod's annotations ({before} bytes) would then exceed the API server's "
                    f"limit of {ANNOTATIONS_LIMIT_BYTES} bytes; the pod's placement is not traced"
                )
            return
        metadata.setdefault("annotations", {})[TRACE_CONTEXT_ANNOTATION] = traceparent

    async def _check_quota(
        self, namespace: str, request: dict[str, int], warnings: list[str]
    ) -> Decision | None:
        if self.quota is None or not namespace or not request:
            return None
        try:
            async with asyncio.timeout(self.api_timeout):
                states = await self.quota.quota(namespace, self.model.quota_resources())
        except (ApiError, TimeoutError) as exc:
            # Fail open, as HAMi's own check does when its cache has no entry.
            log.warning("namespace %s: quota not checked, the API failed: %s", namespace, exc)
            warnings.append(
                "hami-webhook could not read the namespace's device quota, so this pod was "
                "admitted without that check"
            )
            return None
        factors = self.model.memory_factors()
        for name, amount in sorted(request.items()):
            state = states.get(name)
            if state is None:
                continue
            limit = state.limit * factors.get(name, 1)
            if state.used + amount > limit:
                return _refuse(
                    "quota",
                    f"namespace {namespace}: quota limits.{name} exceeded: this pod asks "
                    f"{amount}, {state.used} of {limit} is already in use; lower {name} "
                    f"or raise limits.{name} in the namespace's ResourceQuota",
                )
        return None

    async def decide_ephemeral(self, namespace: str, pod: Any, old: Any) -> Decision:
        """Ephemeral containers added to a pod: refused or given ``NVIDIA_VISIBLE_DEVICES=none``
        when the pod holds shared devices (see `hami_webhook.ephemeral`)."""
        problems = pod_shape_problems(pod)
        if problems:
            return _refuse("malformed", "the pod cannot be read: " + "; ".join(problems), 400)
        added = ephemeral.new_ephemeral_containers(pod, old)
        if not added or await self._ignored(namespace, pod):
            return Decision(allowed=True, reason="ephemeral-allowed")
        try:
            holds_devices = self.model.requests.pod_request(json.dumps(pod)).has_devices()
        except CoreError:
            holds_devices = True  # its devices cannot be read: assume it has some
        if not holds_devices:
            return Decision(allowed=True, reason="ephemeral-allowed")
        for container in added:
            message = ephemeral.refusal(container)
            if message is not None:
                return _refuse("ephemeral", message)
        mutated = copy.deepcopy(pod)
        for container in ephemeral.new_ephemeral_containers(mutated, old):
            ephemeral.hide_devices(container)
        return Decision(
            allowed=True,
            reason="ephemeral-mutated",
            patch=json_patch(pod, mutated),
            has_resource=True,
        )
