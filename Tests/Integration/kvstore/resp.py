"""A tiny raw RESP2 client for the kvstore tests: sends exact bytes and
returns every reply as the exact bytes the server sent."""
import socket
import time


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def _line_end(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            self._fill()

    def _reply_end(self, pos):
        """Offset just past the reply starting at pos (reads more as needed)."""
        while len(self.buf) <= pos:
            self._fill()
        kind = self.buf[pos:pos + 1]
        eol = self._line_end(pos)
        if kind in (b"+", b"-", b":"):
            return eol + 2
        n = int(self.buf[pos + 1:eol])
        if kind == b"$":
            if n < 0:
                return eol + 2
            end = eol + 2 + n + 2
            while len(self.buf) < end:
                self._fill()
            return end
        if kind == b"*":
            p = eol + 2
            for _ in range(max(n, 0)):
                p = self._reply_end(p)
            return p
        raise ValueError("bad reply type %r in %r" % (kind, self.buf[pos:pos + 80]))

    def reply(self):
        end = self._reply_end(0)
        r, self.buf = self.buf[:end], self.buf[end:]
        return r

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def call(self, *args):
        self.send(encode(*args))
        return self.reply()

    def closed(self, timeout=2.0):
        """True if the server closes the connection (after any pending bytes)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
