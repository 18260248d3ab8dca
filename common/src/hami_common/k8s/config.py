"""Connection settings: from kubeconfig files or from the in-cluster service account.

`load_config()` follows client-go's order: an explicit kubeconfig path, else ``$KUBECONFIG``
(a list of files, merged: the first file that names a cluster, context or user wins, and files
that do not exist are skipped), else the in-cluster service account when running in a pod, else
``~/.kube/config``. ``context`` picks a context other than the current one.

The files are read, merged and resolved by the official client's loaders (`kubernetes.config`:
``KubeConfigMerger``, ``KubeConfigLoader``, ``InClusterConfigLoader``, ``ExecProvider``), not by
code of ours; this module checks what they would otherwise fail on obscurely (a missing file, a
malformed entry) and turns every failure into a `ConfigError` that names the file, the key and
what to do. The credentials themselves are used, and refreshed, by `credentials.Credentials`:

- a ``token``, or a ``tokenFile`` (re-read about once a minute and after a 401, as client-go
  does; the in-cluster token is such a file);
- client certificates and keys, inline or as files (files rotated on disk are picked up);
- ``exec`` plugins (``client.authentication.k8s.io/v1`` and ``v1beta1``: EKS, GKE, AKS...),
  run again when their credential expires or is refused;
- the ``oidc`` auth-provider, refreshed by the library when its id-token expires;
- CA bundles (file or inline), ``tls-server-name`` and ``insecure-skip-tls-verify``.

Basic auth (removed from Kubernetes in 1.19) and the removed ``gcp``/``azure`` auth-providers
are refused with the plugin to use instead.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(ValueError):
    """The kubeconfig or the service-account files cannot be used; the message says why."""


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig user's ``exec`` section, run by `credentials` for an ExecCredential."""

    spec: Mapping[str, Any]
    # The folder of the kubeconfig that defined the user: the plugin's working directory.
    base_path: str
    # The cluster entry, sent to plugins that set provideClusterInfo.
    cluster: Mapping[str, Any] = field(default_factory=dict)
    user: str = ""
    source: str = ""

    @property
    def command(self) -> str:
        return " ".join([str(self.spec.get("command")), *map(str, self.spec.get("args") or [])])

    @property
    def install_hint(self) -> str:
        return str(self.spec.get("installHint") or "").strip()


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach one API server as one user.

    ``token_source`` (auth-providers) is a blocking call that returns the current
    ``Authorization`` header value, refreshing it if it expired; ``force=True`` after a 401.
    """

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
    tls_server_name: str | None = None
    exec_plugin: ExecPlugin | None = None
    token_source: Callable[[bool], str | None] | None = field(default=None, compare=False)
    source: str = ""

    def ssl_context(self, client_cert: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
        """A client TLS context with this config's CA and client certificate (``client_cert``:
        the PEM certificate and key an exec plugin returned, instead of the config's)."""
        try:
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
        except (OSError, ssl.SSLError) as exc:
            what = (
                f"CA file {self.ca_file}" if self.ca_data is None else "certificate-authority-data"
            )
            raise ConfigError(f"{self._from()}cannot load the {what}: {exc}") from None
        try:
            if client_cert is not None:
                _load_cert_data(ctx, *client_cert)
            elif self.cert_file is not None and self.key_file is not None:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            elif self.cert_data is not None and self.key_data is not None:
                _load_cert_data(ctx, self.cert_data, self.key_data)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{self._from()}cannot load the client certificate: {exc}") from None
        return ctx

    def _from(self) -> str:
        return f"{self.source}: " if self.source else ""


