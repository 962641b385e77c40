#!/usr/bin/env bash
# Tests/Integration/kvstore/run.sh — end-to-end tests of the kvstore guest (issue 3).
#
# Runs primary-vmm --standalone with Guest/build/kvstore.elf on random free
# ports of 127.0.0.1 and drives it with Debian's redis-cli and
# redis-benchmark and with a raw RESP client (kvtests.py). Replies are
# compared byte for byte with a native redis-server started here on another
# port. Also: pipelining, binary-safe and 1 MiB values, many connections,
# expiry on the guest clock, SAVE + restart from the same disk, a corrupt
# snapshot, no disk, out of memory, and a short redis-benchmark run.
#
# Usage: bash Tests/Integration/kvstore/run.sh   (from anywhere; exits 1 if any check fails)
# Prints one line per check and finally "N passed, M failed".
# Uses .build/debug/primary-vmm if present, else .build/release/primary-vmm
# (override with VMM=path).
set -u
cd "$(dirname "$0")/../../.."
ROOT=$(pwd)
HERE=$ROOT/Tests/Integration/kvstore
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the tree

bash scripts/install-deps.sh redis-tools redis-server >/dev/null || {
  echo "cannot install redis-tools/redis-server"
  exit 1
}
make -s -C Guest all >/dev/null || {
  echo "guest build failed"
  exit 1
}
GUEST=$ROOT/Guest/build/kvstore.elf
if [ -z "${VMM:-}" ]; then
  if [ -x .build/debug/primary-vmm ]; then VMM=$ROOT/.build/debug/primary-vmm; else VMM=$ROOT/.build/release/primary-vmm; fi
fi
[ -x "$VMM" ] || {
  echo "no primary-vmm binary (run swift build)"
  exit 1
}

TMP=$(mktemp -d /tmp/kvstore-test.XXXXXX)
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
  PASSED=$((PASSED + 1))
  echo "ok $1"
}
fail() {
  FAILED=$((FAILED + 1))
  echo "not ok $1${2:+: $2}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_vm NAME PORT MEMORY DISK GUESTARGS — sets VM_PID; waits for the ready
# line (and the listener). DISK may be empty (no disk).
start_vm() {
  local name=$1 port=$2 memory=$3 disk=$4 args=$5
  local cmd=("$VMM" --vm "$name" --guest "$GUEST" --standalone --serve "127.0.0.1:$port" --memory "$memory")
  [ -n "$disk" ] && cmd+=(--disk "$disk" --disk-size 64M)
  [ -n "$args" ] && cmd+=(--guest-args "$args")
  "${cmd[@]}" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  VM_PID=$!
  PIDS+=("$VM_PID")
  for _ in $(seq 300); do
    if grep -q '^kvstore ready' "$TMP/$name.out" 2>/dev/null && redis-cli -p "$port" PING >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$VM_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "VM $name did not start:"
  cat "$TMP/$name.out" "$TMP/$name.err"
  return 1
}

# stop_vm PID — SIGTERM and wait (at most 20 s).
stop_vm() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 1
}

# py GROUP PORT... — runs a kvtests.py group and counts its ok / not ok lines.
py() {
  local out
  out=$(timeout 300 python3 "$HERE/kvtests.py" "$@" 2>&1)
  local rc=$?
  while IFS= read -r line; do
    case "$line" in
    "ok "*) pass "${line#ok }" ;;
    "not ok "*)
      FAILED=$((FAILED + 1))
      echo "$line"
      ;;
    *) [ -n "$line" ] && echo "  $line" ;;
    esac
  done <<<"$out"
  [ $rc -eq 0 ] || fail "kvtests.py $1 exited with $rc"
}

# cli NAME EXPECTED ARGS... — redis-cli --no-raw output must equal EXPECTED.
cli() {
  local name=$1 want=$2
  shift 2
  local got
  got=$(timeout 10 redis-cli -p "$PORT" --no-raw "$@" 2>&1)
  if [ "$got" == "$want" ]; then pass "redis-cli $name"; else fail "redis-cli $name" "got [$got], want [$want]"; fi
}

alive() {
  if [ "$(redis-cli -p "$1" PING 2>&1)" == "PONG" ]; then pass "$2"; else fail "$2" "VM not answering"; fi
}

