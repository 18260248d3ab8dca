"""The Kubernetes API adapter: async, raw JSON, typed errors, retries, list-then-watch.

Public API (import from here):
- `load_config`, `config_from_kubeconfig`, `in_cluster_config`, `ClusterConfig`, `ConfigError`
  (kubeconfig files and the in-cluster service account, read by the official client's loaders)
- `Credentials`, `CredentialsError`, `ExecPlugin` (credentials in use: token files re-read,
  exec plugins run, rotated certificates picked up)
- `KubeClient` (get, list, list_metadata, create, replace, patch, delete, version, request, stream)
- `watch`, `list_then_watch`, `WatchEvent`
- `Resource` and the common resources (`PODS`, `NODES`, ...)
- `Backoff`, `NO_RETRY`, `is_retryable`, `Retrier` and `LOOP_BACKOFF` (loops that retry forever)
- the errors: `ApiError` and its subclasses
"""

from hami_common.k8s.backoff import LOOP_BACKOFF, NO_RETRY, Backoff, Retrier, is_retryable
from hami_common.k8s.client import KubeClient, PatchType
from hami_common.k8s.config import (
    ClusterConfig,
    ConfigError,
    ExecPlugin,
    config_from_kubeconfig,
    in_cluster_config,
    load_config,
)
from hami_common.k8s.credentials import Credentials, CredentialsError
from hami_common.k8s.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    error_from_status,
)
from hami_common.k8s.resources import (
    CONFIG_MAPS,
    DAEMON_SETS,
    DEPLOYMENTS,
    DEVICE_CLASSES,
    EVENTS,
    LEASES,
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NAMESPACES,
    NODES,
    PODS,
    RESOURCE_CLAIM_TEMPLATES,
    RESOURCE_CLAIMS,
    RESOURCE_QUOTAS,
    RESOURCE_SLICES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    Resource,
)
from hami_common.k8s.watch import WatchEvent, follow, list_then_watch, watch

__all__ = [
    "CONFIG_MAPS",
    "DAEMON_SETS",
    "DEPLOYMENTS",
    "DEVICE_CLASSES",
    "EVENTS",
    "LEASES",
    "LOOP_BACKOFF",
    "MUTATING_WEBHOOK_CONFIGURATIONS",
    "NAMESPACES",
    "NODES",
    "NO_RETRY",
    "PODS",
    "RESOURCE_CLAIMS",
    "RESOURCE_CLAIM_TEMPLATES",
    "RESOURCE_QUOTAS",
    "RESOURCE_SLICES",
    "SECRETS",
    "SERVICES",
    "SERVICE_ACCOUNTS",
    "VALIDATING_WEBHOOK_CONFIGURATIONS",
    "AlreadyExists",
    "ApiError",
    "Backoff",
    "BadRequest",
    "ClusterConfig",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Credentials",
    "CredentialsError",
    "ExecPlugin",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeClient",
    "MethodNotAllowed",
    "NotFound",
    "PatchType",
    "Resource",
    "Retrier",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "WatchEvent",
    "config_from_kubeconfig",
    "error_from_status",
    "follow",
    "in_cluster_config",
    "is_retryable",
    "list_then_watch",
    "load_config",
    "watch",
]
