#!/usr/bin/env bash
# Live-clone benchmark (restoring redundancy, "join by clone", after the
# paper's FT VMotion): how long a new backup takes to join a running,
# loaded VM by cloning it, and how long the guest pauses for it.
#
# For each guest memory size (SIZES) and load (LOADS), REPEATS times, with a
# fresh VM name each time, all on 127.0.0.1 with one arbiter:
#   1. a primary-vmm (with a disk) and a first backup-vmm, which replays from
#      exit 0 (the primary's guest starts only once a backup attached);
#   2. kill -9 of that first backup; the primary goes on alone ("running ALONE");
#   3. a write load: redis-benchmark against the kvstore guest, in the
#      background, bounded by `timeout`; WARMUP seconds of it before the join;
#   4. a new backup-vmm that joins by clone (memory pre-copied over KVM's
#      dirty log in rounds, then a pause for the last pages and the state);
#   5. from the primary's log: the notice "clone: the new backup holds the VM
#      at exit N: PROTECTED again" (total_ms, pause_us, bytes, final_pages,
#      final_blocks) and the "clone: round K: ..." lines; from the outside:
#      the time from starting the joiner to `lockstep status --json` saying
#      "protected": true (includes the joiner's process start; polled back to
#      back, so its resolution is one status call, reported too), and, by a
#      watcher polling the logs every 2 ms, when the primary accepted the join,
#      logged PROTECTED again and the joiner logged "clone installed";
#   6. a probe client PINGs one at a time (2 ms apart) from just before the
#      join to the end: its longest round trip during the clone and after it
#      is the stall a client sees (the pause, and under the Output Rule the
#      wait for the new backup's first acknowledgements);
#   7. HOLD seconds more of load on the protected pair, then the load stops,
#      the primary is stopped cleanly, and the cloned backup must reach the
#      primary's final state exactly ("replay reached the primary's final
#      state exactly": same exits, exit-trace hash and memory hash).
#
# Loads: idle = none (the cost of cloning mostly-zero RAM); light =
# redis-benchmark -t set -c 20 -r 100000 -d 64 (the kvstore's memory stays
# small: most guest pages are zero, sent as zero markers); heavy = -d 4096
# with enough keys (-r) to fill about HEAVY_FILL of the guest's RAM, which
# dirties many more pages. With the defaults the run takes 10-15 minutes
# (512M heavy clones take 10-60 s each on the 2-CPU development machine).
#
# Every loop is bounded in count and time; everything is killed on exit.
# Knobs: SIZES, LOADS, REPEATS, WARMUP, HOLD, CLIENTS, LIGHT_KEYS, LIGHT_VALUE,
# HEAVY_VALUE, HEAVY_FILL, DISK_SIZE, PROTECT_TIMEOUT, BIN.
# Results: bench-results/clone.txt (+ bench-results/clone-logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
# The command as run (the knobs given in the environment), for the summary.
COMMAND="$(for v in SIZES LOADS REPEATS WARMUP HOLD CLIENTS LIGHT_KEYS LIGHT_VALUE HEAVY_VALUE HEAVY_FILL DISK_SIZE \
  PROTECT_TIMEOUT BIN; do [ -z "${!v:-}" ] || printf '%s=%q ' "$v" "${!v}"; done)bash bench/clone.sh"
SIZES=${SIZES:-64M 512M}
LOADS=${LOADS:-idle light heavy}
REPEATS=${REPEATS:-5}
WARMUP=${WARMUP:-3}
HOLD=${HOLD:-1}
CLIENTS=${CLIENTS:-20}
LIGHT_KEYS=${LIGHT_KEYS:-100000}
LIGHT_VALUE=${LIGHT_VALUE:-64}
HEAVY_VALUE=${HEAVY_VALUE:-4096}
HEAVY_FILL=${HEAVY_FILL:-0.4}
DISK_SIZE=${DISK_SIZE:-64M}
PROTECT_TIMEOUT=${PROTECT_TIMEOUT:-120}
OUT=bench-results/clone.txt
LOGS=bench-results/clone-logs
mkdir -p bench-results
. bench/lib/cluster.sh

