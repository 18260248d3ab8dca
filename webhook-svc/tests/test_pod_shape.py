"""Pod shape checks: every field a rule reads is checked, problems name the JSON path."""

from __future__ import annotations

from typing import Any

import pytest
from hami_webhook.pod_shape import containers, pod_shape_problems
from hami_webhook.testing import container, pod


def test_a_real_pod_has_no_problems() -> None:
    p = pod(
        container(limits={"nvidia.com/gpu": "1"}, env=[], privileged=False), init=[container("i")]
    )
    assert pod_shape_problems(p) == []
    assert [c["name"] for c in containers(p, "initContainers")] == ["i"]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda p: p.update(spec=[]), "spec must be an object"),
        (lambda p: p.update(metadata="x"), "metadata must be an object"),
        (
            lambda p: p["metadata"].update(labels={"a": 1}),
            "metadata.labels must map names to strings",
        ),
        (lambda p: p["spec"].update(nodeName=3), "spec.nodeName must be a string"),
        (lambda p: p["spec"].update(initContainers={}), "spec.initContainers must be a list"),
        (lambda p: p["spec"]["containers"].append(1), "spec.containers[1] must be an object"),
        (
            lambda p: p["spec"]["containers"][0].update(name=None),
            "spec.containers[0].name must be a string",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(resources={"requests": {"cpu": 1.5}}),
            "spec.containers[0].resources.requests must map names to quantities",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(env={}),
            "spec.containers[0].env must be a list of objects",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(securityContext=True),
            "spec.containers[0].securityContext must be an object",
        ),
    ],
)
def test_problems_name_the_path(mutate: Any, problem: str) -> None:
    p = pod(container())
    mutate(p)
    assert problem in pod_shape_problems(p)


def test_not_an_object() -> None:
    assert pod_shape_problems([]) == ["object must be a Pod object"]
