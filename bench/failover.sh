#!/usr/bin/env bash
# Failover benchmark (the failover issue): primary + backup + arbiter on 127.0.0.1.
#  (a) failover time: a client keeps writing (one request at a time) and, at a
#      random moment, kill -9s the primary itself; the failover time is from
#      that kill to the first write ACKNOWLEDGED on a connection opened after it
#      (time.monotonic() in the client). KILLS rounds, each with a fresh
#      primary+backup pair and its own VM name (kv1, kv2, ...) at one arbiter.
#      The backup's log lines are timestamped by the client too (it polls the
#      file every millisecond), for a per-kill breakdown.
#  (b) acknowledged writes lost: every SET k_<round>_<i> and INCR c_<round> the
#      client saw acknowledged, before and after the kill, is checked on the new
#      primary (value exact; counter >= acknowledged INCRs and >= the highest
#      INCR reply). Must be 0.
#  (c) false failovers: one pair under a continuous redis-benchmark write load
#      for SOAK_SECONDS; counts failover log lines (must be 0), samples
#      `lockstep status --json` every STATUS_EVERY s (protected must stay true;
#      max lag_ms; heartbeat counters).
# Everything on 127.0.0.1; every loop bounded in count and time.
# Knobs: KILLS, SOAK_SECONDS, PARTS (kill,soak), SOAK_CLIENTS, SOAK_REQUESTS,
# STATUS_EVERY, HEARTBEAT_MS, FAILURE_TIMEOUT_MS, MEMORY, KILL_AFTER_MIN/MAX,
# POST_SECONDS, BIN. Results: bench-results/failover.txt (+ failover-logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
# The command as run (the knobs given in the environment), for the summary.
COMMAND="$(for v in KILLS SOAK_SECONDS PARTS SOAK_CLIENTS SOAK_REQUESTS STATUS_EVERY HEARTBEAT_MS FAILURE_TIMEOUT_MS MEMORY \
  KILL_AFTER_MIN KILL_AFTER_MAX POST_SECONDS BIN; do [ -z "${!v:-}" ] || printf '%s=%q ' "$v" "${!v}"; done)bash bench/failover.sh"
KILLS=${KILLS:-20}
SOAK_SECONDS=${SOAK_SECONDS:-600}
PARTS=${PARTS:-kill,soak}
SOAK_CLIENTS=${SOAK_CLIENTS:-20}
SOAK_REQUESTS=${SOAK_REQUESTS:-200000}
STATUS_EVERY=${STATUS_EVERY:-10}
HEARTBEAT_MS=${HEARTBEAT_MS:-50}
FAILURE_TIMEOUT_MS=${FAILURE_TIMEOUT_MS:-500}
MEMORY=${MEMORY:-64M}
KILL_AFTER_MIN=${KILL_AFTER_MIN:-0.5}
KILL_AFTER_MAX=${KILL_AFTER_MAX:-1.5}
POST_SECONDS=${POST_SECONDS:-0.3}
OUT=bench-results/failover.txt
LOGS=bench-results/failover-logs
mkdir -p bench-results
. bench/lib/cluster.sh

