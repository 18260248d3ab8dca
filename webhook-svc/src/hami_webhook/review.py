"""AdmissionReview (``admission.k8s.io/v1`` and ``v1beta1``): parse a request, build a response.

A body that is not an AdmissionReview with a request uid cannot be answered in kind, so it gets
`ReviewError` (HTTP 400 with a JSON message). Everything after that is answered as an
AdmissionReview of the same apiVersion, with refusals and errors in ``response.status``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


class ReviewError(ValueError):
    """The body is not an AdmissionReview this webhook can answer."""


@dataclass(frozen=True)
class AdmissionRequest:
    api_version: str
    uid: str
    operation: str
    namespace: str
    kind: str
    obj: Any
    dry_run: bool
    sub_resource: str = ""
    old_obj: Any = None


def parse_review(body: bytes) -> AdmissionRequest:
    try:
        review = json.loads(body)
    except RecursionError:
        raise ReviewError("body nests too deeply to be an AdmissionReview") from None
    except ValueError as exc:
        raise ReviewError(f"body is not JSON ({exc}); send an AdmissionReview") from None
    if not isinstance(review, dict):
        raise ReviewError("body must be a JSON object (an AdmissionReview)")
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(
            f"apiVersion {api_version!r} is not supported; use one of {', '.join(API_VERSIONS)}"
        )
    if review.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind {review.get('kind')!r} is not supported; use AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing; an AdmissionReview must carry a request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing; it must be a non-empty string")
    kind = request.get("kind")
    namespace = request.get("namespace")
    obj = request.get("object")
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if namespace is None and isinstance(metadata, dict):
        namespace = metadata.get("namespace")
    sub_resource = request.get("subResource")
    return AdmissionRequest(
        api_version=api_version,
        uid=uid,
        operation=str(request.get("operation") or ""),
        namespace=namespace if isinstance(namespace, str) else "",
        kind=str(kind.get("kind") or "") if isinstance(kind, dict) else "",
        obj=obj,
        dry_run=request.get("dryRun") is True,
        sub_resource=sub_resource if isinstance(sub_resource, str) else "",
        old_obj=request.get("oldObject"),
    )


def review_response(
    request: AdmissionRequest,
    *,
    allowed: bool,
    patch: list[dict[str, Any]] | None = None,
    code: int | None = None,
    message: str | None = None,
    reason: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": request.uid, "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(
            json.dumps(patch, separators=(",", ":")).encode()
        ).decode()
    if code is not None or message is not None:
        status: dict[str, Any] = {"code": code or (200 if allowed else 403)}
        if message is not None:
            status["message"] = message
        if reason is not None:
            status["reason"] = reason
        response["status"] = status
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": request.api_version, "kind": "AdmissionReview", "response": response}
