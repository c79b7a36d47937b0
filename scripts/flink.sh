#!/usr/bin/env bash
# Apache Flink for the seed-job bench (tests/benches/seed_jobs/): PyFlink from
# PyPI, which ships Flink's jars (the local mini-cluster, the filesystem
# connector, the json and csv formats, print, blackhole, datagen). It runs
# on the machine's Java 17.
#
#   scripts/flink.sh install   create target/flink-venv with apache-flink and the bench's
#                              PostgreSQL client, unless already there (idempotent)
#   scripts/flink.sh python    print the venv's python
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/flink-venv"
# The versions the bench was written and measured with.
packages=("apache-flink==2.3.0" "psycopg[binary]==3.3.9")

install() {
  local stamp="$venv/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ]; then return 0; fi
  command -v java >/dev/null || { echo "flink.sh: PyFlink needs Java 17 (java is not on PATH)" >&2; exit 1; }
  echo "flink.sh: installing ${packages[*]} into $venv (a few minutes the first time)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "${packages[@]}"
  echo "${packages[*]}" >"$stamp"
}

case "${1:-install}" in
  install) install ;;
  python) echo "$venv/bin/python" ;;
  *) echo "usage: $0 install|python" >&2; exit 2 ;;
esac
