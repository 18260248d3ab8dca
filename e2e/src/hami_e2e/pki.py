"""Certificates for the local control plane: one CA, serving and client certs, the SA key.

Everything is written as PEM files into one folder. Client identities follow the names the
built-in RBAC roles expect (``system:kube-controller-manager``...), so the components run with
their real, least-privileged permissions; the admin is in ``system:masters``.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class CertificateAuthority:
    """A self-signed CA that issues the cluster's certificates."""

    def __init__(self, folder: Path, name: str = "hami-e2e-ca") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = _key()
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pair = CertPair(folder / f"{name}.crt", folder / f"{name}.key")
        self.pair.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self._key, self.pair.key)

    @property
    def pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> CertPair:
        """Issue a certificate, written to ``<folder>/<name>.crt`` and ``.key``."""
        key = _key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = CertPair(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair


def service_account_keys(folder: Path) -> CertPair:
    """The RSA key pair that signs service-account tokens (``sa.pub`` / ``sa.key``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = CertPair(folder / "sa.pub", folder / "sa.key")
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _write_key(key, pair.key)
    return pair


@dataclass(frozen=True)
class ClusterPki:
    ca: CertificateAuthority
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    kwok: CertPair
    service_account: CertPair
    front_proxy_ca: CertificateAuthority
    front_proxy_client: CertPair


def cluster_pki(folder: Path, service_ip: str = "10.96.0.1") -> ClusterPki:
    """Every certificate the control plane needs, in ``folder``."""
    ca = CertificateAuthority(folder)
    # The aggregation layer's own CA, as kubeadm sets it up; without it every component logs
    # "missing content for CA bundle ... requestheader-client-ca-file" forever.
    front_proxy = CertificateAuthority(folder, name="front-proxy-ca")
    return ClusterPki(
        ca=ca,
        apiserver=ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", service_ip),
            server=True,
        ),
        admin=ca.issue(
            "admin", common_name="hami-e2e-admin", organizations=("system:masters",), client=True
        ),
        controller_manager=ca.issue(
            "kube-controller-manager", common_name="system:kube-controller-manager", client=True
        ),
        scheduler=ca.issue("kube-scheduler", common_name="system:kube-scheduler", client=True),
        # kwok acts for every fake node's kubelet; the admin group keeps it simple.
        kwok=ca.issue(
            "kwok", common_name="kwok-controller", organizations=("system:masters",), client=True
        ),
        service_account=service_account_keys(folder),
        front_proxy_ca=front_proxy,
        front_proxy_client=front_proxy.issue(
            "front-proxy-client", common_name="front-proxy-client", client=True
        ),
    )


@dataclass(frozen=True)
class ServingPki:
    """A CA of its own, a serving certificate it signed for 127.0.0.1 and localhost, and a
    client certificate it signed (what a service with ``--client-ca-file`` and its one caller
    need)."""

    ca: CertificateAuthority
    server: CertPair
    client: CertPair

    @property
    def ca_file(self) -> Path:
        return self.ca.pair.cert


def serving_pki(folder: Path, name: str, client_name: str = "client") -> ServingPki:
    """`ServingPki` in ``folder``: ``ca-<name>``, ``tls-<name>`` and ``client-<name>`` PEM files;
    the client certificate's common name is ``client_name``."""
    ca = CertificateAuthority(folder, name=f"ca-{name}")
    server = ca.issue(f"tls-{name}", common_name="127.0.0.1", dns_names=("localhost",),
                      ips=("127.0.0.1",), server=True)  # fmt: skip
    client = ca.issue(f"client-{name}", common_name=client_name, client=True)
    return ServingPki(ca, server, client)
