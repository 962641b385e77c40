#!/usr/bin/env bash
# Tests/Integration/failover/run.sh — failover with real processes and
# SIGKILL on loopback: an arbiter, a primary-vmm and a backup-vmm running
# the kvstore guest, clients speaking RESP.
#  1. kill -9 the primary under a write load: the backup goes live on the
#     same service address and every acknowledged write is readable there;
#  2. kill -9 the backup: the primary goes on alone, writes keep succeeding;
#  3. kill -9 and restart the arbiter: its records (generation, holder) stay;
#  4. forged, foreign, replayed (real ones captured) and malformed UDP heartbeats sent to the primary are
#     refused and counted, and the primary stays protected; `curl` of each
#     process's --metrics endpoint returns every listed series, the refusals
#     counted there too (every cluster's backup is configured by LOCKSTEP_
#     environment variables instead of flags);
#  5. `lockstep failover` hands the VM to the backup with its data;
#  6. `lockstep poweroff` stops both nodes (exit 0), no failover;
#  7. with the arbiter down, a primary that lost its backup neither goes on
#     alone nor releases output; once the arbiter is back it does both.
# Each test gets a fresh cluster (its own arbiter and state dir) except 3
# (continues 2) and 5 (continues 4). Random free ports on 127.0.0.1; every
# wait bounded; a trap kills every process started. Prints "N passed, M
# failed"; KEEP=1 keeps the work dir.
set -u
cd "$(dirname "$0")/../../.."
bash scripts/install-deps.sh redis-tools curl >/dev/null || { echo "cannot install redis-tools curl"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
for tool in primary-vmm backup-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
GUEST=Guest/build/kvstore.elf
work=$(mktemp -d /tmp/lockstep-failover-test.XXXXXX)
. Tests/Integration/lib/cluster.sh

"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b --arbiter arbiter --operators op >/dev/null \
  || { echo "lockstep certs init failed"; exit 1; }

# hb.py PORT KEYFILE VM: sends heartbeats to the primary's UDP port:
# 5 with a bad MAC (forged); 3 authentic ones from a sender or boot id the
# primary does not expect (foreign: "intruder", and "node-b" with another
# boot id); 3 real heartbeats of the backup captured on lo (AF_PACKET) and
# sent again (replayed); 2 that are not heartbeats (malformed).
cat >"$work/hb.py" <<'PY'
import hashlib, hmac, os, socket, struct, sys, time
port, keyfile, vm = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = bytes.fromhex(open(keyfile).read().strip())
assert len(key) == 32, "heartbeat key: 32 bytes expected"
def packet(sender, boot, seq, generation=1, flags=0, mac_key=key):
    body = b"LSHB" + bytes([1, flags, len(vm)]) + vm.encode() + bytes([len(sender)]) + sender.encode()
    body += struct.pack(">QQQQ", generation, boot, seq, time.monotonic_ns())
    return body + hmac.new(mac_key, body, hashlib.sha256).digest()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def send(p):
    s.sendto(p, ("127.0.0.1", port)); time.sleep(0.02)
# Capture three distinct real heartbeats sent to the primary's port.
sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sniffer.bind(("lo", 0))
sniffer.settimeout(0.5)
captured, deadline = [], time.monotonic() + 10
while len(captured) < 3 and time.monotonic() < deadline:
    try:
        frame = sniffer.recv(65535)
    except socket.timeout:
        continue
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 17:
        continue
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    if struct.unpack(">H", frame[udp + 2:udp + 4])[0] != port:
        continue
    payload = frame[udp + 8:]
    if payload.startswith(b"LSHB") and payload not in captured:
        captured.append(payload)
sniffer.close()
assert len(captured) == 3, "captured %d real heartbeats" % len(captured)
time.sleep(0.2)  # newer ones have been accepted meanwhile
for n in range(5):  # forged: a MAC under another key
    send(packet("node-b", int.from_bytes(os.urandom(8), "big") | 1, n + 1, mac_key=os.urandom(32)))
boot = int.from_bytes(os.urandom(8), "big") | 1
send(packet("intruder", boot, 1))     # authentic but not the peer: foreign
send(packet("intruder", boot, 2))     # foreign
send(packet("node-b", boot, 10**9))   # the peer's name, another boot id: foreign
for p in captured:                    # the backup's own, again: replayed
    send(p)
send(b"LSHB\x01\x00garbage")          # too short: malformed
send(os.urandom(90))                  # not a heartbeat: malformed
print("sent forged=5 foreign=3 replayed=3 malformed=2")
PY
# held.py PORT KEY VALUE SECONDS: one SET on one connection; prints the
# reply and how long it took, or "none" if none came within SECONDS.
cat >"$work/held.py" <<'PY'
import socket, sys, time
port, k, v, limit = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode(), float(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port), timeout=limit)
start = time.time()
s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
reply = b""
try:
    while not reply.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
