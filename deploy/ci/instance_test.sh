#!/usr/bin/env bash
# `make instance-test`: the production instance (deploy/dagster.yaml) on a real PostgreSQL server, started by
# the test on a random loopback port with its own data folder (deploy/tests/test_production_instance.py).
# Installs Debian's postgresql when missing. PostgreSQL refuses to run as root: as root, the server runs as
# the `postgres` user Debian's package creates.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
exec .venv/bin/python -m pytest -n 0 -q -s --durations=0 deploy/tests/test_production_instance.py
