"""ReloadingCertificate: loads a pair, reloads on change, keeps the old one on a bad update."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hami_common.serving import CertificateError, ReloadingCertificate
from hami_e2e.pki import ServingPki


def test_unloadable_pair_names_both_files(pki: Callable[[str], ServingPki], tmp_path: Path) -> None:
    a, b = pki("a").server, pki("b").server
    with pytest.raises(CertificateError, match=r"--cert-file .*tls-a\.crt --key-file .*tls-b\.key"):
        ReloadingCertificate(a.cert, b.key)
    with pytest.raises(CertificateError):
        ReloadingCertificate(tmp_path / "missing.crt", a.key)


def test_check_reloads_only_on_a_change_that_loads(
    pki: Callable[[str], ServingPki], tmp_path: Path
) -> None:
    a, b = pki("a").server, pki("b").server
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copyfile(a.cert, cert)
    shutil.copyfile(a.key, key)
    certificate = ReloadingCertificate(cert, key)
    assert certificate.check() is False  # unchanged

    shutil.copyfile(b.cert, cert)  # key not yet replaced
    assert certificate.check() is False
    cert.unlink()  # files briefly missing
    assert certificate.check() is False

    shutil.copyfile(b.cert, cert)
    shutil.copyfile(b.key, key)
    os.utime(key, ns=(1, 1))  # a change is seen even when mtimes go backwards
    assert certificate.check() is True
    assert certificate.reloads == 1
    assert certificate.check() is False


def test_symlinked_secret_volume_swap_is_seen(
    pki: Callable[[str], ServingPki], tmp_path: Path
) -> None:
    """Kubernetes Secret volumes: tls.crt -> ..data/tls.crt, and ..data is swapped atomically."""
    a, b = pki("a").server, pki("b").server
    for label, pair in (("v1", a), ("v2", b)):
        (tmp_path / label).mkdir()
        shutil.copyfile(pair.cert, tmp_path / label / "tls.crt")
        shutil.copyfile(pair.key, tmp_path / label / "tls.key")
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "tls.crt").symlink_to("..data/tls.crt")
    (tmp_path / "tls.key").symlink_to("..data/tls.key")
    certificate = ReloadingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key")
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert certificate.check() is True
