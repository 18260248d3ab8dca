"""Generates ``api_pb2.py`` and ``api_pb2.pyi`` from ``api.proto`` with grpcio-tools.

Run by ``./just build`` (``python -m hami_common.deviceplugin.api.generate``). The generated
modules are not committed. Files are replaced only when their content changes, atomically, so
concurrent builds and running processes never see a half-written module.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "api.proto"
OUTPUTS = ("api_pb2.py", "api_pb2.pyi")
_STUB_HEADER = b'# mypy: disable-error-code="type-arg"\n'


def generate(out_dir: Path = HERE) -> list[Path]:
    """Generates the modules into ``out_dir``; returns the files that changed."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # noqa: PLC0415 (build-time tool)

    include = Path(protoc.__file__).resolve().parent / "_proto"
    changed: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{HERE}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            str(PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        for name in OUTPUTS:
            fresh = (Path(tmp) / name).read_bytes()
            if name.endswith(".pyi"):
                # protoc's stubs use bare Mapping/Iterable generics; accept them in mypy strict.
                fresh = _STUB_HEADER + fresh
            target = out_dir / name
            if target.exists() and target.read_bytes() == fresh:
                continue
            staged = out_dir / f".{name}.{os.getpid()}.tmp"
            staged.write_bytes(fresh)
            staged.replace(target)
            changed.append(target)
    return changed


def main() -> int:
    changed = generate()
    what = ", ".join(p.name for p in changed) if changed else "up to date"
    print(f"deviceplugin api: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
