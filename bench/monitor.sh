#!/usr/bin/env bash
# bench/monitor.sh — benchmarks the Lockstep monitor (primary-vmm --standalone).
#
#   bash bench/monitor.sh
#
# (a) hypercall round trip: bench.elf "nop N" under primary-vmm against
#     bench/build/kvm_loop N (the same exit loop in plain C on /dev/kvm),
#     interleaved over ROUNDS rounds; medians and the ratio Swift/C.
# (b) net rings under load: bench.elf "echo" driven by bench/build/netload
#     (NET_CONNECTIONS x NET_PIPELINE outstanding 32-byte lines for
#     NET_SECONDS); messages/s, exits, rx+tx messages, messages per exit;
#     medians of NET_RUNS runs; and the CPU share of the VMM's vcpu-0 and
#     net-reactor threads and of netload while the load runs.
# (c) the VMM's own memory beside guest RAM: the echo guest under load with
#     each of MEM_SIZES; VmRSS, RssAnon, RssFile from /proc/PID/status and
#     VMM-own RSS = VmRSS - guest RAM (guest RAM is MAP_POPULATE'd).
#
# Knobs (environment): ROUNDS=5 NOP_CALLS=200000 NET_RUNS=3 NET_CONNECTIONS=50
# NET_PIPELINE=16 NET_SECONDS=5 NET_SIZE=32 MEM_SIZES="64M 512M" MEM_SECONDS=4
# RUN_TIMEOUT=120 REBUILD=0 (1: rebuild the release binary first);
# VMM=path to benchmark another primary-vmm binary (never built here).
#
# The summary goes to stdout and to bench-results/monitor.txt. Everything
# is bounded in time; only 127.0.0.1 is used; every process started here is
# killed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-5}
NOP_CALLS=${NOP_CALLS:-200000}
NET_RUNS=${NET_RUNS:-3}
NET_CONNECTIONS=${NET_CONNECTIONS:-50}
NET_PIPELINE=${NET_PIPELINE:-16}
NET_SECONDS=${NET_SECONDS:-5}
NET_SIZE=${NET_SIZE:-32}
MEM_SIZES=${MEM_SIZES:-"64M 512M"}
MEM_SECONDS=${MEM_SECONDS:-4}
# Upper bound for any single VMM run (seconds).
RUN_TIMEOUT=${RUN_TIMEOUT:-120}

VMM=${VMM:-.build/release/primary-vmm}
GUEST=Guest/build/bench.elf
BUILD=bench/build
RESULTS=bench-results/monitor.txt
CC=${CC:-/opt/swift/usr/bin/clang}

for n in ROUNDS NOP_CALLS NET_RUNS NET_CONNECTIONS NET_PIPELINE NET_SECONDS NET_SIZE RUN_TIMEOUT; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "monitor: $n must be a positive integer" >&2; exit 2; }
done
[[ $MEM_SECONDS =~ ^[0-9]+$ && $MEM_SECONDS -ge 2 ]] || { echo "monitor: MEM_SECONDS must be >= 2" >&2; exit 2; }

log() { printf '[monitor] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- cleanup -------------------------------------------------------------

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lockstep-monitor.XXXXXX")
cleanup() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.2
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for background process $1 at most $2 seconds; kills it after that.
# Returns its exit status (or 124 on timeout).
wait_bounded() {
  local pid=$1 limit=$2 waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= limit * 10)); then
      log "process $pid still running after ${limit}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 124
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  local status=0
  wait "$pid" || status=$?
  return "$status"
}

# Waits at most $3 seconds for file $1 to contain the text $2.
wait_for_text() {
  local file=$1 text=$2 limit=$3 waited=0
  until grep -qF -- "$text" "$file" 2>/dev/null; do
    ((waited < limit * 10)) || return 1
    sleep 0.1
    waited=$((waited + 1))
  done
}

# A free TCP port on 127.0.0.1.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local port tries
  for tries in $(seq 1 50); do
    port=$(shuf -i 20000-60000 -n1)
    # Refused means nobody listens there.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# The value of key=VALUE in the last line of file $2 that has it.
field() {
  local key=$1 file=$2
  { grep -oE "(^|[^a-z_])$key=[0-9.]+" "$file" || true; } | tail -n1 | sed -E "s/.*$key=//"
}

