#!/usr/bin/env bash
# bench/kvstore.sh — the kvstore guest under redis-benchmark, against a native
# redis-server started by this script (issue 3).
#
#   bash bench/kvstore.sh
#
# For each of ROUNDS rounds and each pipeline depth in PIPELINES, runs
#   redis-benchmark -c CLIENTS -n REQUESTS -t set,get,incr -P <depth> --csv
# against (a) primary-vmm --standalone --memory 512M with Guest/build/kvstore.elf
# (release binary, a fresh VM per run) and (b) redis-server --save ''
# --appendonly no, interleaved (the order alternates every round). Reports
# the median requests/s of each, the ratio VM / native, and where the VM's
# time goes: its exits (from the VMM's stop line), exits per request, ring
# messages per exit, commands per guest wait (the guest's INFO stats) and
# the CPU time of the VMM's vcpu-0 and net-reactor threads and of
# redis-benchmark during the run.
#
# Knobs (environment): ROUNDS=3 REQUESTS=200000 CLIENTS=50 PIPELINES="1 16"
# RUN_TIMEOUT=300 VMM=.build/release/primary-vmm (never built here unless
# REBUILD=1 and no other swift build is running).
#
# Output: stdout and bench-results/kvstore.txt. Only 127.0.0.1 is used; every
# process started here is killed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
VMM=${VMM:-.build/release/primary-vmm}
GUEST=Guest/build/kvstore.elf
RESULTS=bench-results/kvstore.txt
TESTS=set,get,incr

log() { printf '[kvstore-bench] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lockstep-kvbench.XXXXXX")
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash scripts/install-deps.sh redis-tools redis-server >/dev/null
make -s -C Guest all >/dev/null
if [ "${REBUILD:-0}" = 1 ]; then
  pgrep -f swift-build >/dev/null && die "another swift build is running; not rebuilding"
  swift build -c release >/dev/null
fi
[ -x "$VMM" ] || die "no $VMM (run: swift build -c release)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# CPU seconds (utime+stime) of each thread of PID, as "name=seconds ...".
thread_cpu() {
  python3 - "$1" <<'EOF'
import os, sys
pid = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
out = {}
try:
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            name = open("/proc/%s/task/%s/comm" % (pid, tid)).read().strip()
            f = open("/proc/%s/task/%s/stat" % (pid, tid)).read().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0) + (int(f[11]) + int(f[12])) / hz
        except OSError:
            pass
except OSError:
    pass
print(" ".join("%s=%.2f" % (k.replace(" ", "_"), v) for k, v in sorted(out.items())))
EOF
}

# run_benchmark PORT DEPTH OUT — redis-benchmark CSV into OUT; prints its CPU seconds.
run_benchmark() {
  local port=$1 depth=$2 out=$3
  local t0 t1
  /usr/bin/time -f "%U %S" -o "$out.time" timeout "$RUN_TIMEOUT" \
    redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$REQUESTS" -t "$TESTS" -P "$depth" --csv >"$out" 2>"$out.err" ||
    die "redis-benchmark failed on port $port: $(tail -3 "$out.err")"
  grep -qiE 'error|warning' "$out.err" "$out" && die "redis-benchmark reported errors on port $port: $(cat "$out.err" | head -3)"
  awk '{printf "%.2f\n", $1 + $2}' "$out.time"
}

NATIVE_PORT=$(free_port)
redis-server --port "$NATIVE_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
NATIVE_PID=$!
PIDS+=("$NATIVE_PID")
for _ in $(seq 100); do redis-cli -p "$NATIVE_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$NATIVE_PORT" PING >/dev/null || die "redis-server did not start"

RUNS=$WORK/runs.txt
: >"$RUNS"

bench_native() { # round depth
  local out=$WORK/native-$1-$2.csv cpu before after
  redis-cli -p "$NATIVE_PORT" FLUSHALL >/dev/null
  before=$(thread_cpu "$NATIVE_PID")
  cpu=$(run_benchmark "$NATIVE_PORT" "$2" "$out")
  after=$(thread_cpu "$NATIVE_PID")
  echo "native round=$1 depth=$2 bench_cpu=$cpu csv=$out before: $before after: $after" >>"$RUNS"
  log "native  round $1 -P $2: $(tr '\n' ' ' <"$out" | sed 's/"test","rps"[^ ]* //')"
}

