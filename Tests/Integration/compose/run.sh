#!/usr/bin/env bash
# Tests/Integration/compose/run.sh — the Compose cluster for real: a private
# dockerd (scripts/dockerd.sh), the base image made from Debian packages
# (Compose/base-image.sh), the Lockstep image built from this repo's static
# release binaries and guests (Compose/build-image.sh), and
# Compose/docker-compose.yml run by Debian's docker-compose 1.29, configured
# by LOCKSTEP_ environment variables only: the arbiter, node-a (primary-vmm),
# node-b (backup-vmm), node-c (a standby) and a client, each container with
# --network none and a veth into a bridge in a network namespace of this
# test (Compose/network.sh); the root namespace gets no address and no link.
#  1. docker-compose validates the file; the nodes get /dev/kvm, NET_ADMIN,
#     their own disk volume and certificates;
#  2. the cluster comes up: the primary serves the kvstore guest on the
#     service VIP, node-b is its backup (protected), node-c stands by;
#     redis-cli in the client container writes a batch (every reply
#     acknowledged) while a writer keeps writing;
#  3. `docker kill -s KILL` of node-a's container: node-b goes live and takes
#     the VIP, every acknowledged write reads back, new writes work; node-c
#     joins node-b by clone: protected again, generation 2 (the cluster
#     heals);
#  4. node-a's container started again (a new network namespace: its veth
#     re-attached) joins the live VM and stands by, without disturbing the
#     service; then node-b is killed too: node-c goes live (generation 3)
#     and node-a joins it by clone: protected again, no acknowledged write
#     lost;
#  5. every node serves /metrics (Prometheus text).
# If dockerd cannot start here, the test fails and says why. Every wait is
# bounded; the cleanup trap removes the containers, volumes, the test image
# and the namespace, and stops dockerd only if this test started it
# (KEEP_WORK=1 keeps the logs). Prints "N passed, M failed"; exit 1 on a
# failure; what a run killed before its cleanup left (project lscPID) is
# removed by the next. BIN=DIR uses prebuilt static release binaries instead
# of building them (swift build -c release --static-swift-stdlib). The nodes
# run with a failure timeout of $FAILURE_TIMEOUT_MS (2000 unless set; the
# product's default is 1000), as the clone test does: a SIGKILL is seen at
# once by the broken channel, and a loaded 2-core machine must not make a
# false suspicion.
set -u
cd "$(dirname "$0")/../../.." || exit 1
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "needs root (dockerd, network namespaces)"; echo "0 passed, 1 failed"; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH"
SWIFT=${SWIFT:-swift}
DOCKER=${DOCKER:-/usr/bin/docker}
FAILURE_TIMEOUT_MS=${FAILURE_TIMEOUT_MS:-2000}
tag=lsc$$
PROJECT=$tag
NETNS=$tag-net
IMAGE=lockstep:compose-test-$tag
NET=10.88.0
VIP=$NET.100
work=$(mktemp -d /tmp/lockstep-compose-test.XXXXXX)

