#!/usr/bin/env bash
# Tests/Integration/replication/run.sh — record/replay and the logging
# channel with the kvstore guest under a real redis-benchmark load:
#  1. offline: primary-vmm --record-file under load, stopped by SIGTERM;
#     `lockstep replay` reproduces the identical exit trace and memory hash;
#  2. live: primary + backup over mutual TLS on loopback under load; after
#     the primary stops, the backup's exits, trace and memory hash equal
#     the primary's, and every acknowledged SET is readable afterwards from
#     the saved disk.
# Random free ports on 127.0.0.1; every wait bounded. Prints "N passed, M failed".
set -u
cd "$(dirname "$0")/../../.."
bash scripts/install-deps.sh redis-tools >/dev/null || { echo "cannot install redis-tools"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
[ -x "$BIN/primary-vmm" ] && [ -x "$BIN/backup-vmm" ] && [ -x "$BIN/lockstep" ] || BIN=.build/release
GUEST=Guest/build/kvstore.elf
work=$(mktemp -d /tmp/lockstep-replication-test.XXXXXX)
pids=()
passed=0
failed=0
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

check() { # name condition-exit-status detail
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1: $3"
  fi
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # file text seconds
  for _ in $(seq $(( $3 * 20 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
wait_exit() { # pid seconds
  for _ in $(seq $(( $2 * 20 ))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}
digests() { grep -oE "(VM stopped|replay reached).*" "$1" | grep -oE "exits=[0-9]+|trace=[0-9a-f]+|memory=[0-9a-f]+" | paste -sd' '; }

"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b >/dev/null

# 1. Offline record -> replay under load.
service=$(port)
"$BIN/primary-vmm" --vm rec --guest "$GUEST" --memory 128M --standalone --serve "127.0.0.1:$service" \
  --record-file "$work/run.log" --verify-registers >"$work/record.out" 2>&1 &
pid=$!; pids+=("$pid")
wait_for "$work/record.out" "kvstore ready" 30
timeout 120 redis-benchmark -p "$service" -c 20 -n 3000 -t set,get,incr,lpush,hset -q >"$work/bench1.txt" 2>&1
check "redis-benchmark ran against the recording VM" $? "$(tail -3 "$work/bench1.txt")"
kill -TERM "$pid"; wait_exit "$pid" 20
"$BIN/lockstep" replay --guest "$GUEST" --log "$work/run.log" >"$work/replay.out" 2>&1
status=$?
grep -q "result: identical to the recording" "$work/replay.out"
check "offline replay of the loaded run is identical (exit trace, memory hash, registers at every input)" \
  $(( status == 0 && $? == 0 ? 0 : 1 )) "$(cat "$work/replay.out")"
recorded=$(grep -oE "trace=[0-9a-f]+ memory=[0-9a-f]+" "$work/record.out" | tail -1)
replayed="trace=$(grep -oE 'exit trace hash: [0-9a-f]+' "$work/replay.out" | awk '{print $4}') memory=$(grep -oE 'final memory hash: [0-9a-f]+' "$work/replay.out" | awk '{print $4}')"
[ -n "$recorded" ] && [ "$recorded" = "$replayed" ]
check "recorded and replayed hashes are printed equal ($recorded)" $? "recorded '$recorded' replayed '$replayed'"

# A corrupted copy of the log is refused at its first bad frame.
python3 - "$work/run.log" "$work/bad.log" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2] ^= 0xFF
open(sys.argv[2], "wb").write(data)
PY
"$BIN/lockstep" replay --guest "$GUEST" --log "$work/bad.log" >"$work/bad.out" 2>&1
status=$?
grep -q "DIVERGENCE.*checksum" "$work/bad.out"
check "a corrupted log is reported, not replayed" $(( status == 3 && $? == 0 ? 0 : 1 )) "$(tail -2 "$work/bad.out")"

# 2. Live primary + backup under load.
service=$(port); replication=$(port)
"$BIN/primary-vmm" --vm live --guest "$GUEST" --memory 128M --disk "$work/a.img" --disk-size 16M \
  --serve "127.0.0.1:$service" --replication "127.0.0.1:$replication" --tls-dir "$work/certs/node-a" \
  >"$work/primary.out" 2>&1 &
primary=$!; pids+=("$primary")
wait_for "$work/primary.out" "waiting for a backup" 30
"$BIN/backup-vmm" --vm live --guest "$GUEST" --primary "127.0.0.1:$replication" --tls-dir "$work/certs/node-b" \
  --disk "$work/b.img" >"$work/backup.out" 2>&1 &
backup=$!; pids+=("$backup")
wait_for "$work/primary.out" "kvstore ready" 30
check "the primary started its guest once the backup attached" $? "$(tail -5 "$work/primary.out")"
timeout 120 redis-benchmark -p "$service" -c 20 -n 3000 -t set,get,incr,rpush,hset -q >"$work/bench2.txt" 2>&1
check "redis-benchmark through the Output Rule" $? "$(tail -3 "$work/bench2.txt")"
acknowledged=0
for i in $(seq 200); do
  [ "$(redis-cli -p "$service" SET "acked:$i" "value-$i")" = OK ] && acknowledged=$((acknowledged + 1))
done
check "200 acknowledged SETs" $(( acknowledged == 200 ? 0 : 1 )) "$acknowledged acknowledged"
[ "$(redis-cli -p "$service" SAVE)" = OK ]
check "SAVE on the replicated VM" $? ""

# SIGSTOP the backup: the guest keeps running (its SAVE reaches the
# primary's disk) while its replies are held; SIGCONT releases them.
kill -STOP "$backup"
# One pipelined write of SET and SAVE; the replies are read after SIGCONT.
python3 - "$service" "guest-kept-running-$$" >"$work/held1.txt" 2>&1 <<'PY' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
value = sys.argv[2].encode()
s.sendall(b"*3\r\n$3\r\nSET\r\n$13\r\nwhile-stopped\r\n$%d\r\n%s\r\n*1\r\n$4\r\nSAVE\r\n" % (len(value), value))
reply = b""
while reply.count(b"\r\n") < 2:
    chunk = s.recv(64)
    if not chunk:
        break
    reply += chunk
print(reply.decode().replace("\r\n", " ").strip())
PY
held=$!
ran=1
for _ in $(seq 100); do
  grep -aq "guest-kept-running-$$" "$work/a.img" && { ran=0; break; }
  sleep 0.05
done
check "with the backup stopped, the guest still ran (its SAVE is on the primary's disk)" $ran "not on disk"
kill -0 "$held" 2>/dev/null && [ ! -s "$work/held1.txt" ]
check "with the backup stopped, no reply left the primary" $? "$(cat "$work/held1.txt")"
kill -CONT "$backup"
wait_exit "$held" 10
[ "$(cat "$work/held1.txt")" = "+OK +OK" ]
check "SIGCONT released the held replies" $? "$(cat "$work/held1.txt")"
kill -TERM "$primary"; wait_exit "$primary" 30
wait_exit "$backup" 30
grep -q "replay reached the primary's final state exactly" "$work/backup.out"
check "the backup reached the primary's exact final state" $? "$(tail -3 "$work/backup.out")"
p=$(digests "$work/primary.out"); b=$(digests "$work/backup.out")
[ -n "$p" ] && [ "$p" = "$b" ]
check "same exits, exit trace and memory hash on both ($p)" $? "primary '$p' backup '$b'"
cmp -s "$work/a.img" "$work/b.img"
check "the backup wrote the same disk as the primary" $? "disks differ"

# Every acknowledged write is on the backup's own disk: boot it standalone.
service=$(port)
"$BIN/primary-vmm" --vm live --guest "$GUEST" --memory 128M --disk "$work/b.img" --standalone \
  --serve "127.0.0.1:$service" >"$work/restart.out" 2>&1 &
pid=$!; pids+=("$pid")
wait_for "$work/restart.out" "kvstore ready" 30
missing=0
for i in $(seq 200); do
  [ "$(redis-cli -p "$service" GET "acked:$i")" = "value-$i" ] || missing=$((missing + 1))
done
check "all 200 acknowledged SETs readable from the backup's disk" $(( missing == 0 ? 0 : 1 )) "$missing missing"
kill -TERM "$pid"; wait_exit "$pid" 20

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
