#!/usr/bin/env bash
# Schemathesis (from PyPI), for the API fuzzing test (console/tests/api_fuzz.rs):
# installs it into a virtualenv under the cargo target directory when it is
# missing or of another version, and prints the path of its command.
# Idempotent and quick when in place. Needs python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
venv=$(scripts/pip-venv.sh schemathesis "schemathesis==$VERSION")
echo "$venv/bin/schemathesis"
