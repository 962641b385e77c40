#!/usr/bin/env bash
# Tests/Integration/harness/run.sh — failover on the cluster harness
# (scripts/cluster, docs/cluster-harness.md): arbiter, a (primary-vmm), b
# (backup-vmm) and a standby c (backup-vmm) in network namespaces on a
# bridge, the kvstore guest on the service VIP, clients in the client
# namespace.
#  1. the harness: `up --standby` comes up protected (a primary, b backup, c
#     standing by) and refuses a second `up`; bad input is refused naming it;
#     a one-way partition drops one direction only and `heal` undoes it;
#     each process's /metrics answers (when the binaries have --metrics);
#  2. kill -9 of the primary under redis-cli writes from the client
#     namespace: b goes live on the VIP, c joins it by clone on its own and
#     the VM is protected again; writes go on;
#  3. the killed node, restarted with `start` (its own primary-vmm command
#     line), joins as a standby, and as the backup by clone once c is killed;
#     c restarted stands by; the backup paused (SIGSTOP) for less than the
#     failure timeout changes nothing; the arbiter restarted keeps its record;
#     the primary frozen past the failure timeout: the backup suspects it by
#     silence alone and goes live, the frozen one resumed halts (exit 4), the
#     standby joins by clone;
#  4. every acknowledged write is readable on the VIP, the counter never went
#     back; `down` leaves no namespace and no process, twice.
# Every VMM runs with --failure-timeout $FAILURE_TIMEOUT_MS (2000 unless
# set; a SIGKILL is seen at once through the refused channel, and on a
# loaded 2-core machine a shorter one risks false suspicions). Every wait
# bounded; the cleanup trap takes the cluster down (KEEP_WORK=1 keeps its
# state dir with every node's logs). Prints "N passed, M failed".
set -u
cd "$(dirname "$0")/../../.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, nft)"; exit 1; }
bash scripts/install-deps.sh redis-tools nftables iputils-arping iputils-ping iproute2 python3 >/dev/null ||
  { echo "cannot install redis-tools nftables iputils-arping iputils-ping iproute2 python3"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
for tool in primary-vmm backup-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
BIN=$(cd "$BIN" && pwd) || { echo "no binaries in $BIN"; exit 1; }
FAILURE_TIMEOUT_MS=${FAILURE_TIMEOUT_MS:-2000}
work=$(mktemp -d /tmp/lockstep-harness-test.XXXXXX)
export LOCKSTEP_CLUSTER_DIR=$work/cluster
passed=0
failed=0
load=
cleanup() {
  [ -n "$load" ] && kill "$load" 2>/dev/null
  bash "$root/scripts/cluster" down >/dev/null 2>&1
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
info() { echo "     $*"; }
cl() { bash "$root/scripts/cluster" "$@"; }
tail_of() { tail -n "${2:-4}" "$(cl logs "$1" --path)" 2>/dev/null | cut -c1-300 | tr '\n' '|'; }
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("null" if v is None else str(v).lower() if isinstance(v,bool) else v)' "$1" 2>/dev/null; }
status_is() { # field=value ...: `cluster status --json` shows them all
  local json pair
  json=$(cl status --json 2>/dev/null)
  for pair in "$@"; do [ "$(json_field "${pair%%=*}" <<<"$json")" = "${pair#*=}" ] || return 1; done
}
wait_status() { # seconds field=value ...
  local end=$((SECONDS + $1))
  shift
  until status_is "$@"; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.3; done
}
status_text() { cl status --json 2>&1 | cut -c1-400; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
wait_lines() { # file count seconds
  local end=$((SECONDS + $3))
  until [ "$(lines "$1")" -ge "$2" ]; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.1; done
}
# load.sh HOST ACKS STOPFILE: redis-cli, one connection per command, SET w:I I
# and INCR w:counter in turn until STOPFILE exists; every acknowledged one
# appended to ACKS ("set KEY VALUE" / "incr REPLY"). Runs in the client
# namespace.
cat >"$work/load.sh" <<'EOF'
host=$1 acks=$2 stop=$3 i=0
while [ ! -e "$stop" ]; do
  i=$((i + 1))
  if [ $((i % 2)) = 1 ]; then
    r=$(timeout 3 redis-cli -h "$host" SET "w:$i" "$i" 2>/dev/null)
    [ "$r" = OK ] && echo "set w:$i $i" >>"$acks"
  else
    r=$(timeout 3 redis-cli -h "$host" INCR w:counter 2>/dev/null)
    [[ $r =~ ^[0-9]+$ ]] && echo "incr $r" >>"$acks"
  fi
done
EOF
# udp_probe FROM TO: 0 when datagrams sent from FROM (three, once TO listens)
# reach TO within 2 s.
udp_probe() {
  rm -f "$work/probe" "$work/probe.ready"
  cl exec "$2" timeout 10 python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999)); s.settimeout(2)
open(sys.argv[1], "w").close()
try: print(s.recv(100).decode())
except socket.timeout: pass' "$work/probe.ready" >"$work/probe" 2>/dev/null &
  local listener=$! to
  to=$(cl addr "$2")
  for _ in $(seq 200); do [ -e "$work/probe.ready" ] && break; sleep 0.05; done
  for _ in 1 2 3; do cl exec "$1" bash -c "echo from-$1 >/dev/udp/$to/9999"; sleep 0.1; done
  wait "$listener"
  [ "$(head -n 1 "$work/probe")" = "from-$1" ]
}

# ------------------------------------------------------------- 1. the harness
echo "# 1. the harness: up, refusals, partitions, metrics"
started=$SECONDS
cl up --bin "$BIN" --standby --failure-timeout "$FAILURE_TIMEOUT_MS" >"$work/up.out" 2>&1
check "up --standby: arbiter, a, b and c started, the VM protected" $? "$(cat "$work/up.out")"
info "up took $((SECONDS - started)) s: $(tr '\n' '|' <"$work/up.out" | cut -c1-200)"
eval "$(cl env)"
VIP=$CLUSTER_VIP
status_is generation=1 primary=node-a backup=node-b protected=true && [ "$(cl primary)" = a ] &&
  [ "$(cl backup)" = b ] && [ "$(cl who-serves)" = a ] && cl wait-log c "standing by" 5
check "a is the primary and serves on the VIP $VIP, b the backup, c stands by" $? \
  "$(status_text); serving: $(cl who-serves | tr '\n' ' '); c: $(tail_of c)"
out=$(cl up --bin "$BIN" 2>&1)
rc=$?
[ "$rc" -ne 0 ] && grep -q "a cluster is up in" <<<"$out" && cl pid a >/dev/null && status_is protected=true
check "a second up is refused and the cluster keeps running" $? "rc $rc: $out"
bad=0 detail=""
for args in "kill x" "partition a a" "partition a nowhere" "wait-log b" "start a --as router" "wait-protected soon"; do
  # shellcheck disable=SC2086
  out=$(cl $args 2>&1)
  rc=$?
  word=${args##* }
  [ "$rc" -eq 2 ] && grep -q -- "$word" <<<"$out" || { bad=1; detail+="'$args': rc $rc, '$out'; "; }
done
check "bad input refused (exit 2) with a message naming it" $bad "$detail"
cl partition client c --one-way && [ "$(cl partitions)" = "client>c" ]
ok=$?
! udp_probe client c && udp_probe c client && [ "$ok" -eq 0 ]
check "a one-way partition client -> c drops that direction only" $? "$(cl partitions) $(cl exec bridge nft list ruleset)"
cl heal && [ -z "$(cl partitions)" ] && udp_probe client c && udp_probe c client
check "heal: both directions pass again" $? "$(cl partitions) $(cl exec bridge nft list ruleset)"
if [ "$CLUSTER_METRICS" = 1 ]; then
  bad=0 detail=""
  for node in arbiter a b c; do
    out=$(cl metrics "$node" 2>&1)
    grep -q "^# TYPE lockstep_" <<<"$out" || { bad=1; detail+="$node: $(head -c 200 <<<"$out"); "; }
  done
  check "GET /metrics of arbiter, a, b and c (from the client namespace) answers Prometheus text" $bad "$detail"
else
  info "metrics: the binaries have no --metrics (not checked)"
fi

# ---------------------------------------- 2. kill -9 the primary under writes
echo "# 2. kill -9 the primary under redis-cli writes from the client namespace"
acks=$work/acks stopfile=$work/stop
cl exec client bash "$work/load.sh" "$VIP" "$acks" "$stopfile" >/dev/null 2>&1 &
load=$!
wait_lines "$acks" 100 30
check "writes acknowledged on $VIP:6379 before the kill" $? "$(lines "$acks") acknowledged"
base=$(lines "$acks")
killed_at=$SECONDS
cl kill a && [ "$(cl exit-status a)" = 137 ]
check "cluster kill a: SIGKILL, exit status 137 recorded" $? "$(cl ps)"
cl wait-log b "LIVE: this node is the primary now" 30 2>/dev/null && wait_status 10 primary=node-b generation=2 &&
  [ "$(cl primary)" = b ]
check "b goes live at generation 2" $? "$(tail_of b 6) $(status_text)"
wait_lines "$acks" $((base + 20)) 30 && [ "$(cl who-serves)" = b ]
check "the client's writes go on, on the VIP served by b alone" $? \
  "$(( $(lines "$acks") - base )) acknowledged since the kill; serving: $(cl who-serves | tr '\n' ' ')"
cl wait-log c "clone installed" 60 2>/dev/null && cl wait-protected 60 >/dev/null &&
  wait_status 20 protected=true primary=node-b backup=node-c
check "the standby c joins b by clone on its own: protected again" $? "$(tail_of c 6) $(status_text)"
info "clone into c: $(grep -a "PROTECTED again" "$(cl logs b --path)" | grep -oE "(total_ms|pause_us|bytes)=[0-9]+" | tr '\n' ' '); checks done $((SECONDS - killed_at)) s after the kill; $(( $(lines "$acks") - base )) writes acknowledged since"

# ------------------------------------------------- 3. the killed node comes back
echo "# 3. the killed node restarted; the backup paused; the arbiter restarted"
cl start a && cl wait-log a "is live on node-b (generation 2); joining it as a backup" 30 2>/dev/null &&
  cl wait-log a "standing by" 30 2>/dev/null
check "cluster start a: its primary-vmm finds the VM live on b and stands by (c is the backup)" $? "$(tail_of a 6)"
cl kill c && cl wait-log a "clone installed" 60 2>/dev/null &&
  wait_status 60 protected=true primary=node-b backup=node-a
check "c killed: b goes on alone, then a joins by clone: protected with a as the backup" $? \
  "$(tail_of a 6) $(tail_of b 4) $(status_text)"
cl start c && cl wait-log c "standing by" 30 2>/dev/null
check "cluster start c: c stands by again" $? "$(tail_of c 4)"
generation=$(cl status --json 2>/dev/null | json_field generation)
before=$(lines "$acks")
log_a=$(cl logs a --path) log_b=$(cl logs b --path)
from_a=$(( $(lines "$log_a") + 1 )) from_b=$(( $(lines "$log_b") + 1 ))
cl stop a && sleep 0.4 && cl cont a
sleep 1
status_is protected=true primary=node-b backup=node-a generation="$generation" &&
  ! tail -n +"$from_a" "$log_a" | grep -aq "halting\|asking the arbiter\|LIVE" &&
  ! tail -n +"$from_b" "$log_b" | grep -aq "halting\|asking the arbiter\|running ALONE"
check "a paused for 0.4 s (SIGSTOP, SIGCONT): still protected, no suspicion, no decision" $? \
  "$(status_text) a: $(tail -n +"$from_a" "$log_a" | tr '\n' '|') b: $(tail -n +"$from_b" "$log_b" | tr '\n' '|')"
wait_lines "$acks" $((before + 20)) 20
check "writes go on after the pause" $? "$(( $(lines "$acks") - before )) acknowledged"
cl restart arbiter && wait_status 20 protected=true primary=node-b generation="$generation" &&
  grep -aq "with 1 VM record(s)" "$(cl logs arbiter --path)"
check "the arbiter restarted with its state dir: generation $generation and primary b kept" $? \
  "$(tail_of arbiter) $(status_text)"
# A primary frozen for longer than the failure timeout is suspected by its
# backup through silence alone (no connection reset tells it): a goes live,
# and b, resumed, learns it lost and halts.
cl stop b && cl wait-log a "LIVE: this node is the primary now" 20 2>/dev/null
live=$?
cl cont b
[ "$live" = 0 ] && [ "$(cl wait-exit b 20 2>/dev/null)" = 4 ]
check "b frozen (SIGSTOP) past the failure timeout: a suspects it by silence, goes live; b resumed halts (4)" $? \
  "$(tail_of a 6) b exit: $(cl exit-status b 2>/dev/null)"
wait_status 60 protected=true primary=node-a backup=node-c
check "c, standing by, joins a by clone: protected again" $? "$(tail_of c 4) $(status_text)"

# ------------------------------------------------------- 4. read back, down
echo "# 4. every acknowledged write readable on the VIP; down"
touch "$stopfile"
for _ in $(seq 100); do kill -0 "$load" 2>/dev/null || break; sleep 0.1; done
load=
sets=$(grep -c '^set ' "$acks") incrs=$(grep -c '^incr ' "$acks")
maxincr=$(awk '$1 == "incr" && $2 > m { m = $2 } END { print m + 0 }' "$acks")
missing=$(grep '^set ' "$acks" | awk '{ print "GET " $2 }' |
  cl exec client timeout 30 redis-cli -h "$VIP" 2>/dev/null |
  paste -d' ' <(grep '^set ' "$acks" | awk '{ print $3 }') - | awk '$1 != $2 { n++ } END { print n + 0 }')
[ "$sets" -gt 0 ] && [ "$missing" = 0 ]
check "every acknowledged SET ($sets) reads back with its value on $VIP" $? "$missing missing or wrong"
counter=$(cl exec client timeout 5 redis-cli -h "$VIP" GET w:counter 2>/dev/null)
[ "${counter:-0}" -ge "$incrs" ] && [ "${counter:-0}" -ge "$maxincr" ] && [ "$incrs" -gt 0 ]
check "the counter ($counter) >= acknowledged INCRs ($incrs) and >= the largest reply ($maxincr)" $? ""
tag=$CLUSTER_TAG
pids="$(cl pid arbiter) $(cl pid a) $(cl pid b) $(cl pid c)"
cl down
alive=0
for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
! ip netns list | grep -q "^$tag-" && [ "$alive" = 0 ] && [ -d "$LOCKSTEP_CLUSTER_DIR" ]
check "down: no namespace $tag-*, no process left; the state dir and logs kept" $? \
  "$(ip netns list | grep "^$tag-" | tr '\n' ' ') alive: $alive"
cl down && cl down --rm && [ ! -e "$LOCKSTEP_CLUSTER_DIR" ]
check "down again (idempotent), then down --rm deletes the state dir" $? ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
