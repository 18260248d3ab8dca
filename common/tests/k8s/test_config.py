import base64
import json
import ssl
import time
from pathlib import Path

import pytest
import yaml
from hami_common.k8s.config import (
    ConfigError,
    config_from_kubeconfig,
    in_cluster_config,
    load_config,
)

IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def write(tmp_path: Path, users: list[dict[str, object]], **cluster: object) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}}],
        "users": users,
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u", "namespace": "team"}},
            {"name": "other", "context": {"cluster": "c", "user": "missing"}},
        ],
        "current-context": "main",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_inline_client_certificate_and_ca(tmp_path: Path, pem_pair: tuple[bytes, bytes]) -> None:
    cert, key = pem_pair
    path = write(
        tmp_path,
        [
            {
                "name": "u",
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        **{"certificate-authority-data": b64(cert)},
    )
    cfg = config_from_kubeconfig(path)
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.namespace == "team"
    assert (cfg.ca_data, cfg.cert_data, cfg.key_data) == (cert, cert, key)
    ctx = cfg.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "test"),),)


def test_file_paths_are_relative_to_the_kubeconfig(
    tmp_path: Path, pem_pair: tuple[bytes, bytes]
) -> None:
    cert, key = pem_pair
    (tmp_path / "ca.crt").write_bytes(cert)
    (tmp_path / "me.crt").write_bytes(cert)
    (tmp_path / "me.key").write_bytes(key)
    path = write(
        tmp_path,
        [{"name": "u", "user": {"client-certificate": "me.crt", "client-key": "me.key"}}],
        **{"certificate-authority": "ca.crt"},
    )
    cfg = config_from_kubeconfig(path)
    assert cfg.ca_file == tmp_path / "ca.crt"
    assert cfg.cert_file == tmp_path / "me.crt"
    cfg.ssl_context()  # loads without error


def jwt(exp: float) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': int(exp), 'sub': 'me'})}.c2ln"


def test_token_and_token_file(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "u", "user": {"token": "abc"}}])
    assert config_from_kubeconfig(path).token == "abc"
    token = tmp_path / "token"
    token.write_text("first\n")
    # Both set: client-go reads the file (and re-reads it), so the file wins.
    path = write(tmp_path, [{"name": "u", "user": {"token": "abc", "tokenFile": "token"}}])
    cfg = config_from_kubeconfig(path)
    assert (cfg.token, cfg.token_file) == (None, token)


def test_insecure_skip_verify_and_tls_server_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [{"name": "u", "user": {}}],
        **{"insecure-skip-tls-verify": True, "tls-server-name": "api.internal"},
    )
    cfg = config_from_kubeconfig(path)
    assert cfg.ssl_context().verify_mode == ssl.CERT_NONE
    assert cfg.tls_server_name == "api.internal"


def test_exec_user(tmp_path: Path) -> None:
    spec = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "aws",
        "args": ["eks", "get-token"],
        "installHint": "install the AWS CLI",
    }
    cfg = config_from_kubeconfig(write(tmp_path, [{"name": "u", "user": {"exec": spec}}]))
    assert cfg.exec_plugin is not None
    assert cfg.exec_plugin.command == "aws eks get-token"
    assert cfg.exec_plugin.install_hint == "install the AWS CLI"
    assert cfg.exec_plugin.base_path == str(tmp_path)
    assert cfg.exec_plugin.cluster["server"] == "https://127.0.0.1:6443/"
    assert (cfg.token, cfg.token_file) == (None, None)


def test_oidc_auth_provider_token_comes_from_the_library(tmp_path: Path) -> None:
    id_token = jwt(time.time() + 3600)
    provider = {"name": "oidc", "config": {"id-token": id_token, "client-id": "k"}}
    cfg = config_from_kubeconfig(
        write(tmp_path, [{"name": "u", "user": {"auth-provider": provider}}])
    )
    assert cfg.token_source is not None
    assert cfg.token_source(False) == f"Bearer {id_token}"
    assert cfg.token_source(True) == f"Bearer {id_token}"


@pytest.mark.parametrize(
    ("user", "context", "message"),
    [
        ({"auth-provider": {"name": "gcp"}}, None, "'gcp' is not supported.*exec plugin"),
        ({"exec": {"command": "aws"}}, None, "exec needs a command and an apiVersion"),
        ({"username": "a", "password": "b"}, None, "basic auth"),
        ({"client-key-data": "!!!"}, None, "client-key-data is not valid base64"),
        ({}, "other", "names user 'missing', and there is no user of that name"),
        ({}, "nope", r"no context named 'nope' \(there are \['main', 'other'\]\)"),
        ({"tokenFile": "absent"}, None, r"tokenFile \(user 'u'\) is .*absent, .* or use token$"),
    ],
)
def test_unusable_configs_say_why(
    tmp_path: Path, user: dict[str, object], context: str | None, message: str
) -> None:
    path = write(tmp_path, [{"name": "u", "user": user}])
    with pytest.raises(ConfigError, match=message):
        config_from_kubeconfig(path, context)


