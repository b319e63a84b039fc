#!/usr/bin/env bash
# `make image-test`: builds deploy/Dockerfile and runs it (deploy/tests/test_image.py). As root: it starts
# its own Docker daemon. Installs what it needs from Debian when missing: docker.io (the daemon and client),
# debootstrap (the base image where python:3.11-slim cannot be pulled, deploy/ci/base_image.sh) and
# postgresql (the production instance the image's code server runs on, as README "Deployment" walks it).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
for package in docker.io debootstrap postgresql; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exec .venv/bin/python -m pytest -n 0 -q -s --durations=0 deploy/tests/test_image.py
