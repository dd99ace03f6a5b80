"""Webhook delivery: POSTs subscription notifications from background tasks through one ClientSession.

Created and closed inside the VTN's loop. A slow or dead callback costs a task and a timeout, never the
latency or the outcome of the request that caused the notification.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

import aiohttp
import orjson

log = logging.getLogger(__name__)

# Subscriptions use either vocabulary; both name the same four operations.
_OPERATION_ALIASES = {"POST": "POST", "CREATE": "POST", "PUT": "PUT", "UPDATE": "PUT", "DELETE": "DELETE",
                      "GET": "GET", "READ": "GET"}


def matching_callbacks(
    subscriptions: Iterable[dict[str, Any]], object_type: str, operation: str
) -> list[tuple[str, str | None]]:
    """(callbackUrl, bearerToken) of every objectOperation that covers this object type and operation
    (`operation` in the HTTP vocabulary: POST, PUT, DELETE)."""
    out: list[tuple[str, str | None]] = []
    for sub in subscriptions:
        for op in sub.get("objectOperations") or ():
            objects = {str(o).upper() for o in op.get("objects") or ()}
            operations = {_OPERATION_ALIASES.get(str(o).upper(), str(o).upper()) for o in op.get("operations") or ()}
            if object_type in objects and operation in operations:
                token = op.get("bearerToken")
                out.append((op["callbackUrl"], token if isinstance(token, str) and token else None))
    return out


class Notifier:
    def __init__(self, *, timeout_s: float, max_connections: int) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            skip_auto_headers=("User-Agent",),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def publish(self, callbacks: list[tuple[str, str | None]], object_type: str, operation: str, obj: Any) -> None:
        if callbacks:
            self.post(callbacks, orjson.dumps({"objectType": object_type, "operation": operation, "object": obj}))

    def post(self, callbacks: list[tuple[str, str | None]], body: bytes) -> None:
        """POST one notification body to each (callbackUrl, bearerToken), each from its own task."""
        for url, token in callbacks:
            task = asyncio.get_running_loop().create_task(self._deliver(url, token, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, token: str | None, body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a callback is counted, never raised
            log.debug("notification to %s failed: %s", url, type(exc).__name__)
            ok = False
        if ok:
            self.delivered += 1
        else:
            self.failed += 1

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._session.close()
