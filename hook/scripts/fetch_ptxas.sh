#!/usr/bin/env bash
# Download the pinned nvcc wheel (scripts/ptxas-requirements.txt) with pip and extract its ptxas
# into $1/ptxas: the CPU check of the real-GPU tier assembles gpu_bench.c's PTX with it.
# Idempotent (a stamp of the requirements file); the wheel is removed once extracted.
set -euo pipefail
dest="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/ptxas-requirements.txt"
stamp="$dest/.stamp"
if [ -f "$stamp" ] && cmp -s "$req" "$stamp" && [ -x "$dest/ptxas" ]; then exit 0; fi
pip="${PIP:-pip}"
wheels="$(mktemp -d)"; trap 'rm -rf "$wheels"' EXIT
mkdir -p "$dest"
"$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version 3.11 --require-hashes -r "$req" -d "$wheels"
python3 - "$wheels" "$dest/ptxas" <<'PY'
import os, sys, zipfile, pathlib
[whl] = sorted(pathlib.Path(sys.argv[1]).glob("*.whl"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    out.write_bytes(z.read("nvidia/cuda_nvcc/bin/ptxas"))
os.chmod(out, 0o755)
PY
"$dest/ptxas" --version >/dev/null
cp "$req" "$stamp"
