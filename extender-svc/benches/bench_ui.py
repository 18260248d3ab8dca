"""``./just bench-ui``: the web UI's overview at 5,000 nodes x 8 GPUs with 40,000 placed pods,
in a real headless Chromium, from the real extender process (its state listed from
`fake_api.py` through the real list-then-watch path, as ``bench-extender`` does).

Prints ``ui_overview_first_render_ms`` (navigation start to first contentful paint of the first
load: the cluster summary is computed for it), ``ui_overview_render_ms`` (median of later loads,
summary cached or recomputed as ``--ui-refresh-seconds`` allows), the server's part of each
(request to first byte), and as the baseline of the same run ``ui_blank_render_ms``: the same
browser and server rendering the extender's one-word /healthz.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_extender import PLACED, start_extender, stop
from hami_e2e.browser import Browser

LOADS = 9


def timing(browser: Browser) -> tuple[float, float]:
    """(first contentful paint, server time to first byte) of the loaded page, ms."""
    server = browser.script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n.responseStart - n.requestStart;"
    )
    return browser.first_contentful_paint_ms(), float(server)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    procs, port, _ = start_extender("bind", PLACED)
    base = f"http://127.0.0.1:{port}"
    try:
        with Browser(work / "browser") as browser:
            browser.get(f"{base}/healthz")  # the browser warm, nothing of the UI computed
            browser.get(f"{base}/ui")
            first, first_server = timing(browser)
            rows = len(browser.attributes("tr[data-node]", "data-node"))
            assert rows == 50, f"{rows} node rows on the first page"
            browser.screenshot(work / "overview-5000-nodes.png")
            later, servers = [], []
            for i in range(LOADS):
                if i % 3 == 2:
                    time.sleep(2.1)  # past --ui-refresh-seconds: the summary is recomputed
                browser.get(f"{base}/ui?page={i + 2}")
                paint, server = timing(browser)
                later.append(paint)
                servers.append(server)
            blanks = []
            for _ in range(LOADS):
                browser.get(f"{base}/healthz")
                blanks.append(timing(browser)[0])
    finally:
        stop(procs)
    print(
        f"ui_overview_first_render_ms={first:.0f} ms (first contentful paint of /ui at 5,000 "
        f"nodes x 8 GPUs, 40,000 pods; the server's part {first_server:.0f} ms)"
    )
    print(
        f"ui_overview_render_ms={statistics.median(later):.0f} ms (median of {LOADS} later "
        f"pages; server {statistics.median(servers):.0f} ms; a third recompute the summary)"
    )
    print(
        f"ui_blank_render_ms={statistics.median(blanks):.0f} ms (baseline: /healthz in the "
        f"same browser and server)"
    )
    print(f"# screenshot: {work / 'overview-5000-nodes.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
