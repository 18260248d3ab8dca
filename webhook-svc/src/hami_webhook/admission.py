"""The admission decision for one pod (HAMi's ``Handle``, reference §1.3), free of HTTP.

Order: opt-out label on the pod, no containers, the scheduler-name gate, the namespace opt-out,
every vendor's per-container rules (init containers first), the privileged check, the scheduler
name and preset ``nodeName`` check, namespace quota, then the trace context annotation and the
JSON patch. Every refusal says what to change.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hami_common.k8s import ApiError
from hami_common.telemetry import TRACE_CONTEXT_ANNOTATION

from hami_webhook.namespaces import NamespaceSource
from hami_webhook.patch import Patch, json_patch
from hami_webhook.pod_shape import CONTAINER_LISTS, containers, pod_shape_problems
from hami_webhook.quota import QuotaSource, pod_quota_request, quota_resources
from hami_webhook.rules import AdmissionRefused, AdmissionRules
from hami_webhook.rules.base import container_name

log = logging.getLogger(__name__)

IGNORE_LABEL = "hami.io/webhook"
IGNORE_VALUE = "ignore"
DEFAULT_SCHEDULER = "default-scheduler"


@dataclass
class Decision:
    """The outcome. `reason` is a stable word for metrics and spans."""

    allowed: bool
    reason: str
    patch: Patch = field(default_factory=list)
    code: int = 200
    message: str | None = None
    has_resource: bool = False
    warnings: list[str] = field(default_factory=list)


def _refuse(reason: str, message: str, code: int = 403) -> Decision:
    return Decision(allowed=False, reason=reason, code=code, message=message)


@dataclass(frozen=True)
class AdmissionPolicy:
    scheduler_name: str
    force_overwrite_default_scheduler: bool = True


class Admitter:
    """Decides on pods with the given vendor rules, quota and namespace sources."""

    def __init__(
        self,
        rules: Sequence[AdmissionRules],
        policy: AdmissionPolicy,
        *,
        quota: QuotaSource | None = None,
        namespaces: NamespaceSource | None = None,
        api_timeout: float = 3.0,
    ) -> None:
        """`api_timeout` bounds each quota or namespace lookup, so that a slow API server
        cannot push the whole review past the webhook's own timeout (the API server would then
        admit the pod unmutated, to the default scheduler); a lookup that times out fails open."""
        self.rules = list(rules)
        self.api_timeout = api_timeout
        self.policy = policy
        self.quota = quota
        self.namespaces = namespaces

    def _other_scheduler(self, spec: dict[str, Any]) -> bool:
        """HAMi's gate: True when the pod names a scheduler that is not ours to replace."""
        name = spec.get("schedulerName") or ""
        if not name:
            return False
        if name == DEFAULT_SCHEDULER and self.policy.force_overwrite_default_scheduler:
            return False
        return not self.policy.scheduler_name or name != self.policy.scheduler_name

    async def decide(self, namespace: str, pod: Any, traceparent: str | None = None) -> Decision:
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
        if self.namespaces is not None and namespace:
            try:
                async with asyncio.timeout(self.api_timeout):
                    ns_labels = await self.namespaces.labels(namespace)
            except TimeoutError:
                log.warning("namespace %s: labels not read in time; processing the pod", namespace)
                ns_labels = {}
            if ns_labels.get(IGNORE_LABEL) == IGNORE_VALUE:
                return Decision(allowed=True, reason="ignored")

        mutated = copy.deepcopy(pod)
        warnings: list[str] = []
        try:
            has_resource = self._mutate(mutated)
        except AdmissionRefused as refused:
            return _refuse("invalid-request", refused.message, refused.code)
        if has_resource:
            refusal = self._check_placement(mutated)
            if refusal is not None:
                return refusal
            refusal = await self._check_quota(namespace, mutated, warnings)
            if refusal is not None:
                return refusal
            if traceparent:
                metadata = mutated.setdefault("metadata", {})
                metadata.setdefault("annotations", {})[TRACE_CONTEXT_ANNOTATION] = traceparent
        return Decision(
            allowed=True,
            reason="mutated" if has_resource else "no-devices",
            patch=json_patch(pod, mutated),
            has_resource=has_resource,
            warnings=warnings,
        )

    def _mutate(self, pod: dict[str, Any]) -> bool:
        has_resource = False
        for kind in CONTAINER_LISTS:
            for container in containers(pod, kind):
                for rules in self.rules:
                    has_resource = rules.mutate_container(container, pod) or has_resource
        return has_resource

    def _check_placement(self, pod: dict[str, Any]) -> Decision | None:
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
        if self.policy.scheduler_name:
            spec["schedulerName"] = self.policy.scheduler_name
            if spec.get("nodeName"):
                return _refuse(
                    "node-name",
                    f"pod has spec.nodeName={spec['nodeName']!r} preset, which bypasses device "
                    "scheduling; remove spec.nodeName and use spec.nodeSelector "
                    f"(kubernetes.io/hostname: {spec['nodeName']}) instead",
                )
        return None

    async def _check_quota(
        self, namespace: str, pod: dict[str, Any], warnings: list[str]
    ) -> Decision | None:
        if self.quota is None or not namespace:
            return None
        request = pod_quota_request(pod, self.rules)
        if not request:
            return None
        try:
            async with asyncio.timeout(self.api_timeout):
                states = await self.quota.quota(namespace, quota_resources(self.rules))
        except (ApiError, TimeoutError) as exc:
            # Fail open: the extender checks quota again at fit time.
            log.warning("namespace %s: quota not checked, the API failed: %s", namespace, exc)
            warnings.append(
                "hami-webhook could not read the namespace's device quota; "
                "the scheduler checks it again before placing the pod"
            )
            return None
        factors = {}
        for rules in self.rules:
            factors[rules.resources.memory] = rules.memory_factor
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
