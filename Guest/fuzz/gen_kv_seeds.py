#!/usr/bin/env python3
"""Writes the seed programs of the kv fuzz target (fuzz/corpus/kv/) from
readable command lists, using the name and word tables of kv_fuzz.c."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(HERE, "kv_fuzz.c")).read()
names = re.findall(r'"([^"]*)"', src[src.index("static const char *names[]"):src.index("#define NNAMES")])
words = re.findall(r'"((?:[^"\\]|\\.)*)"', src[src.index("static const char *words[]"):src.index("#define NWORDS")])
words = [w.encode().decode("unicode_escape") for w in words]


def cmd(name, *args):
    out = [names.index(name), len(args)]
    for a in args:
        if isinstance(a, bytes):
            assert len(a) % 2 == 0 and len(a) <= 62
            out += [0xE0 + len(a) // 2] + list(a)
        else:
            out.append(words.index(a))
    return bytes(out)


def op(code, arg=0):
    return bytes([code, arg])


TIME, ACTIVE, REHASH, ROUNDTRIP, FAIL, BIGTIME = 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5

progs = {
    "strings": cmd("SET", "k0", "abc") + cmd("GET", "k0") + cmd("APPEND", "k0", "abc") + cmd("STRLEN", "k0")
    + cmd("GETSET", "k0", "1") + cmd("INCR", "k0") + cmd("INCRBY", "k0", "100")
    + cmd("DECRBY", "k0", "-9223372036854775808") + cmd("MSET", "k1", "1", "k2", "2") + cmd("MGET", "k1", "k2", "k3")
    + cmd("DEL", "k1", "k2") + cmd("EXISTS", "k0", "k0") + cmd("SET", "k1", "abc", "NX", "GET")
    + cmd("SET", "k1", "10", "XX", "EX", "10") + cmd("SET", "k1", "f1", "KEEPTTL", "GET"),
    "expiry": cmd("SET", "k0", "1", "PX", "200") + cmd("PTTL", "k0") + op(TIME, 10) + cmd("TTL", "k0")
    + op(TIME, 15) + cmd("GET", "k0") + cmd("SET", "k1", "1") + cmd("EXPIRE", "k1", "10", "GT")
    + cmd("PEXPIRE", "k1", "100") + cmd("PERSIST", "k1") + cmd("EXPIRE", "k1", "-1") + cmd("SET", "k2", "1", "EX", "1")
    + op(BIGTIME, 20) + op(ACTIVE) + cmd("DBSIZE"),
    "lists": cmd("LPUSH", "k0", "abc", "f1", "f2") + cmd("RPUSH", "k0", "1", "2") + cmd("LRANGE", "k0", "0", "-1")
    + cmd("LPOP", "k0", "2") + cmd("RPOP", "k0") + cmd("LLEN", "k0") + cmd("LRANGE", "k0", "-1", "100")
    + cmd("GET", "k0") + cmd("RPOP", "k0", "10"),
    "hashes": cmd("HSET", "k0", "f1", "1", "f2") + cmd("HSET", "k0", "f1", "1", "f2", "2") + cmd("HGET", "k0", "f1")
    + cmd("HGETALL", "k0") + cmd("HDEL", "k0", "f1") + cmd("HLEN", "k0") + cmd("HKEYS", "k0") + cmd("TYPE", "k0")
    + cmd("HDEL", "k0", "f2"),
    "save": cmd("SET", "k0", "abc", "EX", "100") + cmd("LPUSH", "k1", "abc", "f1") + cmd("HSET", "k2", "f1", "abc")
    + op(ROUNDTRIP) + cmd("KEYS", "*") + cmd("SAVE") + op(TIME, 1) + op(ROUNDTRIP) + cmd("INFO", "keyspace"),
    "oom": op(FAIL, 200) + cmd("SET", "k0", "abc") + cmd("MSET", "k1", "1", "k2", "2") + cmd("LPUSH", "k3", "abc", "f1")
    + cmd("HSET", "k4", "f1", "abc") + cmd("APPEND", "k0", b"xy" * 20) + op(ROUNDTRIP) + cmd("INCR", "k4"),
    "misc": cmd("PING") + cmd("PING", "abc") + cmd("ECHO", "abc") + cmd("SELECT", "0") + cmd("SELECT", "1")
    + cmd("COMMAND", "COUNT") + cmd("COMMAND", "DOCS") + cmd("CONFIG", "GET", "save")
    + cmd("nosuch", "abc", b"a\r\nb\0x") + cmd("KEYS", "k[0-2]") + cmd("FLUSHALL") + cmd("QUIT"),
}
os.makedirs(os.path.join(HERE, "corpus", "kv"), exist_ok=True)
for name, data in progs.items():
    with open(os.path.join(HERE, "corpus", "kv", name), "wb") as f:
        f.write(data)
