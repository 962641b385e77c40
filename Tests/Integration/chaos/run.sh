#!/usr/bin/env bash
# Tests/Integration/chaos/run.sh — the short mode of the chaos runner
# (scripts/chaos) on the cluster harness (scripts/cluster): an arbiter, a
# primary, a backup and a standby in network namespaces under a client
# workload that keeps a history of every acknowledged write; rounds of
# random faults (SIGKILL, SIGSTOP shorter and longer than the failure
# timeout, partitions both ways and one way, arbiter restarts, killed nodes
# restarted so that roles rotate and standbys join by clone), each healed
# and waited on until the VM is protected again; then the checker: no
# acknowledged write lost, counters never back, one holder per generation,
# never two nodes serving, no replay divergence, every round recovered,
# and after `lockstep poweroff` the backup at the primary's final state.
#
# The seed changes from run to run and is printed: CHAOS_SEED=S replays a
# run's fault choices (the timing of a loaded machine may still differ).
# CHAOS_ROUNDS (12; at least 10 must run within CHAOS_SECONDS, 330 s of
# rounds), FAILURE_TIMEOUT_MS (2000), KEEP_WORK=1 keeps the state dir with
# every node's logs, the clients' histories and the metrics samples (it is
# kept anyway when a check fails). Prints "N passed, M failed".
set -u
cd "$(dirname "$0")/../../.." || exit 1
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, nft)"; exit 1; }
bash scripts/install-deps.sh nftables iputils-arping iputils-ping iproute2 python3 >/dev/null ||
  { echo "cannot install nftables iputils-arping iputils-ping iproute2 python3"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
for tool in primary-vmm backup-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
BIN=$(cd "$BIN" && pwd) || { echo "no binaries in $BIN"; exit 1; }
seed=${CHAOS_SEED:-$(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % 1000000 ))}
rounds=${CHAOS_ROUNDS:-12}
min_rounds=$(( rounds < 10 ? rounds : 10 ))
work=$(mktemp -d /tmp/lockstep-chaos-test.XXXXXX)
passed=0
failed=0
chaos_pid=
cleanup() {
  [ -n "$chaos_pid" ] && kill "$chaos_pid" 2>/dev/null && wait "$chaos_pid" 2>/dev/null
  LOCKSTEP_CLUSTER_DIR=$work/cluster bash "$root/scripts/cluster" down >/dev/null 2>&1
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$failed" -gt 0 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# chaos, short mode: seed $seed, $rounds rounds (replay: CHAOS_SEED=$seed $0)"
started=$SECONDS
# The runner prints a line per round, a summary and its checks as
# "ok   ..." / "FAIL ...: ..." lines; every wait inside it is bounded, and
# `timeout` bounds the whole.
timeout --signal=TERM --kill-after=30 600 python3 "$root/scripts/chaos" --rounds "$rounds" --seed "$seed" \
  --dir "$work" --bin "$BIN" --failure-timeout "${FAILURE_TIMEOUT_MS:-2000}" --max-seconds "${CHAOS_SECONDS:-330}" \
  --min-rounds "$min_rounds" --report "$work/report.md" >"$work/chaos.out" 2>&1 &
chaos_pid=$!
wait "$chaos_pid"
rc=$?
chaos_pid=
# Everything but the check lines, indented; the check lines counted.
grep -vE '^(ok   |FAIL )' "$work/chaos.out" | sed 's/^/     /'
while IFS= read -r line; do
  case $line in
    "ok   "*) passed=$((passed + 1)); echo "$line" ;;
    "FAIL "*) failed=$((failed + 1)); echo "$line" ;;
  esac
done <"$work/chaos.out"
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "FAIL the chaos runner ran its checks: exit status $rc, no check lines (see $work/chaos.out)"
elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "FAIL the chaos runner exited $rc with every check ok"
fi
echo "     seed $seed; $((SECONDS - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
