"""Helpers over raw container JSON shared by every vendor's rules."""

from __future__ import annotations

import pytest
from hami_webhook.rules import AdmissionRefused, VendorResources
from hami_webhook.rules.base import exact_int, raw_resource, resource_int, set_env, set_limit
from hami_webhook.testing import container


def test_limits_win_over_requests() -> None:
    c = container(limits={"r": "2"}, requests={"r": "1", "only": "5"})
    assert (raw_resource(c, "r"), raw_resource(c, "only"), raw_resource(c, "none")) == (
        "2",
        "5",
        None,
    )
    assert raw_resource(c, "") is None


def test_resource_int_refuses_garbage_naming_container_and_resource() -> None:
    with pytest.raises(AdmissionRefused, match="container main: r is not a valid quantity") as err:
        resource_int(container(limits={"r": "lots"}), "r")
    assert err.value.code == 400


def test_exact_int_accepts_only_whole_int32_values() -> None:
    assert [exact_int(v) for v in ("3", "1k", "0", "-1", "1.5", "3Gi", "x")] == [
        3,
        1000,
        0,
        None,
        None,
        None,
        None,
    ]


def test_set_limit_and_set_env_create_what_is_missing() -> None:
    c = container()
    set_limit(c, "nvidia.com/gpu", "1")
    set_env(c, "A", "1")
    set_env(c, "A", "2")
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert c["env"] == [{"name": "A", "value": "2"}]


def test_env_replacement_drops_value_from() -> None:
    c = container(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}])
    set_env(c, "A", "v")
    assert c["env"] == [{"name": "A", "value": "v"}]


def test_vendor_resources_lists_configured_names() -> None:
    names = VendorResources(count="c", memory="", cores="k")
    assert names.named() == ("c", "k")
