"""Image keys: each image is keyed by its own inputs only, so a change to one service rebuilds
that image alone; the hook's sources key the plugin image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hami_images.build import Builder, Built, image_source
from hami_images.catalog import find
from hami_images.inputs import repo_root


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    cache = tmp_path_factory.mktemp("cache")
    return Builder(repo_root(), cache, {"HAMI_IMAGE_SOURCE": "https://example/src"}, print)


def test_inputs_are_the_images_own(builder: Builder) -> None:
    root = repo_root()

    def rel(name: str) -> set[str]:
        return {str(p.relative_to(root)) for p in builder.inputs(find(name))[0]}

    webhook, plugin = rel("webhook"), rel("plugin-nvidia")
    assert "webhook-svc/src/hami_webhook/admission.py" in webhook
    assert not [p for p in webhook if p.startswith(("extender-svc/", "plugin-nvidia/", "hook/"))]
    assert "hook/src/memory.c" in plugin
    assert "images/install-hook.sh" in plugin
    assert "images/Containerfile" in webhook & plugin
    assert "rustcore/sched/src/fit.rs" in webhook


def test_key_is_stable_and_differs_per_image(builder: Builder) -> None:
    keys = {name: builder.key(find(name)) for name in ("webhook", "extender")}
    assert builder.key(find("webhook")) == keys["webhook"]
    assert keys["webhook"] != keys["extender"]


def test_a_cold_cache_has_no_current_build(builder: Builder) -> None:
    assert builder.current(find("webhook")) is None


def test_source_label(tmp_path: Path) -> None:
    assert image_source(repo_root(), {"HAMI_IMAGE_SOURCE": "https://x/y"}) == "https://x/y"
    os.system(f"git init -q {tmp_path}")  # noqa: S605 - a throwaway repository
    assert "set HAMI_IMAGE_SOURCE" in image_source(tmp_path, {})


def test_size_line_format() -> None:
    built = Built(name="plugin-nvidia", key="k", ref="r", archive="a", reference="d", version="1",
                  size_bytes=228_400_000, archive_bytes=1, seconds=1)  # fmt: skip
    assert built.size_line == "image_plugin_nvidia_mb=228.4 MB"
