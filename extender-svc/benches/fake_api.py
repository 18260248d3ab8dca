"""A fake API server for the extender benchmarks, as its own process on loopback.

It serves, over plain HTTP/1.1 with keep-alive: the node list (NODES nodes x GPUS GPUs, each with
the register annotation), the placed pods as paged lists (``limit``/``continue``, as the real API
server pages them), with pods shaped like what a real API server returns (managedFields, status
conditions, projected token volume...: about 4 KB of JSON each), watches that stay open and
send nothing, and 200 to every PATCH and POST. Being a separate process, its memory and CPU are
not counted in the extender's figures; the pages are encoded once before it listens.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

import orjson

NODES, GPUS = 5000, 8
TS = "2026-01-01T00:00:00Z"


def uuid(n: int, g: int) -> str:
    return f"GPU-{n:05d}-{g}"


def node_list() -> bytes:
    import hami_rustcore as core

    items = []
    for n in range(NODES):
        devs = [core.Device(uuid(n, g), 10, 81920, 100, "NVIDIA-A100", index=g)
                for g in range(GPUS)]  # fmt: skip
        ann = {"hami.io/node-nvidia-register": core.encode_node_devices(devs)}
        items.append({"metadata": {"name": f"node-{n:05d}", "annotations": ann,
                                   "resourceVersion": "1"}})  # fmt: skip
    return orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})


def placed_pod(i: int) -> dict[str, object]:
    """Pod ``i``, on GPU ``i // NODES % GPUS`` of node ``i % NODES``, as the API returns it."""
    n, g = i % NODES, (i // NODES) % GPUS
    node, value = f"node-{n:05d}", f"{uuid(n, g)},NVIDIA,2000,10:;"
    fields = {
        "f:metadata": {
            "f:annotations": {
                "f:hami.io/vgpu-node": {},
                "f:hami.io/vgpu-time": {},
                "f:hami.io/vgpu-devices-allocated": {},
                "f:hami.io/bind-phase": {},
            }
        },
        "f:spec": {
            "f:containers": {
                'k:{"name":"main"}': {
                    "f:image": {},
                    "f:resources": {
                        "f:limits": {"f:nvidia.com/gpu": {}, "f:nvidia.com/gpumem": {}}
                    },
                }
            }
        },
    }
    cond = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": TS}
        for t in (
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        )
    ]
    return {
        "metadata": {
            "name": f"train-{i:06d}-x7k2p",
            "generateName": f"train-{i:06d}-",
            "namespace": f"team-{i % 50}",
            "uid": f"0b9c{i:08d}-7f1e-4a7e-9c3d-5e8f2a1b{i % 9999:04d}",
            "resourceVersion": str(1000 + i),
            "creationTimestamp": TS,
            "labels": {"app": "train", "hami.io/vgpu-node": node, "job-name": f"train-{i:06d}"},
            "annotations": {
                "hami.io/vgpu-node": node,
                "hami.io/vgpu-time": "1767225600",
                "hami.io/vgpu-devices-allocated": value,
                "hami.io/vgpu-devices-to-allocate": ";",
                "hami.io/bind-phase": "success",
                "hami.io/bind-time": "1767225600",
                "hami.io/trace-context": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": f"train-{i:06d}",
                    "uid": "a1b2c3d4-0000-4000-8000-000000000000",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "hami-extender",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": TS,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "command": ["python", "train.py"],
                    "env": [{"name": "EPOCHS", "value": "10"}],
                    "resources": {
                        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000"},
                        "requests": {"cpu": "1", "memory": "4Gi"},
                    },
                    "volumeMounts": [
                        {
                            "name": "kube-api-access-abcde",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access-abcde",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": node,
            "schedulerName": "hami-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": cond,
            "hostIP": "10.0.0.1",
            "podIP": "10.244.1.2",
            "podIPs": [{"ip": "10.244.1.2"}],
            "startTime": TS,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": TS}},
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "imageID": "nvcr.io/nvidia/pytorch@sha256:0123456789abcdef",
                    "containerID": "containerd://0123456789abcdef",
                }
            ],
        },
    }


def pod_pages(pods: int, page: int = 500) -> list[bytes]:
    pages = []
    for start in range(0, pods, page):
        meta: dict[str, object] = {"resourceVersion": "100"}
        if start + page < pods:
            meta["continue"] = str(start + page)
        items = [placed_pod(i) for i in range(start, min(start + page, pods))]
        pages.append(orjson.dumps({"kind": "PodList", "metadata": meta, "items": items}))
    return pages or [orjson.dumps({"kind": "PodList", "metadata": {"resourceVersion": "100"},
                                   "items": []})]  # fmt: skip


async def serve(port: int, pods: int) -> None:
    nodes, pages = node_list(), pod_pages(pods)
    unbound = pod_pages(0)[0]

    def answer(method: str, target: str) -> bytes | None:
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if query.get("watch") == "true":
            return None
        if method == "GET" and url.path == "/api/v1/nodes":
            return nodes
        if method == "GET" and url.path == "/api/v1/pods":
            if "spec.nodeName=" in query.get("fieldSelector", "").split(","):
                return unbound  # the extender's pending pods: every pod here is bound
            return pages[int(query.get("continue", "0")) // 500]
        return b"{}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = next((int(x.split(":", 1)[1]) for x in lines[1:]
                               if x.lower().startswith("content-length:")), 0)  # fmt: skip
                if length:
                    await reader.readexactly(length)
                body = answer(method, target)
                if body is None:  # a watch: headers, then silence until the client leaves
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
                    await writer.drain()
                    await reader.read()
                    return
                status = b"201 Created" if method == "POST" else b"200 OK"
                writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % (status, len(body)))  # fmt: skip
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
