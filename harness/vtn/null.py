"""A null VTN: answers every OpenADR call with a canned success at wire speed, storing nothing.

Edge (an asyncio Protocol on the serving loop). It exists to measure harness itself — the generator's
ceiling, its overhead next to a raw client, whether it is the bottleneck — never to check correctness.
HTTP/1.1 keep-alive with Content-Length bodies only (what harness and common load tools send).
"""

from __future__ import annotations

import asyncio
import itertools

_TOKEN = b'{"access_token":"null-token","token_type":"Bearer","expires_in":86400}'
_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request"}


def _response(status: int, body: bytes) -> bytes:
    return _HEAD % (status, _REASONS[status], len(body)) + body


_LIST = _response(200, b"[]")
_TOKEN_RESPONSE = _response(200, _TOKEN)
_BAD = _response(400, b'{"status":400,"title":"Bad Request","detail":"null VTN: malformed request"}')


class NullVtnProtocol(asyncio.Protocol):
    """One connection: parse request heads and Content-Length bodies, answer each with a canned reply."""

    ids = itertools.count(1)
    requests = 0

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    try:
                        length = int(value.strip())
                    except ValueError:
                        length = -1
            if length < 0:
                out.append(_BAD)
                buf.clear()
                break
            if len(buf) < end + 4 + length:
                break
            del buf[: end + 4 + length]
            out.append(self._answer(head.split(b" ", 2)))
        if out and self.transport is not None:
            self.transport.writelines(out)

    def _answer(self, request_line: list[bytes]) -> bytes:
        NullVtnProtocol.requests += 1
        if len(request_line) < 2:
            return _BAD
        method, target = request_line[0], request_line[1]
        if method == b"POST":
            if target.endswith(b"/auth/token"):
                return _TOKEN_RESPONSE
            return _response(201, b'{"id":"%d"}' % next(self.ids))
        if method == b"GET":
            return _LIST
        return _response(200, b"{}")
