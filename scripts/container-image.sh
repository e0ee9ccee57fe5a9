#!/usr/bin/env bash
# Build the Readerboard image without Docker Hub: Debian bases made from the machine's Debian archive
# (scripts/container-base.sh), then docker/Dockerfile with BuildKit.
#
#   bash scripts/container-image.sh [TAG]        default tag readerboard:latest
#
# READERBOARD_CA_BUNDLE (default: the system bundle, /etc/ssl/certs/ca-certificates.crt) is handed to
# the build as the secret `ca` for pip and npm behind a TLS-inspecting proxy; it never enters a layer.
# Progress goes to stderr; stdout gets one line, the docker client it used, for scripts (container-smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-readerboard:latest}"
python_image="${READERBOARD_PYTHON_IMAGE:-readerboard-ci/python:bookworm}"
node_image="${READERBOARD_NODE_IMAGE:-readerboard-ci/node:trixie}"
ca_bundle="${READERBOARD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# A client that can drive BuildKit: one with the buildx plugin, or Debian docker.io's own client, whose
# daemon-side BuildKit needs no plugin (a newer docker CLI without buildx refuses DOCKER_BUILDKIT=1).
buildkit_client() {
  local candidate
  for candidate in "${DOCKER:-docker}" /usr/bin/docker; do
    command -v "$candidate" >/dev/null || continue
    if "$candidate" buildx version >/dev/null 2>&1 \
      || printf 'FROM scratch\n' | DOCKER_BUILDKIT=1 "$candidate" build -q - >/dev/null 2>&1; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
docker_cli="$(buildkit_client)" || {
  echo "no docker client here can build with BuildKit: install docker-buildx, or use Debian's docker.io client" >&2
  exit 1
}
export DOCKER="$docker_cli"

# Local bases: Python 3.11 from bookworm; Node.js 20.19 from trixie, because bookworm's nodejs (18) is
# older than Vite 8 accepts (^20.19 or >= 22.12).
bash scripts/container-base.sh "$python_image" bookworm python3,python3-venv,ca-certificates >&2
bash scripts/container-base.sh "$node_image" trixie nodejs,npm,ca-certificates >&2

secret=()
[ -s "$ca_bundle" ] && secret=(--secret "id=ca,src=$ca_bundle")
echo "image $tag: building docker/Dockerfile on $python_image and $node_image" >&2
started=$(date +%s)
DOCKER_BUILDKIT=1 "$docker_cli" build --network host --progress plain \
  --build-arg "PYTHON_IMAGE=$python_image" --build-arg "NODE_IMAGE=$node_image" \
  "${secret[@]}" -f docker/Dockerfile -t "$tag" . >"${READERBOARD_BUILD_LOG:-/dev/stderr}" 2>&1 \
  || { echo "image $tag: build failed${READERBOARD_BUILD_LOG:+ (log: $READERBOARD_BUILD_LOG)}" >&2; exit 1; }
echo "image $tag: built in $(( $(date +%s) - started )) s, $("$docker_cli" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')" >&2
echo "$docker_cli"