def _load_cert_data(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl can only read a certificate chain from a file: write a private temporary file,
    # load it, and remove it at once.
    with tempfile.TemporaryDirectory(prefix="hami-k8s-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert.rstrip(b"\n") + b"\n" + key)
        ctx.load_cert_chain(str(path))


@contextmanager
def _library(where: str) -> Iterator[None]:
    """Turn what the kubernetes library and YAML raise into a `ConfigError` about ``where``."""
    import yaml  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    try:
        yield
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {' '.join(str(exc).split())}") from None
    except ConfigException as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{where} is not a usable kubeconfig ({type(exc).__name__}: {exc}): it must be a "
            "mapping with lists of named clusters, contexts and users"
        ) from None


def _check_shape(path: str) -> dict[str, Any]:
    """What the library assumes of each file: a mapping whose lists hold named mappings."""
    import yaml  # noqa: PLC0415

    with _library(f"kubeconfig {path}"), open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if doc is None:
        raise ConfigError(f"kubeconfig {path} is empty")
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping (got {type(doc).__name__})")
    for key in ("clusters", "contexts", "users"):
        items = doc.get(key) or []
        if not isinstance(items, list):
            raise ConfigError(f"kubeconfig {path}: {key} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ConfigError(f"kubeconfig {path}: {key}[{i}] has no name")
            body = item.get(key[:-1])
            if not isinstance(body, dict | None):
                raise ConfigError(
                    f"kubeconfig {path}: {key[:-1]} {item['name']!r} is not a mapping"
                )
    return doc


def _b64(value: Any, what: str, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        raise ConfigError(f"{where}: {what} is not valid base64") from None


def _existing(node: Any, key: str, what: str, where: str) -> Path | None:
    """The file a ``key`` names, relative to the kubeconfig that holds it; it must exist."""
    value = node.get(key) if isinstance(node, dict) else None
    if not value:
        return None
    path = Path(os.path.normpath(os.path.join(os.path.dirname(where), str(value))))
    if not path.is_file():
        raise ConfigError(
            f"kubeconfig {where}: {key} ({what}) is {path}, which does not exist; fix the path "
            f"or use {'token' if key == 'tokenFile' else f'{key}-data'}"
        )
    return path


def config_from_kubeconfig(
    path: Path | str | list[Path | str], context: str | None = None
) -> ClusterConfig:
    """Read one kubeconfig, or merge a list of them, and resolve ``context`` (default: the
    current-context). Files of a list that do not exist are skipped, as client-go does."""
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger  # noqa: PLC0415

    paths = [str(p) for p in (path if isinstance(path, list) else [path])]
    present = [p for p in paths if os.path.exists(os.path.expanduser(p))]
    if not present:
        raise ConfigError(f"kubeconfig {os.pathsep.join(paths)} does not exist")
    merger = KubeConfigMerger("")
    current = None
    for one in present:
        doc = _check_shape(os.path.expanduser(one))
        # client-go: the first file that sets current-context wins (the library keeps the last).
        current = current or doc.get("current-context")
        with _library(f"kubeconfig {one}"):
            merger.load_config(os.path.expanduser(one))
    root = merger.config
    files = ", ".join(present)
    contexts = [c["name"] for c in root.value["contexts"]]
    name = context or current
    if not name:
        raise ConfigError(
            f"kubeconfig {files}: no context given and no current-context set; pass a context "
            f"(one of {contexts}) or run `kubectl config use-context NAME`"
        )
    if name not in contexts:
        raise ConfigError(f"kubeconfig {files}: no context named {name!r} (there are {contexts})")
    ctx = root["contexts"].get_with_name(name).value.get("context") or {}
    clusters = [c["name"] for c in root.value["clusters"]]
    if ctx.get("cluster") not in clusters:
        raise ConfigError(
            f"kubeconfig {files}: context {name!r} names no cluster, or a missing one "
            f"({ctx.get('cluster')!r}; there are {clusters})"
        )
    user_name = ctx.get("user")
    users = [u["name"] for u in root.value["users"]]
    if user_name and user_name not in users:
        raise ConfigError(
            f"kubeconfig {files}: context {name!r} names user {user_name!r}, and there is no "
            "user of that name"
        )
    with _library(f"kubeconfig {files}"):
        loader = KubeConfigLoader(root, active_context=name, config_base_path=None)
        cluster_node = root["clusters"].get_with_name(ctx["cluster"])
        user_node = root["users"].get_with_name(user_name) if user_name else None
    return _from_entries(loader, cluster_node, user_node, name, str(user_name or ""))


def _from_entries(
    loader: Any, cluster_node: Any, user_node: Any, context: str, user_name: str
) -> ClusterConfig:
    cluster: dict[str, Any] = dict(cluster_node.value.get("cluster") or {})
    user: dict[str, Any] = dict(user_node.value.get("user") or {}) if user_node is not None else {}
    c_src = str(cluster_node.path)
    u_src = str(user_node.path) if user_node is not None else c_src
    where = f"kubeconfig {c_src}"
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(
            f"{where}: cluster {cluster_node.value['name']!r} has no http(s) server URL "
            f"(server: {server!r})"
        )
    if "username" in user or "password" in user:
        raise ConfigError(
            f"kubeconfig {u_src}: user {user_name!r}: basic auth (username/password) was "
            "removed from Kubernetes in 1.19; use a token, a client certificate or an exec plugin"
        )
    provider = user.get("auth-provider")
    if provider is not None and (not isinstance(provider, dict) or provider.get("name") != "oidc"):
        pname = provider.get("name") if isinstance(provider, dict) else provider
        raise ConfigError(
            f"kubeconfig {u_src}: user {user_name!r}: auth-provider {pname!r} is not supported "
            "(kubectl removed it in 1.26); use its exec plugin instead (gke-gcloud-auth-plugin, "
            "kubelogin...), or the oidc auth-provider"
        )
    exec_plugin = None
    # The library's order: an auth-provider, then a token or tokenFile, then exec.
    if "exec" in user and provider is None and not user.get("token") and not user.get("tokenFile"):
        spec = user["exec"]
        if not isinstance(spec, dict) or not spec.get("command") or not spec.get("apiVersion"):
            raise ConfigError(
                f"kubeconfig {u_src}: user {user_name!r}: exec needs a command and an apiVersion"
            )
        exec_plugin = ExecPlugin(
            spec=spec,
            base_path=os.path.dirname(os.path.abspath(u_src)),
            cluster=cluster,
            user=user_name,
            source=f"kubeconfig {u_src} (context {context!r})",
        )
    token_source = _auth_provider_source(loader) if provider is not None else None
    uwhere = f"kubeconfig {u_src}"
    return ClusterConfig(
        server=server.rstrip("/"),
        ca_file=None
        if "certificate-authority-data" in cluster
        else _existing(cluster, "certificate-authority", "the cluster's CA", c_src),
        ca_data=_b64(cluster["certificate-authority-data"], "certificate-authority-data", where)
        if "certificate-authority-data" in cluster
        else None,
        cert_file=_existing(user, "client-certificate", f"user {user_name!r}", u_src),
        key_file=_existing(user, "client-key", f"user {user_name!r}", u_src),
        cert_data=_b64(user["client-certificate-data"], "client-certificate-data", uwhere)
        if "client-certificate-data" in user
        else None,
        key_data=_b64(user["client-key-data"], "client-key-data", uwhere)
        if "client-key-data" in user
        else None,
        token=str(user["token"]) if user.get("token") and "tokenFile" not in user else None,
        token_file=_existing(user, "tokenFile", f"user {user_name!r}", u_src),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=str(loader.current_context["context"].get("namespace") or "default"),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        exec_plugin=exec_plugin,
        token_source=token_source,
        source=f"kubeconfig {u_src} (context {context!r})",
    )


def _auth_provider_source(loader: Any) -> Callable[[bool], str | None]:
    """The library's auth-provider support (oidc: the id-token, refreshed with the refresh
    token when it expires), as a blocking call that `credentials` runs in a thread."""
    holder = SimpleNamespace(api_key={}, refresh_api_key_hook=None)
    loaded = [False]

    def current(force: bool) -> str | None:
        if force or not loaded[0]:
            loader.load_and_set(holder)
            loaded[0] = True
        elif holder.refresh_api_key_hook is not None:
            holder.refresh_api_key_hook(holder)
        value = holder.api_key.get("BearerToken")
        return str(value) if value else None

    return current


def in_cluster_config(
    root: Path = IN_CLUSTER_DIR, env: Mapping[str, str] | None = None
) -> ClusterConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT plus the mounted token and CA.

    The token file is projected by the kubelet and rotated (hourly by default); `credentials`
    re-reads it about once a minute, and after a 401."""
    from kubernetes.config.incluster_config import InClusterConfigLoader  # noqa: PLC0415

    env = dict(os.environ) if env is None else dict(env)
    if not env.get("KUBERNETES_SERVICE_HOST") or not env.get("KUBERNETES_SERVICE_PORT"):
        raise ConfigError(
            "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"
        )
    token_file, ca_file = root / "token", root / "ca.crt"
    for f, what in ((token_file, "ServiceAccount token"), (ca_file, "cluster CA")):
        if not f.is_file():
            raise ConfigError(
                f"in-cluster: the {what} file {f} does not exist; is the ServiceAccount token "
                "mounted (automountServiceAccountToken)?"
            )
    loaded = SimpleNamespace(api_key={}, refresh_api_key_hook=None)
    with _library(f"in-cluster service account {root}"):
        InClusterConfigLoader(str(token_file), str(ca_file), environ=env).load_and_set(loaded)
    ns_file = root / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
    return ClusterConfig(
        server=str(loaded.host),
        ca_file=Path(str(loaded.ssl_ca_cert)),
        token_file=token_file,
        namespace=namespace or "default",
        source=f"in-cluster service account {root}",
    )


def load_config(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ClusterConfig:
    """Resolve the configuration the way client-go does (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    if kubeconfig is not None:
        return config_from_kubeconfig(Path(kubeconfig), context)
    listed: list[Path | str] = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return config_from_kubeconfig(listed, context)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config(env=env)
    return config_from_kubeconfig(Path.home() / ".kube" / "config", context)