work=$(mktemp -d /tmp/lockstep-clone.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"; mkdir -p "$LOGS"
  cp "$work"/*.log "$work"/*.tsv "$LOGS"/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Milliseconds between two $EPOCHREALTIME readings.
ms_between() { echo "($2 - $1) * 1000" | bc -l | xargs printf '%.1f'; }

status_json() { # VM -> one line of JSON (or an error object)
  timeout 10 "$BIN/lockstep" status --arbiter "127.0.0.1:$ARB" --vm "$1" --tls-dir "$work/certs/op" --json \
    2>"$work/status.err" || { [ $? -eq 2 ] || echo "{\"error\": \"$(tr -d '"\n' <"$work/status.err" | cut -c1-200)\"}"; }
}

info_field() { # SERVICE FIELD -> value from the guest's INFO, or ?
  { timeout 5 redis-cli -p "$1" info 2>/dev/null || true; } | tr -d '\r' | { grep "^$2:" || echo "$2:?"; } | head -1 | cut -d: -f2
}

mib() { echo "${1%M}"; }
# key count for the heavy load: HEAVY_FILL of the guest's RAM in values
heavy_keys() { echo "$(mib "$1") * 1048576 * $HEAVY_FILL / $HEAVY_VALUE" | bc; }

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo ' (+ uncommitted changes under Sources/)')"
# The commit the binaries were built from, when $BIN lies in a git checkout (a private clone, say).
BIN_COMMIT=
if BIN_TOP=$(git -C "$BIN" rev-parse --show-toplevel 2>/dev/null); then
  BIN_COMMIT="$(git -C "$BIN_TOP" rev-parse --short HEAD)$(git -C "$BIN_TOP" diff --quiet HEAD -- Sources Package.swift ||
    echo ' (+ uncommitted changes under Sources/)')"
fi
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
BUILT=$(date -u -r "$BIN/primary-vmm" '+%Y-%m-%d %H:%M UTC')
echo "binaries: $BIN (primary-vmm modified $BUILT${BIN_COMMIT:+, built from $BIN_COMMIT}), this checkout at $COMMIT"
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b --arbiter arbiter --operators op >/dev/null
ARB=$(port)
ARBITER_PID=$(spawn "$work/arbiter.log" "$BIN/arbiter" --listen "127.0.0.1:$ARB" --state-dir "$work/state" \
  --tls-dir "$work/certs/arbiter")
pids+=("$ARBITER_PID")
wait_for "$work/arbiter.log" "listening" 20

# The watcher: timestamps (epoch seconds, as $EPOCHREALTIME) the first line of
# each marker in the primary's and the joiner's logs, polling every 2 ms.
cat >"$work/watch.py" <<'PYTHON'
import os, sys, time
deadline = time.time() + float(sys.argv[1])
marks = [arg.split("|", 2) for arg in sys.argv[2:]]  # name|file|text
seen, offsets, partial = {}, {}, {}
print("ready", flush=True)
while time.time() < deadline and len(seen) < len(marks):
    now = time.time()
    for path in {m[1] for m in marks}:
        try:
            with open(path, "rb") as f:
                f.seek(offsets.get(path, 0)); data = f.read()
        except OSError:
            continue
        offsets[path] = offsets.get(path, 0) + len(data)
        *lines, partial[path] = (partial.get(path, b"") + data).split(b"\n")
        for line in lines:
            for name, file, text in marks:
                if file == path and name not in seen and text.encode() in line:
                    seen[name] = now
    time.sleep(0.002)
for name, _, _ in marks:
    print("%s=%s" % (name, "%.6f" % seen[name] if name in seen else "-"))
PYTHON

# The probe: one more client, one PING at a time (2 ms apart), from before
# the join to the end of HOLD: the longest round trip is the stall a client
# sees (the pause, and the wait for the new backup's first acknowledgement
# under the Output Rule). Prints its figures as key=value.
cat >"$work/probe.py" <<'PYTHON'
import os, socket, sys, time
port, seconds, stop_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.time() + seconds
samples, errors = [], 0
def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
s = connect()
print("ready", flush=True)
while time.time() < deadline and not os.path.exists(stop_file):
    start = time.time()
    try:
        s.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            data = s.recv(64)
            if not data: raise ConnectionError("EOF")
            reply += data
        samples.append((start, time.time() - start))
    except (OSError, ConnectionError):
        errors += 1
        samples.append((start, time.time() - start))
        try: s.close(); s = connect()
        except OSError: time.sleep(0.01)
    time.sleep(0.002)
print("errors=%d" % errors)
for start, rtt in samples:
    print("%.6f %.6f" % (start, rtt))
PYTHON
# probe figures: FILE T0 T_CLONE_DONE -> p50 before the join, the longest
# round trip before the join, from the join to the clone's end, and after.
cat >"$work/probe-windows.py" <<'PYTHON'
import sys
t0 = float(sys.argv[2]); t1 = float(sys.argv[3]) if sys.argv[3] != "-" else float("inf")
samples = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 2:
        samples.append((float(parts[0]), float(parts[1])))
def window(lo, hi):
    # a round trip belongs to every window it overlaps
    return [(s, r) for s, r in samples if s < hi and s + r >= lo]
before = sorted(r for s, r in samples if s + r < t0)
p50 = before[len(before) // 2] * 1000 if before else None
def worst(ws):
    if not ws: return "-", "-"
    s, r = max(ws, key=lambda x: x[1])
    return "%.1f" % (r * 1000), "%.0f" % ((s - t0) * 1000)
b = worst([(s, r) for s, r in samples if s + r < t0])
d = worst(window(t0, t1))
a = worst([(s, r) for s, r in samples if s + r >= t1])
print("%s\t%s\t%s\t%s\t%s\t%s" % ("%.2f" % p50 if p50 is not None else "-", b[0], d[0], d[1], a[0], a[1]))
PYTHON

ROWS=$work/rows.tsv
printf 'size\tload\trep\tok\ttotal_ms\tpause_us\tbytes\tfinal_pages\tfinal_blocks\trounds\tround_pages\tcopy_once_ms\tinstalled_ms\taccepted_ms\tprotected_line_ms\tinstalled_line_ms\tprobe_p50_ms\tprobe_max_before_ms\tprobe_max_ms\tprobe_max_at_ms\tprobe_max_after_ms\tprobe_max_after_at_ms\toutside_ms\tpolls\tpoll_ms\tsets_per_s\tused_memory\tkeys\tin_sync\tsurvived\tloadavg\tnote\n' >"$ROWS"

# one_run SIZE LOAD REP: appends a row to $ROWS.
one_run() {
  local size=$1 load=$2 rep=$3
  local loadavg; loadavg=$(cut -d' ' -f1 /proc/loadavg)   # the machine is shared: note how busy it was
  local name="kv${size%M}${load:0:1}$rep" svc repa repb1 repb2
  svc=$(port); repa=$(port); repb1=$(port); repb2=$(port)
  local plog=$work/$name-primary.log b1log=$work/$name-first-backup.log b2log=$work/$name-joiner.log
  local loadlog=$work/$name-load.log note=""
  local ppid b1pid b2pid loadpid
  ppid=$(spawn "$plog" "$BIN/primary-vmm" --vm "$name" --guest "$GUEST" --memory "$size" --serve "127.0.0.1:$svc" \
    --disk "$work/$name-a.img" --disk-size "$DISK_SIZE" --replication "127.0.0.1:$repa" \
    --tls-dir "$work/certs/node-a" --arbiter "127.0.0.1:$ARB")
  pids+=("$ppid")
  wait_for "$plog" "waiting for a backup" 30
  # The first backup replays from exit 0; it is killed so the primary runs alone.
  b1pid=$(spawn "$b1log" "$BIN/backup-vmm" --vm "$name" --guest "$GUEST" --tls-dir "$work/certs/node-b" \
    --disk "$work/$name-b1.img" --serve "127.0.0.1:$svc" --replication "127.0.0.1:$repb1" --arbiter "127.0.0.1:$ARB")
  pids+=("$b1pid")
  wait_for "$plog" "kvstore ready" 30
  wait_for "$b1log" "attached to the primary" 30
  kill -9 "$b1pid" 2>/dev/null || true
  wait_for "$plog" "running ALONE" 20

  # The write load, bounded in time (and stopped once the run is over).
  local keys value
  if [ "$load" = heavy ]; then keys=$(heavy_keys "$size"); value=$HEAVY_VALUE; else keys=$LIGHT_KEYS; value=$LIGHT_VALUE; fi
  loadpid=
  if [ "$load" != idle ]; then
    loadpid=$(spawn "$loadlog" timeout -s INT $(( WARMUP + PROTECT_TIMEOUT + HOLD + 30 )) \
      redis-benchmark -p "$svc" -t set -c "$CLIENTS" -n 10000000 -r "$keys" -d "$value" -q)
    pids+=("$loadpid")
  fi
  sleep "$WARMUP"
  local before; before=$(status_json "$name")
  echo "$before" | grep -q '"protected": false' || note+="not unprotected before the join: $(echo "$before" | cut -c1-120); "
  local commands0; commands0=$(info_field "$svc" total_commands_processed)

  # The join by clone, timed from the outside.
  local t0 t1 polls=0 protected=no poll_start poll_total=0 json watcher
  watcher=$(spawn "$work/$name-watch.txt" python3 "$work/watch.py" $(( PROTECT_TIMEOUT + 5 )) \
    "accepted|$plog|cloning the running VM into a new backup" "protected_line|$plog|PROTECTED again" \
    "installed_line|$b2log|clone installed")
  pids+=("$watcher")
  wait_for "$work/$name-watch.txt" ready 20   # python3 can take most of a second to start here
  local probepid; rm -f "$work/$name-probe.stop"
  probepid=$(spawn "$work/$name-probe.txt" python3 "$work/probe.py" "$svc" $(( PROTECT_TIMEOUT + HOLD + 20 )) "$work/$name-probe.stop")
  pids+=("$probepid")
  wait_for "$work/$name-probe.txt" ready 20
  sleep 0.2   # a few round trips before the join, for the probe's baseline
  t0=$EPOCHREALTIME
  b2pid=$(spawn "$b2log" "$BIN/backup-vmm" --vm "$name" --guest "$GUEST" --tls-dir "$work/certs/node-b" \
    --disk "$work/$name-b2.img" --serve "127.0.0.1:$svc" --replication "127.0.0.1:$repb2" --arbiter "127.0.0.1:$ARB")
  pids+=("$b2pid")
  local deadline; deadline=$(echo "$t0 + $PROTECT_TIMEOUT" | bc)
  for _ in $(seq $(( PROTECT_TIMEOUT * 200 ))); do
    poll_start=$EPOCHREALTIME
    json=$(status_json "$name")
    t1=$EPOCHREALTIME
    polls=$(( polls + 1 ))
    poll_total=$(echo "$poll_total + $t1 - $poll_start" | bc -l)
    if echo "$json" | grep -q '"protected": true'; then protected=yes; break; fi
    [ "$(echo "$t1 > $deadline" | bc)" = 1 ] && break
    kill -0 "$b2pid" 2>/dev/null || { note+="joiner exited: $(tail -2 "$b2log" | tr '\n' ' ' | cut -c1-200); "; break; }
  done
  local outside_ms="-"
  [ "$protected" = yes ] || note+="status not protected within ${PROTECT_TIMEOUT} s; "
  [ "$protected" = yes ] && outside_ms=$(ms_between "$t0" "$t1")
  local poll_ms; poll_ms=$(echo "$poll_total * 1000 / $polls" | bc -l | xargs printf '%.1f')
  local commands1; commands1=$(info_field "$svc" total_commands_processed)
  local t2=$EPOCHREALTIME
  local rate="?"
  [[ "$commands0" =~ ^[0-9]+$ && "$commands1" =~ ^[0-9]+$ ]] &&
    rate=$(echo "($commands1 - $commands0) / ($t2 - $t0)" | bc -l | xargs printf '%.0f')
  wait_for "$plog" "PROTECTED again" 10 >/dev/null 2>&1 || note+="no PROTECTED-again line; "
  for _ in $(seq 200); do kill -0 "$watcher" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$watcher" 2>/dev/null || true
  mark_ms() { local t; t=$(grep "^$1=" "$work/$name-watch.txt" | cut -d= -f2); [ -n "$t" ] && [ "$t" != - ] && ms_between "$t0" "$t" || echo -; }
  local accepted_ms protected_line_ms installed_line_ms
  accepted_ms=$(mark_ms accepted); protected_line_ms=$(mark_ms protected_line); installed_line_ms=$(mark_ms installed_line)
  sleep "$HOLD"
  touch "$work/$name-probe.stop"
  for _ in $(seq 100); do kill -0 "$probepid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$probepid" 2>/dev/null || true
  # the stall during the clone: from the joiner's start to the PROTECTED line (or status protected)
  local tdone; tdone=$(grep "^protected_line=" "$work/$name-watch.txt" | cut -d= -f2)
  [ -n "$tdone" ] && [ "$tdone" != - ] || tdone=${t1:--}
  [ "$protected" = yes ] || [ -n "$tdone" ] || tdone=-
  local probe_cols; probe_cols=$(python3 "$work/probe-windows.py" "$work/$name-probe.txt" "$t0" "$tdone" 2>/dev/null ||
    printf -- '-\t-\t-\t-\t-\t-')
  local used keysnow
  used=$(info_field "$svc" used_memory)
  keysnow=$({ timeout 5 redis-cli -p "$svc" dbsize 2>/dev/null || echo "?"; } | tr -d '\r')

  # Stop the load, then the primary cleanly: the clone must end in the same state.
  [ -z "$loadpid" ] || stop_pid "$loadpid" INT 5
  stop_pid "$ppid" TERM 20
  for _ in $(seq 200); do kill -0 "$b2pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$b2pid" 2>/dev/null && note+="joiner still running 10 s after the primary stopped; "
  stop_pid "$b2pid" TERM 5
  local in_sync=no
  grep -q "replay reached the primary's final state exactly" "$b2log" && in_sync=yes
  # Did the new backup survive? Its guest may have stopped (e.g. aborted) in
  # the replay, or the primary may have gone on alone again after the clone.
  local survived=yes
  if grep -q "guest aborted\|guest error\|halting" "$b2log"; then
    survived=no; note+="joiner: $(grep -o "guest aborted at exit [0-9]*.*\|guest error.*\|halting.*" "$b2log" | head -1 | cut -d';' -f1 | cut -c1-120); "
  fi
  if sed -n '/PROTECTED again/,$p' "$plog" | grep -q "running ALONE"; then
    survived=no; note+="the primary went on alone again after the clone; "
  fi

  # The primary's own figures.
  local line; line=$(grep "PROTECTED again" "$plog" | tail -1 || true)
  field() { echo "$line" | grep -o "$1=[0-9]*" | head -1 | cut -d= -f2 || true; }
  local total pause bytes fpages fblocks rounds round_pages copy_once installed
  total=$(field total_ms); pause=$(field pause_us); bytes=$(field bytes)
  fpages=$(field final_pages); fblocks=$(field final_blocks)
  rounds=$(grep -c "clone: round [0-9]*:" "$plog" || true)
  round_pages=$({ grep -o "clone: round [0-9]*: [0-9]* pages dirty" "$plog" || true; } | awk '{printf "%s%s", (NR>1?",":""), $4}')
  copy_once=$({ grep "clone: memory copied once" "$plog" || true; } | grep -o ' ms=[0-9]*' | head -1 | cut -d= -f2)
  installed=$({ grep "clone installed" "$b2log" || true; } | grep -o ' ms=[0-9]*' | head -1 | cut -d= -f2)
  grep -q "clone into .* failed" "$plog" && note+="$(grep -o 'clone into .* failed.*' "$plog" | tail -1 | cut -c1-200); "
  # ok: the clone completed and status said protected (in_sync is reported apart).
  local ok=no
  [ -n "$total" ] && [ "$protected" = yes ] && ok=yes
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$load" "$rep" "$ok" \
    "${total:--}" "${pause:--}" "${bytes:--}" "${fpages:--}" "${fblocks:--}" "$rounds" "${round_pages:--}" \
    "${copy_once:--}" "${installed:--}" "$accepted_ms" "$protected_line_ms" "$installed_line_ms" $(echo "$probe_cols" | tr '\t' ' ') "$outside_ms" "$polls" "$poll_ms" "$rate" "${used:-?}" "${keysnow:-?}" \
    "$in_sync" "$survived" "$loadavg" "${note:--}" >>"$ROWS"
  echo "   $size $load #$rep: total ${total:--} ms, pause ${pause:--} us, $(echo "scale=1; ${bytes:-0} / 1048576" | bc) MiB sent," \
    "final ${fpages:--} pages, rounds $rounds (dirty: ${round_pages:--}); from the joiner's start: accepted $accepted_ms, PROTECTED line $protected_line_ms, installed $installed_line_ms, status protected ${outside_ms} ms ($polls polls); probe PING (p50 before, max before | during at | after at, ms): $(echo "$probe_cols" | tr '\t' ' ')," \
    "guest commands ${rate}/s, used_memory $used, in sync: $in_sync, backup survived: $survived; load average at the start $loadavg${note:+; $note}"
  rm -f "$work/$name"-*.img
}

echo "== join by clone under a write load: sizes $SIZES, loads $LOADS, $REPEATS repetitions each (interleaved)"
for rep in $(seq "$REPEATS"); do
  for load in $LOADS; do
    for size in $SIZES; do
      one_run "$size" "$load" "$rep"
    done
  done
done

cat >"$work/summarize.py" <<'PYTHON'
import csv, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
command, started, commit, binaries, heavy_fill, heavy_value, light_keys, light_value, clients, warmup = sys.argv[2:12]

def nums(rs, key):
    out = []
    for r in rs:
        try: out.append(float(r[key]))
        except ValueError: pass
    return sorted(out)

def median(v):
    if not v: return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

def fmt(v, scale=1.0, digits=0):
    return "-" if v is None else ("{:,.%df}" % digits).format(v / scale).replace(",", " ")

groups = []
for r in rows:
    key = (r["size"], r["load"])
    if key not in groups: groups.append(key)

def load_text(load):
    if load == "heavy":
        return "-d %s, -r = %s of RAM / %s B" % (heavy_value, heavy_fill, heavy_value)
    return "-d %s -r %s" % (light_value, light_keys)

lines = []
lines.append("| guest | load | clones done | join -> protected, ms (primary's total_ms) | joiner start -> status protected, ms | pause, µs | sent, MiB (of RAM MiB) | pages in the pause | pre-copy rounds | longest PING round trip during the clone, ms (probe p50 before) | longest after it, ms | commands/s during the clone | new backup still alive at the end | clone in sync at a clean stop |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
verdicts = []
for size, load in groups:
    rs = [r for r in rows if r["size"] == size and r["load"] == load]
    ok = [r for r in rs if r["ok"] == "yes"]
    total, outside, pause = nums(rs, "total_ms"), nums(rs, "outside_ms"), nums(rs, "pause_us")
    sent, fpages, rounds, rate = nums(rs, "bytes"), nums(rs, "final_pages"), nums(rs, "rounds"), nums(rs, "sets_per_s")
    ram = float(size.rstrip("M"))
    mx = lambda v: v[-1] if v else None
    sync = sum(1 for r in rs if r["in_sync"] == "yes")
    alive = sum(1 for r in rs if r["survived"] == "yes")
    if alive < len(rs):
        verdicts.append("%s %s: WARNING %d of %d new backups were lost soon after the clone (%s)" % (
            size, load, len(rs) - alive, len(rs), "; ".join(sorted({r["note"].split(";")[0] for r in rs if r["survived"] != "yes"}))[:300]))
    stall, base, after = nums(rs, "probe_max_ms"), nums(rs, "probe_p50_ms"), nums(rs, "probe_max_after_ms")
    lines.append("| %s | %s | %d / %d | **%s** / %s | **%s** / %s | **%s** / %s | %s / %s (%.0f) | %s / %s | %s / %s | **%s** / %s (%s) | %s / %s | %s | %d / %d | %d / %d |" % (
        size, load, len(ok), len(rs), fmt(median(total)), fmt(mx(total)), fmt(median(outside)), fmt(mx(outside)),
        fmt(median(pause)), fmt(mx(pause)), fmt(median(sent), 1048576, 1), fmt(mx(sent), 1048576, 1), ram,
        fmt(median(fpages)), fmt(mx(fpages)), fmt(median(rounds)), fmt(mx(rounds)),
        fmt(median(stall)), fmt(mx(stall)), fmt(median(base), 1, 1), fmt(median(after)), fmt(mx(after)), fmt(median(rate)), alive, len(rs), sync, len(rs)))
    if sync < len(rs):
        verdicts.append("%s %s: WARNING %d of %d cloned backups did NOT reach the primary's final state at a clean stop (see the joiner logs)" % (
            size, load, len(rs) - sync, len(rs)))
    over = lambda v, limit: sum(1 for x in v if x > limit)
    paper = "paper's FT VMotion pause < 1 s: %s (max %s ms)" % (
        "met" if mx(pause) is not None and mx(pause) < 1e6 else "NOT MET", fmt(mx(pause), 1000, 1))
    if size == "64M":
        verdicts.append("64M %s: in sync <= 1 s: median %s ms, %d of %d runs over (primary's total_ms; from the joiner's start: median %s ms, %d over); "
                        "pause <= 20 ms: median %s ms, %d of %d runs over (max %s ms); %s" % (
            load, fmt(median(total)), over(total, 1000), len(total), fmt(median(outside)), over(outside, 1000),
            fmt(median(pause), 1000, 1), over(pause, 20000), len(pause), fmt(mx(pause), 1000, 1), paper))
    else:
        verdicts.append("%s %s: %s" % (size, load, paper))

print("Lockstep live-clone benchmark — started %s, ended %s; commit at start %s" % (started, sys.argv[12], commit))
print("command: %s" % command)
print("binaries: %s" % binaries)
print("load: redis-benchmark -p $SVC -t set -c %s -n 10000000 -q (light: %s; heavy: %s), %s s before the join, bounded by timeout" % (
    clients, load_text("light"), load_text("heavy"), warmup))
print()
print("Per run (total_ms, pause_us, bytes, final_pages: the primary's notice; rounds: 'clone: round K' lines, with the")
print("dirty pages each; copy1: round 0's ms; installed: the joiner's own ms; outside: joiner start -> status protected, polled")
print("back to back, poll_ms apart; one more client PINGs one at a time: rtt_b4 = its longest round trip in the 0.2 s before the join,")
print("stall = the longest from the joiner's start to the PROTECTED line, stall_at = when that began (ms after the joiner's start),")
print("after = the longest from the PROTECTED line to HOLD s after status said protected (the new backup's first acknowledgements)):")
print("%-5s %-5s %3s %3s %8s %8s %9s %6s %6s %-22s %7s %8s %6s %9s %7s %7s %8s %7s %8s %10s %9s %7s" % ("size", "load", "rep", "ok", "total_ms", "pause_us",
      "sent_MiB", "final", "rounds", "dirty pages per round", "outside", "poll_ms", "copy1", "installed", "rtt_b4", "stall", "stall_at", "after", "cmd/s", "used_mem", "sync", "loadavg"))
for r in rows:
    try: sent = "%.1f" % (float(r["bytes"]) / 1048576)
    except ValueError: sent = "-"
    print("%-5s %-5s %3s %3s %8s %8s %9s %6s %6s %-22s %7s %8s %6s %9s %7s %7s %8s %7s %8s %10s %9s %7s%s" % (r["size"], r["load"], r["rep"], r["ok"],
          r["total_ms"], r["pause_us"], sent, r["final_pages"], r["rounds"], r["round_pages"][:22], r["outside_ms"],
          r["poll_ms"], r["copy_once_ms"], r["installed_ms"], r["probe_max_before_ms"], r["probe_max_ms"], r["probe_max_at_ms"],
          r["probe_max_after_ms"], r["sets_per_s"], r["used_memory"], r["in_sync"] + ("" if r["survived"] == "yes" else "/lost"), r["loadavg"],
          "" if r["note"] == "-" else "  note: " + r["note"]))
print()
print("Summary (medians; max after the slash):")
print()
print("\n".join(lines))
print()
for v in verdicts: print("goal " + v)
PYTHON

ENDED=$(date -u '+%H:%M:%S UTC')
{
  python3 "$work/summarize.py" "$ROWS" "$COMMAND" "$STARTED" "$COMMIT" \
    "$BIN (primary-vmm modified $BUILT${BIN_COMMIT:+, built from commit $BIN_COMMIT}); guest $GUEST, disk $DISK_SIZE; $(nproc) CPUs; one arbiter; 127.0.0.1, mutual TLS" \
    "$HEAVY_FILL" "$HEAVY_VALUE" "$LIGHT_KEYS" "$LIGHT_VALUE" "$CLIENTS" "$WARMUP" "$ENDED"
  echo
  echo "---- to paste into BENCHMARKS.md ----"
  echo
  echo '```'
  echo "$COMMAND     # 10-15 min; knobs: SIZES, LOADS (idle light heavy), REPEATS, WARMUP, HOLD, CLIENTS, HEAVY_FILL, ... (see the script)"
  echo '```'
  echo
  echo "A new backup joins a running kvstore VM by cloning it while redis-benchmark writes to it; primary, joiner,"
  echo "arbiter and load on this 2-CPU machine (mutual TLS on 127.0.0.1). Loads (in the background, for ${WARMUP} s before the join):"
  echo "light: \`redis-benchmark -p \$SVC -t set -c $CLIENTS -n 10000000 -r $LIGHT_KEYS -d $LIGHT_VALUE -q\`;"
  echo "heavy: the same with \`-d $HEAVY_VALUE -r N\`, N = $(for z in $SIZES; do printf '%s for %s, ' "$(heavy_keys "$z")" "$z"; done | sed 's/, $//') ($HEAVY_FILL of RAM in values); idle: no load."
  echo "Run of $STARTED, $BIN, commit ${BIN_COMMIT:-$COMMIT}; $REPEATS runs per row, medians / max."
  echo
  python3 "$work/summarize.py" "$ROWS" "$COMMAND" "$STARTED" "$COMMIT" "$BIN" \
    "$HEAVY_FILL" "$HEAVY_VALUE" "$LIGHT_KEYS" "$LIGHT_VALUE" "$CLIENTS" "$WARMUP" "$ENDED" | sed -n '/^| guest/,/^$/p'
  python3 "$work/summarize.py" "$ROWS" "$COMMAND" "$STARTED" "$COMMIT" "$BIN" \
    "$HEAVY_FILL" "$HEAVY_VALUE" "$LIGHT_KEYS" "$LIGHT_VALUE" "$CLIENTS" "$WARMUP" "$ENDED" | grep '^goal ' | sed 's/^goal /- /'
} | tee "$OUT"
