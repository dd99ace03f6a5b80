"""HTTP transport: one narrow interface (`Transport`) and its aiohttp implementation.

Edge. An `AiohttpTransport` is created inside the worker's running loop and closed in that same loop;
transport failures come out as `Failure` with a class from harness.core.errors, never as other exceptions.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from typing import NamedTuple, Protocol

import aiohttp

from harness.core import errors
from harness.core.errors import Failure
from harness.dialects import Request
from harness.net.wire import decode, encode, url_for

__all__ = ["AiohttpTransport", "Reply", "Transport", "classify", "decode", "encode", "url_for"]


class Reply(NamedTuple):  # one per response: a NamedTuple is built in half a frozen dataclass's time
    status: int
    body: bytes
    retry_after_s: float | None = None
    retried: bool = False  # sent twice: the first attempt met a kept-alive connection the server had closed


class Transport(Protocol):
    async def send(self, req: Request, token: str | None = None) -> Reply: ...
    async def close(self) -> None: ...


def classify(exc: BaseException) -> Failure:
    """Map an aiohttp/OS exception to a failure class (see harness.core.errors)."""
    msg = f"{type(exc).__name__}: {exc}"[:200]
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return Failure(errors.TLS, msg)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Failure(errors.CONNECT_TIMEOUT, msg)
    if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return Failure(errors.READ_TIMEOUT, msg)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return Failure(errors.CONNECT_REFUSED, msg)
        return Failure(errors.CONNECT_ERROR, msg)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return Failure(errors.RESET, msg)
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return Failure(errors.RESET, msg)
    if isinstance(exc, aiohttp.ClientResponseError):
        return Failure(errors.PROTOCOL, msg)
    if isinstance(exc, aiohttp.ClientError):
        return Failure(errors.CONNECT_ERROR, msg)
    raise exc


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
            connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",), raise_for_status=False
        )

    async def send(self, req: Request, token: str | None = None) -> Reply:
        headers = {"Accept": "application/json"}
        body, content_type = encode(req)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._session.request(req.method, url_for(self._base, req.path), data=body, headers=headers) as resp:
                body = await resp.read()
                return Reply(resp.status, body, _retry_after(resp.headers.get("Retry-After")))
        except Exception as exc:  # noqa: BLE001 - classified or re-raised by classify()
            raise classify(exc) from None

    async def close(self) -> None:
        await self._session.close()
