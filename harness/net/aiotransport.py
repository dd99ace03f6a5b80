"""The aiohttp implementation of the Transport seam: TLS targets, and the URLs the lean client does not serve.

Edge. An `AiohttpTransport` is created inside the worker's running loop and closed in that same loop;
transport failures come out as `Failure` (harness.net.failures), never as other exceptions.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp

from harness.dialects import Request
from harness.net.base import CONNECTS, Reply
from harness.net.failures import classify
from harness.net.wire import prepare, retry_after

__all__ = ["AiohttpTransport"]


async def _connected(*_: object) -> None:
    CONNECTS.opened += 1


def _counting_connects() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_connected)
    return trace


class AiohttpTransport:
    """A ClientSession bound to one base URL; `limit=1` gives a VEN its own keep-alive connection."""

    def __init__(
        self,
        base_url: str,
        *,
        limit: int,
        timeout_s: float,
        connect_timeout_s: float | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        source: str | None = None,
    ) -> None:
        asyncio.get_running_loop()  # must be built inside the loop that will use it
        self._base = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(
            limit=limit, limit_per_host=limit, ssl=ssl_context if ssl_context is not None else True,
            local_addr=(source, 0) if source else None,
        )
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=connect_timeout_s or min(timeout_s, 5.0)
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",), raise_for_status=False,
            trace_configs=[_counting_connects()],
        )

    async def send(self, req: Request, token: str | None = None) -> Reply:
        r = prepare(self._base, req, token)
        try:
            async with self._session.request(r.method, r.url, data=r.body, headers=r.headers) as resp:
                body = await resp.read()
                return Reply(resp.status, body, retry_after(resp.headers.get("Retry-After")))
        except Exception as exc:  # noqa: BLE001 - classified or re-raised by classify()
            raise classify(exc) from None

    async def close(self) -> None:
        await self._session.close()
