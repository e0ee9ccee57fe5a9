#!/usr/bin/env bash
# The Python dependency lock, compiled from pyproject.toml by uv: exact versions with hashes, for
# Python 3.11 to 3.13 on every platform, resolved from PyPI alone (pip's find-links and extra indexes
# of this machine play no part).
#   requirements/dev.txt      dependencies + test and dev extras: scripts/venv.sh test,dev (`make test`)
#   requirements/runtime.txt  dependencies alone, the same versions: `make run` and the container image
#
#   bash scripts/lock.sh            after editing pyproject.toml (`make lock`): adds, drops or re-pins only
#                                   what changed, every other pin stays
#   bash scripts/lock.sh --upgrade  the newest versions pyproject.toml allows (`make lock-upgrade`)
#   bash scripts/lock.sh --check    exit 1 when pyproject.toml and the lock disagree (run by `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in ""|--upgrade|--check) ;; *) echo "usage: scripts/lock.sh [--upgrade|--check]" >&2; exit 2 ;; esac
uv=.venv/bin/uv
[ -x "$uv" ] || bash scripts/venv.sh test,dev
# uv has its own certificate roots; the system store also holds a company proxy's CA, where there is one.
export UV_SYSTEM_CERTS=1

compile_lock() {  # compile_lock DIR [uv options]: (re)writes DIR/requirements/{dev,runtime}.txt
  local dir="$1"; shift
  local common=(--universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock")
  # dev.txt first: runtime.txt is then constrained to dev.txt's versions, so both installs agree.
  (cd "$dir" && "$OLDPWD/$uv" pip compile pyproject.toml --extra test --extra dev "${common[@]}" "$@" \
      -o requirements/dev.txt \
    && "$OLDPWD/$uv" pip compile pyproject.toml "${common[@]}" "$@" -c requirements/dev.txt \
      -o requirements/runtime.txt)
}

if [ "$mode" = --check ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$scratch/requirements"
  cp pyproject.toml "$scratch/"
  cp requirements/dev.txt requirements/runtime.txt "$scratch/requirements/" 2>/dev/null || true
  if ! compile_lock "$scratch" 2>"$scratch/errors"; then
    cat "$scratch/errors" >&2
    # Offline is no reason to stop a developer's test run (tests/test_deploy_files.py still checks
    # the lock offline); CI must know.
    [ -z "${CI:-}" ] || { echo "lock: could not compile the lock to compare it" >&2; exit 1; }
    echo "lock: could not compile the lock to compare it (offline?); skipped this check" >&2
    exit 0
  fi
  if ! diff -u requirements/dev.txt "$scratch/requirements/dev.txt" >"$scratch/diff" \
    || ! diff -u requirements/runtime.txt "$scratch/requirements/runtime.txt" >>"$scratch/diff"; then
    cat "$scratch/diff" >&2
    echo "requirements/ does not match pyproject.toml: run 'make lock' and commit requirements/" >&2
    exit 1
  fi
  echo "lock: requirements/ matches pyproject.toml"
  exit 0
fi
mkdir -p requirements
compile_lock . ${mode:+--upgrade}
echo "lock: wrote requirements/dev.txt and requirements/runtime.txt; commit them with pyproject.toml"
