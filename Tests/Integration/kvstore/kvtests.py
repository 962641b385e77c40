#!/usr/bin/env python3
"""kvstore tests that need exact bytes: a raw RESP client against the VM
(and, for the differential checks, against a native redis-server).

    kvtests.py GROUP PORT [REFPORT]

Every check prints one line, "ok NAME" or "not ok NAME: detail"; run.sh
counts them. The exit status is 0 even when checks fail (run.sh decides).
"""
import os
import random
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Conn, encode  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def report(ok, name, detail=""):
    line = ("ok " if ok else "not ok ") + name
    if not ok:
        line += ": " + detail
    print(line, flush=True)
    return ok


def check_eq(name, got, want):
    return report(got == want, name, "got %r, want %r" % (short(got), short(want)))


def short(v, n=300):
    r = v if not isinstance(v, (bytes, str)) or len(v) <= n else v[:n] + (b"..." if isinstance(v, bytes) else "...")
    return r


def arg_bytes(a):
    return a.encode("latin-1") if isinstance(a, str) else a


# ---- exact: every case in cases.txt against redis-server -----------------

def parse_array(r):
    """Elements of a flat RESP array of bulk strings."""
    assert r[:1] == b"*", r
    eol = r.index(b"\r\n")
    n = int(r[1:eol])
    out, p = [], eol + 2
    for _ in range(max(n, 0)):
        e = r.index(b"\r\n", p)
        ln = int(r[p + 1:e])
        out.append(r[e + 2:e + 2 + ln])
        p = e + 2 + ln + 2
    return out


