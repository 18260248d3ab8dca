"""Bad values fail ``helm install`` (here ``helm template``, which validates the same way)
with a message that names the value: the schemas for types and names, the templates for what
spans several values. The schemas' generated parts match the services' settings models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hami_e2e.charts import schemas
from hami_e2e.charts.helm import Helm

Json = dict[str, Any]

# The Ascend plugin with the scheduler that places its pods (the umbrella requires both).
ASCEND: Json = {"scheduler": {"enableAscend": True}}
# (values, what the message must say)
SCHEMA_REFUSALS: list[tuple[Json, list[str]]] = [
    ({"scheduler": {"replicas": "two"}}, ["scheduler:", "at '/replicas'", "want integer"]),
    ({"scheduler": {"admissionWebhook": {"failurePolicy": "Sometimes"}}},
     ["at '/admissionWebhook/failurePolicy'", "Fail", "Ignore"]),
    ({"scheduler": {"defaultSchedulerPolicy": {"nodeSchedulerPolicy": "packed"}}},
     ["at '/defaultSchedulerPolicy/nodeSchedulerPolicy'", "binpack"]),
    ({"scheduler": {"extender": {"logLevl": "debug"}}},
     ["at '/extender'", "additional properties 'logLevl' not allowed"]),
    ({"scheduler": {"extender": {"nodeLock": "etcd"}}},
     ["at '/extender/nodeLock'", "memory", "annotation"]),
    ({"scheduler": {"extender": {"preferIdleNodes": "yes"}}},
     ["at '/extender/preferIdleNodes'", "want boolean"]),
    ({"scheduler": {"extender": {"burstWindow": 0}}}, ["at '/extender/burstWindow'", "minimum"]),
    ({"scheduler": {"kubeScheduler": {"percentageOfNodesToScore": 150}}},
     ["at '/kubeScheduler/percentageOfNodesToScore'", "maximum"]),
    # YAML reads `gpu: on` as true: the node selector would be refused by the API server
    ({"nvidia": {"devicePlugin": {"nvidiaNodeSelector": {"gpu": True}}}},
     ["at '/devicePlugin/nvidiaNodeSelector/gpu'", "want string"]),
    ({"nvidia": {"devicePlugin": {"migStrategy": "uniform"}}},
     ["at '/devicePlugin/migStrategy'", "none", "single", "mixed"]),
    ({"nvidia": {"devicePlugin": {"mps": {"path": "run/mps"}}}}, ["at '/devicePlugin/mps/path'"]),
    ({"nvidia": {"devicePlugin": {"dynamicMig": {"enabled": "yes"}}}},
     ["at '/devicePlugin/dynamicMig/enabled'", "want boolean"]),
    ({"nvidia": {"devicePlugin": {"dynamicMig": {"privileged": True}}}},
     ["at '/devicePlugin/dynamicMig'", "additional properties 'privileged' not allowed"]),
    ({"global": {"deviceConfig": {"nvidia": {"deviceSplitCount": 0}}}},
     ["at '/global/deviceConfig/nvidia/deviceSplitCount'", "minimum"]),
    ({"global": {"deviceConfig": {"nvidia": {"splitCount": 4}}}},
     ["at '/global/deviceConfig/nvidia'", "additional properties 'splitCount' not allowed"]),
    ({"global": {"resourceName": "nvidia gpu"}}, ["at '/global/resourceName'"]),
    ({"global": {"schedulerName": ""}}, ["at '/global/schedulerName'"]),
    ({"nvidia": {"devicePlugin": {"nodeConfiguration": {"config": {"nodeconfig": [
        {"name": "node-1", "devicesplitcount": -1}]}}}}},
     ["at '/devicePlugin/nodeConfiguration/config/nodeconfig/0/devicesplitcount'"]),
    # HAMi's top-level devicePlugin is nvidia.devicePlugin here
    ({"devicePlugin": {"deviceSplitCount": 4}},
     ["additional properties 'devicePlugin' not allowed"]),
    # and its devices.ascend is ascend (the plugin) and scheduler.enableAscend
    ({"devices": {"ascend": {"enabled": True}}},
     ["additional properties 'devices' not allowed"]),
    ({"scheduler": {"enableAscend": "yes"}}, ["at '/enableAscend'", "want boolean"]),
    ({**ASCEND, "ascend": {"enabled": True, "devicePlugin": {"nodeSelector": {"ascend": True}}}},
     ["ascend:", "at '/devicePlugin/nodeSelector/ascend'", "want string"]),
    ({**ASCEND, "ascend": {"enabled": True, "devicePlugin": {"nodeConfiguration": {"config": {
        "nodes": [{"name": "node-1", "vDeviceCount": -1}]}}}}},
     ["at '/devicePlugin/nodeConfiguration/config/nodes/0/vDeviceCount'", "minimum"]),
    ({**ASCEND, "ascend": {"enabled": True, "devicePlugin": {"driverPath": "Ascend/driver"}}},
     ["at '/devicePlugin/driverPath'"]),
    ({"global": {"deviceConfig": {"vnpus": {"configs": [{
        "chipName": "910B3", "commonWord": "Ascend910B3", "resourceName": "huawei.com/Ascend910B3",
        "resourceMemoryName": "huawei.com/Ascend910B3-memory"}]}}}},
     ["at '/global/deviceConfig/vnpus/configs/0'", "memoryAllocatable"]),
    ({"cambricon": {"enabled": True, "devicePlugin": {"splitCount": 0}}},
     ["cambricon:", "at '/devicePlugin/splitCount'", "minimum"]),
    ({"monitor": {"vendor": "amd"}}, ["monitor:", "at '/vendor'", "nvidia", "none"]),
    ({"monitor": {"service": {"httpPort": 70000}}}, ["at '/service/httpPort'", "maximum"]),
    ({"monitor": {"reapAfterSeconds": -1}}, ["at '/reapAfterSeconds'", "minimum"]),
    ({"scheduler": {"dashboard": {"labels": {"grafana_dashboard": 1}}}},
     ["at '/dashboard/labels/grafana_dashboard'", "want string"]),
]  # fmt: skip


@pytest.mark.parametrize(("values", "expected"), SCHEMA_REFUSALS)
def test_schema_refuses_with_the_value_named(
    helm: Helm, charts: dict[str, Path], values: Json, expected: list[str]
) -> None:
    message = helm.template_error(charts["hami"], values)
    assert "values don't meet the specifications of the schema" in message
    for text in expected:
        assert text in message, message


# (values, what the message must say): rules across values, checked by the templates
TEMPLATE_REFUSALS: list[tuple[Json, list[str]]] = [
    ({"scheduler": {"replicas": 2, "leaderElect": False}},
     ["replicas is 2 but leaderElect is false", "set leaderElect=true or replicas=1"]),
    ({"global": {"resourceCores": "nvidia.com/gpu"}},
     ['resource name "nvidia.com/gpu" is given twice', "HAMi #485"]),
    ({"global": {"deviceConfig": {"cambricon": {"resourceCountName": "nvidia.com/gpumem"}}}},
     ['"nvidia.com/gpumem" is given twice']),
    ({"global": {"deviceConfig": {"nvidia": {"resourceCountName": "example.com/gpu"}}}},
     ["global.deviceConfig.nvidia.resourceCountName is set", "global.resourceName"]),
    ({"global": {"deviceConfig": {"nvidia": {"overwriteEnv": True}}}},
     ["overwriteEnv is true", "admissionWebhook.onlyDevicePods=false"]),
    ({"global": {"deviceConfig": {"nvidia": {"gpuCorePolicy": "force"}}}},
     ['gpuCorePolicy is "force"', "onlyDevicePods=false"]),
    ({"scheduler": {"admissionWebhook": {"customURL": {"enabled": True, "host": ""}}}},
     ["customURL.host is empty"]),
    ({"ascend": {"enabled": True}},
     ["ascend.enabled is true but scheduler.enableAscend is false",
      "set scheduler.enableAscend=true too"]),
    ({"global": {"dra": {"enabled": True}}, "nvidia": {"devicePlugin": {"migStrategy": "mixed"}}},
     ['devicePlugin.migStrategy is "mixed"', "global.dra.enabled", "set migStrategy=none"]),
    # an Ascend chip's name, managed with enableAscend, taken by NVIDIA's count (HAMi #485)
    ({**ASCEND, "global": {"resourceName": "huawei.com/Ascend910B3"}},
     ['resource name "huawei.com/Ascend910B3" is given twice']),
]  # fmt: skip


@pytest.mark.parametrize(("values", "expected"), TEMPLATE_REFUSALS)
def test_templates_refuse_what_spans_values(
    helm: Helm, charts: dict[str, Path], values: Json, expected: list[str]
) -> None:
    message = helm.template_error(charts["hami"], values)
    for text in expected:
        assert text in message, message


def test_settings_that_need_each_other_pass_together(helm: Helm, charts: dict[str, Path]) -> None:
    """The way out each refusal names works."""
    overwrite = {"deviceConfig": {"nvidia": {"overwriteEnv": True}}}
    hook = {"admissionWebhook": {"onlyDevicePods": False}}
    helm.template(charts["hami"], {"scheduler": hook, "global": overwrite})
    helm.template(charts["hami"], {"scheduler": {"replicas": 3, "leaderElect": True}})
    helm.template(charts["hami"], {**ASCEND, "ascend": {"enabled": True}})
    # the scheduler's Ascend support alone (the plugin installed as a chart of its own)
    helm.template(charts["hami"], ASCEND)


def test_schemas_match_the_settings_models() -> None:
    stale = schemas.sync(write=False)
    assert not stale, f"run: uv run python -m hami_e2e.charts.schemas --write ({stale})"


def test_a_subchart_alone_validates_its_values(helm: Helm, charts: dict[str, Path]) -> None:
    message = helm.template_error(charts["hami-nvidia"], {"devicePlugin": {"logLevel": "loud"}})
    assert "at '/devicePlugin/logLevel'" in message
    for name in ("hami-ascend", "hami-cambricon"):
        message = helm.template_error(charts[name], {"devicePlugin": {"pluginPath": "dp"}})
        assert "at '/devicePlugin/pluginPath'" in message, name
    message = helm.template_error(charts["hami-monitor"], {"feedbackIntervalSeconds": 0})
    assert "at '/feedbackIntervalSeconds'" in message
