#!/usr/bin/env bash
# Compose/base-image.sh [IMAGE] — the base image for Compose/Dockerfile made
# here, from Debian packages, where no container registry is reachable:
# `debootstrap --variant=minbase bookworm` with the runtime packages the
# Lockstep image needs, trimmed (no docs, man pages, locales, apt lists),
# then `docker import`ed as IMAGE (default lockstep-base:bookworm).
#
# Idempotent: nothing to do when IMAGE exists. The root filesystem tarball is
# cached in $LOCKSTEP_CACHE (/var/cache/lockstep), keyed by suite, mirror and
# package list, so making the image again (after `docker rmi`, or on a new
# data root) takes seconds; the downloaded .debs are cached there too.
# The suite's updates and security updates are applied (LOCKSTEP_BASE_UPDATES=0:
# not). debootstrap and the update are each bounded by
# $LOCKSTEP_DEBOOTSTRAP_TIMEOUT seconds (900). Delete the cached tarball to
# take newer updates.
#
# Elsewhere, use a public base instead: Compose/Dockerfile defaults to
# debian:bookworm-slim and installs the same packages with apt.
#
# Needs root and a running dockerd ($DOCKER_HOST; see scripts/dockerd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-${LOCKSTEP_COMPOSE_BASE:-lockstep-base:bookworm}}
SUITE=${LOCKSTEP_BASE_SUITE:-bookworm}
MIRROR=${LOCKSTEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${LOCKSTEP_CACHE:-/var/cache/lockstep}
TIMEOUT=${LOCKSTEP_DEBOOTSTRAP_TIMEOUT:-900}
SECURITY_MIRROR=${LOCKSTEP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
UPDATES=${LOCKSTEP_BASE_UPDATES:-1}
DOCKER=${DOCKER:-/usr/bin/docker}
# What the containers run besides the (statically Swift-linked) binaries:
# libssl3 (TLS), iproute2 + iputils-arping (the service VIP moves with
# `ip address` and gratuitous ARP), iputils-ping, redis-tools (the client),
# curl (metrics), procps, ca-certificates. Keep in step with the apt line in
# Compose/Dockerfile.
PACKAGES=${LOCKSTEP_BASE_PACKAGES:-libssl3 iproute2 iputils-arping iputils-ping redis-tools curl procps ca-certificates}

[ "$(id -u)" -eq 0 ] || { echo "error: debootstrap needs root" >&2; exit 1; }
if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists"
  exit 0
fi
bash scripts/install-deps.sh debootstrap

packages=$(echo "$PACKAGES" | tr ' ,' '\n\n' | sed '/^$/d' | sort -u | paste -sd, -)
key=$(printf '%s\n%s\n%s\n%s\n' "$SUITE" "$MIRROR" "$packages" "trim-1 updates-$UPDATES" | sha256sum | cut -c1-16)
tarball=$CACHE/base-$SUITE-$key.tar
mkdir -p "$CACHE/debs"

if [ ! -s "$tarball" ]; then
  rootfs=$(mktemp -d /var/tmp/lockstep-rootfs.XXXXXX)
  cleanup() {
    # debootstrap may leave /proc or /sys mounted in the target on failure.
    for mount in proc sys dev/pts dev; do umount -l "$rootfs/$mount" 2>/dev/null || true; done
    rm -rf --one-file-system "$rootfs"
  }
  trap cleanup EXIT
  echo "debootstrap --variant=minbase $SUITE ($MIRROR) with: $packages (at most $TIMEOUT s)"
  started=$SECONDS
  if ! timeout "$TIMEOUT" debootstrap --variant=minbase --include="$packages" --cache-dir="$CACHE/debs" \
    "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    echo "error: debootstrap failed or timed out; the end of $CACHE/debootstrap.log:" >&2
    tail -n 20 "$CACHE/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
    exit 1
  fi
  echo "debootstrap done in $((SECONDS - started)) s"
  # The suite's updates and security updates (debootstrap takes the release
  # as it was). Skipped with LOCKSTEP_BASE_UPDATES=0.
  if [ "$UPDATES" = 1 ]; then
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
      "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" >"$rootfs/etc/apt/sources.list"
    if ! timeout "$TIMEOUT" chroot "$rootfs" sh -c \
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade && apt-get clean' \
      >>"$CACHE/debootstrap.log" 2>&1; then
      echo "error: updating the root filesystem failed; the end of $CACHE/debootstrap.log:" >&2
      tail -n 20 "$CACHE/debootstrap.log" >&2
      exit 1
    fi
    echo "updates and security updates applied ($((SECONDS - started)) s in all)"
  fi
  # Trim what a container never reads.
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/* \
    "$rootfs"/debootstrap
  # The image's own apt sources (a public base gets these from its image).
  [ "$UPDATES" = 1 ] || echo "deb $MIRROR $SUITE main" >"$rootfs/etc/apt/sources.list"
  : >"$rootfs/etc/hostname"
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  echo "root filesystem cached: $tarball ($(du -h "$tarball" | cut -f1))"
else
  echo "using the cached root filesystem $tarball"
fi

"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase $SUITE + $packages" \
  "$tarball" "$IMAGE" >/dev/null
echo "base image $IMAGE made ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
