"""kubectl's output styles: a table (upper-case headers, columns three spaces apart, ``<none>``
for missing values, as ``kubectl get``), or the same rows as JSON or YAML (``-o json|yaml``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h).upper() for h in headers]]
    cells += [["<none>" if v is None or v == "" else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def dump(doc: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=4, sort_keys=False)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip()
