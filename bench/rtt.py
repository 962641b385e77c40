#!/usr/bin/env python3
"""Round-trip latency, one request at a time on one connection.

  rtt.py redis PORT COUNT            PING over RESP (kvstore or redis-server)
  rtt.py tls-server PORT CERTDIR     a TLS 1.3 echo server (mutual, cluster CA)
  rtt.py tls-client PORT CERTDIR COUNT

Prints "RTT p50_us=.. p99_us=.. count=..". Bounded by COUNT and a 30 s timeout.
"""
import socket
import ssl
import sys
import time


def report(samples):
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6
    print(f"RTT p50_us={p50:.0f} p99_us={p99:.0f} count={len(samples)}")


def redis(port, count):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise SystemExit("connection closed")
            reply += chunk
        samples.append(time.perf_counter() - start)
    report(samples)


def context(certdir, server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(f"{certdir}/cert.pem", f"{certdir}/key.pem")
    ctx.load_verify_locations(f"{certdir}/ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not server:
        ctx.check_hostname = False
    return ctx


def tls_server(port, certdir):
    ctx = context(certdir, True)
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(30)
    raw, _ = listener.accept()
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ctx.wrap_socket(raw, server_side=True)
    conn.settimeout(30)
    while True:
        data = conn.recv(64)
        if not data:
            return
        conn.sendall(data)


def tls_client(port, certdir, count):
    ctx = context(certdir, False)
    deadline = time.time() + 10
    while True:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ctx.wrap_socket(raw)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        conn.sendall(b"0123456789abcdef")
        got = 0
        while got < 16:
            got += len(conn.recv(64))
        samples.append(time.perf_counter() - start)
    conn.close()
    report(samples)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "redis":
        redis(int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "tls-server":
        tls_server(int(sys.argv[2]), sys.argv[3])
    elif mode == "tls-client":
        tls_client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)
