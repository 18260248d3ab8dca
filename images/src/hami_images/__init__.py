"""Container images of the hami-rs services (``./just images``): one per service, built with
buildah (chroot isolation, vfs storage, no Docker engine) on a base root filesystem made from
Debian packages, each cached by the content of its inputs and written as an OCI archive."""
