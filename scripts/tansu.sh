#!/usr/bin/env bash
# The Kafka-protocol broker of the development setup and the test suites:
# Tansu (Apache-2.0, written in Rust). No Apache Kafka can be downloaded here.
#
#   scripts/tansu.sh install        install it into ~/.cargo/bin when missing (10-15 min cold)
#   scripts/tansu.sh start [PORT]   start a broker on 127.0.0.1:PORT (default 19092) unless one listens
#   scripts/tansu.sh stop [PORT]    stop the broker this script started on PORT
#
# SLUICE_TANSU_ADVERTISE=host:port makes it advertise another address (tests
# put a fault-injecting proxy in front of it). The broker keeps topics in memory (`memory://`), or where SLUICE_TANSU_STORAGE
# says (e.g. a postgres:// URL, to survive restarts). Logs and pid files are
# in target/tansu/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/target/tansu"
port="${2:-${SLUICE_TANSU_PORT:-19092}}"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install() {
  if command -v tansu >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/tansu" ]; then return 0; fi
  echo "tansu: installing (cargo install tansu, about 10-15 minutes the first time)" >&2
  cargo install tansu --locked --features dynostore,postgres
}

start() {
  if up "$port"; then return 0; fi
  install
  mkdir -p "$state"
  local bin; bin="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
  nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://${SLUICE_TANSU_ADVERTISE:-127.0.0.1:$port}" \
    --storage-engine "${SLUICE_TANSU_STORAGE:-memory://tansu/}" \
    >"$state/tansu-$port.log" 2>&1 &
  echo $! >"$state/tansu-$port.pid"
  for _ in $(seq 1 100); do
    if up "$port"; then return 0; fi
    sleep 0.1
  done
  echo "tansu: the broker did not start on 127.0.0.1:$port; see $state/tansu-$port.log" >&2
  tail -n 20 "$state/tansu-$port.log" >&2 || true
  return 1
}

stop() {
  local pidfile="$state/tansu-$port.pid"
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop [PORT]" >&2; exit 2 ;;
esac
