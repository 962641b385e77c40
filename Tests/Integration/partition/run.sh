#!/usr/bin/env bash
# Tests/Integration/partition/run.sh — failover through the arbiter under
# network partitions, with the kvstore guest, on three "hosts" that are
# network namespaces (arbiter, node a, node b) plus a client namespace, all
# joined by a bridge that lives in its own namespace (10.77.0.0/24: arbiter
# .1, a .2, b .3, client .9). The root namespace gets no address and no link.
#  1. a<->b partitioned with nft (all traffic between .2 and .3 dropped both
#     ways) while both reach the arbiter: exactly one node serves (a goes
#     ALONE or b goes LIVE), the other halts with exit status 4, the arbiter
#     is at generation 2 naming the winner, the client writes and reads on the
#     winner's address (and reads a write acknowledged before the partition),
#     the loser's address does not answer. Three rounds, a fresh VM each.
#  2. the arbiter stopped (SIGSTOP) before the partition: nobody goes live,
#     nobody halts, a client's write to the primary gets no reply (held by the
#     Output Rule); SIGCONT: exactly one node goes live, service resumes.
#  3. a service VIP (10.77.0.100/24 moved with `ip address` + gratuitous ARP):
#     the client reaches the primary on the VIP; after kill -9 of the primary
#     the backup goes live and the client reaches it on the same VIP.
# Every wait bounded; the cleanup trap kills every process it started and
# deletes its namespaces (KEEP_WORK=1 keeps the logs in the work dir).
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

