"""Golden renders of the umbrella chart for the value sets users pick (``UPDATE_GOLDEN=1``
rewrites them; review the diff). What the chart generates anew on each render (certificates,
their CA bundle and checksums) is masked, and so is the dashboard (test_vendors.py compares it
with dashboards/hami-rs.json)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hami_e2e.charts.helm import Helm

Json = dict[str, Any]
GOLDEN = Path(__file__).parent / "golden"
GENERATED = "<generated>"
DASHBOARD = "<dashboards/hami-rs.json>"
VALUE_SETS: dict[str, Json] = {
    "defaults": {},
    "scheduler-only": {"nvidia": {"enabled": False}, "monitor": {"enabled": False}},
    "vendors": {"ascend": {"enabled": True}, "cambricon": {"enabled": True},
                "scheduler": {"enableAscend": True}},
    "ha-scheduler": {"scheduler": {"replicas": 2}},
    "cert-manager": {"scheduler": {"certManager": {"enabled": True}}},
    "custom-names": {"global": {"resourceName": "example.com/vgpu",
                                "resourceMem": "example.com/vgpu-memory",
                                "schedulerName": "gpu-scheduler"}},
    "volcano": {"global": {"scheduler": "volcano"}, "scheduler": {"enabled": False}},
    "dra": {"global": {"dra": {"enabled": True}}},
}  # fmt: skip


def mask(doc: Json) -> Json:
    if doc["kind"] == "Secret":
        doc["data"] = dict.fromkeys(doc["data"], GENERATED)
    if doc["kind"] == "ConfigMap" and "hami-rs.json" in doc.get("data", {}):
        doc["data"]["hami-rs.json"] = DASHBOARD
    if doc["kind"] == "MutatingWebhookConfiguration":
        for hook in doc["webhooks"]:
            if "caBundle" in hook["clientConfig"]:
                hook["clientConfig"]["caBundle"] = GENERATED
    template = doc.get("spec", {}).get("template", {}).get("metadata", {})
    if "checksum/tls" in template.get("annotations", {}):
        template["annotations"]["checksum/tls"] = GENERATED
    return doc


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_chart_matches_golden(helm: Helm, charts: dict[str, Path], name: str) -> None:
    docs = helm.template(charts["hami"], VALUE_SETS[name], extra=["--kube-version", "v1.36.5"])
    got = yaml.safe_dump_all([mask(d) for d in docs], sort_keys=False, width=100)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(got)
    assert path.exists(), f"{path} is missing: rerun with UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{name} changed; review and rerun with UPDATE_GOLDEN=1"
