#!/usr/bin/env bash
# The demo: a Redis-protocol key-value store in a VM under KVM, with a
# backup replaying its every input over mutual TLS; redis-cli talks to it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release
PORT=${LOCKSTEP_DEMO_PORT:-7379}
REPLICATION=${LOCKSTEP_DEMO_REPLICATION_PORT:-7380}
[ -x "$BIN/primary-vmm" ] || { echo "run 'make build' first" >&2; exit 1; }
[ -r /dev/kvm ] || { echo "error: /dev/kvm is not usable here; Lockstep needs KVM" >&2; exit 1; }
bash scripts/install-deps.sh redis-tools >/dev/null

work=$(mktemp -d /tmp/lockstep-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # file text
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2':" >&2; cat "$1" >&2; exit 1
}
cli() { echo "redis-cli> $*"; redis-cli -p "$PORT" "$@"; }

say "1. Certificates for the cluster (lockstep certs init)"
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b | tail -2

say "2. The primary boots kvstore and waits for its backup; the backup attaches"
"$BIN/primary-vmm" --vm demo --guest Guest/build/kvstore.elf --memory 128M \
  --disk "$work/a.img" --disk-size 16M --serve "127.0.0.1:$PORT" \
  --replication "127.0.0.1:$REPLICATION" --tls-dir "$work/certs/node-a" >"$work/primary.log" 2>&1 &
pids+=($!)
primary=$!
wait_for "$work/primary.log" "waiting for a backup"
"$BIN/backup-vmm" --vm demo --guest Guest/build/kvstore.elf --primary "127.0.0.1:$REPLICATION" \
  --tls-dir "$work/certs/node-b" --disk "$work/b.img" >"$work/backup.log" 2>&1 &
pids+=($!)
backup=$!
wait_for "$work/primary.log" "kvstore ready"
grep -hoE "backup attached|attached to the primary|serving clients" "$work/primary.log" "$work/backup.log" | sort -u

say "3. redis-cli against the VM (every reply waited for the backup's acknowledgement)"
cli PING
cli SET greeting "hello from a fault-tolerant VM"
cli GET greeting
cli INCRBY visits 41
cli INCR visits
cli RPUSH queue a b c
cli LRANGE queue 0 -1
cli HSET user:1 name Ada lang Swift
cli HGETALL user:1
cli SET session xyz PX 1500
cli PTTL session
cli SAVE
cli DBSIZE

say "4. Stop the primary: the backup has replayed the very same execution"
kill -TERM "$primary"
wait "$primary" || true
wait "$backup" || true
grep -hoE "replication: .*|VM stopped: [^;]*|replay reached the primary's final state exactly" \
  "$work/primary.log" "$work/backup.log" | cut -c1-160
for node in primary backup; do
  echo "  $node: $(grep -hoE "VM stopped.*|replay reached.*" "$work/$node.log" | grep -oE "exits=[0-9]+|trace=[0-9a-f]+|memory=[0-9a-f]+" | paste -sd' ')"
done

say "5. Restart from the saved disk (standalone): the data is still there"
"$BIN/primary-vmm" --vm demo --guest Guest/build/kvstore.elf --memory 128M --disk "$work/a.img" \
  --serve "127.0.0.1:$PORT" --standalone >"$work/restart.log" 2>&1 &
pids+=($!)
wait_for "$work/restart.log" "kvstore ready"
cli GET greeting
cli GET visits
cli LRANGE queue 0 -1
echo
echo "Done. (Failover with an arbiter comes with the next issues.)"
