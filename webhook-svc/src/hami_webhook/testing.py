"""Builders of pods and AdmissionReviews, shared by unit tests and the end-to-end harness."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]


def container(
    name: str = "main",
    *,
    limits: dict[str, Any] | None = None,
    requests: dict[str, Any] | None = None,
    env: list[Json] | None = None,
    privileged: bool | None = None,
) -> Json:
    c: Json = {"name": name, "image": "busybox"}
    resources: Json = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    if resources:
        c["resources"] = resources
    if env is not None:
        c["env"] = env
    if privileged is not None:
        c["securityContext"] = {"privileged": privileged}
    return c


def pod(
    *containers: Json,
    name: str = "p",
    namespace: str = "default",
    init: list[Json] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Json:
    metadata: Json = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    body: Json = {"containers": list(containers), **spec}
    if init is not None:
        body["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def review(
    obj: Any,
    *,
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    api_version: str = "admission.k8s.io/v1",
    operation: str = "CREATE",
    namespace: str | None = None,
    kind: str = "Pod",
    sub_resource: str | None = None,
    old: Any = None,
) -> Json:
    """An AdmissionReview of `obj`; `sub_resource` (e.g. ``ephemeralcontainers``) and `old`
    (the ``oldObject`` of an UPDATE) are sent when given."""
    ns = namespace
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if ns is None and isinstance(metadata, dict):
        ns = metadata.get("namespace", "default")
    body: Json = {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "dryRun": False,
        },
    }
    if sub_resource is not None:
        body["request"]["subResource"] = sub_resource
    if old is not None:
        body["request"]["oldObject"] = old
    return body


def decoded_patch(answer: Json) -> list[Json]:
    """The JSON patch of an AdmissionReview answer, decoded ([] when there is none)."""
    patch = answer["response"].get("patch")
    return json.loads(base64.b64decode(patch)) if patch else []


@dataclass(frozen=True)
class TlsPair:
    """A CA and a serving certificate signed by it, as files (made by the tests' fixtures)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    cert_pem: bytes
    key_pem: bytes
