"""A server TLS context whose certificate is reloaded when its files change.

`ReloadingCertificate` owns one `ssl.SSLContext`. `check()` compares the files' (mtime, size,
inode), following symlinks, so a Kubernetes Secret volume's atomic ``..data`` swap counts as a
change; on a change it validates the pair on a scratch context, then calls ``load_cert_chain``
on the *same* context, which new handshakes use at once while open connections keep theirs. A
pair that does not load (half-written files, a key that does not match) is logged and retried on
the next check; the old certificate stays in use.

With a client CA (``client_ca_file``) a client that presents a certificate must present one that
CA signed, or the handshake fails; one that presents none still connects (``CERT_OPTIONAL``, as
kube-apiserver's "verify if given"), and the app decides per route (see
`hami_common.serving.protocol`: the verified certificate is in the ASGI scope). A changed CA
file is added to the trusted set at the next check; a CA removed from the file stays trusted
until the process restarts (an `ssl.SSLContext` cannot forget a CA).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


class CertificateError(ValueError):
    """The certificate, key or client CA cannot be loaded; the message names the files."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ReloadingCertificate:
    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.reloads = 0
        try:
            self._stamp: Stamp = self._current_stamp()
            self.context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(
                f"cannot load the TLS pair --cert-file {cert_file} --key-file {key_file}: {exc}"
            ) from None
        if client_ca_file is not None:
            try:
                self.context.load_verify_locations(cafile=client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise CertificateError(
                    f"cannot load the client CA --client-ca-file {client_ca_file}: {exc}"
                ) from None
            self.context.verify_mode = ssl.CERT_OPTIONAL

    def _current_stamp(self) -> Stamp:
        files = [self.cert_file, self.key_file]
        if self.client_ca_file is not None:
            files.append(self.client_ca_file)
        return tuple(_stamp(f) for f in files)

    def check(self) -> bool:
        """Reload when the files changed; True when a new certificate (or CA) is now in use."""
        try:
            stamp = self._current_stamp()
        except OSError as exc:
            log.warning("TLS files not readable (%s); keeping the current certificate", exc)
            return False
        if stamp == self._stamp:
            return False
        try:
            # Validate on a scratch context first: a failed load_cert_chain can leave a context
            # with the new certificate and no key, which would break every handshake.
            scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            scratch.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                scratch.load_verify_locations(cafile=self.client_ca_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file is not None:
                self.context.load_verify_locations(cafile=self.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files changed but do not load (%s); retrying", exc)
            return False
        self._stamp = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self, interval: float) -> None:
        """Check every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.check()
