"""A real headless Chromium (Debian's ``chromium``), driven through ``chromedriver``'s W3C
WebDriver HTTP API: for the web UI's end-to-end test and ``./just bench-ui``.

    with Browser(workdir) as browser:
        browser.get("https://127.0.0.1:8443/ui")
        rows = browser.texts("tr[data-node]")
        browser.screenshot(workdir / "overview.png")

Chromium runs with the flags a machine without network needs (no background networking, no
component updates, a fresh profile in the work folder); the stack's TLS certificates come from
its own CA, so certificate errors are ignored for these loopback pages only.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from hami_e2e.components import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--ignore-certificate-errors", "--window-size=1400,1000",
)  # fmt: skip


def _ref(element: dict[str, str]) -> str:
    """An element reference's id (W3C's key is ``element-6066-11e4-a23c-4a75f62b9e66``; older
    drivers answered ``ELEMENT``): the one value of the object."""
    return next(iter(element.values()))


class BrowserError(RuntimeError):
    """chromedriver or Chromium is missing, did not start, or refused a command."""


def find_tools() -> tuple[str, str]:
    """chromedriver and Chromium, or a `BrowserError` that says how to get them."""
    driver = shutil.which("chromedriver")
    chromium = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if driver is None or chromium is None:
        raise BrowserError(
            "Debian's chromium and chromium-driver are needed: run e2e/scripts/debian_tools.sh "
            "(as root; ./just test-e2e does), or apt-get install chromium chromium-driver"
        )
    return driver, chromium


class Browser:
    def __init__(self, workdir: Path, *, timeout: float = 60.0) -> None:
        driver, chromium = find_tools()
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = workdir / "chromedriver.log"
        self._driver = subprocess.Popen(
            [driver, f"--port={self.port}", f"--log-path={self.log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=timeout)
        try:
            self._wait_driver()
            caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": [
                        *FLAGS, f"--user-data-dir={workdir / 'profile'}"]}}}}  # fmt: skip
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _wait_driver(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self._driver.poll() is not None:
                raise BrowserError(f"chromedriver exited ({self._driver.returncode}): {self.log}")
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise BrowserError(f"chromedriver not ready in 30 s: {self.log}")
            time.sleep(0.1)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = self.http.request(method, path, json=body)
        doc = reply.json()
        value = doc.get("value")
        if reply.status_code != 200:
            error = value.get("message", value) if isinstance(value, dict) else value
            raise BrowserError(f"WebDriver {method} {path}: {reply.status_code}: {error}")
        return value

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        """Load the page and wait until it has loaded."""
        self._session("POST", "/url", {"url": url})

    def script(self, source: str, *args: Any) -> Any:
        """Run JavaScript in the page (``return ...`` gives the value)."""
        return self._session("POST", "/execute/sync", {"script": source, "args": list(args)})

    def texts(self, css: str) -> list[str]:
        """The visible text of every element the CSS selector finds."""
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return [self._session("GET", f"/element/{_ref(e)}/text") for e in found]

    def attributes(self, css: str, name: str) -> list[str]:
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return [self._session("GET", f"/element/{_ref(e)}/attribute/{name}") for e in found]

    def click(self, css: str) -> None:
        element = self._session("POST", "/element", {"using": "css selector", "value": css})
        self._session("POST", f"/element/{_ref(element)}/click", {})

    @property
    def url(self) -> str:
        return str(self._session("GET", "/url"))

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return path

    def first_contentful_paint_ms(self) -> float:
        """The loaded page's first contentful paint, from navigation start."""
        deadline = time.monotonic() + 10
        while True:  # the paint entry is recorded after the load event, at the next frame
            value = self.script(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return p ? p.startTime : null;"
            )
            if value is not None:
                return float(value)
            if time.monotonic() > deadline:
                raise BrowserError("the page reported no first contentful paint in 10 s")
            time.sleep(0.02)

    def close(self) -> None:
        if getattr(self, "session", None):
            with contextlib.suppress(BrowserError, httpx.HTTPError):
                self._session("DELETE", "")
            self.session = ""
        self.http.close()
        if self._driver.poll() is None:
            self._driver.terminate()
            try:
                self._driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
