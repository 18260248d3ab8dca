"""What keys an image: the source files of its packages, their locked requirements."""

from __future__ import annotations

import os
from pathlib import Path

from hami_images.inputs import (
    digest,
    locked_requirements,
    package_version,
    repo_root,
    source_files,
    workspace_members,
)


def test_members_and_requirements_come_from_the_lock() -> None:
    root = repo_root()
    members = {p.name for p in workspace_members(root, "hami-webhook")}
    assert members == {"common", "rustcore", "webhook-svc"}
    text = locked_requirements(root, "hami-webhook")
    assert "--hash=sha256:" in text
    assert "starlette==" in text
    assert "-e ./" not in text
    assert package_version(root, "hami-webhook") == "0.1.0"


def test_source_files_leave_tests_and_docs_out() -> None:
    root = repo_root()
    files = source_files(root, root / "webhook-svc")
    rel = {str(p.relative_to(root)) for p in files}
    assert "webhook-svc/src/hami_webhook/admission.py" in rel
    assert "webhook-svc/pyproject.toml" in rel
    assert not [r for r in rel if "/tests/" in r or r.endswith(".md")]


def test_digest_follows_content_mode_and_texts(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    first = digest(tmp_path, [a], "reqs")
    assert digest(tmp_path, [a], "reqs") == first
    assert digest(tmp_path, [a], "other reqs") != first
    a.write_text("x = 2\n")
    assert digest(tmp_path, [a], "reqs") != first
    a.write_text("x = 1\n")
    os.chmod(a, 0o700)
    assert digest(tmp_path, [a], "reqs") != first
