#!/usr/bin/env bash
# Make a local Debian base image for machines that cannot pull from Docker Hub, from the Debian archive
# that this machine's apt already uses (read from its apt sources now, so no host name lives in the repo).
#
#   bash scripts/container-base.sh IMAGE SUITE [PACKAGE,PACKAGE...]
#   bash scripts/container-base.sh readerboard-ci/python:bookworm bookworm python3,python3-venv,ca-certificates
#
# debootstrap --variant=minbase SUITE, then apt-get install of the packages in it, then `docker import`. The root file system is
# kept as a tarball in $READERBOARD_CI_CACHE (default /var/cache/readerboard-ci), so the next run
# imports it in seconds instead of bootstrapping again; delete the tarball to refresh it.
set -euo pipefail
image="${1:?usage: container-base.sh IMAGE SUITE [PACKAGES]}"
suite="${2:?usage: container-base.sh IMAGE SUITE [PACKAGES]}"
packages="${3:-}"
docker_cli="${DOCKER:-docker}"
cache="${READERBOARD_CI_CACHE:-/var/cache/readerboard-ci}"

if "$docker_cli" image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image: already present"
  exit 0
fi

# The first Debian archive (not the security one) named in the machine's apt sources, one-line or deb822.
apt_mirror() {
  {
    [ -f /etc/apt/sources.list ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' /etc/apt/sources.list
    for f in /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
  } | grep -v -e '-security' -e 'security\.' | grep -E '/debian/?$' | head -1
}

mkdir -p "$cache"
tarball="$cache/debian-$suite-minbase$( [ -n "$packages" ] && printf -- '-%s' "$(echo "$packages" | md5sum | cut -c1-8)").tar"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  mirror="$(apt_mirror || true)"
  [ -n "$mirror" ] || { echo "no Debian archive found in /etc/apt/sources.list or /etc/apt/sources.list.d/" >&2; exit 1; }
  root="$(mktemp -d "$cache/rootfs.XXXXXX")"
  # --one-file-system: should a failed debootstrap leave /proc or /sys mounted in the root, skip them.
  trap 'rm -rf --one-file-system "$root" "$tarball.partial"' EXIT
  echo "base image $image: debootstrap $suite from the machine's Debian archive${packages:+, with $packages}"
  log="$cache/debootstrap-$suite.log"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$log" 2>&1 \
    || { echo "debootstrap $suite failed; the end of $log:" >&2; tail -20 "$log" >&2; exit 1; }
  # apt-get, not debootstrap --include: debootstrap's own resolver fails on packages with many
  # alternatives and virtual dependencies (npm on trixie).
  if [ -n "$packages" ]; then
    chroot "$root" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(echo "$packages" | tr , ' ') && apt-get clean" \
      >>"$log" 2>&1 \
      || { echo "installing $packages into the $suite base failed; the end of $log:" >&2; tail -20 "$log" >&2; exit 1; }
  fi
  # Smaller and reproducible: no package lists or downloaded .debs in the image.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
echo "base image $image: importing $tarball"
"$docker_cli" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >/dev/null
