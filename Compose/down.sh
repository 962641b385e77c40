#!/usr/bin/env bash
# Compose/down.sh [--stop-dockerd] — undoes Compose/up.sh: the containers and
# their volumes (disks, the arbiter's state), the network namespace with its
# bridge and veths; with --stop-dockerd, the private dockerd too. The image,
# the base image and the certificates stay.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" -eq 0 ] || { echo "error: run as root" >&2; exit 1; }
[ -n "${COMPOSE_PROJECT_NAME:-}" ] ||
  COMPOSE_PROJECT_NAME=$(sed -n 's/^COMPOSE_PROJECT_NAME=//p' Compose/.env | head -1)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-lockstep}
eval "$(bash scripts/dockerd.sh env)"
export DOCKER_HOST
if bash scripts/dockerd.sh status >/dev/null 2>&1; then
  (cd Compose && timeout 120 docker-compose down --volumes --remove-orphans --timeout 5)
fi
bash Compose/network.sh down
if [ "${1:-}" = --stop-dockerd ]; then
  bash scripts/dockerd.sh stop
fi
