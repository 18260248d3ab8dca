import base64
import datetime
import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hami_common.k8s.config import (
    ConfigError,
    config_from_kubeconfig,
    in_cluster_config,
    load_config,
)


@pytest.fixture(scope="module")
def pem_pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


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


def test_token_and_token_file(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "u", "user": {"token": "abc"}}])
    assert config_from_kubeconfig(path).bearer_token() == "abc"
    token = tmp_path / "token"
    token.write_text("first\n")
    path = write(tmp_path, [{"name": "u", "user": {"tokenFile": str(token)}}])
    cfg = config_from_kubeconfig(path)
    assert cfg.bearer_token() == "first"
    token.write_text("rotated")
    assert cfg.bearer_token() == "rotated"


def test_insecure_skip_verify(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "u", "user": {}}], **{"insecure-skip-tls-verify": True})
    assert config_from_kubeconfig(path).ssl_context().verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("user", "context", "message"),
    [
        ({"exec": {"command": "aws"}}, None, "exec/auth-provider"),
        ({"username": "a", "password": "b"}, None, "basic auth"),
        ({"client-key-data": "!!!"}, None, "not valid base64"),
        ({}, "other", "no user named 'missing'"),
        ({}, "nope", "no context named 'nope'"),
    ],
)
def test_unusable_configs_say_why(
    tmp_path: Path, user: dict[str, object], context: str | None, message: str
) -> None:
    path = write(tmp_path, [{"name": "u", "user": user}])
    with pytest.raises(ConfigError, match=message):
        config_from_kubeconfig(path, context)


def test_unreadable_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        config_from_kubeconfig(tmp_path / "absent")
    bad = tmp_path / "bad"
    bad.write_text("a: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config_from_kubeconfig(bad)


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


def test_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("hami-system")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = in_cluster_config(tmp_path, env)
    assert cfg.server == "https://[fd00::1]:443"
    assert cfg.ca_file == tmp_path / "ca.crt"
    assert cfg.bearer_token() == "sa-token"
    assert cfg.namespace == "hami-system"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_config(tmp_path, {})


def test_load_config_order(tmp_path: Path) -> None:
    first = write(tmp_path, [{"name": "u", "user": {"token": "from-env"}}])
    env = {"KUBECONFIG": f"{first}:/nonexistent", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert load_config(env=env).bearer_token() == "from-env"
    explicit = tmp_path / "explicit"
    explicit.write_text(first.read_text().replace("from-env", "explicit"))
    assert load_config(explicit, env=env).bearer_token() == "explicit"
    with pytest.raises(ConfigError, match="not in a cluster"):
        load_config(env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
