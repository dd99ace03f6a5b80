"""One keep-alive HTTP/1.1 connection of the lean client (h1client), and the Flight: a request whose outcome
is a call, not an awaited future.

Edge (an asyncio Protocol on the worker's loop). A connection parses the status line and the few headers harness
reads (Content-Length, Transfer-Encoding, Connection, Retry-After) and completes what waits on it: a future
(H1Transport.send) or a Flight (H1Transport.start_flight), through the same three calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness.core import errors
from harness.core.errors import Failure
from harness.net.base import Reply
from harness.net.deadlines import DONE
from harness.net.wire import retry_after

__all__ = ["Conn", "Flight"]

_NO_BODY = frozenset((204, 304))


class Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    __slots__ = ("transport", "buf", "waiter", "head", "length", "chunked", "keep_alive", "closed", "got_bytes")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Reply] | Flight | None = None
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
        self.begin(fut := loop.create_future())
        self.transport.write(data)
        return fut

    def begin(self, waiter: asyncio.Future[Reply] | Flight) -> None:
        """A new exchange whose response completes `waiter` (written by request(), or by the outbox for a Flight)."""
        self.buf.clear()
        self.head, self.got_bytes, self.waiter = None, False, waiter

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


class Flight:
    """A request whose outcome is a call, not an awaited future: the report lane's (run/reportlane.py), with no
    task, coroutine or future per request. A connection and the deadline sweep treat it as the future they would
    otherwise complete (done, set_result, set_exception); by then the connection is back in the pool. Subclasses
    say what a reply or a failure means (replied, failed); cancel() ends it silently (work abandoned at the drain
    deadline), and drop() then closes its connection."""

    __slots__ = ("_transport", "_conn", "_entry", "_data", "_over")

    def __init__(self) -> None:
        self._transport: Any = None  # the H1Transport sending it (start_flight)
        self._conn: Conn | None = None  # the connection it is on, None while it waits for one
        self._entry: list[Any] = []  # its deadline entry
        self._data = b""  # the request, head and body
        self._over = False

    def done(self) -> bool:
        return self._over

    def set_result(self, reply: Reply) -> None:
        if not self._over:
            self._end(True)
            self.replied(reply)

    def set_exception(self, exc: BaseException) -> None:
        if not self._over:
            self._end(False)
            self.failed(exc)

    def cancel(self) -> None:
        if not self._over:
            self._over = True
            self._entry[1] = DONE

    def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.waiter is self:
            conn.keep_alive = False
            self._transport._release(conn)

    def _end(self, kept: bool) -> None:
        self._over = True
        self._entry[1] = DONE
        conn, self._conn = self._conn, None
        if conn is not None:
            if not kept:
                conn.keep_alive = False
            self._transport._release(conn)

    def replied(self, reply: Reply) -> None:
        raise NotImplementedError

    def failed(self, exc: BaseException) -> None:
        raise NotImplementedError
