#!/usr/bin/env bash
# Schemathesis (from PyPI), for the API fuzzing test (console/tests/api_fuzz.rs):
# installs it into a virtualenv under the cargo target directory when it is
# missing or of another version, and prints the path of its command.
# Idempotent and quick when in place. Needs python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/schemathesis-venv"
bin="$venv/bin/schemathesis"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "version $VERSION\$"; then
  echo "$bin"
  exit 0
fi

echo "schemathesis: installing schemathesis $VERSION into $venv (pip, PyPI)" >&2
if ! command -v python3 >/dev/null; then
  echo "schemathesis: python3 is missing; install it (with its venv and pip modules)" >&2
  exit 1
fi
mkdir -p "$target"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
echo "$bin"
