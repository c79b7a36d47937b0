#!/usr/bin/env bash
# Runs Sluice's example job: hourly premium totals over generated insurance
# orders (datagen, 200/s), upserting per-hour rows to
# jobs/hourly-premium/out/hs_order_live.jsonl with a progress line each
# second. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p sluice-console
exec target/release/sluice run --spec jobs/hourly-premium/live.toml "$@"
