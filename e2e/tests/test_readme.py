"""The README works as written: each component command of "Running the components" starts and
answers ``--help`` from a fresh setup, each ``./just`` recipe the READMEs name exists, and the
webhook registration the webhook's README gives is accepted by the real API server."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hami_common.k8s import MUTATING_WEBHOOK_CONFIGURATIONS
from hami_e2e.paths import repo_root
from hami_e2e.pki import CertificateAuthority

ROOT = repo_root()
READMES = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md"))]


def _components_table() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Running the components") :].split("\n## ", 1)[0]


def test_every_component_command_runs_as_written() -> None:
    commands = re.findall(r"`(\.venv/bin/python -m [a-z0-9_.]+)[^`]*`", _components_table())
    assert len(commands) >= 4, commands  # webhook, extender, plugin, kubelet stand-in
    for command in commands:
        done = subprocess.run([*command.split(), "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, f"{command} --help: {done.stderr[-2000:]}"
        assert "usage:" in done.stdout, command


def test_every_just_recipe_the_readmes_name_exists() -> None:
    summary = subprocess.run([str(ROOT / "just"), "--summary"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=True).stdout.split()  # fmt: skip
    named = {m for path in READMES for m in re.findall(r"\./just ([a-z][a-z0-9-]*)",
                                                       path.read_text())}  # fmt: skip
    assert named, "no ./just recipe named in the READMEs"
    assert sorted(named - set(summary)) == []


def _registration() -> Any:
    text = (ROOT / "webhook-svc" / "README.md").read_text()
    section = text[text.index("### Registration") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)


@pytest.mark.e2e
def test_the_webhook_registration_in_the_readme_is_accepted(kube_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = CertificateAuthority(tmp_path / "pki", name="hami-webhook-ca")
    body = _registration()
    [webhook] = body["webhooks"]
    assert webhook["clientConfig"]["caBundle"] == "CA_BUNDLE"
    webhook["clientConfig"]["caBundle"] = base64.b64encode(ca.pem).decode()
    ops = {(r["operations"][0], r["resources"][0]) for r in webhook["rules"]}
    assert ops == {("CREATE", "pods"), ("UPDATE", "pods/ephemeralcontainers")}

    async def create() -> Any:
        async with kube_cluster.client() as kube:
            path = MUTATING_WEBHOOK_CONFIGURATIONS.path()
            return await kube.request("POST", path, params={"dryRun": "All"}, body=body)

    created = asyncio.run(create())  # validated and admitted by the API server, not stored
    assert created["metadata"]["name"] == "hami-webhook"
