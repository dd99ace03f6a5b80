"""The lean HTTP/1.1 client: body framings, keep-alive reuse, a closed idle connection, timeouts, refusals."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop
from aiohttp import web

from harness.core import errors
from harness.core.errors import Failure
from harness.core.target import TargetSettings
from harness.dialects import Request
from harness.net import transports
from harness.net.h1client import H1Transport
from tests.doubles import status_or_class

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(r: asyncio.StreamReader) -> bytes:
    head = await r.readuntil(b"\r\n\r\n")
    length = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")), 0)
    return head + await r.readexactly(length)


def run(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await body(f"http://127.0.0.1:{port}/base")
        finally:
            server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())


def test_framings_and_keep_alive_reuse() -> None:
    """Content-Length, chunked and 204 replies on one kept-alive connection; path prefixed, headers sent."""
    replies = [b"HTTP/1.1 201 Created\r\nContent-Length: 8\r\nRetry-After: 3\r\n\r\n{\"id\":1}",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
               b"HTTP/1.1 204 No Content\r\n\r\n"]
    seen: list[bytes] = []
    connections = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for reply in replies:
            seen.append(await read_request(r))
            w.write(reply)
        await w.drain()
        w.close()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=5)
        a = await t.send(Request("POST", "/reports", json={"x": 1}), "tok")
        b = await t.send(Request("GET", "/events?limit=50"))
        c = await t.send(Request("DELETE", "/x"))
        await t.close()
        assert (a.status, a.body, a.retry_after_s) == (201, b'{"id":1}', 3.0)
        assert (b.status, b.body) == (200, b"[1,2]")
        assert (c.status, c.body) == (204, b"")

    run(handler, body)
    assert connections == 1
    assert seen[0].startswith(b"POST /base/reports HTTP/1.1\r\n") and b"Authorization: Bearer tok\r\n" in seen[0]
    assert seen[0].endswith(b'{"x":1}') and seen[1].startswith(b"GET /base/events?limit=50 HTTP/1.1")


def test_a_body_ended_by_close_and_a_closed_idle_connection() -> None:
    """A reply without length ends at the close; the next request opens a fresh connection and succeeds."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\n\r\n[]")
        await w.drain()
        w.close()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=5)
        assert (await t.send(Request("GET", "/a"))).body == b"[]"
        assert (await t.send(Request("GET", "/b"))).body == b"[]"
        await t.close()

    run(handler, body)


def test_stale_keep_alive_connection_is_retried_once() -> None:
    """The server closes a kept-alive connection after one reply: the second request is retried on a new one."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await w.drain()
        w.close()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=5)
        assert (await t.send(Request("GET", "/a"))).status == 200
        await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
        assert (await t.send(Request("GET", "/b"))).status == 200
        await t.close()

    run(handler, body)


def test_timeout_and_refused_are_classified() -> None:
    """No reply within the timeout is read_timeout; a closed port is connect_refused."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await r.read()  # never answer; the client gives up and closes
        w.close()
        await w.wait_closed()

    async def body(url: str) -> None:
        t = H1Transport(url, limit=1, timeout_s=0.2)
        with pytest.raises(Failure) as info:
            await t.send(Request("GET", "/slow"))
        assert info.value.error_class == errors.READ_TIMEOUT
        await t.close()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = H1Transport(f"http://127.0.0.1:{port}", limit=1, timeout_s=1)
        with pytest.raises(Failure) as info:
            await t.send(Request("GET", "/x"))
        assert info.value.error_class == errors.CONNECT_REFUSED
        await t.close()

    run(handler, body)


def test_an_https_url_on_another_host_keeps_the_runs_tls_settings_and_source_address(cert: tuple[Path, Path]) -> None:
    """An http target naming an https token URL elsewhere (3.1.0 discovery): the request goes through aiohttp with
    the run's CA bundle or verification off, and leaves from the VEN's source address; the system CAs refuse
    the self-signed server (a `tls` failure)."""
    crt = str(cert[0])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, str(cert[1]))
    peers: list[str] = []

    async def token(request: web.Request) -> web.Response:
        peers.append(str(request.remote))
        return web.json_response({"access_token": "t"})

    async def attempt(token_url: str, settings: TargetSettings) -> int | str:
        t = transports.for_target("http://127.0.0.1:9/base", settings, limit=1, timeout_s=5.0, sources=("127.0.0.2",))
        return await status_or_class(t, Request("POST", token_url, form={"grant_type": "client_credentials"}))

    async def main() -> list[int | str]:
        app = web.Application()
        app.router.add_post("/token", token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/token"
        try:
            return [await attempt(url, TargetSettings(ca_bundle=crt)), await attempt(url, TargetSettings(verify=False)),
                    await attempt(url, TargetSettings())]
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        got = r.run(asyncio.wait_for(main(), 20))
    assert got == [200, 200, errors.TLS]
    assert peers == ["127.0.0.2", "127.0.0.2"]


def test_one_deadline_fifo_times_out_each_request_at_its_own_deadline() -> None:
    """The requests of a loop share one deadline FIFO and one timer: a request that hangs times out at its own
    deadline (never before it), one sent later at its own later deadline, a request waiting for a pool
    connection as connect_timeout, and replies that come back leave no entries piling up behind them."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            try:
                req = await read_request(r)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if b"/hang" in req.split(b"\r\n", 1)[0]:
                await r.read()  # never answer
                break
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
        w.close()

    async def body(url: str) -> None:
        loop = asyncio.get_running_loop()
        fast = H1Transport(url, limit=8, timeout_s=0.4)
        fifo = fast._deadlines._fifo
        for _ in range(3 * 256):  # answered: the FIFO is pruned as it grows, not held for the timeout
            assert (await fast.send(Request("GET", "/ok"))).status == 200
        assert len(fifo) <= 257

        async def timed(t: H1Transport, path: str) -> tuple[float, float, str]:
            t0 = loop.time()
            with pytest.raises(Failure) as info:
                await t.send(Request("GET", path))
            return t0, loop.time(), info.value.error_class

        first = asyncio.ensure_future(timed(fast, "/hang"))
        await asyncio.sleep(0.15)
        second = asyncio.ensure_future(timed(fast, "/hang"))
        assert (await fast.send(Request("GET", "/ok"))).status == 200  # answered while two hang before it
        one = H1Transport(url, limit=1, timeout_s=0.4)  # the same timeout: the same FIFO
        assert one._deadlines is fast._deadlines
        held = asyncio.ensure_future(timed(one, "/hang"))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(timed(one, "/ok"))  # no free connection: waits in the pool
        (a0, a1, a), (b0, b1, b), (h0, h1, h), (w0, w1, w) = await asyncio.gather(first, second, held, waiting)
        assert (a, b, h, w) == (errors.READ_TIMEOUT, errors.READ_TIMEOUT, errors.READ_TIMEOUT, errors.CONNECT_TIMEOUT)
        for start, end in ((a0, a1), (b0, b1), (h0, h1), (w0, w1)):
            assert end - start >= 0.4 - 0.002  # never early (uvloop's clock counts whole milliseconds)
        assert a1 < b1  # each at its own deadline: the later one later
        assert not fifo and fast._deadlines._timer is None  # all settled: nothing tracked, no timer armed
        await fast.close()
        await one.close()

    run(handler, body)
