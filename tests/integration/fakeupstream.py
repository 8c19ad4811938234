"""A scriptable fake upstream registry on raw sockets, for the fault suite.

Unlike harness.FakeUpstream (http.server, always well-formed), this one writes exactly the bytes
a test scripts: a reset at byte N, a stall mid-body, a Content-Length that lies either way, wrong
bytes for a digest, malformed status lines and headers, a body of 100 MiB, a redirect loop, or a
connection accepted and never answered. Standard library only; one thread per connection.

    def script(req):                       # req.method, req.path, req.headers (lower-case keys)
        if "/blobs/" in req.path:
            return Reply(200, body=data, reset_at=1000)
        return Reply(404, body=b'{"errors":[]}')

    with FakeRegistry(script) as fake:     # fake.url; fake.requests; fake.script = other_script
        ...

Every blocking step is bounded: stalls and silences last until the peer hangs up or the fake is
closed, and close() unblocks every connection thread."""

import hashlib
import socket
import struct
import threading
import time

REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
           308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class Request:
    def __init__(self, method, path, headers):
        self.method, self.path, self.headers = method, path, headers

    def __repr__(self):
        return f"{self.method} {self.path}"


class Reply:
    """An HTTP/1.1 answer, possibly broken on purpose.

    body: bytes, or an iterable of bytes (then give length).
    length: the Content-Length sent (default: the body's real size); None with a chunked/iterable
      body and close_delimited=True sends no Content-Length and ends the body by closing.
    reset_at / stall_at: after that many body bytes, reset the connection (RST) / stop sending.
    extra: bytes sent after the body (more than Content-Length says), extra_delay seconds after it.
    close: close the connection after the answer (otherwise it is kept alive)."""

    def __init__(self, status=200, headers=None, body=b"", length=..., reset_at=None, stall_at=None, extra=b"",
                 close=False, close_delimited=False, extra_delay=0):
        self.status, self.headers, self.body = status, dict(headers or {}), body
        self.length = len(body) if length is ... and isinstance(body, (bytes, bytearray)) else length
        self.reset_at, self.stall_at, self.extra = reset_at, stall_at, extra
        self.close = close or close_delimited or reset_at is not None or stall_at is not None
        self.close_delimited = close_delimited
        self.extra_delay = extra_delay


class Raw:
    """Exactly these bytes, then `then`: "close", "reset" or "stall"."""

    def __init__(self, data, then="close"):
        self.data, self.then = data, then


class Silence:
    """Read the request and never answer."""


def repeated(chunk, total):
    """An iterable body of `total` bytes made of `chunk` repeated; never all in memory."""
    sent = 0
    while sent < total:
        piece = chunk[:total - sent]
        sent += len(piece)
        yield piece


def digest_of_repeated(chunk, total):
    h = hashlib.sha256()
    for piece in repeated(chunk, total):
        h.update(piece)
    return "sha256:" + h.hexdigest()


class _Stop(Exception):
    pass


class FakeRegistry:
    def __init__(self, script):
        self.script = script
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conns = set()
        self.accepted = 0
        self.extras_sent = 0  # answers whose `extra` bytes have gone out
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    # ---- queries for tests ----

    def count(self, method=None, contains=""):
        with self.lock:
            return sum(1 for r in self.requests if (method is None or r.method == method) and contains in r.path)

    # ---- lifecycle ----

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(5)

    def _accept_loop(self):
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns.add(conn)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # ---- one connection ----

    def _serve(self, conn):
        conn.settimeout(30)  # bounds every send and receive; a stalled peer cannot pin a thread
        buffered = b""
        try:
            while not self.stopping.is_set():
                head, buffered = self._read_head(conn, buffered)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path = (lines[0].split(" ") + ["", ""])[:2]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                req = Request(method, path, headers)
                with self.lock:
                    self.requests.append(req)
                action = self.script(req)
                if not self._perform(conn, req, action):
                    return
        except (_Stop, OSError):
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _read_head(self, conn, buffered):
        while b"\r\n\r\n" not in buffered:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                return None, b""
            if not chunk:
                return None, b""
            buffered += chunk
            if len(buffered) > 1 << 20:
                return None, b""
        head, rest = buffered.split(b"\r\n\r\n", 1)
        return head, rest

    def _hold(self, conn):
        """Keeps the connection open, silent, until the peer hangs up or the fake closes."""
        conn.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                if conn.recv(65536) == b"":
                    return
            except socket.timeout:
                continue
        raise _Stop()

    @staticmethod
    def _reset(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _perform(self, conn, req, action):
        """Sends the scripted answer; False when the connection is done."""
        if isinstance(action, Silence):
            self._hold(conn)
            return False
        if isinstance(action, Raw):
            conn.sendall(action.data)
            if action.then == "reset":
                self._reset(conn)
            elif action.then == "stall":
                self._hold(conn)
            return False
        head = [f"HTTP/1.1 {action.status} {REASONS.get(action.status, 'Whatever')}"]
        headers = dict(action.headers)
        if action.length is not None and not action.close_delimited:
            headers.setdefault("Content-Length", str(action.length))
        if action.close:
            headers.setdefault("Connection", "close")
        head += [f"{k}: {v}" for k, v in headers.items()]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if req.method != "HEAD":
            body = [action.body] if isinstance(action.body, (bytes, bytearray)) else action.body
            sent = 0
            limit = action.reset_at if action.reset_at is not None else action.stall_at
            for piece in body:
                if self.stopping.is_set():
                    raise _Stop()
                if limit is not None and sent + len(piece) >= limit:
                    conn.sendall(piece[:limit - sent])
                    sent = limit
                    break
                conn.sendall(piece)
                sent += len(piece)
            if action.reset_at is not None and sent >= action.reset_at:
                time.sleep(0.05)  # let the bytes leave before the RST
                self._reset(conn)
                return False
            if action.stall_at is not None and sent >= action.stall_at:
                self._hold(conn)
                return False
            if action.extra:
                time.sleep(action.extra_delay)
                conn.sendall(action.extra)
                with self.lock:
                    self.extras_sent += 1
        return not action.close
