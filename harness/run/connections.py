"""A worker's connections to the target: each VEN's own transport (per-VEN mode) or the shard's pool, made on first
use, dropped when a VEN ramps out or a drop_connections fault comes, and closed at the end.

Edge (transports live and die in the worker's loop: made here inside it, closed here inside it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harness.core.shard import ShardSpec
from harness.net.base import CONNECTS, Transport

# (spec, connections, source addresses): a transport the worker's VENs (one VEN, or the shard's pool) send through.
TransportFactory = Callable[[ShardSpec, int, tuple[str, ...]], Transport]


class Connections:
    def __init__(self, spec: ShardSpec, make: TransportFactory) -> None:
        self.spec = spec
        self._make = make
        self.per_ven: dict[int, Transport] = {}
        self.pooled: Transport | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.connects_before = CONNECTS.opened  # this thread's connects before the run (see net.base.CONNECTS)
        self.dropped = 0  # transports closed by drop_connections faults

    def open_pool(self) -> None:
        """Pooled mode: the shard's pool, opened at Start."""
        self.pooled = self._make(self.spec, self.spec.pool_size, self.spec.target_settings.source_addresses)

    def transport_for(self, row: int) -> Transport:
        if self.pooled is not None:
            return self.pooled
        t = self.per_ven.get(row)
        if t is None:
            source = self.spec.target_settings.source_for(self.spec.ven_start + row)
            t = self.per_ven[row] = self._make(self.spec, 1, (source,) if source else ())
        return t

    def go_offline(self, row: int) -> None:
        """A VEN ramped out of the fleet drops its connection (it keeps its identity for a later ramp-up)."""
        transport = self.per_ven.pop(row, None)
        if transport is not None:
            self._close_soon(transport)

    def drop_all(self) -> None:
        """A drop_connections fault: every transport is closed now and replaced on next use, so each VEN's next
        request opens a new connection. Idle connections (most of them: a VEN is idle between reports) close at
        once; a request in flight on the lean client finishes and its connection closes after it (on an aiohttp
        (https) transport it fails as a reset)."""
        old = list(self.per_ven.values())
        self.per_ven.clear()
        if self.pooled is not None:
            old.append(self.pooled)
            self.open_pool()
        self.dropped += len(old)
        for transport in old:
            self._close_soon(transport)

    def opened(self) -> int:
        """Connections opened since the worker started."""
        return CONNECTS.opened - self.connects_before

    def _close_soon(self, transport: Transport) -> None:
        task = asyncio.get_running_loop().create_task(transport.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        closing = list(self.per_ven.values()) + ([self.pooled] if self.pooled else [])
        await asyncio.gather(*(t.close() for t in closing), return_exceptions=True)
        self.per_ven.clear()
