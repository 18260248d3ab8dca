"""Connection settings: from a kubeconfig file or from the in-cluster service account.

`load_config()` follows client-go's order: an explicit kubeconfig path, else ``$KUBECONFIG``
(the first file of the list), else the in-cluster service account when running in a pod,
else ``~/.kube/config``. Supported credentials: client certificates (file or inline data),
bearer tokens (inline or a token file, re-read on every request so rotated tokens are picked
up), CA bundles (file or inline) and ``insecure-skip-tls-verify``. Exec and auth-provider
plugins are refused with a clear error.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(ValueError):
    """The kubeconfig or the service-account files cannot be used; the message says why."""


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach one API server as one user."""

    server: str
    ca_file: Path | None = None
    ca_data: bytes | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"

    def bearer_token(self) -> str | None:
        """The token to send, re-reading ``token_file`` so rotated tokens are used."""
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read token file {self.token_file}: {exc}") from None
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context with this config's CA and client certificate."""
        if self.insecure_skip_tls_verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            ctx = ssl.create_default_context(cadata=self.ca_data.decode("ascii", "replace"))
        elif self.ca_file is not None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            ctx = ssl.create_default_context()
        try:
            if self.cert_file is not None and self.key_file is not None:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            elif self.cert_data is not None and self.key_data is not None:
                _load_cert_data(ctx, self.cert_data, self.key_data)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client certificate: {exc}") from None
        return ctx


def _load_cert_data(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl can only read a certificate chain from a file: write a private temporary file,
    # load it, and remove it at once.
    with tempfile.TemporaryDirectory(prefix="hami-k8s-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert.rstrip(b"\n") + b"\n" + key)
        ctx.load_cert_chain(str(path))


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise ConfigError(f"{what} is not valid base64") from None


def _named(items: Any, name: str, kind: str, source: Path) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: {kind} {name!r} has no {kind} section")
            return body
    raise ConfigError(f"{source}: no {kind} named {name!r}")


def config_from_kubeconfig(path: Path, context: str | None = None) -> ClusterConfig:
    """Parse a kubeconfig file; ``context`` defaults to its current-context."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ConfigError(f"{path}: no context given and no current-context set")
    ctx = _named(doc.get("contexts"), ctx_name, "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster", path)
    user_name = ctx.get("user")
    user = _named(doc.get("users"), str(user_name), "user", path) if user_name else {}
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f"{path}: user {user_name!r} uses an exec/auth-provider plugin")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(f"{path}: cluster {ctx.get('cluster')!r} has no http(s) server URL")
    base = path.parent

    def file(value: Any) -> Path | None:
        return None if value is None else (base / str(value))

    if "username" in user or "password" in user:
        raise ConfigError(f"{path}: basic auth (username/password) is not supported")
    return ClusterConfig(
        server=server.rstrip("/"),
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=_b64(cluster["certificate-authority-data"], "certificate-authority-data")
        if "certificate-authority-data" in cluster
        else None,
        cert_file=file(user.get("client-certificate")),
        key_file=file(user.get("client-key")),
        cert_data=_b64(user["client-certificate-data"], "client-certificate-data")
        if "client-certificate-data" in user
        else None,
        key_data=_b64(user["client-key-data"], "client-key-data")
        if "client-key-data" in user
        else None,
        token=str(user["token"]) if "token" in user else None,
        token_file=file(user.get("tokenFile")),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=str(ctx.get("namespace") or "default"),
    )


def in_cluster_config(
    root: Path = IN_CLUSTER_DIR, env: dict[str, str] | None = None
) -> ClusterConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT plus the mounted token and CA."""
    env = dict(os.environ) if env is None else env
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    token_file = root / "token"
    if not token_file.is_file():
        raise ConfigError(f"not in a cluster: {token_file} does not exist")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ns_file = root / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_file=root / "ca.crt",
        token_file=token_file,
        namespace=namespace or "default",
    )


def load_config(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    env: dict[str, str] | None = None,
) -> ClusterConfig:
    """Resolve the configuration the way client-go does (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    if kubeconfig is not None:
        return config_from_kubeconfig(Path(kubeconfig), context)
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return config_from_kubeconfig(Path(listed[0]), context)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config(env=env)
    return config_from_kubeconfig(Path.home() / ".kube" / "config", context)
