"""The charts' ``values.schema.json`` files, kept in step with what the services read, and the
chart's copy of the Grafana dashboard.

Two parts of every schema are not written by hand:
- ``global`` is the umbrella's, copied into each subchart's schema (Helm validates a subchart's
  values, globals included, against the subchart's own schema);
- ``$defs.DeviceConfig`` (HAMi's device config, ``global.deviceConfig``) and, where used,
  ``$defs.NodeConfigFile`` (HAMi's per-node ``config.json``) and
  ``$defs.AscendNodeConfigFile`` (HAMi's Ascend ``node-config.yaml``) are generated from the
  pydantic models the services load those files with (`hami_common.settings`,
  `hami_plugin_ascend.config`), so a value the services would refuse at start is refused by
  ``helm install``, naming it.

The scheduler chart ships ``dashboards/hami-rs.json`` (a chart may only read its own files):
its copy is this file's.

``python -m hami_e2e.charts.schemas --write`` rewrites all of these; the chart tests fail while
a file differs from what this writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami_common.settings.device_config import DeviceConfig, NodeConfigFile
from hami_plugin_ascend.config import AscendNodeConfigFile

from hami_e2e.paths import repo_root

Json = dict[str, Any]


def chart_root() -> Path:
    return repo_root() / "charts" / "hami"


def schema_files() -> dict[str, Path]:
    """Chart name -> its values.schema.json; the umbrella first."""
    root = chart_root()
    files = {"hami": root / "values.schema.json"}
    for sub in sorted((root / "charts").iterdir()):
        if (sub / "values.schema.json").is_file():
            files[sub.name] = sub / "values.schema.json"
    return files


def _strip_titles(node: Any) -> Any:
    """pydantic's generated titles repeat the key names; drop them (a property named title,
    whose value is a schema, stays)."""
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items()
                if not (k == "title" and isinstance(v, str))}  # fmt: skip
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def model_defs() -> Json:
    """``$defs`` entries generated from the settings models."""
    defs: Json = {}
    models = (("DeviceConfig", DeviceConfig), ("NodeConfigFile", NodeConfigFile),
              ("AscendNodeConfigFile", AscendNodeConfigFile))  # fmt: skip
    for name, model in models:
        schema = _strip_titles(model.model_json_schema(by_alias=True))
        defs.update(schema.pop("$defs", {}))
        schema.pop("$schema", None)
        defs[name] = schema
    return defs


def _referenced(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref.removeprefix("#/$defs/"))
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)
    return found


def expected(schema: Json, umbrella_global: Json, generated: Json) -> Json:
    """``schema`` with the umbrella's ``global`` and the generated definitions it uses."""
    out: Json = json.loads(json.dumps(schema))
    out["properties"]["global"] = umbrella_global
    defs = {k: v for k, v in out.get("$defs", {}).items() if k not in generated}
    wanted: set[str] = set()
    pending = _referenced(out, set())
    while pending:
        name = pending.pop()
        if name in generated and name not in wanted:
            wanted.add(name)
            pending |= _referenced(generated[name], set())
    defs.update({name: generated[name] for name in sorted(wanted)})
    out["$defs"] = defs
    return out


DASHBOARD = Path("dashboards") / "hami-rs.json"


def dashboard_copies() -> dict[Path, Path]:
    """The dashboard's copy in a chart -> the file it copies."""
    chart = chart_root() / "charts" / "hami-scheduler" / DASHBOARD
    return {chart: repo_root() / DASHBOARD}


def sync(write: bool) -> list[str]:
    """The generated files that differ from what they should be (rewritten when ``write``)."""
    stale = []
    for copy, source in dashboard_copies().items():
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            stale.append(f"{copy.relative_to(repo_root())} (a copy of {DASHBOARD})")
            if write:
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(source.read_bytes())
    return stale + _sync_schemas(write)


def _sync_schemas(write: bool) -> list[str]:
    files = schema_files()
    umbrella = json.loads(files["hami"].read_text())
    generated = model_defs()
    stale = []
    for name, path in files.items():
        current = json.loads(path.read_text())
        want = expected(current, umbrella["properties"]["global"], generated)
        if want != current:
            stale.append(f"{path.relative_to(repo_root())} ({name})")
            if write:
                path.write_text(json.dumps(want, indent=2) + "\n")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stale files")
    args = parser.parse_args(argv)
    stale = sync(args.write)
    for line in stale:
        print(("rewrote " if args.write else "stale: ") + line)
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
