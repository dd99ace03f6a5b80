"""Flights: requests of the lean client whose outcome is a call (the report lane's), not an awaited future.

Against a real loopback server: a flight on a free connection, flights in turn with send()'s waiters for a full
pool, the deadlines (read and pool wait), a connection the server closes, the replacement for a connection lost
while a flight waited, the outbox's one write per iteration, and a flight ended before its write goes out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop

from harness.core import errors
from harness.core.errors import Failure
from harness.dialects import Request
from harness.net.base import Reply
from harness.net.h1client import Flight, H1Transport
from tests.net.test_h1client import Handler, read_request

OK = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"


def run(handler: Handler, body: Any) -> None:
    """Serve `handler` on a loopback port while `body(url)` runs; then wait (bounded) until every connection the
    server accepted is closed, so the loop closes with no handle open."""
    open_conns = 0
    all_closed = asyncio.Event()

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal open_conns
        open_conns += 1
        all_closed.clear()
        try:
            await handler(r, w)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()
            open_conns -= 1
            if not open_conns:
                all_closed.set()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await body(f"http://127.0.0.1:{port}/base")
            async with asyncio.timeout(5):
                while open_conns:
                    await all_closed.wait()
        finally:
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())


class Recorded(Flight):
    """A flight that keeps its outcome and sets an event when it has one."""

    __slots__ = ("name", "outcome", "event", "order")

    def __init__(self, name: str, order: list[str]) -> None:
        super().__init__()
        self.name, self.order = name, order
        self.outcome: Any = None
        self.event = asyncio.Event()

    def replied(self, reply: Reply) -> None:
        self.outcome = reply
        self.order.append(self.name)
        self.event.set()

    def failed(self, exc: BaseException) -> None:
        self.outcome = exc
        self.order.append(self.name)
        self.event.set()


async def wait_all(*flights: Recorded, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        for f in flights:
            await f.event.wait()


def test_flights_share_the_pool_in_turn_with_send_and_keep_the_connection_alive() -> None:
    """limit=1: a flight, a send() and a second flight queue for the one connection and are served in the order
    they asked, on one kept-alive connection; each flight's outcome comes to its callback."""
    connections, seen = 0, []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                seen.append(await read_request(r))
            except asyncio.IncompleteReadError:
                return
            w.write(OK)
            await w.drain()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=5)
        order: list[str] = []
        assert not t.takes_flight("/reports")  # no connection yet: a first connection is send()'s to open
        await t.send(Request("GET", "/x"))
        assert t.takes_flight("/reports") and not t.takes_flight("http://other:1/reports")
        a, b = Recorded("a", order), Recorded("b", order)
        t.start_flight(Request("POST", "/reports", json={"n": 1}), "tok", a)
        sent = asyncio.ensure_future(t.send(Request("POST", "/reports", json={"n": 2}), "tok"))
        await asyncio.sleep(0)  # the send() is now waiting for the connection, behind a
        assert t.takes_flight("/reports")  # the pool is full: a flight can wait in turn
        t.start_flight(Request("POST", "/reports", json={"n": 3}), "tok", b)
        sent.add_done_callback(lambda _: order.append("send"))
        await wait_all(a, b)
        await sent
        await t.close()
        assert order == ["a", "send", "b"]
        assert isinstance(a.outcome, Reply) and (a.outcome.status, a.outcome.body) == (201, b"{}")
        assert isinstance(b.outcome, Reply) and b.outcome.status == 201

    run(handler, body)
    assert connections == 1
    assert [s.rsplit(b"\r\n\r\n", 1)[1] for s in seen] == [b"", b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert b"Authorization: Bearer tok\r\n" in seen[1] and seen[1].startswith(b"POST /base/reports HTTP/1.1\r\n")


def test_a_flight_times_out_as_read_timeout_and_one_waiting_for_the_pool_as_connect_timeout() -> None:
    """A server that never answers: the flight on the connection fails as read_timeout, the one queued behind it
    as connect_timeout, each at its deadline (not before), and the connection is not reused."""
    connections = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await read_request(r)
            w.write(OK)  # the first, opening request is answered; then silence
            await w.drain()
        await r.read()  # then silence, until the client closes

    async def body(url: str) -> None:
        loop = asyncio.get_running_loop()
        t = H1Transport(url, limit=1, timeout_s=0.3)
        await t.send(Request("GET", "/x"))
        order: list[str] = []
        a, b = Recorded("a", order), Recorded("b", order)
        t0 = loop.time()
        t.start_flight(Request("POST", "/reports", json={}), None, a)
        t.start_flight(Request("POST", "/reports", json={}), None, b)
        await wait_all(a, b)
        took = loop.time() - t0
        assert isinstance(a.outcome, Failure) and a.outcome.error_class == errors.READ_TIMEOUT
        assert isinstance(b.outcome, Failure) and b.outcome.error_class in (errors.CONNECT_TIMEOUT, errors.READ_TIMEOUT)
        assert 0.29 <= took < 3.0
        assert t._open <= 1 and not t._idle  # the timed-out connection was closed, not kept
        await t.close()

    run(handler, body)


def test_a_connection_the_server_closes_fails_its_flight_and_a_waiting_flight_gets_a_new_one() -> None:
    """The server closes the connection a flight is on: that flight fails as reset; the flight waiting for the
    pool gets a replacement connection at once (not its deadline), on which it fails too, as reset."""
    connections = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(r)
        if connections == 2:
            w.close()  # the second connection: closed with a request on it
            return
        w.write(OK)
        await w.drain()
        while True:
            try:
                await read_request(r)
            except asyncio.IncompleteReadError:
                return
            if connections == 1:
                w.close()  # the first connection: closed after one request (the opening send) was answered
                return
            w.write(OK)
            await w.drain()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=5)
        await t.send(Request("GET", "/x"))
        order: list[str] = []
        a, b = Recorded("a", order), Recorded("b", order)
        t.start_flight(Request("POST", "/reports", json={}), None, a)
        t.start_flight(Request("POST", "/reports", json={}), None, b)
        await wait_all(a, b)
        await t.close()
        assert isinstance(a.outcome, Failure) and a.outcome.error_class == errors.RESET
        # b: on the replacement connection, opened for it (and closed by the server with b on it)
        assert order == ["a", "b"]
        assert isinstance(b.outcome, Failure) and b.outcome.error_class == errors.RESET

    run(handler, body)
    assert connections == 2


