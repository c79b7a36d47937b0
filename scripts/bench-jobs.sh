#!/usr/bin/env bash
# The seed jobs side by side with Apache Flink (docs/BENCHMARKS.md, "Seed jobs
# against Apache Flink"): builds the release `sluice` and the jobs' components
# from this tree, installs PyFlink (scripts/flink.sh), starts Tansu for the
# Kafka → PostgreSQL run, then runs tests/benches/seed_jobs/bench.py.
#
#   scripts/bench-jobs.sh [JOB ...]      hourly-premium premium-drop last-page large-tx-alert lending-report
#   BENCH_EVENTS=200000 BENCH_RUNS=1 BENCH_FLINK_CONFIGS=minibatch BENCH_KAFKA=0 scripts/bench-jobs.sh last-page
#
# Exits 1 when a run fails or any engine's tables differ from the batch SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
jobs=(hourly-premium premium-drop last-page large-tx-alert lending-report)
cargo build --release -p sluice-console
cargo build --release --target wasm32-wasip2 $(printf -- '-p job-%s ' "${jobs[@]}")
scripts/flink.sh install
if [ "${BENCH_KAFKA:-1}" = 1 ]; then scripts/tansu.sh start; fi
export SLUICE="$target/release/sluice" BENCH_COMPONENTS="$target/wasm32-wasip2/release"
exec "$(scripts/flink.sh python)" tests/benches/seed_jobs/bench.py "$@"
