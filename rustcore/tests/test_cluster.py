"""The cluster state and filter through the binding: HAMi-shaped pods, errors at the boundary,
and concurrent reservations that never double-book."""

from __future__ import annotations

import json
import threading

import hami_rustcore as hc
import pytest


def node(c: hc.Cluster, name: str, n: int = 2, mem: int = 16384, count: int = 10) -> None:
    c.set_node(
        name,
        [hc.Device(f"{name}-g{i}", count, mem, 100, "NVIDIA-Tesla T4", index=i) for i in range(n)],
    )


def gpu_pod(uid: str, count: int = 1, mem: int = 3000, cores: int = 30) -> hc.PodRequest:
    req = hc.DeviceRequest("NVIDIA", count, mem_mib=mem, cores=cores)
    return hc.PodRequest(uid, "default", uid, [hc.ContainerRequest([req])])


def test_pod_request_from_a_hami_example_pod() -> None:
    c = hc.Cluster()
    pod = {
        "metadata": {"uid": "u1", "namespace": "ns", "name": "gpu-pod"},
        "spec": {
            "containers": [
                {
                    "name": "ubuntu",
                    "resources": {
                        "limits": {
                            "nvidia.com/gpu": "2",
                            "nvidia.com/gpumem": "3000",
                            "nvidia.com/gpucores": "30",
                        }
                    },
                }
            ]
        },
    }
    req = c.pod_request(json.dumps(pod).encode())
    assert (req.uid, req.namespace, req.name) == ("u1", "ns", "gpu-pod")
    [container] = req.containers
    assert container.devices == [hc.DeviceRequest("NVIDIA", 2, mem_mib=3000, cores=30)]


def test_vendor_overrides_rename_resources_and_reject_unknown_keys() -> None:
    c = hc.Cluster(
        vendors={"NVIDIA": {"resource_count": "example.com/vgpu", "default_memory": 2048}}
    )
    pod = {"spec": {"containers": [{"resources": {"limits": {"example.com/vgpu": 1}}}]}}
    [container] = c.pod_request(json.dumps(pod)).containers
    assert container.devices[0].mem_mib == 2048
    with pytest.raises(ValueError, match=r'vendors\.NVIDIA: unknown key "resource_cnt"'):
        hc.Cluster(vendors={"NVIDIA": {"resource_cnt": "x"}})
    with pytest.raises(ValueError, match="default_cores"):
        hc.Cluster(vendors={"NVIDIA": {"default_cores": 101}})
    with pytest.raises(ValueError, match="node_policy"):
        hc.Cluster(node_policy="fullest")


def test_bad_pod_is_a_core_error_naming_the_container() -> None:
    c = hc.Cluster()
    pod = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "-1"}}}]}}
    with pytest.raises(hc.CoreError, match=r"spec.containers\[0\]"):
        c.pod_request(json.dumps(pod))
    with pytest.raises(hc.DecodeError, match="line 1"):
        c.pod_request("{not json")


def test_filter_reserves_and_explains_failures() -> None:
    c = hc.Cluster()
    node(c, "small", mem=2000)
    node(c, "big")
    r = c.filter(gpu_pod("p"), ["small", "big", "nowhere"], now=10.0)
    assert r.node == "big"
    assert r.reserved
    assert r.failed == {
        "small": "2/2 CardInsufficientMemory",
        "nowhere": hc.NODE_UNREGISTERED,
    }
    assert r.reasons == {"CardInsufficientMemory": 2}
    assert hc.encode_pod_devices(r.devices).startswith("big-g")
    alloc = c.pod("p")
    assert alloc is not None
    assert (alloc.node, alloc.reserved_at) == ("big", 10.0)
    assert c.release_expired(60.0, now=100.0) == ["p"]
    assert c.pod("p") is None


def test_failed_nodes_stay_in_the_core_in_candidate_order() -> None:
    """A cluster-wide miss has thousands of per-node reasons: the extender takes them as JSON
    (candidate order, valid JSON whatever the names) and only the first few as Python."""
    c = hc.Cluster()
    node(c, "z-small", mem=2000)
    node(c, 'a"small', mem=2000)
    r = c.filter(gpu_pod("p"), ["z-small", "gone", 'a"small'], reserve=False)
    assert r.node is None
    assert (r.failed_count, r.unregistered_count) == (3, 1)
    assert list(json.loads(r.failed_json())) == ["z-small", "gone", 'a"small']
    assert json.loads(r.failed_json()) == r.failed
    assert r.failed_head(2) == [("z-small", "2/2 CardInsufficientMemory"),
                                ("gone", hc.NODE_UNREGISTERED)]  # fmt: skip
    fits = c.filter(gpu_pod("q", mem=1000), ["z-small"], reserve=False)
    assert (fits.failed_json(), fits.failed_count, fits.failed_head(5)) == (b"{}", 0, [])


def test_bulk_load_reports_bad_annotations_and_keeps_the_rest() -> None:
    c = hc.Cluster()
    node(c, "n1")
    errors = c.upsert_pods(
        [
            ("a", "ns", "a", "n1", "n1-g0,NVIDIA,1000,10:;", 0),
            ("b", "ns", "b", "n1", "n1-g0,NVIDIA,oops,10:;", 0),
        ]
    )
    assert [uid for uid, _ in errors] == ["b"]
    assert "Usedmem" in errors[0][1]
    assert c.pod_count() == 1
    [g0, _] = c.usage()
    assert (g0.used, g0.usedmem, g0.usedcores) == (1, 1000, 10)


def test_invalid_scoring_weights_refuse_the_pod() -> None:
    c = hc.Cluster()
    node(c, "n1")
    req = hc.DeviceRequest("NVIDIA", 1, mem_mib=10)
    pod = hc.PodRequest(
        "p", "d", "p", [hc.ContainerRequest([req])], {"hami.io/device-scoring-weights": "slot=x"}
    )
    with pytest.raises(hc.DecodeError, match="device-scoring-weights"):
        c.filter(pod, ["n1"])


def test_init_containers_must_come_first() -> None:
    c = hc.Cluster()
    node(c, "n1")
    req = hc.DeviceRequest("NVIDIA", 1, mem_mib=10)
    pod = hc.PodRequest(
        "p", "d", "p", [hc.ContainerRequest([req]), hc.ContainerRequest([req], init=True)]
    )
    with pytest.raises(hc.CoreError, match="init containers"):
        c.filter(pod, ["n1"])


def test_concurrent_filters_never_double_book() -> None:
    c = hc.Cluster()
    for i in range(4):
        node(c, f"n{i}", n=2, mem=10000, count=10)
    names = [f"n{i}" for i in range(4)]
    # 8 devices x 10000 MiB fit 16 pods of 5000 MiB; 40 threads race for them.
    results: list[str | None] = []
    lock = threading.Lock()

    def place(i: int) -> None:
        r = c.filter(gpu_pod(f"p{i}", mem=5000, cores=0), names)
        with lock:
            results.append(r.node)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(n is not None for n in results) == 16
    assert all(u.usedmem <= u.device.devmem for u in c.usage())


def test_remove_node_keeps_pods_until_they_go() -> None:
    c = hc.Cluster()
    node(c, "n1")
    c.upsert_pod("a", "ns", "a", "n1", "n1-g0,NVIDIA,1000,10:;")
    assert c.remove_node("n1")
    assert c.node_names() == []
    node(c, "n1")
    assert c.usage()[0].usedmem == 1000
    assert c.remove_pod("a")
    assert not c.remove_pod("a")
