"""The transport seam: `Transport.send(request, token)` → `Reply`, and nothing else a VEN needs of the network.

Edge. A dialect's `Request` (method, path or absolute URL, JSON or form body) and a bearer token go in; a
transport turns them into method, URL, headers and body with harness.net.wire (one place for headers), and a
failure comes out as a classified `Failure` (harness.net.failures), never as another exception. Implementations:
h1client.H1Transport (plain http, the hot path), aiotransport.AiohttpTransport (TLS), tests/doubles.FakeTransport.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

from harness.dialects import Request


class Reply(NamedTuple):  # one per response: a NamedTuple is built in half a frozen dataclass's time
    status: int
    body: bytes
    retry_after_s: float | None = None
    retried: bool = False  # sent twice: the first attempt met a kept-alive connection the server had closed


class _Connects(threading.local):
    """TCP connections the transports of this thread have opened: a worker's loop is its thread's only loop, so the
    worker ships the rise over its run as counter `connections_opened`. Bumped once per connect, never per request."""

    opened = 0


CONNECTS = _Connects()


class Transport(Protocol):
    async def send(self, req: Request, token: str | None = None) -> Reply: ...
    async def close(self) -> None: ...
