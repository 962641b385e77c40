#!/usr/bin/env python3
"""Runs redis-cli interactively (in a pseudo-terminal, as a user would) against
PORT: at start it sends COMMAND DOCS for its hints; then a few commands are
typed. Exit status 0 if it went as expected (else the session is printed)."""
import os
import pty
import select
import sys
import time

port = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("redis-cli", ["redis-cli", "-p", port])

out = b""


def pump(seconds):
    global out
    deadline = time.time() + seconds
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if not r:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        out += data
        if b"\x1b[6n" in data:  # linenoise asks where the cursor is
            os.write(fd, b"\x1b[1;1R")
    return True


pump(1.0)
for line in (b"PING", b"SET ia ib", b"GET ia", b"HSET ih f v", b"exit"):
    os.write(fd, line + b"\r")
    pump(0.5)
try:
    os.kill(pid, 9)
except ProcessLookupError:
    pass
os.waitpid(pid, 0)
text = out.replace(b"\r", b"").decode("latin-1")
ok = "PONG" in text and '"ib"' in text and "(integer) 1" in text and "ERR" not in text
if not ok:
    print(text[-2000:])
sys.exit(0 if ok else 1)
