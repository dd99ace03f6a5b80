"""A lean HTTP/1.1 keep-alive client for plain-http targets: the `Transport` a worker uses on its hot path.

Edge (asyncio Protocols on the worker's loop). Why not aiohttp here: per request aiohttp builds a request and
a response object, header multidicts, a timer context and a connector lookup, and a VEN in per-VEN mode costs a
ClientSession and a TCPConnector. This client writes one bytes object per request and parses the status line
and the few headers harness reads (Content-Length, Transfer-Encoding, Connection, Retry-After). A transport
holds up to `limit` connections: `limit=1` is one VEN's own keep-alive connection. Failures come out as
`Failure` with the classes of harness.core.errors, like AiohttpTransport's. https and absolute URLs on another
host go through an AiohttpTransport made on first use, with the run's TLS context and source address. A request
sent with start_flight() reports its outcome to a Flight (h1conn) instead of a coroutine awaiting it: the same
pool, turn, deadlines and failure classes, without a task, coroutine or future per request.
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
from harness.net.h1conn import Conn, Flight
from harness.net.outbox import outbox
from harness.net.wire import bearer, encode, headers

__all__ = ["Flight", "H1Transport"]

_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
# Request heads up to the headers that vary, shared by every transport of the process (one per VEN in per-VEN mode:
# a cache each would cost every VEN a dict).
_STARTS: dict[tuple[bytes, str, str, str | None], bytes] = {}
# The Authorization line with a slot for the token, from wire's one definition (formatting it costs less than a call).
_AUTH_LINE = f"Authorization: {bearer('%s')}\r\n".encode("latin-1")


class H1Transport:
    """Up to `limit` keep-alive connections to one http base URL (limit=1: a VEN's own connection)."""

    # Per-VEN mode makes one of these per VEN: slots, and no waiter queue until a request has to wait for a
    # connection (a VEN does one request at a time, so its own transport hardly ever needs one).
    __slots__ = ("_loop", "_base", "_host", "_port", "_prefix", "_origin", "_host_header", "_limit", "_timeout_s",
                 "_connect_timeout_s", "_idle", "_open", "_waiters", "_other", "_closed", "_sources", "_next_source", "_ssl",
                 "_deadlines", "_connecting", "_outbox")

    def __init__(self, base_url: str, *, limit: int, timeout_s: float, connect_timeout_s: float | None = None,
                 sources: tuple[str, ...] = (), ssl_context: ssl.SSLContext | None = None) -> None:
        self._loop = asyncio.get_running_loop()  # must be built inside the loop that will use it
        self._base, self._host, self._port, self._prefix, self._origin, self._host_header = _parse_base(base_url)
        self._limit = limit
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s or min(timeout_s, 5.0)
        self._idle: list[Conn] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None] | Flight] | None = None  # in turn for a connection
        self._connecting: set[asyncio.Task[None]] | None = None  # new connections for waiting flights
        self._other: Transport | None = None
        self._closed = False
        # Local addresses new connections leave from, in turn (each has its own ephemeral ports to the target).
        self._sources = sources
        self._next_source = 0
        self._ssl = ssl_context  # for https URLs on other hosts (a 3.1.0 tokenURL): the run's CA bundle or --insecure
        self._deadlines = deadlines(self._loop, timeout_s)  # the request timeouts: no timer per request
        self._outbox = outbox(self._loop)  # flights' requests, written together once per loop iteration

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

    def takes_flight(self, path: str) -> bool:
        """Whether start_flight() can send a request to `path` now: a kept-alive connection is free, or all `limit`
        are open and the request can wait in turn for one. Not when it needs what only send() does: a first
        connection, or another origin."""
        idle = self._idle
        while idle and idle[-1].closed:
            idle.pop()
            self._open -= 1
        return (bool(idle) or self._open >= self._limit) and not self._closed and not path.startswith(("http://", "https://"))

    def start_flight(self, req: Request, token: str | None, flight: Flight) -> None:
        """Send req (takes_flight() said yes) with its outcome to `flight`: on a free connection at once, else when
        one is free, in turn with the requests waiting in send(); the same deadlines and failure classes."""
        body, ctype = encode(req)
        flight._data = self._head(req, self._prefix + req.path, token, body, ctype)
        flight._transport = self
        entry = flight._entry = self._deadlines.track(self._loop.time() + self._timeout_s)
        if self._idle:
            self._go(flight, self._idle.pop())
            return
        if self._waiters is None:
            self._waiters = deque()
        self._waiters.append(flight)
        entry[1], entry[2] = flight, _expire_wait  # what the deadline sweep expires if the deadline passes

    def _go(self, flight: Flight, conn: Conn) -> None:
        flight._conn = conn
        conn.begin(flight)
        entry = flight._entry
        entry[1], entry[2] = flight, _expire
        self._outbox.add(flight, conn)

    async def _connect_for(self, flight: Flight) -> None:
        """A connection closed while a flight waited for one: open its replacement for the flight."""
        try:
            conn, _ = await self._acquire(flight._entry, fresh=True)
        except Failure as f:
            flight.set_exception(f)
            return
        if flight.done():
            self._release(conn)
        else:
            self._go(flight, conn)

    def _pop_idle(self) -> Conn | None:
        """A free kept-alive connection, dropping those the server closed meanwhile; None if there is none."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        return None

    async def _acquire(self, entry: list[Any], fresh: bool = False) -> tuple[Conn, bool]:
        if not fresh and (conn := self._pop_idle()) is not None:
            return conn, True
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
            if not fresh and (conn := self._pop_idle()) is not None:
                return conn, True
        self._open += 1
        local = None
        if self._sources:
            local = (self._sources[self._next_source % len(self._sources)], 0)
            self._next_source += 1
        try:
            _, made = await asyncio.wait_for(
                self._loop.create_connection(Conn, self._host, self._port, local_addr=local),
                min(self._connect_timeout_s, max(0.0, entry[0] - self._loop.time())),
            )
        except BaseException as exc:
            self._open -= 1
            self._wake()
            raise classify_connect(exc) from None
        CONNECTS.opened += 1
        return made, False

    def _release(self, conn: Conn) -> None:
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
            if w.done():
                continue
            if not isinstance(w, Flight):
                w.set_result(None)
                return
            conn = self._pop_idle()
            if conn is not None:
                self._go(w, conn)
                return
            if self._closed:
                w.set_exception(Failure(errors.RESET, "transport closed"))
                continue
            task = self._loop.create_task(self._connect_for(w))  # a connection closed: its replacement, for w
            if self._connecting is None:
                self._connecting = set()
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
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
            if w.done():
                continue
            if isinstance(w, Flight):
                w.set_exception(Failure(errors.RESET, "transport closed"))
            else:
                w.set_result(None)
        for task in self._connecting or ():
            task.cancel()
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
