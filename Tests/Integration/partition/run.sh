#!/usr/bin/env bash
# Tests/Integration/partition/run.sh — failover through the arbiter under
# network partitions, with the kvstore guest, on the cluster harness
# (scripts/cluster, docs/cluster-harness.md): network-namespace hosts
# arbiter, a, b and a client on a bridge of their own (10.N.0.0/24: arbiter
# .1, a .2, b .3, client .9); the root namespace gets no address and no link.
#  1. a<->b partitioned (nft on the bridge drops all IP between them both
#     ways) while both reach the arbiter: exactly one node serves (a goes
#     ALONE or b goes LIVE), the other halts with exit status 4, the arbiter
#     is at generation 2 naming the winner, the client writes and reads on the
#     winner's address (and reads a write acknowledged before the partition),
#     the loser's address does not answer. Three rounds, a fresh cluster each
#     (--serve node: each node serves on its own address).
#  2. the arbiter stopped (SIGSTOP) before the partition: nobody goes live,
#     nobody halts, a client's write to the primary gets no reply (held by the
#     Output Rule); SIGCONT: exactly one node goes live, service resumes.
#  3. a service VIP (.100/24, moved with `ip address` + gratuitous ARP): the
#     client reaches the primary on the VIP; after kill -9 of the primary the
#     backup goes live and the client reaches it on the same VIP.
# Every wait bounded; the cleanup trap takes every cluster down (KEEP_WORK=1
# keeps the state dirs, with every node's logs, in the work dir).
# Prints "N passed, M failed"; exit 1 on a failure.
set -u
cd "$(dirname "$0")/../../.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, nft)"; exit 1; }
bash scripts/install-deps.sh redis-tools nftables iputils-arping iputils-ping iproute2 >/dev/null ||
  { echo "cannot install redis-tools nftables iputils-arping iputils-ping iproute2"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
[ -x "$BIN/primary-vmm" ] && [ -x "$BIN/backup-vmm" ] && [ -x "$BIN/arbiter" ] && [ -x "$BIN/lockstep" ] ||
  BIN=.build/release
BIN=$(cd "$BIN" && pwd) || { echo "no binaries in $BIN"; exit 1; }
GUEST=$root/Guest/build/kvstore.elf
work=$(mktemp -d /tmp/lockstep-partition-test.XXXXXX)
unset LOCKSTEP_CLUSTER_DIR

dir=
dirs=()
passed=0
failed=0
cleanup() {
  for d in "${dirs[@]:-}"; do [ -n "$d" ] && bash "$root/scripts/cluster" --dir "$d" down >/dev/null 2>&1; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
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
cl() { bash "$root/scripts/cluster" --dir "$dir" "$@"; }
# fresh NAME [up flags...]: the previous cluster down, a new one in $work/NAME
# (its `up` output in $work/NAME.up); sets the addresses.
fresh() {
  local name=$1
  shift
  [ -n "$dir" ] && cl down >/dev/null 2>&1
  dir=$work/$name
  dirs+=("$dir")
  cl up --bin "$BIN" --guest "$GUEST" --vm "$name" "$@" >"$work/$name.up" 2>&1
  local rc=$?
  eval "$(cl env 2>/dev/null)"
  ARB=${CLUSTER_ADDR_ARBITER:-} A=${CLUSTER_ADDR_A:-} B=${CLUSTER_ADDR_B:-} CLIENT=${CLUSTER_ADDR_CLIENT:-}
  VIP=${CLUSTER_VIP:-}
  return $rc
}
cli() { # host command... (from the client namespace, 3 s at most)
  local host=$1; shift
  cl exec client timeout 3 redis-cli -h "$host" -p 6379 "$@" 2>&1
}
last_lines() { tail -n "${2:-4}" "$1" 2>/dev/null | cut -c1-300 | tr '\n' '|'; }
logs_of() { echo "a: $(last_lines "$(cl logs a --path)" "${1:-4}") b: $(last_lines "$(cl logs b --path)" "${1:-4}")"; }
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("null" if v is None else str(v).lower() if isinstance(v,bool) else v)' "$1" 2>/dev/null; }
address_of() { case "$1" in a) echo "$A" ;; b) echo "$B" ;; esac; }

# decide SECONDS: waits until one node went live (a ALONE / b LIVE) and the
# other exited; sets winner (a, b, both, none), loser, the exit statuses
# (status_a, status_b: a number, or running) and the logs (out_a, out_b).
winner= loser= status_a= status_b= out_a= out_b=
decide() {
  local deadline=$((SECONDS + $1)) alone live
  out_a=$(cl logs a --path) out_b=$(cl logs b --path)
  while [ "$SECONDS" -lt "$deadline" ]; do
    alone=0 live=0
    grep -q "running ALONE" "$out_a" && alone=1
    grep -q "LIVE: this node is the primary now" "$out_b" && live=1
    if [ $((alone + live)) -ge 1 ] && { [ "$(cl exit-status a)" != running ] || [ "$(cl exit-status b)" != running ]; }; then
      break
    fi
    sleep 0.1
  done
  sleep 0.5 # a late second "winner" would show by now
  alone=0 live=0
  grep -q "running ALONE" "$out_a" && alone=1
  grep -q "LIVE: this node is the primary now" "$out_b" && live=1
  case "$alone$live" in
    10) winner=a loser=b ;;
    01) winner=b loser=a ;;
    11) winner=both loser=none ;;
    *) winner=none loser=none ;;
  esac
  status_a=$(cl exit-status a) status_b=$(cl exit-status b)
}

