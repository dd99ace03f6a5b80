"""The worker's webhook receiver: one aiohttp server in the worker's own loop, one callback URL per VEN.

Edge. It answers the VTN's echo checks (`?echo=` on the callback URL, or `{callbackUrl}/echo`), checks each
notification's bearer token, reads bodies with the dialect's lenient `parse_notification` (JSON encoded twice,
`"targets": null`, HTTP verbs as operations) and hands events to the VEN it names. Created and cleaned up inside
the worker's loop.
"""

from __future__ import annotations

from collections.abc import Callable
from aiohttp import web

from harness.dialects import Dialect, EventInfo
from harness.net.wire import bearer
from harness.notify.notification import UNUSABLE, ReadById, event_of


class WebhookReceiver:
    def __init__(
        self, token_for: Callable[[int], str], on_event: Callable[[int, EventInfo], None], n_rows: int, dialect: Dialect,
        on_unusable: Callable[[int, str], None] | None = None,
    ) -> None:
        self._token_for = token_for
        self._on_event = on_event
        self._on_unusable = on_unusable  # (row, event id): the VEN reads an event its notification did not describe
        self._dialect = dialect  # the worker's: what its parsers tolerate is counted with the worker's deviations
        self._n_rows = n_rows
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.counters: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/notify/{row}", self._echo)
        app.router.add_get("/notify/{row}/echo", self._echo)
        app.router.add_post("/notify/{row}", self._notify)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return f"http://{host}:{self.port}/notify"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _row(self, request: web.Request) -> int | None:
        try:
            row = int(request.match_info["row"])
        except ValueError:
            return None
        return row if 0 <= row < self._n_rows else None

    async def _echo(self, request: web.Request) -> web.Response:
        self._count("webhook_echo")
        return web.Response(text=request.query.get("echo", ""))

    async def _notify(self, request: web.Request) -> web.Response:
        row = self._row(request)
        if row is None:
            self._count("webhook_unknown_callback")
            return web.Response(status=404)
        if request.headers.get("Authorization", "") != bearer(self._token_for(row)):
            self._count("webhook_bad_token")
            return web.Response(status=401)
        self._count("notifications")
        ev = event_of(self._dialect, await request.read())
        if isinstance(ev, str):
            self._count(ev)
        elif isinstance(ev, ReadById):
            self._count(UNUSABLE)
            if self._on_unusable is not None:
                self._on_unusable(row, ev.event_id)
        elif ev is not None:  # None: a deleted event asks nothing of a VEN
            self._on_event(row, ev)
        return web.Response(status=200)
