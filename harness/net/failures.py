"""Exceptions of every client (aiohttp, asyncio sockets, urllib) mapped to the failure classes of
harness.core.errors, in one place.

Edge. An exception that is none of the network's (a bug, a cancellation) is re-raised, never classified.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import urllib.error

import aiohttp

from harness.core import errors
from harness.core.errors import Failure


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def classify_connect(exc: BaseException) -> Failure:
    """A failure while opening a connection (timeouts are connect timeouts, any OS error is a connect error)."""
    msg = _message(exc)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return Failure(errors.CONNECT_TIMEOUT, msg)
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return Failure(errors.CONNECT_REFUSED, msg)
    if isinstance(exc, OSError):
        return Failure(errors.CONNECT_ERROR, msg)
    raise exc


def classify(exc: BaseException) -> Failure:
    """A failure of a request at any stage, as aiohttp and the OS report it."""
    msg = _message(exc)
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
    if isinstance(exc, ConnectionRefusedError):
        return Failure(errors.CONNECT_REFUSED, msg)
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return Failure(errors.RESET, msg)
    if isinstance(exc, aiohttp.ClientResponseError):
        return Failure(errors.PROTOCOL, msg)
    if isinstance(exc, aiohttp.ClientError):
        return Failure(errors.CONNECT_ERROR, msg)
    raise exc


def classify_blocking(exc: urllib.error.URLError | OSError) -> Failure:
    """A urllib failure (no HTTP status came back); the message is the reason urllib gives, as the user sees it."""
    reason = getattr(exc, "reason", exc)
    try:
        error_class = classify(reason).error_class if isinstance(reason, BaseException) else errors.CONNECT_ERROR
    except Exception:  # noqa: BLE001 - DNS and other OS errors (classify re-raises them): the target could not be reached
        error_class = errors.CONNECT_ERROR
    return Failure(error_class, str(reason))
