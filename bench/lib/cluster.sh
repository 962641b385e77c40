# bench/lib/cluster.sh — what the failover and clone benchmarks share: the
# binaries ($BIN, else the release build, else the debug build; never built
# here), the packages and guest they need, free ports, bounded waits, and
# starting and stopping processes. Sourced from the repository's root.
# shellcheck shell=bash

# Binaries: $BIN, else the release build, else the debug build (never built here).
have_bins() { for b in primary-vmm backup-vmm arbiter lockstep; do [ -x "$1/$b" ] || return 1; done; }
if [ -n "${BIN:-}" ]; then
  have_bins "$BIN" || { echo "error: $BIN lacks primary-vmm, backup-vmm, arbiter or lockstep" >&2; exit 1; }
elif have_bins .build/release; then BIN=.build/release
elif have_bins .build/debug; then BIN=.build/debug; echo "note: no complete release build; using .build/debug" >&2
else
  echo "error: no build with primary-vmm, backup-vmm, arbiter and lockstep: run swift build -c release" >&2; exit 1
fi

bash scripts/install-deps.sh redis-tools python3 >/dev/null
make -s -C Guest all >/dev/null
GUEST=Guest/build/kvstore.elf

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # file text seconds
  for _ in $(seq $(( $3 * 20 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; tail -20 "$1" >&2; return 1
}

# spawn LOG CMD...: starts CMD in the background, detached from this shell's
# job table (no "Killed" notices when the client kill -9s it); prints its pid.
spawn() {
  local log=$1; shift
  ( "$@" >"$log" 2>&1 </dev/null & echo $! )
}

# stop_pid PID SIGNAL SECONDS: signal, wait (bounded), then kill -9.
stop_pid() {
  kill -"$2" "$1" 2>/dev/null || true
  for _ in $(seq $(( $3 * 20 ))); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
}
