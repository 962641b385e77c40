#!/usr/bin/env python3
"""Writes seed inputs for the snap fuzz target (fuzz/corpus/snap/): a byte
choosing the allocation-failure rate (< 0xc0: none), then the data region of
a snapshot in the format of guests/kvstore/snapshot.h. snap_fuzz takes the
key count from the last data byte (count = byte % 8 + 1)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def rec_string(key, value, expire=-1):
    return struct.pack("<BqI", 1, expire, len(key)) + key + struct.pack("<I", len(value)) + value


def rec_list(key, items, expire=-1):
    out = struct.pack("<BqI", 2, expire, len(key)) + key + struct.pack("<Q", len(items))
    for it in items:
        out += struct.pack("<I", len(it)) + it
    return out


def rec_hash(key, pairs, expire=-1):
    out = struct.pack("<BqI", 3, expire, len(key)) + key + struct.pack("<Q", len(pairs))
    for f, v in pairs:
        out += struct.pack("<I", len(f)) + f + struct.pack("<I", len(v)) + v
    return out


seeds = {
    # 3 records: the last byte 'b' (98 % 8 + 1 = 3)
    "three": rec_list(b"l", [b"x", b"yy"]) + rec_hash(b"h", [(b"f", b"v"), (b"g", b"")]) + rec_string(b"s", b"ab"),
    # 1 record with an expiry in the future, 1 in the past: last byte 'a' (97 % 8 + 1 = 2)
    "expiry": rec_string(b"old", b"v", 1000) + rec_string(b"new", b"a", 1800000000000),
    # 1 record: last byte 'h' (104 % 8 + 1 = 1)
    "binary": rec_string(bytes(range(32)), b"\0\r\n" * 20 + b"h"),
}
os.makedirs(os.path.join(HERE, "corpus", "snap"), exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(HERE, "corpus", "snap", name), "wb") as f:
        f.write(b"\x00" + data)
    with open(os.path.join(HERE, "corpus", "snap", name + "-oom"), "wb") as f:
        f.write(b"\xd0" + data)
