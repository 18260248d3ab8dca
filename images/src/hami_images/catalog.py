"""What is built: the base root filesystem and one image per service.

Adding an image (a vendor's device plugin, the node monitor) is one `ImageSpec` in `IMAGES`:
the workspace package it runs, its module, its user, and any files beyond the package's wheels.
Every image shares `images/Containerfile` and the base.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Bumped when the way images are built changes without any input changing (cache keys).
BUILD_REV = "1"
# The repository every image is named under (``hami-rs/<name>:<version>``); the chart's defaults.
REPOSITORY_PREFIX = "hami-rs"
# Non-root user of the images that need no host access (distroless' "nonroot").
NONROOT = 65532


@dataclass(frozen=True)
class BaseSpec:
    """The root filesystem every image starts from: a Debian release, its minbase variant and
    these packages (and their dependencies), with package caches and docs removed."""

    release: str = "bookworm"
    packages: tuple[str, ...] = ("python3", "ca-certificates")
    # The interpreter the packages above provide; the wheels are installed for it.
    python: str = "3.11"

    @property
    def site_packages(self) -> str:
        """Where Debian's Python finds packages installed outside dpkg."""
        return f"/usr/local/lib/python{self.python}/dist-packages"


@dataclass(frozen=True)
class ExtraFile:
    """A file of the checkout (or of a build the image triggers) copied into the image."""

    source: str  # relative to the repository root
    dest: str  # absolute path in the image
    mode: int = 0o644


@dataclass(frozen=True)
class ImageSpec:
    name: str  # the image is REPOSITORY_PREFIX/<name>; the size line is image_<name>_mb
    package: str  # the workspace package (its wheel and its locked dependencies)
    module: str  # what the entrypoint runs: python3 -m <module>
    description: str
    user: int = NONROOT
    # Why the image runs as root, when it does (the chart's securityContext says the same).
    root_because: str = ""
    files: tuple[ExtraFile, ...] = field(default_factory=tuple)
    # True when the image carries the hook library: the build compiles it (hook/build.sh)
    # and its sources key the image.
    hook: bool = False

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}/{self.name}"


# Parts of third-party packages no image imports, removed from the site-packages (the image's
# test imports the kubeconfig loaders to prove it): path under site-packages, and why.
PRUNED: tuple[tuple[str, str], ...] = (
    (
        "kubernetes/aio",
        "the official client's asyncio API (42 MB); hami_common.k8s uses only "
        "its kubeconfig and in-cluster loaders (kubernetes.config), and httpx for requests",
    ),
)

# Where the plugin image keeps the hook library; the install step copies it to the node.
HOOK_DIR = "/k8s-vgpu/lib/nvidia"

IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec(
        name="webhook",
        package="hami-webhook",
        module="hami_webhook",
        description="hami-rs mutating admission webhook for accelerator-sharing pods",
    ),
    ImageSpec(
        name="extender",
        package="hami-extender",
        module="hami_extender",
        description="hami-rs kube-scheduler extender (filter, bind, explanation API)",
    ),
    ImageSpec(
        name="plugin-nvidia",
        package="hami-plugin-nvidia",
        module="hami_plugin_nvidia",
        description="hami-rs NVIDIA device plugin, with the libvgpu.so hook and its install step",
        user=0,
        root_because="writes kubelet's device-plugin socket folder and the hook folder on the "
        "host, both owned by root",
        files=(ExtraFile("images/install-hook.sh", "/usr/local/bin/hami-install-hook", 0o755),),
        hook=True,
    ),
    ImageSpec(
        name="plugin-ascend",
        package="hami-plugin-ascend",
        module="hami_plugin_ascend",
        description="hami-rs Huawei Ascend device plugin (DCMI from the node's Ascend driver)",
        user=0,
        root_because="writes kubelet's device-plugin socket folder and, in hami-core mode, the "
        "per-container folders under its --hook-path on the host, both owned by root",
    ),
    ImageSpec(
        name="plugin-cambricon",
        package="hami-plugin-cambricon",
        module="hami_plugin_cambricon",
        description="hami-rs Cambricon MLU device plugin (CNDev from the node's neuware)",
        user=0,
        root_because="writes kubelet's device-plugin socket folder on the host, owned by root",
    ),
    # Not root: it reads the regions the hook writes (files 0666 in folders 0777) and removes
    # the folders of pods that left through group 65532, which the NVIDIA plugin's install step
    # gives the hook's containers/ and limits/ folders (images/README.md, The node monitor).
    ImageSpec(
        name="monitor",
        package="hami-monitor",
        module="hami_monitor",
        description="hami-rs node monitor (HAMi's vGPU monitor metrics, priority feedback loop)",
    ),
)


def find(name: str) -> ImageSpec:
    for spec in IMAGES:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in IMAGES)
    raise KeyError(f"no image named {name!r}; the images are: {known}")
