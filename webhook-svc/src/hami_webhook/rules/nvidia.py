"""NVIDIA admission rules: HAMi v2.10's ``MutateAdmission`` and ``GenerateResourceRequests``.

Per container, in HAMi's order (reference §1.4):
1. ``gpumem-percentage`` (limits, else requests) must be 0..100;
2. the ``priority`` limit becomes ``CUDA_TASK_PRIORITY``;
3. ``gpuCorePolicy`` other than ``default`` becomes ``GPU_CORE_UTILIZATION_POLICY`` on *every*
   container (HAMi's behaviour, §12.10);
4. the count limit marks the container as a GPU container; without it, a gpucores / gpumem /
   gpumem-percentage limit gets the count limit ``defaultGPUNum`` added (when > 0);
5. a GPU container without gpucores gets ``gpucores: 100`` (an exclusive card) when it gives no
   memory, gives 100 percent, or no memory resource is configured;
6. a GPU container sets the pod's ``runtimeClassName`` when the pod has none and one is configured;
7. a container without GPUs gets ``NVIDIA_VISIBLE_DEVICES=none`` when ``overwriteEnv`` is true.
"""

from __future__ import annotations

from hami_common.settings import NvidiaConfig

from hami_webhook.rules.base import (
    PERCENT_UNSET,
    AdmissionRefused,
    DeviceRequest,
    Json,
    VendorResources,
    container_name,
    exact_int,
    has_resource,
    limits,
    raw_resource,
    resource_int,
    set_env,
    set_limit,
)

TASK_PRIORITY_ENV = "CUDA_TASK_PRIORITY"
CORE_POLICY_ENV = "GPU_CORE_UTILIZATION_POLICY"
VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"


class NvidiaRules:
    """`AdmissionRules` for NVIDIA GPUs, configured by the ``nvidia:`` device-config section."""

    vendor = "NVIDIA"

    def __init__(self, config: NvidiaConfig) -> None:
        self.config = config
        self._resources = VendorResources(
            count=config.resource_count_name,
            memory=config.resource_memory_name,
            memory_percentage=config.resource_memory_percentage_name,
            cores=config.resource_core_name,
            priority=config.resource_priority_name,
        )

    @property
    def resources(self) -> VendorResources:
        return self._resources

    @property
    def memory_factor(self) -> int:
        return max(self.config.memory_factor, 1)

    def mutate_container(self, container: Json, pod: Json) -> bool:
        names = self._resources
        percent = resource_int(container, names.memory_percentage)
        if percent is not None and not 0 <= percent <= 100:
            raise AdmissionRefused(
                f"container {container_name(container)}: {names.memory_percentage} is {percent}; "
                "set it between 0 and 100 (percent of one GPU's memory)",
                400,
            )
        if names.priority and names.priority in limits(container):
            priority = resource_int(container, names.priority)
            set_env(container, TASK_PRIORITY_ENV, str(priority))
        if self.config.gpu_core_policy != "default":
            set_env(container, CORE_POLICY_ENV, self.config.gpu_core_policy)

        wants_gpu = self._ensure_count(container)
        self._default_exclusive_cores(container, percent)
        if wants_gpu:
            spec = pod["spec"]
            if spec.get("runtimeClassName") is None and self.config.runtime_class_name:
                spec["runtimeClassName"] = self.config.runtime_class_name
        elif self.config.overwrite_env:
            set_env(container, VISIBLE_DEVICES_ENV, "none")
        return wants_gpu

    def _ensure_count(self, container: Json) -> bool:
        names = self._resources
        container_limits = limits(container)
        if names.count in container_limits:
            return True
        partial = (names.cores, names.memory, names.memory_percentage)
        if any(n and n in container_limits for n in partial) and self.config.default_gpu_num > 0:
            set_limit(container, names.count, str(self.config.default_gpu_num))
            return True
        return False

    def _default_exclusive_cores(self, container: Json, percent: int | None) -> None:
        names = self._resources
        if not names.cores or not has_resource(container, names.count):
            return
        if has_resource(container, names.cores):
            return
        gives_memory = has_resource(container, names.memory) or percent is not None
        if percent == 100 or not names.memory or not gives_memory:
            set_limit(container, names.cores, "100")

    def device_request(self, container: Json) -> DeviceRequest | None:
        names = self._resources
        raw_count = raw_resource(container, names.count)
        if raw_count is None:
            return None
        count = exact_int(raw_count)
        if not count:
            return None
        memory = 0
        raw_memory = raw_resource(container, names.memory)
        if raw_memory is not None:
            parsed = exact_int(raw_memory)
            if parsed is None:
                return None
            memory = parsed * self.memory_factor
        percent = PERCENT_UNSET
        raw_percent = raw_resource(container, names.memory_percentage)
        if raw_percent is not None:
            parsed = exact_int(raw_percent)
            if parsed is not None and parsed > 0:
                percent = min(parsed, 100)
        if memory == 0 and percent == PERCENT_UNSET:
            if self.config.default_memory:
                memory = self.config.default_memory
            else:
                percent = 100
        cores = self.config.default_cores
        raw_cores = raw_resource(container, names.cores)
        if raw_cores is not None:
            parsed = exact_int(raw_cores)
            cores = parsed if parsed is not None else cores
        return DeviceRequest(self.vendor, count, memory, percent, cores)
