"""A small HTTPS admission webhook on loopback, for tests of the API server's webhook path.

The real kube-apiserver cannot reach Services here (no kube-proxy, no pod network), so a
webhook is registered with ``clientConfig.url: https://127.0.0.1:PORT/...`` and the CA bundle
of a certificate with SAN 127.0.0.1. `AdmissionWebhookServer` serves that in a thread, calls a
Python function per AdmissionReview and records every review it received.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hami_e2e.pki import CertificateAuthority

# Given the AdmissionReview request, return (allowed, JSON patch operations or None).
Mutator = Callable[[dict[str, Any]], tuple[bool, list[dict[str, Any]] | None]]


class AdmissionWebhookServer:
    def __init__(self, folder: Path, mutate: Mutator) -> None:
        self.ca = CertificateAuthority(folder, name="webhook-ca")
        pair = self.ca.issue("webhook", common_name="127.0.0.1", ips=("127.0.0.1",), server=True)
        self.mutate = mutate
        self.reviews: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(length))
                request = review["request"]
                server.reviews.append(review)
                allowed, patch = server.mutate(request)
                response: dict[str, Any] = {"uid": request["uid"], "allowed": allowed}
                if not allowed:
                    response["status"] = {"code": 403, "message": "refused by the e2e webhook"}
                if patch is not None:
                    response["patchType"] = "JSONPatch"
                    response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": response,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; the recorded reviews are the log

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def ca_bundle(self) -> str:
        """The base64 PEM for ``clientConfig.caBundle``."""
        return base64.b64encode(self.ca.pem).decode()

    def __enter__(self) -> AdmissionWebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
