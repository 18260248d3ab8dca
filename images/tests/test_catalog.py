"""The catalog: every image names a workspace package and a module it has, root only with a
reason, extra files that exist."""

from __future__ import annotations

import pytest
from hami_images.catalog import IMAGES, NONROOT, find
from hami_images.inputs import package_name, repo_root, workspace_members


@pytest.mark.parametrize("spec", IMAGES, ids=lambda s: s.name)
def test_entry_is_buildable(spec) -> None:  # type: ignore[no-untyped-def]
    root = repo_root()
    members = workspace_members(root, spec.package)
    own = next(m for m in members if package_name(m) == spec.package)
    assert (own / "src" / spec.module / "__main__.py").is_file(), "no python -m entry"
    assert (spec.user == 0) == bool(spec.root_because)
    assert spec.user in (0, NONROOT)
    for extra in spec.files:
        assert (root / extra.source).is_file(), extra.source
        assert extra.dest.startswith("/")


def test_names_are_unique_and_found() -> None:
    names = [spec.name for spec in IMAGES]
    assert len(set(names)) == len(names)
    assert find("webhook").module == "hami_webhook"
    with pytest.raises(KeyError, match="no image named 'nope'; the images are: webhook"):
        find("nope")
