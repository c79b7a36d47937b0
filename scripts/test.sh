#!/usr/bin/env bash
# The whole test suite (what CI runs): set-up, then every crate's tests —
# unit, integration (real WASM components built from jobs/ and
# tests/guests/), and the doc examples.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The property tests (docs/SECURITY.md, "Fuzzing") draw the same cases on
# every run of the suite, so a red run is always reproducible; give another
# seed to explore further.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261206}"
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