bench_vm() { # round depth
  local port out=$WORK/vm-$1-$2.csv pid cpu before after stats
  port=$(free_port)
  "$VMM" --vm kvbench --guest "$GUEST" --standalone --serve "127.0.0.1:$port" --memory 512M \
    >"$WORK/vm-$1-$2.out" 2>"$WORK/vm-$1-$2.err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do
    grep -q '^kvstore ready' "$WORK/vm-$1-$2.out" 2>/dev/null && redis-cli -p "$port" PING >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "the VM exited: $(cat "$WORK/vm-$1-$2.err")"
    sleep 0.1
  done
  redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
  before=$(thread_cpu "$pid")
  cpu=$(run_benchmark "$port" "$2" "$out")
  after=$(thread_cpu "$pid")
  stats=$(redis-cli -p "$port" INFO stats | tr -d '\r' | grep -E '^(total_commands_processed|lockstep_waits|lockstep_rx_messages):' | tr '\n' ' ')
  kill -TERM "$pid"
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  local stop
  stop=$(grep -o 'exits=[0-9]* rx_messages=[0-9]* tx_messages=[0-9]* messages_per_exit=[0-9.]* seconds=[0-9.]*' "$WORK/vm-$1-$2.err" | tail -1)
  [ -n "$stop" ] || die "no stop line from the VMM: $(tail -3 "$WORK/vm-$1-$2.err")"
  echo "vm round=$1 depth=$2 bench_cpu=$cpu csv=$out stop: $stop stats: $stats before: $before after: $after" >>"$RUNS"
  log "VM      round $1 -P $2: $(tr '\n' ' ' <"$out" | sed 's/"test","rps"[^ ]* //') | $stop"
}

START=$(date +%s)
for round in $(seq "$ROUNDS"); do
  for depth in $PIPELINES; do
    if [ $((round % 2)) = 1 ]; then
      bench_vm "$round" "$depth"
      bench_native "$round" "$depth"
    else
      bench_native "$round" "$depth"
      bench_vm "$round" "$depth"
    fi
  done
done
ELAPSED=$(($(date +%s) - START))

mkdir -p bench-results
python3 - "$RUNS" "$REQUESTS" "$CLIENTS" "$ROUNDS" "$ELAPSED" "$VMM" >"$WORK/summary.txt" <<'EOF'
import csv, re, statistics, subprocess, sys, time, os
runs_path, requests, clients, rounds, elapsed, vmm = sys.argv[1:7]
requests, clients, rounds = int(requests), int(clients), int(rounds)
rps = {}     # (target, depth, test) -> [rps...]
vm = {}      # depth -> list of dicts
bench_cpu = {}
server_cpu = {}  # depth -> native redis-server CPU s
for line in open(runs_path):
    line = line.strip()
    target = line.split()[0]
    kv = dict(re.findall(r"(\w+)=([^ ]+)", line))
    depth = int(kv["depth"])
    for row in csv.DictReader(open(kv["csv"])):
        rps.setdefault((target, depth, row["test"]), []).append(float(row["rps"]))
    bench_cpu.setdefault((target, depth), []).append(float(kv["bench_cpu"]))
    before = dict(re.findall(r"(\S+)=([0-9.]+)", line.split("before:")[1].split("after:")[0]))
    after = dict(re.findall(r"(\S+)=([0-9.]+)", line.split("after:")[1]))
    if target == "native":
        server_cpu.setdefault(depth, []).append(sum(float(v) for v in after.values()) - sum(float(v) for v in before.values()))
    if target == "vm":
        d = {k: float(kv[k]) for k in ("exits", "rx_messages", "tx_messages", "messages_per_exit", "seconds")}
        st = dict(re.findall(r"(\w+):(\d+)", line.split("stats:")[1].split("before:")[0]))
        d["commands"] = int(st.get("total_commands_processed", 0))
        d["waits"] = int(st.get("lockstep_waits", 0))
        d["guest_rx"] = int(st.get("lockstep_rx_messages", 0))
        d["cpu_vcpu"] = float(after.get("vcpu-0", 0)) - float(before.get("vcpu-0", 0))
        d["cpu_reactor"] = float(after.get("net-reactor", 0)) - float(before.get("net-reactor", 0))
        d["cpu_vmm"] = sum(float(v) for v in after.values()) - sum(float(v) for v in before.values())
        vm.setdefault(depth, []).append(d)

