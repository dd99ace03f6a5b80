"""A lean HTTP/1.1 keep-alive client for plain-http targets: the `Transport` a worker uses on its hot path.

Edge (asyncio Protocols on the worker's loop). Why not aiohttp here: per request aiohttp builds a request and
a response object, header multidicts, a timer context and a connector lookup, and a VEN in per-VEN mode costs a
ClientSession and a TCPConnector. This client writes one bytes object per request and parses the status line
and the few headers harness reads (Content-Length, Transfer-Encoding, Connection, Retry-After). A transport
holds up to `limit` connections: `limit=1` is one VEN's own keep-alive connection. Failures come out as
`Failure` with the classes of harness.core.errors, like AiohttpTransport's. https and absolute URLs on another
host go through an AiohttpTransport made on first use, with the run's TLS context and source address.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from harness.core import errors
from harness.core.errors import Failure
from harness.dialects import Request
from harness.net.aiotransport import AiohttpTransport
from harness.net.base import CONNECTS, Reply, Transport
from harness.net.deadlines import DONE, deadlines
from harness.net.failures import classify_connect
from harness.net.wire import bearer, encode, headers, retry_after

__all__ = ["H1Transport"]

_NO_BODY = frozenset((204, 304))
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
# Request heads up to the headers that vary, shared by every transport of the process (one per VEN in per-VEN mode:
# a cache each would cost every VEN a dict).
_STARTS: dict[tuple[bytes, str, str, str | None], bytes] = {}
# The Authorization line with a slot for the token, from wire's one definition (formatting it costs less than a call).
_AUTH_LINE = f"Authorization: {bearer('%s')}\r\n".encode("latin-1")


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    __slots__ = ("transport", "buf", "waiter", "head", "length", "chunked", "keep_alive", "closed", "got_bytes")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Reply] | None = None
        self.head: tuple[int, float | None] | None = None  # status, retry-after of the response being read
        self.length = -1  # body length; -1: until EOF
        self.chunked = False
        self.keep_alive = True
        self.closed = False
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self.head is not None and self.length < 0 and not self.chunked:
                self._finish(bytes(self.buf))  # a body delimited by the close
            else:
                what = f"{type(exc).__name__}: {exc}" if exc else "server closed the connection"
                w.set_exception(Failure(errors.RESET, what[:200] + (" mid-response" if self.got_bytes else " before a response")))

    def request(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.buf.clear()
        self.head, self.got_bytes = None, False
        self.waiter = fut = loop.create_future()
        self.transport.write(data)
        return fut

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.waiter is None or self.waiter.done():
            return  # nothing asked: a stray byte after a response; the connection is not reused
        buf = self.buf
        buf += data
        try:
            if self.head is None and not self._parse_head():
                return
            self._body()
        except Failure as f:
            self.keep_alive = False
            self.waiter.set_exception(f)

    def _parse_head(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > 65536:
                raise Failure(errors.PROTOCOL, "response head over 64 KiB")
            return False
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Failure(errors.PROTOCOL, f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        length, chunked, retry = -1, False, None
        keep = parts[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            n = name.strip().lower()
            if n == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise Failure(errors.PROTOCOL, f"bad Content-Length {value[:40]!r}") from None
            elif n == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif n == b"connection":
                v = value.strip().lower()
                keep = v != b"close" and (keep or v == b"keep-alive")
            elif n == b"retry-after":
                retry = retry_after(value.decode("latin-1").strip())
        if status in _NO_BODY or 100 <= status < 200:
            length, chunked = 0, False
        if chunked:
            length = -1
        elif length < 0:
            keep = False  # the body ends when the server closes
        self.head, self.length, self.chunked, self.keep_alive = (status, retry), length, chunked, keep
        return True

    def _body(self) -> None:
        buf = self.buf
        if self.chunked:
            body = _dechunk(buf)
            if body is not None:
                self._finish(body)
        elif self.length >= 0 and len(buf) >= self.length:
            if len(buf) > self.length:
                self.keep_alive = False  # bytes after the response: not ours to interpret
            self._finish(bytes(buf[: self.length]))

    def _finish(self, body: bytes) -> None:
        assert self.head is not None and self.waiter is not None
        status, retry = self.head
        self.waiter.set_result(Reply(status, body, retry))


def _dechunk(buf: bytearray) -> bytes | None:
    """The body of a complete chunked message in buf, or None while incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_s = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            raise Failure(errors.PROTOCOL, f"bad chunk size {size_s[:20]!r}") from None
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # trailers end with an empty line
            if end < 0 and buf[eol : eol + 4] != b"\r\n\r\n":
                return None
            return bytes(out)
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        out += buf[start : start + size]
        pos = start + size + 2


