#!/usr/bin/env bash
# Download the pinned header wheels (scripts/headers-requirements.txt) with pip into the cache and
# extract cuda.h, cudaTypedefs.h and nvml.h into $1/cuda12 and $1/cuda13. Idempotent.
set -euo pipefail
dest="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/headers-requirements.txt"
stamp="$dest/.stamp"
if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then exit 0; fi
pip="${PIP:-pip}"
mkdir -p "$dest/wheels" "$dest/cuda12" "$dest/cuda13"
"$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version 3.11 --require-hashes -r "$req" -d "$dest/wheels"
python3 - "$dest" <<'PY'
import sys, zipfile, pathlib
dest = pathlib.Path(sys.argv[1])
want = {"cuda.h", "cudaTypedefs.h", "nvml.h"}
for whl in sorted((dest / "wheels").glob("*.whl")):
    out = dest / ("cuda13" if whl.name.startswith("nvidia_cuda_runtime-13") else "cuda12")
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            base = n.rsplit("/", 1)[-1]
            if base in want and "/include/" in n:
                (out / base).write_bytes(z.read(n))
# nvml.h is version-independent enough: the CUDA 13 check uses the same one.
(dest / "cuda13" / "nvml.h").write_bytes((dest / "cuda12" / "nvml.h").read_bytes())
PY
for f in cuda12/cuda.h cuda12/cudaTypedefs.h cuda12/nvml.h cuda13/cuda.h; do
  test -s "$dest/$f" || { echo "fetch_headers: $f missing" >&2; exit 1; }
done
cp "$req" "$stamp"
