#!/usr/bin/env bash
# Installs what the image builds need, from Debian's packages, when it is missing: buildah
# (chroot isolation and vfs storage: no daemon, no Docker engine) and debootstrap (the base
# root filesystem). CI and a fresh machine get them from here; needs root (or says what to run).
set -euo pipefail
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "images: ${missing[*]} missing; as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "images: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
