"""Resource coordinates (group/version, plural, scope) and the URL paths built from them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """A kind of object the API serves, e.g. ``Resource("v1", "pods")``.

    ``api_version`` is ``"v1"`` for the core group, else ``"group/version"``.
    """

    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection (no name) or of one object.

        A namespaced resource without a namespace addresses all namespaces (lists and
        watches only).
        """
        if not self.namespaced and namespace is not None:
            raise ValueError(f"{self.plural} is cluster-scoped: do not pass a namespace")
        if self.namespaced and namespace is None and name is not None:
            raise ValueError(f"{self.plural} is namespaced: pass the namespace of {name!r}")
        parts = [self.prefix]
        if namespace is not None:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource is not None:
            if name is None:
                raise ValueError("a subresource needs an object name")
            parts.append(subresource)
        return "/".join(parts)


PODS = Resource("v1", "pods")
NODES = Resource("v1", "nodes", namespaced=False)
NAMESPACES = Resource("v1", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("v1", "serviceaccounts")
CONFIG_MAPS = Resource("v1", "configmaps")
SECRETS = Resource("v1", "secrets")
EVENTS = Resource("v1", "events")
SERVICES = Resource("v1", "services")
RESOURCE_QUOTAS = Resource("v1", "resourcequotas")
LEASES = Resource("coordination.k8s.io/v1", "leases")
DEPLOYMENTS = Resource("apps/v1", "deployments")
DAEMON_SETS = Resource("apps/v1", "daemonsets")
MUTATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", namespaced=False
)
VALIDATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", namespaced=False
)
RESOURCE_SLICES = Resource("resource.k8s.io/v1", "resourceslices", namespaced=False)
RESOURCE_CLAIMS = Resource("resource.k8s.io/v1", "resourceclaims")
RESOURCE_CLAIM_TEMPLATES = Resource("resource.k8s.io/v1", "resourceclaimtemplates")
DEVICE_CLASSES = Resource("resource.k8s.io/v1", "deviceclasses", namespaced=False)
