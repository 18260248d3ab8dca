"""NVIDIA mutations: the env and pod fields of HAMi v2.10's ``MutateAdmission`` (reference §1.4).

The percentage check, the default count (``defaultGPUNum``) and the exclusive ``gpucores: 100``
come from the core (`hami_rustcore.RequestModel.admit`). What is left, per container, in HAMi's
order:
1. the ``priority`` limit becomes ``CUDA_TASK_PRIORITY``;
2. ``gpuCorePolicy`` other than ``default`` becomes ``GPU_CORE_UTILIZATION_POLICY`` on *every*
   container (HAMi's behaviour, §12.10);
3. a GPU container sets the pod's ``runtimeClassName`` when the pod has none and one is configured;
4. a container without GPUs gets ``NVIDIA_VISIBLE_DEVICES=none`` when ``overwriteEnv`` is true.
"""

from __future__ import annotations

from hami_common.settings import NvidiaConfig
from hami_rustcore import ContainerAdmission

from hami_webhook.rules.base import Json, set_env

TASK_PRIORITY_ENV = "CUDA_TASK_PRIORITY"
CORE_POLICY_ENV = "GPU_CORE_UTILIZATION_POLICY"
VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"


class NvidiaRules:
    """`AdmissionRules` for NVIDIA GPUs, configured by the ``nvidia:`` device-config section."""

    vendor = "NVIDIA"

    def __init__(self, config: NvidiaConfig) -> None:
        self.config = config

    def mutate_container(self, container: Json, pod: Json, admitted: ContainerAdmission) -> None:
        priority = admitted.priorities.get(self.vendor)
        if priority is not None:
            set_env(container, TASK_PRIORITY_ENV, str(priority))
        if self.config.gpu_core_policy != "default":
            set_env(container, CORE_POLICY_ENV, self.config.gpu_core_policy)
        if self.vendor in admitted.vendors:
            spec = pod["spec"]
            if spec.get("runtimeClassName") is None and self.config.runtime_class_name:
                spec["runtimeClassName"] = self.config.runtime_class_name
        elif self.config.overwrite_env:
            set_env(container, VISIBLE_DEVICES_ENV, "none")