work=$(mktemp -d /tmp/lockstep-failover.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"; mkdir -p "$LOGS"
  cp "$work"/*.log "$work"/*.json "$work"/*.jsonl "$work"/*.txt "$LOGS"/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

failover_flags=(--heartbeat-interval "$HEARTBEAT_MS" --failure-timeout "$FAILURE_TIMEOUT_MS")

# start_pair NAME -> SVC, PRIMARY_PID, BACKUP_PID, PRIMARY_LOG, BACKUP_LOG
start_pair() {
  local name=$1 repa repb
  SVC=$(port); repa=$(port); repb=$(port)
  PRIMARY_LOG=$work/$name-primary.log; BACKUP_LOG=$work/$name-backup.log
  PRIMARY_PID=$(spawn "$PRIMARY_LOG" "$BIN/primary-vmm" --vm "$name" --guest "$GUEST" --memory "$MEMORY" \
    --serve "127.0.0.1:$SVC" --disk "$work/$name-a.img" --disk-size 16M --replication "127.0.0.1:$repa" \
    --tls-dir "$work/certs/node-a" --arbiter "127.0.0.1:$ARB" "${failover_flags[@]}")
  pids+=("$PRIMARY_PID")
  wait_for "$PRIMARY_LOG" "waiting for a backup" 30
  BACKUP_PID=$(spawn "$BACKUP_LOG" "$BIN/backup-vmm" --vm "$name" --guest "$GUEST" --tls-dir "$work/certs/node-b" \
    --disk "$work/$name-b.img" --serve "127.0.0.1:$SVC" --replication "127.0.0.1:$repb" --arbiter "127.0.0.1:$ARB" \
    --primary "127.0.0.1:$repa" "${failover_flags[@]}")
  pids+=("$BACKUP_PID")
  wait_for "$PRIMARY_LOG" "kvstore ready" 30
  wait_for "$BACKUP_LOG" "attached to the primary" 30
}

FAILOVER_LINES='LIVE:|running ALONE|halting|primary suspected|silent for'

# The client: RESP over a raw socket, time.monotonic() throughout.
cat >"$work/client.py" <<'PYTHON'
import json, os, random, signal, socket, sys, threading, time

CONNECT_TIMEOUT = 0.2   # s, per attempt
READ_TIMEOUT = 1.0      # s, per reply; then reconnect and resend
RETRY_PAUSE = 0.001     # s between refused connects
GIVE_UP = 20.0          # s after the kill without an acknowledged write

def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(READ_TIMEOUT)
        self.buf = b""
    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise ConnectionError("EOF")
        self.buf += data
    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line
    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+": return rest.decode()
        if kind == b":": return int(rest)
        if kind == b"-": raise RuntimeError("error reply: " + rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0: return None
            while len(self.buf) < n + 2:
                self._fill()
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value.decode()
        raise RuntimeError("unexpected reply %r" % line)
    def close(self):
        try: self.s.close()
        except OSError: pass

def connect_retrying(port, deadline):
    attempts = 0
    while True:
        attempts += 1
        try:
            return Conn(port), attempts
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(RETRY_PAUSE)

MARKS = [("channel_lost", "logging channel lost"), ("suspected", "primary suspected"),
         ("won", "at the arbiter: replaying"), ("live", "LIVE:")]

def kill_round(port, pid, backup_log, rnd, kill_after, post_seconds):
    rnd_key = "r%d" % rnd
    counter = "c_%d" % rnd
    acked = {}            # key -> value, SETs acknowledged
    incr_acked = 0
    incr_max = 0
    lock = threading.Lock()
    st = {"conn_id": 0, "kill_conn": None, "kill_t": None, "first_ack": None, "inflight": None,
          "last_old_ack": None, "marks": {}, "suspect_reason": None, "eof": None, "stop_watch": False}
    log_offset = os.path.getsize(backup_log)

    def killer():
        time.sleep(kill_after)
        with lock:
            st["kill_conn"] = st["conn_id"]
            st["inflight"] = st.get("sending", False)
            st["kill_t"] = time.monotonic()
        os.kill(pid, signal.SIGKILL)

    def watcher():  # timestamps the backup's log lines as they appear
        pos = log_offset
        partial = b""
        end = time.monotonic() + 60
        with open(backup_log, "rb") as f:
            while time.monotonic() < end and not st["stop_watch"]:
                f.seek(pos)
                data = f.read()
                now = time.monotonic()
                if data:
                    pos += len(data)
                    partial += data
                    *lines, partial = partial.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace")
                        for name, needle in MARKS:
                            if needle in text and name not in st["marks"]:
                                st["marks"][name] = now
                                if name == "suspected":
                                    st["suspect_reason"] = text.split("primary suspected: ", 1)[1].split("; asking")[0]
                time.sleep(0.001)

    threading.Thread(target=killer, daemon=True).start()
    wt = threading.Thread(target=watcher, daemon=True)
    wt.start()

    conn, _ = connect_retrying(port, time.monotonic() + 5)
    st["conn_id"] = 1
    i = 0
    pending = None
    errors = 0
    error_log = []
    reconnects = 0
    connect_attempts = 0
    writes_before_kill = 0
    while True:
        now = time.monotonic()
        if st["kill_t"] is not None and st["first_ack"] is None and now - st["kill_t"] > GIVE_UP:
            break
        if st["first_ack"] is not None and now - st["first_ack"] >= post_seconds:
            break
        if conn is None:
            try:
                conn, attempts = connect_retrying(port, now + GIVE_UP)
            except OSError:
                break
            connect_attempts += attempts
            reconnects += 1
            with lock:
                st["conn_id"] += 1
        op = pending
        if op is None:
            i += 1
            op = ("SET", "k_%d_%d" % (rnd, i), "v_%d_%d" % (rnd, i)) if i % 2 else ("INCR", counter)
        my_conn = st["conn_id"]
        try:
            st["sending"] = True
            conn.s.sendall(encode(*op))
            reply = conn.reply()
        except (OSError, ConnectionError, RuntimeError) as e:
            st["sending"] = False
            errors += 1
            if st["kill_t"] is not None and st["eof"] is None:
                st["eof"] = time.monotonic()
            if st["kill_t"] is not None and len(error_log) < 20:
                error_log.append("%.1fms conn%d %s: %s" % ((time.monotonic() - st["kill_t"]) * 1000, my_conn, type(e).__name__, e))
            conn.close()
            conn = None
            pending = op
            continue
        st["sending"] = False
        pending = None
        now = time.monotonic()
        if op[0] == "SET":
            if reply != "OK":
                raise SystemExit("SET %s answered %r" % (op[1], reply))
            acked[op[1]] = op[2]
        else:
            incr_acked += 1
            incr_max = max(incr_max, reply)
        with lock:
            if st["kill_t"] is None:
                writes_before_kill += 1
                st["last_old_ack"] = now
            elif my_conn == st["kill_conn"]:
                st["last_old_ack"] = now   # acknowledged by the old primary, before it died
            elif st["first_ack"] is None:
                st["first_ack"] = now

    # Verify on the new primary: every acknowledged SET, and the counter.
    missing = wrong = 0
    counter_value = None
    if conn is None:
        conn, _ = connect_retrying(port, time.monotonic() + 5)
    conn.s.settimeout(10)
    keys = list(acked)
    for start in range(0, len(keys), 500):
        batch = keys[start:start + 500]
        conn.s.sendall(b"".join(encode("GET", k) for k in batch))
        for k in batch:
            v = conn.reply()
            if v is None: missing += 1
            elif v != acked[k]: wrong += 1
    conn.s.sendall(encode("GET", counter))
    v = conn.reply()
    counter_value = int(v) if v is not None else 0
    conn.close()
    st["stop_watch"] = True
    wt.join(2)
    kill_t = st["kill_t"]
    ms = lambda t: None if t is None or kill_t is None else round((t - kill_t) * 1000, 2)
    counter_lost = max(0, incr_acked - counter_value, incr_max - counter_value)
    result = {
        "round": rnd, "failover_ms": ms(st["first_ack"]), "kill_after_s": round(kill_after, 3),
        "inflight_at_kill": st["inflight"], "client_broken_ms": ms(st["eof"]), "last_old_ack_ms": ms(st["last_old_ack"]),
        "marks_ms": {k: ms(v) for k, v in st["marks"].items()}, "suspect_reason": st["suspect_reason"],
        "writes_before_kill": writes_before_kill, "acked_sets": len(acked), "acked_incrs": incr_acked,
        "incr_max_reply": incr_max, "counter": counter_value, "missing": missing, "wrong": wrong,
        "counter_short": counter_lost, "lost": missing + wrong + counter_lost,
        "errors": errors, "error_log": error_log, "reconnects": reconnects, "connect_attempts": connect_attempts,
    }
    print(json.dumps(result))

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "kill":
        port, pid, log, rnd = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        lo, hi, post = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
        random.seed(1000 + rnd)
        kill_round(port, pid, log, rnd, random.uniform(lo, hi), post)
PYTHON

# The summaries, from the JSON lines.
cat >"$work/summarize.py" <<'PYTHON'
import json, math, shlex, sys

def nearest_rank(values, p):
    values = sorted(values)
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)] if values else None

def median(values):
    values = sorted(v for v in values if v is not None)
    if not values: return None
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

def fmt(v):
    return "-" if v is None else ("%.1f" % v)

mode = sys.argv[1]
if mode == "kills":
    rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    times = [r["failover_ms"] for r in rows if r["failover_ms"] is not None]
    failed = [r["round"] for r in rows if r["failover_ms"] is None]
    print("KILL_ROUNDS=%d" % len(rows))
    print("KILL_OK=%d" % len(times))
    print("KILL_FAILED=%s" % shlex.quote(" ".join(map(str, failed))))
    for p in (50, 90):
        print("P%d=%s" % (p, fmt(nearest_rank(times, p))))
    print("MIN=%s" % fmt(min(times) if times else None))
    print("MAX=%s" % fmt(max(times) if times else None))
    print("ACKED=%d" % sum(r["acked_sets"] + r["acked_incrs"] for r in rows))
    print("ACKED_SETS=%d" % sum(r["acked_sets"] for r in rows))
    print("ACKED_INCRS=%d" % sum(r["acked_incrs"] for r in rows))
    print("ACKED_BEFORE_KILL=%d" % sum(r["writes_before_kill"] for r in rows))
    print("LOST=%d" % sum(r["lost"] for r in rows))
    print("INFLIGHT=%d" % sum(1 for r in rows if r["inflight_at_kill"]))
    for r in rows:
        r["marks_ms"]["client_broken"] = r.get("client_broken_ms")
    for mark in ("client_broken", "channel_lost", "suspected", "won", "live"):
        print("MED_%s=%s" % (mark.upper(), fmt(median(r["marks_ms"].get(mark) for r in rows))))
        seen = [r["marks_ms"][mark] for r in rows if r["marks_ms"].get(mark) is not None]
        print("MAX_%s=%s" % (mark.upper(), fmt(max(seen) if seen else None)))
    reasons = {}
    for r in rows:
        key = r["suspect_reason"] or "(none seen)"
        reasons[key] = reasons.get(key, 0) + 1
    print("REASONS=%s" % shlex.quote("; ".join("%d x %s" % (n, k) for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]))))
elif mode == "table":
    rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    print("%5s %9s | %7s %7s %8s %8s %6s %7s | %7s %9s %5s %5s  %s" % ("round", "failover", "cl_eof", "lost_ch", "suspect",
          "arbiter", "live", "1st_ack", "acked", "in_flight", "lost", "errs", "suspected because"))
    for r in rows:
        m = r["marks_ms"]
        print("%5d %9s | %7s %7s %8s %8s %6s %7s | %7d %9s %5d %5d  %s" % (r["round"], fmt(r["failover_ms"]),
              fmt(r.get("client_broken_ms")), fmt(m.get("channel_lost")),
              fmt(m.get("suspected")), fmt(m.get("won")), fmt(m.get("live")), fmt(r["failover_ms"]),
              r["acked_sets"] + r["acked_incrs"], "yes" if r["inflight_at_kill"] else "no", r["lost"], r["errors"],
              r["suspect_reason"] or "-"))
elif mode == "status":
    rows = []
    for l in open(sys.argv[2]):
        l = l.strip()
        if not l: continue
        try: rows.append(json.loads(l))
        except ValueError: rows.append({"unparsable": l})
    good = [r for r in rows if "protected" in r]
    lags = [float(r["lag_ms"]) for r in good if r.get("lag_ms") is not None]
    print("STATUS_SAMPLES=%d" % len(rows))
    print("STATUS_UNPROTECTED=%d" % sum(1 for r in rows if r.get("protected") is not True))
    print("STATUS_GENERATIONS=%s" % shlex.quote(" ".join(sorted({str(r.get("generation")) for r in good}))))
    print("STATUS_PRIMARIES=%s" % shlex.quote(" ".join(sorted({str(r.get("primary")) for r in good}))))
    print("MAX_LAG=%s" % (max(lags) if lags else "-"))
    print("MED_LAG=%s" % (median(lags) if lags else "-"))
    last = good[-1] if good else {}
    for k in ("heartbeats_received", "heartbeats_forged", "heartbeats_replayed", "heartbeats_malformed", "log_bytes", "acknowledged"):
        print("LAST_%s=%s" % (k.upper(), last.get(k, "-")))
    print("MAX_HELD=%s" % max([r.get("held_outputs", 0) for r in good] or [0]))
PYTHON

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet -- Sources Package.swift || echo ' (+ uncommitted changes under Sources/)')"
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
BUILT=$(date -u -r "$BIN/primary-vmm" '+%Y-%m-%d %H:%M UTC')
echo "binaries: $BIN (primary-vmm modified $BUILT), commit at start $COMMIT"
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b --arbiter arbiter --operators op >/dev/null
ARB=$(port)
ARBITER_PID=$(spawn "$work/arbiter.log" "$BIN/arbiter" --listen "127.0.0.1:$ARB" --state-dir "$work/state" \
  --tls-dir "$work/certs/arbiter")
pids+=("$ARBITER_PID")
wait_for "$work/arbiter.log" "listening" 20

# ---------------------------------------------------------------- (a) + (b)
if [[ ",$PARTS," == *",kill,"* ]]; then
  echo "== (a)+(b) $KILLS kills: kill -9 of the primary while a client writes; failover time and acknowledged writes"
  : >"$work/kills.jsonl"
  for round in $(seq "$KILLS"); do
    start_pair "kv$round"
    if ! timeout 90 python3 "$work/client.py" kill "$SVC" "$PRIMARY_PID" "$BACKUP_LOG" "$round" \
        "$KILL_AFTER_MIN" "$KILL_AFTER_MAX" "$POST_SECONDS" >"$work/kill-$round.json" 2>"$work/kill-$round.err"; then
      echo "   round $round: client failed: $(tail -3 "$work/kill-$round.err")"
      echo "{\"round\": $round, \"failover_ms\": null, \"marks_ms\": {}, \"suspect_reason\": null, \"writes_before_kill\": 0, \"acked_sets\": 0, \"acked_incrs\": 0, \"lost\": 0, \"inflight_at_kill\": null, \"errors\": 0}" >"$work/kill-$round.json"
    fi
    cat "$work/kill-$round.json" >>"$work/kills.jsonl"
    grep -q "LIVE:" "$BACKUP_LOG" || echo "   round $round: the backup did not go live: $(tail -3 "$BACKUP_LOG")"
    stop_pid "$BACKUP_PID" TERM 10
    stop_pid "$PRIMARY_PID" KILL 1   # already dead unless the client failed before its kill
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   round %d: failover %s ms, %d writes acknowledged, %d lost, suspected: %s" % (r["round"], r["failover_ms"], r["acked_sets"]+r["acked_incrs"], r["lost"], r["suspect_reason"]))' "$work/kill-$round.json"
    rm -f "$work"/kv"$round"-*.img
  done
  eval "$(python3 "$work/summarize.py" kills "$work/kills.jsonl")"
fi

# ---------------------------------------------------------------- (c)
if [[ ",$PARTS," == *",soak,"* ]]; then
  echo "== (c) soak: $SOAK_SECONDS s of redis-benchmark -t set,incr -c $SOAK_CLIENTS -P 1 on one pair; status every $STATUS_EVERY s"
  start_pair soak
  SOAK_PRIMARY_LOG=$PRIMARY_LOG; SOAK_BACKUP_LOG=$BACKUP_LOG
  # Per-thread CPU ticks of both VMMs (where the CPU goes during the soak).
  threads_cpu() { for t in /proc/"$1"/task/*; do echo "$(tr ' ' _ <"$t/comm") $(awk '{print $14+$15}' "$t/stat" 2>/dev/null || echo 0)"; done | sort; }
  threads_cpu "$PRIMARY_PID" >"$work/soak-threads-primary.start"; threads_cpu "$BACKUP_PID" >"$work/soak-threads-backup.start"
  soak_start=$(date +%s)
  soak_end=$(( soak_start + SOAK_SECONDS ))
  : >"$work/soak-commands.txt"
  (
    # Restarted until the soak ends; bounded by count and, each run, by time.
    for _ in $(seq $(( SOAK_SECONDS + 10 ))); do
      left=$(( soak_end - $(date +%s) ))
      [ "$left" -gt 0 ] || break
      timeout -s INT "$left" redis-benchmark -p "$SVC" -t set,incr -c "$SOAK_CLIENTS" -n "$SOAK_REQUESTS" -P 1 -q \
        2>&1 | tr '\r' '\n' | grep 'requests per second' || true
      sleep 0.1
    done
  ) >"$work/soak-bench.log" 2>&1 &
  LOAD_PID=$!; pids+=("$LOAD_PID")
  : >"$work/soak-status.jsonl"
  for sample in $(seq $(( SOAK_SECONDS / STATUS_EVERY + 2 ))); do
    [ "$(date +%s)" -lt "$soak_end" ] || break
    last_sample_t=$(( $(date +%s) - soak_start ))
    timeout 15 "$BIN/lockstep" status --arbiter "127.0.0.1:$ARB" --vm soak --tls-dir "$work/certs/op" --json \
      >>"$work/soak-status.jsonl" 2>"$work/soak-status.err" || echo "{\"error\": \"status failed: $(tr -d '"\n' <"$work/soak-status.err" | cut -c1-200)\"}" >>"$work/soak-status.jsonl"
    echo "$last_sample_t $(timeout 5 redis-cli -p "$SVC" info stats 2>/dev/null | tr -d '\r' | grep '^total_commands_processed:' | cut -d: -f2 || true)" >>"$work/soak-commands.txt"
    if [ $(( sample % 6 )) -eq 1 ]; then
      echo "   t=$(( $(date +%s) - soak_start ))s: $(tail -1 "$work/soak-status.jsonl" | cut -c1-240)"
    fi
    next=$(( soak_start + sample * STATUS_EVERY ))
    while [ "$(date +%s)" -lt "$next" ] && [ "$(date +%s)" -lt "$soak_end" ]; do sleep 0.5; done
  done
  soak_elapsed=$(( $(date +%s) - soak_start ))
  threads_cpu "$PRIMARY_PID" >"$work/soak-threads-primary.end"; threads_cpu "$BACKUP_PID" >"$work/soak-threads-backup.end"
  hz=$(getconf CLK_TCK)
  thread_line() { join "$work/soak-threads-$1.start" "$work/soak-threads-$1.end" |
    awk -v hz="$hz" -v s="$soak_elapsed" '{d=($3-$2)/hz; if (d >= 1) printf "%s %.0f s (%.0f%%), ", $1, d, 100*d/(s>0?s:1)}' | sed 's/, $//'; }
  primary_threads=$(thread_line primary); backup_threads=$(thread_line backup)
  # Throughput in the first and the last minute of the window (guest's command counter).
  throughput=$(awk 'NF==2 && $2 != "" {t[NR]=$1; c[NR]=$2; n=NR} END {
      if (n < 3) { print "-"; exit }
      for (i=1; i<=n && t[i]-t[1] < 60; i++) {}; if (i>n) i=n
      for (j=n; j>=1 && t[n]-t[j] < 60; j--) {}; if (j<1) j=1
      printf "first %.0fs: %.0f commands/s, last %.0fs: %.0f commands/s", t[i]-t[1], (c[i]-c[1])/(t[i]-t[1]), t[n]-t[j], (c[n]-c[j])/(t[n]-t[j]) }' "$work/soak-commands.txt")
  for _ in $(seq 40); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.5; done
  stop_pid "$LOAD_PID" TERM 5
  commands=$(timeout 10 redis-cli -p "$SVC" info stats 2>/dev/null | tr -d '\r' | grep '^total_commands_processed:' | cut -d: -f2 || true)
  commands_rate=$([ -n "$commands" ] && echo $(( commands / (soak_elapsed > 0 ? soak_elapsed : 1) )) || echo "?")
  grants=$(grep -c "granted soak generation" "$work/arbiter.log" || true)   # before the power-off record
  # After the window: a clean stop, and the backup must reach the same final state.
  stop_pid "$PRIMARY_PID" TERM 20
  for _ in $(seq 200); do kill -0 "$BACKUP_PID" 2>/dev/null || break; sleep 0.05; done
  backup_alive=$(kill -0 "$BACKUP_PID" 2>/dev/null && echo "still running 10 s after the primary stopped" || echo exited)
  stop_pid "$BACKUP_PID" TERM 5
  false_failovers=$(cat "$SOAK_PRIMARY_LOG" "$SOAK_BACKUP_LOG" | grep -cE "$FAILOVER_LINES" || true)
  in_sync=$(grep -q "replay reached the primary's final state exactly" "$SOAK_BACKUP_LOG" && echo yes || echo no)
  replication_line=$(grep -o 'replication: .*' "$SOAK_PRIMARY_LOG" | tail -1 || true)
  hb_rejected=$(cat "$SOAK_PRIMARY_LOG" "$SOAK_BACKUP_LOG" | grep -c "heartbeat: rejected" || true)
  bench_runs=$(grep -c '^SET' "$work/soak-bench.log" || true)
  rate() { { grep "^$1" "$work/soak-bench.log" || true; } | grep -o '[0-9.]* requests' | cut -d' ' -f1 | sort -n |
    awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "-"}' || true; }
  set_rate=$(rate SET); incr_rate=$(rate INCR)
  eval "$(python3 "$work/summarize.py" status "$work/soak-status.jsonl")"
fi

# ---------------------------------------------------------------- summary
{
  echo "Lockstep failover benchmark — started $STARTED, ended $(date -u '+%H:%M:%S UTC'); commit at start $COMMIT"
  echo "command: $COMMAND"
  echo "binaries: $BIN (primary-vmm modified $BUILT); guest $GUEST, $MEMORY, 16M disk; --heartbeat-interval $HEARTBEAT_MS --failure-timeout $FAILURE_TIMEOUT_MS; $(nproc) CPUs"
  if [[ ",$PARTS," == *",kill,"* ]]; then
    echo
    echo "(a) failover time, kill -9 of the primary -> first acknowledged write on the new primary (client-measured)"
    echo "    kills: $KILL_ROUNDS, failovers completed: $KILL_OK${KILL_FAILED:+ (failed rounds: $KILL_FAILED)}"
    echo "    p50 $P50 ms (goal <= 200), p90 $P90 ms, max $MAX ms (goal <= 500), min $MIN ms  [nearest-rank percentiles]"
    echo "    breakdown, ms after the kill (median / max), backup log lines timestamped by the client's 1 ms poll:"
    echo "      client's connection broke $MED_CLIENT_BROKEN / $MAX_CLIENT_BROKEN;  backup: channel lost $MED_CHANNEL_LOST / $MAX_CHANNEL_LOST;  primary suspected $MED_SUSPECTED / $MAX_SUSPECTED;  arbiter granted $MED_WON / $MAX_WON;  LIVE $MED_LIVE / $MAX_LIVE"
    echo "    suspected because: $REASONS"
    echo "    kills that landed with a write in flight: $INFLIGHT of $KILL_ROUNDS"
    echo "(b) acknowledged writes: $ACKED ($ACKED_SETS SETs + $ACKED_INCRS INCRs; $ACKED_BEFORE_KILL acknowledged by the old primary), lost: $LOST (must be 0)"
    echo
    python3 "$work/summarize.py" table "$work/kills.jsonl" | sed 's/^/    /'
  fi
  if [[ ",$PARTS," == *",soak,"* ]]; then
    echo
    echo "(c) soak: ${soak_elapsed}s under redis-benchmark -t set,incr -c $SOAK_CLIENTS -n $SOAK_REQUESTS -P 1 (restarted while the window lasts)"
    echo "    false failovers (lines matching '$FAILOVER_LINES' in both VMMs' logs): $false_failovers (must be 0); arbiter grants for the VM: $grants (1 = only the initial claim)"
    echo "    status samples: $STATUS_SAMPLES, not protected: $STATUS_UNPROTECTED (must be 0); generations seen: $STATUS_GENERATIONS; primaries seen: $STATUS_PRIMARIES"
    echo "    lag_ms: max $MAX_LAG, median $MED_LAG; max held outputs in a sample: $MAX_HELD"
    echo "    heartbeats received by the primary: $LAST_HEARTBEATS_RECEIVED at the last sample, t=${last_sample_t}s (~$(( last_sample_t * 1000 / HEARTBEAT_MS )) expected at one per ${HEARTBEAT_MS} ms), refused: $LAST_HEARTBEATS_FORGED forged, $LAST_HEARTBEATS_REPLAYED replayed, $LAST_HEARTBEATS_MALFORMED malformed; 'heartbeat: rejected' log lines: $hb_rejected"
    echo "    load: $bench_runs completed redis-benchmark runs, median SET $set_rate req/s, INCR $incr_rate req/s; commands processed by the guest: ${commands:-?} (${commands_rate:-?}/s)"
    echo "    throughput over the window: $throughput"
    echo "    CPU time over the window, primary threads: $primary_threads"
    echo "    CPU time over the window, backup threads: $backup_threads"
    echo "    after a clean stop: backup $backup_alive, replay reached the primary's final state: $in_sync"
    echo "    primary's $replication_line"
  fi
} | tee "$OUT"
