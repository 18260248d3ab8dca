"""The adapter's credentials against the real kube-apiserver: an exec plugin user, a token file
rotated on disk, and the errors a user gets for a kubeconfig that cannot work.

Tokens are real ServiceAccount tokens from the TokenRequest API, bound to a Secret
(``boundObjectRef``), so that deleting the Secret revokes the token; who the API server took us
for is asked of it (SelfSubjectReview).
"""

import asyncio
import base64
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from hami_common.k8s import (
    NO_RETRY,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    ConfigError,
    ConnectionFailed,
    CredentialsError,
    KubeClient,
    Resource,
    Unauthorized,
    load_config,
)
from hami_common.k8s import credentials as credentials_mod
from hami_e2e.backend import Cluster
from hami_e2e.pki import CertificateAuthority

pytestmark = pytest.mark.e2e

ROLES = Resource("rbac.authorization.k8s.io/v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io/v1", "rolebindings")
SELF_REVIEWS = Resource("authentication.k8s.io/v1", "selfsubjectreviews", namespaced=False)


async def make_readers(kube: KubeClient, ns: str, *names: str) -> None:
    """ServiceAccounts that may read the namespace's pods."""
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    await kube.create(ROLES, {"metadata": {"name": "read-pods"}, "rules": [rule]}, namespace=ns)
    for name in names:
        await kube.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, namespace=ns)
    binding = {
        "metadata": {"name": "read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": n, "namespace": ns} for n in names],
    }
    await kube.create(ROLE_BINDINGS, binding, namespace=ns)


async def bound_token(kube: KubeClient, ns: str, account: str, secret: str) -> str:
    """A token of ``account`` that is valid while the Secret ``secret`` exists."""
    made = await kube.create(SECRETS, {"metadata": {"name": secret}}, namespace=ns)
    ref = {"kind": "Secret", "apiVersion": "v1", "name": secret, "uid": made["metadata"]["uid"]}
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600, "boundObjectRef": ref},
    }
    answer = await kube.create(
        SERVICE_ACCOUNTS, request, namespace=ns, name=account, subresource="token"
    )
    return str(answer["status"]["token"])


async def whoami(kube: KubeClient) -> str:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = await kube.create(SELF_REVIEWS, review)
    return str(answer["status"]["userInfo"]["username"])


