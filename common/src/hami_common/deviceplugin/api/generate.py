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
_STUB_HEADER = b'# mypy: disable-error-code="type-arg"\n'


def generate(out_dir: Path = HERE) -> list[Path]:
    """Generates the modules into ``out_dir``; returns the files that changed."""
    return compile_protos(HERE, [PROTO], out_dir)


def compile_protos(src_dir: Path, protos: list[Path], out_dir: Path) -> list[Path]:
    """Compiles ``protos`` (in ``src_dir``) to ``<name>_pb2.py`` and ``.pyi`` in ``out_dir``;
    returns the files that changed. Shared with the DRA API (`hami_common.dra.api.generate`)."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # noqa: PLC0415 (build-time tool)

    include = Path(protoc.__file__).resolve().parent / "_proto"
    changed: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{src_dir}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *(str(p) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(map(str, protos))}")
        outputs = [f"{p.stem}_pb2{ext}" for p in protos for ext in (".py", ".pyi")]
        for name in outputs:
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
