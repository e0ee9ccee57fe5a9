#!/usr/bin/env bash
# One command: install, build the viewer, migrate, load the demo on first run, start the server
# (and a Celery worker when REDIS_URL is set). HOST and PORT choose where it listens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
bash scripts/build-frontend.sh
py=.venv/bin/python
$py manage.py migrate --noinput -v0
$py manage.py make_demo >/dev/null
$py manage.py collectstatic --noinput -v0
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
if [ -n "${REDIS_URL:-}" ]; then
  .venv/bin/celery -A readerboard worker -Q default,import,images,consensus,export -l info --concurrency "${CELERY_CONCURRENCY:-2}" &
  pids+=($!)
  .venv/bin/celery -A readerboard beat -l info --schedule "${READERBOARD_DATA_DIR:-var}/celerybeat-schedule" &
  pids+=($!)
fi
echo
echo "Readerboard is running at http://$host:$port/"
echo "Demo logins (change them before a public booth):"
$py manage.py make_demo | sed -n '2,$p'
echo
# The real-size CT (520 slices) is written, imported and encoded in the background: its task
# appears on the reading page within a minute or two, and the server starts at once.
mkdir -p "${READERBOARD_DATA_DIR:-var}"
$py manage.py make_demo --real-size >"${READERBOARD_DATA_DIR:-var}/real-size-demo.log" 2>&1 &
pids+=($!)
.venv/bin/daphne -b "$host" -p "$port" readerboard.asgi:application &
pids+=($!)
wait "${pids[-1]}"
