"""Command lines and config files of the control-plane components (one function each).

The flags are those of a kubeadm cluster, trimmed to one loopback host: RBAC (plus the Node
authorizer), the admission plugins a real cluster enables, service-account tokens signed by
our key, and each controller with its own identity.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hami_e2e.pki import CertPair, ClusterPki

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# kubeadm's --enable-admission-plugins adds NodeRestriction to the default set; the defaults
# already include MutatingAdmissionWebhook, ValidatingAdmissionWebhook, ResourceQuota,
# ServiceAccount, LimitRanger, Priority, DefaultTolerationSeconds... We list them explicitly
# so the set the tests rely on is visible here.
ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "Priority",
    "PodSecurity",
    "NodeRestriction",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)
KWOK_LEASE_SECONDS = 40


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 6:
            ports.add(free_port())
        return cls(*sorted(ports))


def write_kubeconfig(
    path: Path, server: str, ca: Path, user: CertPair, name: str = "hami-e2e"
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {
                "name": name,
                "user": {"client-certificate": str(user.cert), "client-key": str(user.key)},
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def etcd_args(binary: Path, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binary),
        "--name=default",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        # A throwaway test store: durability on power loss does not matter, speed does.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]


def apiserver_args(binary: Path, pki: ClusterPki, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.pair.cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account.cert}",
        f"--service-account-signing-key-file={pki.service_account.key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        # No kubelets behind the fake nodes: logs/exec would fail anyway.
        "--kubelet-preferred-address-types=InternalIP",
        f"--requestheader-client-ca-file={pki.front_proxy_ca.pair.cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_args(
    binary: Path, pki: ClusterPki, kubeconfig: Path, ports: Ports, extra: tuple[str, ...] = ()
) -> list[str]:
    """``extra``: flags appended (e.g. ``--kube-api-qps`` for a benchmark)."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--service-account-private-key-file={pki.service_account.key}",
        f"--root-ca-file={pki.ca.pair.cert}",
        f"--cluster-signing-cert-file={pki.ca.pair.cert}",
        f"--cluster-signing-key-file={pki.ca.pair.key}",
        "--use-service-account-credentials=true",
        "--cluster-name=hami-e2e",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def scheduler_config(kubeconfig: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A KubeSchedulerConfiguration; ``extra`` is merged at the top level (e.g. `extenders`,
    `profiles`), which is where later issues add our extender; a ``clientConnection`` in it
    is merged into ours (e.g. ``qps`` and ``burst`` for a benchmark)."""
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "leaderElection": {"leaderElect": False},
    }
    extra = dict(extra or {})
    config["clientConnection"].update(extra.pop("clientConnection", {}))
    config.update(extra)
    return config


def scheduler_args(binary: Path, config: Path, kubeconfig: Path, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--v=1",
    ]


def kwok_args(binary: Path, kubeconfig: Path, stages: Path, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        "--node-ip=10.0.0.1",
        f"--node-lease-duration-seconds={KWOK_LEASE_SECONDS}",
        f"--server-address=127.0.0.1:{ports.kwok}",
    ]


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