passed=0
failed=0
started_dockerd=0
compose_up=0
began=$SECONDS
check() { # name condition-exit-status detail
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1: $3"
  fi
}
info() { echo "     $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
give_up() { # name detail: a failed step the rest depends on
  check "$1" 1 "$2"
  finish
}
timing() { # what: seconds since the last call
  local now=$SECONDS
  info "$1: $((now - ${last_mark:-$began})) s"
  last_mark=$now
}

compose() { # docker-compose on the test's project, its values given here only
  timeout 300 env DOCKER_HOST="$DOCKER_HOST" COMPOSE_PROJECT_NAME="$PROJECT" \
    LOCKSTEP_COMPOSE_IMAGE="$IMAGE" LOCKSTEP_COMPOSE_CERTS="$work/certs" LOCKSTEP_COMPOSE_NET="$NET" \
    LOCKSTEP_COMPOSE_MEMORY=64M LOCKSTEP_COMPOSE_DISK_SIZE=16M \
    LOCKSTEP_COMPOSE_FAILURE_TIMEOUT="$FAILURE_TIMEOUT_MS" LOCKSTEP_COMPOSE_WAIT_TIMEOUT=120 \
    docker-compose --no-ansi -f Compose/docker-compose.yml -p "$PROJECT" "$@"
}
network() { LOCKSTEP_NETNS=$NETNS COMPOSE_PROJECT_NAME=$PROJECT DOCKER=$DOCKER timeout 60 bash Compose/network.sh "$@"; }
id_of() { compose ps -q "$1" 2>/dev/null; }
dx() { timeout "${DX_TIMEOUT:-20}" "$DOCKER" exec "$@"; } # docker exec, bounded
logs_of() { "$DOCKER" logs "$1" 2>&1; }
# wait_log CONTAINER TEXT SECONDS: until the container's log has TEXT.
wait_log() {
  local end=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$end" ]; do
    logs_of "$1" | grep -aq -- "$2" && return 0
    sleep 0.25
  done
  return 1
}
# since_kill CONTAINER TEXT: ms from $killed to the first log line with TEXT
# (docker's own timestamps of the container's output).
since_kill() {
  local stamp
  stamp=$("$DOCKER" logs --timestamps "$1" 2>&1 | grep -a -- "$2" | head -1 | cut -d' ' -f1)
  [ -n "$stamp" ] && echo $(( ($(date -d "$stamp" +%s%N) - killed) / 1000000 )) || echo "?"
}
tail_log() { logs_of "$1" | tail -n "${2:-5}" | cut -c1-260 | tr '\n' '|'; }
cli() { dx "$client" timeout 5 redis-cli -h "$VIP" "$@" 2>&1; } # from the client container
status_json() { dx "$client" lockstep status --json 2>/dev/null; } # the client's LOCKSTEP_ARBITER/VM/TLS_DIR
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("null" if v is None else str(v).lower() if isinstance(v,bool) else v)' "$1" 2>/dev/null; }
# wait_status SECONDS field=value...: until `lockstep status` shows them all.
last_status=
wait_status() {
  local end=$((SECONDS + $1)) pair ok
  shift
  while :; do
    last_status=$(status_json)
    ok=1
    for pair in "$@"; do
      [ "$(json_field "${pair%%=*}" <<<"$last_status")" = "${pair#*=}" ] || { ok=0; break; }
    done
    [ "$ok" -eq 1 ] && return 0
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.5
  done
}
vip_holder() { # which node container has the VIP on its eth0
  local n pid out
  for n in node-a node-b node-c; do
    pid=$("$DOCKER" inspect -f '{{if .State.Running}}{{.State.Pid}}{{end}}' "$(id_of "$n")" 2>/dev/null)
    [ -n "$pid" ] || continue
    out=$(nsenter -t "$pid" -n ip -o -4 address show 2>/dev/null)
    [[ $out == *"inet $VIP/"* ]] && echo "$n"
  done
}
root_net() { { ip -o link show; ip -o address show; } | sed 's/ *link\/ether.*//' | sort; }

cleanup() {
  if [ "$compose_up" -eq 1 ]; then
    compose logs --no-color --timestamps >"$work/compose.log" 2>&1
    compose down --volumes --remove-orphans --timeout 2 >"$work/down.log" 2>&1 || {
      # docker-compose failed: remove what carries the project's label.
      "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT" | xargs -r "$DOCKER" rm -f -v >/dev/null 2>&1
      "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r "$DOCKER" volume rm >/dev/null 2>&1
    }
  fi
  ip netns del "$NETNS" 2>/dev/null
  [ -n "${DOCKER_HOST:-}" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 && "$DOCKER" rmi "$IMAGE" >/dev/null 2>&1
  if [ "$started_dockerd" -eq 1 ]; then bash scripts/dockerd.sh stop >/dev/null 2>&1; fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- dockerd
bash scripts/install-deps.sh docker.io docker-compose debootstrap >"$work/deps.log" 2>&1
check "Debian's docker.io, docker-compose and debootstrap are installed" $? "$(tail -3 "$work/deps.log")"
if bash scripts/dockerd.sh status >/dev/null 2>&1; then
  info "dockerd already running: $(bash scripts/dockerd.sh status)"
else
  bash scripts/dockerd.sh start >"$work/dockerd.out" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] && started_dockerd=1
  [ "$rc" -eq 0 ] || give_up "dockerd starts (scripts/dockerd.sh)" "$(tail -n 20 "$work/dockerd.out" | cut -c1-240 | tr '\n' '|')"
  check "dockerd starts (scripts/dockerd.sh: own data and exec roots, --bridge none, no iptables)" 0 ""
  info "$(grep -a 'dockerd running' "$work/dockerd.out")"
fi
eval "$(bash scripts/dockerd.sh env)"
export DOCKER_HOST
# What an earlier run killed before its cleanup left behind (project lscPID,
# the PID gone): containers, volumes, the test image, the namespace.
for project in $({ "$DOCKER" ps -a --format '{{.Label "com.docker.compose.project"}}'
  ip netns list | awk '{print $1}' | sed -n 's/-net$//p'; } | grep -E '^lsc[0-9]+$' | sort -u); do
  kill -0 "${project#lsc}" 2>/dev/null && continue
  info "removing what an earlier run left: $project"
  "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r "$DOCKER" rm -f -v >/dev/null 2>&1
  "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r "$DOCKER" volume rm >/dev/null 2>&1
  "$DOCKER" rmi "lockstep:compose-test-$project" >/dev/null 2>&1
  ip netns del "$project-net" 2>/dev/null
done
timing "packages and dockerd"

# ------------------------------------------------------------- 1. the file
compose config -q >"$work/config.err" 2>&1
rc=$? version=$(docker-compose version --short 2>/dev/null)
check "docker-compose $version validates Compose/docker-compose.yml" $rc \
  "$(head -c 600 "$work/config.err")"
compose config >"$work/config.yml" 2>"$work/config.err"
python3 - "$work/config.yml" >"$work/config.check" 2>&1 <<'PY'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
problems = []
if sorted(services) != ["arbiter", "client", "node-a", "node-b", "node-c"]:
    problems.append("services: %s" % sorted(services))
for name in ("node-a", "node-b", "node-c"):
    s = services.get(name, {})
    if not any(str(d).startswith("/dev/kvm") for d in s.get("devices", [])):
        problems.append(name + ": no /dev/kvm")
    if not {"NET_ADMIN", "NET_RAW"} <= set(s.get("cap_add", [])):
        problems.append(name + ": no NET_ADMIN/NET_RAW")
    volumes = [str(v) for v in s.get("volumes", [])]
    if not any(v.startswith(name + "-disk:") for v in volumes):
        problems.append(name + ": no disk volume of its own")
    if not any(v.endswith("/" + name + ":/etc/lockstep/tls:ro") for v in volumes):
        problems.append(name + ": no read-only certificates of its own")
for name, s in services.items():
    if s.get("network_mode") != "none":
        problems.append(name + ": network_mode is not none")
    env = s.get("environment", {})
    if name != "client" and not any(k.startswith("LOCKSTEP_") for k in env):
        problems.append(name + ": not configured by LOCKSTEP_ variables")
    if any(str(c).startswith("-") for c in s.get("command", [])[1:]):
        problems.append(name + ": flags on the command line (the environment should carry them)")
print("; ".join(problems))
sys.exit(1 if problems else 0)
PY
check "the nodes get /dev/kvm, NET_ADMIN, their own disk volume and certificates; LOCKSTEP_ variables only" $? \
  "$(cat "$work/config.check")"

# ------------------------------------------------------------- binaries and images
if [ -n "${BIN:-}" ]; then
  info "binaries from BIN=$BIN"
else
  BIN=$root/.build/release
  timeout 3000 "$SWIFT" build -c release --static-swift-stdlib >"$work/swift-build.log" 2>&1
  check "static release build (swift build -c release --static-swift-stdlib)" $? "$(tail -5 "$work/swift-build.log")"
  timing "release build"
fi
BIN=$(cd "$BIN" 2>/dev/null && pwd) || give_up "binaries" "no directory $BIN"
make -s -C Guest all >"$work/guests.log" 2>&1 || give_up "guest build" "$(tail -5 "$work/guests.log")"
LOCKSTEP_COMPOSE_IMAGE=$IMAGE DOCKER=$DOCKER timeout 1500 bash Compose/build-image.sh "$BIN" >"$work/image.log" 2>&1
check "the image builds from the base made of Debian packages (Compose/base-image.sh, build-image.sh)" $? \
  "$(tail -8 "$work/image.log" | tr '\n' '|')"
sed 's/^/     /' "$work/image.log"
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || give_up "the image exists" "no $IMAGE"
libraries=$(timeout 60 "$DOCKER" run --rm --network none --entrypoint /bin/sh "$IMAGE" -c \
  'for b in primary-vmm backup-vmm arbiter lockstep; do ldd /usr/local/bin/$b; done' 2>&1)
! grep -q 'libswift\|libFoundation\|libdispatch\|not found' <<<"$libraries" && grep -q 'libssl.so.3' <<<"$libraries"
check "in the image the binaries need no Swift runtime (ldd: libc, libm, libstdc++, libgcc_s, OpenSSL)" $? \
  "$(grep 'libswift\|libFoundation\|libdispatch\|not found' <<<"$libraries" | sort -u | tr '\n' '|')"
timing "images"

# ------------------------------------------------------------- 2. up
"$BIN/lockstep" certs init --dir "$work/certs" --vmms node-a,node-b,node-c --arbiter arbiter \
  --operators operator >"$work/certs.log" 2>&1
check "certificates (lockstep certs init --vmms node-a,node-b,node-c --arbiter arbiter --operators operator)" $? \
  "$(tail -3 "$work/certs.log")"
net_before=$(root_net)
compose_up=1
compose up -d >"$work/up.log" 2>&1
check "docker-compose up -d" $? "$(tail -5 "$work/up.log" | tr '\n' '|')"
network attach >"$work/attach.log" 2>&1
check "every container gets its veth into the test's bridge namespace (Compose/network.sh attach)" $? \
  "$(tail -5 "$work/attach.log" | tr '\n' '|')"
running=$(compose ps --services --filter status=running 2>/dev/null | sort | paste -sd' ' -)
[ "$running" = "arbiter client node-a node-b node-c" ]
check "five containers run: arbiter, node-a, node-b, node-c, client" $? "running: $running; $(compose ps 2>&1 | tail -6 | tr '\n' '|')"
[ "$(root_net)" = "$net_before" ]
check "the root network namespace got no link and no address" $? \
  "$(diff <(echo "$net_before") <(root_net) | tr '\n' '|')"
client=$(id_of client) node_a=$(id_of node-a) node_b=$(id_of node-b) node_c=$(id_of node-c) arbiter=$(id_of arbiter)
[ -n "$client" ] && [ -n "$node_a" ] && [ -n "$node_b" ] && [ -n "$node_c" ] ||
  give_up "the containers" "$(compose ps 2>&1 | tr '\n' '|')"

reply=
for _ in $(seq 180); do
  reply=$(cli PING)
  [ "$reply" = PONG ] && break
  sleep 0.5
done
[ "$reply" = PONG ] || give_up "the primary (node-a) serves kvstore on the VIP $VIP:6379" \
  "got '$reply'; arbiter: $(tail_log "$arbiter" 3) node-a: $(tail_log "$node_a" 6) node-b: $(tail_log "$node_b" 3)"
check "the primary (node-a) serves kvstore on the VIP $VIP:6379 (redis-cli in the client)" 0 ""
wait_status 60 protected=true primary=node-a backup=node-b generation=1
check "lockstep status: protected, primary node-a, backup node-b, generation 1" $? "$last_status"
wait_log "$node_c" "standing by" 30
check "node-c stands by (the VM has a backup)" $? "$(tail_log "$node_c")"
ignored=$(for c in "$arbiter" "$node_a" "$node_b" "$node_c"; do logs_of "$c" | grep -a "ignoring LOCKSTEP_"; done | sort -u)
[ -z "$ignored" ]
check "every LOCKSTEP_ variable of the compose file is a flag of its binary (none ignored)" $? \
  "$(cut -c1-200 <<<"$ignored" | tr '\n' '|')"
[ "$(vip_holder)" = node-a ]
check "the VIP is on node-a only" $? "held by: $(vip_holder | paste -sd' ' -)"
timing "cluster up"

# A batch of writes, each acknowledged (through the Output Rule).
replies=$(seq 200 | sed 's/.*/SET batch:& value-&/' | dx -i "$client" timeout 60 redis-cli -h "$VIP" 2>&1)
[ "$(grep -cx OK <<<"$replies")" -eq 200 ]
check "a batch of 200 SETs from the client, every one acknowledged" $? "$(sort <<<"$replies" | uniq -c | head -5 | tr '\n' '|')"

# The writer: SET w:I I one at a time, each its own redis-cli (5 s at
# most), a failed one retried; acknowledged I appended to /tmp/w.acks.
cat >"$work/writer.sh" <<'SH'
#!/bin/bash
vip=$1 limit=$2
i=1 errors=0 end=$((SECONDS + limit))
: >/tmp/w.acks
while [ "$SECONDS" -lt "$end" ] && [ ! -e /tmp/w.stop ]; do
  reply=$(timeout 5 redis-cli -h "$vip" SET "w:$i" "$i" 2>&1)
  if [ "$reply" = OK ]; then
    echo "$i" >>/tmp/w.acks
    i=$((i + 1))
  else
    errors=$((errors + 1))
    sleep 0.05
  fi
done
echo "writes=$((i - 1)) errors=$errors" >/tmp/w.done
SH
# verify.sh VIP: every w:I acknowledged so far reads back as I (the writer
# may still be appending: a snapshot of its acknowledgements is checked).
cat >"$work/verify.sh" <<'SH'
#!/bin/bash
vip=$1
cp /tmp/w.acks /tmp/w.snapshot
sed 's/.*/GET w:&/' /tmp/w.snapshot | timeout 60 redis-cli -h "$vip" >/tmp/w.got 2>&1
paste /tmp/w.snapshot /tmp/w.got | awk '{ n++; if ($1 != $2) bad++ } END { printf "acknowledged=%d wrong=%d\n", n, bad }'
SH
"$DOCKER" cp "$work/writer.sh" "$client:/tmp/writer.sh" && "$DOCKER" cp "$work/verify.sh" "$client:/tmp/verify.sh"
acks() { dx "$client" sh -c 'wc -l </tmp/w.acks' 2>/dev/null || echo 0; }
wait_acks() { # count seconds
  local end=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$end" ]; do [ "$(acks)" -ge "$1" ] && return 0; sleep 0.3; done
  return 1
}
verify() { # what: every acknowledged write of the writer and the batch reads back
  local v got
  v=$(dx "$client" bash /tmp/verify.sh "$VIP" 2>&1)
  [[ $v =~ acknowledged=([0-9]+)\ wrong=0 ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]
  check "every acknowledged write of the writer reads back $1 ($v)" $? "$v"
  got=$(seq 200 | sed 's/.*/GET batch:&/' | dx -i "$client" timeout 60 redis-cli -h "$VIP" 2>&1 |
    paste - <(seq 200 | sed 's/.*/value-&/') | awk '$1 != $2' | wc -l)
  [ "$got" -eq 0 ]
  check "the batch of 200 reads back $1" $? "$got wrong or missing"
}
dx -d "$client" bash /tmp/writer.sh "$VIP" 300
wait_acks 50 30
check "the writer's writes are acknowledged" $? "$(acks) acknowledged; $(cli PING)"

# ------------------------------------------------------------- 3. kill the primary
base=$(acks)
killed=$(date +%s%N) # (docker kill returns some 100 ms after the SIGKILL)
"$DOCKER" kill -s KILL "$node_a" >/dev/null
reply=
for _ in $(seq 300); do
  reply=$(DX_TIMEOUT=3 cli GET batch:200)
  [ "$reply" = value-200 ] && break
  sleep 0.1
done
[ "$reply" = value-200 ]
rc=$? elapsed=$(( ($(date +%s%N) - killed) / 1000000 ))
check "after docker kill -s KILL of node-a, the VIP answers again (in $elapsed ms)" $rc \
  "got '$reply'; node-b: $(tail_log "$node_b" 6)"
wait_log "$node_b" "LIVE: this node is the primary now" 30
check "node-b went live" $? "$(tail_log "$node_b" 6)"
[ "$(vip_holder)" = node-b ]
check "the VIP moved to node-b" $? "held by: $(vip_holder | paste -sd' ' -)"
wait_acks $((base + 50)) 60
check "the writer goes on through the failover (50 more acknowledged)" $? "$(acks) acknowledged, $base before the kill"
[ "$(cli SET after-kill yes)" = OK ] && [ "$(cli GET after-kill)" = yes ]
check "new writes work on node-b" $? "$(cli PING)"
wait_log "$node_c" "clone installed" 60
check "node-c, the standby, joins node-b by clone" $? "c: $(tail_log "$node_c" 4) b: $(tail_log "$node_b" 4)"
wait_status 60 protected=true primary=node-b backup=node-c generation=2
check "the cluster healed: protected, primary node-b, backup node-c, generation 2" $? "$last_status"
info "after the kill: node-b live in $(since_kill "$node_b" "LIVE: this node") ms, protected again (node-c cloned) in $(since_kill "$node_b" "PROTECTED again") ms"
info "clone: $(logs_of "$node_b" | grep -a "PROTECTED again" | tail -1 | grep -oE '(bytes|pause_us|total_ms)=[0-9]+' | paste -sd' ' -)"
verify "from node-b"
timing "failover and heal"

# ------------------------------------------------------------- 4. node-a comes back
base=$(acks)
compose start node-a >"$work/start.log" 2>&1
check "docker-compose start node-a" $? "$(tail -3 "$work/start.log" | tr '\n' '|')"
network attach "$node_a" >>"$work/attach.log" 2>&1
check "node-a's new network namespace gets its veth again" $? "$(tail -3 "$work/attach.log" | tr '\n' '|')"
wait_log "$node_a" "joining it as a backup" 60 && wait_log "$node_a" "standing by" 30
check "node-a (primary-vmm) finds the VM live on node-b and stands by (node-c is the backup)" $? \
  "$(tail_log "$node_a" 5)"
wait_acks $((base + 30)) 60
sleep 2
wait_status 10 protected=true primary=node-b backup=node-c generation=2 && [ "$(vip_holder)" = node-b ]
check "service undisturbed: writes acknowledged, protected, node-b primary with the VIP, generation 2" $? \
  "$last_status; VIP on $(vip_holder | paste -sd' ' -)"

base=$(acks)
killed=$(date +%s%N) # (docker kill returns some 100 ms after the SIGKILL)
"$DOCKER" kill -s KILL "$node_b" >/dev/null
wait_log "$node_c" "LIVE: this node is the primary now" 30
check "node-b killed too: node-c goes live" $? "$(tail_log "$node_c" 6)"
wait_log "$node_a" "clone installed" 60
check "node-a, standing by, joins node-c by clone" $? "a: $(tail_log "$node_a" 4) c: $(tail_log "$node_c" 4)"
wait_status 60 protected=true primary=node-c backup=node-a generation=3
check "healed again: protected, primary node-c, backup node-a, generation 3" $? "$last_status"
info "after the kill: node-c live in $(since_kill "$node_c" "LIVE: this node") ms, protected again (node-a cloned) in $(since_kill "$node_c" "PROTECTED again") ms"
wait_acks $((base + 30)) 60
check "the writer goes on (30 more acknowledged)" $? "$(acks) acknowledged, $base before"
dx "$client" touch /tmp/w.stop
for _ in $(seq 50); do dx "$client" test -e /tmp/w.done && break; sleep 0.2; done
info "writer: $(dx "$client" cat /tmp/w.done 2>/dev/null)"
verify "from node-c"
timing "restart, second failover and heal"

# ------------------------------------------------------------- 5. metrics
for pair in arbiter:1 node-a:2 node-c:4; do
  name=${pair%%:*} address=$NET.${pair#*:}
  body=$(dx "$client" curl -sf --max-time 5 "http://$address:9100/metrics" 2>&1)
  series=$(grep -c '^lockstep_' <<<"$body")
  [ "$series" -gt 0 ]
  check "$name serves Prometheus text on $address:9100/metrics ($series lockstep_ samples)" $? "$(head -c 300 <<<"$body")"
done

info "total: $((SECONDS - began)) s"
finish
