#!/usr/bin/env bash
# Create .venv with Python 3.11+ and install the locked dependencies, then the project itself.
#   bash scripts/venv.sh            requirements/runtime.txt (`make run`)
#   bash scripts/venv.sh test,dev   requirements/dev.txt: runtime + test + dev extras (`make test`)
# The versions and hashes come from the lock in requirements/ (scripts/lock.sh), never from the ranges
# in pyproject.toml, so two installs a month apart are the same.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
[ -n "$python_bin" ] || { echo "Python 3.11 or newer is needed" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
# Any extra (test, dev or both) takes the dev lock, which holds them all.
lock=requirements/runtime.txt
[ -z "$extras" ] || lock=requirements/dev.txt
stamp=".venv/.installed-$(basename "$lock" .txt)"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # Hashes in the lock make pip refuse anything else, including a same-named file from another index.
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
