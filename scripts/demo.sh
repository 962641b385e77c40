#!/usr/bin/env bash
# The demo: a Redis-protocol key-value store in a VM under KVM, with a
# backup replaying its every input over mutual TLS and an arbiter; redis-cli
# writes, the primary is killed with SIGKILL, the backup goes live and the
# same data reads back from it; the old primary, restarted, rejoins as the
# backup by cloning the running VM, and the pair is protected again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
PORT=${LOCKSTEP_DEMO_PORT:-7379}
REPLICATION=${LOCKSTEP_DEMO_REPLICATION_PORT:-7380}
ARBITER=${LOCKSTEP_DEMO_ARBITER_PORT:-7381}
BACKUP_REPLICATION=${LOCKSTEP_DEMO_BACKUP_REPLICATION_PORT:-7382}
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
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b --arbiter arbiter --operators operator | tail -2

say "2. The arbiter; the primary claims the VM there, boots kvstore and waits for its backup"
"$BIN/arbiter" --listen "127.0.0.1:$ARBITER" --state-dir "$work/arbiter" --tls-dir "$work/certs/arbiter" \
  >"$work/arbiter.log" 2>&1 &
pids+=($!)
arbiter=$!
wait_for "$work/arbiter.log" "listening"
"$BIN/primary-vmm" --vm demo --guest Guest/build/kvstore.elf --memory 128M \
  --disk "$work/a.img" --disk-size 16M --serve "127.0.0.1:$PORT" --arbiter "127.0.0.1:$ARBITER" \
  --replication "127.0.0.1:$REPLICATION" --tls-dir "$work/certs/node-a" >"$work/primary.log" 2>&1 &
pids+=($!)
primary=$!
wait_for "$work/primary.log" "waiting for a backup"
"$BIN/backup-vmm" --vm demo --guest Guest/build/kvstore.elf --arbiter "127.0.0.1:$ARBITER" \
  --serve "127.0.0.1:$PORT" --replication "127.0.0.1:$BACKUP_REPLICATION" --tls-dir "$work/certs/node-b" --disk "$work/b.img" >"$work/backup.log" 2>&1 &
pids+=($!)
backup=$!
wait_for "$work/primary.log" "kvstore ready"
grep -hoE "claimed the VM at the arbiter|backup attached|attached to the primary|serving clients" \
  "$work/primary.log" "$work/backup.log" | sort -u
status() { echo "lockstep status>"; "$BIN/lockstep" status --arbiter "127.0.0.1:$ARBITER" --vm demo \
  --tls-dir "$work/certs/operator" "$@" || true; }
status

say "3. redis-cli against the VM (every reply waited for the backup's acknowledgement)"
cli PING
cli SET greeting "hello from a fault-tolerant VM"
cli GET greeting
cli INCRBY visits 41
cli INCR visits
cli RPUSH queue a b c
cli HSET user:1 name Ada lang Swift
cli DBSIZE

say "4. kill -9 the primary: the backup asks the arbiter, replays what it received and goes live"
kill -9 "$primary"
wait "$primary" 2>/dev/null || true
start=$(date +%s%N)
for _ in $(seq 200); do
  [ "$(redis-cli -p "$PORT" PING 2>/dev/null)" = PONG ] && break
  sleep 0.01
done
echo "the service answered again after $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -hoE "primary suspected: .*asking the arbiter|won generation [0-9]+ at the arbiter|LIVE: .*" "$work/backup.log" \
  | cut -c1-150
status --json

say "5. The same data, read back from the new primary"
cli GET greeting
cli GET visits
cli LRANGE queue 0 -1
cli HGETALL user:1
cli INCR visits

say "6. Restart node A with its own command line: the VM is live on B, so A joins it by cloning"
start_a() {
  "$BIN/primary-vmm" --vm demo --guest Guest/build/kvstore.elf --memory 128M \
    --disk "$work/a.img" --disk-size 16M --serve "127.0.0.1:$PORT" --arbiter "127.0.0.1:$ARBITER" \
    --replication "127.0.0.1:$REPLICATION" --tls-dir "$work/certs/node-a" >"$work/$1.log" 2>&1 &
  pids+=($!)
}
start_a primary2
for _ in $(seq 200); do
  "$BIN/lockstep" status --arbiter "127.0.0.1:$ARBITER" --vm demo --tls-dir "$work/certs/operator" --json \
    2>/dev/null | grep -q '"protected": true' && break
  sleep 0.05
done
wait_for "$work/primary2.log" "clone installed"
grep -hoE "joining it as a backup|clone installed.*" "$work/primary2.log" | cut -c1-120
grep -hoE "clone: the new backup holds the VM.*" "$work/backup.log" | cut -c1-160
status
cli INCR visits

say "7. lockstep poweroff: both stop; the backup replayed to the primary's exact final state"
"$BIN/lockstep" poweroff --arbiter "127.0.0.1:$ARBITER" --vm demo --tls-dir "$work/certs/operator"
wait "$backup" || true
for _ in $(seq 100); do grep -q "replay reached" "$work/primary2.log" && break; sleep 0.05; done
grep -hoE "VM stopped after going live.*|replay reached the primary's final state exactly" \
  "$work/backup.log" "$work/primary2.log" | cut -c1-160
status
kill -TERM "$arbiter"
echo
echo "Done."
