#!/usr/bin/env bash
# Build the Cornerstone3D viewer bundle from viewer/frontend into static/viewer (skipped when up to date).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f viewer/frontend/package.json ] || exit 0
command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to build the viewer" >&2; exit 1; }
cd viewer/frontend
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
newest_source=$(find src index.html vite.config.* package-lock.json -type f -newer ../../static/viewer/.built 2>/dev/null | head -1 || true)
if [ ! -f ../../static/viewer/.built ] || [ -n "$newest_source" ]; then
  npm run build --silent
  touch ../../static/viewer/.built
fi
