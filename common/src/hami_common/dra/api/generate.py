"""Generates ``dra_pb2`` and ``registration_pb2`` (``.py`` and ``.pyi``) from the upstream protos
in this folder, with the device-plugin API's generator (same atomic, content-compared writes).

Run by ``./just build`` (``python -m hami_common.dra.api.generate``); the generated modules are
not committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hami_common.deviceplugin.api.generate import compile_protos

HERE = Path(__file__).resolve().parent
PROTOS = [HERE / "dra.proto", HERE / "registration.proto"]


def generate(out_dir: Path = HERE) -> list[Path]:
    return compile_protos(HERE, PROTOS, out_dir)


def main() -> int:
    changed = generate()
    what = ", ".join(p.name for p in changed) if changed else "up to date"
    print(f"dra api: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