med = statistics.median
tests = ["SET", "GET", "INCR"]
depths = sorted(vm)
out = []
p = out.append
host = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()
try:
    commit = subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit, dirty = "?", ""
native_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
p("kvstore benchmark (issue 3) — %s" % time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
p("host: %s; %d CPUs; commit %s%s; VMM %s (built %s)" % (host, os.cpu_count(), commit, " (dirty tree)" if dirty else "",
  vmm, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(vmm)))))
p("command: redis-benchmark -c %d -n %d -t set,get,incr -P {%s} --csv; %d interleaved rounds, medians;" %
  (clients, requests, ",".join(map(str, depths)), rounds))
p("  VM: primary-vmm --standalone --memory 512M, Guest/build/kvstore.elf, a fresh VM per run;")
p("  native: redis-server %s --save '' --appendonly no, same machine, same run." % native_version)
p("")
p("%-4s %-5s %14s %14s %9s   %s" % ("-P", "test", "VM req/s", "native req/s", "VM/native", "VM runs / native runs"))
for depth in depths:
    for t in tests:
        v = rps.get(("vm", depth, t), [])
        n = rps.get(("native", depth, t), [])
        if not v or not n:
            continue
        p("%-4d %-5s %14.0f %14.0f %9.2f   %s / %s" % (depth, t, med(v), med(n), med(v) / med(n),
          " ".join("%.0f" % x for x in v), " ".join("%.0f" % x for x in n)))
p("")
p("Where the VM's time goes (medians over the runs; one run = set+get+incr, %d requests):" % (3 * requests))
p("%-4s %9s %10s %11s %11s %11s %9s %9s %9s %9s" % ("-P", "exits", "exits/req", "req/exit", "ring msg/", "commands/",
  "vcpu-0", "reactor", "VMM", "bench"))
p("%-4s %9s %10s %11s %11s %11s %9s %9s %9s %9s" % ("", "", "", "", "exit", "guest wait", "CPU s", "CPU s", "CPU s", "CPU s"))
for depth in depths:
    rows = vm[depth]
    exits = med([r["exits"] for r in rows])
    reqs = 3 * requests
    p("%-4d %9.0f %10.4f %11.1f %11.1f %11.1f %9.2f %9.2f %9.2f %9.2f" % (
        depth, exits, exits / reqs, reqs / exits, med([r["messages_per_exit"] for r in rows]),
        med([r["commands"] / r["waits"] if r["waits"] else 0 for r in rows]),
        med([r["cpu_vcpu"] for r in rows]), med([r["cpu_reactor"] for r in rows]), med([r["cpu_vmm"] for r in rows]),
        med(bench_cpu[("vm", depth)])))
p("  native, same runs: redis-server CPU s " + ", ".join("-P %d %.2f" % (d, med(server_cpu[d])) for d in depths) +
  "; redis-benchmark CPU s " + ", ".join("-P %d %.2f" % (d, med(bench_cpu[("native", d)])) for d in depths))
p("  CPU per request (us), -P 1: VMM %.1f (vcpu-0 %.1f, net-reactor %.1f) vs redis-server %.1f" % (
  med([r["cpu_vmm"] for r in vm[depths[0]]]) * 1e6 / (3 * requests), med([r["cpu_vcpu"] for r in vm[depths[0]]]) * 1e6 / (3 * requests),
  med([r["cpu_reactor"] for r in vm[depths[0]]]) * 1e6 / (3 * requests), med(server_cpu[depths[0]]) * 1e6 / (3 * requests)))
p("  (exits, ring messages: the VMM's stop line, whole VM run incl. startup; commands/guest wait: the guest's")
p("   INFO stats total_commands_processed / lockstep_waits; CPU: /proc thread times during redis-benchmark)")
p("")
p("total benchmark time: %s s" % elapsed)
print("\n".join(out))
EOF
cat "$WORK/summary.txt"
cp "$WORK/summary.txt" "$RESULTS"
{
  echo
  echo "raw runs:"
  sed "s#$WORK/##g" "$RUNS"
} >>"$RESULTS"
log "results in $RESULTS"
