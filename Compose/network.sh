#!/usr/bin/env bash
# Compose/network.sh attach|detach|down|show [CONTAINER...] — the network of
# the Compose cluster when its containers run with `network_mode: none` (as
# here, where dockerd runs with --bridge none and must not touch the host's
# network): a network namespace ($LOCKSTEP_NETNS, default lockstep-net)
# holds a bridge, and each container gets a veth into it, named eth0 on its
# side, with the address its WAIT_ADDRESS gives (in
# Compose/docker-compose.yml: arbiter .1, node-a .2, node-b .3, node-c .4,
# client .9 of 10.88.0.0/24; the service VIP .100 moves between the nodes).
# Nothing is added to the root namespace: the veth is made inside the
# bridge's namespace and its other end moved straight into the container's
# (`ip link add ... netns PID`, PID from `docker inspect`).
#
#   attach [C...]  gives each container (default: every running container of
#                  the Compose project $COMPOSE_PROJECT_NAME, default
#                  lockstep) its veth; the arbiter first. Idempotent: a
#                  container that has its address is left alone; one that
#                  was restarted (a new network namespace) gets a new veth.
#   detach [C...]  removes the containers' veths (as a pulled cable).
#   down           deletes the namespace, the bridge and every veth.
#   show           the bridge's ports and the containers' addresses.
#
# With a normal docker network (a dockerd with its bridge) none of this is
# needed: see Compose/README.md.
set -euo pipefail

NETNS=${LOCKSTEP_NETNS:-lockstep-net}
PROJECT=${COMPOSE_PROJECT_NAME:-lockstep}
DOCKER=${DOCKER:-/usr/bin/docker}
BRIDGE=br0

die() { echo "network.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"

# The project's running containers, the arbiter first (nodes look it up
# as soon as their address is up).
project_containers() {
  "$DOCKER" ps --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}} {{.Names}}' |
    sort -k1,1 | awk '{ print ($1 == "arbiter" ? 0 : 1), $2 }' | sort -s -k1,1 | awk '{print $2}'
}
# address_of CONTAINER: its WAIT_ADDRESS (ADDRESS/PREFIX).
address_of() {
  "$DOCKER" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" |
    sed -n 's/^WAIT_ADDRESS=//p' | head -1
}
pid_of() { "$DOCKER" inspect -f '{{if .State.Running}}{{.State.Pid}}{{end}}' "$1"; }
# The bridge port of an address: p<last octet> (unique in a /24).
port_of() { local ip=${1%/*}; echo "p${ip##*.}"; }
in_container() { local pid=$1; shift; nsenter -t "$pid" -n "$@"; }

ensure_bridge() {
  if ! ip netns list | awk -v ns="$NETNS" '$1 == ns { found = 1 } END { exit !found }'; then
    ip netns add "$NETNS"
  fi
  ip -n "$NETNS" link set lo up
  if ! ip -n "$NETNS" link show "$BRIDGE" >/dev/null 2>&1; then
    ip -n "$NETNS" link add "$BRIDGE" type bridge
    # No STP delay, no multicast snooping surprises: a plain hub-like bridge.
    ip -n "$NETNS" link set "$BRIDGE" type bridge forward_delay 0 stp_state 0 mcast_snooping 0
  fi
  ip -n "$NETNS" link set "$BRIDGE" up
}

attach_one() {
  local container=$1 address addresses pid ip port
  address=$(address_of "$container") || die "no container $container"
  [ -n "$address" ] || die "$container has no WAIT_ADDRESS: which address should it get?"
  [[ $address == */* ]] || address=$address/24
  pid=$(pid_of "$container")
  [ -n "$pid" ] && [ "$pid" -gt 0 ] || die "$container is not running"
  ip=${address%/*}
  port=$(port_of "$address")
  # (Output captured first: grep -q would stop reading early and, with
  # pipefail, fail the pipeline by SIGPIPE when eth0 also has the VIP.)
  addresses=$(in_container "$pid" ip -o -4 address show dev eth0 2>/dev/null || true)
  if [[ $addresses == *"inet $ip/"* ]]; then
    echo "$container: $address (attached already)"
    return 0
  fi
  # A port left from the container's previous life (its namespace is gone,
  # which deletes the pair; this is for a half-done attach), or a stray eth0.
  ip -n "$NETNS" link del "$port" 2>/dev/null || true
  in_container "$pid" ip link del eth0 2>/dev/null || true
  ip -n "$NETNS" link add "$port" type veth peer name eth0 netns "$pid"
  ip -n "$NETNS" link set "$port" master "$BRIDGE" up
  in_container "$pid" ip link set lo up
  in_container "$pid" ip address add "$address" dev eth0
  in_container "$pid" ip link set eth0 up
  echo "$container: $address on eth0 (bridge port $port in netns $NETNS)"
}

detach_one() {
  local container=$1 address pid
  address=$(address_of "$container") || die "no container $container"
  [ -n "$address" ] || die "$container has no WAIT_ADDRESS"
  ip -n "$NETNS" link del "$(port_of "$address")" 2>/dev/null || true
  pid=$(pid_of "$container")
  [ -n "$pid" ] && in_container "$pid" ip link del eth0 2>/dev/null || true
  echo "$container: detached"
}

command=${1:-}
[ "$#" -gt 0 ] && shift
case "$command" in
  attach)
    ensure_bridge
    if [ "$#" -eq 0 ]; then
      mapfile -t containers < <(project_containers)
      [ "${#containers[@]}" -gt 0 ] || die "no running containers of Compose project $PROJECT"
      set -- "${containers[@]}"
    fi
    for container in "$@"; do attach_one "$container"; done
    ;;
  detach)
    if [ "$#" -eq 0 ]; then
      mapfile -t containers < <(project_containers)
      set -- "${containers[@]}"
    fi
    for container in "$@"; do detach_one "$container"; done
    ;;
  down)
    ip netns del "$NETNS" 2>/dev/null && echo "netns $NETNS deleted" || echo "no netns $NETNS"
    ;;
  show)
    ip -n "$NETNS" -br link show master "$BRIDGE" 2>/dev/null || die "no netns $NETNS"
    for container in $(project_containers); do
      pid=$(pid_of "$container")
      echo "$container: $(in_container "$pid" ip -o -4 address show 2>/dev/null | awk '$2 != "lo" {print $2, $4}' | paste -sd' ' -)"
    done
    ;;
  *)
    echo "usage: $0 attach|detach|down|show [CONTAINER...]" >&2
    exit 2
    ;;
esac
