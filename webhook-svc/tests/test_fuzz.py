"""Hypothesis fuzzing of the /webhook endpoint: garbage gets a clear 4xx or an error in the body,
never a crash; whatever is allowed carries a patch that applies to the pod that was sent."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import httpx
import pytest
from hami_common.telemetry import in_memory_tracing
from hami_webhook.app import create_app
from hami_webhook.namespaces import InMemoryNamespaceSource
from hami_webhook.patch import apply_patch
from hami_webhook.quota import InMemoryQuotaSource, QuotaState
from hami_webhook.settings import WebhookSettings
from hami_webhook.testing import decoded_patch, review
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

RESOURCES = [
    "nvidia.com/gpu",
    "nvidia.com/gpumem",
    "nvidia.com/gpumem-percentage",
    "nvidia.com/gpucores",
    "nvidia.com/priority",
    "cpu",
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _app() -> Starlette:
    provider, _ = in_memory_tracing("hami-webhook")
    quota = InMemoryQuotaSource(
        {
            "default": {
                "nvidia.com/gpumem": QuotaState(20000, 100),
                "nvidia.com/gpucores": QuotaState(300, 0),
            }
        }
    )
    return create_app(
        WebhookSettings.load([]),
        tracer_provider=provider,
        quota=quota,
        namespaces=InMemoryNamespaceSource({"ignored": {"hami.io/webhook": "ignore"}}),
    )


async def _post_async(body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:
        return await client.post("/webhook", content=body)


def _post(body: bytes) -> httpx.Response:
    return asyncio.run(_post_async(body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
quantities = st.one_of(
    st.sampled_from(
        ["0", "1", "2", "100", "101", "3000", "-1", "1.5", "500m", "1Gi", "1e3", "x", ""]
    ),
    st.integers(-5, 200),
    json_values,
)
resource_maps = st.one_of(
    st.dictionaries(st.sampled_from(RESOURCES), quantities, max_size=4), json_values
)
containers = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=6), json_values)},
    optional={
        "resources": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"limits": resource_maps, "requests": resource_maps}
            ),
            json_values,
        ),
        "env": st.one_of(
            st.lists(
                st.fixed_dictionaries({"name": st.text(max_size=6), "value": st.text(max_size=4)}),
                max_size=2,
            ),
            json_values,
        ),
        "securityContext": st.one_of(
            st.fixed_dictionaries({"privileged": st.booleans()}), json_values
        ),
    },
)
pods = st.fixed_dictionaries(
    {
        "metadata": st.one_of(
            st.fixed_dictionaries(
                {"name": st.text(max_size=6)},
                optional={
                    "labels": st.one_of(st.just({"hami.io/webhook": "ignore"}), json_values),
                    "annotations": st.one_of(
                        st.just({"hami.io/trace-context": "00-x"}), json_values
                    ),
                },
            ),
            json_values,
        ),
        "spec": st.one_of(
            st.fixed_dictionaries(
                {"containers": st.one_of(st.lists(containers, max_size=3), json_values)},
                optional={
                    "initContainers": st.lists(containers, max_size=2),
                    "schedulerName": st.one_of(
                        st.sampled_from(["", "default-scheduler", "hami-scheduler", "volcano"]),
                        json_values,
                    ),
                    "nodeName": st.one_of(st.text(max_size=4), json_values),
                    "runtimeClassName": st.one_of(st.text(max_size=4), st.none()),
                },
            ),
            json_values,
        ),
    }
)


def _check_answer(response: httpx.Response, obj: Any) -> None:
    assert response.status_code == 200, response.text
    answer = response.json()["response"]
    assert answer["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    if not answer["allowed"]:
        assert answer["status"]["code"] in (400, 403), answer
        assert answer["status"]["message"]
        return
    patch = decoded_patch(response.json())
    if patch:
        patched = apply_patch(obj, patch)
        json.dumps(patched)
        for c in patched["spec"]["containers"]:
            if "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}):
                assert patched["spec"]["schedulerName"] == "hami-scheduler"


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_get_a_4xx(body: bytes) -> None:
    response = _post(body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]


@FUZZ
@given(json_values)
def test_random_json_gets_a_4xx(value: Any) -> None:
    response = _post(json.dumps(value).encode())
    assert response.status_code == 400
    assert response.json()["error"]


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "apiVersion": st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]),
            "kind": st.just("AdmissionReview"),
        },
        optional={
            "request": st.one_of(
                json_values, st.fixed_dictionaries({"uid": json_values, "object": json_values})
            )
        },
    )
)
def test_broken_reviews_get_a_4xx_or_an_answer(value: dict[str, Any]) -> None:
    response = _post(json.dumps(value).encode())
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["response"]["uid"] == value["request"]["uid"]


@FUZZ
@given(pods, st.sampled_from(["default", "ignored", ""]))
def test_fuzzed_pods_are_answered_and_patches_apply(pod: Any, namespace: str) -> None:
    body = review(pod, namespace=namespace)
    _check_answer(_post(json.dumps(body).encode()), pod)


def _nested_text(depth: int, as_list: bool) -> str:
    """JSON nested `depth` levels (written by hand: too deep for json.dumps)."""
    return ("[" if as_list else '{"a":') * depth + '"leaf"' + ("]" if as_list else "}") * depth


@pytest.mark.parametrize("as_list", [False, True])
@pytest.mark.parametrize("where", ["spec", "metadata", "container", "object", "request"])
@pytest.mark.parametrize("depth", [1, 98, 99, 100, 127, 128, 500, 900, 1000, 1100, 5000])
def test_deep_nesting_gets_a_clear_answer_never_an_error(
    depth: int, where: str, as_list: bool
) -> None:
    obj: Any = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }
    deep = "@DEEP@"
    if where == "spec":
        obj["spec"]["affinity"] = deep
    elif where == "metadata":
        obj["metadata"]["x"] = deep
    elif where == "container":
        obj["spec"]["containers"][0]["args"] = deep
    elif where == "object":
        obj = deep
    body = review(obj, namespace="default")
    if where == "request":
        body["request"]["userInfo"]["extra"] = deep
    encoded = json.dumps(body).replace('"@DEEP@"', _nested_text(depth, as_list))
    response = _post(encoded.encode())
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]
        return
    answer = response.json()["response"]
    if not answer["allowed"]:
        assert answer["status"]["code"] == 400, answer
        assert answer["status"]["message"].startswith("the pod cannot be read")
