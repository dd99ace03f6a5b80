"""The embedded VTN's middlewares: request counting, fault injection, and problem answers for every error.

Edge (aiohttp). Control endpoints (`/_harness/`) are never faulted. A handler's `Problem` or `InvalidBody`
becomes a 4xx `problem` body; anything else unexpected is a logged 500, never a traceback to the client.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections import defaultdict

from aiohttp import web

from harness.vtn.faults import Faults, draw, stall_end_s
from harness.vtn.httpapi import Handler, Problem, problem_response
from harness.vtn.schema import InvalidBody

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_harness/"


class ResetResponse(web.Response):
    """Returned after an injected reset; never sent, since the connection is gone."""


class DisconnectedResponse(web.Response):
    """Returned when the client went away mid-request (its body cut short): not an error of ours, never sent."""


class FaultState:
    """The live fault settings, their rng and counters; replaced wholesale by POST /_harness/faults."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.semaphore: asyncio.Semaphore | None = None
        self.stall_until = 0.0  # time.monotonic(); set by POST /_harness/stall
        self.injected: dict[int, int] = defaultdict(int)
        self.resets = 0
        self.stalled = 0
        self.queued = 0
        self.dropped = 0  # reports acknowledged (201) and then not stored: drop_after_ack
        self.set(faults)

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.drop_rng = faults.drop_rng()
        self.semaphore = asyncio.Semaphore(faults.max_concurrency) if faults.max_concurrency else None

    def drops_report(self) -> bool:
        """drop_after_ack: this report is acknowledged and not stored (counted)."""
        if self.faults.drop_after_ack <= 0.0 or self.drop_rng.random() >= self.faults.drop_after_ack:
            return False
        self.dropped += 1
        return True


class Middlewares:
    """The middlewares and the counters they keep. `base_path` is stripped from counted route templates."""

    def __init__(self, faults: Faults, base_path: str) -> None:
        self.faults = FaultState(faults)
        self.base_path = base_path
        self.requests: dict[str, dict[int | str, int]] = defaultdict(lambda: defaultdict(int))
        self.client_disconnects = 0
        self.started_at = time.monotonic()
        # Injected waits (latency, service time, stalls) are not work the VTN owes anyone: on shutdown they end
        # at once, so a faulted VTN stops as fast as a healthy one (the handlers then run and answer).
        self.stopping = False
        self._waits: set[asyncio.Future[None]] = set()

    def wake(self) -> None:
        """End every injected wait now and skip those to come (the VTN is shutting down)."""
        self.stopping = True
        for fut in self._waits:
            if not fut.done():
                fut.set_result(None)

    async def _delay(self, seconds: float) -> None:
        """Wait `seconds` to within a few tens of microseconds, or until `wake`. Loop timers fire on
        whole-millisecond polls (up to 1 ms late, 0.5 ms on average), which would bias an injected 50 ms by
        1 %: so wait on the timer until 1 ms before the deadline and yield the loop for the rest."""
        if self.stopping:
            return
        deadline = time.monotonic() + seconds
        if seconds > 0.001:
            await self._wait(seconds - 0.001)
        while time.monotonic() < deadline and not self.stopping:
            await asyncio.sleep(0)

    async def _wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _resolve, fut)
        self._waits.add(fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waits.discard(fut)

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else "unmatched"
        base = self.base_path
        if base and template.startswith(base + "/"):
            template = template[len(base):] or "/"
        status: int | str = response.status
        if isinstance(response, ResetResponse):
            status = "reset"
        elif isinstance(response, DisconnectedResponse):
            status = "client_disconnected"
        self.requests[f"{request.method} {template}"][status] += 1
        return response

    @web.middleware
    async def inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fs = self.faults
        f = fs.faults
        if request.path.startswith(CONTROL_PREFIX) or (not f.is_active and fs.stall_until == 0.0):
            return await handler(request)
        fate = draw(f, fs.rng)
        if fate.delay_s > 0:
            await self._delay(fate.delay_s)
        if fate.reset:
            fs.resets += 1
            _abort(request)
            return ResetResponse(status=204)
        if fate.status:
            fs.injected[fate.status] += 1
            headers = None
            if fate.status == 429:
                headers = {"Retry-After": str(max(0, int(-(-f.retry_after_s // 1))))}
            response: web.StreamResponse = problem_response(fate.status, "injected fault", headers)
        elif fs.semaphore is not None:
            if fs.semaphore.locked():
                fs.queued += 1
            async with fs.semaphore:
                if f.service_time:
                    await self._delay(f.service_time.sample(fs.rng))
                response = await handler(request)
        else:
            if f.service_time:
                await self._delay(f.service_time.sample(fs.rng))
            response = await handler(request)
        await self._hold_while_stalled()
        return response

    async def _hold_while_stalled(self) -> None:
        # time.monotonic, not loop.time (whole milliseconds on uvloop): a held response never leaves early.
        held = False
        while not self.stopping:
            now = time.monotonic()
            end = self.faults.stall_until
            scheduled = stall_end_s(self.faults.faults.stalls, now - self.started_at)
            if scheduled is not None:
                end = max(end, self.started_at + scheduled)
            if end <= now:
                if self.faults.stall_until and self.faults.stall_until <= now:
                    self.faults.stall_until = 0.0  # back to the fast path
                break
            if not held:
                self.faults.stalled += 1
                held = True
            await self._wait(end - now)

    @web.middleware
    async def problems(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as exc:
            return problem_response(exc.status, exc.detail, exc.headers)
        except InvalidBody as exc:
            return problem_response(400, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            return problem_response(exc.status, exc.reason, headers)
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            # The client dropped the connection mid-request (e.g. its timeout fired while sending the body):
            # counted in stats, no traceback, nothing to answer.
            self.client_disconnects += 1
            return DisconnectedResponse(status=499)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return problem_response(500, "internal error")


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _abort(request: web.Request) -> None:
    """Reset the connection (RST, no response) so the client sees a reset, not a clean close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
