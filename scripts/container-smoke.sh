#!/usr/bin/env bash
# Container smoke test (run by .ci/run): build the image and run web, worker and beat containers as an
# admin would, then tests/integration/test_containers.py drives them (see its docstring).
#
#   bash scripts/container-smoke.sh          as root on Debian (installs docker.io and debootstrap)
#
# Needs the machine's PostgreSQL on 127.0.0.1:5432 (scripts/ci-services.sh) and redis-server. Starts
# dockerd when it is not running (no bridge, no iptables: every container uses host networking, so all
# test traffic stays on loopback) and stops it again at the end. Everything it starts is removed at the
# end, on failure too; kept between runs, to make the next one fast: the Debian base tarballs in
# $READERBOARD_CI_CACHE (default /var/cache/readerboard-ci), the base images, and BuildKit's layer
# and pip/npm caches inside Docker's own storage (`docker builder prune` empties those).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${READERBOARD_CI_CACHE:-/var/cache/readerboard-ci}"
image="readerboard-smoke:$$"
started_at=$(date +%s)
dockerd_pid=""
mkdir -p "$cache"

say() { echo "container-smoke: $*"; }

remove_smoke_leftovers() {
  # The test removes its own containers; these are what an interrupted run (this one or an earlier) left.
  "$DOCKER" ps -aq --filter label=readerboard-smoke=1 | xargs -r "$DOCKER" rm -f --volumes >/dev/null
  "$DOCKER" volume ls -q --filter name=rb-smoke-data- | xargs -r "$DOCKER" volume rm -f >/dev/null
  "$DOCKER" images -q readerboard-smoke | sort -u | xargs -r "$DOCKER" image rm -f >/dev/null 2>&1
}

cleanup() {
  local status=$?
  set +e
  if [ -n "${DOCKER:-}" ] && "$DOCKER" info >/dev/null 2>&1; then
    remove_smoke_leftovers
  fi
  if [ -n "$dockerd_pid" ]; then
    say "stopping the dockerd this script started (pid $dockerd_pid)"
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  fi
  say "$( [ "$status" -eq 0 ] && echo passed || echo "FAILED (exit $status)" ) in $(( $(date +%s) - started_at )) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Tools: Debian's docker.io and debootstrap.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "container-smoke: installing ${need[*]} needs root" >&2; exit 1; }
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

# 2. The Docker daemon.
if ! docker info >/dev/null 2>&1 && ! /usr/bin/docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $cache/dockerd.log)"
  # setsid: a Ctrl-C meant for this script must not stop dockerd before the containers are removed.
  setsid dockerd --bridge=none --iptables=false >"$cache/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; the end of $cache/dockerd.log:" >&2; tail -20 "$cache/dockerd.log" >&2; exit 1; }
  # dockerd's own record of its pid, in case setsid had to fork.
  dockerd_pid="$(cat /var/run/docker.pid 2>/dev/null || echo "$dockerd_pid")"
fi

DOCKER="${DOCKER:-docker}"
remove_smoke_leftovers

# 3. The image, from local Debian bases (scripts/container-image.sh picks a BuildKit-capable client).
build_started=$(date +%s)
DOCKER="$(READERBOARD_BUILD_LOG="$cache/build.log" bash scripts/container-image.sh "$image")" \
  || { echo "container-smoke: the image did not build; the end of $cache/build.log:" >&2; tail -40 "$cache/build.log" >&2; exit 1; }
export DOCKER
say "image ready in $(( $(date +%s) - build_started )) s"

# 4. The containers and the checks.
bash scripts/venv.sh test,dev
test_started=$(date +%s)
READERBOARD_CONTAINER_IMAGE="$image" .venv/bin/python -m pytest -p no:randomly -m containers \
  tests/integration/test_containers.py
say "containers tested in $(( $(date +%s) - test_started )) s"
