"""What harness's two MQTT clients (the VENs' channel, the embedded VTN's publisher) share: reading a broker URI,
and the client library's log level. Edge; imports no client library.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

# gmqtt logs every refused reconnect attempt at ERROR: with 10,000 clients a broker outage would print 10,000
# lines a second. harness counts connects, disconnects and reconnects itself (error classes, summary.json).
logging.getLogger("gmqtt").setLevel(logging.CRITICAL)


def parse_mqtt_url(url: str, what: str = "broker", schemes: tuple[str, ...] = ("mqtt",)) -> tuple[str, int]:
    """(host, port) of `mqtt://HOST[:PORT]` (port 1883 when absent); a bad URL is a ValueError naming it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{what} must be mqtt://HOST:PORT with a port 1..65535, got {url!r}") from None
    if parts.scheme.lower() not in schemes or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{what} must be mqtt://HOST:PORT, got {url!r}")
    if port == 0:
        raise ValueError(f"{what} port must be 1..65535, got {url!r}")
    return parts.hostname, port or 1883


def broker_address(uri: str) -> tuple[str, int] | None:
    """(host, port) of a broker URI a VTN advertised (`mqtt://` or `tcp://`); None for one harness cannot use."""
    try:
        return parse_mqtt_url(uri, schemes=("mqtt", "tcp"))
    except ValueError:
        return None
