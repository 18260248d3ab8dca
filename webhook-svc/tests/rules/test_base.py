"""Helpers over raw container JSON shared by every vendor's rules."""

from __future__ import annotations

from hami_webhook.rules.base import container_name, set_env, set_limit
from hami_webhook.testing import container


def test_set_limit_and_set_env_create_what_is_missing() -> None:
    c = container()
    set_limit(c, "nvidia.com/gpu", "1")
    set_env(c, "A", "1")
    set_env(c, "A", "2")
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert c["env"] == [{"name": "A", "value": "2"}]


def test_set_limit_keeps_requests() -> None:
    c = container(requests={"nvidia.com/gpu": "1"})
    set_limit(c, "nvidia.com/gpucores", "100")
    assert c["resources"] == {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpucores": "100"},
    }


def test_env_replacement_drops_value_from() -> None:
    c = container(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}])
    set_env(c, "A", "v")
    assert c["env"] == [{"name": "A", "value": "v"}]


def test_container_name_of_an_unnamed_container() -> None:
    assert container_name({"image": "x"}) == "<unnamed>"
    assert container_name(container("main")) == "main"
