"""The images under test (``./just images`` builds them): the builder on this checkout's cache,
and one working container per image for a whole module (vfs copies every layer when a
container is made: seconds each)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from hami_images.__main__ import cache_root
from hami_images.build import Builder, Built
from hami_images.buildah import Container
from hami_images.catalog import IMAGES, ImageSpec, find
from hami_images.inputs import repo_root


@pytest.fixture(scope="module")
def builder() -> Builder:
    return Builder(repo_root(), cache_root(dict(os.environ)), dict(os.environ), lambda _: None)


def current(builder: Builder, spec: ImageSpec) -> Built:
    built = builder.current(spec)
    assert built is not None, f"image {spec.name} is not built for these sources: ./just images"
    return built


@pytest.fixture(scope="module", params=[spec.name for spec in IMAGES])
def image(request: pytest.FixtureRequest, builder: Builder) -> tuple[ImageSpec, Built]:
    spec = find(request.param)
    return spec, current(builder, spec)


class Containers:
    """Working containers by image name, each made on first use and kept until the end."""

    def __init__(self, builder: Builder, stack: contextlib.ExitStack) -> None:
        self.builder, self.stack = builder, stack
        self.made: dict[str, Container] = {}

    def __getitem__(self, name: str) -> Container:
        if name not in self.made:
            ref = self.builder.in_storage(current(self.builder, find(name)))
            self.made[name] = self.stack.enter_context(self.builder.cache.buildah.container(ref))
        return self.made[name]


@pytest.fixture(scope="module")
def containers(builder: Builder) -> Iterator[Containers]:
    """One working container per image for the whole module."""
    with contextlib.ExitStack() as stack:
        yield Containers(builder, stack)


@pytest.fixture
def container(containers: Containers, image: tuple[ImageSpec, Built]) -> Container:
    return containers[image[0].name]
