"""AdmissionReview parsing and answers."""

from __future__ import annotations

import base64
import json

import pytest
from hami_webhook.review import ReviewError, parse_review, review_response
from hami_webhook.testing import container, pod, review


def test_parse_reads_the_fields_admission_needs() -> None:
    body = review(pod(container(), namespace="team"), api_version="admission.k8s.io/v1beta1")
    body["request"]["dryRun"] = True
    request = parse_review(json.dumps(body).encode())
    assert (request.api_version, request.operation, request.namespace, request.kind) == (
        "admission.k8s.io/v1beta1",
        "CREATE",
        "team",
        "Pod",
    )
    assert request.dry_run is True


def test_namespace_falls_back_to_the_object() -> None:
    body = review(pod(container(), namespace="team"))
    del body["request"]["namespace"]
    assert parse_review(json.dumps(body).encode()).namespace == "team"


def test_metadata_that_is_not_an_object_leaves_the_namespace_empty() -> None:
    for metadata in (["x"], "x", 1):
        body = review({"metadata": metadata, "spec": {}}, namespace="unused")
        del body["request"]["namespace"]
        assert parse_review(json.dumps(body).encode()).namespace == ""


def test_subresource_and_old_object_are_read() -> None:
    old = pod(container())
    body = review(pod(container()), operation="UPDATE", sub_resource="ephemeralcontainers", old=old)
    request = parse_review(json.dumps(body).encode())
    assert (request.operation, request.sub_resource, request.old_obj) == (
        "UPDATE",
        "ephemeralcontainers",
        old,
    )
    assert parse_review(json.dumps(review(pod(container()))).encode()).sub_resource == ""


def test_deeply_nested_json_is_a_review_error() -> None:
    with pytest.raises(ReviewError, match="nests too deeply"):
        parse_review(b"[" * 100_000)


def test_answer_encodes_the_patch_and_status() -> None:
    request = parse_review(json.dumps(review(pod(container()))).encode())
    ok = review_response(request, allowed=True, patch=[{"op": "add", "path": "/a", "value": 1}])
    assert ok["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(ok["response"]["patch"])) == [
        {"op": "add", "path": "/a", "value": 1}
    ]
    assert "status" not in ok["response"]
    no = review_response(request, allowed=False, code=400, message="fix it", reason="BadRequest")
    assert no["response"]["status"] == {"code": 400, "message": "fix it", "reason": "BadRequest"}
    assert review_response(request, allowed=True, patch=[])["response"] == {
        "uid": request.uid,
        "allowed": True,
    }
