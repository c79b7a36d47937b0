#!/usr/bin/env bash
# Installs what Sluice's build and tests need on a fresh machine, and makes
# sure the local services are up. Idempotent: quick when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# Job components are built for WASI 0.2.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  log "installing the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

scripts/services.sh

# The Kafka-protocol broker of the tests and the development setup (Tansu;
# installed into ~/.cargo/bin once, 10-15 minutes cold).
scripts/tansu.sh start

# Chromium and chromedriver for the console's browser test.
scripts/chromium.sh

# Schemathesis for the API fuzzing test (a virtualenv under the target dir).
scripts/schemathesis.sh >/dev/null
