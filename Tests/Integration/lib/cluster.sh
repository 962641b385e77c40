# Tests/Integration/lib/cluster.sh — what the failover and clone tests share:
# result counting, bounded waits, free ports, the Python load, read-back and
# gap clients (written into $work), `lockstep status` helpers, and spawn
# (a process whose exit status is kept). Source it after setting BIN and
# work; it sets pids, passed, failed and the cleanup trap.
# shellcheck shell=bash
pids=()
passed=0
failed=0
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do [ -z "$(jobs -rp)" ] && break; sleep 0.05; done  # the wrappers of spawn
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
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
# A port free for TCP and UDP on 127.0.0.1 (the primary receives heartbeats
# on the UDP port of its replication address).
port() {
  python3 - <<'PY'
import socket
for _ in range(100):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        u.close(); t.close()
    print(p); break
PY
}
wait_for() { # file text seconds
  for _ in $(seq $(( $3 * 20 ))); do grep -aq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
wait_exit() { # pid seconds
  for _ in $(seq $(( $2 * 20 ))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}
tail_of() { tail -n "${2:-4}" "$1" 2>/dev/null | tr '\n' '|'; }
now() { date +%s.%N; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# ---------------------------------------------------------------- helpers
# Python clients. load.py: writes SET key:I I and INCR counter in turn,
# one at a time, reconnecting and retrying the same command on any error;
# appends every acknowledged write to ACKS ("set KEY VALUE TIME" / "incr
# REPLY TIME"); stops at STOPFILE or after LIMIT seconds.
cat >"$work/load.py" <<'PY'
import os, socket, sys, time
port, ackpath, limit, stopfile, prefix = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
start = time.time()
acks = open(ackpath, "w", buffering=1)
sock = reader = None
op = None
i = errors = unexpected = 0
def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
while time.time() - start < limit and not os.path.exists(stopfile):
    if sock is None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1)
            sock.settimeout(3)
            reader = sock.makefile("rb")
        except OSError:
            sock = None
            time.sleep(0.02)
            continue
    if op is None:
        i += 1
        op = ("set", "%s:%d" % (prefix, i), str(i)) if i % 2 else ("incr", prefix + ":counter", "")
    try:
        sock.sendall(resp("SET", op[1], op[2]) if op[0] == "set" else resp("INCR", op[1]))
        line = reader.readline()
        if not line.endswith(b"\r\n"):
            raise OSError("connection closed")
    except OSError:
        errors += 1
        try:
            sock.close()
        except OSError:
            pass
        sock = None
        continue  # retry the same command on a new connection
    t = time.time()
    if op[0] == "set" and line == b"+OK\r\n":
        acks.write("set %s %s %.6f\n" % (op[1], op[2], t))
    elif op[0] == "incr" and line.startswith(b":"):
        acks.write("incr %d %.6f\n" % (int(line[1:]), t))
    else:
        unexpected += 1
        print("unexpected reply %r to %s" % (line, op[0]), file=sys.stderr)
    op = None
print("load: %d commands, %d connection errors, %d unexpected replies" % (i, errors, unexpected))
PY
# verify.py: reads every acknowledged SET back (pipelined, in batches) and
# the counter; prints "missing=N wrong=N sets=N incrs=N counter=N maxincr=N".
cat >"$work/verify.py" <<'PY'
import socket, sys
port, ackpath, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sets, incrs, maxincr = [], 0, 0
for line in open(ackpath):
    f = line.split()
    if len(f) == 4 and f[0] == "set":
        sets.append((f[1], f[2]))
    elif len(f) == 3 and f[0] == "incr":
        incrs += 1; maxincr = max(maxincr, int(f[1]))
s = socket.create_connection(("127.0.0.1", port), timeout=10)
r = s.makefile("rb")
def get(keys):
    s.sendall(b"".join(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k.encode()) for k in keys))
    out = []
    for _ in keys:
        line = r.readline()
        if line.startswith(b"$-1"):
            out.append(None)
        elif line.startswith(b"$"):
            out.append(r.read(int(line[1:]) + 2)[:-2].decode())
        else:
            raise SystemExit("bad reply %r" % line)
    return out
missing = wrong = 0
for n in range(0, len(sets), 200):
    batch = sets[n:n + 200]
    for (k, v), got in zip(batch, get([k for k, _ in batch])):
        if got is None:
            missing += 1
        elif got != v:
            wrong += 1
counter = get([prefix + ":counter"])[0]
print("missing=%d wrong=%d sets=%d incrs=%d counter=%s maxincr=%d" % (missing, wrong, len(sets), incrs, counter or 0, maxincr))
PY
# gap.py ACKS T: acknowledgements before and after T, the delay from T to
# the first one after it, and the longest pause between two
# acknowledgements from the last one before T on (up to END if given).
cat >"$work/gap.py" <<'PY2'
import sys
kill = float(sys.argv[2])
end = float(sys.argv[3]) if len(sys.argv) > 3 else float("inf")
times = sorted(float(l.split()[-1]) for l in open(sys.argv[1]) if l.strip())
before = [t for t in times if t <= kill]; after = [t for t in times if t > kill]
first = (after[0] - kill) * 1000 if after else -1
span = before[-1:] + [t for t in after if t <= end]
pause = max((b - a for a, b in zip(span, span[1:])), default=-1) * 1000
print("before=%d after=%d first_ms=%.0f pause_ms=%.0f" % (len(before), len(after), first, pause))
PY2

jfield() { # file field -> the JSON value (python repr of None: null)
  python3 -c 'import json,sys
try: d = json.load(open(sys.argv[1]))
except Exception: print("unparsable"); sys.exit()
v = d.get(sys.argv[2], "absent"); print("null" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1" "$2"
}
status_rc=0
status() { # -> $work/status.json, $status_rc
  timeout 20 "$BIN/lockstep" status --arbiter "127.0.0.1:$arb" --vm kv --tls-dir "$work/certs/op" --json \
    >"$work/status.json" 2>"$work/status.err"
  status_rc=$?
}
status_is() { # field=value ... : every field of $work/status.json has its value
  local pair
  for pair in "$@"; do [ "$(jfield "$work/status.json" "${pair%%=*}")" = "${pair#*=}" ] || return 1; done
}
status_text() { echo "rc=$status_rc $(cat "$work/status.json" "$work/status.err" 2>/dev/null | tr '\n' ' ')"; }

# spawn VAR LOG COMMAND...: runs COMMAND in the background with its output
# appended to LOG; VAR gets its pid, LOG.rc its exit status once it ended (a
# wrapper subshell waits for it, so a SIGKILL is not reported by this shell;
# the wrapper ends with COMMAND, so only COMMAND's pid goes into $pids).
spawn() {
  local var=$1 log=$2 child=""
  shift 2
  rm -f "$log.pid" "$log.rc"
  ( "$@" >>"$log" 2>&1 &
    echo $! >"$log.pid"; wait $! 2>/dev/null; echo $? >"$log.rc" ) &
  for _ in $(seq 200); do [ -s "$log.pid" ] && break; sleep 0.01; done
  child=$(cat "$log.pid" 2>/dev/null)
  pids+=("$child")
  printf -v "$var" '%s' "$child"
}
exit_status() { cat "$1.rc" 2>/dev/null || echo none; }  # LOG
