#!/usr/bin/env bash
# Checks that PostgreSQL (5432), MariaDB (3306) and Redis (6379) listen on
# loopback and starts the ones that do not, with the machine's own commands.
# Fails, saying which, when a service cannot be started.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  local name=$1 port=$2
  for _ in $(seq 1 30); do up "$port" && return 0; sleep 1; done
  echo "services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

ensure() {
  local name=$1 port=$2 start=$3
  if up "$port"; then return 0; fi
  echo "services: starting $name" >&2
  bash -c "$start" || { echo "services: cannot start $name with: $start" >&2; return 1; }
  wait_up "$name" "$port"
}

ensure PostgreSQL 5432 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'
ensure MariaDB 3306 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd'
ensure Redis 6379 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log'