def test_missing_ca_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "u", "user": {}}], **{"certificate-authority": "ca.pem"})
    with pytest.raises(ConfigError) as info:
        config_from_kubeconfig(path)
    assert str(info.value) == (
        f"kubeconfig {path}: certificate-authority (the cluster's CA) is {tmp_path}/ca.pem, "
        "which does not exist; fix the path or use certificate-authority-data"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "is not valid YAML: while parsing a flow node.*line 1, column 5"),
        ("", "is empty"),
        ("- a\n- b\n", "is not a mapping"),
        ("clusters: {a: 1}\n", "clusters must be a list"),
        ("users: [{user: {}}]\n", r"users\[0\] has no name"),
        ("contexts: [{name: c, context: 3}]\n", "context 'c' is not a mapping"),
        ("clusters: []\ncontexts: []\n", "no context given and no current-context set"),
        ("current-context: c\ncontexts: [{name: c, context: {}}]\n", "names no cluster"),
    ],
)
def test_malformed_kubeconfig_names_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "bad"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config_from_kubeconfig(bad)
    assert str(bad) in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent does not exist"):
        config_from_kubeconfig(tmp_path / "absent")
    with pytest.raises(ConfigError, match=f"cannot read kubeconfig {tmp_path}"):
        config_from_kubeconfig(tmp_path)  # a folder


def test_bad_client_certificate_is_a_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "name": "u",
                "user": {"client-certificate-data": b64(b"x"), "client-key-data": b64(b"y")},
            }
        ],
    )
    with pytest.raises(ConfigError, match="client certificate"):
        config_from_kubeconfig(path).ssl_context()


def test_a_kubeconfig_list_is_merged_as_client_go_merges_it(
    tmp_path: Path, pem_pair: tuple[bytes, bytes]
) -> None:
    cert, _ = pem_pair
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ca.crt").write_bytes(cert)
    first = {
        "current-context": "one",
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "first"}}],
    }
    second = {
        "current-context": "two",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://b", "certificate-authority": "ca.crt"}}
        ],
        "contexts": [
            {"name": "one", "context": {"cluster": "c", "user": "nobody"}},
            {"name": "two", "context": {"cluster": "c", "user": "u", "namespace": "ns2"}},
        ],
        "users": [{"name": "u", "user": {"token": "second"}}],
    }
    (tmp_path / "a" / "config").write_text(yaml.safe_dump(first))
    (tmp_path / "b" / "config").write_text(yaml.safe_dump(second))
    listed = f"{tmp_path}/absent:{tmp_path}/a/config:{tmp_path}/b/config"
    cfg = load_config(env={"KUBECONFIG": listed})
    # current-context and every named entry: the first file that has it wins; a relative path
    # is relative to the file that holds it; a file that does not exist is skipped.
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://b", "first", "default")
    assert cfg.ca_file == tmp_path / "b" / "ca.crt"
    assert load_config(context="two", env={"KUBECONFIG": listed}).namespace == "ns2"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"KUBECONFIG": f"{tmp_path}/x:{tmp_path}/y"})


def test_in_cluster(tmp_path: Path, pem_pair: tuple[bytes, bytes]) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("hami-system")
    with pytest.raises(ConfigError, match=r"cluster CA file .*ca\.crt does not exist"):
        in_cluster_config(tmp_path, IN_CLUSTER_ENV)
    (tmp_path / "ca.crt").write_bytes(pem_pair[0])
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = in_cluster_config(tmp_path, env)
    assert cfg.server == "https://[fd00::1]:443"
    assert cfg.ca_file == tmp_path / "ca.crt"
    assert cfg.token_file == tmp_path / "token"
    assert cfg.namespace == "hami-system"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_config(tmp_path, {})
    (tmp_path / "ca.crt").write_text("")
    with pytest.raises(ConfigError, match="Cert file exists but empty"):
        in_cluster_config(tmp_path, env)


def test_load_config_order(tmp_path: Path) -> None:
    first = write(tmp_path, [{"name": "u", "user": {"token": "from-env"}}])
    env = {"KUBECONFIG": f"{first}:/nonexistent", **IN_CLUSTER_ENV}
    assert load_config(env=env).token == "from-env"
    explicit = tmp_path / "explicit"
    explicit.write_text(first.read_text().replace("from-env", "explicit"))
    assert load_config(explicit, env=env).token == "explicit"
    with pytest.raises(ConfigError, match=r"ServiceAccount token file .* does not exist"):
        load_config(env=IN_CLUSTER_ENV)