tag=lsp$$
NS_BR=$tag-br NS_ARB=$tag-arb NS_A=$tag-a NS_B=$tag-b NS_C=$tag-c
ARB=10.77.0.1 A=10.77.0.2 B=10.77.0.3 CLIENT=10.77.0.9 VIP=10.77.0.100
pids=()
namespaces=()
passed=0
failed=0
cleanup() {
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -CONT "$pid" 2>/dev/null
    kill -9 "$pid" 2>/dev/null
  done
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null; done
  for ns in "${namespaces[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null; done
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
wait_for() { # file text seconds
  for _ in $(seq $(( $3 * 20 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
wait_exit() { # pid seconds
  for _ in $(seq $(( $2 * 20 ))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}
status_of() { # pid (already exited): its exit status
  wait "$1" 2>/dev/null
}
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
cli() { # host command... (from the client namespace, 3 s at most)
  local host=$1; shift
  timeout 3 ip netns exec "$NS_C" redis-cli -h "$host" -p 6379 "$@" 2>&1
}
last_lines() { tail -n "${2:-4}" "$1" 2>/dev/null | cut -c1-300 | tr '\n' '|'; }

# --- the network ------------------------------------------------------------
net_up() {
  for ns in "$NS_BR" "$NS_ARB" "$NS_A" "$NS_B" "$NS_C"; do
    ip netns add "$ns" || return 1
    namespaces+=("$ns")
    ip -n "$ns" link set lo up || return 1
  done
  ip -n "$NS_BR" link add br0 type bridge || return 1
  ip -n "$NS_BR" link set br0 up || return 1
  local i=0 ns address
  for pair in "$NS_ARB:$ARB" "$NS_A:$A" "$NS_B:$B" "$NS_C:$CLIENT"; do
    ns=${pair%%:*} address=${pair#*:}
    i=$((i + 1))
    # Both ends are made inside the namespaces: nothing touches the root one.
    ip link add eth0 netns "$ns" type veth peer name port$i netns "$NS_BR" || return 1
    ip -n "$NS_BR" link set port$i master br0 up || return 1
    ip -n "$ns" address add "$address/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
  done
  for _ in $(seq 50); do
    in_ns "$NS_C" ping -c1 -W1 "$ARB" >/dev/null 2>&1 && in_ns "$NS_A" ping -c1 -W1 "$B" >/dev/null 2>&1 &&
      return 0
    sleep 0.1
  done
  return 1
}

partition() { # drop everything between a and b, both ways, on both hosts
  local ns peer
  for pair in "$NS_A:$B" "$NS_B:$A"; do
    ns=${pair%%:*} peer=${pair#*:}
    in_ns "$ns" nft -f - <<EOF || return 1
table inet lspartition {
  chain input { type filter hook input priority 0; policy accept; ip saddr $peer drop; }
  chain output { type filter hook output priority 0; policy accept; ip daddr $peer drop; }
}
EOF
  done
}
heal() {
  in_ns "$NS_A" nft delete table inet lspartition 2>/dev/null
  in_ns "$NS_B" nft delete table inet lspartition 2>/dev/null
  return 0
}

# --- the cluster --------------------------------------------------------------
arbiter_pid=
start_arbiter() {
  ip netns exec "$NS_ARB" "$BIN/arbiter" --listen "$ARB:7400" --state-dir "$work/state" \
    --tls-dir "$work/certs/arbiter" >>"$work/arbiter.out" 2>&1 &
  arbiter_pid=$!; pids+=("$arbiter_pid")
}
# status VM: the arbiter's view as JSON (from the client namespace).
status_json() {
  timeout 10 ip netns exec "$NS_C" "$BIN/lockstep" status --arbiter "$ARB:7400" --vm "$1" \
    --tls-dir "$work/certs/op" --json 2>/dev/null
}
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("null" if v is None else str(v).lower() if isinstance(v,bool) else v)' "$1" 2>/dev/null; }

# start_pair VM [extra flags for both nodes...]: sets pa, pb, out_a, out_b;
# 0 when the primary's guest runs with its backup attached.
pa= pb= out_a= out_b=
start_pair() {
  local vm=$1; shift
  local serve_a="$A:6379" serve_b="$B:6379"
  if [ "${1:-}" = --vip ]; then shift; serve_a="$VIP:6379" serve_b="$VIP:6379"; fi
  out_a=$work/$vm-a.out out_b=$work/$vm-b.out
  ip netns exec "$NS_A" "$BIN/primary-vmm" --vm "$vm" --guest "$GUEST" --memory 64M \
    --serve "$serve_a" --disk "$work/$vm-a.img" --disk-size 16M --replication "$A:7000" \
    --tls-dir "$work/certs/node-a" --arbiter "$ARB:7400" "$@" >"$out_a" 2>&1 &
  pa=$!; pids+=("$pa")
  wait_for "$out_a" "waiting for a backup" 30 || return 1
  ip netns exec "$NS_B" "$BIN/backup-vmm" --vm "$vm" --guest "$GUEST" --tls-dir "$work/certs/node-b" \
    --disk "$work/$vm-b.img" --serve "$serve_b" --replication "$B:7000" --arbiter "$ARB:7400" \
    --primary "$A:7000" "$@" >"$out_b" 2>&1 &
  pb=$!; pids+=("$pb")
  wait_for "$out_a" "kvstore ready" 30
}
stop_pair() { # (bash's "Killed" job notices go to /dev/null)
  {
    for pid in $pa $pb; do kill -9 "$pid"; done
    for pid in $pa $pb; do wait_exit "$pid" 10 && wait "$pid"; done
  } 2>/dev/null
  heal
}

# decide SECONDS: waits until one node went live (a ALONE / b LIVE) and the
# other exited; sets winner (a, b, both, none), loser, and the exit statuses.
winner= loser= status_a= status_b=
decide() {
  local deadline=$((SECONDS + $1)) alone live
  while [ "$SECONDS" -lt "$deadline" ]; do
    alone=0 live=0
    grep -q "running ALONE" "$out_a" && alone=1
    grep -q "LIVE: this node is the primary now" "$out_b" && live=1
    if [ $((alone + live)) -ge 1 ] && { ! kill -0 "$pa" 2>/dev/null || ! kill -0 "$pb" 2>/dev/null; }; then
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
  status_a=running status_b=running
  if ! kill -0 "$pa" 2>/dev/null; then status_of "$pa"; status_a=$?; fi
  if ! kill -0 "$pb" 2>/dev/null; then status_of "$pb"; status_b=$?; fi
}
address_of() { case "$1" in a) echo "$A" ;; b) echo "$B" ;; esac; }
node_name() { case "$1" in a) echo node-a ;; b) echo node-b ;; esac; }

# ------------------------------------------------------------------------------
net_up
check "four namespaces on a bridge reach each other (root namespace untouched)" $? "network setup failed"
[ "$failed" -eq 0 ] || { echo "$passed passed, $failed failed"; exit 1; }
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b --arbiter arbiter --operators op >/dev/null
check "certificates for node-a, node-b, the arbiter and an operator" $? "lockstep certs init failed"
start_arbiter
ok=1
for _ in $(seq 100); do
  [ "$(status_json probe | json_field vm)" = probe ] && { ok=0; break; }
  kill -0 "$arbiter_pid" 2>/dev/null || break
  sleep 0.1
done
check "the arbiter answers on $ARB:7400" $ok "$(last_lines "$work/arbiter.out")"
[ "$ok" -eq 0 ] || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }

# 1. a <-> b partitioned, the arbiter reachable by both: exactly one serves.
winners=()
for round in 1 2 3; do
  vm=part$round
  start_pair "$vm"
  check "round $round: the primary runs its guest with the backup attached" $? \
    "a: $(last_lines "$out_a") b: $(last_lines "$out_b")"
  [ "$(cli "$A" SET before "acked-$round")" = OK ]
  check "round $round: a write through the Output Rule before the partition" $? "$(cli "$A" PING)"
  partition
  check "round $round: a and b partitioned (nft drops all traffic between them)" $? "nft failed"
  ! in_ns "$NS_A" ping -c1 -W1 "$B" >/dev/null 2>&1 && in_ns "$NS_A" ping -c1 -W1 "$ARB" >/dev/null 2>&1 &&
    in_ns "$NS_B" ping -c1 -W1 "$ARB" >/dev/null 2>&1
  check "round $round: a cannot reach b; both reach the arbiter" $? "ping results differ"
  decide 30
  winners+=("$winner")
  [ "$winner" = a ] || [ "$winner" = b ]
  check "round $round: exactly one node serves (winner: ${winner}; a ALONE / b LIVE)" $? \
    "a: $(last_lines "$out_a" 6) b: $(last_lines "$out_b" 6)"
  if [ "$winner" = a ] || [ "$winner" = b ]; then
    [ "$winner" = a ] && { lost=$status_b; lost_out=$out_b; won=$status_a; } ||
      { lost=$status_a; lost_out=$out_a; won=$status_b; }
    [ "$lost" = 4 ] && grep -q "halting: the arbiter gave the VM to $(node_name "$winner")" "$lost_out"
    check "round $round: the loser ($loser) halted with exit status 4, naming $(node_name "$winner")" $? \
      "status $lost: $(last_lines "$lost_out" 4)"
    [ "$won" = running ]
    check "round $round: the winner ($winner) keeps running" $? "status $won"
    json=$(status_json "$vm")
    [ "$(json_field generation <<<"$json")" = 2 ] && [ "$(json_field primary <<<"$json")" = "$(node_name "$winner")" ]
    check "round $round: the arbiter is at generation 2 with $(node_name "$winner") as primary" $? "$json"
    here=$(address_of "$winner") there=$(address_of "$loser")
    got=
    for _ in $(seq 20); do got=$(cli "$here" GET before); [ "$got" = "acked-$round" ] && break; sleep 0.25; done
    [ "$got" = "acked-$round" ]
    check "round $round: the write acknowledged before the partition is read on $winner ($here)" $? "got '$got'"
    [ "$(cli "$here" SET after "round-$round")" = OK ] && [ "$(cli "$here" GET after)" = "round-$round" ]
    check "round $round: the client writes and reads on the winner's address $here:6379" $? "$(cli "$here" PING)"
    reply=$(cli "$there" PING)
    [ "$reply" != PONG ]
    check "round $round: the loser's address $there:6379 does not answer" $? "got '$reply'"
  fi
  stop_pair
done

# 2. The arbiter stopped, then a partition: nobody goes live without it.
vm=noarb
start_pair "$vm"
check "arbiter down: the primary runs its guest with the backup attached" $? \
  "a: $(last_lines "$out_a") b: $(last_lines "$out_b")"
[ "$(cli "$A" SET before acked)" = OK ]
check "arbiter down: a write before the arbiter stops" $? "$(cli "$A" PING)"
kill -STOP "$arbiter_pid"
partition
wait_for "$out_a" "waiting for the arbiter" 15
wait_a=$?
wait_for "$out_b" "waiting for the arbiter" 15
wait_b=$?
[ "$wait_a" -eq 0 ] && [ "$wait_b" -eq 0 ]
check "arbiter down: both nodes suspect their peer and wait for the arbiter" $? \
  "a: $(last_lines "$out_a") b: $(last_lines "$out_b")"
reply=$(timeout 2 ip netns exec "$NS_C" redis-cli -h "$A" -p 6379 SET during held 2>&1)
held=$?
sleep 1
! grep -q "running ALONE\|halting" "$out_a" && ! grep -q "LIVE: this node\|halting" "$out_b" &&
  kill -0 "$pa" 2>/dev/null && kill -0 "$pb" 2>/dev/null
check "arbiter down: for ~3 s nobody goes live or alone, nobody halts" $? \
  "a: $(last_lines "$out_a") b: $(last_lines "$out_b")"
[ "$held" -eq 124 ] && [ -z "$reply" ]
check "arbiter down: a client write to the primary gets no reply (held)" $? "status $held, reply '$reply'"
kill -CONT "$arbiter_pid"
decide 30
winners+=("$winner(arbiter-down)")
[ "$winner" = a ] || [ "$winner" = b ]
check "arbiter back: exactly one node goes live (winner: $winner)" $? \
  "a: $(last_lines "$out_a" 6) b: $(last_lines "$out_b" 6)"
if [ "$winner" = a ] || [ "$winner" = b ]; then
  [ "$winner" = a ] && { lost=$status_b; lost_out=$out_b; } || { lost=$status_a; lost_out=$out_a; }
  [ "$lost" = 4 ]
  check "arbiter back: the loser ($loser) halted with exit status 4" $? "status $lost: $(last_lines "$lost_out")"
  here=$(address_of "$winner")
  got=
  for _ in $(seq 20); do got=$(cli "$here" SET after resumed); [ "$got" = OK ] && break; sleep 0.25; done
  [ "$got" = OK ] && [ "$(cli "$here" GET before)" = acked ]
  check "arbiter back: service resumes on $winner ($here:6379), earlier writes intact" $? "got '$got'"
  json=$(status_json "$vm")
  [ "$(json_field generation <<<"$json")" = 2 ]
  check "arbiter back: the arbiter is at generation 2" $? "$json"
fi
stop_pair

# 3. A service VIP moves with a failover (primary killed by SIGKILL).
vm=vip
start_pair "$vm" --vip --service-vip "$VIP/24" --service-dev eth0
check "VIP: the primary runs its guest with the backup attached" $? \
  "a: $(last_lines "$out_a") b: $(last_lines "$out_b")"
in_ns "$NS_A" ip -o address show dev eth0 | grep -q "inet $VIP/" && ! in_ns "$NS_B" ip -o address show dev eth0 | grep -q "inet $VIP/"
check "VIP: $VIP is on a, not on b" $? "a: $(in_ns "$NS_A" ip -o -4 address show dev eth0 | awk '{print $4}' | paste -sd' ')"
[ "$(cli "$VIP" SET before on-a)" = OK ]
check "VIP: the client writes on $VIP:6379 (served by a)" $? "$(cli "$VIP" PING)"
{ kill -9 "$pa"; wait_exit "$pa" 10 && wait "$pa"; } 2>/dev/null
wait_for "$out_b" "LIVE: this node is the primary now" 20
check "VIP: after kill -9 of the primary, b goes live" $? "b: $(last_lines "$out_b" 6)"
in_ns "$NS_B" ip -o address show dev eth0 | grep -q "inet $VIP/"
check "VIP: $VIP is on b now" $? "b: $(in_ns "$NS_B" ip -o -4 address show dev eth0 | awk '{print $4}' | paste -sd' ')"
got=
for _ in $(seq 20); do got=$(cli "$VIP" GET before); [ "$got" = on-a ] && break; sleep 0.25; done
[ "$got" = on-a ] && [ "$(cli "$VIP" SET after on-b)" = OK ]
check "VIP: the client reaches $VIP:6379 served by b (earlier write intact)" $? \
  "got '$got'; client neighbours: $(in_ns "$NS_C" ip neigh show "$VIP" | paste -sd' ')"
stop_pair

echo "partition winners: ${winners[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
