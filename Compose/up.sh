#!/usr/bin/env bash
# Compose/up.sh [--build] — the Compose cluster in one command, as root:
# dockerd (scripts/dockerd.sh), the image (made once; --build makes it again
# from the current binaries), the certificates (made once, in
# $LOCKSTEP_COMPOSE_CERTS, default Compose/certs), `docker-compose up -d`,
# the containers' network (Compose/network.sh attach), then waits (at most
# 120 s) until `lockstep status` says the VM is protected.
#
# Idempotent: run it again after `docker-compose start node-a` (or any
# restart) to give restarted containers their veth again. It never
# recreates running containers: after --build, recreate them yourself
# (docker-compose up -d --force-recreate), one at a time if the VM must
# stay up. Compose/down.sh undoes it. See Compose/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN=${BIN:-.build/release}
build=0
[ "${1:-}" = --build ] && build=1

[ "$(id -u)" -eq 0 ] || { echo "error: run as root (dockerd, network namespaces)" >&2; exit 1; }
[ -r /dev/kvm ] || { echo "error: /dev/kvm is not usable here; Lockstep needs KVM" >&2; exit 1; }
if [ ! -x "$BIN/primary-vmm" ] || [ ! -f Guest/build/kvstore.elf ]; then
  echo "== no binaries in $BIN: make build (Debian packages, guests, static release binaries)"
  make build
fi

echo "== dockerd"
bash scripts/dockerd.sh
eval "$(bash scripts/dockerd.sh env)"
export DOCKER_HOST

# The values of Compose/.env this script needs, unless the shell set them
# (docker-compose reads the file itself).
while IFS='=' read -r key value; do
  if [[ $key =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ -z "${!key:-}" ]; then printf -v "$key" '%s' "$value"; fi
done < <(grep -v '^[[:space:]]*#' Compose/.env)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-lockstep}
export LOCKSTEP_COMPOSE_IMAGE=${LOCKSTEP_COMPOSE_IMAGE:-lockstep:latest}   # for build-image.sh
export LOCKSTEP_COMPOSE_BASE=${LOCKSTEP_COMPOSE_BASE:-lockstep-base:bookworm}
IMAGE=$LOCKSTEP_COMPOSE_IMAGE
certs=${LOCKSTEP_COMPOSE_CERTS:-./certs}
[[ $certs == /* ]] || certs=$root/Compose/${certs#./}

echo "== image $IMAGE"
if [ "$build" -eq 1 ] || ! /usr/bin/docker image inspect "$IMAGE" >/dev/null 2>&1; then
  bash Compose/build-image.sh "$BIN"
else
  echo "image $IMAGE exists (Compose/up.sh --build makes it again)"
fi

echo "== certificates in $certs"
if [ -f "$certs/node-c/cert.pem" ] && [ -f "$certs/operator/cert.pem" ]; then
  echo "present"
else
  env -i PATH="$PATH" "$BIN/lockstep" certs init --dir "$certs" --vmms node-a,node-b,node-c --arbiter arbiter --operators operator |
    tail -n 1
fi

echo "== docker-compose up -d"
(cd Compose && docker-compose up -d)
echo "== network"
bash Compose/network.sh attach

echo "== waiting for the VM to be protected (at most 120 s)"
client=$(cd Compose && docker-compose ps -q client)
for _ in $(seq 240); do
  if /usr/bin/docker exec "$client" lockstep status >/dev/null 2>&1; then break; fi
  sleep 0.5
done
/usr/bin/docker exec "$client" lockstep status || true
net=${LOCKSTEP_COMPOSE_NET:-10.88.0}
cat <<EOF

export DOCKER_HOST=$DOCKER_HOST
cd Compose
docker-compose exec client redis-cli -h $net.100 SET greeting hello
docker-compose exec client lockstep status
docker-compose kill -s SIGKILL node-a       # and watch node-b go live, node-c join by clone
docker-compose start node-a && ./up.sh      # node-a back (its veth again), as a standby
./down.sh                                   # everything away (--stop-dockerd: dockerd too)
EOF
