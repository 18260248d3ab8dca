import json

import pytest
from hami_common.k8s.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    error_from_status,
    parse_retry_after,
)


def status(code: int, reason: str, message: str, **details: object) -> bytes:
    doc = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        doc["details"] = details
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", AlreadyExists),
        (409, "Conflict", Conflict),
        (410, "Expired", Gone),
        (422, "Invalid", Invalid),
        (429, "TooManyRequests", TooManyRequests),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
    ],
)
def test_status_maps_to_its_class_and_keeps_reason_and_message(
    code: int, reason: str, cls: type[ApiError]
) -> None:
    err = error_from_status(code, status(code, reason, 'pods "x" boom'))
    assert type(err) is cls
    assert isinstance(err, ApiError)
    assert (err.status, err.reason, err.message) == (code, reason, 'pods "x" boom')
    hint = f"; {err.hint}" if code in (401, 403) else ""
    assert str(err) == f'HTTP {code} {reason}: pods "x" boom{hint}'


@pytest.mark.parametrize(
    ("method", "url", "action"),
    [
        ("GET", "https://k:6443/api/v1/pods?limit=500", "list pods"),
        ("GET", "https://k:6443/api/v1/pods?watch=true", "watch pods"),
        ("GET", "https://k/api/v1/namespaces/ns/pods/p", "get pods"),
        ("POST", "https://k/api/v1/namespaces/ns/pods/p/binding", "create pods/binding"),
        ("PUT", "https://k/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
         "update leases.coordination.k8s.io"),
        ("PATCH", "https://k/api/v1/nodes/n", "patch nodes"),
        ("DELETE", "https://k/api/v1/namespaces/ns", "delete namespaces"),
    ],
)  # fmt: skip
def test_forbidden_names_the_verb_and_resource_to_grant(method: str, url: str, action: str) -> None:
    err = error_from_status(403, status(403, "Forbidden", "no")).at(method, url)
    hint = f"check the RBAC rules that grant this user {action}"
    assert str(err) == f"{method} {url}: HTTP 403 Forbidden: no; {hint}"


def test_unauthorized_says_to_check_the_credentials_and_names_the_server() -> None:
    err = error_from_status(401, status(401, "Unauthorized", "Unauthorized"))
    err.at("GET", "https://k:6443/api/v1/nodes")
    assert str(err).startswith(
        "GET https://k:6443/api/v1/nodes: HTTP 401 Unauthorized: Unauthorized; the API server "
        "refused our credentials: check the kubeconfig user"
    )


def test_invalid_keeps_the_field_causes() -> None:
    causes = [{"reason": "FieldValueRequired", "field": "spec.containers"}]
    err = error_from_status(422, status(422, "Invalid", "bad", causes=causes))
    assert isinstance(err, Invalid)
    assert err.details["causes"] == causes


def test_a_409_without_status_body_is_a_conflict() -> None:
    assert type(error_from_status(409, b"")) is Conflict


def test_non_status_body_becomes_the_message_truncated() -> None:
    err = error_from_status(502, b"<html>bad gateway</html>" + b"x" * 1000)
    assert isinstance(err, ServerError)
    assert err.message.startswith("<html>bad gateway")
    assert len(err.message) == 500


def test_unknown_status_code_is_a_plain_api_error() -> None:
    err = error_from_status(418, None)
    assert type(err) is ApiError
    assert err.message == "HTTP 418"


def test_retry_after_is_parsed_into_seconds() -> None:
    err = error_from_status(429, status(429, "TooManyRequests", "slow down"), retry_after="3")
    assert err.retry_after == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
