#!/usr/bin/env bash
# Install (Debian) and start what the tests use: PostgreSQL, Redis, chromium, dicom3tools, dcmtk, and the
# throw-away venv of nnU-Net's and MONAI's own dataset checks (scripts/check-nnunet-export.sh).
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v dciodvfy >/dev/null || need+=(dicom3tools)
command -v dsrdump >/dev/null || need+=(dcmtk)
command -v redis-server >/dev/null || need+=(redis-server)
ls /etc/postgresql/*/main >/dev/null 2>&1 || need+=(postgresql)
command -v node >/dev/null || need+=(nodejs npm)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  conf="/etc/postgresql/$version/main/pg_hba.conf"
  # Tests connect as postgres over loopback without a password, as the dev machines do.
  if ! grep -q "readerboard-ci" "$conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust # readerboard-ci' "$conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
fi
if ! port_open 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
bash "$(dirname "$0")/check-nnunet-export.sh" --venv-only
for _ in $(seq 1 30); do port_open 5432 && port_open 6379 && break; sleep 1; done
port_open 5432 && port_open 6379
