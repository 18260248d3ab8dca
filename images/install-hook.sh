#!/bin/sh
# hami-install-hook DEST: puts the hook library of this image onto the node, in DEST (the host
# folder <hook-path>/vgpu, mounted at the same path), as HAMi's vgpu-init.sh does; the NVIDIA
# plugin's init container runs it before the plugin starts, so Allocate never mounts a library
# that is not there yet.
#   DEST/libvgpu.so.<version>, DEST/libvgpu.so  the library (the plugin mounts the versioned one)
#   DEST/ld.so.preload                          one line: DEST/libvgpu.so (a container's path)
#   DEST/containers/, DEST/limits/              the plugin's per-container folders and limits
#                                               files go there; made group-writable (2775) for
#                                               the group this step runs as (the chart: 65532),
#                                               so the node monitor removes what pods left
#                                               behind without running as root
# Each file is written beside its target and renamed over it, and only when its content
# changed: a running container keeps the library it was started with (its bind mount holds the
# old file), so an upgrade never rewrites a library under a running process (HAMi #753).
set -eu
dest="${1:?usage: hami-install-hook DEST (the node folder for the hook, e.g. /usr/local/vgpu)}"
src=/k8s-vgpu/lib/nvidia
version="$(cat "$src/VERSION")"

place() {  # place SOURCE TARGET MODE
  if cmp -s "$1" "$2" 2>/dev/null; then
    echo "hami-install-hook: $2 is up to date"
    return
  fi
  tmp="$2.new.$$"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
  echo "hami-install-hook: installed $2"
}

mkdir -p "$dest"
for folder in "$dest/containers" "$dest/limits"; do
  mkdir -p "$folder"
  # a member of the group may hand a file it owns to that group without CAP_CHOWN
  chgrp "$(id -g)" "$folder"
  chmod 2775 "$folder"
done
place "$src/libvgpu.so" "$dest/libvgpu.so.$version" 0755
place "$src/libvgpu.so" "$dest/libvgpu.so" 0755
preload="$(mktemp "$dest/.ld.so.preload.XXXXXX")"
printf '%s\n' "$dest/libvgpu.so" > "$preload"
place "$preload" "$dest/ld.so.preload" 0644
rm -f "$preload"
