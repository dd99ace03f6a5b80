"""Test doubles: an in-memory VTN transport that answers in the worker's own loop, with set delays."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

import orjson

from harness.core.errors import Failure
from harness.dialects import Request
from harness.net.base import Reply, Transport


@dataclass
class FakeVtn:
    """Shared state of the fake VTN: what it accepted, and how slowly it answers each path."""

    delays_s: dict[str, float] = field(default_factory=dict)  # "POST /reports" -> seconds
    statuses: dict[str, int] = field(default_factory=dict)  # "POST /reports" -> forced status
    accepted: Counter[str] = field(default_factory=Counter)
    reports: list[dict[str, object]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    sources: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (limit, source addresses) per transport

    def factory(self, spec: object, limit: int, sources: tuple[str, ...] = ()) -> FakeTransport:
        self.sources.append((limit, sources))
        return FakeTransport(self)


class FakeTransport:
    def __init__(self, vtn: FakeVtn) -> None:
        asyncio.get_running_loop()
        self.vtn = vtn
        self.closed = False

    async def send(self, req: Request, token: str | None = None) -> Reply:
        path = req.path.split("?")[0]
        key = f"{req.method} {'/vens/*/resources' if path.endswith('/resources') else path}"
        delay = self.vtn.delays_s.get(key, 0.0)
        if delay:
            await asyncio.sleep(delay)
        forced = self.vtn.statuses.get(key)
        if forced:
            return Reply(forced, b'{"status": %d}' % forced)
        if key == "POST /auth/token":
            return Reply(200, b'{"access_token": "t", "token_type": "Bearer", "expires_in": 3600}')
        if req.method == "POST":
            self.vtn.accepted[key] += 1
            if key == "POST /reports":
                # what went on the wire, as the VTN reads it (a templated body is an orjson.Fragment of its bytes)
                self.vtn.reports.append(orjson.loads(orjson.dumps(req.json)))
            return Reply(201, orjson.dumps({"id": str(next(self.vtn._ids))}))
        return Reply(200, b"[]")

    async def close(self) -> None:
        self.closed = True


async def status_or_class(t: Transport, req: Request) -> int | str:
    """One request through a real transport: its status, or its failure class; the transport is closed after."""
    try:
        return (await t.send(req)).status
    except Failure as f:
        return f.error_class
    finally:
        await t.close()
