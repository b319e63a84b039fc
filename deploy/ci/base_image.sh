#!/usr/bin/env bash
# The image's base where the public `python:3.11-slim` cannot be pulled: Debian bookworm's own packages
# (python3 3.11, python3-venv, ca-certificates), made with debootstrap and `docker import`ed.
# deploy/Dockerfile takes it as `--build-arg BASE_IMAGE=...`. Cached: the image is kept under its tag in
# the daemon, and the root file system's tarball under .tools/, so later runs skip debootstrap.
#
#   deploy/ci/base_image.sh <docker command...>      prints the tag
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=chargeback-base:bookworm-python3.11
# The Debian mirror this machine's apt already uses (its enabled sources, in either format, as apt reads
# them), unless DEBIAN_MIRROR names one.
MIRROR=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m 1 -E '/debian/?$' || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TARBALL=.tools/image-base/bookworm-python3.11.tar
docker=("$@")
if ! "${docker[@]}" image inspect "$TAG" >/dev/null 2>&1; then
  if [ ! -s "$TARBALL" ]; then
    command -v debootstrap >/dev/null || { echo "base_image.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
    root=$(mktemp -d /tmp/chargeback-base.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    mkdir -p "$(dirname "$TARBALL")"
    tar -C "$root" --numeric-owner -cf "$TARBALL.partial" .
    mv "$TARBALL.partial" "$TARBALL"
  fi
  "${docker[@]}" import --change 'CMD ["python3"]' "$TARBALL" "$TAG" >&2
fi
echo "$TAG"
