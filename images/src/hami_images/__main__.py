"""``python -m hami_images [--only NAME ...]`` (``./just images``): builds every image of the
catalog that is not cached for its current inputs, writes each as an OCI archive under
``$HAMI_CACHE/images/oci/``, and prints one line per image on stdout:
``image_<name>_mb=<size> MB`` (the unpacked size, as a node stores it). Progress, the archives
and their compressed sizes go to stderr. ``--list`` prints the image names.

Exit status 2 for an unknown image name, 1 when a build step fails (with the step's output).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hami_images.build import Builder, say_stderr
from hami_images.buildah import ImageError
from hami_images.catalog import IMAGES, find
from hami_images.inputs import repo_root


def cache_root(environ: dict[str, str]) -> Path:
    """The Justfile's ``cache``: $HAMI_CACHE, else ~/.cache/hami."""
    return Path(environ.get("HAMI_CACHE") or Path.home() / ".cache" / "hami")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hami_images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these images")
    parser.add_argument("--list", action="store_true", help="print the image names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(spec.name for spec in IMAGES))
        return 0
    try:
        specs = [find(name) for name in args.only] if args.only else list(IMAGES)
    except KeyError as exc:
        print(f"hami_images: {exc.args[0]}", file=sys.stderr)
        return 2
    environ = dict(os.environ)
    builder = Builder(repo_root(), cache_root(environ), environ, say_stderr)
    start = time.monotonic()
    try:
        for spec in specs:
            built = builder.ensure(spec)
            state = "cached" if built.cached else f"built in {built.seconds:.0f}s"
            say_stderr(f"{spec.name}: {built.reference} ({state}), "
                       f"{built.archive_bytes / 1e6:.1f} MB archive {built.archive}")  # fmt: skip
            print(built.size_line, flush=True)
    except ImageError as exc:
        print(f"hami_images: {exc}", file=sys.stderr)
        return 1
    say_stderr(f"images: {len(specs)} in {time.monotonic() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