def kubeconfig(path: Path, cluster: Cluster, user: dict[str, Any], **cluster_fields: Any) -> Path:
    """A kubeconfig for the test cluster's server and CA, as ``user``."""
    admin = load_config(cluster.kubeconfig)
    ca = admin.ca_data if admin.ca_data is not None else Path(str(admin.ca_file)).read_bytes()
    fields = {"server": admin.server, "certificate-authority-data": base64.b64encode(ca).decode()}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {**fields, **cluster_fields}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "t",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_an_exec_plugin_user_authenticates(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = kube_namespace
    runs = tmp_path / "runs"

    async def main() -> None:
        async with kube_cluster.client() as admin:
            await make_readers(admin, ns, "plugin-user")
            token = await bound_token(admin, ns, "plugin-user", "plugin-token")
        status = {"token": token}
        credential = {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": status,
        }
        (tmp_path / "credential.json").write_text(json.dumps(credential))
        plugin = tmp_path / "get-token"
        plugin.write_text(f'#!/bin/sh\necho run >> "{runs}"\ncat "{tmp_path}/credential.json"\n')
        plugin.chmod(0o755)
        # The user and its context in one file, the cluster in the admin kubeconfig: a merged
        # KUBECONFIG list, as a laptop with several clusters has.
        admin_doc = yaml.safe_load(kube_cluster.kubeconfig.read_text())
        current = admin_doc["current-context"]
        admin_ctx = next(c for c in admin_doc["contexts"] if c["name"] == current)
        mine = {
            "apiVersion": "v1",
            "kind": "Config",
            "users": [
                {
                    "name": "plugin",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": "./get-token",
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [
                {
                    "name": "plugin",
                    "context": {"cluster": admin_ctx["context"]["cluster"], "user": "plugin"},
                }
            ],
        }
        (tmp_path / "mine").write_text(yaml.safe_dump(mine))
        monkeypatch.setenv(
            "KUBECONFIG", f"{tmp_path / 'mine'}{os.pathsep}{kube_cluster.kubeconfig}"
        )
        config = load_config(context="plugin")
        async with KubeClient(config) as kube:
            assert await whoami(kube) == f"system:serviceaccount:{ns}:plugin-user"
            lists = await asyncio.gather(*(kube.list(PODS, namespace=ns) for _ in range(10)))
            assert all(result["kind"] == "PodList" for result in lists)

    asyncio.run(main())
    assert len(runs.read_text().splitlines()) == 1  # one run for eleven requests


def test_a_token_rotated_on_disk_is_picked_up_without_a_read_per_request(
    kube_cluster: Cluster, kube_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = kube_namespace
    reads: list[Path] = []
    real_read = credentials_mod.read_token_file

    def counted(path: Path) -> str:
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(credentials_mod, "read_token_file", counted)
    token_file = tmp_path / "token"

    async def main() -> None:
        async with kube_cluster.client() as admin:
            await make_readers(admin, ns, "first", "second", "third")
            first = await bound_token(admin, ns, "first", "s1")
            second = await bound_token(admin, ns, "second", "s2")
            third = await bound_token(admin, ns, "third", "s3")
            await admin.delete(SECRETS, "s3", namespace=ns)  # revokes `third`
            probe = load_config(kubeconfig(tmp_path / "probe", kube_cluster, {"token": third}))
            # Let the API server's Secret cache see the deletion before the first use: a token
            # it accepts is cached as valid for 10 s.
            await asyncio.sleep(0.3)
            async with KubeClient(probe, backoff=NO_RETRY) as check:
                for _ in range(150):
                    try:
                        await whoami(check)
                    except Unauthorized:
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("deleting the bound Secret did not revoke the token")

        # Periodic: read once, used for many requests, re-read after the period.
        token_file.write_text(first)
        config = load_config(kubeconfig(tmp_path / "kc", kube_cluster, {"tokenFile": "token"}))
        async with KubeClient(config, refresh_interval=1.0) as kube:
            for _ in range(20):
                await kube.list(PODS, namespace=ns)
            assert await whoami(kube) == f"system:serviceaccount:{ns}:first"
            assert len(reads) == 1
            token_file.write_text(second)  # the kubelet rotates the projected token
            await asyncio.sleep(1.1)
            assert await whoami(kube) == f"system:serviceaccount:{ns}:second"
            assert len(reads) == 2

        # After a 401: read again once, and retry only if the file changed.
        reads.clear()
        token_file.write_text(third)
        async with KubeClient(config, refresh_interval=3600.0, backoff=NO_RETRY) as kube:
            with pytest.raises(Unauthorized) as refused:
                await whoami(kube)
            assert len(reads) == 2  # the first read, and one after the 401
            assert "the API server refused our credentials" in str(refused.value)
            assert kube.config.server in str(refused.value)
            token_file.write_text(second)
            assert await whoami(kube) == f"system:serviceaccount:{ns}:second"
            assert len(reads) == 3

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unusable_kubeconfigs_say_what_to_fix(kube_cluster: Cluster, tmp_path: Path) -> None:
    # A missing CA file: the file and the key that names it.
    path = kubeconfig(tmp_path / "kc", kube_cluster, {}, **{"certificate-authority": "ca.pem"})
    doc = yaml.safe_load(path.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as missing:
        load_config(path)
    assert str(missing.value) == (
        f"kubeconfig {path}: certificate-authority (the cluster's CA) is {tmp_path}/ca.pem, "
        "which does not exist; fix the path or use certificate-authority-data"
    )

    # A malformed kubeconfig: the file and the problem.
    broken = tmp_path / "broken"
    broken.write_text("clusters:\n  - name: c\n    cluster: {server: [\n")
    with pytest.raises(ConfigError) as malformed:
        load_config(broken)
    assert f"kubeconfig {broken} is not valid YAML" in str(malformed.value)
    assert "line 4" in str(malformed.value)

    async def request(config_path: Path) -> None:
        async with KubeClient(load_config(config_path), backoff=NO_RETRY) as kube:
            await kube.list(PODS, namespace="default")

    # An unreachable server: the URL, and what to check.
    dead = f"https://127.0.0.1:{free_port()}"
    path = kubeconfig(tmp_path / "dead", kube_cluster, {"token": "t"}, server=dead)
    with pytest.raises(ConnectionFailed) as unreachable:
        asyncio.run(request(path))
    text = str(unreachable.value)
    assert f"GET {dead}/api/v1/namespaces/default/pods: cannot connect to the API server" in text
    assert "check the server URL in the kubeconfig" in text

    # A CA that did not sign the server's certificate: what to check in the kubeconfig.
    other_ca = CertificateAuthority(tmp_path / "other-ca").pem
    path = kubeconfig(
        tmp_path / "wrong-ca", kube_cluster, {"token": "t"},
        **{"certificate-authority-data": base64.b64encode(other_ca).decode()},
    )  # fmt: skip
    with pytest.raises(ConnectionFailed) as untrusted:
        asyncio.run(request(path))
    assert "the API server's certificate is not trusted" in str(untrusted.value)
    assert "certificate-authority(-data) or tls-server-name" in str(untrusted.value)

    # An exec plugin that is not installed: the command and the kubeconfig's install hint.
    hint = "Install get-token from https://example.invalid/get-token"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "hami-no-such-plugin",
            "args": ["--cluster", "c"],
            "installHint": hint,
        }
    }
    path = kubeconfig(tmp_path / "exec", kube_cluster, user)
    with pytest.raises(CredentialsError) as plugin:
        asyncio.run(request(path))
    assert str(plugin.value) == (
        f"kubeconfig {path} (context 't'): user 'u': the exec plugin `hami-no-such-plugin "
        f"--cluster c` could not be started: No such file or directory; {hint}"
    )
