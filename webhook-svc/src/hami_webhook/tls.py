"""A server TLS context whose certificate is reloaded when its files change.

`ReloadingCertificate` owns one `ssl.SSLContext`. `check()` compares the files' (mtime, size,
inode), following symlinks, so a Kubernetes Secret volume's atomic ``..data`` swap counts as a
change; on a change it validates the pair on a scratch context, then calls ``load_cert_chain``
on the *same* context, which new handshakes use
at once while open connections keep theirs. A pair that does not load (half-written files, a key
that does not match) is logged and retried on the next check; the old certificate stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], tuple[int, int, int]]


class CertificateError(ValueError):
    """The certificate or key cannot be loaded; the message names the files."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ReloadingCertificate:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
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

    def _current_stamp(self) -> Stamp:
        return (_stamp(self.cert_file), _stamp(self.key_file))

    def check(self) -> bool:
        """Reload when the files changed; True when a new certificate is now in use."""
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
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
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