# ---- A native redis-server for the differential checks --------------------

REF_PORT=$(free_port)
redis-server --port "$REF_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")

# ---- The main VM ---------------------------------------------------------

PORT=$(free_port)
DISK=$TMP/kv.img
start_vm kv "$PORT" 256M "$DISK" "" || exit 1
grep -q '^kvstore: starting empty: no snapshot (blank disk)' "$TMP/kv.out" && pass "blank disk: starts empty" ||
  fail "blank disk: starts empty" "$(cat "$TMP/kv.out")"
for _ in $(seq 50); do redis-cli -p "$REF_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done

echo "# redis-cli, every command"
cli "PING" "PONG" PING
cli "PING msg" '"hello world"' PING "hello world"
cli "ECHO" '"abc"' ECHO abc
cli "SELECT 0" "OK" SELECT 0
cli "SELECT 1" "(error) ERR DB index is out of range" SELECT 1
cli "QUIT" "OK" QUIT
cli "FLUSHALL" "OK" FLUSHALL
cli "DBSIZE empty" "(integer) 0" DBSIZE
cli "SET" "OK" SET k1 v1
cli "GET" '"v1"' GET k1
cli "GET missing" "(nil)" GET nothere
cli "SET NX existing" "(nil)" SET k1 x NX
cli "SET XX missing" "(nil)" SET k2 x XX
cli "SET XX GET" '"v1"' SET k1 v2 XX GET
cli "SET NX XX" "(error) ERR syntax error" SET k1 v NX XX
cli "SET EX PX" "(error) ERR syntax error" SET k1 v EX 10 PX 100
cli "SET EX 0" "(error) ERR invalid expire time in 'set' command" SET k1 v EX 0
cli "SET EX abc" "(error) ERR value is not an integer or out of range" SET k1 v EX abc
cli "SET EX" "OK" SET k3 v EX 100
cli "TTL" "(integer) 100" TTL k3
cli "SET PX" "OK" SET k4 v PX 100000
cli "PERSIST" "(integer) 1" PERSIST k4
cli "TTL no expiry" "(integer) -1" TTL k4
cli "GETSET" '"v2"' GETSET k1 v3
cli "MSET" "OK" MSET a 1 b 2 c 3
cli "MSET odd" "(error) ERR wrong number of arguments for 'mset' command" MSET a 1 b
cli "MGET" $'1) "1"\n2) "2"\n3) (nil)' MGET a b nothere
cli "APPEND" "(integer) 5" APPEND a 2345
cli "STRLEN" "(integer) 5" STRLEN a
cli "DEL" "(integer) 2" DEL a b nothere
cli "EXISTS" "(integer) 3" EXISTS c c k1 nothere
cli "INCR" "(integer) 4" INCR c
cli "INCRBY" "(integer) 14" INCRBY c 10
cli "DECR" "(integer) 13" DECR c
cli "DECRBY" "(integer) 3" DECRBY c 10
cli "INCR not integer" "(error) ERR value is not an integer or out of range" INCR k1
cli "INCRBY overflow" "(error) ERR increment or decrement would overflow" INCRBY c 9223372036854775807
cli "EXPIRE" "(integer) 1" EXPIRE k1 50
cli "PEXPIRE" "(integer) 1" PEXPIRE k1 50000
cli "TTL after PEXPIRE" "(integer) 50" TTL k1
cli "TTL missing" "(integer) -2" TTL nothere
cli "PTTL missing" "(integer) -2" PTTL nothere
cli "LPUSH" "(integer) 3" LPUSH list a b c
cli "RPUSH" "(integer) 5" RPUSH list d e
cli "LRANGE" $'1) "c"\n2) "b"\n3) "a"\n4) "d"\n5) "e"' LRANGE list 0 -1
cli "LRANGE negative" $'1) "d"\n2) "e"' LRANGE list -2 -1
cli "LLEN" "(integer) 5" LLEN list
cli "LPOP" '"c"' LPOP list
cli "RPOP" '"e"' RPOP list
cli "LPOP count" $'1) "b"\n2) "a"' LPOP list 2
cli "RPOP count" $'1) "d"' RPOP list 5
cli "LPOP empty" "(nil)" LPOP list
cli "LRANGE empty" "(empty array)" LRANGE list 0 -1
cli "WRONGTYPE" "(error) WRONGTYPE Operation against a key holding the wrong kind of value" LPUSH k1 x
cli "HSET" "(integer) 2" HSET h f1 v1 f2 v2
cli "HSET update" "(integer) 1" HSET h f1 v1b f3 v3
cli "HGET" '"v1b"' HGET h f1
cli "HGETALL" $'1) "f1"\n2) "v1b"\n3) "f2"\n4) "v2"\n5) "f3"\n6) "v3"' HGETALL h
cli "HLEN" "(integer) 3" HLEN h
cli "HDEL" "(integer) 2" HDEL h f1 f2 nothere
cli "KEYS" '1) "k3"' KEYS 'k[3x]'
cli "KEYS ?" '1) "k4"' KEYS '?4'
cli "KEYS none" "(empty array)" KEYS 'zz*'
cli "unknown command" "(error) ERR unknown command 'FOO', with args beginning with: 'a' 'b' " FOO a b
cli "wrong arity" "(error) ERR wrong number of arguments for 'get' command" GET
cli "FLUSHDB" "OK" FLUSHDB
cli "DBSIZE after FLUSHDB" "(integer) 0" DBSIZE
got=$(timeout 10 redis-cli -p "$PORT" INFO keyspace 2>&1 | tr -d '\r')
[ "$got" == "# Keyspace" ] && pass "redis-cli INFO keyspace" || fail "redis-cli INFO keyspace" "$got"
got=$(timeout 10 redis-cli -p "$PORT" INFO server 2>&1 | tr -d '\r' | head -2)
[ "$got" == $'# Server\nredis_version:7.0.0' ] && pass "redis-cli INFO server" || fail "redis-cli INFO server" "$got"
got=$(timeout 10 redis-cli -p "$PORT" --no-raw COMMAND COUNT 2>&1)
[[ "$got" =~ ^\(integer\)\ [0-9]+$ ]] && pass "redis-cli COMMAND COUNT" || fail "redis-cli COMMAND COUNT" "$got"
# Interactive redis-cli (in a pseudo-terminal) sends COMMAND DOCS at start.
if got=$(timeout 20 python3 "$HERE/cli_interactive.py" "$PORT" 2>&1); then pass "redis-cli interactive session"; else
  fail "redis-cli interactive session" "$got"
