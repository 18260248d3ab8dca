"""The Rust scheduling core: device model, fit and score, cluster usage state, HAMi codecs."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias, final

__all__ = [
    "FAILURE_REASONS",
    "NODE_UNREGISTERED",
    "AllocDevice",
    "Cluster",
    "ContainerAdmission",
    "ContainerRequest",
    "CoreError",
    "DecodeError",
    "Device",
    "DeviceRequest",
    "DeviceUsage",
    "FilterResult",
    "NodeNames",
    "PodAdmission",
    "PodAllocation",
    "PodPage",
    "PodRequest",
    "RequestModel",
    "__version__",
    "cambricon_devices",
    "decode_ascend_runtime",
    "decode_node_devices",
    "decode_node_devices_legacy",
    "decode_pair_scores",
    "decode_pod_devices",
    "decode_volcano_node_devices",
    "decode_volcano_pod_devices",
    "encode_ascend_runtime",
    "encode_node_devices",
    "encode_node_devices_legacy",
    "encode_pair_scores",
    "encode_pod_devices",
    "encode_volcano_node_devices",
    "encode_volcano_pod_devices",
    "load_pod_page",
    "mig_geometry",
    "mig_registration",
    "normalize_mig_allocations",
    "parse_extender_args",
    "quantity_value",
]

__version__: str
FAILURE_REASONS: list[str]
NODE_UNREGISTERED: str

class CoreError(ValueError):
    """An invalid request or input to the scheduling core."""

class DecodeError(CoreError):
    """Malformed annotation or object text; the message names the field and position."""

@final
class Device:
    """One physical device as a node registers it."""

    def __new__(
        cls,
        id: str,
        count: int,
        devmem: int,
        devcore: int,
        type: str,
        vendor: str = "NVIDIA",
        index: int = 0,
        numa: int = 0,
        mode: str = "hami-core",
        health: bool = True,
        device_vendor: str = "",
        custominfo_json: str | None = None,
        mig_profiles_json: str | None = None,
    ) -> Device: ...
    @property
    def id(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def devmem(self) -> int: ...
    @property
    def devcore(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def numa(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def health(self) -> bool: ...
    @property
    def vendor(self) -> str: ...
    @property
    def device_vendor(self) -> str: ...
    @property
    def custominfo_json(self) -> str | None: ...
    @property
    def mig_profiles_json(self) -> str | None: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class AllocDevice:
    """One device given to one container (`UUID,Type,Usedmem,Usedcores:`)."""

    def __new__(cls, uuid: str, vendor: str, usedmem: int, usedcores: int) -> AllocDevice: ...
    @property
    def uuid(self) -> str: ...
    @property
    def vendor(self) -> str: ...
    @property
    def usedmem(self) -> int: ...
    @property
    def usedcores(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class DeviceRequest:
    """One vendor's part of one container's request."""

    def __new__(
        cls,
        vendor: str,
        count: int,
        mem_mib: int = 0,
        mem_percent: int | None = None,
        cores: int = 0,
    ) -> DeviceRequest: ...
    @property
    def vendor(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def mem_mib(self) -> int: ...
    @property
    def mem_percent(self) -> int | None: ...
    @property
    def cores(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class ContainerRequest:
    """One container's request: init or app, and its devices per vendor."""

    def __new__(cls, devices: Sequence[DeviceRequest], init: bool = False) -> ContainerRequest: ...
    @property
    def devices(self) -> list[DeviceRequest]: ...
    @property
    def init(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class PodRequest:
    """A pod as the scheduler sees it: init containers first, then app containers."""

    def __new__(
        cls,
        uid: str,
        namespace: str,
        name: str,
        containers: Sequence[ContainerRequest],
        annotations: dict[str, str] | None = None,
    ) -> PodRequest: ...
    @property
    def uid(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def containers(self) -> list[ContainerRequest]: ...
    @property
    def annotations(self) -> dict[str, str]: ...
    def has_devices(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class FilterResult:
    """The outcome of `Cluster.filter`."""

    @property
    def node(self) -> str | None: ...
    @property
    def score(self) -> float: ...
    @property
    def devices(self) -> list[list[AllocDevice]]: ...
    @property
    def failed(self) -> dict[str, str]: ...
    @property
    def failed_count(self) -> int: ...
    @property
    def unregistered_count(self) -> int: ...
    def failed_head(self, n: int) -> list[tuple[str, str]]: ...
    def failed_json(self) -> bytes: ...
    @property
    def reasons(self) -> dict[str, int]: ...
    @property
    def reserved(self) -> bool: ...
    @property
    def annotations(self) -> dict[str, str]:
        """The vendors' pod annotations beyond the device lists (Ascend's runtime JSON
        ``huawei.com/<CW>`` and ``predicate-time``, Cambricon's ``CAMBRICON_DSMLU_*``)."""

@final
class PodAllocation:
    """A pod's allocation as the state holds it."""

    @property
    def uid(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def node(self) -> str: ...
    @property
    def devices(self) -> list[list[AllocDevice]]: ...
    @property
    def init_count(self) -> int: ...
    @property
    def init_done(self) -> bool: ...
    @property
    def reserved_at(self) -> float | None: ...
    @property
    def mig_allocations(self) -> str | None:
        """Its ``hami.io/vgpu-mig-allocations`` (canonical JSON) when it holds MIG instances."""

@final
class DeviceUsage:
    """One device's inventory and what is in use on it."""

    @property
    def node(self) -> str: ...
    @property
    def device(self) -> Device: ...
    @property
    def used(self) -> int: ...
    @property
    def usedmem(self) -> int: ...
    @property
    def usedcores(self) -> int: ...
    @property
    def cordoned(self) -> bool: ...

@final
class ContainerAdmission:
    """What admission does to one container (HAMi's `MutateAdmission`, every vendor)."""

    @property
    def init(self) -> bool: ...
    @property
    def index(self) -> int:
        """Position in `spec.initContainers` (init) or `spec.containers`."""

    @property
    def added_limits(self) -> list[tuple[str, str]]:
        """Limits to add or replace, in order: the default count, a whole device's cores,
        Ascend's resolved memory and its 910C count."""

    @property
    def set_requests(self) -> list[tuple[str, str]]:
        """Requests to set, in order (Ascend writes its resolved memory to both)."""

    @property
    def vendors(self) -> list[str]:
        """Keys of the vendors whose devices it asks for (the count in its limits)."""

    @property
    def priorities(self) -> dict[str, int]:
        """The priority resource's value per vendor key, when its limits give one."""

@final
class PodAdmission:
    """The outcome of `RequestModel.admit`."""

    @property
    def containers(self) -> list[ContainerAdmission]:
        """Init containers first, then app containers, in spec order."""

    @property
    def request(self) -> PodRequest:
        """The request of the pod with the added limits (what `pod_request` derives)."""

    @property
    def quota(self) -> dict[str, int]:
        """What the pod counts against a namespace quota, per resource name."""

    @property
    def warnings(self) -> list[str]:
        """Values accepted but not as written (`gpucores: 150` is taken as 100)."""

    def has_devices(self) -> bool: ...

_SpecValue: TypeAlias = str | int | bool | list[dict[str, str | int]]
_VendorTable: TypeAlias = Mapping[str, Mapping[str, _SpecValue]]

@final
class RequestModel:
    """What a pod requests, for admission: the derivation `Cluster.pod_request` runs, over the
    same vendor table, plus admission's defaults, checks, warnings and quota amounts."""

    def __new__(cls, vendors: _VendorTable | None = None) -> RequestModel: ...
    def vendor_specs(self) -> dict[str, dict[str, _SpecValue]]: ...
    def pod_request(self, pod_json: str | bytes) -> PodRequest: ...
    def quota_request(self, pod_json: str | bytes) -> dict[str, int]: ...
    def admit(self, pod_json: str | bytes) -> PodAdmission: ...

_PairScores: TypeAlias = list[tuple[str, dict[str, int]]]

@final
class Cluster:
    """The cluster's usage state and the fit/score engine; thread-safe."""

    def __new__(
        cls,
        node_policy: str = "binpack",
        gpu_policy: str = "spread",
        vendors: _VendorTable | None = None,
        threads: int | None = None,
    ) -> Cluster: ...
    @property
    def node_policy(self) -> str: ...
    @property
    def gpu_policy(self) -> str: ...
    def vendor_specs(self) -> dict[str, dict[str, _SpecValue]]: ...
    def pod_request(self, pod_json: str | bytes) -> PodRequest: ...
    def set_node(
        self,
        name: str,
        devices: Sequence[Device],
        pair_scores: _PairScores | None = None,
        cordoned: Sequence[str] | None = None,
    ) -> None: ...
    def remove_node(self, name: str) -> bool: ...
    def node_names(self) -> list[str]: ...
    def upsert_pod(
        self,
        uid: str,
        namespace: str,
        name: str,
        node: str,
        devices: str | Sequence[Sequence[AllocDevice]],
        init_count: int = 0,
        init_done: bool = False,
        reserved_at: float | None = None,
        mig_allocations: str | None = None,
    ) -> None: ...
    def upsert_pods(
        self, pods: Sequence[tuple[str, str, str, str, str, int]]
    ) -> list[tuple[str, str]]: ...
    def remove_pod(self, uid: str) -> bool: ...
    def pod(self, uid: str) -> PodAllocation | None: ...
    def pod_count(self) -> int: ...
    def mark_bound(self, uid: str) -> bool: ...
    def release_expired(self, ttl: float, now: float | None = None) -> list[str]: ...
    def set_quota(
        self, namespace: str, vendor: str, mem: int | None = None, cores: int | None = None
    ) -> None: ...
    def quota_usage(self, namespace: str, vendor: str) -> tuple[int, int]: ...
    def usage(self) -> list[DeviceUsage]: ...
    def set_node_busy(self, name: str, busy: bool) -> bool: ...
    def in_flight(self, name: str) -> int: ...
    def filter(
        self,
        pod: PodRequest,
        candidates: Sequence[str] | NodeNames,
        reserve: bool = True,
        now: float | None = None,
        prefer_idle: bool = False,
        backlog: int = 0,
        window: int = 1,
    ) -> FilterResult: ...

@final
class NodeNames:
    """Node names held by the core, in request order (from `parse_extender_args`)."""

    def __new__(cls, names: Sequence[str]) -> NodeNames: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: int, /) -> str: ...
    def __iter__(self) -> Iterator[str]: ...
    def to_list(self) -> list[str]: ...
    def to_json(self) -> bytes: ...

def parse_extender_args(body: bytes) -> tuple[bytes | None, NodeNames | None, bytes | None]: ...

@final
class PodPage:
    """What `load_pod_page` read from one page of the pod list and did with it: the pods put
    into the state as ``(uid, "namespace/name")``, the UIDs of finished pods, ``(uid,
    namespace, name, error)`` of pods whose allocation did not decode, and the JSON of every
    other pod, for the per-pod path."""

    @property
    def continue_token(self) -> str | None: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def loaded(self) -> list[tuple[str, str]]: ...
    @property
    def finished(self) -> list[str]: ...
    @property
    def invalid(self) -> list[tuple[str, str, str, str]]: ...
    @property
    def others(self) -> list[bytes]: ...

def load_pod_page(
    cluster: Cluster, page: bytes, reserved: Iterable[str] | None = None
) -> PodPage: ...
def quantity_value(text: str) -> int:
    """A resource quantity's value when it is a whole number; `DecodeError` otherwise."""

def mig_registration(model: str, allowed: Sequence[str] | None = None) -> str | None:
    """The ``migProfiles`` JSON a MIG-mode GPU of ``model`` registers (``allowed`` names only)."""

def mig_geometry(
    model: str,
) -> tuple[int, list[tuple[str, int, int, int, int, list[tuple[int, int]]]]] | None:
    """NVIDIA's MIG geometry of ``model``: memory slices and, per GPU instance profile, its
    name, NVML profile id, MiB, compute slices, SMs and legal placements ``(start, size)``."""

def normalize_mig_allocations(text: str) -> str:
    """``hami.io/vgpu-mig-allocations`` checked and in canonical form; ``CoreError`` if bad."""

def decode_node_devices(text: str, vendor: str = "NVIDIA", mode: str | None = None) -> list[Device]:
    """A JSON register annotation; ``mode`` replaces every device's mode."""

def encode_node_devices(devices: Sequence[Device], with_mode: bool = True) -> str:
    """``with_mode=False`` leaves ``mode`` out, as the Ascend plugin writes it."""

def cambricon_devices(node: str, vcore: int, vmemory: int) -> list[Device]:
    """Cambricon's inventory from the node's capacity of ``cambricon.com/mlu.smlu.vcore`` and
    ``cambricon.com/mlu.smlu.vmemory`` (units of 256 MiB), as HAMi synthesizes it."""

def encode_ascend_runtime(items: Sequence[tuple[str, str, int, int]]) -> str:
    """The Ascend runtime annotation ``huawei.com/<CW>`` from ``(uuid, temp, memory, core)``."""

def decode_ascend_runtime(text: str) -> list[tuple[str, str, int, int]]:
    """``(uuid, temp, memory, core)`` per NPU; `DecodeError` names the entry."""

def decode_node_devices_legacy(text: str, vendor: str) -> list[Device]: ...
def encode_node_devices_legacy(devices: Sequence[Device]) -> str: ...
def decode_pod_devices(text: str) -> list[list[AllocDevice]]: ...
def encode_pod_devices(containers: str | Sequence[Sequence[AllocDevice]]) -> str: ...
def decode_volcano_node_devices(text: str) -> list[Device]:
    """``volcano.sh/node-vgpu-register``: ``id,count,devmem,type,health,mode:`` per device
    (vendor ``NVIDIA``, ``devcore`` volcano's 100); `DecodeError` names the device and field."""

def encode_volcano_node_devices(devices: Sequence[Device]) -> str:
    """``volcano.sh/node-vgpu-register``; `DecodeError` for an id or type holding ``,:;``."""

def decode_volcano_pod_devices(text: str) -> list[list[AllocDevice]]:
    """``volcano.sh/vgpu-ids-new`` / ``devices-to-allocate``: one list per container that
    requests a vGPU, the containers separated by ``;``."""

def encode_volcano_pod_devices(containers: Sequence[Sequence[AllocDevice]]) -> str:
    """The containers joined by ``;`` (one empty container is the empty string)."""

def decode_pair_scores(text: str) -> _PairScores: ...
def encode_pair_scores(scores: _PairScores) -> str: ...
