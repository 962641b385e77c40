#!/usr/bin/env bash
# Tests/Integration/clone/run.sh — join by clone with real processes and
# SIGKILL on loopback: an arbiter, primary-vmm/backup-vmm processes running
# the kvstore guest, clients speaking RESP.
#  1. kill -9 the backup; the primary goes on alone; the backup started
#     again under a write load joins by clone (pre-copy, then a short
#     pause); protected again; `lockstep poweroff`: the clone replays to the
#     primary's exact final state and the two disks are byte-identical;
#  2. ten failovers in a row under a write load: kill -9 the primary, the
#     backup goes live, the killed node restarted with its own command line
#     (primary-vmm) joins the live one as a backup by clone, protected
#     again; every acknowledged write readable; generation 1 + 10;
#  3. a clone interrupted half-way (512M of guest RAM, the joiner killed
#     during the pre-copy): the primary keeps serving alone; the joiner
#     started again clones and the VM is protected;
#  4. a third node standing by (the VM has a backup) joins by clone on its
#     own once the primary is killed and the backup went live.
# Each test gets a fresh cluster (its own arbiter and state dir). Random
# free ports on 127.0.0.1; every wait bounded; a trap kills every process
# started. Prints "N passed, M failed"; KEEP=1 keeps the work dir.
# Every VMM runs with --failure-timeout $FAILURE_TIMEOUT_MS (2000 unless
# set; the product's default is 1000): these tests are about cloning, not
# detection (a SIGKILL on one host is detected at once by the refused
# channel), and on a shared, overloaded 2-core machine a stall of both
# processes makes a false suspicion (seen with 500 ms at load average 10:
# both nodes suspected each other, one went on alone, the other halted).
set -u
cd "$(dirname "$0")/../../.."
bash scripts/install-deps.sh redis-tools >/dev/null || { echo "cannot install redis-tools"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
FAILURE_TIMEOUT_MS=${FAILURE_TIMEOUT_MS:-2000}
for tool in primary-vmm backup-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
GUEST=Guest/build/kvstore.elf
work=$(mktemp -d /tmp/lockstep-clone-test.XXXXXX)
. Tests/Integration/lib/cluster.sh
wait_lines() { # file count seconds: until FILE has COUNT lines
  for _ in $(seq $(( $3 * 20 ))); do [ "$(lines "$1")" -ge "$2" ] && return 0; sleep 0.05; done
  return 1
}
# meta FILE TEXT KEY: the value of KEY=... on the last line of FILE with TEXT.
meta() { grep -a -- "$2" "$1" 2>/dev/null | tail -1 | grep -oE "(^| )$3=[^ ]+" | head -1 | sed 's/^ //; s/^[^=]*=//'; }
# The exit at which a clone took over: primary "holds the VM at exit N", backup "backup from exit N".
clone_exit_primary() { grep -a "PROTECTED again" "$1" 2>/dev/null | tail -1 | sed -n 's/.*holds the VM at exit \([0-9]*\):.*/\1/p'; }
clone_exit_backup() { grep -a "clone installed" "$1" 2>/dev/null | tail -1 | sed -n 's/.*the backup from exit \([0-9]*\).*/\1/p'; }
clone_summary() { # primary log: "total_ms=.. pause_us=.. bytes=.."
  echo "total_ms=$(meta "$1" "PROTECTED again" total_ms) pause_us=$(meta "$1" "PROTECTED again" pause_us) bytes=$(meta "$1" "PROTECTED again" bytes) exit=$(clone_exit_primary "$1")"
}

"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b,node-c --arbiter arbiter --operators op >/dev/null \
  || { echo "lockstep certs init failed"; exit 1; }

wait_status() { # seconds field=value ...: until status shows them all (bounded)
  local seconds=$1 end
  shift
  end=$(( $(date +%s) + seconds ))
  for _ in $(seq $(( seconds * 5 ))); do
    status
    status_is "$@" && return 0
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.2
  done
  return 1
}

start_arbiter() { # uses $dir, $arb
  spawn arbiter "$dir/arbiter.out" \
    "$BIN/arbiter" --listen "127.0.0.1:$arb" --state-dir "$dir/state" --tls-dir "$work/certs/arbiter"
}
# Node N (a, b, c) of the cluster in $dir: disk $dir/N.img, replication port
# rep_N, certificates node-N, the common service address and $mem of RAM.
# primary_node VAR LOG N: the primary-vmm command line (a primary, or the
# backup of a VM live elsewhere); backup_node VAR LOG N: backup-vmm.
primary_node() {
  local rep="rep_$3"
  spawn "$1" "$2" \
    "$BIN/primary-vmm" --vm kv --guest "$GUEST" --memory "$mem" --serve "127.0.0.1:$svc" --disk "$dir/$3.img" \
    --disk-size 16M --replication "127.0.0.1:${!rep}" --tls-dir "$work/certs/node-$3" --arbiter "127.0.0.1:$arb" \
    --failure-timeout "$FAILURE_TIMEOUT_MS"
}
backup_node() {
  local rep="rep_$3"
  spawn "$1" "$2" \
    "$BIN/backup-vmm" --vm kv --guest "$GUEST" --tls-dir "$work/certs/node-$3" --disk "$dir/$3.img" \
    --serve "127.0.0.1:$svc" --replication "127.0.0.1:${!rep}" --arbiter "127.0.0.1:$arb" \
    --failure-timeout "$FAILURE_TIMEOUT_MS"
}
# cluster NAME MEMORY [primary|backup]: a fresh arbiter, node A's primary-vmm
# (log $dir/a.1.out) and node B attached from exit 0 (log $dir/b.1.out),
# with backup-vmm, or with primary-vmm (it joins the VM A holds).
cluster() {
  dir="$work/$1"; mem=$2; mkdir -p "$dir"
  arb=$(port); svc=$(port); rep_a=$(port); rep_b=$(port); rep_c=$(port)
  start_arbiter
  wait_for "$dir/arbiter.out" "listening on" 30 || { echo "     arbiter did not start: $(tail_of "$dir/arbiter.out")"; return 1; }
  primary_node pid_a "$dir/a.1.out" a
  wait_for "$dir/a.1.out" "waiting for a backup" 60 || { echo "     primary did not start: $(tail_of "$dir/a.1.out")"; return 1; }
  if [ "${3:-backup}" = primary ]; then primary_node pid_b "$dir/b.1.out" b; else backup_node pid_b "$dir/b.1.out" b; fi
  wait_for "$dir/a.1.out" "kvstore ready" 60 && wait_for "$dir/b.1.out" "attached to the primary" 30 \
    || { echo "     the backup did not attach: $(tail_of "$dir/a.1.out") $(tail_of "$dir/b.1.out")"; return 1; }
}
cli() { timeout 5 redis-cli -p "$svc" "$@" 2>/dev/null; }
# verify_acks LOAD-PREFIX WHERE: every acknowledged SET readable with its
# value, the counter >= every acknowledged INCR (two checks).
verify_acks() {
  local v="" attempt
  for attempt in 1 2 3 4 5; do  # the service may be rebinding after a failover
    v=$(timeout 60 python3 "$work/verify.py" "$svc" "$dir/acks" "$1" 2>&1)
    echo "$v" | grep -q '^missing=' && break
    sleep 1
  done
  unset v_missing v_wrong v_sets v_incrs v_counter v_maxincr
  eval "$(echo "$v" | grep -oE '[a-z]+=[0-9]+' | sed 's/^/v_/')"
  [ "${v_missing:-1}" -eq 0 ] && [ "${v_wrong:-1}" -eq 0 ] && [ "${v_sets:-0}" -gt 0 ]
  check "every acknowledged SET (${v_sets:-?}) is readable with its value $2" $? "$v"
  [ "${v_counter:-0}" -ge "${v_incrs:-1}" ] && [ "${v_counter:-0}" -ge "${v_maxincr:-1}" ] && [ "${v_incrs:-0}" -gt 0 ]
  check "the counter (${v_counter:-?}) >= acknowledged INCRs (${v_incrs:-?}) and >= the largest reply seen" $? "$v"
}
start_load() { # PREFIX
  rm -f "$dir/stop"
  spawn load "$dir/load.out" python3 "$work/load.py" "$svc" "$dir/acks" 400 "$dir/stop" "$1"
}
stop_load() { touch "$dir/stop"; wait_exit "$load" 15; }
started=$(date +%s)

# ------------------------------------------- 1. clone under a write load, poweroff
echo "# 1. the backup killed, started again under a write load: join by clone"
if cluster t1 64M; then
  grep -aq "from=0 generation=1 .*backup attached" "$dir/a.1.out" && ! grep -aq "clone" "$dir/a.1.out" "$dir/b.1.out"
  check "a backup attached before the guest started replays from exit 0 (no clone)" $? \
    "$(grep -a "attached" "$dir/a.1.out" "$dir/b.1.out" | tr '\n' '|')"
  start_load c1
  wait_lines "$dir/acks" 200 20
  kill -9 "$pid_b"
  wait_for "$dir/a.1.out" "running ALONE (unprotected)" 30
  check "the primary goes on alone after the backup's SIGKILL" $? "$(tail_of "$dir/a.1.out" 6)"
  base=$(lines "$dir/acks")
  wait_lines "$dir/acks" $((base + 100)) 20
  joined_at=$(now)
  backup_node pid_b "$dir/b.2.out" b
  wait_for "$dir/a.1.out" "PROTECTED again" 60 && wait_for "$dir/b.2.out" "clone installed" 30
  check "the restarted backup-vmm joins by clone while the load runs" $? "$(tail_of "$dir/a.1.out" 6) $(tail_of "$dir/b.2.out" 6)"
  grep -aq "cloning the running VM into a new backup" "$dir/a.1.out" && grep -aq "clone: memory copied once" "$dir/a.1.out" \
    && grep -aq "clone: round 1: " "$dir/a.1.out" && [ "$(grep -ac "backup attached" "$dir/a.1.out")" = 1 ]
  check "the primary logs the clone's phases (pre-copy, rounds, PROTECTED again)" $? \
    "$(grep -a "clone" "$dir/a.1.out" | tr '\n' '|')"
  pe=$(clone_exit_primary "$dir/a.1.out"); be=$(clone_exit_backup "$dir/b.2.out")
  [ -n "$pe" ] && [ "$pe" = "$be" ] && [ "$pe" -gt 0 ]
  check "both logs name the same exit for the clone (primary $pe, backup $be)" $? \
    "$(grep -a PROTECTED "$dir/a.1.out") $(grep -a "clone installed" "$dir/b.2.out")"
  info "clone: $(clone_summary "$dir/a.1.out"); rounds: $(grep -ac "clone: round" "$dir/a.1.out"); backup: $(meta "$dir/b.2.out" "clone installed" ms) ms to install"
  base=$(lines "$dir/acks")
  wait_lines "$dir/acks" $((base + 200)) 30
  check "the load goes on after the clone (200 more writes acknowledged)" $? "$(( $(lines "$dir/acks") - base )) acknowledged; $(tail_of "$dir/a.1.out")"
  read -r _ after first_ms pause_ms < <(timeout 30 python3 "$work/gap.py" "$dir/acks" "$joined_at" "$(now)" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
  info "from the joiner's start on: $after writes acknowledged, longest pause between acknowledgements ${pause_ms} ms"
  wait_status 20 protected=true backup=node-b primary=node-a generation=2
  check "status: protected, backup node-b, primary node-a, generation 2" $? "$(status_text)"
  stop_load
  verify_acks c1 "before the poweroff"
  [ "$(cli SET last-write yes)" = OK ]
  check "a last write before the poweroff" $? ""
  timeout 30 "$BIN/lockstep" poweroff --arbiter "127.0.0.1:$arb" --vm kv --tls-dir "$work/certs/op" \
    >"$dir/poweroff.out" 2>&1
  check "lockstep poweroff succeeded" $? "$(tail_of "$dir/poweroff.out")"
  wait_exit "$pid_a" 30; prc=$(exit_status "$dir/a.1.out")
  wait_exit "$pid_b" 30; brc=$(exit_status "$dir/b.2.out")
  [ "$prc" = 0 ] && [ "$brc" = 0 ]
  check "both nodes exited 0" $? "primary $prc: $(tail_of "$dir/a.1.out"); backup $brc: $(tail_of "$dir/b.2.out")"
  grep -aq "replay reached the primary's final state exactly" "$dir/b.2.out" && ! grep -aq "LIVE" "$dir/b.2.out"
  check "the clone replayed to the primary's final state and did not go live" $? "$(tail_of "$dir/b.2.out")"
  final=(exits trace memory)
  same=0; detail=""
  for key in "${final[@]}"; do
    p=$(meta "$dir/a.1.out" "VM stopped" "$key"); b=$(meta "$dir/b.2.out" "replay reached" "$key")
    detail+="$key: $p / $b; "
    [ -n "$p" ] && [ "$p" = "$b" ] || same=1
  done
  check "same final exits, exit-trace hash and memory hash in both logs" $same "$detail"
  info "$detail"
  cmp -s "$dir/a.img" "$dir/b.img"
  check "the two disk images are byte-identical" $? "$(cmp "$dir/a.img" "$dir/b.img" 2>&1 | head -1)"
else
  check "cluster for test 1 started" 1 ""
fi
kill -9 "${pid_a:-}" "${pid_b:-}" "${arbiter:-}" 2>/dev/null
info "test 1: $(( $(date +%s) - started )) s"; started=$(date +%s)

# ------------------------------------------- 2. ten failovers in a row
echo "# 2. ten failovers in a row under a write load (kill -9 the primary, restart it: it rejoins by clone)"
if cluster t2 64M primary; then
  start_load f2
  wait_lines "$dir/acks" 200 20
  declare -A gen=([a]=1 [b]=1) node_pid=([a]=$pid_a [b]=$pid_b)
  current=a; done_count=0; problem=""; kills=(); reports=()
  for round in $(seq 10); do
    victim=$current; other=$([ "$victim" = a ] && echo b || echo a)
    vlog="$dir/$victim.${gen[$victim]}.out"; olog="$dir/$other.${gen[$other]}.out"
    base=$(lines "$dir/acks")
    kill -9 "${node_pid[$victim]}"
    killed_at=$(now); kills+=("$killed_at")
    if ! wait_for "$olog" "LIVE: this node is the primary now" 30; then
      problem="round $round: node-$other did not go live: $(tail_of "$olog" 6)"; break
    fi
    if ! wait_lines "$dir/acks" $((base + 20)) 30; then
      problem="round $round: no writes acknowledged by node-$other: $(tail_of "$olog" 6)"; break
    fi
    gen[$victim]=$(( ${gen[$victim]} + 1 )); vlog="$dir/$victim.${gen[$victim]}.out"
    restarted_at=$(now)
    primary_node "node_pid[$victim]" "$vlog" "$victim"
    if ! wait_for "$vlog" "clone installed" 60; then
      problem="round $round: node-$victim did not rejoin by clone: $(tail_of "$vlog" 6) | $(tail_of "$olog" 6)"; break
    fi
    if ! grep -aq "is live on node-$other (generation $((round + 1))); joining it as a backup" "$vlog"; then
      problem="round $round: node-$victim did not say it joins node-$other at generation $((round + 1)): $(tail_of "$vlog" 6)"; break
    fi
    if ! wait_status 30 protected=true primary="node-$other" backup="node-$victim"; then
      problem="round $round: not protected again with node-$victim as backup: $(status_text)"; break
    fi
    protected_at=$(now)
    reports+=("$(clone_summary "$olog") rejoined_s=$(python3 -c "print('%.1f' % ($protected_at - $restarted_at))")")
    done_count=$round
    current=$other
  done
  [ "$done_count" -eq 10 ]
  check "10 failovers: each time the other node went live and the killed one rejoined by clone" $? "$problem"
  status
  status_is generation=11 protected=true
  check "status after the 10th: generation 11 (1 + 10 failovers), protected" $? "$(status_text)"
  base=$(lines "$dir/acks")
  wait_lines "$dir/acks" $((base + 100)) 20
  stop_load
  for n in $(seq "${#kills[@]}"); do
    read -r _ _ first_ms _ < <(timeout 30 python3 "$work/gap.py" "$dir/acks" "${kills[$((n - 1))]}" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
    info "failover $n: first write acknowledged ${first_ms} ms after the kill; clone: ${reports[$((n - 1))]:-none}"
  done
  info "$(tr -d '\n' <"$dir/load.out")"
  verify_acks f2 "after 10 failovers"
  status
  status_is generation=11 protected=true
  check "status after reading everything back: still generation 11, protected" $? "$(status_text)"
  gens=$(grep -ahoE "won generation [0-9]+" "$dir"/[ab].*.out | sort | uniq -c | tr '\n' ' ')
  ! grep -aqE "running ALONE|halting" "$dir"/[ab].*.out
  check "no other arbiter decision (no node went on alone, none halted)" $? \
    "$(grep -ahE "running ALONE|halting" "$dir"/[ab].*.out | tr '\n' '|') won: $gens"
else
  check "cluster for test 2 started" 1 ""
fi
for n in a b; do kill -9 "${node_pid[$n]:-}" 2>/dev/null; done
kill -9 "${arbiter:-}" 2>/dev/null
info "test 2: $(( $(date +%s) - started )) s"; started=$(date +%s)

# ------------------------------------------- 3. a clone interrupted half-way
echo "# 3. the joiner killed during the clone (512M of guest RAM)"
if cluster t3 512M; then
  kill -9 "$pid_b"
  wait_for "$dir/a.1.out" "running ALONE (unprotected)" 30
  check "the primary goes on alone after the backup's SIGKILL" $? "$(tail_of "$dir/a.1.out" 6)"
  start_load i3
  wait_lines "$dir/acks" 100 20
  backup_node pid_b "$dir/b.2.out" b
  wait_for "$dir/a.1.out" "cloning the running VM into a new backup" 30
  check "the joiner's clone began" $? "$(tail_of "$dir/a.1.out" 6) $(tail_of "$dir/b.2.out")"
  sleep 0.3
  kill -9 "$pid_b"
  killed_at=$(now)
  wait_for "$dir/a.1.out" "clone into .* failed" 30 && ! grep -aq "PROTECTED again" "$dir/a.1.out"
  check "the clone was cut half-way: the primary logs that it failed and goes on alone" $? \
    "$(grep -a clone "$dir/a.1.out" | tr '\n' '|')"
  info "the primary's log: $(grep -a "clone" "$dir/a.1.out" | sed 's/^.*\[Lockstep\] //' | tr '\n' '|')"
  base=$(lines "$dir/acks")
  wait_lines "$dir/acks" $((base + 200)) 30
  check "the primary keeps serving (200 more writes acknowledged)" $? "$(( $(lines "$dir/acks") - base )) acknowledged; $(tail_of "$dir/a.1.out")"
  read -r _ after first_ms pause_ms < <(timeout 30 python3 "$work/gap.py" "$dir/acks" "$killed_at" "$(now)" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
  info "after the joiner's kill: first write acknowledged ${first_ms} ms later, longest pause ${pause_ms} ms"
  kill -0 "$pid_a" 2>/dev/null && ! grep -aq "halting" "$dir/a.1.out"
  check "the primary is still running" $? "$(tail_of "$dir/a.1.out")"
  wait_status 10 protected=false primary=node-a role=primary-alone generation=2
  check "status: unprotected, node-a alone, generation 2" $? "$(status_text)"
  backup_node pid_b "$dir/b.3.out" b
  wait_for "$dir/a.1.out" "PROTECTED again" 90 && wait_for "$dir/b.3.out" "clone installed" 30
  check "the joiner started again clones the VM" $? "$(tail_of "$dir/a.1.out" 6) $(tail_of "$dir/b.3.out" 6)"
  info "clone: $(clone_summary "$dir/a.1.out"); rounds: $(grep -ac "clone: round" "$dir/a.1.out")"
  wait_status 20 protected=true backup=node-b primary=node-a generation=2
  check "status: protected, backup node-b, generation 2" $? "$(status_text)"
  stop_load
  verify_acks i3 "on the primary"
else
  check "cluster for test 3 started" 1 ""
fi
kill -9 "${pid_a:-}" "${pid_b:-}" "${arbiter:-}" 2>/dev/null
info "test 3: $(( $(date +%s) - started )) s"; started=$(date +%s)

# ------------------------------------------- 4. a standby joins when needed
echo "# 4. a third node stands by, then joins by clone after a failover"
if cluster t4 64M; then
  wait_status 20 protected=true backup=node-b
  check "protected with backup node-b" $? "$(status_text)"
  backup_node pid_c "$dir/c.1.out" c
  wait_for "$dir/c.1.out" "standing by" 30
  check "node-c stands by: the VM has a backup" $? "$(tail_of "$dir/c.1.out")"
  info "node-c: $(grep -a "standing by" "$dir/c.1.out" | head -1 | sed 's/^.*\[Lockstep\] //')"
  start_load s4
  wait_lines "$dir/acks" 200 20
  sleep 1.5
  kill -0 "$pid_c" 2>/dev/null && ! grep -aq "clone installed" "$dir/c.1.out" && ! grep -aq "cloning" "$dir/a.1.out" \
    && status && status_is backup=node-b
  check "node-c keeps standing by while node-b is the backup" $? "$(tail_of "$dir/c.1.out") $(status_text)"
  kill -9 "$pid_a"
  killed_at=$(now)
  wait_for "$dir/b.1.out" "LIVE: this node is the primary now" 30
  check "node-b goes live after node-a's SIGKILL" $? "$(tail_of "$dir/b.1.out" 6)"
  wait_for "$dir/c.1.out" "clone installed" 60 && wait_for "$dir/b.1.out" "PROTECTED again" 10
  check "node-c joins node-b by clone on its own" $? "$(tail_of "$dir/c.1.out" 6) $(tail_of "$dir/b.1.out" 6)"
  info "clone: $(clone_summary "$dir/b.1.out"); $(python3 -c "import time; print('protected again %.1f s after the kill' % (time.time() - $killed_at))")"
  wait_status 20 protected=true primary=node-b backup=node-c generation=2
  check "status: protected, primary node-b, backup node-c, generation 2" $? "$(status_text)"
  base=$(lines "$dir/acks")
  wait_lines "$dir/acks" $((base + 100)) 20
  check "writes go on (100 more acknowledged)" $? "$(tail_of "$dir/b.1.out")"
  stop_load
  verify_acks s4 "on node-b"
else
  check "cluster for test 4 started" 1 ""
fi
info "test 4: $(( $(date +%s) - started )) s"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
