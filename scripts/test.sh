#!/usr/bin/env bash
# The whole test suite (what CI runs): set-up, then every crate's tests —
# unit, integration (real WASM components built from jobs/ and
# tests/guests/), and the doc examples.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
