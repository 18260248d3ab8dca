"""``top``: promised (annotations) against used (Prometheus)."""

from __future__ import annotations

from hami_kubectl import top
from hami_kubectl.remote import RemoteError
from hami_kubectl.state import Cluster, Device, Holding

MIB = 2**20


class Samples:
    """Prometheus' answers (the collaborator over HTTP; e2e asks the real one)."""

    def __init__(self, answers: dict[str, list[tuple[dict[str, str], float]]] | None) -> None:
        self.answers = answers

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        if self.answers is None:
            raise RemoteError("http://prom: connection refused")
        return self.answers.get(expr, [])


CLUSTER = Cluster(
    devices=[Device("n1", 0, "GPU-a", "NVIDIA-Tesla-T4", 16384, 100, True),
             Device("n2", 0, "GPU-b", "NVIDIA-Tesla-T4", 16384, 100, True)],
    holdings=[Holding("ns", "p", "main", "n1", "GPU-a", "NVIDIA", 3000, 30)],
)  # fmt: skip


def test_nodes_promised_and_used() -> None:
    a = {"device_uuid": "GPU-a"}
    prom = Samples({"hami_host_gpu_memory_used_bytes": [(a, 1000 * MIB)],
                    "hami_host_gpu_utilization_ratio": [(a, 29.5)]})  # fmt: skip
    doc = top.nodes(CLUSTER, prom)  # type: ignore[arg-type]
    a, b = doc["devices"]
    assert (a["memoryPromisedMiB"], a["memoryUsedMiB"], a["coresPromised"], a["utilization"],
            a["containers"]) == (3000, 1000, 30, 29.5, 1)  # fmt: skip
    assert (b["memoryPromisedMiB"], b["memoryUsedMiB"]) == (0, None)
    lines = top.nodes_table(doc).splitlines()
    header = "NODE DEVICE TYPE MEMORY(PROMISED) MEMORY(USED) MEMORY(TOTAL) CORES(PROMISED) UTIL"
    assert lines[0].split() == [*header.split(), "CONTAINERS"]
    assert lines[1].split() == ["n1", "0", "NVIDIA-Tesla-T4", "3000Mi", "1000Mi", "16384Mi",
                                "30%", "29.5%", "1"]  # fmt: skip
    assert [d["node"] for d in top.nodes(CLUSTER, None, "n2")["devices"]] == ["n2"]


def test_pods_and_an_unreachable_prometheus() -> None:
    doc = top.pods(CLUSTER, Samples(None), "ns")  # type: ignore[arg-type]
    assert doc["containers"][0]["memoryUsedMiB"] is None
    text = top.pods_table(doc, all_namespaces=False)
    assert "Prometheus could not be asked: http://prom: connection refused" in text
    assert top.pods(CLUSTER, None, "other")["containers"] == []
    used = Samples({"hami_vgpu_memory_used_bytes": [({"namespace": "ns", "pod": "p",
                    "container": "main", "device_uuid": "GPU-a"}, 2048 * MIB)]})  # fmt: skip
    [row] = top.pods(CLUSTER, used, None)["containers"]  # type: ignore[arg-type]
    assert (row["memoryPromisedMiB"], row["memoryUsedMiB"]) == (3000, 2048)
    assert top.pods_table({"containers": [row]}, all_namespaces=True).startswith("NAMESPACE")
