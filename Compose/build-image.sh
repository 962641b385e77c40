#!/usr/bin/env bash
# Compose/build-image.sh [BIN_DIR] — builds the Lockstep image
# ($LOCKSTEP_COMPOSE_IMAGE, default lockstep:latest) from Compose/Dockerfile.
#
# BIN_DIR (default .build/release) holds primary-vmm, backup-vmm, arbiter
# and lockstep built with `swift build -c release --static-swift-stdlib`
# (no Swift runtime needed in the image; checked here with ldd). The guests
# come from Guest/build (`make -C Guest all`). They are staged with the
# Dockerfile and the entrypoint into a small temporary context: .build/ is
# never sent to dockerd.
#
# The base: $LOCKSTEP_COMPOSE_BASE, default lockstep-base:bookworm, made by
# Compose/base-image.sh when missing (no registry needed). With a public
# base, e.g. LOCKSTEP_COMPOSE_BASE=debian:bookworm-slim, dockerd pulls it and
# the build installs the runtime packages with apt.
# $LOCKSTEP_BUILD_NETWORK: the network of the build's RUN steps; default
# "none" with the local base (nothing to fetch; a dockerd started with
# --bridge none has no default network), dockerd's default otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

BIN=${1:-${BIN:-.build/release}}
IMAGE=${LOCKSTEP_COMPOSE_IMAGE:-lockstep:latest}
BASE=${LOCKSTEP_COMPOSE_BASE:-lockstep-base:bookworm}
DOCKER=${DOCKER:-/usr/bin/docker}
GUESTS=${LOCKSTEP_COMPOSE_GUESTS:-kvstore callcheck bench}

for tool in primary-vmm backup-vmm arbiter lockstep; do
  [ -x "$BIN/$tool" ] || {
    echo "error: no $BIN/$tool (build it: swift build -c release --static-swift-stdlib)" >&2
    exit 1
  }
  if ldd "$BIN/$tool" 2>/dev/null | grep -q 'libswift\|libFoundation\|libdispatch'; then
    echo "error: $BIN/$tool needs the Swift runtime: build with swift build -c release --static-swift-stdlib" >&2
    ldd "$BIN/$tool" | grep 'libswift\|libFoundation\|libdispatch' >&2
    exit 1
  fi
done
for guest in $GUESTS; do
  [ -f "Guest/build/$guest.elf" ] || make -s -C Guest all >/dev/null ||
    { echo "error: the guest build failed (make -C Guest all)" >&2; exit 1; }
done

if [[ $BASE == lockstep-base:* ]]; then
  bash Compose/base-image.sh "$BASE"
  network=${LOCKSTEP_BUILD_NETWORK:-none}
else
  network=${LOCKSTEP_BUILD_NETWORK:-}
fi

context=$(mktemp -d /tmp/lockstep-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin" "$context/guests"
for tool in primary-vmm backup-vmm arbiter lockstep; do
  cp "$BIN/$tool" "$context/bin/"
done
for guest in $GUESTS; do
  cp "Guest/build/$guest.elf" "$context/guests/"
done
cp Compose/Dockerfile "$context/Dockerfile"
install -m 0755 Compose/entrypoint.sh "$context/entrypoint.sh"
chmod 0755 "$context"/bin/*
chmod 0644 "$context"/guests/*

if revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
  git -C "$root" diff --quiet HEAD 2>/dev/null || revision="$revision+dirty"
else
  revision=unknown
fi
args=(--build-arg "BASE=$BASE" --build-arg "REVISION=$revision" --tag "$IMAGE")
[ -n "$network" ] && args+=(--network "$network")
echo "building $IMAGE from $BASE (context $(du -sh "$context" | cut -f1), binaries from $BIN)"
started=$SECONDS
# The classic builder: no BuildKit frontend image to pull.
if ! DOCKER_BUILDKIT=0 "$DOCKER" build --quiet "${args[@]}" "$context" >"$context/build.log" 2>&1; then
  echo "error: docker build failed:" >&2
  tail -n 30 "$context/build.log" >&2
  exit 1
fi
echo "image $IMAGE built in $((SECONDS - started)) s ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" |
  awk '{printf "%.0f MB", $1/1e6}'), revision $revision)"