except socket.timeout:
    pass
print("%s after %.0f ms" % (reply.decode().strip() or "none", (time.time() - start) * 1000), flush=True)
PY
start_arbiter() { # uses $dir, $arb
  spawn arbiter "$dir/arbiter.out" \
    "$BIN/arbiter" --listen "127.0.0.1:$arb" --state-dir "$dir/state" --tls-dir "$work/certs/arbiter" \
    --metrics "127.0.0.1:$metarb"
}
start_primary() {
  spawn primary "$dir/primary.out" \
    "$BIN/primary-vmm" --vm kv --guest "$GUEST" --memory 64M --serve "127.0.0.1:$svc" --disk "$dir/a.img" \
    --disk-size 16M --replication "127.0.0.1:$repa" --tls-dir "$work/certs/node-a" --arbiter "127.0.0.1:$arb" \
    --metrics "127.0.0.1:$meta"
}
# The backup is configured entirely by its environment (as in a container).
start_backup() {
  spawn backup "$dir/backup.out" env LOCKSTEP_VM=kv LOCKSTEP_GUEST="$GUEST" \
    LOCKSTEP_TLS_DIR="$work/certs/node-b" LOCKSTEP_DISK="$dir/b.img" LOCKSTEP_SERVE="127.0.0.1:$svc" \
    LOCKSTEP_REPLICATION="127.0.0.1:$repb" LOCKSTEP_ARBITER="127.0.0.1:$arb" LOCKSTEP_METRICS="127.0.0.1:$metb" \
    "$BIN/backup-vmm"
}
# metrics PORT -> $work/metrics.txt (the Prometheus text of that endpoint)
metrics() { curl -s --max-time 3 "http://127.0.0.1:$1/metrics" >"$work/metrics.txt" 2>&1; }
# has_series SERIES...: every series name (or name{labels}) is in $work/metrics.txt; prints the missing ones
has_series() {
  local missing=""
  for series in "$@"; do grep -qF -- "$series" "$work/metrics.txt" || missing="$missing $series"; done
  echo "$missing"; [ -z "$missing" ]
}
metric() { awk -v name="$1" '$1 == name { print $2 }' "$work/metrics.txt"; }  # SERIES -> value
# A fresh cluster NAME: arbiter, primary, backup, up and protected.
cluster() {
  dir="$work/$1"; mkdir -p "$dir"
  arb=$(port); svc=$(port); repa=$(port); repb=$(port); meta=$(port); metb=$(port); metarb=$(port)
  start_arbiter
  wait_for "$dir/arbiter.out" "listening on" 30 || { echo "     arbiter did not start: $(tail_of "$dir/arbiter.out")"; return 1; }
  start_primary
  wait_for "$dir/primary.out" "waiting for a backup" 60 || { echo "     primary did not start: $(tail_of "$dir/primary.out")"; return 1; }
  start_backup
  wait_for "$dir/primary.out" "kvstore ready" 60 && wait_for "$dir/backup.out" "attached to the primary" 30 \
    || { echo "     the backup did not attach: $(tail_of "$dir/primary.out") $(tail_of "$dir/backup.out")"; return 1; }
}
cli() { timeout 5 redis-cli -p "$svc" "$@" 2>/dev/null; }
# COUNT acknowledged SETs of PREFIX:I = vI, one connection each; prints how many were OK.
sets() {
  local ok=0 i
  for i in $(seq "$2"); do [ "$(cli SET "$1:$i" "v$i")" = OK ] && ok=$((ok + 1)); done
  echo "$ok"
}
# How many of COUNT keys PREFIX:I read back as vI (one pipelined connection).
readable() {
  local i
  for i in $(seq "$2"); do printf 'GET %s:%s\n' "$1" "$i"; done \
    | timeout 10 redis-cli -p "$svc" 2>/dev/null | awk '$0 == "v" NR { n++ } END { print n + 0 }'
}

