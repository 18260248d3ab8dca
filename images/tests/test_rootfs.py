"""The base root filesystem: its key, the mirror it is made from, and what slimming removes."""

from __future__ import annotations

import os
from pathlib import Path

from hami_images.catalog import NONROOT, BaseSpec
from hami_images.rootfs import DEFAULT_MIRROR, base_key, find_mirror, slim


def test_key_follows_release_and_packages_only() -> None:
    base = BaseSpec()
    assert base_key(base) == base_key(BaseSpec(packages=tuple(reversed(base.packages))))
    assert base_key(base) != base_key(BaseSpec(packages=(*base.packages, "tini")))
    assert base_key(base) != base_key(BaseSpec(release="trixie"))


def test_mirror_from_apt_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert find_mirror((tmp_path / "sources.list", d), {}) == "http://mirror.example/debian"
    listed = tmp_path / "sources.list"
    listed.write_text("deb [arch=amd64] https://other.example/debian bookworm main\n")
    assert find_mirror((listed, d), {}) == "https://other.example/debian"
    assert find_mirror((tmp_path / "none",), {}) == DEFAULT_MIRROR
    env = {"HAMI_DEBIAN_MIRROR": "http://local/debian/"}
    assert find_mirror((listed,), env) == "http://local/debian"


def test_slim_removes_caches_and_docs_keeps_copyright(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    files = {
        "var/cache/apt/archives/python3.deb": "x", "var/lib/apt/lists/deb_Packages": "x",
        "usr/share/doc/python3/copyright": "license", "usr/share/doc/python3/changelog.gz": "x",
        "usr/share/man/man1/ls.1.gz": "x", "usr/share/locale/de/LC_MESSAGES/x.mo": "x",
        "var/log/dpkg.log": "x", "dev/null": "", "etc/hostname": "buildhost\n",
        "etc/resolv.conf": "nameserver 10.0.0.1\n", "var/lib/dpkg/status-old": "x",
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "etc/group": "root:x:0:\n",
        "usr/bin/python3": "elf",
    }  # fmt: skip
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    slim(root)
    left = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert left == {"usr/share/doc/python3/copyright", "etc/hostname", "etc/resolv.conf",
                    "etc/passwd", "etc/group", "usr/bin/python3"}  # fmt: skip
    assert (root / "etc/hostname").read_text() == "localhost\n"
    assert (root / "etc/resolv.conf").read_text() == ""
    assert f"nonroot:x:{NONROOT}:{NONROOT}:" in (root / "etc/passwd").read_text()
    assert (root / "etc/group").read_text().endswith(f"nonroot:x:{NONROOT}:\n")
    assert os.stat(root / "home/nonroot").st_uid == NONROOT
    slim(root)  # again: the user is not added twice
    assert (root / "etc/passwd").read_text().count("\nnonroot:") == 1
