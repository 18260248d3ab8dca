"""A pod of an installed chart run the way kubelet would run it, as local processes (there is
no container runtime here): from the objects the release holds, not from a second copy of
its configuration.

What stands in for what (each a mapping, never a change of the chart's settings):
- a volume is a folder: a Secret's or ConfigMap's data written as files (``items`` honoured),
  an emptyDir empty, a hostPath the same path under a folder standing for the node's root;
- a container path on the command line, under a volume's mount, is that volume's folder; on a
  pod with hostPath volumes, any other absolute path is a host path (the plugin hands its
  ``--plugin-dir``, ``--hook-path`` and ``--lock-dir`` to kubelet as host paths);
- ``$(VAR)`` takes the container's env (``spec.nodeName`` is the node given);
- ``python3`` is this interpreter (the workspace holds the image's packages); ``kube-scheduler``
  is the binary e2e/ built;
- everything listens on 127.0.0.1, each on a free port: ``--host=0.0.0.0`` becomes
  ``--host=127.0.0.1``, ``--port`` the port given and ``--metrics-port`` a free one (the
  extender's 9395 is HAMi's, and another process on this machine may hold it);
- container paths that kube-scheduler reads from its configuration file (the extender's TLS
  files) map the same way;
- the ServiceAccount's token (a TokenRequest, as kubelet's projected token) is a kubeconfig
  passed with ``--kubeconfig`` (kube-scheduler: ``clientConnection.kubeconfig``).
"""

from __future__ import annotations

import base64
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hami_common.k8s import SERVICE_ACCOUNTS, KubeClient

from hami_e2e.build import layout
from hami_e2e.charts.helm import one
from hami_e2e.components import free_port

Json = dict[str, Any]
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


async def request_token(kube: KubeClient, namespace: str, account: str, seconds: int = 3600) -> str:
    """A token of ``namespace/account`` from the TokenRequest API (kubelet's projected token)."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": seconds}}  # fmt: skip
    answer = await kube.create(SERVICE_ACCOUNTS, request, namespace=namespace, name=account,
                               subresource="token")  # fmt: skip
    return str(answer["status"]["token"])


def token_kubeconfig(
    admin_kubeconfig: Path, namespace: str, account: str, token: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as ``namespace/account`` with ``token``, for the API
    server of ``admin_kubeconfig``."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    user = f"system:serviceaccount:{namespace}:{account}"
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "cluster", "user": user}}],
        "current-context": user,
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass
class LocalPod:
    """One pod of a Deployment or DaemonSet of ``manifest`` (the release's objects)."""

    manifest: list[Json]
    kind: str
    name: str
    root: Path  # this pod's folders
    node: str = ""
    host_root: Path | None = None  # the node's root, for hostPath volumes

    @property
    def spec(self) -> Json:
        return dict(one(self.manifest, self.kind, self.name)["spec"]["template"]["spec"])

    @property
    def service_account(self) -> str:
        return str(self.spec["serviceAccountName"])

    def container(self, name: str) -> Json:
        for container in self.spec.get("containers", []) + self.spec.get("initContainers", []):
            if container["name"] == name:
                return dict(container)
        raise KeyError(f"{self.kind}/{self.name} has no container {name}")

    def volume_folder(self, volume: Json) -> Path:
        if "hostPath" in volume:
            if self.host_root is None:
                raise ValueError(f"{self.kind}/{self.name} has hostPath volumes: give host_root")
            return self.host_root / str(volume["hostPath"]["path"]).lstrip("/")
        return self.root / "volumes" / str(volume["name"])

    def materialize(self, secrets: dict[str, Json]) -> None:
        """Every volume's folder, with the data of its Secret (from ``secrets``, by name: the
        API server's copy) or ConfigMap (the release's)."""
        for volume in self.spec.get("volumes", []):
            folder = self.volume_folder(volume)
            folder.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                data = {k: base64.b64decode(v) for k, v in
                        secrets[volume["secret"]["secretName"]]["data"].items()}  # fmt: skip
                _write(folder, data, volume["secret"].get("items"))
            elif "configMap" in volume:
                config = one(self.manifest, "ConfigMap", volume["configMap"]["name"])
                data = {k: v.encode() for k, v in config.get("data", {}).items()}
                _write(folder, data, volume["configMap"].get("items"))

    def local_path(self, container: Json, path: str) -> str:
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for mount in mounts:
            base = mount["mountPath"].rstrip("/")
            if path == base or path.startswith(base + "/"):
                return str(self.volume_folder(volumes[mount["name"]])) + path[len(base) :]
        if self.host_root is not None and path.startswith("/"):
            return str(self.host_root / path.lstrip("/"))
        return path

    def env(self, container: Json) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                env[var["name"]] = self.node
        return env

    def argv(self, container_name: str, port: int | None = None) -> list[str]:
        """The container's command line, mapped as the module says."""
        container = self.container(container_name)
        env = self.env(container)
        words = [*container.get("command", []), *container.get("args", [])]
        out: list[str] = []
        for i, raw in enumerate(words):
            word = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), raw)
            if i == 0:
                out.append(_program(word))
                continue
            flag, eq, value = word.partition("=")
            if flag.startswith("--") and eq:
                if flag == "--host" and value == "0.0.0.0":  # noqa: S104 - what we rewrite
                    value = "127.0.0.1"
                elif flag == "--port" and port is not None:
                    value = str(port)
                elif flag == "--metrics-port":
                    value = str(free_port())
                out.append(f"{flag}={self.local_path(container, value)}")
            else:
                out.append(self.local_path(container, word))
        return out


def _program(word: str) -> str:
    if word == "python3":
        return sys.executable
    if word == "kube-scheduler":
        return str(layout().binary("kube-scheduler"))
    return word


def _write(folder: Path, data: dict[str, bytes], items: list[Json] | None) -> None:
    chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for key, rel in chosen.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])
