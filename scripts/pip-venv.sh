#!/usr/bin/env bash
# A Python tool from PyPI in a virtualenv of its own under the cargo target
# directory, for the scripts that need one (schemathesis.sh,
# kubernetes-check.sh):
#
#   scripts/pip-venv.sh NAME PACKAGE==VERSION   prints the venv's path
#
# Installs the pinned package into target/NAME-venv when it is missing or
# pinned otherwise (a stamp in the venv records what was installed), so it
# is quick when in place. Needs python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: scripts/pip-venv.sh NAME PACKAGE==VERSION" >&2
  exit 2
fi
name=$1
requirement=$2
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/$name-venv"
stamp="$venv/.installed"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$requirement" ]; then
  echo "$name: installing $requirement into $venv (pip, PyPI)" >&2
  if ! command -v python3 >/dev/null; then
    echo "$name: python3 is missing; install it (with its venv and pip modules)" >&2
    exit 1
  fi
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
  echo "$requirement" > "$stamp"
fi
echo "$venv"
