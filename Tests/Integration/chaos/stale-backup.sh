#!/usr/bin/env bash
# Tests/Integration/chaos/stale-backup.sh — a regression scenario the chaos
# runner (scripts/chaos) found: a backup frozen past the failure timeout
# comes back right after a standby was cloned in.
#
#   b (backup) SIGSTOPped: a (primary) suspects it, wins generation 2, goes
#   on alone; the standby c joins a by clone; c is slow to install the
#   clone and acknowledge (SIGSTOPped here, to hold that window open); b is
#   resumed and reconnects with a `hello` that resumes from the position it
#   held at generation 1.
#
# What must happen: a refuses b (it went on alone: the log b would resume
# from is gone; b must join by cloning), c's session is untouched, every
# acknowledged write survives, INCR replies never go back.
# What happened (main at 3743073): a closes c's session to make room for b
# ("replacing the logging session of node-c"), accepts b's resume
# (LogChannel.canResume is `position >= acknowledged`, and rejoin(at:) reset
# acknowledged to 0), streams it the log from the clone's exit, and releases
# output on b's acknowledgements; b's replay diverges (exit 3); c, refused
# on reconnect ("the log before exit N is no longer held"), suspects a, wins
# generation 3 at the arbiter and goes live at the clone's exit, without the
# writes a acknowledged meanwhile: the counter goes back.
# Prints "N passed, M failed"; the cleanup trap takes the cluster down.
set -u
cd "$(dirname "$0")/../../.." || exit 1
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, nft)"; exit 1; }
bash scripts/install-deps.sh redis-tools nftables iputils-arping iputils-ping iproute2 python3 >/dev/null ||
  { echo "cannot install redis-tools nftables iputils-arping iputils-ping iproute2 python3"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
for tool in primary-vmm backup-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
BIN=$(cd "$BIN" && pwd) || { echo "no binaries in $BIN"; exit 1; }
work=$(mktemp -d /tmp/lockstep-stale-backup.XXXXXX)
export LOCKSTEP_CLUSTER_DIR=$work/cluster
passed=0
failed=0
load=
cleanup() {
  touch "$work/stop"
  [ -n "$load" ] && kill "$load" 2>/dev/null
  bash "$root/scripts/cluster" down >/dev/null 2>&1
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$failed" -gt 0 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
check() { # name condition-exit-status detail
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1: $3"
  fi
}
cl() { bash "$root/scripts/cluster" "$@"; }
grep_log() { grep -a "$2" "$(cl logs "$1" --path)" 2>/dev/null | cut -c1-260 | tr '\n' '|'; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

cl up --bin "$BIN" --standby --failure-timeout "${FAILURE_TIMEOUT_MS:-2000}" >"$work/up.out" 2>&1
check "up --standby" $? "$(cat "$work/up.out")"
eval "$(cl env)"
# INCR w:counter in a loop from the client namespace; every reply recorded.
cat >"$work/load.sh" <<'EOF'
while [ ! -e "$2" ]; do
  r=$(timeout 3 redis-cli -h "$1" INCR w:counter 2>/dev/null)
  [[ $r =~ ^[0-9]+$ ]] && echo "$r" >>"$3"
done
EOF
cl exec client bash "$work/load.sh" "$CLUSTER_VIP" "$work/stop" "$work/acks" >/dev/null 2>&1 &
load=$!
for _ in $(seq 100); do [ "$(lines "$work/acks")" -ge 20 ] && break; sleep 0.1; done

cl stop b &&
  cl wait-log a "running ALONE" 30 2>/dev/null &&
  cl wait-log a "clone: memory copied once" 30 2>/dev/null &&
  cl stop c &&
  cl wait-log a "PROTECTED again" 15 2>/dev/null
check "b frozen: a goes on alone and clones c in (c then frozen before it acknowledges)" $? \
  "$(grep_log a "ALONE\|clone")"
from=$(( $(lines "$(cl logs a --path)") + 1 ))
cl cont b
sleep 1
cl cont c
sleep $(( ${FAILURE_TIMEOUT_MS:-2000} * 3 / 1000 ))
after=$(tail -n +"$from" "$(cl logs a --path)")
! grep -aq "replacing the logging session of node-c\|backup attached.*node-b" <<<"$after"
check "a refuses b's stale resume and keeps c's session" $? "$(grep -a "replacing\|attached\|refused" <<<"$after" | cut -c1-220 | tr '\n' '|')"
[ "$(cl exit-status b)" != 3 ] && ! grep -aq "divergence" "$(cl logs b --path)"
check "b does not replay a log it does not hold (no divergence, no exit 3)" $? \
  "exit $(cl exit-status b): $(grep_log b "replay ended")"
json=$(cl status --json 2>/dev/null)
grep -q '"generation": 2' <<<"$json" && grep -q '"primary": "node-a"' <<<"$json" && grep -q '"protected": true' <<<"$json"
check "a still holds the VM at generation 2, protected by c" $? "$json $(grep_log c "won generation\|LIVE")"
touch "$work/stop"
wait "$load" 2>/dev/null
load=
back=$(awk 'NR > 1 && $1 <= prev { printf "%s then %s; ", prev, $1 } { prev = $1 }' "$work/acks")
acked=$(lines "$work/acks")
[ -z "$back" ] && [ "$acked" -gt 20 ]
check "INCR replies never go back ($acked acknowledged)" $? "$back"
counter=$(cl exec client timeout 5 redis-cli -h "$CLUSTER_VIP" GET w:counter 2>/dev/null)
last=$(tail -n 1 "$work/acks")
[ "${counter:-0}" -ge "${last:-0}" ]
check "the counter ($counter) >= the last acknowledged reply ($last)" $? ""
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
