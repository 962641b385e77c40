#!/usr/bin/env bash
# Replication benchmark (the record/replay and logging-channel issue):
# kvstore with a backup attached vs standalone, the latency the Output Rule
# adds beside a plain loopback TLS round trip, log bytes per request, idle
# log traffic, backup lag under load, replay speed vs record speed.
# Everything on 127.0.0.1; every loop bounded. Results: bench-results/replication.txt
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
PINGS=${PINGS:-3000}
IDLE_SECONDS=${IDLE_SECONDS:-10}
MEMORY=${MEMORY:-256M}
BIN=.build/release
OUT=bench-results/replication.txt
mkdir -p bench-results

bash scripts/install-deps.sh redis-tools python3 >/dev/null
[ -x "$BIN/primary-vmm" ] && [ -x "$BIN/backup-vmm" ] && [ -x "$BIN/lockstep" ] || swift build -c release
make -s -C Guest all >/dev/null

work=$(mktemp -d /tmp/lockstep-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # file text seconds
  for _ in $(seq $(( $3 * 20 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# start MODE SERVICE -> sets PRIMARY_PID, BACKUP_PID, PRIMARY_LOG
start() {
  local mode=$1 service=$2 extra=${3:-}
  PRIMARY_LOG=$work/primary-$service.log
  BACKUP_PID=
  rm -f "$work"/*.img
  if [ "$mode" = standalone ]; then
    "$BIN/primary-vmm" --vm kv --guest Guest/build/kvstore.elf --memory "$MEMORY" --standalone \
      --serve "127.0.0.1:$service" $extra >"$PRIMARY_LOG" 2>&1 &
    PRIMARY_PID=$!
  else
    local replication; replication=$(port)
    "$BIN/primary-vmm" --vm kv --guest Guest/build/kvstore.elf --memory "$MEMORY" \
      --serve "127.0.0.1:$service" --replication "127.0.0.1:$replication" --tls-dir "$work/certs/node-a" \
      >"$PRIMARY_LOG" 2>&1 &
    PRIMARY_PID=$!
    wait_for "$PRIMARY_LOG" "waiting for a backup" 20
    "$BIN/backup-vmm" --vm kv --guest Guest/build/kvstore.elf --primary "127.0.0.1:$replication" \
      --tls-dir "$work/certs/node-b" >"$work/backup-$service.log" 2>&1 &
    BACKUP_PID=$!
    pids+=("$BACKUP_PID")
  fi
  pids+=("$PRIMARY_PID")
  wait_for "$PRIMARY_LOG" "kvstore ready" 30
}

stop() {
  kill -TERM "$PRIMARY_PID" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$PRIMARY_PID" 2>/dev/null || break; sleep 0.05; done
  if [ -n "$BACKUP_PID" ]; then
    kill -TERM "$BACKUP_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$BACKUP_PID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$BACKUP_PID" 2>/dev/null || true
  fi
}

field() { grep -o "$2=[0-9.]*" "$1" | tail -1 | cut -d= -f2; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A rps
declare -A samples
echo "== (a) throughput: redis-benchmark -c $CLIENTS -n $REQUESTS -t set,get,incr -P 1, $ROUNDS interleaved rounds"
for round in $(seq "$ROUNDS"); do
  for mode in standalone replicated; do
    service=$(port)
    start "$mode" "$service"
    csv=$(redis-benchmark -p "$service" -c "$CLIENTS" -n "$REQUESTS" -t set,get,incr -P 1 -q --csv 2>/dev/null)
    for test in SET GET INCR; do
      value=$(echo "$csv" | grep "\"$test\"" | cut -d, -f2 | tr -d '"')
      rps[$mode,$test]+="$value "
    done
    stop
    if [ "$mode" = replicated ]; then
      samples[lag_p99]+="$(field "$PRIMARY_LOG" lag_p99_us) "
      samples[lag_p50]+="$(field "$PRIMARY_LOG" lag_p50_us) "
      samples[log_bytes]+="$(field "$PRIMARY_LOG" log_bytes) "
    fi
    echo "   round $round $mode: $(echo "$csv" | tr '\n' ' ')"
  done
done

echo "== (b) latency: $PINGS sequential PINGs, and a plain TLS 1.3 echo round trip"
for round in $(seq "$ROUNDS"); do
  for mode in standalone replicated; do
    service=$(port)
    start "$mode" "$service"
    samples[rtt_$mode]+="$(python3 bench/rtt.py redis "$service" "$PINGS") ;"
    stop
  done
  tls=$(port)
  python3 bench/rtt.py tls-server "$tls" "$work/certs/node-a" &
  server=$!
  samples[rtt_tls]+="$(python3 bench/rtt.py tls-client "$tls" "$work/certs/node-b" "$PINGS") ;"
  wait "$server" || true
done

echo "== (c) idle log traffic over $IDLE_SECONDS s"
service=$(port)
start replicated "$service"
sleep "$IDLE_SECONDS"
stop
idle_bytes=$(field "$PRIMARY_LOG" log_bytes)

echo "== (d) replay speed vs record speed (offline log of a redis-benchmark run)"
service=$(port)
start standalone "$service" "--record-file $work/record.log"
record_start=$(date +%s.%N)
redis-benchmark -p "$service" -c "$CLIENTS" -n "$REQUESTS" -t set,get,incr -P 1 -q >/dev/null 2>&1
record_seconds=$(echo "$(date +%s.%N) - $record_start" | bc)
stop
record_exits=$(field "$PRIMARY_LOG" exits)
replay_start=$(date +%s.%N)
"$BIN/lockstep" replay --guest Guest/build/kvstore.elf --log "$work/record.log" >"$work/replay.txt" 2>&1 || true
replay_seconds=$(echo "$(date +%s.%N) - $replay_start" | bc)
replay_result=$(grep '^result' "$work/replay.txt" || echo "result: (none)")

pct() { echo "$1" | tr ';' '\n' | grep -o "$2=[0-9]*" | cut -d= -f2 | median; }
{
  echo "Lockstep replication benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD)"
  echo "requests per run: $REQUESTS, clients: $CLIENTS, rounds: $ROUNDS (medians), guest memory $MEMORY"
  echo
  printf '%-34s %12s %12s %8s\n' "redis-benchmark -P 1 (req/s)" standalone replicated ratio
  for test in SET GET INCR; do
    s=$(echo "${rps[standalone,$test]}" | tr ' ' '\n' | grep . | median)
    r=$(echo "${rps[replicated,$test]}" | tr ' ' '\n' | grep . | median)
    printf '%-34s %12.0f %12.0f %8.3f\n' "$test" "$s" "$r" "$(echo "$r / $s" | bc -l)"
  done
  echo
  printf '%-34s %10s %10s\n' "round trip, one PING at a time" p50_us p99_us
  for mode in standalone replicated tls; do
    printf '%-34s %10s %10s\n' "$mode" "$(pct "${samples[rtt_$mode]}" p50_us)" "$(pct "${samples[rtt_$mode]}" p99_us)"
  done
  sp50=$(pct "${samples[rtt_standalone]}" p50_us); rp50=$(pct "${samples[rtt_replicated]}" p50_us)
  sp99=$(pct "${samples[rtt_standalone]}" p99_us); rp99=$(pct "${samples[rtt_replicated]}" p99_us)
  printf '%-34s %10s %10s\n' "added by the Output Rule" "$(echo "$rp50 - $sp50" | bc)" "$(echo "$rp99 - $sp99" | bc)"
  echo
  total=$(( 3 * REQUESTS ))
  bytes=$(echo "${samples[log_bytes]}" | tr ' ' '\n' | grep . | median)
  echo "log bytes per request (SET/GET/INCR mix): $(echo "$bytes / $total" | bc -l | cut -c1-6)"
  echo "idle log traffic: $idle_bytes bytes in ${IDLE_SECONDS}s = $(echo "$idle_bytes * 8 / $IDLE_SECONDS / 1000000" | bc -l | cut -c1-6) Mbit/s"
  echo "backup execution lag under full load: p50 $(echo "${samples[lag_p50]}" | tr ' ' '\n' | grep . | median) us, p99 $(echo "${samples[lag_p99]}" | tr ' ' '\n' | grep . | median) us (goal p99 <= 10 ms)"
  echo "record: ${record_exits} exits while serving $total requests in ${record_seconds}s; replay of that log: ${replay_seconds}s ($replay_result)"
} | tee "$OUT"