fi

echo "# exact replies, compared with redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
py exact "$PORT" "$REF_PORT"
py protocol "$PORT" "$REF_PORT"
echo "# pipelining, binary values, large values, connections"
py pipeline "$PORT"
py binary "$PORT"
py large "$PORT"
py connections "$PORT"
echo "# expiry (guest clock), INFO, COMMAND"
py expiry "$PORT"
py info "$PORT"

echo "# redis-benchmark"
bench=$(timeout 120 redis-benchmark -p "$PORT" -q -n 2000 -c 10 \
  -t ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,hset,mset,lrange_100 2>&1 | tr '\r' '\n')
rc=$?
missing=""
for t in PING_INLINE PING_MBULK SET GET INCR LPUSH RPUSH LPOP RPOP HSET "MSET (10 keys)" LRANGE_100; do
  echo "$bench" | grep -q "^$t.*: [0-9.]* requests per second" || missing="$missing $t"
done
if [ $rc -eq 0 ] && [ -z "$missing" ] && ! echo "$bench" | grep -qiE 'error|warning'; then
  pass "redis-benchmark 12 tests, no errors"
  echo "$bench" | grep 'requests per second' | sed 's/^/  /'
else
  fail "redis-benchmark 12 tests, no errors" "rc=$rc missing:$missing output: $(echo "$bench" | grep -v 'rps=' | head -20)"
fi
alive "$PORT" "VM alive after redis-benchmark"

echo "# persistence"
py populate "$PORT"
KV_PID=$VM_PID
stop_vm "$KV_PID" && pass "SIGTERM stops the VM" || fail "SIGTERM stops the VM"
grep -q 'exits=[0-9]* rx_messages=[0-9]* tx_messages=[0-9]* messages_per_exit=' "$TMP/kv.err" &&
  pass "VMM stop line with exit counts" || fail "VMM stop line with exit counts" "$(tail -3 "$TMP/kv.err")"
