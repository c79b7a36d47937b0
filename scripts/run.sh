#!/usr/bin/env bash
# Runs Sluice on its embedded defaults: `sluice serve` with the console and
# REST API on http://127.0.0.1:8080, a worker, SQLite metadata and local
# snapshots under ./sluice-data, the embedded development broker (Tansu),
# and the demo project running: `order-feed` generates insurance orders
# into the `user_order` topic, `hourly-premium` keeps hourly premium totals
# in the `hs_order` table of sluice-data/files/demo/demo-warehouse.db, `lending-report`
# builds seed 004's risk report tables there from generated lending events.
# Sign in as `admin` with the password printed on the first start (or set
# SLUICE_ADMIN_PASSWORD). Ctrl-C stops it, snapshotting the jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The demo jobs' components.
demo_jobs=(forward hourly_premium lending_report large_tx_alert jinpan_sync)
cargo build --release --target wasm32-wasip2 $(printf -- '-p job-%s ' "${demo_jobs[@]//_/-}")
mkdir -p target/demo
for job in "${demo_jobs[@]}"; do cp "target/wasm32-wasip2/release/$job.wasm" target/demo/; done
cargo build --release -p sluice-console
exec target/release/sluice serve --demo-components target/demo "$@"
