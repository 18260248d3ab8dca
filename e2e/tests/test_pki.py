import ssl
from pathlib import Path

from cryptography import x509
from hami_e2e.pki import cluster_pki


def test_cluster_certificates_chain_to_the_ca_with_the_right_identities(tmp_path: Path) -> None:
    pki = cluster_pki(tmp_path, service_ip="10.96.0.1")
    ca = x509.load_pem_x509_certificate(pki.ca.pair.cert.read_bytes())
    for pair in (pki.apiserver, pki.admin, pki.controller_manager, pki.scheduler, pki.kwok):
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert oct(pair.key.stat().st_mode & 0o777) == "0o600"
    admin = x509.load_pem_x509_certificate(pki.admin.cert.read_bytes())
    orgs = admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    kcm = x509.load_pem_x509_certificate(pki.controller_manager.cert.read_bytes())
    cn = kcm.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "system:kube-controller-manager"
    server = x509.load_pem_x509_certificate(pki.apiserver.cert.read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.96.0.1",
    }
    # Python's own TLS stack accepts the pairs as a server and a client would load them.
    ctx = ssl.create_default_context(cafile=str(pki.ca.pair.cert))
    ctx.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    assert pki.service_account.cert.read_text().startswith("-----BEGIN PUBLIC KEY-----")
