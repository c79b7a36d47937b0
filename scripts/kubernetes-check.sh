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
venv="$target/kubernetes-validate-venv"
python="$venv/bin/python"
binary="${2:-$target/debug/sluice}"

if ! { [ -x "$venv/bin/kubernetes-validate" ] && [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$VERSION" ]; }; then
  echo "kubernetes-check: installing kubernetes-validate $VERSION into $venv (pip, PyPI)" >&2
  if ! command -v python3 >/dev/null; then
    echo "kubernetes-check: python3 is missing; install it (with its venv and pip modules)" >&2
    exit 1
  fi
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION" >&2
fi
if [ ! -x "$binary" ]; then
  echo "kubernetes-check: no sluice binary at $binary; build it with \`cargo build -p sluice-console\`" >&2
  exit 1
fi

exec "$python" scripts/kubernetes_check.py --sluice "$binary" --database-url "$1"
