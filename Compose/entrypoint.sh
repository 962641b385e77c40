#!/bin/bash
# lockstep-entrypoint — the entrypoint of the Lockstep image: waits (bounded)
# for what the command needs, then execs it.
#
#   WAIT_ADDRESS=10.88.0.2/24  wait until this address is on an
#       interface that is up (a container run with --network none gets its
#       veth from Compose/network.sh after it started). With a normal docker
#       network, leave it unset: nothing to wait for.
#   WAIT_PRIMARY=true  (backup-vmm) then wait until the arbiter
#       names a primary for LOCKSTEP_VM (asked at LOCKSTEP_ARBITER with the
#       certificates in LOCKSTEP_TLS_DIR): backup-vmm looks its primary up
#       there once, at start, and stops if there is none yet.
#   WAIT_TIMEOUT=120  seconds each wait may take; then it fails
#       (exit 1) and says what it waited for.
#
# They are not LOCKSTEP_ variables, which the Lockstep binaries read as flags
# (and warn about when they have no such flag, e.g. under `docker exec`);
# they are removed from the environment of the command all the same.
set -u
address=${WAIT_ADDRESS:-}
wait_primary=${WAIT_PRIMARY:-false}
timeout=${WAIT_TIMEOUT:-120}
unset WAIT_ADDRESS WAIT_PRIMARY WAIT_TIMEOUT
say() { echo "lockstep-entrypoint: $*" >&2; }

if [ "$#" -eq 0 ]; then
  set -- lockstep --help
fi

if [ -n "$address" ]; then
  ip=${address%/*}
  deadline=$((SECONDS + timeout))
  device=
  while :; do
    # The interface that holds $ip, if any, and whether it is up.
    device=$(ip -o -4 address show 2>/dev/null | awk -v ip="$ip" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }')
    if [ -n "$device" ] && ip -o link show dev "$device" 2>/dev/null | grep -q 'LOWER_UP'; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "no interface with $address came up within $timeout s (a container with --network none needs" \
        "its veth: Compose/network.sh attach); interfaces: $(ip -o -4 address show 2>/dev/null | awk '{print $2, $4}' | paste -sd' ' -)"
      exit 1
    fi
    sleep 0.1
  done
  say "$address is up on $device"
fi

case "$wait_primary" in
  true | 1 | yes | on)
    vm=${LOCKSTEP_VM:-} arbiter=${LOCKSTEP_ARBITER:-} tls=${LOCKSTEP_TLS_DIR:-}
    if [ -z "$vm" ] || [ -z "$arbiter" ] || [ -z "$tls" ]; then
      say "WAIT_PRIMARY needs LOCKSTEP_VM, LOCKSTEP_ARBITER and LOCKSTEP_TLS_DIR"
      exit 1
    fi
    deadline=$((SECONDS + timeout))
    said=0
    while :; do
      # The arbiter's record (node status is for operators; the record is
      # enough), asked with a clean environment: the flags say it all.
      json=$(env -i PATH="$PATH" timeout 10 lockstep status --arbiter "$arbiter" --vm "$vm" \
        --tls-dir "$tls" --json 2>/dev/null)
      primary=$(printf '%s' "$json" | sed -n 's/.*"primary" *: *"\([^"]*\)".*/\1/p' | head -1)
      [ -n "$primary" ] && break
      if [ "$said" -eq 0 ]; then
        say "waiting for the arbiter at $arbiter to name a primary for VM $vm"
        said=1
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "the arbiter at $arbiter named no primary for VM $vm within $timeout s (is the primary up?): $json"
        exit 1
      fi
      sleep 0.5
    done
    say "the arbiter names $primary as the primary of VM $vm"
    ;;
esac

exec "$@"
