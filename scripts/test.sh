#!/usr/bin/env bash
# The whole test suite: once on the embedded default (SQLite, eager Celery, in-memory channels),
# then again on PostgreSQL (DATABASE_URL) when a server answers on 127.0.0.1:5432, for the tests that use a database.
# Redis, Celery-worker, browser and DICOM-tool tests use the machine's services; the PostgreSQL pass
# leaves out the browser and multi-process tests, which already run against PostgreSQL themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test,dev
# The lock in requirements/ must be what pyproject.toml asks for (fix: `make lock`).
bash scripts/lock.sh --check
# The layout's rules (pyproject.toml [tool.importlinter], docs/architecture.md): a broken contract is named.
.venv/bin/lint-imports --no-cache
bash scripts/build-frontend.sh
export PYTHONUNBUFFERED=1
unset DATABASE_URL REDIS_URL
if [ -f viewer/frontend/package.json ]; then
  echo "== viewer unit tests (node --test) =="
  (cd viewer/frontend && npm test --silent)
fi
# Tests that stay in this process run on every core (pytest-xdist, one SQLite or PostgreSQL test database per
# worker); browser and multi-process tests start servers and browsers of their own, so they run one at a time.
workers=(-n "${READERBOARD_TEST_WORKERS:-logical}")
# A selection with nothing in it (say, `scripts/test.sh tests/annotations/core`) is not a failure.
run_pytest() { .venv/bin/python -m pytest "$@" || [ $? -eq 5 ]; }
echo "== tests on the embedded default (SQLite) =="
run_pytest "${workers[@]}" -m "not browser and not services" "$@"
echo "== browser and multi-process tests =="
run_pytest -m "browser or services" "$@"
if .venv/bin/python - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
then
  echo "== tests on PostgreSQL =="
  # Only tests that open the database: the others (numeric cores, file formats) already ran above.
  READERBOARD_DATABASE_TESTS_ONLY=1 DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/readerboard}" \
    run_pytest "${workers[@]}" -m "not browser and not services" "$@"
else
  echo "PostgreSQL is not running on 127.0.0.1:5432: skipped the PostgreSQL pass" >&2
  [ -z "${CI:-}" ] || exit 1
fi
