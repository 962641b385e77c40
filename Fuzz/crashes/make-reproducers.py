#!/usr/bin/env python3
"""Writes the minimal reproducers of the crashes the fuzzers found
(Fuzz/crashes/README.md), in the fuzz targets' input formats
(Fuzz/README.md). Each file is Fuzz/crashes/<target>--<bug>; replay them
with `scripts/fuzz.sh repro` (known-bug guards off)."""

import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def blob(b):
    return u16(len(b)) + b


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


NEAR_WRAP = 0xFFFF_FFFF_FFFF_FFF8

# RING-1, rings target: the guest sets its rx ring's head and tail to
# 2^64 - 8 (aligned, tail <= head, empty: valid indices); delivering one
# event (a replayed wait outcome here; live, the same reserve runs in
# NetworkService.takeEvents) traps in RingCursor.reserve.
attach = u8(0) + u8(0) + u16(0) + u8(0) + u8(0) + u16(0x400) + u8(1)  # rx 0x10000 (4 KiB), tx 0x12000 (8 KiB)
poke = u8(1) + u8(1) + u8(0) + u16(0) + u8(0) + u8(16) + u64(NEAR_WRAP) + u64(NEAR_WRAP)  # rx head, tail
deliver = u8(5) + u8(0) + u8(0) + u8(0) + u8(1) + u8(7) + u16(1234)  # one "opened" event
write("rings--ring-index-wrap", attach + poke + deliver)

# RING-1 through the hypercall dispatcher: LS_OP_NET_ATTACH, the guest
# stores the rx indices, LS_OP_WAIT replays a wait outcome with one event.
WINDOW_RX, WINDOW_TX = 0x8000, 0xA000
event = u8(1) + u32(1) + u32(13) + b"10.0.0.7:1234"  # LS_MSG_OPEN
wait = u64(123) + u8(0) + u32(1) + event
values = u8(0) + blob(wait)
net_attach = (
    u8(4) + u8(0) + u8(0)
    + u8(0) + u16(WINDOW_RX // 8) + u8(4) + u8(0) + u8(0) + u16(WINDOW_TX // 8) + u8(4) + u8(0)
)
store = u8(0xC0) + u16(WINDOW_RX) + u8(16) + u64(NEAR_WRAP) + u64(NEAR_WRAP)
wait_call = u8(10) + u8(0) + u8(1) + u8(1) + u16(0) + u8(5) + u8(5) + u8(5)
write("hypercall--ring-index-wrap", blob(values) + net_attach + store + wait_call)

# HB-1, heartbeat target: an endpoint not yet pinned accepts authentic
# heartbeats (signed with the cluster key) of any boot id. Sequence 1, then
# 2^64 - 1 adds 2^64 - 3 missed heartbeats; a second boot id doing the same
# overflows the count (a trap) in Heartbeat.accept.
def heartbeat(boot, sequence):
    body = b"LSHB" + u8(1) + u8(1) + u8(2) + b"kv" + u8(4) + b"vmm1"
    body += struct.pack(">QQQQ", 3, boot, sequence, 1000)
    return u8(1 | 5 << 1) + u8(len(body)) + body  # flags: signed by the harness


MAX = 0xFFFF_FFFF_FFFF_FFFF
write(
    "heartbeat--missed-overflow",
    u8(0x80) + heartbeat(5, 1) + heartbeat(5, MAX) + heartbeat(6, 1) + heartbeat(6, MAX),
)

# HB-2, heartbeat target: one boot id of the pinned peer is enough to make
# the missed count exceed Int64.max (sequence 1, then 2^63 + 10); the
# node's metrics then trap converting the count's growth to Int64
# (swift-metrics' Counter.increment(by:)), on the next sample.
write("heartbeat--missed-metrics", u8(5 << 2) + heartbeat(5, 1) + heartbeat(5, (1 << 63) + 10))


# CLONE-1, clone target: the cloneState (channel message 27) a primary sends
# is restored into the backup's net device unchecked.
def snapshot(rx_capacity=65536, rx_messages=17):
    body = u64(1234) + u64(0xDEADBEEF) + u64(1234)
    body += u8(1) + u64(0x20_0000) + u64(rx_capacity) + u64(0x22_0000) + u64(65536)
    body += u64(rx_messages) + u64(19) + u32(0) + u32(0)
    body += u64(0) + u64(77_000) + u8(0)
    for size in (144, 312, 416):
        body += u32(size) + bytes(size)
    return u8(1) + blob(body)


# ... with rxMessages = 2^64 - 1: the next delivery's count overflows.
write("clone--rx-counter-overflow", snapshot(rx_messages=MAX) + deliver)
# ... with an rx ring of capacity 0: reserve computes capacity - 1 (a trap).
write("clone--ring-capacity-zero", snapshot(rx_capacity=0) + deliver)