def load_cases():
    cases = []
    for line in open(os.path.join(HERE, "cases.txt"), encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        marker = None
        if line.startswith("~ "):
            marker, line = "~", line[2:]
        elif line.startswith("S "):
            marker, line = "S", line[2:]
        elif line.startswith("!"):
            end = line.index("' ") + 1
            marker, line = eval(line[1:end]), line[end + 1:]
        args = eval("[" + line + "]")
        cases.append((marker, [arg_bytes(a) for a in args], line))
    return cases


def group_exact(port, ref_port):
    vm, ref = Conn(port), Conn(ref_port)
    for marker, args, text in load_cases():
        name = "exact %s" % short(text, 70)
        got = vm.call(*args)
        if isinstance(marker, bytes):
            ref.call(*args)  # keep the two stores in step
            check_eq(name + " (kvstore-specific)", got, marker)
            continue
        want = ref.call(*args)
        if marker == "S":
            ok = got[:1] == b"*" and sorted(parse_array(got)) == sorted(parse_array(want))
            report(ok, name, "got %r, want %r" % (short(got), short(want)))
        elif marker == "~":
            ok = got[:1] == b":" and want[:1] == b":"
            if ok:
                g, w = int(got[1:-2]), int(want[1:-2])
                ok = abs(g - w) <= max(1, abs(w) // 100)
            report(ok, name, "got %r, want %r (approximately)" % (got, want))
        else:
            check_eq(name, got, want)
    vm.close()
    ref.close()


# ---- protocol: raw bytes, errors that close the connection ---------------

PROTOCOL_CASES = [
    b"*abc\r\n", b"*-1\r\nPING\r\n", b"*0\r\nPING\r\n", b"*1\r\n+PING\r\n", b"*1\r\n$abc\r\n",
    b"*1\r\n$-1\r\n", b"*1\r\n$01\r\nx\r\n", b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", b"*3000000000\r\n",
    b"*2147483647\r\n$4\r\nPING\r\n", b"*1\r\n$536870913\r\n", b"*1\r\n$536870912\r\n", b"*1\r\n\r\n",
    b"PING\r\n", b"PING\n", b"  PING   \"a b\"  'c'\r\n", b"ECHO \"a\\x41\\n\"\r\n", b"ECHO \"abc\r\n",
    b"ECHO \"abc\"d\r\n", b"ECHO 'it\\'s'\r\n", b"\r\n\r\nPING\r\n", b"ECHO \"\\x4g\"\r\n", b"ECHO \"a\\zb\"\r\n",
    b"*1\r\n$4\r\nQUIT\r\nPING\r\n", b"QUIT\r\nPING\r\n", b"*2\r\n$4\r\nQUIT\r\n$1\r\nx\r\n", b"*1\r\r\n", b"*1\n",
    b"*1 \r\n$4\r\nPING\r\n", b"*+1\r\n$4\r\nPING\r\n", b"*01\r\n$4\r\nPING\r\n", b"ECHO a\0b\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n", b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", b"x" * 70000,
    b"*" + b"1" * 70000, b"*1\r\n$" + b"1" * 70000, b"PING\t1\r\n", b"ECHO \"\"\r\n", b"ECHO ''\r\n",
    b"ECHO \"a\"\"b\"\r\n", b"ECHO a\"b c\"d\r\n", b"ECHO \"a\\\"b\"\r\n", b"ECHO a\x0bb\r\n", b"\x0bECHO x\r\n",
    b"ECHO \"x\\", b"*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n*1\r\n$abc\r\nPING\r\n", b"*1\r\n$4\r\nPING\r\n*x\r\n",
    b"SET k v\r\nGET k\r\nDEL k\r\n", b"*1\r\n$4\r\nPING", b"PING", b"\0PING\r\n",
]


def raw_exchange(port, data, out, key, wait=0.6):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(data)
    s.settimeout(wait)
    got, closed = b"", False
    deadline = time.time() + wait
    try:
        while time.time() < deadline:
            d = s.recv(1 << 20)
            if not d:
                closed = True
                break
            got += d
    except (socket.timeout, TimeoutError):
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    out[key] = (got, closed)


def group_protocol(port, ref_port):
    results = {}
    threads = []
    for i, data in enumerate(PROTOCOL_CASES):
        for which, p in (("vm", port), ("ref", ref_port)):
            t = threading.Thread(target=raw_exchange, args=(p, data, results, (i, which)))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    for i, data in enumerate(PROTOCOL_CASES):
        got, want = results[(i, "vm")], results[(i, "ref")]
        check_eq("protocol %r" % short(data, 40), got, want)


# ---- pipeline ------------------------------------------------------------

def group_pipeline(port):
    c = Conn(port)
    c.call("DEL", "pc")
    n = 1000
    c.send(b"".join(encode("INCR", "pc") for _ in range(n)))
    replies = c.replies(n)
    check_eq("pipeline 1000 INCR in one write", replies, [b":%d\r\n" % (i + 1) for i in range(n)])

    # The same mixed stream sent whole and split at random points must get
    # the same replies (keys in separate namespaces).
    rnd = random.Random(7)

    def stream(prefix):
        out = []
        for i in range(400):
            k = prefix + str(rnd_local.randrange(20))
            op = rnd_local.randrange(8)
            if op == 0:
                out.append(encode("SET", k, "v%d" % i))
            elif op == 1:
                out.append(encode("GET", k))
            elif op == 2:
                out.append(encode("INCR", k + "n"))
            elif op == 3:
                out.append(encode("RPUSH", k + "l", "x" * rnd_local.randrange(50)))
            elif op == 4:
                out.append(encode("LRANGE", k + "l", 0, -1))
            elif op == 5:
                out.append(encode("HSET", k + "h", "f%d" % (i % 3), i))
            elif op == 6:
                out.append(b"PING\r\n")
            else:
                out.append(encode("ECHO", "e" * rnd_local.randrange(100)))
        return out

    rnd_local = random.Random(11)
    whole = stream("w:")
    rnd_local = random.Random(11)
    split = stream("s:")
    c.send(b"".join(whole))
    want = c.replies(len(whole))
    data = b"".join(split)
    p = 0
    while p < len(data):
        k = rnd.randrange(1, 200)
        c.send(data[p:p + k])
        p += k
        if rnd.random() < 0.05:
            time.sleep(0.002)
    got = c.replies(len(split))
    check_eq("pipeline 400 mixed commands split at random points", got, want)

    # One byte per write.
    reqs = [encode("ECHO", "byte-%d" % i) for i in range(40)] + [b"PING\r\n"] * 5
    for b in b"".join(reqs):
        c.send(bytes([b]))
    got = c.replies(len(reqs))
    want = [b"$%d\r\nbyte-%d\r\n" % (len("byte-%d" % i), i) for i in range(40)] + [b"+PONG\r\n"] * 5
    check_eq("pipeline one byte per write", got, want)

    # Inline commands pipelined.
    c.send(b"PING\r\n" * 100 + b"ECHO inline\n" + b"SET il 5\r\nINCR il\r\n")
    got = c.replies(103)
    check_eq("pipeline inline", got, [b"+PONG\r\n"] * 100 + [b"$6\r\ninline\r\n", b"+OK\r\n", b":6\r\n"])
    c.close()


# ---- binary-safe keys and values -----------------------------------------

def group_binary(port):
    c = Conn(port)
    key = bytes(range(256))
    val = bytes(range(256)) * 4 + b"\r\n\0\r\n$3\r\n*1\r\n"
    check_eq("binary SET", c.call("SET", key, val), b"+OK\r\n")
    check_eq("binary GET", c.call("GET", key), b"$%d\r\n%s\r\n" % (len(val), val))
    check_eq("binary STRLEN", c.call("STRLEN", key), b":%d\r\n" % len(val))
    check_eq("binary APPEND", c.call("APPEND", key, b"\0\r\n"), b":%d\r\n" % (len(val) + 3))
    check_eq("binary EXISTS", c.call("EXISTS", key), b":1\r\n")
    keys = parse_array(c.call("KEYS", b"\0*"))
    check_eq("binary KEYS", key in keys, True)
    check_eq("binary HSET", c.call("HSET", b"bh\0", b"f\r\n\0", b"v\0\r\n"), b":1\r\n")
    check_eq("binary HGETALL", c.call("HGETALL", b"bh\0"), b"*2\r\n$4\r\nf\r\n\0\r\n$4\r\nv\0\r\n\r\n")
    check_eq("binary RPUSH", c.call("RPUSH", b"bl\r\n", b"\0", b"\r\n", b""), b":3\r\n")
    check_eq("binary LRANGE", c.call("LRANGE", b"bl\r\n", 0, -1), b"*3\r\n$1\r\n\0\r\n$2\r\n\r\n\r\n$0\r\n\r\n")
    check_eq("binary empty key", c.call("SET", b"", b"empty-key"), b"+OK\r\n")
    check_eq("binary empty key GET", c.call("GET", b""), b"$9\r\nempty-key\r\n")
    c.call("DEL", key, b"bh\0", b"bl\r\n", b"")
    c.close()


# ---- large values --------------------------------------------------------

def group_large(port):
    c = Conn(port, timeout=60)
    rnd = random.Random(3)
    mib = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    check_eq("large SET 1 MiB", c.call("SET", "big1", mib), b"+OK\r\n")
    got = c.call("GET", "big1")
    check_eq("large GET 1 MiB", got == b"$1048576\r\n" + mib + b"\r\n", True)
    check_eq("large STRLEN", c.call("STRLEN", "big1"), b":1048576\r\n")

    data = encode("SET", "big2", mib[::-1])
    for i in range(0, len(data), 1000):
        c.send(data[i:i + 1000])
        if i % 100000 == 0:
            time.sleep(0.005)
    check_eq("large SET 1 MiB in 1000-byte writes", c.reply(), b"+OK\r\n")
    check_eq("large GET after split SET", c.call("GET", "big2") == b"$1048576\r\n" + mib[::-1] + b"\r\n", True)

    c.send(encode("SET", "big3", mib) + encode("SET", "big4", mib[:500000]) + encode("GET", "big3")
           + encode("GET", "big4") + encode("PING"))
    r = c.replies(5)
    ok = r[:2] == [b"+OK\r\n", b"+OK\r\n"] and r[2] == b"$1048576\r\n" + mib + b"\r\n" and \
        r[3] == b"$500000\r\n" + mib[:500000] + b"\r\n" and r[4] == b"+PONG\r\n"
    report(ok, "large pipelined SET/GET of 1 MiB values", repr([short(x, 40) for x in r]))

    eight = mib * 8
    check_eq("large SET 8 MiB (twice the rings)", c.call("SET", "big8", eight), b"+OK\r\n")
    got = c.call("GET", "big8")
    check_eq("large GET 8 MiB", got == b"$%d\r\n" % len(eight) + eight + b"\r\n", True)

    check_eq("large RPUSH 1 MiB element", c.call("RPUSH", "bigl", mib, "small"), b":2\r\n")
    check_eq("large LRANGE", c.call("LRANGE", "bigl", 0, 0) == b"*1\r\n$1048576\r\n" + mib + b"\r\n", True)
    check_eq("large HSET 1 MiB value", c.call("HSET", "bigh", "f", mib), b":1\r\n")
    check_eq("large HGET", c.call("HGET", "bigh", "f") == b"$1048576\r\n" + mib + b"\r\n", True)
    c.call("DEL", "app")
    for i in range(100):
        c.send(encode("APPEND", "app", mib[i * 10000:(i + 1) * 10000]))
    c.replies(100)
    check_eq("large 100 APPENDs", c.call("GET", "app") == b"$1000000\r\n" + mib[:1000000] + b"\r\n", True)
    c.call("DEL", "big1", "big2", "big3", "big4", "big8", "bigl", "bigh", "app")
    c.close()


# ---- many connections ----------------------------------------------------

def group_connections(port):
    n = 200
    conns = [Conn(port) for _ in range(n)]
    for i, c in enumerate(conns):
        c.send(encode("SET", "conn:%d" % i, "value-%d" % i))
    ok = all(c.reply() == b"+OK\r\n" for c in conns)
    report(ok, "connections 200 clients SET")
    for i, c in reversed(list(enumerate(conns))):
        c.send(encode("GET", "conn:%d" % ((i + 1) % n)))
    ok = all(c.reply() == b"$%d\r\nvalue-%d\r\n" % (len("value-%d" % ((i + 1) % n)), (i + 1) % n)
             for i, c in enumerate(conns))
    report(ok, "connections 200 clients GET each other's keys")

    # Interleaved partial requests.
    a, b = conns[0], conns[1]
    req = encode("SET", "part", "from-a")
    a.send(req[:7])
    check_eq("connections partial request does not block others", b.call("PING"), b"+PONG\r\n")
    a.send(req[7:])
    check_eq("connections partial request completes", a.reply(), b"+OK\r\n")

    # Clients that vanish mid-request, mid-reply or after QUIT.
    for i in range(2, 60):
        c = conns[i]
        if i % 3 == 0:
            c.send(encode("SET", "gone", "x" * 100000)[:5000])
        elif i % 3 == 1:
            c.send(encode("GET", "conn:1") * 50)
        else:
            c.send(encode("QUIT"))
        c.close()
    for c in conns[60:]:
        c.close()
    time.sleep(0.3)
    c = Conn(port)
    check_eq("connections server fine after clients vanish", c.call("GET", "part"), b"$6\r\nfrom-a\r\n")
    dels = [encode("DEL", "conn:%d" % i) for i in range(n)]
    c.send(b"".join(dels))
    c.replies(n)
    info = c.call("INFO", "clients")
    report(b"connected_clients:" in info, "connections INFO clients", repr(info))
    c.close()
    for x in conns[:2]:
        x.close()


# ---- expiry with the guest clock -----------------------------------------

def group_expiry(port):
    c = Conn(port)
    c.call("SET", "e1", "v")
    t0 = time.time()
    check_eq("expiry PEXPIRE 200", c.call("PEXPIRE", "e1", 200), b":1\r\n")
    p1 = int(c.call("PTTL", "e1")[1:-2])
    report(100 <= p1 <= 200, "expiry PTTL right after", "pttl %d" % p1)
    time.sleep(0.1)
    p2 = int(c.call("PTTL", "e1")[1:-2])
    report(0 < p2 < p1, "expiry PTTL decreases", "pttl %d then %d" % (p1, p2))
    check_eq("expiry TTL rounds to 0", c.call("TTL", "e1"), b":0\r\n")
    time.sleep(max(0, 0.3 - (time.time() - t0)))
    check_eq("expiry GET after 300 ms", c.call("GET", "e1"), b"$-1\r\n")
    check_eq("expiry TTL after", c.call("TTL", "e1"), b":-2\r\n")
    check_eq("expiry PTTL after", c.call("PTTL", "e1"), b":-2\r\n")
    check_eq("expiry EXISTS after", c.call("EXISTS", "e1"), b":0\r\n")

    check_eq("expiry SET EX 1", c.call("SET", "e2", "v", "EX", 1), b"+OK\r\n")
    check_eq("expiry TTL of EX 1", c.call("TTL", "e2"), b":1\r\n")
    c.call("SET", "e2", "w")
    check_eq("expiry SET clears the TTL", c.call("TTL", "e2"), b":-1\r\n")
    c.call("SET", "e3", "v", "PX", 100)
    c.call("RPUSH", "e4", "x")
    c.call("PEXPIRE", "e4", 100)
    time.sleep(0.25)
    keys = parse_array(c.call("KEYS", "e*"))
    check_eq("expiry KEYS skips expired keys", sorted(keys), [b"e2"])

    # Active expiry: keys nobody touches again must still go away.
    dbsize0 = int(c.call("DBSIZE")[1:-2])
    c.send(b"".join(encode("SET", "ae:%d" % i, "v", "PX", 100 + i) for i in range(200)))
    c.replies(200)
    check_eq("expiry 200 keys with PX", int(c.call("DBSIZE")[1:-2]), dbsize0 + 200)
    deadline = time.time() + 5
    n = None
    while time.time() < deadline:
        time.sleep(0.25)
        n = int(c.call("DBSIZE")[1:-2])
        if n <= dbsize0:
            break
    report(n is not None and n <= dbsize0, "expiry active expiry removes untouched keys", "dbsize %r" % n)
    c.call("DEL", "e2")
    c.close()


# ---- INFO, COMMAND, redis-benchmark's CONFIG ----------------------------

def group_info(port):
    c = Conn(port)
    c.call("FLUSHALL")
    c.call("SET", "i1", "v")
    c.call("SET", "i2", "v", "EX", 100)
    info = c.call("INFO")
    report(info.startswith(b"$") and b"\r\n# Server\r\nredis_version:7.0.0\r\n" in info, "info server section",
           repr(short(info)))
    report(b"# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=" in info, "info keyspace section", repr(short(info)))
    ks = c.call("INFO", "keyspace")
    body = ks[ks.index(b"\r\n") + 2:-2]
    ok = body.startswith(b"# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=") and body.endswith(b"\r\n") and \
        body.count(b"#") == 1
    report(ok, "info keyspace only", repr(ks))
    ttl = int(body.split(b"avg_ttl=")[1][:-2])
    report(90000 < ttl <= 100000, "info avg_ttl", repr(ttl))
    c.call("FLUSHALL")
    check_eq("info empty keyspace", c.call("INFO", "keyspace"), b"$12\r\n# Keyspace\r\n\r\n")
    check_eq("info unknown section", c.call("INFO", "nosuch"), b"$0\r\n\r\n")
    count = int(c.call("COMMAND", "COUNT")[1:-2])
    cmds = c.call("COMMAND")
    check_eq("COMMAND lists COMMAND COUNT entries", cmds.startswith(b"*%d\r\n" % count), True)
    check_eq("COMMAND INFO get", c.call("COMMAND", "INFO", "get").startswith(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*"), True)
    check_eq("COMMAND INFO unknown", c.call("COMMAND", "INFO", "nosuch"), b"*1\r\n*-1\r\n")
    check_eq("CONFIG GET save appendonly (redis-benchmark)", c.call("CONFIG", "GET", "save"),
             b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n")
    c.close()


# ---- persistence (driven by run.sh around VM restarts) -------------------

BIG = bytes(random.Random(5).getrandbits(8) for _ in range(1 << 20))


def group_populate(port):
    c = Conn(port, timeout=30)
    c.call("FLUSHALL")
    check_eq("persist populate", c.call("MSET", "s1", "one", "s2", "two", b"bin\0\r\n", b"\0\1\2\r\n"), b"+OK\r\n")
    c.call("SET", "big", BIG)
    c.call("SET", "ttl100", "x", "EX", 100)
    c.call("SET", "soon", "x", "PX", 300)
    c.call("RPUSH", "list", "a", "b", "c")
    c.call("HSET", "hash", "f1", "v1", "f2", "v2")
    c.call("INCRBY", "ctr", 41)
    check_eq("persist SAVE", c.call("SAVE"), b"+OK\r\n")
    c.call("SET", "after-save", "lost")  # not saved: must be gone after the restart
    check_eq("persist DBSIZE before restart", c.call("DBSIZE"), b":10\r\n")
    c.close()


def group_verify(port):
    c = Conn(port, timeout=30)
    check_eq("persist s1 kept", c.call("GET", "s1"), b"$3\r\none\r\n")
    check_eq("persist binary kept", c.call("GET", b"bin\0\r\n"), b"$5\r\n\0\1\2\r\n\r\n")
    check_eq("persist 1 MiB value kept", c.call("GET", "big") == b"$1048576\r\n" + BIG + b"\r\n", True)
    check_eq("persist list kept", c.call("LRANGE", "list", 0, -1), b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
    check_eq("persist hash kept", c.call("HGETALL", "hash"),
             b"*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n")
    check_eq("persist counter kept", c.call("INCR", "ctr"), b":42\r\n")
    ttl = int(c.call("TTL", "ttl100")[1:-2])
    report(80 <= ttl <= 100, "persist TTL kept", "ttl %d" % ttl)
    check_eq("persist expired key gone", c.call("EXISTS", "soon"), b":0\r\n")
    check_eq("persist unsaved key gone", c.call("EXISTS", "after-save"), b":0\r\n")
    check_eq("persist DBSIZE after restart", c.call("DBSIZE"), b":8\r\n")
    c.close()


def group_save_again(port):
    """A second SAVE (placed next to the first) and a third (back at the start)."""
    c = Conn(port, timeout=30)
    c.call("SET", "second", "2")
    check_eq("persist second SAVE", c.call("SAVE"), b"+OK\r\n")
    c.call("DEL", "big")
    c.call("SET", "third", "3")
    check_eq("persist third SAVE", c.call("SAVE"), b"+OK\r\n")
    check_eq("persist BGSAVE", c.call("BGSAVE"), b"+Background saving started\r\n")
    last = int(c.call("LASTSAVE")[1:-2])
    report(abs(last - time.time()) < 60, "persist LASTSAVE", repr(last))
    c.close()


def group_verify_again(port):
    c = Conn(port)
    check_eq("persist third save loaded", c.call("MGET", "second", "third", "big"),
             b"*3\r\n$1\r\n2\r\n$1\r\n3\r\n$-1\r\n")
    c.close()


def group_nodisk(port):
    c = Conn(port)
    check_eq("nodisk SAVE", c.call("SAVE"), b"-ERR no disk attached\r\n")
    check_eq("nodisk still serving", c.call("PING"), b"+PONG\r\n")
    c.close()


def group_empty(port):
    c = Conn(port)
    check_eq("corrupt snapshot gives an empty store", c.call("DBSIZE"), b":0\r\n")
    c.close()


# ---- out of memory -------------------------------------------------------

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"


def group_oom(port):
    c = Conn(port, timeout=30)
    c.call("FLUSHALL")
    chunk = b"m" * (1 << 20)
    got_oom, i = False, 0
    for i in range(1000):
        r = c.call("SET", "oom:%d" % i, chunk)
        if r == OOM:
            got_oom = True
            break
        if r != b"+OK\r\n":
            report(False, "oom SET until full", "reply %r" % short(r))
            return
    report(got_oom, "oom SET until full gives the OOM error", "after %d MiB" % i)
    check_eq("oom PING still works", c.call("PING"), b"+PONG\r\n")
    check_eq("oom GET still works", c.call("STRLEN", "oom:0"), b":1048576\r\n")
    for cmd in (("LPUSH", "oomlist", chunk), ("HSET", "oomhash", "f", chunk), ("APPEND", "oom:0", chunk),
                ("MSET", "x1", chunk, "x2", chunk)):
        check_eq("oom %s refused" % cmd[0], c.call(*cmd), OOM)
    check_eq("oom refused commands changed nothing", c.call("EXISTS", "oomlist", "oomhash", "x1", "x2"), b":0\r\n")
    c.send(b"".join(encode("DEL", "oom:%d" % j) for j in range(i)))
    c.replies(i)
    check_eq("oom SET works again after DEL", c.call("SET", "after", chunk), b"+OK\r\n")
    c.call("FLUSHALL")
    c.close()


GROUPS = {
    "exact": group_exact, "protocol": group_protocol, "pipeline": group_pipeline, "binary": group_binary,
    "large": group_large, "connections": group_connections, "expiry": group_expiry, "info": group_info,
    "populate": group_populate, "verify": group_verify, "save_again": group_save_again,
    "verify_again": group_verify_again, "nodisk": group_nodisk, "empty": group_empty, "oom": group_oom,
}

if __name__ == "__main__":
    group = GROUPS[sys.argv[1]]
    ports = [int(p) for p in sys.argv[2:]]
    try:
        group(*ports)
    except Exception as e:  # a crash of the test itself is one failure
        report(False, "%s raised" % sys.argv[1], "%s: %s" % (type(e).__name__, e))