# ------------------------------------------- 1. kill -9 the primary under load
echo "# 1. kill -9 the primary under a write load"
if cluster t1; then
  spawn load "$dir/load.out" python3 "$work/load.py" "$svc" "$dir/acks" 60 "$dir/stop" w
  for _ in $(seq 400); do [ "$(lines "$dir/acks")" -ge 300 ] && break; sleep 0.05; done
  kill -9 "$primary"
  killed_at=$(now)
  wait_for "$dir/backup.out" "LIVE: this node is the primary now" 30
  check "the backup went live after the primary's SIGKILL" $? "$(tail_of "$dir/backup.out" 6)"
  # Let the load run on the new primary until it has 300 more acknowledgements.
  base=$(lines "$dir/acks")
  for _ in $(seq 400); do [ $(( $(lines "$dir/acks") - base )) -ge 300 ] && break; sleep 0.05; done
  touch "$dir/stop"; wait_exit "$load" 15
  read -r before after first_ms pause_ms < <(timeout 30 python3 "$work/gap.py" "$dir/acks" "$killed_at" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
  [ "${after:-0}" -ge 100 ]
  check "writes succeed again on the same service address" $? "$after acknowledged after the kill; $(cat "$dir/load.out")"
  info "acknowledged writes: $before before the kill, $after after; first write acknowledged ${first_ms} ms after the kill, longest pause between acknowledgements ${pause_ms} ms ($(tr -d '\n' <"$dir/load.out"))"
  v=$(timeout 60 python3 "$work/verify.py" "$svc" "$dir/acks" w 2>&1)
  unset v_missing v_wrong v_sets v_incrs v_counter v_maxincr
  eval "$(echo "$v" | grep -oE '[a-z]+=[0-9]+' | sed 's/^/v_/')"
  [ "${v_missing:-1}" -eq 0 ] && [ "${v_wrong:-1}" -eq 0 ] && [ "${v_sets:-0}" -gt 0 ]
  check "every acknowledged SET (${v_sets:-?}) is readable with its value from the new primary" $? "$v"
  [ "${v_counter:-0}" -ge "${v_incrs:-1}" ] && [ "${v_counter:-0}" -ge "${v_maxincr:-1}" ] && [ "${v_incrs:-0}" -gt 0 ]
  check "the counter (${v_counter:-?}) >= acknowledged INCRs (${v_incrs:-?}) and >= the largest reply seen" $? "$v"
  status
  status_is generation=2 primary=node-b
  check "status: generation 2, primary node-b" $? "$(status_text)"
else
  check "cluster for test 1 started" 1 ""
fi
kill -9 "${backup:-}" "${arbiter:-}" 2>/dev/null

# ------------------------------------------- 2. kill -9 the backup
echo "# 2. kill -9 the backup"
if cluster t2; then
  spawn load "$dir/load.out" python3 "$work/load.py" "$svc" "$dir/acks" 60 "$dir/stop" w
  for _ in $(seq 400); do [ "$(lines "$dir/acks")" -ge 200 ] && break; sleep 0.05; done
  kill -9 "$backup"
  killed_at=$(now)
  wait_for "$dir/primary.out" "running ALONE (unprotected)" 30
  check "the primary goes on alone after the backup's SIGKILL" $? "$(tail_of "$dir/primary.out" 6)"
  base=$(lines "$dir/acks")
  for _ in $(seq 400); do [ $(( $(lines "$dir/acks") - base )) -ge 200 ] && break; sleep 0.05; done
  touch "$dir/stop"; wait_exit "$load" 15
  read -r before after first_ms pause_ms < <(timeout 30 python3 "$work/gap.py" "$dir/acks" "$killed_at" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
  v=$(timeout 60 python3 "$work/verify.py" "$svc" "$dir/acks" w 2>&1)
  unset v_missing v_wrong v_sets v_incrs v_counter v_maxincr
  eval "$(echo "$v" | grep -oE '[a-z]+=[0-9]+' | sed 's/^/v_/')"
  [ "${after:-0}" -ge 100 ] && [ "${v_missing:-1}" -eq 0 ] && [ "${v_wrong:-1}" -eq 0 ] \
    && [ "$(sets alone 20)" = 20 ] && [ "$(readable alone 20)" = 20 ]
  check "writes keep succeeding on the primary alone (all ${v_sets:-?} acknowledged SETs readable)" $? \
    "$after acknowledged after the kill; $v; $(cat "$dir/load.out")"
  info "acknowledged writes: $before before the kill, $after after; first acknowledged ${first_ms} ms after the kill, longest pause between acknowledgements ${pause_ms} ms"
  kill -0 "$primary" 2>/dev/null && ! grep -aq "halting" "$dir/primary.out"
  check "the primary is still running" $? "$(tail_of "$dir/primary.out")"
  status
  [ "$status_rc" -eq 2 ] && status_is generation=2 primary=node-a protected=false role=primary-alone
  check "status: protected false, role primary-alone, generation 2 (exit 2)" $? "$(status_text)"

  # ----------------------------------------- 3. the arbiter restarted keeps its records
  echo "# 3. kill -9 and restart the arbiter"
  kill -9 "$arbiter"; wait_exit "$arbiter" 10
  status
  [ "$status_rc" -eq 1 ]
  check "with the arbiter down, status is an error (exit 1)" $? "$(status_text)"
  echo "--- restart" >>"$dir/arbiter.out"
  restarted=1
  for _ in $(seq 20); do
    start_arbiter
    if wait_for "$dir/arbiter.out" "listening on 127.0.0.1:$arb with 1 VM record" 10; then restarted=0; break; fi
    kill -9 "$arbiter" 2>/dev/null; sleep 0.5  # e.g. the port still taken: try again
  done
  check "the arbiter restarts on the same state dir and port with 1 record" $restarted "$(tail_of "$dir/arbiter.out")"
  status
  [ "$status_rc" -eq 2 ] && status_is generation=2 primary=node-a role=primary-alone
  check "after the restart status still shows generation 2 held by node-a" $? "$(status_text)"
  [ "$(cli SET after-arbiter-restart yes)" = OK ] && [ "$(cli GET after-arbiter-restart)" = yes ]
  check "the primary still serves after the arbiter's restart" $? "$(tail_of "$dir/primary.out")"
else
  check "cluster for tests 2 and 3 started" 1 ""
fi
kill -9 "${primary:-}" "${arbiter:-}" 2>/dev/null

# ------------------------------------------- 4. forged and replayed heartbeats
echo "# 4. forged, replayed and malformed heartbeats"
if cluster t4; then
  [ "$(sets before 100)" = 100 ]
  check "100 acknowledged SETs on a protected VM" $? ""
  status; cp "$work/status.json" "$dir/status0.json"
  f0=$(jfield "$dir/status0.json" heartbeats_forged); r0=$(jfield "$dir/status0.json" heartbeats_replayed)
  m0=$(jfield "$dir/status0.json" heartbeats_malformed); a0=$(jfield "$dir/status0.json" heartbeats_received)
  o0=$(jfield "$dir/status0.json" heartbeats_foreign)
  [ "$status_rc" -eq 0 ] && [ "$f0" = 0 ] && [ "$r0" = 0 ] && [ "$m0" = 0 ] && [ "$o0" = 0 ] && [ "$a0" -gt 0 ] 2>/dev/null
  check "before: protected, heartbeats received ($a0), none refused" $? "$(status_text)"
  timeout 30 python3 "$work/hb.py" "$repa" "$work/certs/node-a/heartbeat.key" kv >"$dir/hb.out" 2>&1
  check "sent forged, replayed and malformed heartbeats to UDP port $repa" $? "$(cat "$dir/hb.out")"
  for _ in $(seq 50); do
    status
    [ "$(jfield "$work/status.json" heartbeats_forged)" -ge 5 ] 2>/dev/null \
      && [ "$(jfield "$work/status.json" heartbeats_replayed)" -ge 3 ] 2>/dev/null \
      && [ "$(jfield "$work/status.json" heartbeats_malformed)" -ge 2 ] 2>/dev/null \
      && [ "$(jfield "$work/status.json" heartbeats_foreign)" -ge 3 ] 2>/dev/null && break
    sleep 0.1
  done
  sleep 1.5  # three failure timeouts: a disturbed primary would have suspected its backup by now
  status
  f1=$(jfield "$work/status.json" heartbeats_forged); r1=$(jfield "$work/status.json" heartbeats_replayed)
  m1=$(jfield "$work/status.json" heartbeats_malformed); a1=$(jfield "$work/status.json" heartbeats_received)
  o1=$(jfield "$work/status.json" heartbeats_foreign)
  [ "$f1" = 5 ] && [ "$r1" = 3 ] && [ "$m1" = 2 ] && [ "$o1" = 3 ]
  check "counted exactly: forged +5 ($f0 -> $f1), replayed +3 ($r0 -> $r1), foreign +3 ($o0 -> $o1), malformed +2 ($m0 -> $m1)" \
    $? "$(status_text)"
  [ "$a1" -gt "$a0" ] 2>/dev/null && [ "$status_rc" -eq 0 ] && status_is generation=1 primary=node-a protected=true role=primary
  check "the primary stays protected (generation 1, still receiving the backup's heartbeats: $a0 -> $a1)" $? \
    "$(status_text)"
  ! grep -aqE "silent for|ALONE|halting" "$dir/primary.out" && ! grep -aqE "suspected|LIVE|halting" "$dir/backup.out" \
    && kill -0 "$primary" 2>/dev/null && kill -0 "$backup" 2>/dev/null
  check "no suspicion, no failover on either node" $? "$(tail_of "$dir/primary.out") $(tail_of "$dir/backup.out")"
  grep -aq "rejected a forged datagram" "$dir/primary.out" && grep -aq "rejected a replayed datagram" "$dir/primary.out" \
    && grep -aq "rejected a foreign datagram" "$dir/primary.out"
  check "the refusals are logged" $? "$(grep -a heartbeat "$dir/primary.out" | tail -3 | tr '\n' '|')"
  node_series=(lockstep_role lockstep_generation lockstep_protected lockstep_execution_lag_seconds
    lockstep_log_bytes_total lockstep_log_entries_total lockstep_held_outputs lockstep_held_output_bytes
    lockstep_heartbeats_sent_total lockstep_heartbeats_received_total lockstep_heartbeats_missed_total
    lockstep_heartbeats_rejected_total lockstep_failovers_total lockstep_clone_in_progress lockstep_clone_round
    lockstep_clone_sent_bytes lockstep_clone_first_copy_ratio lockstep_clones_total lockstep_exits_total
    lockstep_exits_per_second)
  metrics "$meta"; missing=$(has_series "${node_series[@]}" 'lockstep_role{role="primary"} 1')
  check "curl the primary's /metrics: every listed series, role primary" $? "missing:$missing"
  [ "$(metric lockstep_protected)" = 1.0 ] && [ "$(metric lockstep_generation)" = 1.0 ] \
    && [ "$(metric 'lockstep_heartbeats_rejected_total{reason="forged"}')" = 5 ] \
    && [ "$(metric 'lockstep_heartbeats_rejected_total{reason="replayed"}')" = 3 ] \
    && [ "$(metric lockstep_log_bytes_total)" -gt 0 ] 2>/dev/null && [ "$(metric lockstep_exits_total)" -gt 0 ] 2>/dev/null
  check "the primary's metrics: protected, generation 1, 5 forged and 3 replayed heartbeats, log and exits counted" $? \
    "$(grep -E 'protected|generation|rejected|log_bytes|exits_total' "$work/metrics.txt" | tr '\n' ' ')"
  metrics "$metb"; missing=$(has_series "${node_series[@]}" 'lockstep_role{role="backup"} 1')
  check "curl the backup's /metrics (configured by LOCKSTEP_ variables): every listed series, role backup" $? \
    "missing:$missing"
  metrics "$metarb"
  missing=$(has_series lockstep_arbiter_vms lockstep_arbiter_connections_total lockstep_arbiter_requests_total \
    'lockstep_arbiter_test_and_set_total{result="granted"} 1' lockstep_arbiter_connections_refused_total \
    lockstep_arbiter_requests_refused_total)
  check "curl the arbiter's /metrics: records, connections, requests, one test-and-set granted" $? "missing:$missing"

  # ----------------------------------------- 5. lockstep failover
  echo "# 5. lockstep failover"
  timeout 30 "$BIN/lockstep" failover --arbiter "127.0.0.1:$arb" --vm kv --tls-dir "$work/certs/op" \
    >"$dir/failover.out" 2>&1
  check "lockstep failover succeeded" $? "$(tail_of "$dir/failover.out")"
  wait_exit "$primary" 30; rc=$(exit_status "$dir/primary.out")
  [ "$rc" = 0 ]
  check "the primary exited 0" $? "exit $rc: $(tail_of "$dir/primary.out")"
  wait_for "$dir/backup.out" "LIVE: this node is the primary now" 30
  check "the backup went live" $? "$(tail_of "$dir/backup.out")"
  n=0; for _ in $(seq 100); do n=$(readable before 100); [ "$n" = 100 ] && break; sleep 0.1; done
  [ "$n" = 100 ]
  check "the 100 SETs written before are readable on the same address" $? "$n readable"
  [ "$(sets after 20)" = 20 ] && [ "$(readable after 20)" = 20 ]
  check "new writes succeed after the failover" $? "$(tail_of "$dir/backup.out")"
  status
  status_is generation=2 primary=node-b
  check "status: generation 2, primary node-b" $? "$(status_text)"
else
  check "cluster for tests 4 and 5 started" 1 ""
fi
kill -9 "${backup:-}" "${arbiter:-}" 2>/dev/null

# ------------------------------------------- 6. lockstep poweroff
echo "# 6. lockstep poweroff"
if cluster t6; then
  [ "$(sets p 20)" = 20 ]
  check "20 acknowledged SETs" $? ""
  timeout 30 "$BIN/lockstep" poweroff --arbiter "127.0.0.1:$arb" --vm kv --tls-dir "$work/certs/op" \
    >"$dir/poweroff.out" 2>&1
  check "lockstep poweroff succeeded" $? "$(tail_of "$dir/poweroff.out")"
  wait_exit "$primary" 30; prc=$(exit_status "$dir/primary.out")
  wait_exit "$backup" 30; brc=$(exit_status "$dir/backup.out")
  [ "$prc" = 0 ] && [ "$brc" = 0 ]
  check "both nodes exited 0" $? "primary $prc: $(tail_of "$dir/primary.out"); backup $brc: $(tail_of "$dir/backup.out")"
  grep -aq "replay reached the primary's final state exactly" "$dir/backup.out" && ! grep -aq "LIVE" "$dir/backup.out"
  check "the backup replayed to the primary's final state and did not go live" $? "$(tail_of "$dir/backup.out")"
  status
  [ "$status_rc" -eq 2 ] && status_is primary=null
  check "status: not running (exit 2, primary null)" $? "$(status_text)"
else
  check "cluster for test 6 started" 1 ""
fi
kill -9 "${primary:-}" "${backup:-}" "${arbiter:-}" 2>/dev/null

# ------------------------------------------- 7. the arbiter down
echo "# 7. arbiter down while the backup dies"
if cluster t7; then
  [ "$(cli SET before-arbiter-down yes)" = OK ]
  check "a write acknowledged while protected" $? ""
  kill -9 "$arbiter"; wait_exit "$arbiter" 10
  killed_at=$(now)
  kill -9 "$backup"
  spawn held "$dir/held.out" python3 "$work/held.py" "$svc" held-on-one-connection yes 60
  out=$(timeout 2 redis-cli -p "$svc" SET held-short yes 2>&1); rc=$?
  [ "$rc" -eq 124 ] && [ -z "$out" ]
  check "a write's reply is held (redis-cli timed out after 2 s with no reply)" $? "exit $rc, reply '$out'"
  sleep 0.5
  ! grep -aq "running ALONE" "$dir/primary.out" && kill -0 "$held" 2>/dev/null && [ ! -s "$dir/held.out" ]
  check "no arbiter: the primary did not go on alone and released nothing" $? \
    "$(tail_of "$dir/primary.out") held: $(cat "$dir/held.out")"
  grep -aq "waiting for the arbiter, never going live without it" "$dir/primary.out"
  check "the primary says it waits for the arbiter" $? "$(tail_of "$dir/primary.out")"
  kill -0 "$primary" 2>/dev/null
  check "the primary is still running" $? "$(tail_of "$dir/primary.out")"
  echo "--- restart" >>"$dir/arbiter.out"
  restarted=1
  for _ in $(seq 20); do
    start_arbiter
    if wait_for "$dir/arbiter.out" "listening on 127.0.0.1:$arb" 10; then restarted=0; break; fi
    kill -9 "$arbiter" 2>/dev/null; sleep 0.5
  done
  check "the arbiter restarted" $restarted "$(tail_of "$dir/arbiter.out")"
  wait_for "$dir/primary.out" "running ALONE (unprotected)" 30
  check "with the arbiter back, the primary goes on alone" $? "$(tail_of "$dir/primary.out" 6)"
  wait_exit "$held" 30
  grep -q "^+OK after" "$dir/held.out"
  rc=$? held_reply=$(cat "$dir/held.out")
  check "the held reply arrived on its connection ($held_reply)" $rc "$held_reply"
  [ "$(cli GET held-on-one-connection)" = yes ] && [ "$(cli GET held-short)" = yes ] \
    && [ "$(cli GET before-arbiter-down)" = yes ]
  check "a fresh connection reads both held writes and the earlier one" $? ""
  status
  status_is generation=2 primary=node-a role=primary-alone
  check "status: generation 2, node-a alone" $? "$(status_text)"
else
  check "cluster for test 7 started" 1 ""
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
