#!/usr/bin/env bash
# The Kubernetes manifests without a cluster (console/tests/deploy.rs):
# installs kubernetes-validate (from PyPI, with PyYAML) into a virtualenv
# under the cargo target directory when it is missing or of another version,
# then runs scripts/kubernetes_check.py with it: strict schema validation of
# deploy/kubernetes/*.yaml, then the console and worker pods started as a
# kubelet would, probed, signed in to and terminated.
# Idempotent and quick when in place. Needs python3 with venv and pip.
#
#   scripts/kubernetes-check.sh DATABASE_URL [SLUICE_BINARY]
#
# DATABASE_URL: an empty PostgreSQL database (postgres://…) the pods share;
# SLUICE_BINARY: default target/debug/sluice.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/kubernetes-check.sh DATABASE_URL [SLUICE_BINARY]" >&2
  exit 2
fi

VERSION=1.37.0
target="${CARGO_TARGET_DIR:-$PWD/target}"
binary="${2:-$target/debug/sluice}"
python="$(scripts/pip-venv.sh kubernetes-validate "kubernetes-validate==$VERSION")/bin/python"

if [ ! -x "$binary" ]; then
  echo "kubernetes-check: no sluice binary at $binary; build it with \`cargo build -p sluice-console\`" >&2
  exit 1
fi

exec "$python" scripts/kubernetes_check.py --sluice "$binary" --database-url "$1"