# ------------------------------------------------------------------------------
# The first cluster: only the network and certificates at first.
fresh part1 --serve node --no-start
up=$?
ok=1
if [ "$up" -eq 0 ]; then
  ok=0
  for host in "$ARB" "$A" "$B"; do cl exec client ping -c1 -W1 "$host" >/dev/null 2>&1 || ok=1; done
  cl exec a ping -c1 -W1 "$B" >/dev/null 2>&1 || ok=1
  # The root namespace: none of the cluster's addresses or bridge ports.
  ip -o address show | grep -q "inet ${A%.*}\." && ok=1
  ip -o link show | grep -qE ": p-(arbiter|a|b|c|client)[@:]" && ok=1
fi
check "four namespaces on a bridge reach each other (root namespace untouched)" $ok "$(cat "$work/part1.up")"
[ "$ok" -eq 0 ] || { echo "$passed passed, $failed failed"; exit 1; }
ok=0
for n in node-a node-b node-c arbiter operator; do [ -s "$dir/certs/$n/cert.pem" ] || ok=1; done
check "certificates for node-a, node-b, node-c, the arbiter and an operator" $ok "$(ls "$dir/certs" | tr '\n' ' ')"
cl start arbiter >/dev/null
json=$(cl status --json 2>/dev/null)
[ "$(json_field vm <<<"$json")" = part1 ] && [ "$(json_field generation <<<"$json")" = 0 ]
check "the arbiter answers on $ARB:7400" $? "$json $(last_lines "$(cl logs arbiter --path)")"
[ "$failed" -eq 0 ] || { echo "$passed passed, $failed failed"; exit 1; }

# 1. a <-> b partitioned, the arbiter reachable by both: exactly one serves.
winners=()
for round in 1 2 3; do
  vm=part$round
  if [ "$round" = 1 ]; then # the cluster above: its nodes started one by one
    cl start a >/dev/null && cl wait-log a "waiting for a backup" 30 && cl start b >/dev/null &&
      cl wait-protected 30 >/dev/null
  else
    fresh "$vm" --serve node
  fi && cl wait-log a "kvstore ready" 30
  check "round $round: the primary runs its guest with the backup attached" $? \
    "$(cat "$work/$vm.up" 2>/dev/null) $(logs_of)"
  [ "$(cli "$A" SET before "acked-$round")" = OK ]
  check "round $round: a write through the Output Rule before the partition" $? "$(cli "$A" PING)"
  cl partition a b
  check "round $round: a and b partitioned (nft drops all traffic between them)" $? "nft failed"
  ! cl exec a ping -c1 -W1 "$B" >/dev/null 2>&1 && cl exec a ping -c1 -W1 "$ARB" >/dev/null 2>&1 &&
    cl exec b ping -c1 -W1 "$ARB" >/dev/null 2>&1
  check "round $round: a cannot reach b; both reach the arbiter" $? "ping results differ"
  decide 30
  winners+=("$winner")
  [ "$winner" = a ] || [ "$winner" = b ]
  check "round $round: exactly one node serves (winner: ${winner}; a ALONE / b LIVE)" $? "$(logs_of 6)"
  if [ "$winner" = a ] || [ "$winner" = b ]; then
    [ "$winner" = a ] && { lost=$status_b; lost_out=$out_b; won=$status_a; } ||
      { lost=$status_a; lost_out=$out_a; won=$status_b; }
    [ "$lost" = 4 ] && grep -q "halting: the arbiter gave the VM to node-$winner" "$lost_out"
    check "round $round: the loser ($loser) halted with exit status 4, naming node-$winner" $? \
      "status $lost: $(last_lines "$lost_out" 4)"
    [ "$won" = running ]
    check "round $round: the winner ($winner) keeps running" $? "status $won"
    json=$(cl status --json 2>/dev/null)
    [ "$(json_field generation <<<"$json")" = 2 ] && [ "$(json_field primary <<<"$json")" = "node-$winner" ] &&
      [ "$(cl primary 2>/dev/null)" = "$winner" ]
    check "round $round: the arbiter is at generation 2 with node-$winner as primary" $? "$json"
    here=$(address_of "$winner") there=$(address_of "$loser")
    got=
    for _ in $(seq 20); do got=$(cli "$here" GET before); [ "$got" = "acked-$round" ] && break; sleep 0.25; done
    [ "$got" = "acked-$round" ]
    check "round $round: the write acknowledged before the partition is read on $winner ($here)" $? "got '$got'"
    [ "$(cli "$here" SET after "round-$round")" = OK ] && [ "$(cli "$here" GET after)" = "round-$round" ]
    check "round $round: the client writes and reads on the winner's address $here:6379" $? "$(cli "$here" PING)"
    reply=$(cli "$there" PING)
    [ "$reply" != PONG ] && [ "$(cl who-serves)" = "$winner" ]
    check "round $round: the loser's address $there:6379 does not answer" $? "got '$reply'; serving: $(cl who-serves | tr '\n' ' ')"
  fi
