"""The Grafana dashboard names only metrics our services export, under HAMi's names."""

from __future__ import annotations

import json
import re

from hami_e2e.paths import repo_root

ROOT = repo_root()
DASHBOARD = ROOT / "dashboards" / "hami-rs.json"
EXPORTERS = [
    ROOT / "extender-svc" / "src" / "hami_extender" / "metrics.py",
    ROOT / "monitor-svc" / "src" / "hami_monitor" / "collector.py",
]


def test_every_metric_of_the_dashboard_is_exported() -> None:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets") or []]
    used = {m for e in exprs for m in re.findall(r"\bhami_[a-z_]+", e)}
    exported = {m for path in EXPORTERS for m in re.findall(r'"(hami_[a-z_]+)"', path.read_text())}
    # a histogram or counter's series carry a suffix the exporter's name does not
    base = {m: re.sub(r"_(bucket|total)$", "", m) for m in used}
    missing = {m for m in used if m not in exported and base[m] not in exported}
    assert not missing, f"not exported: {sorted(missing)}"
    # HAMi's own names, so HAMi's dashboards and ours read the same series
    assert {"hami_gpu_memory_limit_bytes", "hami_vgpu_memory_used_bytes",
            "hami_host_gpu_memory_used_bytes"} <= used  # fmt: skip


def test_panels_are_well_formed() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in doc["templating"]["list"]}
    assert names == {"datasource", "node", "namespace"}
    for p in doc["panels"]:
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
