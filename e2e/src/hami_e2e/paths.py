"""Where the harness finds its inputs (the Go tools modules) and its cache."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package is installed from (the workspace installs it editable)."""
    return Path(__file__).resolve().parents[3]


def tools_dir() -> Path:
    """e2e/tools: the pinned versions and the Go modules the binaries are built from."""
    override = os.environ.get("HAMI_E2E_TOOLS")
    return Path(override) if override else repo_root() / "e2e" / "tools"


def cache_root() -> Path:
    """The same folder as the Justfile's `cache`: $HAMI_CACHE, else ~/.cache/hami."""
    override = os.environ.get("HAMI_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "hami"