done

# 2. The arbiter stopped, then a partition: nobody goes live without it.
vm=noarb
fresh "$vm" --serve node && cl wait-log a "kvstore ready" 30
check "arbiter down: the primary runs its guest with the backup attached" $? "$(cat "$work/$vm.up") $(logs_of)"
[ "$(cli "$A" SET before acked)" = OK ]
check "arbiter down: a write before the arbiter stops" $? "$(cli "$A" PING)"
cl stop arbiter
cl partition a b
cl wait-log a "waiting for the arbiter" 15 2>/dev/null
wait_a=$?
cl wait-log b "waiting for the arbiter" 15 2>/dev/null
wait_b=$?
[ "$wait_a" -eq 0 ] && [ "$wait_b" -eq 0 ]
check "arbiter down: both nodes suspect their peer and wait for the arbiter" $? "$(logs_of)"
reply=$(cl exec client timeout 2 redis-cli -h "$A" -p 6379 SET during held 2>&1)
held=$?
sleep 1
out_a=$(cl logs a --path) out_b=$(cl logs b --path)
! grep -q "running ALONE\|halting" "$out_a" && ! grep -q "LIVE: this node\|halting" "$out_b" &&
  [ "$(cl exit-status a)" = running ] && [ "$(cl exit-status b)" = running ]
check "arbiter down: for ~3 s nobody goes live or alone, nobody halts" $? "$(logs_of)"
[ "$held" -eq 124 ] && [ -z "$reply" ]
check "arbiter down: a client write to the primary gets no reply (held)" $? "status $held, reply '$reply'"
cl cont arbiter
decide 30
winners+=("$winner(arbiter-down)")
[ "$winner" = a ] || [ "$winner" = b ]
check "arbiter back: exactly one node goes live (winner: $winner)" $? "$(logs_of 6)"
if [ "$winner" = a ] || [ "$winner" = b ]; then
  [ "$winner" = a ] && { lost=$status_b; lost_out=$out_b; } || { lost=$status_a; lost_out=$out_a; }
  [ "$lost" = 4 ]
  check "arbiter back: the loser ($loser) halted with exit status 4" $? "status $lost: $(last_lines "$lost_out")"
  here=$(address_of "$winner")
  got=
  for _ in $(seq 20); do got=$(cli "$here" SET after resumed); [ "$got" = OK ] && break; sleep 0.25; done
  [ "$got" = OK ] && [ "$(cli "$here" GET before)" = acked ]
  check "arbiter back: service resumes on $winner ($here:6379), earlier writes intact" $? "got '$got'"
  json=$(cl status --json 2>/dev/null)
  [ "$(json_field generation <<<"$json")" = 2 ]
  check "arbiter back: the arbiter is at generation 2" $? "$json"
fi

# 3. A service VIP moves with a failover (primary killed by SIGKILL).
vm=vip
fresh "$vm" --serve vip && cl wait-log a "kvstore ready" 30
check "VIP: the primary runs its guest with the backup attached" $? "$(cat "$work/$vm.up") $(logs_of)"
cl exec a ip -o address show dev eth0 | grep -q "inet $VIP/" && ! cl exec b ip -o address show dev eth0 | grep -q "inet $VIP/"
check "VIP: $VIP is on a, not on b" $? "a: $(cl exec a ip -o -4 address show dev eth0 | awk '{print $4}' | paste -sd' ')"
[ "$(cli "$VIP" SET before on-a)" = OK ]
check "VIP: the client writes on $VIP:6379 (served by a)" $? "$(cli "$VIP" PING)"
cl kill a && cl wait-log b "LIVE: this node is the primary now" 20 2>/dev/null
check "VIP: after kill -9 of the primary, b goes live" $? "b: $(last_lines "$(cl logs b --path)" 6)"
cl exec b ip -o address show dev eth0 | grep -q "inet $VIP/"
check "VIP: $VIP is on b now" $? "b: $(cl exec b ip -o -4 address show dev eth0 | awk '{print $4}' | paste -sd' ')"
got=
for _ in $(seq 20); do got=$(cli "$VIP" GET before); [ "$got" = on-a ] && break; sleep 0.25; done
[ "$got" = on-a ] && [ "$(cli "$VIP" SET after on-b)" = OK ]
check "VIP: the client reaches $VIP:6379 served by b (earlier write intact)" $? \
  "got '$got'; client neighbours: $(cl exec client ip neigh show "$VIP" | paste -sd' ')"

echo "partition winners: ${winners[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
