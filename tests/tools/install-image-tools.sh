#!/usr/bin/env bash
# Installs what tests/image builds and runs the container image with, from Debian packages:
#  - buildah: builds the Dockerfile and runs the image without a container daemon;
#  - mmdebstrap: makes the Debian base image the build starts from (no registry is pulled).
# Needs root and apt-get (CI runs as root). Idempotent: does nothing when both already run.
#   usage: tests/tools/install-image-tools.sh
set -euo pipefail

if buildah --version >/dev/null 2>&1 && mmdebstrap --version >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-image-tools.sh: installing buildah and mmdebstrap needs root (apt-get install)" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "install-image-tools.sh: apt-get is needed to install buildah and mmdebstrap" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive
packages=(buildah mmdebstrap debian-archive-keyring)
if ! apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
echo "install-image-tools.sh: $(buildah --version) and mmdebstrap $(mmdebstrap --version | awk '{print $2}') installed" >&2
