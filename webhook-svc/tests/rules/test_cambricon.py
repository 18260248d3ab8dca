"""Cambricon rules: HAMi mutates nothing, but an MLU pod is the webhook's to place."""

from __future__ import annotations

import copy
import json

from hami_common.settings import DeviceConfig
from hami_rustcore import RequestModel
from hami_webhook.devices import DeviceModel
from hami_webhook.rules import CambriconRules
from hami_webhook.testing import container, pod

MLU = {
    "cambricon.com/vmlu": "1",
    "cambricon.com/mlu.smlu.vmemory": "20",
    "cambricon.com/mlu.smlu.vcore": "10",
}


def test_an_mlu_container_is_claimed_and_left_as_written() -> None:
    p = pod(container(limits=MLU))
    before = copy.deepcopy(p)
    [answer] = RequestModel().admit(json.dumps(p)).containers
    assert answer.vendors == ["MLU"]
    assert answer.added_limits == []
    assert answer.set_requests == []
    CambriconRules().mutate_container(p["spec"]["containers"][0], p, answer)
    assert p == before
    assert "MLU" in DeviceModel.from_config(DeviceConfig()).vendors


def test_memory_and_cores_without_a_count_are_not_an_mlu_request() -> None:
    # HAMi: cambricon.com/vmlu is mandatory; without it there is no MLU request
    [answer] = RequestModel().admit(json.dumps(pod(container(limits={
        "cambricon.com/mlu.smlu.vmemory": "20"})))).containers  # fmt: skip
    assert answer.vendors == []
