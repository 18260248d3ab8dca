"""The claims a driver has prepared on this node, kept in one JSON file.

kubelet may call prepare again for a prepared claim (after its own restart) and unprepare after
ours, so what was prepared must outlive the process. The file is rewritten whole, atomically, at
every change; a file that cannot be parsed is an error that names it (never silently emptied:
that would forget what devices are in use).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

Json = dict[str, Any]


class CheckpointError(RuntimeError):
    pass


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.claims: dict[str, Json] = self._load()

    def _load(self) -> dict[str, Json]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: not JSON ({exc}); move it away only once no claim "
                "on this node is prepared"
            ) from None
        claims = data.get("claims") if isinstance(data, dict) else None
        if not isinstance(claims, dict):
            raise CheckpointError(f"checkpoint {self.path}: no 'claims' object")
        return claims

    def get(self, uid: str) -> Json | None:
        return self.claims.get(uid)

    def put(self, uid: str, entry: Json) -> None:
        self.claims[uid] = entry
        self._save()

    def remove(self, uid: str) -> bool:
        if self.claims.pop(uid, None) is None:
            return False
        self._save()
        return True

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps({"claims": self.claims}, sort_keys=True), encoding="utf-8")
        staged.replace(self.path)