class H1Transport:
    """Up to `limit` keep-alive connections to one http base URL (limit=1: a VEN's own connection)."""

    # Per-VEN mode makes one of these per VEN: slots, and no waiter queue until a request has to wait for a
    # connection (a VEN does one request at a time, so its own transport hardly ever needs one).
    __slots__ = ("_loop", "_base", "_host", "_port", "_prefix", "_origin", "_host_header", "_limit", "_timeout_s",
                 "_connect_timeout_s", "_idle", "_open", "_waiters", "_other", "_closed", "_sources", "_next_source", "_ssl",
                 "_deadlines")

    def __init__(self, base_url: str, *, limit: int, timeout_s: float, connect_timeout_s: float | None = None,
                 sources: tuple[str, ...] = (), ssl_context: ssl.SSLContext | None = None) -> None:
        self._loop = asyncio.get_running_loop()  # must be built inside the loop that will use it
        self._base, self._host, self._port, self._prefix, self._origin, self._host_header = _parse_base(base_url)
        self._limit = limit
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s or min(timeout_s, 5.0)
        self._idle: list[_Conn] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] | None = None
        self._other: Transport | None = None
        self._closed = False
        # Local addresses new connections leave from, in turn (each has its own ephemeral ports to the target).
        self._sources = sources
        self._next_source = 0
        self._ssl = ssl_context  # for https URLs on other hosts (a 3.1.0 tokenURL): the run's CA bundle or --insecure
        self._deadlines = deadlines(self._loop, timeout_s)  # the request timeouts: no timer per request

    def _head(self, req: Request, path: str, token: str | None, body: bytes | None, ctype: str | None) -> bytes:
        key = (self._host_header, req.method, path, ctype)
        start = _STARTS.get(key)
        if start is None:  # request line, Host and the headers but the token: the same for every report of a run
            if len(_STARTS) >= 1024:  # paths with ids (lookups, deletes) come and go
                _STARTS.clear()
            fields = "".join(f"{k}: {v}\r\n" for k, v in headers(None, ctype).items())
            start = _STARTS[key] = b"%s%s%s" % (f"{req.method} {path} HTTP/1.1\r\n".encode("latin-1"), self._host_header,
                                                fields.encode("latin-1"))
        auth = _AUTH_LINE % token.encode("latin-1") if token else b""
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (start, auth, len(body) if body else 0, body or b"")

    async def send(self, req: Request, token: str | None = None) -> Reply:
        path = req.path
        if path.startswith(("http://", "https://")):
            if not path.startswith(self._origin + "/"):
                return await self._other_transport().send(req, token)
            path = path[len(self._origin) :]
        else:
            path = self._prefix + path
        body, ctype = encode(req)
        data = self._head(req, path, token, body, ctype)
        entry = self._deadlines.track(self._loop.time() + self._timeout_s)
        try:
            retried, idle = False, self._idle
            while True:
                while idle and not retried:  # the common case, inline: a kept-alive connection is free
                    conn = idle.pop()
                    if not conn.closed:
                        reused = True
                        break
                    self._open -= 1
                else:
                    conn, reused = await self._acquire(entry, fresh=retried)
                fut = conn.request(data, self._loop)
                entry[1], entry[2] = fut, _expire  # what the deadline sweep expires if the deadline passes
                try:
                    reply = await fut
                except BaseException as exc:
                    conn.keep_alive = False
                    if retried and isinstance(exc, Failure):
                        exc.retried = True
                    if retried or not (isinstance(exc, Failure) and reused and exc.error_class == errors.RESET
                                       and not conn.got_bytes and req.method in _IDEMPOTENT):
                        raise
                else:
                    return reply._replace(retried=True) if retried else reply
                finally:
                    entry[1] = None
                    self._release(conn)
                # A kept-alive connection the server had closed: once more on a fresh one, as browsers do — for
                # idempotent requests only: a POST the VTN may have stored before resetting is a failure, never
                # sent twice (a report the VTN accepted must be counted once). Marked, so the retry is counted
                # (stale_connection_retries).
                retried = True
        finally:
            entry[1] = DONE

    async def _acquire(self, entry: list[Any], fresh: bool = False) -> tuple[_Conn, bool]:
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed:
                return conn, True
            self._open -= 1
        while self._open >= self._limit:
            if self._closed:
                raise Failure(errors.RESET, "transport closed")
            w: asyncio.Future[None] = self._loop.create_future()
            if self._waiters is None:
                self._waiters = deque()
            self._waiters.append(w)
            entry[1], entry[2] = w, _expire_wait  # what the deadline sweep expires if the deadline passes
            try:
                await w
            finally:
                entry[1] = None
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
                self._open -= 1
        self._open += 1
        local = None
        if self._sources:
            local = (self._sources[self._next_source % len(self._sources)], 0)
            self._next_source += 1
        try:
            _, conn = await asyncio.wait_for(
                self._loop.create_connection(_Conn, self._host, self._port, local_addr=local),
                min(self._connect_timeout_s, max(0.0, entry[0] - self._loop.time())),
            )
        except BaseException as exc:
            self._open -= 1
            self._wake()
            raise classify_connect(exc) from None
        CONNECTS.opened += 1
        return conn, False

    def _release(self, conn: _Conn) -> None:
        if conn.keep_alive and not conn.closed and not self._closed:
            conn.waiter = None
            self._idle.append(conn)
        else:
            self._open -= 1
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _other_transport(self) -> Transport:
        if self._other is None:
            self._other = AiohttpTransport(self._base, limit=self._limit, timeout_s=self._timeout_s, ssl_context=self._ssl,
                                           source=self._sources[0] if self._sources else None)
        return self._other

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        for w in self._waiters or ():
            if not w.done():
                w.set_result(None)
        if self._other is not None:
            await self._other.close()


@functools.lru_cache(maxsize=64)
def _parse_base(base_url: str) -> tuple[str, str, int, str, str, bytes]:
    """base URL, host, port, path prefix, origin and Host header line: parsed once, the same strings shared by
    every transport to that base URL."""
    u = urlsplit(base_url.rstrip("/"))
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"H1Transport serves http:// base URLs only, got {base_url!r}")
    return (base_url.rstrip("/"), u.hostname, u.port or 80, u.path, f"http://{u.netloc}",
            f"Host: {u.netloc}\r\n".encode("latin-1"))


def _expire(fut: asyncio.Future[Reply]) -> None:
    if not fut.done():
        fut.set_exception(Failure(errors.READ_TIMEOUT, "no complete response within the timeout"))


def _expire_wait(w: asyncio.Future[None]) -> None:
    if not w.done():
        w.set_exception(Failure(errors.CONNECT_TIMEOUT, "no free connection in the pool within the timeout"))
