#!/usr/bin/env bash
# The long fuzzing run: the export fuzzers (Hypothesis, hostile rows through the ORM) and Schemathesis
# (every operation, then stateful sequences over the reading API), with example counts well above CI's.
# Counts land in benchmarks/results/fuzz.json. About 25 minutes on 2 cores with the defaults below;
# FUZZ_SCALE=0.2 for a quick look. CI runs the same tests with its own small budget.
set -euo pipefail
cd "$(dirname "$0")/.."
# PYTHON=/path/to/python uses an existing environment instead of making .venv.
if [ -z "${PYTHON:-}" ]; then bash scripts/venv.sh test,dev; fi
py="${PYTHON:-.venv/bin/python}"
scale="${FUZZ_SCALE:-1}"
count() { "$py" -c "import sys; print(max(1, int(float(sys.argv[1]) * float(sys.argv[2]))))" "$1" "$scale"; }
out=benchmarks/results/fuzz.json
partial="$(mktemp)"
trap 'rm -f "$partial"' EXIT
export READERBOARD_FUZZ_COUNTS="$partial"
export READERBOARD_FUZZ_TIMEOUT_S=7200
export READERBOARD_EXPORT_FUZZ_EXAMPLES="$(count 600)"
export READERBOARD_EXPORT_FUZZ_FOLLOW_UP_EXAMPLES="$(count 300)"
export READERBOARD_FUZZ_EXAMPLES="$(count 100)"
export READERBOARD_FUZZ_STATEFUL_EXAMPLES="$(count 300)"
export READERBOARD_FUZZ_STATEFUL_STEPS=12
started=$(date +%s)
status=0
"$py" -m pytest -q -p no:randomly tests/security/test_export_fuzz.py tests/security/test_schemathesis.py \
  || status=$?
"$py" - "$partial" "$out" "$status" "$(( $(date +%s) - started ))" "$scale" <<'PY'
import json, subprocess, sys
from datetime import datetime, timezone
partial, out, status, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
scale = float(sys.argv[5])
counts = json.loads(open(partial).read() or "{}")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {
    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "commit": commit,
    "pytest_exit_status": status,
    "seconds": seconds,
    "scale": scale,
    "database": "postgresql" if "postgres" in __import__("os").environ.get("DATABASE_URL", "") else "sqlite",
    **counts,
}
open(out, "w").write(json.dumps(result, indent=2, sort_keys=True) + "\n")
print(json.dumps(result, indent=2, sort_keys=True))
PY
exit "$status"
