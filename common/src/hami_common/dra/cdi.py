"""CDI (Container Device Interface) specs, one per prepared claim.

The spec is transient (named after the claim UID, as upstream's drivers do): the container
runtime reads it from the CDI folder when a container names one of its devices; the driver
removes it on unprepare. Files are written under a temporary name and renamed, so a runtime
never reads half a spec.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CDI_VERSION = "0.6.0"
CDI_DIR = Path("/var/run/cdi")


@dataclass(frozen=True)
class CdiMount:
    container_path: str
    host_path: str
    read_only: bool


@dataclass(frozen=True)
class CdiEdits:
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[CdiMount] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.env:
            out["env"] = [f"{k}={v}" for k, v in self.env.items()]
        if self.mounts:
            out["mounts"] = [
                {
                    "hostPath": m.host_path,
                    "containerPath": m.container_path,
                    "options": ["ro" if m.read_only else "rw", "nosuid", "nodev", "bind"],
                }
                for m in self.mounts
            ]
        return out


def qualified_name(kind: str, device: str) -> str:
    """The CDI device ID a container names: ``vendor/class=device``."""
    return f"{kind}={device}"


def spec_path(cdi_dir: Path, kind: str, claim_uid: str) -> Path:
    return cdi_dir / f"{kind.replace('/', '-')}_{claim_uid}.json"


def write_spec(
    cdi_dir: Path,
    kind: str,
    claim_uid: str,
    devices: Mapping[str, CdiEdits],
    common: CdiEdits,
) -> Path:
    """Writes the claim's spec: ``devices`` by CDI device name (each must carry an edit, as CDI
    requires), ``common`` applied with any of them."""
    if not devices or any(not e.to_json() for e in devices.values()):
        raise ValueError(f"claim {claim_uid}: every CDI device needs at least one edit")
    spec = {
        "cdiVersion": CDI_VERSION,
        "kind": kind,
        "devices": [{"name": n, "containerEdits": e.to_json()} for n, e in devices.items()],
        "containerEdits": common.to_json(),
    }
    cdi_dir.mkdir(parents=True, exist_ok=True)
    path = spec_path(cdi_dir, kind, claim_uid)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staged.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    staged.replace(path)
    return path


def remove_spec(cdi_dir: Path, kind: str, claim_uid: str) -> None:
    spec_path(cdi_dir, kind, claim_uid).unlink(missing_ok=True)