# Median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- build ---------------------------------------------------------------

[[ -r /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is not usable"
# The release binary is built only when missing (or with REBUILD=1): other
# builds may be using .build, and SwiftPM waits for its lock anyway.
if [[ $VMM == .build/release/primary-vmm && ( ! -x $VMM || ${REBUILD:-0} == 1 ) ]]; then
  log "building primary-vmm (release; a few minutes)"
  swift build -c release --product primary-vmm >&2
fi
[[ -x $VMM ]] || die "$VMM missing after the build"
if [[ $VMM == .build/release/primary-vmm && -n $(find Sources Package.swift -newer "$VMM" -type f 2>/dev/null | head -n1) ]]; then
  log "warning: $VMM is older than Sources/ or Package.swift; REBUILD=1 rebuilds it"
fi

built_guest=0
for attempt in 1 2 3; do
  # Only the guest this benchmark runs: other guests may be mid-change.
  if make -C Guest build/bench.elf >"$WORK/make.log" 2>&1; then
    built_guest=1
    break
  fi
  log "make -C Guest build/bench.elf failed (attempt $attempt); retrying in 30 s"
  tail -n 5 "$WORK/make.log" >&2 || true
  sleep 30
done
((built_guest)) || die "cannot build $GUEST (see make -C Guest build/bench.elf)"
[[ -f $GUEST ]] || die "$GUEST missing after make"

mkdir -p "$BUILD" bench-results
for prog in kvm_loop netload; do
  if [[ ! -x $BUILD/$prog || bench/$prog.c -nt $BUILD/$prog ]]; then
    log "compiling $BUILD/$prog"
    "$CC" -O2 -Wall -Wextra -o "$BUILD/$prog" "bench/$prog.c"
  fi
done

# ---- (a) hypercall round trip ---------------------------------------------

run_swift_nop() {
  local out=$WORK/nop.out err=$WORK/nop.err pid status=0
  "$VMM" --vm b --guest "$GUEST" --standalone --guest-args "nop $NOP_CALLS" >"$out" 2>"$err" &
  pid=$!
  PIDS+=("$pid")
  wait_bounded "$pid" "$RUN_TIMEOUT" || status=$?
  NS=$(grep -E '^BENCH nop ' "$out" | sed -E 's/.*ns_per_call=([0-9]+).*/\1/' | tail -n1 || true)
  [[ $status -eq 0 && -n $NS ]] || { cat "$out" "$err" >&2; die "primary-vmm nop run failed (status $status)"; }
}

run_c_nop() {
  local out=$WORK/cloop.out status=0 pid
  "$BUILD/kvm_loop" "$NOP_CALLS" >"$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_bounded "$pid" "$RUN_TIMEOUT" || status=$?
  NS=$(field ns_per_call "$out")
  [[ $status -eq 0 && -n $NS ]] || { cat "$out" >&2; die "kvm_loop failed (status $status)"; }
}

swift_ns=()
c_ns=()
for round in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so drift in the machine's load hits both.
  # (The run functions set NS rather than print it: no subshell, so the
  # EXIT trap sees every process they start.)
  if ((round % 2)); then
    run_swift_nop; s=$NS
    run_c_nop; c=$NS
  else
    run_c_nop; c=$NS
    run_swift_nop; s=$NS
  fi
  swift_ns+=("$s")
  c_ns+=("$c")
  log "round $round/$ROUNDS: nop swift=${s} ns/call, C=${c} ns/call"
done
swift_median=$(median "${swift_ns[@]}")
c_median=$(median "${c_ns[@]}")
ratio=$(awk -v s="$swift_median" -v c="$c_median" 'BEGIN { printf "%.3f", s / c }')
round_ratios=()
for i in "${!swift_ns[@]}"; do
  round_ratios+=("$(awk -v s="${swift_ns[$i]}" -v c="${c_ns[$i]}" 'BEGIN { printf "%.3f", s / c }')")
done
round_ratio_median=$(median "${round_ratios[@]}")
minimum() { printf '%s\n' "$@" | sort -g | head -n1; }
swift_min=$(minimum "${swift_ns[@]}")
c_min=$(minimum "${c_ns[@]}")
min_ratio=$(awk -v s="$swift_min" -v c="$c_min" 'BEGIN { printf "%.3f", s / c }')

# ---- (b) net rings under load ----------------------------------------------

# Starts the echo guest on a free port with memory $1; sets VMM_PID, VMM_PORT,
# VMM_OUT, VMM_ERR.
start_echo() {
  local memory=$1 tag=$2
  VMM_PORT=$(free_port)
  VMM_OUT=$WORK/echo-$tag.out
  VMM_ERR=$WORK/echo-$tag.err
  local memory_flag=()
  [[ -n $memory ]] && memory_flag=(--memory "$memory")
  "$VMM" --vm b --guest "$GUEST" --standalone "${memory_flag[@]}" --guest-args echo \
    --serve "127.0.0.1:$VMM_PORT" >"$VMM_OUT" 2>"$VMM_ERR" &
  VMM_PID=$!
  PIDS+=("$VMM_PID")
  if ! wait_for_text "$VMM_OUT" "BENCH echo serving" 30; then
    cat "$VMM_OUT" "$VMM_ERR" >&2
    die "the echo guest did not start"
  fi
}

# Waits for the echo VMM to stop after netload's shutdown line; checks its stop line.
finish_echo() {
  local status=0
  wait_bounded "$VMM_PID" 30 || status=$?
  if [[ $status -ne 0 ]] || ! grep -q 'messages_per_exit=' "$VMM_ERR"; then
    cat "$VMM_OUT" "$VMM_ERR" >&2
    die "the echo VMM did not stop cleanly (status $status)"
  fi
}

# CPU ticks (utime+stime) of the VMM's thread named $2 (all threads: "all").
thread_ticks() {
  local pid=$1 name=$2 total=0 task comm
  for task in /proc/"$pid"/task/*; do
    comm=$(cat "$task/comm" 2>/dev/null) || continue
    if [[ $name == all || $comm == "$name" ]]; then
      # Fields after the ")" that ends comm: utime and stime are the 12th and 13th.
      total=$((total + $(sed -E 's/^.*\) //' "$task/stat" | awk '{ print $12 + $13 }')))
    fi
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
cpu_percent() { awk -v t="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN { printf "%.0f", 100 * t / hz / s }'; }

net_rate=()
net_exits=()
net_rx=()
net_tx=()
net_per_exit=()
net_lines_per_exit=()
net_guest_waits=()
net_cpu_vcpu=()
net_cpu_reactor=()
net_cpu_vmm=()
net_cpu_load=()
for run in $(seq 1 "$NET_RUNS"); do
  start_echo "" "net$run"
  load_out=$WORK/netload-$run.out
  t0=$(date +%s.%N)
  vcpu0=$(thread_ticks "$VMM_PID" vcpu-0)
  reactor0=$(thread_ticks "$VMM_PID" net-reactor)
  all0=$(thread_ticks "$VMM_PID" all)
  # -n: no shutdown yet, so the VMM's thread times can be read after the load.
  "$BUILD/netload" -p "$VMM_PORT" -c "$NET_CONNECTIONS" -q "$NET_PIPELINE" -d "$NET_SECONDS" \
    -s "$NET_SIZE" -n >"$load_out" 2>&1 &
  load_pid=$!
  PIDS+=("$load_pid")
  status=0
  wait_bounded "$load_pid" $((NET_SECONDS + 40)) || status=$?
  [[ $status -eq 0 ]] || { cat "$load_out" >&2; die "netload failed (status $status)"; }
  elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  net_cpu_vcpu+=("$(cpu_percent $(($(thread_ticks "$VMM_PID" vcpu-0) - vcpu0)) "$elapsed")")
  net_cpu_reactor+=("$(cpu_percent $(($(thread_ticks "$VMM_PID" net-reactor) - reactor0)) "$elapsed")")
  net_cpu_vmm+=("$(cpu_percent $(($(thread_ticks "$VMM_PID" all) - all0)) "$elapsed")")
  net_cpu_load+=("$(awk -v u="$(field user_s "$load_out")" -v s="$(field sys_s "$load_out")" -v e="$elapsed" \
    'BEGIN { printf "%.0f", 100 * (u + s) / e }')")
  "$BUILD/netload" -p "$VMM_PORT" -S >>"$load_out" 2>&1 || { cat "$load_out" >&2; die "netload -S failed"; }
  finish_echo
  net_rate+=("$(field msgs_per_sec "$load_out")")
  exits=$(field exits "$VMM_ERR")
  net_exits+=("$exits")
  rx=$(field rx_messages "$VMM_ERR")
  tx=$(field tx_messages "$VMM_ERR")
  net_rx+=("$rx")
  net_tx+=("$tx")
  net_per_exit+=("$(field messages_per_exit "$VMM_ERR")")
  net_guest_waits+=("$(field waits "$VMM_OUT")")
  net_lines_per_exit+=("$(awk -v b="$(field bytes "$VMM_OUT")" -v s="$NET_SIZE" -v e="$exits" \
    'BEGIN { printf "%.0f", b / s / e }')")
  log "net run $run/$NET_RUNS: $(head -n1 "$load_out"); VMM: exits=$exits rx=$rx tx=$tx" \
    "messages_per_exit=${net_per_exit[-1]} lines_per_exit=${net_lines_per_exit[-1]};" \
    "CPU% vcpu-0=${net_cpu_vcpu[-1]} net-reactor=${net_cpu_reactor[-1]} VMM=${net_cpu_vmm[-1]} netload=${net_cpu_load[-1]}"
done
rate_median=$(median "${net_rate[@]}")
exits_median=$(median "${net_exits[@]}")
rx_median=$(median "${net_rx[@]}")
tx_median=$(median "${net_tx[@]}")
per_exit_median=$(median "${net_per_exit[@]}")
lines_per_exit_median=$(median "${net_lines_per_exit[@]}")
waits_median=$(median "${net_guest_waits[@]}")
exits_per_sec=$(awk -v e="$exits_median" -v s="$NET_SECONDS" 'BEGIN { printf "%.0f", e / s }')
us_per_exit=$(awk -v e="$exits_median" -v s="$NET_SECONDS" 'BEGIN { printf "%.0f", 1e6 * s / e }')
cpu_vcpu_median=$(median "${net_cpu_vcpu[@]}")
cpu_reactor_median=$(median "${net_cpu_reactor[@]}")
cpu_vmm_median=$(median "${net_cpu_vmm[@]}")
cpu_load_median=$(median "${net_cpu_load[@]}")

# ---- (c) VMM memory beside guest RAM ------------------------------------------

# kB in a size like 64M / 1G.
size_kb() {
  local size=$1 number unit
  number=${size%[KkMmGg]}
  unit=${size: -1}
  case $unit in
    K | k) echo "$number" ;;
    M | m) echo $((number * 1024)) ;;
    G | g) echo $((number * 1024 * 1024)) ;;
    *) echo $((size / 1024)) ;;
  esac
}

status_kb() { awk -v key="$1:" '$1 == key { print $2 }' "$2"; }

mem_rows=()
for size in $MEM_SIZES; do
  start_echo "$size" "mem$size"
  load_out=$WORK/netload-mem$size.out
  "$BUILD/netload" -p "$VMM_PORT" -c "$NET_CONNECTIONS" -q "$NET_PIPELINE" -d "$MEM_SECONDS" \
    -s "$NET_SIZE" >"$load_out" 2>&1 &
  load_pid=$!
  PIDS+=("$load_pid")
  # Sample /proc/PID/status once a second while the load runs; keep the
  # sample with the largest VmRSS.
  best_rss=0
  snapshot=$WORK/status-$size
  for tick in $(seq 1 $((MEM_SECONDS - 1))); do
    sleep 1
    cp "/proc/$VMM_PID/status" "$WORK/status.now" 2>/dev/null || die "the echo VMM died under load"
    rss=$(status_kb VmRSS "$WORK/status.now")
    if ((rss > best_rss)); then
      best_rss=$rss
      cp "$WORK/status.now" "$snapshot"
    fi
  done
  status=0
  wait_bounded "$load_pid" $((MEM_SECONDS + 40)) || status=$?
  [[ $status -eq 0 ]] || { cat "$load_out" >&2; die "netload failed (status $status)"; }
  finish_echo
  ram_kb=$(size_kb "$size")
  vmrss=$(status_kb VmRSS "$snapshot")
  anon=$(status_kb RssAnon "$snapshot")
  file=$(status_kb RssFile "$snapshot")
  shmem=$(status_kb RssShmem "$snapshot")
  hwm=$(status_kb VmHWM "$snapshot")
  own=$((vmrss - ram_kb))
  own_anon=$((anon - ram_kb))
  mem_rows+=("$(printf '%-8s %10s %10s %10s %10s %10s %14s %14s' "$size" "$ram_kb" "$vmrss" "$anon" "$file" \
    "$shmem" "$own" "$own_anon")")
  log "memory $size: VmRSS=${vmrss} kB RssAnon=${anon} kB RssFile=${file} kB VmHWM=${hwm} kB -> VMM own ${own} kB; $(head -n1 "$load_out")"
done

# ---- summary ------------------------------------------------------------------

{
  echo "Lockstep monitor benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -srm); $(nproc) CPUs; kvm modules: $(ls /sys/module 2>/dev/null | grep -E '^kvm' | paste -sd, - || true)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)'); VMM: $VMM ($(date -u -r "$VMM" '+built %Y-%m-%d %H:%M UTC'))"
  echo
  echo "(a) hypercall round trip, ${NOP_CALLS} LS_OP_NOP calls, ${ROUNDS} interleaved rounds (median)"
  printf '  %-38s %10s   %s\n' "primary-vmm + bench.elf nop (ns/call)" "$swift_median" "min $swift_min; runs: ${swift_ns[*]}"
  printf '  %-38s %10s   %s\n' "kvm_loop, plain C (ns/call)" "$c_median" "min $c_min; runs: ${c_ns[*]}"
  printf '  %-38s %10s   %s\n' "ratio Swift / C (of medians)" "$ratio" "goal <= 1.05; of minima $min_ratio; per-round median $round_ratio_median (${round_ratios[*]})"
  echo
  echo "(b) echo under load: ${NET_CONNECTIONS} connections x pipeline ${NET_PIPELINE}, ${NET_SIZE}-byte lines, ${NET_SECONDS} s; median of ${NET_RUNS} runs"
  echo "    (a ring message is one read() of one connection: ~${NET_PIPELINE} lines; exits are the whole VM run's)"
  printf '  %-38s %10s   %s\n' "messages/s (32-byte lines echoed)" "$rate_median" "runs: ${net_rate[*]}"
  printf '  %-38s %10s   %s\n' "VMM exits" "$exits_median" "runs: ${net_exits[*]} (~${exits_per_sec}/s, ~${us_per_exit} us apart)"
  printf '  %-38s %10s   %s\n' "guest waits" "$waits_median" "runs: ${net_guest_waits[*]}"
  printf '  %-38s %10s   %s\n' "rx ring messages" "$rx_median" "runs: ${net_rx[*]}"
  printf '  %-38s %10s   %s\n' "tx ring messages" "$tx_median" "runs: ${net_tx[*]}"
  printf '  %-38s %10s   %s\n' "ring messages per exit (rx+tx)/exits" "$per_exit_median" "runs: ${net_per_exit[*]}"
  printf '  %-38s %10s   %s\n' "lines echoed per exit" "$lines_per_exit_median" "runs: ${net_lines_per_exit[*]}"
  printf '  %-38s %10s   %s\n' "CPU % vcpu-0 thread" "$cpu_vcpu_median" "runs: ${net_cpu_vcpu[*]}"
  printf '  %-38s %10s   %s\n' "CPU % net-reactor thread" "$cpu_reactor_median" "runs: ${net_cpu_reactor[*]}"
  printf '  %-38s %10s   %s\n' "CPU % whole VMM" "$cpu_vmm_median" "runs: ${net_cpu_vmm[*]}"
  printf '  %-38s %10s   %s\n' "CPU % netload" "$cpu_load_median" "runs: ${net_cpu_load[*]} (of 2 CPUs = 200%)"
  echo
  echo "(c) VMM memory while serving under load (kB; peak VmRSS of 1 s samples)"
  printf '  %-8s %10s %10s %10s %10s %10s %14s %14s\n' "memory" "guest RAM" "VmRSS" "RssAnon" "RssFile" "RssShmem" \
    "VmRSS-RAM" "RssAnon-RAM"
  for row in "${mem_rows[@]}"; do echo "  $row"; done
} | tee "$RESULTS"
log "summary written to $RESULTS"
