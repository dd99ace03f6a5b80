"""Which transport a target gets: the lean HTTP/1.1 client for plain http, aiohttp for TLS.

Edge. Called inside the loop that will use the transport; TLS contexts are built once per process (an
SSLContext does not pickle, so a worker builds its own from the TargetSettings it was sent).
"""

from __future__ import annotations

import functools
import ssl

from harness.core.target import TargetSettings
from harness.net import tls
from harness.net.aiotransport import AiohttpTransport
from harness.net.base import Transport
from harness.net.h1client import H1Transport


def for_target(url: str, settings: TargetSettings, *, limit: int, timeout_s: float,
               sources: tuple[str, ...] = ()) -> Transport:
    """Up to `limit` connections to the target at url (1: one VEN's own), leaving from `sources` in turn."""
    if url.startswith("http://"):
        # Plain http: the lean keep-alive client (about 3x the requests per core of aiohttp, and a VEN's own
        # connection costs a protocol object instead of a ClientSession + TCPConnector). TLS goes through aiohttp.
        return H1Transport(url, limit=limit, timeout_s=timeout_s, sources=sources, ssl_context=other_host_context(settings))
    return AiohttpTransport(url, limit=limit, timeout_s=timeout_s, ssl_context=target_context(url, settings),
                            source=sources[0] if sources else None)


@functools.cache
def target_context(url: str, settings: TargetSettings) -> ssl.SSLContext | None:
    """The TLS context of the target itself; None for plain http."""
    return tls.context_for(url, settings)


@functools.cache
def other_host_context(settings: TargetSettings) -> ssl.SSLContext | None:
    """The TLS context for https URLs an http target names on other hosts (a 3.1.0 tokenURL): the run's TLS
    settings when it has any (CA bundle, client certificate, verification off); None: aiohttp's default checks."""
    if settings.uses_tls_files:
        return tls.client_context(settings)
    return None