def test_the_outbox_writes_a_burst_of_flights_together_and_skips_one_that_ended_first() -> None:
    """Eight flights started in one callback go out in one flush after it; a flight cancelled before the flush
    is never written (its connection is dropped, not left with a stray request)."""
    requests = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            try:
                await read_request(r)
            except asyncio.IncompleteReadError:
                return
            requests += 1
            w.write(OK)
            await w.drain()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=8, timeout_s=5)
        await asyncio.gather(*(t.send(Request("GET", "/x")) for _ in range(8)))  # 8 kept-alive connections
        opened = requests
        order: list[str] = []
        flights = [Recorded(str(i), order) for i in range(8)]
        for f in flights:
            t.start_flight(Request("POST", "/reports", json={}), None, f)
        assert len(t._outbox._queued) == 8 and requests == opened  # nothing written yet
        flights[3].cancel()
        flights[3].drop()
        await wait_all(*(f for i, f in enumerate(flights) if i != 3))
        await t.close()
        assert requests == opened + 7 and flights[3].outcome is None and sorted(order) == ["0", "1", "2", "4", "5", "6", "7"]

    run(handler, body)


def test_the_outbox_never_holds_more_than_32_requests_or_one_for_more_than_half_a_millisecond() -> None:
    """A long iteration does not hold its first write back: the 32nd request flushes all 32 at once, and a
    request joining one that has waited over 0.5 ms flushes both; the rest go after the iteration."""
    import time
    from types import SimpleNamespace

    from harness.net.outbox import FLUSH_AFTER_S, FLUSH_AT, Outbox

    written: list[bytes] = []

    def flight(i: int) -> Any:
        conn = SimpleNamespace(closed=False, transport=SimpleNamespace(write=written.append))
        return SimpleNamespace(_over=False, _conn=conn, _data=b"%d" % i), conn

    async def main() -> None:
        box = Outbox(asyncio.get_running_loop())
        for i in range(FLUSH_AT - 1):
            box.add(*flight(i))
        assert written == []
        box.add(*flight(FLUSH_AT - 1))
        assert written == [b"%d" % i for i in range(FLUSH_AT)]  # at once, within this callback
        box.add(*flight(100))
        t0 = time.monotonic()
        while time.monotonic() - t0 <= FLUSH_AFTER_S:  # a callback busy for longer than the bound
            pass
        box.add(*flight(101))
        assert written[-2:] == [b"100", b"101"]
        box.add(*flight(102))
        assert written[-1] == b"101"
        await asyncio.sleep(0)  # the iteration ends: what is left goes out
        assert written[-1] == b"102" and len(written) == FLUSH_AT + 3

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())