sleep 0.5 # the PX 300 key is expired by the time the snapshot is loaded
start_vm kv2 "$PORT" 256M "$DISK" "" || exit 1
grep -q '^kvstore ready keys=8$' "$TMP/kv2.out" && pass "restart loads the snapshot (keys=8)" ||
  fail "restart loads the snapshot (keys=8)" "$(cat "$TMP/kv2.out")"
py verify "$PORT"
py save_again "$PORT"
stop_vm "$VM_PID"
start_vm kv3 "$PORT" 256M "$DISK" "" || exit 1
py verify_again "$PORT"
stop_vm "$VM_PID"

# A corrupt data region (checksum mismatch) and a corrupt header.
off=$(sed -n 's/^kvstore: saved .* bytes at \([0-9]*\)).*/\1/p' "$TMP/kv2.out" | tail -1)
if [ -n "$off" ]; then
  printf 'garbage' | dd of="$DISK" bs=1 seek=$((off + 20)) conv=notrunc status=none
  start_vm kv4 "$PORT" 256M "$DISK" "" || exit 1
  grep -qE '^kvstore: starting empty: (data checksum mismatch|bad |truncated|trailing)' "$TMP/kv4.out" &&
    pass "corrupt data: message" ||
    fail "corrupt data: message" "$(cat "$TMP/kv4.out")"
  py empty "$PORT"
  stop_vm "$VM_PID"
else
  fail "corrupt data" "no 'saved ... bytes at N' line in the console"
fi
printf 'LSKVSNAPgarbage' | dd of="$DISK" bs=1 seek=0 conv=notrunc status=none
start_vm kv5 "$PORT" 256M "$DISK" "" || exit 1
grep -q '^kvstore: starting empty: corrupt header' "$TMP/kv5.out" && pass "corrupt header: message" ||
  fail "corrupt header: message" "$(cat "$TMP/kv5.out")"
py empty "$PORT"
stop_vm "$VM_PID"

echo "# no disk, out of memory"
start_vm kv6 "$PORT" 64M "" "" || exit 1
grep -q '^kvstore: no disk attached' "$TMP/kv6.out" && pass "no disk: message" || fail "no disk: message"
py nodisk "$PORT"
stop_vm "$VM_PID"
start_vm kv7 "$PORT" 64M "" "ring=1" || exit 1
py oom "$PORT"
alive "$PORT" "VM alive after OOM (maxmemory guard)"
stop_vm "$VM_PID"
# maxmemory far above the heap: the allocator itself runs out.
start_vm kv8 "$PORT" 64M "" "ring=1 maxmemory=100000" || exit 1
out=$(python3 - "$PORT" <<'EOF'
import sys
sys.path.insert(0, "Tests/Integration/kvstore")
from resp import Conn
port = int(sys.argv[1])
c = Conn(port, timeout=30)
oom = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
seen = False
for i in range(4000):
    try:
        r = c.call("SET", "m%d" % i, b"x" * 30000)
    except (EOFError, ConnectionError):
        c = Conn(port, timeout=30)
        continue
    if r == oom:
        seen = True
        break
    assert r == b"+OK\r\n", r
c = Conn(port)
assert c.call("PING") == b"+PONG\r\n"
assert c.call("DEL", "m0", "m1", "m2") == b":3\r\n"
assert c.call("SET", "again", "1") == b"+OK\r\n"
print("seen" if seen else "never")
EOF
)
[ "$out" == "seen" ] && pass "allocator OOM gives the OOM error, VM keeps serving" ||
  fail "allocator OOM gives the OOM error, VM keeps serving" "$out"
alive "$PORT" "VM alive after allocator OOM"
stop_vm "$VM_PID"
bad=$(grep -L 'stopped on request; exits=' "$TMP"/kv*.err)
if [ -z "$bad" ]; then
  pass "every VM stopped on request (no guest fault, abort or ABI error)"
else
  fail "every VM stopped on request (no guest fault, abort or ABI error)" "$(tail -n 2 $bad)"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
